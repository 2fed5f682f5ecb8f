//! A comparison with its baseline as a table for the terminal: one row per
//! request and statistic, both values with their ranges, and the verdict.

use crate::compare::{Change, Comparison};

/// The comparison as a table for the terminal.
pub fn comparison_table(c: &Comparison) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let width = c
        .rows
        .iter()
        .map(|r| r.request.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let _ = writeln!(
        out,
        "{:<width$}  {:<10} {:>12} {:>12} {:>9}  {:<18}",
        "request", "stat", "baseline", "current", "change", "verdict"
    );
    for r in &c.rows {
        let (b, cur, change) = if r.stat == "error_rate" {
            (
                format!("{:.3}%", r.baseline * 100.0),
                format!("{:.3}%", r.current * 100.0),
                format!("{:+.3}pt", r.change * 100.0),
            )
        } else {
            (
                format!("{:.2} ms", r.baseline),
                format!("{:.2} ms", r.current),
                format!("{:+.1}%", r.change * 100.0),
            )
        };
        let verdict = match r.verdict {
            Change::Regression => "REGRESSION",
            Change::WorseWithinLimit => "worse, within limit",
            Change::WithinNoise => "within noise",
            Change::Improved => "improved",
        };
        let _ = writeln!(
            out,
            "{:<width$}  {:<10} {:>12} {:>12} {:>9}  {verdict}",
            r.request, r.stat, b, cur, change
        );
    }
    for name in &c.unmatched {
        let _ = writeln!(out, "{name}: in only one of the runs, not compared");
    }
    out
}
