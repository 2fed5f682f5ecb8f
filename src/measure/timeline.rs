//! The per-second timeline: counts and latency percentiles for each second.
//!
//! Each second keeps a small histogram only while requests may still land in
//! it; once the run is [`LAG`] seconds past it, its percentiles are computed
//! and the histogram is kept compressed (V2 deflate, about a hundred bytes),
//! so an hour-long run does not hold 3,600 histograms, yet the bundle keeps
//! every second's histogram: shards' timelines merge exactly.

use crate::bundle::TimelineRow;
use hdrhistogram::Histogram;

/// Seconds a second stays open for late completions.
const LAG: u64 = 3;

struct Slot {
    row: TimelineRow,
    /// Boxed: a closed second keeps only its row, not a histogram's worth
    /// of empty space (a long run has one slot per second).
    hist: Option<Box<Histogram<u64>>>,
    /// A closed second's histogram, compressed (empty when it had none).
    encoded: Vec<u8>,
}

/// Per-second rows under construction.
#[derive(Default)]
pub(crate) struct Timeline {
    slots: Vec<Slot>,
    closed: usize,
}

impl Timeline {
    fn slot(&mut self, second: u64) -> &mut Slot {
        while self.slots.len() as u64 <= second {
            let s = self.slots.len() as u64;
            self.slots.push(Slot {
                row: TimelineRow {
                    second: s,
                    ..Default::default()
                },
                // 2 significant digits is plenty for a per-second trend line.
                hist: Some(Box::new(
                    Histogram::new(2).expect("2 significant digits is valid"),
                )),
                encoded: Vec::new(),
            });
        }
        self.close_before(second.saturating_sub(LAG));
        &mut self.slots[second as usize]
    }

    fn close_before(&mut self, second: u64) {
        while (self.closed as u64) < second && self.closed < self.slots.len() {
            let slot = &mut self.slots[self.closed];
            if let Some(h) = slot.hist.take() {
                fill(&mut slot.row, &h);
                slot.encoded = crate::bundle::hdr::compress(&h);
            }
            self.closed += 1;
        }
    }

    /// Records a completed request.
    pub(crate) fn record(&mut self, second: u64, latency_us: u64, failed: bool) {
        let slot = self.slot(second);
        slot.row.requests += 1;
        if failed {
            slot.row.errors += 1;
        }
        if let Some(h) = slot.hist.as_mut() {
            super::record_us(h, latency_us.max(1));
        }
    }

    /// True before anything was recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Records a dropped arrival.
    pub(crate) fn drop_arrival(&mut self, second: u64) {
        self.slot(second).row.dropped += 1;
    }

    /// The last second that is complete, for a live progress line.
    pub(crate) fn latest_complete(&self, now_second: u64) -> Option<TimelineRow> {
        let index = now_second.checked_sub(1)? as usize;
        let slot = self.slots.get(index)?;
        let mut row = slot.row.clone();
        if let Some(h) = &slot.hist {
            fill(&mut row, h);
        }
        Some(row)
    }

    /// Every row, up to `until_second` (exclusive).
    pub(crate) fn rows(&self, until_second: u64) -> Vec<TimelineRow> {
        (0..until_second.max(self.slots.len() as u64))
            .map(|s| match self.slots.get(s as usize) {
                Some(slot) => {
                    let mut row = slot.row.clone();
                    if let Some(h) = &slot.hist {
                        fill(&mut row, h);
                    }
                    row
                }
                None => TimelineRow {
                    second: s,
                    ..Default::default()
                },
            })
            .collect()
    }
}

impl Timeline {
    /// Every second's histogram that had requests, compressed, up to
    /// `until_second` (exclusive).
    pub(crate) fn histograms(&self, until_second: u64) -> Vec<(u64, Vec<u8>)> {
        self.slots
            .iter()
            .take(until_second.max(self.slots.len() as u64) as usize)
            .filter(|slot| slot.row.requests > 0)
            .map(|slot| {
                let bytes = match &slot.hist {
                    Some(h) => crate::bundle::hdr::compress(h),
                    None => slot.encoded.clone(),
                };
                (slot.row.second, bytes)
            })
            .collect()
    }
}

/// A row's percentiles from its second's histogram.
pub(crate) fn fill(row: &mut TimelineRow, h: &Histogram<u64>) {
    if h.is_empty() {
        return;
    }
    let ms = |q| h.value_at_quantile(q) as f64 / 1000.0;
    row.p50_ms = ms(0.50);
    row.p95_ms = ms(0.95);
    row.p99_ms = ms(0.99);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_old_seconds_and_keeps_their_percentiles() {
        let mut t = Timeline::default();
        for i in 1..=100 {
            t.record(0, i * 1000, i > 95);
        }
        t.record(10, 5000, false);
        t.drop_arrival(10);
        assert!(t.slots[0].hist.is_none(), "second 0 should be closed");
        let rows = t.rows(12);
        assert_eq!(rows.len(), 12);
        assert_eq!((rows[0].requests, rows[0].errors), (100, 5));
        assert!((rows[0].p50_ms - 50.0).abs() < 1.0, "{}", rows[0].p50_ms);
        assert!((rows[0].p99_ms - 99.0).abs() < 1.5, "{}", rows[0].p99_ms);
        assert_eq!((rows[10].requests, rows[10].dropped), (1, 1));
        assert_eq!(rows[11].requests, 0);
        // Closed or open, every second's histogram is kept for the bundle.
        let kept = t.histograms(12);
        assert_eq!(kept.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [0, 10]);
        let second_0 = crate::bundle::hdr::decompress(&kept[0].1).unwrap();
        assert_eq!(second_0.len(), 100);
    }
}
