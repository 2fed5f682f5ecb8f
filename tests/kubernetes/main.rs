//! surge's Kubernetes paths against a real control plane: etcd,
//! kube-apiserver and kube-controller-manager of a pinned release, built
//! from their Go modules and started on loopback by
//! `targets/kubernetes/cluster.sh` (RBAC on, the default controllers).
//!
//! Its own test binary, so `cargo test` runs it apart from the suite; the
//! tests take turns (one control plane at a time, each its own).
//!
//! What each test shows:
//! - every manifest surge writes (`recommendations.yaml`'s HPA, from a real
//!   `surge calibrate`) is accepted by the real API server and reads back
//!   as written;
//! - `deploy/rbac.yaml` as shipped: surge with that ServiceAccount's token
//!   reaches the pods of its namespace, and outside it the API server
//!   answers 403 and surge refuses the run in one clear line before any load;
//! - `evict` against the real disruption controller, both ways: a budget
//!   that allows no disruption holds it (429, tried again as drain does,
//!   reported as held, the pod stays); one that allows one lets it through;
//! - `kill-pod` on a Deployment the real controllers keep: the ReplicaSet
//!   controller replaces the victim, the node double (`node.rs`: bookkeeping
//!   only, no process yet) reports the replacement Ready after its start-up,
//!   and surge's recovery is that start-up plus the controllers' lag;
//! - `rollout-restart` through the real Deployment controller: every pod
//!   replaced, one surge pod at a time, and surge's figure covers them all;
//! - `deploy/sharded-test.yaml` as shipped (test name and start time
//!   substituted only): the real Job controller creates one pod per
//!   completion index, each with the index, the shard count and the
//!   arguments surge reads.
//!
//! Not here yet: a node that runs the pods as processes (the node double
//! keeps their books only), so no pod serves traffic.

#[path = "../suite/common/mod.rs"]
mod common;
mod node;

use common::*;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::discovery::Discovery;
use kube::Client;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use surge_sim::ClusterOptions;

fn script() -> PathBuf {
    repo().join("targets/kubernetes/cluster.sh")
}

/// A control plane, stopped (by the pids it started) when dropped.
struct ControlPlane {
    dir: tempfile::TempDir,
    env: BTreeMap<String, String>,
}

impl ControlPlane {
    fn up() -> ControlPlane {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port_run(4).to_string();
        // `timeout` bounds a start that hangs (a build, a store that never
        // answers); the first build alone takes minutes.
        let out = Command::new("timeout")
            .arg("2400")
            .arg(script())
            .arg("up")
            .arg(dir.path())
            .args(["--port", &port])
            .output()
            .expect("cluster.sh runs");
        let plane = ControlPlane {
            env: read_env(&dir.path().join("cluster.env")),
            dir,
        };
        assert!(
            out.status.success(),
            "cluster.sh up failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        plane
    }

    fn kubeconfig(&self) -> &Path {
        Path::new(&self.env["SURGE_KUBECONFIG"])
    }

    /// A client with the admin's certificate.
    async fn admin(&self) -> Client {
        client_from(self.kubeconfig()).await
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("down")
            .arg(self.dir.path())
            .status();
    }
}

fn read_env(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

async fn client_from(kubeconfig: &Path) -> Client {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    Client::try_from(config).unwrap()
}

/// Creates every document of `yaml` (as `kubectl create -f` does), each
/// through the API the server's discovery names for its kind; returns what
/// the server answered.
async fn create_all(client: &Client, yaml: &str) -> Vec<DynamicObject> {
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let mut created = Vec::new();
    for doc in documents(yaml) {
        let object: DynamicObject = serde_saphyr::from_str(&doc).unwrap();
        let types = object.types.clone().expect("apiVersion and kind");
        let gvk = kube::api::GroupVersionKind::try_from(&types).unwrap();
        let (resource, _) = discovery
            .resolve_gvk(&gvk)
            .unwrap_or_else(|| panic!("the API server serves {gvk:?}"));
        let api: Api<DynamicObject> = match &object.metadata.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let answer = api
            .create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("the API server accepts {gvk:?}: {e}\n{doc}"));
        created.push(answer);
    }
    created
}

/// The YAML documents of a file, comments and empty documents left out.
fn documents(yaml: &str) -> Vec<String> {
    yaml.split("\n---")
        .map(|d| {
            d.lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|d| !d.trim().is_empty())
        .collect()
}

/// Creates namespace `name` and waits for the controllers to give it its
/// `default` ServiceAccount, without which no pod is admitted there.
async fn namespace(client: &Client, name: &str) {
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
    }))
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), name);
    for _ in 0..150 {
        if accounts.get_opt("default").await.unwrap().is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the ServiceAccount controller gave {name} no default account within 15 s");
}

