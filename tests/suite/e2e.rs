//! End to end against the reference cluster: scenario → goose load → HDR
//! results → bundle, in both load models.

use crate::common::*;
use std::time::Duration;
use surge::bundle::ErrorClass;
use surge_sim::replica::ServiceOptions;
use surge_sim::ClusterOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_scenario_runs_healthy_on_three_replicas() {
    let _engine = engine_lock().await;
    let cluster = cluster(ClusterOptions::default()).await;
    let out = tempfile::tempdir().unwrap();
    // Read-backs go to each replica directly, so that through the sticky
    // balancer the only requests without a session are the users' logins,
    // which its round robin spreads over all three replicas. (Read-backs
    // through it would take turns of their own, and the few users the open
    // model starts might all land on two replicas.)
    let request = surge::run::RunRequest {
        scenario: repo().join("scenarios/demo.toml"),
        target: Some(cluster.url.clone()),
        load: surge::scenario::LoadOverride {
            duration: Some(Duration::from_secs(6)),
            ..Default::default()
        },
        replicas: replica_urls(&cluster),
        out_dir: out.path().to_path_buf(),
        ..Default::default()
    };
    let report = surge::run::run(&request).await.expect("run completes");
    cluster.shutdown().await;
    let r = &report.results;

    // Every replica served traffic.
    let replicas: Vec<&str> = r.replicas.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        replicas,
        ["r1", "r2", "r3"],
        "{}",
        surge::report::terminal_summary(r)
    );
    assert!(r.replicas.iter().all(|s| s.count > 0));

    // Every request issued is accounted for, and a healthy cluster fails none.
    let t = &r.totals;
    assert_eq!(t.issued, t.succeeded + t.failed + t.cancelled);
    assert_eq!(t.issued, r.overall.count + t.cancelled);
    assert_eq!(t.failed, 0, "{}", surge::report::terminal_summary(r));
    assert!(t.succeeded > 50);

    // The invalid resource got 200 with its errors in the OperationOutcome,
    // as HAPI FHIR answers, and that was the expected outcome.
    let invalid = r
        .request("validate_invalid_patient")
        .expect("invalid resources were validated");
    assert!(invalid.count > 0);
    assert_eq!(invalid.statuses.get(&200), Some(&invalid.count));
    assert_eq!(invalid.failed, 0);
    let valid = r.request("validate_valid_patient").unwrap();
    assert_eq!(valid.statuses.get(&200), Some(&valid.count));

    // Each persona step ran, and the login happened once per user that worked.
    for name in [
        "search_patient",
        "patient_by_id",
        "upload_document",
        "download_document",
        "auth.login",
    ] {
        assert!(
            r.request(name).is_some_and(|s| s.ok > 0),
            "{name} never succeeded"
        );
    }
    assert!(r.thresholds_passed(), "{:?}", r.thresholds);

    // The bundle holds the summary, the timeline and HDR files that add up.
    let bundle = &report.bundle;
    let back = surge::bundle::read_results(bundle).unwrap();
    assert_eq!(&back, r);
    let timeline = std::fs::read_to_string(bundle.join("timeline.csv")).unwrap();
    assert!(timeline.starts_with("second,requests,errors,dropped,p50_ms,p95_ms,p99_ms"));
    let per_second: u64 = r.timeline.iter().map(|row| row.requests).sum();
    assert_eq!(per_second, r.overall.count);
    let mut from_files = 0;
    for cell in &r.cells {
        let h = surge::bundle::read_histogram(&bundle.join(&cell.latency_hdr)).unwrap();
        assert_eq!(h.len(), cell.stats.count);
        from_files += h.len();
    }
    assert_eq!(from_files, r.overall.count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_model_achieves_its_rate_on_an_unsaturated_cluster() {
    let _engine = engine_lock().await;
    let cluster = cluster(ClusterOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let load =
        "[load]\nmodel = \"open\"\nmax_users = 40\n[[load.stages]]\nrate = 50\nhold = \"4s\"\n";
    let path = scenario_file(
        dir.path(),
        "rate",
        &fhir_search_scenario(&cluster.url, load),
    );
    let report = run(path, None, None, &dir.path().join("reports")).await;
    cluster.shutdown().await;
    let r = &report.results;
    let achieved = r.overall.count as f64 / r.planned_s;
    assert!(
        (achieved - 50.0).abs() / 50.0 <= 0.05,
        "achieved {achieved:.1}/s for 50/s"
    );
    assert_eq!(r.totals.dropped_arrivals, 0);
    assert_eq!(r.overall.failed, 0);
    // Unsaturated: requests start on time, so latency from the schedule ≈ service time.
    let s = r.request("fhir_search").unwrap();
    assert!(
        s.latency.p50 - s.service.p50 < 5.0,
        "latency {} vs service {}",
        s.latency.p50,
        s.service.p50
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_cluster_drops_arrivals_and_latency_exceeds_service_time() {
    let _engine = engine_lock().await;
    // One replica, one connection held 50 ms: capacity 20 requests/s.
    let cluster = cluster(ClusterOptions {
        replicas: 1,
        service: ServiceOptions {
            pool: 1,
            hold: Duration::from_millis(50),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let load = "[load]\nmodel = \"open\"\nmax_users = 4\nqueue_timeout = \"400ms\"\n[[load.stages]]\nrate = 60\nhold = \"3s\"\n";
    let path = scenario_file(
        dir.path(),
        "saturated",
        &fhir_search_scenario(&cluster.url, load),
    );
    let report = run(path, None, None, &dir.path().join("reports")).await;
    cluster.shutdown().await;
    let r = &report.results;
    assert!(
        r.totals.dropped_arrivals > 0,
        "{}",
        surge::report::terminal_summary(r)
    );
    let s = r.request("fhir_search").unwrap();
    // Arrivals waited for a free user: the wait is in latency, not in service time.
    assert!(
        s.latency.p90 > s.service.p90 + 50.0,
        "latency p90 {} should exceed service p90 {} by the queueing",
        s.latency.p90,
        s.service.p90
    );
    // And the server's own queueing shows in service time: well above the 50 ms hold.
    assert!(s.service.p50 > 60.0, "service p50 {}", s.service.p50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_closed_model_runs_users_with_think_time() {
    let _engine = engine_lock().await;
    let cluster = cluster(ClusterOptions {
        balancing: surge_sim::balancer::Balancing::RoundRobin,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let load =
        "[load]\nmodel = \"closed\"\n[[load.stages]]\nusers = 3\nramp = \"1s\"\nhold = \"3s\"\n";
    let path = scenario_file(
        dir.path(),
        "closed",
        &fhir_search_scenario(&cluster.url, load),
    );
    let report = run(path, None, None, &dir.path().join("reports")).await;
    cluster.shutdown().await;
    let r = &report.results;
    assert_eq!(r.model, surge::bundle::LoadModel::Closed);
    assert!(
        r.overall.count > 20,
        "{}",
        surge::report::terminal_summary(r)
    );
    assert_eq!(r.overall.failed, 0);
    assert_eq!(
        r.totals.issued,
        r.totals.succeeded + r.totals.failed + r.totals.cancelled
    );
    // Round-robin spreads even three users' requests over all replicas.
    assert_eq!(r.replicas.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_local_to_a_replica_break_without_stickiness() {
    let _engine = engine_lock().await;
    // Round-robin with per-replica sessions: the JSESSIONID from one replica
    // is unknown to the next, which answers 401 "Session timed out".
    let cluster = cluster(ClusterOptions {
        balancing: surge_sim::balancer::Balancing::RoundRobin,
        ..Default::default()
    })
    .await;
    let out = tempfile::tempdir().unwrap();
    let demo = repo().join("scenarios/demo.toml");
    let report = run(
        demo,
        Some(&cluster.url),
        Some(Duration::from_secs(3)),
        out.path(),
    )
    .await;
    cluster.shutdown().await;
    let search = report.results.request("search_patient").unwrap();
    assert!(
        search
            .errors
            .get(&ErrorClass::Http4xx)
            .copied()
            .unwrap_or(0)
            > 0
    );
    assert!(search.statuses.contains_key(&401));
    assert!(!report.results.thresholds_passed(), "errors.rate must fail");
}
