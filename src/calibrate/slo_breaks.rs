//! Steps that broke the SLO below a step that met it.
//!
//! A low step can break the SLO for reasons that are not capacity (a JVM
//! still compiling its hot paths, a neighbour's burst) while a higher step
//! meets it. Taking capacity from the higher step then rests on a
//! measurement the staircase itself contradicts, so the rule is:
//!
//! - A step that broke the SLO while a step above it met it is measured
//!   once more at its own rate ([`next_move`] says when; the climb in
//!   `run::staircase` does it). Only then: on a staircase that rises
//!   cleanly into its knee the first break is the knee, and re-measuring it
//!   would cost a step and tell nothing.
//! - If the re-measure meets the SLO, the first measurement was warm-up or
//!   noise: the step stands on its re-measure, and capacity may come from
//!   the steps above it.
//! - If it breaks the SLO again, or was never re-measured (steps read back
//!   from a bundle, a climb stopped first), the break stands: capacity comes
//!   only from the steps below the first standing break, and the climb
//!   stops there (nothing above it could become capacity).
//!
//! [`notes`] names every re-measured step and every step above a standing
//! break that met the SLO; a staircase with neither gets no note.

use super::capacity::{saturated, Slo};
use crate::bundle::Step;
use serde::{Deserialize, Serialize};

/// A step measured twice: it broke the SLO while a step above it met it.
/// The staircase keeps `again` as the step's measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Remeasure {
    /// Index of the step in the staircase.
    pub step: usize,
    /// The first measurement, which broke the SLO.
    pub first: Step,
    /// The measurement at the same rate once more.
    pub again: Step,
}

impl Remeasure {
    /// Keeps `again` as step `i`'s measurement in `steps`, and the record
    /// of both.
    pub fn record(steps: &mut [Step], i: usize, again: Step) -> Remeasure {
        let first = std::mem::replace(&mut steps[i], again.clone());
        Remeasure {
            step: i,
            first,
            again,
        }
    }
}

/// What a climbing staircase does after its latest measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextMove {
    /// Measure the next rate.
    Climb,
    /// Measure step `i` (index) once more at its rate, and keep that
    /// measurement as the step's.
    Remeasure(usize),
    /// Stop: past saturation, or a break that stands below a step that met
    /// the SLO.
    Stop,
}

/// The first step whose measurement (its re-measure, when it had one)
/// broke the SLO: capacity comes only from the steps below it.
pub fn first_standing_break(steps: &[Step], slo: &Slo) -> Option<usize> {
    steps.iter().position(|s| !s.meets(slo))
}

/// What to do after the latest step of `steps` (each holding its latest
/// measurement), given the re-measures done so far.
pub fn next_move(steps: &[Step], remeasures: &[Remeasure], slo: &Slo) -> NextMove {
    if let Some(broken) = first_standing_break(steps, slo) {
        if steps[broken + 1..].iter().any(|s| s.meets(slo)) {
            return if remeasures.iter().any(|r| r.step == broken) {
                NextMove::Stop
            } else {
                NextMove::Remeasure(broken)
            };
        }
    }
    if saturated(steps, slo) {
        NextMove::Stop
    } else {
        NextMove::Climb
    }
}

/// A rate as people write it: 8/s, 2.5/s.
pub fn rate_text(rate: f64) -> String {
    format!("{}/s", (rate * 100.0).round() / 100.0)
}

/// Whether a step met the SLO, and its p99 and errors, in a few words.
fn outcome(step: &Step, slo: &Slo) -> String {
    let unmet = step.unmet(slo);
    if unmet.is_empty() {
        let errors = if step.error_rate > 0.0 {
            format!(", errors {:.2}%", step.error_rate * 100.0)
        } else {
            String::new()
        };
        format!("p99 {:.0} ms{errors}", step.p99_ms)
    } else {
        // " and ", not "; ": the notes separate two measurements with "; ".
        unmet.join(" and ")
    }
}

