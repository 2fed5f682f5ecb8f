//! From what a calibration measured to what it concludes: the capacity
//! and why it stops where it does, the knee, the USL fit, the pool per
//! replica, the HPA plan and the knobs, each with its reasons.

use super::pool_bound::{self, MeasuredPool};
use super::slo_breaks::{self, Remeasure};
use super::usl::{self, UslFit};
use super::{capacity, hpa, pool, Calibration, Demand, Measurements};
use crate::bundle::Step;
use capacity::Slo;
use hpa::{HpaInputs, HpaPlan};
use pool::{Knobs, PoolSize};

/// Analyses a staircase measured at `replicas` replicas, with no
/// re-measure and no pool series.
pub fn analyse(steps: Vec<Step>, replicas: u32, slo: Slo, demand: &Demand) -> Calibration {
    analyse_measurements(
        Measurements {
            steps,
            ..Default::default()
        },
        replicas,
        slo,
        demand,
    )
}

/// Analyses what a calibration measured at `replicas` replicas.
pub fn analyse_measurements(
    measured: Measurements,
    replicas: u32,
    slo: Slo,
    demand: &Demand,
) -> Calibration {
    analyse_after(Vec::new(), measured, replicas, slo, demand)
}

/// The analysis, its reasons following `opening` (what was said of how
/// the steps were measured, before what they show).
pub(super) fn analyse_after(
    opening: Vec<String>,
    measured: Measurements,
    replicas: u32,
    slo: Slo,
    demand: &Demand,
) -> Calibration {
    let Measurements {
        steps,
        remeasures,
        pool_samples,
    } = measured;
    let capacity = capacity::per_pod_capacity(&steps, replicas, &slo);
    let knee = capacity::knee(&steps);
    let mut reasons = opening;
    reasons.extend(capacity_reasons(
        &steps,
        &remeasures,
        capacity,
        knee,
        replicas,
        &slo,
    ));
    let usl = usl_fit(&steps, &mut reasons);
    let measured_pool = pool_bound::measured_pool(
        &pool_samples,
        demand.hold_s,
        demand.checkouts_per_request,
        capacity.map(|c| c.0),
    );
    // Sized for the per-pod capacity: a pod can be pushed to it before the
    // HPA reacts. Without a capacity, the pool series still say whether the
    // pool was used up.
    let per_replica = capacity.and_then(|(c_pod, _)| pool_per_replica(c_pod, demand));
    reasons.extend(measured_pool.as_ref().and_then(|pool| {
        pool_bound::bound_reason(
            pool,
            &pool_samples,
            demand.hold_s,
            demand.checkouts_per_request,
            capacity.map(|c| c.0),
            per_replica.as_ref().map(|p| p.size),
        )
    }));
    let sizing = capacity.map(|(c_pod, _)| {
        size_for(
            c_pod,
            replicas,
            demand,
            per_replica,
            measured_pool.as_ref(),
            &mut reasons,
        )
    });
    let (hpa_plan, pool_size, knobs) = match sizing {
        Some((plan, pool, knobs)) => (Some(plan), pool, knobs),
        None => (None, None, None),
    };
    // CPU is judged against the rate target: no target, no CPU target.
    let cpu = match (&hpa_plan, capacity) {
        (Some(plan), Some((_, at))) => {
            super::cpu::advise(&steps, replicas, Some(at), plan.target_per_pod)
        }
        _ => None,
    };
    reasons.extend(cpu.as_ref().map(|advice| advice.reason.clone()));
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
        remeasures,
        capacity_per_pod: capacity.map(|c| c.0),
        capacity_arrivals_per_pod,
        capacity_by_request,
        capacity_step: capacity.map(|c| c.1),
        knee_step: knee,
        usl,
        hpa: hpa_plan,
        pool: pool_size,
        cpu,
        measured_pool,
        knobs,
        verification: None,
        verification_max_pending: None,
        pool_metrics: pool_samples,
        ramp_forecast: None,
        reasons,
        interrupted: None,
    }
}

