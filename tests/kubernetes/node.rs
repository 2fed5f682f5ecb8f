//! A node double, first part: it does the kubelet's bookkeeping for the
//! pods the real controllers make, without running them. It registers a
//! Node (and keeps its heartbeat), binds every pending pod of its namespace
//! to itself (the scheduler's part), reports each pod Running and Ready
//! `start_up` after it was bound (an address of its own, 10.244.0.x), and
//! finishes a pod's deletion as a kubelet does once its containers are gone.
//! No process runs: that is the next part (pods as processes in a network
//! namespace the test makes).

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The node's name.
pub const NODE: &str = "surge-node-0";

/// A running node double; it stops when dropped.
pub struct NodeDouble {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for NodeDouble {
    fn drop(&mut self) {
        self.stop.cancel();
        self.task.abort();
    }
}

impl NodeDouble {
    /// Registers the node and starts looking after `namespace`'s pods.
    pub async fn start(client: Client, namespace: &str, start_up: Duration) -> NodeDouble {
        let nodes: Api<Node> = Api::all(client.clone());
        let node: Node = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
        }))
        .unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
        heartbeat(&nodes).await;
        let stop = CancellationToken::new();
        let task = tokio::spawn(look_after(
            client,
            namespace.to_owned(),
            start_up,
            stop.clone(),
        ));
        NodeDouble { stop, task }
    }
}

/// The node's status: Ready, with room for pods, heartbeat now.
async fn heartbeat(nodes: &Api<Node>) {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = serde_json::json!({"status": {
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "lastHeartbeatTime": now, "lastTransitionTime": now
        }],
        "capacity": {"cpu": "16", "memory": "64Gi", "pods": "110"},
        "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"},
        "addresses": [{"type": "InternalIP", "address": "10.244.0.1"}]
    }});
    let _ = nodes
        .patch_status(NODE, &PatchParams::default(), &Patch::Merge(&status))
        .await;
}

async fn look_after(
    client: Client,
    namespace: String,
    start_up: Duration,
    stop: CancellationToken,
) {
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    // Each pod bound here: when, and the address it got.
    let mut bound: BTreeMap<String, (Instant, u8)> = BTreeMap::new();
    let mut next_address = 10u8;
    let mut last_beat = Instant::now();
    while !stop.is_cancelled() {
        if last_beat.elapsed() > Duration::from_secs(5) {
            heartbeat(&nodes).await;
            last_beat = Instant::now();
        }
        let Ok(list) = pods.list(&ListParams::default()).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        for pod in list.items {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let spec = pod.spec.as_ref();
            if pod.metadata.deletion_timestamp.is_some() {
                // Its containers are gone (none ran): the deletion ends.
                let _ = pods
                    .delete(&name, &DeleteParams::default().grace_period(0))
                    .await;
                bound.remove(&uid);
                continue;
            }
            match spec.and_then(|s| s.node_name.as_deref()) {
                None => {
                    let binding = serde_json::json!({
                        "apiVersion": "v1", "kind": "Binding",
                        "metadata": {"name": name},
                        "target": {"apiVersion": "v1", "kind": "Node", "name": NODE}
                    });
                    let bound_now = pods
                        .create_subresource::<serde_json::Value, serde_json::Value>(
                            "binding",
                            &name,
                            &PostParams::default(),
                            &binding,
                        )
                        .await
                        .is_ok();
                    if bound_now {
                        next_address = next_address.wrapping_add(1).max(10);
                        bound.insert(uid, (Instant::now(), next_address));
                        let _ = pods
                            .patch_status(
                                &name,
                                &PatchParams::default(),
                                &Patch::Merge(serde_json::json!({"status": {"phase": "Pending"}})),
                            )
                            .await;
                    }
                }
                Some(NODE) => {
                    let ready = pod
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| {
                            c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        });
                    let Some((since, address)) = bound.get(&uid).copied() else {
                        continue;
                    };
                    if !ready && since.elapsed() >= start_up {
                        let now = k8s_openapi::jiff::Timestamp::now().to_string();
                        let status = serde_json::json!({"status": {
                            "phase": "Running",
                            "podIP": format!("10.244.0.{address}"),
                            "podIPs": [{"ip": format!("10.244.0.{address}")}],
                            "hostIP": "10.244.0.1",
                            "startTime": now,
                            "conditions": [
                                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now}
                            ]
                        }});
                        let _ = pods
                            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                            .await;
                    }
                }
                Some(_) => {}
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stop.cancelled() => {}
        }
    }
}
