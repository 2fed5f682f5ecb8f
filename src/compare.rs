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

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;

/// z for a two-sided 99% interval.
const Z: f64 = 2.576;

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
}

impl Comparison {
    /// True when some statistic regressed beyond its limit.
    pub fn regressed(&self) -> bool {
        self.rows.iter().any(|r| r.verdict == Change::Regression)
    }
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

/// Compares `current` against `baseline` under `limits`.
pub fn compare(baseline: &Side, current: &Side, limits: &[Limit]) -> Comparison {
    let mut out = Comparison::default();
    let names: std::collections::BTreeSet<&String> = baseline
        .outcomes
        .keys()
        .chain(current.outcomes.keys())
        .collect();
    for name in names {
        let (Some(b), Some(c)) = (baseline.outcomes.get(name), current.outcomes.get(name)) else {
            out.unmatched.push(name.clone());
            continue;
        };
        for limit in limits {
            let row = if let Some(q) = crate::bundle::quantile_named(&limit.stat) {
                let (Some(bh), Some(ch)) = (baseline.latency.get(name), current.latency.get(name))
                else {
                    continue;
                };
                if bh.is_empty() || ch.is_empty() {
                    continue;
                }
                let (bv, blo, bhi) = widen(
                    quantile_range(bh, q),
                    baseline.seconds.get(name),
                    &limit.stat,
                );
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
                error_rate_row(name, *b, *c, limit.allowed)
            };
            out.rows.push(row);
        }
    }
    out
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
mod tests {
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
        }
    }

    #[test]
    fn a_run_that_wandered_widens_its_interval() {
        use crate::bundle::TimelineRow;
        let base = side("a", hist((1..=2000).map(|i| 1000 + i)), 0);
        let mut drifted = side("a", hist((1..=2000).map(|i| 1300 + i)), 0);
        let narrow = compare(&base, &drifted, &[parse_limit("p50=10%").unwrap()]);
        assert_eq!(
            narrow.rows[0].verdict,
            Change::Regression,
            "15% worse, tight samples: {narrow:?}"
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
        let wide = compare(&base, &drifted, &[parse_limit("p50=10%").unwrap()]);
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
        let c = compare(&s, &s, &limits());
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
        let c = compare(&base, &slow, &limits());
        assert_eq!(c.rows[0].verdict, Change::Regression, "{c:?}");
        assert!((c.rows[0].change - 1.0).abs() < 0.01);
        // Five samples each: a 21% higher p95 from one slow sample is noise.
        let few = side("a", hist([1000, 1100, 1200, 1300, 1400]), 0);
        let few_slow = side("a", hist([1000, 1100, 1200, 1300, 1700]), 0);
        assert_eq!(
            compare(&few, &few_slow, &limits()).rows[0].verdict,
            Change::WithinNoise
        );
    }

    #[test]
    fn error_rates_compare_beyond_noise() {
        let base = side("a", hist((0..1000).map(|_| 1000)), 5);
        let worse = side("a", hist((0..1000).map(|_| 1000)), 60);
        let c = compare(&base, &worse, &limits());
        let e = c.rows.iter().find(|r| r.stat == "error_rate").unwrap();
        assert_eq!(e.verdict, Change::Regression);
        let same = side("a", hist((0..1000).map(|_| 1000)), 7);
        let c = compare(&base, &same, &limits());
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
        let c = compare(&base, &slow, &[parse_limit("p99=10%").unwrap()]);
        assert_eq!(c.rows[0].verdict, Change::WithinNoise, "{c:?}");
        assert_eq!(c.rows[0].baseline_range.1, f64::INFINITY);
    }

    #[test]
    fn requests_in_one_run_only_are_listed() {
        let a = side("a", hist([1000]), 0);
        let b = side("b", hist([1000]), 0);
        let c = compare(&a, &b, &limits());
        assert_eq!(c.unmatched, ["a", "b"]);
        assert!(c.rows.is_empty());
    }
}
