//! The `surge` binary: parses the command line (`cli` turns flags into the
//! library's requests), makes one library call per subcommand, prints what
//! it says, and maps its outcome to an exit code in one place ([`Outcome`]).

mod cli;
mod demo;
mod outcome;

use clap::Parser;
use cli::{CalibrateArgs, Cli, Command, PlanArgs, RunArgs, SimCommand};
use outcome::{finished, shard_finished, verdict, Outcome};
use std::process::ExitCode;
use surge::run;

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
        Command::Run(args) => run_command(args).await,
        Command::Demo {
            scenario,
            duration,
            out,
            chaos,
        } => match demo::demo(scenario, duration, out, chaos).await {
            Ok(outcome) => finished(outcome),
            Err(why) => Outcome::CannotRun(why),
        },
        Command::Check { scenarios } => check(&scenarios),
        Command::Report { bundle } => match surge::report::rerender(&bundle) {
            Ok(results) => {
                print!("{}", surge::report::terminal_summary(&results));
                println!("\nre-rendered: {}", bundle.display());
                verdict(&results)
            }
            Err(e) => Outcome::CannotRun(format!("{e:#}")),
        },
        Command::Merge(args) => finished(run::merge::merge(&args.request()).await),
        Command::Compare { bundles, limits } => compare(&bundles, &limits),
        Command::Calibrate(args) => calibrate(args).await,
        Command::Import(command) => import(command),
        Command::Plan(args) => plan(args),
        Command::Sim(command) => sim(command).await,
    }
}

async fn run_command(args: RunArgs) -> Outcome {
    let dry_run = args.chaos.dry_run;
    let request = match args.request() {
        Ok(request) => request,
        Err(why) => return Outcome::CannotRun(why),
    };
    if dry_run {
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
    if request.shard.is_whole() {
        finished(run::run(&request).await)
    } else {
        shard_finished(run::run(&request).await)
    }
}

fn check(scenarios: &[std::path::PathBuf]) -> Outcome {
    let mut all_good = true;
    for path in scenarios {
        match surge::scenario::Scenario::load(path) {
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

fn compare(bundles: &[std::path::PathBuf], limits: &[String]) -> Outcome {
    let (current, baselines) = bundles.split_last().expect("clap asks for two bundles");
    let compared = match run::compare::compare_bundles(baselines, current, limits) {
        Ok(compared) => compared,
        Err(e) => return e.into(),
    };
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
    match c.conclusion() {
        surge::compare::Conclusion::Pass => {
            println!("\nno regression beyond the allowed limits");
            Outcome::Passed
        }
        surge::compare::Conclusion::Regression => {
            println!("\nREGRESSION beyond the allowed limits");
            Outcome::Failed
        }
        surge::compare::Conclusion::Inconclusive => {
            println!("\nINCONCLUSIVE: latency regressed, but the runs' environments differ (above); run again on a quiet machine");
            Outcome::Inconclusive
        }
    }
}

fn plan(args: PlanArgs) -> Outcome {
    let check = surge::calibrate::pool::check(&args.plan());
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

async fn sim(command: SimCommand) -> Outcome {
    match command {
        SimCommand::Replica(options) => match surge_sim::replica::serve(options).await {
            Ok(()) => Outcome::Passed,
            Err(e) => Outcome::CannotRun(format!("replica: {e:#}")),
        },
        SimCommand::Balance(options) => match surge_sim::endpoints::serve(options).await {
            Ok(()) => Outcome::Passed,
            Err(e) => Outcome::CannotRun(format!("balance: {e:#}")),
        },
        SimCommand::MetricsAdapter(options) => {
            match surge_sim::custom_metrics::serve(options).await {
                Ok(()) => Outcome::Passed,
                Err(e) => Outcome::CannotRun(format!("metrics-adapter: {e:#}")),
            }
        }
        SimCommand::Fixtures { out } => match std::fs::write(&out, surge_sim::data::patients_csv())
        {
            Ok(()) => {
                println!(
                    "wrote {} ({} patients)",
                    out.display(),
                    surge_sim::data::PATIENTS
                );
                Outcome::Passed
            }
            Err(e) => Outcome::CannotRun(format!("cannot write {}: {e}", out.display())),
        },
        SimCommand::Up(options) => match demo::sim_up(options).await {
            Ok(()) => Outcome::Passed,
            Err(why) => Outcome::CannotRun(why),
        },
    }
}

fn import(command: cli::ImportCommand) -> Outcome {
    let lines = match command {
        cli::ImportCommand::Log(args) => match args.request() {
            Ok(request) => run::import::import_log(&request).map(|r| r.lines()),
            Err(why) => return Outcome::CannotRun(why),
        },
        cli::ImportCommand::Har(args) => match args.request() {
            Ok(request) => run::import::import_har(&request).map(|r| r.lines()),
            Err(why) => return Outcome::CannotRun(why),
        },
    };
    match lines {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            Outcome::Passed
        }
        Err(e) => e.into(),
    }
}

async fn calibrate(args: CalibrateArgs) -> Outcome {
    let request = match args.request() {
        Ok(request) => request,
        Err(why) => return Outcome::CannotRun(why),
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
