//! Read-your-writes through a real streaming standby (issue 28):
//! `cluster.sh up --standby sync` puts a PostgreSQL hot standby beside the
//! primary and a reader HAPI on it, and HAProxy sends reads by id and
//! searches there; `cluster.sh standby DIR async --standby-delay 600` then
//! makes it asynchronous and 600 ms late without a restart. Registrars create Patients through the
//! balancer; surge searches each one by `_id` on the writer and on the
//! reader.
//!
//! The independent truth is PostgreSQL's own, sampled while the load runs:
//! the primary's `pg_stat_replication` (is the standby synchronous) and the
//! standby's age of the last commit it replayed
//! (`now() - pg_last_xact_replay_timestamp()`, never below its replay
//! delay); after it, the Patient rows on both servers.

use crate::common::registrations::{closed, Registrations};
use crate::common::*;
use crate::{surge_run, RealCluster};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use surge::bundle::{ConsistencyVerdict, RunResults, Verdict};
use surge::run::RunRequest;

/// Two registrars creating a Patient every 200 ms each for 4 s, each
/// create searched by its id on the writer and on the reader.
fn registrations(cluster: &RealCluster) -> String {
    let writer = &cluster.replica_urls()[0];
    let reader = cluster.reader_url();
    let rest = format!(
        r#"[verify]
replicas = ["{writer}", "{reader}"]
visible_within = "5s"
poll = "25ms"
# Each create is read on both servers, the reader polled every 25 ms.
budget = 10

[thresholds]
"attachments.missing" = "< 1"
"#
    );
    Registrations {
        base_url: &cluster.url(),
        timeout: "10s",
        load: &closed(2, "4s"),
        think: "200ms",
        rest: &rest,
    }
    .scenario()
}

impl RealCluster {
    /// The reader HAPI's own base URL.
    fn reader_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port("READER_PORT"))
    }

    /// Patients on the server at `port_key`.
    fn patients(&self, port_key: &str) -> u64 {
        self.sql(
            port_key,
            "SELECT count(*) FROM hfj_resource WHERE res_type = 'Patient' AND res_deleted_at IS NULL",
        )
        .parse()
        .unwrap()
    }
}

/// Creates before the measured run.
const WARM_UP: u64 = 10;

/// What PostgreSQL said of its replication while the load ran.
struct Replication {
    /// The primary's `sync_state` for the standby, at each sample.
    states: Vec<String>,
    /// How old the last commit the standby had replayed was, seconds, at
    /// each sample: at least its replay delay, and that much just after it
    /// replays one.
    replayed_ages: Vec<f64>,
}

