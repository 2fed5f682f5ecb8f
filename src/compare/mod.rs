//! Baseline comparison for a CI gate: per request, how percentiles and the
//! error rate moved between two runs, and whether the move is larger than
//! run-to-run noise. Pure: the histograms come in, a verdict comes out.
//!
//! Noise is judged from the histograms, not from single numbers: for a
//! quantile q of n samples, the true quantile lies (with ~99% confidence)
//! between the order statistics at ranks n·q ± 2.576·√(n·q·(1−q)). That
//! alone assumes independent samples; a shared machine drifts, so for p50,
//! p95 and p99 the interval is widened to the batch-means interval of the
//! per-second values (each second a batch), whichever is wider. Two runs
//! differ beyond noise only when those intervals do not overlap. Error rates
//! use a two-proportion z-test at the same level.
//!
//! Run-to-run noise comes from a baseline history: with several baseline
//! runs (of the same build), the band a statistic may wander in is the union
//! of their intervals — how much the runs differ from each other, with each
//! one's own uncertainty. With a single baseline that noise is unknown, and
//! the comparison assumes it (±[`ASSUMED_RUN_TO_RUN`] beyond the baseline's
//! own interval) and says so.
//!
//! A latency regression between runs whose environments differ beyond
//! [`environment`]'s bounds (the generator was late, the machine busier,
//! the control request slower too) is *inconclusive*, not a regression;
//! error-rate regressions still are.

pub mod environment;

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;

/// z for a two-sided 99% interval.
const Z: f64 = 2.576;

/// With one baseline, the run-to-run noise assumed beyond its own interval
/// (0.10 = ±10%).
pub const ASSUMED_RUN_TO_RUN: f64 = 0.10;

/// A limit: `p95=10%` (relative), `error_rate=1%` (absolute percentage points).
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    /// `p50` … `p999`, `max`, or `error_rate`.
    pub stat: String,
    /// Relative increase allowed for latencies (0.10 = 10%); absolute increase for the error rate (0.01 = 1 point).
    pub allowed: f64,
}

/// Parses `p95=10%`.
pub fn parse_limit(text: &str) -> Result<Limit, String> {
    let (stat, value) = text
        .split_once('=')
        .ok_or_else(|| format!("--max-regression {text:?}: expected STAT=PERCENT, e.g. p95=10%"))?;
    let stat = stat.trim();
    if stat != "error_rate" && crate::bundle::quantile_named(stat).is_none() {
        return Err(format!("--max-regression {text:?}: unknown statistic `{stat}` (p50, p75, p90, p95, p99, p999 or error_rate)"));
    }
    let number = value
        .trim()
        .strip_suffix('%')
        .and_then(|n| n.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("--max-regression {text:?}: expected a percentage such as 10%"))?;
    Ok(Limit {
        stat: stat.to_owned(),
        allowed: number / 100.0,
    })
}

/// One side of a comparison, per request.
#[derive(Debug, Clone, Default)]
pub struct Side {
    /// Latency histograms (µs) per request name.
    pub latency: BTreeMap<String, Histogram<u64>>,
    /// Per-second p50/p95/p99 (ms) per request name: how much the run itself wandered.
    pub seconds: BTreeMap<String, Vec<crate::bundle::TimelineRow>>,
    /// (completed, failed) per request name.
    pub outcomes: BTreeMap<String, (u64, u64)>,
    /// Whether the run itself was trustworthy.
    pub environment: Option<crate::bundle::Environment>,
}

/// What happened to one statistic of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Worse beyond noise and beyond the allowed amount.
    Regression,
    /// Worse beyond noise, within the allowed amount.
    WorseWithinLimit,
    /// The difference is within run-to-run noise.
    WithinNoise,
    /// Better beyond noise.
    Improved,
}

