//! Chaos on a Deployment the real controllers keep, its pods run as
//! processes by the node double (reference-cluster replicas listening on
//! their pod addresses), traffic sent through the reference balancer
//! following the Service's EndpointSlices, as an ingress controller does.
//! Each verdict both ways: sessions kept per pod drop with the pod (only
//! its users'), shared ones never; a readiness-gated rollout with a
//! shutdown pause fails no request, one without readiness does.

use crate::clinic::*;
use crate::*;
use std::sync::Arc;
use surge::bundle::{Outcome, RunResults as Results};

/// Per-pod sessions or shared ones, a 3 s start-up, a readiness probe.
fn kill_workload(sessions: Sessions) -> Workload {
    Workload {
        sessions,
        readiness: true,
        start_delay: "3s",
        shutdown_delay: "0s",
        replicas: 3,
        balancing: "sticky",
        service: "",
    }
}

/// Kills the oldest pod 3 s into a 12 s run: what the kill recorded, the
/// pods before and after, and the run.
async fn kill_oldest(clinic: &Clinic) -> KillSeen {
    kill_oldest_within(clinic, 3.0..=6.0).await
}

/// What a kill showed: the event, the pods before and after, the run and
/// what surge printed.
type KillSeen = (
    surge::bundle::ChaosEvent,
    BTreeSet<String>,
    BTreeSet<String>,
    Results,
    String,
);

/// [`kill_oldest`], its recovery expected within `recovery` seconds.
async fn kill_oldest_within(
    clinic: &Clinic,
    recovery: std::ops::RangeInclusive<f64>,
) -> (
    surge::bundle::ChaosEvent,
    BTreeSet<String>,
    BTreeSet<String>,
    Results,
    String,
) {
    let before = pod_names(&clinic.pods(), "").await;
    let (results, text) = clinic.chaos_run("kill-pod:oldest@3s", "14s").await;
    let chaos = results.chaos.clone().expect("chaos recorded");
    let kill = chaos.events[0].clone();
    assert_eq!(kill.outcome, Outcome::Done, "{text}");
    assert!(
        before.contains(&kill.target[0]),
        "a pod that was there: {text}"
    );
    // The replacement is the real ReplicaSet controller's; surge's recovery
    // is its start-up (3 s until it listens, then its probe every second)
    // plus the controllers' and the node's lag (a look every 100 ms).
    let ready_after = kill.ready_after_s.expect("replicas ready again");
    assert!(
        recovery.contains(&ready_after),
        "recovery {ready_after:.1} s for a 3 s start-up and a 1 s probe: {text}"
    );
    assert_eq!(chaos.pod_startup_s, vec![ready_after]);
    let counts: Vec<u32> = chaos.replica_counts.iter().map(|c| c.ready).collect();
    assert!(
        counts.windows(2).any(|w| w == [2, 3]),
        "3 → 2 → 3: {counts:?}"
    );
    let after = pod_names(&clinic.pods(), "").await;
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(!after.contains(&kill.target[0]), "the victim is gone");
    assert_eq!(after.difference(&before).count(), 1, "one replacement");
    (kill, before, after, results, text)
}

#[test]
fn a_killed_pod_drops_exactly_its_users_sessions_when_sessions_are_per_pod() {
    netns::run(|| async {
        let _turn = engine_lock().await;
        let clinic = Clinic::open(&kill_workload(Sessions::PerPod)).await;
        let (kill, before, _, r, text) = kill_oldest(&clinic).await;
        let victim = &kill.target[0];
        // Nine users, each sticky to the pod the balancer first gave it
        // (round-robin over three): the victim had three, and exactly
        // those three lost their sessions, once each.
        let s = &r.sessions;
        assert_eq!(s.drops, 3, "the victim's three users: {text}");
        assert!(
            s.events.iter().all(|d| &d.before == victim),
            "only {victim}'s users drop: {:?}",
            s.events
        );
        assert_eq!(s.drops_during_chaos, 3);
        // Every pod served under its own name: the balancer followed the
        // Service's endpoints, the pod's name is the replica's.
        let served: BTreeSet<&String> = r.replicas.iter().map(|s| &s.name).collect();
        assert!(
            before.iter().all(|p| served.contains(p)),
            "{served:?} vs {before:?}"
        );
    })
}

