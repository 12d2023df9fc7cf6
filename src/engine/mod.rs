//! The engine core: one task that owns all mutable state and processes [`EngineEvent`]s one at a
//! time.
//!
//! Market streams, REST answers, timers and operator commands arrive over one channel; `process` is
//! synchronous and never awaits I/O — anything slow (REST, sockets, the journal) is a channel away.
//! That makes the engine deterministic for a given event sequence, which is what lets a recorded
//! session replay to the same decisions. State is published to the UI as an `Arc<View>` over `watch`,
//! at most at the frame rate and only when something changed.
//!
//! The strategy runs inside this task ([`signals`]): closed bars feed a per-symbol analysis exactly
//! once, and the strategy of the current mode is evaluated on the trading cycle and on every closed
//! entry-timeframe bar; the latest evaluation per symbol and the signal funnel are published in the view.
//! With a feature store configured, the same closed entry bar writes the symbol's feature vector to its
//! slot ([`signals::FeatureSlots`]); the store is flushed on the virtual cycle and at shutdown.
//!
//! With a signal predictor loaded, every candidate signal is also queued for the async batch predictor
//! ([`prediction`]); its probability returns as [`EngineEvent::Prediction`]. In `hybrid` the signal
//! waits for it and is kept only if it clears the model's threshold; in the other modes the probability
//! is shown in the scanner and the funnel. The engine never waits for a model.
//!
//! Signals go on to [`trading`]: the trading cycle passes each new signal through risk (breaker,
//! sizing, leverage) into the virtual position book; mark prices (`<symbol>@markPrice@1s`) feed the
//! book, a monitor tick runs the scheduler's due checks, and the virtual cycle expires positions,
//! settles funding, samples equity and feeds the circuit breaker.

pub mod evolution;
pub mod learning;
pub mod outlets;
pub mod prediction;
pub mod signals;
pub mod structure;
pub mod trading;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, RwLock,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use perpdesk_ui::view::View;
use tokio::{
    sync::{mpsc, watch},
    time::{Instant, MissedTickBehavior},
};

use crate::{
    binance::{
        parse::{MarkUpdate, SymbolTable, TickerStats},
        rest::WeightMeter,
        stream::{StreamEvent, StreamManager},
    },
    domain::{Interval, SymbolId, TimestampMs},
    market::{
        feed::{BackfillFrom, FeedEvent, FeedRequest},
        series::{Applied, BarSeries},
        universe,
    },
    strategy::{AnalysisConfig, Mode, StrategyError},
};

use self::signals::{FeatureSlots, Funnel, NO_MODEL_MESSAGE, StrategySlot, SymbolSignals};
pub use self::{
    signals::FeatureStoreSettings,
    trading::{Trading, TradingSettings},
};
use crate::{risk::BreakerInput, strategy::Signal};

/// Everything that can happen to the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    Stream(StreamEvent),
    Feed(FeedEvent),
    Command(Command),
    /// A report of the live executor (`execution`): fills, gate changes, venue exits.
    Execution(crate::execution::ExecReport),
    /// The batch predictor's answer to one queued signal ([`prediction`]).
    Prediction(crate::ml::batch::InferenceResult),
    /// The self-learning task's news: a champion to hot-reload, its status, a message ([`learning`]).
    Learner(learning::LearnerEvent),
    /// The structure task's reading of the universe ([`structure`]).
    Structure(structure::StructureAnswer),
}

impl From<structure::StructureAnswer> for EngineEvent {
    fn from(a: structure::StructureAnswer) -> Self {
        Self::Structure(a)
    }
}

impl From<crate::ml::batch::InferenceResult> for EngineEvent {
    fn from(r: crate::ml::batch::InferenceResult) -> Self {
        Self::Prediction(r)
    }
}

impl From<StreamEvent> for EngineEvent {
    fn from(e: StreamEvent) -> Self {
        Self::Stream(e)
    }
}

impl From<FeedEvent> for EngineEvent {
    fn from(e: FeedEvent) -> Self {
        Self::Feed(e)
    }
}

/// Operator commands (from the TUI, an attached TUI, or a script).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    SetMode(Mode),
    /// Show this symbol and timeframe in the detail chart.
    Focus {
        symbol: String,
        interval: Interval,
    },
    Shutdown,
    /// Pull the kill switch (the console confirmed it): close every position, halt new entries.
    KillSwitch,
    /// Reset the circuit breaker (the console confirmed it); refused while its cooldown runs.
    ResetBreaker,
    /// The operator's manual entry at the mark (the console confirmed it): sized, gated and
    /// monitored like a signal's, stop and target from the entry timeframe's ATR.
    OpenPosition {
        symbol: String,
        side: crate::domain::Side,
    },
    /// Close this position at the mark (the console confirmed it); reason `manual`.
    ClosePosition(crate::positions::PositionId),
    /// Return the signal predictor to the previous champion (the console confirmed it); answered in
    /// the status bar once the registry has done it.
    RollbackModel,
    /// Show this one-line message in the status bar: the presenter's answer to an operator request
    /// the engine cannot carry out yet.
    Notice(String),
    /// Revert the strategy evolver's last change of parameter set (the console confirmed it).
    RevertStrategy,
}

/// Engine settings, taken from the configuration by the composition root.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub venue: String,
    pub environment: String,
    pub live_trading: bool,
    pub mode: Mode,
    pub universe_size: usize,
    pub timeframes: Vec<Interval>,
    pub history_bars: u32,
    pub ring_capacity: usize,
    pub universe_refresh: Duration,
    pub trading_cycle: Duration,
    pub virtual_cycle: Duration,
    pub view_fps: u32,
    /// Candles in the detail chart.
    pub chart_bars: usize,
    /// The feature store the engine keeps each symbol's feature vector in; `None` runs without one.
    pub feature_store: Option<FeatureStoreSettings>,
    /// Risk, positions and the circuit breaker.
    pub trading: TradingSettings,
}

/// Per-symbol state: one bar series per timeframe plus progress flags, and the strategy's analysis.
#[derive(Debug)]
pub struct SymbolState {
    pub series: Vec<BarSeries>,
    pub backfilled: Vec<bool>,
    pub streaming: Vec<bool>,
    pub mark: Option<MarkUpdate>,
    pub signals: SymbolSignals,
}

/// Counters shown in the status bar and the headless status line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub closed_bars: u64,
    pub reconnects: u64,
    pub malformed_frames: u64,
    pub backfill_failures: u64,
    pub trading_cycles: u64,
    /// Closed bars missing inside the stored series, from the last housekeeping pass.
    pub missing_bars: u64,
    pub virtual_cycles: u64,
    /// Proactive stream rotations before the venue's 24-hour cut.
    pub rotations: u64,
}

/// The engine state. Owned by one task; see the module docs.
#[derive(Debug)]
pub struct Engine {
    pub(crate) settings: EngineSettings,
    pub(crate) table: Arc<RwLock<SymbolTable>>,
    pub(crate) universe: Vec<SymbolId>,
    pub(crate) tickers: HashMap<SymbolId, TickerStats>,
    pub(crate) symbols: HashMap<SymbolId, SymbolState>,
    pub(crate) mode: Mode,
    pub(crate) shards_up: Vec<bool>,
    pub(crate) ever_connected: bool,
    pub(crate) counters: Counters,
    pub(crate) last_message_at: Option<Instant>,
    pub(crate) focus: Option<(SymbolId, usize)>,
    pub(crate) message: Option<String>,
    pub(crate) weight: Arc<WeightMeter>,
    /// Venue clock minus local clock (ms), shared with the REST client that samples it.
    pub(crate) clock_offset: Option<Arc<AtomicI64>>,
    /// The venue's server time has been sampled (the first universe load does it).
    pub(crate) clock_sampled: bool,
    /// The analysis configuration for the engine's timeframes, or the message saying why there is none.
    pub(crate) analysis: Result<AnalysisConfig, String>,
    strategy: StrategySlot,
    pub(crate) funnel: Funnel,
    /// The feature store, when configured and opened.
    features: Option<FeatureSlots>,
    /// Whether a feature store error was already reported (reported once).
    feature_error_reported: bool,
    /// Risk, the position book, the breaker.
    pub(crate) trading: Trading,
    /// Signals produced since the last trading cycle, in order; the cycle considers each once.
    pending_signals: Vec<Signal>,
    /// The signal predictor and the channel to its batch task, when a model is loaded.
    pub(crate) prediction: Option<prediction::PredictionLink>,
    /// The strategy evolver that sets `self_learning`'s parameters.
    pub(crate) evolution: Option<evolution::Evolution>,
    models_dir: Option<std::path::PathBuf>,
    /// The structure autoencoder's task and its newest reading of the universe, when a model is loaded.
    structure: Option<structure::StructureLink>,
    /// The feature discovery ranking (from its card) for the models panel.
    discovery: Option<crate::ml::discovery::DiscoveryCard>,
    /// The liquidity prediction model: the focused symbol's sweep odds on the chart (read at publish
    /// time, two rows of native trees: microseconds, no channel needed).
    liquidity: Option<Arc<crate::ml::liquidity::LiquidityModel>>,
    /// The self-learning task, when models are kept (see [`learning`]).
    learner: Option<learning::LearnerHandle>,
    /// Its last status (the models panel).
    pub(crate) learning: Option<learning::LearnerStatus>,
    /// Model rows of recent signals, until the trading cycle considers them.
    entry_rows: HashMap<(SymbolId, TimestampMs, crate::domain::Side), EntryRow>,
    /// Model rows of open positions that came from a signal: their sample when they close.
    open_rows: HashMap<crate::positions::PositionId, EntryRow>,
    streams: StreamManager<EngineEvent>,
    feed: mpsc::UnboundedSender<FeedRequest>,
    universe_pending: bool,
    /// Series whose back-fill failed; retried by the housekeeping tick.
    retry_backfill: HashSet<(SymbolId, usize)>,
    /// Series with a gap-fill request in flight (so a burst of updates asks only once).
    gap_pending: HashSet<(SymbolId, usize)>,
    /// Per series, the oldest hole being healed and how many fills it has had: a hole the venue
    /// itself has (real klines do, after maintenance) is asked for a bounded number of times.
    hole_attempts: HashMap<(SymbolId, usize), (TimestampMs, u8)>,
    dirty: bool,
    shutdown_requested: bool,
    /// Symbols outside the universe whose mark stream is kept for their open positions.
    monitored_outside: HashSet<SymbolId>,
}

/// Signal rows remembered at most (a bound for rows of signals never considered).
const ENTRY_ROWS: usize = 4_096;

/// The model row of a signal and what scored it, kept until its position closes.
#[derive(Debug, Clone)]
struct EntryRow {
    /// The signal's decision time.
    at: TimestampMs,
    row: [f32; crate::ml::predictor::INPUTS],
    quality: f64,
    reward_risk: f64,
    model_version: Option<String>,
    probability: Option<f32>,
}

/// The ticker stream every universe needs once.
pub const TICKER_STREAM: &str = "!ticker@arr";

pub fn kline_stream(symbol: &str, interval: Interval) -> String {
    format!("{}@kline_{}", symbol.to_ascii_lowercase(), interval.as_str())
}

/// The mark-price stream of a symbol (1 s updates), which drives position monitoring and funding.
pub fn mark_stream(symbol: &str) -> String {
    format!("{}@markPrice@1s", symbol.to_ascii_lowercase())
}

impl Engine {
    pub fn new(
        settings: EngineSettings,
        table: Arc<RwLock<SymbolTable>>,
        streams: StreamManager<EngineEvent>,
        feed: mpsc::UnboundedSender<FeedRequest>,
        weight: Arc<WeightMeter>,
    ) -> Self {
        let mode = settings.mode;
        let trading = Trading::new(settings.trading.clone());
        let analysis = signals::analysis_config(&settings.timeframes);
        let mut message = analysis.as_ref().err().cloned();
        if let Some(m) = &message {
            tracing::warn!("{m}");
        }
        let features = match settings.feature_store.as_ref().map(FeatureSlots::open) {
            None => None,
            Some(Ok(slots)) => Some(slots),
            Some(Err(error)) => {
                tracing::error!(%error, "cannot open the feature store; the engine runs without it");
                let store = format!("feature store off: {error}");
                message = Some(match message {
                    Some(m) => format!("{m}; {store}"),
                    None => store,
                });
                None
            }
        };
        Self {
            settings,
            table,
            universe: Vec::new(),
            tickers: HashMap::new(),
            symbols: HashMap::new(),
            mode,
            shards_up: Vec::new(),
            ever_connected: false,
            counters: Counters::default(),
            last_message_at: None,
            focus: None,
            message,
            weight,
            clock_offset: None,
            clock_sampled: false,
            analysis,
            strategy: StrategySlot::default(),
            funnel: Funnel::default(),
            features,
            feature_error_reported: false,
            trading,
            pending_signals: Vec::new(),
            prediction: None,
            evolution: None,
            models_dir: None,
            structure: None,
            discovery: None,
            liquidity: None,
            learner: None,
            learning: None,
            entry_rows: HashMap::new(),
            open_rows: HashMap::new(),
            streams,
            feed,
            universe_pending: false,
            retry_backfill: HashSet::new(),
            gap_pending: HashSet::new(),
            hole_attempts: HashMap::new(),
            dirty: true,
            shutdown_requested: false,
            monitored_outside: HashSet::new(),
        }
    }

