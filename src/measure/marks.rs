//! Latency just before and just after marked moments (chaos events), exact
//! to the histogram's precision: the minute before a mark is merged from a
//! rolling minute of per-second histograms; the minute after is recorded
//! into the mark as requests complete. Memory stays bounded by one minute of
//! histograms plus two per mark, however long the run.

use hdrhistogram::Histogram;
use std::collections::VecDeque;

/// Seconds on each side of a mark.
pub const WINDOW_S: u64 = 60;

fn hist() -> Histogram<u64> {
    Histogram::new(2).expect("2 significant digits is valid")
}

/// One marked moment.
pub(crate) struct Mark {
    second: u64,
    /// Latency (µs) of requests completed in the minute before.
    pub before: Histogram<u64>,
    /// Latency (µs) of requests completed from the mark's second on, for a minute.
    pub after: Histogram<u64>,
}

/// The rolling minute and the marks.
#[derive(Default)]
pub(crate) struct Marks {
    recent: VecDeque<(u64, Histogram<u64>)>,
    marks: Vec<Mark>,
}

impl Marks {
    /// Records a completed request's latency in the second it completed.
    pub(crate) fn record(&mut self, second: u64, latency_us: u64) {
        let slot = match self.recent.iter_mut().find(|(s, _)| *s == second) {
            Some((_, h)) => h,
            None => {
                self.recent.push_back((second, hist()));
                self.recent.make_contiguous().sort_by_key(|(s, _)| *s);
                while self
                    .recent
                    .front()
                    .is_some_and(|(s, _)| *s + WINDOW_S < second)
                {
                    self.recent.pop_front();
                }
                &mut self
                    .recent
                    .iter_mut()
                    .find(|(s, _)| *s == second)
                    .expect("just inserted")
                    .1
            }
        };
        super::record_us(slot, latency_us);
        for m in &mut self.marks {
            if second >= m.second && second < m.second + WINDOW_S {
                super::record_us(&mut m.after, latency_us);
            }
        }
    }

    /// Marks `second`; returns the mark's index.
    pub(crate) fn mark(&mut self, second: u64) -> usize {
        let mut before = hist();
        for (s, h) in &self.recent {
            if *s < second && *s + WINDOW_S >= second {
                let _ = before.add(h);
            }
        }
        let mut after = hist();
        for (s, h) in &self.recent {
            if *s >= second {
                let _ = after.add(h);
            }
        }
        self.marks.push(Mark {
            second,
            before,
            after,
        });
        self.marks.len() - 1
    }

    /// A mark, if it exists.
    pub(crate) fn get(&self, index: usize) -> Option<&Mark> {
        self.marks.get(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_and_after_are_the_minutes_around_the_mark() {
        let mut m = Marks::default();
        for s in 0..200 {
            // 10 ms until second 100, then 200 ms.
            let us = if s < 100 { 10_000 } else { 200_000 };
            if s == 100 {
                m.mark(100);
            }
            for _ in 0..10 {
                m.record(s, us);
            }
        }
        let mark = m.get(0).unwrap();
        assert_eq!(mark.before.len(), 600, "60 seconds × 10 before");
        assert_eq!(mark.after.len(), 600, "60 seconds × 10 after");
        assert!(mark.before.value_at_quantile(0.99) < 11_000);
        assert!(mark.after.value_at_quantile(0.01) > 190_000);
        assert!(
            m.recent.len() <= WINDOW_S as usize + 1,
            "{}",
            m.recent.len()
        );
    }

    #[test]
    fn a_mark_at_the_start_has_nothing_before() {
        let mut m = Marks::default();
        m.mark(0);
        m.record(0, 5_000);
        assert!(m.get(0).unwrap().before.is_empty());
        assert_eq!(m.get(0).unwrap().after.len(), 1);
    }
}
