//! The reference cluster on a real MariaDB Galera cluster (issue 28): three
//! nodes (`targets/galera/cluster.sh`), replica r1, r2, r3 each writing and
//! reading its FHIR resources through its own node n0, n1, n2
//! (`surge sim up --galera URL…`). Patients are created through the
//! balancer at 20/s and each is searched by its id on every replica.
//!
//! Both ways, one Galera cluster: 3 s in, a chaos `exec` step holds n2's
//! applier for 1.5 s (`cluster.sh pause`: desynced, so the others commit
//! on), as a node behind a long local lock does. With `wsrep_sync_wait = 0`
//! r3 answers from what n2 has applied: the creates of those seconds are
//! stale there. With `wsrep_sync_wait = 1` the same pause makes r3's reads
//! wait until n2 has applied them: none stale. A node killed mid-run
//! (SIGKILL) leaves two of three, a quorum: the cluster stays writable, r3
//! goes on through the next node, and no acknowledged write is lost.
//!
//! The independent truth is Galera's own: each node's row count and
//! `wsrep_last_committed`, sampled while the load runs; its cluster size
//! and status after the kill; the rows on the surviving nodes.

use crate::common::registrations::Registrations;
use crate::common::*;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use surge::bundle::{RunResults, Verdict};
use surge_sim::replica::ServiceOptions;
use surge_sim::ClusterOptions;

fn script() -> PathBuf {
    repo().join("targets/galera/cluster.sh")
}

/// A three-node Galera cluster of the test's own, stopped when dropped.
struct Galera {
    dir: tempfile::TempDir,
    urls: Vec<String>,
}

impl Galera {
    /// `cluster.sh up` with `wsrep_sync_wait = sync_wait`; None (outside CI
    /// only) when MariaDB or Galera is not installed.
    fn up(sync_wait: u8) -> Option<Galera> {
        program("mariadbd")?;
        program("rsync")?;
        if !std::path::Path::new("/usr/lib/galera/libgalera_smm.so").exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "galera-4 is not installed: .ci/run installs it"
            );
            eprintln!("SKIPPED: apt-get install galera-4 (or run .ci/run)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port_run(34);
        galera_script(&[
            "up",
            &dir.path().display().to_string(),
            "--port",
            &port.to_string(),
            "--sync-wait",
            &sync_wait.to_string(),
        ]);
        let urls = (0..3)
            .map(|i| format!("mysql://sim@127.0.0.1:{}/clinic", port + i))
            .collect();
        Some(Galera { dir, urls })
    }

