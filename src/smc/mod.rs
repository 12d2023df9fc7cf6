//! Smart Money Concepts (ICT) structure, computed causally and incrementally, one closed bar at a time.
//!
//! The strategy layer needs swings, breaks of structure, order blocks, fair value gaps, liquidity pools,
//! previous period ranges, sessions, retracements and premium/discount zones. The reference
//! implementation (`smartmoneyconcepts` 0.0.27, see `../shared/golden/SPEC.md`) computes them over a
//! whole frame and writes each result on the row it *belongs to* using rows that come later, so a
//! backtest built on it looks ahead. This module computes the same structures from bars `0..=t` only and
//! says so explicitly: every [`SmcEvent`] carries the `row` it describes and the bar `known_at` at which
//! it became known. When later bars revise something (the swing de-duplication replaces a swing, a
//! newer break of structure supersedes an older one, an order block is run through), the revision is an
//! event too ([`SmcEventKind::SwingInvalidated`] and friends). Replaying the events up to bar `t` gives
//! exactly what was knowable at `t`; replaying all of them gives the reference's end-of-data columns,
//! except for the reference quirks listed in `docs/smc-differences.md`, where this module does the
//! correct thing on purpose.
//!
//! Layout, in the order [`SmcEngine::on_bar`] runs them: [`fvg`] and the calendar families
//! ([`previous_levels`], [`sessions`]) need only the new bar; [`swings`] confirms swings `n` bars late;
//! [`structure`] (BOS/CHoCH), [`order_blocks`], [`liquidity`], [`retracements`] and [`zones`] consume the
//! swing list. All detectors reuse their buffers, so a bar allocates nothing once the buffers have grown
//! (the bar history and the per-row order-block table grow by amortised doubling).

pub mod fvg;
pub mod liquidity;
pub mod order_blocks;
pub mod previous_levels;
pub mod retracements;
pub mod sessions;
pub mod structure;
pub mod swings;
pub mod zones;

use std::collections::VecDeque;

use crate::domain::{Bar, Interval, TimestampMs};

pub use self::{
    fvg::FairValueGapDetector,
    liquidity::LiquidityDetector,
    order_blocks::OrderBlockDetector,
    previous_levels::PreviousLevelsDetector,
    retracements::RetracementTracker,
    sessions::{Session, SessionTracker},
    structure::{StructureDetector, StructureKind},
    swings::{Swing, SwingDetector, SwingSide, SwingUpdate},
    zones::{PremiumDiscountTracker, PriceZone},
};

/// Position of a bar in the series fed to a detector, starting at 0 (the reference's `idx`).
pub type BarIndex = usize;

/// Direction of a structure: bullish (+1 in the reference's columns) or bearish (−1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Bullish,
    Bearish,
}

impl Direction {
    /// +1 or −1, the reference's encoding.
    pub fn sign(self) -> i8 {
        match self {
            Self::Bullish => 1,
            Self::Bearish => -1,
        }
    }

    /// 0 for bullish, 1 for bearish: an index into per-direction arrays.
    pub(crate) fn slot(self) -> usize {
        match self {
            Self::Bullish => 0,
            Self::Bearish => 1,
        }
    }

    pub(crate) const BOTH: [Self; 2] = [Self::Bullish, Self::Bearish];
}

/// One fact learned at the close of bar `known_at` about bar `row` (`row <= known_at`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SmcEvent {
    /// The bar the fact belongs to (where the reference writes it).
    pub row: BarIndex,
    /// The bar at whose close the fact became known.
    pub known_at: BarIndex,
    pub kind: SmcEventKind,
}

