//! A browser recording (HAR 1.2) as a scenario, pure: the recorded
//! requests to the application's origin, in order, one persona per
//! recorded session (by its session cookie), with the recorded pauses as
//! think times. What one answer handed out and a later request sent back
//! becomes a capture and a template, every time it is sent ([`build`]); a
//! login the scenario's `[auth]` knows becomes it, with credentials as
//! `${env:…}`; every other value that may be a patient's or a secret is
//! replaced or refused before anything is written ([`scrub`]).
//! Reading the file and writing the result are `run::import`'s.

mod build;
pub mod model;
mod parts;
mod render;
pub mod scrub;
mod sessions;

use super::Column;
use crate::import::route::ValueKind;
use crate::scenario::ContentKind;
use model::{header, Entry, Har};
use sessions::{detect_auth, is_login, sessions};
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub use render::{render, RenderedHar};

/// What a HAR import is asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct HarOptions {
    /// The scenario's name.
    pub name: String,
    /// The target the scenario drives; the recorded origin when `None`.
    pub base_url: Option<String>,
    /// Multiplies every recorded pause.
    pub think_scale: f64,
    /// Keep static assets (scripts, styles, images, fonts).
    pub keep_static: bool,
    /// Words the user names as route words (kept literal in paths).
    pub keep_words: BTreeSet<String>,
    /// Keys (JSON fields, form fields, headers) whose values the user
    /// names as safe to write as recorded.
    pub safe: BTreeSet<String>,
    /// The synthetic values' seed.
    pub seed: u64,
    /// Other origins whose requests are kept (sent to their full URL, not
    /// the target): an identity provider, a second service.
    pub keep_origins: BTreeSet<String>,
}

/// How the recorded sessions logged in, as the scenario's `[auth]`.
#[derive(Debug, Clone, PartialEq)]
pub enum HarAuth {
    /// OpenMRS: Basic credentials on the session resource.
    OpenmrsBasic {
        /// The session resource's path.
        login_path: String,
    },
    /// A bearer token on every request.
    Bearer,
    /// Keycloak's client-credentials grant.
    Keycloak {
        /// The token endpoint.
        token_url: String,
    },
}

/// A request as the scenario sends it: every value already a template.
#[derive(Debug, Clone, PartialEq)]
pub struct Req {
    /// Its name in `[requests]`.
    pub name: String,
    /// `GET`, `POST`, …
    pub method: String,
    /// Path and query, as a template.
    pub path: String,
    /// Headers, as templates.
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: BodyOut,
    /// The statuses expected (the recorded one; a folded redirect's end).
    pub statuses: Vec<u16>,
    /// Variable → where in the answer (`results.0.uuid`, `header:Location`).
    pub captures: BTreeMap<String, String>,
    /// A logout.
    pub ends_session: bool,
}

/// A request's body.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyOut {
    /// None.
    None,
    /// Scrubbed JSON in a fixtures file.
    JsonFile {
        /// Its path in the out folder.
        file: String,
        /// A type other than `application/json` (`application/fhir+json`).
        content_type: Option<String>,
    },
    /// A form.
    Form(Vec<(String, String)>),
    /// A multipart body.
    Multipart(Vec<PartOut>),
    /// A text body with placeholders from a fixtures file (a form whose
    /// field repeats).
    Template {
        /// Its path in the out folder.
        file: String,
        /// Its type.
        content_type: String,
    },
    /// A body the importer could not scrub field by field (XML, text): a
    /// placeholder `surge check` names.
    Placeholder {
        /// Its recorded type.
        content_type: Option<String>,
    },
    /// A raw body the HAR held no text for: generated, of its size.
    Generated {
        /// What it looks like.
        kind: ContentKind,
        /// Bytes.
        size: u64,
        /// Its recorded type.
        content_type: Option<String>,
    },
}

/// A multipart part.
#[derive(Debug, Clone, PartialEq)]
pub enum PartOut {
    /// A text part, as a template.
    Value {
        /// Part name.
        name: String,
        /// Its template.
        value: String,
    },
    /// An uploaded file: generated content of its type and size.
    Generated {
        /// Part name.
        name: String,
        /// What it looks like.
        kind: ContentKind,
        /// Bytes.
        size: u64,
        /// The recorded type.
        content_type: Option<String>,
    },
}

/// One step of a persona: a request and the pause after it.
#[derive(Debug, Clone, PartialEq)]
pub struct HarStep {
    /// Index into [`HarImported::requests`].
    pub request: usize,
    /// The recorded pause after it, scaled, in ms.
    pub think_ms: u64,
}

