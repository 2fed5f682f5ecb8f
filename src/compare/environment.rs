//! Whether two runs' environments differ enough that a latency change
//! between them cannot be blamed on the code: the generator was late, the
//! machine was busier or had CPU stolen ([`differences`]), or the control
//! request slowed too, beyond noise ([`control_slowed`]). Each bound is
//! stated in the reason it gives. Pure.

use crate::bundle::Environment;

/// The generator counts as late when its lateness p99 is more than this
/// many times the baseline's, and ...
pub const LATENESS_RATIO: f64 = 2.0;
/// ... more than this many ms above it (sub-millisecond jitter is not late).
pub const LATENESS_MS: f64 = 5.0;
/// The machine counts as busier when its load per CPU rose by more than this
/// and ended above [`LOAD_HIGH`].
pub const LOAD_RISE: f64 = 0.5;
/// See [`LOAD_RISE`].
pub const LOAD_HIGH: f64 = 0.8;
/// ... or its busy share rose by more than this (0.25 = 25 points).
pub const BUSY_RISE: f64 = 0.25;
/// CPU steal above this share, and more than twice the baseline's.
pub const STEAL: f64 = 0.05;
/// The control request counts as slowed when its latency rose beyond noise
/// by more than this (0.25 = 25%): see [`control_slowed`].
pub const CONTROL_SLOWER: f64 = 0.25;

/// Why the control request says the environment changed: one of its
/// latency rows worse beyond run-to-run noise by more than
/// [`CONTROL_SLOWER`] (its point value alone wanders with few samples).
pub fn control_slowed(control: &str, rows: &[super::Row]) -> Option<String> {
    let row = rows
        .iter()
        .filter(|r| r.request == control && r.stat != "error_rate")
        .filter(|r| {
            matches!(
                r.verdict,
                super::Change::Regression | super::Change::WorseWithinLimit
            )
        })
        .find(|r| r.change > CONTROL_SLOWER)?;
    Some(format!(
        "the control request {control} slowed too, beyond noise: {} {:.1} ms against {:.1} ms in the baseline (bound: {:.0}%): the machine or the network changed, not only the code",
        row.stat,
        row.current,
        row.baseline,
        CONTROL_SLOWER * 100.0
    ))
}

/// Why the current run's environment is not comparable with the baselines'
/// (empty when it is). The baselines' worst figure is the reference: a
/// current run no worse than the worst baseline is comparable.
pub fn differences(baselines: &[&Environment], current: &Environment) -> Vec<String> {
    let mut out = Vec::new();
    let worst = |f: &dyn Fn(&Environment) -> Option<f64>| {
        baselines.iter().filter_map(|e| f(e)).reduce(f64::max)
    };
    if let (Some(base), Some(cur)) = (
        worst(&|e| e.lateness.as_ref().map(|l| l.p99_ms)),
        current.lateness.as_ref().map(|l| l.p99_ms),
    ) {
        if cur > base * LATENESS_RATIO && cur > base + LATENESS_MS {
            out.push(format!(
                "the load generator was late: its lateness p99 was {cur:.1} ms against at most {base:.1} ms in the baseline (bound: {LATENESS_RATIO}× and {LATENESS_MS} ms more)"
            ));
        }
    }
    if let (Some(base), Some(cur)) = (worst(&|e| e.load_per_cpu), current.load_per_cpu) {
        if cur - base > LOAD_RISE && cur > LOAD_HIGH {
            out.push(format!(
                "the machine was busier: load {cur:.2} per CPU against at most {base:.2} in the baseline (bound: {LOAD_RISE} more and above {LOAD_HIGH})"
            ));
        }
    }
    if let (Some(base), Some(cur)) = (worst(&|e| e.machine_busy), current.machine_busy) {
        if cur - base > BUSY_RISE {
            out.push(format!(
                "the machine's CPUs were {:.0}% busy against at most {:.0}% in the baseline (bound: {:.0} points more)",
                cur * 100.0,
                base * 100.0,
                BUSY_RISE * 100.0
            ));
        }
    }
    if let (Some(base), Some(cur)) = (worst(&|e| e.steal), current.steal) {
        if cur > STEAL && cur > 2.0 * base {
            out.push(format!(
                "the hypervisor stole {:.1}% of the CPU against at most {:.1}% in the baseline (bound: {:.0}% and twice the baseline)",
                cur * 100.0,
                base * 100.0,
                STEAL * 100.0
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{Control, Lateness};

    fn quiet() -> Environment {
        Environment {
            cpus: Some(2),
            lateness: Some(Lateness {
                count: 1000,
                p50_ms: 0.2,
                p99_ms: 1.5,
                max_ms: 3.0,
            }),
            process_cpu: Some(0.4),
            machine_busy: Some(0.45),
            steal: Some(0.0),
            load_per_cpu: Some(0.5),
            control: Some(Control {
                request: "healthz".into(),
                count: 100,
                p50_ms: 1.0,
                p95_ms: 2.0,
            }),
        }
    }

    /// Each bound fires on a busy run and stays quiet on a comparable one.
    #[test]
    fn each_bound_fires_when_crossed_and_not_before() {
        let base = quiet();
        assert!(differences(&[&base], &quiet()).is_empty());
        let mut late = quiet();
        late.lateness.as_mut().unwrap().p99_ms = 12.0;
        let mut busy = quiet();
        busy.load_per_cpu = Some(1.6);
        busy.machine_busy = Some(0.95);
        let mut stolen = quiet();
        stolen.steal = Some(0.12);
        for (env, says) in [
            (&late, "the load generator was late"),
            (&busy, "load 1.60 per CPU"),
            (&busy, "95% busy"),
            (&stolen, "stole 12.0%"),
        ] {
            let why = differences(&[&base], env);
            assert!(why.iter().any(|w| w.contains(says)), "{says}: {why:?}");
        }
        // Just inside every bound: comparable.
        let mut near = quiet();
        near.lateness.as_mut().unwrap().p99_ms = 3.0; // 2× but only 1.5 ms more
        near.load_per_cpu = Some(0.95); // 0.45 more
        near.machine_busy = Some(0.65); // 20 points more
        near.steal = Some(0.04);
        assert!(
            differences(&[&base], &near).is_empty(),
            "{:?}",
            differences(&[&base], &near)
        );
        // The worst baseline is the reference: a run as busy as one of
        // several baselines is comparable.
        assert!(differences(&[&base, &busy], &busy).is_empty());
        // Nothing recorded: nothing claimed.
        assert!(differences(&[&Environment::default()], &busy).is_empty());
    }
}
