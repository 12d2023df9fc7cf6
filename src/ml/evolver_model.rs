//! The strategy evolver's Q-network as a shipped model: offline pre-training on replayed history,
//! `models/strategy_evolver.onnx` with its JSON card, and loading it back for the console.
//!
//! Why pre-train: online, the evolver gets one reward per `STRATEGY_EVOLUTION_INTERVAL` (an hour), so a
//! fresh network would explore for weeks. The replayed candidates of `perpdesk train` already say what
//! every parameter set would have earned: grouped into episodes of [`PretrainConfig::episode_ms`] of
//! decision time, a set's reward in an episode is the summed realised R of the candidates it keeps
//! (quality, reward:risk and the signal predictor's probability against the set's thresholds). Because
//! the reward of every set is known (full information), each step stores one transition per set
//! ([`ACTIONS`] per episode) while the agent walks the history ε-greedily and learns from the replay as
//! it would online. The regime code is zeros until a structure autoencoder is loaded, which the card
//! records. Validation: the greedy policy walks the held-out episodes without learning, compared with
//! every fixed set (the card keeps all figures, whatever they say).
//!
//! Loading ([`load`]) checks the card against the file (SHA-256), the state and action layout and the
//! parameter table (a hash of its JSON): a network trained on another table is refused.

use std::{
    fs,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::files::{card_error, io, read, read_model_file, write_atomic};
use super::{
    MlError,
    dataset::Sample,
    evolver::{
        ACTIONS, Evolver, EvolverConfig, EvolverState, PARAM_SETS, PERFORMANCE_DIM, Performance, STATE_DIM,
        STRUCTURE_DIM, Transition, encode_state,
    },
    mlp::Mlp,
    predictor::sha256_hex,
    runtime::{Model, TractModel},
};
use crate::domain::TimestampMs;

/// File name of the Q-network in the models directory.
pub const MODEL_FILE: &str = "strategy_evolver.onnx";
/// File name of its card.
pub const CARD_FILE: &str = "strategy_evolver.json";
/// Largest |native − tract| the reload check accepts.
pub const RELOAD_AGREEMENT: f32 = 1e-4;

/// How the Q-network is pre-trained.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PretrainConfig {
    /// Decision time covered by one episode step (one evolver decision). A day: candidates are sparse,
    /// an hour of history rarely holds one.
    pub episode_ms: i64,
    /// Passes over the training episodes.
    pub epochs: usize,
    pub agent: EvolverConfig,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            episode_ms: 24 * 3_600_000,
            epochs: 30,
            agent: EvolverConfig {
                // Offline the whole history is replayed many times: explore for the first third.
                epsilon_decay_steps: 0,
                ..EvolverConfig::default()
            },
        }
    }
}

/// One set's figures on the validation episodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetResult {
    pub name: String,
    /// Mean reward (summed R, clipped) per validation episode with this set held fixed.
    pub mean_reward: f64,
    /// Validation episodes the greedy policy chose this set in.
    pub chosen: usize,
}

/// What the card records about the pre-training and its validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvolverMetrics {
    pub train_episodes: usize,
    pub validation_episodes: usize,
    pub transitions: usize,
    pub updates: u64,
    pub final_loss: Option<f32>,
    /// Mean reward per validation episode of the greedy policy.
    pub greedy_mean_reward: f64,
    pub baseline_mean_reward: f64,
    pub best_fixed_set: String,
    pub best_fixed_mean_reward: f64,
    pub sets: Vec<SetResult>,
}

/// The JSON card beside the ONNX file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvolverCard {
    pub model: String,
    pub version: String,
    pub created: String,
    pub file: String,
    pub sha256: String,
    pub perpdesk_version: String,
    pub inputs: usize,
    pub outputs: usize,
    /// Names of the state entries, in order.
    pub state: Vec<String>,
    /// The action table the outputs index (`ml::evolver::PARAM_SETS`).
    pub param_sets: serde_json::Value,
    pub param_sets_hash: String,
    pub pretrain: PretrainConfig,
    pub regime_code: String,
    pub reward: String,
    /// Decision times of the training and validation candidates.
    pub train_from: String,
    pub train_to: String,
    pub validation_from: String,
    pub validation_to: String,
    pub metrics: EvolverMetrics,
    pub command: String,
}

