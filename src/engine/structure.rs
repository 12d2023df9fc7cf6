//! The market-structure reading of the universe: every symbol's feature vector through the structure
//! autoencoder, off the engine task, back as one event.
//!
//! Why a task of its own: the engine must never wait for a model (ARCHITECTURE.md §3), and the reading
//! is wanted for the whole universe at once (the market's regime is the share of symbols in each), not
//! per signal, so the signal predictor's request queue is the wrong shape. On each virtual cycle the
//! engine sends the feature vectors it has (one request at a time: a cycle whose previous reading is
//! still running is skipped); the task runs the encoder and the autoencoder in batches of
//! [`BATCH_PREDICTION_SIZE`] through the [`Model`] interface (tract or ONNX Runtime), times every batch
//! in [`PredictorMetrics`] for the models panel, and answers with each symbol's regime, novelty and code.
//! The engine keeps the newest answer and hands the universe's mean code to the strategy evolver as its
//! regime input.

use std::{sync::Arc, time::Instant};

use tokio::sync::mpsc;

use crate::{
    domain::SymbolId,
    features::SCHEMA_LEN,
    ml::{
        MlError,
        batch::{BATCH_PREDICTION_SIZE, PredictorMetrics},
        quantize::{SelectOptions, load_mlp},
        runtime::{Backend, Model},
        structure::{STRUCTURE_VECTOR_DIM, StructureModel},
    },
};

/// The feature vectors of one virtual cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct StructureRequest {
    pub rows: Vec<(SymbolId, [f32; SCHEMA_LEN])>,
}

/// One symbol's reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SymbolStructure {
    pub symbol: SymbolId,
    pub code: [f32; STRUCTURE_VECTOR_DIM],
    pub regime: usize,
    /// Mean squared reconstruction error per feature, standardised units.
    pub error: f32,
    /// Above the card's novelty threshold: a market the autoencoder has not seen the like of.
    pub novel: bool,
}

/// The answer to a [`StructureRequest`]; `Err` when a model failed on the batch (logged, skipped).
#[derive(Debug, Clone, PartialEq)]
pub struct StructureAnswer {
    pub readings: Result<Vec<SymbolStructure>, String>,
}

/// The engine's end: the model (for names and the card), the request channel and the newest answer.
#[derive(Debug)]
pub struct StructureLink {
    pub model: Arc<StructureModel>,
    pub backend: Backend,
    /// `FP32`, or the INT8 scheme `ENABLE_QUANTIZATION` chose (encoder / autoencoder when they differ).
    pub precision: String,
    pub metrics: Arc<PredictorMetrics>,
    requests: mpsc::Sender<StructureRequest>,
    in_flight: bool,
    /// The newest readings, one per symbol that had a full feature vector.
    pub readings: Vec<SymbolStructure>,
    /// Cycles skipped because the previous reading was still running or the task was gone.
    pub skipped: u64,
}

impl StructureLink {
    /// Starts the structure task on `model`, answering into `events`. Must run inside a tokio runtime.
    pub fn spawn<E>(
        model: Arc<StructureModel>,
        enable_quantization: bool,
        events: mpsc::Sender<E>,
    ) -> Result<Self, MlError>
    where
        E: From<StructureAnswer> + Send + 'static,
    {
        if model.card.code_dim != STRUCTURE_VECTOR_DIM {
            return Err(MlError::Shape(format!(
                "the structure model gives {} code values, the engine reads {STRUCTURE_VECTOR_DIM}",
                model.card.code_dim
            )));
        }
        // With `ENABLE_QUANTIZATION`, each network runs as INT8 only where that was measured faster at
        // equal accuracy on rows like the training data (`ml::quantize`); otherwise FP32.
        let representative = representative_rows(&model, REPRESENTATIVE_ROWS);
        let runtime = crate::ml::onnxruntime::loaded();
        let options = SelectOptions::default();
        let mut precisions = Vec::new();
        let mut load = |name: &str, mlp: &crate::ml::mlp::Mlp| -> Result<Arc<dyn Model>, MlError> {
            let selected = load_mlp(
                name,
                mlp,
                &representative,
                enable_quantization,
                runtime.as_deref(),
                &options,
            )
            .map_err(|e| MlError::Format(format!("{name}: {e}")))?;
            precisions.push(selected.report.precision.to_string());
            Ok(selected.model)
        };
        let encoder = load("structure_encoder", &model.encoder)?;
        let autoencoder = load("structure_autoencoder", &model.autoencoder)?;
        precisions.dedup();
        let precision = precisions.join(" / ");
        let backend = encoder.backend();
        let (tx, rx) = mpsc::channel(1);
        let metrics = Arc::new(PredictorMetrics::default());
        let task_metrics = Arc::clone(&metrics);
        let task_model = Arc::clone(&model);
        tokio::spawn(async move {
            run(&task_model, &encoder, &autoencoder, rx, events, &task_metrics).await;
            tracing::info!("structure task stopped");
        });
        Ok(Self {
            model,
            backend,
            precision,
            metrics,
            requests: tx,
            in_flight: false,
            readings: Vec::new(),
            skipped: 0,
        })
    }