#[test]
fn a_killed_pod_drops_no_session_when_sessions_are_shared() {
    netns::run(|| async {
        let _turn = engine_lock().await;
        let clinic = Clinic::open(&kill_workload(Sessions::Shared)).await;
        let (kill, _, _, r, text) = kill_oldest(&clinic).await;
        let s = &r.sessions;
        assert_eq!(s.drops, 0, "shared sessions survive the pod: {text}");
        assert!(
            s.switches > 0,
            "{}'s users moved to another pod: {text}",
            kill.target[0]
        );
    })
}

/// Runs a rollout-restart 2 s into a 20 s run: the run, the pods before
/// and after, what surge printed, and how long the rollout took as the
/// controllers saw it (every new pod Ready, no old one).
async fn rollout(clinic: &Clinic) -> (Results, BTreeSet<String>, BTreeSet<String>, f64, String) {
    let before = pod_names(&clinic.pods(), "").await;
    let (r, text) = clinic.chaos_run("rollout-restart@2s", "20s").await;
    let restart = &r.chaos.as_ref().expect("chaos recorded").events[0];
    assert_eq!(restart.outcome, Outcome::Done, "{text}");
    assert_eq!(restart.target, ["deployment/hapi"], "{text}");
    let took = restart.ready_after_s.expect("the rollout finished");
    let after = pod_names(&clinic.pods(), "").await;
    assert!(
        after.is_disjoint(&before),
        "every pod replaced: {before:?} → {after:?}"
    );
    (r, before, after, took, text)
}

#[test]
fn a_readiness_gated_rollout_with_shared_sessions_fails_nothing_and_drops_no_one() {
    netns::run(|| async {
        let _turn = engine_lock().await;
        let clinic = Clinic::open(&Workload {
            sessions: Sessions::Shared,
            readiness: true,
            start_delay: "1s",
            shutdown_delay: "2s",
            replicas: 3,
            balancing: "sticky",
            service: "",
        })
        .await;
        let (r, _, after, took, text) = rollout(&clinic).await;
        // The balancer followed the endpoints: every new pod took traffic.
        let served: BTreeSet<&String> = r.replicas.iter().map(|s| &s.name).collect();
        assert!(
            after.iter().all(|p| served.contains(p)),
            "the new pods served: {served:?}"
        );
        // One surge pod at a time (maxSurge 25% of 3 rounds up to 1), each
        // Ready after its 1 s start-up and its first probe.
        assert!(
            (3.0..=15.0).contains(&took),
            "rollout of 3 pods took {took:.1} s: {text}"
        );
        assert_eq!(
            r.overall.failed, 0,
            "the seeds' zero-downtime upgrade: {text}"
        );
        assert_eq!(r.sessions.drops, 0, "{text}");
        assert!(r.sessions.switches > 0, "users moved pods: {text}");
    })
}

#[test]
fn a_rollout_without_readiness_fails_requests_and_drops_the_replaced_pods_users() {
    netns::run(|| async {
        let _turn = engine_lock().await;
        let clinic = Clinic::open(&Workload {
            sessions: Sessions::PerPod,
            readiness: false,
            start_delay: "1s",
            shutdown_delay: "0s",
            replicas: 3,
            balancing: "sticky",
            service: "",
        })
        .await;
        let (r, before, _, took, text) = rollout(&clinic).await;
        // Each new pod was Ready as its process started, a second before
        // it listened: the controllers finished the rollout before any new
        // pod could answer, and requests sent there failed.
        assert!(
            took < 1.0,
            "the controllers saw the rollout done in {took:.1} s: {text}"
        );
        assert!(r.overall.failed > 0, "{text}");
        let s = &r.sessions;
        assert!(s.drops > 0, "{text}");
        assert!(
            s.events.iter().all(|d| before.contains(&d.before)),
            "only users of replaced pods drop: {:?}",
            s.events
        );
    })
}

