//! `surge import log` on the access logs of a real nginx (Debian's, its
//! predefined `combined` format) and a real HAProxy (`option httplog`) in
//! front of the reference cluster: the
//! traffic a clinic made — patient searches by name and birth date, reads
//! by UUID and by record number, with known counts second by second — is
//! imported, nothing of the seeded patient data reaches a written byte, and
//! the imported scenario replayed through the same nginx makes a second
//! access log with the same requests per route, exactly, and per second
//! (within a request at each second's edge: nginx logs a request when it
//! ends).

use crate::common::*;
use std::collections::BTreeMap;
use std::time::Duration;
use surge_sim::ClusterOptions;

/// Patient data the recorded traffic carries; none may be written.
const SEEDED: &[&str] = &[
    "Okonkwo",
    "Wanjiku",
    "1961-07-29",
    "MRN-778812",
    "3f2a9c4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b",
    "b81c0d2e-3f4a-4b5c-9d6e-7f8091a2b3c4",
    "884213907",
];

/// The clinic's requests per second: (path and query, how many).
fn second(n: usize) -> Vec<(&'static str, usize)> {
    match n {
        0 => vec![
            ("/openmrs/ws/fhir2/R4/Patient?name=Okonkwo&_count=10", 8),
            ("/fhir/Patient/3f2a9c4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b", 4),
            ("/static/app.js", 3),
        ],
        1 => vec![
            (
                "/openmrs/ws/fhir2/R4/Patient?name=Wanjiku&birthdate=1961-07-29",
                12,
            ),
            ("/fhir/Patient/b81c0d2e-3f4a-4b5c-9d6e-7f8091a2b3c4", 6),
            ("/fhir/Patient/884213907", 2),
        ],
        _ => vec![
            ("/openmrs/ws/fhir2/R4/Patient?identifier=MRN-778812", 5),
            ("/healthz", 3),
        ],
    }
}

/// Sends each second's requests within the first half of a wall-clock
/// second (nginx logs to the second).
async fn clinic_traffic(url: &str) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for n in 0..3 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        tokio::time::sleep(Duration::from_millis(
            1000 - u64::from(now.subsec_millis()) + 20,
        ))
        .await;
        for (target, times) in second(n) {
            for _ in 0..times {
                let _ = http.get(format!("{url}{target}")).send().await.unwrap();
            }
        }
    }
}

/// Requests per route class and per second of a combined access log.
fn log_counts(log: &str) -> (BTreeMap<&'static str, usize>, Vec<usize>) {
    let mut routes = BTreeMap::new();
    let mut seconds: BTreeMap<String, usize> = BTreeMap::new();
    for line in log.lines() {
        let target = line.split('"').nth(1).unwrap_or("");
        let class = if target.contains("R4/Patient?name=") {
            "search by name"
        } else if target.contains("R4/Patient?identifier=") {
            "search by identifier"
        } else if target.starts_with("GET /fhir/Patient/") {
            "read"
        } else if target.contains("/healthz") {
            "health"
        } else {
            "other"
        };
        *routes.entry(class).or_insert(0) += 1;
        let time = line
            .split('[')
            .nth(1)
            .and_then(|t| t.split(']').next())
            .unwrap_or("");
        *seconds.entry(time.to_owned()).or_insert(0) += 1;
    }
    (routes, seconds.into_values().collect())
}

/// `surge import log LOG --format FORMAT --out OUT --bucket 1s --name
/// NAME`: it succeeds, and no `seeded` value is in any byte it wrote or in
/// what it printed. What it printed.
fn import_scrubbed(
    log: &std::path::Path,
    format: &str,
    out: &std::path::Path,
    name: &str,
    seeded: &[&str],
) -> String {
    let done = surge(&[
        "import",
        "log",
        log.to_str().unwrap(),
        "--format",
        format,
        "--out",
        out.to_str().unwrap(),
        "--bucket",
        "1s",
        "--name",
        name,
    ]);
    let said = text(&done);
    assert_eq!(done.status.code(), Some(0), "{log:?}: {said}");
    for entry in std::fs::read_dir(out).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let written = String::from_utf8_lossy(&bytes);
        for seeded in seeded {
            assert!(
                !written.contains(seeded),
                "{log:?}: {seeded} was written:\n{written}"
            );
        }
    }
    for seeded in seeded {
        assert!(
            !said.contains(seeded),
            "{log:?}: {seeded} was printed:\n{said}"
        );
    }
    said
}

