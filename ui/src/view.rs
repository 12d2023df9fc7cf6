//! The view model: plain serde structs that say what is on screen.
//!
//! The engine side (`perpdesk::console`) builds a [`View`] from engine state and publishes it as an
//! `Arc<View>` over a `watch` channel at most at the frame rate. This crate renders it and knows nothing
//! about how the numbers were made. Because everything here is serde, the same view can be sent over a
//! socket to a TUI attached to a headless engine.

use serde::{Deserialize, Serialize};

/// Everything the TUI draws, as one snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct View {
    pub header: Header,
    /// One row per universe symbol, in universe rank order (rank 1 = highest 24h quote volume).
    pub scanner: Vec<ScannerRow>,
    /// The timeframes shown as per-timeframe columns, e.g. `["5m", "15m", "1h"]`.
    pub timeframes: Vec<String>,
    /// Candles of the symbol and timeframe the operator focused (see `Intent::Focus`).
    pub detail: Option<Detail>,
    pub status: Status,
    /// The signal funnel since the engine started.
    #[serde(default)]
    pub funnel: Funnel,
    /// Open positions (issue 5). The fields below are all `#[serde(default)]`, so a view from an
    /// engine without a position book still decodes and the screens show their empty states.
    #[serde(default)]
    pub positions: Positions,
    /// One heatmap cell per open position, riskiest first, capped at [`View::MAX_HEAT_CELLS`]; the
    /// heatmap counts positions beyond the cells from `positions.open`.
    #[serde(default)]
    pub heatmap: Vec<HeatCell>,
    /// The smart monitoring scheduler.
    #[serde(default)]
    pub scheduler: SchedulerPanel,
    /// Lifecycle events, newest first, capped at [`View::MAX_EVENTS`].
    #[serde(default)]
    pub events: Vec<LifecycleEntry>,
    /// Account equity over time.
    #[serde(default)]
    pub equity: EquityCurve,
    /// The circuit breaker.
    #[serde(default)]
    pub breaker: Breaker,
    /// The kill switch.
    #[serde(default)]
    pub kill_switch: KillSwitch,
    /// The loaded models (the models panel).
    #[serde(default)]
    pub models: ModelsPanel,
}

impl View {
    /// The most lifecycle events a view carries (the log shows the newest that fit).
    pub const MAX_EVENTS: usize = 200;
    /// The most heatmap cells a view carries: more than a 200-column pane can draw, few enough to send
    /// every frame over the attach socket with 100 000 positions open.
    pub const MAX_HEAT_CELLS: usize = 2_000;
}

/// Counts of the strategy's evaluations: how many ran, got past the setup stage, became signals, and
/// why the others were rejected.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Funnel {
    /// Evaluations (one symbol, one time).
    pub evaluated: u64,
    /// Evaluations that got past the setup stage.
    pub setups: u64,
    /// Evaluations that passed the quality filter.
    pub signals: u64,
    /// Rejections per reason key, most frequent first.
    pub rejections: Vec<(String, u64)>,
    /// Signals the risk stage accepted (sized within the caps, no breaker refusal); `None` while
    /// the engine has no risk stage, which the funnel shows as "not built yet".
    #[serde(default)]
    pub risk_accepted: Option<u64>,
    /// Positions opened; `None` while the engine has no position book.
    #[serde(default)]
    pub opened: Option<u64>,
    /// The signal predictor's stage; `None` while no model is loaded.
    #[serde(default)]
    pub ml: Option<MlStage>,
}

/// The signal predictor's part of the funnel: the signals it scored and what it would keep.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MlStage {
    /// Signals that came back with a probability.
    pub scored: u64,
    /// Scored at or above the threshold.
    pub kept: u64,
    /// Signals the model rejected (only in `hybrid`, where it decides).
    pub filtered: u64,
    /// Signals that got no probability (queue full, model error, no answer in time).
    pub unscored: u64,
    /// The model's operating threshold, P(target before stop).
    pub threshold: f64,
    /// True while the model decides (`hybrid`); false when its probabilities are only shown.
    pub applied: bool,
}

/// The models panel: every loaded model with its runtime figures and validation metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelsPanel {
    /// The directory models are loaded from, as configured (`paths.models_dir`); empty if unknown.
    pub models_dir: String,
    pub models: Vec<ModelRow>,
    /// The strategy evolver, when the engine runs one.
    pub evolver: Option<EvolverRow>,
    /// Self-learning: `None` when no learner runs (no models directory).
    pub learning: Option<LearningView>,
    /// The structure autoencoder's reading of the universe, when its model is loaded.
    pub structure: Option<StructureView>,
    /// The feature discovery ranking, best first (from its card), when its model is loaded.
    pub discovery: Vec<DiscoveryRow>,
}

