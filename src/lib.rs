//! surge: load tests and autoscaling calibration for clinical web clusters.
//!
//! The code follows the data flow of a run:
//!
//! ```text
//! scenario ──► engine ──► measure ──► gate ──► report
//! ```
//!
//! - [`scenario`] reads and validates a TOML scenario file;
//! - [`engine`] drives it with goose, in the open or closed load model;
//! - [`measure`] records every request in HDR histograms and a timeline;
//! - [`verify`] keeps the session and consistency ledgers and their verdicts;
//! - [`gate`] judges thresholds (pure, no I/O);
//! - [`report`] writes the result bundle (JSON, CSV, HDR, HTML with charts,
//!   Markdown, JUnit) and the terminal summary;
//! - [`compare`] judges a run against a baseline, noise-aware (pure);
//! - [`calibrate`] turns capacity measurements into HPA and pool settings (pure);
//! - [`sim`] is the reference clinical cluster the demo and tests run against.
//!
//! A scenario can be loaded and checked without sending anything:
//!
//! ```
//! let scenario = surge::scenario::Scenario::load(std::path::Path::new("scenarios/demo.toml")).unwrap();
//! assert!(scenario.requests.iter().any(|r| r.name == "search_patient"));
//! ```
#![deny(missing_docs)]

pub mod bundle;
pub mod calibrate;
pub mod chaos;
pub mod compare;
pub mod engine;
pub mod measure;
pub mod report;
pub mod run;
pub mod scenario;
pub mod verify;

#[cfg(test)]
mod layering;
