//! The adaptive strategy evolver: a small DQN that picks, every `STRATEGY_EVOLUTION_INTERVAL`, which of
//! a fixed table of strategy parameter sets `self_learning` trades with.
//!
//! Why a table of whole sets rather than free parameters: every set in [`PARAM_SETS`] is a coherent,
//! reviewed combination (a stricter quality threshold goes with a higher probability threshold and a lower
//! leverage cap), so the agent can only choose among configurations an operator would accept, every change
//! is explainable by name, and the Q-network stays a plain classifier-sized MLP (one output per set).
//! Whatever a set says, [`ParamSet::bounded`] takes the minimum with the configured hard caps: the
//! evolver can lower leverage and risk, never raise them.
//!
//! The agent (standard DQN, Mnih et al. 2015, at toy scale):
//! * state ([`STATE_DIM`] floats, [`encode_state`]): the 16-float regime code of the market-structure
//!   autoencoder (zeros while none is loaded), the recent performance ([`Performance`]: rolling mean R,
//!   win rate, trade count, drawdown in R, the last interval's R and trade count) and the current set
//!   one-hot;
//! * action: an index into [`PARAM_SETS`]; reward: the realised R of the positions closed during the
//!   interval the set was active (summed, clipped to ±[`EvolverConfig::reward_clip`]);
//! * a bounded experience replay ring ([`Replay`]), minibatch TD updates with the Huber loss against a
//!   target network synchronised every [`EvolverConfig::target_sync`] updates, ε-greedy exploration
//!   decaying linearly; everything seeded, so a run is reproducible.
//!
//! Every change of set is a [`Change`] (from, to, reason), logged with `tracing` and kept in a bounded
//! history; [`Evolver::revert`] goes back to the set before the last change and holds it for one decision.

use std::{collections::VecDeque, fmt};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{MlError, mlp::Mlp, nn};
use crate::{domain::TimestampMs, strategy::IctParams};

/// Length of the market-structure code (`STRUCTURE_VECTOR_DIM`).
pub const STRUCTURE_DIM: usize = 16;
/// Recent-performance entries of the state, see [`Performance::write`].
pub const PERFORMANCE_DIM: usize = 6;
/// Number of parameter sets (actions).
pub const ACTIONS: usize = PARAM_SETS.len();
/// Input width of the Q-network.
pub const STATE_DIM: usize = STRUCTURE_DIM + PERFORMANCE_DIM + ACTIONS;
/// Closed trades the rolling performance looks back over.
pub const PERFORMANCE_WINDOW: usize = 20;
/// Changes kept for the console and for reverting.
pub const HISTORY: usize = 64;

/// One strategy parameter set: what `self_learning` trades with while it is active.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ParamSet {
    pub name: &'static str,
    /// Minimum quality total of an ICT candidate (the quality filter's threshold).
    pub quality_threshold: f64,
    /// Minimum reward:risk of the candidate's target.
    pub min_reward_risk: f64,
    /// Highest leverage a position may get (before the configured cap, which also applies).
    pub leverage_cap: u32,
    /// Minimum P(take profit before stop) from the signal predictor.
    pub probability_threshold: f64,
    /// Share of the configured risk fraction risked per trade, in (0, 1]: a set can only risk less.
    pub risk_scale: f64,
}

/// The action table. Ordered from the loosest to the strictest filter; index 0 is the default
/// (the ICT strategy's own thresholds with the break-even probability at 2 R).
pub const PARAM_SETS: [ParamSet; 8] = [
    ParamSet {
        name: "baseline",
        quality_threshold: 0.70,
        min_reward_risk: 2.0,
        leverage_cap: 10,
        probability_threshold: 0.34,
        risk_scale: 1.0,
    },
    ParamSet {
        name: "broad",
        quality_threshold: 0.60,
        min_reward_risk: 1.5,
        leverage_cap: 10,
        probability_threshold: 0.40,
        risk_scale: 0.75,
    },
    ParamSet {
        name: "broad-cautious",
        quality_threshold: 0.60,
        min_reward_risk: 2.0,
        leverage_cap: 5,
        probability_threshold: 0.45,
        risk_scale: 0.5,
    },
    ParamSet {
        name: "probability-led",
        quality_threshold: 0.65,
        min_reward_risk: 2.0,
        leverage_cap: 10,
        probability_threshold: 0.50,
        risk_scale: 1.0,
    },
    ParamSet {
        name: "quality-led",
        quality_threshold: 0.80,
        min_reward_risk: 2.0,
        leverage_cap: 10,
        probability_threshold: 0.34,
        risk_scale: 1.0,
    },
    ParamSet {
        name: "far-targets",
        quality_threshold: 0.70,
        min_reward_risk: 3.0,
        leverage_cap: 8,
        probability_threshold: 0.30,
        risk_scale: 1.0,
    },
    ParamSet {
        name: "strict",
        quality_threshold: 0.80,
        min_reward_risk: 2.5,
        leverage_cap: 5,
        probability_threshold: 0.50,
        risk_scale: 0.75,
    },
    ParamSet {
        name: "defensive",
        quality_threshold: 0.85,
        min_reward_risk: 3.0,
        leverage_cap: 3,
        probability_threshold: 0.55,
        risk_scale: 0.5,
    },
];

