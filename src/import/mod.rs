//! From a recording to a scenario (`surge import`), pure: the requests an
//! access log holds become an open-model scenario whose arrival curve
//! follows the log ([`curve`]), whose request mix is the log's by route
//! ([`route`]), and whose values that may be a patient's or a secret are
//! replaced by synthetic ones ([`synthetic`]) before anything is written.
//! Reading the file and writing the result are `run::import`'s.
//!
//! Only three things of the log reach the scenario: the routes' words
//! that are certainly route words, the parameter names of their queries,
//! and counts (arrivals per bucket, requests per route, the statuses each
//! route answered). Every value taken out is counted in the
//! [`ScrubReport`] by kind, never written.

pub mod curve;
pub mod fhir;
pub mod har;
pub mod log;
pub mod route;
pub mod sessions;
pub mod synthetic;
mod text;

use curve::Curve;
use log::LogRecord;
use route::{Piece, Route, ValueKind};
use sessions::{SessionBook, SessionsBy};
use std::collections::{BTreeMap, BTreeSet};
pub use text::{render, Rendered, FEEDER_FILE, PLACEHOLDER_FILE};

/// Most distinct routes an import keeps: a log with more varies where the
/// importer cannot see it.
pub const MAX_ROUTES: usize = 20_000;

/// The methods a scenario sends.
pub(crate) const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

/// Shapes kept per column, to give its synthetic values the recorded form.
const SHAPES_PER_COLUMN: usize = 16;

/// What an import is asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportOptions {
    /// The scenario's name.
    pub name: String,
    /// The target the scenario drives.
    pub base_url: String,
    /// Arrivals are counted per bucket of this many ms (1000 or 60 000).
    pub bucket_ms: i64,
    /// Time compression: 10 runs an hour of log in 6 minutes.
    pub speed: f64,
    /// Rate multiplier.
    pub scale: f64,
    /// Keep static assets (scripts, styles, images, fonts).
    pub keep_static: bool,
    /// Words the user names as route words (kept literal in paths).
    pub keep_words: BTreeSet<String>,
    /// The synthetic values' seed.
    pub seed: u64,
    /// What tells the log's sessions apart.
    pub sessions_by: SessionsBy,
}

/// Requests read from a log, as they come.
#[derive(Debug)]
pub struct LogImport {
    curve: Curve,
    /// Each route's requests, the statuses it answered, and its id in the
    /// sessions' paths.
    routes: BTreeMap<Route, (u64, BTreeSet<u16>, u32)>,
    shapes: BTreeMap<(ValueKind, String), BTreeSet<String>>,
    taken_out: BTreeMap<ValueKind, u64>,
    keep_static: bool,
    keep_words: BTreeSet<String>,
    /// Static assets left out.
    pub static_left_out: u64,
    /// Requests with a method a scenario does not send (OPTIONS, TRACE,
    /// WebDAV's), left out.
    pub methods_left_out: u64,
    /// Requests kept.
    pub requests: u64,
    sessions_by: SessionsBy,
    book: SessionBook,
}

impl LogImport {
    /// An import counting arrivals per `bucket_ms`.
    pub fn new(options: &ImportOptions) -> LogImport {
        LogImport {
            curve: Curve::new(options.bucket_ms),
            routes: BTreeMap::new(),
            shapes: BTreeMap::new(),
            taken_out: BTreeMap::new(),
            keep_static: options.keep_static,
            keep_words: options.keep_words.clone(),
            static_left_out: 0,
            methods_left_out: 0,
            requests: 0,
            sessions_by: options.sessions_by,
            book: SessionBook::default(),
        }
    }

