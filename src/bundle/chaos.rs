//! What chaos did in a run, as `summary.json` keeps it: the events, the
//! replica counts over time, the pod start-up times and what users felt.

use serde::{Deserialize, Serialize};

/// Replica counts of the workload at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicaCount {
    /// Seconds since the start of the load.
    pub at_s: f64,
    /// Replicas the workload asks for.
    pub desired: Option<u32>,
    /// Ready replicas.
    pub ready: u32,
    /// The HPA's current replicas, when there is one.
    #[serde(default)]
    pub hpa_current: Option<u32>,
    /// The HPA's desired replicas, when there is one.
    #[serde(default)]
    pub hpa_desired: Option<u32>,
}

/// What happened to one scheduled action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Carried out.
    Done,
    /// Not carried out, by a limit (cap on kills, pods down at once, no pod to pick).
    Skipped,
    /// The API said the target was already gone.
    Gone,
    /// A PodDisruptionBudget held an eviction until the deadline: the
    /// cluster protecting itself, not a fault.
    Held,
    /// An API error surge does not understand: chaos stopped here (the load went on).
    Aborted,
}

impl Outcome {
    /// Name used in reports and labels (as in `summary.json`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Skipped => "skipped",
            Outcome::Gone => "gone",
            Outcome::Held => "held",
            Outcome::Aborted => "aborted",
        }
    }
}

/// One chaos event on the run's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChaosEvent {
    /// Seconds since the start of the load.
    pub at_s: f64,
    /// What was asked, e.g. `kill-pod oldest`.
    pub action: String,
    /// What it was aimed at (pod names, workload, command).
    pub target: Vec<String>,
    /// What became of it.
    pub outcome: Outcome,
    /// What the API (or the command) answered.
    pub answer: String,
    /// Ready replicas just before.
    pub ready_before: Option<u32>,
    /// Seconds from the action until the replicas were ready again (and a
    /// killed pod replaced); None if they were not within the recovery limit.
    pub ready_after_s: Option<f64>,
    /// Whether recovery was watched at all (a command run without a pod
    /// backend has nothing to watch: its recovery is "not observed").
    #[serde(default = "yes")]
    pub watched: bool,
    /// What users felt (filled in after the run).
    pub impact: Option<Impact>,
}

/// Everything chaos did in a run, for `summary.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChaosReport {
    /// `kubernetes`, `local` or `exec`.
    pub backend: String,
    /// Namespace and selector (Kubernetes).
    pub scope: String,
    /// Why chaos stopped early, if it did.
    pub aborted: Option<String>,
    /// The events, in order.
    pub events: Vec<ChaosEvent>,
    /// Ready / desired replicas over time.
    pub replica_counts: Vec<ReplicaCount>,
    /// Seconds from a pod kill until its replacement was ready, per kill
    /// that recovered: the pod start-up time the HPA calibration needs.
    pub pod_startup_s: Vec<f64>,
    /// The p95 events are judged against (ms), and where it came from.
    pub slo_p95_ms: Option<f64>,
    /// Where `slo_p95_ms` came from.
    pub slo_source: String,
}

impl ChaosReport {
    /// The windows during which a chaos event was in progress (from the
    /// action until the replicas were back; to the end of the run if never).
    pub fn windows(&self, run_end_s: f64) -> Vec<(f64, f64)> {
        self.events
            .iter()
            .filter(|e| matches!(e.outcome, Outcome::Done | Outcome::Gone))
            .map(|e| {
                let end = e.ready_after_s.map_or(run_end_s, |r| e.at_s + r);
                (e.at_s, end.max(e.at_s))
            })
            .collect()
    }

    /// True when chaos ran to plan and every action's effect was over in time.
    pub fn recovered(&self) -> bool {
        self.aborted.is_none()
            && self
                .events
                .iter()
                .filter(|e| e.outcome == Outcome::Done && e.watched)
                .all(|e| e.ready_after_s.is_some() || e.action == "exec")
    }

    /// Median pod start-up time, seconds.
    pub fn median_startup_s(&self) -> Option<f64> {
        let mut v = self.pod_startup_s.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(v[v.len() / 2])
    }
}

/// The impact of one event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Impact {
    /// Failed requests in the burst.
    pub burst_errors: u64,
    /// Seconds from the burst's first failing second to its last (0: none).
    pub burst_s: u64,
    /// Session drops attributed to the event.
    pub session_drops: u64,
    /// Latency p99 in the minute before, ms.
    pub p99_before_ms: Option<f64>,
    /// Latency p99 in the minute from the event on, ms.
    pub p99_after_ms: Option<f64>,
    /// The p95 the event is judged against, ms.
    pub slo_p95_ms: Option<f64>,
    /// Seconds from the event until the p95 was back under the SLO (None:
    /// not within the window).
    pub p95_back_s: Option<f64>,
    /// Seconds from the event until the replicas were ready again.
    pub ready_after_s: Option<f64>,
}

fn yes() -> bool {
    true
}
