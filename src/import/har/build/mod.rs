//! One recorded request as a scenario request: every value it sends
//! decided once — a capture of what an earlier answer handed out
//! (correlation), kept as recorded, a feeder column of synthetic values,
//! synthetic text, or refused — and every answer's values indexed for the
//! requests after it.

mod body;

use super::model::{Entry, NameValue};
use super::parts::{percent_decode, printable};
use super::scrub::{self, Verdict};
use super::{HarOptions, HarReport, Req};
use crate::import::route::{self, Piece, ValueKind};
use crate::import::synthetic::{shape_of, Synthetic};
use crate::import::{snake, unique, Column};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// Most values one answer hands out to the index (a search's hits).
const MOST_HANDED_PER_ANSWER: usize = 5_000;

/// A value an answer handed out: which request's answer, and where.
#[derive(Debug, Clone)]
struct Handout {
    request: usize,
    /// `results.0.uuid` or `header:Location`.
    from: String,
    /// The variable's name, once a later request used it.
    var: Option<String>,
    /// A name for the variable, from where it was found.
    hint: String,
}

/// Turns recorded requests into scenario requests, one session at a time.
pub struct Builder<'a> {
    options: &'a HarOptions,
    synthetic: Synthetic,
    /// Feeder columns, and the column each recorded value went to.
    pub columns: Vec<Column>,
    by_value: HashMap<String, usize>,
    /// What this session's answers handed out so far.
    handed: HashMap<String, Handout>,
    /// Every request made so far (all sessions).
    pub requests: Vec<Req>,
    vars: Vec<String>,
    /// Where a value looked like a secret (entry and place; never the value).
    pub refusals: Vec<String>,
    /// Fixture files: path in the out folder, text.
    pub bodies: Vec<(String, String)>,
    /// Environment variables the scenario reads for headers.
    pub env_headers: Vec<String>,
    /// What was replaced, by kind.
    pub report: HarReport,
    /// The entry being built (1-based, for refusals).
    entry: usize,
}

