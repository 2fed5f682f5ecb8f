//! The engine: builds a goose attack from a scenario and runs it in the
//! closed (virtual users) or open (arrival rate) model.
//!
//! Closed model: each persona is a goose scenario, each step a transaction,
//! and goose's test plan ramps and holds the users. Open model: no goose;
//! the arrival scheduler in [`open`] hands slots to plain user tasks that
//! start lazily (`open_run`). Every client shares one TLS configuration and
//! keeps its own cookie jar and connections (`client`).
//! Either way every request goes through [`user::Shared::exchange`], which
//! times it to the end of the body and feeds the recorder; goose's own
//! metrics are off. Ctrl-C (goose's handler) and SIGTERM (ours) stop the load,
//! abandon what is in flight (counted as cancelled) and still return every
//! measurement.

pub mod auth;
pub mod check;
mod client;
mod follow;
mod login;
pub mod open;
mod open_run;
pub mod readback;
mod render;
pub mod signals;
pub mod user;

use crate::bundle::Measurements;
use crate::measure::{Recorder, RunInfo};
use crate::scenario::{LoadPlan, Scenario};
use anyhow::Context;
use futures::FutureExt;
use goose::config::GooseConfiguration;
use goose::goose::Scenario as GooseScenario;
use goose::prelude::{GooseAttack, GooseDefault, GooseDefaultType, GooseUser, Transaction};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;
use user::{Shared, UserState};

/// How to run.
#[derive(Default)]
pub struct RunOptions {
    /// Run id, recorded in the results.
    pub run_id: String,
    /// Show a live progress line on the terminal.
    pub progress: bool,
    /// Faults to inject while the load runs.
    pub chaos: Option<crate::chaos::Chaos>,
    /// On a second Ctrl-C or SIGTERM: what to do with everything measured so
    /// far before the process ends (the CLI writes the bundle and exits 3).
    pub last_words: Option<Box<dyn FnOnce(Measurements) + Send>>,
    /// Begin the load at this instant, not before (shards of one test begin
    /// together); ready users wait for it.
    pub start_at: Option<SystemTime>,
}

