//! True range and Wilder's average true range, as TA-Lib computes them (`TRANGE`, `ATR`).
//!
//! `TR[i] = max(h[i], c[i−1]) − min(l[i], c[i−1])`, undefined on the first bar (no previous close), taken as
//! the largest of `h − l`, `|h − c₋₁|`, `|l − c₋₁|` like TA-Lib's `TRUE_RANGE` macro (each case is one
//! subtraction of the same operands, so both readings give the same bits). ATR is first valid on bar
//! `period`: the mean of `TR[1..=period]`, then `ATR = (ATR·(period − 1) + TR) / period`.

use super::{FeatureError, Indicator, check_period};
use crate::domain::Bar;

/// The true range of a bar against the previous close.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TrueRange {
    previous_close: Option<f64>,
}

impl TrueRange {
    pub const fn new() -> Self {
        Self { previous_close: None }
    }
}

/// TA-Lib's `TRUE_RANGE(high, low, previous_close)`.
pub(crate) fn true_range(high: f64, low: f64, previous_close: f64) -> f64 {
    let mut range = high - low;
    let above = (high - previous_close).abs();
    if above > range {
        range = above;
    }
    let below = (low - previous_close).abs();
    if below > range {
        range = below;
    }
    range
}

impl Indicator for TrueRange {
    type Input = Bar;
    type Output = f64;

    fn update(&mut self, bar: Bar) -> Option<f64> {
        let range = self
            .previous_close
            .map(|previous| true_range(bar.high, bar.low, previous));
        self.previous_close = Some(bar.close);
        range
    }
}

/// Wilder's average true range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Atr {
    period: u32,
    true_range: TrueRange,
    last_true_range: Option<f64>,
    /// True ranges seen, saturating at `period`.
    ranges_seen: u32,
    /// Sum of the true ranges during warm-up, the average afterwards.
    value: f64,
}

impl Atr {
    pub const fn new(period: u32) -> Result<Self, FeatureError> {
        if let Err(error) = check_period(period, 1) {
            return Err(error);
        }
        Ok(Self {
            period,
            true_range: TrueRange::new(),
            last_true_range: None,
            ranges_seen: 0,
            value: 0.0,
        })
    }

    pub const fn period(&self) -> u32 {
        self.period
    }

    /// The true range of the last bar committed (`None` after the first bar).
    pub const fn last_true_range(&self) -> Option<f64> {
        self.last_true_range
    }
}

impl Indicator for Atr {
    type Input = Bar;
    type Output = f64;

    fn update(&mut self, bar: Bar) -> Option<f64> {
        let range = self.true_range.update(bar);
        self.last_true_range = range;
        let range = range?;
        let period = f64::from(self.period);
        if self.ranges_seen < self.period {
            self.value += range;
            self.ranges_seen += 1;
            if self.ranges_seen < self.period {
                return None;
            }
            self.value /= period;
        } else {
            self.value *= period - 1.0;
            self.value += range;
            self.value /= period;
        }
        Some(self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::{Atr, TrueRange};
    use crate::{domain::Bar, features::Indicator};

    fn bar(high: f64, low: f64, close: f64) -> Bar {
        Bar {
            open_time: 0,
            close_time: 0,
            open: close,
            high,
            low,
            close,
            volume: 1.0,
            quote_volume: close,
            trades: 1,
            closed: true,
        }
    }

    #[test]
    fn true_range_covers_gaps_both_ways() {
        let mut tr = TrueRange::new();
        assert_eq!(tr.update(bar(10.0, 9.0, 9.5)), None);
        assert_eq!(tr.update(bar(12.0, 11.0, 11.5)), Some(2.5)); // gap up: 12 − 9.5
        assert_eq!(tr.update(bar(9.0, 8.0, 8.5)), Some(3.5)); // gap down: 11.5 − 8
        assert_eq!(tr.update(bar(9.0, 7.0, 8.0)), Some(2.0)); // inside: h − l
    }

    #[test]
    fn atr_seeds_with_the_mean_then_smooths() {
        let mut atr = Atr::new(2).expect("valid parameters");
        assert_eq!(atr.update(bar(10.0, 9.0, 9.5)), None);
        assert_eq!(atr.update(bar(10.0, 9.0, 9.5)), None); // TR 1
        assert_eq!(atr.update(bar(11.0, 9.0, 10.0)), Some(1.5)); // TR 2, mean(1, 2)
        assert_eq!(atr.update(bar(10.5, 10.0, 10.0)), Some(1.0)); // TR 0.5: (1.5 + 0.5) / 2
        assert_eq!(atr.last_true_range(), Some(0.5));
    }
}