/// The hard caps of the configuration, which every set is bounded by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HardCaps {
    /// `risk.max_leverage`.
    pub max_leverage: u32,
    /// `risk.risk_fraction`.
    pub risk_fraction: f64,
}

/// A set's limits once bounded by the hard caps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounded {
    pub max_leverage: u32,
    pub risk_fraction: f64,
}

impl ParamSet {
    /// The ICT parameters of this set: `base` with the set's quality threshold and minimum reward:risk.
    pub fn ict_params(&self, base: &IctParams) -> IctParams {
        let mut params = *base;
        params.min_reward_risk = self.min_reward_risk;
        params.quality.threshold = self.quality_threshold;
        params
    }

    /// The set's leverage and risk inside the hard caps: never above them, at least 1x, and a risk
    /// fraction that is the cap's times a scale clamped into `[0, 1]`.
    pub fn bounded(&self, caps: HardCaps) -> Bounded {
        let scale = if self.risk_scale.is_finite() {
            self.risk_scale.clamp(0.0, 1.0)
        } else {
            0.0
        };
        Bounded {
            max_leverage: self.leverage_cap.min(caps.max_leverage).max(1),
            risk_fraction: caps.risk_fraction * scale,
        }
    }

    /// Whether a candidate with this quality, reward:risk and (optional) probability is kept by the set.
    pub fn keeps(&self, quality: f64, reward_risk: f64, probability: Option<f32>) -> bool {
        quality >= self.quality_threshold
            && reward_risk >= self.min_reward_risk
            && probability.is_none_or(|p| f64::from(p) >= self.probability_threshold)
    }
}

impl fmt::Display for ParamSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (q≥{:.2} rr≥{:.1} p≥{:.2} ≤{}x risk×{:.2})",
            self.name,
            self.quality_threshold,
            self.min_reward_risk,
            self.probability_threshold,
            self.leverage_cap,
            self.risk_scale
        )
    }
}

/// Rolling performance of the closed trades: what the state says about how the strategy is doing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Performance {
    /// R multiples of the last [`PERFORMANCE_WINDOW`] closed trades, oldest first.
    window: VecDeque<f64>,
    /// R multiples closed since the last decision.
    interval_r: f64,
    interval_trades: u32,
    last_interval_r: f64,
    last_interval_trades: u32,
}

impl Performance {
    /// Whether a saved tracker is one this build could have produced (finite values, window in bounds).
    pub fn is_consistent(&self) -> bool {
        self.window.len() <= PERFORMANCE_WINDOW
            && self.window.iter().all(|r| r.is_finite())
            && self.interval_r.is_finite()
            && self.last_interval_r.is_finite()
    }

    /// One closed position's realised R (non-finite values are ignored).
    pub fn record(&mut self, r: f64) {
        if !r.is_finite() {
            return;
        }
        if self.window.len() == PERFORMANCE_WINDOW {
            self.window.pop_front();
        }
        self.window.push_back(r);
        self.interval_r += r;
        self.interval_trades += 1;
    }

    /// Closes the interval: returns its summed R (the reward) and starts the next one.
    pub fn end_interval(&mut self) -> f64 {
        self.last_interval_r = self.interval_r;
        self.last_interval_trades = self.interval_trades;
        self.interval_r = 0.0;
        self.interval_trades = 0;
        self.last_interval_r
    }

    /// Trades closed since the last decision.
    pub fn interval_trades(&self) -> u32 {
        self.interval_trades
    }

    /// Mean R over the window (0 without trades).
    pub fn mean_r(&self) -> f64 {
        if self.window.is_empty() {
            0.0
        } else {
            self.window.iter().sum::<f64>() / self.window.len() as f64
        }
    }

    /// Share of winning trades in the window (0.5 without trades: no evidence either way).
    pub fn win_rate(&self) -> f64 {
        if self.window.is_empty() {
            0.5
        } else {
            self.window.iter().filter(|r| **r > 0.0).count() as f64 / self.window.len() as f64
        }
    }

    /// Deepest fall of the cumulative R over the window, as a positive number of R.
    pub fn drawdown_r(&self) -> f64 {
        let (mut equity, mut peak, mut worst) = (0.0_f64, 0.0_f64, 0.0_f64);
        for r in &self.window {
            equity += r;
            peak = peak.max(equity);
            worst = worst.max(peak - equity);
        }
        worst
    }

    /// Writes the [`PERFORMANCE_DIM`] state entries, each scaled to about `[-1, 1]` so no input dominates:
    /// mean R / 3, win rate, trades in the window / window, drawdown / 10 R, last interval's R / 5,
    /// last interval's trades / 10.
    pub fn write(&self, out: &mut [f32]) {
        let values = [
            (self.mean_r() / 3.0).clamp(-1.0, 1.0),
            self.win_rate(),
            self.window.len() as f64 / PERFORMANCE_WINDOW as f64,
            (self.drawdown_r() / 10.0).min(1.0),
            (self.last_interval_r / 5.0).clamp(-1.0, 1.0),
            (f64::from(self.last_interval_trades) / 10.0).min(1.0),
        ];
        for (slot, v) in out.iter_mut().zip(values) {
            *slot = v as f32;
        }
    }
}