impl<'a> Builder<'a> {
    /// A builder whose synthetic values come from `options.seed`.
    pub fn new(options: &'a HarOptions) -> Builder<'a> {
        Builder {
            options,
            synthetic: Synthetic::new(options.seed ^ 0x4a52),
            columns: Vec::new(),
            by_value: HashMap::new(),
            handed: HashMap::new(),
            requests: Vec::new(),
            vars: Vec::new(),
            refusals: Vec::new(),
            bodies: Vec::new(),
            env_headers: Vec::new(),
            report: HarReport::default(),
            entry: 0,
        }
    }

    /// A new session: what earlier sessions' answers handed out is not
    /// theirs (a persona captures only from its own earlier steps).
    pub fn new_session(&mut self) {
        self.handed.clear();
    }

    /// The request for recorded entry `number` (1-based), named `name`,
    /// sent to the path after the origin; `drop_authorization` when the
    /// scenario's `[auth]` sends the credential.
    pub fn request(
        &mut self,
        number: usize,
        name: String,
        entry: &Entry,
        target: &str,
        drop_authorization: bool,
    ) -> usize {
        self.entry = number;
        let method = entry.request.method.to_ascii_uppercase();
        let path = self.path(&method, target);
        let mut headers = Vec::new();
        for NameValue { name: h, value } in &entry.request.headers {
            let lower = h.to_ascii_lowercase();
            if lower == "authorization" && !drop_authorization {
                headers.push((h.clone(), self.env_header("AUTHORIZATION")));
                continue;
            }
            if scrub::dropped_header(h)
                || headers
                    .iter()
                    .any(|(n, _): &(String, String)| n.eq_ignore_ascii_case(h))
            {
                continue;
            }
            let text = match self.handed_var(value) {
                Some(var) => format!("${{{var}}}"),
                None if scrub::secret_header(h) => {
                    self.report.secrets_templated += 1;
                    self.env_header(&snake(h).to_ascii_uppercase())
                }
                None if scrub::protocol_header(h) && !scrub::looks_secret(value) => {
                    value.replace("${", "$${")
                }
                None => self.template(h, value, false, &format!("header {}", printable(h))),
            };
            headers.push((h.clone(), text));
        }
        let body = self.body(entry);
        let index = self.requests.len();
        self.requests.push(Req {
            name,
            method: method.clone(),
            path,
            headers,
            body,
            statuses: vec![],
            captures: BTreeMap::new(),
            ends_session: method == "DELETE"
                && target.split('?').next().unwrap_or("").ends_with("/session"),
        });
        index
    }

    /// Indexes what request `index`'s recorded answer handed out: the
    /// id-like leaves of a JSON body, a `Location`, a token header.
    pub fn handed_out(&mut self, index: usize, entry: &Entry) {
        let response = &entry.response;
        for NameValue { name, value } in &response.headers {
            let lower = name.to_ascii_lowercase();
            let handing =
                lower == "location" || (scrub::secret_header(name) && lower != "set-cookie");
            if handing && value.len() >= 3 {
                self.handed.insert(
                    value.clone(),
                    Handout {
                        request: index,
                        from: format!("header:{name}"),
                        var: None,
                        hint: snake(name),
                    },
                );
            }
        }
        let is_json = response.content.mime_type.contains("json");
        let Some(text) = response.content.body().filter(|_| is_json) else {
            return;
        };
        let Ok(json) = serde_json::from_str::<Value>(&text) else {
            return;
        };
        // The answer's request's last route word names its root fields'
        // variables (`patient_uuid`, `attachment_uuid`).
        let word = self.requests[index]
            .path
            .split('?')
            .next()
            .unwrap_or("")
            .rsplit('/')
            .find(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphabetic()))
            .map(snake)
            .unwrap_or_default();
        let mut found = Vec::new();
        leaves(&json, &mut Vec::new(), &mut found);
        let mut fresh: HashMap<String, Handout> = HashMap::new();
        for (path, value) in found.into_iter().take(MOST_HANDED_PER_ANSWER) {
            // The first place an answer names a value is where it is captured.
            fresh.entry(value).or_insert_with(|| Handout {
                request: index,
                hint: hint(&path, &json, &word),
                from: path.join("."),
                var: None,
            });
        }
        self.handed.extend(fresh);
    }

    /// The variable that carries `value`, when an earlier answer of this
    /// session handed it out: the answer's request captures it.
    fn handed_var(&mut self, value: &str) -> Option<String> {
        // An id of one or two characters (HAPI's `7`) is taken for the
        // handed-out one only as a path segment or a reference's part,
        // never in any body or header value that happens to be `7`.
        if value.len() < 3 {
            return None;
        }
        self.handed_short(value)
    }

    /// [`Self::handed_var`] for a path segment or a reference's part,
    /// whatever its length.
    fn handed_short(&mut self, value: &str) -> Option<String> {
        let handout = self.handed.get(value)?.clone();
        self.report.correlated += 1;
        if let Some(var) = handout.var {
            return Some(var);
        }
        let base = if handout.hint.is_empty() {
            "value".to_owned()
        } else {
            handout.hint.clone()
        };
        // `${uuid}` is a fresh UUID, never a variable.
        let var = unique(&base, |n| n == "uuid" || self.vars.iter().any(|v| v == n));
        self.vars.push(var.clone());
        self.requests[handout.request]
            .captures
            .insert(var.clone(), handout.from.clone());
        self.report.captures += 1;
        // Every value equal to this one, in this session, is this variable.
        for h in self.handed.values_mut() {
            if h.request == handout.request && h.from == handout.from {
                h.var = Some(var.clone());
            }
        }
        Some(var)
    }

    /// `${env:SURGE_HEADER_NAME}`, noted for the report.
    fn env_header(&mut self, name: &str) -> String {
        self.env_var(&format!("SURGE_HEADER_{name}"))
    }

