//! What a run measured, as plain data: the contract between the engine and
//! every report. Serialised as `summary.json` (see [`SCHEMA_VERSION`]).

use super::vocabulary::{LatencyStat, LoadModel};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the `summary.json` layout. Raise it when a field changes meaning.
/// 2: steps that could not be sent are counted apart (`not_sent`), not as
/// `precondition` failures; `checks`; the `auth` error class; unverifiable uploads.
pub const SCHEMA_VERSION: u32 = 2;

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Could not connect (refused, DNS, TLS handshake).
    Connect,
    /// No complete answer within the timeout.
    Timeout,
    /// The connection broke mid-exchange.
    Reset,
    /// An unexpected 4xx status.
    Http4xx,
    /// An unexpected 5xx status.
    Http5xx,
    /// The status was acceptable but the body was not (JSON field, text).
    Expectation,
    /// Sent without the credential the scenario's auth should have given it
    /// (the token endpoint failed): whatever came back, not a success.
    Auth,
    /// Anything else (an unexpected 1xx/3xx, a body that could not be read).
    Other,
}

impl ErrorClass {
    /// Every class, in report order.
    pub const ALL: [ErrorClass; 8] = [
        ErrorClass::Connect,
        ErrorClass::Timeout,
        ErrorClass::Reset,
        ErrorClass::Http4xx,
        ErrorClass::Http5xx,
        ErrorClass::Expectation,
        ErrorClass::Auth,
        ErrorClass::Other,
    ];

    /// Name used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Connect => "connect",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Reset => "reset",
            ErrorClass::Http4xx => "http_4xx",
            ErrorClass::Http5xx => "http_5xx",
            ErrorClass::Expectation => "expectation",
            ErrorClass::Auth => "auth",
            ErrorClass::Other => "other",
        }
    }
}

/// Latency statistics in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Smallest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 75th percentile.
    pub p75: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

/// The quantile each percentile name stands for, in every place surge reads
/// one (thresholds, compare limits, the percentiles of a histogram).
pub const NAMED_QUANTILES: [(&str, f64); 6] = [
    ("p50", 0.50),
    ("p75", 0.75),
    ("p90", 0.90),
    ("p95", 0.95),
    ("p99", 0.99),
    ("p999", 0.999),
];

/// The quantile `p95` (etc.) names.
pub fn quantile_named(stat: &str) -> Option<f64> {
    NAMED_QUANTILES
        .iter()
        .find(|(name, _)| *name == stat)
        .map(|(_, q)| *q)
}

impl Percentiles {
    /// From a histogram of microseconds.
    pub fn from_hist(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        let [p50, p75, p90, p95, p99, p999] =
            NAMED_QUANTILES.map(|(_, q)| ms(h.value_at_quantile(q)));
        Percentiles {
            min: ms(h.min()),
            mean: h.mean() / 1000.0,
            p50,
            p75,
            p90,
            p95,
            p99,
            p999,
            max: ms(h.max()),
        }
    }

    /// One of the statistics.
    pub fn get(&self, stat: LatencyStat) -> f64 {
        match stat {
            LatencyStat::Min => self.min,
            LatencyStat::Mean => self.mean,
            LatencyStat::P50 => self.p50,
            LatencyStat::P75 => self.p75,
            LatencyStat::P90 => self.p90,
            LatencyStat::P95 => self.p95,
            LatencyStat::P99 => self.p99,
            LatencyStat::P999 => self.p999,
            LatencyStat::Max => self.max,
        }
    }
}

