use super::*;

fn sample(
    request: usize,
    replica: &str,
    at: Instant,
    service_ms: u64,
    queue_ms: u64,
    error: Option<ErrorClass>,
) -> Sample<'_> {
    Sample {
        request,
        replica,
        scheduled: at,
        sent: at + Duration::from_millis(queue_ms),
        done: at + Duration::from_millis(queue_ms + service_ms),
        status: Some(if error.is_some() { 500 } else { 200 }),
        error,
    }
}

#[test]
fn accounts_for_every_issued_request() {
    let rec = Recorder::new(
        vec!["login".into(), "search".into()],
        vec![Duration::from_secs(10)],
    );
    let t0 = rec.started();
    for i in 0..10 {
        rec.issue(1);
        if i < 8 {
            let err = (i == 0).then_some(ErrorClass::Http5xx);
            rec.record(sample(
                1,
                if i % 2 == 0 { "r1" } else { "r2" },
                t0,
                10,
                0,
                err,
            ));
        }
    }
    let m = rec.finish(RunInfo::default());
    let t = &m.results.totals;
    assert_eq!(
        (t.issued, t.succeeded, t.failed, t.cancelled),
        (10, 7, 1, 2)
    );
    assert_eq!(t.issued, t.succeeded + t.failed + t.cancelled);
    assert_eq!(m.results.replicas.len(), 2);
    assert_eq!(
        m.results.request("search").unwrap().errors[&ErrorClass::Http5xx],
        1
    );
    assert_eq!(m.results.cells.len(), m.histograms.len());
}

#[test]
fn a_target_is_gone_only_when_refusing_and_silent() {
    let rec = Recorder::new(vec!["a".into()], vec![Duration::from_secs(10)]);
    let t0 = rec.started();
    rec.record(sample(0, "r1", t0, 1, 0, None));
    assert!(!rec.target_gone(Duration::ZERO), "answering");
    let mut refused = sample(0, "unknown", t0, 1, 0, Some(ErrorClass::Connect));
    refused.status = None;
    rec.record(refused);
    assert!(
        !rec.target_gone(Duration::ZERO),
        "one refusal is not a vanished target"
    );
    rec.record(refused);
    rec.record(refused);
    assert!(
        rec.target_gone(Duration::ZERO),
        "refusing since its last answer"
    );
    assert!(
        !rec.target_gone(Duration::from_secs(60)),
        "not for long enough yet"
    );
    rec.record(sample(0, "r1", t0, 1, 0, None));
    assert!(!rec.target_gone(Duration::ZERO), "answered again");
}

#[test]
fn long_names_make_short_distinct_file_names() {
    let (a, b) = ("x".repeat(5000) + "a", "x".repeat(5000) + "b");
    assert!(file_part(&a).len() < 80);
    assert_ne!(file_part(&a), file_part(&b));
    assert_eq!(file_part("search_patient"), "search_patient");
}

#[test]
fn percentile_labels_carry_no_float_noise() {
    let labels: Vec<String> = CURVE_QUANTILES.iter().map(|q| percent_label(*q)).collect();
    assert!(labels.contains(&"99.999%".to_owned()), "{labels:?}");
    assert!(labels.contains(&"50%".to_owned()), "{labels:?}");
    assert!(labels.iter().all(|l| l.len() <= 8), "{labels:?}");
}

#[test]
fn a_step_not_sent_is_counted_apart_and_is_no_sample() {
    let rec = Recorder::new(
        vec!["search".into(), "register".into()],
        vec![Duration::from_secs(10)],
    );
    rec.issue(0);
    rec.record(sample(0, "r1", rec.started(), 10, 0, None));
    for _ in 0..9 {
        rec.not_sent(1, "${patient_uuid} was never captured");
    }
    let m = rec.finish(RunInfo::default());
    let r = &m.results;
    let register = r
        .request("register")
        .expect("a row for a request never sent");
    assert_eq!(
        (register.issued, register.count, register.not_sent),
        (0, 0, 9)
    );
    assert_eq!(
        register.not_sent_reasons["${patient_uuid} was never captured"],
        9
    );
    assert_eq!(register.latency, Percentiles::default());
    assert_eq!(
        (r.totals.issued, r.totals.not_sent, r.overall.count),
        (1, 9, 1)
    );
    assert_eq!(r.timeline.iter().map(|t| t.requests).sum::<u64>(), 1);
    assert!(
        r.replicas.iter().all(|s| s.name == "r1"),
        "no `unknown` row"
    );
    assert_eq!(m.histograms.len(), 1);
}

#[test]
fn latency_counts_from_the_schedule_and_service_from_the_send() {
    let rec = Recorder::new(vec!["a".into()], vec![Duration::from_secs(10)]);
    rec.issue(0);
    rec.record(sample(0, "r1", rec.started(), 20, 100, None));
    let m = rec.finish(RunInfo::default());
    let s = m.results.request("a").unwrap();
    assert!((s.latency.p50 - 120.0).abs() < 0.2, "{}", s.latency.p50);
    assert!((s.service.p50 - 20.0).abs() < 0.1, "{}", s.service.p50);
}

#[test]
fn stages_split_by_scheduled_time_and_count_drops() {
    let rec = Recorder::new(
        vec!["a".into()],
        vec![Duration::from_secs(5), Duration::from_secs(10)],
    );
    let t0 = rec.started();
    assert_eq!(rec.stage_at(t0 + Duration::from_secs(4)), 0);
    assert_eq!(rec.stage_at(t0 + Duration::from_secs(6)), 1);
    assert_eq!(rec.stage_at(t0 + Duration::from_secs(60)), 1);
    rec.arrival(t0 + Duration::from_secs(6), true);
    rec.arrival(t0 + Duration::from_secs(6), false);
    let m = rec.finish(RunInfo::default());
    assert_eq!(
        (m.results.stages[1].arrivals, m.results.stages[1].dropped),
        (2, 1)
    );
    assert_eq!(m.results.totals.dropped_arrivals, 1);
}