/// The Q-network's input: regime code (zeros when absent), performance, the current set one-hot.
pub fn encode_state(
    regime: Option<&[f32; STRUCTURE_DIM]>,
    performance: &Performance,
    current: usize,
) -> [f32; STATE_DIM] {
    let mut state = [0.0_f32; STATE_DIM];
    if let Some(code) = regime {
        for (slot, v) in state[..STRUCTURE_DIM].iter_mut().zip(code) {
            *slot = if v.is_finite() { *v } else { 0.0 };
        }
    }
    performance.write(&mut state[STRUCTURE_DIM..STRUCTURE_DIM + PERFORMANCE_DIM]);
    if let Some(slot) = state.get_mut(STRUCTURE_DIM + PERFORMANCE_DIM + current) {
        *slot = 1.0;
    }
    state
}

/// One step of experience.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    pub state: [f32; STATE_DIM],
    pub action: usize,
    pub reward: f32,
    pub next: [f32; STATE_DIM],
}

/// The experience replay: a bounded ring, the oldest transition overwritten when full.
#[derive(Debug, Clone)]
pub struct Replay {
    capacity: usize,
    items: Vec<Transition>,
    next: usize,
}

impl Replay {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            items: Vec::with_capacity(capacity.clamp(1, 1 << 16)),
            next: 0,
        }
    }

    pub fn push(&mut self, t: Transition) {
        if self.items.len() < self.capacity {
            self.items.push(t);
        } else {
            self.items[self.next] = t;
        }
        self.next = (self.next + 1) % self.capacity;
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// A transition chosen uniformly (with replacement); `None` when empty.
    pub fn sample(&self, rng: &mut impl Rng) -> Option<&Transition> {
        if self.items.is_empty() {
            return None;
        }
        self.items.get(rng.random_range(0..self.items.len()))
    }
}

/// The agent's hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvolverConfig {
    /// Width of the two hidden layers.
    pub hidden: usize,
    /// Discount of the next interval's value.
    pub gamma: f32,
    pub learning_rate: f32,
    /// Transitions per TD update.
    pub batch: usize,
    pub replay_capacity: usize,
    /// TD updates between two copies of the online network into the target network.
    pub target_sync: u64,
    pub epsilon_start: f64,
    pub epsilon_end: f64,
    /// Decisions over which ε falls linearly from start to end.
    pub epsilon_decay_steps: u64,
    /// TD updates after every decision (once the replay holds a batch).
    pub updates_per_step: usize,
    /// Rewards are clipped to ± this many R so one outlier cannot swamp the TD targets.
    pub reward_clip: f32,
    /// Huber loss transition point.
    pub huber_delta: f32,
    pub seed: u64,
}

impl Default for EvolverConfig {
    fn default() -> Self {
        Self {
            hidden: 32,
            gamma: 0.5,
            learning_rate: 1e-3,
            batch: 32,
            replay_capacity: 4096,
            target_sync: 100,
            epsilon_start: 1.0,
            epsilon_end: 0.05,
            epsilon_decay_steps: 500,
            updates_per_step: 4,
            reward_clip: 5.0,
            huber_delta: 1.0,
            seed: 0x5eed_e701,
        }
    }
}

/// Why the set changed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChangeReason {
    /// The greedy choice: the highest Q-value.
    Exploit { q: f32 },
    /// A random choice with probability ε.
    Explore { epsilon: f64 },
    /// The operator reverted the previous change.
    Revert,
}

impl fmt::Display for ChangeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exploit { q } => write!(f, "highest Q ({q:+.2} R)"),
            Self::Explore { epsilon } => write!(f, "exploring (ε {epsilon:.2})"),
            Self::Revert => f.write_str("reverted by the operator"),
        }
    }
}

/// One change of parameter set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub at: TimestampMs,
    pub from: usize,
    pub to: usize,
    pub reason: ChangeReason,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} → {}: {}",
            set_name(self.from),
            set_name(self.to),
            self.reason
        )
    }
}

/// The name of parameter set `index` (`?` for an index outside the table).
pub(crate) fn set_name(index: usize) -> &'static str {
    PARAM_SETS.get(index).map_or("?", |s| s.name)
}

/// One layer of a saved network (`mlp::Dense` as data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerState {
    pub inputs: usize,
    pub outputs: usize,
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
}

fn layers_of(mlp: &Mlp) -> Vec<LayerState> {
    mlp.layers()
        .iter()
        .map(|l| LayerState {
            inputs: l.inputs,
            outputs: l.outputs,
            weights: l.weights.clone(),
            bias: l.bias.clone(),
        })
        .collect()
}

fn mlp_of(layers: Vec<LayerState>) -> Result<Mlp, MlError> {
    let mlp = Mlp::new(
        layers
            .into_iter()
            .map(|l| super::mlp::Dense {
                inputs: l.inputs,
                outputs: l.outputs,
                weights: l.weights,
                bias: l.bias,
            })
            .collect(),
    )?;
    if mlp.inputs() != STATE_DIM || mlp.outputs() != ACTIONS {
        return Err(MlError::Shape(format!(
            "a saved Q-network of {}→{}, this build's takes {STATE_DIM} and gives {ACTIONS}",
            mlp.inputs(),
            mlp.outputs()
        )));
    }
    Ok(mlp)
}

