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
//! bars are final. The *provisional* tail (after the newest swing, up to the current bar) is walked on
//! the same state, with every change it makes recorded in an undo log; while the swing list stays the
//! same the tail is continued by the new bar alone, and when it changes the log is rolled back (restoring
//! the settled state exactly, with no copy of it), the settled part advances and the tail is walked
//! again. The active blocks sit in short vectors sorted by the edge that would mitigate or delete them,
//! so a bar only looks at the blocks it reaches and an undo is a push or a removal. The blocks the walk
//! touched are compared with what was emitted before, and only the differences become events. At the
//! end of the data the emitted blocks are the reference's final blocks.
//!
//! With a bounded history ([`OrderBlockDetector::prune`]) the rows before the retained window are
//! forgotten: their blocks are neither mitigated nor deleted any more, and no event is emitted for them.
//!
//! Deliberate differences (`docs/smc-differences.md`): bullish `MitigatedIndex` is the mitigating bar
//! (the reference writes `i − 1`); prices are compared in f64, not against float32-rounded edges; the
//! one-candle case after the row-0 bookend keeps `top = high`, `bottom = low` (the reference swaps them);
//! bullish and bearish blocks have separate state (the reference shares breaker flags between its two
//! passes, which a causal detector cannot do); a block re-created on the same candle starts afresh.

use std::{cmp::Ordering, collections::VecDeque};

use super::{
    Bar, BarHistory, BarIndex, Direction, SmcEvent, SmcEventKind, Swing, SwingSide, swings::last_swing_before,
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
/// block's edges are its candle's high and low, so the key never changes while the row is listed.
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

/// Which sorted list: `(breakers?, direction slot)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ListId {
    breakers: bool,
    slot: usize,
}

/// One change made by a logged (provisional) step, with what it replaced.
#[derive(Debug, Clone, Copy)]
enum Undo {
    Block {
        row: BarIndex,
        slot: usize,
        old: Option<OrderBlock>,
    },
    Popped(ListId, Keyed),
    Pushed(ListId, Keyed),
}

/// The walk's state: the block table (one row per retained bar, from `base`), the active blocks per
/// direction, split into those not yet mitigated (keyed by the edge a mitigation crosses) and breakers
/// (keyed by the edge a run-through crosses), each sorted ascending so the next to react is last, and
/// the last swing each direction has crossed. An entry whose row no longer holds a block in that state
/// (re-created, mitigated or deleted since) is stale and dropped when it surfaces; its key equals any
/// live entry's of that row.
#[derive(Debug, Clone, Default)]
struct Walk {
    base: BarIndex,
    blocks: VecDeque<RowBlocks>,
    unmitigated: [Vec<Keyed>; 2],
    breakers: [Vec<Keyed>; 2],
    last_crossed: [Option<BarIndex>; 2],
    /// Changes of the provisional tail, oldest first; `None` while walking the settled part.
    logging: bool,
    undo: Vec<Undo>,
    touched: Vec<BarIndex>,
    /// Per direction, the last candle search. A pure function of the bars, so no part of the undo:
    /// a re-walk of the tail asks for the same swing again and only scans the bars it has not seen.
    candle_memo: [Option<CandleMemo>; 2],
    /// Where each provisionally walked bar starts in `undo`, oldest first.
    marks: Vec<Mark>,
}

/// The start of one provisionally walked bar in the undo log.
#[derive(Debug, Clone, Copy)]
struct Mark {
    bar: BarIndex,
    undo_len: usize,
    /// `last_crossed` before the bar.
    last_crossed: [Option<BarIndex>; 2],
}

/// The extreme candle of bars `swing_row + 1 .. upto`.
#[derive(Debug, Clone, Copy)]
struct CandleMemo {
    swing_row: BarIndex,
    upto: BarIndex,
    best: BarIndex,
    best_value: f64,
}

impl Walk {
    fn get(&self, row: BarIndex, direction: Direction) -> Option<OrderBlock> {
        let position = row.checked_sub(self.base)?;
        self.blocks.get(position)?[direction.slot()]
    }

