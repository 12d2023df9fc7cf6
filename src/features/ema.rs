//! Exponential moving average with the two seedings found in the wild, because they disagree for a long
//! time: EMA200 seeded with the first close still differs from the TA-Lib one by 1e-7 relative after 1 000
//! bars (SPEC.md §4.5), so a feature computed one way must never be compared with the other.
//!
//! * [`EmaSeeding::SmaOfFirstPeriod`] (TA-Lib `EMA`): no value for the first `n − 1` closes, the SMA of
//!   the first `n` closes at index `n − 1`, then `e = (x − e)·k + e` with `k = 2/(n + 1)`.
//! * [`EmaSeeding::FirstValue`] (pandas `ewm(span=n, adjust=False)`): `e = x₀` at index 0, then
//!   `e = ((1 − α)·e + α·x) / ((1 − α) + α)`, written exactly as pandas does it (including its
//!   normalisation and its skip when `x == e`) so the golden `ema*_seedfirst` columns match bit for bit.

use super::{FeatureError, Indicator, check_period};

/// How the first value of an [`Ema`] is formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EmaSeeding {
    /// TA-Lib: the SMA of the first `period` inputs, placed on input `period − 1`.
    #[default]
    SmaOfFirstPeriod,
    /// pandas `ewm(adjust=False)`: the first input itself, so there is no warm-up.
    FirstValue,
}

/// Exponential moving average of `f64` inputs (closes, or a derived line such as MACD's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ema {
    period: u32,
    seeding: EmaSeeding,
    /// Smoothing factor, 2/(period + 1).
    alpha: f64,
    /// Inputs seen, saturating at `period`.
    seen: u32,
    /// The running sum of inputs while an SMA seed is being formed, the average afterwards.
    value: f64,
}

impl Ema {
    pub const fn new(period: u32, seeding: EmaSeeding) -> Result<Self, FeatureError> {
        if let Err(error) = check_period(period, 1) {
            return Err(error);
        }
        Ok(Self {
            period,
            seeding,
            alpha: 2.0 / (period as f64 + 1.0),
            seen: 0,
            value: 0.0,
        })
    }

    pub const fn period(&self) -> u32 {
        self.period
    }

    pub const fn seeding(&self) -> EmaSeeding {
        self.seeding
    }

    /// The current average, `None` during warm-up.
    pub fn value(&self) -> Option<f64> {
        let ready = match self.seeding {
            EmaSeeding::SmaOfFirstPeriod => self.seen == self.period,
            EmaSeeding::FirstValue => self.seen > 0,
        };
        ready.then_some(self.value)
    }
}

impl Indicator for Ema {
    type Input = f64;
    type Output = f64;

    fn update(&mut self, input: f64) -> Option<f64> {
        match self.seeding {
            EmaSeeding::SmaOfFirstPeriod => {
                if self.seen < self.period {
                    self.value += input;
                    self.seen += 1;
                    if self.seen < self.period {
                        return None;
                    }
                    self.value /= f64::from(self.period);
                } else {
                    self.value = (input - self.value) * self.alpha + self.value;
                }
            }
            EmaSeeding::FirstValue => {
                if self.seen == 0 {
                    self.value = input;
                    self.seen = 1;
                } else if self.value != input {
                    let old_weight = 1.0 - self.alpha;
                    self.value = (old_weight * self.value + self.alpha * input) / (old_weight + self.alpha);
                }
            }
        }
        Some(self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::{Ema, EmaSeeding};
    use crate::features::{FeatureError, Indicator};

    #[test]
    fn sma_seeded_ema_starts_at_period_minus_one_with_the_mean() {
        let mut ema = Ema::new(3, EmaSeeding::SmaOfFirstPeriod).expect("valid parameters");
        assert_eq!(ema.update(1.0), None);
        assert_eq!(ema.update(2.0), None);
        assert_eq!(ema.update(6.0), Some(3.0));
        // k = 0.5: (5 − 3)·0.5 + 3
        assert_eq!(ema.update(5.0), Some(4.0));
        assert_eq!(ema.value(), Some(4.0));
    }

    #[test]
    fn first_value_ema_starts_at_the_first_input() {
        let mut ema = Ema::new(3, EmaSeeding::FirstValue).expect("valid parameters");
        assert_eq!(ema.update(10.0), Some(10.0));
        assert_eq!(ema.update(20.0), Some(15.0));
    }

    #[test]
    fn zero_period_is_rejected() {
        assert_eq!(
            Ema::new(0, EmaSeeding::FirstValue),
            Err(FeatureError::PeriodTooShort {
                period: 0,
                minimum: 1
            })
        );
    }
}
