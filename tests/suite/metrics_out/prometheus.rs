//! Remote-Write to Debian's Prometheus 2.42: the counts it received, by
//! PromQL, are the bundle's, per request, replica and status class,
//! exactly; its native histograms' p95 lies in the bucket of HDR's and the
//! p95 gauge is HDR's; without native histograms it gets classic buckets,
//! and the sessions, upload verdicts and read-backs are the bundle's; a
//! receiver that never answers never slows the run, whose bundle is whole
//! and says what the receiver missed.

use super::*;
use crate::common::*;
use std::collections::BTreeMap;
use std::time::Duration;
use surge::run::metrics_out::MetricsTarget;
use surge::run::RunRequest;
use surge::scenario::LoadOverride;
use surge_sim::ClusterOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_receives_the_bundles_counts_per_request_replica_and_class() {
    let _engine = engine_lock().await;
    let prometheus = prometheus(true).await;
    let cluster = cluster(ClusterOptions {
        replicas: 2,
        balancing: surge_sim::balancer::Balancing::RoundRobin,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let request = RunRequest {
        scenario: scenario(dir.path(), &cluster.url),
        out_dir: dir.path().join("runs"),
        metrics_out: vec![MetricsTarget::Prometheus(format!(
            "{}/api/v1/write",
            prometheus.url
        ))],
        load: LoadOverride::default(),
        ..Default::default()
    };
    let report = surge::run::run(&request).await.expect("run completes");
    cluster.shutdown().await;
    let r = &report.results;
    assert!(r.passed(), "{:?}", r.checks);
    // What Prometheus holds, by PromQL, is the bundle's: every answer by
    // its request, replica and status class.
    let expected = assert_requests_as_bundle(&prometheus.url, r).await;
    let replicas: std::collections::BTreeSet<&str> =
        expected.keys().map(|(_, r, _)| r.as_str()).collect();
    assert_eq!(replicas.len(), 2, "both replicas answered: {expected:?}");
    assert!(expected.keys().any(|(_, _, c)| c == "4xx"), "{expected:?}");
    let pushed = &r.metrics_out;
    assert_eq!(pushed.len(), 1);
    // One push at 5 s, one at the end (the run is 7 s); none dropped.
    assert!(pushed[0].pushed >= 2, "{pushed:?}");
    assert_eq!((pushed[0].failed, pushed[0].dropped), (0, 0), "{pushed:?}");
    let arrivals = promql(
        &prometheus.url,
        &format!(
            "surge_arrivals_total{{run_id=\"{}\",scenario=\"pushed\"}}",
            r.run_id
        ),
    )
    .await;
    let value = arrivals["data"]["result"][0]["value"][1].as_str().unwrap();
    assert_eq!(
        value.parse::<u64>().unwrap(),
        r.totals.arrivals,
        "{arrivals}"
    );
    // Latency: native histograms, taken.
    assert_eq!(pushed[0].histograms, "native", "{pushed:?}");
    assert_latency_as_bundle(&prometheus.url, r).await;
    dashboard_queries_run(
        &prometheus.url,
        &r.run_id,
        &[
            "sum(rate(surge_arrivals_total",
            "sum by (request) (rate(surge_requests_total",
            "sum by (replica) (rate(surge_requests_total",
            "histogram_quantile(0.95, sum by (request) (rate(surge_request_duration_seconds{",
            "histogram_quantile(0.99, sum by (replica) (rate(surge_request_duration_seconds{",
            "max by (request, quantile) (surge_request_duration_quantile_seconds",
            "sum(surge_users_busy",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_buckets_sessions_and_upload_verdicts_reach_a_prometheus_without_native_histograms()
{
    let _engine = engine_lock().await;
    let prometheus = prometheus(false).await;
    // Each replica keeps its own uploads: missing on the two others.
    let cluster = cluster(ClusterOptions {
        attachments: surge_sim::AttachmentStore::PerReplica,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = scenario_file(
        dir.path(),
        "uploads",
        &uploads(&cluster.url, &replica_urls(&cluster), "600ms"),
    );
    // Long enough for two pushes: a dashboard's rates need two samples.
    let request = RunRequest {
        scenario: path,
        out_dir: dir.path().join("runs"),
        load: LoadOverride {
            duration: Some(Duration::from_secs(7)),
            ..Default::default()
        },
        metrics_out: vec![MetricsTarget::Prometheus(format!(
            "{}/api/v1/write",
            prometheus.url
        ))],
        ..Default::default()
    };
    let report = surge::run::run(&request).await.expect("run completes");
    cluster.shutdown().await;
    let r = &report.results;
    let pushed = &r.metrics_out[0];
    assert!(
        pushed
            .histograms
            .starts_with("classic: the receiver refused native histograms (answered 5"),
        "{pushed:?}"
    );
    assert_eq!((pushed.failed, pushed.dropped), (0, 0), "{pushed:?}");
    let run = format!("run_id=\"{}\"", r.run_id);
    // Upload verdicts per replica, as the bundle's.
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for replica in &r.consistency.replicas {
        for (verdict, n) in &replica.verdicts {
            *expected.entry(verdict.as_str().to_owned()).or_default() += n;
        }
    }
    assert!(
        expected.get("missing").copied().unwrap_or(0) >= 12,
        "{expected:?}"
    );
    let got = by_label(
        &prometheus.url,
        &format!("surge_upload_reads_total{{{run}}}"),
        "verdict",
    )
    .await;
    assert_eq!(got, expected);
    // Sessions, as the bundle's.
    let sessions = value_of(&prometheus.url, &format!("surge_sessions_total{{{run}}}")).await;
    assert_eq!(sessions as u64, r.sessions.sessions);
    assert!(r.sessions.sessions >= 3);
    let switches = value_of(
        &prometheus.url,
        &format!("surge_session_switches_total{{{run}}}"),
    )
    .await;
    assert_eq!(switches as u64, r.sessions.switches);
    // Read-backs, as the bundle's.
    let read_backs: u64 = r
        .consistency
        .read_backs
        .replicas
        .iter()
        .map(|x| x.total())
        .sum();
    let pushed_reads = value_of(
        &prometheus.url,
        &format!("sum(surge_read_backs_total{{{run}}})"),
    )
    .await;
    assert_eq!(pushed_reads as u64, read_backs);
    // Classic buckets: the +Inf bucket and the count are the bundle's, per
    // request; the classic p95 lies between the bounds around HDR's.
    for stats in &r.requests {
        let name = format!("{run},request=\"{}\"", stats.name);
        let inf = value_of(
            &prometheus.url,
            &format!("sum(surge_request_duration_seconds_bucket{{{name},le=\"+Inf\"}})"),
        )
        .await;
        let count = value_of(
            &prometheus.url,
            &format!("sum(surge_request_duration_seconds_count{{{name}}})"),
        )
        .await;
        assert_eq!((inf as u64, count as u64), (stats.count, stats.count));
        let bounds = by_label(
            &prometheus.url,
            &format!("sum by (le) (surge_request_duration_seconds_bucket{{{name}}})"),
            "le",
        )
        .await;
        let mut les: Vec<f64> = bounds
            .keys()
            .filter_map(|le| le.parse::<f64>().ok().filter(|v| v.is_finite()))
            .collect();
        les.sort_by(f64::total_cmp);
        let p95 = stats.latency.p95 / 1000.0;
        let above = les
            .iter()
            .copied()
            .find(|b| *b >= p95)
            .unwrap_or(f64::INFINITY);
        let below = les.iter().copied().rev().find(|b| *b < p95).unwrap_or(0.0);
        let classic = value_of(
            &prometheus.url,
            &format!(
                "histogram_quantile(0.95, sum by (le) (surge_request_duration_seconds_bucket{{{name}}}))"
            ),
        )
        .await;
        assert!(
            classic >= below && classic <= above,
            "{}: classic p95 {classic} s not in [{below}, {above}] around HDR's {p95} s",
            stats.name
        );
    }
    dashboard_queries_run(
        &prometheus.url,
        &r.run_id,
        &[
            "histogram_quantile(0.95, sum by (le, request) (rate(surge_request_duration_seconds_bucket",
            "sum by (verdict) (surge_upload_reads_total",
            "sum(rate(surge_sessions_total",
            "sum by (replica, way) (rate(surge_read_backs_total",
        ],
    )
    .await;
    // Two pushes and the last: nothing ever went down.
    assert!(pushed.pushed >= 2, "{pushed:?}");
    assert_no_resets(
        &prometheus.url,
        &r.run_id,
        &[
            "surge_requests_total",
            "surge_upload_reads_total",
            "surge_read_backs_total",
            "surge_sessions_total",
            "surge_request_duration_seconds_bucket",
            "surge_request_duration_seconds_sum",
            "surge_request_duration_seconds_count",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_never_slows_the_run_and_what_it_missed_is_said() {
    let _engine = engine_lock().await;
    let cluster = cluster(ClusterOptions {
        replicas: 1,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    // It takes the connection (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/api/v1/write?tenant=s3cr3t",
        silent.local_addr().unwrap()
    );
    let request = RunRequest {
        scenario: scenario(dir.path(), &cluster.url),
        out_dir: dir.path().join("runs"),
        metrics_out: vec![MetricsTarget::Prometheus(url)],
        ..Default::default()
    };
    let report = surge::run::run(&request).await.expect("run completes");
    cluster.shutdown().await;
    drop(silent);
    let r = &report.results;
    assert!(r.passed(), "{:?}", r.checks);
    // The load kept its schedule: every arrival of 7 s at 20 a second,
    // none dropped.
    assert_eq!(
        (r.totals.arrivals, r.totals.dropped_arrivals),
        (140, 0),
        "{:?}",
        r.totals
    );
    let pushed = &r.metrics_out[0];
    assert_eq!(pushed.pushed, 0, "{pushed:?}");
    assert!(pushed.failed >= 1, "{pushed:?}");
    assert_eq!(
        pushed.last_error.as_deref(),
        Some("no answer within 5 s"),
        "{pushed:?}"
    );
    // The bundle on disk says it, and its report does; the query's token
    // is in neither.
    let json = std::fs::read_to_string(report.bundle.join("summary.json")).unwrap();
    assert!(
        json.contains("\"metrics_out\""),
        "the bundle records the pushes"
    );
    let markdown = std::fs::read_to_string(report.bundle.join("summary.md")).unwrap();
    assert!(
        markdown.contains("prometheus http://127.0.0.1:") && markdown.contains("0 pushes accepted"),
        "{markdown}"
    );
    assert!(!json.contains("s3cr3t") && !markdown.contains("s3cr3t"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_refusal_is_a_failed_push_and_keeps_native_histograms() {
    let _engine = engine_lock().await;
    let cluster = cluster(ClusterOptions {
        replicas: 1,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    // A proxy's 503, whose body says nothing of native histograms.
    let (base, receiver) = receiver_answering(
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\nconnection: close\r\n\r\nbusy"
            .to_vec(),
        b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n".to_vec(),
    )
    .await;
    let url = format!("{base}/api/v1/write");
    let request = RunRequest {
        scenario: scenario(dir.path(), &cluster.url),
        out_dir: dir.path().join("runs"),
        metrics_out: vec![MetricsTarget::Prometheus(url)],
        ..Default::default()
    };
    let report = surge::run::run(&request).await.expect("run completes");
    cluster.shutdown().await;
    receiver.abort();
    let pushed = &report.results.metrics_out[0];
    assert_eq!(pushed.failed, 1, "{pushed:?}");
    assert!(pushed.pushed >= 1, "{pushed:?}");
    assert_eq!(pushed.histograms, "native", "{pushed:?}");
    assert_eq!(
        pushed.last_error.as_deref(),
        Some("answered 503 Service Unavailable"),
        "{pushed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_ended_by_ctrl_c_still_pushes_its_last_counts() {
    let _engine = engine_lock().await;
    let prometheus = prometheus(true).await;
    let cluster = cluster(ClusterOptions {
        replicas: 1,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), &cluster.url);
    // As a user runs it, for 60 s, and Ctrl-C after about 3 s: before the
    // first periodic push, so whatever Prometheus holds came with the last.
    let out = dir.path().join("runs");
    let mut child = std::process::Command::new(surge_bin())
        .args(["run", "--duration", "60s", "--no-progress", "--metrics-out"])
        .arg(format!("prometheus={}/api/v1/write", prometheus.url))
        .arg("--out")
        .arg(&out)
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let ended = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        (status, stderr)
    })
    .await
    .unwrap();
    cluster.shutdown().await;
    let (status, stderr) = ended;
    // Interrupted: exit 3, with its bundle.
    assert_eq!(status.code(), Some(3), "{stderr}");
    let bundle = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("summary.json").exists())
        .expect("the bundle is written");
    let r = surge::bundle::read_results(&bundle).unwrap();
    assert!(r.interrupted.is_some(), "{:?}", r.interrupted);
    let pushed = &r.metrics_out[0];
    assert_eq!((pushed.pushed, pushed.failed), (1, 0), "{pushed:?}");
    // The last push carried the run's last counts: the bundle's arrivals
    // and requests.
    let arrivals = value_of(
        &prometheus.url,
        &format!("surge_arrivals_total{{run_id=\"{}\"}}", r.run_id),
    )
    .await;
    assert_eq!(arrivals as u64, r.totals.arrivals);
    assert!(r.totals.arrivals >= 40, "{:?}", r.totals);
    let requests = value_of(
        &prometheus.url,
        &format!("sum(surge_requests_total{{run_id=\"{}\"}})", r.run_id),
    )
    .await;
    let completed: u64 = r.requests.iter().map(|s| s.count).sum();
    assert_eq!(requests as u64, completed);
}
