//! Behind a real nginx (Debian's) that names the replica as its users do,
//! `add_header X-Upstream $upstream_addr`, with the same replicas listed for
//! direct read-back: one replica is one replica in every count, a retry
//! (`a:1, b:2`) is the last upstream's answer, a replica nobody listed is
//! unmapped, and the read-backs are counted as traffic. Both ways: uploads
//! kept on each replica's own disk must be missing on exactly the others;
//! shared ones must be ok everywhere.

use crate::common::*;
use std::collections::BTreeMap;
use surge::bundle::{RunResults, Verdict, UNMAPPED_REPLICA};
use surge_sim::replica::ServiceOptions;
use surge_sim::sessions::SessionStoreKind;
use surge_sim::{AttachmentStore, ClusterOptions};

/// Three replicas on fixed ports behind nginx with a dead fourth upstream
/// (so nginx retries); `listed` of them given under `[verify] replicas`.
/// The one login surge sends before the load to check the credentials.
const CREDENTIAL_CHECK: u64 = 1;

/// What nginx's own access log says it carried: requests per upstream
/// that answered (the last one tried), and how many it retried.
struct NginxLog {
    by_replica: BTreeMap<String, u64>,
    retried: u64,
}

fn nginx_log(nginx: &Server) -> NginxLog {
    let text = std::fs::read_to_string(nginx.file("access.log")).unwrap();
    let mut log = NginxLog {
        by_replica: BTreeMap::new(),
        retried: 0,
    };
    for line in text.lines() {
        let tried: Vec<&str> = line.split(',').map(str::trim).collect();
        log.retried += u64::from(tried.len() > 1);
        *log.by_replica
            .entry(tried[tried.len() - 1].to_owned())
            .or_default() += 1;
    }
    log
}

/// The results, the replicas' addresses, and nginx's own count.
async fn uploads_behind_nginx(
    attachments: AttachmentStore,
    listed: usize,
) -> Option<(RunResults, Vec<String>, NginxLog)> {
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
    let log = nginx_log(&nginx);
    drop(nginx);
    Some((r, addresses(ports), log))
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
    let Some((r, known, log)) = uploads_behind_nginx(AttachmentStore::PerReplica, 3).await else {
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
    // Against nginx's own access log: per replica, surge counted what nginx
    // relayed, give or take the one login surge tries before the load (not
    // load, in no table) and a request in flight at the stop (nginx's,
    // never answered to surge: cancelled); nginx's retries are the ones
    // surge counted.
    let slack = r.totals.cancelled + CREDENTIAL_CHECK;
    let relayed: u64 = log.by_replica.values().sum();
    let counted: u64 = r.replicas.iter().map(|s| s.count).sum();
    assert!(
        counted + CREDENTIAL_CHECK <= relayed && relayed <= counted + slack,
        "nginx relayed {relayed}, surge counted {counted}"
    );
    let ours: BTreeMap<&str, u64> = r
        .replicas
        .iter()
        .map(|s| (s.name.as_str(), s.count))
        .collect();
    assert_eq!(
        log.by_replica
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ours.keys().copied().collect::<Vec<_>>(),
        "{summary}"
    );
    for (replica, relayed) in &log.by_replica {
        let counted = ours[replica.as_str()];
        assert!(
            counted <= *relayed && *relayed <= counted + slack,
            "{replica}: nginx relayed {relayed}, surge counted {counted} (cancelled {slack})"
        );
    }
    let retries = r.attribution.retries_total();
    assert!(
        retries <= log.retried && log.retried <= retries + slack,
        "nginx retried {}, surge counted {retries}",
        log.retried
    );
    assert!(summary.contains("read-backs of uploads"), "{summary}");
    assert!(summary.contains("retries: "), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_shared_uploads_are_ok_and_an_unlisted_replica_is_unmapped() {
    let _engine = engine_lock().await;
    let Some((r, addresses, log)) = uploads_behind_nginx(AttachmentStore::Shared, 2).await else {
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
    // nginx's log: what the unlisted replica served is what surge counted
    // as unmapped, and each listed one's is its own (give or take the login
    // before the load and a request cancelled at the stop).
    let slack = r.totals.cancelled + CREDENTIAL_CHECK;
    for (replica, relayed) in &log.by_replica {
        let counted = if *replica == addresses[2] {
            r.attribution.unmapped[replica.as_str()]
        } else {
            r.replicas
                .iter()
                .find(|s| s.name == *replica)
                .map_or(0, |s| s.count)
        };
        assert!(
            counted <= *relayed && *relayed <= counted + slack,
            "{replica}: nginx relayed {relayed}, surge counted {counted} (cancelled {slack})\n{summary}"
        );
    }
    assert!(
        r.checks.iter().all(|ch| ch.passed),
        "{:?}\n{summary}",
        r.checks
    );
}
