//! `surge compare`: two bundles read, the limits parsed, and the
//! comparison made (the analysis is `compare`'s, the table `report`'s).

use super::RunError;
use crate::compare::{compare, parse_limit, Comparison};
use std::path::Path;

/// A comparison of two bundles.
#[derive(Debug)]
pub struct Compared {
    /// `baseline RUN (SCENARIO), current RUN (SCENARIO)`.
    pub heading: String,
    /// Per request and statistic.
    pub comparison: Comparison,
}

/// Compares `current` with `baseline` (bundle folders or summary files)
/// under `limits` such as `p95=10%` or `error_rate=1%`.
pub fn compare_bundles(
    baseline: &Path,
    current: &Path,
    limits: &[String],
) -> Result<Compared, RunError> {
    let limits = limits
        .iter()
        .map(|l| parse_limit(l))
        .collect::<Result<Vec<_>, _>>()
        .map_err(RunError::Usage)?;
    let (base_results, base) = crate::report::comparison_side(baseline)?;
    let (cur_results, cur) = crate::report::comparison_side(current)?;
    Ok(Compared {
        heading: format!(
            "baseline {} ({}), current {} ({})",
            base_results.run_id, base_results.scenario, cur_results.run_id, cur_results.scenario
        ),
        comparison: compare(&base, &cur, &limits),
    })
}
