//! Read-backs are load the cluster carries, counted against what the
//! replicas themselves received (each sim replica's `--capture-dir` file:
//! one line per request it served; the scenario itself never GETs an
//! upload's bytes, so every such line is a read-back). Both ways: through
//! the balancer for uploads that never appear (many reads, over the budget,
//! said so), and straight from each listed replica for uploads that appear at
//! once (a read each, within the same budget, not said). And a sticky
//! balancer's cookie as the replica's name: mapped to the replicas stated
//! for it, unmapped when stated for none. And calibration's steps from a
//! multi-stage bundle: each has the read-backs sent in its own seconds.

use crate::common::*;
use std::collections::BTreeMap;
use std::path::Path;
use surge::bundle::{RunResults, Verdict, UNMAPPED_REPLICA};
use surge_sim::{AttachmentStore, ClusterOptions};

/// The budget both runs of the budget test are judged against: a healthy
/// check of 3 replicas reads each upload 3 times, one upload per request.
const BUDGET: &str = "budget = 4.0";

/// Read-backs each replica received, by its capture file: GETs of an
/// upload's bytes (the scenario's own requests are POSTs of uploads).
fn read_backs_received(dir: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(replica) = name
            .strip_prefix("capture-")
            .and_then(|n| n.strip_suffix(".jsonl"))
        else {
            continue;
        };
        let text = std::fs::read_to_string(&path).unwrap();
        let reads = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| {
                v["method"] == "GET"
                    && v["path"].as_str().is_some_and(|p| {
                        p.starts_with("/openmrs/ws/rest/v1/attachment/") && p.ends_with("/bytes")
                    })
            })
            .count() as u64;
        out.insert(replica.to_owned(), reads);
    }
    out
}

/// Uploads (3 users for 3 s) against the reference cluster with
/// `attachments`, the replicas listed for direct read-back or not; the
/// results, the terminal summary, and what each replica received.
async fn uploads_counted(
    attachments: AttachmentStore,
    list_replicas: bool,
) -> (RunResults, String, BTreeMap<String, u64>) {
    let captures = tempfile::tempdir().unwrap();
    let cluster = cluster(ClusterOptions {
        attachments,
        capture_dir: Some(captures.path().to_path_buf()),
        ..Default::default()
    })
    .await;
    let listed = if list_replicas {
        replica_urls(&cluster)
    } else {
        Vec::new()
    };
    let body = uploads(&cluster.url, &listed, "1s")
        .replace("poll = \"25ms\"", &format!("poll = \"25ms\"\n{BUDGET}"));
    let dir = tempfile::tempdir().unwrap();
    let path = scenario_file(dir.path(), "uploads", &body);
    let r = run(path, None, None, &dir.path().join("reports"))
        .await
        .results;
    cluster.shutdown().await;
    let summary = surge::report::terminal_summary(&r);
    eprintln!("{summary}");
    (r, summary, read_backs_received(captures.path()))
}

/// Surge's count of read-backs per replica, of one kind.
fn counted(
    r: &RunResults,
    of: fn(&surge::bundle::ReadBackReplica) -> u64,
) -> BTreeMap<String, u64> {
    r.consistency
        .read_backs
        .replicas
        .iter()
        .map(|rb| (rb.replica.clone(), of(rb)))
        .collect()
}

