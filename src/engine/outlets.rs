//! Where the trading desk's history goes: the journal (so a crash or a restart loses nothing) and Discord
//! (so an operator away from the console hears of it), and how a restart reads the journal back.
//!
//! Why a separate piece: the desk ([`super::trading::Trading`]) runs inside the engine's synchronous
//! `process(event)` and must never wait on disk or network. [`Outlets`] is the one place that turns its
//! lifecycle events, position states, equity samples and breaker transitions into journal records and
//! Discord notifications, through the journal writer's non-blocking `try_write` and the notifier's
//! `try_send`; the desk only calls three hooks. It also converts between the book's `f64` positions and
//! the journal's decimal [`PositionRecord`]s, in both directions, exactly.
//!
//! What may be lost, and why that is acceptable:
//! * **Droppable** records — `PriceUpdated` events and equity samples — are offered once; when the
//!   writer's queue is full they are dropped and counted ([`OutletStats::dropped`]). The next one
//!   supersedes them.
//! * **Critical** records — every other lifecycle event, every position state, signals, breaker states —
//!   are never dropped while the engine runs: when the queue is full they wait, in order, in a bounded
//!   overflow ([`OVERFLOW`] records) that is retried on every monitor tick. Only if the overflow itself
//!   fills (the disk stalled for minutes) is the oldest record given up, counted in
//!   [`OutletStats::lost`] and reported once.
//! * A **crash** (SIGKILL, power cut) loses what was queued but not yet committed: the writer commits
//!   continuously, so that is the last few milliseconds of records, always a suffix — the journal is
//!   a prefix of what the engine emitted, because one writer commits in order. A position's state is
//!   queued before its `Created` event and its closed state before its `Closed` event, so any journalled
//!   event has its position row. Marks move the journalled state only on the virtual cycle (every 10 s),
//!   so a restored position resumes from its last journalled mark: the first check after the restart
//!   evaluates the range from that mark to the marks seen since, and a stop crossed while the process
//!   was down still fires.

use std::{
    collections::{HashMap, VecDeque},
    str::FromStr,
};

use rust_decimal::{Decimal, prelude::FromPrimitive as _};

use crate::{
    domain::{SymbolId, TimestampMs},
    journal::{
        BreakerStateRecord, EquitySnapshot, Execution, JournalError, JournalHandle, JournalRecord,
        LifecycleEventRecord, LifecycleKind, MonitorState, PositionRecord, PositionStatus, RestoredState,
        TrailingStop,
    },
    notify::{Notification, NotifierHandle, NotifyKind, OpsKind, Routing},
    positions::{
        EventKind, Fees, LifecycleEvent, NewPosition, Position, PositionId, RiskLevel, RunMode,
        scheduler::Lane,
    },
    risk::{
        Tier,
        breaker::{BreakerState, Transition},
    },
    strategy::Mode,
};

/// Critical records that may wait for room in the writer's queue.
pub const OVERFLOW: usize = 65_536;

/// Why a journalled position could not be put back on the book. Each is unrecoverable for that row
/// (the row is reported and skipped); the other positions are restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("position {id}: the id is not a number this book gave")]
    ForeignId { id: String },
    #[error("position {id}: {field} is missing")]
    Missing { id: String, field: &'static str },
    #[error("position {id}: {field} = {value} cannot be read")]
    Unreadable {
        id: String,
        field: &'static str,
        value: String,
    },
    #[error("position {id}: symbol {symbol} is not listed by the venue")]
    UnknownSymbol { id: String, symbol: String },
    #[error("position {id}: the book refused it ({reason})")]
    Refused { id: String, reason: String },
}

/// Counters of the outlets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutletStats {
    /// Records sent to the writer's queue.
    pub queued: u64,
    /// Droppable records dropped on a full queue.
    pub dropped: u64,
    /// Critical records that had to wait in the overflow.
    pub deferred: u64,
    /// Critical records given up because the overflow was full too.
    pub lost: u64,
    /// Records the journal refused (a validation error; logged).
    pub refused: u64,
    /// Positions restored from the journal at start-up.
    pub restored: u64,
}

