//! Judging thresholds against what a run measured. Pure: no I/O.
//!
//! One rule for every threshold kind: a statistic rests on a number of
//! observations (requests completed, sessions accepted, uploads read back,
//! arrivals scheduled), and a threshold whose statistic rests on none fails
//! as "nothing measured". A gate must not pass on absent evidence: zero
//! drops among zero sessions is not continuity, zero missing among zero
//! uploads read back is not consistency.

use crate::bundle::{CheckResult, Expectations, RunResults, Stats, ThresholdResult, Verdict};
use crate::bundle::{LatencySlo, LatencyStat};
use crate::scenario::threshold::{
    AttachmentStat, AutoscalingStat, Kind, Metric, Op, RequestStat, SessionStat, Tally, Threshold,
    WriteStat,
};
use crate::scenario::Scenario;

/// A statistic's value and what it rests on.
struct Reading {
    value: Option<f64>,
    /// How many observations the value rests on.
    basis: u64,
    /// What those observations are, for "nothing measured: no …".
    of: &'static str,
}

fn reading(value: Option<f64>, basis: u64, of: &'static str) -> Reading {
    Reading { value, basis, of }
}

fn request_stat(stats: &Stats, stat: RequestStat) -> f64 {
    match stat {
        RequestStat::Latency(l) => stats.latency.get(l),
        RequestStat::ErrorRate => stats.error_rate,
        RequestStat::Count => stats.count as f64,
        RequestStat::Throughput => stats.throughput,
    }
}

/// The latency SLO among `thresholds`: the first `requests.p50`, `p95` or
/// `p99` that must stay below a limit (what a second of the load keeps).
pub fn latency_slo(thresholds: &[Threshold]) -> Option<LatencySlo> {
    thresholds.iter().find_map(|t| match (&t.metric, t.op) {
        (
            Metric::Requests(RequestStat::Latency(
                stat @ (LatencyStat::P50 | LatencyStat::P95 | LatencyStat::P99),
            )),
            Op::Lt | Op::Le,
        ) => Some(LatencySlo {
            stat: *stat,
            limit_ms: t.limit,
        }),
        _ => None,
    })
}

fn autoscaling(r: &RunResults, stat: AutoscalingStat, slo: Option<LatencySlo>) -> Reading {
    let rises = r
        .autoscaling
        .as_ref()
        .and_then(|t| super::autoscaling::rises(t, &r.timeline, r.elapsed_s as u64, slo));
    let Some(rises) = rises else {
        return reading(
            None,
            0,
            "autoscaler watched on a rate per pod (--hpa with a Pods metric)",
        );
    };
    let of = "rise of the load past what the ready pods serve at the HPA's target";
    let ms = |s: Option<f64>| s.map(|s| s * 1000.0);
    match stat {
        AutoscalingStat::ScaleUp => reading(
            ms(rises.scale_up_s()),
            rises.judged() as u64,
            "rise of the load past what the ready pods serve at the HPA's target that lasted until enough pods came or the run ended",
        ),
        AutoscalingStat::OverSlo if slo.is_none() => reading(
            None,
            0,
            "latency SLO to judge seconds by (a requests.p50, p95 or p99 threshold)",
        ),
        AutoscalingStat::OverSlo => reading(ms(rises.over_slo_s()), rises.rises.len() as u64, of),
    }
}

fn read(t: &Threshold, r: &RunResults, slo: Option<LatencySlo>) -> Reading {
    let completed = r.overall.count;
    let arrivals = r.totals.arrivals;
    let sessions = r.sessions.sessions;
    match &t.metric {
        Metric::Errors(Tally::Rate) => {
            reading(Some(r.overall.error_rate), completed, "request completed")
        }
        Metric::Errors(Tally::Count) => reading(
            Some(r.overall.failed as f64),
            completed,
            "request completed",
        ),
        Metric::Dropped(Tally::Rate) => reading(
            Some(r.totals.dropped_arrivals as f64 / arrivals.max(1) as f64),
            arrivals,
            "arrival was scheduled",
        ),
        Metric::Dropped(Tally::Count) => reading(
            Some(r.totals.dropped_arrivals as f64),
            arrivals,
            "arrival was scheduled",
        ),
        Metric::Session(SessionStat::Drops) => reading(
            Some(r.sessions.drops as f64),
            sessions,
            "session was accepted",
        ),
        Metric::Session(SessionStat::DropRate) => {
            reading(Some(r.sessions.drop_rate), sessions, "session was accepted")
        }
        Metric::Attachments(stat) => attachments(r, *stat),
        Metric::Autoscaling(stat) => autoscaling(r, *stat, slo),
        Metric::Writes(stat) => writes(r, *stat),
        Metric::Requests(stat) => reading(
            Some(request_stat(&r.overall, *stat)),
            completed,
            "request completed",
        ),
        Metric::Request { name, stat } => match r.request(name) {
            Some(s) => reading(
                Some(request_stat(s, *stat)),
                s.count,
                "request of this name completed",
            ),
            None => reading(None, 0, "request of this name completed"),
        },
    }
}

