//! Rendering a scenario request for one user: its URL, headers and body
//! from the user's own values (captures, feeder rows), generated content
//! made on the spot (its hash and size kept for the consistency ledger),
//! and, when a value is missing, why.

use super::user::{Shared, UserState};
use crate::scenario::{Body, Generated, MissingValue, Part};
use crate::verify::consistency::sha256_hex;
use reqwest::{Client, RequestBuilder};

/// The target's origin (`http://host:port`), parsed once: a request URL on
/// it is parsed relative to it, so the host is not parsed again for every
/// request (url + idna were about 5% of the generator's CPU). `None` when
/// the base carries a user name or password (not a prefix of the URLs).
pub(super) fn origin_of(base: &str) -> Option<(String, reqwest::Url)> {
    let url = reqwest::Url::parse(base).ok()?;
    if !url.username().is_empty() || url.password().is_some() || !url.has_host() {
        return None;
    }
    let origin = url.origin().ascii_serialization();
    let parsed = reqwest::Url::parse(&origin).ok()?;
    Some((origin, parsed))
}

/// `full` parsed relative to `origin`, when it is the origin followed by an
/// absolute path: exactly what parsing it whole gives. `None` otherwise
/// (reqwest then parses it whole, and reports it if it does not parse).
pub(super) fn on_origin(origin: &(String, reqwest::Url), full: &str) -> Option<reqwest::Url> {
    let rest = full.strip_prefix(origin.0.as_str())?;
    // The parser skips tabs and newlines anywhere, so `/\t/host` would read
    // as `//host` relative to a base: such a URL is parsed whole.
    if rest.contains(['\t', '\n', '\r']) {
        return None;
    }
    let mut chars = rest.chars();
    // `//x` or `/\x` would name another host relative to a base.
    if chars.next() != Some('/') || matches!(chars.next(), Some('/' | '\\')) {
        return None;
    }
    origin.1.join(rest).ok()
}

/// A request ready to send, with what the consistency ledger needs.
pub(super) struct Built {
    /// The request.
    pub request: RequestBuilder,
    /// SHA-256 and size of the content it carries, if it generates any.
    pub made: Option<(String, u64)>,
    /// Its URL, for messages.
    pub url: String,
}

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
    ) -> Result<Built, MissingValue> {
        let spec = &self.scenario.requests[index];
        let path = spec.path.render(state)?;
        let url = if spec.rebase {
            crate::scenario::rebase_url(&self.scenario.target.base_url, &path)
        } else {
            self.url(&path)
        };
        let mut rb = match self.origin.as_ref().and_then(|o| on_origin(o, &url)) {
            Some(parsed) => client.request(spec.method.into(), parsed),
            None => client.request(spec.method.into(), &url),
        };
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
        Ok(Built {
            request: rb,
            made,
            url,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The shortcut parses every URL on the origin exactly as a whole parse
    /// does, and declines the ones that are not (or might name another host).
    #[test]
    fn urls_on_the_origin_parse_as_a_whole_parse_does() {
        let origin = origin_of("http://127.0.0.1:18080/openmrs").unwrap();
        assert_eq!(origin.0, "http://127.0.0.1:18080");
        for full in [
            "http://127.0.0.1:18080/openmrs/ws/rest/v1/patient?q=Sm%C3%ADth&v=full",
            "http://127.0.0.1:18080/fhir/Patient?name=O'Brien&_count=5#top",
            "http://127.0.0.1:18080/a/../b/./c?x=1 2",
            "http://127.0.0.1:18080/ümlaut/Ω?q=ä",
            "http://127.0.0.1:18080/",
        ] {
            assert_eq!(
                on_origin(&origin, full).map(|u| u.to_string()),
                Some(reqwest::Url::parse(full).unwrap().to_string()),
                "{full}"
            );
        }
        for other in [
            "http://127.0.0.1:18080//evil.example/x",
            "http://127.0.0.1:18080/\\evil.example/x",
            "http://127.0.0.1:180800/x",
            "https://127.0.0.1:18080/x",
            "http://127.0.0.1:18080",
            "http://127.0.0.1:18080/\t/evil.example/x",
            "http://127.0.0.1:18080/\n/evil.example/x",
        ] {
            assert_eq!(on_origin(&origin, other), None, "{other}");
        }
        assert!(origin_of("http://user:secret@127.0.0.1:1").is_none());
    }
}
