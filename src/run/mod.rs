//! One `surge run`, end to end: load the scenario, apply command-line
//! changes, check the target answers, drive the load, judge thresholds and
//! write the bundle. Shared by `surge run`, `surge demo` and the tests.
//!
//! Orchestration sits here, above the analysis and the reports: a
//! [`staircase`] of such runs for calibration, and the [`scrape`]r of the
//! target's pool metrics beside it.

pub mod calibrate;
pub mod compare;
mod error;
mod forecast;
pub mod import;
pub mod merge;
pub mod metrics_out;
pub mod pod_cpu;
pub mod scrape;
pub mod staircase;

pub use error::RunError;

use crate::bundle::{file_safe, RunResults};
use crate::engine::{self, RunOptions};
use crate::report;
use crate::scenario::{threshold, CommandLine, LoadOverride, Scenario};
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
    /// Send no credentials whatever the scenario's `[auth]` says (a test
    /// server with no identity provider in front of it).
    pub no_auth: bool,
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
    /// A second Ctrl-C or SIGTERM writes the bundle and ends the process at
    /// once, exit 3. Without it a second signal ends the process at once
    /// (after any bundle write in progress) without writing this run's.
    pub exit_on_second_signal: bool,
    /// The part of a sharded test to run (the whole test by default).
    pub shard: crate::scenario::shard::Shard,
    /// Begin the load at this instant (shards of one test begin together).
    pub start_at: Option<std::time::SystemTime>,
    /// A calibration bundle whose ramp forecast the run is compared with.
    pub forecast: Option<PathBuf>,
    /// Receivers the run's counts are pushed to while it goes.
    pub metrics_out: Vec<metrics_out::MetricsTarget>,
}

/// Longest wait for `--start-at`.
pub const MAX_START_WAIT: Duration = Duration::from_secs(24 * 3600);

/// A finished run.
#[derive(Debug)]
pub struct RunReport {
    /// The bundle folder.
    pub bundle: PathBuf,
    /// What it measured and judged.
    pub results: RunResults,
}

/// Loads the scenario and applies the request's changes, without running.
pub fn prepare(request: &RunRequest) -> Result<Scenario, RunError> {
    prepare_with_fingerprint(request).map(|p| p.scenario)
}

/// A scenario ready to run as the request's shard.
pub struct Prepared {
    /// This shard's part of the test (the whole test unless sharded).
    pub scenario: Scenario,
    /// For a shard: SHA-256 of the scenario file, its feeders' rows and the
    /// command line's changes, taken before the split, so every shard of
    /// one test has the same (a whole run needs none, and skips the hash).
    pub fingerprint: Option<String>,
    /// What the whole test must exercise (a merge of the shards is judged
    /// against it).
    pub whole: crate::bundle::Expectations,
}

/// [`prepare`], with the test's fingerprint and the whole test's expectations.
pub fn prepare_with_fingerprint(request: &RunRequest) -> Result<Prepared, RunError> {
    let mut scenario = prepare_whole(request)?;
    let fingerprint = if request.shard.is_whole() {
        None
    } else {
        Some(fingerprint(request, &scenario)?)
    };
    let whole = crate::verify::gate::expectations(&scenario);
    crate::scenario::shard::split(&mut scenario, request.shard).map_err(|why| RunError::Shard {
        index: request.shard.index,
        count: request.shard.count,
        why,
    })?;
    let pushes = !request.metrics_out.is_empty() || !scenario.metrics_out.is_empty();
    if !request.shard.is_whole() && pushes && request.start_at.is_none() {
        return Err(RunError::Shard {
            index: request.shard.index,
            count: request.shard.count,
            why: "metrics out needs --start-at: the shards' series share one `test` label made from the test's fingerprint and its start, and without a start every relaunch of this test would share it too".into(),
        });
    }
    Ok(Prepared {
        scenario,
        fingerprint,
        whole,
    })
}

