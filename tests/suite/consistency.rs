//! Write-then-read consistency verdicts, each shown both ways: shared storage
//! must give only "ok"; storage on each replica's own disk must give "missing"
//! on every other replica, counted exactly; replication with a delay must
//! give "stale" with a measured time-to-visible close to that delay.

use crate::common::*;
use std::time::Duration;
use surge::bundle::RunResults;
use surge::bundle::Verdict;
use surge_sim::replica::ServiceOptions;
use surge_sim::{AttachmentStore, ClusterOptions};

async fn run_uploads(options: ClusterOptions, visible_within: &str) -> RunResults {
    let cluster = cluster(options).await;
    let dir = tempfile::tempdir().unwrap();
    let path = scenario_file(
        dir.path(),
        "uploads",
        &uploads(&cluster.url, &replica_urls(&cluster), visible_within),
    );
    let report = run(path, None, None, &dir.path().join("reports")).await;
    cluster.shutdown().await;
    // Shown with --nocapture: the figures behind the verdicts.
    eprintln!("{}", surge::report::terminal_summary(&report.results));
    let bundle_has_visibility = report.bundle.join(surge::bundle::VISIBLE_HDR).exists();
    assert_eq!(
        bundle_has_visibility,
        report.results.consistency.visible_everywhere > 0
    );
    report.results
}

