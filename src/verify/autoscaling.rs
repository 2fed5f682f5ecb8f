//! The autoscaling verdict, from the autoscaler's timeline beside the
//! load's seconds: each rise of the load past what the ready pods serve at
//! the HPA's target, how long until enough pods were ready, and how many of
//! those seconds broke the latency SLO. Pure.
//!
//! What a pod serves at the target ([`serves_per_pod`]): a Pods metric's
//! target is a rate per pod already. A CPU target is turned into one from
//! the run itself: the requests completed in the seconds the HPA reported
//! its CPU, over the CPU it reported times the ready pods, is the requests
//! per second a pod completes per unit of CPU (a pod's CPU taken as
//! proportional to its load: its idle use makes the rate at the target
//! lower, so a rise is judged early, never late).
//!
//! The HPA's CPU figure is an average over the pods it last measured, so
//! a second counts only once the ready pods have been the same for
//! [`SETTLED_S`]: just after a scale-up the figure is still the old pods'
//! (one busy pod's 250% read as four pods' would make a pod seem to serve
//! a quarter of what it does), just after a scale-down it is the gone
//! pods' too.

use crate::bundle::{AutoscalingTimeline, LatencySlo, TimelineRow};

/// The HPA acts only beyond 10% off its target (its default tolerance):
/// a load within it is no rise.
const TOLERANCE: f64 = 0.1;

/// The load is judged as the HPA sees it, over a window, not second by
/// second: one busy second is no rise, one quiet second ends none.
const SMOOTHING_S: usize = 5;

/// How a rise ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Enough pods were ready for the load, at this second.
    PodsReady(u64),
    /// The load fell back within the pods it began with, at this second,
    /// before any new pod came: a rise shorter than the autoscaler's
    /// reaction, with no wait to judge.
    LoadFell(u64),
    /// The run ended first: no pod came for it within the run.
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
    /// The requests completed in those seconds.
    pub requests_over_slo: u64,
}

impl Rise {
    /// Seconds until enough pods were ready: infinite when the run ended
    /// first (its wait is longer than the run gave it); `None` when the
    /// load fell back first (nothing to wait for).
    pub fn wait_s(&self) -> Option<f64> {
        match self.end {
            End::PodsReady(at) => Some(at.saturating_sub(self.began_s) as f64),
            End::RunEnded => Some(f64::INFINITY),
            End::LoadFell(_) => None,
        }
    }
}

/// Every rise of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Rises {
    /// In order.
    pub rises: Vec<Rise>,
}

impl Rises {
    /// Rises that had a wait to judge (pods came, or the run ended first).
    pub fn judged(&self) -> usize {
        self.rises.iter().filter(|r| r.wait_s().is_some()).count()
    }

    /// The longest wait for enough pods, seconds; `None` without a rise
    /// that had one.
    pub fn scale_up_s(&self) -> Option<f64> {
        self.rises.iter().filter_map(Rise::wait_s).reduce(f64::max)
    }

    /// Seconds over the SLO during every rise; `None` without a rise.
    pub fn over_slo_s(&self) -> Option<f64> {
        (!self.rises.is_empty()).then(|| self.rises.iter().map(|r| r.over_slo_s as f64).sum())
    }
}

/// Seconds with a CPU reading the conversion needs.
pub const MIN_CPU_SECONDS: usize = 20;

/// Seconds the ready pods must have stayed the same before a second's CPU
/// reading is taken as theirs: the HPA syncs every 15 s over a reading
/// metrics-server refreshes every 15 s as deployed. The run's first
/// seconds are not settled either: the HPA's figure then is from before
/// the load.
pub const SETTLED_S: f64 = 30.0;

/// What a pod serves at the HPA's target, requests per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServesPerPod {
    /// Requests per second per pod at the target.
    pub rate: f64,
    /// For a CPU target: the seconds it was derived over, and the
    /// requests per second a pod completed per unit of CPU (a percent of
    /// its request for a utilization).
    pub from_cpu: Option<(usize, f64)>,
}

