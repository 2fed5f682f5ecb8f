//! The run's live counts as a Prometheus Remote-Write 1.0 request: the
//! protobuf `WriteRequest` (its messages written here with prost, as
//! `prompb/types.proto` and `remote.proto` define them), snappy-compressed
//! in the block format the spec requires. Series are named `surge_*` and
//! labelled only with names the scenario declares (request names), the
//! replicas the run met, status classes and the run's own labels; at most
//! [`MAX_SERIES`] a push.

use crate::measure::live::{Buckets, LiveCounts, QUANTILES, SCHEMA};

/// Most series one push carries; the rest are left out and counted.
pub const MAX_SERIES: usize = 2_000;

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Its labels, sorted by name, `__name__` among them.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Its samples, oldest first.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Its native histograms, oldest first.
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Histogram>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// Value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.Histogram`, the integer kind (its `oneof`s written as the
/// optional fields they are on the wire); positive buckets only.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    /// Values counted (`count_int`).
    #[prost(uint64, optional, tag = "1")]
    pub count_int: Option<u64>,
    /// Their sum.
    #[prost(double, tag = "3")]
    pub sum: f64,
    /// Buckets per power of two: 2^schema.
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    /// Values at or below this are in the zero bucket.
    #[prost(double, tag = "5")]
    pub zero_threshold: f64,
    /// The zero bucket's count (`zero_count_int`).
    #[prost(uint64, optional, tag = "6")]
    pub zero_count_int: Option<u64>,
    /// Runs of consecutive buckets.
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: Vec<BucketSpan>,
    /// Each bucket's count less the one before it (the first: less zero).
    #[prost(sint64, repeated, tag = "12")]
    pub positive_deltas: Vec<i64>,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
}

/// `prometheus.BucketSpan`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BucketSpan {
    /// The first span: its first bucket's index; the others: buckets
    /// skipped since the span before.
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    /// Buckets in the run.
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

/// A push: the compressed body, and the series left out by the cap.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    /// `Content-Encoding: snappy`, `Content-Type: application/x-protobuf`.
    pub body: Vec<u8>,
    /// Series over [`MAX_SERIES`], not sent.
    pub over_cap: usize,
}

/// How latency goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistogramForm {
    /// One native histogram series per (request, replica).
    Native,
    /// Classic `_bucket{le}`, `_sum` and `_count` series at
    /// [`CLASSIC_BOUNDS`].
    Classic,
}

/// The classic buckets' bounds, as indices of [`Buckets`]: √2 apart (every
/// fourth native bound, so each classic count is a sum of native buckets)
/// from 2^-10 s (about 1 ms) to 64 s. The same for every run and shard:
/// classic histograms add only where their bounds are the same, and a
/// bound may never change within a series.
pub const CLASSIC_BOUNDS: std::ops::RangeInclusive<i32> = -80..=48;

/// Steps between classic bounds, in native buckets.
const CLASSIC_STEP: usize = 4;

/// A Prometheus label value for a bound: Go's shortest float text.
fn le(index: i32) -> String {
    format!("{}", Buckets::upper_bound(index))
}

/// The native histogram of `buckets` at `at`.
fn native(buckets: &Buckets, at: i64) -> Histogram {
    let mut spans: Vec<BucketSpan> = Vec::new();
    let mut deltas = Vec::new();
    let (mut previous_index, mut previous_count) = (None, 0i64);
    for (&index, &count) in &buckets.positive {
        match previous_index {
            Some(p) if index == p + 1 => spans.last_mut().expect("a span is open").length += 1,
            Some(p) => spans.push(BucketSpan {
                offset: index - p - 1,
                length: 1,
            }),
            None => spans.push(BucketSpan {
                offset: index,
                length: 1,
            }),
        }
        deltas.push(count as i64 - previous_count);
        (previous_index, previous_count) = (Some(index), count as i64);
    }
    Histogram {
        count_int: Some(buckets.count),
        sum: buckets.sum_seconds(),
        schema: SCHEMA,
        zero_threshold: 0.0,
        zero_count_int: Some(buckets.zero),
        positive_spans: spans,
        positive_deltas: deltas,
        timestamp: at,
    }
}

