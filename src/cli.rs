//! The command line's shape: every subcommand, flag and closed set of
//! words as clap types, and nothing else. `main.rs` turns them into library
//! calls and their outcomes into exit codes.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;
use surge_sim::ClusterOptions;

/// The exit codes, for every command's help.
pub const EXIT_CODES: &str = "Exit codes:\n  0  the run completed and every threshold passed (compare: no regression)\n  1  a threshold failed (compare: a regression beyond the limits)\n  2  the run could not be carried out (bad scenario or option, target unreachable)\n  3  the run was interrupted (Ctrl-C, SIGTERM); its bundle is still written";

/// `surge compare`'s exit codes.
pub const COMPARE_EXIT_CODES: &str = "Exit codes:\n  0  no regression beyond the allowed limits\n  1  a regression beyond the limits (an error-rate regression always; a latency one when the environments were comparable)\n  2  the comparison could not be made (a bundle unreadable, a limit malformed)\n  4  inconclusive: latency regressed, but the runs' environments differ (the generator was late, the machine busier, the control request slower): run again";

/// Load tests and autoscaling calibration for clinical web clusters (OpenMRS, HAPI FHIR).
#[derive(Parser)]
#[command(name = "surge", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a scenario against a target and write a result bundle.
    #[command(after_help = EXIT_CODES)]
    Run(RunArgs),
    /// Start a 3-replica reference cluster, run scenarios/demo.toml against it, print the summary.
    #[command(after_help = EXIT_CODES)]
    Demo {
        /// Scenario to run.
        #[arg(long, default_value = "scenarios/demo.toml")]
        scenario: PathBuf,
        /// Run this long instead of the scenario's own length (e.g. 20s).
        #[arg(long, value_parser = surge::scenario::parse_duration)]
        duration: Option<Duration>,
        /// Folder for the bundle.
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        /// Kill replicas mid-run (real kill -9; the cluster restarts them after 2 s), e.g.
        /// kill-pod@10s or kill-pod:most-sessions@every:15s (repeatable).
        #[arg(long = "chaos")]
        chaos: Vec<String>,
    },
    /// Check a scenario file without sending anything.
    Check {
        /// Scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// Re-render every report of an earlier run's bundle (HTML, Markdown, JUnit, CSV, charts) and print its summary.
    Report {
        /// Bundle folder (reports/<run-id>).
        bundle: PathBuf,
    },
    /// Compare a run with one or more baselines: per request, percentile and error-rate changes, beyond run-to-run noise, and whether the two environments were comparable.
    #[command(after_help = COMPARE_EXIT_CODES)]
    Compare {
        /// Baseline bundles (folders, summary.json files, or a folder of
        /// bundles: the last passing runs), then the current bundle last.
        #[arg(required = true, num_args = 2..)]
        bundles: Vec<PathBuf>,
        /// Allowed worsening, e.g. p95=10% (latency, relative) or error_rate=1% (points); repeatable.
        #[arg(long = "max-regression", default_values_t = ["p50=10%".to_owned(), "p95=10%".to_owned(), "p99=20%".to_owned(), "error_rate=1%".to_owned()])]
        limits: Vec<String>,
    },
    /// Merge the bundles of a sharded test's parts (surge run --shard) into one bundle, judged as one test.
    #[command(after_help = EXIT_CODES)]
    Merge {
        /// The shards' bundle folders (or earlier merges of some of them).
        #[arg(required_unless_present = "from")]
        bundles: Vec<PathBuf>,
        /// A folder the shards write their bundles into (a shared volume):
        /// merge every bundle in it, once every shard's is there.
        #[arg(long)]
        from: Option<PathBuf>,
        /// With --from: wait this long for every shard's bundle (e.g. 30m),
        /// then merge what is there (refused if shards are missing, unless
        /// --allow-partial).
        #[arg(long, default_value = "0s", value_parser = surge::scenario::parse_duration)]
        wait: Duration,
        /// Folder for the merged bundle.
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        /// Merge even if shards are missing; the merged bundle and its report say which.
        #[arg(long)]
        allow_partial: bool,
    },
    /// Measure capacity with a staircase of arrival rates and recommend HPA and pool settings.
    Calibrate(CalibrateArgs),
    /// Check a connection plan: replicas × pool against pgBouncer and max_connections.
    Plan {
        /// Replicas planned.
        #[arg(long)]
        replicas: u32,
        /// Connections per replica (HikariCP maximum-pool-size, hibernate.c3p0.max_size).
        #[arg(long)]
        pool: u32,
        /// pgBouncer default_pool_size, if pgBouncer sits in front.
        #[arg(long)]
        pgbouncer_pool: Option<u32>,
        /// Database max_connections.
        #[arg(long)]
        max_connections: Option<u32>,
        /// Connections the database keeps back (PostgreSQL: 3 for superusers).
        #[arg(long, default_value_t = surge::calibrate::pool::POSTGRES_RESERVED)]
        reserved: u32,
    },
    /// The reference clinical cluster.
    #[command(subcommand)]
    Sim(SimCommand),
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// Scenario file (see scenarios/README.md).
    pub scenario: PathBuf,
    /// Base URL to drive instead of the scenario's.
    #[arg(long)]
    pub target: Option<String>,
    /// Send no credentials, whatever the scenario's [auth] says: for a test
    /// server with no identity provider in front of it (a HAPI FHIR
    /// cluster without Keycloak).
    #[arg(long)]
    pub no_auth: bool,
    /// Open model at this many arrivals per second (one stage).
    #[arg(long, conflicts_with = "users")]
    pub rate: Option<f64>,
    /// Open model: space arrivals evenly, or as a Poisson process (bursty, as
    /// production traffic comes) [default: the scenario's `arrivals`].
    #[arg(long, value_enum)]
    pub arrivals: Option<ArrivalsArg>,
    /// The seed of the Poisson draw (default 1; the same seed, the same arrival times).
    #[arg(long, requires = "arrivals")]
    pub seed: Option<u64>,
    /// Closed model with this many virtual users (one stage).
    #[arg(long)]
    pub users: Option<usize>,
    /// Run this long (e.g. 30s, 5m).
    #[arg(long, value_parser = surge::scenario::parse_duration)]
    pub duration: Option<Duration>,
    /// Multiply every think time by this (e.g. 0.1: ten times the pace per user).
    #[arg(long)]
    pub think_scale: Option<f64>,
    /// A persona's weight, NAME=WEIGHT (repeatable; 0 leaves the persona out).
    #[arg(long = "persona")]
    pub personas: Vec<String>,
    /// Extra or replacing threshold, e.g. 'search_patient.p95=<800ms' (repeatable).
    #[arg(long = "threshold")]
    pub thresholds: Vec<String>,
    /// A replica's own base URL, to read uploads back from directly
    /// (repeatable); NAME=URL when the replica header or sticky cookie calls
    /// it NAME and surge cannot tell that from the URL.
    #[arg(long = "replica", value_name = "URL | NAME=URL")]
    pub replicas: Vec<String>,
    /// Folder for the bundle.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// No live progress line.
    #[arg(long)]
    pub no_progress: bool,
    /// Run part INDEX/COUNT of a sharded test (0-based, e.g. 0/3): open-model
    /// arrivals interleaved, closed-model users and feeder rows split, chaos
    /// on shard 0 only. Its exit code says only whether it ran; `surge merge`
    /// of every shard's bundle gives the test's verdict.
    #[arg(long, conflicts_with = "shards")]
    pub shard: Option<String>,
    /// Inside a Kubernetes Indexed Job: the test has this many shards, and
    /// this shard's index is JOB_COMPLETION_INDEX.
    #[arg(long, env = "SURGE_SHARDS")]
    pub shards: Option<u32>,
    /// Begin the load at this instant (RFC 3339, e.g. 2026-11-30T10:00:00Z)
    /// or after this delay (e.g. 30s): shards started at different moments
    /// begin together, and each records how late it began.
    #[arg(long, env = "SURGE_START_AT")]
    pub start_at: Option<String>,
    #[command(flatten)]
    pub chaos: ChaosArgs,
}

