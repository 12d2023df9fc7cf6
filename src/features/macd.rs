//! MACD(fast, slow, signal) in the two forms the golden files carry, because they differ by up to 4e-4
//! relative for the first ~150 bars (SPEC.md §4.5):
//!
//! * [`MacdSeeding::TaLib`] (TA-Lib `MACD`): both EMAs start on close `slow − 1`. The slow EMA is seeded
//!   with the SMA of the first `slow` closes, the fast one with the SMA of the `fast` closes ending there
//!   (closes 14..=25 for 12/26), **not** the standalone EMA(fast). The signal is an SMA-seeded EMA of the
//!   line, and nothing (not even the line) is reported before the signal exists (close 33 for 12/26/9).
//! * [`MacdSeeding::Natural`]: line = standalone EMA(fast) − EMA(slow), both SMA-seeded, reported from
//!   close `slow − 1`; the signal (SMA-seeded EMA of the line) follows `signal − 1` closes later.
//!
//! Both are one implementation: the TA-Lib form simply withholds the first `slow − fast` closes from the
//! fast EMA, which is exactly how TA-Lib's lookback arithmetic seeds it.

use super::{
    FeatureError, Indicator,
    ema::{Ema, EmaSeeding},
};

/// Which MACD convention to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MacdSeeding {
    /// TA-Lib `MACD`: the fast EMA is seeded on the slow EMA's first bar.
    #[default]
    TaLib,
    /// The line is the difference of the standalone EMAs.
    Natural,
}

/// MACD line, its signal and histogram. `signal` and `histogram` are `None` while the signal warms up
/// (only possible with [`MacdSeeding::Natural`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MacdValue {
    pub line: f64,
    pub signal: Option<f64>,
    pub histogram: Option<f64>,
}

/// Moving average convergence/divergence of `f64` closes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Macd {
    seeding: MacdSeeding,
    fast: Ema,
    slow: Ema,
    signal: Ema,
    /// Closes still to be withheld from the fast EMA (TA-Lib form).
    fast_closes_to_skip: u32,
}

impl Macd {
    pub const fn new(fast: u32, slow: u32, signal: u32, seeding: MacdSeeding) -> Result<Self, FeatureError> {
        if fast >= slow {
            return Err(FeatureError::MacdPeriodsOutOfOrder { fast, slow });
        }
        let fast_ema = match Ema::new(fast, EmaSeeding::SmaOfFirstPeriod) {
            Ok(ema) => ema,
            Err(error) => return Err(error),
        };
        let signal_ema = match Ema::new(signal, EmaSeeding::SmaOfFirstPeriod) {
            Ok(ema) => ema,
            Err(error) => return Err(error),
        };
        let slow_ema = match Ema::new(slow, EmaSeeding::SmaOfFirstPeriod) {
            Ok(ema) => ema,
            Err(error) => return Err(error),
        };
        let fast_closes_to_skip = match seeding {
            MacdSeeding::TaLib => slow - fast,
            MacdSeeding::Natural => 0,
        };
        Ok(Self {
            seeding,
            fast: fast_ema,
            slow: slow_ema,
            signal: signal_ema,
            fast_closes_to_skip,
        })
    }

    pub const fn seeding(&self) -> MacdSeeding {
        self.seeding
    }
}

impl Indicator for Macd {
    type Input = f64;
    type Output = MacdValue;

    fn update(&mut self, close: f64) -> Option<MacdValue> {
        let fast = if self.fast_closes_to_skip > 0 {
            self.fast_closes_to_skip -= 1;
            None
        } else {
            self.fast.update(close)
        };
        let slow = self.slow.update(close);
        let line = fast? - slow?;
        let signal = self.signal.update(line);
        if signal.is_none() && self.seeding == MacdSeeding::TaLib {
            return None;
        }
        Some(MacdValue {
            line,
            signal,
            histogram: signal.map(|signal| line - signal),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Macd, MacdSeeding};
    use crate::features::{FeatureError, Indicator};

    #[test]
    fn first_values_follow_the_lookbacks() {
        let closes: Vec<f64> = (0..40)
            .map(|i| 100.0 + f64::from(i % 7) - f64::from(i % 3))
            .collect();
        let mut ta_lib = Macd::new(12, 26, 9, MacdSeeding::TaLib).expect("valid parameters");
        let mut natural = Macd::new(12, 26, 9, MacdSeeding::Natural).expect("valid parameters");
        let ta_lib: Vec<_> = closes.iter().map(|&close| ta_lib.update(close)).collect();
        let natural: Vec<_> = closes.iter().map(|&close| natural.update(close)).collect();
        assert_eq!(ta_lib.iter().position(Option::is_some), Some(33));
        assert_eq!(natural.iter().position(Option::is_some), Some(25));
        assert_eq!(
            natural
                .iter()
                .position(|value| value.is_some_and(|v| v.signal.is_some())),
            Some(33)
        );
        assert!(ta_lib[33].is_some_and(|v| v.histogram.is_some()));
    }

    #[test]
    fn fast_must_be_shorter_than_slow() {
        assert_eq!(
            Macd::new(26, 12, 9, MacdSeeding::TaLib),
            Err(FeatureError::MacdPeriodsOutOfOrder { fast: 26, slow: 12 })
        );
    }
}
