//! The liquidity prediction model on the real klines in `../shared/data/klines/usdm_alpergulsen` (a
//! subset, to keep CI short): its samples are causal (a sample's inputs and label do not change when
//! later bars are added, and its label comes from bars after the decision only), and `perpdesk train`
//! writes `liquidity.onnx` + `liquidity.json`, which reload and give the native probabilities in tract.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::process::Command;

use perpdesk::ml::{
    dataset::{self, SymbolBars},
    liquidity::{self, CARD_FILE, INPUTS, LiquidityConfig, LiquidityModel, MODEL_FILE, PoolSide},
    runtime::Model,
};

const DIR: &str = "data/klines/usdm_alpergulsen";
/// The newest 3 000 five-minute bars (~10 days) of each symbol.
const BARS: usize = 3_000;

fn prefix(bars: &SymbolBars, end: i64) -> SymbolBars {
    let cut = |v: &[perpdesk::domain::Bar]| v.iter().filter(|b| b.close_time <= end).copied().collect();
    SymbolBars {
        symbol: bars.symbol.clone(),
        entry: cut(&bars.entry),
        setup: cut(&bars.setup),
        higher: cut(&bars.higher),
    }
}

#[test]
fn liquidity_samples_do_not_change_when_later_bars_arrive() {
    let Some(dir) = common::shared_path(DIR) else {
        return;
    };
    let all = dataset::load_dir(&dir, Some(BARS)).unwrap();
    let eth = all.iter().find(|s| s.symbol == "ETHUSDT").unwrap();
    let config = LiquidityConfig::default();
    let (full, stats) = liquidity::replay(eth, &config).unwrap();
    assert!(full.len() >= 200, "only {} ETH samples ({stats:?})", full.len());
    assert!(full.iter().any(|s| s.side == PoolSide::Above) && full.iter().any(|s| s.side == PoolSide::Below));
    assert!(full.iter().any(|s| s.swept) && full.iter().any(|s| !s.swept));
    // The last K bars cannot label a sample.
    assert!(stats.unresolved > 0);

    let end = eth.entry[eth.entry.len() / 2].close_time;
    let (early, _) = liquidity::replay(&prefix(eth, end), &config).unwrap();
    let resolved: Vec<_> = full.iter().filter(|s| s.resolved_at <= end).collect();
    assert!(!resolved.is_empty());
    assert_eq!(early.iter().collect::<Vec<_>>(), resolved);

    // Each label is what the entry bars strictly after the decision say, and the pool is on its side.
    for sample in &full {
        let t = eth.entry.iter().position(|b| b.close_time == sample.at).unwrap();
        let after = &eth.entry[t + 1..];
        assert_eq!(
            liquidity::label(sample.side, sample.level, after, config.horizon_bars),
            Some(sample.swept)
        );
        assert_eq!(sample.resolved_at, eth.entry[t + config.horizon_bars].close_time);
        let close = eth.entry[t].close;
        match sample.side {
            PoolSide::Above => assert!(sample.level > close),
            PoolSide::Below => assert!(sample.level < close),
        }
        assert!(sample.row.iter().all(|v| v.is_finite()));
        assert_eq!(sample.row.len(), INPUTS);
    }
}

#[test]
fn perpdesk_train_writes_a_liquidity_model_that_reloads_and_runs_the_same_in_tract() {
    let Some(dir) = common::shared_path(DIR) else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_perpdesk"))
        .args(["train", "--data"])
        .arg(&dir)
        .arg("--out")
        .arg(out.path())
        .args([
            "--max-bars",
            "3000",
            "--trees",
            "20",
            "--horizon-bars",
            "96",
            "--purge-hours",
            "8",
            "--liquidity-horizon-bars",
            "36",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    println!("{stdout}");
    assert!(
        stdout.contains("liquidity model") && stdout.contains("base rate"),
        "{stdout}"
    );
    assert!(stderr.contains("train: liquidity split:"), "{stderr}");
    assert!(out.path().join(MODEL_FILE).is_file());
    assert!(out.path().join("signal_predictor.onnx").is_file());

    let model = LiquidityModel::load(out.path()).unwrap();
    let card = &model.card;
    assert!(out.path().join(CARD_FILE).is_file());
    assert_eq!(card.horizon_bars, 36);
    assert!(
        card.command.contains("--liquidity-horizon-bars 36"),
        "{}",
        card.command
    );
    assert!(card.train.samples >= 100 && card.validation.samples >= 50);
    // Walk-forward with the purge: training decisions end before validation starts.
    assert!(card.train.to_ms < card.validation.from_ms);
    assert_eq!(card.purge_ms, 8 * 3_600_000);
    let m = &card.metrics;
    assert!(m.auc.is_some_and(|auc| (0.0..=1.0).contains(&auc)));
    assert!(m.log_loss.is_finite() && m.brier.is_finite() && m.baseline_log_loss.is_finite());
    assert!((0.0..=1.0).contains(&m.train_base_rate) && (0.0..=1.0).contains(&m.validation_base_rate));
    assert_eq!(
        m.calibration.iter().map(|b| b.count).sum::<usize>(),
        card.validation.samples
    );

    // The file reloads in tract and gives the native probabilities on real rows.
    let bars = dataset::load_dir(&dir, Some(1_000)).unwrap();
    let config = LiquidityConfig {
        horizon_bars: 36,
        ..LiquidityConfig::default()
    };
    let rows: Vec<f32> = bars
        .iter()
        .flat_map(|b| liquidity::replay(b, &config).unwrap().0)
        .flat_map(|s| s.row)
        .collect();
    let n = rows.len() / INPUTS;
    assert!(n >= 50, "{n} rows");
    let tract = model.tract().unwrap();
    let (mut native, mut in_tract) = (vec![0.0; n * 2], vec![0.0; n * 2]);
    model.model().predict(&rows, &mut native).unwrap();
    tract.predict(&rows, &mut in_tract).unwrap();
    let worst = native
        .iter()
        .zip(&in_tract)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0_f32, f32::max);
    assert!(worst <= 1e-5, "max |native − tract| = {worst} over {n} rows");
    assert_eq!(model.probability(&rows[..INPUTS]), native[1]);
}
