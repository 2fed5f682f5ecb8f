//! The `surge` command line. Only argument parsing and exit codes live here;
//! every subcommand calls into the library.

mod demo;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use surge::run::{self, RunError, RunRequest};
use surge::scenario::LoadOverride;
use surge_sim::ClusterOptions;

const EXIT_CODES: &str = "Exit codes:\n  0  the run completed and every threshold passed (compare: no regression)\n  1  a threshold failed (compare: a regression beyond the limits)\n  2  the run could not be carried out (bad scenario or option, target unreachable)\n  3  the run was interrupted (Ctrl-C, SIGTERM); its bundle is still written";

/// Load tests and autoscaling calibration for clinical web clusters (OpenMRS, HAPI FHIR).
#[derive(Parser)]
#[command(name = "surge", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    /// Compare a run with a baseline: per request, percentile and error-rate changes, noise-aware.
    #[command(after_help = EXIT_CODES)]
    Compare {
        /// Baseline bundle (folder or summary.json).
        baseline: PathBuf,
        /// Current bundle (folder or summary.json).
        current: PathBuf,
        /// Allowed worsening, e.g. p95=10% (latency, relative) or error_rate=1% (points); repeatable.
        #[arg(long = "max-regression", default_values_t = ["p50=10%".to_owned(), "p95=10%".to_owned(), "p99=20%".to_owned(), "error_rate=1%".to_owned()])]
        limits: Vec<String>,
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
struct RunArgs {
    /// Scenario file (see scenarios/README.md).
    scenario: PathBuf,
    /// Base URL to drive instead of the scenario's.
    #[arg(long)]
    target: Option<String>,
    /// Open model at this many arrivals per second (one stage).
    #[arg(long, conflicts_with = "users")]
    rate: Option<f64>,
    /// Closed model with this many virtual users (one stage).
    #[arg(long)]
    users: Option<usize>,
    /// Run this long (e.g. 30s, 5m).
    #[arg(long, value_parser = surge::scenario::parse_duration)]
    duration: Option<Duration>,
    /// Multiply every think time by this (e.g. 0.1: ten times the pace per user).
    #[arg(long)]
    think_scale: Option<f64>,
    /// A persona's weight, NAME=WEIGHT (repeatable; 0 leaves the persona out).
    #[arg(long = "persona")]
    personas: Vec<String>,
    /// Extra or replacing threshold, e.g. 'search_patient.p95=<800ms' (repeatable).
    #[arg(long = "threshold")]
    thresholds: Vec<String>,
    /// A replica's own base URL, to read uploads back from directly (repeatable).
    #[arg(long = "replica")]
    replicas: Vec<String>,
    /// Folder for the bundle.
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// No live progress line.
    #[arg(long)]
    no_progress: bool,
    #[command(flatten)]
    chaos: ChaosArgs,
}

/// Chaos: faults injected while the load runs (see scenarios/README.md).
#[derive(clap::Args)]
#[command(next_help_heading = "Chaos")]
struct ChaosArgs {
    /// A chaos action, replacing the scenario's: kill-pod[:random|oldest|most-sessions]@30s,
    /// kill-pod@every:60s, rollout-restart@2m, scale:5@90s, 'exec:docker kill web-2@45s' (repeatable).
    #[arg(long = "chaos")]
    specs: Vec<String>,
    /// Pod backend: kubernetes, or local (the reference cluster; surge demo).
    #[arg(long, value_parser = ["kubernetes", "local"])]
    chaos_backend: Option<String>,
    /// Kubernetes namespace of the workload.
    #[arg(long)]
    namespace: Option<String>,
    /// Label selector of the workload's pods, e.g. app=openmrs.
    #[arg(long)]
    selector: Option<String>,
    /// deployment/NAME or statefulset/NAME (watched; patched by rollout-restart and scale).
    #[arg(long)]
    workload: Option<String>,
    /// HorizontalPodAutoscaler to record current/desired replicas from.
    #[arg(long)]
    hpa: Option<String>,
    /// kubeconfig context (default: the current one).
    #[arg(long)]
    context: Option<String>,
    /// kubeconfig file (default: KUBECONFIG, ~/.kube/config, then in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// A namespace chaos may act in (required, repeatable; kube-system is always refused).
    #[arg(long = "allow-namespace")]
    allow_namespaces: Vec<String>,
    /// At most this many pod kills in the run (default 5).
    #[arg(long)]
    max_kills: Option<u32>,
    /// Pod delete grace period (default 0s: a hard kill).
    #[arg(long, value_parser = surge::scenario::parse_duration)]
    grace_period: Option<Duration>,
    /// Print the chaos plan after the safety checks and exit: no load, no API call.
    #[arg(long)]
    dry_run: bool,
}

impl ChaosArgs {
    fn request(&self) -> surge::chaos::setup::ChaosRequest {
        surge::chaos::setup::ChaosRequest {
            specs: self.specs.clone(),
            backend: self.chaos_backend.as_deref().map(|b| match b {
                "local" => surge::chaos::BackendKind::Local,
                _ => surge::chaos::BackendKind::Kubernetes,
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
            ..Default::default()
        }
    }
}

#[derive(clap::Args)]
struct CalibrateArgs {
    /// Scenario replayed at each step (open model; its own load is replaced).
    scenario: Option<PathBuf>,
    /// Analyse the stages of an earlier open-model bundle instead of running.
    #[arg(long, conflicts_with = "scenario")]
    from_bundle: Option<PathBuf>,
    /// Base URL to drive instead of the scenario's.
    #[arg(long)]
    target: Option<String>,
    /// Replicas serving during the measurement.
    #[arg(long)]
    replicas: u32,
    /// p99 latency the SLO allows.
    #[arg(long, value_parser = surge::scenario::parse_duration)]
    slo_p99: Duration,
    /// Error budget, percent.
    #[arg(long, default_value_t = 1.0)]
    error_budget: f64,
    /// First step's arrivals per second.
    #[arg(long, default_value_t = 10.0)]
    start_rate: f64,
    /// Arrivals per second added at each step.
    #[arg(long, default_value_t = 10.0)]
    step_rate: f64,
    /// Length of each step.
    #[arg(long, default_value = "20s", value_parser = surge::scenario::parse_duration)]
    step_duration: Duration,
    /// At most this many steps.
    #[arg(long, default_value_t = 8)]
    max_steps: usize,
    /// Everyday demand, requests per second (default: a quarter of the peak).
    #[arg(long)]
    base_rate: Option<f64>,
    /// Peak demand, requests per second (default: the measured cluster capacity).
    #[arg(long)]
    peak_rate: Option<f64>,
    /// Load growth, percent per minute, the HPA must keep up with.
    #[arg(long, default_value_t = 10.0)]
    growth_per_minute: f64,
    /// Scaling metric window.
    #[arg(long, default_value = "30s", value_parser = surge::scenario::parse_duration)]
    metric_window: Duration,
    /// Pod start-up time (known; or see --pod-start-from).
    #[arg(long, default_value = "60s", value_parser = surge::scenario::parse_duration)]
    pod_start: Duration,
    /// Take the pod start-up time from a chaos run's bundle: the median time
    /// from a pod kill until its replacement was ready.
    #[arg(long, conflicts_with = "pod_start")]
    pod_start_from: Option<PathBuf>,
    /// Readiness delay after start.
    #[arg(long, default_value = "15s", value_parser = surge::scenario::parse_duration)]
    readiness: Duration,
    /// Connection hold time per request (e.g. HikariCP usage time); pools are sized only with it.
    #[arg(long, value_parser = surge::scenario::parse_duration)]
    hold: Option<Duration>,
    /// Acceptable probability of waiting for a connection, percent.
    #[arg(long, default_value_t = 5.0)]
    wait_probability: f64,
    /// Smallest pool allowed (deadlock-free minimum).
    #[arg(long, default_value_t = 1)]
    pool_floor: u32,
    /// Connections the database allows the application (default: PostgreSQL's 100 − 3 reserved).
    #[arg(long, default_value_t = 97)]
    connection_budget: u32,
    /// Kind of the workload the HPA scales.
    #[arg(long, default_value = "Deployment", value_parser = ["Deployment", "StatefulSet"])]
    kind: String,
    /// Name of the workload.
    #[arg(long, default_value = "app")]
    name: String,
    /// Namespace of the workload.
    #[arg(long)]
    namespace: Option<String>,
    /// Per-pod request-rate metric the HPA reads (through a metrics adapter).
    #[arg(long, default_value = "http_server_requests_per_second")]
    metric: String,
    /// Replay the scenario at the recommended per-pod rate × replicas and check it holds the SLO.
    #[arg(long)]
    verify: bool,
    /// A replica's Prometheus endpoint (e.g. http://pod:8081/actuator/prometheus), scraped
    /// during the staircase for HikariCP pool series; repeatable. Measures the hold time.
    #[arg(long = "metrics-url")]
    metrics_urls: Vec<String>,
    /// Also write a KEDA ScaledObject reading request rate from this Prometheus server.
    #[arg(long)]
    keda_prometheus: Option<String>,
    /// The PromQL query of the cluster's total request rate, for KEDA.
    #[arg(
        long,
        default_value = "sum(rate(http_server_requests_seconds_count[1m]))"
    )]
    keda_query: String,
    /// Folder for the calibration bundle.
    #[arg(long, default_value = "reports")]
    out: PathBuf,
}

#[derive(Subcommand)]
enum SimCommand {
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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: a log redirected to a file stays plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            return cannot_run(format!("cannot start the async runtime: {e}"));
        }
    };
    runtime.block_on(dispatch(cli.command))
}

