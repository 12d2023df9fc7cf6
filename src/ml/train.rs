//! `perpdesk train`: build the dataset, split it walk-forward, train the signal predictor, validate it
//! honestly, write `signal_predictor.onnx` and its card; then the liquidity model (`ml::liquidity`) from
//! the same bars, with the same split rules.
//!
//! Why these rules: a model that has seen its validation period proves nothing. The split is by time:
//! validation is the last [`TrainConfig::validation_fraction`] of candidates by decision time (all
//! symbols together, so no symbol's future trains another's past). A training sample must have been
//! *resolved* (its label known) more than [`TrainConfig::purge_ms`] before the first validation decision:
//! the purge gap keeps training labels, which look ahead by up to the horizon, out of the validation
//! period. Candidates between the two are dropped. The operating threshold defaults to the break-even
//! probability at the strategy's minimum reward:risk (`1 / (1 + 2)`): above it, every signal's expected
//! R is positive.
//!
//! The feature discovery network (`ml::discovery`) trains first, on the same split; the interactions it
//! promotes (`ml.feature_discovery_rate`) become derived inputs of the signal predictor
//! (`predictor::DerivedInputs`) only if they earn it: the base-only predictor is fitted on the same
//! split too, and the derived inputs are kept only if the validation log loss with them is no worse.
//! Both results are in the card (`discovery`), kept or not.

use std::path::{Path, PathBuf};

use super::{
    MlError,
    dataset::{self, DatasetError, ReplayStats, Sample},
    gbdt::{self, Dataset, GbdtError, GbdtParams},
    metrics,
    predictor::{CONTEXT, DerivedInputs, DiscoveryTrial, INPUTS, Metrics, ModelCard, Range, SignalPredictor},
    trees::TreeEnsemble,
};
use crate::{domain::TimestampMs, features::SCHEMA_LEN, strategy::IctParams};

/// What `perpdesk train` does.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub data: PathBuf,
    pub out: PathBuf,
    /// Share of candidates (the newest) held out for validation.
    pub validation_fraction: f64,
    /// Label horizon in entry-timeframe bars.
    pub horizon_bars: usize,
    /// Purge gap between the last training resolution and the first validation decision.
    pub purge_ms: i64,
    pub threshold: f64,
    pub params: GbdtParams,
    /// Only the newest N entry bars per symbol (for quick runs and tests).
    pub max_entry_bars: Option<usize>,
    /// The command line recorded in the card.
    pub command: String,
    /// The liquidity model's horizon, sampling and trees (`ml::liquidity`).
    pub liquidity: super::liquidity::LiquidityConfig,
    /// `ml.feature_discovery_rate`: the share of the discovery ranking promoted (`ml::discovery`).
    pub feature_discovery_rate: f64,
}

/// Default label horizon: 288 five-minute bars (24 h).
pub const DEFAULT_HORIZON_BARS: usize = 288;

impl TrainConfig {
    pub fn new(data: PathBuf, out: PathBuf, command: String) -> Self {
        Self {
            data,
            out,
            validation_fraction: 0.3,
            horizon_bars: DEFAULT_HORIZON_BARS,
            purge_ms: 24 * 3_600_000,
            threshold: default_threshold(),
            params: GbdtParams::default(),
            max_entry_bars: None,
            command,
            liquidity: super::liquidity::LiquidityConfig::default(),
            feature_discovery_rate: crate::config::MlConfig::default().feature_discovery_rate,
        }
    }
}

/// Break-even P(target) at the ICT strategy's minimum reward:risk.
pub fn default_threshold() -> f64 {
    1.0 / (1.0 + IctParams::default().min_reward_risk)
}

