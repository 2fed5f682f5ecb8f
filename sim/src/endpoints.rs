//! The reference balancer in front of pods (`surge sim balance`): instead of
//! replicas it starts itself, it follows a Kubernetes Service's
//! EndpointSlices, as an ingress controller does. A pod takes traffic once
//! its endpoint is ready; a terminating pod's endpoint is not ready, so it
//! gets no new requests (those in flight finish). Sticky cookies name the
//! pod, so a client stays on its pod while that pod serves.

use crate::balancer::{self, Backend, Backends, Balancing};
use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::Api;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

/// `surge sim balance`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct BalanceOptions {
    /// Kubeconfig to reach the API server with.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// The Service's namespace.
    #[arg(long)]
    pub namespace: String,
    /// The Service whose EndpointSlices are followed.
    #[arg(long)]
    pub service: String,
    /// Which of the Service's ports to send to (its name); the first when not given.
    #[arg(long)]
    pub port_name: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one; the chosen one is printed).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// How requests are spread.
    #[arg(long, value_enum, default_value = "sticky")]
    pub balancing: Balancing,
    /// Sticky cookie name.
    #[arg(long, default_value = "openmrs_session")]
    pub sticky_cookie: String,
}

/// The pods that take new requests, from a Service's EndpointSlices: each
/// ready endpoint with the pod it names (or its address when it names none)
/// and the chosen port. Sorted by name, so round-robin is stable.
pub fn ready_backends(slices: &[Arc<EndpointSlice>], port_name: Option<&str>) -> Vec<Backend> {
    let mut ready = BTreeMap::new();
    for slice in slices {
        let port = slice.ports.iter().flatten().find(|p| match port_name {
            Some(name) => p.name.as_deref() == Some(name),
            None => true,
        });
        let Some(port) = port
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for endpoint in &slice.endpoints {
            // Kubernetes: a nil `ready` is to be read as ready.
            let is_ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            let address = endpoint
                .addresses
                .first()
                .and_then(|a| a.parse::<IpAddr>().ok());
            let (true, Some(address)) = (is_ready, address) else {
                continue;
            };
            let name = endpoint
                .target_ref
                .as_ref()
                .and_then(|t| t.name.clone())
                .unwrap_or_else(|| address.to_string());
            ready.insert(
                name.clone(),
                Backend {
                    name,
                    address: Some(SocketAddr::new(address, port)),
                    pid: None,
                    since: None,
                },
            );
        }
    }
    ready.into_values().collect()
}

/// Serves until the process is stopped, following the Service's endpoints.
pub async fn serve(options: BalanceOptions) -> anyhow::Result<()> {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&options.kubeconfig)
            .with_context(|| format!("cannot read {}", options.kubeconfig.display()))?,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    let client = kube::Client::try_from(config)?;
    let slices: Api<EndpointSlice> = Api::namespaced(client, &options.namespace);
    let selector = format!("kubernetes.io/service-name={}", options.service);
    let (store, writer) = reflector::store();
    let mut changes = watcher(slices, watcher::Config::default().labels(&selector))
        .default_backoff()
        // Every event, deletes included: a slice that goes takes its pods
        // out of the balancer at once.
        .reflect(writer)
        .boxed();
    let backends = Arc::new(Backends::default());
    let follow = {
        let backends = Arc::clone(&backends);
        let port_name = options.port_name.clone();
        async move {
            loop {
                match changes.next().await {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => tracing::warn!("endpoint watch: {e}"),
                    None => return,
                }
                *backends.0.write().unwrap() = ready_backends(&store.state(), port_name.as_deref());
            }
        }
    };
    let listener = tokio::net::TcpListener::bind((options.host, options.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", options.host, options.port))?;
    println!("LISTENING {}", listener.local_addr()?.port());
    let app = balancer::router(backends, options.balancing, options.sticky_cookie);
    tokio::select! {
        served = axum::serve(listener, app) => served?,
        () = follow => anyhow::bail!("the endpoint watch ended"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(json: serde_json::Value) -> Arc<EndpointSlice> {
        Arc::new(serde_json::from_value(json).unwrap())
    }

    #[test]
    fn only_ready_endpoints_take_traffic_named_by_their_pod() {
        let slices = [slice(serde_json::json!({
            "metadata": {"name": "hapi-abc"},
            "addressType": "IPv4",
            "ports": [{"name": "metrics", "port": 9090}, {"name": "http", "port": 8080}],
            "endpoints": [
                {"addresses": ["10.244.0.12"], "conditions": {"ready": true},
                 "targetRef": {"kind": "Pod", "name": "hapi-2"}},
                {"addresses": ["10.244.0.11"], "conditions": {"ready": false, "terminating": true},
                 "targetRef": {"kind": "Pod", "name": "hapi-1"}},
                {"addresses": ["10.244.0.13"], "targetRef": {"kind": "Pod", "name": "hapi-0"}}
            ]
        }))];
        let backends = ready_backends(&slices, Some("http"));
        let seen: Vec<(String, Option<SocketAddr>)> =
            backends.into_iter().map(|b| (b.name, b.address)).collect();
        assert_eq!(
            seen,
            [
                (
                    "hapi-0".to_owned(),
                    Some("10.244.0.13:8080".parse().unwrap())
                ),
                (
                    "hapi-2".to_owned(),
                    Some("10.244.0.12:8080".parse().unwrap())
                ),
            ]
        );
        // Without a port name, the first port; a named port it lacks, nothing.
        assert_eq!(
            ready_backends(&slices, None)[0].address,
            Some("10.244.0.13:9090".parse().unwrap())
        );
        assert!(ready_backends(&slices, Some("grpc")).is_empty());
    }
}