/// One statistic of one request, compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Request.
    pub request: String,
    /// Statistic.
    pub stat: String,
    /// Baseline value (ms, or a fraction for the error rate).
    pub baseline: f64,
    /// Current value.
    pub current: f64,
    /// Relative change for latencies, absolute for the error rate.
    pub change: f64,
    /// The ~99% interval of the baseline value.
    pub baseline_range: (f64, f64),
    /// The ~99% interval of the current value.
    pub current_range: (f64, f64),
    /// Verdict.
    pub verdict: Change,
}

/// The comparison.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Comparison {
    /// Rows, by request then statistic.
    pub rows: Vec<Row>,
    /// Requests in only one of the runs.
    pub unmatched: Vec<String>,
    /// Baseline runs compared against.
    pub baselines: usize,
    /// Where the run-to-run noise came from, in words.
    pub noise: String,
    /// Why the current run's environment is not comparable with the
    /// baselines' (empty when it is).
    pub environment: Vec<String>,
    /// Verdicts the current run fails that every baseline passed (sessions,
    /// attachments, errors, drops, the built-in checks): these fail the
    /// comparison whatever the environment.
    pub verdicts: Vec<String>,
}

/// What a comparison concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    /// Nothing regressed beyond its limit.
    Pass,
    /// A statistic regressed beyond noise and its limit.
    Regression,
    /// Latency regressed, but the environments differ: it cannot be blamed
    /// on the code (run again).
    Inconclusive,
}

impl Comparison {
    /// The answer: an error-rate regression always fails; a latency one
    /// fails only when the environments are comparable.
    pub fn conclusion(&self) -> Conclusion {
        let regressed = |latency: bool| {
            self.rows
                .iter()
                .any(|r| r.verdict == Change::Regression && (r.stat != "error_rate") == latency)
        };
        if regressed(false) || !self.verdicts.is_empty() {
            Conclusion::Regression
        } else if regressed(true) && !self.environment.is_empty() {
            Conclusion::Inconclusive
        } else if regressed(true) {
            Conclusion::Regression
        } else {
            Conclusion::Pass
        }
    }

    /// True when the verdict is a regression.
    pub fn regressed(&self) -> bool {
        self.conclusion() == Conclusion::Regression
    }
}

/// Whether a threshold judges latency (`search.p95`, `requests.max`): a
/// busy machine may break it, so the latency rows judge it, not the verdicts.
fn judges_latency(metric: &str) -> bool {
    metric.rsplit_once('.').is_some_and(|(_, stat)| {
        crate::bundle::quantile_named(stat).is_some() || matches!(stat, "min" | "mean" | "max")
    })
}

/// The current run's verdicts that fail where every baseline that has them
/// passed: thresholds on sessions, attachments, errors and drops, and the
/// built-in checks (latency thresholds are left to the latency rows).
pub fn verdict_regressions(
    baselines: &[&crate::bundle::RunResults],
    current: &crate::bundle::RunResults,
) -> Vec<String> {
    let mut out = Vec::new();
    for t in current
        .thresholds
        .iter()
        .filter(|t| !t.passed && !judges_latency(&t.metric))
    {
        let before = baselines
            .iter()
            .flat_map(|b| b.thresholds.iter().filter(|o| o.metric == t.metric))
            .map(|o| o.passed);
        if passed_in_all(before) {
            out.push(format!(
                "{} {}: passed in the baseline, fails now ({})",
                t.metric,
                t.limit,
                t.measured_phrase()
            ));
        }
    }
    for c in current.checks.iter().filter(|c| !c.passed) {
        let before = baselines
            .iter()
            .flat_map(|b| b.checks.iter().filter(|o| o.name == c.name))
            .map(|o| o.passed);
        if passed_in_all(before) {
            out.push(format!(
                "{}: passed in the baseline, fails now ({})",
                c.name, c.detail
            ));
        }
    }
    out
}

/// Whether a verdict passed in every baseline that has it, and at least
/// one has it (a verdict no baseline had is no regression).
fn passed_in_all(before: impl Iterator<Item = bool>) -> bool {
    let mut seen = false;
    for passed in before {
        if !passed {
            return false;
        }
        seen = true;
    }
    seen
}

