//! Signals to virtual positions inside the engine: risk, the book, the breaker, the event log.
//!
//! [`Trading`] is the engine's trading desk. The trading cycle hands it each symbol's newest signal
//! (once per signal); it asks the breaker, sizes the trade with the symbol's filters and brackets,
//! and opens a position at the current mark. Mark prices from `<symbol>@markPrice@1s` feed the book,
//! the monitor tick (every [`MONITOR_TICK`]) runs the checks that are due, and the virtual cycle
//! expires positions, settles funding, samples equity, feeds the breaker and saves its state. Every
//! lifecycle event passes through [`Trading::record`], which keeps the log for the view, counts the
//! kinds, and tells the breaker about closed trades. Nothing here awaits: the engine task owns it.
//!
//! Everything worth keeping leaves through [`Outlets`] (the journal and Discord, never waited on): the
//! desk calls it from `record`, from breaker transitions and from the virtual cycle, and at start-up
//! [`Trading::restore_positions`] puts the journal's open positions back on the book.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    path::PathBuf,
    time::Duration,
};

use super::outlets::{Outlets, RestoreError};
use crate::{
    binance::{filters::SymbolFilters, parse::MarkUpdate, wire},
    domain::{SymbolId, TimestampMs},
    execution::ExecutionLink,
    positions::{
        BookConfig, CloseReason, EventKind, LifecycleEvent, NewPosition, PositionBook, PositionId, RunMode,
    },
    risk::{
        BracketTable, Breaker, BreakerConfig, BreakerInput, Refusal, RiskParams, Tier, TradePlan,
        breaker::Transition, size_trade,
    },
    strategy::{Mode, Signal},
};

/// How often the engine runs the checks that are due. The fastest lane is 100 ms; a 25 ms tick keeps
/// the lag of a due check under 25 ms when the engine is idle.
pub const MONITOR_TICK: Duration = Duration::from_millis(25);

/// Lifecycle events kept for the view (the event log), `PriceUpdated` excluded.
pub const EVENT_LOG: usize = 200;

/// Equity samples kept (one per virtual cycle: 512 × 10 s ≈ 85 minutes).
pub const EQUITY_POINTS: usize = 512;

/// A manual entry's stop lies this many entry-timeframe ATRs from the mark: far enough that the
/// bar-to-bar noise does not take it out at once, near enough to size a meaningful position.
pub const MANUAL_STOP_ATRS: f64 = 2.0;
/// A manual entry's target, in multiples of its stop distance.
pub const MANUAL_REWARD_RISK: f64 = 2.0;
/// The confidence a manual entry is sized with: halfway between the leverage floor
/// (`min_confidence`, 1x) and full confidence, since no model or rule scored it.
pub const MANUAL_CONFIDENCE: f64 = 0.75;

/// What the desk needs to open a position, from a signal or from the operator.
#[derive(Debug, Clone, Copy)]
struct EntryRequest {
    symbol: SymbolId,
    side: crate::domain::Side,
    /// Market time the entry was decided at.
    at: TimestampMs,
    stop: f64,
    take_profit: f64,
    /// In `0..=1`, for the leverage.
    confidence: f64,
}

/// Trading settings, from the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct TradingSettings {
    pub run_mode: RunMode,
    /// Starting equity of the paper account, USDT.
    pub paper_equity: f64,
    pub risk: RiskParams,
    pub book: BookConfig,
    pub breaker: BreakerConfig,
    /// Where the breaker state is saved; `None` keeps it in memory only (tests).
    pub breaker_path: Option<PathBuf>,
    /// Market-time lifetime of a position.
    pub position_ttl: Duration,
    /// Trailing distance in multiples of the initial stop distance; 0 for a fixed stop.
    pub trailing_stop_r: f64,
    /// A signal older than this (market time, from its entry bar's close) is not acted upon.
    pub max_signal_age: Duration,
}

impl Default for TradingSettings {
    fn default() -> Self {
        Self {
            run_mode: RunMode::Paper,
            paper_equity: 10_000.0,
            risk: RiskParams::default(),
            book: BookConfig::default(),
            breaker: BreakerConfig::default(),
            breaker_path: None,
            position_ttl: Duration::from_secs(4 * 3600),
            trailing_stop_r: 0.0,
            max_signal_age: Duration::from_secs(15 * 60),
        }
    }
}

/// The kill switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KillSwitch {
    #[default]
    Ready,
    /// Pulled at this wall time: everything closed, breaker in Halt until reset.
    Engaged(TimestampMs),
}

/// The funnel's last two stages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RiskFunnel {
    /// Signals the trading cycle looked at (each once).
    pub considered: u64,
    /// Signals sized within the caps with no breaker refusal.
    pub accepted: u64,
    pub opened: u64,
    /// Refusals per [`Refusal::key`].
    pub refusals: HashMap<&'static str, u64>,
}

/// The trading desk. See the module docs.
#[derive(Debug)]
pub struct Trading {
    settings: TradingSettings,
    pub book: PositionBook,
    pub breaker: Breaker,
    filters: HashMap<SymbolId, SymbolFilters>,
    brackets: HashMap<SymbolId, BracketTable>,
    default_brackets: BracketTable,
    /// The entry-bar close time of the last signal acted upon, per symbol.
    acted: HashMap<SymbolId, TimestampMs>,
    scratch: Vec<LifecycleEvent>,
    /// Newest last.
    pub log: VecDeque<LifecycleEvent>,
    /// Events per [`EventKind::name`] since start.
    pub event_counts: HashMap<&'static str, u64>,
    /// (wall time, equity), newest last.
    pub equity_points: VecDeque<(TimestampMs, f64)>,
    pub funnel: RiskFunnel,
    pub kill_switch: KillSwitch,
    /// Newest market time seen on the mark stream.
    pub market_now: TimestampMs,
    origin: std::time::Instant,
    /// A message for the status bar (breaker transitions, refusals of operator actions).
    pub message: Option<String>,
    breaker_error_reported: bool,
    /// Live execution: positions and the kill switch mirrored on the venue (`TRADING_ENABLED`).
    execution: Option<ExecutionLink>,
    /// Realised P&L of the positions closed before a restart (from the journal), part of equity.
    carried_pnl: f64,
    /// The journal and Discord.
    pub outlets: Outlets,
    /// The strategy evolver's leverage cap and risk fraction for `self_learning` entries, already
    /// bounded by the hard caps (and bounded again here).
    learning_limits: Option<crate::ml::evolver::Bounded>,
    /// Open positions entered in `self_learning`: their realised R is the evolver's reward.
    learning_positions: HashSet<PositionId>,
    /// Realised R of `self_learning` positions closed since the engine last took them.
    learning_r: Vec<f64>,
    /// Closed positions not yet taken by the engine (self-learning); `None`: not collected.
    closes: Option<Vec<LifecycleEvent>>,
}

