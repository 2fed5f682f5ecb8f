//! Scenario files: the TOML format, its validation, templates and feeders.
//!
//! [`Scenario::load`] reads a file from `scenarios/`, checks everything that
//! can be checked before a run (unknown fields, bad durations, requests a step
//! names but nobody defines, placeholders nobody can fill, missing fixtures,
//! malformed thresholds) and returns a [`Scenario`] the engine runs without
//! further checks. Every problem is a [`ScenarioError`] naming file, line and
//! column. The format is documented in `scenarios/README.md`.

mod body;
pub mod chaos;
mod error;
mod feeder;
pub mod json_path;
pub mod limits;
mod model;
mod redact;
mod template;
pub mod threshold;

pub use body::{Body, Generated, JsonTemplate, Part};
pub use error::ScenarioError;
pub use feeder::Feeder;
pub use model::{
    parse_duration, Auth, ClosedStage, Dur, Expect, FeederOrder, Method, OnDrop, OpenStage,
    SessionPreset, Think,
};
pub use redact::{has_userinfo, redact_text};
pub use template::{MapValues, MissingValue, Segment, Template, Values};
pub use threshold::Threshold;

use model::{AuthDef, AuthKind, LoadDef, LoadModel, RequestDef, ScenarioFile, SessionDef};
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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
}

impl TargetSpec {
    /// A request path joined to the base URL (a full URL is kept as it is).
    pub fn url(&self, path: &str) -> String {
        join_url(&self.base_url, path)
    }

    /// The base URL as reports may show it: without user name or password.
    pub fn display_url(&self) -> String {
        match reqwest::Url::parse(&self.base_url) {
            Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
                let _ = url.set_username("");
                let _ = url.set_password(None);
                url.as_str().trim_end_matches('/').to_owned()
            }
            _ => self.base_url.clone(),
        }
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

