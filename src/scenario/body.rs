//! Request bodies: JSON with templated strings, forms, multipart, raw files.

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
    /// Bytes from a file, with their content type.
    Raw {
        /// The file's bytes, loaded once.
        bytes: Arc<[u8]>,
        /// Content type sent.
        content_type: String,
    },
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
    /// Every template inside, for validation.
    pub fn templates(&self) -> Vec<&Template> {
        match self {
            Body::None | Body::Raw { .. } => vec![],
            Body::Json(json) => json.templates(),
            Body::Form(fields) => fields.iter().map(|(_, t)| t).collect(),
            Body::Multipart(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    Part::Text { value, .. } => Some(value),
                    Part::File { .. } => None,
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
