//! The `surge` command line. Only argument parsing and exit codes live here;
//! every subcommand calls into the library.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use surge::runner::{self, RunError, RunRequest};
use surge::scenario::LoadOverride;
use surge::sim::{self, Cluster, ClusterOptions};

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
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// Folder for the bundle.
        #[arg(long, default_value = "reports")]
        out: PathBuf,
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
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
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
}

#[derive(Subcommand)]
enum SimCommand {
    /// Start the cluster and keep it up until Ctrl-C.
    Up(ClusterOptions),
    /// One replica process (the supervisor starts these).
    #[command(hide = true)]
    Replica(sim::replica::ReplicaOptions),
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
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
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
                },
                thresholds: args.thresholds,
                replicas: args.replicas,
                out_dir: args.out,
                progress: !args.no_progress,
            };
            finish(runner::run(&request).await)
        }
        Command::Demo {
            scenario,
            duration,
            out,
        } => demo(scenario, duration, out).await,
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
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Compare {
            baseline,
            current,
            limits,
        } => compare(&baseline, &current, &limits),
        Command::Sim(SimCommand::Replica(options)) => match sim::replica::serve(options).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("replica: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Sim(SimCommand::Fixtures { out }) => {
            match std::fs::write(&out, sim::data::patients_csv()) {
                Ok(()) => {
                    println!("wrote {} ({} patients)", out.display(), sim::data::PATIENTS);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: cannot write {}: {e}", out.display());
                    ExitCode::from(2)
                }
            }
        }
        Command::Sim(SimCommand::Up(options)) => sim_up(options).await,
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
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let sides = surge::report::comparison_side(baseline)
        .and_then(|b| Ok((b, surge::report::comparison_side(current)?)));
    let ((base_results, base), (cur_results, cur)) = match sides {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    println!(
        "baseline {} ({}), current {} ({})",
        base_results.run_id, base_results.scenario, cur_results.run_id, cur_results.scenario
    );
    let comparison = surge::compare::compare(&base, &cur, &limits);
    print!("{}", surge::compare::render(&comparison));
    if comparison.regressed() {
        println!("\nREGRESSION beyond the allowed limits");
        ExitCode::from(1)
    } else {
        println!("\nno regression beyond the allowed limits");
        ExitCode::SUCCESS
    }
}

fn verdict_code(results: &surge::measure::RunResults) -> ExitCode {
    if results.interrupted.is_some() {
        ExitCode::from(3)
    } else if results.thresholds_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn finish(outcome: Result<runner::RunReport, RunError>) -> ExitCode {
    match outcome {
        Ok(report) => {
            print!("{}", surge::report::terminal_summary(&report.results));
            println!("\nbundle: {}", report.bundle.display());
            verdict_code(&report.results)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn this_exe() -> Result<PathBuf, ExitCode> {
    std::env::current_exe().map_err(|e| {
        eprintln!("error: cannot find the surge binary to start replicas: {e}");
        ExitCode::from(2)
    })
}

async fn demo(scenario: PathBuf, duration: Option<Duration>, out: PathBuf) -> ExitCode {
    let exe = match this_exe() {
        Ok(e) => e,
        Err(code) => return code,
    };
    let options = ClusterOptions {
        port: 0,
        ..Default::default()
    };
    let cluster = match Cluster::start(exe, options).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot start the reference cluster: {e:#}");
            return ExitCode::from(2);
        }
    };
    println!(
        "reference cluster: balancer {} with {} replicas (sticky sessions, shared attachments)",
        cluster.url,
        cluster.replicas().len()
    );
    // Read uploads back straight from each replica too, for exact figures.
    let replicas = cluster
        .replicas()
        .into_iter()
        .filter_map(|(_, url, _)| url)
        .collect();
    let request = RunRequest {
        scenario,
        target: Some(cluster.url.clone()),
        replicas,
        load: LoadOverride {
            duration,
            ..Default::default()
        },
        out_dir: out,
        progress: true,
        ..Default::default()
    };
    let outcome = runner::run(&request).await;
    cluster.shutdown().await;
    finish(outcome)
}

async fn sim_up(options: ClusterOptions) -> ExitCode {
    let exe = match this_exe() {
        Ok(e) => e,
        Err(code) => return code,
    };
    let cluster = match Cluster::start(exe, options).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    println!("balancer: {}", cluster.url);
    for (name, url, pid) in cluster.replicas() {
        println!(
            "replica {name}: {} (pid {})",
            url.unwrap_or_default(),
            pid.map(|p| p.to_string()).unwrap_or_default()
        );
    }
    println!("Ctrl-C to stop");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
    cluster.shutdown().await;
    ExitCode::SUCCESS
}
