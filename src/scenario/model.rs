//! The scenario file's shape, as serde types. Every table denies unknown
//! fields so a typo is an error with its place, never a silently ignored key.

use super::template::Template;
use super::units::{Bounded, Dur, Size, Think};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Name and description.
    pub scenario: Meta,
    /// Where traffic goes and how replicas are told apart.
    pub target: Spanned<Target>,
    /// How virtual users authenticate.
    #[serde(default)]
    pub auth: AuthDef,
    /// CSV feeders.
    #[serde(default)]
    pub feeders: Vec<Spanned<FeederDef>>,
    /// Load model and stages.
    pub load: Spanned<LoadDef>,
    /// Weighted personas.
    pub personas: Vec<Spanned<Persona>>,
    /// Named requests the personas' steps refer to.
    pub requests: BTreeMap<String, Spanned<RequestDef>>,
    /// Pass/fail limits.
    #[serde(default)]
    pub thresholds: BTreeMap<Spanned<String>, Spanned<String>>,
    /// What counts as a dropped session, and what a user does then.
    #[serde(default)]
    pub session: SessionDef,
    /// How uploads are read back to check every replica has them.
    #[serde(default)]
    pub verify: VerifyDef,
    /// Where the workload runs on Kubernetes (chaos, replica discovery).
    pub kubernetes: Option<super::chaos::KubernetesDef>,
    /// Faults to inject while the load runs.
    pub chaos: Option<super::chaos::ChaosDef>,
    /// Where the run's metrics go while it runs.
    #[serde(default)]
    pub metrics_out: super::metrics_out::MetricsOutDef,
}

/// `[verify]`: write-then-read consistency checks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyDef {
    /// Replicas to read straight from (besides through the balancer): a
    /// base URL, or `{ url = "…", answers_as = "…" }` naming the value the
    /// replica header or sticky cookie gives for it.
    #[serde(default)]
    pub replicas: Vec<Spanned<ReplicaDef>>,
    /// How long an upload may take to appear before it counts as missing
    /// (the end of a run waits for the last upload's window: at most 1h).
    #[serde(default = "default_visible_within")]
    pub visible_within: Bounded<0, 3_600_000>,
    /// Pause between read-backs of the same upload (10ms to 1m).
    #[serde(default = "default_poll")]
    pub poll: Bounded<10, 60_000>,
    /// Also read through the balancer until every replica seen in the run has answered.
    #[serde(default = "yes")]
    pub through_balancer: bool,
    /// After the run, read every acknowledged write once more through the
    /// balancer and count those gone (a failover's lost writes).
    #[serde(default)]
    pub audit: bool,
    /// Reports say when read-backs were more than this many times the
    /// scenario's own requests sent (0.01 to 100).
    #[serde(default = "default_read_budget")]
    pub budget: Spanned<f64>,
}

fn default_read_budget() -> Spanned<f64> {
    Spanned::new(0..0, 1.0)
}

/// One `[verify] replicas` entry: a URL, or a table with the name the
/// replica answers as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaDef {
    /// Base URL to read it directly.
    pub url: String,
    /// The value its answers give in the replica header or sticky cookie,
    /// when surge cannot tell it from the URL.
    pub answers_as: Option<String>,
}

