//! Narrowing the capacity below the staircase's step.
//!
//! A staircase of steps `Δ` apart knows the capacity only to within a step:
//! it lies between the highest step below the cutoff (the knee, or the
//! first standing break of the SLO) and the cutoff step itself. Once the
//! climb is over, each bisection measures the rate midway between the two
//! and keeps it among the steps in rate order: met, it becomes the new
//! step below the cutoff; broken (or past the knee), the new cutoff. The
//! interval halves each time, until it is within `precision` of the rate
//! below it (2% by default) or [`MAX_BISECTIONS`] were measured.
//!
//! Capacity itself is still [`super::capacity::per_pod_capacity`] over the
//! steps: a bisection step is a step like any other, marked as one.

use super::capacity::{knee, Slo};
use super::slo_breaks::{first_standing_break, Remeasure};
use crate::bundle::Step;

/// Most bisection steps one climb measures (a 7% step narrows to 2% in two,
/// a 50% step in five).
pub const MAX_BISECTIONS: usize = 5;

/// The index of the cutoff: the first step that is not capacity (past the
/// knee, or the first standing break), when there is one and a step below it.
fn cutoff(steps: &[Step], slo: &Slo) -> Option<usize> {
    let at = knee(steps)
        .unwrap_or(steps.len())
        .min(first_standing_break(steps, slo).unwrap_or(steps.len()));
    (at > 0 && at < steps.len()).then_some(at)
}

/// The next rate to measure, and where it goes among `steps`: midway
/// between the step below the cutoff and the cutoff, while they are more
/// than `precision` (a fraction) apart and fewer than [`MAX_BISECTIONS`]
/// were measured. None when the capacity is narrowed enough, or the climb
/// found no cutoff (it never reached the limit), or nothing below it.
pub fn next(steps: &[Step], slo: &Slo, precision: f64) -> Option<(f64, usize)> {
    if steps.iter().filter(|s| s.bisected).count() >= MAX_BISECTIONS {
        return None;
    }
    let at = cutoff(steps, slo)?;
    let (below, above) = (steps[at - 1].rate, steps[at].rate);
    ((above - below) > precision * below).then_some(((below + above) / 2.0, at))
}

/// Puts the bisection step `step` at `at` among `steps` (rate order), the
/// re-measures of the steps above it following their steps.
pub fn insert(steps: &mut Vec<Step>, remeasures: &mut [Remeasure], at: usize, step: Step) {
    steps.insert(
        at,
        Step {
            bisected: true,
            ..step
        },
    );
    for r in remeasures.iter_mut().filter(|r| r.step >= at) {
        r.step += 1;
    }
}

/// What bisection found, for the reasons: how many steps, and the
/// interval the capacity now lies in; None when no step was bisected.
pub fn note(steps: &[Step], slo: &Slo, precision: f64) -> Option<String> {
    let count = steps.iter().filter(|s| s.bisected).count();
    if count == 0 {
        return None;
    }
    let interval = cutoff(steps, slo).map(|at| (steps[at - 1].rate, steps[at].rate));
    Some(match interval {
        Some((below, above)) => {
            let width = (above - below) / below * 100.0;
            let goal = if width <= precision * 100.0 + 1e-9 {
                format!("within the {:.0}% asked", precision * 100.0)
            } else {
                format!(
                    "not yet the {:.0}% asked: at most {MAX_BISECTIONS} bisections are measured",
                    precision * 100.0
                )
            };
            format!(
                "capacity narrowed by {count} bisection step(s) between the staircase's steps: it lies between {below:.2}/s (met) and {above:.2}/s (did not), {width:.1}% apart, {goal}"
            )
        }
        None => format!("{count} bisection step(s) measured"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::fixtures::step;

    const SLO: Slo = Slo {
        p99_ms: 100.0,
        error_budget: 0.01,
    };

    /// A cluster whose p99 breaks the SLO at `limit`/s: the step measured
    /// at `rate`.
    fn measured(rate: f64, limit: f64) -> Step {
        step(rate, if rate < limit { 50.0 } else { 150.0 })
    }

    /// The climb of 10/s steps from 10/s, then bisection to 2%.
    fn bisect(limit: f64) -> Vec<Step> {
        let mut steps: Vec<Step> = [10.0, 20.0, 30.0, 40.0]
            .into_iter()
            .map(|r| measured(r, limit))
            .collect();
        let mut remeasures = Vec::new();
        while let Some((rate, at)) = next(&steps, &SLO, 0.02) {
            insert(&mut steps, &mut remeasures, at, measured(rate, limit));
        }
        steps
    }

    #[test]
    fn bisection_narrows_the_capacity_to_within_two_percent_of_the_truth() {
        let steps = bisect(27.3);
        let capacity = crate::calibrate::capacity::per_pod_capacity(&steps, 1, &SLO).unwrap();
        assert!(
            capacity.0 <= 27.3 && capacity.0 >= 27.3 * 0.98,
            "{capacity:?} for a true 27.3"
        );
        let rates: Vec<f64> = steps.iter().map(|s| s.rate).collect();
        assert!(
            rates.windows(2).all(|w| w[0] < w[1]),
            "in rate order: {rates:?}"
        );
        assert_eq!(
            steps.iter().filter(|s| s.bisected).count(),
            5,
            "a 50% step: {rates:?}"
        );
        let said = note(&steps, &SLO, 0.02).unwrap();
        assert!(said.contains("within the 2% asked"), "{said}");
        // The staircase's step alone: 20/s, 27% below.
        let plain: Vec<Step> = [10.0, 20.0, 30.0]
            .into_iter()
            .map(|r| measured(r, 27.3))
            .collect();
        assert_eq!(note(&plain, &SLO, 0.02), None);
        assert_eq!(
            crate::calibrate::capacity::per_pod_capacity(&plain, 1, &SLO)
                .unwrap()
                .0,
            20.0
        );
    }

    #[test]
    fn nothing_is_bisected_without_a_limit_found_or_below_the_first_step() {
        // Every step met the SLO: the climb never found the limit.
        let unbroken: Vec<Step> = [10.0, 20.0]
            .into_iter()
            .map(|r| measured(r, 99.0))
            .collect();
        assert_eq!(next(&unbroken, &SLO, 0.02), None);
        // The first step already broke it: nothing below to bisect from.
        let broken: Vec<Step> = [10.0, 20.0].into_iter().map(|r| measured(r, 5.0)).collect();
        assert_eq!(next(&broken, &SLO, 0.02), None);
        // Steps already within the precision.
        let close = vec![measured(100.0, 101.0), measured(101.5, 101.0)];
        assert_eq!(next(&close, &SLO, 0.02), None);
    }

    #[test]
    fn bisection_stops_at_its_budget_and_says_the_goal_was_not_reached() {
        // 10/s to 1000/s: five halvings leave 3% — more than 1%.
        let mut steps = vec![measured(10.0, 500.0), measured(1000.0, 500.0)];
        let mut remeasures = vec![Remeasure {
            step: 1,
            first: measured(1000.0, 500.0),
            again: measured(1000.0, 500.0),
        }];
        while let Some((rate, at)) = next(&steps, &SLO, 0.01) {
            insert(&mut steps, &mut remeasures, at, measured(rate, 500.0));
        }
        assert_eq!(steps.iter().filter(|s| s.bisected).count(), MAX_BISECTIONS);
        assert_eq!(
            steps[remeasures[0].step].rate, 1000.0,
            "the re-measure follows its step"
        );
        let said = note(&steps, &SLO, 0.01).unwrap();
        assert!(said.contains("not yet the 1% asked"), "{said}");
    }
}
