//! Scenario files: the TOML format, its validation, templates and feeders.
//!
//! [`Scenario::load`] reads a file from `scenarios/`, checks everything that
//! can be checked before a run (unknown fields, bad durations, requests a step
//! names but nobody defines, placeholders nobody can fill, missing fixtures,
//! malformed thresholds) and returns a [`Scenario`] the engine runs without
//! further checks. Every problem is a [`ScenarioError`] naming file, line and
//! column. The format is documented in `scenarios/README.md`.

mod body;
mod error;
mod feeder;
mod model;
mod template;
pub mod threshold;

pub use body::{Body, JsonTemplate, Part};
pub use error::ScenarioError;
pub use feeder::Feeder;
pub use model::{Auth, ClosedStage, Expect, FeederOrder, Method, OpenStage, Think};
pub use template::{MapValues, MissingValue, Segment, Template, Values};
pub use threshold::Threshold;

use model::{Load, RequestDef, ScenarioFile};
use std::collections::{BTreeSet, HashMap};
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

/// The load model with its stages.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadPlan {
    /// Arrival rate.
    Open {
        /// Stages.
        stages: Vec<OpenStage>,
        /// Pre-started user pool size.
        max_users: usize,
    },
    /// Virtual users.
    Closed {
        /// Stages.
        stages: Vec<ClosedStage>,
    },
}

impl PartialEq for OpenStage {
    fn eq(&self, other: &Self) -> bool {
        self.rate == other.rate && self.ramp == other.ramp && self.hold == other.hold
    }
}
impl PartialEq for ClosedStage {
    fn eq(&self, other: &Self) -> bool {
        self.users == other.users && self.ramp == other.ramp && self.hold == other.hold
    }
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
}

/// A persona's step, resolved.
#[derive(Debug, Clone)]
pub struct StepSpec {
    /// Index into [`Scenario::requests`].
    pub request: usize,
    /// Think time after it.
    pub think: Think,
}

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
}