/// Why training failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DatasetError),
    #[error("bad option: {0}")]
    Config(String),
    #[error("not enough data: {0}")]
    TooLittle(String),
    #[error("training: {0}")]
    Gbdt(#[from] GbdtError),
    #[error(transparent)]
    Model(#[from] MlError),
}

/// The walk-forward split: indices of training and validation samples (in `samples` order) and the
/// first validation decision time. `samples` need not be sorted.
pub fn walk_forward_split(
    samples: &[Sample],
    validation_fraction: f64,
    purge_ms: i64,
) -> Option<(Vec<usize>, Vec<usize>, TimestampMs)> {
    walk_forward_split_by(samples, |s| (s.at, s.resolved_at), validation_fraction, purge_ms)
}

/// [`walk_forward_split`] over any samples, given each one's `(decision time, label time)` (the
/// liquidity model's samples use it too).
pub fn walk_forward_split_by<T>(
    samples: &[T],
    times_of: impl Fn(&T) -> (TimestampMs, TimestampMs),
    validation_fraction: f64,
    purge_ms: i64,
) -> Option<(Vec<usize>, Vec<usize>, TimestampMs)> {
    if samples.is_empty() || !(0.0..1.0).contains(&validation_fraction) || validation_fraction == 0.0 {
        return None;
    }
    let mut times: Vec<TimestampMs> = samples.iter().map(|s| times_of(s).0).collect();
    times.sort_unstable();
    let cut = ((times.len() as f64) * (1.0 - validation_fraction)).floor() as usize;
    let start = *times.get(cut.min(times.len() - 1))?;
    let train = (0..samples.len())
        .filter(|&i| times_of(&samples[i]).1 < start - purge_ms)
        .collect();
    let validation = (0..samples.len())
        .filter(|&i| times_of(&samples[i]).0 >= start)
        .collect();
    Some((train, validation, start))
}

/// Cells of [`progress_bar`].
const BAR_CELLS: usize = 20;

/// `[#########···········] 9/20`: how far a long step has come, for the progress lines.
pub fn progress_bar(done: usize, total: usize) -> String {
    let filled = (done.min(total) * BAR_CELLS)
        .checked_div(total)
        .unwrap_or(BAR_CELLS);
    format!(
        "[{}{}] {done}/{total}",
        "#".repeat(filled),
        "·".repeat(BAR_CELLS - filled)
    )
}

/// RFC 3339 of a timestamp in ms (the cards' readable ranges).
pub(crate) fn date(ms: TimestampMs) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

pub(crate) fn range(samples: &[Sample], indices: &[usize]) -> Range {
    let from_ms = indices.iter().map(|&i| samples[i].at).min().unwrap_or(0);
    let to_ms = indices.iter().map(|&i| samples[i].at).max().unwrap_or(0);
    Range {
        from_ms,
        to_ms,
        from: date(from_ms),
        to: date(to_ms),
        samples: indices.len(),
        positives: indices.iter().filter(|&&i| samples[i].label() > 0.5).count(),
    }
}

/// Everything a training run produced.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub predictor: SignalPredictor,
    pub model_path: PathBuf,
    pub card_path: PathBuf,
    pub stats: ReplayStats,
    /// The liquidity model written by the same run.
    pub liquidity: super::liquidity::LiquidityOutcome,
}

/// Fits trees on `samples[train]` with their rows expanded by `derived`; returns them and the training
/// positive rate.
pub fn fit(
    samples: &[Sample],
    train: &[usize],
    derived: &DerivedInputs,
    params: &GbdtParams,
) -> Result<(TreeEnsemble, f64), TrainError> {
    let width = derived.width();
    let mut x = Vec::with_capacity(train.len() * width);
    let (mut y, mut w) = (Vec::with_capacity(train.len()), Vec::with_capacity(train.len()));
    let mut row = [0.0_f32; super::predictor::MAX_WIDTH];
    for &i in train {
        x.extend_from_slice(derived.expand(&samples[i].row, &mut row));
        y.push(samples[i].label());
        w.push(samples[i].weight());
    }
    let ensemble = gbdt::train(
        &Dataset {
            inputs: width,
            x: &x,
            y: &y,
            w: &w,
        },
        params,
    )?;
    let train_rate = f64::from(y.iter().sum::<f32>()) / y.len().max(1) as f64;
    Ok((ensemble, train_rate))
}

/// Validation metrics of `ensemble` (over rows expanded by `derived`) on `samples[validation]`.
pub fn validate(
    ensemble: &TreeEnsemble,
    derived: &DerivedInputs,
    samples: &[Sample],
    validation: &[usize],
    threshold: f64,
    train_rate: f64,
) -> Metrics {
    let mut row = [0.0_f32; super::predictor::MAX_WIDTH];
    let p: Vec<f32> = validation
        .iter()
        .map(|&i| ensemble.probability(derived.expand(&samples[i].row, &mut row)))
        .collect();
    let y: Vec<f32> = validation.iter().map(|&i| samples[i].label()).collect();
    let baseline = vec![train_rate as f32; y.len()];
    let ict: Vec<(usize, f32)> = validation
        .iter()
        .zip(&p)
        .filter(|(i, _)| samples[**i].ict_signal)
        .map(|(i, p)| (*i, *p))
        .collect();
    let kept: Vec<usize> = ict
        .iter()
        .filter(|(_, p)| f64::from(*p) >= threshold)
        .map(|(i, _)| *i)
        .collect();
    Metrics {
        auc: metrics::auc(&p, &y),
        log_loss: metrics::log_loss(&p, &y),
        baseline_log_loss: metrics::log_loss(&baseline, &y),
        brier: metrics::brier(&p, &y),
        calibration: metrics::calibration(&p, &y, 10),
        threshold,
        precision_at_threshold: finite(metrics::mean(kept.iter().map(|&i| f64::from(samples[i].label())))),
        ict_signals: ict.len(),
        ml_kept: kept.len(),
        expectancy_ict_r: finite(metrics::mean(ict.iter().map(|(i, _)| samples[*i].r))),
        expectancy_ml_r: finite(metrics::mean(kept.iter().map(|&i| samples[i].r))),
    }
}