    /// `${env:VAR}`, noted for the report.
    fn env_var(&mut self, var: &str) -> String {
        let var = var.to_owned();
        if !self.env_headers.contains(&var) {
            self.env_headers.push(var.clone());
        }
        format!("${{env:{var}}}")
    }

    /// The path and query as a template: route words as recorded, every
    /// other value a capture or a synthetic column.
    fn path(&mut self, method: &str, target: &str) -> String {
        let (route, recorded) = route::route_and_values(method, target, &self.options.keep_words);
        let mut recorded = recorded.into_iter();
        let mut piece = |b: &mut Self, p: &Piece| match p {
            Piece::Literal(text) => text.replace("${", "$${"),
            Piece::Value(kind, before) => {
                let raw = recorded.next().unwrap_or("");
                let value = percent_decode(raw);
                match b.handed_short(&value) {
                    Some(var) => format!("${{{var}}}"),
                    None => format!("${{synthetic.{}}}", b.column(*kind, before, &value)),
                }
            }
        };
        let mut out = String::new();
        for p in &route.path {
            out.push('/');
            out.push_str(&piece(self, p));
        }
        if out.is_empty() {
            out.push('/');
        }
        let query: Vec<String> = route
            .query
            .iter()
            .map(|(name, p)| format!("{name}={}", piece(self, p)))
            .collect();
        if !query.is_empty() {
            out = format!("{out}?{}", query.join("&"));
        }
        out
    }

    /// The feeder column for a recorded value (the same value, the same
    /// column, wherever it was sent); counted by kind.
    fn column(&mut self, kind: ValueKind, key: &str, value: &str) -> String {
        *self.report.replaced.entry(kind).or_insert(0) += 1;
        if let Some(&i) = self.by_value.get(value) {
            return self.columns[i].name.clone();
        }
        let base = format!(
            "{}{}",
            snake(key).chars().take(32).collect::<String>(),
            match kind {
                ValueKind::Uuid => "_uuid",
                ValueKind::Number => "_id",
                ValueKind::Date => "_date",
                ValueKind::Email => "_email",
                ValueKind::Name => "_name",
                ValueKind::Word => "_word",
                ValueKind::Opaque => "_ref",
            }
        );
        let base = base.trim_start_matches('_').to_owned();
        let name = unique(&base, |n| self.columns.iter().any(|c| c.name == n));
        self.columns.push(Column {
            name: name.clone(),
            kind,
            before: key.to_owned(),
            shapes: vec![shape_of(value)],
        });
        self.by_value
            .insert(value.to_owned(), self.columns.len() - 1);
        name
    }

    /// A recorded string under `key` as a template: a capture, a feeder
    /// column, synthetic text, or the recorded text; a refusal is noted
    /// (its place, never its value) and an empty text stands in.
    fn template(&mut self, key: &str, value: &str, inside: bool, place: &str) -> String {
        if let Some(var) = self.handed_var(value) {
            return format!("${{{var}}}");
        }
        // A reference (`Patient/<id>`, a URL) whose one part was handed
        // out: that part its variable, every other part decided alone.
        if value.contains('/') && value.len() <= 2048 {
            let parts: Vec<&str> = value.split('/').collect();
            if parts
                .iter()
                .any(|p| !p.is_empty() && self.handed.contains_key(*p))
            {
                let out: Vec<String> = parts
                    .iter()
                    .map(|p| match self.handed_short(p) {
                        Some(var) if !p.is_empty() => format!("${{{var}}}"),
                        _ if p.is_empty() => String::new(),
                        _ => self.template(key, p, inside, place),
                    })
                    .collect();
                return out.join("/");
            }
        }
        // A password, PIN or secret by its field's name: never written,
        // whatever it looks like.
        if scrub::secret_field(key) && !self.options.safe.contains(key) {
            self.report.secrets_templated += 1;
            return self.env_var(&format!("SURGE_FIELD_{}", snake(key).to_ascii_uppercase()));
        }
        match scrub::classify(key, value, inside, &self.options.safe) {
            Verdict::Keep => value.replace("${", "$${"),
            Verdict::Column(kind) => format!("${{synthetic.{}}}", self.column(kind, key, value)),
            Verdict::Text => {
                self.report.free_text += 1;
                self.synthetic.text(value.chars().count())
            }
            Verdict::Refuse(why) => {
                self.refusals.push(format!(
                    "entry {}: {place}: {why} (if it is not, name it safe: --safe {})",
                    self.entry,
                    printable(key)
                ));
                String::new()
            }
        }
    }
}

