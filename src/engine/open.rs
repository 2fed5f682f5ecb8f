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
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Three shards of a ramp with a 3:1 persona mix: each arrival is in
    /// exactly one shard, at its global time with its global persona.
    #[test]
    fn shards_interleave_the_one_schedule_and_its_persona_mix() {
        use crate::scenario::shard::Shard;
        let stages = [OpenStage {
            rate: 40.0,
            ramp: crate::scenario::Dur(Duration::from_secs(2)),
            hold: crate::scenario::Dur(Duration::from_secs(3)),
        }];
        let whole: Vec<(Duration, usize)> = shard_arrivals(
            arrival_offsets(&stages, ArrivalProcess::Poisson { seed: 7 }),
            PersonaMix::new([3, 1]),
            Shard::default(),
        )
        .collect();
        let mut union: Vec<(Duration, usize)> = (0..3)
            .flat_map(|i| {
                shard_arrivals(
                    arrival_offsets(&stages, ArrivalProcess::Poisson { seed: 7 }),
                    PersonaMix::new([3, 1]),
                    Shard::new(i, 3).unwrap(),
                )
                .collect::<Vec<_>>()
            })
            .collect();
        union.sort();
        let mut sorted = whole.clone();
        sorted.sort();
        assert_eq!(union, sorted);
        assert!(whole.len() > 100, "{}", whole.len());
    }

    #[test]
    fn the_persona_mix_is_exact_in_every_cycle_and_interleaved() {
        let mut mix = PersonaMix::new([5, 2, 2, 1, 0]);
        let picks: Vec<usize> = (0..30).map(|_| mix.pick()).collect();
        for cycle in picks.chunks(10) {
            let count = |p| cycle.iter().filter(|&&x| x == p).count();
            assert_eq!(
                [count(0), count(1), count(2), count(3), count(4)],
                [5, 2, 2, 1, 0],
                "{picks:?}"
            );
        }
        // Interleaved, not in blocks: the heaviest never runs 3 in a row.
        assert!(picks.windows(3).all(|w| w != [0, 0, 0]), "{picks:?}");
        // One persona, or none with weight: always the first that counts.
        let mut one = PersonaMix::new([0, 3]);
        assert!((0..5).all(|_| one.pick() == 1));
    }

    fn stages(toml_stages: &str) -> Vec<OpenStage> {
        let load = format!("model = 'open'\n{toml_stages}");
        match crate::scenario::sample::scenario(crate::scenario::sample::LOOPBACK, &load).load {
            crate::scenario::LoadPlan::Open { stages, .. } => stages,
            _ => unreachable!(),
        }
    }

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let offs = arrival_offsets(
            &stages("[[load.stages]]\nrate=10\nhold='2s'"),
            ArrivalProcess::Uniform,
        )
        .collect::<Vec<_>>();
        assert_eq!(offs.len(), 20);
        assert!((offs[0].as_secs_f64() - 0.1).abs() < 1e-9);
        assert!((offs[19].as_secs_f64() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn a_linear_ramp_delivers_its_area() {
        // 0 → 20/s over 10 s is 100 arrivals, then 20/s for 5 s is 100 more.
        let offs = arrival_offsets(
            &stages("[[load.stages]]\nrate=20\nramp='10s'\nhold='5s'"),
            ArrivalProcess::Uniform,
        )
        .collect::<Vec<_>>();
        assert_eq!(offs.len(), 200);
        let in_first_half = offs.iter().filter(|o| o.as_secs_f64() <= 5.0).count();
        assert_eq!(
            in_first_half, 25,
            "a quarter of the ramp's arrivals fall in its first half"
        );
        assert!(offs.windows(2).all(|w| w[0] <= w[1]));
    }

    fn gaps(offs: &[Duration]) -> (f64, f64) {
        let gaps: Vec<f64> = offs
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64())
            .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        (mean, var.sqrt() / mean)
    }

    /// Poisson arrivals keep the planned rate on average and are bursty
    /// (gaps vary as much as they average: coefficient of variation 1);
    /// uniform ones do not vary at all. One seed, one draw.
    #[test]
    fn poisson_arrivals_keep_the_rate_and_vary_as_exponential_gaps() {
        let plan = stages("[[load.stages]]\nrate=100\nhold='100s'");
        let poisson: Vec<_> = arrival_offsets(&plan, ArrivalProcess::Poisson { seed: 7 }).collect();
        // 10,000 expected, standard deviation 100: 5σ either way.
        assert!(
            (9_500..=10_500).contains(&poisson.len()),
            "{}",
            poisson.len()
        );
        let (mean, cv) = gaps(&poisson);
        assert!((mean - 0.01).abs() < 0.0005, "mean gap {mean}");
        assert!((0.95..1.05).contains(&cv), "coefficient of variation {cv}");
        let uniform: Vec<_> = arrival_offsets(&plan, ArrivalProcess::Uniform).collect();
        assert_eq!(uniform.len(), 10_000);
        assert!(gaps(&uniform).1 < 1e-6, "uniform gaps do not vary");
        let again: Vec<_> = arrival_offsets(&plan, ArrivalProcess::Poisson { seed: 7 }).collect();
        assert_eq!(poisson, again, "the same seed, the same arrivals");
        let other: Vec<_> = arrival_offsets(&plan, ArrivalProcess::Poisson { seed: 8 }).collect();
        assert_ne!(poisson, other);
        assert!(poisson.windows(2).all(|w| w[0] <= w[1]), "in order");
    }

    /// A ramp stays Poisson at its changing rate: the count over a ramp from
    /// 0 to 200/s in 50 s is about its integral, 5,000.
    #[test]
    fn poisson_arrivals_follow_a_ramp() {
        let plan = stages("[[load.stages]]\nrate=200\nramp='50s'\nhold='1s'");
        let offs: Vec<_> = arrival_offsets(&plan, ArrivalProcess::Poisson { seed: 3 })
            .take_while(|d| d.as_secs_f64() <= 50.0)
            .collect();
        assert!((4_650..=5_350).contains(&offs.len()), "{}", offs.len());
        let first_half = offs.iter().filter(|d| d.as_secs_f64() <= 25.0).count();
        // A quarter of the arrivals come in the first half of a linear ramp.
        assert!((1_050..=1_450).contains(&first_half), "{first_half}");
    }

    #[test]
    fn stages_chain_and_ramp_down() {
        let offs = arrival_offsets(&stages(
            "[[load.stages]]\nrate=10\nhold='1s'\n[[load.stages]]\nrate=0.0001\nramp='2s'\nhold='1s'",
        ), ArrivalProcess::Uniform)
        .collect::<Vec<_>>();
        // 10 in the first second, ~10 over the 2 s ramp down, ~0 in the last hold.
        assert!((19..=21).contains(&offs.len()), "{}", offs.len());
    }

    #[test]
    fn a_month_at_the_highest_rate_costs_no_memory_up_front() {
        // 50,000/s for 30 days is 1.3e11 arrivals: made one at a time.
        let mut offs = arrival_offsets(
            &stages("[[load.stages]]\nrate=50000\nhold='720h'"),
            ArrivalProcess::Uniform,
        );
        assert_eq!(offs.next(), Some(Duration::from_micros(20)));
        assert_eq!(offs.nth(49_998), Some(Duration::from_secs(1)));
    }

    #[tokio::test]
    async fn arrivals_without_an_idle_user_are_dropped() {
        let pool = Arc::new(Pool::new(0, Duration::ZERO));
        let rec = Arc::new(Recorder::new(
            vec!["a".into()],
            vec![Duration::from_secs(1)],
        ));
        // One idle user takes the first slot; nobody takes the others.
        let waiter = {
            let (pool, rec) = (Arc::clone(&pool), Arc::clone(&rec));
            tokio::spawn(async move { pool.next(&rec).await })
        };
        while pool.idle.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let offsets = vec![
            Duration::from_millis(1),
            Duration::from_millis(2),
            Duration::from_millis(3),
        ];
        schedule(
            offsets.into_iter().map(|at| (at, 0)),
            Instant::now(),
            &pool,
            &rec,
            &tokio_util::sync::CancellationToken::new(),
            |_| unreachable!("a pool of no users starts none"),
        );
        assert!(waiter.await.unwrap().is_some());
        let m = rec.finish(Default::default());
        assert_eq!(
            (m.results.totals.arrivals, m.results.totals.dropped_arrivals),
            (3, 2)
        );
        assert_eq!(
            pool.next(&rec).await.map(|a| a.persona),
            None,
            "closed after the schedule"
        );
    }

    #[tokio::test]
    async fn queued_arrivals_are_served_late_or_dropped_after_the_timeout() {
        let pool = Arc::new(Pool::new(0, Duration::from_millis(50)));
        let rec = Arc::new(Recorder::new(
            vec!["a".into()],
            vec![Duration::from_secs(1)],
        ));
        // Nobody is idle: both slots queue.
        let offsets = vec![Duration::ZERO, Duration::from_millis(1)];
        schedule(
            offsets.into_iter().map(|at| (at, 0)),
            Instant::now(),
            &pool,
            &rec,
            &tokio_util::sync::CancellationToken::new(),
            |_| unreachable!("a pool of no users starts none"),
        );
        // A user turns up in time for the first, ...
        let first = pool
            .next(&rec)
            .await
            .expect("served late, within the timeout");
        assert!(first.queued);
        pool.done();
        // ... and too late for the second, which is dropped; then the schedule is over.
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(pool.next(&rec).await.is_none());
        let m = rec.finish(Default::default());
        assert_eq!(
            (m.results.totals.arrivals, m.results.totals.dropped_arrivals),
            (2, 1)
        );
        assert_eq!(pool.outstanding(), 0);
    }
    /// With room in the pool, a slot that finds no idle user starts one; a
    /// user that is idle again takes the next slot instead of a new start;
    /// a full pool drops. Every arrival is counted once.
    #[tokio::test]
    async fn users_start_lazily_up_to_the_pool_and_are_reused() {
        let pool = Arc::new(Pool::new(2, Duration::ZERO));
        let rec = Arc::new(Recorder::new(
            vec!["a".into()],
            vec![Duration::from_secs(1)],
        ));
        let mut started = Vec::new();
        // Three slots at once: two start users, the third finds the pool full.
        schedule(
            [Duration::ZERO; 3].into_iter().map(|at| (at, 0)),
            Instant::now(),
            &Pool::new(2, Duration::ZERO),
            &rec,
            &tokio_util::sync::CancellationToken::new(),
            |a| started.push(a),
        );
        assert_eq!(started.len(), 2);
        let m = rec.finish(Default::default());
        assert_eq!(
            (m.results.totals.arrivals, m.results.totals.dropped_arrivals),
            (3, 1)
        );

        // A started user that waits again takes the next slot: no new start.
        let rec = Arc::new(Recorder::new(
            vec!["a".into()],
            vec![Duration::from_secs(1)],
        ));
        assert_eq!(
            pool.offer(Arrival {
                scheduled: Instant::now(),
                persona: 0,
                queued: false
            }),
            Offer::StartUser
        );
        pool.done();
        let waiter = {
            let (pool, rec) = (Arc::clone(&pool), Arc::clone(&rec));
            tokio::spawn(async move { pool.next(&rec).await })
        };
        while pool.idle.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let mut more = 0;
        schedule(
            [Duration::ZERO].into_iter().map(|at| (at, 0)),
            Instant::now(),
            &pool,
            &rec,
            &tokio_util::sync::CancellationToken::new(),
            |_| more += 1,
        );
        assert!(waiter.await.unwrap().is_some(), "the idle user took it");
        assert_eq!((more, pool.users_started()), (0, 1));
    }
    /// Users and the scheduler on different threads, with a backlog of
    /// queued slots: every arrival is served or dropped exactly once, and
    /// when the schedule ends the idle marks stand for exactly the users
    /// waiting (a mark left over would hand a later slot to nobody, and it
    /// would wait unqueued, past any queue timeout).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_marks_stay_exact_under_a_backlog_of_queued_slots() {
        const USERS: usize = 4;
        const ARRIVALS: usize = 20_000;
        let pool = Arc::new(Pool::new(0, Duration::from_secs(30)));
        let rec = Arc::new(Recorder::new(
            vec!["a".into()],
            vec![Duration::from_secs(60)],
        ));
        let served = Arc::new(AtomicUsize::new(0));
        let users: Vec<_> = (0..USERS)
            .map(|_| {
                let (pool, rec, served) =
                    (Arc::clone(&pool), Arc::clone(&rec), Arc::clone(&served));
                tokio::spawn(async move {
                    while pool.next(&rec).await.is_some() {
                        served.fetch_add(1, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        pool.done();
                    }
                })
            })
            .collect();
        let scheduler = {
            let (pool, rec) = (Arc::clone(&pool), Arc::clone(&rec));
            tokio::task::spawn_blocking(move || {
                // 200,000 arrivals/s: far more than 4 users serve, so slots queue.
                schedule(
                    (0..ARRIVALS).map(|k| (Duration::from_micros(5 * k as u64), 0)),
                    Instant::now(),
                    &pool,
                    &rec,
                    &tokio_util::sync::CancellationToken::new(),
                    |_| unreachable!("a pool of no users starts none"),
                );
            })
        };
        scheduler.await.unwrap();
        // Every user ends waiting, then sees the schedule is over.
        for user in users {
            user.await.unwrap();
        }
        let marks = pool.idle.load(Ordering::SeqCst);
        let debt = pool.debt.load(Ordering::SeqCst);
        assert_eq!(marks - debt, USERS, "marks {marks}, debt {debt}");
        let m = rec.finish(Default::default());
        assert_eq!(m.results.totals.arrivals, ARRIVALS as u64);
        assert_eq!(
            served.load(Ordering::SeqCst) as u64 + m.results.totals.dropped_arrivals,
            ARRIVALS as u64
        );
        assert_eq!(pool.outstanding(), 0);
    }
}
