//! Acknowledged writes lost in a database failover (issue 28), on the
//! reference cluster: its database's primary dies when a chaos `exec`
//! step touches `failover` in the cluster's shared folder; every database
//! request fails for 1 s (the standby's promotion), and with asynchronous
//! replication the commits of the last 500 ms before the death are gone
//! (the standby never received them). The double writes the ids it
//! dropped to `failover.lost`: the truth surge's audit is held to, id by
//! id. Both ways: asynchronous loses exactly those; synchronous loses none;
//! both measure the outage writes met.

use crate::common::registrations::{closed, Registrations};
use crate::common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;
use surge::bundle::RunResults;
use surge_sim::replica::ServiceOptions;
use surge_sim::ClusterOptions;

/// Three registrars creating Patients for 5 s, each create searched by its
/// id; the primary dies 2 s in; every acknowledged create audited after.
fn registrations(base_url: &str, failover: &Path) -> String {
    let rest = format!(
        r#"[verify]
visible_within = "3s"
poll = "25ms"
audit = true
budget = 20

[chaos]
[[chaos.actions]]
action = "exec"
command = "touch {}"
at = "2s"

[thresholds]
"writes.lost" = "< 1"
"writes.outage_s" = "< 3s"
"#,
        failover.display()
    );
    Registrations {
        base_url,
        timeout: "5s",
        load: &closed(3, "5s"),
        think: "50ms",
        rest: &rest,
    }
    .scenario()
}

/// A run through a failover that loses `loses`; what surge found and the
/// ids the double dropped.
async fn through_failover(loses: Duration) -> (RunResults, BTreeSet<String>) {
    let data = tempfile::tempdir().unwrap();
    let cluster = cluster(ClusterOptions {
        data_dir: Some(data.path().to_path_buf()),
        balancing: surge_sim::balancer::Balancing::RoundRobin,
        service: ServiceOptions {
            failover_loses: loses,
            failover_down: Duration::from_secs(1),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let shared = data.path().join("shared");
    let path = scenario_file(
        dir.path(),
        "failover",
        &registrations(&cluster.url, &shared.join("failover")),
    );
    let report = run(path, None, None, &dir.path().join("reports")).await;
    cluster.shutdown().await;
    eprintln!("{}", surge::report::terminal_summary(&report.results));
    let dropped = std::fs::read_to_string(shared.join("failover.lost"))
        .expect("the failover was applied")
        .lines()
        .map(|l| {
            l.strip_prefix("Patient/")
                .expect("only Patients")
                .to_owned()
        })
        .collect();
    (report.results, dropped)
}

/// When the chaos step touched the failover file (the primary's death),
/// seconds of the run.
fn death_s(r: &RunResults) -> f64 {
    let chaos = r.chaos.as_ref().expect("the chaos step ran");
    assert_eq!(chaos.events.len(), 1, "{chaos:?}");
    chaos.events[0].at_s
}

/// The writes failed from the death until the promotion: one outage of
/// about the 1 s it took, never much more; every failed write in it.
fn assert_outage(r: &RunResults) {
    let w = &r.consistency.writes;
    let outage = w.outage.expect("writes failed");
    assert_eq!(outage.failed, w.failed, "one outage: {w:?}");
    assert!(
        (0.8..=2.0).contains(&outage.seconds()),
        "an outage of {:.2} s around a 1 s promotion: {w:?}",
        outage.seconds()
    );
    let death = death_s(r);
    assert!(
        (death - 0.2..=death + 0.5).contains(&outage.from_s),
        "the first failed write sent at {} s, the death at {death} s",
        outage.from_s
    );
    assert_eq!(w.sent, r.request("register").unwrap().count);
    // No write succeeded from the first refusal to the promotion: the
    // stall holds the outage and the wait for the next success, no more.
    // (A write sent before the first refusal may succeed just after it:
    // the stall then begins at that success, a few milliseconds later.)
    let stall = w.stall.expect("writes were sent");
    assert!(
        stall.from_s <= outage.from_s + 0.1 && stall.to_s + 0.1 >= outage.to_s,
        "stall {stall:?}, outage {outage:?}"
    );
    assert!(
        stall.seconds() <= outage.seconds() + 0.5,
        "stall {stall:?}, outage {outage:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asynchronous_failover_loses_exactly_the_writes_the_standby_never_received() {
    let _engine = engine_lock().await;
    let (r, dropped) = through_failover(Duration::from_millis(500)).await;
    let audit = r.consistency.writes.audit.as_ref().expect("audited");
    assert!(!dropped.is_empty(), "3 registrars write in any 500 ms");
    assert_eq!(audit.lost, dropped.len() as u64, "{audit:?}");
    let lost: BTreeSet<String> = audit.lost_writes.iter().map(|l| l.id.clone()).collect();
    assert_eq!(lost, dropped);
    // Every acknowledged write answered for: present or lost.
    assert_eq!(audit.acknowledged, r.consistency.uploads);
    assert_eq!(audit.present + audit.lost, audit.acknowledged, "{audit:?}");
    // Lost writes were acknowledged in the 500 ms before the death.
    let death = death_s(&r);
    for l in &audit.lost_writes {
        assert!(
            (death - 0.6..=death + 0.1).contains(&l.acknowledged_at_s),
            "{l:?} acknowledged outside the 500 ms before the death at {death} s"
        );
    }
    assert_outage(&r);
    let judged: std::collections::BTreeMap<&str, bool> = r
        .thresholds
        .iter()
        .map(|t| (t.metric.as_str(), t.passed))
        .collect();
    assert!(!judged["writes.lost"], "lost writes fail the gate");
    assert!(judged["writes.outage_s"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synchronous_failover_loses_no_acknowledged_write() {
    let _engine = engine_lock().await;
    let (r, dropped) = through_failover(Duration::ZERO).await;
    let audit = r.consistency.writes.audit.as_ref().expect("audited");
    assert!(dropped.is_empty());
    assert!(audit.acknowledged >= 30, "{audit:?}");
    assert_eq!(audit.acknowledged, r.consistency.uploads);
    assert_eq!(
        (audit.present, audit.lost),
        (audit.acknowledged, 0),
        "{audit:?}"
    );
    assert_outage(&r);
    assert!(r.thresholds_passed(), "{:?}", r.thresholds);
}
