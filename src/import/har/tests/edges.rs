//! The HAR import at its edges: tokens handed out and sent back, the
//! logins `[auth]` knows, bodies it cannot read, other origins, and the
//! defects a review found — credentials, numbers and names that are data,
//! references, redirects, hostile times and sizes, repeated form fields.

use super::*;

#[test]
fn a_token_an_answer_handed_out_is_captured_in_a_header_and_a_body() {
    let token = "Q2hhbmdlZEV2ZXJ5U2Vzc2lvbjEyMzQ1Njc4OQ";
    let csrf = "c3JmLXRva2VuLTk4NzY1NDMyMTAtYWJjZGVm";
    let login = entry(
        0,
        "GET",
        "/app/csrf",
        json!([]),
        200,
        json!([{ "name": "X-CSRF-Token", "value": csrf }, { "name": "Content-Type", "value": "text/plain" }]),
    );
    let issue = entry(
        100,
        "GET",
        "/app/token",
        json!([]),
        200,
        json!({ "access": { "token": token } }),
    );
    let form = with_body(
        entry(
            900,
            "POST",
            "/app/save",
            json!([{ "name": "X-CSRF-Token", "value": csrf }]),
            204,
            Value::Null,
        ),
        "application/x-www-form-urlencoded",
        &format!("token={token}&note=ok"),
        None,
    );
    let har = json!({ "log": { "entries": [login, issue, form] } });
    let i = imported(&har, &options()).unwrap();
    assert_eq!(
        i.requests[0]
            .captures
            .get("x_csrf_token")
            .map(String::as_str),
        Some("header:X-CSRF-Token")
    );
    assert_eq!(
        i.requests[1]
            .captures
            .get("access_token")
            .map(String::as_str),
        Some("access.token")
    );
    assert_eq!(
        i.requests[2].headers,
        [("X-CSRF-Token".to_owned(), "${x_csrf_token}".to_owned())]
    );
    assert_eq!(
        i.requests[2].body,
        BodyOut::Form(vec![
            ("token".into(), "${access_token}".into()),
            ("note".into(), "ok".into())
        ])
    );
    assert_eq!(i.report.secrets_templated, 0);
    let all = written(&i, &options());
    assert!(!all.contains(token) && !all.contains(csrf), "{all}");
}

#[test]
fn bearer_and_keycloak_logins_become_their_auth() {
    let bearer = json!([{ "name": "Authorization", "value": "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJudXJzZSJ9.c2ln" }]);
    let har = json!({ "log": { "entries": [
        entry(0, "GET", "/fhir/Patient?name=Achieng", bearer.clone(), 200, json!({ "resourceType": "Bundle" })),
    ] } });
    let i = imported(&har, &options()).unwrap();
    assert_eq!(i.auth, Some(HarAuth::Bearer));
    let all = written(&i, &options());
    assert!(
        all.contains("token = \"${env:SURGE_TOKEN}\"") && !all.contains("eyJhbGci"),
        "{all}"
    );
    let mut token = with_body(
        entry(
            0,
            "POST",
            "/realms/clinic/protocol/openid-connect/token",
            json!([]),
            200,
            json!({ "access_token": "x", "expires_in": 300 }),
        ),
        "application/x-www-form-urlencoded",
        "grant_type=client_credentials&client_id=emr&client_secret=s3cr3tS3cr3tS3cr3t",
        None,
    );
    token["request"]["url"] =
        json!("http://127.0.0.1:8080/realms/clinic/protocol/openid-connect/token");
    let har = json!({ "log": { "entries": [
        token,
        entry(500, "GET", "/fhir/Patient?name=Achieng", bearer, 200, json!({ "resourceType": "Bundle" })),
    ] } });
    let i = imported(&har, &options()).unwrap();
    assert_eq!(
        i.auth,
        Some(HarAuth::Keycloak {
            token_url: "http://127.0.0.1:8080/realms/clinic/protocol/openid-connect/token".into()
        })
    );
    assert_eq!(i.report.logins_as_auth, 1);
    assert_eq!(i.requests.len(), 1);
    let all = written(&i, &options());
    assert!(
        all.contains("client_secret = \"${env:SURGE_CLIENT_SECRET}\"") && !all.contains("s3cr3t"),
        "{all}"
    );
}

