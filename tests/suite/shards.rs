//! One test as three shard processes (`surge run --shard I/3 --start-at`)
//! on loopback, merged with `surge merge` into one bundle judged as one
//! test: arrivals add up to the plan, the merged histograms are the shards'
//! added bucket for bucket, feeder rows are never shared, the verdicts are
//! the union — drops where sessions live on one replica, none where they are
//! shared — and every merge that cannot be one test is refused.

use crate::common::*;
use hdrhistogram::Histogram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use surge::bundle::RunResults;
use surge_sim::balancer::Balancing;
use surge_sim::replica::ServiceOptions;
use surge_sim::sessions::SessionStoreKind;
use surge_sim::ClusterOptions;

const RATE: f64 = 30.0;
const SECONDS: u64 = 8;

/// Clinicians (login, search, session probe) and uploaders (an upload read
/// back from every replica) at `RATE` arrivals/s for `SECONDS`.
fn scenario(dir: &Path, base_url: &str, replicas: &[String]) -> PathBuf {
    let replicas: Vec<String> = replicas.iter().map(|u| format!("\"{u}\"")).collect();
    let body = format!(
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
order = "sequential"

[load]
model = "open"
max_users = 40
[[load.stages]]
rate = {RATE}
hold = "{SECONDS}s"

[[personas]]
name = "clinician"
weight = 3
steps = [
  {{ request = "search" }},
  {{ request = "check_session" }},
]

[[personas]]
name = "uploader"
weight = 1
steps = [{{ request = "upload" }}]

[requests.search]
path = "/openmrs/ws/rest/v1/patient?q=${{patient.family}}&limit=5"
expect = {{ status = [200] }}

[requests.check_session]
path = "/openmrs/ws/rest/v1/session"
expect = {{ status = [200], json_equals = {{ authenticated = true }} }}

[requests.upload]
method = "POST"
path = "/openmrs/ws/rest/v1/attachment"
multipart = [
  {{ name = "file", generate = {{ kind = "bin", size = "4KiB" }} }},
  {{ name = "patient", value = "${{patient.uuid}}" }},
]
expect = {{ status = [201] }}
consistency = {{ id = "uuid", read = "/openmrs/ws/rest/v1/attachment/${{id}}/bytes" }}

[session]
preset = "openmrs"
probe = "check_session"

[verify]
replicas = [{}]
visible_within = "2s"
poll = "25ms"

[thresholds]
"session.drops" = "< 1"
"attachments.missing" = "< 1"
"#,
        replicas.join(", ")
    );
    scenario_file(dir, "sharded", &body)
}

