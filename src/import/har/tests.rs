use super::*;
use serde_json::{json, Value};

const BASIC: &str = "Basic YWRtaW46QWRtaW4xMjM=";
const PATIENT: &str = "b1a3a2f6-2f4e-4f57-9d3c-6a1e0c2f9a01";
const REGISTERED: &str = "c2b4b3a7-3a5f-4a68-8e4d-7b2f1d3a0b12";
const ATTACHMENT: &str = "d3c5c4b8-4b6a-4b79-9f5e-8c3a2e4b1c23";
const IDENTIFIER_TYPE: &str = "05a29f94-c0ed-11e2-94be-8c13b969e334";
const CSRF: &str = "Zx81Qp0LmT4vBn7Ks2Wd9Yh3";

/// The patient data and secrets seeded into the recording below: not one
/// may be written.
const SEEDED: &[&str] = &[
    "Wanjiku",
    "Achieng",
    "Odhiambo",
    "Otieno",
    "1987-03-14",
    "Moi Avenue",
    "Kisumu",
    "0712345678",
    "100HJK",
    "YWRtaW46QWRtaW4xMjM",
    "SESSIONAAA",
    "SESSIONBBB",
    CSRF,
    "wound-Achieng.pdf",
    "complains of",
    PATIENT,
    REGISTERED,
    ATTACHMENT,
];

fn entry(ms: i64, method: &str, path: &str, headers: Value, status: i64, answer: Value) -> Value {
    let start = jiff::Timestamp::from_millisecond(1_796_000_000_000 + ms).unwrap();
    json!({
        "startedDateTime": start.to_string(),
        "time": 50,
        "request": { "method": method, "url": format!("http://127.0.0.1:8080{path}"),
                     "httpVersion": "HTTP/1.1", "headers": headers, "queryString": [], "cookies": [],
                     "headersSize": -1, "bodySize": 0 },
        "response": answer_of(status, answer),
        "_resourceType": "fetch",
    })
}

fn answer_of(status: i64, answer: Value) -> Value {
    let (headers, content) = match answer {
        Value::Null => (json!([]), json!({ "size": 0, "mimeType": "" })),
        Value::Array(headers) => (Value::Array(headers), json!({ "size": 0, "mimeType": "" })),
        body => (
            json!([{ "name": "Content-Type", "value": "application/json" }]),
            json!({ "size": 1, "mimeType": "application/json", "text": body.to_string() }),
        ),
    };
    json!({ "status": status, "statusText": "", "httpVersion": "HTTP/1.1", "headers": headers,
            "cookies": [], "content": content, "redirectURL": "", "headersSize": -1, "bodySize": -1 })
}

fn cookie(session: &str) -> Value {
    json!([{ "name": "Cookie", "value": format!("JSESSIONID={session}; theme=dark") },
           { "name": "Accept", "value": "application/json" },
           { "name": "User-Agent", "value": "Mozilla/5.0" }])
}

fn with_body(mut e: Value, mime: &str, text: &str, length: Option<usize>) -> Value {
    e["request"]["postData"] = json!({ "mimeType": mime, "text": text });
    if let Some(n) = length {
        e["request"]["headers"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "name": "Content-Length", "value": n.to_string() }));
    }
    e
}

