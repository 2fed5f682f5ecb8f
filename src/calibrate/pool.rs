//! Database connection pools: the size each replica needs (Erlang C on the
//! connection hold time), the knobs users actually have, and a check of a
//! user's plan against the database's limits.

use super::erlang;
use crate::bundle::PoolSample;
use serde::{Deserialize, Serialize};

/// PostgreSQL keeps this many connections for superusers.
pub const POSTGRES_RESERVED: u32 = 3;

/// A pool-size recommendation for one replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolSize {
    /// Connections per replica.
    pub size: u32,
    /// Offered load on the pool, Erlangs (rate per replica × hold time).
    pub offered_erlangs: f64,
    /// Probability a request waits for a connection at that size.
    pub wait_probability: f64,
    /// Mean wait for a connection, ms.
    pub mean_wait_ms: f64,
    /// Why this size.
    pub reason: String,
}

/// The smallest pool per replica with waiting probability ≤ `epsilon` at
/// `rate_per_replica` requests/s each holding a connection `hold_s` seconds,
/// and not below `floor` (the deadlock-free minimum).
pub fn size(rate_per_replica: f64, hold_s: f64, epsilon: f64, floor: u32) -> PoolSize {
    let a = rate_per_replica * hold_s;
    let c = erlang::smallest_pool(a, epsilon, floor);
    let wait = erlang::erlang_c(c, a);
    PoolSize {
        size: c,
        offered_erlangs: a,
        wait_probability: wait,
        mean_wait_ms: erlang::mean_wait(c, rate_per_replica, hold_s) * 1000.0,
        reason: format!(
            "{c} connections: offered load {a:.2} Erlangs ({rate_per_replica:.1} checkouts/s × {:.1} ms held); Erlang C wait probability {:.3} ≤ {epsilon}{}",
            hold_s * 1000.0,
            wait,
            if c == floor && erlang::smallest_pool(a, epsilon, 1) < floor { format!(" (raised to the deadlock-free minimum {floor})") } else { String::new() }
        ),
    }
}

/// The knobs, as users have them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Knobs {
    /// HikariCP `maximum-pool-size` (HAPI FHIR: `spring.datasource.hikari.maximum-pool-size`).
    pub hikari_maximum_pool_size: u32,
    /// c3p0 `hibernate.c3p0.max_size` (OpenMRS).
    pub c3p0_max_size: u32,
    /// pgBouncer `default_pool_size`, when pgBouncer sits in front.
    pub pgbouncer_default_pool_size: u32,
    /// pgBouncer `max_client_conn`.
    pub pgbouncer_max_client_conn: u32,
    /// PostgreSQL `max_connections` (MariaDB: `max_connections` alike).
    pub max_connections: u32,
}

/// The knobs for `max_replicas` replicas of `pool` connections each.
pub fn knobs(pool: u32, max_replicas: u32) -> Knobs {
    let total = pool * max_replicas;
    Knobs {
        hikari_maximum_pool_size: pool,
        c3p0_max_size: pool,
        pgbouncer_default_pool_size: total,
        pgbouncer_max_client_conn: total.max(100),
        max_connections: total + POSTGRES_RESERVED,
    }
}

/// A user's plan: replicas, pool per replica, and the limits behind them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Replicas.
    pub replicas: u32,
    /// Pool per replica.
    pub pool: u32,
    /// pgBouncer `default_pool_size`, if pgBouncer is used.
    pub pgbouncer_pool: Option<u32>,
    /// Database `max_connections`.
    pub max_connections: Option<u32>,
    /// Connections kept back on the database (PostgreSQL: 3 for superusers).
    pub reserved: u32,
}

/// What a plan check found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanCheck {
    /// Every limit holds at the planned replicas.
    pub fits: bool,
    /// The first limit to break as replicas grow, and the replica count at which it does.
    pub first_break: Option<(String, u32)>,
    /// The arithmetic, line by line.
    pub lines: Vec<String>,
}

