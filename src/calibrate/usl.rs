//! Universal Scalability Law fit: X(N) = λN / (1 + σ(N−1) + κN(N−1)).
//!
//! For a fixed λ the model is linear in σ and κ (λN/X − 1 = σ(N−1) +
//! κN(N−1)), so the fit searches λ and solves σ, κ by least squares for
//! each, keeping the λ with the smallest squared error in throughput. The
//! uncertainty range comes from refitting bootstrap resamples of the points.
//! For open-model points, N is the concurrency by Little's law: N = X · R.

use serde::{Deserialize, Serialize};

/// A fitted USL with ranges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UslFit {
    /// Throughput of one unit of concurrency (per second).
    pub lambda: f64,
    /// Contention.
    pub sigma: f64,
    /// Coherency (crosstalk).
    pub kappa: f64,
    /// Concurrency of peak throughput, sqrt((1−σ)/κ); infinite when κ = 0.
    pub n_star: f64,
    /// Throughput at N*.
    pub x_max: f64,
    /// 5th–95th percentile of σ over bootstrap refits.
    pub sigma_range: (f64, f64),
    /// 5th–95th percentile of κ.
    pub kappa_range: (f64, f64),
    /// 5th–95th percentile of N*.
    pub n_star_range: (f64, f64),
    /// Coefficient of determination of the fit.
    pub r_squared: f64,
}

/// The model's throughput at concurrency `n`.
pub fn throughput(lambda: f64, sigma: f64, kappa: f64, n: f64) -> f64 {
    lambda * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))
}

/// σ, κ (both ≥ 0) for a given λ by least squares; and the squared error.
fn solve(points: &[(f64, f64)], lambda: f64) -> (f64, f64, f64) {
    let (mut saa, mut sab, mut sbb, mut say, mut sby) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(n, x) in points {
        let (a, b, y) = (n - 1.0, n * (n - 1.0), lambda * n / x - 1.0);
        saa += a * a;
        sab += a * b;
        sbb += b * b;
        say += a * y;
        sby += b * y;
    }
    let det = saa * sbb - sab * sab;
    let (mut sigma, mut kappa) = if det.abs() > 1e-12 {
        ((say * sbb - sby * sab) / det, (saa * sby - sab * say) / det)
    } else {
        (0.0, 0.0)
    };
    // Physical values are never negative: refit the other alone when one is.
    if sigma < 0.0 {
        sigma = 0.0;
        kappa = if sbb > 0.0 { (sby / sbb).max(0.0) } else { 0.0 };
    } else if kappa < 0.0 {
        kappa = 0.0;
        sigma = if saa > 0.0 { (say / saa).max(0.0) } else { 0.0 };
    }
    let sse = points
        .iter()
        .map(|&(n, x)| (x - throughput(lambda, sigma, kappa, n)).powi(2))
        .sum();
    (sigma, kappa, sse)
}

/// Best (λ, σ, κ) for the points.
fn fit_once(points: &[(f64, f64)]) -> (f64, f64, f64) {
    let per_unit = points.iter().map(|&(n, x)| x / n).fold(0.0, f64::max);
    let (lo, hi) = (per_unit * 0.5, per_unit * 4.0);
    // Coarse scan, then golden-section refinement around the best point.
    let steps = 200;
    let mut best = (lo, f64::INFINITY);
    for i in 0..=steps {
        let l = lo + (hi - lo) * i as f64 / steps as f64;
        let sse = solve(points, l).2;
        if sse < best.1 {
            best = (l, sse);
        }
    }
    let width = (hi - lo) / steps as f64;
    let (mut a, mut b) = ((best.0 - width).max(lo), (best.0 + width).min(hi));
    let g = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..60 {
        let (c, d) = (b - g * (b - a), a + g * (b - a));
        if solve(points, c).2 < solve(points, d).2 {
            b = d;
        } else {
            a = c;
        }
    }
    let lambda = (a + b) / 2.0;
    let (sigma, kappa, _) = solve(points, lambda);
    (lambda, sigma, kappa)
}

fn n_star(sigma: f64, kappa: f64) -> f64 {
    if kappa > 0.0 && sigma < 1.0 {
        ((1.0 - sigma) / kappa).sqrt()
    } else {
        f64::INFINITY
    }
}

