//! Chaos: break the cluster on a schedule while the load runs, and record
//! what was done, what the API answered, how long the replicas took to come
//! back, and what users felt.
//!
//! - [`plan`]: the schedule as written and the safety rules (pure).
//! - [`kube`]: the Kubernetes backend (kube-rs: pods by label selector,
//!   delete with a grace period, workload patch and watch, HPA read).
//! - [`local`]: the reference cluster's replica processes (a real `kill -9`).
//! - [`runner`]: carries out the timetable beside the load and watches recovery.
//! - [`impact`]: per-event impact from the run's measurements (pure).
//!
//! Exec actions (`sh -c COMMAND`) need no backend.

pub mod impact;
pub mod kube;
pub mod local;
pub mod plan;
pub mod pod_watch;
pub mod runner;
pub mod setup;

use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

pub use plan::{Action, BackendKind, ChaosPlan, KubeTarget, Pick};
pub use runner::Chaos;

/// One pod (or replica process) as a backend sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pod {
    /// Name (the pod name; the sim's replica name).
    pub name: String,
    /// Changes when the pod is replaced (uid; the sim's pid).
    pub uid: String,
    /// When it was created or started.
    pub started: Option<SystemTime>,
    /// Ready to serve.
    pub ready: bool,
    /// `http://IP:PORT` when known, for read-backs straight to the pod.
    pub url: Option<String>,
}

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
    /// An API error surge does not understand: chaos stopped here (the load went on).
    Aborted,
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
    pub impact: Option<impact::Impact>,
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

/// Why a backend call failed.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// The target no longer exists (404): nothing to do, chaos goes on.
    #[error("{0}")]
    Gone(String),
    /// Anything else: chaos stops (the load goes on).
    #[error("{0}")]
    Api(String),
}

/// A pod backend.
pub enum Backend {
    /// Kubernetes through kube-rs (boxed: a client is large, and there is one per run).
    Kube(Box<kube::KubeBackend>),
    /// The reference cluster's replica processes.
    Local(local::LocalBackend),
}

impl Backend {
    /// Name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Kube(_) => "kubernetes",
            Backend::Local(_) => "local",
        }
    }

    /// Starts watching the pods, where the backend can (Kubernetes); the
    /// watch ends with the backend.
    pub fn watch_pods(&mut self) {
        if let Backend::Kube(k) = self {
            k.watch_pods();
        }
    }

    /// A waiter for pod changes: the pod watch's, else a poll interval.
    pub fn changes(&self) -> pod_watch::Changes {
        match self {
            Backend::Kube(k) => k.changes(),
            Backend::Local(_) => pod_watch::Changes::polling(),
        }
    }

    /// Pods behind the selector.
    pub async fn pods(&self) -> Result<Vec<Pod>, ChaosError> {
        match self {
            Backend::Kube(k) => k.pods().await,
            Backend::Local(l) => l.pods().await,
        }
    }

    /// Kills one pod; returns what the API answered.
    pub async fn kill(&self, pod: &str, grace: Duration) -> Result<String, ChaosError> {
        match self {
            Backend::Kube(k) => k.delete_pod(pod, grace).await,
            Backend::Local(l) => l.kill(pod).await,
        }
    }

    /// Restarts the workload's pods as `kubectl rollout restart` does.
    pub async fn rollout_restart(&self) -> Result<String, ChaosError> {
        match self {
            Backend::Kube(k) => k.rollout_restart().await,
            Backend::Local(_) => Err(ChaosError::Api(
                "the local backend cannot restart a rollout".into(),
            )),
        }
    }

    /// Sets the workload's replicas.
    pub async fn scale(&self, replicas: u32) -> Result<String, ChaosError> {
        match self {
            Backend::Kube(k) => k.scale(replicas).await,
            Backend::Local(_) => Err(ChaosError::Api("the local backend cannot scale".into())),
        }
    }

    /// Desired and ready replicas (from `pods` when given and nothing
    /// better is known), and with `with_hpa` the HPA's view when there is one.
    pub async fn counts(
        &self,
        pods: Option<&[Pod]>,
        with_hpa: bool,
    ) -> Result<ReplicaCount, ChaosError> {
        match self {
            Backend::Kube(k) => k.counts(pods, with_hpa).await,
            Backend::Local(l) => l.counts().await,
        }
    }
}

fn yes() -> bool {
    true
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Done => "done",
        Outcome::Skipped => "skipped",
        Outcome::Gone => "already gone",
        Outcome::Aborted => "ABORTED",
    }
}

