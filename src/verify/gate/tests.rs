use super::*;
use crate::bundle::{Percentiles, Totals, SCHEMA_VERSION};
use crate::scenario::threshold::ThresholdError;

fn parse(name: &str, expression: &str) -> Result<Threshold, ThresholdError> {
    crate::scenario::threshold::parse(name, expression, &["search", "never_ran"])
}

fn results() -> RunResults {
    let search = Stats {
        name: "search".into(),
        count: 100,
        ok: 98,
        failed: 2,
        error_rate: 0.02,
        throughput: 10.0,
        latency: Percentiles {
            p95: 450.0,
            p99: 900.0,
            ..Default::default()
        },
        ..Default::default()
    };
    RunResults {
        schema_version: SCHEMA_VERSION,
        run_id: "t".into(),
        scenario: "t".into(),
        scenario_file: "t.toml".into(),
        target: "http://127.0.0.1:1".into(),
        tls_verify: true,
        model: crate::bundle::LoadModel::Open,
        arrivals: None,
        setup_requests: Vec::new(),
        started_at: String::new(),
        elapsed_s: 10.0,
        busy_s: 10.0,
        planned_s: 10.0,
        interrupted: None,
        user_panics: 0,
        totals: Totals {
            arrivals: 50,
            dropped_arrivals: 5,
            ..Default::default()
        },
        stages: vec![],
        overall: Stats {
            name: "all".into(),
            ..search.clone()
        },
        requests: vec![search],
        replicas: vec![],
        attribution: Default::default(),
        cells: vec![],
        timeline: vec![],
        request_timelines: vec![],
        sessions: Default::default(),
        consistency: Default::default(),
        thresholds: vec![],
        latency_slo: None,
        checks: vec![],
        chaos: None,
        autoscaling: None,
        shard: None,
        metrics_out: Vec::new(),
        merged: None,
        environment: None,
    }
}

#[test]
fn passes_and_fails_on_measured_values() {
    let r = results();
    let verdicts = judge(
        &[
            parse("search.p95", "< 500ms").unwrap(),
            parse("search.p99", "< 500ms").unwrap(),
            parse("errors.rate", "< 1%").unwrap(),
            parse("dropped.rate", "<= 10%").unwrap(),
            parse("requests.throughput", ">= 10/s").unwrap(),
        ],
        &r,
    );
    let passed: Vec<bool> = verdicts.iter().map(|v| v.passed).collect();
    assert_eq!(passed, [true, false, false, true, true]);
    assert_eq!(verdicts[1].measured_text, "900.0ms");
    assert_eq!(verdicts[2].measured_text, "2.000%");
}

#[test]
fn nothing_measured_fails() {
    let v = judge(&[parse("never_ran.p95", "< 1s").unwrap()], &results());
    assert!(!v[0].passed);
    assert_eq!(v[0].measured, None);
    assert_eq!(
        v[0].measured_phrase(),
        "nothing measured: no request of this name completed"
    );
}

/// A login that works while every request of the scenario fails is not a
/// run that succeeded; one scenario request that worked is.
#[test]
fn requests_succeeded_counts_the_scenarios_own_requests() {
    let mut r = results();
    r.requests[0].ok = 0;
    r.requests[0].failed = 100;
    r.requests[0].issued = 100;
    r.requests[0]
        .errors
        .insert(crate::bundle::ErrorClass::Http5xx, 100);
    r.requests.push(Stats {
        name: "auth.login".into(),
        count: 10,
        ok: 10,
        issued: 10,
        ..Default::default()
    });
    r.totals.succeeded = 10;
    let expected = Expectations {
        scenario_requests: vec!["search".into()],
        requests: vec!["search".into()],
        uploads: false,
    };
    let first = &checks(&expected, &r)[0];
    assert!(!first.passed, "{first:?}");
    assert!(first.detail.contains("none of 100 of the scenario's requests sent succeeded (search: 100 failed (http_5xx 100)"), "{}", first.detail);
    // The report that found it: 5 of 328 succeeded read as a pass.
    r.requests[0].ok = 5;
    r.requests[0].failed = 323;
    r.requests[0].issued = 328;
    let first = &checks(&expected, &r)[0];
    assert!(!first.passed, "{first:?}");
    assert_eq!(first.name, MOST_SUCCEEDED);
    assert!(
        first.detail.starts_with(
            "only 5 of 328 (1.5%) of the scenario's requests sent succeeded: most failed (search:"
        ),
        "{}",
        first.detail
    );
    r.requests[0].ok = 165;
    r.requests[0].failed = 163;
    let first = &checks(&expected, &r)[0];
    assert!(first.passed, "{first:?}");
    assert!(
        first.detail.contains("165 of 328 (50.3%)"),
        "{}",
        first.detail
    );
    assert!(
        first.detail.contains("more than half must"),
        "{}",
        first.detail
    );
    // Nothing of the scenario's sent at all: nothing measured, not a pass.
    let mut silent = r.clone();
    silent.requests[0] = Stats {
        name: "search".into(),
        not_sent: 4,
        ..Default::default()
    };
    silent.totals.not_sent = 4;
    let first = &checks(&expected, &silent)[0];
    assert!(!first.passed);
    assert!(
        first
            .detail
            .starts_with("nothing measured: none of the scenario's requests was sent (4 steps"),
        "{}",
        first.detail
    );
    // And a request never sent: named, with its reason.
    let expected = Expectations {
        requests: vec!["search".into(), "register".into()],
        ..expected
    };
    let sent = &checks(&expected, &r)[1];
    assert!(
        !sent.passed
            && sent
                .detail
                .contains("never sent: register (no user reached it)"),
        "{sent:?}"
    );
}