impl<'de> Deserialize<'de> for ReplicaDef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            url: String,
            answers_as: Option<String>,
        }
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ReplicaDef;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a replica's base URL, or { url = \"http://…\", answers_as = \"name\" }",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ReplicaDef, E> {
                Ok(ReplicaDef {
                    url: v.to_owned(),
                    answers_as: None,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ReplicaDef, A::Error> {
                let t = Table::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(ReplicaDef {
                    url: t.url,
                    answers_as: t.answers_as,
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Default for VerifyDef {
    fn default() -> Self {
        VerifyDef {
            replicas: Vec::new(),
            visible_within: default_visible_within(),
            poll: default_poll(),
            through_balancer: true,
            audit: false,
            budget: default_read_budget(),
        }
    }
}

fn default_visible_within() -> Bounded<0, 3_600_000> {
    Bounded(Duration::from_secs(5))
}
fn default_poll() -> Bounded<10, 60_000> {
    Bounded(Duration::from_millis(100))
}

/// Content made fresh for each upload, so a stale copy cannot pass for it.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct GenerateDef {
    /// What it looks like.
    #[serde(default)]
    pub kind: ContentKind,
    /// How big: `"16KiB"`, `"1MiB"`, `"500B"`.
    #[serde(default = "default_size")]
    pub size: Size,
}

fn default_size() -> Size {
    Size(16 * 1024)
}

/// Kinds of generated content. None is an image, so OpenMRS never rescales it.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ContentKind {
    /// Random bytes (`application/octet-stream`).
    #[default]
    Bin,
    /// A PDF-shaped file with a random body (`application/pdf`).
    Pdf,
    /// Random printable text (`text/plain`).
    Text,
}

/// `consistency = { id = "uuid", read = "/path/${id}/bytes" }` on an upload request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyDef {
    /// Where the answer names the stored object: a JSON path or `header:Name`.
    pub id: String,
    /// Path that reads it back; `${id}` is the id.
    pub read: Spanned<Template>,
    /// Method of the read-back (default GET; POST for a probe such as a mapping call).
    #[serde(default)]
    pub method: Option<Method>,
    /// Body of a POST read-back, from the fixtures folder ...
    #[serde(default)]
    pub body_file: Option<String>,
    /// ... with this content type.
    #[serde(default)]
    pub content_type: Option<String>,
    /// `bytes` (default): the stored bytes must come back; `status`: any 2xx
    /// means the replica has it (a cache-invalidation probe).
    #[serde(default)]
    pub compare: Option<String>,
    /// Statuses meaning "not there (yet)" (default 404 and 410).
    #[serde(default)]
    pub absent: Option<Vec<u16>>,
}

/// `[session]`: what counts as a dropped session. Defaults come from `preset`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SessionDef {
    /// `openmrs` (default) or `keycloak`: the target's usual unauthenticated answers.
    #[serde(default)]
    pub preset: SessionPreset,
    /// Statuses that mean "not logged in".
    pub drop_statuses: Option<Vec<u16>>,
    /// A redirect whose Location contains this text is a redirect to the login page.
    pub login_redirect: Option<String>,
    /// A request whose answer says whether the session is alive (OpenMRS: GET the session resource).
    pub probe: Option<Spanned<String>>,
    /// JSON the probe's answer holds when the session is gone (OpenMRS: `authenticated = false`).
    pub probe_unauthenticated: Option<BTreeMap<String, toml::Value>>,
    /// What a user does after a drop.
    #[serde(default)]
    pub on_drop: OnDrop,
}

/// Presets for what "unauthenticated" looks like.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SessionPreset {
    /// OpenMRS: 401 ("Session timed out") or 403, a redirect to `login`, the
    /// session resource answering `authenticated: false`.
    #[default]
    Openmrs,
    /// Keycloak-protected FHIR: 401 or 403, a redirect to the OpenID Connect auth endpoint.
    Keycloak,
}

/// What a user does after its session was dropped.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnDrop {
    /// Log in again and carry on (recorded as a re-login).
    #[default]
    Relogin,
    /// Stop this user for the rest of the run.
    Stop,
}

/// `[scenario]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// Short name, used in run ids.
    pub name: Spanned<String>,
    /// What the scenario models.
    #[serde(default)]
    pub description: String,
    /// Folder of fixtures (feeders, bodies, files), relative to the scenario file.
    #[serde(default = "default_fixtures")]
    pub fixtures: String,
}

fn default_fixtures() -> String {
    "../fixtures".to_owned()
}

/// `[target]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Base URL every path is joined to; `--target` overrides it.
    pub base_url: Spanned<String>,
    /// Response header naming the replica that answered (e.g. `X-Served-By`).
    #[serde(default)]
    pub replica_header: Option<String>,
    /// Sticky cookie whose value names the replica (e.g. `openmrs_session`).
    #[serde(default)]
    pub replica_cookie: Option<String>,
    /// Verify TLS certificates (on unless turned off; `surge check` warns
    /// when it is off).
    #[serde(default)]
    pub tls_verify: Option<Spanned<bool>>,
    /// Per-request timeout (1ms to 1h).
    #[serde(default = "default_timeout")]
    pub timeout: Bounded<1, 3_600_000>,
    /// A request whose work does not depend on the code under test (a
    /// static health endpoint): its service time tells `surge compare`
    /// whether the machine or the network slowed rather than the code.
    #[serde(default)]
    pub control: Option<Spanned<String>>,
}

fn yes() -> bool {
    true
}
fn default_timeout() -> Bounded<1, 3_600_000> {
    Bounded(Duration::from_secs(30))
}

