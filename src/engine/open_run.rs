//! The open model's run: the arrival schedule, and the users it starts.
//!
//! goose adds nothing here (its test plan ramps users, not arrivals), and a
//! goose user costs a client and channels before it does anything, so the
//! open model's users are plain tasks. One starts when an arrival finds no
//! idle user, up to `max_users` ([`super::open::Pool`]); memory follows the
//! arrivals in flight (rate × time in the system), not the plan's peak.
//!
//! A user keeps its own cookie jar, connections and values across the
//! arrivals it serves: it logs in once, like a clinician at a workstation,
//! and later arrivals run in its session. No user ever carries another's
//! cookies: a new user starts with an empty jar.

use super::iteration::{guarded, wait_for_start};
use super::open::{self, Arrival, Pool};
use super::user::{Flow, Shared, UserState};
use crate::scenario::{ArrivalProcess, OpenStage};
use anyhow::Context;
use reqwest::Client;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::task::JoinSet;

/// How long users get, once the load is over, to see the stop and end
/// before they are aborted (whatever they had in flight is already
/// abandoned and counted as cancelled).
const USERS_END_WITHIN: Duration = Duration::from_secs(2);

/// The open plan of a run.
pub(super) struct OpenPlan<'a> {
    pub stages: &'a [OpenStage],
    pub max_users: usize,
    pub queue_timeout: Duration,
    pub arrivals: ArrivalProcess,
}

/// Runs the arrival schedule from `start_at` (or now), lets the last
/// arrivals finish (bounded by the request timeout), then stops the users.
pub(super) async fn run(
    shared: Arc<Shared>,
    plan: OpenPlan<'_>,
    start_at: Option<SystemTime>,
) -> anyhow::Result<()> {
    // A client that cannot be built fails the run before any arrival, not
    // every user silently.
    shared
        .own_client()
        .context("cannot build an HTTP client for the users")?;
    let pool = Arc::new(Pool::new(plan.max_users, plan.queue_timeout));
    wait_for_start(start_at, &shared.stop).await;
    shared.recorder.begin();
    let start = shared.recorder.started();
    let scenario = Arc::clone(&shared.scenario);
    let mix = open::PersonaMix::new(scenario.personas.iter().map(|p| p.weight));
    let offsets = open::arrival_offsets(plan.stages, plan.arrivals);
    // The schedule keeps a thread of its own, for its timing (see
    // `open::schedule`); users it starts run on the runtime.
    let scheduler = tokio::task::spawn_blocking({
        let (shared, pool) = (Arc::clone(&shared), Arc::clone(&pool));
        move || {
            let mut users = JoinSet::new();
            open::schedule(
                open::shard_arrivals(offsets, mix, shared.scenario.shard),
                start,
                &pool,
                &shared.recorder,
                &shared.stop,
                |first| {
                    shared.recorder.user_started();
                    users.spawn(user(Arc::clone(&shared), Arc::clone(&pool), first));
                },
            );
            users
        }
    });
    let mut users = scheduler
        .await
        .context("the arrival scheduler ended abnormally")?;
    let drain_by = Instant::now() + scenario.target.timeout + Duration::from_secs(1);
    while pool.outstanding() > 0 && Instant::now() < drain_by && !shared.stop.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    pool.drop_leftovers(&shared.recorder);
    shared.stop.cancel();
    let ended = tokio::time::timeout(USERS_END_WITHIN, async {
        while users.join_next().await.is_some() {}
    })
    .await;
    if ended.is_err() {
        tracing::warn!(
            "{} users had not ended {} s after the load; aborted",
            users.len(),
            USERS_END_WITHIN.as_secs()
        );
        users.abort_all();
    }
    tracing::debug!("open model: {} users started", pool.users_started());
    Ok(())
}

/// One user: serves `first`, then every slot it takes while idle, until the
/// schedule is over or the run stops.
async fn user(shared: Arc<Shared>, pool: Arc<Pool>, first: Arrival) {
    let mut state = UserState::default();
    let mut client = None;
    let mut next = Some(first);
    while let Some(arrival) = next {
        // A new user, or one whose state was reset after a panic: a fresh
        // jar, and a client of its own around it.
        if state.jar.is_none() {
            match shared.own_client() {
                Ok((built, jar)) => {
                    client = Some(built);
                    state.jar = Some(jar);
                }
                Err(e) => {
                    let first_request = shared.scenario.personas[arrival.persona].steps[0].request;
                    shared.recorder.not_sent(
                        first_request,
                        &format!("cannot build the user's HTTP client: {e}"),
                    );
                    pool.done();
                    return;
                }
            }
        }
        if let Some(client) = &client {
            serve(&shared, client, &mut state, arrival).await;
        }
        pool.done();
        next = tokio::select! {
            a = pool.next(&shared.recorder) => a,
            () = shared.stop.cancelled() => None,
        };
    }
}

/// Runs one arrival's persona, its first request due at the arrival's instant.
async fn serve(shared: &Shared, client: &Client, state: &mut UserState, arrival: Arrival) {
    // Handed straight to an idle or new user: any delay since its instant
    // is the generator's own (a queued one waited for a user, which is the
    // target's doing).
    if !arrival.queued {
        shared.recorder.late(arrival.scheduled.elapsed());
    }
    let persona = &shared.scenario.personas[arrival.persona];
    let iteration = async {
        for step in 0..persona.steps.len() {
            let due = if step == 0 {
                arrival.scheduled
            } else {
                Instant::now()
            };
            if shared.step(client, state, arrival.persona, step, due).await == Flow::Stop {
                break;
            }
        }
    };
    if guarded(shared, iteration).await.is_none() {
        Shared::reset(state);
    }
}