/// The journal link the composition root hands the engine: the writer's handle and what the journal
/// held at start-up.
#[derive(Debug, Clone)]
pub struct JournalLink {
    pub handle: JournalHandle,
    pub execution: Execution,
    pub restored: RestoredState,
}

/// The desk's outlets. See the module docs.
#[derive(Debug, Default)]
pub struct Outlets {
    journal: Option<JournalHandle>,
    execution: Option<Execution>,
    notifier: Option<(NotifierHandle, Routing)>,
    /// Symbol names by id (the journal and Discord name symbols; the book numbers them).
    names: HashMap<SymbolId, String>,
    /// The last journalled state of every open position (the closed row is built from it).
    last: HashMap<PositionId, PositionRecord>,
    overflow: VecDeque<JournalRecord>,
    /// Journalled state not yet put back on the book (waiting for the venue's symbol list).
    pending_restore: Option<RestoredState>,
    last_breaker: Option<(Tier, TimestampMs)>,
    lost_reported: bool,
    pub stats: OutletStats,
}

impl Outlets {
    /// Outlets to a journal and/or Discord; `Outlets::default()` has neither.
    pub fn new(journal: Option<JournalLink>, notifier: Option<(NotifierHandle, Routing)>) -> Self {
        let (journal, execution, pending_restore) = match journal {
            Some(link) => (Some(link.handle), Some(link.execution), Some(link.restored)),
            None => (None, None, None),
        };
        Self {
            journal,
            execution,
            notifier,
            pending_restore,
            ..Self::default()
        }
    }

    pub fn has_journal(&self) -> bool {
        self.journal.is_some()
    }

    /// What the journal held at start-up and is not yet restored.
    pub fn pending_restore(&self) -> Option<&RestoredState> {
        self.pending_restore.as_ref()
    }

    /// Takes the journalled state to restore (once).
    pub fn take_restore(&mut self) -> Option<RestoredState> {
        self.pending_restore.take()
    }

    /// Keeps the symbol names `other` learnt (outlets connected after the symbols were listed).
    pub fn keep_names(&mut self, other: Outlets) {
        for (id, name) in other.names {
            self.names.entry(id).or_insert(name);
        }
    }

    pub fn name_symbol(&mut self, id: SymbolId, name: &str) {
        self.names.entry(id).or_insert_with(|| name.to_owned());
    }

    pub fn symbol_name(&self, id: SymbolId) -> &str {
        self.names.get(&id).map_or("?", String::as_str)
    }

    fn execution_of(&self, run_mode: RunMode) -> Execution {
        self.execution.unwrap_or(match run_mode {
            RunMode::Live => Execution::Live,
            _ => Execution::Paper,
        })
    }

    /// Queues a record that may be dropped when the writer is behind.
    fn offer(&mut self, record: impl Into<JournalRecord>) {
        let Some(handle) = &self.journal else { return };
        match handle.try_write(record) {
            Ok(()) => self.stats.queued += 1,
            Err(JournalError::QueueFull { .. }) => self.stats.dropped += 1,
            Err(error) => self.refused(&error),
        }
    }

    /// Queues a record that must not be lost: behind whatever already waits, in order.
    fn keep(&mut self, record: impl Into<JournalRecord>) {
        if self.journal.is_none() {
            return;
        }
        let record = record.into();
        if !self.overflow.is_empty() {
            self.defer(record);
            self.drain();
            return;
        }
        let Some(handle) = &self.journal else { return };
        match handle.try_write(record.clone()) {
            Ok(()) => self.stats.queued += 1,
            Err(JournalError::QueueFull { .. }) => self.defer(record),
            Err(error) => self.refused(&error),
        }
    }

    fn defer(&mut self, record: JournalRecord) {
        self.stats.deferred += 1;
        if self.overflow.len() >= OVERFLOW {
            self.overflow.pop_front();
            self.stats.lost += 1;
            if !self.lost_reported {
                self.lost_reported = true;
                tracing::error!(
                    overflow = OVERFLOW,
                    "journal writer far behind: critical records are being lost"
                );
                self.ops(
                    OpsKind::Journal,
                    "journal",
                    "the journal writer is far behind; records are being lost",
                );
            }
        }
        self.overflow.push_back(record);
    }

