//! A run's report content, built once from its results and free of any
//! syntax: the headline, the notices, the totals, the verdicts, sessions,
//! attachments, chaos, what the cluster carried, the request, replica and
//! stage tables. The terminal summary, `summary.md` and `report.html` each
//! render this [`Report`]: they choose which parts they have room for and
//! where, and add only syntax — so every fact is worded here and reads the
//! same in all three. (Chaos, the carried traffic and the figures' tables
//! are built in their own modules, `chaos`, `carried` and `figures`; the
//! charts are the page's alone.)

use super::carried;
use super::chaos::{self, Chaos};
use super::content::{Line, Span, Table, Text};
use super::figures::{self, Requests, Stages};
use crate::bundle::{ReplicaCounts, RunResults, Verdict as Upload};

/// Everything a report of a run says.
pub(super) struct Report {
    /// `surge: <scenario>`.
    pub title: String,
    /// `PASS`, `FAIL` or `INTERRUPTED`.
    pub verdict: &'static str,
    /// Which run, against what, how long.
    pub run: Line,
    /// What qualifies every figure: TLS, an interruption, shards, the
    /// environment, panics.
    pub notices: Vec<Line>,
    /// Requests issued and how they ended; arrivals.
    pub totals: Vec<Line>,
    /// Steps that could not be sent, and why.
    pub not_sent: Option<Listing>,
    /// The built-in checks.
    pub checks: Titled,
    /// The thresholds.
    pub thresholds: Titled,
    /// Checks and thresholds as one verdict each.
    pub verdicts: Vec<VerdictLine>,
    /// Session continuity.
    pub sessions: Sessions,
    /// Attachment consistency.
    pub attachments: Attachments,
    /// What the cluster carried besides the scenario's requests.
    pub carried: Carried,
    /// Chaos, when the run had any.
    pub chaos: Option<Chaos>,
    /// The autoscaler, when the run watched an HPA.
    pub autoscaling: Option<Line>,
    /// Requests completed and failed, per second.
    pub throughput: Titled,
    /// Per request.
    pub requests: Requests,
    /// Per replica.
    pub replicas: Titled,
    /// The load stages.
    pub stages: Stages,
}

/// A line and the items it stands over.
pub(super) struct Listing {
    /// What the items are.
    pub lead: Line,
    /// One line each.
    pub items: Vec<Line>,
}

/// A check's or a threshold's verdict in one line.
pub(super) struct VerdictLine {
    /// Whether it passed.
    pub passed: bool,
    /// What was judged and what was found.
    pub text: Text,
}

/// A table under a section title.
pub(super) struct Titled {
    /// Section title.
    pub title: &'static str,
    /// The table.
    pub table: Table,
}

/// Session continuity.
pub(super) struct Sessions {
    /// Section title.
    pub title: &'static str,
    /// Whether any session was accepted (a run without logins has nothing
    /// to say here but that).
    pub any: bool,
    /// Sessions, switches and drops.
    pub summary: Line,
    /// Drops between each pair of replicas.
    pub transitions: Vec<Line>,
    /// The drops one by one.
    pub drops: Table,
}

/// Attachment consistency.
pub(super) struct Attachments {
    /// Section title.
    pub title: &'static str,
    /// Whether any upload was checked.
    pub any: bool,
    /// Uploads that could not be read back, by reason.
    pub unverifiable: Vec<Line>,
    /// Uploads, verdicts and how long until visible everywhere.
    pub summary: Line,
    /// Verdict counts per replica.
    pub by_replica: Table,
    /// The verdicts other than ok, per replica that had any.
    pub trouble: Vec<Line>,
    /// The problems one by one.
    pub problems: Table,
    /// The writes: sent, failed and when, and the audit after the run.
    pub writes: Vec<Line>,
    /// The acknowledged writes gone after the run, one by one.
    pub lost: Table,
}

/// What the cluster carried besides the scenario's own requests.
pub(super) struct Carried {
    /// Totals with read-backs, budget, unmapped answers, retries.
    pub notes: Vec<Line>,
    /// Read-backs per replica, when any was sent.
    pub read_backs: Option<Table>,
}

/// One-word verdict of a run.
fn verdict(r: &RunResults) -> &'static str {
    if r.interrupted.is_some() {
        "INTERRUPTED"
    } else if r.passed() {
        "PASS"
    } else {
        "FAIL"
    }
}

