//! The rest of a clinic's day on the reference cluster, shaped like the real
//! APIs (the OpenMRS REST web services module, as openmrs-contrib-performance-test drives it): the login
//! locations (REST and FHIR), the per-hit follow-ups of a patient search
//! (active visit, identification photo, cause of death), registration with
//! an identifier from idgen, visits, and FHIR resource create/read. Every
//! database-backed call holds a pool connection, as the real ones do.

use super::{
    fhir, operation_outcome, refuse_without_bearer, rest_json, with_cookie, Auth, Shared, REST,
};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The OpenMRS demo's "Outpatient Clinic", a login location.
pub const OUTPATIENT_CLINIC: &str = "44c3efb0-2583-4c80-a79e-1f756a03c0a1";

/// Routes added to a replica.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/openmrs/ws/fhir2/R4/Location", get(fhir_locations))
        .route(&format!("{REST}/visit"), get(visits).post(start_visit))
        .route(&format!("{REST}/obs"), get(observations))
        .route(&format!("{REST}/person/{{uuid}}"), get(person))
        .route(
            &format!("{REST}/idgen/identifiersource/{{uuid}}/identifier"),
            post(next_identifier),
        )
        .route(&format!("{REST}/patient/{{uuid}}"), get(patient_by_uuid))
        .route("/fhir/{resource_type}", post(fhir_create))
        .route("/fhir/{resource_type}/{id}", get(fhir_read))
}

async fn fhir_locations(State(r): State<Shared>, headers: HeaderMap) -> Response {
    let auth = session_or_refuse!(r, headers);
    let entry = |id: &str, name: &str| {
        json!({"resource": {"resourceType": "Location", "id": id, "name": name, "status": "active",
            "meta": {"tag": [{"code": "Login Location", "display": "Login Location"}]}}})
    };
    let body = json!({"resourceType": "Bundle", "type": "searchset", "total": 2, "entry": [
        entry(OUTPATIENT_CLINIC, "Outpatient Clinic"),
        entry("aff27d58-a15c-49a6-9beb-d30dcfc0c66e", "Inpatient Ward")]});
    with_cookie(fhir(StatusCode::OK, body), &auth)
}

/// OpenMRS REST's message for an unknown uuid.
const NO_SUCH_UUID: &str = "Object with given uuid doesn't exist";

/// An OpenMRS REST error: `{"error": {"message", "code"}}`.
fn rest_error(status: StatusCode, message: &str, code: &str, auth: &Auth) -> Response {
    with_cookie(
        (
            status,
            Json(json!({"error": {"message": message, "code": code}})),
        )
            .into_response(),
        auth,
    )
}

/// A deterministic choice per patient, so reads agree across replicas.
fn pick(uuid: &str, one_in: u32) -> bool {
    uuid.bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32))
        % one_in
        == 0
}

async fn visits(
    State(r): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let auth = session_or_refuse!(r, headers);
    let Some(patient) = q.get("patient").cloned() else {
        return with_cookie(Json(json!({"results": []})).into_response(), &auth);
    };
    let known = r.patients.iter().any(|p| p.uuid == patient);
    let body = r
        .with_connection(|| {
            // About a third of patients have an active visit.
            let results: Vec<Value> = (known && pick(&patient, 3))
                .then(|| json!({"uuid": format!("v-{patient}"), "display": "Facility Visit",
                    "patient": {"uuid": patient}, "stopDatetime": null,
                    "visitType": {"uuid": "7b0f5697-27e3-40c4-8bae-f4049abfb4ed", "display": "Facility Visit"},
                    "location": {"uuid": OUTPATIENT_CLINIC, "display": "Outpatient Clinic"}}))
                .into_iter()
                .collect();
            json!({"results": results})
        })
        .await;
    rest_json(StatusCode::OK, body, &auth)
}

async fn start_visit(
    State(r): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let auth = session_or_refuse!(r, headers);
    let doc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (Some(patient), Some(visit_type)) = (doc["patient"].as_str(), doc["visitType"].as_str())
    else {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "Invalid Submission",
            "patient and visitType are required",
            &auth,
        );
    };
    let (patient, visit_type) = (patient.to_owned(), visit_type.to_owned());
    let made = r
        .with_connection(|| json!({"uuid": uuid::Uuid::new_v4().to_string(), "patient": {"uuid": patient},
            "visitType": {"uuid": visit_type}, "location": doc.get("location").cloned().unwrap_or(Value::Null)}))
        .await;
    rest_json(StatusCode::CREATED, made, &auth)
}

async fn observations(
    State(r): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let auth = session_or_refuse!(r, headers);
    if !q.contains_key("patient") {
        return rest_error(StatusCode::BAD_REQUEST, "patient is required", "", &auth);
    }
    // No identification photos in the synthetic data: an empty, well-formed answer.
    let empty = r.with_connection(|| json!({"results": []})).await;
    rest_json(StatusCode::OK, empty, &auth)
}

async fn person(State(r): State<Shared>, headers: HeaderMap, Path(uuid): Path<String>) -> Response {
    let auth = session_or_refuse!(r, headers);
    if !r.patients.iter().any(|p| p.uuid == uuid) {
        return rest_error(StatusCode::NOT_FOUND, NO_SUCH_UUID, "", &auth);
    }
    let cause = r
        .with_connection(|| json!({"causeOfDeath": null, "causeOfDeathNonCoded": null}))
        .await;
    rest_json(StatusCode::OK, cause, &auth)
}

