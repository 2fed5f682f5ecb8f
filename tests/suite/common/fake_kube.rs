//! A fake Kubernetes API server on loopback, backed by a reference cluster:
//! its replicas are the pods of Deployment `clinic` (label `app=clinic`) in
//! namespace `clinic`, so deleting a pod kills a real replica process, which
//! the sim restarts after its start-up delay. It implements only what surge
//! calls — pods list and watch (labelSelector) and delete,
//! Deployment/StatefulSet get, patch and watch, HPA get — and records every
//! call.
//!
//! What the real control plane of `tests/kubernetes` shows instead, with
//! pods run as processes by its node double: manifests admitted, RBAC's
//! 403 (with `deploy/rbac.yaml` as shipped), the Job controller's
//! completion indexes, evictions a disruption budget holds, `kill-pod`
//! replaced by the ReplicaSet controller with exactly the victim's users
//! dropped (per-pod sessions) or none (shared), and `rollout-restart`
//! through the Deployment controller with and without readiness.
//!
//! What still uses this fake, and why (each cheap here, dear there):
//! - the tests of `tests/suite/chaos.rs` that count surge's calls one by
//!   one (the selector and namespace of every list, the delete's grace
//!   period, a watch rather than polling, the HPA read, each verb matched
//!   against `deploy/rbac.yaml`): the real server would need an audit log;
//! - refusals of a single verb (a Role without `watch`, so surge lists
//!   instead) and injected API errors (a 500 mid-run,
//!   `an_api_error_stops_the_chaos_but_not_the_load`);
//! - `scale` and the kubectl-shaped patches of `workload_actions_patch_as_kubectl_does`,
//!   and uploads read back from the pods behind a selector.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use surge_sim::balancer::Backends;

/// Namespace of the fake workload.
pub const NAMESPACE: &str = "clinic";
/// Its label selector.
pub const SELECTOR: &str = "app=clinic";
/// Its Deployment (and HPA) name.
pub const WORKLOAD: &str = "clinic";

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: String,
}

/// What the fake refuses, as a Role or admission rule might.
#[derive(Debug, Clone, Copy, Default)]
pub struct Refuse {
    /// Answer every pod delete with this status (e.g. 403).
    pub deletes: Option<u16>,
    /// Answer pod watches with 403 (a Role without `watch` on pods).
    pub pod_watch: bool,
}

#[derive(Clone)]
struct Fake {
    backends: Arc<Backends>,
    calls: Arc<Mutex<Vec<Call>>>,
    /// Answer pod deletes with this status instead (e.g. 403).
    refuse_deletes: Option<u16>,
    /// Answer pod watches with 403 (a Role without `watch` on pods).
    refuse_pod_watch: bool,
    /// The last resourceVersion given out.
    versions: Arc<AtomicU64>,
}

/// A running fake API server.
pub struct FakeKube {
    pub url: String,
    pub kubeconfig: PathBuf,
    calls: Arc<Mutex<Vec<Call>>>,
    _dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeKube {
    /// Serves `backends` as pods, refusing what `refuse` says.
    pub async fn start(backends: Arc<Backends>, refuse: Refuse) -> FakeKube {
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let fake = Fake {
            backends,
            calls: Arc::clone(&calls),
            refuse_deletes: refuse.deletes,
            refuse_pod_watch: refuse.pod_watch,
            versions: Arc::default(),
        };
        let app = axum::Router::new().fallback(handle).with_state(fake);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n\
                 users:\n- name: tester\n  user:\n    token: fake-token\n\
                 contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\n    namespace: {NAMESPACE}\n\
                 current-context: fake\n"
            ),
        )
        .unwrap();
        FakeKube {
            url,
            kubeconfig,
            calls,
            _dir: dir,
            server,
        }
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Calls with this method.
    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(code).unwrap(),
        axum::Json(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code
        })),
    )
        .into_response()
}

fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn pods(fake: &Fake) -> Vec<Value> {
    fake.backends
        .list()
        .into_iter()
        .map(|b| {
            let ready = b.address.is_some() && b.pid.is_some();
            json!({
                "metadata": {
                    "name": b.name, "namespace": NAMESPACE,
                    "uid": b.pid.map(|p| format!("pid-{p}")).unwrap_or_else(|| format!("down-{}", b.name)),
                    "labels": {"app": "clinic"},
                    "creationTimestamp": b.since.map(rfc3339),
                },
                "spec": {"containers": [{"name": "web", "ports": b.address.map(|a| vec![json!({"containerPort": a.port()})]).unwrap_or_default()}]},
                "status": {
                    "phase": if ready { "Running" } else { "Pending" },
                    "podIP": b.address.map(|a| a.ip().to_string()),
                    "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]
                }
            })
        })
        .collect()
}

fn workload(fake: &Fake, kind: &str) -> Value {
    let list = fake.backends.list();
    let ready = list
        .iter()
        .filter(|b| b.address.is_some() && b.pid.is_some())
        .count();
    json!({
        "apiVersion": "apps/v1", "kind": kind,
        "metadata": {"name": WORKLOAD, "namespace": NAMESPACE, "resourceVersion": "1"},
        "spec": {"replicas": list.len(), "selector": {"matchLabels": {"app": "clinic"}},
                 "template": {"metadata": {"labels": {"app": "clinic"}}, "spec": {"containers": []}}},
        "status": {"replicas": list.len(), "readyReplicas": ready}
    })
}

