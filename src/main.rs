//! The `surge` command line. Arguments are parsed here (their shape is in
//! `cli.rs`), each subcommand makes one library call, and its outcome maps to
//! an exit code in one place ([`Outcome`]).

mod cli;
mod demo;

use clap::Parser;
use cli::{CalibrateArgs, Cli, Command, SimCommand};
use std::process::ExitCode;
use surge::run::{self, RunError, RunRequest};
use surge::scenario::LoadOverride;

/// How a command ended, as its exit code says (see `cli::EXIT_CODES`).
enum Outcome {
    /// 0: completed, every threshold passed (compare: no regression).
    Passed,
    /// 1: a threshold failed (compare: a regression; plan: it does not fit).
    Failed,
    /// 2: could not be carried out, and why.
    CannotRun(String),
    /// 2: the input was wrong, and the errors are already printed.
    BadInput,
    /// 3: interrupted; whatever was measured is written.
    Interrupted,
    /// 4: compare could not tell (the environments differ).
    Inconclusive,
}

impl Outcome {
    fn of(passed: bool) -> Outcome {
        if passed {
            Outcome::Passed
        } else {
            Outcome::Failed
        }
    }

    fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Passed => ExitCode::SUCCESS,
            Outcome::Failed => ExitCode::from(1),
            Outcome::CannotRun(why) => {
                // Any credentials a URL in the message carried are cut out.
                eprintln!("error: {}", surge::scenario::redact_text(&why));
                ExitCode::from(2)
            }
            Outcome::BadInput => ExitCode::from(2),
            Outcome::Interrupted => ExitCode::from(3),
            Outcome::Inconclusive => ExitCode::from(4),
        }
    }
}

impl From<RunError> for Outcome {
    fn from(e: RunError) -> Outcome {
        if let RunError::Interrupted(why) = &e {
            eprintln!("surge: {why}");
            return Outcome::Interrupted;
        }
        // `{:#}`: an underlying error's whole chain of causes.
        Outcome::CannotRun(format!("{e:#}"))
    }
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
    let outcome = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(dispatch(cli.command)),
        Err(e) => Outcome::CannotRun(format!("cannot start the async runtime: {e}")),
    };
    outcome.exit_code()
}

async fn dispatch(command: Command) -> Outcome {
    match command {
        Command::Run(args) => {
            let arrivals = match args.arrivals.map(|a| a.process(args.seed)).transpose() {
                Ok(arrivals) => arrivals,
                Err(why) => return Outcome::CannotRun(why),
            };
            let (shard, start_at) = match (args.shard(), args.start_at()) {
                (Ok(shard), Ok(start_at)) => (shard, start_at),
                (Err(why), _) | (_, Err(why)) => return Outcome::CannotRun(why),
            };
            let request = RunRequest {
                scenario: args.scenario,
                target: args.target,
                no_auth: args.no_auth,
                load: LoadOverride {
                    rate: args.rate,
                    users: args.users,
                    duration: args.duration,
                    think_scale: args.think_scale,
                    persona_weights: args.personas,
                    arrivals,
                },
                thresholds: args.thresholds,
                replicas: args.replicas,
                out_dir: args.out,
                progress: !args.no_progress,
                chaos: args.chaos.request(),
                exit_on_second_signal: true,
                shard,
                start_at,
            };
            if args.chaos.dry_run {
                return match run::chaos_dry_run(&request) {
                    Ok(lines) => {
                        println!("dry run: nothing is sent and nothing is touched");
                        for line in lines {
                            println!("{line}");
                        }
                        Outcome::Passed
                    }
                    Err(e) => e.into(),
                };
            }
            if shard.is_whole() {
                finished(run::run(&request).await)
            } else {
                shard_finished(run::run(&request).await)
            }
        }
        Command::Demo {
            scenario,
            duration,
            out,
            chaos,
        } => match demo::demo(scenario, duration, out, chaos).await {
            Ok(outcome) => finished(outcome),
            Err(why) => Outcome::CannotRun(why),
        },
        Command::Check { scenarios } => {
            let mut all_good = true;
            for path in scenarios {
                match surge::scenario::Scenario::load(&path) {
                    Ok(s) => {
                        for warning in &s.warnings {
                            eprintln!("{warning}");
                        }
                        println!("{}: ok ({})", path.display(), s.outline())
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        all_good = false;
                    }
                }
            }
            if all_good {
                Outcome::Passed
            } else {
                Outcome::BadInput
            }
        }
        Command::Report { bundle } => match surge::report::rerender(&bundle) {
            Ok(results) => {
                print!("{}", surge::report::terminal_summary(&results));
                println!("\nre-rendered: {}", bundle.display());
                verdict(&results)
            }
            Err(e) => Outcome::CannotRun(format!("{e:#}")),
        },
        Command::Merge {
            bundles,
            from,
            wait,
            out,
            allow_partial,
        } => finished(
            run::merge::merge(&run::merge::MergeRequest {
                bundles,
                out_dir: out,
                allow_partial,
                from,
                wait,
            })
            .await,
        ),
        Command::Compare { bundles, limits } => {
            let (current, baselines) = bundles.split_last().expect("clap asks for two bundles");
            match run::compare::compare_bundles(baselines, current, &limits) {
                Ok(compared) => {
                    let c = &compared.comparison;
                    println!("{}", compared.heading);
                    println!("noise: {}", c.noise);
                    print!("{}", surge::report::comparison_table(c));
                    for why in &c.environment {
                        println!("environment differs: {why}");
                    }
                    for what in &c.verdicts {
                        println!("verdict regressed: {what}");
                    }
                    match c.verdict() {
                        surge::compare::Verdict::Pass => {
                            println!("\nno regression beyond the allowed limits");
                            Outcome::Passed
                        }
                        surge::compare::Verdict::Regression => {
                            println!("\nREGRESSION beyond the allowed limits");
                            Outcome::Failed
                        }
                        surge::compare::Verdict::Inconclusive => {
                            println!("\nINCONCLUSIVE: latency regressed, but the runs' environments differ (above); run again on a quiet machine");
                            Outcome::Inconclusive
                        }
                    }
                }
                Err(e) => e.into(),
            }
        }
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
            Outcome::of(check.fits)
        }
        Command::Sim(SimCommand::Replica(options)) => {
            match surge_sim::replica::serve(options).await {
                Ok(()) => Outcome::Passed,
                Err(e) => Outcome::CannotRun(format!("replica: {e:#}")),
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
                    Outcome::Passed
                }
                Err(e) => Outcome::CannotRun(format!("cannot write {}: {e}", out.display())),
            }
        }
        Command::Sim(SimCommand::Up(options)) => match demo::sim_up(options).await {
            Ok(()) => Outcome::Passed,
            Err(why) => Outcome::CannotRun(why),
        },
    }
}

