//! Erlang C: the chance a request waits for a database connection, and the
//! smallest pool that keeps that chance under a target.
//!
//! With offered load a = λ/μ (arrival rate × connection hold time) and c
//! connections: C(c, a) = [aᶜ/c! · c/(c−a)] / [Σₖ₍ₖ<c₎ aᵏ/k! + aᶜ/c! · c/(c−a)];
//! E\[Wq\] = C/(cμ − λ); P(Wq > t) = C·e^{−(cμ−λ)t}. Check: C(3, 2) = 0.444.

/// Probability that an arrival waits, for `c` servers and offered load `a`
/// (Erlangs). 1 when the pool cannot keep up (a ≥ c).
pub fn erlang_c(c: u32, a: f64) -> f64 {
    if c == 0 || a >= c as f64 {
        return 1.0;
    }
    if a <= 0.0 {
        return 0.0;
    }
    // Erlang B by its stable recurrence, then C from B.
    let mut b = 1.0;
    for k in 1..=c {
        b = a * b / (k as f64 + a * b);
    }
    let rho = a / c as f64;
    b / (1.0 - rho + rho * b)
}

/// Mean wait for a connection, seconds, with arrival rate `lambda` (1/s) and
/// hold time `hold` (s) per request, `c` connections.
pub fn mean_wait(c: u32, lambda: f64, hold: f64) -> f64 {
    let mu = 1.0 / hold;
    let a = lambda * hold;
    if a >= c as f64 {
        return f64::INFINITY;
    }
    erlang_c(c, a) / (c as f64 * mu - lambda)
}

/// Probability that a request waits longer than `t` seconds for a connection.
pub fn wait_longer_than(c: u32, lambda: f64, hold: f64, t: f64) -> f64 {
    let mu = 1.0 / hold;
    let a = lambda * hold;
    if a >= c as f64 {
        return 1.0;
    }
    erlang_c(c, a) * (-(c as f64 * mu - lambda) * t).exp()
}

/// The smallest pool whose waiting probability is at most `epsilon`, never
/// below `floor` (e.g. the deadlock-free minimum).
pub fn smallest_pool(a: f64, epsilon: f64, floor: u32) -> u32 {
    let mut c = (a.ceil() as u32).max(floor).max(1);
    while erlang_c(c, a) > epsilon {
        c += 1;
    }
    c
}

/// HikariCP's deadlock-free minimum: Tn × (Cm − 1) + 1 for Tn threads each
/// holding up to Cm connections at once.
pub fn deadlock_free_minimum(threads: u32, per_thread: u32) -> u32 {
    threads * per_thread.saturating_sub(1) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_check_value() {
        assert!(
            (erlang_c(3, 2.0) - 0.444).abs() < 0.0005,
            "{}",
            erlang_c(3, 2.0)
        );
    }

    #[test]
    fn matches_the_textbook_formula() {
        // Direct formula with factorials, for small c.
        let direct = |c: u32, a: f64| {
            let fact = |n: u32| (1..=n).map(|k| k as f64).product::<f64>();
            let top = a.powi(c as i32) / fact(c) * c as f64 / (c as f64 - a);
            let sum: f64 = (0..c).map(|k| a.powi(k as i32) / fact(k)).sum();
            top / (sum + top)
        };
        for (c, a) in [(1, 0.5), (2, 1.5), (5, 3.7), (10, 8.0), (20, 12.3)] {
            assert!((erlang_c(c, a) - direct(c, a)).abs() < 1e-9, "C({c}, {a})");
        }
    }

    #[test]
    fn saturation_and_idle_edges() {
        assert_eq!(erlang_c(4, 4.0), 1.0);
        assert_eq!(erlang_c(4, 0.0), 0.0);
        assert_eq!(mean_wait(2, 100.0, 0.05), f64::INFINITY);
    }

    #[test]
    fn smallest_pool_meets_the_target() {
        let a = 8.0;
        let c = smallest_pool(a, 0.05, 1);
        assert!(
            erlang_c(c, a) <= 0.05 && erlang_c(c - 1, a) > 0.05,
            "c = {c}"
        );
        assert_eq!(smallest_pool(0.1, 0.05, 6), 6, "never below the floor");
        assert_eq!(deadlock_free_minimum(8, 2), 9);
    }

    #[test]
    fn waits_shrink_with_more_connections() {
        let (lambda, hold) = (150.0, 0.02); // a = 3 Erlangs
        assert!(mean_wait(4, lambda, hold) > mean_wait(6, lambda, hold));
        assert!(wait_longer_than(4, lambda, hold, 0.0) <= 1.0);
        assert!((wait_longer_than(4, lambda, hold, 0.0) - erlang_c(4, 3.0)).abs() < 1e-12);
    }
}
