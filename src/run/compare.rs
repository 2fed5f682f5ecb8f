//! `surge compare`: the bundles read (baselines may be a folder of them),
//! the limits parsed, and the comparison made (the analysis is `compare`'s,
//! the table `report`'s).

use super::RunError;
use crate::compare::{compare, parse_limit, Comparison};
use std::path::{Path, PathBuf};

/// A comparison of bundles.
#[derive(Debug)]
pub struct Compared {
    /// `baseline RUN (SCENARIO), current RUN (SCENARIO)`.
    pub heading: String,
    /// Per request and statistic.
    pub comparison: Comparison,
}

/// The bundles `path` names: itself when it holds a `summary.json` (or is
/// one), else every bundle folder inside it, oldest name first.
pub fn bundles_at(path: &Path) -> Result<Vec<PathBuf>, RunError> {
    if path.is_file() || path.join("summary.json").is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| RunError::Bundle(format!("{}: {e}", path.display())))?;
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("summary.json").is_file())
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(RunError::NoBundle(path.to_path_buf()));
    }
    Ok(found)
}

/// Compares `current` with the `baselines` (bundle folders, summary files,
/// or folders of bundles: the last passing runs of the same build) under
/// `limits` such as `p95=10%` or `error_rate=1%`.
pub fn compare_bundles(
    baselines: &[PathBuf],
    current: &Path,
    limits: &[String],
) -> Result<Compared, RunError> {
    let limits = limits
        .iter()
        .map(|l| parse_limit(l))
        .collect::<Result<Vec<_>, _>>()
        .map_err(RunError::Limit)?;
    let mut paths = Vec::new();
    for b in baselines {
        paths.extend(bundles_at(b)?);
    }
    if paths.is_empty() {
        return Err(RunError::NoBaseline);
    }
    let mut sides = Vec::new();
    let mut names = Vec::new();
    let mut base_results = Vec::new();
    for p in &paths {
        let (results, side) = crate::report::comparison_side(p)?;
        names.push(format!("{} ({})", results.run_id, results.scenario));
        sides.push(side);
        base_results.push(results);
    }
    let (cur_results, cur) = crate::report::comparison_side(current)?;
    let baseline = match names.as_slice() {
        [one] => format!("baseline {one}"),
        many => format!(
            "{} baselines ({} … {})",
            many.len(),
            many[0],
            many[many.len() - 1]
        ),
    };
    Ok(Compared {
        heading: format!(
            "{baseline}, current {} ({})",
            cur_results.run_id, cur_results.scenario
        ),
        comparison: Comparison {
            verdicts: crate::compare::verdict_regressions(
                &base_results.iter().collect::<Vec<_>>(),
                &cur_results,
            ),
            ..compare(&sides, &cur, &limits)
        },
    })
}