/// Every re-measured step, and the steps that met the SLO above a standing
/// break, with the numbers; empty for a staircase with neither.
pub fn notes(steps: &[Step], remeasures: &[Remeasure], slo: &Slo) -> Vec<String> {
    let mut out = Vec::new();
    for r in remeasures {
        let at = format!("step {} at {}", r.step + 1, rate_text(r.first.rate));
        out.push(if r.again.meets(slo) {
            format!(
                "{at} broke the SLO ({}), re-measured: {} — taken as warm-up/noise: the step stands on its re-measure",
                outcome(&r.first, slo),
                outcome(&r.again, slo)
            )
        } else {
            format!(
                "{at} broke the SLO twice ({}; re-measured: {})",
                outcome(&r.first, slo),
                outcome(&r.again, slo)
            )
        });
    }
    let Some(broken) = first_standing_break(steps, slo) else {
        return out;
    };
    let met_above: Vec<String> = steps
        .iter()
        .enumerate()
        .skip(broken + 1)
        .filter(|(_, s)| s.meets(slo))
        .map(|(i, s)| {
            format!(
                "step {} at {} ({})",
                i + 1,
                rate_text(s.rate),
                outcome(s, slo)
            )
        })
        .collect();
    if met_above.is_empty() {
        return out;
    }
    let step = &steps[broken];
    let how = if remeasures.iter().any(|r| r.step == broken) {
        "broke it twice".to_owned()
    } else {
        format!(
            "broke it ({}) and was not re-measured (steps read from a bundle, or the climb stopped first)",
            outcome(step, slo)
        )
    };
    out.push(format!(
        "capacity stops below step {} at {}, which {how}: {} above it met the SLO but {} not taken — a step that broke the SLO bounds capacity unless its re-measure meets the SLO",
        broken + 1,
        rate_text(step.rate),
        met_above.join(", "),
        if met_above.len() == 1 { "is" } else { "are" }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::fixtures::step;

    const SLO: Slo = Slo {
        p99_ms: 500.0,
        error_budget: 0.01,
    };

    /// The user's staircase: step 2 at 8/s broke the SLO, step 3 at 12/s
    /// met it.
    fn broken_below_met() -> Vec<Step> {
        vec![step(4.0, 300.0), step(8.0, 511.0), step(12.0, 420.0)]
    }

    #[test]
    fn a_break_below_a_met_step_is_remeasured_once_then_stops_the_climb() {
        let steps = broken_below_met();
        assert_eq!(next_move(&steps, &[], &SLO), NextMove::Remeasure(1));
        // Broke again: the break stands, and nothing above it can become capacity.
        let again = step(8.0, 530.0);
        let twice = [Remeasure {
            step: 1,
            first: steps[1].clone(),
            again: again.clone(),
        }];
        let mut kept = steps.clone();
        kept[1] = again;
        assert_eq!(next_move(&kept, &twice, &SLO), NextMove::Stop);
        // Met on the re-measure: the climb goes on.
        let noise = [Remeasure {
            step: 1,
            first: steps[1].clone(),
            again: step(8.0, 430.0),
        }];
        kept[1] = step(8.0, 430.0);
        assert_eq!(next_move(&kept, &noise, &SLO), NextMove::Climb);
    }

    /// A staircase rising cleanly into its knee is never re-measured: it
    /// climbs until two steps in a row broke the SLO.
    #[test]
    fn a_clean_staircase_climbs_to_saturation_without_remeasures() {
        let mut steps = vec![step(4.0, 100.0), step(8.0, 200.0)];
        assert_eq!(next_move(&steps, &[], &SLO), NextMove::Climb);
        steps.push(step(12.0, 600.0));
        assert_eq!(next_move(&steps, &[], &SLO), NextMove::Climb);
        steps.push(step(16.0, 900.0));
        assert_eq!(next_move(&steps, &[], &SLO), NextMove::Stop);
        assert_eq!(first_standing_break(&steps, &SLO), Some(2));
        assert!(
            notes(&steps, &[], &SLO).is_empty(),
            "a clean staircase gets no note"
        );
    }

    #[test]
    fn a_break_refuted_by_its_remeasure_is_named_as_warm_up() {
        let mut steps = broken_below_met();
        let r = [Remeasure::record(&mut steps, 1, step(8.0, 430.0))];
        assert_eq!(first_standing_break(&steps, &SLO), None);
        assert_eq!(
            notes(&steps, &r, &SLO),
            ["step 2 at 8/s broke the SLO (p99 511 ms > 500 ms), re-measured: p99 430 ms — taken as warm-up/noise: the step stands on its re-measure"]
        );
    }

    #[test]
    fn a_break_that_stands_names_the_steps_above_it_that_met() {
        let mut steps = broken_below_met();
        let r = [Remeasure::record(&mut steps, 1, step(8.0, 530.0))];
        assert_eq!(
            notes(&steps, &r, &SLO),
            [
                "step 2 at 8/s broke the SLO twice (p99 511 ms > 500 ms; re-measured: p99 530 ms > 500 ms)",
                "capacity stops below step 2 at 8/s, which broke it twice: step 3 at 12/s (p99 420 ms) above it met the SLO but is not taken — a step that broke the SLO bounds capacity unless its re-measure meets the SLO",
            ]
        );
        // Read back from a bundle, never re-measured: the break stands too.
        let unmeasured = notes(&broken_below_met(), &[], &SLO);
        assert_eq!(unmeasured.len(), 1);
        assert!(
            unmeasured[0].starts_with("capacity stops below step 2 at 8/s, which broke it (p99 511 ms > 500 ms) and was not re-measured"),
            "{unmeasured:?}"
        );
    }

    #[test]
    fn rates_read_as_written() {
        assert_eq!(rate_text(8.0), "8/s");
        assert_eq!(rate_text(0.1 + 0.2), "0.3/s");
        assert_eq!(rate_text(12.5), "12.5/s");
    }
}
