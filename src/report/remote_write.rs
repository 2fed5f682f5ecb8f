//! The run's live counts as a Prometheus Remote-Write 1.0 request: the
//! protobuf `WriteRequest` (its messages written here with prost, as
//! `prompb/types.proto` and `remote.proto` define them), snappy-compressed
//! in the block format the spec requires. Series are named `surge_*` and
//! labelled only with names the scenario declares (request names), the
//! replicas the run met, status classes and the run's own labels; at most
//! [`MAX_SERIES`] a push.

use crate::measure::live::LiveCounts;

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

/// A push: the compressed body, and the series left out by the cap.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    /// `Content-Encoding: snappy`, `Content-Type: application/x-protobuf`.
    pub body: Vec<u8>,
    /// Series over [`MAX_SERIES`], not sent.
    pub over_cap: usize,
}

/// The counts as one Remote-Write request of samples at `at` (ms since
/// the epoch); `labels` go on every series (the run id, the scenario, the
/// shard).
pub fn encode(counts: &LiveCounts, labels: &[(&str, &str)], at: i64) -> Push {
    let mut series: Vec<TimeSeries> = Vec::new();
    let mut add = |name: &str, own: &[(&str, &str)], value: f64| {
        let mut all: Vec<Label> = std::iter::once(("__name__", name))
            .chain(labels.iter().copied())
            .chain(own.iter().copied())
            .map(|(n, v)| Label {
                name: n.to_owned(),
                value: v.to_owned(),
            })
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        series.push(TimeSeries {
            labels: all,
            samples: vec![Sample {
                value,
                timestamp: at,
            }],
        });
    };
    add("surge_arrivals_total", &[], counts.arrivals as f64);
    add("surge_dropped_arrivals_total", &[], counts.dropped as f64);
    for ((request, replica, class), n) in &counts.requests {
        add(
            "surge_requests_total",
            &[("request", request), ("replica", replica), ("class", class)],
            *n as f64,
        );
    }
    for ((request, replica), n) in &counts.failures {
        add(
            "surge_request_failures_total",
            &[("request", request), ("replica", replica)],
            *n as f64,
        );
    }
    let over_cap = series.len().saturating_sub(MAX_SERIES);
    series.truncate(MAX_SERIES);
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
        };
        let push = encode(
            &counts,
            &[("run_id", "r-1"), ("scenario", "clinic")],
            1_796_000_000_123,
        );
        assert_eq!(push.over_cap, 0);
        let request = decoded(&push);
        assert_eq!(request.timeseries.len(), 5);
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
        let push = encode(&counts, &[], 0);
        assert_eq!(push.over_cap, 7);
        assert_eq!(decoded(&push).timeseries.len(), MAX_SERIES);
    }
}
