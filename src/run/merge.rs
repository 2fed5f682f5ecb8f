//! `surge merge BUNDLE… --out DIR`: reads the shards' bundles, merges them
//! ([`crate::merge`], pure) and writes one bundle that every other command
//! reads.

use super::{new_run_id, write_somewhere, RunError, RunReport, Write};
use crate::bundle::{self, hdr, CellHistograms};
use crate::merge::Part;
use std::path::{Path, PathBuf};

/// What to merge.
#[derive(Debug, Clone, Default)]
pub struct MergeRequest {
    /// The shards' (or earlier merges') bundle folders.
    pub bundles: Vec<PathBuf>,
    /// Folder the merged bundle goes in.
    pub out_dir: PathBuf,
    /// Merge even when shards of the test are missing (the bundle says so).
    pub allow_partial: bool,
}

/// Reads one bundle folder for merging.
pub fn read_part(dir: &Path) -> Result<Part, RunError> {
    let name = dir.display().to_string();
    let results = bundle::read_results(dir).map_err(|e| RunError::Usage(format!("{e:#}")))?;
    let read = |file: &str| {
        bundle::read_histogram(&dir.join(file)).map_err(|e| RunError::Usage(format!("{e:#}")))
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
    let timeline = hdr::read_timeline(dir).map_err(|e| RunError::Usage(format!("{e:#}")))?;
    Ok(Part {
        name,
        results,
        histograms,
        visible,
        timeline,
    })
}

/// Merges the request's bundles and writes the merged bundle.
pub fn merge(request: &MergeRequest) -> Result<RunReport, RunError> {
    if request.bundles.is_empty() {
        return Err(RunError::Usage(
            "nothing to merge: give the shards' bundle folders".into(),
        ));
    }
    let parts = request
        .bundles
        .iter()
        .map(|dir| read_part(dir))
        .collect::<Result<Vec<_>, _>>()?;
    let name = format!("{}-merged", parts[0].results.scenario);
    let run_id = new_run_id(&request.out_dir, &name);
    let measurements =
        crate::merge::merge(parts, request.allow_partial, &run_id).map_err(RunError::Usage)?;
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
