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
//! restarted engine finds the same slot) and released when the symbol leaves the universe. The vector's
//! EMA 21 / EMA 50 / ATR 14 / RSI 14 entries come from the incremental [`FeatureCache`], keyed by
//! (symbol, timeframe, feature, window) and fed from the symbol's stored series: with
//! `ENABLE_INCREMENTAL_CACHE=true` only the bars closed since the last write are computed, by the
//! incremental formulas; with `false` each write recomputes them from the stored bars. The other entries
//! come from the analysis' `IndicatorSet`, which has already been updated with the same bars.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

use crate::{
    domain::{Bar, Interval, SymbolId, TimestampMs},
    features::{
        CacheError, CacheKey, CachedFeature, FeatureCache, FeatureStore, FeatureVector, IndicatorValues,
        SlotId, StoreError, TimeframeInput,
    },
    market::series::BarSeries,
    strategy::{
        AnalysisConfig, AnalysisError, Evaluation, IctParams, Mode, Role, Stage, Strategy, StrategyError,
        SymbolAnalysis, TimeframeConfig, TimeframeState,
    },
};

/// The status message while `self_learning` has no model.
pub const NO_MODEL_MESSAGE: &str =
    "self_learning: no signal predictor loaded — no signals (run `perpdesk train`)";

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
    /// The signal predictor's probability for the latest candidate signal, once it came back.
    pub probability: Option<f32>,
    /// Whether an analysis error was already logged for this symbol (logged once).
    error_logged: bool,
}

