//! The `surge` binary as a user runs it: exit codes, thresholds from the
//! command line, and interrupted runs that still write their bundle.

use crate::common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use surge::sim::ClusterOptions;

fn surge(args: &[&str]) -> std::process::Output {
    Command::new(surge_bin())
        .args(args)
        .current_dir(repo())
        .output()
        .expect("surge runs")
}

fn only_bundle(out: &std::path::Path) -> std::path::PathBuf {
    let bundles: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(bundles.len(), 1, "{bundles:?}");
    bundles[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_pass_on_a_healthy_run_and_fail_when_impossibly_tight() {
    let _engine = engine_lock().await;
    let cluster = cluster(ClusterOptions::default()).await;
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().to_str().unwrap();
    let healthy = surge(&[
        "run",
        "scenarios/demo.toml",
        "--target",
        &cluster.url,
        "--duration",
        "3s",
        "--no-progress",
        "--out",
        out_dir,
    ]);
    let stdout = String::from_utf8_lossy(&healthy.stdout);
    assert_eq!(
        healthy.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&healthy.stderr)
    );
    assert!(
        stdout.contains("PASS search_patient.p95 < 800ms"),
        "{stdout}"
    );
    assert!(stdout.contains("bundle: "), "{stdout}");

    let tight = surge(&[
        "run",
        "scenarios/demo.toml",
        "--target",
        &cluster.url,
        "--duration",
        "3s",
        "--no-progress",
        "--out",
        out_dir,
        "--threshold",
        "search_patient.p95=<0.001ms",
    ]);
    let stdout = String::from_utf8_lossy(&tight.stdout);
    assert_eq!(tight.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL search_patient.p95 <0.001ms"),
        "{stdout}"
    );
    cluster.shutdown().await;
}

#[test]
fn a_bad_scenario_or_an_unreachable_target_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[scenario]\nname = \"x\"\nbogus = 1\n").unwrap();
    let out = surge(&["run", bad.to_str().unwrap(), "--no-progress"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml:3:1: unknown field `bogus`"),
        "{stderr}"
    );

    // A port nothing listens on: bind, note it, let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("http://127.0.0.1:{port}");
    let out = surge(&[
        "run",
        "scenarios/demo.toml",
        "--target",
        &target,
        "--no-progress",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unreachable"));

    let out = surge(&[
        "run",
        "scenarios/demo.toml",
        "--replica",
        "ftp://x",
        "--no-progress",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--replica must be http or https"));

    let out = surge(&["check", "scenarios/demo.toml"]);
    assert_eq!(out.status.code(), Some(0));
}

/// Starts a long run, signals it after a few seconds, and checks the bundle.
async fn interrupted_by(signal: &str) {
    let _engine = engine_lock().await;
    let cluster = cluster(ClusterOptions::default()).await;
    let out = tempfile::tempdir().unwrap();
    let mut child = Command::new(surge_bin())
        .args([
            "run",
            "scenarios/demo.toml",
            "--target",
            &cluster.url,
            "--duration",
            "60s",
            "--no-progress",
        ])
        .args(["--out", out.path().to_str().unwrap()])
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "surge did not stop after {signal}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    cluster.shutdown().await;
    assert_eq!(code, Some(3), "an interrupted run exits 3");
    let results = surge::report::read_results(&only_bundle(out.path())).unwrap();
    let why = results
        .interrupted
        .clone()
        .expect("the bundle says it was interrupted");
    assert!(
        why.contains(if signal == "-INT" {
            "SIGINT"
        } else {
            "SIGTERM"
        }),
        "{why}"
    );
    assert!(
        results.elapsed_s < 30.0,
        "stopped early: {}",
        results.elapsed_s
    );
    assert!(results.overall.count > 0, "what was measured is kept");
    let t = &results.totals;
    assert_eq!(t.issued, t.succeeded + t.failed + t.cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_the_load_and_still_writes_the_bundle() {
    interrupted_by("-INT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_load_and_still_writes_the_bundle() {
    interrupted_by("-TERM").await;
}
