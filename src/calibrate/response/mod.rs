//! How an HPA answers a ramp, predicted before anyone runs it: the
//! controller's own algorithm (autoscaling/v2, as kube-controller-manager
//! runs it) replayed second by second against the ramp's arrival rate and
//! the measured pods.
//!
//! Each second: the load is `rate(t)`; the ready pods serve up to
//! `ready · saturation` (what a pod completes at most), and what they cannot
//! serve waits as a backlog — but no longer than the clients' request
//! timeout: what would wait longer is given up (a failed request, not one
//! served later), so the backlog is at most `ready · saturation · timeout`.
//! The second is over the SLO when the p99 the climb measured at the load
//! per ready pod (interpolated between its steps), plus the time the
//! backlog takes to be served, passes the SLO; without that curve, when the
//! load passes `ready · capacity` (what a pod serves within the SLO) or a
//! backlog waits.
//! The HPA reads the completed requests per second averaged over the metric
//! window, `delay` seconds late (a scrape, an adapter), every sync period:
//!
//! - inside the tolerance (|total / (target · replicas) − 1| ≤ 0.1) nothing
//!   changes, otherwise it wants ⌈total / target⌉ pods;
//! - stabilization: up to the least it wanted within the scale-up window,
//!   down to the most it wanted within the scale-down window;
//! - the behaviour's policies bound the change from the replicas at the
//!   start of each policy's period (Pods: + value; Percent: · (1 + value/100),
//!   rounded up; `selectPolicy` Max takes the larger change), then
//!   min/maxReplicas.
//!
//! New pods are Ready `start` seconds after the HPA asks for them; removed
//! pods go at once, not-ready ones first. The controller's sync phase
//! against the ramp is unknown (it ticks from its own start), so the
//! prediction is made at every phase and given as a range.

use crate::scenario::OpenStage;

mod manifest;
#[cfg(test)]
mod tests;

pub use manifest::ManifestError;

/// A ramp as arrivals per second over time: linear segments, and how long
/// a client waits for an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Ramp {
    /// (rate at the start, rate at the end, seconds).
    segments: Vec<(f64, f64, f64)>,
    /// The clients' request timeout, seconds.
    pub timeout_s: f64,
}

impl Ramp {
    /// The arrival rate an open model's stages plan: each stage ramps from
    /// the previous one's rate (the first from zero) to its own, then holds;
    /// each request given up after `timeout`.
    pub fn of_stages(stages: &[OpenStage], timeout: std::time::Duration) -> Ramp {
        let mut segments = Vec::new();
        let mut from = 0.0;
        for s in stages {
            segments.push((from, s.rate, s.ramp.0.as_secs_f64()));
            segments.push((s.rate, s.rate, s.hold.0.as_secs_f64()));
            from = s.rate;
        }
        segments.retain(|seg| seg.2 > 0.0);
        Ramp {
            segments,
            timeout_s: timeout.as_secs_f64(),
        }
    }

    /// Seconds the ramp lasts.
    pub fn duration_s(&self) -> f64 {
        self.segments.iter().map(|s| s.2).sum()
    }

    /// The highest rate it reaches.
    pub fn peak(&self) -> f64 {
        self.segments
            .iter()
            .map(|s| s.0.max(s.1))
            .fold(0.0, f64::max)
    }

    /// The arrival rate at `t` seconds (zero past the end).
    pub fn rate_at(&self, t: f64) -> f64 {
        let mut start = 0.0;
        for &(from, to, secs) in &self.segments {
            if t < start + secs {
                return from + (to - from) * (t - start) / secs;
            }
            start += secs;
        }
        0.0
    }
}

/// How one direction's policies combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// The policy allowing the largest change.
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No change in this direction.
    Disabled,
}

/// What a policy's value counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Pods per period.
    Pods,
    /// Percent of the replicas at the period's start.
    Percent,
}

