//! The HAPI-FHIR-like API: Keycloak-style tokens, patient search with
//! paging, `$validate`, and Binary create and read on the shared store.

use super::*;

pub(super) fn operation_outcome(severity: &str, code: &str, diagnostics: &str) -> Value {
    json!({"resourceType": "OperationOutcome",
           "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}]})
}

pub(super) fn fhir(status: StatusCode, body: Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+json;charset=utf-8"),
    );
    resp
}

/// HAPI's answer when the database call itself failed: 500 with the error.
pub(super) fn fhir_exception(error: &str) -> Response {
    fhir(
        StatusCode::INTERNAL_SERVER_ERROR,
        operation_outcome("fatal", "exception", error),
    )
}

pub(super) fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

/// Keycloak's client-credentials grant. Tokens carry their expiry, so every
/// replica can check them without shared state (as a signed JWT would).
pub(super) async fn issue_token(
    State(r): State<Shared>,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if field("grant_type") != "client_credentials" {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    if field("client_id") != r.options.service.client_id
        || field("client_secret") != r.options.service.client_secret
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "unauthorized_client"})),
        )
            .into_response();
    }
    let issued = r
        .tokens_issued
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if r.options
        .service
        .token_limit
        .is_some_and(|limit| issued >= limit)
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "temporarily_unavailable"})),
        )
            .into_response();
    }
    let ttl = r.options.service.token_ttl;
    let expires = unix_ms() + ttl.as_millis();
    let token = format!("tok-{expires}-{}", uuid::Uuid::new_v4().simple());
    Json(json!({"access_token": token, "expires_in": ttl.as_secs(), "token_type": "Bearer"}))
        .into_response()
}

/// With `--fhir-auth`, a FHIR request needs an unexpired token from
/// [`issue_token`]; the refusal to send when it has none.
pub(super) fn refuse_without_bearer(r: &Replica, headers: &HeaderMap) -> Option<Response> {
    if !r.options.service.fhir_auth {
        return None;
    }
    let expires = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer tok-"))
        .and_then(|t| t.split('-').next())
        .and_then(|ms| ms.parse::<u128>().ok());
    match expires {
        Some(ms) if ms > unix_ms() => None,
        Some(_) => Some(fhir(
            StatusCode::UNAUTHORIZED,
            operation_outcome("error", "login", "token expired"),
        )),
        None => Some(fhir(
            StatusCode::UNAUTHORIZED,
            operation_outcome("error", "login", "bearer token required"),
        )),
    }
}

pub(super) async fn fhir_search(
    State(r): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(refusal) = refuse_without_bearer(&r, &headers) {
        return refusal;
    }
    if let Some(id) = q.get("_id") {
        return search_by_id(&r, id).await;
    }
    // A page of an earlier search names it in `_getpages` (HAPI keeps searches
    // in the database, so any replica can serve any page).
    let name = q
        .get("name")
        .cloned()
        .or_else(|| {
            q.get("_getpages")
                .and_then(|id| id.strip_prefix("search-"))
                .map(str::to_owned)
        })
        .unwrap_or_default();
    // HAPI: default page 20.
    let count = number(&q, "_count", 20).clamp(1, 100);
    let offset = number(&q, "_getpagesoffset", 0);
    let result = r
        .with_connection(|| {
            let hits = data::search(&r.patients, &name);
            let entries: Vec<Value> = hits
                .iter()
                .skip(offset)
                .take(count)
                .map(|p| json!({"resource": {"resourceType": "Patient", "id": p.uuid,
                    "identifier": [{"value": p.identifier}],
                    "name": [{"family": p.family, "given": [p.given]}],
                    "gender": if p.gender == "F" {"female"} else {"male"}, "birthDate": p.birthdate}}))
                .collect();
            let mut links = vec![json!({"relation": "self", "url": format!("/fhir/Patient?name={name}&_count={count}")})];
            if offset + count < hits.len() {
                links.push(json!({"relation": "next",
                    "url": format!("/fhir?_getpages=search-{name}&_getpagesoffset={}&_count={count}", offset + count)}));
            }
            json!({"resourceType": "Bundle", "type": "searchset", "total": hits.len(), "link": links, "entry": entries})
        })
        .await;
    match result {
        Ok(body) => fhir(StatusCode::OK, body),
        Err(resp) => resp,
    }
}

/// `GET /fhir/Patient?_id=X`: a searchset holding the stored Patient once
/// the read replica has replayed it, an empty one before (or never).
async fn search_by_id(r: &Shared, id: &str) -> Response {
    let found = r
        .with_connection_async(|| async {
            if !safe_id(id) {
                return Ok::<_, super::store::StoreError>(None);
            }
            let bytes = r.store.get("Patient", id).await?;
            Ok(bytes.and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok()))
        })
        .await;
    match found {
        Ok(Err(e)) => fhir_exception(&e),
        Ok(Ok(found)) => {
            let entry: Vec<Value> = found.into_iter().map(|p| json!({"resource": p})).collect();
            fhir(
                StatusCode::OK,
                json!({"resourceType": "Bundle", "type": "searchset", "total": entry.len(), "entry": entry}),
            )
        }
        Err(resp) => resp,
    }
}

