//! Reading uploads back: straight from each replica whose address is given
//! (listed, or pods found through Kubernetes), and through the balancer for
//! replicas the run met that have no address, polling with backoff until the
//! right bytes appear or the window closes.
//!
//! Read-backs run beside the load on their own client (no cookie jar, so a
//! sticky balancer spreads them) and authenticate per request. They are load
//! on the cluster like any other: every one is counted per replica (direct
//! or through the balancer) for the reports, which say when they went over
//! the budget (`[verify] budget` times the scenario's own requests). They
//! are bounded by each upload's window and the backoff, not cut short by the
//! budget: a read skipped would turn a verdict into "unverified", or a late
//! replica into a missing one. Which replica answered is the run's [`ReplicaBook`]'s
//! word, so a replica read directly and the same replica named by the
//! balancer are one. What they see goes to `verify::consistency`.

use super::auth::{self, TokenCache};
use super::check;
use super::writes::{Acknowledged, WriteLedger};
use crate::bundle::{ConsistencyVerdict, ReadBackReplica, ReadBackTraffic};
use crate::measure::replicas::ReplicaBook;
use crate::measure::{Recorder, UNKNOWN_REPLICA};
use crate::scenario::ReadRule;
use crate::scenario::{Auth, Scenario};
use crate::verify::consistency::{compare, Checked, Seen, Tally, Upload};
use polled::{is_replica, Polled};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

mod audit;
mod polled;

/// Read-backs running at once, at most.
const CONCURRENT_CHECKS: usize = 32;

/// Read-back requests sent, per replica and per second of the run.
#[derive(Default)]
struct Traffic(Mutex<Sent>);

#[derive(Default)]
struct Sent {
    replicas: BTreeMap<String, ReadBackReplica>,
    per_second: Vec<u64>,
}

impl Traffic {
    /// One read-back of `replica`, answered in `second` of the run.
    fn count(&self, replica: &str, direct: bool, failed: bool, second: u64) {
        let mut sent = self.0.lock().unwrap();
        let second = second as usize;
        if sent.per_second.len() <= second {
            sent.per_second.resize(second + 1, 0);
        }
        sent.per_second[second] += 1;
        let r = sent
            .replicas
            .entry(replica.to_owned())
            .or_insert_with(|| ReadBackReplica {
                replica: replica.to_owned(),
                ..Default::default()
            });
        if direct {
            r.direct += 1;
        } else {
            r.through_balancer += 1;
        }
        r.failed += u64::from(failed);
    }

    fn report(&self, budget_ratio: f64) -> ReadBackTraffic {
        let sent = self.0.lock().unwrap();
        ReadBackTraffic {
            replicas: sent.replicas.values().cloned().collect(),
            budget_ratio,
            per_second: sent.per_second.clone(),
        }
    }
}

/// An upload to check.
pub struct Job {
    /// What was stored.
    pub upload: Upload,
    /// Path (or URL) that reads it back.
    pub read: String,
    /// How the read-back is sent and judged.
    pub rule: ReadRule,
    /// When the upload completed.
    pub done_at: Instant,
}

/// The read-back service of a run.
pub struct Readback {
    scenario: Arc<Scenario>,
    tokens: Arc<TokenCache>,
    client: reqwest::Client,
    limit: Arc<Semaphore>,
    stop: CancellationToken,
    /// Checks in progress. Finished ones are reaped as new ones start and
    /// folded into `done`, so a long run holds only the checks still running.
    tasks: Mutex<tokio::task::JoinSet<Checked>>,
    /// The checks reaped so far, folded into the verdict (fixed memory).
    done: Mutex<Tally>,
    direct: Arc<RwLock<Vec<String>>>,
    recorder: Arc<Recorder>,
    /// Every name of every replica.
    book: Arc<ReplicaBook>,
    traffic: Arc<Traffic>,
    /// Uploads that could not be read back, by `request: reason`.
    unverifiable: Mutex<BTreeMap<String, u64>>,
    /// Replicas any read-back has met: with a sticky balancer the load may
    /// never meet a replica the spreading read-backs do, and every upload
    /// must be read there too.
    met: Arc<Mutex<BTreeSet<String>>>,
    /// Reads through the balancer, run-wide, since one last met a replica
    /// nobody had met before: once they are many, the run knows every
    /// replica, and an upload needs no reads beyond one per replica.
    quiet: Arc<std::sync::atomic::AtomicUsize>,
    /// The writes sent and failed, and (with `[verify] audit`) the
    /// acknowledged ones, for the audit after the run.
    writes: Mutex<WriteLedger>,
}

