use super::*;

const REQUESTS: [&str; 4] = ["search_patient", "search", "login", "x"];

fn parse(name: &str, expression: &str) -> Result<Threshold, String> {
    super::parse(name, expression, &REQUESTS).map_err(|e| e.to_string())
}

#[test]
fn a_threshold_that_cannot_fail_or_pass_is_refused() {
    for (metric, expr, says) in [
        ("errors.rate", "< 150%", "can never fail"),
        ("errors.rate", "<= 100%", "can never fail"),
        ("errors.rate", "> 100%", "can never pass"),
        ("errors.rate", "< 0%", "can never pass"),
        ("search.p95", "< 0ms", "can never pass"),
        ("requests.throughput", ">= 0/s", "can never fail"),
    ] {
        let err = parse(metric, expr).unwrap_err();
        assert!(err.contains(says), "{metric} {expr}: {err}");
    }
    for (metric, expr) in [
        ("errors.rate", "< 100%"),
        ("errors.rate", "<= 1%"),
        ("session.drops", "< 1"),
        ("requests.throughput", "> 0/s"),
    ] {
        assert!(parse(metric, expr).is_ok(), "{metric} {expr}");
    }
}

#[test]
fn parses_latency_rate_count_and_throughput() {
    let t = parse("search_patient.p95", "< 800ms").unwrap();
    assert_eq!(
        (t.metric, t.op, t.limit),
        (
            Metric::Request {
                name: "search_patient".into(),
                stat: RequestStat::Latency(LatencyStat::P95)
            },
            Op::Lt,
            800.0
        )
    );
    assert_eq!(parse("errors.rate", "<1%").unwrap().limit, 0.01);
    assert_eq!(parse("login.p99", "<= 2s").unwrap().limit, 2000.0);
    assert_eq!(parse("dropped.count", "< 5").unwrap().limit, 5.0);
    assert_eq!(parse("requests.throughput", ">= 50/s").unwrap().op, Op::Ge);
}

#[test]
fn rejects_wrong_units_and_shapes() {
    assert!(parse("x.p95", "< 1%").unwrap_err().contains("time unit"));
    assert!(parse("errors.rate", "< 1ms")
        .unwrap_err()
        .contains("percentage"));
    assert!(parse("x.p95", "800ms").unwrap_err().contains("start with"));
    assert!(parse("p95", "< 1s")
        .unwrap_err()
        .contains("<request>.<stat>"));
    assert!(parse("x.p42", "< 1s")
        .unwrap_err()
        .contains("unknown statistic"));
    assert!(parse("errors.p95", "< 1s").unwrap_err().contains("rate"));
}

#[test]
fn a_subject_is_a_request_or_one_of_the_named_subjects() {
    let err = super::parse("serach.p95", "< 1s", &REQUESTS).unwrap_err();
    assert!(matches!(err, ThresholdError::UnknownSubject { .. }) && err.is_in_name());
    assert!(
        err.to_string()
            .contains("(login, search, search_patient, x)"),
        "{err}"
    );
    // A statistic nobody has is named before the subject.
    assert!(matches!(
        super::parse("serach.p42", "< 1s", &REQUESTS),
        Err(ThresholdError::UnknownRequestStat { .. })
    ));
    for (name, metric) in [
        (
            "requests.throughput",
            Metric::Requests(RequestStat::Throughput),
        ),
        ("dropped.rate", Metric::Dropped(Tally::Rate)),
        ("session.drop_rate", Metric::Session(SessionStat::DropRate)),
        (
            "attachments.missing",
            Metric::Attachments(AttachmentStat::Verdict(crate::bundle::Verdict::Missing)),
        ),
        (
            "attachments.visible_p99",
            Metric::Attachments(AttachmentStat::Visible(LatencyStat::P99)),
        ),
        ("writes.lost", Metric::Writes(WriteStat::Lost)),
        ("writes.failed", Metric::Writes(WriteStat::Failed)),
        ("writes.outage_s", Metric::Writes(WriteStat::Outage)),
        ("writes.stall_s", Metric::Writes(WriteStat::Stall)),
    ] {
        assert_eq!(Metric::parse(name, &[]), Ok(metric), "{name}");
    }
    assert!(matches!(
        Metric::parse("attachments.visible_p42", &[]),
        Err(ThresholdError::UnknownStat { .. })
    ));
    let unknown = Metric::parse("writes.gone", &[]).unwrap_err().to_string();
    assert!(
        unknown.contains("`lost`, `failed`, `outage_s` and `stall_s`"),
        "{unknown}"
    );
}

#[test]
fn operators_compare() {
    assert!(Op::Lt.holds(1.0, 2.0) && !Op::Lt.holds(2.0, 2.0));
    assert!(Op::Le.holds(2.0, 2.0) && Op::Ge.holds(2.0, 2.0) && !Op::Gt.holds(2.0, 2.0));
}
