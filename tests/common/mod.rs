//! Shared set-up for the end-to-end tests: a reference cluster on loopback and
//! scenario files written for it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;
use surge::runner::{RunReport, RunRequest};
use surge::scenario::LoadOverride;
use surge::sim::{Cluster, ClusterOptions};

/// goose keeps its stop switch in a process-wide static, so runs inside one
/// test process must not overlap. (A tokio mutex: it is held across awaits,
/// and does not poison when a test fails while holding it.)
pub static ENGINE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits for the engine.
pub async fn engine_lock() -> tokio::sync::MutexGuard<'static, ()> {
    ENGINE.lock().await
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn surge_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_surge"))
}

pub async fn cluster(options: ClusterOptions) -> Cluster {
    Cluster::start(surge_bin(), ClusterOptions { port: 0, ..options })
        .await
        .expect("reference cluster starts")
}

/// Writes a scenario into `dir`, with fixtures resolved from the repository.
pub fn scenario_file(dir: &Path, name: &str, body: &str) -> PathBuf {
    let text = format!(
        "[scenario]\nname = \"{name}\"\nfixtures = \"{}\"\n\n{body}",
        repo().join("fixtures").display()
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A FHIR patient search, no auth: the simplest request the sim serves from its database pool.
pub fn fhir_search_scenario(base_url: &str, load: &str) -> String {
    format!(
        r#"[target]
base_url = "{base_url}"
replica_header = "X-Served-By"
timeout = "5s"

[[feeders]]
name = "patient"
file = "patients.csv"

{load}

[[personas]]
name = "searcher"
steps = [{{ request = "fhir_search" }}]

[requests.fhir_search]
path = "/fhir/Patient?name=${{patient.family}}&_count=5"
expect = {{ status = [200], json_equals = {{ "resourceType" = "Bundle" }} }}
"#
    )
}

/// Runs a scenario file (optionally against `target`, for `duration`) and
/// writes its bundle under `out`.
pub async fn run(
    scenario: PathBuf,
    target: Option<&str>,
    duration: Option<Duration>,
    out: &Path,
) -> RunReport {
    let request = RunRequest {
        scenario,
        target: target.map(str::to_owned),
        load: LoadOverride {
            duration,
            ..Default::default()
        },
        out_dir: out.to_path_buf(),
        ..Default::default()
    };
    surge::runner::run(&request).await.expect("run completes")
}
