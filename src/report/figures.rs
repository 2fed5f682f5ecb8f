//! The figures of a report: the request and replica tables (one set of
//! columns for both), the seconds of the run and of each request, the
//! percentile curves, the stages. Built once here for `sections`; each
//! format shows the columns it has room for.

use super::content::{Line, Table, Text};
use crate::bundle::{percent_label, RunResults, Stats, TimelineRow, CURVE_QUANTILES};

/// The per-request part.
pub(super) struct Requests {
    /// Section title.
    pub title: &'static str,
    /// One row per request and one for all.
    pub table: Table,
    /// Why each request that failed failed.
    pub failures: Vec<Line>,
    /// Errors by class over all requests.
    pub errors: Option<Line>,
    /// Latency at each curve quantile, per request.
    pub curves: Table,
    /// Each request's seconds.
    pub timelines: Vec<(String, Table)>,
}

/// The load stages.
pub(super) struct Stages {
    /// Section title.
    pub title: &'static str,
    /// Whether a summary should show them: more than one stage, or
    /// arrivals to account for (one closed-model stage tells nothing new).
    pub notable: bool,
    /// One row per stage.
    pub table: Table,
}

/// Columns of every table of [`Stats`], after the name.
const STATS_COLUMNS: [&str; 10] = [
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

/// A table of statistics, the first column named `what` (`request`, `replica`).
pub(super) fn stats_table<'a>(what: &str, stats: impl IntoIterator<Item = &'a Stats>) -> Table {
    let header = std::iter::once(what).chain(STATS_COLUMNS);
    Table::new(header).with_rows(stats.into_iter().map(|s| {
        [
            s.name.clone(),
            s.count.to_string(),
            s.failed.to_string(),
            format!("{:.2}%", s.error_rate * 100.0),
            format!("{:.1}", s.throughput),
            format!("{:.1}", s.latency.p50),
            format!("{:.1}", s.latency.p95),
            format!("{:.1}", s.latency.p99),
            format!("{:.1}", s.latency.max),
            format!("{:.1}", s.service.p50),
            s.statuses_text(),
        ]
    }))
}

/// One row per second.
pub(super) fn per_second(rows: &[TimelineRow]) -> Table {
    Table::new([
        "second", "requests", "errors", "dropped", "p50 ms", "p95 ms", "p99 ms",
    ])
    .titled("per second")
    .with_rows(rows.iter().map(|r| {
        [
            r.second.to_string(),
            r.requests.to_string(),
            r.errors.to_string(),
            r.dropped.to_string(),
            format!("{:.1}", r.p50_ms),
            format!("{:.1}", r.p95_ms),
            format!("{:.1}", r.p99_ms),
        ]
    }))
}

/// The per-request part: the table, why requests failed, errors by class,
/// the percentile curves and each request's seconds.
pub(super) fn requests(r: &RunResults) -> Requests {
    let mut errors: Vec<String> = r
        .overall
        .errors
        .iter()
        .map(|(c, n)| format!("{} {n}", c.as_str()))
        .collect();
    errors.sort();
    let header = std::iter::once("request".to_owned())
        .chain(CURVE_QUANTILES.iter().map(|q| percent_label(*q)));
    let curves = Table::new(header)
        .titled("percentile curves")
        .with_rows(r.requests.iter().map(|s| {
            std::iter::once(Text::plain(&s.name)).chain(
                s.curve
                    .iter()
                    .map(|p| format!("{:.1}", p.latency_ms).into()),
            )
        }));
    Requests {
        title: "Requests",
        table: stats_table("request", r.requests.iter().chain([&r.overall])),
        failures: r
            .requests
            .iter()
            .filter(|s| s.failed > 0)
            .map(|s| Line::new(format!("{}: {}", s.name, s.failures_text())))
            .collect(),
        errors: (!errors.is_empty()).then(|| Line::labelled("errors by class", errors.join(", "))),
        curves,
        timelines: r
            .request_timelines
            .iter()
            .map(|t| (t.request.clone(), per_second(&t.rows)))
            .collect(),
    }
}

/// The stages as planned and as they ran.
pub(super) fn stages(r: &RunResults) -> Stages {
    let unit = if r.model == crate::bundle::LoadModel::Open {
        "target arrivals/s"
    } else {
        "target users"
    };
    let table = Table::new(["stage", "from s", "to s", unit, "arrivals", "dropped"]).with_rows(
        r.stages.iter().map(|s| {
            [
                (s.index + 1).to_string(),
                format!("{:.0}", s.start_s),
                format!("{:.0}", s.end_s),
                format!("{}", s.target),
                s.arrivals.to_string(),
                s.dropped.to_string(),
            ]
        }),
    );
    Stages {
        title: "Stages",
        notable: r.stages.len() > 1 || r.totals.arrivals > 0,
        table,
    }
}