    /// Moves waiting critical records into the writer's queue while it has room (every monitor tick).
    pub fn drain(&mut self) {
        let Some(handle) = &self.journal else { return };
        while let Some(record) = self.overflow.pop_front() {
            match handle.try_write(record.clone()) {
                Ok(()) => self.stats.queued += 1,
                Err(JournalError::QueueFull { .. }) => {
                    self.overflow.push_front(record);
                    return;
                }
                Err(error) => {
                    self.stats.refused += 1;
                    tracing::error!(%error, "journal refused a record");
                }
            }
        }
    }

    fn refused(&mut self, error: &JournalError) {
        self.stats.refused += 1;
        tracing::error!(%error, "journal refused a record");
    }

    /// A signal the trading cycle considered, with what became of it.
    pub fn signal(&mut self, record: crate::journal::SignalRecord) {
        self.keep(record);
    }

    /// At shutdown (async, the engine has stopped processing): everything still waiting goes to the
    /// writer, waiting for room this time, and returns once it is committed.
    pub async fn finish(&mut self) {
        let Some(handle) = self.journal.clone() else {
            return;
        };
        while let Some(record) = self.overflow.pop_front() {
            if let Err(error) = handle.write(record).await {
                tracing::error!(%error, "journal: record lost at shutdown");
                self.stats.lost += 1;
            }
        }
        if let Err(error) = handle.flush().await {
            tracing::error!(%error, "journal: flush at shutdown");
        }
        let s = handle.stats();
        tracing::info!(
            written = s.written,
            dropped = s.dropped,
            failed = s.failed,
            lost = self.stats.lost,
            "journal: flushed at shutdown"
        );
    }

    /// Records waiting in the overflow.
    pub fn waiting(&self) -> usize {
        self.overflow.len()
    }

    fn notify(&self, kind: NotifyKind, key: impl FnOnce() -> String, text: impl FnOnce() -> String) {
        if let Some((handle, routing)) = &self.notifier
            && routing.routes(kind)
        {
            handle.notify(Notification::new(kind, key(), text()));
        }
    }

    /// An operational alert for Discord.
    pub fn ops(&self, kind: OpsKind, key: &str, text: &str) {
        self.notify(NotifyKind::Ops(kind), || format!("ops:{key}"), || text.to_owned());
    }

    /// A breaker-class alert for Discord that is not a tier change (the kill switch).
    pub fn breaker_alert(&self, key: &str, text: &str) {
        self.notify(
            NotifyKind::Breaker,
            || format!("breaker:{key}"),
            || text.to_owned(),
        );
    }