/// What an [`SmcEvent`] says. Each family has a "created" event, optional "amended" events that add a
/// fact learned later (mitigation, sweep, break), and an "invalidated" event that withdraws the record
/// on that row (a later event on the same row may re-create it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SmcEventKind {
    /// A swing high or low (after de-duplication). `bookend` marks the artificial row-0 swing the
    /// reference places opposite the first real swing.
    Swing {
        side: SwingSide,
        level: f64,
        bookend: bool,
    },
    /// The swing on `row` was replaced by a more extreme one of the same side.
    SwingInvalidated,
    /// A break of structure or change of character on swing `row`, broken by bar `broken_at`.
    StructureBreak {
        kind: StructureKind,
        direction: Direction,
        level: f64,
        broken_at: BarIndex,
    },
    /// A newer break, broken no later than this one, superseded the break on `row`.
    StructureInvalidated,
    /// A fair value gap with `row` as its middle candle. `joined`: emitted by a detector in
    /// `join_consecutive` mode.
    FairValueGap {
        direction: Direction,
        top: f64,
        bottom: f64,
        joined: bool,
    },
    /// Price came back to the gap's near edge at bar `at`.
    FairValueGapMitigated { joined: bool, at: BarIndex },
    /// The gap moved to a later row (joined with the adjacent gap after it).
    FairValueGapInvalidated { joined: bool },
    /// An order block on candle `row`. `volume` is the three-bar volume at the crossing bar and
    /// `volume_percentage` the reference's min/max balance of its two parts.
    OrderBlock {
        direction: Direction,
        top: f64,
        bottom: f64,
        volume: f64,
        volume_percentage: f64,
    },
    /// Price traded through the block at bar `at`; it is now a breaker block.
    OrderBlockMitigated { direction: Direction, at: BarIndex },
    /// The block was run through after mitigation, or revised because its crossing swing changed.
    OrderBlockInvalidated { direction: Direction },
    /// Equal highs (bullish) or equal lows (bearish) starting at swing `row`: `level` is the mean of the
    /// group's swing levels and `end` the last swing in the group.
    LiquidityPool {
        direction: Direction,
        level: f64,
        end: BarIndex,
    },
    /// Price ran through the pool at bar `at`.
    LiquiditySwept { direction: Direction, at: BarIndex },
    /// The pool on `row` changed (a member was added or withdrawn); a new `LiquidityPool` follows if
    /// the group still has two or more swings.
    LiquidityInvalidated { direction: Direction },
    /// From bar `row` on, the previous completed `timeframe` period had this high and low.
    PreviousRange {
        timeframe: Interval,
        high: f64,
        low: f64,
    },
    /// Bar `row` traded above the previous period's high (first time in the current period).
    PreviousHighBroken { timeframe: Interval },
    /// Bar `row` traded below the previous period's low (first time in the current period).
    PreviousLowBroken { timeframe: Interval },
    /// Bar `row` is inside `session`; `high`/`low` are the extremes since the session opened.
    SessionBar { session: Session, high: f64, low: f64 },
    /// Retracement of bar `row` from the last swing (`from`), in percent, rounded to 0.1.
    Retracement {
        from: SwingSide,
        current_percent: f64,
        deepest_percent: f64,
    },
    /// The dealing range between the latest swing high and swing low, from bar `row` on.
    DealingRange { high: f64, low: f64 },
    /// Bar `row` closed in a different zone of the dealing range than the bar before.
    PriceZoneChanged { zone: PriceZone },
}

/// Everything that can be wrong with a configuration or with the bars fed in.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SmcError {
    #[error("swing length must be at least 1, got {0}")]
    SwingLength(usize),
    #[error("liquidity pip range must be finite and >= 0, got {0}")]
    PipRange(f64),
    #[error("bar opening at {open_time} does not follow the previous bar opening at {previous}")]
    OutOfOrder {
        open_time: TimestampMs,
        previous: TimestampMs,
    },
    #[error("bar opening at {open_time} has non-finite or inconsistent prices")]
    BadBar { open_time: TimestampMs },
    #[error("history window must be at least {minimum} bars (four swing lengths), got {window}")]
    HistoryWindow { window: usize, minimum: usize },
    #[error("custom session needs start and end minutes below 1440, got {start}..{end}")]
    SessionWindow { start: u16, end: u16 },
}

