//! k6-style thresholds: `"search_patient.p95" = "< 800ms"`, `"errors.rate" = "< 1%"`.
//!
//! The one vocabulary of what a threshold can judge: a [`Metric`] is a
//! subject (a request, all `requests`, `errors`, `dropped` arrivals,
//! `session`, `attachments`) with one of its statistics, parsed here and
//! only here, for the scenario file, `--threshold` and a merged bundle alike.
//! The gate, chaos and the reports match on it; a new metric that one of
//! them forgets does not compile.

use crate::bundle::LatencyStat;
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

/// A statistic of a group of requests (one request name, or all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStat {
    /// A latency statistic of the completed requests.
    Latency(LatencyStat),
    /// Failed of completed.
    ErrorRate,
    /// Completed requests.
    Count,
    /// Completed requests per second.
    Throughput,
}

/// A count and its share: of failed requests, of dropped arrivals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    /// The share, 0..1.
    Rate,
    /// The number.
    Count,
}

/// A statistic of the sessions accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStat {
    /// Sessions dropped.
    Drops,
    /// Dropped of accepted.
    DropRate,
}

/// A statistic of the autoscaler's response to the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoscalingStat {
    /// The longest wait, after the load rose past what the ready pods
    /// serve at the HPA's target, until enough were ready for it:
    /// `autoscaling.scale_up_s`.
    ScaleUp,
    /// Seconds over the latency SLO (the `requests` p50/p95/p99 threshold)
    /// while the pods were too few: `autoscaling.over_slo_s`.
    OverSlo,
}

/// A statistic of the writes (requests with a read-back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStat {
    /// Acknowledged writes gone after the run (`[verify] audit`): `writes.lost`.
    Lost,
    /// Writes that failed: `writes.failed`.
    Failed,
    /// The longest run of writes failing one after another, from its first
    /// sent to its last ended: `writes.outage_s`.
    Outage,
    /// The longest time no write succeeded while writes were sent (waiting
    /// or failing): `writes.stall_s`.
    Stall,
}

/// A statistic of the uploads read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentStat {
    /// (upload, replica) pairs by verdict.
    Verdict(crate::bundle::Verdict),
    /// Uploads read back.
    Uploads,
    /// Uploads that could not be read back (no id, no location).
    Unverifiable,
    /// Time until an upload was visible on every replica.
    Visible(LatencyStat),
}

/// What a threshold judges: a subject and one of its statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metric {
    /// One request by name: `search_patient.p95`.
    Request {
        /// The request's name.
        name: String,
        /// Its statistic.
        stat: RequestStat,
    },
    /// All requests: `requests.p95`.
    Requests(RequestStat),
    /// Failed requests: `errors.rate`.
    Errors(Tally),
    /// Arrivals dropped for want of a free user: `dropped.count`.
    Dropped(Tally),
    /// Session continuity: `session.drops`.
    Session(SessionStat),
    /// Attachment consistency: `attachments.missing`.
    Attachments(AttachmentStat),
    /// The autoscaler's response: `autoscaling.scale_up_s`.
    Autoscaling(AutoscalingStat),
    /// The writes and the audit after the run: `writes.lost`.
    Writes(WriteStat),
}

/// The attachment verdicts a threshold may count, by name.
const ATTACHMENT_VERDICTS: [(&str, crate::bundle::Verdict); 5] = {
    use crate::bundle::Verdict;
    [
        ("missing", Verdict::Missing),
        ("corrupted", Verdict::Corrupted),
        ("stale", Verdict::Stale),
        ("errors", Verdict::Error),
        ("unverified", Verdict::Unverified),
    ]
};

impl Metric {
    /// The kind of number the metric is, which fixes its unit.
    pub fn kind(&self) -> Kind {
        let of_request = |stat: &RequestStat| match stat {
            RequestStat::Latency(_) => Kind::Latency,
            RequestStat::ErrorRate => Kind::Rate,
            RequestStat::Count => Kind::Count,
            RequestStat::Throughput => Kind::PerSecond,
        };
        match self {
            Metric::Request { stat, .. } | Metric::Requests(stat) => of_request(stat),
            Metric::Errors(Tally::Rate) | Metric::Dropped(Tally::Rate) => Kind::Rate,
            Metric::Errors(Tally::Count) | Metric::Dropped(Tally::Count) => Kind::Count,
            Metric::Session(SessionStat::Drops) => Kind::Count,
            Metric::Session(SessionStat::DropRate) => Kind::Rate,
            Metric::Attachments(AttachmentStat::Visible(_)) => Kind::Latency,
            Metric::Attachments(
                AttachmentStat::Verdict(_) | AttachmentStat::Uploads | AttachmentStat::Unverifiable,
            ) => Kind::Count,
            // Durations, written as such: `< 60s`.
            Metric::Autoscaling(AutoscalingStat::ScaleUp | AutoscalingStat::OverSlo) => {
                Kind::Latency
            }
            Metric::Writes(WriteStat::Lost | WriteStat::Failed) => Kind::Count,
            Metric::Writes(WriteStat::Outage | WriteStat::Stall) => Kind::Latency,
        }
    }

