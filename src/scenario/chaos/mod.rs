//! The chaos schedule as written (`[kubernetes]` and `[chaos]` in a scenario,
//! or `--chaos` on the command line), what it compiles to, and the safety
//! rules every plan must pass before anything is touched. Pure: no network.

use super::Dur;
use serde::Deserialize;
use std::time::Duration;
use toml::Spanned;

/// `[kubernetes]`: where the pods are and how to reach them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesDef {
    /// Namespace of the workload (required for any action).
    pub namespace: Option<Spanned<String>>,
    /// Label selector of its pods, e.g. `app=openmrs` (required for any action).
    pub selector: Option<String>,
    /// `deployment/NAME` or `statefulset/NAME`: watched for ready replicas,
    /// patched by `rollout-restart` and `scale`.
    pub workload: Option<Spanned<String>>,
    /// HorizontalPodAutoscaler to read current and desired replicas from.
    pub hpa: Option<String>,
    /// kubeconfig context (default: the current one).
    pub context: Option<String>,
    /// Read uploads back straight from each pod (`http://POD_IP:PORT/BASE_PATH`).
    #[serde(default)]
    pub discover_replicas: bool,
    /// Pod port for discovery (default: the pod's first container port).
    pub pod_port: Option<u16>,
    /// Path prepended to read-back paths on a pod, e.g. `/openmrs`.
    #[serde(default)]
    pub base_path: String,
}

/// `[chaos]`: what to break, when, and the limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChaosDef {
    /// `kubernetes` (pods through the API) or `local` (the reference
    /// cluster's replica processes).
    #[serde(default)]
    pub backend: BackendKind,
    /// Grace period of a pod delete (`0s`, the default, is a hard kill).
    #[serde(default)]
    pub grace_period: Dur,
    /// Most pod kills in one run (default 5).
    pub max_kills: Option<u32>,
    /// Most actions of any kind in one run (default 20).
    pub max_actions: Option<u32>,
    /// Most pods down at once: a kill that would exceed it is skipped (default 1).
    pub max_down: Option<u32>,
    /// How long to wait for the replicas to be back after an action (default 120s).
    pub recover_within: Option<Dur>,
    /// Latency p95 the cluster must be back under after an event (default:
    /// the scenario's `requests.p95` threshold, else twice the p95 before the event).
    pub slo_p95: Option<Dur>,
    /// The actions.
    #[serde(default)]
    pub actions: Vec<Spanned<ActionDef>>,
}

/// One `[[chaos.actions]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionDef {
    /// `kill-pod`, `evict`, `rollout-restart`, `scale` or `exec`.
    pub action: String,
    /// For `kill-pod` and `evict`: `random` (default), `oldest` or `most-sessions`.
    pub pick: Option<String>,
    /// For `scale`: the replica count.
    pub replicas: Option<u32>,
    /// For `exec`: a shell command, run with `sh -c`.
    pub command: Option<String>,
    /// Once, this long after the load starts.
    pub at: Option<Spanned<Dur>>,
    /// Repeatedly, this often.
    pub every: Option<Spanned<Dur>>,
    /// With `every`: the first time (default: one period in).
    pub from: Option<Spanned<Dur>>,
}

/// Which backend carries out pod actions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// The Kubernetes API, through kube-rs.
    #[default]
    Kubernetes,
    /// The reference cluster's own replica processes (`kill -9`).
    Local,
}

/// Which pod a kill chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Any ready pod.
    Random,
    /// The ready pod that started first.
    Oldest,
    /// The ready pod that accepted most sessions so far in the run.
    MostSessions,
}

/// What one chaos step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Delete one pod (or kill one replica process).
    KillPod(Pick),
    /// Evict one pod through the Eviction API, as `kubectl drain` does in
    /// node maintenance: a PodDisruptionBudget may hold it (429), and then
    /// it is retried every 5 s, as drain does, until `recover_within`.
    Evict(Pick),
    /// Patch the pod template's `kubectl.kubernetes.io/restartedAt`, as
    /// `kubectl rollout restart` does.
    RolloutRestart,
    /// Set the workload's replicas.
    Scale(u32),
    /// Run a shell command.
    Exec(String),
}

impl Action {
    /// How the action reads in reports, e.g. `kill-pod oldest`.
    pub fn describe(&self) -> String {
        match self {
            Action::KillPod(Pick::Random) => "kill-pod random".into(),
            Action::KillPod(Pick::Oldest) => "kill-pod oldest".into(),
            Action::KillPod(Pick::MostSessions) => "kill-pod most-sessions".into(),
            Action::Evict(Pick::Random) => "evict random".into(),
            Action::Evict(Pick::Oldest) => "evict oldest".into(),
            Action::Evict(Pick::MostSessions) => "evict most-sessions".into(),
            Action::RolloutRestart => "rollout-restart".into(),
            Action::Scale(n) => format!("scale to {n}"),
            Action::Exec(_) => "exec".into(),
        }
    }

