//! Scenario files: the TOML format, its validation, templates and feeders.
//!
//! [`Scenario::load`] reads a file from `scenarios/`, checks everything that
//! can be checked before a run (unknown fields, bad durations, requests a step
//! names but nobody defines, placeholders nobody can fill, missing fixtures,
//! malformed thresholds) and returns a [`Scenario`] the engine runs without
//! further checks. Every problem is a [`ScenarioError`] naming file, line and
//! column. The format is documented in `scenarios/README.md`.

mod body;
mod captures;
pub mod chaos;
mod compile;
mod error;
mod feeder;
pub mod json_path;
pub mod limits;
mod mix;
mod model;
mod overrides;
pub use overrides::{CommandLine, OverrideError};
mod redact;
mod requests;
pub mod shard;
mod spec;
mod template;
pub mod threshold;
mod units;

pub use body::{Body, Generated, JsonTemplate, Part};
pub use error::ScenarioError;
pub use feeder::Feeder;
pub use mix::PersonaMix;
pub use model::{Auth, ClosedStage, Expect, FeederOrder, Method, OnDrop, OpenStage, SessionPreset};
pub use redact::{has_userinfo, redact_text};
pub use spec::*;
pub use template::{MapValues, MissingValue, Segment, Template, Values};
pub use threshold::Threshold;
pub use units::{parse_duration, Dur, Think};

use compile::*;
use requests::*;

use model::{
    ArrivalsDef, AuthDef, AuthKind, LoadDef, LoadModel, RequestDef, ScenarioFile, SessionDef,
};
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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
    /// The part of the test this process runs (the whole test by default).
    pub shard: shard::Shard,
    /// What `surge check` warns about without refusing the file (TLS
    /// certificates left unverified), each at its place.
    pub warnings: Vec<ScenarioError>,
}

