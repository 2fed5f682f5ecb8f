//! `surge import har` on a HAR a real headless Chromium recorded over the
//! DevTools protocol (`common::devtools`) while it drove a clinician's
//! visit (`fixtures/recorder/index.html`) through a real nginx in front of
//! the reference cluster: a login, a patient search and chart, an
//! identifier from idgen, a registration with the patient's name, birth
//! date, address and phone, a document upload from disk (whose bytes
//! Chromium leaves out of the HAR) and its read-back, a logout. Not one
//! seeded value is written or printed; the imported persona, replayed
//! through a fresh nginx, makes the same requests in the same order with
//! the same statuses, by nginx's own access log.

use crate::common::*;
use std::path::Path;
use surge_sim::ClusterOptions;

/// The patient and the secrets the recording carries; none may be written
/// or printed.
const SEEDED: &[&str] = &[
    "Achieng",
    "Odhiambo",
    "1987-03-14",
    "Moi Avenue",
    "Kisumu",
    "0712345678",
    "scan-of-wound",
    "left forearm",
    // admin:Admin123, as Basic credentials and as typed.
    "YWRtaW46QWRtaW4xMjM",
    "Admin123",
    // The patient searched for, as typed.
    "Karim",
];

/// Every file under `dir`, as text.
fn written(dir: &Path) -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(written(&path));
        } else {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            out.push((path, text));
        }
    }
    out
}

/// Each logged request's method, route (values masked) and status, in order.
fn requests(log: &str) -> Vec<(String, String, u16)> {
    let keep = Default::default();
    log.lines()
        .filter_map(|line| {
            let request = line.split('"').nth(1)?;
            let mut words = request.split_whitespace();
            let (method, target) = (words.next()?, words.next()?);
            let status: u16 = line
                .split('"')
                .nth(2)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            // The browser's own favicon fetch is no request of the page's.
            if target.ends_with(".ico") {
                return None;
            }
            let route = surge::import::route::route(method, target, &keep);
            Some((method.to_owned(), format!("{route:?}"), status))
        })
        .collect()
}

