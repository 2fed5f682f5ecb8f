//! What a calibration knows beside its steps before it analyses them: how
//! a staircase climbed now was run (how its arrivals came, how long its
//! steps were), and what the pool series scraped beside it say of the
//! demand (the connection hold time, unless `--hold` gave it; connection
//! checkouts per work request). [`analyse_calibration`] completes the
//! demand from them and opens the reasons with them, in that order, before
//! the analysis's conclusions.

use super::analysis::analyse_after;
use super::capacity::Slo;
use super::{pool, Calibration, Demand, Measurements};
use crate::scenario::ArrivalProcess;

/// How a staircase climbed now was run (steps read from a bundle have none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Climbed {
    /// How each step's arrivals came.
    pub arrivals: ArrivalProcess,
    /// Each step's length, s: the pools' checkouts over the staircase are
    /// divided among the work requests its steps completed.
    pub step_s: f64,
    /// The bisection's goal, a fraction of the rate (0: none asked).
    pub precision: f64,
}

/// Analyses a calibration's `measured` steps at `replicas` replicas, with
/// what the operator gave (`given`) and, for a staircase climbed now, how
/// it was run (`climbed`). Returns the calibration and the demand it was
/// analysed with: `given`, completed from the pool series (a replay's
/// pools are judged on it too).
pub fn analyse_calibration(
    measured: Measurements,
    climbed: Option<Climbed>,
    replicas: u32,
    slo: Slo,
    given: &Demand,
) -> (Calibration, Demand) {
    let hold = pool::hold_time(&measured.pool_samples);
    let demand = completed(given, &measured, hold, climbed);
    let mut opening: Vec<String> = climbed
        .map(|c| arrivals_reason(c.arrivals))
        .into_iter()
        .collect();
    opening
        .extend(climbed.and_then(|c| super::bisection::note(&measured.steps, &slo, c.precision)));
    if !measured.pool_samples.is_empty() {
        let given_hold = given.hold_s.is_some();
        opening.push(pool::measured_hold_reason(
            hold,
            &measured.pool_samples,
            given_hold,
        ));
        if let Some(k) = demand.checkouts_per_request {
            opening.push(format!("{k:.1} connection checkouts per work request: the pools' checkouts over the staircase ÷ the work requests it completed"));
        }
    }
    (
        analyse_after(opening, measured, replicas, slo, &demand),
        demand,
    )
}

/// `given`, completed by the pool series: the hold time they measured
/// (`hold`: seconds, checkouts seen) unless one was given, and, for a
/// staircase climbed now, checkouts per work request: the pools' checkouts
/// over the staircase ÷ the work requests it completed (setup requests,
/// few, counted in the checkouts only).
fn completed(
    given: &Demand,
    measured: &Measurements,
    hold: Option<(f64, f64)>,
    climbed: Option<Climbed>,
) -> Demand {
    let mut demand = given.clone();
    demand.hold_s = given.hold_s.or(hold.map(|(hold, _)| hold));
    if let (Some((_, checkouts)), Some(climbed)) = (hold, climbed) {
        let requests = measured.work_requests_completed(climbed.step_s);
        if requests > 0.0 {
            demand.checkouts_per_request = Some(checkouts / requests);
        }
    }
    demand
}

/// How the steps' arrivals came, and what that means near capacity.
fn arrivals_reason(arrivals: ArrivalProcess) -> String {
    match arrivals {
        ArrivalProcess::Poisson { seed } => format!(
            "each step's arrivals were a Poisson process (seed {seed}): bursty, as production traffic comes, so a step near capacity queues as it would in production"
        ),
        ArrivalProcess::Uniform => "each step's arrivals were evenly spaced (--arrivals uniform): near capacity this hides the queueing bursty production traffic causes".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::PoolSample;
    use crate::calibrate::fixtures::{demand, step};

    /// One pod's pool seen twice: 400 checkouts held 2 s in all (5 ms each).
    fn measured() -> Measurements {
        let scrape = |count: f64, sum: f64| PoolSample {
            url: "http://pod-1/actuator/prometheus".into(),
            max: 10.0,
            usage_count: count,
            usage_sum: sum,
            ..Default::default()
        };
        Measurements {
            steps: vec![step(10.0, 30.0), step(10.0, 30.0)],
            remeasures: Vec::new(),
            pool_samples: vec![scrape(100.0, 1.0), scrape(500.0, 3.0)],
        }
    }

    const SLO: Slo = Slo {
        p99_ms: 500.0,
        error_budget: 0.01,
    };

    /// Climbed now: the reasons open with the arrivals, the measured hold
    /// time and the checkouts per work request (400 ÷ (2 steps × 10 s ×
    /// 10 req/s)), in that order, and the analysis's follow.
    #[test]
    fn a_climb_opens_with_its_arrivals_hold_time_and_checkouts() {
        let climbed = Climbed {
            arrivals: ArrivalProcess::Uniform,
            step_s: 10.0,
            precision: 0.02,
        };
        let (c, demand) = analyse_calibration(measured(), Some(climbed), 1, SLO, &demand());
        assert_eq!(demand.hold_s, Some(0.005));
        assert_eq!(demand.checkouts_per_request, Some(2.0));
        assert!(c.reasons[0].starts_with("each step's arrivals were evenly spaced"));
        assert!(
            c.reasons[1].starts_with("connection hold time measured from hikaricp_connections_usage_seconds: 5.0 ms over 400 checkouts; "),
            "{}",
            c.reasons[1]
        );
        assert!(c.reasons[2].starts_with("2.0 connection checkouts per work request"));
        assert!(c.reasons[3].starts_with("capacity "), "{}", c.reasons[3]);
    }

    /// A given hold time wins and says so; steps from a bundle say nothing
    /// of arrivals and measure no checkouts per request.
    #[test]
    fn a_given_hold_wins_and_a_bundle_measures_no_checkouts() {
        let given = Demand {
            hold_s: Some(0.02),
            ..demand()
        };
        let (c, demand) = analyse_calibration(measured(), None, 1, SLO, &given);
        assert_eq!(
            (demand.hold_s, demand.checkouts_per_request),
            (Some(0.02), None)
        );
        assert!(
            c.reasons[0].contains("(--hold given, used instead)"),
            "{}",
            c.reasons[0]
        );
        assert!(c.reasons[1].starts_with("capacity "), "{}", c.reasons[1]);
    }
}