/// Realised R values kept for the evolver between two decisions (older ones are dropped).
const LEARNING_R_KEPT: usize = 4096;

impl Trading {
    pub fn new(settings: TradingSettings) -> Self {
        let now = crate::domain::now_ms();
        let mut message = None;
        let breaker = match &settings.breaker_path {
            None => Breaker::new(settings.breaker.clone()),
            Some(path) => match Breaker::load(settings.breaker.clone(), path) {
                Ok(b) => b,
                Err(error) => {
                    tracing::error!(%error, "circuit breaker state unreadable: starting in Halt");
                    message = Some(format!("{error}: breaker in Halt until reset"));
                    Breaker::fail_safe(settings.breaker.clone(), now)
                }
            },
        };
        if breaker.tier() != Tier::Normal && message.is_none() {
            message = Some(format!("circuit breaker restored in {}", breaker.tier()));
        }
        Self {
            book: PositionBook::new(settings.book),
            breaker,
            filters: HashMap::new(),
            brackets: HashMap::new(),
            default_brackets: BracketTable::conservative_default(),
            acted: HashMap::new(),
            scratch: Vec::with_capacity(1024),
            log: VecDeque::with_capacity(EVENT_LOG),
            event_counts: HashMap::new(),
            equity_points: VecDeque::with_capacity(EQUITY_POINTS),
            funnel: RiskFunnel::default(),
            kill_switch: KillSwitch::Ready,
            market_now: 0,
            origin: std::time::Instant::now(),
            message,
            breaker_error_reported: false,
            execution: None,
            carried_pnl: 0.0,
            learning_limits: None,
            learning_positions: HashSet::new(),
            learning_r: Vec::new(),
            outlets: Outlets::default(),
            closes: None,
            settings,
        }
    }

    /// Connects the desk to the journal and Discord. With a journal, what does not need the venue's
    /// symbols is restored at once: new positions are numbered after every journalled one, the realised
    /// P&L of closed positions counts in equity, and the last equity sample starts the curve. The open
    /// positions wait for [`Self::restore_positions`].
    pub fn connect(&mut self, outlets: Outlets) {
        let before = std::mem::replace(&mut self.outlets, outlets);
        self.outlets.keep_names(before);
        let Some(state) = self.outlets.pending_restore() else {
            return;
        };
        self.book.number_after(state.max_position_number);
        self.carried_pnl = super::outlets::float(state.closed_realised_pnl);
        if let Some(e) = &state.last_equity {
            self.equity_points
                .push_back((e.at_ms, super::outlets::float(e.equity)));
        }
        let journal_tier = state.breaker.as_ref().map(|b| b.tier);
        let tier = self.breaker.tier();
        if let Some(journal_tier) = journal_tier
            && journal_tier != tier
            && self.settings.breaker_path.is_some()
        {
            // breaker.json is the breaker's source of truth (ARCHITECTURE.md §7); say so when the
            // journal's history ends elsewhere (a breaker.json restored from a backup, say).
            tracing::warn!(
                %journal_tier,
                %tier,
                "breaker.json and the journal disagree; breaker.json wins"
            );
        }
        let (state, wall) = (self.breaker.state().clone(), crate::domain::now_ms());
        self.outlets.on_breaker(&state, None, wall);
    }

    /// Puts the journal's open positions back on the book, exactly as journalled, and resumes their
    /// monitoring (no `Created` event: that was journalled when they opened). Signals journalled before
    /// the restart are not acted upon again. Called once the venue's symbols are known; returns the
    /// number restored (0 when there was nothing to restore).
    pub fn restore_positions(&mut self, id_of: impl Fn(&str) -> Option<SymbolId>) -> usize {
        let Some(state) = self.outlets.take_restore() else {
            return 0;
        };
        for (name, at) in &state.last_signal_ms {
            if let Some(id) = id_of(name) {
                let seen = self.acted.entry(id).or_insert(*at);
                *seen = (*seen).max(*at);
            }
        }
        let now = self.monitor_now();
        let mut restored = 0;
        let mut problems = Vec::new();
        for record in state.open_positions {
            let result = id_of(&record.symbol)
                .ok_or_else(|| RestoreError::UnknownSymbol {
                    id: record.position_id.clone(),
                    symbol: record.symbol.clone(),
                })
                .and_then(|symbol| {
                    let p = super::outlets::position_from_record(&record, symbol)?;
                    let id = p.id;
                    self.book
                        .restore(p, now)
                        .map_err(|r| RestoreError::Refused {
                            id: record.position_id.clone(),
                            reason: r.to_string(),
                        })
                        .map(|()| (id, symbol))
                });
            match result {
                Ok((id, symbol)) => {
                    self.outlets.name_symbol(symbol, &record.symbol);
                    if let Some(p) = self.book.get(id) {
                        // What the book now holds, in the journal's terms: the crash test compares it
                        // with the row it was restored from.
                        let back = super::outlets::position_record(
                            p,
                            &record.symbol,
                            record.execution,
                            record.revision,
                            record.updated_at_ms,
                        );
                        let json = serde_json::to_string(&back).unwrap_or_default();
                        tracing::info!(position = %id, record = %json, "journal: position restored");
                    }
                    // A live position is handed to the executor, which takes its venue position and
                    // resting stop and target back at the next reconciliation.
                    if record.execution == crate::journal::Execution::Live
                        && let (Some(x), Some(p)) = (self.execution.as_mut(), self.book.get(id))
                    {
                        x.adopt(crate::execution::ExecCommand::Adopt {
                            position: id,
                            symbol,
                            side: p.side,
                            qty: p.qty,
                            stop_loss: p.stop_loss,
                            take_profit: p.take_profit,
                        });
                    }
                    self.outlets.adopt(id, record);
                    restored += 1;
                }
                Err(error) => {
                    tracing::error!(%error, "journal: position not restored");
                    problems.push(error.to_string());
                }
            }
        }
        tracing::info!(restored, failed = problems.len(), "journal: restore finished");
        self.message = Some(if problems.is_empty() {
            format!("journal: {restored} open positions restored")
        } else {
            format!(
                "journal: {restored} open positions restored, {} not: {}",
                problems.len(),
                problems.join("; ")
            )
        });
        self.outlets.ops(
            crate::notify::OpsKind::Started,
            "started",
            &format!("perpdesk started: {restored} open positions restored from the journal"),
        );
        restored
    }