    /// Connects the trading desk to the journal and Discord (see [`outlets`]); positions journalled
    /// open are put back on the book when the venue's symbols arrive.
    #[must_use]
    pub fn with_outlets(mut self, outlets: outlets::Outlets) -> Self {
        self.trading.connect(outlets);
        self.take_trading_message();
        self
    }

    /// Shows the REST client's clock offset in the status (see `MarketRest::clock_offset_cell`).
    #[must_use]
    pub fn with_clock_offset(mut self, cell: Arc<AtomicI64>) -> Self {
        self.clock_offset = Some(cell);
        self
    }

    /// The signal predictor behind its batch task: `hybrid` filters ICT signals with it and every mode
    /// shows its probabilities; `None`: `hybrid` runs the ICT rules only.
    #[must_use]
    pub fn with_prediction(mut self, link: Option<prediction::PredictionLink>) -> Self {
        self.strategy.set_model_loaded(link.is_some());
        self.prediction = link;
        self
    }

    /// The strategy evolver: `self_learning` trades with its current parameter set and it decides
    /// every `STRATEGY_EVOLUTION_INTERVAL`; `None`: `self_learning` uses the baseline set.
    #[must_use]
    pub fn with_evolution(mut self, evolution: Option<evolution::Evolution>) -> Self {
        self.evolution = evolution;
        self.apply_evolution();
        self
    }

    /// The strategy evolver, when there is one.
    pub fn evolution(&self) -> Option<&evolution::Evolution> {
        self.evolution.as_ref()
    }

    /// Hands the evolver's current set to the strategy (thresholds) and the desk (leverage, risk).
    fn apply_evolution(&mut self) {
        let (params, limits) = match &self.evolution {
            Some(e) => (e.ict_params(), Some(e.limits())),
            None => (
                crate::ml::evolver::PARAM_SETS[0].ict_params(&crate::strategy::IctParams::default()),
                None,
            ),
        };
        self.strategy.set_learning_params(params);
        self.trading.set_learning_limits(limits);
    }

    /// The probability a `self_learning` signal must reach: the evolver's set's.
    fn learning_threshold(&self) -> f64 {
        self.evolution.as_ref().map_or(
            crate::ml::evolver::PARAM_SETS[0].probability_threshold,
            evolution::Evolution::probability_threshold,
        )
    }

    /// The evolver's decision at the end of an interval (`STRATEGY_EVOLUTION_INTERVAL`): the realised R
    /// of `self_learning` positions closed since the last one is its reward. Only while the mode is
    /// `self_learning`; otherwise the R is kept for the next decision.
    pub fn evolve(&mut self) {
        let closed = self.trading.take_learning_r();
        let Some(evolution) = self.evolution.as_mut() else {
            return;
        };
        evolution.record(&closed);
        if self.mode != Mode::SelfLearning {
            return;
        }
        if let Some(change) = evolution.decide(crate::domain::now_ms()) {
            let record = evolution.change_record(&change);
            self.trading.outlets.strategy_change(record);
            self.apply_evolution();
            self.set_message(&format!("strategy evolver: {change}"));
        }
        self.dirty = true;
    }

    /// The self-learning task: closed positions become its samples, its champions are hot-reloaded.
    #[must_use]
    pub fn with_learner(mut self, learner: learning::LearnerHandle) -> Self {
        self.trading.collect_closes();
        self.learner = Some(learner);
        self
    }

    /// Where models are loaded from (shown in the models panel).
    #[must_use]
    pub fn with_models_dir(mut self, dir: std::path::PathBuf) -> Self {
        self.models_dir = Some(dir);
        self
    }

    pub fn models_dir(&self) -> Option<&std::path::Path> {
        self.models_dir.as_deref()
    }

    /// The structure task: each virtual cycle reads the universe's regime through it.
    #[must_use]
    pub fn with_structure(mut self, link: Option<structure::StructureLink>) -> Self {
        self.structure = link;
        self
    }

    /// The structure task's end, when a structure model is loaded.
    pub fn structure(&self) -> Option<&structure::StructureLink> {
        self.structure.as_ref()
    }

    /// The feature discovery card whose ranking the models panel shows.
    #[must_use]
    pub fn with_discovery(mut self, card: Option<crate::ml::discovery::DiscoveryCard>) -> Self {
        self.discovery = card;
        self
    }

    pub fn discovery(&self) -> Option<&crate::ml::discovery::DiscoveryCard> {
        self.discovery.as_ref()
    }

    /// The liquidity model whose odds the chart shows.
    #[must_use]
    pub fn with_liquidity(mut self, model: Option<crate::ml::liquidity::LiquidityModel>) -> Self {
        self.liquidity = model.map(Arc::new);
        self
    }

    pub fn liquidity(&self) -> Option<&crate::ml::liquidity::LiquidityModel> {
        self.liquidity.as_deref()
    }

    /// Sends every universe symbol's current feature vector to the structure task (skipped while the
    /// previous reading runs). The rows are built here, cheaply; the networks run in the task.
    fn request_structure(&mut self) {
        let Some(link) = self.structure.as_mut() else {
            return;
        };
        let mut rows = Vec::with_capacity(self.symbols.len());
        for (id, state) in &self.symbols {
            let Some(analysis) = state.signals.analysis.as_ref() else {
                continue;
            };
            let mut row = [0.0_f32; crate::features::SCHEMA_LEN];
            if crate::ml::dataset::feature_vector(analysis, &mut row) {
                rows.push((*id, row));
            }
        }
        rows.sort_by_key(|(id, _)| id.0);
        link.request(rows);
    }

    /// Takes the structure task's answer in; the universe's mean code becomes the evolver's regime.
    fn on_structure(&mut self, answer: structure::StructureAnswer) {
        let Some(link) = self.structure.as_mut() else {
            return;
        };
        link.resolve(answer);
        if let Some(evolution) = self.evolution.as_mut() {
            evolution.regime = link.market_code();
        }
        self.dirty = true;
    }

    /// The signal predictor link, when a model is loaded.
    pub fn prediction(&self) -> Option<&prediction::PredictionLink> {
        self.prediction.as_ref()
    }

    /// Venue clock minus local clock in ms, once sampled.
    pub fn clock_offset_ms(&self) -> Option<i64> {
        self.clock_offset
            .as_ref()
            .filter(|_| self.clock_sampled)
            .map(|c| c.load(Ordering::Relaxed))
    }

