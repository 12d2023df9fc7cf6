//! `self_learning`: the ICT setup machinery at the strategy evolver's thresholds, every signal kept only
//! when the signal predictor's probability clears the evolver's probability threshold.
//!
//! Why the ICT rules still find the candidates: the signal predictor was trained on exactly those
//! candidates (`ml::dataset` replays the same rules), so it can only score setups of that shape. What
//! the learning side decides is which of them to trade and how hard: the evolver (`ml::evolver`) picks a
//! parameter set from the regime code and the recent performance, and that set's quality threshold and
//! minimum reward:risk build this strategy, its probability threshold filters the signals (in the
//! engine, through the async batch predictor, exactly as in `hybrid`), and its leverage cap and risk
//! scale bound the sizing. Without a signal predictor the mode is refused
//! ([`super::StrategyError::ModelUnavailable`]): trading its candidates unfiltered would be `ict` under
//! another name.

use super::{
    Mode, Strategy,
    analysis::SymbolAnalysis,
    ict::{IctParams, IctStrategy},
    signal::Evaluation,
};
use crate::domain::{SymbolId, TimestampMs};

/// The ICT rules at the evolver's thresholds; the engine filters their signals with the predictor.
#[derive(Debug, Clone, Default)]
pub struct SelfLearningStrategy {
    pub ict: IctStrategy,
}

impl SelfLearningStrategy {
    pub fn new(params: IctParams) -> Self {
        Self {
            ict: IctStrategy::new(params),
        }
    }
}

impl Strategy for SelfLearningStrategy {
    fn mode(&self) -> Mode {
        Mode::SelfLearning
    }

    fn evaluate(&mut self, symbol: SymbolId, analysis: &SymbolAnalysis, now: TimestampMs) -> Evaluation {
        self.ict.evaluate(symbol, analysis, now)
    }
}