/// The three shards, started one after another but beginning together at
/// one `--start-at`; their bundle folders.
fn run_shards(scenario: &Path, out: &Path) -> Vec<PathBuf> {
    let start_at =
        humantime::format_rfc3339_millis(std::time::SystemTime::now() + Duration::from_secs(4))
            .to_string();
    let children: Vec<_> = (0..3)
        .map(|i| {
            Command::new(surge_bin())
                .arg("run")
                .arg(scenario)
                .args(["--shard", &format!("{i}/3"), "--start-at", &start_at])
                .arg("--no-progress")
                .arg("--out")
                .arg(out)
                .current_dir(repo())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let done = child.wait_with_output().unwrap();
        assert_eq!(done.status.code(), Some(0), "a shard ran: {}", text(&done));
    }
    let mut bundles: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    bundles.sort();
    assert_eq!(bundles.len(), 3, "{bundles:?}");
    bundles
}

fn merge(bundles: &[PathBuf], out: &Path, extra: &[&str]) -> (Output, Option<PathBuf>) {
    let mut args = vec!["merge".to_owned()];
    args.extend(bundles.iter().map(|b| b.display().to_string()));
    args.extend(["--out".to_owned(), out.display().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let done = surge(&args);
    let merged = std::fs::read_dir(out)
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.path());
    (done, merged)
}

/// Every latency histogram of `request` in a bundle, added.
fn request_histogram(dir: &Path, r: &RunResults, request: &str) -> Histogram<u64> {
    let mut sum = Histogram::<u64>::new(3).unwrap();
    for cell in r.cells.iter().filter(|c| c.request == request) {
        sum.add(surge::bundle::read_histogram(&dir.join(&cell.latency_hdr)).unwrap())
            .unwrap();
    }
    sum
}

/// A sharded test against a cluster with `sessions`; the shards' results,
/// the merged bundle and what `surge merge` said. With `awaiting`, the merge
/// is started before the shards, as a Job's last step is, and waits for
/// their bundles (`--from DIR --wait`).
async fn sharded(
    sessions: SessionStoreKind,
    awaiting: bool,
) -> (
    Vec<RunResults>,
    PathBuf,
    RunResults,
    Output,
    tempfile::TempDir,
) {
    let cluster = cluster(ClusterOptions {
        balancing: Balancing::RoundRobin,
        service: ServiceOptions {
            sessions,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), &cluster.url, &replica_urls(&cluster));
    // Not made here: in a Job the merge starts before any shard has made
    // the folder.
    let shard_out = dir.path().join("shards");
    let merged_out = dir.path().join("merged");
    let waiting = awaiting.then(|| {
        Command::new(surge_bin())
            .arg("merge")
            .arg("--from")
            .arg(&shard_out)
            .args(["--wait", "120s", "--out"])
            .arg(&merged_out)
            .current_dir(repo())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    });
    let bundles = tokio::task::spawn_blocking({
        let (path, shard_out) = (path.clone(), shard_out.clone());
        move || run_shards(&path, &shard_out)
    })
    .await
    .unwrap();
    cluster.shutdown().await;
    let shards: Vec<RunResults> = bundles
        .iter()
        .map(|b| surge::bundle::read_results(b).unwrap())
        .collect();
    let (done, merged) = match waiting {
        Some(child) => {
            let done = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
                .await
                .unwrap();
            let merged = std::fs::read_dir(&merged_out)
                .ok()
                .and_then(|mut d| d.next())
                .and_then(|e| e.ok())
                .map(|e| e.path());
            (done, merged)
        }
        None => merge(&bundles, &merged_out, &[]),
    };
    let merged = merged.unwrap_or_else(|| panic!("no merged bundle: {}", text(&done)));
    let results = surge::bundle::read_results(&merged).unwrap();
    (shards, merged, results, done, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_merge_into_one_test_and_shared_sessions_show_no_drop() {
    let _engine = engine_lock().await;
    let (shards, merged_dir, m, done, dir) = sharded(SessionStoreKind::Shared, true).await;
    let said = text(&done);
    eprintln!("{said}");
    assert_eq!(done.status.code(), Some(0), "{said}");
    assert!(said.contains("merged: 3 of 3 shards"), "{said}");

    // The plan's arrivals, all of them, none twice.
    let planned = RATE * SECONDS as f64;
    let arrivals = m.totals.arrivals as f64;
    assert!(
        (arrivals - planned).abs() <= 0.005 * planned,
        "{arrivals} arrivals for {planned} planned"
    );
    assert_eq!(
        m.totals.arrivals,
        shards.iter().map(|s| s.totals.arrivals).sum::<u64>()
    );
    assert_eq!(
        m.totals.issued,
        m.totals.succeeded + m.totals.failed + m.totals.cancelled
    );
    // Each request's merged histogram is the shards' added, bucket for bucket.
    for request in ["search", "check_session", "upload"] {
        let mut added = Histogram::<u64>::new(3).unwrap();
        for (s, b) in shards.iter().zip(shard_dirs(&dir)) {
            added.add(request_histogram(&b, s, request)).unwrap();
        }
        let merged = request_histogram(&merged_dir, &m, request);
        assert_eq!(merged, added, "{request}");
        assert_eq!(
            m.request(request).unwrap().latency.p99,
            merged.value_at_quantile(0.99) as f64 / 1000.0
        );
    }
    // The shards began together, and the merge says how closely.
    let info = m.merged.as_ref().unwrap();
    assert!(info.start_spread_ms < 1000.0, "{}", info.start_spread_ms);
    for s in &info.shards {
        let late = s.late_ms.expect("each shard says how late it began");
        assert!(
            (0.0..1000.0).contains(&late),
            "shard {} late {late} ms",
            s.index
        );
    }
    // No feeder row used by two shards (the ledgers), each from its own part.
    let mut seen = std::collections::BTreeSet::new();
    for s in &shards {
        let shard = s.shard.as_ref().unwrap();
        let ledger = &shard.feeders[0];
        assert_eq!((ledger.name.as_str(), ledger.file_rows), ("patient", 300));
        assert!(ledger.used_count > 0);
        for row in &ledger.used {
            assert_eq!(row % 3, u64::from(shard.index), "row {row}");
            assert!(seen.insert(*row), "row {row} used by two shards");
        }
    }
    // The verdicts of the union: sessions kept, every upload everywhere.
    assert_eq!(m.sessions.drops, 0);
    assert_eq!(
        m.sessions.sessions,
        shards.iter().map(|s| s.sessions.sessions).sum::<u64>()
    );
    assert!(m.consistency.uploads > 0);
    assert_eq!(
        m.consistency.uploads,
        shards.iter().map(|s| s.consistency.uploads).sum::<u64>()
    );
    // The shards' read-backs, added, and every one in some second of the
    // merged run (each shard's seconds moved to the common clock).
    let read_backs = &m.consistency.read_backs;
    assert!(read_backs.total() > 0);
    assert_eq!(
        read_backs.total(),
        shards
            .iter()
            .map(|s| s.consistency.read_backs.total())
            .sum::<u64>()
    );
    assert_eq!(
        read_backs.per_second.iter().sum::<u64>(),
        read_backs.total()
    );
    assert!(m.passed(), "{:?} {:?}", m.thresholds, m.checks);

    // Within noise of the same test in one process, on a fresh cluster.
    let cluster = cluster(ClusterOptions {
        balancing: Balancing::RoundRobin,
        service: ServiceOptions {
            sessions: SessionStoreKind::Shared,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let one = run(
        scenario(dir.path(), &cluster.url, &replica_urls(&cluster)),
        None,
        None,
        &dir.path().join("single"),
    )
    .await;
    cluster.shutdown().await;
    let (a, b) = (&one.results.overall.latency, &m.overall.latency);
    assert!(
        (a.p50 - b.p50).abs() <= 5.0_f64.max(0.5 * a.p50),
        "p50 one process {:.1} ms, three shards {:.1} ms",
        a.p50,
        b.p50
    );
    assert_eq!(one.results.totals.arrivals, m.totals.arrivals);

    // Every command reads the merged bundle: report renders it, compare
    // judges it against the single-process run, calibrate analyses it.
    let report = surge(&["report", merged_dir.to_str().unwrap()]);
    assert!(report.status.success(), "{}", text(&report));
    assert!(merged_dir.join("report.html").exists());
    let compared = surge(&[
        "compare",
        one.bundle.to_str().unwrap(),
        merged_dir.to_str().unwrap(),
    ]);
    assert!(
        matches!(compared.status.code(), Some(0 | 1 | 4)),
        "{}",
        text(&compared)
    );
    assert!(text(&compared).contains("search"), "{}", text(&compared));
    let calibrated = surge(&[
        "calibrate",
        "--from-bundle",
        merged_dir.to_str().unwrap(),
        "--replicas",
        "3",
        "--slo-p99",
        "1s",
        "--out",
        dir.path().join("calibration").to_str().unwrap(),
    ]);
    assert!(
        matches!(calibrated.status.code(), Some(0 | 1)),
        "{}",
        text(&calibrated)
    );
    assert!(text(&calibrated).contains("step"), "{}", text(&calibrated));
}

fn shard_dirs(dir: &tempfile::TempDir) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir.path().join("shards"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

/// Sessions kept per replica, round robin: every shard's drops are in the
/// merge, which fails its `session.drops` threshold (exit 1); and every
/// merge that cannot be one test is refused (exit 2), naming the bundle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_replica_sessions_drop_in_the_merge_and_bad_merges_are_refused() {
    let _engine = engine_lock().await;
    let (shards, _merged, m, done, dir) = sharded(SessionStoreKind::PerReplica, false).await;
    assert_eq!(done.status.code(), Some(1), "{}", text(&done));
    assert!(m.sessions.drops > 0);
    assert_eq!(
        m.sessions.drops,
        shards.iter().map(|s| s.sessions.drops).sum::<u64>(),
        "a drop is a drop whichever shard saw it"
    );
    assert!(!m.thresholds_passed());

    let bundles = shard_dirs(&dir);
    let refused = |bundles: &[PathBuf], extra: &[&str], says: &str| {
        let out = dir.path().join(format!("refused-{}", says.len()));
        let (done, _) = merge(bundles, &out, extra);
        let said = text(&done);
        assert_eq!(done.status.code(), Some(2), "{said}");
        assert!(said.contains(says), "{said}");
        assert!(!said.contains("panicked"), "{said}");
    };
    // A shard missing; merged anyway with --allow-partial, and said so.
    refused(&bundles[..2], &[], "shards [2] of 3 are missing");
    let (partial, merged) = merge(
        &bundles[..2],
        &dir.path().join("partial"),
        &["--allow-partial"],
    );
    assert!(
        text(&partial).contains("PARTIAL: shards [2] missing"),
        "{}",
        text(&partial)
    );
    assert_eq!(
        surge::bundle::read_results(&merged.unwrap())
            .unwrap()
            .merged
            .unwrap()
            .missing,
        [2]
    );
    // A shard twice.
    refused(
        &[bundles[0].clone(), bundles[0].clone(), bundles[2].clone()],
        &[],
        "is in both",
    );
    // A shard of another test (its scenario changed).
    let other = copy_bundle(&bundles[1], &dir.path().join("other"), |json| {
        json["shard"]["fingerprint"] = serde_json::json!("f".repeat(64));
    });
    refused(
        &[bundles[0].clone(), other.clone(), bundles[2].clone()],
        &[],
        &format!("{} is shard 1 of 3 of another test", other.display()),
    );
    // A bundle of another layout.
    let old = copy_bundle(&bundles[2], &dir.path().join("old"), |json| {
        json["schema_version"] = serde_json::json!(1);
    });
    refused(
        &[bundles[0].clone(), bundles[1].clone(), old.clone()],
        &[],
        "has schema_version 1",
    );
}

/// A copy of a bundle folder with its summary.json edited.
fn copy_bundle(from: &Path, to: &Path, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    std::fs::create_dir_all(to.join("hdr")).unwrap();
    for entry in std::fs::read_dir(from.join("hdr")).unwrap().flatten() {
        std::fs::copy(entry.path(), to.join("hdr").join(entry.file_name())).unwrap();
    }
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(from.join("summary.json")).unwrap()).unwrap();
    edit(&mut json);
    std::fs::write(to.join("summary.json"), json.to_string()).unwrap();
    to.to_path_buf()
}

/// The shipped Indexed Job parses into Kubernetes' own types, and its
/// wiring is what the CLI reads: as many shards as completions, the index
/// from JOB_COMPLETION_INDEX, the merge reading where the shards write, and
/// every flag and variable one surge accepts.
#[test]
fn the_shipped_indexed_job_parses_and_matches_the_cli() {
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    let yaml = std::fs::read_to_string(repo().join("deploy/sharded-test.yaml")).unwrap();
    let docs: Vec<&str> = yaml.split("\n---\n").collect();
    assert_eq!(docs.len(), 3);
    let pvc: PersistentVolumeClaim = serde_saphyr::from_str(docs[0]).unwrap();
    let shards: Job = serde_saphyr::from_str(docs[1]).unwrap();
    let merge: Job = serde_saphyr::from_str(docs[2]).unwrap();
    assert_eq!(pvc.metadata.name.as_deref(), Some("surge-results"));

    let spec = shards.spec.as_ref().unwrap();
    assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
    assert_eq!(spec.completions, spec.parallelism);
    assert_eq!(
        spec.backoff_limit,
        Some(0),
        "a shard that ran is never run twice"
    );
    let pod = spec.template.spec.as_ref().unwrap();
    assert!(pod
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .is_some());
    let container = &pod.containers[0];
    let env = |c: &k8s_openapi::api::core::v1::Container, name: &str| {
        c.env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    };
    assert_eq!(
        env(container, "SURGE_SHARDS").unwrap(),
        spec.completions.unwrap().to_string(),
        "SURGE_SHARDS is the Job's completions"
    );
    assert!(container
        .env_from
        .iter()
        .flatten()
        .any(|e| e.secret_ref.is_some()));
    let args = container.args.clone().unwrap();
    assert_eq!(args[0], "run");
    let out = &args[args.iter().position(|a| a == "--out").unwrap() + 1];
    let merge_pod = merge.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let merge_args = merge_pod.containers[0].args.clone().unwrap();
    assert_eq!(merge_args[0], "merge");
    assert_eq!(
        &merge_args[merge_args.iter().position(|a| a == "--from").unwrap() + 1],
        out,
        "the merge reads where the shards write"
    );
    let volumes: Vec<&str> = pod
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(volumes, ["scenario", "results"]);

    // Every flag is one surge accepts, and the variables are the ones it reads.
    for (command, args) in [("run", &args), ("merge", &merge_args)] {
        let help = surge(&[command, "--help"]);
        let help = String::from_utf8_lossy(&help.stdout).into_owned();
        for flag in args.iter().filter(|a| a.starts_with("--")) {
            assert!(help.contains(flag.as_str()), "surge {command} takes {flag}");
        }
    }
    let help = String::from_utf8_lossy(&surge(&["run", "--help"]).stdout).into_owned();
    for var in ["SURGE_SHARDS", "SURGE_START_AT"] {
        assert!(
            help.contains(&format!("[env: {var}=")),
            "surge run reads {var}"
        );
    }
    // As a pod runs it: the arguments and variables parse; only the missing
    // scenario stops it. An index beyond the shards is refused by name.
    let pod_run = |index: &str| {
        Command::new(surge_bin())
            .args(&args)
            .env("SURGE_SHARDS", env(container, "SURGE_SHARDS").unwrap())
            .env("JOB_COMPLETION_INDEX", index)
            .env("SURGE_START_AT", "2026-11-30T10:00:00Z")
            .env("SURGE_TEST", "t")
            .output()
            .unwrap()
    };
    let ran = pod_run("1");
    assert_eq!(ran.status.code(), Some(2));
    assert!(
        text(&ran).contains("cannot read scenario file"),
        "{}",
        text(&ran)
    );
    let beyond = pod_run("4");
    assert_eq!(beyond.status.code(), Some(2));
    assert!(
        text(&beyond).contains("shard index 4 is out of range"),
        "{}",
        text(&beyond)
    );
}