/// Series being gathered for one push, in families that go whole or not
/// at all (a classic histogram without its `+Inf` bucket would mislead).
struct Series<'a> {
    common: &'a [(&'a str, &'a str)],
    at: i64,
    families: Vec<Vec<TimeSeries>>,
}

impl Series<'_> {
    fn labels(&self, name: &str, own: &[(&str, &str)]) -> Vec<Label> {
        let mut all: Vec<Label> = std::iter::once(("__name__", name))
            .chain(self.common.iter().copied())
            .chain(own.iter().copied())
            .map(|(n, v)| Label {
                name: n.to_owned(),
                value: v.to_owned(),
            })
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    fn one(&self, name: &str, own: &[(&str, &str)], value: f64) -> TimeSeries {
        TimeSeries {
            labels: self.labels(name, own),
            samples: vec![Sample {
                value,
                timestamp: self.at,
            }],
            histograms: Vec::new(),
        }
    }

    fn sample(&mut self, name: &str, own: &[(&str, &str)], value: f64) {
        let series = self.one(name, own, value);
        self.families.push(vec![series]);
    }

    fn latency(&mut self, own: &[(&str, &str); 2], buckets: &Buckets, form: HistogramForm) {
        let family = match form {
            HistogramForm::Native => vec![TimeSeries {
                labels: self.labels("surge_request_duration_seconds", own),
                samples: Vec::new(),
                histograms: vec![native(buckets, self.at)],
            }],
            HistogramForm::Classic => {
                let name = "surge_request_duration_seconds_bucket";
                let mut family: Vec<TimeSeries> = CLASSIC_BOUNDS
                    .step_by(CLASSIC_STEP)
                    .map(|bound| {
                        let le = le(bound);
                        let n = buckets.at_or_below(bound) as f64;
                        self.one(name, &[own[0], own[1], ("le", &le)], n)
                    })
                    .collect();
                let n = buckets.count as f64;
                family.push(self.one(name, &[own[0], own[1], ("le", "+Inf")], n));
                family.push(self.one("surge_request_duration_seconds_count", own, n));
                let sum = buckets.sum_seconds();
                family.push(self.one("surge_request_duration_seconds_sum", own, sum));
                family
            }
        };
        self.families.push(family);
    }

    /// The families that fit under [`MAX_SERIES`], first come first; how
    /// many series were left out.
    fn capped(self) -> (Vec<TimeSeries>, usize) {
        let mut kept = Vec::new();
        let mut over = 0;
        for family in self.families {
            if kept.len() + family.len() <= MAX_SERIES {
                kept.extend(family);
            } else {
                over += family.len();
            }
        }
        (kept, over)
    }
}

