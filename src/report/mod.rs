//! The result bundle: what a run writes to `reports/<run-id>/`, and the
//! terminal summary.
//!
//! Results are plain data ([`RunResults`]); each file format is one small
//! module implementing the private `Export` trait (`serialize(results) ->
//! bytes`), and [`write_bundle`] writes them all, plus the HDR histograms
//! that `summary.json` points to. `surge report DIR` reads a bundle back.
//!
//! What a report says is decided once: `sections` builds a run's content
//! from `content`'s pieces (lines, tables), and the terminal summary,
//! `summary.md` and `report.html` render it, adding only their syntax.

mod autoscaling;
mod calibration;
mod carried;
mod chaos;
mod charts;
mod compare;
mod content;
mod csv;
mod figures;
mod html;
mod json;
mod junit;
mod markdown;
pub mod otlp;
pub mod remote_write;
mod sections;
mod staircase;
mod terminal;

use crate::bundle::{read_histogram, read_results, Measurements, RunResults};
use anyhow::Context;
use std::path::Path;

pub use calibration::{
    html as calibration_html, text as calibration_text, write as write_calibration, Recommendations,
};
pub use compare::comparison_table;
pub use staircase::staircase_table;
pub use terminal::summary as terminal_summary;

/// One output format: of a run (the default), or of a calibration.
trait Export<T = RunResults> {
    /// File name inside the bundle.
    fn file_name(&self) -> &'static str;
    /// The file's bytes.
    fn serialize(&self, input: &T) -> anyhow::Result<Vec<u8>>;
}

/// Writes each of `exporters` for `input` into `dir`.
fn write_all<T>(dir: &Path, input: &T, exporters: &[&dyn Export<T>]) -> anyhow::Result<()> {
    for exporter in exporters {
        let path = dir.join(exporter.file_name());
        let bytes = exporter
            .serialize(input)
            .with_context(|| format!("cannot render {}", path.display()))?;
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Every format of a run's bundle.
const RUN_FORMATS: [&dyn Export; 6] = [
    &json::Summary,
    &csv::Timeline,
    &csv::Requests,
    &markdown::Summary,
    &junit::Junit,
    &html::Html,
];

/// Writes every format and the histograms into `dir` (created if needed).
pub fn write_bundle(dir: &Path, measurements: &Measurements) -> anyhow::Result<()> {
    write_evidence(dir, measurements)?;
    write_files(dir, &measurements.results)
}

/// Writes what cannot be made again — the histograms and `summary.json` —
/// and nothing that can (`surge report DIR` renders the rest from them):
/// the quick write of a forced end.
pub fn write_evidence(dir: &Path, measurements: &Measurements) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("hdr"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    crate::bundle::hdr::write_all(
        dir,
        &measurements.results,
        &measurements.histograms,
        measurements.visible.as_ref(),
    )?;
    crate::bundle::hdr::write_timeline(dir, &measurements.timeline)?;
    let json = json::Summary;
    let path = dir.join(json.file_name());
    std::fs::write(&path, json.serialize(&measurements.results)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Re-writes every format from results (e.g. after thresholds were judged again).
pub fn write_files(dir: &Path, results: &RunResults) -> anyhow::Result<()> {
    write_all(dir, results, &RUN_FORMATS)?;
    // PNG copies of the charts, for slides and tickets.
    std::fs::create_dir_all(dir.join("charts"))?;
    for chart in charts::list(results) {
        let path = dir.join("charts").join(format!("{}.png", chart.name));
        charts::png(results, &chart, &path)
            .with_context(|| format!("cannot draw {}", path.display()))?;
    }
    Ok(())
}

/// Re-renders every format of a bundle from its `summary.json` (the
/// histograms stay as they are); returns the results.
pub fn rerender(dir: &Path) -> anyhow::Result<RunResults> {
    if !dir.is_dir() {
        anyhow::bail!("{} is not a bundle folder", dir.display());
    }
    let results = read_results(dir)?;
    write_files(dir, &results)?;
    Ok(results)
}

/// The latency histograms of `cells` of the bundle in `dir`, merged.
pub fn merged_latency<'a>(
    dir: &Path,
    cells: impl IntoIterator<Item = &'a crate::bundle::CellStats>,
) -> anyhow::Result<hdrhistogram::Histogram<u64>> {
    // Histograms read back have a fixed range; merge into an auto-resizing one.
    let mut merged = hdrhistogram::Histogram::new(3).expect("3 significant digits is valid");
    for cell in cells {
        let h = read_histogram(&dir.join(&cell.latency_hdr))?;
        merged
            .add(&h)
            .map_err(|e| anyhow::anyhow!("cannot merge histograms of {}: {e:?}", cell.request))?;
    }
    Ok(merged)
}

/// Reads a bundle (folder or its `summary.json`) for `surge compare`: the
/// results, and per request the merged latency histograms and outcomes.
pub fn comparison_side(path: &Path) -> anyhow::Result<(RunResults, crate::compare::Side)> {
    let results = read_results(path)?;
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    let mut side = crate::compare::Side::default();
    for s in &results.requests {
        let cells = results.cells.iter().filter(|c| c.request == s.name);
        side.latency
            .insert(s.name.clone(), merged_latency(&dir, cells)?);
    }
    for s in &results.requests {
        side.outcomes.insert(s.name.clone(), (s.count, s.failed));
    }
    for t in &results.request_timelines {
        side.seconds.insert(t.request.clone(), t.rows.clone());
    }
    side.environment = results.environment.clone();
    Ok((results, side))
}

#[cfg(test)]
mod tests;
