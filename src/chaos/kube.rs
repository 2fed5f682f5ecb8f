//! The Kubernetes backend, through kube-rs: the calls a chaos run makes and
//! nothing else (see `deploy/rbac.yaml` for the Role they need).
//!
//! - pods: list and watch by label selector, delete with a grace period;
//! - the workload (Deployment or StatefulSet): get, watch, and merge-patch
//!   (`rollout-restart` sets the pod template's `restartedAt` annotation
//!   exactly as `kubectl rollout restart` does; `scale` sets `spec.replicas`);
//! - the HPA (autoscaling/v2): get, for current and desired replicas and the
//!   metric it saw (the autoscaler's timeline, `super::autoscaler`);
//! - the pods' metrics (`metrics.k8s.io/v1beta1`, served by metrics-server):
//!   list by label selector, for `surge calibrate`'s CPU per pod.

use super::pod_watch::{Changes, PodWatch};
use super::{ChaosError, Pod};
use crate::bundle::{PodCpuReading, ReplicaCount};
use crate::scenario::chaos::{KubeTarget, Workload, WorkloadKind};
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod as KubePod;
use kube::api::{
    Api, DeleteParams, EvictParams, ListParams, Patch, PatchParams, WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::time::Duration;

/// A connected Kubernetes backend.
pub struct KubeBackend {
    client: Client,
    target: KubeTarget,
    /// The pods as a watch keeps them, once [`KubeBackend::watch_pods`] ran.
    pod_watch: Option<PodWatch>,
}

/// Turns a kube-rs error into one chaos understands: 404 means the target is
/// already gone; everything else is not understood, and stops the chaos.
fn api_error(what: &str, e: kube::Error) -> ChaosError {
    match e {
        kube::Error::Api(status) if status.code == 404 => {
            ChaosError::Gone(format!("{what}: 404 {}", status.message))
        }
        kube::Error::Api(status) => ChaosError::Api(format!(
            "{what}: {} {} {}",
            status.code, status.reason, status.message
        )),
        other => ChaosError::Api(format!("{what}: {other}")),
    }
}

impl KubeBackend {
    /// Connects as kubectl would: `KUBECONFIG` (or `~/.kube/config`) with the
    /// given context, else the in-cluster service account.
    pub async fn connect(target: KubeTarget) -> Result<Self, ChaosError> {
        let config = match &target.context {
            Some(context) => Config::from_kubeconfig(&KubeConfigOptions {
                context: Some(context.clone()),
                ..Default::default()
            })
            .await
            .map_err(|e| ChaosError::Api(format!("kubeconfig context {context}: {e}")))?,
            None => Config::infer()
                .await
                .map_err(|e| ChaosError::Api(format!("no Kubernetes configuration: {e}")))?,
        };
        Self::with_config(config, target)
    }

    /// Connects with a kubeconfig file (what the tests' fake API server uses).
    pub async fn from_kubeconfig_file(
        path: &std::path::Path,
        target: KubeTarget,
    ) -> Result<Self, ChaosError> {
        let kubeconfig = Kubeconfig::read_from(path)
            .map_err(|e| ChaosError::Api(format!("{}: {e}", path.display())))?;
        let options = KubeConfigOptions {
            context: target.context.clone(),
            ..Default::default()
        };
        let config = Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| ChaosError::Api(format!("{}: {e}", path.display())))?;
        Self::with_config(config, target)
    }

    fn with_config(mut config: Config, target: KubeTarget) -> Result<Self, ChaosError> {
        // kube-rs retries 429, 503 and 504 by default, up to 15 times and
        // for minutes: a disruption budget's 429 would hold the chaos (and
        // the end of the run) silently. surge retries what it means to
        // (an eviction, every 5 s until its deadline) and says the rest.
        config.default_retry = false;
        let client = Client::try_from(config)
            .map_err(|e| ChaosError::Api(format!("cannot build a Kubernetes client: {e}")))?;
        Ok(KubeBackend {
            client,
            target,
            pod_watch: None,
        })
    }

    fn pods_api(&self) -> Api<KubePod> {
        Api::namespaced(self.client.clone(), &self.target.namespace)
    }

    fn workload(&self) -> Result<&Workload, ChaosError> {
        self.target
            .workload
            .as_ref()
            .ok_or_else(|| ChaosError::Api("no workload configured".into()))
    }

    /// Keeps the pods behind the selector by one watch from now on, so
    /// [`KubeBackend::pods`] reads memory instead of the API server.
    pub fn watch_pods(&mut self) {
        self.pod_watch = Some(PodWatch::start(self.pods_api(), &self.target.selector));
    }

    /// A waiter for pod changes (see [`Changes`]).
    pub fn changes(&self) -> Changes {
        self.pod_watch
            .as_ref()
            .map_or_else(Changes::polling, PodWatch::changes)
    }

    /// Pods behind the selector, with readiness and (for discovery) an
    /// address: from the pod watch while it is in step, else listed.
    pub async fn pods(&self) -> Result<Vec<Pod>, ChaosError> {
        if let Some(pods) = self.pod_watch.as_ref().and_then(PodWatch::pods) {
            return Ok(pods
                .iter()
                .map(|p| to_pod(p, self.target.pod_port))
                .collect());
        }
        let list = self
            .pods_api()
            .list(&ListParams::default().labels(&self.target.selector))
            .await
            .map_err(|e| api_error("list pods", e))?;
        Ok(list
            .items
            .into_iter()
            .map(|p| to_pod(&p, self.target.pod_port))
            .collect())
    }

    /// Deletes one pod with the grace period.
    pub async fn delete_pod(&self, name: &str, grace: Duration) -> Result<String, ChaosError> {
        let params = DeleteParams {
            grace_period_seconds: Some(grace.as_secs() as u32),
            ..Default::default()
        };
        self.pods_api()
            .delete(name, &params)
            .await
            .map_err(|e| api_error(&format!("delete pod {name}"), e))?;
        Ok(format!(
            "pod {}/{name} deleted (grace period {} s)",
            self.target.namespace,
            grace.as_secs()
        ))
    }

    /// Evicts one pod (the Eviction API, as `kubectl drain` does) with the
    /// grace period; a disruption budget that forbids it answers 429, which
    /// is [`ChaosError::Held`].
    pub async fn evict_pod(&self, name: &str, grace: Duration) -> Result<String, ChaosError> {
        let params = EvictParams {
            delete_options: Some(DeleteParams {
                grace_period_seconds: Some(grace.as_secs() as u32),
                ..Default::default()
            }),
            ..Default::default()
        };
        match self.pods_api().evict(name, &params).await {
            Ok(_) => Ok(format!(
                "pod {}/{name} evicted (grace period {} s)",
                self.target.namespace,
                grace.as_secs()
            )),
            Err(kube::Error::Api(status)) if status.code == 429 => Err(ChaosError::Held(format!(
                "pod {}/{name}: {}",
                self.target.namespace, status.message
            ))),
            Err(e) => Err(api_error(&format!("evict pod {name}"), e)),
        }
    }

    async fn patch_workload(&self, patch: serde_json::Value) -> Result<String, ChaosError> {
        let w = self.workload()?;
        let ns = &self.target.namespace;
        let params = PatchParams::default();
        let what = format!("patch {:?} {ns}/{}", w.kind, w.name);
        match w.kind {
            WorkloadKind::Deployment => Api::<Deployment>::namespaced(self.client.clone(), ns)
                .patch(&w.name, &params, &Patch::Merge(&patch))
                .await
                .map(|_| ()),
            WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(self.client.clone(), ns)
                .patch(&w.name, &params, &Patch::Merge(&patch))
                .await
                .map(|_| ()),
        }
        .map_err(|e| api_error(&what, e))?;
        Ok(format!("{what}: accepted"))
    }

    /// `kubectl rollout restart`: a new pod-template annotation rolls every pod.
    pub async fn rollout_restart(&self) -> Result<String, ChaosError> {
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        self.patch_workload(restart_patch(&now)).await
    }

    /// Sets `spec.replicas`.
    pub async fn scale(&self, replicas: u32) -> Result<String, ChaosError> {
        self.patch_workload(serde_json::json!({ "spec": { "replicas": replicas } }))
            .await
    }

    /// Desired and ready replicas of the workload (or of `pods`, listed if
    /// not given, when no workload is named), and with `with_hpa` the HPA's
    /// current and desired replicas.
    pub async fn counts(
        &self,
        pods: Option<&[Pod]>,
        with_hpa: bool,
    ) -> Result<ReplicaCount, ChaosError> {
        let mut count = match (&self.target.workload, pods) {
            (Some(w), _) => self.workload_counts(w).await?,
            (None, Some(pods)) => ready_of(pods),
            (None, None) => ready_of(&self.pods().await?),
        };
        if let Some(hpa) = self.target.hpa.as_ref().filter(|_| with_hpa) {
            let api: Api<HorizontalPodAutoscaler> =
                Api::namespaced(self.client.clone(), &self.target.namespace);
            // An HPA that is not there (yet) is not an error: the counts say so.
            if let Some(h) = api
                .get_opt(hpa)
                .await
                .map_err(|e| api_error(&format!("get hpa {hpa}"), e))?
            {
                let status = h.status.unwrap_or_default();
                count.hpa_current = status.current_replicas.map(|n| n as u32);
                count.hpa_desired = Some(status.desired_replicas as u32);
            }
        }
        Ok(count)
    }

    /// The workload's counts and the HPA named in the target, as they are
    /// now (for the autoscaler's timeline): `None` for an HPA not there.
    pub async fn workload_and_hpa(
        &self,
    ) -> Result<(ReplicaCount, Option<HorizontalPodAutoscaler>), ChaosError> {
        let counts = self.workload_counts(self.workload()?).await?;
        let Some(name) = &self.target.hpa else {
            return Ok((counts, None));
        };
        let hpa =
            Api::<HorizontalPodAutoscaler>::namespaced(self.client.clone(), &self.target.namespace)
                .get_opt(name)
                .await
                .map_err(|e| api_error(&format!("get hpa {name}"), e))?;
        Ok((counts, hpa))
    }

    /// The CPU of the pods behind the selector as `metrics.k8s.io` reports
    /// it (each pod's mean over metrics-server's last window), with each
    /// pod's CPU request.
    pub async fn pod_cpu(&self) -> Result<Vec<PodCpuReading>, ChaosError> {
        let metrics = kube::api::ApiResource {
            group: "metrics.k8s.io".into(),
            version: "v1beta1".into(),
            api_version: "metrics.k8s.io/v1beta1".into(),
            kind: "PodMetrics".into(),
            plural: "pods".into(),
        };
        let params = ListParams::default().labels(&self.target.selector);
        let read = Api::<kube::api::DynamicObject>::namespaced_with(
            self.client.clone(),
            &self.target.namespace,
            &metrics,
        )
        .list(&params)
        .await
        .map_err(|e| api_error("list metrics.k8s.io pods (is metrics-server installed?)", e))?;
        let pods = self
            .pods_api()
            .list(&params)
            .await
            .map_err(|e| api_error("list pods", e))?;
        let requests: std::collections::BTreeMap<String, Option<f64>> = pods
            .items
            .iter()
            .map(|p| (p.metadata.name.clone().unwrap_or_default(), cpu_request(p)))
            .collect();
        Ok(read
            .items
            .iter()
            .filter_map(|item| {
                let name = item.metadata.name.clone()?;
                let request = requests.get(&name).copied().flatten();
                pod_cpu_reading(name, &item.data, request)
            })
            .collect())
    }

    async fn workload_counts(&self, w: &Workload) -> Result<ReplicaCount, ChaosError> {
        let ns = &self.target.namespace;
        let what = format!("get {:?} {ns}/{}", w.kind, w.name);
        let (desired, ready) = match w.kind {
            WorkloadKind::Deployment => {
                let d = Api::<Deployment>::namespaced(self.client.clone(), ns)
                    .get(&w.name)
                    .await
                    .map_err(|e| api_error(&what, e))?;
                deployment_counts(&d)
            }
            WorkloadKind::StatefulSet => {
                let s = Api::<StatefulSet>::namespaced(self.client.clone(), ns)
                    .get(&w.name)
                    .await
                    .map_err(|e| api_error(&what, e))?;
                statefulset_counts(&s)
            }
        };
        Ok(ReplicaCount {
            desired,
            ready,
            ..Default::default()
        })
    }

    /// Watches the workload: one (desired, ready) per change, until the
    /// server ends the watch (the caller watches again).
    pub async fn watch_workload(
        &self,
    ) -> Result<impl Stream<Item = (Option<u32>, u32)> + use<>, ChaosError> {
        let w = self.workload()?.clone();
        let ns = self.target.namespace.clone();
        let params = WatchParams::default()
            .fields(&format!("metadata.name={}", w.name))
            .timeout(290);
        let what = format!("watch {:?} {ns}/{}", w.kind, w.name);
        let stream = match w.kind {
            WorkloadKind::Deployment => Api::<Deployment>::namespaced(self.client.clone(), &ns)
                .watch(&params, "0")
                .await
                .map_err(|e| api_error(&what, e))?
                .filter_map(|e| async move { applied(e.ok()?).map(|d| deployment_counts(&d)) })
                .boxed(),
            WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(self.client.clone(), &ns)
                .watch(&params, "0")
                .await
                .map_err(|e| api_error(&what, e))?
                .filter_map(|e| async move { applied(e.ok()?).map(|s| statefulset_counts(&s)) })
                .boxed(),
        };
        Ok(stream)
    }
}