/// The state layout's names.
pub fn state_names() -> Vec<String> {
    let performance = [
        "perf.mean_r",
        "perf.win_rate",
        "perf.trades",
        "perf.drawdown_r",
        "perf.last_interval_r",
        "perf.last_interval_trades",
    ];
    debug_assert_eq!(performance.len(), PERFORMANCE_DIM);
    (0..STRUCTURE_DIM)
        .map(|i| format!("regime.{i}"))
        .chain(performance.iter().map(|s| (*s).to_owned()))
        .chain(PARAM_SETS.iter().map(|s| format!("current.{}", s.name)))
        .collect()
}

/// The parameter table as JSON and its hash.
pub fn param_sets_json() -> (serde_json::Value, String) {
    let value = serde_json::to_value(PARAM_SETS).unwrap_or_default();
    let hash = sha256_hex(value.to_string().as_bytes());
    (value, hash)
}

/// Sums of realised R per set, per episode: `[episode][set]`, and how many candidates each kept.
fn episode_rewards(
    samples: &[&Sample],
    episodes: &[(usize, usize)],
    probability: &dyn Fn(&Sample) -> Option<f32>,
) -> Vec<[Vec<f64>; ACTIONS]> {
    episodes
        .iter()
        .map(|&(from, to)| {
            let mut kept: [Vec<f64>; ACTIONS] = Default::default();
            for s in &samples[from..to] {
                let s = *s;
                let p = probability(s);
                for (set, out) in PARAM_SETS.iter().zip(kept.iter_mut()) {
                    if set.keeps(s.quality, s.reward_risk, p) {
                        out.push(s.r);
                    }
                }
            }
            kept
        })
        .collect()
}

/// Splits time-sorted samples into runs of `episode_ms` of decision time (empty spans are skipped:
/// nothing would have been traded in them).
pub fn episodes(samples: &[&Sample], episode_ms: i64) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < samples.len() {
        let bucket = samples[start].at.div_euclid(episode_ms.max(1));
        let mut end = start;
        while end < samples.len() && samples[end].at.div_euclid(episode_ms.max(1)) == bucket {
            end += 1;
        }
        out.push((start, end));
        start = end;
    }
    out
}

fn clip(config: &EvolverConfig, trades: &[f64]) -> f64 {
    let clip = f64::from(config.reward_clip);
    trades.iter().sum::<f64>().clamp(-clip, clip)
}

/// What pre-training produced.
#[derive(Debug, Clone)]
pub struct Pretrained {
    pub evolver: Evolver,
    pub metrics: EvolverMetrics,
}

/// Pre-trains a Q-network on `train` and validates it on `validation` (both time-sorted candidates).
pub fn pretrain(
    train: &[&Sample],
    validation: &[&Sample],
    probability: &dyn Fn(&Sample) -> Option<f32>,
    config: &PretrainConfig,
) -> Result<Pretrained, MlError> {
    let train_episodes = episodes(train, config.episode_ms);
    let validation_episodes = episodes(validation, config.episode_ms);
    let train_rewards = episode_rewards(train, &train_episodes, probability);
    let validation_rewards = episode_rewards(validation, &validation_episodes, probability);
    let mut agent = config.agent;
    if agent.epsilon_decay_steps == 0 {
        agent.epsilon_decay_steps = (train_episodes.len() * config.epochs / 3).max(1) as u64;
    }
    let mut evolver = Evolver::new(agent)?;
    let mut transitions = 0;
    for _ in 0..config.epochs {
        let mut performance = Performance::default();
        let mut current = 0;
        for kept in &train_rewards {
            let state = encode_state(None, &performance, current);
            for (action, trades) in kept.iter().enumerate() {
                let mut next = performance.clone();
                for r in trades {
                    next.record(*r);
                }
                next.end_interval();
                evolver.remember(Transition {
                    state,
                    action,
                    reward: clip(&agent, trades) as f32,
                    next: encode_state(None, &next, action),
                });
                transitions += 1;
            }
            // Walk on with the agent's own ε-greedy choice (its reward is already in the replay).
            current = evolver.offline_step(&state);
            for r in &kept[current] {
                performance.record(*r);
            }
            performance.end_interval();
        }
    }
    evolver.set_learning(false);
    let metrics = validate(&evolver, &validation_rewards, &agent);
    Ok(Pretrained {
        metrics: EvolverMetrics {
            train_episodes: train_episodes.len(),
            transitions,
            updates: evolver.updates(),
            final_loss: evolver.last_loss,
            ..metrics
        },
        evolver,
    })
}