    /// `open` or `closed`.
    pub fn model_name(&self) -> &'static str {
        match self {
            LoadPlan::Open { .. } => "open",
            LoadPlan::Closed { .. } => "closed",
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
    /// Replica base URLs to read straight from.
    pub replicas: Vec<String>,
    /// How long an upload may take to appear everywhere.
    pub visible_within: Duration,
    /// Pause between read-backs.
    pub poll: Duration,
    /// Also read through the balancer.
    pub through_balancer: bool,
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

/// A validated scenario.
#[derive(Debug)]
pub struct Scenario {
    /// The file it came from.
    pub path: PathBuf,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Target.
    pub target: TargetSpec,
    /// Authentication.
    pub auth: Auth,
    /// Feeders by name.
    pub feeders: Vec<Arc<Feeder>>,
    /// Load.
    pub load: LoadPlan,
    /// Personas.
    pub personas: Vec<PersonaSpec>,
    /// Requests; steps refer to them by index.
    pub requests: Vec<RequestSpec>,
    /// Thresholds.
    pub thresholds: Vec<Threshold>,
    /// What counts as a dropped session.
    pub session: SessionRules,
    /// Read-back settings for consistency checks.
    pub verify: VerifySpec,
    /// Where the workload runs on Kubernetes (empty when not said).
    pub kubernetes: chaos::KubeTarget,
    /// Faults to inject while the load runs.
    pub chaos: Option<chaos::ChaosPlan>,
}

/// Subjects a threshold may name besides a request.
pub const THRESHOLD_SUBJECTS: [&str; 5] =
    ["requests", "errors", "dropped", "session", "attachments"];

impl Scenario {
    /// What the file holds, in one line: `2 personas, 5 requests, open model`.
    pub fn outline(&self) -> String {
        format!(
            "{} personas, {} requests, {} model",
            self.personas.len(),
            self.requests.len(),
            self.load.model_name()
        )
    }

    /// Every user may be building its largest generated upload at once:
    /// users × that size must fit [`limits::MAX_GENERATED_IN_FLIGHT`], or a
    /// run could be killed for want of memory and lose what it measured.
    pub fn check_generated_memory(&self) -> Result<(), String> {
        let largest = self
            .requests
            .iter()
            .flat_map(|r| match &r.body {
                Body::Generated { content } => vec![content.size],
                Body::Multipart(parts) => parts
                    .iter()
                    .filter_map(|p| match p {
                        Part::Generated { content, .. } => Some(content.size),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            })
            .max()
            .unwrap_or(0);
        let users = self.load.peak_users() as u64;
        if users.saturating_mul(largest) > limits::MAX_GENERATED_IN_FLIGHT {
            return Err(format!(
                "{users} users each building a generated upload of {largest} bytes could hold {:.1} GiB at once: at most 4 GiB (fewer users, a smaller size, or shards)",
                users.saturating_mul(largest) as f64 / (1u64 << 30) as f64
            ));
        }
        Ok(())
    }

    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let bytes = std::fs::read(path).map_err(|e| {
            ScenarioError::whole_file(path, format!("cannot read scenario file: {e}"))
        })?;
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                // Point at the first byte that is not UTF-8, not at the file
                // (the text before it is the same in the lossy copy).
                let at = e.utf8_error().valid_up_to();
                let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
                return Err(ScenarioError::at(
                    path,
                    &text,
                    Some(at..at + 1),
                    "the file is not UTF-8 text here: a scenario is a UTF-8 TOML file",
                ));
            }
        };
        Self::from_text(path, &text)
    }

    /// Validates `text` as if read from `path` (fixtures resolve from its folder).
    pub fn from_text(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
        let at = |span: Option<std::ops::Range<usize>>, msg: String| {
            ScenarioError::at(path, text, span, msg)
        };
        if let Some(nul) = text.find('\0') {
            return Err(at(
                Some(nul..nul + 1),
                "a NUL byte (binary data?): a scenario is a UTF-8 TOML text file".into(),
            ));
        }
        let file: ScenarioFile = toml::from_str(text).map_err(|e| {
            let mut message = e.message().trim().to_owned();
            // toml says "duplicate key" without saying which: name it.
            if message.starts_with("duplicate key") {
                if let Some(key) = e.span().and_then(|s| text.get(s)) {
                    message = format!(
                        "duplicate key `{}`: each key may appear once in a table",
                        key.trim()
                    );
                }
            }
            at(e.span(), message)
        })?;
        let fixtures = path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&file.scenario.fixtures);

        let mut feeders = Vec::new();
        for def in &file.feeders {
            let def = def.get_ref();
            let name = def.name.get_ref();
            if feeders.iter().any(|f: &Arc<Feeder>| &f.name == name) {
                return Err(at(
                    Some(def.name.span()),
                    format!("feeder `{name}` is defined twice"),
                ));
            }
            let feeder = Feeder::load(name, &fixtures.join(def.file.get_ref()), def.order)
                .map_err(|e| at(Some(def.file.span()), e))?;
            feeders.push(Arc::new(feeder));
        }

        let captured: BTreeSet<&str> = file
            .requests
            .values()
            .flat_map(|r| r.get_ref().capture.keys().map(String::as_str))
            .collect();
        let mut requests = Vec::new();
        let mut index = HashMap::new();
        for (name, def) in &file.requests {
            let span = Some(def.span());
            let spec =
                compile_request(name, def.get_ref(), &fixtures).map_err(|e| at(span.clone(), e))?;
            if let Err((path, why)) = check_json_paths(&spec) {
                // Point at the path itself, where it is written in this request.
                // (toml's span of a table value is not always the table's.)
                let quoted = format!("\"{path}\"");
                let from = find_table(text, &format!("requests.{name}")).map_or(0, |r| r.start);
                let place = text[from..]
                    .find(&quoted)
                    .map(|at| from + at..from + at + quoted.len());
                return Err(at(place.or(span), format!("request `{name}`: {why}")));
            }
            check_placeholders(&spec, &feeders, &captured).map_err(|e| at(span, e))?;
            index.insert(name.clone(), requests.len());
            requests.push(spec);
        }

        if file.personas.is_empty() {
            return Err(at(
                None,
                "no personas: add at least one [[personas]] with steps".into(),
            ));
        }
        let mut personas = Vec::new();
        for persona in &file.personas {
            let span = Some(persona.span());
            let p = persona.get_ref();
            if p.weight == 0 || p.weight > limits::MAX_WEIGHT {
                return Err(at(
                    span,
                    format!(
                        "persona `{}` has weight {}: expected a weight from 1 to {}",
                        p.name,
                        p.weight,
                        limits::MAX_WEIGHT
                    ),
                ));
            }
            if p.steps.is_empty() {
                return Err(at(span, format!("persona `{}` has no steps", p.name)));
            }
            let steps = p
                .steps
                .iter()
                .map(|step| {
                    let name = step.request.get_ref();
                    let request = *index.get(name).ok_or_else(|| {
                        at(
                            Some(step.request.span()),
                            format!("step names request `{name}`, which is not defined under [requests] (defined: {})", list(index.keys())),
                        )
                    })?;
                    let repeat = compile_repeat(step, &captured).map_err(|(span, e)| at(span, e))?;
                    Ok(StepSpec { request, think: step.think, repeat })
                })
                .collect::<Result<_, ScenarioError>>()?;
            personas.push(PersonaSpec {
                name: p.name.clone(),
                weight: p.weight,
                steps,
            });
        }

        let target = compile_target(file.target.get_ref())
            .map_err(|(span, e)| at(span.or(Some(file.target.span())), e))?;
        let load = compile_load(file.load.get_ref())
            .map_err(|(span, e)| at(span.or(Some(file.load.span())), e))?;
        let auth = compile_auth(file.auth)
            .map_err(|(span, e)| at(span.or(find_table(text, "auth")), e))?;

        let mut thresholds = Vec::new();
        for (metric, expression) in &file.thresholds {
            let t = threshold::parse(metric.get_ref(), expression.get_ref())
                .map_err(|e| at(Some(expression.span()), e))?;
            if !THRESHOLD_SUBJECTS.contains(&t.subject.as_str()) && !index.contains_key(&t.subject)
            {
                return Err(at(
                    Some(metric.span()),
                    format!(
                        "threshold on `{}`, which is neither a request ({}) nor one of {}",
                        t.subject,
                        list(index.keys()),
                        THRESHOLD_SUBJECTS.join(", ")
                    ),
                ));
            }
            thresholds.push(t);
        }

        let verify = compile_verify(&file.verify).map_err(|e| at(find_table(text, "verify"), e))?;
        let session = compile_session(&file.session, &index)
            .map_err(|(span, e)| at(span.or(find_table(text, "session")), e))?;

        let kubernetes = match &file.kubernetes {
            Some(def) => {
                chaos::compile_kubernetes(def).map_err(|e| at(find_table(text, "kubernetes"), e))?
            }
            None => Default::default(),
        };
        let chaos = file
            .chaos
            .as_ref()
            .map(chaos::compile_chaos)
            .transpose()
            .map_err(|(span, e)| at(span.or(find_table(text, "chaos")), e))?;

        let name = &file.scenario.name;
        if name.trim().is_empty()
            || name.chars().count() > limits::MAX_NAME
            || name.chars().any(char::is_control)
        {
            return Err(at(
                find_table(text, "scenario"),
                format!(
                    "scenario.name must be 1 to {} characters without control characters (it names the bundle folder); this one has {}",
                    limits::MAX_NAME,
                    name.chars().count()
                ),
            ));
        }
        if let Some(chaos) = &chaos {
            chaos::check_timing(&chaos.actions, load.duration())
                .map_err(|e| at(find_table(text, "chaos"), e))?;
            // The file says where chaos runs: it must pass the safety rules
            // as written (the command line may still add the selector or
            // namespace to a file that names neither).
            if !kubernetes.namespace.is_empty() || !kubernetes.selector.is_empty() {
                chaos::authorize(
                    chaos,
                    &kubernetes,
                    std::slice::from_ref(&kubernetes.namespace),
                )
                .map_err(|e| at(find_table(text, "kubernetes"), format!("chaos: {e}")))?;
            }
        }

        let scenario = Scenario {
            path: path.to_path_buf(),
            name: file.scenario.name,
            description: file.scenario.description,
            target,
            auth,
            feeders,
            load,
            personas,
            requests,
            thresholds,
            session,
            verify,
            kubernetes,
            chaos,
        };
        scenario
            .check_generated_memory()
            .map_err(|e| at(find_table(text, "load"), e))?;
        Ok(scenario)
    }

