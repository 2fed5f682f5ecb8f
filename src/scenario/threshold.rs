//! k6-style thresholds: `"search_patient.p95" = "< 800ms"`, `"errors.rate" = "< 1%"`.
//!
//! A threshold names a subject and a statistic (`<subject>.<stat>`), and a
//! comparison with a value in the statistic's unit. Subjects are a request
//! name, `requests` (all requests), `errors` or `dropped`.

use std::fmt;

/// What kind of number a statistic is, which fixes the units it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A latency, written with `us`, `ms`, `s` or `m`; held in milliseconds.
    Latency,
    /// A fraction, written with `%`; held as 0..1.
    Rate,
    /// A count, written as a bare number.
    Count,
    /// A throughput, written with `/s`.
    PerSecond,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Op {
    /// Whether `value op limit` holds.
    pub fn holds(self, value: f64, limit: f64) -> bool {
        match self {
            Op::Lt => value < limit,
            Op::Le => value <= limit,
            Op::Gt => value > limit,
            Op::Ge => value >= limit,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        })
    }
}

/// A parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The name as written, e.g. `search_patient.p95`.
    pub metric: String,
    /// The subject: a request name, `requests`, `errors` or `dropped`.
    pub subject: String,
    /// The statistic: `p50`, `p95`, `rate`, `count`, ...
    pub stat: String,
    /// The comparison.
    pub op: Op,
    /// The limit in the statistic's canonical unit (ms, fraction, count, per second).
    pub limit: f64,
    /// The statistic's kind.
    pub kind: Kind,
    /// The limit as written, for reports.
    pub written: String,
}

/// Latency statistics a threshold may name.
const LATENCY_STATS: [&str; 9] = [
    "p50", "p75", "p90", "p95", "p99", "p999", "max", "mean", "min",
];

/// The kind of `stat` on `subject`, or what was expected instead.
pub fn stat_kind(subject: &str, stat: &str) -> Result<Kind, String> {
    let kind = match (subject, stat) {
        ("errors" | "dropped", "rate") => Kind::Rate,
        ("errors" | "dropped", "count") => Kind::Count,
        ("errors" | "dropped", _) => return Err(format!("`{subject}` has the statistics `rate` and `count`, not `{stat}`")),
        ("session", "drops") => Kind::Count,
        ("session", "drop_rate") => Kind::Rate,
        ("attachments", "missing" | "corrupted" | "stale" | "errors" | "unverified" | "unverifiable" | "uploads") => Kind::Count,
        ("attachments", s) if s.strip_prefix("visible_").is_some_and(|p| LATENCY_STATS.contains(&p)) => {
            Kind::Latency
        }
        ("attachments", _) => {
            return Err(format!(
                "`attachments` has the statistics missing, corrupted, stale, errors, unverified, unverifiable, uploads and visible_p50 … visible_p99, visible_max, not `{stat}`"
            ))
        }
        ("session", _) => return Err(format!("`session` has the statistics `drops` and `drop_rate`, not `{stat}`")),
        (_, s) if LATENCY_STATS.contains(&s) => Kind::Latency,
        (_, "error_rate") => Kind::Rate,
        (_, "count") => Kind::Count,
        (_, "throughput") => Kind::PerSecond,
        _ => {
            return Err(format!(
                "unknown statistic `{stat}`: expected p50, p75, p90, p95, p99, p999, min, max, mean, error_rate, count or throughput"
            ))
        }
    };
    Ok(kind)
}