fn attachments(r: &RunResults, stat: AttachmentStat) -> Reading {
    let c = &r.consistency;
    let read_back = c.uploads;
    match stat {
        AttachmentStat::Verdict(v) => {
            reading(Some(c.count(v) as f64), read_back, "upload was read back")
        }
        AttachmentStat::Uploads => {
            reading(Some(c.uploads as f64), read_back, "upload was read back")
        }
        AttachmentStat::Unverifiable => reading(
            Some(c.unverifiable as f64),
            c.uploads + c.unverifiable,
            "upload completed",
        ),
        AttachmentStat::Visible(l) => reading(
            Some(c.visible.get(l)),
            c.visible_everywhere,
            "upload became visible everywhere",
        ),
    }
}

fn writes(r: &RunResults, stat: WriteStat) -> Reading {
    let w = &r.consistency.writes;
    let completed = "write (a request with a read-back) completed";
    match stat {
        // Lost of every acknowledged write, or not judged: a write the audit
        // could not read may be the one that was lost.
        WriteStat::Lost => match &w.audit {
            Some(audit) if audit.complete() => reading(
                Some(audit.lost as f64),
                audit.acknowledged,
                "acknowledged write was audited after the run",
            ),
            Some(_) => reading(
                None,
                0,
                "complete audit: some acknowledged writes went unanswered or were not audited (the writes line says how many)",
            ),
            None => reading(
                None,
                0,
                "acknowledged write was audited after the run ([verify] audit = true)",
            ),
        },
        WriteStat::Failed => reading(Some(w.failed as f64), w.sent, completed),
        WriteStat::Outage => reading(Some(w.outage_s() * 1000.0), w.sent, completed),
        // Merged shards whose stalls shared no time: no stall of the test
        // was measured.
        WriteStat::Stall => match w.stall_s() {
            Some(s) => reading(Some(s * 1000.0), w.sent, completed),
            None if w.sent == 0 => reading(None, 0, completed),
            None => reading(
                None,
                0,
                "stall every shard shared (the shards' longest stalls did not overlap)",
            ),
        },
    }
}

fn show(kind: Kind, value: f64) -> String {
    if value.is_infinite() {
        // A wait that had not ended when the run did.
        return "not within the run".into();
    }
    match kind {
        Kind::Latency => format!("{value:.1}ms"),
        Kind::Rate => format!("{:.3}%", value * 100.0),
        Kind::Count => format!("{value:.0}"),
        Kind::PerSecond => format!("{value:.2}/s"),
    }
}

/// The measured value a threshold compares, in its canonical unit; `None`
/// when nothing it rests on was measured.
pub fn measured(t: &Threshold, r: &RunResults, slo: Option<LatencySlo>) -> Option<f64> {
    let reading = read(t, r, slo);
    reading.value.filter(|_| reading.basis > 0)
}

/// Why nothing was measured for `t`: `nothing measured: no session was accepted`.
fn nothing_measured(t: &Threshold, r: &RunResults, slo: Option<LatencySlo>) -> String {
    format!("nothing measured: no {}", read(t, r, slo).of)
}

