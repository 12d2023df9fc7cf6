//! The liquidity prediction model: the probability that price trades through the nearest unswept
//! liquidity pool above (buy-side, equal highs) or below (sell-side, equal lows) within the next
//! [`LiquidityConfig::horizon_bars`] entry bars.
//!
//! Why: resting stops above equal highs and below equal lows are where price tends to be drawn; the ICT
//! rules only know *where* the pools are, this model estimates *how likely* each side is to be run soon,
//! from the same feature vector the signal predictor sees plus the pool's geometry. One model serves
//! both sides (the side is an input), so each side learns from the other's samples.
//!
//! The dataset is causal by construction. Each symbol's bars are replayed through [`SymbolAnalysis`] in
//! the order `dataset::replay` uses (by close time, higher timeframes first at equal close times); at
//! every [`LiquidityConfig::stride`]-th entry bar the pools are read from the analysis *as it is after
//! that bar* ([`live_rows`], the same function the engine can call live). For each side the nearest
//! unswept pool of that side's direction over the three timeframes is taken (above: bullish pools with a
//! level above the close; below: bearish pools with a level below it; ties go to the lower timeframe).
//! The label ([`label`]) looks only at the `K` entry bars strictly after the decision bar: 1 if one of
//! them reaches the level (`high >= level` above, `low <= level` below). A sample whose `K` bars are not
//! all in the data is dropped (unresolved), never guessed, so the last `K` bars of each symbol add none.
//! Its `resolved_at` is the close of the horizon's last bar, which is what the walk-forward purge
//! compares: no training horizon reaches into the validation period.
//!
//! Input layout ([`INPUTS`] values): the 32 entries of `features::SCHEMA`, then [`CONTEXT`]: the side
//! (+1 above, −1 below), the distance from the close to the level in entry ATR(14)s (capped at 50) and
//! in percent of the close (capped at 20), the pool's timeframe (0 entry, 1 setup, 2 higher), its age in
//! hours since its first member (capped at 720), and how many unswept pools lie on that side (all
//! timeframes). The pool's touch count is not an input: `analysis::Pool` does not carry its member
//! count. [`input_hash`] pins the layout in the card; [`LiquidityModel::load`] refuses another layout,
//! another model name or a file whose SHA-256 differs from the card's.

use std::{
    collections::VecDeque,
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::{Deserialize, Serialize};

use super::files::{card_error, read, read_model_file, write_atomic};
use super::{
    MlError,
    dataset::{self, DatasetError, SymbolBars},
    gbdt::{self, Dataset, GbdtParams},
    metrics, onnx,
    onnxruntime::{OnnxRuntime, OrtModel},
    predictor::{CalibrationBin, Range, sha256_hex},
    runtime::{Backend, Model, NativeTrees, TractModel},
    train::{self, TrainConfig, TrainError},
    trees::TreeEnsemble,
};
use crate::{
    domain::{Bar, TimestampMs},
    features::{SCHEMA, SCHEMA_LEN, schema_hash},
    smc::Direction,
    strategy::{AnalysisConfig, Role, SymbolAnalysis, analysis::Pool},
};

/// File name of the model in the models directory.
pub const MODEL_FILE: &str = "liquidity.onnx";
/// File name of its card.
pub const CARD_FILE: &str = "liquidity.json";
/// The card's `model` name.
pub const MODEL_NAME: &str = "liquidity";

/// Default label horizon `K`: 48 five-minute bars (4 h).
pub const DEFAULT_HORIZON_BARS: usize = 48;
/// Default sampling stride: every 3rd entry bar (every 15 minutes). Neighbouring 5m bars share almost
/// all of their horizon, so every bar would add near-duplicates, not information, and triple the size.
pub const DEFAULT_STRIDE: usize = 3;

/// The context entries after the feature vector, in order.
pub const CONTEXT: [&str; 6] = [
    "liq.side",
    "liq.distance_atr",
    "liq.distance_pct",
    "liq.timeframe",
    "liq.age_hours",
    "liq.pools_on_side",
];

/// Values per input row: the feature vector, then [`CONTEXT`].
pub const INPUTS: usize = SCHEMA_LEN + CONTEXT.len();

/// Caps of the context values (a far or old pool is simply "far" or "old").
const MAX_DISTANCE_ATR: f64 = 50.0;
const MAX_DISTANCE_PCT: f64 = 20.0;
const MAX_AGE_HOURS: f64 = 720.0;

/// Which pool a sample is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolSide {
    /// Buy-side liquidity above the close (a bullish pool: equal highs).
    Above,
    /// Sell-side liquidity below the close (a bearish pool: equal lows).
    Below,
}

impl PoolSide {
    pub const BOTH: [Self; 2] = [Self::Above, Self::Below];

    fn direction(self) -> Direction {
        match self {
            Self::Above => Direction::Bullish,
            Self::Below => Direction::Bearish,
        }
    }

    fn sign(self) -> f32 {
        match self {
            Self::Above => 1.0,
            Self::Below => -1.0,
        }
    }

    /// Whether `level` is on this side of `close`.
    fn beyond(self, close: f64, level: f64) -> bool {
        match self {
            Self::Above => level > close,
            Self::Below => level < close,
        }
    }
}

