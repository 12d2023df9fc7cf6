//! Wilder's relative strength index, as TA-Lib `RSI` computes it: first valid on close `period`, with the
//! average gain and loss seeded by the plain mean of the first `period` changes, then smoothed as
//! `avg = (avg·(period − 1) + x) / period`. RSI = 100·G/(G + L), and 0 when G + L is zero by TA-Lib's
//! epsilon (a perfectly flat window), where pandas-ta would give NaN.

use super::{FeatureError, Indicator, check_period, ta_lib_is_zero};

/// Wilder's RSI of `f64` closes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rsi {
    period: u32,
    previous_close: Option<f64>,
    /// Close-to-close changes seen, saturating at `period`.
    changes_seen: u32,
    average_gain: f64,
    average_loss: f64,
}

impl Rsi {
    pub const fn new(period: u32) -> Result<Self, FeatureError> {
        if let Err(error) = check_period(period, 1) {
            return Err(error);
        }
        Ok(Self {
            period,
            previous_close: None,
            changes_seen: 0,
            average_gain: 0.0,
            average_loss: 0.0,
        })
    }

    pub const fn period(&self) -> u32 {
        self.period
    }

    fn value(&self) -> f64 {
        let total = self.average_gain + self.average_loss;
        if ta_lib_is_zero(total) {
            0.0
        } else {
            100.0 * (self.average_gain / total)
        }
    }
}

impl Indicator for Rsi {
    type Input = f64;
    type Output = f64;

    fn update(&mut self, close: f64) -> Option<f64> {
        let previous = self.previous_close.replace(close)?;
        let change = close - previous;
        let period = f64::from(self.period);
        if self.changes_seen < self.period {
            if change < 0.0 {
                self.average_loss -= change;
            } else {
                self.average_gain += change;
            }
            self.changes_seen += 1;
            if self.changes_seen < self.period {
                return None;
            }
            self.average_loss /= period;
            self.average_gain /= period;
        } else {
            self.average_loss *= period - 1.0;
            self.average_gain *= period - 1.0;
            if change < 0.0 {
                self.average_loss -= change;
            } else {
                self.average_gain += change;
            }
            self.average_loss /= period;
            self.average_gain /= period;
        }
        Some(self.value())
    }
}

#[cfg(test)]
mod tests {
    use super::Rsi;
    use crate::features::Indicator;

    #[test]
    fn first_value_after_period_changes() {
        let mut rsi = Rsi::new(2).expect("valid parameters");
        assert_eq!(rsi.update(10.0), None);
        assert_eq!(rsi.update(12.0), None); // gain 2
        assert_eq!(rsi.update(11.0), Some(100.0 * (1.0 / 1.5))); // loss 1: G = 1, L = 0.5
        // gain 1: G = (1 + 1)/2 = 1, L = 0.25
        assert_eq!(rsi.update(12.0), Some(80.0));
    }

    #[test]
    fn flat_series_gives_zero_like_ta_lib() {
        let mut rsi = Rsi::new(3).expect("valid parameters");
        let values: Vec<_> = [5.0; 6].into_iter().map(|close| rsi.update(close)).collect();
        assert_eq!(values, vec![None, None, None, Some(0.0), Some(0.0), Some(0.0)]);
    }
}