impl SymbolSignals {
    pub fn new(config: Option<&AnalysisConfig>, timeframes: usize) -> Self {
        Self {
            analysis: config.and_then(|c| SymbolAnalysis::new(c).ok()),
            last_fed: vec![None; timeframes],
            latest: None,
            probability: None,
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
    /// Whether a signal predictor is loaded (the engine filters `hybrid` signals with it).
    model_loaded: bool,
    /// The ICT parameters of `self_learning` (the evolver's current set); `None`: the defaults.
    learning_params: Option<IctParams>,
}

impl StrategySlot {
    /// Says whether `hybrid` has a model; the next [`Self::get`] rebuilds the strategy.
    pub fn set_model_loaded(&mut self, loaded: bool) {
        self.model_loaded = loaded;
        self.built = None;
    }

    /// Sets `self_learning`'s ICT parameters (the evolver's set); rebuilds it if it is the current one.
    pub fn set_learning_params(&mut self, params: IctParams) {
        self.learning_params = Some(params);
        if self.built.as_ref().is_some_and(|(m, _)| *m == Mode::SelfLearning) {
            self.built = None;
        }
    }

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
            .get_or_insert_with(|| {
                let params = match (&self.learning_params, mode) {
                    (Some(params), Mode::SelfLearning) => *params,
                    _ => IctParams::default(),
                };
                let built = crate::strategy::strategy_with_model(mode, params, self.model_loaded);
                (mode, built)
            })
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
    /// `ENABLE_INCREMENTAL_CACHE`: the cached entries are advanced bar by bar (`true`) or recomputed from
    /// the stored bars on every write (`false`).
    pub incremental_cache: bool,
}

/// The vector entries read from the [`FeatureCache`]: (feature, window) per timeframe.
pub const CACHED_ENTRIES: [(CachedFeature, u32); 4] = [
    (CachedFeature::Ema, 21),
    (CachedFeature::Ema, 50),
    (CachedFeature::Atr, 14),
    (CachedFeature::Rsi, 14),
];

/// Why a feature vector could not be written.
#[derive(Debug, thiserror::Error)]
pub enum FeatureWriteError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cache(#[from] CacheError),
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
    cache: FeatureCache,
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
            cache: FeatureCache::new(settings.incremental_cache),
        })
    }

    pub fn store(&self) -> &FeatureStore {
        &self.store
    }

    /// The slot of `symbol`, once its vector was written.
    pub fn slot(&self, symbol: SymbolId) -> Option<SlotId> {
        self.slots.get(&symbol).copied()
    }

    pub fn cache(&self) -> &FeatureCache {
        &self.cache
    }

    /// The indicator values of timeframe `tf` with the [`CACHED_ENTRIES`] taken from the cache over
    /// `series` (the symbol's stored bars of that timeframe). A series reset behind the cache's back
    /// (its newest bar older than what the cache consumed) drops the symbol's cached states and
    /// starts them again.
    pub fn cached_values(
        &mut self,
        symbol: SymbolId,
        series: &BarSeries,
        mut values: IndicatorValues,
    ) -> Result<IndicatorValues, CacheError> {
        for (feature, window) in CACHED_ENTRIES {
            let key = CacheKey {
                symbol,
                interval: series.interval(),
                feature,
                window,
            };
            let value = match self.cache.value(key, series.closed()) {
                Err(CacheError::HistoryRewound { .. }) => {
                    self.cache.forget_symbol(symbol);
                    self.cache.value(key, series.closed())?
                }
                other => other?,
            };
            match (feature, window) {
                (CachedFeature::Ema, 21) => values.ema21 = value,
                (CachedFeature::Ema, _) => values.ema50 = value,
                (CachedFeature::Atr, _) => values.atr14 = value,
                (CachedFeature::Rsi, _) => values.rsi14 = value,
            }
        }
        Ok(values)
    }

    /// Builds the vector of `analysis` (its cached entries from `series`, the symbol's bar series in
    /// the engine's timeframe order: entry, setup, higher) and writes it to `symbol`'s slot, allocating
    /// the slot (keyed by `name()`) on the first write. `Ok(false)` while a timeframe has no closed bar
    /// yet, the series do not match the analysis' timeframes, or the name is unknown.
    pub fn write(
        &mut self,
        symbol: SymbolId,
        name: impl FnOnce() -> Option<String>,
        analysis: &SymbolAnalysis,
        series: &[BarSeries],
    ) -> Result<bool, FeatureWriteError> {
        let state = Role::ALL.map(|role| analysis.timeframe(role));
        let [Some(entry), Some(setup), Some(higher)] = state.map(TimeframeState::last_bar) else {
            return Ok(false);
        };
        let [Some(s0), Some(s1), Some(s2)] =
            [0, 1, 2].map(|tf| series.get(tf).filter(|s| s.interval() == state[tf].interval()))
        else {
            return Ok(false);
        };
        let values = [
            self.cached_values(symbol, s0, *state[0].indicators().latest())?,
            self.cached_values(symbol, s1, *state[1].indicators().latest())?,
            self.cached_values(symbol, s2, *state[2].indicators().latest())?,
        ];
        let inputs = [
            TimeframeInput {
                values: &values[0],
                bar: entry,
            },
            TimeframeInput {
                values: &values[1],
                bar: setup,
            },
            TimeframeInput {
                values: &values[2],
                bar: higher,
            },
        ];
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
        self.cache.forget_symbol(symbol);
        match self.slots.remove(&symbol) {
            Some(slot) => self.store.release(slot),
            None => Ok(()),
        }
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        self.store.flush()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::features::{Atr, Ema, EmaSeeding, Indicator, Rsi};

    const TIMEFRAMES: [Interval; 3] = [Interval::M5, Interval::M15, Interval::H1];

    /// `count` closed bars of a random walk driven by `steps` (cycled).
    fn walk(interval: Interval, count: usize, steps: &[(f64, f64)]) -> Vec<Bar> {
        let length = interval.fixed_millis().unwrap();
        let mut close = 100.0;
        (0..count)
            .map(|i| {
                let (step, wick) = steps[i % steps.len()];
                let open = close;
                close *= step.exp();
                let open_time = 1_767_571_200_000 + i64::try_from(i).unwrap() * length;
                Bar {
                    open_time,
                    close_time: open_time + length - 1,
                    open,
                    high: open.max(close) * (1.0 + wick),
                    low: open.min(close) * (1.0 - wick),
                    close,
                    volume: 1.0 + wick * 1_000.0,
                    quote_volume: close,
                    trades: 1,
                    closed: true,
                }
            })
            .collect()
    }

    /// EMA 21, EMA 50, ATR 14, RSI 14 recomputed from scratch over `bars`.
    fn batch(bars: &[Bar]) -> [Option<f64>; 4] {
        let mut ema21 = Ema::new(21, EmaSeeding::SmaOfFirstPeriod).unwrap();
        let mut ema50 = Ema::new(50, EmaSeeding::SmaOfFirstPeriod).unwrap();
        let mut atr = Atr::new(14).unwrap();
        let mut rsi = Rsi::new(14).unwrap();
        let mut out = [None; 4];
        for bar in bars {
            out = [
                ema21.update(bar.close),
                ema50.update(bar.close),
                atr.update(*bar),
                rsi.update(bar.close),
            ];
        }
        out
    }

    fn cached(values: &IndicatorValues) -> [Option<u64>; 4] {
        [values.ema21, values.ema50, values.atr14, values.rsi14].map(|v| v.map(f64::to_bits))
    }

    fn slots(dir: &std::path::Path, incremental_cache: bool) -> FeatureSlots {
        FeatureSlots::open(&FeatureStoreSettings {
            data_dir: dir.to_path_buf(),
            slots: 4,
            dim: 32,
            memory_mapped: false,
            incremental_cache,
        })
        .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// The engine's cached entries equal a batch recomputation over the stored bars at every write,
        /// with the cache on (only new bars computed) and off (recomputed each time); while the ring has
        /// not dropped a bar they also equal the analysis' own indicator set, bit for bit, and the stored
        /// vector is the one built from those values.
        #[test]
        fn engine_cached_entries_equal_a_batch_recomputation(
            steps in prop::collection::vec((-0.02..0.02_f64, 0.0..0.01_f64), 1..64),
            increments in prop::collection::vec(1..30_usize, 1..10),
            capacity in prop_oneof![Just(1_000_usize), 30..120_usize],
        ) {
            // The engine writes on every closed entry bar, so the ring never drops a bar the cache has
            // not consumed yet: here too at most `capacity` bars close between two writes.
            let cuts: Vec<usize> = increments
                .iter()
                .scan(0, |total, step| {
                    *total += step;
                    Some(*total)
                })
                .collect();
            let count = cuts.last().copied().unwrap_or(0);
            let dir = tempfile::tempdir().unwrap();
            let bars = TIMEFRAMES.map(|interval| walk(interval, count, &steps));
            let config = AnalysisConfig::default();
            for incremental in [true, false] {
                let mut slots = slots(dir.path(), incremental);
                let mut analysis = SymbolAnalysis::new(&config).unwrap();
                let mut series = TIMEFRAMES.map(|interval| BarSeries::new(interval, capacity));
                let mut fed = 0;
                let mut first_seen: [Option<usize>; 3] = [None; 3];
                for &cut in &cuts {
                    // Timeframes are independent states: the order between them does not matter.
                    for (tf, tf_bars) in bars.iter().enumerate() {
                        for bar in &tf_bars[fed..cut] {
                            series[tf].apply(*bar);
                            analysis.on_closed_bar(TIMEFRAMES[tf], bar).unwrap();
                        }
                    }
                    fed = cut;
                    if fed == 0 {
                        continue;
                    }
                    let mut values = [IndicatorValues::default(); 3];
                    for tf in 0..3 {
                        let own = *analysis.timeframe(Role::ALL[tf]).indicators().latest();
                        values[tf] = slots.cached_values(SymbolId(7), &series[tf], own).unwrap();
                        let stored: Vec<Bar> = series[tf].closed().iter().copied().collect();
                        // The cache starts from the bars stored at its first request and then consumes
                        // every new one, even after the ring has dropped it.
                        let oldest = fed - stored.len();
                        let first = *first_seen[tf].get_or_insert(oldest);
                        let expected = if incremental {
                            batch(&bars[tf][first..fed])
                        } else {
                            batch(&stored)
                        };
                        prop_assert_eq!(cached(&values[tf]), expected.map(|v| v.map(f64::to_bits)));
                        if (incremental && first == 0) || oldest == 0 {
                            prop_assert_eq!(cached(&values[tf]), cached(&own));
                        }
                    }
                    prop_assert!(slots.write(SymbolId(7), || Some("BTCUSDT".into()), &analysis, &series).unwrap());
                    let inputs = [0, 1, 2].map(|tf| TimeframeInput {
                        values: &values[tf],
                        bar: &bars[tf][fed - 1],
                    });
                    let mut expected = vec![0.0_f32; 32];
                    FeatureVector::build(&inputs, &mut expected);
                    let slot = slots.slot(SymbolId(7)).unwrap();
                    prop_assert_eq!(slots.store().read(slot).unwrap(), expected.as_slice());
                }
                prop_assert_eq!(slots.cache().is_empty(), !incremental);
                slots.release(SymbolId(7)).unwrap();
                prop_assert!(slots.cache().is_empty());
            }
        }
    }
}