fn store(attachments: AttachmentStore) -> ClusterOptions {
    ClusterOptions {
        attachments,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_storage_is_ok_on_every_replica() {
    let _engine = engine_lock().await;
    let r = run_uploads(store(AttachmentStore::Shared), "2s").await;
    let c = &r.consistency;
    assert!(c.uploads >= 6, "{c:?}");
    assert_eq!(
        c.count(Verdict::Ok),
        3 * c.uploads,
        "every upload ok on all 3 replicas: {:?}",
        c.verdicts
    );
    assert_eq!(c.visible_everywhere, c.uploads);
    assert!(c.problems.is_empty());
    assert!(r.thresholds_passed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_on_each_replica_disk_is_missing_elsewhere_counted_exactly() {
    let _engine = engine_lock().await;
    let r = run_uploads(store(AttachmentStore::PerReplica), "600ms").await;
    let c = &r.consistency;
    assert!(c.uploads >= 6, "{c:?}");
    // Found on the replica that took it, missing on the two others.
    assert_eq!(c.count(Verdict::Ok), c.uploads, "{:?}", c.verdicts);
    assert_eq!(c.count(Verdict::Missing), 2 * c.uploads, "{:?}", c.verdicts);
    assert_eq!(c.visible_everywhere, 0);
    for p in &c.problems {
        assert_eq!(p.verdict, Verdict::Missing);
        assert_ne!(
            p.replica, p.uploaded_on,
            "missing only where it was not uploaded: {p:?}"
        );
    }
    assert!(!r.thresholds_passed(), "attachments.missing < 1 must fail");
    let text = surge::report::terminal_summary(&r);
    assert!(text.contains("missing"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_replication_is_stale_and_its_lag_is_measured() {
    let _engine = engine_lock().await;
    let delay = Duration::from_millis(600);
    let r = run_uploads(
        ClusterOptions {
            attachments: AttachmentStore::Replicated,
            service: ServiceOptions {
                replication_delay: delay,
                ..Default::default()
            },
            ..Default::default()
        },
        "3s",
    )
    .await;
    let c = &r.consistency;
    assert!(c.uploads >= 5, "{c:?}");
    assert_eq!(
        c.count(Verdict::Stale),
        2 * c.uploads,
        "stale on the two replicas it was copied to: {:?}",
        c.verdicts
    );
    assert_eq!(c.count(Verdict::Missing), 0);
    assert_eq!(c.visible_everywhere, c.uploads);
    let median = c.visible.p50;
    assert!(
        (median - 600.0).abs() <= 0.25 * 600.0,
        "time to visible everywhere, median {median:.0} ms, should be within 25% of the 600 ms delay"
    );
    assert!(r.thresholds_passed(), "stale is not missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_copies_are_caught_by_hash() {
    let _engine = engine_lock().await;
    let r = run_uploads(
        ClusterOptions {
            attachments: AttachmentStore::Replicated,
            service: ServiceOptions {
                corrupt_replication: true,
                ..Default::default()
            },
            ..Default::default()
        },
        "1s",
    )
    .await;
    let c = &r.consistency;
    assert!(c.uploads >= 5, "{c:?}");
    assert_eq!(
        c.count(Verdict::Ok),
        c.uploads,
        "intact where it was uploaded: {:?}",
        c.verdicts
    );
    assert_eq!(
        c.count(Verdict::Corrupted),
        2 * c.uploads,
        "corrupted on both copies: {:?}",
        c.verdicts
    );
    assert!(
        !r.thresholds_passed(),
        "attachments.corrupted < 1 must fail"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_write_here_read_there_check_works_too_fhir_binary() {
    let _engine = engine_lock().await;
    // The same mechanism on another API: a FHIR Binary, its id from the
    // FHIR JSON answer (asked for: HAPI answers a raw upload with the raw
    // bytes otherwise), replicated with a delay.
    let cluster = cluster(ClusterOptions {
        attachments: AttachmentStore::Replicated,
        service: ServiceOptions {
            replication_delay: Duration::from_millis(300),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let replicas: Vec<String> = replica_urls(&cluster)
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect();
    let body = format!(
        r#"[target]
base_url = "{}"
replica_header = "X-Served-By"

[load]
model = "open"
max_users = 4
[[load.stages]]
rate = 4
hold = "2s"

[[personas]]
name = "integration"
steps = [{{ request = "binary" }}]

[requests.binary]
method = "POST"
path = "/fhir/Binary"
headers = {{ Accept = "application/fhir+json" }}
generate = {{ kind = "text", size = "2KiB" }}
expect = {{ status = [201] }}
consistency = {{ id = "id", read = "/fhir/Binary/${{id}}", absent = [400, 404, 410] }}

[verify]
replicas = [{}]
visible_within = "2s"
poll = "20ms"
"#,
        cluster.url,
        replicas.join(", ")
    );
    let dir = tempfile::tempdir().unwrap();
    let path = scenario_file(dir.path(), "binary", &body);
    let report = run(path, None, None, &dir.path().join("reports")).await;
    cluster.shutdown().await;
    let c = &report.results.consistency;
    assert_eq!(c.uploads, 8, "{c:?}");
    assert_eq!(c.count(Verdict::Stale), 2 * c.uploads, "{:?}", c.verdicts);
    assert!(
        (c.visible.p50 - 300.0).abs() <= 75.0,
        "staleness window p50 {:.0} ms for a 300 ms delay",
        c.visible.p50
    );
    // The verdicts and figures are in summary.json for every later report.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.bundle.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["consistency"]["uploads"], 8);
    assert_eq!(summary["consistency"]["verdicts"]["stale"], 16);
    assert!(summary["sessions"].is_object());
}

/// One upload, the run's very first request after the login (only its own
/// replica has answered yet), read back through the balancer alone.
async fn first_upload_through_the_balancer(
    attachments: AttachmentStore,
) -> surge::bundle::ConsistencyVerdict {
    let cluster = cluster(store(attachments)).await;
    let dir = tempfile::tempdir().unwrap();
    let body = uploads(&cluster.url, &[], "2s")
        .replace("users = 3", "users = 1")
        .replace("think = \"200ms\"", "think = \"10s\"");
    let path = scenario_file(dir.path(), "first-upload", &body);
    let report = run(path, None, None, &dir.path().join("reports")).await;
    cluster.shutdown().await;
    report.results.consistency
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_upload_of_a_run_is_checked_on_every_replica_through_the_balancer_alone() {
    let _engine = engine_lock().await;
    // Shared storage: all three replicas must be read and agree — not just
    // the one or two that happened to answer before the check concluded.
    let c = first_upload_through_the_balancer(AttachmentStore::Shared).await;
    assert_eq!(c.uploads, 1, "{c:?}");
    assert_eq!(c.count(Verdict::Ok), 3, "{c:?}");
    assert_eq!(c.visible_everywhere, 1);
    // Each replica's own disk: the two others must be found missing.
    let c = first_upload_through_the_balancer(AttachmentStore::PerReplica).await;
    assert_eq!(
        (c.count(Verdict::Ok), c.count(Verdict::Missing)),
        (1, 2),
        "{c:?}"
    );
    assert_eq!(c.visible_everywhere, 0);
}