/// The report of `r`.
pub(super) fn build(r: &RunResults) -> Report {
    Report {
        title: format!("surge: {}", r.scenario),
        verdict: verdict(r),
        run: run_line(r),
        notices: notices(r),
        totals: totals(r),
        not_sent: not_sent(r),
        checks: Titled {
            title: "Checks",
            table: checks(r),
        },
        thresholds: Titled {
            title: "Thresholds",
            table: thresholds(r),
        },
        verdicts: verdict_lines(r),
        sessions: sessions(r),
        attachments: attachments(r),
        carried: Carried {
            notes: carried::notes(r),
            read_backs: carried::read_backs(r),
        },
        chaos: r.chaos.as_ref().map(chaos::section),
        autoscaling: r.autoscaling.as_ref().map(|t| {
            super::autoscaling::line(
                t,
                &r.timeline,
                r.elapsed_s as u64,
                &r.sessions.timeline,
                r.latency_slo,
            )
        }),
        throughput: Titled {
            title: "Throughput and errors",
            table: figures::per_second(&r.timeline),
        },
        requests: figures::requests(r),
        replicas: Titled {
            title: "Replicas",
            table: figures::stats_table("replica", &r.replicas),
        },
        stages: figures::stages(r),
    }
}

fn run_line(r: &RunResults) -> Line {
    Line::new(
        Text::plain("Run ")
            .then(Span::Code(r.run_id.clone()))
            .and(" against ")
            .then(Span::Code(r.target.clone()))
            .and(format!(
                ", {}, started {}, ran {:.1} s of {:.0} s planned",
                r.model_text(),
                r.started_at,
                r.elapsed_s,
                r.planned_s
            )),
    )
}

fn notices(r: &RunResults) -> Vec<Line> {
    let mut out = Vec::new();
    if !r.tls_verify {
        out.push(Line::alert(
            "warning",
            Text::plain("TLS certificates were not verified (")
                .then(Span::Code("tls_verify = false".into()))
                .and("): the target's identity is unchecked"),
        ));
    }
    if let Some(why) = &r.interrupted {
        out.push(Line::alert(
            "interrupted",
            format!(
                "{why} after {:.1} s of {:.0} s planned; everything measured until then is included",
                r.elapsed_s, r.planned_s
            ),
        ));
    }
    if let Some(line) = shards_line(r) {
        out.push(Line::new(line));
    }
    if let Some(env) = &r.environment {
        out.push(Line::labelled("environment", env.text()));
    }
    if r.user_panics > 0 {
        out.push(Line::alert(
            "warning",
            format!(
                "{} virtual-user transactions panicked (caught; those users restarted their sessions)",
                r.user_panics
            ),
        ));
    }
    out
}

/// What a shard's or a merged bundle holds of a sharded test, in one line
/// (None for a whole test run in one process).
fn shards_line(r: &RunResults) -> Option<String> {
    if let Some(s) = &r.shard {
        let late = s
            .late_ms
            .map(|ms| format!(", began {ms:.0} ms after --start-at"))
            .unwrap_or_default();
        return Some(format!(
            "shard {} of {} (on {}){late}: part of a test; `surge merge` of every shard's bundle judges the whole",
            s.index, s.count, s.host
        ));
    }
    let m = r.merged.as_ref()?;
    let count = m.shards.first().map_or(0, |s| s.count);
    let hosts: std::collections::BTreeSet<&str> =
        m.shards.iter().map(|s| s.host.as_str()).collect();
    let mut line = format!(
        "merged: {} of {count} shards on {} host(s), began within {:.0} ms of each other",
        m.shards.len(),
        hosts.len(),
        m.start_spread_ms
    );
    let late: Vec<f64> = m.shards.iter().filter_map(|s| s.late_ms).collect();
    if let Some(worst) = late.iter().copied().reduce(f64::max) {
        line += &format!(" (latest {worst:.0} ms after --start-at)");
    }
    if !m.missing.is_empty() {
        line += &format!(
            "; PARTIAL: shards {:?} missing, so every figure covers only part of the test",
            m.missing
        );
    }
    Some(line)
}

fn totals(r: &RunResults) -> Vec<Line> {
    let t = &r.totals;
    let mut out = vec![Line::labelled(
        "requests",
        format!(
            "{} issued = {} succeeded + {} failed + {} cancelled at stop",
            t.issued, t.succeeded, t.failed, t.cancelled
        ),
    )];
    if t.arrivals > 0 {
        out.push(Line::labelled(
            "arrivals",
            format!(
                "{} scheduled, {} dropped (no free user); {} users started",
                t.arrivals, t.dropped_arrivals, t.users_started
            ),
        ));
    }
    out.extend(metrics_out(r));
    out
}