impl Scenario {
    /// What the file holds, in one line: `2 personas, 5 requests, open model`.
    pub fn outline(&self) -> String {
        format!(
            "{} personas, {} requests, {} model",
            self.personas.len(),
            self.requests.len(),
            self.load.model()
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
            let header = content_type_header(name, def.get_ref()).map_err(|e| {
                let written = def.get_ref().content_type.as_ref().map(|c| c.span());
                let key = content_type_key(def.get_ref())
                    .and_then(|k| find_in_table(text, &format!("requests.{name}"), k));
                at(written.or(key).or(span.clone()), e)
            })?;
            let spec = compile_request(name, def.get_ref(), &fixtures, header)
                .map_err(|e| at(span.clone(), e))?;
            let paths = std::iter::once(("path", &def.get_ref().path)).chain(
                def.get_ref()
                    .consistency
                    .iter()
                    .map(|c| ("consistency.read", &c.read)),
            );
            for (what, path) in paths {
                check_path(&format!("request `{name}`: {what}"), path.get_ref())
                    .map_err(|e| at(Some(path.span()), e))?;
            }
            if let Err((path, why)) = check_json_paths(&spec) {
                // Point at the path itself, where it is written in this request.
                // (toml's span of a table value is not always the table's.)
                let quoted = format!("\"{path}\"");
                let place = find_in_table(text, &format!("requests.{name}"), &quoted);
                return Err(at(place.or(span), format!("request `{name}`: {why}")));
            }
            check_placeholders(&spec, &feeders, &captured).map_err(|e| at(span, e))?;
            index.insert(name.clone(), requests.len());
            requests.push(spec);
        }
        if let Err((request, var, e)) = captures::check_circles(&requests) {
            // Point at the placeholder where the request writes it, if it does.
            let name = &requests[request].name;
            let place = find_in_table(text, &format!("requests.{name}"), &format!("${{{var}}}"))
                .or_else(|| file.requests.get(name).map(|d| d.span()));
            return Err(at(place, e));
        }

        if file.personas.is_empty() {
            return Err(at(
                None,
                "no personas: add at least one [[personas]] with steps".into(),
            ));
        }
        let mut personas: Vec<PersonaSpec> = Vec::new();
        for persona in &file.personas {
            let span = Some(persona.span());
            let p = persona.get_ref();
            if personas.iter().any(|q| &q.name == p.name.get_ref()) {
                return Err(at(
                    Some(p.name.span()),
                    format!(
                        "persona `{}` is defined twice: each persona needs a name of its own (reports and --persona NAME=WEIGHT tell them apart by it)",
                        p.name.get_ref()
                    ),
                ));
            }
            if p.weight == 0 || p.weight > limits::MAX_WEIGHT {
                return Err(at(
                    span,
                    format!(
                        "persona `{}` has weight {}: expected a weight from 1 to {}",
                        p.name.get_ref(),
                        p.weight,
                        limits::MAX_WEIGHT
                    ),
                ));
            }
            if p.steps.is_empty() {
                return Err(at(
                    span,
                    format!("persona `{}` has no steps", p.name.get_ref()),
                ));
            }
            let steps: Vec<StepSpec> = p
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
            captures::check_order(p, &steps, &requests).map_err(|(span, e)| at(span, e))?;
            personas.push(PersonaSpec {
                name: p.name.get_ref().clone(),
                weight: p.weight,
                steps,
            });
        }

        let target = compile_target(file.target.get_ref())
            .map_err(|(span, e)| at(span.or(Some(file.target.span())), e))?;
        if let Some(control) = &file.target.get_ref().control {
            if !index.contains_key(control.get_ref()) {
                return Err(at(
                    Some(control.span()),
                    format!(
                        "target.control names `{}`, which is not a request ({})",
                        control.get_ref(),
                        list(index.keys())
                    ),
                ));
            }
        }
        let load = compile_load(file.load.get_ref())
            .map_err(|(span, e)| at(span.or(Some(file.load.span())), e))?;
        let auth = compile_auth(file.auth)
            .map_err(|(span, e)| at(span.or(find_table(text, "auth")), e))?;

        let names: Vec<&str> = requests.iter().map(|r| r.name.as_str()).collect();
        let mut thresholds = Vec::new();
        for (name, expression) in &file.thresholds {
            let t =
                threshold::parse(name.get_ref(), expression.get_ref(), &names).map_err(|e| {
                    let span = if e.is_in_name() {
                        name.span()
                    } else {
                        expression.span()
                    };
                    at(Some(span), e.to_string())
                })?;
            thresholds.push(t);
        }

        let verify = compile_verify(&file.verify)
            .map_err(|(span, e)| at(span.or_else(|| find_table(text, "verify")), e))?;
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

        let name = file.scenario.name.get_ref();
        if name.trim().is_empty()
            || name.chars().count() > limits::MAX_NAME
            || name.chars().any(char::is_control)
        {
            return Err(at(
                Some(file.scenario.name.span()),
                format!(
                    "scenario.name must be 1 to {} characters without control characters (it names the bundle folder); this one has {}",
                    limits::MAX_NAME,
                    name.chars().count()
                ),
            ));
        }
        if let Some(chaos) = &chaos {
            chaos::check_timing(&chaos.actions, load.duration()).map_err(|e| {
                let def = file.chaos.as_ref().expect("compiled from it");
                let place = chaos::late_action_place(def, chaos, load.duration());
                at(place.or_else(|| find_table(text, "chaos")), e)
            })?;
            // The file says where chaos runs: it must pass the safety rules
            // as written (the command line may still add the selector or
            // namespace to a file that names neither).
            if !kubernetes.namespace.is_empty() || !kubernetes.selector.is_empty() {
                chaos::authorize(
                    chaos,
                    &kubernetes,
                    std::slice::from_ref(&kubernetes.namespace),
                )
                .map_err(|e| {
                    // A system namespace is the namespace's fault; the rest
                    // is about the table (a key it lacks). Which rule
                    // refused is told by its words, not guessed again.
                    let namespace = file.kubernetes.as_ref().and_then(|k| k.namespace.as_ref());
                    let place = namespace
                        .filter(|n| {
                            chaos::system_namespace(n.get_ref()).as_deref() == Some(e.as_str())
                        })
                        .map(|n| n.span());
                    at(
                        place.or_else(|| find_table(text, "kubernetes")),
                        format!("chaos: {e}"),
                    )
                })?;
            }
        }

        let mut warnings = Vec::new();
        if let Some(off) = file
            .target
            .get_ref()
            .tls_verify
            .as_ref()
            .filter(|v| !v.get_ref())
        {
            warnings.push(at(
                Some(off.span()),
                "warning: tls_verify = false: TLS certificates will not be verified, so nothing tells the target from an impostor (every report says so); remove it to verify them".into(),
            ));
        }
        let scenario = Scenario {
            path: path.to_path_buf(),
            name: file.scenario.name.into_inner(),
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
            shard: shard::Shard::default(),
            warnings,
        };
        scenario
            .check_generated_memory()
            .map_err(|e| at(find_table(text, "load"), e))?;
        Ok(scenario)
    }
}

#[cfg(test)]
mod tests;
