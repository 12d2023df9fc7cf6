//! Every exported model kind gives the same outputs in ONNX Runtime as in tract and natively: the signal
//! predictor's and the liquidity model's `TreeEnsembleClassifier`s and the `Gemm`/`Relu` MLP, at batch 1
//! and 32, within 1e-5, from the file written to disk (the reload check). Also: the backend choice (`runtime::onnx_model`) and how the
//! loader treats a wrong path, a file that is not a library, and a library that is not ONNX Runtime.
//!
//! ONNX Runtime comes from `ORT_DYLIB_PATH` (`.ci/run` extracts it from the `onnxruntime` wheel); without
//! it the ONNX Runtime parts print a SKIP line and pass, unless `PERPDESK_REQUIRE_ONNXRUNTIME` is set.
//! The loading-error checks must run before the first successful load of the process (a process holds one
//! library, see `ml::onnxruntime`), so every test here loads through [`runtime`], which runs them once first.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
};

use perpdesk::ml::{
    gbdt::{self, Dataset, GbdtParams},
    liquidity::{self, LiquidityModel},
    mlp::Mlp,
    onnxruntime::{OnnxRuntime, OrtError},
    predictor::{AGREEMENT, INPUTS, MODEL_FILE, SignalPredictor},
    runtime::{Backend, Model, TractModel, onnx_model},
    trees::TreeEnsemble,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Synthetic rows of the predictor's width.
fn rows(count: usize, width: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count * width).map(|_| rng.random_range(-2.0..2.0)).collect()
}

/// A signal predictor trained on a nonlinear rule over a few of its inputs (the default depth, 60 trees).
fn trained_predictor() -> SignalPredictor {
    let x = rows(2_000, INPUTS, 1);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let y: Vec<f32> = x
        .chunks_exact(INPUTS)
        .map(|r| {
            f32::from(u8::from(
                r[0] * r[1] + r[33] - r[40].abs() > rng.random_range(-1.0..1.0),
            ))
        })
        .collect();
    let w = vec![1.0; y.len()];
    let params = GbdtParams {
        trees: 60,
        ..GbdtParams::default()
    };
    let ensemble: TreeEnsemble = gbdt::train(
        &Dataset {
            inputs: INPUTS,
            x: &x,
            y: &y,
            w: &w,
        },
        &params,
    )
    .unwrap();
    SignalPredictor::new(ensemble, perpdesk_card())
}

/// A card for this build's layout (what `SignalPredictor::save` needs to write the files).
fn perpdesk_card() -> perpdesk::ml::predictor::ModelCard {
    use perpdesk::ml::predictor::{CONTEXT, Metrics, ModelCard, Range};
    let range = Range {
        from_ms: 0,
        to_ms: 1,
        from: "a".into(),
        to: "b".into(),
        samples: 1,
        positives: 1,
    };
    ModelCard {
        model: "signal_predictor".into(),
        version: "backends-test".into(),
        created: "now".into(),
        file: String::new(),
        sha256: String::new(),
        perpdesk_version: env!("CARGO_PKG_VERSION").into(),
        feature_schema_hash: ModelCard::expected_feature_schema_hash(),
        feature_dimension: perpdesk::features::SCHEMA_LEN,
        context: CONTEXT.iter().map(|s| (*s).to_owned()).collect(),
        input_hash: ModelCard::expected_input_hash(),
        inputs: INPUTS,
        trees: 60,
        nodes: 0,
        params: GbdtParams::default(),
        label: "test".into(),
        weighting: "none".into(),
        train: range.clone(),
        validation: range,
        purge_ms: 0,
        metrics: Metrics {
            auc: None,
            log_loss: 0.5,
            baseline_log_loss: 0.6,
            brier: 0.2,
            calibration: Vec::new(),
            threshold: 0.5,
            precision_at_threshold: None,
            ict_signals: 0,
            ml_kept: 0,
            expectancy_ict_r: None,
            expectancy_ml_r: None,
        },
        command: "tests/onnxruntime_backends.rs".into(),
        derived_inputs: Vec::new(),
        discovery: None,
    }
}

