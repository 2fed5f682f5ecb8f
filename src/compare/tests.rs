use super::*;

fn hist(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
    let mut h = Histogram::new(3).unwrap();
    for v in values {
        h.record(v).unwrap();
    }
    h
}

fn side(name: &str, h: Histogram<u64>, failed: u64) -> Side {
    let n = h.len();
    Side {
        latency: BTreeMap::from([(name.to_owned(), h)]),
        outcomes: BTreeMap::from([(name.to_owned(), (n, failed))]),
        seconds: BTreeMap::new(),
        environment: None,
    }
}

#[test]
fn a_run_that_wandered_widens_its_interval() {
    use crate::bundle::TimelineRow;
    let base = side("a", hist((1..=2000).map(|i| 1000 + i)), 0);
    let mut drifted = side("a", hist((1..=2000).map(|i| 1500 + i)), 0);
    let narrow = compare(
        std::slice::from_ref(&base),
        &drifted,
        &[parse_limit("p50=10%").unwrap()],
    );
    assert_eq!(
        narrow.rows[0].verdict,
        Change::Regression,
        "25% worse, tight samples: {narrow:?}"
    );
    // The same run, whose per-second medians swung between 1 and 4 ms.
    let rows = (0..10)
        .map(|s| TimelineRow {
            second: s,
            requests: 200,
            p50_ms: if s % 2 == 0 { 1.0 } else { 4.0 },
            ..Default::default()
        })
        .collect();
    drifted.seconds.insert("a".into(), rows);
    let wide = compare(
        std::slice::from_ref(&base),
        &drifted,
        &[parse_limit("p50=10%").unwrap()],
    );
    assert_eq!(wide.rows[0].verdict, Change::WithinNoise, "{wide:?}");
}

fn limits() -> Vec<Limit> {
    vec![
        parse_limit("p95=10%").unwrap(),
        parse_limit("error_rate=1%").unwrap(),
    ]
}

#[test]
fn limits_parse_and_refuse_nonsense() {
    assert_eq!(
        parse_limit("p99=5%").unwrap(),
        Limit {
            stat: "p99".into(),
            allowed: 0.05
        }
    );
    assert!(parse_limit("p42=5%").is_err());
    assert!(parse_limit("p95=5ms").is_err());
    assert!(parse_limit("p95").is_err());
}

#[test]
fn identical_runs_do_not_regress() {
    let s = side("a", hist((1..=2000).map(|i| 1000 + i)), 3);
    let c = compare(std::slice::from_ref(&s), &s, &limits());
    assert!(!c.regressed());
    assert!(c
        .rows
        .iter()
        .all(|r| r.verdict == Change::WithinNoise && r.change == 0.0));
}

#[test]
fn a_doubled_latency_is_a_regression_and_a_small_sample_is_noise() {
    let base = side("a", hist((1..=2000).map(|i| 1000 + i)), 0);
    let slow = side("a", hist((1..=2000).map(|i| 2 * (1000 + i))), 0);
    let c = compare(std::slice::from_ref(&base), &slow, &limits());
    assert_eq!(c.rows[0].verdict, Change::Regression, "{c:?}");
    assert!((c.rows[0].change - 1.0).abs() < 0.01);
    // Five samples each: a 21% higher p95 from one slow sample is noise.
    let few = side("a", hist([1000, 1100, 1200, 1300, 1400]), 0);
    let few_slow = side("a", hist([1000, 1100, 1200, 1300, 1700]), 0);
    assert_eq!(
        compare(std::slice::from_ref(&few), &few_slow, &limits()).rows[0].verdict,
        Change::WithinNoise
    );
}

#[test]
fn error_rates_compare_beyond_noise() {
    let base = side("a", hist((0..1000).map(|_| 1000)), 5);
    let worse = side("a", hist((0..1000).map(|_| 1000)), 60);
    let c = compare(std::slice::from_ref(&base), &worse, &limits());
    let e = c.rows.iter().find(|r| r.stat == "error_rate").unwrap();
    assert_eq!(e.verdict, Change::Regression);
    let same = side("a", hist((0..1000).map(|_| 1000)), 7);
    let c = compare(std::slice::from_ref(&base), &same, &limits());
    assert_eq!(
        c.rows
            .iter()
            .find(|r| r.stat == "error_rate")
            .unwrap()
            .verdict,
        Change::WithinNoise
    );
}

#[test]
fn too_few_samples_for_a_tail_quantile_never_regress() {
    // p99 of four samples: its upper bound is open, so no claim can be made.
    let base = side("a", hist([1000, 1010, 1020, 1030]), 0);
    let slow = side("a", hist([1300, 1310, 1320, 1330]), 0);
    let c = compare(
        std::slice::from_ref(&base),
        &slow,
        &[parse_limit("p99=10%").unwrap()],
    );
    assert_eq!(c.rows[0].verdict, Change::WithinNoise, "{c:?}");
    assert_eq!(c.rows[0].baseline_range.1, f64::INFINITY);
}

#[test]
fn requests_in_one_run_only_are_listed() {
    let a = side("a", hist([1000]), 0);
    let b = side("b", hist([1000]), 0);
    let c = compare(std::slice::from_ref(&a), &b, &limits());
    assert_eq!(c.unmatched, ["a", "b"]);
    assert!(c.rows.is_empty());
}

