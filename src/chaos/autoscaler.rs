//! The autoscaler through a run: when the run names an HPA (`--hpa`,
//! `[kubernetes] hpa`) with its namespace and workload, surge reads the
//! workload and the HPA every second (read only: get, never a change) and
//! keeps the timeline in the bundle. Shard 0 watches for a sharded test.

use super::kube::KubeBackend;
use super::run_end::LET_FINISH;
use super::runner::LoadView;
use super::setup::{kube_target, ChaosRequest};
use crate::bundle::{AutoscalerSample, AutoscalingTimeline};
use crate::scenario::chaos::{BackendKind, KubeTarget};
use crate::scenario::Scenario;
use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, MetricTarget, MetricValueStatus};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the autoscaler is read.
const EVERY: Duration = Duration::from_secs(1);

/// How long the first read may take before the run is refused.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);

/// A connected watch.
pub struct AutoscalerWatch {
    backend: KubeBackend,
    workload: String,
    hpa: String,
}

/// The target to watch, when the run names an HPA; refused when the HPA
/// comes without what it needs (a namespace and the workload it scales).
pub fn resolve(request: &ChaosRequest, scenario: &Scenario) -> Result<Option<KubeTarget>, String> {
    let kube = kube_target(request, scenario)?;
    if kube.hpa.is_none() {
        return Ok(None);
    }
    let local = request.backend == Some(BackendKind::Local)
        || request.backend.is_none()
            && scenario
                .chaos
                .as_ref()
                .is_some_and(|c| c.backend == BackendKind::Local);
    if local {
        return Err("an HPA to watch (--hpa) is read from Kubernetes: it goes with --chaos-backend kubernetes".into());
    }
    if kube.namespace.is_empty() || kube.workload.is_none() {
        return Err("an HPA to watch (--hpa) needs its namespace (--namespace) and the workload it scales (--workload)".into());
    }
    Ok(Some(kube))
}

/// The watch a run asks for, connected; `None` when it names no HPA, or
/// for a shard other than 0 (one timeline for the whole test).
pub async fn prepare(
    request: &ChaosRequest,
    scenario: &Scenario,
    shard: u32,
) -> Result<Option<AutoscalerWatch>, String> {
    match resolve(request, scenario)? {
        Some(kube) if shard == 0 => Ok(Some(connect(request, kube).await?)),
        _ => Ok(None),
    }
}

/// Reaches the API server and reads the HPA once, so a wrong name or a
/// missing permission is said before the load starts.
pub async fn connect(request: &ChaosRequest, kube: KubeTarget) -> Result<AutoscalerWatch, String> {
    let hpa = format!(
        "{}/{}",
        kube.namespace,
        kube.hpa.clone().unwrap_or_default()
    );
    let workload = kube
        .workload
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let backend = match &request.kubeconfig {
        Some(path) => KubeBackend::from_kubeconfig_file(path, kube).await,
        None => KubeBackend::connect(kube).await,
    }
    .map_err(|e| e.to_string())?;
    // A server that does not answer is said before the load, not waited on.
    match tokio::time::timeout(CONNECT_LIMIT, backend.workload_and_hpa()).await {
        Ok(Ok((_, Some(_)))) => Ok(AutoscalerWatch {
            backend,
            workload,
            hpa,
        }),
        Ok(Ok((_, None))) => Err(format!("hpa {hpa} is not there: nothing to watch")),
        Ok(Err(e)) => Err(format!(
            "cannot read the autoscaler ({hpa} on {workload}): {e}"
        )),
        Err(_) => Err(format!(
            "the API server did not answer within {} s reading {hpa} on {workload}",
            CONNECT_LIMIT.as_secs()
        )),
    }
}

