//! `surge calibrate` end to end: the staircase of runs (or the stages of an
//! earlier bundle), the pool metrics scraped beside it, the analysis, an
//! optional replay at the recommended rate, and the calibration bundle
//! (`calibration.json`, `calibration.html`, `recommendations.yaml`).
//!
//! This module runs, scrapes and waits; what is concluded, and every
//! sentence of it in its order, is `calibrate`'s (pure): the analysis with
//! how the steps were measured ([`calibrate::analyse_calibration`]), the
//! replay's verdict and the end of the reasons
//! ([`calibrate::verification`]).

use super::pod_cpu::{PodCpuTarget, PodCpuWatch};
use super::staircase::{self, Pass, Staircase, StepRun};
use super::RunError;
use crate::calibrate::capacity::Slo;
use crate::calibrate::slo_breaks::rate_text;
use crate::calibrate::verification::{Replay, Verification};
use crate::calibrate::{self, Calibration, Climbed, Demand, Measurements};
use crate::engine::signals::JobSignals;
use crate::report::Recommendations;
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
    /// The SLO capacity is measured against (and a climb stops by).
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
    /// A ramp to forecast under the HPA (`--ramp`).
    pub ramp: Option<RampRequest>,
    /// The workload's pods whose CPU each step reads (`--selector`).
    pub pod_cpu: Option<PodCpuTarget>,
}

/// A ramp to forecast: a scenario's open stages under an HPA.
#[derive(Debug, Clone)]
pub struct RampRequest {
    /// The scenario whose open-model stages are the ramp.
    pub scenario: PathBuf,
    /// Its length, the shape kept (as `surge run --duration`).
    pub duration: Option<Duration>,
    /// Forecast this HPA manifest instead of the one recommended.
    pub hpa_file: Option<PathBuf>,
    /// How late the metric the HPA reads is, seconds.
    pub metric_delay_s: f64,
}

/// A ramp read and ready to forecast: its name, its rate over time, and
/// the HPA given as the controller would run it (with the file it came
/// from).
struct ReadRamp {
    name: String,
    ramp: crate::calibrate::response::Ramp,
    hpa: Option<(crate::calibrate::response::Autoscaler, String)>,
    metric_delay_s: f64,
}

/// Reads the ramp and the HPA manifest before anything is climbed, so a
/// wrong file is said at once and not after the staircase; the HPA's
/// metric is averaged over `metric_window_s`.
fn read_ramp(r: &RampRequest, metric_window_s: f64) -> Result<ReadRamp, RunError> {
    use crate::scenario::{LoadOverride, LoadPlan, Scenario};
    let ramp_error = |why: String| RunError::Ramp {
        flag: "--ramp",
        path: r.scenario.clone(),
        why,
    };
    let mut scenario = Scenario::load(&r.scenario)?;
    scenario
        .apply_override(&LoadOverride {
            duration: r.duration,
            ..Default::default()
        })
        .map_err(|e| ramp_error(e.to_string()))?;
    let LoadPlan::Open { stages, .. } = &scenario.load else {
        return Err(ramp_error(
            "a ramp is an open model's arrival rate; this scenario runs a closed model (users, not arrivals)".into(),
        ));
    };
    let hpa = match &r.hpa_file {
        None => None,
        Some(path) => {
            let hpa_error = |why: String| RunError::Ramp {
                flag: "--ramp-hpa",
                path: path.clone(),
                why,
            };
            let text = std::fs::read_to_string(path).map_err(|e| hpa_error(e.to_string()))?;
            let hpa = serde_saphyr::from_str(&text).map_err(|e| {
                hpa_error(format!(
                    "not a HorizontalPodAutoscaler (autoscaling/v2): {e}"
                ))
            })?;
            let autoscaler = crate::calibrate::response::Autoscaler::from_manifest(
                &hpa,
                metric_window_s,
                r.metric_delay_s,
            )
            .map_err(|e| hpa_error(format!("cannot be forecast: {e}")))?;
            Some((autoscaler, path.display().to_string()))
        }
    };
    Ok(ReadRamp {
        name: scenario.name.clone(),
        ramp: crate::calibrate::response::Ramp::of_stages(stages, scenario.target.timeout),
        hpa,
        metric_delay_s: r.metric_delay_s,
    })
}