/// Largest |a − b|.
fn worst(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

/// `reference` and `other` agree within [`AGREEMENT`] on `input`: each of the first 40 rows alone (batch 1),
/// the first 32 rows as one batch, and the whole input as one batch.
fn assert_agree(reference: &dyn Model, other: &dyn Model, input: &[f32], what: &str) {
    let (inputs, outputs) = (reference.inputs(), reference.outputs());
    assert_eq!(
        (other.inputs(), other.outputs()),
        (inputs, outputs),
        "{what}: shapes"
    );
    let n = input.len() / inputs;
    let (mut a, mut b) = (vec![0.0; n * outputs], vec![0.0; n * outputs]);
    reference.predict(input, &mut a).unwrap();
    other.predict(input, &mut b).unwrap();
    let all = worst(&a, &b);
    assert!(all <= AGREEMENT, "{what}, batch {n}: max difference {all}");
    let mut one = vec![0.0; outputs];
    for (i, row) in input.chunks_exact(inputs).take(40).enumerate() {
        other.predict(row, &mut one).unwrap();
        let d = worst(&one, &a[i * outputs..(i + 1) * outputs]);
        assert!(d <= AGREEMENT, "{what}, batch 1, row {i}: difference {d}");
    }
    let mut batch32 = vec![0.0; 32 * outputs];
    other.predict(&input[..32 * inputs], &mut batch32).unwrap();
    let d = worst(&batch32, &a[..32 * outputs]);
    assert!(d <= AGREEMENT, "{what}, batch 32: max difference {d}");
}

#[test]
fn the_signal_predictor_file_gives_the_same_probabilities_natively_in_tract_and_in_onnx_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let mut predictor = trained_predictor();
    predictor.save(dir.path()).unwrap();
    // The reload check: everything below runs the file on disk, read back through its card.
    let loaded = SignalPredictor::load(dir.path()).unwrap();
    assert_eq!(loaded.ensemble(), predictor.ensemble());
    let bytes = std::fs::read(dir.path().join(MODEL_FILE)).unwrap();
    let tract = TractModel::from_bytes(&bytes, INPUTS, 1, 2).unwrap();
    // Random rows, plus every split threshold and its next float (where `<=` against `<` would differ).
    let mut input = rows(300, INPUTS, 3);
    input.extend(loaded.probe_rows());
    assert_agree(loaded.model(), &tract, &input, "trees: native vs tract");

    let Some(runtime) = runtime() else {
        return;
    };
    let ort = onnx_model(&bytes, INPUTS, 1, 2, Some(&runtime)).unwrap();
    assert_eq!(ort.backend(), Backend::OnnxRuntime);
    assert_agree(
        loaded.model(),
        ort.as_ref(),
        &input,
        "trees: native vs ONNX Runtime",
    );
    assert_agree(&tract, ort.as_ref(), &input, "trees: tract vs ONNX Runtime");
    assert!(loaded.max_difference(ort.as_ref()).unwrap() <= AGREEMENT);
}