fn percentile_range(mut values: Vec<f64>) -> (f64, f64) {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.05), at(0.95))
}

/// Fits the USL to (concurrency, throughput) points; `None` with fewer than
/// three distinct concurrency levels (the model has three parameters).
pub fn fit(points: &[(f64, f64)]) -> Option<UslFit> {
    let points: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(n, x)| *n > 0.0 && *x > 0.0)
        .collect();
    let mut levels: Vec<f64> = points.iter().map(|p| p.0).collect();
    levels.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    levels.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
    if levels.len() < 3 {
        return None;
    }
    let (lambda, sigma, kappa) = fit_once(&points);
    let mean = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
    let total: f64 = points.iter().map(|p| (p.1 - mean).powi(2)).sum();
    let residual: f64 = points
        .iter()
        .map(|&(n, x)| (x - throughput(lambda, sigma, kappa, n)).powi(2))
        .sum();
    // Bootstrap with a fixed generator: the same data always gives the same ranges.
    let mut seed: u64 = 0x5eed_c0ff_ee00_0001;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let (mut sigmas, mut kappas, mut stars) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..200 {
        let sample: Vec<(f64, f64)> = (0..points.len())
            .map(|_| points[next() % points.len()])
            .collect();
        let distinct = sample
            .iter()
            .map(|p| (p.0 * 1e6) as i64)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        if distinct < 3 {
            continue;
        }
        let (_, s, k) = fit_once(&sample);
        sigmas.push(s);
        kappas.push(k);
        stars.push(n_star(s, k));
    }
    let star = n_star(sigma, kappa);
    Some(UslFit {
        lambda,
        sigma,
        kappa,
        n_star: star,
        x_max: if star.is_finite() {
            throughput(lambda, sigma, kappa, star)
        } else {
            lambda / sigma.max(1e-12)
        },
        sigma_range: percentile_range(if sigmas.is_empty() {
            vec![sigma]
        } else {
            sigmas
        }),
        kappa_range: percentile_range(if kappas.is_empty() {
            vec![kappa]
        } else {
            kappas
        }),
        n_star_range: percentile_range(if stars.is_empty() { vec![star] } else { stars }),
        r_squared: if total > 0.0 {
            1.0 - residual / total
        } else {
            1.0
        },
    })
}

/// What a fit says about the system, judged on the fit itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// R² below [`GOOD_FIT`]: the curve does not describe these steps; the
    /// capacity stands on the steps alone.
    PoorFit,
    /// No peak, and throughput flat past a point (σ near 1): a fixed
    /// resource, such as a connection pool, caps it.
    HardCeiling,
    /// No peak, throughput levelling off (σ): queueing for shared resources.
    Contention,
    /// A peak at N*, then falling throughput (κ above zero in every refit):
    /// adding load loses work.
    CoherencyBound,
}

/// The R² a fit needs before its shape is read as the system's.
pub const GOOD_FIT: f64 = 0.9;

impl UslFit {
    /// What the fit's shape says about the system, judged on the fit itself.
    pub fn shape(&self) -> Shape {
        // A fit whose R² is not a number is as poor as one below the bar.
        if self.r_squared.is_nan() || self.r_squared < GOOD_FIT {
            Shape::PoorFit
        } else if self.n_star.is_finite() && self.kappa_range.0 > 0.0 {
            // κ above zero in every bootstrap refit, not by a hair in one.
            Shape::CoherencyBound
        } else if self.sigma >= 0.5 {
            Shape::HardCeiling
        } else {
            Shape::Contention
        }
    }