/// Judges every threshold.
pub fn judge(thresholds: &[Threshold], r: &RunResults) -> Vec<ThresholdResult> {
    let slo = latency_slo(thresholds);
    thresholds
        .iter()
        .map(|t| {
            let value = measured(t, r, slo);
            ThresholdResult {
                metric: t.name.clone(),
                limit: t.written.clone(),
                measured: value,
                measured_text: match value {
                    // The autoscaler's waits are seconds, as written.
                    Some(v) if matches!(t.metric, Metric::Autoscaling(_)) && v.is_finite() => {
                        format!("{:.0}s", v / 1000.0)
                    }
                    Some(v) => show(t.kind(), v),
                    None => nothing_measured(t, r, slo),
                },
                passed: value.is_some_and(|v| t.op.holds(v, t.limit)),
            }
        })
        .collect()
}

/// What `scenario` (after command-line changes) must exercise.
pub fn expectations(scenario: &Scenario) -> Expectations {
    let mut requests: Vec<usize> = scenario
        .personas
        .iter()
        .filter(|p| p.weight > 0)
        .flat_map(|p| p.steps.iter().map(|s| s.request))
        .filter(|&i| !scenario.requests[i].optional)
        .collect();
    requests.sort_unstable();
    requests.dedup();
    Expectations {
        scenario_requests: scenario.requests.iter().map(|r| r.name.clone()).collect(),
        uploads: requests
            .iter()
            .any(|&i| scenario.requests[i].consistency.is_some()),
        requests: requests
            .into_iter()
            .map(|i| scenario.requests[i].name.clone())
            .collect(),
    }
}

/// Reasons with their counts: `3× a; 1× b`, or just `a` when it is the only one.
fn count_list(counts: &std::collections::BTreeMap<String, u64>) -> String {
    if counts.len() == 1 {
        return counts.keys().next().cloned().unwrap_or_default();
    }
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{n}× {k}")).collect();
    parts.join("; ")
}

/// The built-in check that the scenario's requests mostly worked.
pub const MOST_SUCCEEDED: &str = "most requests succeeded";

/// The built-in check that every upload was read back on every replica.
pub const UPLOADS_VERIFIABLE: &str = "uploads verifiable";

/// Every upload could be read back, and on every replica: an upload whose
/// answer named no stored object, or an (upload, replica) pair whose reads
/// all failed (refused, error statuses, no answer) fails it — except on a
/// replica chaos took down, where such pairs are stated, not failed. Pairs
/// never read (the run stopped first, the window closed before a read
/// through the balancer reached that replica, or the replica was met only
/// after the upload's check ended) are stated with their count: the
/// `attachments.unverified` threshold judges them. The read-back budget is
/// not among the reasons: it is reported, never enforced (no read is
/// skipped for it).
fn uploads_verifiable(expected: &Expectations, r: &RunResults) -> Option<CheckResult> {
    let c = &r.consistency;
    if !expected.uploads && c.unverifiable == 0 {
        return None;
    }
    let victims: std::collections::BTreeSet<&str> = r
        .chaos
        .iter()
        .flat_map(|ch| &ch.events)
        .filter(|e| e.outcome == crate::bundle::Outcome::Done)
        .flat_map(|e| e.target.iter().map(String::as_str))
        .collect();
    let count = |rc: &crate::bundle::ReplicaCounts, v| rc.verdicts.get(&v).copied().unwrap_or(0);
    let errors_on = |rc: &crate::bundle::ReplicaCounts| {
        let why: Vec<String> = c
            .errors
            .iter()
            .filter_map(|(k, n)| {
                let what = k.strip_prefix(rc.replica.as_str())?.strip_prefix(": ")?;
                Some(format!("{what} {n}"))
            })
            .collect();
        let n = count(rc, Verdict::Error);
        if why.is_empty() {
            format!("{} ({n} errors)", rc.replica)
        } else {
            format!("{} ({n} errors: {})", rc.replica, why.join(", "))
        }
    };
    let pairs: u64 = c.verdicts.values().sum();
    let (mut failing, mut excused, mut never) = (Vec::new(), Vec::new(), Vec::new());
    let (mut failing_n, mut excused_n, mut never_n) = (0, 0, 0);
    for rc in &c.replicas {
        let (error, unverified) = (count(rc, Verdict::Error), count(rc, Verdict::Unverified));
        if unverified > 0 {
            never_n += unverified;
            never.push(format!("{} {unverified}", rc.replica));
        }
        if error == 0 {
            continue;
        }
        if victims.contains(rc.replica.as_str()) {
            excused_n += error;
            excused.push(errors_on(rc));
        } else {
            failing_n += error;
            failing.push(errors_on(rc));
        }
    }
    let mut stated = String::new();
    if excused_n > 0 {
        stated += &format!(
            "; {excused_n} pairs on replicas chaos took down could not be read: {}",
            excused.join(", ")
        );
    }
    if never_n > 0 {
        stated += &format!(
            "; {never_n} pairs were never read ({}): see attachments.unverified",
            never.join(", ")
        );
    }
    let (passed, detail) = if c.unverifiable > 0 {
        (
            false,
            format!(
                "{} of {} uploads could not be read back: {}",
                c.unverifiable,
                c.unverifiable + c.uploads,
                count_list(&c.unverifiable_reasons)
            ),
        )
    } else if c.uploads == 0 {
        (
            false,
            "nothing measured: no upload succeeded, so none was read back".to_owned(),
        )
    } else if failing_n > 0 {
        (
            false,
            format!(
                "{failing_n} of {pairs} (upload, replica) pairs could not be read back: {}{stated}",
                failing.join(", ")
            ),
        )
    } else {
        (
            true,
            format!(
                "all {} uploads were read back, {} (upload, replica) pairs judged{stated}",
                c.uploads,
                pairs - excused_n - never_n
            ),
        )
    };
    Some(CheckResult {
        name: UPLOADS_VERIFIABLE.into(),
        passed,
        detail,
    })
}

