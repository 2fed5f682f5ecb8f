//! A recorded request's body as the scenario sends it: JSON scrubbed
//! field by field into a fixtures file, a form, a multipart body whose
//! files become generated content of their type and size, a generated raw
//! body, or the placeholder for a body that is neither JSON nor a form.

use super::super::model::{header, Entry, Param};
use super::super::parts::{
    form_encode, form_pairs, kind_of, multipart_params, percent_decode, printable,
};
use super::super::scrub;
use super::super::{BodyOut, PartOut};
use super::Builder;
use crate::import::route::ValueKind;
use serde_json::Value;

impl Builder<'_> {
    /// The request's body, scrubbed.
    pub(super) fn body(&mut self, entry: &Entry) -> BodyOut {
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
