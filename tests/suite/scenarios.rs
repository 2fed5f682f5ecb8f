//! Every scenario shipped in `scenarios/` runs against the reference cluster
//! with zero unexpected errors and every one of its request kinds exercised.
//! The test walks the folder, so a new scenario is covered automatically.

use crate::common::*;
use surge_sim::ClusterOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_scenario_runs_clean_against_the_sim() {
    let _engine = engine_lock().await;
    let mut files: Vec<_> = std::fs::read_dir(repo().join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    for file in files {
        let scenario = surge::scenario::Scenario::load(&file).unwrap();
        let cluster = cluster(ClusterOptions::default()).await;
        let out = tempfile::tempdir().unwrap();
        // Long enough for a closed-model user with think times to walk every step once.
        let steps: usize = scenario
            .personas
            .iter()
            .map(|p| p.steps.len())
            .max()
            .unwrap_or(1);
        let seconds = (steps as u64 + 2).max(4);
        let report = run_shipped(&file, &cluster.url, seconds, out.path()).await;
        cluster.shutdown().await;
        let r = &report.results;
        let name = file.display();
        for request in &scenario.requests {
            assert!(
                r.request(&request.name).is_some_and(|s| s.ok > 0),
                "{name}: request `{}` never ran\n{}",
                request.name,
                surge::report::terminal_summary(r)
            );
        }
        assert_eq!(r.sessions.drops, 0, "{name}");
        assert_eq!(
            r.consistency.count(surge::bundle::Verdict::Missing),
            0,
            "{name}"
        );
    }
}

/// `content_type` is the Content-Type the target receives: on a JSON body
/// (instead of reqwest's `application/json`) and on a generated one
/// (instead of its kind's own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_type_is_what_the_target_receives() {
    let _engine = engine_lock().await;
    let capture = tempfile::tempdir().unwrap();
    let cluster = cluster(ClusterOptions {
        capture_dir: Some(capture.path().to_path_buf()),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        r#"[target]
base_url = "{}"
replica_header = "X-Served-By"

[load]
model = "closed"
[[load.stages]]
users = 1
hold = "2s"

[[personas]]
name = "integration"
steps = [{{ request = "validate", think = "100ms" }}, {{ request = "binary", think = "100ms" }}]

[requests.validate]
method = "POST"
path = "/fhir/Patient/$validate"
json = {{ resourceType = "Patient" }}
content_type = "application/fhir+json"
expect = {{ status = [200] }}

[requests.binary]
method = "POST"
path = "/fhir/Binary"
headers = {{ Accept = "application/fhir+json" }}
generate = {{ kind = "bin", size = "1KiB" }}
content_type = "application/pdf"
expect = {{ status = [201] }}
"#,
        cluster.url
    );
    let file = scenario_file(dir.path(), "content-types", &body);
    let out = tempfile::tempdir().unwrap();
    run_shipped(&file, &cluster.url, 2, out.path()).await;
    cluster.shutdown().await;
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(capture.path()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        lines.extend(
            text.lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()),
        );
    }
    for (path, want) in [
        ("/fhir/Patient/$validate", "application/fhir+json"),
        ("/fhir/Binary", "application/pdf"),
    ] {
        let sent: Vec<&str> = lines
            .iter()
            .filter(|l| l["method"] == "POST" && l["path"] == path)
            .map(|l| l["content_type"].as_str().unwrap_or(""))
            .collect();
        assert!(
            !sent.is_empty() && sent.iter().all(|ct| *ct == want),
            "{path}: {sent:?}"
        );
    }
}
