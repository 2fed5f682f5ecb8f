//! `surge merge`: the shards of one test, merged exactly into one bundle
//! every other command reads. Pure: bundles in, one bundle out.
//!
//! - histograms per stage × request × replica added (HDR add: the merged
//!   p99 is the p99 of every request, not an average of the shards' p99s),
//!   and every statistic made again from them;
//! - the timelines aligned on the wall clock (each shard's second 0 is when
//!   its load began) and summed, their percentiles from every second's
//!   histograms added the same way;
//! - counts summed; session and attachment ledgers combined (a drop is a
//!   drop whichever shard saw it); chaos from the shard that ran it, and
//!   the autoscaler's timeline from the shard that watched it;
//! - thresholds and the built-in checks judged again on the merged result.
//!
//! Merging is associative: a merged bundle records the shards it holds and
//! merges again like them. Bundles of different tests (fingerprint, shard
//! count), a shard twice, or a shard missing (unless allowed) are refused,
//! naming the bundle.

mod error;
mod roll_call;

pub use error::MergeError;

pub use roll_call::ShardBundle;
use roll_call::{roll_call, Clock, RollCall};

use crate::bundle::{add_counts, AutoscalingTimeline, LoadModel};
use crate::bundle::{
    hdr, CellHistograms, CellStats, ChaosReport, ConsistencyVerdict, Measurements, MergeInfo,
    RequestTimeline, RunResults, SessionVerdict, ShardInfo, StageStats, Stats, TimelineHistograms,
    TimelineRow, Totals, MAX_EVENTS, MAX_PROBLEMS, SCHEMA_VERSION,
};
use crate::measure::Cell;
use hdrhistogram::Histogram;
use std::collections::{BTreeMap, BTreeSet};

/// Merges `parts`; with `allow_partial`, shards of the test may be missing
/// (the merged bundle lists them).
pub fn merge(
    parts: Vec<ShardBundle>,
    allow_partial: bool,
    run_id: &str,
) -> Result<Measurements, MergeError> {
    let RollCall {
        reference,
        shards,
        run_ids,
        missing,
    } = roll_call(&parts, allow_partial)?;
    let clock = Clock::of(&parts)?;
    let offsets = &clock.offsets;
    let spread_ms = shards.iter().map(|s| s.began_unix_ms).max().unwrap_or(0) as f64
        - shards.iter().map(|s| s.began_unix_ms).min().unwrap_or(0) as f64;
    let elapsed_s = clock.latest(&parts, |r| r.elapsed_s);
    let (cells, histograms, overall, requests, replicas) = merge_cells(&parts, elapsed_s)?;
    let (timeline, request_timelines, timeline_hdr) = merge_timelines(&parts, offsets)?;
    let (earliest, _) = parts
        .iter()
        .zip(&clock.began)
        .min_by_key(|(_, b)| **b)
        .expect("the roll call refuses no bundles");
    let r0 = &parts[0].results;
    let mut results = RunResults {
        schema_version: SCHEMA_VERSION,
        run_id: run_id.to_owned(),
        scenario: r0.scenario.clone(),
        scenario_file: r0.scenario_file.clone(),
        target: r0.target.clone(),
        tls_verify: parts.iter().all(|p| p.results.tls_verify),
        model: r0.model,
        setup_requests: r0.setup_requests.clone(),
        arrivals: r0.arrivals.clone(),
        started_at: earliest.results.started_at.clone(),
        elapsed_s,
        busy_s: clock.latest(&parts, |r| r.busy_s),
        planned_s: parts
            .iter()
            .map(|p| p.results.planned_s)
            .fold(0.0, f64::max),
        interrupted: interrupted(&parts),
        user_panics: parts.iter().map(|p| p.results.user_panics).sum(),
        totals: totals(&parts),
        stages: stages(&parts),
        overall,
        requests,
        replicas,
        attribution: parts.iter().fold(Default::default(), |mut all, p| {
            all.absorb(&p.results.attribution);
            all
        }),
        cells,
        timeline,
        request_timelines,
        sessions: sessions(&parts, offsets),
        consistency: consistency(&parts, offsets),
        thresholds: Vec::new(),
        latency_slo: None,
        checks: Vec::new(),
        chaos: chaos(&parts, offsets),
        autoscaling: autoscaling(&parts, offsets),
        shard: None,
        // Each shard pushed its own counts; how each fared, shard by shard.
        metrics_out: parts
            .iter()
            .flat_map(|p| p.results.metrics_out.clone())
            .collect(),
        environment: environment(&parts),
        merged: Some(MergeInfo {
            shards,
            run_ids,
            missing,
            start_spread_ms: spread_ms,
        }),
    };
    let visible = visible(&parts)?;
    if let Some(v) = &visible {
        results.consistency.visible = crate::bundle::Percentiles::from_hist(v);
    }
    judge(&mut results, &parts[0], &reference)?;
    Ok(Measurements {
        results,
        histograms,
        visible,
        began: Some(std::time::UNIX_EPOCH + std::time::Duration::from_millis(clock.origin)),
        timeline: timeline_hdr,
    })
}

