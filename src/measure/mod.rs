//! The recorder: HDR histograms per (stage, request, replica), the per-second
//! timeline, error classes and request accounting.
//!
//! The engine calls [`Recorder::issue`] before it sends and
//! [`Recorder::record`] when the body has been read (or the request failed);
//! whatever was issued and never recorded was in flight at stop and counts as
//! cancelled, so `issued = succeeded + failed + cancelled` always holds.
//! A step that could not be sent at all goes to [`Recorder::not_sent`]
//! instead: counted apart with its reason, never a sample.
//! [`Recorder::finish`] turns it all into plain [`RunResults`] plus the
//! histograms, which `report` writes out. Values are microseconds, 3
//! significant digits.

mod cell;
mod finish;
pub mod health;
pub mod live;
mod marks;
pub mod replicas;
mod timeline;

pub use cell::Cell;

use crate::bundle::*;

use hdrhistogram::Histogram;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};
use timeline::Timeline;

/// A timeline row's percentiles from its second's histogram.
pub fn fill_row(row: &mut TimelineRow, h: &Histogram<u64>) {
    timeline::fill(row, h)
}

/// Replica name used when the target does not say who answered.
pub const UNKNOWN_REPLICA: &str = "unknown";

pub use crate::bundle::UNMAPPED_REPLICA;

fn new_hist() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant digits is valid")
}

/// Records microseconds into an auto-resizing histogram. (`saturating_record`
/// would clamp to the current top instead of growing it.)
fn record_us(h: &mut Histogram<u64>, us: u64) {
    if h.record(us).is_err() {
        h.saturating_record(us);
    }
}

/// One finished request, as the engine saw it.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// Index of the request in the scenario.
    pub request: usize,
    /// Replica that answered (or [`UNKNOWN_REPLICA`]).
    pub replica: &'a str,
    /// When the request should have started (open model: the arrival slot).
    pub scheduled: Instant,
    /// When it was actually sent.
    pub sent: Instant,
    /// When the body had been read, or the request failed.
    pub done: Instant,
    /// HTTP status, when one came back.
    pub status: Option<u16>,
    /// `None` if it met its expectations.
    pub error: Option<ErrorClass>,
}

#[derive(Default)]
struct State {
    cells: HashMap<(usize, usize, u32), Cell>,
    replicas: Vec<String>,
    timeline: Timeline,
    request_timelines: Vec<Timeline>,
    last_done: Option<Instant>,
    arrivals: Vec<u64>,
    dropped: Vec<u64>,
    user_panics: u64,
    marks: marks::Marks,
    /// Per request index: reasons it could not be sent, with counts.
    not_sent: HashMap<usize, BTreeMap<String, u64>>,
    /// Per request index: what did not match when an expectation failed.
    expectation: HashMap<usize, BTreeMap<String, u64>>,
    /// When the target last answered anything (any status).
    last_answer: Option<Instant>,
    /// Connection failures since then.
    refused_since_answer: u64,
    /// Chaos events so far, by (action, outcome).
    chaos: BTreeMap<(String, &'static str), u64>,
    /// Latency for the metrics sent out, when the run sends any.
    live: Option<live::LiveLatency>,
}

/// Counts `key` in `counts`, keeping at most `max` distinct keys: the rest
/// are counted under `other`, so memory does not grow with the run.
pub fn count_capped(counts: &mut BTreeMap<String, u64>, key: &str, max: usize, other: &str) {
    let key = if counts.len() < max || counts.contains_key(key) {
        key
    } else {
        other
    };
    *counts.entry(key.to_owned()).or_default() += 1;
}

/// Counts `reason` in `reasons`, keeping at most [`MAX_REASONS`] distinct
/// ones (the rest under `other reasons`).
pub fn count_reason(reasons: &mut BTreeMap<String, u64>, reason: &str) {
    count_capped(reasons, reason, MAX_REASONS, "other reasons");
}

/// Distinct reasons (not sent, expectation, a read-back's error) kept per
/// count; more are counted under one.
const MAX_REASONS: usize = 32;

/// Latency around a marked moment, from [`Recorder::mark`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AroundMark {
    /// Requests completed in the minute before.
    pub before_count: u64,
    /// Their p95 and p99, ms.
    pub before_p95_ms: Option<f64>,
    /// p99 before, ms.
    pub before_p99_ms: Option<f64>,
    /// Requests completed in the minute from the mark on.
    pub after_count: u64,
    /// p99 after, ms.
    pub after_p99_ms: Option<f64>,
}

/// Live figures for the progress line.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// Seconds since the start.
    pub elapsed_s: f64,
    /// The last complete second.
    pub last_second: TimelineRow,
    /// Requests completed so far.
    pub completed: u64,
    /// Of which failed.
    pub failed: u64,
    /// Arrivals dropped so far.
    pub dropped: u64,
}

