//! From a staircase of open-model steps to per-pod capacity and the knee.
//!
//! Per-pod capacity C_pod = max over steps of X/R with p99 ≤ SLO, errors ≤
//! budget and no dropped arrivals. The knee is the first step where the
//! server stops keeping up: throughput falls short of the offered rate, or
//! p99 leaves its low-load level behind.

use crate::bundle::{RunResults, Step};
use serde::{Deserialize, Serialize};

/// The service-level objective capacity is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// p99 latency limit, ms.
    pub p99_ms: f64,
    /// Error budget (fraction of requests).
    pub error_budget: f64,
}

impl Step {
    /// Whether the step met the SLO, kept every arrival, and kept up with
    /// the offered rate (a growing backlog is not sustainable, whatever the
    /// latency of a short step says).
    pub fn meets(&self, slo: &Slo) -> bool {
        self.p99_ms <= slo.p99_ms
            && self.error_rate <= slo.error_budget
            && self.dropped == 0
            && self.keeps_up()
    }

    /// Throughput within 5% of the offered rate.
    pub fn keeps_up(&self) -> bool {
        self.achieved >= 0.95 * self.rate
    }

    /// Concurrency in the system by Little's law: N = X · R.
    pub fn concurrency(&self) -> f64 {
        self.achieved * self.mean_ms / 1000.0
    }
}

/// One step from a run's results: the whole run is the step. Throughput
/// counts until the last request completed (at least the planned time), so a
/// server that fell behind and drained a backlog shows its true rate.
pub fn step_of(rate: f64, r: &RunResults) -> Step {
    Step::measured(
        rate,
        r.overall.count,
        r.overall.failed,
        r.busy_s.max(r.planned_s),
        &r.overall.latency,
        r.totals.dropped_arrivals,
    )
}

/// Per-pod capacity at the SLO: (requests per second per pod, index of the step that set it).
pub fn per_pod_capacity(steps: &[Step], replicas: u32, slo: &Slo) -> Option<(f64, usize)> {
    steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.meets(slo))
        .map(|(i, s)| (s.achieved / replicas.max(1) as f64, i))
        .max_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal))
}

/// The first step past the knee: throughput below 95% of the offered rate,
/// or p99 above three times the first step's.
pub fn knee(steps: &[Step]) -> Option<usize> {
    let base = steps.first()?.p99_ms.max(0.001);
    steps
        .iter()
        .position(|s| !s.keeps_up() || s.p99_ms > 3.0 * base || s.dropped > 0)
}

/// Whether a staircase should stop: the SLO broken on the last two steps, or
/// arrivals dropped on the last one.
pub fn saturated(steps: &[Step], slo: &Slo) -> bool {
    match steps {
        [.., last] if last.dropped > 0 => true,
        [.., a, b] => !a.meets(slo) && !b.meets(slo),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(rate: f64, achieved: f64, p99: f64, err: f64, dropped: u64) -> Step {
        Step {
            rate,
            achieved,
            p50_ms: p99 / 3.0,
            p95_ms: p99 / 1.5,
            p99_ms: p99,
            mean_ms: p99 / 3.0,
            error_rate: err,
            dropped,
        }
    }

    fn slo() -> Slo {
        Slo {
            p99_ms: 100.0,
            error_budget: 0.01,
        }
    }

    #[test]
    fn capacity_is_the_best_step_inside_the_slo() {
        let steps = [
            step(10.0, 10.0, 20.0, 0.0, 0),
            step(20.0, 20.0, 40.0, 0.0, 0),
            step(40.0, 38.0, 150.0, 0.0, 0),
            step(80.0, 40.0, 900.0, 0.2, 7),
        ];
        assert_eq!(per_pod_capacity(&steps, 2, &slo()), Some((10.0, 1)));
        assert_eq!(knee(&steps), Some(2));
        assert!(saturated(&steps, &slo()));
        assert!(!saturated(&steps[..2], &slo()));
    }

    #[test]
    fn nothing_inside_the_slo_gives_no_capacity() {
        let steps = [step(10.0, 10.0, 500.0, 0.0, 0)];
        assert_eq!(per_pod_capacity(&steps, 1, &slo()), None);
    }

    #[test]
    fn littles_law_concurrency() {
        let s = step(100.0, 100.0, 60.0, 0.0, 0); // mean 20 ms
        assert!((s.concurrency() - 2.0).abs() < 1e-9);
    }
}
