//! The feature discovery network: which of the predictor's inputs, and which pairwise interactions of
//! them, carry signal about a candidate's outcome.
//!
//! Why a gated MLP: every input passes through a learned gate (`z = g ⊙ x`, standardised `x`) before an
//! ordinary MLP; an L1 penalty on the gates (applied as a proximal step, so a useless gate reaches
//! exactly 0) makes the network pay for every input it uses, so the surviving gates name the inputs
//! that carry signal. A gate alone can be large on an input the next layer ignores, so the ranking score
//! is `|gate| × ‖first-layer column‖₂` (how strongly the network reads the gated input). The ranking is
//! checked against model-agnostic permutation importance on the validation split (the rise in log loss
//! when one column is shuffled); their Spearman correlation is in the card.
//!
//! Inputs: the 42 predictor inputs (feature vector + signal context, `predictor::INPUTS`) followed by
//! [`INTERACTIONS`], products of two raw inputs. The features are direction-free (a rising market reads
//! the same for a long and a short), so most candidates pair the side (±1) with a directional feature;
//! the rest pair volatility with the candidate's stop and quality. Data and split are the signal
//! predictor's (the same labelled candidates, the same walk-forward split with purge, the same quality
//! weights).
//!
//! Promotion (`ml.feature_discovery_rate`): the top `ceil(rate × inputs)` of the ranking are the
//! "promoted" discoveries, recorded in the card and shown in the console. The promoted *interactions*
//! ([`promoted_interactions`]; the promoted base inputs are already in the predictor's set) enter the
//! signal predictor as derived inputs (`predictor::DerivedInputs`, computed from the base row): `perpdesk
//! train` trains this network first and keeps them if the predictor's validation log loss with them is
//! no worse than without (`ml::train`; both numbers are in the predictor's card).
//!
//! Export: `feature_discovery.onnx` takes the raw extended row ([`extended_row`]) and gives the logit of
//! P(take profit); the standardisation and the gates are folded into the first layer.

use std::{
    fs,
    path::{Path, PathBuf},
};

use rand::{SeedableRng, seq::SliceRandom};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::files::{card_error, io, read_model_file, write_atomic};
use super::{
    MlError,
    dataset::Sample,
    metrics,
    mlp::Mlp,
    nn::{AdamParams, Loss, Standardizer, Trainer, sigmoid},
    predictor::{CONTEXT, INPUTS, ModelCard, sha256_hex},
    runtime::TractModel,
};
use crate::features::{SCHEMA, SCHEMA_LEN};

/// The model file.
pub const MODEL_FILE: &str = "feature_discovery.onnx";
/// Its card.
pub const CARD_FILE: &str = "feature_discovery.json";

/// Candidate interactions: products of two raw predictor inputs, by name.
pub const INTERACTIONS: [(&str, &str); 16] = [
    ("ctx.side", "tf0.log_return"),
    ("ctx.side", "tf0.rsi"),
    ("ctx.side", "tf0.macd_hist"),
    ("ctx.side", "tf0.bb_pct_b"),
    ("ctx.side", "tf0.vwap_dist"),
    ("ctx.side", "tf1.di_spread"),
    ("ctx.side", "tf1.ema21_dist"),
    ("ctx.side", "tf2.di_spread"),
    ("ctx.side", "tf2.ema21_dist"),
    ("ctx.side", "tf2.macd_hist"),
    ("ctx.side", "x.trend_alignment"),
    ("ctx.stop_pct", "tf0.atr_pct"),
    ("ctx.stop_pct", "tf1.realised_vol"),
    ("ctx.quality", "tf1.adx"),
    ("ctx.reward_risk", "tf0.atr_pct"),
    ("ctx.quality", "ctx.reward_risk"),
];

/// Inputs of the discovery network: the predictor's, then the interactions.
pub const WIDTH: usize = INPUTS + INTERACTIONS.len();

/// Name of predictor input `i`.
fn input_name(i: usize) -> &'static str {
    if i < SCHEMA_LEN {
        SCHEMA[i].name
    } else {
        CONTEXT[i - SCHEMA_LEN]
    }
}

fn input_index(name: &str) -> usize {
    (0..INPUTS).find(|&i| input_name(i) == name).unwrap_or(0)
}

