//! Break of structure (BOS) and change of character (`CHoCH`), with the reference's supersession rule.
//!
//! A strategy wants to know when the market made a higher high after a higher low (bullish BOS) or broke
//! the last high after a lower low (bullish `CHoCH`), and the mirror images. The reference (SPEC §2.3)
//! looks at each four consecutive swings `a, b, c, d`, writes the signal on swing `b`, records the
//! first bar after `b` whose close (or wick, without `close_break`) goes beyond `level(b)`, drops
//! signals that are never broken, and deletes an older signal when a newer one is broken no later than
//! it. Causally: a signal is evaluated when its `d` is confirmed; it is emitted when its break is seen
//! (at once if the break is already in the past); a newer break that supersedes it is an
//! [`SmcEventKind::StructureInvalidated`] event. Replacing `d` by a more extreme swing can only create a
//! signal, never remove one (the inequalities are monotone in `d`), so swing revisions need no undo.
//!
//! Deliberate differences from the reference (`docs/smc-differences.md`): levels are compared in f64,
//! not against the float32-rounded level; a superseded signal withdraws all its columns, its break index
//! included.

use super::{BarHistory, BarIndex, Direction, SmcEvent, SmcEventKind, Swing, SwingSide, SwingUpdate};

/// Which of the two structure signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StructureKind {
    /// Break of structure: continuation.
    Bos,
    /// Change of character: reversal.
    Choch,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Signal {
    row: BarIndex,
    kind: StructureKind,
    direction: Direction,
    level: f64,
    broken_at: Option<BarIndex>,
    visible: bool,
    /// Never shown: a newer signal was broken first.
    suppressed: bool,
}

/// Detects BOS/CHoCH from the swing list.
#[derive(Debug, Clone)]
pub struct StructureDetector {
    close_break: bool,
    signals: Vec<Signal>,
}

impl StructureDetector {
    pub fn new(close_break: bool) -> Self {
        Self {
            close_break,
            signals: Vec::new(),
        }
    }

    fn breaks(&self, signal: &Signal, bars: &BarHistory, index: BarIndex) -> bool {
        let bar = bars.bar(index);
        match signal.direction {
            Direction::Bullish => (if self.close_break { bar.close } else { bar.high }) > signal.level,
            Direction::Bearish => (if self.close_break { bar.close } else { bar.low }) < signal.level,
        }
    }

    pub fn on_bar(
        &mut self,
        bars: &BarHistory,
        swings: &[Swing],
        update: SwingUpdate,
        out: &mut Vec<SmcEvent>,
    ) {
        let Some(now) = bars.last_index() else {
            return;
        };
        // Pending signals created earlier: does this bar break them?
        for position in 0..self.signals.len() {
            let signal = self.signals[position];
            if signal.broken_at.is_none()
                && !signal.suppressed
                && signal.row < now
                && self.breaks(&signal, bars, now)
            {
                self.on_broken(position, now, now, out);
            }
        }
        if update.changed()
            && let Some(signal) = classify(swings)
            && !self.signals.iter().any(|s| s.row == signal.row)
        {
            self.signals.push(signal);
            let position = self.signals.len() - 1;
            // The swing bar itself can never break its own level; the scan starts after it.
            if let Some(j) = (signal.row + 1..=now).find(|&j| self.breaks(&signal, bars, j)) {
                self.on_broken(position, j, now, out);
            }
        }
        self.prune(swings);
    }

    fn on_broken(&mut self, position: usize, broken_at: BarIndex, now: BarIndex, out: &mut Vec<SmcEvent>) {
        let row = self.signals[position].row;
        let superseded = self
            .signals
            .iter()
            .any(|s| s.row > row && s.broken_at.is_some_and(|j| j <= broken_at));
        let signal = &mut self.signals[position];
        signal.broken_at = Some(broken_at);
        if superseded {
            signal.suppressed = true;
        } else {
            signal.visible = true;
            out.push(SmcEvent {
                row,
                known_at: now,
                kind: SmcEventKind::StructureBreak {
                    kind: signal.kind,
                    direction: signal.direction,
                    level: signal.level,
                    broken_at,
                },
            });
        }
        for older in self.signals.iter_mut().filter(|s| s.row < row) {
            if older.visible && older.broken_at.is_some_and(|j| j >= broken_at) {
                older.visible = false;
                older.suppressed = true;
                out.push(SmcEvent {
                    row: older.row,
                    known_at: now,
                    kind: SmcEventKind::StructureInvalidated,
                });
            } else if older.broken_at.is_none() {
                // It can only break later than `broken_at` now, so it would be superseded at once.
                older.suppressed = true;
            }
        }
    }

