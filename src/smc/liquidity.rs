//! Liquidity pools: groups of equal swing highs (buy-side) or equal swing lows (sell-side), and their sweep.
//!
//! Resting orders cluster above equal highs and below equal lows; a strategy wants to know where those
//! pools are and when price ran through one. The reference (SPEC §2.5) walks the swings of one side in
//! order; a swing not yet taken by an earlier group starts a group with the range `level ± pip_range`,
//! its sweep is the first later bar beyond `level + pip_range` (highs) or `level − pip_range` (lows), and
//! every later unclaimed swing of that side inside the range and before the sweep joins it. A group of
//! two or more is a pool: level = mean of the members, end = the last member.
//!
//! Each swing's group is decided when the swing is confirmed (the earliest open group that accepts it,
//! which is what the reference's greedy order gives), so a pool appears when its second member is
//! confirmed and is re-issued (invalidated, then created again) when a member joins or is withdrawn by
//! the swing de-duplication. The reference takes `pip_range` from the range of the whole frame, which is
//! look-ahead; here it is a fixed parameter (the golden tests pass the value the reference used).

use super::{
    BarHistory, BarIndex, Direction, SmcError, SmcEvent, SmcEventKind, Swing, SwingSide, SwingUpdate,
};

#[derive(Debug, Clone, Copy, PartialEq)]
struct Pool {
    row: BarIndex,
    direction: Direction,
    level: f64,
    swept_at: Option<BarIndex>,
    sum: f64,
    members: usize,
    end: BarIndex,
}

impl Pool {
    fn visible(&self) -> bool {
        self.members > 1
    }
}

/// Unswept groups on rows before a bounded history's window that are still kept (see
/// [`LiquidityDetector::prune`]).
pub const MAX_GROUPS_BEFORE_WINDOW: usize = 128;

/// How the newest swing was placed, so a swing revision can undo it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Placement {
    Started {
        row: BarIndex,
    },
    Joined {
        pool_row: BarIndex,
        direction: Direction,
        sum: f64,
        end: BarIndex,
    },
}

/// Groups equal highs / lows into pools.
#[derive(Debug, Clone)]
pub struct LiquidityDetector {
    pip_range: f64,
    /// Groups that can still gain members or be swept, oldest first.
    pools: Vec<Pool>,
    newest_placement: Option<Placement>,
    /// The lowest `level + pip` of the unswept bullish pools and the highest `level − pip` of the
    /// unswept bearish ones: a bar inside both sweeps nothing, so most bars skip the scan of `pools`.
    sweep_bounds: [f64; 2],
}

impl LiquidityDetector {
    pub fn new(pip_range: f64) -> Result<Self, SmcError> {
        if !pip_range.is_finite() || pip_range < 0.0 {
            return Err(SmcError::PipRange(pip_range));
        }
        Ok(Self {
            pip_range,
            pools: Vec::new(),
            newest_placement: None,
            sweep_bounds: [f64::INFINITY, f64::NEG_INFINITY],
        })
    }

    /// Groups tracked now (open to new members or not yet settled).
    pub fn tracked_len(&self) -> usize {
        self.pools.len()
    }

    /// Follows a bounded history that now starts at row `base`. A group needs no bars (only its level),
    /// and an unswept one can still take members, so unswept groups before `base` are kept, up to
    /// [`MAX_GROUPS_BEFORE_WINDOW`] (the oldest beyond that are forgotten); swept ones go.
    pub fn prune(&mut self, base: BarIndex) {
        self.pools.retain(|p| p.row >= base || p.swept_at.is_none());
        let before = self.pools.partition_point(|p| p.row < base);
        if before > MAX_GROUPS_BEFORE_WINDOW {
            self.pools.drain(..before - MAX_GROUPS_BEFORE_WINDOW);
        }
        self.refresh_bounds();
    }