/// How the pushes to each `--metrics-out` receiver fared.
fn metrics_out(r: &RunResults) -> Vec<Line> {
    r.metrics_out
        .iter()
        .map(|m| {
            let over = if m.over_cap > 0 {
                format!(", {} series over the cap left out", m.over_cap)
            } else {
                String::new()
            };
            let error = m
                .last_error
                .as_ref()
                .map(|e| format!(" (last failure: {e})"))
                .unwrap_or_default();
            let latency = if m.histograms.is_empty() {
                String::new()
            } else {
                format!("; latency as {} histograms", m.histograms)
            };
            Line::labelled(
                "metrics out",
                format!(
                    "{} {}: {} pushes accepted, {} failed, {} dropped (queue full){over}{error}{latency}",
                    m.kind, m.target, m.pushed, m.failed, m.dropped
                ),
            )
        })
        .collect()
}

fn not_sent(r: &RunResults) -> Option<Listing> {
    if r.totals.not_sent == 0 {
        return None;
    }
    Some(Listing {
        lead: Line::labelled(
            "not sent",
            format!(
                "{} steps could not be sent (in no figure here)",
                r.totals.not_sent
            ),
        ),
        items: r
            .not_sent()
            .map(|(request, why, n)| {
                Line::new(Text::code(request).and(format!(": not sent {n}×: {why}")))
            })
            .collect(),
    })
}

fn checks(r: &RunResults) -> Table {
    Table::new(["check", "found", "verdict"]).with_rows(r.checks.iter().map(|c| {
        vec![
            c.name.as_str().into(),
            c.detail.as_str().into(),
            Text::verdict(c.passed),
        ]
    }))
}

fn thresholds(r: &RunResults) -> Table {
    Table::new(["threshold", "limit", "measured", "verdict"]).with_rows(r.thresholds.iter().map(
        |t| {
            vec![
                Text::code(&t.metric),
                Text::code(&t.limit),
                t.measured_text.as_str().into(),
                Text::verdict(t.passed),
            ]
        },
    ))
}

fn verdict_lines(r: &RunResults) -> Vec<VerdictLine> {
    let checks = r.checks.iter().map(|c| VerdictLine {
        passed: c.passed,
        text: format!("{}: {}", c.name, c.detail).into(),
    });
    let thresholds = r.thresholds.iter().map(|t| VerdictLine {
        passed: t.passed,
        text: format!("{} {} ({})", t.metric, t.limit, t.measured_phrase()).into(),
    });
    checks.chain(thresholds).collect()
}

fn sessions(r: &RunResults) -> Sessions {
    let s = &r.sessions;
    let summary = if s.sessions == 0 {
        Line::labelled("sessions", "none authenticated in this run")
    } else {
        let chaos = if s.drops_during_chaos > 0 {
            format!(", {} during chaos", s.drops_during_chaos)
        } else {
            String::new()
        };
        Line::labelled(
            "sessions",
            Text::plain(format!(
                "{} accepted ({} re-logins), {} replica switches, ",
                s.sessions, s.relogins, s.switches
            ))
            .then(Span::Strong(format!("{} dropped", s.drops)))
            .and(format!(
                " ({:.1} per 1,000 sessions{chaos})",
                s.drops_per_1000_sessions
            )),
        )
    };
    let drops = Table::new([
        "at s",
        "user",
        "request",
        "before",
        "after",
        "status",
        "during chaos",
    ])
    .titled("drops one by one")
    .with_rows(s.events.iter().map(|d| {
        [
            format!("{:.2}", d.at_s),
            d.user.to_string(),
            d.request.clone(),
            d.before.clone(),
            d.after.clone(),
            d.status.to_string(),
            d.during_chaos.to_string(),
        ]
    }));
    Sessions {
        title: "Session continuity",
        any: s.sessions > 0,
        summary,
        transitions: s
            .transitions
            .iter()
            .map(|t| Line::new(format!("{} → {}: {} drops", t.before, t.after, t.drops)))
            .collect(),
        drops,
    }
}