/// Checks a plan: what breaks first, and at what replica count.
pub fn check(plan: &Plan) -> PlanCheck {
    let mut limits: Vec<(String, u32)> = Vec::new();
    let mut lines = Vec::new();
    let total = plan.replicas * plan.pool;
    if let Some(bouncer) = plan.pgbouncer_pool {
        limits.push((format!("pgBouncer default_pool_size {bouncer}"), bouncer));
        lines.push(format!(
            "{} replicas × {} connections = {total} {} pgBouncer default_pool_size {bouncer}",
            plan.replicas,
            plan.pool,
            if total <= bouncer { "fits" } else { "exceeds" }
        ));
        if let Some(max) = plan.max_connections {
            let room = max.saturating_sub(plan.reserved);
            lines.push(format!(
                "pgBouncer pool {bouncer} {} max_connections {max} − {} reserved = {room}",
                if bouncer <= room { "fits" } else { "exceeds" },
                plan.reserved
            ));
            if bouncer > room {
                // pgBouncer itself opens more than the database takes: it breaks at once.
                limits.push((
                    format!("max_connections {max} (pgBouncer pool {bouncer} > {room})"),
                    0,
                ));
            }
        }
    } else if let Some(max) = plan.max_connections {
        let room = max.saturating_sub(plan.reserved);
        limits.push((
            format!("max_connections {max} − {} reserved", plan.reserved),
            room,
        ));
        lines.push(format!(
            "{} replicas × {} connections = {total} {} max_connections {max} − {} reserved = {room}",
            plan.replicas,
            plan.pool,
            if total <= room { "fits" } else { "exceeds" },
            plan.reserved
        ));
    }
    // The first limit to break: the smallest replica count whose connections exceed it.
    let first_break = limits
        .iter()
        .map(|(name, capacity)| {
            let breaks_at = if *capacity == 0 {
                1
            } else {
                capacity / plan.pool.max(1) + 1
            };
            (name.clone(), breaks_at)
        })
        .min_by_key(|(_, at)| *at);
    if let Some((name, at)) = &first_break {
        lines.push(format!(
            "first to break: {name}, at {at} replicas of {} connections",
            plan.pool
        ));
    }
    let fits = first_break
        .as_ref()
        .is_none_or(|(_, at)| plan.replicas < *at);
    PlanCheck {
        fits,
        first_break,
        lines,
    }
}

/// Mean connection hold time over the scrapes: Δsum/Δcount per endpoint,
/// pooled. Returns (seconds, checkouts seen).
pub fn hold_time(samples: &[PoolSample]) -> Option<(f64, f64)> {
    let mut urls: Vec<&str> = samples.iter().map(|s| s.url.as_str()).collect();
    urls.sort_unstable();
    urls.dedup();
    let (mut sum, mut count) = (0.0, 0.0);
    for url in urls {
        let mine: Vec<&PoolSample> = samples.iter().filter(|s| s.url == url).collect();
        if let (Some(first), Some(last)) = (mine.first(), mine.last()) {
            // A restarted pod resets its counters: only a rise counts.
            if last.usage_count > first.usage_count {
                sum += last.usage_sum - first.usage_sum;
                count += last.usage_count - first.usage_count;
            }
        }
    }
    (count > 0.0).then(|| (sum / count, count))
}

/// Highest number of threads waiting for a connection on any endpoint.
pub fn max_pending(samples: &[PoolSample]) -> f64 {
    samples.iter().map(|s| s.pending).fold(0.0, f64::max)
}

/// The reason calibration gives for the hold time the pool metrics showed
/// (`measured`, from [`hold_time`] of `samples`; None: no checkout), and
/// whether a given `--hold` won.
pub fn measured_hold_reason(
    measured: Option<(f64, f64)>,
    samples: &[PoolSample],
    hold_given: bool,
) -> String {
    match measured {
        Some((hold, n)) => format!(
            "connection hold time measured from hikaricp_connections_usage_seconds: {:.1} ms over {n:.0} checkouts{}; up to {:.0} threads waited for a connection",
            hold * 1000.0,
            if hold_given { " (--hold given, used instead)" } else { "" },
            max_pending(samples)
        ),
        None => "the metrics endpoints showed no connection checkouts".to_owned(),
    }
}

/// How far above a rate a pool's ceiling must be for threads waiting on it
/// not to mean a short pool: beyond twice the rate, the waits came from
/// connections held longer at busy moments (a thread short of CPU keeps its
/// connection), which a bigger pool would not cure.
const CEILING_MARGIN: f64 = 2.0;

/// Whether a pool whose ceiling is `ceiling` serves well beyond `rate`
/// ([`CEILING_MARGIN`] times): threads waiting on it then do not mean a
/// short pool.
pub(super) fn roomy(ceiling: f64, rate: f64) -> bool {
    ceiling > CEILING_MARGIN * rate
}

/// The requests per second `connections` serve when each request checks a
/// connection out `checkouts_per_request` times (one when unknown) for
/// `hold_s` each: connections ÷ (hold × checkouts). None without a hold
/// time or a connection.
pub(super) fn pool_ceiling(
    connections: f64,
    hold_s: Option<f64>,
    checkouts_per_request: Option<f64>,
) -> Option<f64> {
    let k = checkouts_per_request.unwrap_or(1.0).max(f64::MIN_POSITIVE);
    hold_s
        .filter(|h| *h > 0.0 && connections > 0.0)
        .map(|h| connections / (h * k))
}

