//! A stated ramp (a morning surge) under an HPA, forecast from what the
//! calibration measured: how long it runs over the SLO, how many pods it
//! peaks at, and the minReplicas for the morning that keeps it inside the
//! SLO. The controller's rules are [`super::response`]'s; this module
//! chooses what to feed them and says it in sentences.

use super::response::{
    predict, Autoscaler, LatencyCurve, Pods, Policy, PolicyKind, Prediction, Ramp, Rules, Select,
};
use crate::bundle::Step;
use serde::{Deserialize, Serialize};

/// The forecast, as `calibration.json` keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RampForecast {
    /// The ramp, e.g. `morning-surge-fhir over 780 s, 0 → 60/s`.
    pub ramp: String,
    /// Which HPA: `as recommended` or the manifest file given.
    pub hpa: String,
    /// Fewest and most seconds over the SLO (over every sync phase).
    pub over_slo_s: (u64, u64),
    /// Fewest and most requests arriving in those seconds.
    pub requests_over_slo: (f64, f64),
    /// Fewest and most pods Ready at the peak.
    pub peak_ready: (u32, u32),
    /// The least minReplicas, held from before the ramp, that keeps it
    /// inside the SLO at every phase; `None` when none up to maxReplicas does.
    pub morning_min_replicas: Option<u32>,
    /// Pods the peak needs at the SLO's capacity.
    pub peak_needs: u32,
    /// What it rests on and what it advises, in sentences.
    pub reasons: Vec<String>,
}

/// What a pod does, from the climb: `capacity` within the SLO, the most any
/// step completed per pod, its p99 against the load per pod (judged by
/// `slo_ms`), and how long a new pod takes to be Ready.
pub fn pods(
    capacity_per_pod: f64,
    steps: &[Step],
    replicas: u32,
    start_s: f64,
    slo_ms: f64,
) -> Pods {
    let per_pod = |s: &Step| s.achieved / f64::from(replicas.max(1));
    let most = steps.iter().map(per_pod).fold(capacity_per_pod, f64::max);
    Pods {
        capacity: capacity_per_pod,
        saturation: most,
        start_s,
        latency: LatencyCurve::new(
            steps.iter().map(|s| (per_pod(s), s.p99_ms)).collect(),
            slo_ms,
        ),
    }
}

/// The forecast of `ramp` (named `name`) under `hpa` (from `source`) with
/// `pods`, starting from minReplicas Ready.
pub fn forecast(
    name: &str,
    ramp: &Ramp,
    hpa: &Autoscaler,
    source: &str,
    pods: &Pods,
) -> RampForecast {
    let prediction = predict(ramp, hpa, pods, hpa.min_replicas);
    let peak_needs = (ramp.peak() / pods.capacity).ceil().max(1.0) as u32;
    // The HPA as written is the first minReplicas tried: no need to play
    // it twice.
    let morning = if prediction.kept() {
        Some(hpa.min_replicas)
    } else {
        morning_min_replicas(ramp, hpa, pods)
    };
    let ramp_text = format!(
        "{name} over {:.0} s, peak {}/s",
        ramp.duration_s(),
        number(ramp.peak())
    );
    let mut reasons = vec![
        outcome(&prediction, &ramp_text, hpa, source),
        format!(
            "from: {} req/s per pod within the SLO, {} at most; a new pod Ready {:.0} s after the HPA asks; sync {:.0} s, tolerance {}, the metric averaged over {:.0} s and {:.0} s late; the controller's sync phase against the ramp is unknown, so every one of its {} phases is played",
            number(pods.capacity),
            number(pods.saturation),
            pods.start_s,
            hpa.sync_s,
            hpa.tolerance,
            hpa.metric_window_s,
            hpa.metric_delay_s,
            prediction.courses.len()
        ),
    ];
    reasons.push(match morning {
        _ if prediction.kept() => "the ramp stays inside the SLO as written".to_owned(),
        Some(m) => format!(
            "to keep it inside the SLO: minReplicas {m} from before the ramp begins (raised for the morning, e.g. by a CronJob that patches the HPA, and lowered after); the rest of the HPA as it is"
        ),
        None if peak_needs > hpa.max_replicas => format!(
            "no minReplicas keeps it: the peak of {}/s needs {peak_needs} pods within the SLO and maxReplicas is {}",
            number(ramp.peak()),
            hpa.max_replicas
        ),
        None => format!(
            "no minReplicas up to maxReplicas {} keeps it: the ramp climbs faster than pods start; start from more pods or lower the target",
            hpa.max_replicas
        ),
    });
    if !prediction.kept() {
        reasons.push(policy_advice(ramp, hpa, pods, &prediction));
    }
    RampForecast {
        ramp: ramp_text,
        hpa: source.to_owned(),
        over_slo_s: prediction.over_slo_s(),
        requests_over_slo: prediction.requests_over_slo(),
        peak_ready: prediction.peak_ready(),
        morning_min_replicas: morning,
        peak_needs,
        reasons,
    }
}

