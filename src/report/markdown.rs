//! `summary.md`: the verdicts in Markdown, short enough for a PR comment.
//! The content is the report's (see `sections`); this module chooses the
//! parts a PR comment has room for and adds Markdown's syntax: bold labels,
//! `>` for alerts, backticks, pipes.

use super::content::{capitalised, sentence, Line, Markup, Span, Table, Tone};
use super::sections::{self, Report};
use super::Export;
use crate::bundle::RunResults;

pub(super) struct Summary;

/// Markdown spans; in a table a pipe is escaped even in code.
struct Md {
    in_table: bool,
}

impl Markup for Md {
    fn span(&self, span: &Span) -> String {
        match span {
            Span::Plain(w) => w.replace('|', "\\|"),
            Span::Code(w) if self.in_table => format!("`{}`", w.replace('|', "\\|")),
            Span::Code(w) => format!("`{w}`"),
            Span::Strong(w) | Span::Failed(w) => format!("**{w}**"),
        }
    }
}

/// A line as a sentence: `**Label:** text.`, quoted when it is an alert.
fn line(l: &Line) -> String {
    let text = Md { in_table: false }.text(&l.text);
    let body = match l.label {
        Some(label) => format!("**{}:** {text}", capitalised(label)),
        None => text,
    };
    let body = sentence(body);
    match l.tone {
        Tone::Alert => format!("> {body}\n"),
        Tone::Plain => format!("{body}\n"),
    }
}

/// Lines one under the other after a blank line, then items as a list. A
/// quoted alert stands apart: Markdown would take the line after it into
/// the quote.
fn block<'a>(out: &mut String, lines: impl IntoIterator<Item = &'a Line>, items: &[Line]) {
    let mut quoted = None;
    for l in lines {
        let alert = l.tone == Tone::Alert;
        if quoted.is_none() || alert || quoted == Some(true) {
            out.push('\n');
        }
        out.push_str(&line(l));
        quoted = Some(alert);
    }
    if quoted == Some(true) && !items.is_empty() {
        out.push('\n');
    }
    for l in items {
        out.push_str("- ");
        out.push_str(&Md { in_table: false }.text(&l.text));
        out.push('\n');
    }
}

/// A table after a blank line, its caption (if any) above it.
fn table(out: &mut String, t: &Table) {
    if let Some(caption) = t.caption {
        out.push_str(&format!("\n**{}:**\n", capitalised(caption)));
    }
    let md = Md { in_table: true };
    let row = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
    out.push('\n');
    out.push_str(&row(t
        .header
        .iter()
        .map(|h| h.replace('|', "\\|"))
        .collect()));
    out.push_str(&format!("|{}\n", "---|".repeat(t.header.len())));
    for cells in &t.rows {
        out.push_str(&row(cells.iter().map(|c| md.text(c)).collect()));
    }
}

/// Headline, notices, totals, what was not sent, the verdicts.
fn head(out: &mut String, rep: &Report) {
    out.push_str(&format!("## {} — **{}**\n", rep.title, rep.verdict));
    block(out, [&rep.run], &[]);
    for notice in &rep.notices {
        block(out, [notice], &[]);
    }
    block(out, &rep.totals, &[]);
    if let Some(n) = &rep.not_sent {
        block(out, [&n.lead], &n.items);
    }
    for verdicts in [&rep.checks.table, &rep.thresholds.table] {
        if !verdicts.rows.is_empty() {
            table(out, verdicts);
        }
    }
}

/// Sessions, attachments, the carried traffic, chaos, the autoscaler.
fn findings(out: &mut String, rep: &Report) {
    let s = &rep.sessions;
    if s.any {
        block(out, [&s.summary], &s.transitions);
    }
    let a = &rep.attachments;
    for l in a.unverifiable.iter().chain(a.any.then_some(&a.summary)) {
        block(out, [l], &[]);
    }
    if !a.writes.is_empty() {
        block(out, &a.writes, &[]);
    }
    if !a.lost.rows.is_empty() {
        table(out, &a.lost);
    }
    if !rep.carried.notes.is_empty() {
        block(out, &rep.carried.notes, &[]);
    }
    if let Some(c) = &rep.chaos {
        // The section's title leads its heading line, as labels lead lines.
        let heading = Line {
            label: Some(c.title),
            ..c.heading.clone()
        };
        block(out, [&heading].into_iter().chain(&c.aborted), &c.events);
    }
    if let Some(a) = &rep.autoscaling {
        block(out, [a], &[]);
    }
}

impl Export for Summary {
    fn file_name(&self) -> &'static str {
        "summary.md"
    }

    fn serialize(&self, r: &RunResults) -> anyhow::Result<Vec<u8>> {
        let rep = sections::build(r);
        let mut out = String::new();
        head(&mut out, &rep);
        findings(&mut out, &rep);
        // Room for the latency percentiles and the statuses, not for more.
        let brief = |h: &str| {
            [
                "request", "count", "errors", "p50 ms", "p95 ms", "p99 ms", "statuses",
            ]
            .contains(&h)
        };
        table(&mut out, &rep.requests.table.columns(brief));
        if let Some(read_backs) = &rep.carried.read_backs {
            table(&mut out, read_backs);
        }
        Ok(out.into_bytes())
    }
}