    /// Every closed bar held, as the rows of the bar export (`market::export`), sorted.
    pub fn export_rows(&self) -> Vec<crate::market::export::Row> {
        let Ok(table) = self.table.read() else {
            return Vec::new();
        };
        let mut rows = Vec::new();
        for id in &self.universe {
            let (Some(state), Some(sym)) = (self.symbols.get(id), table.get(*id)) else {
                continue;
            };
            for series in &state.series {
                rows.extend(series.closed().iter().map(|bar| {
                    crate::market::export::format_row(
                        &sym.name,
                        series.interval(),
                        bar,
                        sym.price_precision,
                        sym.quantity_precision,
                    )
                }));
            }
        }
        crate::market::export::sort_rows(&mut rows);
        rows
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn universe(&self) -> &[SymbolId] {
        &self.universe
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn symbol_state(&self, id: SymbolId) -> Option<&SymbolState> {
        self.symbols.get(&id)
    }

    /// The signal funnel since start.
    pub fn funnel(&self) -> &Funnel {
        &self.funnel
    }

    /// The feature store, when the engine runs with one.
    pub fn feature_slots(&self) -> Option<&FeatureSlots> {
        self.features.as_ref()
    }

    /// The virtual cycle: counts it, flushes the feature store, and runs the trading desk's
    /// housekeeping (expiries, funding, equity, breaker).
    pub fn virtual_cycle(&mut self) {
        self.counters.virtual_cycles += 1;
        if let Some(link) = self.prediction.as_mut() {
            let dropped = link.expire(Instant::now());
            if dropped > 0 {
                tracing::warn!(dropped, "signal predictor: requests unanswered in time, given up");
            }
        }
        self.flush_features();
        self.request_structure();
        self.trading.virtual_cycle(crate::domain::now_ms());
        self.learn_from_closes();
        self.take_trading_message();
        self.dirty = true;
    }

    /// The trading desk (risk, positions, breaker).
    pub fn trading(&self) -> &Trading {
        &self.trading
    }

    /// Moves the desk's status message to the status bar.
    fn take_trading_message(&mut self) {
        if let Some(m) = self.trading.message.take() {
            self.set_message(&m);
        }
    }

    /// Runs the position checks that are due (the monitor tick).
    pub fn monitor(&mut self) -> usize {
        let checks = self.trading.monitor();
        self.learn_from_closes();
        if checks > 0 {
            self.dirty = true;
            self.take_trading_message();
        }
        checks
    }

    /// Passes the signals produced since the last cycle through risk into the book.
    fn open_positions(&mut self) {
        let mode = self.mode;
        for signal in std::mem::take(&mut self.pending_signals) {
            let slot = self
                .features
                .as_ref()
                .and_then(|f| f.slot(signal.symbol))
                .map(|s| s.0);
            let result = self.trading.consider(&signal, mode, slot);
            let row = self.entry_rows.remove(&(signal.symbol, signal.at, signal.side));
            if let (Some(Ok(id)), Some(row)) = (&result, row) {
                self.open_rows.insert(*id, row);
            }
            if let Some(Err(refusal)) = &result {
                tracing::info!(symbol = signal.symbol.0, %refusal, "signal refused by risk");
            }
            if let Some(result) = result
                && self.trading.outlets.has_journal()
            {
                let outcome = match result {
                    Ok(id) => format!("accepted: opened {id}"),
                    Err(refusal) => format!("rejected: risk: {}", refusal.key()),
                };
                self.journal_signal(&signal, mode, slot, outcome);
            }
        }
        self.take_trading_message();
        self.dirty = true;
    }

    /// Journals a signal the trading cycle considered, with its feature vector and rule hits.
    fn journal_signal(&mut self, signal: &Signal, mode: Mode, slot: Option<u32>, outcome: String) {
        use outlets::dec;
        let features = self
            .features
            .as_ref()
            .zip(slot)
            .and_then(|(f, s)| f.store().read(crate::features::SlotId(s)).ok())
            .map(<[f32]>::to_vec)
            .unwrap_or_default();
        let rule_hits = serde_json::json!({
            "confluences": signal.confluences.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>(),
            "evidence": signal.evidence.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>(),
            "reward_risk": signal.reward_risk,
            "quality_components": signal.quality.components,
        });
        let record = crate::journal::SignalRecord {
            at_ms: signal.at,
            symbol: self.trading.outlets.symbol_name(signal.symbol).to_owned(),
            side: signal.side,
            mode: mode.as_str().to_owned(),
            entry: dec(signal.entry),
            stop: dec(signal.stop),
            take_profit: dec(signal.take_profit),
            quality: signal.quality.total,
            outcome,
            features,
            rule_hits,
            model_version: self
                .prediction
                .as_ref()
                .filter(|_| matches!(mode, Mode::Hybrid | Mode::SelfLearning))
                .map(|link| link.predictor.card.version.clone()),
        };
        self.trading.outlets.signal(record);
    }

    /// Writes dirty feature pages to the file.
    pub fn flush_features(&mut self) {
        if let Some(Err(error)) = self.features.as_ref().map(FeatureSlots::flush) {
            self.feature_error(&error);
        }
    }

    /// Reports a feature store error: the first one as an error and a status message, later ones at
    /// debug level (one failing write per closed bar would flood the log).
    fn feature_error(&mut self, error: &dyn std::fmt::Display) {
        if self.feature_error_reported {
            tracing::debug!(%error, "feature store");
        } else {
            self.feature_error_reported = true;
            tracing::error!(%error, "feature store");
            self.set_message(&format!("feature store: {error}"));
        }
    }

    /// Builds `id`'s feature vector from its analysis and writes it to its slot.
    fn store_features(&mut self, id: SymbolId) {
        let (Some(features), Some((analysis, series))) = (
            self.features.as_mut(),
            self.symbols
                .get(&id)
                .and_then(|s| Some((s.signals.analysis.as_ref()?, &s.series))),
        ) else {
            return;
        };
        let table = &self.table;
        let name = || table.read().ok()?.get(id).map(|s| s.name.clone());
        if let Err(error) = features.write(id, name, analysis, series) {
            self.feature_error(&error);
        }
    }

    /// The trading cycle: evaluates every universe symbol with the strategy of the current mode.
    pub fn trading_cycle(&mut self) {
        self.counters.trading_cycles += 1;
        self.evaluate(None);
        self.open_positions();
        self.learn_from_closes();
    }

    /// Remembers the model row of a signal (self-learning): if it opens a position, the row and the
    /// position's outcome become a sample.
    fn remember_row(&mut self, signal: &Signal) {
        if self.learner.is_none() {
            return;
        }
        let Some(analysis) = self
            .symbols
            .get(&signal.symbol)
            .and_then(|s| s.signals.analysis.as_ref())
        else {
            return;
        };
        let mut row = [0.0_f32; crate::ml::predictor::INPUTS];
        if !crate::strategy::hybrid::model_row(analysis, signal, &mut row) {
            return;
        }
        // Signals the trading cycle never considers (rejected, already acted on) are dropped in bulk.
        if self.entry_rows.len() >= ENTRY_ROWS {
            self.entry_rows.clear();
        }
        self.entry_rows.insert(
            (signal.symbol, signal.at, signal.side),
            EntryRow {
                at: signal.at,
                row,
                quality: signal.quality.total,
                reward_risk: signal.reward_risk,
                model_version: self.prediction.as_ref().map(|l| l.predictor.card.version.clone()),
                probability: None,
            },
        );
    }

    /// Hands every newly closed position that came from a signal to the learner as a sample.
    fn learn_from_closes(&mut self) {
        let Some(learner) = self.learner.as_ref() else {
            return;
        };
        for event in self.trading.take_closes() {
            let Some(entry) = self.open_rows.remove(&event.position) else {
                continue;
            };
            let crate::positions::EventKind::Closed {
                reason, r_multiple, ..
            } = event.kind
            else {
                continue;
            };
            let Some(outcome) = crate::ml::online::label(reason) else {
                tracing::debug!(position = %event.position, reason = reason.name(), "closed position not a sample");
                continue;
            };
            let at_ms = entry.at;
            let sample = crate::ml::online::OnlineSample {
                symbol: self.trading.outlets.symbol_name(event.symbol).to_owned(),
                side: event.side,
                at_ms,
                resolved_ms: event.at,
                row: entry.row.to_vec(),
                outcome,
                r: r_multiple,
                reward_risk: entry.reward_risk,
                quality: entry.quality,
                close_reason: reason.name().to_owned(),
                model_version: entry.model_version,
                probability: entry.probability,
            };
            if !learner.sample(sample) {
                tracing::warn!(position = %event.position, "online sample dropped: the learner is busy or gone");
            }
        }
    }

    fn set_message(&mut self, message: &str) {
        if self.message.as_deref() != Some(message) {
            self.message = Some(message.to_owned());
            self.dirty = true;
        }
    }

    /// Evaluates one symbol (`Some`) or the whole universe (`None`) and counts the funnel.
    fn evaluate(&mut self, only: Option<SymbolId>) {
        if let Err(message) = &self.analysis {
            let message = message.clone();
            self.set_message(&message);
            return;
        }
        let learning_threshold = self.learning_threshold();
        let fresh = self.strategy.is_stale(self.mode);
        let strategy = match self.strategy.get(self.mode) {
            Ok(strategy) => strategy,
            Err(StrategyError::ModelUnavailable(_)) => {
                for state in self.symbols.values_mut() {
                    state.signals.latest = None;
                }
                self.set_message(NO_MODEL_MESSAGE);
                return;
            }
        };
        let notice = strategy.notice().filter(|_| fresh);
        let now = crate::domain::now_ms();
        let ids = match &only {
            Some(id) => std::slice::from_ref(id),
            None => self.universe.as_slice(),
        };
        let mut remember = Vec::new();
        for id in ids {
            let Some(state) = self.symbols.get_mut(id) else {
                continue;
            };
            let Some(analysis) = state.signals.analysis.as_ref() else {
                continue;
            };
            // The signal's time is the close of the entry bar it was computed at (market time), so
            // it is the same in a replay at any speed and comparable with the mark stream's clock.
            let at = analysis
                .timeframe(crate::strategy::Role::Entry)
                .last_bar()
                .map_or(now, |b| b.close_time);
            let evaluation = strategy.evaluate(*id, analysis, at);
            self.funnel.record(&evaluation);
            state.signals.probability = None;
            let signal_for_row = evaluation.signal().filter(|_| self.learner.is_some()).cloned();
            if let Some(signal) = evaluation.signal() {
                let filter = matches!(self.mode, Mode::Hybrid | Mode::SelfLearning);
                match self.prediction.as_mut() {
                    // Hybrid and self_learning: the signal waits in the link for its probability.
                    Some(link) if filter => {
                        let threshold = if self.mode == Mode::SelfLearning {
                            learning_threshold
                        } else {
                            link.threshold
                        };
                        if !link.request_at(signal, analysis, true, threshold) {
                            tracing::info!(
                                symbol = id.0,
                                mode = %self.mode,
                                "signal refused: the model could not score it"
                            );
                        }
                    }
                    Some(link) => {
                        link.request(signal, analysis, false);
                        self.pending_signals.push(signal.clone());
                    }
                    None => self.pending_signals.push(signal.clone()),
                }
            }
            state.signals.latest = Some(evaluation);
            self.dirty = true;
            if let Some(signal) = signal_for_row {
                remember.push(signal);
            }
        }
        for signal in remember {
            self.remember_row(&signal);
        }
        if let Some(notice) = notice {
            self.set_message(notice);
        }
    }

    /// The venue name of a symbol.
    pub fn symbol_name(&self, id: SymbolId) -> Option<String> {
        self.table.read().ok()?.get(id).map(|s| s.name.clone())
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    fn request(&self, req: FeedRequest) {
        // The feed task ends only at shutdown; a failed send then is harmless.
        let _ = self.feed.send(req);
    }

    /// Asks the feed for a fresh universe (start-up, hourly refresh, retry).
    pub fn request_universe(&mut self) {
        if !self.universe_pending {
            self.universe_pending = true;
            self.request(FeedRequest::Universe);
        }
    }

    /// Processes one event. Synchronous by design: see the module docs.
    pub fn process(&mut self, event: EngineEvent) {
        match event {
            EngineEvent::Stream(e) => self.on_stream(e),
            EngineEvent::Feed(e) => self.on_feed(e),
            EngineEvent::Command(c) => self.on_command(c),
            EngineEvent::Execution(r) => self.on_execution(r),
            EngineEvent::Prediction(r) => self.on_prediction(r),
            EngineEvent::Learner(e) => self.on_learner(e),
            EngineEvent::Structure(a) => self.on_structure(a),
        }
        self.learn_from_closes();
    }

    /// The self-learning task's news: a new champion is hot-reloaded into the batch predictor (or
    /// starts it, when there was no model), its status goes to the models panel.
    fn on_learner(&mut self, event: learning::LearnerEvent) {
        match event {
            learning::LearnerEvent::Champion(learning::ChampionSwap(predictor)) => {
                tracing::info!(version = %predictor.card.version, "signal predictor hot-reloaded");
                if let Some(link) = self.prediction.as_mut() {
                    link.swap(predictor);
                } else if let Some(learner) = &self.learner {
                    let threshold = predictor.card.metrics.threshold;
                    let link = prediction::PredictionLink::spawn(
                        predictor,
                        threshold,
                        learner.batch,
                        learner.events.clone(),
                    );
                    self.strategy.set_model_loaded(true);
                    self.prediction = Some(link);
                }
            }
            learning::LearnerEvent::Status(status) => self.learning = Some(*status),
            learning::LearnerEvent::Message(message) => self.set_message(&message),
        }
        self.dirty = true;
    }

    /// The stored closed bars of the analysis timeframes, per symbol (what a retrain replays).
    fn training_bars(&self) -> Vec<crate::ml::dataset::SymbolBars> {
        let config = crate::strategy::AnalysisConfig::default();
        let index = |interval| self.settings.timeframes.iter().position(|t| *t == interval);
        let (Some(entry), Some(setup), Some(higher)) = (
            index(config.entry.interval),
            index(config.setup.interval),
            index(config.higher.interval),
        ) else {
            return Vec::new();
        };
        let table = self.table.read().ok();
        self.symbols
            .iter()
            .filter_map(|(id, state)| {
                let bars = |tf: usize| -> Vec<crate::domain::Bar> {
                    state
                        .series
                        .get(tf)
                        .map(|s| s.closed().iter().copied().collect())
                        .unwrap_or_default()
                };
                Some(crate::ml::dataset::SymbolBars {
                    symbol: table.as_ref()?.get(*id)?.name.clone(),
                    entry: bars(entry),
                    setup: bars(setup),
                    higher: bars(higher),
                })
            })
            .collect()
    }

    /// A probability came back: shown on the symbol if its latest evaluation is still that signal;
    /// in `hybrid` the signal goes on to the trading cycle if it clears the threshold, else it becomes
    /// a model rejection (journalled like a risk refusal).
    fn on_prediction(&mut self, result: crate::ml::batch::InferenceResult) {
        let Some(link) = self.prediction.as_mut() else {
            return;
        };
        let Some(resolved) = link.resolve(result) else {
            return;
        };
        let threshold = resolved.threshold;
        let signal = resolved.signal;
        if let Some(row) = self.entry_rows.get_mut(&(signal.symbol, signal.at, signal.side)) {
            row.probability = resolved.probability;
        }
        let rejection = resolved
            .probability
            .and_then(|p| crate::strategy::hybrid::decide(p, threshold));
        if let Some(state) = self.symbols.get_mut(&signal.symbol)
            && state
                .signals
                .latest
                .as_ref()
                .and_then(crate::strategy::Evaluation::signal)
                .is_some_and(|latest| latest.at == signal.at && latest.side == signal.side)
        {
            state.signals.probability = resolved.probability;
            if resolved.filter
                && let Some(rejected) = rejection
            {
                state.signals.latest = Some(crate::strategy::Evaluation::Rejected(rejected));
            }
        }
        if resolved.filter {
            match (resolved.probability, rejection) {
                (Some(_), None) => self.pending_signals.push(signal),
                (Some(_), Some(rejected)) => {
                    tracing::info!(symbol = signal.symbol.0, reason = %rejected.reason, "signal rejected by the model");
                    if self.trading.outlets.has_journal() {
                        let slot = self
                            .features
                            .as_ref()
                            .and_then(|f| f.slot(signal.symbol))
                            .map(|s| s.0);
                        let outcome = format!("rejected: model: {}", rejected.reason);
                        let mode = if self.mode == Mode::SelfLearning {
                            Mode::SelfLearning
                        } else {
                            Mode::Hybrid
                        };
                        self.journal_signal(&signal, mode, slot, outcome);
                    }
                }
                (None, _) => {
                    tracing::warn!(
                        symbol = signal.symbol.0,
                        "signal refused: the model failed on its batch"
                    );
                }
            }
        }
        self.dirty = true;
    }

    /// Mirrors positions on the venue through `link` (live trading).
    #[must_use]
    pub fn with_execution(mut self, link: crate::execution::ExecutionLink) -> Self {
        self.trading.set_execution(link);
        self
    }

    /// Applies a live executor's report: real fills into the book, positions the venue refused or
    /// closed out of it, the gate and problems into the status bar.
    fn on_execution(&mut self, report: crate::execution::ExecReport) {
        use crate::{execution::ExecReport, positions::CloseReason};
        if let Some(link) = self.trading.execution_mut() {
            link.on_report(&report);
        }
        let now = crate::domain::now_ms();
        match report {
            ExecReport::Gate { state, detail } => {
                self.set_message(&format!("live trading: {state:?}: {detail}"));
            }
            ExecReport::EntryFilled {
                position,
                qty,
                avg_price,
            } => {
                let _ = self.trading.book.apply_fill(position, qty, avg_price);
            }
            ExecReport::EntryFailed {
                position,
                error,
                venue_reject,
            } => {
                // Nothing is on the venue: the virtual position must not pretend otherwise.
                self.trading.close_position(position, CloseReason::Manual);
                if venue_reject {
                    self.trading.breaker_input(BreakerInput::OrderRejected, now);
                }
                self.set_message(&format!("live entry {position} withdrawn: {error}"));
            }
            ExecReport::ProtectionFailed { position, error } => {
                self.trading.close_position(position, CloseReason::Manual);
                self.trading.breaker_input(BreakerInput::OrderRejected, now);
                self.set_message(&format!(
                    "live position {position} closed, no stop on the venue: {error}"
                ));
            }
            ExecReport::VenueExit {
                position,
                take_profit,
                ..
            } => {
                let reason = if take_profit {
                    CloseReason::TakeProfit
                } else {
                    CloseReason::StopLoss
                };
                self.trading.close_position(position, reason);
            }
            ExecReport::Flattened {
                positions_closed,
                orders_cancelled,
                remaining,
            } => {
                let text = if remaining == 0 {
                    format!(
                        "kill switch on the venue: {positions_closed} positions closed, {orders_cancelled} orders cancelled, flat"
                    )
                } else {
                    format!(
                        "kill switch on the venue: {remaining} positions or orders still open, check the venue"
                    )
                };
                self.set_message(&text);
            }
            ExecReport::Adopted {
                position,
                qty,
                replaced,
            } => {
                let text = if replaced.is_empty() {
                    format!("live position {position} adopted after the restart ({qty} on the venue)")
                } else {
                    format!(
                        "live position {position} adopted after the restart ({qty} on the venue), {} placed again",
                        replaced.join(" and ")
                    )
                };
                self.set_message(&text);
            }
            ExecReport::AdoptedFlat {
                position,
                mark,
                detail,
            } => {
                let reason = self.trading.restored_close_reason(position, mark);
                self.trading.close_position(position, reason);
                self.set_message(&format!(
                    "live position {position} closed on the venue while perpdesk was down ({detail}); closed as {} at the last mark",
                    reason.name()
                ));
            }
            ExecReport::Brackets { tables, refused } => {
                for (symbol, table) in tables {
                    self.trading.set_brackets(symbol, table);
                }
                for error in &refused {
                    tracing::warn!(%error, "a venue bracket table was refused; its symbol keeps the conservative default");
                }
            }
            ExecReport::BracketsUnavailable { error } => {
                self.set_message(&format!(
                    "live trading: leverage brackets unavailable ({error}); the conservative default caps leverage"
                ));
            }
            ExecReport::Problem(text) => self.set_message(&text),
            ExecReport::ListenKey
            | ExecReport::Protected { .. }
            | ExecReport::Exited { .. }
            | ExecReport::StopMoved { .. } => {}
        }
        self.take_trading_message();
        self.dirty = true;
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::SetMode(m) => {
                if m != self.mode {
                    tracing::info!(from = %self.mode, to = %m, "strategy mode changed");
                    self.mode = m;
                    self.message = Some(format!("strategy mode is now {m}"));
                    self.dirty = true;
                }
            }
            Command::Focus { symbol, interval } => {
                let id = self.table.read().ok().and_then(|t| t.id(&symbol));
                let tf = self.settings.timeframes.iter().position(|t| *t == interval);
                if let (Some(id), Some(tf)) = (id, tf) {
                    self.focus = Some((id, tf));
                    self.dirty = true;
                }
            }
            Command::Shutdown => self.shutdown_requested = true,
            Command::KillSwitch => {
                tracing::warn!("kill switch pulled by the operator");
                self.trading.pull_kill_switch(crate::domain::now_ms());
                self.take_trading_message();
                self.dirty = true;
            }
            Command::ResetBreaker => {
                let _ = self.trading.reset_breaker(crate::domain::now_ms());
                self.take_trading_message();
                self.dirty = true;
            }
            Command::OpenPosition { symbol, side } => self.open_manual(&symbol, side),
            Command::ClosePosition(id) => {
                let closed = self
                    .trading
                    .close_position(id, crate::positions::CloseReason::Manual);
                if closed {
                    tracing::info!(%id, "position closed by the operator");
                }
                let answer = if closed {
                    format!("{id} closed by the operator")
                } else {
                    format!("{id} is not open: nothing closed")
                };
                self.set_message(&answer);
                self.take_trading_message();
                self.dirty = true;
            }
            Command::RollbackModel => {
                let answer = match &self.learner {
                    Some(learner) if learner.command(learning::LearnerCommand::Rollback) => {
                        "rolling the signal predictor back to the previous champion…"
                    }
                    Some(_) => "model rollback not started: the learner is busy",
                    None => "model rollback: no model registry (no models directory)",
                };
                self.set_message(answer);
            }
            Command::Notice(text) => {
                self.message = Some(text);
                self.dirty = true;
            }
            Command::RevertStrategy => {
                let reverted = self.evolution.as_mut().map(|e| {
                    e.revert(crate::domain::now_ms())
                        .map(|change| (e.change_record(&change), change))
                });
                let answer = match reverted {
                    None => "no strategy evolver: nothing to revert".to_owned(),
                    Some(None) => "strategy evolver: no change to revert".to_owned(),
                    Some(Some((record, change))) => {
                        self.trading.outlets.strategy_change(record);
                        self.apply_evolution();
                        format!("strategy evolver: {change}")
                    }
                };
                self.set_message(&answer);
                self.dirty = true;
            }
        }
    }

    /// Carries out a manual entry; the answer, opened or refused with the reason, goes to the status bar.
    fn open_manual(&mut self, symbol: &str, side: crate::domain::Side) {
        let id = self.table.read().ok().and_then(|t| t.id(symbol));
        let atr = id.and_then(|id| {
            let analysis = self.symbols.get(&id)?.signals.analysis.as_ref()?;
            analysis
                .timeframe(crate::strategy::Role::Entry)
                .indicators()
                .latest()
                .atr14
        });
        let answer = match (id, atr) {
            (None, _) => format!("manual {side} {symbol} refused: not in the universe"),
            (Some(_), None) => format!("manual {side} {symbol} refused: no ATR on the entry timeframe yet"),
            (Some(id), Some(atr)) => {
                let slot = self.features.as_ref().and_then(|f| f.slot(id)).map(|s| s.0);
                match self.trading.open_manual(id, side, atr, self.mode, slot) {
                    Ok(position) => {
                        tracing::info!(symbol, %side, %position, "manual entry by the operator");
                        format!("manual {side} {symbol} opened as {position}")
                    }
                    Err(refusal) => {
                        tracing::info!(symbol, %side, %refusal, "manual entry refused");
                        format!("manual {side} {symbol} refused: {refusal}")
                    }
                }
            }
        };
        self.set_message(&answer);
        self.take_trading_message();
        self.dirty = true;
    }

    fn on_feed(&mut self, e: FeedEvent) {
        match e {
            FeedEvent::Universe { info, tickers } => {
                self.universe_pending = false;
                self.clock_sampled = true;
                self.apply_universe(&info, &tickers);
            }
            FeedEvent::UniverseFailed { error } => {
                self.universe_pending = false;
                tracing::warn!(%error, "universe refresh failed");
                self.message = Some(format!("universe refresh failed: {error}"));
                self.dirty = true;
            }
            FeedEvent::History {
                symbol,
                interval,
                bars,
                ..
            } => {
                let Some(tf) = self.settings.timeframes.iter().position(|t| *t == interval) else {
                    return;
                };
                let Some(state) = self.symbols.get_mut(&symbol) else {
                    return;
                };
                let new = state.series[tf].merge(&bars);
                state.backfilled[tf] = true;
                let fed = self.analysis.as_ref().is_ok_and(|config| {
                    state
                        .signals
                        .feed_new(tf, interval, state.series[tf].closed(), config)
                });
                if fed && tf == 0 {
                    self.store_features(symbol);
                }
                self.counters.closed_bars += new as u64;
                self.retry_backfill.remove(&(symbol, tf));
                self.gap_pending.remove(&(symbol, tf));
                // A jump seen while this fill was in flight, or a fill served before the venue had
                // closed the missing bars, leaves a hole: ask again from just before it.
                self.heal_hole(symbol, tf);
                self.dirty = true;
            }
            FeedEvent::BackfillFailed {
                symbol,
                interval,
                error,
            } => {
                tracing::warn!(?symbol, %interval, %error, "back-fill failed; will retry");
                self.counters.backfill_failures += 1;
                if let Some(tf) = self.settings.timeframes.iter().position(|t| *t == interval) {
                    self.retry_backfill.insert((symbol, tf));
                    self.gap_pending.remove(&(symbol, tf));
                }
                self.message = Some(format!("back-fill failed: {error}"));
                self.dirty = true;
            }
        }
    }

    fn apply_universe(
        &mut self,
        info: &crate::binance::wire::ExchangeInfo,
        tickers: &[crate::binance::wire::Ticker24hr],
    ) {
        let new_universe = {
            let Ok(mut table) = self.table.write() else { return };
            for err in table.merge(info) {
                tracing::warn!(error = %err, "exchangeInfo entry skipped");
            }
            self.trading.on_exchange_info(info, |name| table.id(name));
            // The first symbol list lets the journal's open positions back on the book, before any
            // signal of this run is considered.
            self.trading.restore_positions(|name| table.id(name));
            for t in tickers {
                if let (Some(id), Ok(stats)) =
                    (table.id(&t.symbol), crate::binance::parse::parse_ticker_rest(t))
                {
                    self.tickers.insert(id, stats);
                }
            }
            universe::select(&table, &self.tickers, self.settings.universe_size)
        };
        let first = self.universe.is_empty();
        let diff = universe::diff(&self.universe, &new_universe);
        let names: HashMap<SymbolId, String> = match self.table.read() {
            Ok(t) => diff
                .added
                .iter()
                .chain(diff.removed.iter())
                .filter_map(|id| t.get(*id).map(|s| (*id, s.name.clone())))
                .collect(),
            Err(_) => return,
        };
        let tfs = self.settings.timeframes.clone();
        let gone: Vec<String> = diff
            .removed
            .iter()
            .filter_map(|id| names.get(id))
            .flat_map(|n| tfs.iter().map(move |tf| kline_stream(n, *tf)))
            .collect();
        let mut gone = gone;
        // A symbol with open positions keeps its mark stream: they are still monitored.
        gone.extend(
            diff.removed
                .iter()
                .filter(|id| self.trading.book.positions().all(|p| p.symbol != **id))
                .filter_map(|id| names.get(id))
                .map(|n| mark_stream(n)),
        );
        self.streams.unsubscribe(&gone);
        // A symbol that stopped trading (delisting, settlement) leaves the universe: no new entries on
        // it from now on. Say so, naming the venue's status.
        let stopped: Vec<String> = match self.table.read() {
            Ok(t) => diff
                .removed
                .iter()
                .filter_map(|id| t.get(*id))
                .filter(|s| s.status != crate::domain::SymbolStatus::Trading)
                .map(|s| format!("{} ({:?})", s.name, s.status))
                .collect(),
            Err(_) => Vec::new(),
        };
        if !stopped.is_empty() {
            let message = format!(
                "left TRADING, removed from the universe, no new entries: {}",
                stopped.join(", ")
            );
            tracing::warn!("{message}");
            self.message = Some(message);
        }
        for id in &diff.removed {
            self.symbols.remove(id);
            if let Some(Err(error)) = self.features.as_mut().map(|f| f.release(*id)) {
                self.feature_error(&error);
            }
        }
        let mut added_streams = Vec::new();
        if first {
            added_streams.push(TICKER_STREAM.to_owned());
        }
        for id in &diff.added {
            let Some(name) = names.get(id) else { continue };
            let state = SymbolState {
                series: tfs
                    .iter()
                    .map(|tf| BarSeries::new(*tf, self.settings.ring_capacity))
                    .collect(),
                backfilled: vec![false; tfs.len()],
                streaming: vec![false; tfs.len()],
                mark: None,
                signals: SymbolSignals::new(self.analysis.as_ref().ok(), tfs.len()),
            };
            self.symbols.insert(*id, state);
            added_streams.push(mark_stream(name));
            for tf in &tfs {
                added_streams.push(kline_stream(name, *tf));
                self.request(FeedRequest::Backfill {
                    symbol: *id,
                    name: name.clone(),
                    interval: *tf,
                    from: BackfillFrom::Latest {
                        bars: self.settings.history_bars,
                    },
                });
            }
        }
        // Positions on symbols outside the universe (restored from the journal) are still monitored.
        let outside: HashSet<SymbolId> = self
            .trading
            .book
            .positions()
            .map(|p| p.symbol)
            .filter(|id| !new_universe.contains(id) && !self.monitored_outside.contains(id))
            .collect();
        if let Ok(t) = self.table.read() {
            for id in outside {
                if let Some(s) = t.get(id) {
                    added_streams.push(mark_stream(&s.name));
                    self.monitored_outside.insert(id);
                }
            }
        }
        self.streams.subscribe(added_streams);
        self.shards_up.resize(self.streams.shard_count(), false);
        if !diff.added.is_empty() || !diff.removed.is_empty() {
            tracing::info!(
                size = new_universe.len(),
                added = diff.added.len(),
                removed = diff.removed.len(),
                "universe updated"
            );
        }
        self.universe = new_universe;
        if self.focus.is_none() {
            self.focus = self.universe.first().map(|id| (*id, 0));
        }
        self.dirty = true;
    }

    fn series_of_stream(&self, stream: &str) -> Option<(SymbolId, usize)> {
        let (sym, tf) = stream.split_once("@kline_")?;
        let interval: Interval = tf.parse().ok()?;
        let tf = self.settings.timeframes.iter().position(|t| *t == interval)?;
        let id = self.table.read().ok()?.id(&sym.to_ascii_uppercase())?;
        Some((id, tf))
    }

    fn on_stream(&mut self, e: StreamEvent) {
        match e {
            StreamEvent::Kline(u) => {
                self.last_message_at = Some(Instant::now());
                let Some(tf) = self.settings.timeframes.iter().position(|t| *t == u.interval) else {
                    return;
                };
                let Some(state) = self.symbols.get_mut(&u.symbol) else {
                    return;
                };
                // A bar that opens more than one interval after our last closed bar means closed
                // bars went missing (a reconnect race, a dropped frame): fetch them over REST. This
                // is what makes a series self-healing whatever caused the hole.
                let gap_from = state.series[tf]
                    .last_closed()
                    .filter(|last| {
                        state.backfilled[tf] && u.bar.open_time > u.interval.next_open(last.open_time)
                    })
                    .map(|last| last.open_time);
                let applied = state.series[tf].apply(u.bar);
                if state.backfilled[tf] {
                    state.streaming[tf] = true;
                }
                // Before its back-fill lands a series feeds nothing: the back-fill feeds it all, in order.
                let fed = applied == Applied::Closed
                    && state.backfilled[tf]
                    && self
                        .analysis
                        .as_ref()
                        .is_ok_and(|config| state.signals.feed(tf, u.interval, &u.bar, config));
                if u.bar.closed && matches!(applied, Applied::Closed | Applied::Inserted) {
                    self.counters.closed_bars += 1;
                }
                if let Some(from) = gap_from {
                    self.request_gap_fill(u.symbol, tf, BackfillFrom::Since(from));
                }
                if fed && tf == 0 {
                    self.evaluate(Some(u.symbol));
                    self.store_features(u.symbol);
                }
                self.dirty = true;
            }
            StreamEvent::Tickers(ts) => {
                self.last_message_at = Some(Instant::now());
                for (id, stats) in ts {
                    self.tickers.insert(id, stats);
                }
                self.dirty = true;
            }
            StreamEvent::Mark(m) => {
                self.last_message_at = Some(Instant::now());
                self.trading.on_mark(&m);
                if let Some(state) = self.symbols.get_mut(&m.symbol) {
                    state.mark = Some(m);
                }
            }
            StreamEvent::Up {
                shard,
                streams,
                reconnect,
            } => {
                if self.shards_up.len() <= shard {
                    self.shards_up.resize(shard + 1, false);
                }
                self.shards_up[shard] = true;
                self.ever_connected = true;
                if reconnect {
                    self.counters.reconnects += 1;
                    self.trading.outlets.ops(
                        crate::notify::OpsKind::Reconnect,
                        &format!("reconnect:{shard}"),
                        &format!("market stream connection {shard} reconnected"),
                    );
                    self.trading
                        .breaker_input(BreakerInput::Reconnected, crate::domain::now_ms());
                    self.gap_fill(&streams);
                }
                self.message = None;
                self.dirty = true;
            }
            StreamEvent::Down { shard, reason } => {
                if let Some(up) = self.shards_up.get_mut(shard) {
                    *up = false;
                }
                if reason.starts_with("stale") {
                    let positions_open = !self.trading.book.is_empty();
                    if positions_open {
                        self.trading.outlets.ops(
                            crate::notify::OpsKind::StaleStream,
                            &format!("stale:{shard}"),
                            &format!("market stream connection {shard} stale with positions open: {reason}"),
                        );
                    }
                    self.trading.breaker_input(
                        BreakerInput::StaleStream { positions_open },
                        crate::domain::now_ms(),
                    );
                }
                self.message = Some(format!("stream {shard} down: {reason}"));
                self.take_trading_message();
                self.dirty = true;
            }
            StreamEvent::Rotated { .. } => {
                self.counters.rotations += 1;
                self.dirty = true;
            }
            StreamEvent::Malformed { .. } => self.counters.malformed_frames += 1,
        }
    }

    /// After a reconnect: fetch every bar since the last closed one of each re-subscribed series, so
    /// the bars that closed while the connection was down are not lost.
    fn gap_fill(&mut self, streams: &[String]) {
        for s in streams {
            let Some((id, tf)) = self.series_of_stream(s) else {
                continue;
            };
            // A series still in its initial back-fill is covered by that request.
            if !self.symbols.get(&id).is_some_and(|st| st.backfilled[tf]) {
                continue;
            }
            if let Some(from) = self.resume_point(id, tf) {
                self.request_gap_fill(id, tf, from);
            }
        }
    }

    /// Where history for a series resumes: before its oldest hole if it has one, else after its last
    /// closed bar, or a full back-fill if it has none.
    fn resume_point(&self, id: SymbolId, tf: usize) -> Option<BackfillFrom> {
        let series = &self.symbols.get(&id)?.series[tf];
        if let Some(before_hole) = series.first_gap_after() {
            return Some(BackfillFrom::Since(before_hole));
        }
        Some(series.last_closed().map_or(
            BackfillFrom::Latest {
                bars: self.settings.history_bars,
            },
            |b| BackfillFrom::Since(b.open_time),
        ))
    }

    /// Asks for a gap fill from just before the series' oldest hole, at most `MAX_HOLE_FILLS` times
    /// per hole; a venue-side hole is then left alone (and counted in `missing_bars`).
    fn heal_hole(&mut self, id: SymbolId, tf: usize) {
        const MAX_HOLE_FILLS: u8 = 6;
        let Some(before_hole) = self
            .symbols
            .get(&id)
            .and_then(|st| st.series[tf].first_gap_after())
        else {
            self.hole_attempts.remove(&(id, tf));
            return;
        };
        let entry = self.hole_attempts.entry((id, tf)).or_insert((before_hole, 0));
        if entry.0 != before_hole {
            *entry = (before_hole, 0);
        }
        if entry.1 >= MAX_HOLE_FILLS {
            return;
        }
        entry.1 += 1;
        if entry.1 == MAX_HOLE_FILLS {
            tracing::warn!(
                ?id,
                tf,
                before_hole,
                "hole still open after repeated gap fills; the venue may lack these bars"
            );
        }
        self.request_gap_fill(id, tf, BackfillFrom::Since(before_hole));
    }

    /// Asks the feed for history of one series unless a request for it is already in flight.
    fn request_gap_fill(&mut self, id: SymbolId, tf: usize, from: BackfillFrom) {
        if !self.gap_pending.insert((id, tf)) {
            return;
        }
        let name = self
            .table
            .read()
            .ok()
            .and_then(|t| t.get(id).map(|s| s.name.clone()));
        if let Some(name) = name {
            self.request(FeedRequest::Backfill {
                symbol: id,
                name,
                interval: self.settings.timeframes[tf],
                from,
            });
        } else {
            self.gap_pending.remove(&(id, tf));
        }
    }

    /// Housekeeping: retries a missing universe and failed back-fills; hands the stored bars to the
    /// learner when it asked for them.
    fn housekeeping(&mut self) {
        if self
            .learner
            .as_ref()
            .is_some_and(learning::LearnerHandle::take_bars_request)
        {
            let bars = self.training_bars();
            if let Some(learner) = &self.learner {
                learner.send_bars(bars);
            }
        }
        self.counters.missing_bars = self
            .symbols
            .values()
            .flat_map(|s| s.series.iter())
            .map(|s| s.gap_count() as u64)
            .sum();
        if self.universe.is_empty() {
            self.request_universe();
        }
        // A hole can outlive the gap fill meant for it: the fill may have been served before the
        // venue closed the missing bars, or a jump seen while a fill was in flight was folded into
        // it. Every series that still has a hole gets a fresh fill from just before it.
        let holed: Vec<(SymbolId, usize)> = self
            .symbols
            .iter()
            .flat_map(|(id, st)| {
                st.series
                    .iter()
                    .enumerate()
                    .filter(|(tf, s)| st.backfilled[*tf] && s.first_gap_after().is_some())
                    .map(move |(tf, _)| (*id, tf))
            })
            .filter(|key| !self.gap_pending.contains(key))
            .collect();
        for (id, tf) in holed {
            self.heal_hole(id, tf);
        }
        let retry: Vec<_> = self.retry_backfill.drain().collect();
        for (id, tf) in retry {
            if let Some(from) = self.resume_point(id, tf) {
                self.request_gap_fill(id, tf, from);
            }
        }
    }

    /// Takes the "changed since last publish" flag.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Runs the engine until shutdown: events, cadences, and view publishing.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<EngineEvent>,
        view: watch::Sender<Arc<View>>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Self {
        self.request_universe();
        let frame = Duration::from_millis(1000 / u64::from(self.settings.view_fps.max(1)));
        let mut publish = tokio::time::interval(frame);
        publish.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut trading = tokio::time::interval(self.settings.trading_cycle);
        let mut virtual_cycle = tokio::time::interval(self.settings.virtual_cycle);
        let mut refresh = tokio::time::interval(self.settings.universe_refresh);
        refresh.tick().await; // the first tick fires at once; start-up already asked
        let mut housekeeping = tokio::time::interval(Duration::from_secs(5));
        let evolution_every = self
            .evolution
            .as_ref()
            .map_or(Duration::from_secs(3600), |e| e.settings.interval)
            .max(Duration::from_secs(1));
        let mut evolution = tokio::time::interval_at(Instant::now() + evolution_every, evolution_every);
        evolution.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut monitor = tokio::time::interval(trading::MONITOR_TICK);
        monitor.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut last_publish_second = 0i64;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                ev = events.recv() => {
                    let Some(ev) = ev else { break };
                    self.process(ev);
                    if self.shutdown_requested { break; }
                }
                _ = publish.tick() => {
                    let second = crate::domain::now_ms() / 1000;
                    if self.take_dirty() || second != last_publish_second {
                        last_publish_second = second;
                        let v = crate::console::presenter::build_view(&self);
                        view.send_replace(Arc::new(v));
                    }
                }
                _ = trading.tick() => self.trading_cycle(),
                _ = virtual_cycle.tick() => self.virtual_cycle(),
                _ = refresh.tick() => self.request_universe(),
                _ = housekeeping.tick() => self.housekeeping(),
                _ = monitor.tick() => { self.monitor(); }
                _ = evolution.tick() => self.evolve(),
            }
        }
        self.flush_features();
        self.trading.persist_now(crate::domain::now_ms());
        if let Some(evolution) = self.evolution.as_mut().filter(|e| e.unsaved()) {
            // R closed since the last decision is part of the tracker the next run resumes.
            evolution.save(crate::domain::now_ms());
        }
        self.trading.outlets.finish().await;
        let v = crate::console::presenter::build_view(&self);
        view.send_replace(Arc::new(v));
        tracing::info!("engine stopped");
        self
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, RwLock};

