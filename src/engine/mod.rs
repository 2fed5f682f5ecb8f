//! The engine: runs a scenario's load in its model and returns what it
//! measured, also when interrupted.
//!
//! Two load models, one file each: the closed model (`closed_run`: a fixed
//! number of virtual users, ramped and held by goose's test plan, each
//! persona a goose scenario and each step a transaction) and the open model
//! (`open_run`: no goose; the arrival scheduler in [`open`] hands slots to
//! plain user tasks that start lazily). This module owns what both share:
//! the recorder, the users' shared state ([`user::Shared`]), the signals,
//! the target-gone watchdog, chaos and the progress line; it sets them up,
//! hands the load to the scenario's model, and gathers the measurements.
//!
//! Either way every request goes through [`user::Shared::exchange`], which
//! times it to the end of the body and feeds the recorder; every client
//! shares one TLS configuration and keeps its own cookie jar and
//! connections (`client`). Ctrl-C and SIGTERM ([`signals`]) stop the load,
//! abandon what is in flight (counted as cancelled) and still return every
//! measurement.

pub mod auth;
pub mod check;
mod client;
mod closed_run;
mod follow;
mod iteration;
mod login;
pub mod open;
mod open_run;
pub mod readback;
mod render;
pub mod signals;
pub mod user;
pub mod writes;

use crate::bundle::Measurements;
use crate::measure::{Recorder, RunInfo};
use crate::scenario::{LoadPlan, Scenario};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use user::Shared;

/// How to run.
#[derive(Default)]
pub struct RunOptions {
    /// Run id, recorded in the results.
    pub run_id: String,
    /// Show a live progress line on the terminal.
    pub progress: bool,
    /// Faults to inject while the load runs.
    pub chaos: Option<crate::chaos::Chaos>,
    /// The HPA to read every second while the load runs.
    pub autoscaler: Option<crate::chaos::autoscaler::AutoscalerWatch>,
    /// On a second Ctrl-C or SIGTERM: what to do with everything measured so
    /// far before the process ends (the CLI writes the bundle and exits 3).
    pub last_words: Option<Box<dyn FnOnce(Measurements) + Send>>,
    /// Begin the load at this instant, not before (shards of one test begin
    /// together); ready users wait for it.
    pub start_at: Option<SystemTime>,
    /// Who takes the run's counts while it goes (`--metrics-out`).
    pub live: Option<LiveFeed>,
}

/// A consumer of the run's counts while it goes: handed them every
/// `every`, and once more, `last`, when the load has ended. It must not
/// block: the load does not wait for it.
pub struct LiveFeed {
    /// How often.
    pub every: Duration,
    /// Takes the counts, and whether they are the last.
    pub send: Box<dyn Fn(crate::measure::live::LiveCounts, bool) + Send + Sync>,
}

pub use client::client_builder;

/// How long a target may refuse connections and answer nothing before the
/// run ends as "target gone".
const TARGET_GONE_AFTER: Duration = Duration::from_secs(10);