fn fingerprint(request: &RunRequest, scenario: &Scenario) -> Result<String, RunError> {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    let file = std::fs::read(&request.scenario).map_err(|e| RunError::ScenarioUnreadable {
        path: request.scenario.clone(),
        why: e.to_string(),
    })?;
    hash.update(&file);
    for feeder in &scenario.feeders {
        feeder.hash_rows(&mut |bytes| hash.update(bytes));
    }
    // The command line's changes, in a fixed form (never a credential: the
    // target URL may not carry one, and auth comes from the environment).
    hash.update(
        format!(
            "{:?}|{}|{:?}|{:?}|{:?}|{:?}",
            request.target,
            request.no_auth,
            request.load,
            request.thresholds,
            request.replicas,
            request.chaos.specs
        )
        .as_bytes(),
    );
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn prepare_whole(request: &RunRequest) -> Result<Scenario, RunError> {
    let mut scenario = Scenario::load(&request.scenario)?;
    scenario.apply_command_line(CommandLine {
        target: request.target.as_deref(),
        no_auth: request.no_auth,
        load: &request.load,
        replicas: &request.replicas,
        thresholds: &request.thresholds,
    })?;
    Ok(scenario)
}

/// Checks the target can work before any load: it accepts TCP connections
/// and, over https, its certificate is trusted (unless the scenario turned
/// verification off). A clear failure instead of a run of connect errors.
pub async fn preflight_target(scenario: &Scenario) -> Result<(), RunError> {
    let base_url = &scenario.target.base_url;
    preflight(base_url).await?;
    if !base_url.starts_with("https://") {
        return Ok(());
    }
    let client = crate::engine::client_builder(&scenario.target)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| RunError::Other(e.into()))?;
    match client.get(base_url.as_str()).send().await {
        // Any answer will do, and so will a slow one or a redirect loop: the
        // connection and its handshake are what is checked here.
        Ok(_) => Ok(()),
        Err(e) if !e.is_connect() => Ok(()),
        Err(e) => Err(RunError::Unreachable {
            url: scenario.target.display_url(),
            why: tls_words(&e),
        }),
    }
}

/// What went wrong in an https exchange, in words: the certificate problem
/// when there is one (rustls names it deep in the error's sources).
fn tls_words(error: &reqwest::Error) -> String {
    let mut chain = Vec::new();
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = source {
        chain.push(e.to_string());
        source = e.source();
    }
    let all = chain.join(": ");
    // rustls names the problem as a Debug word (`UnknownIssuer`) or in
    // prose (`certificate expired`), depending on the verifier.
    let said = all.to_ascii_lowercase().replace(['_', ' '], "");
    let problem = [
        (
            "unknownissuer",
            "its certificate is signed by an authority this machine does not trust (self-signed?)",
        ),
        (
            "causedasendentity",
            "its certificate is an authority's own (self-signed), not one issued to a server",
        ),
        ("expired", "its certificate has expired"),
        ("notvalidyet", "its certificate is not valid yet"),
        (
            "notvalidforname",
            "its certificate is not valid for this host name",
        ),
        ("revoked", "its certificate has been revoked"),
        ("badsignature", "its certificate's signature is bad"),
    ]
    .iter()
    .find(|(code, _)| said.contains(code))
    .map(|(_, words)| *words);
    match problem {
        Some(words) => format!(
            "TLS: {words} ({}); if you accept that, set tls_verify = false under [target] (every report will say so)",
            chain.last().cloned().unwrap_or_default()
        ),
        None => all,
    }
}

/// Checks the target accepts TCP connections (a quick, clear failure instead of a run of connect errors).
pub async fn preflight(base_url: &str) -> Result<(), RunError> {
    let unreachable = |why: String| RunError::Unreachable {
        url: crate::scenario::redact_text(base_url),
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
    let name: String = file_safe(scenario)
        .chars()
        .take(crate::scenario::limits::MAX_NAME)
        .collect();
    let base = format!("{}-{}-{name}", &stamp[..8], &stamp[8..]);
    let mut id = base.clone();
    let mut n = 2;
    while out_dir.join(&id).exists() {
        id = format!("{base}-{n}");
        n += 1;
    }
    id
}

/// Judges the run (thresholds and built-in checks) and writes its bundle,
/// as one write no signal can cut short: the one way a run ends, whether it
/// finished, was interrupted, or was forced to end by a second signal.
fn conclude(
    mut measurements: crate::bundle::Measurements,
    thresholds: &[threshold::Threshold],
    expected: &crate::bundle::Expectations,
    bundle: &Path,
    write: Write,
) -> Result<RunReport, RunError> {
    measurements.results.thresholds = crate::verify::gate::judge(thresholds, &measurements.results);
    measurements.results.latency_slo = crate::verify::gate::latency_slo(thresholds);
    measurements.results.checks = crate::verify::gate::checks(expected, &measurements.results);
    let _whole = crate::engine::signals::writing();
    let bundle = write_somewhere(bundle, &measurements, write)?;
    Ok(RunReport {
        bundle,
        results: measurements.results,
    })
}

/// How much of a bundle to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Every format and chart.
    Everything,
    /// The histograms and `summary.json` only (a forced end: quick, and
    /// `surge report` renders the rest).
    Evidence,
}

