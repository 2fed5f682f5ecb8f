//! One recorded request as a scenario request: every value it sends
//! decided once — a capture of what an earlier answer handed out
//! (correlation), kept as recorded, a feeder column of synthetic values,
//! synthetic text, or refused — and every answer's values indexed for the
//! requests after it.

use super::model::{header, Entry, NameValue, Param};
use super::parts::{form_encode, form_pairs, kind_of, multipart_params, percent_decode, printable};
use super::scrub::{self, Verdict};
use super::{BodyOut, HarOptions, HarReport, PartOut, Req};
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

    /// The request's body, scrubbed.
    fn body(&mut self, entry: &Entry) -> BodyOut {
        let Some(post) = &entry.request.post_data else {
            return match entry.request.body_size {
                size if size > 0 => self.generated_body(size as u64, ""),
                _ => BodyOut::None,
            };
        };
        let mime = post.mime_type.to_ascii_lowercase();
        let content_type = (!post.mime_type.is_empty()).then(|| post.mime_type.clone());
        if mime.starts_with("multipart/form-data") {
            return self.multipart(entry, &post.mime_type, &post.params, post.text.as_deref());
        }
        if mime.starts_with("application/x-www-form-urlencoded") {
            let pairs: Vec<(String, String)> = if post.params.is_empty() {
                form_pairs(post.text.as_deref().unwrap_or(""))
            } else {
                post.params
                    .iter()
                    .map(|p| {
                        (
                            percent_decode(&p.name),
                            percent_decode(p.value.as_deref().unwrap_or("")),
                        )
                    })
                    .collect()
            };
            let mut fields: Vec<(String, String)> = Vec::new();
            for (k, v) in pairs {
                if scrub::data_like(&k) {
                    self.refusals.push(format!(
                        "entry {}: a form field whose name looks like data (an id, a date, an address): edit the recording",
                        self.entry
                    ));
                    continue;
                }
                let t = self.template(&k, &v, false, &format!("form field {}", printable(&k)));
                fields.push((k, t));
            }
            // A field sent more than once (`obs=1&obs=2`) cannot be a
            // table's key twice: the form is sent as its encoded text.
            let repeated = fields
                .iter()
                .enumerate()
                .any(|(i, (k, _))| fields[..i].iter().any(|(other, _)| other == k));
            if repeated {
                let text = fields
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{}={}",
                            form_encode(k),
                            if v.contains("${") {
                                v.clone()
                            } else {
                                form_encode(v)
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("&");
                let file = format!("bodies/{}.form", self.requests.len() + 1);
                self.bodies.push((file.clone(), text));
                return BodyOut::Template {
                    file,
                    content_type: "application/x-www-form-urlencoded".into(),
                };
            }
            return BodyOut::Form(fields);
        }
        let Some(text) = &post.text else {
            return self.generated_body(entry.request.body_size.max(0) as u64, &post.mime_type);
        };
        if let Ok(json) = serde_json::from_str::<Value>(text) {
            if json.is_object() || json.is_array() {
                let scrubbed = self.json(&json, "", false, "");
                let file = format!("bodies/{}.json", self.requests.len() + 1);
                let pretty = serde_json::to_string_pretty(&scrubbed).unwrap_or_default();
                self.bodies.push((file.clone(), pretty));
                let content_type =
                    content_type.filter(|c| !c.eq_ignore_ascii_case("application/json"));
                return BodyOut::JsonFile { file, content_type };
            }
        }
        // XML, plain text: not scrubbed field by field, so not kept.
        self.report.placeholders += 1;
        BodyOut::Placeholder { content_type }
    }

    /// A raw body the HAR holds no text for: generated, of its size.
    fn generated_body(&mut self, size: u64, mime: &str) -> BodyOut {
        if size > crate::scenario::limits::MAX_GENERATED_BYTES {
            self.refusals.push(format!(
                "entry {}: a body of {size} bytes: a generated one can be at most {} MiB",
                self.entry,
                crate::scenario::limits::MAX_GENERATED_BYTES >> 20
            ));
            return BodyOut::None;
        }
        self.report.files_generated += 1;
        BodyOut::Generated {
            kind: kind_of(mime),
            size: size.max(1),
            content_type: (!mime.is_empty()).then(|| mime.to_owned()),
        }
    }

    fn multipart(
        &mut self,
        entry: &Entry,
        mime: &str,
        params: &[Param],
        text: Option<&str>,
    ) -> BodyOut {
        let params: Vec<Param> = if params.is_empty() {
            multipart_params(mime, text.unwrap_or(""))
        } else {
            params.to_vec()
        };
        // Chromium leaves a file's bytes out: its size is what the
        // request's length says beyond the rest of the body.
        let declared = header(&entry.request.headers, "content-length")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .or((entry.request.body_size > 0).then_some(entry.request.body_size as u64));
        let files_without_bytes = params
            .iter()
            .filter(|p| p.file_name.is_some() && p.value.as_deref().unwrap_or("").is_empty())
            .count() as u64;
        let rest = text.map_or(0, |t| t.len() as u64);
        let mut parts = Vec::new();
        for p in &params {
            if scrub::data_like(&p.name) {
                self.refusals.push(format!(
                    "entry {}: a multipart part whose name looks like data (an id, a date, an address): edit the recording",
                    self.entry
                ));
                continue;
            }
            if p.file_name.is_some() {
                let recorded = p.value.as_deref().unwrap_or("");
                let size = if !recorded.is_empty() {
                    recorded.len() as u64
                } else {
                    match declared {
                        Some(total) if total > rest && files_without_bytes > 0 => {
                            (total - rest) / files_without_bytes
                        }
                        _ => {
                            self.report.sizes_unknown += 1;
                            16 * 1024
                        }
                    }
                };
                if size > crate::scenario::limits::MAX_GENERATED_BYTES {
                    self.refusals.push(format!(
                        "entry {}: an upload of {size} bytes: a generated file can be at most {} MiB",
                        self.entry,
                        crate::scenario::limits::MAX_GENERATED_BYTES >> 20
                    ));
                    continue;
                }
                self.report.files_generated += 1;
                let content_type = p.content_type.clone().unwrap_or_default();
                parts.push(PartOut::Generated {
                    name: p.name.clone(),
                    kind: kind_of(&content_type),
                    size: size.max(1),
                    content_type: (!content_type.is_empty()).then_some(content_type),
                });
            } else {
                let value = p.value.clone().unwrap_or_default();
                let t = self.template(
                    &p.name,
                    &value,
                    false,
                    &format!("multipart part {}", printable(&p.name)),
                );
                parts.push(PartOut::Value {
                    name: p.name.clone(),
                    value: t,
                });
            }
        }
        BodyOut::Multipart(parts)
    }

    /// A JSON body with every string leaf decided; a FHIR resource's
    /// narrative (`text`) and any `photo` left out, attachment `data`
    /// replaced by random bytes of its length.
    fn json(&mut self, value: &Value, key: &str, inside: bool, at: &str) -> Value {
        match value {
            Value::Object(map) => {
                let fhir = map.contains_key("resourceType");
                let mut out = serde_json::Map::new();
                for (k, v) in map {
                    if scrub::data_like(k) {
                        self.refusals.push(format!(
                            "entry {}: body {}: a field name that looks like data (an id, a date, an address): edit the recording",
                            self.entry,
                            if at.is_empty() { "(the whole body)".to_owned() } else { format!("under {at}") }
                        ));
                        continue;
                    }
                    if (fhir && k == "text" && v.is_object()) || k == "photo" {
                        self.report.left_out_elements += 1;
                        continue;
                    }
                    let place = if at.is_empty() {
                        printable(k)
                    } else {
                        format!("{at}.{}", printable(k))
                    };
                    if k == "data" && v.as_str().is_some_and(|s| s.len() > 64) {
                        self.report.files_generated += 1;
                        let len = v.as_str().map_or(0, str::len);
                        out.insert(k.clone(), Value::String(self.synthetic.base64(len)));
                        continue;
                    }
                    let inner = inside || scrub::identifying(k);
                    out.insert(k.clone(), self.json(v, k, inner, &place));
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.json(v, key, inside, &format!("{at}.{i}")))
                    .collect(),
            ),
            Value::String(s) => {
                let place = format!(
                    "body {}",
                    if at.is_empty() {
                        "(the whole body)"
                    } else {
                        at
                    }
                );
                Value::String(self.template(key, s, inside, &place))
            }
            // A number under a person's key (`"phone": 712345678`), or an
            // id-like one anywhere (seven digits or more, not a time):
            // a synthetic number of its digits.
            Value::Number(n) if n.is_u64() || n.is_i64() => {
                let digits = n.to_string().trim_start_matches('-').len();
                let lower = key.to_ascii_lowercase();
                let timeish = ["time", "date", "at", "ms", "epoch"]
                    .iter()
                    .any(|t| lower.ends_with(t));
                let person = (inside || scrub::identifying(key)) && !scrub::structural(key);
                if (person || (digits >= 7 && !timeish)) && !self.options.safe.contains(key) {
                    *self.report.replaced.entry(ValueKind::Number).or_insert(0) += 1;
                    let made = self.synthetic.value(ValueKind::Number, &"9".repeat(digits));
                    made.parse::<u64>()
                        .map(Value::from)
                        .unwrap_or(Value::from(0))
                } else {
                    value.clone()
                }
            }
            other => other.clone(),
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
