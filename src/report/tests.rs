//! Every output format from one fixed run (a short demo with a replica
//! killed mid-run, frozen in `testdata/summary.json`) and one fixed
//! calibration, compared with the snapshots under `snapshots/`. A change to
//! a format shows up as a reviewable diff: `INSTA_UPDATE=always cargo test
//! --lib report::tests` writes the new snapshots, and git shows what moved.

use super::*;
use crate::calibrate::{self, capacity::Slo, manifest, Demand};
use crate::compare::{self, Side};

pub(super) fn fixture() -> RunResults {
    serde_json::from_str(include_str!("testdata/summary.json")).expect("the fixture parses")
}

fn text(exporter: &dyn Export) -> String {
    String::from_utf8(exporter.serialize(&fixture()).unwrap()).unwrap()
}

/// The page without its charts' SVG (hundreds of kilobytes of paths,
/// checked apart): one `<svg/>` per chart, so the snapshot shows the page.
fn without_svg(html: &str) -> (String, usize) {
    let mut out = String::new();
    let mut rest = html;
    let mut charts = 0;
    while let Some(start) = rest.find("<svg") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("</svg>").expect("every chart closes") + start;
        out.push_str("<svg/>");
        charts += 1;
        rest = &rest[end + "</svg>".len()..];
    }
    out.push_str(rest);
    (out, charts)
}

fn calibration() -> calibrate::Calibration {
    let step = |rate: f64, achieved: f64, p99: f64| crate::bundle::Step {
        rate,
        achieved,
        p50_ms: p99 / 2.0,
        p95_ms: p99 * 0.9,
        p99_ms: p99,
        mean_ms: p99 / 2.0,
        error_rate: 0.0,
        dropped: 0,
        ..Default::default()
    };
    calibrate::analyse(
        vec![
            step(100.0, 100.0, 10.0),
            step(200.0, 199.0, 11.0),
            step(300.0, 240.0, 400.0),
            step(400.0, 241.0, 900.0),
        ],
        2,
        Slo {
            p99_ms: 100.0,
            error_budget: 0.01,
        },
        &Demand {
            base_rate: Some(50.0),
            peak_rate: Some(400.0),
            growth_per_s: 0.001,
            metric_window_s: 30.0,
            pod_start_s: 45.0,
            readiness_s: 10.0,
            hold_s: Some(0.01),
            checkouts_per_request: None,
            wait_probability: 0.05,
            pool_floor: 1,
            connection_budget: 97,
        },
    )
}

#[test]
fn json_summary_round_trips() {
    let json = text(&json::Summary);
    let back: RunResults = serde_json::from_str(&json).unwrap();
    assert_eq!(back, fixture(), "summary.json reads back as it was written");
    insta::assert_snapshot!("summary.json", json);
}

#[test]
fn timeline_csv() {
    insta::assert_snapshot!("timeline.csv", text(&csv::Timeline));
}

#[test]
fn requests_csv() {
    insta::assert_snapshot!("requests.csv", text(&csv::Requests));
}

#[test]
fn markdown_summary() {
    insta::assert_snapshot!("summary.md", text(&markdown::Summary));
}

#[test]
fn junit_xml() {
    insta::assert_snapshot!("junit.xml", text(&junit::Junit));
}

#[test]
fn html_report() {
    let (page, charts) = without_svg(&text(&html::Html));
    assert_eq!(charts, charts::list(&fixture()).len(), "one SVG per chart");
    insta::assert_snapshot!("report.html", page);
}

#[test]
fn terminal_summary_with_chaos() {
    insta::assert_snapshot!("terminal", terminal::summary(&fixture()));
}

#[test]
fn calibration_page_text_and_json() {
    let c = calibration();
    let page = String::from_utf8(calibration::Page.serialize(&c).unwrap()).unwrap();
    let (page, charts) = without_svg(&page);
    assert!(charts >= 1, "the staircase is drawn");
    insta::assert_snapshot!("calibration.html", page);
    insta::assert_snapshot!("calibration_text", calibration::text(&c));
    let json = String::from_utf8(calibration::Json.serialize(&c).unwrap()).unwrap();
    insta::assert_snapshot!("calibration.json", json);
}