    fn set(&mut self, row: BarIndex, direction: Direction, block: Option<OrderBlock>) {
        // A row before the retained window is forgotten: nothing is recorded for it any more.
        let Some(cell) = row
            .checked_sub(self.base)
            .and_then(|position| self.blocks.get_mut(position))
        else {
            return;
        };
        let slot = direction.slot();
        let old = std::mem::replace(&mut cell[slot], block);
        if self.logging {
            self.undo.push(Undo::Block { row, slot, old });
        }
        self.touched.push(row);
    }

    fn list(&mut self, id: ListId) -> &mut Vec<Keyed> {
        if id.breakers {
            &mut self.breakers[id.slot]
        } else {
            &mut self.unmitigated[id.slot]
        }
    }

    /// Removes and returns the last entry of `id` if its key is above `value`.
    fn pop_above(&mut self, id: ListId, value: f64) -> Option<Keyed> {
        let list = self.list(id);
        let entry = *list.last().filter(|entry| entry.key > value)?;
        list.pop();
        if self.logging {
            self.undo.push(Undo::Popped(id, entry));
        }
        Some(entry)
    }

    fn push(&mut self, id: ListId, entry: Keyed) {
        let list = self.list(id);
        let position = list.partition_point(|e| *e < entry);
        list.insert(position, entry);
        if self.logging {
            self.undo.push(Undo::Pushed(id, entry));
        }
    }

    /// The block candle for a crossing of the swing on `swing_row` at bar `i` (`i > swing_row + 1`):
    /// the lowest low between them (bullish) or the highest high (bearish), the last one on ties.
    fn extreme_candle(
        &mut self,
        direction: Direction,
        swing_row: BarIndex,
        i: BarIndex,
        bars: &BarHistory,
    ) -> BarIndex {
        let value = |bar: &Bar| match direction {
            Direction::Bullish => -bar.low,
            Direction::Bearish => bar.high,
        };
        let slot = direction.slot();
        let (mut best, mut best_value, from) = match self.candle_memo[slot] {
            Some(memo) if memo.swing_row == swing_row && memo.upto <= i => {
                (memo.best, memo.best_value, memo.upto)
            }
            _ => (swing_row + 1, value(bars.bar(swing_row + 1)), swing_row + 2),
        };
        for (k, bar) in (from..i).zip(bars.span(from, i)) {
            // `>=`: the last extreme wins ties (`-low >= -best_low` is `low <= best_low`).
            let v = value(bar);
            if v >= best_value {
                best = k;
                best_value = v;
            }
        }
        self.candle_memo[slot] = Some(CandleMemo {
            swing_row,
            upto: i,
            best,
            best_value,
        });
        best
    }

    /// Undoes every logged step (the whole provisional tail).
    fn roll_back(&mut self) {
        self.roll_back_to(0);
        self.marks.clear();
    }

    /// Undoes the provisional steps of the bars after `row` and returns `last_crossed` as it was
    /// before the first of them (`None` if the tail walked no bar after `row`).
    fn roll_back_after(&mut self, row: BarIndex) -> Option<[Option<BarIndex>; 2]> {
        let first = self.marks.partition_point(|mark| mark.bar <= row);
        let mark = *self.marks.get(first)?;
        self.roll_back_to(mark.undo_len);
        self.marks.truncate(first);
        Some(mark.last_crossed)
    }

    /// Undoes the logged steps from `len` on, newest first, and adds the rows they had changed to
    /// `touched`.
    fn roll_back_to(&mut self, len: usize) {
        while self.undo.len() > len {
            let Some(step) = self.undo.pop() else { break };
            match step {
                Undo::Block { row, slot, old } => {
                    if let Some(cell) = row
                        .checked_sub(self.base)
                        .and_then(|position| self.blocks.get_mut(position))
                    {
                        cell[slot] = old;
                    }
                    self.touched.push(row);
                }
                // The entry was the last (largest) one when popped, and everything after it has been
                // undone already, so it goes back at the end.
                Undo::Popped(id, entry) => self.list(id).push(entry),
                Undo::Pushed(id, entry) => {
                    let list = self.list(id);
                    let position = list.partition_point(|e| *e < entry);
                    if list.get(position) == Some(&entry) {
                        list.remove(position);
                    }
                }
            }
        }
    }
}

