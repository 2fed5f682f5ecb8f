//! Write-then-read consistency verdicts, each shown both ways: shared storage
//! must give only "ok"; storage on each replica's own disk must give "missing"
//! on every other replica, counted exactly; replication with a delay must
//! give "stale" with a measured time-to-visible close to that delay.

mod common;

use common::*;
use std::time::Duration;
use surge::measure::RunResults;
use surge::sim::replica::ServiceOptions;
use surge::sim::{AttachmentStore, ClusterOptions};
use surge::verify::consistency::Verdict;

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
    let bundle_has_visibility = report.bundle.join(surge::report::VISIBLE_HDR).exists();
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
