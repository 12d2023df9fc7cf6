//! INT8 variants of the neural models' MLPs in both backends: every variant (weight-only and static QDQ,
//! per-channel and per-tensor weight scales) written to disk reloads in tract and, when `ORT_DYLIB_PATH` is
//! set, in ONNX Runtime; both give the native reference of the quantised arithmetic
//! (`QuantizedMlp::forward`) within 0.5 % of the output scale (a hidden value may land one quantisation
//! step away where a rounding tie is resolved differently), and stay within the documented bound of FP32
//! (`Tolerance::default()`: 5 % of the output scale at worst, 1 % on average). `select` measures in
//! ONNX Runtime when it is loaded and returns a model of that backend.
//!
//! Without `ORT_DYLIB_PATH` the ONNX Runtime parts print a SKIP line and pass, unless
//! `PERPDESK_REQUIRE_ONNXRUNTIME` is set (as in `tests/onnxruntime_backends.rs`).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use perpdesk::ml::{
    mlp::Mlp,
    quantize::{
        Calibration, Granularity, Head, Precision, QuantizedMlp, SelectOptions, Tolerance, Validation,
        decide, select,
    },
    runtime::{Backend, Model, TractModel},
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn rows(count: usize, width: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count * width).map(|_| rng.random_range(-2.0..2.0)).collect()
}

fn predict(model: &dyn Model, input: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; input.len() / model.inputs() * model.outputs()];
    model.predict(input, &mut out).unwrap();
    out
}

/// The neural models' shapes (stand-ins until the trained files exist) with their decision heads.
fn shapes() -> [(&'static str, Vec<usize>, Head); 3] {
    [
        ("autoencoder", vec![32, 64, 16, 64, 32], Head::Values),
        ("discovery", vec![42, 64, 32, 1], Head::Threshold(0.0)),
        ("q_network", vec![20, 64, 64, 8], Head::ArgMax),
    ]
}

fn variants(mlp: &Mlp, representative: &[f32]) -> Vec<QuantizedMlp> {
    vec![
        QuantizedMlp::weight_only(mlp, Granularity::PerChannel),
        QuantizedMlp::weight_only(mlp, Granularity::PerTensor),
        QuantizedMlp::static_qdq(mlp, representative, Calibration::MinMax, Granularity::PerChannel).unwrap(),
        QuantizedMlp::static_qdq(
            mlp,
            representative,
            Calibration::Percentile(99.99),
            Granularity::PerTensor,
        )
        .unwrap(),
    ]
}

#[test]
fn int8_files_reload_in_tract_and_onnx_runtime_and_match_the_reference_and_fp32() {
    let runtime = common::onnxruntime();
    let dir = tempfile::tempdir().unwrap();
    let tolerance = Tolerance::default();
    for (seed, (name, sizes, head)) in shapes().into_iter().enumerate() {
        let mlp = Mlp::seeded(&sizes, 30 + seed as u64).unwrap();
        let (inputs, outputs) = (mlp.inputs(), mlp.outputs());
        let representative = rows(256, inputs, 40 + seed as u64);
        // Checked on rows the calibration did not see.
        let input = rows(200, inputs, 50 + seed as u64);
        let mut fp32 = vec![0.0; 200 * outputs];
        mlp.forward(&input, &mut fp32).unwrap();
        for (i, q) in variants(&mlp, &representative).into_iter().enumerate() {
            let what = format!("{name} {:?} #{i}", q.scheme);
            let path = dir.path().join(format!("{name}.{i}.int8.onnx"));
            std::fs::write(&path, q.onnx_bytes(name)).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            let mut reference = vec![0.0; 200 * outputs];
            q.forward(&input, &mut reference).unwrap();

            let against_fp32 = Validation::compare(&fp32, &reference, outputs, head);
            assert!(
                against_fp32.max_relative() <= tolerance.max_relative
                    && against_fp32.mean_relative() <= tolerance.mean_relative,
                "{what}: INT8 vs FP32 {against_fp32:?}"
            );
            eprintln!(
                "{what}: INT8 vs FP32 max {:.3} % mean {:.4} % of the output scale, agreement {:?}",
                against_fp32.max_relative() * 100.0,
                against_fp32.mean_relative() * 100.0,
                against_fp32.agreement
            );

            let tract = TractModel::from_path(&path, inputs, 0, outputs).unwrap();
            let in_tract = Validation::compare(&reference, &predict(&tract, &input), outputs, head);
            assert!(
                in_tract.max_relative() <= 5e-3,
                "{what}: tract vs reference {in_tract:?}"
            );
            if let Some(runtime) = &runtime {
                let ort = runtime.model(&bytes, inputs, 0, outputs).unwrap();
                let in_ort = Validation::compare(&reference, &predict(&ort, &input), outputs, head);
                assert!(
                    in_ort.max_relative() <= 5e-3,
                    "{what}: ONNX Runtime vs reference {in_ort:?}"
                );
                // Batch 1 gives the rows of the batch.
                let batch = predict(&ort, &input);
                for r in [0, 57, 199] {
                    let one = predict(&ort, &input[r * inputs..(r + 1) * inputs]);
                    let d = one
                        .iter()
                        .zip(&batch[r * outputs..(r + 1) * outputs])
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0_f32, f32::max);
                    assert!(
                        d <= 1e-4 * against_fp32.output_scale.max(1.0),
                        "{what}: row {r} alone {d}"
                    );
                }
            }
        }
    }
}

#[test]
fn select_measures_in_the_loaded_backend_and_its_choice_follows_the_numbers() {
    let runtime = common::onnxruntime();
    let mlp = Mlp::seeded(&[20, 64, 64, 8], 60).unwrap();
    let representative = rows(128, 20, 61);
    let options = SelectOptions {
        head: Head::ArgMax,
        rounds_batch1: 21,
        rounds_batch32: 7,
        ..SelectOptions::default()
    };
    let backends: Vec<(Backend, Option<&perpdesk::ml::onnxruntime::OnnxRuntime>)> =
        std::iter::once((Backend::Tract, None))
            .chain(runtime.as_deref().map(|r| (Backend::OnnxRuntime, Some(r))))
            .collect();
    for (backend, ort) in backends {
        let selected = select("q_network", &mlp, &representative, ort, &options).unwrap();
        let report = &selected.report;
        eprintln!("{backend}: {report:?}");
        assert_eq!(report.backend, backend);
        assert_eq!(selected.model.backend(), backend);
        // Both variants loaded and ran in this backend.
        assert_eq!(report.candidates.len(), 2);
        assert!(report.candidates.iter().all(|c| c.measured.is_ok()), "{report:?}");
        let again = decide(report.fp32.unwrap(), &report.candidates, &options.tolerance);
        assert_eq!(again.precision, report.precision);
        assert_eq!(again.reason, report.reason);
        if report.precision == Precision::Fp32 {
            let mut want = vec![0.0; 128 * 8];
            mlp.forward(&representative, &mut want).unwrap();
            let got = predict(selected.model.as_ref(), &representative);
            let d = want
                .iter()
                .zip(&got)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0_f32, f32::max);
            assert!(d <= 1e-4, "{backend}: the FP32 model is not FP32 ({d})");
        }
    }
}