/// What an agent has learned and decided, as it survives a restart (`evolver_model::save_state`): both
/// networks, the active set, the pending decision, the change history and the counters that drive ε and
/// the target synchronisation. The replay and Adam's moments are not kept: the replay refills from the
/// next intervals, and Adam's moments rebuild within a few updates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvolverState {
    pub online: Vec<LayerState>,
    pub target: Vec<LayerState>,
    pub current: usize,
    /// The state and action of the decision whose reward was still being collected.
    pub last: Option<(Vec<f32>, usize)>,
    pub history: Vec<Change>,
    pub decisions: u64,
    pub updates: u64,
    pub hold: bool,
}

/// The DQN agent and its history of changes.
#[derive(Debug, Clone)]
pub struct Evolver {
    config: EvolverConfig,
    online: nn::Trainer,
    target: Mlp,
    replay: Replay,
    rng: ChaCha8Rng,
    current: usize,
    /// The state and action of the decision whose reward is still being collected.
    last: Option<([f32; STATE_DIM], usize)>,
    history: VecDeque<Change>,
    decisions: u64,
    updates: u64,
    /// After a revert the reverted-to set is kept at the next decision.
    hold: bool,
    /// Whether decisions explore and learn (`ENABLE_SELF_LEARNING`, not `frozen`); otherwise every
    /// decision is the greedy choice of the network as loaded.
    learning: bool,
    /// Mean TD loss of the last decision's updates.
    pub last_loss: Option<f32>,
}

impl Evolver {
    /// A fresh agent (seeded weights) on the baseline set.
    pub fn new(config: EvolverConfig) -> Result<Self, MlError> {
        let network = Mlp::seeded(&[STATE_DIM, config.hidden, config.hidden, ACTIONS], config.seed)?;
        Self::with_network(network, config)
    }

    /// An agent starting from a trained Q-network (e.g. the offline pre-training).
    pub fn with_network(network: Mlp, config: EvolverConfig) -> Result<Self, MlError> {
        if network.inputs() != STATE_DIM || network.outputs() != ACTIONS {
            return Err(MlError::Shape(format!(
                "a Q-network takes {STATE_DIM} inputs and gives {ACTIONS} values, not {}→{}",
                network.inputs(),
                network.outputs()
            )));
        }
        let target = network.clone();
        Ok(Self {
            online: nn::Trainer::new(network, nn_settings(&config)),
            target,
            replay: Replay::new(config.replay_capacity),
            rng: ChaCha8Rng::seed_from_u64(config.seed ^ 0x9e37_79b9_7f4a_7c15),
            config,
            current: 0,
            last: None,
            history: VecDeque::with_capacity(HISTORY),
            decisions: 0,
            updates: 0,
            hold: false,
            learning: true,
            last_loss: None,
        })
    }

    /// Turns online learning (exploration, replay, TD updates) on or off.
    pub fn set_learning(&mut self, learning: bool) {
        self.learning = learning;
    }

    pub fn learning(&self) -> bool {
        self.learning
    }

    pub fn config(&self) -> &EvolverConfig {
        &self.config
    }

    /// The Q-network being trained.
    pub fn network(&self) -> &Mlp {
        self.online.mlp()
    }

    pub fn current_index(&self) -> usize {
        self.current
    }

