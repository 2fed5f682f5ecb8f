//! Chaos in words: one line per event (what, on what, what the API said,
//! how long the replicas took, what users felt) and a heading line, for the
//! terminal, Markdown and HTML reports.

use crate::bundle::{ChaosEvent, ChaosReport, Outcome};

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Done => "done",
        Outcome::Skipped => "skipped",
        Outcome::Gone => "already gone",
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

/// Lines for the terminal and the Markdown summary: a heading, then one per event.
pub fn lines(report: &ChaosReport) -> Vec<String> {
    let mut out = vec![format!(
        "chaos ({}, {}): {} events{}",
        report.backend,
        report.scope,
        report.events.len(),
        report
            .median_startup_s()
            .map(|s| format!(", pod start-up (kill → ready) median {s:.1} s"))
            .unwrap_or_default()
    )];
    if let Some(why) = &report.aborted {
        out.push(format!("CHAOS ABORTED: {why}"));
    }
    out.extend(report.events.iter().map(event_line));
    out
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
            !lines(&report)[0].contains("namespace ,"),
            "{}",
            lines(&report)[0]
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
