//! Why bundles cannot be merged into one test: one variant per refusal,
//! each naming the bundle at fault.

use crate::bundle::SCHEMA_VERSION;
use crate::scenario::threshold::ThresholdError;

/// Why a merge was refused.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MergeError {
    /// No bundle given.
    #[error("nothing to merge: give the shards' bundles")]
    Nothing,
    /// A whole run's bundle, not a shard's.
    #[error("{name} is not a shard's bundle: run each part with `surge run --shard I/N`")]
    NotAShard { name: String },
    /// Written by a surge with another bundle schema.
    #[error("{name} has schema_version {found}, this surge merges {SCHEMA_VERSION}")]
    Schema { name: String, found: u32 },
    /// A shard of another test (fingerprint or shard count differ).
    #[error("{0}")]
    OtherTest(Box<OtherTest>),
    /// One shard in two bundles.
    #[error("shard {index} of {count} is in both {first} and {second}: each shard once")]
    Twice {
        index: u32,
        count: u32,
        first: String,
        second: String,
    },
    /// Shards no bundle holds, and partial merges not allowed.
    #[error("shards {missing:?} of {count} are missing (merge every shard's bundle, or --allow-partial to merge what is here and say so)")]
    Missing { missing: Vec<u32>, count: u32 },
    /// A bundle whose histograms are not its cells'.
    #[error("{name}: its histograms do not match its cells")]
    CellsAndHistograms { name: String },
    /// A bundle without per-second histograms.
    #[error("{name} holds no per-second histograms ({file}): it was written by an older surge, and its timeline cannot be merged exactly")]
    NoTimeline { name: String, file: &'static str },
    /// A histogram that does not decode.
    #[error("{name}: {why}")]
    Histogram { name: String, why: String },
    /// Histograms that cannot be added (their bounds differ).
    #[error("cannot add histograms: {0}")]
    Add(String),
    /// A threshold in a bundle that does not parse again.
    #[error("{name}: a threshold does not read back: {error}")]
    Threshold { name: String, error: ThresholdError },
}

/// A shard of another test than the first bundle's, with what tells them apart.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{name} is shard {index} of {count} of another test (scenario {scenario:?}, fingerprint {fingerprint}…) than {first} (shard {first_index} of {first_count}, fingerprint {first_fingerprint}…): the scenario, its feeders or the command line differ")]
pub struct OtherTest {
    pub name: String,
    pub index: u32,
    pub count: u32,
    pub scenario: String,
    pub fingerprint: String,
    pub first: String,
    pub first_index: u32,
    pub first_count: u32,
    pub first_fingerprint: String,
}
