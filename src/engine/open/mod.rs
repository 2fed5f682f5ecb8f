//! The open load model goose lacks: arrivals at a planned rate, whatever the
//! server does.
//!
//! A scheduler hands arrival slots to a pool of users, started lazily: a slot
//! goes to an idle user, or else starts a new one while the pool is below
//! `max_users`, so memory follows the arrivals in flight, not the plan's
//! peak rate. A slot carries its scheduled instant, so latency is measured from when the request
//! SHOULD have started (no coordinated omission), while service time is
//! measured from the actual send. A slot that finds no idle user is dropped
//! and counted — at once, or (with `queue_timeout`) once it has waited that
//! long for a user; dropped arrivals are themselves a saturation signal, and
//! a slot served late shows its wait in the latency.

use crate::measure::Recorder;
use crate::scenario::{ArrivalProcess, OpenStage};
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use crate::scenario::PersonaMix;

/// Offsets from the start at which arrivals are due at the planned rate:
/// each stage ramps linearly from the previous stage's rate to its own, then
/// holds it. With uniform arrivals the n-th is due when the planned count
/// Λ(t) = ∫rate reaches n; with Poisson arrivals when Λ(t) reaches the sum of
/// n independent Exp(1) draws (the time-rescaling of a Poisson process, so
/// ramps stay Poisson too). Made one at a time as the schedule needs them:
/// a long run at a high rate has billions of arrivals, and memory must not
/// grow with them.
pub fn arrival_offsets(stages: &[OpenStage], process: ArrivalProcess) -> ArrivalOffsets {
    let mut segments = Vec::new();
    let mut from_rate = 0.0;
    for stage in stages {
        segments.push((from_rate, stage.rate, stage.ramp.0.as_secs_f64()));
        segments.push((stage.rate, stage.rate, stage.hold.0.as_secs_f64()));
        from_rate = stage.rate;
    }
    let mut offsets = ArrivalOffsets {
        segments,
        segment: 0,
        at: 0.0,
        need: 0.0,
        poisson: match process {
            ArrivalProcess::Uniform => None,
            ArrivalProcess::Poisson { seed } => Some(rand::rngs::StdRng::seed_from_u64(seed)),
        },
    };
    offsets.need = offsets.gap();
    offsets
}

/// The arrival offsets of a plan, in order (see [`arrival_offsets`]).
pub struct ArrivalOffsets {
    /// (rate at the start, rate at the end, length in seconds).
    segments: Vec<(f64, f64, f64)>,
    segment: usize,
    /// Start of the current segment, seconds.
    at: f64,
    /// The planned count, within the current segment, at which the next
    /// arrival is due; what a segment leaves over carries into the next, so a
    /// ramp into a hold neither loses nor doubles an arrival.
    need: f64,
    /// The draw of Poisson gaps; uniform arrivals have none.
    poisson: Option<rand::rngs::StdRng>,
}

impl ArrivalOffsets {
    /// The planned count between two arrivals: 1, or an Exp(1) draw.
    fn gap(&mut self) -> f64 {
        match &mut self.poisson {
            None => 1.0,
            // 1 − U lies in (0, 1]: the logarithm is finite.
            Some(rng) => -(1.0 - rng.random::<f64>()).ln(),
        }
    }
}

impl Iterator for ArrivalOffsets {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        loop {
            let &(r0, r1, len) = self.segments.get(self.segment)?;
            if len <= 0.0 {
                self.segment += 1;
                continue;
            }
            let a = (r1 - r0) / (2.0 * len);
            let total = r0 * len + a * len * len;
            let need = self.need;
            if need <= total + 1e-9 {
                let t = if a.abs() < 1e-12 {
                    // r0 > 0 here unless `need` is ~0 (a vanishing Poisson gap): then now.
                    if r0 > 0.0 {
                        need / r0
                    } else {
                        0.0
                    }
                } else {
                    (-r0 + (r0 * r0 + 4.0 * a * need).max(0.0).sqrt()) / (2.0 * a)
                };
                self.need = need + self.gap();
                return Some(Duration::from_secs_f64(self.at + t.clamp(0.0, len)));
            }
            self.need = need - total;
            self.at += len;
            self.segment += 1;
        }
    }
}

/// One arrival slot.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// When it was due.
    pub scheduled: Instant,
    /// Which persona runs.
    pub persona: usize,
    /// It found no idle user and waited in the queue.
    pub queued: bool,
}

/// What became of a slot when it was due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// An idle user took it.
    Handed,
    /// No user was idle and the pool had room: a new user is to start with it.
    StartUser,
    /// No user was idle; it waits up to the queue timeout.
    Queued,
    /// No user was idle and there is no queue.
    Dropped,
}

/// The pool of users waiting for slots.
pub struct Pool {
    queue_timeout: Duration,
    max_users: usize,
    idle: AtomicUsize,
    /// Unqueued slots in flight that no waiting user's idle mark stands
    /// for: a user that had marked itself idle took a queued slot instead,
    /// after the scheduler had already claimed its mark. The next user to
    /// wait takes one of these in place of a new mark, so no mark is ever
    /// left over to claim a user that is not there.
    debt: AtomicUsize,
    outstanding: AtomicUsize,
    started: AtomicUsize,
    tx: std::sync::Mutex<Option<flume::Sender<Arrival>>>,
    rx: flume::Receiver<Arrival>,
}

impl Pool {
    /// A pool of at most `max_users`, whose slots may wait `queue_timeout`
    /// for a user.
    pub fn new(max_users: usize, queue_timeout: Duration) -> Self {
        let (tx, rx) = flume::unbounded();
        Pool {
            queue_timeout,
            max_users,
            idle: AtomicUsize::new(0),
            debt: AtomicUsize::new(0),
            outstanding: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            tx: std::sync::Mutex::new(Some(tx)),
            rx,
        }
    }

