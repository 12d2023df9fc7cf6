//! The smart monitoring scheduler: when each open position is checked next.
//!
//! A position's risk score (ARCHITECTURE.md §4) puts it in one of four lanes — 100 ms, 500 ms, 2 s,
//! 5 s — and it is rescheduled in the lane of its new score after every check; with
//! `ENABLE_SMART_MONITORING=false` every position sits in one fixed 1 s lane. Because every entry of
//! a lane has the same interval and the monitoring clock only moves forward, entries join a lane in
//! due-time order, so each lane is a FIFO queue: insert and pop are O(1) and the next due entry
//! overall is the earliest of five queue fronts. (A binary heap would be O(log n); a timer wheel would
//! need a tick resolution. The measured figures are in `benches/BENCHMARKS.md`.)
//!
//! Entries are not removed when a position closes: the book checks each popped entry's slot
//! generation and drops stale ones, so a close costs nothing here beyond a lane counter.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::events::RiskLevel;

/// Monitoring-clock milliseconds (monotonic, not market time).
pub type MonitorMs = i64;

/// A monitoring lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lane {
    Ms100,
    Ms500,
    S2,
    S5,
    /// Smart monitoring off: everything every second.
    Fixed1s,
}

impl Lane {
    pub const ALL: [Lane; 5] = [Self::Ms100, Self::Ms500, Self::S2, Self::S5, Self::Fixed1s];

    pub fn interval_ms(self) -> MonitorMs {
        match self {
            Self::Ms100 => 100,
            Self::Ms500 => 500,
            Self::S2 => 2_000,
            Self::S5 => 5_000,
            Self::Fixed1s => 1_000,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Ms100 => "100ms",
            Self::Ms500 => "500ms",
            Self::S2 => "2s",
            Self::S5 => "5s",
            Self::Fixed1s => "1s",
        }
    }

    /// The lane of a risk level, or the fixed lane when smart monitoring is off.
    pub fn for_level(level: RiskLevel, smart: bool) -> Self {
        if !smart {
            return Self::Fixed1s;
        }
        match level {
            RiskLevel::Critical => Self::Ms100,
            RiskLevel::High => Self::Ms500,
            RiskLevel::Medium => Self::S2,
            RiskLevel::Low => Self::S5,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One scheduled check: the slot and generation of a position in the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub due: MonitorMs,
    pub slot: u32,
    pub generation: u32,
    pub lane: Lane,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    due: MonitorMs,
    slot: u32,
    generation: u32,
}

/// Per-lane figures for the scheduler panel.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LaneStats {
    pub lane: Lane,
    pub interval_ms: MonitorMs,
    /// Open positions in the lane.
    pub positions: usize,
    /// Checks done in the last complete second.
    pub checks_per_sec: u64,
    /// Milliseconds until the lane's next check (negative: overdue), `None` when empty.
    pub next_due_in_ms: Option<MonitorMs>,
    /// Largest delay between due time and check over the last complete second.
    pub lag_ms: MonitorMs,
}

#[derive(Debug, Clone, Copy, Default)]
struct LaneCounters {
    live: usize,
    checks_this_second: u64,
    checks_last_second: u64,
    lag_this_second: MonitorMs,
    lag_last_second: MonitorMs,
}

/// The lanes. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Scheduler {
    lanes: [VecDeque<Entry>; 5],
    counters: [LaneCounters; 5],
    /// Start of the current stats second.
    second: MonitorMs,
    /// The largest lag of each of the last complete seconds, newest last.
    lag_history: VecDeque<MonitorMs>,
}

