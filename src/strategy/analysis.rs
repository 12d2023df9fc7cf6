//! Per-symbol multi-timeframe market state that the strategies read: indicators, SMC structure and the
//! derived ICT facts (bias, live order blocks and gaps, liquidity pools, dealing range), per timeframe.
//!
//! The strategy must not re-derive structure from raw events on every evaluation, and must never see a
//! fact before it was knowable. So a [`SymbolAnalysis`] owns, for each of three roles (entry, setup,
//! higher; default 5m, 15m, 1h), an [`IndicatorSet`] and an [`SmcEngine`], and folds the engine's events
//! into small state tables *as they are emitted*. The SMC engine emits an event at the close of the bar it
//! became known at (`known_at` = that bar), and this module only ever receives closed bars, in order, so
//! every table reflects exactly what was knowable at the newest closed bar: the state is causal by
//! construction (a debug assertion checks `known_at` against the bar just fed).
//!
//! Tables are bounded (at most [`MAX_ZONES`] zones per family, [`MAX_BREAKS`] structure breaks) and
//! reuse their buffers, so once warm a bar allocates nothing here; the SMC engine's own history is
//! bounded by [`TimeframeConfig::history_window`] (see `smc`), so a 24/7 run holds bounded memory.

use crate::{
    domain::{Bar, Interval},
    features::{FeatureError, IndicatorSet},
    smc::{
        BarIndex, Direction, SmcConfig, SmcEngine, SmcError, SmcEvent, SmcEventKind, StructureKind, Swing,
        SwingSide,
    },
};

/// Live zones kept per family (order blocks, gaps, pools); the oldest is dropped beyond this.
pub const MAX_ZONES: usize = 48;
/// Structure breaks kept per timeframe.
pub const MAX_BREAKS: usize = 16;
/// Slow ATR average (EMA period in bars) for the volatility regime.
const ATR_SLOW_PERIOD: f64 = 100.0;
/// Volume average (EMA period in bars) for the volume dimension.
const VOLUME_PERIOD: f64 = 20.0;

/// The three timeframe roles of the ICT strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Entry confirmation (default 5m).
    Entry,
    /// Setups: order blocks, gaps, sweeps (default 15m).
    Setup,
    /// Bias (default 1h).
    Higher,
}

impl Role {
    pub const ALL: [Self; 3] = [Self::Entry, Self::Setup, Self::Higher];

    fn slot(self) -> usize {
        match self {
            Self::Entry => 0,
            Self::Setup => 1,
            Self::Higher => 2,
        }
    }
}

/// One timeframe's interval and swing length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeframeConfig {
    pub interval: Interval,
    /// SMC `swing_length` on this timeframe.
    pub swing_length: usize,
    /// Tolerance for equal highs / lows (liquidity pools) as a fraction of the first bar's close. The
    /// SMC engine takes an absolute tolerance; a fraction works across symbols priced 0.06 to 30 000, and
    /// taking the price of the *first* bar keeps it causal. Default 0.0005 (5 basis points).
    pub liquidity_tolerance: f64,
    /// Bars of SMC history kept ([`SmcConfig::history_window`]); `None` keeps everything. Default
    /// [`DEFAULT_HISTORY_WINDOW`], so a 24/7 run holds a bounded amount of memory.
    pub history_window: Option<usize>,
}

/// Default [`TimeframeConfig::history_window`]: 1 000 bars (about 3.5 days of 5m bars, 42 days of 1h
/// bars), well beyond what the rules look back at (the newest swings, pools and zones).
pub const DEFAULT_HISTORY_WINDOW: usize = 1_000;

/// Default [`TimeframeConfig::liquidity_tolerance`].
pub const DEFAULT_LIQUIDITY_TOLERANCE: f64 = 0.0005;