    /// Applies `--rate`, `--users` and `--duration`.
    pub fn apply_override(&mut self, o: &LoadOverride) -> Result<(), String> {
        let duration = o.duration.unwrap_or_else(|| self.load.duration());
        if duration.is_zero() {
            return Err("duration must be more than zero".into());
        }
        limits::check_duration("--duration", duration)?;
        let hold = model::Dur(duration);
        match (o.rate, o.users) {
            (Some(_), Some(_)) => {
                return Err("give --rate (open model) or --users (closed model), not both".into())
            }
            (Some(rate), None) => {
                limits::check_rate("--rate", rate)?;
                let (max_users, queue_timeout) = match &self.load {
                    LoadPlan::Open {
                        max_users,
                        queue_timeout,
                        ..
                    } => ((*max_users).max(default_pool(rate)), *queue_timeout),
                    LoadPlan::Closed { .. } => (default_pool(rate), Duration::ZERO),
                };
                self.load = LoadPlan::Open {
                    stages: vec![OpenStage {
                        rate,
                        ramp: model::Dur::default(),
                        hold,
                    }],
                    max_users,
                    queue_timeout,
                };
            }
            (None, Some(users)) => {
                limits::check_users("--users", users)?;
                self.load = LoadPlan::Closed {
                    stages: vec![ClosedStage {
                        users,
                        ramp: model::Dur::default(),
                        hold,
                    }],
                };
            }
            (None, None) if o.duration.is_some() => {
                // Keep the shape, stretch or shrink it to the asked length.
                let scale = duration.as_secs_f64() / self.load.duration().as_secs_f64();
                let stretch = |d: &mut model::Dur| d.0 = d.0.mul_f64(scale);
                match &mut self.load {
                    LoadPlan::Open { stages, .. } => stages.iter_mut().for_each(|s| {
                        stretch(&mut s.ramp);
                        stretch(&mut s.hold)
                    }),
                    LoadPlan::Closed { stages } => stages.iter_mut().for_each(|s| {
                        stretch(&mut s.ramp);
                        stretch(&mut s.hold)
                    }),
                }
            }
            (None, None) => {}
        }
        for spec in &o.persona_weights {
            let (name, weight) = spec
                .split_once('=')
                .and_then(|(n, w)| Some((n.trim(), w.trim().parse::<u32>().ok()?)))
                .filter(|(_, w)| *w <= limits::MAX_WEIGHT)
                .ok_or_else(|| {
                    format!("--persona {spec:?}: expected NAME=WEIGHT with a weight from 0 to {}, e.g. doctor=3", limits::MAX_WEIGHT)
                })?;
            let names = list(self.personas.iter().map(|p| &p.name));
            let persona = self
                .personas
                .iter_mut()
                .find(|p| p.name == name)
                .ok_or_else(|| {
                    format!("--persona {spec:?}: no persona `{name}` (the scenario has: {names})")
                })?;
            persona.weight = weight;
        }
        self.personas.retain(|p| p.weight > 0);
        if self.personas.is_empty() {
            return Err("--persona left no persona with a weight above 0".into());
        }
        if let Some(scale) = o.think_scale {
            if !(0.0..=1000.0).contains(&scale) {
                return Err(format!(
                    "--think-scale {scale}: expected a factor from 0 to 1000"
                ));
            }
            for step in self.personas.iter_mut().flat_map(|p| p.steps.iter_mut()) {
                step.think.min = step.think.min.mul_f64(scale);
                step.think.max = step.think.max.mul_f64(scale);
            }
        }
        self.check_generated_memory()
    }
}

