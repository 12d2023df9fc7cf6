//! Volume-weighted average price anchored to the UTC calendar day, as pandas-ta `vwap(anchor="D")`:
//! `Σ(tp·v)/Σv` with the typical price `tp = (h + l + c)/3`, both sums restarting on the first bar whose
//! **open** time falls on a new UTC day. `None` while the day's volume is zero (pandas gives NaN).

use super::Indicator;
use crate::domain::{Bar, TimestampMs};

const MILLISECONDS_PER_DAY: TimestampMs = 86_400_000;

/// Day-anchored VWAP.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Vwap {
    /// Days since the epoch of the bars in the sums.
    day: Option<i64>,
    price_volume: f64,
    volume: f64,
}

impl Vwap {
    pub const fn new() -> Self {
        Self {
            day: None,
            price_volume: 0.0,
            volume: 0.0,
        }
    }
}

impl Indicator for Vwap {
    type Input = Bar;
    type Output = f64;

    fn update(&mut self, bar: Bar) -> Option<f64> {
        let day = bar.open_time.div_euclid(MILLISECONDS_PER_DAY);
        if self.day != Some(day) {
            self.day = Some(day);
            self.price_volume = 0.0;
            self.volume = 0.0;
        }
        let typical_price = (bar.high + bar.low + bar.close) / 3.0;
        self.price_volume += typical_price * bar.volume;
        self.volume += bar.volume;
        (self.volume != 0.0).then(|| self.price_volume / self.volume)
    }
}

#[cfg(test)]
mod tests {
    use super::{MILLISECONDS_PER_DAY, Vwap};
    use crate::{domain::Bar, features::Indicator};

    fn bar(open_time: i64, price: f64, volume: f64) -> Bar {
        Bar {
            open_time,
            close_time: open_time + 899_999,
            open: price,
            high: price,
            low: price,
            close: price,
            volume,
            quote_volume: price * volume,
            trades: 1,
            closed: true,
        }
    }

    #[test]
    fn weights_by_volume_and_resets_at_midnight_utc() {
        let mut vwap = Vwap::new();
        let late = MILLISECONDS_PER_DAY - 900_000;
        assert_eq!(vwap.update(bar(late - 900_000, 10.0, 1.0)), Some(10.0));
        assert_eq!(vwap.update(bar(late, 20.0, 3.0)), Some(17.5));
        assert_eq!(vwap.update(bar(MILLISECONDS_PER_DAY, 30.0, 2.0)), Some(30.0));
    }

    #[test]
    fn zero_volume_day_has_no_value() {
        let mut vwap = Vwap::new();
        assert_eq!(vwap.update(bar(0, 10.0, 0.0)), None);
        assert_eq!(vwap.update(bar(900_000, 12.0, 1.0)), Some(12.0));
    }
}
