//! The signal predictor: P(take profit before stop) of an ICT candidate, from its feature vector and
//! its context, by gradient-boosted trees (the `XGBoost` role of the original system).
//!
//! Why a fixed input layout with a card: a model is only valid for the inputs it was trained on, so the
//! row layout is data ([`CONTEXT`] after the 32 feature-vector entries of `features::SCHEMA`),
//! and the model card written next to the ONNX file records the feature schema hash, the context names,
//! the training and validation ranges, the metrics and the command. [`SignalPredictor::load`] refuses a
//! file whose card does not match this build's layout, so a stale model never scores signals.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::{Deserialize, Serialize};

use super::{
    MlError, onnx,
    onnxruntime::{self, OnnxRuntime, OrtModel},
    runtime::{Backend, Model, NativeTrees, TractModel},
    trees::TreeEnsemble,
};
use crate::{
    domain::Side,
    features::{SCHEMA, SCHEMA_LEN, schema_hash},
    strategy::Signal,
};

/// File name of the model in the models directory.
pub const MODEL_FILE: &str = "signal_predictor.onnx";
/// File name of its card.
pub const CARD_FILE: &str = "signal_predictor.json";

/// The context entries after the feature vector, in order.
pub const CONTEXT: [&str; 10] = [
    "ctx.side",
    "ctx.reward_risk",
    "ctx.stop_pct",
    "ctx.quality",
    "ctx.q.structure_alignment",
    "ctx.q.confluences",
    "ctx.q.reward_risk",
    "ctx.q.volatility_regime",
    "ctx.q.volume",
    "ctx.q.key_level_distance",
];

/// Values per input row: the feature vector, then [`CONTEXT`].
pub const INPUTS: usize = SCHEMA_LEN + CONTEXT.len();

/// Writes the [`CONTEXT`] values of `signal` into `out` (length `CONTEXT.len()`): side as ±1, reward:risk
/// (capped at 20), stop distance in percent of the entry (capped at 20), quality total and components.
pub fn context(signal: &Signal, out: &mut [f32]) {
    let side = match signal.side {
        Side::Long => 1.0,
        Side::Short => -1.0,
    };
    let stop_pct = if signal.entry > 0.0 {
        ((signal.entry - signal.stop).abs() / signal.entry * 100.0).min(20.0)
    } else {
        0.0
    };
    let values = [
        side,
        signal.reward_risk.min(20.0),
        stop_pct,
        signal.quality.total,
        signal.quality.components[0],
        signal.quality.components[1],
        signal.quality.components[2],
        signal.quality.components[3],
        signal.quality.components[4],
        signal.quality.components[5],
    ];
    for (slot, value) in out.iter_mut().zip(values) {
        *slot = if value.is_finite() { value as f32 } else { 0.0 };
    }
}

/// FNV-1a over the feature schema hash and the context names: what the card's `input_hash` pins.
pub fn input_hash() -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    let mut eat = |bytes: &[u8]| {
        for &byte in bytes {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(&schema_hash(SCHEMA_LEN).to_le_bytes());
    for name in CONTEXT {
        eat(name.as_bytes());
        eat(&[0]);
    }
    hash
}

/// A time range of samples (decision times, ms since the epoch, inclusive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Range {
    pub from_ms: i64,
    pub to_ms: i64,
    pub from: String,
    pub to: String,
    pub samples: usize,
    pub positives: usize,
}

/// One calibration bin: predictions in `[lo, hi)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    pub lo: f64,
    pub hi: f64,
    pub count: usize,
    pub mean_predicted: f64,
    pub observed_rate: f64,
}

/// Validation metrics (all on the validation period only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// `None` when the validation period has one class only.
    pub auc: Option<f64>,
    pub log_loss: f64,
    /// Log loss of always predicting the training positive rate (the bar to beat).
    pub baseline_log_loss: f64,
    pub brier: f64,
    pub calibration: Vec<CalibrationBin>,
    pub threshold: f64,
    /// Share of validation ICT signals kept at the threshold that hit their target.
    pub precision_at_threshold: Option<f64>,
    /// Validation signals that passed the ICT quality filter, and how many of them the model kept.
    pub ict_signals: usize,
    pub ml_kept: usize,
    /// Mean realised R of every ICT signal, and of those the model kept (`None`: no such signal).
    pub expectancy_ict_r: Option<f64>,
    pub expectancy_ml_r: Option<f64>,
}