/// The market's regime from the structure autoencoder's codes, and the model's runtime figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StructureView {
    pub version: String,
    pub backend: String,
    /// Model time per batch of 32 (encoder + autoencoder), microseconds; `None` before the first.
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    /// Symbols in the last reading, and how many of them the autoencoder found novel.
    pub symbols: u64,
    pub novel: u64,
    /// Regimes by symbol count, most first; only those with symbols.
    pub regimes: Vec<RegimeShare>,
    /// Validation reconstruction error against predicting the mean (the card's).
    pub validation_error: f64,
    pub baseline_error: f64,
}

/// One regime and its symbols in the last reading.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegimeShare {
    /// e.g. `trend up · high vol`.
    pub name: String,
    pub symbols: u64,
}

/// One input of the feature discovery ranking.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiscoveryRow {
    pub name: String,
    /// `|gate| × ‖first-layer column‖`.
    pub score: f64,
    /// Rise in validation log loss when the input is shuffled.
    pub permutation: f64,
    /// Among the top `FEATURE_DISCOVERY_RATE` share.
    pub promoted: bool,
    /// An interaction the live signal predictor takes as a derived input (a promoted discovery that
    /// entered its feature set); the base inputs are always in it and are not marked.
    pub in_predictor: bool,
}

/// The strategy evolver (DQN) of `self_learning`: its active parameter set and its last change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EvolverRow {
    /// The active set, e.g. `strict (q≥0.80 rr≥2.5 p≥0.50 ≤5x risk×0.75)`.
    pub set: String,
    /// Where its Q-network came from: the card's version or `untrained`.
    pub source: String,
    /// Online learning on (explores, learns) or off (greedy).
    pub learning: bool,
    /// Current exploration rate.
    pub epsilon: f64,
    pub decisions: u64,
    /// `from → to: reason`, if it ever changed.
    pub last_change: Option<String>,
}

/// The self-learning loop as the models panel shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LearningView {
    /// `ml.enable_self_learning`.
    pub enabled: bool,
    /// A retrain is running now.
    pub training: bool,
    /// Closed positions kept as samples.
    pub online_samples: u64,
    /// When the last retrain finished (local `HH:MM:SS`), or empty.
    pub last_retrain: String,
    /// What came of it, in words (promoted, kept and why, history too short, failed).
    pub result: String,
    /// The last champion/challenger evaluation on the newest out-of-sample window.
    pub window: Option<ChallengeView>,
    /// The version a rollback returns to; `None`: nothing to roll back to.
    pub rollback_to: Option<String>,
}

/// Champion and challenger scored on the same window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChallengeView {
    pub samples: u64,
    pub challenger: String,
    /// The champion's version, or `constant rate` when there was none.
    pub champion: String,
    pub challenger_log_loss: f64,
    pub champion_log_loss: f64,
    pub challenger_auc: Option<f64>,
    pub champion_auc: Option<f64>,
    pub promoted: bool,
}

/// One loaded model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelRow {
    /// e.g. `signal_predictor`.
    pub name: String,
    /// The model card's version, e.g. `signal_predictor-1795500000`.
    pub version: String,
    /// Where it runs: `native`, `tract`, `ort`.
    pub backend: String,
    /// The registry's champion (the model in use); false for a model served without a registry.
    pub champion: bool,
    /// When it was trained (the card's `created`).
    pub trained: String,
    /// Inference latency per batch, measured by the batch predictor: median and 99th percentile in
    /// microseconds; `None` before the first batch.
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub batches: u64,
    pub requests: u64,
    /// Mean requests per batch over the largest batch, `0..=1`.
    pub batch_fill: Option<f64>,
    pub max_batch: u64,
    /// Validation period (from the card) and its sample count.
    pub validation_from: String,
    pub validation_to: String,
    pub validation_samples: u64,
    /// Validation metrics from the model card.
    pub auc: Option<f64>,
    pub log_loss: f64,
    pub baseline_log_loss: f64,
    pub brier: f64,
    pub threshold: f64,
    pub precision_at_threshold: Option<f64>,
    /// Mean realised R of every ICT signal and of those the model kept, on the validation period.
    pub expectancy_ict_r: Option<f64>,
    pub expectancy_ml_r: Option<f64>,
    /// Derived inputs (discovered interactions) the model takes after its base inputs.
    pub derived_inputs: u64,
}

