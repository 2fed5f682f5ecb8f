//! The requests the shipped scenarios send have the shapes of the real APIs
//! (../shared/TARGETS.md): the sim records what it received — method, path,
//! query, content type, auth scheme, cookie names, multipart parts, never a
//! credential — and each shape is checked against the documented API.

use crate::common::*;
use serde_json::Value;
use surge_sim::replica::ServiceOptions;
use surge_sim::ClusterOptions;

/// Runs a shipped scenario against a capturing cluster; every line captured.
async fn captured(scenario: &str, service: ServiceOptions, seconds: u64) -> (Vec<Value>, String) {
    let capture = tempfile::tempdir().unwrap();
    let cluster = cluster(ClusterOptions {
        capture_dir: Some(capture.path().to_path_buf()),
        service,
        ..Default::default()
    })
    .await;
    let out = tempfile::tempdir().unwrap();
    let file = repo().join("scenarios").join(scenario);
    run_shipped(&file, &cluster.url, seconds, out.path()).await;
    cluster.shutdown().await;
    let mut text = String::new();
    for entry in std::fs::read_dir(capture.path()).unwrap() {
        text += &std::fs::read_to_string(entry.unwrap().path()).unwrap();
    }
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (lines, text)
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

fn requests<'a>(lines: &'a [Value], method: &str, path: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| s(l, "method") == method && s(l, "path").starts_with(path))
        .collect()
}

