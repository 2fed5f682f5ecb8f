//! A node double: the kubelet's part for the pods the real controllers
//! make, with each pod a real process. It registers a Node (and keeps its
//! heartbeat), binds every pending pod of its namespace to itself (the
//! scheduler's part), gives it an address of its own (10.244.0.x on the
//! test's network namespace's `lo`), starts its container as a process
//! (`launch.rs`), and reports its status as a kubelet does: Running once
//! started, Ready from its readiness probe (an HTTP GET, every
//! `periodSeconds`), restarts counted, Succeeded or Failed from the exit
//! code when the pod is not to be restarted. A deleted pod is stopped as a
//! kubelet stops it: SIGTERM, SIGKILL after its grace period (at once for a
//! grace period of 0), then its deletion is finished. The kubelet's
//! resource metrics endpoint (`kubelet.rs`) reports each pod process's real
//! CPU and memory to metrics-server.
//!
//! A test double beside the tests, never in the harness: no container
//! runtime, no cgroups, one image family (surge's).

mod kubelet;
mod launch;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
pub use launch::Images;
use launch::Launch;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// The node's name.
pub const NODE: &str = "surge-node-0";

/// How long a container that exited waits before it is started again
/// (a kubelet's first back-off is 10 s; a test has no time for that).
const RESTART_BACKOFF: Duration = Duration::from_secs(1);

/// A running node double; its processes are killed when it is dropped.
pub struct NodeDouble {
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    endpoint: tokio::task::JoinHandle<()>,
    dir: PathBuf,
}

impl Drop for NodeDouble {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            // Dropping the task drops its children, each killed on drop.
            task.abort();
        }
        self.endpoint.abort();
    }
}

impl NodeDouble {
    /// Registers the node and starts looking after `namespace`'s pods,
    /// keeping volumes and logs under `dir`.
    pub async fn start(client: Client, namespace: &str, images: Images, dir: &Path) -> NodeDouble {
        let nodes: Api<Node> = Api::all(client.clone());
        let node: Node = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
        }))
        .unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
        heartbeat(&nodes).await;
        let stop = CancellationToken::new();
        let residents = kubelet::Residents::default();
        let endpoint = kubelet::serve(residents.clone(), dir)
            .await
            .expect("the kubelet endpoint starts");
        let kubelet = Kubelet {
            residents,
            pods: Api::namespaced(client.clone(), namespace),
            client,
            images,
            dir: dir.to_path_buf(),
            running: BTreeMap::new(),
            next_address: 10,
        };
        let task = tokio::spawn(kubelet.look_after(nodes, stop.clone()));
        NodeDouble {
            stop,
            task: Some(task),
            endpoint,
            dir: dir.to_path_buf(),
        }
    }

    /// What pod `name`'s process wrote so far (`kubectl logs`).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join("logs").join(format!("{name}.log")))
            .unwrap_or_default()
    }
}

/// The node's status: Ready, with room for pods, heartbeat now.
async fn heartbeat(nodes: &Api<Node>) {
    let now = now();
    let status = serde_json::json!({"status": {
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "lastHeartbeatTime": now, "lastTransitionTime": now
        }],
        "capacity": {"cpu": "16", "memory": "64Gi", "pods": "110"},
        "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"},
        "addresses": [{"type": "InternalIP", "address": kubelet::ADDRESS.to_string()}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet::PORT}}
    }});
    let _ = nodes
        .patch_status(NODE, &PatchParams::default(), &Patch::Merge(&status))
        .await;
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// A readiness probe: GET `path` on the pod's `port` every `period`.
#[derive(Debug, Clone)]
struct Probe {
    path: String,
    port: u16,
    period: Duration,
}

/// A pod this node started.
struct Running {
    name: String,
    namespace: String,
    container: String,
    /// Where its output goes, a file per pod.
    logs: PathBuf,
    address: Ipv4Addr,
    launch: Launch,
    probe: Option<Probe>,
    restart: RestartPolicy,
    child: Option<Child>,
    /// When the process (last) started.
    started: Instant,
    /// The same, seconds since the epoch (the container's start time).
    started_unix: f64,
    /// When the node took the pod on (its `startTime`).
    start_time: String,
    /// When Ready last changed (its condition's `lastTransitionTime`: the
    /// HPA's CPU rules read it).
    ready_since: String,
    /// When the process ended and with which code, until it is started again.
    exited: Option<(Instant, i32)>,
    restarts: i32,
    ready: bool,
    last_probe: Option<Instant>,
    /// When SIGTERM went, for a pod being deleted.
    terminating: Option<Instant>,
    /// The status last written, so it is written only when it changes.
    reported: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

struct Kubelet {
    /// The pod processes the kubelet endpoint reports.
    residents: kubelet::Residents,
    client: Client,
    pods: Api<Pod>,
    images: Images,
    dir: PathBuf,
    /// By pod uid.
    running: BTreeMap<String, Running>,
    next_address: u8,
}

impl Kubelet {
    async fn look_after(mut self, nodes: Api<Node>, stop: CancellationToken) {
        let mut last_beat = Instant::now();
        while !stop.is_cancelled() {
            if last_beat.elapsed() > Duration::from_secs(5) {
                heartbeat(&nodes).await;
                last_beat = Instant::now();
            }
            if let Ok(list) = self.pods.list(&ListParams::default()).await {
                for pod in list.items {
                    self.look_at(pod).await;
                }
            }
            self.publish();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stop.cancelled() => {}
            }
        }
    }

