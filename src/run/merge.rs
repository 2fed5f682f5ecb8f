//! `surge merge BUNDLE… --out DIR`: reads the shards' bundles, merges them
//! ([`crate::merge`], pure) and writes one bundle that every other command
//! reads.

use super::{new_run_id, write_somewhere, RunError, RunReport, Write};
use crate::bundle::{self, hdr, CellHistograms};
use crate::merge::ShardBundle;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What to merge.
#[derive(Debug, Clone, Default)]
pub struct MergeRequest {
    /// The shards' (or earlier merges') bundle folders.
    pub bundles: Vec<PathBuf>,
    /// Folder the merged bundle goes in.
    pub out_dir: PathBuf,
    /// Merge even when shards of the test are missing (the bundle says so).
    pub allow_partial: bool,
    /// A folder the shards write their bundles into: its bundles are merged
    /// (with `bundles`), once every shard's is there or `wait` has passed.
    pub from: Option<PathBuf>,
    /// How long to wait for the shards' bundles in `from`.
    pub wait: Duration,
}

/// Longest `--wait`.
pub const MAX_WAIT: Duration = Duration::from_secs(7 * 24 * 3600);

/// The complete bundles in `dir` (their `summary.json` is written after
/// their histograms), and whether every shard of their test is among them.
fn bundles_in(dir: &Path) -> (Vec<PathBuf>, bool) {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.join("summary.json").is_file())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    let mut count = None;
    let mut indices = std::collections::BTreeSet::new();
    for b in &found {
        if let Ok(r) = bundle::read_results(b) {
            for s in r
                .shard
                .iter()
                .chain(r.merged.iter().flat_map(|m| m.shards.iter()))
            {
                count = Some(s.count);
                indices.insert(s.index);
            }
        }
    }
    let complete = count.is_some_and(|n| (0..n).all(|i| indices.contains(&i)));
    (found, complete)
}

/// Waits until `dir` holds every shard's bundle, at most `wait`; says what
/// it waits for every minute.
async fn await_shards(dir: &Path, wait: Duration) -> Vec<PathBuf> {
    let started = std::time::Instant::now();
    let mut said = std::time::Instant::now();
    loop {
        let (found, complete) = bundles_in(dir);
        if complete || started.elapsed() >= wait {
            return found;
        }
        if said.elapsed() >= Duration::from_secs(60) {
            eprintln!(
                "surge merge: {} bundle(s) in {} so far; waiting for every shard's ({:.0} s left)",
                found.len(),
                dir.display(),
                wait.saturating_sub(started.elapsed()).as_secs_f64()
            );
            said = std::time::Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Reads one bundle folder for merging.
pub fn read_shard_bundle(dir: &Path) -> Result<ShardBundle, RunError> {
    let name = dir.display().to_string();
    let results = bundle::read_results(dir).map_err(|e| RunError::Bundle(format!("{e:#}")))?;
    let read = |file: &str| {
        bundle::read_histogram(&dir.join(file)).map_err(|e| RunError::Bundle(format!("{e:#}")))
    };
    let histograms = results
        .cells
        .iter()
        .map(|c| {
            Ok(CellHistograms {
                latency: read(&c.latency_hdr)?,
                service: read(&c.service_hdr)?,
            })
        })
        .collect::<Result<Vec<_>, RunError>>()?;
    let visible = dir
        .join(bundle::VISIBLE_HDR)
        .exists()
        .then(|| read(bundle::VISIBLE_HDR))
        .transpose()?;
    let timeline = hdr::read_timeline(dir).map_err(|e| RunError::Bundle(format!("{e:#}")))?;
    Ok(ShardBundle {
        name,
        results,
        histograms,
        visible,
        timeline,
    })
}

/// Merges the request's bundles and writes the merged bundle.
pub async fn merge(request: &MergeRequest) -> Result<RunReport, RunError> {
    if request.wait > MAX_WAIT {
        return Err(RunError::WaitTooLong);
    }
    let mut bundles = request.bundles.clone();
    if let Some(dir) = &request.from {
        let not_a_folder = || RunError::NotAFolder {
            flag: "--from",
            path: dir.clone(),
        };
        // A folder not there yet is waited for: in a Kubernetes Job the
        // merge starts beside the shards, and the first shard to finish
        // makes it. A file is never a folder.
        if dir.exists() && !dir.is_dir() || request.wait.is_zero() && !dir.is_dir() {
            return Err(not_a_folder());
        }
        let found = await_shards(dir, request.wait).await;
        if !dir.is_dir() {
            return Err(RunError::NoFolderAppeared {
                path: dir.clone(),
                waited: request.wait,
            });
        }
        bundles.extend(found);
    }
    let request = &MergeRequest {
        bundles,
        ..request.clone()
    };
    if request.bundles.is_empty() {
        return Err(RunError::NothingToMerge);
    }
    let parts = request
        .bundles
        .iter()
        .map(|dir| read_shard_bundle(dir))
        .collect::<Result<Vec<_>, _>>()?;
    let name = format!("{}-merged", parts[0].results.scenario);
    let run_id = new_run_id(&request.out_dir, &name);
    let measurements = crate::merge::merge(parts, request.allow_partial, &run_id)?;
    let _whole = crate::engine::signals::writing();
    let bundle = write_somewhere(
        &request.out_dir.join(&run_id),
        &measurements,
        Write::Everything,
    )?;
    Ok(RunReport {
        bundle,
        results: measurements.results,
    })
}