#[test]
fn bodies_that_are_not_utf8_or_not_json_are_neither_read_nor_written() {
    use base64::Engine as _;
    let mut answer = entry(0, "GET", "/fhir/Binary/7", json!([]), 200, Value::Null);
    answer["response"]["content"] = json!({
        "size": 4, "mimeType": "application/json", "encoding": "base64",
        "text": base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe, 0x00, 0x7b]),
    });
    let xml = with_body(
        entry(300, "POST", "/fhir/Patient", json!([]), 201, Value::Null),
        "application/fhir+xml",
        "<Patient><name><family value=\"Odhiambo\"/></name></Patient>",
        None,
    );
    let har = json!({ "log": { "entries": [answer, xml] } });
    let o = options();
    let i = imported(&har, &o).unwrap();
    assert_eq!(
        i.requests[1].body,
        BodyOut::Placeholder {
            content_type: Some("application/fhir+xml".into())
        }
    );
    assert_eq!(i.report.placeholders, 1);
    let all = written(&i, &o);
    assert!(
        !all.contains("Odhiambo") && all.contains(crate::scenario::IMPORT_PLACEHOLDER),
        "{all}"
    );
}

#[test]
fn another_origin_is_left_out_unless_kept_and_then_goes_to_its_own_url() {
    let mut idp = entry(
        500,
        "GET",
        "/auth/realms/clinic/account",
        json!([]),
        200,
        Value::Null,
    );
    idp["request"]["url"] = json!("http://127.0.0.2:9000/auth/realms/clinic/account?tab=1");
    let har = json!({ "log": { "entries": [
        entry(0, "GET", "/healthz", json!([]), 200, Value::Null),
        idp,
    ] } });
    let i = imported(&har, &options()).unwrap();
    assert_eq!((i.requests.len(), i.report.other_origins_left_out), (1, 1));
    let keep = HarOptions {
        keep_origins: BTreeSet::from(["http://127.0.0.2:9000".to_owned()]),
        ..options()
    };
    let i = imported(&har, &keep).unwrap();
    assert_eq!(i.requests.len(), 2);
    assert!(
        i.requests[1]
            .path
            .starts_with("http://127.0.0.2:9000/auth/realms/${synthetic."),
        "{}",
        i.requests[1].path
    );
    assert!(
        i.requests[1].path.contains("?tab="),
        "{}",
        i.requests[1].path
    );
}

/// The defects a review found, each shown both ways where it can be.
#[test]
fn credentials_numbers_and_names_that_are_data_never_pass_the_scrub() {
    let body = json!({
        "username": "nurse.achieng", "password": "Passw0rd!", "pin": "4321",
        "person": { "phone": 712345678, "age": 38 },
        "encounterId": 12345678, "count": 3, "createdAt": 1796000000000_i64,
    });
    let post = with_body(
        entry(0, "POST", "/app/visit", json!([]), 201, Value::Null),
        "application/json",
        &body.to_string(),
        None,
    );
    let i = imported(&json!({ "log": { "entries": [post] } }), &options()).unwrap();
    let written_body: Value = serde_json::from_str(&i.bodies[0].1).unwrap();
    assert_eq!(written_body["username"], "${env:SURGE_FIELD_USERNAME}");
    assert_eq!(written_body["password"], "${env:SURGE_FIELD_PASSWORD}");
    assert_eq!(written_body["pin"], "${env:SURGE_FIELD_PIN}");
    assert_ne!(written_body["person"]["phone"], 712345678);
    assert_eq!(
        written_body["person"]["age"], 38,
        "an age alone is no identifier"
    );
    assert_ne!(written_body["encounterId"], 12345678);
    assert_eq!(written_body["count"], 3);
    assert_eq!(
        written_body["createdAt"], 1796000000000_i64,
        "a time is kept"
    );
    let all = written(&i, &options());
    for s in ["achieng", "Passw0rd", "4321", "712345678", "12345678"] {
        assert!(!all.contains(s), "{s}: {all}");
    }
    // A field name that is itself data stops the import, unnamed.
    let keyed = json!({ "visits": { "MRN-00042": { "status": "open" } } });
    let post = with_body(
        entry(0, "POST", "/app/visit", json!([]), 201, Value::Null),
        "application/json",
        &keyed.to_string(),
        None,
    );
    let err = imported(&json!({ "log": { "entries": [post] } }), &options()).unwrap_err();
    assert!(
        err.contains("a field name that looks like data") && !err.contains("MRN"),
        "{err}"
    );
}

