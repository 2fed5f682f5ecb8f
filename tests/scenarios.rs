//! Every scenario shipped in `scenarios/` runs against the reference cluster
//! with zero unexpected errors and every one of its request kinds exercised.
//! The test walks the folder, so a new scenario is covered automatically.

mod common;

use common::*;
use std::time::Duration;
use surge::sim::ClusterOptions;

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
        // Think times compressed 20×: realistic pauses would take minutes.
        let request = surge::runner::RunRequest {
            scenario: file.clone(),
            target: Some(cluster.url.clone()),
            load: surge::scenario::LoadOverride {
                duration: Some(Duration::from_secs(seconds)),
                think_scale: Some(0.05),
                ..Default::default()
            },
            out_dir: out.path().to_path_buf(),
            ..Default::default()
        };
        let report = surge::runner::run(&request).await.expect("run completes");
        cluster.shutdown().await;
        let r = &report.results;
        let name = file.display();
        assert_eq!(
            r.overall.failed,
            0,
            "{name}: unexpected errors\n{}",
            surge::report::terminal_summary(r)
        );
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
            r.consistency
                .count(surge::verify::consistency::Verdict::Missing),
            0,
            "{name}"
        );
    }
}