    /// Whether it goes through the pod backend (as opposed to a command).
    pub fn needs_backend(&self) -> bool {
        !matches!(self, Action::Exec(_))
    }
}

/// When an action happens, counted from the start of the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Once.
    At(Duration),
    /// Every `every`, starting at `from`.
    Every {
        /// Period.
        every: Duration,
        /// First time.
        from: Duration,
    },
}

/// A scheduled action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// What.
    pub action: Action,
    /// When.
    pub when: When,
}

/// A workload kind and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// `Deployment` or `StatefulSet`.
    pub kind: WorkloadKind,
    /// Its name.
    pub name: String,
}

impl std::fmt::Display for Workload {
    /// As written: `deployment/NAME` or `statefulset/NAME`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
        };
        write!(f, "{kind}/{}", self.name)
    }
}

/// Workloads surge can watch and patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
}

/// `[kubernetes]` compiled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeTarget {
    /// Namespace (empty when not given).
    pub namespace: String,
    /// Label selector (empty when not given).
    pub selector: String,
    /// Workload, if named.
    pub workload: Option<Workload>,
    /// HPA name, if any.
    pub hpa: Option<String>,
    /// kubeconfig context.
    pub context: Option<String>,
    /// Read uploads back straight from each pod.
    pub discover_replicas: bool,
    /// Pod port for discovery.
    pub pod_port: Option<u16>,
    /// Path prefix on a pod.
    pub base_path: String,
}

/// `[chaos]` compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChaosPlan {
    /// Pod backend.
    pub backend: BackendKind,
    /// Actions.
    pub actions: Vec<Scheduled>,
    /// Pod delete grace period.
    pub grace_period: Duration,
    /// Cap on pod kills per run.
    pub max_kills: u32,
    /// Cap on actions of any kind per run.
    pub max_actions: u32,
    /// Cap on pods down at once.
    pub max_down: u32,
    /// Recovery watch limit.
    pub recover_within: Duration,
    /// The p95 to be back under after an event.
    pub slo_p95: Option<Duration>,
}

impl Default for ChaosPlan {
    fn default() -> Self {
        ChaosPlan {
            backend: BackendKind::Kubernetes,
            actions: Vec::new(),
            grace_period: Duration::ZERO,
            max_kills: 5,
            max_actions: 20,
            max_down: 1,
            recover_within: Duration::from_secs(120),
            slo_p95: None,
        }
    }
}

/// Compiles `[kubernetes]`. Errors name the field.
pub fn compile_kubernetes(def: &KubernetesDef) -> Result<KubeTarget, String> {
    let workload = def
        .workload
        .as_ref()
        .map(|w| parse_workload(w.get_ref()))
        .transpose()?;
    Ok(KubeTarget {
        namespace: def
            .namespace
            .as_ref()
            .map(|n| n.get_ref().clone())
            .unwrap_or_default(),
        selector: def.selector.clone().unwrap_or_default(),
        workload,
        hpa: def.hpa.clone(),
        context: def.context.clone(),
        discover_replicas: def.discover_replicas,
        pod_port: def.pod_port,
        base_path: def.base_path.trim_end_matches('/').to_owned(),
    })
}

/// Parses `deployment/NAME` or `statefulset/NAME`.
pub fn parse_workload(text: &str) -> Result<Workload, String> {
    let (kind, name) = text.split_once('/').ok_or_else(|| {
        format!("workload {text:?}: expected deployment/NAME or statefulset/NAME")
    })?;
    let kind = match kind.to_ascii_lowercase().as_str() {
        "deployment" | "deploy" | "deployments" => WorkloadKind::Deployment,
        "statefulset" | "sts" | "statefulsets" => WorkloadKind::StatefulSet,
        other => {
            return Err(format!(
                "workload {text:?}: kind `{other}` is not deployment or statefulset"
            ))
        }
    };
    if name.is_empty() {
        return Err(format!("workload {text:?}: the name is empty"));
    }
    Ok(Workload {
        kind,
        name: name.to_owned(),
    })
}

/// Compiles `[chaos]`; errors carry the span of the action they are about.
pub fn compile_chaos(
    def: &ChaosDef,
) -> Result<ChaosPlan, (Option<std::ops::Range<usize>>, String)> {
    let defaults = ChaosPlan::default();
    let mut actions = Vec::new();
    for a in &def.actions {
        actions.push(compile_action(a.get_ref()).map_err(|e| (Some(a.span()), e))?);
    }
    let max_down = def.max_down.unwrap_or(defaults.max_down);
    if max_down == 0 {
        return Err((
            None,
            "max_down = 0 would refuse every kill: expected 1 or more".into(),
        ));
    }
    Ok(ChaosPlan {
        backend: def.backend,
        actions,
        grace_period: def.grace_period.0,
        max_kills: def.max_kills.unwrap_or(defaults.max_kills),
        max_actions: def.max_actions.unwrap_or(defaults.max_actions),
        max_down,
        recover_within: def.recover_within.map_or(defaults.recover_within, |d| d.0),
        slo_p95: def.slo_p95.map(|d| d.0),
    })
}

