//! The summary printed at the end of a run: the report's content (see
//! `sections`) as plain lines — `label: text`, alerts' labels in capitals,
//! items indented, tables padded into columns, and the verdicts last, where
//! the eye lands when the run ends.

use super::content::{Line, Table, Tone};
use super::sections::{self, Report};
use crate::bundle::RunResults;

/// One line: `label: text`, the label in capitals when it is an alert.
/// (Emphasis has no syntax in a terminal: text is its words.)
pub(super) fn line(l: &Line) -> String {
    let text = l.text.words();
    match (l.label, l.tone) {
        (None, _) => text,
        (Some(label), Tone::Alert) => format!("{}: {text}", label.to_uppercase()),
        (Some(label), Tone::Plain) => format!("{label}: {text}"),
    }
}

fn lines<'a>(out: &mut String, lines: impl IntoIterator<Item = &'a Line>) {
    for l in lines {
        out.push_str(&line(l));
        out.push('\n');
    }
}

/// Items under the line they belong to, indented.
fn items<'a>(out: &mut String, items: impl IntoIterator<Item = &'a Line>) {
    for l in items {
        out.push_str("  ");
        out.push_str(&line(l));
        out.push('\n');
    }
}

/// A table padded into columns two spaces apart: the first (names) to the
/// left, the figures to the right; its caption above it.
fn table(out: &mut String, t: &Table) {
    if let Some(caption) = t.caption {
        out.push_str(caption);
        out.push_str(":\n");
    }
    let cells: Vec<Vec<String>> = std::iter::once(t.header.clone())
        .chain(
            t.rows
                .iter()
                .map(|row| row.iter().map(|c| c.words()).collect()),
        )
        .collect();
    let width = |i: usize| cells.iter().map(|row| row[i].chars().count()).max();
    let widths: Vec<usize> = (0..t.header.len()).map(|i| width(i).unwrap_or(0)).collect();
    for row in &cells {
        let padded: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, w))| match i {
                0 => format!("{cell:<w$}"),
                _ => format!("{cell:>w$}"),
            })
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    }
}

/// What a run said, then the tables, then the verdicts.
fn said(out: &mut String, rep: &Report) {
    out.push_str(&format!("{} — {}\n", rep.title, rep.verdict));
    lines(out, [&rep.run]);
    lines(out, &rep.notices);
    lines(out, &rep.totals);
    if let Some(n) = &rep.not_sent {
        lines(out, [&n.lead]);
        items(out, &n.items);
    }
    let s = &rep.sessions;
    if s.any {
        lines(out, [&s.summary]);
        items(out, &s.transitions);
    }
    let a = &rep.attachments;
    lines(out, &a.unverifiable);
    if a.any {
        lines(out, [&a.summary]);
        items(out, &a.trouble);
    }
    lines(out, &a.writes);
    lines(out, &rep.carried.notes);
    if let Some(c) = &rep.chaos {
        lines(out, [&c.heading].into_iter().chain(&c.aborted));
        items(out, &c.events);
    }
    lines(out, &rep.autoscaling);
    lines(out, &rep.requests.errors);
}

/// The summary as text.
pub fn summary(r: &RunResults) -> String {
    let rep = sections::build(r);
    let mut out = String::new();
    said(&mut out, &rep);
    // The terminal has no room for the statuses: the failures name them.
    let figures = |h: &str| h != "statuses";
    out.push('\n');
    table(&mut out, &rep.requests.table.columns(figures));
    items(&mut out, &rep.requests.failures);
    out.push('\n');
    table(&mut out, &rep.replicas.table.columns(figures));
    if let Some(read_backs) = &rep.carried.read_backs {
        out.push('\n');
        table(&mut out, read_backs);
    }
    if rep.stages.notable {
        out.push('\n');
        table(&mut out, &rep.stages.table);
    }
    out.push('\n');
    for v in &rep.verdicts {
        let word = if v.passed { "PASS" } else { "FAIL" };
        out.push_str(&format!("{word} {}\n", v.text.words()));
    }
    out
}