/// Every input's name, interactions as `a×b`.
pub fn names() -> Vec<String> {
    (0..INPUTS)
        .map(|i| input_name(i).to_owned())
        .chain(INTERACTIONS.iter().map(|(a, b)| format!("{a}×{b}")))
        .collect()
}

/// The promoted entries of `card` that are interactions (`a×b`), in ranking order: the predictor's
/// candidate derived inputs.
pub fn promoted_interactions(card: &DiscoveryCard) -> Vec<String> {
    card.promoted
        .iter()
        .filter(|name| name.contains(super::predictor::PRODUCT))
        .cloned()
        .collect()
}

/// The discovery network's row from a predictor row: the 42 values, then each interaction's product.
pub fn extended_row(row: &[f32; INPUTS], out: &mut [f32; WIDTH]) {
    out[..INPUTS].copy_from_slice(row);
    for (k, (a, b)) in INTERACTIONS.iter().enumerate() {
        out[INPUTS + k] = row[input_index(a)] * row[input_index(b)];
    }
}

/// How the gated network trains.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GateParams {
    pub hidden: usize,
    pub epochs: usize,
    pub batch: usize,
    pub learning_rate: f32,
    /// L1 strength on the gates, in units of Adam's normalised step: each step shrinks every gate
    /// towards 0 by `learning_rate × l1`, so a gate survives only while the loss pushes it out more
    /// consistently than that (noise gates, whose gradient changes sign, settle at 0).
    pub l1: f32,
    /// Shuffles per column for the permutation importance.
    pub permutation_repeats: usize,
    pub seed: u64,
}

impl Default for GateParams {
    fn default() -> Self {
        Self {
            hidden: 16,
            epochs: 30,
            batch: 32,
            learning_rate: 3e-3,
            l1: 0.5,
            permutation_repeats: 5,
            seed: 17,
        }
    }
}

/// A trained gated network: standardiser, gates, the MLP after them.
#[derive(Debug, Clone)]
pub struct Gated {
    pub standardizer: Standardizer,
    pub gates: Vec<f32>,
    pub net: Mlp,
}

impl Gated {
    /// `|gate| × ‖first-layer column‖₂` per input.
    pub fn scores(&self) -> Vec<f32> {
        let first = &self.net.layers()[0];
        (0..first.inputs)
            .map(|j| {
                let norm = (0..first.outputs)
                    .map(|o| first.weights[o * first.inputs + j].powi(2))
                    .sum::<f32>()
                    .sqrt();
                self.gates[j].abs() * norm
            })
            .collect()
    }

    /// The network on raw rows: gates folded into the first layer, then the standardisation.
    pub fn export(&self) -> Result<Mlp, MlError> {
        let mut layers = self.net.clone().into_layers();
        let first = &mut layers[0];
        for o in 0..first.outputs {
            for (w, g) in first.weights[o * first.inputs..(o + 1) * first.inputs]
                .iter_mut()
                .zip(&self.gates)
            {
                *w *= g;
            }
        }
        self.standardizer.fold_input(Mlp::new(layers)?)
    }
}

