//! Compiling one `[requests.NAME]` table: its method, path, headers and
//! body, its expectations, captures and JSON paths, its read-back rule, and
//! the placeholders only a capture or a feeder can fill.

use super::*;

/// Every JSON path a request uses, parsed as the engine will parse it;
/// `Err` has the first path that does not parse and why.
pub(super) fn check_json_paths(spec: &RequestSpec) -> Result<(), (String, String)> {
    let captures = spec
        .captures
        .iter()
        .map(|(_, from)| from)
        .chain(spec.consistency.as_ref().map(|c| &c.id))
        .filter_map(|from| match from {
            CaptureFrom::Json(path) => Some(path),
            CaptureFrom::Header(_) => None,
        });
    let paths = spec
        .expect
        .json_present
        .iter()
        .chain(&spec.expect.json_absent)
        .chain(spec.expect.json_equals.keys())
        .chain(captures);
    for path in paths {
        json_path::parse(path).map_err(|why| (path.clone(), why))?;
    }
    Ok(())
}

/// Which of the body kinds a request gives: json, json_file, form,
/// multipart, body_file, body_template, generate.
fn bodies(def: &RequestDef) -> [bool; 7] {
    [
        def.json.is_some(),
        def.json_file.is_some(),
        def.form.is_some(),
        def.multipart.is_some(),
        def.body_file.is_some(),
        def.body_template.is_some(),
        def.generate.is_some(),
    ]
}

/// Compiles a request; `header` is the Content-Type header its
/// `content_type` adds, from [`content_type_header`].
pub(super) fn compile_request(
    name: &str,
    def: &RequestDef,
    fixtures: &Path,
    header: Option<(String, Template)>,
) -> Result<RequestSpec, String> {
    if bodies(def).iter().filter(|b| **b).count() > 1 {
        return Err(format!(
            "request `{name}` has more than one body: expected at most one of json, json_file, form, multipart, body_file, body_template, generate"
        ));
    }
    let body = compile_body(name, def, fixtures)?;
    // Bytes read back are compared with what was sent, which must be
    // unique to the request; a search or a status needs no such content.
    let compares_bytes = def
        .consistency
        .as_ref()
        .is_some_and(|c| matches!(c.compare.as_deref(), None | Some("bytes")));
    let consistency = match &def.consistency {
        None => None,
        Some(_) if compares_bytes && !body.generates() => {
            return Err(format!(
                "request `{name}`: consistency checks compare generated content: add generate = {{ kind = \"pdf\", size = \"16KiB\" }} to the body or a multipart part, or send a body_template holding ${{uuid}}"
            ))
        }
        Some(c) => Some(ConsistencySpec {
            id: capture_source(name, "consistency.id", &c.id)?,
            read: c.read.get_ref().clone(),
            rule: read_rule(name, c, fixtures)?,
        }),
    };
    if let Some(bad) = def.expect.status.iter().find(|s| !(100..=599).contains(*s)) {
        return Err(format!(
            "request `{name}`: expect.status {bad} is not an HTTP status (100-599)"
        ));
    }
    let captures = def
        .capture
        .iter()
        .map(|(var, from)| {
            Ok((
                var.clone(),
                capture_source(name, &format!("capture `{var}`"), from)?,
            ))
        })
        .collect::<Result<_, String>>()?;
    Ok(RequestSpec {
        name: name.to_owned(),
        method: def.method,
        path: def.path.get_ref().clone(),
        headers: def
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain(header)
            .collect(),
        body,
        expect: Expect {
            status: def.expect.status.clone(),
            json_present: def.expect.json_present.clone(),
            json_absent: def.expect.json_absent.clone(),
            json_equals: def.expect.json_equals.clone(),
            body_contains: def.expect.body_contains.clone(),
        },
        captures,
        consistency,
        ends_session: def.ends_session,
        rebase: def.rebase,
        optional: def.optional,
    })
}

