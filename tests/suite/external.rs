//! The verdicts through real infrastructure: sessions shared through a real
//! Redis, and the session and attachment matrix behind a real HAProxy (both
//! Debian packages that `.ci/run` installs; the tests start them on loopback).

use crate::common::*;
use std::time::Duration;
use surge::bundle::RunResults;
use surge::bundle::Verdict;
use surge_sim::replica::ServiceOptions;
use surge_sim::sessions::SessionStoreKind;
use surge_sim::{AttachmentStore, Cluster, ClusterOptions};

const CLOSED: &str = "[load]\nmodel = \"closed\"\n[[load.stages]]\nusers = 6\nhold = \"4s\"\n";

async fn clinic_through(url: &str, load: &str) -> RunResults {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario_file(dir.path(), "clinic", &clinic(url, load));
    run(path, None, None, &dir.path().join("reports"))
        .await
        .results
}

/// Replicas on fixed ports (so HAProxy can name them) and HAProxy in front.
async fn behind_haproxy(mut options: ClusterOptions, sticky: bool) -> Option<(Cluster, Server)> {
    let base = free_port_run(3);
    options.replica_port_base = Some(base);
    let haproxy = haproxy(base, 3, sticky).await?;
    let cluster = cluster(options).await;
    // Let HAProxy's health checks see every replica up (rise 2 × 200 ms).
    tokio::time::sleep(Duration::from_millis(700)).await;
    Some((cluster, haproxy))
}

fn sessions(store: SessionStoreKind) -> ServiceOptions {
    ServiceOptions {
        sessions: store,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_shared_through_redis_survive_round_robin() {
    let _engine = engine_lock().await;
    let Some(redis) = redis().await else { return };
    let cluster = cluster(ClusterOptions {
        balancing: surge_sim::balancer::Balancing::RoundRobin,
        service: ServiceOptions {
            sessions: SessionStoreKind::Redis,
            redis_url: Some(redis.url.clone()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let r = clinic_through(&cluster.url, CLOSED).await;
    cluster.shutdown().await;
    assert_eq!(r.sessions.drops, 0, "{:?}", r.sessions.transitions);
    assert!(
        r.sessions.switches > 50,
        "round-robin moved sessions between replicas: {}",
        r.sessions.switches
    );
    assert_eq!(
        r.overall.failed,
        0,
        "{}",
        surge::report::terminal_summary(&r)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_round_robin_with_shared_sessions_never_drops() {
    let _engine = engine_lock().await;
    let options = ClusterOptions {
        service: sessions(SessionStoreKind::Shared),
        ..Default::default()
    };
    let Some((cluster, haproxy)) = behind_haproxy(options, false).await else {
        return;
    };
    let r = clinic_through(&haproxy.url, CLOSED).await;
    cluster.shutdown().await;
    assert_eq!(r.sessions.drops, 0);
    assert!(r.sessions.switches > 50, "{}", r.sessions.switches);
    assert_eq!(r.replicas.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_round_robin_with_per_replica_sessions_drops() {
    let _engine = engine_lock().await;
    let options = ClusterOptions {
        service: sessions(SessionStoreKind::PerReplica),
        ..Default::default()
    };
    let Some((cluster, haproxy)) = behind_haproxy(options, false).await else {
        return;
    };
    let r = clinic_through(&haproxy.url, CLOSED).await;
    cluster.shutdown().await;
    let v = &r.sessions;
    assert!(v.drops > 20, "{v:?}");
    assert!(
        v.drops as f64 >= 0.9 * (v.drops + v.switches) as f64,
        "drops on nearly every switch: {v:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_cookie_stickiness_holds_sessions_until_a_replica_dies() {
    let _engine = engine_lock().await;
    let options = ClusterOptions {
        service: sessions(SessionStoreKind::PerReplica),
        restart_delay: Duration::from_secs(1),
        ..Default::default()
    };
    let Some((cluster, haproxy)) = behind_haproxy(options, true).await else {
        return;
    };
    let (victim, _, pid) = cluster.replicas()[1].clone();
    let pid = pid.unwrap();
    let killer = kill_after(pid, Duration::from_millis(2500));
    let load = "[load]\nmodel = \"closed\"\n[[load.stages]]\nusers = 9\nhold = \"6s\"\n";
    let r = clinic_through(&haproxy.url, load).await;
    killer.await.unwrap();
    cluster.shutdown().await;
    let v = &r.sessions;
    assert!(
        v.drops > 0,
        "the dead replica's users were moved and lost their sessions: {v:?}"
    );
    for d in &v.events {
        assert_eq!(d.before, victim, "only {victim}'s users drop: {d:?}");
        assert!(d.at_s > 2.0, "no drop before the kill: {d:?}");
    }
}

async fn uploads_through_haproxy(attachments: AttachmentStore) -> Option<RunResults> {
    let options = ClusterOptions {
        attachments,
        service: ServiceOptions {
            replication_delay: Duration::from_millis(400),
            ..Default::default()
        },
        ..Default::default()
    };
    let (cluster, haproxy) = behind_haproxy(options, true).await?;
    let dir = tempfile::tempdir().unwrap();
    let path = scenario_file(
        dir.path(),
        "uploads",
        &uploads(&haproxy.url, &replica_urls(&cluster), "600ms"),
    );
    let r = run(path, None, None, &dir.path().join("reports"))
        .await
        .results;
    cluster.shutdown().await;
    Some(r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_attachments_shared_are_ok_and_per_replica_are_missing() {
    let _engine = engine_lock().await;
    let Some(shared) = uploads_through_haproxy(AttachmentStore::Shared).await else {
        return;
    };
    let c = &shared.consistency;
    assert!(c.uploads >= 6);
    assert_eq!(c.count(Verdict::Ok), 3 * c.uploads, "{:?}", c.verdicts);

    let Some(local) = uploads_through_haproxy(AttachmentStore::PerReplica).await else {
        return;
    };
    let c = &local.consistency;
    assert!(c.uploads >= 6);
    assert_eq!(c.count(Verdict::Ok), c.uploads, "{:?}", c.verdicts);
    assert_eq!(c.count(Verdict::Missing), 2 * c.uploads, "{:?}", c.verdicts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_attachments_replicated_late_are_stale_with_the_lag_measured() {
    let _engine = engine_lock().await;
    let Some(r) = uploads_through_haproxy(AttachmentStore::Replicated).await else {
        return;
    };
    let c = &r.consistency;
    assert!(c.uploads >= 5);
    assert_eq!(c.count(Verdict::Stale), 2 * c.uploads, "{:?}", c.verdicts);
    // The time until visible is when a read first found the bytes: at most
    // one polling pause after the truth. Reads go at 0, 100, 250 and 475 ms
    // (pauses grow 1.5x from [verify] poll = 100 ms), so a 400 ms lag is
    // seen at about 475 ms plus the read's own time, never before 400.
    assert!(
        (350.0..=650.0).contains(&c.visible.p50),
        "median {:.0} ms for a 400 ms delay",
        c.visible.p50
    );
}
