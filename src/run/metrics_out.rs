//! `surge run --metrics-out prometheus=URL|otlp=URL`: what the run has
//! measured, pushed while it goes (every [`PUSH_EVERY`]) and once at its
//! end, to each receiver as Prometheus Remote-Write 1.0 or OTLP/HTTP. The
//! load never waits for a receiver: the engine hands each snapshot to a
//! bounded queue, a full queue drops it (counted), and one task per
//! receiver sends what is queued. The last counts are kept apart, never dropped, and sent first
//! when the load has ended (they supersede what is still queued: the
//! counters are cumulative); all receivers are finished together within
//! [`FINISH_WITHIN`], or at once on a signal, and how each fared goes into
//! the bundle.

use crate::bundle::MetricsOutReport;
use crate::engine::LiveFeed;
use crate::measure::live::LiveCounts;
use crate::report::otlp;
use crate::report::remote_write::{self, HistogramForm};
pub use crate::scenario::MetricsTarget;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// A receiver's URL as the bundle and the reports say it: scheme, host,
/// port and path, never a query (it may hold a token).
fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "(a URL that does not parse)".into(),
    }
}

/// One receiver's queue, task and tally.
struct Receiver {
    queue: mpsc::Sender<LiveCounts>,
    dropped: Arc<AtomicU64>,
    report: Arc<Mutex<MetricsOutReport>>,
    /// Set when its last push has ended.
    done: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

/// The pushes of one run.
pub struct MetricsOut {
    receivers: Vec<Receiver>,
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
        // Cumulative OTLP points count from here.
        let started_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let client = reqwest::Client::builder()
            .timeout(PUSH_TIMEOUT)
            .user_agent(concat!("surge/", env!("CARGO_PKG_VERSION")))
            .build()
            .ok();
        let mut receivers = Vec::new();
        let mut queues = Vec::new();
        for target in targets {
            let url = target.url();
            let (tx, rx) = mpsc::channel(QUEUE);
            let dropped = Arc::new(AtomicU64::new(0));
            let report = Arc::new(Mutex::new(MetricsOutReport {
                kind: target.kind().into(),
                target: shown(url),
                ..MetricsOutReport::default()
            }));
            let done = Arc::new(AtomicBool::new(false));
            let pusher = Pusher {
                client: client.clone(),
                target: target.clone(),
                started_ns,
                last_ms: i64::MIN,
                report: Arc::clone(&report),
                native_refused: None,
            };
            let task = tokio::spawn(push_all(
                pusher,
                rx,
                Arc::clone(&last),
                Arc::clone(&labels),
                Arc::clone(&done),
            ));
            queues.push((tx.clone(), Arc::clone(&dropped)));
            receivers.push(Receiver {
                queue: tx,
                dropped,
                report,
                done,
                task,
            });
        }
        let feed = LiveFeed {
            every: PUSH_EVERY,
            send: Box::new(move |counts, is_last| {
                if is_last {
                    *last.lock().unwrap_or_else(|e| e.into_inner()) = Some(counts);
                    return;
                }
                for (queue, dropped) in &queues {
                    if queue.try_send(counts.clone()).is_err() {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }),
        };
        (MetricsOut { receivers }, feed)
    }

    /// Ends the pushes: every receiver sends the last counts (within
    /// [`FINISH_WITHIN`] for all of them together, or until `cut` — a
    /// signal — ends the wait); how each fared.
    pub async fn finish(self, cut: tokio_util::sync::CancellationToken) -> Vec<MetricsOutReport> {
        // Every queue closed first, so all receivers finish together (the
        // engine's feed, holding the other ends, is gone with the engine).
        let mut tasks = Vec::new();
        let mut tallies = Vec::new();
        for Receiver {
            queue,
            dropped,
            report,
            done,
            task,
        } in self.receivers
        {
            drop(queue);
            tasks.push(task);
            tallies.push((dropped, report, done));
        }
        let aborts: Vec<_> = tasks.iter().map(JoinHandle::abort_handle).collect();
        let unfinished = tokio::select! {
            _ = futures::future::join_all(tasks) => None,
            _ = tokio::time::sleep(FINISH_WITHIN) => Some(format!("the last push did not end within {} s", FINISH_WITHIN.as_secs())),
            _ = cut.cancelled() => Some("the last push was cut short by a signal".to_owned()),
        };
        for abort in aborts {
            abort.abort();
        }
        tallies
            .into_iter()
            .map(|(dropped, report, done)| {
                let mut report = report.lock().unwrap_or_else(|e| e.into_inner()).clone();
                report.dropped = dropped.load(Ordering::Relaxed);
                if let (Some(why), false) = (&unfinished, done.load(Ordering::SeqCst)) {
                    report.last_error = Some(why.clone());
                }
                report
            })
            .collect()
    }
}

/// Sends each queued snapshot to `url` — until the last counts are there,
/// which supersede the rest — then the last counts.
async fn push_all(
    mut pusher: Pusher,
    mut queue: mpsc::Receiver<LiveCounts>,
    last: Arc<Mutex<Option<LiveCounts>>>,
    labels: Arc<Vec<(String, String)>>,
    done: Arc<AtomicBool>,
) {
    let labels: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let final_counts = || last.lock().unwrap_or_else(|e| e.into_inner()).clone();
    while let Some(counts) = queue.recv().await {
        if final_counts().is_some() {
            break;
        }
        pusher.push(&counts, &labels).await;
    }
    // The feed is gone (the load has ended): its last counts are set.
    if let Some(counts) = final_counts() {
        pusher.push(&counts, &labels).await;
    }
    done.store(true, Ordering::SeqCst);
}

/// One receiver's pushes, in order, each at a later millisecond than the
/// one before (Prometheus refuses a sample at a time it already holds).
struct Pusher {
    client: Option<reqwest::Client>,
    target: MetricsTarget,
    /// When the run's cumulative counts began, ns since the epoch (OTLP).
    started_ns: u64,
    last_ms: i64,
    report: Arc<Mutex<MetricsOutReport>>,
    /// Why the receiver refused native histograms, once it has.
    native_refused: Option<String>,
}

impl Pusher {
    fn tally(&self, change: impl FnOnce(&mut MetricsOutReport)) {
        change(&mut self.report.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// One push, counted. A push of native histograms the receiver refuses
    /// as such (Prometheus without `--enable-feature=native-histograms`
    /// answers 500 "native histograms are disabled" and takes nothing of
    /// it) is sent again at once with classic buckets, used from then on;
    /// any other refusal is a failed push, and so is a classic one that
    /// fails too (then native histograms were not the cause).
    async fn push(&mut self, counts: &LiveCounts, labels: &[(&str, &str)]) {
        let now_ms = counts
            .at
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64);
        let at_ms = now_ms.max(self.last_ms.saturating_add(1));
        self.last_ms = at_ms;
        let mut failure = self.send(counts, labels, at_ms).await;
        if let (Some(Refused::NativeHistograms(why)), None) = (&failure, &self.native_refused) {
            self.native_refused = Some(why.clone());
            failure = self.send(counts, labels, at_ms).await;
            if failure.is_some() {
                self.native_refused = None;
            }
        }
        let histograms = if counts.latency.is_empty() && self.native_refused.is_none() {
            None
        } else {
            Some(match (&self.target, &self.native_refused) {
                (MetricsTarget::Otlp(_), _) => "exponential".to_owned(),
                (MetricsTarget::Prometheus(_), None) => "native".to_owned(),
                (MetricsTarget::Prometheus(_), Some(why)) => {
                    format!("classic: the receiver refused native histograms ({why})")
                }
            })
        };
        self.tally(|r| {
            if let Some(histograms) = histograms {
                r.histograms = histograms;
            }
            match failure {
                None => r.pushed += 1,
                Some(Refused::NativeHistograms(why) | Refused::Failed(why)) => {
                    r.failed += 1;
                    r.last_error = Some(why);
                }
            }
        });
    }

    /// Sends the counts once; why not, if the receiver did not take them.
    async fn send(
        &mut self,
        counts: &LiveCounts,
        labels: &[(&str, &str)],
        at_ms: i64,
    ) -> Option<Refused> {
        let Some(client) = self.client.clone() else {
            return Some(Refused::Failed("no HTTP client could be built".into()));
        };
        let (request, over_cap) = match self.target.clone() {
            MetricsTarget::Prometheus(url) => {
                let form = match self.native_refused {
                    None => HistogramForm::Native,
                    Some(_) => HistogramForm::Classic,
                };
                let encoded = remote_write::encode(counts, labels, at_ms, form);
                let request = client
                    .post(url)
                    .header("Content-Encoding", "snappy")
                    .header("Content-Type", "application/x-protobuf")
                    .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                    .body(encoded.body);
                (request, encoded.over_cap)
            }
            MetricsTarget::Otlp(url) => {
                let at_ns = (at_ms.max(0) as u64).saturating_mul(1_000_000);
                let encoded = otlp::encode(counts, labels, self.started_ns, at_ns);
                let request = client
                    .post(url)
                    .header("Content-Type", "application/x-protobuf")
                    .body(encoded.body);
                (request, encoded.over_cap)
            }
        };
        self.tally(|r| r.over_cap = over_cap as u64);
        match request.send().await {
            Ok(answer) if answer.status().is_success() => match &self.target {
                MetricsTarget::Otlp(_) => partly_refused(answer).await,
                MetricsTarget::Prometheus(_) => None,
            },
            // Too many requests: a busy receiver, not a refusal of the form.
            Ok(answer) if answer.status().as_u16() == 429 => {
                Some(Refused::Failed(format!("answered {}", answer.status())))
            }
            Ok(answer) => {
                let why = format!("answered {}", answer.status());
                // Read, not kept: a receiver's words may quote what it got.
                let body = answer.bytes().await.unwrap_or_default();
                let said = String::from_utf8_lossy(&body[..body.len().min(4096)]).to_lowercase();
                Some(match self.target {
                    MetricsTarget::Prometheus(_) if said.contains("native histogram") => {
                        Refused::NativeHistograms(why)
                    }
                    _ => Refused::Failed(why),
                })
            }
            Err(e) if e.is_timeout() => Some(Refused::Failed(format!(
                "no answer within {} s",
                PUSH_TIMEOUT.as_secs()
            ))),
            Err(e) if e.is_connect() => {
                Some(Refused::Failed("connection refused or unreachable".into()))
            }
            Err(_) => Some(Refused::Failed("the push failed".into())),
        }
    }
}

/// An OTLP receiver that answered 200 may still have refused some points
/// (`partial_success`); how many, never its words (they may quote values).
async fn partly_refused(answer: reqwest::Response) -> Option<Refused> {
    let body = answer.bytes().await.ok()?;
    let response =
        <otlp::ExportMetricsServiceResponse as prost::Message>::decode(body.as_ref()).ok()?;
    let rejected = response.partial_success?.rejected_data_points;
    (rejected > 0).then(|| Refused::Failed(format!("the receiver refused {rejected} points")))
}

/// Why a push did not land.
enum Refused {
    /// The receiver said it takes no native histograms.
    NativeHistograms(String),
    /// It refused the push for another reason, or never answered.
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn snapshots_a_stuck_receiver_cannot_take_are_dropped_and_counted() {
        // It takes the connection and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/api/v1/write", silent.local_addr().unwrap());
        let (out, feed) = MetricsOut::start(
            &[MetricsTarget::Prometheus(url)],
            vec![("run_id".into(), "r".into())],
        );
        // The first is taken and stuck in its push; four wait; the rest
        // find the queue full.
        for _ in 0..10 {
            (feed.send)(LiveCounts::default(), false);
            tokio::task::yield_now().await;
        }
        (feed.send)(LiveCounts::default(), true);
        drop(feed);
        let cut = tokio_util::sync::CancellationToken::new();
        cut.cancel();
        let reports = out.finish(cut).await;
        let report = &reports[0];
        assert!(
            (5..=6).contains(&report.dropped),
            "10 snapshots, one in flight and four queued: {report:?}"
        );
        assert_eq!(report.pushed, 0);
        assert_eq!(
            report.last_error.as_deref(),
            Some("the last push was cut short by a signal")
        );
    }
}
