//! A CPU target beside the request-rate target, and which of the two an
//! HPA should scale on.
//!
//! Each step's CPU per pod comes from `metrics.k8s.io` (metrics-server):
//! a reading is a pod's mean CPU over a window `[end − window, end]`, and
//! a step counts only the readings whose window lies wholly inside it
//! ([`step_cpu`]). Over the steps up to the capacity, CPU per pod is fitted
//! against completed requests per pod, `cpu = idle + per_request · rate`
//! (least squares); the CPU at the recommended rate target is the CPU
//! target, as a utilization of the pods' CPU request when every pod sets
//! one (`averageUtilization`), else as millicores (`averageValue`).
//!
//! Which metric: CPU when it follows the load — the fit explains at least
//! [`MIN_R2`] of the variance, over at least [`MIN_STEPS`] steps, and at
//! least [`MIN_LOAD_SHARE`] of the CPU at the target is the load's, not
//! the pod's idle use — because metrics-server is all it needs; otherwise
//! the request rate, saying why CPU would not do. Without CPU readings no
//! CPU target is given: nothing measured.

use crate::bundle::{PodCpuReading, Step, StepCpu};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The fit must explain this share of the variance of CPU per pod.
pub const MIN_R2: f64 = 0.9;
/// At least this share of the CPU at the target must be the load's.
pub const MIN_LOAD_SHARE: f64 = 0.5;
/// Steps with CPU readings the fit needs (two points always fit a line).
pub const MIN_STEPS: usize = 3;

/// The metric an HPA should scale the workload on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScalingMetric {
    /// Requests per second per pod (a Pods metric, through an adapter).
    RequestRate,
    /// CPU (a Resource metric, through metrics-server).
    Cpu,
}

/// The CPU target and the choice between the two metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuAdvice {
    /// A pod's CPU with no load, millicores (the fit's intercept).
    pub idle_millicores: f64,
    /// Millicores per request per second per pod (the fit's slope).
    pub millicores_per_request_per_s: f64,
    /// Share of the variance the fit explains.
    pub r2: f64,
    /// Steps fitted.
    pub steps: usize,
    /// CPU per pod at the recommended rate target, millicores.
    pub target_millicores: f64,
    /// The pods' CPU request, millicores, when every pod sets one.
    pub request_millicores: Option<f64>,
    /// The target as a utilization of the request, percent, when known.
    pub target_utilization: Option<u32>,
    /// The metric to scale on.
    pub pick: ScalingMetric,
    /// The fit, the target and the pick, in one sentence.
    pub reason: String,
}

/// A step's CPU per pod from `readings`: the mean of each pod's readings
/// whose window lies within `[from, to]` (seconds since the epoch),
/// averaged over the pods; `None` when no window fits (a step shorter
/// than metrics-server's resolution and a window).
pub fn step_cpu(readings: &[PodCpuReading], from: f64, to: f64) -> Option<StepCpu> {
    let mut by_pod: BTreeMap<&str, (f64, u32, Option<f64>)> = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    for r in readings {
        let inside = r.end_unix_s - r.window_s >= from && r.end_unix_s <= to;
        // The same window read twice (the API server answers from a cache
        // until metrics-server scrapes again) counts once.
        if !inside || !seen.insert((r.pod.as_str(), r.end_unix_s.to_bits())) {
            continue;
        }
        let pod = by_pod
            .entry(&r.pod)
            .or_insert((0.0, 0, r.request_millicores));
        pod.0 += r.millicores;
        pod.1 += 1;
    }
    if by_pod.is_empty() {
        return None;
    }
    let pods = by_pod.len();
    let per_pod = by_pod
        .values()
        .map(|(sum, n, _)| sum / *n as f64)
        .sum::<f64>()
        / pods as f64;
    let requests: Option<Vec<f64>> = by_pod.values().map(|p| p.2).collect();
    Some(StepCpu {
        millicores_per_pod: per_pod,
        pods: pods as u32,
        windows: by_pod.values().map(|p| p.1).sum(),
        request_millicores: requests
            .filter(|r| !r.is_empty())
            .map(|r| r.iter().sum::<f64>() / r.len() as f64),
    })
}

