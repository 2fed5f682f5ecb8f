//! What a scenario compiles to: the checked, ready-to-run specs of its
//! target, load, personas, requests, sessions and read-backs, which the
//! engine uses without further checks.

use super::*;

/// How surge tells which replica answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaSource {
    /// A response header's value.
    Header(String),
    /// A sticky cookie's value.
    Cookie(String),
    /// Not told: every answer is attributed to `unknown`.
    Unknown,
}

/// Where the traffic goes.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    /// Base URL.
    pub base_url: String,
    /// Replica attribution.
    pub replica: ReplicaSource,
    /// Verify TLS certificates.
    pub tls_verify: bool,
    /// Per-request timeout.
    pub timeout: Duration,
    /// The control request's name (`[target] control`), if any.
    pub control: Option<String>,
}

impl TargetSpec {
    /// A request path joined to the base URL (a full URL is kept as it is).
    pub fn url(&self, path: &str) -> String {
        join_url(&self.base_url, path)
    }

    /// The base URL as reports may show it: without user name or password.
    pub fn display_url(&self) -> String {
        url_without_userinfo(&self.base_url)
    }
}

/// A URL as reports may show it: without user name or password (one that
/// has none, or does not parse, is kept as it is).
pub fn url_without_userinfo(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.as_str().trim_end_matches('/').to_owned()
        }
        _ => url.to_owned(),
    }
}

/// `path` joined to `base`, unless it is already a full http(s) URL.
pub fn join_url(base: &str, path: &str) -> String {
    if path.starts_with("http://") || path.starts_with("https://") {
        path.to_owned()
    } else {
        format!("{base}{path}")
    }
}

/// A full URL's path and query joined to `base`: a paging link built by a
/// server behind a proxy names the server's internal host; following it
/// as is would bypass the balancer (or fail).
pub fn rebase_url(base: &str, url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {
            let mut path = u.path().to_owned();
            // The base may carry a path prefix the link repeats (`/fhir`).
            if let Ok(b) = reqwest::Url::parse(base) {
                let prefix = b.path().trim_end_matches('/');
                if !prefix.is_empty() && path.starts_with(prefix) {
                    path = path[prefix.len()..].to_owned();
                }
            }
            match u.query() {
                Some(q) => format!("{base}{path}?{q}"),
                None => format!("{base}{path}"),
            }
        }
        _ => join_url(base, url),
    }
}

/// The seed of the Poisson draw when the file gives none: runs of one
/// scenario see the same arrival times unless asked otherwise.
pub const DEFAULT_SEED: u64 = 1;

/// How open-model arrivals are spaced over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrivalProcess {
    /// Evenly spaced at the planned rate: the n-th arrival when the planned
    /// count reaches n.
    Uniform,
    /// A Poisson process at the planned rate (independent arrivals, bursty
    /// as production traffic is), drawn from `seed`.
    Poisson {
        /// The seed of the draw.
        seed: u64,
    },
}

impl ArrivalProcess {
    /// `uniform arrivals` or `Poisson arrivals (seed 1)`.
    pub fn describe(&self) -> String {
        match self {
            ArrivalProcess::Uniform => "uniform arrivals".to_owned(),
            ArrivalProcess::Poisson { seed } => format!("Poisson arrivals (seed {seed})"),
        }
    }
}

/// The load model with its stages.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadPlan {
    /// Arrival rate.
    Open {
        /// Stages.
        stages: Vec<OpenStage>,
        /// Pre-started user pool size.
        max_users: usize,
        /// How long an arrival that finds no idle user may wait for one before
        /// it counts as dropped (zero: dropped at once).
        queue_timeout: Duration,
        /// How arrivals are spaced.
        arrivals: ArrivalProcess,
    },
    /// Virtual users.
    Closed {
        /// Stages.
        stages: Vec<ClosedStage>,
    },
}

impl LoadPlan {
    /// `(ramp, hold)` of every stage.
    pub fn stage_times(&self) -> Vec<(Duration, Duration)> {
        match self {
            LoadPlan::Open { stages, .. } => stages.iter().map(|s| (s.ramp.0, s.hold.0)).collect(),
            LoadPlan::Closed { stages } => stages.iter().map(|s| (s.ramp.0, s.hold.0)).collect(),
        }
    }