/// The user pool for an open model when the file does not size it: enough
/// for each arrival to take 2 s at the peak rate, and at least 10. Slower
/// than that, arrivals drop — which is the saturation signal, not a fault.
fn default_pool(peak_rate: f64) -> usize {
    ((peak_rate * 2.0).ceil() as usize).clamp(10, limits::MAX_USERS)
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let mut names: Vec<&str> = names.map(String::as_str).collect();
    names.sort_unstable();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The span of a `[name]` table header, for errors about the table as a whole.
fn find_table(text: &str, name: &str) -> Option<std::ops::Range<usize>> {
    let header = format!("[{name}]");
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with(&header) {
            return Some(offset..offset + line.len());
        }
        offset += line.len();
    }
    None
}

/// An error message with the place it is about, when known.
type Located = (Option<Range<usize>>, String);

fn compile_target(t: &model::Target) -> Result<TargetSpec, Located> {
    let base = t.base_url.get_ref();
    let here = Some(t.base_url.span());
    let url = reqwest::Url::parse(base)
        .map_err(|e| (here.clone(), format!("target.base_url {base:?} is not a URL ({e}): expected e.g. \"http://127.0.0.1:8080\"")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err((
            here,
            format!(
                "target.base_url must be http or https, not {}",
                url.scheme()
            ),
        ));
    }
    let replica = match (&t.replica_header, &t.replica_cookie) {
        (Some(_), Some(_)) => {
            return Err((
                None,
                "give target.replica_header or target.replica_cookie, not both".into(),
            ))
        }
        (Some(h), None) => ReplicaSource::Header(h.to_ascii_lowercase()),
        (None, Some(c)) => ReplicaSource::Cookie(c.clone()),
        (None, None) => ReplicaSource::Unknown,
    };
    Ok(TargetSpec {
        base_url: base.trim_end_matches('/').to_owned(),
        replica,
        tls_verify: t.tls_verify,
        timeout: t.timeout.0,
    })
}

/// An auth field: its name, where it was written (if it was), and the kinds that use it.
type AuthField<'a> = (&'a str, Option<Range<usize>>, &'a [AuthKind]);

fn compile_auth(def: AuthDef) -> Result<Auth, Located> {
    let kind = def.kind;
    let name = match kind {
        AuthKind::None => "none",
        AuthKind::OpenmrsBasic => "openmrs-basic",
        AuthKind::Bearer => "bearer",
        AuthKind::Keycloak => "keycloak",
    };
    // Every field a kind does not use is an error, not silently ignored.
    let fields: [AuthField; 8] = [
        (
            "username",
            def.username.as_ref().map(|f| f.span()),
            &[AuthKind::OpenmrsBasic],
        ),
        (
            "password",
            def.password.as_ref().map(|f| f.span()),
            &[AuthKind::OpenmrsBasic],
        ),
        (
            "login_path",
            def.login_path.as_ref().map(|f| f.span()),
            &[AuthKind::OpenmrsBasic],
        ),
        (
            "token",
            def.token.as_ref().map(|f| f.span()),
            &[AuthKind::Bearer],
        ),
        (
            "token_url",
            def.token_url.as_ref().map(|f| f.span()),
            &[AuthKind::Keycloak],
        ),
        (
            "client_id",
            def.client_id.as_ref().map(|f| f.span()),
            &[AuthKind::Keycloak],
        ),
        (
            "client_secret",
            def.client_secret.as_ref().map(|f| f.span()),
            &[AuthKind::Keycloak],
        ),
        (
            "refresh_before",
            def.refresh_before.as_ref().map(|f| f.span()),
            &[AuthKind::Keycloak],
        ),
    ];
    for (field, span, kinds) in &fields {
        if span.is_some() && !kinds.contains(&kind) {
            return Err((
                span.clone(),
                format!("auth field `{field}` is not used by auth kind `{name}`"),
            ));
        }
    }
    let need = |field: Option<toml::Spanned<Template>>, what: &str| {
        field
            .map(toml::Spanned::into_inner)
            .ok_or_else(|| (None, format!("auth kind `{name}` needs `{what}`")))
    };
    Ok(match kind {
        AuthKind::None => Auth::None,
        AuthKind::OpenmrsBasic => Auth::OpenmrsBasic {
            username: need(def.username, "username")?,
            password: need(def.password, "password")?,
            login_path: def
                .login_path
                .map(toml::Spanned::into_inner)
                .unwrap_or_else(|| "/openmrs/ws/rest/v1/session".to_owned()),
        },
        AuthKind::Bearer => Auth::Bearer {
            token: need(def.token, "token")?,
        },
        AuthKind::Keycloak => Auth::Keycloak {
            token_url: need(def.token_url, "token_url")?,
            client_id: need(def.client_id, "client_id")?,
            client_secret: need(def.client_secret, "client_secret")?,
            refresh_before: def
                .refresh_before
                .map(toml::Spanned::into_inner)
                .unwrap_or(Dur(Duration::from_secs(30))),
        },
    })
}

fn compile_verify(def: &model::VerifyDef) -> Result<VerifySpec, String> {
    for url in &def.replicas {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| format!("verify.replicas: {url:?} is not a URL ({e})"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("verify.replicas: {url:?} must be http or https"));
        }
    }
    if def.poll.0.is_zero() {
        return Err("verify.poll must be more than zero".into());
    }
    Ok(VerifySpec {
        replicas: def
            .replicas
            .iter()
            .map(|u| u.trim_end_matches('/').to_owned())
            .collect(),
        visible_within: def.visible_within.0,
        poll: def.poll.0,
        through_balancer: def.through_balancer,
    })
}

