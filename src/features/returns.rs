//! Log returns and realised volatility. Not in the TA-Lib golden files (no library defines them the same
//! way), so the definitions are ours and are pinned by the batch references in the property tests:
//!
//! * log return `r[i] = ln(c[i]/c[i−1])`, first valid on bar 1;
//! * realised volatility over `N` bars = `sqrt(Σ r²/N)` over the last `N` log returns: the per-bar root mean
//!   square with the zero-mean convention usual for intraday returns (subtracting a 20-bar mean return
//!   mostly adds noise). Not annualised: the caller knows the bar interval. First valid on bar `N`.

use super::{Indicator, window::RollingWindow};

/// Close-to-close log return.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LogReturn {
    previous_close: Option<f64>,
}

impl LogReturn {
    pub const fn new() -> Self {
        Self { previous_close: None }
    }
}

impl Indicator for LogReturn {
    type Input = f64;
    type Output = f64;

    fn update(&mut self, close: f64) -> Option<f64> {
        let previous = self.previous_close.replace(close)?;
        Some((close / previous).ln())
    }
}

/// Root mean square of the last `N` log returns.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RealisedVolatility<const N: usize> {
    log_return: LogReturn,
    last_log_return: Option<f64>,
    squared_returns: RollingWindow<N>,
}

impl<const N: usize> RealisedVolatility<N> {
    pub const fn new() -> Self {
        Self {
            log_return: LogReturn::new(),
            last_log_return: None,
            squared_returns: RollingWindow::new(),
        }
    }

    /// The log return of the last close committed (`None` after the first).
    pub const fn last_log_return(&self) -> Option<f64> {
        self.last_log_return
    }
}

impl<const N: usize> Indicator for RealisedVolatility<N> {
    type Input = f64;
    type Output = f64;

    fn update(&mut self, close: f64) -> Option<f64> {
        self.last_log_return = self.log_return.update(close);
        self.squared_returns.push(self.last_log_return?);
        // Rounding in the running sum can leave a tiny negative for an all-zero window; clamp it.
        self.squared_returns
            .is_full()
            .then(|| (self.squared_returns.sum_of_squares() / N as f64).max(0.0).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::{LogReturn, RealisedVolatility};
    use crate::features::Indicator;

    #[test]
    fn log_return_of_doubling_is_ln2() {
        let mut log_return = LogReturn::new();
        assert_eq!(log_return.update(50.0), None);
        assert_eq!(log_return.update(100.0), Some(2.0_f64.ln()));
    }

    #[test]
    fn realised_volatility_is_the_rms_of_log_returns() {
        let mut volatility = RealisedVolatility::<2>::new();
        assert_eq!(volatility.update(1.0), None);
        assert_eq!(volatility.update(2.0), None);
        let value = volatility.update(1.0).expect("warmed up");
        let ln2 = 2.0_f64.ln();
        assert!((value - ln2).abs() < 1e-15, "{value} vs {ln2}");
        assert_eq!(volatility.last_log_return(), Some(-ln2));
    }
}
