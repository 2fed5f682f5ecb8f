//! `surge run --metrics-out prometheus=URL`: the run's counts pushed while
//! it goes (every [`PUSH_EVERY`]) and once at its end, as Prometheus
//! Remote-Write 1.0, to each receiver. The load never waits for a
//! receiver: the engine hands each snapshot to a bounded queue, a full
//! queue drops it (counted), and one task per receiver sends what is
//! queued. The last counts are kept apart, never dropped, and sent when
//! the load has ended; how each receiver fared goes into the bundle.

use crate::bundle::MetricsOutReport;
use crate::engine::LiveFeed;
use crate::measure::live::LiveCounts;
use crate::report::remote_write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How often the counts are pushed while the run goes.
pub const PUSH_EVERY: Duration = Duration::from_secs(5);

/// Snapshots waiting for a slow receiver; more are dropped.
const QUEUE: usize = 4;

/// Longest a receiver may take to answer one push.
const PUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest the end of a run waits for the last pushes.
const FINISH_WITHIN: Duration = Duration::from_secs(15);

/// Where metrics go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsTarget {
    /// A Prometheus Remote-Write 1.0 receiver (`/api/v1/write`).
    Prometheus(String),
}

impl MetricsTarget {
    /// `prometheus=URL`; or what was expected.
    pub fn parse(text: &str) -> Result<MetricsTarget, String> {
        let (kind, url) = text.split_once('=').unwrap_or((text, ""));
        let url_ok = url.starts_with("http://") || url.starts_with("https://");
        match kind {
            "prometheus" if url_ok && !crate::scenario::has_userinfo(url) => {
                Ok(MetricsTarget::Prometheus(url.to_owned()))
            }
            "prometheus" if url_ok => Err(format!(
                "--metrics-out {}: credentials in the URL would be written into the bundle: give the receiver's URL alone",
                crate::scenario::redact_text(text)
            )),
            "otlp" => Err("--metrics-out otlp=URL: not yet; prometheus=URL (Remote-Write 1.0) is".into()),
            _ => Err(format!(
                "--metrics-out {}: expected prometheus=URL (a Remote-Write receiver such as http://prometheus:9090/api/v1/write)",
                crate::scenario::redact_text(text)
            )),
        }
    }
}

/// One receiver's queue and task.
struct Receiver {
    queue: mpsc::Sender<LiveCounts>,
    dropped: Arc<AtomicU64>,
    task: JoinHandle<MetricsOutReport>,
}

/// The pushes of one run.
pub struct MetricsOut {
    receivers: Vec<Receiver>,
    last: Arc<Mutex<Option<LiveCounts>>>,
}