/// The bars seen so far, indexed by [`BarIndex`]. Detectors that must look back to an arbitrary earlier
/// bar (the order-block candle between a swing and its crossing, the first break after a swing) read it;
/// none can read past the newest bar because it does not exist yet. A bounded engine drops the oldest
/// bars ([`SmcConfig::history_window`]); indices stay absolute, so bar `i` keeps its index for life.
#[derive(Debug, Clone, Default)]
pub struct BarHistory {
    /// Index of `bars[0]`.
    base: BarIndex,
    /// A ring, so dropping the oldest bars moves nothing.
    bars: VecDeque<Bar>,
}

impl BarHistory {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            base: 0,
            bars: VecDeque::with_capacity(capacity),
        }
    }

    pub fn push(&mut self, bar: Bar) -> BarIndex {
        self.bars.push_back(bar);
        self.len() - 1
    }

    /// Bars fed so far (retained or not): the index the next bar gets.
    pub fn len(&self) -> usize {
        self.base + self.bars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Index of the newest bar. `None` before the first bar.
    pub fn last_index(&self) -> Option<BarIndex> {
        self.len().checked_sub(1)
    }

    /// Index of the oldest bar still held.
    pub fn first_index(&self) -> BarIndex {
        self.base
    }

    /// Bar `index`. Callers only ask for indices they have seen and that are still held, so this is
    /// in bounds.
    pub fn bar(&self, index: BarIndex) -> &Bar {
        &self.bars[index - self.base]
    }

    /// Bar `index`, if it is still held.
    pub fn get(&self, index: BarIndex) -> Option<&Bar> {
        self.bars.get(index.checked_sub(self.base)?)
    }

    /// The newest bar.
    pub fn last(&self) -> Option<&Bar> {
        self.bars.back()
    }

    /// Bars `from..to`, oldest first (all held; empty when `from >= to`).
    pub fn span(&self, from: BarIndex, to: BarIndex) -> impl Iterator<Item = &Bar> {
        let (from, to) = (from - self.base, to.max(from) - self.base);
        self.bars.range(from..to)
    }

    /// Number of bars still held (the oldest is bar [`Self::first_index`]).
    pub fn retained_len(&self) -> usize {
        self.bars.len()
    }

    /// Drops the bars before `base`: O(dropped), nothing moves and nothing is reallocated.
    fn prune(&mut self, base: BarIndex) {
        let drop = base.saturating_sub(self.base).min(self.bars.len());
        self.bars.drain(..drop);
        self.base += drop;
    }
}

/// Parameters of one [`SmcEngine`], named as in the reference.
#[derive(Debug, Clone, PartialEq)]
pub struct SmcConfig {
    /// `swing_length`: a swing high is the highest high of `n − 1` bars before and `n` bars after.
    pub swing_length: usize,
    /// `close_break`: a break of structure needs a close beyond the level (else a wick is enough).
    pub close_break: bool,
    /// `close_mitigation`: an order block is mitigated by a body beyond it (else a wick is enough).
    pub close_mitigation: bool,
    /// Absolute tolerance for equal highs / lows. The reference derives it from the range of the whole
    /// frame (`range_percent × (max high − min low)`), which is look-ahead; here it is configuration.
    pub liquidity_pip_range: f64,
    /// `join_consecutive` for fair value gaps.
    pub fvg_join_consecutive: bool,
    /// Periods for previous high / low (e.g. 4h, 1d, 1w).
    pub previous_timeframes: Vec<Interval>,
    pub sessions: Vec<Session>,
    /// Bars of history kept for 24/7 runs: `None` keeps everything (research, the golden tests);
    /// `Some(w)` forgets everything about rows more than `w` bars old (see [`SmcEngine::on_bar`]).
    pub history_window: Option<usize>,
}