/// What a pod serves at `t`'s target: a Pods metric's target; for a CPU
/// target, that target × the requests per second per pod per unit of CPU
/// over the run's full seconds (`rows` before `full_s`) whose sample
/// carried a CPU reading with the same pods ready for [`SETTLED_S`];
/// `None` for another metric, no positive target, or fewer than
/// [`MIN_CPU_SECONDS`] such seconds.
pub fn serves_per_pod(
    t: &AutoscalingTimeline,
    rows: &[TimelineRow],
    full_s: u64,
) -> Option<ServesPerPod> {
    if let Some(rate) = t.target_per_pod() {
        return Some(ServesPerPod {
            rate,
            from_cpu: None,
        });
    }
    let target = t.target.filter(|target| *target > 0.0)?;
    if t.metric.as_deref() != Some("resource cpu") {
        return None;
    }
    let (mut requests, mut cpu, mut seconds) = (0.0, 0.0, 0usize);
    // When the ready pods last changed.
    let mut changed_at = t.samples.first().map_or(0.0, |s| s.at_s);
    let mut ready_before = t.samples.first().map(|s| s.ready);
    for sample in &t.samples {
        if ready_before != Some(sample.ready) {
            changed_at = sample.at_s;
            ready_before = Some(sample.ready);
        }
        let settled = sample.at_s - changed_at >= SETTLED_S;
        let second = sample.at_s.floor() as u64;
        let (Some(value), Some(row)) = (
            sample
                .metric_value
                .filter(|v| *v > 0.0 && sample.ready > 0 && settled),
            // Rows are one per second, in order.
            rows.binary_search_by_key(&second, |r| r.second)
                .ok()
                .filter(|_| second < full_s)
                .map(|i| &rows[i]),
        ) else {
            continue;
        };
        requests += row.requests as f64;
        cpu += value * sample.ready as f64;
        seconds += 1;
    }
    if seconds < MIN_CPU_SECONDS || cpu <= 0.0 || requests <= 0.0 {
        return None;
    }
    let per_unit = requests / cpu;
    Some(ServesPerPod {
        rate: target * per_unit,
        from_cpu: Some((seconds, per_unit)),
    })
}

/// Counts `row` into `rise` when it broke the SLO.
fn count_over(rise: &mut Rise, row: &TimelineRow, slo: Option<LatencySlo>) {
    if slo.is_some_and(|slo| slo.broken_by(row)) {
        rise.over_slo_s += 1;
        rise.requests_over_slo += row.requests;
    }
}

