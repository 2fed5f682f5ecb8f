//! The scenario file's shape, as serde types. Every table denies unknown
//! fields so a typo is an error with its place, never a silently ignored key.

use super::template::Template;
use serde::de::{Deserializer, Error as _};
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
    pub target: Target,
    /// How virtual users authenticate.
    #[serde(default)]
    pub auth: Auth,
    /// CSV feeders.
    #[serde(default)]
    pub feeders: Vec<Spanned<FeederDef>>,
    /// Load model and stages.
    pub load: Load,
    /// Weighted personas.
    pub personas: Vec<Spanned<Persona>>,
    /// Named requests the personas' steps refer to.
    pub requests: BTreeMap<String, Spanned<RequestDef>>,
    /// Pass/fail limits.
    #[serde(default)]
    pub thresholds: BTreeMap<Spanned<String>, Spanned<String>>,
}

/// `[scenario]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// Short name, used in run ids.
    pub name: String,
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
    pub base_url: String,
    /// Response header naming the replica that answered (e.g. `X-Served-By`).
    #[serde(default)]
    pub replica_header: Option<String>,
    /// Sticky cookie whose value names the replica (e.g. `openmrs_session`).
    #[serde(default)]
    pub replica_cookie: Option<String>,
    /// Verify TLS certificates (on unless turned off).
    #[serde(default = "yes")]
    pub tls_verify: bool,
    /// Per-request timeout.
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
}

fn yes() -> bool {
    true
}
fn default_timeout() -> Dur {
    Dur(Duration::from_secs(30))
}

/// `[auth]`
#[derive(Debug, Deserialize, Default)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Auth {
    /// No authentication.
    #[default]
    #[serde(rename = "none")]
    None,
    /// OpenMRS: `GET` the session resource with Basic credentials once; the
    /// `JSESSIONID` cookie carries the session from then on.
    #[serde(rename = "openmrs-basic")]
    OpenmrsBasic {
        /// User name.
        username: Template,
        /// Password (use `${env:NAME}`).
        password: Template,
        /// Session resource path.
        #[serde(default = "default_login_path")]
        login_path: String,
    },
    /// A static bearer token.
    #[serde(rename = "bearer")]
    Bearer {
        /// The token (use `${env:NAME}`).
        token: Template,
    },
    /// Keycloak client credentials, fetched once, shared, refreshed before expiry.
    #[serde(rename = "keycloak")]
    Keycloak {
        /// `{kc}/realms/{realm}/protocol/openid-connect/token`
        token_url: Template,
        /// Client id.
        client_id: Template,
        /// Client secret (use `${env:NAME}`).
        client_secret: Template,
        /// Refresh this long before `expires_in` runs out.
        #[serde(default = "default_refresh_before")]
        refresh_before: Dur,
    },
}

fn default_login_path() -> String {
    "/openmrs/ws/rest/v1/session".to_owned()
}
fn default_refresh_before() -> Dur {
    Dur(Duration::from_secs(30))
}

/// `[[feeders]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeederDef {
    /// Name used in templates: `${name.column}`.
    pub name: String,
    /// CSV file with a header row, relative to the fixtures folder.
    pub file: String,
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

/// `[load]`
#[derive(Debug, Deserialize)]
#[serde(tag = "model", deny_unknown_fields)]
pub enum Load {
    /// Arrivals per second, whatever the server does (calibration, SLOs).
    #[serde(rename = "open")]
    Open {
        /// Stages of arrival rate.
        stages: Vec<OpenStage>,
        /// Size of the pre-started user pool; an arrival with no free user is dropped.
        #[serde(default)]
        max_users: Option<usize>,
    },
    /// A fixed population of virtual users with think time.
    #[serde(rename = "closed")]
    Closed {
        /// Stages of user counts.
        stages: Vec<ClosedStage>,
    },
}

/// One open-model stage: ramp linearly to `rate`, then hold it.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct OpenStage {
    /// Arrivals per second at the end of the ramp and during the hold.
    pub rate: f64,
    /// Ramp time from the previous stage's rate.
    #[serde(default)]
    pub ramp: Dur,
    /// Hold time at `rate`.
    pub hold: Dur,
}

/// One closed-model stage: ramp to `users`, then hold.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ClosedStage {
    /// Users at the end of the ramp and during the hold.
    pub users: usize,
    /// Ramp time from the previous stage's users.
    #[serde(default)]
    pub ramp: Dur,
    /// Hold time.
    pub hold: Dur,
}

/// `[[personas]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persona {
    /// Name, for reports.
    pub name: String,
    /// Relative weight among personas.
    #[serde(default = "one")]
    pub weight: u32,
    /// Steps in order.
    pub steps: Vec<Step>,
}

fn one() -> u32 {
    1
}

/// One step of a persona.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Name of a request in `[requests]`.
    pub request: Spanned<String>,
    /// Think time after the step: `"2s"` or `"1s..3s"`.
    #[serde(default)]
    pub think: Think,
}

/// A think time, fixed or uniformly random in a range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Think {
    /// Shortest.
    pub min: Duration,
    /// Longest.
    pub max: Duration,
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

/// `[requests.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestDef {
    /// HTTP method.
    #[serde(default = "get")]
    pub method: Method,
    /// Path (joined to the base URL) or a full URL.
    pub path: Template,
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
    /// Content type of `body_file`.
    #[serde(default)]
    pub content_type: Option<String>,
    /// What a good answer looks like.
    #[serde(default)]
    pub expect: Expect,
    /// Values to keep from the answer: variable → `json.path` or `header:Name`.
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
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
    /// JSON paths that must equal a value.
    #[serde(default)]
    pub json_equals: BTreeMap<String, toml::Value>,
    /// Text the body must contain.
    #[serde(default)]
    pub body_contains: Option<String>,
}

/// A duration written as `"500ms"`, `"30s"`, `"2m"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text).map(Dur).map_err(D::Error::custom)
    }
}

/// Parses `"500ms"`, `"30s"`, `"1m30s"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("bad duration {text:?} ({e}): expected e.g. \"500ms\", \"30s\" or \"2m\"")
    })
}

impl<'de> Deserialize<'de> for Think {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let (min, max) = match text.split_once("..") {
            Some((a, b)) => (parse_duration(a), parse_duration(b)),
            None => (parse_duration(&text), parse_duration(&text)),
        };
        let (min, max) = (
            min.map_err(D::Error::custom)?,
            max.map_err(D::Error::custom)?,
        );
        if min > max {
            return Err(D::Error::custom(format!(
                "think time {text:?}: the range runs backwards"
            )));
        }
        Ok(Think { min, max })
    }
}