/// Two clinicians' sessions as Chromium records them: a page, its script,
/// a login, a search, a chart, a registration, an upload, its read-back,
/// a logout; then a second login and search.
fn recording() -> Value {
    let rest = "/openmrs/ws/rest/v1";
    let mut page = entry(0, "GET", "/app/home", json!([]), 200, Value::Null);
    page["_resourceType"] = json!("document");
    let mut script = entry(30, "GET", "/app/main.js", json!([]), 200, Value::Null);
    script["_resourceType"] = json!("script");
    let login = |ms, session: &str| {
        entry(
            ms,
            "GET",
            &format!("{rest}/session?v=custom:(uuid)"),
            json!([{ "name": "Authorization", "value": BASIC }]),
            200,
            json!([{ "name": "Set-Cookie", "value": format!("JSESSIONID={session}; Path=/openmrs; HttpOnly") }]),
        )
    };
    let registration = json!({
        "person": { "names": [{ "givenName": "Achieng", "familyName": "Odhiambo" }], "gender": "F",
                    "birthdate": "1987-03-14",
                    "addresses": [{ "address1": "12 Moi Avenue", "cityVillage": "Kisumu" }],
                    "attributes": [{ "attributeType": "14d4f066-15f5-102d-96e4-000c29c2a5d7", "value": "0712345678" }] },
        "identifiers": [{ "identifier": "100HJK", "identifierType": IDENTIFIER_TYPE, "preferred": true }],
        "comment": "walked in, complains of a cough",
    });
    let boundary = "----WebKitFormBoundaryQ1";
    let multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"patient\"\r\n\r\n{REGISTERED}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"wound-Achieng.pdf\"\r\nContent-Type: application/pdf\r\n\r\n\r\n--{boundary}--\r\n"
    );
    let mut upload_headers = cookie("SESSIONAAA");
    upload_headers
        .as_array_mut()
        .unwrap()
        .push(json!({ "name": "X-CSRF-Token", "value": CSRF }));
    let entries = vec![
        page,
        script,
        login(100, "SESSIONAAA"),
        entry(
            1_300,
            "GET",
            &format!("{rest}/patient?q=Wanjiku&v=default"),
            cookie("SESSIONAAA"),
            200,
            json!({ "results": [{ "uuid": PATIENT, "display": "100GEJ - Wanjiku Otieno" }] }),
        ),
        entry(
            2_000,
            "GET",
            &format!("{rest}/patient/{PATIENT}"),
            cookie("SESSIONAAA"),
            200,
            json!({ "uuid": PATIENT }),
        ),
        with_body(
            entry(
                5_000,
                "POST",
                &format!("{rest}/patient"),
                cookie("SESSIONAAA"),
                201,
                json!({ "uuid": REGISTERED }),
            ),
            "application/json",
            &registration.to_string(),
            None,
        ),
        with_body(
            entry(
                6_000,
                "POST",
                &format!("{rest}/attachment"),
                upload_headers,
                201,
                json!({ "uuid": ATTACHMENT }),
            ),
            &format!("multipart/form-data; boundary={boundary}"),
            &multipart,
            Some(multipart.len() + 48_000),
        ),
        entry(
            6_500,
            "GET",
            &format!("{rest}/attachment/{ATTACHMENT}/bytes"),
            cookie("SESSIONAAA"),
            200,
            Value::Null,
        ),
        entry(
            9_000,
            "DELETE",
            &format!("{rest}/session"),
            cookie("SESSIONAAA"),
            204,
            Value::Null,
        ),
        login(20_000, "SESSIONBBB"),
        entry(
            21_000,
            "GET",
            &format!("{rest}/patient?q=Otieno&v=default"),
            cookie("SESSIONBBB"),
            200,
            json!({ "results": [] }),
        ),
    ];
    json!({ "log": { "version": "1.2", "creator": { "name": "WebInspector", "version": "537.36" },
                     "pages": [], "entries": entries } })
}

fn options() -> HarOptions {
    HarOptions {
        name: "clinic".into(),
        base_url: None,
        think_scale: 1.0,
        keep_static: false,
        keep_words: BTreeSet::from(["app".to_owned(), "home".to_owned(), "bytes".to_owned()]),
        safe: BTreeSet::new(),
        seed: 1,
        keep_origins: BTreeSet::new(),
    }
}

fn imported(har: &Value, options: &HarOptions) -> Result<HarImported, String> {
    let har: model::Har = serde_json::from_value(har.clone()).unwrap();
    import(&har, options)
}

fn written(i: &HarImported, options: &HarOptions) -> String {
    let r = render(i, options, "clinic.har");
    let mut all = r.scenario;
    for (path, text) in r.files {
        all.push_str(&path);
        all.push_str(&text);
    }
    all
}

#[test]
fn sessions_become_personas_with_their_pauses_and_logins_become_auth() {
    let i = imported(&recording(), &options()).unwrap();
    assert_eq!(i.origin, "http://127.0.0.1:8080");
    assert_eq!(
        i.auth,
        Some(HarAuth::OpenmrsBasic {
            login_path: "/openmrs/ws/rest/v1/session".into()
        })
    );
    assert_eq!(i.sessions.len(), 2);
    let names: Vec<Vec<&str>> = i
        .sessions
        .iter()
        .map(|s| {
            s.iter()
                .map(|st| i.requests[st.request].name.as_str())
                .collect()
        })
        .collect();
    assert_eq!(
        names[0],
        [
            "s1_01_get_app_home",
            "s1_02_get_rest_v1_patient",
            "s1_03_get_v1_patient_id",
            "s1_04_post_rest_v1_patient",
            "s1_05_post_rest_v1_attachment",
            "s1_06_get_attachment_id_bytes",
            "s1_07_delete_rest_v1_session",
        ]
    );
    assert_eq!(names[1], ["s2_01_get_rest_v1_patient"]);
    // The pause after each request: the next start less this one's end
    // (50 ms each); the page's pause runs over the login [auth] makes.
    let thinks: Vec<u64> = i.sessions[0].iter().map(|s| s.think_ms).collect();
    assert_eq!(thinks, [1_250, 650, 2_950, 950, 450, 2_450, 0]);
    assert_eq!(i.report.logins_as_auth, 2);
    assert_eq!(i.report.static_left_out, 1);
    let logout = &i.requests[i.sessions[0][6].request];
    assert!(logout.ends_session);
    assert_eq!(logout.statuses, [204]);
    // Half the pace: the pauses doubled.
    let slow = HarOptions {
        think_scale: 2.0,
        ..options()
    };
    assert_eq!(
        imported(&recording(), &slow).unwrap().sessions[0][0].think_ms,
        2_500
    );
}