/// The advice from `steps` measured at `replicas`, up to the step that set
/// the capacity (`capacity_step`), for the rate target `target_per_pod`.
/// `None` when no step had CPU readings.
pub fn advise(
    steps: &[Step],
    replicas: u32,
    capacity_step: Option<usize>,
    target_per_pod: f64,
) -> Option<CpuAdvice> {
    let last = capacity_step.unwrap_or(steps.len().saturating_sub(1));
    let points: Vec<(f64, f64, Option<f64>)> = steps
        .iter()
        .take(last + 1)
        .filter_map(|s| {
            let cpu = s.cpu.as_ref()?;
            Some((
                s.achieved / replicas.max(1) as f64,
                cpu.millicores_per_pod,
                cpu.request_millicores,
            ))
        })
        .collect();
    if points.is_empty() {
        return None;
    }
    let (idle, slope, r2) = fit(&points.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>());
    let target_millicores = (idle + slope * target_per_pod).max(0.0);
    let request = points
        .iter()
        .map(|p| p.2)
        .collect::<Option<Vec<f64>>>()
        .map(|r| r.iter().sum::<f64>() / r.len() as f64)
        .filter(|r| *r > 0.0);
    let utilization =
        request.map(|r| ((target_millicores / r) * 100.0).round().clamp(1.0, 1000.0) as u32);
    let load_share = if target_millicores > 0.0 {
        slope * target_per_pod / target_millicores
    } else {
        0.0
    };
    let fitted = format!(
        "CPU per pod {idle:.0}m idle + {slope:.2}m per request/s (r² {r2:.2} over {} steps, from metrics.k8s.io)",
        points.len()
    );
    let target_text = match (utilization, request) {
        (Some(u), Some(r)) => format!(
            "{target_millicores:.0}m at the target of {target_per_pod:.1} req/s per pod: averageUtilization {u}% of the pods' {r:.0}m request"
        ),
        _ => format!(
            "{target_millicores:.0}m at the target of {target_per_pod:.1} req/s per pod: averageValue {target_millicores:.0}m (the pods set no CPU request, so no utilization)"
        ),
    };
    let (pick, why) = if points.len() < MIN_STEPS {
        (
            ScalingMetric::RequestRate,
            format!("scale on the request rate: CPU was read at only {} steps below the capacity (at least {MIN_STEPS} to trust a fit; steps at least 3× metrics-server's resolution long give each a window)", points.len()),
        )
    } else if slope <= 0.0 || r2 < MIN_R2 {
        (
            ScalingMetric::RequestRate,
            format!("scale on the request rate: CPU does not follow the load (r² {r2:.2}, below {MIN_R2}), so a CPU target would scale on noise"),
        )
    } else if load_share < MIN_LOAD_SHARE {
        (
            ScalingMetric::RequestRate,
            format!(
                "scale on the request rate: at the target only {:.0}% of a pod's CPU is its load's ({idle:.0}m is there with no load), so a CPU target moves little with the load",
                load_share * 100.0
            ),
        )
    } else {
        (
            ScalingMetric::Cpu,
            format!(
                "scale on CPU: it follows the load (r² {r2:.2}; {:.0}% of it at the target is the load's) and needs only metrics-server, no metrics adapter; the HPA leaves out a new pod's CPU until it has been Ready for a metric window",
                load_share * 100.0
            ),
        )
    };
    Some(CpuAdvice {
        idle_millicores: idle,
        millicores_per_request_per_s: slope,
        r2,
        steps: points.len(),
        target_millicores,
        request_millicores: request,
        target_utilization: utilization,
        pick,
        reason: format!("{fitted}; {target_text}; {why}"),
    })
}

