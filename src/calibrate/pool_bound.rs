//! Whether the pool the pods ran with bound the capacity measured, and what
//! that means for the HPA target when the recommended pool differs.
//!
//! The pool bound the capacity when its scraped series show it used up
//! (every connection active, threads waiting for one) and its ceiling —
//! connections ÷ (hold × checkouts per request) — is within 2× of the
//! measured capacity. The HPA target always rests on the capacity actually
//! measured: a larger recommended pool has a higher ceiling, but that
//! ceiling is the pool's alone (the pods' CPU or the database may bind
//! first, and neither was measured past the old pool), so the target is not
//! raised to it; [`target_basis`] says so, with both numbers, and asks for
//! a calibration with the recommended pool.

use super::pool::pool_ceiling;
use crate::bundle::PoolSample;
use serde::{Deserialize, Serialize};

/// The pool the pods ran with during the staircase, as scraped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasuredPool {
    /// Connections per pod (`hikaricp_connections_max`).
    pub connections: u32,
    /// Whether this pool bound the capacity measured.
    pub bound_capacity: bool,
    /// Its ceiling, work requests/s per pod: connections ÷ (hold ×
    /// checkouts per request); None without a hold time.
    pub ceiling_per_pod: Option<f64>,
}

/// The scrape that shows the pool used up (every connection active,
/// threads waiting) with the most threads waiting; None while it had room.
fn used_up(samples: &[PoolSample]) -> Option<&PoolSample> {
    samples
        .iter()
        .filter(|s| s.max > 0.0 && s.active >= s.max && s.pending > 0.0)
        .max_by(|a, b| a.pending.total_cmp(&b.pending))
}

/// Whether a pool whose ceiling is `ceiling` could not have bound
/// `capacity`: it serves more than twice as much, so threads waited on it
/// because connections were held longer at busy moments (a thread short of
/// CPU keeps its connection), which a bigger pool would not cure.
fn roomy(ceiling: Option<f64>, capacity: Option<f64>) -> bool {
    matches!((ceiling, capacity), (Some(c), Some(x)) if super::pool::roomy(c, x))
}

/// The pool the pods ran with, from the scraped series: its size (that of
/// the pool seen used up, else the largest seen), and whether it bound the
/// measured `capacity_per_pod`. None when no pool series was scraped.
pub fn measured_pool(
    samples: &[PoolSample],
    hold_s: Option<f64>,
    checkouts_per_request: Option<f64>,
    capacity_per_pod: Option<f64>,
) -> Option<MeasuredPool> {
    let full = used_up(samples);
    let connections = full
        .map(|s| s.max)
        .unwrap_or_else(|| samples.iter().map(|s| s.max).fold(0.0, f64::max));
    if connections <= 0.0 {
        return None;
    }
    let ceiling = pool_ceiling(connections, hold_s, checkouts_per_request);
    Some(MeasuredPool {
        connections: connections.round() as u32,
        bound_capacity: full.is_some() && !roomy(ceiling, capacity_per_pod),
        ceiling_per_pod: ceiling,
    })
}

