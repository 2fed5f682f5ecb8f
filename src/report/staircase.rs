//! A calibration staircase as a table for the terminal: each step's offered
//! and achieved rate, latency percentiles, error rate and dropped arrivals;
//! and, when surge read uploads back, the read-backs it sent and what the
//! cluster carried in all (work, setup and read-backs); and, when the pods'
//! CPU was read, each step's CPU per pod.

use crate::bundle::Step;

/// The read-back columns' names.
pub(super) const READ_BACK_COLUMNS: [&str; 2] = ["read-backs/s", "carried/s"];

/// Per step, its read-backs per second and what the cluster carried per
/// second in all; None when no step sent a read-back (the table keeps its
/// usual columns). A step whose read-backs are not known shows "–" in both.
// WHY apart from capacity: read-backs are surge's checks, not the workload
// a pod must serve, so capacity counts work requests only; but the cluster
// carried them, and their latency is in the step's, so the table says how
// much of the step's load they were.
pub(super) fn read_back_cells(steps: &[Step]) -> Option<Vec<[String; 2]>> {
    if !steps
        .iter()
        .any(|s| s.read_backs_per_s.is_some_and(|r| r > 0.0))
    {
        return None;
    }
    Some(
        steps
            .iter()
            .map(|s| match s.read_backs_per_s {
                Some(rb) => [format!("{rb:.1}"), format!("{:.1}", s.carried_per_s())],
                None => ["–".into(), "–".into()],
            })
            .collect(),
    )
}

/// The CPU column's name.
pub(super) const CPU_COLUMN: &str = "CPU/pod";

/// Per step, its CPU per pod (`84m`, or `–` for a step with no window of
/// its own); None when no step's CPU was read.
pub(super) fn cpu_cells(steps: &[Step]) -> Option<Vec<String>> {
    steps.iter().any(|s| s.cpu.is_some()).then(|| {
        steps
            .iter()
            .map(|s| match &s.cpu {
                Some(c) => format!("{:.0}m", c.millicores_per_pod),
                None => "–".into(),
            })
            .collect()
    })
}

/// A step's label: its place among the steps, `b` after it when it was
/// measured by bisection after the climb.
pub(super) fn step_label(i: usize, s: &Step) -> String {
    format!("{}{}", i + 1, if s.bisected { "b" } else { "" })
}

/// What the `b` after a step's number means, when a step has one.
pub(super) fn bisection_legend(steps: &[Step]) -> Option<&'static str> {
    steps
        .iter()
        .any(|s| s.bisected)
        .then_some("b: measured by bisection after the climb, between the steps either side")
}

/// The staircase as a table.
pub fn staircase_table(steps: &[Step]) -> String {
    use std::fmt::Write as _;
    let read_backs = read_back_cells(steps);
    let cpu = cpu_cells(steps);
    let mut out = String::new();
    let _ = write!(
        out,
        "{:>5} {:>10} {:>10} {:>9} {:>9} {:>9} {:>7} {:>8}",
        "step", "rate/s", "achieved", "p50 ms", "p95 ms", "p99 ms", "err%", "dropped"
    );
    if read_backs.is_some() {
        let [rb, carried] = READ_BACK_COLUMNS;
        let _ = write!(out, " {rb:>13} {carried:>10}");
    }
    if cpu.is_some() {
        let _ = write!(out, " {CPU_COLUMN:>8}");
    }
    out.push('\n');
    for (i, s) in steps.iter().enumerate() {
        let _ = write!(
            out,
            "{:>5} {:>10.1} {:>10.1} {:>9.1} {:>9.1} {:>9.1} {:>6.2}% {:>8}",
            step_label(i, s),
            s.rate,
            s.achieved,
            s.p50_ms,
            s.p95_ms,
            s.p99_ms,
            s.error_rate * 100.0,
            s.dropped
        );
        if let Some([rb, carried]) = read_backs.as_ref().map(|cells| &cells[i]) {
            let _ = write!(out, " {rb:>13} {carried:>10}");
        }
        if let Some(cell) = cpu.as_ref().map(|cells| &cells[i]) {
            let _ = write!(out, " {cell:>8}");
        }
        out.push('\n');
    }
    if let Some(legend) = bisection_legend(steps) {
        out.push_str(legend);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(rate: f64, read_backs: Option<f64>) -> Step {
        Step {
            rate,
            achieved: rate,
            setup_per_s: 1.0,
            read_backs_per_s: read_backs,
            ..Default::default()
        }
    }

    /// Steps with read-backs show them and the carried total (the work,
    /// the setup and the read-backs); a step whose read-backs are unknown
    /// says so; a staircase without read-backs has no such columns.
    #[test]
    fn read_backs_and_the_carried_total_are_shown_only_when_sent() {
        let with = staircase_table(&[
            step(10.0, Some(0.0)),
            step(20.0, Some(8.5)),
            step(30.0, None),
        ]);
        let lines: Vec<&str> = with.lines().collect();
        assert!(lines[0].ends_with("read-backs/s  carried/s"), "{with}");
        assert!(lines[1].ends_with("0.0       11.0"), "{with}");
        assert!(lines[2].ends_with("8.5       29.5"), "{with}");
        assert!(lines[3].ends_with("–          –"), "{with}");
        for without in [
            vec![step(10.0, None), step(20.0, None)],
            vec![step(10.0, Some(0.0))],
        ] {
            let table = staircase_table(&without);
            assert!(!table.contains("read-backs"), "{table}");
            assert!(!table.contains("carried"), "{table}");
            assert!(table.lines().nth(1).unwrap().ends_with('0'), "{table}");
        }
    }

    /// The pods' CPU per step when it was read, `–` for a step without a
    /// window of its own; no column when it was not read.
    #[test]
    fn cpu_per_pod_is_a_column_only_when_read() {
        let mut steps = vec![step(10.0, None), step(20.0, None)];
        assert!(!staircase_table(&steps).contains("CPU"));
        steps[1].cpu = Some(crate::bundle::StepCpu {
            millicores_per_pod: 84.4,
            pods: 2,
            windows: 4,
            request_millicores: None,
        });
        let table = staircase_table(&steps);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].ends_with(" CPU/pod"), "{table}");
        assert!(lines[1].ends_with(" –"), "{table}");
        assert!(lines[2].ends_with(" 84m"), "{table}");
    }
}