/// The value at quantile `q` and its ~99% interval, in ms. When the
/// interval's rank falls outside the sample (too few samples for that
/// quantile, e.g. p99 of 4 requests) the bound is open: 0 or infinity.
pub fn quantile_range(h: &Histogram<u64>, q: f64) -> (f64, f64, f64) {
    let n = h.len() as f64;
    let spread = Z * (n * q * (1.0 - q)).sqrt();
    let at = |rank: f64| h.value_at_quantile((rank / n).clamp(0.0, 1.0)) as f64 / 1000.0;
    let (lo_rank, hi_rank) = ((n * q - spread).floor(), (n * q + spread).ceil());
    let lo = if lo_rank < 1.0 { 0.0 } else { at(lo_rank) };
    let hi = if hi_rank > n {
        f64::INFINITY
    } else {
        at(hi_rank)
    };
    (at(n * q), lo, hi)
}

/// Compares `current` against the `baselines` (earlier runs of the same
/// build; at least one) under `limits`.
pub fn compare(baselines: &[Side], current: &Side, limits: &[Limit]) -> Comparison {
    let mut out = Comparison {
        baselines: baselines.len(),
        noise: if baselines.len() > 1 {
            format!(
                "run-to-run noise from {} baseline runs: each statistic's band is the union of their intervals",
                baselines.len()
            )
        } else {
            format!(
                "one baseline: run-to-run noise unknown; assumed ±{:.0}% beyond the baseline's own interval (give several baselines to measure it)",
                ASSUMED_RUN_TO_RUN * 100.0
            )
        },
        ..Default::default()
    };
    if let Some(current_env) = &current.environment {
        let envs: Vec<&crate::bundle::Environment> = baselines
            .iter()
            .filter_map(|b| b.environment.as_ref())
            .collect();
        out.environment = environment::differences(&envs, current_env);
    }
    let names: std::collections::BTreeSet<&String> = baselines
        .iter()
        .flat_map(|b| b.outcomes.keys())
        .chain(current.outcomes.keys())
        .collect();
    for name in names {
        let with: Vec<&Side> = baselines
            .iter()
            .filter(|b| b.outcomes.contains_key(name))
            .collect();
        let Some(c) = current.outcomes.get(name).filter(|_| !with.is_empty()) else {
            out.unmatched.push(name.clone());
            continue;
        };
        for limit in limits {
            let row = if let Some(q) = crate::bundle::quantile_named(&limit.stat) {
                let Some(ch) = current.latency.get(name).filter(|h| !h.is_empty()) else {
                    continue;
                };
                let bands: Vec<(f64, f64, f64)> = with
                    .iter()
                    .filter_map(|b| {
                        let h = b.latency.get(name).filter(|h| !h.is_empty())?;
                        Some(widen(
                            quantile_range(h, q),
                            b.seconds.get(name),
                            &limit.stat,
                        ))
                    })
                    .collect();
                if bands.is_empty() {
                    continue;
                }
                let (bv, blo, bhi) = baseline_band(&bands);
                let (cv, clo, chi) = widen(
                    quantile_range(ch, q),
                    current.seconds.get(name),
                    &limit.stat,
                );
                let change = if bv > 0.0 { cv / bv - 1.0 } else { 0.0 };
                let verdict = if clo > bhi {
                    if change > limit.allowed {
                        Change::Regression
                    } else {
                        Change::WorseWithinLimit
                    }
                } else if chi < blo {
                    Change::Improved
                } else {
                    Change::WithinNoise
                };
                Row {
                    request: name.clone(),
                    stat: limit.stat.clone(),
                    baseline: bv,
                    current: cv,
                    change,
                    baseline_range: (blo, bhi),
                    current_range: (clo, chi),
                    verdict,
                }
            } else {
                let pooled = with.iter().fold((0, 0), |(n, f), b| {
                    let (bn, bf) = b.outcomes[name];
                    (n + bn, f + bf)
                });
                error_rate_row(name, pooled, *c, limit.allowed)
            };
            out.rows.push(row);
        }
    }
    if let Some(control) = current
        .environment
        .as_ref()
        .and_then(|e| e.control.as_ref())
    {
        out.environment
            .extend(environment::control_slowed(&control.request, &out.rows));
    }
    out
}

