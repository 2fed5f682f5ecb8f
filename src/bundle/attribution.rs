//! How answers were attributed to replicas, as `summary.json` keeps it: the
//! names each replica went by, the answers that named no replica surge knew,
//! and the balancer retries seen in a multi-value replica header; and the
//! traffic surge itself sent to read uploads back, which the cluster carried
//! beside the scenario's own.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The replica name of answers whose replica header or cookie named a
/// replica outside the listed ones: reported apart, never a replica.
pub const UNMAPPED_REPLICA: &str = "unmapped";

/// One replica and every other name that meant it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaAliases {
    /// The name every count uses.
    pub name: String,
    /// The URL it was read from directly, if listed or discovered (no userinfo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Other names that meant it: header values, addresses, a pod's IP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
}

/// How answers were attributed to replicas.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribution {
    /// Replicas known by more than one name, or listed for direct read-back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<ReplicaAliases>,
    /// Answers (load and read-backs) naming a replica that is none of the
    /// listed ones, by the value they gave (the first few values; the rest
    /// under `other values`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unmapped: BTreeMap<String, u64>,
    /// Answers whose replica header named several upstreams (a balancer
    /// retry), by the replica that finally answered (the last named).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub retries: BTreeMap<String, u64>,
}

impl Attribution {
    /// Answers attributed to no known replica.
    pub fn unmapped_total(&self) -> u64 {
        self.unmapped.values().sum()
    }

    /// Answers that came after a balancer retry.
    pub fn retries_total(&self) -> u64 {
        self.retries.values().sum()
    }

    /// Adds another part's attribution (a shard's): counts summed, names united.
    pub fn absorb(&mut self, other: &Attribution) {
        super::add_counts(&mut self.unmapped, &other.unmapped);
        super::add_counts(&mut self.retries, &other.retries);
        for r in &other.replicas {
            match self.replicas.iter_mut().find(|m| m.name == r.name) {
                Some(mine) => {
                    for a in &r.also {
                        if !mine.also.contains(a) {
                            mine.also.push(a.clone());
                        }
                    }
                    if mine.url.is_none() {
                        mine.url.clone_from(&r.url);
                    }
                }
                None => self.replicas.push(r.clone()),
            }
        }
        self.replicas.sort_by(|a, b| a.name.cmp(&b.name));
    }
}

/// Read-back requests sent to one replica (directly or through the balancer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadBackReplica {
    /// Replica (or `unknown`, `unmapped` through the balancer).
    pub replica: String,
    /// Sent straight to it.
    pub direct: u64,
    /// Sent through the balancer and answered by it.
    pub through_balancer: u64,
    /// Of those, answered with an error or not at all.
    pub failed: u64,
}

impl ReadBackReplica {
    /// Every read-back it carried.
    pub fn total(&self) -> u64 {
        self.direct + self.through_balancer
    }
}

/// The traffic surge sent to read uploads back: load on the cluster under
/// test like any other, so it is counted and shown. Each upload's reads are
/// bounded by its window and the backoff; the budget is a figure the
/// reports compare against (they say when it was passed), never a limit
/// that skips a read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadBackTraffic {
    /// Per replica.
    #[serde(default)]
    pub replicas: Vec<ReadBackReplica>,
    /// The budget: read-backs this many times the scenario's own requests
    /// sent; the reports say when they were more (reads are not cut short).
    #[serde(default)]
    pub budget_ratio: f64,
    /// Read-backs sent in each second since the load began (index: the
    /// second), so that a stage of a longer run has its own figure
    /// (calibration's steps from a multi-stage bundle). Empty in bundles
    /// written before it was kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_second: Vec<u64>,
}

impl ReadBackTraffic {
    /// Every read-back sent.
    pub fn total(&self) -> u64 {
        self.replicas.iter().map(ReadBackReplica::total).sum()
    }

    /// Read-backs sent through the balancer.
    pub fn through_balancer(&self) -> u64 {
        self.replicas.iter().map(|r| r.through_balancer).sum()
    }

    /// Read-backs sent straight to a replica.
    pub fn direct(&self) -> u64 {
        self.replicas.iter().map(|r| r.direct).sum()
    }

    /// Read-backs per request of the scenario's own (`None` when it sent none).
    pub fn ratio_to(&self, own_requests: u64) -> Option<f64> {
        (own_requests > 0).then(|| self.total() as f64 / own_requests as f64)
    }

