//! The end of a calibration: the replay at the recommended rate (`surge
//! calibrate --verify`) judged — did the SLO hold, were the pools short —
//! and the reasons put in their final order once ([`Calibration::ended`]):
//! why the calibration was interrupted, if it was, first of all (every
//! conclusion rests on the steps measured before it); then the analysis's;
//! then the replay's.

use super::{pool, Calibration, Demand};
use crate::bundle::{PoolSample, Step};

/// What the replay at the recommended rate found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verification {
    /// The replay's measurement, when it ran to its end.
    pub step: Option<Step>,
    /// The most threads waiting for a database connection during it, when
    /// the pools were scraped.
    pub max_pending: Option<f64>,
    /// Whether the SLO held, and the pools were not short.
    pub held: bool,
    /// What it found, in the order it happened: a wait for the pools to
    /// drain, the verdict or why there is none.
    pub reasons: Vec<String>,
}

/// A replay of a calibration's recommendation: the rates it offers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Replay {
    /// Work requests/s: the HPA target × the replicas measured.
    pub work_per_s: f64,
    /// Arrivals/s, each making the capacity step's work per arrival.
    pub arrivals_per_s: f64,
}

impl Replay {
    /// The replay of `calibration`'s recommendation; None without one.
    /// The HPA target is in work requests; the replay offers arrivals.
    pub fn of(calibration: &Calibration) -> Option<Replay> {
        let plan = calibration.hpa.as_ref()?;
        let rate = plan.target_per_pod * calibration.replicas as f64;
        let arrivals = match calibration.capacity_step {
            Some(i) => calibration.steps[i].arrivals_for_work(rate),
            None => rate,
        };
        Some(Replay {
            work_per_s: rate,
            arrivals_per_s: arrivals,
        })
    }
}

impl Verification {
    /// Judges `step`, measured by `replay` of `calibration`'s
    /// recommendation, against its SLO, and the pool series scraped during
    /// it (`samples`, when scraped) on `demand`'s hold time and checkouts
    /// per request.
    pub fn judge(
        &mut self,
        calibration: &Calibration,
        replay: &Replay,
        demand: &Demand,
        step: Step,
        samples: Option<Vec<PoolSample>>,
    ) {
        let (rate, arrivals) = (replay.work_per_s, replay.arrivals_per_s);
        let replicas = calibration.replicas;
        let unmet = step.unmet(&calibration.slo);
        let mut held = unmet.is_empty();
        let mut verdict = if held {
            "the SLO holds".to_owned()
        } else {
            format!("the SLO does NOT hold ({})", unmet.join("; "))
        };
        if let Some(samples) = samples.filter(|s| !s.is_empty()) {
            self.max_pending = Some(pool::max_pending(&samples));
            let (short, why) = pool::verification_waits(
                &samples,
                demand.hold_s,
                demand.checkouts_per_request,
                rate / replicas.max(1) as f64,
            );
            held &= !short;
            verdict += &format!("; {why}");
        }
        self.reasons.push(format!(
            "verification: {arrivals:.1} arrivals/s ({} work req/s, the HPA target × {} replicas) gave p99 {:.0} ms, errors {:.2}%: {verdict}",
            format_args!("{rate:.1}"),
            replicas,
            step.p99_ms,
            step.error_rate * 100.0,
        ));
        self.step = Some(step);
        self.held = held;
    }

    /// The replay could not be run: `why` (its secrets redacted).
    pub fn failed(&mut self, why: &str) {
        self.reasons.push(format!(
            "verification: the replay failed: {}",
            crate::scenario::redact_text(why)
        ));
        self.held = false;
    }
}

impl Calibration {
    /// The calibration as it ends: the `verification`, when one ran, and
    /// the reasons in their final order — why it was `interrupted` (when it
    /// was; `verify_asked`: a verification was asked for, which did not run
    /// to its end), the analysis's, the verification's.
    pub fn ended(
        self,
        verification: Option<Verification>,
        interrupted: Option<String>,
        verify_asked: bool,
    ) -> Calibration {
        let Verification {
            step,
            max_pending,
            reasons: verified,
            ..
        } = verification.unwrap_or_default();
        let headline = interrupted.as_ref().map(|why| {
            let verification = if verify_asked {
                "; the verification did not run to its end"
            } else {
                ""
            };
            format!(
                "INTERRUPTED ({why}): every conclusion rests on the {} step(s) measured before it{verification}",
                self.steps.len()
            )
        });
        let reasons = headline
            .into_iter()
            .chain(self.reasons)
            .chain(verified)
            .collect();
        Calibration {
            verification: step,
            verification_max_pending: max_pending,
            reasons,
            interrupted,
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::capacity::Slo;
    use crate::calibrate::fixtures::{demand, step};

    fn calibration() -> Calibration {
        let slo = Slo {
            p99_ms: 500.0,
            error_budget: 0.01,
        };
        let steps = vec![step(10.0, 100.0), step(20.0, 200.0), step(30.0, 900.0)];
        crate::calibrate::analyse(steps, 2, slo, &demand())
    }

    /// An interruption is said first, the analysis's reasons follow
    /// unchanged, and the replay's come last.
    #[test]
    fn an_interrupted_calibration_says_so_first_and_the_replay_last() {
        let c = calibration();
        let analysed = c.reasons.clone();
        let mut v = Verification::default();
        let replay = Replay::of(&c).expect("a recommendation");
        v.judge(&c, &replay, &demand(), step(20.0, 800.0), None);
        assert!(!v.held);
        let ended = c.ended(Some(v), Some("interrupted by SIGTERM".into()), true);
        assert_eq!(
            ended.reasons[0],
            "INTERRUPTED (interrupted by SIGTERM): every conclusion rests on the 3 step(s) measured before it; the verification did not run to its end"
        );
        assert_eq!(ended.reasons[1..=analysed.len()], analysed[..]);
        let last = ended.reasons.last().unwrap();
        assert!(last.starts_with("verification: "), "{last}");
        assert!(last.contains("the SLO does NOT hold"), "{last}");
        assert_eq!(ended.verification.map(|s| s.p99_ms), Some(800.0));
        assert_eq!(ended.interrupted.as_deref(), Some("interrupted by SIGTERM"));
    }

    /// Neither interrupted nor verified: the analysis's reasons as they were.
    #[test]
    fn an_uneventful_end_keeps_the_analysis_as_it_was() {
        let c = calibration();
        assert_eq!(c.clone().ended(None, None, false), c);
    }
}
