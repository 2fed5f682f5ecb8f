//! The run's writes (requests with a `consistency` read-back): how many
//! were sent and failed, the longest outage (writes failing one after
//! another), and the audit after the run that reads every acknowledged one
//! once more and counts those gone. What a database failover costs a
//! clinic: writes refused while it lasts, and acknowledged writes lost when
//! asynchronous replication had not carried them to the standby promoted in
//! its place. Plain data; the engine fills it.

use serde::{Deserialize, Serialize};

/// How many lost writes the bundle lists one by one (counts are complete).
pub const MAX_LOST_LISTED: usize = 1000;

/// The writes of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Writes {
    /// Writes that completed, acknowledged or failed.
    pub sent: u64,
    /// Of which failed.
    pub failed: u64,
    /// The longest run of writes that failed one after another, no write
    /// succeeding in between: the outage a failover causes. Scattered
    /// refusals (a 409 now and then) are short runs of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outage: Option<Outage>,
    /// The longest time no write succeeded while writes were sent: a
    /// failover whose clients wait (a pool holding them until a primary
    /// answers) rather than fail shows here, not in the outage. In a
    /// healthy run it is about the slowest write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall: Option<Stall>,
    /// The audit after the run (`[verify] audit = true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<WriteAudit>,
}

/// Writes that failed one after another.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Outage {
    /// When its first failed write was sent, seconds of the run.
    pub from_s: f64,
    /// When its last failed write ended, seconds of the run.
    pub to_s: f64,
    /// Writes that failed in it.
    pub failed: u64,
}

impl Outage {
    /// Its length, seconds.
    pub fn seconds(&self) -> f64 {
        (self.to_s - self.from_s).max(0.0)
    }
}

/// A time no write succeeded in while writes were sent: from the last
/// success before it, or the first write sent after that success when
/// later, to the next success (or, when the run ended in it, the last
/// write's end).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Stall {
    /// Its start, seconds of the run.
    pub from_s: f64,
    /// Its end, seconds of the run.
    pub to_s: f64,
    /// Writes that ended in it: those that failed, and the one whose
    /// success ended it (writes still waiting are not known until then).
    pub writes: u64,
}

impl Stall {
    /// Its length, seconds.
    pub fn seconds(&self) -> f64 {
        (self.to_s - self.from_s).max(0.0)
    }
}

impl Writes {
    /// The longest outage's length, seconds; 0 when no write failed.
    pub fn outage_s(&self) -> f64 {
        self.outage.map_or(0.0, |o| o.seconds())
    }

    /// The longest stall's length, seconds; None when no write was sent
    /// (or shards' stalls shared no time).
    pub fn stall_s(&self) -> Option<f64> {
        self.stall.map(|s| s.seconds())
    }

    /// Adds another shard's writes, whose second 0 is `offset_s` into this
    /// one's. Two shards' outages that overlap are one outage of the test;
    /// apart, the longer is kept. The test stalled only while every shard
    /// did: its stall is the time the shards' longest stalls share, none
    /// when they share none.
    pub fn add(&mut self, other: &Writes, offset_s: f64) {
        if other.sent > 0 {
            let theirs = other.stall.map(|s| Stall {
                from_s: s.from_s + offset_s,
                to_s: s.to_s + offset_s,
                ..s
            });
            self.stall = if self.sent == 0 {
                theirs
            } else {
                match (self.stall, theirs) {
                    (Some(m), Some(o)) if m.from_s.max(o.from_s) < m.to_s.min(o.to_s) => {
                        Some(Stall {
                            from_s: m.from_s.max(o.from_s),
                            to_s: m.to_s.min(o.to_s),
                            writes: m.writes + o.writes,
                        })
                    }
                    _ => None,
                }
            };
        }
        self.sent += other.sent;
        self.failed += other.failed;
        if let Some(o) = other.outage {
            let o = Outage {
                from_s: o.from_s + offset_s,
                to_s: o.to_s + offset_s,
                ..o
            };
            self.outage = Some(match self.outage {
                Some(m) if m.from_s <= o.to_s && o.from_s <= m.to_s => Outage {
                    from_s: m.from_s.min(o.from_s),
                    to_s: m.to_s.max(o.to_s),
                    failed: m.failed + o.failed,
                },
                Some(m) if m.seconds() >= o.seconds() => m,
                _ => o,
            });
        }
        if let Some(b) = &other.audit {
            self.audit
                .get_or_insert_with(WriteAudit::default)
                .add(b, offset_s);
        }
    }
}