#[test]
fn recommendations_yaml() {
    let c = calibration();
    let recommendations = Recommendations {
        workload: manifest::Workload {
            kind: "StatefulSet".into(),
            name: "openmrs".into(),
            namespace: Some("clinic".into()),
            metric: "http_server_requests_per_second".into(),
        },
        keda: Some((
            "http://prometheus.monitoring:9090".into(),
            "sum(rate(http_server_requests_seconds_count[1m]))".into(),
        )),
    };
    let yaml = String::from_utf8(recommendations.serialize(&c).unwrap()).unwrap();
    insta::assert_snapshot!("recommendations.yaml", yaml);
    let none = calibrate::Calibration { hpa: None, ..c };
    assert!(
        recommendations.serialize(&none).is_err(),
        "no manifest without a recommendation"
    );
}

#[test]
fn compare_table() {
    // The fixture against itself with one request made 30% slower.
    let side = |slower: f64| {
        let mut s = Side::default();
        for r in &fixture().requests {
            let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
            for i in 0..200u64 {
                let us = (1_000 + 50 * i) as f64;
                let us = if r.name == "search_patient" {
                    us * slower
                } else {
                    us
                };
                h.record(us as u64).unwrap();
            }
            s.latency.insert(r.name.clone(), h);
            s.outcomes.insert(r.name.clone(), (200, 0));
        }
        s
    };
    let limits: Vec<_> = ["p50=10%", "p95=10%", "error_rate=1%"]
        .iter()
        .map(|l| compare::parse_limit(l).unwrap())
        .collect();
    let c = compare::compare(&[side(1.0)], &side(1.6), &limits);
    assert!(c.regressed());
    insta::assert_snapshot!("comparison", comparison_table(&c));
}

#[test]
fn chaos_lines() {
    let chaos = fixture().chaos.expect("the fixture killed a replica");
    let section = chaos::section(&chaos);
    let lines: Vec<String> = std::iter::once(&section.heading)
        .chain(&section.events)
        .map(|l| l.text.words())
        .collect();
    insta::assert_snapshot!("chaos_lines", lines.join("\n"));
}

/// One vocabulary: every statement the terminal, `summary.md` and
/// `report.html` share is there word for word in all three (their syntax
/// taken away), notices included.
#[test]
fn the_three_formats_say_shared_facts_in_the_same_words() {
    let mut r = fixture();
    r.tls_verify = false;
    r.user_panics = 2;
    r.interrupted = Some("stopped by SIGINT".into());
    let rep = sections::build(&r);
    let terminal = terminal::summary(&r);
    let md = String::from_utf8(markdown::Summary.serialize(&r).unwrap())
        .unwrap()
        .replace("**", "")
        .replace('`', "");
    let html = String::from_utf8(html::Html.serialize(&r).unwrap()).unwrap();
    let mut page = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => page.push(c),
            _ => {}
        }
    }
    let page = page
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let chaos = rep.chaos.as_ref().unwrap();
    let shared = rep
        .notices
        .iter()
        .chain(&rep.totals)
        .chain(&rep.not_sent.as_ref().unwrap().items)
        .chain([&rep.sessions.summary, &rep.attachments.summary])
        .chain(&rep.sessions.transitions)
        .chain([&chaos.heading]);
    let mut checked = 0;
    for line in shared {
        let words = line.text.words();
        for (format, text) in [
            ("terminal", &terminal),
            ("summary.md", &md),
            ("report.html", &page),
        ] {
            assert!(
                text.contains(&words),
                "{format} does not say «{words}»:\n{text}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 10, "{checked}");
    assert!(terminal.contains("WARNING: TLS certificates were not verified"));
    assert!(md.contains("> Warning: TLS certificates were not verified"));
}
