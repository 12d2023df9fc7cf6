//! The virtual position book: every open position, the mark prices, funding, and the scheduler.
//!
//! Positions live in a slab (`Vec` of slots with a generation, reused through a free list), so the
//! scheduler refers to them by `(slot, generation)` and a check touches no hash map. Mark prices fan
//! out through a per-symbol list of slots. Closed positions leave the slab at once; their stale
//! scheduler entries are recognised by the generation and dropped when popped.
//!
//! Two clocks: **monitoring time** (milliseconds of a monotonic clock) decides when checks are due;
//! **market time** (the mark stream's event time) stamps events, expiries and funding, so a replay at
//! any speed produces the same events at the same market times.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{
    PositionsError,
    events::{CloseReason, EventKind, LifecycleEvent, PositionId, RiskLevel},
    position::{Bands, Exit, Fees, NewPosition, Position},
    scheduler::{Lane, LaneStats, MonitorMs, Scheduler},
};
use crate::{
    domain::{SymbolId, TimestampMs},
    risk::Refusal,
};

/// Book settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BookConfig {
    /// `MAX_POSITIONS`.
    pub max_positions: usize,
    pub fees: Fees,
    pub bands: Bands,
    /// `ENABLE_SMART_MONITORING`; off → every position every second.
    pub smart_monitoring: bool,
}

impl Default for BookConfig {
    fn default() -> Self {
        Self {
            max_positions: 999,
            fees: Fees::default(),
            bands: Bands::default(),
            smart_monitoring: true,
        }
    }
}

/// The latest mark-price state of a symbol.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MarkState {
    pub mark: f64,
    pub funding_rate: f64,
    pub next_funding_time: TimestampMs,
    pub event_time: TimestampMs,
}

/// A funding settlement seen on the mark stream and not yet applied.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Settlement {
    time: TimestampMs,
    rate: f64,
    mark: f64,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    generation: u32,
    position: Option<Position>,
}

/// Totals since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct BookTotals {
    pub opened: u64,
    pub closed: u64,
    pub wins: u64,
    pub realised_pnl: f64,
    pub fees: f64,
    pub funding: f64,
    pub checks: u64,
}

/// The book. See the module docs.
#[derive(Debug, Clone)]
pub struct PositionBook {
    config: BookConfig,
    slots: Vec<Slot>,
    free: Vec<u32>,
    ids: HashMap<PositionId, u32>,
    by_symbol: HashMap<SymbolId, Vec<u32>>,
    marks: HashMap<SymbolId, MarkState>,
    settlements: Vec<(SymbolId, Settlement)>,
    scheduler: Scheduler,
    next_id: u64,
    open: usize,
    totals: BookTotals,
}

impl PositionBook {
    pub fn new(config: BookConfig) -> Self {
        Self {
            config,
            slots: Vec::new(),
            free: Vec::new(),
            ids: HashMap::new(),
            by_symbol: HashMap::new(),
            marks: HashMap::new(),
            settlements: Vec::new(),
            scheduler: Scheduler::new(),
            next_id: 1,
            open: 0,
            totals: BookTotals::default(),
        }
    }

    pub fn config(&self) -> &BookConfig {
        &self.config
    }

    pub fn len(&self) -> usize {
        self.open
    }

    pub fn is_empty(&self) -> bool {
        self.open == 0
    }

    pub fn totals(&self) -> BookTotals {
        self.totals
    }

    pub fn mark(&self, symbol: SymbolId) -> Option<&MarkState> {
        self.marks.get(&symbol)
    }

    pub fn get(&self, id: PositionId) -> Option<&Position> {
        let slot = *self.ids.get(&id)?;
        self.slots[slot as usize].position.as_ref()
    }

    /// Open positions, in slot order.
    pub fn positions(&self) -> impl Iterator<Item = &Position> {
        self.slots.iter().filter_map(|s| s.position.as_ref())
    }

    /// Is a position on this symbol and side open?
    pub fn has_open(&self, symbol: SymbolId, side: crate::domain::Side) -> bool {
        self.by_symbol.get(&symbol).is_some_and(|slots| {
            slots.iter().any(|s| {
                self.slots[*s as usize]
                    .position
                    .as_ref()
                    .is_some_and(|p| p.side == side)
            })
        })
    }

