//! Bad input never panics: every file of `tests/bad-scenarios/` fails
//! `surge check` with exit 2 and a message naming the file, the line and
//! what was expected; and a bounded, seeded mutation run over a good
//! scenario finds no input that panics the checker.

use crate::common::*;
use rand::{Rng, SeedableRng};
use std::process::Command;
use surge::scenario::Scenario;

#[test]
fn every_bad_scenario_is_refused_with_its_line_and_what_was_expected() {
    let dir = repo().join("tests/bad-scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "the corpus has {} files", files.len());
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let header =
            String::from_utf8_lossy(&bytes[..bytes.iter().position(|b| *b == b'\n').unwrap()])
                .into_owned();
        let (line, expected) = header
            .strip_prefix("# expect line ")
            .and_then(|rest| rest.split_once(": "))
            .unwrap_or_else(|| panic!("{}: no `# expect line N: TEXT` header", file.display()));
        let shown = format!(
            "tests/bad-scenarios/{}",
            file.file_name().unwrap().to_string_lossy()
        );
        let out = Command::new(surge_bin())
            .args(["check", &shown])
            .current_dir(repo())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let said = format!("{stderr}{}", String::from_utf8_lossy(&out.stdout));
        assert_eq!(out.status.code(), Some(2), "{shown}: {said}");
        assert!(!said.contains("panicked"), "{shown}: {said}");
        assert!(
            said.contains(&format!("{shown}:{line}:")),
            "{shown}: wants line {line}: {said}"
        );
        assert!(
            said.contains(expected),
            "{shown}: wants {expected:?}: {said}"
        );
    }
}

/// A file that turns certificate checks off passes `check` (exit 0), with
/// a warning at the key saying what that means; one that leaves them on
/// passes without it.
#[test]
fn tls_verify_false_passes_check_with_a_warning_at_its_place() {
    let dir = tempfile::tempdir().unwrap();
    for verify in [false, true] {
        let body = format!(
            "[target]\nbase_url = \"https://127.0.0.1:8443\"\ntls_verify = {verify}\n\n\
             [load]\nmodel = \"closed\"\n[[load.stages]]\nusers = 1\nhold = \"1s\"\n\n\
             [[personas]]\nname = \"visitor\"\nsteps = [{{ request = \"home\" }}]\n\n\
             [requests.home]\npath = \"/\"\n"
        );
        let path = scenario_file(dir.path(), &format!("tls-{verify}"), &body);
        let text = std::fs::read_to_string(&path).unwrap();
        let line = text
            .lines()
            .position(|l| l.starts_with("tls_verify"))
            .unwrap()
            + 1;
        let out = Command::new(surge_bin())
            .arg("check")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(String::from_utf8_lossy(&out.stdout).contains(": ok ("));
        if verify {
            assert!(stderr.is_empty(), "{stderr}");
        } else {
            let want = format!(
                "{}:{line}:14: warning: tls_verify = false: TLS certificates will not be verified",
                path.display()
            );
            assert!(stderr.contains(&want), "wants {want:?}: {stderr}");
        }
    }
}

/// A seeded, bounded mutation run (the property: `check` never panics and
/// every refusal says something). Documented in the README; raise
/// `SURGE_MUTATIONS` to run longer.
#[test]
fn no_mutation_of_a_good_scenario_panics_the_checker() {
    let good = std::fs::read_to_string(repo().join("scenarios/demo.toml")).unwrap();
    let path = repo().join("scenarios/mutated.toml");
    let rounds: usize = std::env::var("SURGE_MUTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3000);
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261130);
    let pieces = [
        "",
        "0",
        "-1",
        "1e308",
        "18446744073709551615",
        "\"\"",
        "\"0s\"",
        "\"999999h\"",
        "[",
        "]",
        "{",
        "}",
        "=",
        "\"",
        "${",
        "${x}",
        "${env:}",
        ".",
        "..",
        "[x=",
        "*",
        "\u{0}",
        "é",
        "\n",
        "#",
        "[[personas]]",
        "max = 0",
        "rate = 1e12",
        "users = 0",
        "size = \"9999999MiB\"",
        "NaN",
        "inf",
        "true",
    ];
    let mut refused = 0;
    for _ in 0..rounds {
        let mut text = good.clone();
        for _ in 0..rng.random_range(1..4) {
            let at = text.floor_char_boundary(rng.random_range(0..text.len()));
            let end = text.ceil_char_boundary((at + rng.random_range(0..12)).min(text.len()));
            let piece = pieces[rng.random_range(0..pieces.len())];
            text.replace_range(at..end, piece);
        }
        let outcome = std::panic::catch_unwind(|| Scenario::from_text(&path, &text).err());
        let err = outcome.unwrap_or_else(|_| panic!("check panicked on:\n{text}"));
        if let Some(e) = err {
            assert!(
                !e.message.trim().is_empty(),
                "an empty message for:\n{text}"
            );
            refused += 1;
        }
    }
    assert!(
        refused > rounds / 2,
        "most mutations break the file: {refused} of {rounds}"
    );
}
