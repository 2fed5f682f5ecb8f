//! Charts of a run, drawn with plotters from [`RunResults`] alone (so any
//! past bundle can be re-drawn): SVG for the HTML report, PNG copies beside it.
//!
//! Text needs a font: DejaVu Sans is embedded in the binary and registered
//! once, so no system fonts or fontconfig are needed.

use crate::bundle::{RunResults, TimelineRow};
use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

mod autoscaling;
mod plot;

pub(super) use plot::lines;
use plot::{bars, framed_lines, lines_marked, Frame};

pub(super) const SIZE: (u32, u32) = (960, 360);
const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");

pub(super) fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is embedded at build time; failing to parse it is a build defect.
        if plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_err() {
            panic!("the embedded DejaVu Sans does not parse");
        }
    });
}

/// Which chart.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// Requests, errors and dropped arrivals per second.
    Throughput,
    /// p50/p95/p99 per second of one request (index into request_timelines).
    RequestLatency(usize),
    /// Percentile curves of every request.
    Curves,
    /// Requests and p95 per replica.
    Replicas,
    /// Session drops per second.
    Drops,
    /// Read-back verdicts per replica.
    Attachments,
    /// Ready and desired replicas over time during chaos.
    ReadyReplicas,
    /// The load, the ready replicas and the latency against the SLO while
    /// an HPA was watched.
    Autoscaling,
}

/// A chart the run has data for.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// File stem (`throughput`, `latency-search_patient`, ...).
    pub name: String,
    /// Title shown above it.
    pub title: String,
    kind: Kind,
}

/// The charts `r` has data for, in report order.
pub fn list(r: &RunResults) -> Vec<Chart> {
    let mut out = vec![Chart {
        name: "throughput".into(),
        title: "Throughput, errors and dropped arrivals per second".into(),
        kind: Kind::Throughput,
    }];
    for (i, t) in r.request_timelines.iter().enumerate() {
        out.push(Chart {
            name: format!("latency-{}", crate::bundle::file_part(&t.request)),
            title: format!("{}: latency over time (p50, p95, p99)", t.request),
            kind: Kind::RequestLatency(i),
        });
    }
    if r.requests.iter().any(|s| !s.curve.is_empty()) {
        out.push(Chart {
            name: "percentiles".into(),
            title: "Latency distribution per request (percentile curves)".into(),
            kind: Kind::Curves,
        });
    }
    if !r.replicas.is_empty() {
        out.push(Chart {
            name: "replicas".into(),
            title: "Traffic and p95 latency per replica".into(),
            kind: Kind::Replicas,
        });
    }
    if r.sessions.drops > 0 {
        out.push(Chart {
            name: "session-drops".into(),
            title: "Session drops per second".into(),
            kind: Kind::Drops,
        });
    }
    if r.chaos
        .as_ref()
        .is_some_and(|c| !c.replica_counts.is_empty())
    {
        out.push(Chart {
            name: "ready-replicas".into(),
            title: "Ready and desired replicas over time, with chaos events".into(),
            kind: Kind::ReadyReplicas,
        });
    }
    if r.autoscaling
        .as_ref()
        .is_some_and(|t| !t.samples.is_empty())
    {
        out.push(Chart {
            name: "autoscaling".into(),
            title: "The autoscaler: load, ready replicas and latency against the SLO".into(),
            kind: Kind::Autoscaling,
        });
    }
    if r.consistency.uploads > 0 {
        out.push(Chart {
            name: "attachments".into(),
            title: "Upload read-backs per replica, by verdict".into(),
            kind: Kind::Attachments,
        });
    }
    out
}

impl Chart {
    /// Its size in pixels: the autoscaling chart stacks three panels.
    fn size(&self) -> (u32, u32) {
        match self.kind {
            Kind::Autoscaling => autoscaling::SIZE,
            Kind::Throughput
            | Kind::RequestLatency(_)
            | Kind::Curves
            | Kind::Replicas
            | Kind::Drops
            | Kind::ReadyReplicas
            | Kind::Attachments => SIZE,
        }
    }
}

/// The chart as an SVG document.
pub fn svg(r: &RunResults, chart: &Chart) -> anyhow::Result<String> {
    register_font();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, chart.size()).into_drawing_area();
        draw(r, chart, &root)?;
        root.present()
            .map_err(|e| anyhow!("drawing {}: {e:?}", chart.name))?;
    }
    Ok(out)
}