fn ready_of(pods: &[Pod]) -> ReplicaCount {
    ReplicaCount {
        ready: pods.iter().filter(|p| p.ready).count() as u32,
        ..Default::default()
    }
}

fn applied<K>(event: WatchEvent<K>) -> Option<K> {
    match event {
        WatchEvent::Added(k) | WatchEvent::Modified(k) => Some(k),
        _ => None,
    }
}

fn deployment_counts(d: &Deployment) -> (Option<u32>, u32) {
    let desired = d.spec.as_ref().and_then(|s| s.replicas).map(|n| n as u32);
    let ready = d
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0) as u32;
    (desired, ready)
}

fn statefulset_counts(s: &StatefulSet) -> (Option<u32>, u32) {
    let desired = s.spec.as_ref().and_then(|s| s.replicas).map(|n| n as u32);
    let ready = s
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0) as u32;
    (desired, ready)
}

/// A pod's CPU request in millicores, summed over its containers; `None`
/// when one of them sets none.
fn cpu_request(pod: &KubePod) -> Option<f64> {
    let containers = &pod.spec.as_ref()?.containers;
    containers
        .iter()
        .map(|c| {
            let q = c.resources.as_ref()?.requests.as_ref()?.get("cpu")?;
            super::autoscaler::quantity(&q.0).map(|cores| cores * 1000.0)
        })
        .sum()
}