/// The built-in checks every run gets, thresholds or not: that it produced
/// evidence at all. A run where no request succeeded, a request the
/// scenario needs was never sent, or an upload could not be verified does
/// not pass.
pub fn checks(expected: &Expectations, r: &RunResults) -> Vec<CheckResult> {
    let mut out = Vec::new();
    // The scenario's own requests: a login that works while every search
    // fails is not a run that succeeded.
    let own: Vec<&crate::bundle::Stats> = r
        .requests
        .iter()
        .filter(|s| expected.scenario_requests.contains(&s.name))
        .collect();
    let (succeeded, issued) = own
        .iter()
        .fold((0, 0), |(ok, sent), s| (ok + s.ok, sent + s.issued));
    let failures: Vec<String> = own
        .iter()
        .filter(|s| s.failed > 0)
        .map(|s| format!("{}: {}", s.name, s.failures_text()))
        .collect();
    // More than half: a run whose requests mostly failed says nothing of
    // the cluster's latency or consistency, whatever its thresholds say.
    let most = succeeded > 0 && succeeded * 2 > issued;
    let share = |n: u64| 100.0 * n as f64 / issued.max(1) as f64;
    out.push(CheckResult {
        name: MOST_SUCCEEDED.into(),
        passed: most,
        detail: if most {
            format!(
                "{succeeded} of {issued} ({:.1}%) of the scenario's requests sent succeeded (more than half must; error thresholds judge the rest)",
                share(succeeded)
            )
        } else if issued == 0 {
            format!(
                "nothing measured: none of the scenario's requests was sent ({} steps could not be sent)",
                r.totals.not_sent
            )
        } else if succeeded == 0 {
            format!("none of {issued} of the scenario's requests sent succeeded ({})", failures.join("; "))
        } else {
            format!(
                "only {succeeded} of {issued} ({:.1}%) of the scenario's requests sent succeeded: most failed ({})",
                share(succeeded),
                failures.join("; ")
            )
        },
    });
    let never: Vec<String> = expected
        .requests
        .iter()
        .filter(|name| r.request(name).is_none_or(|s| s.issued == 0))
        .map(|name| match r.request(name).filter(|s| s.not_sent > 0) {
            Some(s) => format!(
                "{name} (not sent {}×: {})",
                s.not_sent,
                count_list(&s.not_sent_reasons)
            ),
            None => format!("{name} (no user reached it)"),
        })
        .collect();
    out.push(CheckResult {
        name: "every request sent".into(),
        passed: never.is_empty(),
        detail: if never.is_empty() {
            format!(
                "all {} requests the scenario needs were sent",
                expected.requests.len()
            )
        } else {
            format!(
                "never sent: {}; mark a request `optional = true` if a run may skip it",
                never.join(", ")
            )
        },
    });
    if let Some(check) = uploads_verifiable(expected, r) {
        out.push(check);
    }
    out
}

#[cfg(test)]
mod tests;
