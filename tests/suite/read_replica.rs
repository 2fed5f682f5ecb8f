//! Read-your-writes through a streaming read replica (issue 28, on the
//! reference cluster): FHIR Patients created through the balancer, then
//! searched by `_id` on every replica, whose reads come from a read
//! replica replaying each commit `lag` later. Both ways: with no lag
//! (synchronous replication) every create is found at once; with 600 ms,
//! every create is a stale read on every replica, and the time until
//! visible is within the lag's bounds.

use crate::common::registrations::{closed, Registrations};
use crate::common::*;
use std::time::Duration;
use surge::bundle::{RunResults, Verdict};
use surge_sim::replica::ServiceOptions;
use surge_sim::ClusterOptions;

/// Registrars creating a Patient every 200 ms each, for 3 s; each create
/// read back with a search by its id.
fn registrations(base_url: &str, replicas: &[String]) -> String {
    let replicas: Vec<String> = replicas.iter().map(|u| format!("\"{u}\"")).collect();
    let rest = format!(
        r#"[verify]
replicas = [{}]
visible_within = "3s"
poll = "25ms"

[thresholds]
"attachments.missing" = "< 1"
"#,
        replicas.join(", ")
    );
    Registrations {
        base_url,
        timeout: "5s",
        load: &closed(2, "3s"),
        think: "200ms",
        rest: &rest,
    }
    .scenario()
}

async fn run_with_lag(lag: Duration) -> RunResults {
    let cluster = cluster(ClusterOptions {
        service: ServiceOptions {
            read_replica_lag: lag,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = scenario_file(
        dir.path(),
        "registrations",
        &registrations(&cluster.url, &replica_urls(&cluster)),
    );
    let report = run(path, None, None, &dir.path().join("reports")).await;
    cluster.shutdown().await;
    eprintln!("{}", surge::report::terminal_summary(&report.results));
    report.results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronous_replication_finds_every_write_at_once() {
    let _engine = engine_lock().await;
    let r = run_with_lag(Duration::ZERO).await;
    let c = &r.consistency;
    assert!(c.uploads >= 10, "{c:?}");
    // Each create read on the 3 replicas listed.
    assert_eq!(c.count(Verdict::Ok), 3 * c.uploads, "{:?}", c.verdicts);
    assert_eq!(c.count(Verdict::Stale), 0);
    assert_eq!(c.visible_everywhere, c.uploads);
    assert!(r.thresholds_passed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_read_replica_makes_every_write_a_stale_read_for_its_lag() {
    let _engine = engine_lock().await;
    let lag = Duration::from_millis(600);
    let r = run_with_lag(lag).await;
    let c = &r.consistency;
    assert!(c.uploads >= 10, "{c:?}");
    // Not found at first on any replica (the writer's reads go to the
    // standby too), found later on all: stale, never missing.
    assert_eq!(c.count(Verdict::Stale), 3 * c.uploads, "{:?}", c.verdicts);
    assert_eq!(c.count(Verdict::Missing), 0);
    assert_eq!(c.visible_everywhere, c.uploads);
    // Visible from the create's answer on: the lag less the answer's own
    // time, plus at most a poll (25 ms) and a read's time.
    for (what, ms) in [("p50", c.visible.p50), ("max", c.visible.max)] {
        assert!(
            (500.0..=800.0).contains(&ms),
            "time to visible everywhere, {what} {ms:.0} ms, should be within the 600 ms lag's bounds"
        );
    }
    assert!(r.thresholds_passed(), "stale is not missing");
}
