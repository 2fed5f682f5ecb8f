//! OTLP/HTTP to Prometheus 3.16's OTLP receiver (built from its Go module
//! by `targets/prometheus/build.sh`: Debian's 2.42 has none): the counts
//! are the bundle's, the exponential histograms give each request's count
//! and a p95 in the bucket of HDR's.

use super::*;
use crate::common::*;
use surge::run::metrics_out::MetricsTarget;
use surge::run::RunRequest;
use surge_sim::ClusterOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_otlp_receiver_gets_the_bundles_counts_and_exponential_histograms() {
    let _engine = engine_lock().await;
    let prometheus = prometheus_with_otlp().await;
    let cluster = cluster(ClusterOptions {
        replicas: 2,
        balancing: surge_sim::balancer::Balancing::RoundRobin,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let request = RunRequest {
        scenario: scenario(dir.path(), &cluster.url),
        out_dir: dir.path().join("runs"),
        metrics_out: vec![MetricsTarget::Otlp(format!(
            "{}/api/v1/otlp/v1/metrics",
            prometheus.url
        ))],
        ..Default::default()
    };
    let report = surge::run::run(&request).await.expect("run completes");
    cluster.shutdown().await;
    let r = &report.results;
    assert!(r.passed(), "{:?}", r.checks);
    let pushed = &r.metrics_out[0];
    assert_eq!(pushed.kind, "otlp");
    assert!(pushed.pushed >= 2, "{pushed:?}");
    assert_eq!((pushed.failed, pushed.dropped), (0, 0), "{pushed:?}");
    assert_eq!(pushed.histograms, "exponential", "{pushed:?}");
    // Requests per request, replica and class, as the bundle's.
    let expected = assert_requests_as_bundle(&prometheus.url, r).await;
    assert!(expected.len() >= 2, "both requests answered: {expected:?}");
    let arrivals = value_of(
        &prometheus.url,
        &format!("surge_arrivals_total{{run_id=\"{}\"}}", r.run_id),
    )
    .await;
    assert_eq!(arrivals as u64, r.totals.arrivals);
    // The exponential histograms, as native ones: each request's count is
    // the bundle's, its p95 in the bucket of HDR's; the gauge is HDR's.
    assert_latency_as_bundle(&prometheus.url, r).await;
    dashboard_queries_run(
        &prometheus.url,
        &r.run_id,
        &[
            "sum(rate(surge_arrivals_total",
            "sum by (request) (rate(surge_requests_total",
            "histogram_quantile(0.95, sum by (request) (rate(surge_request_duration_seconds{",
            "max by (request, quantile) (surge_request_duration_quantile_seconds",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_an_otlp_receiver_refuses_make_a_failed_push_said_by_count() {
    let _engine = engine_lock().await;
    let cluster = cluster(ClusterOptions {
        replicas: 1,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    // 200, but three points refused, with words that must not be repeated.
    let refusal =
        prost::Message::encode_to_vec(&surge::report::otlp::ExportMetricsServiceResponse {
            partial_success: Some(surge::report::otlp::ExportMetricsPartialSuccess {
                rejected_data_points: 3,
                error_message: "label value Okello Amina too long".into(),
            }),
        });
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        refusal.len()
    )
    .into_bytes();
    answer.extend_from_slice(&refusal);
    let (base, receiver) = receiver_answering(answer.clone(), answer).await;
    let request = RunRequest {
        scenario: scenario(dir.path(), &cluster.url),
        out_dir: dir.path().join("runs"),
        metrics_out: vec![MetricsTarget::Otlp(format!("{base}/v1/metrics"))],
        ..Default::default()
    };
    let report = surge::run::run(&request).await.expect("run completes");
    cluster.shutdown().await;
    receiver.abort();
    let pushed = &report.results.metrics_out[0];
    assert_eq!(pushed.pushed, 0, "{pushed:?}");
    assert!(pushed.failed >= 2, "{pushed:?}");
    assert_eq!(
        pushed.last_error.as_deref(),
        Some("the receiver refused 3 points"),
        "{pushed:?}"
    );
    let json = std::fs::read_to_string(report.bundle.join("summary.json")).unwrap();
    assert!(
        !json.contains("Okello"),
        "the receiver's words are not kept"
    );
}
