//! Request bodies: JSON with templated strings, forms, multipart, raw files.

use super::model::ContentKind;
use super::template::{MissingValue, Template, Values};
use std::sync::Arc;

/// A request body ready to render per user.
#[derive(Debug, Clone)]
pub enum Body {
    /// No body.
    None,
    /// JSON; string leaves are templates.
    Json(JsonTemplate),
    /// `application/x-www-form-urlencoded`.
    Form(Vec<(String, Template)>),
    /// `multipart/form-data`.
    Multipart(Vec<Part>),
    /// Content generated for each request.
    Generated {
        /// What to generate.
        content: Generated,
    },
    /// Text from a file with placeholders, filled per request.
    Text {
        /// The file's text.
        template: Template,
        /// Content type sent.
        content_type: String,
    },
    /// Bytes from a file, with their content type.
    Raw {
        /// The file's bytes, loaded once.
        bytes: Arc<[u8]>,
        /// Content type sent.
        content_type: String,
    },
}

/// Content made fresh for each request, so a stale copy cannot pass for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// What it looks like.
    pub kind: ContentKind,
    /// How many bytes.
    pub size: u64,
    /// The request's `content_type`, sent instead of the kind's own.
    pub content_type: Option<String>,
}

impl Generated {
    /// Its content type: the request's `content_type`, else the kind's.
    pub fn content_type(&self) -> &str {
        match (&self.content_type, self.kind) {
            (Some(given), _) => given,
            (None, ContentKind::Bin) => "application/octet-stream",
            (None, ContentKind::Pdf) => "application/pdf",
            (None, ContentKind::Text) => "text/plain",
        }
    }

    /// A file name for multipart.
    pub fn file_name(&self) -> String {
        let ext = match self.kind {
            ContentKind::Bin => "bin",
            ContentKind::Pdf => "pdf",
            ContentKind::Text => "txt",
        };
        format!("surge-{}.{ext}", uuid::Uuid::new_v4().simple())
    }

    /// New random content of the right kind and size.
    pub fn make(&self) -> Vec<u8> {
        use rand::Rng;
        let size = self.size as usize;
        let mut rng = rand::rng();
        match self.kind {
            ContentKind::Bin => (0..size).map(|_| rng.random::<u8>()).collect(),
            ContentKind::Text => (0..size)
                .map(|_| rng.sample(rand::distr::Alphanumeric))
                .collect(),
            ContentKind::Pdf => {
                let (head, tail) = (b"%PDF-1.4\n%".as_slice(), b"\n%%EOF\n".as_slice());
                let middle = size.saturating_sub(head.len() + tail.len());
                let mut out = head.to_vec();
                out.extend((0..middle).map(|_| rng.sample(rand::distr::Alphanumeric)));
                out.extend_from_slice(tail);
                out
            }
        }
    }
}

/// A multipart part.
#[derive(Debug, Clone)]
pub enum Part {
    /// A text field.
    Text {
        /// Part name.
        name: String,
        /// Value.
        value: Template,
    },
    /// A file, loaded once from the fixtures folder.
    File {
        /// Part name.
        name: String,
        /// File name sent.
        file_name: String,
        /// Bytes.
        bytes: Arc<[u8]>,
        /// Content type sent.
        content_type: String,
    },
    /// Content generated for each upload.
    Generated {
        /// Part name.
        name: String,
        /// What to generate.
        content: Generated,
    },
}

/// A JSON value whose strings may hold placeholders.
#[derive(Debug, Clone)]
pub enum JsonTemplate {
    /// A string template.
    Str(Template),
    /// A number, boolean or null.
    Plain(serde_json::Value),
    /// An array.
    Array(Vec<JsonTemplate>),
    /// An object, in written order.
    Object(Vec<(String, JsonTemplate)>),
}

