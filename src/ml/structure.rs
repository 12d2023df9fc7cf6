//! The market-structure autoencoder: a symbol's feature vector → a 16-value code → its reconstruction.
//! The code describes the regime (k-means over training codes, each cluster named in words from its
//! members' raw features); the reconstruction error flags novelty (a market unlike anything trained on).
//!
//! Why an autoencoder: the 32 features are strongly correlated (three timeframes of the same
//! indicators); a 16-value bottleneck keeps what varies together, so distances between codes compare
//! market states better than distances between raw vectors, and rows the network cannot rebuild are the
//! ones it never saw. Why named clusters: the console shows "trend up · high vol", not a vector.
//!
//! Data: the feature vector every [`StructureParams::every`] entry bars of every symbol's replay
//! ([`collect_rows`]), split by time (the newest [`StructureParams::validation_fraction`] of rows is the
//! validation set; training rows end [`StructureParams::purge_ms`] before it, so autocorrelated
//! neighbours of validation rows do not train). Features use only closed bars up to their own time, so
//! there are no labels to leak; the purge only keeps neighbouring rows apart.
//!
//! Files (all in the models directory): `structure_encoder.onnx` (raw features → code),
//! `structure_autoencoder.onnx` (raw features → reconstruction **in standardised units**: the error is
//! taken against the standardised input, so every feature counts alike whatever its scale), and the card
//! `structure.json` (standardiser, regime table, novelty threshold, metrics, file hashes).
//!
//! Layout: 32 → 64 → 16 → 64 → 32 with `ReLU` after every hidden layer, including the bottleneck. The
//! code is the bottleneck *before* its `ReLU` (the encoder file is the first two layers; the decoder sees
//! the code's positive part), so it keeps the sign information k-means can use.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::files::{card_error, io, read_model_file, write_atomic};
use super::{
    MlError,
    dataset::{DatasetError, SymbolBars, feature_vector},
    mlp::Mlp,
    nn::{AdamParams, FitParams, Loss, Standardizer, Trainer, fit},
    predictor::{ModelCard, sha256_hex},
    runtime::{Model, TractModel, onnx_model},
};
use crate::{
    domain::TimestampMs,
    features::{SCHEMA, SCHEMA_LEN},
    strategy::{AnalysisConfig, Role, SymbolAnalysis},
};

/// The code width (`ml.structure_vector_dim`'s default; the issue's `STRUCTURE_VECTOR_DIM`).
pub const STRUCTURE_VECTOR_DIM: usize = 16;
/// The encoder file in the models directory.
pub const ENCODER_FILE: &str = "structure_encoder.onnx";
/// The autoencoder file in the models directory.
pub const AUTOENCODER_FILE: &str = "structure_autoencoder.onnx";
/// The card.
pub const CARD_FILE: &str = "structure.json";
/// Hidden width on both sides of the bottleneck.
const HIDDEN: usize = 64;

/// How the structure model is trained.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StructureParams {
    pub code_dim: usize,
    /// One row per this many entry bars of each symbol.
    pub every: usize,
    pub validation_fraction: f64,
    pub purge_ms: i64,
    /// At most this many training rows (evenly thinned), so training stays within its time budget.
    pub max_train_rows: usize,
    pub epochs: usize,
    pub regimes: usize,
    /// Novelty threshold: this quantile of the training rows' reconstruction errors.
    pub novelty_quantile: f64,
    pub seed: u64,
}

impl Default for StructureParams {
    fn default() -> Self {
        Self {
            code_dim: STRUCTURE_VECTOR_DIM,
            every: 3,
            validation_fraction: 0.3,
            purge_ms: 24 * 3_600_000,
            max_train_rows: 24_000,
            epochs: 12,
            regimes: 5,
            novelty_quantile: 0.99,
            seed: 7,
        }
    }
}

/// One feature vector of one symbol at one entry-bar close.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRow {
    pub at: TimestampMs,
    pub row: [f32; SCHEMA_LEN],
}