/// Three baselines that differ from each other by 20% make a band a 15%
/// slower run falls inside; one baseline (noise assumed ±10%) does not.
#[test]
fn a_baseline_history_measures_the_run_to_run_noise() {
    let run = |offset: u64| side("a", hist((1..=2000).map(|i| offset + i)), 0);
    let history = [run(1000), run(1200), run(1400)];
    let current = run(1350);
    let p50 = [parse_limit("p50=10%").unwrap()];
    let one = compare(std::slice::from_ref(&history[0]), &current, &p50);
    assert_eq!(one.rows[0].verdict, Change::Regression, "{one:?}");
    assert!(one.noise.contains("assumed ±10%"), "{}", one.noise);
    let three = compare(&history, &current, &p50);
    assert_eq!(three.rows[0].verdict, Change::WithinNoise, "{three:?}");
    assert!(
        three.noise.contains("from 3 baseline runs"),
        "{}",
        three.noise
    );
    assert_eq!(
        three.rows[0].baseline,
        compare(std::slice::from_ref(&history[1]), &history[1], &p50).rows[0].baseline,
        "the median run"
    );
    // Twice as slow is beyond any of them.
    let slow = run(4000);
    assert_eq!(
        compare(&history, &slow, &p50).conclusion(),
        Conclusion::Regression
    );
}

/// A latency regression on a run whose generator was late is
/// inconclusive; an error-rate regression fails whatever the environment.
#[test]
fn a_changed_environment_makes_latency_inconclusive_but_not_errors() {
    use crate::bundle::{Environment, Lateness};
    let env = |late_ms: f64| {
        Some(Environment {
            lateness: Some(Lateness {
                count: 100,
                p50_ms: 0.5,
                p99_ms: late_ms,
                max_ms: late_ms,
            }),
            ..Default::default()
        })
    };
    let mut base = side("a", hist((1..=2000).map(|i| 1000 + i)), 0);
    base.environment = env(1.0);
    let mut slow = side("a", hist((1..=2000).map(|i| 2 * (1000 + i))), 0);
    slow.environment = env(40.0);
    let c = compare(std::slice::from_ref(&base), &slow, &limits());
    assert_eq!(c.conclusion(), Conclusion::Inconclusive, "{c:?}");
    assert!(!c.regressed());
    assert!(
        c.environment[0].contains("the load generator was late"),
        "{:?}",
        c.environment
    );
    // The same slowdown on a quiet machine is a regression.
    slow.environment = env(1.2);
    assert_eq!(
        compare(std::slice::from_ref(&base), &slow, &limits()).conclusion(),
        Conclusion::Regression
    );
    // Errors regress whatever the environment.
    let mut failing = side("a", hist((1..=1000).map(|_| 1000)), 80);
    failing.environment = env(40.0);
    let mut base = side("a", hist((1..=1000).map(|_| 1000)), 2);
    base.environment = env(1.0);
    assert_eq!(
        compare(std::slice::from_ref(&base), &failing, &limits()).conclusion(),
        Conclusion::Regression
    );
}

/// The control request slowing beyond noise makes a latency regression
/// inconclusive; its point value wandering within noise does not.
#[test]
fn a_control_request_slowed_beyond_noise_says_the_machine_changed() {
    use crate::bundle::{Control, Environment};
    let with_control = |mut s: Side, control_us: u64| {
        s.latency.insert(
            "healthz".into(),
            hist((1..=2000).map(|i| control_us + i % 50)),
        );
        s.outcomes.insert("healthz".into(), (2000, 0));
        s.environment = Some(Environment {
            control: Some(Control {
                request: "healthz".into(),
                count: 2000,
                p50_ms: control_us as f64 / 1000.0,
                p95_ms: control_us as f64 / 1000.0,
            }),
            ..Default::default()
        });
        s
    };
    let base = with_control(side("a", hist((1..=2000).map(|i| 1000 + i)), 0), 1000);
    let slow_code = with_control(side("a", hist((1..=2000).map(|i| 2 * (1000 + i))), 0), 1000);
    let c = compare(std::slice::from_ref(&base), &slow_code, &limits());
    assert_eq!(c.conclusion(), Conclusion::Regression, "{c:?}");
    let slow_machine = with_control(side("a", hist((1..=2000).map(|i| 2 * (1000 + i))), 0), 2000);
    let c = compare(std::slice::from_ref(&base), &slow_machine, &limits());
    assert_eq!(c.conclusion(), Conclusion::Inconclusive, "{c:?}");
    assert!(
        c.environment[0].contains("the control request healthz slowed too, beyond noise"),
        "{:?}",
        c.environment
    );
}

/// A verdict that every baseline passed and the current run fails (session
/// drops, a built-in check) is a regression whatever the environment; a
/// latency threshold is left to the latency rows; a verdict the baseline
/// failed too is no news.
#[test]
fn verdicts_that_newly_fail_are_regressions() {
    let mut base: crate::bundle::RunResults =
        serde_json::from_str(include_str!("../report/testdata/summary.json")).unwrap();
    for t in &mut base.thresholds {
        t.passed = t.metric != "errors.rate";
    }
    let mut current = base.clone();
    for t in &mut current.thresholds {
        if matches!(
            t.metric.as_str(),
            "session.drops" | "search_patient.p95" | "errors.rate"
        ) {
            t.passed = false;
        }
    }
    current.checks[1].passed = false;
    let found = verdict_regressions(&[&base], &current);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].starts_with("session.drops < 1: passed in the baseline, fails now"),
        "{found:?}"
    );
    assert!(
        found[1].starts_with("every request sent: passed in the baseline, fails now"),
        "{found:?}"
    );
    assert!(verdict_regressions(&[&base], &base).is_empty());
    let c = Comparison {
        verdicts: found,
        environment: vec!["the machine was busier".into()],
        ..Default::default()
    };
    assert_eq!(
        c.conclusion(),
        Conclusion::Regression,
        "whatever the environment"
    );
}
