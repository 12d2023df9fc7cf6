//! `perpdesk train` on the real klines in `../shared/data/klines/usdm_alpergulsen` (a subset, to keep CI
//! short): the dataset is causal (a candidate's features and label do not change when later bars are
//! added), the walk-forward split leaks nothing, the written model reloads, the shipped ONNX file gives
//! the native predictor's probabilities in tract and ONNX Runtime, and the command line works end to end.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::process::Command;

use perpdesk::{
    features::{SCHEMA_LEN, schema_hash},
    ml::{
        dataset::{self, SymbolBars},
        evolver, evolver_model,
        predictor::{AGREEMENT, INPUTS, SignalPredictor},
        runtime::Model,
        train::{self, TrainConfig, walk_forward_split},
    },
};

const DIR: &str = "data/klines/usdm_alpergulsen";
/// The newest 4 000 five-minute bars (~14 days) of each symbol.
const BARS: usize = 4_000;

#[test]
fn candidates_do_not_change_when_later_bars_arrive() {
    let Some(dir) = common::shared_path(DIR) else {
        return;
    };
    let all = dataset::load_dir(&dir, Some(BARS)).unwrap();
    let btc = all.iter().find(|s| s.symbol == "BTCUSDT").unwrap();
    let (full, _) = dataset::replay(btc, 96).unwrap();
    assert!(full.len() >= 5, "only {} BTC candidates", full.len());
    // Cut the history at a bar in the middle: every candidate resolved by then must be identical.
    let end = btc.entry[btc.entry.len() / 2].close_time;
    let cut = SymbolBars {
        symbol: btc.symbol.clone(),
        entry: btc
            .entry
            .iter()
            .filter(|b| b.close_time <= end)
            .copied()
            .collect(),
        setup: btc
            .setup
            .iter()
            .filter(|b| b.close_time <= end)
            .copied()
            .collect(),
        higher: btc
            .higher
            .iter()
            .filter(|b| b.close_time <= end)
            .copied()
            .collect(),
    };
    let (early, _) = dataset::replay(&cut, 96).unwrap();
    let resolved: Vec<_> = full.iter().filter(|s| s.resolved_at <= end).collect();
    assert!(!resolved.is_empty());
    assert_eq!(early.iter().collect::<Vec<_>>(), resolved);
    for sample in &full {
        assert!(
            sample.resolved_at > sample.at,
            "label from the decision bar itself: {sample:?}"
        );
        assert!(sample.row.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn train_writes_a_model_that_reloads_and_runs_the_same_in_tract_and_onnx_runtime() {
    let Some(dir) = common::shared_path(DIR) else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let mut config = TrainConfig::new(dir.clone(), out.path().to_path_buf(), "test".into());
    config.max_entry_bars = Some(BARS);
    config.params.trees = 40;
    config.horizon_bars = 96;
    config.purge_ms = 8 * 3_600_000;
    let mut lines = Vec::new();
    let outcome = train::run(&config, &mut |line| lines.push(line.to_owned())).unwrap();
    println!("{}", lines.join("\n"));
    println!("{}", train::report(&outcome));
    assert!(lines.iter().any(|l| l.contains("BTCUSDT")));

    let card = &outcome.predictor.card;
    assert_eq!(
        card.feature_schema_hash,
        format!("{:#018x}", schema_hash(SCHEMA_LEN))
    );
    assert_eq!(card.inputs, INPUTS);
    assert_eq!(card.trees, 40);
    assert!(card.train.samples >= 20 && card.validation.samples >= 10);
    assert!(card.train.to_ms < card.validation.from_ms);
    let m = &card.metrics;
    assert!(m.log_loss.is_finite() && m.baseline_log_loss.is_finite());
    assert!(m.auc.is_some_and(|auc| (0.0..=1.0).contains(&auc)));
    assert_eq!(
        m.calibration.iter().map(|b| b.count).sum::<usize>(),
        card.validation.samples
    );
    assert!(m.ml_kept <= m.ict_signals);
    // The feature discovery trained first; its promoted interactions were tried as derived inputs of
    // the predictor, against the base-only predictor on the same split, and kept only if no worse.
    let discovery = perpdesk::ml::discovery::DiscoveryModel::load(out.path()).unwrap();
    let promoted = perpdesk::ml::discovery::promoted_interactions(&discovery.card);
    let trial = card.discovery.as_ref().unwrap();
    assert_eq!(trial.discovery_version, discovery.card.version);
    assert_eq!(trial.tried, promoted);
    assert!(trial.base_only_log_loss.is_finite() && trial.with_derived_log_loss.is_finite());
    if trial.kept {
        assert_eq!(card.derived_inputs, promoted);
        assert!(
            trial.with_derived_log_loss <= trial.base_only_log_loss,
            "{trial:?}"
        );
        assert_eq!(m.log_loss, trial.with_derived_log_loss);
    } else {
        assert!(card.derived_inputs.is_empty());
        assert_eq!(m.log_loss, trial.base_only_log_loss);
        assert!(
            promoted.is_empty() || trial.with_derived_log_loss > trial.base_only_log_loss,
            "{trial:?}"
        );
        assert!(trial.reason.contains("dropped") || trial.reason.contains("no promoted"));
    }
    assert_eq!(outcome.predictor.derived().len(), card.derived_inputs.len());
    assert!(lines.iter().any(|l| l.contains("signal predictor (base inputs)")));
    // The same run trained the liquidity model from the same bars (`tests/train_liquidity_model.rs`).
    assert!(outcome.liquidity.model_path.is_file() && outcome.liquidity.card_path.is_file());
    assert!(outcome.liquidity.stats.samples > 0);

    // The strategy evolver was pre-trained on the same split and written beside it; its file reloads
    // and runs the same in tract.
    let (q, evolver_card) = evolver_model::load(out.path()).unwrap();
    assert_eq!((q.inputs(), q.outputs()), (evolver::STATE_DIM, evolver::ACTIONS));
    let em = &evolver_card.metrics;
    assert!(
        em.train_episodes > 0 && em.validation_episodes > 0 && em.updates > 0,
        "{em:?}"
    );
    assert_eq!(em.sets.len(), evolver::ACTIONS);
    assert_eq!(
        em.sets.iter().map(|s| s.chosen).sum::<usize>(),
        em.validation_episodes
    );
    assert!(lines.iter().any(|l| l.contains("strategy evolver:")));
    let bytes = std::fs::read(out.path().join(evolver_model::MODEL_FILE)).unwrap();
    evolver_model::reload_check(&q, &bytes).unwrap();

    // The files on disk are the model: reload, then compare native and tract on every candidate.
    let loaded = SignalPredictor::load(out.path()).unwrap();
    assert_eq!(loaded.ensemble(), outcome.predictor.ensemble());
    let tract = loaded.tract().unwrap();
    let mut samples = Vec::new();
    for bars in dataset::load_dir(&dir, Some(BARS)).unwrap() {
        samples.extend(dataset::replay(&bars, 96).unwrap().0);
    }
    // The engine feeds base rows; the file (tract, ONNX Runtime) takes them expanded by the derived inputs.
    let rows: Vec<f32> = samples.iter().flat_map(|s| s.row).collect();
    let expanded = loaded.expand_rows(&rows);
    let (mut native, mut in_tract) = (vec![0.0; samples.len() * 2], vec![0.0; samples.len() * 2]);
    loaded.model().predict(&rows, &mut native).unwrap();
    tract.predict(&expanded, &mut in_tract).unwrap();
    let worst = native
        .iter()
        .zip(&in_tract)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0_f32, f32::max);
    assert!(
        worst <= 1e-6,
        "max |native − tract| = {worst} over {} rows",
        samples.len()
    );
    // ONNX Runtime reads the same file to the same probabilities (skips loudly without a library).
    if let Some(runtime) = common::onnxruntime() {
        let ort = loaded.onnx_runtime(&runtime).unwrap();
        let mut in_ort = vec![0.0; samples.len() * 2];
        ort.predict(&expanded, &mut in_ort).unwrap();
        let worst = native
            .iter()
            .zip(&in_ort)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0_f32, f32::max);
        assert!(
            worst <= AGREEMENT,
            "max |native − ONNX Runtime| = {worst} over {} rows",
            samples.len()
        );
    }

    // The split the run used leaks nothing: every training label resolved before the purge gap.
    let (train_idx, validation_idx, start) =
        walk_forward_split(&samples, config.validation_fraction, config.purge_ms).unwrap();
    assert!(
        train_idx
            .iter()
            .all(|&i| samples[i].resolved_at < start - config.purge_ms)
    );
    assert!(validation_idx.iter().all(|&i| samples[i].at >= start));
}

#[test]
fn the_train_command_reports_and_writes_its_files() {
    let Some(dir) = common::shared_path(DIR) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    // No `--out`: the models go where the console loads them from, the configured models directory.
    let output = Command::new(env!("CARGO_BIN_EXE_perpdesk"))
        .args(["train", "--data"])
        .arg(&dir)
        .env("XDG_CONFIG_HOME", home.path())
        .env("HOME", home.path())
        .env("PERPDESK_MODELS_DIR", out.path())
        // The configured rate reaches the discovery network: ceil(0.05 × 58) = 3 promoted (default 6).
        .env("FEATURE_DISCOVERY_RATE", "0.05")
        .args([
            "--max-bars",
            "3000",
            "--trees",
            "20",
            "--horizon-bars",
            "96",
            "--purge-hours",
            "8",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("AUC") && stdout.contains("expectancy"),
        "{stdout}"
    );
    assert!(stderr.contains("train: split:"), "{stderr}");
    // The replay, the long part, reports with a progress bar that ends full.
    assert!(
        stderr.contains(&format!("train: [{}]", "#".repeat(20))),
        "{stderr}"
    );
    // All five models, each with its card naming the command that produced it.
    for file in [
        "signal_predictor.onnx",
        "liquidity.onnx",
        "structure_encoder.onnx",
        "structure_autoencoder.onnx",
        "feature_discovery.onnx",
        "strategy_evolver.onnx",
    ] {
        assert!(out.path().join(file).is_file(), "{file} missing");
    }
    for card in [
        "signal_predictor.json",
        "liquidity.json",
        "structure.json",
        "feature_discovery.json",
        "strategy_evolver.json",
    ] {
        let text = std::fs::read_to_string(out.path().join(card)).unwrap();
        assert!(
            text.contains("\"command\"") && text.contains("--max-bars 3000"),
            "{card}: {text}"
        );
    }

    let discovery: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("feature_discovery.json")).unwrap())
            .unwrap();
    assert_eq!(discovery["discovery_rate"], 0.05, "{discovery}");
    assert_eq!(
        discovery["promoted"].as_array().map(Vec::len),
        Some(3),
        "{discovery}"
    );

    let missing = Command::new(env!("CARGO_BIN_EXE_perpdesk"))
        .args(["train", "--data", "/nonexistent/klines", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
}
