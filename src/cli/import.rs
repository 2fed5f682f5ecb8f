//! `surge import`'s flags and their conversion into the library's import
//! request: every flag read here, once, each number in its range.

use clap::{Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;
use surge::import::har::HarOptions;
use surge::import::log::LogFormat;
use surge::import::sessions::SessionsBy;
use surge::import::ImportOptions;
use surge::run::import::{ImportHarRequest, ImportLogRequest};

/// What to import.
#[derive(Subcommand)]
pub enum ImportCommand {
    /// An access log (nginx, HAProxy, Traefik, combined) as an open-model
    /// scenario: its arrival curve, its request mix by route, every value
    /// that may be a patient's or a secret replaced by a synthetic one.
    Log(ImportLogArgs),
    /// A browser recording (HAR 1.2, as browsers and recorders write it)
    /// as a scenario: one persona per recorded session with its
    /// pauses, what an answer handed out captured and sent back, the login
    /// as [auth], every value that may be a patient's or a secret replaced
    /// or refused.
    Har(ImportHarArgs),
}

/// `surge import har`'s flags.
#[derive(clap::Args)]
pub struct ImportHarArgs {
    /// The recording.
    pub file: PathBuf,
    /// The folder the scenario, its feeder and its bodies are written to.
    #[arg(long)]
    pub out: PathBuf,
    /// The scenario's name (and its file's): letters, digits, `-`, `_`, `.`
    /// (default: imported-<the recording's name>).
    #[arg(long)]
    pub name: Option<String>,
    /// The base URL the scenario drives (default: the recorded origin).
    #[arg(long)]
    pub target: Option<String>,
    /// Multiply every recorded pause (0.5: twice the pace; 0: none); 0 to 100.
    #[arg(long, default_value_t = 1.0)]
    pub think_scale: f64,
    /// Keep static assets (scripts, styles, images, fonts).
    #[arg(long)]
    pub keep_static: bool,
    /// A word of the paths to keep as written (a path segment the importer
    /// does not know, and so replaces, lest it be a name); repeatable.
    #[arg(long = "keep-word")]
    pub keep_words: Vec<String>,
    /// A field, form field or header whose values are safe to write as
    /// recorded (one the import refused as looking like a secret, or one
    /// it replaces); repeatable.
    #[arg(long = "safe")]
    pub safe: Vec<String>,
    /// Another origin whose requests are kept (`https://idp.example.org`),
    /// sent to their full URL; by default only the page's origin is; repeatable.
    #[arg(long = "keep-origin")]
    pub keep_origins: Vec<String>,
    /// Seed of the synthetic values.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl ImportHarArgs {
    /// The import these flags ask for; or why they cannot mean one.
    pub fn request(self) -> Result<ImportHarRequest, String> {
        if !(0.0..=100.0).contains(&self.think_scale) {
            return Err(format!(
                "--think-scale {} is out of range: expected 0 to 100",
                self.think_scale
            ));
        }
        let name = scenario_name(self.name, &self.file, "recording")?;
        if let Some(target) = &self.target {
            check_target(target)?;
        }
        Ok(ImportHarRequest {
            file: self.file,
            out: self.out,
            options: HarOptions {
                name,
                base_url: self.target,
                think_scale: self.think_scale,
                keep_static: self.keep_static,
                keep_words: self.keep_words.into_iter().collect(),
                safe: self.safe.into_iter().collect(),
                seed: self.seed,
                keep_origins: self
                    .keep_origins
                    .iter()
                    .map(|o| origin_of(o))
                    .collect::<Result<_, _>>()?,
            },
        })
    }
}

/// `--keep-origin`'s origin (`scheme://host[:port]`), as a recording's
/// URLs name it.
fn origin_of(text: &str) -> Result<String, String> {
    check_target(text).map_err(|e| e.replacen("--target", "--keep-origin", 1))?;
    reqwest::Url::parse(text)
        .map(|u| u.origin().ascii_serialization())
        .map_err(|_| {
            format!(
                "--keep-origin {}: expected an origin such as https://idp.example.org",
                surge::scenario::redact_text(text)
            )
        })
}

/// `--name`, or `imported-<file stem>`: checked, as it names a file.
fn scenario_name(
    name: Option<String>,
    file: &std::path::Path,
    what: &str,
) -> Result<String, String> {
    let name = match name {
        Some(name) => name,
        None => format!(
            "imported-{}",
            file.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| what.into())
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
    Ok(name)
}

/// `--target` is an http(s) base URL without credentials (it is written
/// into the scenario); said without its userinfo.
fn check_target(target: &str) -> Result<(), String> {
    if surge::scenario::has_userinfo(target) {
        return Err(format!(
            "--target {}: credentials in the URL would be written into the scenario: give the base URL alone, and the credentials to the scenario's [auth] as ${{env:…}}",
            surge::scenario::redact_text(target)
        ));
    }
    if !(target.starts_with("http://") || target.starts_with("https://")) {
        return Err(format!(
            "--target {}: expected an http:// or https:// base URL",
            surge::scenario::redact_text(target)
        ));
    }
    Ok(())
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
    /// What tells the log's sessions apart: the session cookie where the
    /// log keeps one (each session's path through the routes a persona,
    /// its arrivals the sessions begun), the client address (many users
    /// may share one behind a NAT or a balancer), or none (request by
    /// request).
    #[arg(long, value_enum, default_value = "cookie")]
    pub sessions: SessionsArg,
}

/// What tells a log's sessions apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SessionsArg {
    /// The session cookie.
    Cookie,
    /// The client address.
    Client,
    /// None: every request an arrival of its own.
    None,
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
        let name = scenario_name(self.name, &self.file, "log")?;
        check_target(&self.target)?;
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
                sessions_by: match self.sessions {
                    SessionsArg::Cookie => SessionsBy::Cookie,
                    SessionsArg::Client => SessionsBy::Client,
                    SessionsArg::None => SessionsBy::None,
                },
            },
        })
    }
}