impl MetricsOut {
    /// Starts a task per receiver, and gives the feed the engine calls;
    /// `labels` go on every series (run id, scenario, shard).
    pub fn start(
        targets: &[MetricsTarget],
        labels: Vec<(String, String)>,
    ) -> (MetricsOut, LiveFeed) {
        let last: Arc<Mutex<Option<LiveCounts>>> = Arc::default();
        let labels = Arc::new(labels);
        let client = reqwest::Client::builder()
            .timeout(PUSH_TIMEOUT)
            .user_agent(concat!("surge/", env!("CARGO_PKG_VERSION")))
            .build()
            .ok();
        let mut receivers = Vec::new();
        let mut queues = Vec::new();
        for MetricsTarget::Prometheus(url) in targets {
            let (tx, rx) = mpsc::channel(QUEUE);
            let dropped = Arc::new(AtomicU64::new(0));
            let task = tokio::spawn(push_all(
                client.clone(),
                url.clone(),
                rx,
                Arc::clone(&last),
                Arc::clone(&labels),
            ));
            queues.push((tx.clone(), Arc::clone(&dropped)));
            receivers.push(Receiver {
                queue: tx,
                dropped,
                task,
            });
        }
        let last_slot = Arc::clone(&last);
        let feed = LiveFeed {
            every: PUSH_EVERY,
            send: Box::new(move |counts, is_last| {
                if is_last {
                    *last_slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(counts);
                    return;
                }
                for (queue, dropped) in &queues {
                    if queue.try_send(counts.clone()).is_err() {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }),
        };
        (MetricsOut { receivers, last }, feed)
    }

    /// Ends the pushes: what is queued and the last counts are sent
    /// (within [`FINISH_WITHIN`]); how each receiver fared.
    pub async fn finish(self) -> Vec<MetricsOutReport> {
        let MetricsOut { receivers, last } = self;
        drop(last);
        let mut out = Vec::new();
        for Receiver {
            queue,
            dropped,
            task,
        } in receivers
        {
            // The engine's feed holds clones of the queue: closing this
            // one end leaves theirs; the feed is gone once the engine ended.
            drop(queue);
            let abort = task.abort_handle();
            let mut report = match tokio::time::timeout(FINISH_WITHIN, task).await {
                Ok(Ok(report)) => report,
                _ => {
                    abort.abort();
                    MetricsOutReport {
                        kind: "prometheus".into(),
                        last_error: Some(format!(
                            "the last pushes did not end within {} s",
                            FINISH_WITHIN.as_secs()
                        )),
                        ..MetricsOutReport::default()
                    }
                }
            };
            report.dropped = dropped.load(Ordering::Relaxed);
            out.push(report);
        }
        out
    }
}

/// Sends every queued snapshot to `url`, then the last counts.
async fn push_all(
    client: Option<reqwest::Client>,
    url: String,
    mut queue: mpsc::Receiver<LiveCounts>,
    last: Arc<Mutex<Option<LiveCounts>>>,
    labels: Arc<Vec<(String, String)>>,
) -> MetricsOutReport {
    let mut report = MetricsOutReport {
        kind: "prometheus".into(),
        target: crate::scenario::redact_text(&url),
        ..MetricsOutReport::default()
    };
    let labels: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    while let Some(counts) = queue.recv().await {
        push(client.as_ref(), &url, &counts, &labels, &mut report).await;
    }
    let final_counts = last.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(counts) = final_counts {
        push(client.as_ref(), &url, &counts, &labels, &mut report).await;
    }
    report
}

/// One push, counted.
async fn push(
    client: Option<&reqwest::Client>,
    url: &str,
    counts: &LiveCounts,
    labels: &[(&str, &str)],
    report: &mut MetricsOutReport,
) {
    let encoded = remote_write::encode(counts, labels);
    report.over_cap = encoded.over_cap as u64;
    let Some(client) = client else {
        report.failed += 1;
        report.last_error = Some("no HTTP client could be built".into());
        return;
    };
    let sent = client
        .post(url)
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(encoded.body)
        .send()
        .await;
    match sent {
        Ok(answer) if answer.status().is_success() => report.pushed += 1,
        Ok(answer) => {
            report.failed += 1;
            report.last_error = Some(format!("answered {}", answer.status()));
        }
        Err(e) => {
            report.failed += 1;
            report.last_error = Some(if e.is_timeout() {
                format!("no answer within {} s", PUSH_TIMEOUT.as_secs())
            } else if e.is_connect() {
                "connection refused or unreachable".into()
            } else {
                "the push failed".into()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_prometheus_and_an_http_url_without_credentials() {
        assert_eq!(
            MetricsTarget::parse("prometheus=http://127.0.0.1:9090/api/v1/write"),
            Ok(MetricsTarget::Prometheus(
                "http://127.0.0.1:9090/api/v1/write".into()
            ))
        );
        let said = MetricsTarget::parse("prometheus=https://u:secret@x/api/v1/write").unwrap_err();
        assert!(
            said.contains("credentials") && !said.contains("secret"),
            "{said}"
        );
        assert!(MetricsTarget::parse("graphite=http://x")
            .unwrap_err()
            .contains("expected prometheus=URL"));
        assert!(MetricsTarget::parse("prometheus=x")
            .unwrap_err()
            .contains("expected prometheus=URL"));
        assert!(MetricsTarget::parse("otlp=http://x")
            .unwrap_err()
            .contains("not yet"));
    }
}