/// Trains the gated network on raw rows `x` (`rows × width`), labels `y` in {0, 1} and weights `w`:
/// Adam on the MLP and the gates, BCE on the logit, then a proximal L1 step on the gates.
#[allow(clippy::many_single_char_names)] // x, y, w, m, v, g: the names of the maths
pub fn train_gated(
    x: &[f32],
    y: &[f32],
    w: &[f32],
    width: usize,
    params: &GateParams,
    progress: &mut dyn FnMut(&str),
) -> Result<Gated, MlError> {
    let rows = x.len() / width.max(1);
    if rows == 0 || x.len() != rows * width || y.len() != rows || w.len() != rows || params.batch == 0 {
        return Err(MlError::Shape(format!(
            "{} values, {} labels, {} weights for rows of {width}",
            x.len(),
            y.len(),
            w.len()
        )));
    }
    let standardizer = Standardizer::fit(x, width);
    let mut xs = x.to_vec();
    standardizer.apply(&mut xs);
    for v in &mut xs {
        *v = v.clamp(-6.0, 6.0);
    }
    let adam = AdamParams {
        learning_rate: params.learning_rate,
        weight_decay: 2e-2,
        ..AdamParams::default()
    };
    let mut trainer = Trainer::new(
        Mlp::seeded(&[width, params.hidden, params.hidden / 2, 1], params.seed)?,
        adam,
    );
    let mut gates = vec![1.0_f32; width];
    let (mut m, mut v) = (vec![0.0_f32; width], vec![0.0_f32; width]);
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let mut order: Vec<usize> = (0..rows).collect();
    let (mut bz, mut bx, mut by, mut bw, mut grad) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut gate_grad = vec![0.0_f32; width];
    let mut t = 0_i32;
    for epoch in 0..params.epochs {
        order.shuffle(&mut rng);
        let (mut sum, mut count) = (0.0, 0.0);
        for chunk in order.chunks(params.batch) {
            bx.clear();
            bz.clear();
            by.clear();
            bw.clear();
            for &r in chunk {
                let row = &xs[r * width..(r + 1) * width];
                bx.extend_from_slice(row);
                bz.extend(row.iter().zip(&gates).map(|(x, g)| x * g));
                by.push(y[r]);
                bw.push(w[r]);
            }
            if bw.iter().all(|&w| w <= 0.0) {
                continue;
            }
            trainer.forward(&bz)?;
            let loss = trainer.loss(&by, Some(&bw), Loss::BinaryCrossEntropy, &mut grad)?;
            let dz = trainer.backward(&grad)?;
            gate_grad.fill(0.0);
            for (dz_row, x_row) in dz.chunks_exact(width).zip(bx.chunks_exact(width)) {
                for ((g, d), x) in gate_grad.iter_mut().zip(dz_row).zip(x_row) {
                    *g += d * x;
                }
            }
            trainer.apply()?;
            // Adam on the gates, then the proximal step of the L1 penalty (soft threshold).
            t += 1;
            let (b1, b2) = (adam.beta1, adam.beta2);
            let (c1, c2) = (1.0 - b1.powi(t.min(1 << 20)), 1.0 - b2.powi(t.min(1 << 20)));
            let shrink = params.learning_rate * params.l1;
            for (((gate, m), v), &gg) in gates.iter_mut().zip(&mut m).zip(&mut v).zip(&gate_grad) {
                *m = b1 * *m + (1.0 - b1) * gg;
                *v = b2 * *v + (1.0 - b2) * gg * gg;
                let step = (*m / c1) / ((*v / c2).sqrt() + adam.epsilon);
                let g = *gate - params.learning_rate * step;
                *gate = g.signum() * (g.abs() - shrink).max(0.0);
            }
            sum += loss * chunk.len() as f64;
            count += chunk.len() as f64;
        }
        if epoch % 10 == 0 || epoch + 1 == params.epochs {
            let open = gates.iter().filter(|g| **g != 0.0).count();
            progress(&format!(
                "feature discovery: epoch {}/{}, loss {:.4}, {open}/{width} gates open",
                epoch + 1,
                params.epochs,
                if count > 0.0 { sum / count } else { 0.0 }
            ));
        }
    }
    Ok(Gated {
        standardizer,
        gates,
        net: trainer.into_mlp()?,
    })
}

/// Probabilities of `model` (raw rows → logit) on `x`.
fn probabilities(model: &Mlp, x: &[f32]) -> Result<Vec<f32>, MlError> {
    let mut out = vec![0.0; x.len() / model.inputs()];
    model.forward(x, &mut out)?;
    Ok(out.into_iter().map(sigmoid).collect())
}

/// Permutation importance per column: the mean rise in log loss over `repeats` seeded shuffles of that
/// column among the rows of `x` (raw rows of the exported network).
pub fn permutation_importance(
    model: &Mlp,
    x: &[f32],
    y: &[f32],
    repeats: usize,
    seed: u64,
) -> Result<Vec<f64>, MlError> {
    let width = model.inputs();
    let rows = x.len() / width;
    let base = metrics::log_loss(&probabilities(model, x)?, y);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut shuffled = x.to_vec();
    let mut order: Vec<usize> = (0..rows).collect();
    let mut out = Vec::with_capacity(width);
    for j in 0..width {
        let mut rise = 0.0;
        for _ in 0..repeats.max(1) {
            order.shuffle(&mut rng);
            for (r, &from) in order.iter().enumerate() {
                shuffled[r * width + j] = x[from * width + j];
            }
            rise += metrics::log_loss(&probabilities(model, &shuffled)?, y) - base;
        }
        for r in 0..rows {
            shuffled[r * width + j] = x[r * width + j];
        }
        out.push(rise / repeats.max(1) as f64);
    }
    Ok(out)
}

