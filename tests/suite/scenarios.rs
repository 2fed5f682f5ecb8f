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