/// Counts and latency of a group of requests (one request name, one replica, all).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Request name, replica name, or `all`.
    pub name: String,
    /// Requests that completed (ok + failed).
    pub count: u64,
    /// Requests that met their expectations.
    pub ok: u64,
    /// Requests that did not.
    pub failed: u64,
    /// failed / count.
    pub error_rate: f64,
    /// Completed per second of run time.
    pub throughput: f64,
    /// From the scheduled start (open model) or the send (closed model) to the end of the body.
    pub latency: Percentiles,
    /// From the actual send to the end of the body.
    pub service: Percentiles,
    /// Failures by class.
    pub errors: BTreeMap<ErrorClass, u64>,
    /// Status codes seen.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests sent, including those in flight at stop (per request name
    /// and overall; 0 on replicas and cells).
    #[serde(default)]
    pub issued: u64,
    /// Steps that could not be sent (a value to render was never captured,
    /// the user was not logged in). Not samples: in no histogram, count,
    /// throughput or timeline.
    #[serde(default)]
    pub not_sent: u64,
    /// Why, with how often (per request name).
    #[serde(default)]
    pub not_sent_reasons: BTreeMap<String, u64>,
    /// What did not match in answers that failed an expectation, with how
    /// often (per request name): `JSON `issue.0.severity` is not "error"`.
    #[serde(default)]
    pub expectation_failures: BTreeMap<String, u64>,
    /// Latency at quantiles from 0 to 1, for percentile-curve charts (per
    /// request and overall; empty on cells).
    #[serde(default)]
    pub curve: Vec<CurvePoint>,
}

impl Stats {
    /// Status codes answered, most frequent first: `404 ×140, 200 ×3`.
    pub fn statuses_text(&self) -> String {
        let mut by_count: Vec<(&u16, &u64)> = self.statuses.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let parts: Vec<String> = by_count.iter().map(|(s, n)| format!("{s} ×{n}")).collect();
        parts.join(", ")
    }

    /// Why this group's failures failed, for people: `140 failed (http_4xx
    /// 140); answered 404 ×140`. Empty when nothing failed.
    pub fn failures_text(&self) -> String {
        if self.failed == 0 {
            return String::new();
        }
        let classes: Vec<String> = self
            .errors
            .iter()
            .map(|(c, n)| format!("{} {n}", c.as_str()))
            .collect();
        let mut text = format!("{} failed ({})", self.failed, classes.join(", "));
        if !self.statuses.is_empty() {
            text.push_str(&format!("; answered {}", self.statuses_text()));
        }
        for (what, n) in &self.expectation_failures {
            text.push_str(&format!("; {what} ×{n}"));
        }
        text
    }
}

/// Latency at one quantile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// 0..1.
    pub quantile: f64,
    /// Latency there, ms.
    pub latency_ms: f64,
}

/// Quantiles a percentile curve is drawn through: dense in the tail, where
/// latency problems live.
pub const CURVE_QUANTILES: [f64; 19] = [
    0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99, 0.995, 0.999, 0.9995,
    0.9999, 0.99999, 1.0,
];

/// A quantile as a percentile label: `99.999%`, `50%` (never the float
/// noise of `q * 100`, `99.99900000000001%`).
pub fn percent_label(quantile: f64) -> String {
    let text = format!("{:.4}", quantile * 100.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// The percentile curve of a histogram of microseconds.
pub fn curve(h: &Histogram<u64>) -> Vec<CurvePoint> {
    if h.is_empty() {
        return Vec::new();
    }
    CURVE_QUANTILES
        .iter()
        .map(|&quantile| CurvePoint {
            quantile,
            latency_ms: h.value_at_quantile(quantile) as f64 / 1000.0,
        })
        .collect()
}

/// One request's timeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestTimeline {
    /// Request name.
    pub request: String,
    /// One row a second.
    pub rows: Vec<TimelineRow>,
}

/// One histogram cell: a (stage, request, replica).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellStats {
    /// Stage index (0-based).
    pub stage: usize,
    /// Request name.
    pub request: String,
    /// Replica name.
    pub replica: String,
    /// Its statistics.
    pub stats: Stats,
    /// Latency histogram file in the bundle (HDR V2, deflate, base64 line).
    pub latency_hdr: String,
    /// Service-time histogram file in the bundle.
    pub service_hdr: String,
}

/// A load stage as it was planned and as it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageStats {
    /// 0-based index.
    pub index: usize,
    /// Seconds from the run's start.
    pub start_s: f64,
    /// Seconds from the run's start.
    pub end_s: f64,
    /// Arrivals per second (open) or users (closed) at the end of the ramp.
    pub target: f64,
    /// Arrivals scheduled (open model).
    pub arrivals: u64,
    /// Arrivals that found no free user (open model).
    pub dropped: u64,
}

