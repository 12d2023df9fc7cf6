//! Retracement from the last swing: how far (in percent of the swing range) price has pulled back, now and
//! at its deepest since the swing.
//!
//! After a swing high, a bar's retracement is `100 − (low − swing_low)/(swing_high − swing_low) × 100`;
//! after a swing low, `100 − (high − swing_high)/(swing_low − swing_high) × 100`; both rounded to 0.1
//! with ties to even (numpy's rounding, as the reference). The deepest value restarts when the direction
//! changes. Rows up to and including the third change of direction are warm-up and are not emitted.
//!
//! A row's value depends on every swing up to that row, and swings are confirmed late and the newest one
//! can still be replaced, so row `i` is emitted only once `i` is before the newest swing: from then on
//! nothing can change it, and no retracement event is ever revised. Deliberate differences from the
//! reference (SPEC §2.6, `docs/smc-differences.md`): the direction of row `i` is used on both sides (the
//! reference uses the previous row's on the bullish side), and row `i` shows row `i`'s own state (the
//! reference shifts the column down by one row).

use super::{BarHistory, BarIndex, SmcEvent, SmcEventKind, Swing, SwingSide};

/// Emits settled retracement rows.
#[derive(Debug, Clone, Default)]
pub struct RetracementTracker {
    next_row: BarIndex,
    swing_cursor: usize,
    direction: Option<SwingSide>,
    top: f64,
    bottom: f64,
    deepest: f64,
    direction_changes: u32,
    warmed_up: bool,
}

/// numpy `round(x, 1)`: `rint(x × 10) / 10`, ties to even.
pub fn round_one_decimal(x: f64) -> f64 {
    (x * 10.0).round_ties_even() / 10.0
}

impl RetracementTracker {
    pub fn on_bar(&mut self, bars: &BarHistory, swings: &[Swing], out: &mut Vec<SmcEvent>) {
        let (Some(now), Some(newest)) = (bars.last_index(), swings.last()) else {
            return;
        };
        for row in self.next_row..newest.row {
            let previous_direction = self.direction;
            if let Some(swing) = swings.get(self.swing_cursor).filter(|s| s.row == row) {
                self.swing_cursor += 1;
                self.direction = Some(swing.side);
                match swing.side {
                    SwingSide::High => self.top = swing.level,
                    SwingSide::Low => self.bottom = swing.level,
                }
            }
            let Some(direction) = self.direction else {
                continue;
            };
            let bar = bars.bar(row);
            let current = match direction {
                SwingSide::High if self.top != self.bottom => {
                    round_one_decimal(100.0 - (bar.low - self.bottom) / (self.top - self.bottom) * 100.0)
                }
                SwingSide::Low if self.top != self.bottom => {
                    round_one_decimal(100.0 - (bar.high - self.top) / (self.bottom - self.top) * 100.0)
                }
                _ => 0.0,
            };
            let carried = if previous_direction == Some(direction) {
                self.deepest
            } else {
                0.0
            };
            self.deepest = carried.max(current);
            if previous_direction != Some(direction) {
                self.direction_changes += 1;
                if self.direction_changes == 3 {
                    continue;
                }
            }
            if self.direction_changes < 3 {
                continue;
            }
            self.warmed_up = true;
            out.push(SmcEvent {
                row,
                known_at: now,
                kind: SmcEventKind::Retracement {
                    from: direction,
                    current_percent: current,
                    deepest_percent: self.deepest,
                },
            });
        }
        self.next_row = self.next_row.max(newest.row);
    }

    /// Follows a pruning of the swing list to rows from `base` on: the cursor points into the new list
    /// and no row before `base` is read again. The direction and range carry on.
    pub fn prune(&mut self, base: BarIndex, swings: &[Swing]) {
        self.next_row = self.next_row.max(base);
        self.swing_cursor = swings.partition_point(|s| s.row < self.next_row);
    }

    /// Whether the warm-up (three changes of direction) is over.
    pub fn warmed_up(&self) -> bool {
        self.warmed_up
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::round_one_decimal;

    #[test]
    fn rounding_is_numpy_ties_to_even() {
        assert_eq!(round_one_decimal(0.25), 0.2);
        assert_eq!(round_one_decimal(0.75), 0.8);
        assert_eq!(round_one_decimal(12.34), 12.3);
    }
}
