//! `report.html`: one self-contained page — no network, scripts or web fonts;
//! charts are inline SVG — that explains the run without the terminal:
//! verdicts first, then every chart with the table behind it.

use super::chaos;
use super::charts;
use super::markdown::verdict;
use super::Export;
use crate::bundle::Verdict;
use crate::bundle::{RunResults, Stats, TimelineRow};
use std::fmt::Write as _;

pub(super) struct Html;

/// Escapes text for HTML.
pub(super) fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

pub(super) const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1000px;color:#222}\
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}\
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}\
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}\
.verdict{display:inline-block;padding:.2em .8em;border-radius:4px;color:#fff;font-weight:bold}\
.PASS{background:#2a7d2a}.FAIL{background:#b22222}.INTERRUPTED{background:#b8860b}\
.fail{color:#b22222;font-weight:bold}.chart{margin:1em 0}.chart svg{max-width:100%;height:auto;border:1px solid #eee}\
details{margin:.5em 0}";

pub(super) fn table(
    out: &mut String,
    header: &[&str],
    rows: impl IntoIterator<Item = Vec<String>>,
) {
    out.push_str("<table><tr>");
    for h in header {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

fn stats_rows<'a>(stats: impl IntoIterator<Item = &'a Stats>) -> Vec<Vec<String>> {
    stats
        .into_iter()
        .map(|s| {
            vec![
                esc(&s.name),
                s.count.to_string(),
                s.failed.to_string(),
                format!("{:.2}%", s.error_rate * 100.0),
                format!("{:.1}", s.throughput),
                format!("{:.1}", s.latency.p50),
                format!("{:.1}", s.latency.p95),
                format!("{:.1}", s.latency.p99),
                format!("{:.1}", s.latency.max),
                format!("{:.1}", s.service.p50),
                esc(&s.statuses_text()),
            ]
        })
        .collect()
}

const STATS_HEADER: [&str; 11] = [
    "name",
    "count",
    "failed",
    "errors",
    "req/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "max ms",
    "service p50 ms",
    "statuses",
];

fn timeline_rows(rows: &[TimelineRow]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| {
            vec![
                r.second.to_string(),
                r.requests.to_string(),
                r.errors.to_string(),
                r.dropped.to_string(),
                format!("{:.1}", r.p50_ms),
                format!("{:.1}", r.p95_ms),
                format!("{:.1}", r.p99_ms),
            ]
        })
        .collect()
}

const TIMELINE_HEADER: [&str; 7] = [
    "second", "requests", "errors", "dropped", "p50 ms", "p95 ms", "p99 ms",
];

fn chart(out: &mut String, r: &RunResults, name: &str) -> anyhow::Result<()> {
    if let Some(c) = charts::list(r).into_iter().find(|c| c.name == name) {
        let svg = charts::svg(r, &c)?;
        // Drop the XML declaration: inline SVG lives inside HTML.
        let svg = svg.find("<svg").map(|i| &svg[i..]).unwrap_or(&svg);
        let _ = write!(
            out,
            "<div class=\"chart\" id=\"chart-{}\" title=\"{}\">{svg}</div>",
            esc(&c.name),
            esc(&c.title)
        );
    }
    Ok(())
}

impl Export for Html {
    fn file_name(&self) -> &'static str {
        "report.html"
    }

    fn serialize(&self, r: &RunResults) -> anyhow::Result<Vec<u8>> {
        let mut o = String::new();
        let v = verdict(r);
        write!(
            o,
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>surge {} — {}</title><style>{STYLE}</style></head><body>",
            esc(&r.scenario),
            esc(&r.run_id)
        )?;
        write!(
            o,
            "<h1>surge: {} <span class=\"verdict {v}\">{v}</span></h1>",
            esc(&r.scenario)
        )?;
        write!(
            o,
            "<p>Run <code>{}</code> against <code>{}</code>, {}, started {}, ran {:.1} s of {:.0} s planned.</p>",
            esc(&r.run_id),
            esc(&r.target),
            esc(&r.model_text()),
            esc(&r.started_at),
            r.elapsed_s,
            r.planned_s
        )?;
        if let Some(why) = &r.interrupted {
            write!(o, "<p class=\"fail\">Interrupted: {}. Everything measured until then is included.</p>", esc(why))?;
        }
        if let Some(line) = super::shards_line(r) {
            write!(o, "<p>{}</p>", esc(&line))?;
        }
        if let Some(env) = &r.environment {
            write!(o, "<p>Environment: {}.</p>", esc(&env.text()))?;
        }
        if !r.tls_verify {
            o.push_str("<p class=\"fail\">TLS certificates were not verified (tls_verify = false): the target's identity is unchecked.</p>");
        }
        let t = &r.totals;
        write!(
            o,
            "<p>{} requests issued = {} succeeded + {} failed + {} cancelled at stop.{}</p>",
            t.issued,
            t.succeeded,
            t.failed,
            t.cancelled,
            if t.arrivals > 0 {
                format!(
                    " {} arrivals scheduled, {} dropped (no free user); {} users started.",
                    t.arrivals, t.dropped_arrivals, t.users_started
                )
            } else {
                String::new()
            }
        )?;

        if r.totals.not_sent > 0 {
            write!(
                o,
                "<p class=\"fail\">{} steps could not be sent; they are in no figure on this page:</p><ul>",
                r.totals.not_sent
            )?;
            for (request, why, n) in r.not_sent() {
                write!(o, "<li>{} not sent {n}×: {}</li>", esc(request), esc(why))?;
            }
            o.push_str("</ul>");
        }
        if !r.checks.is_empty() {
            o.push_str("<h2>Checks</h2>");
            table(
                &mut o,
                &["check", "found", "verdict"],
                r.checks.iter().map(|c| {
                    vec![
                        esc(&c.name),
                        esc(&c.detail),
                        if c.passed {
                            "pass".into()
                        } else {
                            "<span class=\"fail\">FAIL</span>".into()
                        },
                    ]
                }),
            );
        }
        if !r.thresholds.is_empty() {
            o.push_str("<h2>Thresholds</h2>");
            table(
                &mut o,
                &["threshold", "limit", "measured", "verdict"],
                r.thresholds.iter().map(|th| {
                    vec![
                        esc(&th.metric),
                        esc(&th.limit),
                        esc(&th.measured_text),
                        if th.passed {
                            "pass".into()
                        } else {
                            "<span class=\"fail\">FAIL</span>".into()
                        },
                    ]
                }),
            );
        }

        if let Some(chaos) = &r.chaos {
            o.push_str("<h2>Chaos</h2>");
            write!(o, "<p>{}</p>", esc(&chaos::lines(chaos)[0]))?;
            if let Some(why) = &chaos.aborted {
                write!(o, "<p class=\"fail\">{}</p>", esc(why))?;
            }
            write!(
                o,
                "<p>Latency SLO for recovery: p95 ≤ {} ({}).</p>",
                chaos
                    .slo_p95_ms
                    .map_or("per event".to_owned(), |v| format!("{v:.0} ms")),
                esc(&chaos.slo_source)
            )?;
            chart(&mut o, r, "ready-replicas")?;
            let opt = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.1}"));
            table(
                &mut o,
                &[
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
                ],
                chaos.events.iter().map(|e| {
                    let i = e.impact.clone().unwrap_or_default();
                    vec![
                        format!("{:.1}", e.at_s),
                        esc(&e.action),
                        esc(&e.target.join(", ")),
                        format!("{:?}", e.outcome).to_lowercase(),
                        esc(&e.answer),
                        opt(e.ready_after_s),
                        i.burst_errors.to_string(),
                        i.burst_s.to_string(),
                        i.session_drops.to_string(),
                        opt(i.p99_before_ms),
                        opt(i.p99_after_ms),
                        opt(i.p95_back_s),
                    ]
                }),
            );
        }

        let s = &r.sessions;
        o.push_str("<h2>Session continuity</h2>");
        if s.sessions == 0 {
            o.push_str("<p>No authenticated sessions in this run.</p>");
        } else {
            write!(
                o,
                "<p>{} sessions accepted ({} re-logins), {} replica switches, <b>{} dropped</b> ({:.1} per 1,000 sessions, {} during chaos).</p>",
                s.sessions, s.relogins, s.switches, s.drops, s.drops_per_1000_sessions, s.drops_during_chaos
            )?;
            if s.drops > 0 {
                chart(&mut o, r, "session-drops")?;
                table(
                    &mut o,
                    &["replica before", "replica after", "drops"],
                    s.transitions
                        .iter()
                        .map(|t| vec![esc(&t.before), esc(&t.after), t.drops.to_string()]),
                );
                o.push_str("<details><summary>Drops one by one</summary>");
                table(
                    &mut o,
                    &[
                        "at s",
                        "user",
                        "request",
                        "before",
                        "after",
                        "status",
                        "during chaos",
                    ],
                    s.events.iter().map(|d| {
                        vec![
                            format!("{:.2}", d.at_s),
                            d.user.to_string(),
                            esc(&d.request),
                            esc(&d.before),
                            esc(&d.after),
                            d.status.to_string(),
                            d.during_chaos.to_string(),
                        ]
                    }),
                );
                o.push_str("</details>");
            }
        }

        let c = &r.consistency;
        o.push_str("<h2>Attachment consistency</h2>");
        if c.uploads == 0 {
            o.push_str("<p>No uploads were checked in this run.</p>");
        } else {
            write!(
                o,
                "<p>{} uploads, each read back from every replica (verdicts per pair below); {}.</p>",
                c.uploads,
                esc(&c.visible_text())
            )?;
            chart(&mut o, r, "attachments")?;
            let mut header = vec!["replica"];
            let names: Vec<String> = Verdict::ALL.iter().map(|v| v.as_str().to_owned()).collect();
            header.extend(names.iter().map(String::as_str));
            table(
                &mut o,
                &header,
                c.replicas.iter().map(|rc| {
                    std::iter::once(esc(&rc.replica))
                        .chain(
                            Verdict::ALL
                                .iter()
                                .map(|v| rc.verdicts.get(v).copied().unwrap_or(0).to_string()),
                        )
                        .collect()
                }),
            );
            if !c.problems.is_empty() {
                o.push_str("<details><summary>Problems one by one</summary>");
                table(
                    &mut o,
                    &[
                        "upload",
                        "request",
                        "uploaded on",
                        "read on",
                        "verdict",
                        "visible after ms",
                    ],
                    c.problems.iter().map(|p| {
                        vec![
                            esc(&p.id),
                            esc(&p.request),
                            esc(&p.uploaded_on),
                            esc(&p.replica),
                            p.verdict.as_str().to_owned(),
                            p.visible_after_ms
                                .map(|m| m.to_string())
                                .unwrap_or_default(),
                        ]
                    }),
                );
                o.push_str("</details>");
            }
        }

        o.push_str("<h2>Throughput and errors</h2>");
        chart(&mut o, r, "throughput")?;
        o.push_str("<details><summary>Per second</summary>");
        table(&mut o, &TIMELINE_HEADER, timeline_rows(&r.timeline));
        o.push_str("</details>");

        o.push_str("<h2>Requests</h2>");
        table(
            &mut o,
            &STATS_HEADER,
            stats_rows(r.requests.iter().chain(std::iter::once(&r.overall))),
        );
        chart(&mut o, r, "percentiles")?;
        o.push_str("<details><summary>Percentile curves</summary>");
        let quantiles: Vec<String> = crate::bundle::CURVE_QUANTILES
            .iter()
            .map(|q| crate::bundle::percent_label(*q))
            .collect();
        let mut header = vec!["request"];
        header.extend(quantiles.iter().map(String::as_str));
        table(
            &mut o,
            &header,
            r.requests.iter().map(|s| {
                std::iter::once(esc(&s.name))
                    .chain(s.curve.iter().map(|p| format!("{:.1}", p.latency_ms)))
                    .collect()
            }),
        );
        o.push_str("</details>");
        for t in &r.request_timelines {
            write!(o, "<h3>{}</h3>", esc(&t.request))?;
            chart(
                &mut o,
                r,
                &format!("latency-{}", crate::bundle::file_part(&t.request)),
            )?;
            o.push_str("<details><summary>Per second</summary>");
            table(&mut o, &TIMELINE_HEADER, timeline_rows(&t.rows));
            o.push_str("</details>");
        }

        o.push_str("<h2>Replicas</h2>");
        chart(&mut o, r, "replicas")?;
        table(&mut o, &STATS_HEADER, stats_rows(&r.replicas));
        for note in super::carried::notes(r) {
            write!(o, "<p>{}</p>", esc(&note))?;
        }
        let read_backs = super::carried::read_back_rows(r);
        if !read_backs.is_empty() {
            o.push_str("<h3>Read-backs of uploads (load surge added)</h3>");
            table(
                &mut o,
                &super::carried::READ_BACK_HEADER,
                read_backs
                    .into_iter()
                    .map(|row| row.iter().map(|c| esc(c)).collect()),
            );
        }

        o.push_str("<h2>Stages</h2>");
        let unit = if r.model == crate::bundle::LoadModel::Open {
            "target arrivals/s"
        } else {
            "target users"
        };
        table(
            &mut o,
            &["stage", "from s", "to s", unit, "arrivals", "dropped"],
            r.stages.iter().map(|s| {
                vec![
                    (s.index + 1).to_string(),
                    format!("{:.0}", s.start_s),
                    format!("{:.0}", s.end_s),
                    format!("{}", s.target),
                    s.arrivals.to_string(),
                    s.dropped.to_string(),
                ]
            }),
        );
        o.push_str("<p><small>Latency counts from the scheduled start (open model: no coordinated omission) to the end of the body; service time from the actual send. Written by surge.</small></p></body></html>\n");
        Ok(o.into_bytes())
    }
}
