//! The run's live counts as an OTLP/HTTP metrics export: the protobuf
//! `ExportMetricsServiceRequest` (its messages written here with prost, as
//! opentelemetry-proto's `metrics/v1`, `common/v1`, `resource/v1` and
//! `collector/metrics/v1` define them, only the fields surge sends).
//! Counters are cumulative monotonic sums from the run's start; latency is
//! a cumulative exponential histogram at scale [`SCHEMA`] (the buckets of
//! the native histograms, shifted: OTLP's bucket `i` is (base^i,
//! base^(i+1)], Prometheus' is (base^(i−1), base^i]). Names follow OTel's
//! conventions (`surge.requests`, unit `s`), which a Prometheus OTLP
//! receiver turns into the Remote-Write names (`surge_requests_total`,
//! `surge_request_duration_seconds`); the run id, scenario and shard are
//! attributes of every point, as they are labels there.

use crate::measure::live::{Buckets, LiveCounts, QUANTILES, SCHEMA};

/// `ExportMetricsServiceRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportMetricsServiceRequest {
    /// One resource: surge.
    #[prost(message, repeated, tag = "1")]
    pub resource_metrics: Vec<ResourceMetrics>,
}

/// `ExportMetricsServiceResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportMetricsServiceResponse {
    /// Set when the receiver took only part of the request.
    #[prost(message, optional, tag = "1")]
    pub partial_success: Option<ExportMetricsPartialSuccess>,
}

/// `ExportMetricsPartialSuccess`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportMetricsPartialSuccess {
    /// Points the receiver refused.
    #[prost(int64, tag = "1")]
    pub rejected_data_points: i64,
    /// Why.
    #[prost(string, tag = "2")]
    pub error_message: String,
}

/// `ResourceMetrics`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceMetrics {
    /// Who sends.
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    /// The metrics, in one scope.
    #[prost(message, repeated, tag = "2")]
    pub scope_metrics: Vec<ScopeMetrics>,
}

/// `Resource`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    /// `service.name` and the like.
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

/// `ScopeMetrics`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeMetrics {
    /// surge, its version.
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    /// The metrics.
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
}

/// `InstrumentationScope`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstrumentationScope {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Version.
    #[prost(string, tag = "2")]
    pub version: String,
}

/// `KeyValue` with a string `AnyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    /// Key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Value.
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

/// `AnyValue`, the string kind (`string_value`, one of its `oneof`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    /// The string.
    #[prost(string, optional, tag = "1")]
    pub string_value: Option<String>,
}

/// `Metric`: one of a gauge, a sum or an exponential histogram.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    /// Name, e.g. `surge.requests`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// What it is.
    #[prost(string, tag = "2")]
    pub description: String,
    /// UCUM unit: `s`, or an annotation such as `{request}`.
    #[prost(string, tag = "3")]
    pub unit: String,
    /// A gauge.
    #[prost(message, optional, tag = "5")]
    pub gauge: Option<Gauge>,
    /// A sum.
    #[prost(message, optional, tag = "7")]
    pub sum: Option<Sum>,
    /// An exponential histogram.
    #[prost(message, optional, tag = "10")]
    pub exponential_histogram: Option<ExponentialHistogram>,
}

/// `Gauge`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Gauge {
    /// Points.
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<NumberDataPoint>,
}

/// `Sum`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sum {
    /// Points.
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<NumberDataPoint>,
    /// [`CUMULATIVE`].
    #[prost(int32, tag = "2")]
    pub aggregation_temporality: i32,
    /// Counts only grow.
    #[prost(bool, tag = "3")]
    pub is_monotonic: bool,
}

/// `AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE`.
pub const CUMULATIVE: i32 = 2;

/// `NumberDataPoint`, the double kind.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NumberDataPoint {
    /// Attributes (Prometheus labels).
    #[prost(message, repeated, tag = "7")]
    pub attributes: Vec<KeyValue>,
    /// Since when it counts, ns since the epoch.
    #[prost(fixed64, tag = "2")]
    pub start_time_unix_nano: u64,
    /// When, ns since the epoch.
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    /// Its value (`as_double`).
    #[prost(double, optional, tag = "4")]
    pub as_double: Option<f64>,
}

/// `ExponentialHistogram`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExponentialHistogram {
    /// Points.
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<ExponentialHistogramDataPoint>,
    /// [`CUMULATIVE`].
    #[prost(int32, tag = "2")]
    pub aggregation_temporality: i32,
}

