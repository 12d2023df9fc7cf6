//! Bollinger bands as TA-Lib `BBANDS(N, k, k, SMA)`: middle = SMA(N), bands = middle ± k·σ with the
//! **population** σ (ddof = 0; pandas' default ddof = 1 is 0.15 % wider at N = 20), computed as
//! `sqrt(Σx²/N − middle²)` and set to 0 when that variance is below TA-Lib's 1e-14 epsilon. First valid
//! on input `N − 1`.

use super::{Indicator, TA_LIB_EPSILON, window::RollingWindow};

/// One set of bands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BollingerBands {
    pub upper: f64,
    pub middle: f64,
    pub lower: f64,
}

/// Bollinger bands over the last `N` closes, `width` population standard deviations wide on each side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bollinger<const N: usize> {
    window: RollingWindow<N>,
    width: f64,
}

impl<const N: usize> Bollinger<N> {
    pub const fn new(width: f64) -> Self {
        Self {
            window: RollingWindow::new(),
            width,
        }
    }

    pub const fn width(&self) -> f64 {
        self.width
    }

    pub fn value(&self) -> Option<BollingerBands> {
        if !self.window.is_full() {
            return None;
        }
        let count = N as f64;
        let middle = self.window.sum() / count;
        let variance = self.window.sum_of_squares() / count - middle * middle;
        let deviation = if variance < TA_LIB_EPSILON {
            0.0
        } else {
            variance.sqrt()
        };
        let half_width = self.width * deviation;
        Some(BollingerBands {
            upper: middle + half_width,
            middle,
            lower: middle - half_width,
        })
    }
}

impl<const N: usize> Indicator for Bollinger<N> {
    type Input = f64;
    type Output = BollingerBands;

    fn update(&mut self, close: f64) -> Option<BollingerBands> {
        self.window.push(close);
        self.value()
    }
}

#[cfg(test)]
mod tests {
    use super::{Bollinger, BollingerBands};
    use crate::features::Indicator;

    #[test]
    fn population_deviation_bands() {
        let mut bands = Bollinger::<4>::new(2.0);
        for close in [2.0, 4.0, 4.0] {
            assert_eq!(bands.update(close), None);
        }
        // 2, 4, 4, 6: mean 4, population variance (4 + 0 + 0 + 4)/4 = 2
        let expected_half_width = 2.0 * 2.0_f64.sqrt();
        assert_eq!(
            bands.update(6.0),
            Some(BollingerBands {
                upper: 4.0 + expected_half_width,
                middle: 4.0,
                lower: 4.0 - expected_half_width
            })
        );
    }

    #[test]
    fn flat_window_has_zero_width() {
        let mut bands = Bollinger::<3>::new(2.0);
        let last = [1.1; 5]
            .into_iter()
            .filter_map(|close| bands.update(close))
            .last()
            .expect("warmed up");
        assert_eq!(last.upper, last.lower);
    }
}
