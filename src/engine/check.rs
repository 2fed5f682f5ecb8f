//! Judging one response: status, expectations, error class, replica, captures.
//! Pure functions over what came back, so they are tested without a network.

use crate::bundle::ErrorClass;
use crate::scenario::{CaptureFrom, Expect, ReplicaSource};
use reqwest::header::HeaderMap;

pub use crate::scenario::json_path::{json_path, json_path_all};

/// The class of an unexpected status.
pub fn status_class(status: u16) -> ErrorClass {
    match status {
        400..=499 => ErrorClass::Http4xx,
        500..=599 => ErrorClass::Http5xx,
        _ => ErrorClass::Other,
    }
}

/// Checks a response against the request's expectations. `Err` says which
/// class of failure and why.
pub fn judge(expect: &Expect, status: u16, body: &[u8]) -> Result<(), (ErrorClass, String)> {
    let status_ok = if expect.status.is_empty() {
        (200..300).contains(&status)
    } else {
        expect.status.contains(&status)
    };
    if !status_ok {
        return Err((status_class(status), format!("status {status}")));
    }
    if let Some(text) = &expect.body_contains {
        if !String::from_utf8_lossy(body).contains(text.as_str()) {
            return Err((ErrorClass::Expectation, format!("body lacks {text:?}")));
        }
    }
    if expect.json_present.is_empty()
        && expect.json_absent.is_empty()
        && expect.json_equals.is_empty()
    {
        return Ok(());
    }
    let json: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| (ErrorClass::Expectation, "body is not JSON".to_owned()))?;
    for path in &expect.json_present {
        if json_path(&json, path).is_none() {
            return Err((ErrorClass::Expectation, format!("JSON lacks `{path}`")));
        }
    }
    for path in &expect.json_absent {
        if let Some(found) = json_path(&json, path) {
            let found = found.to_string();
            let shown: String = found.chars().take(120).collect();
            return Err((
                ErrorClass::Expectation,
                format!("JSON has `{path}`, which must be absent: {shown}"),
            ));
        }
    }
    for (path, want) in &expect.json_equals {
        let want = serde_json::to_value(want).unwrap_or(serde_json::Value::Null);
        if json_path(&json, path) != Some(&want) {
            return Err((
                ErrorClass::Expectation,
                format!("JSON `{path}` is not {want}"),
            ));
        }
    }
    Ok(())
}

/// The replica named by the response, if it names one.
pub fn replica_of(source: &ReplicaSource, headers: &HeaderMap) -> Option<String> {
    match source {
        ReplicaSource::Header(name) => headers.get(name.as_str())?.to_str().ok().map(str::to_owned),
        ReplicaSource::Cookie(name) => set_cookie_value(headers, name),
        ReplicaSource::Unknown => None,
    }
}

/// The value a response's `Set-Cookie` gives cookie `name`.
pub fn set_cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .find_map(|v| {
            let first = v.to_str().ok()?.split(';').next()?;
            let (k, value) = first.split_once('=')?;
            (k.trim() == name).then(|| value.trim().to_owned())
        })
}