impl Default for SmcConfig {
    fn default() -> Self {
        Self {
            swing_length: 5,
            close_break: true,
            close_mitigation: false,
            liquidity_pip_range: 0.0,
            fvg_join_consecutive: false,
            previous_timeframes: vec![Interval::H4, Interval::D1, Interval::W1],
            sessions: vec![
                Session::Sydney,
                Session::London,
                Session::NewYork,
                Session::NewYorkKillZone,
            ],
            history_window: None,
        }
    }
}

/// Sizes of what an [`SmcEngine`] holds, see [`SmcEngine::held`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Held {
    pub bars: usize,
    pub swings: usize,
    pub order_block_entries: usize,
    pub order_block_rows: usize,
    pub liquidity_groups: usize,
    pub gaps: usize,
    pub structure_signals: usize,
}

/// All detector families over one bar series, fed one closed bar at a time.
#[derive(Debug, Clone)]
pub struct SmcEngine {
    history: BarHistory,
    fvg: FairValueGapDetector,
    previous_levels: Vec<PreviousLevelsDetector>,
    sessions: Vec<SessionTracker>,
    swings: SwingDetector,
    structure: StructureDetector,
    order_blocks: OrderBlockDetector,
    liquidity: LiquidityDetector,
    retracements: RetracementTracker,
    zones: PremiumDiscountTracker,
    history_window: Option<usize>,
}

/// Bars kept before the window so the order-block volume (the crossing bar and the two before it) of a
/// bar at the window's start is still exact.
const HISTORY_MARGIN: usize = 2;

impl SmcEngine {
    pub fn new(config: &SmcConfig) -> Result<Self, SmcError> {
        let sessions = config
            .sessions
            .iter()
            .map(|&session| SessionTracker::new(session))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(window) = config.history_window {
            let minimum = 4 * config.swing_length.max(1);
            if window < minimum {
                return Err(SmcError::HistoryWindow { window, minimum });
            }
        }
        Ok(Self {
            history: BarHistory::default(),
            fvg: FairValueGapDetector::new(config.fvg_join_consecutive),
            previous_levels: config
                .previous_timeframes
                .iter()
                .map(|&tf| PreviousLevelsDetector::new(tf))
                .collect(),
            sessions,
            swings: SwingDetector::new(config.swing_length)?,
            structure: StructureDetector::new(config.close_break),
            order_blocks: OrderBlockDetector::new(config.close_mitigation),
            liquidity: LiquidityDetector::new(config.liquidity_pip_range)?,
            retracements: RetracementTracker::default(),
            zones: PremiumDiscountTracker::default(),
            history_window: config.history_window,
        })
    }

    /// Reserves room for `bars` bars so the history does not reallocate while they arrive (with a
    /// history window, never more than the window needs).
    pub fn reserve(&mut self, bars: usize) {
        let bars = self
            .history_window
            .map_or(bars, |window| bars.min(window + window / 4 + HISTORY_MARGIN + 1));
        self.history.bars.reserve(bars);
        self.order_blocks.reserve(bars);
    }