/// The timeframes of a [`SymbolAnalysis`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnalysisConfig {
    /// Default 5m, swing length 3 (a swing confirms 15 minutes after it).
    pub entry: TimeframeConfig,
    /// Default 15m, swing length 5.
    pub setup: TimeframeConfig,
    /// Default 1h, swing length 5.
    pub higher: TimeframeConfig,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            entry: TimeframeConfig {
                interval: Interval::M5,
                swing_length: 3,
                liquidity_tolerance: DEFAULT_LIQUIDITY_TOLERANCE,
                history_window: Some(DEFAULT_HISTORY_WINDOW),
            },
            setup: TimeframeConfig {
                interval: Interval::M15,
                swing_length: 5,
                liquidity_tolerance: DEFAULT_LIQUIDITY_TOLERANCE,
                history_window: Some(DEFAULT_HISTORY_WINDOW),
            },
            higher: TimeframeConfig {
                interval: Interval::H1,
                swing_length: 5,
                liquidity_tolerance: DEFAULT_LIQUIDITY_TOLERANCE,
                history_window: Some(DEFAULT_HISTORY_WINDOW),
            },
        }
    }
}

/// What can go wrong when building or feeding an analysis.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalysisError {
    #[error("timeframes must be distinct and increasing (entry < setup < higher), got {0} {1} {2}")]
    Timeframes(Interval, Interval, Interval),
    #[error("interval {0} is not one of this analysis's timeframes")]
    UnknownInterval(Interval),
    #[error("only closed bars may be fed (bar opening at {0} is still forming)")]
    NotClosed(i64),
    #[error(transparent)]
    Smc(#[from] SmcError),
    #[error(transparent)]
    Feature(#[from] FeatureError),
}

/// A break of structure or change of character, as known now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakRecord {
    /// The swing that was broken.
    pub row: BarIndex,
    pub known_at: BarIndex,
    pub kind: StructureKind,
    pub direction: Direction,
    pub level: f64,
    pub broken_at: BarIndex,
}

/// The newest bar closed beyond the newest confirmed swing of the other side (above the last swing high:
/// bullish), for the first time for that swing. This is the timely form of a break of structure: the SMC
/// engine's BOS/CHoCH classification needs the swings after the broken one, so it is often known many
/// bars after the break itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SwingBreak {
    /// The broken swing.
    pub row: BarIndex,
    pub direction: Direction,
    pub level: f64,
    /// The bar that closed beyond it (the newest bar when reported).
    pub at: BarIndex,
}

/// An order block or fair value gap that has not been invalidated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Zone {
    pub row: BarIndex,
    pub known_at: BarIndex,
    pub direction: Direction,
    pub top: f64,
    pub bottom: f64,
    /// Last bar at which price came back into the zone (the SMC "mitigation").
    pub touched_at: Option<BarIndex>,
}

/// A pool of equal highs (bullish: buy-side liquidity) or equal lows (bearish: sell-side liquidity).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pool {
    pub row: BarIndex,
    pub known_at: BarIndex,
    pub direction: Direction,
    pub level: f64,
    pub swept_at: Option<BarIndex>,
}

/// Indicators, SMC engine and derived state of one symbol × timeframe.
#[derive(Debug, Clone)]
pub struct TimeframeState {
    interval: Interval,
    config: TimeframeConfig,
    /// Bars reserved with [`SymbolAnalysis::reserve`], applied again when the engine is rebuilt.
    reserved: usize,
    indicators: IndicatorSet,
    smc: SmcEngine,
    events: Vec<SmcEvent>,
    breaks: Vec<BreakRecord>,
    order_blocks: Vec<Zone>,
    gaps: Vec<Zone>,
    pools: Vec<Pool>,
    dealing_range: Option<(f64, f64)>,
    atr_slow: Option<f64>,
    volume_average: Option<f64>,
    swing_break: Option<SwingBreak>,
    /// Row of the last swing broken in each direction (bullish, bearish), so a swing breaks once.
    last_broken_swing: [Option<BarIndex>; 2],
}

fn ema_step(previous: Option<f64>, value: f64, period: f64) -> f64 {
    let alpha = 2.0 / (period + 1.0);
    previous.map_or(value, |p| p + alpha * (value - p))
}

