//! Fair value gaps: three-candle imbalances, optionally joined into one gap per run, and their mitigation.
//!
//! A gap's middle candle is row `i`; it needs candle `i + 1`, so it is known one bar late (SPEC §2.1).
//! Bullish: `close[i] > open[i]` and `high[i−1] < low[i+1]` (top = `low[i+1]`, bottom = `high[i−1]`);
//! bearish mirrored; all comparisons strict, a doji is never a gap. With `join_consecutive`, a gap on
//! the row right after a same-direction gap absorbs it (widest top and bottom) and the earlier row is
//! withdrawn with [`SmcEventKind::FairValueGapInvalidated`]: the run collapses onto its last row, as in
//! the reference. Mitigation is the first bar from `i + 2` on that touches the near edge (bullish:
//! `low <= top`; bearish: `high >= bottom`). This family matches the reference exactly.

use super::{BarIndex, Direction, SmcEvent, SmcEventKind};
use crate::domain::Bar;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Gap {
    row: BarIndex,
    direction: Direction,
    top: f64,
    bottom: f64,
}

/// Detects fair value gaps bar by bar.
#[derive(Debug, Clone)]
pub struct FairValueGapDetector {
    join_consecutive: bool,
    /// The two bars before the newest one: `[i − 1, i]` once two have been seen.
    previous: [Option<Bar>; 2],
    /// Unmitigated gaps, oldest first.
    active: Vec<Gap>,
    /// Highest bullish top and lowest bearish bottom among `active` (or a bound beyond them): a bar with
    /// `low > touch_bounds[0]` and `high < touch_bounds[1]` touches no gap, so most bars skip the scan.
    touch_bounds: [f64; 2],
}

impl FairValueGapDetector {
    pub fn new(join_consecutive: bool) -> Self {
        Self {
            join_consecutive,
            previous: [None, None],
            active: Vec::new(),
            touch_bounds: [f64::NEG_INFINITY, f64::INFINITY],
        }
    }

    /// Unmitigated gaps tracked now (each leaves when mitigated or joined).
    pub fn active_len(&self) -> usize {
        self.active.len()
    }

    /// Forgets the open gaps on rows before `base` (bounded history).
    pub fn prune(&mut self, base: BarIndex) {
        self.active.retain(|gap| gap.row >= base);
        self.refresh_bounds();
    }

    fn refresh_bounds(&mut self) {
        let mut bounds = [f64::NEG_INFINITY, f64::INFINITY];
        for gap in &self.active {
            match gap.direction {
                Direction::Bullish => bounds[0] = bounds[0].max(gap.top),
                Direction::Bearish => bounds[1] = bounds[1].min(gap.bottom),
            }
        }
        self.touch_bounds = bounds;
    }

    pub fn on_bar(&mut self, index: BarIndex, bar: &Bar, out: &mut Vec<SmcEvent>) {
        let joined = self.join_consecutive;
        if let [Some(before), Some(middle)] = self.previous {
            let middle_row = index - 1;
            let gap = if middle.close > middle.open && before.high < bar.low {
                Some(Gap {
                    row: middle_row,
                    direction: Direction::Bullish,
                    top: bar.low,
                    bottom: before.high,
                })
            } else if middle.close < middle.open && before.low > bar.high {
                Some(Gap {
                    row: middle_row,
                    direction: Direction::Bearish,
                    top: before.low,
                    bottom: bar.high,
                })
            } else {
                None
            };
            if let Some(mut gap) = gap {
                if joined
                    && let Some(last) = self.active.last().copied()
                    && last.row + 1 == middle_row
                    && last.direction == gap.direction
                {
                    self.active.pop();
                    gap.top = gap.top.max(last.top);
                    gap.bottom = gap.bottom.min(last.bottom);
                    out.push(SmcEvent {
                        row: last.row,
                        known_at: index,
                        kind: SmcEventKind::FairValueGapInvalidated { joined },
                    });
                }
                out.push(SmcEvent {
                    row: gap.row,
                    known_at: index,
                    kind: SmcEventKind::FairValueGap {
                        direction: gap.direction,
                        top: gap.top,
                        bottom: gap.bottom,
                        joined,
                    },
                });
                match gap.direction {
                    Direction::Bullish => self.touch_bounds[0] = self.touch_bounds[0].max(gap.top),
                    Direction::Bearish => self.touch_bounds[1] = self.touch_bounds[1].min(gap.bottom),
                }
                self.active.push(gap);
            }
        }
        if bar.low > self.touch_bounds[0] && bar.high < self.touch_bounds[1] {
            self.previous = [self.previous[1], Some(*bar)];
            return;
        }
        self.active.retain(|gap| {
            let touched = gap.row + 2 <= index
                && match gap.direction {
                    Direction::Bullish => bar.low <= gap.top,
                    Direction::Bearish => bar.high >= gap.bottom,
                };
            if touched {
                out.push(SmcEvent {
                    row: gap.row,
                    known_at: index,
                    kind: SmcEventKind::FairValueGapMitigated { joined, at: index },
                });
            }
            !touched
        });
        self.refresh_bounds();
        self.previous = [self.previous[1], Some(*bar)];
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn bar(open: f64, high: f64, low: f64, close: f64) -> Bar {
        Bar {
            open_time: 0,
            close_time: 0,
            open,
            high,
            low,
            close,
            volume: 0.0,
            quote_volume: 0.0,
            trades: 0,
            closed: true,
        }
    }

    fn run(join: bool, bars: &[Bar]) -> Vec<SmcEvent> {
        let mut det = FairValueGapDetector::new(join);
        let mut out = Vec::new();
        for (i, b) in bars.iter().enumerate() {
            det.on_bar(i, b, &mut out);
        }
        out
    }

    #[test]
    fn bullish_gap_known_one_bar_late_and_mitigated_on_touch() {
        let bars = [
            bar(1.0, 2.0, 0.5, 1.5),
            bar(2.0, 4.0, 1.9, 3.8),
            bar(3.8, 5.0, 3.0, 4.5),
            bar(4.5, 4.6, 3.0, 3.5),
        ];
        let out = run(false, &bars);
        assert_eq!(
            out,
            vec![
                SmcEvent {
                    row: 1,
                    known_at: 2,
                    kind: SmcEventKind::FairValueGap {
                        direction: Direction::Bullish,
                        top: 3.0,
                        bottom: 2.0,
                        joined: false
                    }
                },
                SmcEvent {
                    row: 1,
                    known_at: 3,
                    kind: SmcEventKind::FairValueGapMitigated { joined: false, at: 3 }
                },
            ]
        );
    }

    #[test]
    fn adjacent_gaps_collapse_onto_the_last_row_when_joining() {
        let bars = [
            bar(1.0, 2.0, 0.5, 1.5),
            bar(2.0, 4.0, 1.9, 3.8),
            bar(3.8, 5.0, 3.0, 4.9),
            bar(5.0, 7.0, 5.5, 6.9),
            bar(6.9, 8.0, 6.8, 7.5),
        ];
        let out = run(true, &bars);
        assert!(out.contains(&SmcEvent {
            row: 1,
            known_at: 3,
            kind: SmcEventKind::FairValueGapInvalidated { joined: true }
        }));
        assert!(out.contains(&SmcEvent {
            row: 2,
            known_at: 3,
            kind: SmcEventKind::FairValueGap {
                direction: Direction::Bullish,
                top: 5.5,
                bottom: 2.0,
                joined: true
            }
        }));
    }
}