/// `ExponentialHistogramDataPoint`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExponentialHistogramDataPoint {
    /// Attributes.
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
    /// Since when it counts.
    #[prost(fixed64, tag = "2")]
    pub start_time_unix_nano: u64,
    /// When.
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    /// Values counted.
    #[prost(fixed64, tag = "4")]
    pub count: u64,
    /// Their sum.
    #[prost(double, optional, tag = "5")]
    pub sum: Option<f64>,
    /// Buckets per power of two: 2^scale.
    #[prost(sint32, tag = "6")]
    pub scale: i32,
    /// Values of zero.
    #[prost(fixed64, tag = "7")]
    pub zero_count: u64,
    /// The positive buckets.
    #[prost(message, optional, tag = "8")]
    pub positive: Option<ExponentialBuckets>,
}

/// `ExponentialHistogramDataPoint.Buckets`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExponentialBuckets {
    /// Index of the first count.
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    /// Consecutive buckets' counts.
    #[prost(uint64, repeated, tag = "2")]
    pub bucket_counts: Vec<u64>,
}

/// Most points one export carries, as [`super::remote_write::MAX_SERIES`]
/// for Remote-Write; the rest are left out and counted.
pub const MAX_POINTS: usize = super::remote_write::MAX_SERIES;

/// An export: the body, and the points left out by the cap.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    /// `Content-Type: application/x-protobuf`.
    pub body: Vec<u8>,
    /// Points over [`MAX_POINTS`], not sent.
    pub over_cap: usize,
}

fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            string_value: Some(value.to_owned()),
        }),
    }
}

/// The metrics of one export, gathered with the points' shared parts.
struct Gather<'a> {
    common: &'a [(&'a str, &'a str)],
    start_ns: u64,
    at_ns: u64,
    metrics: Vec<Metric>,
}

impl Gather<'_> {
    fn attributes(&self, own: &[(&str, &str)]) -> Vec<KeyValue> {
        self.common
            .iter()
            .chain(own)
            .map(|(k, v)| attribute(k, v))
            .collect()
    }

    /// A metric of numbers, a point per `(attributes, value)`: a
    /// cumulative monotonic sum, or a gauge; nothing when it has no point.
    fn numbers<'v>(
        &mut self,
        kind: Numbers,
        name: &str,
        unit: &str,
        description: &str,
        points: impl IntoIterator<Item = (Vec<(&'v str, &'v str)>, f64)>,
    ) {
        let start_time_unix_nano = match kind {
            Numbers::Counter => self.start_ns,
            Numbers::Gauge => 0,
        };
        let data_points: Vec<NumberDataPoint> = points
            .into_iter()
            .map(|(own, value)| NumberDataPoint {
                attributes: self.attributes(&own),
                start_time_unix_nano,
                time_unix_nano: self.at_ns,
                as_double: Some(value),
            })
            .collect();
        if data_points.is_empty() {
            return;
        }
        let (sum, gauge) = match kind {
            Numbers::Counter => (
                Some(Sum {
                    data_points,
                    aggregation_temporality: CUMULATIVE,
                    is_monotonic: true,
                }),
                None,
            ),
            Numbers::Gauge => (None, Some(Gauge { data_points })),
        };
        self.metrics.push(Metric {
            name: name.into(),
            description: description.into(),
            unit: unit.into(),
            sum,
            gauge,
            ..Metric::default()
        });
    }
}

/// What a metric of numbers is.
#[derive(Clone, Copy)]
enum Numbers {
    /// A cumulative monotonic sum since the run's start.
    Counter,
    /// A value now.
    Gauge,
}

/// The buckets as an OTLP point's: dense from the first bucket that holds
/// values, OTLP's index one below Prometheus'.
fn exponential(buckets: &Buckets) -> ExponentialBuckets {
    let (Some((&first, _)), Some((&last, _))) = (
        buckets.positive.first_key_value(),
        buckets.positive.last_key_value(),
    ) else {
        return ExponentialBuckets::default();
    };
    ExponentialBuckets {
        offset: first - 1,
        bucket_counts: (first..=last)
            .map(|i| buckets.positive.get(&i).copied().unwrap_or(0))
            .collect(),
    }
}