/// What the scraped pool series say about `pool`, the pool
/// [`measured_pool`] found in `samples`, when they show it used up (every
/// connection active and threads waiting for one); None while it had room.
///
/// Whether the pool was the bound is `pool.bound_capacity`: it could
/// explain the capacity, serving no more than twice the measured
/// `capacity_per_pod`. Then the reason says what the `recommended` pool
/// would allow and that capacity must be measured again after the change.
/// A pool that could serve far more yet had threads waiting was not the
/// bound, and the reason says why, with its ceiling.
pub fn bound_reason(
    pool: &MeasuredPool,
    samples: &[PoolSample],
    hold_s: Option<f64>,
    checkouts_per_request: Option<f64>,
    capacity_per_pod: Option<f64>,
    recommended: Option<u32>,
) -> Option<String> {
    let full = used_up(samples)?;
    let used_up = format!(
        "all {:.0} connections were in use with {:.0} threads waiting ({})",
        full.max, full.pending, full.url
    );
    let per_request = checkouts_per_request
        .map(|k| format!(" for {k:.1} checkouts per request"))
        .unwrap_or_default();
    let hold = hold_s.filter(|h| *h > 0.0);
    // Used up yet not the bound: its ceiling (a hold time known) is well
    // above the capacity measured.
    if let (false, Some(h), Some(ceiling), Some(capacity)) = (
        pool.bound_capacity,
        hold,
        pool.ceiling_per_pod,
        capacity_per_pod,
    ) {
        return Some(format!(
            "threads waited for a connection ({used_up}), but the pool was not the bound: {:.0} connections held {:.1} ms each{per_request} serve about {ceiling:.0} req/s per pod, {:.0}× the measured capacity {capacity:.1}; connections were held longer at busy moments (a thread short of CPU keeps its connection), so a bigger pool would not raise the capacity",
            full.max,
            h * 1000.0,
            ceiling / capacity
        ));
    }
    let mut reason = format!("the POOL BOUND THE CAPACITY: {used_up}");
    if let (Some(h), Some(ceiling)) = (hold, pool.ceiling_per_pod) {
        reason += &format!(
            "; {:.0} connections held {:.1} ms each{per_request} serve at most {ceiling:.0} req/s per pod",
            full.max,
            h * 1000.0,
        );
    }
    if let Some(n) = recommended {
        reason += &format!("; the pool recommended below is {n}");
        if let Some(allowed) = pool_ceiling(n as f64, hold_s, checkouts_per_request) {
            reason += &format!(", which alone would allow about {allowed:.0} req/s per pod");
        }
    }
    reason += ": after changing the pool, measure capacity again (the HPA target below rests on the pool measured with)";
    Some(reason)
}

/// The pool ceiling's formula with its numbers: "5 connections ÷ (3.4 ms
/// hold × 10.0 checkouts per request)".
fn ceiling_formula(connections: u32, hold_s: f64, checkouts_per_request: Option<f64>) -> String {
    match checkouts_per_request {
        Some(k) => format!(
            "{connections} connections ÷ ({:.1} ms hold × {k:.1} checkouts per request)",
            hold_s * 1000.0
        ),
        None => format!(
            "{connections} connections ÷ {:.1} ms hold, one checkout per request assumed",
            hold_s * 1000.0
        ),
    }
}