fn pairs(replica: &str, verdicts: &[(Verdict, u64)]) -> crate::bundle::ReplicaCounts {
    crate::bundle::ReplicaCounts {
        replica: replica.into(),
        verdicts: verdicts.iter().copied().collect(),
    }
}

/// Uploads read back on every replica pass; pairs no read could judge
/// fail, saying how many, where and why — unless chaos took that
/// replica down, where they are stated.
#[test]
fn uploads_verifiable_never_passes_over_pairs_nobody_judged() {
    let expected = Expectations {
        scenario_requests: vec!["search".into()],
        requests: vec!["search".into()],
        uploads: true,
    };
    let mut r = results();
    r.consistency.uploads = 225;
    r.consistency.replicas = vec![
        pairs("r1", &[(Verdict::Ok, 225)]),
        pairs(
            "r2",
            &[
                (Verdict::Ok, 10),
                (Verdict::Error, 151),
                (Verdict::Unverified, 64),
            ],
        ),
    ];
    r.consistency.verdicts = [
        (Verdict::Ok, 235),
        (Verdict::Error, 151),
        (Verdict::Unverified, 64),
    ]
    .into();
    r.consistency.errors = [
        ("r2: connect".to_owned(), 150),
        ("r2: status 502".to_owned(), 1),
    ]
    .into();
    let check = uploads_verifiable(&expected, &r).unwrap();
    assert!(!check.passed, "{check:?}");
    assert_eq!(
        check.detail,
        "151 of 450 (upload, replica) pairs could not be read back: r2 (151 errors: connect 150, status 502 1); 64 pairs were never read (r2 64): see attachments.unverified"
    );
    // The same pairs on a replica chaos killed: stated, not failed.
    r.chaos = Some(crate::bundle::ChaosReport {
        events: vec![crate::bundle::ChaosEvent {
            at_s: 3.0,
            action: "kill-pod random".into(),
            target: vec!["r2".into()],
            outcome: crate::bundle::Outcome::Done,
            answer: String::new(),
            ready_before: None,
            ready_after_s: None,
            watched: true,
            impact: None,
        }],
        ..Default::default()
    });
    let check = uploads_verifiable(&expected, &r).unwrap();
    assert!(check.passed, "{check:?}");
    assert_eq!(
        check.detail,
        "all 225 uploads were read back, 235 (upload, replica) pairs judged; 151 pairs on replicas chaos took down could not be read: r2 (151 errors: connect 150, status 502 1); 64 pairs were never read (r2 64): see attachments.unverified"
    );
    // Every pair judged: a plain pass.
    r.chaos = None;
    r.consistency.replicas[1] = pairs("r2", &[(Verdict::Ok, 200), (Verdict::Missing, 25)]);
    r.consistency.verdicts = [(Verdict::Ok, 425), (Verdict::Missing, 25)].into();
    let check = uploads_verifiable(&expected, &r).unwrap();
    assert!(check.passed, "{check:?}");
    assert_eq!(
        check.detail,
        "all 225 uploads were read back, 450 (upload, replica) pairs judged"
    );
}

