//! Chaos: break the cluster on a schedule while the load runs, and record
//! what was done, what the API answered, how long the replicas took to come
//! back, and what users felt.
//!
//! The schedule as written and its safety rules are part of the scenario
//! ([`crate::scenario::chaos`]).
//! - [`kube`]: the Kubernetes backend (kube-rs: pods by label selector,
//!   delete with a grace period, workload patch and watch, HPA read).
//! - [`local`]: the reference cluster's replica processes (a real `kill -9`).
//! - [`runner`]: carries out the timetable beside the load;
//! - `recovery`: what "recovered" means after each action, and the watches.
//! - [`impact`]: per-event impact from the run's measurements (pure).
//!
//! Exec actions (`sh -c COMMAND`) need no backend.

pub mod autoscaler;
pub mod impact;
pub mod kube;
pub mod local;
pub mod pod_watch;
mod recovery;
pub(crate) mod run_end;
pub mod runner;
pub mod setup;

use crate::bundle::ReplicaCount;
use std::time::{Duration, SystemTime};

pub use crate::scenario::chaos::{Action, BackendKind, ChaosPlan, KubeTarget, Pick};
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

/// Why a backend call failed.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// The target no longer exists (404): nothing to do, chaos goes on.
    #[error("{0}")]
    Gone(String),
    /// A PodDisruptionBudget holds an eviction (429): not a fault, and
    /// retried as `kubectl drain` does.
    #[error("{0}")]
    Held(String),
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

    /// Evicts one pod through the Eviction API, as `kubectl drain` does.
    pub async fn evict(&self, pod: &str, grace: Duration) -> Result<String, ChaosError> {
        match self {
            Backend::Kube(k) => k.evict_pod(pod, grace).await,
            // The safety rules refuse `evict` on the local backend first.
            Backend::Local(_) => Err(ChaosError::Api(
                "the local backend has no Eviction API: `evict` needs the kubernetes backend"
                    .into(),
            )),
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
