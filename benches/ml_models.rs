//! The neural models' inference in FP32 and INT8 on both backends, the batch predictor end to end, and one
//! candidate signal from its analysis to the `hybrid` decision.
//!
//! * `quantized/<model>/<precision>/<backend>/batch_<n>`: the MLP shapes of the neural models — autoencoder
//!   32→64→16→64→32, a discovery-style 42→64→32→1, a Q-network 20→64→64→8 — with seeded weights. **The
//!   shapes are stand-ins until the trained files exist**; latency depends on the shape, not on the weights.
//!   Each runs as FP32 (`Mlp::to_onnx`), INT8 weight-only and INT8 static QDQ (`ml::quantize`, calibrated on
//!   256 random rows), in tract and (with `ORT_DYLIB_PATH`) ONNX Runtime, at batch 1 and 32. The INT8
//!   variants' difference from FP32 on 256 other rows is printed on stderr once per model and variant.
//! * `batch_predictor/…`: requests through `ml::batch::run` on the signal predictor (native trees, the
//!   default training shape) to their results: 32 requests closing one full batch, and a single request
//!   with `max_batch = 1`.
//! * `feature_to_decision`: a warmed `SymbolAnalysis` (5m/15m/1h) and a candidate signal →
//!   `strategy::hybrid::model_row` → the signal predictor → `hybrid::decide` at the break-even threshold.

use std::{hint::black_box, sync::Arc};

use criterion::{Criterion, criterion_group, criterion_main};
use perpdesk::{
    domain::{Bar, Interval, Side, SymbolId},
    ml::{
        batch::{self, BatchSettings, InferenceRequest, InferenceResult},
        gbdt::{self, Dataset, GbdtParams},
        mlp::Mlp,
        onnxruntime::{self, OnnxRuntime},
        predictor::INPUTS,
        quantize::{Calibration, Granularity, Head, QuantizedMlp, Validation},
        runtime::{Model, NativeTrees, TractModel},
    },
    strategy::{AnalysisConfig, QualityScore, Signal, SymbolAnalysis, hybrid},
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::mpsc;

fn random_rows(count: usize, width: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count * width).map(|_| rng.random_range(-2.0..2.0)).collect()
}

/// ONNX Runtime from `ORT_DYLIB_PATH`, or `None` with a note (those rows are then missing).
fn runtime() -> Option<Arc<OnnxRuntime>> {
    let Some(path) = onnxruntime::library_from_env() else {
        eprintln!("ORT_DYLIB_PATH is not set: the ONNX Runtime rows are skipped");
        return None;
    };
    Some(OnnxRuntime::load(&path).expect("ORT_DYLIB_PATH does not load"))
}

fn quantized(c: &mut Criterion) {
    let ort = runtime();
    let shapes: [(&str, &[usize], Head); 3] = [
        ("autoencoder_32_64_16_64_32", &[32, 64, 16, 64, 32], Head::Values),
        ("discovery_42_64_32_1", &[42, 64, 32, 1], Head::Threshold(0.0)),
        ("q_network_20_64_64_8", &[20, 64, 64, 8], Head::ArgMax),
    ];
    for (seed, (name, sizes, head)) in shapes.into_iter().enumerate() {
        let mlp = Mlp::seeded(sizes, 70 + seed as u64).expect("mlp");
        let (inputs, outputs) = (mlp.inputs(), mlp.outputs());
        let representative = random_rows(256, inputs, 80 + seed as u64);
        let check = random_rows(256, inputs, 90 + seed as u64);
        let mut fp32_out = vec![0.0_f32; 256 * outputs];
        mlp.forward(&check, &mut fp32_out).expect("forward");
        let variants = [
            ("fp32", mlp.onnx_bytes(name), None),
            (
                "int8_weight_only",
                QuantizedMlp::weight_only(&mlp, Granularity::PerChannel).onnx_bytes(name),
                Some(()),
            ),
            (
                "int8_static_qdq",
                QuantizedMlp::static_qdq(
                    &mlp,
                    &representative,
                    Calibration::MinMax,
                    Granularity::PerChannel,
                )
                .expect("calibration")
                .onnx_bytes(name),
                Some(()),
            ),
        ];
        for (precision, bytes, is_int8) in &variants {
            let tract = TractModel::from_bytes(bytes, inputs, 0, outputs).expect("tract");
            if is_int8.is_some() {
                let mut out = vec![0.0_f32; 256 * outputs];
                tract.predict(&check, &mut out).expect("predict");
                let v = Validation::compare(&fp32_out, &out, outputs, head);
                eprintln!(
                    "{name} {precision} vs fp32 (tract, 256 rows): max |Δ| {:.4} ({:.2} % of the output scale {:.3}), mean |Δ| {:.5} ({:.3} %), decisions agree {}",
                    v.max_abs_diff,
                    v.max_relative() * 100.0,
                    v.output_scale,
                    v.mean_abs_diff,
                    v.mean_relative() * 100.0,
                    v.agreement
                        .map_or("n/a".to_owned(), |a| format!("{:.1} %", a * 100.0))
                );
            }
            let in_ort = ort
                .as_ref()
                .map(|r| r.model(bytes, inputs, 0, outputs).expect("ONNX Runtime session"));
            let mut backends: Vec<(&str, &dyn Model)> = vec![("tract", &tract)];
            if let Some(model) = &in_ort {
                backends.push(("onnxruntime", model));
            }
            for (backend, model) in backends {
                for batch in [1_usize, 32] {
                    let input = &check[..batch * inputs];
                    let mut out = vec![0.0_f32; batch * outputs];
                    c.bench_function(
                        &format!("quantized/{name}/{precision}/{backend}/batch_{batch}"),
                        |b| {
                            b.iter(|| model.predict(black_box(input), &mut out).expect("predict"));
                        },
                    );
                }
            }
        }
    }
}