    /// Unrealised P&L of every open position (fees of a market exit and funding included).
    pub fn unrealised_pnl(&self) -> f64 {
        let fees = self.config.fees;
        self.positions().map(|p| p.unrealised_pnl(&fees)).sum()
    }

    /// Opens a position at market time `at`; its first check is due one lane interval after `now`.
    pub fn open(
        &mut self,
        new: &NewPosition,
        now: MonitorMs,
        at: TimestampMs,
        out: &mut Vec<LifecycleEvent>,
    ) -> Result<PositionId, Refusal> {
        if self.open >= self.config.max_positions {
            return Err(Refusal::MaxPositions);
        }
        let id = PositionId(self.next_id);
        self.next_id += 1;
        let smart = self.config.smart_monitoring;
        let mut position = Position::open(
            id,
            new,
            &self.config.fees,
            at,
            Lane::for_level(RiskLevel::Low, smart),
        );
        if let Some(m) = self.marks.get(&new.symbol) {
            position.funded_through = at.max(m.event_time);
        }
        position.last_check = now;
        let lane = position.lane;
        let slot = if let Some(slot) = self.free.pop() {
            slot
        } else {
            self.slots.push(Slot::default());
            (self.slots.len() - 1) as u32
        };
        let entry = &mut self.slots[slot as usize];
        entry.generation = entry.generation.wrapping_add(1);
        let generation = entry.generation;
        out.push(LifecycleEvent {
            position: id,
            symbol: new.symbol,
            side: new.side,
            at,
            kind: EventKind::Created {
                side: new.side,
                qty: new.qty,
                entry: new.entry,
                leverage: new.leverage,
                take_profit: new.take_profit,
                stop_loss: new.stop_loss,
                liquidation: new.liquidation,
            },
        });
        self.totals.fees += position.entry_fee;
        entry.position = Some(position);
        self.ids.insert(id, slot);
        self.by_symbol.entry(new.symbol).or_default().push(slot);
        self.scheduler.enter(lane);
        self.scheduler.schedule(slot, generation, lane, now);
        self.open += 1;
        self.totals.opened += 1;
        Ok(id)
    }

    /// Puts back a position restored from the journal after a restart. No `Created` event: it was
    /// emitted (and journalled) when the position opened. The lane follows the restored risk level and
    /// the first check is due at once (the position went unwatched while the process was down); checks
    /// evaluate the range from the last mark journalled to the marks seen since, so a level crossed
    /// meanwhile still fires. New positions are numbered after its id.
    /// Refused when the book is full or the id is already on it.
    pub fn restore(&mut self, mut position: Position, now: MonitorMs) -> Result<(), Refusal> {
        if self.open >= self.config.max_positions {
            return Err(Refusal::MaxPositions);
        }
        if self.ids.contains_key(&position.id) {
            return Err(Refusal::AlreadyOpen);
        }
        let lane = Lane::for_level(position.level, self.config.smart_monitoring);
        position.lane = lane;
        position.last_check = now;
        self.next_id = self.next_id.max(position.id.0.saturating_add(1));
        let slot = if let Some(slot) = self.free.pop() {
            slot
        } else {
            self.slots.push(Slot::default());
            (self.slots.len() - 1) as u32
        };
        let entry = &mut self.slots[slot as usize];
        entry.generation = entry.generation.wrapping_add(1);
        let generation = entry.generation;
        self.ids.insert(position.id, slot);
        self.by_symbol.entry(position.symbol).or_default().push(slot);
        entry.position = Some(position);
        self.scheduler.enter(lane);
        // Due now: `schedule` adds one interval (and keeps the lane sorted).
        self.scheduler
            .schedule(slot, generation, lane, now - lane.interval_ms());
        self.open += 1;
        Ok(())
    }

    /// Numbers new positions after `n` (the largest id a journal has seen), so a restarted book never
    /// reuses the id of a position journalled before.
    pub fn number_after(&mut self, n: u64) {
        self.next_id = self.next_id.max(n.saturating_add(1));
    }