/// What the HPA target (`target_per_pod`, from the measured
/// `capacity_per_pod`) rests on, pool-wise: the pool it was measured with,
/// whether that pool bound it, and the pool ceiling at the `recommended`
/// pool. None when no pool was scraped and none recommended: there is no
/// pool to speak of.
///
/// The target is never raised to the recommended pool's ceiling: when the
/// measured pool bound the capacity and a larger one is recommended, the
/// text says the target stays on the measured capacity and that a
/// calibration with the recommended pool is needed to raise it.
pub fn target_basis(
    measured: Option<&MeasuredPool>,
    capacity_per_pod: f64,
    target_per_pod: f64,
    recommended: Option<u32>,
    hold_s: Option<f64>,
    checkouts_per_request: Option<f64>,
) -> Option<String> {
    let target = format!("the target {target_per_pod:.1} req/s per pod");
    let Some(pool) = measured else {
        return recommended.map(|r| format!(
            "the pool the pods ran with during the staircase was not recorded (no --metrics-url scraped hikaricp_connections_max): {target} holds at the recommended pool {r} only if the pool did not bind the {capacity_per_pod:.1} req/s per pod measured; scrape the pools to know"
        ));
    };
    let p = pool.connections;
    let mut out = format!("target measured with pool {p}: {capacity_per_pod:.1} req/s per pod");
    out += &match (pool.bound_capacity, pool.ceiling_per_pod) {
        (true, Some(ceiling)) => {
            format!(" (pool-bound: pool {p} serves at most {ceiling:.0} req/s per pod)")
        }
        (true, None) => " (pool-bound)".to_owned(),
        (false, Some(ceiling)) => {
            format!(" (not pool-bound: pool {p} allows about {ceiling:.0} req/s per pod)")
        }
        (false, None) => " (not pool-bound: the pool never ran out)".to_owned(),
    };
    // No ceiling (None) without a positive hold time.
    let at_recommended = recommended.zip(hold_s).and_then(|(r, h)| {
        pool_ceiling(r as f64, Some(h), checkouts_per_request).map(|y| (r, h, y))
    });
    let Some((r, hold, ceiling)) = at_recommended else {
        out += &if pool.bound_capacity {
            format!("; a larger pool may raise it, but without a hold time its ceiling is not computed: {target} stays on the measured capacity — re-calibrate with a larger pool to raise it")
        } else {
            format!("; {target} rests on it")
        };
        return Some(out);
    };
    out += &format!(
        "; at the recommended pool {r} the pool ceiling is {ceiling:.0} req/s per pod ({})",
        ceiling_formula(r, hold, checkouts_per_request)
    );
    out += &if pool.bound_capacity && r > p {
        format!(", so {target} stays on the measured capacity: at pool {r} the pods' CPU or the database may bind before that ceiling, and neither was measured — re-calibrate with pool {r} to raise the target")
    } else if ceiling > capacity_per_pod {
        format!(", above the measured capacity: {target} holds at pool {r}")
    } else {
        format!(", not above the measured capacity: at pool {r} the pool would bind first — keep pool {p} or re-calibrate with pool {r}")
    };
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`bound_reason`] of the pool [`measured_pool`] finds in `samples`,
    /// with a hold time, checkouts per request and a capacity (`facts`).
    fn reason_of(
        samples: &[PoolSample],
        (hold, k, capacity): (Option<f64>, Option<f64>, Option<f64>),
        recommended: Option<u32>,
    ) -> Option<String> {
        let pool = measured_pool(samples, hold, k, capacity)?;
        bound_reason(&pool, samples, hold, k, capacity, recommended)
    }

    fn sample(active: f64, pending: f64, max: f64) -> PoolSample {
        PoolSample {
            url: "http://pod-1/actuator/prometheus".into(),
            active,
            pending,
            max,
            ..Default::default()
        }
    }

    /// Named as the bound only when every connection was busy and threads
    /// waited; a pool with room, or busy without a queue, is not.
    #[test]
    fn a_used_up_pool_is_named_as_the_bound() {
        let full = [sample(2.0, 0.0, 4.0), sample(4.0, 7.0, 4.0)];
        let reason = reason_of(&full, (Some(0.02), None, Some(190.0)), Some(9))
            .expect("the pool was used up");
        assert!(reason.contains("POOL BOUND THE CAPACITY"), "{reason}");
        assert!(
            reason.contains("all 4 connections were in use with 7 threads waiting"),
            "{reason}"
        );
        assert!(reason.contains("at most 200 req/s per pod"), "{reason}");
        assert!(
            reason.contains("recommended below is 9, which alone would allow about 450"),
            "{reason}"
        );
        assert!(reason.contains("measure capacity again"), "{reason}");
        let bound = measured_pool(&full, Some(0.02), None, Some(190.0)).unwrap();
        assert_eq!((bound.connections, bound.bound_capacity), (4, true));
        assert_eq!(
            reason_of(&[sample(3.0, 0.0, 4.0)], (Some(0.02), None, None), Some(9)),
            None
        );
        assert_eq!(
            reason_of(&[sample(4.0, 0.0, 4.0)], (Some(0.02), None, None), Some(9)),
            None
        );
        let busy_no_queue = measured_pool(&[sample(4.0, 0.0, 4.0)], Some(0.02), None, Some(190.0));
        assert_eq!(busy_no_queue.map(|p| p.bound_capacity), Some(false));
        assert_eq!(reason_of(&[], (None, None, None), None), None);
        assert_eq!(
            measured_pool(&[], None, None, None),
            None,
            "no series, no pool"
        );
    }

    /// Measured on a real HAPI FHIR cluster: threads waited for one of 5
    /// connections held 3.4 ms, ten checkouts a search, at 14 req/s per pod.
    /// Such a pool serves ~147 req/s: not the bound. The same waits with a
    /// capacity near the pool's ceiling are.
    #[test]
    fn a_pool_with_waits_is_the_bound_only_if_it_could_explain_the_capacity() {
        let full = [sample(5.0, 19.0, 5.0)];
        let not = reason_of(&full, (Some(0.0034), Some(10.0), Some(14.3)), Some(2)).unwrap();
        assert!(!not.contains("POOL BOUND"), "{not}");
        assert!(not.contains("the pool was not the bound"), "{not}");
        assert!(not.contains("for 10.0 checkouts per request serve about 147 req/s per pod, 10× the measured capacity 14.3"), "{not}");
        let measured = measured_pool(&full, Some(0.0034), Some(10.0), Some(14.3)).unwrap();
        assert!(!measured.bound_capacity);
        let bound = reason_of(&full, (Some(0.0034), Some(10.0), Some(120.0)), Some(8)).unwrap();
        assert!(bound.contains("POOL BOUND THE CAPACITY"), "{bound}");
        assert!(bound.contains("serve at most 147 req/s per pod"), "{bound}");
        assert!(
            bound.contains("recommended below is 8, which alone would allow about 235"),
            "{bound}"
        );
        assert!(
            measured_pool(&full, Some(0.0034), Some(10.0), Some(120.0))
                .unwrap()
                .bound_capacity
        );
    }

    /// The user's cluster: measured with pool 2, which bound the capacity,
    /// and a recommended pool of 5. The target stays on the measured
    /// capacity, and the text gives the pool it was measured with, the
    /// ceiling at the recommended pool with its formula, and the need to
    /// calibrate again.
    #[test]
    fn a_pool_bound_target_says_it_stays_on_the_measured_capacity() {
        let full = [sample(2.0, 9.0, 2.0)];
        let (hold, k) = (Some(0.0034), Some(10.0));
        let pool = measured_pool(&full, hold, k, Some(50.0)).unwrap();
        assert_eq!((pool.connections, pool.bound_capacity), (2, true));
        let ceiling = pool.ceiling_per_pod.unwrap();
        assert!((ceiling - 2.0 / 0.034).abs() < 1e-9, "{ceiling}");
        let text = target_basis(Some(&pool), 50.0, 41.3, Some(5), hold, k).unwrap();
        assert_eq!(
            text,
            "target measured with pool 2: 50.0 req/s per pod (pool-bound: pool 2 serves at most 59 req/s per pod); at the recommended pool 5 the pool ceiling is 147 req/s per pod (5 connections ÷ (3.4 ms hold × 10.0 checkouts per request)), so the target 41.3 req/s per pod stays on the measured capacity: at pool 5 the pods' CPU or the database may bind before that ceiling, and neither was measured — re-calibrate with pool 5 to raise the target"
        );
    }

    /// The other way: a pool that had room, or a recommendation no larger
    /// than the pool that bound, asks for no re-calibration.
    #[test]
    fn a_target_the_recommended_pool_can_carry_says_it_holds() {
        let (hold, k) = (Some(0.0034), Some(10.0));
        let roomy = measured_pool(&[sample(3.0, 0.0, 10.0)], hold, k, Some(50.0)).unwrap();
        assert!(!roomy.bound_capacity);
        let text = target_basis(Some(&roomy), 50.0, 41.3, Some(5), hold, k).unwrap();
        assert_eq!(
            text,
            "target measured with pool 10: 50.0 req/s per pod (not pool-bound: pool 10 allows about 294 req/s per pod); at the recommended pool 5 the pool ceiling is 147 req/s per pod (5 connections ÷ (3.4 ms hold × 10.0 checkouts per request)), above the measured capacity: the target 41.3 req/s per pod holds at pool 5"
        );
        let bound = measured_pool(&[sample(5.0, 4.0, 5.0)], hold, k, Some(100.0)).unwrap();
        assert!(bound.bound_capacity);
        let same = target_basis(Some(&bound), 100.0, 82.6, Some(5), hold, k).unwrap();
        assert!(
            same.contains(
                "(pool-bound: pool 5 serves at most 147 req/s per pod); at the recommended pool 5"
            ),
            "{same}"
        );
        assert!(
            same.ends_with(
                "above the measured capacity: the target 82.6 req/s per pod holds at pool 5"
            ),
            "{same}"
        );
        assert!(!same.contains("re-calibrate"), "{same}");
    }

    /// Without scraped pools, the target says its pool is unknown when a
    /// pool is recommended beside it; with neither, nothing is said.
    #[test]
    fn an_unrecorded_pool_is_named_beside_a_recommended_one() {
        let text = target_basis(None, 50.0, 41.3, Some(5), Some(0.0034), None).unwrap();
        assert!(
            text.starts_with("the pool the pods ran with during the staircase was not recorded"),
            "{text}"
        );
        assert!(
            text.contains("holds at the recommended pool 5 only if"),
            "{text}"
        );
        assert_eq!(target_basis(None, 50.0, 41.3, None, None, None), None);
        let bound = MeasuredPool {
            connections: 2,
            bound_capacity: true,
            ceiling_per_pod: None,
        };
        let no_hold = target_basis(Some(&bound), 50.0, 41.3, None, None, None).unwrap();
        assert!(
            no_hold.contains("re-calibrate with a larger pool"),
            "{no_hold}"
        );
    }
}