/// Keeps at most `cap` entries, dropping the oldest (the front).
fn cap<T>(items: &mut Vec<T>, cap: usize) {
    if items.len() > cap {
        let excess = items.len() - cap;
        items.drain(..excess);
    }
}

impl TimeframeState {
    fn smc_config(config: TimeframeConfig, reference_price: f64) -> SmcConfig {
        SmcConfig {
            swing_length: config.swing_length,
            liquidity_pip_range: (config.liquidity_tolerance * reference_price).abs(),
            // Calendar families are not used by the strategy; skip their work.
            previous_timeframes: Vec::new(),
            sessions: Vec::new(),
            history_window: config.history_window,
            ..SmcConfig::default()
        }
    }

    fn new(config: TimeframeConfig) -> Result<Self, AnalysisError> {
        if !(config.liquidity_tolerance.is_finite() && config.liquidity_tolerance >= 0.0) {
            return Err(AnalysisError::Smc(SmcError::PipRange(config.liquidity_tolerance)));
        }
        Ok(Self {
            interval: config.interval,
            config,
            reserved: 0,
            indicators: IndicatorSet::default(),
            // Replaced at the first bar, once the price scale is known.
            smc: SmcEngine::new(&Self::smc_config(config, 0.0))?,
            events: Vec::with_capacity(32),
            breaks: Vec::with_capacity(MAX_BREAKS + 1),
            order_blocks: Vec::with_capacity(MAX_ZONES + 2),
            gaps: Vec::with_capacity(MAX_ZONES + 2),
            pools: Vec::with_capacity(MAX_ZONES + 2),
            dealing_range: None,
            atr_slow: None,
            volume_average: None,
            swing_break: None,
            last_broken_swing: [None; 2],
        })
    }

    fn on_bar(&mut self, bar: &Bar) -> Result<BarIndex, AnalysisError> {
        if !bar.closed {
            return Err(AnalysisError::NotClosed(bar.open_time));
        }
        self.events.clear();
        if self.smc.history().is_empty() && bar.close.is_finite() {
            self.smc = SmcEngine::new(&Self::smc_config(self.config, bar.close))?;
            self.smc.reserve(self.reserved);
        }
        // The SMC engine validates order and prices first and changes nothing on error; the indicator
        // set checks the same invariants, so it cannot then refuse the bar.
        let index = self.smc.on_bar(bar, &mut self.events)?;
        let values = self.indicators.update(bar)?;
        if let Some(atr) = values.atr14 {
            self.atr_slow = Some(ema_step(self.atr_slow, atr, ATR_SLOW_PERIOD));
        }
        self.volume_average = Some(ema_step(self.volume_average, bar.volume, VOLUME_PERIOD));
        for position in 0..self.events.len() {
            let event = self.events[position];
            debug_assert!(
                event.known_at == index && event.row <= index,
                "SMC event from the future"
            );
            self.apply(event);
        }
        self.swing_break = self.detect_swing_break(index, bar);
        cap(&mut self.breaks, MAX_BREAKS);
        cap(&mut self.order_blocks, MAX_ZONES);
        cap(&mut self.gaps, MAX_ZONES);
        cap(&mut self.pools, MAX_ZONES);
        Ok(index)
    }

    fn detect_swing_break(&mut self, index: BarIndex, bar: &Bar) -> Option<SwingBreak> {
        let previous_close = index.checked_sub(1).map(|i| self.smc.history().bar(i).close)?;
        for (slot, direction, side) in [
            (0, Direction::Bullish, SwingSide::High),
            (1, Direction::Bearish, SwingSide::Low),
        ] {
            let Some(swing) = self.last_swing(side).copied() else {
                continue;
            };
            let crossed = match direction {
                Direction::Bullish => bar.close > swing.level && previous_close <= swing.level,
                Direction::Bearish => bar.close < swing.level && previous_close >= swing.level,
            };
            if crossed && swing.row < index && self.last_broken_swing[slot] != Some(swing.row) {
                self.last_broken_swing[slot] = Some(swing.row);
                return Some(SwingBreak {
                    row: swing.row,
                    direction,
                    level: swing.level,
                    at: index,
                });
            }
        }
        None
    }

