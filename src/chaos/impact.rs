//! What users felt at each chaos event, from the run's per-second timeline,
//! its session drops and the latency around the event. Pure.
//!
//! An event's window runs from the action to the next action (or the end of
//! the run). Within it:
//! - the error burst is the first run of seconds with failed requests that
//!   starts within [`BURST_START_S`] of the action, allowing quiet gaps of up
//!   to [`BURST_GAP_S`] seconds;
//! - session drops are attributed to the event while it is in progress (until
//!   the replicas are back) and for [`DROP_GRACE_S`] after, because a user
//!   finds their session gone only at their next request;
//! - the p95 is back under the SLO at the first second from which it stays
//!   under for [`SETTLED_S`] seconds with traffic.

use crate::bundle::DropSecond;
use crate::bundle::Impact;
use crate::bundle::TimelineRow;

/// A burst must start this soon after the action to be the action's.
pub const BURST_START_S: u64 = 5;
/// Quiet seconds a burst may contain.
pub const BURST_GAP_S: u64 = 2;
/// Seconds after recovery that drops are still the event's.
pub const DROP_GRACE_S: f64 = 10.0;
/// Seconds the p95 must stay under the SLO to count as back.
pub const SETTLED_S: u64 = 3;

/// Inputs for one event.
#[derive(Debug, Clone, Copy)]
pub struct EventWindow {
    /// When it happened, seconds since the start.
    pub at_s: f64,
    /// Where its window ends (the next event, or the end of the run).
    pub until_s: f64,
    /// Seconds until the replicas were back, if they were.
    pub ready_after_s: Option<f64>,
}

/// The impact of one event.
pub fn impact(
    event: EventWindow,
    timeline: &[TimelineRow],
    drops: &[DropSecond],
    slo_p95_ms: Option<f64>,
) -> Impact {
    let start = event.at_s.floor().max(0.0) as u64;
    let end = event.until_s.ceil().max(0.0) as u64;
    let rows: Vec<&TimelineRow> = timeline
        .iter()
        .filter(|r| r.second >= start && r.second < end)
        .collect();

    let (burst_errors, burst_s) = burst(&rows, start);

    let drop_until = event
        .ready_after_s
        .map_or(event.until_s, |r| event.at_s + r + DROP_GRACE_S)
        .min(event.until_s);
    let session_drops = drops
        .iter()
        .filter(|d| d.second >= start && (d.second as f64) < drop_until)
        .map(|d| d.drops)
        .sum();

    let p95_back_s = slo_p95_ms.and_then(|slo| {
        let with_traffic: Vec<&&TimelineRow> = rows.iter().filter(|r| r.requests > 0).collect();
        (0..with_traffic.len()).find_map(|i| {
            let run = &with_traffic[i..(i + SETTLED_S as usize).min(with_traffic.len())];
            (run.len() == SETTLED_S as usize && run.iter().all(|r| r.p95_ms <= slo))
                .then(|| (run[0].second as f64 - event.at_s).max(0.0))
        })
    });

    Impact {
        burst_errors,
        burst_s,
        session_drops,
        p99_before_ms: None,
        p99_after_ms: None,
        slo_p95_ms,
        p95_back_s,
        ready_after_s: event.ready_after_s,
    }
}

fn burst(rows: &[&TimelineRow], start: u64) -> (u64, u64) {
    let mut first = None;
    let mut last = 0;
    let mut errors = 0;
    for r in rows.iter().filter(|r| r.errors > 0) {
        match first {
            None if r.second <= start + BURST_START_S => {
                first = Some(r.second);
                last = r.second;
                errors = r.errors;
            }
            None => break,
            Some(_) if r.second <= last + BURST_GAP_S + 1 => {
                last = r.second;
                errors += r.errors;
            }
            Some(_) => break,
        }
    }
    match first {
        Some(f) => (errors, last - f + 1),
        None => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(spec: &[(u64, u64, f64)]) -> Vec<TimelineRow> {
        spec.iter()
            .map(|&(second, errors, p95)| TimelineRow {
                second,
                requests: 20,
                errors,
                p95_ms: p95,
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn a_burst_with_a_gap_and_a_later_unrelated_error() {
        // Event at 10.4 s: errors at 11, 12, (quiet 13, 14), 15; then one at 25.
        let mut spec: Vec<(u64, u64, f64)> = (0..40).map(|s| (s, 0, 20.0)).collect();
        for (s, e) in [(11, 4), (12, 6), (15, 1), (25, 1)] {
            spec[s].1 = e;
        }
        for row in &mut spec[11..17] {
            row.2 = 900.0;
        }
        let timeline = rows(&spec);
        let drops = [
            DropSecond {
                second: 9,
                drops: 1,
            },
            DropSecond {
                second: 12,
                drops: 3,
            },
            DropSecond {
                second: 20,
                drops: 2,
            },
            DropSecond {
                second: 30,
                drops: 5,
            },
        ];
        let i = impact(
            EventWindow {
                at_s: 10.4,
                until_s: 40.0,
                ready_after_s: Some(5.0),
            },
            &timeline,
            &drops,
            Some(500.0),
        );
        assert_eq!((i.burst_errors, i.burst_s), (11, 5));
        // Drops from second 10 until 10.4 + 5 + 10 = 25.4: seconds 12 and 20.
        assert_eq!(i.session_drops, 5);
        // p95 over the SLO through second 16; under from 17 on.
        assert!(
            (i.p95_back_s.unwrap() - 6.6).abs() < 1e-9,
            "{:?}",
            i.p95_back_s
        );
    }

    #[test]
    fn a_healthy_event_has_no_impact() {
        let timeline = rows(&(0..30).map(|s| (s, 0, 20.0)).collect::<Vec<_>>());
        let i = impact(
            EventWindow {
                at_s: 5.0,
                until_s: 30.0,
                ready_after_s: Some(2.0),
            },
            &timeline,
            &[],
            Some(500.0),
        );
        assert_eq!((i.burst_errors, i.burst_s, i.session_drops), (0, 0, 0));
        assert_eq!(i.p95_back_s, Some(0.0));
    }

    #[test]
    fn errors_long_after_the_event_are_not_its_burst() {
        let mut spec: Vec<(u64, u64, f64)> = (0..30).map(|s| (s, 0, 20.0)).collect();
        spec[20].1 = 3;
        let i = impact(
            EventWindow {
                at_s: 5.0,
                until_s: 30.0,
                ready_after_s: None,
            },
            &rows(&spec),
            &[],
            None,
        );
        assert_eq!((i.burst_errors, i.burst_s), (0, 0));
        assert_eq!(i.p95_back_s, None, "no SLO, no verdict");
    }
}