impl ChaosEvent {
    /// One line for people: what, on what, what the API said, how long the
    /// replicas took, and what users felt.
    pub fn summary_line(&self) -> String {
        let mut line = format!("at {:.1}s {}", self.at_s, self.action);
        if !self.target.is_empty() && self.action != "exec" {
            line += &format!(" → {}", self.target.join(", "));
        }
        line += &format!(": {} ({})", outcome_word(self.outcome), self.answer);
        if matches!(self.outcome, Outcome::Done | Outcome::Gone) {
            line += &match (self.watched, self.ready_after_s) {
                (false, _) => "; recovery not observed (no pod backend to watch)".to_owned(),
                (true, Some(s)) => format!("; replicas ready again after {s:.1} s"),
                (true, None) => "; replicas NOT back within the recovery limit".to_owned(),
            };
        }
        if let Some(i) = &self.impact {
            line += &format!(
                "; {} failed requests over {} s; {} session drops",
                i.burst_errors, i.burst_s, i.session_drops
            );
            if let (Some(b), Some(a)) = (i.p99_before_ms, i.p99_after_ms) {
                line += &format!("; p99 {b:.0} → {a:.0} ms (minute before → after)");
            }
            if let Some(slo) = i.slo_p95_ms {
                line += &match i.p95_back_s {
                    Some(s) => format!("; p95 under {slo:.0} ms from +{s:.0} s"),
                    None => format!("; p95 NOT back under {slo:.0} ms"),
                };
            }
        }
        line
    }
}

impl ChaosReport {
    /// Lines for the terminal and the Markdown summary.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "chaos ({}, {}): {} events{}",
            self.backend,
            self.scope,
            self.events.len(),
            self.median_startup_s()
                .map(|s| format!(", pod start-up (kill → ready) median {s:.1} s"))
                .unwrap_or_default()
        )];
        if let Some(why) = &self.aborted {
            out.push(format!("CHAOS ABORTED: {why}"));
        }
        out.extend(self.events.iter().map(ChaosEvent::summary_line));
        out
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
}

/// The pod start-up time a chaos run measured (median kill-to-ready), for
/// the HPA calibration's reaction time, with a sentence saying where it came from.
pub fn startup_from_bundle(bundle: &std::path::Path) -> anyhow::Result<(f64, String)> {
    let results = crate::report::read_results(bundle)?;
    let chaos = results
        .chaos
        .ok_or_else(|| anyhow::anyhow!("run {} had no chaos", results.run_id))?;
    let median = chaos
        .median_startup_s()
        .ok_or_else(|| anyhow::anyhow!("run {} has no pod kill that recovered", results.run_id))?;
    let why = format!(
        "pod start-up {median:.1} s: median of {} kill-to-ready times measured by chaos run {}",
        chaos.pod_startup_s.len(),
        results.run_id
    );
    Ok((median, why))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec_event(watched: bool, ready_after_s: Option<f64>) -> ChaosEvent {
        ChaosEvent {
            at_s: 3.0,
            action: "exec".into(),
            target: vec!["true".into()],
            outcome: Outcome::Done,
            answer: "exit 0".into(),
            ready_before: None,
            ready_after_s,
            watched,
            impact: None,
        }
    }

    #[test]
    fn a_command_with_nothing_to_watch_is_not_observed_not_failed() {
        let line = exec_event(false, None).summary_line();
        assert!(
            line.ends_with("done (exit 0); recovery not observed (no pod backend to watch)"),
            "{line}"
        );
        assert!(!line.contains("NOT back"), "{line}");
        let report = ChaosReport {
            backend: "exec".into(),
            scope: "commands only, no pods watched".into(),
            aborted: None,
            events: vec![exec_event(false, None)],
            replica_counts: vec![],
            pod_startup_s: vec![],
            slo_p95_ms: None,
            slo_source: String::new(),
        };
        assert!(report.recovered());
        assert!(
            !report.lines()[0].contains("namespace ,"),
            "{}",
            report.lines()[0]
        );
        // Watched and never back: that is a failure to recover.
        let mut kill = exec_event(true, None);
        kill.action = "kill-pod random".into();
        assert!(kill
            .summary_line()
            .contains("NOT back within the recovery limit"));
        let report = ChaosReport {
            events: vec![kill],
            ..report
        };
        assert!(!report.recovered());
    }
}
