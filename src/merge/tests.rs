use super::*;
use crate::bundle::{ErrorClass, Expectations};
use crate::measure::{Recorder, RunInfo, Sample};
use std::time::Duration;

const FINGERPRINT: &str = "0123456789abcdef0123456789abcdef";

/// A shard's bundle made by the recorder itself: `n` requests of `search`
/// on replicas r0/r1 with latencies `base + k` ms over ~3 s, every tenth
/// failing; began `began_ms` after the epoch.
fn shard(index: u32, count: u32, n: u64, base: u64, began_ms: u64) -> ShardBundle {
    let recorder = Recorder::new(vec!["search".into()], vec![Duration::from_secs(10)]);
    recorder.begin();
    let t0 = recorder.started();
    for k in 0..n {
        let scheduled = t0 + Duration::from_millis(k * 3000 / n.max(1));
        let done = scheduled + Duration::from_millis(base + k);
        recorder.arrival(scheduled, false);
        recorder.record(Sample {
            request: 0,
            replica: if k % 2 == 0 { "r0" } else { "r1" },
            scheduled,
            sent: scheduled,
            done,
            status: Some(if k % 10 == 0 { 500 } else { 200 }),
            error: (k % 10 == 0).then_some(ErrorClass::Http5xx),
        });
        recorder.issue(0);
    }
    let mut m = recorder.finish(RunInfo {
        run_id: format!("shard{index}"),
        scenario: "s".into(),
        model: crate::bundle::LoadModel::Open,
        stage_targets: vec![30.0],
        ..Default::default()
    });
    m.results.shard = Some(ShardInfo {
        index,
        count,
        fingerprint: FINGERPRINT.into(),
        host: format!("h{index}"),
        began_unix_ms: began_ms,
        expectations: Expectations {
            scenario_requests: vec!["search".into()],
            requests: vec!["search".into()],
            uploads: false,
        },
        ..Default::default()
    });
    m.results.thresholds = crate::verify::gate::judge(
        &[crate::scenario::threshold::parse("errors.rate", "< 20%", &[]).unwrap()],
        &m.results,
    );
    ShardBundle {
        name: format!("shard{index}"),
        results: m.results,
        histograms: m.histograms,
        visible: None,
        timeline: m.timeline,
    }
}

fn three() -> Vec<ShardBundle> {
    vec![
        shard(0, 3, 30, 10, 1_000_000),
        shard(1, 3, 40, 50, 1_000_300),
        shard(2, 3, 20, 200, 1_000_900),
    ]
}

fn copy(p: &ShardBundle) -> ShardBundle {
    ShardBundle {
        name: p.name.clone(),
        results: p.results.clone(),
        histograms: p
            .histograms
            .iter()
            .map(|h| CellHistograms {
                latency: h.latency.clone(),
                service: h.service.clone(),
            })
            .collect(),
        visible: p.visible.clone(),
        timeline: p.timeline.clone(),
    }
}

