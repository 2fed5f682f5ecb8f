//! A replica's flags: the service every replica of a cluster shares (its
//! pool, who may log in, its token rules) and what is this replica's own.

use super::*;

/// How every replica of a cluster behaves: its database pool, who may log
/// in, and its token rules. `surge sim up` takes these and hands them to each
/// replica process, so both parse them with the same definitions.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceOptions {
    /// Database connections in each replica's pool.
    #[arg(long, default_value_t = 10)]
    pub pool: usize,
    /// How long each database-backed request holds a connection.
    #[arg(long, default_value = "5ms", value_parser = crate::duration_flag)]
    pub hold: Duration,
    /// CPU each database-backed request uses while it holds its connection
    /// (its thread computes for this long), so that a pod's CPU follows its
    /// load as an application server's does (at most 1s; 0: none beyond
    /// answering).
    #[arg(long, default_value = "0ms", value_parser = cpu_flag)]
    pub cpu_per_request: Duration,
    /// The shared database takes at most this many connections at once, from
    /// all replicas together (like max_connections); no limit when not given.
    #[arg(long)]
    pub db_limit: Option<usize>,
    /// Give up waiting for a connection after this long (c3p0 checkoutTimeout), answering 500.
    #[arg(long, default_value = "30s", value_parser = crate::duration_flag)]
    pub checkout_timeout: Duration,
    /// User name accepted at login.
    #[arg(long, default_value = "admin")]
    pub username: String,
    /// Password accepted at login.
    #[arg(long, default_value = "Admin123", hide_default_value = true)]
    pub password: String,
    /// Require a bearer token from `/realms/{realm}/protocol/openid-connect/token` on /fhir (as a Keycloak-protected HAPI).
    #[arg(long)]
    pub fhir_auth: bool,
    /// Lifetime of the tokens the token endpoint issues.
    #[arg(long, default_value = "300s", value_parser = crate::duration_flag)]
    pub token_ttl: Duration,
    /// Fault: this replica's token endpoint issues at most N tokens, then
    /// answers 503 (an identity provider going down mid-run).
    #[arg(long)]
    pub token_limit: Option<u64>,
    /// Client id the token endpoint accepts.
    #[arg(long, default_value = "surge")]
    pub client_id: String,
    /// Client secret the token endpoint accepts.
    #[arg(long, default_value = "surge-secret", hide_default_value = true)]
    pub client_secret: String,
    /// Where login sessions live: per replica (the bug), a shared store, or Redis.
    #[arg(long, value_enum, default_value = "per-replica")]
    pub sessions: SessionStoreKind,
    /// Redis server for `--sessions redis`, e.g. redis://127.0.0.1:6379.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// With replicated attachments: how long after an upload the other replicas get it.
    #[arg(long, default_value = "0ms", value_parser = crate::duration_flag)]
    pub replication_delay: Duration,
    /// Fault: replication flips a byte of every copy (a corrupting volume).
    #[arg(long)]
    pub corrupt_replication: bool,
    /// FHIR resources are read from a streaming read replica that replays
    /// each commit this long after it (a standby with
    /// `recovery_min_apply_delay`): a read or `_id` search sooner finds
    /// nothing. 0: every read sees every acknowledged write (synchronous
    /// replication with `synchronous_commit = remote_apply`).
    #[arg(long, default_value = "0ms", value_parser = crate::duration_flag)]
    pub read_replica_lag: Duration,
    /// The database fails over when a file named `failover` appears in the
    /// shared folder (its mtime the primary's death): the FHIR resources
    /// committed this long before it are lost, as an asynchronous standby
    /// promoted in its place never received them. 0: synchronous
    /// replication, no acknowledged write is lost.
    #[arg(long, default_value = "0ms", value_parser = crate::duration_flag)]
    pub failover_loses: Duration,
    /// Keep FHIR resources in a MariaDB Galera cluster: each node's
    /// mysql://user@host:port/db URL, repeated, this replica's own node
    /// first (the others are tried in order when it cannot be reached).
    /// The cluster gives replica i the list turned i places. Reads find
    /// what the node has applied (its `wsrep_sync_wait` decides).
    #[arg(long)]
    pub galera: Vec<String>,
    /// After the primary's death every database request fails this long
    /// (the standby's promotion).
    #[arg(long, default_value = "1s", value_parser = crate::duration_flag)]
    pub failover_down: Duration,
    /// Slow requests whose path starts with PREFIX by FACTOR × the hold time
    /// (e.g. `/fhir/Patient=3`); repeatable. For regression tests.
    #[arg(long, value_parser = parse_slow)]
    pub slow: Vec<(String, f64)>,
    /// How an openFHIR template uploaded to one replica reaches the others' caches.
    #[arg(long, value_enum, default_value = "broadcast")]
    pub openfhir_invalidation: openfhir::Invalidation,
    /// Each replica reloads its openFHIR templates this often (with `--openfhir-invalidation none`).
    #[arg(long, value_parser = crate::duration_flag)]
    pub openfhir_reload: Option<Duration>,
}

impl Default for ServiceOptions {
    /// The command line's defaults (one source of truth).
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            service: ServiceOptions,
        }
        <Defaults as clap::Parser>::parse_from(["surge"]).service
    }
}