/// `[auth]`, flat so that every field keeps its place for error messages;
/// [`super::Scenario`] checks which fields each kind needs.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthDef {
    /// Which scheme.
    #[serde(default)]
    pub kind: AuthKind,
    /// OpenMRS user name.
    pub username: Option<Spanned<Template>>,
    /// OpenMRS password (use `${env:NAME}`).
    pub password: Option<Spanned<Template>>,
    /// OpenMRS session resource path.
    pub login_path: Option<Spanned<String>>,
    /// Static bearer token (use `${env:NAME}`).
    pub token: Option<Spanned<Template>>,
    /// Keycloak token endpoint.
    pub token_url: Option<Spanned<Template>>,
    /// Keycloak client id.
    pub client_id: Option<Spanned<Template>>,
    /// Keycloak client secret (use `${env:NAME}`).
    pub client_secret: Option<Spanned<Template>>,
    /// Refresh the token this long before it expires.
    pub refresh_before: Option<Spanned<Dur>>,
}

/// Authentication schemes.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AuthKind {
    /// No authentication.
    #[default]
    None,
    /// OpenMRS Basic login once per user, then the session cookie.
    OpenmrsBasic,
    /// A static bearer token.
    Bearer,
    /// Keycloak client credentials.
    Keycloak,
}

/// Authentication, checked.
#[derive(Debug, Default, Clone)]
pub enum Auth {
    /// No authentication.
    #[default]
    None,
    /// OpenMRS: `GET` the session resource with Basic credentials once; the
    /// `JSESSIONID` cookie carries the session from then on.
    OpenmrsBasic {
        /// User name.
        username: Template,
        /// Password.
        password: Template,
        /// Session resource path.
        login_path: String,
    },
    /// A static bearer token.
    Bearer {
        /// The token.
        token: Template,
    },
    /// Keycloak client credentials, fetched once, shared, refreshed before expiry.
    Keycloak {
        /// `{kc}/realms/{realm}/protocol/openid-connect/token`
        token_url: Template,
        /// Client id.
        client_id: Template,
        /// Client secret.
        client_secret: Template,
        /// Refresh this long before `expires_in` runs out.
        refresh_before: Dur,
    },
}

/// `[[feeders]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeederDef {
    /// Name used in templates: `${name.column}`.
    pub name: Spanned<String>,
    /// CSV file with a header row, relative to the fixtures folder.
    pub file: Spanned<String>,
    /// Row order.
    #[serde(default)]
    pub order: FeederOrder,
}

/// How rows are drawn.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FeederOrder {
    /// In file order, shared by all users, wrapping at the end.
    #[default]
    Sequential,
    /// A random row each time.
    Random,
}

/// `[load]`, flat so that every field keeps its place for error messages.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadDef {
    /// `open` or `closed`.
    pub model: LoadModel,
    /// Open model: most users the pool starts (lazily, as arrivals find none idle); an arrival with no free user and no room is dropped.
    #[serde(default)]
    pub max_users: Option<Spanned<usize>>,
    /// Open model: how long an arrival may wait for a free user before it is dropped.
    #[serde(default)]
    pub queue_timeout: Option<Dur>,
    /// Open model: how arrivals are spaced (`uniform`, the default, or `poisson`).
    #[serde(default)]
    pub arrivals: Option<Spanned<ArrivalsDef>>,
    /// Open model, Poisson arrivals: the seed of the draw (the same seed
    /// gives the same arrival times).
    #[serde(default)]
    pub seed: Option<Spanned<u64>>,
    /// Stages.
    #[serde(default)]
    pub stages: Vec<Spanned<StageDef>>,
}

/// `arrivals = "uniform" | "poisson"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArrivalsDef {
    /// Evenly spaced at the planned rate.
    Uniform,
    /// A Poisson process at the planned rate: independent, bursty arrivals.
    Poisson,
}

/// Load models (one vocabulary with the bundle, which records the one a run used).
pub use crate::bundle::LoadModel;

/// `[[load.stages]]`: `rate` (open) or `users` (closed), ramp, hold.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageDef {
    /// Open model: arrivals per second.
    pub rate: Option<Spanned<f64>>,
    /// Closed model: virtual users.
    pub users: Option<Spanned<usize>>,
    /// Ramp time from the previous stage.
    #[serde(default)]
    pub ramp: Dur,
    /// Hold time.
    pub hold: Spanned<Dur>,
}

/// One open-model stage: ramp linearly to `rate`, then hold it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenStage {
    /// Arrivals per second at the end of the ramp and during the hold.
    pub rate: f64,
    /// Ramp time from the previous stage's rate.
    pub ramp: Dur,
    /// Hold time at `rate`.
    pub hold: Dur,
}

/// One closed-model stage: ramp to `users`, then hold.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedStage {
    /// Users at the end of the ramp and during the hold.
    pub users: usize,
    /// Ramp time from the previous stage's users.
    pub ramp: Dur,
    /// Hold time.
    pub hold: Dur,
}

