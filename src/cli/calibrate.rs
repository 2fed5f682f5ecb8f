//! `surge calibrate`'s flags and their conversion into the library's
//! [`CalibrateRequest`]: every flag is read here, once.

use super::ArrivalsArg;
use clap::ValueEnum;
use std::path::PathBuf;
use std::time::Duration;
use surge::calibrate::{capacity::Slo, manifest, Demand};
use surge::run::calibrate::{CalibrateRequest, RampRequest, StepSource};
use surge::run::pod_cpu::PodCpuTarget;

#[derive(clap::Args)]
pub struct CalibrateArgs {
    /// Scenario replayed at each step (open model; its own load is replaced).
    pub scenario: Option<PathBuf>,
    /// Analyse the stages of an earlier open-model bundle instead of running.
    #[arg(long, conflicts_with = "scenario")]
    pub from_bundle: Option<PathBuf>,
    /// Base URL to drive instead of the scenario's.
    #[arg(long, conflicts_with = "from_bundle")]
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
    #[arg(long, default_value_t = 10.0, conflicts_with = "from_bundle")]
    pub start_rate: f64,
    /// Arrivals per second added at each step.
    #[arg(long, default_value_t = 10.0, conflicts_with = "from_bundle")]
    pub step_rate: f64,
    /// Length of each step.
    #[arg(long, default_value = "20s", value_parser = surge::scenario::parse_duration, conflicts_with = "from_bundle")]
    pub step_duration: Duration,
    /// Load at the start rate for this long before the first step, not
    /// measured (a JVM target such as HAPI FHIR compiles its hot paths in
    /// its first minute; 0s: none).
    #[arg(long, default_value = "0s", value_parser = surge::scenario::parse_duration, conflicts_with = "from_bundle")]
    pub warm_up: Duration,
    /// At most this many steps.
    #[arg(long, default_value_t = 8, conflicts_with = "from_bundle")]
    pub max_steps: usize,
    /// How each step's arrivals are spaced: Poisson by default, because
    /// production arrivals are bursty and evenly spaced ones hide the queueing
    /// near capacity.
    #[arg(long, value_enum, default_value_t = ArrivalsArg::Poisson, conflicts_with = "from_bundle")]
    pub arrivals: ArrivalsArg,
    /// The seed of the Poisson draw (default 1).
    #[arg(long, conflicts_with = "from_bundle")]
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
    #[arg(long, conflicts_with = "from_bundle")]
    pub verify: bool,
    /// A replica's Prometheus endpoint (e.g. http://pod:8081/actuator/prometheus), scraped
    /// during the staircase for HikariCP pool series; repeatable. Measures the hold time.
    #[arg(long = "metrics-url", conflicts_with = "from_bundle")]
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
    /// Once the climb is over, narrow the capacity by bisection between the
    /// step below the limit and the limit until they are this close,
    /// percent of the rate (each bisection is one more step; 0: none).
    #[arg(long, default_value_t = 2.0, conflicts_with = "from_bundle")]
    pub precision: f64,
    /// Forecast this scenario's open-model ramp (a morning surge) under the
    /// recommended HPA: seconds over the SLO, peak pods, and the minReplicas
    /// for the morning that keeps it inside the SLO.
    #[arg(long)]
    pub ramp: Option<PathBuf>,
    /// The ramp's length, its shape kept (as `surge run --duration`).
    #[arg(long, requires = "ramp", value_parser = surge::scenario::parse_duration)]
    pub ramp_duration: Option<Duration>,
    /// Forecast the ramp under this HPA manifest (autoscaling/v2, a Pods
    /// metric) instead of the recommended one.
    #[arg(long, requires = "ramp")]
    pub ramp_hpa: Option<PathBuf>,
    /// How late the metric the HPA reads is: the scrape interval, and the
    /// adapter's cache if it has one.
    #[arg(long, default_value = "15s", value_parser = surge::scenario::parse_duration)]
    pub metric_delay: Duration,
    /// Read the CPU of the workload's pods with this label selector (e.g.
    /// app=hapi, in --namespace) from metrics.k8s.io during each step, and
    /// recommend a CPU target beside the request rate. Steps at least 3×
    /// metrics-server's resolution long give each step its own windows.
    #[arg(long, conflicts_with = "from_bundle")]
    pub selector: Option<String>,
    /// kubeconfig file for --selector (default: KUBECONFIG, ~/.kube/config,
    /// then in-cluster).
    #[arg(long, requires = "selector")]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context for --selector (default: the current one).
    #[arg(long, requires = "selector")]
    pub context: Option<String>,
    /// Folder for the calibration bundle.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
}