/// What the pool series scraped during a verification replay at
/// `rate_per_pod` say: (whether the pool was short, why). Threads waiting
/// for a connection mean a short pool when its ceiling — connections ÷
/// (hold × checkouts per request) — is within 2× of the rate; a pool that
/// could serve far more had them wait because connections were held longer
/// at busy moments (a thread short of CPU keeps its connection), which a
/// bigger pool would not cure.
pub fn verification_waits(
    samples: &[PoolSample],
    hold_s: Option<f64>,
    checkouts_per_request: Option<f64>,
    rate_per_pod: f64,
) -> (bool, String) {
    let pending = max_pending(samples);
    if pending <= 0.0 {
        return (
            false,
            "no thread waited for a database connection (hikaricp_connections_pending stayed 0)"
                .to_owned(),
        );
    }
    let connections = samples.iter().map(|s| s.max).fold(0.0, f64::max);
    let k = checkouts_per_request.unwrap_or(1.0);
    match (hold_s, pool_ceiling(connections, hold_s, checkouts_per_request)) {
        (Some(hold), Some(ceiling)) if roomy(ceiling, rate_per_pod) => (
            false,
            format!(
                "up to {pending:.0} threads waited for a database connection at moments, though {connections:.0} connections held {:.1} ms for {k:.1} checkouts per request serve about {ceiling:.0} req/s per pod, {:.0}× this rate: not a pool shortage (connections held longer while their threads waited for CPU)",
                hold * 1000.0,
                ceiling / rate_per_pod.max(f64::MIN_POSITIVE)
            ),
        ),
        _ => (
            true,
            format!("up to {pending:.0} threads waited for a database connection (hikaricp_connections_pending): the pool is short at this rate"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(active: f64, pending: f64, max: f64) -> PoolSample {
        PoolSample {
            url: "http://pod-1/actuator/prometheus".into(),
            active,
            pending,
            max,
            ..Default::default()
        }
    }

    /// Both ways: no wait passes; waits with a pool that could serve ten
    /// times the rate are CPU, not the pool; waits near the ceiling are a
    /// short pool.
    #[test]
    fn verification_waits_are_a_short_pool_only_near_its_ceiling() {
        let quiet = [sample(3.0, 0.0, 5.0)];
        let (short, why) = verification_waits(&quiet, Some(0.0016), Some(10.0), 13.6);
        assert!(!short && why.contains("stayed 0"), "{why}");
        let waits = [sample(5.0, 6.0, 5.0)];
        let (short, why) = verification_waits(&waits, Some(0.0016), Some(10.0), 13.6);
        assert!(!short, "{why}");
        assert!(
            why.contains("serve about 312 req/s per pod, 23× this rate: not a pool shortage"),
            "{why}"
        );
        let (short, why) = verification_waits(&waits, Some(0.0016), Some(10.0), 200.0);
        assert!(short && why.contains("the pool is short"), "{why}");
        let (short, _) = verification_waits(&waits, None, None, 13.6);
        assert!(
            short,
            "without a hold time, waiting threads count against the pool"
        );
    }

    fn seed(replicas: u32) -> Plan {
        Plan {
            replicas,
            pool: 5,
            pgbouncer_pool: Some(20),
            max_connections: Some(30),
            reserved: POSTGRES_RESERVED,
        }
    }

    #[test]
    fn the_seed_arithmetic() {
        let ok = check(&seed(3));
        assert!(ok.fits, "{:?}", ok.lines);
        assert!(ok.lines[0]
            .contains("3 replicas × 5 connections = 15 fits pgBouncer default_pool_size 20"));
        let bad = check(&seed(5));
        assert!(!bad.fits);
        assert!(bad.lines[0].contains("= 25 exceeds"));
        assert_eq!(
            bad.first_break,
            Some(("pgBouncer default_pool_size 20".into(), 5))
        );
        // The seed's fix: pool 30 and max_connections 40.
        let fixed = check(&Plan {
            pgbouncer_pool: Some(30),
            max_connections: Some(40),
            ..seed(5)
        });
        assert!(fixed.fits, "{:?}", fixed.lines);
    }

    #[test]
    fn openmrs_on_galera_breaks_near_ten_pods() {
        // 50 connections per pod, max_connections 200 on one Galera node... ×3 nodes = 600.
        let c = check(&Plan {
            replicas: 12,
            pool: 50,
            pgbouncer_pool: None,
            max_connections: Some(600),
            reserved: 0,
        });
        assert_eq!(c.first_break.as_ref().map(|b| b.1), Some(13));
        let c = check(&Plan {
            replicas: 12,
            pool: 50,
            pgbouncer_pool: None,
            max_connections: Some(500),
            reserved: 0,
        });
        assert!(!c.fits && c.first_break.unwrap().1 == 11);
    }

    #[test]
    fn sizes_from_erlang_c_and_respects_the_floor() {
        let p = size(200.0, 0.02, 0.05, 1); // a = 4 Erlangs
        assert_eq!(p.size, erlang::smallest_pool(4.0, 0.05, 1));
        assert!(p.wait_probability <= 0.05);
        let floored = size(1.0, 0.01, 0.05, 10);
        assert_eq!(floored.size, 10);
        assert!(floored.reason.contains("deadlock-free minimum"));
        let k = knobs(8, 5);
        assert_eq!(
            (
                k.hikari_maximum_pool_size,
                k.pgbouncer_default_pool_size,
                k.max_connections
            ),
            (8, 40, 43)
        );
    }
}
