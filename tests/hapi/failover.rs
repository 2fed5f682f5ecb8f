//! Acknowledged writes lost in a real failover (issue 28): HAPI FHIR on a
//! Patroni pair (`cluster.sh up --patroni async|sync`: etcd, two
//! PostgreSQL, HAProxy on Patroni's `/primary`, pgBouncer following).
//! Registrars create Patients; 8 s in, a chaos `exec` step runs
//! `cluster.sh kill-primary --stall 1500`: the standby's link to the
//! primary breaks (its WAL receiver ends), 1.5 s later the primary's node
//! dies (Patroni, postmaster and backends, SIGKILL), and Patroni promotes
//! the standby once the leader key expires. surge audits every
//! acknowledged create after the run.
//!
//! The independent truth is the two databases' own rows: after the run the
//! dead primary's data directory is started on its own, and the Patients
//! it holds that the promoted primary lacks are the writes the failover
//! lost. Both ways: asynchronous, Patroni promotes the standby and surge's
//! lost writes are exactly those, id by id; strictly synchronous, the
//! commits after the cut were never acknowledged, Patroni promotes no
//! standby that may lack one, every acknowledged write is on the dead
//! primary's disk, and surge, reading none back, claims nothing.

use crate::common::registrations::{closed, Registrations};
use crate::common::*;
use crate::{script, surge_run, RealCluster};
use std::collections::BTreeSet;
use std::process::{Child, Command};
use std::time::Duration;
use surge::bundle::RunResults;
use surge::run::RunRequest;

/// Patroni and etcd, or (outside CI only) a skip said aloud.
fn patroni_present() -> bool {
    let present = program("patroni").is_some() && program("etcd").is_some();
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "Patroni and etcd are not installed: .ci/run installs them"
        );
        eprintln!("SKIPPED: apt-get install patroni etcd-server (or run .ci/run)");
    }
    present
}

/// Three registrars for 30 s; the primary dies 8 s in.
fn registrations(cluster: &RealCluster) -> String {
    let rest = format!(
        r#"[verify]
visible_within = "15s"
poll = "100ms"
audit = true
budget = 20

[chaos]
recover_within = "60s"
[[chaos.actions]]
action = "exec"
command = "{} kill-primary {} --stall 1500"
at = "8s"

[thresholds]
"writes.lost" = "< 1"
"writes.outage_s" = "< 60s"
"#,
        script().display(),
        cluster.dir.path().display()
    );
    Registrations {
        base_url: &cluster.url(),
        timeout: "10s",
        load: &closed(3, "30s"),
        think: "100ms",
        rest: &rest,
    }
    .scenario()
}

