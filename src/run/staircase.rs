//! `surge calibrate`: a staircase of open-model rates against a target at a
//! known replica count, each step a full run with its own bundle, stopping by
//! itself past saturation (SLO broken on two steps, or arrivals dropped);
//! or the steps read back from an earlier multi-stage open-model bundle.
//! The analysis is `calibrate` (pure); this module only runs and reads.

use crate::bundle::Step;
use crate::calibrate::capacity::{saturated, step_of, Slo};
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
    Ok(Some((step_of(rate, &report.results), report.bundle)))
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

/// Steps from an earlier open-model bundle whose stages climbed: each stage's
/// cells merged into one step.
pub fn steps_from_bundle(dir: &Path) -> anyhow::Result<Vec<Step>> {
    let r = crate::bundle::read_results(dir)?;
    if r.model != "open" {
        anyhow::bail!(
            "{} is a {} model run: calibration needs open-model stages (arrival rates)",
            dir.display(),
            r.model
        );
    }
    let mut steps = Vec::new();
    for stage in &r.stages {
        let cells: Vec<_> = r.cells.iter().filter(|c| c.stage == stage.index).collect();
        let merged = crate::report::merged_latency(dir, cells.iter().copied())?;
        let count: u64 = cells.iter().map(|c| c.stats.count).sum();
        let failed: u64 = cells.iter().map(|c| c.stats.failed).sum();
        steps.push(Step::measured(
            stage.target,
            count,
            failed,
            stage.end_s - stage.start_s,
            &crate::bundle::Percentiles::from_hist(&merged),
            stage.dropped,
        ));
    }
    Ok(steps)
}