    /// The active parameter set.
    pub fn current(&self) -> &'static ParamSet {
        &PARAM_SETS[self.current.min(ACTIONS - 1)]
    }

    /// Changes, oldest first (the last [`HISTORY`]).
    pub fn history(&self) -> impl DoubleEndedIterator<Item = &Change> {
        self.history.iter()
    }

    pub fn last_change(&self) -> Option<&Change> {
        self.history.back()
    }

    pub fn decisions(&self) -> u64 {
        self.decisions
    }

    pub fn updates(&self) -> u64 {
        self.updates
    }

    pub fn replay(&self) -> &Replay {
        &self.replay
    }

    /// The agent as it is saved between runs (see [`EvolverState`]).
    pub fn state(&self) -> EvolverState {
        EvolverState {
            online: layers_of(self.online.mlp()),
            target: layers_of(&self.target),
            current: self.current,
            last: self.last.map(|(state, action)| (state.to_vec(), action)),
            history: self.history.iter().copied().collect(),
            decisions: self.decisions,
            updates: self.updates,
            hold: self.hold,
        }
    }

    /// Continues from a saved agent: its networks, set, pending decision, history and counters (the
    /// hyper-parameters and the learning switch stay this agent's). Everything is checked before
    /// anything changes, so a refused state leaves the agent as it was.
    pub fn restore(&mut self, state: EvolverState) -> Result<(), MlError> {
        let action_ok = |a: usize| a < ACTIONS;
        if !action_ok(state.current)
            || state
                .history
                .iter()
                .any(|c| !action_ok(c.from) || !action_ok(c.to))
        {
            return Err(MlError::Shape(format!(
                "a saved evolver refers to a parameter set beyond the {ACTIONS} of this build"
            )));
        }
        let last = match state.last {
            None => None,
            Some((values, action)) => {
                let values = <[f32; STATE_DIM]>::try_from(values.as_slice()).map_err(|_| {
                    MlError::Shape(format!(
                        "a saved decision state of {} values, this build's has {STATE_DIM}",
                        values.len()
                    ))
                })?;
                if !action_ok(action) || values.iter().any(|v| !v.is_finite()) {
                    return Err(MlError::Shape(
                        "a saved decision that this build cannot continue".into(),
                    ));
                }
                Some((values, action))
            }
        };
        let online = mlp_of(state.online)?;
        let target = mlp_of(state.target)?;
        self.online = nn::Trainer::new(online, nn_settings(&self.config));
        self.target = target;
        self.current = state.current;
        self.last = last;
        self.history = state.history.into_iter().rev().take(HISTORY).rev().collect();
        self.decisions = state.decisions;
        self.updates = state.updates;
        self.hold = state.hold;
        Ok(())
    }

    /// ε at the current decision count: linear from start to end over the decay steps.
    pub fn epsilon(&self) -> f64 {
        let c = &self.config;
        let progress = if c.epsilon_decay_steps == 0 {
            1.0
        } else {
            (self.decisions as f64 / c.epsilon_decay_steps as f64).min(1.0)
        };
        c.epsilon_start + (c.epsilon_end - c.epsilon_start) * progress
    }

    /// The online network's Q-values of `state`.
    pub fn q_values(&self, state: &[f32; STATE_DIM]) -> [f32; ACTIONS] {
        let mut q = [0.0_f32; ACTIONS];
        // Shapes are fixed by construction, so the forward pass cannot fail; zeros if it ever did.
        let _ = self.online.mlp().forward(state, &mut q);
        q
    }

    /// The set with the highest Q-value in `state` and that value.
    pub fn greedy(&self, state: &[f32; STATE_DIM]) -> (usize, f32) {
        argmax(&self.q_values(state))
    }

    /// One decision at the end of an interval: the reward (realised R of the interval's closed
    /// positions) completes the previous decision's transition, the network learns from the replay,
    /// and the next set is chosen ε-greedily in `state`. Returns the change, if the set changed.
    pub fn decide(&mut self, state: &[f32; STATE_DIM], reward: f64, at: TimestampMs) -> Option<Change> {
        let clip = self.config.reward_clip;
        let reward = if reward.is_finite() {
            (reward as f32).clamp(-clip, clip)
        } else {
            0.0
        };
        if let Some((previous, action)) = self.last.take()
            && self.learning
        {
            self.replay.push(Transition {
                state: previous,
                action,
                reward,
                next: *state,
            });
        }
        if self.learning {
            self.learn(self.config.updates_per_step);
        }
        let choice = if std::mem::take(&mut self.hold) {
            None
        } else {
            Some(self.choose(state))
        };
        if self.learning {
            self.decisions += 1;
        }
        let mut change = None;
        if let Some((action, reason)) = choice
            && action != self.current
        {
            change = Some(self.switch(action, reason, at));
        }
        self.last = Some((*state, self.current));
        change
    }

    /// ε-greedy while learning, else greedy.
    fn choose(&mut self, state: &[f32; STATE_DIM]) -> (usize, ChangeReason) {
        let epsilon = self.epsilon().clamp(0.0, 1.0);
        if self.learning && self.rng.random_bool(epsilon) {
            (
                self.rng.random_range(0..ACTIONS),
                ChangeReason::Explore { epsilon },
            )
        } else {
            let (action, q) = self.greedy(state);
            (action, ChangeReason::Exploit { q })
        }
    }

    /// Offline training: TD updates from the replay, then the ε-greedy action in `state`, without
    /// changing the live set or its history (the caller stored the transitions with [`Self::remember`]).
    pub fn offline_step(&mut self, state: &[f32; STATE_DIM]) -> usize {
        self.learn(self.config.updates_per_step);
        let (action, _) = self.choose(state);
        self.decisions += 1;
        action
    }

    /// Goes back to the set before the last change (which is recorded as a change itself) and keeps it
    /// at the next decision. `None` when there is nothing to revert.
    pub fn revert(&mut self, at: TimestampMs) -> Option<Change> {
        let last = *self.history.back()?;
        if last.to != self.current {
            return None;
        }
        let change = self.switch(last.from, ChangeReason::Revert, at);
        // The interval so far was traded with the set being reverted; its reward is credited to it.
        self.hold = true;
        Some(change)
    }

    fn switch(&mut self, to: usize, reason: ChangeReason, at: TimestampMs) -> Change {
        let change = Change {
            at,
            from: self.current,
            to,
            reason,
        };
        tracing::info!(
            from = %PARAM_SETS[change.from],
            to = %PARAM_SETS[to],
            %reason,
            "strategy evolver: parameter set changed"
        );
        self.current = to;
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(change);
        change
    }

    /// Runs up to `updates` minibatch TD updates (none until the replay holds a batch); returns the
    /// mean loss of the last one.
    pub fn learn(&mut self, updates: usize) -> Option<f32> {
        let batch = self.config.batch.max(1);
        if self.replay.len() < batch {
            return None;
        }
        let mut inputs = vec![0.0_f32; batch * STATE_DIM];
        let mut next = vec![0.0_f32; batch * STATE_DIM];
        let mut next_q = vec![0.0_f32; batch * ACTIONS];
        let mut targets = vec![0.0_f32; batch * ACTIONS];
        let mut taken = vec![(0_usize, 0.0_f32); batch];
        let mut grad = Vec::with_capacity(batch * ACTIONS);
        let mut loss = None;
        for _ in 0..updates {
            for (row, slot) in taken.iter_mut().enumerate() {
                let Some(t) = self.replay.sample(&mut self.rng) else {
                    return loss;
                };
                inputs[row * STATE_DIM..(row + 1) * STATE_DIM].copy_from_slice(&t.state);
                next[row * STATE_DIM..(row + 1) * STATE_DIM].copy_from_slice(&t.next);
                *slot = (t.action, t.reward);
            }
            // The target network values the next states (a continuing task: no terminal states).
            if self.target.forward(&next, &mut next_q).is_err() {
                return loss;
            }
            let Ok(q) = self.online.forward(&inputs) else {
                return loss;
            };
            // Targets equal to the network's own outputs give those a zero gradient: only the action
            // taken in each transition learns, towards r + γ·max Q_target(s').
            targets.copy_from_slice(q);
            for (row, (action, reward)) in taken.iter().enumerate() {
                let bootstrap = next_q[row * ACTIONS..(row + 1) * ACTIONS]
                    .iter()
                    .copied()
                    .fold(f32::NEG_INFINITY, f32::max);
                targets[row * ACTIONS + action] = reward + self.config.gamma * bootstrap;
            }
            let huber = nn::Loss::Huber(self.config.huber_delta);
            let step = self
                .online
                .loss(&targets, None, huber, &mut grad)
                .and_then(|value| {
                    self.online.backward(&grad)?;
                    self.online.apply()?;
                    Ok(value)
                });
            match step {
                Ok(value) => loss = Some(value as f32),
                Err(error) => {
                    tracing::warn!(%error, "strategy evolver: TD update skipped");
                    return loss;
                }
            }
            self.updates += 1;
            if self.updates.is_multiple_of(self.config.target_sync.max(1)) {
                self.target = self.online.mlp().clone();
            }
        }
        self.last_loss = loss;
        loss
    }

    /// Stores a transition directly (offline pre-training from replayed history).
    pub fn remember(&mut self, transition: Transition) {
        self.replay.push(transition);
    }
}