    /// Parses `<subject>.<stat>`; a subject that is not one of [`SUBJECTS`]
    /// must be one of `requests`, the scenario's request names.
    pub fn parse(name: &str, requests: &[&str]) -> Result<Metric, ThresholdError> {
        let (subject, stat) = name.rsplit_once('.').ok_or_else(|| ThresholdError::Shape {
            name: name.to_owned(),
        })?;
        let unknown = |expected: &str| ThresholdError::UnknownStat {
            subject: subject.to_owned(),
            stat: stat.to_owned(),
            expected: expected.to_owned(),
        };
        let tally = |stat| match stat {
            "rate" => Ok(Tally::Rate),
            "count" => Ok(Tally::Count),
            _ => Err(unknown("`rate` and `count`")),
        };
        Ok(match subject {
            "errors" => Metric::Errors(tally(stat)?),
            "dropped" => Metric::Dropped(tally(stat)?),
            "session" => Metric::Session(match stat {
                "drops" => SessionStat::Drops,
                "drop_rate" => SessionStat::DropRate,
                _ => return Err(unknown("`drops` and `drop_rate`")),
            }),
            "attachments" => Metric::Attachments(attachment_stat(stat).ok_or_else(|| {
                unknown("missing, corrupted, stale, errors, unverified, unverifiable, uploads and visible_p50 … visible_p99, visible_max")
            })?),
            "writes" => Metric::Writes(match stat {
                "lost" => WriteStat::Lost,
                "failed" => WriteStat::Failed,
                "outage_s" => WriteStat::Outage,
                "stall_s" => WriteStat::Stall,
                _ => return Err(unknown("`lost`, `failed`, `outage_s` and `stall_s`")),
            }),
            "autoscaling" => Metric::Autoscaling(match stat {
                "scale_up_s" => AutoscalingStat::ScaleUp,
                "over_slo_s" => AutoscalingStat::OverSlo,
                _ => return Err(unknown("`scale_up_s` and `over_slo_s`")),
            }),
            "requests" => Metric::Requests(request_stat(stat)?),
            _ if requests.contains(&subject) => Metric::Request {
                name: subject.to_owned(),
                stat: request_stat(stat)?,
            },
            _ => {
                // A statistic no subject has is the likelier typo.
                request_stat(stat)?;
                return Err(ThresholdError::UnknownSubject {
                    subject: subject.to_owned(),
                    requests: listed(requests),
                });
            }
        })
    }
}

/// Request names as messages list them: sorted, or `none`.
fn listed(requests: &[&str]) -> String {
    let mut names = requests.to_vec();
    names.sort_unstable();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn request_stat(stat: &str) -> Result<RequestStat, ThresholdError> {
    Ok(match stat {
        "error_rate" => RequestStat::ErrorRate,
        "count" => RequestStat::Count,
        "throughput" => RequestStat::Throughput,
        _ => RequestStat::Latency(LatencyStat::named(stat).ok_or_else(|| {
            ThresholdError::UnknownRequestStat {
                stat: stat.to_owned(),
            }
        })?),
    })
}

fn attachment_stat(stat: &str) -> Option<AttachmentStat> {
    if let Some((_, verdict)) = ATTACHMENT_VERDICTS.iter().find(|(name, _)| *name == stat) {
        return Some(AttachmentStat::Verdict(*verdict));
    }
    match stat {
        "uploads" => Some(AttachmentStat::Uploads),
        "unverifiable" => Some(AttachmentStat::Unverifiable),
        _ => stat
            .strip_prefix("visible_")
            .and_then(LatencyStat::named)
            .map(AttachmentStat::Visible),
    }
}

/// Why a threshold was refused; each says what was expected. `name` is the
/// threshold's name and `expression` its comparison, as written.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThresholdError {
    /// The name is not `<subject>.<stat>`.
    #[error("threshold name `{name}` should be `<request>.<stat>`, e.g. `search_patient.p95` or `errors.rate`")]
    Shape { name: String },
    /// A named subject without that statistic.
    #[error("`{subject}` has the statistics {expected}, not `{stat}`")]
    UnknownStat {
        subject: String,
        stat: String,
        expected: String,
    },
    /// A statistic no request has.
    #[error("unknown statistic `{stat}`: expected p50, p75, p90, p95, p99, p999, min, max, mean, error_rate, count or throughput")]
    UnknownRequestStat { stat: String },
    /// Neither a request of the scenario nor a named subject.
    #[error("threshold on `{subject}`, which is neither a request ({requests}) nor one of requests, errors, dropped, session, attachments")]
    UnknownSubject { subject: String, requests: String },
    /// No comparison operator.
    #[error("threshold `{expression}` should start with <, <=, > or >=, e.g. \"< 800ms\"")]
    Operator { expression: String },
    /// No number after the operator.
    #[error("threshold `{expression}`: expected a number after `{op}`")]
    Number { expression: String, op: Op },
    /// A unit the statistic does not take.
    #[error("threshold `{name}` = \"{expression}\": expected {expected}")]
    Unit {
        name: String,
        expression: String,
        expected: &'static str,
    },
    /// A number beyond any measurement.
    #[error("threshold `{name}` = \"{expression}\": the number is too large")]
    TooLarge { name: String, expression: String },
    /// A comparison that can never fail, or never pass.
    #[error("threshold `{name}` = \"{expression}\" can never {never}: the statistic is {range}")]
    Vacuous {
        name: String,
        expression: String,
        never: &'static str,
        range: &'static str,
    },
}

