//! The imported recording as text: the scenario (its `[auth]`, one persona
//! per recorded session with the recorded pauses, one request per recorded
//! request with its captures), the feeder of synthetic values and the
//! scrubbed JSON bodies. Only templates, route words, field names, counts
//! and synthetic values are written.

use super::{BodyOut, HarAuth, HarImported, HarOptions, PartOut};
use crate::import::text::{feeder, plain_name, quote};
use crate::import::{FEEDER_FILE, PLACEHOLDER_FILE};
use crate::scenario::ContentKind;
use std::fmt::Write as _;

/// Longest think time written (a recording left open over lunch).
const MOST_THINK_MS: u64 = 3_600_000;

/// What a HAR import writes.
#[derive(Debug)]
pub struct RenderedHar {
    /// The scenario file's text.
    pub scenario: String,
    /// Further files: path in the out folder, text (feeder, bodies,
    /// placeholder).
    pub files: Vec<(String, String)>,
}

/// The scenario and its files.
pub fn render(imported: &HarImported, options: &HarOptions, source: &str) -> RenderedHar {
    let mut o = String::new();
    let report = &imported.report;
    let source = plain_name(source, "the recording");
    let _ = writeln!(
        o,
        "# Imported by `surge import har` from {source}: {} requests in {} recorded sessions,\n\
         # one persona each, with the recorded pauses as think times (× {}).\n\
         # Values an answer handed out are captured and sent back; every other value that\n\
         # may be a patient's or a secret was replaced by a synthetic one ({FEEDER_FILE}).",
        report.requests, report.sessions, options.think_scale
    );
    let _ = writeln!(o, "[scenario]\nname = {}", quote(&options.name));
    let _ = writeln!(
        o,
        "description = {}\nfixtures = \".\"\n",
        quote(&format!(
            "{source} replayed: each recorded session once per arrival"
        ))
    );
    let base = options
        .base_url
        .clone()
        .unwrap_or_else(|| imported.origin.clone());
    let _ = writeln!(o, "[target]\nbase_url = {}\n", quote(&base));
    match &imported.auth {
        Some(HarAuth::OpenmrsBasic { login_path }) => {
            let _ = writeln!(
                o,
                "[auth]\nkind = \"openmrs-basic\"\nusername = \"${{env:SURGE_USER}}\"\npassword = \"${{env:SURGE_PASSWORD}}\""
            );
            if login_path != "/openmrs/ws/rest/v1/session" {
                let _ = writeln!(o, "login_path = {}", quote(login_path));
            }
            o.push('\n');
        }
        Some(HarAuth::Bearer) => {
            let _ = writeln!(
                o,
                "[auth]\nkind = \"bearer\"\ntoken = \"${{env:SURGE_TOKEN}}\"\n"
            );
        }
        Some(HarAuth::Keycloak { token_url }) => {
            let _ = writeln!(
                o,
                "[auth]\nkind = \"keycloak\"\ntoken_url = {}\nclient_id = \"${{env:SURGE_CLIENT_ID}}\"\nclient_secret = \"${{env:SURGE_CLIENT_SECRET}}\"\n",
                quote(token_url)
            );
        }
        None => {}
    }
    if !imported.columns.is_empty() {
        let _ = writeln!(
            o,
            "[[feeders]]\nname = \"synthetic\"\nfile = \"{FEEDER_FILE}\"\norder = \"random\"\n"
        );
    }
    // Each arrival runs one persona, exact in every stretch of their total
    // weight: one arrival a second for as many seconds as sessions runs
    // each recorded session once.
    let _ = writeln!(
        o,
        "# Each arrival replays one recorded session; --rate and --duration scale it.\n\
         [load]\nmodel = \"open\"\n[[load.stages]]\nrate = 1\nhold = \"{}s\"\n",
        imported.sessions.len()
    );
    for (s, steps) in imported.sessions.iter().enumerate() {
        let _ = writeln!(o, "[[personas]]\nname = \"session_{}\"\nsteps = [", s + 1);
        for step in steps {
            let _ = writeln!(
                o,
                "  {{ request = {}, think = \"{}ms\" }},",
                quote(&imported.requests[step.request].name),
                step.think_ms.min(MOST_THINK_MS)
            );
        }
        o.push_str("]\n\n");
    }
    let mut placeholder = false;
    for r in &imported.requests {
        let _ = writeln!(
            o,
            "[requests.{}]\nmethod = {}\npath = {}",
            r.name,
            quote(&r.method),
            quote(&r.path)
        );
        if !r.headers.is_empty() {
            let pairs: Vec<String> = r
                .headers
                .iter()
                .map(|(k, v)| format!("{} = {}", quote(k), quote(v)))
                .collect();
            let _ = writeln!(o, "headers = {{ {} }}", pairs.join(", "));
        }
        match &r.body {
            BodyOut::None => {}
            BodyOut::JsonFile { file, content_type } => {
                let _ = writeln!(o, "json_file = {}", quote(file));
                if let Some(ct) = content_type {
                    let _ = writeln!(o, "content_type = {}", quote(ct));
                }
            }
            BodyOut::Form(fields) => {
                let pairs: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{} = {}", quote(k), quote(v)))
                    .collect();
                let _ = writeln!(o, "form = {{ {} }}", pairs.join(", "));
            }
            BodyOut::Multipart(parts) => {
                o.push_str("multipart = [\n");
                for p in parts {
                    match p {
                        PartOut::Value { name, value } => {
                            let _ = writeln!(
                                o,
                                "  {{ name = {}, value = {} }},",
                                quote(name),
                                quote(value)
                            );
                        }
                        PartOut::Generated {
                            name,
                            kind,
                            size,
                            content_type,
                        } => {
                            let ct = content_type
                                .as_ref()
                                .map(|c| format!(", content_type = {}", quote(c)))
                                .unwrap_or_default();
                            let _ = writeln!(
                                o,
                                "  {{ name = {}, generate = {{ kind = \"{}\", size = \"{size}B\" }}{ct} }},",
                                quote(name),
                                kind_name(*kind)
                            );
                        }
                    }
                }
                o.push_str("]\n");
            }
            BodyOut::Template { file, content_type } => {
                let _ = writeln!(
                    o,
                    "body_template = {}\ncontent_type = {}",
                    quote(file),
                    quote(content_type)
                );
            }
            BodyOut::Placeholder { content_type } => {
                placeholder = true;
                let _ = writeln!(o, "body_template = \"{PLACEHOLDER_FILE}\"");
                if let Some(ct) = content_type {
                    let _ = writeln!(o, "content_type = {}", quote(ct));
                }
            }
            BodyOut::Generated {
                kind,
                size,
                content_type,
            } => {
                let _ = writeln!(
                    o,
                    "generate = {{ kind = \"{}\", size = \"{size}B\" }}",
                    kind_name(*kind)
                );
                if let Some(ct) = content_type {
                    let _ = writeln!(o, "content_type = {}", quote(ct));
                }
            }
        }
        let statuses: Vec<String> = r.statuses.iter().map(u16::to_string).collect();
        let _ = writeln!(o, "expect = {{ status = [{}] }}", statuses.join(", "));
        if !r.captures.is_empty() {
            let pairs: Vec<String> = r
                .captures
                .iter()
                .map(|(k, v)| format!("{k} = {}", quote(v)))
                .collect();
            let _ = writeln!(o, "capture = {{ {} }}", pairs.join(", "));
        }
        if r.ends_session {
            o.push_str("ends_session = true\n");
        }
        o.push('\n');
    }
    let mut files = imported.bodies.clone();
    if !imported.columns.is_empty() {
        files.push((
            FEEDER_FILE.to_owned(),
            feeder(&imported.columns, options.seed),
        ));
    }
    if placeholder {
        files.push((
            PLACEHOLDER_FILE.to_owned(),
            format!(
                "{}: the recording's body was not JSON or a form, so it was not kept (it may hold a patient's data). Replace this file with the body to send (placeholders such as $${{synthetic.COLUMN}} are filled in).\n",
                crate::scenario::IMPORT_PLACEHOLDER
            ),
        ));
    }
    RenderedHar { scenario: o, files }
}

fn kind_name(kind: ContentKind) -> &'static str {
    match kind {
        ContentKind::Bin => "bin",
        ContentKind::Pdf => "pdf",
        ContentKind::Text => "text",
    }
}
