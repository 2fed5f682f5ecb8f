//! What one virtual user does: render a request from its own values, send it
//! on its own client (own cookie jar), read the body to the end, judge it,
//! record it, keep its captures, think.

use super::auth::{self, TokenCache};
use super::check;
use super::readback::{Job, Readback};
use crate::bundle::ErrorClass;
use crate::measure::replicas::{ListedReplica, ReplicaBook};
use crate::measure::{Recorder, Sample, UNKNOWN_REPLICA};
use crate::scenario::{Auth, Expect, Repeat, ReplicaSource, Scenario, Values};
use crate::verify::consistency::Upload;
use crate::verify::session::SessionLedger;
use reqwest::header::HeaderMap;
use reqwest::{Client, RequestBuilder};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Numbers virtual users for the session ledger.
static NEXT_USER: AtomicU64 = AtomicU64::new(1);
use tokio_util::sync::CancellationToken;

/// A user's own values: captures, current feeder rows, session facts.
#[derive(Clone, Default)]
pub struct UserState {
    pub(super) id: u64,
    pub(super) vars: HashMap<String, String>,
    /// Every value of each capture (several for `results.*.uuid`), for `for_each`.
    pub(super) lists: HashMap<String, Vec<String>>,
    pub(super) rows: HashMap<String, Arc<HashMap<String, String>>>,
    pub(super) logged_in: bool,
    pub(super) sticky_replica: Option<String>,
    /// While a session the cluster accepted is alive: the replica that served it last.
    pub(super) session: Option<String>,
    /// The last session was dropped: the next one accepted is a re-login.
    pub(super) dropped: bool,
    /// The user logged out: the next login must not carry the old cookie.
    pub(super) logged_out: bool,
    /// `on_drop = "stop"` took this user out of the run.
    pub(super) stopped: bool,
    /// Why each variable this user lacks has no value (the capture that
    /// found nothing, the request that failed), for "not sent" reasons.
    pub(super) missed: HashMap<String, String>,
    /// Why the last login failed, while the user is not logged in.
    pub(super) login_failure: Option<String>,
    /// The user's own cookie jar (its client's), so surge can tell whether a
    /// request carries the session: one to another host or path, or with its
    /// own Cookie header, does not.
    pub(crate) jar: Option<Arc<reqwest::cookie::Jar>>,
}

impl Values for UserState {
    fn feeder(&self, feeder: &str, column: &str) -> Option<&str> {
        self.rows.get(feeder)?.get(column).map(String::as_str)
    }
    fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

/// What became of a failed exchange, for people: `answered 401`, or
/// `failed (connect)` when no answer came.
pub(super) fn what_happened(status: Option<u16>, class: ErrorClass) -> String {
    match status {
        Some(status) => format!("answered {status}"),
        None => format!("failed ({})", class.as_str()),
    }
}

/// A user's values plus `${id}`, for rendering read-back paths.
struct WithId<'a> {
    id: &'a str,
    user: &'a UserState,
}

impl Values for WithId<'_> {
    fn feeder(&self, feeder: &str, column: &str) -> Option<&str> {
        self.user.feeder(feeder, column)
    }
    fn var(&self, name: &str) -> Option<&str> {
        if name == "id" {
            Some(self.id)
        } else {
            self.user.var(name)
        }
    }
}

/// Whether the user goes on.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// Next step.
    Continue,
    /// The run is stopping.
    Stop,
}

/// What came back from one exchange.
pub struct Reply {
    /// Status, if any.
    pub status: Option<u16>,
    /// Headers (empty on a transport error).
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: bytes::Bytes,
    /// The failure class, if it failed.
    pub error: Option<ErrorClass>,
    /// The replica that answered, when known.
    pub replica: Option<String>,
}

