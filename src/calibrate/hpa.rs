//! Kubernetes HPA settings from measured capacity, with the reasoning kept.
//!
//! The HPA acts only when |1 − current/target| > 0.1, and needs T_react
//! (15 s sync + metric window + pod start + readiness) to add capacity; with
//! load growing at rate g (fraction per second) the target must leave room:
//! T ≤ C_pod / (1.1 · (1 + g·T_react)). minReplicas = max(2, ⌈base/T⌉);
//! maxReplicas = min(⌈peak/T⌉, ⌊connection budget / pool per replica⌋).

use serde::{Deserialize, Serialize};

/// The HPA's tolerance band (cluster default).
pub const TOLERANCE: f64 = 0.1;
/// The HPA's sync period, seconds (controller default).
pub const SYNC_SECONDS: f64 = 15.0;

/// What the HPA would do: desired replicas for `ready` pods at `current`
/// metric value against `target`. Nothing happens inside the tolerance band.
pub fn desired_replicas(ready: u32, current: f64, target: f64) -> u32 {
    let ratio = current / target;
    if (1.0 - ratio).abs() <= TOLERANCE {
        return ready;
    }
    (ready as f64 * ratio).ceil() as u32
}

/// What the recommendation is computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HpaInputs {
    /// Per-pod capacity at the SLO, requests per second.
    pub capacity_per_pod: f64,
    /// Metric window of the scaling metric, seconds.
    pub metric_window_s: f64,
    /// Pod start-up time (scheduling, image, JVM start), seconds.
    pub pod_start_s: f64,
    /// Readiness delay after start, seconds.
    pub readiness_s: f64,
    /// Load growth, fraction per second (0.01 = +1%/s).
    pub growth_per_s: f64,
    /// Everyday request rate, per second.
    pub base_rate: f64,
    /// Peak request rate, per second.
    pub peak_rate: f64,
    /// Connections each replica's pool may open.
    pub pool_per_replica: u32,
    /// Connections the database side allows the application (after reserves).
    pub connection_budget: u32,
}

/// What bound maxReplicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxBound {
    /// Enough for the peak.
    PeakDemand,
    /// The database's connections run out first.
    Connections,
}

/// The recommendation and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HpaPlan {
    /// Target requests per second per pod (AverageValue of a Pods metric).
    pub target_per_pod: f64,
    /// Reaction time, seconds.
    pub reaction_s: f64,
    /// minReplicas.
    pub min_replicas: u32,
    /// maxReplicas.
    pub max_replicas: u32,
    /// Replicas the peak needs at the target.
    pub replicas_for_peak: u32,
    /// What bound maxReplicas.
    pub max_bound: MaxBound,
    /// The pool the target's capacity was measured with, and what the
    /// recommended pool allows (`pool_bound::target_basis`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_basis: Option<String>,
    /// Each number with the measurement and constraint behind it.
    pub reasons: Vec<String>,
}

impl HpaPlan {
    /// Records what pool the target rests on, and says so right after the
    /// target among the reasons (which the manifest's annotation carries).
    pub fn set_pool_basis(&mut self, basis: Option<String>) {
        if let Some(text) = &basis {
            let after_target = self
                .reasons
                .iter()
                .position(|r| r.starts_with("target "))
                .map_or(self.reasons.len(), |i| i + 1);
            self.reasons.insert(after_target, text.clone());
        }
        self.pool_basis = basis;
    }
}