/// The rises of the load's full seconds (`rows` before `full_s`; the last,
/// partial second would read as the load falling) against `t`; `None` when
/// what the pods serve at the HPA's target is unknown ([`serves_per_pod`]). `slo`: the statistic (p50, p95 or p99) and
/// limit (ms) a second must keep.
pub fn rises(
    t: &AutoscalingTimeline,
    rows: &[TimelineRow],
    full_s: u64,
    slo: Option<LatencySlo>,
) -> Option<Rises> {
    let per_pod = serves_per_pod(t, rows, full_s)?.rate;
    let ready_at = |second: u64| {
        let end = second as f64 + 1.0;
        t.samples
            .iter()
            .take_while(|s| s.at_s <= end)
            .last()
            .or(t.samples.first())
            .map_or(0, |s| s.ready)
    };
    let rows: Vec<&TimelineRow> = rows.iter().filter(|r| r.second < full_s).collect();
    let mut found: Vec<Rise> = Vec::new();
    let mut open: Option<Rise> = None;
    for (i, row) in rows.iter().enumerate() {
        let window = &rows[i.saturating_sub(SMOOTHING_S - 1)..=i];
        let load = window.iter().map(|r| r.requests as f64).sum::<f64>() / window.len() as f64;
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
                    over_slo_s: 0,
                    requests_over_slo: 0,
                });
                if let Some(rise) = open.as_mut() {
                    count_over(rise, row, slo);
                }
            }
            None => {}
            Some(rise) if serves * (1.0 + TOLERANCE) >= load => {
                rise.end = if ready > rise.ready_before {
                    End::PodsReady(row.second)
                } else {
                    End::LoadFell(row.second)
                };
                found.extend(open.take());
            }
            Some(rise) => {
                rise.needed = rise.needed.max(needed);
                count_over(rise, row, slo);
            }
        }
    }
    found.extend(open);
    Some(Rises { rises: found })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::AutoscalerSample;
    use crate::bundle::LatencyStat;

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
            forecast: None,
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
        let r = rises(
            &t,
            &rows,
            8,
            Some(LatencySlo {
                stat: LatencyStat::P99,
                limit_ms: 500.0,
            }),
        )
        .unwrap();
        assert_eq!(
            r.rises,
            [Rise {
                began_s: 2,
                end: End::PodsReady(6),
                ready_before: 1,
                needed: 3,
                over_slo_s: 3,
                requests_over_slo: 90,
            }]
        );
        assert_eq!(r.scale_up_s(), Some(4.0));
        assert_eq!(r.over_slo_s(), Some(3.0));
        // Without an SLO, no second is over it.
        assert_eq!(rises(&t, &rows, 8, None).unwrap().over_slo_s(), Some(0.0));
    }

    #[test]
    fn pods_that_never_catch_up_are_an_unbounded_wait_and_a_load_within_reach_is_no_rise() {
        // maxReplicas 1: one pod the whole run under 30/s.
        let capped = rises(&timeline(&[(0.0, 1)]), &seconds(&[(30, 10.0); 5]), 5, None).unwrap();
        assert_eq!(capped.rises.len(), 1);
        assert_eq!(capped.rises[0].end, End::RunEnded);
        assert_eq!(capped.scale_up_s(), Some(f64::INFINITY));
        // Its last, partial second has little load: that is no falling back.
        let mut rows = seconds(&[(30, 10.0); 5]);
        rows.push(TimelineRow {
            second: 5,
            requests: 2,
            ..Default::default()
        });
        let partial = rises(&timeline(&[(0.0, 1)]), &rows, 5, None).unwrap();
        assert_eq!(partial.rises[0].end, End::RunEnded);
        // A load that falls back before any pod comes: no wait to judge.
        let mut short = seconds(&[(30, 10.0); 3]);
        short.extend(seconds(&[(2, 10.0); 12]).into_iter().map(|mut r| {
            r.second += 3;
            r
        }));
        let fell = rises(&timeline(&[(0.0, 1)]), &short, 15, None).unwrap();
        assert!(matches!(fell.rises[0].end, End::LoadFell(_)), "{fell:?}");
        assert_eq!((fell.judged(), fell.scale_up_s()), (0, None));
        // 10.5/s on one pod of 10/s is within the HPA's tolerance.
        let within = rises(
            &timeline(&[(0.0, 1)]),
            &seconds(&[(10, 5.0), (11, 5.0)]),
            2,
            None,
        )
        .unwrap();
        assert!(within.rises.is_empty());
        assert_eq!((within.scale_up_s(), within.over_slo_s()), (None, None));
    }

    /// A CPU HPA at 50%: `(requests, ready, cpu %)` for each second.
    fn cpu_run(seconds_of: &[(u64, u32, f64)]) -> (AutoscalingTimeline, Vec<TimelineRow>) {
        let mut t = timeline(&[]);
        t.metric = Some("resource cpu".into());
        t.target = Some(50.0);
        t.samples = seconds_of
            .iter()
            .enumerate()
            .map(|(i, &(_, ready, cpu))| AutoscalerSample {
                at_s: i as f64 + 0.5,
                ready,
                metric_value: Some(cpu),
                ..Default::default()
            })
            .collect();
        let rows = seconds(
            &seconds_of
                .iter()
                .map(|&(r, _, _)| (r, 10.0))
                .collect::<Vec<_>>(),
        );
        (t, rows)
    }

    #[test]
    fn a_cpu_target_is_judged_at_the_rate_the_runs_own_cpu_readings_give_it() {
        // One pod at 10/s shows 50%; the load goes to 30/s at second 50
        // (the CPU reading, late, at 100%), three pods ready at second 65.
        let mut run = vec![(10, 1, 50.0); 50];
        run.extend(vec![(30, 1, 100.0); 15]);
        run.extend(vec![(30, 3, 50.0); 15]);
        let (t, rows) = cpu_run(&run);
        let serves = serves_per_pod(&t, &rows, 80).unwrap();
        // Neither the run's first 30 s nor the three pods' seconds are
        // settled: 650 requests over 2500 %·pods, 0.26 req/s per %, 13 at 50%.
        let (n, per_unit) = serves.from_cpu.unwrap();
        assert_eq!(n, 35);
        assert!((per_unit - 650.0 / 2500.0).abs() < 1e-12);
        assert!((serves.rate - 50.0 * 650.0 / 2500.0).abs() < 1e-9);
        let r = rises(&t, &rows, 80, None).unwrap();
        assert_eq!(r.rises.len(), 1, "{r:?}");
        let rise = &r.rises[0];
        assert_eq!((rise.ready_before, rise.needed), (1, 3));
        assert!((50..=52).contains(&rise.began_s), "{rise:?}");
        assert_eq!(rise.end, End::PodsReady(65));
        // The healthy way: a load the pod serves at its target is no rise.
        let (steady_t, steady_rows) = cpu_run(&vec![(10, 1, 50.0); 60]);
        assert!(rises(&steady_t, &steady_rows, 60, None)
            .unwrap()
            .rises
            .is_empty());
    }

    #[test]
    fn a_reading_of_the_pods_before_a_scale_up_is_not_taken_for_the_new_ones() {
        // One pod at 10/s shows 50% (a pod serves 10/s at the target), the
        // load goes to 40/s: the one pod reads 200%; four pods are ready at
        // second 30 while the HPA's figure stays the one pod's 200% for 20 s
        // more, then 50% on each.
        let mut run = vec![(10, 1, 50.0); 20];
        run.extend(vec![(40, 1, 200.0); 10]);
        run.extend(vec![(40, 4, 200.0); 20]);
        run.extend(vec![(40, 4, 50.0); 40]);
        let (t, rows) = cpu_run(&run);
        let serves = serves_per_pod(&t, &rows, 90).unwrap();
        // The settled seconds give the truth: 10/s a pod at 50%.
        assert!((serves.rate - 10.0).abs() < 1e-9, "{serves:?}");
        let (n, _) = serves.from_cpu.unwrap();
        assert_eq!(n, 30);
        let r = rises(&t, &rows, 90, None).unwrap();
        assert_eq!(r.rises.len(), 1, "{r:?}");
        assert_eq!((r.rises[0].needed, r.rises[0].end), (4, End::PodsReady(30)));
        // Had the stale 200% counted for four pods, a pod would seem to
        // serve 10 × 1400 / 4000 req/s, and four would never be enough.
        let stale: f64 = run
            .iter()
            .map(|&(requests, _, _)| requests as f64)
            .sum::<f64>()
            / run
                .iter()
                .map(|&(_, ready, cpu)| ready as f64 * cpu)
                .sum::<f64>()
            * 50.0;
        assert!(stale * 4.0 * 1.1 < 40.0, "{stale}");
    }

    #[test]
    fn without_enough_cpu_readings_or_a_cpu_metric_nothing_is_judged() {
        let (t, rows) = cpu_run(&vec![(10, 1, 50.0); MIN_CPU_SECONDS - 1]);
        assert_eq!(serves_per_pod(&t, &rows, 60), None);
        let (mut unread, rows) = cpu_run(&vec![(10, 1, 50.0); 40]);
        for s in &mut unread.samples {
            s.metric_value = None;
        }
        assert_eq!(rises(&unread, &rows, 40, None), None);
        let (mut memory, rows) = cpu_run(&vec![(10, 1, 50.0); 40]);
        memory.metric = Some("resource memory".into());
        assert_eq!(rises(&memory, &rows, 40, None), None);
    }
}

#[cfg(test)]
mod jitter {
    use super::*;
    use crate::bundle::AutoscalerSample;

    /// A ramp passing one pod's 11/s: seconds of 12, 11, 12, 11 … open no
    /// rise that closes at once (the HPA sees a window, not a second).
    #[test]
    fn a_load_jittering_at_the_edge_opens_no_rise_of_its_own() {
        let t = AutoscalingTimeline {
            metric: Some("pods http_server_requests_per_second".into()),
            target: Some(10.0),
            samples: vec![AutoscalerSample {
                ready: 1,
                ..Default::default()
            }],
            ..Default::default()
        };
        let rows: Vec<TimelineRow> = (0..20)
            .map(|second| TimelineRow {
                second,
                requests: if second % 2 == 0 { 12 } else { 11 },
                ..Default::default()
            })
            .collect();
        let r = rises(&t, &rows, 20, None).unwrap();
        assert!(
            r.rises
                .iter()
                .all(|rise| !matches!(rise.end, End::LoadFell(_))),
            "{r:?}"
        );
    }
}
