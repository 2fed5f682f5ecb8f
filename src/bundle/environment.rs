//! Whether the run itself was trustworthy: how late the load generator was,
//! how busy surge and the machine were, and how a control request fared.
//! `surge compare` calls a latency change between two runs whose
//! environments differ beyond its bounds inconclusive, not a regression.

use serde::{Deserialize, Serialize};

/// How late the generator started work it had scheduled, ms: open model,
/// an arrival handed to an idle user after its instant; closed model, a
/// think time that ended after it should have.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lateness {
    /// Scheduled starts measured.
    pub count: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
}

/// The control request's service time: a request whose work does not change
/// with the code under test (a static health endpoint), so its slowing down
/// says the machine or the network slowed, not the code.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Control {
    /// Request name.
    pub request: String,
    /// Completed.
    pub count: u64,
    /// Service time median, ms.
    pub p50_ms: f64,
    /// Service time p95, ms.
    pub p95_ms: f64,
}

/// The run's environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// Logical CPUs of the machine surge ran on.
    pub cpus: Option<u32>,
    /// The generator's lateness.
    pub lateness: Option<Lateness>,
    /// surge's own CPU over the run, in cores (1.0 = one core busy).
    pub process_cpu: Option<f64>,
    /// Share of the machine's CPU time busy over the run, every process (0..1).
    pub machine_busy: Option<f64>,
    /// Share of the machine's CPU time stolen by the hypervisor (0..1).
    pub steal: Option<f64>,
    /// The 1-minute load average at the end, per CPU.
    pub load_per_cpu: Option<f64>,
    /// The control request, when the scenario names one.
    pub control: Option<Control>,
}

impl Environment {
    /// The figures in one line, for every report.
    pub fn text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(l) = &self.lateness {
            parts.push(format!(
                "generator lateness p50 {:.1} ms, p99 {:.1} ms over {} starts",
                l.p50_ms, l.p99_ms, l.count
            ));
        }
        if let Some(c) = self.process_cpu {
            parts.push(format!("surge CPU {:.2} cores", c));
        }
        if let Some(b) = self.machine_busy {
            parts.push(format!(
                "machine {:.0}% busy{}",
                b * 100.0,
                self.cpus
                    .map(|n| format!(" of {n} CPUs"))
                    .unwrap_or_default()
            ));
        }
        if let Some(l) = self.load_per_cpu {
            parts.push(format!("load {l:.2} per CPU"));
        }
        if let Some(s) = self.steal {
            parts.push(format!("steal {:.1}%", s * 100.0));
        }
        if let Some(c) = &self.control {
            parts.push(format!(
                "control {} service p50 {:.1} ms, p95 {:.1} ms",
                c.request, c.p50_ms, c.p95_ms
            ));
        }
        if parts.is_empty() {
            "not measured".to_owned()
        } else {
            parts.join("; ")
        }
    }
}