    use tokio::sync::{mpsc, watch};

    use super::*;
    use crate::{
        binance::{parse::KlineUpdate, stream::StreamConfig, wire},
        domain::Bar,
        strategy::Role,
    };

    fn settings(timeframes: Vec<Interval>) -> EngineSettings {
        EngineSettings {
            venue: "test".into(),
            environment: "test".into(),
            live_trading: false,
            mode: Mode::Ict,
            universe_size: 1,
            timeframes,
            history_bars: 10,
            ring_capacity: 1_000,
            universe_refresh: Duration::from_secs(3600),
            trading_cycle: Duration::from_secs(60),
            virtual_cycle: Duration::from_secs(10),
            view_fps: 30,
            chart_bars: 10,
            feature_store: None,
            trading: TradingSettings::default(),
        }
    }

    fn bar(minute: i64, closed: bool) -> Bar {
        Bar {
            open_time: minute * 60_000,
            close_time: minute * 60_000 + 59_999,
            open: 1.0,
            high: 1.0,
            low: 1.0,
            close: 1.0,
            volume: 1.0,
            quote_volume: 1.0,
            trades: 1,
            closed,
        }
    }

    /// An engine on 1m with one symbol in its universe, its feed requests observable.
    fn engine() -> (Engine, mpsc::UnboundedReceiver<FeedRequest>, SymbolId) {
        engine_on(vec![Interval::M1])
    }