/// The signal predictor in its default training shape (100 trees, depth ≤ 3), on synthetic rows.
fn trees() -> (NativeTrees, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let rows = 2_000;
    let x: Vec<f32> = (0..rows * INPUTS).map(|_| rng.random_range(-1.0..1.0)).collect();
    let y: Vec<f32> = x
        .chunks_exact(INPUTS)
        .map(|r| f32::from(u8::from(r[0] * r[1] + r[33] > rng.random_range(-0.5..0.5))))
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

fn batch_predictor(c: &mut Criterion) {
    let (native, rows) = trees();
    let model: Arc<dyn Model> = Arc::new(native);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    for (label, max_batch, requests) in [
        ("full_batch_32_requests", 32_usize, 32_usize),
        ("one_request_max_batch_1", 1, 1),
    ] {
        let (request_tx, request_rx) = mpsc::channel::<InferenceRequest>(64);
        let (result_tx, mut result_rx) = mpsc::channel::<InferenceResult>(64);
        let settings = BatchSettings {
            max_batch,
            ..BatchSettings::default()
        };
        let task = runtime.spawn(batch::run(Arc::clone(&model), settings, request_rx, result_tx));
        let requests: Vec<InferenceRequest> = rows
            .chunks_exact(INPUTS)
            .take(requests)
            .enumerate()
            .map(|(id, row)| InferenceRequest {
                id: id as u64,
                row: row.try_into().expect("a row of INPUTS"),
            })
            .collect();
        c.bench_function(&format!("batch_predictor/{label}"), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    for request in &requests {
                        request_tx.send(*request).await.expect("predictor running");
                    }
                    for _ in 0..requests.len() {
                        black_box(result_rx.recv().await.expect("a result"));
                    }
                });
            });
        });
        drop(request_tx);
        runtime.block_on(task).expect("predictor task");
    }
}

/// A random walk of 5m bars and its 15m and 1h aggregates, fed in time order (higher timeframes first
/// when they close at the same instant).
fn warmed_analysis() -> SymbolAnalysis {
    const FIVE: i64 = 300_000;
    let mut analysis = SymbolAnalysis::new(&AnalysisConfig::default()).expect("analysis");
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut close = 100.0_f64;
    let bars: Vec<Bar> = (0..3_000)
        .map(|i| {
            let open = close;
            close = open * (1.0 + rng.random_range(-0.003..0.003));
            let open_time = 1_704_067_200_000 + i * FIVE;
            Bar {
                open_time,
                close_time: open_time + FIVE - 1,
                open,
                high: open.max(close) * (1.0 + rng.random_range(0.0..0.002)),
                low: open.min(close) * (1.0 - rng.random_range(0.0..0.002)),
                close,
                volume: rng.random_range(500.0..1_500.0),
                quote_volume: 0.0,
                trades: 0,
                closed: true,
            }
        })
        .collect();
    let aggregate = |chunk: &[Bar]| Bar {
        open_time: chunk[0].open_time,
        close_time: chunk[chunk.len() - 1].close_time,
        open: chunk[0].open,
        high: chunk.iter().map(|b| b.high).fold(f64::MIN, f64::max),
        low: chunk.iter().map(|b| b.low).fold(f64::MAX, f64::min),
        close: chunk[chunk.len() - 1].close,
        volume: chunk.iter().map(|b| b.volume).sum(),
        quote_volume: 0.0,
        trades: 0,
        closed: true,
    };
    for (i, bar) in bars.iter().enumerate() {
        if (i + 1) % 12 == 0 {
            let hour = aggregate(&bars[i + 1 - 12..=i]);
            analysis.on_closed_bar(Interval::H1, &hour).expect("1h bar");
        }
        if (i + 1) % 3 == 0 {
            let quarter = aggregate(&bars[i + 1 - 3..=i]);
            analysis.on_closed_bar(Interval::M15, &quarter).expect("15m bar");
        }
        analysis.on_closed_bar(Interval::M5, bar).expect("5m bar");
    }
    analysis
}

fn feature_to_decision(c: &mut Criterion) {
    let (native, _) = trees();
    let analysis = warmed_analysis();
    let entry = analysis.entry().last_bar().expect("a closed bar").close;
    let signal = Signal {
        symbol: SymbolId(0),
        side: Side::Long,
        at: analysis.entry().last_bar().expect("a closed bar").close_time,
        entry,
        stop: entry * 0.99,
        take_profit: entry * 1.02,
        reward_risk: 2.0,
        confluences: Vec::new(),
        evidence: Vec::new(),
        quality: QualityScore {
            components: [0.7; 6],
            total: 0.7,
        },
    };
    // The break-even probability at the minimum reward:risk of 2 (the operating threshold).
    let threshold = 1.0 / 3.0;
    let mut row = [0.0_f32; INPUTS];
    let mut out = [0.0_f32; 2];
    c.bench_function("feature_to_decision/model_row_native_trees_decide", |b| {
        b.iter(|| {
            assert!(hybrid::model_row(
                black_box(&analysis),
                black_box(&signal),
                &mut row
            ));
            native.predict(&row, &mut out).expect("predict");
            black_box(hybrid::decide(out[1], threshold))
        });
    });
}

criterion_group!(benches, quantized, batch_predictor, feature_to_decision);
criterion_main!(benches);