/// Everything users share during a run.
pub struct Shared {
    /// The scenario.
    pub scenario: Arc<Scenario>,
    /// The recorder.
    pub recorder: Arc<Recorder>,
    /// Cancelled when the run stops: in-flight requests are abandoned (and count as cancelled).
    pub stop: CancellationToken,
    /// Recorder index of the login request, when the auth logs in.
    pub login_index: Option<usize>,
    /// Recorder index of the token request, when the auth fetches tokens.
    pub token_index: Option<usize>,
    /// Shared Keycloak token.
    pub tokens: Arc<TokenCache>,
    /// Reads uploads back from every replica.
    pub readback: Readback,
    /// Every name of every replica: one replica, one name in every count.
    pub replicas: Arc<ReplicaBook>,
    /// Every session accepted, switched and dropped.
    pub sessions: SessionLedger,
    pub(super) login_expect: Expect,
    /// The token endpoint's first failure has been said (once a run).
    pub(super) said_auth_failed: std::sync::atomic::AtomicBool,
    /// The target's origin, parsed once (see `render::origin_of`).
    pub(super) origin: Option<(String, reqwest::Url)>,
}

impl Shared {
    /// Everything the run has counted so far, for metrics sent out while
    /// it goes.
    pub fn live_counts(&self) -> crate::measure::live::LiveCounts {
        let mut counts = self.recorder.counts();
        counts.sessions = self.sessions.counts();
        self.readback.live_counts(&mut counts);
        counts
    }
}

impl crate::chaos::runner::LoadView for Shared {
    fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    fn sessions_by_replica(&self) -> std::collections::BTreeMap<String, u64> {
        self.sessions.sessions_by_replica()
    }

    fn read_back_from(&self, replicas: Vec<ListedReplica>) {
        self.replicas.discovered(&replicas);
        self.readback
            .set_direct(replicas.into_iter().map(|r| r.url).collect());
    }
}

impl Shared {
    /// Users' shared state; `names` is where auth requests get their recorder indices.
    pub fn new(
        scenario: Arc<Scenario>,
        recorder: Arc<Recorder>,
        stop: CancellationToken,
        interrupt: CancellationToken,
    ) -> Self {
        // Auth requests follow the scenario's own in the recorder's names.
        let names = Self::request_names(&scenario);
        let own = scenario.requests.len();
        let index_of = |name: &str| names[own..].iter().position(|n| n == name).map(|i| own + i);
        let (login_index, token_index) =
            (index_of(auth::LOGIN_REQUEST), index_of(auth::TOKEN_REQUEST));
        let mut login_expect = Expect {
            status: vec![200],
            ..Default::default()
        };
        login_expect
            .json_equals
            .insert("authenticated".to_owned(), toml::Value::Boolean(true));
        let tokens = Arc::new(TokenCache::default());
        let listed: Vec<ListedReplica> = scenario
            .verify
            .replicas
            .iter()
            .map(ListedReplica::from)
            .collect();
        let replicas = Arc::new(ReplicaBook::new(&listed));
        let readback = Readback::new(
            Arc::clone(&scenario),
            Arc::clone(&tokens),
            Arc::clone(&recorder),
            Arc::clone(&replicas),
            interrupt,
        );
        Shared {
            origin: super::render::origin_of(&scenario.target.base_url),
            scenario,
            recorder,
            stop,
            login_index,
            token_index,
            tokens,
            readback,
            replicas,
            sessions: SessionLedger::default(),
            login_expect,
            said_auth_failed: Default::default(),
        }
    }

    /// Request names in recorder order: the scenario's, then auth's.
    pub fn request_names(scenario: &Scenario) -> Vec<String> {
        let mut names: Vec<String> = scenario.requests.iter().map(|r| r.name.clone()).collect();
        names.extend(Self::setup_request_names(scenario));
        names
    }

    /// The requests a user makes once to sign in (the login, the token
    /// fetch), not per arrival: per-user setup, not work.
    pub fn setup_request_names(scenario: &Scenario) -> Vec<String> {
        let mut names = Vec::new();
        if auth::logs_in(&scenario.auth) {
            names.push(auth::LOGIN_REQUEST.to_owned());
        }
        if auth::fetches_tokens(&scenario.auth) {
            names.push(auth::TOKEN_REQUEST.to_owned());
        }
        names
    }