fn assert_no_secrets(text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "the capture holds a secret: {secret}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmrs_clinic_requests_match_the_openmrs_rest_api() {
    let _engine = engine_lock().await;
    let (lines, text) = captured("openmrs-clinic.toml", ServiceOptions::default(), 10).await;
    const REST: &str = "/openmrs/ws/rest/v1";
    // Login: GET /session with Basic; everything else rides on JSESSIONID.
    let logins: Vec<_> = requests(&lines, "GET", &format!("{REST}/session"));
    assert!(
        !logins.is_empty() && logins.iter().all(|l| s(l, "auth") == "basic"),
        "{logins:?}"
    );
    let http = lines.iter().filter(|l| l.get("method").is_some());
    for l in http.filter(|l| s(l, "path").starts_with("/openmrs/") && s(l, "auth") != "basic") {
        let cookies: Vec<&str> = l["cookies"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(cookies.contains(&"JSESSIONID"), "no session cookie on {l}");
    }
    // The login location: FHIR Location tagged "Login Location", then POST /session with JSON.
    let locations = requests(&lines, "GET", "/openmrs/ws/fhir2/R4/Location");
    assert!(
        locations
            .iter()
            .all(|l| s(l, "query").contains("_tag=Login+Location")),
        "{locations:?}"
    );
    let set = requests(&lines, "POST", &format!("{REST}/session"));
    assert!(
        !set.is_empty()
            && set
                .iter()
                .all(|l| s(l, "content_type").starts_with("application/json"))
    );
    // Logout is DELETE /session.
    assert!(!requests(&lines, "DELETE", &format!("{REST}/session")).is_empty());
    // Patient search: q, a custom representation, a page of at most 100, totalCount.
    let searches = requests(&lines, "GET", &format!("{REST}/patient"));
    let searches: Vec<_> = searches
        .iter()
        .filter(|l| s(l, "path") == format!("{REST}/patient"))
        .collect();
    assert!(!searches.is_empty());
    for l in &searches {
        let q = s(l, "query");
        assert!(
            q.contains("q=") && q.contains("v=custom:") && q.contains("totalCount=true"),
            "{q}"
        );
        let limit: u32 = q
            .split('&')
            .find_map(|kv| kv.strip_prefix("limit=")?.parse().ok())
            .unwrap();
        assert!(limit <= 100, "OpenMRS caps a page at 100: {q}");
    }
    // The per-hit follow-ups: active visit, ID photo, cause of death.
    let visits = requests(&lines, "GET", &format!("{REST}/visit"));
    assert!(visits
        .iter()
        .any(|l| s(l, "query").contains("includeInactive=false")
            && s(l, "query").contains("patient=")));
    assert!(requests(&lines, "GET", &format!("{REST}/obs"))
        .iter()
        .all(|l| s(l, "query").contains("concept=")));
    assert!(requests(&lines, "GET", &format!("{REST}/person/"))
        .iter()
        .all(|l| s(l, "query").contains("causeOfDeath")));
    assert!(
        searches.len() * 2 < visits.len() + 1,
        "follow-ups fan out per hit"
    );
    // Attachments: multipart with `file` (named, typed) and `patient`; images under 1.2 MB.
    let uploads = requests(&lines, "POST", &format!("{REST}/attachment"));
    let multipart: Vec<_> = lines
        .iter()
        .filter(|l| l.get("multipart").is_some())
        .collect();
    assert!(!multipart.is_empty() && multipart.len() == uploads.len());
    assert!(uploads
        .iter()
        .all(|l| s(l, "content_type").starts_with("multipart/form-data")));
    for l in multipart {
        let parts = l["multipart"].as_array().unwrap();
        let names: Vec<&str> = parts.iter().map(|p| s(p, "name")).collect();
        assert!(
            names.contains(&"file") && names.contains(&"patient"),
            "{names:?}"
        );
        assert!(
            names
                .iter()
                .all(|n| ["file", "patient", "visit", "encounter", "fileCaption"].contains(n)),
            "{names:?}"
        );
        let file = parts.iter().find(|p| s(p, "name") == "file").unwrap();
        assert_eq!(file["file_name"], true);
        let kind = s(file, "content_type");
        assert!(kind == "application/pdf" || kind == "image/png", "{kind}");
        if kind.starts_with("image/") {
            assert!(
                file["bytes"].as_u64().unwrap() < 1_200_000,
                "images over 1.2 MB are rescaled"
            );
        }
    }
    assert!(requests(&lines, "GET", &format!("{REST}/attachment/"))
        .iter()
        .all(|l| s(l, "path").ends_with("/bytes")));
    // Registration: an identifier from idgen, then POST /patient with JSON.
    assert!(!requests(&lines, "POST", &format!("{REST}/idgen/identifiersource/")).is_empty());
    let register: Vec<_> = requests(&lines, "POST", &format!("{REST}/patient"));
    assert!(
        !register.is_empty()
            && register
                .iter()
                .all(|l| s(l, "content_type").starts_with("application/json"))
    );
    assert_no_secrets(&text, &["Admin123", "YWRtaW46QWRtaW4xMjM"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn national_fhir_requests_match_hapi_and_keycloak() {
    let _engine = engine_lock().await;
    let service = ServiceOptions {
        fhir_auth: true,
        ..Default::default()
    };
    let (lines, text) = captured("hapi-fhir-national.toml", service, 6).await;
    // Keycloak client credentials: a form POST to the realm's token endpoint, no auth header.
    let tokens = requests(
        &lines,
        "POST",
        "/realms/national/protocol/openid-connect/token",
    );
    assert!(!tokens.is_empty());
    assert!(tokens.iter().all(
        |l| s(l, "content_type") == "application/x-www-form-urlencoded" && l["auth"].is_null()
    ));
    // Every FHIR call carries the bearer token.
    let fhir: Vec<_> = lines
        .iter()
        .filter(|l| s(l, "path").starts_with("/fhir"))
        .collect();
    assert!(
        fhir.iter().all(|l| s(l, "auth") == "bearer"),
        "a FHIR call without a bearer token"
    );
    // Search with name and _count; pages through HAPI's _getpages links.
    let searches = requests(&lines, "GET", "/fhir/Patient");
    assert!(searches
        .iter()
        .all(|l| s(l, "query").contains("name=") && s(l, "query").contains("_count=")));
    let pages: Vec<_> = lines
        .iter()
        .filter(|l| s(l, "path") == "/fhir" && s(l, "query").contains("_getpages="))
        .collect();
    assert!(
        !pages.is_empty()
            && pages
                .iter()
                .all(|l| s(l, "query").contains("_getpagesoffset="))
    );
    // $validate with a FHIR resource body.
    let validate = requests(&lines, "POST", "/fhir/Patient/$validate");
    assert!(
        !validate.is_empty()
            && validate
                .iter()
                .all(|l| s(l, "content_type") == "application/fhir+json")
    );
    // Binary: the document's own, non-FHIR content type.
    let binaries = requests(&lines, "POST", "/fhir/Binary");
    assert!(
        !binaries.is_empty()
            && binaries
                .iter()
                .all(|l| s(l, "content_type") == "application/pdf")
    );
    // Creation: DocumentReference, Patient, Encounter, Observation as JSON.
    for kind in ["DocumentReference", "Patient", "Encounter", "Observation"] {
        let created: Vec<_> = lines
            .iter()
            .filter(|l| s(l, "method") == "POST" && s(l, "path") == format!("/fhir/{kind}"))
            .collect();
        assert!(!created.is_empty(), "no {kind} created");
        assert!(created
            .iter()
            .all(|l| s(l, "content_type").starts_with("application/json")));
    }
    assert_no_secrets(&text, &["surge-secret", "Admin123"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openfhir_requests_match_its_api() {
    let _engine = engine_lock().await;
    let (lines, _) = captured("openfhir-mapping.toml", ServiceOptions::default(), 4).await;
    let uploads = requests(&lines, "POST", "/opt");
    assert!(
        !uploads.is_empty()
            && uploads
                .iter()
                .all(|l| s(l, "content_type") == "application/xml")
    );
    let maps = requests(&lines, "POST", "/openfhir/toopenehr");
    assert!(
        !maps.is_empty()
            && maps
                .iter()
                .all(|l| s(l, "query").starts_with("templateId="))
    );
}
