//! The autoscaling chart: the load, the ready replicas and the latency the
//! SLO judges, stacked on one time axis, so a reader sees the load pass what
//! the ready pods serve, the pods follow, and the seconds the SLO broke.

use super::{framed_lines, held, per_second, Frame, Series};
use crate::bundle::{AutoscalingTimeline, LatencyStat, RunResults};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Three panels, each as tall as a chart of its own.
pub(super) const SIZE: (u32, u32) = (super::SIZE.0, 3 * 260);

/// Draws the three panels of `t` over the run `r` on `root`.
pub(super) fn draw<DB: DrawingBackend>(
    r: &RunResults,
    t: &AutoscalingTimeline,
    root: &DrawingArea<DB, Shift>,
    marks: &[f64],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let panels = root.split_evenly((3, 1));
    let x_max = r.elapsed_s.max(1.0);
    let frame = |title, y_desc| Frame {
        title,
        x_desc: "second",
        y_desc,
        x_label: None,
        marks,
        x_max: Some(x_max),
    };
    framed_lines(
        &panels[0],
        &frame(
            "Load against what the ready pods serve at the HPA's target",
            "per second",
        ),
        &load(r, t),
    )?;
    framed_lines(
        &panels[1],
        &frame("Ready replicas and the HPA's desired", "replicas"),
        &replicas(t, x_max),
    )?;
    let stat = r.latency_slo.map_or(LatencyStat::P99, |slo| slo.stat);
    let title = match r.latency_slo {
        Some(slo) => format!(
            "{} latency against the SLO of {} ms",
            slo.stat.name(),
            slo.limit_ms
        ),
        None => format!(
            "{} latency (no latency SLO among the thresholds)",
            stat.name()
        ),
    };
    framed_lines(&panels[2], &frame(&title, "ms"), &latency(r, stat, x_max))
}

/// Requests and dropped arrivals per second, and what the ready pods serve
/// at the target (a rate per pod, or a CPU target turned into one).
fn load(r: &RunResults, t: &AutoscalingTimeline) -> Vec<Series> {
    let rows = &r.timeline;
    let mut out: Vec<Series> = vec![
        (
            "requests".into(),
            per_second(rows, |row| row.requests as f64),
            BLUE,
        ),
        (
            "dropped arrivals".into(),
            per_second(rows, |row| row.dropped as f64),
            full_palette::ORANGE,
        ),
    ];
    let full_s = r.elapsed_s as u64;
    if let Some(serves) = crate::verify::autoscaling::serves_per_pod(t, rows, full_s) {
        let per_pod = serves.rate;
        let served = steps(t, r.elapsed_s, |s| Some(s.ready as f64 * per_pod));
        out.push(("ready pods × target".into(), served, GREEN));
    }
    out
}

/// Ready replicas and the HPA's desired, held until the next sample.
fn replicas(t: &AutoscalingTimeline, x_max: f64) -> Vec<Series> {
    vec![
        (
            "ready".into(),
            steps(t, x_max, |s| Some(s.ready as f64)),
            GREEN,
        ),
        (
            "HPA desired".into(),
            steps(t, x_max, |s| s.hpa_desired.map(f64::from)),
            full_palette::ORANGE,
        ),
    ]
}

/// The statistic per second (seconds that completed no request left out)
/// and the SLO's limit across the run.
fn latency(r: &RunResults, stat: LatencyStat, x_max: f64) -> Vec<Series> {
    let points = r
        .timeline
        .iter()
        .filter(|row| row.requests > 0)
        .filter_map(|row| Some((row.second as f64, stat.of_second(row)?)))
        .collect();
    let mut out: Vec<Series> = vec![(stat.name().into(), points, RED)];
    if let Some(slo) = r.latency_slo {
        out.push((
            "SLO".into(),
            vec![(0.0, slo.limit_ms), (x_max, slo.limit_ms)],
            BLACK,
        ));
    }
    out
}

/// The samples' `f` as steps, each value held until the next sample.
fn steps(
    t: &AutoscalingTimeline,
    until: f64,
    f: impl Fn(&crate::bundle::AutoscalerSample) -> Option<f64>,
) -> Vec<(f64, f64)> {
    held(&t.samples, |s| s.at_s, until, f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{AutoscalerSample, LatencySlo, TimelineRow};

    fn timeline() -> AutoscalingTimeline {
        let sample = |at_s, ready, desired| AutoscalerSample {
            at_s,
            ready,
            hpa_desired: Some(desired),
            ..Default::default()
        };
        AutoscalingTimeline {
            workload: "deployment/hapi".into(),
            hpa: "clinic/hapi".into(),
            metric: Some("pods http_server_requests_per_second".into()),
            target: Some(10.0),
            samples: vec![sample(0.0, 1, 1), sample(5.0, 1, 3), sample(9.0, 3, 3)],
            unanswered: 0,
            forecast: None,
        }
    }

    #[test]
    fn replicas_are_held_until_the_next_sample_and_the_last_to_the_end() {
        let series = replicas(&timeline(), 12.0);
        assert_eq!(
            series[0].1,
            [
                (0.0, 1.0),
                (5.0, 1.0),
                (5.0, 1.0),
                (9.0, 1.0),
                (9.0, 3.0),
                (12.0, 3.0)
            ]
        );
        assert_eq!(series[1].1.last(), Some(&(12.0, 3.0)));
    }

    #[test]
    fn the_load_panel_shows_what_ready_pods_serve_only_for_a_rate_per_pod() {
        let r = RunResults {
            elapsed_s: 12.0,
            ..crate::report::tests::fixture()
        };
        let names = |t: &AutoscalingTimeline| -> Vec<String> {
            load(&r, t).into_iter().map(|s| s.0).collect()
        };
        assert_eq!(
            names(&timeline()),
            ["requests", "dropped arrivals", "ready pods × target"]
        );
        let served = &load(&r, &timeline())[2].1;
        assert_eq!(served[0], (0.0, 10.0));
        assert_eq!(served.last(), Some(&(12.0, 30.0)));
        let cpu = AutoscalingTimeline {
            metric: Some("resource cpu".into()),
            ..timeline()
        };
        assert_eq!(names(&cpu), ["requests", "dropped arrivals"]);
    }

    #[test]
    fn the_latency_panel_draws_the_slo_only_when_there_is_one() {
        let mut r = RunResults {
            elapsed_s: 3.0,
            timeline: (0..3)
                .map(|second| TimelineRow {
                    second,
                    requests: u64::from(second != 1),
                    p95_ms: 100.0 * second as f64,
                    p99_ms: 900.0,
                    ..Default::default()
                })
                .collect(),
            ..crate::report::tests::fixture()
        };
        let without = latency(&r, LatencyStat::P99, 3.0);
        assert_eq!(without.len(), 1);
        assert_eq!(
            without[0].1,
            [(0.0, 900.0), (2.0, 900.0)],
            "second 1 served nothing"
        );
        r.latency_slo = Some(LatencySlo {
            stat: LatencyStat::P95,
            limit_ms: 150.0,
        });
        let with = latency(&r, LatencyStat::P95, 3.0);
        assert_eq!(with[0].1, [(0.0, 0.0), (2.0, 200.0)]);
        assert_eq!(with[1].1, [(0.0, 150.0), (3.0, 150.0)]);
    }
}