impl JsonTemplate {
    /// Builds from parsed JSON, parsing every string as a template.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, String> {
        Ok(match value {
            serde_json::Value::String(s) => JsonTemplate::Str(Template::parse(s)?),
            serde_json::Value::Array(items) => JsonTemplate::Array(
                items
                    .iter()
                    .map(Self::from_json)
                    .collect::<Result<_, _>>()?,
            ),
            serde_json::Value::Object(map) => JsonTemplate::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), Self::from_json(v)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => JsonTemplate::Plain(other.clone()),
        })
    }

    /// Every template inside.
    pub fn templates(&self) -> Vec<&Template> {
        match self {
            JsonTemplate::Str(t) => vec![t],
            JsonTemplate::Plain(_) => vec![],
            JsonTemplate::Array(items) => items.iter().flat_map(Self::templates).collect(),
            JsonTemplate::Object(fields) => {
                fields.iter().flat_map(|(_, v)| v.templates()).collect()
            }
        }
    }

    /// Renders with a user's values.
    pub fn render(&self, values: &dyn Values) -> Result<serde_json::Value, MissingValue> {
        Ok(match self {
            JsonTemplate::Str(t) => serde_json::Value::String(t.render(values)?),
            JsonTemplate::Plain(v) => v.clone(),
            JsonTemplate::Array(items) => serde_json::Value::Array(
                items
                    .iter()
                    .map(|i| i.render(values))
                    .collect::<Result<_, _>>()?,
            ),
            JsonTemplate::Object(fields) => serde_json::Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), v.render(values)?)))
                    .collect::<Result<_, MissingValue>>()?,
            ),
        })
    }
}

impl Body {
    /// Whether the body holds generated content (what consistency checks compare).
    pub fn generates(&self) -> bool {
        match self {
            // A filled-in template is unique per request when it holds ${uuid}.
            Body::Generated { .. } | Body::Text { .. } => true,
            Body::Multipart(parts) => parts.iter().any(|p| matches!(p, Part::Generated { .. })),
            _ => false,
        }
    }

    /// Every template inside, for validation.
    pub fn templates(&self) -> Vec<&Template> {
        match self {
            Body::None | Body::Raw { .. } | Body::Generated { .. } => vec![],
            Body::Json(json) => json.templates(),
            Body::Text { template, .. } => vec![template],
            Body::Form(fields) => fields.iter().map(|(_, t)| t).collect(),
            Body::Multipart(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    Part::Text { value, .. } => Some(value),
                    Part::File { .. } | Part::Generated { .. } => None,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::template::MapValues;
    use std::collections::HashMap;

    #[test]
    fn json_strings_render_and_other_values_stay() {
        let json =
            serde_json::json!({"subject": {"reference": "Patient/${pid}"}, "count": 3, "ok": true});
        let t = JsonTemplate::from_json(&json).unwrap();
        let vars = HashMap::from([("pid".to_owned(), "42".to_owned())]);
        let rows = HashMap::new();
        let out = t
            .render(&MapValues {
                rows: &rows,
                vars: &vars,
            })
            .unwrap();
        assert_eq!(
            out,
            serde_json::json!({"subject": {"reference": "Patient/42"}, "count": 3, "ok": true})
        );
        assert_eq!(t.templates().len(), 1);
    }
}

#[cfg(test)]
mod generated_tests {
    use super::*;

    #[test]
    fn generated_content_has_its_size_and_kind_and_is_new_each_time() {
        for kind in [ContentKind::Bin, ContentKind::Pdf, ContentKind::Text] {
            let g = Generated {
                kind,
                size: 4096,
                content_type: None,
            };
            let (a, b) = (g.make(), g.make());
            assert_eq!(a.len(), 4096);
            assert_ne!(a, b, "{kind:?} content must differ between uploads");
        }
        let pdf = Generated {
            kind: ContentKind::Pdf,
            size: 64,
            content_type: None,
        }
        .make();
        assert!(pdf.starts_with(b"%PDF-1.4") && pdf.ends_with(b"%%EOF\n"));
    }
}