impl Readback {
    /// A read-back service for `scenario`; `stop` abandons checks in progress.
    pub fn new(
        scenario: Arc<Scenario>,
        tokens: Arc<TokenCache>,
        recorder: Arc<Recorder>,
        book: Arc<ReplicaBook>,
        stop: CancellationToken,
    ) -> Self {
        let client = super::client::client_builder(&scenario.target)
            .build()
            .expect("a plain HTTP client builds");
        let scenario_replicas = scenario
            .verify
            .replicas
            .iter()
            .map(|r| r.url.clone())
            .collect();
        Readback {
            book,
            traffic: Arc::default(),
            scenario,
            tokens,
            client,
            limit: Arc::new(Semaphore::new(CONCURRENT_CHECKS)),
            stop,
            tasks: Mutex::default(),
            done: Mutex::default(),
            direct: Arc::new(RwLock::new(scenario_replicas)),
            recorder,
            unverifiable: Mutex::default(),
            met: Arc::default(),
            quiet: Arc::default(),
            writes: Mutex::default(),
        }
    }

    /// Counts a write (a request with a read-back) that completed: sent at
    /// `from_s` and ended at `to_s`, seconds of the run.
    pub fn wrote(&self, failed: bool, from_s: f64, to_s: f64) {
        self.writes.lock().unwrap().count(failed, from_s, to_s);
    }

    /// Asks each listed replica once, before the load, what its answers
    /// call it (the replica header or sticky cookie of any answer), so that
    /// the balancer's name for it and its URL are one replica from the first
    /// request on. A replica that does not answer keeps its address as name.
    pub async fn introduce_replicas(&self) {
        let bases = self.direct.read().unwrap().clone();
        let source = &self.scenario.target.replica;
        // All at once: a replica that is down costs the start one timeout,
        // not one per replica. Learnt in the listed order, so two replicas
        // answering alike resolve the same way every run.
        let asked = bases.iter().map(|base| async move {
            let answer = self
                .client
                .get(format!("{base}/"))
                .timeout(std::time::Duration::from_secs(5))
                .send()
                .await;
            answer
                .ok()
                .and_then(|a| check::replica_of(source, a.headers()))
        });
        let answers = tokio::select! {
            answers = futures::future::join_all(asked) => answers,
            _ = self.stop.cancelled() => return,
        };
        for (base, value) in bases.iter().zip(answers) {
            if let Some(value) = value {
                self.book.learn(base, &value, true);
            }
        }
    }

    /// Replaces the replicas read straight from (pods found through
    /// Kubernetes change as they are killed and replaced); checks in progress
    /// use the new list from their next round.
    pub fn set_direct(&self, replicas: Vec<String>) {
        *self.direct.write().unwrap() = replicas;
    }

    /// Counts an upload that succeeded but cannot be read back, and why.
    /// Said once per reason as it happens; the count goes to the verdict.
    pub fn unverifiable(&self, request: &str, why: &str) {
        let key = format!("{request}: {why}");
        let mut counts = self.unverifiable.lock().unwrap();
        let count = counts.entry(key).or_default();
        if *count == 0 {
            tracing::warn!("{request}: an upload cannot be verified: {why}");
        }
        *count += 1;
    }