    /// Feeds the next closed bar and appends what became known at its close to `out`. Returns the bar's
    /// index.
    pub fn on_bar(&mut self, bar: &Bar, out: &mut Vec<SmcEvent>) -> Result<BarIndex, SmcError> {
        let consistent = [bar.open, bar.high, bar.low, bar.close, bar.volume]
            .iter()
            .all(|v| v.is_finite())
            && bar.high >= bar.low;
        if !consistent {
            return Err(SmcError::BadBar {
                open_time: bar.open_time,
            });
        }
        if let Some(last) = self.history.last()
            && bar.open_time <= last.open_time
        {
            return Err(SmcError::OutOfOrder {
                open_time: bar.open_time,
                previous: last.open_time,
            });
        }
        let index = self.history.push(*bar);
        self.fvg.on_bar(index, bar, out);
        for detector in &mut self.previous_levels {
            detector.on_bar(index, bar, out);
        }
        for tracker in &mut self.sessions {
            tracker.on_bar(index, bar, out);
        }
        let update = self.swings.on_bar(&self.history, out);
        let swings = self.swings.swings();
        self.structure.on_bar(&self.history, swings, update, out);
        self.order_blocks.on_bar(&self.history, swings, out);
        self.liquidity.on_bar(&self.history, swings, update, out);
        self.retracements.on_bar(&self.history, swings, out);
        self.zones.on_bar(&self.history, swings, out);
        if let Some(window) = self.history_window {
            // Pruned in chunks of a quarter window, so the work (a move of the retained bars, a pass
            // over each detector's state) is amortised to O(1) per bar and never reallocates.
            let held = index + 1 - self.history.first_index();
            if held >= window + window / 4 + HISTORY_MARGIN {
                self.prune(index + 1 - window);
            }
        }
        Ok(index)
    }

    /// Forgets every row before `base`: the bars (but [`HISTORY_MARGIN`]), swings, pools, blocks,
    /// gaps and structure signals on them. Afterwards no event is emitted for those rows and they no
    /// longer influence later ones (an old swing is no longer crossed, an old pool takes no member).
    fn prune(&mut self, base: BarIndex) {
        self.swings.prune(base);
        let swings = self.swings.swings();
        self.order_blocks.prune(base, &self.history, swings);
        self.structure.prune_before(base);
        self.liquidity.prune(base);
        self.fvg.prune(base);
        self.retracements.prune(base, swings);
        self.history.prune(base.saturating_sub(HISTORY_MARGIN));
    }

    /// What the engine holds now: bars, swings, order-block entries and table rows, liquidity groups,
    /// open gaps and pending structure signals. Bounded when the history is.
    pub fn held(&self) -> Held {
        let (order_block_entries, order_block_rows) = self.order_blocks.held();
        Held {
            bars: self.history.retained_len(),
            swings: self.swings.swings().len(),
            order_block_entries,
            order_block_rows,
            liquidity_groups: self.liquidity.tracked_len(),
            gaps: self.fvg.active_len(),
            structure_signals: self.structure.pending_len(),
        }
    }

    pub fn history(&self) -> &BarHistory {
        &self.history
    }

