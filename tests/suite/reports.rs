//! The reports of a real run: HTML that renders in a browser with visible
//! charts and no console errors, JUnit that parses back with matching counts,
//! Markdown for a PR comment, `surge report` re-rendering, and `surge compare`
//! catching a slowed request and only that one.

use crate::common::*;
use quick_xml::events::Event;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use surge_sim::replica::ServiceOptions;
use surge_sim::ClusterOptions;

/// A short demo run with one impossible threshold, so reports show a failure.
async fn demo_bundle(out: &Path) -> PathBuf {
    let cluster = cluster(ClusterOptions::default()).await;
    let request = surge::run::RunRequest {
        scenario: repo().join("scenarios/demo.toml"),
        target: Some(cluster.url.clone()),
        load: surge::scenario::LoadOverride {
            duration: Some(Duration::from_secs(4)),
            ..Default::default()
        },
        thresholds: vec!["search_patient.p50=<0.001ms".into()],
        replicas: replica_urls(&cluster),
        out_dir: out.to_path_buf(),
        ..Default::default()
    };
    let report = surge::run::run(&request).await.expect("run completes");
    cluster.shutdown().await;
    report.bundle
}

/// Pixels clearly coloured (chart lines and bars), not grey text or grid.
fn saturated(rgb: &[u8]) -> bool {
    let (r, g, b) = (rgb[0] as i32, rgb[1] as i32, rgb[2] as i32);
    (r - g).abs().max((g - b).abs()).max((r - b).abs()) > 80
}

fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let rgb = buf[..info.buffer_size()]
        .chunks(channels)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, rgb)
}

/// A screenshot, as rows of RGB pixels.
struct Shot {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Shot {
    fn open(path: &Path) -> Shot {
        let (width, height, rgb) = decode(path);
        Shot { width, height, rgb }
    }

    fn pixel(&self, x: u32, y: u32) -> &[u8] {
        &self.rgb[((y * self.width + x) * 3) as usize..]
    }

    /// The rows of every chart's x axis: a dark run of at least `min_run`
    /// pixels (text, table rules and the light grid never make one; the anti-aliased
    /// axis is mid-grey);
    /// adjacent rows are one axis. Counting axes, not coloured areas, gives
    /// every chart exactly one hit whatever its data looks like.
    fn x_axes(&self, min_run: u32) -> Vec<u32> {
        let dark = |p: &[u8]| p[0] < 140 && p[1] < 140 && p[2] < 140;
        let mut axes: Vec<u32> = Vec::new();
        for y in 0..self.height {
            let (mut run, mut longest) = (0, 0);
            for x in 0..self.width {
                run = if dark(self.pixel(x, y)) { run + 1 } else { 0 };
                longest = longest.max(run);
            }
            if longest >= min_run && axes.last().is_none_or(|&last| y > last + 3) {
                axes.push(y);
            }
        }
        axes
    }