    async fn look_at(&mut self, pod: Pod) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() {
            let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(30);
            self.stop_pod(&uid, &name, Duration::from_secs(grace.max(0) as u64))
                .await;
            return;
        }
        match pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            None => self.bind(&pod, &name, uid).await,
            Some(NODE) => {
                if let Some(running) = self.running.get_mut(&uid) {
                    running.tend().await;
                    let status = running.status();
                    if running.reported.as_ref() != Some(&status) {
                        let written = self
                            .pods
                            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                            .await;
                        if written.is_ok() {
                            running.reported = Some(status);
                        }
                    }
                }
            }
            Some(_) => {}
        }
    }

    /// The running processes, for the kubelet endpoint.
    fn publish(&self) {
        let now: BTreeMap<String, kubelet::Resident> = self
            .running
            .iter()
            .filter_map(|(uid, r)| {
                let pid = r.child.as_ref()?.id()?;
                Some((
                    uid.clone(),
                    kubelet::Resident {
                        namespace: r.namespace.clone(),
                        pod: r.name.clone(),
                        container: r.container.clone(),
                        pid,
                        started_unix: r.started_unix,
                    },
                ))
            })
            .collect();
        *self.residents.lock().unwrap() = now;
    }

    /// The scheduler's part, then the kubelet's: bound here, an address,
    /// the container started.
    async fn bind(&mut self, pod: &Pod, name: &str, uid: String) {
        let binding = serde_json::json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": NODE}
        });
        let bound = self
            .pods
            .create_subresource::<serde_json::Value, serde_json::Value>(
                "binding",
                name,
                &PostParams::default(),
                &binding,
            )
            .await;
        if bound.is_err() {
            return;
        }
        // The next address no running pod holds, round from .10 to .250.
        let in_use: std::collections::BTreeSet<Ipv4Addr> =
            self.running.values().map(|r| r.address).collect();
        let last = u32::from(self.next_address.max(10));
        let Some(address) = (1..=241u32)
            .map(|step| 10 + (last - 10 + step) % 241)
            .map(|next| Ipv4Addr::new(10, 244, 0, next as u8))
            .find(|a| !in_use.contains(a))
        else {
            return;
        };
        self.next_address = address.octets()[3];
        let started = match self.start_container(pod, name, &uid, address).await {
            Ok(running) => running,
            Err(why) => {
                // As a kubelet reports a container it cannot create.
                let status = serde_json::json!({"status": {"phase": "Failed", "reason": "CreateContainerError", "message": why}});
                let _ = self
                    .pods
                    .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
                    .await;
                return;
            }
        };
        self.running.insert(uid, started);
    }

    async fn start_container(
        &self,
        pod: &Pod,
        name: &str,
        uid: &str,
        address: Ipv4Addr,
    ) -> Result<Running, String> {
        let pod_dir = self.dir.join("pods").join(uid);
        let launch = launch::prepare(
            &self.client,
            pod,
            &address.to_string(),
            &self.images,
            &pod_dir,
            &self.dir.join("claims"),
        )
        .await?;
        crate::netns::add_address(address)?;
        let spec = pod.spec.as_ref().ok_or("no spec")?;
        let restart = match spec.restart_policy.as_deref() {
            Some("Never") => RestartPolicy::Never,
            Some("OnFailure") => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        };
        let probe = spec.containers[0].readiness_probe.as_ref().and_then(|p| {
            let get = p.http_get.as_ref()?;
            let port = match &get.port {
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(p) => *p as u16,
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(_) => {
                    return None
                }
            };
            Some(Probe {
                path: get.path.clone().unwrap_or_else(|| "/".into()),
                port,
                period: Duration::from_secs(p.period_seconds.unwrap_or(10).max(1) as u64),
            })
        });
        let mut running = Running {
            name: name.to_owned(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            container: spec.containers[0].name.clone(),
            logs: self.dir.join("logs"),
            address,
            launch,
            probe,
            restart,
            child: None,
            started: Instant::now(),
            started_unix: 0.0,
            start_time: now(),
            ready_since: now(),
            exited: None,
            restarts: 0,
            ready: false,
            last_probe: None,
            terminating: None,
            reported: None,
        };
        running.spawn()?;
        Ok(running)
    }

    /// SIGTERM, SIGKILL once `grace` has passed, and once the process is
    /// gone the deletion is finished and the address given back.
    async fn stop_pod(&mut self, uid: &str, name: &str, grace: Duration) {
        if let Some(running) = self.running.get_mut(uid) {
            if let Some(child) = running.child.as_mut() {
                let pid = child.id();
                match running.terminating {
                    None if !grace.is_zero() => {
                        if let Some(pid) = pid {
                            // SAFETY: kill(2) on a pid this node started and has not reaped.
                            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
                        }
                        running.terminating = Some(Instant::now());
                    }
                    Some(since) if since.elapsed() < grace => {}
                    _ => {
                        let _ = child.start_kill();
                    }
                }
                if let Ok(Some(_)) | Err(_) = child.try_wait() {
                    running.child = None;
                }
            }
            if running.child.is_some() {
                return;
            }
            let _ = crate::netns::remove_address(running.address);
            self.running.remove(uid);
        }
        let _ = self
            .pods
            .delete(name, &DeleteParams::default().grace_period(0))
            .await;
    }
}