/// One PodMetrics object (`timestamp`, `window`, `containers[].usage.cpu`)
/// as a reading; `None` when a field is missing or unreadable.
fn pod_cpu_reading(
    pod: String,
    data: &serde_json::Value,
    request_millicores: Option<f64>,
) -> Option<PodCpuReading> {
    let end: k8s_openapi::jiff::Timestamp = data["timestamp"].as_str()?.parse().ok()?;
    let window = go_duration_s(data["window"].as_str()?)?;
    let millicores = data["containers"]
        .as_array()?
        .iter()
        .map(|c| super::autoscaler::quantity(c["usage"]["cpu"].as_str()?))
        .sum::<Option<f64>>()?
        * 1000.0;
    Some(PodCpuReading {
        pod,
        end_unix_s: end.as_millisecond() as f64 / 1000.0,
        window_s: window,
        millicores,
        request_millicores,
    })
}

/// A Go duration as metav1.Duration writes it (`10.085s`, `1m0.5s`,
/// `500ms`), in seconds.
fn go_duration_s(text: &str) -> Option<f64> {
    let units = [
        ("ns", 1e-9),
        ("us", 1e-6),
        ("µs", 1e-6),
        ("ms", 1e-3),
        ("h", 3600.0),
        ("m", 60.0),
        ("s", 1.0),
    ];
    let mut rest = text;
    let mut total = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&at| at > 0)?;
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, scale) = units.iter().find(|(u, _)| rest.starts_with(u))?;
        total += value * scale;
        rest = &rest[unit.len()..];
    }
    (!text.is_empty()).then_some(total)
}

