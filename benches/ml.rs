//! Inference latency on every backend, at batch 1 and 32 (`BATCH_PREDICTION_SIZE`):
//!
//! * the signal predictor: the native tree walk, tract's `TreeEnsembleClassifier` and ONNX Runtime's, on
//!   the same exported model (the default training shape: 100 trees, depth 3, 42 inputs, trained on
//!   synthetic rows so the bench needs no data files);
//! * a 32→64→64→3 `Gemm`/`Relu` MLP (the size of the neural models): the plain-Rust forward pass, tract
//!   and ONNX Runtime, on the same exported file.
//!
//! ONNX Runtime runs when `ORT_DYLIB_PATH` points at the library (`.ci/run` extracts it into
//! `.ci/cache/onnxruntime/`); without it those rows are skipped with a line on stderr.

use std::{hint::black_box, sync::Arc};

use criterion::{Criterion, criterion_group, criterion_main};
use perpdesk::ml::{
    gbdt::{self, Dataset, GbdtParams},
    mlp::Mlp,
    onnxruntime::{self, OnnxRuntime},
    predictor::INPUTS,
    runtime::{Model, NativeTrees, TractModel},
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn model_and_rows() -> (NativeTrees, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let rows = 2_000;
    let x: Vec<f32> = (0..rows * INPUTS).map(|_| rng.random_range(-1.0..1.0)).collect();
    let y: Vec<f32> = x
        .chunks_exact(INPUTS)
        .map(|r| {
            if r[0] * r[1] + r[33] > rng.random_range(-0.5..0.5) {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let w = vec![1.0; rows];
    let ensemble = gbdt::train(
        &Dataset {
            inputs: INPUTS,
            x: &x,
            y: &y,
            w: &w,
        },
        &GbdtParams::default(),
    )
    .expect("training");
    (
        NativeTrees {
            ensemble: Arc::new(ensemble),
        },
        x,
    )
}

/// ONNX Runtime from `ORT_DYLIB_PATH`, or `None` with a note (those rows are then missing).
fn runtime() -> Option<Arc<OnnxRuntime>> {
    let Some(path) = onnxruntime::library_from_env() else {
        eprintln!("ORT_DYLIB_PATH is not set: the ONNX Runtime rows are skipped");
        return None;
    };
    Some(OnnxRuntime::load(&path).expect("ORT_DYLIB_PATH does not load"))
}

fn predictor(c: &mut Criterion) {
    let (native, rows) = model_and_rows();
    let bytes = perpdesk::ml::onnx::encode(&perpdesk::ml::onnx::tree_classifier(
        &native.ensemble,
        perpdesk::ml::onnx::PostTransform::Logistic,
        "bench",
        &[],
    ));
    let tract = TractModel::from_bytes(&bytes, INPUTS, 1, 2).expect("tract");
    let ort = runtime().map(|r| r.model(&bytes, INPUTS, 1, 2).expect("ONNX Runtime session"));
    for batch in [1_usize, 32] {
        let input = &rows[..batch * INPUTS];
        let mut out = vec![0.0_f32; batch * 2];
        c.bench_function(&format!("signal_predictor/native/batch_{batch}"), |b| {
            b.iter(|| native.predict(black_box(input), &mut out).expect("predict"));
        });
        c.bench_function(&format!("signal_predictor/tract/batch_{batch}"), |b| {
            b.iter(|| tract.predict(black_box(input), &mut out).expect("predict"));
        });
        if let Some(ort) = &ort {
            c.bench_function(&format!("signal_predictor/onnxruntime/batch_{batch}"), |b| {
                b.iter(|| ort.predict(black_box(input), &mut out).expect("predict"));
            });
        }
    }
}

fn mlp(c: &mut Criterion) {
    let mlp = Mlp::seeded(&[32, 64, 64, 3], 9).expect("mlp");
    let bytes = mlp.onnx_bytes("bench");
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let rows: Vec<f32> = (0..32 * 32).map(|_| rng.random_range(-1.0..1.0)).collect();
    let tract = TractModel::from_bytes(&bytes, 32, 0, 3).expect("tract");
    let ort = runtime().map(|r| r.model(&bytes, 32, 0, 3).expect("ONNX Runtime session"));
    for batch in [1_usize, 32] {
        let input = &rows[..batch * 32];
        let mut out = vec![0.0_f32; batch * 3];
        c.bench_function(&format!("mlp_32_64_64_3/native/batch_{batch}"), |b| {
            b.iter(|| mlp.forward(black_box(input), &mut out).expect("forward"));
        });
        c.bench_function(&format!("mlp_32_64_64_3/tract/batch_{batch}"), |b| {
            b.iter(|| tract.predict(black_box(input), &mut out).expect("predict"));
        });
        if let Some(ort) = &ort {
            c.bench_function(&format!("mlp_32_64_64_3/onnxruntime/batch_{batch}"), |b| {
                b.iter(|| ort.predict(black_box(input), &mut out).expect("predict"));
            });
        }
    }
}

criterion_group!(benches, predictor, mlp);
criterion_main!(benches);