/// The sentence of the outcome.
fn outcome(p: &Prediction, ramp: &str, hpa: &Autoscaler, source: &str) -> String {
    let (least, most) = p.over_slo_s();
    let (r_least, r_most) = p.requests_over_slo();
    let (peak_least, peak_most) = p.peak_ready();
    let over = if most == 0 {
        "never over the SLO".to_owned()
    } else {
        format!(
            "{} s over the SLO ({} requests arriving then)",
            range(least as f64, most as f64),
            range(r_least.round(), r_most.round())
        )
    };
    format!(
        "ramp {ramp}: with the HPA {source} (target {}/s per pod, {}–{} replicas), {over}, peak {} pods Ready",
        number(hpa.target_per_pod),
        hpa.min_replicas,
        hpa.max_replicas,
        range(f64::from(peak_least), f64::from(peak_most)),
    )
}

/// Whether the scale-up policy is what makes the ramp break the SLO: the
/// same HPA scaling up as fast as the controller can (no stabilization, up
/// to maxReplicas at each sync) against the one written.
fn policy_advice(ramp: &Ramp, hpa: &Autoscaler, pods: &Pods, written: &Prediction) -> String {
    let fastest = Autoscaler {
        up: Rules {
            stabilization_s: 0.0,
            select: Select::Max,
            policies: vec![Policy {
                kind: PolicyKind::Pods,
                value: hpa.max_replicas,
                period_s: hpa.sync_s,
            }],
        },
        ..hpa.clone()
    };
    let fast = predict(ramp, &fastest, pods, hpa.min_replicas);
    let (least, most) = fast.over_slo_s();
    if fast.kept() {
        format!(
            "or scale up as fast as the controller can: a scale-up policy of {} pods per {:.0} s with no stabilization window keeps it inside the SLO",
            hpa.max_replicas, hpa.sync_s
        )
    } else if fast.over_slo_s() == written.over_slo_s() {
        format!(
            "the scale-up policy is not what is slow: scaling as fast as the controller can gives the same {} s over the SLO; a new pod's {:.0} s start and the metric's {:.0} s window are",
            range(least as f64, most as f64),
            pods.start_s,
            hpa.metric_window_s
        )
    } else {
        format!(
            "scaling up as fast as the controller can (no stabilization, up to maxReplicas at each sync) shortens it to {} s over the SLO, but only pods Ready before the ramp keep it inside",
            range(least as f64, most as f64)
        )
    }
}

/// The least minReplicas above `hpa`'s own, up to its max, that keeps
/// `ramp` inside the SLO at every phase (its own did not).
fn morning_min_replicas(ramp: &Ramp, hpa: &Autoscaler, pods: &Pods) -> Option<u32> {
    (hpa.min_replicas + 1..=hpa.max_replicas).find(|&min| {
        let raised = Autoscaler {
            min_replicas: min,
            ..hpa.clone()
        };
        predict(ramp, &raised, pods, min).kept()
    })
}

/// `12`, or `12–15` when the phases differ.
fn range(least: f64, most: f64) -> String {
    if least == most {
        number(least)
    } else {
        format!("{}–{}", number(least), number(most))
    }
}