/// The merge patch `kubectl rollout restart` sends.
pub fn restart_patch(now_rfc3339: &str) -> serde_json::Value {
    serde_json::json!({
        "spec": { "template": { "metadata": { "annotations": {
            "kubectl.kubernetes.io/restartedAt": now_rfc3339
        }}}}
    })
}

/// A Kubernetes pod as chaos sees it. A pod being deleted is not ready,
/// whatever its last condition said.
fn to_pod(p: &KubePod, port: Option<u16>) -> Pod {
    let status = p.status.as_ref();
    let ready = p.metadata.deletion_timestamp.is_none()
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let port = port.or_else(|| {
        p.spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .map(|p| p.container_port as u16)
            .next()
    });
    let ip = status.and_then(|s| s.pod_ip.clone());
    Pod {
        name: p.metadata.name.clone().unwrap_or_default(),
        uid: p.metadata.uid.clone().unwrap_or_default(),
        started: p
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| std::time::SystemTime::from(t.0)),
        ready,
        url: match (ip, port) {
            (Some(ip), Some(port)) if ip.contains(':') => Some(format!("http://[{ip}]:{port}")),
            (Some(ip), Some(port)) => Some(format!("http://{ip}:{port}")),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_metrics_object_reads_as_cpu_over_its_window() {
        let data = serde_json::json!({
            "timestamp": "2026-12-07T07:00:10Z", "window": "10.085s",
            "containers": [{"name": "hapi", "usage": {"cpu": "114057028n", "memory": "9Mi"}},
                           {"name": "side", "usage": {"cpu": "6m"}}]
        });
        let r = pod_cpu_reading("hapi-1".into(), &data, Some(100.0)).unwrap();
        assert!((r.millicores - 120.057028).abs() < 1e-6, "{r:?}");
        assert!((r.window_s - 10.085).abs() < 1e-9);
        assert_eq!(r.end_unix_s, 1_796_626_810.0);
        assert_eq!(go_duration_s("1m0.5s"), Some(60.5));
        assert_eq!(go_duration_s("500ms"), Some(0.5));
        assert_eq!(
            (go_duration_s(""), go_duration_s("10x"), go_duration_s("s")),
            (None, None, None)
        );
        let mut no_cpu = data.clone();
        no_cpu["containers"][1]["usage"] = serde_json::json!({"memory": "1Mi"});
        assert_eq!(pod_cpu_reading("hapi-1".into(), &no_cpu, None), None);
        // A request on every container sums; one without makes none.
        let pod = |requests: serde_json::Value| -> KubePod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p"},
                "spec": {"containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "250m"}}},
                    {"name": "b", "resources": {"requests": requests}}]}
            }))
            .unwrap()
        };
        assert_eq!(
            cpu_request(&pod(serde_json::json!({"cpu": "0.5"}))),
            Some(750.0)
        );
        assert_eq!(
            cpu_request(&pod(serde_json::json!({"memory": "1Gi"}))),
            None
        );
    }

    #[test]
    fn the_restart_patch_is_kubectls() {
        let p = restart_patch("2026-11-22T10:00:00Z");
        assert_eq!(
            p["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
            "2026-11-22T10:00:00Z"
        );
    }

    #[test]
    fn pods_read_readiness_and_address() {
        let pod: KubePod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "openmrs-0", "uid": "u1", "creationTimestamp": "2026-11-22T10:00:00Z"},
            "spec": {"containers": [{"name": "web", "ports": [{"containerPort": 8080}]}]},
            "status": {"podIP": "10.0.0.7", "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        let p = to_pod(&pod, None);
        assert!(p.ready);
        assert_eq!(p.url.as_deref(), Some("http://10.0.0.7:8080"));
        assert_eq!(
            to_pod(&pod, Some(9000)).url.as_deref(),
            Some("http://10.0.0.7:9000")
        );
        let mut deleting = pod.clone();
        deleting.metadata.deletion_timestamp = pod.metadata.creation_timestamp.clone();
        assert!(!to_pod(&deleting, None).ready);
        let mut unready = pod;
        unready
            .status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()[0]
            .status = "False".into();
        assert!(!to_pod(&unready, None).ready);
    }
}
