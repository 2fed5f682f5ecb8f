//! The run's write ledger: every write (a request with a `consistency`
//! read-back) counted as it completes, the longest run of writes failing one
//! after another (the outage), and — with `[verify] audit` — the newest
//! acknowledged writes kept for the audit after the run
//! (`readback::audit`). Pure bookkeeping, no I/O.

use crate::bundle::{Outage, Writes};
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
}

impl WriteLedger {
    /// Counts a write that completed: sent at `from_s`, ended at `to_s`
    /// (seconds of the run). A success ends the outage in progress.
    pub fn count(&mut self, failed: bool, from_s: f64, to_s: f64) {
        self.writes.sent += 1;
        if !failed {
            self.close();
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