    /// Coloured pixels (series, bars) in the `rows` above row `y`.
    fn coloured_above(&self, y: u32, rows: u32) -> usize {
        (y.saturating_sub(rows)..y)
            .flat_map(|y| (0..self.width).map(move |x| (x, y)))
            .filter(|&(x, y)| saturated(self.pixel(x, y)))
            .count()
    }
}

/// Screenshots `page` in headless Chromium; returns the PNG and Chromium's log.
fn screenshot(page: &Path, out: &Path, height: u32) -> Option<String> {
    let chromium = program("chromium")?;
    let profile = tempfile::tempdir().unwrap();
    let output = Command::new(chromium)
        .args(CHROMIUM_FLAGS)
        .args(["--hide-scrollbars", "--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size=1280,{height}"))
        .arg(format!("--screenshot={}", out.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8_lossy(&output.stderr).into_owned())
}

/// Console errors in Chromium's log (its own dbus noise is not the page's).
fn console_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_renders_its_charts_in_a_browser() {
    let _engine = engine_lock().await;
    let out = tempfile::tempdir().unwrap();
    let bundle = demo_bundle(out.path()).await;
    let html = std::fs::read_to_string(bundle.join("report.html")).unwrap();
    // Self-contained: nothing fetched from anywhere, no scripts.
    for needle in [
        "<script",
        "src=\"http",
        "href=\"http",
        "@import",
        "url(http",
        "<link",
    ] {
        assert!(
            !html.contains(needle),
            "report.html must be self-contained, found {needle}"
        );
    }
    let svgs = html.matches("<svg").count();
    let charts = std::fs::read_dir(bundle.join("charts")).unwrap().count();
    assert!(
        svgs >= 8 && svgs == charts,
        "{svgs} inline charts, {charts} PNG copies"
    );

    let shot = out.path().join("report.png");
    let Some(log) = screenshot(&bundle.join("report.html"), &shot, 14000) else {
        return;
    };
    assert!(
        console_errors(&log).is_empty(),
        "console errors: {:?}",
        console_errors(&log)
    );
    // Every chart is on screen with its axis (the per-replica chart has two
    // panels, so two axes), and each panel drew its series.
    let shot = Shot::open(&shot);
    let axes = shot.x_axes(600);
    assert_eq!(
        axes.len(),
        svgs + 1,
        "{svgs} charts, x axes on screen at rows {axes:?}"
    );
    for y in &axes {
        assert!(
            shot.coloured_above(*y, 250) > 300,
            "the chart whose axis is at row {y} drew nothing coloured"
        );
    }

    // The detector itself fires on a broken page, and sees no chart on a blank one.
    let broken = out.path().join("broken.html");
    std::fs::write(
        &broken,
        "<html><body><p>plain text</p><script>console.error('boom')</script></body></html>",
    )
    .unwrap();
    let log = screenshot(&broken, &out.path().join("broken.png"), 800).unwrap();
    assert!(
        !console_errors(&log).is_empty(),
        "the console-error check must be able to fire"
    );
    assert!(Shot::open(&out.path().join("broken.png"))
        .x_axes(600)
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junit_markdown_and_rerendering() {
    let _engine = engine_lock().await;
    let out = tempfile::tempdir().unwrap();
    let bundle = demo_bundle(out.path()).await;
    let results = surge::bundle::read_results(&bundle).unwrap();

    // JUnit parses back; the counts in the attributes match the test cases.
    let xml = std::fs::read_to_string(bundle.join("junit.xml")).unwrap();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut cases, mut failures, mut declared) = (0, 0, None);
    let mut failed_names = Vec::new();
    let mut current = String::new();
    loop {
        match reader.read_event().expect("junit.xml is well-formed XML") {
            Event::Start(e) | Event::Empty(e) => {
                let attr = |name: &str| {
                    e.try_get_attribute(name)
                        .unwrap()
                        .map(|a| a.unescape_value().unwrap().into_owned())
                };
                match e.name().as_ref() {
                    b"testsuite" => {
                        declared = Some((attr("tests").unwrap(), attr("failures").unwrap()))
                    }
                    b"testcase" => {
                        cases += 1;
                        current = attr("name").unwrap();
                    }
                    b"failure" => {
                        failures += 1;
                        failed_names.push(current.clone());
                        assert!(
                            attr("message").unwrap().contains("measured"),
                            "a failure says what was measured"
                        );
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let (tests, declared_failures) = declared.expect("a testsuite element");
    assert_eq!(tests.parse::<usize>().unwrap(), cases);
    assert_eq!(declared_failures.parse::<usize>().unwrap(), failures);
    assert_eq!(
        cases,
        results.thresholds.len() + results.checks.len() + 3,
        "one case per threshold, per built-in check and per verdict"
    );
    assert_eq!(failed_names, ["search_patient.p50 <0.001ms"]);

    let md = std::fs::read_to_string(bundle.join("summary.md")).unwrap();
    assert!(
        md.contains("**FAIL**") && md.contains("search_patient.p50"),
        "{md}"
    );
    assert!(md.lines().count() < 60, "short enough for a PR comment");

    // `surge report` re-renders every file from summary.json, identically.
    let before = std::fs::read(bundle.join("report.html")).unwrap();
    std::fs::remove_file(bundle.join("report.html")).unwrap();
    std::fs::remove_dir_all(bundle.join("charts")).unwrap();
    let status = Command::new(surge_bin())
        .arg("report")
        .arg(&bundle)
        .output()
        .unwrap();
    assert_eq!(
        status.status.code(),
        Some(1),
        "a failed threshold still exits 1 when re-rendered"
    );
    assert_eq!(std::fs::read(bundle.join("report.html")).unwrap(), before);
    assert!(bundle.join("charts/throughput.png").exists());
}

/// FHIR search and an OpenMRS search, each its own request.
fn two_requests(base_url: &str) -> String {
    format!(
        r#"[target]
base_url = "{base_url}"
replica_header = "X-Served-By"

[auth]
kind = "openmrs-basic"
username = "admin"
password = "Admin123"

[load]
model = "closed"
[[load.stages]]
users = 4
hold = "3s"

[[personas]]
name = "both"
steps = [{{ request = "fhir_search" }}, {{ request = "openmrs_search" }}]

[requests.fhir_search]
path = "/fhir/Patient?name=Rahman&_count=5"

[requests.openmrs_search]
path = "/openmrs/ws/rest/v1/patient?q=Karim&limit=5"
"#
    )
}

async fn bundle_with(service: ServiceOptions, out: &Path) -> PathBuf {
    let cluster = cluster(ClusterOptions {
        service,
        ..Default::default()
    })
    .await;
    let path = scenario_file(out, "two", &two_requests(&cluster.url));
    let report = run(path, None, None, &out.join("reports")).await;
    cluster.shutdown().await;
    report.bundle
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_finds_the_slowed_request_and_only_that_one() {
    let _engine = engine_lock().await;
    let dir = tempfile::tempdir().unwrap();
    let baseline = bundle_with(ServiceOptions::default(), dir.path()).await;
    let slowed = bundle_with(
        ServiceOptions {
            slow: vec![("/fhir/Patient".into(), 4.0)],
            ..Default::default()
        },
        dir.path(),
    )
    .await;
    // The slowed request gets about 4× its 5 ms hold: far beyond these limits,
    // which stay above what a shared 2-core machine wanders between runs.
    let compare = |a: &Path, b: &Path| {
        Command::new(surge_bin())
            .arg("compare")
            .arg(a)
            .arg(b)
            .args([
                "--max-regression",
                "p50=50%",
                "--max-regression",
                "p95=50%",
                "--max-regression",
                "error_rate=1%",
            ])
            .output()
            .unwrap()
    };

    let same = compare(&baseline, &baseline);
    let text = String::from_utf8_lossy(&same.stdout);
    assert_eq!(same.status.code(), Some(0), "{text}");
    assert!(!text.contains("REGRESSION"), "{text}");

    let worse = compare(&baseline, &slowed);
    let text = String::from_utf8_lossy(&worse.stdout);
    assert_eq!(worse.status.code(), Some(1), "{text}");
    let regressed: Vec<&str> = text.lines().filter(|l| l.ends_with("REGRESSION")).collect();
    assert!(
        regressed
            .iter()
            .any(|l| l.starts_with("fhir_search") && l.contains("p50")),
        "{text}"
    );
    assert!(
        regressed.iter().all(|l| l.starts_with("fhir_search")),
        "only the slowed request regresses: {text}"
    );

    let bad = Command::new(surge_bin())
        .args(["compare", "/nonexistent", "/nonexistent"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
