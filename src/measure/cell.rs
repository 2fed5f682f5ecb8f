//! A group of requests being summed (a stage × request × replica cell, or
//! a request, a replica, the whole run): its histograms and counts.

use super::new_hist;
use crate::bundle::*;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;

/// One group of requests being summed: its histograms and counts. The
/// recorder's cells, and a merge of shards' cells (`surge merge`).
pub struct Cell {
    pub(super) latency: Histogram<u64>,
    pub(super) service: Histogram<u64>,
    pub(super) ok: u64,
    pub(super) errors: BTreeMap<ErrorClass, u64>,
    pub(super) statuses: BTreeMap<u16, u64>,
}

impl Default for Cell {
    fn default() -> Self {
        Cell::new()
    }
}

impl Cell {
    /// A group as a bundle holds it: its histograms and its statistics'
    /// counts (ok, failures by class, statuses).
    pub fn from_bundle(latency: Histogram<u64>, service: Histogram<u64>, stats: &Stats) -> Self {
        Cell {
            latency,
            service,
            ok: stats.ok,
            errors: stats.errors.clone(),
            statuses: stats.statuses.clone(),
        }
    }

    /// The histograms, for a bundle.
    pub fn histograms(&self) -> CellHistograms {
        CellHistograms {
            latency: self.latency.clone(),
            service: self.service.clone(),
        }
    }

    pub(super) fn new() -> Self {
        Cell {
            latency: new_hist(),
            service: new_hist(),
            ok: 0,
            errors: BTreeMap::new(),
            statuses: BTreeMap::new(),
        }
    }

    pub(super) fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Adds this group into `into` (histograms exactly, counts summed).
    pub fn merge_into(&self, into: &mut Cell) {
        // Both auto-resize, so `add` cannot run out of range.
        into.latency
            .add(&self.latency)
            .expect("auto-resizing histograms merge");
        into.service
            .add(&self.service)
            .expect("auto-resizing histograms merge");
        into.ok += self.ok;
        for (k, v) in &self.errors {
            *into.errors.entry(*k).or_default() += v;
        }
        for (k, v) in &self.statuses {
            *into.statuses.entry(*k).or_default() += v;
        }
    }

    /// [`Cell::stats`] with the percentile curve.
    pub fn stats_with_curve(&self, name: &str, elapsed_s: f64) -> Stats {
        Stats {
            curve: curve(&self.latency),
            ..self.stats(name, elapsed_s)
        }
    }

    /// Statistics of the group over `elapsed_s` seconds.
    pub fn stats(&self, name: &str, elapsed_s: f64) -> Stats {
        let failed = self.failed();
        let count = self.ok + failed;
        Stats {
            name: name.to_owned(),
            count,
            ok: self.ok,
            failed,
            error_rate: if count == 0 {
                0.0
            } else {
                failed as f64 / count as f64
            },
            throughput: if elapsed_s > 0.0 {
                count as f64 / elapsed_s
            } else {
                0.0
            },
            latency: Percentiles::from_hist(&self.latency),
            service: Percentiles::from_hist(&self.service),
            errors: self.errors.clone(),
            statuses: self.statuses.clone(),
            curve: Vec::new(),
            issued: 0,
            not_sent: 0,
            not_sent_reasons: BTreeMap::new(),
            expectation_failures: BTreeMap::new(),
        }
    }
}
