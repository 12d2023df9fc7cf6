//! The engine's side of the strategy evolver: the realised R of `self_learning` positions in, a
//! decision every `STRATEGY_EVOLUTION_INTERVAL`, the chosen parameter set out to the strategy and the
//! sizing.
//!
//! Why the engine holds it: the evolver's input (closed positions, the regime code) and its outputs (the
//! ICT thresholds of `self_learning`, the probability threshold of the model filter, the leverage cap
//! and risk of the sizing) all live in the engine task, and a decision is a few microseconds of MLP
//! arithmetic plus a handful of TD updates on 32 rows — cheap enough to run inline once an hour without
//! a channel. Decisions are taken only while the mode is `self_learning` (the reward is the R of the
//! positions it opened); R closed in another mode still counts towards the next one.

use std::time::Duration;

use crate::{
    domain::TimestampMs,
    ml::evolver::{Bounded, Change, Evolver, HardCaps, ParamSet, Performance, STRUCTURE_DIM, encode_state},
    strategy::IctParams,
};

/// How the evolver runs, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvolutionSettings {
    /// `STRATEGY_EVOLUTION_INTERVAL`.
    pub interval: Duration,
    /// `ENABLE_SELF_LEARNING` and a `SELF_LEARNING_MODE` other than `frozen`: explore and learn.
    pub learning: bool,
}

impl Default for EvolutionSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(3600),
            learning: true,
        }
    }
}

/// The evolver with its performance tracker and the caps it is bounded by.
#[derive(Debug, Clone)]
pub struct Evolution {
    pub evolver: Evolver,
    pub performance: Performance,
    /// The newest market-structure code, when an autoencoder provides one.
    pub regime: Option<[f32; STRUCTURE_DIM]>,
    pub settings: EvolutionSettings,
    caps: HardCaps,
    /// Where the Q-network came from (the model card's version, or "untrained").
    pub source: String,
}

impl Evolution {
    pub fn new(mut evolver: Evolver, settings: EvolutionSettings, caps: HardCaps, source: String) -> Self {
        evolver.set_learning(settings.learning);
        Self {
            evolver,
            performance: Performance::default(),
            regime: None,
            settings,
            caps,
            source,
        }
    }

    pub fn current(&self) -> &'static ParamSet {
        self.evolver.current()
    }

    /// The current set's leverage cap and risk fraction inside the hard caps.
    pub fn limits(&self) -> Bounded {
        self.current().bounded(self.caps)
    }

    /// The ICT parameters of `self_learning` under the current set.
    pub fn ict_params(&self) -> IctParams {
        self.current().ict_params(&IctParams::default())
    }

    pub fn probability_threshold(&self) -> f64 {
        self.current().probability_threshold
    }

    /// Records closed positions' R (any time).
    pub fn record(&mut self, closed_r: &[f64]) {
        for r in closed_r {
            self.performance.record(*r);
        }
    }

    /// The decision at the end of an interval: its R is the reward; returns the change, if any.
    pub fn decide(&mut self, at: TimestampMs) -> Option<Change> {
        let reward = self.performance.end_interval();
        let state = encode_state(
            self.regime.as_ref(),
            &self.performance,
            self.evolver.current_index(),
        );
        let change = self.evolver.decide(&state, reward, at);
        tracing::info!(
            reward,
            set = self.current().name,
            epsilon = self.evolver.epsilon(),
            loss = self.evolver.last_loss,
            "strategy evolver decided"
        );
        change
    }

    /// Goes back to the set before the last change.
    pub fn revert(&mut self, at: TimestampMs) -> Option<Change> {
        self.evolver.revert(at)
    }
}
