//! surge: load tests and autoscaling calibration for clinical web clusters
//! (OpenMRS, HAPI FHIR, openFHIR on several replicas).
//!
//! The modules follow the data flow of a run, each on a floor that may
//! import only the floors below it (a unit test reads `src/` and fails on a
//! back-import):
//!
//! ```text
//! bundle ← scenario ← import ← measure ← verify ← chaos ← engine ← calibrate, compare, merge ← report ← run
//! ```
//!
//! - [`bundle`]: the on-disk contract between running and analysing: the
//!   plain result types (`summary.json`, HDR histogram files), read and
//!   written. Producers fill it; every consumer reads it.
//! - [`scenario`]: reads and checks a TOML scenario file (requests,
//!   personas, load model, thresholds, the chaos schedule) before anything
//!   is sent.
//! - [`import`]: recordings become scenarios: an access log's arrival
//!   curve, request mix and routes, every value that may be a patient's or
//!   a secret replaced by a synthetic one before anything is written (pure;
//!   the file I/O is `run::import`'s).
//! - [`measure`]: the recorder: HDR histograms per stage, request and
//!   replica, the per-second timeline, and request accounting.
//! - [`verify`]: the session and attachment-consistency ledgers, and the
//!   [`verify::gate`] that judges thresholds and built-in checks (pure).
//! - [`chaos`]: pods killed, restarted and scaled while the load runs (the
//!   Kubernetes backend through kube-rs, or local processes).
//! - [`engine`]: runs a scenario's load in the closed model (virtual users,
//!   ramped by goose) or the open model (an arrival rate, no goose).
//! - [`calibrate`], [`compare`] and [`merge`]: analysis, pure: capacity,
//!   USL, HPA settings and pool sizes from measured steps; a run against a
//!   baseline; the shards of one test merged exactly into one bundle.
//! - [`report`]: every output format (JSON, CSV, Markdown, JUnit, HTML with
//!   charts, terminal text, calibration pages and manifests).
//! - [`run`]: orchestration: one `surge run` end to end, the calibration
//!   staircase, the pool-metrics scraper, and comparing two bundles.
//!
//! The reference cluster the demo and the tests run against is a test
//! double in a crate of its own (`surge-sim`); this library never imports it.
//!
//! A scenario can be loaded and checked without sending anything:
//!
//! ```
//! let scenario = surge::scenario::Scenario::load(std::path::Path::new("scenarios/demo.toml")).unwrap();
//! assert!(scenario.requests.iter().any(|r| r.name == "search_patient"));
//! println!("{}", scenario.outline());
//! ```
#![deny(missing_docs)]

pub mod bundle;
pub mod calibrate;
pub mod chaos;
pub mod compare;
pub mod engine;
pub mod import;
pub mod measure;
pub mod merge;
pub mod report;
pub mod run;
pub mod scenario;
pub mod verify;

#[cfg(test)]
mod layering;