async fn patient_by_uuid(
    State(r): State<Shared>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> Response {
    let auth = session_or_refuse!(r, headers);
    match r.patients.iter().find(|p| p.uuid == uuid) {
        Some(p) => with_cookie(Json(super::patient_json(p, true)).into_response(), &auth),
        None => rest_error(StatusCode::NOT_FOUND, NO_SUCH_UUID, "", &auth),
    }
}

async fn next_identifier(State(r): State<Shared>, headers: HeaderMap) -> Response {
    let auth = session_or_refuse!(r, headers);
    let n = r
        .next_identifier
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // Unique across replicas: the replica's name is part of it, as idgen's database sequence would make it.
    let identifier = format!("{}-{}{n:05}", r.options.name.to_uppercase(), 1000);
    with_cookie(
        Json(json!({"identifier": identifier})).into_response(),
        &auth,
    )
}

/// Registration: `POST /patient` with a person and identifiers (OpenMRS
/// answers 400 "Invalid Submission" when they are missing).
pub(super) async fn register_patient(
    State(r): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let auth = session_or_refuse!(r, headers);
    let doc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let names_ok = doc["person"]["names"]
        .as_array()
        .is_some_and(|n| !n.is_empty());
    let ids_ok = doc["identifiers"].as_array().is_some_and(|i| {
        !i.is_empty()
            && i.iter()
                .all(|i| i["identifier"].is_string() && i["identifierType"].is_string())
    });
    if !names_ok || !ids_ok || !doc["person"]["gender"].is_string() {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "Invalid Submission",
            "person.names, person.gender and identifiers[].identifier/identifierType are required",
            &auth,
        );
    }
    let made = r
        .with_connection(|| json!({"uuid": uuid::Uuid::new_v4().to_string(), "display": doc["identifiers"][0]["identifier"]}))
        .await;
    rest_json(StatusCode::CREATED, made, &auth)
}

/// Resource types the sim stores (HAPI stores any; these are the ones the scenarios send).
const STORED: [&str; 4] = ["Patient", "Encounter", "Observation", "DocumentReference"];

/// `POST /fhir/{type}`: 201 with `Location: /fhir/{type}/{id}/_history/1`,
/// stored in the shared database (so any replica reads it back), as HAPI does.
async fn fhir_create(
    State(r): State<Shared>,
    headers: HeaderMap,
    Path(resource_type): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    create(r, headers, resource_type, body).await
}

/// `POST /fhir/Patient` (its path is also a search route, without a parameter).
pub(super) async fn fhir_create_patient(
    State(r): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    create(r, headers, "Patient".to_owned(), body).await
}

async fn create(
    r: Shared,
    headers: HeaderMap,
    resource_type: String,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refusal) = refuse_without_bearer(&r, &headers) {
        return refusal;
    }
    if !STORED.contains(&resource_type.as_str()) {
        return fhir(
            StatusCode::NOT_FOUND,
            operation_outcome(
                "error",
                "not-supported",
                &format!("unknown resource type {resource_type}"),
            ),
        );
    }
    let mut doc: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return fhir(
                StatusCode::BAD_REQUEST,
                operation_outcome("error", "structure", &format!("not JSON: {e}")),
            )
        }
    };
    if doc["resourceType"] != resource_type.as_str() {
        return fhir(
            StatusCode::BAD_REQUEST,
            operation_outcome(
                "error",
                "invalid",
                &format!(
                    "resourceType {} does not match the URL's {resource_type}",
                    doc["resourceType"]
                ),
            ),
        );
    }
    if resource_type == "DocumentReference" {
        let attachment = &doc["content"][0]["attachment"];
        if !attachment["contentType"].is_string()
            || !(attachment["data"].is_string() || attachment["url"].is_string())
        {
            return fhir(
                StatusCode::UNPROCESSABLE_ENTITY,
                operation_outcome(
                    "error",
                    "required",
                    "DocumentReference.content[0].attachment needs contentType and data or url",
                ),
            );
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    doc["id"] = json!(id);
    doc["meta"] = json!({"versionId": "1"});
    let text = doc.to_string();
    let stored = r
        .with_connection_async(|| r.store.put(&resource_type, &id, text))
        .await;
    super::fhir_created(
        stored,
        doc,
        &format!("/fhir/{resource_type}/{id}/_history/1"),
    )
}

async fn fhir_read(
    State(r): State<Shared>,
    headers: HeaderMap,
    Path((resource_type, id)): Path<(String, String)>,
) -> Response {
    if let Some(refusal) = refuse_without_bearer(&r, &headers) {
        return refusal;
    }
    if !STORED.contains(&resource_type.as_str()) || !super::safe_id(&id) {
        return fhir(
            StatusCode::NOT_FOUND,
            operation_outcome("error", "not-found", "unknown resource"),
        );
    }
    match r
        .with_connection_async(|| r.store.get(&resource_type, &id))
        .await
    {
        Ok(Ok(Some(bytes))) => {
            let mut resp = bytes.into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/fhir+json"),
            );
            resp
        }
        Ok(Ok(None)) => fhir(
            StatusCode::NOT_FOUND,
            operation_outcome(
                "error",
                "not-found",
                &format!("{resource_type}/{id} is not known"),
            ),
        ),
        Ok(Err(e)) => super::fhir_exception(&e),
        Err(resp) => resp,
    }
}