impl CalibrateArgs {
    /// The calibration these flags ask for, its bundle a new folder under
    /// `--out`; or why they cannot mean one.
    pub fn request(self) -> Result<CalibrateRequest, String> {
        let slo = Slo {
            p99_ms: self.slo_p99.as_secs_f64() * 1000.0,
            error_budget: self.error_budget / 100.0,
        };
        let dir = self
            .out
            .join(surge::run::new_run_id(&self.out, "calibrate"));
        let arrivals = self.arrivals.process(self.seed)?;
        if self.metric_delay > Duration::from_secs(600) {
            return Err(format!(
                "--metric-delay {}: at most 10m (a metric older than that scales nothing)",
                humantime::format_duration(self.metric_delay)
            ));
        }
        let pod_cpu = match (self.selector, &self.namespace) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(
                    "--selector reads the pods' CPU in a namespace: give --namespace".into(),
                )
            }
            (Some(selector), Some(namespace)) => Some(PodCpuTarget {
                namespace: namespace.clone(),
                selector,
                kubeconfig: self.kubeconfig,
                context: self.context,
            }),
        };
        let source = match (self.scenario, self.from_bundle) {
            (_, Some(bundle)) => StepSource::FromBundle(bundle),
            (Some(scenario), None) => StepSource::Climb(surge::run::staircase::Staircase {
                scenario,
                target: self.target,
                start_rate: self.start_rate,
                step_rate: self.step_rate,
                step_duration: self.step_duration,
                max_steps: self.max_steps,
                arrivals,
                out_dir: dir.join("steps"),
                warm_up: self.warm_up,
                precision: self.precision / 100.0,
            }),
            (None, None) => return Err("give a scenario to run, or --from-bundle DIR".into()),
        };
        Ok(CalibrateRequest {
            source,
            replicas: self.replicas,
            slo,
            demand: Demand {
                base_rate: self.base_rate,
                peak_rate: self.peak_rate,
                growth_per_s: self.growth_per_minute / 100.0 / 60.0,
                metric_window_s: self.metric_window.as_secs_f64(),
                pod_start_s: self.pod_start.as_secs_f64(),
                readiness_s: self.readiness.as_secs_f64(),
                hold_s: self.hold.map(|h| h.as_secs_f64()),
                checkouts_per_request: None,
                wait_probability: self.wait_probability / 100.0,
                pool_floor: self.pool_floor,
                connection_budget: self.connection_budget,
            },
            pod_start_from: self.pod_start_from,
            verify: self.verify,
            metrics_urls: self.metrics_urls,
            recommendations: surge::report::Recommendations {
                workload: manifest::Workload {
                    kind: self.kind.as_str().to_owned(),
                    name: self.name,
                    namespace: self.namespace,
                    metric: self.metric,
                },
                keda: self.keda_prometheus.map(|server| (server, self.keda_query)),
            },
            dir,
            ramp: self.ramp.map(|scenario| RampRequest {
                scenario,
                duration: self.ramp_duration,
                hpa_file: self.ramp_hpa,
                metric_delay_s: self.metric_delay.as_secs_f64(),
            }),
            pod_cpu,
        })
    }
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
