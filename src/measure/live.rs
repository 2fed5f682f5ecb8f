//! What the run has measured so far, for metrics sent out while it goes
//! (`surge run --metrics-out`): requests by name, replica and status
//! class, failures, arrivals and drops, latency as base-2 exponential
//! buckets and each request's p50/p95/p99 — cumulative, taken under the
//! recorder's lock in one pass over its cells. The engine adds what other
//! parts of the run keep (sessions, uploads, read-backs).

use super::Recorder;
use crate::bundle::{ConsistencyVerdict, ReadBackReplica};
use hdrhistogram::Histogram;
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

/// The resolution of [`Buckets`]: each power of two split into 2^3
/// buckets, each bound 2^(1/8) ≈ 1.09 times the one below (Prometheus
/// native histogram schema 3; OTLP exponential histogram scale 3).
pub const SCHEMA: i32 = 3;

/// Latency so far as a base-2 exponential histogram in seconds: bucket
/// `i` holds the values in (2^((i−1)/8), 2^(i/8)] (Prometheus' indexing).
/// Each HDR value goes to the bucket of its highest equivalent value, the
/// value HDR's percentiles report, so a percentile read from these buckets
/// lands in the bucket that holds HDR's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    /// Values counted.
    pub count: u64,
    /// Their sum, seconds (each value at its HDR bucket's middle).
    pub sum: f64,
    /// Values of zero.
    pub zero: u64,
    /// Count per bucket index, only the buckets that hold values.
    pub positive: BTreeMap<i32, u64>,
}

impl Buckets {
    /// The bucket of a positive value in seconds.
    pub fn index(seconds: f64) -> i32 {
        // frexp-exact at the bounds would need more care than a latency
        // measured to 3 significant digits can use.
        (seconds.log2() * f64::from(1 << SCHEMA)).ceil() as i32
    }

    /// The upper bound of bucket `index`, seconds.
    pub fn upper_bound(index: i32) -> f64 {
        (f64::from(index) / f64::from(1 << SCHEMA)).exp2()
    }

    /// Adds an HDR histogram of microseconds.
    pub fn add_hdr_us(&mut self, h: &Histogram<u64>) {
        for v in h.iter_recorded() {
            let n = v.count_at_value();
            let us = h.highest_equivalent(v.value_iterated_to());
            self.count += n;
            self.sum += h.median_equivalent(v.value_iterated_to()) as f64 / 1e6 * n as f64;
            if us == 0 {
                self.zero += n;
            } else {
                *self
                    .positive
                    .entry(Buckets::index(us as f64 / 1e6))
                    .or_default() += n;
            }
        }
    }

    /// Values at or below the upper bound of bucket `index`.
    pub fn at_or_below(&self, index: i32) -> u64 {
        self.zero + self.positive.range(..=index).map(|(_, n)| n).sum::<u64>()
    }
}

/// Sessions so far (see `verify::session`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounts {
    /// Sessions the cluster accepted.
    pub accepted: u64,
    /// Requests served by another replica than the session's previous one.
    pub switches: u64,
    /// Sessions dropped: answered as unauthenticated after being accepted.
    pub dropped: u64,
}