/// The forecast of the ramp under the HPA given, or the one recommended;
/// `None` without a capacity (nothing measured to forecast from) or with
/// neither HPA. A manifest that cannot be forecast is said as a reason.
fn forecast(
    ramp: &ReadRamp,
    c: &Calibration,
    demand: &Demand,
    recommendations: &Recommendations,
) -> Result<Option<crate::calibrate::forecast::RampForecast>, String> {
    use crate::calibrate::{forecast, manifest, response::Autoscaler};
    let Some(capacity) = c.capacity_per_pod else {
        return Ok(None);
    };
    let (autoscaler, source) = match (&ramp.hpa, &c.hpa) {
        (Some((given, file)), _) => (given.clone(), file.clone()),
        (None, Some(plan)) => {
            let written = manifest::hpa(&recommendations.workload, plan);
            let autoscaler =
                Autoscaler::from_manifest(&written, demand.metric_window_s, ramp.metric_delay_s)
                    .map_err(|e| {
                        format!("ramp forecast: the HPA as recommended cannot be forecast: {e}")
                    })?;
            (autoscaler, "as recommended".to_owned())
        }
        (None, None) => return Ok(None),
    };
    let pods = forecast::pods(
        capacity,
        &c.steps,
        c.replicas,
        demand.pod_start_s + demand.readiness_s,
        c.slo.p99_ms,
    );
    let mut f = forecast::forecast(&ramp.name, &ramp.ramp, &autoscaler, &source, &pods);
    if c.knee_step.is_none() {
        f.reasons.push(
            "the climb ended before the knee: a pod's capacity and most are lower bounds, so the forecast is pessimistic".into(),
        );
    }
    Ok(Some(f))
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
    let ramp = request
        .ramp
        .as_ref()
        .map(|r| read_ramp(r, request.demand.metric_window_s))
        .transpose()?;
    let measured = measure(request, &signals, say).await?;
    let given = given_demand(request, say)?;
    let (analysed, demand) = calibrate::analyse_calibration(
        measured.measurements,
        measured.climbed,
        request.replicas,
        request.slo,
        &given,
    );
    let (verification, interrupted) = match (&request.source, measured.interrupted) {
        (StepSource::Climb(stairs), None) if request.verify => {
            verify(request, stairs, &analysed, &demand, &signals).await
        }
        (_, interrupted) => (None, interrupted),
    };
    let interrupted = interrupted.or_else(|| signals.reason());
    let verified = interrupted.is_none() && verification.as_ref().is_none_or(|v| v.held);
    let mut calibration = analysed.ended(verification, interrupted, request.verify);
    if let Some(ramp) = &ramp {
        match forecast(ramp, &calibration, &demand, &request.recommendations) {
            Ok(Some(f)) => {
                calibration.reasons.extend(f.reasons.iter().cloned());
                calibration.ramp_forecast = Some(f);
            }
            Ok(None) => calibration.reasons.push(
                "ramp forecast: nothing measured to forecast from (no capacity, no HPA)".into(),
            ),
            Err(why) => calibration.reasons.push(why),
        }
    }
    crate::report::write_calibration(&request.dir, &calibration, &request.recommendations)
        .map_err(|e| RunError::Other(e.context("cannot write the calibration")))?;
    Ok(CalibrateReport {
        calibration,
        dir: request.dir.clone(),
        verified,
    })
}

/// What the calibration measured, how, and why it stopped early if it did.
struct Measured {
    measurements: Measurements,
    /// How the staircase was climbed; None for steps read from a bundle.
    climbed: Option<Climbed>,
    interrupted: Option<String>,
}

