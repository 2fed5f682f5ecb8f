//! `surge import log` and `surge import har`: the recording read, imported
//! and scrubbed by `import`, the scenario and its files written, then
//! loaded back as `surge check` would, so what is written always runs.
//! A log is read line by line (streamed: memory grows with the log's
//! routes and its length in time, never with its lines); a HAR is one JSON
//! document, read whole. What a recording held is never printed: an error
//! names the file, the line (a HAR's entry) and what was expected.

use super::RunError;
use crate::import::har::model::Har;
use crate::import::har::{HarAuth, HarOptions, HarReport};
use crate::import::log::{parse_line, LogFormat};
use crate::import::{render, ImportOptions, LogImport, ScrubReport};
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// What to import.
#[derive(Debug, Clone)]
pub struct ImportLogRequest {
    /// The access log.
    pub file: PathBuf,
    /// Its proxy's format.
    pub format: LogFormat,
    /// The folder the scenario and its feeder go to.
    pub out: PathBuf,
    /// How the scenario is made.
    pub options: ImportOptions,
}

/// What an import wrote.
#[derive(Debug)]
pub struct ImportReport {
    /// The scenario file.
    pub scenario: PathBuf,
    /// The feeder of synthetic values, when the routes had values.
    pub feeder: Option<PathBuf>,
    /// What was replaced, by kind and count.
    pub scrub: ScrubReport,
    /// Open-model stages written.
    pub stages: usize,
    /// The placeholder body, and the routes that send it.
    pub placeholder: Option<(PathBuf, usize)>,
    /// Lines of the format that carried no request to replay (no request
    /// line, `OPTIONS *`, an absolute URL).
    pub refused_lines: u64,
}

/// A scrub report's lines as the terminal shows them.
fn scrubbed(lines: Vec<String>) -> Vec<String> {
    lines
        .into_iter()
        .map(|l| format!("scrubbed: {l}"))
        .collect()
}

impl ImportReport {
    /// What the import did, for the terminal: counts and paths, never a
    /// recorded value.
    pub fn lines(&self) -> Vec<String> {
        let mut out = scrubbed(self.scrub.lines());
        if self.refused_lines > 0 {
            out.push(format!(
                "{} lines carried no request to replay (no request line, `OPTIONS *`, an absolute URL): left out",
                self.refused_lines
            ));
        }
        out.push(format!(
            "scenario: {} ({} open-model stages)",
            self.scenario.display(),
            self.stages
        ));
        if let Some(feeder) = &self.feeder {
            out.push(format!("feeder: {}", feeder.display()));
        }
        if let Some((placeholder, routes)) = &self.placeholder {
            out.push(format!(
                "warning: {routes} routes send {} (the log held no body for them): replace it with the body to send; surge check names them until then",
                placeholder.display()
            ));
        }
        out
    }
}

impl HarImportReport {
    /// What the import did, for the terminal: counts, paths and the
    /// environment the scenario reads, never a recorded value.
    pub fn lines(&self) -> Vec<String> {
        let mut out = scrubbed(self.scrub.lines());
        out.push(format!("scenario: {}", self.scenario.display()));
        for file in &self.files {
            out.push(format!("wrote: {}", file.display()));
        }
        let mut env: Vec<&str> = match &self.auth {
            Some(HarAuth::OpenmrsBasic { .. }) => vec!["SURGE_USER", "SURGE_PASSWORD"],
            Some(HarAuth::Bearer) => vec!["SURGE_TOKEN"],
            Some(HarAuth::Keycloak { .. }) => vec!["SURGE_CLIENT_ID", "SURGE_CLIENT_SECRET"],
            None => vec![],
        };
        env.extend(self.env_headers.iter().map(String::as_str));
        if !env.is_empty() {
            out.push(format!(
                "the scenario reads the credentials from the environment: set {} before running it",
                env.join(", ")
            ));
        }
        if let Some(placeholder) = &self.placeholder {
            out.push(format!(
                "warning: some requests send {} (their recorded body was not JSON or a form): replace it with the body to send; surge check names them until then",
                placeholder.display()
            ));
        }
        out
    }
}

