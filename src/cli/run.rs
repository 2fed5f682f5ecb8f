//! `surge run`'s flags, chaos's among them, and their conversion into the
//! library's [`RunRequest`]: every flag is read here, once.

use super::ArrivalsArg;
use clap::ValueEnum;
use std::path::PathBuf;
use std::time::Duration;
use surge::run::RunRequest;
use surge::scenario::LoadOverride;

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
    /// A calibration bundle whose ramp forecast (`surge calibrate --ramp`)
    /// this run tests: the autoscaler's line says the seconds over the SLO
    /// and the peak pods against it (with --hpa).
    #[arg(long)]
    pub forecast: Option<PathBuf>,
    /// Push what the run has measured while it goes, and once at its end:
    /// `prometheus=URL` to a Remote-Write receiver (e.g.
    /// `prometheus=http://prometheus:9090/api/v1/write`), `otlp=URL` to an
    /// OTLP/HTTP one (e.g. `otlp=http://collector:4318/v1/metrics`);
    /// repeatable, joined with the scenario's `[metrics_out]`. A slow or
    /// failing receiver never slows the load: what it missed is counted.
    #[arg(long = "metrics-out", value_name = "KIND=URL")]
    pub metrics_out: Vec<String>,
    #[command(flatten)]
    pub chaos: ChaosArgs,
}

impl RunArgs {
    /// The shard this process runs: `--shard`, or `--shards` with
    /// JOB_COMPLETION_INDEX, or the whole test.
    fn shard(&self) -> Result<surge::scenario::shard::Shard, String> {
        use surge::scenario::shard::Shard;
        match (&self.shard, self.shards) {
            (Some(text), _) => Shard::parse(text),
            (None, Some(count)) => {
                Shard::from_job(std::env::var("JOB_COMPLETION_INDEX").ok().as_deref(), count)
            }
            (None, None) => Ok(Shard::default()),
        }
    }

    /// The run these flags ask for, or why they cannot mean one.
    pub fn request(self) -> Result<RunRequest, String> {
        let arrivals = self.arrivals.map(|a| a.process(self.seed)).transpose()?;
        let shard = self.shard()?;
        let start_at = self.start_at()?;
        let metrics_out = self
            .metrics_out
            .iter()
            .map(|t| surge::run::metrics_out::MetricsTarget::parse(t))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RunRequest {
            chaos: self.chaos.request(),
            scenario: self.scenario,
            target: self.target,
            no_auth: self.no_auth,
            load: LoadOverride {
                rate: self.rate,
                users: self.users,
                duration: self.duration,
                think_scale: self.think_scale,
                persona_weights: self.personas,
                arrivals,
            },
            thresholds: self.thresholds,
            replicas: self.replicas,
            out_dir: self.out,
            progress: !self.no_progress,
            exit_on_second_signal: true,
            shard,
            start_at,
            forecast: self.forecast,
            metrics_out,
        })
    }

    /// `--start-at` as an instant.
    fn start_at(&self) -> Result<Option<std::time::SystemTime>, String> {
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
    /// kill-pod@every:60s, evict[:PICK]@1m, rollout-restart@2m, scale:5@90s,
    /// 'exec:docker kill web-2@45s' (repeatable).
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
    /// HorizontalPodAutoscaler to read every second while the load runs
    /// (with --namespace and --workload): its replicas and metric go in the
    /// bundle's autoscaler timeline.
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

/// Where chaos finds the pods it kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChaosBackend {
    /// A Kubernetes cluster, through the kubeconfig.
    Kubernetes,
    /// Replica processes on this machine (`surge demo`, `--replica-dir`).
    Local,
}
