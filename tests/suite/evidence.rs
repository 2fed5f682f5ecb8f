//! No verdict without evidence, as a user meets it through the CLI: a step
//! that could not be sent is counted apart (never a sample), an upload whose
//! answer does not name the stored object fails the attachment gate, and
//! thresholds on what never happened fail as "nothing measured". Each rule
//! both ways: the broken scenario must fail, the healthy one must not.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use surge::bundle::RunResults;
use surge_sim::ClusterOptions;

/// The shipped demo scenario with one line changed.
fn demo_with(dir: &Path, name: &str, from: &str, to: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("scenarios/demo.toml")).unwrap();
    assert!(text.contains(from), "demo.toml no longer has {from:?}");
    let text = text
        .replace(from, to)
        .replace("fixtures = \"../fixtures\"", "")
        .replace(
            "[scenario]\n",
            &format!(
                "[scenario]\nfixtures = \"{}\"\n",
                repo().join("fixtures").display()
            ),
        );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// `surge run SCENARIO` against `url` for 3 s: exit code, stdout, results.
fn run_cli(scenario: &Path, url: &str, out: &Path) -> (Option<i32>, String, RunResults) {
    let output = Command::new(surge_bin())
        .args(["run", scenario.to_str().unwrap(), "--target", url])
        .args(["--duration", "3s", "--no-progress", "--out"])
        .arg(out)
        .current_dir(repo())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let bundle = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .unwrap_or_else(|| panic!("no bundle\n{stdout}\n{stderr}"));
    let results = surge::bundle::read_results(&bundle).unwrap();
    std::fs::remove_dir_all(&bundle).unwrap();
    (output.status.code(), format!("{stdout}\n{stderr}"), results)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_never_sent_is_no_sample_and_fails_the_run_until_marked_optional() {
    let _engine = engine_lock().await;
    let cluster = cluster(ClusterOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let broken = demo_with(
        dir.path(),
        "capture-misses",
        r#"capture = { found_uuid = "results.0.uuid" }"#,
        r#"capture = { found_uuid = "results.0.nouuid" }"#,
    );
    let (code, text, r) = run_cli(&broken, &cluster.url, &out);
    assert_eq!(code, Some(1), "{text}");
    let upload = r
        .request("upload_document")
        .expect("a row for the request never sent");
    assert_eq!((upload.issued, upload.count), (0, 0), "{upload:?}");
    assert!(upload.not_sent > 0);
    let why = "${found_uuid} was never captured (capture in search_patient found nothing at results.0.nouuid)";
    assert_eq!(
        upload.not_sent_reasons.get(why),
        Some(&upload.not_sent),
        "{:?}",
        upload.not_sent_reasons
    );
    assert!(
        text.contains(&format!(
            "upload_document: not sent {}×: {why}",
            upload.not_sent
        )),
        "{text}"
    );
    // Never a sample: no histogram cell, no `unknown` replica, not issued, not in the timeline.
    assert!(r.cells.iter().all(|c| c.request != "upload_document"));
    assert!(
        r.replicas.iter().all(|s| s.name != "unknown"),
        "{:?}",
        r.replicas
    );
    assert_eq!(
        r.totals.issued,
        r.totals.succeeded + r.totals.failed + r.totals.cancelled
    );
    assert_eq!(
        r.timeline.iter().map(|t| t.requests).sum::<u64>(),
        r.overall.count
    );
    assert_eq!(
        r.totals.not_sent,
        r.requests.iter().map(|s| s.not_sent).sum::<u64>()
    );
    assert!(
        text.contains("FAIL every request sent: never sent: "),
        "{text}"
    );
    assert!(text.contains("upload_document (not sent"), "{text}");
    assert!(text.contains("download_document (not sent"), "{text}");
    // The attachment thresholds rest on uploads read back: none were.
    assert!(
        text.contains("FAIL attachments.missing < 1 (nothing measured: no upload was read back)"),
        "{text}"
    );
    assert!(
        text.contains("FAIL uploads verifiable: nothing measured"),
        "{text}"
    );
    assert!(!text.contains("measured nothing"), "{text}");

    // Marked optional (and without the attachment thresholds), the same run passes.
    let optional = std::fs::read_to_string(&broken)
        .unwrap()
        .replace(
            "[requests.upload_document]\n",
            "[requests.upload_document]\noptional = true\n",
        )
        .replace(
            "[requests.download_document]\n",
            "[requests.download_document]\noptional = true\n",
        )
        .replace("\"attachments.missing\" = \"< 1\"\n", "")
        .replace("\"attachments.corrupted\" = \"< 1\"\n", "");
    let optional_path = dir.path().join("optional.toml");
    std::fs::write(&optional_path, optional).unwrap();
    let (code, text, r) = run_cli(&optional_path, &cluster.url, &out);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("upload_document: not sent"),
        "still counted: {text}"
    );
    assert!(r.checks.iter().all(|c| c.passed), "{:?}", r.checks);

    // Healthy: every step sent, nothing counted apart.
    let healthy = demo_with(dir.path(), "healthy", "[scenario]\n", "[scenario]\n");
    let (code, text, r) = run_cli(&healthy, &cluster.url, &out);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(r.totals.not_sent, 0, "{text}");
    assert!(!text.contains("not sent"), "{text}");
    assert!(text.contains("PASS every request sent"), "{text}");
    assert!(text.contains("PASS uploads verifiable: all"), "{text}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_answer_names_no_object_fails_the_attachment_gate() {
    let _engine = engine_lock().await;
    let cluster = cluster(ClusterOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let wrong_id = demo_with(
        dir.path(),
        "wrong-id",
        r#"consistency = { id = "uuid","#,
        r#"consistency = { id = "attachment.uuid","#,
    );
    // And an expectation that cannot hold: the summary says what did not match.
    let text = std::fs::read_to_string(&wrong_id).unwrap().replace(
        r#"json_equals = { "issue.0.severity" = "error" }"#,
        r#"json_equals = { "issue.0.severity" = "warning" }"#,
    );
    std::fs::write(&wrong_id, text).unwrap();
    let (code, text, r) = run_cli(&wrong_id, &cluster.url, &out);
    assert_eq!(code, Some(1), "{text}");
    let invalid = r.request("validate_invalid_patient").unwrap();
    assert!(invalid.failed > 0, "{text}");
    assert!(
        text.contains(&format!(
            "validate_invalid_patient: {n} failed (expectation {n}); answered 200 ×{n}; JSON `issue.0.severity` is not \"warning\" ×{n}",
            n = invalid.failed
        )),
        "{text}"
    );
    let uploads_ok = r.request("upload_document").unwrap().ok;
    assert!(uploads_ok > 0, "{text}");
    let c = &r.consistency;
    assert_eq!((c.uploads, c.unverifiable), (0, uploads_ok), "{text}");
    let (reason, n) = c.unverifiable_reasons.iter().next().unwrap();
    assert_eq!(*n, uploads_ok);
    assert!(
        reason.starts_with("upload_document: the answer names no stored object at `attachment.uuid` (its top-level fields: "),
        "{reason}"
    );
    assert!(
        reason.contains("uuid"),
        "the fields the answer had: {reason}"
    );
    assert!(text.contains("FAIL uploads verifiable: "), "{text}");
    assert!(
        text.contains("FAIL attachments.missing < 1 (nothing measured: no upload was read back)"),
        "{text}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_the_cluster_refuses_fails_up_front() {
    let cluster = cluster(ClusterOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let wrong = demo_with(
        dir.path(),
        "wrong-password",
        "password = \"Admin123\"",
        "password = \"nope-42\"",
    );
    let output = Command::new(surge_bin())
        .args([
            "run",
            wrong.to_str().unwrap(),
            "--target",
            &cluster.url,
            "--no-progress",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    cluster.shutdown().await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("auth does not work, so no load was sent: the login answered"),
        "{stderr}"
    );
    assert!(!stderr.contains("nope-42"), "{stderr}");
    assert!(!out.exists(), "no load, no bundle");
}