/// The latest signal of a symbol, as the scanner shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SignalBadge {
    /// `LONG` or `SHORT`.
    pub side: String,
    /// Weighted quality, `0..=1`.
    pub quality: f64,
    /// Reward:risk of the take profit.
    pub rr: f64,
}

/// The top line: where we are connected and in which mode.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// `Binance USDT-M` or `simulated exchange`.
    pub venue: String,
    /// `mainnet`, `testnet`, `demo` or `sim`.
    pub environment: String,
    /// False = paper trading (the default).
    pub live_trading: bool,
    /// The strategy mode the engine has applied (not merely requested).
    pub mode: StrategyMode,
    /// Engine clock, milliseconds since the epoch (UTC).
    pub now_ms: i64,
    pub connection: ConnectionState,
    /// WebSocket connections up / total.
    pub streams_up: u32,
    pub streams_total: u32,
}

/// The three live-switchable strategy modes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyMode {
    /// ICT / Smart Money Concepts rules.
    #[default]
    Ict,
    /// The self-learning ML trader.
    SelfLearning,
    /// ICT signals filtered by the ML predictor.
    Hybrid,
}

impl StrategyMode {
    pub const ALL: [StrategyMode; 3] = [Self::Ict, Self::SelfLearning, Self::Hybrid];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ict => "ict",
            Self::SelfLearning => "self_learning",
            Self::Hybrid => "hybrid",
        }
    }

    /// The next mode in the `m` key's cycle.
    pub fn next(self) -> Self {
        match self {
            Self::Ict => Self::SelfLearning,
            Self::SelfLearning => Self::Hybrid,
            Self::Hybrid => Self::Ict,
        }
    }
}

/// Market-data connection state as the header shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    /// Start-up: loading exchange info and back-filling history.
    #[default]
    Connecting,
    /// Every stream connection is up.
    Connected,
    /// Some connections are up, some are reconnecting.
    Degraded,
    /// No stream connection is up.
    Disconnected,
}

/// One scanner line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScannerRow {
    /// 1-based rank by 24h quote volume.
    pub rank: u32,
    pub symbol: String,
    pub last_price: f64,
    /// Decimals to show prices with (the symbol's `pricePrecision`).
    pub price_decimals: u8,
    /// 24h change in percent.
    pub change_24h_pct: f64,
    /// 24h quote (USDT) volume.
    pub quote_volume_24h: f64,
    /// Change of the current (in-progress) bar in percent, one entry per `View::timeframes`;
    /// `None` until that timeframe has data.
    pub tf_change_pct: Vec<Option<f64>>,
    /// Structure bias per `View::timeframes`: +1 bullish, −1 bearish, `None` when unknown.
    #[serde(default)]
    pub bias: Vec<Option<i8>>,
    /// The symbol's latest strategy evaluation, when it was a signal.
    #[serde(default)]
    pub signal: Option<SignalBadge>,
    /// The most recent structure break across the timeframes.
    #[serde(default)]
    pub last_break: Option<BreakBadge>,
    /// The active order block or fair value gap nearest to the last price, across the timeframes.
    #[serde(default)]
    pub nearest_zone: Option<ZoneBadge>,
    /// The signal predictor's P(target before stop) for the symbol's latest candidate signal, once
    /// it came back (kept or filtered).
    #[serde(default)]
    pub ml_probability: Option<f64>,
}

/// A structure break as the scanner's `Break` column shows it (`CHoCH▲15m 3`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BreakBadge {
    /// `BOS` (continuation) or `CHoCH` (change of character).
    pub kind: String,
    pub bullish: bool,
    /// The timeframe it happened on, e.g. `15m`.
    pub timeframe: String,
    /// Closed bars of that timeframe since the breaking bar (0 = the newest closed bar broke).
    pub bars_ago: u32,
}

/// An active zone as the scanner's `Zone` column shows it (`OB▼1h -0.42%`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ZoneBadge {
    /// `OB` (order block) or `FVG` (fair value gap).
    pub kind: String,
    pub bullish: bool,
    /// The timeframe it belongs to, e.g. `1h`.
    pub timeframe: String,
    /// Signed distance in percent from the last price to the zone's nearest edge: positive when the
    /// zone is above the price, negative below, 0 when the price is inside it.
    pub distance_pct: f64,
}