impl ThresholdError {
    /// Whether the name (rather than the expression) is at fault: where a
    /// scenario file's error points.
    pub fn is_in_name(&self) -> bool {
        match self {
            ThresholdError::Shape { .. }
            | ThresholdError::UnknownStat { .. }
            | ThresholdError::UnknownRequestStat { .. }
            | ThresholdError::UnknownSubject { .. } => true,
            ThresholdError::Operator { .. }
            | ThresholdError::Number { .. }
            | ThresholdError::Unit { .. }
            | ThresholdError::TooLarge { .. }
            | ThresholdError::Vacuous { .. } => false,
        }
    }
}

/// A parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The name as written, e.g. `search_patient.p95`.
    pub name: String,
    /// What it judges.
    pub metric: Metric,
    /// The comparison.
    pub op: Op,
    /// The limit in the statistic's canonical unit (ms, fraction, count, per second).
    pub limit: f64,
    /// The limit as written, for reports.
    pub written: String,
}

impl Threshold {
    /// The kind of number it compares.
    pub fn kind(&self) -> Kind {
        self.metric.kind()
    }
}

/// Parses `name = "expression"` for a scenario whose requests are `requests`.
pub fn parse(name: &str, expression: &str, requests: &[&str]) -> Result<Threshold, ThresholdError> {
    let metric = Metric::parse(name, requests)?;
    let kind = metric.kind();
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
        return Err(ThresholdError::Operator {
            expression: expression.to_owned(),
        });
    };
    let rest = rest.trim();
    let split = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, unit) = rest.split_at(split);
    let number: f64 = number.parse().map_err(|_| ThresholdError::Number {
        expression: expression.to_owned(),
        op,
    })?;
    let limit = kind
        .canonical(number, unit.trim())
        .ok_or_else(|| ThresholdError::Unit {
            name: name.to_owned(),
            expression: expression.to_owned(),
            expected: kind.expected_unit(),
        })?;
    if !limit.is_finite() {
        return Err(ThresholdError::TooLarge {
            name: name.to_owned(),
            expression: expression.to_owned(),
        });
    }
    if let Some(never) = vacuous(kind, op, limit) {
        return Err(ThresholdError::Vacuous {
            name: name.to_owned(),
            expression: expression.to_owned(),
            never,
            range: if kind == Kind::Rate {
                "from 0% to 100%"
            } else {
                "0 or more"
            },
        });
    }
    Ok(Threshold {
        name: name.to_owned(),
        metric,
        op,
        limit,
        written: expr.to_owned(),
    })
}

/// A threshold that can never fail (or never pass) judges nothing: every
/// statistic is 0 or more, and a rate is at most 100%. `Some("fail")` or
/// `Some("pass")` for one that cannot.
fn vacuous(kind: Kind, op: Op, limit: f64) -> Option<&'static str> {
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
        Op::Le => false,
        Op::Gt => limit >= top,
        Op::Ge => limit > top,
    };
    if never_fails {
        Some("fail")
    } else if never_passes {
        Some("pass")
    } else {
        None
    }
}

impl Kind {
    /// `number unit` in the kind's canonical unit, or `None` for a unit it
    /// does not take.
    fn canonical(self, number: f64, unit: &str) -> Option<f64> {
        match (self, unit) {
            (Kind::Latency, "us" | "µs") => Some(number / 1000.0),
            (Kind::Latency, "ms") => Some(number),
            (Kind::Latency, "s") => Some(number * 1000.0),
            (Kind::Latency, "m") => Some(number * 60_000.0),
            (Kind::Rate, "%") => Some(number / 100.0),
            (Kind::Count, "") => Some(number),
            (Kind::PerSecond, "/s") => Some(number),
            _ => None,
        }
    }

    fn expected_unit(self) -> &'static str {
        match self {
            Kind::Latency => "a time unit (us, ms, s, m), e.g. \"< 800ms\"",
            Kind::Rate => "a percentage, e.g. \"< 1%\"",
            Kind::Count => "a bare number, e.g. \"< 5\"",
            Kind::PerSecond => "a rate per second, e.g. \"> 50/s\"",
        }
    }
}

#[cfg(test)]
mod tests;
