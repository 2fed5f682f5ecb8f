//! Why a run, a calibration, a merge or a comparison could not be carried
//! out: one enum, each variant naming the flag or the file at fault.

use crate::scenario::{OverrideError, ScenarioError};
use std::path::PathBuf;

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scenario file is wrong.
    #[error("{0}")]
    Scenario(#[from] ScenarioError),
    /// `--shard` cannot split this scenario.
    #[error("--shard {index}/{count}: {why}")]
    Shard {
        /// The shard asked for.
        index: u32,
        /// Of this many.
        count: u32,
        /// Why the scenario cannot be split so.
        why: String,
    },
    /// The scenario file could not be read again (for a shard's fingerprint).
    #[error("cannot read {}: {why}", path.display())]
    ScenarioUnreadable {
        /// The file.
        path: PathBuf,
        /// What the system said.
        why: String,
    },
    /// `--start-at` too far ahead.
    #[error("--start-at {0} is more than 24 h from now")]
    StartTooLate(String),
    /// The chaos plan is refused or its backend cannot be reached.
    #[error("chaos: {0}")]
    Chaos(String),
    /// The HPA to watch is named without what it needs, or cannot be read.
    #[error("autoscaler: {0}")]
    Autoscaler(String),
    /// A bundle cannot be read (merge, compare), and why.
    #[error("{0}")]
    Bundle(String),
    /// A folder given holds no bundle.
    #[error("{} holds no bundle (no summary.json in it or in its folders)", .0.display())]
    NoBundle(PathBuf),
    /// `surge compare` without a baseline.
    #[error("give at least one baseline bundle")]
    NoBaseline,
    /// A `--max-regression` limit that does not parse.
    #[error("{0}")]
    Limit(String),
    /// `surge merge` with no bundles (none given, none arrived).
    #[error("nothing to merge: give the shards' bundle folders")]
    NothingToMerge,
    /// `--wait` beyond its limit.
    #[error("--wait is at most 7 days")]
    WaitTooLong,
    /// A flag naming a folder that is not one.
    #[error("{flag} {}: not a folder", path.display())]
    NotAFolder {
        /// The flag.
        flag: &'static str,
        /// What it named.
        path: PathBuf,
    },
    /// `--from` named a folder that did not appear within `--wait`.
    #[error("--from {}: no such folder, and none appeared within --wait {}", path.display(), humantime::format_duration(*waited))]
    NoFolderAppeared {
        /// What it named.
        path: PathBuf,
        /// How long surge waited.
        waited: std::time::Duration,
    },
    /// The staircase's flags cannot climb.
    #[error("{0}")]
    Staircase(String),
    /// The staircase ended before its first step did.
    #[error("no step completed")]
    NoStep,
    /// `--ramp` or `--ramp-hpa` names nothing a forecast can use.
    #[error("{flag} {}: {why}", path.display())]
    Ramp {
        /// The flag.
        flag: &'static str,
        /// The file it named.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// `--forecast` names no ramp forecast the run can be compared with.
    #[error("--forecast {}: {why}", path.display())]
    Forecast {
        /// The calibration bundle it named.
        path: PathBuf,
        /// Why it cannot be used.
        why: String,
    },
    /// `--selector`: the pods' CPU cannot be read through metrics.k8s.io.
    #[error("--selector {selector}: cannot read the pods' CPU: {why}")]
    PodCpu {
        /// The selector.
        selector: String,
        /// Why.
        why: String,
    },
    /// `surge import`: a recording cannot be read, or imported as it is.
    #[error("{}{}: {why}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Import {
        /// The file.
        file: PathBuf,
        /// Its line, when one is at fault.
        line: Option<u64>,
        /// What was expected, or what went wrong.
        why: String,
    },
    /// `--pod-start-from` names no usable chaos bundle.
    #[error("--pod-start-from {}: {why}", path.display())]
    PodStartFrom {
        /// The bundle.
        path: PathBuf,
        /// Why it gives no start-up time.
        why: String,
    },
    /// A command-line change to the scenario is wrong.
    #[error(transparent)]
    CommandLine(#[from] OverrideError),
    /// The bundles cannot be merged into one test.
    #[error(transparent)]
    Merge(#[from] crate::merge::MergeError),
    /// The scenario's credentials do not work (checked once before the load).
    #[error("auth does not work, so no load was sent: {0}")]
    Auth(String),
    /// The target does not answer.
    #[error("target {url} is unreachable: {why}")]
    Unreachable {
        /// Base URL.
        url: String,
        /// What happened.
        why: String,
    },
    /// Stopped by Ctrl-C or SIGTERM before anything was measured, and why.
    #[error("{0}")]
    Interrupted(String),
    /// Anything else (the bundle could not be written, the engine failed to start).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}