impl RunArgs {
    /// The shard this process runs: `--shard`, or `--shards` with
    /// JOB_COMPLETION_INDEX, or the whole test.
    pub fn shard(&self) -> Result<surge::scenario::shard::Shard, String> {
        use surge::scenario::shard::Shard;
        match (&self.shard, self.shards) {
            (Some(text), _) => Shard::parse(text),
            (None, Some(count)) => {
                Shard::from_job(std::env::var("JOB_COMPLETION_INDEX").ok().as_deref(), count)
            }
            (None, None) => Ok(Shard::default()),
        }
    }

    /// `--start-at` as an instant.
    pub fn start_at(&self) -> Result<Option<std::time::SystemTime>, String> {
        self.start_at
            .as_deref()
            .map(|text| surge::scenario::shard::parse_start_at(text, std::time::SystemTime::now()))
            .transpose()
    }
}

/// Chaos: faults injected while the load runs (see scenarios/README.md).
#[derive(clap::Args)]
#[command(next_help_heading = "Chaos")]
pub struct ChaosArgs {
    /// A chaos action, replacing the scenario's: kill-pod[:random|oldest|most-sessions]@30s,
    /// kill-pod@every:60s, rollout-restart@2m, scale:5@90s, 'exec:docker kill web-2@45s' (repeatable).
    #[arg(long = "chaos")]
    pub specs: Vec<String>,
    /// Pod backend: kubernetes, or local (replica processes on this machine:
    /// the reference cluster in surge demo, or those listed by --replica-dir).
    #[arg(long, value_enum)]
    pub chaos_backend: Option<ChaosBackend>,
    /// Local backend: a folder with one file per replica process (pid=, url=,
    /// ready_at_ms=) that its supervisor keeps; targets/hapi-fhir/cluster.sh
    /// writes DIR/replicas.
    #[arg(long)]
    pub replica_dir: Option<PathBuf>,
    /// Kubernetes namespace of the workload.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Label selector of the workload's pods, e.g. app=openmrs.
    #[arg(long)]
    pub selector: Option<String>,
    /// deployment/NAME or statefulset/NAME (watched; patched by rollout-restart and scale).
    #[arg(long)]
    pub workload: Option<String>,
    /// HorizontalPodAutoscaler to record current/desired replicas from.
    #[arg(long)]
    pub hpa: Option<String>,
    /// kubeconfig context (default: the current one).
    #[arg(long)]
    pub context: Option<String>,
    /// kubeconfig file (default: KUBECONFIG, ~/.kube/config, then in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// A namespace chaos may act in (required, repeatable; kube-system is always refused).
    #[arg(long = "allow-namespace")]
    pub allow_namespaces: Vec<String>,
    /// At most this many pod kills in the run (default 5).
    #[arg(long)]
    pub max_kills: Option<u32>,
    /// Pod delete grace period (default 0s: a hard kill).
    #[arg(long, value_parser = surge::scenario::parse_duration)]
    pub grace_period: Option<Duration>,
    /// Print the chaos plan after the safety checks and exit: no load, no API call.
    #[arg(long)]
    pub dry_run: bool,
}

