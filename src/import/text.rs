//! The imported scenario as text: the TOML file (its stages, one persona
//! and one request per route, the feeder of synthetic values) and the
//! feeder's CSV. Only route words, parameter names, counts and synthetic
//! values are written.

use super::route::{Piece, Route};
use super::synthetic::{Synthetic, ROWS};
use super::{Column, ImportOptions, Imported};
use rand::{Rng, SeedableRng};
use std::fmt::Write as _;

/// The feeder's file, beside the scenario (its fixtures folder is `.`).
pub const FEEDER_FILE: &str = "synthetic.csv";

/// The body a request the log held no body for sends until it is replaced.
pub const PLACEHOLDER_FILE: &str = "placeholder-body.txt";

/// Methods whose requests carry a body.
const WITH_BODY: &[&str] = &["POST", "PUT", "PATCH"];

/// What an import writes: the scenario, the feeder when the routes had
/// values, the placeholder body when a route sends one.
#[derive(Debug)]
pub struct Rendered {
    /// The scenario file's text.
    pub scenario: String,
    /// The feeder's CSV.
    pub feeder: Option<String>,
    /// The placeholder body's text.
    pub placeholder: Option<String>,
    /// Routes sending the placeholder.
    pub placeholder_routes: usize,
    /// Synthetic FHIR resources the creates and updates send: file, text.
    pub bodies: Vec<(String, String)>,
}

/// Most a persona's weight may be; larger counts are scaled down together.
const MAX_WEIGHT: u64 = crate::scenario::limits::MAX_WEIGHT as u64;

/// The scenario, its feeder and its placeholder body.
pub fn render(imported: &Imported, options: &ImportOptions, source: &str) -> Rendered {
    let mut o = String::new();
    let report = &imported.report;
    let source = plain_name(source, "the log");
    let _ = writeln!(
        o,
        "# Imported by `surge import` from {source}: {} requests on {} routes.\n\
         # Every value that may be a patient's or a secret was replaced by a synthetic one\n\
         # ({FEEDER_FILE}); what stays is route words, parameter names and counts.",
        report.requests, report.routes
    );
    let _ = writeln!(o, "[scenario]\nname = {}", quote(&options.name));
    let _ = writeln!(
        o,
        "description = {}\nfixtures = \".\"\n",
        quote(&format!(
            "{source} replayed: arrivals per {} s at {}× speed and {}× rate",
            options.bucket_ms / 1000,
            options.speed,
            options.scale
        ))
    );
    let _ = writeln!(o, "[target]\nbase_url = {}\n", quote(&options.base_url));
    if !imported.columns.is_empty() {
        let _ = writeln!(
            o,
            "[[feeders]]\nname = \"synthetic\"\nfile = \"{FEEDER_FILE}\"\norder = \"random\"\n"
        );
    }
    o.push_str("[load]\nmodel = \"open\"\n");
    for stage in imported.curve.stages(options.speed, options.scale) {
        let _ = writeln!(
            o,
            "[[load.stages]]\nrate = {}\nhold = \"{}ms\"",
            float(stage.rate),
            stage.hold_ms
        );
    }
    o.push('\n');
    let names = request_names(imported);
    // One persona per path the log's sessions took, weighted by how many
    // took it: a request of no session is a path of one step, named after
    // its request.
    let most = imported.sessions.iter().map(|s| s.count).max().unwrap_or(1);
    let divisor = most.div_ceil(MAX_WEIGHT).max(1);
    let mut followed = 0;
    for session in &imported.sessions {
        let weight = (session.count / divisor).max(1);
        if let [only] = session.steps[..] {
            let name = &names[only];
            let _ = writeln!(
                o,
                "[[personas]]\nname = {}\nweight = {weight}\nsteps = [{{ request = {} }}]\n",
                quote(name),
                quote(name)
            );
            continue;
        }
        followed += 1;
        let _ = writeln!(
            o,
            "# {} sessions took this path.\n[[personas]]\nname = \"session_{followed}\"\nweight = {weight}\nsteps = [",
            session.count
        );
        for (i, step) in session.steps.iter().enumerate() {
            let pause = session.pauses_ms.get(i).copied().unwrap_or(0) as f64 / options.speed;
            let _ = writeln!(
                o,
                "  {{ request = {}, think = \"{}ms\" }},",
                quote(&names[*step]),
                pause.round() as u64
            );
        }
        o.push_str("]\n\n");
    }
    let mut placeholder_routes = 0;
    let mut bodies = Vec::new();
    for (r, name) in imported.routes.iter().zip(&names) {
        // A log holds no body: a request that sends one sends the
        // placeholder, which `surge check` names until it is replaced.
        let written = super::fhir::written_type(&r.route);
        let body = if let Some(resource_type) = written {
            let (file, id) = match r.route.method.as_str() {
                "PUT" => {
                    let path = path(&r.route, &imported.columns);
                    let id = path
                        .split('?')
                        .next()
                        .unwrap_or("")
                        .rsplit('/')
                        .next()
                        .unwrap_or("")
                        .to_owned();
                    (format!("fhir-{resource_type}-update.json"), Some(id))
                }
                _ => (format!("fhir-{resource_type}.json"), None),
            };
            if !bodies.iter().any(|(f, _): &(String, String)| *f == file) {
                let resource = super::fhir::resource(resource_type, id.as_deref());
                bodies.push((
                    file.clone(),
                    serde_json::to_string_pretty(&resource).unwrap_or_default(),
                ));
            }
            format!(
                "json_file = {}\ncontent_type = \"application/fhir+json\"\n",
                quote(&file)
            )
        } else if WITH_BODY.contains(&r.route.method.as_str()) {
            placeholder_routes += 1;
            format!("body_template = \"{PLACEHOLDER_FILE}\"\n")
        } else {
            String::new()
        };
        let statuses: Vec<String> = r.statuses.iter().map(u16::to_string).collect();
        let _ = writeln!(
            o,
            "[requests.{name}]\nmethod = {}\npath = {}\n{body}expect = {{ status = [{}] }}\n# A route a lower --scale or a short run may not reach.\noptional = true\n",
            quote(&r.route.method),
            quote(&path(&r.route, &imported.columns)),
            statuses.join(", ")
        );
    }
    let feeder = (!imported.columns.is_empty()).then(|| feeder(&imported.columns, options.seed));
    let placeholder = (placeholder_routes > 0).then(|| {
        format!(
            "{}: the access log held no body for this request. Replace this file with the body to send (placeholders such as $${{synthetic.COLUMN}} are filled in).\n",
            crate::scenario::IMPORT_PLACEHOLDER
        )
    });
    Rendered {
        scenario: o,
        feeder,
        placeholder,
        placeholder_routes,
        bodies,
    }
}