    /// Takes one request in; an error when the log holds more distinct
    /// routes than [`MAX_ROUTES`].
    pub fn add(&mut self, record: &LogRecord) -> Result<(), String> {
        let path = record.target.split('?').next().unwrap_or("");
        if !self.keep_static && is_static(path) {
            self.static_left_out += 1;
            return Ok(());
        }
        if !METHODS.contains(&record.method.as_str()) {
            self.methods_left_out += 1;
            return Ok(());
        }
        let (route, values) =
            route::route_and_values(&record.method, &record.target, &self.keep_words);
        if !self.routes.contains_key(&route) && self.routes.len() >= MAX_ROUTES {
            return Err(format!(
                "more than {MAX_ROUTES} distinct routes: the log's paths vary in a way the importer does not recognise as values"
            ));
        }
        self.note_values(&route, &values);
        let next = self.routes.len() as u32;
        let (count, statuses, id) = self
            .routes
            .entry(route)
            .or_insert((0, BTreeSet::new(), next));
        *count += 1;
        statuses.insert(record.status);
        let id = *id;
        self.requests += 1;
        let key = match self.sessions_by {
            SessionsBy::Cookie => record.session.as_deref(),
            SessionsBy::Client => record.client.as_deref(),
            SessionsBy::None => None,
        };
        // Arrivals are sessions begun: a request of no session is one.
        if self.book.add(key, id, record.start_ms)? {
            self.curve.add(record.start_ms);
        }
        Ok(())
    }

    /// Counts each value the route took out (`recorded`: their texts, in
    /// the route's order), and keeps its shape (never the value) for its
    /// column.
    fn note_values(&mut self, route: &Route, recorded: &[&str]) {
        let pieces = route.path.iter().chain(route.query.iter().map(|(_, p)| p));
        let taken = pieces.filter_map(|p| match p {
            Piece::Value(kind, before) => Some((*kind, before)),
            Piece::Literal(_) => None,
        });
        for ((kind, before), recorded) in taken.zip(recorded) {
            *self.taken_out.entry(kind).or_insert(0) += 1;
            let shapes = self.shapes.entry((kind, before.clone())).or_default();
            if shapes.len() < SHAPES_PER_COLUMN {
                shapes.insert(synthetic::shape_of(recorded));
            }
        }
    }

    /// The routes, their counts and statuses, the curve and the report:
    /// what the scenario is written from; or why the curve cannot be run
    /// (`speed` and `scale` as the stages will be written).
    pub fn finish(self, speed: f64, scale: f64) -> Result<Imported, String> {
        check_curve(&self.curve, speed, scale)?;
        let mut routes: Vec<(ImportedRoute, u32)> = self
            .routes
            .into_iter()
            .map(|(route, (count, statuses, id))| {
                let route = ImportedRoute {
                    route,
                    count,
                    statuses,
                };
                (route, id)
            })
            .collect();
        routes.sort_by(|(a, _), (b, _)| b.count.cmp(&a.count).then_with(|| a.route.cmp(&b.route)));
        // Each route id's place among the sorted routes.
        let mut place_of_id = vec![0usize; routes.len()];
        for (place, (_, id)) in routes.iter().enumerate() {
            place_of_id[*id as usize] = place;
        }
        let routes: Vec<ImportedRoute> = routes.into_iter().map(|(r, _)| r).collect();
        let sessions = sessions_of(self.book.finish()?, &place_of_id);
        let followed = sessions
            .iter()
            .filter(|s| s.steps.len() > 1)
            .map(|s| s.count)
            .sum();
        let mut columns = columns(&routes, &self.shapes);
        // A FHIR create or update the log held no body for sends a
        // synthetic resource whose person comes from these columns.
        if routes
            .iter()
            .any(|r| fhir::written_type(&r.route).is_some())
        {
            for (name, kind) in fhir::COLUMNS {
                let name = unique(name, |n| columns.iter().any(|c| c.name == n));
                columns.push(Column {
                    before: name.clone(),
                    name,
                    kind: *kind,
                    shapes: match kind {
                        ValueKind::Opaque => vec![fhir::IDENTIFIER_SHAPE.to_owned()],
                        _ => Vec::new(),
                    },
                });
            }
        }
        Ok(Imported {
            report: ScrubReport {
                requests: self.requests,
                routes: routes.len(),
                taken_out: self.taken_out,
                columns: columns.len(),
                static_left_out: self.static_left_out,
                methods_left_out: self.methods_left_out,
                sessions_followed: followed,
                session_paths: sessions.iter().filter(|s| s.steps.len() > 1).count(),
            },
            sessions,
            routes,
            columns,
            curve: self.curve,
        })
    }
}