/// Judges the merged result again: the first bundle's thresholds (every
/// shard has the same) and the built-in checks against the whole test.
fn judge(
    results: &mut RunResults,
    first: &ShardBundle,
    reference: &ShardInfo,
) -> Result<(), MergeError> {
    // Every request the shards ran: the names their thresholds may judge.
    let names: Vec<String> = results.requests.iter().map(|s| s.name.clone()).collect();
    let requests: Vec<&str> = names.iter().map(String::as_str).collect();
    let thresholds = first
        .results
        .thresholds
        .iter()
        .map(|t| crate::scenario::threshold::parse(&t.metric, &t.limit, &requests))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| MergeError::Threshold {
            name: first.name.clone(),
            error,
        })?;
    results.thresholds = crate::verify::gate::judge(&thresholds, results);
    results.latency_slo = crate::verify::gate::latency_slo(&thresholds);
    results.checks = crate::verify::gate::checks(&reference.expectations, results);
    Ok(())
}

/// Every upload's time until visible everywhere, from each bundle's histogram.
fn visible(parts: &[ShardBundle]) -> Result<Option<Histogram<u64>>, MergeError> {
    let mut visible: Option<Histogram<u64>> = None;
    for h in parts.iter().filter_map(|p| p.visible.as_ref()) {
        add_into(visible.get_or_insert_with(|| growing(h)), h)?;
    }
    Ok(visible)
}

type MergedCells = (
    Vec<CellStats>,
    Vec<CellHistograms>,
    Stats,
    Vec<Stats>,
    Vec<Stats>,
);

/// Cells added by (stage, request, replica); the overall, per-request and
/// per-replica statistics made again from them.
fn merge_cells(parts: &[ShardBundle], elapsed_s: f64) -> Result<MergedCells, MergeError> {
    let mut by_key: BTreeMap<(usize, String, String), (Cell, String, String)> = BTreeMap::new();
    for part in parts {
        if part.histograms.len() != part.results.cells.len() {
            return Err(MergeError::CellsAndHistograms {
                name: part.name.clone(),
            });
        }
        for (cell, h) in part.results.cells.iter().zip(&part.histograms) {
            let incoming = Cell::from_bundle(h.latency.clone(), h.service.clone(), &cell.stats);
            let entry = by_key
                .entry((cell.stage, cell.request.clone(), cell.replica.clone()))
                .or_insert_with(|| {
                    (
                        Cell::default(),
                        cell.latency_hdr.clone(),
                        cell.service_hdr.clone(),
                    )
                });
            incoming.merge_into(&mut entry.0);
        }
    }
    let mut overall = Cell::default();
    let mut by_request: BTreeMap<String, Cell> = BTreeMap::new();
    let mut by_replica: BTreeMap<String, Cell> = BTreeMap::new();
    let mut cells = Vec::new();
    let mut histograms = Vec::new();
    for ((stage, request, replica), (cell, latency_hdr, service_hdr)) in &by_key {
        cell.merge_into(&mut overall);
        cell.merge_into(by_request.entry(request.clone()).or_default());
        cell.merge_into(by_replica.entry(replica.clone()).or_default());
        cells.push(CellStats {
            stage: *stage,
            request: request.clone(),
            replica: replica.clone(),
            stats: cell.stats(request, elapsed_s),
            latency_hdr: latency_hdr.clone(),
            service_hdr: service_hdr.clone(),
        });
        histograms.push(cell.histograms());
    }
    // Requests issued but never completed, or never sent, keep their row.
    let names: BTreeSet<String> = parts
        .iter()
        .flat_map(|p| p.results.requests.iter().map(|s| s.name.clone()))
        .collect();
    let mut requests = Vec::new();
    for name in names {
        let mut stats = by_request
            .get(&name)
            .map(|c| c.stats_with_curve(&name, elapsed_s))
            .unwrap_or_else(|| Cell::default().stats_with_curve(&name, elapsed_s));
        for s in parts.iter().filter_map(|p| p.results.request(&name)) {
            stats.issued += s.issued;
            stats.not_sent += s.not_sent;
            add_counts(&mut stats.not_sent_reasons, &s.not_sent_reasons);
            add_counts(&mut stats.expectation_failures, &s.expectation_failures);
        }
        requests.push(stats);
    }
    let mut overall_stats = overall.stats_with_curve("all", elapsed_s);
    overall_stats.issued = parts.iter().map(|p| p.results.overall.issued).sum();
    overall_stats.not_sent = parts.iter().map(|p| p.results.overall.not_sent).sum();
    let replicas = by_replica
        .iter()
        .map(|(name, c)| c.stats(name, elapsed_s))
        .collect();
    Ok((cells, histograms, overall_stats, requests, replicas))
}

