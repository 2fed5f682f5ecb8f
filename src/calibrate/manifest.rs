//! `recommendations.yaml`: an autoscaling/v2 HorizontalPodAutoscaler built
//! from k8s-openapi types, and the pool settings per component, as YAML
//! documents an operator can apply or copy.

use super::hpa::HpaPlan;
use super::pool::{Knobs, PoolSize};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricIdentifier, MetricSpec,
    MetricTarget, PodsMetricSource,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the HPA scales.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// `Deployment` or `StatefulSet` (OpenMRS's chart runs a StatefulSet).
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: Option<String>,
    /// The per-pod request-rate metric the HPA reads (served by a metrics adapter).
    pub metric: String,
}

/// The HorizontalPodAutoscaler for `plan`.
pub fn hpa(workload: &Workload, plan: &HpaPlan) -> HorizontalPodAutoscaler {
    // A Pods metric takes an AverageValue; millis keep a fractional target exact.
    let target_milli = (plan.target_per_pod * 1000.0).floor() as u64;
    HorizontalPodAutoscaler {
        metadata: ObjectMeta {
            name: Some(workload.name.clone()),
            namespace: workload.namespace.clone(),
            annotations: Some(BTreeMap::from([(
                "surge/reasoning".to_owned(),
                plan.reasons.join("; "),
            )])),
            ..Default::default()
        },
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: workload.kind.clone(),
                name: workload.name.clone(),
            },
            min_replicas: Some(plan.min_replicas as i32),
            max_replicas: plan.max_replicas as i32,
            metrics: Some(vec![MetricSpec {
                type_: "Pods".into(),
                pods: Some(PodsMetricSource {
                    metric: MetricIdentifier {
                        name: workload.metric.clone(),
                        selector: None,
                    },
                    target: MetricTarget {
                        type_: "AverageValue".into(),
                        average_value: Some(Quantity(format!("{target_milli}m"))),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            }]),
            behavior: Some(HorizontalPodAutoscalerBehavior {
                // Up fast: at most one reaction time late already.
                scale_up: Some(HPAScalingRules {
                    stabilization_window_seconds: Some(0),
                    select_policy: Some("Max".into()),
                    policies: Some(vec![
                        HPAScalingPolicy {
                            type_: "Percent".into(),
                            value: 100,
                            period_seconds: 15,
                        },
                        HPAScalingPolicy {
                            type_: "Pods".into(),
                            value: 4,
                            period_seconds: 15,
                        },
                    ]),
                    ..Default::default()
                }),
                // Down slowly: each pod removed ends its users' sessions unless they are shared.
                scale_down: Some(HPAScalingRules {
                    stabilization_window_seconds: Some(300),
                    select_policy: Some("Min".into()),
                    policies: Some(vec![HPAScalingPolicy {
                        type_: "Pods".into(),
                        value: 1,
                        period_seconds: 60,
                    }]),
                    ..Default::default()
                }),
            }),
        }),
        status: None,
    }
}

/// A KEDA ScaledObject scaling on request rate from Prometheus, for clusters
/// that run KEDA instead of a metrics adapter. KEDA's Prometheus scaler with
/// an AverageValue target computes desired = ⌈query / threshold⌉.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaledObject {
    /// `keda.sh/v1alpha1`.
    pub api_version: String,
    /// `ScaledObject`.
    pub kind: String,
    /// Name and namespace.
    pub metadata: ObjectMeta,
    /// What and how to scale.
    pub spec: ScaledObjectSpec,
}

/// The ScaledObject's spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaledObjectSpec {
    /// The workload.
    pub scale_target_ref: CrossVersionObjectReference,
    /// Fewest replicas.
    pub min_replica_count: u32,
    /// Most replicas.
    pub max_replica_count: u32,
    /// The Prometheus trigger.
    pub triggers: Vec<Trigger>,
}

/// A KEDA trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// `prometheus`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `AverageValue`.
    #[serde(rename = "metricType")]
    pub metric_type: String,
    /// serverAddress, query, threshold.
    pub metadata: BTreeMap<String, String>,
}

/// The ScaledObject for `plan`: total request rate over `threshold` per pod.
pub fn keda(workload: &Workload, plan: &HpaPlan, prometheus: &str, query: &str) -> ScaledObject {
    ScaledObject {
        api_version: "keda.sh/v1alpha1".into(),
        kind: "ScaledObject".into(),
        metadata: ObjectMeta {
            name: Some(workload.name.clone()),
            namespace: workload.namespace.clone(),
            ..Default::default()
        },
        spec: ScaledObjectSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: workload.kind.clone(),
                name: workload.name.clone(),
            },
            min_replica_count: plan.min_replicas,
            max_replica_count: plan.max_replicas,
            triggers: vec![Trigger {
                type_: "prometheus".into(),
                metric_type: "AverageValue".into(),
                metadata: BTreeMap::from([
                    ("serverAddress".to_owned(), prometheus.to_owned()),
                    ("query".to_owned(), query.to_owned()),
                    (
                        "threshold".to_owned(),
                        format!("{:.3}", plan.target_per_pod),
                    ),
                ]),
            }],
        },
    }
}

