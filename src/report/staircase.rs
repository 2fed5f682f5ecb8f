//! A calibration staircase as a table for the terminal: each step's offered
//! and achieved rate, latency percentiles, error rate and dropped arrivals.

use crate::bundle::Step;

/// The staircase as a table.
pub fn staircase_table(steps: &[Step]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>5} {:>10} {:>10} {:>9} {:>9} {:>9} {:>7} {:>8}",
        "step", "rate/s", "achieved", "p50 ms", "p95 ms", "p99 ms", "err%", "dropped"
    );
    for (i, s) in steps.iter().enumerate() {
        let _ = writeln!(
            out,
            "{:>5} {:>10.1} {:>10.1} {:>9.1} {:>9.1} {:>9.1} {:>6.2}% {:>8}",
            i + 1,
            s.rate,
            s.achieved,
            s.p50_ms,
            s.p95_ms,
            s.p99_ms,
            s.error_rate * 100.0,
            s.dropped
        );
    }
    out
}
