//! `hybrid` with a model: the ICT rules, then the signal predictor keeps a signal only when its
//! P(take profit before stop) reaches the threshold.
//!
//! Why the filter is not evaluated here: the engine must never block on inference, so the model runs
//! behind the async batch predictor (`ml::batch`). [`HybridStrategy`] produces the ICT evaluations
//! (labelled `hybrid`, without the "ML unavailable" notice); the engine queues a request for each
//! signal with the row [`model_row`] builds and holds the signal until the probability comes back as
//! an engine event, then applies [`decide`]: kept, or rejected at [`Stage::Model`] with
//! [`RejectReason::BelowModelThreshold`] and the probability. The row is built exactly as in training
//! (`ml::dataset::feature_vector` from the same analysis, then the signal's context).

use super::{
    Mode, Strategy,
    analysis::SymbolAnalysis,
    ict::IctStrategy,
    signal::{Evaluation, RejectReason, Rejected, Signal, Stage},
};
use crate::{
    domain::{SymbolId, TimestampMs},
    features::SCHEMA_LEN,
    ml::{
        dataset::feature_vector,
        predictor::{INPUTS, context},
    },
};

/// The ICT rules whose signals the engine sends to the signal predictor before keeping them.
#[derive(Debug, Clone, Default)]
pub struct HybridStrategy {
    pub ict: IctStrategy,
}

/// Writes the signal predictor's input row for `signal` (the feature vector of `analysis`, then the
/// signal's context). `false` while a timeframe has no closed bar yet (no row to score).
pub fn model_row(analysis: &SymbolAnalysis, signal: &Signal, row: &mut [f32; INPUTS]) -> bool {
    let mut features = [0.0_f32; SCHEMA_LEN];
    if !feature_vector(analysis, &mut features) {
        return false;
    }
    row[..SCHEMA_LEN].copy_from_slice(&features);
    context(signal, &mut row[SCHEMA_LEN..]);
    true
}

/// The filter: `None` keeps the signal, else the rejection it becomes.
pub fn decide(probability: f32, threshold: f64) -> Option<Rejected> {
    (f64::from(probability) < threshold).then_some(Rejected {
        stage: Stage::Model,
        reason: RejectReason::BelowModelThreshold {
            probability,
            threshold,
        },
    })
}

impl Strategy for HybridStrategy {
    fn mode(&self) -> Mode {
        Mode::Hybrid
    }

    fn evaluate(&mut self, symbol: SymbolId, analysis: &SymbolAnalysis, now: TimestampMs) -> Evaluation {
        self.ict.evaluate(symbol, analysis, now)
    }
}
