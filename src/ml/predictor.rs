//! The signal predictor: P(take profit before stop) of an ICT candidate, from its feature vector and
//! its context, by gradient-boosted trees (the `XGBoost` role of the original system).
//!
//! Why a fixed input layout with a card: a model is only valid for the inputs it was trained on, so the
//! row layout is data ([`CONTEXT`] after the 32 feature-vector entries of `features::SCHEMA`),
//! and the model card written next to the ONNX file records the feature schema hash, the context names,
//! the training and validation ranges, the metrics and the command. [`SignalPredictor::load`] refuses a
//! file whose card does not match this build's layout, so a stale model never scores signals.
//!
//! Derived inputs: a predictor may also read products of two base inputs, the interactions the feature
//! discovery network promoted (`ml::discovery`, `ml.feature_discovery_rate`). They are computed from
//! the base row, so everything upstream (the engine, `strategy::hybrid::model_row`, the batch requests,
//! the stored online samples) keeps the [`INPUTS`]-value base row and the predictor expands it into its
//! own layout ([`DerivedInputs::expand`]: base inputs, then the derived columns in card order) on the
//! stack, without allocating. The card lists them by name (`a×b`, discovery's naming) and its
//! `input_hash` covers the names, so a model whose derived inputs this build cannot compute is refused.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::{Deserialize, Serialize};

use super::files::{card_error, read, read_model_file, write_atomic};
use super::{
    MlError, onnx,
    onnxruntime::{self, OnnxRuntime, OrtModel},
    runtime::{Backend, Model, NativeTrees, TractModel, rows_of},
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

/// FNV-1a over the feature schema hash and the context names: what the card's `input_hash` pins for a
/// model without derived inputs (the base layout).
pub fn input_hash() -> u64 {
    input_hash_with(&[])
}

/// [`input_hash`] extended by the names of the derived inputs (equal to it when there are none, so
/// cards written before derived inputs existed keep their hash).
pub fn input_hash_with(derived: &[String]) -> u64 {
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
    for name in derived {
        eat(b"derived:");
        eat(name.as_bytes());
        eat(&[0]);
    }
    hash
}

/// Name of base input `i` (`features::SCHEMA` names, then [`CONTEXT`]); `""` past the end.
pub fn input_name(i: usize) -> &'static str {
    if i < SCHEMA_LEN {
        SCHEMA[i].name
    } else {
        CONTEXT.get(i - SCHEMA_LEN).copied().unwrap_or("")
    }
}

/// Index of the base input called `name`.
pub fn input_index(name: &str) -> Option<usize> {
    (0..INPUTS).find(|&i| input_name(i) == name)
}

/// The most derived inputs a predictor takes: one per candidate interaction of the discovery network.
pub const MAX_DERIVED: usize = super::discovery::INTERACTIONS.len();
/// The widest expanded row.
pub const MAX_WIDTH: usize = INPUTS + MAX_DERIVED;

/// The separator of a derived input's name: `a×b` is the product of base inputs `a` and `b`.
pub const PRODUCT: char = '×';

/// The derived inputs of a predictor: up to [`MAX_DERIVED`] products of two base inputs, in the order
/// they follow the base inputs in the model's row. `Copy` and fixed-size, so expanding a row allocates
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DerivedInputs {
    pairs: [(u8, u8); MAX_DERIVED],
    len: usize,
}

impl DerivedInputs {
    /// The base layout: no derived inputs.
    pub const NONE: Self = Self {
        pairs: [(0, 0); MAX_DERIVED],
        len: 0,
    };

    /// From base-input index pairs; `Err` names the first pair out of range or the one too many.
    pub fn from_pairs(pairs: &[(usize, usize)]) -> Result<Self, String> {
        if pairs.len() > MAX_DERIVED {
            return Err(format!("{} derived inputs, at most {MAX_DERIVED}", pairs.len()));
        }
        let mut out = Self::NONE;
        for (k, &(a, b)) in pairs.iter().enumerate() {
            let (Ok(ia), Ok(ib)) = (u8::try_from(a), u8::try_from(b)) else {
                return Err(format!("derived input {k} reads input {a} or {b} of {INPUTS}"));
            };
            if a >= INPUTS || b >= INPUTS {
                return Err(format!("derived input {k} reads input {a} or {b} of {INPUTS}"));
            }
            out.pairs[k] = (ia, ib);
        }
        out.len = pairs.len();
        Ok(out)
    }

