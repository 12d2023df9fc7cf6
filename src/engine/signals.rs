//! The strategy inside the engine: per-symbol analyses fed with closed bars, evaluations, the funnel.
//!
//! Every universe symbol gets a [`SymbolAnalysis`] when the engine runs exactly three timeframes in
//! increasing order (entry, setup, higher). Closed bars reach it exactly once and in order: a
//! per-(symbol, timeframe) `last_fed` open time guards against the overlap of a back-fill with the
//! stream and against gap fills that insert older bars (those are stored in the series but never fed,
//! since the analysis only moves forward). The engine evaluates the strategy of the current mode on the
//! trading cycle and whenever an entry-timeframe bar closes, keeps the latest [`Evaluation`] per symbol
//! and counts the signal funnel here.
//!
//! [`FeatureSlots`] keeps each symbol's feature vector in the feature store: built from the three
//! timeframes' latest indicator values and closed bars whenever the symbol is evaluated on a closed
//! entry bar, written to a slot allocated once per symbol (keyed by the FNV-1a hash of its name, so a
//! restarted engine finds the same slot) and released when the symbol leaves the universe.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

use crate::{
    domain::{Bar, Interval, SymbolId, TimestampMs},
    features::{FeatureStore, FeatureVector, SlotId, StoreError, TimeframeInput},
    strategy::{
        AnalysisConfig, AnalysisError, Evaluation, IctParams, Mode, Role, Stage, Strategy, StrategyError,
        SymbolAnalysis, TimeframeConfig, TimeframeState,
    },
};

/// The status message while `self_learning` has no model.
pub const NO_MODEL_MESSAGE: &str = "self_learning: no model yet — no signals";

/// The analysis configuration for the engine's timeframes, or why there is none.
pub fn analysis_config(timeframes: &[Interval]) -> Result<AnalysisConfig, String> {
    let [entry, setup, higher] = timeframes else {
        return Err(format!(
            "strategy off: it needs exactly three timeframes (entry, setup, higher), got {}",
            timeframes.len()
        ));
    };
    let defaults = AnalysisConfig::default();
    let config = AnalysisConfig {
        entry: TimeframeConfig {
            interval: *entry,
            ..defaults.entry
        },
        setup: TimeframeConfig {
            interval: *setup,
            ..defaults.setup
        },
        higher: TimeframeConfig {
            interval: *higher,
            ..defaults.higher
        },
    };
    // Validates the order once, so a misconfiguration is a message and not one error per symbol.
    SymbolAnalysis::new(&config).map_err(|e| format!("strategy off: {e}"))?;
    Ok(config)
}

/// The strategy side of one symbol.
#[derive(Debug)]
pub struct SymbolSignals {
    /// `None` when the engine's timeframes do not suit the strategy.
    pub analysis: Option<SymbolAnalysis>,
    /// Open time of the newest closed bar fed to the analysis, per timeframe.
    pub last_fed: Vec<Option<TimestampMs>>,
    /// The latest evaluation (signal or rejection).
    pub latest: Option<Evaluation>,
    /// Whether an analysis error was already logged for this symbol (logged once).
    error_logged: bool,
}

impl SymbolSignals {
    pub fn new(config: Option<&AnalysisConfig>, timeframes: usize) -> Self {
        Self {
            analysis: config.and_then(|c| SymbolAnalysis::new(c).ok()),
            last_fed: vec![None; timeframes],
            latest: None,
            error_logged: false,
        }
    }

    /// The analysis of the engine's timeframe number `tf` (entry, setup, higher in the engine's order),
    /// if this symbol has an analysis.
    pub fn timeframe(&self, tf: usize) -> Option<&TimeframeState> {
        let role = Role::ALL.get(tf)?;
        Some(self.analysis.as_ref()?.timeframe(*role))
    }

    /// Feeds the closed bars of `closed` newer than the last one fed for `tf`. Returns whether any was.
    pub fn feed_new(
        &mut self,
        tf: usize,
        interval: Interval,
        closed: &VecDeque<Bar>,
        config: &AnalysisConfig,
    ) -> bool {
        let start = self.last_fed[tf].map_or(0, |last| closed.partition_point(|b| b.open_time <= last));
        let mut fed = false;
        for bar in closed.range(start..) {
            fed |= self.feed(tf, interval, bar, config);
        }
        fed
    }

    /// Feeds one bar if it is closed and newer than the last one fed for `tf`.
    pub fn feed(&mut self, tf: usize, interval: Interval, bar: &Bar, config: &AnalysisConfig) -> bool {
        if !bar.closed || self.last_fed[tf].is_some_and(|last| bar.open_time <= last) {
            return false;
        }
        let Some(analysis) = self.analysis.as_mut() else {
            return false;
        };
        // The bar counts as fed whatever happens: it is never offered again.
        self.last_fed[tf] = Some(bar.open_time);
        match analysis.on_closed_bar(interval, bar) {
            Ok(_) => true,
            Err(e) => {
                self.on_error(&e, config);
                false
            }
        }
    }

