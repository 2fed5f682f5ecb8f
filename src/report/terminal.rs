//! The summary printed at the end of a run: totals, one table per request
//! and per replica, stages, and threshold verdicts.

use super::chaos;
use crate::bundle::{RunResults, Stats};
use std::fmt::Write as _;

fn table(out: &mut String, title: &str, rows: &[Stats]) {
    let width = rows
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(0)
        .max(title.len());
    let _ = writeln!(
        out,
        "{title:<width$}  {:>8} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "count", "failed", "err%", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "svc p50"
    );
    for s in rows {
        let _ = writeln!(
            out,
            "{:<width$}  {:>8} {:>7} {:>6.2}% {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            s.name,
            s.count,
            s.failed,
            s.error_rate * 100.0,
            s.throughput,
            s.latency.p50,
            s.latency.p95,
            s.latency.p99,
            s.latency.max,
            s.service.p50
        );
    }
}

/// The summary as text.
pub fn summary(r: &RunResults) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "surge {} {} — scenario {} ({}) against {}",
        if r.merged.is_some() { "merge" } else { "run" },
        r.run_id,
        r.scenario,
        r.model_text(),
        r.target
    );
    if !r.tls_verify {
        let _ = writeln!(out, "WARNING: TLS certificates were NOT verified (tls_verify = false): the target's identity is unchecked");
    }
    if let Some(why) = &r.interrupted {
        let _ = writeln!(out, "INTERRUPTED: {why} after {:.1}s of {:.0}s planned; everything measured until then is kept", r.elapsed_s, r.planned_s);
    }
    if let Some(line) = super::shards_line(r) {
        let _ = writeln!(out, "{line}");
    }
    if let Some(env) = &r.environment {
        let _ = writeln!(out, "environment: {}", env.text());
    }
    let t = &r.totals;
    let _ = writeln!(
        out,
        "requests: {} issued = {} succeeded + {} failed + {} cancelled at stop",
        t.issued, t.succeeded, t.failed, t.cancelled
    );
    if t.not_sent > 0 {
        let _ = writeln!(
            out,
            "not sent: {} steps could not be sent (in no figure below; reasons under the table)",
            t.not_sent
        );
    }
    if t.arrivals > 0 {
        let _ = writeln!(
            out,
            "arrivals: {} scheduled, {} dropped (no free user); {} users started",
            t.arrivals, t.dropped_arrivals, t.users_started
        );
    }
    if r.user_panics > 0 {
        let _ = writeln!(out, "WARNING: {} virtual-user transactions panicked (caught; those users restarted their sessions)", r.user_panics);
    }
    let sv = &r.sessions;
    if sv.sessions > 0 {
        let _ = writeln!(
            out,
            "sessions: {} accepted ({} re-logins), {} replica switches, {} dropped ({:.1} per 1,000 sessions{})",
            sv.sessions,
            sv.relogins,
            sv.switches,
            sv.drops,
            sv.drops_per_1000_sessions,
            if sv.drops_during_chaos > 0 { format!(", {} during chaos", sv.drops_during_chaos) } else { String::new() }
        );
        for t in &sv.transitions {
            let _ = writeln!(
                out,
                "  session drops {} -> {}: {}",
                t.before, t.after, t.drops
            );
        }
    }
    let c = &r.consistency;
    for (why, n) in &c.unverifiable_reasons {
        let _ = writeln!(
            out,
            "attachments: {n} uploads could not be read back: {why}"
        );
    }
    if c.uploads > 0 {
        use crate::bundle::Verdict;
        let counts: Vec<String> = Verdict::ALL
            .iter()
            .filter(|v| c.count(**v) > 0)
            .map(|v| format!("{} {}", v.as_str().to_owned(), c.count(*v)))
            .collect();
        let _ = writeln!(
            out,
            "attachments: {} uploads; verdicts per (upload, replica) pair: {}; {}",
            c.uploads,
            counts.join(", "),
            c.visible_text()
        );
        for rc in &c.replicas {
            let bad: Vec<String> = rc
                .verdicts
                .iter()
                .filter(|(v, _)| **v != Verdict::Ok)
                .map(|(v, n)| format!("{} {n}", v.as_str().to_owned()))
                .collect();
            if !bad.is_empty() {
                let _ = writeln!(out, "  on {}: {}", rc.replica, bad.join(", "));
            }
        }
    }
    for note in super::carried::notes(r) {
        let _ = writeln!(out, "{note}");
    }
    if let Some(chaos) = &r.chaos {
        for (i, line) in chaos::lines(chaos).iter().enumerate() {
            let _ = writeln!(out, "{}{line}", if i == 0 { "" } else { "  " });
        }
    }
    let mut errors: Vec<String> = r
        .overall
        .errors
        .iter()
        .map(|(c, n)| format!("{} {n}", c.as_str()))
        .collect();
    if !errors.is_empty() {
        errors.sort();
        let _ = writeln!(out, "errors by class: {}", errors.join(", "));
    }
    out.push('\n');
    let mut rows = r.requests.clone();
    rows.push(r.overall.clone());
    table(&mut out, "request", &rows);
    for s in r.requests.iter().filter(|s| s.failed > 0) {
        let _ = writeln!(out, "  {}: {}", s.name, s.failures_text());
    }
    for (request, why, n) in r.not_sent() {
        let _ = writeln!(out, "  {request}: not sent {n}×: {why}");
    }
    out.push('\n');
    table(&mut out, "replica", &r.replicas);
    let read_backs = super::carried::read_back_rows(r);
    if !read_backs.is_empty() {
        out.push('\n');
        let h = super::carried::READ_BACK_HEADER;
        let width = read_backs
            .iter()
            .map(|row| row[0].len())
            .max()
            .unwrap_or(0)
            .max(10);
        let _ = writeln!(
            out,
            "{:<width$}  {:>8} {:>17} {:>7} {:>13} {:>21}",
            "read-backs", h[1], h[2], h[3], h[4], h[5]
        );
        for row in &read_backs {
            let _ = writeln!(
                out,
                "{:<width$}  {:>8} {:>17} {:>7} {:>13} {:>21}",
                row[0], row[1], row[2], row[3], row[4], row[5]
            );
        }
    }
    if r.stages.len() > 1 || t.arrivals > 0 {
        out.push('\n');
        let unit = if r.model == crate::bundle::LoadModel::Open {
            "arrivals/s"
        } else {
            "users"
        };
        for s in &r.stages {
            let _ = writeln!(
                out,
                "stage {}: {:.0}s–{:.0}s, target {} {unit}, {} arrivals, {} dropped",
                s.index + 1,
                s.start_s,
                s.end_s,
                s.target,
                s.arrivals,
                s.dropped
            );
        }
    }
    out.push('\n');
    for c in &r.checks {
        let _ = writeln!(
            out,
            "{} {}: {}",
            if c.passed { "PASS" } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    for th in &r.thresholds {
        let _ = writeln!(
            out,
            "{} {} {} ({})",
            if th.passed { "PASS" } else { "FAIL" },
            th.metric,
            th.limit,
            th.measured_phrase()
        );
    }
    out
}
