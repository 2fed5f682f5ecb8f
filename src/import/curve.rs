//! The log's arrival curve as open-model stages: requests counted per
//! bucket (a second or a minute) of their start time, each bucket a stage
//! holding its rate, consecutive buckets of the same count one stage.
//! `--speed` compresses time (a bucket of 60 s held 60/speed s, its rate
//! × speed, so each bucket keeps its requests) and `--scale` multiplies
//! the rate. Counts are kept per bucket, not per request: memory grows
//! with the log's length in time, never with its lines.

use std::collections::BTreeMap;

/// Arrivals counted per bucket of start time.
#[derive(Debug, Clone)]
pub struct Curve {
    bucket_ms: i64,
    counts: BTreeMap<i64, u64>,
}

/// One stage: its rate (arrivals per second) and how long it holds, ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurveStage {
    /// Arrivals per second.
    pub rate: f64,
    /// How long, ms.
    pub hold_ms: u64,
}

impl Curve {
    /// Buckets of `bucket_ms` (1000 or 60 000).
    pub fn new(bucket_ms: i64) -> Curve {
        Curve {
            bucket_ms: bucket_ms.max(1),
            counts: BTreeMap::new(),
        }
    }

    /// Counts a request that began at `start_ms`.
    pub fn add(&mut self, start_ms: i64) {
        *self
            .counts
            .entry(start_ms.div_euclid(self.bucket_ms))
            .or_insert(0) += 1;
    }

    /// The bucket's length, ms.
    pub fn bucket_ms(&self) -> i64 {
        self.bucket_ms
    }

    /// The most requests in one bucket.
    pub fn busiest(&self) -> u64 {
        self.counts.values().copied().max().unwrap_or(0)
    }

    /// Requests counted.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Buckets from the first request's to the last's.
    pub fn buckets(&self) -> u64 {
        match (self.counts.keys().next(), self.counts.keys().next_back()) {
            (Some(first), Some(last)) => (last - first + 1) as u64,
            _ => 0,
        }
    }

    /// Requests per bucket from the first to the last, empty buckets as 0.
    pub fn per_bucket(&self) -> Vec<u64> {
        let Some(&first) = self.counts.keys().next() else {
            return Vec::new();
        };
        (0..self.buckets() as i64)
            .map(|i| self.counts.get(&(first + i)).copied().unwrap_or(0))
            .collect()
    }

    /// The stages: each run of buckets with the same count one stage at
    /// count ÷ bucket × `speed` × `scale` per second, held bucket ×
    /// run ÷ `speed`.
    pub fn stages(&self, speed: f64, scale: f64) -> Vec<CurveStage> {
        let bucket_s = self.bucket_ms as f64 / 1000.0;
        let mut stages: Vec<(u64, u64)> = Vec::new();
        for count in self.per_bucket() {
            match stages.last_mut() {
                Some((c, run)) if *c == count => *run += 1,
                _ => stages.push((count, 1)),
            }
        }
        stages
            .into_iter()
            .map(|(count, run)| CurveStage {
                rate: count as f64 / bucket_s * speed * scale,
                hold_ms: ((self.bucket_ms as f64 * run as f64) / speed)
                    .round()
                    .max(1.0) as u64,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_become_stages_that_keep_each_buckets_requests() {
        let mut c = Curve::new(60_000);
        // 120 requests in minute 0, none in minute 1, 120 in 2 and 3.
        for i in 0..120 {
            c.add(i * 500);
            c.add(120_000 + i * 500);
            c.add(180_000 + i * 500);
        }
        assert_eq!((c.total(), c.buckets()), (360, 4));
        assert_eq!(c.per_bucket(), vec![120, 0, 120, 120]);
        assert_eq!(
            c.stages(1.0, 1.0),
            vec![
                CurveStage {
                    rate: 2.0,
                    hold_ms: 60_000
                },
                CurveStage {
                    rate: 0.0,
                    hold_ms: 60_000
                },
                CurveStage {
                    rate: 2.0,
                    hold_ms: 120_000
                },
            ]
        );
        // Ten times faster, twice the rate: each bucket's requests × 2 in
        // a tenth of the time.
        let fast = c.stages(10.0, 2.0);
        assert_eq!(
            fast[0],
            CurveStage {
                rate: 40.0,
                hold_ms: 6_000
            }
        );
        assert_eq!(fast[0].rate * fast[0].hold_ms as f64 / 1000.0, 240.0);
        // Requests before the epoch land in their own buckets too.
        let mut early = Curve::new(1000);
        early.add(-1);
        early.add(0);
        assert_eq!(early.per_bucket(), vec![1, 1]);
    }
}