/// Ranks (average ranks for ties), 0-based.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut out = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0;
        for &k in &order[i..=j] {
            out[k] = rank;
        }
        i = j + 1;
    }
    out
}

/// Spearman rank correlation (`None` when either side is constant).
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    (va > 0.0 && vb > 0.0).then(|| cov / (va * vb).sqrt())
}

/// One input in the ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Discovery {
    pub name: String,
    pub gate: f32,
    /// `|gate| × ‖first-layer column‖₂`.
    pub score: f32,
    /// Rise in validation log loss when the column is shuffled.
    pub permutation_importance: f64,
    pub promoted: bool,
}

/// Validation metrics of the discovery network (its job is the ranking; these show it learnt).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveryMetrics {
    pub auc: Option<f64>,
    pub log_loss: f64,
    pub baseline_log_loss: f64,
    /// Spearman correlation of the gate ranking with the permutation importance (validation split).
    pub rank_correlation: Option<f64>,
    pub open_gates: usize,
}

/// The card `feature_discovery.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveryCard {
    pub model: String,
    pub version: String,
    pub created: String,
    pub perpdesk_version: String,
    pub file: String,
    pub sha256: String,
    pub feature_schema_hash: String,
    pub input_hash: String,
    /// Raw extended rows: the predictor's inputs then the interaction products; the output is a logit.
    pub inputs: Vec<String>,
    pub params: GateParams,
    pub discovery_rate: f64,
    /// Sorted by score, best first.
    pub ranking: Vec<Discovery>,
    pub promoted: Vec<String>,
    pub train_samples: usize,
    pub validation_samples: usize,
    pub validation_from_ms: i64,
    pub purge_ms: i64,
    pub metrics: DiscoveryMetrics,
    pub command: String,
}

/// The trained discovery model: the exported network and its card.
#[derive(Debug, Clone)]
pub struct DiscoveryModel {
    pub net: Mlp,
    pub card: DiscoveryCard,
}

impl DiscoveryModel {
    pub fn onnx_bytes(&self) -> Vec<u8> {
        self.net.onnx_bytes("feature_discovery")
    }

    /// Writes the ONNX file and the card (its `sha256` set from the bytes).
    pub fn save(&mut self, dir: &Path) -> Result<(PathBuf, PathBuf), MlError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let bytes = self.onnx_bytes();
        self.card.sha256 = sha256_hex(&bytes);
        MODEL_FILE.clone_into(&mut self.card.file);
        let (model_path, card_path) = (dir.join(MODEL_FILE), dir.join(CARD_FILE));
        write_atomic(&model_path, &bytes)?;
        let json =
            serde_json::to_vec_pretty(&self.card).map_err(|e| card_error(&card_path, e.to_string()))?;
        write_atomic(&card_path, &json)?;
        Ok((model_path, card_path))
    }

    /// Loads the card and the file, refusing another input layout or a file that does not match the
    /// card's SHA-256. The network is read back from the file's weights.
    pub fn load(dir: &Path) -> Result<Self, MlError> {
        let card_path = dir.join(CARD_FILE);
        let card: DiscoveryCard = serde_json::from_slice(&fs::read(&card_path).map_err(io(&card_path))?)
            .map_err(|e| card_error(&card_path, e.to_string()))?;
        if card.feature_schema_hash != ModelCard::expected_feature_schema_hash()
            || card.input_hash != ModelCard::expected_input_hash()
            || card.inputs != names()
        {
            return Err(card_error(
                &card_path,
                "trained for another input layout: retrain with `perpdesk train`",
            ));
        }
        let bytes = read_model_file(dir, &card.file, &card.sha256, &card_path)?;
        let net = Mlp::from_onnx(&bytes)?;
        if net.inputs() != WIDTH || net.outputs() != 1 {
            return Err(card_error(&card_path, "the file's shape does not match the card"));
        }
        Ok(Self { net, card })
    }

    /// The file in tract (the reload check).
    pub fn tract(&self) -> Result<TractModel, MlError> {
        TractModel::from_bytes(&self.onnx_bytes(), WIDTH, 0, 1)
    }
}