async fn calibrate(a: CalibrateArgs) -> Outcome {
    use surge::calibrate::{capacity::Slo, manifest, Demand};
    use surge::run::calibrate::{CalibrateRequest, StepSource};
    let slo = Slo {
        p99_ms: a.slo_p99.as_secs_f64() * 1000.0,
        error_budget: a.error_budget / 100.0,
    };
    let dir = a.out.join(run::new_run_id(&a.out, "calibrate"));
    let arrivals = match a.arrivals.process(a.seed) {
        Ok(arrivals) => arrivals,
        Err(why) => return Outcome::CannotRun(why),
    };
    let source = match (a.scenario, a.from_bundle) {
        (_, Some(bundle)) => StepSource::FromBundle(bundle),
        (Some(scenario), None) => StepSource::Climb(run::staircase::Staircase {
            scenario,
            target: a.target,
            start_rate: a.start_rate,
            step_rate: a.step_rate,
            step_duration: a.step_duration,
            max_steps: a.max_steps,
            arrivals,
            slo,
            out_dir: dir.join("steps"),
            warm_up: a.warm_up,
        }),
        (None, None) => {
            return Outcome::CannotRun("give a scenario to run, or --from-bundle DIR".into())
        }
    };
    let request = CalibrateRequest {
        source,
        replicas: a.replicas,
        slo,
        demand: Demand {
            base_rate: a.base_rate,
            peak_rate: a.peak_rate,
            growth_per_s: a.growth_per_minute / 100.0 / 60.0,
            metric_window_s: a.metric_window.as_secs_f64(),
            pod_start_s: a.pod_start.as_secs_f64(),
            readiness_s: a.readiness.as_secs_f64(),
            hold_s: a.hold.map(|h| h.as_secs_f64()),
            checkouts_per_request: None,
            wait_probability: a.wait_probability / 100.0,
            pool_floor: a.pool_floor,
            connection_budget: a.connection_budget,
        },
        pod_start_from: a.pod_start_from,
        verify: a.verify,
        metrics_urls: a.metrics_urls,
        recommendations: surge::report::Recommendations {
            workload: manifest::Workload {
                kind: a.kind.as_str().to_owned(),
                name: a.name,
                namespace: a.namespace,
                metric: a.metric,
            },
            keda: a.keda_prometheus.map(|server| (server, a.keda_query)),
        },
        dir,
    };
    match run::calibrate::calibrate(&request, &mut |line| println!("{line}")).await {
        Ok(report) => {
            print!("{}", surge::report::calibration_text(&report.calibration));
            println!("\ncalibration: {}", report.dir.display());
            if report.calibration.interrupted.is_some() {
                Outcome::Interrupted
            } else {
                Outcome::of(report.passed())
            }
        }
        Err(e) => e.into(),
    }
}

/// A run's verdict: interrupted, passed, or failed.
fn verdict(results: &surge::bundle::RunResults) -> Outcome {
    if results.interrupted.is_some() {
        Outcome::Interrupted
    } else {
        Outcome::of(results.passed())
    }
}

/// A finished run's summary and verdict, or why it could not run.
fn finished(outcome: Result<run::RunReport, RunError>) -> Outcome {
    match outcome {
        Ok(report) => {
            print!("{}", surge::report::terminal_summary(&report.results));
            println!("\nbundle: {}", report.bundle.display());
            verdict(&report.results)
        }
        Err(e) => e.into(),
    }
}

/// A shard's end: its summary, and an exit code that says only whether it
/// ran (0), could not (2) or was interrupted (3). Its thresholds judge a part
/// of the test; the test's verdict is `surge merge`'s, and a shard that
/// failed its part's thresholds must not be retried as if it had not run.
fn shard_finished(outcome: Result<run::RunReport, RunError>) -> Outcome {
    match outcome {
        Ok(report) => {
            print!("{}", surge::report::terminal_summary(&report.results));
            println!("\nbundle: {}", report.bundle.display());
            if let Some(s) = &report.results.shard {
                println!(
                    "shard {} of {}: this is part of the test; `surge merge` of all {} bundles gives its verdict",
                    s.index, s.count, s.count
                );
            }
            if report.results.interrupted.is_some() {
                Outcome::Interrupted
            } else {
                Outcome::Passed
            }
        }
        Err(e) => e.into(),
    }
}