/// Facts about the run the recorder cannot know itself.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    /// Run id.
    pub run_id: String,
    /// Scenario name.
    pub scenario: String,
    /// Scenario file.
    pub scenario_file: String,
    /// Base URL.
    pub target: String,
    /// TLS certificates were not verified (`tls_verify = false`).
    pub tls_unverified: bool,
    /// The load model.
    pub model: crate::bundle::LoadModel,
    /// Open model: how arrivals are spaced.
    pub arrivals: Option<String>,
    /// Per-user setup requests (login, token).
    pub setup_requests: Vec<String>,
    /// Per stage: arrivals per second or users.
    pub stage_targets: Vec<f64>,
    /// Why the run stopped early, if it did.
    pub interrupted: Option<String>,
    /// The scenario's control request, whose service time the environment reports.
    pub control_request: Option<String>,
}

/// Collects every sample of a run.
pub struct Recorder {
    started: OnceLock<(Instant, SystemTime)>,
    stage_ends: Vec<Duration>,
    requests: Vec<String>,
    issued: Vec<AtomicU64>,
    state: Mutex<State>,
    /// The generator's lateness (µs), and the machine as the load began.
    health: Mutex<(Histogram<u64>, Option<health::HostSnapshot>)>,
    /// Open-model users started.
    users_started: AtomicU64,
    /// Users in the middle of an iteration now.
    busy: AtomicU64,
}

/// A user in the middle of an iteration, from [`Recorder::busy_user`]
/// until dropped.
pub struct BusyUser<'a>(&'a AtomicU64);

impl Drop for BusyUser<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Recorder {
    /// A recorder for these request names and stage end times, starting now.
    pub fn new(requests: Vec<String>, stage_ends: Vec<Duration>) -> Self {
        let stages = stage_ends.len().max(1);
        Recorder {
            started: OnceLock::new(),
            issued: requests.iter().map(|_| AtomicU64::new(0)).collect(),
            requests,
            stage_ends,
            state: Mutex::new(State {
                arrivals: vec![0; stages],
                dropped: vec![0; stages],
                ..Default::default()
            }),
            health: Mutex::new((new_hist(), None)),
            users_started: AtomicU64::new(0),
            busy: AtomicU64::new(0),
        }
    }