/// What a HAR import read, ready to write.
#[derive(Debug)]
pub struct HarImported {
    /// The origin the requests went to (`http://127.0.0.1:8080`).
    pub origin: String,
    /// How its sessions logged in.
    pub auth: Option<HarAuth>,
    /// The requests.
    pub requests: Vec<Req>,
    /// One list of steps per recorded session.
    pub sessions: Vec<Vec<HarStep>>,
    /// Feeder columns of synthetic values.
    pub columns: Vec<Column>,
    /// Fixture files (path in the out folder, text).
    pub bodies: Vec<(String, String)>,
    /// Environment variables the headers read.
    pub env_headers: Vec<String>,
    /// What was kept, left out and replaced.
    pub report: HarReport,
}

/// What a HAR import kept, left out and replaced: counts, never values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HarReport {
    /// Entries in the file.
    pub entries: usize,
    /// Requests kept.
    pub requests: usize,
    /// Recorded sessions (personas).
    pub sessions: usize,
    /// Static assets left out.
    pub static_left_out: usize,
    /// Requests to other origins left out.
    pub other_origins_left_out: usize,
    /// Requests never answered (blocked, aborted), or with a method a
    /// scenario does not send (a CORS preflight), left out.
    pub unanswered_left_out: usize,
    /// Logins the scenario's `[auth]` makes instead.
    pub logins_as_auth: usize,
    /// Redirects whose follow-up the client makes itself.
    pub redirects_folded: usize,
    /// Redirects whose end the recording does not hold (any 2xx expected).
    pub redirects_unfollowed: usize,
    /// Requests the browser overlapped, replayed one after another.
    pub overlapping: usize,
    /// Variables captured from an answer.
    pub captures: usize,
    /// Values sent that an earlier answer handed out (all templated).
    pub correlated: usize,
    /// Values replaced by synthetic ones, by kind.
    pub replaced: BTreeMap<ValueKind, u64>,
    /// Free-text values replaced by synthetic text.
    pub free_text: u64,
    /// FHIR narratives and photos left out.
    pub left_out_elements: u64,
    /// Credential headers written as `${env:…}`.
    pub secrets_templated: u64,
    /// Uploaded files and raw bodies replaced by generated content.
    pub files_generated: u64,
    /// Of those, files whose size the HAR did not tell (16 KiB sent).
    pub sizes_unknown: u64,
    /// Bodies written as placeholders.
    pub placeholders: u64,
}

impl HarReport {
    /// The report's lines.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "{} of {} entries kept as {} requests in {} recorded sessions (one persona each)",
            self.requests, self.entries, self.requests, self.sessions
        )];
        let left: Vec<String> = [
            (self.static_left_out, "static assets"),
            (self.other_origins_left_out, "to other origins"),
            (self.unanswered_left_out, "unanswered or preflight"),
            (self.logins_as_auth, "logins made by [auth] instead"),
            (
                self.redirects_folded,
                "redirect follow-ups the client makes itself",
            ),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if !left.is_empty() {
            out.push(format!("left out: {}", left.join(", ")));
        }
        if self.redirects_unfollowed > 0 {
            out.push(format!(
                "{} redirects whose end the recording does not hold expect any 2xx (the client follows them)",
                self.redirects_unfollowed
            ));
        }
        if self.overlapping > 0 {
            out.push(format!(
                "{} requests the browser sent while another was in flight are replayed one after another",
                self.overlapping
            ));
        }
        out.push(format!(
            "{} values sent back from an earlier answer became {} captures",
            self.correlated, self.captures
        ));
        for (kind, n) in &self.replaced {
            out.push(format!(
                "{n} {} replaced by synthetic values",
                kind.describe()
            ));
        }
        if self.replaced.contains_key(&ValueKind::Word) {
            out.push("a path word the importer does not know may be a name, so it was replaced; name a route word with --keep-word WORD to keep it".into());
        }
        let more = [
            (self.free_text, "free-text values replaced by synthetic text"),
            (self.left_out_elements, "FHIR narratives and photos left out"),
            (self.secrets_templated, "credential headers written as ${env:…}"),
            (self.files_generated, "uploaded files and raw bodies replaced by generated content of their type and size"),
            (self.sizes_unknown, "uploads of unknown size sent as 16 KiB"),
            (self.placeholders, "bodies that are not JSON or a form written as a placeholder (surge check names it)"),
        ];
        for (n, what) in more {
            if n > 0 {
                out.push(format!("{n} {what}"));
            }
        }
        out
    }
}

/// Resource kinds a browser fetched for the page, not the application.
const STATIC_TYPES: &[&str] = &[
    "script",
    "stylesheet",
    "image",
    "font",
    "media",
    "manifest",
    "texttrack",
    "websocket",
    "eventsource",
    "ping",
    "preflight",
    "csp-violation-report",
];