/// The feature vector after every `every`-th entry bar of `bars` (the replay of `dataset::replay`
/// without the strategy: the three timeframes merged by close time, higher ones first at equal times).
pub fn collect_rows(bars: &SymbolBars, every: usize) -> Result<Vec<FeatureRow>, DatasetError> {
    let config = AnalysisConfig::default();
    let analysis_error = |source| DatasetError::Analysis {
        symbol: bars.symbol.clone(),
        source,
    };
    let mut analysis = SymbolAnalysis::new(&config).map_err(analysis_error)?;
    analysis.reserve(bars.entry.len());
    let every = every.max(1);
    let mut out = Vec::with_capacity(bars.entry.len() / every + 1);
    let mut row = [0.0_f32; SCHEMA_LEN];
    for closed in bars.in_close_order(&config) {
        let bar = closed.bar;
        analysis
            .on_closed_bar(closed.interval, bar)
            .map_err(analysis_error)?;
        // Rows before every timeframe has warmed up are mostly zeros; the higher timeframe's indicator
        // set tells when its slowest window is full.
        if closed.entry_index.is_some_and(|index| index % every == 0)
            && analysis
                .timeframe(Role::Higher)
                .indicators()
                .latest()
                .macd
                .is_some()
            && feature_vector(&analysis, &mut row)
        {
            out.push(FeatureRow {
                at: bar.close_time,
                row,
            });
        }
    }
    Ok(out)
}

/// Training and validation indices of rows split by time: validation from the time at the
/// `1 − fraction` quantile on, training strictly before that time less `purge_ms`.
pub fn split_rows(
    times: &[TimestampMs],
    fraction: f64,
    purge_ms: i64,
) -> Option<(Vec<usize>, Vec<usize>, TimestampMs)> {
    if times.is_empty() || !(fraction > 0.0 && fraction < 1.0) {
        return None;
    }
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    let cut = ((sorted.len() as f64) * (1.0 - fraction)).floor() as usize;
    let start = sorted[cut.min(sorted.len() - 1)];
    let train = (0..times.len())
        .filter(|&i| times[i] < start - purge_ms)
        .collect();
    let validation = (0..times.len()).filter(|&i| times[i] >= start).collect();
    Some((train, validation, start))
}

/// k-means result: `k` centroids of width `dim`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KMeans {
    pub dim: usize,
    pub centroids: Vec<Vec<f32>>,
}

fn distance_sq(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(a, b)| (a - b) * (a - b)).sum()
}