/// The chart as a PNG file.
pub fn png(r: &RunResults, chart: &Chart, path: &Path) -> anyhow::Result<()> {
    register_font();
    let root = BitMapBackend::new(path, chart.size()).into_drawing_area();
    draw(r, chart, &root)?;
    root.present()
        .map_err(|e| anyhow!("drawing {}: {e:?}", chart.name))?;
    Ok(())
}

pub(super) type Series = (String, Vec<(f64, f64)>, RGBColor);

/// Draws `chart` of `r` on `root`: the chart's data, then the kind of plot
/// it takes.
fn draw<DB: DrawingBackend>(
    r: &RunResults,
    chart: &Chart,
    root: &DrawingArea<DB, Shift>,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
    // Chaos events are marked on every chart over time.
    let marks: Vec<f64> = r
        .chaos
        .iter()
        .flat_map(|c| c.events.iter().map(|e| e.at_s))
        .collect();
    let title = &chart.title;
    match &chart.kind {
        Kind::Throughput => {
            let series = throughput(&r.timeline);
            lines_marked(root, title, "second", "per second", &series, None, &marks)
        }
        Kind::RequestLatency(i) => {
            let series = latency(&r.request_timelines[*i].rows);
            lines_marked(root, title, "second", "ms", &series, None, &marks)
        }
        Kind::Curves => lines(
            root,
            title,
            "percentile",
            "ms",
            &curves(r),
            Some(nines_label),
        ),
        Kind::Replicas => {
            let labels: Vec<String> = r.replicas.iter().map(|s| s.name.clone()).collect();
            let (top, bottom) = root.split_vertically(SIZE.1 / 2);
            let count = r.replicas.iter().map(|s| s.count as f64).collect();
            let p95 = r.replicas.iter().map(|s| s.latency.p95).collect();
            bars(
                &top,
                "Requests per replica",
                &labels,
                &[("requests".into(), count, BLUE)],
            )?;
            bars(
                &bottom,
                "p95 latency per replica (ms)",
                &labels,
                &[("p95 ms".into(), p95, full_palette::ORANGE)],
            )
        }
        Kind::Drops => {
            let (labels, drops) = r
                .sessions
                .timeline
                .iter()
                .map(|d| (format!("{}s", d.second), d.drops as f64))
                .unzip::<_, _, Vec<String>, Vec<f64>>();
            bars(root, title, &labels, &[("drops".into(), drops, RED)])
        }
        Kind::ReadyReplicas => {
            let series = ready_replicas(r);
            lines_marked(root, title, "second", "replicas", &series, None, &marks)
        }
        Kind::Autoscaling => match &r.autoscaling {
            Some(t) => autoscaling::draw(r, t, root, &marks),
            None => Err(anyhow!("no autoscaler was watched")),
        },
        Kind::Attachments => {
            let c = &r.consistency;
            let labels: Vec<String> = c.replicas.iter().map(|rc| rc.replica.clone()).collect();
            bars(root, title, &labels, &attachments(r))
        }
    }
}

/// Each row's second against `f` of it.
fn per_second(rows: &[TimelineRow], f: fn(&TimelineRow) -> f64) -> Vec<(f64, f64)> {
    rows.iter().map(|row| (row.second as f64, f(row))).collect()
}

/// Requests, errors and dropped arrivals per second.
fn throughput(rows: &[TimelineRow]) -> Vec<Series> {
    vec![
        (
            "requests".into(),
            per_second(rows, |row| row.requests as f64),
            BLUE,
        ),
        (
            "errors".into(),
            per_second(rows, |row| row.errors as f64),
            RED,
        ),
        (
            "dropped".into(),
            per_second(rows, |row| row.dropped as f64),
            full_palette::ORANGE,
        ),
    ]
}

/// p50, p95 and p99 per second of one request.
fn latency(rows: &[TimelineRow]) -> Vec<Series> {
    // Seconds with no completed request have no latency: leave gaps out.
    let busy: Vec<TimelineRow> = rows
        .iter()
        .filter(|row| row.requests > 0)
        .cloned()
        .collect();
    vec![
        ("p50".into(), per_second(&busy, |row| row.p50_ms), GREEN),
        (
            "p95".into(),
            per_second(&busy, |row| row.p95_ms),
            full_palette::ORANGE,
        ),
        ("p99".into(), per_second(&busy, |row| row.p99_ms), RED),
    ]
}

/// Each request's percentile curve, on a "number of nines" axis.
fn curves(r: &RunResults) -> Vec<Series> {
    let palette = [
        BLUE,
        RED,
        GREEN,
        MAGENTA,
        CYAN,
        full_palette::ORANGE,
        full_palette::PURPLE,
        full_palette::BROWN,
        BLACK,
    ];
    r.requests
        .iter()
        .filter(|s| !s.curve.is_empty())
        .enumerate()
        .map(|(i, s)| {
            let points = s
                .curve
                .iter()
                .map(|p| (nines(p.quantile), p.latency_ms))
                .collect();
            (s.name.clone(), points, palette[i % palette.len()])
        })
        .collect()
}

