//! Order blocks: the last opposite candle before a close through a swing, their mitigation (breaker) and
//! their invalidation.
//!
//! The reference (SPEC §2.4) walks every bar `i`: it updates the active blocks (a block becomes a
//! breaker when price trades through it; a breaker is deleted when price then runs through its far
//! side), then, if the close crosses the newest swing before `i` that has not been crossed yet, it puts a
//! block on the lowest-low candle between the swing and `i` (bullish; the highest high for bearish).
//!
//! The reference uses the *final* swings, some of which are confirmed only after the crossing bar. So
//! this detector keeps two states. The *settled* state has processed every bar up to the newest swing's
//! row: swings before that row can no longer change (only the newest swing can be replaced), so those
//! bars are final. The *provisional* tail (after the newest swing, up to the current bar) is walked from
//! a copy of the settled state into a small overlay; it is re-derived only when the swing list changes,
//! and otherwise continued by the new bar alone. The active blocks sit in heaps keyed by the edge that
//! would mitigate or delete them, so a bar only looks at the blocks it reaches. The blocks the walk
//! touched are compared with what was emitted before, and only the differences become events. At the
//! end of the data the emitted blocks are the reference's final blocks.
//!
//! Deliberate differences (`docs/smc-differences.md`): bullish `MitigatedIndex` is the mitigating bar
//! (the reference writes `i − 1`); prices are compared in f64, not against float32-rounded edges; the
//! one-candle case after the row-0 bookend keeps `top = high`, `bottom = low` (the reference swaps them);
//! bullish and bearish blocks have separate state (the reference shares breaker flags between its two
//! passes, which a causal detector cannot do); a block re-created on the same candle starts afresh.

use std::{cmp::Ordering, collections::BinaryHeap};

use super::{
    BarHistory, BarIndex, Direction, SmcEvent, SmcEventKind, Swing, SwingSide, swings::last_swing_before,
};

/// One order block as it stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrderBlock {
    pub direction: Direction,
    pub top: f64,
    pub bottom: f64,
    /// Volume of the crossing bar and the two before it.
    pub volume: f64,
    /// `min/max × 100` of the two parts of `volume` (100 when both are 0).
    pub volume_percentage: f64,
    pub mitigated_at: Option<BarIndex>,
    /// Mitigated: from now on price running through the far side deletes it.
    breaker: bool,
}

impl OrderBlock {
    fn same_creation(&self, other: &Self) -> bool {
        self.direction == other.direction
            && self.top == other.top
            && self.bottom == other.bottom
            && self.volume == other.volume
            && self.volume_percentage == other.volume_percentage
    }
}

type RowBlocks = [Option<OrderBlock>; 2];

/// An active block's row under a trigger key: the block reacts to a bar when `key > value(bar)`. A
/// block's edges are its candle's high and low, so the key never changes while the row is in a heap.
#[derive(Debug, Clone, Copy)]
struct Keyed {
    key: f64,
    row: BarIndex,
}

impl PartialEq for Keyed {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Keyed {}

impl PartialOrd for Keyed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Keyed {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.total_cmp(&other.key).then(self.row.cmp(&other.row))
    }
}

/// State of the walk besides the block table: the active blocks per direction, split into those not yet
/// mitigated (keyed by the edge a mitigation crosses) and breakers (keyed by the edge a run-through
/// crosses), and the last swing each direction has crossed. Only the blocks a bar actually reaches are
/// looked at. An entry whose row no longer holds a block in that state (re-created, mitigated or
/// deleted since) is stale and dropped when it surfaces; its key equals any live entry's of that row.
#[derive(Debug, Clone, Default)]
struct WalkState {
    unmitigated: [BinaryHeap<Keyed>; 2],
    breakers: [BinaryHeap<Keyed>; 2],
    last_crossed: [Option<BarIndex>; 2],
}

