//! `surge import` on input it must refuse, and on a HAR as Firefox writes
//! it: every refusal names the file, the line (or the entry) and what was
//! expected, exits 2, writes nothing and never prints a recorded value;
//! Firefox's recording imports with the file bytes it holds never written.

use crate::common::*;
use std::path::Path;

/// A recorded value seeded into bad input: it must never be printed.
const SEEDED: &str = "Wanjiku";

/// Runs `surge import ARGS`; asserts it refused (exit 2), wrote nothing
/// into `out` and printed no seeded value; what it said.
fn refused(args: &[&str], out: &Path) -> String {
    let done = surge(&[&["import"], args].concat());
    let said = text(&done);
    assert_eq!(done.status.code(), Some(2), "{args:?}: {said}");
    assert!(
        !said.contains(SEEDED),
        "{args:?} printed a recorded value: {said}"
    );
    assert!(!said.contains("panicked"), "{said}");
    assert!(
        !out.exists() || std::fs::read_dir(out).unwrap().next().is_none(),
        "{args:?} wrote into {out:?}"
    );
    said
}

#[test]
fn bad_flags_are_refused_with_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let log = dir.path().join("access.log");
    std::fs::write(
        &log,
        "127.0.0.1 - - [07/Dec/2026:10:00:00 +0000] \"GET /healthz HTTP/1.1\" 200 2 \"-\" \"curl\"\n",
    )
    .unwrap();
    let (log, o) = (log.to_str().unwrap(), out.to_str().unwrap());
    let base = ["log", log, "--format", "nginx", "--out", o];
    for (extra, expected) in [
        (vec!["--bucket", "5s"], "--bucket 5s: expected 1s or 1m"),
        (
            vec!["--speed", "0"],
            "--speed 0 is out of range: expected 0.01 to 1000",
        ),
        (
            vec!["--scale", "5000"],
            "--scale 5000 is out of range: expected 0.01 to 1000",
        ),
        (
            vec!["--name", "../clinic"],
            "--name \"../clinic\": expected letters, digits",
        ),
        (
            vec!["--target", "ftp://host"],
            "--target ftp://host: expected an http:// or https:// base URL",
        ),
        (
            vec!["--target", "https://nurse:secret@emr.example.org"],
            "--target https://***@emr.example.org: credentials in the URL would be written into the scenario",
        ),
    ] {
        let said = refused(&[&base[..], &extra[..]].concat(), &out);
        assert!(said.contains(expected), "{extra:?}: {said}");
        assert!(!said.contains("secret"), "{said}");
    }
    let har = repo().join("fixtures/har/firefox-visit.har");
    let har = har.to_str().unwrap();
    for (extra, expected) in [
        (
            vec!["--think-scale", "1000"],
            "--think-scale 1000 is out of range: expected 0 to 100",
        ),
        (vec!["--think-scale=-1"], "--think-scale -1 is out of range"),
        (
            vec!["--name", ".hidden"],
            "--name \".hidden\": expected letters",
        ),
    ] {
        let said = refused(&[&["har", har, "--out", o][..], &extra[..]].concat(), &out);
        assert!(said.contains(expected), "{extra:?}: {said}");
    }
}

#[test]
fn a_har_that_is_not_one_is_refused_by_line_or_entry() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    let good = std::fs::read_to_string(repo().join("fixtures/har/firefox-visit.har")).unwrap();
    let cut = &good[..good.len() / 2];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated.har",
            cut.as_bytes().to_vec(),
            "the file ends in the middle of the HAR (truncated?)",
        ),
        (
            "empty.har",
            br#"{"log": {"version": "1.2", "entries": []}}"#.to_vec(),
            "the HAR has no entries",
        ),
        (
            "text.har",
            b"GET /patient?q=Wanjiku HTTP/1.1\n".to_vec(),
            ":1: column 1: not JSON: expected a HAR 1.2 file",
        ),
        (
            "wrong-type.har",
            good.replacen("\"status\": 200", "\"status\": \"Wanjiku\"", 1)
                .into_bytes(),
            "expected HAR 1.2: a value of the wrong type (expected i64)",
        ),
        (
            "no-request.har",
            good.replacen("\"request\":", "\"requested\":", 1)
                .into_bytes(),
            "expected HAR 1.2: missing field `request`",
        ),
        (
            "bad-time.har",
            good.replacen("2026-12-07T11:31:53.500+01:00", "Wanjiku", 1)
                .into_bytes(),
            "entry 4: startedDateTime: expected an ISO 8601 time",
        ),
        (
            "relative.har",
            good.replacen(
                "\"http://127.0.0.1:8080/openmrs/spa/main.js\"",
                "\"/main.js\"",
                1,
            )
            .into_bytes(),
            "entry 2: request.url: expected an absolute http:// or https:// URL",
        ),
    ];
    for (name, bytes, expected) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, bytes).unwrap();
        let said = refused(&["har", file.to_str().unwrap(), "--out", o], &out);
        assert!(
            said.contains(file.to_str().unwrap()),
            "{name}: names the file: {said}"
        );
        assert!(said.contains(expected), "{name}: {expected}: {said}");
    }
    // Bytes that are not UTF-8 inside a string of the HAR: said with the
    // line, never a panic.
    let mut bytes = good.clone().into_bytes();
    let at = good.find("Wanjiku").unwrap();
    bytes[at] = 0xff;
    let file = dir.path().join("latin1.har");
    std::fs::write(&file, &bytes).unwrap();
    let said = refused(&["har", file.to_str().unwrap(), "--out", o], &out);
    let line = good[..at].lines().count();
    assert!(
        said.contains(&format!("latin1.har:{line}: column")),
        "{said}"
    );
}