/// The greedy policy and every fixed set on the validation episodes.
fn validate(evolver: &Evolver, rewards: &[[Vec<f64>; ACTIONS]], config: &EvolverConfig) -> EvolverMetrics {
    let n = rewards.len().max(1) as f64;
    let mut chosen = [0_usize; ACTIONS];
    let (mut performance, mut current, mut greedy) = (Performance::default(), 0, 0.0);
    for kept in rewards {
        let state = encode_state(None, &performance, current);
        current = evolver.greedy(&state).0;
        chosen[current] += 1;
        greedy += clip(config, &kept[current]);
        for r in &kept[current] {
            performance.record(*r);
        }
        performance.end_interval();
    }
    let sets: Vec<SetResult> = PARAM_SETS
        .iter()
        .enumerate()
        .map(|(i, set)| SetResult {
            name: set.name.to_owned(),
            mean_reward: rewards.iter().map(|k| clip(config, &k[i])).sum::<f64>() / n,
            chosen: chosen[i],
        })
        .collect();
    let best = sets
        .iter()
        .max_by(|a, b| a.mean_reward.total_cmp(&b.mean_reward))
        .cloned();
    EvolverMetrics {
        train_episodes: 0,
        validation_episodes: rewards.len(),
        transitions: 0,
        updates: 0,
        final_loss: None,
        greedy_mean_reward: greedy / n,
        baseline_mean_reward: sets.first().map_or(0.0, |s| s.mean_reward),
        best_fixed_set: best.as_ref().map_or_else(String::new, |b| b.name.clone()),
        best_fixed_mean_reward: best.map_or(0.0, |b| b.mean_reward),
        sets,
    }
}

/// Writes `strategy_evolver.onnx` and its card into `dir` (filling the card's file and hash), after the
/// reload check: the written bytes run in tract within [`RELOAD_AGREEMENT`] of the native forward pass.
pub fn save(network: &Mlp, card: &mut EvolverCard, dir: &Path) -> Result<(PathBuf, PathBuf), MlError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let bytes = network.onnx_bytes("strategy_evolver");
    reload_check(network, &bytes)?;
    card.sha256 = sha256_hex(&bytes);
    MODEL_FILE.clone_into(&mut card.file);
    let (model_path, card_path) = (dir.join(MODEL_FILE), dir.join(CARD_FILE));
    fs::write(&model_path, &bytes).map_err(io(&model_path))?;
    let json = serde_json::to_vec_pretty(card).map_err(|e| card_error(&card_path, e.to_string()))?;
    fs::write(&card_path, json).map_err(io(&card_path))?;
    Ok((model_path, card_path))
}

/// The exported bytes give the network's Q-values in tract (one-hot states of every set and a few
/// performance shapes, at batch 1 and as one batch).
pub fn reload_check(network: &Mlp, bytes: &[u8]) -> Result<(), MlError> {
    let tract = TractModel::from_bytes(bytes, STATE_DIM, 0, ACTIONS)?;
    let mut rows = Vec::new();
    for current in 0..ACTIONS {
        let mut p = Performance::default();
        for r in 0..current {
            p.record(if r % 2 == 0 { 2.0 } else { -1.0 });
        }
        p.end_interval();
        let mut code = [0.0_f32; STRUCTURE_DIM];
        for (i, c) in code.iter_mut().enumerate() {
            *c = ((i * (current + 1)) % 7) as f32 / 7.0 - 0.5;
        }
        rows.extend_from_slice(&encode_state(Some(&code), &p, current));
    }
    let n = rows.len() / STATE_DIM;
    let (mut native, mut other) = (vec![0.0; n * ACTIONS], vec![0.0; n * ACTIONS]);
    network.forward(&rows, &mut native)?;
    tract.predict(&rows, &mut other)?;
    // Batch 1 as well: each row alone against the same native values.
    let mut single = vec![0.0_f32; n * ACTIONS];
    for (row, out) in rows.chunks_exact(STATE_DIM).zip(single.chunks_exact_mut(ACTIONS)) {
        tract.predict(row, out)?;
    }
    let worst = native
        .iter()
        .zip(&other)
        .chain(native.iter().zip(&single))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0_f32, f32::max);
    if worst > RELOAD_AGREEMENT || !worst.is_finite() {
        return Err(MlError::Format(format!(
            "the exported Q-network differs from the native one in tract by {worst}"
        )));
    }
    Ok(())
}