    /// The shape in words, for the reasons.
    pub fn shape_text(&self) -> String {
        match self.shape() {
            Shape::PoorFit => format!(
                "poor fit (R² {:.3} < {GOOD_FIT}): the USL does not describe these steps and is not used; the capacity above stands on the steps alone",
                self.r_squared
            ),
            Shape::HardCeiling => format!(
                "a hard ceiling (σ {:.2}, no peak): throughput stops growing at about {:.0} req/s, as when a fixed resource such as a connection pool is used up",
                self.sigma, self.x_max
            ),
            Shape::Contention => format!(
                "contention (σ {:.3}, no peak): throughput levels off as load grows, towards {:.0} req/s",
                self.sigma, self.x_max
            ),
            Shape::CoherencyBound => format!(
                "coherency-bound (κ {:.5}): throughput peaks at N* {:.0} in flight ({:.0} req/s) and falls beyond it",
                self.kappa, self.n_star, self.x_max
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic(lambda: f64, sigma: f64, kappa: f64, noise: f64) -> Vec<(f64, f64)> {
        (1..=40)
            .map(|n| {
                let n = n as f64;
                // Deterministic ±noise wobble.
                let wobble = 1.0 + noise * ((n * 1.7).sin());
                (n, throughput(lambda, sigma, kappa, n) * wobble)
            })
            .collect()
    }

    #[test]
    fn recovers_known_parameters_within_five_percent() {
        for (sigma, kappa) in [(0.05, 0.002), (0.1, 0.0005), (0.02, 0.004)] {
            let f = fit(&synthetic(120.0, sigma, kappa, 0.0)).unwrap();
            assert!(
                (f.sigma - sigma).abs() / sigma < 0.05,
                "σ {} for {sigma}",
                f.sigma
            );
            assert!(
                (f.kappa - kappa).abs() / kappa < 0.05,
                "κ {} for {kappa}",
                f.kappa
            );
            assert!((f.lambda - 120.0).abs() / 120.0 < 0.05, "λ {}", f.lambda);
            assert!(f.r_squared > 0.999);
        }
    }

    #[test]
    fn noisy_data_still_recovers_and_ranges_cover_the_truth() {
        let f = fit(&synthetic(120.0, 0.05, 0.002, 0.01)).unwrap();
        assert!((f.sigma - 0.05).abs() / 0.05 < 0.05 * 3.0, "σ {}", f.sigma);
        assert!(
            (f.kappa - 0.002).abs() / 0.002 < 0.05 * 3.0,
            "κ {}",
            f.kappa
        );
        let n_true = ((1.0 - 0.05) / 0.002f64).sqrt();
        assert!(
            f.n_star_range.0 <= n_true * 1.05 && f.n_star_range.1 >= n_true * 0.95,
            "{:?} vs {n_true}",
            f.n_star_range
        );
        assert!(f.sigma_range.0 <= f.sigma && f.sigma <= f.sigma_range.1);
    }

    #[test]
    fn linear_scaling_has_no_peak() {
        let pts: Vec<(f64, f64)> = (1..=10).map(|n| (n as f64, 50.0 * n as f64)).collect();
        let f = fit(&pts).unwrap();
        assert!(f.sigma < 1e-6 && f.kappa < 1e-9);
        assert!(f.n_star.is_infinite());
    }

    /// Each shape gets its verdict, and a curve that does not describe the
    /// points is called a poor fit whatever its parameters say.
    #[test]
    fn the_fit_judges_its_own_shape() {
        let coherency = fit(&synthetic(120.0, 0.05, 0.002, 0.0)).unwrap();
        assert_eq!(coherency.shape(), Shape::CoherencyBound);
        let contention = fit(&synthetic(120.0, 0.1, 0.0, 0.0)).unwrap();
        assert_eq!(contention.shape(), Shape::Contention);
        // A pool caps throughput: it grows, then stays flat.
        let ceiling: Vec<(f64, f64)> = [1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0]
            .iter()
            .map(|&n: &f64| (n, (100.0 * n).min(200.0)))
            .collect();
        let f = fit(&ceiling).unwrap();
        assert!(
            matches!(f.shape(), Shape::HardCeiling | Shape::PoorFit),
            "{f:?}"
        );
        let scattered = [
            (1.0, 50.0),
            (2.0, 10.0),
            (3.0, 90.0),
            (4.0, 20.0),
            (5.0, 70.0),
        ];
        if let Some(f) = fit(&scattered) {
            assert_eq!(f.shape(), Shape::PoorFit, "{f:?}");
            assert!(f.shape_text().contains("not used"));
        }
    }

    #[test]
    fn too_few_levels_cannot_be_fitted() {
        assert!(fit(&[(1.0, 10.0), (2.0, 19.0)]).is_none());
        assert!(fit(&[(1.0, 10.0), (1.0, 11.0), (2.0, 19.0)]).is_none());
    }
}