impl KMeans {
    /// Seeded k-means++ initialisation, then Lloyd iterations until no assignment changes (at most
    /// `iterations`). Deterministic for a seed. An empty cluster is re-seeded at the row farthest from
    /// its centroid.
    pub fn fit(rows: &[f32], dim: usize, k: usize, iterations: usize, seed: u64) -> Option<Self> {
        let n = rows.len().checked_div(dim)?;
        if k == 0 || n < k {
            return None;
        }
        let row = |i: usize| &rows[i * dim..(i + 1) * dim];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut centroids: Vec<Vec<f32>> = vec![row(rng.random_range(0..n)).to_vec()];
        let mut nearest: Vec<f32> = (0..n).map(|i| distance_sq(row(i), &centroids[0])).collect();
        while centroids.len() < k {
            let total: f64 = nearest.iter().map(|&d| f64::from(d)).sum();
            let pick = if total > 0.0 {
                let mut target = rng.random_range(0.0..total);
                let mut chosen = n - 1;
                for (i, &d) in nearest.iter().enumerate() {
                    target -= f64::from(d);
                    if target < 0.0 {
                        chosen = i;
                        break;
                    }
                }
                chosen
            } else {
                rng.random_range(0..n)
            };
            centroids.push(row(pick).to_vec());
            let last = &centroids[centroids.len() - 1];
            for (i, d) in nearest.iter_mut().enumerate() {
                *d = d.min(distance_sq(row(i), last));
            }
        }
        let mut model = Self { dim, centroids };
        let mut assignment = vec![usize::MAX; n];
        for _ in 0..iterations.max(1) {
            let mut changed = false;
            for (i, slot) in assignment.iter_mut().enumerate() {
                let c = model.assign(row(i));
                if *slot != c {
                    *slot = c;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
            let mut sums = vec![vec![0.0_f64; dim]; k];
            let mut counts = vec![0_usize; k];
            for (i, &c) in assignment.iter().enumerate() {
                counts[c] += 1;
                for (s, &v) in sums[c].iter_mut().zip(row(i)) {
                    *s += f64::from(v);
                }
            }
            let old = model.centroids.clone();
            for ((centroid, sum), &count) in model.centroids.iter_mut().zip(&sums).zip(&counts) {
                if count == 0 {
                    let far = (0..n)
                        .max_by(|&a, &b| {
                            let da = distance_sq(row(a), &old[assignment[a]]);
                            let db = distance_sq(row(b), &old[assignment[b]]);
                            da.total_cmp(&db)
                        })
                        .unwrap_or(0);
                    *centroid = row(far).to_vec();
                } else {
                    *centroid = sum.iter().map(|s| (s / count as f64) as f32).collect();
                }
            }
        }
        Some(model)
    }

    /// The nearest centroid's index (ties: the lower index).
    pub fn assign(&self, code: &[f32]) -> usize {
        let mut best = (0, f32::INFINITY);
        for (c, centroid) in self.centroids.iter().enumerate() {
            let d = distance_sq(code, centroid);
            if d < best.1 {
                best = (c, d);
            }
        }
        best.0
    }
}

/// One regime of the table: its centroid's index, its name, and what its training members looked like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Regime {
    pub name: String,
    /// Share of training rows in it.
    pub share: f64,
    /// Members' mean higher-timeframe distance to the EMA 21, in ATR (the trend direction).
    pub trend: f64,
    /// Members' mean setup-timeframe ATR % over the training mean (the volatility level).
    pub volatility_ratio: f64,
}

/// Index of a feature by name.
fn feature(name: &str) -> usize {
    SCHEMA.iter().position(|s| s.name == name).unwrap_or(0)
}

/// Names a cluster from its members' mean raw features: the trend direction from the higher timeframe's
/// distance to its EMA 21 (in ATR), the volatility from the setup timeframe's ATR % relative to all
/// training rows.
pub fn regime_name(trend: f64, volatility_ratio: f64) -> String {
    let trend = if trend > 0.5 {
        "trend up"
    } else if trend < -0.5 {
        "trend down"
    } else {
        "range"
    };
    let vol = if volatility_ratio > 1.25 {
        "high vol"
    } else if volatility_ratio < 0.8 {
        "low vol"
    } else {
        "normal vol"
    };
    format!("{trend} · {vol}")
}

/// Validation metrics of the autoencoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StructureMetrics {
    /// Mean squared reconstruction error per feature, standardised units, training rows.
    pub train_error: f64,
    /// The same on the validation rows.
    pub validation_error: f64,
    /// Predicting the training mean for every feature (the bar to beat), validation rows.
    pub baseline_error: f64,
    /// Share of validation rows above the novelty threshold (≈ 1 − quantile if validation looks like
    /// training).
    pub validation_novel_share: f64,
}

/// The card `structure.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StructureCard {
    pub model: String,
    pub version: String,
    pub created: String,
    pub perpdesk_version: String,
    pub feature_schema_hash: String,
    pub feature_dimension: usize,
    pub code_dim: usize,
    pub encoder_file: String,
    pub encoder_sha256: String,
    pub autoencoder_file: String,
    pub autoencoder_sha256: String,
    /// The autoencoder's output is in these standardised units: `(raw − mean) / std`.
    pub standardizer: Standardizer,
    pub novelty_threshold: f64,
    pub novelty_quantile: f64,
    pub kmeans: KMeans,
    pub regimes: Vec<Regime>,
    pub params: StructureParams,
    pub train: RowRange,
    pub validation: RowRange,
    pub metrics: StructureMetrics,
    pub command: String,
}

/// A time range of rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowRange {
    pub from_ms: i64,
    pub to_ms: i64,
    pub rows: usize,
}

/// What the structure model says about one feature vector.
#[derive(Debug, Clone, PartialEq)]
pub struct StructureReading {
    pub code: Vec<f32>,
    pub regime: usize,
    /// Mean squared reconstruction error per feature (standardised units).
    pub error: f32,
    pub novel: bool,
}

/// The trained model: encoder and autoencoder networks with their card.
#[derive(Debug, Clone)]
pub struct StructureModel {
    pub encoder: Mlp,
    pub autoencoder: Mlp,
    pub card: StructureCard,
}