/// Candles for the focused symbol.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Detail {
    pub symbol: String,
    pub timeframe: String,
    pub price_decimals: u8,
    /// Oldest first; the last one may be in progress (`closed == false`).
    pub candles: Vec<Candle>,
    /// Market structure of this symbol and timeframe to draw over the candles.
    #[serde(default)]
    pub overlays: Overlays,
    /// The liquidity model's odds for this symbol, when a model is loaded and a pool is in reach.
    #[serde(default)]
    pub sweep: Option<SweepOdds>,
}

/// P(price trades through the nearest unswept liquidity pool above / below within `horizon_bars` bars of
/// `timeframe`), from the liquidity prediction model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SweepOdds {
    pub above: Option<PoolOdds>,
    pub below: Option<PoolOdds>,
    pub horizon_bars: u32,
    pub timeframe: String,
}

/// One side's nearest pool and its probability of being swept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolOdds {
    pub level: f64,
    pub probability: f64,
}

/// Market structure drawn over the chart: only items inside the candles' time window and price range,
/// newest first within each list, capped at [`Overlays::MAX_SWINGS`], [`Overlays::MAX_ZONES`] and
/// [`Overlays::MAX_LEVELS`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Overlays {
    pub swings: Vec<SwingMark>,
    pub zones: Vec<ZoneBand>,
    pub levels: Vec<LevelLine>,
}

impl Overlays {
    pub const MAX_SWINGS: usize = 20;
    pub const MAX_ZONES: usize = 8;
    pub const MAX_LEVELS: usize = 6;

    pub fn is_empty(&self) -> bool {
        self.swings.is_empty() && self.zones.is_empty() && self.levels.is_empty()
    }
}

/// A confirmed swing high or low at the candle that made it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SwingMark {
    /// Open time of the candle that made the swing.
    pub open_time_ms: i64,
    pub price: f64,
    /// True for a swing high, false for a swing low.
    pub high: bool,
}

/// A live price zone (order block or fair value gap), drawn from its candle to the right edge.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ZoneBand {
    /// `OB` (order block) or `FVG` (fair value gap).
    pub kind: String,
    pub bullish: bool,
    pub top: f64,
    pub bottom: f64,
    /// Open time of the candle the zone belongs to.
    pub from_ms: i64,
}

/// A horizontal price level across the chart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LevelLine {
    /// Short label drawn at the right edge, e.g. `liq` (a pool of resting liquidity).
    pub kind: String,
    pub price: f64,
    /// True for a level above price action (equal highs, buy-side), false below (equal lows).
    pub high: bool,
}

/// One candle for the chart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Candle {
    pub open_time_ms: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
    pub closed: bool,
}

/// Engine progress and health, for the status bar and the headless status line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Symbols in the universe.
    pub universe_size: u32,
    /// (symbol, timeframe) series whose history back-fill is complete.
    pub series_backfilled: u32,
    /// (symbol, timeframe) series that have received a stream update since their back-fill.
    pub series_streaming: u32,
    /// Total series = universe × timeframes.
    pub series_total: u32,
    /// Closed bars received from streams and back-fills since start.
    pub closed_bars: u64,
    /// Stream reconnects since start.
    pub reconnects: u64,
    /// Closed bars missing between the first and last closed bar of every series (should be 0;
    /// recomputed by the engine's housekeeping, not on every frame).
    pub missing_bars: u64,
    /// Frames that could not be decoded (counted and skipped).
    pub malformed_frames: u64,
    /// REST weight used in the current minute, as reported by `X-MBX-USED-WEIGHT-1M`.
    pub rest_weight_used: u32,
    /// Milliseconds since the last stream message, if any arrived.
    pub last_message_age_ms: Option<u64>,
    /// A one-line message for the operator (last error, last mode change), if any.
    pub message: Option<String>,
    /// The REST weight limit per minute from `exchangeInfo` `rateLimits` (0 until known).
    #[serde(default)]
    pub rest_weight_limit: u32,
    /// While the venue forbids REST (429 / 418 with `Retry-After`): milliseconds left, and whether it
    /// is a ban (418) rather than a rate limit (429).
    #[serde(default)]
    pub rest_blocked: Option<RestBlock>,
    /// Venue clock minus local clock in milliseconds, once sampled from the venue's server time.
    #[serde(default)]
    pub clock_offset_ms: Option<i64>,
    /// Proactive stream rotations before the venue's 24-hour cut, since start.
    #[serde(default)]
    pub rotations: u64,
    /// Age of the user-data-stream listenKey in milliseconds; `None` while there is no user stream
    /// (paper trading, or before it is built).
    #[serde(default)]
    pub listen_key_age_ms: Option<u64>,
    /// Where the reconciliation with the venue's positions and orders stands; `None` while there is
    /// nothing to reconcile (paper trading, or before it is built).
    #[serde(default)]
    pub reconciliation: Option<Reconciliation>,
}

