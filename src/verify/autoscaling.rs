//! The autoscaling verdict, from the autoscaler's timeline beside the
//! load's seconds: each rise of the load past what the ready pods serve at
//! the HPA's target (a Pods metric: requests per second per pod), how long
//! until enough pods were ready, and how many of those seconds broke the
//! latency SLO. Pure.

use crate::bundle::{AutoscalingTimeline, LatencyStat, TimelineRow};

/// The HPA acts only beyond 10% off its target (its default tolerance):
/// a load within it is no rise.
const TOLERANCE: f64 = 0.1;

/// How a rise ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Enough pods were ready, at this second.
    PodsReady(u64),
    /// The load fell back within the pods it began with, at this second:
    /// no new pod came for it (the last, partial second of a run too).
    LoadFell(u64),
    /// The run ended first.
    RunEnded,
}

/// One rise of the load past the ready pods.
#[derive(Debug, Clone, PartialEq)]
pub struct Rise {
    /// The second the load first exceeded the ready pods at the target.
    pub began_s: u64,
    /// How it ended.
    pub end: End,
    /// Ready pods when it began.
    pub ready_before: u32,
    /// Most pods the load needed at the target during the rise.
    pub needed: u32,
    /// Its seconds whose latency broke the SLO (when one was given).
    pub over_slo_s: u64,
}

/// Every rise of a run, and how long the run was.
#[derive(Debug, Clone, PartialEq)]
pub struct Rises {
    /// In order.
    pub rises: Vec<Rise>,
    /// Seconds of load.
    pub run_s: u64,
}

impl Rises {
    /// The longest wait for enough pods, seconds; infinite when no pod came
    /// for a rise (it outlasted the run, or the load fell back first: its
    /// wait is unknown, and longer than it had). `None` without a rise:
    /// nothing to judge.
    pub fn scale_up_s(&self) -> Option<f64> {
        self.rises
            .iter()
            .map(|r| match r.end {
                End::PodsReady(at) => (at - r.began_s) as f64,
                End::LoadFell(_) | End::RunEnded => f64::INFINITY,
            })
            .reduce(f64::max)
    }

    /// Seconds over the SLO during the rises; `None` without a rise.
    pub fn over_slo_s(&self) -> Option<f64> {
        (!self.rises.is_empty()).then(|| self.rises.iter().map(|r| r.over_slo_s as f64).sum())
    }
}

/// What the HPA's target lets each pod serve, when the timeline says:
/// the target of a Pods metric, a rate per pod.
fn per_pod(t: &AutoscalingTimeline) -> Option<f64> {
    t.metric
        .as_deref()
        .filter(|m| m.starts_with("pods "))
        .and(t.target)
        .filter(|target| *target > 0.0)
}

