//! The `surge` binary as a user runs it: exit codes, thresholds from the
//! command line, and interrupted runs that still write their bundle.

use crate::common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use surge_sim::ClusterOptions;

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

    // A misspelt request on the command line is refused before any load,
    // as the same threshold in the file is, not judged "nothing measured".
    let typo = surge(&[
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
        "serach_patient.p95=<800ms",
    ]);
    let stderr = String::from_utf8_lossy(&typo.stderr);
    assert_eq!(typo.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--threshold \"serach_patient.p95=<800ms\": threshold on `serach_patient`, which is neither a request (")
            && stderr.contains("search_patient"),
        "{stderr}"
    );
    assert!(
        typo.stdout.is_empty(),
        "no run: {}",
        String::from_utf8_lossy(&typo.stdout)
    );

    // A folder that cannot be made: the bundle goes to the temporary folder, said aloud.
    let unwritable = surge(&[
        "run",
        "scenarios/demo.toml",
        "--target",
        &cluster.url,
        "--duration",
        "2s",
        "--no-progress",
        "--out",
        "/proc/surge-cannot-write-here",
    ]);
    let stderr = String::from_utf8_lossy(&unwritable.stderr);
    let stdout = String::from_utf8_lossy(&unwritable.stdout);
    assert_eq!(unwritable.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("cannot write the bundle to /proc/surge-cannot-write-here"),
        "{stderr}"
    );
    let written = stdout
        .lines()
        .find_map(|l| l.strip_prefix("bundle: "))
        .expect("says where");
    assert!(
        written.starts_with(std::env::temp_dir().to_str().unwrap()),
        "{written}"
    );
    assert!(surge::bundle::read_results(std::path::Path::new(written)).is_ok());
    std::fs::remove_dir_all(written).unwrap();
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

    // Credentials on the command line are refused, and never echoed.
    let out = surge(&[
        "run",
        "scenarios/demo.toml",
        "--target",
        "http://admin:secret99@127.0.0.1:9",
        "--no-progress",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("carries a user name or password"),
        "{stderr}"
    );
    assert!(stderr.contains("${env:SURGE_PASSWORD}"), "{stderr}");
    assert!(!stderr.contains("secret99"), "{stderr}");

    // Numbers out of range: exit 2 naming the flag and the range, no panic, no abort.
    for (flag, value, says) in [
        (
            "--users",
            "18446744073709551615",
            "--users 18446744073709551615 is out of range: expected 1 to 50000",
        ),
        ("--duration", "18446744073709551615s", "at most 30 days"),
        ("--rate", "1e12", "at most 50000 arrivals per second"),
        ("--rate", "NaN", "--rate NaN is out of range"),
        ("--think-scale", "1e300", "expected a factor from 0 to 1000"),
    ] {
        let out = surge(&["run", "scenarios/demo.toml", flag, value, "--no-progress"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(says), "{flag} {value}: {stderr}");
    }

    // A receiver surge cannot push to, or whose credentials would be
    // written down: exit 2 before anything is sent, the secret unsaid.
    for (value, says) in [
        ("graphite=http://127.0.0.1:9/", "expected prometheus=URL"),
        ("prometheus", "expected an http(s) URL"),
        ("prometheus=127.0.0.1:9090", "expected an http(s) URL"),
        (
            "prometheus=http://ops:hunter2@127.0.0.1:9/api/v1/write",
            "credentials in the URL",
        ),
    ] {
        let out = surge(&[
            "run",
            "scenarios/demo.toml",
            "--metrics-out",
            value,
            "--no-progress",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{value}: {stderr}");
        assert!(stderr.contains(says), "{value}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}

/// A run started as a user starts it, in a bundle folder of its own.
fn start_run(url: &str, out: &std::path::Path, args: &[&str]) -> std::process::Child {
    Command::new(surge_bin())
        .args(["run", "--target", url, "--duration", "60s", "--no-progress"])
        .args(args)
        .arg("--out")
        .arg(out)
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &std::process::Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the process to end, at most `limit`: its exit code.
fn ends_within(child: &mut std::process::Child, limit: Duration) -> Option<i32> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("surge did not end within {limit:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every interrupt ends the run within 10 s with exit 3 and a bundle whose
/// counts add up, in both load models, at random moments (uploads,
/// generated content and read-backs in flight), by SIGINT and SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_interrupt_ends_the_run_with_its_bundle() {
    let _engine = engine_lock().await;
    let cluster = cluster(ClusterOptions::default()).await;
    let out = tempfile::tempdir().unwrap();
    // Random moments, 0.3 s to 4 s after the start; the seed is in every
    // failure message, so a failure can be replayed (SURGE_SIGNAL_SEED).
    let seed: u64 = std::env::var("SURGE_SIGNAL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        });
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let moments: Vec<f64> = (0..8)
        .map(|_| rand::Rng::random_range(&mut rng, 0.3..4.0))
        .collect();
    let models: [(&str, &[&str], usize); 2] = [
        ("open", &["scenarios/demo.toml"], 60),
        (
            "closed",
            &[
                "scenarios/smoke.toml",
                "--users",
                "8",
                "--think-scale",
                "0.05",
            ],
            8,
        ),
    ];
    let mut rendered = false;
    for (i, at) in moments.iter().enumerate() {
        let (model, args, users) = models[i % 2];
        let how = if i % 4 < 2 { "-INT" } else { "-TERM" };
        let dir = out.path().join(format!("{i}"));
        let mut child = start_run(&cluster.url, &dir, args);
        tokio::time::sleep(Duration::from_secs_f64(*at)).await;
        signal(&child, how);
        let code = ends_within(&mut child, Duration::from_secs(10));
        let stderr = {
            let mut text = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut text).unwrap();
            text
        };
        assert_eq!(
            code,
            Some(3),
            "{model} {how} at {at:.2}s (seed {seed}): {stderr}"
        );
        let bundle = only_bundle(&dir);
        let r = surge::bundle::read_results(&bundle).unwrap();
        let why = r
            .interrupted
            .clone()
            .expect("the bundle says it was interrupted");
        assert!(
            why.contains(if how == "-INT" { "SIGINT" } else { "SIGTERM" }),
            "{why}"
        );
        let t = &r.totals;
        assert_eq!(
            t.issued,
            t.succeeded + t.failed + t.cancelled,
            "{model} {how} at {at:.2}s (seed {seed}): {t:?}"
        );
        assert!(
            t.cancelled <= users as u64,
            "{model}: {} cancelled, at most {users} in flight",
            t.cancelled
        );
        assert!(!r.checks.is_empty(), "an interrupted run is still judged");
        if !rendered && r.overall.count > 0 {
            // `surge report` re-renders an interrupted bundle.
            let status = Command::new(surge_bin())
                .arg("report")
                .arg(&bundle)
                .output()
                .unwrap();
            assert_eq!(
                status.status.code(),
                Some(3),
                "{}",
                String::from_utf8_lossy(&status.stderr)
            );
            rendered = true;
        }
    }
    assert!(rendered);

    // A second signal forces the end at once, still writing what was measured.
    let dir = out.path().join("forced");
    let mut child = start_run(
        &cluster.url,
        &dir,
        &[
            "scenarios/smoke.toml",
            "--users",
            "8",
            "--think-scale",
            "0.05",
        ],
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Two different signals: two of one kind sent at once may arrive as one.
    signal(&child, "-TERM");
    signal(&child, "-INT");
    assert_eq!(ends_within(&mut child, Duration::from_secs(10)), Some(3));
    let forced = only_bundle(&dir);
    let r = surge::bundle::read_results(&forced).unwrap();
    assert!(r
        .interrupted
        .clone()
        .unwrap()
        .contains("forced to end by a second signal"));
    assert_eq!(
        r.totals.issued,
        r.totals.succeeded + r.totals.failed + r.totals.cancelled
    );
    // The quick write keeps the evidence; `surge report` renders the rest.
    let status = Command::new(surge_bin())
        .arg("report")
        .arg(&forced)
        .output()
        .unwrap();
    assert_eq!(
        status.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(forced.join("report.html").is_file());
    cluster.shutdown().await;
}

/// A target that vanishes mid-run ends the run within seconds, with its
/// bundle, instead of measuring refusals to the end of the plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_target_ends_the_run_with_its_bundle() {
    let _engine = engine_lock().await;
    let cluster = cluster(ClusterOptions::default()).await;
    let out = tempfile::tempdir().unwrap();
    let mut child = start_run(&cluster.url, out.path(), &["scenarios/demo.toml"]);
    // Long enough for the ramp to have sent (and measured) some requests.
    tokio::time::sleep(Duration::from_secs(6)).await;
    cluster.shutdown().await;
    // 10 s without an answer, then the stop.
    assert_eq!(ends_within(&mut child, Duration::from_secs(20)), Some(3));
    let r = surge::bundle::read_results(&only_bundle(out.path())).unwrap();
    let why = r.interrupted.clone().unwrap();
    assert!(why.starts_with("target gone"), "{why}");
    assert!(r.elapsed_s < 25.0, "{}", r.elapsed_s);
    assert!(
        r.overall.ok > 0,
        "what was measured before is kept: {:?}",
        r.totals
    );
    assert!(r
        .overall
        .errors
        .contains_key(&surge::bundle::ErrorClass::Connect));
    let t = &r.totals;
    assert_eq!(t.issued, t.succeeded + t.failed + t.cancelled);
}

/// `surge calibrate --from-bundle` as a user runs it: the stages of an
/// open-model run become the staircase, and the calibration bundle holds
/// the JSON, the page and the manifests; a `--pod-start-from` bundle that
/// had no chaos cannot be used, and says why; a flag only a climb reads is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calibrate_from_a_bundle_writes_its_recommendations_or_says_why_not() {
    let _engine = engine_lock().await;
    let dir = tempfile::tempdir().unwrap();
    let staircase = two_step_climb(dir.path()).await;
    let bundle = staircase.to_str().unwrap();
    let out = dir.path().join("calibrations");
    let out_dir = out.to_str().unwrap();
    let base = [
        "calibrate",
        "--from-bundle",
        bundle,
        "--replicas",
        "3",
        "--slo-p99",
        "2s",
        "--kind",
        "StatefulSet",
        "--out",
        out_dir,
    ];
    let done = surge(&base);
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert_eq!(
        done.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(stdout.contains("calibration: "), "{stdout}");
    assert!(stdout.contains("step"), "the staircase table: {stdout}");
    let written = only_bundle(&out);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(written.join("calibration.json")).unwrap()).unwrap();
    assert_eq!(json["steps"].as_array().map(Vec::len), Some(2), "{json}");
    assert!(written.join("calibration.html").exists());
    let yaml = std::fs::read_to_string(written.join("recommendations.yaml")).unwrap();
    assert!(yaml.contains("kind: StatefulSet"), "{yaml}");

    let mut refused = base.to_vec();
    refused.extend(["--pod-start-from", bundle]);
    let refused = surge(&refused);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--pod-start-from") && stderr.contains("had no chaos"),
        "{stderr}"
    );
    let bad_kind = surge(&[
        "calibrate",
        "--from-bundle",
        bundle,
        "--replicas",
        "3",
        "--slo-p99",
        "2s",
        "--kind",
        "Pod",
    ]);
    assert_eq!(bad_kind.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad_kind.stderr).contains("Deployment"),
        "clap names the possible kinds"
    );
    // A flag that only a climb reads is refused, never silently ignored.
    for (flag, value) in [
        ("--precision", "5"),
        ("--verify", ""),
        ("--step-rate", "20"),
        ("--selector", "app=hapi"),
    ] {
        let mut args = base.to_vec();
        args.push(flag);
        if !value.is_empty() {
            args.push(value);
        }
        let refused = surge(&args);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{flag}: {stderr}");
        assert!(
            stderr.contains(flag)
                && stderr.contains("cannot be used with")
                && stderr.contains("--from-bundle"),
            "{flag}: {stderr}"
        );
    }
}

/// `--arrivals` and `--seed` refuse what they cannot mean, before anything
/// is sent: a seed for evenly spaced arrivals, and Poisson arrivals for a
/// closed-model scenario (its users arrive by their think time).
#[test]
fn arrival_flags_refuse_what_they_cannot_mean() {
    let seeded = surge(&[
        "run",
        "scenarios/demo.toml",
        "--arrivals",
        "uniform",
        "--seed",
        "3",
        "--target",
        "http://127.0.0.1:1",
    ]);
    assert_eq!(seeded.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&seeded.stderr).contains("--seed seeds Poisson arrivals"),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    let closed = surge(&[
        "run",
        "scenarios/openmrs-clinic.toml",
        "--arrivals",
        "poisson",
        "--target",
        "http://127.0.0.1:1",
    ]);
    assert_eq!(closed.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&closed.stderr).contains("--arrivals is for the open model"),
        "{}",
        String::from_utf8_lossy(&closed.stderr)
    );
}

/// A metrics endpoint whose pool always has a thread waiting: the
/// verification's drain wait, before its replay, lasts its whole minute.
async fn always_queueing_metrics() -> String {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            "hikaricp_connections_active{pool=\"p\"} 4\n\
             hikaricp_connections_max{pool=\"p\"} 4\n\
             hikaricp_connections_pending{pool=\"p\"} 1\n"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/metrics")
}

/// Starts `surge calibrate` with `args` and waits until its output has
/// shown `steps` measured steps (the warm-up line with 0).
fn calibrate_until_steps(args: &[&str], steps: usize) -> (std::process::Child, String) {
    let mut child = Command::new(surge_bin())
        .arg("calibrate")
        .args(args)
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let mut seen = String::new();
    let mut measured = 0;
    while measured < steps || (steps == 0 && !seen.contains("staircase:")) {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("surge calibrate ended early:\n{seen}"))
            .unwrap();
        measured += usize::from(line.contains("/s offered →"));
        seen += &line;
        seen.push('\n');
    }
    // The rest of the output, read as it comes so the pipe never fills.
    std::thread::spawn(move || lines.for_each(drop));
    (child, seen)
}

/// Ctrl-C or SIGTERM anywhere in `surge calibrate` ends it within seconds,
/// exit 3, with what was measured analysed and written and nothing more
/// run: during the warm-up (nothing measured: nothing written), during a
/// step (the steps before it), and in the minute the verification waits
/// for the pools to drain (every step, and no replay).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_calibration_keeps_its_steps_and_runs_nothing_more() {
    let _engine = engine_lock().await;
    let cluster = cluster(ClusterOptions::default()).await;
    let metrics = always_queueing_metrics().await;
    let dir = tempfile::tempdir().unwrap();
    let load =
        "[load]\nmodel = \"open\"\nmax_users = 20\n[[load.stages]]\nrate = 5\nhold = \"2s\"\n";
    let scenario = scenario_file(
        dir.path(),
        "climb",
        &fhir_search_scenario(&cluster.url, load),
    );
    let scenario = scenario.to_str().unwrap().to_owned();
    let calibration = |out: &std::path::Path| -> Option<serde_json::Value> {
        let folder = std::fs::read_dir(out)
            .ok()?
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with("-calibrate"))?
            .path();
        let text = std::fs::read(folder.join("calibration.json")).ok()?;
        Some(serde_json::from_slice(&text).unwrap())
    };
    // (signal, steps seen before it, warm-up)
    for (how, after_steps, warm_up, case) in [
        ("-INT", 0, "20s", "warm-up"),
        ("-INT", 1, "0s", "step"),
        ("-TERM", 2, "0s", "drain"),
    ] {
        let out = dir.path().join(case);
        let args = [
            scenario.as_str(),
            "--replicas",
            "1",
            "--slo-p99",
            "2s",
            "--start-rate",
            "5",
            "--step-rate",
            "5",
            "--step-duration",
            "3s",
            "--max-steps",
            "2",
            "--warm-up",
            warm_up,
            "--verify",
            "--metrics-url",
            &metrics,
            "--out",
            out.to_str().unwrap(),
        ];
        let (mut child, seen) = calibrate_until_steps(&args, after_steps);
        // Into the warm-up, the second step, or the drain wait.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        signal(&child, how);
        let code = ends_within(&mut child, Duration::from_secs(10));
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert_eq!(code, Some(3), "{case}: {seen}{stderr}");
        let signal_name = if how == "-INT" { "SIGINT" } else { "SIGTERM" };
        match calibration(&out) {
            None => {
                assert_eq!(case, "warm-up", "{seen}{stderr}");
                assert!(
                    stderr.contains("during the warm-up: nothing measured"),
                    "{stderr}"
                );
            }
            Some(c) => {
                assert_ne!(case, "warm-up", "the warm-up measures nothing to write");
                let why = c["interrupted"].as_str().expect("calibration.json says so");
                assert!(why.contains(signal_name), "{case}: {why}");
                assert_eq!(
                    c["steps"].as_array().map(Vec::len),
                    Some(after_steps),
                    "{case}: the steps measured before the signal"
                );
                assert!(
                    c["verification"].is_null(),
                    "{case}: no replay after a signal"
                );
                assert!(
                    c["reasons"][0].as_str().unwrap().starts_with("INTERRUPTED"),
                    "{c}"
                );
            }
        }
    }
    cluster.shutdown().await;
}