    /// Sends this cycle's rows unless a reading is still running. `false` when nothing was sent.
    pub fn request(&mut self, rows: Vec<(SymbolId, [f32; SCHEMA_LEN])>) -> bool {
        if self.in_flight || rows.is_empty() {
            self.skipped += u64::from(self.in_flight);
            return false;
        }
        if self.requests.try_send(StructureRequest { rows }).is_err() {
            self.skipped += 1;
            return false;
        }
        self.in_flight = true;
        true
    }

    /// Takes an answer in: the readings replace the previous ones; a failure keeps them.
    pub fn resolve(&mut self, answer: StructureAnswer) {
        self.in_flight = false;
        match answer.readings {
            Ok(readings) => self.readings = readings,
            Err(error) => tracing::warn!(%error, "structure reading failed; keeping the previous one"),
        }
    }

    /// The universe's mean code (the evolver's regime input); `None` before the first reading.
    pub fn market_code(&self) -> Option<[f32; STRUCTURE_VECTOR_DIM]> {
        if self.readings.is_empty() {
            return None;
        }
        let mut mean = [0.0_f32; STRUCTURE_VECTOR_DIM];
        for r in &self.readings {
            for (m, c) in mean.iter_mut().zip(&r.code) {
                *m += c;
            }
        }
        let n = self.readings.len() as f32;
        for m in &mut mean {
            *m /= n;
        }
        Some(mean)
    }

    /// Symbols per regime, in the card's regime order, and how many readings are novel.
    pub fn regime_counts(&self) -> (Vec<usize>, usize) {
        let mut counts = vec![0; self.model.card.regimes.len()];
        for r in &self.readings {
            if let Some(c) = counts.get_mut(r.regime) {
                *c += 1;
            }
        }
        (counts, self.readings.iter().filter(|r| r.novel).count())
    }

    /// The newest reading of `symbol`.
    pub fn reading(&self, symbol: SymbolId) -> Option<&SymbolStructure> {
        self.readings.iter().find(|r| r.symbol == symbol)
    }
}

/// Representative rows for quantisation: drawn around the training data's per-feature mean and spread
/// (the card's standardiser), seeded, so calibration and the accuracy check see the same scale of inputs
/// the model was trained on.
fn representative_rows(model: &StructureModel, rows: usize) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed);
    let s = &model.card.standardizer;
    let mut out = Vec::with_capacity(rows * SCHEMA_LEN);
    for _ in 0..rows {
        for (m, sd) in s.mean.iter().zip(&s.std) {
            // Sum of three uniforms: bell-shaped within ±3 standard deviations.
            let z: f32 = (0..3).map(|_| rng.random_range(-1.0_f32..1.0)).sum();
            out.push(m + sd * z);
        }
    }
    out
}

/// Rows the quantisation check calibrates and compares on.
const REPRESENTATIVE_ROWS: usize = 512;

/// Reads every request through both networks in batches; answers until either channel closes.
async fn run<E>(
    model: &StructureModel,
    encoder: &Arc<dyn Model>,
    autoencoder: &Arc<dyn Model>,
    mut requests: mpsc::Receiver<StructureRequest>,
    events: mpsc::Sender<E>,
    metrics: &PredictorMetrics,
) where
    E: From<StructureAnswer> + Send,
{
    let mut inputs = Vec::with_capacity(BATCH_PREDICTION_SIZE * SCHEMA_LEN);
    let mut codes = vec![0.0_f32; BATCH_PREDICTION_SIZE * STRUCTURE_VECTOR_DIM];
    let mut recon = vec![0.0_f32; BATCH_PREDICTION_SIZE * SCHEMA_LEN];
    while let Some(request) = requests.recv().await {
        let readings = read_all(
            model,
            encoder.as_ref(),
            autoencoder.as_ref(),
            &request,
            metrics,
            (&mut inputs, &mut codes, &mut recon),
        );
        if events
            .send(E::from(StructureAnswer {
                readings: readings.map_err(|e| e.to_string()),
            }))
            .await
            .is_err()
        {
            break;
        }
    }
}