    /// A mark price from the stream: extends the price range of every position of the symbol, and
    /// notes a funding settlement when the stream's funding time has passed.
    pub fn on_mark(
        &mut self,
        symbol: SymbolId,
        mark: f64,
        funding_rate: f64,
        next_funding_time: TimestampMs,
        at: TimestampMs,
    ) {
        if !(mark.is_finite() && mark > 0.0) {
            return;
        }
        let state = MarkState {
            mark,
            funding_rate,
            next_funding_time,
            event_time: at,
        };
        if let Some(prev) = self.marks.insert(symbol, state)
            && prev.next_funding_time > 0
            && at >= prev.next_funding_time
        {
            // The rate in force before the settlement is the one charged at it.
            self.settlements.push((
                symbol,
                Settlement {
                    time: prev.next_funding_time,
                    rate: prev.funding_rate,
                    mark,
                },
            ));
        }
        if let Some(slots) = self.by_symbol.get(&symbol) {
            for slot in slots {
                if let Some(p) = self.slots[*slot as usize].position.as_mut() {
                    p.observe(mark);
                }
            }
        }
    }

    /// Checks every position due at monitoring time `now`; market time `at` stamps the events.
    /// Returns the number of checks done.
    pub fn run_due(&mut self, now: MonitorMs, at: TimestampMs, out: &mut Vec<LifecycleEvent>) -> usize {
        let mut checks = 0;
        let bands = self.config.bands;
        let smart = self.config.smart_monitoring;
        while let Some(due) = self.scheduler.pop_due(now) {
            let slot = &mut self.slots[due.slot as usize];
            if slot.generation != due.generation {
                continue;
            }
            let Some(p) = slot.position.as_mut() else { continue };
            checks += 1;
            self.scheduler.record_check(due.lane, due.due, now);
            p.last_check = now;
            if let Some(exit) = p.check(at, &bands, out) {
                self.close_slot(due.slot, exit, at, out);
            } else {
                let lane = Lane::for_level(p.level, smart);
                if lane != p.lane {
                    self.scheduler.leave(p.lane);
                    self.scheduler.enter(lane);
                    p.lane = lane;
                }
                self.scheduler.schedule(due.slot, due.generation, lane, now);
            }
        }
        self.totals.checks += checks as u64;
        checks
    }

    /// Closes a position at the symbol's mark (or its entry if no mark arrived yet).
    pub fn close(
        &mut self,
        id: PositionId,
        reason: CloseReason,
        at: TimestampMs,
        out: &mut Vec<LifecycleEvent>,
    ) -> Result<(), PositionsError> {
        let slot = *self.ids.get(&id).ok_or(PositionsError::UnknownPosition(id))?;
        let price = self.slots[slot as usize]
            .position
            .as_ref()
            .map_or(0.0, |p| p.mark);
        self.close_slot(slot, Exit { reason, price }, at, out);
        Ok(())
    }

    /// Live execution: the venue filled the entry at `entry` for `qty` (slippage, a partial fill).
    /// The position takes the real numbers; its entry fee is recomputed at the taker rate.
    pub fn apply_fill(&mut self, id: PositionId, qty: f64, entry: f64) -> Result<(), PositionsError> {
        let slot = *self.ids.get(&id).ok_or(PositionsError::UnknownPosition(id))?;
        let taker = self.config.fees.taker;
        let Some(p) = self.slots[slot as usize].position.as_mut() else {
            return Err(PositionsError::UnknownPosition(id));
        };
        if qty > 0.0 && entry > 0.0 {
            let fee = qty * entry * taker;
            self.totals.fees += fee - p.entry_fee;
            p.entry_fee = fee;
            p.qty = qty;
            p.entry = entry;
        }
        Ok(())
    }

    /// Closes every open position (breaker Flatten, kill switch, shutdown of a replay).
    pub fn close_all(
        &mut self,
        reason: CloseReason,
        at: TimestampMs,
        out: &mut Vec<LifecycleEvent>,
    ) -> usize {
        let ids: Vec<PositionId> = self.positions().map(|p| p.id).collect();
        for id in &ids {
            // Every id was just read from the book.
            let _ = self.close(*id, reason, at, out);
        }
        ids.len()
    }