/// Writes the bundle where asked or, when that fails (a full disk, a folder
/// not writable), in the system's temporary folder, saying so: what a run
/// measured is never lost for want of the folder it was asked to go in.
pub fn write_somewhere(
    bundle: &Path,
    measurements: &crate::bundle::Measurements,
    write: Write,
) -> Result<PathBuf, RunError> {
    let write_to = |dir: &Path| match write {
        Write::Everything => report::write_bundle(dir, measurements),
        Write::Evidence => report::write_evidence(dir, measurements),
    };
    let first = match write_to(bundle) {
        Ok(()) => return Ok(bundle.to_path_buf()),
        Err(e) => e,
    };
    let name = bundle
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let fallback = std::env::temp_dir().join(format!("surge-{}", file_safe(&name)));
    eprintln!(
        "warning: cannot write the bundle to {}: {first:#}; writing it to {} instead",
        bundle.display(),
        fallback.display()
    );
    write_to(&fallback).map_err(|e| {
        RunError::Other(anyhow::anyhow!(
            "cannot write the bundle to {} ({first:#}) nor to {} ({e:#})",
            bundle.display(),
            fallback.display()
        ))
    })?;
    Ok(fallback)
}

/// The run's chaos plan (command line and scenario), refused when an action
/// would come after the load ends.
fn resolve_chaos(
    chaos: &crate::chaos::setup::ChaosRequest,
    scenario: &Scenario,
) -> Result<Option<(crate::chaos::ChaosPlan, crate::chaos::KubeTarget)>, RunError> {
    let resolved = crate::chaos::setup::resolve(chaos, scenario).map_err(RunError::Chaos)?;
    if let Some((plan, _)) = &resolved {
        crate::scenario::chaos::check_timing(&plan.actions, scenario.load.duration())
            .map_err(RunError::Chaos)?;
    }
    Ok(resolved)
}

/// `--dry-run`: the chaos plan as it would run, after the safety rules,
/// without connecting to anything.
pub fn chaos_dry_run(request: &RunRequest) -> Result<Vec<String>, RunError> {
    let scenario = prepare(request)?;
    match resolve_chaos(&request.chaos, &scenario)? {
        None => Ok(vec![
            "no chaos in this run: no actions and no pod discovery".into(),
        ]),
        Some((plan, kube)) => Ok(crate::scenario::chaos::describe_plan(
            &plan,
            &kube,
            scenario.load.duration(),
        )),
    }
}

