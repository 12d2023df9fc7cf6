//! Premium and discount: where the close sits in the dealing range between the latest swing high and
//! swing low.
//!
//! ICT entries buy in discount (below the range's midpoint, the equilibrium) and sell in premium. The
//! dealing range is the newest confirmed (non-bookend) swing high and swing low; it is announced with
//! [`SmcEventKind::DealingRange`] when either swing changes, and the close's zone with
//! [`SmcEventKind::PriceZoneChanged`] when it changes. The reference package has no such function, so
//! there is no golden file; this family is covered by unit tests.

use super::{BarHistory, SmcEvent, SmcEventKind, Swing, SwingSide};

/// Where a price sits relative to the equilibrium of the dealing range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PriceZone {
    /// Above the midpoint: expensive, where ICT looks for sells.
    Premium,
    Equilibrium,
    /// Below the midpoint: cheap, where ICT looks for buys.
    Discount,
}

impl PriceZone {
    /// Zone of `price` in the range `low..=high`.
    pub fn of(price: f64, high: f64, low: f64) -> Self {
        let equilibrium = f64::midpoint(high, low);
        if price > equilibrium {
            Self::Premium
        } else if price < equilibrium {
            Self::Discount
        } else {
            Self::Equilibrium
        }
    }
}

/// Tracks the dealing range and the close's zone.
#[derive(Debug, Clone, Default)]
pub struct PremiumDiscountTracker {
    range: Option<(Swing, Swing)>,
    zone: Option<PriceZone>,
}

impl PremiumDiscountTracker {
    /// `(high, low)` of the current dealing range.
    pub fn range(&self) -> Option<(f64, f64)> {
        self.range.map(|(high, low)| (high.level, low.level))
    }

    pub fn zone(&self) -> Option<PriceZone> {
        self.zone
    }

    pub fn on_bar(&mut self, bars: &BarHistory, swings: &[Swing], out: &mut Vec<SmcEvent>) {
        let Some(now) = bars.last_index() else {
            return;
        };
        let newest_real = |side| {
            swings
                .iter()
                .rev()
                .take(2)
                .find(|s| s.side == side && !s.bookend)
                .copied()
        };
        if let (Some(high), Some(low)) = (newest_real(SwingSide::High), newest_real(SwingSide::Low))
            && self.range != Some((high, low))
        {
            self.range = Some((high, low));
            out.push(SmcEvent {
                row: high.row.max(low.row),
                known_at: now,
                kind: SmcEventKind::DealingRange {
                    high: high.level,
                    low: low.level,
                },
            });
        }
        let Some((high, low)) = self.range() else {
            return;
        };
        let zone = PriceZone::of(bars.bar(now).close, high, low);
        if self.zone != Some(zone) {
            self.zone = Some(zone);
            out.push(SmcEvent {
                row: now,
                known_at: now,
                kind: SmcEventKind::PriceZoneChanged { zone },
            });
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::domain::Bar;

    fn bar(close: f64) -> Bar {
        Bar {
            open_time: 0,
            close_time: 0,
            open: close,
            high: close,
            low: close,
            close,
            volume: 0.0,
            quote_volume: 0.0,
            trades: 0,
            closed: true,
        }
    }

    #[test]
    fn zone_follows_the_midpoint_of_the_latest_swings() {
        let mut history = BarHistory::default();
        let swings = [
            Swing {
                row: 0,
                side: SwingSide::High,
                level: 100.0,
                bookend: true,
            },
            Swing {
                row: 3,
                side: SwingSide::Low,
                level: 80.0,
                bookend: false,
            },
            Swing {
                row: 6,
                side: SwingSide::High,
                level: 120.0,
                bookend: false,
            },
        ];
        let mut tracker = PremiumDiscountTracker::default();
        let mut out = Vec::new();
        for close in [110.0, 99.0, 100.0] {
            history.push(bar(close));
            tracker.on_bar(&history, &swings, &mut out);
        }
        let kinds: Vec<_> = out.iter().map(|e| (e.row, e.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (
                    6,
                    SmcEventKind::DealingRange {
                        high: 120.0,
                        low: 80.0
                    }
                ),
                (
                    0,
                    SmcEventKind::PriceZoneChanged {
                        zone: PriceZone::Premium
                    }
                ),
                (
                    1,
                    SmcEventKind::PriceZoneChanged {
                        zone: PriceZone::Discount
                    }
                ),
                (
                    2,
                    SmcEventKind::PriceZoneChanged {
                        zone: PriceZone::Equilibrium
                    }
                ),
            ]
        );
    }

    #[test]
    fn bookend_alone_makes_no_range() {
        let mut history = BarHistory::default();
        history.push(bar(1.0));
        let swings = [
            Swing {
                row: 0,
                side: SwingSide::High,
                level: 2.0,
                bookend: true,
            },
            Swing {
                row: 3,
                side: SwingSide::Low,
                level: 0.5,
                bookend: false,
            },
        ];
        let mut tracker = PremiumDiscountTracker::default();
        let mut out = Vec::new();
        tracker.on_bar(&history, &swings, &mut out);
        assert!(out.is_empty());
        assert_eq!(tracker.range(), None);
    }
}