/// Detects order blocks from the swing list.
#[derive(Debug, Clone)]
pub struct OrderBlockDetector {
    close_mitigation: bool,
    walk: Walk,
    /// Bars `..settled_until` have been walked for good.
    settled_until: BarIndex,
    /// Bars `settled_until..walked_until` have been walked provisionally (logged).
    walked_until: BarIndex,
    /// `last_crossed` when the provisional walk started.
    tail_last_crossed: [Option<BarIndex>; 2],
    /// The swing list the tail was walked with: its length and newest row. Swings change only at the
    /// end (an append, or the newest one replaced by a later row), so this identifies it.
    tail_swings: Option<(usize, BarIndex)>,
    /// What was emitted per retained row (same `base` as the walk's table).
    emitted: VecDeque<RowBlocks>,
}

impl OrderBlockDetector {
    pub fn new(close_mitigation: bool) -> Self {
        Self {
            close_mitigation,
            walk: Walk::default(),
            settled_until: 0,
            walked_until: 0,
            tail_last_crossed: [None; 2],
            tail_swings: None,
            emitted: VecDeque::new(),
        }
    }

    pub fn reserve(&mut self, bars: usize) {
        self.walk.blocks.reserve(bars);
        self.emitted.reserve(bars);
    }

    /// The blocks as they stand after the last bar: `(row, block)`, oldest first.
    pub fn current(&self) -> impl Iterator<Item = (BarIndex, OrderBlock)> + '_ {
        let base = self.walk.base;
        self.emitted
            .iter()
            .enumerate()
            .flat_map(move |(position, blocks)| blocks.iter().flatten().map(move |b| (base + position, *b)))
    }

    /// Active entries (sorted lists, stale ones included) and table rows held now.
    pub fn held(&self) -> (usize, usize) {
        let listed = self
            .walk
            .unmitigated
            .iter()
            .chain(&self.walk.breakers)
            .map(Vec::len)
            .sum();
        (listed, self.walk.blocks.len())
    }

    /// Forgets every row before `base`. `bars` must still hold the bars from the current
    /// `settled_until` on, and `swings` is the swing list as it will be after the pruning (no swing
    /// before `base`): bars up to `base` are settled first, which is final because a later swing can
    /// only sit at or after `base`.
    pub fn prune(&mut self, base: BarIndex, bars: &BarHistory, swings: &[Swing]) {
        if base <= self.walk.base {
            return;
        }
        let close_mitigation = self.close_mitigation;
        if self.settled_until < base {
            let walk = &mut self.walk;
            walk.roll_back();
            walk.last_crossed = self.tail_last_crossed;
            walk.logging = false;
            for i in self.settled_until..base.min(bars.len()) {
                walk_bar(i, bars, swings, close_mitigation, walk);
            }
            self.tail_last_crossed = walk.last_crossed;
            self.settled_until = base;
            self.walked_until = base;
            self.tail_swings = None;
        }
        // The key names the list by its length: follow the dropped swings (a full undo otherwise).
        self.tail_swings = self
            .tail_swings
            .filter(|(_, row)| swings.last().is_some_and(|s| s.row == *row))
            .map(|(_, row)| (swings.len(), row));
        let drop = (base - self.walk.base).min(self.walk.blocks.len());
        self.walk.blocks.drain(..drop);
        self.emitted.drain(..drop.min(self.emitted.len()));
        self.walk.base = base;
        for list in self.walk.unmitigated.iter_mut().chain(&mut self.walk.breakers) {
            list.retain(|entry| entry.row >= base);
        }
        // The undo log keeps its steps (the marks index into it): a step on a forgotten row undoes
        // nothing that is still held, and a re-listed entry of a forgotten row is stale.
        self.walk.touched.clear();
    }

    pub fn on_bar(&mut self, bars: &BarHistory, swings: &[Swing], out: &mut Vec<SmcEvent>) {
        let Some(now) = bars.last_index() else {
            return;
        };
        let rows = now + 1 - self.walk.base;
        self.walk.blocks.resize(rows, [None, None]);
        self.emitted.resize(rows, [None, None]);
        let Some(newest) = swings.last() else {
            // No swing, no block: nothing can be walked yet (the row-0 bookend arrives with the first swing).
            return;
        };
        let close_mitigation = self.close_mitigation;
        let walk = &mut self.walk;
        walk.touched.clear();

        // The walk is deterministic in the bars and the swings. While the swing list stays the same,
        // the settled part does not move and the provisional tail walked on the previous bar is still
        // what a fresh walk from the settled state would give, so only the new bar is walked on top of
        // it. When the swings change, the tail is undone, the settled part advances and the tail is
        // walked again.
        let swings_key = (swings.len(), newest.row);
        if self.tail_swings != Some(swings_key) {
            // One swing appended after the one the tail was walked with: the bars up to the new swing
            // walked exactly as a settled walk would (a swing only matters to the bars after it), so
            // they are kept and become settled; only the bars after it are undone. Any other change
            // (the newest swing replaced, the first swings, a pruning) undoes the whole tail.
            let appended_one = self.tail_swings.is_some_and(|(len, row)| {
                swings.len() == len + 1 && swings[len - 1].row == row && self.walked_until > newest.row
            });
            self.tail_swings = Some(swings_key);
            if appended_one {
                if let Some(last_crossed) = walk.roll_back_after(newest.row) {
                    walk.last_crossed = last_crossed;
                }
                walk.undo.clear();
                walk.marks.clear();
            } else {
                // Rows the old tail wrote may now read differently: roll_back marks them touched.
                walk.roll_back();
                walk.last_crossed = self.tail_last_crossed;
                walk.logging = false;
                for i in self.settled_until..=newest.row {
                    walk_bar(i, bars, swings, close_mitigation, walk);
                }
            }
            self.settled_until = self.settled_until.max(newest.row + 1);
            self.walked_until = self.settled_until;
            self.tail_last_crossed = walk.last_crossed;
        }
        walk.logging = true;
        for i in self.walked_until..=now {
            walk.marks.push(Mark {
                bar: i,
                undo_len: walk.undo.len(),
                last_crossed: walk.last_crossed,
            });
            walk_bar(i, bars, swings, close_mitigation, walk);
        }
        self.walked_until = self.walked_until.max(now + 1);
        if walk.touched.is_empty() {
            return;
        }
        walk.touched.sort_unstable();
        walk.touched.dedup();

        let base = walk.base;
        for &row in &walk.touched {
            let Some(position) = row.checked_sub(base).filter(|p| *p < rows) else {
                continue;
            };
            for direction in Direction::BOTH {
                let now_block = walk.blocks[position][direction.slot()];
                let before = self.emitted[position][direction.slot()];
                emit_difference(row, now, direction, before, now_block, out);
                self.emitted[position][direction.slot()] = now_block;
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
fn walk_bar(i: BarIndex, bars: &BarHistory, swings: &[Swing], close_mitigation: bool, state: &mut Walk) {
    let bar = bars.bar(i);
    for direction in Direction::BOTH {
        let slot = direction.slot();
        let breakers = ListId { breakers: true, slot };
        let unmitigated = ListId {
            breakers: false,
            slot,
        };
        // Breakers that price runs through (first, so a block mitigated on this bar is not checked).
        let run_through_value = match direction {
            Direction::Bullish => -bar.high,
            Direction::Bearish => bar.low,
        };
        while let Some(entry) = state.pop_above(breakers, run_through_value) {
            if state.get(entry.row, direction).is_some_and(|b| b.breaker) {
                state.set(entry.row, direction, None);
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
        while let Some(entry) = state.pop_above(unmitigated, mitigation_value) {
            if let Some(mut block) = state.get(entry.row, direction)
                && !block.breaker
            {
                block.breaker = true;
                block.mitigated_at = Some(i);
                state.set(entry.row, direction, Some(block));
                state.push(
                    breakers,
                    Keyed {
                        key: breaker_key(direction, &block),
                        row: entry.row,
                    },
                );
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
            state.extreme_candle(direction, swing.row, i, bars)
        } else {
            i - 1
        };
        let volume_at = |k: Option<BarIndex>| k.and_then(|k| bars.get(k)).map_or(0.0, |b| b.volume);
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
        state.set(candle, direction, Some(block));
        state.push(
            unmitigated,
            Keyed {
                key: match direction {
                    Direction::Bullish => block.bottom,
                    Direction::Bearish => -block.top,
                },
                row: candle,
            },
        );
    }
}

/// The run-through key of a breaker: bullish blocks go when `high > top`, bearish when `low < bottom`.
fn breaker_key(direction: Direction, block: &OrderBlock) -> f64 {
    match direction {
        Direction::Bullish => -block.top,
        Direction::Bearish => block.bottom,
    }
}