/// The counts as one OTLP export of points at `at_ns`, counting since
/// `start_ns` (ns since the epoch); `labels` go on every point (the run
/// id, the scenario, the shard).
pub fn encode(counts: &LiveCounts, labels: &[(&str, &str)], start_ns: u64, at_ns: u64) -> Export {
    let mut out = Gather {
        common: labels,
        start_ns,
        at_ns,
        metrics: Vec::new(),
    };
    let one = |value: u64| [(Vec::new(), value as f64)];
    out.numbers(
        Numbers::Counter,
        "surge.arrivals",
        "{arrival}",
        "Arrivals scheduled",
        one(counts.arrivals),
    );
    out.numbers(
        Numbers::Counter,
        "surge.dropped_arrivals",
        "{arrival}",
        "Arrivals dropped for want of a free user",
        one(counts.dropped),
    );
    out.numbers(
        Numbers::Gauge,
        "surge.users.busy",
        "{user}",
        "Users in the middle of an iteration",
        one(counts.users_busy),
    );
    let s = counts.sessions;
    out.numbers(
        Numbers::Counter,
        "surge.sessions",
        "{session}",
        "Sessions accepted",
        one(s.accepted),
    );
    out.numbers(
        Numbers::Counter,
        "surge.session.switches",
        "{request}",
        "Requests served by another replica than the session's last",
        one(s.switches),
    );
    out.numbers(
        Numbers::Counter,
        "surge.session.drops",
        "{session}",
        "Sessions dropped",
        one(s.dropped),
    );
    out.numbers(
        Numbers::Counter,
        "surge.requests",
        "{request}",
        "Requests completed",
        counts
            .requests
            .iter()
            .map(|((request, replica, class), n)| {
                let own = vec![
                    ("request", request.as_str()),
                    ("replica", replica),
                    ("class", *class),
                ];
                (own, *n as f64)
            }),
    );
    out.numbers(
        Numbers::Counter,
        "surge.request.failures",
        "{request}",
        "Requests that did not meet their expectations",
        counts.failures.iter().map(|((request, replica), n)| {
            (
                vec![("request", request.as_str()), ("replica", replica)],
                *n as f64,
            )
        }),
    );
    let histograms: Vec<ExponentialHistogramDataPoint> = counts
        .latency
        .iter()
        .map(
            |((request, replica), buckets)| ExponentialHistogramDataPoint {
                attributes: out.attributes(&[("request", request), ("replica", replica)]),
                start_time_unix_nano: start_ns,
                time_unix_nano: at_ns,
                count: buckets.count,
                sum: Some(buckets.sum_seconds()),
                scale: SCHEMA,
                zero_count: buckets.zero,
                positive: Some(exponential(buckets)),
            },
        )
        .collect();
    if !histograms.is_empty() {
        out.metrics.push(Metric {
            name: "surge.request.duration".into(),
            description: "From when a request was due to its last byte".into(),
            unit: "s".into(),
            exponential_histogram: Some(ExponentialHistogram {
                data_points: histograms,
                aggregation_temporality: CUMULATIVE,
            }),
            ..Metric::default()
        });
    }
    out.numbers(
        Numbers::Counter,
        "surge.upload.reads",
        "{read}",
        "Upload and replica pairs judged, by verdict",
        counts.uploads.iter().map(|((replica, verdict), n)| {
            (
                vec![("replica", replica.as_str()), ("verdict", *verdict)],
                *n as f64,
            )
        }),
    );
    out.numbers(
        Numbers::Counter,
        "surge.read_backs",
        "{request}",
        "Requests sent to read uploads back",
        counts.readbacks.iter().map(|((replica, way), n)| {
            (
                vec![("replica", replica.as_str()), ("way", *way)],
                *n as f64,
            )
        }),
    );
    out.numbers(
        Numbers::Counter,
        "surge.read_back.failures",
        "{request}",
        "Read-backs answered with an error or not at all",
        counts
            .readback_failures
            .iter()
            .map(|(replica, n)| (vec![("replica", replica.as_str())], *n as f64)),
    );
    out.numbers(
        Numbers::Counter,
        "surge.chaos.events",
        "{event}",
        "Chaos actions, by outcome",
        counts.chaos.iter().map(|((action, outcome), n)| {
            (
                vec![("action", action.as_str()), ("outcome", *outcome)],
                *n as f64,
            )
        }),
    );
    let quantile_names: Vec<String> = QUANTILES.iter().map(f64::to_string).collect();
    out.numbers(
        Numbers::Gauge,
        "surge.request.duration.quantile",
        "s",
        "p50, p95, p99 over the run so far, from HDR histograms",
        counts.quantiles.iter().flat_map(|(request, values)| {
            quantile_names.iter().zip(values).map(move |(q, value)| {
                (
                    vec![("request", request.as_str()), ("quantile", q.as_str())],
                    *value,
                )
            })
        }),
    );
    let over_cap = cap(&mut out.metrics, MAX_POINTS);
    let request = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![attribute("service.name", "surge")],
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "surge".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                }),
                metrics: out.metrics,
            }],
        }],
    };
    Export {
        body: prost::Message::encode_to_vec(&request),
        over_cap,
    }
}