/// Reads, scrubs, writes and checks.
pub fn import_log(request: &ImportLogRequest) -> Result<ImportReport, RunError> {
    let error = |line: Option<u64>, why: String| RunError::Import {
        file: request.file.clone(),
        line,
        why,
    };
    let file = std::fs::File::open(&request.file).map_err(|e| error(None, e.to_string()))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let mut import = LogImport::new(&request.options);
    let (mut number, mut refused) = (0u64, 0u64);
    let mut bytes = Vec::new();
    loop {
        bytes.clear();
        let read = reader
            .read_until(b'\n', &mut bytes)
            .map_err(|e| error(Some(number + 1), e.to_string()))?;
        if read == 0 {
            break;
        }
        number += 1;
        // A byte that is not UTF-8 is not a reason to stop: nginx escapes
        // them, and a stray one cannot be part of a route word.
        let line = String::from_utf8_lossy(&bytes);
        match parse_line(request.format, &line) {
            Ok(Some(record)) => import
                .add(&record)
                .map_err(|why| error(Some(number), why))?,
            Ok(None) if line.trim().is_empty() => {}
            Ok(None) => refused += 1,
            Err(why) => {
                return Err(error(
                    Some(number),
                    format!("expected {}: {why}", request.format.expected()),
                ))
            }
        }
    }
    if import.requests == 0 {
        return Err(error(
            None,
            format!(
                "no request to import in {number} lines{}",
                if import.static_left_out > 0 {
                    " (only static assets: --keep-static keeps them)"
                } else {
                    ""
                }
            ),
        ));
    }
    let imported = import
        .finish(request.options.speed, request.options.scale)
        .map_err(|why| error(None, why))?;
    let source = request
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "the log".into());
    let rendered = render(&imported, &request.options, &source);
    let stages = imported
        .curve
        .stages(request.options.speed, request.options.scale)
        .len();
    let mut files = Vec::new();
    if let Some(text) = &rendered.feeder {
        files.push((crate::import::FEEDER_FILE.to_owned(), text.clone()));
    }
    if let Some(text) = &rendered.placeholder {
        files.push((crate::import::PLACEHOLDER_FILE.to_owned(), text.clone()));
    }
    files.extend(rendered.bodies.iter().cloned());
    let scenario = write(
        &request.out,
        &request.options.name,
        &rendered.scenario,
        &files,
        &[],
    )?;
    let out = |name: &str| {
        files
            .iter()
            .any(|(f, _)| f == name)
            .then(|| request.out.join(name))
    };
    Ok(ImportReport {
        scenario,
        feeder: out(crate::import::FEEDER_FILE),
        placeholder: out(crate::import::PLACEHOLDER_FILE)
            .map(|path| (path, rendered.placeholder_routes)),
        scrub: imported.report,
        stages,
        refused_lines: refused,
    })
}

/// Reads a HAR, imports and scrubs it, writes and checks.
pub fn import_har(request: &ImportHarRequest) -> Result<HarImportReport, RunError> {
    let error = |line: Option<u64>, why: String| RunError::Import {
        file: request.file.clone(),
        line,
        why,
    };
    let bytes = std::fs::read(&request.file).map_err(|e| error(None, e.to_string()))?;
    let har: Har = serde_json::from_slice(&bytes).map_err(|e| {
        error(
            Some(e.line() as u64),
            format!("column {}: {}", e.column(), har_error(&e)),
        )
    })?;
    drop(bytes);
    let imported =
        crate::import::har::import(&har, &request.options).map_err(|why| error(None, why))?;
    let source = request
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "the recording".into());
    let rendered = crate::import::har::render(&imported, &request.options, &source);
    let env: Vec<String> = [
        "SURGE_USER",
        "SURGE_PASSWORD",
        "SURGE_TOKEN",
        "SURGE_CLIENT_ID",
        "SURGE_CLIENT_SECRET",
    ]
    .iter()
    .map(|v| v.to_string())
    .chain(imported.env_headers.iter().cloned())
    .collect();
    let scenario = write(
        &request.out,
        &request.options.name,
        &rendered.scenario,
        &rendered.files,
        &env,
    )?;
    Ok(HarImportReport {
        scenario,
        files: rendered
            .files
            .iter()
            .map(|(f, _)| request.out.join(f))
            .collect(),
        auth: imported.auth,
        env_headers: imported.env_headers,
        placeholder: rendered
            .files
            .iter()
            .any(|(f, _)| f == crate::import::PLACEHOLDER_FILE)
            .then(|| request.out.join(crate::import::PLACEHOLDER_FILE)),
        scrub: imported.report,
    })
}

