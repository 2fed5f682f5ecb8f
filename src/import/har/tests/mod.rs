//! The HAR import on recordings made in code: two clinicians' sessions as
//! Chromium records them (`recording()`), and the cases around it.

mod edges;

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
