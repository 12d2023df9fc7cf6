//! A fixed-capacity ring of the last `N` values with their running sum and sum of squares: the shared state
//! of SMA, Bollinger bands and realised volatility.
//!
//! The sums are updated by subtracting the evicted value and adding the new one, in the same order as
//! TA-Lib's SMA and BBANDS loops, which keeps the golden files matched. Add/subtract accumulates rounding
//! error without bound over a long-running series, and Bollinger's `E[x²] − E[x]²` magnifies it (EURUSD
//! 15m has window variances of 7.5e-9 against E[x²] ≈ 1), so every time the ring wraps the sums are
//! recomputed from the stored values: at most `N` updates' worth of drift, for N extra additions every N
//! bars.

/// The last `N` values pushed, oldest first once full.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RollingWindow<const N: usize> {
    values: [f64; N],
    /// Slot the next value goes into (the oldest value once the window is full).
    next: usize,
    len: usize,
    sum: f64,
    sum_of_squares: f64,
}

impl<const N: usize> Default for RollingWindow<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> RollingWindow<N> {
    const NON_EMPTY: () = assert!(N > 0, "a rolling window needs room for at least one value");

    pub const fn new() -> Self {
        let () = Self::NON_EMPTY;
        Self {
            values: [0.0; N],
            next: 0,
            len: 0,
            sum: 0.0,
            sum_of_squares: 0.0,
        }
    }

    /// Appends `value`, evicting the oldest once `N` values are held.
    pub fn push(&mut self, value: f64) {
        if self.len == N {
            let evicted = self.values[self.next];
            self.sum -= evicted;
            self.sum_of_squares -= evicted * evicted;
        } else {
            self.len += 1;
        }
        self.values[self.next] = value;
        self.sum += value;
        self.sum_of_squares += value * value;
        self.next += 1;
        if self.next == N {
            self.next = 0;
            if self.len == N {
                self.resum();
            }
        }
    }

    fn resum(&mut self) {
        // `next` is 0 here, so index order is oldest-first: the same order a fresh accumulation would use.
        let (mut sum, mut sum_of_squares) = (0.0, 0.0);
        for &value in &self.values {
            sum += value;
            sum_of_squares += value * value;
        }
        self.sum = sum;
        self.sum_of_squares = sum_of_squares;
    }

    pub const fn is_full(&self) -> bool {
        self.len == N
    }

    pub const fn len(&self) -> usize {
        self.len
    }

    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub const fn capacity(&self) -> usize {
        N
    }

    /// Sum of the values held.
    pub const fn sum(&self) -> f64 {
        self.sum
    }

    /// Sum of the squares of the values held.
    pub const fn sum_of_squares(&self) -> f64 {
        self.sum_of_squares
    }

    /// The values held, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        let start = if self.len == N { self.next } else { 0 };
        (0..self.len).map(move |offset| self.values[(start + offset) % N])
    }
}

#[cfg(test)]
mod tests {
    use super::RollingWindow;

    #[test]
    fn keeps_the_last_n_values_oldest_first() {
        let mut window = RollingWindow::<3>::new();
        for value in [1.0, 2.0, 3.0, 4.0, 5.0] {
            window.push(value);
        }
        assert!(window.is_full());
        assert_eq!(window.iter().collect::<Vec<_>>(), vec![3.0, 4.0, 5.0]);
        assert_eq!(window.sum(), 12.0);
        assert_eq!(window.sum_of_squares(), 50.0);
    }

    #[test]
    fn partial_window_reports_what_it_holds() {
        let mut window = RollingWindow::<4>::new();
        assert!(window.is_empty());
        window.push(2.0);
        window.push(5.0);
        assert_eq!(window.len(), 2);
        assert!(!window.is_full());
        assert_eq!(window.iter().collect::<Vec<_>>(), vec![2.0, 5.0]);
        assert_eq!(window.sum(), 7.0);
    }

    #[test]
    fn resum_on_wrap_removes_accumulated_cancellation_error() {
        // 1e16 then small values: add/subtract alone loses the small values entirely.
        let mut window = RollingWindow::<2>::new();
        window.push(1e16);
        window.push(1.0);
        window.push(1.0);
        window.push(1.0);
        assert_eq!(window.sum(), 2.0);
    }
}
