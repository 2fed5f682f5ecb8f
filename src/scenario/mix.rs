//! The persona mix: which persona each arrival (open model) or user
//! (closed model, when split over shards) plays.

/// Which persona each arrival plays: smooth weighted round robin (as nginx
/// balances upstreams), so every stretch of `total weight` arrivals holds
/// each persona exactly its weight's worth, interleaved. A random draw would
/// be off in short runs: at weights 5:2:2:1, a 23-arrival run missed the
/// weight-1 persona entirely about one time in eleven (0.9^23). Arrival
/// times stay as planned; only the mix is made exact.
pub struct PersonaMix {
    weights: Vec<i64>,
    current: Vec<i64>,
    total: i64,
}

impl PersonaMix {
    /// A mix over personas with these weights (a weight of 0 is never picked).
    pub fn new(weights: impl IntoIterator<Item = u32>) -> Self {
        let weights: Vec<i64> = weights.into_iter().map(i64::from).collect();
        PersonaMix {
            current: vec![0; weights.len()],
            total: weights.iter().sum(),
            weights,
        }
    }

    /// The persona (index) of the next arrival.
    pub fn pick(&mut self) -> usize {
        for (c, w) in self.current.iter_mut().zip(&self.weights) {
            *c += w;
        }
        let best = (0..self.current.len())
            .filter(|&i| self.weights[i] > 0)
            .max_by_key(|&i| (self.current[i], std::cmp::Reverse(i)))
            .unwrap_or(0);
        if let Some(c) = self.current.get_mut(best) {
            *c -= self.total;
        }
        best
    }
}