/// A signal predictor with two derived inputs (products of base inputs), trained on a rule that needs
/// one of them: its file takes the expanded rows, and every backend reads it to the same probabilities.
#[test]
fn a_signal_predictor_with_derived_inputs_gives_the_same_probabilities_natively_in_tract_and_in_onnx_runtime()
{
    use perpdesk::ml::predictor::{DerivedInputs, input_index};
    let derived = DerivedInputs::from_names(&["ctx.side×tf0.rsi", "ctx.stop_pct×tf0.atr_pct"]).unwrap();
    let (side, rsi) = (input_index("ctx.side").unwrap(), input_index("tf0.rsi").unwrap());
    let base = rows(2_000, INPUTS, 11);
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let y: Vec<f32> = base
        .chunks_exact(INPUTS)
        .map(|r| f32::from(u8::from(r[side] * r[rsi] > rng.random_range(-1.0..1.0))))
        .collect();
    let x = derived.expand_rows(&base);
    let w = vec![1.0; y.len()];
    let params = GbdtParams {
        trees: 40,
        ..GbdtParams::default()
    };
    let ensemble = gbdt::train(
        &Dataset {
            inputs: derived.width(),
            x: &x,
            y: &y,
            w: &w,
        },
        &params,
    )
    .unwrap();
    // The trees use the derived column: the rule is the product.
    assert!((0..ensemble.tree_count()).any(|t| {
        ensemble
            .tree(t)
            .any(|n| !n.is_leaf() && n.feature as usize == INPUTS)
    }));
    let dir = tempfile::tempdir().unwrap();
    let mut predictor = SignalPredictor::with_derived(ensemble, derived, perpdesk_card());
    predictor.save(dir.path()).unwrap();
    let loaded = SignalPredictor::load(dir.path()).unwrap();
    assert_eq!(loaded.derived(), &derived);
    assert_eq!(loaded.card.derived_inputs, derived.names());
    let bytes = std::fs::read(dir.path().join(MODEL_FILE)).unwrap();
    let tract = TractModel::from_bytes(&bytes, derived.width(), 1, 2).unwrap();
    let mut input = loaded.expand_rows(&rows(300, INPUTS, 13));
    input.extend(loaded.probe_rows());
    assert_agree(loaded.trees(), &tract, &input, "derived trees: native vs tract");
    // The base-row model (what the engine's batch task runs) equals the trees on the expanded rows.
    let base_rows = rows(100, INPUTS, 14);
    let (mut served, mut expanded) = (vec![0.0; 200], vec![0.0; 200]);
    loaded.model().predict(&base_rows, &mut served).unwrap();
    tract
        .predict(&loaded.expand_rows(&base_rows), &mut expanded)
        .unwrap();
    assert!(worst(&served, &expanded) <= AGREEMENT);

    let Some(runtime) = runtime() else {
        return;
    };
    let ort = onnx_model(&bytes, derived.width(), 1, 2, Some(&runtime)).unwrap();
    assert_eq!(ort.backend(), Backend::OnnxRuntime);
    assert_agree(
        loaded.trees(),
        ort.as_ref(),
        &input,
        "derived trees: native vs ONNX Runtime",
    );
    assert_agree(
        &tract,
        ort.as_ref(),
        &input,
        "derived trees: tract vs ONNX Runtime",
    );
    assert!(
        loaded
            .max_difference(&loaded.onnx_runtime(&runtime).unwrap())
            .unwrap()
            <= AGREEMENT
    );
}

/// A liquidity model trained on a rule of the side and the distance to the pool, with a card for this
/// build's layout.
fn trained_liquidity_model() -> LiquidityModel {
    use perpdesk::ml::{
        liquidity::{CONTEXT, LiquidityCard, LiquidityMetrics},
        predictor::Range,
    };
    let width = liquidity::INPUTS;
    let x = rows(2_000, width, 6);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let y: Vec<f32> = x
        .chunks_exact(width)
        .map(|r| f32::from(u8::from(r[32] - r[33] + 0.3 * r[5] > rng.random_range(-1.0..1.0))))
        .collect();
    let w = vec![1.0; y.len()];
    let params = GbdtParams {
        trees: 60,
        ..GbdtParams::default()
    };
    let ensemble = gbdt::train(
        &Dataset {
            inputs: width,
            x: &x,
            y: &y,
            w: &w,
        },
        &params,
    )
    .unwrap();
    let range = Range {
        from_ms: 0,
        to_ms: 1,
        from: "a".into(),
        to: "b".into(),
        samples: 1,
        positives: 1,
    };
    let card = LiquidityCard {
        model: liquidity::MODEL_NAME.into(),
        version: "backends-test".into(),
        created: "now".into(),
        file: String::new(),
        sha256: String::new(),
        perpdesk_version: env!("CARGO_PKG_VERSION").into(),
        feature_schema_hash: LiquidityCard::expected_feature_schema_hash(),
        feature_dimension: perpdesk::features::SCHEMA_LEN,
        context: CONTEXT.iter().map(|s| (*s).to_owned()).collect(),
        input_hash: LiquidityCard::expected_input_hash(),
        inputs: width,
        trees: 60,
        nodes: 0,
        params,
        horizon_bars: liquidity::DEFAULT_HORIZON_BARS,
        stride: liquidity::DEFAULT_STRIDE,
        label: "test".into(),
        train: range.clone(),
        validation: range,
        purge_ms: 0,
        metrics: LiquidityMetrics {
            auc: None,
            auc_above: None,
            auc_below: None,
            auc_distance_only: None,
            log_loss: 0.5,
            baseline_log_loss: 0.6,
            brier: 0.2,
            baseline_brier: 0.25,
            calibration: Vec::new(),
            train_base_rate: 0.5,
            validation_base_rate: 0.5,
        },
        command: "tests/onnxruntime_backends.rs".into(),
    };
    LiquidityModel::new(ensemble, card)
}

