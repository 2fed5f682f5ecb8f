//! The closed model's run: a fixed number of virtual users, ramped and held
//! by goose.
//!
//! Each persona is a goose scenario and each of its steps a transaction;
//! goose's test plan ramps to each stage's users, holds them, and stops
//! everyone at the end. goose only schedules: every request goes through
//! surge's own client and [`super::user::Shared::step`], and goose's own
//! metrics are off. The open model, which goose cannot drive (its test plan
//! ramps users, not arrivals), is `open_run`.
//!
//! goose keeps its stop switch in a process-wide static: this module resets
//! it before the load and keeps it on once the run is interrupted (goose
//! resets it when it finds surge's Ctrl-C handler in place of its own).

use super::iteration::{guarded, wait_for_start};
use super::user::{Shared, UserState};
use crate::scenario::{ClosedStage, Scenario};
use anyhow::Context;
use goose::config::GooseConfiguration;
use goose::goose::Scenario as GooseScenario;
use goose::prelude::{GooseAttack, GooseDefault, GooseDefaultType, GooseUser, Transaction};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;

/// Runs the closed `stages` from `start_at` (or now) until goose's test
/// plan ends or `interrupt` stops it.
pub(super) async fn run(
    shared: Arc<Shared>,
    stages: &[ClosedStage],
    start_at: Option<SystemTime>,
    interrupt: CancellationToken,
) -> anyhow::Result<()> {
    let _stop_switch = StopSwitch::hold(interrupt);
    let plan = closed_test_plan(stages);
    let attack = attack(&shared.scenario)?.set_default(GooseDefault::TestPlan, plan.as_str())?;
    // goose would build each user a client of its own before the
    // user's first transaction replaces it with surge's (see
    // `take_state`): one shared client instead, built once.
    let attack = (*attack).set_client_builder_without_cookies(
        goose::client::GooseClientBuilder::new().without_cookies(),
    )?;
    let attack = register_personas(attack, &shared)?;
    wait_for_start(start_at, &shared.stop).await;
    shared.recorder.begin();
    attack
        .execute()
        .await
        .map(|_| ())
        .map_err(anyhow::Error::from)
}

/// goose's process-wide stop switch for one run: reset when taken (a
/// previous run in this process may have left it set), kept on once
/// `interrupt` fires, and reset again when dropped.
struct StopSwitch(tokio::task::JoinHandle<()>);

impl StopSwitch {
    fn hold(interrupt: CancellationToken) -> StopSwitch {
        goose::reset_killswitch();
        StopSwitch(tokio::spawn(async move {
            interrupt.cancelled().await;
            loop {
                if !goose::is_killswitch_triggered() {
                    goose::trigger_killswitch("surge: interrupted");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }))
    }
}

impl Drop for StopSwitch {
    fn drop(&mut self) {
        self.0.abort();
        goose::reset_killswitch();
    }
}

/// Goose's test plan for closed stages: ramp to each stage's users, hold, and
/// stop everyone at the end.
fn closed_test_plan(stages: &[ClosedStage]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::LoadPlan;

    #[test]
    fn closed_plan_ramps_holds_and_stops() {
        let s = crate::scenario::sample::scenario(
            crate::scenario::sample::LOOPBACK,
            "model = 'closed'\n[[load.stages]]\nusers = 5\nramp = '10s'\nhold = '30s'\n\
             [[load.stages]]\nusers = 2\nhold = '5s'",
        );
        let LoadPlan::Closed { stages } = &s.load else {
            unreachable!()
        };
        assert_eq!(closed_test_plan(stages), "5,10s;5,30s;2,0s;2,5s;0,0s");
        assert!(closed_test_plan(stages)
            .parse::<goose::test_plan::TestPlan>()
            .is_ok());
    }
}
