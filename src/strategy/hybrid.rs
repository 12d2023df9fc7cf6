//! `hybrid` with a model: the ICT rules, then the signal predictor keeps a signal only when its
//! P(take profit before stop) reaches the threshold.
//!
//! Why a strategy and not an engine stage: the mode is what decides which evaluations become signals,
//! and the funnel must show a model rejection like any other (stage [`Stage::Model`], reason
//! [`RejectReason::BelowModelThreshold`] with the probability). The model input is built exactly as in
//! training (`ml::dataset::feature_vector` from the same analysis, then the signal's context), and the
//! trees are evaluated natively: a few microseconds, allocation-free, so there is nothing to gain from a
//! round trip through the batch predictor for this model.

use std::sync::Arc;

use super::{
    Mode, Strategy,
    analysis::SymbolAnalysis,
    ict::IctStrategy,
    signal::{Evaluation, RejectReason, Rejected, Stage},
};
use crate::{
    domain::{SymbolId, TimestampMs},
    features::SCHEMA_LEN,
    ml::{dataset::feature_vector, predictor::SignalPredictor},
};

/// The ICT rules filtered by the signal predictor.
#[derive(Debug, Clone)]
pub struct HybridStrategy {
    pub ict: IctStrategy,
    pub predictor: Arc<SignalPredictor>,
    /// Minimum P(take profit before stop) to keep a signal.
    pub threshold: f64,
}

impl HybridStrategy {
    /// The probability the model gives `evaluation`'s signal, if it is a signal and the analysis has a
    /// closed bar on every timeframe.
    pub fn probability(&self, analysis: &SymbolAnalysis, evaluation: &Evaluation) -> Option<f32> {
        let signal = evaluation.signal()?;
        let mut features = [0.0_f32; SCHEMA_LEN];
        feature_vector(analysis, &mut features).then(|| self.predictor.score(&features, signal))
    }
}

impl Strategy for HybridStrategy {
    fn mode(&self) -> Mode {
        Mode::Hybrid
    }

    fn evaluate(&mut self, symbol: SymbolId, analysis: &SymbolAnalysis, now: TimestampMs) -> Evaluation {
        let evaluation = self.ict.evaluate(symbol, analysis, now);
        match self.probability(analysis, &evaluation) {
            Some(probability) if f64::from(probability) < self.threshold => Evaluation::Rejected(Rejected {
                stage: Stage::Model,
                reason: RejectReason::BelowModelThreshold {
                    probability,
                    threshold: self.threshold,
                },
            }),
            _ => evaluation,
        }
    }
}