    /// Runs step `step` of `persona`, due at `scheduled`, then thinks.
    pub async fn step(
        &self,
        client: &Client,
        state: &mut UserState,
        persona: usize,
        step: usize,
        scheduled: Instant,
    ) -> Flow {
        let persona = &self.scenario.personas[persona];
        if state.id == 0 {
            state.id = NEXT_USER.fetch_add(1, Ordering::Relaxed);
        }
        if state.stopped {
            // Taken out after a dropped session (`on_drop = "stop"`): idle, cheaply.
            return self
                .think(crate::scenario::Think {
                    min: std::time::Duration::from_millis(200),
                    max: std::time::Duration::from_millis(200),
                })
                .await;
        }
        if step == 0 {
            for feeder in &self.scenario.feeders {
                state.rows.insert(feeder.name.clone(), feeder.next_row());
            }
        }
        let mut scheduled = scheduled;
        if self.login_index.is_some() && !state.logged_in {
            match self.login(client, state, scheduled).await {
                None => return Flow::Stop,
                Some(false) => {
                    let why = state
                        .login_failure
                        .as_deref()
                        .unwrap_or("auth.login failed");
                    let request = persona.steps[step].request;
                    self.recorder
                        .not_sent(request, &format!("not logged in: {why}"));
                    return self.think(persona.steps[step].think).await;
                }
                Some(true) => scheduled = Instant::now(),
            }
        }
        let spec = &persona.steps[step];
        // For each: the follow-up calls a UI fires per search hit, back to back.
        let items: Vec<String> = match &spec.repeat {
            Repeat::ForEach { var, max } => state
                .lists
                .get(var)
                .map(|l| l.iter().take(*max).cloned().collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let mut sent = Some(());
        for n in 0.. {
            let again = match &spec.repeat {
                Repeat::Once => n == 0,
                Repeat::ForEach { var, .. } => match items.get(n) {
                    Some(item) => {
                        state.vars.insert(var.clone(), item.clone());
                        true
                    }
                    None => false,
                },
                Repeat::While { var, max } => n < *max && state.vars.contains_key(var),
            };
            if !again {
                break;
            }
            let due = if n == 0 { scheduled } else { Instant::now() };
            sent = self.request(client, state, spec.request, due).await;
            if sent.is_none() {
                break;
            }
        }
        if sent.is_none() {
            return Flow::Stop;
        }
        self.think(spec.think).await
    }

    async fn think(&self, think: crate::scenario::Think) -> Flow {
        if think.max.is_zero() {
            return Flow::Continue;
        }
        let wait = if think.max > think.min {
            think.min + (think.max - think.min).mul_f64(rand::random::<f64>())
        } else {
            think.min
        };
        let due = Instant::now() + wait;
        tokio::select! {
            _ = tokio::time::sleep_until(due.into()) => {
                // How late the think ended: the generator's own lateness.
                self.recorder.late(due.elapsed());
                Flow::Continue
            }
            _ = self.stop.cancelled() => Flow::Stop,
        }
    }

    /// Sends scenario request `index`. `None` if the run stopped meanwhile.
    pub async fn request(
        &self,
        client: &Client,
        state: &mut UserState,
        index: usize,
        scheduled: Instant,
    ) -> Option<()> {
        if self.stop.is_cancelled() {
            return None;
        }
        let spec = &self.scenario.requests[index];
        let building = Instant::now();
        let built = self.build(client, index, state);
        // Making the request (rendering, generating content) is the client's
        // work, not the server's: it does not count towards latency.
        let scheduled = scheduled + building.elapsed();
        let super::render::Built {
            request: mut rb,
            made,
            url,
        } = match built {
            Ok(built) => built,
            Err(missing) => {
                // Never sent, so no sample: counted apart, with the reason.
                let why = self.why_missing(state, &missing.0);
                tracing::debug!("{} not sent: {why}", spec.name);
                self.recorder.not_sent(index, &why);
                return Some(());
            }
        };
        let token = self.bearer(client, state).await.ok()?;
        let authenticated = token.is_some() || !auth::fetches_tokens(&self.scenario.auth);
        if let Some(token) = token {
            rb = rb.bearer_auth(token);
        }
        // Whether it carries the session, from the jar as it is sent (its
        // answer may set a cookie the request itself never had).
        let carried = if matches!(self.scenario.auth, Auth::OpenmrsBasic { .. }) {
            self.carries_session_cookie(state, spec, &url)
        } else {
            authenticated
        };
        let sent = Instant::now();
        let reply = self
            .exchange_as(index, rb, scheduled, &spec.expect, state, authenticated)
            .await?;
        if spec.consistency.is_some() {
            // A write: counted, failed or not, for the outage writes met.
            let started = self.recorder.started();
            self.readback.wrote(
                reply.error.is_some(),
                sent.saturating_duration_since(started).as_secs_f64(),
                started.elapsed().as_secs_f64(),
            );
        }
        if carried {
            self.follow_session(state, index, &reply);
        }
        if spec.ends_session && reply.error.is_none() {
            state.logged_in = false;
            state.session = None;
            state.logged_out = true;
        }
        if reply.error.is_none() && !spec.captures.is_empty() {
            // A capture that finds nothing unsets its variable: a stale value
            // (last page's `next` link, last search's hits) must not be reused.
            let found = check::capture_all(&spec.captures, &reply.headers, &reply.body);
            for ((var, values), (_, from)) in found.into_iter().zip(&spec.captures) {
                match values.first() {
                    Some(first) => {
                        state.vars.insert(var.clone(), first.clone());
                        state.missed.remove(&var);
                    }
                    None => {
                        state.vars.remove(&var);
                        let at = match from {
                            crate::scenario::CaptureFrom::Json(path) => format!("at {path}"),
                            crate::scenario::CaptureFrom::Header(h) => format!("in header {h}"),
                        };
                        let why = format!("capture in {} found nothing {at}", spec.name);
                        state.missed.insert(var.clone(), why);
                    }
                };
                state.lists.insert(var, values);
            }
        } else if let Some(class) = reply.error {
            for (var, _) in &spec.captures {
                if !state.vars.contains_key(var) {
                    let why = format!(
                        "{} {}, so it captured nothing",
                        spec.name,
                        what_happened(reply.status, class)
                    );
                    state.missed.insert(var.clone(), why);
                }
            }
        }
        // A record read back by a search or its status needs no bytes of
        // its own to compare: what was sent is ledgered as nothing.
        let made = made.or_else(|| {
            spec.consistency
                .as_ref()
                .filter(|c| c.rule.compare != crate::scenario::Compare::Bytes)
                .map(|_| (String::new(), 0))
        });
        if let (Some(consistency), Some((sha256, size)), None) =
            (&spec.consistency, made, reply.error)
        {
            self.ledger_upload(state, index, consistency, sha256, size, &reply);
        }
        Some(())
    }

    /// Ledgers a stored object and starts reading it back from every replica.
    fn ledger_upload(
        &self,
        state: &UserState,
        index: usize,
        consistency: &crate::scenario::ConsistencySpec,
        sha256: String,
        size: u64,
        reply: &Reply,
    ) {
        let name = &self.scenario.requests[index].name;
        let found = check::capture(
            &[("id".to_owned(), consistency.id.clone())],
            &reply.headers,
            &reply.body,
        );
        let Some(id) = found.ok().and_then(|mut v| v.pop()).map(|(_, id)| id) else {
            let why = match &consistency.id {
                crate::scenario::CaptureFrom::Json(path) => format!(
                    "the answer names no stored object at `{path}` ({})",
                    check::top_level_fields(&reply.body)
                ),
                crate::scenario::CaptureFrom::Header(h) => {
                    format!("the answer has no `{h}` header naming the stored object")
                }
            };
            self.readback.unverifiable(name, &why);
            return;
        };
        let values = WithId {
            id: &id,
            user: state,
        };
        let read = match consistency.read.render(&values) {
            Ok(read) => read,
            Err(missing) => {
                let why = format!(
                    "the read-back path needs `${{{}}}`, which this user lacks",
                    missing.0
                );
                self.readback.unverifiable(name, &why);
                return;
            }
        };
        let upload = Upload {
            id,
            request: name.clone(),
            sha256,
            size,
            replica: reply
                .replica
                .clone()
                .unwrap_or_else(|| UNKNOWN_REPLICA.to_owned()),
            at_s: self.recorder.started().elapsed().as_secs_f64(),
        };
        let job = Job {
            upload,
            read,
            rule: consistency.rule.clone(),
            done_at: Instant::now(),
        };
        self.readback.check(job);
    }

    /// One recorded HTTP exchange, timed to the end of the body. `None` if the
    /// run stopped before it finished (it then counts as cancelled).
    pub async fn exchange(
        &self,
        index: usize,
        rb: RequestBuilder,
        scheduled: Instant,
        expect: &Expect,
        state: &mut UserState,
    ) -> Option<Reply> {
        self.exchange_as(index, rb, scheduled, expect, state, true)
            .await
    }

    /// [`Shared::exchange`]; `authenticated` is false when the request went
    /// without the credential the scenario's auth should have given it, and
    /// then it is an `auth` failure whatever came back.
    async fn exchange_as(
        &self,
        index: usize,
        rb: RequestBuilder,
        scheduled: Instant,
        expect: &Expect,
        state: &mut UserState,
        authenticated: bool,
    ) -> Option<Reply> {
        if self.stop.is_cancelled() {
            // Never sent, so never issued: a stopped run claims no requests it did not make.
            return None;
        }
        self.recorder.issue(index);
        let sent = Instant::now();
        let io = async {
            let response = rb.send().await?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        };
        let result = tokio::select! {
            r = io => r,
            _ = self.stop.cancelled() => return None,
        };
        let done = Instant::now();
        let reply = match result {
            Err(e) => Reply {
                status: None,
                headers: HeaderMap::new(),
                body: bytes::Bytes::new(),
                error: Some(check::transport_class(&e)),
                replica: None,
            },
            Ok((status, headers, body)) => {
                let error = match check::judge(expect, status, &body) {
                    _ if !authenticated => Some(ErrorClass::Auth),
                    Ok(()) => None,
                    Err((class, what)) => {
                        if class == ErrorClass::Expectation {
                            self.recorder.expectation_failed(index, &what);
                        }
                        Some(class)
                    }
                };
                Reply {
                    status: Some(status),
                    headers,
                    body,
                    error,
                    replica: None,
                }
            }
        };
        let source = &self.scenario.target.replica;
        let named = check::replica_of(source, &reply.headers).map(|v| self.replicas.attribute(&v));
        if let (ReplicaSource::Cookie(_), Some(r)) = (source, &named) {
            state.sticky_replica = Some(r.clone());
        }
        let mut reply = reply;
        reply.replica = named.or_else(|| {
            state
                .sticky_replica
                .clone()
                .filter(|_| reply.status.is_some())
        });
        self.recorder.record(Sample {
            request: index,
            replica: reply.replica.as_deref().unwrap_or(UNKNOWN_REPLICA),
            scheduled,
            sent,
            done,
            status: reply.status,
            error: reply.error,
        });
        Some(reply)
    }

    /// A client of the user's own, around a fresh cookie jar surge can read
    /// (the run's shared settings: timeout, certificate rule, TLS
    /// configuration), and that jar.
    pub fn own_client(&self) -> reqwest::Result<(Client, Arc<reqwest::cookie::Jar>)> {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = super::client::client_builder(&self.scenario.target)
            .cookie_provider(Arc::clone(&jar))
            .build()?;
        Ok((client, jar))
    }

    /// Forgets the session (after a panic, the user starts clean).
    pub fn reset(state: &mut UserState) {
        *state = UserState {
            id: state.id,
            ..Default::default()
        };
    }
}