/// Loads `<dir>/strategy_evolver.onnx` with its card, checking the file's hash, the layout and the
/// parameter table.
pub fn load(dir: &Path) -> Result<(Mlp, EvolverCard), MlError> {
    let card_path = dir.join(CARD_FILE);
    let card: EvolverCard = serde_json::from_slice(&fs::read(&card_path).map_err(io(&card_path))?)
        .map_err(|e| card_error(&card_path, e.to_string()))?;
    if card.inputs != STATE_DIM || card.outputs != ACTIONS || card.state != state_names() {
        return Err(card_error(
            &card_path,
            "another state or action layout than this build's",
        ));
    }
    if card.param_sets_hash != param_sets_json().1 {
        return Err(card_error(
            &card_path,
            "trained on another parameter table than this build's",
        ));
    }
    let bytes = read_model_file(dir, &card.file, &card.sha256, &card_path)?;
    let mlp = Mlp::from_onnx(&bytes)?;
    if mlp.inputs() != STATE_DIM || mlp.outputs() != ACTIONS {
        return Err(MlError::Shape(format!(
            "{}: {}→{}",
            card.file,
            mlp.inputs(),
            mlp.outputs()
        )));
    }
    Ok((mlp, card))
}

/// The evolver's state between runs, next to its model: what online learning changed must survive a
/// restart of a console that runs for months.
pub const STATE_FILE: &str = "strategy_evolver.state.json";
/// Where an unreadable state file is moved, so the next save does not overwrite what it held.
pub const STATE_FILE_UNREADABLE: &str = "strategy_evolver.state.json.unreadable";
/// Layout version of [`SavedEvolver`].
pub const STATE_FORMAT: u32 = 1;

/// [`STATE_FILE`]: the agent ([`EvolverState`]) and its performance tracker, with what they belong to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedEvolver {
    pub format: u32,
    /// The parameter table the actions index (a state for another table is refused).
    pub param_sets_hash: String,
    /// The Q-network the agent continued from: the pre-trained card's version, or `untrained`. A state
    /// is resumed only onto the same network; a newly trained one starts from its own weights.
    pub source: String,
    pub saved_at: TimestampMs,
    pub evolver: EvolverState,
    pub performance: Performance,
}

/// Writes [`STATE_FILE`] into `dir` atomically; returns its path.
pub fn save_state(dir: &Path, saved: &SavedEvolver) -> Result<PathBuf, MlError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(STATE_FILE);
    let json = serde_json::to_vec(saved).map_err(|e| card_error(&path, e.to_string()))?;
    write_atomic(&path, &json)?;
    Ok(path)
}

