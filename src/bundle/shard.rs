//! What a shard's bundle says about its part of a sharded test, and what a
//! merged bundle says about the shards it was made of.

use serde::{Deserialize, Serialize};

/// What a run of a scenario must exercise, whatever its thresholds say: the
/// built-in checks judge a run (or a merge of shards) against it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Expectations {
    /// Every request the scenario defines (not auth's own login or token).
    pub scenario_requests: Vec<String>,
    /// Requests some persona with a weight above 0 sends, not marked optional.
    pub requests: Vec<String>,
    /// Whether such a request stores something to be read back.
    pub uploads: bool,
}

/// Most feeder rows a ledger lists one by one (beyond, it counts them).
pub const MAX_LEDGER_ROWS: usize = 10_000;

/// Which rows of a feeder file a shard handed out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeederLedger {
    /// Feeder name.
    pub name: String,
    /// Data rows in its file (all shards together).
    pub file_rows: u64,
    /// Rows this shard handed out.
    pub used_count: u64,
    /// Their row numbers in the file (0-based), the first
    /// [`MAX_LEDGER_ROWS`] of them.
    pub used: Vec<u64>,
}

/// One shard's part of a sharded test.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// 0-based index.
    pub index: u32,
    /// Shards in the test.
    pub count: u32,
    /// SHA-256 of the scenario file, its feeder rows and the command line's
    /// changes: every shard of one test has the same.
    pub fingerprint: String,
    /// The machine (the pod's name in Kubernetes).
    pub host: String,
    /// The instant the shards were to begin at (`--start-at`), RFC 3339.
    pub start_at: Option<String>,
    /// When this shard's load began, ms since the Unix epoch.
    pub began_unix_ms: u64,
    /// How long after `start_at` it began, ms.
    pub late_ms: Option<f64>,
    /// What the scenario must exercise, for the merged verdict.
    pub expectations: Expectations,
    /// Which feeder rows this shard used.
    pub feeders: Vec<FeederLedger>,
}

/// What a merged bundle was made of.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MergeInfo {
    /// The shards merged, by index.
    pub shards: Vec<ShardInfo>,
    /// Their bundles' run ids.
    pub run_ids: Vec<String>,
    /// Shards the test had that were not merged (`--allow-partial`).
    pub missing: Vec<u32>,
    /// Latest begin minus earliest, ms: how far apart the shards began.
    pub start_spread_ms: f64,
}
