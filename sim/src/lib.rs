//! The reference clinical cluster (`surge sim`): a test double for a user's
//! OpenMRS / HAPI FHIR deployment, on loopback, needing nothing installed.
//!
//! Replicas are separate OS processes of this same binary (so a kill is a
//! real kill), supervised like a ReplicaSet: one that exits is restarted
//! after a start-up delay. A balancer in front spreads requests round-robin
//! or sticky by cookie. Each replica has a database pool of known size and
//! hold time, so its true capacity is known.
//!
//! This crate is a test double, not part of the harness: the `surge`
//! binary starts it for `surge demo` and `surge sim`, and surge's tests run
//! against it; the harness library never imports it.
#![deny(missing_docs)]

pub mod balancer;
pub mod custom_metrics;
pub mod data;
pub mod database;
pub mod endpoints;
pub mod failover;
pub mod replica;
pub mod sessions;
pub mod tls;

use anyhow::{bail, Context};
use balancer::{Backend, Backends, Balancing};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

/// A duration flag: `"500ms"`, `"30s"`, `"2m"`, at most a day (a reference
/// cluster's delays and lifetimes are short by nature).
pub fn duration_flag(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        format!("bad duration {text:?} ({e}): expected e.g. \"500ms\", \"30s\" or \"2m\"")
    })?;
    check_range("duration (s)", d.as_secs(), 0, 86_400)?;
    Ok(d)
}

/// `value` when it lies in `lo..=hi`, else a message naming the flag and the range.
pub fn check_range<T: PartialOrd + std::fmt::Display>(
    what: &str,
    value: T,
    lo: T,
    hi: T,
) -> Result<T, String> {
    if value >= lo && value <= hi {
        Ok(value)
    } else {
        Err(format!(
            "{what} {value} is out of range: expected {lo} to {hi}"
        ))
    }
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub(crate) fn request_cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
}

/// Where replicas keep attachments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachmentStore {
    /// Each replica its own folder (OpenMRS's default local storage: the bug).
    PerReplica,
    /// One folder for all (like S3 storage).
    Shared,
    /// Each replica its own folder, copied to the others after `--replication-delay`.
    Replicated,
}

impl ClusterOptions {
    /// Every number in its range (the flags are the cluster's input too).
    pub fn check(&self) -> Result<(), String> {
        use crate::check_range;
        let s = &self.service;
        check_range("--replicas", self.replicas, 1, 32)?;
        if let Some(base) = self.replica_port_base {
            check_range(
                "--replica-port-base",
                base as usize,
                1024,
                65535 - self.replicas,
            )?;
        }
        check_range("--restart-delay (s)", self.restart_delay.as_secs(), 0, 600)?;
        check_range("--pool", s.pool, 1, 10_000)?;
        check_range("--hold (ms)", s.hold.as_millis(), 0, 60_000)?;
        check_range(
            "--checkout-timeout (s)",
            s.checkout_timeout.as_secs(),
            0,
            3600,
        )?;
        if let Some(limit) = s.db_limit {
            check_range("--db-limit", limit, 1, 10_000)?;
        }
        check_range("--token-ttl (s)", s.token_ttl.as_secs(), 1, 86_400)?;
        if let Some(limit) = s.token_limit {
            check_range("--token-limit", limit, 0, 1_000_000_000)?;
        }
        check_range(
            "--replication-delay (s)",
            s.replication_delay.as_secs(),
            0,
            3600,
        )?;
        for (_, factor) in &s.slow {
            check_range("--slow factor", *factor, 1.0, 1000.0)?;
        }
        check_range(
            "--read-replica-lag (ms)",
            s.read_replica_lag.as_millis(),
            0,
            3_600_000,
        )?;
        check_range(
            "--failover-loses (ms)",
            s.failover_loses.as_millis(),
            0,
            3_600_000,
        )?;
        check_range("--galera nodes", s.galera.len(), 0, 16)?;
        let file_store_faults = !s.read_replica_lag.is_zero() || !s.failover_loses.is_zero();
        if !s.galera.is_empty() && file_store_faults {
            return Err("--galera keeps the resources in Galera: --read-replica-lag and --failover-loses are the file store's faults; give one or the other".into());
        }
        check_range(
            "--failover-down (ms)",
            s.failover_down.as_millis(),
            0,
            3_600_000,
        )?;
        Ok(())
    }
}