/// The sessions' paths as steps through `routes` (their order), with
/// their mean pauses: most taken first, ties in the routes' order.
fn sessions_of(
    paths: Vec<(sessions::SessionPath, sessions::PathStats)>,
    index_of_id: &[usize],
) -> Vec<ImportedSession> {
    let mut out: Vec<ImportedSession> = paths
        .into_iter()
        .map(|(path, stats)| ImportedSession {
            steps: path.iter().map(|id| index_of_id[*id as usize]).collect(),
            pauses_ms: stats
                .pause_sums_ms
                .iter()
                .map(|sum| (*sum as f64 / stats.count as f64).round() as u64)
                .collect(),
            count: stats.count,
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.steps.cmp(&b.steps)));
    out
}

/// The curve as stages a scenario can hold: at most 30 days long once
/// compressed, no rate above the open model's most.
fn check_curve(curve: &Curve, speed: f64, scale: f64) -> Result<(), String> {
    let span_s = curve.buckets() as f64 * curve.bucket_ms() as f64 / 1000.0;
    let longest = crate::scenario::limits::MAX_DURATION.as_secs_f64();
    if span_s / speed > longest {
        return Err(format!(
            "the log spans {:.0} hours from its first request to its last: more than 30 days at --speed {speed} (a stray time in the log, or a faster --speed)",
            span_s / 3600.0
        ));
    }
    let busiest = curve.busiest() as f64 / (curve.bucket_ms() as f64 / 1000.0) * speed * scale;
    if busiest > crate::scenario::limits::MAX_RATE {
        return Err(format!(
            "its busiest {} s would be {busiest:.0} arrivals per second at --speed {speed} and --scale {scale}: more than {} (lower them, or split the replay over shards)",
            curve.bucket_ms() / 1000,
            crate::scenario::limits::MAX_RATE
        ));
    }
    Ok(())
}

/// A script, style, image or font (by the path's extension).
pub(crate) fn is_static(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    let ext = last.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    matches!(
        ext.as_deref(),
        Some(
            "js" | "mjs"
                | "css"
                | "map"
                | "png"
                | "jpg"
                | "jpeg"
                | "gif"
                | "svg"
                | "ico"
                | "webp"
                | "woff"
                | "woff2"
                | "ttf"
                | "eot"
        )
    )
}

/// A route of the log with how often it came and what it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedRoute {
    /// The route.
    pub route: Route,
    /// Requests.
    pub count: u64,
    /// The statuses it answered.
    pub statuses: BTreeSet<u16>,
}

/// A feeder column: its name, the kind of its values and the recorded
/// shapes they take after.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Its name in the feeder (`patient_uuid`).
    pub name: String,
    /// What its values are.
    pub kind: ValueKind,
    /// The word before it in the routes.
    pub before: String,
    /// Recorded shapes (see `synthetic::shape_of`).
    pub shapes: Vec<String>,
}

/// Sessions that took one path through the routes.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedSession {
    /// The path: indices into [`Imported::routes`].
    pub steps: Vec<usize>,
    /// The mean pause after each step but the last, in ms.
    pub pauses_ms: Vec<u64>,
    /// Sessions that took it.
    pub count: u64,
}

/// What an import read, ready to write.
#[derive(Debug)]
pub struct Imported {
    /// The sessions by path, most taken first (a request of no session is
    /// a path of one step).
    pub sessions: Vec<ImportedSession>,
    /// The routes, most frequent first.
    pub routes: Vec<ImportedRoute>,
    /// The feeder's columns.
    pub columns: Vec<Column>,
    /// The arrival curve.
    pub curve: Curve,
    /// What was taken out.
    pub report: ScrubReport,
}

/// What the import replaced, by kind and count: never a value.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrubReport {
    /// Requests kept.
    pub requests: u64,
    /// Routes they make.
    pub routes: usize,
    /// Values taken out of paths and queries, by kind.
    pub taken_out: BTreeMap<ValueKind, u64>,
    /// Feeder columns of synthetic values that replace them.
    pub columns: usize,
    /// Static assets left out.
    pub static_left_out: u64,
    /// Requests with a method a scenario does not send, left out.
    pub methods_left_out: u64,
    /// Sessions of two requests or more followed.
    pub sessions_followed: u64,
    /// The distinct paths they took (a persona each).
    pub session_paths: usize,
}

