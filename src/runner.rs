//! One `surge run`, end to end: load the scenario, apply command-line
//! changes, check the target answers, drive the load, judge thresholds and
//! write the bundle. Shared by `surge run`, `surge demo` and the tests.

use crate::engine::{self, RunOptions};
use crate::measure::{file_safe, RunResults};
use crate::report;
use crate::scenario::{threshold, LoadOverride, Scenario, ScenarioError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// Scenario file.
    pub scenario: PathBuf,
    /// Replaces the scenario's base URL.
    pub target: Option<String>,
    /// Replaces the scenario's load.
    pub load: LoadOverride,
    /// Extra thresholds, `name=expression` (added to, or replacing, the file's).
    pub thresholds: Vec<String>,
    /// Replica base URLs to read uploads back from directly (added to `[verify] replicas`).
    pub replicas: Vec<String>,
    /// Folder the bundle goes in (`reports`).
    pub out_dir: PathBuf,
    /// Show a live progress line.
    pub progress: bool,
    /// Chaos settings from the command line.
    pub chaos: crate::chaos::setup::ChaosRequest,
}

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scenario file is wrong.
    #[error("{0}")]
    Scenario(#[from] ScenarioError),
    /// A command-line value is wrong.
    #[error("{0}")]
    Usage(String),
    /// The scenario's credentials do not work (checked once before the load).
    #[error("auth does not work, so no load was sent: {0}")]
    Auth(String),
    /// The target does not answer.
    #[error("target {url} is unreachable: {why}")]
    Unreachable {
        /// Base URL.
        url: String,
        /// What happened.
        why: String,
    },
    /// Anything else (the bundle could not be written, the engine failed to start).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// A finished run.
#[derive(Debug)]
pub struct RunReport {
    /// The bundle folder.
    pub bundle: PathBuf,
    /// What it measured and judged.
    pub results: RunResults,
}

/// An http(s) base URL from the command line, without a trailing slash.
fn http_base(flag: &str, text: &str) -> Result<String, RunError> {
    let url = reqwest::Url::parse(text)
        .map_err(|e| RunError::Usage(format!("{flag} {text:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(RunError::Usage(format!(
            "{flag} must be http or https, not {}",
            url.scheme()
        )));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// Loads the scenario and applies the request's changes, without running.
pub fn prepare(request: &RunRequest) -> Result<Scenario, RunError> {
    let mut scenario = Scenario::load(&request.scenario)?;
    if let Some(target) = &request.target {
        scenario.target.base_url = http_base("--target", target)?;
    }
    scenario
        .apply_override(&request.load)
        .map_err(RunError::Usage)?;
    for replica in &request.replicas {
        scenario
            .verify
            .replicas
            .push(http_base("--replica", replica)?);
    }
    for spec in &request.thresholds {
        let (metric, expression) = spec.split_once('=').ok_or_else(|| {
            RunError::Usage(format!(
                "--threshold {spec:?}: expected NAME=EXPRESSION, e.g. 'search_patient.p95=<800ms'"
            ))
        })?;
        let t = threshold::parse(metric.trim(), expression)
            .map_err(|e| RunError::Usage(format!("--threshold {spec:?}: {e}")))?;
        scenario.thresholds.retain(|old| old.metric != t.metric);
        scenario.thresholds.push(t);
    }
    Ok(scenario)
}

/// Checks the target accepts TCP connections (a quick, clear failure instead of a run of connect errors).
pub async fn preflight(base_url: &str) -> Result<(), RunError> {
    let unreachable = |why: String| RunError::Unreachable {
        url: base_url.to_owned(),
        why,
    };
    let url = reqwest::Url::parse(base_url).map_err(|e| unreachable(e.to_string()))?;
    let host = url
        .host_str()
        .ok_or_else(|| unreachable("no host".into()))?
        .to_owned();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| unreachable("no port".into()))?;
    match tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable("no answer within 5 s".into())),
    }
}

/// A new run id: UTC time and scenario name, unique within `out_dir`.
pub fn new_run_id(out_dir: &Path, scenario: &str) -> String {
    let stamp: String = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let base = format!("{}-{}-{}", &stamp[..8], &stamp[8..], file_safe(scenario));
    let mut id = base.clone();
    let mut n = 2;
    while out_dir.join(&id).exists() {
        id = format!("{base}-{n}");
        n += 1;
    }
    id
}

/// `--dry-run`: the chaos plan as it would run, after the safety rules,
/// without connecting to anything.
pub fn chaos_dry_run(request: &RunRequest) -> Result<Vec<String>, RunError> {
    let scenario = prepare(request)?;
    match crate::chaos::setup::resolve(&request.chaos, &scenario)
        .map_err(|e| RunError::Usage(format!("chaos: {e}")))?
    {
        None => Ok(vec![
            "no chaos in this run: no actions and no pod discovery".into(),
        ]),
        Some((plan, kube)) => Ok(crate::chaos::plan::describe_plan(
            &plan,
            &kube,
            scenario.load.duration(),
        )),
    }
}

/// Runs the request to the end and writes its bundle.
pub async fn run(request: &RunRequest) -> Result<RunReport, RunError> {
    let scenario = prepare(request)?;
    preflight(&scenario.target.base_url).await?;
    crate::engine::auth::preflight(&scenario)
        .await
        .map_err(RunError::Auth)?;
    let chaos = match crate::chaos::setup::resolve(&request.chaos, &scenario)
        .map_err(|e| RunError::Usage(format!("chaos: {e}")))?
    {
        Some((plan, kube)) => Some(
            crate::chaos::setup::connect(&request.chaos, plan, kube)
                .await
                .map_err(|e| RunError::Usage(format!("chaos: {e}")))?,
        ),
        None => None,
    };
    let run_id = new_run_id(&request.out_dir, &scenario.name);
    let thresholds = scenario.thresholds.clone();
    let expected = crate::gate::Expectations::of(&scenario);
    let options = RunOptions {
        run_id: run_id.clone(),
        progress: request.progress,
        chaos,
    };
    let mut measurements = engine::run(Arc::new(scenario), options).await?;
    measurements.results.thresholds = crate::gate::judge(&thresholds, &measurements.results);
    measurements.results.checks = crate::gate::checks(&expected, &measurements.results);
    let bundle = request.out_dir.join(&run_id);
    report::write_bundle(&bundle, &measurements)?;
    Ok(RunReport {
        bundle,
        results: measurements.results,
    })
}
