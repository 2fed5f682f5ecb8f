//! The attachment-consistency verdict as `summary.json` keeps it: verdict
//! counts per replica, the time until visible everywhere, and the problems.

use super::Percentiles;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The verdict on one upload as seen from one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The same bytes on the first read.
    Ok,
    /// Missing at first, the same bytes later (replication lag).
    Stale,
    /// Never there within the window.
    Missing,
    /// Different bytes (hash or size).
    Corrupted,
    /// No usable answer.
    Error,
    /// Not read back (the run stopped first, or no read reached this replica).
    Unverified,
}

impl Verdict {
    /// Name used in reports (as in `summary.json`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Stale => "stale",
            Verdict::Missing => "missing",
            Verdict::Corrupted => "corrupted",
            Verdict::Error => "error",
            Verdict::Unverified => "unverified",
        }
    }

    /// Every verdict, in report order.
    pub const ALL: [Verdict; 6] = [
        Verdict::Ok,
        Verdict::Stale,
        Verdict::Missing,
        Verdict::Corrupted,
        Verdict::Error,
        Verdict::Unverified,
    ];
}

/// One problem, for the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// Upload id.
    pub id: String,
    /// Request that uploaded it.
    pub request: String,
    /// Replica that took the upload.
    pub uploaded_on: String,
    /// Replica read.
    pub replica: String,
    /// Verdict there.
    pub verdict: Verdict,
    /// When the right bytes appeared, ms after the upload (stale ones).
    pub visible_after_ms: Option<u64>,
}

/// Verdict counts on one replica.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicaCounts {
    /// Replica.
    pub replica: String,
    /// Counts by verdict.
    pub verdicts: BTreeMap<Verdict, u64>,
}

/// How many problems a verdict lists one by one.
pub const MAX_PROBLEMS: usize = 1000;

/// The consistency verdict of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConsistencyVerdict {
    /// Uploads ledgered.
    pub uploads: u64,
    /// Verdicts over all (upload, replica) pairs.
    pub verdicts: BTreeMap<Verdict, u64>,
    /// Per replica.
    pub replicas: Vec<ReplicaCounts>,
    /// Uploads seen with the right bytes on every replica read.
    pub visible_everywhere: u64,
    /// Time from upload until visible on every replica read, ms.
    pub visible: Percentiles,
    /// Problems (the first [`MAX_PROBLEMS`]; counts above are complete).
    pub problems: Vec<Problem>,
    /// Uploads that succeeded but could not be read back: the answer did not
    /// name the stored object, or the read-back path could not be made.
    #[serde(default)]
    pub unverifiable: u64,
    /// Why, with how many uploads each (request name and reason; never values
    /// from the answer, which may be patient data).
    #[serde(default)]
    pub unverifiable_reasons: BTreeMap<String, u64>,
    /// Why (upload, replica) pairs ended as `error`, by `replica: what the
    /// last read met` (a status, `connect`, `timeout`), with counts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
    /// The requests sent to read uploads back: load the cluster carried.
    #[serde(default)]
    pub read_backs: super::ReadBackTraffic,
    /// The writes (requests with a read-back): sent, failed, and the
    /// audit after the run.
    #[serde(default)]
    pub writes: super::Writes,
}

impl ConsistencyVerdict {
    /// How long uploads took to be visible everywhere, for people; never a
    /// percentile of nothing: `visible everywhere: 12 of 12 uploads (p50 3
    /// ms, p99 9 ms)` or `no upload became visible everywhere`.
    pub fn visible_text(&self) -> String {
        if self.visible_everywhere == 0 {
            return "no upload became visible everywhere".to_owned();
        }
        format!(
            "visible everywhere: {} of {} uploads (p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms)",
            self.visible_everywhere,
            self.uploads,
            self.visible.p50,
            self.visible.p95,
            self.visible.p99,
            self.visible.max
        )
    }

    /// Count of one verdict.
    pub fn count(&self, v: Verdict) -> u64 {
        self.verdicts.get(&v).copied().unwrap_or(0)
    }
}