#[test]
fn an_api_server_restart_mid_run_loses_no_pod_event() {
    netns::run(|| async {
        let _turn = engine_lock().await;
        let clinic = Arc::new(Clinic::open(&kill_workload(Sessions::PerPod)).await);
        // The kill at 3 s; half a second later the API server goes away
        // (its watches end: surge's, the balancer's, the controllers') and
        // comes back; the replacement's readiness can only be written, and
        // seen, after that.
        let restart = tokio::task::spawn_blocking({
            let clinic = Arc::clone(&clinic);
            move || {
                std::thread::sleep(Duration::from_millis(3500));
                let began = std::time::Instant::now();
                clinic.plane.restart_apiserver();
                began.elapsed()
            }
        });
        let (kill, _, _, r, text) = kill_oldest_within(&clinic, 3.0..=20.0).await;
        let away = restart.await.unwrap();
        eprintln!("the API server was away for {away:?}");
        // surge saw the replacement Ready through its resumed watch, and
        // the sessions verdict is the same as without the restart.
        let ready = kill.ready_after_s.unwrap();
        assert!(ready >= 3.0, "{ready}: {text}");
        assert_eq!(r.sessions.drops, 3, "{text}");
        assert!(!text.contains("chaos stopped"), "{text}");
    })
}

#[test]
fn a_pod_killed_with_a_grace_period_is_not_ready_while_it_terminates() {
    netns::run(|| async {
        let _turn = engine_lock().await;
        // Each replica keeps answering 3 s after SIGTERM; the kill gives it
        // 5 s. The victim is Terminating for those 3 s, its Ready condition
        // still true as its node last wrote it.
        let clinic = Clinic::open(&Workload {
            shutdown_delay: "3s",
            ..kill_workload(Sessions::PerPod)
        })
        .await;
        let (r, text) = clinic
            .chaos_run_with("kill-pod:oldest@3s", "14s", &["--grace-period", "5s"])
            .await;
        let chaos = r.chaos.as_ref().expect("chaos recorded");
        let kill = &chaos.events[0];
        assert_eq!(kill.outcome, Outcome::Done, "{text}");
        assert!(kill.answer.contains("grace period 5 s"), "{}", kill.answer);
        // surge counted it out at once, not when its process ended: two
        // ready within a second of the kill, and the recovery is the
        // replacement's start-up, not the victim's shutdown plus it.
        let early_dip = chaos
            .replica_counts
            .iter()
            .any(|c| c.ready == 2 && c.at_s >= kill.at_s && c.at_s < kill.at_s + 1.0);
        assert!(early_dip, "{:?}", chaos.replica_counts);
        let ready = kill.ready_after_s.expect("replicas ready again");
        assert!((3.0..=6.0).contains(&ready), "{ready}: {text}");
        // The balancer stopped sending to it when it began terminating: its
        // users moved then, each dropping its session once.
        assert_eq!(r.sessions.drops, 3, "{text}");
        let victim = &kill.target[0];
        assert!(r.sessions.events.iter().all(|d| &d.before == victim));
        let first = r
            .sessions
            .events
            .iter()
            .map(|d| d.at_s)
            .fold(f64::MAX, f64::min);
        assert!(
            first < kill.at_s + 1.0,
            "dropped at {first} s, the kill at {} s",
            kill.at_s
        );
    })
}

#[test]
fn an_api_server_that_stops_answering_does_not_hold_the_runs_end() {
    netns::run(|| async {
        let _turn = engine_lock().await;
        let clinic = Clinic::open(&kill_workload(Sessions::PerPod)).await;
        // 2 s in, the API server stops answering (SIGSTOP: connections are
        // accepted, nothing comes back — a hung server, or a network that
        // drops its packets); the kill at 4 s waits on it. The run is 8 s.
        let pid: i32 = std::fs::read_to_string(clinic.plane.dir.path().join("pids/kube-apiserver"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let freeze = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            // SAFETY: kill(2) on the API server this test started.
            unsafe { libc::kill(pid, libc::SIGSTOP) };
        });
        let began = std::time::Instant::now();
        let (r, text) = clinic.chaos_run("kill-pod:oldest@4s", "8s").await;
        let took = began.elapsed();
        freeze.await.unwrap();
        // SAFETY: as above; the control plane is stopped by its Drop.
        unsafe { libc::kill(pid, libc::SIGCONT) };
        eprintln!("the run took {took:?}");
        // The run ends at 8 s, the chaos call abandoned 5 s after at most
        // (kube-rs would wait for its read timeout, 295 s); the load's
        // measurements are written and the chaos says what happened.
        assert!(took < Duration::from_secs(18), "{took:?}: {text}");
        let chaos = r.chaos.as_ref().expect("chaos recorded");
        let aborted = chaos.aborted.as_deref().unwrap_or("");
        assert!(aborted.contains("still waited on the API"), "{chaos:?}");
        assert!(r.overall.count > 0, "{text}");
    })
}
