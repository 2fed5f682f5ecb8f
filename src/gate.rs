//! Judging thresholds against what a run measured. Pure: no I/O.
//!
//! A threshold on something that was never measured (a request that never
//! completed, say) fails: a gate must not pass on absent evidence.

use crate::measure::{RunResults, Stats, ThresholdResult};
use crate::scenario::threshold::{Kind, Threshold};

fn stat_of(stats: &Stats, stat: &str) -> Option<f64> {
    match stat {
        "error_rate" => (stats.count > 0).then_some(stats.error_rate),
        "count" => Some(stats.count as f64),
        "throughput" => Some(stats.throughput),
        _ if stats.count == 0 => None,
        _ => stats.latency.get(stat),
    }
}

/// The measured value a threshold compares, in its canonical unit.
pub fn measured(t: &Threshold, r: &RunResults) -> Option<f64> {
    match (t.subject.as_str(), t.stat.as_str()) {
        ("errors", "rate") => (r.overall.count > 0).then_some(r.overall.error_rate),
        ("errors", "count") => Some(r.overall.failed as f64),
        ("dropped", "rate") => (r.totals.arrivals > 0)
            .then(|| r.totals.dropped_arrivals as f64 / r.totals.arrivals as f64),
        ("dropped", "count") => Some(r.totals.dropped_arrivals as f64),
        ("session", "drops") => Some(r.sessions.drops as f64),
        ("session", "drop_rate") => (r.sessions.sessions > 0).then_some(r.sessions.drop_rate),
        ("attachments", stat) => attachments(r, stat),
        ("requests", stat) => stat_of(&r.overall, stat),
        (name, stat) => r.request(name).and_then(|s| stat_of(s, stat)),
    }
}

fn attachments(r: &RunResults, stat: &str) -> Option<f64> {
    use crate::verify::consistency::Verdict;
    let c = &r.consistency;
    let count = |v| Some(c.count(v) as f64);
    match stat {
        "missing" => count(Verdict::Missing),
        "corrupted" => count(Verdict::Corrupted),
        "stale" => count(Verdict::Stale),
        "errors" => count(Verdict::Error),
        "unverified" => count(Verdict::Unverified),
        "uploads" => Some(c.uploads as f64),
        _ => {
            let p = stat.strip_prefix("visible_")?;
            (c.visible_everywhere > 0)
                .then(|| c.visible.get(p))
                .flatten()
        }
    }
}

fn show(kind: Kind, value: f64) -> String {
    match kind {
        Kind::Latency => format!("{value:.1}ms"),
        Kind::Rate => format!("{:.3}%", value * 100.0),
        Kind::Count => format!("{value:.0}"),
        Kind::PerSecond => format!("{value:.2}/s"),
    }
}

/// Judges every threshold.
pub fn judge(thresholds: &[Threshold], r: &RunResults) -> Vec<ThresholdResult> {
    thresholds
        .iter()
        .map(|t| {
            let value = measured(t, r);
            ThresholdResult {
                metric: t.metric.clone(),
                limit: t.written.clone(),
                measured: value,
                measured_text: value
                    .map(|v| show(t.kind, v))
                    .unwrap_or_else(|| "nothing measured".to_owned()),
                passed: value.is_some_and(|v| t.op.holds(v, t.limit)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::{Percentiles, Totals, SCHEMA_VERSION};
    use crate::scenario::threshold::parse;

    fn results() -> RunResults {
        let search = Stats {
            name: "search".into(),
            count: 100,
            ok: 98,
            failed: 2,
            error_rate: 0.02,
            throughput: 10.0,
            latency: Percentiles {
                p95: 450.0,
                p99: 900.0,
                ..Default::default()
            },
            ..Default::default()
        };
        RunResults {
            schema_version: SCHEMA_VERSION,
            run_id: "t".into(),
            scenario: "t".into(),
            scenario_file: "t.toml".into(),
            target: "http://127.0.0.1:1".into(),
            model: "open".into(),
            started_at: String::new(),
            elapsed_s: 10.0,
            busy_s: 10.0,
            planned_s: 10.0,
            interrupted: None,
            user_panics: 0,
            totals: Totals {
                arrivals: 50,
                dropped_arrivals: 5,
                ..Default::default()
            },
            stages: vec![],
            overall: Stats {
                name: "all".into(),
                ..search.clone()
            },
            requests: vec![search],
            replicas: vec![],
            cells: vec![],
            timeline: vec![],
            request_timelines: vec![],
            sessions: Default::default(),
            consistency: Default::default(),
            thresholds: vec![],
            chaos: None,
        }
    }

    #[test]
    fn passes_and_fails_on_measured_values() {
        let r = results();
        let verdicts = judge(
            &[
                parse("search.p95", "< 500ms").unwrap(),
                parse("search.p99", "< 500ms").unwrap(),
                parse("errors.rate", "< 1%").unwrap(),
                parse("dropped.rate", "<= 10%").unwrap(),
                parse("requests.throughput", ">= 10/s").unwrap(),
            ],
            &r,
        );
        let passed: Vec<bool> = verdicts.iter().map(|v| v.passed).collect();
        assert_eq!(passed, [true, false, false, true, true]);
        assert_eq!(verdicts[1].measured_text, "900.0ms");
        assert_eq!(verdicts[2].measured_text, "2.000%");
    }

    #[test]
    fn nothing_measured_fails() {
        let v = judge(&[parse("never_ran.p95", "< 1s").unwrap()], &results());
        assert!(!v[0].passed);
        assert_eq!(v[0].measured, None);
    }
}