/// The route as a path template: literals as recorded (a `${` in one
/// escaped), values as their feeder column.
fn path(route: &Route, columns: &[Column]) -> String {
    let piece = |p: &Piece| match p {
        Piece::Literal(text) => text.replace("${", "$${"),
        Piece::Value(kind, before) => {
            let column = columns
                .iter()
                .find(|c| c.kind == *kind && c.before == *before)
                .map_or("value", |c| c.name.as_str());
            format!("${{synthetic.{column}}}")
        }
    };
    let mut out: String = route
        .path
        .iter()
        .map(|p| format!("/{}", piece(p)))
        .collect();
    if out.is_empty() {
        out.push('/');
    }
    if !route.query.is_empty() {
        let query: Vec<String> = route
            .query
            .iter()
            .map(|(name, value)| format!("{name}={}", piece(value)))
            .collect();
        out = format!("{out}?{}", query.join("&"));
    }
    out
}

/// One name per route, from its method and literal words (`get_fhir_patient`),
/// unique, at most 60 characters.
fn request_names(imported: &Imported) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in &imported.routes {
        let words: Vec<String> = std::iter::once(r.route.method.to_ascii_lowercase())
            .chain(r.route.path.iter().filter_map(|p| match p {
                Piece::Literal(w) if !w.is_empty() => Some(super::snake(w)),
                Piece::Value(..) => Some("id".to_owned()),
                _ => None,
            }))
            .filter(|w| !w.is_empty())
            .collect();
        let base: String = words.join("_").chars().take(56).collect();
        let name = super::unique(&base, |n| names.iter().any(|taken| taken == n));
        names.push(name);
    }
    names
}

/// The feeder: a header of the columns, then [`ROWS`] rows of synthetic
/// values, each taking after one of its column's recorded shapes.
pub(super) fn feeder(columns: &[Column], seed: u64) -> String {
    let mut synthetic = Synthetic::new(seed);
    let mut pick = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut out = columns
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    for _ in 0..ROWS {
        let row: Vec<String> = columns
            .iter()
            .map(|c| {
                let shape = match c.shapes.len() {
                    0 => "",
                    n => c.shapes[pick.random_range(0..n)].as_str(),
                };
                synthetic.value(c.kind, shape)
            })
            .collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// The recording's file name only as plain characters (it lands in a
/// comment and the description), or `otherwise`.
pub(super) fn plain_name(source: &str, otherwise: &str) -> String {
    let plain: String = source
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(64)
        .collect();
    if plain.is_empty() {
        otherwise.to_owned()
    } else {
        plain
    }
}

/// A TOML basic string.
pub(super) fn quote(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// A rate as TOML: Rust's shortest form (`2`, `11.000000000000002`),
/// which TOML reads as an integer or a float.
fn float(v: f64) -> String {
    format!("{v}")
}