/// `[[personas]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persona {
    /// Name, for reports (one persona per name).
    pub name: Spanned<String>,
    /// Relative weight among personas.
    #[serde(default = "one")]
    pub weight: u32,
    /// Steps in order.
    pub steps: Vec<StepDef>,
}

fn one() -> u32 {
    1
}

/// One step of a persona.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    /// Name of a request in `[requests]`.
    pub request: Spanned<String>,
    /// Think time after the step: `"2s"` or `"1s..3s"`.
    #[serde(default)]
    pub think: Think,
    /// Send the request once per value of this capture (e.g. every search
    /// hit's uuid), with `${VAR}` bound to each in turn.
    pub for_each: Option<Spanned<String>>,
    /// Send the request again while this capture has a value (e.g. a `next`
    /// paging link, which the request captures afresh each time).
    #[serde(rename = "while")]
    pub while_: Option<Spanned<String>>,
    /// At most this many requests for `for_each` or `while` (default 10).
    pub max: Option<usize>,
}

/// HTTP methods surge sends.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
    /// HEAD
    Head,
}

impl From<Method> for reqwest::Method {
    fn from(m: Method) -> Self {
        match m {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
            Method::Head => reqwest::Method::HEAD,
        }
    }
}

/// `[requests.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestDef {
    /// HTTP method.
    #[serde(default = "get")]
    pub method: Method,
    /// Path (joined to the base URL) or a full URL.
    pub path: Spanned<Template>,
    /// Extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, Template>,
    /// A JSON body written inline; string leaves are templates.
    #[serde(default)]
    pub json: Option<toml::Value>,
    /// A JSON body from a fixtures file; string leaves are templates.
    #[serde(default)]
    pub json_file: Option<String>,
    /// A form body.
    #[serde(default)]
    pub form: Option<BTreeMap<String, Template>>,
    /// A multipart body.
    #[serde(default)]
    pub multipart: Option<Vec<PartDef>>,
    /// A raw body from a fixtures file, sent with `content_type`.
    #[serde(default)]
    pub body_file: Option<String>,
    /// Content type of the body (any kind but multipart, whose parts say
    /// their own).
    #[serde(default)]
    pub content_type: Option<Spanned<String>>,
    /// A text body from a fixtures file whose `${...}` placeholders are
    /// filled per request (e.g. a template with a `${uuid}` id).
    #[serde(default)]
    pub body_template: Option<String>,
    /// What a good answer looks like.
    #[serde(default)]
    pub expect: Expect,
    /// Values to keep from the answer: variable → `json.path` or `header:Name`.
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
    /// A raw body generated for each request (sent with `content_type`).
    #[serde(default)]
    pub generate: Option<GenerateDef>,
    /// This request stores something: ledger it and read it back from every replica.
    #[serde(default)]
    pub consistency: Option<ConsistencyDef>,
    /// A logout (`DELETE /session`): once it succeeds the user logs in afresh,
    /// and the next 401 is not a dropped session.
    #[serde(default)]
    pub ends_session: bool,
    /// `path` renders to a full URL (a paging link) whose host may be the
    /// server's internal one: send its path and query to the target instead.
    #[serde(default)]
    pub rebase: bool,
    /// A run may end without ever sending this request (a follow-up per
    /// search hit when searches may find nothing). Without it, a request the
    /// run never sent fails the run: a gate must not pass on a path that was
    /// never exercised.
    #[serde(default)]
    pub optional: bool,
}

fn get() -> Method {
    Method::Get
}

/// One multipart part: a text `value` or a fixtures `file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartDef {
    /// Part name.
    pub name: String,
    /// Text value.
    #[serde(default)]
    pub value: Option<Template>,
    /// File from the fixtures folder.
    #[serde(default)]
    pub file: Option<String>,
    /// Content type of the file part.
    #[serde(default)]
    pub content_type: Option<String>,
    /// Content generated for each upload instead of a file.
    #[serde(default)]
    pub generate: Option<GenerateDef>,
}

/// `expect = { ... }`
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Accepted status codes; any 2xx when empty.
    #[serde(default)]
    pub status: Vec<u16>,
    /// JSON paths that must exist.
    #[serde(default)]
    pub json_present: Vec<String>,
    /// JSON paths that must find nothing: a FHIR `$validate` answered 200
    /// may still report errors (`issue.[severity=error]`).
    #[serde(default)]
    pub json_absent: Vec<String>,
    /// JSON paths that must equal a value.
    #[serde(default)]
    pub json_equals: BTreeMap<String, toml::Value>,
    /// Text the body must contain.
    #[serde(default)]
    pub body_contains: Option<String>,
}