    /// Where each stage ends, from the start of the run.
    pub fn stage_ends(&self) -> Vec<Duration> {
        let mut at = Duration::ZERO;
        self.stage_times()
            .into_iter()
            .map(|(ramp, hold)| {
                at += ramp + hold;
                at
            })
            .collect()
    }

    /// Planned length of the run.
    pub fn duration(&self) -> Duration {
        self.stage_ends().last().copied().unwrap_or_default()
    }

    /// Most virtual users at once: the open model's pool, the closed
    /// model's largest stage.
    pub fn peak_users(&self) -> usize {
        match self {
            LoadPlan::Open { max_users, .. } => *max_users,
            LoadPlan::Closed { stages } => stages.iter().map(|s| s.users).max().unwrap_or(0),
        }
    }

    /// The load model.
    pub fn model(&self) -> crate::bundle::LoadModel {
        match self {
            LoadPlan::Open { .. } => crate::bundle::LoadModel::Open,
            LoadPlan::Closed { .. } => crate::bundle::LoadModel::Closed,
        }
    }
}

/// Command-line changes to a scenario's load.
#[derive(Debug, Clone, Default)]
pub struct LoadOverride {
    /// Run the open model at this many arrivals per second.
    pub rate: Option<f64>,
    /// Run the closed model with this many users.
    pub users: Option<usize>,
    /// Run this long (a single stage).
    pub duration: Option<Duration>,
    /// Multiply every think time by this (e.g. 0.1 to compress a clinic's day).
    pub think_scale: Option<f64>,
    /// `NAME=WEIGHT`: a persona's new weight (0 leaves it out).
    pub persona_weights: Vec<String>,
    /// Space the open model's arrivals this way instead of the file's.
    pub arrivals: Option<ArrivalProcess>,
}

/// A persona's step, resolved.
#[derive(Debug, Clone)]
pub struct StepSpec {
    /// Index into [`Scenario::requests`].
    pub request: usize,
    /// Think time after it.
    pub think: Think,
    /// Once, per value of a capture, or while a capture has a value.
    pub repeat: Repeat,
}

/// How many times a step sends its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repeat {
    /// Once.
    Once,
    /// Once per value of the capture `var`, at most `max` times.
    ForEach {
        /// Capture whose values are iterated.
        var: String,
        /// Cap.
        max: usize,
    },
    /// While the capture `var` has a value, at most `max` times.
    While {
        /// Capture that must be set.
        var: String,
        /// Cap.
        max: usize,
    },
}

/// Requests a `for_each`/`while` step sends at most, unless it says `max`.
pub const DEFAULT_REPEAT_MAX: usize = 10;

/// A weighted persona.
#[derive(Debug, Clone)]
pub struct PersonaSpec {
    /// Name.
    pub name: String,
    /// Weight.
    pub weight: u32,
    /// Steps.
    pub steps: Vec<StepSpec>,
}

/// Where a capture reads its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureFrom {
    /// A dotted path into the JSON body (`results.0.uuid`).
    Json(String),
    /// A response header.
    Header(String),
}

/// A request, resolved and ready to render.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// Name (the key in `[requests]`), used in reports.
    pub name: String,
    /// Method.
    pub method: Method,
    /// Path template.
    pub path: Template,
    /// Headers.
    pub headers: Vec<(String, Template)>,
    /// Body.
    pub body: Body,
    /// Expectations.
    pub expect: Expect,
    /// Captures: variable and source.
    pub captures: Vec<(String, CaptureFrom)>,
    /// Ledger what this request stores and read it back from every replica.
    pub consistency: Option<ConsistencySpec>,
    /// A logout: after it succeeds the user logs in afresh.
    pub ends_session: bool,
    /// A full URL in `path` keeps its path and query but goes to the target.
    pub rebase: bool,
    /// The run may end without sending it.
    pub optional: bool,
}