/// How the cluster is built.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterOptions {
    /// Number of replicas.
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
    /// Balancer port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// How the balancer spreads requests.
    #[arg(long, value_enum, default_value = "sticky")]
    pub balancing: Balancing,
    /// Sticky cookie name.
    #[arg(long, default_value = "openmrs_session")]
    pub sticky_cookie: String,
    /// Give replica i the port BASE+i (restarts reuse it), so another balancer
    /// such as HAProxy can be pointed at them; free ports when not given.
    #[arg(long)]
    pub replica_port_base: Option<u16>,
    /// Start-up delay before a dead replica is restarted.
    #[arg(long, default_value = "2s", value_parser = crate::duration_flag)]
    pub restart_delay: Duration,
    /// Where attachments are kept.
    #[arg(long, value_enum, default_value = "shared")]
    pub attachments: AttachmentStore,
    /// Folder for the cluster's data (a temporary one if not given).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Each replica appends the shape of every request it receives to
    /// `capture-<replica>.jsonl` in this folder (no credentials).
    #[arg(long)]
    pub capture_dir: Option<PathBuf>,
    /// Pool, credentials, tokens of every replica.
    #[command(flatten)]
    pub service: replica::ServiceOptions,
}

impl Default for ClusterOptions {
    /// The command line's defaults (one source of truth).
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            cluster: ClusterOptions,
        }
        <Defaults as clap::Parser>::parse_from(["surge"]).cluster
    }
}

/// A running cluster. Dropping it stops the replicas.
pub struct Cluster {
    /// The balancer's base URL.
    pub url: String,
    backends: Arc<Backends>,
    stop: CancellationToken,
    supervisors: Vec<tokio::task::JoinHandle<()>>,
    _data: Option<tempfile::TempDir>,
}

