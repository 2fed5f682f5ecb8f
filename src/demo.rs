//! The reference cluster inside the binary: `surge demo` (the main job
//! against a cluster surge starts for itself) and `surge sim up`. The
//! harness library never imports the cluster, which is a test double; this
//! module is where the two meet, and where the local chaos backend is given
//! the cluster's replica processes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use surge::chaos::local::{LocalReplica, LocalReplicas};
use surge::run::{self, RunError, RunReport, RunRequest};
use surge::scenario::LoadOverride;
use surge_sim::balancer::Backends;
use surge_sim::{Cluster, ClusterOptions};

/// The cluster's supervisor, as the local chaos backend sees it.
#[derive(Debug)]
struct SimReplicas(Arc<Backends>);

impl LocalReplicas for SimReplicas {
    fn list(&self) -> Vec<LocalReplica> {
        self.0
            .list()
            .into_iter()
            .map(|b| LocalReplica {
                name: b.name,
                url: b.address.map(|a| format!("http://{a}")),
                pid: b.pid,
                since: b.since,
            })
            .collect()
    }
}

fn this_exe() -> Result<PathBuf, String> {
    std::env::current_exe()
        .map_err(|e| format!("cannot find the surge binary to start replicas: {e}"))
}

/// Starts the reference cluster, runs `scenario` against it (with `chaos`
/// on its replica processes) and stops it. The outer error: the cluster
/// could not start.
pub async fn demo(
    scenario: PathBuf,
    duration: Option<Duration>,
    out: PathBuf,
    chaos: Vec<String>,
) -> Result<Result<RunReport, RunError>, String> {
    let options = ClusterOptions {
        port: 0,
        ..Default::default()
    };
    let cluster = Cluster::start(this_exe()?, options)
        .await
        .map_err(|e| format!("cannot start the reference cluster: {e:#}"))?;
    println!(
        "reference cluster: balancer {} with {} replicas (sticky sessions, shared attachments)",
        cluster.url,
        cluster.replicas().len()
    );
    // Read uploads back straight from each replica too, for exact figures.
    // With chaos, replicas come back on new ports: follow them instead.
    let replicas = if chaos.is_empty() {
        cluster
            .replicas()
            .into_iter()
            .filter_map(|(_, url, _)| url)
            .collect()
    } else {
        Vec::new()
    };
    let chaos = surge::chaos::setup::ChaosRequest {
        discover_replicas: !chaos.is_empty(),
        specs: chaos,
        backend: Some(surge::chaos::BackendKind::Local),
        local: Some(Arc::new(SimReplicas(cluster.backends()))),
        ..Default::default()
    };
    let request = RunRequest {
        chaos,
        scenario,
        target: Some(cluster.url.clone()),
        replicas,
        load: LoadOverride {
            duration,
            ..Default::default()
        },
        out_dir: out,
        progress: true,
        exit_on_second_signal: true,
        ..Default::default()
    };
    let outcome = run::run(&request).await;
    cluster.shutdown().await;
    Ok(outcome)
}

/// `surge sim up`: the cluster until Ctrl-C or SIGTERM.
pub async fn sim_up(options: ClusterOptions) -> Result<(), String> {
    let cluster = Cluster::start(this_exe()?, options)
        .await
        .map_err(|e| format!("{e:#}"))?;
    println!("balancer: {}", cluster.url);
    for (name, url, pid) in cluster.replicas() {
        println!(
            "replica {name}: {} (pid {})",
            url.unwrap_or_default(),
            pid.map(|p| p.to_string()).unwrap_or_default()
        );
    }
    println!("Ctrl-C to stop");
    surge::engine::signals::ctrl_c_or_sigterm().await;
    cluster.shutdown().await;
    Ok(())
}