#[test]
fn a_reference_is_decided_part_by_part_and_a_short_id_only_where_an_id_goes() {
    let made = entry(
        0,
        "POST",
        "/fhir/Patient",
        json!([]),
        201,
        json!({ "resourceType": "Patient", "id": "7" }),
    );
    let body = json!({ "subject": { "reference": "Patient/7/MRN-00042" }, "quantity": "7" });
    let obs = with_body(
        entry(
            500,
            "POST",
            "/fhir/Observation",
            json!([]),
            201,
            Value::Null,
        ),
        "application/fhir+json",
        &body.to_string(),
        None,
    );
    let i = imported(&json!({ "log": { "entries": [made, obs] } }), &options()).unwrap();
    let sent: Value = serde_json::from_str(&i.bodies.last().unwrap().1).unwrap();
    let reference = sent["subject"]["reference"].as_str().unwrap();
    assert!(
        reference.starts_with("Patient/${patient_id}/${synthetic."),
        "{reference}"
    );
    assert_eq!(sent["quantity"], "7", "a 7 that is no id stays");
}

#[test]
fn redirects_the_client_follows_are_one_step_and_one_it_cannot_see_expects_any_2xx() {
    let rest = "/openmrs/ws/rest/v1";
    let post = with_body(
        entry(
            0,
            "POST",
            &format!("{rest}/obs"),
            json!([]),
            307,
            json!([{ "name": "Location", "value": format!("{rest}/obs?v=full#top") }]),
        ),
        "application/json",
        "{}",
        None,
    );
    let again = with_body(
        entry(
            50,
            "POST",
            &format!("{rest}/obs?v=full"),
            json!([]),
            201,
            json!({ "uuid": PATIENT }),
        ),
        "application/json",
        "{}",
        None,
    );
    let away = entry(
        900,
        "GET",
        &format!("{rest}/location"),
        json!([]),
        302,
        json!([{ "name": "Location", "value": "http://127.0.0.9:9/login" }]),
    );
    let har = json!({ "log": { "entries": [post, again, away] } });
    let i = imported(&har, &options()).unwrap();
    assert_eq!(i.sessions[0].len(), 2, "the 307's repeat is the client's");
    assert_eq!(i.requests[0].statuses, [201]);
    assert_eq!(i.requests[1].statuses, Vec::<u16>::new(), "any 2xx");
    assert_eq!(
        (i.report.redirects_folded, i.report.redirects_unfollowed),
        (1, 1)
    );
}

#[test]
fn hostile_times_headers_and_sizes_are_refused_or_read_without_a_panic() {
    let mut slow = entry(
        0,
        "GET",
        "/healthz",
        json!([{ "name": "Authorization", "value": "Basicé€€€" }]),
        200,
        Value::Null,
    );
    slow["time"] = json!(1e300);
    let later = entry(
        100,
        "GET",
        "/healthz",
        json!([{ "name": "Authorization", "value": "Beareré" }]),
        200,
        Value::Null,
    );
    let i = imported(&json!({ "log": { "entries": [slow, later] } }), &options()).unwrap();
    assert_eq!(i.sessions[0][0].think_ms, 0, "an overlap, not an overflow");
    let huge = with_body(entry(0, "POST", "/app/upload", json!([{ "name": "Content-Length", "value": "999999999999" }]), 201, Value::Null),
        "multipart/form-data; boundary=B",
        "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.bin\"\r\n\r\n\r\n--B--\r\n", None);
    let err = imported(&json!({ "log": { "entries": [huge] } }), &options()).unwrap_err();
    assert!(
        err.contains("a generated file can be at most 256 MiB"),
        "{err}"
    );
}

#[test]
fn a_repeated_form_field_is_sent_as_its_encoded_text() {
    let form = with_body(
        entry(0, "POST", "/app/orders", json!([]), 201, Value::Null),
        "application/x-www-form-urlencoded",
        "order=cbc&order=lft&note=fasting",
        None,
    );
    let i = imported(&json!({ "log": { "entries": [form] } }), &options()).unwrap();
    assert!(
        matches!(&i.requests[0].body, BodyOut::Template { content_type, .. } if content_type == "application/x-www-form-urlencoded")
    );
    assert_eq!(i.bodies[0].1, "order=cbc&order=lft&note=fasting");
}
