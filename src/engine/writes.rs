//! The run's write ledger: every write (a request with a `consistency`
//! read-back) counted as it completes, the longest run of writes failing one
//! after another (the outage), the longest time no write succeeded while
//! writes were sent (the stall), and — with `[verify] audit` — the newest
//! acknowledged writes kept for the audit after the run
//! (`readback::audit`). Pure bookkeeping, no I/O.

use crate::bundle::{Outage, Stall, Writes};
use crate::scenario::ReadRule;
use crate::verify::consistency::Upload;
use std::collections::VecDeque;

/// Acknowledged writes kept for the audit, at most (each a few hundred
/// bytes): past it the oldest go, counted as not audited, since a failover
/// late in a long run is what the audit is for.
pub const AUDIT_CAP: usize = 200_000;

/// One acknowledged write, as the audit reads it.
#[derive(Debug, Clone)]
pub struct Acknowledged {
    /// What was written, by whom, where.
    pub upload: Upload,
    /// The path that reads it back.
    pub read: String,
    /// How the read is judged.
    pub rule: ReadRule,
}

/// The writes as the run goes.
#[derive(Default)]
pub struct WriteLedger {
    writes: Writes,
    /// The writes failing one after another now, if the last one failed.
    open: Option<Outage>,
    acknowledged: VecDeque<Acknowledged>,
    /// Acknowledged writes dropped past [`AUDIT_CAP`].
    dropped: u64,
    /// The writes completed since the last success: the earliest sent,
    /// the latest ended, how many.
    since_success: Option<Stall>,
    /// When the last success ended.
    last_success: Option<f64>,
}

impl WriteLedger {
    /// Counts a write that completed: sent at `from_s`, ended at `to_s`
    /// (seconds of the run). A success ends the outage in progress.
    pub fn count(&mut self, failed: bool, from_s: f64, to_s: f64) {
        self.writes.sent += 1;
        let since = self.since_success.get_or_insert(Stall {
            from_s,
            to_s,
            writes: 0,
        });
        since.from_s = since.from_s.min(from_s);
        since.to_s = since.to_s.max(to_s);
        since.writes += 1;
        if !failed {
            self.close();
            self.settle(Some(to_s));
            return;
        }
        self.writes.failed += 1;
        let open = self.open.get_or_insert(Outage {
            from_s,
            to_s,
            failed: 0,
        });
        open.from_s = open.from_s.min(from_s);
        open.to_s = open.to_s.max(to_s);
        open.failed += 1;
    }

    fn close(&mut self) {
        if let Some(open) = self.open.take() {
            let longest = self.writes.outage.map_or(-1.0, |o| o.seconds());
            if open.seconds() > longest {
                self.writes.outage = Some(open);
            }
        }
    }

    /// Ends the stall in progress: at the success that ended at
    /// `success_s`, or (None) at the run's end, at the last write's end.
    /// It began at the last success before it, or at the first write sent
    /// after that success when later (time no write was sent after a
    /// success is no stall).
    fn settle(&mut self, success_s: Option<f64>) {
        let Some(since) = self.since_success.take() else {
            return;
        };
        let end = success_s.unwrap_or(since.to_s);
        let from_s = since.from_s.max(self.last_success.unwrap_or(f64::MIN));
        if success_s.is_some() {
            self.last_success = Some(end.max(self.last_success.unwrap_or(end)));
        }
        // A success reported after a later one (two users racing) ends
        // nothing new.
        if end <= from_s {
            return;
        }
        let stall = Stall {
            from_s,
            to_s: end,
            writes: since.writes,
        };
        if self
            .writes
            .stall_s()
            .is_none_or(|longest| stall.seconds() > longest)
        {
            self.writes.stall = Some(stall);
        }
    }

    /// Keeps an acknowledged write for the audit.
    pub fn acknowledge(&mut self, write: Acknowledged) {
        if self.acknowledged.len() == AUDIT_CAP {
            self.acknowledged.pop_front();
            self.dropped += 1;
        }
        self.acknowledged.push_back(write);
    }

