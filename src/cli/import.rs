//! `surge import`'s flags and their conversion into the library's import
//! request: every flag read here, once, each number in its range.

use clap::{Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;
use surge::import::log::LogFormat;
use surge::import::ImportOptions;
use surge::run::import::ImportLogRequest;

/// What to import.
#[derive(Subcommand)]
pub enum ImportCommand {
    /// An access log (nginx, HAProxy, Traefik, combined) as an open-model
    /// scenario: its arrival curve, its request mix by route, every value
    /// that may be a patient's or a secret replaced by a synthetic one.
    Log(ImportLogArgs),
}

/// `surge import log`'s flags.
#[derive(clap::Args)]
pub struct ImportLogArgs {
    /// The access log.
    pub file: PathBuf,
    /// Which proxy wrote it.
    #[arg(long, value_enum)]
    pub format: FormatArg,
    /// The folder the scenario and its feeder are written to.
    #[arg(long)]
    pub out: PathBuf,
    /// The scenario's name (and its file's): letters, digits, `-`, `_`, `.`
    /// (default: imported-<the log's name>).
    #[arg(long)]
    pub name: Option<String>,
    /// The base URL the scenario drives (the log names no host).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// Arrivals are counted per bucket of this (1s or 1m): each bucket is
    /// a stage of its rate.
    #[arg(long, default_value = "1m", value_parser = surge::scenario::parse_duration)]
    pub bucket: Duration,
    /// Replay this many times faster (10: an hour of log in 6 minutes),
    /// each bucket keeping its requests; 0.01 to 1000.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Multiply the rate; 0.01 to 1000.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Keep static assets (scripts, styles, images, fonts).
    #[arg(long)]
    pub keep_static: bool,
    /// A word of the routes to keep as written (a path segment the importer
    /// does not know, and so replaces, lest it be a name); repeatable.
    #[arg(long = "keep-word")]
    pub keep_words: Vec<String>,
    /// Seed of the synthetic values.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The proxies whose logs are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// nginx `combined`, or a JSON log_format.
    Nginx,
    /// HAProxy `option httplog`.
    Haproxy,
    /// Traefik, common log or JSON.
    Traefik,
    /// Apache/nginx combined.
    Combined,
}

impl ImportLogArgs {
    /// The import these flags ask for; or why they cannot mean one.
    pub fn request(self) -> Result<ImportLogRequest, String> {
        let bucket_ms = match self.bucket.as_millis() {
            1000 => 1000,
            60_000 => 60_000,
            _ => {
                return Err(format!(
                    "--bucket {}: expected 1s or 1m",
                    humantime::format_duration(self.bucket)
                ))
            }
        };
        for (flag, value) in [("--speed", self.speed), ("--scale", self.scale)] {
            if !(0.01..=1000.0).contains(&value) {
                return Err(format!(
                    "{flag} {value} is out of range: expected 0.01 to 1000"
                ));
            }
        }
        let name = match self.name {
            Some(name) => name,
            None => format!(
                "imported-{}",
                self.file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "log".into())
            ),
        };
        let name: String = name.chars().take(100).collect();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || name.starts_with('.')
        {
            return Err(format!(
                "--name {name:?}: expected letters, digits, '-', '_' and '.' (it names the scenario file)"
            ));
        }
        if !(self.target.starts_with("http://") || self.target.starts_with("https://")) {
            return Err(format!(
                "--target {}: expected an http:// or https:// base URL",
                surge::scenario::redact_text(&self.target)
            ));
        }
        Ok(ImportLogRequest {
            file: self.file,
            format: match self.format {
                FormatArg::Nginx => LogFormat::Nginx,
                FormatArg::Haproxy => LogFormat::Haproxy,
                FormatArg::Traefik => LogFormat::Traefik,
                FormatArg::Combined => LogFormat::Combined,
            },
            out: self.out,
            options: ImportOptions {
                name,
                base_url: self.target,
                bucket_ms,
                speed: self.speed,
                scale: self.scale,
                keep_static: self.keep_static,
                keep_words: self.keep_words.into_iter().collect(),
                seed: self.seed,
            },
        })
    }
}