/// The baseline's value (the median of the runs') and the band the
/// statistic wanders in: the union of the runs' intervals, or with one run
/// its interval widened by the assumed run-to-run noise.
fn baseline_band(bands: &[(f64, f64, f64)]) -> (f64, f64, f64) {
    let mut values: Vec<f64> = bands.iter().map(|b| b.0).collect();
    values.sort_by(f64::total_cmp);
    let median = if values.len() % 2 == 1 {
        values[values.len() / 2]
    } else {
        (values[values.len() / 2 - 1] + values[values.len() / 2]) / 2.0
    };
    if bands.len() == 1 {
        let (_, lo, hi) = bands[0];
        return (
            median,
            lo * (1.0 - ASSUMED_RUN_TO_RUN),
            hi * (1.0 + ASSUMED_RUN_TO_RUN),
        );
    }
    let lo = bands.iter().map(|b| b.1).fold(f64::INFINITY, f64::min);
    let hi = bands.iter().map(|b| b.2).fold(0.0, f64::max);
    (median, lo, hi)
}

/// Widens a quantile's interval to the batch-means interval of its
/// per-second values, when there are enough busy seconds.
fn widen(
    (value, lo, hi): (f64, f64, f64),
    seconds: Option<&Vec<crate::bundle::TimelineRow>>,
    stat: &str,
) -> (f64, f64, f64) {
    let pick: fn(&crate::bundle::TimelineRow) -> f64 = match stat {
        "p50" => |r| r.p50_ms,
        "p95" => |r| r.p95_ms,
        "p99" => |r| r.p99_ms,
        _ => return (value, lo, hi),
    };
    let batches: Vec<f64> = seconds
        .into_iter()
        .flatten()
        .filter(|r| r.requests > 0)
        .map(pick)
        .collect();
    let k = batches.len() as f64;
    if k < 5.0 {
        return (value, lo, hi);
    }
    let mean = batches.iter().sum::<f64>() / k;
    let sd = (batches.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1.0)).sqrt();
    let half = Z * sd / k.sqrt();
    (value, lo.min(value - half).max(0.0), hi.max(value + half))
}

fn error_rate_row(name: &str, (bn, bf): (u64, u64), (cn, cf): (u64, u64), allowed: f64) -> Row {
    let rate = |n: u64, f: u64| if n == 0 { 0.0 } else { f as f64 / n as f64 };
    let (bp, cp) = (rate(bn, bf), rate(cn, cf));
    let pooled = rate(bn + cn, bf + cf);
    let se = (pooled * (1.0 - pooled) * (1.0 / bn.max(1) as f64 + 1.0 / cn.max(1) as f64)).sqrt();
    let z = if se > 0.0 { (cp - bp) / se } else { 0.0 };
    let margin = |p: f64, n: u64| Z * (p * (1.0 - p) / n.max(1) as f64).sqrt();
    let verdict = if z > Z {
        if cp - bp > allowed {
            Change::Regression
        } else {
            Change::WorseWithinLimit
        }
    } else if z < -Z {
        Change::Improved
    } else {
        Change::WithinNoise
    };
    Row {
        request: name.to_owned(),
        stat: "error_rate".into(),
        baseline: bp,
        current: cp,
        change: cp - bp,
        baseline_range: (
            (bp - margin(bp, bn)).max(0.0),
            (bp + margin(bp, bn)).min(1.0),
        ),
        current_range: (
            (cp - margin(cp, cn)).max(0.0),
            (cp + margin(cp, cn)).min(1.0),
        ),
        verdict,
    }
}

#[cfg(test)]
mod tests;
