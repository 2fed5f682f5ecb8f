//! openFHIR-like endpoints (the openFHIR engine's REST API): template upload
//! (`POST /opt`, an openEHR OPT as XML), template list (`GET /opt`), and
//! mapping (`POST /openfhir/toopenehr?templateId=`, `POST /openfhir/tofhir`).
//!
//! Like openFHIR Enterprise, each replica keeps templates in an in-memory
//! cache. A template uploaded to one replica is written to the shared store;
//! its peers learn of it by invalidation — at once with `broadcast`, or, with
//! `none`, only at their next periodic reload (`--openfhir-reload`), or never.
//! A peer that has not learnt of it answers a mapping with 400
//! "template not found": the stale read the upload-on-A, map-on-B probe finds.

use super::Shared;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// How a template upload reaches the other replicas' caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Invalidation {
    /// Peers see it at once (a working JGroups/Hazelcast-style invalidation).
    Broadcast,
    /// Peers see it only at their next reload, if any (a missed invalidation).
    None,
}

/// One replica's template cache over the shared store.
pub struct Cache {
    store: PathBuf,
    invalidation: Invalidation,
    known: Mutex<BTreeSet<String>>,
}

impl Cache {
    /// A cache over `store`, loaded at start-up (as a node reads its templates when it boots).
    pub fn new(store: PathBuf, invalidation: Invalidation) -> Self {
        let known = Mutex::new(list(&store));
        Cache {
            store,
            invalidation,
            known,
        }
    }

    /// Reloads the whole list from the shared store.
    pub fn reload(&self) {
        *self.known.lock().unwrap() = list(&self.store);
    }

    fn knows(&self, id: &str) -> bool {
        if self.known.lock().unwrap().contains(id) {
            return true;
        }
        // With a working invalidation a peer's upload is visible at once.
        if self.invalidation == Invalidation::Broadcast && self.store.join(file_name(id)).exists() {
            self.known.lock().unwrap().insert(id.to_owned());
            return true;
        }
        false
    }
}

fn file_name(id: &str) -> String {
    format!("{id}.opt")
}

fn list(store: &Path) -> BTreeSet<String> {
    std::fs::read_dir(store)
        .map(|d| {
            d.filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .strip_suffix(".opt")
                    .map(str::to_owned)
            })
            .collect()
        })
        .unwrap_or_default()
}

/// Starts the periodic reload, when one is configured.
pub fn start_reload(r: Shared, every: Option<Duration>) {
    if let Some(every) = every.filter(|d| !d.is_zero()) {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                r.openfhir.reload();
            }
        });
    }
}

/// Routes added to a replica.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/opt", post(upload_template).get(list_templates))
        .route("/openfhir/toopenehr", post(to_openehr))
        .route("/openfhir/tofhir", post(to_fhir))
        .route("/health", get(|| async { Json(json!({"status": "UP"})) }))
}

/// The `<template_id><value>…</value></template_id>` of an OPT.
pub fn template_id(xml: &str) -> Option<String> {
    let after = &xml[xml.find("<template_id")?..];
    let value = &after[after.find("<value>")? + "<value>".len()..];
    let id = value[..value.find("</value>")?].trim();
    let safe = !id.is_empty()
        && id.len() <= 200
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " -_.".contains(c));
    safe.then(|| id.to_owned())
}

fn bad(message: String) -> Response {
    (StatusCode::BAD_REQUEST, message).into_response()
}

async fn upload_template(State(r): State<Shared>, body: axum::body::Bytes) -> Response {
    let xml = String::from_utf8_lossy(&body);
    if !xml.contains("<template") {
        return bad("not an operational template (OPT) XML document".into());
    }
    let Some(id) = template_id(&xml) else {
        return bad("the template has no <template_id><value>".into());
    };
    let cache = &r.openfhir;
    let path = cache.store.join(file_name(&id));
    let stored = r
        .with_connection(|| {
            std::fs::create_dir_all(&cache.store).and_then(|()| std::fs::write(&path, &body))
        })
        .await;
    match stored {
        Ok(Ok(())) => {
            cache.known.lock().unwrap().insert(id.clone());
            Json(json!({"templateId": id})).into_response()
        }
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        Err(resp) => resp,
    }
}

async fn list_templates(State(r): State<Shared>) -> Response {
    let known: Vec<String> = r.openfhir.known.lock().unwrap().iter().cloned().collect();
    Json(json!(known)).into_response()
}

async fn to_openehr(
    State(r): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    let Some(id) = q.get("templateId") else {
        return bad("templateId is required".into());
    };
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return bad("the body is not FHIR JSON".into());
    };
    if doc["resourceType"].as_str().is_none() {
        return bad("the body has no resourceType".into());
    }
    if !r.openfhir.knows(id) {
        return bad(format!("template {id} not found"));
    }
    let resources = doc["entry"].as_array().map_or(1, Vec::len);
    match r
        .with_connection(|| {
            json!({"ctx/language": "en", "ctx/territory": "BD", "ctx/composer_name": "surge",
                   "template_id": id, "mapped_resources": resources})
        })
        .await
    {
        Ok(v) => Json(v).into_response(),
        Err(resp) => resp,
    }
}

async fn to_fhir(
    State(r): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return bad("the body is not an openEHR composition (flat JSON)".into());
    };
    let id = q
        .get("templateId")
        .cloned()
        .or_else(|| doc["template_id"].as_str().map(str::to_owned));
    let Some(id) = id else {
        return bad("templateId is required".into());
    };
    if !r.openfhir.knows(&id) {
        return bad(format!("template {id} not found"));
    }
    Json(json!({"resourceType": "Bundle", "type": "collection", "entry": []})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_template_id() {
        let xml = "<template xmlns=\"http://schemas.openehr.org/v1\"><language/>\
                   <template_id><value>Vital Signs.v2-a1</value></template_id></template>";
        assert_eq!(template_id(xml).as_deref(), Some("Vital Signs.v2-a1"));
        assert_eq!(
            template_id("<template><template_id><value>../x</value></template_id>"),
            None
        );
        assert_eq!(template_id("<template/>"), None);
    }

    #[test]
    fn peers_learn_by_broadcast_or_at_reload() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().to_path_buf();
        let peer_broadcast = Cache::new(store.clone(), Invalidation::Broadcast);
        let peer_none = Cache::new(store.clone(), Invalidation::None);
        std::fs::write(store.join(file_name("t1")), "<template/>").unwrap();
        assert!(peer_broadcast.knows("t1"));
        assert!(
            !peer_none.knows("t1"),
            "a missed invalidation: stale until reload"
        );
        peer_none.reload();
        assert!(peer_none.knows("t1"));
    }
}