/// One scaling policy: at most `value` per `period_s`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Pods or percent.
    pub kind: PolicyKind,
    /// How many pods, or what percent.
    pub value: u32,
    /// Per how many seconds.
    pub period_s: f64,
}

/// The rules of one direction.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// The stabilization window, seconds.
    pub stabilization_s: f64,
    /// How the policies combine.
    pub select: Select,
    /// The policies.
    pub policies: Vec<Policy>,
}

/// The HPA, as the controller runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Autoscaler {
    /// Target of the Pods metric: requests per second per pod.
    pub target_per_pod: f64,
    /// minReplicas.
    pub min_replicas: u32,
    /// maxReplicas.
    pub max_replicas: u32,
    /// How it scales up.
    pub up: Rules,
    /// How it scales down.
    pub down: Rules,
    /// The controller's sync period, seconds (15).
    pub sync_s: f64,
    /// The tolerance band (0.1).
    pub tolerance: f64,
    /// The metric's averaging window, seconds.
    pub metric_window_s: f64,
    /// How late the metric is, seconds (scrape interval, adapter).
    pub metric_delay_s: f64,
}

/// The pods, as calibration measured them.
#[derive(Debug, Clone, PartialEq)]
pub struct Pods {
    /// Requests per second a pod serves within the SLO.
    pub capacity: f64,
    /// Requests per second a pod completes at most (at or past the knee).
    pub saturation: f64,
    /// Seconds from the HPA asking for a pod to the pod being Ready.
    pub start_s: f64,
    /// The p99 the climb measured against the load per pod, when known.
    pub latency: Option<LatencyCurve>,
}

/// p99 against requests per second per pod, from the climb's steps, and
/// the SLO's limit.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyCurve {
    /// (requests per second per pod, p99 ms), by rate, p99 never falling.
    points: Vec<(f64, f64)>,
    /// The SLO's p99 limit, ms.
    pub slo_ms: f64,
}

impl LatencyCurve {
    /// The curve through `points` (any order); `None` with fewer than two
    /// distinct rates. Noise that lowers p99 at a higher rate is evened
    /// out: a pod is never faster for more load.
    pub fn new(mut points: Vec<(f64, f64)>, slo_ms: f64) -> Option<LatencyCurve> {
        points.retain(|p| p.0.is_finite() && p.1.is_finite() && p.0 > 0.0);
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        points.dedup_by(|a, b| (a.0 - b.0).abs() < 1e-9);
        let mut highest: f64 = 0.0;
        for p in &mut points {
            highest = highest.max(p.1);
            p.1 = highest;
        }
        (points.len() >= 2).then_some(LatencyCurve { points, slo_ms })
    }

    /// p99 at `rate` per pod, ms: the first step's below it, linear
    /// between steps, the last two steps' slope beyond them.
    pub fn p99_at(&self, rate: f64) -> f64 {
        let p = &self.points;
        if rate <= p[0].0 {
            return p[0].1;
        }
        let i = p
            .iter()
            .position(|q| q.0 >= rate)
            .unwrap_or(p.len() - 1)
            .max(1);
        let (a, b) = (p[i - 1], p[i]);
        a.1 + (b.1 - a.1) * (rate - a.0) / (b.0 - a.0)
    }
}

/// Whether a second breaks the SLO: `load` on `ready` pods with `backlog`
/// requests waiting.
fn over_slo(pods: &Pods, load: f64, ready: f64, backlog: f64) -> bool {
    if ready < 1.0 {
        return load > 0.0;
    }
    match &pods.latency {
        Some(curve) => {
            let waiting_ms = backlog / (ready * pods.saturation) * 1000.0;
            curve.p99_at(load / ready) + waiting_ms > curve.slo_ms
        }
        None => load > ready * pods.capacity + 1e-9 || backlog > 0.5,
    }
}