/// An empty histogram of `like`'s precision that grows to take any value (a
/// histogram read from a file keeps the range it was written with).
fn growing(like: &Histogram<u64>) -> Histogram<u64> {
    let mut h = Histogram::new(like.sigfig())
        .unwrap_or_else(|_| Histogram::new(3).expect("3 significant digits is valid"));
    h.auto(true);
    h
}

fn add_into(into: &mut Histogram<u64>, h: &Histogram<u64>) -> Result<(), MergeError> {
    into.add(h).map_err(|e| MergeError::Add(format!("{e:?}")))
}

type MergedTimelines = (Vec<TimelineRow>, Vec<RequestTimeline>, TimelineHistograms);

/// Rows summed second by second on the common clock; percentiles from the
/// seconds' histograms added.
fn merge_timelines(parts: &[ShardBundle], offsets: &[u64]) -> Result<MergedTimelines, MergeError> {
    // (series, second) → histogram.
    let mut hists: BTreeMap<(String, u64), Histogram<u64>> = BTreeMap::new();
    for (part, offset) in parts.iter().zip(offsets) {
        let has_requests = part.results.overall.count > 0;
        if has_requests && part.timeline.is_empty() {
            return Err(MergeError::NoTimeline {
                name: part.name.clone(),
                file: hdr::TIMELINE_HDR,
            });
        }
        for (series, second, bytes) in &part.timeline {
            let h = hdr::decompress(bytes).map_err(|e| MergeError::Histogram {
                name: part.name.clone(),
                why: e.to_string(),
            })?;
            add_into(
                hists
                    .entry((series.clone(), second + offset))
                    .or_insert_with(|| growing(&h)),
                &h,
            )?;
        }
    }
    let sum_rows = |rows_of: &dyn Fn(&RunResults) -> Option<Vec<TimelineRow>>, series: &str| {
        let mut merged: BTreeMap<u64, TimelineRow> = BTreeMap::new();
        for (part, offset) in parts.iter().zip(offsets) {
            for row in rows_of(&part.results).unwrap_or_default() {
                let second = row.second + offset;
                let m = merged.entry(second).or_insert_with(|| TimelineRow {
                    second,
                    ..Default::default()
                });
                m.requests += row.requests;
                m.errors += row.errors;
                m.dropped += row.dropped;
            }
        }
        let seconds = match merged.keys().last() {
            Some(last) => 0..=*last,
            #[allow(clippy::reversed_empty_ranges)]
            None => 1..=0,
        };
        seconds
            .map(|second| {
                let mut row = merged.remove(&second).unwrap_or(TimelineRow {
                    second,
                    ..Default::default()
                });
                if let Some(h) = hists.get(&(series.to_owned(), second)) {
                    crate::measure::fill_row(&mut row, h);
                }
                row
            })
            .collect::<Vec<_>>()
    };
    let timeline = sum_rows(&|r: &RunResults| Some(r.timeline.clone()), "all");
    let names: BTreeSet<String> = parts
        .iter()
        .flat_map(|p| {
            p.results
                .request_timelines
                .iter()
                .map(|t| t.request.clone())
        })
        .collect();
    let request_timelines = names
        .into_iter()
        .map(|name| RequestTimeline {
            rows: sum_rows(
                &|r: &RunResults| {
                    r.request_timelines
                        .iter()
                        .find(|t| t.request == name)
                        .map(|t| t.rows.clone())
                },
                &name,
            ),
            request: name,
        })
        .collect();
    let kept = hists
        .iter()
        .map(|((series, second), h)| (series.clone(), *second, hdr::compress(h)))
        .collect();
    Ok((timeline, request_timelines, kept))
}

