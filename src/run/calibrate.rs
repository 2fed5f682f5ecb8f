//! `surge calibrate` end to end: the staircase of runs (or the stages of an
//! earlier bundle), the pool metrics scraped beside it, the analysis, an
//! optional replay at the recommended rate, and the calibration bundle
//! (`calibration.json`, `calibration.html`, `recommendations.yaml`).

use super::staircase::{self, Pass, Staircase, StepRun};
use super::RunError;
use crate::calibrate::capacity::Slo;
use crate::calibrate::slo_breaks::rate_text;
use crate::calibrate::{self, Calibration, Demand, Measurements};
use crate::engine::signals::JobSignals;
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

/// Runs the calibration; `say` hears each step as it completes. Ctrl-C or
/// SIGTERM (during a step or between steps) ends the climb: the steps
/// measured before it are analysed and written, nothing more is run, and
/// the calibration says it was interrupted; with no step measured, the
/// error is [`RunError::Interrupted`].
pub async fn calibrate(
    request: &CalibrateRequest,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<CalibrateReport, RunError> {
    // Each step's run takes the signals while it lasts; between runs
    // (the drain wait, the analysis) the calibration does.
    let signals = JobSignals::register();
    let mut interrupted = None;
    let mut pool_samples = Vec::new();
    let (steps, remeasures) = match &request.source {
        StepSource::FromBundle(bundle) => (staircase::steps_from_bundle(bundle)?, Vec::new()),
        StepSource::Climb(stairs) => {
            stairs.check().map_err(RunError::Usage)?;
            say(format!(
                "staircase: up to {} steps of {:?} from {}/s by {}/s, {}, SLO p99 ≤ {:.0} ms",
                stairs.max_steps,
                stairs.step_duration,
                stairs.start_rate,
                stairs.step_rate,
                stairs.arrivals.describe(),
                request.slo.p99_ms
            ));
            if !stairs.warm_up.is_zero() {
                let warm = staircase::Staircase {
                    step_duration: stairs.warm_up,
                    out_dir: stairs.out_dir.join("warm-up"),
                    ..stairs.clone()
                };
                match staircase::run_step(&warm, stairs.start_rate).await? {
                    StepRun::Measured(s, _) => say(format!(
                        "  warm-up, not measured: {:?} at {:.1}/s (p99 {:.1} ms, errors {:.2}%)",
                        stairs.warm_up,
                        stairs.start_rate,
                        s.p99_ms,
                        s.error_rate * 100.0
                    )),
                    StepRun::Interrupted(why) => {
                        return Err(RunError::Interrupted(format!(
                            "{why} during the warm-up: nothing measured, nothing written"
                        )))
                    }
                }
            }
            let scraper = super::scrape::Scraper::over(&request.metrics_urls);
            let climbed = staircase::climb(stairs, &|| signals.reason(), |s, bundle, pass| {
                let which = match pass {
                    Pass::First => String::new(),
                    Pass::Remeasure(i) => format!(
                        "re-measure of step {} at {} (it broke the SLO, a step above met it): ",
                        i + 1,
                        rate_text(s.rate)
                    ),
                };
                say(format!(
                    "  {which}{:.1}/s offered → {:.1}/s achieved, p99 {:.1} ms, errors {:.2}%, dropped {}{} ({})",
                    s.rate,
                    s.achieved,
                    s.p99_ms,
                    s.error_rate * 100.0,
                    s.dropped,
                    s.read_backs_text(),
                    bundle.display()
                ))
            })
            .await;
            if let Some(scraper) = scraper {
                pool_samples = scraper.finish().await;
            }
            let climbed = climbed?;
            interrupted = climbed.interrupted;
            (climbed.steps, climbed.remeasures)
        }
    };
    if steps.is_empty() {
        return Err(match interrupted {
            Some(why) => RunError::Interrupted(format!(
                "{why} before the first step ended: nothing measured, nothing written"
            )),
            None => RunError::Usage("no step completed".to_owned()),
        });
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
    let measurements = Measurements {
        steps,
        remeasures,
        pool_samples,
    };
    // Checkouts per work request: the pools' checkouts over the staircase ÷
    // the work requests it completed (setup requests, few, counted in the
    // checkouts only).
    if let (Some((_, checkouts)), StepSource::Climb(stairs)) = (measured_hold, &request.source) {
        let requests = measurements.work_requests_completed(stairs.step_duration.as_secs_f64());
        if requests > 0.0 {
            demand.checkouts_per_request = Some(checkouts / requests);
        }
    }
    let hold_reason = (!measurements.pool_samples.is_empty()).then(|| {
        calibrate::pool::measured_hold_reason(measured_hold, &measurements.pool_samples, hold_given)
    });
    let mut result =
        calibrate::analyse_measurements(measurements, request.replicas, request.slo, &demand);
    if let Some(hold_reason) = hold_reason {
        result.reasons.insert(0, hold_reason);
        if let Some(k) = demand.checkouts_per_request {
            result.reasons.insert(
                1,
                format!("{k:.1} connection checkouts per work request: the pools' checkouts over the staircase ÷ the work requests it completed"),
            );
        }
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
    if let (true, Some(_)) = (request.verify, &interrupted) {
        verified = false;
    }
    if let (true, None, StepSource::Climb(stairs), Some(plan)) =
        (request.verify, &interrupted, &request.source, &result.hpa)
    {
        // The target is in work requests; the replay offers arrivals, each
        // making the capacity step's work per arrival.
        let rate = plan.target_per_pod * request.replicas as f64;
        let arrivals = match result.capacity_step {
            Some(i) => result.steps[i].arrivals_for_work(rate),
            None => rate,
        };
        if !request.metrics_urls.is_empty() {
            let limit = Duration::from_secs(60);
            let drained = tokio::select! {
                drained = super::scrape::wait_until_drained(&request.metrics_urls, limit) => drained,
                () = signals.stopped() => None,
            };
            match drained {
                _ if signals.reason().is_some() => {}
                Some(waited) if waited >= Duration::from_secs(1) => result.reasons.push(format!(
                    "verification waited {:.0} s for the pools to stop queueing (the last step left a backlog) before replaying",
                    waited.as_secs_f64()
                )),
                Some(_) => {}
                None => result.reasons.push(format!(
                    "verification: threads still waited for connections {} s after the staircase; replayed anyway",
                    limit.as_secs()
                )),
            }
        }
        interrupted = signals.reason();
        let scraper = super::scrape::Scraper::over(&request.metrics_urls);
        let replayed = match &interrupted {
            Some(_) => Ok(StepRun::Interrupted(String::new())),
            None => staircase::run_step(stairs, arrivals).await,
        };
        let verify_samples = match scraper {
            Some(scraper) => Some(scraper.finish().await),
            None => None,
        };
        verified = match replayed {
            Ok(StepRun::Measured(step, _)) => {
                let unmet = step.unmet(&request.slo);
                let mut held = unmet.is_empty();
                let mut verdict = if held {
                    "the SLO holds".to_owned()
                } else {
                    format!("the SLO does NOT hold ({})", unmet.join("; "))
                };
                if let Some(samples) = verify_samples.filter(|s| !s.is_empty()) {
                    result.verification_max_pending = Some(calibrate::pool::max_pending(&samples));
                    let (short, why) = calibrate::pool::verification_waits(
                        &samples,
                        demand.hold_s,
                        demand.checkouts_per_request,
                        rate / request.replicas.max(1) as f64,
                    );
                    held &= !short;
                    verdict += &format!("; {why}");
                }
                result.reasons.push(format!(
                    "verification: {arrivals:.1} arrivals/s ({} work req/s, the HPA target × {} replicas) gave p99 {:.0} ms, errors {:.2}%: {verdict}",
                    format_args!("{rate:.1}"),
                    request.replicas,
                    step.p99_ms,
                    step.error_rate * 100.0,
                ));
                result.verification = Some(step);
                held
            }
            Ok(StepRun::Interrupted(why)) => {
                interrupted = interrupted.or(Some(why));
                false
            }
            Err(e) => {
                result.reasons.push(format!(
                    "verification: the replay failed: {}",
                    crate::scenario::redact_text(&e.to_string())
                ));
                false
            }
        };
    }
    if let Some(why) = interrupted.or_else(|| signals.reason()) {
        let verification = if request.verify {
            "; the verification did not run to its end"
        } else {
            ""
        };
        result.reasons.insert(
            0,
            format!(
                "INTERRUPTED ({why}): every conclusion rests on the {} step(s) measured before it{verification}",
                result.steps.len()
            ),
        );
        result.interrupted = Some(why);
        verified = false;
    }
    crate::report::write_calibration(&request.dir, &result, &request.recommendations)
        .map_err(|e| RunError::Other(e.context("cannot write the calibration")))?;
    Ok(CalibrateReport {
        calibration: result,
        dir: request.dir.clone(),
        verified,
    })
}