/// How the ramp went at one sync phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Course {
    /// Seconds over the SLO.
    pub over_slo_s: u64,
    /// Requests that arrived in those seconds.
    pub requests_over_slo: f64,
    /// Most pods Ready at once.
    pub peak_ready: u32,
    /// Most pods the HPA asked for.
    pub peak_desired: u32,
    /// Pods Ready at the end.
    pub ready_at_end: u32,
}

/// The prediction: the course at every sync phase.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// One course per whole-second sync phase.
    pub courses: Vec<Course>,
}

impl Prediction {
    /// Fewest and most seconds over the SLO.
    pub fn over_slo_s(&self) -> (u64, u64) {
        span(self.courses.iter().map(|c| c.over_slo_s))
    }

    /// Fewest and most pods Ready at the peak.
    pub fn peak_ready(&self) -> (u32, u32) {
        span(self.courses.iter().map(|c| c.peak_ready))
    }

    /// Fewest and most requests arriving in seconds over the SLO.
    pub fn requests_over_slo(&self) -> (f64, f64) {
        let each = self.courses.iter().map(|c| c.requests_over_slo);
        (
            each.clone().fold(f64::INFINITY, f64::min),
            each.fold(0.0, f64::max),
        )
    }

    /// Whether the ramp stays inside the SLO at every phase.
    pub fn kept(&self) -> bool {
        self.over_slo_s().1 == 0
    }
}

fn span<T: Copy + Ord + Default>(each: impl Iterator<Item = T>) -> (T, T) {
    let all: Vec<T> = each.collect();
    (
        all.iter().copied().min().unwrap_or_default(),
        all.iter().copied().max().unwrap_or_default(),
    )
}

/// The course of `ramp` under `hpa` with `pods`, starting from `initial`
/// Ready pods (minReplicas when the night's load needs no more), at every
/// whole-second sync phase.
pub fn predict(ramp: &Ramp, hpa: &Autoscaler, pods: &Pods, initial: u32) -> Prediction {
    let phases = hpa.sync_s.max(1.0).round() as u64;
    Prediction {
        courses: (0..phases)
            .map(|phase| course(ramp, hpa, pods, initial, phase))
            .collect(),
    }
}

/// A scaling the HPA made: when, and by how many pods (negative: down).
struct Change {
    at: f64,
    by: i64,
}

fn course(ramp: &Ramp, hpa: &Autoscaler, pods: &Pods, initial: u32, phase: u64) -> Course {
    let seconds = ramp.duration_s().ceil() as u64;
    let sync = hpa.sync_s.max(1.0).round() as u64;
    let initial = initial.clamp(hpa.min_replicas, hpa.max_replicas.max(hpa.min_replicas));
    // When each pod is (or will be) Ready.
    let mut ready_at: Vec<f64> = vec![0.0; initial as usize];
    let mut replicas = initial;
    let mut changes: Vec<Change> = Vec::new();
    let mut wanted: Vec<(f64, u32)> = Vec::new();
    let mut completed: Vec<f64> = Vec::with_capacity(seconds as usize);
    let mut backlog = 0.0;
    let mut out = Course {
        over_slo_s: 0,
        requests_over_slo: 0.0,
        peak_ready: initial,
        peak_desired: initial,
        ready_at_end: initial,
    };
    for second in 0..seconds {
        let t = second as f64;
        let load = ramp.rate_at(t + 0.5);
        let ready = ready_at.iter().filter(|&&at| at <= t).count() as f64;
        let served = (load + backlog).min(ready * pods.saturation);
        let patience = ready * pods.saturation * ramp.timeout_s;
        backlog = (backlog + load - served).clamp(0.0, patience);
        completed.push(served);
        if over_slo(pods, load, ready, backlog) {
            out.over_slo_s += 1;
            out.requests_over_slo += load;
        }
        out.peak_ready = out.peak_ready.max(ready as u32);
        out.ready_at_end = ready as u32;
        if second >= phase && (second - phase).is_multiple_of(sync) {
            let total = metric(&completed, hpa);
            let next = decide(hpa, replicas, total, t, &mut wanted, &changes);
            if next != replicas {
                let by = i64::from(next) - i64::from(replicas);
                if next > replicas {
                    ready_at.extend((replicas..next).map(|_| t + pods.start_s));
                } else {
                    // Not-ready pods go first, then the newest.
                    ready_at.sort_by(|a, b| a.total_cmp(b));
                    ready_at.truncate(next as usize);
                }
                changes.push(Change { at: t, by });
                replicas = next;
                out.peak_desired = out.peak_desired.max(next);
            }
        }
    }
    out
}