fn compile_session(
    def: &SessionDef,
    requests: &HashMap<String, usize>,
) -> Result<SessionRules, Located> {
    let (statuses, redirect, probe_json) = match def.preset {
        SessionPreset::Openmrs => (
            vec![401, 403],
            "login",
            vec![("authenticated".to_owned(), serde_json::Value::Bool(false))],
        ),
        SessionPreset::Keycloak => (vec![401, 403], "/protocol/openid-connect/auth", vec![]),
    };
    let probe = match &def.probe {
        Some(name) => Some(*requests.get(name.get_ref()).ok_or_else(|| {
            (
                Some(name.span()),
                format!(
                    "session.probe names request `{}`, which is not defined under [requests]",
                    name.get_ref()
                ),
            )
        })?),
        None => None,
    };
    let probe_unauthenticated = match &def.probe_unauthenticated {
        Some(map) => map
            .iter()
            .map(|(k, v)| {
                json_path::parse(k)
                    .map_err(|e| (None, format!("session.probe_unauthenticated: {e}")))?;
                Ok((
                    k.clone(),
                    serde_json::to_value(v).map_err(|e| (None, e.to_string()))?,
                ))
            })
            .collect::<Result<_, Located>>()?,
        None => probe_json,
    };
    Ok(SessionRules {
        drop_statuses: def.drop_statuses.clone().unwrap_or(statuses),
        login_redirect: Some(
            def.login_redirect
                .clone()
                .unwrap_or_else(|| redirect.to_owned()),
        )
        .filter(|r| !r.is_empty()),
        probe,
        probe_unauthenticated,
        on_drop: def.on_drop,
    })
}

