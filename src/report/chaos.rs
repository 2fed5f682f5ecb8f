//! Chaos in words: a heading line, one line per event (what, on what, what
//! the API said, how long the replicas took, what users felt) and the
//! events' table — the chaos section every report shows, worded here once.

use super::content::{Line, Table, Text};
use crate::bundle::{ChaosEvent, ChaosReport, Outcome};

/// The chaos section of a report.
pub(super) struct Chaos {
    /// Section title.
    pub title: &'static str,
    /// Backend, scope, events, pod start-up.
    pub heading: Line,
    /// Why chaos stopped early, if it did.
    pub aborted: Option<Line>,
    /// What recovery is judged against.
    pub slo: Line,
    /// One line per event.
    pub events: Vec<Line>,
    /// The events' figures, one row each.
    pub table: Table,
}

/// The chaos section of a run with chaos.
pub(super) fn section(report: &ChaosReport) -> Chaos {
    Chaos {
        title: "Chaos",
        heading: Line::new(heading(report)),
        aborted: report
            .aborted
            .as_ref()
            .map(|why| Line::alert("chaos aborted", why.as_str())),
        slo: Line::labelled(
            "latency SLO for recovery",
            format!(
                "p95 ≤ {} ({})",
                report
                    .slo_p95_ms
                    .map_or("per event".to_owned(), |v| format!("{v:.0} ms")),
                report.slo_source
            ),
        ),
        events: report
            .events
            .iter()
            .map(|e| Line::new(event_line(e)))
            .collect(),
        table: table(report),
    }
}

fn table(report: &ChaosReport) -> Table {
    let opt = |v: Option<f64>| Text::plain(v.map_or("—".to_owned(), |v| format!("{v:.1}")));
    Table::new([
        "at s",
        "action",
        "target",
        "outcome",
        "answer",
        "ready after s",
        "failed requests",
        "burst s",
        "session drops",
        "p99 before ms",
        "p99 after ms",
        "p95 back after s",
    ])
    .with_rows(report.events.iter().map(|e| {
        let i = e.impact.clone().unwrap_or_default();
        vec![
            format!("{:.1}", e.at_s).into(),
            e.action.as_str().into(),
            e.target.join(", ").into(),
            outcome_word(e.outcome).into(),
            e.answer.as_str().into(),
            opt(e.ready_after_s),
            i.burst_errors.to_string().into(),
            i.burst_s.to_string().into(),
            i.session_drops.to_string().into(),
            opt(i.p99_before_ms),
            opt(i.p99_after_ms),
            opt(i.p95_back_s),
        ]
    }))
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Done => "done",
        Outcome::Skipped => "skipped",
        Outcome::Gone => "already gone",
        Outcome::Held => "held by its disruption budget",
        Outcome::Aborted => "ABORTED",
    }
}

/// One line for people: what, on what, what the API said, how long the
/// replicas took, and what users felt.
pub fn event_line(event: &ChaosEvent) -> String {
    let mut line = format!("at {:.1}s {}", event.at_s, event.action);
    if !event.target.is_empty() && event.action != "exec" {
        line += &format!(" → {}", event.target.join(", "));
    }
    line += &format!(": {} ({})", outcome_word(event.outcome), event.answer);
    if matches!(event.outcome, Outcome::Done | Outcome::Gone) {
        line += &match (event.watched, event.ready_after_s) {
            (false, _) => "; recovery not observed (no pod backend to watch)".to_owned(),
            (true, Some(s)) => format!("; replicas ready again after {s:.1} s"),
            (true, None) => "; replicas NOT back within the recovery limit".to_owned(),
        };
    }
    if let Some(i) = &event.impact {
        line += &format!(
            "; {} failed requests over {} s; {} session drops",
            i.burst_errors, i.burst_s, i.session_drops
        );
        if let (Some(b), Some(a)) = (i.p99_before_ms, i.p99_after_ms) {
            line += &format!("; p99 {b:.0} → {a:.0} ms (minute before → after)");
        }
        if let Some(slo) = i.slo_p95_ms {
            line += &match i.p95_back_s {
                Some(s) => format!("; p95 under {slo:.0} ms from +{s:.0} s"),
                None => format!("; p95 NOT back under {slo:.0} ms"),
            };
        }
    }
    line
}

/// The heading: backend, scope, how many events, the median pod start-up.
fn heading(report: &ChaosReport) -> String {
    format!(
        "chaos ({}, {}): {} events{}",
        report.backend,
        report.scope,
        report.events.len(),
        report
            .median_startup_s()
            .map(|s| format!(", pod start-up (kill → ready) median {s:.1} s"))
            .unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec_event(watched: bool, ready_after_s: Option<f64>) -> ChaosEvent {
        ChaosEvent {
            at_s: 3.0,
            action: "exec".into(),
            target: vec!["true".into()],
            outcome: Outcome::Done,
            answer: "exit 0".into(),
            ready_before: None,
            ready_after_s,
            watched,
            impact: None,
        }
    }

    #[test]
    fn a_command_with_nothing_to_watch_is_not_observed_not_failed() {
        let line = event_line(&exec_event(false, None));
        assert!(
            line.ends_with("done (exit 0); recovery not observed (no pod backend to watch)"),
            "{line}"
        );
        assert!(!line.contains("NOT back"), "{line}");
        let report = ChaosReport {
            backend: "exec".into(),
            scope: "commands only, no pods watched".into(),
            aborted: None,
            events: vec![exec_event(false, None)],
            replica_counts: vec![],
            pod_startup_s: vec![],
            slo_p95_ms: None,
            slo_source: String::new(),
        };
        assert!(report.recovered());
        assert!(
            !heading(&report).contains("namespace ,"),
            "{}",
            heading(&report)
        );
        // Watched and never back: that is a failure to recover.
        let mut kill = exec_event(true, None);
        kill.action = "kill-pod random".into();
        assert!(event_line(&kill).contains("NOT back within the recovery limit"));
        let report = ChaosReport {
            events: vec![kill],
            ..report
        };
        assert!(!report.recovered());
    }
}