    /// The desk's lifecycle events, after the book applied them. `book_get` reads a position still open.
    pub fn on_events<'a>(
        &mut self,
        events: &[LifecycleEvent],
        book_get: impl Fn(PositionId) -> Option<&'a Position>,
        wall: TimestampMs,
    ) {
        if self.journal.is_none() && self.notifier.is_none() {
            return;
        }
        for e in events {
            let kind = lifecycle_kind(&e.kind);
            match e.kind {
                EventKind::Created { .. } => {
                    if let Some(p) = book_get(e.position) {
                        self.snapshot(p, wall);
                    }
                    self.keep(self.event_record(e, kind));
                }
                EventKind::Closed {
                    reason,
                    exit_price,
                    pnl,
                    fees,
                    funding,
                    ..
                } => {
                    if let Some(mut r) = self.last.remove(&e.position) {
                        r.revision += 1;
                        r.status = PositionStatus::Closed;
                        r.closed_at_ms = Some(e.at);
                        r.exit_price = Some(dec(exit_price));
                        r.close_reason = Some(reason.name().replace(' ', "_"));
                        r.realised_pnl = dec(pnl);
                        r.fees_paid = dec(fees);
                        r.funding_paid = dec(-funding);
                        r.updated_at_ms = wall;
                        self.keep(r);
                    }
                    self.keep(self.event_record(e, kind));
                }
                EventKind::PriceUpdated { .. } => self.offer(self.event_record(e, kind)),
                _ => {
                    self.keep(self.event_record(e, kind));
                    if let Some(p) = book_get(e.position) {
                        self.snapshot(p, wall);
                    }
                }
            }
            self.notify(
                NotifyKind::Lifecycle(kind),
                || format!("{}:{}", e.kind.name(), e.position.0),
                || self.describe(e),
            );
        }
    }

    /// Journals a position's state when it differs from the last journalled one.
    pub fn snapshot(&mut self, p: &Position, wall: TimestampMs) {
        if self.journal.is_none() {
            return;
        }
        let execution = self.execution_of(p.run_mode);
        let revision = self.last.get(&p.id).map_or(1, |r| r.revision + 1);
        let record = position_record(p, self.symbol_name(p.symbol), execution, revision, wall);
        if self.last.get(&p.id).is_some_and(|old| same_state(old, &record)) {
            return;
        }
        self.last.insert(p.id, record.clone());
        self.keep(record);
    }

    /// The virtual cycle: every open position whose state moved (mark, funding), and the equity sample.
    pub fn on_virtual_cycle<'a>(
        &mut self,
        positions: impl Iterator<Item = &'a Position>,
        equity: EquitySnapshot,
        wall: TimestampMs,
    ) {
        if self.journal.is_none() {
            return;
        }
        for p in positions {
            self.snapshot(p, wall);
        }
        self.offer(equity);
        self.drain();
    }

    /// The breaker's state, journalled when the tier changed (or on the first call), and Discord told.
    pub fn on_breaker(&mut self, state: &BreakerState, transition: Option<&Transition>, wall: TimestampMs) {
        let now = (state.tier, state.since);
        if self.last_breaker == Some(now) && transition.is_none() {
            return;
        }
        self.last_breaker = Some(now);
        self.keep(breaker_record(state, wall));
        if let Some(t) = transition {
            self.notify(
                NotifyKind::Breaker,
                || format!("breaker:{}:{}", t.to, t.at),
                || match t.cause {
                    Some(cause) => format!("circuit breaker {} → {} ({cause})", t.from, t.to),
                    None => format!("circuit breaker {} → {}", t.from, t.to),
                },
            );
        }
    }

    /// A change of the strategy evolver's parameter set, journalled (it must not be lost: later
    /// `self_learning` signals were taken under it).
    pub fn strategy_change(&mut self, record: crate::journal::StrategyChangeRecord) {
        self.keep(record);
    }

    /// Remembers restored positions as journalled, so their next state continues their revisions.
    pub fn adopt(&mut self, id: PositionId, record: PositionRecord) {
        self.last.insert(id, record);
        self.stats.restored += 1;
    }

    fn event_record(&self, e: &LifecycleEvent, kind: LifecycleKind) -> LifecycleEventRecord {
        let mut payload = serde_json::to_value(e.kind).unwrap_or(serde_json::Value::Null);
        if let serde_json::Value::Object(map) = &mut payload {
            map.insert(
                "symbol".to_owned(),
                serde_json::Value::String(self.symbol_name(e.symbol).to_owned()),
            );
            map.insert(
                "side".to_owned(),
                serde_json::Value::String(crate::journal::side_str(e.side).to_owned()),
            );
        }
        LifecycleEventRecord {
            at_ms: e.at,
            position_id: e.position.0.to_string(),
            kind,
            payload,
        }
    }

    /// One line for Discord.
    fn describe(&self, e: &LifecycleEvent) -> String {
        let head = format!(
            "{} {} {}",
            e.position,
            self.symbol_name(e.symbol),
            crate::journal::side_str(e.side)
        );
        match e.kind {
            EventKind::Created {
                qty,
                entry,
                leverage,
                take_profit,
                stop_loss,
                ..
            } => format!("{head} opened {qty} @ {entry} ×{leverage}, stop {stop_loss}, target {take_profit}"),
            EventKind::PriceUpdated { mark, pnl, .. } => format!("{head} mark {mark}, pnl {pnl:+.2}"),
            EventKind::RiskLevelChanged { from, to, risk_score } => {
                format!("{head} risk {} → {} ({risk_score:.2})", from.name(), to.name())
            }
            EventKind::TakeProfitApproaching { mark, take_profit } => {
                format!("{head} mark {mark} near target {take_profit}")
            }
            EventKind::StopLossApproaching { mark, stop_loss } => {
                format!("{head} mark {mark} near stop {stop_loss}")
            }
            EventKind::TakeProfitTriggered { price } => format!("{head} target hit at {price}"),
            EventKind::StopLossTriggered { price, trailing } => format!(
                "{head} {} hit at {price}",
                if trailing { "trailing stop" } else { "stop" }
            ),
            EventKind::TrailingStopMoved { from, to } => format!("{head} trailing stop {from} → {to}"),
            EventKind::LiquidationWarning { mark, liquidation } => {
                format!("{head} mark {mark} near liquidation {liquidation}")
            }
            EventKind::Expired { mark } => format!("{head} expired at {mark}"),
            EventKind::Closed {
                reason,
                exit_price,
                pnl,
                r_multiple,
                ..
            } => format!(
                "{head} closed ({}) at {exit_price}, pnl {pnl:+.2} ({r_multiple:+.2} R)",
                reason.name()
            ),
        }
    }
}

