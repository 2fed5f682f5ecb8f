//! Scenario files, good and broken: every broken file must fail with its
//! file, the line of the mistake, and a message saying what was expected.

use super::*;
use std::path::PathBuf;

/// Inputs `surge check` used to accept (issue 23).
mod inputs;

const GOOD: &str = r#"[scenario]
name = "t"

[target]
base_url = "http://127.0.0.1:8080"
replica_header = "X-Served-By"

[auth]
kind = "openmrs-basic"
username = "admin"
password = "pw"

[[feeders]]
name = "patient"
file = "patients.csv"

[load]
model = "open"
[[load.stages]]
rate = 5
ramp = "1s"
hold = "2s"

[[personas]]
name = "clinician"
weight = 2
steps = [
  { request = "search", think = "1s..2s" },
  { request = "open" },
]

[requests.search]
path = "/openmrs/ws/rest/v1/patient?q=${patient.given}"
capture = { pid = "results.0.uuid" }

[requests.open]
path = "/openmrs/ws/rest/v1/patient/${pid}"
expect = { status = [200] }

[thresholds]
"search.p95" = "< 800ms"
"errors.rate" = "< 1%"
"#;

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/under-test.toml")
}

/// Replaces `from` with `to` in the good file, loads it, and checks the error
/// is on the line holding `marker` and mentions `expected`.
fn broken(from: &str, to: &str, marker: &str, expected: &str) {
    assert!(
        GOOD.contains(from),
        "test setup: {from:?} not in the good file"
    );
    let text = GOOD.replacen(from, to, 1);
    let err = Scenario::from_text(&path(), &text).expect_err("a broken file must not load");
    let want_line = text
        .lines()
        .position(|l| l.contains(marker))
        .expect("marker in text")
        + 1;
    assert_eq!(err.file, path());
    assert_eq!(
        err.line,
        Some(want_line),
        "wrong line for {expected:?}: {err}"
    );
    assert!(
        err.message.contains(expected),
        "message {:?} lacks {expected:?}",
        err.message
    );
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("{}:{want_line}:", path().display())),
        "{shown}"
    );
}

#[test]
fn the_good_file_loads() {
    let s = Scenario::from_text(&path(), GOOD).unwrap();
    assert_eq!(s.personas[0].steps.len(), 2);
    assert_eq!(s.personas[0].steps[0].think.max, Duration::from_secs(2));
    assert_eq!(s.thresholds.len(), 2);
    assert_eq!(
        s.target.replica,
        ReplicaSource::Header("x-served-by".into())
    );
}

#[test]
fn every_shipped_scenario_loads() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(seen >= 1);
}

/// `[target] control` must name one of the scenario's requests; a good one
/// loads.
#[test]
fn a_control_request_that_is_not_a_request() {
    broken(
        "replica_header = \"X-Served-By\"",
        "replica_header = \"X-Served-By\"\ncontrol = \"healthz\"",
        "control =",
        "target.control names `healthz`, which is not a request",
    );
    let good = GOOD.replacen(
        "replica_header = \"X-Served-By\"",
        "replica_header = \"X-Served-By\"\ncontrol = \"search\"",
        1,
    );
    let s = Scenario::from_text(&path(), &good).unwrap();
    assert_eq!(s.target.control.as_deref(), Some("search"));
}

#[test]
fn unknown_field() {
    broken(
        "replica_header =",
        "replica_heder =",
        "replica_heder",
        "unknown field `replica_heder`",
    );
}

#[test]
fn bad_duration() {
    broken(
        "hold = \"2s\"",
        "hold = \"2 parsecs\"",
        "parsecs",
        "expected e.g. \"500ms\"",
    );
}

#[test]
fn step_names_an_undefined_request() {
    broken(
        "{ request = \"open\" }",
        "{ request = \"opne\" }",
        "opne",
        "not defined under [requests]",
    );
}

#[test]
fn unknown_auth_kind() {
    broken(
        "kind = \"openmrs-basic\"",
        "kind = \"saml\"",
        "saml",
        "unknown variant `saml`",
    );
}

#[test]
fn missing_feeder_file() {
    broken(
        "file = \"patients.csv\"",
        "file = \"nobody.csv\"",
        "nobody.csv",
        "cannot read feeder file",
    );
    let text = GOOD.replacen("file = \"patients.csv\"", "file = \"nobody.csv\"", 1);
    let err = Scenario::from_text(&path(), &text).unwrap_err();
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/nobody.csv");
    assert!(
        err.message
            .contains(&format!("(resolved to {})", folder.display())),
        "names where it looked: {err}"
    );
}