    /// Closes positions whose expiry has passed at market time `at`.
    pub fn expire(&mut self, at: TimestampMs, out: &mut Vec<LifecycleEvent>) -> usize {
        let due: Vec<(u32, f64, PositionId, SymbolId, crate::domain::Side)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.position.as_ref().map(|p| (i as u32, p)))
            .filter(|(_, p)| p.expires_at <= at)
            .map(|(i, p)| (i, p.mark, p.id, p.symbol, p.side))
            .collect();
        for (slot, mark, position, symbol, side) in &due {
            out.push(LifecycleEvent {
                position: *position,
                symbol: *symbol,
                side: *side,
                at,
                kind: EventKind::Expired { mark: *mark },
            });
            self.close_slot(
                *slot,
                Exit {
                    reason: CloseReason::Expiry,
                    price: *mark,
                },
                at,
                out,
            );
        }
        due.len()
    }

    /// Applies the funding settlements seen on the mark stream: each position open at the funding
    /// time pays (rate > 0 for a long) or receives `qty × mark × rate`. Returns the settlements made.
    pub fn apply_funding(&mut self) -> usize {
        let mut applied = 0;
        for (symbol, s) in std::mem::take(&mut self.settlements) {
            let Some(slots) = self.by_symbol.get(&symbol) else {
                continue;
            };
            for slot in slots {
                let Some(p) = self.slots[*slot as usize].position.as_mut() else {
                    continue;
                };
                if p.opened_at < s.time && p.funded_through < s.time {
                    let sign = match p.side {
                        crate::domain::Side::Long => 1.0,
                        crate::domain::Side::Short => -1.0,
                    };
                    let amount = -sign * p.qty * s.mark * s.rate;
                    p.funding += amount;
                    p.funded_through = s.time;
                    self.totals.funding += amount;
                    applied += 1;
                }
            }
        }
        applied
    }

    fn close_slot(&mut self, slot: u32, exit: Exit, at: TimestampMs, out: &mut Vec<LifecycleEvent>) {
        let Some(p) = self.slots[slot as usize].position.take() else {
            return;
        };
        self.free.push(slot);
        self.ids.remove(&p.id);
        if let Some(list) = self.by_symbol.get_mut(&p.symbol) {
            list.retain(|s| *s != slot);
            if list.is_empty() {
                self.by_symbol.remove(&p.symbol);
            }
        }
        self.scheduler.leave(p.lane);
        self.open -= 1;
        let exit_fee = p.qty * exit.price * self.config.fees.exit_rate(exit.reason);
        let fees = p.entry_fee + exit_fee;
        let pnl = p.gross_pnl(exit.price) - fees + p.funding;
        self.totals.closed += 1;
        self.totals.wins += u64::from(pnl > 0.0);
        self.totals.realised_pnl += pnl;
        self.totals.fees += exit_fee;
        out.push(LifecycleEvent {
            position: p.id,
            symbol: p.symbol,
            side: p.side,
            at,
            kind: EventKind::Closed {
                reason: exit.reason,
                exit_price: exit.price,
                pnl,
                fees,
                funding: p.funding,
                r_multiple: p.r_multiple(pnl),
            },
        });
    }

    /// The scheduler (for its panel figures).
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// Per-lane figures for the scheduler panel.
    pub fn lane_stats(&self, now: MonitorMs) -> Vec<LaneStats> {
        self.scheduler.stats(now, self.config.smart_monitoring)
    }

    /// Heap bytes the book holds (slab, indexes, scheduler), for the memory figure.
    pub fn heap_bytes(&self) -> usize {
        let map_entry = |k: usize, v: usize| k + v + 8; // key, value, hashbrown control byte + padding
        self.slots.capacity() * size_of::<Slot>()
            + self.free.capacity() * 4
            + self.ids.capacity() * map_entry(size_of::<PositionId>(), 4)
            + self.by_symbol.capacity() * map_entry(size_of::<SymbolId>(), size_of::<Vec<u32>>())
            + self.by_symbol.values().map(|v| v.capacity() * 4).sum::<usize>()
            + self.marks.capacity() * map_entry(size_of::<SymbolId>(), size_of::<MarkState>())
            + self.scheduler.heap_bytes()
    }
}

#[cfg(test)]
mod tests;