    fn path(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// One statement on node `i`, as root through its socket; its output.
    fn sql(&self, i: usize, statement: &str) -> String {
        sql_at(&self.dir.path().join(format!("run/n{i}.sock")), statement)
    }

    fn status(&self, i: usize, name: &str) -> String {
        let row = self.sql(i, &format!("SHOW STATUS LIKE '{name}'"));
        row.split('\t').nth(1).unwrap_or_default().to_owned()
    }

    fn patients(&self, i: usize) -> u64 {
        self.sql(
            i,
            "SELECT count(*) FROM clinic.resources WHERE type = 'Patient'",
        )
        .parse()
        .unwrap()
    }
}

/// `cluster.sh ARGS`, which must succeed.
fn galera_script(args: &[&str]) {
    let out = Command::new(script()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "galera {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Galera {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("down")
            .arg(self.dir.path())
            .output();
    }
}

fn sql_at(socket: &std::path::Path, statement: &str) -> String {
    let out = Command::new("mariadb")
        .arg("--protocol=socket")
        .arg("-S")
        .arg(socket)
        .args(["-u", "root", "-N", "-B", "-e", statement])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Patients created at 20/s for 8 s, each searched by its id on every
/// replica; at 3 s the chaos step `fault` (a `cluster.sh` command).
fn registrations(base_url: &str, replicas: &[String], fault: &str) -> String {
    let replicas: Vec<String> = replicas.iter().map(|u| format!("\"{u}\"")).collect();
    let rest = format!(
        r#"[verify]
replicas = [{}]
visible_within = "5s"
poll = "25ms"
audit = true
budget = 30

[chaos]
[[chaos.actions]]
action = "exec"
command = "{} {fault}"
at = "3s"

[thresholds]
"attachments.missing" = "< 1"
"writes.lost" = "< 1"
"#,
        replicas.join(", "),
        script().display(),
    );
    Registrations {
        base_url,
        timeout: "10s",
        load: "model = \"open\"\nmax_users = 60\n[[load.stages]]\nrate = 20\nhold = \"8s\"",
        think: "0s",
        rest: &rest,
    }
    .scenario()
}

/// What Galera said while the load ran: the most n2 was behind n0, in
/// Patients and in commits.
#[derive(Debug, Default)]
struct Lag {
    patients: u64,
    commits: i64,
    samples: usize,
}

/// A run of the registrations on a reference cluster over `galera`,
/// sampling n0 and n2 every 50 ms meanwhile.
async fn run_over(galera: &Galera, fault: &str) -> (RunResults, Lag) {
    let cluster = cluster(ClusterOptions {
        replicas: 3,
        balancing: surge_sim::balancer::Balancing::RoundRobin,
        service: ServiceOptions {
            galera: galera.urls.clone(),
            hold: Duration::from_millis(2),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let fault = fault.replace("DIR", &galera.path());
    let path = scenario_file(
        dir.path(),
        "galera",
        &registrations(&cluster.url, &replica_urls(&cluster), &fault),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        let sockets: Vec<PathBuf> = [0, 2]
            .iter()
            .map(|i| galera.dir.path().join(format!("run/n{i}.sock")))
            .collect();
        std::thread::spawn(move || {
            let mut lag = Lag::default();
            let ask = |s: &PathBuf| {
                let row = sql_at(
                    s,
                    // Its own session reads what the node has applied,
                    // whatever the cluster's wsrep_sync_wait.
                    "SET SESSION wsrep_sync_wait = 0; SELECT (SELECT count(*) FROM clinic.resources), VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_LAST_COMMITTED'",
                );
                let mut cols = row.split('\t');
                let rows: Option<u64> = cols.next().and_then(|c| c.parse().ok());
                let committed: Option<i64> = cols.next().and_then(|c| c.parse().ok());
                rows.zip(committed)
            };
            while !stop.load(Ordering::Relaxed) {
                // n2 first: a row it has is one n0 had before.
                if let (Some((rows2, c2)), Some((rows0, c0))) = (ask(&sockets[1]), ask(&sockets[0]))
                {
                    lag.patients = lag.patients.max(rows0.saturating_sub(rows2));
                    lag.commits = lag.commits.max(c0 - c2);
                    lag.samples += 1;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            lag
        })
    };
    let report = run(path, None, None, &dir.path().join("reports")).await;
    stop.store(true, Ordering::Relaxed);
    cluster.shutdown().await;
    eprintln!("{}", surge::report::terminal_summary(&report.results));
    (report.results, sampler.join().unwrap())
}

/// The verdict counts on `replica`.
fn on(r: &RunResults, replica: &str, verdict: Verdict) -> u64 {
    let c = &r.consistency;
    let counts = c
        .replicas
        .iter()
        .find(|x| x.replica == replica)
        .unwrap_or_else(|| panic!("no verdicts for {replica}: {:?}", c.replicas));
    counts.verdicts.get(&verdict).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_node_reads_stale_with_sync_wait_0_and_never_with_sync_wait_1() {
    let _engine = engine_lock().await;
    let Some(galera) = Galera::up(0) else {
        return;
    };
    const PAUSE: &str = "pause DIR 2 1500";

    // wsrep_sync_wait = 0: n2 answers from what it has applied.
    let (r, lag) = run_over(&galera, PAUSE).await;
    eprintln!("Galera, sync_wait 0: {lag:?}");
    let c = &r.consistency;
    assert_eq!(r.overall.failed, 0, "{:?}", r.overall);
    assert!(c.uploads >= 100, "{c:?}");
    assert!(
        lag.patients >= 5 && lag.commits >= 5,
        "n2 fell behind: {lag:?}"
    );
    let stale = on(&r, "r3", Verdict::Stale);
    assert!(
        stale >= 5,
        "creates during the pause stale on r3: {:?}",
        c.replicas
    );
    // Stale only where the lag was: r1 and r2 read n0 and n1.
    assert_eq!(
        on(&r, "r1", Verdict::Stale) + on(&r, "r2", Verdict::Stale),
        0,
        "{:?}",
        c.replicas
    );
    assert_eq!(c.count(Verdict::Missing), 0, "{:?}", c.replicas);
    assert_eq!(c.visible_everywhere, c.uploads);
    // Seen within the pause's bounds: visible once n2 applied them.
    assert!(
        (100.0..=2500.0).contains(&c.visible.max),
        "the longest wait to visible, {:.0} ms, within the 1.5 s pause",
        c.visible.max
    );
    let audit = c.writes.audit.as_ref().expect("audited");
    assert_eq!(
        (audit.lost, audit.present),
        (0, audit.acknowledged),
        "{audit:?}"
    );
    assert!(r.thresholds_passed());

    // wsrep_sync_wait = 1, the same pause: r3's reads wait for n2.
    galera_script(&["sync-wait", &galera.path(), "1"]);
    let (r, lag) = run_over(&galera, PAUSE).await;
    eprintln!("Galera, sync_wait 1: {lag:?}");
    let c = &r.consistency;
    assert_eq!(r.overall.failed, 0, "{:?}", r.overall);
    assert!(c.uploads >= 100, "{c:?}");
    assert!(
        lag.patients >= 5 && lag.commits >= 5,
        "n2 fell behind just the same: {lag:?}"
    );
    assert_eq!(
        c.count(Verdict::Stale) + c.count(Verdict::Missing),
        0,
        "{:?}",
        c.replicas
    );
    assert_eq!(on(&r, "r3", Verdict::Ok), c.uploads, "{:?}", c.replicas);
    assert!(r.thresholds_passed());
    // Every row on every node once the pause is over.
    let total = galera.patients(0);
    assert_eq!((galera.patients(1), galera.patients(2)), (total, total));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_leaves_a_writable_quorum_and_loses_no_acknowledged_write() {
    let _engine = engine_lock().await;
    let Some(galera) = Galera::up(0) else {
        return;
    };
    let (r, _) = run_over(&galera, "kill DIR 2").await;
    let c = &r.consistency;
    let w = &c.writes;
    let audit = w.audit.as_ref().expect("audited");
    // Galera's word: two nodes of three, still the primary component,
    // each holding every Patient the other has.
    assert_eq!(galera.status(0, "wsrep_cluster_size"), "2");
    assert_eq!(galera.status(0, "wsrep_cluster_status"), "Primary");
    let (n0, n1) = (galera.patients(0), galera.patients(1));
    assert_eq!(n0, n1);
    // Writable throughout: writes went on after the kill (r1 and r2 on
    // their own nodes, r3 through n0), at most those in flight on n2 failed.
    assert!(w.sent >= 140, "{w:?}");
    assert!(w.failed <= 5, "only writes in flight on n2 fail: {w:?}");
    assert!(audit.complete(), "{audit:?}");
    assert_eq!(audit.lost, 0, "{audit:?}");
    assert_eq!(audit.present, audit.acknowledged, "{audit:?}");
    assert!(
        n0 >= audit.acknowledged && n0 <= w.sent,
        "{n0} rows, {audit:?}"
    );
    assert!(r.thresholds_passed());
}
