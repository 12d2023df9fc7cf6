//! The strategy inside the engine: per-symbol analyses fed with closed bars, evaluations, the funnel.
//!
//! Every universe symbol gets a [`SymbolAnalysis`] when the engine runs exactly three timeframes in
//! increasing order (entry, setup, higher). Closed bars reach it exactly once and in order: a
//! per-(symbol, timeframe) `last_fed` open time guards against the overlap of a back-fill with the
//! stream and against gap fills that insert older bars (those are stored in the series but never fed,
//! since the analysis only moves forward). The engine evaluates the strategy of the current mode on the
//! trading cycle and whenever an entry-timeframe bar closes, keeps the latest [`Evaluation`] per symbol
//! and counts the signal funnel here.

use std::collections::{HashMap, VecDeque};

use crate::{
    domain::{Bar, Interval, TimestampMs},
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