#[test]
fn what_an_answer_handed_out_is_captured_and_sent_back_every_time() {
    let i = imported(&recording(), &options()).unwrap();
    let req = |n: usize| &i.requests[i.sessions[0][n].request];
    assert_eq!(
        req(1).captures.get("results_uuid").map(String::as_str),
        Some("results.0.uuid")
    );
    assert_eq!(req(2).path, "/openmrs/ws/rest/v1/patient/${results_uuid}");
    assert_eq!(
        req(3).captures.get("patient_uuid").map(String::as_str),
        Some("uuid")
    );
    match &req(4).body {
        BodyOut::Multipart(parts) => {
            assert_eq!(
                parts[0],
                PartOut::Value {
                    name: "patient".into(),
                    value: "${patient_uuid}".into()
                }
            );
            // The file's bytes were not in the HAR: its size is what the
            // request's length said beyond the rest.
            assert_eq!(
                parts[1],
                PartOut::Generated {
                    name: "file".into(),
                    kind: ContentKind::Pdf,
                    size: 48_000,
                    content_type: Some("application/pdf".into())
                }
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        req(4).captures.get("attachment_uuid").map(String::as_str),
        Some("uuid")
    );
    assert_eq!(
        req(5).path,
        "/openmrs/ws/rest/v1/attachment/${attachment_uuid}/bytes"
    );
    assert_eq!(i.report.captures, 3);
    // The second session's search value is no capture: it was typed.
    let search = &i.requests[i.sessions[1][0].request];
    assert!(
        search
            .path
            .starts_with("/openmrs/ws/rest/v1/patient?q=${synthetic."),
        "{}",
        search.path
    );
}

#[test]
fn not_one_seeded_value_is_written_and_the_report_says_what_was_replaced() {
    let o = options();
    let i = imported(&recording(), &o).unwrap();
    let all = written(&i, &o);
    for seeded in SEEDED {
        assert!(!all.contains(seeded), "{seeded} was written:\n{all}");
    }
    // Metadata the replay needs is kept; credentials become ${env:…}.
    assert!(all.contains(IDENTIFIER_TYPE), "{all}");
    assert!(
        all.contains("\"X-CSRF-Token\" = \"${env:SURGE_HEADER_X_CSRF_TOKEN}\""),
        "{all}"
    );
    assert!(all.contains("username = \"${env:SURGE_USER}\""), "{all}");
    assert!(!all.to_ascii_lowercase().contains("cookie"), "{all}");
    let body = &i.bodies[0].1;
    let json: Value = serde_json::from_str(body).unwrap();
    assert!(json["person"]["names"][0]["givenName"]
        .as_str()
        .unwrap()
        .starts_with("${synthetic."));
    assert!(json["person"]["birthdate"]
        .as_str()
        .unwrap()
        .starts_with("${synthetic."));
    assert_eq!(json["person"]["gender"], "F");
    assert_eq!(json["identifiers"][0]["preferred"], true);
    let comment = json["comment"].as_str().unwrap();
    assert_eq!(comment.len(), "walked in, complains of a cough".len());
    let lines = i.report.lines().join("\n");
    assert!(lines.contains("1 free-text values replaced"), "{lines}");
    assert!(
        lines.contains("1 credential headers written as ${env:…}"),
        "{lines}"
    );
    assert!(lines.contains("names replaced"), "{lines}");
    for seeded in SEEDED {
        assert!(!lines.contains(seeded));
    }
}

#[test]
fn a_secret_it_cannot_place_stops_the_import_unless_named_safe() {
    let mut har = recording();
    let body = json!({ "state": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b", "visit": "x" });
    har["log"]["entries"][5]["request"]["postData"]["text"] = json!(body.to_string());
    let err = imported(&har, &options()).unwrap_err();
    assert!(
        err.contains("entry 6: body state: looks like a secret"),
        "{err}"
    );
    assert!(
        err.contains("--safe state") && !err.contains("9f86d0"),
        "{err}"
    );
    let safe = HarOptions {
        safe: BTreeSet::from(["state".to_owned()]),
        ..options()
    };
    assert!(imported(&har, &safe).is_ok());
}

#[test]
fn a_recording_with_nothing_to_replay_or_a_bad_entry_is_refused_by_entry() {
    let empty = json!({ "log": { "version": "1.2", "entries": [] } });
    assert!(imported(&empty, &options())
        .unwrap_err()
        .contains("no entries"));
    let mut bad = recording();
    bad["log"]["entries"][3]["startedDateTime"] = json!("yesterday");
    assert!(imported(&bad, &options())
        .unwrap_err()
        .starts_with("entry 4: startedDateTime"));
    let mut relative = recording();
    relative["log"]["entries"][4]["request"]["url"] = json!("/openmrs/ws/rest/v1/patient");
    assert!(imported(&relative, &options())
        .unwrap_err()
        .starts_with("entry 5: request.url"));
    let only_static = json!({ "log": { "entries": [recording()["log"]["entries"][1].clone()] } });
    assert!(imported(&only_static, &options())
        .unwrap_err()
        .contains("--keep-static"));
}

#[test]
fn a_redirect_is_one_step_expecting_where_it_ended() {
    let rest = "/openmrs/ws/rest/v1";
    let mut moved = entry(
        0,
        "GET",
        &format!("{rest}/location"),
        json!([]),
        302,
        json!([{ "name": "Location", "value": format!("{rest}/location?v=default") }]),
    );
    moved["_resourceType"] = json!("document");
    let har = json!({ "log": { "entries": [
        moved,
        entry(60, "GET", &format!("{rest}/location?v=default"), json!([]), 200, json!({ "results": [] })),
        entry(1_000, "GET", "/healthz", json!([]), 304, Value::Null),
    ] } });
    let i = imported(&har, &options()).unwrap();
    assert_eq!(i.report.redirects_folded, 1);
    assert_eq!(i.sessions[0].len(), 2);
    assert_eq!(i.requests[0].statuses, [200]);
    // A 304 the browser's cache earned is a 200 without one.
    assert_eq!(i.requests[1].statuses, [200, 304]);
    assert_eq!(i.sessions[0][0].think_ms, 890);
}

#[test]
fn fhir_resources_lose_their_narrative_and_keep_their_codes() {
    let patient = json!({
        "resourceType": "Patient",
        "text": { "status": "generated", "div": "<div>Achieng Odhiambo</div>" },
        "identifier": [{ "system": "http://moh.go.ke/nupi", "value": "100HJK" }],
        "name": [{ "use": "official", "family": "Odhiambo", "given": ["Achieng"] }],
        "telecom": [{ "system": "phone", "value": "0712345678" }],
        "birthDate": "1987-03-14",
        "photo": [{ "contentType": "image/png", "data": "iVBORw0KGgo=" }],
        "gender": "female",
    });
    let e = with_body(
        entry(
            0,
            "POST",
            "/fhir/Patient",
            json!([{ "name": "Accept", "value": "application/fhir+json" }]),
            201,
            json!({ "resourceType": "Patient", "id": "17" }),
        ),
        "application/fhir+json",
        &patient.to_string(),
        None,
    );
    let read = entry(
        900,
        "GET",
        "/fhir/Patient/17",
        json!([]),
        200,
        json!({ "resourceType": "Patient", "id": "17" }),
    );
    let har = json!({ "log": { "entries": [e, read] } });
    let o = options();
    let i = imported(&har, &o).unwrap();
    let body: Value = serde_json::from_str(&i.bodies[0].1).unwrap();
    assert!(
        body.get("text").is_none() && body.get("photo").is_none(),
        "{body}"
    );
    assert_eq!(body["identifier"][0]["system"], "http://moh.go.ke/nupi");
    assert_eq!(body["name"][0]["use"], "official");
    assert_eq!(body["telecom"][0]["system"], "phone");
    assert_eq!(body["gender"], "female");
    assert!(
        matches!(&i.requests[0].body, BodyOut::JsonFile { content_type: Some(ct), .. } if ct == "application/fhir+json")
    );
    assert_eq!(i.requests[1].path, "/fhir/Patient/${patient_id}");
    let all = written(&i, &o);
    for seeded in ["Achieng", "Odhiambo", "100HJK", "0712345678", "1987-03-14"] {
        assert!(!all.contains(seeded), "{seeded}:\n{all}");
    }
}

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