impl StructureModel {
    /// Reads one feature vector: its code, regime, reconstruction error and novelty (native forward).
    pub fn read(&self, row: &[f32; SCHEMA_LEN]) -> Result<StructureReading, MlError> {
        let mut code = vec![0.0; self.card.code_dim];
        self.encoder.forward(row, &mut code)?;
        let mut recon = [0.0_f32; SCHEMA_LEN];
        self.autoencoder.forward(row, &mut recon)?;
        let error = self.error(row, &recon);
        Ok(StructureReading {
            regime: self.card.kmeans.assign(&code),
            code,
            error,
            novel: f64::from(error) > self.card.novelty_threshold,
        })
    }

    /// Mean squared error between a raw row (standardised here) and a reconstruction in standardised units.
    pub fn error(&self, raw: &[f32], reconstruction: &[f32]) -> f32 {
        let s = &self.card.standardizer;
        let sum: f32 = raw
            .iter()
            .zip(reconstruction)
            .zip(s.mean.iter().zip(&s.std))
            .map(|((x, r), (m, sd))| {
                let d = (x - m) / sd - r;
                d * d
            })
            .sum();
        sum / SCHEMA_LEN as f32
    }

    /// The regime's name, `"?"` for an index outside the table.
    pub fn regime_name(&self, regime: usize) -> &str {
        self.card.regimes.get(regime).map_or("?", |r| r.name.as_str())
    }

    /// Writes the two ONNX files and the card (hashes set from the bytes).
    pub fn save(&mut self, dir: &Path) -> Result<Vec<PathBuf>, MlError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let encoder = self.encoder.onnx_bytes("structure_encoder");
        let autoencoder = self.autoencoder.onnx_bytes("structure_autoencoder");
        self.card.encoder_sha256 = sha256_hex(&encoder);
        self.card.autoencoder_sha256 = sha256_hex(&autoencoder);
        ENCODER_FILE.clone_into(&mut self.card.encoder_file);
        AUTOENCODER_FILE.clone_into(&mut self.card.autoencoder_file);
        let paths = [
            dir.join(ENCODER_FILE),
            dir.join(AUTOENCODER_FILE),
            dir.join(CARD_FILE),
        ];
        write_atomic(&paths[0], &encoder)?;
        write_atomic(&paths[1], &autoencoder)?;
        let json = serde_json::to_vec_pretty(&self.card).map_err(|e| card_error(&paths[2], e.to_string()))?;
        write_atomic(&paths[2], &json)?;
        Ok(paths.to_vec())
    }

    /// Loads the card and both files, refusing a card for another feature schema and a file whose
    /// SHA-256 differs from the card's.
    pub fn load(dir: &Path) -> Result<Self, MlError> {
        let card_path = dir.join(CARD_FILE);
        let card: StructureCard = serde_json::from_slice(&fs::read(&card_path).map_err(io(&card_path))?)
            .map_err(|e| card_error(&card_path, e.to_string()))?;
        if card.feature_schema_hash != ModelCard::expected_feature_schema_hash()
            || card.feature_dimension != SCHEMA_LEN
            || card.standardizer.width() != SCHEMA_LEN
            || card.regimes.len() != card.kmeans.centroids.len()
        {
            return Err(card_error(
                &card_path,
                format!(
                    "trained for feature schema {}, this build has {}: retrain with `perpdesk train`",
                    card.feature_schema_hash,
                    ModelCard::expected_feature_schema_hash()
                ),
            ));
        }
        let mut nets = Vec::new();
        for (file, sha) in [
            (&card.encoder_file, &card.encoder_sha256),
            (&card.autoencoder_file, &card.autoencoder_sha256),
        ] {
            let bytes = read_model_file(dir, file, sha, &card_path)?;
            nets.push(Mlp::from_onnx(&bytes)?);
        }
        let autoencoder = nets
            .pop()
            .ok_or_else(|| MlError::Format("no autoencoder".into()))?;
        let encoder = nets.pop().ok_or_else(|| MlError::Format("no encoder".into()))?;
        if encoder.inputs() != SCHEMA_LEN
            || encoder.outputs() != card.code_dim
            || card.kmeans.dim != card.code_dim
            || autoencoder.inputs() != SCHEMA_LEN
            || autoencoder.outputs() != SCHEMA_LEN
        {
            return Err(card_error(&card_path, "the files' shapes do not match the card"));
        }
        Ok(Self {
            encoder,
            autoencoder,
            card,
        })
    }

    /// The encoder file in tract (the reload check).
    pub fn encoder_tract(&self) -> Result<TractModel, MlError> {
        TractModel::from_bytes(
            &self.encoder.onnx_bytes("structure_encoder"),
            SCHEMA_LEN,
            0,
            self.card.code_dim,
        )
    }

    /// The autoencoder file in tract (the reload check).
    pub fn autoencoder_tract(&self) -> Result<TractModel, MlError> {
        TractModel::from_bytes(
            &self.autoencoder.onnx_bytes("structure_autoencoder"),
            SCHEMA_LEN,
            0,
            SCHEMA_LEN,
        )
    }

    /// The encoder for the console's structure task: ONNX Runtime when loaded, else tract.
    pub fn encoder_model(&self) -> Result<Arc<dyn Model>, MlError> {
        let runtime = super::onnxruntime::loaded();
        let bytes = self.encoder.onnx_bytes("structure_encoder");
        onnx_model(&bytes, SCHEMA_LEN, 0, self.card.code_dim, runtime.as_deref()).map(Arc::from)
    }

    /// The autoencoder for the console's structure task: ONNX Runtime when loaded, else tract.
    pub fn autoencoder_model(&self) -> Result<Arc<dyn Model>, MlError> {
        let runtime = super::onnxruntime::loaded();
        let bytes = self.autoencoder.onnx_bytes("structure_autoencoder");
        onnx_model(&bytes, SCHEMA_LEN, 0, SCHEMA_LEN, runtime.as_deref()).map(Arc::from)
    }
}