#[test]
fn the_liquidity_model_file_gives_the_same_probabilities_natively_in_tract_and_in_onnx_runtime() {
    let width = liquidity::INPUTS;
    let dir = tempfile::tempdir().unwrap();
    let mut model = trained_liquidity_model();
    model.save(dir.path()).unwrap();
    // The reload check: everything below runs the file on disk, read back through its card.
    let loaded = LiquidityModel::load(dir.path()).unwrap();
    assert_eq!(loaded.ensemble(), model.ensemble());
    let bytes = std::fs::read(dir.path().join(liquidity::MODEL_FILE)).unwrap();
    let tract = TractModel::from_bytes(&bytes, width, 1, 2).unwrap();
    let input = rows(300, width, 8);
    assert_agree(loaded.model(), &tract, &input, "liquidity: native vs tract");

    let Some(runtime) = runtime() else {
        return;
    };
    let ort = onnx_model(&bytes, width, 1, 2, Some(&runtime)).unwrap();
    assert_eq!(ort.backend(), Backend::OnnxRuntime);
    assert_agree(
        loaded.model(),
        ort.as_ref(),
        &input,
        "liquidity: native vs ONNX Runtime",
    );
    let direct = loaded.onnx_runtime(&runtime).unwrap();
    assert_agree(
        loaded.model(),
        &direct,
        &input,
        "liquidity: LiquidityModel::onnx_runtime",
    );
}

#[test]
fn an_exported_mlp_gives_the_same_outputs_natively_in_tract_and_in_onnx_runtime() {
    let mlp = Mlp::seeded(&[32, 64, 64, 3], 4).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlp.onnx");
    std::fs::write(&path, mlp.onnx_bytes("mlp")).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let input = rows(200, 32, 5);

    let tract = TractModel::from_path(&path, 32, 0, 3).unwrap();
    let n = input.len() / 32;
    let (mut native, mut in_tract) = (vec![0.0; n * 3], vec![0.0; n * 3]);
    mlp.forward(&input, &mut native).unwrap();
    tract.predict(&input, &mut in_tract).unwrap();
    let d = worst(&native, &in_tract);
    assert!(d <= AGREEMENT, "MLP: native vs tract {d}");
    // Without ONNX Runtime the same call gives tract.
    assert_eq!(
        onnx_model(&bytes, 32, 0, 3, None).unwrap().backend(),
        Backend::Tract
    );

    let Some(runtime) = runtime() else {
        return;
    };
    let ort = onnx_model(&bytes, 32, 0, 3, Some(&runtime)).unwrap();
    assert_eq!(ort.backend(), Backend::OnnxRuntime);
    assert_agree(&tract, ort.as_ref(), &input, "MLP: tract vs ONNX Runtime");
    let mut in_ort = vec![0.0; n * 3];
    ort.predict(&input, &mut in_ort).unwrap();
    let d = worst(&native, &in_ort);
    assert!(d <= AGREEMENT, "MLP: native vs ONNX Runtime {d}");
}

