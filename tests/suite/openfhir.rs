//! The openFHIR cache-invalidation check (scenarios/openfhir-mapping.toml),
//! both ways: with a working invalidation every replica maps a new template
//! at once; with a missed one, peers are stale until their reload — or, with
//! no reload, never learn it.

use crate::common::*;
use std::time::Duration;
use surge::bundle::{ConsistencyVerdict, Verdict};
use surge::run::RunRequest;
use surge::scenario::LoadOverride;
use surge_sim::replica::{Invalidation, ServiceOptions};
use surge_sim::ClusterOptions;

/// `direct`: probe each replica straight; else only through the balancer.
async fn mapping_run(
    invalidation: Invalidation,
    reload: Option<Duration>,
    direct: bool,
) -> (ConsistencyVerdict, bool) {
    let cluster = cluster(ClusterOptions {
        service: ServiceOptions {
            openfhir_invalidation: invalidation,
            openfhir_reload: reload,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let out = tempfile::tempdir().unwrap();
    let request = RunRequest {
        scenario: repo().join("scenarios/openfhir-mapping.toml"),
        target: Some(cluster.url.clone()),
        replicas: if direct {
            replica_urls(&cluster)
        } else {
            Vec::new()
        },
        load: LoadOverride {
            duration: Some(Duration::from_secs(5)),
            ..Default::default()
        },
        out_dir: out.path().to_path_buf(),
        ..Default::default()
    };
    let report = surge::run::run(&request).await.expect("run completes");
    cluster.shutdown().await;
    let r = report.results;
    assert_eq!(
        r.overall.failed,
        0,
        "{}",
        surge::report::terminal_summary(&r)
    );
    (r.consistency, r.thresholds.iter().all(|t| t.passed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_working_invalidation_reports_no_stale_reads() {
    let _engine = engine_lock().await;
    let (c, passed) = mapping_run(Invalidation::Broadcast, None, false).await;
    assert!(c.uploads >= 3, "{c:?}");
    assert_eq!(c.count(Verdict::Ok), 3 * c.uploads, "{c:?}");
    assert_eq!(c.count(Verdict::Stale) + c.count(Verdict::Missing), 0);
    assert!(passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_invalidation_is_stale_until_the_reload() {
    let _engine = engine_lock().await;
    let (c, passed) = mapping_run(Invalidation::None, Some(Duration::from_secs(1)), true).await;
    assert!(c.uploads >= 3, "{c:?}");
    // The replica that took the upload knows it at once; the other two are
    // stale until their reload. (Rarely, a reload lands in the ~20 ms between
    // the upload and the first probe, and that peer is rightly ok: no probe
    // saw it stale. So: most peer probes stale, never the uploader.)
    assert_eq!(
        c.count(Verdict::Ok) + c.count(Verdict::Stale),
        3 * c.uploads,
        "{c:?}"
    );
    assert!(c.count(Verdict::Stale) >= c.uploads, "{c:?}");
    assert!(
        c.problems
            .iter()
            .all(|p| p.verdict == Verdict::Stale && p.replica != p.uploaded_on),
        "{c:?}"
    );
    assert_eq!(c.visible_everywhere, c.uploads);
    // The staleness window is bounded by the 1 s reload, plus a 100 ms poll
    // and the probes' own round trips on a busy machine (1.3046 s seen).
    assert!(
        c.visible.max <= 1_500.0 && c.visible.p50 > 0.0,
        "{:?}",
        c.visible
    );
    assert!(c
        .problems
        .iter()
        .all(|p| p.visible_after_ms.is_some_and(|ms| ms <= 1_500)));
    assert!(!passed, "attachments.stale < 1 fails");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_reload_peers_never_learn_the_template() {
    let _engine = engine_lock().await;
    // Through the balancer alone: every replica must still be probed, also
    // for the first uploads, when not every replica has answered yet.
    let (c, passed) = mapping_run(Invalidation::None, None, false).await;
    assert!(c.uploads >= 3, "{c:?}");
    assert_eq!(c.count(Verdict::Missing), 2 * c.uploads, "{c:?}");
    assert!(!passed);
}