async fn dispatch(command: Command) -> ExitCode {
    match command {
        Command::Run(args) => {
            let request = RunRequest {
                scenario: args.scenario,
                target: args.target,
                load: LoadOverride {
                    rate: args.rate,
                    users: args.users,
                    duration: args.duration,
                    think_scale: args.think_scale,
                    persona_weights: args.personas,
                },
                thresholds: args.thresholds,
                replicas: args.replicas,
                out_dir: args.out,
                progress: !args.no_progress,
                chaos: args.chaos.request(),
                exit_on_second_signal: true,
            };
            if args.chaos.dry_run {
                return match run::chaos_dry_run(&request) {
                    Ok(lines) => {
                        println!("dry run: nothing is sent and nothing is touched");
                        for line in lines {
                            println!("{line}");
                        }
                        ExitCode::SUCCESS
                    }
                    Err(e) => finish(Err(e)),
                };
            }
            finish(run::run(&request).await)
        }
        Command::Demo {
            scenario,
            duration,
            out,
            chaos,
        } => match demo::demo(scenario, duration, out, chaos).await {
            Ok(outcome) => finish(outcome),
            Err(why) => cannot_run(why),
        },
        Command::Check { scenarios } => {
            let mut failed = false;
            for path in scenarios {
                match surge::scenario::Scenario::load(&path) {
                    Ok(s) => println!(
                        "{}: ok ({} personas, {} requests, {} model)",
                        path.display(),
                        s.personas.len(),
                        s.requests.len(),
                        s.load.model_name()
                    ),
                    Err(e) => {
                        eprintln!("{e}");
                        failed = true;
                    }
                }
            }
            ExitCode::from(if failed { 2 } else { 0 })
        }
        Command::Report { bundle } => match surge::report::rerender(&bundle) {
            Ok(results) => {
                print!("{}", surge::report::terminal_summary(&results));
                println!("\nre-rendered: {}", bundle.display());
                verdict_code(&results)
            }
            Err(e) => cannot_run(format!("{e:#}")),
        },
        Command::Compare {
            baseline,
            current,
            limits,
        } => compare(&baseline, &current, &limits),
        Command::Calibrate(args) => calibrate(args).await,
        Command::Plan {
            replicas,
            pool,
            pgbouncer_pool,
            max_connections,
            reserved,
        } => {
            let check = surge::calibrate::pool::check(&surge::calibrate::pool::Plan {
                replicas,
                pool,
                pgbouncer_pool,
                max_connections,
                reserved,
            });
            for line in &check.lines {
                println!("{line}");
            }
            if check.lines.is_empty() {
                println!("no limit given: add --pgbouncer-pool and/or --max-connections");
            }
            println!(
                "{}",
                if check.fits {
                    "the plan fits"
                } else {
                    "the plan does NOT fit"
                }
            );
            ExitCode::from(if check.fits { 0 } else { 1 })
        }
        Command::Sim(SimCommand::Replica(options)) => {
            match surge_sim::replica::serve(options).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("replica: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Sim(SimCommand::Fixtures { out }) => {
            match std::fs::write(&out, surge_sim::data::patients_csv()) {
                Ok(()) => {
                    println!(
                        "wrote {} ({} patients)",
                        out.display(),
                        surge_sim::data::PATIENTS
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => cannot_run(format!("cannot write {}: {e}", out.display())),
            }
        }
        Command::Sim(SimCommand::Up(options)) => match demo::sim_up(options).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(why) => cannot_run(why),
        },
    }
}

fn compare(baseline: &std::path::Path, current: &std::path::Path, limits: &[String]) -> ExitCode {
    let limits: Result<Vec<_>, _> = limits
        .iter()
        .map(|l| surge::compare::parse_limit(l))
        .collect();
    let limits = match limits {
        Ok(l) => l,
        Err(e) => {
            return cannot_run(format!("{e}"));
        }
    };
    let sides = surge::report::comparison_side(baseline)
        .and_then(|b| Ok((b, surge::report::comparison_side(current)?)));
    let ((base_results, base), (cur_results, cur)) = match sides {
        Ok(s) => s,
        Err(e) => {
            return cannot_run(format!("{e:#}"));
        }
    };
    println!(
        "baseline {} ({}), current {} ({})",
        base_results.run_id, base_results.scenario, cur_results.run_id, cur_results.scenario
    );
    let comparison = surge::compare::compare(&base, &cur, &limits);
    print!("{}", surge::report::comparison_table(&comparison));
    if comparison.regressed() {
        println!("\nREGRESSION beyond the allowed limits");
        ExitCode::from(1)
    } else {
        println!("\nno regression beyond the allowed limits");
        ExitCode::SUCCESS
    }
}

/// The median kill-to-ready time a chaos run measured.
fn pod_start_from(bundle: &std::path::Path) -> anyhow::Result<f64> {
    let (median, why) = surge::bundle::startup_from_bundle(bundle)?;
    println!("{why}");
    Ok(median)
}

async fn calibrate(a: CalibrateArgs) -> ExitCode {
    use surge::calibrate::{self, capacity::Slo, manifest, Demand};
    let slo = Slo {
        p99_ms: a.slo_p99.as_secs_f64() * 1000.0,
        error_budget: a.error_budget / 100.0,
    };
    let id = run::new_run_id(&a.out, "calibrate");
    let dir = a.out.join(&id);
    let stairs = a
        .scenario
        .as_ref()
        .map(|scenario| surge::run::staircase::Staircase {
            scenario: scenario.clone(),
            target: a.target.clone(),
            start_rate: a.start_rate,
            step_rate: a.step_rate,
            step_duration: a.step_duration,
            max_steps: a.max_steps,
            slo,
            out_dir: dir.join("steps"),
        });
    let mut pool_samples = Vec::new();
    let steps = match (&stairs, &a.from_bundle) {
        (_, Some(bundle)) => {
            surge::run::staircase::steps_from_bundle(bundle).map_err(|e| format!("{e:#}"))
        }
        (Some(stairs), None) => {
            println!(
                "staircase: up to {} steps of {:?} from {}/s by {}/s, SLO p99 ≤ {:?}",
                a.max_steps, a.step_duration, a.start_rate, a.step_rate, a.slo_p99
            );
            let scraper = (!a.metrics_urls.is_empty()).then(|| {
                surge::run::scrape::Scraper::start(a.metrics_urls.clone(), Duration::from_secs(1))
            });
            let climbed = surge::run::staircase::climb(stairs, |s, bundle| {
                println!("  {:.1}/s offered → {:.1}/s achieved, p99 {:.1} ms, errors {:.2}%, dropped {} ({})", s.rate, s.achieved, s.p99_ms, s.error_rate * 100.0, s.dropped, bundle.display())
            })
            .await
            .map_err(|e| e.to_string());
            if let Some(scraper) = scraper {
                pool_samples = scraper.finish().await;
            }
            climbed
        }
        (None, None) => Err("give a scenario to run, or --from-bundle DIR".into()),
    };
    let steps = match steps {
        Ok(s) if !s.is_empty() => s,
        Ok(_) => {
            return cannot_run("no step completed".to_owned());
        }
        Err(e) => {
            return cannot_run(format!("{e}"));
        }
    };
    let measured_hold = surge::calibrate::pool::hold_time(&pool_samples);
    let pod_start_s = match &a.pod_start_from {
        None => a.pod_start.as_secs_f64(),
        Some(bundle) => match pod_start_from(bundle) {
            Ok(s) => s,
            Err(e) => {
                return cannot_run(format!("--pod-start-from {}: {e:#}", bundle.display()));
            }
        },
    };
    let demand = Demand {
        base_rate: a.base_rate,
        peak_rate: a.peak_rate,
        growth_per_s: a.growth_per_minute / 100.0 / 60.0,
        metric_window_s: a.metric_window.as_secs_f64(),
        pod_start_s,
        readiness_s: a.readiness.as_secs_f64(),
        hold_s: a
            .hold
            .map(|h| h.as_secs_f64())
            .or(measured_hold.map(|(hold, _)| hold)),
        wait_probability: a.wait_probability / 100.0,
        pool_floor: a.pool_floor,
        connection_budget: a.connection_budget,
    };
    let mut result = calibrate::analyse(steps, a.replicas, slo, &demand);
    if !pool_samples.is_empty() {
        let reason = match measured_hold {
            Some((hold, n)) => format!(
                "connection hold time measured from hikaricp_connections_usage_seconds: {:.1} ms over {n:.0} checkouts{}; up to {:.0} threads waited for a connection",
                hold * 1000.0,
                if a.hold.is_some() { " (--hold given, used instead)" } else { "" },
                surge::calibrate::pool::max_pending(&pool_samples)
            ),
            None => "the metrics endpoints showed no connection checkouts".to_owned(),
        };
        result.reasons.insert(0, reason);
        result.pool_metrics = pool_samples;
    }
    let mut verified = true;
    if let (true, Some(stairs), Some(plan)) = (a.verify, &stairs, &result.hpa) {
        let rate = plan.target_per_pod * a.replicas as f64;
        match surge::run::staircase::run_step(stairs, rate).await {
            Ok(Some((step, _))) => {
                verified = step.meets(&slo);
                result.reasons.push(format!(
                    "verification: {rate:.1} req/s (the HPA target × {} replicas) gave p99 {:.0} ms, errors {:.2}%: {}",
                    a.replicas,
                    step.p99_ms,
                    step.error_rate * 100.0,
                    if verified { "the SLO holds" } else { "the SLO does NOT hold" }
                ));
                result.verification = Some(step);
            }
            Ok(None) => verified = false,
            Err(e) => {
                eprintln!(
                    "error: verification run failed: {}",
                    surge::scenario::redact_text(&e.to_string())
                );
                verified = false;
            }
        }
    }
    print!("\n{}", surge::report::staircase_table(&result.steps));
    println!();
    for reason in &result.reasons {
        println!("- {reason}");
    }
    let written = (|| -> anyhow::Result<()> {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("calibration.json"),
            serde_json::to_vec_pretty(&result)?,
        )?;
        std::fs::write(
            dir.join("calibration.html"),
            surge::report::calibration_html(&result)?,
        )?;
        if let Some(plan) = &result.hpa {
            let workload = manifest::Workload {
                kind: a.kind.clone(),
                name: a.name.clone(),
                namespace: a.namespace.clone(),
                metric: a.metric.clone(),
            };
            let hpa = manifest::hpa(&workload, plan);
            let pools = match (&result.pool, &result.knobs) {
                (Some(p), Some(k)) => Some(manifest::PoolSettings {
                    per_replica: p.clone(),
                    knobs: k.clone(),
                }),
                _ => None,
            };
            let keda = a
                .keda_prometheus
                .as_ref()
                .map(|server| manifest::keda(&workload, plan, server, &a.keda_query));
            let yaml = manifest::to_yaml(&hpa, pools.as_ref(), keda.as_ref())?;
            std::fs::write(dir.join("recommendations.yaml"), yaml)?;
        }
        Ok(())
    })();
    match written {
        Ok(()) => {
            println!("\ncalibration: {}", dir.display());
            ExitCode::from(if result.hpa.is_some() && verified {
                0
            } else {
                1
            })
        }
        Err(e) => cannot_run(format!("cannot write the calibration: {e:#}")),
    }
}

fn verdict_code(results: &surge::bundle::RunResults) -> ExitCode {
    if results.interrupted.is_some() {
        ExitCode::from(3)
    } else if results.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Exit 2, "the run could not be carried out", saying why on stderr with any
/// credentials a URL in the message carried cut out.
fn cannot_run(why: String) -> ExitCode {
    eprintln!("error: {}", surge::scenario::redact_text(&why));
    ExitCode::from(2)
}

fn finish(outcome: Result<run::RunReport, RunError>) -> ExitCode {
    match outcome {
        Ok(report) => {
            print!("{}", surge::report::terminal_summary(&report.results));
            println!("\nbundle: {}", report.bundle.display());
            verdict_code(&report.results)
        }
        Err(e) => cannot_run(format!("{e}")),
    }
}