fn compile_action(a: &ActionDef) -> Result<Scheduled, String> {
    let unused = |field: &str, present: bool| {
        if present {
            Err(format!("`{field}` does not apply to action `{}`", a.action))
        } else {
            Ok(())
        }
    };
    let action = match a.action.as_str() {
        "kill-pod" => {
            unused("replicas", a.replicas.is_some())?;
            unused("command", a.command.is_some())?;
            Action::KillPod(parse_pick(a.pick.as_deref().unwrap_or("random"))?)
        }
        "evict" => {
            unused("replicas", a.replicas.is_some())?;
            unused("command", a.command.is_some())?;
            Action::Evict(parse_pick(a.pick.as_deref().unwrap_or("random"))?)
        }
        "rollout-restart" => {
            unused("pick", a.pick.is_some())?;
            unused("replicas", a.replicas.is_some())?;
            unused("command", a.command.is_some())?;
            Action::RolloutRestart
        }
        "scale" => {
            unused("pick", a.pick.is_some())?;
            unused("command", a.command.is_some())?;
            Action::Scale(a.replicas.ok_or("action `scale` needs `replicas = N`")?)
        }
        "exec" => {
            unused("pick", a.pick.is_some())?;
            unused("replicas", a.replicas.is_some())?;
            let command = a.command.clone().unwrap_or_default();
            if command.trim().is_empty() {
                return Err("action `exec` needs `command = \"...\"`".into());
            }
            Action::Exec(command)
        }
        other => {
            return Err(format!(
                "unknown action `{other}`: expected kill-pod, evict, rollout-restart, scale or exec"
            ))
        }
    };
    let time = |d: &Option<Spanned<Dur>>| d.as_ref().map(|d| d.get_ref().0);
    let when = match (time(&a.at), time(&a.every)) {
        (Some(at), None) => {
            unused("from", a.from.is_some())?;
            When::At(at)
        }
        (None, Some(every)) if !every.is_zero() => When::Every {
            every,
            from: time(&a.from).unwrap_or(every),
        },
        (None, Some(_)) => return Err("`every` must be more than zero".into()),
        _ => return Err("give `at = \"30s\"` or `every = \"60s\"` (one of them)".into()),
    };
    Ok(Scheduled { action, when })
}

fn parse_pick(text: &str) -> Result<Pick, String> {
    match text {
        "random" => Ok(Pick::Random),
        "oldest" => Ok(Pick::Oldest),
        "most-sessions" => Ok(Pick::MostSessions),
        other => Err(format!(
            "pick `{other}`: expected random, oldest or most-sessions"
        )),
    }
}

/// Parses a `--chaos` value: `ACTION[:ARG]@WHEN`, where ACTION is
/// `kill-pod[:random|oldest|most-sessions]`, `evict[:PICK]`, `rollout-restart`, `scale:N` or
/// `exec:COMMAND`, and WHEN is `30s` or `every:60s`.
pub fn parse_cli(spec: &str) -> Result<Scheduled, String> {
    let usage = "expected ACTION@WHEN, e.g. kill-pod@30s, kill-pod:oldest@every:60s, evict@1m, \
                 rollout-restart@2m, scale:5@90s, 'exec:docker kill web-2@45s'";
    let (what, when) = spec
        .rsplit_once('@')
        .ok_or_else(|| format!("--chaos {spec:?}: {usage}"))?;
    let (action, arg) = match what.split_once(':') {
        Some((a, b)) => (a.trim(), Some(b.trim())),
        None => (what.trim(), None),
    };
    let bad = |e: String| format!("--chaos {spec:?}: {e}");
    let def = ActionDef {
        action: action.to_owned(),
        pick: matches!(action, "kill-pod" | "evict")
            .then(|| arg.map(str::to_owned))
            .flatten(),
        replicas: match (action, arg) {
            ("scale", Some(n)) => Some(
                n.parse()
                    .map_err(|_| bad(format!("scale:{n}: expected a replica count")))?,
            ),
            _ => None,
        },
        command: (action == "exec").then(|| arg.unwrap_or("").to_owned()),
        at: None,
        every: None,
        from: None,
    };
    if arg.is_some() && !matches!(action, "kill-pod" | "evict" | "scale" | "exec") {
        return Err(bad(format!("`{action}` takes no `:` argument; {usage}")));
    }
    // Not from a file: no place to point at.
    let duration = |t: &str| {
        super::parse_duration(t)
            .map(|d| Spanned::new(0..0, Dur(d)))
            .map_err(bad)
    };
    let def = match when.trim().strip_prefix("every:") {
        Some(period) => ActionDef {
            every: Some(duration(period)?),
            ..def
        },
        None => ActionDef {
            at: Some(duration(when)?),
            ..def
        },
    };
    compile_action(&def).map_err(bad)
}

mod safety;
mod schedule;

pub use safety::*;
pub use schedule::*;

#[cfg(test)]
mod tests;
