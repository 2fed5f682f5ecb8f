//! Reading the workload's pods' CPU while `surge calibrate` climbs
//! (`--selector`): `metrics.k8s.io` through the API server every 2 s,
//! every reading kept, and each step given the CPU of the windows
//! metrics-server measured inside it (`calibrate::cpu::step_cpu` decides
//! which). The reads are the Kubernetes backend's; this module only keeps
//! them.

use crate::bundle::{PodCpuReading, StepCpu};
use crate::chaos::kube::KubeBackend;
use crate::scenario::chaos::KubeTarget;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the pods' metrics are read (metrics-server's resolution is
/// 10 s at the least, 15 s on most clusters).
const EVERY: Duration = Duration::from_secs(2);

/// How long one read may take.
const READ_LIMIT: Duration = Duration::from_secs(10);

/// Whose CPU to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCpuTarget {
    /// The pods' namespace.
    pub namespace: String,
    /// Their label selector, e.g. `app=hapi`.
    pub selector: String,
    /// The kubeconfig (else KUBECONFIG, ~/.kube/config, in-cluster).
    pub kubeconfig: Option<PathBuf>,
    /// Its context (else the current one).
    pub context: Option<String>,
}

/// The readings, kept by a task until dropped.
pub struct PodCpuWatch {
    backend: Arc<KubeBackend>,
    readings: Arc<Mutex<Vec<PodCpuReading>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PodCpuWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PodCpuWatch {
    /// Connects and reads once, so that a cluster without metrics-server,
    /// a wrong selector or a missing permission is said before the climb;
    /// then reads every [`EVERY`].
    pub async fn start(target: &PodCpuTarget) -> Result<PodCpuWatch, String> {
        let kube = KubeTarget {
            namespace: target.namespace.clone(),
            selector: target.selector.clone(),
            context: target.context.clone(),
            ..Default::default()
        };
        let backend = match &target.kubeconfig {
            Some(path) => KubeBackend::from_kubeconfig_file(path, kube).await,
            None => KubeBackend::connect(kube).await,
        }
        .map_err(|e| e.to_string())?;
        let first = read(&backend).await?;
        if first.is_empty() {
            return Err(format!(
                "metrics.k8s.io has no CPU for pods {} in {} (no such pods, or metrics-server has not scraped them yet)",
                target.selector, target.namespace
            ));
        }
        let backend = Arc::new(backend);
        let readings = Arc::new(Mutex::new(first));
        let task = tokio::spawn({
            let (backend, readings) = (backend.clone(), readings.clone());
            async move {
                loop {
                    tokio::time::sleep(EVERY).await;
                    // A read that fails is a gap: the step's other windows stand.
                    if let Ok(more) = read(&backend).await {
                        readings.lock().unwrap().extend(more);
                    }
                }
            }
        });
        Ok(PodCpuWatch {
            backend,
            readings,
            task,
        })
    }

    /// The CPU per pod over `[from, to]` (seconds since the epoch), after
    /// one more read so the window that ended last is in.
    pub async fn during(&self, from: f64, to: f64) -> Option<StepCpu> {
        if let Ok(more) = read(&self.backend).await {
            self.readings.lock().unwrap().extend(more);
        }
        let readings = self.readings.lock().unwrap();
        crate::calibrate::cpu::step_cpu(&readings, from, to)
    }
}

async fn read(backend: &KubeBackend) -> Result<Vec<PodCpuReading>, String> {
    match tokio::time::timeout(READ_LIMIT, backend.pod_cpu()).await {
        Ok(read) => read.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "the API server did not answer within {} s reading metrics.k8s.io",
            READ_LIMIT.as_secs()
        )),
    }
}

/// Now, seconds since the epoch.
pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}
