//! Simple moving average over a const-generic window: the mean of the last `N` inputs, first valid at
//! input `N − 1` (TA-Lib `SMA`). Kept separate from Bollinger so a caller can have a mean without σ.

use super::{Indicator, window::RollingWindow};

/// Mean of the last `N` inputs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sma<const N: usize> {
    window: RollingWindow<N>,
}

impl<const N: usize> Sma<N> {
    pub const fn new() -> Self {
        Self {
            window: RollingWindow::new(),
        }
    }

    pub fn value(&self) -> Option<f64> {
        self.window.is_full().then(|| self.window.sum() / N as f64)
    }
}

impl<const N: usize> Indicator for Sma<N> {
    type Input = f64;
    type Output = f64;

    fn update(&mut self, input: f64) -> Option<f64> {
        self.window.push(input);
        self.value()
    }
}

#[cfg(test)]
mod tests {
    use super::Sma;
    use crate::features::Indicator;

    #[test]
    fn mean_of_the_last_n_once_full() {
        let mut sma = Sma::<3>::new();
        assert_eq!(sma.update(3.0), None);
        assert_eq!(sma.update(6.0), None);
        assert_eq!(sma.update(9.0), Some(6.0));
        assert_eq!(sma.update(12.0), Some(9.0));
    }
}