/// `None` for NaN (an empty set), so the card's JSON says `null` and reads back.
fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

/// Runs the whole pipeline; `progress` receives one line per step.
pub fn run(config: &TrainConfig, progress: &mut dyn FnMut(&str)) -> Result<TrainOutcome, TrainError> {
    if !(config.validation_fraction > 0.0 && config.validation_fraction < 1.0) {
        return Err(TrainError::Config("--validation must be within (0, 1)".into()));
    }
    if !(config.threshold > 0.0 && config.threshold < 1.0) {
        return Err(TrainError::Config("--threshold must be within (0, 1)".into()));
    }
    let mut samples = Vec::new();
    let mut stats = ReplayStats::default();
    // Loaded once; every model trains from the same bars.
    let mut all_bars = Vec::new();
    for dir in dataset::data_dirs(&config.data)? {
        let name = dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        all_bars.extend(
            dataset::load_dir(&dir, config.max_entry_bars)?
                .into_iter()
                .map(|b| (name.clone(), b)),
        );
    }
    let mut structure_rows = Vec::new(); // structure autoencoder (ml::structure)
    for (done, (dir, bars)) in all_bars.iter().enumerate() {
        let (mut found, s) = dataset::replay(bars, config.horizon_bars)?;
        structure_rows.append(&mut super::structure::collect_rows(
            bars,
            super::structure::StructureParams::default().every,
        )?);
        progress(&format!(
            "{} {}/{}: {} bars, {} candidates, {} labelled ({} unresolved at the end of the data)",
            progress_bar(done + 1, all_bars.len()),
            dir,
            bars.symbol,
            bars.entry.len(),
            s.candidates,
            found.len(),
            s.unresolved
        ));
        stats.evaluations += s.evaluations;
        stats.candidates += s.candidates;
        stats.unresolved += s.unresolved;
        samples.append(&mut found);
    }
    samples.sort_by(|a, b| (a.at, &a.symbol).cmp(&(b.at, &b.symbol)));
    let (train, validation, start) =
        walk_forward_split(&samples, config.validation_fraction, config.purge_ms)
            .ok_or_else(|| TrainError::TooLittle("no labelled candidates".into()))?;
    if train.len() < 20 || validation.len() < 10 {
        return Err(TrainError::TooLittle(format!(
            "{} training and {} validation candidates (need 20 and 10)",
            train.len(),
            validation.len()
        )));
    }
    progress(&format!(
        "split: {} training candidates resolved before {} (purge {} h), {} validation candidates from {}",
        train.len(),
        date(start - config.purge_ms),
        config.purge_ms / 3_600_000,
        validation.len(),
        date(start)
    ));
    // The feature discovery network first: its promoted interactions are candidate inputs of the
    // predictor (`ml::discovery`).
    let discovery = super::discovery::train_and_save(
        &samples,
        &train,
        &validation,
        start,
        config.purge_ms,
        config.feature_discovery_rate,
        &config.out,
        &config.command,
        progress,
    )?;
    let (base, base_rate) = fit(&samples, &train, &DerivedInputs::NONE, &config.params)?;
    let base_metrics = validate(
        &base,
        &DerivedInputs::NONE,
        &samples,
        &validation,
        config.threshold,
        base_rate,
    );
    progress(&format!(
        "signal predictor (base inputs): {} trees ({} nodes) on {} rows, validation log loss {:.4}, AUC {}",
        base.tree_count(),
        base.node_count(),
        train.len(),
        base_metrics.log_loss,
        show(base_metrics.auc, 3)
    ));
    let tried = super::discovery::promoted_interactions(&discovery.card);
    let (ensemble, derived, metrics, trial) = if tried.is_empty() {
        progress("signal predictor: the feature discovery promoted no interaction; base inputs only");
        let trial = DiscoveryTrial {
            discovery_version: discovery.card.version.clone(),
            tried: Vec::new(),
            kept: false,
            base_only_log_loss: base_metrics.log_loss,
            base_only_auc: base_metrics.auc,
            with_derived_log_loss: base_metrics.log_loss,
            with_derived_auc: base_metrics.auc,
            reason: "no promoted interaction to try".into(),
        };
        (base, DerivedInputs::NONE, base_metrics, trial)
    } else {
        let derived = DerivedInputs::from_names(&tried).map_err(TrainError::Config)?;
        let (with, with_rate) = fit(&samples, &train, &derived, &config.params)?;
        let with_metrics = validate(
            &with,
            &derived,
            &samples,
            &validation,
            config.threshold,
            with_rate,
        );
        let kept = with_metrics.log_loss <= base_metrics.log_loss;
        let reason = format!(
            "validation log loss {:.4} with {} derived inputs vs {:.4} base-only: {}",
            with_metrics.log_loss,
            derived.len(),
            base_metrics.log_loss,
            if kept {
                "kept (no worse)"
            } else {
                "dropped (worse)"
            }
        );
        progress(&format!(
            "signal predictor (+{} derived: {}): validation log loss {:.4}, AUC {}; {reason}",
            derived.len(),
            tried.join(", "),
            with_metrics.log_loss,
            show(with_metrics.auc, 3)
        ));
        let trial = DiscoveryTrial {
            discovery_version: discovery.card.version.clone(),
            tried,
            kept,
            base_only_log_loss: base_metrics.log_loss,
            base_only_auc: base_metrics.auc,
            with_derived_log_loss: with_metrics.log_loss,
            with_derived_auc: with_metrics.auc,
            reason,
        };
        if kept {
            (with, derived, with_metrics, trial)
        } else {
            (base, DerivedInputs::NONE, base_metrics, trial)
        }
    };
    progress(&format!(
        "trained {} trees ({} nodes) on {} rows, {} inputs + {} derived",
        ensemble.tree_count(),
        ensemble.node_count(),
        train.len(),
        INPUTS,
        derived.len()
    ));
    let now = time::OffsetDateTime::now_utc();
    let card = ModelCard {
        model: "signal_predictor".into(),
        version: format!("signal_predictor-{}", now.unix_timestamp()),
        created: now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
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
            "take profit before stop within {} entry bars, from bars after the decision only (same-bar stop and target count as stop)",
            config.horizon_bars
        ),
        weighting: "0.25 + 0.75 x quality total".into(),
        train: range(&samples, &train),
        validation: range(&samples, &validation),
        purge_ms: config.purge_ms,
        metrics,
        command: config.command.clone(),
        derived_inputs: Vec::new(), // set from `derived` by `with_derived`
        discovery: Some(trial),
    };
    let mut predictor = SignalPredictor::with_derived(ensemble, derived, card);
    let (model_path, card_path) = predictor.save(&config.out)?;
    let symbol_bars: Vec<dataset::SymbolBars> = all_bars.into_iter().map(|(_, bars)| bars).collect();

    // The liquidity prediction model (`ml::liquidity`), from the same bars.
    let liquidity = super::liquidity::train(config, &symbol_bars, progress)?;

    // The structure autoencoder (`ml::structure`).
    super::structure::train_and_save(&structure_rows, &config.out, &config.command, progress)?;

    // The strategy evolver's Q-network, pre-trained on the same candidates (`ml::evolver_model`).
    let probability = |s: &Sample| Some(predictor.probability(&s.row));
    super::evolver_model::train_and_save(
        &samples,
        &train,
        &validation,
        &probability,
        &config.command,
        &config.out,
        progress,
    )?;
    Ok(TrainOutcome {
        predictor,
        model_path,
        card_path,
        stats,
        liquidity,
    })
}