#[test]
fn threshold_with_the_wrong_unit() {
    broken("\"< 800ms\"", "\"< 80%\"", "80%", "expected a time unit");
}

#[test]
fn threshold_on_an_unknown_request() {
    broken(
        "\"search.p95\"",
        "\"serch.p95\"",
        "serch",
        "neither a request",
    );
}

#[test]
fn placeholder_for_a_missing_column() {
    broken(
        "${patient.given}",
        "${patient.nickname}",
        "[requests.search]",
        "has columns",
    );
}

#[test]
fn variable_nobody_captures() {
    broken(
        "${pid}",
        "${patient_id}",
        "[requests.open]",
        "no request captures `patient_id`",
    );
}

#[test]
fn two_bodies_in_one_request() {
    broken(
        "expect = { status = [200] }",
        "json = { a = 1 }\nform = { b = \"2\" }",
        "[requests.open]",
        "more than one body",
    );
}

#[test]
fn a_negative_rate() {
    broken(
        "rate = 5",
        "rate = -1",
        "rate = -1",
        "expected 0 (a quiet spell) up to at most 50000 arrivals per second",
    );
}

/// A stage of rate 0 is a quiet spell (a replayed log's empty minute);
/// a plan of nothing but quiet spells sends nothing, and is refused.
#[test]
fn a_plan_of_quiet_stages_only() {
    broken(
        "rate = 5",
        "rate = 0",
        "rate = 0",
        "every load stage has rate 0: nothing would arrive",
    );
    let quiet_between = GOOD.replacen(
        "rate = 5\nramp = \"1s\"\nhold = \"2s\"\n",
        "rate = 5\nramp = \"1s\"\nhold = \"2s\"\n[[load.stages]]\nrate = 0\nhold = \"1s\"\n[[load.stages]]\nrate = 5\nhold = \"1s\"\n",
        1,
    );
    assert_ne!(quiet_between, GOOD);
    let s = Scenario::from_text(&path(), &quiet_between).unwrap();
    let LoadPlan::Open { stages, .. } = &s.load else {
        panic!("open")
    };
    assert_eq!(
        stages.iter().map(|s| s.rate).collect::<Vec<_>>(),
        [5.0, 0.0, 5.0]
    );
}

#[test]
fn toml_syntax_error() {
    broken(
        "name = \"clinician\"",
        "name = \"clinician",
        "clinician",
        "",
    );
}

#[test]
fn a_weight_that_is_not_a_number() {
    broken("weight = 2", "weight = \"heavy\"", "heavy", "expected u32");
}

#[test]
fn unknown_load_model() {
    broken(
        "model = \"open\"",
        "model = \"half-open\"",
        "half-open",
        "unknown variant `half-open`",
    );
}

#[test]
fn think_time_running_backwards() {
    broken(
        "think = \"1s..2s\"",
        "think = \"3s..1s\"",
        "3s..1s",
        "runs backwards",
    );
}

#[test]
fn a_bad_placeholder() {
    broken(
        "${patient.given}",
        "${patient given}",
        "patient given",
        "bad placeholder",
    );
}

#[test]
fn an_unset_environment_variable() {
    broken(
        "password = \"pw\"",
        "password = \"${env:SURGE_TEST_SURELY_UNSET}\"",
        "SURGE_TEST_SURELY_UNSET",
        "is not set",
    );
}

#[test]
fn a_target_that_is_not_a_url() {
    broken(
        "base_url = \"http://127.0.0.1:8080\"",
        "base_url = \"127.0.0.1:8080\"",
        "base_url",
        "is not a URL",
    );
}

#[test]
fn an_auth_field_the_kind_does_not_use() {
    broken(
        "password = \"pw\"",
        "password = \"pw\"\ntoken = \"abc\"",
        "token = ",
        "not used by auth kind `openmrs-basic`",
    );
}

#[test]
fn an_auth_kind_missing_its_credentials() {
    broken(
        "kind = \"openmrs-basic\"",
        "kind = \"keycloak\"",
        "username",
        "not used by auth kind `keycloak`",
    );
    broken(
        "kind = \"openmrs-basic\"\nusername = \"admin\"\npassword = \"pw\"",
        "kind = \"bearer\"",
        "[auth]",
        "auth kind `bearer` needs `token`",
    );
}