/// The JSON model card written next to the ONNX file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub model: String,
    pub version: String,
    pub created: String,
    pub file: String,
    /// SHA-256 of the ONNX file, hex.
    pub sha256: String,
    pub perpdesk_version: String,
    /// `features::schema_hash(32)`, hex.
    pub feature_schema_hash: String,
    pub feature_dimension: usize,
    pub context: Vec<String>,
    /// [`input_hash`], hex.
    pub input_hash: String,
    pub inputs: usize,
    pub trees: usize,
    pub nodes: usize,
    pub params: super::gbdt::GbdtParams,
    pub label: String,
    pub weighting: String,
    pub train: Range,
    pub validation: Range,
    pub purge_ms: i64,
    pub metrics: Metrics,
    pub command: String,
}

fn hex(hash: u64) -> String {
    format!("{hash:#018x}")
}

impl ModelCard {
    pub fn expected_feature_schema_hash() -> String {
        hex(schema_hash(SCHEMA_LEN))
    }

    pub fn expected_input_hash() -> String {
        hex(input_hash())
    }
}

/// The default of `paths.models_dir`: `models/` in the working directory (where `perpdesk train`
/// writes by default).
pub const MODELS_DIR: &str = "models";

/// The predictor `hybrid` uses, with the operating threshold from its card, or `None` with a log line
/// saying why (no model yet, or a model this build refuses), in which case `hybrid` runs the ICT rules.
pub fn load_for_hybrid(dir: &Path) -> Option<(Arc<SignalPredictor>, f64)> {
    if !dir.join(CARD_FILE).exists() {
        tracing::info!(
            dir = %dir.display(),
            "no signal predictor (run `perpdesk train`): hybrid runs the ICT rules only"
        );
        return None;
    }
    match SignalPredictor::load(dir) {
        Ok(predictor) => {
            // With ONNX Runtime loaded, the shipped file must mean in it what the native trees compute.
            if let Some(runtime) = onnxruntime::loaded() {
                match predictor
                    .onnx_runtime(&runtime)
                    .and_then(|ort| predictor.max_difference(&ort))
                {
                    Ok(worst) if worst <= AGREEMENT => {
                        tracing::info!(worst, "signal predictor file checked in ONNX Runtime");
                    }
                    Ok(worst) => {
                        tracing::warn!(
                            worst,
                            "signal predictor refused: ONNX Runtime disagrees with the native trees; hybrid runs the ICT rules only"
                        );
                        return None;
                    }
                    Err(error) => tracing::warn!(%error, "signal predictor not checked in ONNX Runtime"),
                }
            }
            let threshold = predictor.card.metrics.threshold;
            tracing::info!(
                version = %predictor.card.version,
                backend = %predictor.backend(),
                threshold,
                "signal predictor loaded for hybrid"
            );
            Some((Arc::new(predictor), threshold))
        }
        Err(error) => {
            tracing::warn!(%error, "signal predictor refused: hybrid runs the ICT rules only");
            None
        }
    }
}

/// Largest difference in probability accepted between two backends running the same model.
pub const AGREEMENT: f32 = 1e-5;

/// The signal predictor, ready to score: the trees (evaluated natively) and the card they came with.
#[derive(Debug, Clone)]
pub struct SignalPredictor {
    native: NativeTrees,
    pub card: ModelCard,
}

