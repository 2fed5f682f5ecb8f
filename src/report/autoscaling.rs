//! The autoscaler's line in every report: what the HPA was and did over
//! the run (from the timeline surge read every second), or that nothing
//! could be read. Decided once here; each format adds its syntax.

use super::content::{Line, Text};
use crate::bundle::{
    AutoscalingForecast, AutoscalingTimeline, DropSecond, LatencySlo, TimelineRow,
};
use crate::verify::autoscaling::{rises, serves_per_pod, End, ServesPerPod};

/// The line, when the run watched an HPA; `rows` are the load's seconds,
/// `full_s` how many of them were whole, `drops` the sessions dropped
/// second by second, `slo` what each second of a rise is judged by.
pub(super) fn line(
    t: &AutoscalingTimeline,
    rows: &[TimelineRow],
    full_s: u64,
    drops: &[DropSecond],
    slo: Option<LatencySlo>,
) -> Line {
    let metric = match (&t.metric, t.target) {
        (Some(m), Some(target)) => format!(", {m} target {}", number(target)),
        (Some(m), None) => format!(", {m}"),
        _ => String::new(),
    };
    let head = format!("hpa {} on {}{metric}: ", t.hpa, t.workload);
    let unanswered = match t.unanswered {
        0 => String::new(),
        n => format!("; {n} s unanswered"),
    };
    let over = |rise: &crate::verify::autoscaling::Rise| match slo {
        Some(slo) => format!(
            " ({} s over the {} SLO of {} ms, {} requests completed in them)",
            rise.over_slo_s,
            slo.stat.name(),
            number(slo.limit_ms),
            rise.requests_over_slo
        ),
        None => String::new(),
    };
    // A CPU target is judged at the rate the run's own readings give it.
    let basis = match serves_per_pod(t, rows, full_s) {
        Some(ServesPerPod {
            rate,
            from_cpu: Some((seconds, per_unit)),
        }) => format!(
            "; a pod serves {} req/s at the target ({} req/s per unit of the CPU metric over {seconds} s of this run with its pods settled)",
            number(rate),
            number(per_unit)
        ),
        _ => String::new(),
    };
    let response = match rises(t, rows, full_s, slo) {
        Some(r) if !r.rises.is_empty() => {
            let waits: Vec<String> = r
                .rises
                .iter()
                .map(|rise| {
                    let at = format!("at {} s needing {} pods", rise.began_s, rise.needed);
                    let end = match rise.end {
                        End::PodsReady(end) => {
                            format!("{at}, ready {} s later", end - rise.began_s)
                        }
                        End::LoadFell(end) => {
                            format!("{at}, fell back at {end} s before any pod came")
                        }
                        End::RunEnded => format!("{at}, not ready by the end"),
                    };
                    format!("{end}{}", over(rise))
                })
                .collect();
            format!("; load past the ready pods {}", waits.join(", "))
        }
        _ => String::new(),
    };
    let down = scale_down(t, drops);
    let forecast = t
        .forecast
        .as_ref()
        .map(|f| against_forecast(f, t, rows, full_s, slo))
        .unwrap_or_default();
    let text = match t.summary() {
        None if t.unanswered > 0 => format!(
            "{head}nothing measured (the API server answered none of {} seconds)",
            t.unanswered
        ),
        None => format!("{head}nothing measured (no sample taken)"),
        Some(s) => format!(
            "{head}ready {} → {} (peak {} at {:.0} s), HPA desired at most {}, last value {}{basis}{response}{down}{forecast}; {} samples{unanswered}",
            s.ready_first,
            s.ready_last,
            s.ready_peak,
            s.ready_peak_at_s,
            s.desired_peak.map_or("unknown".into(), |d| d.to_string()),
            s.metric_last.map_or("not seen".into(), number),
            t.samples.len(),
        ),
    };
    Line::labelled("autoscaler", Text::plain(text))
}