/// One second of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelineRow {
    /// Seconds since the start.
    pub second: u64,
    /// Requests completed in it.
    pub requests: u64,
    /// Of which failed.
    pub errors: u64,
    /// Arrivals dropped in it.
    pub dropped: u64,
    /// Latency median, ms.
    pub p50_ms: f64,
    /// Latency p95, ms.
    pub p95_ms: f64,
    /// Latency p99, ms.
    pub p99_ms: f64,
}

/// Request accounting: every request issued is one of succeeded, failed, cancelled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Requests started.
    pub issued: u64,
    /// Completed and met expectations.
    pub succeeded: u64,
    /// Completed and did not.
    pub failed: u64,
    /// Still in flight when the run stopped.
    pub cancelled: u64,
    /// Open-model arrivals that found no free user (not requests: never issued).
    pub dropped_arrivals: u64,
    /// Open-model arrivals scheduled.
    pub arrivals: u64,
    /// Steps that could not be sent (not requests: never issued).
    #[serde(default)]
    pub not_sent: u64,
    /// Open-model users started: one whenever an arrival found no user idle
    /// and the pool had room. Idle users are reused, so this is about the
    /// most arrivals that were in progress at once: the pool the load
    /// needed (it counts, too, a user started in the instant before another
    /// became idle again).
    #[serde(default)]
    pub users_started: u64,
}

/// The verdict on one threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdResult {
    /// Name as written, e.g. `search_patient.p95`.
    pub metric: String,
    /// Limit as written, e.g. `< 800ms`.
    pub limit: String,
    /// Measured value in the statistic's unit (ms, fraction, count, per second); None if nothing was measured.
    pub measured: Option<f64>,
    /// Measured value for people, e.g. `412.3ms`, or why nothing was
    /// measured (`nothing measured: no session was accepted`).
    pub measured_text: String,
    /// Pass or fail.
    pub passed: bool,
}

fn verified() -> bool {
    true
}

/// A built-in verdict every run gets, thresholds or not: that the run
/// produced evidence at all (some request succeeded, every request was sent,
/// every upload could be read back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// What is checked, e.g. `every request sent`.
    pub name: String,
    /// Pass or fail.
    pub passed: bool,
    /// What was found, for people.
    pub detail: String,
}

/// Everything a run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    /// Layout version of this file.
    pub schema_version: u32,
    /// Run id (the bundle folder's name).
    pub run_id: String,
    /// Scenario name.
    pub scenario: String,
    /// Scenario file.
    pub scenario_file: String,
    /// Base URL driven.
    pub target: String,
    /// Whether TLS certificates were verified (`tls_verify = false` turns it
    /// off, and every report says so).
    #[serde(default = "verified")]
    pub tls_verify: bool,
    /// The load model the run used.
    pub model: LoadModel,
    /// Per-user setup requests (the login, the token fetch): work a user does
    /// once, not per arrival; calibration counts them apart from capacity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setup_requests: Vec<String>,
    /// Open model: how arrivals were spaced, e.g. `Poisson arrivals (seed 1)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrivals: Option<String>,
    /// Start time, RFC 3339 UTC.
    pub started_at: String,
    /// Seconds the load actually ran.
    pub elapsed_s: f64,
    /// Seconds from the start to the last completed request.
    #[serde(default)]
    pub busy_s: f64,
    /// Seconds the plan asked for.
    pub planned_s: f64,
    /// Why the run stopped early, if it did (signal, target gone).
    pub interrupted: Option<String>,
    /// Transactions that panicked. goose alone would lose such a user silently
    /// and still exit 0; surge catches the panic, counts it here, and the user
    /// starts a fresh session.
    pub user_panics: u64,
    /// Request accounting.
    pub totals: Totals,
    /// Stages.
    pub stages: Vec<StageStats>,
    /// All requests together.
    pub overall: Stats,
    /// Per request name.
    pub requests: Vec<Stats>,
    /// Per replica.
    pub replicas: Vec<Stats>,
    /// How answers were attributed to replicas: names, unmapped answers, retries.
    #[serde(default)]
    pub attribution: super::Attribution,
    /// Per (stage, request, replica).
    pub cells: Vec<CellStats>,
    /// Per second.
    pub timeline: Vec<TimelineRow>,
    /// Per second, per request.
    #[serde(default)]
    pub request_timelines: Vec<RequestTimeline>,
    /// Session continuity: accepted sessions, switches, drops.
    #[serde(default)]
    pub sessions: super::SessionVerdict,
    /// Write-then-read consistency of uploads.
    #[serde(default)]
    pub consistency: super::ConsistencyVerdict,
    /// Threshold verdicts.
    pub thresholds: Vec<ThresholdResult>,
    /// The latency SLO among the thresholds, when there is one: what the
    /// autoscaling verdict judges seconds by and its chart draws.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_slo: Option<super::LatencySlo>,
    /// Built-in verdicts on the evidence itself.
    #[serde(default)]
    pub checks: Vec<CheckResult>,
    /// What chaos did and what users felt, when the run had chaos.
    #[serde(default)]
    pub chaos: Option<super::ChaosReport>,
    /// What the autoscaler did, when the run named an HPA.
    #[serde(default)]
    pub autoscaling: Option<super::AutoscalingTimeline>,
    /// The part of a sharded test this bundle holds (`surge run --shard`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<super::ShardInfo>,
    /// How the metrics sent out while the run went fared, per receiver
    /// (`surge run --metrics-out`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics_out: Vec<MetricsOutReport>,
    /// The shards a merged bundle was made of (`surge merge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<super::MergeInfo>,
    /// Whether the run itself was trustworthy: the generator's lateness,
    /// surge's and the machine's CPU, the control request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<super::Environment>,
}