/// The quantiles each request's gauges give.
pub const QUANTILES: [f64; 3] = [0.5, 0.95, 0.99];

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
    /// Latency (from when the request was due to its last byte), by
    /// (request, replica).
    pub latency: BTreeMap<(String, String), Buckets>,
    /// Per request: its [`QUANTILES`] over the run so far, seconds, as
    /// HDR gives them (the bundle's figures, once the run has ended).
    pub quantiles: BTreeMap<String, [f64; 3]>,
    /// Users in the middle of an iteration now.
    pub users_busy: u64,
    /// Sessions.
    pub sessions: SessionCounts,
    /// Uploads read back, by (replica read, verdict).
    pub uploads: BTreeMap<(String, &'static str), u64>,
    /// Read-back requests, by (replica, `direct` or `balancer`).
    pub readbacks: BTreeMap<(String, &'static str), u64>,
    /// Of those, the ones answered with an error or not at all, by replica.
    pub readback_failures: BTreeMap<String, u64>,
    /// Chaos events, by (action, outcome).
    pub chaos: BTreeMap<(String, &'static str), u64>,
}

impl LiveCounts {
    /// The run's last counts, once its last uploads have been read back:
    /// their verdicts and read-backs as the bundle has them, and the chaos
    /// events and busy users as of now.
    pub fn settle(&mut self, recorder: &Recorder, consistency: &ConsistencyVerdict) {
        self.at = Some(SystemTime::now());
        self.users_busy = recorder.users_busy();
        self.chaos = recorder.lock().chaos.clone();
        self.uploads = consistency
            .replicas
            .iter()
            .flat_map(|r| {
                r.verdicts
                    .iter()
                    .map(|(verdict, n)| ((r.replica.clone(), verdict.as_str()), *n))
            })
            .collect();
        self.readbacks.clear();
        self.readback_failures.clear();
        self.add_read_backs(&consistency.read_backs.replicas);
    }

    /// Sets the read-backs sent to each replica.
    pub fn add_read_backs<'a>(&mut self, replicas: impl IntoIterator<Item = &'a ReadBackReplica>) {
        for r in replicas {
            for (way, n) in [("direct", r.direct), ("balancer", r.through_balancer)] {
                if n > 0 {
                    self.readbacks.insert((r.replica.clone(), way), n);
                }
            }
            if r.failed > 0 {
                self.readback_failures.insert(r.replica.clone(), r.failed);
            }
        }
    }
}

impl Recorder {
    /// The counts so far, summed over the stages.
    pub fn counts(&self) -> LiveCounts {
        let state = self.lock();
        let mut out = LiveCounts {
            at: Some(SystemTime::now()),
            arrivals: state.arrivals.iter().sum(),
            dropped: state.dropped.iter().sum(),
            users_busy: self.users_busy(),
            chaos: state.chaos.clone(),
            ..LiveCounts::default()
        };
        let mut per_request: BTreeMap<&str, Histogram<u64>> = BTreeMap::new();
        for ((_, request, replica), cell) in &state.cells {
            let request_name = self.requests.get(*request).map_or("", String::as_str);
            let request = request_name.to_owned();
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
                *out.failures
                    .entry((request.clone(), replica.clone()))
                    .or_default() += cell.failed();
            }
            if !cell.latency.is_empty() {
                out.latency
                    .entry((request, replica))
                    .or_default()
                    .add_hdr_us(&cell.latency);
                let merged = per_request
                    .entry(request_name)
                    .or_insert_with(super::new_hist);
                // Both auto-resize: adding cannot fail for want of range.
                let _ = merged.add(&cell.latency);
            }
        }
        drop(state);
        out.quantiles = per_request
            .into_iter()
            .map(|(request, h)| {
                let at = |q| h.value_at_quantile(q) as f64 / 1e6;
                (request.to_owned(), QUANTILES.map(at))
            })
            .collect();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_bounds_are_powers_of_two_split_in_eight() {
        assert_eq!(Buckets::index(1.0), 0);
        assert_eq!(Buckets::index(1.05), 1);
        assert_eq!(Buckets::index(2.0), 8);
        assert_eq!(Buckets::index(0.5), -8);
        assert_eq!(Buckets::upper_bound(8), 2.0);
        for i in [-100, -8, -1, 0, 3, 40] {
            let inside = Buckets::upper_bound(i) * 0.99;
            assert_eq!(Buckets::index(inside), i, "{i}");
        }
    }

    #[test]
    fn hdr_values_land_in_the_buckets_of_their_reported_values() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for us in [0, 1_000, 1_000, 250_000, 2_000_000] {
            h.record(us).unwrap();
        }
        let mut b = Buckets::default();
        b.add_hdr_us(&h);
        assert_eq!((b.count, b.zero), (5, 1));
        assert_eq!(b.positive.values().sum::<u64>(), 4);
        assert_eq!(b.positive[&Buckets::index(0.001)], 2);
        assert_eq!(b.at_or_below(Buckets::index(0.3)), 4);
        assert!((b.sum - 2.252).abs() < 0.01, "{}", b.sum);
        // HDR's p95 lies in the bucket where the count passes 95 %.
        let p95 = h.value_at_quantile(0.95) as f64 / 1e6;
        let i = Buckets::index(p95);
        assert!(b.at_or_below(i) as f64 >= 0.95 * 5.0 && (b.at_or_below(i - 1) as f64) < 4.75);
    }
}