fn compile_load(load: &LoadDef) -> Result<LoadPlan, Located> {
    if load.stages.is_empty() {
        return Err((
            None,
            "load has no stages: add [[load.stages]] with rate (open) or users (closed), and hold"
                .into(),
        ));
    }
    let mut open = Vec::new();
    let mut closed = Vec::new();
    for (i, stage) in load.stages.iter().enumerate() {
        let here = Some(stage.span());
        let s = stage.get_ref();
        let n = i + 1;
        if s.hold.get_ref().0.is_zero() {
            return Err((
                Some(s.hold.span()),
                format!("load stage {n}: hold must be more than zero"),
            ));
        }
        match (load.model, &s.rate, &s.users) {
            (LoadModel::Open, Some(rate), None) => {
                let r = *rate.get_ref();
                limits::check_rate(&format!("load stage {n}: rate"), r).map_err(|e| (Some(rate.span()), e))?;
                open.push(OpenStage { rate: r, ramp: s.ramp, hold: *s.hold.get_ref() });
            }
            (LoadModel::Closed, None, Some(users)) => {
                limits::check_users(&format!("load stage {n}: users"), *users.get_ref())
                    .map_err(|e| (Some(users.span()), e))?;
                closed.push(ClosedStage { users: *users.get_ref(), ramp: s.ramp, hold: *s.hold.get_ref() });
            }
            (LoadModel::Open, _, _) => return Err((here, format!("load stage {n}: the open model needs `rate` (arrivals per second) and no `users`"))),
            (LoadModel::Closed, _, _) => return Err((here, format!("load stage {n}: the closed model needs `users` and no `rate`"))),
        }
    }
    let total: Duration = load
        .stages
        .iter()
        .map(|s| s.get_ref().ramp.0 + s.get_ref().hold.get_ref().0)
        .sum();
    limits::check_duration("the whole load (all stages)", total).map_err(|e| (None, e))?;
    match load.model {
        LoadModel::Open => {
            let peak = open.iter().map(|s| s.rate).fold(0.0, f64::max);
            let max_users = match &load.max_users {
                Some(m) => limits::check_users("load.max_users", *m.get_ref())
                    .map_err(|e| (Some(m.span()), e))?,
                None => default_pool(peak),
            };
            let queue_timeout = load.queue_timeout.map(|q| q.0).unwrap_or_default();
            Ok(LoadPlan::Open {
                stages: open,
                max_users,
                queue_timeout,
            })
        }
        LoadModel::Closed => {
            if let Some(m) = &load.max_users {
                return Err((
                    Some(m.span()),
                    "load.max_users is for the open model; the closed model sets users per stage"
                        .into(),
                ));
            }
            if load.queue_timeout.is_some() {
                return Err((None, "load.queue_timeout is for the open model".into()));
            }
            Ok(LoadPlan::Closed { stages: closed })
        }
    }
}

fn read_fixture(fixtures: &Path, file: &str) -> Result<Vec<u8>, String> {
    let path = fixtures.join(file);
    std::fs::read(&path).map_err(|e| format!("cannot read fixture {}: {e}", resolved(&path)))
}

/// A path as written and where it really points (`../fixtures/x.csv,
/// resolved to /srv/surge/fixtures/x.csv`): a relative path is resolved
/// against the scenario's folder, not the folder surge runs in, and an
/// error must say which file was looked for.
pub(crate) fn resolved(path: &Path) -> String {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let full = match (parent.canonicalize(), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
    };
    format!("{} (resolved to {})", path.display(), full.display())
}

/// Every JSON path a request uses, parsed as the engine will parse it;
/// `Err` has the first path that does not parse and why.
fn check_json_paths(spec: &RequestSpec) -> Result<(), (String, String)> {
    let captures = spec
        .captures
        .iter()
        .map(|(_, from)| from)
        .chain(spec.consistency.as_ref().map(|c| &c.id))
        .filter_map(|from| match from {
            CaptureFrom::Json(path) => Some(path),
            CaptureFrom::Header(_) => None,
        });
    let paths = spec
        .expect
        .json_present
        .iter()
        .chain(spec.expect.json_equals.keys())
        .chain(captures);
    for path in paths {
        json_path::parse(path).map_err(|why| (path.clone(), why))?;
    }
    Ok(())
}