/// Least squares `y = a + b·x`: (a, b, r²). A pod uses no negative CPU
/// at no load, so an intercept below zero (noise at the low steps) is
/// refitted through the origin, `y = b·x`. One point, or points all at
/// one x: a flat line through their mean, r² 0.
fn fit(points: &[(f64, f64)]) -> (f64, f64, f64) {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - mean_y).powi(2)).sum();
    if sxx <= f64::EPSILON {
        return (mean_y, 0.0, 0.0);
    }
    let (mut a, mut b) = (mean_y - sxy / sxx * mean_x, sxy / sxx);
    if a < 0.0 {
        let xx: f64 = points.iter().map(|p| p.0 * p.0).sum();
        let xy: f64 = points.iter().map(|p| p.0 * p.1).sum();
        (a, b) = (0.0, xy / xx);
    }
    let residual: f64 = points.iter().map(|p| (p.1 - a - b * p.0).powi(2)).sum();
    let r2 = if syy <= f64::EPSILON {
        0.0
    } else {
        (1.0 - residual / syy).max(0.0)
    };
    (a, b, r2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::fixtures::step;

    fn reading(pod: &str, end: f64, m: f64) -> PodCpuReading {
        PodCpuReading {
            pod: pod.into(),
            end_unix_s: end,
            window_s: 10.0,
            millicores: m,
            request_millicores: Some(100.0),
        }
    }

    #[test]
    fn a_step_counts_the_windows_wholly_inside_it_once_each() {
        let readings = vec![
            reading("a", 1005.0, 999.0), // begins before the step
            reading("a", 1015.0, 40.0),
            reading("a", 1015.0, 40.0), // read twice
            reading("b", 1016.0, 60.0),
            reading("b", 1026.0, 80.0),
            reading("b", 1031.0, 999.0), // ends after it
        ];
        let s = step_cpu(&readings, 1000.0, 1030.0).unwrap();
        // a: 40; b: (60 + 80) / 2 = 70; per pod (40 + 70) / 2.
        assert_eq!(s.millicores_per_pod, 55.0);
        assert_eq!((s.pods, s.windows), (2, 3));
        assert_eq!(s.request_millicores, Some(100.0));
        assert_eq!(step_cpu(&readings, 1000.0, 1012.0), None);
    }

    /// Steps at 10, 20, 30, 40 req/s on 2 pods: per pod 5, 10, 15, 20.
    fn steps(cpu: impl Fn(f64) -> f64) -> Vec<Step> {
        [10.0, 20.0, 30.0, 40.0]
            .into_iter()
            .map(|rate| {
                let mut s = step(rate, 50.0);
                s.cpu = Some(StepCpu {
                    millicores_per_pod: cpu(rate / 2.0),
                    pods: 2,
                    windows: 2,
                    request_millicores: Some(200.0),
                });
                s
            })
            .collect()
    }

    #[test]
    fn cpu_that_follows_the_load_is_picked_with_its_utilization_target() {
        // 5 m per request/s and 4 m idle: at 16 req/s per pod, 84 m of 200 m.
        let a = advise(&steps(|r| 4.0 + 5.0 * r), 2, Some(3), 16.0).unwrap();
        let said = &a.reason;
        assert_eq!(a.pick, ScalingMetric::Cpu, "{said}");
        assert!((a.millicores_per_request_per_s - 5.0).abs() < 1e-9);
        assert!((a.target_millicores - 84.0).abs() < 1e-9);
        assert_eq!(a.target_utilization, Some(42));
        assert!(
            said.contains("averageUtilization 42% of the pods' 200m request"),
            "{said}"
        );
        assert!(said.contains("scale on CPU"), "{said}");
    }

    #[test]
    fn cpu_that_does_not_follow_the_load_leaves_the_request_rate() {
        // Noise around 50 m whatever the load.
        let noisy = [50.0, 62.0, 41.0, 55.0];
        let mut s = steps(|_| 0.0);
        for (step, m) in s.iter_mut().zip(noisy) {
            step.cpu.as_mut().unwrap().millicores_per_pod = m;
        }
        let a = advise(&s, 2, Some(3), 16.0).unwrap();
        let said = &a.reason;
        assert_eq!(a.pick, ScalingMetric::RequestRate);
        assert!(said.contains("CPU does not follow the load"), "{said}");
        // A pod mostly idle use: 300 m idle, 1 m per request/s.
        let a = advise(&steps(|r| 300.0 + r), 2, Some(3), 16.0).unwrap();
        let said = &a.reason;
        assert_eq!(a.pick, ScalingMetric::RequestRate);
        assert!(
            said.contains("only 5% of a pod's CPU is its load's"),
            "{said}"
        );
        // Two steps fit any line: not trusted.
        let a = advise(&steps(|r| 5.0 * r), 2, Some(1), 16.0).unwrap();
        let said = &a.reason;
        assert_eq!((a.pick, a.steps), (ScalingMetric::RequestRate, 2));
        assert!(said.contains("only 2 steps"), "{said}");
    }

    #[test]
    fn a_pod_never_uses_negative_cpu_at_no_load() {
        // Measured on the real control plane: 21, 52, 75m at 4, 8.75, 12.55
        // req/s per pod fit −3m + 6.3m per req/s; through the origin, 5.9m.
        let (a, b, r2) = fit(&[(4.0, 21.0), (8.75, 52.0), (12.55, 75.0)]);
        assert_eq!(a, 0.0);
        assert!((b - 5.92).abs() < 0.01, "{b}");
        assert!(r2 > 0.98 && r2 <= 1.0, "{r2}");
        let (a, b, r2) = fit(&[(1.0, 14.0), (2.0, 19.0), (3.0, 24.0)]);
        assert_eq!((a, b, r2), (9.0, 5.0, 1.0));
    }

    #[test]
    fn no_readings_no_cpu_target_and_no_request_no_utilization() {
        let mut bare = steps(|r| 5.0 * r);
        for s in &mut bare {
            s.cpu = None;
        }
        assert_eq!(advise(&bare, 2, Some(3), 16.0), None);
        let mut unrequested = steps(|r| 5.0 * r);
        for s in &mut unrequested {
            s.cpu.as_mut().unwrap().request_millicores = None;
        }
        let a = advise(&unrequested, 2, Some(3), 16.0).unwrap();
        let said = &a.reason;
        assert_eq!(a.target_utilization, None);
        assert!(
            said.contains("averageValue 80m (the pods set no CPU request"),
            "{said}"
        );
    }
}