    /// Starts checking an upload on every replica the run meets.
    pub fn check(&self, job: Job) {
        if self.scenario.verify.audit {
            self.writes.lock().unwrap().acknowledge(Acknowledged {
                upload: job.upload.clone(),
                read: job.read.clone(),
                rule: job.rule.clone(),
            });
        }
        let scenario = Arc::clone(&self.scenario);
        let tokens = Arc::clone(&self.tokens);
        let client = self.client.clone();
        let limit = Arc::clone(&self.limit);
        let stop = self.stop.clone();
        let direct = Arc::clone(&self.direct);
        let recorder = Arc::clone(&self.recorder);
        let met = Arc::clone(&self.met);
        let quiet = Arc::clone(&self.quiet);
        let book = Arc::clone(&self.book);
        let traffic = Arc::clone(&self.traffic);
        let mut tasks = self.tasks.lock().unwrap();
        self.reap(&mut tasks);
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let seen_in_run = || {
                let mut all = recorder.replicas();
                all.extend(met.lock().unwrap().iter().cloned());
                all
            };
            let meet = |name: &str, through_balancer: bool| {
                use std::sync::atomic::Ordering::Relaxed;
                let mut met = met.lock().unwrap();
                if met.insert(name.to_owned()) {
                    quiet.store(0, Relaxed);
                } else if through_balancer {
                    quiet.fetch_add(1, Relaxed);
                }
                quiet.load(Relaxed) > 2 * met.len()
            };
            let reader = Reader {
                scenario: &scenario,
                tokens: &tokens,
                client: &client,
                book: &book,
                traffic: &traffic,
                // An upload completed: the load has begun.
                started: recorder.started(),
            };
            poll(&reader, job, &direct, &seen_in_run, &meet, &stop).await
        });
    }

    /// Adds the uploads judged and the read-backs sent so far to `out`.
    pub fn live_counts(&self, out: &mut crate::measure::live::LiveCounts) {
        self.reap(&mut self.tasks.lock().unwrap());
        out.uploads = self.done.lock().unwrap().by_replica();
        out.add_read_backs(self.traffic.0.lock().unwrap().replicas.values());
    }

    /// Folds the checks that have finished into the verdict.
    fn reap(&self, tasks: &mut tokio::task::JoinSet<Checked>) {
        while let Some(finished) = tasks.try_join_next() {
            if let Ok(checked) = finished {
                self.keep(checked);
            }
        }
    }

    /// Folds a finished check into the verdict.
    fn keep(&self, checked: Checked) {
        self.done.lock().unwrap().add(&checked);
    }

    /// Waits for every check (each ends by its own window, or at stop) and
    /// gives the verdict, unverifiable uploads included, with the
    /// time-to-visible histogram (µs).
    pub async fn finish(&self) -> (ConsistencyVerdict, hdrhistogram::Histogram<u64>) {
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap());
        while let Some(finished) = tasks.join_next().await {
            if let Ok(checked) = finished {
                self.keep(checked);
            }
        }
        let tally = std::mem::take(&mut *self.done.lock().unwrap());
        let mut everyone = self.recorder.replicas();
        everyone.extend(self.met.lock().unwrap().iter().cloned());
        everyone.retain(|r| is_replica(r));
        let (mut verdict, visible) = tally.finish(&everyone);
        let ledger = std::mem::take(&mut *self.writes.lock().unwrap());
        let (writes, acknowledged, dropped) = ledger.finish();
        verdict.writes = writes;
        if self.scenario.verify.audit {
            let reader = Reader {
                scenario: &self.scenario,
                tokens: &self.tokens,
                client: &self.client,
                book: &self.book,
                traffic: &self.traffic,
                started: self.recorder.started(),
            };
            let window = self.scenario.verify.visible_within;
            verdict.writes.audit =
                Some(audit::audit(&reader, acknowledged, dropped, window, &self.stop).await);
        }
        verdict.read_backs = self.traffic.report(self.scenario.verify.budget);
        verdict.unverifiable_reasons = std::mem::take(&mut *self.unverifiable.lock().unwrap());
        verdict.unverifiable = verdict.unverifiable_reasons.values().sum();
        (verdict, visible)
    }
}

/// What one read-back needs.
struct Reader<'a> {
    scenario: &'a Scenario,
    tokens: &'a TokenCache,
    client: &'a reqwest::Client,
    book: &'a ReplicaBook,
    traffic: &'a Traffic,
    /// When the load began (second 0 of the run's timelines).
    started: Instant,
}