/// What a HAR that does not read was expected to be, never a value of it
/// (serde's own message may quote one).
fn har_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let message = e.to_string();
    let message = message.split(" at line ").next().unwrap_or("");
    match e.classify() {
        Category::Eof => {
            "the file ends in the middle of the HAR (truncated?): expected the rest of its JSON"
                .into()
        }
        Category::Syntax => {
            "not JSON: expected a HAR 1.2 file (a JSON object with log.entries)".into()
        }
        Category::Io => format!("cannot be read: {message}"),
        Category::Data => match message.strip_prefix("missing field ") {
            Some(field) => format!("expected HAR 1.2: missing field {field}"),
            None => format!(
                "expected HAR 1.2: a value of the wrong type{}",
                message
                    .rsplit_once(", expected ")
                    .map(|(_, what)| format!(" (expected {what})"))
                    .unwrap_or_default()
            ),
        },
    }
}

/// What to import from a HAR.
#[derive(Debug, Clone)]
pub struct ImportHarRequest {
    /// The recording.
    pub file: PathBuf,
    /// The folder the scenario and its files go to.
    pub out: PathBuf,
    /// How the scenario is made.
    pub options: HarOptions,
}

/// What a HAR import wrote.
#[derive(Debug)]
pub struct HarImportReport {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Its feeder, bodies and placeholder.
    pub files: Vec<PathBuf>,
    /// How its sessions log in.
    pub auth: Option<HarAuth>,
    /// Environment variables its headers read.
    pub env_headers: Vec<String>,
    /// The placeholder body, when a body could not be kept.
    pub placeholder: Option<PathBuf>,
    /// What was kept, left out and replaced.
    pub scrub: HarReport,
}

/// Writes the scenario and its files into the out folder (never over a
/// file that is there), then loads the scenario back; one that does not
/// load is removed and said. Returns the scenario's path.
/// `env` names the `${env:…}` variables the scenario reads: the check
/// fills them with a stand-in, as the user's environment will.
fn write(
    out: &Path,
    name: &str,
    scenario: &str,
    files: &[(String, String)],
    env: &[String],
) -> Result<PathBuf, RunError> {
    let failed = |path: &Path, why: String| RunError::Import {
        file: path.to_path_buf(),
        line: None,
        why,
    };
    std::fs::create_dir_all(out).map_err(|e| failed(out, e.to_string()))?;
    let scenario_path = out.join(format!("{name}.toml"));
    let extra: Vec<(PathBuf, &String)> =
        files.iter().map(|(f, text)| (out.join(f), text)).collect();
    for path in std::iter::once(&scenario_path).chain(extra.iter().map(|(p, _)| p)) {
        if path.exists() {
            return Err(failed(
                path,
                "is already there: choose another --out or --name".into(),
            ));
        }
    }
    let remove = |written: &[&Path]| {
        for path in written {
            let _ = std::fs::remove_file(path);
        }
    };
    let mut written: Vec<&Path> = Vec::new();
    for (path, text) in &extra {
        let result = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(path, text));
        if let Err(e) = result {
            remove(&written);
            return Err(failed(path, e.to_string()));
        }
        written.push(path);
    }
    if let Err(e) = std::fs::write(&scenario_path, scenario) {
        remove(&written);
        return Err(failed(&scenario_path, e.to_string()));
    }
    written.push(&scenario_path);
    let check = env.iter().fold(scenario.to_owned(), |text, var| {
        text.replace(&format!("${{env:{var}}}"), "surge-import-check")
    });
    if let Err(e) = crate::scenario::Scenario::from_text(&scenario_path, &check) {
        remove(&written);
        return Err(failed(
            &scenario_path,
            format!("the imported scenario does not load (a bug in surge import): {e}"),
        ));
    }
    Ok(scenario_path)
}
