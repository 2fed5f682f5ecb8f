//! Capacity calibration, pure math with no I/O: from measured steps to
//! per-pod capacity, a Universal Scalability Law fit, HPA settings and pool
//! sizes — each number with the measurement and the constraint behind it.
//! Each module states its formula in its own doc: [`capacity`] (per-pod
//! capacity and the knee), [`usl`] (the Universal Scalability Law fit),
//! [`hpa`] (the HPA's tolerance and reaction time), [`erlang`] and [`pool`]
//! (Erlang C pool sizing and the connection budget), [`slo_breaks`] (steps
//! that broke the SLO below a step that met it: when to re-measure, where
//! capacity stops) and [`pool_bound`] (whether the pool measured with bound
//! the capacity, and what the HPA target rests on). `analysis` puts them
//! together: [`analyse_measurements`]; [`climbed`] completes the demand from
//! the pool series scraped beside a climb and opens the reasons with how
//! the steps were measured ([`analyse_calibration`]); [`cpu`] gives a CPU
//! target beside the request rate and picks between them;
//! [`verification`] judges a replay at the recommended rate and puts the
//! reasons in their final order as the calibration ends
//! ([`Calibration::ended`]).

mod analysis;
pub mod bisection;
pub mod capacity;
pub mod climbed;
pub mod cpu;
pub mod erlang;
pub mod forecast;
pub mod hpa;
pub mod manifest;
pub mod pool;
pub mod pool_bound;
pub mod response;
pub mod slo_breaks;
pub mod usl;
pub mod verification;

pub use analysis::{analyse, analyse_measurements};
pub use climbed::{analyse_calibration, Climbed};

use crate::bundle::{PoolSample, Step};
use capacity::Slo;
use hpa::HpaPlan;
use pool::{Knobs, PoolSize};
use pool_bound::MeasuredPool;
use serde::{Deserialize, Serialize};
use slo_breaks::Remeasure;
use usl::UslFit;

/// What the operator knows that a load test cannot measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Demand {
    /// Everyday request rate (req/s); a quarter of the peak when not given.
    pub base_rate: Option<f64>,
    /// Peak request rate (req/s); the measured cluster's capacity when not given.
    pub peak_rate: Option<f64>,
    /// Load growth, fraction per second.
    pub growth_per_s: f64,
    /// Metric window of the scaling metric, s.
    pub metric_window_s: f64,
    /// Pod start-up, s.
    pub pod_start_s: f64,
    /// Readiness delay, s.
    pub readiness_s: f64,
    /// Connection hold time per checkout, s (measured or given); no pool sizing without it.
    pub hold_s: Option<f64>,
    /// Connection checkouts per work request (measured from the pool's
    /// checkout counter; one when unknown). HAPI FHIR checks a connection out
    /// several times for one search, each briefly.
    #[serde(default)]
    pub checkouts_per_request: Option<f64>,
    /// Target probability of waiting for a connection.
    pub wait_probability: f64,
    /// Never size a pool below this (deadlock-free minimum).
    pub pool_floor: u32,
    /// Connections the database allows the application.
    pub connection_budget: u32,
}

/// Everything calibration concluded, with its reasons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Replicas during the measurement.
    pub replicas: u32,
    /// The SLO.
    pub slo: Slo,
    /// The staircase: each step's latest measurement (its re-measure, when
    /// it had one).
    pub steps: Vec<Step>,
    /// Steps measured twice: they broke the SLO while a step above them met it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remeasures: Vec<Remeasure>,
    /// Per-pod capacity at the SLO, work requests/s (setup requests left out).
    pub capacity_per_pod: Option<f64>,
    /// The same capacity for the persona mix: arrivals/s per pod.
    #[serde(default)]
    pub capacity_arrivals_per_pod: Option<f64>,
    /// The same capacity per request kind: requests/s per pod.
    #[serde(default)]
    pub capacity_by_request: std::collections::BTreeMap<String, f64>,
    /// Index of the step that set it.
    pub capacity_step: Option<usize>,
    /// Index of the first step past the knee.
    pub knee_step: Option<usize>,
    /// USL fit over the steps (concurrency by Little's law).
    pub usl: Option<UslFit>,
    /// HPA settings.
    pub hpa: Option<HpaPlan>,
    /// A CPU target beside the request-rate one, and which to scale on,
    /// when the steps read the pods' CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<cpu::CpuAdvice>,
    /// Pool per replica.
    pub pool: Option<PoolSize>,
    /// The pool the pods ran with during the staircase, when scraped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_pool: Option<MeasuredPool>,
    /// The knobs, sized for maxReplicas.
    pub knobs: Option<Knobs>,
    /// A replay at the recommended rate (`--verify`), when run.
    pub verification: Option<Step>,
    /// The most threads waiting for a database connection during that
    /// replay, when pool metrics were scraped.
    #[serde(default)]
    pub verification_max_pending: Option<f64>,
    /// Pool series scraped from the target during the staircase.
    #[serde(default)]
    pub pool_metrics: Vec<crate::bundle::PoolSample>,
    /// A stated ramp under the HPA, forecast (`--ramp`), when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp_forecast: Option<forecast::RampForecast>,
    /// Every conclusion, with the measurement and the constraint that bound it.
    pub reasons: Vec<String>,
    /// Why the calibration stopped before its end (Ctrl-C, SIGTERM): what
    /// it concluded rests on the steps measured before that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
}

/// What a calibration measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measurements {
    /// The staircase: each step's latest measurement.
    pub steps: Vec<Step>,
    /// The steps measured twice, with both measurements.
    pub remeasures: Vec<Remeasure>,
    /// The pool series scraped from the target during the staircase.
    pub pool_samples: Vec<PoolSample>,
}

impl Measurements {
    /// Work requests the climb completed while the pools were scraped,
    /// with steps `step_s` seconds long: every step's measurement, and the
    /// first measurement of each step measured twice (both ran while the
    /// pools were scraped). Divides the pools' checkouts into checkouts per
    /// request.
    pub fn work_requests_completed(&self, step_s: f64) -> f64 {
        self.steps
            .iter()
            .chain(self.remeasures.iter().map(|r| &r.first))
            .map(|s| s.achieved * step_s)
            .sum()
    }
}

/// Test fixtures the analysis modules share.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::Demand;
    use crate::bundle::Step;

    /// A step that achieved its offered `rate`, with p99 `p99` ms, no errors.
    pub fn step(rate: f64, p99: f64) -> Step {
        Step {
            rate,
            achieved: rate,
            p50_ms: p99 / 3.0,
            p95_ms: p99 / 1.5,
            p99_ms: p99,
            mean_ms: p99 / 3.0,
            ..Default::default()
        }
    }

    /// The demand when the operator gives nothing: the CLI's defaults, no
    /// rates, no hold time.
    pub fn demand() -> Demand {
        Demand {
            base_rate: None,
            peak_rate: None,
            growth_per_s: 0.0,
            metric_window_s: 30.0,
            pod_start_s: 30.0,
            readiness_s: 0.0,
            hold_s: None,
            checkouts_per_request: None,
            wait_probability: 0.05,
            pool_floor: 1,
            connection_budget: 97,
        }
    }
}