fn read_all(
    model: &StructureModel,
    encoder: &dyn Model,
    autoencoder: &dyn Model,
    request: &StructureRequest,
    metrics: &PredictorMetrics,
    (inputs, codes, recon): (&mut Vec<f32>, &mut Vec<f32>, &mut Vec<f32>),
) -> Result<Vec<SymbolStructure>, MlError> {
    let mut out = Vec::with_capacity(request.rows.len());
    for chunk in request.rows.chunks(BATCH_PREDICTION_SIZE) {
        inputs.clear();
        for (_, row) in chunk {
            inputs.extend_from_slice(row);
        }
        let n = chunk.len();
        let started = Instant::now();
        let result = encoder
            .predict(inputs, &mut codes[..n * STRUCTURE_VECTOR_DIM])
            .and_then(|()| autoencoder.predict(inputs, &mut recon[..n * SCHEMA_LEN]));
        metrics.record_batch(n, BATCH_PREDICTION_SIZE, started.elapsed(), result.is_err());
        result?;
        for (i, (symbol, row)) in chunk.iter().enumerate() {
            let mut code = [0.0_f32; STRUCTURE_VECTOR_DIM];
            code.copy_from_slice(&codes[i * STRUCTURE_VECTOR_DIM..(i + 1) * STRUCTURE_VECTOR_DIM]);
            let error = model.error(row, &recon[i * SCHEMA_LEN..(i + 1) * SCHEMA_LEN]);
            out.push(SymbolStructure {
                symbol: *symbol,
                code,
                regime: model.card.kmeans.assign(&code),
                error,
                novel: f64::from(error) > model.card.novelty_threshold,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_task_reads_every_row_in_batches_and_one_request_runs_at_a_time() {
        let model = Arc::new(crate::ml::structure::model_for_tests());
        let (tx, mut rx) = mpsc::channel::<StructureAnswer>(4);
        let mut link = StructureLink::spawn(Arc::clone(&model), false, tx).unwrap();
        assert_eq!(link.precision, "FP32");
        assert!(link.market_code().is_none());
        // 70 rows: three batches (32, 32, 6); row 69 is far outside anything trained on.
        let rows: Vec<(SymbolId, [f32; SCHEMA_LEN])> = (0..70_u16)
            .map(|i| {
                let v = if i == 69 { 25.0 } else { f32::from(i % 7) * 0.1 };
                (SymbolId(i), [v; SCHEMA_LEN])
            })
            .collect();
        assert!(link.request(rows.clone()));
        assert!(!link.request(rows.clone()), "one reading at a time");
        assert_eq!(link.skipped, 1);
        link.resolve(rx.recv().await.unwrap());
        assert_eq!(link.readings.len(), 70);
        assert_eq!(link.metrics.snapshot().stats.batches, 3);
        // Each reading is the model's own reading of that row (batched = single).
        for (reading, (id, row)) in link.readings.iter().zip(&rows) {
            let single = model.read(row).unwrap();
            assert_eq!(reading.symbol, *id);
            assert_eq!(reading.regime, single.regime);
            assert_eq!(reading.novel, single.novel);
            assert!((reading.error - single.error).abs() <= 1e-4 * (1.0 + single.error));
            for (a, b) in reading.code.iter().zip(&single.code) {
                assert!((a - b).abs() <= 1e-4, "{a} vs {b}");
            }
        }
        assert!(link.reading(SymbolId(69)).unwrap().novel);
        let (counts, novel) = link.regime_counts();
        assert_eq!(counts.iter().sum::<usize>(), 70);
        assert!(novel >= 1);
        let mean = link.market_code().unwrap();
        let want: f32 = link.readings.iter().map(|r| r.code[0]).sum::<f32>() / 70.0;
        assert!((mean[0] - want).abs() <= 1e-4);
        // A failed reading keeps the previous one and frees the link.
        link.resolve(StructureAnswer {
            readings: Err("boom".into()),
        });
        assert_eq!(link.readings.len(), 70);
        assert!(link.request(rows));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod quantised {
    use super::*;

    #[tokio::test]
    async fn with_quantisation_on_the_choice_is_measured_and_the_readings_stay_close() {
        let model = Arc::new(crate::ml::structure::model_for_tests());
        let (tx, mut rx) = mpsc::channel::<StructureAnswer>(4);
        let mut link = StructureLink::spawn(Arc::clone(&model), true, tx).unwrap();
        // Whichever precision won, it is named, and the readings agree with FP32's on typical rows.
        assert!(
            link.precision.contains("FP32") || link.precision.contains("INT8"),
            "{}",
            link.precision
        );
        let row = [0.1_f32; SCHEMA_LEN];
        assert!(link.request(vec![(SymbolId(1), row)]));
        link.resolve(rx.recv().await.unwrap());
        let single = model.read(&row).unwrap();
        let reading = link.reading(SymbolId(1)).unwrap();
        let scale = single.code.iter().fold(1.0_f32, |m, v| m.max(v.abs()));
        for (a, b) in reading.code.iter().zip(&single.code) {
            assert!((a - b).abs() <= 0.05 * scale, "{a} vs {b}");
        }
    }
}
