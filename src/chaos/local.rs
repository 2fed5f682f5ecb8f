//! The local backend: the reference cluster's replica processes. A kill is
//! `kill -9` of the replica's process; the sim's supervisor restarts it after
//! its start-up delay, as a ReplicaSet would. Lets `surge demo` and the tests
//! show chaos without a Kubernetes cluster.

use super::{ChaosError, Pod};
use crate::bundle::ReplicaCount;
use std::sync::Arc;
use std::time::SystemTime;

/// One local replica process as its supervisor sees it.
#[derive(Debug, Clone)]
pub struct LocalReplica {
    /// Name.
    pub name: String,
    /// Port while it is up.
    pub port: Option<u16>,
    /// Process id while it is up.
    pub pid: Option<u32>,
    /// When it started answering (while it is up).
    pub since: Option<SystemTime>,
}

/// Whoever supervises the local replica processes (the reference cluster)
/// lists them through this; the harness never imports the cluster itself.
pub trait LocalReplicas: Send + Sync + std::fmt::Debug {
    /// The replicas as they are now.
    fn list(&self) -> Vec<LocalReplica>;
}

/// The sim's replicas, as pods.
pub struct LocalBackend {
    backends: Arc<dyn LocalReplicas>,
}

impl LocalBackend {
    /// Over the supervisor's live replica list.
    pub fn new(backends: Arc<dyn LocalReplicas>) -> Self {
        LocalBackend { backends }
    }

    /// Every replica: ready while its process is up and listening.
    pub async fn pods(&self) -> Result<Vec<Pod>, ChaosError> {
        Ok(self
            .backends
            .list()
            .into_iter()
            .map(|b| Pod {
                uid: b.pid.map(|p| p.to_string()).unwrap_or_default(),
                ready: b.port.is_some() && b.pid.is_some(),
                url: b.port.map(|p| format!("http://127.0.0.1:{p}")),
                started: b.since,
                name: b.name,
            })
            .collect())
    }

    /// `kill -9` of the replica's process.
    pub async fn kill(&self, name: &str) -> Result<String, ChaosError> {
        let pid = self
            .backends
            .list()
            .into_iter()
            .find(|b| b.name == name)
            .and_then(|b| b.pid)
            .ok_or_else(|| ChaosError::Gone(format!("replica {name} is not running")))?;
        let status = tokio::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .await
            .map_err(|e| ChaosError::Api(format!("cannot run kill: {e}")))?;
        if status.success() {
            Ok(format!("replica {name} (pid {pid}) killed with SIGKILL"))
        } else {
            Err(ChaosError::Gone(format!(
                "replica {name} (pid {pid}) was already gone"
            )))
        }
    }

    /// Every replica is desired; ready ones are up.
    pub async fn counts(&self) -> Result<ReplicaCount, ChaosError> {
        let list = self.backends.list();
        Ok(ReplicaCount {
            desired: Some(list.len() as u32),
            ready: list
                .iter()
                .filter(|b| b.port.is_some() && b.pid.is_some())
                .count() as u32,
            ..Default::default()
        })
    }
}