    pub fn settings(&self) -> &TradingSettings {
        &self.settings
    }

    /// Mirrors every position opened and closed from now on, and the kill switch, on the venue.
    pub fn set_execution(&mut self, link: ExecutionLink) {
        self.execution = Some(link);
    }

    pub fn execution(&self) -> Option<&ExecutionLink> {
        self.execution.as_ref()
    }

    pub fn execution_mut(&mut self) -> Option<&mut ExecutionLink> {
        self.execution.as_mut()
    }

    /// Closes one position (an execution report: the venue refused the entry, or its own stop or
    /// target closed it). False when it was not open.
    pub fn close_position(&mut self, id: PositionId, reason: CloseReason) -> bool {
        let mut scratch = std::mem::take(&mut self.scratch);
        let closed = self.book.close(id, reason, self.market_now, &mut scratch).is_ok();
        self.record(&mut scratch);
        self.scratch = scratch;
        closed
    }

    /// Why a restored live position the venue no longer holds was closed, as far as the evidence
    /// goes. `positionRisk` keeps no exit record, so the only evidence is where the price is now
    /// (`venue_mark`, the venue's mark; the book's last mark when that is 0): past the stop means the
    /// venue's stop fired (a trailed stop counts as the trailing stop), past the target its take
    /// profit; between the two nothing shows which, and a position gone with both levels uncrossed
    /// was most likely closed by hand on the venue, so it is counted as manual.
    pub fn restored_close_reason(&self, id: PositionId, venue_mark: f64) -> CloseReason {
        let Some(p) = self.book.get(id) else {
            return CloseReason::Manual;
        };
        let mark = if venue_mark > 0.0 { venue_mark } else { p.mark };
        let (past_stop, past_target) = match p.side {
            crate::domain::Side::Long => (mark <= p.stop_loss, mark >= p.take_profit),
            crate::domain::Side::Short => (mark >= p.stop_loss, mark <= p.take_profit),
        };
        if past_stop {
            if p.trailing.is_some() && (p.stop_loss - p.initial_stop).abs() > f64::EPSILON {
                CloseReason::TrailingStop
            } else {
                CloseReason::StopLoss
            }
        } else if past_target {
            CloseReason::TakeProfit
        } else {
            CloseReason::Manual
        }
    }

    /// Monitoring clock: milliseconds since the desk was created (monotonic).
    pub fn monitor_now(&self) -> i64 {
        self.origin.elapsed().as_millis() as i64
    }

    /// Sets the strategy evolver's limits for `self_learning` entries (`None`: the configured ones).
    pub fn set_learning_limits(&mut self, limits: Option<crate::ml::evolver::Bounded>) {
        self.learning_limits = limits;
    }

    /// The risk parameters an entry of `strategy` is sized with: the configured ones, and for
    /// `self_learning` the evolver's leverage cap and risk fraction, never above the configured caps.
    pub fn risk_for(&self, strategy: Mode) -> RiskParams {
        let mut risk = self.settings.risk;
        if strategy == Mode::SelfLearning
            && let Some(limits) = self.learning_limits
        {
            risk.max_leverage = risk.max_leverage.min(limits.max_leverage).max(1);
            if limits.risk_fraction.is_finite() && limits.risk_fraction > 0.0 {
                risk.risk_fraction = risk.risk_fraction.min(limits.risk_fraction);
            }
        }
        risk
    }

    /// Takes the realised R of the `self_learning` positions closed since the last call.
    pub fn take_learning_r(&mut self) -> Vec<f64> {
        std::mem::take(&mut self.learning_r)
    }

    /// Equity: paper capital + realised P&L + unrealised P&L (fees and funding included).
    pub fn equity(&self) -> f64 {
        self.settings.paper_equity
            + self.carried_pnl
            + self.book.totals().realised_pnl
            + self.book.unrealised_pnl()
    }

    /// Keeps the filters of the symbols in an exchange-info answer.
    pub fn on_exchange_info(&mut self, info: &wire::ExchangeInfo, id_of: impl Fn(&str) -> Option<SymbolId>) {
        for s in &info.symbols {
            let Some(id) = id_of(&s.symbol) else { continue };
            self.outlets.name_symbol(id, &s.symbol);
            let Ok(filters) = SymbolFilters::from_symbol_info(s) else {
                continue;
            };
            self.filters.insert(id, filters);
        }
    }

    /// Uses the venue's brackets for a symbol instead of the conservative default.
    pub fn set_brackets(&mut self, symbol: SymbolId, table: BracketTable) {
        self.brackets.insert(symbol, table);
    }

    pub fn on_mark(&mut self, m: &MarkUpdate) {
        self.market_now = self.market_now.max(m.event_time);
        self.book.on_mark(
            m.symbol,
            m.mark_price,
            m.funding_rate,
            m.next_funding_time,
            m.event_time,
        );
    }

    /// Runs the checks that are due. Returns how many ran.
    pub fn monitor(&mut self) -> usize {
        let now = self.monitor_now();
        let mut scratch = std::mem::take(&mut self.scratch);
        let checks = self.book.run_due(now, self.market_now, &mut scratch);
        self.record(&mut scratch);
        self.scratch = scratch;
        if self.outlets.waiting() > 0 {
            self.outlets.drain();
        }
        checks
    }

    /// Considers a symbol's newest signal, once per signal. `None` when it was seen before or is too old.
    pub fn consider(
        &mut self,
        signal: &Signal,
        strategy: Mode,
        feature_slot: Option<u32>,
    ) -> Option<Result<PositionId, Refusal>> {
        if self.acted.get(&signal.symbol).is_some_and(|at| *at >= signal.at) {
            return None;
        }
        let max_age = self.settings.max_signal_age.as_millis() as i64;
        if self.market_now > 0 && self.market_now - signal.at > max_age {
            return None;
        }
        self.acted.insert(signal.symbol, signal.at);
        self.funnel.considered += 1;
        let result = self.open_from(signal, strategy, feature_slot);
        match &result {
            Ok(_) => {
                self.funnel.accepted += 1;
                self.funnel.opened += 1;
            }
            Err(refusal) => {
                // The book's own refusal (MAX_POSITIONS) comes after risk accepted the trade.
                if *refusal == Refusal::MaxPositions {
                    self.funnel.accepted += 1;
                }
                *self.funnel.refusals.entry(refusal.key()).or_default() += 1;
            }
        }
        Some(result)
    }