    /// The base-input pair of a name `a×b`, `None` unless both are base inputs of this build.
    pub fn parse(name: &str) -> Option<(usize, usize)> {
        let (a, b) = name.split_once(PRODUCT)?;
        Some((input_index(a)?, input_index(b)?))
    }

    /// From names (`a×b`); `Err` names the entry that does not resolve to two base inputs of this build.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        let mut pairs = Vec::with_capacity(names.len());
        for name in names {
            let name = name.as_ref();
            let pair = Self::parse(name).ok_or_else(|| {
                format!("derived input `{name}` is not a product `a{PRODUCT}b` of two inputs of this build")
            })?;
            if pairs.contains(&pair) {
                return Err(format!("derived input `{name}` is listed twice"));
            }
            pairs.push(pair);
        }
        Self::from_pairs(&pairs)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Values per expanded row: [`INPUTS`] plus the derived inputs.
    pub fn width(&self) -> usize {
        INPUTS + self.len
    }

    /// The base-input pairs, in row order.
    pub fn pairs(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.pairs[..self.len]
            .iter()
            .map(|&(a, b)| (usize::from(a), usize::from(b)))
    }

    /// The names, `a×b`, in row order (what the card records).
    pub fn names(&self) -> Vec<String> {
        self.pairs()
            .map(|(a, b)| format!("{}{PRODUCT}{}", input_name(a), input_name(b)))
            .collect()
    }

    /// [`input_hash_with`] of these names.
    pub fn input_hash(&self) -> u64 {
        input_hash_with(&self.names())
    }

    /// Writes the expanded row into `out` and returns its first [`Self::width`] values: the base row,
    /// then each derived input's product.
    #[inline]
    pub fn expand<'a>(&self, base: &[f32; INPUTS], out: &'a mut [f32; MAX_WIDTH]) -> &'a [f32] {
        out[..INPUTS].copy_from_slice(base);
        for (k, (a, b)) in self.pairs().enumerate() {
            out[INPUTS + k] = base[a] * base[b];
        }
        &out[..self.width()]
    }

    /// Expands a row-major batch of base rows (whole rows only; a trailing partial row is dropped). For
    /// training and checks, not the hot path: it allocates the result.
    pub fn expand_rows(&self, base: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(base.len() / INPUTS * self.width());
        let mut row = [0.0_f32; MAX_WIDTH];
        for chunk in base.chunks_exact(INPUTS) {
            if let Ok(chunk) = <&[f32; INPUTS]>::try_from(chunk) {
                out.extend_from_slice(self.expand(chunk, &mut row));
            }
        }
        out
    }
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
    /// Derived inputs after the [`INPUTS`] base inputs, by name (`a×b`), in row order; empty (and
    /// absent from cards written before they existed) for the base layout.
    #[serde(default)]
    pub derived_inputs: Vec<String>,
    /// What `perpdesk train` tried with the feature discovery's promoted interactions; `None` when it
    /// tried nothing (an online retrain, an older card).
    #[serde(default)]
    pub discovery: Option<DiscoveryTrial>,
}

