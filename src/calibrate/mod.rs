//! Capacity calibration, pure math with no I/O: from measured steps to
//! per-pod capacity, a Universal Scalability Law fit, HPA settings and pool
//! sizes — each number with the measurement and the constraint behind it.
//! Each module states its formula in its own doc: [`capacity`] (per-pod
//! capacity and the knee), [`usl`] (the Universal Scalability Law fit),
//! [`hpa`] (the HPA's tolerance and reaction time), [`erlang`] and [`pool`]
//! (Erlang C pool sizing and the connection budget).

pub mod capacity;
pub mod erlang;
pub mod hpa;
pub mod manifest;
pub mod pool;
pub mod usl;

use crate::bundle::Step;
use capacity::Slo;
use hpa::{HpaInputs, HpaPlan};
use pool::{Knobs, PoolSize};
use serde::{Deserialize, Serialize};
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
    /// The staircase.
    pub steps: Vec<Step>,
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
    /// Pool per replica.
    pub pool: Option<PoolSize>,
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
    /// Every conclusion, with the measurement and the constraint that bound it.
    pub reasons: Vec<String>,
    /// Why the calibration stopped before its end (Ctrl-C, SIGTERM): what
    /// it concluded rests on the steps measured before that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
}

/// Analyses a staircase measured at `replicas` replicas.
pub fn analyse(steps: Vec<Step>, replicas: u32, slo: Slo, demand: &Demand) -> Calibration {
    let mut reasons = Vec::new();
    let capacity = capacity::per_pod_capacity(&steps, replicas, &slo);
    let knee = capacity::knee(&steps);
    match capacity {
        Some((c, i)) => {
            reasons.push(format!(
                "capacity {c:.1} work requests/s per pod: step {} achieved {:.1} req/s on {replicas} replicas with p99 {:.0} ms ≤ {:.0} ms and errors {:.2}% ≤ {:.2}%",
                i + 1,
                steps[i].achieved,
                steps[i].p99_ms,
                slo.p99_ms,
                steps[i].error_rate * 100.0,
                slo.error_budget * 100.0
            ));
            reasons.extend(capacity::units(&steps[i], i, replicas));
        }
        None => reasons.push(
            "no step met the SLO: no capacity can be stated; start the staircase lower".into(),
        ),
    }
    reasons.extend(capacity::explanations(&steps));
    if let Some(k) = knee {
        reasons.push(format!(
            "knee at step {} ({:.0} req/s offered, {:.0} achieved, p99 {:.0} ms)",
            k + 1,
            steps[k].rate,
            steps[k].achieved,
            steps[k].p99_ms
        ));
    } else if capacity.is_some() {
        reasons.push(
            "the staircase ended before the knee: the capacity above is a LOWER BOUND; start higher or add steps to find the real one".into(),
        );
    }
    let points: Vec<(f64, f64)> = steps
        .iter()
        .map(|s| (s.concurrency(), s.achieved))
        .collect();
    let usl = usl::fit(&points);
    if let Some(f) = &usl {
        reasons.push(format!(
            "USL over {} steps: {}; σ {:.3} ({:.3}–{:.3}), κ {:.5} ({:.5}–{:.5}), peak at N* {:.0} ({:.0}–{:.0}) in flight, R² {:.3}",
            steps.len(),
            f.verdict_text(),
            f.sigma,
            f.sigma_range.0,
            f.sigma_range.1,
            f.kappa,
            f.kappa_range.0,
            f.kappa_range.1,
            f.n_star,
            f.n_star_range.0,
            f.n_star_range.1,
            f.r_squared
        ));
    }
    let (mut hpa_plan, mut pool_size, mut knobs) = (None, None, None);
    if let Some((c_pod, _)) = capacity {
        let peak = demand.peak_rate.unwrap_or_else(|| {
            reasons.push(format!(
                "peak demand not given: assumed the measured cluster capacity, {:.1} req/s",
                c_pod * replicas as f64
            ));
            c_pod * replicas as f64
        });
        let base = demand.base_rate.unwrap_or(peak / 4.0);
        // Size the pool first, then bound maxReplicas by the connections it needs.
        let per_replica = match demand.hold_s {
            Some(hold) => {
                // A pod can be pushed to its capacity before the HPA reacts:
                // size for that, in checkouts (a request may take several).
                let k = demand.checkouts_per_request.unwrap_or(1.0);
                let p = pool::size(c_pod * k, hold, demand.wait_probability, demand.pool_floor);
                reasons.push(match demand.checkouts_per_request {
                    Some(k) => format!(
                        "pool per replica: {} (sized for the per-pod capacity {c_pod:.1} req/s × {k:.1} connection checkouts per request, measured)",
                        p.reason
                    ),
                    None => format!(
                        "pool per replica: {} (sized for the per-pod capacity {c_pod:.1} req/s, one checkout per request assumed)",
                        p.reason
                    ),
                });
                Some(p)
            }
            None => {
                reasons
                    .push("no connection hold time given (--hold): pool sizes not computed".into());
                None
            }
        };
        let pool_per_replica = per_replica.as_ref().map_or(1, |p| p.size);
        let plan = hpa::plan(&HpaInputs {
            capacity_per_pod: c_pod,
            metric_window_s: demand.metric_window_s,
            pod_start_s: demand.pod_start_s,
            readiness_s: demand.readiness_s,
            growth_per_s: demand.growth_per_s,
            base_rate: base,
            peak_rate: peak,
            pool_per_replica,
            connection_budget: demand.connection_budget,
        });
        reasons.extend(plan.reasons.iter().cloned());
        knobs = per_replica
            .as_ref()
            .map(|p| pool::knobs(p.size, plan.max_replicas));
        pool_size = per_replica;
        hpa_plan = Some(plan);
    }
    let capacity_arrivals_per_pod = capacity.map(|(_, i)| steps[i].rate / replicas.max(1) as f64);
    let capacity_by_request = capacity
        .map(|(_, i)| {
            steps[i]
                .by_request
                .iter()
                .map(|(name, rate)| (name.clone(), rate / replicas.max(1) as f64))
                .collect()
        })
        .unwrap_or_default();
    Calibration {
        replicas,
        slo,
        steps,
        capacity_per_pod: capacity.map(|c| c.0),
        capacity_arrivals_per_pod,
        capacity_by_request,

        capacity_step: capacity.map(|c| c.1),
        knee_step: knee,
        usl,
        hpa: hpa_plan,
        pool: pool_size,
        knobs,
        verification: None,
        verification_max_pending: None,
        pool_metrics: Vec::new(),
        reasons,
        interrupted: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(rate: f64, achieved: f64, p99: f64) -> Step {
        Step {
            rate,
            achieved,
            p50_ms: p99 / 2.0,
            p95_ms: p99,
            p99_ms: p99,
            mean_ms: p99 / 2.0,
            error_rate: 0.0,
            dropped: 0,
            ..Default::default()
        }
    }

    fn demand() -> Demand {
        Demand {
            base_rate: Some(50.0),
            peak_rate: Some(400.0),
            growth_per_s: 0.0,
            metric_window_s: 30.0,
            pod_start_s: 30.0,
            readiness_s: 0.0,
            hold_s: Some(0.01),
            checkouts_per_request: None,
            wait_probability: 0.05,
            pool_floor: 1,
            connection_budget: 97,
        }
    }

    #[test]
    fn a_staircase_that_never_saturated_says_its_capacity_is_a_lower_bound() {
        let steps = vec![
            step(100.0, 100.0, 10.0),
            step(200.0, 199.0, 11.0),
            step(300.0, 299.0, 12.0),
        ];
        let c = analyse(
            steps,
            2,
            Slo {
                p99_ms: 100.0,
                error_budget: 0.01,
            },
            &demand(),
        );
        assert_eq!(c.knee_step, None);
        assert!(
            c.reasons.iter().any(|r| r.contains("LOWER BOUND")),
            "{:?}",
            c.reasons
        );
    }

    #[test]
    fn a_saturated_staircase_names_its_knee_and_every_number_has_a_reason() {
        let steps = vec![
            step(100.0, 100.0, 10.0),
            step(200.0, 199.0, 11.0),
            step(300.0, 240.0, 400.0),
            step(400.0, 241.0, 900.0),
        ];
        let c = analyse(
            steps,
            2,
            Slo {
                p99_ms: 100.0,
                error_budget: 0.01,
            },
            &demand(),
        );
        assert_eq!((c.capacity_per_pod, c.knee_step), (Some(99.5), Some(2)));
        assert!(!c.reasons.iter().any(|r| r.contains("LOWER BOUND")));
        let hpa = c.hpa.unwrap();
        for n in [hpa.min_replicas, hpa.max_replicas] {
            assert!(
                c.reasons
                    .iter()
                    .any(|r| r.contains(&format!("Replicas {n}"))),
                "{n}: {:?}",
                c.reasons
            );
        }
        assert!(c.reasons.iter().any(|r| r.starts_with("pool per replica")));
    }
}