impl ServiceOptions {
    /// The same options as command-line arguments, for a replica process.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            format!("--pool={}", self.pool),
            format!("--hold={}us", self.hold.as_micros()),
            format!("--checkout-timeout={}ms", self.checkout_timeout.as_millis()),
            format!("--cpu-per-request={}us", self.cpu_per_request.as_micros()),
            format!("--username={}", self.username),
            format!("--password={}", self.password),
            format!("--token-ttl={}ms", self.token_ttl.as_millis()),
            format!("--client-id={}", self.client_id),
            format!("--client-secret={}", self.client_secret),
            format!(
                "--sessions={}",
                clap::ValueEnum::to_possible_value(&self.sessions)
                    .map(|v| v.get_name().to_owned())
                    .unwrap_or_default()
            ),
            format!(
                "--replication-delay={}ms",
                self.replication_delay.as_millis()
            ),
            format!("--read-replica-lag={}ms", self.read_replica_lag.as_millis()),
            format!("--failover-loses={}ms", self.failover_loses.as_millis()),
            format!("--failover-down={}ms", self.failover_down.as_millis()),
        ];
        if self.corrupt_replication {
            args.push("--corrupt-replication".into());
        }
        if let Some(limit) = self.db_limit {
            args.push(format!("--db-limit={limit}"));
        }
        args.extend(self.galera.iter().map(|url| format!("--galera={url}")));
        args.extend(
            self.slow
                .iter()
                .map(|(prefix, factor)| format!("--slow={prefix}={factor}")),
        );
        if let Some(url) = &self.redis_url {
            args.push(format!("--redis-url={url}"));
        }
        if self.fhir_auth {
            args.push("--fhir-auth".into());
        }
        if let Some(limit) = self.token_limit {
            args.push(format!("--token-limit={limit}"));
        }
        args.push(format!(
            "--openfhir-invalidation={}",
            clap::ValueEnum::to_possible_value(&self.openfhir_invalidation)
                .map(|v| v.get_name().to_owned())
                .unwrap_or_default()
        ));
        if let Some(every) = self.openfhir_reload {
            args.push(format!("--openfhir-reload={}ms", every.as_millis()));
        }
        args
    }
}

/// A duration of CPU per request: at most a second.
fn cpu_flag(text: &str) -> Result<Duration, String> {
    let d = crate::duration_flag(text)?;
    crate::check_range("--cpu-per-request (ms)", d.as_millis(), 0, 1000)?;
    Ok(d)
}

/// Parses `PREFIX=FACTOR` for `--slow`.
fn parse_slow(text: &str) -> Result<(String, f64), String> {
    let (prefix, factor) = text
        .rsplit_once('=')
        .ok_or("expected PREFIX=FACTOR, e.g. /fhir/Patient=3")?;
    let factor: f64 = factor
        .parse()
        .map_err(|_| format!("{factor:?} is not a number"))?;
    if !prefix.starts_with('/') || factor < 1.0 {
        return Err("expected a path prefix starting with / and a factor of at least 1".into());
    }
    Ok((prefix.to_owned(), factor))
}

/// How one replica process runs.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplicaOptions {
    /// Replica name, sent in `X-Served-By`.
    #[arg(long, default_value = "r1")]
    pub name: String,
    /// Port (0 picks a free one; the chosen port is printed).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Address to listen on: loopback for the cluster's own replicas, the
    /// pod's address (`$(POD_IP)`) when a node runs it as a pod.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Wait this long before listening, as a JVM takes to boot (a pod's
    /// start-up, when a node runs it).
    #[arg(long, default_value = "0s", value_parser = crate::duration_flag)]
    pub start_delay: Duration,
    /// On SIGTERM, keep answering this long before closing (a preStop
    /// pause: the balancer stops sending new requests meanwhile), then
    /// finish the requests in flight and exit.
    #[arg(long, default_value = "0s", value_parser = crate::duration_flag)]
    pub shutdown_delay: Duration,
    /// Folder attachments are written to (this replica's own, or one shared by all).
    #[arg(long)]
    pub attachments_dir: PathBuf,
    /// Other replicas' attachment folders, each written `--replication-delay` after an upload.
    #[arg(long)]
    pub replicate_to: Vec<PathBuf>,
    /// Folder of the shared session store (with `--sessions shared`).
    #[arg(long)]
    pub sessions_dir: Option<PathBuf>,
    /// Folder of the shared database's connection slots (with `--db-limit`).
    #[arg(long)]
    pub db_dir: Option<PathBuf>,
    /// Folder every replica shares as "the database": FHIR resources and
    /// openFHIR templates (default: `shared` beside the attachments).
    #[arg(long)]
    pub shared_dir: Option<PathBuf>,
    /// Append one JSON line per request received (method, path, query,
    /// content type, auth scheme, cookie names, multipart parts; never a
    /// credential): what the request-shape tests check.
    #[arg(long)]
    pub capture_file: Option<PathBuf>,
    /// Pool, credentials, tokens.
    #[command(flatten)]
    pub service: ServiceOptions,
}
