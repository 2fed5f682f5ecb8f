//! `summary.md`: the verdicts in Markdown, short enough for a PR comment.

use super::chaos;
use super::Export;
use crate::bundle::RunResults;
use std::fmt::Write as _;

pub(super) struct Summary;

/// One-word verdict of a run.
pub(super) fn verdict(r: &RunResults) -> &'static str {
    if r.interrupted.is_some() {
        "INTERRUPTED"
    } else if r.passed() {
        "PASS"
    } else {
        "FAIL"
    }
}

impl Export for Summary {
    fn file_name(&self) -> &'static str {
        "summary.md"
    }

    fn serialize(&self, r: &RunResults) -> anyhow::Result<Vec<u8>> {
        let mut out = String::new();
        writeln!(out, "## surge: {} — **{}**\n", r.scenario, verdict(r))?;
        writeln!(
            out,
            "Run `{}` against `{}` ({}, {:.0} s). {} requests: {} ok, {} failed, {} cancelled.",
            r.run_id,
            r.target,
            r.model_text(),
            r.elapsed_s,
            r.totals.issued,
            r.totals.succeeded,
            r.totals.failed,
            r.totals.cancelled
        )?;
        if !r.tls_verify {
            writeln!(
                out,
                "\n> **TLS certificates were not verified** (`tls_verify = false`)."
            )?;
        }
        if let Some(why) = &r.interrupted {
            writeln!(
                out,
                "\n> Interrupted: {why}. Everything measured until then is included."
            )?;
        }
        if let Some(line) = super::shards_line(r) {
            writeln!(out, "\n{line}.")?;
        }
        if let Some(env) = &r.environment {
            writeln!(out, "\nEnvironment: {}.", env.text())?;
        }
        if r.totals.arrivals > 0 {
            writeln!(
                out,
                "Arrivals: {} scheduled, {} dropped; {} users started.",
                r.totals.arrivals, r.totals.dropped_arrivals, r.totals.users_started
            )?;
        }
        if r.totals.not_sent > 0 {
            writeln!(
                out,
                "\n**Not sent:** {} steps could not be sent (in no figure here).",
                r.totals.not_sent
            )?;
            for (request, why, n) in r.not_sent() {
                writeln!(
                    out,
                    "- `{request}` not sent {n}×: {}",
                    why.replace('|', "\\|")
                )?;
            }
        }
        if !r.checks.is_empty() {
            writeln!(out, "\n| check | found | |\n|---|---|---|")?;
            for c in &r.checks {
                writeln!(
                    out,
                    "| {} | {} | {} |",
                    c.name,
                    c.detail.replace('|', "\\|"),
                    if c.passed { "pass" } else { "**FAIL**" }
                )?;
            }
        }
        if !r.thresholds.is_empty() {
            writeln!(
                out,
                "\n| threshold | limit | measured | |\n|---|---|---|---|"
            )?;
            for t in &r.thresholds {
                writeln!(
                    out,
                    "| `{}` | `{}` | {} | {} |",
                    t.metric,
                    t.limit,
                    t.measured_text,
                    if t.passed { "pass" } else { "**FAIL**" }
                )?;
            }
        }
        let s = &r.sessions;
        if s.sessions > 0 {
            writeln!(
                out,
                "\n**Sessions:** {} accepted, {} replica switches, **{} dropped** ({:.1} per 1,000 sessions).",
                s.sessions, s.switches, s.drops, s.drops_per_1000_sessions
            )?;
            for t in &s.transitions {
                writeln!(out, "- {} → {}: {} drops", t.before, t.after, t.drops)?;
            }
        }
        let c = &r.consistency;
        if c.unverifiable > 0 {
            writeln!(
                out,
                "\n**Attachments:** {} uploads could not be read back (see the checks above).",
                c.unverifiable
            )?;
        }
        if c.uploads > 0 {
            let counts: Vec<String> = c
                .verdicts
                .iter()
                .map(|(v, n)| format!("{} {n}", v.as_str().to_owned()))
                .collect();
            writeln!(
                out,
                "\n**Attachments:** {} uploads; verdicts per (upload, replica) pair: {}; {}.",
                c.uploads,
                counts.join(", "),
                c.visible_text()
            )?;
        }
        let notes = super::carried::notes(r);
        if !notes.is_empty() {
            writeln!(out)?;
            for note in notes {
                writeln!(out, "- {}", note.replace('|', "\\|"))?;
            }
        }
        if let Some(chaos) = &r.chaos {
            let lines = chaos::lines(chaos);
            writeln!(out, "\n**Chaos:** {}", lines[0])?;
            for line in &lines[1..] {
                writeln!(out, "- {line}")?;
            }
        }
        writeln!(
            out,
            "\n| request | count | errors | p50 ms | p95 ms | p99 ms | statuses |\n|---|---|---|---|---|---|---|"
        )?;
        for st in r.requests.iter().chain(std::iter::once(&r.overall)) {
            writeln!(
                out,
                "| {} | {} | {:.2}% | {:.1} | {:.1} | {:.1} | {} |",
                st.name,
                st.count,
                st.error_rate * 100.0,
                st.latency.p50,
                st.latency.p95,
                st.latency.p99,
                st.statuses_text()
            )?;
        }
        let read_backs = super::carried::read_back_rows(r);
        if !read_backs.is_empty() {
            let h = super::carried::READ_BACK_HEADER;
            writeln!(
                out,
                "\n| read-backs: {} |\n|---|---|---|---|---|---|",
                h[..].join(" | ")
            )?;
            for row in &read_backs {
                writeln!(out, "| {} |", row.join(" | "))?;
            }
        }
        Ok(out.into_bytes())
    }
}