/// The completed requests per second the HPA reads now: the mean over the
/// metric window, `delay` seconds late.
fn metric(completed: &[f64], hpa: &Autoscaler) -> f64 {
    let end = completed
        .len()
        .saturating_sub(hpa.metric_delay_s.round() as usize);
    let start = end.saturating_sub(hpa.metric_window_s.round().max(1.0) as usize);
    let window = &completed[start..end];
    if window.is_empty() {
        return 0.0;
    }
    window.iter().sum::<f64>() / window.len() as f64
}

/// One sync: the replicas the HPA sets, given `total` requests per second
/// across the pods, what it wanted before and the changes it made.
fn decide(
    hpa: &Autoscaler,
    replicas: u32,
    total: f64,
    now: f64,
    wanted: &mut Vec<(f64, u32)>,
    changes: &[Change],
) -> u32 {
    let ratio = total / (hpa.target_per_pod * f64::from(replicas.max(1)));
    let raw = if (ratio - 1.0).abs() <= hpa.tolerance {
        replicas
    } else {
        (total / hpa.target_per_pod - 1e-9).ceil().max(0.0) as u32
    };
    // Stabilization: the least wanted within the up window, the most
    // within the down window.
    let mut up = raw;
    let mut down = raw;
    for &(at, w) in wanted.iter() {
        if at > now - hpa.up.stabilization_s {
            up = up.min(w);
        }
        if at > now - hpa.down.stabilization_s {
            down = down.max(w);
        }
    }
    wanted.push((now, raw));
    let longest = hpa.up.stabilization_s.max(hpa.down.stabilization_s);
    wanted.retain(|&(at, _)| at > now - longest);
    let mut next = replicas;
    if next < up {
        next = up;
    }
    if next > down {
        next = down;
    }
    if next > replicas {
        next = next.min(limit(&hpa.up, replicas, now, changes, true));
    } else if next < replicas {
        next = next.max(limit(&hpa.down, replicas, now, changes, false));
    }
    next.clamp(hpa.min_replicas, hpa.max_replicas.max(hpa.min_replicas))
}

/// The furthest the policies let the replicas go from `replicas` now.
fn limit(rules: &Rules, replicas: u32, now: f64, changes: &[Change], up: bool) -> u32 {
    let limits = rules.policies.iter().map(|p| {
        let moved: i64 = changes
            .iter()
            .filter(|c| c.at > now - p.period_s && (c.by > 0) == up)
            .map(|c| c.by)
            .sum();
        let start = (i64::from(replicas) - moved).max(0) as f64;
        let value = f64::from(p.value);
        let bound = match (p.kind, up) {
            (PolicyKind::Pods, true) => start + value,
            (PolicyKind::Percent, true) => (start * (1.0 + value / 100.0)).ceil(),
            (PolicyKind::Pods, false) => start - value,
            (PolicyKind::Percent, false) => (start * (1.0 - value / 100.0)).ceil(),
        };
        bound.max(0.0) as u32
    });
    let limits: Vec<u32> = limits.collect();
    // Up, the largest change is the highest limit; down, the lowest.
    let (most, least) = (limits.iter().copied().max(), limits.iter().copied().min());
    let chosen = match (rules.select, up) {
        (Select::Disabled, _) => None,
        (Select::Max, true) | (Select::Min, false) => most,
        (Select::Max, false) | (Select::Min, true) => least,
    };
    chosen.unwrap_or(replicas)
}