/// The venue refusing REST for a while.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestBlock {
    /// Milliseconds until requests may go out again.
    pub remaining_ms: u64,
    /// True for an IP ban (HTTP 418), false for a rate limit (HTTP 429).
    pub banned: bool,
}

/// The reconciliation gate: no new entry until local state matches the venue's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reconciliation {
    /// Fetching positions and open orders; entries are blocked.
    #[default]
    Pending,
    /// Local state equals the venue's.
    Reconciled,
    /// A query failed: the state is unknown (never assumed flat); entries are blocked.
    Unknown,
}

/// Long or short, for positions and heatmap cells.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionSide {
    #[default]
    Long,
    Short,
}

impl PositionSide {
    /// `LONG` / `SHORT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Long => "LONG",
            Self::Short => "SHORT",
        }
    }
}

/// The positions table: the rows the engine sends and how many positions are open in all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Positions {
    /// Open positions, riskiest first, capped at [`Positions::MAX_ROWS`] (the book may hold far more).
    #[serde(default)]
    pub rows: Vec<PositionRow>,
    /// Open positions in the book (may exceed `rows.len()`).
    #[serde(default)]
    pub open: u64,
    /// Sum of the unrealised PnL of every open position, USDT, after fees and funding.
    #[serde(default)]
    pub unrealized_pnl: f64,
    /// Realised PnL since the engine started (closed positions), USDT.
    #[serde(default)]
    pub realized_pnl: f64,
}

impl Positions {
    /// The most rows a view carries: more than any screen shows, few enough to send every frame.
    pub const MAX_ROWS: usize = 500;
}

/// One line of the positions table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PositionRow {
    /// The book's position id.
    pub id: u64,
    pub symbol: String,
    pub side: PositionSide,
    /// Size in the base asset (contracts), always positive.
    pub size: f64,
    /// Decimals to show prices with (the symbol's `pricePrecision`).
    pub price_decimals: u8,
    pub entry: f64,
    /// Latest mark price.
    pub mark: f64,
    /// Unrealised PnL in USDT, after fees and funding so far.
    pub pnl_usdt: f64,
    /// Unrealised PnL in percent of the initial margin.
    pub pnl_pct: f64,
    /// PnL in units of the initial risk (entry to stop): +2.0 = twice what the stop would lose.
    pub r_multiple: f64,
    pub leverage: u32,
    /// Liquidation price; `None` when the position cannot be liquidated (e.g. a 1× long).
    pub liquidation: Option<f64>,
    /// Distance from the mark to the stop in percent of the mark, positive while the stop is not hit;
    /// `None` without a stop.
    pub to_stop_pct: Option<f64>,
    /// Distance from the mark to the take profit in percent of the mark; `None` without one.
    pub to_target_pct: Option<f64>,
    /// Time since the position was created.
    pub age_ms: i64,
    /// The scheduler's current check interval for this position (100, 500, 2000, 5000 or the fixed 1000).
    pub interval_ms: u64,
    /// Risk score `0..=1` (ARCHITECTURE.md §4): 1 = at the stop or liquidation.
    pub risk_score: f64,
    /// A trailing stop is active.
    pub trailing: bool,
}

/// One cell of the position risk heatmap.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeatCell {
    /// The book's position id.
    pub position_id: u64,
    pub symbol: String,
    pub side: PositionSide,
    /// Risk score `0..=1`.
    pub risk_score: f64,
    /// A short text for the cell where there is room, e.g. `-0.4R` or `#12`.
    pub label: String,
}