/// One read: the replica value its answer gave (header or cookie, raw),
/// and what it saw.
async fn read(
    scenario: &Scenario,
    tokens: &TokenCache,
    client: &reqwest::Client,
    url: &str,
    upload: &Upload,
    rule: &ReadRule,
) -> (Option<String>, Seen) {
    let mut rb = client.request(rule.method.into(), url);
    if let Some((content_type, body)) = &rule.body {
        rb = rb
            .header(reqwest::header::CONTENT_TYPE, content_type.as_str())
            .body(body.to_vec());
    }
    match &scenario.auth {
        Auth::OpenmrsBasic {
            username, password, ..
        } => {
            rb = rb.basic_auth(
                auth::credential(username).unwrap_or_default(),
                auth::credential(password),
            );
        }
        Auth::Bearer { token } => {
            if let Some(t) = auth::credential(token) {
                rb = rb.bearer_auth(t);
            }
        }
        Auth::Keycloak { refresh_before, .. } => {
            if let Some(t) = tokens.current(refresh_before.0).await {
                rb = rb.bearer_auth(t);
            }
        }
        Auth::None => {}
    }
    match rb.send().await {
        Err(e) => (
            None,
            Seen::Error(check::transport_class(&e).as_str().to_owned()),
        ),
        Ok(response) => {
            let status = response.status().as_u16();
            let replica = check::replica_of(&scenario.target.replica, response.headers());
            match response.bytes().await {
                Ok(body) => (replica, compare(status, &body, upload, rule)),
                Err(e) => (
                    replica,
                    Seen::Error(check::transport_class(&e).as_str().to_owned()),
                ),
            }
        }
    }
}

/// Polls one upload until every replica shows the right bytes (or wrong
/// ones: that verdict is final) or the visibility window closes. Replicas
/// with an address are read there; the balancer is read only for replicas
/// the run met that have none (at least once when no address is known).
async fn poll(
    reader: &Reader<'_>,
    job: Job,
    direct: &RwLock<Vec<String>>,
    seen_in_run: &(dyn Fn() -> Vec<String> + Sync),
    meet: &(dyn Fn(&str, bool) -> bool + Sync),
    stop: &CancellationToken,
) -> Checked {
    let scenario = reader.scenario;
    let verify = &scenario.verify;
    let balancer_url = crate::scenario::join_url(&scenario.target.base_url, &job.read);
    let balancer = verify.through_balancer.then_some(balancer_url.as_str());
    let mut polled = Polled::new(verify.poll, verify.visible_within);
    loop {
        let bases = direct.read().unwrap().clone();
        let direct_names: BTreeMap<String, String> = bases
            .iter()
            .map(|b| (reader.book.name_of_url(b), b.clone()))
            .collect();
        // Replicas the load has met since the upload count too.
        for name in seen_in_run() {
            if is_replica(&name) {
                polled.expect(name);
            }
        }
        for (url, base) in polled.reads(&direct_names, balancer, &job.read) {
            let (value, what) = tokio::select! {
                r = read(scenario, reader.tokens, reader.client, &url, &job.upload, &job.rule) => r,
                _ = stop.cancelled() => break,
            };
            let name = match &base {
                Some(base) => {
                    if let Some(value) = &value {
                        reader.book.learn(base, value, false);
                    }
                    reader.book.name_of_url(base)
                }
                None => value
                    .map(|v| reader.book.attribute(&v))
                    .unwrap_or_else(|| UNKNOWN_REPLICA.to_owned()),
            };
            reader.traffic.count(
                &name,
                base.is_some(),
                matches!(what, Seen::Error(_)),
                reader.started.elapsed().as_secs(),
            );
            if is_replica(&name) {
                polled.run_knows_all = meet(&name, base.is_none());
            }
            let after_ms = job.done_at.elapsed().as_millis() as u64;
            polled.record(name, base.is_none(), after_ms, what);
        }
        let next = polled.after_round(
            job.done_at.elapsed(),
            !bases.is_empty(),
            verify.through_balancer,
        );
        let Some(pause) = next.filter(|_| !stop.is_cancelled()) else {
            break;
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.cancelled() => break,
        }
    }
    polled.checked(job.upload)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read-backs are counted per replica, direct or through the balancer,
    /// and per second of the run, which is how a stage gets its own.
    #[test]
    fn read_backs_are_counted_per_replica_and_per_second() {
        let t = Traffic::default();
        t.count("r1", true, false, 0);
        t.count("r1", false, true, 0);
        t.count("r2", false, false, 3);
        let report = t.report(2.0);
        assert_eq!(report.per_second, [2, 0, 0, 1]);
        assert_eq!(
            report.replicas,
            [
                ReadBackReplica {
                    replica: "r1".into(),
                    direct: 1,
                    through_balancer: 1,
                    failed: 1
                },
                ReadBackReplica {
                    replica: "r2".into(),
                    direct: 0,
                    through_balancer: 1,
                    failed: 0
                }
            ]
        );
        assert_eq!(report.budget_ratio, 2.0);
    }
}
