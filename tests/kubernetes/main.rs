//! surge's Kubernetes paths against a real control plane: etcd,
//! kube-apiserver and kube-controller-manager of a pinned release, built
//! from their Go modules and started on loopback by
//! `targets/kubernetes/cluster.sh` (RBAC on, the default controllers).
//!
//! Its own test binary, so `cargo test` runs it apart from the suite; the
//! tests take turns (one control plane at a time, each its own). Each test
//! runs in a network namespace of its own (`netns.rs`): everything it
//! starts lives there, pods on 10.244.0.x addresses, and nothing it sends
//! can leave.
//!
//! What each test shows (one file each):
//! - `manifests`: every manifest surge writes (`recommendations.yaml`'s
//!   HPA, from a real `surge calibrate`) is accepted by the real API server
//!   and reads back as written;
//! - `access`: `deploy/rbac.yaml` as shipped: surge with that
//!   ServiceAccount's token reaches the pods of its namespace, and outside
//!   it the API server answers 403 and surge refuses the run in one clear
//!   line before any load;
//! - `evict`: against the real disruption controller, both ways: a budget
//!   that allows no disruption holds it (429, tried again as drain does,
//!   reported as held, the pod stays); one that allows one lets it through;
//! - `deployment`: chaos on a Deployment the real controllers keep, its
//!   pods reference-cluster replicas run as processes by the node double
//!   (`node/`), traffic through the reference balancer following the
//!   Service's EndpointSlices. `kill-pod`: the ReplicaSet controller's
//!   replacement, surge's recovery its start-up plus the controllers' lag,
//!   exactly the victim's users' sessions dropped when sessions are per
//!   pod, none when shared. `rollout-restart`: with a readiness probe and
//!   a shutdown pause, no request fails and no session drops; without
//!   readiness the controllers call the rollout done before a new pod
//!   answers, requests fail and the replaced pods' users drop;
//!   An API server restart between a kill and its replacement's readiness
//!   (every watch ends; the balancer's resumes with 410 Expired and lists
//!   again) loses no pod event: surge still sees the replacement Ready and
//!   the same three drops;
//!   An API server that stops answering (SIGSTOP) before a kill does not
//!   hold the run's end: the kill is abandoned 5 s after the run, said so;
//! - `autoscaling`: the real HPA controller scales a Deployment 1 → 3 on
//!   the Pods metric surge's HPA names (`http_server_requests_per_second`),
//!   read through the aggregation layer from a custom metrics adapter
//!   (`surge sim metrics-adapter`, run as a pod behind an APIService) that
//!   answers from Prometheus (Debian's) scraping each pod;
//! - `cpu`: the real HPA controller scales on CPU utilization read
//!   through `metrics.k8s.io` from the real metrics-server, which scrapes
//!   the node double's kubelet endpoint (each pod process's CPU from
//!   `/proc`); metrics-server's figure for a pod matches the CPU its
//!   requests were made to use;
//! - `forecast`: `surge calibrate --ramp` on a clinic of pods that take
//!   20 s to start, its recommended HPA applied as written, the ramp run
//!   through the real controller: seconds over the SLO and peak pods within
//!   the forecast's range (± 15 s, ± 1 pod), and the advised minReplicas for
//!   the morning keeps the ramp inside the SLO;
//! - `jobs`: `deploy/sharded-test.yaml` as shipped, by the README's recipe:
//!   the real Job controller creates one pod per completion index, the
//!   node double runs each as a surge shard and the merge Job's pod as
//!   `surge merge --from --wait`, and the merged bundle's arrivals are the
//!   schedule's R·T exactly.

#[path = "../suite/common/mod.rs"]
mod common;
mod netns;
mod node;

mod access;
mod autoscaling;
mod clinic;
mod cpu;
mod deployment;
mod evict;
mod forecast;
mod jobs;
mod manifests;

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
            "cluster.sh up failed:\n{}",
            text(&out)
        );
        plane
    }

    fn kubeconfig(&self) -> &Path {
        Path::new(&self.env["SURGE_KUBECONFIG"])
    }

    /// Stops the API server and starts it again (`cluster.sh
    /// restart-apiserver`): every watch it served ends.
    fn restart_apiserver(&self) {
        let out = Command::new("timeout")
            .arg("120")
            .arg(script())
            .arg("restart-apiserver")
            .arg(self.dir.path())
            .output()
            .expect("cluster.sh runs");
        assert!(
            out.status.success(),
            "cluster.sh restart-apiserver failed:\n{}",
            text(&out)
        );
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

/// The names of the pods `pods` lists with label selector `labels`
/// (every pod for "").
async fn pod_names(pods: &Api<Pod>, labels: &str) -> BTreeSet<String> {
    let params = match labels {
        "" => ListParams::default(),
        labels => ListParams::default().labels(labels),
    };
    pods.list(&params)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
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
