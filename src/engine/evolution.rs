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
//!
//! With a state directory (the models directory), the agent and its performance tracker are saved after
//! every decision and revert and at shutdown when R was recorded since (`ml::evolver_model::STATE_FILE`, atomically), and resumed at
//! start-up onto the same Q-network, so what online learning changed survives a restart. The file holds
//! the two Q-networks (30 inputs, 8 outputs, 32-wide hidden layers: about 4 600 floats) as JSON and is written on the engine task once an
//! interval, beside the decision's own TD updates; the replay is not saved, which keeps it that small.

use std::{path::PathBuf, time::Duration};

use crate::{
    domain::TimestampMs,
    ml::{
        MlError,
        evolver::{
            Bounded, Change, Evolver, HardCaps, PARAM_SETS, ParamSet, Performance, STRUCTURE_DIM,
            encode_state, set_name,
        },
        evolver_model::{self, SavedEvolver},
    },
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
    /// Where the state is saved and resumed from (`None`: not kept between runs).
    state_dir: Option<PathBuf>,
    /// R was recorded since the last save (what the shutdown save is for).
    unsaved: bool,
}

/// What [`Evolution::resume`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Resumed {
    /// No saved state: the agent starts from its network.
    Nothing,
    /// Continued from the state saved at that time.
    Continued { saved_at: TimestampMs, decisions: u64 },
    /// A state for another Q-network (a newly trained one was loaded): left for the next save to replace.
    OtherNetwork { saved_for: String },
    /// Unreadable or refused: moved aside (`STATE_FILE_UNREADABLE`), the agent starts from its network.
    Refused { reason: String },
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
            state_dir: None,
            unsaved: false,
        }
    }

    /// Keeps the state in `dir` and resumes from what is saved there.
    #[must_use]
    pub fn with_state_dir(mut self, dir: PathBuf) -> Self {
        self.state_dir = Some(dir);
        let resumed = self.resume();
        match &resumed {
            Resumed::Nothing => {}
            Resumed::Continued { decisions, .. } => tracing::info!(
                decisions,
                set = self.current().name,
                changes = self.evolver.history().count(),
                "strategy evolver: resumed from its saved state"
            ),
            Resumed::OtherNetwork { saved_for } => tracing::info!(
                saved_for = %saved_for,
                network = %self.source,
                "strategy evolver: the saved state belongs to another Q-network; starting from the loaded one"
            ),
            Resumed::Refused { reason } => {
                tracing::warn!(%reason, "strategy evolver: saved state refused and moved aside; starting afresh");
            }
        }
        self
    }

    /// Resumes from the state directory's saved state (see [`Resumed`]).
    pub fn resume(&mut self) -> Resumed {
        let Some(dir) = self.state_dir.clone() else {
            return Resumed::Nothing;
        };
        let refused = |error: &MlError| {
            let from = dir.join(evolver_model::STATE_FILE);
            let to = dir.join(evolver_model::STATE_FILE_UNREADABLE);
            let moved = std::fs::rename(&from, &to).map_or_else(
                |e| format!(" (could not move it aside: {e})"),
                |()| format!(" (kept as {})", to.display()),
            );
            Resumed::Refused {
                reason: format!("{error}{moved}"),
            }
        };
        let saved = match evolver_model::load_state(&dir) {
            Ok(None) => return Resumed::Nothing,
            Ok(Some(saved)) => saved,
            Err(error) => return refused(&error),
        };
        if saved.source != self.source {
            return Resumed::OtherNetwork {
                saved_for: saved.source,
            };
        }
        let decisions = saved.evolver.decisions;
        if let Err(error) = self.evolver.restore(saved.evolver) {
            return refused(&error);
        }
        self.performance = saved.performance;
        Resumed::Continued {
            saved_at: saved.saved_at,
            decisions,
        }
    }

    /// Whether R was recorded since the last save: the shutdown saves only then, so a run that learned
    /// nothing writes nothing.
    pub fn unsaved(&self) -> bool {
        self.unsaved
    }

    /// Saves the agent and the tracker to the state directory (nothing without one). A failure is logged:
    /// the agent goes on, and the next save tries again.
    pub fn save(&mut self, at: TimestampMs) {
        let Some(dir) = &self.state_dir else {
            return;
        };
        self.unsaved = false;
        let saved = SavedEvolver {
            format: evolver_model::STATE_FORMAT,
            param_sets_hash: evolver_model::param_sets_json().1,
            source: self.source.clone(),
            saved_at: at,
            evolver: self.evolver.state(),
            performance: self.performance.clone(),
        };
        if let Err(error) = evolver_model::save_state(dir, &saved) {
            tracing::warn!(%error, "strategy evolver: state not saved");
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
        self.unsaved |= !closed_r.is_empty();
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
        self.save(at);
        tracing::info!(
            reward,
            set = self.current().name,
            epsilon = self.evolver.epsilon(),
            loss = self.evolver.last_loss,
            "strategy evolver decided"
        );
        change
    }

    /// The journal's record of `change` (made by this evolver: its new set is the current one).
    pub fn change_record(&self, change: &Change) -> crate::journal::StrategyChangeRecord {
        let limits = self.limits();
        crate::journal::StrategyChangeRecord {
            at_ms: change.at,
            from_set: set_name(change.from).to_owned(),
            to_set: set_name(change.to).to_owned(),
            reason: change.reason.to_string(),
            details: serde_json::json!({
                "reason": change.reason,
                "params": PARAM_SETS.get(change.to),
                "max_leverage": limits.max_leverage,
                "risk_fraction": limits.risk_fraction,
                "source": self.source,
            }),
        }
    }

    /// Goes back to the set before the last change.
    pub fn revert(&mut self, at: TimestampMs) -> Option<Change> {
        let change = self.evolver.revert(at);
        if change.is_some() {
            self.save(at);
        }
        change
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::ml::evolver::EvolverConfig;

    fn evolution(source: &str) -> Evolution {
        let config = EvolverConfig {
            epsilon_start: 1.0,
            epsilon_end: 1.0,
            ..EvolverConfig::default()
        };
        Evolution::new(
            Evolver::new(config).unwrap(),
            EvolutionSettings::default(),
            HardCaps {
                max_leverage: 10,
                risk_fraction: 0.01,
            },
            source.to_owned(),
        )
    }

    #[test]
    fn the_state_is_saved_at_every_decision_and_resumed_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = evolution("strategy_evolver-1").with_state_dir(dir.path().to_path_buf());
        let mut at = 0;
        while first.evolver.history().count() < 2 {
            at += 1;
            first.record(&[1.0, -0.5]);
            first.decide(at);
        }
        first.record(&[2.0]); // closed after the last decision, saved at shutdown
        assert!(first.unsaved());
        first.save(at + 1);
        assert!(!first.unsaved());
        assert!(dir.path().join(evolver_model::STATE_FILE).is_file());

        let mut second = evolution("strategy_evolver-1").with_state_dir(dir.path().to_path_buf());
        assert_eq!(second.evolver.state(), first.evolver.state());
        assert_eq!(second.performance, first.performance);
        assert_eq!(second.current().name, first.current().name);
        // A revert after the restart goes back past the last change made before it.
        let last = *first.evolver.last_change().unwrap();
        let back = second.revert(at + 2).unwrap();
        assert_eq!((back.from, back.to), (last.to, last.from));
        let third = evolution("strategy_evolver-1").with_state_dir(dir.path().to_path_buf());
        assert_eq!(
            third.evolver.last_change(),
            Some(&back),
            "the revert was saved too"
        );
    }

    #[test]
    fn a_state_for_another_network_is_not_resumed_and_an_unreadable_one_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = evolution("strategy_evolver-1").with_state_dir(dir.path().to_path_buf());
        old.record(&[1.0]);
        old.decide(1);
        let mut retrained = evolution("strategy_evolver-2");
        retrained.state_dir = Some(dir.path().to_path_buf());
        assert_eq!(
            retrained.resume(),
            Resumed::OtherNetwork {
                saved_for: "strategy_evolver-1".into()
            }
        );
        assert_eq!(retrained.evolver.decisions(), 0);

        let state = dir.path().join(evolver_model::STATE_FILE);
        std::fs::write(&state, b"{ not json").unwrap();
        let mut fresh = evolution("strategy_evolver-1");
        fresh.state_dir = Some(dir.path().to_path_buf());
        let Resumed::Refused { reason } = fresh.resume() else {
            panic!("an unreadable state is refused");
        };
        assert!(reason.contains("kept as"), "{reason}");
        assert!(!state.exists());
        assert_eq!(
            std::fs::read(dir.path().join(evolver_model::STATE_FILE_UNREADABLE)).unwrap(),
            b"{ not json"
        );
        assert_eq!(fresh.evolver.decisions(), 0);
    }
}
