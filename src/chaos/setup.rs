//! From a scenario's `[kubernetes]`/`[chaos]` and the command line to a
//! chaos run that passed the safety rules and reached its backend.

use super::{kube::KubeBackend, local::LocalBackend, local::ReplicaDir, Backend, Chaos};
use crate::scenario::chaos::{self as plan, BackendKind, ChaosPlan, KubeTarget};
use crate::scenario::Scenario;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Chaos settings from the command line (each replaces the scenario's).
#[derive(Debug, Clone, Default)]
pub struct ChaosRequest {
    /// `--chaos ACTION@WHEN`, replacing the scenario's actions.
    pub specs: Vec<String>,
    /// `--chaos-backend`.
    pub backend: Option<BackendKind>,
    /// `--namespace`.
    pub namespace: Option<String>,
    /// `--selector`.
    pub selector: Option<String>,
    /// `--workload`.
    pub workload: Option<String>,
    /// `--hpa`.
    pub hpa: Option<String>,
    /// `--context`.
    pub context: Option<String>,
    /// `--kubeconfig` (default: `KUBECONFIG`, `~/.kube/config`, in-cluster).
    pub kubeconfig: Option<PathBuf>,
    /// `--allow-namespace`: the only namespaces chaos may touch.
    pub allow_namespaces: Vec<String>,
    /// `--max-kills`.
    pub max_kills: Option<u32>,
    /// `--grace-period`.
    pub grace_period: Option<Duration>,
    /// The reference cluster's replicas, for the local backend (`surge demo`, tests).
    pub local: Option<Arc<dyn super::local::LocalReplicas>>,
    /// `--replica-dir`: the local backend's replicas from a folder their
    /// supervisor keeps ([`ReplicaDir`]).
    pub replica_dir: Option<PathBuf>,
    /// Read uploads back straight from each pod the backend lists.
    pub discover_replicas: bool,
}

/// The Kubernetes target: the scenario's `[kubernetes]`, with the command
/// line's flags over it.
pub fn kube_target(request: &ChaosRequest, scenario: &Scenario) -> Result<KubeTarget, String> {
    let mut kube = scenario.kubernetes.clone();
    let set = |field: &mut String, value: &Option<String>| {
        if let Some(v) = value {
            *field = v.clone();
        }
    };
    set(&mut kube.namespace, &request.namespace);
    set(&mut kube.selector, &request.selector);
    if let Some(w) = &request.workload {
        kube.workload = Some(plan::parse_workload(w).map_err(|e| format!("--workload: {e}"))?);
    }
    if request.hpa.is_some() {
        kube.hpa = request.hpa.clone();
    }
    if request.context.is_some() {
        kube.context = request.context.clone();
    }
    kube.discover_replicas |= request.discover_replicas;
    Ok(kube)
}

/// The plan and the Kubernetes target, after the command line and the
/// safety rules; None when the run has no chaos and no pod discovery.
pub fn resolve(
    request: &ChaosRequest,
    scenario: &Scenario,
) -> Result<Option<(ChaosPlan, KubeTarget)>, String> {
    let kube = kube_target(request, scenario)?;
    let mut plan = scenario.chaos.clone().unwrap_or_default();
    if !request.specs.is_empty() {
        plan.actions = request
            .specs
            .iter()
            .map(|s| plan::parse_cli(s))
            .collect::<Result<_, _>>()?;
    }
    if let Some(b) = request.backend {
        plan.backend = b;
    }
    if let Some(dir) = &request.replica_dir {
        match request.backend {
            Some(BackendKind::Kubernetes) => {
                return Err(format!(
                    "--replica-dir {} lists local replica processes: it goes with --chaos-backend local",
                    dir.display()
                ))
            }
            _ => plan.backend = BackendKind::Local,
        }
    }
    if let Some(n) = request.max_kills {
        plan.max_kills = n;
    }
    if let Some(g) = request.grace_period {
        plan.grace_period = g;
    }
    if plan.actions.is_empty() && !kube.discover_replicas {
        return Ok(None);
    }
    plan::authorize(&plan, &kube, &request.allow_namespaces)?;
    if kube.discover_replicas
        && plan.backend == BackendKind::Kubernetes
        && (kube.namespace.is_empty() || kube.selector.is_empty())
    {
        return Err("[kubernetes] discover_replicas needs a namespace and a selector".into());
    }
    Ok(Some((plan, kube)))
}

/// Reaches the backend (one pod list, so a wrong context or missing
/// permission fails before the load starts, not in the middle of it).
pub async fn connect(
    request: &ChaosRequest,
    plan: ChaosPlan,
    kube: KubeTarget,
) -> Result<Chaos, String> {
    let needs_backend =
        plan.actions.iter().any(|s| s.action.needs_backend()) || kube.discover_replicas;
    let scope = match plan.backend {
        _ if !needs_backend => "commands only, no pods watched".to_owned(),
        BackendKind::Kubernetes => {
            format!("namespace {}, selector {}", kube.namespace, kube.selector)
        }
        BackendKind::Local => match &request.replica_dir {
            Some(dir) if request.local.is_none() => {
                format!("replica processes listed in {}", dir.display())
            }
            _ => "reference cluster replicas".to_owned(),
        },
    };
    let discover_replicas = kube.discover_replicas.then(|| kube.base_path.clone());
    let workload = kube.workload.as_ref().map(ToString::to_string);
    let backend = if !needs_backend {
        None
    } else {
        Some(match plan.backend {
            BackendKind::Local => Backend::Local(LocalBackend::new(
                match (&request.local, &request.replica_dir) {
                    (Some(local), _) => local.clone(),
                    (None, Some(dir)) => Arc::new(ReplicaDir::open(dir)?),
                    (None, None) => return Err(
                        "the local chaos backend needs --replica-dir DIR (one file per replica process, kept by its supervisor) or the reference cluster of `surge demo`".into(),
                    ),
                },
            )),
            BackendKind::Kubernetes => Backend::Kube(Box::new(
                match &request.kubeconfig {
                    Some(path) => KubeBackend::from_kubeconfig_file(path, kube).await,
                    None => KubeBackend::connect(kube).await,
                }
                .map_err(|e| e.to_string())?,
            )),
        })
    };
    if let Some(b) = &backend {
        let pods = b
            .pods()
            .await
            .map_err(|e| format!("cannot list the pods chaos would act on: {e}"))?;
        if pods.is_empty() {
            return Err(format!("no pods match ({scope}): nothing to act on"));
        }
    }
    Ok(Chaos {
        plan,
        backend,
        scope,
        discover_replicas,
        workload,
    })
}