/// The reasons behind the capacity (or its absence): the step that set it
/// and its units, the steps that broke the SLO below one that met it, what
/// the steps' numbers mean, and the knee.
fn capacity_reasons(
    steps: &[Step],
    remeasures: &[Remeasure],
    capacity: Option<(f64, usize)>,
    knee: Option<usize>,
    replicas: u32,
    slo: &Slo,
) -> Vec<String> {
    let mut reasons = Vec::new();
    let standing_break = slo_breaks::first_standing_break(steps, slo);
    match capacity {
        Some((c, i)) => reasons.push(format!(
            "capacity {c:.1} work requests/s per pod: step {} achieved {:.1} req/s on {replicas} replicas with p99 {:.0} ms ≤ {:.0} ms and errors {:.2}% ≤ {:.2}%{}",
            i + 1,
            steps[i].achieved,
            steps[i].p99_ms,
            slo.p99_ms,
            steps[i].error_rate * 100.0,
            slo.error_budget * 100.0,
            steps[i].read_backs_text()
        )),
        // Steps met the SLO, but none below the first break that stands.
        None if steps.iter().any(|s| s.meets(slo)) => reasons.push(format!(
            "no capacity can be stated: no step below step {} (the first whose break of the SLO stands) met the SLO; start the staircase lower",
            standing_break.map_or(0, |b| b + 1)
        )),
        None => reasons.push(
            "no step met the SLO: no capacity can be stated; start the staircase lower".into(),
        ),
    }
    reasons.extend(slo_breaks::notes(steps, remeasures, slo));
    if let Some((_, i)) = capacity {
        reasons.extend(capacity::units(&steps[i], i, replicas));
    }
    reasons.extend(capacity::explanations(steps));
    if let Some(k) = knee {
        reasons.push(format!(
            "knee at step {} ({:.0} req/s offered, {:.0} achieved, p99 {:.0} ms)",
            k + 1,
            steps[k].rate,
            steps[k].achieved,
            steps[k].p99_ms
        ));
    } else if capacity.is_some() && standing_break.is_none() {
        // A staircase that broke the SLO found where capacity stops, knee
        // or not; one that never broke it did not.
        reasons.push(
            "the staircase ended before the knee: the capacity above is a LOWER BOUND; start higher or add steps to find the real one".into(),
        );
    }
    reasons
}

/// The USL fit over the steps, its reason pushed to `reasons`.
fn usl_fit(steps: &[Step], reasons: &mut Vec<String>) -> Option<UslFit> {
    let points: Vec<(f64, f64)> = steps
        .iter()
        .map(|s| (s.concurrency(), s.achieved))
        .collect();
    let fit = usl::fit(&points)?;
    reasons.push(format!(
        "USL over {} steps: {}; σ {:.3} ({:.3}–{:.3}), κ {:.5} ({:.5}–{:.5}), peak at N* {:.0} ({:.0}–{:.0}) in flight, R² {:.3}",
        steps.len(),
        fit.shape_text(),
        fit.sigma,
        fit.sigma_range.0,
        fit.sigma_range.1,
        fit.kappa,
        fit.kappa_range.0,
        fit.kappa_range.1,
        fit.n_star,
        fit.n_star_range.0,
        fit.n_star_range.1,
        fit.r_squared
    ));
    Some(fit)
}

/// The pool per replica for a per-pod capacity `c_pod`, in checkouts (a
/// request may take several); None without a connection hold time.
fn pool_per_replica(c_pod: f64, demand: &Demand) -> Option<PoolSize> {
    demand.hold_s.map(|hold| {
        let k = demand.checkouts_per_request.unwrap_or(1.0);
        pool::size(c_pod * k, hold, demand.wait_probability, demand.pool_floor)
    })
}