/// The counts as one Remote-Write request of samples at `at` (ms since
/// the epoch), latency as `form` says; `labels` go on every series (the
/// test, the run id, the scenario, the shard). Under the cap, the run's
/// own figures come first, then requests, latency, the gauges, and the
/// uploads, read-backs and chaos events.
pub fn encode(counts: &LiveCounts, labels: &[(&str, &str)], at: i64, form: HistogramForm) -> Push {
    let mut out = Series {
        common: labels,
        at,
        families: Vec::new(),
    };
    out.sample("surge_arrivals_total", &[], counts.arrivals as f64);
    out.sample("surge_dropped_arrivals_total", &[], counts.dropped as f64);
    out.sample("surge_users_busy", &[], counts.users_busy as f64);
    out.sample("surge_sessions_total", &[], counts.sessions.accepted as f64);
    out.sample(
        "surge_session_switches_total",
        &[],
        counts.sessions.switches as f64,
    );
    out.sample(
        "surge_session_drops_total",
        &[],
        counts.sessions.dropped as f64,
    );
    for ((request, replica, class), n) in &counts.requests {
        let own = [
            ("request", request.as_str()),
            ("replica", replica),
            ("class", class),
        ];
        out.sample("surge_requests_total", &own, *n as f64);
    }
    for ((request, replica), n) in &counts.failures {
        let own = [("request", request.as_str()), ("replica", replica)];
        out.sample("surge_request_failures_total", &own, *n as f64);
    }
    for ((request, replica), buckets) in &counts.latency {
        out.latency(&[("request", request), ("replica", replica)], buckets, form);
    }
    for (request, values) in &counts.quantiles {
        for (q, value) in QUANTILES.iter().zip(values) {
            let q = q.to_string();
            let own = [("request", request.as_str()), ("quantile", q.as_str())];
            out.sample("surge_request_duration_quantile_seconds", &own, *value);
        }
    }
    for ((replica, verdict), n) in &counts.uploads {
        let own = [("replica", replica.as_str()), ("verdict", verdict)];
        out.sample("surge_upload_reads_total", &own, *n as f64);
    }
    for ((replica, way), n) in &counts.readbacks {
        let own = [("replica", replica.as_str()), ("way", way)];
        out.sample("surge_read_backs_total", &own, *n as f64);
    }
    for (replica, n) in &counts.readback_failures {
        let own = [("replica", replica.as_str())];
        out.sample("surge_read_back_failures_total", &own, *n as f64);
    }
    for ((action, outcome), n) in &counts.chaos {
        let own = [("action", action.as_str()), ("outcome", outcome)];
        out.sample("surge_chaos_events_total", &own, *n as f64);
    }
    let (series, over_cap) = out.capped();
    let request = WriteRequest { timeseries: series };
    let bytes = prost::Message::encode_to_vec(&request);
    let body = snap::raw::Encoder::new()
        .compress_vec(&bytes)
        .expect("snappy compresses any buffer under 4 GiB");
    Push { body, over_cap }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn decoded(push: &Push) -> WriteRequest {
        let bytes = snap::raw::Decoder::new()
            .decompress_vec(&push.body)
            .unwrap();
        <WriteRequest as prost::Message>::decode(bytes.as_slice()).unwrap()
    }

    #[test]
    fn counts_become_sorted_labelled_series_at_their_time() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_796_000_000_123);
        let counts = LiveCounts {
            at: Some(at),
            requests: BTreeMap::from([
                (("search".into(), "r1".into(), "2xx"), 40),
                (("search".into(), "r2".into(), "5xx"), 2),
            ]),
            failures: BTreeMap::from([(("search".into(), "r2".into()), 2)]),
            arrivals: 42,
            dropped: 1,
            ..LiveCounts::default()
        };
        let push = encode(
            &counts,
            &[("run_id", "r-1"), ("scenario", "clinic")],
            1_796_000_000_123,
            HistogramForm::Native,
        );
        assert_eq!(push.over_cap, 0);
        let request = decoded(&push);
        // Arrivals, drops, busy users, sessions, switches, session drops,
        // two request series and one failure series.
        assert_eq!(request.timeseries.len(), 9);
        let find = |name: &str, replica: &str| {
            request
                .timeseries
                .iter()
                .find(|s| {
                    s.labels
                        .iter()
                        .any(|l| l.name == "__name__" && l.value == name)
                        && (replica.is_empty()
                            || s.labels
                                .iter()
                                .any(|l| l.name == "replica" && l.value == replica))
                })
                .unwrap()
                .clone()
        };
        let r2 = find("surge_requests_total", "r2");
        let names: Vec<&str> = r2.labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            ["__name__", "class", "replica", "request", "run_id", "scenario"]
        );
        assert_eq!(
            r2.samples,
            [Sample {
                value: 2.0,
                timestamp: 1_796_000_000_123
            }]
        );
        assert_eq!(find("surge_arrivals_total", "").samples[0].value, 42.0);
        assert_eq!(
            find("surge_request_failures_total", "r2").samples[0].value,
            2.0
        );
    }

    #[test]
    fn series_over_the_cap_are_left_out_and_counted() {
        let requests = (0..MAX_SERIES + 5)
            .map(|i| ((format!("r{i}"), "x".to_owned(), "2xx"), 1))
            .collect();
        let counts = LiveCounts {
            requests,
            ..LiveCounts::default()
        };
        let push = encode(&counts, &[], 0, HistogramForm::Native);
        assert_eq!(push.over_cap, 11);
        assert_eq!(decoded(&push).timeseries.len(), MAX_SERIES);
    }

    fn with_latency(values_us: &[u64]) -> LiveCounts {
        let mut b = Buckets::default();
        for v in values_us {
            b.add(*v, *v);
        }
        LiveCounts {
            latency: BTreeMap::from([(("search".to_owned(), "r1".to_owned()), b)]),
            ..LiveCounts::default()
        }
    }

    fn named<'a>(request: &'a WriteRequest, name: &str) -> Vec<&'a TimeSeries> {
        request
            .timeseries
            .iter()
            .filter(|s| {
                s.labels
                    .iter()
                    .any(|l| l.name == "__name__" && l.value == name)
            })
            .collect()
    }

    #[test]
    fn native_histograms_carry_spans_and_deltas_of_the_buckets() {
        // 1 ms twice, 1.1 ms (the next bucket), 4 ms (gap), 0.
        let counts = with_latency(&[1_000, 1_000, 1_100, 4_000, 0]);
        let push = encode(&counts, &[], 7, HistogramForm::Native);
        let request = decoded(&push);
        let series = named(&request, "surge_request_duration_seconds");
        let h = &series[0].histograms[0];
        assert_eq!(
            (h.count_int, h.zero_count_int, h.schema),
            (Some(5), Some(1), 3)
        );
        let first = Buckets::index(0.001);
        assert_eq!(
            h.positive_spans,
            [
                BucketSpan {
                    offset: first,
                    length: 2
                },
                BucketSpan {
                    offset: Buckets::index(0.004) - first - 2,
                    length: 1
                },
            ]
        );
        assert_eq!(h.positive_deltas, [2, -1, 0]);
        assert_eq!(h.timestamp, 7);
        assert!((h.sum - 0.0071).abs() < 1e-5, "{}", h.sum);
    }

    #[test]
    fn classic_buckets_are_cumulative_at_the_fixed_bounds() {
        let counts = with_latency(&[2_000, 3_000, 40_000, 900_000, 100_000_000]);
        let push = encode(&counts, &[], 0, HistogramForm::Classic);
        let request = decoded(&push);
        let buckets = named(&request, "surge_request_duration_seconds_bucket");
        // 1/1024 s to 64 s, √2 apart, and +Inf.
        assert_eq!(buckets.len(), 33 + 1);
        let at = |le: &str| {
            buckets
                .iter()
                .find(|s| s.labels.iter().any(|l| l.name == "le" && l.value == le))
                .map(|s| s.samples[0].value)
        };
        assert_eq!(at("0.0009765625"), Some(0.0));
        assert_eq!(at("0.00390625"), Some(2.0));
        assert_eq!(at("0.0625"), Some(3.0));
        assert_eq!(at("64"), Some(4.0));
        assert_eq!(at("+Inf"), Some(5.0));
        // Cumulative: never fewer at a higher bound.
        let mut by_le: Vec<(f64, f64)> = buckets
            .iter()
            .map(|s| {
                let le = s.labels.iter().find(|l| l.name == "le").unwrap();
                (le.value.parse::<f64>().unwrap(), s.samples[0].value)
            })
            .collect();
        by_le.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(by_le.windows(2).all(|w| w[0].1 <= w[1].1), "{by_le:?}");
        let count = named(&request, "surge_request_duration_seconds_count");
        assert_eq!(count[0].samples[0].value, 5.0);
        let sum = named(&request, "surge_request_duration_seconds_sum");
        assert_eq!(sum[0].samples[0].value, 100.945);
        assert!(named(&request, "surge_request_duration_seconds").is_empty());
    }

    #[test]
    fn a_histogram_goes_whole_or_not_at_all_under_the_cap() {
        // Series enough that the last classic histogram cannot fit whole.
        let mut counts = with_latency(&[2_000]);
        counts.requests = (0..MAX_SERIES - 20)
            .map(|i| ((format!("r{i}"), "x".to_owned(), "2xx"), 1))
            .collect();
        counts.chaos = BTreeMap::from([(("kill-pod oldest".to_owned(), "done"), 1)]);
        let push = encode(&counts, &[], 0, HistogramForm::Classic);
        let request = decoded(&push);
        // 6 run series + 1980 requests fit; the 36-series histogram does
        // not, and is left out whole; the chaos series after it still fits.
        assert_eq!(push.over_cap, 36);
        assert!(named(&request, "surge_request_duration_seconds_bucket").is_empty());
        assert!(named(&request, "surge_request_duration_seconds_count").is_empty());
        assert_eq!(named(&request, "surge_chaos_events_total").len(), 1);
        assert_eq!(request.timeseries.len(), 6 + MAX_SERIES - 20 + 1);
    }
}
