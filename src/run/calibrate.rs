//! `surge calibrate` end to end: the staircase of runs (or the stages of an
//! earlier bundle), the pool metrics scraped beside it, the analysis, an
//! optional replay at the recommended rate, and the calibration bundle
//! (`calibration.json`, `calibration.html`, `recommendations.yaml`).

use super::staircase::{self, Staircase};
use super::RunError;
use crate::calibrate::capacity::Slo;
use crate::calibrate::{self, Calibration, Demand};
use crate::report::Recommendations;
use crate::scenario::ArrivalProcess;
use std::path::PathBuf;
use std::time::Duration;

/// Where the steps come from.
#[derive(Debug, Clone)]
pub enum StepSource {
    /// Climb a staircase of runs now.
    Climb(Staircase),
    /// The stages of an earlier open-model bundle.
    FromBundle(PathBuf),
}

/// What to calibrate and how.
#[derive(Debug, Clone)]
pub struct CalibrateRequest {
    /// The steps.
    pub source: StepSource,
    /// Replicas serving during the measurement.
    pub replicas: u32,
    /// The SLO capacity is measured against.
    pub slo: Slo,
    /// What the operator knows; `hold_s` is the given hold time (None:
    /// measured from the pool metrics, when scraped).
    pub demand: Demand,
    /// Take the pod start-up time from this chaos run's bundle instead.
    pub pod_start_from: Option<PathBuf>,
    /// Replay at the recommended rate and check the SLO holds.
    pub verify: bool,
    /// Prometheus endpoints scraped for the pool series during the climb.
    pub metrics_urls: Vec<String>,
    /// What the manifests are written for.
    pub recommendations: Recommendations,
    /// The calibration bundle folder.
    pub dir: PathBuf,
}

/// A finished calibration.
#[derive(Debug)]
pub struct CalibrateReport {
    /// Everything concluded, with its reasons.
    pub calibration: Calibration,
    /// The calibration bundle folder.
    pub dir: PathBuf,
    /// False when the replay at the recommended rate broke the SLO (or did not finish).
    pub verified: bool,
}

impl CalibrateReport {
    /// A recommendation was made and, when replayed, held the SLO.
    pub fn passed(&self) -> bool {
        self.calibration.hpa.is_some() && self.verified
    }
}

/// Runs the calibration; `say` hears each step as it completes.
pub async fn calibrate(
    request: &CalibrateRequest,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<CalibrateReport, RunError> {
    let mut pool_samples = Vec::new();
    let steps = match &request.source {
        StepSource::FromBundle(bundle) => staircase::steps_from_bundle(bundle)?,
        StepSource::Climb(stairs) => {
            say(format!(
                "staircase: up to {} steps of {:?} from {}/s by {}/s, {}, SLO p99 ≤ {:.0} ms",
                stairs.max_steps,
                stairs.step_duration,
                stairs.start_rate,
                stairs.step_rate,
                stairs.arrivals.describe(),
                request.slo.p99_ms
            ));
            let scraper = (!request.metrics_urls.is_empty()).then(|| {
                super::scrape::Scraper::start(request.metrics_urls.clone(), Duration::from_secs(1))
            });
            let climbed = staircase::climb(stairs, |s, bundle| {
                say(format!(
                    "  {:.1}/s offered → {:.1}/s achieved, p99 {:.1} ms, errors {:.2}%, dropped {} ({})",
                    s.rate,
                    s.achieved,
                    s.p99_ms,
                    s.error_rate * 100.0,
                    s.dropped,
                    bundle.display()
                ))
            })
            .await;
            if let Some(scraper) = scraper {
                pool_samples = scraper.finish().await;
            }
            climbed?
        }
    };
    if steps.is_empty() {
        return Err(RunError::Usage("no step completed".to_owned()));
    }
    let mut demand = request.demand.clone();
    if let Some(bundle) = &request.pod_start_from {
        let (median, why) = crate::bundle::startup_from_bundle(bundle).map_err(|e| {
            RunError::Usage(format!("--pod-start-from {}: {e:#}", bundle.display()))
        })?;
        say(why);
        demand.pod_start_s = median;
    }
    let measured_hold = calibrate::pool::hold_time(&pool_samples);
    let hold_given = demand.hold_s.is_some();
    demand.hold_s = demand.hold_s.or(measured_hold.map(|(hold, _)| hold));
    let mut result = calibrate::analyse(steps, request.replicas, request.slo, &demand);
    if !pool_samples.is_empty() {
        result.reasons.insert(
            0,
            calibrate::pool::measured_hold_reason(measured_hold, &pool_samples, hold_given),
        );
        let recommended = result.pool.as_ref().map(|p| p.size);
        if let Some(bound) =
            calibrate::pool::bound_reason(&pool_samples, demand.hold_s, recommended)
        {
            result.reasons.insert(1, bound);
        }
        result.pool_metrics = pool_samples;
    }
    if let StepSource::Climb(stairs) = &request.source {
        result.reasons.insert(
            0,
            match stairs.arrivals {
                ArrivalProcess::Poisson { seed } => format!(
                    "each step's arrivals were a Poisson process (seed {seed}): bursty, as production traffic comes, so a step near capacity queues as it would in production"
                ),
                ArrivalProcess::Uniform => "each step's arrivals were evenly spaced (--arrivals uniform): near capacity this hides the queueing bursty production traffic causes".to_owned(),
            },
        );
    }
    let mut verified = true;
    if let (true, StepSource::Climb(stairs), Some(plan)) =
        (request.verify, &request.source, &result.hpa)
    {
        // The target is in work requests; the replay offers arrivals, each
        // making the capacity step's work per arrival.
        let rate = plan.target_per_pod * request.replicas as f64;
        let per_arrival = result
            .capacity_step
            .and_then(|i| result.steps[i].work_per_arrival)
            .unwrap_or(1.0);
        let arrivals = rate / per_arrival;
        verified = match staircase::run_step(stairs, arrivals).await {
            Ok(Some((step, _))) => {
                let held = step.meets(&request.slo);
                result.reasons.push(format!(
                    "verification: {arrivals:.1} arrivals/s ({} work req/s, the HPA target × {} replicas) gave p99 {:.0} ms, errors {:.2}%: {}",
                    format_args!("{rate:.1}"),
                    request.replicas,
                    step.p99_ms,
                    step.error_rate * 100.0,
                    if held { "the SLO holds" } else { "the SLO does NOT hold" }
                ));
                result.verification = Some(step);
                held
            }
            Ok(None) => false,
            Err(e) => {
                result.reasons.push(format!(
                    "verification: the replay failed: {}",
                    crate::scenario::redact_text(&e.to_string())
                ));
                false
            }
        };
    }
    crate::report::write_calibration(&request.dir, &result, &request.recommendations)
        .map_err(|e| RunError::Other(e.context("cannot write the calibration")))?;
    Ok(CalibrateReport {
        calibration: result,
        dir: request.dir.clone(),
        verified,
    })
}