/// Every acknowledged write read once more after the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WriteAudit {
    /// Writes acknowledged in the run (and ledgered for the audit).
    pub acknowledged: u64,
    /// Found after the run.
    pub present: u64,
    /// Gone after the run (404, 410, an empty search) until the audit's
    /// window closed: acknowledged, then lost.
    pub lost: u64,
    /// Found with other bytes than were written.
    pub changed: u64,
    /// No usable answer until the audit's window closed.
    pub unanswered: u64,
    /// Not read: past the ledger's cap (the oldest go), past the audit's
    /// time limit, or the run was stopped first.
    pub not_audited: u64,
    /// Reads the audit sent (load after the run, not the run's).
    #[serde(default)]
    pub reads: u64,
    /// The first [`MAX_LOST_LISTED`] lost writes, in the order they were
    /// acknowledged.
    pub lost_writes: Vec<LostWrite>,
}

impl WriteAudit {
    /// Whether every acknowledged write was answered for.
    pub fn complete(&self) -> bool {
        self.unanswered == 0 && self.not_audited == 0
    }

    /// Adds another shard's audit, whose second 0 is `offset_s` into this one's.
    pub fn add(&mut self, other: &WriteAudit, offset_s: f64) {
        self.acknowledged += other.acknowledged;
        self.present += other.present;
        self.lost += other.lost;
        self.changed += other.changed;
        self.unanswered += other.unanswered;
        self.not_audited += other.not_audited;
        self.reads += other.reads;
        self.lost_writes
            .extend(other.lost_writes.iter().map(|l| LostWrite {
                acknowledged_at_s: l.acknowledged_at_s + offset_s,
                ..l.clone()
            }));
        self.lost_writes
            .sort_by(|a, b| a.acknowledged_at_s.total_cmp(&b.acknowledged_at_s));
        self.lost_writes.truncate(MAX_LOST_LISTED);
    }
}

/// One acknowledged write that was gone after the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LostWrite {
    /// The request that wrote it.
    pub request: String,
    /// The id the server gave it (a server-made id, never patient data).
    pub id: String,
    /// The replica that acknowledged it.
    pub replica: String,
    /// When it was acknowledged, seconds of the run.
    pub acknowledged_at_s: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_outages_that_overlap_are_one_and_apart_the_longer_is_kept() {
        let shard = |from_s, to_s, failed| Writes {
            sent: 10,
            failed,
            outage: Some(Outage {
                from_s,
                to_s,
                failed,
            }),
            stall: None,
            audit: None,
        };
        let mut test = shard(2.0, 3.0, 4);
        // Began 1 s later: its 1.5–2.5 s is the test's 2.5–3.5 s.
        test.add(&shard(1.5, 2.5, 3), 1.0);
        assert_eq!(
            test.outage,
            Some(Outage {
                from_s: 2.0,
                to_s: 3.5,
                failed: 7
            })
        );
        assert_eq!((test.sent, test.failed), (20, 7));
        test.add(&shard(10.0, 10.5, 1), 0.0);
        assert!((test.outage_s() - 1.5).abs() < 1e-9, "the longer kept");
        assert_eq!(Writes::default().outage_s(), 0.0);
    }

    #[test]
    fn the_test_stalled_only_while_every_shard_did() {
        let shard = |sent, stall: Option<(f64, f64)>| Writes {
            sent,
            stall: stall.map(|(from_s, to_s)| Stall {
                from_s,
                to_s,
                writes: 3,
            }),
            ..Writes::default()
        };
        let mut test = Writes::default();
        test.add(&shard(10, Some((20.0, 30.5))), 0.0);
        // Began 1 s later: its 19.2–29.0 s is the test's 20.2–30.0 s.
        test.add(&shard(10, Some((19.2, 29.0))), 1.0);
        assert_eq!(
            test.stall,
            Some(Stall {
                from_s: 20.2,
                to_s: 30.0,
                writes: 6
            })
        );
        // A shard that wrote nothing says nothing of stalls.
        test.add(&shard(0, None), 0.0);
        assert!((test.stall_s().unwrap() - 9.8).abs() < 1e-9);
        // One whose longest stall was elsewhere: no time shared, none.
        test.add(&shard(10, Some((40.0, 40.3))), 0.0);
        assert_eq!(test.stall, None);
        assert_eq!(Writes::default().stall_s(), None);
    }

    #[test]
    fn shards_lost_writes_keep_the_earliest() {
        let lost = |at: f64| LostWrite {
            acknowledged_at_s: at,
            ..Default::default()
        };
        let mut a = WriteAudit {
            lost_writes: (0..MAX_LOST_LISTED)
                .map(|i| lost(10.0 + i as f64))
                .collect(),
            ..Default::default()
        };
        let b = WriteAudit {
            lost_writes: vec![lost(1.0)],
            ..Default::default()
        };
        a.add(&b, 2.0);
        assert_eq!(a.lost_writes.len(), MAX_LOST_LISTED);
        assert_eq!(a.lost_writes[0].acknowledged_at_s, 3.0);
    }
}