    fn open_from(
        &mut self,
        signal: &Signal,
        strategy: Mode,
        feature_slot: Option<u32>,
    ) -> Result<PositionId, Refusal> {
        let entry = EntryRequest {
            symbol: signal.symbol,
            side: signal.side,
            at: signal.at,
            stop: signal.stop,
            take_profit: signal.take_profit,
            confidence: signal.quality.total,
        };
        self.open_entry(&entry, strategy, feature_slot)
    }

    /// An operator's manual entry at the mark, through the same gates, sizing and book as a signal:
    /// the stop [`MANUAL_STOP_ATRS`] entry-timeframe ATRs away, the target at [`MANUAL_REWARD_RISK`].
    /// Attributed to the strategy mode that was active, since the position is monitored, journalled
    /// and closed like any other; but its R is never the strategy evolver's reward in `self_learning`,
    /// which learns only from the positions its own parameter set chose.
    pub fn open_manual(
        &mut self,
        symbol: SymbolId,
        side: crate::domain::Side,
        atr: f64,
        strategy: Mode,
        feature_slot: Option<u32>,
    ) -> Result<PositionId, Refusal> {
        if !(atr.is_finite() && atr > 0.0) {
            return Err(Refusal::InvalidStop);
        }
        let mark = self.book.mark(symbol).ok_or(Refusal::NoMarkPrice)?.mark;
        let s = match side {
            crate::domain::Side::Long => 1.0,
            crate::domain::Side::Short => -1.0,
        };
        let distance = MANUAL_STOP_ATRS * atr;
        let entry = EntryRequest {
            symbol,
            side,
            at: self.market_now,
            stop: mark - s * distance,
            take_profit: mark + s * MANUAL_REWARD_RISK * distance,
            confidence: MANUAL_CONFIDENCE,
        };
        let result = self.open_entry(&entry, strategy, feature_slot);
        if let Ok(id) = &result {
            self.funnel.opened += 1;
            self.learning_positions.remove(id);
        }
        result
    }

    fn open_entry(
        &mut self,
        signal: &EntryRequest,
        strategy: Mode,
        feature_slot: Option<u32>,
    ) -> Result<PositionId, Refusal> {
        let stop = signal.stop;
        let multiplier = self.breaker.admit_entry()?;
        if self.kill_switch != KillSwitch::Ready {
            return Err(Refusal::BreakerHalt);
        }
        if self.execution.as_ref().is_some_and(|x| !x.entries_allowed()) {
            return Err(Refusal::NotReconciled);
        }
        if self.book.has_open(signal.symbol, signal.side) {
            return Err(Refusal::AlreadyOpen);
        }
        // One-way mode nets both sides of a symbol into one venue position: live, one per symbol.
        let opposite = match signal.side {
            crate::domain::Side::Long => crate::domain::Side::Short,
            crate::domain::Side::Short => crate::domain::Side::Long,
        };
        if self.execution.is_some() && self.book.has_open(signal.symbol, opposite) {
            return Err(Refusal::AlreadyOpen);
        }
        let mark = self.book.mark(signal.symbol).ok_or(Refusal::NoMarkPrice)?.mark;
        let filters = self.filters.get(&signal.symbol).ok_or(Refusal::NoFilters)?;
        let brackets = self
            .brackets
            .get(&signal.symbol)
            .unwrap_or(&self.default_brackets);
        // The entry is a market order now, at the mark: the signal's stop and target stay where the
        // structure put them, so a mark already beyond either is refused by the sizing (stop) or here.
        let s = match signal.side {
            crate::domain::Side::Long => 1.0,
            crate::domain::Side::Short => -1.0,
        };
        if s * (signal.take_profit - mark) <= 0.0 {
            return Err(Refusal::TargetPassed);
        }
        let plan = TradePlan {
            side: signal.side,
            entry: mark,
            stop,
            confidence: signal.confidence,
            size_multiplier: multiplier,
        };
        let risk = self.risk_for(strategy);
        let sized = size_trade(&risk, &plan, self.equity(), filters, brackets)?;
        let at = self.market_now.max(signal.at);
        let new = NewPosition {
            symbol: signal.symbol,
            side: signal.side,
            qty: sized.qty,
            entry: mark,
            leverage: u16::try_from(sized.leverage).unwrap_or(u16::MAX),
            take_profit: signal.take_profit,
            stop_loss: stop,
            // The trail starts at the stop's own distance (times the setting) and only tightens.
            trailing: (self.settings.trailing_stop_r > 0.0)
                .then(|| self.settings.trailing_stop_r * (mark - stop).abs()),
            liquidation: sized.liquidation,
            expires_at: at.saturating_add(self.settings.position_ttl.as_millis() as i64),
            strategy,
            run_mode: self.settings.run_mode,
            feature_slot,
        };
        let now = self.monitor_now();
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = self.book.open(&new, now, at, &mut scratch);
        if strategy == Mode::SelfLearning
            && let Ok(id) = &result
        {
            self.learning_positions.insert(*id);
        }
        self.record(&mut scratch);
        self.scratch = scratch;
        result
    }

