//! How a command ended: the [`Outcome`] each subcommand returns, the
//! summary a finished run prints, and the exit code each outcome maps to
//! (the one place; `cli::EXIT_CODES` documents them).

use std::process::ExitCode;
use surge::run::{self, RunError};

/// How a command ended, as its exit code says (see `cli::EXIT_CODES`).
pub enum Outcome {
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
    pub fn of(passed: bool) -> Outcome {
        if passed {
            Outcome::Passed
        } else {
            Outcome::Failed
        }
    }

    pub fn exit_code(self) -> ExitCode {
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

/// A run's verdict: interrupted, passed, or failed.
pub fn verdict(results: &surge::bundle::RunResults) -> Outcome {
    if results.interrupted.is_some() {
        Outcome::Interrupted
    } else {
        Outcome::of(results.passed())
    }
}

/// A finished run's summary and verdict, or why it could not run.
pub fn finished(outcome: Result<run::RunReport, RunError>) -> Outcome {
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
pub fn shard_finished(outcome: Result<run::RunReport, RunError>) -> Outcome {
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
