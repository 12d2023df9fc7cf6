//! Swing highs and lows, confirmed `swing_length` bars late, de-duplicated as the reference does.
//!
//! Every other structure family is built on swings, so this detector defines what "known" means for
//! all of them. The reference (SPEC §2.2) calls row `i` a raw swing high when `high[i]` is the maximum of
//! `high[i−n+1 ..= i+n]` (a raw low likewise, highs winning ties), only for `2n−1 <= i`, then keeps one
//! swing per run of same-side raw swings: the most extreme, the earliest on ties. Here the raw test for
//! row `t − n` runs at the close of bar `t`, the first bar at which its window is complete, and the run
//! rule is applied as swings arrive: a more extreme swing of the same side replaces the newest swing,
//! which is withdrawn with [`SmcEventKind::SwingInvalidated`]. Only the newest swing can ever be
//! replaced, so every swing before it is final.
//!
//! The reference also writes two artificial "bookend" swings: on row 0 (opposite the first swing) and on
//! the last row (opposite the last swing). The row-0 bookend is emitted, flagged, when the first swing
//! is confirmed: it depends on nothing later. The last-row bookend moves with every new bar, so it is
//! not emitted (see `docs/smc-differences.md`).

use super::{BarHistory, BarIndex, SmcError, SmcEvent, SmcEventKind};

/// Which extreme a swing is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SwingSide {
    High,
    Low,
}

impl SwingSide {
    /// +1 for a high, −1 for a low, the reference's `HighLow` encoding.
    pub fn sign(self) -> i8 {
        match self {
            Self::High => 1,
            Self::Low => -1,
        }
    }

    pub fn opposite(self) -> Self {
        match self {
            Self::High => Self::Low,
            Self::Low => Self::High,
        }
    }
}

/// A confirmed swing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Swing {
    pub row: BarIndex,
    pub side: SwingSide,
    /// `high[row]` for a high, `low[row]` for a low.
    pub level: f64,
    /// The artificial row-0 swing.
    pub bookend: bool,
}

/// What one bar did to the swing list.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SwingUpdate {
    /// The newest swing was withdrawn (replaced by `appended`).
    pub removed: Option<Swing>,
    /// How many swings were appended at the end (2 when the first swing brings the row-0 bookend).
    pub appended: usize,
}

impl SwingUpdate {
    pub fn changed(&self) -> bool {
        self.appended > 0 || self.removed.is_some()
    }
}

/// Confirms swings of one `swing_length`.
#[derive(Debug, Clone)]
pub struct SwingDetector {
    length: usize,
    swings: Vec<Swing>,
    /// Swings were dropped by [`SwingDetector::prune`]: an empty list no longer means "first swing".
    pruned: bool,
}

impl SwingDetector {
    pub fn new(swing_length: usize) -> Result<Self, SmcError> {
        if swing_length == 0 {
            return Err(SmcError::SwingLength(swing_length));
        }
        Ok(Self {
            length: swing_length,
            swings: Vec::new(),
            pruned: false,
        })
    }

    pub fn swing_length(&self) -> usize {
        self.length
    }

    /// The current swing list, alternating sides, oldest first.
    pub fn swings(&self) -> &[Swing] {
        &self.swings
    }

    /// Forgets the swings before row `base` (a bounded history no longer holds their bars).
    pub fn prune(&mut self, base: BarIndex) {
        let drop = self.swings.partition_point(|s| s.row < base);
        if drop > 0 {
            self.swings.drain(..drop);
            self.pruned = true;
        }
    }

