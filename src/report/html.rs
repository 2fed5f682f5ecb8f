//! `report.html`: one self-contained page — no network, scripts or web fonts;
//! charts are inline SVG — that explains the run without the terminal:
//! verdicts first, then every chart with the table behind it. The words are
//! the report's (see `sections`); this module lays them out in sections,
//! places the charts, and adds HTML's syntax (escaping, tags, classes).

use super::charts;
use super::content::{capitalised, sentence, Line, Markup, Span, Table, Tone};
use super::sections::{self, Report};
use super::Export;
use crate::bundle::RunResults;
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

/// HTML spans: escaped, in their tags.
struct Tags;

impl Markup for Tags {
    fn span(&self, span: &Span) -> String {
        match span {
            Span::Plain(w) => esc(w),
            Span::Code(w) => format!("<code>{}</code>", esc(w)),
            Span::Strong(w) => format!("<b>{}</b>", esc(w)),
            Span::Failed(w) => format!("<span class=\"fail\">{}</span>", esc(w)),
        }
    }
}

/// A paragraph: `Label: text.`, in red when it is an alert.
fn line(o: &mut String, l: &Line) {
    let text = Tags.text(&l.text);
    let body = match l.label {
        Some(label) => format!("{}: {text}", capitalised(label)),
        None => text,
    };
    let class = match l.tone {
        Tone::Alert => " class=\"fail\"",
        Tone::Plain => "",
    };
    let _ = write!(o, "<p{class}>{}</p>", sentence(body));
}

fn lines<'a>(o: &mut String, ls: impl IntoIterator<Item = &'a Line>) {
    for l in ls {
        line(o, l);
    }
}

/// Items as a list (nothing when there are none).
fn list(o: &mut String, items: &[Line]) {
    if items.is_empty() {
        return;
    }
    o.push_str("<ul>");
    for l in items {
        let _ = write!(o, "<li>{}</li>", Tags.text(&l.text));
    }
    o.push_str("</ul>");
}

/// A table (its caption is the caller's to place).
pub(super) fn table(o: &mut String, t: &Table) {
    o.push_str("<table><tr>");
    for h in &t.header {
        let _ = write!(o, "<th>{}</th>", esc(h));
    }
    o.push_str("</tr>");
    for row in &t.rows {
        o.push_str("<tr>");
        for cell in row {
            let _ = write!(o, "<td>{}</td>", Tags.text(cell));
        }
        o.push_str("</tr>");
    }
    o.push_str("</table>");
}

/// A table folded away under its caption.
fn details(o: &mut String, t: &Table) {
    let _ = write!(
        o,
        "<details><summary>{}</summary>",
        esc(&capitalised(t.caption.unwrap_or_default()))
    );
    table(o, t);
    o.push_str("</details>");
}

fn h2(o: &mut String, title: &str) {
    let _ = write!(o, "<h2>{}</h2>", esc(title));
}

/// The chart `name` of the run, inline, if the run has it.
fn chart(o: &mut String, r: &RunResults, name: &str) -> anyhow::Result<()> {
    if let Some(c) = charts::list(r).into_iter().find(|c| c.name == name) {
        let svg = charts::svg(r, &c)?;
        // Drop the XML declaration: inline SVG lives inside HTML.
        let svg = svg.find("<svg").map(|i| &svg[i..]).unwrap_or(&svg);
        write!(
            o,
            "<div class=\"chart\" id=\"chart-{}\" title=\"{}\">{svg}</div>",
            esc(&c.name),
            esc(&c.title)
        )?;
    }
    Ok(())
}

/// The document's head, the headline and what qualifies every figure.
fn head(o: &mut String, rep: &Report, r: &RunResults) {
    let _ = write!(
        o,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>surge {} — {}</title><style>{STYLE}</style></head><body>",
        esc(&r.scenario),
        esc(&r.run_id)
    );
    let v = rep.verdict;
    let _ = write!(
        o,
        "<h1>{} <span class=\"verdict {v}\">{v}</span></h1>",
        esc(&rep.title)
    );
    lines(o, [&rep.run]);
    lines(o, &rep.notices);
    lines(o, &rep.totals);
    if let Some(n) = &rep.not_sent {
        line(o, &n.lead);
        list(o, &n.items);
    }
}

