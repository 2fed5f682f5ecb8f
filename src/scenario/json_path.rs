//! The path language of expectations, captures and consistency ids: dotted
//! segments into a JSON answer. One parser serves `surge check` and the
//! engine, so a path the engine could never match is an error before the run,
//! not a step silently never sent.
//!
//! A segment is an object key or array index (`results`, `0`), `*` (every
//! element of an array) or `[key=value]` (the elements of an array whose
//! `key` equals `value`, as in HAPI's `link.[relation=next].url`). Dots inside
//! brackets belong to the value (`[system=http://loinc.org]`).

use serde_json::Value;

/// The forms a segment may take, for error messages.
pub const FORMS: &str =
    "`name` (an object key), `0` (an array index), `*` (every element) or `[key=value]` (the elements whose key equals value), joined by dots";

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// An object key, or an array index when it is a number.
    Name(String),
    /// Every element of an array.
    All,
    /// The elements of an array whose `key` equals `value`.
    Filter {
        /// Field compared.
        key: String,
        /// Value wanted (a string, or JSON such as `true` or `3`).
        value: String,
    },
}

/// Splits a path into segments, or says what is wrong with it.
pub fn parse(path: &str) -> Result<Vec<Segment>, String> {
    if path.trim().is_empty() {
        return Err(format!("empty JSON path: expected {FORMS}"));
    }
    let mut segments = Vec::new();
    let mut rest = path;
    loop {
        let (segment, tail) = if rest.starts_with('[') {
            let close = rest.find(']').ok_or_else(|| {
                format!("JSON path `{path}`: `[` is never closed: expected `[key=value]`")
            })?;
            (&rest[..=close], &rest[close + 1..])
        } else {
            match rest.find('.') {
                Some(dot) => (&rest[..dot], &rest[dot..]),
                None => (rest, ""),
            }
        };
        segments.push(segment_of(path, segment)?);
        if tail.is_empty() {
            return Ok(segments);
        }
        rest = tail.strip_prefix('.').ok_or_else(|| {
            format!("JSON path `{path}`: `{segment}` must be followed by `.`, not `{tail}`: expected {FORMS}")
        })?;
        if rest.is_empty() {
            return Err(format!(
                "JSON path `{path}` ends with `.`: expected {FORMS}"
            ));
        }
    }
}

fn segment_of(path: &str, segment: &str) -> Result<Segment, String> {
    if segment.is_empty() {
        return Err(format!(
            "JSON path `{path}` has an empty segment (`..` or a leading `.`): expected {FORMS}"
        ));
    }
    if segment == "*" {
        return Ok(Segment::All);
    }
    if let Some(inner) = segment.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        return match inner.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => Ok(Segment::Filter {
                key: key.trim().to_owned(),
                value: value.trim().to_owned(),
            }),
            _ => Err(format!(
                "JSON path `{path}`: `{segment}` is not `[key=value]` (for an array index write `.0`)"
            )),
        };
    }
    if segment.contains('[') || segment.contains(']') {
        let suggestion = path.replace('[', ".").replace(']', "");
        return Err(format!(
            "JSON path `{path}`: segment `{segment}` mixes a name and brackets: expected {FORMS} — for an array index write `{suggestion}`"
        ));
    }
    Ok(Segment::Name(segment.to_owned()))
}

/// Every value the segments reach in `value`.
pub fn find_all<'a>(value: &'a Value, segments: &[Segment]) -> Vec<&'a Value> {
    let mut current = vec![value];
    for segment in segments {
        current = current
            .into_iter()
            .flat_map(|v| -> Vec<&Value> {
                match (v, segment) {
                    (Value::Array(items), Segment::All) => items.iter().collect(),
                    (Value::Array(items), Segment::Filter { key, value }) => items
                        .iter()
                        .filter(|item| item.get(key).is_some_and(|v| equals(v, value)))
                        .collect(),
                    (Value::Object(map), Segment::Name(name)) => {
                        map.get(name).into_iter().collect()
                    }
                    (Value::Array(items), Segment::Name(name)) => name
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| items.get(i))
                        .into_iter()
                        .collect(),
                    _ => Vec::new(),
                }
            })
            .collect();
    }
    current
}

fn equals(found: &Value, want: &str) -> bool {
    match found {
        Value::String(s) => s == want,
        other => serde_json::from_str::<Value>(want).ok().as_ref() == Some(other),
    }
}

/// Every value a path reaches; nothing for a path that does not parse
/// (`surge check` refuses those before a run).
pub fn json_path_all<'a>(value: &'a Value, path: &str) -> Vec<&'a Value> {
    parse(path).map(|s| find_all(value, &s)).unwrap_or_default()
}

/// The first value a path reaches.
pub fn json_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    json_path_all(value, path).into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_every_form() {
        let doc = json!({
            "results": [{"uuid": "a"}, {"uuid": "b"}],
            "link": [{"relation": "self", "url": "s"}, {"relation": "next", "url": "n"}],
            "coding": [{"system": "http://loinc.org", "code": "8867-4"}],
            "entry": [{"ok": true}, {"ok": false}]
        });
        let values =
            |p: &str| -> Vec<Value> { json_path_all(&doc, p).into_iter().cloned().collect() };
        assert_eq!(values("results.0.uuid"), [json!("a")]);
        assert_eq!(values("results.*.uuid"), [json!("a"), json!("b")]);
        assert_eq!(values("link.[relation=next].url"), [json!("n")]);
        assert_eq!(
            values("coding.[system=http://loinc.org].code"),
            [json!("8867-4")]
        );
        assert_eq!(values("entry.[ok=false]"), [json!({"ok": false})]);
        assert!(values("results.7.uuid").is_empty());
    }

    #[test]
    fn refuses_what_could_never_match_and_says_the_forms() {
        for (path, says) in [
            (
                "issue[0].severity",
                "for an array index write `issue.0.severity`",
            ),
            ("a..b", "empty segment"),
            (".a", "empty segment"),
            ("a.", "ends with `.`"),
            ("link.[relation=next", "`[` is never closed"),
            ("link.[relation]", "is not `[key=value]`"),
            ("link.[=x]", "is not `[key=value]`"),
            ("link.[a=b]x", "must be followed by `.`"),
            ("", "empty JSON path"),
        ] {
            let err = parse(path).expect_err(path);
            assert!(err.contains(says), "{path}: {err}");
        }
        assert!(parse("issue[0].severity")
            .unwrap_err()
            .contains("`*` (every element)"));
    }
}
