//! Behind a real nginx (Debian's) that names the replica as its users do,
//! `add_header X-Upstream $upstream_addr`, with the same replicas listed for
//! direct read-back: one replica is one replica in every count, a retry
//! (`a:1, b:2`) is the last upstream's answer, a replica nobody listed is
//! unmapped, and the read-backs are counted as traffic. Both ways: uploads
//! kept on each replica's own disk must be missing on exactly the others;
//! shared ones must be ok everywhere.

use crate::common::*;
use surge::bundle::{RunResults, Verdict, UNMAPPED_REPLICA};
use surge_sim::replica::ServiceOptions;
use surge_sim::sessions::SessionStoreKind;
use surge_sim::{AttachmentStore, ClusterOptions};

/// Three replicas on fixed ports behind nginx with a dead fourth upstream
/// (so nginx retries); `listed` of them given under `[verify] replicas`.
/// The results and the replicas' addresses.
async fn uploads_behind_nginx(
    attachments: AttachmentStore,
    listed: usize,
) -> Option<(RunResults, Vec<String>)> {
    let base = free_port_run(4);
    let ports: Vec<u16> = (base..base + 3).collect();
    let nginx = nginx(&ports, Some(base + 3)).await?;
    let cluster = cluster(ClusterOptions {
        replica_port_base: Some(base),
        attachments,
        service: ServiceOptions {
            // nginx round-robins without stickiness: sessions must be shared.
            sessions: SessionStoreKind::Shared,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let direct: Vec<String> = ports[..listed]
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let body = uploads(&nginx.url, &direct, "600ms").replace(
        "replica_header = \"X-Served-By\"",
        "replica_header = \"X-Upstream\"",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = scenario_file(dir.path(), "uploads", &body);
    let r = run(path, None, None, &dir.path().join("reports"))
        .await
        .results;
    cluster.shutdown().await;
    drop(nginx);
    Some((r, addresses(ports)))
}

fn addresses(ports: impl IntoIterator<Item = u16>) -> Vec<String> {
    ports
        .into_iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_a_replica_is_counted_once_and_missing_pairs_are_exact() {
    let _engine = engine_lock().await;
    let Some((r, known)) = uploads_behind_nginx(AttachmentStore::PerReplica, 3).await else {
        return;
    };
    let summary = surge::report::terminal_summary(&r);
    let c = &r.consistency;
    assert!(c.uploads >= 6, "{summary}");
    // Each upload is on the disk of the replica that took it, and missing
    // on exactly the two others: 2 pairs per upload, not 4 or 5.
    assert_eq!(
        c.count(Verdict::Ok),
        c.uploads,
        "{:?}\n{summary}",
        c.verdicts
    );
    assert_eq!(
        c.count(Verdict::Missing),
        2 * c.uploads,
        "{:?}\n{summary}",
        c.verdicts
    );
    assert_eq!(
        c.verdicts.values().sum::<u64>(),
        3 * c.uploads,
        "{:?}",
        c.verdicts
    );
    assert_eq!(c.replicas.len(), 3, "{:?}", c.replicas);
    // Every count names the replicas one way: their address, never a
    // retry's list, never the URL beside the header's value.
    for s in &r.replicas {
        assert!(
            known.contains(&s.name),
            "load answered by {:?}\n{summary}",
            s.name
        );
    }
    for rc in &c.replicas {
        assert!(known.contains(&rc.replica), "read on {:?}", rc.replica);
    }
    for p in &c.problems {
        assert!(
            known.contains(&p.uploaded_on),
            "uploaded on {:?}",
            p.uploaded_on
        );
    }
    // nginx tried the dead upstream first on some requests: retries, counted
    // for the replica that answered.
    assert!(r.attribution.retries_total() > 0, "{:?}", r.attribution);
    assert!(
        r.attribution.retries.keys().all(|k| known.contains(k)),
        "{:?}",
        r.attribution
    );
    assert_eq!(r.attribution.unmapped_total(), 0, "{:?}", r.attribution);
    // Every replica has an address: no read-back went through the balancer,
    // and the direct ones are counted per replica and said.
    let rb = &c.read_backs;
    assert_eq!(rb.through_balancer(), 0, "{rb:?}");
    assert!(rb.direct() >= 3 * c.uploads, "{rb:?}");
    assert_eq!(rb.replicas.len(), 3, "{rb:?}");
    assert!(summary.contains("read-backs of uploads"), "{summary}");
    assert!(summary.contains("retries: "), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_shared_uploads_are_ok_and_an_unlisted_replica_is_unmapped() {
    let _engine = engine_lock().await;
    let Some((r, addresses)) = uploads_behind_nginx(AttachmentStore::Shared, 2).await else {
        return;
    };
    let summary = surge::report::terminal_summary(&r);
    let c = &r.consistency;
    assert!(c.uploads >= 6, "{summary}");
    // Two replicas listed, both see every upload; the third is not a replica
    // of this run but an unmapped value.
    assert_eq!(
        c.count(Verdict::Ok),
        2 * c.uploads,
        "{:?}\n{summary}",
        c.verdicts
    );
    assert_eq!(c.count(Verdict::Missing), 0, "{:?}", c.verdicts);
    assert_eq!(c.replicas.len(), 2, "{:?}", c.replicas);
    assert!(r.attribution.unmapped_total() > 0, "{:?}", r.attribution);
    assert_eq!(
        r.attribution.unmapped.keys().collect::<Vec<_>>(),
        [&addresses[2]],
        "{:?}",
        r.attribution
    );
    assert!(
        r.replicas.iter().any(|s| s.name == UNMAPPED_REPLICA),
        "{summary}"
    );
    assert_eq!(
        r.replicas.len(),
        3,
        "two replicas and `unmapped`: {summary}"
    );
    assert!(summary.contains("UNMAPPED: "), "{summary}");
    assert!(
        r.checks.iter().all(|ch| ch.passed),
        "{:?}\n{summary}",
        r.checks
    );
}
