//! The result bundle: the on-disk contract between running and analysing.
//!
//! A run's producers (the recorder, the session and consistency ledgers,
//! chaos, calibration's scraper) fill these plain, serde-able types; every
//! consumer (thresholds, compare, calibration from a bundle, the reports)
//! reads them. Nothing here imports another surge module: this is the
//! ground floor.
//!
//! A bundle folder holds `summary.json` ([`RunResults`], see
//! [`SCHEMA_VERSION`]) and one HDR histogram file per cell under `hdr/`
//! ([`hdr`]); the report formats are written beside them by `report`.

mod attribution;
mod autoscaling;
mod calibration;
mod chaos;
mod consistency;
mod environment;
pub mod hdr;
mod results;
mod sessions;
mod shard;
mod vocabulary;
mod writes;

/// Adds counts by key (reasons, values) from another part.
pub fn add_counts(
    into: &mut std::collections::BTreeMap<String, u64>,
    from: &std::collections::BTreeMap<String, u64>,
) {
    for (k, n) in from {
        *into.entry(k.clone()).or_default() += n;
    }
}

pub use attribution::{
    Attribution, ReadBackReplica, ReadBackTraffic, ReplicaAliases, UNMAPPED_REPLICA,
};
pub use autoscaling::{
    AutoscalerSample, AutoscalingForecast, AutoscalingSummary, AutoscalingTimeline,
};
pub use calibration::{PodCpuReading, PoolSample, Step, StepCpu};
pub use chaos::{ChaosEvent, ChaosReport, Impact, Outcome, ReplicaCount};
pub use consistency::{ConsistencyVerdict, Problem, ReplicaCounts, Verdict, MAX_PROBLEMS};
pub use environment::{Control, Environment, Lateness};
pub use hdr::{read_histogram, TimelineHistograms, TIMELINE_HDR, VISIBLE_HDR};
pub use results::*;
pub use sessions::{DropEvent, DropSecond, SessionVerdict, Transition, MAX_EVENTS};
pub use shard::{Expectations, FeederLedger, MergeInfo, ShardInfo, MAX_LEDGER_ROWS};
pub use vocabulary::{LatencySlo, LatencyStat, LoadModel};
pub use writes::{LostWrite, Outage, Stall, WriteAudit, Writes, MAX_LOST_LISTED};

use anyhow::Context;
use hdrhistogram::Histogram;
use std::path::{Path, PathBuf};

/// A histogram cell for the bundle.
pub struct CellHistograms {
    /// Latency from the scheduled start.
    pub latency: Histogram<u64>,
    /// Service time from the send.
    pub service: Histogram<u64>,
}

/// What the recorder (`measure::Recorder::finish`) returns: plain results and the histograms behind them.
pub struct Measurements {
    /// Plain results; `results.cells[i]` goes with `histograms[i]`.
    pub results: RunResults,
    /// The histograms of each cell.
    pub histograms: Vec<CellHistograms>,
    /// Time until uploads were visible on every replica (µs), if any were checked.
    pub visible: Option<Histogram<u64>>,
    /// When the load began (the instant the timeline's second 0 starts).
    pub began: Option<std::time::SystemTime>,
    /// Every second's latency histogram, overall (`all`) and per request.
    pub timeline: hdr::TimelineHistograms,
}

/// Reads `summary.json` from a bundle folder (or the file itself).
pub fn read_results(path: &Path) -> anyhow::Result<RunResults> {
    let file: PathBuf = if path.is_dir() {
        path.join("summary.json")
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let results: RunResults = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a surge summary", file.display()))?;
    if results.schema_version != SCHEMA_VERSION {
        anyhow::bail!(
            "{} has schema_version {}, this surge reads {}",
            file.display(),
            results.schema_version,
            SCHEMA_VERSION
        );
    }
    Ok(results)
}

/// The pod start-up time a chaos run measured (median kill-to-ready), for
/// the HPA calibration's reaction time, with a sentence saying where it came from.
pub fn startup_from_bundle(bundle: &std::path::Path) -> anyhow::Result<(f64, String)> {
    let results = read_results(bundle)?;
    let chaos = results
        .chaos
        .ok_or_else(|| anyhow::anyhow!("run {} had no chaos", results.run_id))?;
    let median = chaos
        .median_startup_s()
        .ok_or_else(|| anyhow::anyhow!("run {} has no pod kill that recovered", results.run_id))?;
    let why = format!(
        "pod start-up {median:.1} s: median of {} kill-to-ready times measured by chaos run {}",
        chaos.pod_startup_s.len(),
        results.run_id
    );
    Ok((median, why))
}
