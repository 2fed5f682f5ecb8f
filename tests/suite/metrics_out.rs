//! `surge run --metrics-out prometheus=URL` against a real Prometheus
//! (Debian's, its Remote-Write receiver on, on loopback): the counts it
//! received, by PromQL, are the bundle's, per request, replica and status
//! class, exactly; its native histograms' p95 lies in the bucket of HDR's
//! and the p95 gauge is HDR's; a Prometheus without native histograms gets
//! classic buckets, and the sessions, upload verdicts and read-backs are the
//! bundle's; a receiver that never answers never slows the run, whose
//! bundle is whole and says what the receiver missed.

use crate::common::*;
use std::collections::BTreeMap;
use std::time::Duration;
use surge::run::metrics_out::MetricsTarget;
use surge::run::RunRequest;
use surge::scenario::LoadOverride;
use surge_sim::ClusterOptions;

/// Prometheus with its Remote-Write receiver, scraping nothing.
struct Prometheus {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Prometheus (Debian's 2.42), taking native histograms or not.
async fn prometheus(native_histograms: bool) -> Prometheus {
    let binary = program("prometheus")
        .expect("prometheus (Debian's package) is installed: .ci/run installs it");
    let flags = [
        "--web.enable-remote-write-receiver",
        if native_histograms {
            "--enable-feature=native-histograms"
        } else {
            ""
        },
    ];
    start_prometheus(binary, &flags).await
}

/// Prometheus 3.16 with its OTLP receiver, built from its Go module by
/// `targets/prometheus/build.sh` (cached after the first build).
async fn prometheus_with_otlp() -> Prometheus {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("targets/prometheus/build.sh");
    let built = std::process::Command::new(&script)
        .output()
        .expect("targets/prometheus/build.sh runs");
    assert!(
        built.status.success(),
        "Prometheus 3.16 builds from its Go module: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let binary = std::path::PathBuf::from(String::from_utf8(built.stdout).unwrap().trim());
    start_prometheus(binary, &["--web.enable-otlp-receiver"]).await
}

/// `binary` with `flags`, its data in a folder of its own, on a loopback
/// port, scraping nothing; once it is ready.
async fn start_prometheus(binary: std::path::PathBuf, flags: &[&str]) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 15s\n").unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let mut child = std::process::Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .args(flags.iter().filter(|f| !f.is_empty()))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("prometheus starts");
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for _ in 0..150 {
        if let Ok(r) = http.get(format!("{url}/-/ready")).send().await {
            if r.status().is_success() {
                return Prometheus {
                    child,
                    _dir: dir,
                    url,
                };
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("prometheus never became ready");
}

/// A health check and a request that answers 404, at 20 arrivals a
/// second, through the balancer to two replicas.
fn scenario(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
    scenario_file(
        dir,
        "pushed",
        &format!(
            r#"[target]
base_url = "{url}"
replica_header = "X-Served-By"

[load]
model = "open"
[[load.stages]]
rate = 20
hold = "7s"

[[personas]]
name = "checker"
steps = [{{ request = "health" }}, {{ request = "missing" }}]

[requests.health]
path = "/healthz"

[requests.missing]
path = "/no-such-page"
expect = {{ status = [404] }}
"#
        ),
    )
}

/// A PromQL instant query's answer.
async fn promql(prometheus: &str, query: &str) -> serde_json::Value {
    let url =
        reqwest::Url::parse_with_params(&format!("{prometheus}/api/v1/query"), [("query", query)])
            .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    http.get(url).send().await.unwrap().json().await.unwrap()
}

fn class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_receives_the_bundles_counts_per_request_replica_and_class() {
    let _engine = engine_lock().await;
    let prometheus = prometheus(true).await;
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
        metrics_out: vec![MetricsTarget::Prometheus(format!(
            "{}/api/v1/write",
            prometheus.url
        ))],
        load: LoadOverride::default(),
        ..Default::default()
    };
    let report = surge::run::run(&request).await.expect("run completes");
    cluster.shutdown().await;
    let r = &report.results;
    assert!(r.passed(), "{:?}", r.checks);
    // The bundle's counts: every answer by its status class.
    let mut expected: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for cell in &r.cells {
        for (status, n) in &cell.stats.statuses {
            *expected
                .entry((
                    cell.request.clone(),
                    cell.replica.clone(),
                    class(*status).to_owned(),
                ))
                .or_default() += n;
        }
    }
    let replicas: std::collections::BTreeSet<&str> =
        expected.keys().map(|(_, r, _)| r.as_str()).collect();
    assert_eq!(replicas.len(), 2, "both replicas answered: {expected:?}");
    assert!(expected.keys().any(|(_, _, c)| c == "4xx"), "{expected:?}");
    let pushed = &r.metrics_out;
    assert_eq!(pushed.len(), 1);
    // One push at 5 s, one at the end (the run is 7 s); none dropped.
    assert!(pushed[0].pushed >= 2, "{pushed:?}");
    assert_eq!((pushed[0].failed, pushed[0].dropped), (0, 0), "{pushed:?}");
    // What Prometheus holds, by PromQL.
    let query = format!(
        "sum by (request, replica, class) (surge_requests_total{{run_id=\"{}\"}})",
        r.run_id
    );
    let answer = promql(&prometheus.url, &query).await;
    let mut got: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for series in answer["data"]["result"].as_array().unwrap() {
        let m = &series["metric"];
        let value: f64 = series["value"][1].as_str().unwrap().parse().unwrap();
        got.insert(
            (
                m["request"].as_str().unwrap().to_owned(),
                m["replica"].as_str().unwrap().to_owned(),
                m["class"].as_str().unwrap().to_owned(),
            ),
            value as u64,
        );
    }
    assert_eq!(got, expected, "{answer}");
    let arrivals = promql(
        &prometheus.url,
        &format!(
            "surge_arrivals_total{{run_id=\"{}\",scenario=\"pushed\"}}",
            r.run_id
        ),
    )
    .await;
    let value = arrivals["data"]["result"][0]["value"][1].as_str().unwrap();
    assert_eq!(
        value.parse::<u64>().unwrap(),
        r.totals.arrivals,
        "{arrivals}"
    );
    // Latency: native histograms, taken.
    assert_eq!(pushed[0].histograms, "native", "{pushed:?}");
    for stats in &r.requests {
        // The gauge is the bundle's p95 exactly.
        let gauge = value_of(
            &prometheus.url,
            &format!(
                "surge_request_duration_quantile_seconds{{run_id=\"{}\",request=\"{}\",quantile=\"0.95\"}}",
                r.run_id, stats.name
            ),
        )
        .await;
        assert!(
            (gauge * 1000.0 - stats.latency.p95).abs() < 1e-6,
            "{}: gauge {gauge} s, bundle p95 {} ms",
            stats.name,
            stats.latency.p95
        );
        // The native histogram's p95, summed over the replicas, lies in the
        // bucket that holds HDR's p95.
        let from_native = value_of(
            &prometheus.url,
            &format!(
                "histogram_quantile(0.95, sum(surge_request_duration_seconds{{run_id=\"{}\",request=\"{}\"}}))",
                r.run_id, stats.name
            ),
        )
        .await;
        let bucket = surge::measure::live::Buckets::index(stats.latency.p95 / 1000.0);
        let (low, high) = (
            surge::measure::live::Buckets::upper_bound(bucket - 1),
            surge::measure::live::Buckets::upper_bound(bucket),
        );
        assert!(
            from_native >= low * (1.0 - 1e-9) && from_native <= high * (1.0 + 1e-9),
            "{}: native p95 {from_native} s outside ({low}, {high}], HDR's {} ms",
            stats.name,
            stats.latency.p95
        );
        // Its count is the bundle's.
        let count = value_of(
            &prometheus.url,
            &format!(
                "histogram_count(sum(surge_request_duration_seconds{{run_id=\"{}\",request=\"{}\"}}))",
                r.run_id, stats.name
            ),
        )
        .await;
        assert_eq!(count as u64, stats.count, "{}", stats.name);
    }
    dashboard_queries_run(
        &prometheus.url,
        &r.run_id,
        &[
            "sum(rate(surge_arrivals_total",
            "sum by (request) (rate(surge_requests_total",
            "sum by (replica) (rate(surge_requests_total",
            "histogram_quantile(0.95, sum by (request) (rate(surge_request_duration_seconds{",
            "histogram_quantile(0.99, sum by (replica) (rate(surge_request_duration_seconds{",
            "max by (request, quantile) (surge_request_duration_quantile_seconds",
            "sum(surge_users_busy",
        ],
    )
    .await;
}

/// Every query of the Grafana dashboard in the repo, for `run_id`: each
/// is PromQL this Prometheus runs, and those beginning with any of
/// `with_data` find series.
async fn dashboard_queries_run(prometheus: &str, run_id: &str, with_data: &[&str]) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/surge.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut queries: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    for a in dashboard["annotations"]["list"].as_array().unwrap() {
        queries.push(a["expr"].as_str().unwrap().to_owned());
    }
    assert!(queries.len() >= 20, "{queries:?}");
    let mut found = 0;
    for query in &queries {
        let query = query
            .replace("$run_id", run_id)
            .replace("$__rate_interval", "1m");
        let answer = promql(prometheus, &query).await;
        assert_eq!(answer["status"], "success", "{query}: {answer}");
        if with_data.iter().any(|m| query.starts_with(m)) {
            let series = answer["data"]["result"].as_array().map_or(0, Vec::len);
            assert!(series > 0, "{query} found nothing: {answer}");
            found += 1;
        }
    }
    assert!(found >= with_data.len(), "{found} queries with data");
}

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
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for cell in &r.cells {
        for (status, n) in &cell.stats.statuses {
            let key = format!("{} {} {}", cell.request, cell.replica, class(*status));
            *expected.entry(key).or_default() += n;
        }
    }
    let answer = promql(
        &prometheus.url,
        &format!(
            "sum by (request, replica, class) (surge_requests_total{{run_id=\"{}\"}})",
            r.run_id
        ),
    )
    .await;
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    for series in answer["data"]["result"].as_array().unwrap() {
        let m = &series["metric"];
        let key = format!(
            "{} {} {}",
            m["request"].as_str().unwrap(),
            m["replica"].as_str().unwrap(),
            m["class"].as_str().unwrap()
        );
        let value: f64 = series["value"][1].as_str().unwrap().parse().unwrap();
        got.insert(key, value as u64);
    }
    assert_eq!(got, expected, "{answer}");
    assert!(expected.len() >= 2, "both requests answered: {expected:?}");
    let arrivals = value_of(
        &prometheus.url,
        &format!("surge_arrivals_total{{run_id=\"{}\"}}", r.run_id),
    )
    .await;
    assert_eq!(arrivals as u64, r.totals.arrivals);
    // The exponential histograms, as native ones: each request's count is
    // the bundle's, its p95 in the bucket of HDR's; the gauge is HDR's.
    for stats in &r.requests {
        let selector = format!(
            "surge_request_duration_seconds{{run_id=\"{}\",request=\"{}\"}}",
            r.run_id, stats.name
        );
        let count = value_of(
            &prometheus.url,
            &format!("histogram_count(sum({selector}))"),
        )
        .await;
        assert_eq!(count as u64, stats.count, "{}", stats.name);
        let p95 = value_of(
            &prometheus.url,
            &format!("histogram_quantile(0.95, sum({selector}))"),
        )
        .await;
        let bucket = surge::measure::live::Buckets::index(stats.latency.p95 / 1000.0);
        let (low, high) = (
            surge::measure::live::Buckets::upper_bound(bucket - 1),
            surge::measure::live::Buckets::upper_bound(bucket),
        );
        assert!(
            p95 >= low * (1.0 - 1e-9) && p95 <= high * (1.0 + 1e-9),
            "{}: p95 {p95} s outside ({low}, {high}], HDR's {} ms",
            stats.name,
            stats.latency.p95
        );
        let gauge = value_of(
            &prometheus.url,
            &format!(
                "surge_request_duration_quantile_seconds{{run_id=\"{}\",request=\"{}\",quantile=\"0.95\"}}",
                r.run_id, stats.name
            ),
        )
        .await;
        assert!((gauge * 1000.0 - stats.latency.p95).abs() < 1e-6, "{gauge}");
    }
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

/// A PromQL query's one value.
async fn value_of(prometheus: &str, query: &str) -> f64 {
    let answer = promql(prometheus, query).await;
    let results = answer["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(results.len(), 1, "{query}: {answer}");
    results[0]["value"][1].as_str().unwrap().parse().unwrap()
}

/// Sums a query's values by one label.
async fn by_label(prometheus: &str, query: &str, label: &str) -> BTreeMap<String, u64> {
    let answer = promql(prometheus, query).await;
    let mut out = BTreeMap::new();
    for series in answer["data"]["result"].as_array().unwrap() {
        let key = series["metric"][label].as_str().unwrap_or("").to_owned();
        let value: f64 = series["value"][1].as_str().unwrap().parse().unwrap();
        *out.entry(key).or_default() += value as u64;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_buckets_sessions_and_upload_verdicts_reach_a_prometheus_without_native_histograms()
{
    let _engine = engine_lock().await;
    let prometheus = prometheus(false).await;
    // Each replica keeps its own uploads: missing on the two others.
    let cluster = cluster(ClusterOptions {
        attachments: surge_sim::AttachmentStore::PerReplica,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = scenario_file(
        dir.path(),
        "uploads",
        &uploads(&cluster.url, &replica_urls(&cluster), "600ms"),
    );
    // Long enough for two pushes: a dashboard's rates need two samples.
    let request = RunRequest {
        scenario: path,
        out_dir: dir.path().join("runs"),
        load: LoadOverride {
            duration: Some(Duration::from_secs(7)),
            ..Default::default()
        },
        metrics_out: vec![MetricsTarget::Prometheus(format!(
            "{}/api/v1/write",
            prometheus.url
        ))],
        ..Default::default()
    };
    let report = surge::run::run(&request).await.expect("run completes");
    cluster.shutdown().await;
    let r = &report.results;
    let pushed = &r.metrics_out[0];
    assert!(
        pushed
            .histograms
            .starts_with("classic: the receiver refused native histograms (answered 5"),
        "{pushed:?}"
    );
    assert_eq!((pushed.failed, pushed.dropped), (0, 0), "{pushed:?}");
    let run = format!("run_id=\"{}\"", r.run_id);
    // Upload verdicts per replica, as the bundle's.
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for replica in &r.consistency.replicas {
        for (verdict, n) in &replica.verdicts {
            *expected.entry(verdict.as_str().to_owned()).or_default() += n;
        }
    }
    assert!(
        expected.get("missing").copied().unwrap_or(0) >= 12,
        "{expected:?}"
    );
    let got = by_label(
        &prometheus.url,
        &format!("surge_upload_reads_total{{{run}}}"),
        "verdict",
    )
    .await;
    assert_eq!(got, expected);
    // Sessions, as the bundle's.
    let sessions = value_of(&prometheus.url, &format!("surge_sessions_total{{{run}}}")).await;
    assert_eq!(sessions as u64, r.sessions.sessions);
    assert!(r.sessions.sessions >= 3);
    let switches = value_of(
        &prometheus.url,
        &format!("surge_session_switches_total{{{run}}}"),
    )
    .await;
    assert_eq!(switches as u64, r.sessions.switches);
    // Read-backs, as the bundle's.
    let read_backs: u64 = r
        .consistency
        .read_backs
        .replicas
        .iter()
        .map(|x| x.total())
        .sum();
    let pushed_reads = value_of(
        &prometheus.url,
        &format!("sum(surge_read_backs_total{{{run}}})"),
    )
    .await;
    assert_eq!(pushed_reads as u64, read_backs);
    // Classic buckets: the +Inf bucket and the count are the bundle's, per
    // request; the classic p95 lies between the bounds around HDR's.
    for stats in &r.requests {
        let name = format!("{run},request=\"{}\"", stats.name);
        let inf = value_of(
            &prometheus.url,
            &format!("sum(surge_request_duration_seconds_bucket{{{name},le=\"+Inf\"}})"),
        )
        .await;
        let count = value_of(
            &prometheus.url,
            &format!("sum(surge_request_duration_seconds_count{{{name}}})"),
        )
        .await;
        assert_eq!((inf as u64, count as u64), (stats.count, stats.count));
        let bounds = by_label(
            &prometheus.url,
            &format!("sum by (le) (surge_request_duration_seconds_bucket{{{name}}})"),
            "le",
        )
        .await;
        let mut les: Vec<f64> = bounds
            .keys()
            .filter_map(|le| le.parse::<f64>().ok().filter(|v| v.is_finite()))
            .collect();
        les.sort_by(f64::total_cmp);
        let p95 = stats.latency.p95 / 1000.0;
        let above = les
            .iter()
            .copied()
            .find(|b| *b >= p95)
            .unwrap_or(f64::INFINITY);
        let below = les.iter().copied().rev().find(|b| *b < p95).unwrap_or(0.0);
        let classic = value_of(
            &prometheus.url,
            &format!(
                "histogram_quantile(0.95, sum by (le) (surge_request_duration_seconds_bucket{{{name}}}))"
            ),
        )
        .await;
        assert!(
            classic >= below && classic <= above,
            "{}: classic p95 {classic} s not in [{below}, {above}] around HDR's {p95} s",
            stats.name
        );
    }
    dashboard_queries_run(
        &prometheus.url,
        &r.run_id,
        &[
            "histogram_quantile(0.95, sum by (le, request) (rate(surge_request_duration_seconds_bucket",
            "sum by (verdict) (surge_upload_reads_total",
            "sum(rate(surge_sessions_total",
            "sum by (replica, way) (rate(surge_read_backs_total",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_never_slows_the_run_and_what_it_missed_is_said() {
    let _engine = engine_lock().await;
    let cluster = cluster(ClusterOptions {
        replicas: 1,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    // It takes the connection (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/api/v1/write?tenant=s3cr3t",
        silent.local_addr().unwrap()
    );
    let request = RunRequest {
        scenario: scenario(dir.path(), &cluster.url),
        out_dir: dir.path().join("runs"),
        metrics_out: vec![MetricsTarget::Prometheus(url)],
        ..Default::default()
    };
    let report = surge::run::run(&request).await.expect("run completes");
    cluster.shutdown().await;
    drop(silent);
    let r = &report.results;
    assert!(r.passed(), "{:?}", r.checks);
    // The load kept its schedule: every arrival of 7 s at 20 a second,
    // none dropped.
    assert_eq!(
        (r.totals.arrivals, r.totals.dropped_arrivals),
        (140, 0),
        "{:?}",
        r.totals
    );
    let pushed = &r.metrics_out[0];
    assert_eq!(pushed.pushed, 0, "{pushed:?}");
    assert!(pushed.failed >= 1, "{pushed:?}");
    assert_eq!(
        pushed.last_error.as_deref(),
        Some("no answer within 5 s"),
        "{pushed:?}"
    );
    // The bundle on disk says it, and its report does; the query's token
    // is in neither.
    let json = std::fs::read_to_string(report.bundle.join("summary.json")).unwrap();
    assert!(
        json.contains("\"metrics_out\""),
        "the bundle records the pushes"
    );
    let markdown = std::fs::read_to_string(report.bundle.join("summary.md")).unwrap();
    assert!(
        markdown.contains("prometheus http://127.0.0.1:") && markdown.contains("0 pushes accepted"),
        "{markdown}"
    );
    assert!(!json.contains("s3cr3t") && !markdown.contains("s3cr3t"));
}