    /// An engine on `timeframes` with one symbol in its universe, its feed requests observable.
    fn engine_on(timeframes: Vec<Interval>) -> (Engine, mpsc::UnboundedReceiver<FeedRequest>, SymbolId) {
        engine_with(settings(timeframes))
    }

    /// An engine with `settings` and one symbol in its universe, its feed requests observable.
    fn engine_with(settings: EngineSettings) -> (Engine, mpsc::UnboundedReceiver<FeedRequest>, SymbolId) {
        let (events, _events_rx) = mpsc::channel(16);
        let (_shutdown_tx, shutdown_rx) = watch::channel(false);
        let table = Arc::new(RwLock::new(SymbolTable::default()));
        // Port 9 (discard) on loopback: the shard's connection attempts fail quietly and retry.
        let streams = StreamManager::new(
            StreamConfig::new("ws://127.0.0.1:9"),
            Arc::clone(&table),
            events,
            shutdown_rx,
        );
        let (feed_tx, feed_rx) = mpsc::unbounded_channel();
        let mut e = Engine::new(
            settings,
            table,
            streams,
            feed_tx,
            Arc::new(WeightMeter::default()),
        );
        let info: wire::ExchangeInfo = serde_json::from_str(
            r#"{"timezone":"UTC","serverTime":1,"rateLimits":[],"symbols":[{"symbol":"BTCUSDT","contractType":"PERPETUAL",
            "status":"TRADING","baseAsset":"BTC","quoteAsset":"USDT","pricePrecision":1,"quantityPrecision":3,"filters":[
            {"filterType":"PRICE_FILTER","minPrice":"0.1","maxPrice":"1000000","tickSize":"0.1"},
            {"filterType":"LOT_SIZE","minQty":"0.001","maxQty":"1000","stepSize":"0.001"}]}]}"#,
        )
        .expect("exchange info");
        e.process(EngineEvent::Feed(FeedEvent::Universe {
            info: Box::new(info),
            tickers: Vec::new(),
        }));
        let id = e.universe()[0];
        (e, feed_rx, id)
    }

    #[tokio::test]
    async fn a_jump_in_the_stream_triggers_one_gap_fill() {
        let (mut e, mut feed, id) = engine();
        assert!(matches!(
            feed.try_recv(),
            Ok(FeedRequest::Backfill {
                from: BackfillFrom::Latest { bars: 10 },
                ..
            })
        ));
        let history: Vec<Bar> = (0..10).map(|m| bar(m, true)).collect();
        e.process(EngineEvent::Feed(FeedEvent::History {
            symbol: id,
            interval: Interval::M1,
            from: BackfillFrom::Latest { bars: 10 },
            bars: history,
        }));
        let kline = |b: Bar| {
            EngineEvent::Stream(StreamEvent::Kline(KlineUpdate {
                symbol: id,
                interval: Interval::M1,
                bar: b,
                event_time: 0,
            }))
        };
        // In order: no gap fill.
        e.process(kline(bar(10, false)));
        e.process(kline(bar(10, true)));
        assert!(feed.try_recv().is_err());
        // Minute 11 never arrives closed; minute 12 shows up: fetch from the last closed bar (10).
        e.process(kline(bar(12, false)));
        e.process(kline(bar(12, true)));
        match feed.try_recv() {
            Ok(FeedRequest::Backfill {
                from: BackfillFrom::Since(t),
                ..
            }) => assert_eq!(t, 10 * 60_000),
            other => panic!("expected a gap fill, got {other:?}"),
        }
        assert!(feed.try_recv().is_err(), "one request while it is in flight");
        // The gap fill lands: nothing missing any more.
        e.process(EngineEvent::Feed(FeedEvent::History {
            symbol: id,
            interval: Interval::M1,
            from: BackfillFrom::Since(10 * 60_000),
            bars: vec![bar(10, true), bar(11, true), bar(12, true)],
        }));
        let series = &e.symbol_state(id).expect("state").series[0];
        assert_eq!(series.gap_count(), 0);
        assert_eq!(series.closed().len(), 13);
    }

    #[tokio::test]
    async fn a_gap_fill_served_before_the_venue_closed_the_hole_is_asked_again_then_given_up() {
        let (mut e, mut feed, id) = engine();
        let _ = feed.try_recv();
        let history: Vec<Bar> = (0..10).map(|m| bar(m, true)).collect();
        e.process(EngineEvent::Feed(FeedEvent::History {
            symbol: id,
            interval: Interval::M1,
            from: BackfillFrom::Latest { bars: 10 },
            bars: history,
        }));
        let kline = |b: Bar| {
            EngineEvent::Stream(StreamEvent::Kline(KlineUpdate {
                symbol: id,
                interval: Interval::M1,
                bar: b,
                event_time: 0,
            }))
        };
        // Minutes 10 and 11 are lost; minute 12 closes and then minute 13 (a newer last bar).
        e.process(kline(bar(12, true)));
        e.process(kline(bar(13, true)));
        let since = |r: Result<FeedRequest, _>| match r {
            Ok(FeedRequest::Backfill {
                from: BackfillFrom::Since(t),
                ..
            }) => t,
            other => panic!("expected a gap fill, got {other:?}"),
        };
        assert_eq!(since(feed.try_recv()), 9 * 60_000);
        // The fill comes back without the missing bars (served too early): the engine asks again
        // from just before the hole, not from its newest bar, up to six more times.
        for _ in 0..6 {
            e.process(EngineEvent::Feed(FeedEvent::History {
                symbol: id,
                interval: Interval::M1,
                from: BackfillFrom::Since(9 * 60_000),
                bars: vec![bar(9, true)],
            }));
            assert_eq!(since(feed.try_recv()), 9 * 60_000);
        }
        // A hole the venue itself has is asked for a bounded number of times, then left alone.
        e.process(EngineEvent::Feed(FeedEvent::History {
            symbol: id,
            interval: Interval::M1,
            from: BackfillFrom::Since(9 * 60_000),
            bars: vec![bar(9, true)],
        }));
        assert!(feed.try_recv().is_err());
        e.housekeeping();
        assert!(feed.try_recv().is_err());
        assert_eq!(e.symbol_state(id).expect("state").series[0].gap_count(), 2);
    }

    #[tokio::test]
    async fn a_signal_opens_a_position_on_the_trading_cycle_and_the_view_shows_it() {
        let (mut e, _feed, id) = engine();
        let mark = |price: f64, at: i64| {
            EngineEvent::Stream(StreamEvent::Mark(crate::binance::parse::MarkUpdate {
                symbol: id,
                mark_price: price,
                index_price: price,
                funding_rate: 0.0001,
                next_funding_time: 8 * 3_600_000,
                event_time: at,
            }))
        };
        e.process(mark(30_000.0, 60_000));
        e.pending_signals.push(Signal {
            symbol: id,
            side: crate::domain::Side::Long,
            at: 60_000,
            entry: 30_000.0,
            stop: 29_700.0,
            take_profit: 30_600.0,
            reward_risk: 2.0,
            confluences: Vec::new(),
            evidence: Vec::new(),
            quality: crate::strategy::QualityScore {
                components: [0.8; 6],
                total: 0.8,
            },
        });
        e.trading_cycle();
        let view = crate::console::presenter::build_view(&e);
        assert_eq!(view.positions.open, 1);
        assert_eq!(
            (view.funnel.risk_accepted, view.funnel.opened),
            (Some(1), Some(1))
        );
        let row = &view.positions.rows[0];
        assert_eq!(
            (row.symbol.as_str(), row.entry, row.interval_ms),
            ("BTCUSDT", 30_000.0, 5_000)
        );
        assert_eq!(view.heatmap.len(), 1);
        assert_eq!(view.scheduler.lanes.iter().map(|l| l.count).sum::<u64>(), 1);
        assert_eq!(view.events[0].kind, perpdesk_ui::view::EventKind::Created);
        e.process(mark(29_900.0, 61_000));
        e.process(EngineEvent::Command(Command::KillSwitch));
        let view = crate::console::presenter::build_view(&e);
        assert_eq!(view.positions.open, 0);
        assert_eq!(
            view.events[0].kind,
            perpdesk_ui::view::EventKind::Closed {
                reason: "kill switch".into()
            }
        );
        assert!(view.positions.realized_pnl < 0.0);
        assert_eq!(view.breaker.tier, perpdesk_ui::view::BreakerTier::Halt);
        assert_eq!(
            view.kill_switch.state,
            perpdesk_ui::view::KillSwitchState::Engaged
        );
    }

    #[tokio::test]
    async fn mode_changes_apply_and_are_reported() {
        let (mut e, _feed, _) = engine();
        e.take_dirty();
        e.process(EngineEvent::Command(Command::SetMode(Mode::Hybrid)));
        assert_eq!(e.mode(), Mode::Hybrid);
        assert!(e.take_dirty());
        e.process(EngineEvent::Command(Command::SetMode(Mode::Hybrid)));
        assert!(!e.take_dirty(), "re-applying the same mode is not a change");
    }

    /// A signal predictor that gives every row the same probability, and its link over a channel the
    /// test answers itself (standing in for the batch task).
    fn link(
        threshold: f64,
    ) -> (
        prediction::PredictionLink,
        mpsc::Receiver<crate::ml::batch::InferenceRequest>,
    ) {
        let ensemble = crate::ml::trees::TreeEnsemble::new(
            crate::ml::predictor::INPUTS,
            &[vec![crate::ml::trees::Node::leaf(0.0)]],
        )
        .expect("a one-leaf ensemble is valid");
        let predictor = Arc::new(crate::ml::predictor::SignalPredictor::new(
            ensemble,
            crate::ml::predictor::tests::card(),
        ));
        let (tx, rx) = mpsc::channel(4096);
        let link = prediction::PredictionLink::new(
            predictor,
            threshold,
            crate::ml::batch::BatchSettings::default(),
            tx,
            Arc::new(crate::ml::batch::PredictorMetrics::default()),
        );
        (link, rx)
    }

    /// The learner's champions are hot-reloaded (the first one starts the batch predictor), its status
    /// reaches the models panel, and a confirmed rollback is forwarded to it.
    #[tokio::test]
    async fn learner_champions_hot_reload_and_a_rollback_is_forwarded() {
        use learning::{ChampionSwap, LearnerCommand, LearnerEvent, LearnerHandle, LearnerStatus};
        let (e, _feed, _) = engine();
        let (events, _events_rx) = mpsc::channel(64);
        let (handle, _samples, mut commands) = LearnerHandle::for_test(events);
        let mut e = e.with_learner(handle);
        assert!(e.prediction().is_none());
        let predictor = |version: &str, threshold: f64| {
            let ensemble = crate::ml::trees::TreeEnsemble::new(
                crate::ml::predictor::INPUTS,
                &[vec![crate::ml::trees::Node::leaf(0.0)]],
            )
            .expect("a one-leaf ensemble");
            let mut card = crate::ml::predictor::tests::card();
            card.version = version.into();
            card.metrics.threshold = threshold;
            Arc::new(crate::ml::predictor::SignalPredictor::new(ensemble, card))
        };
        e.process(EngineEvent::Learner(LearnerEvent::Champion(ChampionSwap(
            predictor("v1", 0.4),
        ))));
        let link = e
            .prediction()
            .expect("the first champion starts the batch predictor");
        assert_eq!(
            (link.predictor.card.version.as_str(), link.threshold),
            ("v1", 0.4)
        );
        assert!(e.strategy.get(Mode::Hybrid).is_ok());
        e.process(EngineEvent::Learner(LearnerEvent::Champion(ChampionSwap(
            predictor("v2", 0.5),
        ))));
        let link = e.prediction().expect("still running");
        assert_eq!(
            (link.predictor.card.version.as_str(), link.threshold),
            ("v2", 0.5)
        );
        e.process(EngineEvent::Learner(LearnerEvent::Status(Box::new(
            LearnerStatus {
                enabled: true,
                champion: Some("v2".into()),
                rollback_to: Some("v1".into()),
                ..LearnerStatus::default()
            },
        ))));
        let view = crate::console::presenter::build_view(&e);
        assert!(view.models.models[0].champion);
        assert_eq!(
            view.models.learning.and_then(|l| l.rollback_to).as_deref(),
            Some("v1")
        );
        e.process(EngineEvent::Command(Command::RollbackModel));
        assert_eq!(commands.try_recv().ok(), Some(LearnerCommand::Rollback));
        assert!(e.message.as_deref().is_some_and(|m| m.contains("rolling")));
    }

    /// The models panel marks the discovered interactions the live predictor takes as derived inputs,
    /// and its predictor line counts them.
    #[tokio::test]
    async fn the_models_panel_marks_the_discoveries_in_the_live_predictor() {
        let (e, _feed, _) = engine();
        let predictor = Arc::new(crate::ml::predictor::tests::derived_predictor());
        assert_eq!(predictor.card.derived_inputs[0], "ctx.side×tf0.rsi");
        let (tx, _requests) = mpsc::channel(4);
        let link = prediction::PredictionLink::new(
            predictor,
            0.4,
            crate::ml::batch::BatchSettings::default(),
            tx,
            Arc::new(crate::ml::batch::PredictorMetrics::default()),
        );
        let entry = |name: &str, promoted: bool| {
            serde_json::json!({
                "name": name, "gate": 1.0, "score": 1.0, "permutation_importance": 0.01, "promoted": promoted
            })
        };
        let card: crate::ml::discovery::DiscoveryCard = serde_json::from_value(serde_json::json!({
            "model": "feature_discovery", "version": "feature_discovery-1", "created": "now",
            "perpdesk_version": "0", "file": "f", "sha256": "", "feature_schema_hash": "",
            "input_hash": "", "inputs": [],
            "params": crate::ml::discovery::GateParams::default(),
            "discovery_rate": 0.1,
            "ranking": [
                entry("ctx.side×tf0.rsi", true),
                entry("tf0.rsi", true),
                entry("ctx.side×tf1.adx", false),
            ],
            "promoted": ["ctx.side×tf0.rsi", "tf0.rsi"],
            "train_samples": 1, "validation_samples": 1, "validation_from_ms": 0, "purge_ms": 0,
            "metrics": {"auc": null, "log_loss": 0.6, "baseline_log_loss": 0.7,
                        "rank_correlation": null, "open_gates": 3},
            "command": "test"
        }))
        .expect("a discovery card");
        let e = e.with_prediction(Some(link)).with_discovery(Some(card));
        let panel = crate::console::presenter::build_view(&e).models;
        assert_eq!(panel.models[0].derived_inputs, 2);
        let marked: Vec<(&str, bool, bool)> = panel
            .discovery
            .iter()
            .map(|d| (d.name.as_str(), d.promoted, d.in_predictor))
            .collect();
        assert_eq!(
            marked,
            [
                ("ctx.side×tf0.rsi", true, true),
                ("tf0.rsi", true, false),
                ("ctx.side×tf1.adx", false, false),
            ]
        );
    }

    #[tokio::test]
    async fn hybrid_uses_the_signal_predictor_when_one_is_given() {
        let (e, _feed, _) = engine();
        let (link, _requests) = link(0.4);
        let mut e = e.with_prediction(Some(link));
        let strategy = e
            .strategy
            .get(Mode::Hybrid)
            .as_ref()
            .expect("hybrid always builds");
        assert_eq!((strategy.mode(), strategy.notice()), (Mode::Hybrid, None));
        let mut e = e.with_prediction(None);
        let strategy = e
            .strategy
            .get(Mode::Hybrid)
            .as_ref()
            .expect("hybrid always builds");
        assert_eq!(strategy.notice(), Some(crate::strategy::HYBRID_WITHOUT_MODEL));
    }

    /// Back-fills two thirds of [`market`] on 5m/15m/1h and streams the rest, so the strategy
    /// evaluates every new entry bar; stops early once `done(engine)`.
    fn replay_market(e: &mut Engine, id: SymbolId, done: impl Fn(&Engine) -> bool) {
        let tfs = [Interval::M5, Interval::M15, Interval::H1];
        let bars = market(1_440);
        for (tf, series) in bars.iter().enumerate() {
            e.process(EngineEvent::Feed(FeedEvent::History {
                symbol: id,
                interval: tfs[tf],
                from: BackfillFrom::Latest { bars: 10 },
                bars: series[..series.len() * 2 / 3].to_vec(),
            }));
        }
        let mut stream: Vec<(usize, Bar)> = Vec::new();
        for (tf, series) in bars.iter().enumerate() {
            stream.extend(series[series.len() * 2 / 3..].iter().map(|b| (tf, *b)));
        }
        stream.sort_by_key(|(tf, b)| (b.close_time, std::cmp::Reverse(*tf)));
        for (tf, bar) in stream {
            e.process(EngineEvent::Stream(StreamEvent::Kline(KlineUpdate {
                symbol: id,
                interval: tfs[tf],
                bar,
                event_time: 0,
            })));
            if done(e) {
                return;
            }
        }
    }

    /// `hybrid` with a model: a candidate signal is queued for the predictor and not traded; its
    /// probability arrives as an event; below the threshold it is refused (a model rejection on the
    /// symbol, counted as filtered), at or above it goes to the trading cycle and opens a position.
    #[tokio::test]
    async fn hybrid_opens_a_signal_only_after_its_probability_event_clears_the_threshold() {
        use crate::ml::batch::InferenceResult;
        let (e, _feed, id) = engine_with(EngineSettings {
            mode: Mode::Hybrid,
            ..settings(vec![Interval::M5, Interval::M15, Interval::H1])
        });
        let (link, mut requests) = link(0.5);
        let mut e = e.with_prediction(Some(link));
        // Up to the second signal, so the symbol's latest evaluation is the signal waiting last.
        replay_market(&mut e, id, |e| e.funnel().signals >= 2);
        let mut queued = Vec::new();
        while let Ok(request) = requests.try_recv() {
            queued.push(request);
        }
        let signals = e.funnel().signals;
        assert_eq!(
            signals,
            2,
            "the market gives ICT signals to filter: {:?}",
            e.funnel()
        );
        assert_eq!(queued.len() as u64, signals, "one request per signal");
        assert!(
            e.pending_signals.is_empty(),
            "no hybrid signal is traded before its probability"
        );
        let ids: Vec<u64> = queued.iter().map(|r| r.id).collect();
        assert_eq!(
            e.prediction().map(prediction::PredictionLink::in_flight),
            Some(ids.len())
        );

        // Every earlier signal is refused: its probability is below the threshold.
        for id in &ids[..ids.len() - 1] {
            e.process(EngineEvent::Prediction(InferenceResult {
                id: *id,
                probability: Some(0.2),
                batch_size: ids.len(),
            }));
        }
        assert!(e.pending_signals.is_empty());
        let counts = e.prediction().map(|l| l.counts).unwrap_or_default();
        assert_eq!(
            (counts.scored, counts.below, counts.filtered),
            (signals - 1, signals - 1, signals - 1)
        );
        e.open_positions();
        assert_eq!(e.trading().book.len(), 0, "a refused signal opens nothing");

        // The last one clears the threshold: it is shown on the symbol and opens on the cycle.
        let last = *ids.last().expect("a request");
        let latest = e
            .symbol_state(id)
            .and_then(|s| s.signals.latest.clone())
            .and_then(|ev| ev.signal().cloned())
            .expect("the latest evaluation is the waiting signal");
        e.process(EngineEvent::Stream(StreamEvent::Mark(
            crate::binance::parse::MarkUpdate {
                symbol: id,
                mark_price: latest.entry,
                index_price: latest.entry,
                funding_rate: 0.0001,
                next_funding_time: latest.at + 3_600_000,
                event_time: latest.at,
            },
        )));
        e.process(EngineEvent::Prediction(InferenceResult {
            id: last,
            probability: Some(0.8),
            batch_size: 1,
        }));
        assert_eq!(e.pending_signals.len(), 1);
        assert_eq!(e.symbol_state(id).and_then(|s| s.signals.probability), Some(0.8));
        e.open_positions();
        assert_eq!(e.trading().book.len(), 1, "{:?}", e.trading().funnel);
        assert_eq!(e.prediction().map(prediction::PredictionLink::in_flight), Some(0));
        let view = crate::console::presenter::build_view(&e);
        assert_eq!(view.scanner[0].ml_probability, Some(0.8_f32.into()));
        let ml = view.funnel.ml.expect("the funnel has the model stage");
        assert_eq!((ml.kept, ml.filtered), (1, signals - 1));
        assert_eq!(view.models.models.len(), 1);
        // An answer for an unknown id (already resolved) changes nothing.
        e.process(EngineEvent::Prediction(InferenceResult {
            id: last,
            probability: Some(0.9),
            batch_size: 1,
        }));
        assert!(e.pending_signals.is_empty());
        assert_eq!(e.prediction().map(|l| l.counts.scored), Some(signals));
    }

    /// `self_learning`: the ICT candidates at the evolver's thresholds, kept at the evolver's probability
    /// threshold (not the link's), sized within the evolver's leverage cap and the hard caps; the
    /// evolver decides on its interval and the operator can revert its change.
    #[tokio::test]
    async fn self_learning_trades_with_the_evolvers_parameter_set_and_its_change_reverts() {
        use crate::ml::{
            batch::InferenceResult,
            evolver::{Evolver, EvolverConfig, HardCaps, PARAM_SETS},
        };
        let mut engine_settings = EngineSettings {
            mode: Mode::SelfLearning,
            ..settings(vec![Interval::M5, Interval::M15, Interval::H1])
        };
        engine_settings.trading.risk.max_leverage = 2;
        let (e, _feed, id) = engine_with(engine_settings);
        // Without a predictor the mode says so and trades nothing.
        let (mut bare, _feed2, _) = engine_on(vec![Interval::M5, Interval::M15, Interval::H1]);
        bare.process(EngineEvent::Command(Command::SetMode(Mode::SelfLearning)));
        bare.trading_cycle();
        assert_eq!(bare.message.as_deref(), Some(NO_MODEL_MESSAGE));

        let (link, mut requests) = link(0.9);
        let evolver = Evolver::new(EvolverConfig {
            epsilon_start: 1.0,
            epsilon_end: 1.0,
            ..EvolverConfig::default()
        })
        .expect("the default network shape is valid");
        let caps = HardCaps {
            max_leverage: 2,
            risk_fraction: 0.01,
        };
        let evolution = evolution::Evolution::new(
            evolver,
            evolution::EvolutionSettings::default(),
            caps,
            "test".into(),
        );
        // Journalled, to check the evolver's changes are recorded there.
        let dir = tempfile::tempdir().expect("tempdir");
        let journal_path = crate::journal::journal_path(dir.path(), crate::journal::Execution::Paper);
        let (mut file, _) = crate::journal::Journal::open(&journal_path).expect("journal");
        let restored = file.restore().expect("restore");
        let writer = crate::journal::JournalWriter::spawn(file, crate::journal::WriterConfig::default())
            .expect("writer");
        let journal = outlets::JournalLink {
            handle: writer.handle(),
            execution: crate::journal::Execution::Paper,
            restored,
        };
        let mut e = e
            .with_outlets(outlets::Outlets::new(Some(journal), None))
            .with_prediction(Some(link))
            .with_evolution(Some(evolution));
        assert_eq!(e.trading().risk_for(Mode::SelfLearning).max_leverage, 2);
        replay_market(&mut e, id, |e| e.funnel().signals >= 1);
        let request = requests.try_recv().expect("the signal waits for its probability");
        assert!(e.pending_signals.is_empty());
        let latest = e
            .symbol_state(id)
            .and_then(|s| s.signals.latest.clone())
            .and_then(|ev| ev.signal().cloned())
            .expect("the latest evaluation is the waiting signal");
        e.process(EngineEvent::Stream(StreamEvent::Mark(
            crate::binance::parse::MarkUpdate {
                symbol: id,
                mark_price: latest.entry,
                index_price: latest.entry,
                funding_rate: 0.0001,
                next_funding_time: latest.at + 3_600_000,
                event_time: latest.at,
            },
        )));
        // 0.5 is below the link's 0.9 but above the baseline set's threshold: kept.
        assert!(0.5 >= PARAM_SETS[0].probability_threshold);
        e.process(EngineEvent::Prediction(InferenceResult {
            id: request.id,
            probability: Some(0.5),
            batch_size: 1,
        }));
        assert_eq!(e.pending_signals.len(), 1);
        e.open_positions();
        let position = e.trading().book.positions().next().expect("opened");
        assert_eq!(position.strategy, Mode::SelfLearning);
        assert!(
            position.leverage <= 2,
            "leverage {} above the cap",
            position.leverage
        );

        // The evolver decides (always exploring here) until the set changes; the change reaches the
        // strategy's thresholds and the sizing, and the operator reverts it.
        let mut changed = None;
        for _ in 0..50 {
            e.evolve();
            if let Some(change) = e.evolution().and_then(|ev| ev.evolver.last_change()).copied() {
                changed = Some(change);
                break;
            }
        }
        let change = changed.expect("an exploring evolver changes its set");
        let set = &PARAM_SETS[change.to];
        assert!(
            e.message.as_deref().is_some_and(|m| m.contains(set.name)),
            "{:?}",
            e.message
        );
        assert_eq!(
            e.trading().risk_for(Mode::SelfLearning).max_leverage,
            set.leverage_cap.min(2)
        );
        assert!((e.learning_threshold() - set.probability_threshold).abs() < 1e-12);
        e.process(EngineEvent::Command(Command::RevertStrategy));
        assert_eq!(
            e.evolution().map(|ev| ev.evolver.current_index()),
            Some(change.from)
        );
        assert!(
            e.message.as_deref().is_some_and(|m| m.contains("reverted")),
            "{:?}",
            e.message
        );
        assert!((e.learning_threshold() - PARAM_SETS[change.from].probability_threshold).abs() < 1e-12);
        // In another mode the evolver does not decide.
        e.process(EngineEvent::Command(Command::SetMode(Mode::Ict)));
        let decisions = e.evolution().map(|ev| ev.evolver.decisions());
        e.evolve();
        assert_eq!(e.evolution().map(|ev| ev.evolver.decisions()), decisions);

        // The journal holds the change and its revert, each with the set it put in force.
        writer.handle().flush().await.expect("flushed");
        let journal = crate::journal::Journal::open_read_only(&journal_path).expect("read");
        let changes = journal.strategy_changes().expect("strategy changes");
        let summary: Vec<(&str, &str, &str)> = changes
            .iter()
            .map(|c| (c.from_set.as_str(), c.to_set.as_str(), c.reason.as_str()))
            .collect();
        let reason = change.reason.to_string();
        assert_eq!(
            summary,
            [
                (PARAM_SETS[change.from].name, set.name, reason.as_str()),
                (set.name, PARAM_SETS[change.from].name, "reverted by the operator"),
            ]
        );
        assert_eq!(changes[0].at_ms, change.at);
        assert_eq!(changes[0].details["params"]["name"], set.name);
        assert_eq!(
            changes[0].details["max_leverage"],
            set.leverage_cap.min(2),
            "inside the hard cap"
        );
        assert_eq!(changes[1].details["reason"]["kind"], "revert");
        assert_eq!(changes[1].details["params"]["name"], PARAM_SETS[change.from].name);
    }

    /// In `ict` the signal trades at once and the probability, when it comes back, is only shown.
    #[tokio::test]
    async fn other_modes_queue_signals_for_display_and_trade_them_unfiltered() {
        use crate::ml::batch::InferenceResult;
        let (e, _feed, id) = engine_on(vec![Interval::M5, Interval::M15, Interval::H1]);
        let (link, mut requests) = link(0.5);
        let mut e = e.with_prediction(Some(link));
        replay_market(&mut e, id, |_| false);
        let signals = e.funnel().signals;
        assert!(signals > 0);
        assert_eq!(
            e.pending_signals.len() as u64,
            signals,
            "ict does not wait for the model"
        );
        let mut answered = 0;
        while let Ok(request) = requests.try_recv() {
            e.process(EngineEvent::Prediction(InferenceResult {
                id: request.id,
                probability: Some(0.1),
                batch_size: 1,
            }));
            answered += 1;
        }
        assert_eq!(answered, signals);
        assert_eq!(
            e.pending_signals.len() as u64,
            signals,
            "nothing is filtered in ict"
        );
        let counts = e.prediction().map(|l| l.counts).unwrap_or_default();
        assert_eq!((counts.below, counts.filtered), (signals, 0));
    }

    #[tokio::test]
    async fn a_notice_becomes_the_status_message() {
        let (mut e, _feed, _) = engine();
        e.take_dirty();
        e.process(EngineEvent::Command(Command::Notice(
            "kill switch not available yet".into(),
        )));
        assert_eq!(e.message.as_deref(), Some("kill switch not available yet"));
        assert!(e.take_dirty(), "the new message is drawn");
    }

    /// A deterministic 5m walk with trends and pullbacks (so structure breaks happen), and its 15m and
    /// 1h aggregates. Open times are aligned to the hour.
    fn market(bars_5m: usize) -> [Vec<Bar>; 3] {
        const START: i64 = 1_699_999_200_000;
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut price = 100.0_f64;
        let five: Vec<Bar> = (0..bars_5m)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let noise = (state >> 11) as f64 / (1_u64 << 53) as f64 - 0.5;
                let trend = if (i / 60) % 2 == 0 { 0.0015 } else { -0.0012 };
                let open = price;
                price *= 1.0 + trend + noise * 0.006;
                let wick = (state % 7) as f64 * 0.0004 * open;
                let open_time = START + i as i64 * 300_000;
                Bar {
                    open_time,
                    close_time: open_time + 299_999,
                    open,
                    high: open.max(price) + wick,
                    low: open.min(price) - wick,
                    close: price,
                    volume: 10.0 + (state % 100) as f64,
                    quote_volume: 1_000.0,
                    trades: 10,
                    closed: true,
                }
            })
            .collect();
        let aggregate = |n: usize, ms: i64| -> Vec<Bar> {
            five.chunks_exact(n)
                .map(|c| Bar {
                    open_time: c[0].open_time,
                    close_time: c[0].open_time + ms - 1,
                    open: c[0].open,
                    high: c.iter().map(|b| b.high).fold(f64::MIN, f64::max),
                    low: c.iter().map(|b| b.low).fold(f64::MAX, f64::min),
                    close: c[n - 1].close,
                    volume: c.iter().map(|b| b.volume).sum(),
                    quote_volume: c.iter().map(|b| b.quote_volume).sum(),
                    trades: c.iter().map(|b| b.trades).sum(),
                    closed: true,
                })
                .collect()
        };
        let fifteen = aggregate(3, 900_000);
        let hour = aggregate(12, 3_600_000);
        [five, fifteen, hour]
    }

    #[tokio::test]
    async fn the_focused_chart_carries_the_liquidity_models_sweep_odds() {
        use crate::ml::{
            liquidity::{self, LiquidityModel},
            trees::{Node, TreeEnsemble},
        };
        // A model whose probability rises with the distance column (so the two sides differ).
        let distance = liquidity::INPUTS - 5;
        let split = Node {
            feature: distance as u32,
            value: 1.0,
            left: 1,
            right: 2,
        };
        let ensemble = TreeEnsemble::new(
            liquidity::INPUTS,
            &[vec![split, Node::leaf(-1.0), Node::leaf(1.0)]],
        )
        .expect("a valid ensemble");
        let model = LiquidityModel::new(ensemble, liquidity::tests::card());
        // Real klines (pools form and stay unswept there, unlike in the synthetic `market`).
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/klines/usdm_alpergulsen");
        if !dir.is_dir() {
            assert!(
                std::env::var_os("PERPDESK_REQUIRE_SHARED").is_none(),
                "PERPDESK_REQUIRE_SHARED is set but {} is missing",
                dir.display()
            );
            eprintln!(
                "\n*** SKIP: {} not found; sweep odds test not run ***\n",
                dir.display()
            );
            return;
        }
        let symbols = crate::ml::dataset::load_dir(&dir, Some(2_000)).expect("shared klines");
        let tfs = [Interval::M5, Interval::M15, Interval::H1];
        // The newest cut (whole hours) of a symbol's history after which an unswept pool is in reach.
        let (e, id, expected) = symbols
            .iter()
            .flat_map(|s| (0..24).map(move |back| (s, back)))
            .find_map(|(s, back)| {
                let (mut e, _feed, id) = engine_on(tfs.to_vec());
                let end_ms = s.entry.last()?.close_time - back * 3_600_000;
                for (tf, series) in [&s.entry, &s.setup, &s.higher].into_iter().enumerate() {
                    let bars: Vec<Bar> = series
                        .iter()
                        .filter(|b| b.close_time <= end_ms)
                        .copied()
                        .collect();
                    e.process(EngineEvent::Feed(FeedEvent::History {
                        symbol: id,
                        interval: tfs[tf],
                        from: BackfillFrom::Latest { bars: 10 },
                        bars,
                    }));
                }
                let analysis = e.symbol_state(id)?.signals.analysis.as_ref()?;
                let expected = model.score(analysis);
                expected.iter().any(Option::is_some).then_some((e, id, expected))
            })
            .expect("a pool in reach in a day of some symbol's history");
        let mut e = e;
        e.focus = Some((id, 0));
        let detail = crate::console::presenter::build_view(&e)
            .detail
            .expect("a detail");
        assert_eq!(detail.sweep, None, "no model, no odds");
        let e = e.with_liquidity(Some(model));
        let sweep = crate::console::presenter::build_view(&e)
            .detail
            .and_then(|d| d.sweep)
            .expect("sweep odds with a model");
        let shown = [sweep.above, sweep.below].map(|side| side.map(|o| o.probability as f32));
        assert_eq!(shown, expected);
        assert_eq!((sweep.horizon_bars, sweep.timeframe.as_str()), (48, "5m"));
        for odds in [sweep.above, sweep.below].into_iter().flatten() {
            assert!(odds.level > 0.0 && (0.0..=1.0).contains(&odds.probability));
        }
    }

    #[tokio::test]
    async fn closed_bars_feed_the_analysis_once_and_the_funnel_adds_up() {
        let tfs = [Interval::M5, Interval::M15, Interval::H1];
        let (mut e, _feed, id) = engine_on(tfs.to_vec());
        assert!(e.message.is_none(), "three ordered timeframes run the strategy");
        let bars = market(1_440); // 5 days of 5m bars
        // Back-fill the first two thirds of every timeframe.
        for (tf, series) in bars.iter().enumerate() {
            let cut = series.len() * 2 / 3;
            e.process(EngineEvent::Feed(FeedEvent::History {
                symbol: id,
                interval: tfs[tf],
                from: BackfillFrom::Latest { bars: 10 },
                bars: series[..cut].to_vec(),
            }));
        }
        let fed = |e: &Engine, role: Role| {
            e.symbol_state(id)
                .and_then(|s| s.signals.analysis.as_ref())
                .map_or(0, |a| a.timeframe(role).bars())
        };
        assert_eq!(fed(&e, Role::Entry), 960);
        assert_eq!(fed(&e, Role::Higher), 80);
        e.trading_cycle();
        assert_eq!(e.funnel().evaluated, 1, "one symbol, one cycle");
        // The stream then replays the last five history bars (overlap), then the rest, each as a
        // forming update followed by the closed bar. Higher timeframes first at equal close times.
        let mut stream: Vec<(usize, Bar)> = Vec::new();
        for (tf, series) in bars.iter().enumerate() {
            let cut = series.len() * 2 / 3;
            stream.extend(series[cut - 5..].iter().map(|b| (tf, *b)));
        }
        stream.sort_by_key(|(tf, b)| (b.close_time, std::cmp::Reverse(*tf)));
        let mut entry_closes = 0;
        for (tf, bar) in stream {
            for closed in [false, true] {
                e.process(EngineEvent::Stream(StreamEvent::Kline(KlineUpdate {
                    symbol: id,
                    interval: tfs[tf],
                    bar: Bar { closed, ..bar },
                    event_time: 0,
                })));
            }
            if tf == 0 && bar.open_time >= bars[0][bars[0].len() * 2 / 3].open_time {
                entry_closes += 1;
            }
        }
        // A late gap fill overlapping everything adds nothing to the analysis.
        e.process(EngineEvent::Feed(FeedEvent::History {
            symbol: id,
            interval: Interval::M15,
            from: BackfillFrom::Since(bars[1][100].open_time),
            bars: bars[1][100..].to_vec(),
        }));
        for (role, series) in Role::ALL.into_iter().zip(&bars) {
            assert_eq!(
                fed(&e, role),
                series.len(),
                "{role:?}: every closed bar fed exactly once"
            );
        }
        assert_eq!(entry_closes, 480);
        let funnel = e.funnel().clone();
        assert_eq!(funnel.evaluated, 1 + 480, "the cycle plus one per new entry bar");
        assert_eq!(
            funnel.evaluated,
            funnel.signals + funnel.rejections.values().sum::<u64>(),
            "every evaluation is a signal or a counted rejection: {funnel:?}"
        );
        assert!(funnel.setups >= funnel.signals);
        assert!(
            funnel.rejections.keys().any(|k| !k.starts_with("not_warmed_up")),
            "after warm-up the rules run: {funnel:?}"
        );
        let view = crate::console::presenter::build_view(&e);
        assert_eq!(view.funnel.evaluated, funnel.evaluated);
        assert_eq!(view.scanner[0].bias.len(), 3);
        assert!(
            view.scanner[0].bias.iter().any(Option::is_some),
            "{:?}",
            view.scanner[0].bias
        );

        // self_learning has no model: a message, no evaluations, no stale signals, no panic.
        e.process(EngineEvent::Command(Command::SetMode(Mode::SelfLearning)));
        e.trading_cycle();
        assert_eq!(e.message.as_deref(), Some(signals::NO_MODEL_MESSAGE));
        assert_eq!(e.funnel().evaluated, funnel.evaluated);
        assert!(e.symbol_state(id).is_some_and(|s| s.signals.latest.is_none()));
        // Back to hybrid: the analyses were kept, the ICT rules run again, with the notice.
        e.process(EngineEvent::Command(Command::SetMode(Mode::Hybrid)));
        e.trading_cycle();
        assert_eq!(e.funnel().evaluated, funnel.evaluated + 1);
        assert_eq!(e.message.as_deref(), Some(crate::strategy::HYBRID_WITHOUT_MODEL));
        assert_eq!(fed(&e, Role::Entry), bars[0].len());
    }

    #[tokio::test]
    async fn closed_entry_bars_write_the_feature_vector_to_the_store() {
        use crate::features::{FeatureStore, FeatureVector, TimeframeInput};
        let dir = tempfile::tempdir().expect("temp dir");
        let store = FeatureStoreSettings {
            data_dir: dir.path().to_path_buf(),
            slots: 8,
            dim: 32,
            memory_mapped: true,
            incremental_cache: true,
        };
        let tfs = [Interval::M5, Interval::M15, Interval::H1];
        let (mut e, _feed, id) = engine_with(EngineSettings {
            feature_store: Some(store.clone()),
            ..settings(tfs.to_vec())
        });
        assert!(e.message.is_none(), "{:?}", e.message);
        let bars = market(600);
        for (tf, series) in bars.iter().enumerate() {
            let cut = series.len() / 2;
            e.process(EngineEvent::Feed(FeedEvent::History {
                symbol: id,
                interval: tfs[tf],
                from: BackfillFrom::Latest { bars: 10 },
                bars: series[..cut].to_vec(),
            }));
        }
        let mut stream: Vec<(usize, Bar)> = Vec::new();
        for (tf, series) in bars.iter().enumerate() {
            stream.extend(series[series.len() / 2..].iter().map(|b| (tf, *b)));
        }
        stream.sort_by_key(|(tf, b)| (b.close_time, std::cmp::Reverse(*tf)));
        for (tf, bar) in stream {
            e.process(EngineEvent::Stream(StreamEvent::Kline(KlineUpdate {
                symbol: id,
                interval: tfs[tf],
                bar,
                event_time: 0,
            })));
        }
        let analysis = e
            .symbol_state(id)
            .and_then(|s| s.signals.analysis.as_ref())
            .expect("analysis");
        let state = Role::ALL.map(|role| analysis.timeframe(role));
        let inputs = state.map(|tf| TimeframeInput {
            values: tf.indicators().latest(),
            bar: tf.last_bar().expect("a bar on every timeframe"),
        });
        let mut expected = vec![0.0_f32; 32];
        FeatureVector::build(&inputs, &mut expected);
        let slots = e.feature_slots().expect("the store is open");
        let slot = slots.slot(id).expect("the symbol has a slot");
        let stored = slots.store().read(slot).expect("read").to_vec();
        assert_eq!(stored.len(), 32);
        assert!(stored.iter().all(|v| v.is_finite()), "{stored:?}");
        assert!(stored.iter().any(|v| *v != 0.0), "{stored:?}");
        assert_eq!(stored, expected);
        e.flush_features();
        drop(e);

        let reopened = FeatureStore::open_in(dir.path(), store.slots, store.dim, true).expect("reopen");
        let key = signals::symbol_key("BTCUSDT");
        assert_eq!(reopened.find(key), Some(slot), "found by key after a restart");
        assert_eq!(reopened.read(slot).expect("read"), stored.as_slice());
    }

    #[tokio::test]
    async fn an_unopenable_feature_store_is_a_message_not_a_panic() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (e, _feed, _) = engine_with(EngineSettings {
            feature_store: Some(FeatureStoreSettings {
                data_dir: dir.path().join("missing"),
                slots: 8,
                dim: 32,
                memory_mapped: true,
                incremental_cache: true,
            }),
            ..settings(vec![Interval::M5, Interval::M15, Interval::H1])
        });
        assert!(e.feature_slots().is_none());
        let message = e.message.clone().unwrap_or_default();
        assert!(message.contains("feature store off"), "{message}");
    }

    #[tokio::test]
    async fn timeframes_that_do_not_suit_the_strategy_are_a_message() {
        let (mut e, _feed, id) = engine();
        let message = e.message.clone().unwrap_or_default();
        assert!(message.contains("three timeframes"), "{message}");
        e.process(EngineEvent::Feed(FeedEvent::History {
            symbol: id,
            interval: Interval::M1,
            from: BackfillFrom::Latest { bars: 10 },
            bars: (0..10).map(|m| bar(m, true)).collect(),
        }));
        e.trading_cycle();
        assert_eq!(e.funnel().evaluated, 0);
        let (e, _feed, _) = engine_on(vec![Interval::H1, Interval::M15, Interval::M5]);
        assert!(e.message.as_deref().is_some_and(|m| m.contains("increasing")));
    }
}