/// Waits until `at` (if given and still ahead), or until `stop`.
async fn wait_for_start(at: Option<SystemTime>, stop: &CancellationToken) {
    let Some(ahead) = at.and_then(|at| at.duration_since(SystemTime::now()).ok()) else {
        return;
    };
    tokio::select! {
        () = tokio::time::sleep(ahead) => {}
        () = stop.cancelled() => {}
    }
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
    let info = RunInfo {
        run_id: options.run_id.clone(),
        scenario: scenario.name.clone(),
        scenario_file: scenario.path.display().to_string(),
        target: scenario.target.display_url(),
        tls_unverified: !scenario.target.tls_verify,
        model: scenario.load.model(),
        setup_requests: Shared::setup_request_names(&scenario),
        arrivals: match &scenario.load {
            LoadPlan::Open { arrivals, .. } => Some(arrivals.describe()),
            LoadPlan::Closed { .. } => None,
        },
        stage_targets: stage_targets(&scenario.load),
        interrupted: None,
        control_request: scenario.target.control.clone(),
    };

    // goose keeps its stop switch in a process-wide static; a previous run in
    // this process may have left it set.
    goose::reset_killswitch();
    let interrupts = signals::Interrupts::register(interrupt.clone());
    if let Some(last_words) = options.last_words {
        let recorder = Arc::clone(&recorder);
        let info = info.clone();
        let interrupts_reason = Arc::clone(&interrupts);
        let shared = Arc::clone(&shared);
        interrupts.on_force(Box::new(move || {
            let why = interrupts_reason.reason().unwrap_or_default();
            let mut measured = recorder.finish(RunInfo {
                interrupted: Some(format!("{why}, then forced to end by a second signal")),
                ..info
            });
            // Sessions are known at once; read-backs still running are not waited for.
            measured.results.sessions = shared.sessions.verdict(&[]);
            last_words(measured);
        }));
    }
    let sigterm = signals::SigtermWatch::start();
    // A target that vanished (refusing connections, answering nothing) ends
    // the run within seconds, like a signal, instead of measuring refusals
    // to the end of the plan.
    // With chaos, a target may rightly be away as long as it may take to recover.
    let gone_after = options.chaos.as_ref().map_or(TARGET_GONE_AFTER, |c| {
        c.plan.recover_within.max(TARGET_GONE_AFTER)
    });
    let watchdog = tokio::spawn({
        let (recorder, interrupts, stop) =
            (Arc::clone(&recorder), Arc::clone(&interrupts), stop.clone());
        async move {
            while !stop.is_cancelled() {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if recorder.has_begun() && recorder.target_gone(gone_after) {
                    interrupts.signal(&format!(
                        "target gone: connections refused and no answer for {} s",
                        gone_after.as_secs()
                    ));
                    return;
                }
            }
        }
    });
    // Once interrupted, goose's stop switch stays on until the load is over
    // (goose resets it when it finds surge's Ctrl-C handler in place of its own).
    let keep_stopped = tokio::spawn({
        let interrupt = interrupt.clone();
        async move {
            interrupt.cancelled().await;
            loop {
                if !goose::is_killswitch_triggered() {
                    goose::trigger_killswitch("surge: interrupted");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let progress = options
        .progress
        .then(|| tokio::spawn(progress_line(Arc::clone(&recorder), stop.clone())));
    let chaos = options.chaos.map(|chaos| {
        tokio::spawn(crate::chaos::runner::run(
            chaos,
            Arc::clone(&shared) as Arc<dyn crate::chaos::runner::LoadView>,
            scenario.load.duration(),
            stop.clone(),
        ))
    });

    // Before the first request: the listed replicas' own names for themselves.
    shared.readback.introduce_replicas().await;
    let result = match &scenario.load {
        LoadPlan::Closed { stages } => {
            let plan = closed_test_plan(stages);
            let attack = attack(&scenario)?.set_default(GooseDefault::TestPlan, plan.as_str())?;
            // goose would build each user a client of its own before the
            // user's first transaction replaces it with surge's (see
            // `take_state`): one shared client instead, built once.
            let attack = (*attack).set_client_builder_without_cookies(
                goose::client::GooseClientBuilder::new().without_cookies(),
            )?;
            let attack = register_personas(attack, &shared)?;
            wait_for_start(options.start_at, &stop).await;
            recorder.begin();
            attack
                .execute()
                .await
                .map(|_| ())
                .map_err(anyhow::Error::from)
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
            open_run::run(Arc::clone(&shared), plan, options.start_at).await
        }
    };
    stop.cancel();
    if let Some(p) = progress {
        let _ = p.await;
    }
    let engine_error = result.err().map(|e| {
        // Whatever was measured before goose failed is still returned to be written.
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
    drop(sigterm);
    keep_stopped.abort();
    watchdog.abort();
    interrupts.unregister();
    goose::reset_killswitch();
    if measurements.results.interrupted.is_none() {
        // A signal during the read-backs of the last uploads.
        measurements.results.interrupted = interrupts.reason();
    }
    Ok(measurements)
}

fn stage_targets(load: &LoadPlan) -> Vec<f64> {
    match load {
        LoadPlan::Open { stages, .. } => stages.iter().map(|s| s.rate).collect(),
        LoadPlan::Closed { stages } => stages.iter().map(|s| s.users as f64).collect(),
    }
}

/// Goose's test plan for closed stages: ramp to each stage's users, hold, and
/// stop everyone at the end.
pub fn closed_test_plan(stages: &[crate::scenario::ClosedStage]) -> String {
    let secs = |d: Duration| d.as_secs_f64().round() as u64;
    let mut steps: Vec<String> = stages
        .iter()
        .flat_map(|s| {
            [
                format!("{},{}s", s.users, secs(s.ramp.0)),
                format!("{},{}s", s.users, secs(s.hold.0)),
            ]
        })
        .collect();
    steps.push("0,0s".to_owned());
    steps.join(";")
}

fn attack(scenario: &Scenario) -> anyhow::Result<GooseAttack> {
    // Private fields rule out struct-literal syntax: start from the default.
    let mut config = GooseConfiguration::default();
    config.host = Some(scenario.target.base_url.clone());
    config.no_telnet = true;
    config.no_print_metrics = true;
    config.quiet = 1;
    config.no_error_summary = true;
    // surge records every request itself, to the end of the body; goose's own
    // metrics would time to the headers and cost throughput.
    config.no_metrics = true;
    config.timeout = Some(format!("{}", scenario.target.timeout.as_secs_f64()));
    config.accept_invalid_certs = !scenario.target.tls_verify;
    GooseAttack::initialize_with_config(config).context("cannot set up the goose load engine")
}

/// Runs a transaction body, turning a panic into a counted, reported event
/// instead of a silently dead user (goose would exit 0 either way). `None`
/// if it panicked; the caller then resets the user's session.
async fn guarded<T>(shared: &Shared, body: impl std::future::Future<Output = T>) -> Option<T> {
    match AssertUnwindSafe(body).catch_unwind().await {
        Ok(value) => Some(value),
        Err(_) => {
            tracing::error!("a virtual user panicked; its session is reset");
            shared.recorder.user_panicked();
            None
        }
    }
}

/// The user's state, and its client: on a user's first transaction (or after
/// a reset) a client with a cookie jar surge can read, so session continuity
/// counts only requests that carried the session.
fn take_state(user: &mut GooseUser, shared: &Shared) -> UserState {
    let mut state = user
        .get_session_data_mut::<UserState>()
        .map(std::mem::take)
        .unwrap_or_default();
    if state.jar.is_none() {
        match shared.own_client() {
            Ok((client, jar)) => {
                user.client = client;
                state.jar = Some(jar);
            }
            Err(e) => tracing::warn!("cannot give a user its own cookie jar: {e}"),
        }
    }
    state
}

fn register_personas(mut attack: GooseAttack, shared: &Arc<Shared>) -> anyhow::Result<GooseAttack> {
    for (p, persona) in shared.scenario.personas.iter().enumerate() {
        // A shard's part of a closed test may leave a persona to other shards.
        if persona.weight == 0 {
            continue;
        }
        let mut goose_scenario =
            GooseScenario::new(&persona.name).set_weight(persona.weight as usize)?;
        for step in 0..persona.steps.len() {
            let shared = Arc::clone(shared);
            let transaction = Transaction::new(Arc::new(move |user: &mut GooseUser| {
                let shared = Arc::clone(&shared);
                Box::pin(async move {
                    if shared.stop.is_cancelled() {
                        // Stopping: goose may run a few more transactions
                        // before its users exit. Build nothing, send nothing,
                        // and yield, so no user spins and starves the
                        // runtime that is shutting goose down.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        return Ok(());
                    }
                    let mut state = take_state(user, &shared);
                    let client = user.client.clone();
                    if guarded(
                        &shared,
                        shared.step(&client, &mut state, p, step, Instant::now()),
                    )
                    .await
                    .is_none()
                    {
                        Shared::reset(&mut state);
                    }
                    user.set_session_data(state);
                    Ok(())
                })
            }))
            .set_sequence(step + 1);
            goose_scenario = goose_scenario.register_transaction(transaction);
        }
        attack = attack.register_scenario(goose_scenario);
    }
    Ok(attack)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_plan_ramps_holds_and_stops() {
        let text = "[scenario]\nname='t'\n[target]\nbase_url='http://127.0.0.1:1'\n[load]\nmodel='closed'\n\
                    [[load.stages]]\nusers=5\nramp='10s'\nhold='30s'\n[[load.stages]]\nusers=2\nhold='5s'\n\
                    [[personas]]\nname='p'\nsteps=[{request='a'}]\n[requests.a]\npath='/'\n";
        let s = crate::scenario::Scenario::from_text(std::path::Path::new("t.toml"), text).unwrap();
        let LoadPlan::Closed { stages } = &s.load else {
            unreachable!()
        };
        assert_eq!(closed_test_plan(stages), "5,10s;5,30s;2,0s;2,5s;0,0s");
        assert!(closed_test_plan(stages)
            .parse::<goose::test_plan::TestPlan>()
            .is_ok());
    }

    #[tokio::test]
    async fn a_panicking_transaction_is_counted_and_the_run_goes_on() {
        let text = "[scenario]\nname='t'\n[target]\nbase_url='http://127.0.0.1:1'\n[load]\nmodel='closed'\n\
                    [[load.stages]]\nusers=1\nhold='1s'\n[[personas]]\nname='p'\nsteps=[{request='a'}]\n[requests.a]\npath='/'\n";
        let scenario = Arc::new(
            crate::scenario::Scenario::from_text(std::path::Path::new("t.toml"), text).unwrap(),
        );
        let recorder = Arc::new(Recorder::new(vec!["a".into()], scenario.load.stage_ends()));
        let shared = Shared::new(
            scenario,
            Arc::clone(&recorder),
            CancellationToken::new(),
            CancellationToken::new(),
        );
        let panicked: Option<()> =
            guarded(&shared, async { panic!("a bug in a transaction") }).await;
        assert!(panicked.is_none());
        assert_eq!(guarded(&shared, async { 7 }).await, Some(7));
        assert_eq!(recorder.finish(RunInfo::default()).results.user_panics, 1);
    }
}