/// Runs the registrations, sampling both servers every 100 ms meanwhile.
async fn registrations_run(cluster: &RealCluster) -> (RunResults, Replication) {
    // A fresh JVM's first creates take hundreds of milliseconds (JIT): by
    // the time such an answer comes, even a 600 ms standby may have the
    // commit. Ten creates first, so the measured ones are the server's.
    let client = reqwest::Client::new();
    for _ in 0..WARM_UP {
        let created = client
            .post(format!("{}/fhir/Patient", cluster.url()))
            .header("Content-Type", "application/fhir+json")
            .body(r#"{"resourceType":"Patient","name":[{"family":"Warm"}]}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
    }
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_file(dir.path(), "hapi-registrations", &registrations(cluster));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        let (primary, standby) = (cluster.port("PG_PORT"), cluster.port("STANDBY_PORT"));
        std::thread::spawn(move || {
            let ask = |port: u16, sql: &str| {
                let out = Command::new("psql")
                    .args(["-h", "127.0.0.1", "-p", &port.to_string()])
                    .args(["-U", "hapi", "-d", "hapi", "-At", "-c", sql])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).trim().to_owned()
            };
            let mut seen = Replication {
                states: Vec::new(),
                replayed_ages: Vec::new(),
            };
            while !stop.load(Ordering::Relaxed) {
                let state = ask(
                    primary,
                    "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'",
                );
                seen.states.push(state);
                let age = ask(
                    standby,
                    "SELECT EXTRACT(epoch FROM now() - pg_last_xact_replay_timestamp())",
                );
                if let Ok(age) = age.parse() {
                    seen.replayed_ages.push(age);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            seen
        })
    };
    let results = surge_run(RunRequest {
        scenario,
        out_dir: dir.path().join("out"),
        ..Default::default()
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    (results, sampler.join().unwrap())
}

/// The verdict counts on `replica` (as its answers name it: `r0`, `reader`).
fn on(c: &ConsistencyVerdict, replica: &str, verdict: Verdict) -> u64 {
    let counts = c
        .replicas
        .iter()
        .find(|r| r.replica == replica)
        .unwrap_or_else(|| panic!("no verdicts for {replica}: {:?}", c.replicas));
    counts.verdicts.get(&verdict).copied().unwrap_or(0)
}

/// The replica a search through the balancer was served by.
async fn balancer_serves_search_from(cluster: &RealCluster) -> String {
    let answer = reqwest::get(format!("{}/fhir/Patient?_count=1", cluster.url()))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    answer.headers()["X-Served-By"].to_str().unwrap().to_owned()
}

impl RealCluster {
    /// `cluster.sh standby DIR MODE …`: the running standby switched.
    fn switch_standby(&self, args: &[&str]) {
        let out = Command::new(crate::script())
            .arg("standby")
            .arg(self.dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cluster.sh standby {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// One cluster, its standby synchronous and then, switched at run time,
/// asynchronous and replaying 600 ms late: the reader finds every create at
/// once, then every one stale (one cluster for both saves a HAPI start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_finds_every_write_when_synchronous_and_none_at_once_when_600_ms_late() {
    let _turn = engine_lock().await;
    let Some(cluster) = RealCluster::up(&["--replicas", "1", "--standby", "sync", "--no-seed"])
    else {
        return;
    };
    assert_eq!(balancer_serves_search_from(&cluster).await, "reader");
    synchronous(&cluster).await;
    cluster.switch_standby(&["async", "--standby-delay", "600"]);
    asynchronous_600_ms_late(&cluster).await;
}

async fn synchronous(cluster: &RealCluster) {
    let before = cluster.patients("PG_PORT");
    let (r, replication) = registrations_run(cluster).await;
    let c = &r.consistency;
    assert_eq!(r.overall.failed, 0);
    assert!(c.uploads >= 10, "{c:?}");
    assert_eq!(on(c, "r0", Verdict::Ok), c.uploads, "{:?}", c.replicas);
    assert_eq!(on(c, "reader", Verdict::Ok), c.uploads, "{:?}", c.replicas);
    assert_eq!(c.count(Verdict::Stale) + c.count(Verdict::Missing), 0);
    assert_eq!(c.visible_everywhere, c.uploads);
    assert!(r.thresholds_passed());

    // PostgreSQL's word: the standby was synchronous throughout, and it
    // holds every acknowledged create the moment the run ends.
    assert!(!replication.states.is_empty());
    assert!(
        replication.states.iter().all(|s| s == "sync"),
        "{:?}",
        replication.states
    );
    assert_eq!(
        cluster.patients("STANDBY_PORT"),
        before + c.uploads + WARM_UP
    );
    assert_eq!(cluster.patients("PG_PORT"), before + c.uploads + WARM_UP);
}

async fn asynchronous_600_ms_late(cluster: &RealCluster) {
    let before = cluster.patients("PG_PORT");
    let (r, replication) = registrations_run(cluster).await;
    let c = &r.consistency;
    assert_eq!(r.overall.failed, 0);
    assert!(c.uploads >= 10, "{c:?}");
    // The writer reads the primary: found at once. The reader reads the
    // standby: not yet, then found — stale, never missing.
    assert_eq!(on(c, "r0", Verdict::Ok), c.uploads, "{:?}", c.replicas);
    // A create whose answer itself took longer than the delay (a GC pause)
    // is rightly found at once: at most two of them.
    let stale = on(c, "reader", Verdict::Stale);
    assert_eq!(
        stale + on(c, "reader", Verdict::Ok),
        c.uploads,
        "{:?}",
        c.replicas
    );
    assert!(stale + 2 >= c.uploads, "{:?}", c.replicas);
    assert_eq!(c.count(Verdict::Missing), 0);
    assert_eq!(c.visible_everywhere, c.uploads);
    assert!(r.thresholds_passed(), "stale is not missing");

    // PostgreSQL's word: asynchronous, and the standby never held a commit
    // younger than its 600 ms delay, but did hold ones just that old: it
    // replayed each as soon as it might. surge's time to visible, from
    // each create's answer, lies within the same bounds less the answer's
    // own time.
    assert!(
        replication.states.iter().all(|s| s == "async"),
        "{:?}",
        replication.states
    );
    let ages = &replication.replayed_ages;
    assert!(ages.len() >= 20, "{ages:?}");
    let youngest = ages.iter().copied().fold(f64::INFINITY, f64::min);
    eprintln!("the youngest commit the standby had replayed: {youngest:.3} s old");
    assert!(
        (0.59..=1.0).contains(&youngest),
        "the youngest commit the standby had replayed was {youngest} s old: {ages:?}"
    );
    for (what, ms) in [("p50", c.visible.p50), ("max", c.visible.max)] {
        assert!(
            (450.0..=1500.0).contains(&ms),
            "time to visible everywhere, {what} {ms:.0} ms, should be within the 600 ms delay's bounds"
        );
    }
    // Every acknowledged create is on the primary, and on the standby once
    // it has replayed them.
    assert_eq!(cluster.patients("PG_PORT"), before + c.uploads + WARM_UP);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        cluster.patients("STANDBY_PORT"),
        before + c.uploads + WARM_UP
    );
}