/// The points a metric carries.
fn points_in(m: &Metric) -> usize {
    m.gauge.as_ref().map_or(0, |g| g.data_points.len())
        + m.sum.as_ref().map_or(0, |s| s.data_points.len())
        + m.exponential_histogram
            .as_ref()
            .map_or(0, |h| h.data_points.len())
}

/// Keeps the first `max` points, in order; how many were left out.
fn cap(metrics: &mut Vec<Metric>, max: usize) -> usize {
    let mut room = max;
    let mut over = 0;
    for m in metrics.iter_mut() {
        let n = points_in(m);
        let keep = n.min(room);
        over += n - keep;
        room -= keep;
        if let Some(g) = m.gauge.as_mut() {
            g.data_points.truncate(keep);
        }
        if let Some(s) = m.sum.as_mut() {
            s.data_points.truncate(keep);
        }
        if let Some(h) = m.exponential_histogram.as_mut() {
            h.data_points.truncate(keep);
        }
    }
    metrics.retain(|m| points_in(m) > 0);
    over
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn decoded(export: &Export) -> Vec<Metric> {
        let request =
            <ExportMetricsServiceRequest as prost::Message>::decode(export.body.as_slice())
                .unwrap();
        request.resource_metrics[0].scope_metrics[0].metrics.clone()
    }

    #[test]
    fn counts_become_cumulative_sums_and_an_exponential_histogram() {
        let mut b = Buckets::default();
        for us in [1_000, 1_000, 1_100, 4_000] {
            b.add(us, us);
        }
        let counts = LiveCounts {
            requests: BTreeMap::from([(("search".into(), "r1".into(), "2xx"), 4)]),
            latency: BTreeMap::from([(("search".into(), "r1".into()), b)]),
            arrivals: 4,
            ..LiveCounts::default()
        };
        let export = encode(&counts, &[("run_id", "r-1")], 1_000, 2_000);
        assert_eq!(export.over_cap, 0);
        let metrics = decoded(&export);
        let requests = metrics.iter().find(|m| m.name == "surge.requests").unwrap();
        let sum = requests.sum.as_ref().unwrap();
        assert!(sum.is_monotonic && sum.aggregation_temporality == CUMULATIVE);
        let point = &sum.data_points[0];
        assert_eq!(point.as_double, Some(4.0));
        assert_eq!(
            (point.start_time_unix_nano, point.time_unix_nano),
            (1_000, 2_000)
        );
        let keys: Vec<&str> = point.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["run_id", "request", "replica", "class"]);
        let duration = metrics
            .iter()
            .find(|m| m.name == "surge.request.duration")
            .unwrap();
        assert_eq!(duration.unit, "s");
        let point = &duration.exponential_histogram.as_ref().unwrap().data_points[0];
        assert_eq!((point.count, point.scale), (4, 3));
        let positive = point.positive.as_ref().unwrap();
        // 1 ms is in Prometheus' bucket -79, OTLP's -80; dense to 4 ms.
        assert_eq!(positive.offset, Buckets::index(0.001) - 1);
        let n = (Buckets::index(0.004) - Buckets::index(0.001) + 1) as usize;
        assert_eq!(positive.bucket_counts.len(), n);
        assert_eq!(positive.bucket_counts[..2], [2, 1]);
        assert_eq!(positive.bucket_counts.iter().sum::<u64>(), 4);
        // OTLP's bucket i is (base^i, base^(i+1)]: 1 ms lies in the first.
        let base = 2f64.powf(1.0 / 8.0);
        let (low, high) = (base.powi(positive.offset), base.powi(positive.offset + 1));
        assert!(low < 0.001 && 0.001 <= high, "{low} {high}");
        // Nothing measured, nothing sent as if it were.
        assert!(metrics.iter().all(|m| m.name != "surge.chaos.events"));
    }

    #[test]
    fn points_over_the_cap_are_left_out_and_counted() {
        let requests = (0..MAX_POINTS + 5)
            .map(|i| ((format!("r{i}"), "x".to_owned(), "2xx"), 1))
            .collect();
        let counts = LiveCounts {
            requests,
            ..LiveCounts::default()
        };
        let export = encode(&counts, &[], 0, 1);
        // The six single points (arrivals … session drops) come first.
        assert_eq!(export.over_cap, 11);
        let kept: usize = decoded(&export)
            .iter()
            .map(|m| {
                m.sum.as_ref().map_or(0, |s| s.data_points.len())
                    + m.gauge.as_ref().map_or(0, |g| g.data_points.len())
            })
            .sum();
        assert_eq!(kept, MAX_POINTS);
    }
}
