//! The rows of the journal as plain Rust values: what the engine hands the writer and what a restart
//! reads back.
//!
//! These types are deliberately the journal's own, not the position book's or the risk module's: the
//! journal is a file format that must keep reading rows written by older builds, so its types change
//! only through a migration, while the engine's types are free to evolve (the engine maps to and from
//! them). Money and quantities are [`Decimal`] stored as TEXT, so a value reads back with the same
//! digits and scale it was written with (`"0.0040"` stays `0.0040`); analytics scores are `f64`.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::domain::Side;

/// Milliseconds since the Unix epoch (UTC).
pub type Millis = i64;

/// Paper trading or real orders: a position restored into the wrong book would be a real-money bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Execution {
    Paper,
    Live,
}

impl Execution {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Paper => "paper",
            Self::Live => "live",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "paper" => Some(Self::Paper),
            "live" => Some(Self::Live),
            _ => None,
        }
    }
}

/// `LONG` / `SHORT` as stored in the journal.
pub fn side_str(side: Side) -> &'static str {
    match side {
        Side::Long => "LONG",
        Side::Short => "SHORT",
    }
}

/// The inverse of [`side_str`].
pub fn parse_side(text: &str) -> Option<Side> {
    match text {
        "LONG" => Some(Side::Long),
        "SHORT" => Some(Side::Short),
        _ => None,
    }
}

/// A strategy evaluation worth keeping: the signal, its inputs, and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalRecord {
    /// Close time of the bar the signal was computed on.
    pub at_ms: Millis,
    pub symbol: String,
    pub side: Side,
    /// Strategy mode that produced it (`ict`, `self_learning`, `hybrid`).
    pub mode: String,
    pub entry: Decimal,
    pub stop: Decimal,
    pub take_profit: Decimal,
    /// Quality score in 0..=1.
    pub quality: f64,
    /// `accepted`, or why it went no further (`rejected: risk: daily loss`).
    pub outcome: String,
    /// The feature vector it was computed on.
    pub features: Vec<f32>,
    /// Which rules fired (confluences, evidence), as JSON.
    pub rule_hits: serde_json::Value,
    /// Version of the model that scored it, once the ML layer exists (schema v2).
    pub model_version: Option<String>,
}

/// Whether a position is still on the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionStatus {
    Open,
    Closed,
}

impl PositionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "open" => Some(Self::Open),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }
}

/// A trailing stop's configuration and the state it has reached, stored as JSON in one column because
/// it is read and written whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrailingStop {
    /// Distance the stop keeps behind the best price, in price units, or as a fraction of it when
    /// `percent` is true (`0.01` = 1 %).
    pub distance: Decimal,
    pub percent: bool,
    /// Price at which trailing starts; `None` = from the entry.
    pub activation: Option<Decimal>,
    /// Best price seen since activation (highest for a long), which the stop trails.
    pub best_price: Option<Decimal>,
}

/// The complete state of one virtual position: enough to put it back on the book after a restart and
/// resume monitoring it with no difference (upserted by `position_id`; the row with the higher
/// `revision` wins, so a late, older snapshot never overwrites a newer one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionRecord {
    /// Stable id given by the position book (also the lifecycle events' key).
    pub position_id: String,
    /// Increases with every change the book makes to the position.
    pub revision: i64,
    pub execution: Execution,
    pub symbol: String,
    pub side: Side,
    /// Size in base asset (always positive; `side` gives the direction).
    pub qty: Decimal,
    pub entry_price: Decimal,
    pub leverage: u32,
    pub take_profit: Option<Decimal>,
    pub stop_loss: Option<Decimal>,
    pub trailing: Option<TrailingStop>,
    pub expires_at_ms: Option<Millis>,
    /// Trading fees paid so far (entry and any partial exits), in quote asset.
    pub fees_paid: Decimal,
    /// Funding paid so far (negative = received), in quote asset.
    pub funding_paid: Decimal,
    /// Realised `PnL` so far, after fees and funding.
    pub realised_pnl: Decimal,
    /// Name of the strategy that opened it.
    pub strategy: String,
    /// Strategy mode at opening (`ict`, `self_learning`, `hybrid`).
    pub mode: String,
    /// Feature-store slot holding the features it was opened on.
    pub feature_slot: Option<u32>,
    pub opened_at_ms: Millis,
    /// Last mark price the monitor evaluated, so the first check after a restart can cover the gap.
    pub last_mark_price: Option<Decimal>,
    /// Funding time (ms) of the last funding applied, so a restart never charges the same funding twice.
    pub last_funding_ms: Option<Millis>,
    pub status: PositionStatus,
    pub closed_at_ms: Option<Millis>,
    pub exit_price: Option<Decimal>,
    /// `manual`, `strategy`, `breaker`, `kill_switch`, `take_profit`, `stop_loss`, `expired`, …
    pub close_reason: Option<String>,
    pub updated_at_ms: Millis,
    /// The monitor's state (schema v3); `None` in rows written by older builds.
    pub monitor: Option<MonitorState>,
}