/// Count thresholds of every kind: with nothing behind them they fail
/// as "nothing measured"; with evidence they judge the count.
#[test]
fn counts_never_pass_on_nothing() {
    let counts = [
        ("attachments.missing", "< 1", "no upload was read back"),
        ("attachments.corrupted", "< 1", "no upload was read back"),
        ("attachments.stale", "< 1", "no upload was read back"),
        ("attachments.unverified", "< 1", "no upload was read back"),
        ("attachments.unverifiable", "< 1", "no upload completed"),
        (
            "attachments.visible_p99",
            "< 5s",
            "no upload became visible everywhere",
        ),
        ("session.drops", "< 1", "no session was accepted"),
        ("session.drop_rate", "< 1%", "no session was accepted"),
        ("dropped.count", "< 1", "no arrival was scheduled"),
        ("errors.count", "< 1", "no request completed"),
        (
            "search.count",
            "< 1000",
            "no request of this name completed",
        ),
    ];
    let thresholds: Vec<_> = counts
        .iter()
        .map(|(m, e, _)| parse(m, e).unwrap())
        .collect();
    let mut empty = results();
    empty.totals.arrivals = 0;
    empty.overall.count = 0;
    empty.requests[0].count = 0;
    for (v, (metric, _, why)) in judge(&thresholds, &empty).iter().zip(&counts) {
        assert!(!v.passed, "{metric} passed on nothing");
        assert_eq!(v.measured, None, "{metric}");
        assert_eq!(
            v.measured_text,
            format!("nothing measured: {why}"),
            "{metric}"
        );
    }

    let mut measured = results();
    measured.sessions.sessions = 40;
    measured.consistency.uploads = 10;
    measured.consistency.visible_everywhere = 10;
    measured.consistency.visible.p99 = 120.0;
    measured.overall.failed = 0;
    let judged = judge(&thresholds, &measured);
    let failed: Vec<&str> = judged
        .iter()
        .filter(|v| !v.passed)
        .map(|v| v.metric.as_str())
        .collect();
    // 5 dropped arrivals of 50; every other count is 0 (or 100 < 1000).
    assert_eq!(failed, ["dropped.count"]);
    assert_eq!(judged[5].measured_phrase(), "measured 120.0ms");
}

/// A run under 30/s whose HPA (10 per pod) had one pod, then three from
/// `three_from` seconds on (never, with `None`); p99 900 ms while short.
fn scaled(three_from: Option<f64>) -> RunResults {
    let mut r = results();
    r.elapsed_s = 8.0;
    r.timeline = (0..8)
        .map(|second| crate::bundle::TimelineRow {
            second,
            requests: 30,
            p99_ms: if three_from.is_some_and(|t| second as f64 + 1.0 >= t) {
                50.0
            } else {
                900.0
            },
            ..Default::default()
        })
        .collect();
    let sample = |at_s: f64, ready: u32| crate::bundle::AutoscalerSample {
        at_s,
        ready,
        ..Default::default()
    };
    r.autoscaling = Some(crate::bundle::AutoscalingTimeline {
        workload: "deployment/hapi".into(),
        hpa: "clinic/hapi".into(),
        metric: Some("pods http_server_requests_per_second".into()),
        target: Some(10.0),
        samples: std::iter::once(sample(0.0, 1))
            .chain(three_from.map(|t| sample(t, 3)))
            .collect(),
        unanswered: 0,
        forecast: None,
    });
    r
}

#[test]
fn the_autoscaling_verdict_passes_pods_in_time_and_fails_pods_that_never_came() {
    let gate = [
        parse("requests.p99", "< 500ms").unwrap(),
        parse("autoscaling.scale_up_s", "< 10s").unwrap(),
        parse("autoscaling.over_slo_s", "< 5s").unwrap(),
    ];
    // Three pods 3.5 s in: the rise of second 0 caught up at second 3.
    let v = judge(&gate, &scaled(Some(3.5)));
    assert!(v[1].passed && v[2].passed, "{v:?}");
    assert_eq!(v[1].measured, Some(3000.0));
    assert_eq!(v[1].measured_text, "3s");
    assert_eq!(
        v[2].measured,
        Some(3000.0),
        "seconds 0, 1 and 2 over 500 ms"
    );
    // maxReplicas 1: never enough pods; every second over the SLO.
    let v = judge(&gate, &scaled(None));
    assert!(!v[1].passed && !v[2].passed, "{v:?}");
    assert_eq!(v[1].measured_text, "not within the run");
    assert_eq!(v[2].measured, Some(8000.0));
}

#[test]
fn the_autoscaling_verdict_without_an_autoscaler_or_an_slo_is_nothing_measured() {
    let scale_up = parse("autoscaling.scale_up_s", "< 10s").unwrap();
    let over = parse("autoscaling.over_slo_s", "< 5s").unwrap();
    let v = judge(&[scale_up.clone(), over.clone()], &results());
    assert!(v.iter().all(|t| !t.passed && t.measured.is_none()));
    assert!(
        v[0].measured_text.contains("no autoscaler watched"),
        "{}",
        v[0].measured_text
    );
    let v = judge(&[over], &scaled(Some(3.5)));
    assert!(!v[0].passed);
    assert!(
        v[0].measured_text.contains("no latency SLO"),
        "{}",
        v[0].measured_text
    );
    // A typo in the statistic names the ones there are.
    let typo = parse("autoscaling.scale_up", "< 10s").unwrap_err();
    assert!(
        typo.to_string().contains("`scale_up_s` and `over_slo_s`"),
        "{typo}"
    );
}