fn show(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:+.decimals$}"))
}

/// The human-readable report of a run (what `perpdesk train` prints).
pub fn report(outcome: &TrainOutcome) -> String {
    use std::fmt::Write as _;
    let card = &outcome.predictor.card;
    let m = &card.metrics;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "signal predictor {}: {} trees, {} inputs + {} derived (feature schema {})",
        card.version,
        card.trees,
        card.inputs,
        card.derived_inputs.len(),
        card.feature_schema_hash
    );
    if let Some(trial) = &card.discovery {
        let _ = writeln!(
            out,
            "discovered interactions {}: {} (base-only log loss {:.4}, AUC {}; with them {:.4}, AUC {})",
            if trial.kept { "kept" } else { "dropped" },
            if trial.tried.is_empty() {
                "none promoted".to_owned()
            } else {
                trial.tried.join(", ")
            },
            trial.base_only_log_loss,
            show(trial.base_only_auc, 3),
            trial.with_derived_log_loss,
            show(trial.with_derived_auc, 3)
        );
    }
    let _ = writeln!(
        out,
        "train      {} .. {}  {} candidates, {} hit the target",
        card.train.from, card.train.to, card.train.samples, card.train.positives
    );
    let _ = writeln!(
        out,
        "validation {} .. {}  {} candidates, {} hit the target",
        card.validation.from, card.validation.to, card.validation.samples, card.validation.positives
    );
    let _ = writeln!(
        out,
        "AUC {}  log loss {:.4} (constant-rate baseline {:.4})  Brier {:.4}",
        show(m.auc, 3),
        m.log_loss,
        m.baseline_log_loss,
        m.brier
    );
    metrics::write_calibration(&mut out, &m.calibration);
    let _ = writeln!(
        out,
        "ICT signals in validation: {}, expectancy {} R",
        m.ict_signals,
        show(m.expectancy_ict_r, 3)
    );
    let _ = writeln!(
        out,
        "ML-filtered at p >= {:.3}: {} kept, precision {}, expectancy {} R",
        m.threshold,
        m.ml_kept,
        show(m.precision_at_threshold, 3),
        show(m.expectancy_ml_r, 3)
    );
    let _ = writeln!(
        out,
        "wrote {} and {}",
        outcome.model_path.display(),
        outcome.card_path.display()
    );
    out.push_str(&super::liquidity::report(&outcome.liquidity));
    out
}

