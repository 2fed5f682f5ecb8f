//! The run's writes (requests with a `consistency` read-back): how many
//! were sent, the window in which they failed, and the audit after the
//! run that reads every acknowledged one once more and counts those gone.
//! What a database failover costs a clinic: writes refused while it lasts,
//! and acknowledged writes lost when asynchronous replication had not
//! carried them to the standby promoted in its place.

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
    /// When the first failed write was sent, seconds of the run.
    pub failed_from_s: Option<f64>,
    /// When the last failed write ended, seconds of the run.
    pub failed_to_s: Option<f64>,
    /// The audit after the run (`[verify] audit = true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<WriteAudit>,
}

impl Writes {
    /// Seconds from the first failed write's start to the last one's end;
    /// 0 when none failed.
    pub fn failed_window_s(&self) -> f64 {
        match (self.failed_from_s, self.failed_to_s) {
            (Some(from), Some(to)) => (to - from).max(0.0),
            _ => 0.0,
        }
    }

    /// Counts one completed write, sent at `from_s` and ended at `to_s`.
    pub fn count(&mut self, failed: bool, from_s: f64, to_s: f64) {
        self.sent += 1;
        if failed {
            self.failed += 1;
            self.failed_from_s = Some(self.failed_from_s.map_or(from_s, |f| f.min(from_s)));
            self.failed_to_s = Some(self.failed_to_s.map_or(to_s, |t| t.max(to_s)));
        }
    }

    /// Adds another shard's writes, whose second 0 is `offset_s` into
    /// this one's.
    pub fn add(&mut self, other: &Writes, offset_s: f64) {
        self.sent += other.sent;
        self.failed += other.failed;
        let pick = |a: Option<f64>, b: Option<f64>, f: fn(f64, f64) -> f64| match (a, b) {
            (Some(a), Some(b)) => Some(f(a, b + offset_s)),
            (a, b) => a.or(b.map(|b| b + offset_s)),
        };
        self.failed_from_s = pick(self.failed_from_s, other.failed_from_s, f64::min);
        self.failed_to_s = pick(self.failed_to_s, other.failed_to_s, f64::max);
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
    /// Writes acknowledged in the run (and read back by the ledger).
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
    /// Not read: past the ledger's cap, or the run was stopped first.
    pub not_audited: u64,
    /// The first [`MAX_LOST_LISTED`] lost writes.
    pub lost_writes: Vec<LostWrite>,
}

impl WriteAudit {
    /// Writes the audit had an answer for: what `lost` rests on.
    pub fn answered(&self) -> u64 {
        self.present + self.lost + self.changed
    }

    /// Adds another shard's audit, whose second 0 is `offset_s` into this one's.
    pub fn add(&mut self, other: &WriteAudit, offset_s: f64) {
        self.acknowledged += other.acknowledged;
        self.present += other.present;
        self.lost += other.lost;
        self.changed += other.changed;
        self.unanswered += other.unanswered;
        self.not_audited += other.not_audited;
        let room = MAX_LOST_LISTED.saturating_sub(self.lost_writes.len());
        self.lost_writes
            .extend(other.lost_writes.iter().take(room).map(|l| LostWrite {
                acknowledged_at_s: l.acknowledged_at_s + offset_s,
                ..l.clone()
            }));
        self.lost_writes
            .sort_by(|a, b| a.acknowledged_at_s.total_cmp(&b.acknowledged_at_s));
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
    fn the_failure_window_runs_from_the_first_failed_write_sent_to_the_last_ended() {
        let mut w = Writes::default();
        w.count(false, 1.0, 1.1);
        assert_eq!((w.sent, w.failed, w.failed_window_s()), (1, 0, 0.0));
        w.count(true, 2.0, 2.5);
        w.count(false, 2.6, 2.7);
        w.count(true, 3.0, 3.4);
        assert_eq!((w.sent, w.failed), (4, 2));
        assert!((w.failed_window_s() - 1.4).abs() < 1e-9);
        // A shard that began 1 s later failed a write at its 0.5 s.
        let mut shard = Writes::default();
        shard.count(true, 0.5, 0.6);
        w.add(&shard, 1.0);
        assert_eq!((w.sent, w.failed), (5, 3));
        assert!((w.failed_window_s() - 1.9).abs() < 1e-9);
        assert_eq!(w.failed_from_s, Some(1.5));
    }
}
