//! Words the bundle, the scenario and the reports share — the load model
//! and the latency statistics — each defined once, so every `match` on
//! them is exhaustive and a new one shows the compiler every place it must go.

use super::quantile_named;
use serde::{Deserialize, Serialize};

/// Load models: how load is offered to the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadModel {
    /// Arrivals per second, whatever the server does.
    #[default]
    Open,
    /// A fixed population of virtual users with think time.
    Closed,
}

impl LoadModel {
    /// `open` or `closed`, as files and reports write it.
    pub fn name(self) -> &'static str {
        match self {
            LoadModel::Open => "open",
            LoadModel::Closed => "closed",
        }
    }
}

impl std::fmt::Display for LoadModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A latency statistic, as thresholds and `surge compare` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LatencyStat {
    /// Smallest.
    Min,
    /// Mean.
    Mean,
    /// Median.
    P50,
    /// 75th percentile.
    P75,
    /// 90th percentile.
    P90,
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
    /// 99.9th percentile.
    P999,
    /// Largest.
    Max,
}

impl LatencyStat {
    /// Every statistic, in the order messages list them.
    pub const ALL: [LatencyStat; 9] = [
        LatencyStat::P50,
        LatencyStat::P75,
        LatencyStat::P90,
        LatencyStat::P95,
        LatencyStat::P99,
        LatencyStat::P999,
        LatencyStat::Min,
        LatencyStat::Max,
        LatencyStat::Mean,
    ];

    /// Its name: `p95`, `max`, ...
    pub fn name(self) -> &'static str {
        match self {
            LatencyStat::Min => "min",
            LatencyStat::Mean => "mean",
            LatencyStat::P50 => "p50",
            LatencyStat::P75 => "p75",
            LatencyStat::P90 => "p90",
            LatencyStat::P95 => "p95",
            LatencyStat::P99 => "p99",
            LatencyStat::P999 => "p999",
            LatencyStat::Max => "max",
        }
    }

    /// The statistic `name` names, if any.
    pub fn named(name: &str) -> Option<LatencyStat> {
        LatencyStat::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The quantile a percentile stands for (`None` for min, mean, max).
    pub fn quantile(self) -> Option<f64> {
        quantile_named(self.name())
    }
}