/// `surge import log` of `log` (in `format`) into `dir/imported`, checked:
/// no seeded value written or printed, the scrub report's counts, the
/// routes' templates, and `surge check` passing. The folder it wrote.
fn import_checked(dir: &std::path::Path, log: &str, format: &str) -> std::path::PathBuf {
    let log_file = dir.join("access.log");
    std::fs::write(&log_file, log).unwrap();
    let out = dir.join("imported");
    let said = import_scrubbed(&log_file, format, &out, "clinic", SEEDED);
    assert!(
        said.contains("scrubbed: 40 requests on 6 routes kept; 3 static assets left out"),
        "{said}"
    );
    for counted in [
        "10 UUIDs",
        "2 numeric ids",
        "12 dates",
        "20 names",
        "5 other identifiers",
    ] {
        assert!(
            said.contains(&format!(
                "scrubbed: {counted} in paths and queries replaced by synthetic values"
            )),
            "{counted}: {said}"
        );
    }
    let scenario = std::fs::read_to_string(out.join("clinic.toml")).unwrap();
    assert!(
        scenario
            .contains("path = \"/openmrs/ws/fhir2/R4/Patient?name=${synthetic.name}&_count=10\""),
        "{scenario}"
    );
    assert!(
        scenario.contains("path = \"/fhir/Patient/${synthetic.patient_uuid}\""),
        "{scenario}"
    );
    let check = surge(&["check", out.join("clinic.toml").to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    out
}

/// HAProxy's `option httplog` (raw, to stdout), which logs when each
/// request began to the millisecond: the same import, its three seconds'
/// stages exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_haproxy_log_imports_scrubbed_with_its_seconds_exact() {
    let _engine = engine_lock().await;
    let base = free_port_run(1);
    let recorded = haproxy_logging(base, 1, false, true)
        .await
        .expect("haproxy (Debian's package) is installed: .ci/run installs it");
    let cluster = cluster(ClusterOptions {
        replicas: 1,
        replica_port_base: Some(base),
        ..Default::default()
    })
    .await;
    clinic_traffic(&recorded.url).await;
    // HAProxy writes its line as a request ends; give the last one a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = std::fs::read_to_string(recorded.file("access.log")).unwrap();
    drop(recorded);
    cluster.shutdown().await;
    let dir = tempfile::tempdir().unwrap();
    let out = import_checked(dir.path(), &log, "haproxy");
    let scenario = std::fs::read_to_string(out.join("clinic.toml")).unwrap();
    assert!(
        scenario.contains("[[load.stages]]\nrate = 12\nhold = \"1000ms\"\n[[load.stages]]\nrate = 20\nhold = \"1000ms\"\n[[load.stages]]\nrate = 8\nhold = \"1000ms\"\n"),
        "{scenario}\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nginx_log_imports_scrubbed_and_replays_its_routes_and_seconds() {
    let _engine = engine_lock().await;
    let base = free_port_run(1);
    let recorded = nginx_logging(&[base], None, "combined")
        .await
        .expect("nginx (Debian's package) is installed: .ci/run installs it");
    let cluster = cluster(ClusterOptions {
        replicas: 1,
        replica_port_base: Some(base),
        ..Default::default()
    })
    .await;
    clinic_traffic(&recorded.url).await;
    let log = std::fs::read_to_string(recorded.file("access.log")).unwrap();
    drop(recorded);

    let dir = tempfile::tempdir().unwrap();
    let out = import_checked(dir.path(), &log, "nginx");
    // The replay through a fresh nginx, its log against the original.
    let replayed = nginx_logging(&[base], None, "combined").await.unwrap();
    let runs = dir.path().join("runs");
    // Begun 50 ms before a whole second: each 1 s stage's arrivals fall
    // inside one wall-clock second, as nginx logs them.
    let start = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(3))
        .unwrap()
        .round(jiff::Unit::Second)
        .unwrap()
        .checked_sub(jiff::SignedDuration::from_millis(50))
        .unwrap();
    let run = surge(&[
        "run",
        out.join("clinic.toml").to_str().unwrap(),
        "--target",
        &replayed.url,
        "--no-progress",
        "--out",
        runs.to_str().unwrap(),
        "--start-at",
        &start.to_string(),
    ]);
    let run_said = text(&run);
    assert_eq!(
        run.status.code(),
        Some(0),
        "the recorded statuses are expected: {run_said}"
    );
    let replay_log = std::fs::read_to_string(replayed.file("access.log")).unwrap();
    drop(replayed);
    cluster.shutdown().await;
    let (original_routes, original_seconds) = log_counts(&log);
    let (replay_routes, replay_seconds) = log_counts(&replay_log);
    let mut without_static = original_routes.clone();
    *without_static.get_mut("other").unwrap() -= 3;
    without_static.retain(|_, n| *n > 0);
    assert_eq!(replay_routes, without_static, "per route:\n{replay_log}");
    assert_eq!(original_seconds, vec![15, 20, 8]);
    // Within a request of each second at the seconds' edges (a request
    // logged when it ends), the same in all.
    assert_eq!(replay_seconds.iter().sum::<usize>(), 40, "{replay_log}");
    for (replay, original) in replay_seconds.iter().zip([12usize, 20, 8]) {
        assert!(
            replay.abs_diff(original) <= 1,
            "per second {replay_seconds:?}:\n{replay_log}"
        );
    }
}

/// Traefik's access log, JSON and common log, written from Traefik's
/// documented format (`fixtures/logs/traefik-access.*`; the patients in
/// them are invented): the session cookie Traefik kept is never written,
/// a POST the log held no body for sends a placeholder that `surge check`
/// names, OPTIONS and static assets are left out.
#[test]
fn a_traefik_log_imports_in_both_of_its_formats() {
    for file in ["traefik-access.json", "traefik-access.log"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("imported");
        let log = repo().join("fixtures/logs").join(file);
        let seeded = [
            "Okonkwo",
            "Wanjiku",
            "MRN-778812",
            "3f2a9c4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b",
            "SECRETSESSION42",
            "10.1.2.3",
        ];
        let said = import_scrubbed(&log, "traefik", &out, "emr", &seeded);
        assert!(
            said.contains("scrubbed: 5 requests on 4 routes kept; 1 static assets left out"),
            "{file}: {said}"
        );
        assert!(
            said.contains("scrubbed: 1 requests with a method a scenario does not send"),
            "{file}: {said}"
        );
        assert!(said.contains("warning: 1 routes send"), "{file}: {said}");
        let scenario = std::fs::read_to_string(out.join("emr.toml")).unwrap();
        if file.ends_with(".json") {
            // The JSON log kept the session cookie: its five requests are
            // one clinician's session, one arrival taking their path with
            // the pauses between them.
            assert!(
                said.contains("scrubbed: 1 sessions of two requests or more followed (by their session cookie or client, never written): 1 distinct paths"),
                "{file}: {said}"
            );
            assert!(
                scenario.contains("[[load.stages]]\nrate = 1\nhold = \"1000ms\"\n\n"),
                "{file}: {scenario}"
            );
            assert!(
                scenario.contains("name = \"session_1\"\nweight = 1\nsteps = [\n  { request = \"get_openmrs_ws_rest_v1_patient\", think = \"0ms\" },\n  { request = \"get_openmrs_ws_rest_v1_patient_id\", think = \"1000ms\" },"),
                "{file}: {scenario}"
            );
        } else {
            assert!(
                scenario.contains("[[load.stages]]\nrate = 2\nhold = \"2000ms\"\n[[load.stages]]\nrate = 1\nhold = \"1000ms\"\n"),
                "{file}: {scenario}"
            );
        }
        assert!(
            scenario.contains("path = \"/openmrs/ws/rest/v1/patient?q=${synthetic.q}&v=default\""),
            "{file}: {scenario}"
        );
        assert!(
            scenario.contains("body_template = \"placeholder-body.txt\""),
            "{file}: {scenario}"
        );
        let check = surge(&["check", out.join("emr.toml").to_str().unwrap()]);
        let checked = text(&check);
        assert_eq!(check.status.code(), Some(0), "{checked}");
        assert!(
            checked.contains("warning: request `post_openmrs_ws_rest_v1_visit` sends placeholder-body.txt, the placeholder surge import wrote"),
            "{checked}"
        );
    }
}

/// A log's FHIR creates carry no body: each sends a synthetic resource of
/// the type its path names (valid R4, `src/import/fhir.rs` checks it with a
/// strict model), its person from the feeder, and the reference cluster
/// stores every one (201, as recorded) — no placeholder, no warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logs_fhir_creates_send_synthetic_resources_the_cluster_stores() {
    let _engine = engine_lock().await;
    let cluster = cluster(ClusterOptions {
        replicas: 1,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let line = |path: &str, status: u16| {
        format!("127.0.0.1 - - [07/Dec/2026:10:00:00 +0000] \"POST {path} HTTP/1.1\" {status} 310 \"-\" \"HAPI-FHIR/8.8.0 (FHIR Client)\"\n")
    };
    let text_of_log: String = [
        line("/fhir/Patient", 201),
        line("/fhir/Patient", 201),
        line("/fhir/Observation", 201),
        line("/fhir/Encounter", 201),
    ]
    .concat();
    std::fs::write(&log, text_of_log).unwrap();
    let out = dir.path().join("imported");
    let said = import_scrubbed(&log, "nginx", &out, "writes", &[]);
    assert!(!said.contains("warning"), "{said}");
    let scenario = std::fs::read_to_string(out.join("writes.toml")).unwrap();
    for file in [
        "fhir-Patient.json",
        "fhir-Observation.json",
        "fhir-Encounter.json",
    ] {
        assert!(
            scenario.contains(&format!(
                "json_file = \"{file}\"\ncontent_type = \"application/fhir+json\""
            )),
            "{file}:\n{scenario}"
        );
        assert!(out.join(file).exists());
    }
    let patient = std::fs::read_to_string(out.join("fhir-Patient.json")).unwrap();
    assert!(
        patient.contains("\"family\": \"${synthetic.fhir_family}\""),
        "{patient}"
    );
    let check = surge(&["check", out.join("writes.toml").to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    assert!(!text(&check).contains("placeholder"), "{}", text(&check));
    let runs = dir.path().join("runs");
    let run = surge(&[
        "run",
        out.join("writes.toml").to_str().unwrap(),
        "--target",
        &cluster.url,
        "--no-progress",
        "--out",
        runs.to_str().unwrap(),
    ]);
    let run_said = text(&run);
    cluster.shutdown().await;
    assert_eq!(run.status.code(), Some(0), "{run_said}");
    assert!(
        run_said.contains("requests: 4 issued = 4 succeeded"),
        "{run_said}"
    );
}

/// Sessions in a real nginx's JSON log (`$cookie_JSESSIONID` logged): two
/// clinicians take the same path (health, metrics, health), one only
/// checks health, and two requests carry no cookie. The import makes one
/// persona per path, weighted by the sessions that took it, its arrivals
/// the sessions begun; no cookie is written; the replay through a fresh
/// nginx makes the same requests per route, exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logs_sessions_become_personas_by_their_path() {
    let _engine = engine_lock().await;
    let base = free_port_run(1);
    let cluster = cluster(ClusterOptions {
        replicas: 1,
        replica_port_base: Some(base),
        ..Default::default()
    })
    .await;
    let format = "sessions escape=json '{\"msec\":\"$msec\",\"request_time\":\"$request_time\",\"request\":\"$request\",\"status\":\"$status\",\"remote_addr\":\"$remote_addr\",\"cookie_JSESSIONID\":\"$cookie_JSESSIONID\"}'";
    let recorded = nginx_logging(&[base], None, format)
        .await
        .expect("nginx (Debian's package) is installed: .ci/run installs it");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let get = |path: &str, cookie: Option<&str>| {
        let mut request = http.get(format!("{}{path}", recorded.url));
        if let Some(c) = cookie {
            request = request.header("Cookie", format!("theme=dark; JSESSIONID={c}"));
        }
        request.send()
    };
    for session in ["SESSIONONE7", "SESSIONTWO8"] {
        get("/healthz", Some(session)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        get("/actuator/prometheus", Some(session)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        get("/healthz", Some(session)).await.unwrap();
    }
    get("/healthz", Some("SESSIONTHREE9")).await.unwrap();
    get("/healthz", None).await.unwrap();
    get("/healthz", None).await.unwrap();
    let log = std::fs::read_to_string(recorded.file("access.log")).unwrap();
    drop(recorded);
    let dir = tempfile::tempdir().unwrap();
    let log_file = dir.path().join("access.log");
    std::fs::write(&log_file, &log).unwrap();
    let out = dir.path().join("imported");
    let said = import_scrubbed(
        &log_file,
        "nginx",
        &out,
        "sessions",
        &["SESSIONONE7", "SESSIONTWO8", "SESSIONTHREE9", "theme"],
    );
    assert!(
        said.contains("scrubbed: 2 sessions of two requests or more followed (by their session cookie or client, never written): 1 distinct paths"),
        "{said}"
    );
    let scenario = std::fs::read_to_string(out.join("sessions.toml")).unwrap();
    assert!(
        scenario.contains("[[personas]]\nname = \"get_healthz\"\nweight = 3\n"),
        "{scenario}"
    );
    assert!(
        scenario.contains("# 2 sessions took this path.\n[[personas]]\nname = \"session_1\"\nweight = 2\nsteps = [\n  { request = \"get_healthz\", think = \"3"),
        "{scenario}"
    );
    let replayed = nginx_logging(&[base], None, format).await.unwrap();
    let runs = dir.path().join("runs");
    let run = surge(&[
        "run",
        out.join("sessions.toml").to_str().unwrap(),
        "--target",
        &replayed.url,
        "--no-progress",
        "--out",
        runs.to_str().unwrap(),
    ]);
    let run_said = text(&run);
    assert_eq!(run.status.code(), Some(0), "{run_said}");
    let replay_log = std::fs::read_to_string(replayed.file("access.log")).unwrap();
    drop(replayed);
    cluster.shutdown().await;
    let per_route = |log: &str| {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for line in log.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            *counts
                .entry(v["request"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        counts
    };
    assert_eq!(
        per_route(&replay_log),
        per_route(&log),
        "{log}\n---\n{replay_log}"
    );
    assert!(run_said.contains("arrivals: 5 scheduled"), "{run_said}");
}