/// Reads the autoscaler every second from the load's start until `stop`.
pub async fn watch(
    w: AutoscalerWatch,
    view: Arc<dyn LoadView>,
    stop: CancellationToken,
) -> AutoscalingTimeline {
    let mut timeline = AutoscalingTimeline {
        workload: w.workload.clone(),
        hpa: w.hpa.clone(),
        ..Default::default()
    };
    while !view.recorder().has_begun() {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            _ = stop.cancelled() => return timeline,
        }
    }
    let started = view.recorder().started();
    let mut next = tokio::time::Instant::now();
    loop {
        // A call the server does not answer within the grace is seconds
        // unanswered, never a hold on the run.
        let asked = tokio::time::Instant::now();
        match tokio::time::timeout(LET_FINISH, w.backend.workload_and_hpa()).await {
            Ok(Ok((counts, hpa))) => {
                let reading = hpa.as_ref().map(reading_of).unwrap_or_default();
                if timeline.metric.is_none() {
                    timeline.metric = reading.metric.clone();
                    timeline.target = reading.target;
                }
                timeline.samples.push(AutoscalerSample {
                    at_s: started.elapsed().as_secs_f64(),
                    ready: counts.ready,
                    desired: counts.desired,
                    hpa_current: reading.current,
                    hpa_desired: reading.desired,
                    metric_value: reading.value,
                });
            }
            // Every second the answer did not come in (at least one).
            _ => timeline.unanswered += asked.elapsed().as_secs().max(1),
        }
        // After a slow answer, on from now: no burst of reads to catch up.
        next = (next + EVERY).max(tokio::time::Instant::now());
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.cancelled() => return timeline,
        }
    }
}

/// What an HPA says of itself: its replicas, and its first metric with
/// the target and the value it last saw.
#[derive(Debug, Default, PartialEq)]
pub struct Reading {
    /// Current replicas.
    pub current: Option<u32>,
    /// Desired replicas.
    pub desired: Option<u32>,
    /// The first metric, e.g. `pods http_server_requests_per_second`.
    pub metric: Option<String>,
    /// Its target.
    pub target: Option<f64>,
    /// Its value as last seen.
    pub value: Option<f64>,
}

/// Reads an HPA object (pure: what the API server answered).
pub fn reading_of(hpa: &HorizontalPodAutoscaler) -> Reading {
    // An HPA the controller has not yet looked at has no status: nothing
    // known of its replicas, not zero.
    let known = hpa.status.is_some();
    let status = hpa.status.clone().unwrap_or_default();
    let mut reading = Reading {
        current: status.current_replicas.map(|n| n.max(0) as u32),
        desired: known.then(|| status.desired_replicas.max(0) as u32),
        ..Default::default()
    };
    let spec = hpa
        .spec
        .as_ref()
        .and_then(|s| s.metrics.as_ref())
        .and_then(|m| m.first());
    let Some(spec) = spec else {
        return reading;
    };
    let kind = spec.type_.to_lowercase();
    let (name, target) = match (&spec.pods, &spec.resource, &spec.object, &spec.external) {
        (Some(p), ..) => (p.metric.name.clone(), Some(&p.target)),
        (_, Some(r), ..) => (r.name.clone(), Some(&r.target)),
        (_, _, Some(o), _) => (o.metric.name.clone(), Some(&o.target)),
        (_, _, _, Some(e)) => (e.metric.name.clone(), Some(&e.target)),
        _ => (String::new(), None),
    };
    reading.metric = Some(format!("{kind} {name}"));
    let spec_name = name;
    reading.target = target.and_then(target_value);
    // The status's entry for the same metric: its type and name, not its
    // place in the list (an entry the controller could not read is absent).
    let current = status
        .current_metrics
        .unwrap_or_default()
        .into_iter()
        .find_map(|m| {
            let (name, value): (String, &MetricValueStatus) =
                match (&m.pods, &m.resource, &m.object, &m.external) {
                    (Some(p), ..) => (p.metric.name.clone(), &p.current),
                    (_, Some(r), ..) => (r.name.clone(), &r.current),
                    (_, _, Some(o), _) => (o.metric.name.clone(), &o.current),
                    (_, _, _, Some(e)) => (e.metric.name.clone(), &e.current),
                    _ => return None,
                };
            (m.type_.to_lowercase() == kind && name == spec_name).then(|| status_value(value))
        });
    reading.value = current.flatten();
    reading
}