fn interrupted(parts: &[ShardBundle]) -> Option<String> {
    let said: Vec<String> = parts
        .iter()
        .filter_map(|p| {
            p.results
                .interrupted
                .as_ref()
                .map(|why| format!("{}: {why}", p.name))
        })
        .collect();
    (!said.is_empty()).then(|| said.join("; "))
}

fn totals(parts: &[ShardBundle]) -> Totals {
    let mut t = Totals::default();
    for p in parts {
        let s = &p.results.totals;
        t.issued += s.issued;
        t.succeeded += s.succeeded;
        t.failed += s.failed;
        t.cancelled += s.cancelled;
        t.dropped_arrivals += s.dropped_arrivals;
        t.arrivals += s.arrivals;
        t.not_sent += s.not_sent;
        t.users_started += s.users_started;
    }
    t
}

/// Stages as planned, with every shard's arrivals and drops; a closed
/// model's users are the shards' users together.
fn stages(parts: &[ShardBundle]) -> Vec<StageStats> {
    let mut stages = parts[0].results.stages.clone();
    for stage in &mut stages {
        stage.arrivals = 0;
        stage.dropped = 0;
        if parts[0].results.model == LoadModel::Closed {
            stage.target = 0.0;
        }
    }
    for p in parts {
        for (into, s) in stages.iter_mut().zip(&p.results.stages) {
            into.arrivals += s.arrivals;
            into.dropped += s.dropped;
            if p.results.model == LoadModel::Closed {
                into.target += s.target;
            }
        }
    }
    stages
}

fn sessions(parts: &[ShardBundle], offsets: &[u64]) -> SessionVerdict {
    let mut v = SessionVerdict::default();
    let mut transitions: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut seconds: BTreeMap<u64, u64> = BTreeMap::new();
    for (p, offset) in parts.iter().zip(offsets) {
        let s = &p.results.sessions;
        v.sessions += s.sessions;
        v.relogins += s.relogins;
        v.switches += s.switches;
        v.drops += s.drops;
        v.drops_during_chaos += s.drops_during_chaos;
        for t in &s.transitions {
            *transitions
                .entry((t.before.clone(), t.after.clone()))
                .or_default() += t.drops;
        }
        for d in &s.timeline {
            *seconds.entry(d.second + offset).or_default() += d.drops;
        }
        for e in &s.events {
            let mut e = e.clone();
            e.at_s += *offset as f64;
            v.events.push(e);
        }
    }
    v.drop_rate = if v.sessions == 0 {
        0.0
    } else {
        v.drops as f64 / v.sessions as f64
    };
    v.drops_per_1000_sessions = v.drop_rate * 1000.0;
    v.transitions = transitions
        .into_iter()
        .map(|((before, after), drops)| crate::bundle::Transition {
            before,
            after,
            drops,
        })
        .collect();
    v.timeline = seconds
        .into_iter()
        .map(|(second, drops)| crate::bundle::DropSecond { second, drops })
        .collect();
    v.events.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    v.events.truncate(MAX_EVENTS);
    v
}

