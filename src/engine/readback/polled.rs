//! One upload's polling, as decisions with no I/O in them: which reads a
//! round sends (straight to each replica with an address, through the
//! balancer only for replicas that have none), what the answers settle,
//! and when the next round comes — or that polling is over, because every
//! replica gave its final answer or the upload's window closed. The loop
//! in `super::poll` only sends what this says and sleeps as long as it says.

use crate::measure::{UNKNOWN_REPLICA, UNMAPPED_REPLICA};
use crate::verify::consistency::{Checked, Observation, Seen, Upload};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Each round of an upload's read-backs waits this much longer than the
/// last, up to [`MAX_BACKOFF`] times `[verify] poll`: a replica that lags
/// is still timed to within a few polls, one that never gets the upload
/// costs a few reads a second instead of ten.
const BACKOFF: f64 = 1.5;
/// The longest pause between rounds, in polls.
const MAX_BACKOFF: f64 = 4.0;
/// The shortest pause: a round that lands a hair before the deadline still
/// yields to the runtime instead of spinning.
const MIN_PAUSE: Duration = Duration::from_millis(1);

/// Whether `name` is a replica (not "unknown", not "unmapped").
pub(super) fn is_replica(name: &str) -> bool {
    name != UNKNOWN_REPLICA && name != UNMAPPED_REPLICA
}

/// When an upload's rounds come, counted from the upload: the first at
/// once, each next one a pause later that grows by [`BACKOFF`] up to
/// [`MAX_BACKOFF`] polls, the last one at the deadline itself (so an upload
/// that appears just before its window closes is still seen), none after.
#[derive(Debug, Clone)]
struct Rounds {
    poll: Duration,
    window: Duration,
    pause: Duration,
}

impl Rounds {
    fn new(poll: Duration, window: Duration) -> Self {
        Rounds {
            poll,
            window,
            pause: poll,
        }
    }

    /// The pause before the next round, `elapsed` after the upload; None
    /// once the window has closed.
    fn next(&mut self, elapsed: Duration) -> Option<Duration> {
        let left = self.window.checked_sub(elapsed).filter(|l| !l.is_zero())?;
        let pause = self.pause.min(left).max(MIN_PAUSE);
        self.pause = self
            .pause
            .mul_f64(BACKOFF)
            .min(self.poll.mul_f64(MAX_BACKOFF));
        Some(pause)
    }
}

/// What one upload's polling has found so far, and when it polls next.
pub(super) struct Polled {
    /// Every replica the load (or a read) has met since the upload.
    expected: BTreeSet<String>,
    /// What each replica showed, read by read.
    seen: BTreeMap<String, Vec<Observation>>,
    /// Reads through the balancer in a row that met no replica not yet known.
    quiet_reads: usize,
    /// The run has met every replica it will meet (no need to count quiet reads).
    pub(super) run_knows_all: bool,
    rounds: Rounds,
}

impl Polled {
    /// Nothing found yet; rounds `poll` apart at first, for `window`.
    pub(super) fn new(poll: Duration, window: Duration) -> Self {
        Polled {
            expected: BTreeSet::new(),
            seen: BTreeMap::new(),
            quiet_reads: 0,
            run_knows_all: false,
            rounds: Rounds::new(poll, window),
        }
    }

    /// Whether `name` showed the right bytes or wrong ones: either is final.
    fn settled(&self, name: &str) -> bool {
        self.seen.get(name).is_some_and(|o| {
            o.iter()
                .any(|o| matches!(o.seen, Seen::Same | Seen::Different))
        })
    }

    /// A replica met: a new one starts the count of quiet reads again.
    pub(super) fn expect(&mut self, name: String) -> bool {
        let new = self.expected.insert(name);
        if new {
            self.quiet_reads = 0;
        }
        new
    }

    /// This round's reads, as (URL, the replica's own base if read there):
    /// each unsettled replica with an address there; through the balancer
    /// one read per unsettled replica that has none (at least one while no
    /// address is known), so a spreading balancer reaches each of them over
    /// a few rounds.
    pub(super) fn reads(
        &self,
        direct: &BTreeMap<String, String>,
        balancer: Option<&str>,
        read_path: &str,
    ) -> Vec<(String, Option<String>)> {
        let mut reads: Vec<(String, Option<String>)> = direct
            .iter()
            .filter(|(name, _)| !self.settled(name))
            .map(|(_, base)| {
                (
                    crate::scenario::join_url(base, read_path),
                    Some(base.clone()),
                )
            })
            .collect();
        if let Some(balancer) = balancer {
            let open = self
                .expected
                .iter()
                .filter(|r| !self.settled(r) && !direct.contains_key(*r))
                .count();
            let open = if direct.is_empty() { open.max(1) } else { open };
            reads.extend(std::iter::repeat_n((balancer.to_owned(), None), open));
        }
        reads
    }