/// The steps, climbed now or read from a bundle; with no step measured,
/// an error saying why.
async fn measure(
    request: &CalibrateRequest,
    signals: &JobSignals,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<Measured, RunError> {
    let measured = match &request.source {
        StepSource::FromBundle(bundle) => Measured {
            measurements: Measurements {
                steps: staircase::steps_from_bundle(bundle)?,
                ..Default::default()
            },
            climbed: None,
            interrupted: None,
        },
        StepSource::Climb(stairs) => climb(request, stairs, signals, say).await?,
    };
    if measured.measurements.steps.is_empty() {
        return Err(match measured.interrupted {
            Some(why) => RunError::Interrupted(format!(
                "{why} before the first step ended: nothing measured, nothing written"
            )),
            None => RunError::NoStep,
        });
    }
    Ok(measured)
}

/// Climbs `stairs` after its warm-up, the pools scraped beside it, saying
/// each measurement as it ends.
async fn climb(
    request: &CalibrateRequest,
    stairs: &Staircase,
    signals: &JobSignals,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<Measured, RunError> {
    stairs.check().map_err(RunError::Staircase)?;
    say(format!(
        "staircase: up to {} steps of {:?} from {}/s by {}/s, {}, SLO p99 ≤ {:.0} ms",
        stairs.max_steps,
        stairs.step_duration,
        stairs.start_rate,
        stairs.step_rate,
        stairs.arrivals.describe(),
        request.slo.p99_ms
    ));
    // Before any load: a cluster without metrics-server is said at once.
    let cpu = match &request.pod_cpu {
        Some(target) => Some(
            PodCpuWatch::start(target)
                .await
                .map_err(|why| RunError::PodCpu {
                    selector: target.selector.clone(),
                    why,
                })?,
        ),
        None => None,
    };
    warm_up(stairs, say).await?;
    let scraper = super::scrape::Scraper::over(&request.metrics_urls);
    let each = |s: &crate::bundle::Step, bundle: &std::path::Path, pass: Pass| {
        let which = match pass {
            Pass::First => String::new(),
            Pass::Bisect(_) => "bisection: ".to_owned(),
            Pass::Remeasure(i) => format!(
                "re-measure of step {} at {} (it broke the SLO, a step above met it): ",
                i + 1,
                rate_text(s.rate)
            ),
        };
        say(format!(
            "  {which}{:.1}/s offered → {:.1}/s achieved, p99 {:.1} ms, errors {:.2}%, dropped {}{}{} ({})",
            s.rate,
            s.achieved,
            s.p99_ms,
            s.error_rate * 100.0,
            s.dropped,
            s.read_backs_text(),
            cpu_text(s, request.pod_cpu.is_some()),
            bundle.display()
        ))
    };
    let climbed = staircase::climb(
        stairs,
        &request.slo,
        &|| signals.reason(),
        cpu.as_ref(),
        each,
    )
    .await;
    let pool_samples = match scraper {
        Some(scraper) => scraper.finish().await,
        None => Vec::new(),
    };
    let climbed = climbed?;
    Ok(Measured {
        measurements: Measurements {
            steps: climbed.steps,
            remeasures: climbed.remeasures,
            pool_samples,
        },
        climbed: Some(Climbed {
            arrivals: stairs.arrivals,
            step_s: stairs.step_duration.as_secs_f64(),
            precision: stairs.precision,
        }),
        interrupted: climbed.interrupted,
    })
}

/// `, CPU 84m per pod (3 pods, 3 windows)` when the pods' CPU was read,
/// or why the step has none.
fn cpu_text(s: &crate::bundle::Step, read: bool) -> String {
    match (&s.cpu, read) {
        (Some(c), _) => format!(
            ", CPU {:.0}m per pod ({} pods, {} windows)",
            c.millicores_per_pod, c.pods, c.windows
        ),
        (None, true) => ", CPU: no metrics-server window inside the step".into(),
        (None, false) => String::new(),
    }
}

/// Load at the start rate for `stairs.warm_up`, not measured (none when
/// zero); interrupted, the calibration ends with nothing written.
async fn warm_up(stairs: &Staircase, say: &mut (dyn FnMut(String) + Send)) -> Result<(), RunError> {
    if stairs.warm_up.is_zero() {
        return Ok(());
    }
    let warm = Staircase {
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
    Ok(())
}

/// The demand as the operator gave it, with the pod start-up time taken
/// from a chaos run's bundle when asked (`--pod-start-from`).
fn given_demand(
    request: &CalibrateRequest,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<Demand, RunError> {
    let mut demand = request.demand.clone();
    if let Some(bundle) = &request.pod_start_from {
        let (median, why) =
            crate::bundle::startup_from_bundle(bundle).map_err(|e| RunError::PodStartFrom {
                path: bundle.clone(),
                why: format!("{e:#}"),
            })?;
        say(why);
        demand.pod_start_s = median;
    }
    Ok(demand)
}

/// Replays the recommended rate once the pools have drained, the pools
/// scraped beside it, and judges it; None when nothing was recommended.
/// Also returns why the replay was interrupted, if it was.
async fn verify(
    request: &CalibrateRequest,
    stairs: &Staircase,
    analysed: &Calibration,
    demand: &Demand,
    signals: &JobSignals,
) -> (Option<Verification>, Option<String>) {
    let Some(replay) = Replay::of(analysed) else {
        return (None, None);
    };
    let mut verification = Verification::default();
    verification
        .reasons
        .extend(wait_for_drained_pools(request, signals).await);
    let scraper = super::scrape::Scraper::over(&request.metrics_urls);
    let stopped = || signals.reason();
    let replayed =
        staircase::run_step_unless_stopped(stairs, replay.arrivals_per_s, &stopped).await;
    let samples = match scraper {
        Some(scraper) => Some(scraper.finish().await),
        None => None,
    };
    let interrupted = match replayed {
        Ok(StepRun::Measured(step, _)) => {
            verification.judge(analysed, &replay, demand, *step, samples);
            None
        }
        Ok(StepRun::Interrupted(why)) => Some(why),
        Err(e) => {
            verification.failed(&e.to_string());
            None
        }
    };
    (Some(verification), interrupted)
}

/// Waits (a minute at most) for the pools to stop queueing after the
/// staircase, when they are scraped, so the replay does not start on the
/// last step's backlog; what the wait found, when worth saying.
async fn wait_for_drained_pools(
    request: &CalibrateRequest,
    signals: &JobSignals,
) -> Option<String> {
    if request.metrics_urls.is_empty() {
        return None;
    }
    let limit = Duration::from_secs(60);
    let drained = tokio::select! {
        drained = super::scrape::wait_until_drained(&request.metrics_urls, limit) => drained,
        () = signals.stopped() => None,
    };
    match drained {
        _ if signals.reason().is_some() => None,
        Some(waited) if waited >= Duration::from_secs(1) => Some(format!(
            "verification waited {:.0} s for the pools to stop queueing (the last step left a backlog) before replaying",
            waited.as_secs_f64()
        )),
        Some(_) => None,
        None => Some(format!(
            "verification: threads still waited for connections {} s after the staircase; replayed anyway",
            limit.as_secs()
        )),
    }
}