    fn on_error(&mut self, error: &AnalysisError, config: &AnalysisConfig) {
        if !self.error_logged {
            self.error_logged = true;
            tracing::warn!(%error, "analysis refused a bar; resetting this symbol's analysis");
        }
        self.analysis = SymbolAnalysis::new(config).ok();
        self.latest = None;
    }
}

/// A built strategy, or why the mode has none.
pub type Built = Result<Box<dyn Strategy>, StrategyError>;

/// The strategy of the current mode, rebuilt lazily after a mode switch.
#[derive(Debug, Default)]
pub struct StrategySlot {
    built: Option<(Mode, Built)>,
}

impl StrategySlot {
    /// Whether the next [`Self::get`] for `mode` builds a new strategy.
    pub fn is_stale(&self, mode: Mode) -> bool {
        self.built.as_ref().is_none_or(|(m, _)| *m != mode)
    }

    /// The strategy for `mode`, building it if the mode changed since the last call.
    pub fn get(&mut self, mode: Mode) -> &mut Built {
        if self.is_stale(mode) {
            self.built = None;
        }
        &mut self
            .built
            .get_or_insert_with(|| (mode, crate::strategy::strategy_for(mode, IctParams::default())))
            .1
    }
}

/// The engine-wide signal funnel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Funnel {
    pub evaluated: u64,
    /// Evaluations that got past the setup stage (rejected later, or a signal).
    pub setups: u64,
    /// Evaluations that passed the quality filter.
    pub signals: u64,
    /// Rejections per [`crate::strategy::RejectReason::key`].
    pub rejections: HashMap<String, u64>,
}

impl Funnel {
    pub fn record(&mut self, evaluation: &Evaluation) {
        self.evaluated += 1;
        match evaluation {
            Evaluation::Signal(_) => {
                self.setups += 1;
                self.signals += 1;
            }
            Evaluation::Rejected(rejected) => {
                if rejected.stage > Stage::Setup {
                    self.setups += 1;
                }
                let key = rejected.reason.key();
                if let Some(count) = self.rejections.get_mut(&key) {
                    *count += 1;
                } else {
                    self.rejections.insert(key, 1);
                }
            }
        }
    }

    /// Rejections, most frequent first (ties by key).
    pub fn sorted_rejections(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = self.rejections.iter().map(|(k, v)| (k.clone(), *v)).collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }
}

/// Where and how the engine keeps its feature vectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureStoreSettings {
    /// The data directory; the store is `<data_dir>/features.store`.
    pub data_dir: PathBuf,
    pub slots: usize,
    pub dim: usize,
    pub memory_mapped: bool,
}

/// The store key of a symbol: FNV-1a (64-bit) of its venue name.
pub fn symbol_key(name: &str) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The feature store with the slot of every symbol written so far and a reusable build buffer.
#[derive(Debug)]
pub struct FeatureSlots {
    store: FeatureStore,
    slots: HashMap<SymbolId, SlotId>,
    buffer: Vec<f32>,
}

impl FeatureSlots {
    pub fn open(settings: &FeatureStoreSettings) -> Result<Self, StoreError> {
        let store = FeatureStore::open_in(
            &settings.data_dir,
            settings.slots,
            settings.dim,
            settings.memory_mapped,
        )?;
        Ok(Self {
            buffer: vec![0.0; store.dim()],
            store,
            slots: HashMap::new(),
        })
    }

    pub fn store(&self) -> &FeatureStore {
        &self.store
    }

    /// The slot of `symbol`, once its vector was written.
    pub fn slot(&self, symbol: SymbolId) -> Option<SlotId> {
        self.slots.get(&symbol).copied()
    }

    /// Builds the vector of `analysis` and writes it to `symbol`'s slot, allocating the slot (keyed by
    /// `name()`) on the first write. `Ok(false)` while a timeframe has no closed bar yet or the name is
    /// unknown.
    pub fn write(
        &mut self,
        symbol: SymbolId,
        name: impl FnOnce() -> Option<String>,
        analysis: &SymbolAnalysis,
    ) -> Result<bool, StoreError> {
        let state = Role::ALL.map(|role| analysis.timeframe(role));
        let [Some(entry), Some(setup), Some(higher)] = state.map(TimeframeState::last_bar) else {
            return Ok(false);
        };
        let inputs =
            [(state[0], entry), (state[1], setup), (state[2], higher)].map(|(tf, bar)| TimeframeInput {
                values: tf.indicators().latest(),
                bar,
            });
        let slot = if let Some(slot) = self.slots.get(&symbol) {
            *slot
        } else {
            let Some(name) = name() else { return Ok(false) };
            let slot = self.store.allocate(symbol_key(&name))?;
            self.slots.insert(symbol, slot);
            slot
        };
        FeatureVector::build(&inputs, &mut self.buffer);
        self.store.write(slot, &self.buffer)?;
        Ok(true)
    }

    /// Releases `symbol`'s slot, if it has one.
    pub fn release(&mut self, symbol: SymbolId) -> Result<(), StoreError> {
        match self.slots.remove(&symbol) {
            Some(slot) => self.store.release(slot),
            None => Ok(()),
        }
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        self.store.flush()
    }
}