/// Ready and desired replicas (and the HPA's desired, when there is one).
fn ready_replicas(r: &RunResults) -> Vec<Series> {
    let counts = r
        .chaos
        .as_ref()
        .map(|c| c.replica_counts.as_slice())
        .unwrap_or_default();
    // Counts hold until the next change: draw steps out to the end of the run.
    let steps = |f: &dyn Fn(&crate::bundle::ReplicaCount) -> Option<f64>| {
        held(counts, |c| c.at_s, r.elapsed_s, f)
    };
    let mut series: Vec<Series> = vec![
        ("ready".into(), steps(&|c| Some(c.ready as f64)), GREEN),
        (
            "desired".into(),
            steps(&|c| c.desired.map(|d| d as f64)),
            BLUE,
        ),
    ];
    if counts.iter().any(|c| c.hpa_desired.is_some()) {
        series.push((
            "HPA desired".into(),
            steps(&|c| c.hpa_desired.map(|d| d as f64)),
            full_palette::ORANGE,
        ));
    }
    series
}

/// `f` of each of `items` (taken at `at`) as steps: each value held until
/// the next item, the last until `until`; items without a value draw none.
fn held<T>(
    items: &[T],
    at: impl Fn(&T) -> f64,
    until: f64,
    f: impl Fn(&T) -> Option<f64>,
) -> Vec<(f64, f64)> {
    let mut points = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(v) = f(item) else { continue };
        let end = items.get(i + 1).map_or(until, &at);
        points.push((at(item), v));
        points.push((end, v));
    }
    points
}

/// Read-back verdicts per replica: one bar series per verdict that occurred.
fn attachments(r: &RunResults) -> Vec<(String, Vec<f64>, RGBColor)> {
    use crate::bundle::Verdict;
    let c = &r.consistency;
    let colour = |v: Verdict| match v {
        Verdict::Ok => GREEN,
        Verdict::Stale => full_palette::ORANGE,
        Verdict::Missing => RED,
        Verdict::Corrupted => MAGENTA,
        Verdict::Error => BLACK,
        Verdict::Unverified => full_palette::GREY,
    };
    Verdict::ALL
        .iter()
        .filter(|v| c.count(**v) > 0)
        .map(|v| {
            let values = c
                .replicas
                .iter()
                .map(|rc| rc.verdicts.get(v).copied().unwrap_or(0) as f64)
                .collect();
            (v.as_str().to_owned(), values, colour(*v))
        })
        .collect()
}

/// A quantile on a "number of nines" axis: 0.9 → 1, 0.99 → 2, ...
fn nines(q: f64) -> f64 {
    if q >= 1.0 {
        5.0
    } else {
        (-(1.0 - q).log10()).min(5.0)
    }
}

fn nines_label(x: &f64) -> String {
    let q = 1.0 - 10f64.powf(-x);
    format!("{}%", (q * 100.0 * 1000.0).round() / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_axis_maps_quantiles() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(0.99) - 2.0).abs() < 1e-9);
        assert_eq!(nines(1.0), 5.0);
        assert_eq!(nines_label(&2.0), "99%");
        assert_eq!(nines_label(&3.0), "99.9%");
    }

    /// The x labels of a line chart drawn over `0..=x_max` seconds.
    fn x_labels(x_max: f64) -> Vec<String> {
        register_font();
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
            let series = vec![(
                "p50".to_string(),
                vec![(0.0, 1.0), (x_max, 2.0)],
                RGBColor(0, 0, 255),
            )];
            lines(&root, "t", "second", "ms", &series, None).unwrap();
            root.present().unwrap();
        }
        // Labels are text elements; the y labels carry a decimal point, the
        // caption, descriptions and legend are words.
        out.split("<text")
            .filter_map(|t| Some(t.split('>').nth(1)?.split('<').next()?.trim()))
            .filter(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_digit()))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn time_ticks_fall_on_whole_seconds_with_no_label_twice() {
        // A 4 s run: plotters alone ticks every half second ("0 0 1 1 2 ...").
        assert_eq!(x_labels(4.0), ["0", "1", "2", "3", "4"]);
        let long = x_labels(600.0);
        assert!(long.len() >= 4 && long.len() <= 11, "{long:?}");
        let mut unique = long.clone();
        unique.dedup();
        assert_eq!(unique, long);
    }
}