/// Runs `scenario` and returns what it measured, also when interrupted.
pub async fn run(scenario: Arc<Scenario>, options: RunOptions) -> anyhow::Result<Measurements> {
    let recorder = Arc::new(Recorder::new(
        Shared::request_names(&scenario),
        scenario.load.stage_ends(),
    ));
    // A signal cancels `interrupt` (and with it `stop`); the end of the load
    // cancels only `stop`, so read-backs of the last uploads can finish.
    let interrupt = CancellationToken::new();
    let stop = interrupt.child_token();
    let shared = Arc::new(Shared::new(
        Arc::clone(&scenario),
        Arc::clone(&recorder),
        stop.clone(),
        interrupt.clone(),
    ));
    let info = run_info(&scenario, &options.run_id);
    let interrupts = signals::Interrupts::register(interrupt.clone());
    if let Some(last_words) = options.last_words {
        interrupts.on_force(forced_end(last_words, &shared, &interrupts, info.clone()));
    }
    let sigterm = signals::SigtermWatch::start();
    // With chaos, a target may rightly be away as long as it may take to recover.
    let gone_after = options.chaos.as_ref().map_or(TARGET_GONE_AFTER, |c| {
        c.plan.recover_within.max(TARGET_GONE_AFTER)
    });
    let watchdog = watch_for_a_gone_target(&shared, &interrupts, gone_after);
    let progress = options
        .progress
        .then(|| tokio::spawn(progress_line(Arc::clone(&recorder), stop.clone())));
    let live_feed = options.live.map(Arc::new);
    if live_feed.is_some() {
        recorder.enable_live();
    }
    let live = live_feed.as_ref().map(|feed| {
        tokio::spawn(feed_live(
            Arc::clone(&shared),
            Arc::clone(feed),
            stop.clone(),
        ))
    });
    let chaos = options.chaos.map(|chaos| {
        tokio::spawn(crate::chaos::runner::run(
            chaos,
            Arc::clone(&shared) as Arc<dyn crate::chaos::runner::LoadView>,
            scenario.load.duration(),
            stop.clone(),
        ))
    });

    let autoscaler = options.autoscaler.map(|watch| {
        tokio::spawn(crate::chaos::autoscaler::watch(
            watch,
            Arc::clone(&shared) as Arc<dyn crate::chaos::runner::LoadView>,
            stop.clone(),
        ))
    });

    // Before the first request: the listed replicas' own names for themselves.
    shared.readback.introduce_replicas().await;
    let result = load(&shared, &interrupt, options.start_at).await;
    stop.cancel();
    if let Some(p) = progress {
        let _ = p.await;
    }
    if let Some(task) = live {
        let _ = task.await;
    }
    // The last counts once the load has returned (an interrupted open
    // model counts its leftover arrivals as dropped on the way out); sent
    // once the last uploads have been read back, with their verdicts.
    let last_counts = live_feed.as_ref().map(|_| shared.live_counts());
    let engine_error = result.err().map(|e| {
        // Whatever was measured before the load failed is still returned to be written.
        tracing::error!("load engine stopped with an error: {e}");
        format!("load engine error: {e}")
    });
    let mut measurements = recorder.finish(RunInfo {
        interrupted: interrupts.reason().or(engine_error),
        ..info
    });
    let chaos = match chaos {
        Some(task) => task.await.ok(),
        None => None,
    };
    if let Some(task) = autoscaler {
        measurements.results.autoscaling = task.await.ok();
    }
    let windows = chaos
        .as_ref()
        .map(|c| c.report.windows(measurements.results.elapsed_s))
        .unwrap_or_default();
    measurements.results.sessions = shared.sessions.verdict(&windows);
    if let Some(ran) = chaos {
        measurements.results.chaos = Some(crate::chaos::runner::assess(
            ran,
            &measurements.results,
            &recorder,
            &scenario,
        ));
    }
    // The last uploads' read-backs run to the end of their windows (or a signal).
    let (consistency, visible) = shared.readback.finish().await;
    measurements.results.consistency = consistency;
    measurements.results.attribution = shared.replicas.attribution();
    measurements.visible = Some(visible).filter(|h| !h.is_empty());
    if let (Some(feed), Some(mut counts)) = (&live_feed, last_counts) {
        counts.settle(&recorder, &measurements.results.consistency);
        (feed.send)(counts, true);
    }
    drop(sigterm);
    watchdog.abort();
    interrupts.unregister();
    if measurements.results.interrupted.is_none() {
        // A signal during the read-backs of the last uploads.
        measurements.results.interrupted = interrupts.reason();
    }
    Ok(measurements)
}