#[test]
fn a_closed_stage_with_a_rate() {
    broken(
        "model = \"open\"",
        "model = \"closed\"",
        "[[load.stages]]",
        "closed model needs `users`",
    );
}

#[test]
fn no_file_no_panic() {
    let err = Scenario::load(Path::new("/nonexistent/x.toml")).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("/nonexistent/x.toml: cannot read scenario file"));
}

#[test]
fn overrides_replace_the_load() {
    let mut s = Scenario::from_text(&path(), GOOD).unwrap();
    s.apply_override(&LoadOverride {
        users: Some(4),
        duration: Some(Duration::from_secs(10)),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(s.load.model(), crate::bundle::LoadModel::Closed);
    assert_eq!(s.load.duration(), Duration::from_secs(10));
    s.apply_override(&LoadOverride {
        duration: Some(Duration::from_secs(20)),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        s.load.duration(),
        Duration::from_secs(20),
        "duration alone rescales the plan"
    );
    let err = s
        .apply_override(&LoadOverride {
            rate: Some(-1.0),
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        matches!(&err, OverrideError::Limit(why) if why.contains("more than 0")),
        "{err}"
    );
}

#[test]
fn credentials_in_the_base_url_never_reach_reports() {
    let text = GOOD.replace(
        "http://127.0.0.1:8080",
        "http://admin:s3cret@127.0.0.1:8080",
    );
    let s = Scenario::from_text(&path(), &text).unwrap();
    assert_eq!(s.target.display_url(), "http://127.0.0.1:8080");
}

#[test]
fn paging_links_are_rebased_onto_the_target() {
    assert_eq!(
        rebase_url(
            "https://lb.example.org",
            "http://hapi-0.hapi:8080/fhir?_getpages=a&_getpagesoffset=20"
        ),
        "https://lb.example.org/fhir?_getpages=a&_getpagesoffset=20"
    );
    assert_eq!(
        rebase_url(
            "https://lb.example.org/openmrs",
            "http://10.0.0.7:8080/openmrs/ws/rest/v1/patient?q=x&startIndex=50"
        ),
        "https://lb.example.org/openmrs/ws/rest/v1/patient?q=x&startIndex=50"
    );
    assert_eq!(
        rebase_url("http://127.0.0.1:1", "/fhir?_getpages=a"),
        "http://127.0.0.1:1/fhir?_getpages=a"
    );
}

#[test]
fn repeated_steps_name_a_capture_and_a_sensible_cap() {
    let good = GOOD.replace(
        r#"{ request = "open" },"#,
        r#"{ request = "open", for_each = "pid", max = 3 },"#,
    );
    let s = Scenario::from_text(&path(), &good).unwrap();
    assert_eq!(
        s.personas[0].steps[1].repeat,
        Repeat::ForEach {
            var: "pid".into(),
            max: 3
        }
    );
    broken(
        r#"{ request = "open" },"#,
        r#"{ request = "open", for_each = "hits" },"#,
        "for_each",
        "no request captures `hits`",
    );
    broken(
        r#"{ request = "open" },"#,
        r#"{ request = "open", while = "pid", max = 0 },"#,
        "while",
        "max = 0",
    );
    broken(
        r#"{ request = "open" },"#,
        r#"{ request = "open", for_each = "pid", while = "pid" },"#,
        "while",
        "not both",
    );
    broken(
        r#"{ request = "open" },"#,
        r#"{ request = "open", max = 2 },"#,
        "max",
        "only with for_each or while",
    );
    broken(
        r#"{ request = "open" },"#,
        r#"{ request = "open", forEach = "pid" },"#,
        "forEach",
        "unknown field",
    );
}

#[test]
fn a_capture_path_outside_the_path_language() {
    broken(
        r#"capture = { pid = "results.0.uuid" }"#,
        r#"capture = { pid = "results[0].uuid" }"#,
        "results[0].uuid",
        "for an array index write `results.0.uuid`",
    );
    let text = GOOD.replacen("results.0.uuid", "results[0].uuid", 1);
    let err = Scenario::from_text(&path(), &text).unwrap_err();
    let line = text.lines().find(|l| l.contains("results[0]")).unwrap();
    // The column is the path's own, not the table header's.
    assert_eq!(
        err.column,
        Some(line.find("\"results").unwrap() + 1),
        "{err}"
    );
    assert!(
        err.message.contains("`*` (every element)"),
        "names the accepted forms: {err}"
    );
}

#[test]
fn an_expectation_path_with_an_unclosed_bracket() {
    broken(
        "expect = { status = [200] }",
        r#"expect = { status = [200], json_equals = { "link.[relation=next" = "x" } }"#,
        "link.[relation=next",
        "`[` is never closed",
    );
}

/// `[verify] replicas`: a URL, or a table naming the value the replica
/// header gives for it; both load, and a mistake in either is refused at
/// the entry's own line.
#[test]
fn verify_replicas_are_urls_or_tables_with_the_name_they_answer_as() {
    let text = format!(
        "{GOOD}\n[verify]\nreplicas = [\n  \"http://127.0.0.1:9001/\",\n  {{ url = \"http://127.0.0.1:9002\", answers_as = \"hapi-1\" }},\n]\nbudget = 2.5\n"
    );
    let s = Scenario::from_text(&path(), &text).unwrap();
    assert_eq!(
        s.verify.replicas,
        [
            DirectReplica {
                url: "http://127.0.0.1:9001".into(),
                answers_as: None
            },
            DirectReplica {
                url: "http://127.0.0.1:9002".into(),
                answers_as: Some("hapi-1".into())
            },
        ]
    );
    assert_eq!(s.verify.budget, 2.5);
    assert_eq!(
        Scenario::from_text(&path(), GOOD).unwrap().verify.budget,
        1.0
    );
    let refused = |entries: &str, marker: &str, expected: &str| {
        let text = format!("{GOOD}\n[verify]\nreplicas = [\n{entries}\n]\n");
        let err = Scenario::from_text(&path(), &text).expect_err(entries);
        let line = text.lines().position(|l| l.contains(marker)).unwrap() + 1;
        assert_eq!(err.line, Some(line), "{err}");
        assert!(err.message.contains(expected), "{err}");
    };
    refused(
        "  { url = \"http://127.0.0.1:9001\", answers_as = \"a\" },\n  { url = \"http://127.0.0.1:9002\", answers_as = \"a\" },",
        "9002",
        "two replicas answer as \"a\"",
    );
    refused(
        "  \"http://127.0.0.1:9001\",\n  \"http://127.0.0.1:9001/\",",
        "9001/",
        "listed twice",
    );
    refused(
        "  \"ftp://127.0.0.1:9001\",",
        "ftp",
        "must be http or https",
    );
    refused(
        "  { url = \"http://127.0.0.1:9001\", answer_as = \"a\" },",
        "answer_as",
        "unknown field `answer_as`",
    );
    refused(
        "  { url = \"http://127.0.0.1:9001\", answers_as = \" \" },",
        "answers_as",
        "answers_as must be the replica header's or cookie's value",
    );
    let long = format!(
        "  {{ url = \"http://127.0.0.1:9001\", answers_as = \"{}\" }},",
        "é".repeat(101)
    );
    refused(&long, "answers_as", "1 to 100 characters");
    let at_limit = format!(
        "{GOOD}\n[verify]\nreplicas = [{{ url = \"http://127.0.0.1:9001\", answers_as = \"{}\" }}]\n",
        "é".repeat(100)
    );
    Scenario::from_text(&path(), &at_limit)
        .expect("100 characters (200 bytes) is within the limit");
    for out_of_range in ["101", "nan", "-1.0"] {
        let text = format!("{GOOD}\n[verify]\nbudget = {out_of_range}\n");
        let err = Scenario::from_text(&path(), &text).unwrap_err();
        assert!(
            err.message.contains("is out of range"),
            "{out_of_range}: {err}"
        );
    }
    let text = format!("{GOOD}\n[verify]\nbudget = 0\n");
    let err = Scenario::from_text(&path(), &text).unwrap_err();
    assert!(
        err.message.contains("verify.budget: 0 is out of range"),
        "{err}"
    );
    assert_eq!(
        err.line,
        text.lines()
            .position(|l| l.starts_with("budget"))
            .map(|i| i + 1)
    );
}

#[test]
fn a_replica_on_the_command_line_may_carry_its_name() {
    assert_eq!(
        DirectReplica::parse_arg("hapi-0=http://10.0.0.1:8080"),
        (Some("hapi-0"), "http://10.0.0.1:8080")
    );
    assert_eq!(
        DirectReplica::parse_arg("http://10.0.0.1:8080/?a=b"),
        (None, "http://10.0.0.1:8080/?a=b")
    );
}