/// Parses `metric = "expression"`.
pub fn parse(metric: &str, expression: &str) -> Result<Threshold, String> {
    let (subject, stat) = metric
        .rsplit_once('.')
        .ok_or_else(|| format!("threshold name `{metric}` should be `<request>.<stat>`, e.g. `search_patient.p95` or `errors.rate`"))?;
    let kind = stat_kind(subject, stat)?;
    let expr = expression.trim();
    let (op, rest) = if let Some(r) = expr.strip_prefix("<=") {
        (Op::Le, r)
    } else if let Some(r) = expr.strip_prefix(">=") {
        (Op::Ge, r)
    } else if let Some(r) = expr.strip_prefix('<') {
        (Op::Lt, r)
    } else if let Some(r) = expr.strip_prefix('>') {
        (Op::Gt, r)
    } else {
        return Err(format!(
            "threshold `{expression}` should start with <, <=, > or >=, e.g. \"< 800ms\""
        ));
    };
    let rest = rest.trim();
    let split = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, unit) = rest.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("threshold `{expression}`: expected a number after `{op}`"))?;
    let unit = unit.trim();
    let limit = match (kind, unit) {
        (Kind::Latency, "us" | "µs") => number / 1000.0,
        (Kind::Latency, "ms") => number,
        (Kind::Latency, "s") => number * 1000.0,
        (Kind::Latency, "m") => number * 60_000.0,
        (Kind::Rate, "%") => number / 100.0,
        (Kind::Count, "") => number,
        (Kind::PerSecond, "/s") => number,
        _ => {
            let expected = match kind {
                Kind::Latency => "a time unit (us, ms, s, m), e.g. \"< 800ms\"",
                Kind::Rate => "a percentage, e.g. \"< 1%\"",
                Kind::Count => "a bare number, e.g. \"< 5\"",
                Kind::PerSecond => "a rate per second, e.g. \"> 50/s\"",
            };
            return Err(format!(
                "threshold `{metric}` = \"{expression}\": expected {expected}"
            ));
        }
    };
    if !limit.is_finite() {
        return Err(format!(
            "threshold `{metric}` = \"{expression}\": the number is too large"
        ));
    }
    // A threshold that can never fail (or never pass) judges nothing: every
    // statistic is 0 or more, and a rate is at most 100%.
    let top = if kind == Kind::Rate {
        1.0
    } else {
        f64::INFINITY
    };
    let never_fails = match op {
        Op::Lt => limit > top,
        Op::Le => limit >= top,
        Op::Gt => false,
        Op::Ge => limit <= 0.0,
    };
    let never_passes = match op {
        Op::Lt => limit <= 0.0,
        Op::Le | Op::Gt => false,
        Op::Ge => limit > top,
    } || (op == Op::Gt && limit >= top);
    if never_fails || never_passes {
        let range = if kind == Kind::Rate {
            "from 0% to 100%"
        } else {
            "0 or more"
        };
        return Err(format!(
            "threshold `{metric}` = \"{expression}\" can never {}: the statistic is {range}",
            if never_fails { "fail" } else { "pass" }
        ));
    }
    Ok(Threshold {
        metric: metric.to_owned(),
        subject: subject.to_owned(),
        stat: stat.to_owned(),
        op,
        limit,
        kind,
        written: expr.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threshold_that_cannot_fail_or_pass_is_refused() {
        for (metric, expr, says) in [
            ("errors.rate", "< 150%", "can never fail"),
            ("errors.rate", "<= 100%", "can never fail"),
            ("errors.rate", "> 100%", "can never pass"),
            ("errors.rate", "< 0%", "can never pass"),
            ("search.p95", "< 0ms", "can never pass"),
            ("requests.throughput", ">= 0/s", "can never fail"),
        ] {
            let err = parse(metric, expr).unwrap_err();
            assert!(err.contains(says), "{metric} {expr}: {err}");
        }
        for (metric, expr) in [
            ("errors.rate", "< 100%"),
            ("errors.rate", "<= 1%"),
            ("session.drops", "< 1"),
            ("requests.throughput", "> 0/s"),
        ] {
            assert!(parse(metric, expr).is_ok(), "{metric} {expr}");
        }
    }

    #[test]
    fn parses_latency_rate_count_and_throughput() {
        let t = parse("search_patient.p95", "< 800ms").unwrap();
        assert_eq!(
            (t.subject.as_str(), t.stat.as_str(), t.op, t.limit),
            ("search_patient", "p95", Op::Lt, 800.0)
        );
        assert_eq!(parse("errors.rate", "<1%").unwrap().limit, 0.01);
        assert_eq!(parse("login.p99", "<= 2s").unwrap().limit, 2000.0);
        assert_eq!(parse("dropped.count", "< 5").unwrap().limit, 5.0);
        assert_eq!(parse("requests.throughput", ">= 50/s").unwrap().op, Op::Ge);
    }

    #[test]
    fn rejects_wrong_units_and_shapes() {
        assert!(parse("x.p95", "< 1%").unwrap_err().contains("time unit"));
        assert!(parse("errors.rate", "< 1ms")
            .unwrap_err()
            .contains("percentage"));
        assert!(parse("x.p95", "800ms").unwrap_err().contains("start with"));
        assert!(parse("p95", "< 1s")
            .unwrap_err()
            .contains("<request>.<stat>"));
        assert!(parse("x.p42", "< 1s")
            .unwrap_err()
            .contains("unknown statistic"));
        assert!(parse("errors.p95", "< 1s").unwrap_err().contains("rate"));
    }

    #[test]
    fn operators_compare() {
        assert!(Op::Lt.holds(1.0, 2.0) && !Op::Lt.holds(2.0, 2.0));
        assert!(Op::Le.holds(2.0, 2.0) && Op::Ge.holds(2.0, 2.0) && !Op::Gt.holds(2.0, 2.0));
    }
}