/// The strategy evolver's Q-network, trained a little and written as `perpdesk train` writes it, reloads
/// from disk and gives the same Q-values natively, in tract and in ONNX Runtime.
#[test]
fn the_strategy_evolver_file_gives_the_same_q_values_natively_in_tract_and_in_onnx_runtime() {
    use perpdesk::ml::{
        evolver::{ACTIONS, Evolver, EvolverConfig, Performance, STATE_DIM, encode_state},
        evolver_model::{self, EvolverCard, EvolverMetrics, PretrainConfig},
    };
    // Trained weights, not just the seeded ones: a few decisions with rewards favouring one set.
    let mut evolver = Evolver::new(EvolverConfig::default()).unwrap();
    let performance = Performance::default();
    for step in 0..300 {
        let state = encode_state(None, &performance, evolver.current_index());
        let reward = if evolver.current_index() == 2 { 1.0 } else { -0.5 };
        evolver.decide(&state, reward, step);
    }
    assert!(evolver.updates() > 0);
    let dir = tempfile::tempdir().unwrap();
    let (param_sets, param_sets_hash) = evolver_model::param_sets_json();
    let mut card = EvolverCard {
        model: "strategy_evolver".into(),
        version: "backends-test".into(),
        created: String::new(),
        file: String::new(),
        sha256: String::new(),
        perpdesk_version: env!("CARGO_PKG_VERSION").into(),
        inputs: STATE_DIM,
        outputs: ACTIONS,
        state: evolver_model::state_names(),
        param_sets,
        param_sets_hash,
        pretrain: PretrainConfig::default(),
        regime_code: String::new(),
        reward: String::new(),
        train_from: String::new(),
        train_to: String::new(),
        validation_from: String::new(),
        validation_to: String::new(),
        metrics: EvolverMetrics {
            train_episodes: 0,
            validation_episodes: 0,
            transitions: 0,
            updates: evolver.updates(),
            final_loss: None,
            greedy_mean_reward: 0.0,
            baseline_mean_reward: 0.0,
            best_fixed_set: String::new(),
            best_fixed_mean_reward: 0.0,
            sets: Vec::new(),
        },
        command: "tests/onnxruntime_backends.rs".into(),
    };
    evolver_model::save(evolver.network(), &mut card, dir.path()).unwrap();
    let (mlp, _) = evolver_model::load(dir.path()).unwrap();
    assert_eq!(&mlp, evolver.network());
    let bytes = std::fs::read(dir.path().join(evolver_model::MODEL_FILE)).unwrap();
    let input = rows(200, STATE_DIM, 6);
    let n = input.len() / STATE_DIM;
    let mut native = vec![0.0; n * ACTIONS];
    mlp.forward(&input, &mut native).unwrap();
    let tract = TractModel::from_bytes(&bytes, STATE_DIM, 0, ACTIONS).unwrap();
    let mut in_tract = vec![0.0; n * ACTIONS];
    tract.predict(&input, &mut in_tract).unwrap();
    let d = worst(&native, &in_tract);
    assert!(d <= AGREEMENT, "Q-network: native vs tract {d}");

    let Some(runtime) = runtime() else {
        return;
    };
    let ort = onnx_model(&bytes, STATE_DIM, 0, ACTIONS, Some(&runtime)).unwrap();
    assert_eq!(ort.backend(), Backend::OnnxRuntime);
    assert_agree(&tract, ort.as_ref(), &input, "Q-network: tract vs ONNX Runtime");
    let mut in_ort = vec![0.0; n * ACTIONS];
    ort.predict(&input, &mut in_ort).unwrap();
    let d = worst(&native, &in_ort);
    assert!(d <= AGREEMENT, "Q-network: native vs ONNX Runtime {d}");
}

/// A shared library this process has loaded that is not ONNX Runtime (the C library).
fn some_other_library() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| path.contains("/libc.so"))
        .map(PathBuf::from)
}

/// A file that exists and is not a library.
fn not_a_library() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")
}

/// What the loader says before any library is loaded: a wrong path, a file that is not a shared library,
/// a library that is not ONNX Runtime. (Once one library is loaded, every other path is `AlreadyLoaded`.)
fn check_loading_errors() {
    let missing = OnnxRuntime::load(Path::new("/nonexistent/libonnxruntime.so.1.32.0")).unwrap_err();
    assert!(matches!(missing, OrtError::NotFound { .. }), "{missing}");
    let text = OnnxRuntime::load(&not_a_library()).unwrap_err();
    assert!(matches!(text, OrtError::Open { .. }), "{text}");
    if let Some(libc) = some_other_library() {
        let not_ort = OnnxRuntime::load(&libc).unwrap_err();
        assert!(matches!(not_ort, OrtError::NotOnnxRuntime { .. }), "{not_ort}");
        assert!(not_ort.to_string().contains("OrtGetApiBase"), "{not_ort}");
    }
}

/// ONNX Runtime for the tests of this file: every load goes through here, so the loading-error checks
/// run once, before the first load of the process, whichever test comes first.
fn runtime() -> Option<Arc<OnnxRuntime>> {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(check_loading_errors);
    common::onnxruntime()
}

#[test]
fn loading_refuses_a_wrong_path_a_non_library_and_a_library_that_is_not_onnx_runtime() {
    let Some(runtime) = runtime() else {
        return;
    };
    // CI's library is `libonnxruntime.so.1.32.0`, so its version is known.
    let version = runtime.version().unwrap_or("1.x");
    assert!(version.starts_with("1."), "{version}");
    // The same file again is the same runtime; another one is refused, not silently ignored.
    let again = OnnxRuntime::load(runtime.path()).unwrap();
    assert!(Arc::ptr_eq(&runtime, &again));
    let other = OnnxRuntime::load(&not_a_library()).unwrap_err();
    assert!(matches!(other, OrtError::AlreadyLoaded { .. }), "{other}");
}