/// What the training run of the liquidity model uses (part of `TrainConfig`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiquidityConfig {
    /// Label horizon `K` in entry-timeframe bars.
    pub horizon_bars: usize,
    /// A sample at every `stride`-th entry bar (by index in the loaded series).
    pub stride: usize,
    pub params: GbdtParams,
}

impl Default for LiquidityConfig {
    fn default() -> Self {
        Self {
            horizon_bars: DEFAULT_HORIZON_BARS,
            stride: DEFAULT_STRIDE,
            params: GbdtParams::default(),
        }
    }
}

/// The pool chosen for one side at a decision bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolPick {
    pub side: PoolSide,
    pub role: Role,
    pub level: f64,
    /// Time since the pool's first member, in ms.
    pub age_ms: i64,
    /// Unswept pools of this side beyond the close, over all timeframes (this one included).
    pub pools_on_side: usize,
}

fn role_code(role: Role) -> f32 {
    match role {
        Role::Entry => 0.0,
        Role::Setup => 1.0,
        Role::Higher => 2.0,
    }
}

/// The nearest unswept pool on each side of `close` (`[above, below]`) among `pools` (timeframe, age in
/// ms, pool). Above takes bullish pools with a level above the close, below bearish ones with a level
/// below it; at equal distance the first one wins (callers list the lower timeframes first).
pub fn nearest<'a>(
    close: f64,
    pools: impl IntoIterator<Item = (Role, i64, &'a Pool)>,
) -> [Option<PoolPick>; 2] {
    let mut picks: [Option<PoolPick>; 2] = [None, None];
    let mut counts = [0_usize; 2];
    for (role, age_ms, pool) in pools {
        if pool.swept_at.is_some() || !pool.level.is_finite() {
            continue;
        }
        for (slot, side) in PoolSide::BOTH.into_iter().enumerate() {
            if pool.direction != side.direction() || !side.beyond(close, pool.level) {
                continue;
            }
            counts[slot] += 1;
            let closer = picks[slot].is_none_or(|p| (pool.level - close).abs() < (p.level - close).abs());
            if closer {
                picks[slot] = Some(PoolPick {
                    side,
                    role,
                    level: pool.level,
                    age_ms,
                    pools_on_side: 0,
                });
            }
        }
    }
    for (pick, count) in picks.iter_mut().zip(counts) {
        if let Some(pick) = pick {
            pick.pools_on_side = count;
        }
    }
    picks
}

/// Writes the [`CONTEXT`] values of `pick` into `out` (length `CONTEXT.len()`); `atr` is the entry
/// timeframe's ATR(14) at the decision.
pub fn context(pick: &PoolPick, close: f64, atr: f64, out: &mut [f32]) {
    let distance = (pick.level - close).abs();
    let distance_atr = if atr > 0.0 {
        (distance / atr).min(MAX_DISTANCE_ATR)
    } else {
        MAX_DISTANCE_ATR
    };
    let distance_pct = if close > 0.0 {
        (distance / close * 100.0).min(MAX_DISTANCE_PCT)
    } else {
        MAX_DISTANCE_PCT
    };
    let values = [
        f64::from(pick.side.sign()),
        distance_atr,
        distance_pct,
        f64::from(role_code(pick.role)),
        (pick.age_ms as f64 / 3_600_000.0).clamp(0.0, MAX_AGE_HOURS),
        pick.pools_on_side as f64,
    ];
    for (slot, value) in out.iter_mut().zip(values) {
        *slot = if value.is_finite() { value as f32 } else { 0.0 };
    }
}

/// The model's rows for `analysis` now, `[above, below]`: the pool picked for each side and its input
/// row, or `None` for a side without an unswept pool, and both `None` while the feature vector or the
/// entry ATR is not yet available. Allocates nothing: the engine can call it on every closed entry bar.
pub fn live_rows(analysis: &SymbolAnalysis) -> [Option<(PoolPick, [f32; INPUTS])>; 2] {
    let mut features = [0.0_f32; SCHEMA_LEN];
    let entry = analysis.entry();
    let (Some(bar), Some(atr)) = (entry.last_bar(), entry.indicators().latest().atr14) else {
        return [None, None];
    };
    if !dataset::feature_vector(analysis, &mut features) {
        return [None, None];
    }
    let close = bar.close;
    let pools = Role::ALL.into_iter().flat_map(|role| {
        let state = analysis.timeframe(role);
        let last = state.last_index().unwrap_or(0);
        let step = state.interval().fixed_millis().unwrap_or(0);
        state
            .liquidity_pools()
            .iter()
            .map(move |pool| (role, last.saturating_sub(pool.row) as i64 * step, pool))
    });
    nearest(close, pools).map(|pick| {
        pick.map(|pick| {
            let mut row = [0.0_f32; INPUTS];
            row[..SCHEMA_LEN].copy_from_slice(&features);
            context(&pick, close, atr, &mut row[SCHEMA_LEN..]);
            (pick, row)
        })
    })
}

/// The label from the bars strictly after the decision: whether one of the first `horizon` of `after`
/// reaches `level` on `side`, or `None` when fewer than `horizon` bars follow (unresolved).
pub fn label(side: PoolSide, level: f64, after: &[Bar], horizon: usize) -> Option<bool> {
    if horizon == 0 || after.len() < horizon {
        return None;
    }
    Some(after[..horizon].iter().any(|bar| match side {
        PoolSide::Above => bar.high >= level,
        PoolSide::Below => bar.low <= level,
    }))
}