/// The surge binary, run to its end.
fn surge(args: &[&str]) -> std::process::Output {
    Command::new(surge_bin())
        .args(args)
        .current_dir(repo())
        .output()
        .expect("surge runs")
}

/// `surge calibrate` from a real staircase on the reference cluster: the
/// recommendations file as an operator gets it.
async fn recommendations(dir: &Path) -> String {
    let cluster = cluster(ClusterOptions::default()).await;
    let load = "[load]\nmodel = \"open\"\nmax_users = 20\n\
                [[load.stages]]\nrate = 5\nhold = \"2s\"\n\
                [[load.stages]]\nrate = 10\nhold = \"2s\"\n";
    let path = scenario_file(dir, "climb", &fhir_search_scenario(&cluster.url, load));
    let staircase = run(path, None, None, &dir.join("runs")).await;
    cluster.shutdown().await;
    let out = dir.join("calibrations");
    let done = surge(&[
        "calibrate",
        "--from-bundle",
        staircase.bundle.to_str().unwrap(),
        "--replicas",
        "3",
        "--slo-p99",
        "2s",
        "--kind",
        "Deployment",
        "--name",
        "hapi",
        "--namespace",
        "clinic",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        done.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&done.stdout),
        String::from_utf8_lossy(&done.stderr)
    );
    std::fs::read_to_string(only_bundle(&out).join("recommendations.yaml")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_manifest_surge_writes_is_accepted_by_the_real_api_server() {
    let _turn = engine_lock().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = recommendations(dir.path()).await;
    let plane = ControlPlane::up();
    let client = plane.admin().await;
    namespace(&client, "clinic").await;

    // The HPA is the Kubernetes object; the other document is the pool
    // settings (no object). KEDA's ScaledObject, written with
    // --keda-prometheus, is a custom resource this control plane has no
    // definition for, so it is not checked here.
    let docs = documents(&yaml);
    let hpa = docs
        .iter()
        .find(|d| d.contains("kind: HorizontalPodAutoscaler"))
        .expect("an HPA");
    let created = create_all(&client, hpa).await;
    assert_eq!(created.len(), 1);
    let written: serde_json::Value =
        serde_json::to_value(serde_saphyr::from_str::<DynamicObject>(hpa).unwrap()).unwrap();
    let api: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> =
        Api::namespaced(client.clone(), "clinic");
    let read = serde_json::to_value(api.get("hapi").await.unwrap()).unwrap();
    // Read back as written: the spec field by field, and the reasoning.
    assert_eq!(read["spec"], written["spec"], "{read:#}\nwritten:\n{hpa}");
    assert_eq!(
        read["metadata"]["annotations"]["surge/reasoning"],
        written["metadata"]["annotations"]["surge/reasoning"]
    );
}

/// Creates pod `name` (label app=hapi) and writes its status Running and
/// Ready, as the kubelet of a node would.
async fn ready_pod(pods: &Api<Pod>, name: &str) {
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "hapi"}},
        "spec": {"containers": [{"name": "hapi", "image": "hapiproject/hapi:v8.8.0"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let status = serde_json::json!({"status": {
        "phase": "Running",
        "podIP": "10.244.0.10",
        "startTime": "2026-12-06T12:00:00Z",
        "conditions": [{"type": "Ready", "status": "True"}]
    }});
    pods.patch_status(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&status),
    )
    .await
    .unwrap();
}

/// `deploy/rbac.yaml` for namespace `ns`, as its header says to make it.
fn rbac_for(ns: &str) -> String {
    std::fs::read_to_string(repo().join("deploy/rbac.yaml"))
        .unwrap()
        .replace("namespace: clinic", &format!("namespace: {ns}"))
}

/// A kubeconfig holding a token of ServiceAccount `surge` in `ns`, from the
/// real TokenRequest API.
async fn service_account_kubeconfig(plane: &ControlPlane, admin: &Client, ns: &str) -> PathBuf {
    let request = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": { "expirationSeconds": 3600 }
    });
    let api: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(admin.clone(), ns);
    let answer: k8s_openapi::api::authentication::v1::TokenRequest = api
        .create_subresource("token", "surge", &PostParams::default(), &request)
        .await
        .unwrap();
    let token = answer.status.expect("a token").token;
    let path = plane.dir.path().join(format!("surge-{ns}.kubeconfig"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: {}\n    certificate-authority: {}\n\
             users:\n- name: surge\n  user:\n    token: {token}\ncontexts:\n- name: t\n  context:\n    cluster: t\n    user: surge\n\
             current-context: t\n",
            plane.env["SURGE_KUBE_SERVER"], plane.env["SURGE_KUBE_CA"]
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_role_reaches_its_namespace_and_is_refused_outside_it() {
    let _turn = engine_lock().await;
    let plane = ControlPlane::up();
    let admin = plane.admin().await;
    namespace(&admin, "clinic").await;
    namespace(&admin, "billing").await;
    create_all(&admin, &rbac_for("clinic")).await;
    let kubeconfig = service_account_kubeconfig(&plane, &admin, "clinic").await;
    let as_surge = client_from(&kubeconfig).await;

    // The API server itself: pods of clinic listed, of billing refused.
    let clinic: Api<Pod> = Api::namespaced(as_surge.clone(), "clinic");
    assert!(clinic.list(&ListParams::default()).await.is_ok());
    let billing: Api<Pod> = Api::namespaced(as_surge.clone(), "billing");
    match billing.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("expected 403, got {other:?}"),
    }

    // surge with that token: a chaos run in billing is refused before any
    // load, in one line naming the refusal; in clinic it kills its pod. (No
    // node runs pods here: the test writes the pod's status Ready, as a
    // kubelet would.)
    let cluster = cluster(ClusterOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let chaos_run = |ns: &str| {
        surge(&[
            "run",
            "scenarios/smoke.toml",
            "--target",
            &cluster.url,
            "--duration",
            "3s",
            "--no-progress",
            "--out",
            runs.to_str().unwrap(),
            "--chaos",
            "kill-pod@1s",
            "--chaos-backend",
            "kubernetes",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--namespace",
            ns,
            "--selector",
            "app=hapi",
            "--allow-namespace",
            ns,
        ])
    };
    let refused = chaos_run("billing");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    let said: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(said.len(), 1, "{stderr}");
    assert!(
        said[0].contains("chaos:") && said[0].contains("403"),
        "{stderr}"
    );
    eprintln!("refused outside its namespace: {}", said[0]);
    assert!(!runs.exists(), "no load, no bundle: {stderr}");

    let pods: Api<Pod> = Api::namespaced(admin.clone(), "clinic");
    ready_pod(&pods, "hapi-0").await;
    let allowed = chaos_run("clinic");
    let stdout = String::from_utf8_lossy(&allowed.stdout);
    let stderr = String::from_utf8_lossy(&allowed.stderr);
    assert!(
        matches!(allowed.status.code(), Some(0 | 1)),
        "{stdout}\n{stderr}"
    );
    let r = surge::bundle::read_results(&only_bundle(&runs)).unwrap();
    let chaos = r.chaos.expect("chaos recorded");
    assert_eq!(chaos.events.len(), 1, "{stdout}");
    assert_eq!(
        chaos.events[0].outcome,
        surge::bundle::Outcome::Done,
        "{stdout}"
    );
    assert_eq!(chaos.events[0].target, ["hapi-0"]);
    assert!(pods.get_opt("hapi-0").await.unwrap().is_none(), "deleted");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_controller_hands_each_shard_of_the_shipped_job_its_index() {
    let _turn = engine_lock().await;
    let plane = ControlPlane::up();
    let admin = plane.admin().await;
    namespace(&admin, "clinic").await;
    create_all(&admin, &rbac_for("clinic")).await;
    let yaml = std::fs::read_to_string(repo().join("deploy/sharded-test.yaml"))
        .unwrap()
        .replace("${SURGE_TEST}", "t1")
        .replace("${SURGE_START_AT}", "2026-12-06T12:00:00Z");
    let created = create_all(&admin, &yaml).await;
    let kinds: Vec<&str> = created
        .iter()
        .map(|o| o.types.as_ref().unwrap().kind.as_str())
        .collect();
    assert_eq!(kinds, ["PersistentVolumeClaim", "Job", "Job"]);

    // The Job controller, not the test, makes the shards' pods.
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "clinic");
    let selector = ListParams::default().labels("surge/role=shard,surge/test=t1");
    let mut shards = Vec::new();
    for _ in 0..150 {
        shards = pods.list(&selector).await.unwrap().items;
        if shards.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(shards.len(), 4, "one pod per completion");
    let indexes: BTreeSet<String> = shards
        .iter()
        .map(|p| {
            p.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("batch.kubernetes.io/job-completion-index"))
                .cloned()
                .expect("the completion index")
        })
        .collect();
    assert_eq!(
        indexes,
        ["0", "1", "2", "3"].map(String::from).into_iter().collect()
    );
    for pod in &shards {
        let container = &pod.spec.as_ref().unwrap().containers[0];
        let env: BTreeMap<&str, String> = container
            .env
            .iter()
            .flatten()
            .map(|e| {
                let value = e.value.clone().or_else(|| {
                    e.value_from
                        .as_ref()
                        .and_then(|v| v.field_ref.as_ref())
                        .map(|f| format!("fieldRef:{}", f.field_path))
                });
                (e.name.as_str(), value.unwrap_or_default())
            })
            .collect();
        // What `surge run --shards` reads: the count, and the index the
        // controller put in JOB_COMPLETION_INDEX.
        assert_eq!(env["SURGE_SHARDS"], "4");
        assert_eq!(env["SURGE_START_AT"], "2026-12-06T12:00:00Z");
        assert!(
            env["JOB_COMPLETION_INDEX"].contains("job-completion-index"),
            "{env:?}"
        );
        assert_eq!(
            container.args.as_deref().unwrap(),
            [
                "run",
                "/opt/surge/scenario/scenario.toml",
                "--no-progress",
                "--out",
                "/results/$(SURGE_TEST)/shards"
            ]
        );
    }
}

/// Waits until the disruption controller has seen budget `name` at its
/// current generation and allows `allowed` disruptions.
async fn budget_settles(client: &Client, name: &str, allowed: i32) {
    let budgets: Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> =
        Api::namespaced(client.clone(), "clinic");
    for _ in 0..150 {
        let b = budgets.get(name).await.unwrap();
        let generation = b.metadata.generation;
        if let Some(s) = &b.status {
            if s.observed_generation == generation && s.disruptions_allowed == allowed {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the disruption controller did not settle {name} at {allowed} allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eviction_the_budget_forbids_is_held_and_one_it_allows_is_done() {
    let _turn = engine_lock().await;
    let plane = ControlPlane::up();
    let admin = plane.admin().await;
    namespace(&admin, "clinic").await;
    create_all(&admin, &rbac_for("clinic")).await;
    let kubeconfig = service_account_kubeconfig(&plane, &admin, "clinic").await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "clinic");
    for name in ["hapi-0", "hapi-1", "hapi-2"] {
        ready_pod(&pods, name).await;
    }
    // All three must stay: the real disruption controller allows none.
    create_all(
        &admin,
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: hapi\n  namespace: clinic\n\
         spec:\n  minAvailable: 3\n  selector:\n    matchLabels:\n      app: hapi\n",
    )
    .await;
    budget_settles(&admin, "hapi", 0).await;

    let cluster = cluster(ClusterOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    // The shipped smoke scenario, with an eviction a second in and a drain
    // deadline of 6 s (tries at 0, 5 s).
    let text = std::fs::read_to_string(repo().join("scenarios/smoke.toml"))
        .unwrap()
        .replace(
            "name = \"smoke\"",
            &format!(
                "name = \"smoke\"\nfixtures = \"{}\"",
                repo().join("fixtures").display()
            ),
        )
        + "\n[chaos]\nrecover_within = \"6s\"\n[[chaos.actions]]\naction = \"evict\"\nat = \"1s\"\n";
    let scenario = dir.path().join("evict.toml");
    std::fs::write(&scenario, text).unwrap();
    let evict_run = |out: &str| {
        let runs = dir.path().join(out);
        let done = Command::new(surge_bin())
            .args(["run", scenario.to_str().unwrap(), "--target", &cluster.url])
            .args(["--duration", "10s", "--no-progress", "--out"])
            .arg(&runs)
            .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
            .args(["--namespace", "clinic", "--selector", "app=hapi"])
            .args(["--allow-namespace", "clinic"])
            .current_dir(repo())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&done.stdout),
            String::from_utf8_lossy(&done.stderr)
        );
        assert!(matches!(done.status.code(), Some(0 | 1)), "{text}");
        let r = surge::bundle::read_results(&only_bundle(&runs)).unwrap();
        (r.chaos.expect("chaos recorded").events.remove(0), text)
    };

    let (held, text) = evict_run("held");
    eprintln!("held: {}", held.answer);
    assert_eq!(held.outcome, surge::bundle::Outcome::Held, "{text}");
    assert!(
        held.answer.contains("held by its disruption budget") && held.answer.contains("2 tries"),
        "{text}"
    );
    assert!(text.contains("held by its disruption budget"), "{text}");
    assert_eq!(
        pods.list(&ListParams::default()).await.unwrap().items.len(),
        3
    );

    // One may go: the same eviction is carried out.
    let budgets: Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> =
        Api::namespaced(admin.clone(), "clinic");
    budgets
        .patch(
            "hapi",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"minAvailable": 2}})),
        )
        .await
        .unwrap();
    budget_settles(&admin, "hapi", 1).await;
    let (done, text) = evict_run("allowed");
    assert_eq!(done.outcome, surge::bundle::Outcome::Done, "{text}");
    assert!(done.answer.contains("evicted"), "{text}");
    let left = pods.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(left.len(), 2, "the evicted pod is gone");
    assert!(left
        .iter()
        .all(|p| p.metadata.name.as_deref() != Some(done.target[0].as_str())));
    cluster.shutdown().await;
}

/// Deployment `hapi` of 3 replicas in clinic, waited for until all are
/// Ready (the node double must be running).
async fn deployment_ready(admin: &Client) {
    create_all(
        admin,
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: hapi
  namespace: clinic
spec:
  replicas: 3
  selector:
    matchLabels:
      app: hapi
  template:
    metadata:
      labels:
        app: hapi
    spec:
      containers:
        - name: hapi
          image: surge-sim/replica
"#,
    )
    .await;
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(admin.clone(), "clinic");
    let mut ready = 0;
    for _ in 0..300 {
        let d = deployments.get("hapi").await.unwrap();
        ready = d.status.and_then(|s| s.ready_replicas).unwrap_or(0);
        if ready == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready, 3, "the Deployment's pods are Ready");
}

/// surge's smoke scenario on the reference cluster for `duration`, with
/// chaos `action` on Deployment `hapi` of clinic through the admin's
/// kubeconfig: what chaos recorded, and what surge printed.
async fn chaos_on_deployment(
    plane: &ControlPlane,
    action: &str,
    duration: &str,
) -> (surge::bundle::ChaosReport, String) {
    let cluster = cluster(ClusterOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let done = surge(&[
        "run",
        "scenarios/smoke.toml",
        "--target",
        &cluster.url,
        "--duration",
        duration,
        "--no-progress",
        "--out",
        runs.to_str().unwrap(),
        "--chaos",
        action,
        "--kubeconfig",
        plane.kubeconfig().to_str().unwrap(),
        "--namespace",
        "clinic",
        "--selector",
        "app=hapi",
        "--workload",
        "deployment/hapi",
        "--allow-namespace",
        "clinic",
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&done.stdout),
        String::from_utf8_lossy(&done.stderr)
    );
    eprintln!("{text}");
    assert!(matches!(done.status.code(), Some(0 | 1)), "{text}");
    cluster.shutdown().await;
    let r = surge::bundle::read_results(&only_bundle(&runs)).unwrap();
    (r.chaos.expect("chaos recorded"), text)
}

/// The names of clinic's pods.
async fn pod_names(pods: &Api<Pod>) -> BTreeSet<String> {
    pods.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_pod_of_a_deployment_is_replaced_by_the_real_replicaset_controller() {
    let _turn = engine_lock().await;
    let plane = ControlPlane::up();
    let admin = plane.admin().await;
    namespace(&admin, "clinic").await;
    // Each pod the controllers make is Ready 3 s after it is bound, as
    // the node double reports it.
    let start_up = Duration::from_secs(3);
    let _node = node::NodeDouble::start(admin.clone(), "clinic", start_up).await;
    deployment_ready(&admin).await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "clinic");
    let before = pod_names(&pods).await;

    let (chaos, text) = chaos_on_deployment(&plane, "kill-pod:oldest@2s", "12s").await;
    let kill = &chaos.events[0];
    assert_eq!(kill.outcome, surge::bundle::Outcome::Done, "{text}");
    assert!(
        before.contains(&kill.target[0]),
        "a pod that was there: {text}"
    );
    // The replacement is the real ReplicaSet controller's; surge's recovery
    // is its start-up as the node reported it (3 s) plus the controllers'
    // and the node's lag (its look every 100 ms).
    let ready_after = kill.ready_after_s.expect("replicas ready again");
    assert!(
        ready_after >= start_up.as_secs_f64() && ready_after <= start_up.as_secs_f64() + 2.0,
        "recovery {ready_after:.1} s for a start-up of {start_up:?}: {text}"
    );
    assert_eq!(chaos.pod_startup_s, vec![ready_after]);
    let after = pod_names(&pods).await;
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(!after.contains(&kill.target[0]), "the victim is gone");
    assert_eq!(after.difference(&before).count(), 1, "one replacement");
    // The ready count went 3 → 2 → 3 (the workload's watch).
    let counts: Vec<u32> = chaos.replica_counts.iter().map(|c| c.ready).collect();
    assert!(counts.windows(2).any(|w| w == [2, 3]), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_restart_goes_through_the_real_deployment_controller() {
    let _turn = engine_lock().await;
    let plane = ControlPlane::up();
    let admin = plane.admin().await;
    namespace(&admin, "clinic").await;
    let start_up = Duration::from_secs(1);
    let _node = node::NodeDouble::start(admin.clone(), "clinic", start_up).await;
    deployment_ready(&admin).await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "clinic");
    let before = pod_names(&pods).await;

    let (chaos, text) = chaos_on_deployment(&plane, "rollout-restart@2s", "15s").await;
    let restart = &chaos.events[0];
    assert_eq!(restart.outcome, surge::bundle::Outcome::Done, "{text}");
    assert_eq!(restart.target, ["deployment/hapi"], "{text}");
    // The controller replaced every pod, a surge pod at a time (maxSurge
    // 25% of 3 rounds up to 1), each Ready after its 1 s start-up: the
    // rollout is over when no old pod is Ready and three new ones are.
    let back = restart.ready_after_s.expect("the rollout finished");
    assert!(
        back >= 3.0 * start_up.as_secs_f64() && back <= 10.0,
        "rollout of 3 pods at 1 s each took {back:.1} s: {text}"
    );
    let after = pod_names(&pods).await;
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(
        after.is_disjoint(&before),
        "every pod replaced: {before:?} → {after:?}"
    );
}