fn nn_settings(config: &EvolverConfig) -> nn::AdamParams {
    nn::AdamParams {
        learning_rate: config.learning_rate,
        ..nn::AdamParams::default()
    }
}

fn argmax(q: &[f32; ACTIONS]) -> (usize, f32) {
    q.iter().copied().enumerate().fold(
        (0, f32::NEG_INFINITY),
        |best, (i, v)| if v > best.1 { (i, v) } else { best },
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use rand_distr::{Distribution, Normal};

    use super::*;

    /// A market with two regimes that persist; in each one parameter set has clearly the best expected
    /// R per interval (1.0 against at most 0.3), every reward carries N(0, 1) noise.
    struct Market {
        rng: ChaCha8Rng,
        regime: usize,
        performance: Performance,
        noise: Normal<f64>,
    }

    const BEST: [usize; 2] = [3, 6];

    impl Market {
        fn new(seed: u64) -> Self {
            Self {
                rng: ChaCha8Rng::seed_from_u64(seed),
                regime: 0,
                performance: Performance::default(),
                noise: Normal::new(0.0, 1.0).unwrap(),
            }
        }

        fn expected(regime: usize, action: usize) -> f64 {
            if action == BEST[regime] {
                1.0
            } else {
                // Distinct, worse means: from −0.4 to 0.3.
                -0.4 + 0.1 * ((action + 3 * regime) % ACTIONS) as f64
            }
        }

        fn code(&mut self) -> [f32; STRUCTURE_DIM] {
            let mut code = [0.0_f32; STRUCTURE_DIM];
            for (i, c) in code.iter_mut().enumerate() {
                let on = if self.regime == 0 { i < 8 } else { i >= 8 };
                *c = f32::from(u8::from(on)) + self.rng.random_range(-0.2..0.2);
            }
            code
        }

        fn state(&mut self, current: usize) -> [f32; STATE_DIM] {
            let code = self.code();
            encode_state(Some(&code), &self.performance, current)
        }

        /// Trades one interval with `action`; the regime may change afterwards.
        fn interval(&mut self, action: usize) -> f64 {
            let r = Self::expected(self.regime, action) + self.noise.sample(&mut self.rng);
            self.performance.record(r);
            let reward = self.performance.end_interval();
            if self.rng.random_bool(0.1) {
                self.regime = 1 - self.regime;
            }
            reward
        }
    }

    /// Mean expected R of the greedy policy over `steps` fresh states, and the share of best picks.
    fn evaluate(evolver: &Evolver, seed: u64, steps: usize) -> (f64, f64) {
        let mut market = Market::new(seed);
        let (mut total, mut best) = (0.0, 0);
        let mut current = 0;
        for _ in 0..steps {
            let state = market.state(current);
            let (action, _) = evolver.greedy(&state);
            total += Market::expected(market.regime, action);
            best += usize::from(action == BEST[market.regime]);
            market.interval(action);
            current = action;
        }
        (total / steps as f64, best as f64 / steps as f64)
    }

    fn train(seed: u64, decisions: usize) -> Evolver {
        let config = EvolverConfig {
            seed,
            epsilon_decay_steps: decisions as u64 * 2 / 3,
            ..EvolverConfig::default()
        };
        let mut evolver = Evolver::new(config).unwrap();
        let mut market = Market::new(seed ^ 0xabc);
        let mut reward = 0.0;
        for step in 0..decisions {
            let state = market.state(evolver.current_index());
            evolver.decide(&state, reward, step as i64);
            reward = market.interval(evolver.current_index());
        }
        evolver
    }

    #[test]
    fn the_evolver_learns_the_best_parameter_set_of_each_regime() {
        let mut report = Vec::new();
        for seed in [1_u64, 2, 3] {
            let untrained = Evolver::new(EvolverConfig {
                seed,
                ..EvolverConfig::default()
            })
            .unwrap();
            let before = evaluate(&untrained, 99, 200);
            let evolver = train(seed, 1500);
            let after = evaluate(&evolver, 99, 200);
            assert!(evolver.updates() > 0 && evolver.last_loss.is_some_and(f32::is_finite));
            report.push((seed, before, after));
        }
        let text = format!("{report:.3?}");
        eprintln!("(seed, (mean R, best share) before, after): {text}");
        for (_, before, after) in report {
            assert!(after.0 > before.0 + 0.3, "{text}");
            assert!(
                after.0 > 0.6,
                "the best sets give 1 R, the others at most 0.3: {text}"
            );
            assert!(after.1 >= 0.7, "{text}");
        }
    }

    #[test]
    fn every_set_stays_inside_the_hard_caps() {
        let caps = HardCaps {
            max_leverage: 4,
            risk_fraction: 0.01,
        };
        for set in &PARAM_SETS {
            let b = set.bounded(caps);
            assert!(b.max_leverage >= 1 && b.max_leverage <= caps.max_leverage.min(set.leverage_cap));
            assert!(
                b.risk_fraction > 0.0 && b.risk_fraction <= caps.risk_fraction,
                "{set}"
            );
        }
        let wild = ParamSet {
            leverage_cap: 500,
            risk_scale: 7.0,
            ..PARAM_SETS[0]
        };
        assert_eq!(
            wild.bounded(caps),
            Bounded {
                max_leverage: 4,
                risk_fraction: 0.01
            }
        );
        let nan = ParamSet {
            risk_scale: f64::NAN,
            leverage_cap: 0,
            ..PARAM_SETS[0]
        };
        assert_eq!(nan.bounded(caps).max_leverage, 1);
        assert!(nan.bounded(caps).risk_fraction.abs() < f64::EPSILON);
    }

    #[test]
    fn sets_are_distinct_and_map_onto_the_ict_parameters() {
        for (i, a) in PARAM_SETS.iter().enumerate() {
            for b in &PARAM_SETS[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(
                    (
                        a.quality_threshold,
                        a.min_reward_risk,
                        a.probability_threshold,
                        a.leverage_cap
                    ),
                    (
                        b.quality_threshold,
                        b.min_reward_risk,
                        b.probability_threshold,
                        b.leverage_cap
                    )
                );
            }
            assert!(a.risk_scale > 0.0 && a.risk_scale <= 1.0);
        }
        let p = PARAM_SETS[7].ict_params(&IctParams::default());
        assert!((p.quality.threshold - 0.85).abs() < 1e-12 && (p.min_reward_risk - 3.0).abs() < 1e-12);
        assert!(PARAM_SETS[0].keeps(0.7, 2.0, Some(0.5)));
        assert!(!PARAM_SETS[0].keeps(0.7, 2.0, Some(0.2)));
        assert!(!PARAM_SETS[7].keeps(0.8, 3.0, None));
    }

    #[test]
    fn performance_and_state_encoding() {
        let mut p = Performance::default();
        assert_eq!((p.mean_r(), p.win_rate(), p.drawdown_r()), (0.0, 0.5, 0.0));
        for r in [2.0, -1.0, -1.0, 2.0, f64::NAN] {
            p.record(r);
        }
        assert_eq!(p.interval_trades(), 4);
        assert!((p.mean_r() - 0.5).abs() < 1e-12 && (p.win_rate() - 0.5).abs() < 1e-12);
        assert!((p.drawdown_r() - 2.0).abs() < 1e-12);
        assert!((p.end_interval() - 2.0).abs() < 1e-12);
        assert_eq!(p.interval_trades(), 0);
        for _ in 0..100 {
            p.record(-1.0);
        }
        assert!(
            (p.mean_r() + 1.0).abs() < 1e-12,
            "the window keeps the last {PERFORMANCE_WINDOW}"
        );
        let code = [0.5_f32; STRUCTURE_DIM];
        let s = encode_state(Some(&code), &p, 2);
        assert_eq!(&s[..STRUCTURE_DIM], &code);
        assert_eq!(s[STRUCTURE_DIM + PERFORMANCE_DIM + 2], 1.0);
        assert_eq!(s[STRUCTURE_DIM + PERFORMANCE_DIM..].iter().sum::<f32>(), 1.0);
        assert!(s.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
        let none = encode_state(None, &p, 0);
        assert!(none[..STRUCTURE_DIM].iter().all(|v| *v == 0.0));
    }

    #[test]
    fn the_replay_is_a_bounded_ring() {
        let mut replay = Replay::new(3);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert!(replay.sample(&mut rng).is_none());
        for i in 0..5_u8 {
            replay.push(Transition {
                state: [0.0; STATE_DIM],
                action: usize::from(i),
                reward: f32::from(i),
                next: [0.0; STATE_DIM],
            });
        }
        assert_eq!((replay.len(), replay.capacity()), (3, 3));
        let mut seen: Vec<usize> = (0..200)
            .map(|_| replay.sample(&mut rng).unwrap().action)
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, vec![2, 3, 4], "the two oldest were overwritten");
    }

    #[test]
    fn changes_are_logged_and_reverted() {
        let config = EvolverConfig {
            epsilon_start: 1.0,
            epsilon_end: 1.0,
            ..EvolverConfig::default()
        };
        let mut evolver = Evolver::new(config).unwrap();
        assert!(evolver.revert(0).is_none(), "nothing to revert yet");
        let state = encode_state(None, &Performance::default(), 0);
        let mut at = 0;
        let change = loop {
            at += 1;
            if let Some(c) = evolver.decide(&state, 0.0, at) {
                break c;
            }
        };
        assert_eq!((change.from, change.to), (0, evolver.current_index()));
        assert!(matches!(change.reason, ChangeReason::Explore { .. }));
        let back = evolver.revert(at + 1).unwrap();
        assert_eq!(
            (back.from, back.to, back.reason),
            (change.to, 0, ChangeReason::Revert)
        );
        assert_eq!(evolver.current_index(), 0);
        assert_eq!(evolver.last_change(), Some(&back));
        assert!(back.to_string().contains("reverted"), "{back}");
        // The reverted-to set is held at the next decision.
        assert_eq!(evolver.decide(&state, 0.0, at + 2), None);
        assert_eq!(evolver.current_index(), 0);
        assert_eq!(evolver.history().count(), 2);
    }

    /// An agent that has learned and changed sets: ε = 1 so every decision explores, rewards that differ
    /// by set so the TD updates move the weights.
    fn experienced_agent() -> Evolver {
        let config = EvolverConfig {
            epsilon_start: 1.0,
            epsilon_end: 1.0,
            batch: 8,
            ..EvolverConfig::default()
        };
        let mut evolver = Evolver::new(config).unwrap();
        let mut performance = Performance::default();
        for at in 0..40 {
            let reward = if evolver.current_index() == 3 { 1.5 } else { -0.5 };
            performance.record(reward);
            performance.end_interval();
            let state = encode_state(None, &performance, evolver.current_index());
            evolver.decide(&state, reward, at);
        }
        assert!(evolver.updates() > 0 && evolver.history().count() > 1);
        evolver
    }

    #[test]
    fn a_saved_agent_continues_exactly_where_it_was() {
        let agent = experienced_agent();
        let json = serde_json::to_string(&agent.state()).unwrap();
        let saved: EvolverState = serde_json::from_str(&json).unwrap();
        assert_eq!(saved, agent.state(), "the JSON round trip is exact");
        // Restored into a fresh agent of the same configuration (another seed's weights).
        let mut resumed = Evolver::new(EvolverConfig {
            seed: 99,
            ..*agent.config()
        })
        .unwrap();
        resumed.restore(saved).unwrap();
        let state = encode_state(None, &Performance::default(), agent.current_index());
        assert_eq!(resumed.q_values(&state), agent.q_values(&state));
        assert_eq!(resumed.network(), agent.network());
        assert_eq!(resumed.current_index(), agent.current_index());
        assert_eq!(
            resumed.history().collect::<Vec<_>>(),
            agent.history().collect::<Vec<_>>()
        );
        assert_eq!(
            (resumed.decisions(), resumed.updates(), resumed.epsilon()),
            (agent.decisions(), agent.updates(), agent.epsilon())
        );
        assert_eq!(resumed.state(), agent.state());
        // The replay is not part of the state: it refills from the next intervals.
        assert!(resumed.replay().is_empty());
    }

    #[test]
    fn a_saved_state_this_build_cannot_continue_is_refused_and_changes_nothing() {
        let agent = experienced_agent();
        let mut fresh = Evolver::new(EvolverConfig::default()).unwrap();
        let before = fresh.state();
        let mut beyond = agent.state();
        beyond.current = ACTIONS;
        assert!(fresh.restore(beyond).is_err());
        let mut short = agent.state();
        short.last = Some((vec![0.0; STATE_DIM - 1], 0));
        assert!(fresh.restore(short).is_err());
        let mut narrow = agent.state();
        let layer = &mut narrow.online[0];
        layer.inputs -= 1;
        let kept = layer.inputs * layer.outputs;
        layer.weights.truncate(kept);
        assert!(matches!(fresh.restore(narrow), Err(MlError::Shape(_))));
        let mut history = agent.state();
        history.history[0].to = ACTIONS + 1;
        assert!(fresh.restore(history).is_err());
        assert_eq!(fresh.state(), before);
    }

    #[test]
    fn a_network_of_another_shape_is_refused() {
        let mlp = Mlp::seeded(&[STATE_DIM + 1, 4, ACTIONS], 1).unwrap();
        assert!(matches!(
            Evolver::with_network(mlp, EvolverConfig::default()),
            Err(MlError::Shape(_))
        ));
    }
}
