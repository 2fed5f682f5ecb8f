//! Session continuity verdicts, each shown both ways: on a cluster that
//! shares sessions (or keeps clients sticky) no drop may be reported; on one
//! that loses them, drops must be reported — exactly where they happened.

use crate::common::*;
use std::time::Duration;
use surge::bundle::SessionVerdict;
use surge_sim::balancer::Balancing;
use surge_sim::replica::ServiceOptions;
use surge_sim::sessions::SessionStoreKind;
use surge_sim::ClusterOptions;

const CLOSED: &str = "[load]\nmodel = \"closed\"\n[[load.stages]]\nusers = 6\nhold = \"4s\"\n";

async fn run_clinic(cluster: &surge_sim::Cluster, load: &str) -> surge::bundle::RunResults {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario_file(dir.path(), "clinic", &clinic(&cluster.url, load));
    run(path, None, None, &dir.path().join("reports"))
        .await
        .results
}

fn sessions(store: SessionStoreKind) -> ServiceOptions {
    ServiceOptions {
        sessions: store,
        ..Default::default()
    }
}

fn show(v: &SessionVerdict) -> String {
    format!(
        "{} sessions, {} switches, {} drops {:?}",
        v.sessions, v.switches, v.drops, v.transitions
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_sessions_survive_round_robin() {
    let _engine = engine_lock().await;
    let cluster = cluster(ClusterOptions {
        balancing: Balancing::RoundRobin,
        service: sessions(SessionStoreKind::Shared),
        ..Default::default()
    })
    .await;
    let r = run_clinic(&cluster, CLOSED).await;
    cluster.shutdown().await;
    let v = &r.sessions;
    assert_eq!(v.drops, 0, "{}", show(v));
    assert!(
        v.switches > 50,
        "round-robin moves every request: {}",
        show(v)
    );
    assert_eq!(v.sessions, 6, "one login per user: {}", show(v));
    assert_eq!(r.overall.failed, 0);
    assert!(r.thresholds_passed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_replica_sessions_drop_on_nearly_every_switch() {
    let _engine = engine_lock().await;
    let cluster = cluster(ClusterOptions {
        balancing: Balancing::RoundRobin,
        service: sessions(SessionStoreKind::PerReplica),
        ..Default::default()
    })
    .await;
    let r = run_clinic(&cluster, CLOSED).await;
    cluster.shutdown().await;
    let v = &r.sessions;
    assert!(v.drops > 20, "{}", show(v));
    let moves = v.drops + v.switches;
    assert!(
        v.drops as f64 >= 0.9 * moves as f64,
        "drops on nearly every switch: {}",
        show(v)
    );
    assert!(
        v.relogins >= v.drops - 6,
        "users log in again after a drop: {}",
        show(v)
    );
    assert!(
        v.transitions.iter().all(|t| t.before != t.after),
        "a drop is a move between replicas"
    );
    assert!(!r.thresholds_passed(), "session.drops < 1 must fail");
    let text = surge::report::terminal_summary(&r);
    assert!(text.contains("dropped"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_sessions_hold_until_a_replica_dies_then_only_its_users_drop() {
    let _engine = engine_lock().await;
    let cluster = cluster(ClusterOptions {
        balancing: Balancing::Sticky,
        service: sessions(SessionStoreKind::PerReplica),
        restart_delay: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let load = "[load]\nmodel = \"closed\"\n[[load.stages]]\nusers = 9\nhold = \"6s\"\n";
    let (victim, _, pid) = cluster.replicas()[0].clone();
    let pid = pid.unwrap();
    let killer = kill_after(pid, Duration::from_millis(2500));
    let r = run_clinic(&cluster, load).await;
    killer.await.unwrap();
    cluster.shutdown().await;
    let v = &r.sessions;
    assert!(
        v.drops > 0,
        "the killed replica's users lost their sessions: {}",
        show(v)
    );
    for drop in &v.events {
        assert_eq!(drop.before, victim, "only {victim}'s users drop: {drop:?}");
        assert!(drop.at_s > 2.0, "no drop before the kill: {drop:?}");
    }
    assert!(
        v.drops <= 9,
        "each of the victim's users drops about once: {}",
        show(v)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_sessions_without_a_failure_never_drop() {
    let _engine = engine_lock().await;
    let cluster = cluster(ClusterOptions {
        balancing: Balancing::Sticky,
        service: sessions(SessionStoreKind::PerReplica),
        ..Default::default()
    })
    .await;
    let r = run_clinic(&cluster, CLOSED).await;
    cluster.shutdown().await;
    assert_eq!(r.sessions.drops, 0, "{}", show(&r.sessions));
    assert_eq!(r.sessions.switches, 0, "{}", show(&r.sessions));
    assert!(r.thresholds_passed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_drop_stop_takes_the_user_out_after_its_first_drop() {
    let _engine = engine_lock().await;
    let cluster = cluster(ClusterOptions {
        balancing: Balancing::RoundRobin,
        service: sessions(SessionStoreKind::PerReplica),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let text = clinic(&cluster.url, CLOSED).replace(
        "probe = \"check_session\"",
        "probe = \"check_session\"\non_drop = \"stop\"",
    );
    let path = scenario_file(dir.path(), "stop", &text);
    let r = run(path, None, None, &dir.path().join("reports"))
        .await
        .results;
    cluster.shutdown().await;
    let v = &r.sessions;
    assert_eq!(
        v.drops,
        6,
        "each of the 6 users drops once, then stops: {}",
        show(v)
    );
    assert_eq!(v.relogins, 0, "{}", show(v));
    assert_eq!(v.sessions, 6);
}

/// One user (so the balancer's round robin is deterministic), alternating a
/// request that carries the session with requests that do not: one with a
/// Cookie header of its own, one with its own Authorization. Only the first
/// kind may count as a replica switch, move the replica surge believes holds
/// the session, or be a drop.
fn mixed(base_url: &str) -> String {
    format!(
        r#"[target]
base_url = "{base_url}"
replica_header = "X-Served-By"
timeout = "5s"

[auth]
kind = "openmrs-basic"
username = "admin"
password = "Admin123"

[[feeders]]
name = "patient"
file = "patients.csv"

[load]
model = "closed"
[[load.stages]]
users = 1
hold = "3s"

[[personas]]
name = "clinician"
steps = [
  {{ request = "search", think = "10ms" }},
  {{ request = "public_with_own_cookie", think = "10ms" }},
  {{ request = "search", think = "10ms" }},
  {{ request = "fhir_with_own_token", think = "10ms" }},
]

[requests.search]
path = "/openmrs/ws/rest/v1/patient?q=${{patient.family}}&limit=5"
expect = {{ status = [200] }}

[requests.public_with_own_cookie]
path = "/healthz"
headers = {{ Cookie = "consent=1" }}

[requests.fhir_with_own_token]
path = "/healthz?fhir"
headers = {{ Authorization = "Bearer not-the-session" }}

[session]
preset = "openmrs"
"#
    )
}

async fn run_mixed(store: SessionStoreKind) -> surge::bundle::RunResults {
    let _engine = engine_lock().await;
    let cluster = cluster(ClusterOptions {
        balancing: Balancing::RoundRobin,
        service: sessions(store),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = scenario_file(dir.path(), "mixed", &mixed(&cluster.url));
    let r = run(path, None, None, &dir.path().join("reports"))
        .await
        .results;
    cluster.shutdown().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_the_session_neither_switch_nor_drop_it() {
    // Per-replica sessions: a session is good only on the replica that made
    // it, so it never really moves (0 switches), and every search answered
    // elsewhere is a drop from the session's own replica to another.
    let r = run_mixed(SessionStoreKind::PerReplica).await;
    let v = &r.sessions;
    let search = r.request("search").unwrap();
    let refused = search.statuses.get(&401).copied().unwrap_or(0);
    assert!(
        refused > 0,
        "round robin moves searches off their session's replica: {search:?}"
    );
    assert_eq!(v.drops, refused, "one drop per refused search: {}", show(v));
    assert_eq!(
        v.switches,
        0,
        "a session kept on one replica never switches: {}",
        show(v)
    );
    for t in &v.transitions {
        assert_ne!(
            t.before,
            t.after,
            "a drop from a replica to itself: {}",
            show(v)
        );
    }
    for e in &v.events {
        assert_eq!(
            e.request, "search",
            "only requests carrying the session drop it"
        );
    }
    // The requests without the session succeeded on whichever replica.
    assert_eq!(r.request("public_with_own_cookie").unwrap().failed, 0);
    assert_eq!(r.request("fhir_with_own_token").unwrap().failed, 0);

    // Shared sessions: no drop, and every search is a switch — the round
    // robin (login, search, other, search, other, ...) over 3 replicas never
    // sends two session requests in a row to the same replica — while the
    // requests without the session are not switches.
    let r = run_mixed(SessionStoreKind::Shared).await;
    let v = &r.sessions;
    let searches = r.request("search").unwrap().count;
    assert_eq!(v.drops, 0, "{}", show(v));
    assert_eq!(v.sessions, 1, "{}", show(v));
    assert!(searches > 10, "{searches}");
    // The last search may have been cut off mid-flight (cancelled): not answered.
    assert_eq!(v.switches, searches, "{}", show(v));
}