fn compile_request(name: &str, def: &RequestDef, fixtures: &Path) -> Result<RequestSpec, String> {
    let bodies = [
        def.json.is_some(),
        def.json_file.is_some(),
        def.form.is_some(),
        def.multipart.is_some(),
        def.body_file.is_some(),
        def.body_template.is_some(),
        def.generate.is_some(),
    ];
    if bodies.iter().filter(|b| **b).count() > 1 {
        return Err(format!(
            "request `{name}` has more than one body: expected at most one of json, json_file, form, multipart, body_file, body_template, generate"
        ));
    }
    if def.content_type.is_some() && def.body_file.is_none() && def.body_template.is_none() {
        return Err(format!(
            "request `{name}`: content_type goes with body_file or body_template"
        ));
    }
    let body = if let Some(value) = &def.json {
        let json =
            serde_json::to_value(value).map_err(|e| format!("request `{name}`: json body: {e}"))?;
        Body::Json(JsonTemplate::from_json(&json).map_err(|e| format!("request `{name}`: {e}"))?)
    } else if let Some(file) = &def.json_file {
        let bytes = read_fixture(fixtures, file)?;
        let json: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("json_file {file}: not JSON: {e}"))?;
        Body::Json(JsonTemplate::from_json(&json).map_err(|e| format!("json_file {file}: {e}"))?)
    } else if let Some(form) = &def.form {
        Body::Form(form.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    } else if let Some(parts) = &def.multipart {
        let mut out = Vec::new();
        for part in parts {
            out.push(match (&part.value, &part.file) {
                (None, None) if part.generate.is_some() && part.content_type.is_none() => {
                    let g = part.generate.expect("checked just above");
                    Part::Generated {
                        name: part.name.clone(),
                        content: Generated { kind: g.kind, size: g.size.0 },
                    }
                }
                (Some(value), None) if part.content_type.is_none() && part.generate.is_none() => Part::Text {
                    name: part.name.clone(),
                    value: value.clone(),
                },
                (None, Some(file)) if part.generate.is_none() => Part::File {
                    name: part.name.clone(),
                    file_name: Path::new(file).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
                    bytes: read_fixture(fixtures, file)?.into(),
                    content_type: part.content_type.clone().unwrap_or_else(|| "application/octet-stream".into()),
                },
                _ => {
                    return Err(format!(
                        "request `{name}`: multipart part `{}` needs one of value (text), file (with optional content_type) or generate",
                        part.name
                    ))
                }
            });
        }
        Body::Multipart(out)
    } else if let Some(file) = &def.body_template {
        let bytes = read_fixture(fixtures, file)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("request `{name}`: body_template {file:?} is not UTF-8 text"))?;
        Body::Text {
            template: Template::parse(&text)
                .map_err(|e| format!("request `{name}`: body_template {file:?}: {e}"))?,
            content_type: def
                .content_type
                .clone()
                .unwrap_or_else(|| "text/plain".into()),
        }
    } else if let Some(file) = &def.body_file {
        Body::Raw {
            bytes: read_fixture(fixtures, file)?.into(),
            content_type: def
                .content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
        }
    } else if let Some(g) = &def.generate {
        Body::Generated {
            content: Generated {
                kind: g.kind,
                size: g.size.0,
            },
        }
    } else {
        Body::None
    };
    let consistency = match &def.consistency {
        None => None,
        Some(_) if !body.generates() => {
            return Err(format!(
                "request `{name}`: consistency checks compare generated content: add generate = {{ kind = \"pdf\", size = \"16KiB\" }} to the body or a multipart part, or send a body_template holding ${{uuid}}"
            ))
        }
        Some(c) => Some(ConsistencySpec {
            id: capture_source(name, "consistency.id", &c.id)?,
            read: c.read.clone(),
            rule: read_rule(name, c, fixtures)?,
        }),
    };
    if let Some(bad) = def.expect.status.iter().find(|s| !(100..=599).contains(*s)) {
        return Err(format!(
            "request `{name}`: expect.status {bad} is not an HTTP status (100-599)"
        ));
    }
    let captures = def
        .capture
        .iter()
        .map(|(var, from)| {
            Ok((
                var.clone(),
                capture_source(name, &format!("capture `{var}`"), from)?,
            ))
        })
        .collect::<Result<_, String>>()?;
    Ok(RequestSpec {
        name: name.to_owned(),
        method: def.method,
        path: def.path.clone(),
        headers: def
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        body,
        expect: Expect {
            status: def.expect.status.clone(),
            json_present: def.expect.json_present.clone(),
            json_equals: def.expect.json_equals.clone(),
            body_contains: def.expect.body_contains.clone(),
        },
        captures,
        consistency,
        ends_session: def.ends_session,
        rebase: def.rebase,
        optional: def.optional,
    })
}

