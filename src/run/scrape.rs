//! Scraping the target's Prometheus endpoints during calibration
//! (`--metrics-url`, one per replica): the connection-pool series HAPI FHIR
//! exposes through Micrometer at /actuator/prometheus. The exposition text is
//! parsed by prometheus-parse; what surge keeps is plain data
//! ([`PoolSample`]); the conclusions drawn from it are `calibrate::pool`'s.

use crate::bundle::PoolSample;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Reads the pool series from exposition text (summed over pools).
pub fn parse(text: &str, url: &str, at_s: f64) -> anyhow::Result<PoolSample> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))?;
    let mut s = PoolSample {
        at_s,
        url: url.to_owned(),
        ..Default::default()
    };
    for sample in scrape.samples {
        let value = match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => continue,
        };
        match sample.metric.as_str() {
            "hikaricp_connections_active" => s.active += value,
            "hikaricp_connections_pending" => s.pending += value,
            "hikaricp_connections_max" => s.max += value,
            "hikaricp_connections_usage_seconds_count" => s.usage_count += value,
            "hikaricp_connections_usage_seconds_sum" => s.usage_sum += value,
            "process_cpu_usage" => s.cpu = Some(s.cpu.unwrap_or(0.0) + value),
            "jvm_memory_used_bytes" => {
                s.jvm_memory_bytes = Some(s.jvm_memory_bytes.unwrap_or(0.0) + value)
            }
            _ => {}
        }
    }
    Ok(s)
}

/// The client that reads metrics endpoints: no proxy (they are the pods'
/// own addresses), and a scrape that hangs is given up after 5 s.
fn metrics_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("a plain HTTP client builds")
}

/// Waits until no thread waits for a connection on any of `urls` (each
/// scraped every 250 ms), for at most `limit`; how long that took, or None
/// if the pools were still queueing at the limit. A step past the knee
/// leaves the server a backlog to digest (requests the client gave up on
/// still run); a measurement started before it drained would inherit it.
pub async fn wait_until_drained(urls: &[String], limit: Duration) -> Option<Duration> {
    let client = metrics_client();
    let started = Instant::now();
    loop {
        let mut queueing = false;
        for url in urls {
            let text = match client.get(url).send().await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            // An endpoint that does not answer cannot show a queue; the
            // measurement that follows will show it gone.
            if parse(&text, url, 0.0).is_ok_and(|s| s.pending > 0.0) {
                queueing = true;
            }
        }
        if !queueing {
            return Some(started.elapsed());
        }
        if started.elapsed() >= limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Scrapes every URL each `every` until stopped.
pub struct Scraper {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Vec<PoolSample>>,
}

impl Scraper {
    /// Starts scraping `urls`.
    pub fn start(urls: Vec<String>, every: Duration) -> Self {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let client = metrics_client();
            let started = Instant::now();
            let mut out = Vec::new();
            loop {
                for url in &urls {
                    let at = started.elapsed().as_secs_f64();
                    match client
                        .get(url)
                        .send()
                        .await
                        .and_then(|r| r.error_for_status())
                    {
                        Ok(response) => match response.text().await {
                            Ok(text) => match parse(&text, url, at) {
                                Ok(sample) => out.push(sample),
                                Err(e) => {
                                    tracing::warn!("{url}: not Prometheus exposition text: {e}")
                                }
                            },
                            Err(e) => tracing::warn!("{url}: {e}"),
                        },
                        Err(e) => tracing::warn!("cannot scrape {url}: {e}"),
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = token.cancelled() => break,
                }
            }
            out
        });
        Scraper { stop, task }
    }

    /// Scrapes `urls` each second, or nothing when none is given.
    pub fn over(urls: &[String]) -> Option<Self> {
        (!urls.is_empty()).then(|| Self::start(urls.to_vec(), Duration::from_secs(1)))
    }

    /// Stops, after one last scrape round, and returns every sample.
    pub async fn finish(self) -> Vec<PoolSample> {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::pool::hold_time;

    const TEXT: &str = "# TYPE hikaricp_connections_active gauge\n\
        hikaricp_connections_active{pool=\"HikariPool-1\"} 3\n\
        # TYPE hikaricp_connections_pending gauge\n\
        hikaricp_connections_pending{pool=\"HikariPool-1\"} 2\n\
        # TYPE hikaricp_connections_max gauge\n\
        hikaricp_connections_max{pool=\"HikariPool-1\"} 10\n\
        # TYPE hikaricp_connections_usage_seconds summary\n\
        hikaricp_connections_usage_seconds_count{pool=\"HikariPool-1\"} 400\n\
        hikaricp_connections_usage_seconds_sum{pool=\"HikariPool-1\"} 8.0\n\
        # TYPE jvm_memory_used_bytes gauge\n\
        jvm_memory_used_bytes{area=\"heap\"} 1.2e8\n";

    #[test]
    fn parses_the_pool_series() {
        let s = parse(TEXT, "http://x/actuator/prometheus", 1.0).unwrap();
        assert_eq!(
            (s.active, s.pending, s.max, s.usage_count, s.usage_sum),
            (3.0, 2.0, 10.0, 400.0, 8.0)
        );
        assert_eq!((s.cpu, s.jvm_memory_bytes), (None, Some(1.2e8)));
    }

    #[test]
    fn hold_time_from_counter_deltas_across_endpoints() {
        let at = |url: &str, t: f64, count: f64, sum: f64| PoolSample {
            at_s: t,
            url: url.into(),
            usage_count: count,
            usage_sum: sum,
            ..Default::default()
        };
        let samples = [
            at("a", 0.0, 100.0, 2.0),
            at("b", 0.0, 0.0, 0.0),
            at("a", 5.0, 600.0, 12.0),
            at("b", 5.0, 500.0, 15.0),
        ];
        let (hold, n) = hold_time(&samples).unwrap();
        assert_eq!(n, 1000.0);
        assert!(
            (hold - 0.025).abs() < 1e-12,
            "(10 + 15) s over 1000 checkouts: {hold}"
        );
        assert_eq!(hold_time(&samples[..2]), None);
    }
}