/// The card for the console, or `None` with one log line (the ranking is then hidden).
pub fn load_for_console(dir: &Path) -> Option<DiscoveryCard> {
    if !dir.join(CARD_FILE).exists() {
        tracing::info!(dir = %dir.display(), "no feature discovery model (run `perpdesk train`): no ranking");
        return None;
    }
    match DiscoveryModel::load(dir) {
        Ok(model) => Some(model.card),
        Err(error) => {
            tracing::warn!(%error, "feature discovery model refused: no ranking");
            None
        }
    }
}

/// Trains on `samples[train]`, ranks on `samples[validation]`, promotes the top `ceil(rate × inputs)`,
/// writes the file and the card into `out`.
#[allow(clippy::too_many_arguments)] // the signal predictor's split, passed through as it is
pub fn train_and_save(
    samples: &[Sample],
    train: &[usize],
    validation: &[usize],
    validation_from_ms: i64,
    purge_ms: i64,
    rate: f64,
    out: &Path,
    command: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<DiscoveryModel, MlError> {
    let params = GateParams::default();
    let gather = |idx: &[usize]| {
        let mut x = Vec::with_capacity(idx.len() * WIDTH);
        let mut row = [0.0_f32; WIDTH];
        for &i in idx {
            extended_row(&samples[i].row, &mut row);
            x.extend_from_slice(&row);
        }
        let y: Vec<f32> = idx.iter().map(|&i| samples[i].label()).collect();
        let w: Vec<f32> = idx.iter().map(|&i| samples[i].weight()).collect();
        (x, y, w)
    };
    let (x, y, w) = gather(train);
    let (vx, vy, _) = gather(validation);
    let mut model = fit_and_rank(&x, &y, &w, &vx, &vy, rate, &params, progress)?;
    model.card.validation_from_ms = validation_from_ms;
    model.card.purge_ms = purge_ms;
    command.clone_into(&mut model.card.command);
    let (model_path, card_path) = model.save(out)?;
    progress(&format!(
        "feature discovery: AUC {}, log loss {:.4} (baseline {:.4}); gate ranking vs permutation importance: Spearman {}; promoted: {}",
        model
            .card
            .metrics
            .auc
            .map_or_else(|| "n/a".into(), |a| format!("{a:.3}")),
        model.card.metrics.log_loss,
        model.card.metrics.baseline_log_loss,
        model
            .card
            .metrics
            .rank_correlation
            .map_or_else(|| "n/a".into(), |r| format!("{r:+.2}")),
        model.card.promoted.join(", ")
    ));
    progress(&format!(
        "wrote {} and {}",
        model_path.display(),
        card_path.display()
    ));
    Ok(model)
}

/// Training, ranking and the card (without file names, hashes, split times or command) for rows of
/// [`WIDTH`]; separate from the samples so the tests can use a set where the answer is known.
#[allow(clippy::too_many_arguments)]
pub fn fit_and_rank(
    x: &[f32],
    y: &[f32],
    w: &[f32],
    vx: &[f32],
    vy: &[f32],
    rate: f64,
    params: &GateParams,
    progress: &mut dyn FnMut(&str),
) -> Result<DiscoveryModel, MlError> {
    fit_and_rank_named(x, y, w, vx, vy, rate, params, &names(), progress)
}

#[allow(clippy::too_many_arguments)]
fn fit_and_rank_named(
    x: &[f32],
    y: &[f32],
    w: &[f32],
    vx: &[f32],
    vy: &[f32],
    rate: f64,
    params: &GateParams,
    names: &[String],
    progress: &mut dyn FnMut(&str),
) -> Result<DiscoveryModel, MlError> {
    let width = names.len();
    if vx.is_empty() || vx.len() != vy.len() * width {
        return Err(MlError::Shape(
            "no validation rows for the feature discovery".into(),
        ));
    }
    let gated = train_gated(x, y, w, width, params, progress)?;
    let net = gated.export()?;
    let p = probabilities(&net, vx)?;
    let train_rate = y.iter().sum::<f32>() / y.len().max(1) as f32;
    let importance = permutation_importance(&net, vx, vy, params.permutation_repeats, params.seed)?;
    let scores = gated.scores();
    let rank_correlation = spearman(
        &scores.iter().map(|&s| f64::from(s)).collect::<Vec<_>>(),
        &importance,
    );
    let promote = ((rate.clamp(0.0, 1.0) * width as f64).ceil() as usize).min(width);
    let mut order: Vec<usize> = (0..width).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let ranking: Vec<Discovery> = order
        .iter()
        .enumerate()
        .map(|(rank, &j)| Discovery {
            name: names[j].clone(),
            gate: gated.gates[j],
            score: scores[j],
            permutation_importance: importance[j],
            promoted: rank < promote && scores[j] > 0.0,
        })
        .collect();
    let now = time::OffsetDateTime::now_utc();
    let card = DiscoveryCard {
        model: "feature_discovery".into(),
        version: format!("feature_discovery-{}", now.unix_timestamp()),
        created: now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        perpdesk_version: env!("CARGO_PKG_VERSION").into(),
        file: String::new(),
        sha256: String::new(),
        feature_schema_hash: ModelCard::expected_feature_schema_hash(),
        input_hash: ModelCard::expected_input_hash(),
        inputs: names.to_vec(),
        params: *params,
        discovery_rate: rate,
        promoted: ranking
            .iter()
            .filter(|d| d.promoted)
            .map(|d| d.name.clone())
            .collect(),
        ranking,
        train_samples: y.len(),
        validation_samples: vy.len(),
        validation_from_ms: 0,
        purge_ms: 0,
        metrics: DiscoveryMetrics {
            auc: metrics::auc(&p, vy),
            log_loss: metrics::log_loss(&p, vy),
            baseline_log_loss: metrics::log_loss(&vec![train_rate; vy.len()], vy),
            rank_correlation,
            open_gates: gated.gates.iter().filter(|g| **g != 0.0).count(),
        },
        command: String::new(),
    };
    Ok(DiscoveryModel { net, card })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
#[allow(clippy::many_single_char_names)] // x, y, w: rows, labels, weights as in the code under test
mod tests {
    use rand::Rng;

    use super::*;

    /// Rows of 10 noise inputs where the label depends on input 2 and on the product of inputs 5 and 6
    /// (given as input 9, the "interaction"): the answer the network must find.
    fn known(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let mut row: [f32; 10] = std::array::from_fn(|_| rng.random_range(-1.0..1.0));
            row[9] = row[5] * row[6];
            let logit = 3.0 * row[2] + 8.0 * row[9];
            y.push(f32::from(u8::from(rng.random_range(0.0..1.0) < sigmoid(logit))));
            x.extend_from_slice(&row);
        }
        (x, y)
    }

    #[test]
    fn finds_the_informative_input_and_interaction() {
        let (x, y) = known(3_000, 1);
        let (vx, vy) = known(1_500, 2);
        let w = vec![1.0; y.len()];
        let names: Vec<String> = (0..10).map(|i| format!("x{i}")).collect();
        let params = GateParams {
            epochs: 30,
            ..GateParams::default()
        };
        let model = fit_and_rank_named(&x, &y, &w, &vx, &vy, 0.2, &params, &names, &mut |_| {}).unwrap();
        let top: Vec<&str> = model.card.ranking[..2].iter().map(|d| d.name.as_str()).collect();
        assert!(
            top.contains(&"x2") && top.contains(&"x9"),
            "{:?}",
            model.card.ranking
        );
        assert_eq!(model.card.promoted.len(), 2);
        // Permutation importance agrees: the same two lead it.
        let mut by_importance = model.card.ranking.clone();
        by_importance.sort_by(|a, b| b.permutation_importance.total_cmp(&a.permutation_importance));
        let top: Vec<&str> = by_importance[..2].iter().map(|d| d.name.as_str()).collect();
        assert!(top.contains(&"x2") && top.contains(&"x9"), "{by_importance:?}");
        assert!(
            model.card.metrics.rank_correlation.unwrap() > 0.3,
            "{:?}",
            model.card.metrics
        );
        assert!(model.card.metrics.log_loss < model.card.metrics.baseline_log_loss);
        // Noise inputs end with small gates next to the informative ones.
        let noise = model.card.ranking[2..]
            .iter()
            .map(|d| d.score)
            .fold(0.0, f32::max);
        assert!(
            noise < 0.5 * model.card.ranking[1].score,
            "{:?}",
            model.card.ranking
        );
    }

    #[test]
    fn export_folds_gates_and_standardisation() {
        let (x, y) = known(500, 3);
        let w = vec![1.0; y.len()];
        let params = GateParams {
            epochs: 3,
            ..GateParams::default()
        };
        let gated = train_gated(&x, &y, &w, 10, &params, &mut |_| {}).unwrap();
        let net = gated.export().unwrap();
        let rows = &x[..10 * 32];
        let mut z = rows.to_vec();
        gated.standardizer.apply(&mut z);
        for (v, g) in z.iter_mut().zip(gated.gates.iter().cycle()) {
            *v *= g;
        }
        let (mut a, mut b) = (vec![0.0; 32], vec![0.0; 32]);
        gated.net.forward(&z, &mut a).unwrap();
        net.forward(rows, &mut b).unwrap();
        for (a, b) in a.iter().zip(&b) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn spearman_of_monotone_and_reversed_orders() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((spearman(&a, &[10.0, 20.0, 30.0, 40.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &[4.0, 3.0, 2.0, 1.0]).unwrap() + 1.0).abs() < 1e-12);
        assert!(spearman(&a, &[1.0; 4]).is_none());
    }

    #[test]
    fn extended_rows_multiply_the_named_inputs() {
        let mut row = [0.0_f32; INPUTS];
        for (i, v) in row.iter_mut().enumerate() {
            *v = i as f32;
        }
        let mut out = [0.0_f32; WIDTH];
        extended_row(&row, &mut out);
        let side = input_index("ctx.side");
        assert_eq!(side, SCHEMA_LEN);
        assert_eq!(out[INPUTS], row[side] * row[input_index("tf0.log_return")]);
        assert_eq!(names().len(), WIDTH);
        // Every interaction names real inputs.
        for (a, b) in INTERACTIONS {
            assert_eq!(input_name(input_index(a)), a);
            assert_eq!(input_name(input_index(b)), b);
        }
    }

    #[test]
    fn written_file_reloads_and_tract_equals_native() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let x: Vec<f32> = (0..400 * WIDTH).map(|_| rng.random_range(-1.0..1.0)).collect();
        let y: Vec<f32> = x
            .chunks_exact(WIDTH)
            .map(|r| f32::from(u8::from(r[3] > 0.0)))
            .collect();
        let w = vec![1.0; y.len()];
        let params = GateParams {
            epochs: 2,
            permutation_repeats: 1,
            ..GateParams::default()
        };
        let mut model = fit_and_rank(
            &x,
            &y,
            &w,
            &x[..100 * WIDTH],
            &y[..100],
            0.1,
            &params,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(model.card.promoted.len(), 6);
        let dir = tempfile::tempdir().unwrap();
        model.save(dir.path()).unwrap();
        let loaded = DiscoveryModel::load(dir.path()).unwrap();
        assert_eq!(loaded.net, model.net);
        let tract = loaded.tract().unwrap();
        let probe = &x[..32 * WIDTH];
        let (mut a, mut b) = (vec![0.0; 32], vec![0.0; 32]);
        loaded.net.forward(probe, &mut a).unwrap();
        crate::ml::runtime::Model::predict(&tract, probe, &mut b).unwrap();
        let worst = a.iter().zip(&b).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-5, "{worst}");
        let path = dir.path().join(MODEL_FILE);
        let mut bytes = fs::read(&path).unwrap();
        bytes[10] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert!(DiscoveryModel::load(dir.path()).is_err());
    }
}