    fn apply(&mut self, event: SmcEvent) {
        let SmcEvent { row, known_at, kind } = event;
        match kind {
            SmcEventKind::StructureBreak {
                kind,
                direction,
                level,
                broken_at,
            } => {
                self.breaks.retain(|b| b.row != row);
                self.breaks.push(BreakRecord {
                    row,
                    known_at,
                    kind,
                    direction,
                    level,
                    broken_at,
                });
            }
            SmcEventKind::StructureInvalidated => self.breaks.retain(|b| b.row != row),
            SmcEventKind::OrderBlock {
                direction,
                top,
                bottom,
                ..
            } => {
                self.order_blocks
                    .retain(|z| !(z.row == row && z.direction == direction));
                self.order_blocks.push(Zone {
                    row,
                    known_at,
                    direction,
                    top,
                    bottom,
                    touched_at: None,
                });
            }
            SmcEventKind::OrderBlockMitigated { direction, at } => {
                if let Some(zone) = self
                    .order_blocks
                    .iter_mut()
                    .find(|z| z.row == row && z.direction == direction)
                {
                    zone.touched_at = Some(at);
                }
            }
            SmcEventKind::OrderBlockInvalidated { direction } => self
                .order_blocks
                .retain(|z| !(z.row == row && z.direction == direction)),
            SmcEventKind::FairValueGap {
                direction,
                top,
                bottom,
                ..
            } => {
                self.gaps.retain(|z| z.row != row);
                self.gaps.push(Zone {
                    row,
                    known_at,
                    direction,
                    top,
                    bottom,
                    touched_at: None,
                });
            }
            SmcEventKind::FairValueGapMitigated { at, .. } => {
                if let Some(zone) = self.gaps.iter_mut().find(|z| z.row == row) {
                    zone.touched_at = Some(at);
                }
            }
            SmcEventKind::FairValueGapInvalidated { .. } => self.gaps.retain(|z| z.row != row),
            SmcEventKind::LiquidityPool { direction, level, .. } => {
                self.pools.retain(|p| !(p.row == row && p.direction == direction));
                self.pools.push(Pool {
                    row,
                    known_at,
                    direction,
                    level,
                    swept_at: None,
                });
            }
            SmcEventKind::LiquiditySwept { direction, at } => {
                if let Some(pool) = self
                    .pools
                    .iter_mut()
                    .find(|p| p.row == row && p.direction == direction)
                {
                    pool.swept_at = Some(at);
                }
            }
            SmcEventKind::LiquidityInvalidated { direction } => {
                self.pools.retain(|p| !(p.row == row && p.direction == direction));
            }
            SmcEventKind::DealingRange { high, low } => self.dealing_range = Some((high, low)),
            _ => {}
        }
    }

    pub fn interval(&self) -> Interval {
        self.interval
    }

    /// Closed bars fed so far.
    pub fn bars(&self) -> usize {
        self.smc.history().len()
    }

    /// Index of the newest closed bar.
    pub fn last_index(&self) -> Option<BarIndex> {
        self.smc.history().last_index()
    }

    pub fn last_bar(&self) -> Option<&Bar> {
        self.smc.history().last()
    }

    /// Bar `index` (one already fed and still within the history window).
    pub fn bar(&self, index: BarIndex) -> Option<&Bar> {
        self.smc.history().get(index)
    }

    pub fn indicators(&self) -> &IndicatorSet {
        &self.indicators
    }

    /// The newest structure break (by the bar that broke it): the timeframe's current bias.
    pub fn last_break(&self) -> Option<&BreakRecord> {
        self.breaks
            .iter()
            .max_by(|a, b| a.broken_at.cmp(&b.broken_at).then(a.row.cmp(&b.row)))
    }

    pub fn bias(&self) -> Option<Direction> {
        self.last_break().map(|b| b.direction)
    }

    /// A close beyond the newest swing on the newest bar, if one happened.
    pub fn swing_break(&self) -> Option<&SwingBreak> {
        self.swing_break.as_ref()
    }