/// The request's body, of whichever kind it has (at most one: checked before).
fn compile_body(name: &str, def: &RequestDef, fixtures: &Path) -> Result<Body, String> {
    let given = def.content_type.as_ref().map(|c| c.get_ref().clone());
    Ok(if let Some(value) = &def.json {
        let json =
            serde_json::to_value(value).map_err(|e| format!("request `{name}`: json body: {e}"))?;
        Body::Json(JsonTemplate::from_json(&json).map_err(|e| format!("request `{name}`: {e}"))?)
    } else if let Some(file) = &def.json_file {
        let bytes = read_fixture(fixtures, file)?;
        let json: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("json_file {file}: not JSON: {e}"))?;
        Body::Json(JsonTemplate::from_json(&json).map_err(|e| format!("json_file {file}: {e}"))?)
    } else if let Some(form) = &def.form {
        Body::Form(form.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    } else if let Some(parts) = &def.multipart {
        Body::Multipart(
            parts
                .iter()
                .map(|part| multipart_part(name, part, fixtures))
                .collect::<Result<_, _>>()?,
        )
    } else if let Some(file) = &def.body_template {
        let bytes = read_fixture(fixtures, file)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("request `{name}`: body_template {file:?} is not UTF-8 text"))?;
        Body::Text {
            template: Template::parse(&text)
                .map_err(|e| format!("request `{name}`: body_template {file:?}: {e}"))?,
            content_type: given.unwrap_or_else(|| "text/plain".into()),
        }
    } else if let Some(file) = &def.body_file {
        Body::Raw {
            bytes: read_fixture(fixtures, file)?.into(),
            content_type: given.unwrap_or_else(|| "application/octet-stream".into()),
        }
    } else if let Some(g) = &def.generate {
        Body::Generated {
            content: Generated {
                kind: g.kind,
                size: g.size.0,
                content_type: given,
            },
        }
    } else {
        Body::None
    })
}

/// One part of a multipart body: text, a fixture file, or generated content.
fn multipart_part(name: &str, part: &model::PartDef, fixtures: &Path) -> Result<Part, String> {
    Ok(match (&part.value, &part.file) {
        (None, None) if part.generate.is_some() => {
            let g = part.generate.expect("checked just above");
            // A recorded upload's own type (an image generated as `bin`
            // is still sent as `image/png`).
            Part::Generated {
                name: part.name.clone(),
                content: Generated { kind: g.kind, size: g.size.0, content_type: part.content_type.clone() },
            }
        }
        (Some(value), None) if part.content_type.is_none() && part.generate.is_none() => Part::Text {
            name: part.name.clone(),
            value: value.clone(),
        },
        (None, Some(file)) if part.generate.is_none() => Part::File {
            name: part.name.clone(),
            file_name: Path::new(file).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
            bytes: read_fixture(fixtures, file)?.into(),
            content_type: part.content_type.clone().unwrap_or_else(|| "application/octet-stream".into()),
        },
        _ => {
            return Err(format!(
                "request `{name}`: multipart part `{}` needs one of value (text), file (with optional content_type) or generate",
                part.name
            ))
        }
    })
}

/// Checks `content_type` and a `Content-Type` header against the body, and
/// gives the header to add for a JSON or form body: reqwest sets those
/// bodies' type only when no header says one. (A body_file, body_template
/// or generated body carries its content type itself; a multipart body's
/// Content-Type names its part boundary.)
pub(super) fn content_type_header(
    name: &str,
    def: &RequestDef,
) -> Result<Option<(String, Template)>, String> {
    let header = content_type_key(def);
    let sets_its_own =
        def.body_file.is_some() || def.body_template.is_some() || def.generate.is_some();
    let has_body = bodies(def).contains(&true);
    match (def.content_type.as_ref().map(|c| c.get_ref()), header) {
        (Some(_), Some(h)) => Err(format!(
            "request `{name}`: give content_type or a `{h}` header, not both"
        )),
        (Some(_), None) if def.multipart.is_some() => Err(format!(
            "request `{name}`: content_type does not apply to a multipart body (its Content-Type carries the part boundary): give each part its own content_type"
        )),
        (Some(_), None) if !has_body => Err(format!(
            "request `{name}`: content_type says what the body is, and this request has no body (json, json_file, form, body_file, body_template or generate)"
        )),
        (Some(ct), None) if ct.trim().is_empty() || reqwest::header::HeaderValue::from_str(ct).is_err() => Err(format!(
            "request `{name}`: content_type {ct:?} is not a header value: expected e.g. \"application/fhir+json\""
        )),
        (Some(ct), None) if !sets_its_own => {
            Ok(Some(("Content-Type".to_owned(), Template::literal(ct))))
        }
        (None, Some(h)) if sets_its_own => Err(format!(
            "request `{name}`: surge sets this body's Content-Type itself, so the `{h}` header would be sent twice: write content_type = \"...\" instead"
        )),
        (None, Some(h)) if def.multipart.is_some() => Err(format!(
            "request `{name}`: a multipart body's Content-Type carries its part boundary: remove the `{h}` header (each part may give its own content_type)"
        )),
        _ => Ok(None),
    }
}

/// The request's `Content-Type` header key as written, if it has one.
pub(super) fn content_type_key(def: &RequestDef) -> Option<&String> {
    def.headers
        .keys()
        .find(|k| k.eq_ignore_ascii_case("content-type"))
}