/// The rises of `rows` (the load's seconds) against `t`; `None` when the
/// HPA's metric is not a rate per pod (what the pods serve at the target
/// is then unknown). `slo`: the latency statistic and limit (ms) a second
/// must keep.
pub fn rises(
    t: &AutoscalingTimeline,
    rows: &[TimelineRow],
    slo: Option<(LatencyStat, f64)>,
) -> Option<Rises> {
    let per_pod = per_pod(t)?;
    let ready_at = |second: u64| {
        let end = second as f64 + 1.0;
        t.samples
            .iter()
            .take_while(|s| s.at_s <= end)
            .last()
            .or(t.samples.first())
            .map_or(0, |s| s.ready)
    };
    let over = |row: &TimelineRow| match slo {
        Some((LatencyStat::P50, limit)) => row.p50_ms > limit,
        Some((LatencyStat::P95, limit)) => row.p95_ms > limit,
        Some((_, limit)) => row.p99_ms > limit,
        None => false,
    };
    let mut found: Vec<Rise> = Vec::new();
    let mut open: Option<Rise> = None;
    for row in rows {
        let load = row.requests as f64;
        let ready = ready_at(row.second);
        let serves = ready as f64 * per_pod;
        let needed = (load / per_pod).ceil() as u32;
        match open.as_mut() {
            None if load > serves * (1.0 + TOLERANCE) => {
                open = Some(Rise {
                    began_s: row.second,
                    end: End::RunEnded,
                    ready_before: ready,
                    needed,
                    over_slo_s: u64::from(over(row)),
                });
            }
            None => {}
            Some(rise) if serves * (1.0 + TOLERANCE) >= load => {
                rise.end = if ready > rise.ready_before {
                    End::PodsReady(row.second)
                } else {
                    End::LoadFell(row.second)
                };
                found.push(open.take().expect("open"));
            }
            Some(rise) => {
                rise.needed = rise.needed.max(needed);
                rise.over_slo_s += u64::from(over(row));
            }
        }
    }
    found.extend(open);
    Some(Rises {
        rises: found,
        run_s: rows.last().map_or(0, |r| r.second + 1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::AutoscalerSample;

    fn timeline(ready: &[(f64, u32)]) -> AutoscalingTimeline {
        AutoscalingTimeline {
            workload: "deployment/hapi".into(),
            hpa: "clinic/hapi".into(),
            metric: Some("pods http_server_requests_per_second".into()),
            target: Some(10.0),
            samples: ready
                .iter()
                .map(|&(at_s, ready)| AutoscalerSample {
                    at_s,
                    ready,
                    ..Default::default()
                })
                .collect(),
            unanswered: 0,
        }
    }

    /// Seconds of `load` requests each, p99 `p99` ms.
    fn seconds(load: &[(u64, f64)]) -> Vec<TimelineRow> {
        load.iter()
            .enumerate()
            .map(|(second, &(requests, p99_ms))| TimelineRow {
                second: second as u64,
                requests,
                p99_ms,
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn a_rise_lasts_until_enough_pods_are_ready_and_counts_its_seconds_over_the_slo() {
        // 30/s from second 2 on one pod serving 10/s at the target; three
        // ready from second 6.
        let t = timeline(&[(0.0, 1), (6.5, 3)]);
        let rows = seconds(&[
            (5, 10.0),
            (9, 10.0),
            (30, 900.0),
            (30, 800.0),
            (30, 20.0),
            (30, 700.0),
            (30, 10.0),
            (30, 10.0),
        ]);
        let r = rises(&t, &rows, Some((LatencyStat::P99, 500.0))).unwrap();
        assert_eq!(
            r.rises,
            [Rise {
                began_s: 2,
                end: End::PodsReady(6),
                ready_before: 1,
                needed: 3,
                over_slo_s: 3,
            }]
        );
        assert_eq!(r.scale_up_s(), Some(4.0));
        assert_eq!(r.over_slo_s(), Some(3.0));
        // Without an SLO, no second is over it.
        assert_eq!(rises(&t, &rows, None).unwrap().over_slo_s(), Some(0.0));
    }

    #[test]
    fn pods_that_never_catch_up_are_an_unbounded_wait_and_a_load_within_reach_is_no_rise() {
        // maxReplicas 1: one pod the whole run under 30/s.
        let capped = rises(&timeline(&[(0.0, 1)]), &seconds(&[(30, 10.0); 5]), None).unwrap();
        assert_eq!(capped.rises.len(), 1);
        assert_eq!(capped.rises[0].end, End::RunEnded);
        assert_eq!(capped.scale_up_s(), Some(f64::INFINITY));
        // Its last, partial second has little load: that is no catching up.
        let mut rows = seconds(&[(30, 10.0); 5]);
        rows.push(TimelineRow {
            second: 5,
            requests: 2,
            ..Default::default()
        });
        let fell = rises(&timeline(&[(0.0, 1)]), &rows, None).unwrap();
        assert_eq!(fell.rises[0].end, End::LoadFell(5));
        assert_eq!(fell.scale_up_s(), Some(f64::INFINITY));
        // 10.5/s on one pod of 10/s is within the HPA's tolerance.
        let within = rises(
            &timeline(&[(0.0, 1)]),
            &seconds(&[(10, 5.0), (11, 5.0)]),
            None,
        )
        .unwrap();
        assert!(within.rises.is_empty());
        assert_eq!((within.scale_up_s(), within.over_slo_s()), (None, None));
    }

    #[test]
    fn a_metric_that_is_not_a_rate_per_pod_is_not_judged() {
        let mut cpu = timeline(&[(0.0, 1)]);
        cpu.metric = Some("resource cpu".into());
        assert_eq!(rises(&cpu, &seconds(&[(30, 1.0)]), None), None);
    }
}
