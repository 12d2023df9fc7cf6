//! A ring buffer of bars for one (symbol, timeframe): closed bars in open-time order plus the bar
//! still forming.
//!
//! Stream updates, REST back-fills and post-reconnect gap fills all land here, in any order and with
//! duplicates. The series makes them commute: whatever the arrival order, the closed bars end up
//! sorted, unique by open time and equal to the venue's. That property is what "no bar lost and none
//! duplicated across a reconnect" rests on, and it is tested against a batch reference with proptest.

use std::collections::VecDeque;

use crate::domain::{Bar, Interval, TimestampMs};

/// What [`BarSeries::apply`] did with a bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The forming bar was updated.
    Forming,
    /// A new closed bar was appended at the end.
    Closed,
    /// A closed bar was inserted before the end (gap fill from a back-fill).
    Inserted,
    /// A closed bar we already had was replaced by the venue's copy.
    Duplicate,
    /// An update older than what we hold (e.g. a forming update for a bar already closed); ignored.
    Stale,
}

#[derive(Debug, Clone)]
pub struct BarSeries {
    interval: Interval,
    capacity: usize,
    closed: VecDeque<Bar>,
    forming: Option<Bar>,
}

impl BarSeries {
    pub fn new(interval: Interval, capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            interval,
            capacity,
            closed: VecDeque::with_capacity(capacity),
            forming: None,
        }
    }

    pub fn interval(&self) -> Interval {
        self.interval
    }

    /// Applies one bar from a stream or a back-fill.
    pub fn apply(&mut self, bar: Bar) -> Applied {
        if bar.closed {
            self.apply_closed(bar)
        } else {
            self.apply_forming(bar)
        }
    }

    fn apply_forming(&mut self, bar: Bar) -> Applied {
        if self
            .closed
            .back()
            .is_some_and(|last| last.open_time >= bar.open_time)
        {
            return Applied::Stale;
        }
        if self.forming.is_some_and(|f| f.open_time > bar.open_time) {
            return Applied::Stale;
        }
        self.forming = Some(bar);
        Applied::Forming
    }

    fn apply_closed(&mut self, bar: Bar) -> Applied {
        if self.forming.is_some_and(|f| f.open_time <= bar.open_time) {
            self.forming = None;
        }
        match self.closed.back() {
            None => {
                self.closed.push_back(bar);
                Applied::Closed
            }
            Some(last) if bar.open_time > last.open_time => {
                if self.closed.len() == self.capacity {
                    self.closed.pop_front();
                }
                self.closed.push_back(bar);
                Applied::Closed
            }
            Some(_) => match self.closed.binary_search_by_key(&bar.open_time, |b| b.open_time) {
                Ok(i) => {
                    self.closed[i] = bar;
                    Applied::Duplicate
                }
                Err(0) if self.closed.len() == self.capacity => Applied::Stale,
                Err(i) => {
                    if self.closed.len() == self.capacity {
                        self.closed.pop_front();
                        self.closed.insert(i - 1, bar);
                    } else {
                        self.closed.insert(i, bar);
                    }
                    Applied::Inserted
                }
            },
        }
    }

    /// Applies a batch of bars (a REST page). Returns how many closed bars were new.
    pub fn merge(&mut self, bars: &[Bar]) -> usize {
        bars.iter()
            .filter(|b| matches!(self.apply(**b), Applied::Closed | Applied::Inserted) && b.closed)
            .count()
    }

    pub fn closed(&self) -> &VecDeque<Bar> {
        &self.closed
    }

    pub fn forming(&self) -> Option<&Bar> {
        self.forming.as_ref()
    }

    pub fn last_closed(&self) -> Option<&Bar> {
        self.closed.back()
    }

    /// The most recent bar: the forming one if any, else the last closed.
    pub fn latest(&self) -> Option<&Bar> {
        self.forming.as_ref().or(self.closed.back())
    }

    /// Open times missing between the first and last closed bar (should be empty).
    pub fn gaps(&self) -> Vec<TimestampMs> {
        let mut out = Vec::new();
        for pair in self.closed.iter().zip(self.closed.iter().skip(1)) {
            let mut t = self.interval.next_open(pair.0.open_time);
            while t < pair.1.open_time {
                out.push(t);
                t = self.interval.next_open(t);
            }
        }
        out
    }

    /// The open time of the closed bar just before the oldest hole, if the series has one: where a
    /// REST gap fill must start to heal it.
    pub fn first_gap_after(&self) -> Option<TimestampMs> {
        self.closed
            .iter()
            .zip(self.closed.iter().skip(1))
            .find(|(a, b)| self.interval.next_open(a.open_time) < b.open_time)
            .map(|(a, _)| a.open_time)
    }

    /// Number of open times missing between the first and last closed bar, without allocating.
    pub fn gap_count(&self) -> usize {
        self.closed
            .iter()
            .zip(self.closed.iter().skip(1))
            .map(|(a, b)| {
                let mut n = 0;
                let mut t = self.interval.next_open(a.open_time);
                while t < b.open_time {
                    n += 1;
                    t = self.interval.next_open(t);
                }
                n
            })
            .sum()
    }

    /// The last `n` bars for a chart, oldest first, the forming bar last.
    pub fn tail(&self, n: usize) -> impl Iterator<Item = &Bar> {
        let forming = usize::from(self.forming.is_some());
        let take_closed = n.saturating_sub(forming).min(self.closed.len());
        self.closed
            .iter()
            .skip(self.closed.len() - take_closed)
            .chain(self.forming.iter())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn bar(i: i64, closed: bool, close: f64) -> Bar {
        Bar {
            open_time: i * 60_000,
            close_time: i * 60_000 + 59_999,
            open: 1.0,
            high: close.max(1.0),
            low: close.min(1.0),
            close,
            volume: 1.0,
            quote_volume: 1.0,
            trades: 1,
            closed,
        }
    }

    #[test]
    fn forming_then_closed_then_next() {
        let mut s = BarSeries::new(Interval::M1, 10);
        assert_eq!(s.apply(bar(0, false, 1.1)), Applied::Forming);
        assert_eq!(s.apply(bar(0, true, 1.2)), Applied::Closed);
        assert!(s.forming().is_none());
        assert_eq!(
            s.apply(bar(0, false, 1.3)),
            Applied::Stale,
            "late forming update of a closed bar"
        );
        assert_eq!(s.apply(bar(1, false, 1.0)), Applied::Forming);
        assert_eq!(s.apply(bar(0, true, 1.2)), Applied::Duplicate);
        assert_eq!(s.latest().map(|b| b.open_time), Some(60_000));
    }

    #[test]
    fn gap_fill_inserts_in_order_and_capacity_holds() {
        let mut s = BarSeries::new(Interval::M1, 3);
        s.apply(bar(0, true, 1.0));
        s.apply(bar(3, true, 1.0));
        assert_eq!(s.gaps(), vec![60_000, 120_000]);
        assert_eq!(s.apply(bar(1, true, 1.0)), Applied::Inserted);
        assert_eq!(s.apply(bar(2, true, 1.0)), Applied::Inserted);
        assert_eq!(s.closed().len(), 3);
        assert!(s.gaps().is_empty());
        let opens: Vec<_> = s.closed().iter().map(|b| b.open_time / 60_000).collect();
        assert_eq!(opens, vec![1, 2, 3]);
        assert_eq!(
            s.apply(bar(0, true, 1.0)),
            Applied::Stale,
            "older than the window"
        );
    }

    #[test]
    fn tail_ends_with_the_forming_bar() {
        let mut s = BarSeries::new(Interval::M1, 10);
        for i in 0..5 {
            s.apply(bar(i, true, 1.0));
        }
        s.apply(bar(5, false, 1.0));
        let t: Vec<_> = s.tail(3).map(|b| (b.open_time / 60_000, b.closed)).collect();
        assert_eq!(t, vec![(3, true), (4, true), (5, false)]);
    }

    proptest! {
        /// Incremental == batch: any interleaving of forming updates, closes, duplicates and
        /// back-fill pages ends with exactly the venue's closed bars (the last `capacity`).
        #[test]
        fn any_delivery_order_gives_the_batch_result(
            n in 1usize..80,
            capacity in 1usize..40,
            seed in any::<u64>(),
            dropped in proptest::collection::vec(any::<bool>(), 80),
        ) {
            let truth: Vec<Bar> = (0..n as i64).map(|i| bar(i, true, 1.0 + (i as f64) / 100.0)).collect();
            // Deliver through the "stream": forming updates then the close, some closes dropped
            // (a disconnect), some duplicated; then a back-fill page of everything, shuffled.
            let mut s = BarSeries::new(Interval::M1, capacity);
            let mut rng = seed;
            for (i, b) in truth.iter().enumerate() {
                s.apply(Bar { closed: false, ..*b });
                if !dropped[i] {
                    s.apply(*b);
                    rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    if rng >> 62 == 0 {
                        s.apply(*b);
                    }
                }
            }
            let mut page = truth.clone();
            for i in (1..page.len()).rev() {
                rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                page.swap(i, (rng >> 33) as usize % (i + 1));
            }
            s.merge(&page);
            let want: Vec<_> = truth.iter().skip(n.saturating_sub(capacity)).copied().collect();
            let got: Vec<_> = s.closed().iter().copied().collect();
            prop_assert_eq!(got, want);
            prop_assert!(s.gaps().is_empty());
        }
    }
}
