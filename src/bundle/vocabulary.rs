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

/// The latency SLO a run was judged by: a per-second statistic the load
/// must keep below a limit (the first `requests.p50`, `p95` or `p99`
/// threshold written as `<` or `<=`). Seconds are judged against it by the
/// autoscaling verdict, and the autoscaling chart draws it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencySlo {
    /// `p50`, `p95` or `p99`.
    #[serde(with = "stat_by_name")]
    pub stat: LatencyStat,
    /// The limit, ms.
    pub limit_ms: f64,
}

impl LatencyStat {
    /// This statistic of a second of the load, ms (`None` for one the
    /// seconds do not keep: they keep p50, p95 and p99).
    pub fn of_second(self, row: &super::TimelineRow) -> Option<f64> {
        match self {
            LatencyStat::P50 => Some(row.p50_ms),
            LatencyStat::P95 => Some(row.p95_ms),
            LatencyStat::P99 => Some(row.p99_ms),
            LatencyStat::Min
            | LatencyStat::Mean
            | LatencyStat::P75
            | LatencyStat::P90
            | LatencyStat::P999
            | LatencyStat::Max => None,
        }
    }
}

impl LatencySlo {
    /// Whether a second of the load broke it (a second with no completed
    /// request broke nothing).
    pub fn broken_by(&self, row: &super::TimelineRow) -> bool {
        row.requests > 0 && self.stat.of_second(row).is_some_and(|v| v > self.limit_ms)
    }
}

/// A statistic in a file by its name (`p99`), refused by name when unknown.
mod stat_by_name {
    use super::LatencyStat;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(stat: &LatencyStat, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(stat.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<LatencyStat, D::Error> {
        let name = String::deserialize(d)?;
        LatencyStat::named(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown latency statistic `{name}`")))
    }
}