    /// Runs the raw test on row `t − n` (t = the newest bar in `bars`) and applies the run rule.
    pub fn on_bar(&mut self, bars: &BarHistory, out: &mut Vec<SmcEvent>) -> SwingUpdate {
        let mut update = SwingUpdate::default();
        let Some(now) = bars.last_index() else {
            return update;
        };
        let n = self.length;
        let Some(row) = now.checked_sub(n) else {
            return update;
        };
        if row < 2 * n - 1 {
            return update;
        }
        let window = || bars.span(row + 1 - n, now + 1);
        let candidate = bars.bar(row);
        let side = if window().all(|b| b.high <= candidate.high) {
            SwingSide::High
        } else if window().all(|b| b.low >= candidate.low) {
            SwingSide::Low
        } else {
            return update;
        };
        let level = match side {
            SwingSide::High => candidate.high,
            SwingSide::Low => candidate.low,
        };
        let swing = Swing {
            row,
            side,
            level,
            bookend: false,
        };
        let emit = |out: &mut Vec<SmcEvent>, s: Swing| {
            out.push(SmcEvent {
                row: s.row,
                known_at: now,
                kind: SmcEventKind::Swing {
                    side: s.side,
                    level: s.level,
                    bookend: s.bookend,
                },
            });
        };
        match self.swings.last().copied() {
            None if self.pruned => {
                self.swings.push(swing);
                emit(out, swing);
                update.appended = 1;
            }
            None => {
                let first = bars.bar(0);
                let bookend_side = side.opposite();
                let bookend = Swing {
                    row: 0,
                    side: bookend_side,
                    level: match bookend_side {
                        SwingSide::High => first.high,
                        SwingSide::Low => first.low,
                    },
                    bookend: true,
                };
                self.swings.push(bookend);
                emit(out, bookend);
                self.swings.push(swing);
                emit(out, swing);
                update.appended = 2;
            }
            Some(last) if last.side == side => {
                let more_extreme = match side {
                    SwingSide::High => level > last.level,
                    SwingSide::Low => level < last.level,
                };
                if more_extreme && !last.bookend {
                    out.push(SmcEvent {
                        row: last.row,
                        known_at: now,
                        kind: SmcEventKind::SwingInvalidated,
                    });
                    self.swings.pop();
                    self.swings.push(swing);
                    emit(out, swing);
                    update.removed = Some(last);
                    update.appended = 1;
                }
            }
            Some(_) => {
                self.swings.push(swing);
                emit(out, swing);
                update.appended = 1;
            }
        }
        update
    }
}

/// The newest swing of `side` strictly before bar `before`.
pub(crate) fn last_swing_before(swings: &[Swing], before: BarIndex, side: SwingSide) -> Option<Swing> {
    // Almost every caller asks about a bar after the newest swing: skip the search then.
    let end = if swings.last().is_some_and(|s| s.row < before) {
        swings.len()
    } else {
        swings.partition_point(|s| s.row < before)
    };
    swings[..end]
        .iter()
        .rev()
        .take(2)
        .find(|s| s.side == side)
        .copied()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::domain::Bar;

    fn history(highs_lows: &[(f64, f64)]) -> BarHistory {
        let mut h = BarHistory::default();
        for (i, &(high, low)) in highs_lows.iter().enumerate() {
            h.push(Bar {
                open_time: i as i64 * 60_000,
                close_time: i as i64 * 60_000 + 59_999,
                open: low,
                high,
                low,
                close: high,
                volume: 1.0,
                quote_volume: 1.0,
                trades: 1,
                closed: true,
            });
        }
        h
    }

    fn run(bars: &[(f64, f64)], n: usize) -> (SwingDetector, Vec<SmcEvent>) {
        let mut det = SwingDetector::new(n).unwrap();
        let mut out = Vec::new();
        let mut prefix = BarHistory::default();
        let all = history(bars);
        for bar in all.span(0, all.len()) {
            prefix.push(*bar);
            det.on_bar(&prefix, &mut out);
        }
        (det, out)
    }

    #[test]
    fn swing_is_confirmed_exactly_n_bars_late_with_row0_bookend() {
        // n = 2: rows 3..=N-1-2 qualify. Peak at row 4.
        let bars = [
            (5.0, 4.0),
            (5.0, 4.0),
            (5.0, 4.0),
            (6.0, 5.0),
            (9.0, 8.0),
            (7.0, 6.0),
            (6.0, 5.5),
        ];
        let (det, out) = run(&bars, 2);
        assert_eq!(det.swings().len(), 2);
        assert_eq!(
            out[0],
            SmcEvent {
                row: 0,
                known_at: 6,
                kind: SmcEventKind::Swing {
                    side: SwingSide::Low,
                    level: 4.0,
                    bookend: true
                }
            }
        );
        assert_eq!(
            out[1],
            SmcEvent {
                row: 4,
                known_at: 6,
                kind: SmcEventKind::Swing {
                    side: SwingSide::High,
                    level: 9.0,
                    bookend: false
                }
            }
        );
    }

    #[test]
    fn higher_high_in_the_same_run_replaces_the_swing_with_an_invalidation() {
        let bars = [
            (5.0, 4.0),
            (5.0, 4.0),
            (5.0, 4.0),
            (6.0, 5.0),
            (9.0, 8.5),
            (8.8, 8.6),
            (8.9, 8.7),
            (10.0, 9.0),
            (9.5, 9.1),
            (9.6, 9.2),
        ];
        let (det, out) = run(&bars, 2);
        assert!(out.contains(&SmcEvent {
            row: 4,
            known_at: 9,
            kind: SmcEventKind::SwingInvalidated
        }));
        assert_eq!(det.swings().last().map(|s| s.row), Some(7));
    }

    #[test]
    fn zero_length_is_rejected() {
        assert_eq!(SwingDetector::new(0).err(), Some(SmcError::SwingLength(0)));
    }
}