    /// Whether the read-backs went over their budget.
    pub fn over_budget(&self, own_requests: u64) -> bool {
        self.budget_ratio > 0.0
            && self
                .ratio_to(own_requests)
                .is_some_and(|r| r > self.budget_ratio)
    }

    /// Read-backs per second sent within `[from_s, to_s)` of the run (by
    /// whole seconds, as the timelines count): 0 when none was sent at
    /// all; None when some were but the bundle does not say when.
    pub fn per_s_within(&self, from_s: f64, to_s: f64) -> Option<f64> {
        if self.total() == 0 {
            return Some(0.0);
        }
        if self.per_second.is_empty() {
            return None;
        }
        let sent: u64 = self
            .per_second
            .iter()
            .enumerate()
            .filter(|(second, _)| (*second as f64) >= from_s && (*second as f64) < to_s)
            .map(|(_, n)| n)
            .sum();
        Some(sent as f64 / (to_s - from_s).max(1e-9))
    }

    /// Adds another part's read-backs (a shard's, whose second 0 is
    /// `offset` seconds after the merged run's).
    pub fn absorb(&mut self, other: &ReadBackTraffic, offset: u64) {
        for r in &other.replicas {
            match self.replicas.iter_mut().find(|m| m.replica == r.replica) {
                Some(mine) => {
                    mine.direct += r.direct;
                    mine.through_balancer += r.through_balancer;
                    mine.failed += r.failed;
                }
                None => self.replicas.push(r.clone()),
            }
        }
        self.replicas.sort_by(|a, b| a.replica.cmp(&b.replica));
        self.budget_ratio = self.budget_ratio.max(other.budget_ratio);
        for (second, n) in other.per_second.iter().enumerate() {
            let at = second + offset as usize;
            if self.per_second.len() <= at {
                self.per_second.resize(at + 1, 0);
            }
            self.per_second[at] += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic(direct: u64, balancer: u64) -> ReadBackTraffic {
        ReadBackTraffic {
            replicas: vec![ReadBackReplica {
                replica: "r1".into(),
                direct,
                through_balancer: balancer,
                failed: 0,
            }],
            budget_ratio: 1.0,
            per_second: Vec::new(),
        }
    }

    #[test]
    fn the_budget_is_judged_against_the_scenarios_own_requests() {
        assert!(!traffic(300, 300).over_budget(600));
        assert!(traffic(300, 301).over_budget(600));
        assert!(!traffic(0, 0).over_budget(0), "no traffic is no verdict");
        assert_eq!(traffic(0, 0).ratio_to(0), None);
    }

    /// A stage's read-backs are those sent in its seconds; a bundle that
    /// does not say when they were sent gives none, one that sent none
    /// gives 0.
    #[test]
    fn a_stages_read_backs_are_those_sent_in_its_seconds() {
        let mut t = traffic(0, 10);
        t.per_second = vec![1, 1, 4, 4, 0];
        assert_eq!(t.per_s_within(0.0, 2.0), Some(1.0));
        assert_eq!(t.per_s_within(2.0, 4.0), Some(4.0));
        assert_eq!(t.per_s_within(4.0, 6.0), Some(0.0));
        t.per_second.clear();
        assert_eq!(
            t.per_s_within(0.0, 2.0),
            None,
            "sent, but when is not known"
        );
        assert_eq!(traffic(0, 0).per_s_within(0.0, 2.0), Some(0.0));
    }

    #[test]
    fn parts_add_up() {
        let mut a = traffic(1, 2);
        a.per_second = vec![3];
        let mut b = traffic(3, 4);
        b.per_second = vec![5, 2];
        a.absorb(&b, 1);
        assert_eq!((a.direct(), a.through_balancer()), (4, 6));
        assert_eq!(a.per_second, [3, 5, 2], "the shard began a second later");
        let mut x = Attribution::default();
        x.retries.insert("r1".into(), 2);
        let mut y = Attribution::default();
        y.retries.insert("r1".into(), 3);
        y.unmapped.insert("10.0.0.9:80".into(), 1);
        x.absorb(&y);
        assert_eq!((x.retries_total(), x.unmapped_total()), (5, 1));
    }
}