/// Reads [`STATE_FILE`] from `dir`: `Ok(None)` when there is none; an error when it is unreadable or
/// belongs to another parameter table or layout.
pub fn load_state(dir: &Path) -> Result<Option<SavedEvolver>, MlError> {
    let path = dir.join(STATE_FILE);
    let bytes = match read(&path) {
        Ok(bytes) => bytes,
        Err(MlError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let saved: SavedEvolver = serde_json::from_slice(&bytes).map_err(|e| card_error(&path, e.to_string()))?;
    if saved.format != STATE_FORMAT {
        return Err(card_error(
            &path,
            format!("state format {}, this build reads {STATE_FORMAT}", saved.format),
        ));
    }
    if saved.param_sets_hash != param_sets_json().1 {
        return Err(card_error(&path, "saved for another parameter table"));
    }
    if !saved.performance.is_consistent() {
        return Err(card_error(
            &path,
            "the performance tracker holds values this build never writes",
        ));
    }
    Ok(Some(saved))
}

/// The evolver the console starts with: the pre-trained network from `dir` when it loads, else a fresh
/// seeded one; the string says which (for the log and the models panel).
pub fn load_or_fresh(dir: Option<&Path>, config: EvolverConfig) -> Result<(Evolver, String), MlError> {
    if let Some(dir) = dir {
        match load(dir) {
            Ok((mlp, card)) => {
                tracing::info!(version = %card.version, "strategy evolver: pre-trained Q-network loaded");
                // A pre-trained network starts where its training ended: mostly greedy.
                let config = EvolverConfig {
                    epsilon_start: config.epsilon_end.max(0.1),
                    ..config
                };
                return Ok((Evolver::with_network(mlp, config)?, card.version));
            }
            Err(MlError::Io { .. }) => {
                tracing::info!(dir = %dir.display(), "strategy evolver: no pre-trained Q-network; starting untrained");
            }
            Err(error) => {
                tracing::warn!(%error, "strategy evolver: pre-trained Q-network refused; starting untrained");
            }
        }
    }
    Ok((Evolver::new(config)?, "untrained".to_owned()))
}

/// What [`train_and_save`] wrote.
#[derive(Debug, Clone)]
pub struct EvolverOutcome {
    pub card: EvolverCard,
    pub model_path: PathBuf,
    pub card_path: PathBuf,
}

fn date(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// `perpdesk train`'s step for the evolver: pre-trains on the training candidates (`samples[train]`,
/// time-sorted), validates on `samples[validation]`, writes the model and its card into `out`.
pub fn train_and_save(
    samples: &[Sample],
    train: &[usize],
    validation: &[usize],
    probability: &dyn Fn(&Sample) -> Option<f32>,
    command: &str,
    out: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<EvolverOutcome, MlError> {
    let train: Vec<&Sample> = train.iter().map(|&i| &samples[i]).collect();
    let validation: Vec<&Sample> = validation.iter().map(|&i| &samples[i]).collect();
    let config = PretrainConfig::default();
    let pretrained = pretrain(&train, &validation, probability, &config)?;
    let m = &pretrained.metrics;
    progress(&format!(
        "strategy evolver: {} training episodes ({} transitions, {} TD updates); validation {} episodes: greedy {:+.2} R/episode, baseline set {:+.2}, best fixed set {} {:+.2}",
        m.train_episodes,
        m.transitions,
        m.updates,
        m.validation_episodes,
        m.greedy_mean_reward,
        m.baseline_mean_reward,
        m.best_fixed_set,
        m.best_fixed_mean_reward
    ));
    let now = time::OffsetDateTime::now_utc();
    let (param_sets, param_sets_hash) = param_sets_json();
    let span = |set: &[&Sample]| {
        (
            set.first().map_or_else(String::new, |s| date(s.at)),
            set.last().map_or_else(String::new, |s| date(s.at)),
        )
    };
    let ((train_from, train_to), (validation_from, validation_to)) = (span(&train), span(&validation));
    let mut card = EvolverCard {
        model: "strategy_evolver".into(),
        version: format!("strategy_evolver-{}", now.unix_timestamp()),
        created: now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        file: String::new(),
        sha256: String::new(),
        perpdesk_version: env!("CARGO_PKG_VERSION").into(),
        inputs: STATE_DIM,
        outputs: ACTIONS,
        state: state_names(),
        param_sets,
        param_sets_hash,
        pretrain: config,
        regime_code: "zeros (no structure autoencoder in the pre-training)".into(),
        reward: format!(
            "per episode of {} h: summed realised R of the candidates the set keeps (quality, reward:risk, signal predictor probability), clipped to ±{} R",
            config.episode_ms / 3_600_000,
            config.agent.reward_clip
        ),
        train_from,
        train_to,
        validation_from,
        validation_to,
        metrics: pretrained.metrics,
        command: command.to_owned(),
    };
    let (model_path, card_path) = save(pretrained.evolver.network(), &mut card, out)?;
    Ok(EvolverOutcome {
        card,
        model_path,
        card_path,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::{
        domain::Side,
        ml::{dataset::Outcome, predictor::INPUTS},
    };

    const DAY: i64 = 24 * 3_600_000;

    /// Candidates over `days` days: every candidate with quality below 0.8 loses 1 R, the better ones
    /// win 2.5 R or lose 1 R at random (expectancy +0.4 R with reward:risk 2.5): the sets that demand
    /// quality ≥ 0.8 are the best, the loose ones lose.
    fn history(days: i64, seed: u64) -> Vec<Sample> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::new();
        for day in 0..days {
            for k in 0..12 {
                let quality = rng.random_range(0.6..0.95);
                let good = quality >= 0.8;
                let win = good && rng.random_bool(0.4);
                out.push(Sample {
                    symbol: "TESTUSDT".into(),
                    at: day * DAY + k * 3_600_000,
                    resolved_at: day * DAY + k * 3_600_000 + 1,
                    side: Side::Long,
                    row: [0.0; INPUTS],
                    outcome: if win { Outcome::TakeProfit } else { Outcome::Stop },
                    r: if win { 2.5 } else { -1.0 },
                    reward_risk: 3.0,
                    quality,
                    ict_signal: true,
                });
            }
        }
        out
    }

    #[test]
    fn episodes_cut_history_by_decision_time() {
        let h = history(3, 1);
        let refs: Vec<&Sample> = h.iter().collect();
        let e = episodes(&refs, DAY);
        assert_eq!(e, vec![(0, 12), (12, 24), (24, 36)]);
        assert!(episodes(&[], DAY).is_empty());
    }

    #[test]
    fn pretraining_beats_the_baseline_set_on_held_out_days_and_the_files_reload() {
        let train = history(120, 2);
        let validation = history(40, 3);
        let (t, v): (Vec<&Sample>, Vec<&Sample>) = (train.iter().collect(), validation.iter().collect());
        let config = PretrainConfig {
            epochs: 10,
            ..PretrainConfig::default()
        };
        let done = pretrain(&t, &v, &|_| None, &config).unwrap();
        let m = &done.metrics;
        assert_eq!((m.train_episodes, m.validation_episodes), (120, 40));
        assert_eq!(m.transitions, 120 * 10 * ACTIONS);
        // The baseline (quality ≥ 0.7) trades losers; the greedy policy must do clearly better and come
        // close to the best fixed set.
        assert!(m.baseline_mean_reward < 0.0, "{m:?}");
        assert!(m.greedy_mean_reward > m.baseline_mean_reward + 1.0, "{m:?}");
        assert!(m.greedy_mean_reward > 0.5 * m.best_fixed_mean_reward, "{m:?}");

        let dir = tempfile::tempdir().unwrap();
        let (param_sets, param_sets_hash) = param_sets_json();
        let mut card = EvolverCard {
            model: "strategy_evolver".into(),
            version: "test".into(),
            created: String::new(),
            file: String::new(),
            sha256: String::new(),
            perpdesk_version: String::new(),
            inputs: STATE_DIM,
            outputs: ACTIONS,
            state: state_names(),
            param_sets,
            param_sets_hash,
            pretrain: config,
            regime_code: String::new(),
            reward: String::new(),
            train_from: String::new(),
            train_to: String::new(),
            validation_from: String::new(),
            validation_to: String::new(),
            metrics: done.metrics.clone(),
            command: "test".into(),
        };
        save(done.evolver.network(), &mut card, dir.path()).unwrap();
        let (mlp, loaded) = load(dir.path()).unwrap();
        assert_eq!(&mlp, done.evolver.network());
        assert_eq!(loaded, card);
        let (evolver, source) = load_or_fresh(Some(dir.path()), EvolverConfig::default()).unwrap();
        assert_eq!((evolver.network(), source.as_str()), (&mlp, "test"));

        // An altered file, another parameter table or layout is refused; a missing one starts fresh.
        let model = dir.path().join(MODEL_FILE);
        let mut bytes = fs::read(&model).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&model, &bytes).unwrap();
        assert!(matches!(load(dir.path()), Err(MlError::Card { .. })));
        let card_path = dir.path().join(CARD_FILE);
        let mut other = card.clone();
        other.param_sets_hash = "0".into();
        fs::write(&card_path, serde_json::to_vec(&other).unwrap()).unwrap();
        assert!(matches!(load(dir.path()), Err(MlError::Card { .. })));
        let (_, source) = load_or_fresh(Some(dir.path()), EvolverConfig::default()).unwrap();
        assert_eq!(source, "untrained");
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(load(empty.path()), Err(MlError::Io { .. })));
    }

    #[test]
    fn an_exported_mlp_reads_back_exactly() {
        let mlp = Mlp::seeded(&[STATE_DIM, 16, 12, ACTIONS], 5).unwrap();
        let bytes = mlp.onnx_bytes("x");
        assert_eq!(Mlp::from_onnx(&bytes).unwrap(), mlp);
        reload_check(&mlp, &bytes).unwrap();
        assert!(Mlp::from_onnx(b"not onnx").is_err());
        let other = Mlp::seeded(&[STATE_DIM, 16, 12, ACTIONS], 6).unwrap();
        assert!(matches!(reload_check(&other, &bytes), Err(MlError::Format(_))));
    }
}