    /// The virtual cycle: expiries, funding, the equity sample, the breaker, its persistence.
    pub fn virtual_cycle(&mut self, wall_now: TimestampMs) {
        let mut scratch = std::mem::take(&mut self.scratch);
        if self.market_now > 0 {
            self.book.expire(self.market_now, &mut scratch);
        }
        self.book.apply_funding();
        self.record(&mut scratch);
        let equity = self.equity();
        if self.equity_points.len() == EQUITY_POINTS {
            self.equity_points.pop_front();
        }
        self.equity_points.push_back((wall_now, equity));
        let snapshot = crate::journal::EquitySnapshot {
            at_ms: wall_now,
            execution: match self.settings.run_mode {
                RunMode::Live => crate::journal::Execution::Live,
                _ => crate::journal::Execution::Paper,
            },
            equity: super::outlets::dec(equity),
            balance: super::outlets::dec(equity - self.book.unrealised_pnl()),
            unrealised_pnl: super::outlets::dec(self.book.unrealised_pnl()),
            open_positions: u32::try_from(self.book.len()).unwrap_or(u32::MAX),
        };
        self.outlets
            .on_virtual_cycle(self.book.positions(), snapshot, wall_now);
        let t = self.breaker.apply(BreakerInput::Equity(equity), wall_now);
        self.on_transition(t, &mut scratch);
        let t = self.breaker.apply(BreakerInput::Tick, wall_now);
        self.on_transition(t, &mut scratch);
        // Flatten holds until reset: anything still open (opened before a restart restored the
        // tier, or a close that raced the transition) is closed here.
        if self.breaker.must_flatten() && !self.book.is_empty() {
            self.book
                .close_all(CloseReason::Breaker, self.market_now, &mut scratch);
            self.record(&mut scratch);
        }
        self.scratch = scratch;
        self.save_breaker();
        let state = self.breaker.state().clone();
        self.outlets.on_breaker(&state, None, wall_now);
    }

    /// Journals the current state of every open position (at shutdown, so a restart resumes from the
    /// latest marks rather than the last virtual cycle's).
    pub fn persist_now(&mut self, wall_now: TimestampMs) {
        for p in self.book.positions() {
            self.outlets.snapshot(p, wall_now);
        }
    }