/// The run against what calibrate forecast for its ramp: the seconds over
/// the SLO (every full second of the run, as the forecast counts them) and
/// the peak pods Ready, each inside the forecast's range or how far out.
fn against_forecast(
    f: &AutoscalingForecast,
    t: &AutoscalingTimeline,
    rows: &[TimelineRow],
    full_s: u64,
    slo: Option<LatencySlo>,
) -> String {
    let span = |(least, most): (u64, u64)| {
        if least == most {
            least.to_string()
        } else {
            format!("{least}–{most}")
        }
    };
    let side = |measured: u64, (least, most): (u64, u64)| {
        if measured < least {
            format!("{} below", least - measured)
        } else if measured > most {
            format!("{} above", measured - most)
        } else {
            "within".to_owned()
        }
    };
    let over = match slo {
        Some(slo) => {
            let measured = rows
                .iter()
                .filter(|r| r.second < full_s && slo.broken_by(r))
                .count() as u64;
            format!(
                "{measured} s over the SLO ({} the forecast)",
                side(measured, f.over_slo_s)
            )
        }
        None => "seconds over the SLO not judged (no latency SLO among the thresholds)".into(),
    };
    let peak_range = (u64::from(f.peak_ready.0), u64::from(f.peak_ready.1));
    let peak = t.summary().map_or("no pod seen".into(), |s| {
        let measured = u64::from(s.ready_peak);
        format!(
            "peak {measured} pods Ready ({} the forecast)",
            side(measured, peak_range)
        )
    });
    format!(
        "; forecast by {} for {} under the HPA {}: {} s over the SLO, peak {} pods; measured {over}, {peak}",
        f.calibration,
        f.ramp,
        f.hpa,
        span(f.over_slo_s),
        span(peak_range),
    )
}

/// The way down: when the ready pods first fell below their peak, and the
/// sessions dropped from then on (users on a removed pod, when sessions
/// are kept per pod).
fn scale_down(t: &AutoscalingTimeline, drops: &[DropSecond]) -> String {
    let mut peak = 0;
    for s in &t.samples {
        if s.ready < peak {
            let from = s.at_s.floor() as u64;
            let dropped: u64 = drops
                .iter()
                .filter(|d| d.second >= from)
                .map(|d| d.drops)
                .sum();
            return format!(
                "; down from {peak} to {} at {:.0} s, {dropped} sessions dropped since",
                s.ready, s.at_s
            );
        }
        peak = peak.max(s.ready);
    }
    String::new()
}