/// The journal's name for an event kind.
pub fn lifecycle_kind(kind: &EventKind) -> LifecycleKind {
    match kind {
        EventKind::Created { .. } => LifecycleKind::Created,
        EventKind::PriceUpdated { .. } => LifecycleKind::PriceUpdated,
        EventKind::RiskLevelChanged { .. } => LifecycleKind::RiskLevelChanged,
        EventKind::TakeProfitApproaching { .. } => LifecycleKind::TakeProfitApproaching,
        EventKind::StopLossApproaching { .. } => LifecycleKind::StopLossApproaching,
        EventKind::TakeProfitTriggered { .. } => LifecycleKind::TakeProfitTriggered,
        EventKind::StopLossTriggered { .. } => LifecycleKind::StopLossTriggered,
        EventKind::TrailingStopMoved { .. } => LifecycleKind::TrailingStopMoved,
        EventKind::LiquidationWarning { .. } => LifecycleKind::LiquidationWarning,
        EventKind::Expired { .. } => LifecycleKind::Expired,
        EventKind::Closed { .. } => LifecycleKind::Closed,
    }
}

/// `x` as a decimal with the digits of its shortest round-trip representation, so that [`float`] gives
/// back exactly `x` (Rust prints `f64` without an exponent and with the fewest digits that read back
/// to the same value). Values outside the decimal's range fall back to the nearest decimal.
pub fn dec(x: f64) -> Decimal {
    Decimal::from_str(&format!("{x}"))
        .ok()
        .or_else(|| Decimal::from_f64(x))
        .unwrap_or_default()
}

/// The inverse of [`dec`].
pub fn float(d: Decimal) -> f64 {
    d.to_string().parse().unwrap_or(f64::NAN)
}

/// Two states of a position equal apart from their revision and write time.
fn same_state(a: &PositionRecord, b: &PositionRecord) -> bool {
    PositionRecord {
        revision: b.revision,
        updated_at_ms: b.updated_at_ms,
        ..a.clone()
    } == *b
}

fn run_mode_str(mode: RunMode) -> &'static str {
    match mode {
        RunMode::Demo => "demo",
        RunMode::Paper => "paper",
        RunMode::Live => "live",
        RunMode::Replay => "replay",
    }
}

fn parse_run_mode(text: &str) -> Option<RunMode> {
    Some(match text {
        "demo" => RunMode::Demo,
        "paper" => RunMode::Paper,
        "live" => RunMode::Live,
        "replay" => RunMode::Replay,
        _ => return None,
    })
}

fn parse_level(text: &str) -> Option<RiskLevel> {
    [
        RiskLevel::Low,
        RiskLevel::Medium,
        RiskLevel::High,
        RiskLevel::Critical,
    ]
    .into_iter()
    .find(|l| l.name() == text)
}