/// What the position monitor knows beyond the order-facing fields: enough to resume checking a restored
/// position with no event repeated and the same risk score. Stored as JSON in one column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorState {
    /// The stop at entry (the risk unit of the R multiple and the score); `stop_loss` is the current,
    /// possibly trailed, stop.
    pub initial_stop: Decimal,
    pub liquidation_price: Option<Decimal>,
    /// `low`, `medium`, `high`, `critical`: the band of the last check (the monitoring lane).
    pub risk_level: String,
    /// The one-shot warnings already given.
    pub take_profit_warned: bool,
    pub stop_loss_warned: bool,
    pub liquidation_warned: bool,
    /// The mark the last `PriceUpdated` event reported.
    pub reported_mark: Option<Decimal>,
    /// `demo`, `paper`, `live`, `replay`.
    pub run_mode: String,
}

/// The eleven lifecycle event types of a position (identical in demo, paper, live and replay).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LifecycleKind {
    Created,
    PriceUpdated,
    RiskLevelChanged,
    TakeProfitApproaching,
    StopLossApproaching,
    TakeProfitTriggered,
    StopLossTriggered,
    TrailingStopMoved,
    LiquidationWarning,
    Expired,
    Closed,
}

impl LifecycleKind {
    pub const ALL: [LifecycleKind; 11] = [
        Self::Created,
        Self::PriceUpdated,
        Self::RiskLevelChanged,
        Self::TakeProfitApproaching,
        Self::StopLossApproaching,
        Self::TakeProfitTriggered,
        Self::StopLossTriggered,
        Self::TrailingStopMoved,
        Self::LiquidationWarning,
        Self::Expired,
        Self::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "Created",
            Self::PriceUpdated => "PriceUpdated",
            Self::RiskLevelChanged => "RiskLevelChanged",
            Self::TakeProfitApproaching => "TakeProfitApproaching",
            Self::StopLossApproaching => "StopLossApproaching",
            Self::TakeProfitTriggered => "TakeProfitTriggered",
            Self::StopLossTriggered => "StopLossTriggered",
            Self::TrailingStopMoved => "TrailingStopMoved",
            Self::LiquidationWarning => "LiquidationWarning",
            Self::Expired => "Expired",
            Self::Closed => "Closed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// One lifecycle event of a position. The payload carries the event's own numbers (prices, risk
/// score, close reason) as JSON, so adding a field to an event needs no migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LifecycleEventRecord {
    pub at_ms: Millis,
    pub position_id: String,
    pub kind: LifecycleKind,
    pub payload: serde_json::Value,
}

/// Order side as the venue spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum OrderSide {
    Buy,
    Sell,
}

impl OrderSide {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Buy => "BUY",
            Self::Sell => "SELL",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "BUY" => Some(Self::Buy),
            "SELL" => Some(Self::Sell),
            _ => None,
        }
    }
}

/// Where an order stands, as far as the journal knows. `Submitting` is written (and committed) before
/// the request leaves; a restart hands every row still `Submitting` to the query-by-clientOrderId
/// resolver, because its outcome at the venue is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderState {
    Submitting,
    New,
    PartiallyFilled,
    Filled,
    Canceled,
    Expired,
    Rejected,
    /// The resolver gave up finding it (Binance forgets unfilled cancelled orders after 3 days).
    Lost,
}

impl OrderState {
    pub const ALL: [OrderState; 8] = [
        Self::Submitting,
        Self::New,
        Self::PartiallyFilled,
        Self::Filled,
        Self::Canceled,
        Self::Expired,
        Self::Rejected,
        Self::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitting => "SUBMITTING",
            Self::New => "NEW",
            Self::PartiallyFilled => "PARTIALLY_FILLED",
            Self::Filled => "FILLED",
            Self::Canceled => "CANCELED",
            Self::Expired => "EXPIRED",
            Self::Rejected => "REJECTED",
            Self::Lost => "LOST",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// The order we are about to send, journalled (state `SUBMITTING`) and committed before the send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderIntent {
    /// `newClientOrderId`: at most 36 characters from `[.A-Z:/a-z0-9_-]` (checked before queueing).
    pub client_order_id: String,
    pub position_id: Option<String>,
    pub symbol: String,
    pub side: OrderSide,
    /// Venue order type: `MARKET`, `LIMIT`, `STOP_MARKET`, `TAKE_PROFIT_MARKET`, …
    pub order_type: String,
    pub qty: Option<Decimal>,
    pub price: Option<Decimal>,
    pub stop_price: Option<Decimal>,
    pub reduce_only: bool,
    pub close_position: bool,
    pub created_at_ms: Millis,
}

/// A later state of an order already journalled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderUpdate {
    pub client_order_id: String,
    pub state: OrderState,
    pub venue_order_id: Option<i64>,
    /// Venue error text for a rejection, or how the resolver settled it.
    pub reason: Option<String>,
    pub at_ms: Millis,
}

