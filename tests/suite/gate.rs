//! The CI gate does not cry wolf, and still catches a real slowdown: the
//! same build run with a CPU-burning process of the test's own beside it is
//! never a REGRESSION (within noise, or inconclusive, exit 4); one endpoint
//! really slowed on a quiet machine is a REGRESSION on that endpoint only
//! (exit 1). Both with one and with three baselines.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use surge_sim::replica::ServiceOptions;
use surge_sim::ClusterOptions;

/// FHIR search, an OpenMRS search and the control request (a static
/// health endpoint), closed model with a think time (so the generator's
/// lateness is measured), 4 s.
fn scenario(dir: &Path, base_url: &str) -> PathBuf {
    let body = format!(
        r#"[target]
base_url = "{base_url}"
replica_header = "X-Served-By"
control = "healthz"

[auth]
kind = "openmrs-basic"
username = "admin"
password = "Admin123"

[load]
model = "closed"
[[load.stages]]
users = 4
hold = "4s"

[[personas]]
name = "clinician"
steps = [
  {{ request = "fhir_search", think = "20ms" }},
  {{ request = "openmrs_search", think = "20ms" }},
  {{ request = "healthz", think = "20ms" }},
]

[requests.fhir_search]
path = "/fhir/Patient?name=Rahman&_count=5"

[requests.openmrs_search]
path = "/openmrs/ws/rest/v1/patient?q=Karim&limit=5"

[requests.healthz]
path = "/healthz"
"#
    );
    scenario_file(dir, "gate", &body)
}

async fn bundle(service: ServiceOptions, out: &Path, burn: bool) -> PathBuf {
    let cluster = cluster(ClusterOptions {
        service,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), &cluster.url);
    // Two processes spinning for the run's length, as a compile beside the
    // CI job would; `timeout` ends them after 7 s whatever happens here
    // (killing `timeout` itself would leave its child spinning).
    let burners: Vec<std::process::Child> = (0..if burn { 2 } else { 0 })
        .map(|_| {
            Command::new("timeout")
                .args(["7", "sh", "-c", "while :; do :; done"])
                .spawn()
                .unwrap()
        })
        .collect();
    let report = run(path, None, None, out).await;
    for mut b in burners {
        let _ = b.wait();
    }
    cluster.shutdown().await;
    report.bundle
}

fn compare(baselines: &[PathBuf], current: &Path) -> (Option<i32>, String) {
    let out = Command::new(surge_bin())
        .arg("compare")
        .args(baselines)
        .arg(current)
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_machine_is_no_regression_and_a_slowed_endpoint_is_one() {
    let _engine = engine_lock().await;
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    let mut baselines = Vec::new();
    for _ in 0..3 {
        baselines.push(bundle(ServiceOptions::default(), &history, false).await);
    }
    let busy = bundle(ServiceOptions::default(), &dir.path().join("busy"), true).await;
    let slowed = bundle(
        ServiceOptions {
            slow: vec![("/fhir/Patient".into(), 4.0)],
            ..Default::default()
        },
        &dir.path().join("slowed"),
        false,
    )
    .await;
    let r = surge::bundle::read_results(&busy).unwrap();
    let env = r.environment.expect("every bundle records its environment");
    assert!(env.lateness.is_some() && env.control.is_some(), "{env:?}");

    let one = std::slice::from_ref(&baselines[2]);
    // The folder of the last passing runs is a baseline history too.
    let three = [history.clone()];
    for (name, base) in [("one baseline", one), ("three baselines", &three[..])] {
        let (code, said) = compare(base, &busy);
        assert_ne!(code, Some(1), "{name}, busy machine, same build: {said}");
        assert!(matches!(code, Some(0 | 4)), "{name}: {said}");
        if code == Some(4) {
            assert!(said.contains("environment differs: "), "{said}");
            assert!(said.contains("INCONCLUSIVE"), "{said}");
        }
        let (code, said) = compare(base, &slowed);
        assert_eq!(code, Some(1), "{name}, slowed endpoint: {said}");
        let regressed: Vec<&str> = said.lines().filter(|l| l.ends_with("REGRESSION")).collect();
        assert!(
            !regressed.is_empty() && regressed.iter().all(|l| l.starts_with("fhir_search")),
            "{name}: only the slowed endpoint regresses: {said}"
        );
        assert!(
            said.contains(if base.len() == 1 && base[0] != history {
                "assumed ±10%"
            } else {
                "from 3 baseline runs"
            }),
            "{said}"
        );
    }
}