    /// A user begins an iteration; it ends when the guard is dropped.
    pub fn busy_user(&self) -> BusyUser<'_> {
        self.busy.fetch_add(1, Ordering::Relaxed);
        BusyUser(&self.busy)
    }

    /// Users in the middle of an iteration now.
    pub fn users_busy(&self) -> u64 {
        self.busy.load(Ordering::Relaxed)
    }

    /// Counts a chaos event, for the metrics sent out while the run goes.
    pub fn chaos_event(&self, action: &str, outcome: &'static str) {
        *self
            .lock()
            .chaos
            .entry((action.to_owned(), outcome))
            .or_default() += 1;
    }

    /// The open model started another user.
    pub fn user_started(&self) {
        self.users_started.fetch_add(1, Ordering::Relaxed);
    }

    /// Marks the start of the load (the first call wins); stages and the
    /// timeline count from here.
    pub fn begin(&self) {
        let mut first = false;
        self.started.get_or_init(|| {
            first = true;
            (Instant::now(), SystemTime::now())
        });
        if first {
            self.health_lock().1 = Some(health::HostSnapshot::now());
        }
    }

    fn health_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, (Histogram<u64>, Option<health::HostSnapshot>)> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records how late the generator began something it had scheduled (an
    /// arrival handed to an idle user; a think time's end).
    pub fn late(&self, by: Duration) {
        record_us(&mut self.health_lock().0, (by.as_micros() as u64).max(1));
    }

    /// When the load started (now, if [`Recorder::begin`] was never called).
    pub fn started(&self) -> Instant {
        self.started
            .get_or_init(|| (Instant::now(), SystemTime::now()))
            .0
    }

    /// The stage an instant falls in (the last one for anything after the plan).
    pub fn stage_at(&self, at: Instant) -> usize {
        let offset = at.saturating_duration_since(self.started());
        self.stage_ends
            .iter()
            .position(|end| offset < *end)
            .unwrap_or(self.stage_ends.len().saturating_sub(1))
    }

    fn second_of(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started()).as_secs()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panicking user must not take the measurements with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a request as issued; call it right before sending.
    pub fn issue(&self, request: usize) {
        self.issued[request].fetch_add(1, Ordering::Relaxed);
    }

    /// Records a finished request.
    pub fn record(&self, s: Sample<'_>) {
        let latency = s.done.saturating_duration_since(s.scheduled).as_micros() as u64;
        let service = s.done.saturating_duration_since(s.sent).as_micros() as u64;
        let stage = self.stage_at(s.scheduled);
        let second = self.second_of(s.done);
        let mut state = self.lock();
        let replica = match state.replicas.iter().position(|r| r == s.replica) {
            Some(i) => i as u32,
            None => {
                state.replicas.push(s.replica.to_owned());
                state.replicas.len() as u32 - 1
            }
        };
        let cell = state.cells.entry((stage, s.request, replica)).or_default();
        record_us(&mut cell.latency, latency.max(1));
        record_us(&mut cell.service, service.max(1));
        match s.error {
            None => cell.ok += 1,
            Some(class) => *cell.errors.entry(class).or_default() += 1,
        }
        if let Some(status) = s.status {
            *cell.statuses.entry(status).or_default() += 1;
        }
        if s.status.is_some() {
            state.last_answer = Some(s.done);
            state.refused_since_answer = 0;
        } else if s.error == Some(ErrorClass::Connect) {
            state.refused_since_answer += 1;
        }
        state.timeline.record(second, latency, s.error.is_some());
        state.marks.record(second, latency.max(1));
        if state.last_done.is_none_or(|t| s.done > t) {
            state.last_done = Some(s.done);
        }
        if state.request_timelines.len() <= s.request {
            state
                .request_timelines
                .resize_with(s.request + 1, Timeline::default);
        }
        state.request_timelines[s.request].record(second, latency, s.error.is_some());
        if let Some(live) = state.live.as_mut() {
            live.record(s.request, replica, latency.max(1));
        }
    }

    /// Counts a step that could not be sent, and why. Not a sample: it is
    /// in no histogram, timeline or throughput, and was never issued.
    pub fn not_sent(&self, request: usize, reason: &str) {
        count_reason(self.lock().not_sent.entry(request).or_default(), reason);
    }

    /// Notes what did not match when request `request` failed an
    /// expectation (`JSON `issue.0.severity` is not "error"`); the failure
    /// itself is recorded by [`Recorder::record`].
    pub fn expectation_failed(&self, request: usize, what: &str) {
        count_reason(self.lock().expectation.entry(request).or_default(), what);
    }

    /// Records an open-model arrival at its scheduled time, dropped or handed to a user.
    pub fn arrival(&self, scheduled: Instant, dropped: bool) {
        let stage = self.stage_at(scheduled);
        let second = self.second_of(scheduled);
        let mut state = self.lock();
        state.arrivals[stage] += 1;
        if dropped {
            state.dropped[stage] += 1;
            state.timeline.drop_arrival(second);
        }
    }

    /// Whether the target looks gone: no answer at all for `quiet` (since
    /// the start, if it never answered), and connections refused meanwhile.
    /// A slow target still answers; a timeout is not a refusal.
    pub fn target_gone(&self, quiet: Duration) -> bool {
        let started = self.started();
        let state = self.lock();
        let last = state.last_answer.unwrap_or(started);
        // Several refusals, not one: a single refused connection beside a
        // slow upload is not a vanished target.
        state.refused_since_answer >= 3 && last.elapsed() >= quiet
    }

    /// True once the load has started.
    pub fn has_begun(&self) -> bool {
        self.started.get().is_some()
    }

    /// Marks this moment (a chaos event) for [`Recorder::around_mark`].
    pub fn mark(&self) -> usize {
        let second = self.second_of(Instant::now());
        self.lock().marks.mark(second)
    }

    /// Latency in the minute before and the minute after a mark.
    pub fn around_mark(&self, index: usize) -> AroundMark {
        let state = self.lock();
        let Some(m) = state.marks.get(index) else {
            return AroundMark::default();
        };
        let q = |h: &Histogram<u64>, q: f64| {
            (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0)
        };
        AroundMark {
            before_count: m.before.len(),
            before_p95_ms: q(&m.before, 0.95),
            before_p99_ms: q(&m.before, 0.99),
            after_count: m.after.len(),
            after_p99_ms: q(&m.after, 0.99),
        }
    }

    /// Replicas that have answered so far.
    pub fn replicas(&self) -> Vec<String> {
        self.lock().replicas.clone()
    }

    /// Counts a transaction that panicked.
    pub fn user_panicked(&self) {
        self.lock().user_panics += 1;
    }

    /// Figures for a live progress line.
    pub fn live(&self) -> Live {
        let elapsed = self.started().elapsed();
        let state = self.lock();
        let (mut completed, mut failed) = (0, 0);
        for cell in state.cells.values() {
            failed += cell.failed();
            completed += cell.ok + cell.failed();
        }
        Live {
            elapsed_s: elapsed.as_secs_f64(),
            last_second: state
                .timeline
                .latest_complete(elapsed.as_secs())
                .unwrap_or_default(),
            completed,
            failed,
            dropped: state.dropped.iter().sum(),
        }
    }
}

#[cfg(test)]
mod tests;