#[test]
fn a_firefox_har_imports_with_its_uploads_bytes_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("imported");
    let har = repo().join("fixtures/har/firefox-visit.har");
    let done = surge(&[
        "import",
        "har",
        har.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--name",
        "ward",
    ]);
    let said = text(&done);
    assert_eq!(done.status.code(), Some(0), "{said}");
    let seeded = [
        "Wanjiku",
        "Otieno",
        "1961-07-29",
        "MRN-778812",
        "bnVyc2U6V2FyZDdQYXNz",
        "FF0A1B2C3D4E5F60718293A4B5C6D7E8",
        "discharge",
        "3f2a9c4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b",
    ];
    let mut all = said.clone();
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            all.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
    for s in seeded {
        assert!(!all.contains(s), "{s} was written or printed:\n{all}");
    }
    for line in [
        "scrubbed: 3 of 6 entries kept as 3 requests in 1 recorded sessions (one persona each)",
        "scrubbed: left out: 1 static assets, 1 to other origins, 1 logins made by [auth] instead",
        "scrubbed: 1 values sent back from an earlier answer became 1 captures",
    ] {
        assert!(said.contains(line), "{line}:\n{said}");
    }
    let scenario = std::fs::read_to_string(out.join("ward.toml")).unwrap();
    let pdf_size = "%PDF-1.4\n% Discharge summary: Wanjiku Otieno, born 1961-07-29, MRN-778812\n"
        .len()
        + 1900
        + "\n%%EOF\n".len();
    for wanted in [
        "{ name = \"patient\", value = \"${results_uuid}\" }".to_owned(),
        format!("{{ name = \"file\", generate = {{ kind = \"pdf\", size = \"{pdf_size}B\" }}, content_type = \"application/pdf\" }}"),
        // Firefox's offsets (+01:00) read as the times they are.
        "{ request = \"s1_02_get_rest_v1_patient\", think = \"3208ms\" }".to_owned(),
    ] {
        assert!(scenario.contains(&wanted), "{wanted}:\n{scenario}");
    }
    // Importing again over what is there is refused, and names the file.
    let again = surge(&[
        "import",
        "har",
        har.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--name",
        "ward",
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again).contains("is already there: choose another --out or --name"),
        "{}",
        text(&again)
    );
}

#[test]
fn a_log_line_of_another_format_is_refused_by_its_line_and_a_byte_not_utf8_is_read_past() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    let nginx = |path: &str| {
        format!("127.0.0.1 - - [07/Dec/2026:10:00:00 +0000] \"GET {path} HTTP/1.1\" 200 2 \"-\" \"curl\"\n")
    };
    // Line 2 is HAProxy's, in a file read as nginx's: said by its line,
    // the line itself (with its patient) never echoed.
    let mixed = dir.path().join("mixed.log");
    let haproxy = "10.0.1.2:33317 [07/Dec/2026:10:00:00.655] http-in be/r1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 \"GET /patient?q=Wanjiku HTTP/1.1\"\n";
    std::fs::write(&mixed, format!("{}{haproxy}", nginx("/healthz"))).unwrap();
    let said = refused(
        &[
            "log",
            mixed.to_str().unwrap(),
            "--format",
            "nginx",
            "--out",
            o,
        ],
        &out,
    );
    assert!(
        said.contains(&format!(
            "{}:2: expected an nginx combined line",
            mixed.display()
        )),
        "{said}"
    );
    let empty = dir.path().join("empty.log");
    std::fs::write(&empty, "").unwrap();
    let said = refused(
        &[
            "log",
            empty.to_str().unwrap(),
            "--format",
            "nginx",
            "--out",
            o,
        ],
        &out,
    );
    assert!(said.contains("no request to import in 0 lines"), "{said}");
    // A byte that is not UTF-8 in a path (a client's Latin-1): the line
    // is still the format's, its word replaced like any unknown word.
    let latin1 = dir.path().join("latin1.log");
    let mut bytes = nginx("/healthz").into_bytes();
    bytes.extend(b"127.0.0.1 - - [07/Dec/2026:10:00:01 +0000] \"GET /patients/J\xe9r\xf4me HTTP/1.1\" 404 2 \"-\" \"curl\"\n");
    std::fs::write(&latin1, bytes).unwrap();
    let done = surge(&[
        "import",
        "log",
        latin1.to_str().unwrap(),
        "--format",
        "nginx",
        "--out",
        o,
        "--bucket",
        "1s",
    ]);
    assert_eq!(done.status.code(), Some(0), "{}", text(&done));
    assert!(
        text(&done).contains("scrubbed: 2 requests on 2 routes kept"),
        "{}",
        text(&done)
    );
}