/// Subjects a threshold may name besides a request.
pub const THRESHOLD_SUBJECTS: [&str; 3] = ["requests", "errors", "dropped"];

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ScenarioError::whole_file(path, format!("cannot read scenario file: {e}"))
        })?;
        Self::from_text(path, &text)
    }

    /// Validates `text` as if read from `path` (fixtures resolve from its folder).
    pub fn from_text(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
        let at = |span: Option<std::ops::Range<usize>>, msg: String| {
            ScenarioError::at(path, text, span, msg)
        };
        let file: ScenarioFile =
            toml::from_str(text).map_err(|e| at(e.span(), e.message().trim().to_owned()))?;
        let fixtures = path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&file.scenario.fixtures);

        let mut feeders = Vec::new();
        for def in &file.feeders {
            let span = Some(def.span());
            let def = def.get_ref();
            if feeders.iter().any(|f: &Arc<Feeder>| f.name == def.name) {
                return Err(at(span, format!("feeder `{}` is defined twice", def.name)));
            }
            let feeder = Feeder::load(&def.name, &fixtures.join(&def.file), def.order)
                .map_err(|e| at(span, e))?;
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
            if p.weight == 0 {
                return Err(at(
                    span,
                    format!(
                        "persona `{}` has weight 0: expected a weight of at least 1",
                        p.name
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
                    Ok(StepSpec { request, think: step.think })
                })
                .collect::<Result<_, ScenarioError>>()?;
            personas.push(PersonaSpec {
                name: p.name.clone(),
                weight: p.weight,
                steps,
            });
        }

        let target = compile_target(&file.target).map_err(|e| at(find_table(text, "target"), e))?;
        let load = compile_load(file.load).map_err(|e| at(find_table(text, "load"), e))?;

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

        Ok(Scenario {
            path: path.to_path_buf(),
            name: file.scenario.name,
            description: file.scenario.description,
            target,
            auth: file.auth,
            feeders,
            load,
            personas,
            requests,
            thresholds,
        })
    }

    /// Applies `--rate`, `--users` and `--duration`.
    pub fn apply_override(&mut self, o: &LoadOverride) -> Result<(), String> {
        let duration = o.duration.unwrap_or_else(|| self.load.duration());
        if duration.is_zero() {
            return Err("duration must be more than zero".into());
        }
        let hold = model::Dur(duration);
        match (o.rate, o.users) {
            (Some(_), Some(_)) => {
                return Err("give --rate (open model) or --users (closed model), not both".into())
            }
            (Some(rate), None) => {
                if !(rate > 0.0 && rate.is_finite()) {
                    return Err(format!(
                        "--rate {rate}: expected a positive number of arrivals per second"
                    ));
                }
                let max_users = match &self.load {
                    LoadPlan::Open { max_users, .. } => *max_users,
                    LoadPlan::Closed { .. } => default_pool(rate),
                };
                self.load = LoadPlan::Open {
                    stages: vec![OpenStage {
                        rate,
                        ramp: model::Dur::default(),
                        hold,
                    }],
                    max_users,
                };
            }
            (None, Some(users)) => {
                if users == 0 {
                    return Err("--users must be at least 1".into());
                }
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
        Ok(())
    }

    /// The index of the request called `name`.
    pub fn request_index(&self, name: &str) -> Option<usize> {
        self.requests.iter().position(|r| r.name == name)
    }
}

/// The user pool for an open model when the file does not size it: enough
/// for each arrival to take 20 s at the peak rate, and at least 10.
fn default_pool(peak_rate: f64) -> usize {
    ((peak_rate * 20.0).ceil() as usize).max(10)
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

fn compile_target(t: &model::Target) -> Result<TargetSpec, String> {
    let url = reqwest::Url::parse(&t.base_url).map_err(|e| {
        format!(
            "target.base_url {:?} is not a URL ({e}): expected e.g. \"http://127.0.0.1:8080\"",
            t.base_url
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "target.base_url must be http or https, not {}",
            url.scheme()
        ));
    }
    let replica = match (&t.replica_header, &t.replica_cookie) {
        (Some(_), Some(_)) => {
            return Err("give target.replica_header or target.replica_cookie, not both".into())
        }
        (Some(h), None) => ReplicaSource::Header(h.to_ascii_lowercase()),
        (None, Some(c)) => ReplicaSource::Cookie(c.clone()),
        (None, None) => ReplicaSource::Unknown,
    };
    Ok(TargetSpec {
        base_url: t.base_url.trim_end_matches('/').to_owned(),
        replica,
        tls_verify: t.tls_verify,
        timeout: t.timeout.0,
    })
}

fn compile_load(load: Load) -> Result<LoadPlan, String> {
    let check_hold = |i: usize, hold: Duration| {
        if hold.is_zero() {
            Err(format!("load stage {}: hold must be more than zero", i + 1))
        } else {
            Ok(())
        }
    };
    match load {
        Load::Open { stages, max_users } => {
            if stages.is_empty() {
                return Err(
                    "open load has no stages: add [[load.stages]] with rate and hold".into(),
                );
            }
            for (i, s) in stages.iter().enumerate() {
                if !(s.rate > 0.0 && s.rate.is_finite()) {
                    return Err(format!(
                        "load stage {}: rate {} must be a positive number of arrivals per second",
                        i + 1,
                        s.rate
                    ));
                }
                check_hold(i, s.hold.0)?;
            }
            let peak = stages.iter().map(|s| s.rate).fold(0.0, f64::max);
            let max_users = max_users.unwrap_or_else(|| default_pool(peak));
            if max_users == 0 {
                return Err("load.max_users must be at least 1".into());
            }
            Ok(LoadPlan::Open { stages, max_users })
        }
        Load::Closed { stages } => {
            if stages.is_empty() {
                return Err(
                    "closed load has no stages: add [[load.stages]] with users and hold".into(),
                );
            }
            for (i, s) in stages.iter().enumerate() {
                if s.users == 0 {
                    return Err(format!("load stage {}: users must be at least 1", i + 1));
                }
                check_hold(i, s.hold.0)?;
            }
            Ok(LoadPlan::Closed { stages })
        }
    }
}

fn read_fixture(fixtures: &Path, file: &str) -> Result<Vec<u8>, String> {
    let path = fixtures.join(file);
    std::fs::read(&path).map_err(|e| format!("cannot read fixture {}: {e}", path.display()))
}

fn compile_request(name: &str, def: &RequestDef, fixtures: &Path) -> Result<RequestSpec, String> {
    let bodies = [
        def.json.is_some(),
        def.json_file.is_some(),
        def.form.is_some(),
        def.multipart.is_some(),
        def.body_file.is_some(),
    ];
    if bodies.iter().filter(|b| **b).count() > 1 {
        return Err(format!(
            "request `{name}` has more than one body: expected at most one of json, json_file, form, multipart, body_file"
        ));
    }
    if def.content_type.is_some() && def.body_file.is_none() {
        return Err(format!(
            "request `{name}`: content_type goes with body_file"
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
                (Some(value), None) if part.content_type.is_none() => Part::Text {
                    name: part.name.clone(),
                    value: value.clone(),
                },
                (None, Some(file)) => Part::File {
                    name: part.name.clone(),
                    file_name: Path::new(file).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
                    bytes: read_fixture(fixtures, file)?.into(),
                    content_type: part.content_type.clone().unwrap_or_else(|| "application/octet-stream".into()),
                },
                _ => {
                    return Err(format!(
                        "request `{name}`: multipart part `{}` needs either value (text) or file (with optional content_type)",
                        part.name
                    ))
                }
            });
        }
        Body::Multipart(out)
    } else if let Some(file) = &def.body_file {
        Body::Raw {
            bytes: read_fixture(fixtures, file)?.into(),
            content_type: def
                .content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
        }
    } else {
        Body::None
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
            let source = match from.strip_prefix("header:") {
                Some(h) if !h.trim().is_empty() => {
                    CaptureFrom::Header(h.trim().to_ascii_lowercase())
                }
                Some(_) => {
                    return Err(format!(
                        "request `{name}`: capture `{var}`: header name missing after `header:`"
                    ))
                }
                None if !from.trim().is_empty() => CaptureFrom::Json(from.trim().to_owned()),
                None => {
                    return Err(format!(
                        "request `{name}`: capture `{var}`: expected a JSON path or header:Name"
                    ))
                }
            };
            Ok((var.clone(), source))
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
    })
}

fn check_placeholders(
    spec: &RequestSpec,
    feeders: &[Arc<Feeder>],
    captured: &BTreeSet<&str>,
) -> Result<(), String> {
    let templates = std::iter::once(&spec.path)
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

#[cfg(test)]
mod tests;