/// The id-like leaves of an answer, with their paths: strings of 3
/// characters or more with no whitespace that are a UUID, hold a digit,
/// or are 12 characters or more; integers of 2 digits or more. A leaf
/// under a key a capture path cannot name is skipped.
fn leaves(value: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
    if out.len() >= MOST_HANDED_PER_ANSWER {
        return;
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                // A key that may itself be data never enters a capture path.
                let nameable = !k.is_empty()
                    && !k.bytes().all(|b| b.is_ascii_digit())
                    && !k.contains(['.', '[', ']', '*', '='])
                    && !scrub::data_like(k);
                if nameable {
                    path.push(k.clone());
                    leaves(v, path, out);
                    path.pop();
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(i.to_string());
                leaves(v, path, out);
                path.pop();
            }
        }
        Value::String(s) => {
            // An answer's own `id` or `uuid` is handed out whatever its
            // length (HAPI's ids are short numbers).
            let own_id = path.last().is_some_and(|k| k == "id" || k == "uuid") && !s.is_empty();
            let idlike = own_id
                || s.len() >= 3
                    && s.len() <= 4096
                    && !s.contains(char::is_whitespace)
                    && (s.bytes().any(|b| b.is_ascii_digit()) || s.len() >= 12);
            if idlike && !path.is_empty() {
                out.push((path.clone(), s.clone()));
            }
        }
        Value::Number(n) if n.is_u64() && n.as_u64().unwrap_or(0) >= 10 && !path.is_empty() => {
            out.push((path.clone(), n.to_string()));
        }
        _ => {}
    }
}

/// A variable's name from where its value was: `results.0.uuid` →
/// `results_uuid`; a FHIR resource's `id` → `patient_id`.
fn hint(path: &[String], root: &Value, word: &str) -> String {
    let words: Vec<&String> = path
        .iter()
        .filter(|s| !s.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    let last = words.last().map_or("value".to_owned(), |w| snake(w));
    if last == "id" {
        let mut node = root;
        for s in &path[..path.len() - 1] {
            node = match node {
                Value::Object(m) => m.get(s).unwrap_or(&Value::Null),
                Value::Array(a) => s
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| a.get(i))
                    .unwrap_or(&Value::Null),
                _ => &Value::Null,
            };
        }
        if let Some(t) = node.get("resourceType").and_then(Value::as_str) {
            return format!("{}_id", snake(t));
        }
    }
    match words.len() {
        0 | 1 if word.is_empty() || word == last => last,
        0 | 1 => format!("{word}_{last}"),
        n => format!("{}_{last}", snake(words[n - 2])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variable_is_named_by_where_its_value_was() {
        let json: Value =
            serde_json::json!({"resourceType": "Patient", "id": "17", "results": [{"uuid": "x"}]});
        assert_eq!(hint(&["id".into()], &json, "fhir"), "patient_id");
        // A root field of an answer: named by its request's last word.
        assert_eq!(
            hint(&["uuid".into()], &json, "attachment"),
            "attachment_uuid"
        );
        assert_eq!(
            hint(&["identifier".into()], &json, "identifier"),
            "identifier"
        );
        assert_eq!(
            hint(
                &["results".into(), "0".into(), "uuid".into()],
                &json,
                "patient"
            ),
            "results_uuid"
        );
    }
}