    /// Users started so far.
    pub fn users_started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    /// A user waits for its next slot; `None` once the schedule is over.
    /// Queued slots that waited past the timeout are dropped here.
    pub async fn next(&self, recorder: &Recorder) -> Option<Arrival> {
        loop {
            let marked = !take_one(&self.debt);
            if marked {
                self.idle.fetch_add(1, Ordering::SeqCst);
            }
            let arrival = self.rx.recv_async().await.ok()?;
            if !arrival.queued {
                // The scheduler took an idle mark (and recorded the arrival)
                // when it sent this slot: ours, or the one a debt stood for.
                return Some(arrival);
            }
            // A queued slot was sent without taking an idle mark: take back
            // ours. If the scheduler claimed it meanwhile, an unqueued slot
            // is on its way that no waiting user stands for: owe it.
            if !(marked && take_one(&self.idle)) {
                self.debt.fetch_add(1, Ordering::SeqCst);
            }
            let late = arrival.scheduled.elapsed() > self.queue_timeout;
            recorder.arrival(arrival.scheduled, late);
            if !late {
                return Some(arrival);
            }
            self.done();
        }
    }

    /// A user has finished a slot.
    pub fn done(&self) {
        self.outstanding.fetch_sub(1, Ordering::SeqCst);
    }

    /// Slots handed out and not yet finished.
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::SeqCst)
    }

    /// Hands a slot to an idle user, starts a user for it, queues it, or
    /// drops it.
    fn offer(&self, mut arrival: Arrival) -> Offer {
        let claimed = take_one(&self.idle);
        if !claimed {
            let room = self
                .started
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    (n < self.max_users).then_some(n + 1)
                })
                .is_ok();
            if room {
                self.outstanding.fetch_add(1, Ordering::SeqCst);
                return Offer::StartUser;
            }
        }
        if !claimed && self.queue_timeout.is_zero() {
            return Offer::Dropped;
        }
        arrival.queued = !claimed;
        self.outstanding.fetch_add(1, Ordering::SeqCst);
        let sent = match self.tx.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(tx) => tx.send(arrival).is_ok(),
            None => false,
        };
        if !sent {
            self.outstanding.fetch_sub(1, Ordering::SeqCst);
            return Offer::Dropped;
        }
        if claimed {
            Offer::Handed
        } else {
            Offer::Queued
        }
    }

    /// Ends the schedule: waiting users get `None` once the queue is empty.
    pub fn close(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Counts slots still queued at the very end as dropped.
    pub fn drop_leftovers(&self, recorder: &Recorder) {
        while let Ok(arrival) = self.rx.try_recv() {
            if arrival.queued {
                recorder.arrival(arrival.scheduled, true);
            }
            self.done();
        }
    }
}

/// Takes one from `counter` if it is above zero.
fn take_one(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// A shard's part of the global schedule: every arrival's persona is
/// picked along the whole schedule, then the shard keeps the arrivals
/// `k ≡ index (mod count)`, so the shards together are the one schedule,
/// persona mix included.
pub fn shard_arrivals(
    offsets: impl IntoIterator<Item = Duration>,
    mut mix: PersonaMix,
    shard: crate::scenario::shard::Shard,
) -> impl Iterator<Item = (Duration, usize)> {
    offsets
        .into_iter()
        .enumerate()
        .map(move |(k, at)| (k as u64, at, mix.pick()))
        .filter(move |(k, ..)| shard.takes(*k))
        .map(|(_, at, persona)| (at, persona))
}

/// Runs the schedule of (offset, persona) from `start`, handing slots to
/// `pool` (or to a user `start_user` starts with it), until the plan ends or
/// `stop` is cancelled.
///
/// It blocks: run it on a thread of its own (`spawn_blocking`). A tokio
/// timer wakes on whole milliseconds, so every arrival would start up to a
/// millisecond late; the thread's own sleep wakes within tens of
/// microseconds of the instant.
pub fn schedule(
    arrivals: impl IntoIterator<Item = (Duration, usize)>,
    start: Instant,
    pool: &Pool,
    recorder: &Recorder,
    stop: &tokio_util::sync::CancellationToken,
    mut start_user: impl FnMut(Arrival),
) {
    for (offset, persona) in arrivals {
        let due = start + offset;
        if !sleep_until(due, stop) {
            break;
        }
        let arrival = Arrival {
            scheduled: due,
            persona,
            queued: false,
        };
        match pool.offer(arrival) {
            Offer::Handed => recorder.arrival(due, false),
            Offer::StartUser => {
                recorder.arrival(due, false);
                start_user(arrival);
            }
            Offer::Dropped => recorder.arrival(due, true),
            // Recorded by the user that takes it, or by `drop_leftovers`.
            Offer::Queued => {}
        }
    }
    pool.close();
}

/// Longest single sleep while waiting for an arrival: a stop is seen
/// within it, however far away the next arrival is.
const STOP_SEEN_WITHIN: Duration = Duration::from_millis(20);

/// Sleeps the thread until `due`; `false` if `stop` came first.
fn sleep_until(due: Instant, stop: &tokio_util::sync::CancellationToken) -> bool {
    loop {
        if stop.is_cancelled() {
            return false;
        }
        let now = Instant::now();
        if now >= due {
            return true;
        }
        std::thread::sleep((due - now).min(STOP_SEEN_WITHIN));
    }
}

#[cfg(test)]
mod tests;