/// The smart monitoring scheduler as the panel shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SchedulerPanel {
    /// The lanes, fastest first (100 ms, 500 ms, 2 s, 5 s with smart monitoring on).
    pub lanes: Vec<SchedulerLane>,
    /// `Some(interval)` when smart monitoring is off (`ENABLE_SMART_MONITORING=false`) and every
    /// position is checked at this fixed interval (1000 ms); `None` when the lanes apply.
    pub fixed_interval_ms: Option<u64>,
    /// Position checks per second, over the last few seconds.
    pub checks_per_sec: f64,
    /// Time until the next check is due; `None` with nothing scheduled.
    pub next_due_in_ms: Option<i64>,
    /// How late the latest check ran after it was due (0 = on time).
    pub lag_ms: i64,
    /// The largest such lateness over the last few seconds.
    pub max_lag_ms: i64,
}

/// One scheduler lane: positions checked at this interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SchedulerLane {
    pub interval_ms: u64,
    /// Positions currently in the lane.
    pub count: u64,
}

/// The eleven position lifecycle events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    #[default]
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
    /// With the reason: `manual`, `strategy`, `breaker`, `kill switch`, `take profit`, `stop loss`, …
    Closed {
        reason: String,
    },
}

impl EventKind {
    /// The kind as the event log names it, e.g. `SL hit`; `Closed` without its reason.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::PriceUpdated => "price",
            Self::RiskLevelChanged => "risk level",
            Self::TakeProfitApproaching => "TP near",
            Self::StopLossApproaching => "SL near",
            Self::TakeProfitTriggered => "TP hit",
            Self::StopLossTriggered => "SL hit",
            Self::TrailingStopMoved => "trail moved",
            Self::LiquidationWarning => "LIQ WARNING",
            Self::Expired => "expired",
            Self::Closed { .. } => "closed",
        }
    }
}

/// One line of the lifecycle event log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LifecycleEntry {
    /// When it happened, milliseconds since the epoch (UTC).
    pub time_ms: i64,
    pub position_id: u64,
    pub symbol: String,
    pub side: PositionSide,
    pub kind: EventKind,
    /// A short description, e.g. `stop 64 120.5 → 64 310.0` or `risk 0.42 → 0.71`.
    pub text: String,
}

/// Account equity over time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EquityCurve {
    /// Oldest first, at most [`EquityCurve::MAX_POINTS`] (the engine thins older points).
    pub points: Vec<EquityPoint>,
    /// Current equity, USDT (wallet balance plus unrealised PnL).
    pub equity: f64,
    /// Highest equity seen.
    pub peak: f64,
    /// Drawdown from the peak, in percent (0 at a new peak, positive below it).
    pub drawdown_pct: f64,
}

impl EquityCurve {
    pub const MAX_POINTS: usize = 512;
}

/// One equity sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EquityPoint {
    pub time_ms: i64,
    pub equity: f64,
}

/// The circuit breaker tiers, from harmless to drastic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerTier {
    /// Trading as configured.
    #[default]
    Normal,
    /// New positions at half size.
    Caution,
    /// No new entries; exits only.
    ReduceOnly,
    /// No orders but cancels; the operator is alerted.
    Halt,
    /// Close everything.
    Flatten,
}

impl BreakerTier {
    pub const ALL: [BreakerTier; 5] = [
        Self::Normal,
        Self::Caution,
        Self::ReduceOnly,
        Self::Halt,
        Self::Flatten,
    ];

    /// `NORMAL`, `CAUTION`, `REDUCE-ONLY`, `HALT`, `FLATTEN`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Caution => "CAUTION",
            Self::ReduceOnly => "REDUCE-ONLY",
            Self::Halt => "HALT",
            Self::Flatten => "FLATTEN",
        }
    }
}

/// The circuit breaker's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Breaker {
    pub tier: BreakerTier,
    /// Why the breaker is at this tier, e.g. `daily loss 3.1% ≥ 3%`; empty at `Normal`.
    pub reason: String,
    /// Time left before the tier may step down by itself; `None` without a cooldown.
    pub cooldown_ms: Option<i64>,
}

/// Where the kill switch stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KillSwitchState {
    /// Not pulled.
    #[default]
    Ready,
    /// Pulled: closing every position and cancelling every order.
    Flattening,
    /// Pulled and done: everything is flat and no new entries are made until the engine restarts
    /// or the breaker is reset.
    Engaged,
}

/// The kill switch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KillSwitch {
    pub state: KillSwitchState,
    /// Positions still to close while flattening.
    pub remaining: u64,
    /// When it was pulled, milliseconds since the epoch (UTC).
    pub pulled_at_ms: Option<i64>,
}