    /// The swings known now (de-duplicated, alternating, row-0 bookend included).
    pub fn swings(&self) -> &[Swing] {
        self.swings.swings()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    /// A deterministic random walk (xorshift) with wicks: swings, blocks, gaps and pools all occur.
    fn random_walk(count: usize, seed: u64) -> Vec<Bar> {
        let mut state = seed | 1;
        let mut uniform = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 2_001) as f64 / 1_000.0 - 1.0
        };
        let mut close = 100.0;
        (0..count)
            .map(|i| {
                let open = close;
                close = open * (1.0 + uniform() * 0.004);
                let open_time = i64::try_from(i).unwrap() * 300_000;
                Bar {
                    open_time,
                    close_time: open_time + 299_999,
                    open,
                    high: open.max(close) * (1.0 + uniform().abs() * 0.002),
                    low: open.min(close) * (1.0 - uniform().abs() * 0.002),
                    close,
                    volume: 1_000.0 * (1.5 + uniform()),
                    quote_volume: 0.0,
                    trades: 1,
                    closed: true,
                }
            })
            .collect()
    }

    fn config(window: Option<usize>) -> SmcConfig {
        SmcConfig {
            swing_length: 5,
            liquidity_pip_range: 0.05,
            history_window: window,
            ..SmcConfig::default()
        }
    }

    #[test]
    fn a_window_shorter_than_four_swing_lengths_is_refused() {
        assert_eq!(
            SmcEngine::new(&config(Some(19))).err(),
            Some(SmcError::HistoryWindow {
                window: 19,
                minimum: 20
            })
        );
    }

    /// Over a long run the windowed engine holds a bounded state, and every event it emits about a
    /// row inside the window is exactly what the unbounded engine emits at the same bar.
    #[test]
    fn windowed_history_stays_bounded_and_outputs_inside_the_window_are_unchanged() {
        const WINDOW: usize = 300;
        let bars = random_walk(30_000, 0x5eed);
        let mut bounded = SmcEngine::new(&config(Some(WINDOW))).unwrap();
        let mut full = SmcEngine::new(&config(None)).unwrap();
        let (mut bounded_out, mut full_out) = (Vec::new(), Vec::new());
        let mut most = Held::default();
        let mut compared = 0_usize;
        for (t, bar) in bars.iter().enumerate() {
            bounded_out.clear();
            full_out.clear();
            bounded.on_bar(bar, &mut bounded_out).unwrap();
            full.on_bar(bar, &mut full_out).unwrap();
            let first_kept = (t + 1).saturating_sub(WINDOW);
            let inside = |events: &[SmcEvent]| -> Vec<SmcEvent> {
                events.iter().filter(|e| e.row >= first_kept).copied().collect()
            };
            let expected = inside(&full_out);
            assert_eq!(inside(&bounded_out), expected, "bar {t}");
            compared += expected.len();
            let held = bounded.held();
            most = Held {
                bars: most.bars.max(held.bars),
                swings: most.swings.max(held.swings),
                order_block_entries: most.order_block_entries.max(held.order_block_entries),
                order_block_rows: most.order_block_rows.max(held.order_block_rows),
                liquidity_groups: most.liquidity_groups.max(held.liquidity_groups),
                gaps: most.gaps.max(held.gaps),
                structure_signals: most.structure_signals.max(held.structure_signals),
            };
        }
        assert!(compared > 10_000, "only {compared} events compared");
        let limit = WINDOW + WINDOW / 4 + HISTORY_MARGIN;
        assert!(most.bars <= limit, "{most:?}");
        assert!(most.order_block_rows <= limit, "{most:?}");
        // Everything else lives on rows of the window: at most one of each per row and direction.
        assert!(most.swings <= limit, "{most:?}");
        assert!(most.gaps <= limit, "{most:?}");
        assert!(
            most.liquidity_groups <= limit + liquidity::MAX_GROUPS_BEFORE_WINDOW,
            "{most:?}"
        );
        assert!(most.structure_signals <= limit, "{most:?}");
        assert!(most.order_block_entries <= 4 * limit, "{most:?}");
        // The unbounded engine kept everything: this run did exercise the window.
        assert_eq!(full.held().bars, bars.len());
        assert!(full.held().order_block_rows > 10 * limit);
    }

    /// A flat market confirms no new swing for ever (equal highs never replace the first swing): the
    /// window still bounds the history.
    #[test]
    fn a_flat_market_stays_bounded() {
        let mut engine = SmcEngine::new(&config(Some(40))).unwrap();
        let mut out = Vec::new();
        let mut bars = random_walk(60, 7);
        let last = *bars.last().unwrap();
        bars.extend((1..5_000).map(|i| Bar {
            open_time: last.open_time + i * 300_000,
            close_time: last.close_time + i * 300_000,
            open: 1.0,
            high: 1.0,
            low: 1.0,
            close: 1.0,
            ..last
        }));
        for bar in &bars {
            out.clear();
            engine.on_bar(bar, &mut out).unwrap();
            let held = engine.held();
            assert!(held.bars <= 40 + 10 + HISTORY_MARGIN, "{held:?}");
            assert!(held.order_block_rows <= 40 + 10 + HISTORY_MARGIN, "{held:?}");
        }
        assert_eq!(engine.history().len(), bars.len());
        assert_eq!(
            engine.history().first_index() + engine.history().retained_len(),
            bars.len()
        );
    }
}
