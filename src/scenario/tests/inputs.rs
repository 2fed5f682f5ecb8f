//! Inputs `surge check` used to accept (issue 23): each refused at the
//! key it is about, and a healthy file close to it still accepted.

use super::*;

fn loads(text: &str) -> Scenario {
    Scenario::from_text(&path(), text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The error's column is where `needle` is written on the marker's line.
fn column_of(text: &str, marker: &str, needle: &str) -> Option<usize> {
    let line = text.lines().find(|l| l.contains(marker)).unwrap();
    Some(line[..line.find(needle).unwrap()].chars().count() + 1)
}

const SECOND_PERSONA: &str = "[requests.search]";

#[test]
fn two_personas_with_one_name() {
    let twice = "[[personas]]\nname = \"clinician\"  # again\nsteps = [{ request = \"search\" }]\n\n[requests.search]";
    broken(
        SECOND_PERSONA,
        twice,
        "# again",
        "persona `clinician` is defined twice",
    );
    let text = GOOD.replacen(SECOND_PERSONA, twice, 1);
    let err = Scenario::from_text(&path(), &text).unwrap_err();
    assert_eq!(
        err.column,
        column_of(&text, "# again", "\"clinician\""),
        "{err}"
    );
    // Another name is another persona.
    let s = loads(&GOOD.replacen(
        SECOND_PERSONA,
        &twice.replace("\"clinician\"", "\"registrar\""),
        1,
    ));
    assert_eq!(s.personas.len(), 2);
}

#[test]
fn a_value_captured_only_by_a_later_step() {
    let swapped = "{ request = \"open\" },\n  { request = \"search\", think = \"1s..2s\" },";
    let steps = "{ request = \"search\", think = \"1s..2s\" },\n  { request = \"open\" },";
    broken(
        steps,
        swapped,
        "{ request = \"open\" }",
        "persona `clinician` step 1 sends `open`, which uses `${pid}`, but no earlier step of `clinician` captures `pid` (it is captured only at this step or later: step 2 (`search`))",
    );
    let text = GOOD.replacen(steps, swapped, 1);
    let err = Scenario::from_text(&path(), &text).unwrap_err();
    assert_eq!(
        err.column,
        column_of(&text, "{ request = \"open\" }", "\"open\"")
    );
    // Another persona that sends `open` without searching first.
    broken(
        SECOND_PERSONA,
        "[[personas]]\nname = \"registrar\"\nsteps = [{ request = \"open\", think = \"1s\" }]\n\n[requests.search]",
        "request = \"open\", think",
        "only `search` captures it, which `registrar` never sends",
    );
    // Sending `open` again after the search is fine, and so is a repeat
    // over what the search found.
    let s = loads(&GOOD.replacen(
        steps,
        "{ request = \"search\" },\n  { request = \"open\" },\n  { request = \"open\", for_each = \"pid\" },\n  { request = \"search\" },",
        1,
    ));
    assert_eq!(s.personas[0].steps.len(), 4);
}

#[test]
fn a_repeat_over_a_value_no_earlier_step_captured() {
    let steps = "{ request = \"search\", think = \"1s..2s\" },\n  { request = \"open\" },";
    for (repeat, key) in [
        ("for_each = \"pid\"", "for_each"),
        ("while = \"pid\"", "while"),
    ] {
        broken(
            steps,
            &format!("{{ request = \"open\", {repeat} }},\n  {{ request = \"search\" }},"),
            repeat,
            &format!("{key} = \"pid\" needs `pid` captured by an earlier step of `clinician`"),
        );
    }
    // Paging: the search captures the first `next` link, and the page
    // request re-captures it for the next round.
    let paging = GOOD
        .replacen(
            steps,
            "{ request = \"search\" },\n  { request = \"page\", while = \"next\", max = 3 },",
            1,
        )
        .replacen(
            "capture = { pid = \"results.0.uuid\" }",
            "capture = { pid = \"results.0.uuid\", next = \"links.[rel=next].uri\" }\n\n[requests.page]\npath = \"${next}\"\nrebase = true\ncapture = { next = \"links.[rel=next].uri\" }",
            1,
        );
    let s = loads(&paging);
    assert!(matches!(
        s.personas[0].steps[1].repeat,
        Repeat::While { .. }
    ));
    // A page request that only its own answer could start is never sent.
    let own = paging.replacen("{ request = \"search\" },\n", "", 1);
    let err = Scenario::from_text(&path(), &own).unwrap_err();
    assert!(
        err.message.contains("while = \"next\" needs `next`"),
        "{err}"
    );
}

#[test]
fn captures_in_a_circle() {
    let text = GOOD
        .replacen("${patient.given}\"", "${patient.given}&t=${tok}\"", 1)
        .replacen(
            "expect = { status = [200] }",
            "expect = { status = [200] }\ncapture = { tok = \"token\" }",
            1,
        );
    let err = Scenario::from_text(&path(), &text).unwrap_err();
    assert!(
        err.message.contains("captures depend on each other in a circle: `open` uses `${pid}`, which only `search` captures; `search` uses `${tok}`, which only `open` captures"),
        "{err}"
    );
    // At the placeholder, where `open` writes it.
    let line = text
        .lines()
        .position(|l| l.contains("patient/${pid}"))
        .unwrap()
        + 1;
    assert_eq!(
        (err.line, err.column),
        (Some(line), column_of(&text, "patient/${pid}", "${pid}"))
    );
    // A request that needs only its own capture is a circle of one.
    let own = GOOD
        .replacen(
            "[requests.open]\n",
            "[requests.open]\ncapture = { pid = \"uuid\" }\n",
            1,
        )
        .replacen("capture = { pid = \"results.0.uuid\" }", "", 1);
    let err = Scenario::from_text(&path(), &own).unwrap_err();
    assert!(
        err.message.contains(
            "`open` uses `${pid}`, which only `open` captures: it can never be sent the first time"
        ),
        "{err}"
    );
    // A read-back may use the request's own capture: it is rendered after the answer.
    let upload = GOOD.replacen(
        "expect = { status = [200] }",
        "method = \"POST\"\ngenerate = { kind = \"pdf\", size = \"1KiB\" }\ncapture = { doc = \"uuid\" }\nconsistency = { id = \"uuid\", read = \"/docs/${doc}/bytes?v=${id}&p=${pid}\" }",
        1,
    );
    loads(&upload);
    // `${id}` is the stored object's id in the read-back path only.
    let early = upload.replacen(
        "path = \"/openmrs/ws/rest/v1/patient/${pid}\"",
        "path = \"/docs/${id}\"",
        1,
    );
    let err = Scenario::from_text(&path(), &early).unwrap_err();
    assert!(err.message.contains("no request captures `id`"), "{err}");
}

#[test]
fn a_path_that_does_not_start_with_a_slash() {
    let good_path = "path = \"/openmrs/ws/rest/v1/patient/${pid}\"";
    for bad in [
        "openmrs/ws/rest/v1/patient/${pid}",
        "",
        "${uuid}/x",
        "HTTP://127.0.0.1:8080/x",
        "?q=${pid}",
    ] {
        let to = format!("path = {bad:?}");
        broken(good_path, &to, &to, "does not start with `/`");
    }
    broken(
        "expect = { status = [200] }",
        "method = \"POST\"\ngenerate = { kind = \"pdf\" }\nconsistency = { id = \"uuid\", read = \"docs/${id}\" }",
        "consistency =",
        "request `open`: consistency.read \"docs/${id}\" does not start with `/`",
    );
    // A path from the root, a full URL, or a placeholder that renders to either.
    for fine in [
        "/",
        "//cdn.example.org/x",
        "https://fhir.example.org/fhir/Patient/${pid}",
        "http://127.0.0.1:8080/x",
        "${pid}",
        "${patient.uuid}/x",
    ] {
        loads(&GOOD.replacen(good_path, &format!("path = {fine:?}"), 1));
    }
}

#[test]
fn a_path_from_the_environment_is_not_shown() {
    let t = Template::parse_with("secret-host/x", |_| None).unwrap();
    assert!(check_path("p", &t)
        .unwrap_err()
        .contains("\"secret-host/x\""));
    let t = Template::parse_with("${env:BASE}/x", |_| Some("s3cret".into())).unwrap();
    let e = check_path("request `a`: path", &t).unwrap_err();
    assert!(
        !e.contains("s3cret") && e.contains("does not start with `/`"),
        "{e}"
    );
}

#[test]
fn tls_verify_false_is_a_warning_at_its_place() {
    let text = GOOD.replacen(
        "replica_header = \"X-Served-By\"",
        "replica_header = \"X-Served-By\"\ntls_verify = false",
        1,
    );
    let s = loads(&text);
    assert!(!s.target.tls_verify);
    let [w] = &s.warnings[..] else {
        panic!("{:?}", s.warnings)
    };
    let line = text.lines().position(|l| l.contains("tls_verify")).unwrap() + 1;
    assert_eq!((w.line, w.column), (Some(line), Some(14)));
    assert!(w.to_string().contains(&format!("under-test.toml:{line}:14: warning: tls_verify = false: TLS certificates will not be verified")), "{w}");
    for quiet in [
        GOOD.to_owned(),
        text.replace("tls_verify = false", "tls_verify = true"),
    ] {
        let s = loads(&quiet);
        assert!(s.target.tls_verify && s.warnings.is_empty());
    }
}

#[test]
fn refusals_point_at_the_key_not_the_table() {
    let long = format!("name = \"{}\"", "x".repeat(150));
    broken("name = \"t\"", &long, "name = \"xxx", "1 to 100 characters");
    broken(
        "name = \"t\"",
        "name = \" \"",
        "name = \" \"",
        "1 to 100 characters",
    );
    let chaos = |namespace: &str, at: &str| {
        format!("[kubernetes]\nnamespace = \"{namespace}\"\nselector = \"app=clinic\"\n\n[chaos]\n[[chaos.actions]]\naction = \"kill-pod\"\nat = \"1s\"\n[[chaos.actions]]\naction = \"kill-pod\"\n{at}\n\n[thresholds]")
    };
    broken(
        "[thresholds]",
        &chaos("kube-system", "at = \"2s\""),
        "namespace =",
        "namespace `kube-system` is refused",
    );
    broken(
        "[thresholds]",
        &chaos("clinic", "at = \"10m\""),
        "at = \"10m\"",
        "after the load ends",
    );
    broken(
        "[thresholds]",
        &chaos("clinic", "every = \"1m\""),
        "every = \"1m\"",
        "after the load ends",
    );
    broken(
        "[thresholds]",
        &chaos("clinic", "every = \"1s\"\nfrom = \"1h\""),
        "from = \"1h\"",
        "after the load ends",
    );
    // A missing selector is the table's fault: it lacks the key.
    broken(
        "[thresholds]",
        &chaos("clinic", "at = \"2s\"").replace("selector = \"app=clinic\"\n", ""),
        "[kubernetes]",
        "no label selector",
    );
    // So is it with a system namespace: the rule that refused is the
    // selector's, and the namespace line is not where the mistake is.
    broken(
        "[thresholds]",
        &chaos("kube-system", "at = \"2s\"").replace("selector = \"app=clinic\"\n", ""),
        "[kubernetes]",
        "no label selector",
    );
    loads(&GOOD.replacen("[thresholds]", &chaos("clinic", "every = \"1s\""), 1));
}

#[test]
fn content_type_goes_with_every_body_but_multipart() {
    let at = "expect = { status = [200] }";
    let with = |body: &str| {
        format!("method = \"POST\"\n{body}\ncontent_type = \"application/fhir+json\"\n{at}")
    };
    let header = |s: &Scenario| {
        let open = s.requests.iter().find(|r| r.name == "open").unwrap();
        let ct: Vec<_> = open
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.render_static().unwrap())
            .collect();
        (ct, open.body.clone())
    };
    for body in [
        "json = { resourceType = \"Patient\" }",
        "form = { a = \"${pid}\" }",
    ] {
        let s = loads(&GOOD.replacen(at, &with(body), 1));
        assert_eq!(header(&s).0, ["application/fhir+json"], "{body}");
    }
    let s = loads(&GOOD.replacen(
        at,
        &with("generate = { kind = \"bin\", size = \"1KiB\" }"),
        1,
    ));
    let (headers, body) = header(&s);
    assert!(headers.is_empty());
    let Body::Generated { content } = body else {
        panic!("{body:?}")
    };
    assert_eq!(content.content_type(), "application/fhir+json");
    // Refused: on multipart, without a body, beside a Content-Type header,
    // not a header value; a Content-Type header surge would send twice.
    let marker = "content_type =";
    broken(
        at,
        &with("multipart = [{ name = \"a\", value = \"b\" }]"),
        marker,
        "content_type does not apply to a multipart body",
    );
    broken(at, &with(""), marker, "this request has no body");
    broken(
        at,
        &with("json = { a = 1 }\nheaders = { \"content-type\" = \"x/y\" }"),
        marker,
        "give content_type or a `content-type` header, not both",
    );
    broken(
        at,
        &with("json = { a = 1 }").replace("fhir+json", "json\\n"),
        marker,
        "is not a header value",
    );
    broken(
        at,
        "headers = { Content-Type = \"application/pdf\" }\ngenerate = { kind = \"pdf\" }",
        "headers =",
        "would be sent twice",
    );
    broken(
        at,
        "headers = { Content-Type = \"x/y\" }\nmultipart = [{ name = \"a\", value = \"b\" }]",
        "headers =",
        "carries its part boundary",
    );
    // A Content-Type header on a JSON body is what reqwest sends (its own
    // application/json only fills in a missing one), as content_type does.
    loads(&GOOD.replacen(
        at,
        "headers = { Content-Type = \"application/fhir+json\" }\njson = { a = 1 }",
        1,
    ));
}

/// What the engine relies on: a JSON or form body keeps a Content-Type
/// header set before it, and the header is sent once.
#[test]
fn reqwest_keeps_a_content_type_set_before_a_json_or_form_body() {
    let client = reqwest::Client::new();
    let ct = reqwest::header::CONTENT_TYPE;
    let json = client
        .post("http://127.0.0.1:1/")
        .header("Content-Type", "application/fhir+json")
        .json(&serde_json::json!({"a": 1}))
        .build()
        .unwrap();
    let form = client
        .post("http://127.0.0.1:1/")
        .header(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=UTF-8",
        )
        .form(&[("a", "b")])
        .build()
        .unwrap();
    for (request, want) in [
        (json, "application/fhir+json"),
        (form, "application/x-www-form-urlencoded; charset=UTF-8"),
    ] {
        let values: Vec<_> = request.headers().get_all(&ct).iter().collect();
        assert_eq!(values, [want]);
    }
}

#[test]
fn a_bytes_check_needs_generated_content_and_a_search_or_status_does_not() {
    let create = |compare: &str| {
        GOOD.replacen(
            "[requests.open]",
            &format!(
                "[requests.create]\nmethod = \"POST\"\npath = \"/fhir/Patient\"\n\
                 json = {{ resourceType = \"Patient\" }}\n\
                 consistency = {{ id = \"id\", read = \"/fhir/Patient?_id=${{id}}\"{compare} }}\n\n\
                 [requests.open]"
            ),
            1,
        )
        .replacen(
            "{ request = \"open\" },",
            "{ request = \"open\" },\n  { request = \"create\" },",
            1,
        )
    };
    let said = Scenario::from_text(&path(), &create("")).unwrap_err();
    assert!(said.message.contains("compare generated content"), "{said}");
    for (compare, rule) in [
        (", compare = \"search\"", Compare::Search),
        (", compare = \"status\"", Compare::Status),
    ] {
        let s = loads(&create(compare));
        let spec = s.requests.iter().find(|r| r.name == "create").unwrap();
        assert_eq!(spec.consistency.as_ref().unwrap().rule.compare, rule);
    }
    let said = Scenario::from_text(&path(), &create(", compare = \"rows\"")).unwrap_err();
    assert!(
        said.message
            .contains("expected \"bytes\", \"status\" or \"search\""),
        "{said}"
    );
}