impl WalkState {
    fn clone_from_state(&mut self, other: &Self) {
        for slot in 0..2 {
            self.unmitigated[slot].clone_from(&other.unmitigated[slot]);
            self.breakers[slot].clone_from(&other.breakers[slot]);
        }
        self.last_crossed = other.last_crossed;
    }
}

/// Where the walk reads and writes blocks: straight into the settled table, or into an overlay on it.
trait BlockStore {
    fn get(&self, row: BarIndex, direction: Direction) -> Option<OrderBlock>;
    fn set(&mut self, row: BarIndex, direction: Direction, block: Option<OrderBlock>);
}

struct Settled<'a> {
    blocks: &'a mut [RowBlocks],
    touched: &'a mut Vec<BarIndex>,
}

impl BlockStore for Settled<'_> {
    fn get(&self, row: BarIndex, direction: Direction) -> Option<OrderBlock> {
        self.blocks[row][direction.slot()]
    }

    fn set(&mut self, row: BarIndex, direction: Direction, block: Option<OrderBlock>) {
        self.blocks[row][direction.slot()] = block;
        self.touched.push(row);
    }
}

struct Overlay<'a> {
    base: &'a [RowBlocks],
    entries: &'a mut Vec<(BarIndex, Direction, Option<OrderBlock>)>,
    touched: &'a mut Vec<BarIndex>,
}

impl BlockStore for Overlay<'_> {
    fn get(&self, row: BarIndex, direction: Direction) -> Option<OrderBlock> {
        lookup(self.base, self.entries, row, direction)
    }

    fn set(&mut self, row: BarIndex, direction: Direction, block: Option<OrderBlock>) {
        self.touched.push(row);
        if let Some(entry) = self
            .entries
            .iter_mut()
            .find(|(r, d, _)| *r == row && *d == direction)
        {
            entry.2 = block;
        } else {
            self.entries.push((row, direction, block));
        }
    }
}

fn lookup(
    base: &[RowBlocks],
    entries: &[(BarIndex, Direction, Option<OrderBlock>)],
    row: BarIndex,
    direction: Direction,
) -> Option<OrderBlock> {
    entries
        .iter()
        .find(|(r, d, _)| *r == row && *d == direction)
        .map_or(base[row][direction.slot()], |entry| entry.2)
}

/// Detects order blocks from the swing list.
#[derive(Debug, Clone)]
pub struct OrderBlockDetector {
    close_mitigation: bool,
    settled_blocks: Vec<RowBlocks>,
    settled_state: WalkState,
    /// Bars `0..settled_until` have been walked into the settled state.
    settled_until: BarIndex,
    scratch_state: WalkState,
    overlay: Vec<(BarIndex, Direction, Option<OrderBlock>)>,
    /// Bars `settled_until..scratch_until` have been walked into the scratch state and the overlay.
    scratch_until: BarIndex,
    /// The swing list the scratch state was walked with: its length and newest row. Swings change only
    /// at the end (an append, or the newest one replaced by a later row), so this identifies it.
    scratch_swings: Option<(usize, BarIndex)>,
    touched: Vec<BarIndex>,
    emitted: Vec<RowBlocks>,
}

impl OrderBlockDetector {
    pub fn new(close_mitigation: bool) -> Self {
        Self {
            close_mitigation,
            settled_blocks: Vec::new(),
            settled_state: WalkState::default(),
            settled_until: 0,
            scratch_state: WalkState::default(),
            overlay: Vec::new(),
            scratch_until: 0,
            scratch_swings: None,
            touched: Vec::new(),
            emitted: Vec::new(),
        }
    }

    pub fn reserve(&mut self, bars: usize) {
        self.settled_blocks.reserve(bars);
        self.emitted.reserve(bars);
    }