impl ChaosArgs {
    /// The chaos part of a run request.
    pub fn request(&self) -> surge::chaos::setup::ChaosRequest {
        surge::chaos::setup::ChaosRequest {
            specs: self.specs.clone(),
            backend: self.chaos_backend.map(|b| match b {
                ChaosBackend::Local => surge::chaos::BackendKind::Local,
                ChaosBackend::Kubernetes => surge::chaos::BackendKind::Kubernetes,
            }),
            namespace: self.namespace.clone(),
            selector: self.selector.clone(),
            workload: self.workload.clone(),
            hpa: self.hpa.clone(),
            context: self.context.clone(),
            kubeconfig: self.kubeconfig.clone(),
            allow_namespaces: self.allow_namespaces.clone(),
            max_kills: self.max_kills,
            grace_period: self.grace_period,
            replica_dir: self.replica_dir.clone(),
            ..Default::default()
        }
    }
}

#[derive(clap::Args)]
pub struct CalibrateArgs {
    /// Scenario replayed at each step (open model; its own load is replaced).
    pub scenario: Option<PathBuf>,
    /// Analyse the stages of an earlier open-model bundle instead of running.
    #[arg(long, conflicts_with = "scenario")]
    pub from_bundle: Option<PathBuf>,
    /// Base URL to drive instead of the scenario's.
    #[arg(long)]
    pub target: Option<String>,
    /// Replicas serving during the measurement.
    #[arg(long)]
    pub replicas: u32,
    /// p99 latency the SLO allows.
    #[arg(long, value_parser = surge::scenario::parse_duration)]
    pub slo_p99: Duration,
    /// Error budget, percent.
    #[arg(long, default_value_t = 1.0)]
    pub error_budget: f64,
    /// First step's arrivals per second.
    #[arg(long, default_value_t = 10.0)]
    pub start_rate: f64,
    /// Arrivals per second added at each step.
    #[arg(long, default_value_t = 10.0)]
    pub step_rate: f64,
    /// Length of each step.
    #[arg(long, default_value = "20s", value_parser = surge::scenario::parse_duration)]
    pub step_duration: Duration,
    /// Load at the start rate for this long before the first step, not
    /// measured (a JVM target such as HAPI FHIR compiles its hot paths in
    /// its first minute; 0s: none).
    #[arg(long, default_value = "0s", value_parser = surge::scenario::parse_duration)]
    pub warm_up: Duration,
    /// At most this many steps.
    #[arg(long, default_value_t = 8)]
    pub max_steps: usize,
    /// How each step's arrivals are spaced: Poisson by default, because
    /// production arrivals are bursty and evenly spaced ones hide the queueing
    /// near capacity.
    #[arg(long, value_enum, default_value_t = ArrivalsArg::Poisson)]
    pub arrivals: ArrivalsArg,
    /// The seed of the Poisson draw (default 1).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Everyday demand, requests per second (default: a quarter of the peak).
    #[arg(long)]
    pub base_rate: Option<f64>,
    /// Peak demand, requests per second (default: the measured cluster capacity).
    #[arg(long)]
    pub peak_rate: Option<f64>,
    /// Load growth, percent per minute, the HPA must keep up with.
    #[arg(long, default_value_t = 10.0)]
    pub growth_per_minute: f64,
    /// Scaling metric window.
    #[arg(long, default_value = "30s", value_parser = surge::scenario::parse_duration)]
    pub metric_window: Duration,
    /// Pod start-up time (known; or see --pod-start-from).
    #[arg(long, default_value = "60s", value_parser = surge::scenario::parse_duration)]
    pub pod_start: Duration,
    /// Take the pod start-up time from a chaos run's bundle: the median time
    /// from a pod kill until its replacement was ready.
    #[arg(long, conflicts_with = "pod_start")]
    pub pod_start_from: Option<PathBuf>,
    /// Readiness delay after start.
    #[arg(long, default_value = "15s", value_parser = surge::scenario::parse_duration)]
    pub readiness: Duration,
    /// Connection hold time per request (e.g. HikariCP usage time); pools are sized only with it.
    #[arg(long, value_parser = surge::scenario::parse_duration)]
    pub hold: Option<Duration>,
    /// Acceptable probability of waiting for a connection, percent.
    #[arg(long, default_value_t = 5.0)]
    pub wait_probability: f64,
    /// Smallest pool allowed (deadlock-free minimum).
    #[arg(long, default_value_t = 1)]
    pub pool_floor: u32,
    /// Connections the database allows the application (default: PostgreSQL's 100 − 3 reserved).
    #[arg(long, default_value_t = 97)]
    pub connection_budget: u32,
    /// Kind of the workload the HPA scales.
    #[arg(long, value_enum, default_value_t = WorkloadKind::Deployment)]
    pub kind: WorkloadKind,
    /// Name of the workload.
    #[arg(long, default_value = "app")]
    pub name: String,
    /// Namespace of the workload.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Per-pod request-rate metric the HPA reads (through a metrics adapter).
    #[arg(long, default_value = "http_server_requests_per_second")]
    pub metric: String,
    /// Replay the scenario at the recommended per-pod rate × replicas and check it holds the SLO.
    #[arg(long)]
    pub verify: bool,
    /// A replica's Prometheus endpoint (e.g. http://pod:8081/actuator/prometheus), scraped
    /// during the staircase for HikariCP pool series; repeatable. Measures the hold time.
    #[arg(long = "metrics-url")]
    pub metrics_urls: Vec<String>,
    /// Also write a KEDA ScaledObject reading request rate from this Prometheus server.
    #[arg(long)]
    pub keda_prometheus: Option<String>,
    /// The PromQL query of the cluster's total request rate, for KEDA.
    #[arg(
        long,
        default_value = "sum(rate(http_server_requests_seconds_count[1m]))"
    )]
    pub keda_query: String,
    /// Folder for the calibration bundle.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
}