/// A request path must reach the target: a path from its root (`/...`),
/// joined to `target.base_url`, or a full `http://` / `https://` URL
/// (kept as it is). A path that starts with a placeholder may render to
/// either (a paging link, a feeder's URL), so it is taken as written.
pub(super) fn check_path(what: &str, path: &Template) -> Result<(), String> {
    let shown = match path.segments().first() {
        Some(Segment::Var(_) | Segment::Feeder { .. }) => return Ok(()),
        Some(Segment::Literal(text))
            if text.starts_with('/')
                || text.starts_with("http://")
                || text.starts_with("https://") =>
        {
            return Ok(())
        }
        // A value from the environment may be a secret: never shown.
        _ if path.is_from_env() => String::new(),
        _ => {
            let written: String = path
                .segments()
                .iter()
                .map(|s| match s {
                    Segment::Literal(text) => text.replace("${", "$${"),
                    Segment::Var(var) => format!("${{{var}}}"),
                    Segment::Feeder { feeder, column } => format!("${{{feeder}.{column}}}"),
                    Segment::Uuid => "${uuid}".to_owned(),
                })
                .collect();
            format!(" {written:?}")
        }
    };
    Err(format!(
        "{what}{shown} does not start with `/`: expected a path from the root (\"/openmrs/ws/rest/v1/patient\", joined to target.base_url) or a full http:// or https:// URL"
    ))
}

pub(super) fn read_rule(
    name: &str,
    c: &model::ConsistencyDef,
    fixtures: &Path,
) -> Result<ReadRule, String> {
    let mut rule = ReadRule::default();
    if let Some(m) = c.method {
        rule.method = m;
    }
    rule.compare = match c.compare.as_deref() {
        None | Some("bytes") => Compare::Bytes,
        Some("status") => Compare::Status,
        Some("search") => Compare::Search,
        Some(other) => {
            return Err(format!(
            "request `{name}`: consistency.compare = {other:?}: expected \"bytes\", \"status\" or \"search\""
        ))
        }
    };
    if let Some(absent) = &c.absent {
        rule.absent = absent.clone();
    }
    match (&c.body_file, &c.content_type) {
        (Some(file), content_type) => {
            rule.body = Some((
                content_type
                    .clone()
                    .unwrap_or_else(|| "application/json".into()),
                read_fixture(fixtures, file)?.into(),
            ))
        }
        (None, Some(_)) => {
            return Err(format!(
                "request `{name}`: consistency.content_type goes with consistency.body_file"
            ))
        }
        (None, None) => {}
    }
    Ok(rule)
}

/// Parses where a value is read from: `header:Name` or a JSON path.
pub(super) fn capture_source(request: &str, what: &str, from: &str) -> Result<CaptureFrom, String> {
    match from.strip_prefix("header:") {
        Some(h) if !h.trim().is_empty() => Ok(CaptureFrom::Header(h.trim().to_ascii_lowercase())),
        Some(_) => Err(format!(
            "request `{request}`: {what}: header name missing after `header:`"
        )),
        None if !from.trim().is_empty() => Ok(CaptureFrom::Json(from.trim().to_owned())),
        None => Err(format!(
            "request `{request}`: {what}: expected a JSON path or header:Name"
        )),
    }
}

/// Every template of a request, in the order it is written — path,
/// read-back path, headers, body — each with whether it is the read-back
/// path (rendered after the answer, with `${id}` the stored object's id).
pub(super) fn templates(spec: &RequestSpec) -> impl Iterator<Item = (&Template, bool)> {
    let read = spec.consistency.as_ref().map(|c| (&c.read, true));
    std::iter::once((&spec.path, false))
        .chain(read)
        .chain(spec.headers.iter().map(|(_, t)| (t, false)))
        .chain(spec.body.templates().into_iter().map(|t| (t, false)))
}

pub(super) fn check_placeholders(
    spec: &RequestSpec,
    feeders: &[Arc<Feeder>],
    captured: &BTreeSet<&str>,
) -> Result<(), String> {
    for (template, is_read) in templates(spec) {
        for segment in template.segments() {
            match segment {
                Segment::Feeder { feeder, column } => {
                    let f = feeders
                        .iter()
                        .find(|f| &f.name == feeder)
                        .ok_or_else(|| format!("request `{}` uses `${{{feeder}.{column}}}` but there is no feeder `{feeder}`", spec.name))?;
                    if !f.columns.contains(column) {
                        return Err(format!(
                            "request `{}` uses `${{{feeder}.{column}}}` but feeder `{feeder}` has columns {}",
                            spec.name,
                            f.columns.join(", ")
                        ));
                    }
                }
                // `${id}` in a read-back path is the stored object's id.
                Segment::Var(var) if var == "id" && is_read => {}
                Segment::Var(var) if !captured.contains(var.as_str()) => {
                    return Err(format!(
                        "request `{}` uses `${{{var}}}` but no request captures `{var}` (add capture = {{ {var} = \"json.path\" }})",
                        spec.name
                    ))
                }
                _ => {}
            }
        }
    }
    Ok(())
}