fn compile_repeat(step: &model::Step, captured: &BTreeSet<&str>) -> Result<Repeat, Located> {
    use toml::Spanned;
    let max = step.max.unwrap_or(DEFAULT_REPEAT_MAX);
    if max == 0 {
        return Err((
            Some(step.request.span()),
            "max = 0 would never send the request: expected 1 or more".into(),
        ));
    }
    if max > limits::MAX_REPEAT {
        return Err((
            Some(step.request.span()),
            format!(
                "max = {max} is out of range: expected 1 to {}",
                limits::MAX_REPEAT
            ),
        ));
    }
    let var = |v: &Spanned<String>, what: &str| -> Result<String, Located> {
        let name = v.get_ref();
        if captured.contains(name.as_str()) {
            Ok(name.clone())
        } else {
            Err((
                Some(v.span()),
                format!("{what} = \"{name}\": no request captures `{name}` (add capture = {{ {name} = \"json.path\" }})"),
            ))
        }
    };
    match (&step.for_each, &step.while_) {
        (Some(_), Some(w)) => Err((
            Some(w.span()),
            "a step takes for_each or while, not both".into(),
        )),
        (Some(v), None) => Ok(Repeat::ForEach {
            var: var(v, "for_each")?,
            max,
        }),
        (None, Some(v)) => Ok(Repeat::While {
            var: var(v, "while")?,
            max,
        }),
        (None, None) if step.max.is_some() => Err((
            Some(step.request.span()),
            "max applies only with for_each or while".into(),
        )),
        (None, None) => Ok(Repeat::Once),
    }
}

fn read_rule(name: &str, c: &model::ConsistencyDef, fixtures: &Path) -> Result<ReadRule, String> {
    let mut rule = ReadRule::default();
    if let Some(m) = c.method {
        rule.method = m;
    }
    rule.by_status = match c.compare.as_deref() {
        None | Some("bytes") => false,
        Some("status") => true,
        Some(other) => {
            return Err(format!(
            "request `{name}`: consistency.compare = {other:?}: expected \"bytes\" or \"status\""
        ))
        }
    };
    if let Some(absent) = &c.absent {
        rule.absent = absent.clone();
    }
    match (&c.body_file, &c.content_type) {
        (Some(file), content_type) => {
            rule.body = Some((
                content_type
                    .clone()
                    .unwrap_or_else(|| "application/json".into()),
                read_fixture(fixtures, file)?.into(),
            ))
        }
        (None, Some(_)) => {
            return Err(format!(
                "request `{name}`: consistency.content_type goes with consistency.body_file"
            ))
        }
        (None, None) => {}
    }
    Ok(rule)
}

/// Parses where a value is read from: `header:Name` or a JSON path.
fn capture_source(request: &str, what: &str, from: &str) -> Result<CaptureFrom, String> {
    match from.strip_prefix("header:") {
        Some(h) if !h.trim().is_empty() => Ok(CaptureFrom::Header(h.trim().to_ascii_lowercase())),
        Some(_) => Err(format!(
            "request `{request}`: {what}: header name missing after `header:`"
        )),
        None if !from.trim().is_empty() => Ok(CaptureFrom::Json(from.trim().to_owned())),
        None => Err(format!(
            "request `{request}`: {what}: expected a JSON path or header:Name"
        )),
    }
}

fn check_placeholders(
    spec: &RequestSpec,
    feeders: &[Arc<Feeder>],
    captured: &BTreeSet<&str>,
) -> Result<(), String> {
    let read = spec.consistency.as_ref().map(|c| &c.read);
    let templates = std::iter::once(&spec.path)
        .chain(read)
        .chain(spec.headers.iter().map(|(_, t)| t))
        .chain(spec.body.templates());
    for template in templates {
        for segment in template.segments() {
            match segment {
                Segment::Feeder { feeder, column } => {
                    let f = feeders
                        .iter()
                        .find(|f| &f.name == feeder)
                        .ok_or_else(|| format!("request `{}` uses `${{{feeder}.{column}}}` but there is no feeder `{feeder}`", spec.name))?;
                    if !f.columns.contains(column) {
                        return Err(format!(
                            "request `{}` uses `${{{feeder}.{column}}}` but feeder `{feeder}` has columns {}",
                            spec.name,
                            f.columns.join(", ")
                        ));
                    }
                }
                // `${id}` in a read-back path is the stored object's id.
                Segment::Var(var) if var == "id" && spec.consistency.as_ref().is_some_and(|c| c.read.segments().contains(segment)) => {}
                Segment::Var(var) if !captured.contains(var.as_str()) => {
                    return Err(format!(
                        "request `{}` uses `${{{var}}}` but no request captures `{var}` (add capture = {{ {var} = \"json.path\" }})",
                        spec.name
                    ))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// How a read-back is sent and judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRule {
    /// `GET` unless the probe is, say, a mapping call (`POST`).
    pub method: Method,
    /// Body of the read-back (content type, bytes), for a `POST` probe.
    pub body: Option<(String, std::sync::Arc<[u8]>)>,
    /// Judge by status only: any 2xx means the replica has it (a cache
    /// probe, whose answer is not the stored bytes).
    pub by_status: bool,
    /// Statuses meaning "not there (yet)".
    pub absent: Vec<u16>,
}

impl Default for ReadRule {
    fn default() -> Self {
        ReadRule {
            method: Method::Get,
            body: None,
            by_status: false,
            absent: vec![404, 410],
        }
    }
}

#[cfg(test)]
mod tests;