fn target_value(t: &MetricTarget) -> Option<f64> {
    t.average_utilization
        .map(f64::from)
        .or_else(|| t.average_value.as_ref().and_then(|q| quantity(&q.0)))
        .or_else(|| t.value.as_ref().and_then(|q| quantity(&q.0)))
}

fn status_value(v: &MetricValueStatus) -> Option<f64> {
    v.average_utilization
        .map(f64::from)
        .or_else(|| v.average_value.as_ref().and_then(|q| quantity(&q.0)))
        .or_else(|| v.value.as_ref().and_then(|q| quantity(&q.0)))
}

/// A Kubernetes quantity as a number: `82231m` is 82.231, `2k` 2000,
/// `1Gi` 2^30; `None` for anything else.
pub fn quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    // Scale down by division, so 82231m is 82.231 exactly, not 82.23100000000001.
    let suffixes: [(&str, f64, f64); 12] = [
        ("Ki", 1024.0, 1.0),
        ("Mi", 1024f64.powi(2), 1.0),
        ("Gi", 1024f64.powi(3), 1.0),
        ("Ti", 1024f64.powi(4), 1.0),
        ("n", 1.0, 1e9),
        ("u", 1.0, 1e6),
        ("m", 1.0, 1e3),
        ("k", 1e3, 1.0),
        ("M", 1e6, 1.0),
        ("G", 1e9, 1.0),
        ("T", 1e12, 1.0),
        ("", 1.0, 1.0),
    ];
    suffixes.iter().find_map(|(suffix, times, over)| {
        let number = text.strip_suffix(suffix)?;
        let value: f64 = number.parse().ok()?;
        value.is_finite().then_some(value * times / over)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_as_kubernetes_writes_them() {
        assert_eq!(quantity("82231m"), Some(82.231));
        assert_eq!(quantity("10"), Some(10.0));
        assert_eq!(quantity("2k"), Some(2000.0));
        assert_eq!(quantity("1Gi"), Some(1073741824.0));
        assert_eq!(quantity("1.5"), Some(1.5));
        for bad in ["", "m", "ten", "1Xi", "NaN"] {
            assert_eq!(quantity(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_hpa_reads_as_its_replicas_and_first_metric() {
        let hpa: HorizontalPodAutoscaler = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "hapi"},
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "hapi", "apiVersion": "apps/v1"},
                "maxReplicas": 4,
                "metrics": [{"type": "Pods", "pods": {
                    "metric": {"name": "http_server_requests_per_second"},
                    "target": {"type": "AverageValue", "averageValue": "10"}}}]
            },
            "status": {
                "currentReplicas": 3, "desiredReplicas": 3,
                "currentMetrics": [
                    {"type": "Resource", "resource": {"name": "cpu",
                        "current": {"averageUtilization": 71}}},
                    {"type": "Pods", "pods": {
                        "metric": {"name": "http_server_requests_per_second"},
                        "current": {"averageValue": "9662m"}}}]
            }
        }))
        .unwrap();
        let r = reading_of(&hpa);
        assert_eq!(
            r,
            Reading {
                current: Some(3),
                desired: Some(3),
                metric: Some("pods http_server_requests_per_second".into()),
                target: Some(10.0),
                value: Some(9.662),
            }
        );
        // An HPA that has not measured yet: replicas, no value.
        let fresh: HorizontalPodAutoscaler = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "hapi"},
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "hapi"},
                "maxReplicas": 4,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 60}}}]
            },
            "status": {"desiredReplicas": 1}
        }))
        .unwrap();
        let r = reading_of(&fresh);
        assert_eq!(r.metric.as_deref(), Some("resource cpu"));
        assert_eq!((r.target, r.value, r.current), (Some(60.0), None, None));
    }
}
