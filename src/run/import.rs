//! `surge import log`: the file read line by line (streamed: memory grows
//! with the log's routes and its length in time, never with its lines),
//! each line through its proxy's parser, the scenario and its feeder of
//! synthetic values written, then loaded back as `surge check` would, so
//! what is written always runs. What a line held is never printed: an
//! error names the file, the line number and what was expected.

use super::RunError;
use crate::import::log::{parse_line, LogFormat};
use crate::import::{render, ImportOptions, LogImport, Rendered, ScrubReport};
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
    let written = write(request, &rendered)?;
    Ok(ImportReport {
        scenario: written.0,
        feeder: written.1,
        placeholder: written.2.map(|path| (path, rendered.placeholder_routes)),
        scrub: imported.report,
        stages,
        refused_lines: refused,
    })
}

/// Writes the scenario, its feeder and its placeholder body into the out
/// folder (never over a file that is there), then loads the scenario back;
/// one that does not load is removed and said.
fn write(
    request: &ImportLogRequest,
    rendered: &Rendered,
) -> Result<(PathBuf, Option<PathBuf>, Option<PathBuf>), RunError> {
    let out = &request.out;
    let failed = |path: &Path, why: String| RunError::Import {
        file: path.to_path_buf(),
        line: None,
        why,
    };
    std::fs::create_dir_all(out).map_err(|e| failed(out, e.to_string()))?;
    let scenario_path = out.join(format!("{}.toml", request.options.name));
    let feeder = rendered
        .feeder
        .as_ref()
        .map(|text| (out.join(crate::import::FEEDER_FILE), text));
    let placeholder = rendered
        .placeholder
        .as_ref()
        .map(|text| (out.join(crate::import::PLACEHOLDER_FILE), text));
    let extra: Vec<&(PathBuf, &String)> = feeder.iter().chain(placeholder.iter()).collect();
    for path in std::iter::once(&scenario_path).chain(extra.iter().map(|(p, _)| p)) {
        if path.exists() {
            return Err(failed(
                path,
                "is already there: choose another --out or --name".into(),
            ));
        }
    }
    for (path, text) in &extra {
        std::fs::write(path, text).map_err(|e| failed(path, e.to_string()))?;
    }
    std::fs::write(&scenario_path, &rendered.scenario)
        .map_err(|e| failed(&scenario_path, e.to_string()))?;
    if let Err(e) = crate::scenario::Scenario::load(&scenario_path) {
        let _ = std::fs::remove_file(&scenario_path);
        for (path, _) in &extra {
            let _ = std::fs::remove_file(path);
        }
        return Err(failed(
            &scenario_path,
            format!("the imported scenario does not load (a bug in surge import): {e}"),
        ));
    }
    Ok((
        scenario_path,
        feeder.map(|(p, _)| p),
        placeholder.map(|(p, _)| p),
    ))
}
