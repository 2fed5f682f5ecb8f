//! What calibration measures: the staircase's steps and the target's
//! connection-pool samples, as `calibration.json` keeps them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One step of the staircase, as measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Offered arrivals per second.
    pub rate: f64,
    /// Completed work requests per second (setup requests, the logins and
    /// token fetches a user makes once, left out: see `setup_per_s`).
    pub achieved: f64,
    /// Latency percentiles, ms.
    pub p50_ms: f64,
    /// p95, ms.
    pub p95_ms: f64,
    /// p99, ms.
    pub p99_ms: f64,
    /// Mean latency, ms (for Little's law).
    pub mean_ms: f64,
    /// Failed / completed.
    pub error_rate: f64,
    /// Arrivals that found no free user.
    pub dropped: u64,
    /// Work requests issued per arrival (the persona mix), when measured.
    #[serde(default)]
    pub work_per_arrival: Option<f64>,
    /// Arrivals actually scheduled per second over the step (the planned
    /// rate, give or take the one arrival a short step's edges decide).
    #[serde(default)]
    pub arrivals_per_s: Option<f64>,
    /// Completed work requests per second, per request kind.
    #[serde(default)]
    pub by_request: BTreeMap<String, f64>,
    /// Setup requests (logins, token fetches) completed per second, apart
    /// from `achieved`.
    #[serde(default)]
    pub setup_per_s: f64,
    /// The worst work request's p95 second by second, summarised as the
    /// median of the step's first third and the lowest second of its last
    /// third, ms: a backlog that grows shows as a rising pair, one slow
    /// second does not.
    #[serde(default)]
    pub p95_trend_ms: Option<(f64, f64)>,
    /// Read-backs of uploads surge sent per second during the step: load the
    /// cluster carried beside the work, not capacity (None when the step is
    /// a stage of a longer run whose bundle does not say when they were sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_backs_per_s: Option<f64>,
    /// Measured by bisection after the climb, between two of its steps
    /// (`calibrate::bisection`), not as a step of the staircase.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bisected: bool,
    /// The pods' CPU during the step, from `metrics.k8s.io`, when surge
    /// calibrate was given the workload's pods to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<StepCpu>,
}

/// A step's CPU per pod, from the windows metrics-server measured wholly
/// inside the step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepCpu {
    /// Mean CPU per pod, millicores.
    pub millicores_per_pod: f64,
    /// Pods read.
    pub pods: u32,
    /// Windows counted, all pods together.
    pub windows: u32,
    /// The pods' CPU request, millicores (their mean), when every pod read
    /// sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_millicores: Option<f64>,
}

/// One pod's CPU as `metrics.k8s.io` reported it: its mean over the window
/// `[end − window, end]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodCpuReading {
    /// The pod.
    pub pod: String,
    /// The window's end, seconds since the epoch.
    pub end_unix_s: f64,
    /// The window's length, s.
    pub window_s: f64,
    /// Mean CPU over the window, millicores (all containers).
    pub millicores: f64,
    /// The pod's CPU request, millicores (all containers), when every
    /// container sets one.
    pub request_millicores: Option<f64>,
}

impl Step {
    /// A step measured at `rate`: `count` requests completed (`failed` of
    /// them failed) over `seconds`, with their latency, and the arrivals
    /// dropped. Both ways to a step (a run of its own, a stage of a
    /// multi-stage run) come through here.
    pub fn measured(
        rate: f64,
        count: u64,
        failed: u64,
        seconds: f64,
        latency: &super::Percentiles,
        dropped: u64,
    ) -> Step {
        Step {
            rate,
            achieved: count as f64 / seconds.max(1e-9),
            p50_ms: latency.p50,
            p95_ms: latency.p95,
            p99_ms: latency.p99,
            mean_ms: latency.mean,
            error_rate: if count == 0 {
                0.0
            } else {
                failed as f64 / count as f64
            },
            dropped,
            work_per_arrival: None,
            arrivals_per_s: None,
            by_request: BTreeMap::new(),
            setup_per_s: 0.0,
            p95_trend_ms: None,
            read_backs_per_s: None,
            bisected: false,
            cpu: None,
        }
    }

    /// Requests per second the cluster carried during the step: the work,
    /// the setup requests and surge's own read-backs.
    pub fn carried_per_s(&self) -> f64 {
        self.achieved + self.setup_per_s + self.read_backs_per_s.unwrap_or(0.0)
    }

    /// `; the cluster carried 41.2/s with 8.0 read-backs/s of uploads`, or
    /// nothing when surge sent no read-backs.
    pub fn read_backs_text(&self) -> String {
        match self.read_backs_per_s {
            Some(rb) if rb > 0.0 => format!(
                "; the cluster carried {:.1}/s with {rb:.1} read-backs/s of uploads",
                self.carried_per_s()
            ),
            _ => String::new(),
        }
    }
}

/// The pool series of one endpoint at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolSample {
    /// Seconds since scraping started.
    pub at_s: f64,
    /// Which endpoint.
    pub url: String,
    /// `hikaricp_connections_active`.
    pub active: f64,
    /// `hikaricp_connections_pending`.
    pub pending: f64,
    /// `hikaricp_connections_max`.
    pub max: f64,
    /// `hikaricp_connections_usage_seconds_count`.
    pub usage_count: f64,
    /// `hikaricp_connections_usage_seconds_sum`.
    pub usage_sum: f64,
    /// `process_cpu_usage` (0..1 of the pod's CPUs), when exposed.
    #[serde(default)]
    pub cpu: Option<f64>,
    /// `jvm_memory_used_bytes`, all areas, when exposed.
    #[serde(default)]
    pub jvm_memory_bytes: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steps_read_backs_are_carried_load_and_said_only_when_sent() {
        let mut s = Step {
            achieved: 30.0,
            setup_per_s: 1.0,
            ..Default::default()
        };
        assert_eq!(s.read_backs_text(), "");
        s.read_backs_per_s = Some(0.0);
        assert_eq!(s.read_backs_text(), "");
        s.read_backs_per_s = Some(10.2);
        assert!((s.carried_per_s() - 41.2).abs() < 1e-9);
        assert_eq!(
            s.read_backs_text(),
            "; the cluster carried 41.2/s with 10.2 read-backs/s of uploads"
        );
    }
}