/// The journal's record of an open position.
pub fn position_record(
    p: &Position,
    symbol: &str,
    execution: Execution,
    revision: i64,
    wall: TimestampMs,
) -> PositionRecord {
    let (tp_warned, sl_warned, liq_warned) = p.warnings();
    PositionRecord {
        position_id: p.id.0.to_string(),
        revision,
        execution,
        symbol: symbol.to_owned(),
        side: p.side,
        qty: dec(p.qty),
        entry_price: dec(p.entry),
        leverage: u32::from(p.leverage),
        take_profit: Some(dec(p.take_profit)),
        stop_loss: Some(dec(p.stop_loss)),
        trailing: p.trailing.map(|distance| TrailingStop {
            distance: dec(distance),
            percent: false,
            activation: None,
            best_price: None,
        }),
        expires_at_ms: (p.expires_at != TimestampMs::MAX).then_some(p.expires_at),
        fees_paid: dec(p.entry_fee),
        // The journal counts funding paid; the book counts funding received.
        funding_paid: dec(-p.funding),
        realised_pnl: Decimal::ZERO,
        strategy: p.strategy.as_str().to_owned(),
        mode: p.strategy.as_str().to_owned(),
        feature_slot: p.feature_slot,
        opened_at_ms: p.opened_at,
        last_mark_price: Some(dec(p.mark)),
        last_funding_ms: Some(p.funded_through),
        status: PositionStatus::Open,
        closed_at_ms: None,
        exit_price: None,
        close_reason: None,
        updated_at_ms: wall,
        monitor: Some(MonitorState {
            initial_stop: dec(p.initial_stop),
            liquidation_price: p.liquidation.map(dec),
            risk_level: p.level.name().to_owned(),
            take_profit_warned: tp_warned,
            stop_loss_warned: sl_warned,
            liquidation_warned: liq_warned,
            reported_mark: Some(dec(p.reported_mark)),
            run_mode: run_mode_str(p.run_mode).to_owned(),
        }),
    }
}

/// The book's position for a journalled open position on `symbol`: every field the record holds, exactly.
pub fn position_from_record(r: &PositionRecord, symbol: SymbolId) -> Result<Position, RestoreError> {
    let id = r.position_id.clone();
    let missing = |field| RestoreError::Missing {
        id: id.clone(),
        field,
    };
    let unreadable = |field, value: &str| RestoreError::Unreadable {
        id: id.clone(),
        field,
        value: value.to_owned(),
    };
    let number: u64 = r
        .position_id
        .parse()
        .map_err(|_| RestoreError::ForeignId { id: id.clone() })?;
    let stop = float(r.stop_loss.ok_or_else(|| missing("stop_loss"))?);
    let take_profit = float(r.take_profit.ok_or_else(|| missing("take_profit"))?);
    let monitor = r.monitor.as_ref();
    let strategy = Mode::from_str(&r.strategy).map_err(|_| unreadable("strategy", &r.strategy))?;
    let run_mode = match monitor {
        Some(m) => parse_run_mode(&m.run_mode).ok_or_else(|| unreadable("run_mode", &m.run_mode))?,
        None if r.execution == Execution::Live => RunMode::Live,
        None => RunMode::Paper,
    };
    let trailing = match &r.trailing {
        None => None,
        Some(t) if t.percent => Some(float(t.distance) * float(r.entry_price)),
        Some(t) => Some(float(t.distance)),
    };
    let new = NewPosition {
        symbol,
        side: r.side,
        qty: float(r.qty),
        entry: float(r.entry_price),
        leverage: u16::try_from(r.leverage).map_err(|_| unreadable("leverage", &r.leverage.to_string()))?,
        take_profit,
        stop_loss: stop,
        trailing,
        liquidation: monitor.and_then(|m| m.liquidation_price).map(float),
        expires_at: r.expires_at_ms.unwrap_or(TimestampMs::MAX),
        strategy,
        run_mode,
        feature_slot: r.feature_slot,
    };
    let mut p = Position::open(
        PositionId(number),
        &new,
        &Fees::default(),
        r.opened_at_ms,
        Lane::S5,
    );
    p.initial_stop = monitor.map_or(stop, |m| float(m.initial_stop));
    p.entry_fee = float(r.fees_paid);
    p.funding = -float(r.funding_paid);
    p.funded_through = r.last_funding_ms.unwrap_or(r.opened_at_ms);
    let mark = r.last_mark_price.map_or(p.entry, float);
    p.mark = mark;
    p.high = mark;
    p.low = mark;
    p.reported_mark = monitor.and_then(|m| m.reported_mark).map_or(mark, float);
    if let Some(m) = monitor {
        p.level = parse_level(&m.risk_level).ok_or_else(|| unreadable("risk_level", &m.risk_level))?;
        p.set_warnings(m.take_profit_warned, m.stop_loss_warned, m.liquidation_warned);
    }
    p.risk_score = p.score_at(mark);
    Ok(p)
}