/// A figure as the API writes it: whole when whole, else two decimals.
fn number(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::AutoscalerSample;

    fn timeline(samples: Vec<AutoscalerSample>, unanswered: u64) -> AutoscalingTimeline {
        AutoscalingTimeline {
            workload: "deployment/hapi".into(),
            hpa: "clinic/hapi".into(),
            metric: Some("pods http_server_requests_per_second".into()),
            target: Some(10.0),
            samples,
            unanswered,
            forecast: None,
        }
    }

    /// A CPU HPA: the rate a pod serves at its target, and from what, then
    /// the rise judged at that rate.
    #[test]
    fn a_cpu_target_says_the_rate_it_was_judged_at() {
        let mut t = timeline(Vec::new(), 0);
        t.metric = Some("resource cpu".into());
        t.target = Some(50.0);
        let mut rows = Vec::new();
        for second in 0..80u64 {
            let (requests, ready, cpu) = match second {
                0..50 => (10, 1, 50.0),
                50..65 => (30, 1, 100.0),
                _ => (30, 3, 50.0),
            };
            rows.push(TimelineRow {
                second,
                requests,
                ..Default::default()
            });
            t.samples.push(AutoscalerSample {
                at_s: second as f64 + 0.5,
                ready,
                hpa_desired: Some(3),
                metric_value: Some(cpu),
                ..Default::default()
            });
        }
        let said = line(&t, &rows, 80, &[], None).text.words();
        assert!(
            said.contains("a pod serves 13 req/s at the target (0.26 req/s per unit of the CPU metric over 35 s of this run with its pods settled); load past the ready pods at 51 s needing 3 pods, ready 14 s later"),
            "{said}"
        );
    }

    #[test]
    fn the_line_says_what_the_autoscaler_did_or_that_nothing_was_measured() {
        let sample = |at_s: f64, ready: u32, desired: u32, value: f64| AutoscalerSample {
            at_s,
            ready,
            hpa_desired: Some(desired),
            metric_value: Some(value),
            ..Default::default()
        };
        let did = line(
            &timeline(
                vec![
                    sample(0.0, 1, 1, 0.0),
                    sample(20.0, 1, 3, 29.1),
                    sample(31.0, 3, 3, 9.662),
                ],
                1,
            ),
            &[],
            0,
            &[],
            None,
        );
        assert_eq!(
            did.text.words(),
            "hpa clinic/hapi on deployment/hapi, pods http_server_requests_per_second target 10: \
             ready 1 → 3 (peak 3 at 31 s), HPA desired at most 3, last value 9.66; 3 samples; 1 s unanswered"
        );
        let none = line(&timeline(vec![], 75), &[], 0, &[], None);
        let never = line(&timeline(vec![], 0), &[], 0, &[], None);
        assert!(never
            .text
            .words()
            .ends_with("nothing measured (no sample taken)"));
        // With the load's seconds: when it rose past the pods, and the wait.
        let rows: Vec<TimelineRow> = (0..40)
            .map(|second| TimelineRow {
                second,
                requests: 30,
                ..Default::default()
            })
            .collect();
        let waited = line(
            &timeline(vec![sample(0.0, 1, 3, 29.0), sample(31.0, 3, 3, 9.7)], 0),
            &rows,
            40,
            &[],
            None,
        );
        assert!(
            waited
                .text
                .words()
                .contains("; load past the ready pods at 0 s needing 3 pods, ready 30 s later;"),
            "{}",
            waited.text.words()
        );
        // Each rise's seconds over the SLO, when the run had one.
        let slow: Vec<TimelineRow> = rows
            .iter()
            .map(|r| TimelineRow {
                p99_ms: if r.second < 5 { 600.0 } else { 100.0 },
                ..r.clone()
            })
            .collect();
        let slo = LatencySlo {
            stat: crate::bundle::LatencyStat::P99,
            limit_ms: 500.0,
        };
        let judged = line(
            &timeline(vec![sample(0.0, 1, 3, 29.0), sample(31.0, 3, 3, 9.7)], 0),
            &slow,
            40,
            &[],
            Some(slo),
        );
        assert!(
            judged
                .text
                .words()
                .contains("ready 30 s later (5 s over the p99 SLO of 500 ms, 150 requests completed in them);"),
            "{}",
            judged.text.words()
        );
        // Beside the forecast: each figure inside its range or how far out.
        let mut forecast = timeline(vec![sample(0.0, 1, 3, 29.0), sample(31.0, 3, 3, 9.7)], 0);
        forecast.forecast = Some(AutoscalingForecast {
            calibration: "reports/cal".into(),
            ramp: "morning over 40 s, peak 30/s".into(),
            hpa: "as recommended".into(),
            over_slo_s: (6, 9),
            peak_ready: (4, 4),
        });
        let judged = line(&forecast, &slow, 40, &[], Some(slo)).text.words();
        assert!(
            judged.contains("; forecast by reports/cal for morning over 40 s, peak 30/s under the HPA as recommended: 6–9 s over the SLO, peak 4 pods; measured 5 s over the SLO (1 below the forecast), peak 3 pods Ready (1 below the forecast);"),
            "{judged}"
        );
        if let Some(f) = forecast.forecast.as_mut() {
            (f.over_slo_s, f.peak_ready) = ((4, 5), (3, 3));
        }
        let held = line(&forecast, &slow, 40, &[], Some(slo)).text.words();
        assert!(
            held.contains("measured 5 s over the SLO (within the forecast), peak 3 pods Ready (within the forecast)"),
            "{held}"
        );
        let unjudged = line(&forecast, &slow, 40, &[], None).text.words();
        assert!(unjudged.contains("measured seconds over the SLO not judged (no latency SLO among the thresholds), peak 3 pods Ready"), "{unjudged}");
        let capped = line(
            &timeline(vec![sample(0.0, 1, 3, 29.0)], 0),
            &rows,
            40,
            &[],
            None,
        );
        // On the way down: when, and the sessions dropped since (none
        // before the fall counts).
        let drop_at = |second: u64, drops: u64| DropSecond { second, drops };
        let fell = timeline(vec![sample(0.0, 3, 3, 5.0), sample(41.0, 1, 1, 3.0)], 0);
        let down = line(
            &fell,
            &[],
            0,
            &[drop_at(10, 1), drop_at(41, 1), drop_at(42, 1)],
            None,
        );
        assert!(
            down.text
                .words()
                .contains("; down from 3 to 1 at 41 s, 2 sessions dropped since;"),
            "{}",
            down.text.words()
        );
        let kept = line(&fell, &[], 0, &[], None);
        assert!(
            kept.text.words().contains("0 sessions dropped since"),
            "{}",
            kept.text.words()
        );
        let steady = line(
            &timeline(vec![sample(0.0, 3, 3, 5.0)], 0),
            &[],
            0,
            &[drop_at(1, 1)],
            None,
        );
        assert!(
            !steady.text.words().contains("down from"),
            "{}",
            steady.text.words()
        );
        assert!(
            capped
                .text
                .words()
                .contains("at 0 s needing 3 pods, not ready by the end"),
            "{}",
            capped.text.words()
        );
        assert!(
            none.text
                .words()
                .ends_with("nothing measured (the API server answered none of 75 seconds)"),
            "{}",
            none.text.words()
        );
    }
}