/// The model the console uses, or `None` with one log line (no model yet, or one this build refuses).
pub fn load_for_console(dir: &Path) -> Option<Arc<StructureModel>> {
    if !dir.join(CARD_FILE).exists() {
        tracing::info!(dir = %dir.display(), "no structure model (run `perpdesk train`): no regime column");
        return None;
    }
    match StructureModel::load(dir) {
        Ok(model) => {
            tracing::info!(version = %model.card.version, regimes = model.card.regimes.len(), "structure model loaded");
            Some(Arc::new(model))
        }
        Err(error) => {
            tracing::warn!(%error, "structure model refused: no regime column");
            None
        }
    }
}

/// `perpdesk train`'s step: trains on `rows`, writes the files into `out`, reports each step.
pub fn train_and_save(
    rows: &[FeatureRow],
    out: &Path,
    command: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<StructureModel, MlError> {
    progress(&format!("structure autoencoder: {} feature rows", rows.len()));
    let mut model = train(rows, &StructureParams::default(), command, progress)?;
    let paths = model.save(out)?;
    progress(&format!(
        "wrote {}",
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(model)
}

fn quantile(values: &mut [f32], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_unstable_by(f32::total_cmp);
    let index = ((values.len() - 1) as f64 * q).round() as usize;
    f64::from(values[index.min(values.len() - 1)])
}

/// Per-row mean squared error between `a` and `b` (rows of `width`).
fn row_errors(a: &[f32], b: &[f32], width: usize) -> Vec<f32> {
    a.chunks_exact(width)
        .zip(b.chunks_exact(width))
        .map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>() / width as f32)
        .collect()
}

/// Trains the structure model on `rows` (any order) and fills its card (files are not written: see
/// [`StructureModel::save`]).
pub fn train(
    rows: &[FeatureRow],
    params: &StructureParams,
    command: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<StructureModel, MlError> {
    let times: Vec<TimestampMs> = rows.iter().map(|r| r.at).collect();
    let (mut train_idx, validation_idx, start) =
        split_rows(&times, params.validation_fraction, params.purge_ms)
            .ok_or_else(|| MlError::Shape("no feature rows to train the structure model on".into()))?;
    if train_idx.len() < params.regimes * 10 || validation_idx.is_empty() {
        return Err(MlError::Shape(format!(
            "{} training and {} validation feature rows: too few for the structure model",
            train_idx.len(),
            validation_idx.len()
        )));
    }
    if train_idx.len() > params.max_train_rows {
        let step = train_idx.len() as f64 / params.max_train_rows as f64;
        train_idx = (0..params.max_train_rows)
            .map(|i| train_idx[(i as f64 * step) as usize])
            .collect();
    }
    let gather = |idx: &[usize]| -> Vec<f32> { idx.iter().flat_map(|&i| rows[i].row).collect() };
    let raw_train = gather(&train_idx);
    let raw_validation = gather(&validation_idx);
    let standardizer = Standardizer::fit(&raw_train, SCHEMA_LEN);
    let (mut x_train, mut x_validation) = (raw_train.clone(), raw_validation.clone());
    standardizer.apply(&mut x_train);
    standardizer.apply(&mut x_validation);
    // Standardised values can be large on heavy-tailed features; clipping the targets keeps one spike
    // from dominating the squared error (the inputs stay as they are, so ONNX needs no clip).
    let target: Vec<f32> = x_train.iter().map(|v| v.clamp(-6.0, 6.0)).collect();

    let sizes = [SCHEMA_LEN, HIDDEN, params.code_dim, HIDDEN, SCHEMA_LEN];
    let mut trainer = Trainer::new(
        Mlp::seeded(&sizes, params.seed)?,
        AdamParams {
            learning_rate: 2e-3,
            ..AdamParams::default()
        },
    );
    let fit_params = FitParams {
        epochs: params.epochs,
        batch: 64,
        loss: Loss::MeanSquared,
        seed: params.seed,
    };
    let epochs = params.epochs;
    fit(
        &mut trainer,
        &x_train,
        &target,
        None,
        &fit_params,
        &mut |epoch, loss| {
            if epoch + 1 == epochs || epoch % 4 == 0 {
                progress(&format!(
                    "structure autoencoder: epoch {}/{epochs}, loss {:.4}",
                    epoch + 1,
                    loss * 2.0 / SCHEMA_LEN as f64
                ));
            }
        },
    )?;
    let net = trainer.into_mlp()?;

    // Errors in standardised units, from the network on standardised rows.
    let predict = |net: &Mlp, x: &[f32], width: usize| -> Result<Vec<f32>, MlError> {
        let mut out = vec![0.0; x.len() / SCHEMA_LEN * width];
        net.forward(x, &mut out)?;
        Ok(out)
    };
    let mut train_errors = row_errors(&predict(&net, &x_train, SCHEMA_LEN)?, &x_train, SCHEMA_LEN);
    let validation_errors = row_errors(
        &predict(&net, &x_validation, SCHEMA_LEN)?,
        &x_validation,
        SCHEMA_LEN,
    );
    let mean_of = |v: &[f32]| v.iter().map(|&e| f64::from(e)).sum::<f64>() / v.len().max(1) as f64;
    let train_error = mean_of(&train_errors);
    let validation_error = mean_of(&validation_errors);
    let baseline_error = mean_of(&row_errors(
        &x_validation,
        &vec![0.0; x_validation.len()],
        SCHEMA_LEN,
    ));
    let novelty_threshold = quantile(&mut train_errors, params.novelty_quantile);
    let validation_novel_share = validation_errors
        .iter()
        .filter(|&&e| f64::from(e) > novelty_threshold)
        .count() as f64
        / validation_errors.len() as f64;

    let layers = net.into_layers();
    let encoder = standardizer.fold_input(Mlp::new(layers[..2].to_vec())?)?;
    let autoencoder = standardizer.fold_input(Mlp::new(layers)?)?;

    // Regimes: k-means over the training codes, named from the members' raw features.
    let codes = predict(&encoder, &raw_train, params.code_dim)?;
    let kmeans = KMeans::fit(&codes, params.code_dim, params.regimes, 100, params.seed)
        .ok_or_else(|| MlError::Shape("too few rows for the regimes".into()))?;
    let (trend_i, vol_i) = (feature("tf2.ema21_dist"), feature("tf1.atr_pct"));
    let overall_vol = raw_train
        .chunks_exact(SCHEMA_LEN)
        .map(|r| f64::from(r[vol_i]))
        .sum::<f64>()
        / train_idx.len() as f64;
    let mut sums = vec![(0.0_f64, 0.0_f64, 0_usize); params.regimes];
    for (code, raw) in codes
        .chunks_exact(params.code_dim)
        .zip(raw_train.chunks_exact(SCHEMA_LEN))
    {
        let s = &mut sums[kmeans.assign(code)];
        s.0 += f64::from(raw[trend_i]);
        s.1 += f64::from(raw[vol_i]);
        s.2 += 1;
    }
    let regimes: Vec<Regime> = sums
        .iter()
        .map(|&(trend, vol, count)| {
            let n = count.max(1) as f64;
            let (trend, ratio) = (
                trend / n,
                if overall_vol > 0.0 {
                    vol / n / overall_vol
                } else {
                    1.0
                },
            );
            Regime {
                name: regime_name(trend, ratio),
                share: count as f64 / train_idx.len() as f64,
                trend,
                volatility_ratio: ratio,
            }
        })
        .collect();
    let range = |idx: &[usize]| RowRange {
        from_ms: idx.iter().map(|&i| rows[i].at).min().unwrap_or(0),
        to_ms: idx.iter().map(|&i| rows[i].at).max().unwrap_or(0),
        rows: idx.len(),
    };
    progress(&format!(
        "structure autoencoder: validation error {validation_error:.4} vs mean baseline {baseline_error:.4} (train {train_error:.4}); novelty above {novelty_threshold:.4}; {} regimes: {}",
        regimes.len(),
        regimes
            .iter()
            .map(|r| format!("{} {:.0}%", r.name, r.share * 100.0))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let now = time::OffsetDateTime::now_utc();
    let card = StructureCard {
        model: "structure".into(),
        version: format!("structure-{}", now.unix_timestamp()),
        created: now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        perpdesk_version: env!("CARGO_PKG_VERSION").into(),
        feature_schema_hash: ModelCard::expected_feature_schema_hash(),
        feature_dimension: SCHEMA_LEN,
        code_dim: params.code_dim,
        encoder_file: String::new(),
        encoder_sha256: String::new(),
        autoencoder_file: String::new(),
        autoencoder_sha256: String::new(),
        standardizer,
        novelty_threshold,
        novelty_quantile: params.novelty_quantile,
        kmeans,
        regimes,
        params: *params,
        train: range(&train_idx),
        validation: RowRange {
            from_ms: start,
            ..range(&validation_idx)
        },
        metrics: StructureMetrics {
            train_error,
            validation_error,
            baseline_error,
            validation_novel_share,
        },
        command: command.to_owned(),
    };
    Ok(StructureModel {
        encoder,
        autoencoder,
        card,
    })
}

/// A small structure model trained on synthetic rows, for other modules' tests.
#[cfg(test)]
#[allow(clippy::expect_used)]
pub(crate) fn model_for_tests() -> StructureModel {
    train(&tests::synthetic(1_000, 5), &tests::small(), "test", &mut |_| {}).expect("trains")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    /// Rows from a few latent factors (so an autoencoder can compress them), times one hour apart.
    pub(crate) fn synthetic(n: usize, seed: u64) -> Vec<FeatureRow> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mixing: Vec<f32> = (0..4 * SCHEMA_LEN).map(|_| rng.random_range(-1.0..1.0)).collect();
        (0..n)
            .map(|t| {
                let z: [f32; 4] = std::array::from_fn(|_| rng.random_range(-1.0..1.0));
                let mut row = [0.0_f32; SCHEMA_LEN];
                for (j, slot) in row.iter_mut().enumerate() {
                    *slot = (0..4).map(|k| z[k] * mixing[k * SCHEMA_LEN + j]).sum::<f32>()
                        + rng.random_range(-0.05..0.05);
                }
                FeatureRow {
                    at: t as i64 * 3_600_000,
                    row,
                }
            })
            .collect()
    }

    pub(crate) fn small() -> StructureParams {
        StructureParams {
            epochs: 15,
            regimes: 4,
            purge_ms: 2 * 3_600_000,
            ..StructureParams::default()
        }
    }

    #[test]
    fn split_keeps_validation_rows_out_of_training() {
        let times: Vec<i64> = (0..100).map(|t| t * 10).collect();
        let (train, validation, start) = split_rows(&times, 0.3, 25).unwrap();
        assert_eq!(start, 700);
        assert_eq!(validation, (70..100).collect::<Vec<_>>());
        assert_eq!(*train.last().unwrap(), 67);
        assert!(train.iter().all(|&i| times[i] < start - 25));
        assert!(split_rows(&times, 0.0, 0).is_none());
    }

    #[test]
    fn kmeans_finds_separable_blobs_deterministically() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let centres = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]];
        let mut rows = Vec::new();
        let mut truth = Vec::new();
        for i in 0..300 {
            let c = i % 3;
            truth.push(c);
            rows.push(centres[c][0] + rng.random_range(-1.0_f32..1.0));
            rows.push(centres[c][1] + rng.random_range(-1.0_f32..1.0));
        }
        let a = KMeans::fit(&rows, 2, 3, 50, 11).unwrap();
        let b = KMeans::fit(&rows, 2, 3, 50, 11).unwrap();
        assert_eq!(a, b);
        // Every blob maps to one cluster, and different blobs to different clusters.
        let mut map = [usize::MAX; 3];
        for (i, &c) in truth.iter().enumerate() {
            let got = a.assign(&rows[i * 2..i * 2 + 2]);
            if map[c] == usize::MAX {
                map[c] = got;
            }
            assert_eq!(map[c], got);
        }
        assert!(map[0] != map[1] && map[1] != map[2] && map[0] != map[2]);
        for (c, centre) in centres.iter().enumerate() {
            assert!(distance_sq(&a.centroids[map[c]], centre) < 0.1);
        }
    }

    #[test]
    fn regime_names_read_trend_and_volatility() {
        assert_eq!(regime_name(1.0, 1.5), "trend up · high vol");
        assert_eq!(regime_name(-0.8, 0.5), "trend down · low vol");
        assert_eq!(regime_name(0.0, 1.0), "range · normal vol");
    }

    #[test]
    fn autoencoder_beats_the_mean_flags_novelty_and_reloads() {
        let rows = synthetic(3_000, 5);
        let mut model = train(&rows, &small(), "test", &mut |_| {}).unwrap();
        let m = &model.card.metrics;
        assert!(m.validation_error < 0.5 * m.baseline_error, "{m:?}");
        // An out-of-distribution row (every feature far outside the training range) is novel; typical
        // training rows are not.
        let far = [25.0_f32; SCHEMA_LEN];
        assert!(model.read(&far).unwrap().novel);
        let typical = rows.iter().filter(|r| !model.read(&r.row).unwrap().novel).count();
        assert!(typical as f64 > 0.95 * rows.len() as f64);
        assert_eq!(model.card.regimes.len(), 4);

        // Reload: files written, read back, and equal in tract to the native forward pass.
        let dir = tempfile::tempdir().unwrap();
        model.save(dir.path()).unwrap();
        let loaded = StructureModel::load(dir.path()).unwrap();
        // (f64 shares may lose their last digit through JSON; the f32 tables round-trip exactly.)
        assert_eq!(loaded.card.version, model.card.version);
        assert_eq!(loaded.card.kmeans, model.card.kmeans);
        assert_eq!(loaded.card.standardizer, model.card.standardizer);
        let probe: Vec<f32> = rows.iter().take(32).flat_map(|r| r.row).collect();
        for (net, tract) in [
            (&loaded.encoder, loaded.encoder_tract().unwrap()),
            (&loaded.autoencoder, loaded.autoencoder_tract().unwrap()),
        ] {
            let mut a = vec![0.0; 32 * net.outputs()];
            let mut b = a.clone();
            net.forward(&probe, &mut a).unwrap();
            tract.predict(&probe, &mut b).unwrap();
            let worst = a.iter().zip(&b).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(worst < 1e-5, "{worst}");
        }
        // Folded standardisation: the encoder on raw rows equals the trained net on standardised rows,
        // which `read` matches through the same files.
        assert_eq!(loaded.read(&far).unwrap(), model.read(&far).unwrap());

        // An altered file is refused.
        let path = dir.path().join(ENCODER_FILE);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert!(StructureModel::load(dir.path()).is_err());
    }
}