/// The recording as a scenario; or, naming the entry (1-based), why not:
/// an entry the importer cannot read, or values that look like secrets.
pub fn import(har: &Har, options: &HarOptions) -> Result<HarImported, String> {
    let entries = &har.log.entries;
    if entries.is_empty() {
        return Err(
            "the HAR has no entries (log.entries is empty): record with the network panel open"
                .into(),
        );
    }
    let mut report = HarReport {
        entries: entries.len(),
        ..HarReport::default()
    };
    let mut parsed = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let at = |what: &str| format!("entry {}: {what}", i + 1);
        let start: jiff::Timestamp = e.started_date_time.parse().map_err(|_| {
            at("startedDateTime: expected an ISO 8601 time such as 2026-12-07T10:31:52.123Z")
        })?;
        let url = reqwest::Url::parse(&e.request.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| at("request.url: expected an absolute http:// or https:// URL"))?;
        parsed.push((i, start.as_millisecond(), url));
    }
    parsed.sort_by_key(|(i, start, _)| (*start, *i));
    let origin = main_origin(entries, &parsed);
    // Which entries are the application's requests.
    let mut kept = Vec::new();
    for (i, start, url) in &parsed {
        let e = &entries[*i];
        let path = url.path();
        let mime = e.response.content.mime_type.to_ascii_lowercase();
        let is_static = e
            .resource_type
            .as_deref()
            .is_some_and(|t| STATIC_TYPES.contains(&t))
            || crate::import::is_static(path)
            || ["text/css", "javascript", "image/", "font/"]
                .iter()
                .any(|m| mime.contains(m));
        let at = url.origin().ascii_serialization();
        if at != origin && !options.keep_origins.contains(&at) {
            report.other_origins_left_out += 1;
        } else if is_static && !options.keep_static {
            report.static_left_out += 1;
        } else if e.response.status <= 0
            || !crate::import::METHODS.contains(&e.request.method.to_ascii_uppercase().as_str())
        {
            report.unanswered_left_out += 1;
        } else {
            kept.push((*i, *start, url.clone()));
        }
    }
    if kept.is_empty() {
        return Err(format!(
            "no request of {origin} to import among {} entries{}",
            entries.len(),
            if report.static_left_out > 0 {
                " (only static assets: --keep-static keeps them)"
            } else {
                ""
            }
        ));
    }
    let auth = detect_auth(entries, &kept);
    let sessions = sessions(entries, &kept);
    let mut builder = build::Builder::new(options);
    let mut steps_of = Vec::new();
    for (s, members) in sessions.iter().enumerate() {
        builder.new_session();
        let mut steps: Vec<HarStep> = Vec::new();
        let mut ends: Vec<i64> = Vec::new();
        let mut redirect: Option<Redirect> = None;
        for &k in members {
            let (i, start, url) = &kept[k];
            let e = &entries[*i];
            let method = e.request.method.to_ascii_uppercase();
            if let Some(r) = redirect.take() {
                if let (true, Some(last)) = (r.followed_by(&method, url), steps.last()) {
                    // The client follows the redirect itself: the first
                    // request expects where the chain ended, and captures
                    // what its end handed out.
                    let last = last.request;
                    builder.requests[last].statuses = expected(e.response.status);
                    builder.handed_out(last, e);
                    report.redirects_folded += 1;
                    if let Some(end) = ends.last_mut() {
                        *end = (*end).max(start + took(e));
                    }
                    redirect = Redirect::of(e, url, &method);
                    continue;
                }
                unfollowed(&mut builder, &steps, &mut report);
            }
            if is_login(&auth, e, url) {
                report.logins_as_auth += 1;
                continue;
            }
            let target = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            };
            let name = request_name(
                s + 1,
                steps.len() + 1,
                &method,
                url.path(),
                &options.keep_words,
            );
            let index = builder.request(*i + 1, name, e, &target, auth.is_some());
            // Another origin kept: its requests go to its full URL.
            let at = url.origin().ascii_serialization();
            if at != origin {
                let path = &mut builder.requests[index].path;
                *path = format!("{at}{path}");
            }
            builder.requests[index].statuses = expected(e.response.status);
            builder.handed_out(index, e);
            if let Some(&previous_end) = ends.last() {
                if *start < previous_end {
                    report.overlapping += 1;
                }
                let gap = (*start - previous_end).max(0) as f64 * options.think_scale;
                if let Some(last) = steps.last_mut() {
                    last.think_ms = gap.round() as u64;
                }
            }
            steps.push(HarStep {
                request: index,
                think_ms: 0,
            });
            ends.push(start + took(e));
            redirect = Redirect::of(e, url, &method);
        }
        if redirect.is_some() {
            unfollowed(&mut builder, &steps, &mut report);
        }
        if !steps.is_empty() {
            steps_of.push(steps);
        }
    }
    if !builder.refusals.is_empty() {
        let shown: Vec<&String> = builder.refusals.iter().take(10).collect();
        let more = builder.refusals.len().saturating_sub(shown.len());
        return Err(format!(
            "nothing written: {} values look like secrets or identifiers the importer cannot place:\n  {}{}",
            builder.refusals.len(),
            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  "),
            if more > 0 { format!("\n  … and {more} more") } else { String::new() }
        ));
    }
    if steps_of.is_empty() {
        return Err("no request left to replay once the logins became [auth]".into());
    }
    let mut report_out = builder.report.clone();
    report_out.entries = report.entries;
    report_out.static_left_out = report.static_left_out;
    report_out.other_origins_left_out = report.other_origins_left_out;
    report_out.unanswered_left_out = report.unanswered_left_out;
    report_out.logins_as_auth = report.logins_as_auth;
    report_out.redirects_folded = report.redirects_folded;
    report_out.redirects_unfollowed = report.redirects_unfollowed;
    report_out.overlapping = report.overlapping;
    report_out.requests = builder.requests.len();
    report_out.sessions = steps_of.len();
    Ok(HarImported {
        origin,
        auth,
        requests: builder.requests,
        sessions: steps_of,
        columns: builder.columns,
        bodies: builder.bodies,
        env_headers: builder.env_headers,
        report: report_out,
    })
}