/// The HPA plan and the knobs for a per-pod capacity `c_pod` and the pool
/// `per_replica` sized for it, each reason pushed to `reasons`; the HPA
/// plan says what pool its target rests on.
fn size_for(
    c_pod: f64,
    replicas: u32,
    demand: &Demand,
    per_replica: Option<PoolSize>,
    measured_pool: Option<&MeasuredPool>,
    reasons: &mut Vec<String>,
) -> (HpaPlan, Option<PoolSize>, Option<Knobs>) {
    let peak = demand.peak_rate.unwrap_or_else(|| {
        reasons.push(format!(
            "peak demand not given: assumed the measured cluster capacity, {:.1} req/s",
            c_pod * replicas as f64
        ));
        c_pod * replicas as f64
    });
    let base = demand.base_rate.unwrap_or(peak / 4.0);
    // The pool first, then maxReplicas bound by the connections it needs.
    let recommended = per_replica.as_ref().map(|p| p.size);
    reasons.push(match (&per_replica, demand.checkouts_per_request) {
        (Some(p), Some(k)) => format!(
            "pool per replica: {} (sized for the per-pod capacity {c_pod:.1} req/s × {k:.1} connection checkouts per request, measured)",
            p.reason
        ),
        (Some(p), None) => format!(
            "pool per replica: {} (sized for the per-pod capacity {c_pod:.1} req/s, one checkout per request assumed)",
            p.reason
        ),
        (None, _) => "no connection hold time given (--hold): pool sizes not computed".into(),
    });
    let mut plan = hpa::plan(&HpaInputs {
        capacity_per_pod: c_pod,
        metric_window_s: demand.metric_window_s,
        pod_start_s: demand.pod_start_s,
        readiness_s: demand.readiness_s,
        growth_per_s: demand.growth_per_s,
        base_rate: base,
        peak_rate: peak,
        pool_per_replica: recommended.unwrap_or(1),
        connection_budget: demand.connection_budget,
    });
    plan.set_pool_basis(pool_bound::target_basis(
        measured_pool,
        c_pod,
        plan.target_per_pod,
        recommended,
        demand.hold_s,
        demand.checkouts_per_request,
    ));
    reasons.extend(plan.reasons.iter().cloned());
    let knobs = recommended.map(|size| pool::knobs(size, plan.max_replicas));
    (plan, per_replica, knobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::PoolSample;

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
            hold_s: Some(0.01),
            ..crate::calibrate::fixtures::demand()
        }
    }

    const SLO_500: Slo = Slo {
        p99_ms: 500.0,
        error_budget: 0.01,
    };

    /// The user's staircase: step 2 at 8/s broke the SLO (p99 511 ms >
    /// 500 ms), step 3 at 12/s met it.
    fn broken_below_met() -> Vec<Step> {
        vec![
            step(4.0, 4.0, 300.0),
            step(8.0, 8.0, 511.0),
            step(12.0, 12.0, 420.0),
        ]
    }

    /// Broken twice: capacity comes from below the break, and the report
    /// names the break and the higher step it did not take.
    #[test]
    fn capacity_stops_below_a_break_that_stands_and_says_so() {
        let mut steps = broken_below_met();
        let r = Remeasure::record(&mut steps, 1, step(8.0, 8.0, 530.0));
        let c = analyse_measurements(
            Measurements {
                steps,
                remeasures: vec![r],
                ..Default::default()
            },
            1,
            SLO_500,
            &demand(),
        );
        assert_eq!((c.capacity_per_pod, c.capacity_step), (Some(4.0), Some(0)));
        let said = c.reasons.join("\n");
        assert!(said.contains("step 2 at 8/s broke the SLO twice (p99 511 ms > 500 ms; re-measured: p99 530 ms > 500 ms)"), "{said}");
        assert!(said.contains("capacity stops below step 2 at 8/s, which broke it twice: step 3 at 12/s (p99 420 ms) above it met the SLO but is not taken"), "{said}");
        assert!(!said.contains("LOWER BOUND"), "the SLO broke: {said}");
        assert_eq!(c.remeasures.len(), 1, "both measurements are kept");
    }

    /// Met on its re-measure: the first was warm-up, the report says so,
    /// and capacity may come from above.
    #[test]
    fn a_break_its_remeasure_refutes_is_named_as_warm_up() {
        let mut steps = broken_below_met();
        let r = Remeasure::record(&mut steps, 1, step(8.0, 8.0, 430.0));
        let c = analyse_measurements(
            Measurements {
                steps,
                remeasures: vec![r],
                ..Default::default()
            },
            1,
            SLO_500,
            &demand(),
        );
        assert_eq!((c.capacity_per_pod, c.capacity_step), (Some(12.0), Some(2)));
        assert!(c.reasons.iter().any(|r| r.starts_with(
            "step 2 at 8/s broke the SLO (p99 511 ms > 500 ms), re-measured: p99 430 ms — taken as warm-up/noise"
        )), "{:?}", c.reasons);
        assert!(!c.reasons.iter().any(|r| r.contains("capacity stops below")));
    }

    /// Read back from a bundle, the break was never re-measured: it stands.
    /// When it is the first step, no capacity is stated, and the reason
    /// does not claim that no step met the SLO.
    #[test]
    fn an_unremeasured_break_stands() {
        let c = analyse(broken_below_met(), 1, SLO_500, &demand());
        assert_eq!(c.capacity_step, Some(0));
        assert!(
            c.reasons
                .iter()
                .any(|r| r.contains("and was not re-measured")),
            "{:?}",
            c.reasons
        );
        let first_broke = vec![step(4.0, 4.0, 600.0), step(8.0, 8.0, 420.0)];
        let c = analyse(first_broke, 1, SLO_500, &demand());
        assert_eq!(c.capacity_per_pod, None);
        assert!(
            c.reasons[0].starts_with("no capacity can be stated: no step below step 1"),
            "{:?}",
            c.reasons
        );
    }

    /// A staircase rising cleanly into its knee gets no note about breaks.
    #[test]
    fn a_clean_staircase_gets_no_break_note() {
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
        assert_eq!(c.capacity_step, Some(1));
        assert!(c.remeasures.is_empty());
        assert!(
            !c.reasons
                .iter()
                .any(|r| r.contains("re-measured") || r.contains("capacity stops below")),
            "{:?}",
            c.reasons
        );
    }

    /// One pod, a pool of 2 used up with threads waiting, connections held
    /// 3.4 ms ten times a request: the pool's ceiling, 59 req/s, is within
    /// 2× of the 50 req/s measured, so the pool bound the capacity.
    fn pool_bound_measurements() -> (Measurements, Demand) {
        let full = PoolSample {
            url: "http://pod-1/actuator/prometheus".into(),
            active: 2.0,
            pending: 6.0,
            max: 2.0,
            ..Default::default()
        };
        let measured = Measurements {
            steps: vec![
                step(20.0, 20.0, 20.0),
                step(35.0, 35.0, 25.0),
                step(50.0, 50.0, 40.0),
                step(60.0, 52.0, 900.0),
            ],
            remeasures: Vec::new(),
            pool_samples: vec![full],
        };
        let demand = Demand {
            hold_s: Some(0.0034),
            checkouts_per_request: Some(10.0),
            ..demand()
        };
        (measured, demand)
    }

    /// The target stays on the capacity measured with pool 2 and says so
    /// beside the larger recommended pool, in the reasons and in the plan
    /// the manifest is written from.
    #[test]
    fn a_pool_bound_target_names_its_pool_and_the_recommended_ceiling() {
        let (measured, demand) = pool_bound_measurements();
        let c = analyse_measurements(measured, 1, SLO_500, &demand);
        assert_eq!(c.capacity_per_pod, Some(50.0));
        let pool = c.measured_pool.as_ref().unwrap();
        assert_eq!((pool.connections, pool.bound_capacity), (2, true));
        let recommended = c.pool.as_ref().unwrap().size;
        assert!(recommended > 2, "Erlang C at 1.7 Erlangs: {recommended}");
        let hpa = c.hpa.as_ref().unwrap();
        let from_measured = hpa::plan(&HpaInputs {
            capacity_per_pod: 50.0,
            metric_window_s: demand.metric_window_s,
            pod_start_s: demand.pod_start_s,
            readiness_s: demand.readiness_s,
            growth_per_s: demand.growth_per_s,
            base_rate: 50.0,
            peak_rate: 400.0,
            pool_per_replica: recommended,
            connection_budget: demand.connection_budget,
        });
        assert_eq!(
            hpa.target_per_pod, from_measured.target_per_pod,
            "the target is the measured capacity's"
        );
        let basis = hpa.pool_basis.as_deref().unwrap();
        let ceiling = recommended as f64 / 0.034;
        for part in [
            "target measured with pool 2: 50.0 req/s per pod (pool-bound: pool 2 serves at most 59 req/s per pod)".to_owned(),
            format!("at the recommended pool {recommended} the pool ceiling is {ceiling:.0} req/s per pod ({recommended} connections ÷ (3.4 ms hold × 10.0 checkouts per request))"),
            "stays on the measured capacity".to_owned(),
            format!("re-calibrate with pool {recommended} to raise the target"),
        ] {
            assert!(basis.contains(&part), "{part}: {basis}");
        }
        assert!(c.reasons.iter().any(|r| r == basis), "{:?}", c.reasons);
        assert!(
            hpa.reasons.iter().any(|r| r == basis),
            "in the manifest's annotation"
        );
        assert!(c
            .reasons
            .iter()
            .any(|r| r.contains("POOL BOUND THE CAPACITY")));
    }

    /// The same staircase with a pool of 10 that never ran out: the target
    /// says it holds at the recommended pool, and asks for nothing.
    #[test]
    fn a_roomy_pool_says_the_target_holds() {
        let (mut measured, demand) = pool_bound_measurements();
        measured.pool_samples[0].max = 10.0;
        measured.pool_samples[0].active = 3.0;
        measured.pool_samples[0].pending = 0.0;
        let c = analyse_measurements(measured, 1, SLO_500, &demand);
        let basis = c.hpa.as_ref().unwrap().pool_basis.clone().unwrap();
        assert!(
            basis.starts_with("target measured with pool 10: 50.0 req/s per pod (not pool-bound"),
            "{basis}"
        );
        assert!(basis.contains("above the measured capacity"), "{basis}");
        assert!(!basis.contains("re-calibrate"), "{basis}");
        assert!(!c.reasons.iter().any(|r| r.contains("POOL BOUND")));
    }

    /// The pools were scraped through both measurements of a re-measured
    /// step: its first counts among the requests the checkouts served.
    #[test]
    fn requests_completed_count_both_measurements_of_a_remeasured_step() {
        let mut steps = broken_below_met();
        let r = Remeasure::record(&mut steps, 1, step(8.0, 8.0, 430.0));
        let m = Measurements {
            steps,
            remeasures: vec![r],
            ..Default::default()
        };
        assert_eq!(
            m.work_requests_completed(10.0),
            (4.0 + 8.0 + 12.0 + 8.0) * 10.0
        );
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
