//! Signal predictor latency: the native tree walk against tract's `TreeEnsembleClassifier` on the same
//! exported model, at batch 1 and 32 (`BATCH_PREDICTION_SIZE`).
//!
//! The model has the default training shape (100 trees, depth 3, 42 inputs), trained on synthetic rows
//! so the bench needs no data files.

use std::{hint::black_box, sync::Arc};

use criterion::{Criterion, criterion_group, criterion_main};
use perpdesk::ml::{
    gbdt::{self, Dataset, GbdtParams},
    predictor::INPUTS,
    runtime::{Model, NativeTrees},
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

fn predictor(c: &mut Criterion) {
    let (native, rows) = model_and_rows();
    let bytes = perpdesk::ml::onnx::encode(&perpdesk::ml::onnx::tree_classifier(
        &native.ensemble,
        perpdesk::ml::onnx::PostTransform::Logistic,
        "bench",
        &[],
    ));
    let tract = perpdesk::ml::runtime::TractModel::from_bytes(&bytes, INPUTS, 1, 2).expect("tract");
    for batch in [1_usize, 32] {
        let input = &rows[..batch * INPUTS];
        let mut out = vec![0.0_f32; batch * 2];
        c.bench_function(&format!("signal_predictor/native/batch_{batch}"), |b| {
            b.iter(|| native.predict(black_box(input), &mut out).expect("predict"));
        });
        c.bench_function(&format!("signal_predictor/tract/batch_{batch}"), |b| {
            b.iter(|| tract.predict(black_box(input), &mut out).expect("predict"));
        });
    }
}

criterion_group!(benches, predictor);
criterion_main!(benches);
