//! Judging thresholds against what a run measured. Pure: no I/O.
//!
//! One rule for every threshold kind: a statistic rests on a number of
//! observations (requests completed, sessions accepted, uploads read back,
//! arrivals scheduled), and a threshold whose statistic rests on none fails
//! as "nothing measured". A gate must not pass on absent evidence: zero
//! drops among zero sessions is not continuity, zero missing among zero
//! uploads read back is not consistency.

use crate::bundle::{CheckResult, Expectations, RunResults, Stats, ThresholdResult, Verdict};
use crate::scenario::threshold::{
    AttachmentStat, Kind, Metric, RequestStat, SessionStat, Tally, Threshold,
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

fn read(t: &Threshold, r: &RunResults) -> Reading {
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

fn show(kind: Kind, value: f64) -> String {
    match kind {
        Kind::Latency => format!("{value:.1}ms"),
        Kind::Rate => format!("{:.3}%", value * 100.0),
        Kind::Count => format!("{value:.0}"),
        Kind::PerSecond => format!("{value:.2}/s"),
    }
}

/// The measured value a threshold compares, in its canonical unit; `None`
/// when nothing it rests on was measured.
pub fn measured(t: &Threshold, r: &RunResults) -> Option<f64> {
    let reading = read(t, r);
    reading.value.filter(|_| reading.basis > 0)
}

/// Why nothing was measured for `t`: `nothing measured: no session was accepted`.
fn nothing_measured(t: &Threshold, r: &RunResults) -> String {
    format!("nothing measured: no {}", read(t, r).of)
}

/// Judges every threshold.
pub fn judge(thresholds: &[Threshold], r: &RunResults) -> Vec<ThresholdResult> {
    thresholds
        .iter()
        .map(|t| {
            let value = measured(t, r);
            ThresholdResult {
                metric: t.name.clone(),
                limit: t.written.clone(),
                measured: value,
                measured_text: match value {
                    Some(v) => show(t.kind(), v),
                    None => nothing_measured(t, r),
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
/// never read (the window closed before a read through the balancer reached
/// that replica, or the read-back budget was spent) are stated with their
/// count: the `attachments.unverified` threshold judges them.
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
mod tests {
    use super::*;
    use crate::bundle::{Percentiles, Totals, SCHEMA_VERSION};
    use crate::scenario::threshold::ThresholdError;

    fn parse(name: &str, expression: &str) -> Result<Threshold, ThresholdError> {
        crate::scenario::threshold::parse(name, expression, &["search", "never_ran"])
    }

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
            tls_verify: true,
            model: crate::bundle::LoadModel::Open,
            arrivals: None,
            setup_requests: Vec::new(),
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
            attribution: Default::default(),
            cells: vec![],
            timeline: vec![],
            request_timelines: vec![],
            sessions: Default::default(),
            consistency: Default::default(),
            thresholds: vec![],
            checks: vec![],
            chaos: None,
            shard: None,
            merged: None,
            environment: None,
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
        assert_eq!(
            v[0].measured_phrase(),
            "nothing measured: no request of this name completed"
        );
    }

    /// A login that works while every request of the scenario fails is not a
    /// run that succeeded; one scenario request that worked is.
    #[test]
    fn requests_succeeded_counts_the_scenarios_own_requests() {
        let mut r = results();
        r.requests[0].ok = 0;
        r.requests[0].failed = 100;
        r.requests[0].issued = 100;
        r.requests[0]
            .errors
            .insert(crate::bundle::ErrorClass::Http5xx, 100);
        r.requests.push(Stats {
            name: "auth.login".into(),
            count: 10,
            ok: 10,
            issued: 10,
            ..Default::default()
        });
        r.totals.succeeded = 10;
        let expected = Expectations {
            scenario_requests: vec!["search".into()],
            requests: vec!["search".into()],
            uploads: false,
        };
        let first = &checks(&expected, &r)[0];
        assert!(!first.passed, "{first:?}");
        assert!(first.detail.contains("none of 100 of the scenario's requests sent succeeded (search: 100 failed (http_5xx 100)"), "{}", first.detail);
        // The report that found it: 5 of 328 succeeded read as a pass.
        r.requests[0].ok = 5;
        r.requests[0].failed = 323;
        r.requests[0].issued = 328;
        let first = &checks(&expected, &r)[0];
        assert!(!first.passed, "{first:?}");
        assert_eq!(first.name, MOST_SUCCEEDED);
        assert!(
            first.detail.starts_with("only 5 of 328 (1.5%) of the scenario's requests sent succeeded: most failed (search:"),
            "{}",
            first.detail
        );
        r.requests[0].ok = 165;
        r.requests[0].failed = 163;
        let first = &checks(&expected, &r)[0];
        assert!(first.passed, "{first:?}");
        assert!(
            first.detail.contains("165 of 328 (50.3%)"),
            "{}",
            first.detail
        );
        assert!(
            first.detail.contains("more than half must"),
            "{}",
            first.detail
        );
        // Nothing of the scenario's sent at all: nothing measured, not a pass.
        let mut silent = r.clone();
        silent.requests[0] = Stats {
            name: "search".into(),
            not_sent: 4,
            ..Default::default()
        };
        silent.totals.not_sent = 4;
        let first = &checks(&expected, &silent)[0];
        assert!(!first.passed);
        assert!(
            first
                .detail
                .starts_with("nothing measured: none of the scenario's requests was sent (4 steps"),
            "{}",
            first.detail
        );
        // And a request never sent: named, with its reason.
        let expected = Expectations {
            requests: vec!["search".into(), "register".into()],
            ..expected
        };
        let sent = &checks(&expected, &r)[1];
        assert!(
            !sent.passed
                && sent
                    .detail
                    .contains("never sent: register (no user reached it)"),
            "{sent:?}"
        );
    }

    fn pairs(replica: &str, verdicts: &[(Verdict, u64)]) -> crate::bundle::ReplicaCounts {
        crate::bundle::ReplicaCounts {
            replica: replica.into(),
            verdicts: verdicts.iter().copied().collect(),
        }
    }

    /// Uploads read back on every replica pass; pairs no read could judge
    /// fail, saying how many, where and why — unless chaos took that
    /// replica down, where they are stated.
    #[test]
    fn uploads_verifiable_never_passes_over_pairs_nobody_judged() {
        let expected = Expectations {
            scenario_requests: vec!["search".into()],
            requests: vec!["search".into()],
            uploads: true,
        };
        let mut r = results();
        r.consistency.uploads = 225;
        r.consistency.replicas = vec![
            pairs("r1", &[(Verdict::Ok, 225)]),
            pairs(
                "r2",
                &[
                    (Verdict::Ok, 10),
                    (Verdict::Error, 151),
                    (Verdict::Unverified, 64),
                ],
            ),
        ];
        r.consistency.verdicts = [
            (Verdict::Ok, 235),
            (Verdict::Error, 151),
            (Verdict::Unverified, 64),
        ]
        .into();
        r.consistency.errors = [
            ("r2: connect".to_owned(), 150),
            ("r2: status 502".to_owned(), 1),
        ]
        .into();
        let check = uploads_verifiable(&expected, &r).unwrap();
        assert!(!check.passed, "{check:?}");
        assert_eq!(
            check.detail,
            "151 of 450 (upload, replica) pairs could not be read back: r2 (151 errors: connect 150, status 502 1); 64 pairs were never read (r2 64): see attachments.unverified"
        );
        // The same pairs on a replica chaos killed: stated, not failed.
        r.chaos = Some(crate::bundle::ChaosReport {
            events: vec![crate::bundle::ChaosEvent {
                at_s: 3.0,
                action: "kill-pod random".into(),
                target: vec!["r2".into()],
                outcome: crate::bundle::Outcome::Done,
                answer: String::new(),
                ready_before: None,
                ready_after_s: None,
                watched: true,
                impact: None,
            }],
            ..Default::default()
        });
        let check = uploads_verifiable(&expected, &r).unwrap();
        assert!(check.passed, "{check:?}");
        assert_eq!(
            check.detail,
            "all 225 uploads were read back, 235 (upload, replica) pairs judged; 151 pairs on replicas chaos took down could not be read: r2 (151 errors: connect 150, status 502 1); 64 pairs were never read (r2 64): see attachments.unverified"
        );
        // Every pair judged: a plain pass.
        r.chaos = None;
        r.consistency.replicas[1] = pairs("r2", &[(Verdict::Ok, 200), (Verdict::Missing, 25)]);
        r.consistency.verdicts = [(Verdict::Ok, 425), (Verdict::Missing, 25)].into();
        let check = uploads_verifiable(&expected, &r).unwrap();
        assert!(check.passed, "{check:?}");
        assert_eq!(
            check.detail,
            "all 225 uploads were read back, 450 (upload, replica) pairs judged"
        );
    }

    /// Count thresholds of every kind: with nothing behind them they fail
    /// as "nothing measured"; with evidence they judge the count.
    #[test]
    fn counts_never_pass_on_nothing() {
        let counts = [
            ("attachments.missing", "< 1", "no upload was read back"),
            ("attachments.corrupted", "< 1", "no upload was read back"),
            ("attachments.stale", "< 1", "no upload was read back"),
            ("attachments.unverified", "< 1", "no upload was read back"),
            ("attachments.unverifiable", "< 1", "no upload completed"),
            (
                "attachments.visible_p99",
                "< 5s",
                "no upload became visible everywhere",
            ),
            ("session.drops", "< 1", "no session was accepted"),
            ("session.drop_rate", "< 1%", "no session was accepted"),
            ("dropped.count", "< 1", "no arrival was scheduled"),
            ("errors.count", "< 1", "no request completed"),
            (
                "search.count",
                "< 1000",
                "no request of this name completed",
            ),
        ];
        let thresholds: Vec<_> = counts
            .iter()
            .map(|(m, e, _)| parse(m, e).unwrap())
            .collect();
        let mut empty = results();
        empty.totals.arrivals = 0;
        empty.overall.count = 0;
        empty.requests[0].count = 0;
        for (v, (metric, _, why)) in judge(&thresholds, &empty).iter().zip(&counts) {
            assert!(!v.passed, "{metric} passed on nothing");
            assert_eq!(v.measured, None, "{metric}");
            assert_eq!(
                v.measured_text,
                format!("nothing measured: {why}"),
                "{metric}"
            );
        }

        let mut measured = results();
        measured.sessions.sessions = 40;
        measured.consistency.uploads = 10;
        measured.consistency.visible_everywhere = 10;
        measured.consistency.visible.p99 = 120.0;
        measured.overall.failed = 0;
        let judged = judge(&thresholds, &measured);
        let failed: Vec<&str> = judged
            .iter()
            .filter(|v| !v.passed)
            .map(|v| v.metric.as_str())
            .collect();
        // 5 dropped arrivals of 50; every other count is 0 (or 100 < 1000).
        assert_eq!(failed, ["dropped.count"]);
        assert_eq!(judged[5].measured_phrase(), "measured 120.0ms");
    }
}
