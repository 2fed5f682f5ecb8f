//! HAR 1.2 as browsers and recorders write it (Chromium's DevTools,
//! Firefox, Playwright, k6 studio): only the fields an import reads. Every
//! other field — and each writer's own `_`-prefixed ones but
//! `_resourceType` — is read past, as HAR allows.

use serde::Deserialize;

/// The file.
#[derive(Debug, Deserialize)]
pub struct Har {
    /// Its one `log`.
    pub log: Log,
}

/// `log`.
#[derive(Debug, Deserialize)]
pub struct Log {
    /// The requests, as the writer listed them.
    pub entries: Vec<Entry>,
}

/// One request and its answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// When the request started (ISO 8601).
    pub started_date_time: String,
    /// Its total time in ms (-1 when the writer did not know).
    #[serde(default)]
    pub time: f64,
    /// The request.
    pub request: Request,
    /// The answer.
    pub response: Response,
    /// Chromium's and k6 studio's kind of resource (`document`, `xhr`,
    /// `fetch`, `script`, `image`, …).
    #[serde(default, rename = "_resourceType")]
    pub resource_type: Option<String>,
}

/// `request`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// The absolute URL.
    pub url: String,
    /// Its headers, as sent.
    #[serde(default)]
    pub headers: Vec<NameValue>,
    /// The cookies it sent, as some writers list them beside the header.
    #[serde(default)]
    pub cookies: Vec<NameValue>,
    /// Its body.
    #[serde(default)]
    pub post_data: Option<PostData>,
    /// The body's size in bytes (-1 when unknown).
    #[serde(default = "unknown")]
    pub body_size: i64,
}

fn unknown() -> i64 {
    -1
}

/// A header (or a form parameter without a file).
#[derive(Debug, Deserialize, Clone)]
pub struct NameValue {
    /// Its name.
    pub name: String,
    /// Its value.
    #[serde(default)]
    pub value: String,
}

/// `postData`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostData {
    /// Its Content-Type.
    #[serde(default)]
    pub mime_type: String,
    /// The body as text (absent when a writer left it out).
    #[serde(default)]
    pub text: Option<String>,
    /// Form and multipart parameters, when the writer parsed them.
    #[serde(default)]
    pub params: Vec<Param>,
}

/// A form or multipart parameter.
#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Param {
    /// Its name.
    pub name: String,
    /// Its value (a file's bytes are never in a HAR Chromium writes).
    #[serde(default)]
    pub value: Option<String>,
    /// The uploaded file's name.
    #[serde(default)]
    pub file_name: Option<String>,
    /// The file's type.
    #[serde(default)]
    pub content_type: Option<String>,
}

/// `response`.
#[derive(Debug, Deserialize)]
pub struct Response {
    /// Its status; 0 when the request got none (blocked, aborted).
    pub status: i64,
    /// Its headers.
    #[serde(default)]
    pub headers: Vec<NameValue>,
    /// Its body.
    #[serde(default)]
    pub content: Content,
}

/// `response.content`.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    /// Its type.
    #[serde(default)]
    pub mime_type: String,
    /// The body, when the writer kept it.
    #[serde(default)]
    pub text: Option<String>,
    /// `base64` when `text` is encoded.
    #[serde(default)]
    pub encoding: Option<String>,
}

impl Content {
    /// The body as text: decoded when base64, `None` when absent or not
    /// UTF-8.
    pub fn body(&self) -> Option<String> {
        let text = self.text.as_ref()?;
        match self.encoding.as_deref() {
            Some("base64") => {
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .ok()?;
                String::from_utf8(bytes).ok()
            }
            _ => Some(text.clone()),
        }
    }
}

/// The value of the first header called `name` (any case).
pub fn header<'a>(headers: &'a [NameValue], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}
