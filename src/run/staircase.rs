//! `surge calibrate`: a staircase of open-model rates against a target at a
//! known replica count, each step a full run with its own bundle, stopping by
//! itself past saturation (SLO broken on two steps, or arrivals dropped);
//! or the steps read back from an earlier multi-stage open-model bundle.
//! A step that broke the SLO below a step that met it is run once more at
//! its rate, and the climb stops if it breaks the SLO again
//! (`calibrate::slo_breaks` decides; this module runs what it says). Once
//! the climb is over, the capacity is narrowed by bisection between the
//! step below the cutoff and the cutoff (`calibrate::bisection` decides).
//! The analysis is `calibrate` (pure); this module only runs and reads.

use crate::bundle::{CellStats, Percentiles, RunResults, StageStats, Stats, Step};
use crate::calibrate::bisection;
use crate::calibrate::capacity::{backlog_trend, Slo};
use crate::calibrate::slo_breaks::{next_move, NextMove, Remeasure};
use crate::run::pod_cpu::{now_unix, PodCpuWatch};
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
    /// Where the steps' bundles go.
    pub out_dir: PathBuf,
    /// Load at the start rate before the first step, not measured: a JVM
    /// target's first minute is its JIT compiling, not its capacity.
    pub warm_up: Duration,
    /// Narrow the capacity by bisection until the rates either side of it
    /// are within this fraction (0: no bisection).
    pub precision: f64,
}

/// Most steps in one staircase.
pub const MAX_STEPS: usize = 100;

impl Staircase {
    /// Every number in range, each error naming its option, before
    /// anything is sent.
    pub fn check(&self) -> Result<(), String> {
        use crate::scenario::limits::{check_duration, check_range, MAX_RATE};
        // WHY is_nan: NaN fails every comparison and must fail here too.
        if self.start_rate.is_nan() || self.start_rate <= 0.0 {
            return Err(format!(
                "--start-rate {} is out of range: expected more than 0 to {MAX_RATE}",
                self.start_rate
            ));
        }
        check_range("--start-rate", self.start_rate, 0.0, MAX_RATE)?;
        check_range("--step-rate", self.step_rate, 0.0, MAX_RATE)?;
        check_range("--max-steps", self.max_steps, 1, MAX_STEPS)?;
        let top = self.start_rate + self.step_rate * (self.max_steps - 1) as f64;
        if top > MAX_RATE {
            return Err(format!(
                "the staircase would reach {top}/s at its last step (--start-rate + --step-rate × (--max-steps − 1)): at most {MAX_RATE}/s"
            ));
        }
        if self.step_duration.is_zero() {
            return Err("--step-duration must be more than zero".into());
        }
        check_duration("--step-duration", self.step_duration)?;
        check_duration("--warm-up", self.warm_up)?;
        check_range("--precision (%)", self.precision * 100.0, 0.0, 50.0)?;
        Ok(())
    }
}

/// One step's run.
#[derive(Debug)]
pub enum StepRun {
    /// Measured at its rate; its bundle.
    Measured(Box<Step>, PathBuf),
    /// Stopped by a signal, and why: not a measurement of the rate it was
    /// meant to hold.
    Interrupted(String),
}

/// A climb: the steps measured, the steps measured twice, and why it
/// stopped early if a signal did.
#[derive(Debug, Default)]
pub struct Climb {
    /// The steps, in order, each with its latest measurement.
    pub steps: Vec<Step>,
    /// The steps measured once more, with both measurements.
    pub remeasures: Vec<Remeasure>,
    /// Why the climb was interrupted, if it was.
    pub interrupted: Option<String>,
}

/// Which measurement of a step a climb reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// The step's first measurement.
    First,
    /// The re-measure of the step with this index: it broke the SLO while
    /// a step above it met it.
    Remeasure(usize),
    /// A bisection step, to go at this index among the steps (rate order).
    Bisect(usize),
}

