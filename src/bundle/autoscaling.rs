//! What the autoscaler did during a run, second by second, as
//! `summary.json` keeps it: the workload's ready and desired replicas, the
//! HPA's current and desired replicas and the metric it saw against its
//! target. Recorded when the run names an HPA (`--hpa`, `[kubernetes] hpa`).

use serde::{Deserialize, Serialize};

/// The autoscaler at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AutoscalerSample {
    /// Seconds since the start of the load.
    pub at_s: f64,
    /// Ready replicas of the workload.
    pub ready: u32,
    /// Replicas the workload asks for.
    pub desired: Option<u32>,
    /// The HPA's current replicas.
    pub hpa_current: Option<u32>,
    /// The HPA's desired replicas.
    pub hpa_desired: Option<u32>,
    /// The value of the HPA's first metric as it last saw it (per pod for a
    /// Pods metric, a percentage for CPU utilization).
    pub metric_value: Option<f64>,
}

/// The autoscaler over the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AutoscalingTimeline {
    /// The workload, e.g. `deployment/hapi`.
    pub workload: String,
    /// The HPA, `namespace/name`.
    pub hpa: String,
    /// The HPA's first metric, e.g. `pods http_server_requests_per_second`.
    pub metric: Option<String>,
    /// Its target (an average value or a utilization percentage).
    pub target: Option<f64>,
    /// One a second while the load ran.
    pub samples: Vec<AutoscalerSample>,
    /// Seconds the API server did not answer (no sample then).
    pub unanswered: u64,
    /// What `surge calibrate --ramp` forecast for this run (`surge run
    /// --forecast`), kept beside what happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<AutoscalingForecast>,
}

/// A ramp's forecast from a calibration, as the run that tests it keeps it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AutoscalingForecast {
    /// The calibration bundle it came from.
    pub calibration: String,
    /// The ramp it forecast, e.g. `morning over 170 s, peak 50/s`.
    pub ramp: String,
    /// The HPA it forecast (`as recommended`, or a manifest file).
    pub hpa: String,
    /// Fewest and most seconds over the SLO, over every sync phase.
    pub over_slo_s: (u64, u64),
    /// Fewest and most pods Ready at the peak.
    pub peak_ready: (u32, u32),
}

/// The timeline in a few figures, for every report.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoscalingSummary {
    /// Ready replicas at the first sample.
    pub ready_first: u32,
    /// Ready replicas at the last sample.
    pub ready_last: u32,
    /// Most ready replicas.
    pub ready_peak: u32,
    /// When the peak was first reached (seconds into the load).
    pub ready_peak_at_s: f64,
    /// Most replicas the HPA wanted.
    pub desired_peak: Option<u32>,
    /// The metric's last value seen.
    pub metric_last: Option<f64>,
}

impl AutoscalingTimeline {
    /// What the HPA's target lets each pod serve, when the timeline says:
    /// the target of a Pods metric, a rate per pod (`None` for any other
    /// metric, or no positive target).
    pub fn target_per_pod(&self) -> Option<f64> {
        self.metric
            .as_deref()
            .filter(|m| m.starts_with("pods "))
            .and(self.target)
            .filter(|target| *target > 0.0)
    }

    /// `None` when nothing was sampled: no figure without a sample.
    pub fn summary(&self) -> Option<AutoscalingSummary> {
        let first = self.samples.first()?;
        let last = self.samples.last()?;
        let peak = self
            .samples
            .iter()
            .fold(first, |best, s| if s.ready > best.ready { s } else { best });
        Some(AutoscalingSummary {
            ready_first: first.ready,
            ready_last: last.ready,
            ready_peak: peak.ready,
            ready_peak_at_s: peak.at_s,
            desired_peak: self.samples.iter().filter_map(|s| s.hpa_desired).max(),
            metric_last: self.samples.iter().rev().find_map(|s| s.metric_value),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(at_s: f64, ready: u32, hpa_desired: u32, metric: f64) -> AutoscalerSample {
        AutoscalerSample {
            at_s,
            ready,
            hpa_desired: Some(hpa_desired),
            metric_value: Some(metric),
            ..Default::default()
        }
    }

    #[test]
    fn the_summary_is_first_last_and_peak_and_nothing_without_samples() {
        let mut t = AutoscalingTimeline::default();
        assert_eq!(t.summary(), None);
        t.samples = vec![
            at(0.0, 1, 1, 0.0),
            at(20.0, 1, 3, 29.0),
            at(31.0, 3, 3, 9.7),
            at(40.0, 3, 3, 9.6),
            at(75.0, 2, 2, 6.0),
        ];
        let s = t.summary().unwrap();
        assert_eq!((s.ready_first, s.ready_last, s.ready_peak), (1, 2, 3));
        assert_eq!(
            s.ready_peak_at_s, 31.0,
            "the first time the peak was reached"
        );
        assert_eq!(s.desired_peak, Some(3));
        assert_eq!(s.metric_last, Some(6.0));
    }
}