fn card_error(path: &Path, message: impl Into<String>) -> MlError {
    MlError::Card {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, MlError> {
    fs::read(path).map_err(|source| MlError::Io {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn write(path: &Path, bytes: &[u8]) -> Result<(), MlError> {
    // Written next to the target and renamed, so a reader never sees half a model.
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|source| MlError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// SHA-256 of `bytes` in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

impl SignalPredictor {
    pub fn new(ensemble: TreeEnsemble, card: ModelCard) -> Self {
        Self {
            native: NativeTrees {
                ensemble: Arc::new(ensemble),
            },
            card,
        }
    }

    pub fn ensemble(&self) -> &TreeEnsemble {
        &self.native.ensemble
    }

    /// The ONNX bytes of the model, with the card's identity in `metadata_props`.
    pub fn onnx_bytes(&self) -> Vec<u8> {
        let metadata = [
            ("model", self.card.model.clone()),
            ("version", self.card.version.clone()),
            ("feature_schema_hash", self.card.feature_schema_hash.clone()),
            ("input_hash", self.card.input_hash.clone()),
            (
                "inputs",
                [SCHEMA.map(|s| s.name).join(","), CONTEXT.join(",")].join(","),
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v));
        onnx::encode(&onnx::tree_classifier(
            self.ensemble(),
            onnx::PostTransform::Logistic,
            "signal_predictor",
            &metadata,
        ))
    }

    /// Writes `<dir>/signal_predictor.onnx` and its card (the card's `sha256` is set from the bytes).
    pub fn save(&mut self, dir: &Path) -> Result<(PathBuf, PathBuf), MlError> {
        self.save_as(dir, MODEL_FILE, CARD_FILE)
    }

    /// Writes the model as `<dir>/<model_file>` and its card as `<dir>/<card_file>` (the registry's
    /// versions are named after their version).
    pub fn save_as(
        &mut self,
        dir: &Path,
        model_file: &str,
        card_file: &str,
    ) -> Result<(PathBuf, PathBuf), MlError> {
        fs::create_dir_all(dir).map_err(|source| MlError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let bytes = self.onnx_bytes();
        self.card.sha256 = sha256_hex(&bytes);
        model_file.clone_into(&mut self.card.file);
        let (model_path, card_path) = (dir.join(model_file), dir.join(card_file));
        write(&model_path, &bytes)?;
        let json =
            serde_json::to_vec_pretty(&self.card).map_err(|e| card_error(&card_path, e.to_string()))?;
        write(&card_path, &json)?;
        Ok((model_path, card_path))
    }

    /// Loads `<dir>/signal_predictor.onnx` with its card, checking the card against the file (SHA-256)
    /// and against this build's input layout.
    pub fn load(dir: &Path) -> Result<Self, MlError> {
        Self::load_card(dir, CARD_FILE)
    }

    /// Loads the model whose card is `<dir>/<card_file>` (its `file` is relative to `dir`), with the
    /// same checks as [`Self::load`].
    pub fn load_card(dir: &Path, card_file: &str) -> Result<Self, MlError> {
        let card_path = dir.join(card_file);
        let card: ModelCard =
            serde_json::from_slice(&read(&card_path)?).map_err(|e| card_error(&card_path, e.to_string()))?;
        if card.feature_schema_hash != ModelCard::expected_feature_schema_hash()
            || card.input_hash != ModelCard::expected_input_hash()
            || card.inputs != INPUTS
        {
            return Err(card_error(
                &card_path,
                format!(
                    "trained for inputs {} (schema {}), this build feeds {} (schema {}): retrain with `perpdesk train`",
                    card.input_hash,
                    card.feature_schema_hash,
                    ModelCard::expected_input_hash(),
                    ModelCard::expected_feature_schema_hash()
                ),
            ));
        }
        let model_path = dir.join(&card.file);
        let bytes = read(&model_path)?;
        if sha256_hex(&bytes) != card.sha256 {
            return Err(card_error(
                &card_path,
                "the model file does not match the card's sha256",
            ));
        }
        let proto = onnx::decode(&bytes).map_err(|e| MlError::Format(e.to_string()))?;
        let ensemble = onnx::tree_ensemble_from(&proto)?;
        if ensemble.inputs() != INPUTS {
            return Err(MlError::Format(format!(
                "the model takes {} inputs, expected {INPUTS}",
                ensemble.inputs()
            )));
        }
        Ok(Self::new(ensemble, card))
    }

    /// The same model in tract (for checks and the latency comparison; too slow for the hot path).
    pub fn tract(&self) -> Result<TractModel, MlError> {
        TractModel::from_bytes(&self.onnx_bytes(), INPUTS, 1, 2)
    }

    /// The same model in ONNX Runtime (a reload check of the file, and the latency comparison; the native
    /// walk is faster, see benches/ml.rs).
    pub fn onnx_runtime(&self, runtime: &OnnxRuntime) -> Result<OrtModel, MlError> {
        runtime.model(&self.onnx_bytes(), INPUTS, 1, 2)
    }

    /// Rows that exercise every split: for each split, a row at its threshold (which must go left, `<=`)
    /// and one just above it (right), the rest of the row at 0.
    pub fn probe_rows(&self) -> Vec<f32> {
        let ensemble = self.ensemble();
        let mut rows = vec![0.0_f32; INPUTS];
        for t in 0..ensemble.tree_count() {
            for node in ensemble.tree(t).filter(|n| !n.is_leaf()) {
                for value in [node.value, node.value.next_up()] {
                    let mut row = [0.0_f32; INPUTS];
                    row[node.feature as usize] = value;
                    rows.extend_from_slice(&row);
                }
            }
        }
        rows
    }

    /// The largest |native − `other`| over [`Self::probe_rows`], both outputs of every row.
    pub fn max_difference(&self, other: &dyn Model) -> Result<f32, MlError> {
        let rows = self.probe_rows();
        let n = rows.len() / INPUTS;
        let (mut a, mut b) = (vec![0.0; n * 2], vec![0.0; n * 2]);
        self.native.predict(&rows, &mut a)?;
        other.predict(&rows, &mut b)?;
        Ok(a.iter().zip(&b).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max))
    }

    /// The native model behind the [`Model`] interface.
    pub fn model(&self) -> &dyn Model {
        &self.native
    }

    /// The same model, shareable with the batch predictor's task (the trees are behind an `Arc`).
    pub fn shared_model(&self) -> Arc<dyn Model> {
        Arc::new(self.native.clone())
    }

    pub fn backend(&self) -> Backend {
        Backend::Native
    }

    /// P(take profit before stop) of one row ([`INPUTS`] values).
    pub fn probability(&self, row: &[f32]) -> f32 {
        self.native.ensemble.probability(row)
    }

    /// P(take profit before stop) of a signal given its feature vector (allocates nothing).
    pub fn score(&self, features: &[f32; SCHEMA_LEN], signal: &Signal) -> f32 {
        let mut row = [0.0_f32; INPUTS];
        row[..SCHEMA_LEN].copy_from_slice(features);
        context(signal, &mut row[SCHEMA_LEN..]);
        self.probability(&row)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
pub(crate) mod tests {
    use super::*;
    use crate::{
        domain::SymbolId,
        ml::{gbdt::GbdtParams, trees::Node},
        strategy::{QualityScore, Signal},
    };

    fn range() -> Range {
        Range {
            from_ms: 0,
            to_ms: 1,
            from: "a".into(),
            to: "b".into(),
            samples: 2,
            positives: 1,
        }
    }

    pub(crate) fn card() -> ModelCard {
        ModelCard {
            model: "signal_predictor".into(),
            version: "test".into(),
            created: "now".into(),
            file: String::new(),
            sha256: String::new(),
            perpdesk_version: "0".into(),
            feature_schema_hash: ModelCard::expected_feature_schema_hash(),
            feature_dimension: SCHEMA_LEN,
            context: CONTEXT.iter().map(|s| (*s).to_owned()).collect(),
            input_hash: ModelCard::expected_input_hash(),
            inputs: INPUTS,
            trees: 2,
            nodes: 4,
            params: GbdtParams::default(),
            label: "l".into(),
            weighting: "w".into(),
            train: range(),
            validation: range(),
            purge_ms: 0,
            metrics: Metrics {
                auc: None,
                log_loss: 0.5,
                baseline_log_loss: 0.6,
                brier: 0.2,
                calibration: Vec::new(),
                threshold: 0.4,
                precision_at_threshold: Some(0.5),
                ict_signals: 3,
                ml_kept: 0,
                expectancy_ict_r: Some(0.1),
                expectancy_ml_r: None,
            },
            command: "perpdesk train".into(),
        }
    }

    /// Two trees: one on the side (context entry 0), one on the quality total.
    fn ensemble() -> TreeEnsemble {
        let split = |feature: usize, value: f32| Node {
            feature: feature as u32,
            value,
            left: 1,
            right: 2,
        };
        TreeEnsemble::new(
            INPUTS,
            &[
                vec![split(SCHEMA_LEN, 0.0), Node::leaf(-0.5), Node::leaf(0.5)],
                vec![split(SCHEMA_LEN + 3, 0.7), Node::leaf(-0.25), Node::leaf(0.75)],
            ],
        )
        .unwrap()
    }

    fn signal(side: Side, quality: f64) -> Signal {
        Signal {
            symbol: SymbolId(0),
            side,
            at: 0,
            entry: 100.0,
            stop: 99.0,
            take_profit: 103.0,
            reward_risk: 3.0,
            confluences: Vec::new(),
            evidence: Vec::new(),
            quality: QualityScore {
                components: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
                total: quality,
            },
        }
    }

    #[test]
    fn context_follows_the_layout() {
        let mut out = [0.0_f32; CONTEXT.len()];
        context(&signal(Side::Short, 0.8), &mut out);
        assert_eq!(out, [-1.0, 3.0, 1.0, 0.8, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]);
        let predictor = SignalPredictor::new(ensemble(), card());
        let features = [0.0_f32; SCHEMA_LEN];
        // Short (−1 ≤ 0: left, −0.5) with quality 0.8 (> 0.7: right, 0.75).
        let p = predictor.score(&features, &signal(Side::Short, 0.8));
        assert_eq!(p, crate::ml::trees::sigmoid(0.25));
        let p = predictor.score(&features, &signal(Side::Long, 0.5));
        assert_eq!(p, crate::ml::trees::sigmoid(0.25));
        assert_eq!(predictor.model().outputs(), 2);
    }

    #[test]
    fn save_and_load_round_trip_and_refuse_a_stale_or_altered_model() {
        let dir = tempfile::tempdir().unwrap();
        let mut predictor = SignalPredictor::new(ensemble(), card());
        let (model_path, card_path) = predictor.save(dir.path()).unwrap();
        let loaded = SignalPredictor::load(dir.path()).unwrap();
        assert_eq!(loaded.ensemble(), predictor.ensemble());
        assert_eq!(loaded.card, predictor.card);
        assert_eq!(loaded.card.sha256.len(), 64);
        // The card with NaN-free optional metrics reads back (`null` where there is no value).
        let json = std::fs::read_to_string(&card_path).unwrap();
        assert!(json.contains("\"expectancy_ml_r\": null"));

        // A card for another feature layout.
        let mut stale = predictor.card.clone();
        stale.feature_schema_hash = "0x0000000000000000".into();
        std::fs::write(&card_path, serde_json::to_vec(&stale).unwrap()).unwrap();
        let err = SignalPredictor::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("retrain"), "{err}");

        // A model file that is not the one the card describes.
        std::fs::write(&card_path, serde_json::to_vec(&predictor.card).unwrap()).unwrap();
        let mut bytes = std::fs::read(&model_path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&model_path, bytes).unwrap();
        let err = SignalPredictor::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("sha256"), "{err}");
    }

    #[test]
    fn hybrid_loads_a_valid_model_and_runs_without_a_missing_or_refused_one() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_for_hybrid(dir.path()).is_none());
        let mut predictor = SignalPredictor::new(ensemble(), card());
        predictor.save(dir.path()).unwrap();
        let (loaded, threshold) = load_for_hybrid(dir.path()).unwrap();
        assert_eq!(threshold, 0.4);
        assert_eq!(loaded.ensemble(), predictor.ensemble());
        std::fs::write(dir.path().join(MODEL_FILE), b"not onnx").unwrap();
        assert!(load_for_hybrid(dir.path()).is_none());
    }

    #[test]
    fn tract_agrees_with_the_native_predictor() {
        let predictor = SignalPredictor::new(ensemble(), card());
        let tract = predictor.tract().unwrap();
        let mut rows = Vec::new();
        for (side, quality) in [(1.0, 0.9), (-1.0, 0.9), (1.0, 0.7), (-1.0, 0.1)] {
            let mut row = [0.0_f32; INPUTS];
            row[SCHEMA_LEN] = side;
            row[SCHEMA_LEN + 3] = quality;
            rows.extend_from_slice(&row);
        }
        let (mut a, mut b) = ([0.0; 8], [0.0; 8]);
        predictor.model().predict(&rows, &mut a).unwrap();
        tract.predict(&rows, &mut b).unwrap();
        for (a, b) in a.iter().zip(&b) {
            assert!((a - b).abs() <= 1e-6, "{a} vs {b}");
        }
    }
}