    /// Feeds an operational fault or signal to the breaker.
    pub fn breaker_input(&mut self, input: BreakerInput, wall_now: TimestampMs) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let t = self.breaker.apply(input, wall_now);
        self.on_transition(t, &mut scratch);
        self.scratch = scratch;
        if t.is_some() {
            self.save_breaker();
        }
    }

    fn on_transition(&mut self, t: Option<Transition>, scratch: &mut Vec<LifecycleEvent>) {
        let Some(t) = t else { return };
        let state = self.breaker.state().clone();
        self.outlets.on_breaker(&state, Some(&t), t.at);
        self.message = Some(match t.cause {
            Some(cause) => format!("circuit breaker {} → {} ({cause})", t.from, t.to),
            None => format!("circuit breaker {} → {}", t.from, t.to),
        });
        if t.to == Tier::Flatten {
            self.book
                .close_all(CloseReason::Breaker, self.market_now, scratch);
            self.record(scratch);
        }
    }

    /// Pulls the kill switch: closes every position and halts the breaker (reset to trade again).
    pub fn pull_kill_switch(&mut self, wall_now: TimestampMs) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let closed = self
            .book
            .close_all(CloseReason::KillSwitch, self.market_now, &mut scratch);
        self.record(&mut scratch);
        self.scratch = scratch;
        if let Some(x) = self.execution.as_mut() {
            x.kill_switch();
        }
        self.kill_switch = KillSwitch::Engaged(wall_now);
        self.breaker_input(BreakerInput::Manual(Tier::Halt), wall_now);
        self.message = Some(format!(
            "kill switch: {closed} positions closed; breaker in Halt until reset"
        ));
        self.outlets.breaker_alert(
            "kill-switch",
            &format!("kill switch pulled: {closed} positions closed; breaker in Halt until reset"),
        );
    }

    /// The operator's confirmed reset (the console asked for the confirmation): the breaker's two
    /// steps in one, refused with the reason while its cooldown runs.
    pub fn reset_breaker(&mut self, wall_now: TimestampMs) -> Result<(), Refusal> {
        let result = self
            .breaker
            .request_reset(wall_now)
            .and_then(|token| self.breaker.confirm_reset(token, wall_now));
        match result {
            Ok(t) => {
                let state = self.breaker.state().clone();
                self.outlets.on_breaker(&state, Some(&t), wall_now);
                self.kill_switch = KillSwitch::Ready;
                self.message = Some(format!("circuit breaker reset: {} → {}", t.from, t.to));
                self.save_breaker();
                Ok(())
            }
            Err(refusal) => {
                let wait = self.breaker.cooldown_remaining(wall_now) / 1000;
                self.message = Some(if refusal == Refusal::CooldownActive {
                    format!("breaker reset refused: {refusal} ({wait} s left)")
                } else {
                    format!("breaker reset refused: {refusal}")
                });
                Err(refusal)
            }
        }
    }

    fn save_breaker(&mut self) {
        let Some(path) = self.settings.breaker_path.clone() else {
            return;
        };
        if !self.breaker.is_dirty() {
            return;
        }
        if let Err(error) = self.breaker.save(&path) {
            if self.breaker_error_reported {
                tracing::debug!(%error, "breaker state");
            } else {
                self.breaker_error_reported = true;
                tracing::error!(%error, "breaker state");
                self.message = Some(error.to_string());
            }
        }
    }

    /// Collects closed positions from now on, for [`Self::take_closes`] (self-learning).
    pub fn collect_closes(&mut self) {
        self.closes.get_or_insert_with(Vec::new);
    }

    /// The `Closed` events since the last call (empty unless collecting).
    pub fn take_closes(&mut self) -> Vec<LifecycleEvent> {
        self.closes.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Takes events out of `events` into the log and the counters; closed trades go to the breaker.
    fn record(&mut self, events: &mut Vec<LifecycleEvent>) {
        let wall = crate::domain::now_ms();
        self.outlets.on_events(events, |id| self.book.get(id), wall);
        for e in events.drain(..) {
            *self.event_counts.entry(e.kind.name()).or_default() += 1;
            if let Some(x) = self.execution.as_mut() {
                x.mirror(&e);
            }
            if let (EventKind::Closed { .. }, Some(closes)) = (e.kind, self.closes.as_mut()) {
                closes.push(e);
            }
            if let EventKind::Closed {
                pnl,
                reason,
                r_multiple,
                ..
            } = e.kind
            {
                if self.learning_positions.remove(&e.position) && self.learning_r.len() < LEARNING_R_KEPT {
                    self.learning_r.push(r_multiple);
                }
                tracing::info!(position = %e.position, symbol = e.symbol.0, reason = reason.name(), pnl, "position closed");
                if let Some(t) = self.breaker.apply(BreakerInput::TradeClosed { pnl }, wall) {
                    self.message = Some(format!("circuit breaker {} → {}", t.from, t.to));
                    let state = self.breaker.state().clone();
                    self.outlets.on_breaker(&state, Some(&t), wall);
                }
            }
            if matches!(e.kind, EventKind::PriceUpdated { .. }) {
                continue;
            }
            if self.log.len() == EVENT_LOG {
                self.log.pop_front();
            }
            self.log.push_back(e);
        }
        if let Some(x) = self.execution.as_mut() {
            x.flush_moves();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::Side,
        strategy::{QualityScore, Signal},
    };

    fn info() -> wire::ExchangeInfo {
        serde_json::from_str(
            r#"{"timezone":"UTC","serverTime":1,"rateLimits":[],"symbols":[{"symbol":"BTCUSDT","contractType":"PERPETUAL",
            "status":"TRADING","baseAsset":"BTC","quoteAsset":"USDT","pricePrecision":1,"quantityPrecision":3,"filters":[
            {"filterType":"PRICE_FILTER","minPrice":"0.1","maxPrice":"1000000","tickSize":"0.1"},
            {"filterType":"LOT_SIZE","minQty":"0.001","maxQty":"1000","stepSize":"0.001"},
            {"filterType":"MIN_NOTIONAL","notional":"5"}]}]}"#,
        )
        .expect("exchange info")
    }

    fn signal(at: TimestampMs, side: Side, stop: f64, take_profit: f64) -> Signal {
        Signal {
            symbol: SymbolId(0),
            side,
            at,
            entry: 30_000.0,
            stop,
            take_profit,
            reward_risk: 2.0,
            confluences: Vec::new(),
            evidence: Vec::new(),
            quality: QualityScore {
                components: [0.8; 6],
                total: 0.8,
            },
        }
    }

    fn mark(price: f64, at: TimestampMs) -> MarkUpdate {
        MarkUpdate {
            symbol: SymbolId(0),
            mark_price: price,
            index_price: price,
            funding_rate: 0.0001,
            next_funding_time: 8 * 3_600_000,
            event_time: at,
        }
    }

    fn desk() -> Trading {
        let mut t = Trading::new(TradingSettings::default());
        t.on_exchange_info(&info(), |name| (name == "BTCUSDT").then_some(SymbolId(0)));
        t
    }

    #[test]
    fn a_manual_entry_sits_two_atrs_from_the_mark_with_a_two_r_target_and_passes_the_same_gates() {
        let mut t = desk();
        assert_eq!(
            t.open_manual(SymbolId(0), Side::Short, 50.0, Mode::Ict, None),
            Err(Refusal::NoMarkPrice)
        );
        t.on_mark(&mark(30_000.0, 61_000));
        assert_eq!(
            t.open_manual(SymbolId(0), Side::Short, f64::NAN, Mode::Ict, None),
            Err(Refusal::InvalidStop),
            "no ATR, no stop"
        );
        let id = t
            .open_manual(SymbolId(0), Side::Short, 50.0, Mode::Hybrid, Some(2))
            .expect("opened");
        let p = t.book.get(id).expect("open");
        assert_eq!(
            (p.side, p.entry, p.stop_loss, p.take_profit),
            (Side::Short, 30_000.0, 30_100.0, 29_800.0)
        );
        assert_eq!((p.strategy, p.feature_slot), (Mode::Hybrid, Some(2)));
        // 1 % of 10 000 over a 100 stop plus fees: the same sizing as a signal's.
        assert!(p.qty > 0.0 && p.leverage >= 1, "{p:?}");
        assert_eq!(
            t.open_manual(SymbolId(0), Side::Short, 50.0, Mode::Ict, None),
            Err(Refusal::AlreadyOpen)
        );
        t.pull_kill_switch(70_000);
        assert_eq!(
            t.open_manual(SymbolId(0), Side::Long, 50.0, Mode::Ict, None),
            Err(Refusal::BreakerHalt),
            "the kill switch refuses manual entries too"
        );
    }

    #[test]
    fn only_the_evolvers_own_positions_give_it_a_reward() {
        let mut t = desk();
        t.on_mark(&mark(30_000.0, 61_000));
        // A manual entry in self_learning closes without giving the evolver an R...
        let manual = t
            .open_manual(SymbolId(0), Side::Short, 50.0, Mode::SelfLearning, None)
            .expect("opened");
        assert!(t.close_position(manual, CloseReason::Manual));
        assert!(
            t.take_learning_r().is_empty(),
            "the operator's trade is not the evolver's"
        );
        // ...a self_learning signal's position does.
        let s = signal(62_000, Side::Long, 29_700.0, 30_600.0);
        let id = t
            .consider(&s, Mode::SelfLearning, None)
            .expect("considered")
            .expect("opened");
        assert!(t.close_position(id, CloseReason::Manual));
        assert_eq!(t.take_learning_r().len(), 1);
    }

    #[test]
    fn a_signal_opens_one_position_once_and_refusals_are_counted() {
        let mut t = desk();
        let s = signal(60_000, Side::Long, 29_700.0, 30_600.0);
        assert_eq!(t.consider(&s, Mode::Ict, None), Some(Err(Refusal::NoMarkPrice)));
        assert_eq!(t.consider(&s, Mode::Ict, None), None, "each signal once");
        t.on_mark(&mark(30_000.0, 61_000));
        let s = signal(120_000, Side::Long, 29_700.0, 30_600.0);
        let id = t
            .consider(&s, Mode::Ict, Some(4))
            .expect("considered")
            .expect("opened");
        let p = t.book.get(id).expect("open");
        assert_eq!((p.qty, p.feature_slot), (0.303, Some(4)));
        assert_eq!(p.expires_at, 120_000 + 4 * 3_600_000);
        // A second long on the same symbol is refused while the first is open.
        let s = signal(180_000, Side::Long, 29_700.0, 30_600.0);
        assert_eq!(t.consider(&s, Mode::Ict, None), Some(Err(Refusal::AlreadyOpen)));
        // A target the mark already passed.
        let s = signal(240_000, Side::Short, 31_000.0, 30_100.0);
        assert_eq!(t.consider(&s, Mode::Ict, None), Some(Err(Refusal::TargetPassed)));
        assert_eq!(
            (t.funnel.considered, t.funnel.accepted, t.funnel.opened),
            (4, 1, 1)
        );
        assert_eq!(t.funnel.refusals.get("no_mark_price"), Some(&1));
        assert_eq!(t.log.front().map(|e| e.kind.name()), Some("created"));
    }

    #[test]
    fn self_learning_limits_never_exceed_the_configured_caps() {
        use crate::ml::evolver::Bounded;
        let mut t = desk();
        let configured = t.settings().risk;
        assert_eq!(t.risk_for(Mode::SelfLearning), configured);
        t.set_learning_limits(Some(Bounded {
            max_leverage: 500,
            risk_fraction: 0.5,
        }));
        let wild = t.risk_for(Mode::SelfLearning);
        assert_eq!(wild.max_leverage, configured.max_leverage);
        assert!((wild.risk_fraction - configured.risk_fraction).abs() < 1e-15);
        t.set_learning_limits(Some(Bounded {
            max_leverage: 3,
            risk_fraction: 0.005,
        }));
        let tight = t.risk_for(Mode::SelfLearning);
        assert_eq!((tight.max_leverage, tight.risk_fraction), (3, 0.005));
        assert_eq!(
            t.risk_for(Mode::Ict),
            configured,
            "other modes keep the configured risk"
        );
        t.set_learning_limits(Some(Bounded {
            max_leverage: 0,
            risk_fraction: f64::NAN,
        }));
        let odd = t.risk_for(Mode::SelfLearning);
        assert_eq!(odd.max_leverage, 1);
        assert!((odd.risk_fraction - configured.risk_fraction).abs() < 1e-15);
    }

    #[test]
    fn the_monitor_closes_at_the_stop_and_the_breaker_hears_of_it() {
        let mut t = desk();
        t.on_mark(&mark(30_000.0, 1_000));
        t.consider(&signal(1_000, Side::Long, 29_700.0, 30_600.0), Mode::Ict, None)
            .expect("considered")
            .expect("opened");
        t.on_mark(&mark(29_650.0, 2_000));
        t.on_mark(&mark(29_900.0, 3_000));
        // Make the position due now rather than in 5 s.
        t.origin -= Duration::from_secs(6);
        assert_eq!(t.monitor(), 1);
        assert!(t.book.is_empty());
        assert_eq!(t.event_counts.get("stop_loss_triggered"), Some(&1));
        assert_eq!(t.breaker.state().consecutive_losses, 1);
        assert!(t.book.totals().realised_pnl < -99.0);
    }

    #[test]
    fn with_trailing_stop_r_the_stop_trails_at_its_own_distance_and_only_tightens() {
        let mut t = Trading::new(TradingSettings {
            trailing_stop_r: 1.0,
            ..TradingSettings::default()
        });
        t.on_exchange_info(&info(), |name| (name == "BTCUSDT").then_some(SymbolId(0)));
        t.on_mark(&mark(30_000.0, 1_000));
        let id = t
            .consider(&signal(1_000, Side::Long, 29_700.0, 30_600.0), Mode::Ict, None)
            .expect("considered")
            .expect("opened");
        assert_eq!(t.book.get(id).expect("open").trailing, Some(300.0));
        t.on_mark(&mark(30_250.0, 2_000));
        t.on_mark(&mark(30_100.0, 3_000));
        t.origin -= Duration::from_secs(6);
        t.monitor();
        let p = t.book.get(id).expect("still open");
        assert_eq!(
            p.stop_loss, 29_950.0,
            "trailed from the best mark since the last check"
        );
        assert_eq!(t.event_counts.get("trailing_stop_moved"), Some(&1));
        t.on_mark(&mark(30_050.0, 4_000));
        t.origin -= Duration::from_secs(6);
        t.monitor();
        assert_eq!(t.book.get(id).expect("open").stop_loss, 29_950.0, "never loosens");
    }

    #[test]
    fn the_kill_switch_flattens_and_blocks_until_reset() {
        let mut t = desk();
        t.on_mark(&mark(30_000.0, 1_000));
        t.consider(&signal(1_000, Side::Long, 29_700.0, 30_600.0), Mode::Ict, None);
        t.pull_kill_switch(10_000);
        assert!(t.book.is_empty());
        assert_eq!(t.event_counts.get("closed"), Some(&1));
        assert_eq!(t.breaker.tier(), Tier::Halt);
        let s = signal(2_000, Side::Short, 30_300.0, 29_400.0);
        assert_eq!(t.consider(&s, Mode::Ict, None), Some(Err(Refusal::BreakerHalt)));
        assert_eq!(t.reset_breaker(10_001), Err(Refusal::CooldownActive));
        assert!(t.message.as_deref().is_some_and(|m| m.contains("s left")));
        t.reset_breaker(10_000 + 61 * 60_000)
            .expect("reset after the cooldown");
        assert_eq!(t.kill_switch, KillSwitch::Ready);
        let s = signal(3_000, Side::Short, 30_300.0, 29_400.0);
        assert!(matches!(t.consider(&s, Mode::Ict, None), Some(Ok(_))));
    }

    /// A desk journalling to a fresh file in `dir`, with what that file held restored.
    fn journalled(dir: &std::path::Path) -> (Trading, crate::journal::JournalWriter) {
        journalled_as(dir, crate::journal::Execution::Paper)
    }

    fn journalled_as(
        dir: &std::path::Path,
        execution: crate::journal::Execution,
    ) -> (Trading, crate::journal::JournalWriter) {
        let path = crate::journal::journal_path(dir, execution);
        let (mut file, _) = crate::journal::Journal::open(&path).expect("journal");
        let restored = file.restore().expect("restore");
        let writer = crate::journal::JournalWriter::spawn(file, crate::journal::WriterConfig::default())
            .expect("writer");
        let link = super::super::outlets::JournalLink {
            handle: writer.handle(),
            execution,
            restored,
        };
        let mut t = desk();
        t.connect(Outlets::new(Some(link), None));
        (t, writer)
    }

    /// A live desk's link to a (test) executor, gate open.
    fn live_link() -> (
        crate::execution::ExecutionLink,
        tokio::sync::mpsc::UnboundedReceiver<crate::execution::ExecCommand>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut link = crate::execution::ExecutionLink::new(tx);
        link.on_report(&crate::execution::ExecReport::Gate {
            state: crate::execution::GateState::Reconciled,
            detail: String::new(),
        });
        (link, rx)
    }

    #[test]
    fn a_live_restart_hands_restored_positions_to_the_executor_and_explains_a_venue_close() {
        use crate::execution::ExecCommand;
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut a, writer) = journalled_as(dir.path(), crate::journal::Execution::Live);
        let (link, mut rx) = live_link();
        a.set_execution(link);
        a.on_mark(&mark(30_000.0, 1_000));
        let id = a
            .consider(&signal(1_000, Side::Long, 29_700.0, 30_600.0), Mode::Ict, None)
            .expect("considered")
            .expect("opened");
        assert!(matches!(rx.try_recv(), Ok(ExecCommand::Open { .. })));
        let qty = a.book.get(id).expect("open").qty;
        writer.handle().flush_blocking().expect("flushed");
        writer.close();

        let (mut b, writer) = journalled_as(dir.path(), crate::journal::Execution::Live);
        let (link, mut rx) = live_link();
        b.set_execution(link);
        assert_eq!(
            b.restore_positions(|n| (n == "BTCUSDT").then_some(SymbolId(0))),
            1
        );
        assert_eq!(
            rx.try_recv().ok(),
            Some(ExecCommand::Adopt {
                position: id,
                symbol: SymbolId(0),
                side: Side::Long,
                qty,
                stop_loss: 29_700.0,
                take_profit: 30_600.0,
            })
        );
        assert!(rx.try_recv().is_err(), "one command per restored position");
        // The venue no longer holds it: where the venue's mark is says which level closed it.
        assert_eq!(b.restored_close_reason(id, 29_650.0), CloseReason::StopLoss);
        assert_eq!(b.restored_close_reason(id, 30_650.0), CloseReason::TakeProfit);
        assert_eq!(b.restored_close_reason(id, 30_100.0), CloseReason::Manual);
        assert!(b.close_position(id, CloseReason::StopLoss));
        writer.handle().flush_blocking().expect("flushed");
        writer.close();
    }

    #[test]
    fn a_restart_restores_open_positions_exactly_without_a_second_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut a, writer) = journalled(dir.path());
        a.on_mark(&mark(30_000.0, 1_000));
        let id = a
            .consider(&signal(1_000, Side::Long, 29_700.0, 30_600.0), Mode::Ict, Some(2))
            .expect("considered")
            .expect("opened");
        // The engine journals each signal it considered (`Engine::journal_signal`).
        a.outlets.signal(crate::journal::SignalRecord {
            at_ms: 1_000,
            symbol: "BTCUSDT".to_owned(),
            side: Side::Long,
            mode: "ict".to_owned(),
            entry: rust_decimal::Decimal::from(30_000),
            stop: rust_decimal::Decimal::from(29_700),
            take_profit: rust_decimal::Decimal::from(30_600),
            quality: 0.8,
            outcome: format!("accepted: opened {id}"),
            features: Vec::new(),
            rule_hits: serde_json::json!({}),
            model_version: None,
        });
        a.on_mark(&mark(29_760.0, 2_000));
        a.origin -= Duration::from_secs(6);
        a.monitor();
        a.virtual_cycle(1_700_000_000_000);
        let before = a.book.get(id).expect("open").clone();
        assert!(before.warnings().1, "the stop warning was given");
        writer.handle().flush_blocking().expect("flushed");
        writer.close();

        let (mut b, writer) = journalled(dir.path());
        assert_eq!(
            b.restore_positions(|n| (n == "BTCUSDT").then_some(SymbolId(0))),
            1
        );
        let after = b.book.get(id).expect("restored").clone();
        // Everything but the scheduler's own fields and the range since the last check.
        let same = |p: &crate::positions::Position| {
            let mut q = p.clone();
            q.lane = before.lane;
            q.last_check = 0;
            q.high = q.mark;
            q.low = q.mark;
            q.risk_score = 0.0;
            q
        };
        assert_eq!(same(&after), same(&before));
        assert!(b.log.is_empty(), "no Created (or any) event on restore");
        // New positions are numbered after the journalled ones; the old signal is not taken again.
        b.on_mark(&mark(30_000.0, 3_000));
        assert_eq!(
            b.consider(&signal(1_000, Side::Short, 30_300.0, 29_400.0), Mode::Ict, None),
            None
        );
        let next = b
            .consider(&signal(2_500, Side::Short, 30_300.0, 29_400.0), Mode::Ict, None)
            .expect("considered")
            .expect("opened");
        assert!(next.0 > id.0);
        b.pull_kill_switch(1_700_000_100_000);
        writer.handle().flush_blocking().expect("flushed");
        writer.close();

        let path = crate::journal::journal_path(dir.path(), crate::journal::Execution::Paper);
        let j = crate::journal::Journal::open_read_only(&path).expect("read");
        let created = |pid: PositionId| {
            j.events_for(&pid.0.to_string())
                .expect("events")
                .iter()
                .filter(|e| e.kind == crate::journal::LifecycleKind::Created)
                .count()
        };
        assert_eq!((created(id), created(next)), (1, 1));
        assert!(
            j.open_positions().expect("open").is_empty(),
            "the kill switch closed both"
        );
        let closed = j.position(&id.0.to_string()).expect("row").expect("present");
        assert_eq!(closed.close_reason.as_deref(), Some("kill_switch"));
        assert_eq!(
            j.last_breaker_state().expect("breaker").map(|b| b.tier),
            Some(crate::journal::BreakerTier::Halt)
        );
        assert!(j.last_equity().expect("equity").is_some());
    }

    #[test]
    fn the_virtual_cycle_expires_samples_equity_and_saves_the_breaker() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("breaker.json");
        let mut t = Trading::new(TradingSettings {
            breaker_path: Some(path.clone()),
            position_ttl: Duration::from_secs(60),
            ..TradingSettings::default()
        });
        t.on_exchange_info(&info(), |name| (name == "BTCUSDT").then_some(SymbolId(0)));
        t.on_mark(&mark(30_000.0, 1_000));
        t.consider(&signal(1_000, Side::Long, 29_700.0, 30_600.0), Mode::Ict, None);
        t.on_mark(&mark(30_010.0, 61_000));
        t.virtual_cycle(1_700_000_000_000);
        assert!(t.book.is_empty());
        assert_eq!(t.event_counts.get("expired"), Some(&1));
        assert_eq!(t.equity_points.len(), 1);
        assert!(path.exists());
        let restored = Trading::new(TradingSettings {
            breaker_path: Some(path),
            ..TradingSettings::default()
        });
        assert_eq!(restored.breaker.state(), t.breaker.state());
    }
}
