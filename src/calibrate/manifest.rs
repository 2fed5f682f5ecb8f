//! `recommendations.yaml`: an autoscaling/v2 HorizontalPodAutoscaler built
//! from k8s-openapi types, and the pool settings per component, as YAML
//! documents an operator can apply or copy.

use super::cpu::{CpuAdvice, ScalingMetric};
use super::hpa::HpaPlan;
use super::pool::{Knobs, PoolSize};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricIdentifier, MetricSpec,
    MetricTarget, PodsMetricSource, ResourceMetricSource,
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

/// The HorizontalPodAutoscaler for `plan`, on the request-rate metric.
pub fn hpa(workload: &Workload, plan: &HpaPlan) -> HorizontalPodAutoscaler {
    // A Pods metric takes an AverageValue; millis keep a fractional target exact.
    let target_milli = (plan.target_per_pod * 1000.0).floor() as u64;
    hpa_on(
        workload,
        plan,
        MetricSpec {
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
        },
        plan.reasons.join("; "),
    )
}

/// The same HorizontalPodAutoscaler on CPU (a Resource metric, read from
/// metrics-server): the utilization of the pods' request at the rate
/// target, or its millicores when the pods set no request.
pub fn hpa_cpu(workload: &Workload, plan: &HpaPlan, cpu: &CpuAdvice) -> HorizontalPodAutoscaler {
    let target = match cpu.target_utilization {
        Some(percent) => MetricTarget {
            type_: "Utilization".into(),
            average_utilization: Some(percent as i32),
            ..Default::default()
        },
        None => MetricTarget {
            type_: "AverageValue".into(),
            average_value: Some(Quantity(format!("{:.0}m", cpu.target_millicores.max(1.0)))),
            ..Default::default()
        },
    };
    hpa_on(
        workload,
        plan,
        MetricSpec {
            type_: "Resource".into(),
            resource: Some(ResourceMetricSource {
                name: "cpu".into(),
                target,
            }),
            ..Default::default()
        },
        format!("{}; {}", plan.reasons.join("; "), cpu.reason),
    )
}

/// The HorizontalPodAutoscaler for `plan` scaling on `metric`, its
/// reasoning in an annotation.
fn hpa_on(
    workload: &Workload,
    plan: &HpaPlan,
    metric: MetricSpec,
    reasoning: String,
) -> HorizontalPodAutoscaler {
    HorizontalPodAutoscaler {
        metadata: ObjectMeta {
            name: Some(workload.name.clone()),
            namespace: workload.namespace.clone(),
            annotations: Some(BTreeMap::from([("surge/reasoning".to_owned(), reasoning)])),
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
            metrics: Some(vec![metric]),
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

/// The documents as YAML: the HPA, the pool settings when sized, the
/// same HPA on CPU when the pods' CPU was read (with which of the two to
/// apply), and the KEDA ScaledObject when asked for.
pub fn to_yaml(
    hpa: &HorizontalPodAutoscaler,
    pools: Option<&PoolSettings>,
    cpu: Option<(&HorizontalPodAutoscaler, ScalingMetric)>,
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
    if let Some((cpu_hpa, pick)) = cpu {
        let which = match pick {
            ScalingMetric::Cpu => "surge's pick (see its annotation)",
            ScalingMetric::RequestRate => {
                "the first HPA is surge's pick (see this one's annotation for why not CPU)"
            }
        };
        out.push_str(&format!(
            "---\n# The same scaling on CPU, from metrics-server ({which}); apply this or the first HPA, not both.\n{}",
            yaml("the CPU HPA", cpu_hpa)?
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
        let yaml = to_yaml(&hpa(&workload, &p), Some(&pools), None, Some(&keda_object)).unwrap();
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

    #[test]
    fn the_cpu_hpa_scales_on_the_utilization_or_the_millicores_with_the_same_bounds() {
        let p = plan(&HpaInputs {
            capacity_per_pod: 20.0,
            metric_window_s: 30.0,
            pod_start_s: 20.0,
            readiness_s: 0.0,
            growth_per_s: 0.0,
            base_rate: 20.0,
            peak_rate: 60.0,
            pool_per_replica: 2,
            connection_budget: 97,
        });
        let workload = Workload {
            kind: "Deployment".into(),
            name: "hapi".into(),
            namespace: Some("clinic".into()),
            metric: "http_server_requests_per_second".into(),
        };
        let mut advice = CpuAdvice {
            idle_millicores: 4.0,
            millicores_per_request_per_s: 5.0,
            r2: 0.99,
            steps: 4,
            target_millicores: 84.0,
            request_millicores: Some(100.0),
            target_utilization: Some(84),
            pick: ScalingMetric::Cpu,
            reason: "scale on CPU: it follows the load".into(),
        };
        let rate = hpa(&workload, &p);
        let yaml = to_yaml(
            &rate,
            None,
            Some((&hpa_cpu(&workload, &p, &advice), advice.pick)),
            None,
        )
        .unwrap();
        let docs: Vec<&str> = yaml.split("\n---\n").collect();
        assert!(
            docs[1].starts_with("# The same scaling on CPU, from metrics-server (surge's pick"),
            "{yaml}"
        );
        let back: HorizontalPodAutoscaler = serde_saphyr::from_str(docs[1]).unwrap();
        let spec = back.spec.unwrap();
        let metric = &spec.metrics.as_ref().unwrap()[0];
        assert_eq!(metric.type_, "Resource");
        let resource = metric.resource.as_ref().unwrap();
        assert_eq!(
            (resource.name.as_str(), resource.target.average_utilization),
            ("cpu", Some(84))
        );
        let first = rate.spec.unwrap();
        assert_eq!(
            (spec.min_replicas, spec.max_replicas),
            (first.min_replicas, first.max_replicas)
        );
        assert_eq!(spec.behavior, first.behavior);
        assert!(back.metadata.annotations.unwrap()["surge/reasoning"]
            .ends_with("scale on CPU: it follows the load"));
        // No request: the millicores as an average value.
        advice.target_utilization = None;
        let value = hpa_cpu(&workload, &p, &advice)
            .spec
            .unwrap()
            .metrics
            .unwrap()[0]
            .clone();
        let target = value.resource.unwrap().target;
        assert_eq!(
            (target.type_.as_str(), target.average_value),
            ("AverageValue", Some(Quantity("84m".into())))
        );
    }
}