/// The kind of an apps/v1 collection path segment.
fn kind_of(collection: &str) -> &'static str {
    if collection == "statefulsets" {
        "StatefulSet"
    } else {
        "Deployment"
    }
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| {
            v.replace("%3D", "=")
                .replace("%2C", ",")
                .replace("%3d", "=")
        })
    })
}

async fn handle(State(fake): State<Fake>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    fake.calls.lock().unwrap().push(Call {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        body: body.clone(),
    });
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        (Method::GET, ["api", "v1", "namespaces", ns, "pods"])
            if query_param(&query, "watch").is_some() =>
        {
            if fake.refuse_pod_watch {
                return status(
                    403,
                    "Forbidden",
                    "pods is forbidden: user cannot watch pods",
                );
            }
            let mine = *ns == NAMESPACE
                && query_param(&query, "labelSelector").as_deref() == Some(SELECTOR);
            watch(
                fake,
                move |f| if mine { pods(f) } else { Vec::new() },
                &query,
            )
        }
        (Method::GET, ["api", "v1", "namespaces", ns, "pods"]) => {
            let items = if *ns == NAMESPACE
                && query_param(&query, "labelSelector").as_deref() == Some(SELECTOR)
            {
                pods(&fake)
            } else {
                Vec::new()
            };
            axum::Json(json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": items})).into_response()
        }
        (Method::DELETE, ["api", "v1", "namespaces", ns, "pods", name]) => {
            if let Some(code) = fake.refuse_deletes {
                return status(
                    code,
                    "Forbidden",
                    "pods is forbidden: user cannot delete pods",
                );
            }
            let victim = fake.backends.list().into_iter().find(|b| b.name == *name);
            match victim.and_then(|b| b.pid) {
                Some(pid) if *ns == NAMESPACE => {
                    let before = pods(&fake)
                        .into_iter()
                        .find(|p| p["metadata"]["name"] == *name);
                    super::kill_hard(pid);
                    axum::Json(before.unwrap_or(Value::Null)).into_response()
                }
                _ => status(404, "NotFound", &format!("pods \"{name}\" not found")),
            }
        }
        (Method::GET, ["apis", "apps", "v1", "namespaces", _, kind])
            if query_param(&query, "watch").is_some() =>
        {
            let kind = kind_of(kind);
            watch(fake, move |f| vec![workload(f, kind)], &query)
        }
        // A get, or a patch (recorded, not applied: the sim has no rollout).
        (Method::GET | Method::PATCH, ["apis", "apps", "v1", "namespaces", ns, kind, name])
            if *ns == NAMESPACE && *name == WORKLOAD =>
        {
            axum::Json(workload(&fake, kind_of(kind))).into_response()
        }
        (
            Method::GET,
            ["apis", "autoscaling", "v2", "namespaces", ns, "horizontalpodautoscalers", name],
        ) if *ns == NAMESPACE && *name == WORKLOAD => {
            let n = fake.backends.list().len();
            axum::Json(json!({
                "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": WORKLOAD, "namespace": NAMESPACE},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": WORKLOAD}, "minReplicas": 2, "maxReplicas": 6},
                "status": {"currentReplicas": n, "desiredReplicas": n}
            }))
            .into_response()
        }
        _ => status(
            404,
            "NotFound",
            &format!("the fake API server does not serve {path}"),
        ),
    }
}

/// A watch on a collection: each object ADDED at first, then MODIFIED when
/// it changes and DELETED when it is gone, until the requested timeout (or
/// the client goes away). Every event carries a new resourceVersion, as
/// kube-rs's watcher needs.
fn watch(
    fake: Fake,
    objects: impl Fn(&Fake) -> Vec<Value> + Send + Sync + 'static,
    query: &str,
) -> Response {
    let timeout = query_param(query, "timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .unwrap_or(60u64);
    let end = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let seen: BTreeMap<String, Value> = BTreeMap::new();
    let objects = Arc::new(objects);
    let stream = futures::stream::unfold(
        (fake, seen, VecDeque::<String>::new()),
        move |(fake, mut seen, mut ready)| {
            let objects = Arc::clone(&objects);
            async move {
                loop {
                    if let Some(line) = ready.pop_front() {
                        let line = Ok::<_, std::io::Error>(bytes::Bytes::from(line));
                        return Some((line, (fake, seen, ready)));
                    }
                    if tokio::time::Instant::now() >= end {
                        return None;
                    }
                    let now: BTreeMap<String, Value> = objects(&fake)
                        .into_iter()
                        .map(|o| (o["metadata"]["name"].as_str().unwrap_or("").to_owned(), o))
                        .collect();
                    let mut event = |kind: &str, mut object: Value| {
                        let version = fake.versions.fetch_add(1, Ordering::SeqCst) + 2;
                        object["metadata"]["resourceVersion"] = json!(version.to_string());
                        ready.push_back(format!("{}\n", json!({"type": kind, "object": object})));
                    };
                    for (name, object) in &now {
                        match seen.get(name) {
                            None => event("ADDED", object.clone()),
                            Some(before) if before != object => event("MODIFIED", object.clone()),
                            _ => {}
                        }
                    }
                    for (name, object) in &seen {
                        if !now.contains_key(name) {
                            event("DELETED", object.clone());
                        }
                    }
                    seen = now;
                    if ready.is_empty() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        },
    );
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}
