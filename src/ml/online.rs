//! Self-learning online: closed positions become labelled samples, and a challenger is retrained from
//! the stored history plus those samples and judged against the champion.
//!
//! Why the labels are what they are: the signal predictor estimates P(take profit before stop), and
//! training labels every historical candidate take profit (1), stop (0) or expiry at the horizon (0)
//! ([`super::dataset::label`]). A closed position is labelled the same way from its close reason:
//! take profit → 1; stop loss, trailing stop (the stop was reached first) and liquidation → 0; expiry →
//! 0. Positions closed by the operator, the strategy, the breaker or the kill switch are *excluded*:
//! they say what someone decided, not what the market did. The realised R is kept beside the label.
//!
//! Why a bounded JSON-lines file: samples must survive a restart (a retrain an hour later needs them)
//! and a line per sample is appended without rewriting anything; the newest [`SAMPLE_CAP`] are kept
//! and the file is rewritten (temporary file and rename) only when it holds twice that.
//!
//! Why the window rule: both models are scored on the newest out-of-sample window, which starts at the
//! walk-forward split *and* after the last decision the champion trained on, so neither model has seen
//! it; the challenger trains only on samples resolved a purge gap before it. [`retrain`] is pure
//! (samples in, challenger and evaluation out) so the engine's learner runs it on a blocking thread.

use std::{
    collections::VecDeque,
    io::Write,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::{
    dataset::{Outcome, Sample},
    gbdt::GbdtParams,
    predictor::{CONTEXT, DerivedInputs, INPUTS, MAX_WIDTH, ModelCard, SignalPredictor},
    registry::{self, Evaluation, Rule},
    train::{self, TrainError},
};
use crate::{
    domain::{Side, TimestampMs},
    features::SCHEMA_LEN,
    positions::CloseReason,
};

/// Online samples kept (the newest).
pub const SAMPLE_CAP: usize = 5_000;
/// The samples file in the data directory.
pub const SAMPLES_FILE: &str = "online_samples.jsonl";

/// One closed position as a labelled sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnlineSample {
    pub symbol: String,
    pub side: Side,
    /// The signal's decision time (close of its entry bar).
    pub at_ms: TimestampMs,
    /// When the position closed (market time).
    pub resolved_ms: TimestampMs,
    /// The model row at entry ([`INPUTS`] values: the feature vector, then the context).
    pub row: Vec<f32>,
    pub outcome: Outcome,
    pub r: f64,
    pub reward_risk: f64,
    pub quality: f64,
    pub close_reason: String,
    /// The champion that scored the signal, if one did, and its probability.
    pub model_version: Option<String>,
    pub probability: Option<f32>,
}

/// The label of a position closed for `reason`; `None`: excluded (see the module docs).
pub fn label(reason: CloseReason) -> Option<Outcome> {
    match reason {
        CloseReason::TakeProfit => Some(Outcome::TakeProfit),
        CloseReason::StopLoss | CloseReason::TrailingStop | CloseReason::Liquidation => Some(Outcome::Stop),
        CloseReason::Expiry => Some(Outcome::Expiry),
        CloseReason::Manual | CloseReason::Strategy | CloseReason::Breaker | CloseReason::KillSwitch => None,
    }
}

impl OnlineSample {
    /// As a training sample; `None` if the row has the wrong width (written by another build).
    pub fn to_sample(&self) -> Option<Sample> {
        let row: [f32; INPUTS] = self.row.as_slice().try_into().ok()?;
        Some(Sample {
            symbol: self.symbol.clone(),
            at: self.at_ms,
            resolved_at: self.resolved_ms.max(self.at_ms),
            side: self.side,
            row,
            outcome: self.outcome,
            r: self.r,
            reward_risk: self.reward_risk,
            quality: self.quality,
            ict_signal: true,
        })
    }
}

/// What can go wrong with the samples file.
#[derive(Debug, thiserror::Error)]
pub enum SampleStoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Encode { path: PathBuf, message: String },
}