/// Runs the request to the end and writes its bundle.
pub async fn run(request: &RunRequest) -> Result<RunReport, RunError> {
    let Prepared {
        scenario,
        fingerprint,
        whole,
    } = prepare_with_fingerprint(request)?;
    let start_at = match request.start_at {
        Some(at) => {
            if at
                .duration_since(std::time::SystemTime::now())
                .is_ok_and(|ahead| ahead > MAX_START_WAIT)
            {
                return Err(RunError::StartTooLate(
                    humantime::format_rfc3339_millis(at).to_string(),
                ));
            }
            Some(at)
        }
        None => None,
    };
    // Before anything is sent: a wrong folder is said at once.
    let forecast = forecast::for_run(request, &scenario)?;
    preflight_target(&scenario).await?;
    crate::engine::auth::preflight(&scenario)
        .await
        .map_err(RunError::Auth)?;
    // Chaos acts from one shard only (0), which records it for the test.
    let mut chaos_request = request.chaos.clone();
    if request.shard.index != 0 {
        chaos_request.specs.clear();
    }
    let chaos = match resolve_chaos(&chaos_request, &scenario)? {
        Some((plan, kube)) => Some(
            crate::chaos::setup::connect(&chaos_request, plan, kube)
                .await
                .map_err(RunError::Chaos)?,
        ),
        None => None,
    };
    let autoscaler =
        crate::chaos::autoscaler::prepare(&request.chaos, &scenario, request.shard.index)
            .await
            .map_err(RunError::Autoscaler)?;
    let run_id = new_run_id(&request.out_dir, &shard_run_name(&scenario));
    // What the metrics sent out call the test: the run, or for a shard
    // what every shard of its test shares (the fingerprint and the start),
    // so that a dashboard sums the shards of one test and no other.
    let test_label = match &fingerprint {
        None => run_id.clone(),
        Some(fingerprint) => {
            let start = start_at
                .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(String::new(), |d| format!("-{}", d.as_millis()));
            format!(
                "shards-{}{start}",
                &fingerprint[..fingerprint.len().min(12)]
            )
        }
    };
    let thresholds = scenario.thresholds.clone();
    let expected = crate::verify::gate::expectations(&scenario);
    let shard = fingerprint.map(|fingerprint| crate::bundle::ShardInfo {
        index: request.shard.index,
        count: request.shard.count,
        fingerprint,
        host: host_name(),
        start_at: start_at.map(|at| humantime::format_rfc3339_millis(at).to_string()),
        began_unix_ms: 0,
        late_ms: None,
        expectations: whole,
        feeders: Vec::new(),
    });
    let feeders = scenario.feeders.clone();
    let bundle = request.out_dir.join(&run_id);
    let finish_shard = move |m: &mut crate::bundle::Measurements| {
        if let Some(mut info) = shard.clone() {
            let began = m.began.unwrap_or_else(std::time::SystemTime::now);
            info.began_unix_ms = began
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            info.late_ms = start_at.map(|at| match began.duration_since(at) {
                Ok(late) => late.as_secs_f64() * 1000.0,
                Err(early) => -early.duration().as_secs_f64() * 1000.0,
            });
            info.feeders = feeders
                .iter()
                .map(|f| {
                    let used: Vec<u64> = f.used_rows().collect();
                    crate::bundle::FeederLedger {
                        name: f.name.clone(),
                        file_rows: f.file_rows() as u64,
                        used_count: used.len() as u64,
                        used: used
                            .into_iter()
                            .take(crate::bundle::MAX_LEDGER_ROWS)
                            .collect(),
                    }
                })
                .collect();
            m.results.shard = Some(info);
        }
    };
    let finish_shard = Arc::new(finish_shard);
    let last_words = request.exit_on_second_signal.then(|| {
        let (bundle, thresholds, expected) = (bundle.clone(), thresholds.clone(), expected.clone());
        let finish_shard = Arc::clone(&finish_shard);
        Box::new(move |mut m: crate::bundle::Measurements| {
            finish_shard(&mut m);
            match conclude(m, &thresholds, &expected, &bundle, Write::Evidence) {
                Ok(report) => eprintln!(
                    "bundle (forced end; `surge report {0}` renders the reports): {0}",
                    report.bundle.display()
                ),
                Err(e) => eprintln!("error: {e}"),
            }
            // Held through exit: no write of this bundle starts after this one.
            let _no_write_after = crate::engine::signals::writing();
            std::process::exit(3);
        }) as Box<dyn FnOnce(crate::bundle::Measurements) + Send>
    });
    // The flag's receivers and the scenario's, each once.
    let mut receivers = request.metrics_out.clone();
    for target in &scenario.metrics_out {
        if !receivers.contains(target) {
            receivers.push(target.clone());
        }
    }
    let pushes = (!receivers.is_empty()).then(|| {
        let mut labels = vec![
            ("test".to_owned(), test_label),
            ("run_id".to_owned(), run_id.clone()),
            ("scenario".to_owned(), scenario.name.clone()),
        ];
        if !scenario.shard.is_whole() {
            labels.push((
                "shard".to_owned(),
                format!("{}/{}", scenario.shard.index, scenario.shard.count),
            ));
        }
        metrics_out::MetricsOut::start(&receivers, labels)
    });
    let (pushes, live) = match pushes {
        Some((pushes, feed)) => (Some(pushes), Some(feed)),
        None => (None, None),
    };
    let options = RunOptions {
        run_id: run_id.clone(),
        progress: request.progress,
        chaos,
        autoscaler,
        last_words,
        start_at,
        live,
    };
    let mut measurements = engine::run(Arc::new(scenario), options).await?;
    if let Some(pushes) = pushes {
        // A signal while the last pushes go ends the wait, not the
        // process: the bundle is written next.
        let cut = tokio_util::sync::CancellationToken::new();
        let interrupts = crate::engine::signals::Interrupts::register(cut.clone());
        let sigterm = crate::engine::signals::SigtermWatch::start();
        measurements.results.metrics_out = pushes.finish(cut).await;
        drop(sigterm);
        interrupts.unregister();
    }
    if let Some(t) = measurements.results.autoscaling.as_mut() {
        t.forecast = forecast;
    }
    finish_shard(&mut measurements);
    conclude(
        measurements,
        &thresholds,
        &expected,
        &bundle,
        Write::Everything,
    )
}

/// The name a run's folder carries: the scenario's, and the shard's index
/// for a part of a sharded test (shards may share an output folder).
fn shard_run_name(scenario: &Scenario) -> String {
    match scenario.shard {
        s if s.is_whole() => scenario.name.clone(),
        s => format!("{}-shard{}of{}", scenario.name, s.index, s.count),
    }
}

/// This machine's name (a pod's name in Kubernetes).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}