/// The line saying what the cluster carried, with the run's own figures.
fn carried_line(r: &RunResults) -> String {
    let rb = &r.consistency.read_backs;
    let own = r.totals.issued;
    format!(
        "the cluster carried {} requests: {own} of the scenario's own and {} read-backs of uploads ({} direct, {} through the balancer)",
        own + rb.total(),
        rb.total(),
        rb.direct(),
        rb.through_balancer()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_backs_through_the_balancer_are_counted_as_the_replicas_received_them() {
    let _engine = engine_lock().await;
    // Nothing listed: every read goes through the balancer. Each upload is
    // on its own replica's disk only, so the two others are read until the
    // upload's window closes.
    let (r, summary, received) = uploads_counted(AttachmentStore::PerReplica, false).await;
    let c = &r.consistency;
    assert!(c.uploads >= 6, "{summary}");
    // Read through the balancer, a replica is reached only when the
    // balancer sends a read there: a pair it never reached in the window is
    // unverified, never ok.
    assert_eq!(c.count(Verdict::Ok), c.uploads, "{:?}", c.verdicts);
    assert_eq!(
        c.count(Verdict::Missing) + c.count(Verdict::Unverified),
        2 * c.uploads,
        "{:?}",
        c.verdicts
    );
    assert!(c.count(Verdict::Missing) > c.uploads, "{:?}", c.verdicts);
    let rb = &c.read_backs;
    assert_eq!(rb.direct(), 0, "{rb:?}");
    assert!(rb.through_balancer() > 0, "{rb:?}");
    // Per replica, surge counted exactly what the replica served.
    assert_eq!(counted(&r, |x| x.through_balancer), received, "{summary}");
    assert_eq!(received.len(), 3, "{received:?}");
    assert!(received.values().all(|n| *n > 0), "{received:?}");
    assert_eq!(rb.replicas.iter().map(|x| x.failed).sum::<u64>(), 0);
    // Reads of 2 replicas per upload for a 1 s window: many per request.
    let ratio = rb.ratio_to(r.totals.issued).unwrap();
    assert!(ratio > 4.0, "{ratio:.1}× the scenario's own requests");
    assert!(rb.over_budget(r.totals.issued));
    assert!(summary.contains("read-backs of uploads"), "{summary}");
    assert!(summary.contains(&carried_line(&r)), "{summary}");
    assert!(
        summary.contains(&format!(
            "OVER BUDGET: read-backs were {ratio:.1}× the scenario's own requests, budget 4×"
        )),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_read_backs_of_uploads_seen_at_once_stay_within_the_budget() {
    let _engine = engine_lock().await;
    // Every replica listed, one shared disk: each upload is judged by one
    // direct read per replica and never read through the balancer.
    let (r, summary, received) = uploads_counted(AttachmentStore::Shared, true).await;
    let c = &r.consistency;
    assert!(c.uploads >= 6, "{summary}");
    assert_eq!(c.count(Verdict::Ok), 3 * c.uploads, "{:?}", c.verdicts);
    let rb = &c.read_backs;
    assert_eq!(rb.through_balancer(), 0, "{rb:?}");
    assert_eq!(
        rb.direct(),
        3 * c.uploads,
        "one read per upload and replica"
    );
    assert_eq!(counted(&r, |x| x.direct), received, "{summary}");
    assert!(!rb.over_budget(r.totals.issued), "{rb:?}");
    assert!(summary.contains("read-backs of uploads"), "{summary}");
    assert!(summary.contains(&carried_line(&r)), "{summary}");
    assert!(!summary.contains("OVER BUDGET"), "{summary}");
}

/// Uploads kept on each replica's own disk behind the sim's sticky
/// balancer, the replica named by its cookie (`openmrs_session=r2`), the
/// first `stated` replicas listed with the cookie value they answer as.
async fn uploads_named_by_cookie(stated: usize) -> RunResults {
    let cluster = cluster(ClusterOptions {
        attachments: AttachmentStore::PerReplica,
        ..Default::default()
    })
    .await;
    let listed: Vec<String> = cluster
        .replicas()
        .into_iter()
        .take(stated)
        .map(|(name, url, _)| format!("{{ url = \"{}\", answers_as = \"{name}\" }}", url.unwrap()))
        .collect();
    let body = uploads(&cluster.url, &[], "600ms")
        .replace(
            "replica_header = \"X-Served-By\"",
            "replica_cookie = \"openmrs_session\"",
        )
        .replace(
            "replicas = []",
            &format!("replicas = [{}]", listed.join(", ")),
        );
    let dir = tempfile::tempdir().unwrap();
    let path = scenario_file(dir.path(), "sticky", &body);
    let r = run(path, None, None, &dir.path().join("reports"))
        .await
        .results;
    cluster.shutdown().await;
    eprintln!("{}", surge::report::terminal_summary(&r));
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sticky_cookie_names_the_replica_stated_for_it_and_no_other() {
    let _engine = engine_lock().await;
    // All three stated: the cookie's r1/r2/r3 and the listed URLs are one
    // replica each, so each upload is missing on exactly the two others.
    let r = uploads_named_by_cookie(3).await;
    let c = &r.consistency;
    assert!(c.uploads >= 6, "{c:?}");
    assert_eq!(c.count(Verdict::Ok), c.uploads, "{:?}", c.verdicts);
    // Read through the balancer, a replica is reached only when the
    // balancer sends a read there: a pair it never reached in the window is
    // unverified, never ok.
    assert_eq!(c.count(Verdict::Ok), c.uploads, "{:?}", c.verdicts);
    assert_eq!(
        c.count(Verdict::Missing) + c.count(Verdict::Unverified),
        2 * c.uploads,
        "{:?}",
        c.verdicts
    );
    assert!(c.count(Verdict::Missing) > c.uploads, "{:?}", c.verdicts);
    let names = |r: &RunResults| {
        r.replicas
            .iter()
            .map(|s| s.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&r), ["r1", "r2", "r3"]);
    assert_eq!(c.replicas.len(), 3, "{:?}", c.replicas);
    assert_eq!(r.attribution.unmapped_total(), 0, "{:?}", r.attribution);
    // Two stated: the third's cookie value is unmapped, never a replica.
    let r = uploads_named_by_cookie(2).await;
    assert_eq!(
        r.attribution.unmapped.keys().collect::<Vec<_>>(),
        ["r3"],
        "{:?}",
        r.attribution
    );
    assert_eq!(names(&r), ["r1", "r2", UNMAPPED_REPLICA]);
    assert_eq!(
        r.consistency
            .replicas
            .iter()
            .map(|rc| rc.replica.as_str())
            .collect::<Vec<_>>(),
        ["r1", "r2"]
    );
}

/// Calibration from a bundle whose stages climbed: each step gets the
/// read-backs sent in its own seconds (three per upload here: one per
/// listed replica, all ok at once), so the calibration table and the
/// capacity's reason can say what the cluster carried at every step. A
/// bundle that does not say when its read-backs were sent (written before
/// `per_second` was kept) gives none, rather than a guess.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stage_of_a_climb_has_its_own_read_backs() {
    let _engine = engine_lock().await;
    let cluster = cluster(ClusterOptions {
        attachments: AttachmentStore::Shared,
        ..Default::default()
    })
    .await;
    let closed = "[load]\nmodel = \"closed\"\n[[load.stages]]\nusers = 3\nhold = \"3s\"\n";
    let open = "[load]\nmodel = \"open\"\nmax_users = 20\n\
                [[load.stages]]\nrate = 4\nhold = \"3s\"\n\
                [[load.stages]]\nrate = 8\nhold = \"3s\"\n";
    let body = uploads(&cluster.url, &replica_urls(&cluster), "1s");
    assert!(body.contains(closed));
    let dir = tempfile::tempdir().unwrap();
    let path = scenario_file(dir.path(), "climb", &body.replace(closed, open));
    let report = run(path, None, None, &dir.path().join("reports")).await;
    cluster.shutdown().await;
    let r = &report.results;
    assert_eq!(r.stages.len(), 2);
    assert_eq!(r.consistency.read_backs.through_balancer(), 0);
    let steps = surge::run::staircase::steps_from_bundle(&report.bundle).unwrap();
    for (i, s) in steps.iter().enumerate() {
        let rb = s
            .read_backs_per_s
            .unwrap_or_else(|| panic!("step {}: {s:?}", i + 1));
        let expected = 3.0 * s.achieved;
        assert!(
            (rb - expected).abs() <= 0.25 * expected,
            "step {}: {rb:.1} read-backs/s for {:.1} uploads/s on 3 replicas",
            i + 1,
            s.achieved
        );
    }
    assert!(steps[1].read_backs_per_s > steps[0].read_backs_per_s);
    let table = surge::report::staircase_table(&steps);
    eprintln!("{table}");
    assert!(table.contains("read-backs/s"), "{table}");
    // The same bundle without the seconds its read-backs were sent in.
    let summary = report.bundle.join("summary.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let read_backs = &mut json["consistency"]["read_backs"];
    assert!(read_backs["per_second"].is_array(), "{read_backs}");
    read_backs.as_object_mut().unwrap().remove("per_second");
    std::fs::write(&summary, json.to_string()).unwrap();
    let steps = surge::run::staircase::steps_from_bundle(&report.bundle).unwrap();
    assert!(
        steps.iter().all(|s| s.read_backs_per_s.is_none()),
        "{steps:?}"
    );
    let table = surge::report::staircase_table(&steps);
    assert!(!table.contains("read-backs/s"), "{table}");
}