    /// Pending signals (not yet broken, or still able to be superseded).
    pub fn pending_len(&self) -> usize {
        self.signals.len()
    }

    /// Forgets the signals on rows before `base` (bounded history).
    pub fn prune_before(&mut self, base: BarIndex) {
        self.signals.retain(|s| s.row >= base);
    }

    /// Forgets signals that can no longer change: suppressed ones, and visible ones broken before the
    /// earliest row a future signal can sit on (future signals sit on the third-newest swing or later).
    fn prune(&mut self, swings: &[Swing]) {
        let earliest_future_row = swings.len().checked_sub(3).map_or(0, |p| swings[p].row);
        self.signals.retain(|s| {
            !(s.suppressed || s.visible && s.broken_at.is_some_and(|j| j <= earliest_future_row))
        });
    }
}

/// The signal the newest four swings make on the second of them, if any.
fn classify(swings: &[Swing]) -> Option<Signal> {
    let start = swings.len().checked_sub(4)?;
    let [a, b, c, d] = [
        swings[start],
        swings[start + 1],
        swings[start + 2],
        swings[start + 3],
    ];
    let (la, lb, lc, ld) = (a.level, b.level, c.level, d.level);
    let (kind, direction) = match (a.side, b.side, c.side, d.side) {
        (SwingSide::Low, SwingSide::High, SwingSide::Low, SwingSide::High) => {
            if la < lc && lc < lb && lb < ld {
                (StructureKind::Bos, Direction::Bullish)
            } else if ld > lb && lb > la && la > lc {
                (StructureKind::Choch, Direction::Bullish)
            } else {
                return None;
            }
        }
        (SwingSide::High, SwingSide::Low, SwingSide::High, SwingSide::Low) => {
            if la > lc && lc > lb && lb > ld {
                (StructureKind::Bos, Direction::Bearish)
            } else if ld < lb && lb < la && la < lc {
                (StructureKind::Choch, Direction::Bearish)
            } else {
                return None;
            }
        }
        _ => return None,
    };
    Some(Signal {
        row: b.row,
        kind,
        direction,
        level: lb,
        broken_at: None,
        visible: false,
        suppressed: false,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn swing(row: usize, side: SwingSide, level: f64) -> Swing {
        Swing {
            row,
            side,
            level,
            bookend: false,
        }
    }

    #[test]
    fn higher_low_then_higher_high_is_a_bullish_bos_on_the_first_high() {
        let swings = [
            swing(0, SwingSide::Low, 1.0),
            swing(5, SwingSide::High, 3.0),
            swing(9, SwingSide::Low, 2.0),
            swing(14, SwingSide::High, 4.0),
        ];
        let signal = classify(&swings).unwrap();
        assert_eq!(
            (signal.row, signal.kind, signal.direction),
            (5, StructureKind::Bos, Direction::Bullish)
        );
    }

    #[test]
    fn lower_low_then_break_of_high_is_a_bullish_choch() {
        let swings = [
            swing(0, SwingSide::Low, 2.0),
            swing(5, SwingSide::High, 3.0),
            swing(9, SwingSide::Low, 1.0),
            swing(14, SwingSide::High, 4.0),
        ];
        let signal = classify(&swings).unwrap();
        assert_eq!(
            (signal.kind, signal.direction),
            (StructureKind::Choch, Direction::Bullish)
        );
    }

    #[test]
    fn equal_levels_are_no_signal() {
        let swings = [
            swing(0, SwingSide::High, 4.0),
            swing(5, SwingSide::Low, 2.0),
            swing(9, SwingSide::High, 4.0),
            swing(14, SwingSide::Low, 1.0),
        ];
        assert_eq!(classify(&swings), None);
    }
}