/// The origin most of the page's own requests went to (a document's first).
fn main_origin(entries: &[Entry], parsed: &[(usize, i64, reqwest::Url)]) -> String {
    if let Some((_, _, url)) = parsed
        .iter()
        .find(|(i, _, _)| entries[*i].resource_type.as_deref() == Some("document"))
    {
        return url.origin().ascii_serialization();
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for (_, _, url) in parsed {
        *counts
            .entry(url.origin().ascii_serialization())
            .or_default() += 1;
    }
    let first = parsed[0].2.origin().ascii_serialization();
    let most = counts.values().copied().max().unwrap_or(0);
    parsed
        .iter()
        .map(|(_, _, u)| u.origin().ascii_serialization())
        .find(|o| counts[o] == most)
        .unwrap_or(first)
}

/// The statuses a replay of a recorded answer expects: a 304 the browser's
/// cache earned is a 200 without it.
fn expected(status: i64) -> Vec<u16> {
    let status = status.clamp(100, 599) as u16;
    if status == 304 {
        vec![200, 304]
    } else {
        vec![status]
    }
}

/// A request's recorded time in ms: at most a day (a writer's -1, or a
/// hostile 1e300, is no time to add to a start).
fn took(e: &Entry) -> i64 {
    e.time.clamp(0.0, 86_400_000.0) as i64
}

/// A redirect the client follows at replay: where to, and with which
/// method (307 and 308 keep it, the others turn it into a GET).
struct Redirect {
    location: reqwest::Url,
    method: String,
}

impl Redirect {
    /// The entry's redirect, when its answer is one with a `Location`.
    fn of(e: &Entry, url: &reqwest::Url, method: &str) -> Option<Redirect> {
        let method = match e.response.status {
            307 | 308 => method.to_owned(),
            301..=303 => "GET".to_owned(),
            _ => return None,
        };
        let mut location = url.join(header(&e.response.headers, "location")?).ok()?;
        location.set_fragment(None);
        Some(Redirect { location, method })
    }

    /// Whether the browser's next request is this redirect followed.
    fn followed_by(&self, method: &str, url: &reqwest::Url) -> bool {
        let mut url = url.clone();
        url.set_fragment(None);
        method == self.method && url == self.location
    }
}

/// A redirect whose end the recording does not hold (it left the origin,
/// or went to a static asset): the client still follows it, so its request
/// expects any 2xx rather than the 3xx it will never see.
fn unfollowed(builder: &mut build::Builder, steps: &[HarStep], report: &mut HarReport) {
    if let Some(last) = steps.last() {
        builder.requests[last.request].statuses.clear();
        report.redirects_unfollowed += 1;
    }
}

/// `s1_03_post_patient`: the session, the step, the method and the path's
/// route words (at most 60 characters).
fn request_name(
    session: usize,
    step: usize,
    method: &str,
    path: &str,
    keep: &BTreeSet<String>,
) -> String {
    let route = crate::import::route::route(method, path, keep);
    let words: Vec<String> = route
        .path
        .iter()
        .filter_map(|p| match p {
            crate::import::route::Piece::Literal(w) if !w.is_empty() => {
                Some(crate::import::snake(w))
            }
            crate::import::route::Piece::Value(..) => Some("id".to_owned()),
            _ => None,
        })
        .filter(|w| !w.is_empty())
        .collect();
    let tail: Vec<&String> = words
        .iter()
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let mut name = format!("s{session}_{step:02}_{}", method.to_ascii_lowercase());
    for w in tail {
        name.push('_');
        name.push_str(w);
    }
    name.chars().take(60).collect()
}

#[cfg(test)]
mod tests;
