//! `surge calibrate`: a staircase of open-model rates against a target at a
//! known replica count, each step a full run with its own bundle, stopping by
//! itself past saturation (SLO broken on two steps, or arrivals dropped);
//! or the steps read back from an earlier multi-stage open-model bundle.
//! The analysis is `calibrate` (pure); this module only runs and reads.

use crate::bundle::{CellStats, Percentiles, RunResults, StageStats, Stats, Step};
use crate::calibrate::capacity::{backlog_trend, saturated, Slo};
use crate::run::{RunError, RunRequest};
use crate::scenario::{ArrivalProcess, LoadOverride};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How to climb.
#[derive(Debug, Clone)]
pub struct Staircase {
    /// Scenario to replay at each step.
    pub scenario: PathBuf,
    /// Target base URL instead of the scenario's.
    pub target: Option<String>,
    /// First step's arrival rate, per second.
    pub start_rate: f64,
    /// Added at each step, per second.
    pub step_rate: f64,
    /// Length of each step.
    pub step_duration: Duration,
    /// At most this many steps.
    pub max_steps: usize,
    /// How each step's arrivals are spaced (calibration: Poisson, as
    /// production traffic comes, unless asked otherwise).
    pub arrivals: ArrivalProcess,
    /// The SLO that decides when to stop.
    pub slo: Slo,
    /// Where the steps' bundles go.
    pub out_dir: PathBuf,
    /// Load at the start rate before the first step, not measured: a JVM
    /// target's first minute is its JIT compiling, not its capacity.
    pub warm_up: Duration,
}

/// Runs one step at `rate`; `None` if it was interrupted (a stopped step is
/// not a measurement of the rate it was meant to hold).
pub async fn run_step(s: &Staircase, rate: f64) -> Result<Option<(Step, PathBuf)>, RunError> {
    let request = RunRequest {
        scenario: s.scenario.clone(),
        target: s.target.clone(),
        load: LoadOverride {
            rate: Some(rate),
            duration: Some(s.step_duration),
            arrivals: Some(s.arrivals),
            ..Default::default()
        },
        out_dir: s.out_dir.clone(),
        exit_on_second_signal: true,
        ..Default::default()
    };
    let report = super::run(&request).await?;
    if report.results.interrupted.is_some() {
        return Ok(None);
    }
    // The whole run is the step. Throughput counts until the last request
    // completed (at least the planned time), so a server that fell behind
    // and drained a backlog shows its true rate.
    let r = &report.results;
    let stage = r
        .stages
        .first()
        .ok_or_else(|| anyhow::anyhow!("step at {rate}/s: the run has no stage"))?;
    let step = stage_step(&report.bundle, r, stage, rate, r.busy_s.max(r.planned_s))?;
    Ok(Some((step, report.bundle)))
}

/// Climbs until saturation or `max_steps`; `each` sees every step as it ends.
pub async fn climb(
    s: &Staircase,
    mut each: impl FnMut(&Step, &Path),
) -> Result<Vec<Step>, RunError> {
    let mut steps = Vec::new();
    for k in 0..s.max_steps {
        let rate = s.start_rate + s.step_rate * k as f64;
        let Some((step, bundle)) = run_step(s, rate).await? else {
            break;
        };
        each(&step, &bundle);
        steps.push(step);
        if saturated(&steps, &s.slo) {
            break;
        }
    }
    Ok(steps)
}

/// Steps from an earlier open-model bundle whose stages climbed: one per stage.
pub fn steps_from_bundle(dir: &Path) -> anyhow::Result<Vec<Step>> {
    let r = crate::bundle::read_results(dir)?;
    if r.model != "open" {
        anyhow::bail!(
            "{} is a {} model run: calibration needs open-model stages (arrival rates)",
            dir.display(),
            r.model
        );
    }
    r.stages
        .iter()
        .map(|stage| stage_step(dir, &r, stage, stage.target, stage.end_s - stage.start_s))
        .collect()
}

/// One step from stage `stage` of the bundle in `dir`, over `seconds`: its
/// work requests merged, and the run's setup requests (logins, token
/// fetches) counted apart: a user makes them once, however many arrivals
/// it serves, so they are not capacity.
fn stage_step(
    dir: &Path,
    r: &RunResults,
    stage: &StageStats,
    rate: f64,
    seconds: f64,
) -> anyhow::Result<Step> {
    let is_setup = |name: &str| r.setup_requests.iter().any(|s| s == name);
    let (work, setup): (Vec<&CellStats>, Vec<&CellStats>) = r
        .cells
        .iter()
        .filter(|c| c.stage == stage.index)
        .partition(|c| !is_setup(&c.request));
    let merged = crate::report::merged_latency(dir, work.iter().copied())?;
    let seconds = seconds.max(1e-9);
    let sum = |cells: &[&CellStats], of: fn(&Stats) -> u64| {
        cells.iter().map(|c| of(&c.stats)).sum::<u64>()
    };
    let mut step = Step::measured(
        rate,
        sum(&work, |s| s.count),
        sum(&work, |s| s.failed),
        seconds,
        &Percentiles::from_hist(&merged),
        stage.dropped,
    );
    for cell in &work {
        *step.by_request.entry(cell.request.clone()).or_default() +=
            cell.stats.count as f64 / seconds;
    }
    step.setup_per_s = sum(&setup, |s| s.count) as f64 / seconds;
    step.work_per_arrival = work_per_arrival(r, stage, &work, &is_setup);
    let planned = stage.end_s - stage.start_s;
    step.arrivals_per_s = (planned > 0.0).then(|| stage.arrivals as f64 / planned);
    step.p95_trend_ms = p95_trend(r, stage.start_s, stage.end_s, &is_setup);
    Ok(step)
}

/// Work requests per arrival: exact for a run of one stage (requests
/// issued ÷ arrivals admitted); for a stage of a longer run, the requests
/// the stage completed ÷ its admitted arrivals. None without arrivals.
fn work_per_arrival(
    r: &RunResults,
    stage: &StageStats,
    work: &[&CellStats],
    is_setup: &dyn Fn(&str) -> bool,
) -> Option<f64> {
    let admitted = stage.arrivals.saturating_sub(stage.dropped);
    let requests: u64 = if r.stages.len() == 1 {
        r.requests
            .iter()
            .filter(|s| !is_setup(&s.name))
            .map(|s| s.issued)
            .sum()
    } else {
        work.iter().map(|c| c.stats.count).sum()
    };
    (admitted > 0 && requests > 0).then(|| requests as f64 / admitted as f64)
}

/// The worst work request's p95, second by second within `[from_s,
/// to_s)`, summarised by [`backlog_trend`].
fn p95_trend(
    r: &RunResults,
    from_s: f64,
    to_s: f64,
    is_setup: &dyn Fn(&str) -> bool,
) -> Option<(f64, f64)> {
    let mut worst: std::collections::BTreeMap<u64, f64> = Default::default();
    for timeline in r.request_timelines.iter().filter(|t| !is_setup(&t.request)) {
        for row in &timeline.rows {
            let at = row.second as f64;
            if row.requests > 0 && at >= from_s && at < to_s {
                let p95 = worst.entry(row.second).or_default();
                *p95 = p95.max(row.p95_ms);
            }
        }
    }
    backlog_trend(&worst.into_values().collect::<Vec<_>>())
}