impl Cluster {
    /// Starts replicas from `exe` (this binary) and the balancer; returns once all answer.
    pub async fn start(exe: PathBuf, options: ClusterOptions) -> anyhow::Result<Cluster> {
        options.check().map_err(|e| anyhow::anyhow!(e))?;
        let (data_dir, temp) = match &options.data_dir {
            Some(d) => (d.clone(), None),
            None => {
                let t = tempfile::Builder::new().prefix("surge-sim-").tempdir()?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let names: Vec<String> = (1..=options.replicas).map(|i| format!("r{i}")).collect();
        let backends = Arc::new(Backends(std::sync::RwLock::new(
            names
                .iter()
                .map(|n| Backend {
                    name: n.clone(),
                    address: None,
                    pid: None,
                    since: None,
                })
                .collect(),
        )));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{}", options.port))?;
        let url = format!("http://{}", listener.local_addr()?);
        let stop = CancellationToken::new();
        let app = balancer::router(
            Arc::clone(&backends),
            options.balancing,
            options.sticky_cookie.clone(),
        );
        let serve_stop = stop.clone();
        let mut supervisors = vec![tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { serve_stop.cancelled().await })
                .await;
        })];
        for (i, name) in names.iter().enumerate() {
            let own = |n: &str| data_dir.join(n).join("attachments");
            let attachments = match options.attachments {
                AttachmentStore::Shared => data_dir.join("attachments"),
                AttachmentStore::PerReplica | AttachmentStore::Replicated => own(name),
            };
            let port = options.replica_port_base.map_or(0, |base| {
                base + names.iter().position(|n| n == name).unwrap_or(0) as u16
            });
            let mut args = vec![
                "sim".to_owned(),
                "replica".to_owned(),
                format!("--name={name}"),
                format!("--port={port}"),
                format!("--attachments-dir={}", attachments.display()),
                format!("--shared-dir={}", data_dir.join("shared").display()),
            ];
            if let Some(dir) = &options.capture_dir {
                args.push(format!(
                    "--capture-file={}",
                    dir.join(format!("capture-{name}.jsonl")).display()
                ));
            }
            if options.attachments == AttachmentStore::Replicated {
                args.extend(
                    names
                        .iter()
                        .filter(|n| *n != name)
                        .map(|n| format!("--replicate-to={}", own(n).display())),
                );
            }
            if options.service.db_limit.is_some() {
                args.push(format!("--db-dir={}", data_dir.join("database").display()));
            }
            if options.service.sessions == sessions::SessionStoreKind::Shared {
                args.push(format!(
                    "--sessions-dir={}",
                    data_dir.join("sessions").display()
                ));
            }
            // Replica i writes through Galera node i first.
            let mut service = options.service.clone();
            let nodes = service.galera.len().max(1);
            service.galera.rotate_left(i % nodes);
            args.extend(service.to_args());
            supervisors.push(tokio::spawn(supervise(
                exe.clone(),
                args,
                name.clone(),
                Arc::clone(&backends),
                options.restart_delay,
                stop.clone(),
            )));
        }
        let cluster = Cluster {
            url,
            backends,
            stop,
            supervisors,
            _data: temp,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while cluster.backends.list().iter().any(|b| b.address.is_none()) {
            if Instant::now() > deadline {
                bail!("replicas did not start within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(cluster)
    }

    /// Replicas as they are now: name, direct URL (None while down), pid.
    pub fn replicas(&self) -> Vec<(String, Option<String>, Option<u32>)> {
        self.backends
            .list()
            .into_iter()
            .map(|b| (b.name, b.address.map(|a| format!("http://{a}")), b.pid))
            .collect()
    }

    /// The supervisor's live replica list (for the local chaos backend).
    pub fn backends(&self) -> Arc<Backends> {
        Arc::clone(&self.backends)
    }

    /// Stops the balancer and every replica.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        for s in std::mem::take(&mut self.supervisors) {
            let _ = s.await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Keeps one replica process running until `stop`.
async fn supervise(
    exe: PathBuf,
    args: Vec<String>,
    name: String,
    backends: Arc<Backends>,
    restart_delay: Duration,
    stop: CancellationToken,
) {
    loop {
        let mut command = tokio::process::Command::new(&exe);
        command
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe, and the closure touches nothing
        // of the parent's. A replica dies with the process that started it,
        // even one that ends without dropping it (a forced exit, a crash).
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("cannot start replica {name}: {e}");
                tokio::select! { _ = tokio::time::sleep(restart_delay) => continue, _ = stop.cancelled() => return }
            }
        };
        let pid = child.id();
        if let Some(stdout) = child.stdout.take() {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            let port = tokio::select! {
                line = lines.next_line() => line.ok().flatten().and_then(|l| l.strip_prefix("LISTENING ").and_then(|p| p.trim().parse::<u16>().ok())),
                _ = stop.cancelled() => None,
            };
            if port.is_some() {
                backends.set(&name, port, pid);
            }
            // Keep draining stdout so the replica never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        }
        tokio::select! {
            status = child.wait() => {
                backends.set(&name, None, None);
                tracing::warn!("replica {name} exited ({status:?}); restarting in {restart_delay:?}");
            }
            _ = stop.cancelled() => {
                backends.set(&name, None, None);
                let _ = child.kill().await;
                return;
            }
        }
        tokio::select! { _ = tokio::time::sleep(restart_delay) => {}, _ = stop.cancelled() => return }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(service: replica::ServiceOptions) -> String {
        ClusterOptions {
            service,
            ..Default::default()
        }
        .check()
        .expect_err("refused")
    }

    #[test]
    fn database_faults_out_of_range_or_together_are_refused_by_name() {
        use replica::ServiceOptions;
        let hour_and_more = Duration::from_secs(3601);
        let message = refused(ServiceOptions {
            failover_loses: hour_and_more,
            ..Default::default()
        });
        assert!(
            message.starts_with("--failover-loses (ms) 3601000 is out of range"),
            "{message}"
        );
        let message = refused(ServiceOptions {
            failover_down: hour_and_more,
            ..Default::default()
        });
        assert!(message.starts_with("--failover-down (ms)"), "{message}");
        let message = refused(ServiceOptions {
            read_replica_lag: hour_and_more,
            ..Default::default()
        });
        assert!(message.starts_with("--read-replica-lag (ms)"), "{message}");
        let galera = vec!["mysql://sim@127.0.0.1:13306/clinic".to_owned()];
        let message = refused(ServiceOptions {
            galera: galera.clone(),
            read_replica_lag: Duration::from_millis(600),
            ..Default::default()
        });
        assert!(message.starts_with("--galera keeps"), "{message}");
        let message = refused(ServiceOptions {
            galera: vec![galera[0].clone(); 17],
            ..Default::default()
        });
        assert!(
            message.starts_with("--galera nodes 17 is out of range"),
            "{message}"
        );
        let fine = ClusterOptions {
            service: ServiceOptions {
                galera,
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(fine.check(), Ok(()));
    }
}