/// An order as stored: the intent plus its current state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub intent: OrderIntent,
    pub state: OrderState,
    pub venue_order_id: Option<i64>,
    pub reason: Option<String>,
    pub updated_at_ms: Millis,
}

/// One execution at the venue (or a simulated paper fill). Deduplicated on (symbol, trade id): a
/// replayed user-stream message is journalled once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillRecord {
    pub symbol: String,
    pub trade_id: i64,
    pub client_order_id: String,
    pub side: OrderSide,
    pub price: Decimal,
    pub qty: Decimal,
    pub fee: Decimal,
    pub fee_asset: String,
    pub realised_pnl: Decimal,
    pub maker: bool,
    pub at_ms: Millis,
}

/// Account equity at one moment (the equity curve).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EquitySnapshot {
    pub at_ms: Millis,
    pub execution: Execution,
    pub equity: Decimal,
    pub balance: Decimal,
    pub unrealised_pnl: Decimal,
    pub open_positions: u32,
}

/// The circuit-breaker tiers, mildest first: the risk module's own type, stored by its name, so the
/// journal cannot drift from the state machine it records.
pub use crate::risk::breaker::Tier as BreakerTier;

/// The breaker state machine's state, journalled on every change so a trip survives a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerStateRecord {
    pub at_ms: Millis,
    pub tier: BreakerTier,
    /// Why this tier (`daily loss 3.1 % ≥ 3 %`).
    pub reason: String,
    pub since_ms: Millis,
    pub cooldown_until_ms: Option<Millis>,
    pub peak_equity: Decimal,
    pub day_start_equity: Decimal,
    pub consecutive_losses: u32,
    /// The remaining counters (rejects, reconnects in the window, …) as JSON.
    pub details: serde_json::Value,
}

/// A change of the strategy evolver's parameter set: its decision at the end of an interval, or the
/// operator's revert. Journalled so the parameters behind any later `self_learning` signal can be
/// traced, and so an operator can see from the journal alone what the evolver did and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyChangeRecord {
    pub at_ms: Millis,
    /// The parameter set's name before and after (`baseline`, `strict`, …).
    pub from_set: String,
    pub to_set: String,
    /// Why, as the console says it (`highest Q (+0.31 R)`, `reverted by the operator`).
    pub reason: String,
    /// The machine-readable reason and the new set's parameters, inside the hard caps, as JSON.
    pub details: serde_json::Value,
}

/// Anything the writer can journal.
// The position variant dominates the size; records are boxed when queued, so the enum is only ever a
// short-lived stack value.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JournalRecord {
    Signal(SignalRecord),
    Position(PositionRecord),
    Event(LifecycleEventRecord),
    OrderIntent(OrderIntent),
    OrderUpdate(OrderUpdate),
    Fill(FillRecord),
    Equity(EquitySnapshot),
    Breaker(BreakerStateRecord),
    StrategyChange(StrategyChangeRecord),
}

impl JournalRecord {
    /// Short name for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Signal(_) => "signal",
            Self::Position(_) => "position",
            Self::Event(_) => "event",
            Self::OrderIntent(_) => "order intent",
            Self::OrderUpdate(_) => "order update",
            Self::Fill(_) => "fill",
            Self::Equity(_) => "equity",
            Self::Breaker(_) => "breaker",
            Self::StrategyChange(_) => "strategy change",
        }
    }
}

impl From<SignalRecord> for JournalRecord {
    fn from(r: SignalRecord) -> Self {
        Self::Signal(r)
    }
}
impl From<PositionRecord> for JournalRecord {
    fn from(r: PositionRecord) -> Self {
        Self::Position(r)
    }
}
impl From<LifecycleEventRecord> for JournalRecord {
    fn from(r: LifecycleEventRecord) -> Self {
        Self::Event(r)
    }
}
impl From<OrderIntent> for JournalRecord {
    fn from(r: OrderIntent) -> Self {
        Self::OrderIntent(r)
    }
}
impl From<OrderUpdate> for JournalRecord {
    fn from(r: OrderUpdate) -> Self {
        Self::OrderUpdate(r)
    }
}
impl From<FillRecord> for JournalRecord {
    fn from(r: FillRecord) -> Self {
        Self::Fill(r)
    }
}
impl From<EquitySnapshot> for JournalRecord {
    fn from(r: EquitySnapshot) -> Self {
        Self::Equity(r)
    }
}
impl From<BreakerStateRecord> for JournalRecord {
    fn from(r: BreakerStateRecord) -> Self {
        Self::Breaker(r)
    }
}

impl From<StrategyChangeRecord> for JournalRecord {
    fn from(r: StrategyChangeRecord) -> Self {
        Self::StrategyChange(r)
    }
}