/// For every bar `t`, the highest high and lowest low of bars `t+1 ..= t+horizon` (`None` when the data
/// ends first), by a sliding window over monotone deques: O(n) for the whole series where [`label`] per
/// bar is O(n·K). `label(side, level, &bars[t + 1..], horizon)` equals comparing `level` with entry `t`.
pub fn future_extremes(bars: &[Bar], horizon: usize) -> Vec<Option<(f64, f64)>> {
    let mut out = vec![None; bars.len()];
    if horizon == 0 {
        return out;
    }
    let mut highs: VecDeque<usize> = VecDeque::with_capacity(horizon + 1);
    let mut lows: VecDeque<usize> = VecDeque::with_capacity(horizon + 1);
    for j in 1..bars.len() {
        while highs.back().is_some_and(|&b| bars[b].high <= bars[j].high) {
            highs.pop_back();
        }
        highs.push_back(j);
        while lows.back().is_some_and(|&b| bars[b].low >= bars[j].low) {
            lows.pop_back();
        }
        lows.push_back(j);
        if j < horizon {
            continue;
        }
        // The window of decision bar t = j − horizon is t+1 ..= j.
        let t = j - horizon;
        while highs.front().is_some_and(|&f| f <= t) {
            highs.pop_front();
        }
        while lows.front().is_some_and(|&f| f <= t) {
            lows.pop_front();
        }
        if let (Some(&h), Some(&l)) = (highs.front(), lows.front()) {
            out[t] = Some((bars[h].high, bars[l].low));
        }
    }
    out
}

/// Whether a window's extremes reach `level` on `side`.
fn reached(side: PoolSide, level: f64, (high, low): (f64, f64)) -> bool {
    match side {
        PoolSide::Above => high >= level,
        PoolSide::Below => low <= level,
    }
}

/// One labelled decision about one side's pool.
#[derive(Debug, Clone, PartialEq)]
pub struct LiquiditySample {
    pub symbol: String,
    /// Close time of the decision bar.
    pub at: TimestampMs,
    /// Close time of the horizon's last bar (when the label is final).
    pub resolved_at: TimestampMs,
    pub side: PoolSide,
    pub level: f64,
    pub row: [f32; INPUTS],
    /// Whether price reached the pool within the horizon.
    pub swept: bool,
}

impl LiquiditySample {
    pub fn label(&self) -> f32 {
        f32::from(u8::from(self.swept))
    }
}

/// Replay counts for the progress lines and the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiquidityStats {
    /// Entry bars at which a sample was considered (every `stride`-th).
    pub decisions: usize,
    pub samples: usize,
    /// Samples dropped because the horizon ran past the data.
    pub unresolved: usize,
    /// Sides without an unswept pool at a decision.
    pub no_pool: usize,
}

/// Replays one symbol and labels the nearest pool on each side at every `stride`-th entry bar.
pub fn replay(
    bars: &SymbolBars,
    config: &LiquidityConfig,
) -> Result<(Vec<LiquiditySample>, LiquidityStats), DatasetError> {
    let analysis_config = AnalysisConfig::default();
    let analysis_error = |source| DatasetError::Analysis {
        symbol: bars.symbol.clone(),
        source,
    };
    let mut analysis = SymbolAnalysis::new(&analysis_config).map_err(analysis_error)?;
    analysis.reserve(bars.entry.len());
    let stride = config.stride.max(1);
    let extremes = future_extremes(&bars.entry, config.horizon_bars);

    let mut samples = Vec::new();
    let mut stats = LiquidityStats::default();
    for closed in bars.in_close_order(&analysis_config) {
        let bar = closed.bar;
        analysis
            .on_closed_bar(closed.interval, bar)
            .map_err(analysis_error)?;
        let Some(index) = closed.entry_index.filter(|i| i.is_multiple_of(stride)) else {
            continue;
        };
        stats.decisions += 1;
        for picked in live_rows(&analysis) {
            let Some((pick, row)) = picked else {
                stats.no_pool += 1;
                continue;
            };
            let Some(window) = extremes[index] else {
                stats.unresolved += 1;
                continue;
            };
            samples.push(LiquiditySample {
                symbol: bars.symbol.clone(),
                at: bar.close_time,
                resolved_at: bars.entry[index + config.horizon_bars].close_time,
                side: pick.side,
                level: pick.level,
                row,
                swept: reached(pick.side, pick.level, window),
            });
        }
    }
    stats.samples = samples.len();
    Ok((samples, stats))
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
    eat(MODEL_NAME.as_bytes());
    eat(&[0]);
    for name in CONTEXT {
        eat(name.as_bytes());
        eat(&[0]);
    }
    hash
}

fn hex(hash: u64) -> String {
    format!("{hash:#018x}")
}

/// Validation metrics (all on the validation period only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiquidityMetrics {
    /// `None` when the validation period has one class only.
    pub auc: Option<f64>,
    /// AUC within each side's samples.
    pub auc_above: Option<f64>,
    pub auc_below: Option<f64>,
    /// AUC of ranking by the distance in ATRs alone (nearer: more likely): the obvious rule the model
    /// has to beat to be worth its inputs.
    pub auc_distance_only: Option<f64>,
    pub log_loss: f64,
    /// Log loss of always predicting the training base rate (the bar to beat).
    pub baseline_log_loss: f64,
    pub brier: f64,
    pub baseline_brier: f64,
    pub calibration: Vec<CalibrationBin>,
    /// Share of swept samples in training and in validation.
    pub train_base_rate: f64,
    pub validation_base_rate: f64,
}