#[derive(Subcommand)]
pub enum SimCommand {
    /// Start the cluster and keep it up until Ctrl-C.
    Up(ClusterOptions),
    /// One replica process (the supervisor starts these).
    #[command(hide = true)]
    Replica(surge_sim::replica::ReplicaOptions),
    /// Regenerate fixtures/patients.csv from the sim's synthetic patients.
    Fixtures {
        /// Output file.
        #[arg(long, default_value = "fixtures/patients.csv")]
        out: PathBuf,
    },
}

/// How open-model arrivals are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ArrivalsArg {
    /// Evenly, at the planned rate.
    Uniform,
    /// A Poisson process at the planned rate.
    Poisson,
}

impl ArrivalsArg {
    /// The process, with `seed` for Poisson; a seed given for uniform
    /// arrivals is refused (it would be silently ignored).
    pub fn process(self, seed: Option<u64>) -> Result<surge::scenario::ArrivalProcess, String> {
        use surge::scenario::{ArrivalProcess, DEFAULT_SEED};
        match (self, seed) {
            (ArrivalsArg::Poisson, seed) => Ok(ArrivalProcess::Poisson {
                seed: seed.unwrap_or(DEFAULT_SEED),
            }),
            (ArrivalsArg::Uniform, None) => Ok(ArrivalProcess::Uniform),
            (ArrivalsArg::Uniform, Some(_)) => Err(
                "--seed seeds Poisson arrivals: it means nothing with --arrivals uniform".into(),
            ),
        }
    }
}

/// Where chaos finds the pods it kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChaosBackend {
    /// A Kubernetes cluster, through the kubeconfig.
    Kubernetes,
    /// Replica processes on this machine (`surge demo`, `--replica-dir`).
    Local,
}

/// The kind of workload an HPA scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WorkloadKind {
    /// A Deployment (HAPI FHIR's usual shape).
    #[value(name = "Deployment")]
    Deployment,
    /// A StatefulSet (OpenMRS's chart).
    #[value(name = "StatefulSet")]
    StatefulSet,
}

impl WorkloadKind {
    /// The Kubernetes kind, as a manifest spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
        }
    }
}