impl Scheduler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a check of `slot` (at `generation`) in `lane`, due `interval` after `now`.
    pub fn schedule(&mut self, slot: u32, generation: u32, lane: Lane, now: MonitorMs) {
        let q = &mut self.lanes[lane.index()];
        // The clock never goes back in practice; clamping keeps each queue sorted if it ever did.
        let due = (now + lane.interval_ms()).max(q.back().map_or(MonitorMs::MIN, |e| e.due));
        q.push_back(Entry {
            due,
            slot,
            generation,
        });
    }

    /// Counts a position entering a lane (a new position, or one moving lanes).
    pub fn enter(&mut self, lane: Lane) {
        self.counters[lane.index()].live += 1;
    }

    /// Counts a position leaving a lane (closed, or moving lanes).
    pub fn leave(&mut self, lane: Lane) {
        let c = &mut self.counters[lane.index()];
        c.live = c.live.saturating_sub(1);
    }

    /// The earliest entry due at or before `now`, removed from its lane.
    pub fn pop_due(&mut self, now: MonitorMs) -> Option<Due> {
        let mut best: Option<(usize, MonitorMs)> = None;
        for (i, q) in self.lanes.iter().enumerate() {
            if let Some(e) = q.front()
                && e.due <= now
                && best.is_none_or(|(_, d)| e.due < d)
            {
                best = Some((i, e.due));
            }
        }
        let (i, _) = best?;
        let e = self.lanes[i].pop_front()?;
        Some(Due {
            due: e.due,
            slot: e.slot,
            generation: e.generation,
            lane: Lane::ALL[i],
        })
    }

    /// Records a check done at `now` for an entry that was due at `due`.
    pub fn record_check(&mut self, lane: Lane, due: MonitorMs, now: MonitorMs) {
        self.roll(now);
        let c = &mut self.counters[lane.index()];
        c.checks_this_second += 1;
        c.lag_this_second = c.lag_this_second.max(now - due);
    }

    fn roll(&mut self, now: MonitorMs) {
        if now - self.second >= 1_000 {
            let gap = now - self.second >= 2_000;
            let lag = self.counters.iter().map(|c| c.lag_this_second).max().unwrap_or(0);
            if self.lag_history.len() == LAG_HISTORY {
                self.lag_history.pop_front();
            }
            self.lag_history.push_back(if gap { 0 } else { lag });
            for c in &mut self.counters {
                // A whole idle second in between means the last complete second saw nothing.
                c.checks_last_second = if gap { 0 } else { c.checks_this_second };
                c.lag_last_second = if gap { 0 } else { c.lag_this_second };
                c.checks_this_second = 0;
                c.lag_this_second = 0;
            }
            self.second = now - now.rem_euclid(1_000);
        }
    }

    /// Queued entries, stale ones included.
    pub fn queued(&self) -> usize {
        self.lanes.iter().map(VecDeque::len).sum()
    }

    /// Heap bytes held by the queues.
    pub fn heap_bytes(&self) -> usize {
        self.lanes.iter().map(|q| q.capacity() * size_of::<Entry>()).sum()
    }

    /// Figures per lane; the fixed lane only when smart monitoring is off.
    pub fn stats(&self, now: MonitorMs, smart: bool) -> Vec<LaneStats> {
        let elapsed = now - self.second;
        let lanes: &[Lane] = if smart { &Lane::ALL[..4] } else { &Lane::ALL[4..] };
        lanes
            .iter()
            .map(|lane| {
                let c = self.counters[lane.index()];
                // Without a check since, the current second may already be complete (or long gone).
                let (checks, lag) = if elapsed >= 2_000 {
                    (0, 0)
                } else if elapsed >= 1_000 {
                    (c.checks_this_second, c.lag_this_second)
                } else {
                    (c.checks_last_second, c.lag_last_second)
                };
                LaneStats {
                    lane: *lane,
                    interval_ms: lane.interval_ms(),
                    positions: c.live,
                    checks_per_sec: checks,
                    next_due_in_ms: self.lanes[lane.index()].front().map(|e| e.due - now),
                    lag_ms: lag,
                }
            })
            .collect()
    }

    /// The largest lag of any lane over the last few complete seconds (0 when idle since).
    pub fn max_recent_lag(&self, now: MonitorMs) -> MonitorMs {
        if now - self.second >= LAG_HISTORY as i64 * 1_000 {
            return 0;
        }
        let current = self.counters.iter().map(|c| c.lag_this_second).max().unwrap_or(0);
        self.lag_history.iter().copied().max().unwrap_or(0).max(current)
    }
}

/// Seconds of lag history kept for [`Scheduler::max_recent_lag`].
const LAG_HISTORY: usize = 5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_out_in_due_order_across_lanes() {
        let mut s = Scheduler::new();
        s.schedule(1, 0, Lane::S5, 0); // due 5000
        s.schedule(2, 0, Lane::Ms100, 0); // due 100
        s.schedule(3, 0, Lane::Ms500, 0); // due 500
        s.schedule(4, 0, Lane::Ms100, 50); // due 150
        assert_eq!(s.pop_due(99), None);
        let order: Vec<u32> = std::iter::from_fn(|| s.pop_due(10_000)).map(|d| d.slot).collect();
        assert_eq!(order, vec![2, 4, 3, 1]);
        assert_eq!(s.queued(), 0);
    }

    #[test]
    fn lanes_report_counts_rates_and_lag() {
        let mut s = Scheduler::new();
        for slot in 0..3 {
            s.enter(Lane::Ms100);
            s.schedule(slot, 0, Lane::Ms100, 0);
        }
        s.enter(Lane::S2);
        s.schedule(9, 0, Lane::S2, 0);
        while let Some(d) = s.pop_due(130) {
            s.record_check(d.lane, d.due, 130);
            s.schedule(d.slot, d.generation, d.lane, 130);
        }
        let stats = s.stats(1_000, true);
        assert_eq!(stats.len(), 4);
        assert_eq!(
            (stats[0].positions, stats[0].checks_per_sec, stats[0].lag_ms),
            (3, 3, 30)
        );
        assert_eq!(stats[0].next_due_in_ms, Some(230 - 1_000));
        assert_eq!((stats[2].positions, stats[2].next_due_in_ms), (1, Some(1_000)));
        s.leave(Lane::Ms100);
        assert_eq!(s.stats(1_500, true)[0].positions, 2);
        assert_eq!(s.stats(5_000, false)[0].lane, Lane::Fixed1s);
    }
}