    /// The blocks as they stand after the last bar: `(row, block)`, oldest first.
    pub fn current(&self) -> impl Iterator<Item = (BarIndex, OrderBlock)> + '_ {
        self.emitted
            .iter()
            .enumerate()
            .flat_map(|(row, blocks)| blocks.iter().flatten().map(move |b| (row, *b)))
    }

    pub fn on_bar(&mut self, bars: &BarHistory, swings: &[Swing], out: &mut Vec<SmcEvent>) {
        let Some(now) = bars.last_index() else {
            return;
        };
        self.settled_blocks.resize(now + 1, [None, None]);
        self.emitted.resize(now + 1, [None, None]);
        let Some(newest) = swings.last() else {
            // No swing, no block: nothing can be walked yet (the row-0 bookend arrives with the first swing).
            return;
        };
        let close_mitigation = self.close_mitigation;
        self.touched.clear();

        // The walk is deterministic in the bars and the swings. While the swing list stays the same,
        // the settled part does not move and the provisional tail walked on the previous bar is still
        // what a fresh walk from the settled state would give, so only the new bar is walked on top of
        // it. When the swings change, the settled part advances and the tail is re-derived.
        let swings_key = (swings.len(), newest.row);
        if self.scratch_swings != Some(swings_key) {
            self.scratch_swings = Some(swings_key);
            // Rows the old overlay wrote may now read differently: compare them all.
            self.touched.extend(self.overlay.iter().map(|(row, _, _)| *row));
            let mut settled = Settled {
                blocks: &mut self.settled_blocks,
                touched: &mut self.touched,
            };
            for i in self.settled_until..=newest.row {
                walk_bar(
                    i,
                    bars,
                    swings,
                    close_mitigation,
                    &mut self.settled_state,
                    &mut settled,
                );
            }
            self.settled_until = self.settled_until.max(newest.row + 1);

            self.scratch_state.clone_from_state(&self.settled_state);
            self.overlay.clear();
            self.scratch_until = self.settled_until;
        }
        let mut overlay = Overlay {
            base: &self.settled_blocks,
            entries: &mut self.overlay,
            touched: &mut self.touched,
        };
        for i in self.scratch_until..=now {
            walk_bar(
                i,
                bars,
                swings,
                close_mitigation,
                &mut self.scratch_state,
                &mut overlay,
            );
        }
        self.scratch_until = self.scratch_until.max(now + 1);
        self.touched.sort_unstable();
        self.touched.dedup();

        for &row in &self.touched {
            for direction in Direction::BOTH {
                let now_block = lookup(&self.settled_blocks, &self.overlay, row, direction);
                let before = self.emitted[row][direction.slot()];
                emit_difference(row, now, direction, before, now_block, out);
                self.emitted[row][direction.slot()] = now_block;
            }
        }
    }
}

fn emit_difference(
    row: BarIndex,
    now: BarIndex,
    direction: Direction,
    before: Option<OrderBlock>,
    after: Option<OrderBlock>,
    out: &mut Vec<SmcEvent>,
) {
    let event = |kind| SmcEvent {
        row,
        known_at: now,
        kind,
    };
    let create = |out: &mut Vec<SmcEvent>, block: OrderBlock| {
        out.push(event(SmcEventKind::OrderBlock {
            direction,
            top: block.top,
            bottom: block.bottom,
            volume: block.volume,
            volume_percentage: block.volume_percentage,
        }));
        if let Some(at) = block.mitigated_at {
            out.push(event(SmcEventKind::OrderBlockMitigated { direction, at }));
        }
    };
    match (before, after) {
        (None, None) => {}
        (None, Some(block)) => create(out, block),
        (Some(_), None) => out.push(event(SmcEventKind::OrderBlockInvalidated { direction })),
        (Some(old), Some(new)) => {
            if old.same_creation(&new) && old.mitigated_at == new.mitigated_at {
                return;
            }
            if old.same_creation(&new)
                && old.mitigated_at.is_none()
                && let Some(at) = new.mitigated_at
            {
                out.push(event(SmcEventKind::OrderBlockMitigated { direction, at }));
                return;
            }
            out.push(event(SmcEventKind::OrderBlockInvalidated { direction }));
            create(out, new);
        }
    }
}