/// The native forward pass of `mlp` on `input`, against `other` (tract or ONNX Runtime) within 1e-5.
fn assert_native_agrees(mlp: &Mlp, other: &dyn Model, input: &[f32], what: &str) {
    let n = input.len() / mlp.inputs();
    let (mut a, mut b) = (vec![0.0; n * mlp.outputs()], vec![0.0; n * mlp.outputs()]);
    mlp.forward(input, &mut a).unwrap();
    other.predict(input, &mut b).unwrap();
    let d = worst(&a, &b);
    assert!(d <= AGREEMENT, "{what}: max difference {d}");
}

#[test]
fn the_structure_files_give_the_same_code_and_reconstruction_natively_in_tract_and_in_onnx_runtime() {
    use perpdesk::ml::structure::{self, FeatureRow, StructureModel, StructureParams};
    let raw = rows(1_200, 32, 8);
    let feature_rows: Vec<FeatureRow> = raw
        .chunks_exact(32)
        .enumerate()
        .map(|(t, r)| FeatureRow {
            at: t as i64 * 3_600_000,
            row: r.try_into().unwrap(),
        })
        .collect();
    let params = StructureParams {
        epochs: 2,
        purge_ms: 0,
        ..StructureParams::default()
    };
    let mut model = structure::train(&feature_rows, &params, "test", &mut |_| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let loaded = StructureModel::load(dir.path()).unwrap();
    let input = rows(200, 32, 9);
    for (file, net, width) in [
        (structure::ENCODER_FILE, &loaded.encoder, loaded.card.code_dim),
        (structure::AUTOENCODER_FILE, &loaded.autoencoder, 32),
    ] {
        let bytes = std::fs::read(dir.path().join(file)).unwrap();
        let tract = TractModel::from_bytes(&bytes, 32, 0, width).unwrap();
        assert_native_agrees(net, &tract, &input, &format!("{file}: native vs tract"));
        let Some(runtime) = runtime() else {
            return;
        };
        let ort = onnx_model(&bytes, 32, 0, width, Some(&runtime)).unwrap();
        assert_eq!(ort.backend(), Backend::OnnxRuntime);
        assert_agree(
            &tract,
            ort.as_ref(),
            &input,
            &format!("{file}: tract vs ONNX Runtime"),
        );
        assert_native_agrees(
            net,
            ort.as_ref(),
            &input,
            &format!("{file}: native vs ONNX Runtime"),
        );
    }
}

#[test]
fn the_feature_discovery_file_gives_the_same_logits_natively_in_tract_and_in_onnx_runtime() {
    use perpdesk::ml::discovery::{self, DiscoveryModel, GateParams, WIDTH};
    let x = rows(400, WIDTH, 10);
    let y: Vec<f32> = x
        .chunks_exact(WIDTH)
        .map(|r| f32::from(u8::from(r[1] > 0.0)))
        .collect();
    let w = vec![1.0; y.len()];
    let params = GateParams {
        epochs: 2,
        permutation_repeats: 1,
        ..GateParams::default()
    };
    let mut model = discovery::fit_and_rank(
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
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let loaded = DiscoveryModel::load(dir.path()).unwrap();
    let bytes = std::fs::read(dir.path().join(discovery::MODEL_FILE)).unwrap();
    let input = rows(200, WIDTH, 11);
    let tract = TractModel::from_bytes(&bytes, WIDTH, 0, 1).unwrap();
    assert_native_agrees(&loaded.net, &tract, &input, "discovery: native vs tract");
    let Some(runtime) = runtime() else {
        return;
    };
    let ort = onnx_model(&bytes, WIDTH, 0, 1, Some(&runtime)).unwrap();
    assert_eq!(ort.backend(), Backend::OnnxRuntime);
    assert_agree(&tract, ort.as_ref(), &input, "discovery: tract vs ONNX Runtime");
    assert_native_agrees(
        &loaded.net,
        ort.as_ref(),
        &input,
        "discovery: native vs ONNX Runtime",
    );
}
