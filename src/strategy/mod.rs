//! Strategies and the strategy mode.
//!
//! The engine holds the live [`Mode`]; switching it is a `Command` that takes effect at the next
//! evaluation and never touches open positions. The ICT strategy, the ML trader and the hybrid filter
//! plug in behind this mode (see ARCHITECTURE.md §2, `strategy`).
//!
//! Layout, in the order a closed bar flows through it: [`analysis`] folds closed bars of each timeframe
//! into a causal per-symbol state; [`ict`] turns that state into a candidate; [`quality`] scores it;
//! [`signal`] holds what comes out (a signal with its confluences and evidence, or a rejection with its
//! stage and reason, which the signal funnel counts).
//!
//! **Modes and models.** [`strategy_with_model`] gives `hybrid` the ICT rules as [`HybridStrategy`] when a
//! signal predictor is loaded: the engine scores each of its signals through the async batch predictor
//! and rejects those below the model's threshold at [`Stage::Model`] (see [`hybrid`]).
//! Without one, `hybrid` is the ICT rules behind a wrapper whose [`Strategy::notice`] says
//! "ML unavailable: ICT rules only" and whose [`Strategy::mode`] still reports `hybrid`, so the UI can
//! show the degradation instead of pretending a model scored the signals. `self_learning` with a predictor
//! is [`SelfLearningStrategy`] (the ICT rules at the strategy evolver's thresholds, whose signals the
//! engine filters at the evolver's probability threshold; see [`self_learning`]); without one it is
//! refused with [`StrategyError::ModelUnavailable`], since trading its candidates unfiltered would be `ict`
//! under another name.

pub mod analysis;
pub mod hybrid;
pub mod ict;
pub mod quality;
pub mod self_learning;
pub mod signal;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod rule_tests;

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

pub use self::{
    analysis::{
        AnalysisConfig, AnalysisError, DEFAULT_HISTORY_WINDOW, Role, SymbolAnalysis, TimeframeConfig,
        TimeframeState,
    },
    hybrid::HybridStrategy,
    ict::{IctParams, IctStrategy},
    quality::{QualityDimension, QualityFilter, QualityInputs, QualityScore, QualityWeights},
    self_learning::SelfLearningStrategy,
    signal::{Confluence, Evaluation, Evidence, EvidenceKind, RejectReason, Rejected, Signal, Stage},
};
use crate::domain::{SymbolId, TimestampMs};

/// A strategy evaluates one symbol's analysis after a closed entry-timeframe bar.
///
/// Implementations read only the analysis (closed bars), so the same bars give the same evaluations in
/// demo, paper, live and backtest.
pub trait Strategy: Send + fmt::Debug {
    /// The mode this strategy serves.
    fn mode(&self) -> Mode;

    /// A signal, or the stage and reason the candidate was rejected at. `now` stamps the signal.
    fn evaluate(&mut self, symbol: SymbolId, analysis: &SymbolAnalysis, now: TimestampMs) -> Evaluation;

    /// A standing message about degraded operation (shown in the UI), if any.
    fn notice(&self) -> Option<&'static str> {
        None
    }
}

/// Why a strategy could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrategyError {
    #[error("mode `{0}` needs the signal predictor, which is not loaded (run `perpdesk train`); use `ict`")]
    ModelUnavailable(Mode),
}

/// The notice of `hybrid` while no model exists.
pub const HYBRID_WITHOUT_MODEL: &str = "ML unavailable: ICT rules only";

/// `hybrid` without a model: the ICT rules, labelled as such.
#[derive(Debug, Clone, Default)]
pub struct HybridWithoutModel {
    pub ict: IctStrategy,
}

impl Strategy for HybridWithoutModel {
    fn mode(&self) -> Mode {
        Mode::Hybrid
    }

    fn evaluate(&mut self, symbol: SymbolId, analysis: &SymbolAnalysis, now: TimestampMs) -> Evaluation {
        self.ict.evaluate(symbol, analysis, now)
    }

    fn notice(&self) -> Option<&'static str> {
        Some(HYBRID_WITHOUT_MODEL)
    }
}

/// The strategy of `mode` without a model. See the module documentation for the modes that need one.
pub fn strategy_for(mode: Mode, params: IctParams) -> Result<Box<dyn Strategy>, StrategyError> {
    strategy_with_model(mode, params, false)
}

/// The strategy of `mode`; with `model_loaded`, `hybrid` is the ICT rules whose signals the engine
/// filters with the signal predictor, and without it says "ML unavailable"; `self_learning` needs the
/// model (its `params` are the strategy evolver's set applied to the ICT defaults).
pub fn strategy_with_model(
    mode: Mode,
    params: IctParams,
    model_loaded: bool,
) -> Result<Box<dyn Strategy>, StrategyError> {
    match (mode, model_loaded) {
        (Mode::Ict, _) => Ok(Box::new(IctStrategy::new(params))),
        (Mode::Hybrid, true) => Ok(Box::new(HybridStrategy {
            ict: IctStrategy::new(params),
        })),
        (Mode::Hybrid, false) => Ok(Box::new(HybridWithoutModel {
            ict: IctStrategy::new(params),
        })),
        (Mode::SelfLearning, true) => Ok(Box::new(SelfLearningStrategy::new(params))),
        (Mode::SelfLearning, false) => Err(StrategyError::ModelUnavailable(mode)),
    }
}

/// The three live-switchable strategy modes. (Doc comments of the variants are the `--mode` help.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Rule-based ICT / Smart Money Concepts: structure breaks, order blocks, fair value gaps,
    /// liquidity sweeps. Needs no model
    #[default]
    Ict,
    /// The machine-learning models alone
    #[value(name = "self_learning")]
    SelfLearning,
    /// ICT setups, scored and filtered by the machine-learning models
    Hybrid,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Self::Ict, Self::SelfLearning, Self::Hybrid];
    pub const NAMES: &'static [&'static str] = &["ict", "self_learning", "hybrid"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ict => "ict",
            Self::SelfLearning => "self_learning",
            Self::Hybrid => "hybrid",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mode name that is not one of the three.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown strategy mode `{0}` (expected one of ict, self_learning, hybrid)")]
pub struct UnknownMode(pub String);

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMode(s.to_owned()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip() {
        for m in Mode::ALL {
            assert_eq!(m.as_str().parse::<Mode>(), Ok(m));
        }
        assert_eq!("ICT".parse::<Mode>(), Err(UnknownMode("ICT".into())));
    }

    #[test]
    fn factory_serves_ict_and_says_when_ml_is_missing() {
        let ict = strategy_for(Mode::Ict, IctParams::default()).unwrap();
        assert_eq!((ict.mode(), ict.notice()), (Mode::Ict, None));
        let hybrid = strategy_for(Mode::Hybrid, IctParams::default()).unwrap();
        assert_eq!(
            (hybrid.mode(), hybrid.notice()),
            (Mode::Hybrid, Some(HYBRID_WITHOUT_MODEL))
        );
        let with_model = strategy_with_model(Mode::Hybrid, IctParams::default(), true).unwrap();
        assert_eq!((with_model.mode(), with_model.notice()), (Mode::Hybrid, None));
        let learning = strategy_with_model(Mode::SelfLearning, IctParams::default(), true).unwrap();
        assert_eq!((learning.mode(), learning.notice()), (Mode::SelfLearning, None));
        let err = strategy_for(Mode::SelfLearning, IctParams::default()).unwrap_err();
        assert_eq!(err, StrategyError::ModelUnavailable(Mode::SelfLearning));
        assert!(err.to_string().contains("self_learning"));
    }
}