/// The bounded, durable store of online samples.
#[derive(Debug)]
pub struct SampleStore {
    path: PathBuf,
    cap: usize,
    samples: VecDeque<OnlineSample>,
    /// Lines in the file (rewritten when it reaches twice the cap).
    lines: usize,
}

impl SampleStore {
    /// Opens (or starts) the store at `path`; unreadable lines are skipped with a warning.
    pub fn open(path: &Path, cap: usize) -> Result<Self, SampleStoreError> {
        let io = |source| SampleStoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io(e)),
        };
        let mut samples = VecDeque::new();
        let mut lines = 0;
        let mut skipped = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            lines += 1;
            match serde_json::from_str::<OnlineSample>(line) {
                Ok(sample) => {
                    if samples.len() == cap.max(1) {
                        samples.pop_front();
                    }
                    samples.push_back(sample);
                }
                Err(_) => skipped += 1,
            }
        }
        if skipped > 0 {
            tracing::warn!(skipped, path = %path.display(), "online samples: unreadable lines skipped");
        }
        Ok(Self {
            path: path.to_path_buf(),
            cap: cap.max(1),
            samples,
            lines,
        })
    }

    pub fn samples(&self) -> &VecDeque<OnlineSample> {
        &self.samples
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    fn encode(&self, sample: &OnlineSample) -> Result<String, SampleStoreError> {
        serde_json::to_string(sample).map_err(|e| SampleStoreError::Encode {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }

    /// Appends one sample (to memory and the file).
    pub fn append(&mut self, sample: OnlineSample) -> Result<(), SampleStoreError> {
        let io = |source| SampleStoreError::Io {
            path: self.path.clone(),
            source,
        };
        let line = self.encode(&sample)?;
        if self.samples.len() == self.cap {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
        if self.lines + 1 >= 2 * self.cap {
            return self.rewrite();
        }
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        file.write_all(format!("{line}\n").as_bytes()).map_err(io)?;
        self.lines += 1;
        Ok(())
    }

    /// Rewrites the file with the kept samples only.
    fn rewrite(&mut self) -> Result<(), SampleStoreError> {
        let mut text = String::new();
        for sample in &self.samples {
            text.push_str(&self.encode(sample)?);
            text.push('\n');
        }
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|source| SampleStoreError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.lines = self.samples.len();
        Ok(())
    }
}

/// How a challenger is trained and judged.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrainConfig {
    /// Share of the newest samples in the evaluation window.
    pub window_fraction: f64,
    /// Purge gap between the last training resolution and the window.
    pub purge_ms: i64,
    pub params: GbdtParams,
    pub threshold: f64,
    pub rule: Rule,
    /// Fewest training samples.
    pub min_train: usize,
    /// The label horizon the history was replayed with (for the card).
    pub horizon_bars: usize,
}

impl Default for RetrainConfig {
    fn default() -> Self {
        Self {
            window_fraction: 0.3,
            purge_ms: 4 * 3_600_000,
            params: GbdtParams {
                trees: 60,
                min_child_weight: 5.0,
                ..GbdtParams::default()
            },
            threshold: train::default_threshold(),
            rule: Rule::default(),
            min_train: 40,
            horizon_bars: 48,
        }
    }
}

/// A trained challenger and its evaluation against the champion.
#[derive(Debug, Clone)]
pub struct Retrained {
    pub challenger: SignalPredictor,
    pub evaluation: Evaluation,
}

/// Trains a challenger on `history` (replayed candidates) and `online` samples and judges it against
/// `champion` (or the constant training rate when there is none) on the newest window neither saw.
pub fn retrain(
    mut samples: Vec<Sample>,
    online: &[OnlineSample],
    champion: Option<&SignalPredictor>,
    config: &RetrainConfig,
    now_ms: TimestampMs,
) -> Result<Retrained, TrainError> {
    let online_count = online.len();
    samples.extend(online.iter().filter_map(OnlineSample::to_sample));
    samples.sort_by(|a, b| (a.at, &a.symbol).cmp(&(b.at, &b.symbol)));
    let (_, _, split) = train::walk_forward_split(&samples, config.window_fraction, config.purge_ms)
        .ok_or_else(|| TrainError::TooLittle("no labelled samples".into()))?;
    // The window must also be unseen by the champion: after the last decision it trained on.
    let start = champion.map_or(split, |c| split.max(c.card.train.to_ms.saturating_add(1)));
    let train_idx: Vec<usize> = (0..samples.len())
        .filter(|&i| samples[i].resolved_at < start - config.purge_ms)
        .collect();
    let window: Vec<usize> = (0..samples.len()).filter(|&i| samples[i].at >= start).collect();
    if train_idx.len() < config.min_train || window.len() < config.rule.min_samples {
        return Err(TrainError::TooLittle(format!(
            "{} training and {} window samples (need {} and {})",
            train_idx.len(),
            window.len(),
            config.min_train,
            config.rule.min_samples
        )));
    }
    // The challenger takes the champion's layout (its derived inputs), so the two are compared on the
    // same rows and a promotion never changes what the served model reads.
    let derived = champion.map_or(DerivedInputs::NONE, |c| *c.derived());
    let (ensemble, train_rate) = train::fit(&samples, &train_idx, &derived, &config.params)?;
    let labels: Vec<f32> = window.iter().map(|&i| samples[i].label()).collect();
    let mut row = [0.0_f32; MAX_WIDTH];
    let challenger_p: Vec<f32> = window
        .iter()
        .map(|&i| ensemble.probability(derived.expand(&samples[i].row, &mut row)))
        .collect();
    let champion_p: Vec<f32> = window
        .iter()
        .map(|&i| champion.map_or(train_rate as f32, |c| c.probability(&samples[i].row)))
        .collect();
    let challenger_score = registry::score(&challenger_p, &labels);
    let champion_score = registry::score(&champion_p, &labels);
    let decision = registry::decide(&champion_score, &challenger_score, &config.rule);
    let metrics = train::validate(
        &ensemble,
        &derived,
        &samples,
        &window,
        config.threshold,
        train_rate,
    );
    let at = train::date(now_ms);
    let card = ModelCard {
        model: "signal_predictor".into(),
        version: format!("signal_predictor-{}", now_ms / 1000),
        created: at.clone(),
        file: String::new(),
        sha256: String::new(),
        perpdesk_version: env!("CARGO_PKG_VERSION").into(),
        feature_schema_hash: ModelCard::expected_feature_schema_hash(),
        feature_dimension: SCHEMA_LEN,
        context: CONTEXT.iter().map(|s| (*s).to_owned()).collect(),
        input_hash: ModelCard::expected_input_hash(),
        inputs: INPUTS,
        trees: ensemble.tree_count(),
        nodes: ensemble.node_count(),
        params: config.params,
        label: format!(
            "take profit before stop within {} entry bars (stored bars, labels from bars after the decision only), plus closed positions (take profit 1; stop, trailing stop, liquidation, expiry 0; operator, strategy, breaker and kill-switch closes excluded)",
            config.horizon_bars
        ),
        weighting: "0.25 + 0.75 x quality total".into(),
        train: train::range(&samples, &train_idx),
        validation: train::range(&samples, &window),
        purge_ms: config.purge_ms,
        metrics,
        command: format!(
            "self-learning retrain in the console ({} stored-history candidates + {online_count} closed positions)",
            samples.len().saturating_sub(online_count)
        ),
        derived_inputs: Vec::new(), // set from `derived` by `with_derived`
        discovery: None,
    };
    let evaluation = Evaluation {
        at_ms: now_ms,
        at,
        challenger: card.version.clone(),
        champion: champion.map(|c| c.card.version.clone()),
        window_from_ms: card.validation.from_ms,
        window_to_ms: card.validation.to_ms,
        challenger_score,
        champion_score,
        train_samples: train_idx.len(),
        online_samples: online_count,
        decision,
    };
    Ok(Retrained {
        challenger: SignalPredictor::with_derived(ensemble, derived, card),
        evaluation,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::ml::{
        predictor::tests::card,
        trees::{Node, TreeEnsemble},
    };

    const H: i64 = 3_600_000;

    /// Samples whose label follows input 0 (with noise), one an hour, each resolved 2 h later.
    fn samples(n: usize, seed: u64) -> Vec<Sample> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|i| {
                let mut row = [0.0_f32; INPUTS];
                row[0] = rng.random_range(-1.0..1.0);
                row[1] = rng.random_range(-1.0..1.0);
                let hit = row[0] + rng.random_range(-0.3..0.3) > 0.0;
                Sample {
                    symbol: "X".into(),
                    at: i as i64 * H,
                    resolved_at: i as i64 * H + 2 * H,
                    side: Side::Long,
                    row,
                    outcome: if hit { Outcome::TakeProfit } else { Outcome::Stop },
                    r: if hit { 2.0 } else { -1.0 },
                    reward_risk: 2.0,
                    quality: 0.7,
                    ict_signal: true,
                }
            })
            .collect()
    }

    fn constant(p: f32, trained_to: i64) -> SignalPredictor {
        let ensemble = TreeEnsemble::new(INPUTS, &[vec![Node::leaf((p / (1.0 - p)).ln())]]).unwrap();
        let mut card = card();
        card.train.to_ms = trained_to;
        SignalPredictor::new(ensemble, card)
    }

    #[test]
    fn a_challenger_keeps_the_champions_derived_inputs_and_reloads_with_them() {
        use crate::ml::predictor::{DerivedInputs, input_name};
        let data = samples(400, 5);
        // A constant champion over rows expanded by the product of the two informative inputs.
        let derived = DerivedInputs::from_pairs(&[(0, 1)]).unwrap();
        let ensemble = TreeEnsemble::new(INPUTS + 1, &[vec![Node::leaf(0.0)]]).unwrap();
        let champion = SignalPredictor::with_derived(ensemble, derived, card());
        assert_eq!(
            champion.card.derived_inputs,
            [format!("{}×{}", input_name(0), input_name(1))]
        );
        let config = RetrainConfig {
            purge_ms: 2 * H,
            ..RetrainConfig::default()
        };
        let out = retrain(data, &[], Some(&champion), &config, 1_000 * H).unwrap();
        let challenger = &out.challenger;
        assert_eq!(challenger.derived(), champion.derived());
        assert_eq!(challenger.card.derived_inputs, champion.card.derived_inputs);
        assert_eq!(challenger.card.input_hash, champion.card.input_hash);
        assert_eq!(challenger.ensemble().inputs(), INPUTS + 1);
        // Judged on the same window as the champion, and it learned the rule the champion does not know.
        assert!(out.evaluation.decision.promote, "{:?}", out.evaluation);
        // What the registry writes is what hot reload reads back, layout included.
        let dir = tempfile::tempdir().unwrap();
        let mut written = challenger.clone();
        written.save(dir.path()).unwrap();
        let loaded = SignalPredictor::load(dir.path()).unwrap();
        assert_eq!(loaded.derived(), champion.derived());
        let row = [0.3_f32; INPUTS];
        assert_eq!(loaded.probability(&row), challenger.probability(&row));
    }

    #[test]
    fn close_reasons_map_to_labels_or_are_excluded() {
        assert_eq!(label(CloseReason::TakeProfit), Some(Outcome::TakeProfit));
        assert_eq!(label(CloseReason::TrailingStop), Some(Outcome::Stop));
        assert_eq!(label(CloseReason::Expiry), Some(Outcome::Expiry));
        assert_eq!(label(CloseReason::Manual), None);
        assert_eq!(label(CloseReason::KillSwitch), None);
    }

    #[test]
    fn a_learnable_challenger_beats_an_uninformed_champion_on_an_unseen_window() {
        let data = samples(400, 1);
        let champion = constant(0.5, 0);
        let config = RetrainConfig {
            purge_ms: 2 * H,
            ..RetrainConfig::default()
        };
        let out = retrain(data.clone(), &[], Some(&champion), &config, 1_000 * H).unwrap();
        let e = &out.evaluation;
        assert!(e.decision.promote, "{e:?}");
        assert!(e.challenger_score.log_loss < e.champion_score.log_loss);
        // The window is the newest 30 %; no training sample resolved within the purge gap of it.
        assert_eq!(e.window_from_ms, 280 * H);
        assert!(out.challenger.card.train.to_ms < e.window_from_ms - config.purge_ms);
        assert_eq!(e.challenger_score.samples, 120);
        // A champion that already knows the rule is not replaced by a model that knows it no better.
        let strong = out.challenger.clone();
        let mut strong_card = strong.card.clone();
        strong_card.train.to_ms = 0;
        let strong = SignalPredictor::new(strong.ensemble().clone(), strong_card);
        let again = retrain(data, &[], Some(&strong), &config, 1_001 * H).unwrap();
        if again.evaluation.decision.promote {
            assert!(again.evaluation.challenger_score.log_loss < again.evaluation.champion_score.log_loss);
        }
    }

    #[test]
    fn the_window_starts_after_what_the_champion_trained_on() {
        let data = samples(400, 2);
        let config = RetrainConfig {
            purge_ms: 2 * H,
            ..RetrainConfig::default()
        };
        let champion = constant(0.5, 350 * H);
        let out = retrain(data.clone(), &[], Some(&champion), &config, 0).unwrap();
        assert_eq!(out.evaluation.window_from_ms, 351 * H);
        assert_eq!(out.evaluation.challenger_score.samples, 49);
        // A champion trained on nearly everything leaves too small a window: no verdict at all.
        let champion = constant(0.5, 390 * H);
        assert!(matches!(
            retrain(data, &[], Some(&champion), &config, 0),
            Err(TrainError::TooLittle(_))
        ));
    }

    #[test]
    fn a_noise_challenger_is_not_promoted_over_the_constant_rate() {
        // Labels independent of the inputs: the trees can only overfit.
        let mut data = samples(300, 3);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for s in &mut data {
            s.outcome = if rng.random_bool(0.4) {
                Outcome::TakeProfit
            } else {
                Outcome::Stop
            };
        }
        let config = RetrainConfig {
            purge_ms: 2 * H,
            ..RetrainConfig::default()
        };
        let out = retrain(data, &[], None, &config, 0).unwrap();
        let e = &out.evaluation;
        assert_eq!(e.champion, None);
        assert!(!e.decision.promote, "{e:?}");
    }

    #[test]
    fn online_samples_join_the_training_data_and_the_store_is_bounded_and_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SAMPLES_FILE);
        let mut store = SampleStore::open(&path, 3).unwrap();
        let base = samples(10, 5);
        for (i, s) in base.iter().enumerate() {
            store
                .append(OnlineSample {
                    symbol: s.symbol.clone(),
                    side: s.side,
                    at_ms: s.at,
                    resolved_ms: s.resolved_at,
                    row: s.row.to_vec(),
                    outcome: s.outcome,
                    r: s.r,
                    reward_risk: s.reward_risk,
                    quality: s.quality,
                    close_reason: "take profit".into(),
                    model_version: None,
                    probability: (i % 2 == 0).then_some(0.5),
                })
                .unwrap();
        }
        assert_eq!(store.len(), 3);
        let reopened = SampleStore::open(&path, 3).unwrap();
        assert_eq!(reopened.samples(), store.samples());
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines < 6, "{lines} lines: the file is rewritten at twice the cap");
        let sample = reopened.samples()[0].to_sample().unwrap();
        assert_eq!(sample.row, base[7].row);
        let mut wrong = reopened.samples()[0].clone();
        wrong.row.pop();
        assert!(wrong.to_sample().is_none());
    }
}