/// A number as people write it: `12`, `12.5`.
fn number(v: f64) -> String {
    let rounded = (v * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        format!("{rounded:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Dur, OpenStage};
    use std::time::Duration;

    /// Clients that wait an hour: every backlog is served, none given up.
    const PATIENT: Duration = Duration::from_secs(3600);

    fn hpa(min: u32, max: u32) -> Autoscaler {
        let rules = |stabilization_s| Rules {
            stabilization_s,
            select: Select::Max,
            policies: vec![Policy {
                kind: PolicyKind::Percent,
                value: 100,
                period_s: 15.0,
            }],
        };
        Autoscaler {
            target_per_pod: 10.0,
            min_replicas: min,
            max_replicas: max,
            up: rules(0.0),
            down: rules(300.0),
            sync_s: 15.0,
            tolerance: 0.1,
            metric_window_s: 30.0,
            metric_delay_s: 0.0,
        }
    }

    fn morning() -> Ramp {
        let stage = |rate, ramp, hold| OpenStage {
            rate,
            ramp: Dur(Duration::from_secs(ramp)),
            hold: Dur(Duration::from_secs(hold)),
        };
        // Night at 10/s, then to 60/s in one minute.
        Ramp::of_stages(&[stage(10.0, 0, 120), stage(60.0, 60, 240)], PATIENT)
    }

    const PODS: Pods = Pods {
        capacity: 12.0,
        saturation: 14.0,
        start_s: 60.0,
        latency: None,
    };

    #[test]
    fn a_steep_morning_breaks_the_slo_and_the_advice_is_the_min_that_keeps_it() {
        let f = forecast("morning", &morning(), &hpa(2, 8), "as recommended", &PODS);
        assert!(f.over_slo_s.0 > 0, "{f:?}");
        assert_eq!(f.peak_needs, 5, "60/s at 12 per pod");
        let min = f.morning_min_replicas.expect("some min keeps it");
        assert!((5..=8).contains(&min), "{min}");
        // The advice holds when taken, and one pod fewer does not.
        let taken = hpa(min, 8);
        assert!(predict(&morning(), &taken, &PODS, min).kept());
        let fewer = hpa(min - 1, 8);
        assert!(!predict(&morning(), &fewer, &PODS, min - 1).kept());
        assert!(f.reasons[0].starts_with("ramp morning over 420 s, peak 60/s: with the HPA as recommended (target 10/s per pod, 2–8 replicas), "), "{}", f.reasons[0]);
        assert!(
            f.reasons[2].contains(&format!("minReplicas {min} from before the ramp")),
            "{:?}",
            f.reasons
        );
    }

    #[test]
    fn a_max_below_the_peak_is_said_and_a_gentle_ramp_needs_no_advice() {
        let capped = forecast("morning", &morning(), &hpa(2, 4), "hpa.yaml", &PODS);
        assert_eq!(capped.morning_min_replicas, None);
        assert!(
            capped.reasons[2].contains("needs 5 pods within the SLO and maxReplicas is 4"),
            "{:?}",
            capped.reasons
        );
        let stage = |rate, ramp, hold| OpenStage {
            rate,
            ramp: Dur(Duration::from_secs(ramp)),
            hold: Dur(Duration::from_secs(hold)),
        };
        // 10 → 30/s over an hour: the HPA follows at its target.
        let gentle = Ramp::of_stages(&[stage(10.0, 0, 60), stage(30.0, 3600, 300)], PATIENT);
        let f = forecast("slow", &gentle, &hpa(2, 8), "as recommended", &PODS);
        assert_eq!(f.over_slo_s, (0, 0), "{:?}", f.reasons);
        assert_eq!(f.reasons[2], "the ramp stays inside the SLO as written");
        assert!(
            f.reasons[0].contains("never over the SLO"),
            "{}",
            f.reasons[0]
        );
    }

    #[test]
    fn a_pod_saturates_at_the_most_any_step_completed() {
        let step = |achieved| Step {
            achieved,
            ..Default::default()
        };
        let p = pods(10.0, &[step(20.0), step(26.0), step(24.0)], 2, 30.0, 500.0);
        assert_eq!((p.capacity, p.saturation, p.start_s), (10.0, 13.0, 30.0));
        let never_more = pods(10.0, &[step(8.0)], 2, 30.0, 500.0);
        assert_eq!(never_more.saturation, 10.0, "never below the capacity");
    }
}