/// Pool settings, as the YAML's second document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolSettings {
    /// Connections per replica and why.
    pub per_replica: PoolSize,
    /// The knobs by component, sized for maxReplicas.
    pub knobs: Knobs,
}

/// The documents as YAML: the HPA, the pool settings when sized, and the
/// KEDA ScaledObject when asked for.
pub fn to_yaml(
    hpa: &HorizontalPodAutoscaler,
    pools: Option<&PoolSettings>,
    keda: Option<&ScaledObject>,
) -> anyhow::Result<String> {
    fn yaml<T: Serialize>(what: &str, value: &T) -> anyhow::Result<String> {
        serde_saphyr::to_string(value)
            .map_err(|e| anyhow::anyhow!("cannot write {what} as YAML: {e}"))
    }
    let mut out = format!(
        "# HorizontalPodAutoscaler recommended by surge calibrate; the annotation holds the reasoning.\n{}",
        yaml("the HPA", hpa)?
    );
    if let Some(pools) = pools {
        out.push_str(&format!(
            "---\n# Connection pools: HikariCP maximum-pool-size (HAPI FHIR), hibernate.c3p0.max_size (OpenMRS),\n# pgBouncer default_pool_size / max_client_conn, database max_connections.\n{}",
            yaml("pool settings", pools)?
        ));
    }
    if let Some(keda) = keda {
        out.push_str(&format!(
            "---\n# The same scaling with KEDA's Prometheus scaler (use this or the HPA, not both).\n{}",
            yaml("the ScaledObject", keda)?
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::hpa::{plan, HpaInputs};
    use crate::calibrate::pool;

    #[test]
    fn the_yaml_parses_back_with_its_fields_set() {
        let p = plan(&HpaInputs {
            capacity_per_pod: 100.0,
            metric_window_s: 30.0,
            pod_start_s: 60.0,
            readiness_s: 15.0,
            growth_per_s: 0.005,
            base_rate: 150.0,
            peak_rate: 900.0,
            pool_per_replica: 50,
            connection_budget: 600,
        });
        let workload = Workload {
            kind: "StatefulSet".into(),
            name: "openmrs".into(),
            namespace: Some("emr".into()),
            metric: "http_server_requests_per_second".into(),
        };
        let pools = PoolSettings {
            per_replica: pool::size(50.0, 0.02, 0.05, 10),
            knobs: pool::knobs(10, p.max_replicas),
        };
        let keda_object = keda(
            &workload,
            &p,
            "http://prometheus:9090",
            "sum(rate(http_server_requests_seconds_count[1m]))",
        );
        let yaml = to_yaml(&hpa(&workload, &p), Some(&pools), Some(&keda_object)).unwrap();
        let mut docs = yaml.split("\n---\n");
        let back: HorizontalPodAutoscaler = serde_saphyr::from_str(docs.next().unwrap()).unwrap();
        let spec = back.spec.unwrap();
        assert_eq!(spec.scale_target_ref.kind, "StatefulSet");
        assert_eq!(spec.min_replicas, Some(p.min_replicas as i32));
        assert_eq!(spec.max_replicas, p.max_replicas as i32);
        let metric = &spec.metrics.unwrap()[0];
        assert_eq!(
            metric.pods.as_ref().unwrap().target.average_value,
            Some(Quantity(format!(
                "{}m",
                (p.target_per_pod * 1000.0).floor() as u64
            )))
        );
        assert_eq!(
            spec.behavior
                .unwrap()
                .scale_down
                .unwrap()
                .stabilization_window_seconds,
            Some(300)
        );
        assert!(back.metadata.annotations.unwrap()["surge/reasoning"].contains("maxReplicas"));
        let pools_back: PoolSettings = serde_saphyr::from_str(docs.next().unwrap()).unwrap();
        assert_eq!(pools_back.knobs.hikari_maximum_pool_size, 10);
        let keda_back: ScaledObject = serde_saphyr::from_str(docs.next().unwrap()).unwrap();
        assert_eq!(keda_back, keda_object);
        assert_eq!(keda_back.spec.max_replica_count, p.max_replicas);
    }
}