/// The reference's per-bar step for both directions.
fn walk_bar(
    i: BarIndex,
    bars: &BarHistory,
    swings: &[Swing],
    close_mitigation: bool,
    state: &mut WalkState,
    store: &mut impl BlockStore,
) {
    let bar = bars.bar(i);
    for direction in Direction::BOTH {
        let slot = direction.slot();
        // Breakers that price runs through (first, so a block mitigated on this bar is not checked).
        let run_through_value = match direction {
            Direction::Bullish => -bar.high,
            Direction::Bearish => bar.low,
        };
        while let Some(&entry) = state.breakers[slot].peek()
            && entry.key > run_through_value
        {
            state.breakers[slot].pop();
            if store.get(entry.row, direction).is_some_and(|b| b.breaker) {
                store.set(entry.row, direction, None);
            }
        }
        let mitigation_value = match direction {
            Direction::Bullish => {
                if close_mitigation {
                    bar.open.min(bar.close)
                } else {
                    bar.low
                }
            }
            Direction::Bearish => {
                -(if close_mitigation {
                    bar.open.max(bar.close)
                } else {
                    bar.high
                })
            }
        };
        while let Some(&entry) = state.unmitigated[slot].peek()
            && entry.key > mitigation_value
        {
            state.unmitigated[slot].pop();
            if let Some(mut block) = store.get(entry.row, direction)
                && !block.breaker
            {
                block.breaker = true;
                block.mitigated_at = Some(i);
                store.set(entry.row, direction, Some(block));
                state.breakers[slot].push(Keyed {
                    key: breaker_key(direction, &block),
                    row: entry.row,
                });
            }
        }

        let side = match direction {
            Direction::Bullish => SwingSide::High,
            Direction::Bearish => SwingSide::Low,
        };
        let Some(swing) = last_swing_before(swings, i, side) else {
            continue;
        };
        let crosses = match direction {
            Direction::Bullish => bar.close > swing.level,
            Direction::Bearish => bar.close < swing.level,
        };
        if !crosses || state.last_crossed[slot] == Some(swing.row) {
            continue;
        }
        state.last_crossed[slot] = Some(swing.row);
        let candle = if i - swing.row > 1 {
            let between = swing.row + 1..i;
            match direction {
                // The lowest low, the last one on ties.
                Direction::Bullish => between.reduce(|best, k| {
                    if bars.bar(k).low <= bars.bar(best).low {
                        k
                    } else {
                        best
                    }
                }),
                Direction::Bearish => between.reduce(|best, k| {
                    if bars.bar(k).high >= bars.bar(best).high {
                        k
                    } else {
                        best
                    }
                }),
            }
            .unwrap_or(i - 1)
        } else {
            i - 1
        };
        let volume_at = |k: Option<BarIndex>| k.map_or(0.0, |k| bars.bar(k).volume);
        let recent = bar.volume + volume_at(i.checked_sub(1));
        let older = volume_at(i.checked_sub(2));
        let largest = recent.max(older);
        let block = OrderBlock {
            direction,
            top: bars.bar(candle).high,
            bottom: bars.bar(candle).low,
            volume: recent + older,
            volume_percentage: if largest == 0.0 {
                100.0
            } else {
                recent.min(older) / largest * 100.0
            },
            mitigated_at: None,
            breaker: false,
        };
        store.set(candle, direction, Some(block));
        state.unmitigated[slot].push(Keyed {
            key: match direction {
                Direction::Bullish => block.bottom,
                Direction::Bearish => -block.top,
            },
            row: candle,
        });
    }
}

/// The run-through key of a breaker: bullish blocks go when `high > top`, bearish when `low < bottom`.
fn breaker_key(direction: Direction, block: &OrderBlock) -> f64 {
    match direction {
        Direction::Bullish => -block.top,
        Direction::Bearish => block.bottom,
    }
}