/// Reads the captures of a good response: per variable, every value found
/// (a path with `*` or `[key=value]` may find several, or none).
pub fn capture_all(
    captures: &[(String, CaptureFrom)],
    headers: &HeaderMap,
    body: &[u8],
) -> Vec<(String, Vec<String>)> {
    let mut json: Option<Option<serde_json::Value>> = None;
    captures
        .iter()
        .map(|(var, from)| {
            let values = match from {
                CaptureFrom::Header(h) => headers
                    .get(h.as_str())
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
                    .into_iter()
                    .collect(),
                CaptureFrom::Json(path) => {
                    let doc = json.get_or_insert_with(|| serde_json::from_slice(body).ok());
                    doc.as_ref()
                        .map(|d| json_path_all(d, path))
                        .unwrap_or_default()
                        .into_iter()
                        .map(|v| match v {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect()
                }
            };
            (var.clone(), values)
        })
        .collect()
}

/// Reads the captures of a good response, one value each. `Err` names the first one missing.
pub fn capture(
    captures: &[(String, CaptureFrom)],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, String> {
    capture_all(captures, headers, body)
        .into_iter()
        .map(|(var, values)| match values.into_iter().next() {
            Some(v) => Ok((var, v)),
            None => Err(format!("capture `{var}` found nothing")),
        })
        .collect()
}

/// The top-level field names of a JSON answer, for saying why a path found
/// nothing without showing any value (answers may hold patient data).
pub fn top_level_fields(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) if map.is_empty() => {
            "the answer is an empty JSON object".to_owned()
        }
        Ok(serde_json::Value::Object(map)) => {
            let keys: Vec<&str> = map.keys().map(String::as_str).take(20).collect();
            let more = if map.len() > 20 { ", …" } else { "" };
            format!("its top-level fields: {}{more}", keys.join(", "))
        }
        Ok(serde_json::Value::Array(items)) => {
            format!("the answer is a JSON array of {}", items.len())
        }
        Ok(_) => "the answer is a JSON scalar".to_owned(),
        Err(_) if body.is_empty() => "the answer has an empty body".to_owned(),
        Err(_) => "the answer is not JSON".to_owned(),
    }
}

/// Sorts a transport error into a class.
pub fn transport_class(error: &reqwest::Error) -> ErrorClass {
    if error.is_timeout() {
        return ErrorClass::Timeout;
    }
    if error.is_connect() {
        return ErrorClass::Connect;
    }
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => {
                    return ErrorClass::Reset
                }
                TimedOut => return ErrorClass::Timeout,
                ConnectionRefused => return ErrorClass::Connect,
                _ => {}
            }
        }
        let text = e.to_string();
        if text.contains("connection closed")
            || text.contains("IncompleteMessage")
            || text.contains("reset")
        {
            return ErrorClass::Reset;
        }
        source = e.source();
    }
    ErrorClass::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_fields_name_keys_never_values() {
        let said = top_level_fields(br#"{"resourceType":"Binary","id":"secret-42","meta":{}}"#);
        assert!(said.starts_with("its top-level fields: "), "{said}");
        for key in ["resourceType", "id", "meta"] {
            assert!(said.contains(key), "{said}");
        }
        assert!(!said.contains("secret"));
        assert_eq!(top_level_fields(b"<html>"), "the answer is not JSON");
        assert_eq!(top_level_fields(b""), "the answer has an empty body");
    }
    use std::collections::BTreeMap;

    #[test]
    fn json_paths_walk_objects_and_arrays() {
        let v = serde_json::json!({"results": [{"uuid": "u1"}, {"uuid": "u2"}]});
        assert_eq!(
            json_path(&v, "results.1.uuid"),
            Some(&serde_json::json!("u2"))
        );
        assert_eq!(json_path(&v, "results.9.uuid"), None);
        assert_eq!(json_path(&v, "nope"), None);
    }

    #[test]
    fn json_paths_fan_out_and_select() {
        let openmrs = serde_json::json!({"results": [{"uuid": "u1"}, {"uuid": "u2"}],
            "links": [{"rel": "prev", "uri": "p"}, {"rel": "next", "uri": "n"}]});
        let uuids: Vec<_> = json_path_all(&openmrs, "results.*.uuid");
        assert_eq!(uuids, [&serde_json::json!("u1"), &serde_json::json!("u2")]);
        assert_eq!(
            json_path(&openmrs, "links.[rel=next].uri"),
            Some(&serde_json::json!("n"))
        );
        assert_eq!(json_path(&openmrs, "links.[rel=last].uri"), None);
        assert!(json_path_all(&serde_json::json!({"results": []}), "results.*.uuid").is_empty());
        let hapi = serde_json::json!({"link": [{"relation": "self", "url": "s"}, {"relation": "next", "url": "x"}]});
        assert_eq!(
            json_path(&hapi, "link.[relation=next].url"),
            Some(&serde_json::json!("x"))
        );
        assert_eq!(
            json_path(&serde_json::json!({"a": [{"n": 2}]}), "a.[n=2]"),
            Some(&serde_json::json!({"n": 2}))
        );
    }

    #[test]
    fn judges_status_then_body() {
        let mut expect = Expect::default();
        assert!(judge(&expect, 204, b"").is_ok());
        assert_eq!(judge(&expect, 404, b"").unwrap_err().0, ErrorClass::Http4xx);
        assert_eq!(judge(&expect, 503, b"").unwrap_err().0, ErrorClass::Http5xx);
        expect.status = vec![412];
        assert!(
            judge(&expect, 412, b"{}").is_ok(),
            "an expected 412 is a good answer"
        );
        assert_eq!(judge(&expect, 200, b"{}").unwrap_err().0, ErrorClass::Other);
        expect.json_equals =
            BTreeMap::from([("authenticated".to_owned(), toml::Value::Boolean(true))]);
        assert!(judge(&expect, 412, br#"{"authenticated": true}"#).is_ok());
        assert_eq!(
            judge(&expect, 412, br#"{"authenticated": false}"#)
                .unwrap_err()
                .0,
            ErrorClass::Expectation
        );
        assert_eq!(
            judge(&expect, 412, b"<html>").unwrap_err().0,
            ErrorClass::Expectation
        );
    }

    #[test]
    fn an_absent_path_fails_when_found_and_passes_when_not() {
        // HAPI answers $validate with 200 either way; the errors are in the
        // OperationOutcome.
        let expect = Expect {
            status: vec![200],
            json_absent: vec!["issue.[severity=error]".into()],
            ..Expect::default()
        };
        let warning = br#"{"resourceType":"OperationOutcome","issue":[{"severity":"warning"}]}"#;
        let error = br#"{"resourceType":"OperationOutcome","issue":[{"severity":"warning"},{"severity":"error","diagnostics":"Unrecognized property"}]}"#;
        assert!(judge(&expect, 200, warning).is_ok());
        let (class, why) = judge(&expect, 200, error).unwrap_err();
        assert_eq!(class, ErrorClass::Expectation);
        assert!(
            why.contains("issue.[severity=error]") && why.contains("Unrecognized"),
            "{why}"
        );
        assert_eq!(
            judge(&expect, 200, b"not json").unwrap_err().0,
            ErrorClass::Expectation,
            "a body that is not JSON cannot show the path is absent"
        );
    }

    #[test]
    fn replica_from_header_or_cookie() {
        let mut h = HeaderMap::new();
        h.insert("x-served-by", "r2".parse().unwrap());
        h.append(
            "set-cookie",
            "JSESSIONID=abc; Path=/; HttpOnly".parse().unwrap(),
        );
        h.append("set-cookie", "openmrs_session=r3; Path=/".parse().unwrap());
        assert_eq!(
            replica_of(&ReplicaSource::Header("x-served-by".into()), &h).as_deref(),
            Some("r2")
        );
        assert_eq!(
            replica_of(&ReplicaSource::Cookie("openmrs_session".into()), &h).as_deref(),
            Some("r3")
        );
        assert_eq!(replica_of(&ReplicaSource::Unknown, &h), None);
    }

    /// The whole way a sticky cookie names a replica: the `Set-Cookie` of
    /// an answer, read as `[target] replica_cookie` says, attributed by the
    /// run's book. A value stated for a listed replica is that replica; one
    /// stated for none is unmapped (and a header is not read at all).
    #[test]
    fn a_sticky_cookie_names_a_listed_replica_or_none() {
        use crate::measure::replicas::{ListedReplica, ReplicaBook};
        let book = ReplicaBook::new(&[ListedReplica {
            url: "http://127.0.0.1:9002".into(),
            name: Some("r2".into()),
            also: vec![],
        }]);
        let cookie = ReplicaSource::Cookie("openmrs_session".into());
        let answer = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-served-by", "127.0.0.1:9002".parse().unwrap());
            h.append(
                "set-cookie",
                format!("openmrs_session={value}; Path=/").parse().unwrap(),
            );
            replica_of(&cookie, &h).map(|v| book.attribute(&v))
        };
        assert_eq!(answer("r2").as_deref(), Some("r2"));
        assert_eq!(
            answer("r3").as_deref(),
            Some(crate::measure::UNMAPPED_REPLICA)
        );
        assert_eq!(book.attribution().unmapped.get("r3"), Some(&1));
        assert_eq!(book.attribution().replicas.len(), 1);
    }

    #[test]
    fn captures_from_json_and_headers() {
        let mut h = HeaderMap::new();
        h.insert("location", "/fhir/Binary/7".parse().unwrap());
        let caps = vec![
            ("pid".to_owned(), CaptureFrom::Json("results.0.uuid".into())),
            ("loc".to_owned(), CaptureFrom::Header("location".into())),
            ("n".to_owned(), CaptureFrom::Json("total".into())),
        ];
        let got = capture(&caps, &h, br#"{"results":[{"uuid":"p1"}],"total":3}"#).unwrap();
        assert_eq!(
            got,
            [
                ("pid".into(), "p1".into()),
                ("loc".into(), "/fhir/Binary/7".into()),
                ("n".into(), "3".into())
            ]
        );
        assert!(capture(&caps, &h, b"{}").unwrap_err().contains("pid"));
    }
}