/// The merged histograms are the shards' added bucket for bucket, and every
/// figure follows from them: the p99 of all 90 requests, not a mean of p99s.
#[test]
fn histograms_add_exactly_and_counts_sum() {
    let parts = three();
    let mut union = Histogram::<u64>::new(3).unwrap();
    for p in &parts {
        for h in &p.histograms {
            union.add(&h.latency).unwrap();
        }
    }
    let m = merge(parts.iter().map(copy).collect(), false, "m").unwrap();
    let r = &m.results;
    assert_eq!(r.overall.count, 90);
    assert_eq!(r.totals.issued, 90);
    assert_eq!(r.totals.arrivals, 90);
    assert_eq!(r.overall.failed, 3 + 4 + 2);
    assert_eq!(
        r.overall.latency.p99,
        union.value_at_quantile(0.99) as f64 / 1000.0
    );
    assert_eq!(r.overall.latency.max, union.max() as f64 / 1000.0);
    let mut merged_sum = Histogram::<u64>::new(3).unwrap();
    for h in &m.histograms {
        merged_sum.add(&h.latency).unwrap();
    }
    assert_eq!(merged_sum, union, "bucket for bucket");
    assert_eq!(r.replicas.len(), 2);
    assert_eq!(r.replicas.iter().map(|s| s.count).sum::<u64>(), 90);
    // Judged again on the whole: 9 of 90 failed, 10% < 20%.
    assert!(r.thresholds[0].passed, "{:?}", r.thresholds);
    assert_eq!(r.thresholds[0].measured, Some(0.1));
    assert!(r.checks.iter().all(|c| c.passed), "{:?}", r.checks);
    let info = r.merged.as_ref().unwrap();
    assert_eq!(
        info.shards.iter().map(|s| s.index).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(info.start_spread_ms, 900.0);
    assert!(info.missing.is_empty());
}

/// Timelines on the wall clock: a shard that began a second later lands a
/// second later, and each second's percentiles come from its histograms added.
#[test]
fn timelines_align_on_the_wall_clock_and_their_percentiles_merge() {
    let a = shard(0, 2, 30, 10, 5_000_000);
    let b = shard(1, 2, 30, 100, 5_001_000);
    let a_rows = a.results.timeline.clone();
    let b_rows = b.results.timeline.clone();
    let m = merge(vec![a, b], false, "m").unwrap();
    let rows = &m.results.timeline;
    let total = |rows: &[TimelineRow]| rows.iter().map(|r| r.requests).sum::<u64>();
    assert_eq!(total(rows), total(&a_rows) + total(&b_rows));
    // Second 0 holds only shard 0's requests; b's second 0 is merged second 1.
    assert_eq!(rows[0].requests, a_rows[0].requests);
    assert_eq!(rows[1].requests, a_rows[1].requests + b_rows[0].requests);
    assert_eq!(rows[0].p99_ms, a_rows[0].p99_ms);
    assert!(rows[1].p99_ms >= b_rows[0].p99_ms.min(a_rows[1].p99_ms));
    // The merged bundle keeps its seconds' histograms, to merge again.
    assert!(m
        .timeline
        .iter()
        .any(|(series, second, _)| series == "all" && *second == 1));
}

#[test]
fn the_autoscalers_timeline_is_kept_from_the_shard_that_watched_it_on_the_common_clock() {
    let a = shard(0, 2, 30, 10, 5_000_000);
    let mut b = shard(1, 2, 30, 100, 5_001_000);
    b.results.autoscaling = Some(crate::bundle::AutoscalingTimeline {
        hpa: "clinic/hapi".into(),
        samples: vec![crate::bundle::AutoscalerSample {
            at_s: 2.0,
            ready: 3,
            ..Default::default()
        }],
        ..Default::default()
    });
    let m = merge(vec![a, b], false, "m").unwrap();
    let t = m.results.autoscaling.expect("kept");
    assert_eq!(t.hpa, "clinic/hapi");
    // Shard 1 began 1 s after shard 0: its second 2 is the test's second 3.
    assert_eq!(t.samples[0].at_s, 3.0);
    // Without a shard that watched, none.
    let plain = merge(
        vec![shard(0, 2, 30, 10, 0), shard(1, 2, 30, 10, 0)],
        false,
        "p",
    )
    .unwrap();
    assert!(plain.results.autoscaling.is_none());
}

/// Merging merges is merging all.
#[test]
fn merging_is_associative() {
    let parts = three();
    let all = merge(parts.iter().map(copy).collect(), false, "m").unwrap();
    let first_two = merge(vec![copy(&parts[0]), copy(&parts[1])], true, "m01").unwrap();
    let nested = merge(
        vec![
            ShardBundle {
                name: "m01".into(),
                results: first_two.results,
                histograms: first_two.histograms,
                visible: None,
                timeline: first_two.timeline,
            },
            copy(&parts[2]),
        ],
        false,
        "m",
    )
    .unwrap();
    let (a, b) = (&all.results, &nested.results);
    assert_eq!(a.overall, b.overall);
    assert_eq!(a.requests, b.requests);
    assert_eq!(a.replicas, b.replicas);
    assert_eq!(a.cells, b.cells);
    assert_eq!(a.totals, b.totals);
    assert_eq!(a.timeline, b.timeline);
    assert_eq!(a.thresholds, b.thresholds);
    assert_eq!(
        a.merged.as_ref().unwrap().shards,
        b.merged.as_ref().unwrap().shards
    );
}

/// Each refusal names the bundle and says what is wrong; none panics.
#[test]
fn merges_that_cannot_be_one_test_are_refused() {
    let err = |parts: Vec<ShardBundle>, partial: bool| match merge(parts, partial, "m") {
        Ok(_) => panic!("merged"),
        Err(e) => e.to_string(),
    };
    let mut other = shard(1, 3, 5, 10, 0);
    other.results.shard.as_mut().unwrap().fingerprint = "ffff".repeat(8);
    other.name = "elsewhere".into();
    let e = err(vec![shard(0, 3, 5, 10, 0), other], true);
    assert!(
        e.contains("elsewhere is shard 1 of 3 of another test"),
        "{e}"
    );

    let mut twice = shard(0, 3, 5, 10, 0);
    twice.name = "again".into();
    let e = err(vec![shard(0, 3, 5, 10, 0), twice], true);
    assert!(
        e.contains("shard 0 of 3 is in both shard0 and again"),
        "{e}"
    );

    let e = err(vec![shard(0, 3, 5, 10, 0), shard(2, 3, 5, 10, 0)], false);
    assert!(e.contains("shards [1] of 3 are missing"), "{e}");
    let partial = merge(
        vec![shard(0, 3, 5, 10, 0), shard(2, 3, 5, 10, 0)],
        true,
        "m",
    )
    .unwrap();
    assert_eq!(partial.results.merged.unwrap().missing, [1]);

    let mut whole = shard(0, 1, 5, 10, 0);
    whole.results.shard = None;
    whole.name = "plain".into();
    let e = err(vec![whole], false);
    assert!(e.contains("plain is not a shard's bundle"), "{e}");

    let mut old = shard(1, 3, 5, 10, 0);
    old.results.schema_version = 1;
    old.name = "old".into();
    let e = err(vec![shard(0, 3, 5, 10, 0), old], true);
    assert!(e.contains("old has schema_version 1"), "{e}");

    let mut flat = shard(1, 3, 5, 10, 0);
    flat.timeline.clear();
    flat.name = "flat".into();
    let e = err(vec![shard(0, 3, 5, 10, 0), flat], true);
    assert!(e.contains("flat holds no per-second histograms"), "{e}");
    assert!(err(Vec::new(), false).contains("nothing to merge"));
}

/// A threshold on the time until uploads were visible is judged on the
/// shards' histograms added, not on a figure no shard measured: judged
/// before the merged histogram was read, `attachments.visible_p99 < 1s`
/// passed on 0 ms with uploads that took seconds.
#[test]
fn the_time_until_visible_is_judged_on_every_shards_uploads() {
    let mut parts = three();
    for (i, part) in parts.iter_mut().enumerate() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        // Microseconds: shard 2's uploads took 3 s to be visible.
        let took_us = if i == 2 { 3_000_000 } else { 20_000 };
        h.record_n(took_us, 10).unwrap();
        part.visible = Some(h);
        part.results.consistency.uploads = 10;
        part.results.consistency.visible_everywhere = 10;
        part.results.thresholds = crate::verify::gate::judge(
            &[crate::scenario::threshold::parse("attachments.visible_p99", "< 1s", &[]).unwrap()],
            &part.results,
        );
    }
    let merged = merge(parts, false, "m").unwrap().results;
    let t = &merged.thresholds[0];
    assert_eq!(t.metric, "attachments.visible_p99");
    assert!(!t.passed, "{t:?}");
    assert!(t.measured.unwrap() > 2_900.0, "{t:?}");

    // Where every shard's uploads were quick, it passes.
    let mut parts = three();
    for part in &mut parts {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        h.record_n(20_000, 10).unwrap();
        part.visible = Some(h);
        part.results.consistency.uploads = 10;
        part.results.consistency.visible_everywhere = 10;
        part.results.thresholds = crate::verify::gate::judge(
            &[crate::scenario::threshold::parse("attachments.visible_p99", "< 1s", &[]).unwrap()],
            &part.results,
        );
    }
    let merged = merge(parts, false, "m").unwrap().results;
    assert!(merged.thresholds[0].passed, "{:?}", merged.thresholds[0]);
}
