//! Previous period high and low (e.g. the previous 4h, day, week) and whether the current period has
//! traded beyond them.
//!
//! Traders mark the previous day's and week's extremes as liquidity. Periods follow the venue's own
//! candle boundaries ([`Interval::open_time_of`]: UTC midnight for days, Monday 00:00 UTC for weeks), and
//! the reference period is always the last *completed* period that had bars, so everything is known at
//! the bar itself. The reference (SPEC §2.7) instead uses the period before that on the first bar of each
//! period, and for weekly bins (pandas `W-SUN`, right-labelled) on every bar; those are the deliberate
//! differences listed in `docs/smc-differences.md`. Events are emitted only when something changes: a
//! [`SmcEventKind::PreviousRange`] on the first bar of each period, and a break event on the first bar of
//! the period that trades beyond the previous high or low.

use super::{BarIndex, SmcEvent, SmcEventKind};
use crate::domain::{Bar, Interval, TimestampMs};

/// Tracks one timeframe.
#[derive(Debug, Clone)]
pub struct PreviousLevelsDetector {
    timeframe: Interval,
    current_period: Option<TimestampMs>,
    /// Open time of the period after `current_period`: bars before it need no calendar arithmetic.
    next_period: TimestampMs,
    current_high: f64,
    current_low: f64,
    previous: Option<(f64, f64)>,
    high_broken: bool,
    low_broken: bool,
}

impl PreviousLevelsDetector {
    pub fn new(timeframe: Interval) -> Self {
        Self {
            timeframe,
            current_period: None,
            next_period: TimestampMs::MIN,
            current_high: f64::NAN,
            current_low: f64::NAN,
            previous: None,
            high_broken: false,
            low_broken: false,
        }
    }

    pub fn timeframe(&self) -> Interval {
        self.timeframe
    }

    /// The previous completed period's `(high, low)`, once one exists.
    pub fn previous(&self) -> Option<(f64, f64)> {
        self.previous
    }

    pub fn on_bar(&mut self, index: BarIndex, bar: &Bar, out: &mut Vec<SmcEvent>) {
        let timeframe = self.timeframe;
        let same_period = self
            .current_period
            .is_some_and(|start| start <= bar.open_time && bar.open_time < self.next_period);
        if same_period {
            self.current_high = self.current_high.max(bar.high);
            self.current_low = self.current_low.min(bar.low);
        } else {
            if self.current_period.is_some() {
                let (high, low) = (self.current_high, self.current_low);
                self.previous = Some((high, low));
                out.push(SmcEvent {
                    row: index,
                    known_at: index,
                    kind: SmcEventKind::PreviousRange { timeframe, high, low },
                });
            }
            let period = timeframe.open_time_of(bar.open_time);
            self.current_period = Some(period);
            self.next_period = timeframe.next_open(period);
            self.current_high = bar.high;
            self.current_low = bar.low;
            self.high_broken = false;
            self.low_broken = false;
        }
        let Some((high, low)) = self.previous else {
            return;
        };
        if !self.high_broken && bar.high > high {
            self.high_broken = true;
            out.push(SmcEvent {
                row: index,
                known_at: index,
                kind: SmcEventKind::PreviousHighBroken { timeframe },
            });
        }
        if !self.low_broken && bar.low < low {
            self.low_broken = true;
            out.push(SmcEvent {
                row: index,
                known_at: index,
                kind: SmcEventKind::PreviousLowBroken { timeframe },
            });
        }
    }
}
