//! Rendering a scenario request for one user: its URL, headers and body
//! from the user's own values (captures, feeder rows), generated content
//! made on the spot (its hash and size kept for the consistency ledger),
//! and, when a value is missing, why.

use super::user::{Shared, UserState};
use crate::scenario::{Body, Generated, MissingValue, Part};
use crate::verify::consistency::sha256_hex;
use reqwest::{Client, RequestBuilder};

impl Shared {
    pub(super) fn url(&self, path: &str) -> String {
        self.scenario.target.url(path)
    }

    /// Builds request `index` for this user. Generated content is made
    /// here; its hash and size come back for the consistency ledger.
    pub(super) fn build(
        &self,
        client: &Client,
        index: usize,
        state: &UserState,
    ) -> Result<(RequestBuilder, Option<(String, u64)>, String), MissingValue> {
        let spec = &self.scenario.requests[index];
        let path = spec.path.render(state)?;
        let url = if spec.rebase {
            crate::scenario::rebase_url(&self.scenario.target.base_url, &path)
        } else {
            self.url(&path)
        };
        let mut rb = client.request(spec.method.into(), &url);
        for (name, value) in &spec.headers {
            rb = rb.header(name.as_str(), value.render(state)?);
        }
        let mut made: Option<(String, u64)> = None;
        let mut generate = |content: &Generated| {
            let bytes = content.make();
            made.get_or_insert_with(|| (sha256_hex(&bytes), bytes.len() as u64));
            bytes
        };
        let file_part = |bytes: Vec<u8>, file_name: String, content_type: &str| {
            let part = reqwest::multipart::Part::bytes(bytes).file_name(file_name);
            // A content type that does not parse is sent as the default instead.
            part.mime_str(content_type)
        };
        let rb = match &spec.body {
            Body::None => rb,
            Body::Json(json) => rb.json(&json.render(state)?),
            Body::Form(fields) => {
                let fields: Vec<(String, String)> = fields
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), v.render(state)?)))
                    .collect::<Result<_, MissingValue>>()?;
                rb.form(&fields)
            }
            Body::Text {
                template,
                content_type,
            } => {
                let text = template.render(state)?.into_bytes();
                made.get_or_insert_with(|| (sha256_hex(&text), text.len() as u64));
                rb.header(reqwest::header::CONTENT_TYPE, content_type.as_str())
                    .body(text)
            }
            Body::Raw {
                bytes,
                content_type,
            } => rb
                .header(reqwest::header::CONTENT_TYPE, content_type.as_str())
                .body(bytes.to_vec()),
            Body::Generated { content } => rb
                .header(reqwest::header::CONTENT_TYPE, content.content_type())
                .body(generate(content)),
            Body::Multipart(parts) => {
                let mut form = reqwest::multipart::Form::new();
                for part in parts {
                    form = match part {
                        Part::Text { name, value } => form.text(name.clone(), value.render(state)?),
                        Part::File {
                            name,
                            file_name,
                            bytes,
                            content_type,
                        } => match file_part(bytes.to_vec(), file_name.clone(), content_type) {
                            Ok(p) => form.part(name.clone(), p),
                            Err(_) => form.part(
                                name.clone(),
                                reqwest::multipart::Part::bytes(bytes.to_vec())
                                    .file_name(file_name.clone()),
                            ),
                        },
                        Part::Generated { name, content } => {
                            let p = file_part(
                                generate(content),
                                content.file_name(),
                                content.content_type(),
                            )
                            .expect("generated content types are valid MIME types");
                            form.part(name.clone(), p)
                        }
                    };
                }
                rb.multipart(form)
            }
        };
        Ok((rb, made, url))
    }

    /// Why a value a template needs is missing, for the "not sent" count:
    /// `${patient_uuid} was never captured (capture in search_patient found
    /// nothing at results.0.uuid)`.
    pub(super) fn why_missing(&self, state: &UserState, name: &str) -> String {
        if let Some((feeder, column)) = name.split_once('.') {
            return format!("${{{name}}}: feeder {feeder} has no column {column} in this row");
        }
        if let Some(why) = state.missed.get(name) {
            return format!("${{{name}}} was never captured ({why})");
        }
        let capturers: Vec<&str> = self
            .scenario
            .requests
            .iter()
            .filter(|r| r.captures.iter().any(|(var, _)| var == name))
            .map(|r| r.name.as_str())
            .collect();
        if capturers.is_empty() {
            format!("${{{name}}} has no value (no request captures it)")
        } else {
            format!(
                "${{{name}}} was never captured ({}, which captures it, had not answered for this user)",
                capturers.join(" or ")
            )
        }
    }
}