/// The logins (`GET` of the session resource) apart from the rest: the
/// replay's user logs in before its persona's first request.
fn without_login(requests: &[(String, String, u16)]) -> (usize, Vec<(String, String, u16)>) {
    let is_login = |(m, r, _): &(String, String, u16)| m == "GET" && r.contains("\"session\"");
    let logins = requests.iter().filter(|r| is_login(r)).count();
    (
        logins,
        requests.iter().filter(|r| !is_login(r)).cloned().collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_har_chromium_recorded_imports_scrubbed_and_replays_the_same_requests_and_statuses() {
    let _engine = engine_lock().await;
    let base = free_port_run(1);
    let cluster = cluster(ClusterOptions {
        replicas: 1,
        replica_port_base: Some(base),
        ..Default::default()
    })
    .await;
    let page = repo().join("fixtures/recorder");
    let recorded = nginx_with_page(&[base], "combined", &page)
        .await
        .expect("nginx (Debian's package) is installed: .ci/run installs it");
    let chromium = devtools::Chromium::start()
        .expect("chromium (Debian's package) is installed: .ci/run installs it");
    let dir = tempfile::tempdir().unwrap();
    // The document a nurse uploads: 30 000 bytes of a PDF, named after the patient.
    let scan = dir.path().join("scan-of-wound-Achieng-Odhiambo.pdf");
    let mut pdf = b"%PDF-1.4\n".to_vec();
    pdf.resize(30_000, b'x');
    std::fs::write(&scan, &pdf).unwrap();
    let (har, statuses) =
        devtools::record(&chromium, &format!("{}/openmrs/spa/", recorded.url), &scan).await;
    drop(chromium);
    assert_eq!(
        statuses, "200 200 200 200 201 201 200 204",
        "the visit as recorded"
    );
    let recorded_log = std::fs::read_to_string(recorded.file("access.log")).unwrap();
    drop(recorded);
    let har_file = dir.path().join("visit.har");
    std::fs::write(&har_file, serde_json::to_vec_pretty(&har).unwrap()).unwrap();
    let har_text = std::fs::read_to_string(&har_file).unwrap();
    // The recording does hold the patient (else the test proves nothing),
    // and not the file's bytes (Chromium leaves them out).
    for seeded in [
        "Achieng",
        "1987-03-14",
        "0712345678",
        "YWRtaW46QWRtaW4xMjM",
        "Karim",
    ] {
        assert!(har_text.contains(seeded), "{seeded} is in the recording");
    }
    assert!(
        !har_text.contains("xxxxxxxxxxxxxxxx"),
        "Chromium left the file's bytes out"
    );

    let out = dir.path().join("imported");
    let import = surge(&[
        "import",
        "har",
        har_file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--name",
        "visit",
    ]);
    let said = text(&import);
    assert_eq!(import.status.code(), Some(0), "{said}");
    for seeded in SEEDED {
        assert!(!said.contains(seeded), "{seeded} was printed:\n{said}");
    }
    for (path, text) in written(&out) {
        for seeded in SEEDED {
            assert!(
                !text.contains(seeded),
                "{seeded} was written in {path:?}:\n{text}"
            );
        }
    }
    for line in [
        // The tenth: the browser's favicon.
        "scrubbed: 8 of 10 entries kept as 8 requests in 1 recorded sessions (one persona each)",
        "scrubbed: left out: 1 static assets, 1 logins made by [auth] instead",
        "scrubbed: 4 values sent back from an earlier answer became 4 captures",
        "scrubbed: 1 dates replaced by synthetic values",
        "scrubbed: 1 free-text values replaced by synthetic text",
        "scrubbed: 1 uploaded files and raw bodies replaced by generated content of their type and size",
        "set SURGE_USER, SURGE_PASSWORD before running it",
    ] {
        assert!(said.contains(line), "{line}:\n{said}");
    }
    let scenario = std::fs::read_to_string(out.join("visit.toml")).unwrap();
    for wanted in [
        "kind = \"openmrs-basic\"",
        // The chart of the patient the search found, the registration's
        // identifier from idgen, the upload for the registered patient
        // and its read-back: each sends what an answer handed out.
        "path = \"/openmrs/ws/rest/v1/patient/${results_uuid}\"",
        "{ name = \"patient\", value = \"${patient_uuid}\" }",
        "path = \"/openmrs/ws/rest/v1/attachment/${attachment_uuid}/bytes\"",
        // The file Chromium left out: generated, of its size and type.
        "{ name = \"file\", generate = { kind = \"pdf\", size = \"30000B\" }, content_type = \"application/pdf\" }",
    ] {
        assert!(scenario.contains(wanted), "{wanted}:\n{scenario}");
    }
    let body = std::fs::read_dir(out.join("bodies"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .find(|b| b.contains("identifiers"))
        .expect("the registration's body");
    assert!(body.contains("\"identifier\": \"${identifier}\""), "{body}");
    assert!(
        body.contains("\"identifierType\": \"05a29f94-c0ed-11e2-94be-8c13b969e334\""),
        "{body}"
    );

    // The operator's one step: the search column holds patients their test
    // system has (the synthetic names are no one's, so no search finds them).
    let feeder = out.join("synthetic.csv");
    let csv = std::fs::read_to_string(&feeder).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let q = header
        .iter()
        .position(|c| *c == "q_name")
        .expect("the search's column");
    let filled: Vec<String> = csv
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let mut cells: Vec<&str> = line.split(',').collect();
            if i > 0 {
                cells[q] = "Rahim";
            }
            cells.join(",")
        })
        .collect();
    std::fs::write(&feeder, filled.join("\n") + "\n").unwrap();

    let replayed = nginx_with_page(&[base], "combined", &page).await.unwrap();
    let runs = dir.path().join("runs");
    let run = std::process::Command::new(surge_bin())
        .args([
            "run",
            out.join("visit.toml").to_str().unwrap(),
            "--target",
            &replayed.url,
        ])
        .args(["--no-progress", "--out", runs.to_str().unwrap()])
        .env("SURGE_USER", "admin")
        .env("SURGE_PASSWORD", "Admin123")
        .current_dir(repo())
        .output()
        .unwrap();
    let run_said = text(&run);
    assert_eq!(
        run.status.code(),
        Some(0),
        "the recorded statuses are expected: {run_said}"
    );
    let replay_log = std::fs::read_to_string(replayed.file("access.log")).unwrap();
    drop(replayed);
    cluster.shutdown().await;
    let (recorded_logins, recorded_rest) = without_login(&requests(&recorded_log));
    let (replay_logins, replay_rest) = without_login(&requests(&replay_log));
    // The replay logs in twice: once before the load (`surge run` tries
    // the credentials first), then the user's own.
    assert_eq!(
        (recorded_logins, replay_logins),
        (1, 2),
        "the logins:\n{recorded_log}\n{replay_log}"
    );
    assert_eq!(recorded_rest.len(), 8, "{recorded_log}");
    assert_eq!(
        replay_rest, recorded_rest,
        "the same requests, in order, with the same statuses:\n{recorded_log}\n---\n{replay_log}"
    );
}
