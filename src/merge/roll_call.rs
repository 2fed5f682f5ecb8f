//! Which shards the bundles hold: each a shard of the same test (one
//! fingerprint, one shard count), each shard once, none missing unless
//! allowed; and where each one's second 0 sits on the common clock.

use super::MergeError;
use crate::bundle::{CellHistograms, TimelineHistograms};
use crate::bundle::{RunResults, ShardInfo, SCHEMA_VERSION};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;

/// One bundle to merge, as read from disk.
pub struct ShardBundle {
    /// Where it came from, for messages.
    pub name: String,
    /// Its `summary.json`.
    pub results: RunResults,
    /// Its cells' histograms, in `results.cells` order.
    pub histograms: Vec<CellHistograms>,
    /// Its time-until-visible histogram of uploads.
    pub visible: Option<Histogram<u64>>,
    /// Its per-second histograms.
    pub timeline: TimelineHistograms,
}

impl ShardBundle {
    /// The shards this part holds: its own, or those of a merge.
    fn shards(&self) -> Result<Vec<ShardInfo>, MergeError> {
        match (&self.results.shard, &self.results.merged) {
            (Some(shard), _) => Ok(vec![shard.clone()]),
            (None, Some(merged)) => Ok(merged.shards.clone()),
            (None, None) => Err(MergeError::NotAShard {
                name: self.name.clone(),
            }),
        }
    }

    /// When its load began, ms since the Unix epoch.
    fn began_ms(&self) -> Result<u64, MergeError> {
        Ok(self
            .shards()?
            .iter()
            .map(|s| s.began_unix_ms)
            .min()
            .unwrap_or(0))
    }
}

/// The shards the bundles hold, checked.
pub(super) struct RollCall {
    /// The first bundle's first shard: the test every other must belong to.
    pub reference: ShardInfo,
    /// Every shard held, by index.
    pub shards: Vec<ShardInfo>,
    /// The run ids merged (a merged bundle's own, or a shard's).
    pub run_ids: Vec<String>,
    /// Shards of the test no bundle holds.
    pub missing: Vec<u32>,
}

/// Takes the roll call of `parts`; with `allow_partial`, shards may be missing.
pub(super) fn roll_call(
    parts: &[ShardBundle],
    allow_partial: bool,
) -> Result<RollCall, MergeError> {
    let first = parts.first().ok_or(MergeError::Nothing)?;
    let reference = first.shards()?.remove(0);
    let mut held: BTreeMap<u32, String> = BTreeMap::new();
    let mut shards = Vec::new();
    let mut run_ids = Vec::new();
    for part in parts {
        if part.results.schema_version != SCHEMA_VERSION {
            return Err(MergeError::Schema {
                name: part.name.clone(),
                found: part.results.schema_version,
            });
        }
        for shard in part.shards()? {
            if shard.fingerprint != reference.fingerprint || shard.count != reference.count {
                let short = |f: &str| f[..f.len().min(12)].to_owned();
                return Err(MergeError::OtherTest(Box::new(super::error::OtherTest {
                    name: part.name.clone(),
                    index: shard.index,
                    count: shard.count,
                    scenario: part.results.scenario.clone(),
                    fingerprint: short(&shard.fingerprint),
                    first: first.name.clone(),
                    first_index: reference.index,
                    first_count: reference.count,
                    first_fingerprint: short(&reference.fingerprint),
                })));
            }
            if let Some(other) = held.insert(shard.index, part.name.clone()) {
                return Err(MergeError::Twice {
                    index: shard.index,
                    count: shard.count,
                    first: other,
                    second: part.name.clone(),
                });
            }
            shards.push(shard);
        }
        match &part.results.merged {
            Some(m) => run_ids.extend(m.run_ids.iter().cloned()),
            None => run_ids.push(part.results.run_id.clone()),
        }
    }
    let missing: Vec<u32> = (0..reference.count)
        .filter(|i| !held.contains_key(i))
        .collect();
    if !missing.is_empty() && !allow_partial {
        return Err(MergeError::Missing {
            missing,
            count: reference.count,
        });
    }
    shards.sort_by_key(|s| s.index);
    Ok(RollCall {
        reference,
        shards,
        run_ids,
        missing,
    })
}

/// Where each bundle's second 0 sits on the common clock.
pub(super) struct Clock {
    /// When each bundle's load began, ms since the Unix epoch.
    pub began: Vec<u64>,
    /// The earliest of them.
    pub origin: u64,
    /// Each bundle's second 0, in seconds after the origin.
    pub offsets: Vec<u64>,
}

impl Clock {
    pub(super) fn of(parts: &[ShardBundle]) -> Result<Clock, MergeError> {
        let began: Vec<u64> = parts
            .iter()
            .map(ShardBundle::began_ms)
            .collect::<Result<_, _>>()?;
        let origin = began.iter().copied().min().unwrap_or(0);
        let offsets = began
            .iter()
            .map(|b| ((b - origin) as f64 / 1000.0).round() as u64)
            .collect();
        Ok(Clock {
            began,
            origin,
            offsets,
        })
    }

    /// The latest of `value(part) + its offset`: a length on the common clock.
    pub(super) fn latest(&self, parts: &[ShardBundle], value: impl Fn(&RunResults) -> f64) -> f64 {
        parts
            .iter()
            .zip(&self.offsets)
            .map(|(p, o)| value(&p.results) + *o as f64)
            .fold(0.0, f64::max)
    }
}
