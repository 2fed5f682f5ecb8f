//! What the run has counted so far, for metrics sent out while it goes
//! (`surge run --metrics-out`): requests by name, replica and status
//! class, failures, arrivals and drops — cumulative, taken under the
//! recorder's lock in one pass over its cells, no histogram copied.

use super::Recorder;
use std::collections::BTreeMap;
use std::time::SystemTime;

/// A status class, as a label: `2xx` … `5xx`, or `none` for a request that
/// got no answer (a refused connection, a timeout).
pub fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(100..=199) => "1xx",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        Some(_) => "other",
        None => "none",
    }
}

/// The counts so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveCounts {
    /// When they were taken.
    pub at: Option<SystemTime>,
    /// Requests completed, by (request, replica, status class).
    pub requests: BTreeMap<(String, String, &'static str), u64>,
    /// Of those, the ones that failed (any class), by (request, replica).
    pub failures: BTreeMap<(String, String), u64>,
    /// Arrivals scheduled (open model).
    pub arrivals: u64,
    /// Arrivals dropped for want of a free user.
    pub dropped: u64,
}

impl Recorder {
    /// The counts so far, summed over the stages.
    pub fn counts(&self) -> LiveCounts {
        let state = self.lock();
        let mut out = LiveCounts {
            at: Some(SystemTime::now()),
            arrivals: state.arrivals.iter().sum(),
            dropped: state.dropped.iter().sum(),
            ..LiveCounts::default()
        };
        for ((_, request, replica), cell) in &state.cells {
            let request = self.requests.get(*request).cloned().unwrap_or_default();
            let replica = state
                .replicas
                .get(*replica as usize)
                .cloned()
                .unwrap_or_default();
            let mut answered = 0;
            for (status, n) in &cell.statuses {
                answered += n;
                *out.requests
                    .entry((
                        request.clone(),
                        replica.clone(),
                        status_class(Some(*status)),
                    ))
                    .or_default() += n;
            }
            let unanswered = (cell.ok + cell.failed()).saturating_sub(answered);
            if unanswered > 0 {
                *out.requests
                    .entry((request.clone(), replica.clone(), status_class(None)))
                    .or_default() += unanswered;
            }
            if cell.failed() > 0 {
                *out.failures.entry((request, replica)).or_default() += cell.failed();
            }
        }
        out
    }
}