/// A PostgreSQL started on a dead node's data directory, on its own (no
/// Patroni), stopped when dropped.
struct Standalone {
    child: Child,
    port: u16,
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RealCluster {
    /// Starts the killed primary's data directory on a port of its own.
    fn dead_primary(&self) -> Standalone {
        let killed = std::fs::read_to_string(self.dir.path().join("killed-primary"))
            .expect("kill-primary ran");
        let node = killed.split_whitespace().next().unwrap().to_owned();
        let data = self.dir.path().join("patroni").join(&node);
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .unwrap()
            .flatten()
            .map(|v| v.path().join("bin"))
            .find(|b| b.join("postgres").exists())
            .unwrap();
        let port = free_port_run(1);
        // A node killed mid-write leaves its pid file; PostgreSQL checks the
        // pid is gone, which it is.
        let mut command = Command::new("setpriv");
        if !running_as_root() {
            command = Command::new(bin.join("postgres"));
        } else {
            command.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ]);
            command.arg(bin.join("postgres"));
        }
        let child = command
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-k")
            .arg(self.dir.path().join("run"))
            .stdout(std::fs::File::create(self.dir.path().join("log/dead-primary.log")).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let standalone = Standalone { child, port };
        for _ in 0..300 {
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                .status()
                .unwrap();
            if ready.success() {
                return standalone;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the dead primary's data did not start (see log/dead-primary.log)");
    }

    /// Whether a Patroni member answers as the primary now.
    fn promoted(&self) -> bool {
        self.env["PATRONI_REST_PORTS"]
            .trim_matches('"')
            .split_whitespace()
            .any(|port| {
                Command::new("curl")
                    .args([
                        "-s",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code}",
                        "--max-time",
                        "2",
                    ])
                    .arg(format!("http://127.0.0.1:{port}/primary"))
                    .output()
                    .is_ok_and(|o| o.stdout == b"200")
            })
    }

    /// The Patients' ids on the PostgreSQL at `port`.
    fn patient_ids_at(port: u16) -> BTreeSet<String> {
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-U", "hapi", "-d", "hapi", "-At", "-c"])
            .arg("SELECT fhir_id FROM hfj_resource WHERE res_type = 'Patient'")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A run through the failover; what surge found, and the Patients the
/// dead primary holds that the promoted one does not.
async fn through_failover(mode: &str) -> Option<Failover> {
    if !patroni_present() {
        return None;
    }
    let cluster = RealCluster::up(&["--replicas", "1", "--patroni", mode, "--no-seed"])?;
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_file(dir.path(), "hapi-failover", &registrations(&cluster));
    let results = surge_run(RunRequest {
        scenario,
        out_dir: dir.path().join("out"),
        ..Default::default()
    })
    .await;
    let promoted = cluster
        .promoted()
        .then(|| RealCluster::patient_ids_at(cluster.port("PG_PORT")));
    let dead = cluster.dead_primary();
    let held = RealCluster::patient_ids_at(dead.port);
    eprintln!(
        "the dead primary held {} Patients; the promoted one: {:?}",
        held.len(),
        promoted.as_ref().map(BTreeSet::len)
    );
    Some(Failover {
        results,
        held,
        promoted,
    })
}

/// What a run through the failover found, and the two databases' rows.
struct Failover {
    results: RunResults,
    /// Patients on the killed primary's disk.
    held: BTreeSet<String>,
    /// Patients on the promoted primary; `None` when none was promoted.
    promoted: Option<BTreeSet<String>>,
}

/// Writes began to fail at about the cut (synchronous commits hang from
/// it; asynchronous ones fail once the primary dies 1.5 s later); most
/// writes meanwhile wait rather than fail (pgBouncer holds them until a
/// primary answers), so the outage's count is the few that failed.
fn assert_outage_began_at_the_cut(r: &RunResults) -> surge::bundle::Outage {
    let w = &r.consistency.writes;
    let outage = w.outage.expect("writes failed");
    let cut = r.chaos.as_ref().expect("the chaos step ran").events[0].at_s;
    assert!(
        (cut - 0.5..=cut + 4.0).contains(&outage.from_s),
        "the outage began at {} s, the link cut at {cut} s: {w:?}",
        outage.from_s
    );
    // Writes that waited are in the stall, beside those that failed: it
    // holds the outage (a write sent before the first failure may succeed
    // just after it, and the stall then begins at that success).
    let stall = w.stall.expect("writes were sent");
    assert!(
        stall.from_s <= outage.from_s + 0.5 && stall.to_s + 0.5 >= outage.to_s,
        "stall {stall:?}, outage {outage:?}"
    );
    outage
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asynchronous_patroni_failover_loses_exactly_the_writes_the_standby_never_received() {
    let _turn = engine_lock().await;
    let Some(f) = through_failover("async").await else {
        return;
    };
    let r = &f.results;
    let promoted = f.promoted.as_ref().expect("Patroni promoted the standby");
    let truth: BTreeSet<String> = f.held.difference(promoted).cloned().collect();
    let audit = r.consistency.writes.audit.as_ref().expect("audited");
    assert!(
        !truth.is_empty(),
        "1.5 s cut off from its standby lost nothing"
    );
    let lost: BTreeSet<String> = audit.lost_writes.iter().map(|l| l.id.clone()).collect();
    assert_eq!(lost, truth, "{audit:?}");
    assert_eq!(audit.lost, truth.len() as u64);
    // Every acknowledged write answered for, present or lost; a write the
    // audit could not read within its window (one, in one run here) is
    // unanswered, never counted present, and leaves the gate unjudged.
    assert_eq!(
        audit.present + audit.lost + audit.unanswered,
        audit.acknowledged,
        "{audit:?}"
    );
    assert!(audit.unanswered <= 2, "{audit:?}");
    let outage = assert_outage_began_at_the_cut(r);
    assert!(
        outage.to_s < 28.0,
        "writes succeed again after the promotion: {outage:?}"
    );
    let lost_gate = r
        .thresholds
        .iter()
        .find(|t| t.metric == "writes.lost")
        .unwrap();
    assert!(!lost_gate.passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strictly_synchronous_patroni_cluster_loses_no_acknowledged_write_and_does_not_fail_over()
{
    let _turn = engine_lock().await;
    let Some(f) = through_failover("sync").await else {
        return;
    };
    let r = &f.results;
    // Patroni promotes no standby that may lack an acknowledged write: the
    // one cut off is no longer the synchronous one, so nobody is promoted
    // and the writes fail from the cut to the run's end.
    assert_eq!(
        f.promoted, None,
        "a cut-off synchronous standby was promoted"
    );
    let outage = assert_outage_began_at_the_cut(r);
    assert!(
        outage.to_s >= 28.0,
        "the outage lasts to the end: {outage:?}"
    );
    // surge cannot read any write back, so it claims nothing about losses.
    let audit = r.consistency.writes.audit.as_ref().expect("audited");
    assert!(audit.acknowledged >= 30, "{audit:?}");
    assert_eq!(
        (audit.present, audit.lost, audit.unanswered),
        (0, 0, audit.acknowledged),
        "{audit:?}"
    );
    let lost_gate = r
        .thresholds
        .iter()
        .find(|t| t.metric == "writes.lost")
        .unwrap();
    assert!(
        !lost_gate.passed && lost_gate.measured.is_none(),
        "{lost_gate:?}"
    );
    // The truth: every acknowledged write is on the dead primary's disk,
    // nothing acknowledged went only to a standby that could be lost.
    assert!(
        f.held.len() as u64 >= audit.acknowledged,
        "{} < {audit:?}",
        f.held.len()
    );
}
