//! Reading uploads back: through the balancer until every replica seen in
//! the run has answered, and straight from each replica whose address is
//! given, polling until the right bytes appear or the window closes.
//!
//! Read-backs run beside the load on their own client (no cookie jar, so a
//! sticky balancer spreads them), authenticate per request, and are not
//! counted as load; what they see goes to `verify::consistency`.

use super::auth::{self, TokenCache};
use super::check;
use crate::bundle::ConsistencyVerdict;
use crate::measure::{Recorder, UNKNOWN_REPLICA};
use crate::scenario::ReadRule;
use crate::scenario::{Auth, Scenario};
use crate::verify::consistency::{compare, Checked, Observation, Seen, Tally, Upload};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Read-backs running at once, at most.
const CONCURRENT_CHECKS: usize = 32;

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
    /// Uploads that could not be read back, by `request: reason`.
    unverifiable: Mutex<BTreeMap<String, u64>>,
    /// Replicas any read-back has met: with a sticky balancer the load may
    /// never meet a replica the spreading read-backs do, and every upload
    /// must be read there too.
    met: Arc<Mutex<BTreeSet<String>>>,
}

impl Readback {
    /// A read-back service for `scenario`; `stop` abandons checks in progress.
    pub fn new(
        scenario: Arc<Scenario>,
        tokens: Arc<TokenCache>,
        recorder: Arc<Recorder>,
        stop: CancellationToken,
    ) -> Self {
        let client = super::client_builder(&scenario.target)
            .build()
            .expect("a plain HTTP client builds");
        let scenario_replicas = scenario.verify.replicas.clone();
        Readback {
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
        let scenario = Arc::clone(&self.scenario);
        let tokens = Arc::clone(&self.tokens);
        let client = self.client.clone();
        let limit = Arc::clone(&self.limit);
        let stop = self.stop.clone();
        let direct = Arc::clone(&self.direct);
        let recorder = Arc::clone(&self.recorder);
        let met = Arc::clone(&self.met);
        let mut tasks = self.tasks.lock().unwrap();
        while let Some(finished) = tasks.try_join_next() {
            if let Ok(checked) = finished {
                self.keep(checked);
            }
        }
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let seen_in_run = || {
                let mut all = recorder.replicas();
                all.extend(met.lock().unwrap().iter().cloned());
                all
            };
            let meet = |name: &str| {
                met.lock().unwrap().insert(name.to_owned());
            };
            poll(
                &scenario,
                &tokens,
                &client,
                job,
                &direct,
                &seen_in_run,
                &meet,
                &stop,
            )
            .await
        });
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
        everyone.retain(|r| r != UNKNOWN_REPLICA);
        let (mut verdict, visible) = tally.finish(&everyone);
        verdict.unverifiable_reasons = std::mem::take(&mut *self.unverifiable.lock().unwrap());
        verdict.unverifiable = verdict.unverifiable_reasons.values().sum();
        (verdict, visible)
    }
}

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
/// ones: that verdict is final) or the visibility window closes.
async fn poll(
    scenario: &Scenario,
    tokens: &TokenCache,
    client: &reqwest::Client,
    job: Job,
    direct: &RwLock<Vec<String>>,
    seen_in_run: &(dyn Fn() -> Vec<String> + Sync),
    meet: &(dyn Fn(&str) + Sync),
    stop: &CancellationToken,
) -> Checked {
    let verify = &scenario.verify;
    let deadline = job.done_at + verify.visible_within;
    // Every replica the load has met (refreshed each round, below).
    let mut expected: BTreeSet<String> = BTreeSet::new();
    let mut seen: BTreeMap<String, Vec<Observation>> = BTreeMap::new();
    let settled = |seen: &BTreeMap<String, Vec<Observation>>, name: &str| {
        seen.get(name).is_some_and(|o| {
            o.iter()
                .any(|o| matches!(o.seen, Seen::Same | Seen::Different))
        })
    };
    let balancer_url = crate::scenario::join_url(&scenario.target.base_url, &job.read);
    // A direct address's replica name, once its first answer told it.
    let mut direct_names: std::collections::HashMap<String, String> = Default::default();
    let mut quiet_reads = 0usize;
    loop {
        let mut reads: Vec<(String, Option<String>)> = Vec::new();
        let bases = direct.read().unwrap().clone();
        // Replicas the load has met since the upload count too.
        for name in seen_in_run() {
            if name != UNKNOWN_REPLICA && expected.insert(name) {
                quiet_reads = 0;
            }
        }
        for base in &bases {
            reads.push((
                crate::scenario::join_url(base, &job.read),
                Some(base.clone()),
            ));
        }
        if verify.through_balancer {
            // One read per replica still unsettled (at least one), so a
            // spreading balancer reaches each of them over a few rounds.
            let open = expected
                .iter()
                .filter(|r| !settled(&seen, r))
                .count()
                .max(1);
            reads.extend(std::iter::repeat_n((balancer_url.clone(), None), open));
        }
        for (url, direct) in reads {
            if let Some(name) = direct.as_ref().and_then(|base| direct_names.get(base)) {
                if settled(&seen, name) {
                    continue;
                }
            }
            let (replica, what) = tokio::select! {
                r = read(scenario, tokens, client, &url, &job.upload, &job.rule) => r,
                _ = stop.cancelled() => break,
            };
            let name = replica
                .or(direct.clone())
                .unwrap_or_else(|| UNKNOWN_REPLICA.to_owned());
            let through_balancer = direct.is_none();
            if name != UNKNOWN_REPLICA {
                meet(&name);
            }
            if let Some(base) = direct {
                direct_names.insert(base, name.clone());
            }
            if name != UNKNOWN_REPLICA && expected.insert(name.clone()) {
                quiet_reads = 0;
            } else if through_balancer {
                quiet_reads += 1;
            }
            if settled(&seen, &name) {
                continue;
            }
            let after_ms = job.done_at.elapsed().as_millis() as u64;
            seen.entry(name).or_default().push(Observation {
                after_ms,
                seen: what,
            });
        }
        // Early in a run the replicas seen so far may not be all of them:
        // through the balancer alone, "everywhere" needs enough reads in a
        // row that found no replica it did not know.
        let known_all =
            !bases.is_empty() || !verify.through_balancer || quiet_reads > 2 * expected.len();
        let all_settled =
            known_all && !expected.is_empty() && expected.iter().all(|r| settled(&seen, r));
        if all_settled || Instant::now() >= deadline || stop.is_cancelled() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(verify.poll) => {}
            _ = stop.cancelled() => break,
        }
    }
    for replica in expected {
        // Never reached: its verdict is "unverified", not silently absent.
        seen.entry(replica).or_default();
    }
    seen.remove(UNKNOWN_REPLICA);
    Checked {
        upload: job.upload,
        seen,
    }
}
