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
mod metrics_out;
mod mix;
mod model;
mod overrides;
mod read;
mod redact;
mod requests;
#[cfg(test)]
pub mod sample;
pub mod shard;
mod spec;
mod template;
pub mod threshold;
mod units;

pub use body::{Body, Generated, JsonTemplate, Part};
pub use error::ScenarioError;
pub use feeder::Feeder;
pub use metrics_out::MetricsTarget;
pub use mix::PersonaMix;
pub use model::{
    Auth, ClosedStage, ContentKind, Expect, FeederOrder, Method, OnDrop, OpenStage, SessionPreset,
};
pub use overrides::{CommandLine, OverrideError};
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

/// How a body file an import wrote for a request whose body the recording
/// did not hold begins (`surge import`): `surge check` warns about every
/// request that still sends it.
pub const IMPORT_PLACEHOLDER: &str = "SURGE-IMPORT-PLACEHOLDER";

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
    /// Where the run's metrics go while it runs (`[metrics_out]`).
    pub metrics_out: Vec<MetricsTarget>,
    /// What `surge check` warns about without refusing the file (TLS
    /// certificates left unverified, a placeholder body an import wrote),
    /// each at its place.
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
}

#[cfg(test)]
mod tests;