impl ScrubReport {
    /// The report's lines.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "{} requests on {} routes kept; {} static assets left out",
            self.requests, self.routes, self.static_left_out
        )];
        if self.methods_left_out > 0 {
            out.push(format!(
                "{} requests with a method a scenario does not send (OPTIONS, TRACE, …) left out",
                self.methods_left_out
            ));
        }
        if self.sessions_followed > 0 {
            out.push(format!(
                "{} sessions of two requests or more followed (by their session cookie or client, never written): {} distinct paths through the routes, a persona each, with their mean pauses",
                self.sessions_followed, self.session_paths
            ));
        }
        if self.taken_out.is_empty() {
            out.push("no value in a path or query needed replacing".into());
        }
        for (kind, n) in &self.taken_out {
            out.push(format!(
                "{n} {} in paths and queries replaced by synthetic values",
                kind.describe()
            ));
        }
        if self.taken_out.contains_key(&ValueKind::Word) {
            out.push("a word not known as a route word may be a name, so it was replaced; name a route word with --keep-word WORD to keep it".into());
        }
        if self.columns > 0 {
            out.push(format!(
                "{} feeder columns of synthetic values (seeded; no recorded value, only their form)",
                self.columns
            ));
        }
        out
    }
}

/// One column per (kind, word before) the routes hold.
fn columns(
    routes: &[ImportedRoute],
    shapes: &BTreeMap<(ValueKind, String), BTreeSet<String>>,
) -> Vec<Column> {
    let mut seen: BTreeSet<(ValueKind, String)> = BTreeSet::new();
    let mut out: Vec<Column> = Vec::new();
    for r in routes {
        for piece in r
            .route
            .path
            .iter()
            .chain(r.route.query.iter().map(|(_, p)| p))
        {
            if let Piece::Value(kind, before) = piece {
                if seen.insert((*kind, before.clone())) {
                    let name = unique(&column_name(*kind, before), |n| {
                        out.iter().any(|c| c.name == n)
                    });
                    out.push(Column {
                        name,
                        kind: *kind,
                        before: before.clone(),
                        shapes: shapes
                            .get(&(*kind, before.clone()))
                            .map(|s| s.iter().cloned().collect())
                            .unwrap_or_default(),
                    });
                }
            }
        }
    }
    out
}

/// A cookie that names a session (`JSESSIONID`, `connect.sid`, `SESSION`).
pub(crate) fn session_cookie(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("sess") || n == "sid" || n.ends_with(".sid") || n.ends_with("_sid")
}

/// `patient` + UUID → `patient_uuid`; a name parameter keeps its name.
fn column_name(kind: ValueKind, before: &str) -> String {
    let base: String = snake(before).chars().take(32).collect();
    let base = if base.is_empty() {
        "value".to_owned()
    } else {
        base
    };
    let suffix = match kind {
        ValueKind::Uuid => "_uuid",
        ValueKind::Number => "_id",
        ValueKind::Date => "_date",
        ValueKind::Email => "_email",
        ValueKind::Name => "",
        ValueKind::Word => "_word",
        ValueKind::Opaque => "_ref",
    };
    format!("{base}{suffix}")
}

/// A word as a lowercase identifier: `R4` → `r4`, `$validate` → `validate`,
/// `patient-identifier` → `patient_identifier` (for column and request
/// names).
pub(crate) fn snake(word: &str) -> String {
    word.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_matches('_')
        .to_owned()
}

/// `name`, or `name_2`, `name_3`, … : the first that is not `taken`.
pub(crate) fn unique(name: &str, taken: impl Fn(&str) -> bool) -> String {
    let mut candidate = name.to_owned();
    let mut n = 2;
    while taken(&candidate) {
        candidate = format!("{name}_{n}");
        n += 1;
    }
    candidate
}
