//! `${...}` templates in paths, headers and bodies.
//!
//! A placeholder is one of:
//! - `${env:NAME}` — an environment variable, read once when the file is loaded
//!   (a missing variable is a load error, not an empty string);
//! - `${feeder.column}` — a column of the row the user drew from a CSV feeder;
//! - `${name}` — a value the user captured from an earlier response;
//! - `${uuid}` — a fresh random UUID at each use.
//!
//! `$${` writes a literal `${`.

use serde::de::{Deserializer, Error as _};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Text copied as it is (environment values are resolved into this).
    Literal(String),
    /// A column of the current row of a feeder.
    Feeder {
        /// Feeder name.
        feeder: String,
        /// Column name.
        column: String,
    },
    /// A captured per-user variable.
    Var(String),
    /// A new random UUID.
    Uuid,
}

/// A parsed template.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Template {
    segments: Vec<Segment>,
    /// True when an `${env:..}` value is inside: such text may be a secret and
    /// is never shown.
    has_env: bool,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.has_env {
            // Environment values are often credentials: never print them.
            return f.write_str("Template(<from environment>)");
        }
        f.debug_tuple("Template").field(&self.segments).finish()
    }
}

/// Where a template finds per-user values when rendered.
pub trait Values {
    /// The column of the user's current row of `feeder`.
    fn feeder(&self, feeder: &str, column: &str) -> Option<&str>;
    /// A captured variable.
    fn var(&self, name: &str) -> Option<&str>;
}

/// A value the template needs and the user does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template needs `${{{0}}}`, which this user has not got (not captured yet?)")]
pub struct MissingValue(pub String);

impl Template {
    /// Parses `text`, resolving `${env:..}` with `env`.
    pub fn parse_with(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut has_env = false;
        let mut rest = text;
        while let Some(pos) = rest.find('$') {
            literal.push_str(&rest[..pos]);
            let after = &rest[pos..];
            if let Some(escaped) = after.strip_prefix("$${") {
                literal.push_str("${");
                rest = escaped;
            } else if let Some(inner_start) = after.strip_prefix("${") {
                let end = inner_start
                    .find('}')
                    .ok_or_else(|| format!("unclosed `${{` in template {text:?}: expected `}}`"))?;
                let inner = inner_start[..end].trim();
                rest = &inner_start[end + 1..];
                let segment = parse_placeholder(inner, &env)?;
                match segment {
                    Segment::Literal(value) => {
                        has_env = true;
                        literal.push_str(&value);
                    }
                    other => {
                        if !literal.is_empty() {
                            segments.push(Segment::Literal(std::mem::take(&mut literal)));
                        }
                        segments.push(other);
                    }
                }
            } else {
                literal.push('$');
                rest = &after[1..];
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(Template { segments, has_env })
    }

    /// Text sent as it is, placeholders or not (a content type).
    pub fn literal(text: &str) -> Self {
        Template {
            segments: if text.is_empty() {
                Vec::new()
            } else {
                vec![Segment::Literal(text.to_owned())]
            },
            has_env: false,
        }
    }

    /// Parses with the process environment.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::parse_with(text, |name| std::env::var(name).ok())
    }

    /// The placeholders that need per-user values.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// True if the text came partly from the environment (and may be secret).
    pub fn is_from_env(&self) -> bool {
        self.has_env
    }

    /// Renders with a user's values.
    pub fn render(&self, values: &dyn Values) -> Result<String, MissingValue> {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Feeder { feeder, column } => out.push_str(
                    values
                        .feeder(feeder, column)
                        .ok_or_else(|| MissingValue(format!("{feeder}.{column}")))?,
                ),
                Segment::Var(name) => {
                    out.push_str(values.var(name).ok_or_else(|| MissingValue(name.clone()))?)
                }
                Segment::Uuid => out.push_str(&uuid::Uuid::new_v4().to_string()),
            }
        }
        Ok(out)
    }

    /// Renders a template that has no per-user placeholders (auth settings).
    pub fn render_static(&self) -> Result<String, MissingValue> {
        self.render(&NoValues)
    }
}

fn parse_placeholder(
    inner: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Segment, String> {
    let valid_name = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if let Some(name) = inner.strip_prefix("env:") {
        return env(name).map(Segment::Literal).ok_or_else(|| {
            format!("environment variable `{name}` is not set (used as `${{env:{name}}}`)")
        });
    }
    if inner == "uuid" {
        return Ok(Segment::Uuid);
    }
    match inner.split_once('.') {
        Some((feeder, column)) if valid_name(feeder) && valid_name(column) => Ok(Segment::Feeder {
            feeder: feeder.to_owned(),
            column: column.to_owned(),
        }),
        None if valid_name(inner) => Ok(Segment::Var(inner.to_owned())),
        _ => Err(format!(
            "bad placeholder `${{{inner}}}`: expected `${{env:NAME}}`, `${{feeder.column}}`, `${{variable}}` or `${{uuid}}`"
        )),
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Template::parse(&text).map_err(D::Error::custom)
    }
}

struct NoValues;
impl Values for NoValues {
    fn feeder(&self, _: &str, _: &str) -> Option<&str> {
        None
    }
    fn var(&self, _: &str) -> Option<&str> {
        None
    }
}

/// Plain maps as template values (tests, and the engine's user state).
pub struct MapValues<'a> {
    /// Current feeder rows: feeder → column → value.
    pub rows: &'a HashMap<String, HashMap<String, String>>,
    /// Captured variables.
    pub vars: &'a HashMap<String, String>,
}

impl Values for MapValues<'_> {
    fn feeder(&self, feeder: &str, column: &str) -> Option<&str> {
        self.rows.get(feeder)?.get(column).map(String::as_str)
    }
    fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "PASS").then(|| "s3cret".to_owned())
    }

    #[test]
    fn renders_feeders_vars_and_env() {
        let t = Template::parse_with("/p/${patient.uuid}?v=${ver}&k=${env:PASS}", env).unwrap();
        let rows = HashMap::from([(
            "patient".to_owned(),
            HashMap::from([("uuid".to_owned(), "abc".to_owned())]),
        )]);
        let vars = HashMap::from([("ver".to_owned(), "full".to_owned())]);
        let out = t
            .render(&MapValues {
                rows: &rows,
                vars: &vars,
            })
            .unwrap();
        assert_eq!(out, "/p/abc?v=full&k=s3cret");
        assert!(t.is_from_env());
        assert!(!format!("{t:?}").contains("s3cret"));
    }

    #[test]
    fn missing_env_and_bad_placeholders_are_errors() {
        assert!(Template::parse_with("${env:NOPE}", env)
            .unwrap_err()
            .contains("NOPE"));
        assert!(Template::parse_with("${a b}", env)
            .unwrap_err()
            .contains("bad placeholder"));
        assert!(Template::parse_with("x ${open", env)
            .unwrap_err()
            .contains("unclosed"));
    }

    #[test]
    fn escapes_and_lone_dollars_are_literal() {
        let t = Template::parse_with("$${x} costs $5", env).unwrap();
        assert_eq!(t.render_static().unwrap(), "${x} costs $5");
    }

    #[test]
    fn missing_variable_names_itself() {
        let t = Template::parse_with("${later}", env).unwrap();
        assert_eq!(t.render_static().unwrap_err(), MissingValue("later".into()));
    }
}