    fn refresh_bounds(&mut self) {
        let pip = self.pip_range;
        let mut bounds = [f64::INFINITY, f64::NEG_INFINITY];
        for pool in self.pools.iter().filter(|p| p.swept_at.is_none()) {
            match pool.direction {
                Direction::Bullish => bounds[0] = bounds[0].min(pool.level + pip),
                Direction::Bearish => bounds[1] = bounds[1].max(pool.level - pip),
            }
        }
        self.sweep_bounds = bounds;
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
        let bar = bars.bar(now);
        let pip = self.pip_range;
        // `is_sweep` is `high >= level + pip` / `low <= level − pip`, the same expressions as the bounds.
        let may_sweep = bar.high >= self.sweep_bounds[0] || bar.low <= self.sweep_bounds[1];
        let scanned: &mut [Pool] = if may_sweep { &mut self.pools } else { &mut [] };
        for pool in scanned {
            if pool.swept_at.is_none() && now > pool.row && is_sweep(pool, bar.high, bar.low, pip) {
                pool.swept_at = Some(now);
                if pool.visible() {
                    let direction = pool.direction;
                    out.push(SmcEvent {
                        row: pool.row,
                        known_at: now,
                        kind: SmcEventKind::LiquiditySwept { direction, at: now },
                    });
                }
            }
        }
        if update.removed.is_some() {
            self.undo_newest(now, out);
        }
        let first_new = swings.len() - update.appended;
        for &swing in &swings[first_new..] {
            self.place(swing, bars, now, out);
        }
        // A swept group takes no member at or after its sweep; once every swing before the sweep is
        // confirmed (rows up to now − n, at most) and the newest placement is not in it, it is final.
        let newest_row = swings.last().map_or(0, |s| s.row);
        let pinned = match self.newest_placement {
            Some(Placement::Joined { pool_row, .. }) => Some(pool_row),
            Some(Placement::Started { row }) => Some(row),
            None => None,
        };
        // What decides a group's removal (its sweep, the newest swing, the newest placement) changes
        // only with a sweep or a swing update.
        if may_sweep || update.changed() {
            self.pools
                .retain(|p| !(p.swept_at.is_some_and(|s| s <= newest_row) && Some(p.row) != pinned));
            self.refresh_bounds();
        }
    }

    fn place(&mut self, swing: Swing, bars: &BarHistory, now: BarIndex, out: &mut Vec<SmcEvent>) {
        let direction = match swing.side {
            SwingSide::High => Direction::Bullish,
            SwingSide::Low => Direction::Bearish,
        };
        let pip = self.pip_range;
        let accepting = self.pools.iter_mut().find(|p| {
            p.direction == direction
                && p.row < swing.row
                && p.swept_at.is_none_or(|s| swing.row < s)
                && p.level - pip <= swing.level
                && swing.level <= p.level + pip
        });
        if let Some(pool) = accepting {
            self.newest_placement = Some(Placement::Joined {
                pool_row: pool.row,
                direction,
                sum: pool.sum,
                end: pool.end,
            });
            if pool.visible() {
                out.push(invalidated(pool, now));
            }
            pool.sum += swing.level;
            pool.members += 1;
            pool.end = swing.row;
            announce(pool, now, out);
            return;
        }
        let mut pool = Pool {
            row: swing.row,
            direction,
            level: swing.level,
            swept_at: None,
            sum: swing.level,
            members: 1,
            end: swing.row,
        };
        pool.swept_at = (swing.row + 1..=now).find(|&j| {
            let bar = bars.bar(j);
            is_sweep(&pool, bar.high, bar.low, pip)
        });
        let position = self.pools.partition_point(|p| p.row < swing.row);
        self.pools.insert(position, pool);
        self.newest_placement = Some(Placement::Started { row: swing.row });
    }

    fn undo_newest(&mut self, now: BarIndex, out: &mut Vec<SmcEvent>) {
        match self.newest_placement.take() {
            Some(Placement::Started { row }) => self.pools.retain(|p| p.row != row),
            Some(Placement::Joined {
                pool_row,
                direction,
                sum,
                end,
            }) => {
                if let Some(pool) = self
                    .pools
                    .iter_mut()
                    .find(|p| p.row == pool_row && p.direction == direction)
                {
                    out.push(invalidated(pool, now));
                    pool.sum = sum;
                    pool.end = end;
                    pool.members -= 1;
                    announce(pool, now, out);
                }
            }
            None => {}
        }
    }
}

fn is_sweep(pool: &Pool, high: f64, low: f64, pip: f64) -> bool {
    match pool.direction {
        Direction::Bullish => high >= pool.level + pip,
        Direction::Bearish => low <= pool.level - pip,
    }
}

fn invalidated(pool: &Pool, now: BarIndex) -> SmcEvent {
    SmcEvent {
        row: pool.row,
        known_at: now,
        kind: SmcEventKind::LiquidityInvalidated {
            direction: pool.direction,
        },
    }
}

/// Emits the pool (and its sweep, if already seen) when it has two or more members.
fn announce(pool: &Pool, now: BarIndex, out: &mut Vec<SmcEvent>) {
    if !pool.visible() {
        return;
    }
    out.push(SmcEvent {
        row: pool.row,
        known_at: now,
        kind: SmcEventKind::LiquidityPool {
            direction: pool.direction,
            level: pool.sum / pool.members as f64,
            end: pool.end,
        },
    });
    if let Some(at) = pool.swept_at {
        out.push(SmcEvent {
            row: pool.row,
            known_at: now,
            kind: SmcEventKind::LiquiditySwept {
                direction: pool.direction,
                at,
            },
        });
    }
}