pub(super) async fn fhir_validate(
    State(r): State<Shared>,
    headers: HeaderMap,
    Path(resource_type): Path<String>,
    body: String,
) -> Response {
    if let Some(refusal) = refuse_without_bearer(&r, &headers) {
        return refusal;
    }
    if body.trim().is_empty() {
        return fhir(
            StatusCode::BAD_REQUEST,
            operation_outcome("error", "required", "No resource supplied for $validate"),
        );
    }
    // Validation is CPU work in HAPI, not database work: no pool here.
    let outcome =
        tokio::task::spawn_blocking(move || fhir_check::validate_r4(&body, &resource_type)).await;
    match outcome {
        Ok(Ok(())) => fhir(
            StatusCode::OK,
            operation_outcome(
                "information",
                "informational",
                "No issues detected during validation",
            ),
        ),
        // As HAPI FHIR answers since 6.6 (and the FHIR spec says): 200, the
        // errors in the OperationOutcome. Older releases answered 412.
        Ok(Err(diagnostics)) => fhir(
            StatusCode::OK,
            operation_outcome("error", "processing", &diagnostics),
        ),
        Err(_) => fhir(
            StatusCode::INTERNAL_SERVER_ERROR,
            operation_outcome("fatal", "exception", "validator failed"),
        ),
    }
}

pub(super) async fn fhir_binary_create(
    State(r): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refusal) = refuse_without_bearer(&r, &headers) {
        return refusal;
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let id = uuid::Uuid::new_v4().to_string();
    let dir = r.options.attachments_dir.clone();
    let stored = r
        .with_connection(|| store(&dir, &format!("binary-{id}"), &body, &content_type))
        .await;
    let stored_ok = matches!(stored, Ok(Ok(())));
    if stored_ok {
        replicate(&r, format!("binary-{id}"));
    }
    let location = format!("/fhir/Binary/{id}/_history/1");
    // HAPI FHIR answers a raw upload in the representation asked for: FHIR
    // JSON (with the id) when the client accepts it, else the bytes
    // themselves in their own content type.
    let wants_fhir = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("json"));
    if stored_ok && !wants_fhir {
        let mut resp = (StatusCode::CREATED, body).into_response();
        for (name, value) in [
            (header::CONTENT_TYPE, &content_type),
            (header::LOCATION, &location),
        ] {
            if let Ok(v) = HeaderValue::from_str(value) {
                resp.headers_mut().insert(name, v);
            }
        }
        return resp;
    }
    fhir_created(
        stored,
        json!({"resourceType": "Binary", "id": id, "contentType": content_type}),
        &location,
    )
}

/// HAPI's answer to a create: 201 with the resource and its Location, or
/// an OperationOutcome when storing failed (or the pool refused).
pub(super) fn fhir_created<E: std::fmt::Display>(
    stored: Result<Result<(), E>, Response>,
    resource: Value,
    location: &str,
) -> Response {
    match stored {
        Ok(Ok(())) => {
            let mut resp = fhir(StatusCode::CREATED, resource);
            if let Ok(v) = HeaderValue::from_str(location) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            resp
        }
        Ok(Err(e)) => fhir_exception(&e.to_string()),
        Err(resp) => resp,
    }
}

pub(super) async fn fhir_binary_read(
    State(r): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refusal) = refuse_without_bearer(&r, &headers) {
        return refusal;
    }
    if !safe_id(&id) {
        return fhir(
            StatusCode::NOT_FOUND,
            operation_outcome("error", "not-found", "no such Binary"),
        );
    }
    let dir = r.options.attachments_dir.clone();
    let read = r
        .with_connection(|| load(&dir, &format!("binary-{id}")))
        .await;
    match read {
        Ok(Ok((bytes, content_type))) => {
            let mut resp = bytes.into_response();
            if let Ok(v) = HeaderValue::from_str(&content_type) {
                resp.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            resp
        }
        // HAPI FHIR keeps a Binary's record in the shared database and its
        // content in the storage it was given; when that storage is another
        // replica's folder it answers 400 HAPI-1330 (measured on
        // targets/hapi-fhir), not 404.
        Ok(Err(_)) => fhir(
            StatusCode::BAD_REQUEST,
            operation_outcome(
                "error",
                "processing",
                "HAPI-1330: Can not find the requested binary content. It may have been deleted.",
            ),
        ),
        Err(resp) => resp,
    }
}