/// `writes.stall_s`, both ways: a failover whose writes waited 10.4 s
/// fails `< 5s`, a healthy run's slowest write passes it; no writes, or
/// merged shards whose stalls shared no time, is nothing measured.
#[test]
fn the_stall_is_judged_in_time_and_never_without_one() {
    use crate::bundle::{Stall, Writes};
    let thresholds = [parse("writes.stall_s", "< 5s").unwrap()];
    let with = |sent, stall: Option<(f64, f64)>| {
        let mut r = results();
        r.consistency.writes = Writes {
            sent,
            stall: stall.map(|(from_s, to_s)| Stall {
                from_s,
                to_s,
                writes: 1,
            }),
            ..Default::default()
        };
        judge(&thresholds, &r).remove(0)
    };
    let waited = with(80, Some((20.0, 30.4)));
    assert!(!waited.passed);
    assert!((waited.measured.unwrap() - 10_400.0).abs() < 1e-6);
    let healthy = with(80, Some((3.0, 3.3)));
    assert!(healthy.passed, "{healthy:?}");
    let none = with(0, None);
    assert!(!none.passed);
    assert_eq!(
        none.measured_text,
        "nothing measured: no write (a request with a read-back) completed"
    );
    let apart = with(80, None);
    assert!(!apart.passed);
    assert!(
        apart.measured_text.contains("stalls did not overlap"),
        "{}",
        apart.measured_text
    );
}

/// The write thresholds: nothing measured without writes, without an
/// audit, or with an audit that could not answer for every write; with
/// them, a lost write fails `writes.lost < 1` and a healthy audit passes
/// it, and the outage is judged in time.
#[test]
fn write_thresholds_judge_the_audit_and_the_outage_both_ways() {
    use crate::bundle::{Outage, WriteAudit, Writes};
    let thresholds = [
        parse("writes.lost", "< 1").unwrap(),
        parse("writes.failed", "< 10").unwrap(),
        parse("writes.outage_s", "< 2s").unwrap(),
    ];
    let said = |r: &RunResults| -> Vec<(bool, String)> {
        judge(&thresholds, r)
            .into_iter()
            .map(|v| (v.passed, v.measured_text))
            .collect()
    };
    let none = results();
    let completed = "nothing measured: no write (a request with a read-back) completed";
    assert_eq!(
        said(&none),
        [
            (
                false,
                "nothing measured: no acknowledged write was audited after the run ([verify] audit = true)".to_owned()
            ),
            (false, completed.to_owned()),
            (false, completed.to_owned()),
        ]
    );

    // A failover: 40 writes, 6 failed one after another from 2.0 to
    // 3.05 s; 2 of 35 acknowledged lost.
    let mut failover = results();
    failover.consistency.writes = Writes {
        sent: 40,
        failed: 6,
        outage: Some(Outage {
            from_s: 2.0,
            to_s: 3.05,
            failed: 6,
        }),
        audit: Some(WriteAudit {
            acknowledged: 35,
            present: 33,
            lost: 2,
            ..Default::default()
        }),
        stall: None,
    };
    let judged = judge(&thresholds, &failover);
    assert_eq!(
        judged.iter().map(|v| v.passed).collect::<Vec<_>>(),
        [false, true, true],
        "{judged:?}"
    );
    assert_eq!(judged[0].measured, Some(2.0));
    assert_eq!(judged[1].measured, Some(6.0));
    let window = judged[2].measured.unwrap();
    assert!((window - 1050.0).abs() < 1e-6, "{window}");

    // Synchronous replication: nothing lost; a long outage fails.
    let mut healthy = failover.clone();
    let w = &mut healthy.consistency.writes;
    let audit = w.audit.as_mut().unwrap();
    (audit.present, audit.lost) = (35, 0);
    w.outage.as_mut().unwrap().to_s = 5.0;
    let judged = judge(&thresholds, &healthy);
    assert_eq!(
        judged.iter().map(|v| v.passed).collect::<Vec<_>>(),
        [true, true, false],
        "{judged:?}"
    );

    // An audit that could not read every write does not say none was lost,
    // however many it found present.
    let mut partial = healthy.clone();
    let audit = partial.consistency.writes.audit.as_mut().unwrap();
    (audit.present, audit.unanswered) = (34, 1);
    let lost = &judge(&thresholds, &partial)[0];
    assert!(!lost.passed);
    assert!(
        lost.measured_text
            .starts_with("nothing measured: no complete audit"),
        "{}",
        lost.measured_text
    );
    let mut capped = healthy.clone();
    capped
        .consistency
        .writes
        .audit
        .as_mut()
        .unwrap()
        .not_audited = 3;
    assert!(!judge(&thresholds, &capped)[0].passed);
}
