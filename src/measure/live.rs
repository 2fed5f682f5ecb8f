//! What the run has measured so far, for metrics sent out while it goes
//! (`surge run --metrics-out`): requests by name, replica and status
//! class, failures, arrivals and drops, latency as base-2 exponential
//! buckets and each request's p50/p95/p99 — cumulative, taken under the
//! recorder's lock in one pass over its cells. The engine adds what other
//! parts of the run keep (sessions, uploads, read-backs).

use super::Recorder;
use crate::bundle::{ConsistencyVerdict, ReadBackReplica};
use hdrhistogram::Histogram;
use std::collections::{BTreeMap, HashMap};
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
/// Each value goes to the bucket of the value HDR reports for it (its
/// highest equivalent), so a percentile read from these buckets lands in
/// the bucket that holds HDR's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    /// Values counted.
    pub count: u64,
    /// Their sum, µs: an integer, so a sum never seems to shrink.
    pub sum_us: u128,
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

    /// Counts a value of `us` microseconds that HDR reports as `reported_us`.
    pub fn add(&mut self, us: u64, reported_us: u64) {
        self.count += 1;
        self.sum_us += u128::from(us);
        if reported_us == 0 {
            self.zero += 1;
        } else {
            *self
                .positive
                .entry(Buckets::index(reported_us as f64 / 1e6))
                .or_default() += 1;
        }
    }

    /// The sum, seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_us as f64 / 1e6
    }

    /// Values at or below the upper bound of bucket `index`.
    pub fn at_or_below(&self, index: i32) -> u64 {
        self.zero + self.positive.range(..=index).map(|(_, n)| n).sum::<u64>()
    }
}

/// Latency kept for the metrics sent out, as each request completes (only
/// when a run sends metrics out: the recorder's cells are not walked under
/// its lock for each push).
#[derive(Default)]
pub(crate) struct LiveLatency {
    /// By (request index, replica label index).
    pairs: HashMap<(usize, u32), Buckets>,
    /// By request index: every replica's, for the quantile gauges.
    per_request: Vec<Option<Box<Histogram<u64>>>>,
}

impl LiveLatency {
    /// A completed request of `us` microseconds.
    pub(crate) fn record(&mut self, request: usize, replica: u32, us: u64) {
        if self.per_request.len() <= request {
            self.per_request.resize_with(request + 1, || None);
        }
        let h = self.per_request[request].get_or_insert_with(|| Box::new(super::new_hist()));
        super::record_us(h, us);
        let reported = h.highest_equivalent(us);
        let replica = replica.min(MAX_REPLICA_LABELS);
        self.pairs
            .entry((request, replica))
            .or_default()
            .add(us, reported);
    }
}

/// Distinct replicas named in the metrics sent out; the rest are summed
/// under `other replicas` (a balancer naming replicas by a rotating cookie
/// would otherwise make a series per value).
pub const MAX_REPLICA_LABELS: u32 = 64;

/// The label of the replica the recorder knows as `index`.
fn replica_label(replicas: &[String], index: u32) -> String {
    if index >= MAX_REPLICA_LABELS {
        return "other replicas".into();
    }
    replicas.get(index as usize).cloned().unwrap_or_default()
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
    /// Keeps latency for the metrics sent out from now on.
    pub fn enable_live(&self) {
        self.lock().live.get_or_insert_with(LiveLatency::default);
    }

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
        let name = |request: usize| self.requests.get(request).cloned().unwrap_or_default();
        for ((_, request, replica), cell) in &state.cells {
            let request = name(*request);
            let replica = replica_label(&state.replicas, *replica);
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
        if let Some(live) = &state.live {
            for ((request, replica), buckets) in &live.pairs {
                let key = (name(*request), replica_label(&state.replicas, *replica));
                out.latency.insert(key, buckets.clone());
            }
            for (request, h) in live.per_request.iter().enumerate() {
                if let Some(h) = h.as_ref().filter(|h| !h.is_empty()) {
                    let at = |q| h.value_at_quantile(q) as f64 / 1e6;
                    out.quantiles.insert(name(request), QUANTILES.map(at));
                }
            }
        }
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
    fn values_land_in_the_buckets_of_their_reported_values() {
        let mut live = LiveLatency::default();
        let values = [
            1_000, 1_000, 250_000, 2_000_000, 1_999_999, 3, 70, 900, 12_345, 40,
        ];
        for us in values {
            live.record(0, 0, us);
        }
        let b = &live.pairs[&(0, 0)];
        assert_eq!((b.count, b.zero), (10, 0));
        assert_eq!(
            b.sum_us,
            values.iter().map(|v| u128::from(*v)).sum::<u128>()
        );
        assert_eq!(b.positive[&Buckets::index(0.001)], 2);
        assert_eq!(b.at_or_below(Buckets::index(0.3)), 8);
        // Every quantile HDR reports lies in the bucket where the count passes it.
        let h = live.per_request[0].as_ref().unwrap();
        for q in [0.1, 0.5, 0.8, 0.95, 0.99] {
            let reported = h.value_at_quantile(q) as f64 / 1e6;
            let i = Buckets::index(reported);
            let rank = (q * 10.0_f64).ceil() as u64;
            assert!(
                b.at_or_below(i) >= rank && b.at_or_below(i - 1) < rank,
                "q {q}: HDR says {reported} s, bucket {i}"
            );
        }
    }

    #[test]
    fn replicas_past_the_label_cap_are_summed_as_one() {
        let mut live = LiveLatency::default();
        live.record(0, MAX_REPLICA_LABELS, 5);
        live.record(0, MAX_REPLICA_LABELS + 7, 5);
        assert_eq!(live.pairs[&(0, MAX_REPLICA_LABELS)].count, 2);
        let names: Vec<String> = (0..70).map(|i| format!("r{i}")).collect();
        assert_eq!(replica_label(&names, 3), "r3");
        assert_eq!(replica_label(&names, 65), "other replicas");
    }
}
