//! The safety rules every chaos plan passes before anything is touched, and
//! the plan in words for `--dry-run`.

use super::*;

/// Namespaces chaos never touches, whatever the operator allows.
pub const FORBIDDEN_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// Why chaos refuses `namespace`, when it is a system namespace.
pub fn system_namespace(namespace: &str) -> Option<String> {
    FORBIDDEN_NAMESPACES.contains(&namespace).then(|| {
        format!("namespace `{namespace}` is refused: surge never runs chaos in a system namespace")
    })
}

/// The safety rules, checked before any call: pod actions on Kubernetes need
/// an explicit namespace and selector, in a namespace the operator allowed
/// on the command line and never a system one; workload actions need the
/// workload; the local backend only kills.
pub fn authorize(plan: &ChaosPlan, kube: &KubeTarget, allowed: &[String]) -> Result<(), String> {
    let pod_actions: Vec<&Action> = plan
        .actions
        .iter()
        .map(|s| &s.action)
        .filter(|a| a.needs_backend())
        .collect();
    if pod_actions.is_empty() {
        return Ok(());
    }
    match plan.backend {
        BackendKind::Local => {
            if let Some(a) = pod_actions
                .iter()
                .find(|a| !matches!(a, Action::KillPod(_)))
            {
                return Err(format!(
                    "the local backend only kills replica processes; `{}` needs backend = \"kubernetes\"",
                    a.describe()
                ));
            }
            Ok(())
        }
        BackendKind::Kubernetes => {
            if kube.namespace.trim().is_empty() {
                return Err("no namespace: chaos on Kubernetes needs an explicit namespace ([kubernetes] namespace or --namespace)".into());
            }
            if kube.selector.trim().is_empty() {
                return Err("no label selector: chaos on Kubernetes needs one ([kubernetes] selector or --selector), so it can only touch the pods it names".into());
            }
            if let Some(refused) = system_namespace(&kube.namespace) {
                return Err(refused);
            }
            if !allowed.iter().any(|n| n == &kube.namespace) {
                return Err(format!(
                    "namespace `{}` is not allowed: pass --allow-namespace {} to confirm chaos there",
                    kube.namespace, kube.namespace
                ));
            }
            if kube.workload.is_none() {
                if let Some(a) = pod_actions
                    .iter()
                    .find(|a| matches!(a, Action::RolloutRestart | Action::Scale(_)))
                {
                    return Err(format!(
                        "`{}` needs the workload: [kubernetes] workload = \"deployment/NAME\" or --workload",
                        a.describe()
                    ));
                }
            }
            Ok(())
        }
    }
}

/// The plan as lines for `--dry-run` and the log.
pub fn describe_plan(plan: &ChaosPlan, kube: &KubeTarget, length: Duration) -> Vec<String> {
    let mut lines = vec![format!(
        "chaos plan: backend {}, grace period {}, at most {} kills and {} actions, at most {} down at once",
        match plan.backend {
            BackendKind::Kubernetes => format!(
                "kubernetes (namespace {}, selector {}{})",
                kube.namespace,
                kube.selector,
                kube.workload
                    .as_ref()
                    .map(|w| format!(", workload {w}"))
                    .unwrap_or_default()
            ),
            BackendKind::Local => "local replica processes".into(),
        },
        humantime::format_duration(plan.grace_period),
        plan.max_kills,
        plan.max_actions,
        plan.max_down
    )];
    for (at, action) in timetable(&plan.actions, length) {
        let extra = match &action {
            Action::Exec(command) => format!(": sh -c {command:?}"),
            _ => String::new(),
        };
        lines.push(format!(
            "  at {:>7.1}s  {}{extra}",
            at.as_secs_f64(),
            action.describe()
        ));
    }
    lines
}