/// Computes the HPA settings.
pub fn plan(i: &HpaInputs) -> HpaPlan {
    let reaction = SYNC_SECONDS + i.metric_window_s + i.pod_start_s + i.readiness_s;
    let target = i.capacity_per_pod / ((1.0 + TOLERANCE) * (1.0 + i.growth_per_s * reaction));
    let min = ((i.base_rate / target).ceil() as u32).max(2);
    let for_peak = ((i.peak_rate / target).ceil() as u32).max(min);
    let by_connections = i.connection_budget / i.pool_per_replica.max(1);
    let (max, bound) = if by_connections < for_peak {
        // Never below minReplicas; when even that overdraws the database,
        // the reasons say so.
        (by_connections.max(min), MaxBound::Connections)
    } else {
        (for_peak, MaxBound::PeakDemand)
    };
    let mut reasons = vec![
        format!(
            "reaction time {reaction:.0} s = {SYNC_SECONDS:.0} s sync + {:.0} s metric window + {:.0} s pod start + {:.0} s readiness",
            i.metric_window_s, i.pod_start_s, i.readiness_s
        ),
        format!(
            "target {target:.1} req/s per pod = capacity {:.1} / (1.1 tolerance × (1 + {:.3}/s growth × {reaction:.0} s))",
            i.capacity_per_pod, i.growth_per_s
        ),
        format!("minReplicas {min} = max(2, ⌈{:.1} base req/s / {target:.1}⌉): two pods so one can die", i.base_rate),
    ];
    reasons.push(match bound {
        MaxBound::PeakDemand => format!(
            "maxReplicas {max} = ⌈{:.1} peak req/s / {target:.1}⌉; the connection budget allows {by_connections} ({} ÷ {} per replica)",
            i.peak_rate, i.connection_budget, i.pool_per_replica
        ),
        MaxBound::Connections => format!(
            "maxReplicas {max}: {max} × {} connections ≤ {} connection budget; the peak would need {for_peak} replicas — raise the database limit or shrink the pool",
            i.pool_per_replica, i.connection_budget
        ),
    });
    if by_connections < min {
        reasons.push(format!(
            "WARNING: even minReplicas {min} × {} connections exceeds the {} connection budget",
            i.pool_per_replica, i.connection_budget
        ));
    }
    HpaPlan {
        target_per_pod: target,
        reaction_s: reaction,
        min_replicas: min,
        max_replicas: max,
        replicas_for_peak: for_peak,
        max_bound: bound,
        pool_basis: None,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_band_holds_still() {
        assert_eq!(
            desired_replicas(4, 108.0, 100.0),
            4,
            "8% over: inside the band"
        );
        assert_eq!(desired_replicas(4, 92.0, 100.0), 4);
        assert_eq!(desired_replicas(4, 115.0, 100.0), 5, "⌈4 × 1.15⌉");
        assert_eq!(desired_replicas(4, 50.0, 100.0), 2);
        assert_eq!(desired_replicas(3, 200.0, 100.0), 6);
    }

    fn inputs() -> HpaInputs {
        HpaInputs {
            capacity_per_pod: 100.0,
            metric_window_s: 30.0,
            pod_start_s: 60.0,
            readiness_s: 15.0,
            growth_per_s: 0.005,
            base_rate: 150.0,
            peak_rate: 900.0,
            pool_per_replica: 50,
            connection_budget: 600,
        }
    }

    #[test]
    fn worked_example() {
        let p = plan(&inputs());
        // T_react = 15 + 30 + 60 + 15 = 120 s; T = 100 / (1.1 × 1.6) = 56.8
        assert_eq!(p.reaction_s, 120.0);
        assert!((p.target_per_pod - 100.0 / (1.1 * 1.6)).abs() < 1e-9);
        assert_eq!(p.min_replicas, 3); // ⌈150 / 56.8⌉
        assert_eq!(p.replicas_for_peak, 16); // ⌈900 / 56.8⌉
        assert_eq!((p.max_replicas, p.max_bound), (12, MaxBound::Connections)); // 600 / 50
        assert!(p
            .reasons
            .iter()
            .any(|r| r.contains("12 × 50 connections ≤ 600")));
    }

    #[test]
    fn demand_binds_when_connections_are_plenty() {
        let p = plan(&HpaInputs {
            connection_budget: 2000,
            ..inputs()
        });
        assert_eq!((p.max_replicas, p.max_bound), (16, MaxBound::PeakDemand));
    }

    /// The pool the target rests on follows the target among the reasons
    /// (and so in the manifest's annotation); without one, nothing moves.
    #[test]
    fn the_pool_basis_follows_the_target() {
        let mut p = plan(&inputs());
        let before = p.reasons.clone();
        p.set_pool_basis(None);
        assert_eq!((p.reasons.clone(), p.pool_basis.clone()), (before, None));
        p.set_pool_basis(Some("measured with pool 2".into()));
        assert!(p.reasons[1].starts_with("target 56.8 req/s per pod = capacity"));
        assert_eq!(p.reasons[2], "measured with pool 2");
        assert_eq!(p.pool_basis.as_deref(), Some("measured with pool 2"));
    }

    #[test]
    fn never_fewer_than_two() {
        let p = plan(&HpaInputs {
            base_rate: 1.0,
            peak_rate: 2.0,
            ..inputs()
        });
        assert_eq!(p.min_replicas, 2);
        assert!(p.max_replicas >= p.min_replicas);
    }
}