/// How a storing request's result is found and read back.
#[derive(Debug, Clone)]
pub struct ConsistencySpec {
    /// Where the answer names the stored object.
    pub id: CaptureFrom,
    /// Path that reads it back; `${id}` is the id.
    pub read: Template,
    /// How the read-back is sent and judged.
    pub rule: ReadRule,
}

/// `[verify]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifySpec {
    /// Replicas to read straight from.
    pub replicas: Vec<DirectReplica>,
    /// How long an upload may take to appear everywhere.
    pub visible_within: Duration,
    /// Pause between read-backs.
    pub poll: Duration,
    /// Also read through the balancer.
    pub through_balancer: bool,
    /// Read every acknowledged write once more after the run, through the
    /// balancer, within `visible_within`, and count those gone.
    pub audit: bool,
    /// Read-backs at most this many times the scenario's own requests sent,
    /// or the reports say so.
    pub budget: f64,
}

/// A replica read straight from: its base URL and, when stated, the value
/// the replica header or sticky cookie gives for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectReplica {
    /// Base URL, without a trailing `/`.
    pub url: String,
    /// What its answers call it (`answers_as`).
    pub answers_as: Option<String>,
}

impl DirectReplica {
    /// `URL` or `NAME=URL` (`--replica`): the name is what the replica
    /// header or sticky cookie gives for it.
    pub fn parse_arg(text: &str) -> (Option<&str>, &str) {
        match text.split_once('=') {
            Some((name, url)) if !name.is_empty() && !name.contains(['/', ':']) => {
                (Some(name), url)
            }
            _ => (None, text),
        }
    }
}

/// What counts as a dropped session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRules {
    /// Statuses meaning "not logged in".
    pub drop_statuses: Vec<u16>,
    /// A 3xx whose Location contains this is a redirect to the login page.
    pub login_redirect: Option<String>,
    /// The probe request's index, if one is configured.
    pub probe: Option<usize>,
    /// JSON (path, value) pairs the probe's answer holds when the session is gone.
    pub probe_unauthenticated: Vec<(String, serde_json::Value)>,
    /// What a user does after a drop.
    pub on_drop: OnDrop,
}

impl SessionRules {
    /// Whether an answer says the session is gone. `probe` is true for the probe request.
    pub fn is_unauthenticated(
        &self,
        status: u16,
        location: Option<&str>,
        body: &[u8],
        probe: bool,
    ) -> bool {
        if self.drop_statuses.contains(&status) {
            return true;
        }
        if (300..400).contains(&status) {
            if let (Some(marker), Some(location)) = (&self.login_redirect, location) {
                if location.contains(marker.as_str()) {
                    return true;
                }
            }
        }
        if probe && !self.probe_unauthenticated.is_empty() {
            if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
                return self
                    .probe_unauthenticated
                    .iter()
                    .all(|(path, want)| json_path::json_path(&json, path) == Some(want));
            }
        }
        false
    }
}

/// How a read-back is sent and judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRule {
    /// `GET` unless the probe is, say, a mapping call (`POST`).
    pub method: Method,
    /// Body of the read-back (content type, bytes), for a `POST` probe.
    pub body: Option<(String, std::sync::Arc<[u8]>)>,
    /// What an answer must hold for the replica to have the write.
    pub compare: Compare,
    /// Statuses meaning "not there (yet)".
    pub absent: Vec<u16>,
}

/// How a read-back's answer says the replica has what was written
/// (`consistency.compare`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compare {
    /// The stored bytes come back, the same size and SHA-256.
    #[default]
    Bytes,
    /// Any 2xx (a cache probe, whose answer is not the stored bytes; a
    /// record read by its id, which comes back with server fields added).
    Status,
    /// A search (a FHIR searchset Bundle) that finds it: at least one entry;
    /// an empty result means not there (yet).
    Search,
}

impl Default for ReadRule {
    fn default() -> Self {
        ReadRule {
            method: Method::Get,
            body: None,
            compare: Compare::Bytes,
            absent: vec![404, 410],
        }
    }
}