    /// Records what replica `name` showed `after_ms` after the upload.
    pub(super) fn record(
        &mut self,
        name: String,
        through_balancer: bool,
        after_ms: u64,
        what: Seen,
    ) {
        if !is_replica(&name) {
            if through_balancer {
                self.quiet_reads += 1;
            }
            return;
        }
        if !self.expect(name.clone()) && through_balancer {
            self.quiet_reads += 1;
        }
        if !self.settled(&name) {
            self.seen.entry(name).or_default().push(Observation {
                after_ms,
                seen: what,
            });
        }
    }

    /// Whether every replica showed its final answer. Early in a run the
    /// replicas seen so far may not be all of them: through the balancer
    /// alone, "everywhere" needs enough reads in a row that found no
    /// replica it did not know.
    fn everywhere(&self, has_addresses: bool, through_balancer: bool) -> bool {
        let known_all = has_addresses
            || !through_balancer
            || self.run_knows_all
            || self.quiet_reads > 2 * self.expected.len();
        known_all && !self.expected.is_empty() && self.expected.iter().all(|r| self.settled(r))
    }

    /// After a round that ended `elapsed` after the upload: the pause before
    /// the next, or None when polling is over — every replica gave its
    /// final answer, or the window closed.
    pub(super) fn after_round(
        &mut self,
        elapsed: Duration,
        has_addresses: bool,
        through_balancer: bool,
    ) -> Option<Duration> {
        if self.everywhere(has_addresses, through_balancer) {
            return None;
        }
        self.rounds.next(elapsed)
    }

