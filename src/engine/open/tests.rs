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
            let (pool, rec, served) = (Arc::clone(&pool), Arc::clone(&rec), Arc::clone(&served));
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

/// A quiet spell (rate 0, a replayed log's empty minute) sends nothing,
/// and the stages either side keep their arrivals exactly, uniform or
/// Poisson.
#[test]
fn a_quiet_stage_sends_nothing_and_its_neighbours_keep_their_arrivals() {
    let stage = |rate: f64, hold_s: u64| OpenStage {
        rate,
        ramp: crate::scenario::Dur(Duration::ZERO),
        hold: crate::scenario::Dur(Duration::from_secs(hold_s)),
    };
    let plan = [stage(12.0, 1), stage(0.0, 60), stage(8.0, 1)];
    let uniform: Vec<f64> = arrival_offsets(&plan, ArrivalProcess::Uniform)
        .map(|d| d.as_secs_f64())
        .collect();
    assert_eq!(uniform.len(), 20);
    assert_eq!(uniform.iter().filter(|t| **t <= 1.0).count(), 12);
    assert!(
        uniform.iter().all(|t| *t <= 1.0 + 1e-9 || *t > 61.0),
        "{uniform:?}"
    );
    let poisson: Vec<f64> = arrival_offsets(&plan, ArrivalProcess::Poisson { seed: 3 })
        .map(|d| d.as_secs_f64())
        .collect();
    assert!(
        poisson.iter().all(|t| *t <= 1.0 || *t > 61.0),
        "{poisson:?}"
    );
}