/// The JSON model card written next to `liquidity.onnx`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiquidityCard {
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
    pub params: GbdtParams,
    /// `K`, in entry bars.
    pub horizon_bars: usize,
    pub stride: usize,
    pub label: String,
    pub train: Range,
    pub validation: Range,
    pub purge_ms: i64,
    pub metrics: LiquidityMetrics,
    pub command: String,
}

impl LiquidityCard {
    pub fn expected_feature_schema_hash() -> String {
        hex(schema_hash(SCHEMA_LEN))
    }

    pub fn expected_input_hash() -> String {
        hex(input_hash())
    }
}

/// The liquidity model, ready to score: the trees (evaluated natively) and their card.
#[derive(Debug, Clone)]
pub struct LiquidityModel {
    native: NativeTrees,
    pub card: LiquidityCard,
}

impl LiquidityModel {
    pub fn new(ensemble: TreeEnsemble, card: LiquidityCard) -> Self {
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
            ("horizon_bars", self.card.horizon_bars.to_string()),
            (
                "inputs",
                [SCHEMA.map(|s| s.name).join(","), CONTEXT.join(",")].join(","),
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v));
        onnx::encode(&onnx::tree_classifier(
            self.ensemble(),
            onnx::PostTransform::Logistic,
            MODEL_NAME,
            &metadata,
        ))
    }

    /// Writes `<dir>/liquidity.onnx` and its card (the card's `sha256` is set from the bytes).
    pub fn save(&mut self, dir: &Path) -> Result<(PathBuf, PathBuf), MlError> {
        fs::create_dir_all(dir).map_err(|source| MlError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
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

    /// Loads `<dir>/liquidity.onnx` with its card, checking the card against the file (SHA-256) and
    /// against this build's input layout.
    pub fn load(dir: &Path) -> Result<Self, MlError> {
        let card_path = dir.join(CARD_FILE);
        let card: LiquidityCard =
            serde_json::from_slice(&read(&card_path)?).map_err(|e| card_error(&card_path, e.to_string()))?;
        if card.model != MODEL_NAME {
            return Err(card_error(
                &card_path,
                format!("a card for model {:?}, not {MODEL_NAME:?}", card.model),
            ));
        }
        if card.feature_schema_hash != LiquidityCard::expected_feature_schema_hash()
            || card.input_hash != LiquidityCard::expected_input_hash()
            || card.inputs != INPUTS
        {
            return Err(card_error(
                &card_path,
                format!(
                    "trained for inputs {} (schema {}), this build feeds {} (schema {}): retrain with `perpdesk train`",
                    card.input_hash,
                    card.feature_schema_hash,
                    LiquidityCard::expected_input_hash(),
                    LiquidityCard::expected_feature_schema_hash()
                ),
            ));
        }
        let bytes = read_model_file(dir, &card.file, &card.sha256, &card_path)?;
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

    /// The same model in tract (the reload check; too slow for the hot path).
    pub fn tract(&self) -> Result<TractModel, MlError> {
        TractModel::from_bytes(&self.onnx_bytes(), INPUTS, 1, 2)
    }

    /// The same model in ONNX Runtime.
    pub fn onnx_runtime(&self, runtime: &OnnxRuntime) -> Result<OrtModel, MlError> {
        runtime.model(&self.onnx_bytes(), INPUTS, 1, 2)
    }

    /// The native model behind the [`Model`] interface (outputs `[1 − p, p]` per row).
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

    /// P(the pool is swept within the horizon) of one row ([`INPUTS`] values).
    pub fn probability(&self, row: &[f32]) -> f32 {
        self.native.ensemble.probability(row)
    }

    /// `[P(above swept), P(below swept)]` for `analysis` now (`None`: no pool on that side, or warm-up).
    pub fn score(&self, analysis: &SymbolAnalysis) -> [Option<f32>; 2] {
        live_rows(analysis).map(|side| side.map(|(_, row)| self.probability(&row)))
    }
}

/// The console's liquidity model from `dir` (`perpdesk train`'s files), with one log line either way:
/// loaded, missing or refused (then the chart shows no sweep odds).
pub fn load_for_console(dir: &Path) -> Option<LiquidityModel> {
    if !dir.join(CARD_FILE).exists() {
        tracing::info!(dir = %dir.display(), "no liquidity model (run `perpdesk train`): no sweep odds");
        return None;
    }
    match LiquidityModel::load(dir) {
        Ok(model) => {
            tracing::info!(version = %model.card.version, "liquidity model loaded: sweep odds on the chart");
            Some(model)
        }
        Err(error) => {
            tracing::warn!(%error, "liquidity model refused: no sweep odds");
            None
        }
    }
}

/// Everything the liquidity part of a training run produced.
#[derive(Debug, Clone)]
pub struct LiquidityOutcome {
    pub model: LiquidityModel,
    pub model_path: PathBuf,
    pub card_path: PathBuf,
    pub stats: LiquidityStats,
}

fn range(samples: &[LiquiditySample], indices: &[usize]) -> Range {
    let from_ms = indices.iter().map(|&i| samples[i].at).min().unwrap_or(0);
    let to_ms = indices.iter().map(|&i| samples[i].at).max().unwrap_or(0);
    Range {
        from_ms,
        to_ms,
        from: train::date(from_ms),
        to: train::date(to_ms),
        samples: indices.len(),
        positives: indices.iter().filter(|&&i| samples[i].swept).count(),
    }
}

/// Validation metrics of `ensemble` on `samples[validation]`; `train_rate` is the training base rate.
pub fn validate(
    ensemble: &TreeEnsemble,
    samples: &[LiquiditySample],
    validation: &[usize],
    train_rate: f64,
) -> LiquidityMetrics {
    let p: Vec<f32> = validation
        .iter()
        .map(|&i| ensemble.probability(&samples[i].row))
        .collect();
    let y: Vec<f32> = validation.iter().map(|&i| samples[i].label()).collect();
    let baseline = vec![train_rate as f32; y.len()];
    let side_auc = |side: PoolSide| {
        let (p, y): (Vec<f32>, Vec<f32>) = validation
            .iter()
            .zip(&p)
            .filter(|(i, _)| samples[**i].side == side)
            .map(|(i, p)| (*p, samples[*i].label()))
            .unzip();
        metrics::auc(&p, &y)
    };
    let nearness: Vec<f32> = validation
        .iter()
        .map(|&i| -samples[i].row[SCHEMA_LEN + 1])
        .collect();
    LiquidityMetrics {
        auc: metrics::auc(&p, &y),
        auc_above: side_auc(PoolSide::Above),
        auc_below: side_auc(PoolSide::Below),
        auc_distance_only: metrics::auc(&nearness, &y),
        log_loss: metrics::log_loss(&p, &y),
        baseline_log_loss: metrics::log_loss(&baseline, &y),
        brier: metrics::brier(&p, &y),
        baseline_brier: metrics::brier(&baseline, &y),
        calibration: metrics::calibration(&p, &y, 10),
        train_base_rate: train_rate,
        validation_base_rate: f64::from(y.iter().sum::<f32>()) / y.len().max(1) as f64,
    }
}

/// Builds the dataset from `bars`, splits it walk-forward with `config`'s validation share and purge gap,
/// trains, validates and writes `liquidity.onnx` + `liquidity.json` into `config.out`.
pub fn train(
    config: &TrainConfig,
    bars: &[SymbolBars],
    progress: &mut dyn FnMut(&str),
) -> Result<LiquidityOutcome, TrainError> {
    let liquidity = &config.liquidity;
    if liquidity.horizon_bars == 0 {
        return Err(TrainError::Config(
            "the liquidity horizon must be at least one bar".into(),
        ));
    }
    let mut samples = Vec::new();
    let mut stats = LiquidityStats::default();
    for symbol in bars {
        let (mut found, s) = replay(symbol, liquidity)?;
        progress(&format!(
            "liquidity {}: {} decisions, {} samples ({} swept), {} unresolved at the end of the data, {} sides without a pool",
            symbol.symbol,
            s.decisions,
            s.samples,
            found.iter().filter(|x| x.swept).count(),
            s.unresolved,
            s.no_pool
        ));
        stats.decisions += s.decisions;
        stats.samples += s.samples;
        stats.unresolved += s.unresolved;
        stats.no_pool += s.no_pool;
        samples.append(&mut found);
    }
    samples.sort_by(|a, b| (a.at, &a.symbol, a.side as u8).cmp(&(b.at, &b.symbol, b.side as u8)));
    let (train_idx, validation, start) = train::walk_forward_split_by(
        &samples,
        |s| (s.at, s.resolved_at),
        config.validation_fraction,
        config.purge_ms,
    )
    .ok_or_else(|| TrainError::TooLittle("no labelled liquidity samples".into()))?;
    if train_idx.len() < 20 || validation.len() < 10 {
        return Err(TrainError::TooLittle(format!(
            "{} training and {} validation liquidity samples (need 20 and 10)",
            train_idx.len(),
            validation.len()
        )));
    }
    progress(&format!(
        "liquidity split: {} training samples resolved before {}, {} validation samples from {}",
        train_idx.len(),
        train::date(start - config.purge_ms),
        validation.len(),
        train::date(start)
    ));
    let mut x = Vec::with_capacity(train_idx.len() * INPUTS);
    let mut y = Vec::with_capacity(train_idx.len());
    for &i in &train_idx {
        x.extend_from_slice(&samples[i].row);
        y.push(samples[i].label());
    }
    let w = vec![1.0_f32; y.len()];
    let ensemble = gbdt::train(
        &Dataset {
            inputs: INPUTS,
            x: &x,
            y: &y,
            w: &w,
        },
        &liquidity.params,
    )?;
    let train_rate = f64::from(y.iter().sum::<f32>()) / y.len() as f64;
    progress(&format!(
        "liquidity: trained {} trees ({} nodes) on {} rows",
        ensemble.tree_count(),
        ensemble.node_count(),
        train_idx.len()
    ));
    let metrics = validate(&ensemble, &samples, &validation, train_rate);
    let now = time::OffsetDateTime::now_utc();
    let card = LiquidityCard {
        model: MODEL_NAME.into(),
        version: format!("{MODEL_NAME}-{}", now.unix_timestamp()),
        created: now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        file: String::new(),
        sha256: String::new(),
        perpdesk_version: env!("CARGO_PKG_VERSION").into(),
        feature_schema_hash: LiquidityCard::expected_feature_schema_hash(),
        feature_dimension: SCHEMA_LEN,
        context: CONTEXT.iter().map(|s| (*s).to_owned()).collect(),
        input_hash: LiquidityCard::expected_input_hash(),
        inputs: INPUTS,
        trees: ensemble.tree_count(),
        nodes: ensemble.node_count(),
        params: liquidity.params,
        horizon_bars: liquidity.horizon_bars,
        stride: liquidity.stride.max(1),
        label: format!(
            "1 if one of the {} entry bars strictly after the decision reaches the nearest unswept pool of the side (above: high >= level of the nearest bullish pool over the close; below: low <= level of the nearest bearish pool under it); samples whose horizon runs past the data are dropped",
            liquidity.horizon_bars
        ),
        train: range(&samples, &train_idx),
        validation: range(&samples, &validation),
        purge_ms: config.purge_ms,
        metrics,
        command: config.command.clone(),
    };
    let mut model = LiquidityModel::new(ensemble, card);
    let (model_path, card_path) = model.save(&config.out)?;
    Ok(LiquidityOutcome {
        model,
        model_path,
        card_path,
        stats,
    })
}

fn show(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.3}"))
}

/// The liquidity model's part of the `perpdesk train` report.
pub fn report(outcome: &LiquidityOutcome) -> String {
    use std::fmt::Write as _;
    let card = &outcome.model.card;
    let m = &card.metrics;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "liquidity model {}: {} trees, {} inputs, P(nearest pool swept within {} entry bars), a sample every {} bars",
        card.version, card.trees, card.inputs, card.horizon_bars, card.stride
    );
    let _ = writeln!(
        out,
        "train      {} .. {}  {} samples, {} swept",
        card.train.from, card.train.to, card.train.samples, card.train.positives
    );
    let _ = writeln!(
        out,
        "validation {} .. {}  {} samples, {} swept",
        card.validation.from, card.validation.to, card.validation.samples, card.validation.positives
    );
    let _ = writeln!(
        out,
        "AUC {} (above {}, below {}; distance alone {})  log loss {:.4} (base-rate baseline {:.4})  Brier {:.4} (baseline {:.4})  base rate train {:.3} validation {:.3}",
        show(m.auc),
        show(m.auc_above),
        show(m.auc_below),
        show(m.auc_distance_only),
        m.log_loss,
        m.baseline_log_loss,
        m.brier,
        m.baseline_brier,
        m.train_base_rate,
        m.validation_base_rate
    );
    metrics::write_calibration(&mut out, &m.calibration);
    let _ = writeln!(
        out,
        "wrote {} and {}",
        outcome.model_path.display(),
        outcome.card_path.display()
    );
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ml::trees::Node;

    fn bar(i: i64, low: f64, high: f64) -> Bar {
        let close = f64::midpoint(low, high);
        Bar {
            open_time: i * 300_000,
            close_time: i * 300_000 + 299_999,
            open: close,
            high,
            low,
            close,
            volume: 1.0,
            quote_volume: close,
            trades: 1,
            closed: true,
        }
    }

    #[test]
    fn the_label_uses_only_bars_after_the_decision() {
        // Decision at bar 0. A pool above at 105: bar 0 itself trades through it, bars 1..=3 do not.
        let at_decision = [
            bar(0, 99.0, 106.0),
            bar(1, 99.0, 101.0),
            bar(2, 99.0, 102.0),
            bar(3, 99.0, 101.0),
        ];
        assert_eq!(label(PoolSide::Above, 105.0, &at_decision[1..], 3), Some(false));
        assert_eq!(future_extremes(&at_decision, 3)[0], Some((102.0, 99.0)));
        assert!(!reached(
            PoolSide::Above,
            105.0,
            future_extremes(&at_decision, 3)[0].unwrap()
        ));
        // The same with the sweep one bar later (t + 1): swept.
        let next = [
            bar(0, 99.0, 101.0),
            bar(1, 99.0, 106.0),
            bar(2, 99.0, 102.0),
            bar(3, 99.0, 101.0),
        ];
        assert_eq!(label(PoolSide::Above, 105.0, &next[1..], 3), Some(true));
        assert!(reached(
            PoolSide::Above,
            105.0,
            future_extremes(&next, 3)[0].unwrap()
        ));
        // Below: a low at the level counts (`<=`), one tick above does not; the last bar of the horizon
        // counts, the one after it does not.
        let below = [
            bar(0, 90.0, 101.0),
            bar(1, 96.0, 101.0),
            bar(2, 95.0, 101.0),
            bar(3, 94.0, 101.0),
        ];
        assert_eq!(label(PoolSide::Below, 95.0, &below[1..], 2), Some(true));
        assert_eq!(label(PoolSide::Below, 94.5, &below[1..], 2), Some(false));
        assert_eq!(label(PoolSide::Below, 94.5, &below[1..], 3), Some(true));
        assert_eq!(future_extremes(&below, 2)[0], Some((101.0, 95.0)));
    }

    #[test]
    fn a_horizon_past_the_data_is_unresolved() {
        let bars: Vec<Bar> = (0..5).map(|i| bar(i, 99.0, 101.0 + i as f64)).collect();
        // K = 3: decisions 0 and 1 have three later bars; 2, 3, 4 do not, even where a later bar would
        // already have swept the pool (a short tail never decides the label).
        assert_eq!(label(PoolSide::Above, 103.0, &bars[2..], 3), Some(true));
        assert_eq!(label(PoolSide::Above, 103.0, &bars[3..], 3), None);
        assert_eq!(label(PoolSide::Above, 103.0, &bars[4..], 3), None);
        let extremes = future_extremes(&bars, 3);
        assert_eq!(
            extremes,
            vec![Some((104.0, 99.0)), Some((105.0, 99.0)), None, None, None]
        );
        assert!(future_extremes(&bars, 0).iter().all(Option::is_none));
        assert_eq!(label(PoolSide::Above, 103.0, &bars[1..], 0), None);
    }

    fn pool(direction: Direction, level: f64, row: usize, swept: bool) -> Pool {
        Pool {
            row,
            known_at: row + 3,
            direction,
            level,
            swept_at: swept.then_some(row + 10),
        }
    }

    #[test]
    fn the_nearest_unswept_pool_of_each_side_is_chosen() {
        let pools = [
            (Role::Entry, 1_000, pool(Direction::Bullish, 105.0, 1, false)),
            // Nearer, but already swept.
            (Role::Entry, 2_000, pool(Direction::Bullish, 101.0, 2, true)),
            (Role::Setup, 3_000, pool(Direction::Bullish, 103.0, 3, false)),
            // Equal distance on the higher timeframe: the first listed (setup) stays.
            (Role::Higher, 4_000, pool(Direction::Bullish, 103.0, 4, false)),
            // A bullish pool under the close is not sell-side liquidity: never "below".
            (Role::Entry, 5_000, pool(Direction::Bullish, 99.5, 5, false)),
            (Role::Higher, 6_000, pool(Direction::Bearish, 97.0, 6, false)),
            (Role::Entry, 7_000, pool(Direction::Bearish, 95.0, 7, false)),
            // A bearish pool over the close is not "above".
            (Role::Entry, 8_000, pool(Direction::Bearish, 100.5, 8, false)),
        ];
        let [above, below] = nearest(100.0, pools.iter().map(|(r, a, p)| (*r, *a, p)));
        assert_eq!(
            above,
            Some(PoolPick {
                side: PoolSide::Above,
                role: Role::Setup,
                level: 103.0,
                age_ms: 3_000,
                pools_on_side: 3,
            })
        );
        assert_eq!(
            below,
            Some(PoolPick {
                side: PoolSide::Below,
                role: Role::Higher,
                level: 97.0,
                age_ms: 6_000,
                pools_on_side: 2,
            })
        );
        // A level exactly at the close is on neither side; nothing left above.
        let [above, below] = nearest(105.0, pools.iter().map(|(r, a, p)| (*r, *a, p)));
        assert_eq!(above, None);
        assert_eq!(below.map(|p| (p.level, p.pools_on_side)), Some((100.5, 3)));
    }

    #[test]
    fn context_follows_the_layout() {
        let pick = PoolPick {
            side: PoolSide::Below,
            role: Role::Higher,
            level: 98.0,
            age_ms: 5 * 3_600_000,
            pools_on_side: 4,
        };
        let mut out = [0.0_f32; CONTEXT.len()];
        context(&pick, 100.0, 0.5, &mut out);
        assert_eq!(out, [-1.0, 4.0, 2.0, 2.0, 5.0, 4.0]);
        // No ATR yet and a far, old pool: capped, never infinite.
        let far = PoolPick {
            level: 1_000.0,
            age_ms: i64::MAX,
            side: PoolSide::Above,
            ..pick
        };
        context(&far, 100.0, 0.0, &mut out);
        assert_eq!(out, [1.0, 50.0, 20.0, 2.0, 720.0, 4.0]);
        assert_eq!(INPUTS, SCHEMA_LEN + 6);
        assert_ne!(input_hash(), crate::ml::predictor::input_hash());
    }

    proptest! {
        /// The sliding-window extremes give the brute-force label for every decision bar, side, level
        /// and horizon.
        #[test]
        fn sliding_extremes_equal_the_brute_force_label(
            ranges in prop::collection::vec((0.0_f64..100.0, 0.0_f64..20.0), 0..60),
            horizon in 0_usize..12,
            levels in prop::collection::vec(0.0_f64..130.0, 4),
        ) {
            let bars: Vec<Bar> = ranges
                .iter()
                .enumerate()
                .map(|(i, &(low, width))| bar(i as i64, low, low + width))
                .collect();
            let extremes = future_extremes(&bars, horizon);
            prop_assert_eq!(extremes.len(), bars.len());
            for t in 0..bars.len() {
                for &level in &levels {
                    for side in PoolSide::BOTH {
                        let brute = label(side, level, &bars[t + 1..], horizon);
                        let fast = extremes[t].map(|w| reached(side, level, w));
                        prop_assert_eq!(brute, fast, "t {} side {:?} level {}", t, side, level);
                    }
                }
            }
        }
    }

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

    pub(crate) fn card() -> LiquidityCard {
        LiquidityCard {
            model: MODEL_NAME.into(),
            version: "test".into(),
            created: "now".into(),
            file: String::new(),
            sha256: String::new(),
            perpdesk_version: "0".into(),
            feature_schema_hash: LiquidityCard::expected_feature_schema_hash(),
            feature_dimension: SCHEMA_LEN,
            context: CONTEXT.iter().map(|s| (*s).to_owned()).collect(),
            input_hash: LiquidityCard::expected_input_hash(),
            inputs: INPUTS,
            trees: 2,
            nodes: 6,
            params: GbdtParams::default(),
            horizon_bars: DEFAULT_HORIZON_BARS,
            stride: DEFAULT_STRIDE,
            label: "l".into(),
            train: range(),
            validation: range(),
            purge_ms: 0,
            metrics: LiquidityMetrics {
                auc: None,
                auc_above: None,
                auc_below: Some(0.6),
                auc_distance_only: Some(0.55),
                log_loss: 0.5,
                baseline_log_loss: 0.6,
                brier: 0.2,
                baseline_brier: 0.25,
                calibration: Vec::new(),
                train_base_rate: 0.4,
                validation_base_rate: 0.5,
            },
            command: "perpdesk train".into(),
        }
    }

    /// Two trees: one on the side, one on the distance in ATRs.
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
                vec![split(SCHEMA_LEN + 1, 2.0), Node::leaf(0.75), Node::leaf(-0.75)],
            ],
        )
        .unwrap()
    }

    #[test]
    fn save_and_load_round_trip_and_refuse_a_stale_or_altered_model() {
        let dir = tempfile::tempdir().unwrap();
        let mut model = LiquidityModel::new(ensemble(), card());
        let (model_path, card_path) = model.save(dir.path()).unwrap();
        assert!(model_path.ends_with(MODEL_FILE) && card_path.ends_with(CARD_FILE));
        let loaded = LiquidityModel::load(dir.path()).unwrap();
        assert_eq!(loaded.ensemble(), model.ensemble());
        assert_eq!(loaded.card, model.card);
        assert_eq!(loaded.card.sha256.len(), 64);
        let json = std::fs::read_to_string(&card_path).unwrap();
        assert!(
            json.contains("\"auc\": null") && json.contains("\"horizon_bars\": 48"),
            "{json}"
        );

        // A card for another input layout.
        let mut stale = model.card.clone();
        stale.input_hash = "0x0000000000000000".into();
        std::fs::write(&card_path, serde_json::to_vec(&stale).unwrap()).unwrap();
        let err = LiquidityModel::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("retrain"), "{err}");
        // The signal predictor's card is not a liquidity card.
        let mut other = model.card.clone();
        other.model = "signal_predictor".into();
        std::fs::write(&card_path, serde_json::to_vec(&other).unwrap()).unwrap();
        let err = LiquidityModel::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("signal_predictor"), "{err}");

        // A model file that is not the one the card describes.
        std::fs::write(&card_path, serde_json::to_vec(&model.card).unwrap()).unwrap();
        let mut bytes = std::fs::read(&model_path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&model_path, bytes).unwrap();
        let err = LiquidityModel::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("sha256"), "{err}");
    }

    /// A model trained by `gbdt` on a rule of the side and the distance, written to disk, read back
    /// and run in tract: the probabilities equal the native ones within 1e-5.
    #[test]
    fn the_exported_file_reloads_in_tract_and_equals_native() {
        let mut state = 7_u64;
        let mut next = || {
            // xorshift: a fixed, dependency-free sequence.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1_u64 << 24) as f32
        };
        let count = 600;
        let mut x = Vec::with_capacity(count * INPUTS);
        let mut y = Vec::with_capacity(count);
        for _ in 0..count {
            let mut row = [0.0_f32; INPUTS];
            for v in &mut row {
                *v = next() * 4.0 - 2.0;
            }
            row[SCHEMA_LEN] = if next() < 0.5 { 1.0 } else { -1.0 };
            row[SCHEMA_LEN + 1] = next() * 6.0;
            let near = row[SCHEMA_LEN + 1] < 2.0 + row[SCHEMA_LEN];
            y.push(f32::from(u8::from(near ^ (next() < 0.1))));
            x.extend_from_slice(&row);
        }
        let weights = vec![1.0; count];
        let params = GbdtParams {
            trees: 30,
            ..GbdtParams::default()
        };
        let ensemble = gbdt::train(
            &Dataset {
                inputs: INPUTS,
                x: &x,
                y: &y,
                w: &weights,
            },
            &params,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut model = LiquidityModel::new(ensemble, card());
        model.save(dir.path()).unwrap();
        let loaded = LiquidityModel::load(dir.path()).unwrap();
        let bytes = std::fs::read(dir.path().join(MODEL_FILE)).unwrap();
        let tract = TractModel::from_bytes(&bytes, INPUTS, 1, 2).unwrap();
        let (mut native, mut in_tract) = (vec![0.0; count * 2], vec![0.0; count * 2]);
        loaded.model().predict(&x, &mut native).unwrap();
        tract.predict(&x, &mut in_tract).unwrap();
        let worst = native
            .iter()
            .zip(&in_tract)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0_f32, f32::max);
        assert!(worst <= 1e-5, "max |native − tract| = {worst}");
        assert_eq!(loaded.probability(&x[..INPUTS]), native[1]);
        // The model learnt the rule (it is not a constant).
        let p: Vec<f32> = native.iter().skip(1).step_by(2).copied().collect();
        let auc = metrics::auc(&p, &y).unwrap();
        assert!(auc > 0.8, "training AUC {auc}");
    }
}
