//! Wilder's directional movement system (+DI, −DI, DX, ADX), step for step as TA-Lib's `PLUS_DI`,
//! `MINUS_DI`, `DX` and `ADX`.
//!
//! * `up = h[i] − h[i−1]`, `down = l[i−1] − l[i]`; −DM = down if `down > 0 and up < down`, else +DM = up if
//!   `up > 0 and up > down` (equal moves give neither).
//! * Bars 1..=period−1 are summed (period − 1 terms); from bar `period` on, `S = S − S/period + x` for +DM,
//!   −DM and TR, and DI = `100·S_dm/S_tr` (0 when `S_tr` is zero by TA-Lib's epsilon). First DI/DX on bar
//!   `period`.
//! * DX = 100·|−DI − +DI| / (−DI + +DI). When that sum (or `S_tr`) is zero TA-Lib writes 0 on the first DX
//!   and repeats the previous DX afterwards, and ADX skips that bar (TA-Lib's `ta_DX.c` / `ta_ADX.c`);
//!   we do the same. SPEC.md §0.3 says "0 if the sum is 0", which is only the first-bar case; none of the
//!   three golden files has a zero DI sum on any row, so the goldens cannot tell the two readings apart
//!   and the unit test `flat_market_gives_zero_dx_then_repeats_it` pins ours.
//! * ADX on bar `2·period − 1`: the mean of the DX of bars `period..=2·period − 1`, then
//!   `ADX = (ADX·(period − 1) + DX) / period`.

use std::cmp::Ordering;

use super::{FeatureError, Indicator, atr::true_range, check_period, ta_lib_is_zero};
use crate::domain::Bar;

/// Directional indicators of one bar. `adx` is `None` until `2·period − 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DmiValue {
    pub plus_di: f64,
    pub minus_di: f64,
    pub dx: f64,
    pub adx: Option<f64>,
}

/// +DI, −DI, DX and ADX over `period` bars.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dmi {
    period: u32,
    /// Bars committed, saturating at `2·period`.
    bars_seen: u32,
    previous: Option<(f64, f64, f64)>,
    plus_dm: f64,
    minus_dm: f64,
    true_range: f64,
    last_dx: f64,
    /// Sum of the DX values during ADX warm-up, the ADX afterwards.
    adx: f64,
}

impl Dmi {
    /// `period` ≥ 2, as in TA-Lib (period 1 is a different formula there).
    pub const fn new(period: u32) -> Result<Self, FeatureError> {
        if let Err(error) = check_period(period, 2) {
            return Err(error);
        }
        Ok(Self {
            period,
            bars_seen: 0,
            previous: None,
            plus_dm: 0.0,
            minus_dm: 0.0,
            true_range: 0.0,
            last_dx: 0.0,
            adx: 0.0,
        })
    }

    pub const fn period(&self) -> u32 {
        self.period
    }
}

impl Indicator for Dmi {
    type Input = Bar;
    type Output = DmiValue;

    fn update(&mut self, bar: Bar) -> Option<DmiValue> {
        // Index of this bar in the series (saturated past the last warm-up threshold).
        let index = self.bars_seen;
        self.bars_seen = (self.bars_seen + 1).min(2 * self.period);
        let (previous_high, previous_low, previous_close) =
            self.previous.replace((bar.high, bar.low, bar.close))?;
        let up = bar.high - previous_high;
        let down = previous_low - bar.low;
        let (plus_move, minus_move) = if down > 0.0 && up < down {
            (0.0, down)
        } else if up > 0.0 && up > down {
            (up, 0.0)
        } else {
            (0.0, 0.0)
        };
        let range = true_range(bar.high, bar.low, previous_close);
        let period = f64::from(self.period);
        if index < self.period {
            self.plus_dm += plus_move;
            self.minus_dm += minus_move;
            self.true_range += range;
            return None;
        }
        self.minus_dm -= self.minus_dm / period;
        self.plus_dm -= self.plus_dm / period;
        self.minus_dm += minus_move;
        self.plus_dm += plus_move;
        self.true_range = self.true_range - (self.true_range / period) + range;

        let (plus_di, minus_di, dx) = if ta_lib_is_zero(self.true_range) {
            (0.0, 0.0, None)
        } else {
            let minus_di = 100.0 * (self.minus_dm / self.true_range);
            let plus_di = 100.0 * (self.plus_dm / self.true_range);
            let sum = minus_di + plus_di;
            let dx = (!ta_lib_is_zero(sum)).then(|| 100.0 * ((minus_di - plus_di).abs() / sum));
            (plus_di, minus_di, dx)
        };
        let first_adx_index = 2 * self.period - 1;
        let adx = match index.cmp(&first_adx_index) {
            Ordering::Less => {
                self.adx += dx.unwrap_or(0.0);
                None
            }
            Ordering::Equal => {
                self.adx += dx.unwrap_or(0.0);
                self.adx /= period;
                Some(self.adx)
            }
            Ordering::Greater => {
                if let Some(dx) = dx {
                    self.adx = (self.adx * (period - 1.0) + dx) / period;
                }
                Some(self.adx)
            }
        };
        let dx = match dx {
            Some(dx) => dx,
            None if index == self.period => 0.0,
            None => self.last_dx,
        };
        self.last_dx = dx;
        Some(DmiValue {
            plus_di,
            minus_di,
            dx,
            adx,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Dmi;
    use crate::{domain::Bar, features::Indicator};

    fn bar(high: f64, low: f64) -> Bar {
        let close = f64::midpoint(high, low);
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
    fn steady_uptrend_is_all_plus() {
        let mut dmi = Dmi::new(3).expect("valid parameters");
        let values: Vec<_> = (0..8)
            .map(|i| dmi.update(bar(11.0 + f64::from(i), 10.0 + f64::from(i))))
            .collect();
        assert!(values[..3].iter().all(Option::is_none));
        let first = values[3].expect("warmed up");
        assert_eq!(first.minus_di, 0.0);
        assert!(first.plus_di > 0.0);
        assert_eq!(first.dx, 100.0);
        assert_eq!(first.adx, None);
        assert_eq!(values[5].expect("warmed up").adx, Some(100.0));
    }

    #[test]
    fn flat_market_gives_zero_dx_then_repeats_it() {
        let mut dmi = Dmi::new(2).expect("valid parameters");
        let values: Vec<_> = (0..5).map(|_| dmi.update(bar(10.0, 10.0))).collect();
        let first = values[2].expect("warmed up");
        assert_eq!(
            (first.plus_di, first.minus_di, first.dx, first.adx),
            (0.0, 0.0, 0.0, None)
        );
        assert_eq!(values[3].expect("warmed up").adx, Some(0.0));
        assert_eq!(values[4].expect("warmed up").dx, 0.0);
    }
}