impl Running {
    fn spawn(&mut self) -> Result<(), String> {
        std::fs::create_dir_all(&self.logs).map_err(|e| e.to_string())?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{}.log", self.name)))
            .map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&self.launch.workdir).map_err(|e| e.to_string())?;
        let mut command = Command::new(&self.launch.program);
        command
            .args(&self.launch.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.launch.env.iter().cloned())
            .current_dir(&self.launch.workdir)
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(err)
            .kill_on_drop(true);
        // The pod dies with the test even if nothing drops it.
        crate::netns::dies_with_test(&mut command);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.launch.program.display()))?;
        self.child = Some(child);
        self.started = Instant::now();
        self.started_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        self.exited = None;
        self.set_ready(false);
        self.last_probe = None;
        Ok(())
    }

    /// Notices an exit, restarts as the policy says, probes readiness.
    async fn tend(&mut self) {
        if self.terminating.is_some() {
            return;
        }
        if let Some(child) = self.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                self.exited = Some((Instant::now(), status.code().unwrap_or(137)));
                self.child = None;
                self.set_ready(false);
            }
        }
        if let Some((when, code)) = self.exited {
            let again = match self.restart {
                RestartPolicy::Always => true,
                RestartPolicy::OnFailure => code != 0,
                RestartPolicy::Never => false,
            };
            if again && when.elapsed() >= RESTART_BACKOFF {
                self.restarts += 1;
                let _ = self.spawn();
            }
            return;
        }
        match &self.probe {
            None => self.set_ready(true),
            Some(probe) => {
                if self
                    .last_probe
                    .is_none_or(|at| at.elapsed() >= probe.period)
                {
                    self.last_probe = Some(Instant::now());
                    let ready = probe_once(self.address, probe).await;
                    self.set_ready(ready);
                }
            }
        }
    }

    fn set_ready(&mut self, ready: bool) {
        if ready != self.ready {
            self.ready = ready;
            self.ready_since = now();
        }
    }

    /// The pod's status as a kubelet writes it.
    fn status(&self) -> serde_json::Value {
        let ip = self.address.to_string();
        let condition = |kind: &str, yes: bool, since: &str| serde_json::json!({"type": kind, "status": if yes { "True" } else { "False" }, "lastTransitionTime": since});
        let (phase, state) = match self.exited {
            Some((_, code)) if self.child.is_none() => {
                let done = match self.restart {
                    RestartPolicy::Always => false,
                    RestartPolicy::OnFailure => code == 0,
                    RestartPolicy::Never => true,
                };
                let phase = match (done, code) {
                    (false, _) => "Running",
                    (true, 0) => "Succeeded",
                    (true, _) => "Failed",
                };
                let reason = if code == 0 { "Completed" } else { "Error" };
                (
                    phase,
                    serde_json::json!({"terminated": {"exitCode": code, "reason": reason}}),
                )
            }
            _ => (
                "Running",
                serde_json::json!({"running": {"startedAt": self.start_time}}),
            ),
        };
        serde_json::json!({"status": {
            "phase": phase,
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "hostIP": kubelet::ADDRESS.to_string(),
            "startTime": self.start_time,
            "conditions": [
                condition("PodScheduled", true, &self.start_time),
                condition("Initialized", true, &self.start_time),
                condition("ContainersReady", self.ready, &self.ready_since),
                condition("Ready", self.ready, &self.ready_since),
            ],
            "containerStatuses": [{
                "name": self.container, "image": "surge", "imageID": "",
                "ready": self.ready, "restartCount": self.restarts,
                "started": self.child.is_some(), "state": state
            }]
        }})
    }
}

/// One readiness probe: an answer below 400 within a second is ready.
async fn probe_once(address: Ipv4Addr, probe: &Probe) -> bool {
    let url = format!("http://{address}:{}{}", probe.port, probe.path);
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(1))
        .build();
    match client {
        Ok(client) => client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() < 400),
        Err(_) => false,
    }
}
