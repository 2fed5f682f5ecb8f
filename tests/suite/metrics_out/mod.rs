//! `surge run --metrics-out` against real receivers, on loopback: a
//! Prometheus (Debian's 2.42) taking Remote-Write with native histograms
//! and without (`prometheus.rs`), a Prometheus 3.16 built from its Go
//! module taking OTLP (`otlp.rs`), and the shards of one test pushing
//! together (`shards.rs`). What PromQL finds is checked against the bundle.

mod otlp;
mod prometheus;
mod shards;

use crate::common::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// Prometheus with its Remote-Write receiver, scraping nothing.
pub struct Prometheus {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    pub url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Prometheus (Debian's 2.42), taking native histograms or not.
pub async fn prometheus(native_histograms: bool) -> Prometheus {
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
pub async fn prometheus_with_otlp() -> Prometheus {
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
pub async fn start_prometheus(binary: std::path::PathBuf, flags: &[&str]) -> Prometheus {
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
pub fn scenario(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
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
pub async fn promql(prometheus: &str, query: &str) -> serde_json::Value {
    let url =
        reqwest::Url::parse_with_params(&format!("{prometheus}/api/v1/query"), [("query", query)])
            .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    http.get(url).send().await.unwrap().json().await.unwrap()
}

pub fn class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Every query of the Grafana dashboard in the repo, for `test` (a run's
/// id, or a sharded test's label): each
/// is PromQL this Prometheus runs, and those beginning with any of
/// `with_data` find series.
pub async fn dashboard_queries_run(prometheus: &str, test: &str, with_data: &[&str]) {
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
    let mut matched = vec![0; with_data.len()];
    for query in &queries {
        let query = query
            .replace("$test", test)
            .replace("$__rate_interval", "1m");
        let answer = promql(prometheus, &query).await;
        assert_eq!(answer["status"], "success", "{query}: {answer}");
        for (i, prefix) in with_data.iter().enumerate() {
            if query.starts_with(prefix) {
                let series = answer["data"]["result"].as_array().map_or(0, Vec::len);
                assert!(series > 0, "{query} found nothing: {answer}");
                matched[i] += 1;
            }
        }
    }
    for (prefix, n) in with_data.iter().zip(matched) {
        assert!(n > 0, "no dashboard query begins with {prefix}");
    }
}

/// No series of these names, of `run_id`, ever went down between pushes
/// (which Prometheus would take for a counter reset).
pub async fn assert_no_resets(prometheus: &str, run_id: &str, names: &[&str]) {
    for name in names {
        let query = format!("sum(resets({name}{{run_id=\"{run_id}\"}}[10m]))");
        let answer = promql(prometheus, &query).await;
        let results = answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(results.len(), 1, "{query}: {answer}");
        assert_eq!(results[0]["value"][1], "0", "{query}: {answer}");
    }
}

/// A PromQL query's one value.
pub async fn value_of(prometheus: &str, query: &str) -> f64 {
    let answer = promql(prometheus, query).await;
    let results = answer["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(results.len(), 1, "{query}: {answer}");
    results[0]["value"][1].as_str().unwrap().parse().unwrap()
}

/// Sums a query's values by one label.
pub async fn by_label(prometheus: &str, query: &str, label: &str) -> BTreeMap<String, u64> {
    let answer = promql(prometheus, query).await;
    let mut out = BTreeMap::new();
    for series in answer["data"]["result"].as_array().unwrap() {
        let key = series["metric"][label].as_str().unwrap_or("").to_owned();
        let value: f64 = series["value"][1].as_str().unwrap().parse().unwrap();
        *out.entry(key).or_default() += value as u64;
    }
    out
}

/// A receiver on loopback (`http://127.0.0.1:PORT`) that reads each
/// request whole and answers the first with the bytes of `first`, every
/// later one with `then` (raw HTTP/1.1 answers).
pub async fn receiver_answering(
    first: Vec<u8>,
    then: Vec<u8>,
) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        for n in 0.. {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            // The request: headers, then Content-Length bytes of body.
            let mut got = Vec::new();
            let mut buffer = [0u8; 8192];
            let body_at = loop {
                let Ok(read) = socket.read(&mut buffer).await else {
                    break None;
                };
                if read == 0 {
                    break None;
                }
                got.extend_from_slice(&buffer[..read]);
                if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(end + 4);
                }
            };
            let Some(body_at) = body_at else { continue };
            let head = String::from_utf8_lossy(&got[..body_at]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while got.len() < body_at + length {
                match socket.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => got.extend_from_slice(&buffer[..read]),
                }
            }
            let answer = if n == 0 { &first } else { &then };
            let _ = socket.write_all(answer).await;
            let _ = socket.shutdown().await;
        }
    });
    (url, task)
}

/// The run's answers by (request, replica, status class), as its bundle
/// counts them; asserted equal to what `prometheus` holds of
/// `surge_requests_total` for the run.
pub async fn assert_requests_as_bundle(
    prometheus: &str,
    r: &surge::bundle::RunResults,
) -> BTreeMap<(String, String, String), u64> {
    let mut expected: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for cell in &r.cells {
        for (status, n) in &cell.stats.statuses {
            let key = (
                cell.request.clone(),
                cell.replica.clone(),
                class(*status).to_owned(),
            );
            *expected.entry(key).or_default() += n;
        }
    }
    let query = format!(
        "sum by (request, replica, class) (surge_requests_total{{run_id=\"{}\"}})",
        r.run_id
    );
    let answer = promql(prometheus, &query).await;
    let mut got: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for series in answer["data"]["result"].as_array().unwrap() {
        let m = &series["metric"];
        let label = |name: &str| m[name].as_str().unwrap().to_owned();
        let value: f64 = series["value"][1].as_str().unwrap().parse().unwrap();
        got.insert(
            (label("request"), label("replica"), label("class")),
            value as u64,
        );
    }
    assert_eq!(got, expected, "{answer}");
    expected
}

/// Each request's latency in `prometheus` as its bundle has it: the p95
/// gauge is the bundle's p95 exactly; the histogram summed over the
/// replicas counts the bundle's requests, and its p95 lies in the bucket
/// that holds the bundle's.
pub async fn assert_latency_as_bundle(prometheus: &str, r: &surge::bundle::RunResults) {
    use surge::measure::live::Buckets;
    for stats in &r.requests {
        let gauge = value_of(
            prometheus,
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
        let selector = format!(
            "surge_request_duration_seconds{{run_id=\"{}\",request=\"{}\"}}",
            r.run_id, stats.name
        );
        let p95 = value_of(
            prometheus,
            &format!("histogram_quantile(0.95, sum({selector}))"),
        )
        .await;
        let bucket = Buckets::index(stats.latency.p95 / 1000.0);
        let (low, high) = (
            Buckets::upper_bound(bucket - 1),
            Buckets::upper_bound(bucket),
        );
        assert!(
            p95 >= low * (1.0 - 1e-9) && p95 <= high * (1.0 + 1e-9),
            "{}: the histogram's p95 {p95} s outside ({low}, {high}], HDR's {} ms",
            stats.name,
            stats.latency.p95
        );
        let count = value_of(prometheus, &format!("histogram_count(sum({selector}))")).await;
        assert_eq!(count as u64, stats.count, "{}", stats.name);
    }
}