    /// Every replica met, with what it showed; one never reached has no
    /// observation (its verdict is "unverified", not silently absent).
    pub(super) fn checked(mut self, upload: Upload) -> Checked {
        for replica in std::mem::take(&mut self.expected) {
            self.seen.entry(replica).or_default();
        }
        self.seen.retain(|name, _| is_replica(name));
        Checked {
            upload,
            seen: self.seen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The read's URL through the balancer (`poll` joins it once).
    const BALANCER: &str = "http://lb/doc/1";
    const READ: &str = "/doc/1";

    fn ms(d: Duration) -> f64 {
        (d.as_secs_f64() * 10_000.0).round() / 10.0
    }

    /// Replica name → its address, for replicas read directly.
    fn addresses(names: &[&str]) -> BTreeMap<String, String> {
        names
            .iter()
            .map(|n| (n.to_string(), format!("http://{n}:8080")))
            .collect()
    }

    /// What a simulated polling did: its rounds' offsets from the upload
    /// and the reads it sent, per replica read directly and in all through
    /// the balancer.
    #[derive(Debug, Default)]
    struct Run {
        rounds: Vec<f64>,
        direct: BTreeMap<String, usize>,
        through_balancer: usize,
    }

    /// One upload polled as `super::poll` polls it, with reads that take
    /// no time (the most rounds a window allows): `direct` replicas read at
    /// their address, the balancer handing reads to `behind` in turn, and
    /// `shows` saying what each replica shows. The load met `met`.
    fn simulate(
        met: &[&str],
        direct: &[&str],
        behind: &[&str],
        through_balancer: bool,
        shows: &dyn Fn(&str) -> Seen,
    ) -> Run {
        let (poll, window) = (Duration::from_millis(100), Duration::from_secs(2));
        let mut polled = Polled::new(poll, window);
        let direct = addresses(direct);
        let balancer = through_balancer.then_some(BALANCER);
        let mut run = Run::default();
        let mut at = Duration::ZERO;
        let mut next_behind = behind.iter().cycle();
        for name in met {
            polled.expect(name.to_string());
        }
        loop {
            assert!(run.rounds.len() < 10_000, "polling never stopped");
            run.rounds.push(ms(at));
            for (url, base) in polled.reads(&direct, balancer, READ) {
                let name = match base {
                    Some(base) => {
                        let (name, _) = direct.iter().find(|(_, b)| **b == base).unwrap();
                        assert_eq!(url, format!("{base}{READ}"));
                        *run.direct.entry(name.clone()).or_default() += 1;
                        name.clone()
                    }
                    None => {
                        assert_eq!(url, BALANCER);
                        run.through_balancer += 1;
                        next_behind.next().unwrap().to_string()
                    }
                };
                let what = shows(&name);
                polled.record(name, url == BALANCER, at.as_millis() as u64, what);
            }
            match polled.after_round(at, !direct.is_empty(), through_balancer) {
                Some(pause) => at += pause,
                None => return run,
            }
        }
    }

    /// The pauses between rounds: poll, then ×1.5 each time, never more
    /// than four polls.
    #[test]
    fn rounds_back_off_by_half_again_up_to_four_polls() {
        let mut rounds = Rounds::new(Duration::from_millis(100), Duration::from_secs(3600));
        let pauses: Vec<f64> = (0..7)
            .map(|_| ms(rounds.next(Duration::ZERO).unwrap()))
            .collect();
        assert_eq!(pauses, [100.0, 150.0, 225.0, 337.5, 400.0, 400.0, 400.0]);
    }

    /// Polling ends at the deadline: its last round falls on it, never
    /// after, and the number of rounds is what the backoff allows in the
    /// window — not one per poll.
    #[test]
    fn polling_stops_at_the_upload_deadline() {
        let mut rounds = Rounds::new(Duration::from_millis(100), Duration::from_secs(2));
        assert_eq!(
            rounds.next(Duration::from_secs(2)),
            None,
            "the window closed"
        );
        assert_eq!(rounds.next(Duration::from_secs(3)), None);
        // An upload that never appears on r2 (r1 has it), both read directly.
        let never = simulate(&["r1", "r2"], &["r1", "r2"], &[], true, &|r| {
            if r == "r1" {
                Seen::Same
            } else {
                Seen::Missing
            }
        });
        // 0, +100, +150, +225, +337.5, then +400 until the 2 s deadline.
        assert_eq!(
            never.rounds,
            [0.0, 100.0, 250.0, 475.0, 812.5, 1212.5, 1612.5, 2000.0]
        );
        assert_eq!(never.direct["r2"], 8, "one read a round: {never:?}");
        assert_eq!(never.direct["r1"], 1, "r1 settled in the first round");
        // A long window still costs one read per 4 polls once backed off.
        let mut long = Rounds::new(Duration::from_millis(100), Duration::from_secs(60));
        let mut at = Duration::ZERO;
        let mut count = 1;
        while let Some(pause) = long.next(at) {
            at += pause;
            count += 1;
            assert!(count < 1000, "no end");
        }
        assert_eq!(ms(at), 60_000.0);
        assert!((150..=156).contains(&count), "{count} rounds in 60 s");
    }

    /// An upload every replica showed at once, read at their addresses:
    /// one round, one read each, none through the balancer.
    #[test]
    fn an_upload_judged_by_direct_reads_ends_at_once() {
        let run = simulate(
            &["r1", "r2", "r3"],
            &["r1", "r2", "r3"],
            &["r1"],
            true,
            &|_| Seen::Same,
        );
        assert_eq!(run.rounds, [0.0]);
        assert_eq!(run.direct.values().sum::<usize>(), 3);
        assert_eq!(run.through_balancer, 0);
    }

    /// Every replica the load met has an address: not one read goes
    /// through the balancer, however long one of them lags.
    #[test]
    fn replicas_with_an_address_are_never_read_through_the_balancer() {
        let run = simulate(&["r1", "r2"], &["r1", "r2"], &["r1", "r2"], true, &|r| {
            if r == "r1" {
                Seen::Same
            } else {
                Seen::Missing
            }
        });
        assert_eq!(run.through_balancer, 0, "{run:?}");
        assert!(run.direct["r2"] > 1, "{run:?}");
        // Read directly, the replicas met are the whole of them: once
        // judged there, polling ends, with no balancer read to look for more.
        let mut polled = Polled::new(Duration::from_millis(100), Duration::from_secs(2));
        let direct = addresses(&["r1", "r2"]);
        for name in ["r1", "r2"] {
            polled.expect(name.into());
            polled.record(name.into(), false, 5, Seen::Same);
        }
        assert!(polled.reads(&direct, Some(BALANCER), READ).is_empty());
        assert_eq!(polled.after_round(Duration::ZERO, true, true), None);
    }

    /// The balancer is read for replicas that have no address, one read
    /// per such replica still open, and only while it is open.
    #[test]
    fn the_balancer_is_read_only_for_open_replicas_without_an_address() {
        let mut polled = Polled::new(Duration::from_millis(100), Duration::from_secs(2));
        let direct = addresses(&["r1"]);
        for name in ["r1", "r2", "r3"] {
            polled.expect(name.into());
        }
        let through = |p: &Polled| {
            p.reads(&direct, Some(BALANCER), READ)
                .iter()
                .filter(|(_, base)| base.is_none())
                .count()
        };
        assert_eq!(through(&polled), 2, "r2 and r3 have no address");
        assert_eq!(polled.reads(&direct, Some(BALANCER), READ).len(), 3);
        polled.record("r2".into(), true, 5, Seen::Same);
        assert_eq!(through(&polled), 1, "r3 only");
        polled.record("r3".into(), true, 9, Seen::Missing);
        assert_eq!(through(&polled), 1, "missing is not final");
        polled.record("r3".into(), true, 40, Seen::Different);
        assert_eq!(through(&polled), 0, "corrupted is final");
        // Through the balancer turned off: never read there.
        assert!(polled
            .reads(&BTreeMap::new(), None, READ)
            .iter()
            .all(|(_, base)| base.is_some()));
    }

    /// With no address known, the balancer is read at least once a round
    /// (to meet the replicas), and an upload that never appears behind it
    /// is read there until its deadline, one read per open replica.
    #[test]
    fn with_no_address_the_balancer_is_read_until_the_deadline() {
        let fresh = Polled::new(Duration::from_millis(100), Duration::from_secs(2));
        assert_eq!(
            fresh.reads(&BTreeMap::new(), Some(BALANCER), READ),
            [(BALANCER.to_owned(), None)]
        );
        assert!(fresh.reads(&BTreeMap::new(), None, READ).is_empty());
        let run = simulate(&["r1"], &[], &["r1", "r2"], true, &|r| {
            if r == "r1" {
                Seen::Same
            } else {
                Seen::Missing
            }
        });
        assert_eq!(run.rounds.len(), 8, "{run:?}");
        assert_eq!(*run.rounds.last().unwrap(), 2000.0);
        assert!(run.direct.is_empty());
        // Round 1: r1 open (1 read: r1). Then r2 met and open: 1 read a round.
        assert_eq!(run.through_balancer, 8, "{run:?}");
        // Shared: everyone has it; polling ends once enough reads in a row
        // met no replica it did not know (three for two replicas), long
        // before the deadline.
        let shared = simulate(&["r1"], &[], &["r1", "r2"], true, &|_| Seen::Same);
        assert!(shared.rounds.len() < 8, "{shared:?}");
        assert!(*shared.rounds.last().unwrap() < 2000.0, "{shared:?}");
    }

    /// Through the balancer alone, replicas not met yet may exist: all
    /// settled is "everywhere" only once the run knows every replica (or
    /// enough quiet reads say so); with addresses, at once.
    #[test]
    fn everywhere_through_the_balancer_waits_to_know_every_replica() {
        let mut polled = Polled::new(Duration::from_millis(100), Duration::from_secs(2));
        polled.record("r1".into(), true, 5, Seen::Same);
        assert!(!polled.everywhere(false, true), "one read met one replica");
        assert!(polled.everywhere(true, true));
        assert!(polled.everywhere(false, false));
        polled.run_knows_all = true;
        assert!(polled.everywhere(false, true));
        let mut quiet = Polled::new(Duration::from_millis(100), Duration::from_secs(2));
        // More than two quiet reads per replica known: the first read met
        // r1, the next three met nobody new.
        for _ in 0..3 {
            quiet.record("r1".into(), true, 5, Seen::Same);
        }
        assert!(
            !quiet.everywhere(false, true),
            "two quiet reads are not enough"
        );
        quiet.record("r1".into(), true, 5, Seen::Same);
        assert!(quiet.everywhere(false, true), "three quiet reads");
        assert!(!Polled::new(Duration::ZERO, Duration::ZERO).everywhere(true, true));
    }
}