    /// The writes, an outage still in progress closed at the end, with the
    /// acknowledged writes kept and how many were dropped.
    pub fn finish(mut self) -> (Writes, Vec<Acknowledged>, u64) {
        self.close();
        self.settle(None);
        (self.writes, self.acknowledged.into(), self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outage_is_the_longest_run_of_writes_failing_one_after_another() {
        let mut l = WriteLedger::default();
        // A stray refusal early, then a failover from 10 s to 12.5 s.
        l.count(true, 1.0, 1.1);
        l.count(false, 1.2, 1.3);
        l.count(true, 10.0, 10.2);
        l.count(true, 10.1, 12.5);
        l.count(true, 11.0, 11.4);
        l.count(false, 12.6, 12.7);
        let (w, ..) = l.finish();
        assert_eq!((w.sent, w.failed), (6, 4));
        assert_eq!(
            w.outage,
            Some(Outage {
                from_s: 10.0,
                to_s: 12.5,
                failed: 3
            })
        );
    }

    #[test]
    fn an_outage_the_run_ended_in_counts_and_none_without_failures() {
        let mut l = WriteLedger::default();
        l.count(false, 1.0, 1.1);
        l.count(true, 5.0, 5.5);
        let (w, ..) = l.finish();
        assert_eq!(w.outage.map(|o| o.seconds()), Some(0.5));
        let mut healthy = WriteLedger::default();
        healthy.count(false, 1.0, 1.1);
        assert_eq!(healthy.finish().0.outage, None);
    }

    fn stall(l: WriteLedger) -> Option<Stall> {
        l.finish().0.stall
    }

    #[test]
    fn writes_that_wait_through_a_failover_are_a_stall_and_no_outage() {
        let mut l = WriteLedger::default();
        l.count(false, 19.80, 19.90);
        // The primary dies at 20 s; these wait in the pool until the
        // standby is promoted, and succeed at 30.4–30.5 s.
        for i in 0..5 {
            let sent = 20.0 + f64::from(i) * 0.1;
            l.count(false, sent, 30.4 + f64::from(i) * 0.02);
        }
        l.count(false, 30.6, 30.65);
        let (w, ..) = l.finish();
        assert_eq!(w.outage, None, "none failed");
        // From the first waiting write's sending to the first success.
        let s = w.stall.unwrap();
        assert_eq!((s.from_s, s.to_s, s.writes), (20.0, 30.4, 1));
    }

    #[test]
    fn failing_writes_stall_from_the_last_success_to_the_next() {
        let mut l = WriteLedger::default();
        l.count(false, 1.9, 2.0);
        // Refused one after another for a second, as a promotion does.
        for i in 0..10 {
            let sent = 2.01 + f64::from(i) * 0.1;
            l.count(true, sent, sent + 0.01);
        }
        l.count(false, 3.05, 3.1);
        let s = stall(l).unwrap();
        assert!(
            (s.from_s - 2.01).abs() < 1e-9 && (s.to_s - 3.1).abs() < 1e-9,
            "{s:?}"
        );
        assert_eq!(s.writes, 11);
    }

    #[test]
    fn a_healthy_run_stalls_no_longer_than_its_slowest_write() {
        let mut l = WriteLedger::default();
        l.count(false, 1.0, 1.05);
        l.count(false, 2.0, 2.30);
        l.count(false, 3.0, 3.02);
        let s = stall(l).unwrap();
        assert!((s.seconds() - 0.30).abs() < 1e-9, "{s:?}");
        assert_eq!(s.writes, 1);
        assert_eq!(stall(WriteLedger::default()), None, "no writes, no stall");
    }

    #[test]
    fn a_run_that_ends_failing_ends_in_its_stall() {
        let mut l = WriteLedger::default();
        l.count(false, 0.0, 0.1);
        for i in 0..300 {
            let sent = 1.0 + f64::from(i) * 0.01;
            l.count(true, sent, sent + 0.002);
        }
        let (w, ..) = l.finish();
        let s = w.stall.unwrap();
        assert!(
            (s.from_s - 1.0).abs() < 1e-9 && (s.to_s - 3.992).abs() < 1e-9,
            "{s:?}"
        );
        assert_eq!(s.writes, 300);
        assert!(s.seconds() >= w.outage.unwrap().seconds());
    }

    #[test]
    fn past_the_cap_the_oldest_acknowledged_writes_go() {
        let mut l = WriteLedger::default();
        let write = |id: usize| Acknowledged {
            upload: Upload {
                id: id.to_string(),
                request: "register".into(),
                sha256: String::new(),
                size: 0,
                replica: "r1".into(),
                at_s: 0.0,
            },
            read: format!("/fhir/Patient?_id={id}"),
            rule: ReadRule::default(),
        };
        for id in 0..AUDIT_CAP + 2 {
            l.acknowledge(write(id));
        }
        let (_, kept, dropped) = l.finish();
        assert_eq!((kept.len(), dropped), (AUDIT_CAP, 2));
        assert_eq!(kept[0].upload.id, "2");
    }
}