/// Runs the load in the scenario's model, from `start_at` (or now).
async fn load(
    shared: &Arc<Shared>,
    interrupt: &CancellationToken,
    start_at: Option<SystemTime>,
) -> anyhow::Result<()> {
    match &shared.scenario.load {
        LoadPlan::Closed { stages } => {
            closed_run::run(Arc::clone(shared), stages, start_at, interrupt.clone()).await
        }
        LoadPlan::Open {
            stages,
            max_users,
            queue_timeout,
            arrivals,
        } => {
            let plan = open_run::OpenPlan {
                stages,
                max_users: *max_users,
                queue_timeout: *queue_timeout,
                arrivals: *arrivals,
            };
            open_run::run(Arc::clone(shared), plan, start_at).await
        }
    }
}

/// What the results say about the run before anything is measured.
fn run_info(scenario: &Scenario, run_id: &str) -> RunInfo {
    RunInfo {
        run_id: run_id.to_owned(),
        scenario: scenario.name.clone(),
        scenario_file: scenario.path.display().to_string(),
        target: scenario.target.display_url(),
        tls_unverified: !scenario.target.tls_verify,
        model: scenario.load.model(),
        setup_requests: Shared::setup_request_names(scenario),
        arrivals: match &scenario.load {
            LoadPlan::Open { arrivals, .. } => Some(arrivals.describe()),
            LoadPlan::Closed { .. } => None,
        },
        stage_targets: stage_targets(&scenario.load),
        interrupted: None,
        control_request: scenario.target.control.clone(),
    }
}

fn stage_targets(load: &LoadPlan) -> Vec<f64> {
    match load {
        LoadPlan::Open { stages, .. } => stages.iter().map(|s| s.rate).collect(),
        LoadPlan::Closed { stages } => stages.iter().map(|s| s.users as f64).collect(),
    }
}

/// What a second signal does before the process ends: hands `last_words`
/// everything measured so far, saying why the run ended.
fn forced_end(
    last_words: Box<dyn FnOnce(Measurements) + Send>,
    shared: &Arc<Shared>,
    interrupts: &Arc<signals::Interrupts>,
    info: RunInfo,
) -> signals::LastWords {
    let (shared, interrupts) = (Arc::clone(shared), Arc::clone(interrupts));
    Box::new(move || {
        let why = interrupts.reason().unwrap_or_default();
        let mut measured = shared.recorder.finish(RunInfo {
            interrupted: Some(format!("{why}, then forced to end by a second signal")),
            ..info
        });
        // Sessions are known at once; read-backs still running are not waited for.
        measured.results.sessions = shared.sessions.verdict(&[]);
        last_words(measured);
    })
}

/// A target that vanished (refusing connections, answering nothing for
/// `gone_after`) ends the run within seconds, like a signal, instead of
/// measuring refusals to the end of the plan.
fn watch_for_a_gone_target(
    shared: &Arc<Shared>,
    interrupts: &Arc<signals::Interrupts>,
    gone_after: Duration,
) -> JoinHandle<()> {
    let (shared, interrupts) = (Arc::clone(shared), Arc::clone(interrupts));
    tokio::spawn(async move {
        while !shared.stop.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if shared.recorder.has_begun() && shared.recorder.target_gone(gone_after) {
                interrupts.signal(&format!(
                    "target gone: connections refused and no answer for {} s",
                    gone_after.as_secs()
                ));
                return;
            }
        }
    })
}

/// Hands the counts to `feed` every `feed.every` while the load goes (the
/// last ones are handed by `run`, once the load has returned).
async fn feed_live(shared: Arc<Shared>, feed: Arc<LiveFeed>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(feed.every) => (feed.send)(shared.live_counts(), false),
            _ = stop.cancelled() => break,
        }
    }
}

async fn progress_line(recorder: Arc<Recorder>, stop: CancellationToken) {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(200));
    loop {
        let live = recorder.live();
        bar.set_message(format!(
            "{:>5.0}s  {:>6} req/s  p95 {:>8.1} ms  errors {} ({} total)  dropped {}",
            live.elapsed_s,
            live.last_second.requests,
            live.last_second.p95_ms,
            live.last_second.errors,
            live.failed,
            live.dropped
        ));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.cancelled() => break,
        }
    }
    bar.finish_and_clear();
}