/// The honest record of adding the promoted interactions: both predictors were fitted on the same split
/// and the derived inputs were kept only if they did not make the validation log loss worse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveryTrial {
    /// The discovery card's version the candidates came from.
    pub discovery_version: String,
    /// The promoted interactions tried, by name.
    pub tried: Vec<String>,
    pub kept: bool,
    pub base_only_log_loss: f64,
    pub base_only_auc: Option<f64>,
    pub with_derived_log_loss: f64,
    pub with_derived_auc: Option<f64>,
    /// Why the derived inputs were kept or dropped, in words.
    pub reason: String,
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

    /// The `input_hash` of a card with `derived` inputs.
    pub fn input_hash_for(derived: &DerivedInputs) -> String {
        hex(derived.input_hash())
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

/// The signal predictor behind the [`Model`] interface the engine's batch task runs: it takes base rows
/// ([`INPUTS`] values) and expands each one on the stack into the trees' layout, so the batch task (and
/// a hot swap between models of different layouts) only ever sees base rows, and nothing allocates.
#[derive(Debug, Clone)]
pub struct PredictorModel {
    ensemble: Arc<TreeEnsemble>,
    derived: DerivedInputs,
}

impl Model for PredictorModel {
    fn backend(&self) -> Backend {
        Backend::Native
    }

    fn inputs(&self) -> usize {
        INPUTS
    }

    fn outputs(&self) -> usize {
        2
    }

    fn predict(&self, input: &[f32], out: &mut [f32]) -> Result<(), MlError> {
        rows_of(self, input, out)?;
        let mut expanded = [0.0_f32; MAX_WIDTH];
        for (row, pair) in input.chunks_exact(INPUTS).zip(out.chunks_exact_mut(2)) {
            let row = <&[f32; INPUTS]>::try_from(row)
                .map_err(|_| MlError::Shape("a row of the wrong width".into()))?;
            let p = self.ensemble.probability(self.derived.expand(row, &mut expanded));
            pair[0] = 1.0 - p;
            pair[1] = p;
        }
        Ok(())
    }
}

/// The signal predictor, ready to score: the trees (evaluated natively), their derived inputs and the
/// card they came with.
#[derive(Debug, Clone)]
pub struct SignalPredictor {
    /// The trees over expanded rows ([`DerivedInputs::width`] values).
    native: NativeTrees,
    /// The same trees over base rows.
    served: PredictorModel,
    pub card: ModelCard,
}

/// SHA-256 of `bytes` in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

impl SignalPredictor {
    /// The trees with the derived inputs the card names (none if it names none). The card is trusted
    /// here (a loaded card is checked by [`Self::load_card`]); names that do not resolve leave the base
    /// layout, which the trees then read as missing values.
    pub fn new(ensemble: TreeEnsemble, card: ModelCard) -> Self {
        let derived = DerivedInputs::from_names(&card.derived_inputs).unwrap_or_default();
        Self::with_derived(ensemble, derived, card)
    }

    /// The trees over rows expanded by `derived`; the card's `derived_inputs` and `input_hash` are set
    /// from `derived`, so card and model agree by construction.
    pub fn with_derived(ensemble: TreeEnsemble, derived: DerivedInputs, mut card: ModelCard) -> Self {
        card.derived_inputs = derived.names();
        card.input_hash = ModelCard::input_hash_for(&derived);
        let ensemble = Arc::new(ensemble);
        Self {
            served: PredictorModel {
                ensemble: Arc::clone(&ensemble),
                derived,
            },
            native: NativeTrees { ensemble },
            card,
        }
    }

    /// The derived inputs after the base row.
    pub fn derived(&self) -> &DerivedInputs {
        &self.served.derived
    }

    /// Values per expanded row (what the ONNX file, tract and ONNX Runtime take).
    pub fn width(&self) -> usize {
        self.served.derived.width()
    }

    /// Base rows expanded into this model's layout (for checks and the other backends; allocates).
    pub fn expand_rows(&self, base: &[f32]) -> Vec<f32> {
        self.served.derived.expand_rows(base)
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
                [SCHEMA.map(|s| s.name).join(","), CONTEXT.join(",")]
                    .into_iter()
                    .chain(self.card.derived_inputs.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(","),
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
        write_atomic(&model_path, &bytes)?;
        let json =
            serde_json::to_vec_pretty(&self.card).map_err(|e| card_error(&card_path, e.to_string()))?;
        write_atomic(&card_path, &json)?;
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
        // The derived inputs must be products this build can compute (checked first, so the error names
        // the entry rather than a hash).
        let derived = DerivedInputs::from_names(&card.derived_inputs)
            .map_err(|e| card_error(&card_path, format!("{e}: retrain with `perpdesk train`")))?;
        if card.feature_schema_hash != ModelCard::expected_feature_schema_hash()
            || card.input_hash != ModelCard::input_hash_for(&derived)
            || card.inputs != INPUTS
        {
            return Err(card_error(
                &card_path,
                format!(
                    "trained for inputs {} (schema {}), this build feeds {} (schema {}): retrain with `perpdesk train`",
                    card.input_hash,
                    card.feature_schema_hash,
                    ModelCard::input_hash_for(&derived),
                    ModelCard::expected_feature_schema_hash()
                ),
            ));
        }
        let bytes = read_model_file(dir, &card.file, &card.sha256, &card_path)?;
        let proto = onnx::decode(&bytes).map_err(|e| MlError::Format(e.to_string()))?;
        let ensemble = onnx::tree_ensemble_from(&proto)?;
        if ensemble.inputs() != derived.width() {
            return Err(MlError::Format(format!(
                "the model takes {} inputs, expected {} ({INPUTS} and {} derived)",
                ensemble.inputs(),
                derived.width(),
                derived.len()
            )));
        }
        Ok(Self::with_derived(ensemble, derived, card))
    }

    /// The same model in tract (for checks and the latency comparison; too slow for the hot path). It
    /// takes expanded rows ([`Self::width`] values, see [`Self::expand_rows`]).
    pub fn tract(&self) -> Result<TractModel, MlError> {
        TractModel::from_bytes(&self.onnx_bytes(), self.width(), 1, 2)
    }

    /// The same model in ONNX Runtime (a reload check of the file, and the latency comparison; the native
    /// walk is faster, see benches/ml.rs).
    pub fn onnx_runtime(&self, runtime: &OnnxRuntime) -> Result<OrtModel, MlError> {
        runtime.model(&self.onnx_bytes(), self.width(), 1, 2)
    }

    /// Expanded rows ([`Self::width`] values) that exercise every split: for each split, a row at its
    /// threshold (which must go left, `<=`) and one just above it (right), the rest of the row at 0. A
    /// derived column is set on its own here: the check is that every backend reads the file's trees
    /// alike, not that the row is a product.
    pub fn probe_rows(&self) -> Vec<f32> {
        let ensemble = self.ensemble();
        let width = self.width();
        let mut rows = vec![0.0_f32; width];
        for t in 0..ensemble.tree_count() {
            for node in ensemble.tree(t).filter(|n| !n.is_leaf()) {
                for value in [node.value, node.value.next_up()] {
                    let start = rows.len();
                    rows.resize(start + width, 0.0);
                    rows[start + node.feature as usize] = value;
                }
            }
        }
        rows
    }

    /// The largest |native − `other`| over [`Self::probe_rows`], both outputs of every row (`other`
    /// takes expanded rows, like the ONNX file).
    pub fn max_difference(&self, other: &dyn Model) -> Result<f32, MlError> {
        let rows = self.probe_rows();
        let n = rows.len() / self.width();
        let (mut a, mut b) = (vec![0.0; n * 2], vec![0.0; n * 2]);
        self.native.predict(&rows, &mut a)?;
        other.predict(&rows, &mut b)?;
        Ok(a.iter().zip(&b).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max))
    }

    /// The native model behind the [`Model`] interface, over base rows ([`INPUTS`] values; the derived
    /// inputs are computed inside).
    pub fn model(&self) -> &dyn Model {
        &self.served
    }

    /// The native trees over expanded rows ([`Self::width`] values), the same input as the ONNX file.
    pub fn trees(&self) -> &dyn Model {
        &self.native
    }

    /// The base-row model, shareable with the batch predictor's task (the trees are behind an `Arc`).
    pub fn shared_model(&self) -> Arc<dyn Model> {
        Arc::new(self.served.clone())
    }

    pub fn backend(&self) -> Backend {
        Backend::Native
    }

    /// P(take profit before stop) of one base row (expanded on the stack; allocates nothing).
    pub fn probability(&self, row: &[f32; INPUTS]) -> f32 {
        let mut expanded = [0.0_f32; MAX_WIDTH];
        self.native
            .ensemble
            .probability(self.served.derived.expand(row, &mut expanded))
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
            derived_inputs: Vec::new(),
            discovery: None,
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

    /// `ctx.side×tf0.rsi` and `ctx.quality×ctx.reward_risk`.
    fn two_derived() -> DerivedInputs {
        DerivedInputs::from_names(&["ctx.side×tf0.rsi", "ctx.quality×ctx.reward_risk"]).unwrap()
    }

    /// One tree on the first derived input (side × RSI), one on the second (quality × reward:risk).
    pub(crate) fn derived_predictor() -> SignalPredictor {
        let split = |feature: usize, value: f32| Node {
            feature: feature as u32,
            value,
            left: 1,
            right: 2,
        };
        let ensemble = TreeEnsemble::new(
            INPUTS + 2,
            &[
                vec![split(INPUTS, 0.2), Node::leaf(-1.0), Node::leaf(1.0)],
                vec![split(INPUTS + 1, 2.0), Node::leaf(-0.5), Node::leaf(0.25)],
            ],
        )
        .unwrap();
        SignalPredictor::with_derived(ensemble, two_derived(), card())
    }

    #[test]
    fn derived_inputs_expand_to_the_products_of_their_base_inputs() {
        let derived = two_derived();
        let rsi = input_index("tf0.rsi").unwrap();
        assert_eq!(derived.len(), 2);
        assert_eq!(derived.width(), INPUTS + 2);
        assert_eq!(
            derived.pairs().collect::<Vec<_>>(),
            vec![(SCHEMA_LEN, rsi), (SCHEMA_LEN + 3, SCHEMA_LEN + 1)]
        );
        assert_eq!(
            derived.names(),
            ["ctx.side×tf0.rsi", "ctx.quality×ctx.reward_risk"]
        );
        let mut base = [0.0_f32; INPUTS];
        for (i, v) in base.iter_mut().enumerate() {
            *v = i as f32 * 0.01;
        }
        base[SCHEMA_LEN] = -1.0; // short
        base[rsi] = 0.7;
        base[SCHEMA_LEN + 1] = 3.0; // reward:risk
        base[SCHEMA_LEN + 3] = 0.8; // quality
        let mut out = [f32::NAN; MAX_WIDTH];
        let row = derived.expand(&base, &mut out);
        assert_eq!(row.len(), INPUTS + 2);
        assert_eq!(&row[..INPUTS], &base[..]);
        assert_eq!(row[INPUTS], -0.7);
        assert_eq!(row[INPUTS + 1], 0.8 * 3.0);
        // The base layout is the row itself; a batch expands row by row.
        assert_eq!(DerivedInputs::NONE.expand(&base, &mut out), &base[..]);
        let two_rows = [base, [1.0; INPUTS]].concat();
        let expanded = derived.expand_rows(&two_rows);
        assert_eq!(expanded.len(), 2 * (INPUTS + 2));
        assert_eq!(expanded[INPUTS + 1], 0.8 * 3.0);
        assert_eq!(&expanded[INPUTS + 2..], &[1.0; INPUTS + 2][..]);
        // The hash of the base layout is the pre-derived one; derived names change it.
        assert_eq!(DerivedInputs::NONE.input_hash(), input_hash());
        assert_ne!(derived.input_hash(), input_hash());
    }

    #[test]
    fn derived_input_names_must_resolve_to_two_base_inputs() {
        let err = DerivedInputs::from_names(&["ctx.side×tf9.nothing"]).unwrap_err();
        assert!(err.contains("ctx.side×tf9.nothing"), "{err}");
        let err = DerivedInputs::from_names(&["ctx.side"]).unwrap_err();
        assert!(err.contains("`ctx.side`"), "{err}");
        let err = DerivedInputs::from_names(&["ctx.side×tf0.rsi", "ctx.side×tf0.rsi"]).unwrap_err();
        assert!(err.contains("twice"), "{err}");
        let too_many: Vec<(usize, usize)> = (0..=MAX_DERIVED).map(|i| (i, i)).collect();
        assert!(DerivedInputs::from_pairs(&too_many).is_err());
        assert!(DerivedInputs::from_pairs(&[(0, INPUTS)]).is_err());
        // Every interaction the discovery network can promote resolves.
        for (a, b) in crate::ml::discovery::INTERACTIONS {
            assert!(DerivedInputs::parse(&format!("{a}×{b}")).is_some(), "{a}×{b}");
        }
    }

    #[test]
    fn a_predictor_with_derived_inputs_scores_base_rows_through_their_products() {
        let predictor = derived_predictor();
        assert_eq!(predictor.width(), INPUTS + 2);
        assert_eq!(predictor.model().inputs(), INPUTS);
        assert_eq!(predictor.trees().inputs(), INPUTS + 2);
        let rsi = input_index("tf0.rsi").unwrap();
        let features = {
            let mut f = [0.0_f32; SCHEMA_LEN];
            f[rsi] = 0.5;
            f
        };
        // Long with RSI 0.5: side × RSI = 0.5 > 0.2 (right, +1); quality 0.8 × R:R 3 = 2.4 > 2 (right, +0.25).
        let p = predictor.score(&features, &signal(Side::Long, 0.8));
        assert_eq!(p, crate::ml::trees::sigmoid(1.25));
        // Short: −0.5 ≤ 0.2 (left, −1); quality 0.5 × 3 = 1.5 ≤ 2 (left, −0.5).
        let p = predictor.score(&features, &signal(Side::Short, 0.5));
        assert_eq!(p, crate::ml::trees::sigmoid(-1.5));
    }

    #[test]
    fn a_card_with_derived_inputs_round_trips_and_an_old_card_without_them_loads() {
        let dir = tempfile::tempdir().unwrap();
        let mut predictor = derived_predictor();
        predictor.card.discovery = Some(DiscoveryTrial {
            discovery_version: "feature_discovery-1".into(),
            tried: predictor.card.derived_inputs.clone(),
            kept: true,
            base_only_log_loss: 0.6,
            base_only_auc: Some(0.55),
            with_derived_log_loss: 0.58,
            with_derived_auc: None,
            reason: "kept".into(),
        });
        let (_, card_path) = predictor.save(dir.path()).unwrap();
        let loaded = SignalPredictor::load(dir.path()).unwrap();
        assert_eq!(loaded.card, predictor.card);
        assert_eq!(loaded.derived(), &two_derived());
        assert_eq!(loaded.ensemble(), predictor.ensemble());
        assert_eq!(loaded.card.input_hash, ModelCard::input_hash_for(&two_derived()));
        assert_ne!(loaded.card.input_hash, ModelCard::expected_input_hash());

        // A card written before derived inputs existed: neither field, the base hash.
        let mut base = SignalPredictor::new(ensemble(), card());
        base.save(dir.path()).unwrap();
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&card_path).unwrap()).unwrap();
        let object = json.as_object_mut().unwrap();
        assert!(object.remove("derived_inputs").is_some() && object.remove("discovery").is_some());
        std::fs::write(&card_path, serde_json::to_vec(&json).unwrap()).unwrap();
        let old = SignalPredictor::load(dir.path()).unwrap();
        assert!(old.card.derived_inputs.is_empty() && old.card.discovery.is_none());
        assert!(old.derived().is_empty());
        assert_eq!(old.ensemble(), base.ensemble());
    }

    #[test]
    fn load_refuses_a_derived_input_this_build_cannot_compute_or_a_hash_that_does_not_cover_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut predictor = derived_predictor();
        let (_, card_path) = predictor.save(dir.path()).unwrap();
        let mut card = predictor.card.clone();
        card.derived_inputs[1] = "ctx.quality×tf9.nothing".into();
        std::fs::write(&card_path, serde_json::to_vec(&card).unwrap()).unwrap();
        let err = SignalPredictor::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("ctx.quality×tf9.nothing"), "{err}");
        // Resolvable names whose hash was not updated (the base one): refused as another layout.
        let mut card = predictor.card.clone();
        card.input_hash = ModelCard::expected_input_hash();
        std::fs::write(&card_path, serde_json::to_vec(&card).unwrap()).unwrap();
        let err = SignalPredictor::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("retrain"), "{err}");
        // Derived names dropped from the card: the file's trees are wider than the base layout.
        let mut card = predictor.card.clone();
        card.derived_inputs.clear();
        card.input_hash = ModelCard::expected_input_hash();
        std::fs::write(&card_path, serde_json::to_vec(&card).unwrap()).unwrap();
        let err = SignalPredictor::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("inputs"), "{err}");
    }

    #[test]
    fn tract_agrees_with_the_native_predictor_on_expanded_rows() {
        let predictor = derived_predictor();
        let tract = predictor.tract().unwrap();
        assert_eq!(tract.inputs(), INPUTS + 2);
        let rsi = input_index("tf0.rsi").unwrap();
        let mut base = Vec::new();
        for (side, rsi_value, quality, rr) in [
            (1.0, 0.5, 0.8, 3.0),
            (-1.0, 0.5, 0.8, 3.0),
            (1.0, 0.1, 0.9, 2.0),
            (-1.0, -0.9, 0.5, 5.0),
        ] {
            let mut row = [0.0_f32; INPUTS];
            row[SCHEMA_LEN] = side;
            row[rsi] = rsi_value;
            row[SCHEMA_LEN + 3] = quality;
            row[SCHEMA_LEN + 1] = rr;
            base.extend_from_slice(&row);
        }
        let (mut a, mut b) = ([0.0; 8], [0.0; 8]);
        predictor.model().predict(&base, &mut a).unwrap();
        tract.predict(&predictor.expand_rows(&base), &mut b).unwrap();
        for (a, b) in a.iter().zip(&b) {
            assert!((a - b).abs() <= 1e-6, "{a} vs {b}");
        }
        // Row 0 is the hand-computed case of the scoring test; row 3: −1 × −0.9 = 0.9 > 0.2, 2.5 > 2.
        assert_eq!(a[1], crate::ml::trees::sigmoid(1.25));
        assert_eq!(a[7], crate::ml::trees::sigmoid(1.25));
        assert!(predictor.max_difference(&tract).unwrap() <= 1e-6);
    }
}