fn attachments(r: &RunResults) -> Attachments {
    let c = &r.consistency;
    let summary = if c.uploads == 0 {
        Line::labelled("attachments", "no uploads were checked in this run")
    } else {
        Line::labelled(
            "attachments",
            format!(
                "{} uploads; verdicts per (upload, replica) pair: {}; {}",
                c.uploads,
                verdict_counts(|v| c.count(v), None),
                c.visible_text()
            ),
        )
    };
    let on = |rc: &ReplicaCounts, v: Upload| rc.verdicts.get(&v).copied().unwrap_or(0);
    let trouble = c.replicas.iter().filter_map(|rc| {
        let bad = verdict_counts(|v| on(rc, v), Some(Upload::Ok));
        (!bad.is_empty()).then(|| Line::new(format!("on {}: {bad}", rc.replica)))
    });
    let header = std::iter::once("replica").chain(Upload::ALL.iter().map(|v| v.as_str()));
    let by_replica = Table::new(header).with_rows(c.replicas.iter().map(|rc| {
        std::iter::once(Text::plain(&rc.replica))
            .chain(Upload::ALL.iter().map(|v| on(rc, *v).to_string().into()))
    }));
    Attachments {
        title: "Attachment consistency",
        any: c.uploads > 0,
        unverifiable: c
            .unverifiable_reasons
            .iter()
            .map(|(why, n)| {
                Line::labelled(
                    "attachments",
                    format!("{n} uploads could not be read back: {why}"),
                )
            })
            .collect(),
        summary,
        by_replica,
        trouble: trouble.collect(),
        problems: problems(r),
        writes: writes(&c.writes),
        lost: lost(&c.writes),
    }
}

/// The writes' lines: none when the run sent none. Lost writes and an
/// audit that could not answer for every write are alerts.
fn writes(w: &crate::bundle::Writes) -> Vec<Line> {
    if w.sent == 0 {
        return Vec::new();
    }
    let mut sent = format!("{} sent, {} failed", w.sent, w.failed);
    if let Some(o) = w.outage {
        sent += &format!(
            "; the longest outage: {} writes failed one after another from {:.1} s to {:.1} s of the run ({:.1} s)",
            o.failed,
            o.from_s,
            o.to_s,
            o.seconds()
        );
    }
    if let Some(s) = w.stall {
        sent += &format!(
            "; the longest stall: no write succeeded for {:.1} s, from {:.1} s to {:.1} s of the run",
            s.seconds(),
            s.from_s,
            s.to_s
        );
    }
    let mut out = vec![Line::labelled("writes", sent)];
    let Some(a) = &w.audit else {
        return out;
    };
    let mut found = vec![format!("{} present", a.present), format!("{} lost", a.lost)];
    for (n, what) in [
        (a.changed, "changed"),
        (a.unanswered, "unanswered"),
        (a.not_audited, "not audited"),
    ] {
        if n > 0 {
            found.push(format!("{n} {what}"));
        }
    }
    out.push(Line::labelled(
        "writes",
        format!(
            "audit after the run: {} acknowledged writes, read again through the balancer ({} reads after the run): {}",
            a.acknowledged,
            a.reads,
            found.join(", ")
        ),
    ));
    if let Some(first) = a.lost_writes.first() {
        out.push(Line::alert(
            "writes",
            format!(
                "{} acknowledged writes were gone after the run; the first: {} {} (acknowledged by {} at {:.1} s)",
                a.lost, first.request, first.id, first.replica, first.acknowledged_at_s
            ),
        ));
    }
    if !a.complete() {
        out.push(Line::alert(
            "writes",
            format!(
                "{} acknowledged writes were not answered for, so no count of lost writes is complete",
                a.unanswered + a.not_audited
            ),
        ));
    }
    out
}

fn lost(w: &crate::bundle::Writes) -> Table {
    let listed = w.audit.iter().flat_map(|a| &a.lost_writes);
    Table::new(["write", "request", "acknowledged by", "at s"])
        .titled("acknowledged writes lost, one by one")
        .with_rows(listed.map(|l| {
            [
                l.id.clone(),
                l.request.clone(),
                l.replica.clone(),
                format!("{:.1}", l.acknowledged_at_s),
            ]
        }))
}

/// `ok 150, stale 2`: the verdicts counted, in report order, but for those
/// counted none and `but`.
fn verdict_counts(count: impl Fn(Upload) -> u64, but: Option<Upload>) -> String {
    let parts: Vec<String> = Upload::ALL
        .iter()
        .filter(|v| Some(**v) != but && count(**v) > 0)
        .map(|v| format!("{} {}", v.as_str(), count(*v)))
        .collect();
    parts.join(", ")
}

fn problems(r: &RunResults) -> Table {
    Table::new([
        "upload",
        "request",
        "uploaded on",
        "read on",
        "verdict",
        "visible after ms",
    ])
    .titled("problems one by one")
    .with_rows(r.consistency.problems.iter().map(|p| {
        [
            p.id.clone(),
            p.request.clone(),
            p.uploaded_on.clone(),
            p.replica.clone(),
            p.verdict.as_str().to_owned(),
            p.visible_after_ms
                .map(|m| m.to_string())
                .unwrap_or_default(),
        ]
    }))
}