fn consistency(parts: &[ShardBundle], offsets: &[u64]) -> ConsistencyVerdict {
    let mut v = ConsistencyVerdict::default();
    let mut replicas: BTreeMap<String, BTreeMap<crate::bundle::Verdict, u64>> = BTreeMap::new();
    for (p, offset) in parts.iter().zip(offsets) {
        let c = &p.results.consistency;
        v.uploads += c.uploads;
        v.visible_everywhere += c.visible_everywhere;
        v.unverifiable += c.unverifiable;
        add_counts(&mut v.unverifiable_reasons, &c.unverifiable_reasons);
        for (k, n) in &c.verdicts {
            *v.verdicts.entry(*k).or_default() += n;
        }
        for r in &c.replicas {
            let into = replicas.entry(r.replica.clone()).or_default();
            for (k, n) in &r.verdicts {
                *into.entry(*k).or_default() += n;
            }
        }
        v.problems.extend(c.problems.iter().cloned());
        v.read_backs.absorb(&c.read_backs, *offset);
        v.writes.add(&c.writes, *offset as f64);
        add_counts(&mut v.errors, &c.errors);
    }
    if let Some(audit) = v.writes.audit.as_mut() {
        // A shard that audited nothing leaves its writes unaudited, not absent.
        for p in parts
            .iter()
            .filter(|p| p.results.consistency.writes.audit.is_none())
        {
            audit.acknowledged += p.results.consistency.uploads;
            audit.not_audited += p.results.consistency.uploads;
        }
    }
    v.problems.truncate(MAX_PROBLEMS);
    v.replicas = replicas
        .into_iter()
        .map(|(replica, verdicts)| crate::bundle::ReplicaCounts { replica, verdicts })
        .collect();
    v
}

/// The environment of the least trustworthy shard, figure by figure (the
/// latest generator, the busiest machine, the slowest control): a test is
/// as trustworthy as its worst part.
fn environment(parts: &[ShardBundle]) -> Option<crate::bundle::Environment> {
    let envs: Vec<&crate::bundle::Environment> = parts
        .iter()
        .filter_map(|p| p.results.environment.as_ref())
        .collect();
    if envs.is_empty() {
        return None;
    }
    let worst = |f: fn(&crate::bundle::Environment) -> Option<f64>| {
        envs.iter().filter_map(|e| f(e)).reduce(f64::max)
    };
    let lateness = envs
        .iter()
        .filter_map(|e| e.lateness.clone())
        .reduce(|a, b| {
            let count = a.count + b.count;
            let mut w = if b.p99_ms > a.p99_ms { b } else { a };
            w.count = count;
            w
        });
    let control = envs
        .iter()
        .filter_map(|e| e.control.clone())
        .reduce(|a, b| {
            let count = a.count + b.count;
            let mut w = if b.p50_ms > a.p50_ms { b } else { a };
            w.count = count;
            w
        });
    Some(crate::bundle::Environment {
        cpus: envs.iter().filter_map(|e| e.cpus).max(),
        lateness,
        process_cpu: worst(|e| e.process_cpu),
        machine_busy: worst(|e| e.machine_busy),
        steal: worst(|e| e.steal),
        load_per_cpu: worst(|e| e.load_per_cpu),
        control,
    })
}

/// The autoscaler as the shard that watched it (shard 0) recorded it, on
/// the common clock.
fn autoscaling(parts: &[ShardBundle], offsets: &[u64]) -> Option<AutoscalingTimeline> {
    let (part, offset) = parts
        .iter()
        .zip(offsets)
        .find(|(p, _)| p.results.autoscaling.is_some())?;
    let mut timeline = part.results.autoscaling.clone()?;
    for s in &mut timeline.samples {
        s.at_s += *offset as f64;
    }
    Some(timeline)
}

/// Chaos as the shard that ran it recorded it, on the common clock.
fn chaos(parts: &[ShardBundle], offsets: &[u64]) -> Option<ChaosReport> {
    let (part, offset) = parts
        .iter()
        .zip(offsets)
        .find(|(p, _)| p.results.chaos.is_some())?;
    let mut chaos = part.results.chaos.clone()?;
    let shift = *offset as f64;
    for e in &mut chaos.events {
        e.at_s += shift;
    }
    for c in &mut chaos.replica_counts {
        c.at_s += shift;
    }
    Some(chaos)
}

#[cfg(test)]
mod tests;