    /// Structure breaks known now (bounded to the newest [`MAX_BREAKS`]).
    pub fn breaks(&self) -> &[BreakRecord] {
        &self.breaks
    }

    /// Order blocks not invalidated (mitigated ones included, with `touched_at`).
    pub fn order_blocks(&self) -> &[Zone] {
        &self.order_blocks
    }

    /// Fair value gaps not invalidated (mitigated ones included, with `touched_at`).
    pub fn fair_value_gaps(&self) -> &[Zone] {
        &self.gaps
    }

    pub fn liquidity_pools(&self) -> &[Pool] {
        &self.pools
    }

    /// `(high, low)` of the newest swing high and swing low.
    pub fn dealing_range(&self) -> Option<(f64, f64)> {
        self.dealing_range
    }

    /// Confirmed swings (de-duplicated, alternating, row-0 bookend included).
    pub fn swings(&self) -> &[Swing] {
        self.smc.swings()
    }

    /// The newest confirmed, non-bookend swing of `side`.
    pub fn last_swing(&self, side: SwingSide) -> Option<&Swing> {
        self.smc
            .swings()
            .iter()
            .rev()
            .find(|s| s.side == side && !s.bookend)
    }

    /// Latest ATR(14) / its slow EMA(100).
    pub fn volatility_ratio(&self) -> Option<f64> {
        let atr = self.indicators.latest().atr14?;
        let slow = self.atr_slow?;
        (slow > 0.0).then(|| atr / slow)
    }

    /// Newest bar's volume / EMA(20) of volume (the average includes the newest bar).
    pub fn volume_ratio(&self) -> Option<f64> {
        let average = self.volume_average?;
        let bar = self.last_bar()?;
        (average > 0.0).then(|| bar.volume / average)
    }
}

/// All timeframes of one symbol. Feed closed bars in time order with [`SymbolAnalysis::on_closed_bar`];
/// when bars of several timeframes close at the same instant, feed the higher ones first so an
/// evaluation after the entry bar sees them.
#[derive(Debug, Clone)]
pub struct SymbolAnalysis {
    timeframes: [TimeframeState; 3],
}

impl SymbolAnalysis {
    pub fn new(config: &AnalysisConfig) -> Result<Self, AnalysisError> {
        let (e, s, h) = (
            config.entry.interval,
            config.setup.interval,
            config.higher.interval,
        );
        let ordered = match (e.fixed_millis(), s.fixed_millis(), h.fixed_millis()) {
            (Some(entry), Some(setup), Some(higher)) => entry < setup && setup < higher,
            _ => false,
        };
        if !ordered {
            return Err(AnalysisError::Timeframes(e, s, h));
        }
        Ok(Self {
            timeframes: [
                TimeframeState::new(config.entry)?,
                TimeframeState::new(config.setup)?,
                TimeframeState::new(config.higher)?,
            ],
        })
    }

    /// Reserves room for `bars` entry-timeframe bars (and proportionally fewer on the others).
    pub fn reserve(&mut self, bars: usize) {
        for state in &mut self.timeframes {
            state.reserved = bars;
            state.smc.reserve(bars);
        }
    }

    /// Feeds one closed bar of `interval`; returns the role it updated.
    pub fn on_closed_bar(&mut self, interval: Interval, bar: &Bar) -> Result<Role, AnalysisError> {
        let role = Role::ALL
            .into_iter()
            .find(|r| self.timeframes[r.slot()].interval == interval)
            .ok_or(AnalysisError::UnknownInterval(interval))?;
        self.timeframes[role.slot()].on_bar(bar)?;
        Ok(role)
    }

    pub fn timeframe(&self, role: Role) -> &TimeframeState {
        &self.timeframes[role.slot()]
    }

    pub fn entry(&self) -> &TimeframeState {
        self.timeframe(Role::Entry)
    }

    pub fn setup(&self) -> &TimeframeState {
        self.timeframe(Role::Setup)
    }

    pub fn higher(&self) -> &TimeframeState {
        self.timeframe(Role::Higher)
    }
}