impl ThresholdResult {
    /// `measured 412.3ms`, or `nothing measured: …` (never "measured nothing measured").
    pub fn measured_phrase(&self) -> String {
        match self.measured {
            Some(_) => format!("measured {}", self.measured_text),
            None => self.measured_text.clone(),
        }
    }
}

impl RunResults {
    /// `open model, Poisson arrivals (seed 1)`, or `closed model`.
    pub fn model_text(&self) -> String {
        match &self.arrivals {
            Some(arrivals) => format!("{} model, {arrivals}", self.model),
            None => format!("{} model", self.model),
        }
    }

    /// True when every threshold passed.
    pub fn thresholds_passed(&self) -> bool {
        self.thresholds.iter().all(|t| t.passed)
    }

    /// True when every threshold and every built-in check passed.
    pub fn passed(&self) -> bool {
        self.thresholds_passed() && self.checks.iter().all(|c| c.passed)
    }

    /// Every reason a step could not be sent: (request, reason, how often),
    /// in report order (what every format lists under "not sent").
    pub fn not_sent(&self) -> impl Iterator<Item = (&str, &str, u64)> {
        self.requests.iter().flat_map(|s| {
            s.not_sent_reasons
                .iter()
                .map(move |(why, n)| (s.name.as_str(), why.as_str(), *n))
        })
    }

    /// Statistics of one request name.
    pub fn request(&self, name: &str) -> Option<&Stats> {
        self.requests.iter().find(|s| s.name == name)
    }
}

/// A name made safe for one part of a file name, and short: a request or
/// replica name (a server's header) may be long, and a bundle must never fail
/// to write for a file name the file system refuses. A long name keeps its
/// first 60 characters and a hash of the whole, so names stay distinct.
pub fn file_part(name: &str) -> String {
    let safe = file_safe(name);
    if safe.len() <= 60 {
        return safe;
    }
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut hasher);
    format!("{}~{:016x}", &safe[..60], hasher.finish())
}

/// A name made safe for a file name.
pub fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// How the metrics pushed to one receiver fared: a slow or failing receiver
/// never slows the load, and what it missed is counted here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsOutReport {
    /// `prometheus` (Remote-Write 1.0) or `otlp` (OTLP/HTTP).
    pub kind: String,
    /// The receiver, without credentials.
    pub target: String,
    /// Pushes it accepted.
    pub pushed: u64,
    /// Pushes it refused or never answered.
    pub failed: u64,
    /// Pushes never sent: the queue was full (the receiver was slower than
    /// the pushes came).
    pub dropped: u64,
    /// Series over the cap, left out of the last push.
    pub over_cap: u64,
    /// The last failure, said without its body.
    pub last_error: Option<String>,
    /// How latency went out: `native` histograms, or `classic` buckets and
    /// why (Remote-Write); `exponential` (OTLP); empty before any latency
    /// was sent.
    #[serde(default)]
    pub histograms: String,
}
