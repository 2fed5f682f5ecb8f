//! The command line: every subcommand, flag and closed set of words as clap
//! types, each beside its conversion into the library's request (`run` and
//! `calibrate` have modules of their own). `main.rs` makes the library calls
//! and turns their outcomes into exit codes.

mod calibrate;
mod import;
mod run;

pub use calibrate::CalibrateArgs;
pub use import::ImportCommand;
pub use run::RunArgs;

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
    Merge(MergeArgs),
    /// Measure capacity with a staircase of arrival rates and recommend HPA and pool settings.
    Calibrate(CalibrateArgs),
    /// Turn a recording (an access log) into a scenario, patient data and secrets scrubbed.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Check a connection plan: replicas × pool against pgBouncer and max_connections.
    Plan(PlanArgs),
    /// The reference clinical cluster.
    #[command(subcommand)]
    Sim(SimCommand),
}

/// `surge merge`'s flags.
#[derive(clap::Args)]
pub struct MergeArgs {
    /// The shards' bundle folders (or earlier merges of some of them).
    #[arg(required_unless_present = "from")]
    bundles: Vec<PathBuf>,
    /// A folder the shards write their bundles into (a shared volume):
    /// merge every bundle in it, once every shard's is there.
    #[arg(long)]
    from: Option<PathBuf>,
    /// With --from: wait this long for the folder (a Job's first shard
    /// makes it) and every shard's bundle in it (e.g. 30m),
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
}

impl MergeArgs {
    /// The merge these flags ask for.
    pub fn request(self) -> surge::run::merge::MergeRequest {
        surge::run::merge::MergeRequest {
            bundles: self.bundles,
            out_dir: self.out,
            allow_partial: self.allow_partial,
            from: self.from,
            wait: self.wait,
        }
    }
}

/// `surge plan`'s flags.
#[derive(clap::Args)]
pub struct PlanArgs {
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
}

impl PlanArgs {
    /// The connection plan these flags describe.
    pub fn plan(self) -> surge::calibrate::pool::Plan {
        surge::calibrate::pool::Plan {
            replicas: self.replicas,
            pool: self.pool,
            pgbouncer_pool: self.pgbouncer_pool,
            max_connections: self.max_connections,
            reserved: self.reserved,
        }
    }
}

#[derive(Subcommand)]
pub enum SimCommand {
    /// Start the cluster and keep it up until Ctrl-C.
    Up(ClusterOptions),
    /// One replica process (the supervisor starts these; as a pod, it
    /// listens on the pod's address).
    Replica(surge_sim::replica::ReplicaOptions),
    /// The balancer alone, in front of a Kubernetes Service's ready pods
    /// (it follows the Service's EndpointSlices, as an ingress controller does).
    Balance(surge_sim::endpoints::BalanceOptions),
    /// A custom metrics API server for the HPA (each pod's request rate,
    /// from Prometheus), registered through an APIService.
    MetricsAdapter(surge_sim::custom_metrics::AdapterOptions),
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
