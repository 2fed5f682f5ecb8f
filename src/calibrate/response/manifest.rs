//! An HPA manifest as the controller reads it: its Pods target, bounds
//! and behaviour, with Kubernetes' defaults where it is silent.

use super::{Autoscaler, Policy, PolicyKind, Rules, Select};

/// Why an HPA manifest cannot be predicted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ManifestError {
    /// No spec at all.
    #[error("the HPA has no spec")]
    NoSpec,
    #[error("the HPA scales on no Pods metric with an averageValue target (what a calibration measures is requests per second per pod)")]
    /// No Pods metric with an average value.
    NoPodsTarget,
    #[error("the target `{0}` is not a positive quantity")]
    /// The target is not a positive quantity.
    Target(String),
    #[error("maxReplicas {max} is below minReplicas {min}")]
    /// maxReplicas below minReplicas.
    Bounds {
        /// minReplicas.
        min: i32,
        /// maxReplicas.
        max: i32,
    },
    #[error("a {direction} policy `{kind}` is neither Pods nor Percent")]
    /// A policy of a kind the controller does not know.
    PolicyKind {
        /// scale-up or scale-down.
        direction: &'static str,
        /// As written.
        kind: String,
    },
    #[error("selectPolicy `{0}` is none of Max, Min, Disabled")]
    /// A selectPolicy the controller does not know.
    Select(String),
}

impl Autoscaler {
    /// The HPA as written in `hpa`, with Kubernetes' defaults where it is
    /// silent: scale up at once by 100% or 4 pods per 15 s (the larger),
    /// scale down after 300 s by 100% per 15 s; sync 15 s, tolerance 0.1.
    /// The metric's window and lateness are not in the manifest.
    pub fn from_manifest(
        hpa: &k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler,
        metric_window_s: f64,
        metric_delay_s: f64,
    ) -> Result<Autoscaler, ManifestError> {
        let spec = hpa.spec.as_ref().ok_or(ManifestError::NoSpec)?;
        let target = spec
            .metrics
            .iter()
            .flatten()
            .find_map(|m| m.pods.as_ref()?.target.average_value.as_ref())
            .ok_or(ManifestError::NoPodsTarget)?;
        let target_per_pod = crate::chaos::autoscaler::quantity(&target.0)
            .filter(|v| *v > 0.0)
            .ok_or_else(|| ManifestError::Target(target.0.clone()))?;
        let min = spec.min_replicas.unwrap_or(1);
        if spec.max_replicas < min {
            return Err(ManifestError::Bounds {
                min,
                max: spec.max_replicas,
            });
        }
        let behavior = spec.behavior.as_ref();
        let up = rules(
            behavior.and_then(|b| b.scale_up.as_ref()),
            "scale-up",
            Rules {
                stabilization_s: 0.0,
                select: Select::Max,
                policies: vec![
                    Policy {
                        kind: PolicyKind::Percent,
                        value: 100,
                        period_s: 15.0,
                    },
                    Policy {
                        kind: PolicyKind::Pods,
                        value: 4,
                        period_s: 15.0,
                    },
                ],
            },
        )?;
        let down = rules(
            behavior.and_then(|b| b.scale_down.as_ref()),
            "scale-down",
            Rules {
                stabilization_s: 300.0,
                select: Select::Max,
                policies: vec![Policy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period_s: 15.0,
                }],
            },
        )?;
        Ok(Autoscaler {
            target_per_pod,
            min_replicas: min.max(1) as u32,
            max_replicas: spec.max_replicas.max(1) as u32,
            up,
            down,
            sync_s: crate::calibrate::hpa::SYNC_SECONDS,
            tolerance: crate::calibrate::hpa::TOLERANCE,
            metric_window_s,
            metric_delay_s,
        })
    }
}

/// One direction's rules as written, each field it leaves out defaulted.
fn rules(
    written: Option<&k8s_openapi::api::autoscaling::v2::HPAScalingRules>,
    direction: &'static str,
    default: Rules,
) -> Result<Rules, ManifestError> {
    let Some(w) = written else {
        return Ok(default);
    };
    let select = match w.select_policy.as_deref() {
        None | Some("Max") => Select::Max,
        Some("Min") => Select::Min,
        Some("Disabled") => Select::Disabled,
        Some(other) => return Err(ManifestError::Select(other.to_owned())),
    };
    let policies = match &w.policies {
        None => default.policies,
        Some(written) => written
            .iter()
            .map(|p| {
                let kind = match p.type_.as_str() {
                    "Pods" => PolicyKind::Pods,
                    "Percent" => PolicyKind::Percent,
                    other => {
                        return Err(ManifestError::PolicyKind {
                            direction,
                            kind: other.to_owned(),
                        })
                    }
                };
                Ok(Policy {
                    kind,
                    value: p.value.max(0) as u32,
                    period_s: f64::from(p.period_seconds.max(1)),
                })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(Rules {
        stabilization_s: w
            .stabilization_window_seconds
            .map_or(default.stabilization_s, |s| f64::from(s.max(0))),
        select,
        policies,
    })
}