/// Checks and thresholds, each a table when there are any.
fn verdicts(o: &mut String, rep: &Report) {
    for v in [&rep.checks, &rep.thresholds] {
        if !v.table.rows.is_empty() {
            h2(o, v.title);
            table(o, &v.table);
        }
    }
}

fn chaos(o: &mut String, rep: &Report, r: &RunResults) -> anyhow::Result<()> {
    let Some(c) = &rep.chaos else {
        return Ok(());
    };
    h2(o, c.title);
    lines(o, [&c.heading].into_iter().chain(&c.aborted));
    line(o, &c.slo);
    chart(o, r, "ready-replicas")?;
    table(o, &c.table);
    Ok(())
}

fn autoscaling(o: &mut String, rep: &Report, r: &RunResults) -> anyhow::Result<()> {
    if let Some(a) = &rep.autoscaling {
        h2(o, "Autoscaler");
        lines(o, [a]);
        chart(o, r, "autoscaling")?;
    }
    Ok(())
}

fn sessions(o: &mut String, rep: &Report, r: &RunResults) -> anyhow::Result<()> {
    let s = &rep.sessions;
    h2(o, s.title);
    line(o, &s.summary);
    if !s.transitions.is_empty() {
        chart(o, r, "session-drops")?;
        list(o, &s.transitions);
        details(o, &s.drops);
    }
    Ok(())
}

fn attachments(o: &mut String, rep: &Report, r: &RunResults) -> anyhow::Result<()> {
    let a = &rep.attachments;
    h2(o, a.title);
    lines(o, &a.unverifiable);
    line(o, &a.summary);
    if a.any {
        chart(o, r, "attachments")?;
        table(o, &a.by_replica);
        if !a.problems.rows.is_empty() {
            details(o, &a.problems);
        }
    }
    lines(o, &a.writes);
    if !a.lost.rows.is_empty() {
        details(o, &a.lost);
    }
    Ok(())
}

fn throughput(o: &mut String, rep: &Report, r: &RunResults) -> anyhow::Result<()> {
    h2(o, rep.throughput.title);
    chart(o, r, "throughput")?;
    details(o, &rep.throughput.table);
    Ok(())
}

/// The request table, the percentile curves and each request's seconds.
fn requests(o: &mut String, rep: &Report, r: &RunResults) -> anyhow::Result<()> {
    let q = &rep.requests;
    h2(o, q.title);
    table(o, &q.table);
    chart(o, r, "percentiles")?;
    details(o, &q.curves);
    for (request, seconds) in &q.timelines {
        write!(o, "<h3>{}</h3>", esc(request))?;
        let name = format!("latency-{}", crate::bundle::file_part(request));
        chart(o, r, &name)?;
        details(o, seconds);
    }
    Ok(())
}

/// The replica table and what the cluster carried besides the scenario.
fn replicas(o: &mut String, rep: &Report, r: &RunResults) -> anyhow::Result<()> {
    h2(o, rep.replicas.title);
    chart(o, r, "replicas")?;
    table(o, &rep.replicas.table);
    lines(o, &rep.carried.notes);
    if let Some(t) = &rep.carried.read_backs {
        write!(
            o,
            "<h3>{}</h3>",
            esc(&capitalised(t.caption.unwrap_or_default()))
        )?;
        table(o, t);
    }
    Ok(())
}

fn stages(o: &mut String, rep: &Report) {
    h2(o, rep.stages.title);
    table(o, &rep.stages.table);
    o.push_str("<p><small>Latency counts from the scheduled start (open model: no coordinated omission) to the end of the body; service time from the actual send. Written by surge.</small></p></body></html>\n");
}

impl Export for Html {
    fn file_name(&self) -> &'static str {
        "report.html"
    }

    fn serialize(&self, r: &RunResults) -> anyhow::Result<Vec<u8>> {
        let rep = sections::build(r);
        let mut o = String::new();
        head(&mut o, &rep, r);
        verdicts(&mut o, &rep);
        chaos(&mut o, &rep, r)?;
        autoscaling(&mut o, &rep, r)?;
        sessions(&mut o, &rep, r)?;
        attachments(&mut o, &rep, r)?;
        throughput(&mut o, &rep, r)?;
        requests(&mut o, &rep, r)?;
        replicas(&mut o, &rep, r)?;
        stages(&mut o, &rep);
        Ok(o.into_bytes())
    }
}