/// Reads a model card without loading the model (for tools and tests).
pub fn read_card(path: &Path) -> Result<ModelCard, MlError> {
    let bytes = std::fs::read(path).map_err(|source| MlError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| MlError::Card {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {

    use super::*;
    use crate::{domain::Side, ml::dataset::Outcome};

    #[test]
    fn the_progress_bar_fills_with_the_work_done() {
        assert_eq!(progress_bar(0, 4), format!("[{}] 0/4", "·".repeat(20)));
        assert_eq!(
            progress_bar(1, 4),
            format!("[{}{}] 1/4", "#".repeat(5), "·".repeat(15))
        );
        assert_eq!(progress_bar(4, 4), format!("[{}] 4/4", "#".repeat(20)));
        assert_eq!(
            progress_bar(9, 4),
            format!("[{}] 9/4", "#".repeat(20)),
            "overshoot stays full"
        );
        assert_eq!(
            progress_bar(0, 0),
            format!("[{}] 0/0", "#".repeat(20)),
            "nothing to do is done"
        );
    }

    fn sample(at: i64, resolved_at: i64) -> Sample {
        Sample {
            symbol: "X".into(),
            at,
            resolved_at,
            side: Side::Long,
            row: [0.0; INPUTS],
            outcome: Outcome::Stop,
            r: -1.0,
            reward_risk: 2.0,
            quality: 0.8,
            ict_signal: true,
        }
    }

    #[test]
    fn split_purges_training_labels_that_reach_into_validation() {
        // Decisions at 0..10 (hours), each resolved 3 h later; validation is the last 30 %: from t = 7.
        let h = 3_600_000;
        let samples: Vec<Sample> = (0..10).map(|t| sample(t * h, t * h + 3 * h)).collect();
        let (train, validation, start) = walk_forward_split(&samples, 0.3, h).unwrap();
        assert_eq!(start, 7 * h);
        assert_eq!(validation, vec![7, 8, 9]);
        // Resolved strictly before 7 h − 1 h = 6 h: decisions at 0, 1, 2 (resolved 3, 4, 5 h).
        assert_eq!(train, vec![0, 1, 2]);
        for &i in &train {
            assert!(samples[i].resolved_at < start);
            assert!(samples[i].at < start);
        }
        assert!(walk_forward_split(&samples, 0.0, h).is_none());
        assert!(walk_forward_split(&[], 0.3, h).is_none());
    }

    #[test]
    fn default_threshold_is_break_even_at_the_minimum_reward_risk() {
        let p = default_threshold();
        // Expected R at p with R:R 2 is p·2 − (1 − p) = 0.
        assert!((p * 2.0 - (1.0 - p)).abs() < 1e-12);
    }
}