/// Runs one step at `rate`.
pub async fn run_step(s: &Staircase, rate: f64) -> Result<StepRun, RunError> {
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
    if let Some(why) = &report.results.interrupted {
        return Ok(StepRun::Interrupted(why.clone()));
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
    Ok(StepRun::Measured(Box::new(step), report.bundle))
}

/// Runs one step at `rate`, unless `stopped` says the job was stopped
/// (between its runs) before it began: then nothing runs and the step is
/// [`StepRun::Interrupted`] with that reason, as if a signal had cut it.
pub async fn run_step_unless_stopped(
    s: &Staircase,
    rate: f64,
    stopped: &dyn Fn() -> Option<String>,
) -> Result<StepRun, RunError> {
    match stopped() {
        Some(why) => Ok(StepRun::Interrupted(why)),
        None => run_step(s, rate).await,
    }
}

/// Climbs until saturation, a break of `slo` that stands below a step
/// that met it, `max_steps`, or a signal (during a step, or between steps:
/// `stopped` says why); `each` sees every measurement as it ends, a
/// re-measure too. With `cpu`, each measurement gets the pods' CPU over
/// its run.
pub async fn climb(
    s: &Staircase,
    slo: &Slo,
    stopped: &dyn Fn() -> Option<String>,
    cpu: Option<&PodCpuWatch>,
    mut each: impl FnMut(&Step, &Path, Pass),
) -> Result<Climb, RunError> {
    let mut climb = Climb::default();
    while let Some((rate, pass)) = next_measurement(s, slo, &climb) {
        let from = now_unix();
        match run_step_unless_stopped(s, rate, stopped).await? {
            StepRun::Measured(step, bundle) => {
                let mut step = *step;
                if let Some(cpu) = cpu {
                    step.cpu = cpu.during(from, now_unix()).await;
                }
                each(&step, &bundle, pass);
                match pass {
                    Pass::First => climb.steps.push(step),
                    Pass::Remeasure(i) => {
                        climb
                            .remeasures
                            .push(Remeasure::record(&mut climb.steps, i, step))
                    }
                    Pass::Bisect(at) => {
                        bisection::insert(&mut climb.steps, &mut climb.remeasures, at, step)
                    }
                }
            }
            StepRun::Interrupted(why) => {
                climb.interrupted = Some(why);
                break;
            }
        }
    }
    Ok(climb)
}

/// What a climb measures next, at what rate: the re-measure
/// [`next_move`] asks for, else the next step up while `max_steps` allows,
/// else a bisection step while the capacity is not yet narrowed; None when
/// the climb is over. A re-measure that meets the SLO may leave another
/// break below a met step to re-measure; one that breaks it again stops
/// the climb.
fn next_measurement(s: &Staircase, slo: &Slo, climb: &Climb) -> Option<(f64, Pass)> {
    let bisect = || {
        (s.precision > 0.0)
            .then(|| bisection::next(&climb.steps, slo, s.precision))
            .flatten()
            .map(|(rate, at)| (rate, Pass::Bisect(at)))
    };
    let climbed = climb.steps.iter().filter(|step| !step.bisected).count();
    match next_move(&climb.steps, &climb.remeasures, slo) {
        NextMove::Stop => bisect(),
        NextMove::Remeasure(i) => Some((climb.steps[i].rate, Pass::Remeasure(i))),
        NextMove::Climb
            if climbed < s.max_steps && !climb.steps.iter().any(|step| step.bisected) =>
        {
            Some((s.start_rate + s.step_rate * climbed as f64, Pass::First))
        }
        NextMove::Climb => bisect(),
    }
}

/// Steps from an earlier open-model bundle whose stages climbed: one per stage.
pub fn steps_from_bundle(dir: &Path) -> anyhow::Result<Vec<Step>> {
    let r = crate::bundle::read_results(dir)?;
    if r.model != crate::bundle::LoadModel::Open {
        anyhow::bail!(
            "{} is a {} model run: calibration needs open-model stages (arrival rates)",
            dir.display(),
            r.model
        );
    }
    // A quiet spell (rate 0) measures nothing: not a step.
    r.stages
        .iter()
        .filter(|stage| stage.target > 0.0)
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
    // A run of one stage is one step: all its read-backs are the step's,
    // those sent while the last uploads' windows closed too. A stage of a
    // longer run has those sent in its seconds (None from a bundle that
    // does not say when they were sent).
    let read_backs = &r.consistency.read_backs;
    step.read_backs_per_s = if r.stages.len() == 1 {
        Some(read_backs.total() as f64 / r.elapsed_s.max(1e-9))
    } else {
        read_backs.per_s_within(stage.start_s, stage.end_s)
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stairs() -> Staircase {
        Staircase {
            scenario: "s.toml".into(),
            target: None,
            start_rate: 10.0,
            step_rate: 10.0,
            step_duration: Duration::from_secs(10),
            max_steps: 6,
            arrivals: ArrivalProcess::Uniform,
            out_dir: "out".into(),
            warm_up: Duration::ZERO,
            precision: 0.0,
        }
    }

    /// Each number out of range is refused naming its own option; a
    /// sensible staircase passes.
    #[test]
    fn a_staircase_out_of_range_names_the_option() {
        assert_eq!(stairs().check(), Ok(()));
        let refused = |s: Staircase| s.check().unwrap_err();
        for (bad, option) in [
            (
                Staircase {
                    start_rate: 0.0,
                    ..stairs()
                },
                "--start-rate",
            ),
            (
                Staircase {
                    start_rate: f64::NAN,
                    ..stairs()
                },
                "--start-rate",
            ),
            (
                Staircase {
                    step_rate: -1.0,
                    ..stairs()
                },
                "--step-rate",
            ),
            (
                Staircase {
                    step_rate: f64::INFINITY,
                    ..stairs()
                },
                "--step-rate",
            ),
            (
                Staircase {
                    max_steps: 0,
                    ..stairs()
                },
                "--max-steps",
            ),
            (
                Staircase {
                    max_steps: 101,
                    ..stairs()
                },
                "--max-steps",
            ),
            (
                Staircase {
                    step_rate: 20_000.0,
                    ..stairs()
                },
                "--step-rate ×",
            ),
            (
                Staircase {
                    step_duration: Duration::ZERO,
                    ..stairs()
                },
                "--step-duration",
            ),
            (
                Staircase {
                    warm_up: Duration::from_secs(31 * 86_400),
                    ..stairs()
                },
                "--warm-up",
            ),
        ] {
            let why = refused(bad);
            assert!(why.contains(option), "{option}: {why}");
        }
    }
}
