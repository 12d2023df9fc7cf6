//! On-balance volume as TA-Lib `OBV`: the first bar's volume, then ± each bar's volume by the sign of the
//! close change (unchanged on an equal close). The `ta` package starts from 0 instead, a constant offset
//! forever (SPEC.md §4.5), so OBV levels are only comparable between sources that agree on the start.

use super::Indicator;
use crate::domain::Bar;

/// Running on-balance volume.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Obv {
    previous_close: Option<f64>,
    value: f64,
}

impl Obv {
    pub const fn new() -> Self {
        Self {
            previous_close: None,
            value: 0.0,
        }
    }
}

impl Indicator for Obv {
    type Input = Bar;
    type Output = f64;

    fn update(&mut self, bar: Bar) -> Option<f64> {
        match self.previous_close {
            None => self.value = bar.volume,
            Some(previous) if bar.close > previous => self.value += bar.volume,
            Some(previous) if bar.close < previous => self.value -= bar.volume,
            Some(_) => {}
        }
        self.previous_close = Some(bar.close);
        Some(self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::Obv;
    use crate::{domain::Bar, features::Indicator};

    fn bar(close: f64, volume: f64) -> Bar {
        Bar {
            open_time: 0,
            close_time: 0,
            open: close,
            high: close,
            low: close,
            close,
            volume,
            quote_volume: close * volume,
            trades: 1,
            closed: true,
        }
    }

    #[test]
    fn starts_at_the_first_volume_and_follows_the_close() {
        let mut obv = Obv::new();
        let values: Vec<_> = [(10.0, 5.0), (11.0, 2.0), (11.0, 7.0), (9.0, 4.0)]
            .map(|(c, v)| obv.update(bar(c, v)))
            .to_vec();
        assert_eq!(values, vec![Some(5.0), Some(7.0), Some(7.0), Some(3.0)]);
    }
}
