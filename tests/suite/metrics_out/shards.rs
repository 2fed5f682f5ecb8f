//! The shards of one test, pushing to one Prometheus: every series carries
//! the same `test` label and its own `shard`, so the dashboard's sums over a
//! test are the shards' counts added — and no other run's.

use super::*;
use std::time::SystemTime;
use surge::run::metrics_out::MetricsTarget;
use surge::run::RunRequest;
use surge::scenario::shard::Shard;
use surge_sim::ClusterOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shards_of_one_test_share_its_label_and_their_sums_are_the_shards_counts() {
    let _engine = engine_lock().await;
    let prometheus = prometheus(true).await;
    let cluster = cluster(ClusterOptions {
        replicas: 2,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), &cluster.url);
    let start_at = SystemTime::now() + Duration::from_secs(2);
    let shard = |index| RunRequest {
        scenario: path.clone(),
        out_dir: dir.path().join(format!("runs-{index}")),
        shard: Shard::new(index, 2).unwrap(),
        start_at: Some(start_at),
        metrics_out: vec![MetricsTarget::Prometheus(format!(
            "{}/api/v1/write",
            prometheus.url
        ))],
        ..Default::default()
    };
    let (first, second) = (shard(0), shard(1));
    let (first, second) = tokio::join!(surge::run::run(&first), surge::run::run(&second));
    cluster.shutdown().await;
    let shards = [first.expect("shard 0 runs"), second.expect("shard 1 runs")];
    for s in &shards {
        let pushed = &s.results.metrics_out[0];
        assert_eq!((pushed.failed, pushed.dropped), (0, 0), "{pushed:?}");
    }
    // One test label for both, and each shard's own.
    let tests = by_label(
        &prometheus.url,
        "count by (test) (surge_arrivals_total{scenario=\"pushed\"})",
        "test",
    )
    .await;
    assert_eq!(tests.len(), 1, "{tests:?}");
    let (test, shard_count) = tests.into_iter().next().unwrap();
    assert_eq!(shard_count, 2);
    assert!(test.starts_with("shards-"), "{test}");
    let by_shard = by_label(
        &prometheus.url,
        &format!("sum by (shard) (surge_arrivals_total{{test=\"{test}\"}})"),
        "shard",
    )
    .await;
    let expected_by_shard: BTreeMap<String, u64> = shards
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("{i}/2"), s.results.totals.arrivals))
        .collect();
    assert_eq!(by_shard, expected_by_shard);
    // The test's sums are the shards' counts added, per request.
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for s in &shards {
        for stats in &s.results.requests {
            *expected.entry(stats.name.clone()).or_default() += stats.count;
        }
    }
    let got = by_label(
        &prometheus.url,
        &format!("sum by (request) (surge_requests_total{{test=\"{test}\"}})"),
        "request",
    )
    .await;
    assert_eq!(got, expected);
    let arrivals: u64 = shards.iter().map(|s| s.results.totals.arrivals).sum();
    assert_eq!(
        arrivals, 140,
        "the plan's arrivals, split between the shards"
    );
    dashboard_queries_run(
        &prometheus.url,
        &test,
        &[
            "sum(rate(surge_arrivals_total",
            "sum by (request) (rate(surge_requests_total",
            "histogram_quantile(0.95, sum by (request) (rate(surge_request_duration_seconds{",
        ],
    )
    .await;
}

#[test]
fn a_shard_pushing_metrics_without_a_start_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), "http://127.0.0.1:9");
    let request = RunRequest {
        scenario: path,
        out_dir: dir.path().join("runs"),
        shard: Shard::new(1, 2).unwrap(),
        metrics_out: vec![MetricsTarget::Prometheus(
            "http://127.0.0.1:9/api/v1/write".into(),
        )],
        ..Default::default()
    };
    let said = surge::run::prepare(&request).unwrap_err().to_string();
    assert!(
        said.contains("--shard 1/2") && said.contains("needs --start-at"),
        "{said}"
    );
    // With a start, or without metrics out, the shard is prepared.
    let with_start = RunRequest {
        start_at: Some(SystemTime::now() + Duration::from_secs(60)),
        ..request.clone()
    };
    assert!(surge::run::prepare(&with_start).is_ok());
    let without_metrics = RunRequest {
        metrics_out: Vec::new(),
        ..request
    };
    assert!(surge::run::prepare(&without_metrics).is_ok());
}