/// The journal's record of the breaker's state.
pub fn breaker_record(state: &BreakerState, wall: TimestampMs) -> BreakerStateRecord {
    BreakerStateRecord {
        at_ms: wall,
        tier: state.tier,
        reason: state.cause.map_or_else(String::new, |c| c.to_string()),
        since_ms: state.since,
        cooldown_until_ms: (state.cooldown_until > 0).then_some(state.cooldown_until),
        peak_equity: state.peak_equity.map_or(Decimal::ZERO, dec),
        day_start_equity: state.day_start_equity.map_or(Decimal::ZERO, dec),
        consecutive_losses: state.consecutive_losses,
        details: serde_json::json!({
            "equity": state.equity,
            "day": state.day,
            "rejects_in_window": state.rejects.len(),
            "reconnects_in_window": state.reconnects.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{domain::Side, positions::Bands};

    fn position() -> Position {
        let n = NewPosition {
            symbol: SymbolId(3),
            side: Side::Short,
            qty: 0.303,
            entry: 30_017.3,
            leverage: 7,
            take_profit: 29_400.1,
            stop_loss: 30_300.9,
            trailing: Some(12.5),
            liquidation: Some(34_001.123_456_789),
            expires_at: 1_700_014_400_000,
            strategy: Mode::Ict,
            run_mode: RunMode::Paper,
            feature_slot: Some(9),
        };
        let mut p = Position::open(PositionId(41), &n, &Fees::default(), 1_700_000_000_000, Lane::S5);
        p.funding = -0.123_456_789_012_345_67;
        p.funded_through = 1_700_003_600_000;
        p.observe(30_280.0);
        let mut out = Vec::new();
        p.check(1_700_000_100_000, &Bands::default(), &mut out);
        p.observe(29_990.0);
        p.check(1_700_000_200_000, &Bands::default(), &mut out);
        p
    }

    /// Everything a restart restores; the scheduler's own fields (lane, last check) are set by the book.
    fn restorable(p: &Position) -> Position {
        let mut q = p.clone();
        q.lane = Lane::S5;
        q.last_check = 0;
        q.high = q.mark;
        q.low = q.mark;
        // Not journalled: the next check recomputes it from the mark.
        q.risk_score = 0.0;
        q
    }

    #[test]
    fn a_position_reads_back_from_its_record_exactly() {
        let p = position();
        assert_eq!(p.warnings(), (false, true, false), "the stop warning was given");
        assert_ne!(p.stop_loss, p.initial_stop, "the trailing stop moved");
        let r = position_record(&p, "BTCUSDT", Execution::Paper, 3, 1);
        let back = position_from_record(&r, SymbolId(3)).expect("restores");
        assert_eq!(restorable(&back), restorable(&p));
        // And through the journal file's TEXT columns.
        let json = serde_json::to_string(&r).expect("json");
        let r2: PositionRecord = serde_json::from_str(&json).expect("back");
        assert_eq!(r2, r);
    }

    #[test]
    fn foreign_or_incomplete_rows_are_refused_with_the_reason() {
        let p = position();
        let mut r = position_record(&p, "BTCUSDT", Execution::Paper, 1, 1);
        r.position_id = "p-1".to_owned();
        assert!(matches!(
            position_from_record(&r, SymbolId(0)),
            Err(RestoreError::ForeignId { .. })
        ));
        r.position_id = "5".to_owned();
        r.stop_loss = None;
        assert_eq!(
            position_from_record(&r, SymbolId(0)).map(|_| ()),
            Err(RestoreError::Missing {
                id: "5".to_owned(),
                field: "stop_loss"
            })
        );
    }

    proptest! {
        #[test]
        fn every_finite_float_survives_the_decimal_round_trip(
            x in prop_oneof![
                -1e9f64..1e9,
                1e-12f64..1e-3,
                any::<u32>().prop_map(|n| f64::from(n) / 1000.0),
            ]
        ) {
            prop_assert_eq!(float(dec(x)).to_bits(), x.to_bits());
        }
    }
}
