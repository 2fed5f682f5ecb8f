//! The run's environment as it happens: the generator's lateness (a
//! histogram), and the machine and surge's own process read from `/proc` at
//! the start and the end (Linux; elsewhere those figures are absent, never
//! made up).

use crate::bundle::{Environment, Lateness};
use hdrhistogram::Histogram;

/// CPU counters of the machine and this process at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostSnapshot {
    /// Every CPU's jiffies: (total, idle + iowait, steal).
    machine: Option<(u64, u64, u64)>,
    /// This process's user + system jiffies.
    process: Option<u64>,
}

impl HostSnapshot {
    /// Reads `/proc/stat` and `/proc/self/stat`.
    pub fn now() -> HostSnapshot {
        HostSnapshot {
            machine: std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|t| machine_counters(&t)),
            process: std::fs::read_to_string("/proc/self/stat")
                .ok()
                .and_then(|t| process_jiffies(&t)),
        }
    }
}

/// (total, idle, steal) from the first line of `/proc/stat`.
fn machine_counters(stat: &str) -> Option<(u64, u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice]:
    // guest time is already counted in user, so the total stops at steal.
    if v.len() < 8 {
        return None;
    }
    let total = v[..8].iter().sum();
    Some((total, v[3] + v[4], v[7]))
}

/// utime + stime from `/proc/self/stat` (after the parenthesised name).
fn process_jiffies(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn cpus(stat: &str) -> Option<u32> {
    let n = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    (n > 0).then_some(n as u32)
}

/// Jiffies per second: the kernel's USER_HZ, 100 on every Linux surge runs on.
const USER_HZ: f64 = 100.0;

/// The environment between `begin` and now, over `elapsed_s`, with the
/// generator's lateness.
pub fn environment(
    begin: Option<HostSnapshot>,
    elapsed_s: f64,
    lateness: &Histogram<u64>,
) -> Environment {
    let end = HostSnapshot::now();
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let loadavg = std::fs::read_to_string("/proc/loadavg").ok();
    between(
        begin,
        end,
        elapsed_s,
        lateness,
        cpus(&stat),
        loadavg.as_deref(),
    )
}

fn between(
    begin: Option<HostSnapshot>,
    end: HostSnapshot,
    elapsed_s: f64,
    lateness: &Histogram<u64>,
    cpus: Option<u32>,
    loadavg: Option<&str>,
) -> Environment {
    let machine = begin.and_then(|b| {
        let ((t0, i0, s0), (t1, i1, s1)) = (b.machine?, end.machine?);
        let total = t1.checked_sub(t0).filter(|t| *t > 0)? as f64;
        Some((
            1.0 - i1.saturating_sub(i0) as f64 / total,
            s1.saturating_sub(s0) as f64 / total,
        ))
    });
    let process_cpu = begin.and_then(|b| {
        let used = end.process?.checked_sub(b.process?)? as f64 / USER_HZ;
        (elapsed_s > 0.0).then(|| used / elapsed_s)
    });
    let load = loadavg
        .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok())
        .zip(cpus)
        .map(|(l, n)| l / f64::from(n));
    Environment {
        cpus,
        lateness: (!lateness.is_empty()).then(|| Lateness {
            count: lateness.len(),
            p50_ms: lateness.value_at_quantile(0.5) as f64 / 1000.0,
            p99_ms: lateness.value_at_quantile(0.99) as f64 / 1000.0,
            max_ms: lateness.max() as f64 / 1000.0,
        }),
        process_cpu,
        machine_busy: machine.map(|m| m.0.clamp(0.0, 1.0)),
        steal: machine.map(|m| m.1.clamp(0.0, 1.0)),
        load_per_cpu: load,
        control: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT_0: &str = "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 50 0 50 350 50 0 0 0 0 0\ncpu1 50 0 50 350 50 0 0 0 0 0\nintr 1\n";
    const STAT_1: &str = "cpu  200 0 100 900 100 0 0 100 0 0\ncpu0 1 0 0 0 0 0 0 0 0 0\ncpu1 1 0 0 0 0 0 0 0 0 0\nintr 2\n";

    #[test]
    fn the_machine_and_the_process_are_read_from_proc_text() {
        assert_eq!(machine_counters(STAT_0), Some((1000, 800, 0)));
        assert_eq!(cpus(STAT_0), Some(2));
        let self_stat = "4242 (surge (x) y) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0";
        assert_eq!(process_jiffies(self_stat), Some(300));
        let begin = HostSnapshot {
            machine: machine_counters(STAT_0),
            process: Some(300),
        };
        let end = HostSnapshot {
            machine: machine_counters(STAT_1),
            process: Some(500),
        };
        let mut late = Histogram::<u64>::new(3).unwrap();
        for us in [100, 200, 300, 40_000] {
            late.record(us).unwrap();
        }
        let env = between(
            Some(begin),
            end,
            4.0,
            &late,
            Some(2),
            Some("3.00 1.0 0.5 1/200 99"),
        );
        // 400 jiffies passed, 200 of them idle, 100 stolen.
        assert_eq!(env.machine_busy, Some(0.5));
        assert_eq!(env.steal, Some(0.25));
        // 200 jiffies = 2 s of CPU over 4 s.
        assert_eq!(env.process_cpu, Some(0.5));
        assert_eq!(env.load_per_cpu, Some(1.5));
        let l = env.lateness.unwrap();
        assert_eq!(l.count, 4);
        assert!((l.max_ms - 40.0).abs() < 0.1, "{l:?}");
        // Nothing read at the start: nothing claimed.
        let unknown = between(None, end, 4.0, &Histogram::new(3).unwrap(), None, None);
        assert_eq!(unknown, Environment::default());
    }
}
