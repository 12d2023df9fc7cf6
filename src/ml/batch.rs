//! The async batch predictor: inference requests queue up and run together, so the engine never waits
//! for a model.
//!
//! Why: the engine task owns all state and must never block (ARCHITECTURE.md §3). It sends an
//! [`InferenceRequest`] into a channel and carries on; this task collects requests into a batch that
//! closes when it holds [`BATCH_PREDICTION_SIZE`] requests or [`BATCH_MAX_DELAY`] after its first
//! request arrived, whichever comes first, runs the model once on the batch, and sends one
//! [`InferenceResult`] per request back as an event of the caller's type (`E: From<InferenceResult>`, so
//! the engine's event enum can carry them). Every request gets exactly one result, in arrival order,
//! including when the model fails (`probability: None`, logged once per failing batch). Results are the
//! same as predicting each row alone (tested), since every backend scores rows independently.
//!
//! Buffers are sized once for a full batch and reused, so steady state allocates nothing. The model runs
//! inline on this task, not on the engine's: the native trees score a full batch in tens of
//! microseconds, so a `spawn_blocking` round trip per batch would cost more than it saves.
//!
//! [`PredictorMetrics`] is what the models panel shows: batch and request counts and the inference
//! latency per batch in a [`LatencyHistogram`] (fixed log-spaced buckets of atomics, so recording a
//! batch allocates nothing and the presenter reads it without a lock).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};

use super::{predictor::INPUTS, runtime::Model};

/// `BATCH_PREDICTION_SIZE`: a batch closes at this many requests.
pub const BATCH_PREDICTION_SIZE: usize = 32;
/// `BATCH_MAX_DELAY`: a batch closes this long after its first request.
pub const BATCH_MAX_DELAY: Duration = Duration::from_millis(100);

/// When a batch closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    pub max_batch: usize,
    pub max_delay: Duration,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            max_batch: BATCH_PREDICTION_SIZE,
            max_delay: BATCH_MAX_DELAY,
        }
    }
}

/// One row to score, with the caller's id to match the result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InferenceRequest {
    pub id: u64,
    pub row: [f32; INPUTS],
}

/// The answer to one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InferenceResult {
    pub id: u64,
    /// The model's last output column for the row (P(class 1) for a classifier); `None` if the model
    /// failed on this batch.
    pub probability: Option<f32>,
    /// How many requests the batch held (the models panel shows the fill).
    pub batch_size: usize,
}

/// Counts of a finished run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    pub batches: u64,
    pub requests: u64,
    pub full_batches: u64,
    pub failed_batches: u64,
}

/// Buckets of a [`LatencyHistogram`]: bucket 0 is below 1 µs, bucket `i ≥ 1` is
/// `[2^((i−1)/4), 2^(i/4))` µs, the last one open-ended (from about 46 s).
pub const LATENCY_BUCKETS: usize = 64;

/// A latency histogram of fixed size: four log-spaced buckets per doubling from 1 µs, counted with
/// atomics. Quantiles are the upper edge of the bucket that holds them (at most ~19 % high).
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS],
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl LatencyHistogram {
    /// The bucket of `latency`.
    pub fn bucket(latency: Duration) -> usize {
        let micros = latency.as_secs_f64() * 1e6;
        if micros < 1.0 {
            return 0;
        }
        // floor(4·log2(µs)) + 1, capped: exact at the bucket edges 2^(k/4).
        let index = (micros.log2() * 4.0).floor() as usize + 1;
        index.min(LATENCY_BUCKETS - 1)
    }

    /// The upper edge of bucket `index` (the last bucket has none: its lower edge).
    pub fn upper_edge(index: usize) -> Duration {
        let index = index.min(LATENCY_BUCKETS - 1);
        let exponent = if index == LATENCY_BUCKETS - 1 {
            index - 1
        } else {
            index
        };
        Duration::from_secs_f64(2_f64.powf(exponent as f64 / 4.0) / 1e6)
    }

    pub fn record(&self, latency: Duration) {
        self.buckets[Self::bucket(latency)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The `q` quantile (`0..=1`), `None` before the first record.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let counts: [u64; LATENCY_BUCKETS] = std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed));
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        // The rank of the quantile, 1-based: the smallest bucket whose cumulative count reaches it.
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Self::upper_edge(index));
            }
        }
        Some(Self::upper_edge(LATENCY_BUCKETS - 1))
    }
}

/// What the predictor task reports while it runs: shared with the engine (the models panel).
#[derive(Debug, Default)]
pub struct PredictorMetrics {
    batches: AtomicU64,
    requests: AtomicU64,
    full_batches: AtomicU64,
    failed_batches: AtomicU64,
    /// The largest batch (`BatchSettings::max_batch`), for the fill.
    max_batch: AtomicU64,
    /// Model time per batch.
    pub latency: LatencyHistogram,
}

/// A reading of [`PredictorMetrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MetricsSnapshot {
    pub stats: BatchStats,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    /// Mean requests per batch over the largest batch, `0..=1`; `None` before the first batch.
    pub batch_fill: Option<f64>,
    pub max_batch: u64,
}

impl PredictorMetrics {
    pub fn record_batch(&self, size: usize, max: usize, latency: Duration, failed: bool) {
        self.max_batch.store(max as u64, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(size as u64, Ordering::Relaxed);
        if size == max {
            self.full_batches.fetch_add(1, Ordering::Relaxed);
        }
        if failed {
            self.failed_batches.fetch_add(1, Ordering::Relaxed);
        }
        self.latency.record(latency);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let stats = BatchStats {
            batches: self.batches.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            full_batches: self.full_batches.load(Ordering::Relaxed),
            failed_batches: self.failed_batches.load(Ordering::Relaxed),
        };
        let max_batch = self.max_batch.load(Ordering::Relaxed);
        let batch_fill = (stats.batches > 0 && max_batch > 0)
            .then(|| stats.requests as f64 / stats.batches as f64 / max_batch as f64);
        MetricsSnapshot {
            stats,
            p50: self.latency.quantile(0.5),
            p99: self.latency.quantile(0.99),
            batch_fill,
            max_batch,
        }
    }
}

/// Runs until the request channel closes (after answering what it holds) or the result receiver is
/// dropped. Panics if `model` does not take [`INPUTS`] values per row (a wiring error).
pub async fn run<E>(
    model: Arc<dyn Model>,
    settings: BatchSettings,
    requests: mpsc::Receiver<InferenceRequest>,
    results: mpsc::Sender<E>,
) -> BatchStats
where
    E: From<InferenceResult> + Send,
{
    run_measured(model, settings, requests, results, &PredictorMetrics::default()).await
}

/// [`run`], recording every batch in `metrics`.
pub async fn run_measured<E>(
    model: Arc<dyn Model>,
    settings: BatchSettings,
    requests: mpsc::Receiver<InferenceRequest>,
    results: mpsc::Sender<E>,
    metrics: &PredictorMetrics,
) -> BatchStats
where
    E: From<InferenceResult> + Send,
{
    let (_keep, models) = watch::channel(model);
    run_hot(models, settings, requests, results, metrics).await
}

/// [`run_measured`] with hot reload: the model is whatever `models` holds when a batch is about to
/// run, so a new model sent on the watch serves from the next batch on. The request channel and the
/// batch being collected are untouched by a swap, so every request is answered exactly once, by the
/// old model or the new one. A model that does not take [`INPUTS`] values per row is refused (logged)
/// and the current one kept. Panics if the first model does not take [`INPUTS`] values (a wiring
/// error).
pub async fn run_hot<E>(
    mut models: watch::Receiver<Arc<dyn Model>>,
    settings: BatchSettings,
    mut requests: mpsc::Receiver<InferenceRequest>,
    results: mpsc::Sender<E>,
    metrics: &PredictorMetrics,
) -> BatchStats
where
    E: From<InferenceResult> + Send,
{
    let mut model = Arc::clone(&models.borrow_and_update());
    assert_eq!(
        model.inputs(),
        INPUTS,
        "the batch predictor feeds rows of {INPUTS} values"
    );
    let max = settings.max_batch.max(1);
    let mut width = model.outputs().max(1);
    let mut ids: Vec<u64> = Vec::with_capacity(max);
    let mut inputs: Vec<f32> = Vec::with_capacity(max * INPUTS);
    let mut outputs: Vec<f32> = vec![0.0; max * width];
    let mut stats = BatchStats::default();
    let mut open = true;
    while open {
        let Some(first) = requests.recv().await else {
            break;
        };
        let deadline = Instant::now() + settings.max_delay;
        ids.clear();
        inputs.clear();
        ids.push(first.id);
        inputs.extend_from_slice(&first.row);
        while ids.len() < max {
            match tokio::time::timeout_at(deadline, requests.recv()).await {
                Ok(Some(request)) => {
                    ids.push(request.id);
                    inputs.extend_from_slice(&request.row);
                }
                Ok(None) => {
                    open = false;
                    break;
                }
                Err(_elapsed) => break,
            }
        }
        // A swap takes effect here, between batches: the batch just collected runs on the newest model.
        if models.has_changed().unwrap_or(false) {
            let next = Arc::clone(&models.borrow_and_update());
            if next.inputs() == INPUTS {
                model = next;
                width = model.outputs().max(1);
                if outputs.len() < max * width {
                    outputs.resize(max * width, 0.0);
                }
                tracing::info!(backend = %model.backend(), "batch predictor: model swapped");
            } else {
                tracing::warn!(
                    inputs = next.inputs(),
                    "batch predictor: a model with another input width was refused; the current one serves"
                );
            }
        }
        let n = ids.len();
        let out = &mut outputs[..n * width];
        let started = std::time::Instant::now();
        let predicted = model.predict(&inputs, out);
        metrics.record_batch(n, max, started.elapsed(), predicted.is_err());
        let ok = match predicted {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, batch = n, "batch prediction failed; answering without a probability");
                stats.failed_batches += 1;
                false
            }
        };
        stats.batches += 1;
        stats.requests += n as u64;
        if n == max {
            stats.full_batches += 1;
        }
        for (i, id) in ids.iter().enumerate() {
            let result = InferenceResult {
                id: *id,
                probability: ok.then(|| out[i * width + width - 1]),
                batch_size: n,
            };
            if results.send(E::from(result)).await.is_err() {
                return stats;
            }
        }
    }
    stats
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::ml::{
        MlError,
        gbdt::{self, Dataset, GbdtParams},
        runtime::{Backend, NativeTrees},
    };

    fn model() -> Arc<dyn Model> {
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let rows = 400;
        let x: Vec<f32> = (0..rows * INPUTS).map(|_| rng.random_range(-1.0..1.0)).collect();
        let y: Vec<f32> = x
            .chunks_exact(INPUTS)
            .map(|r| if r[0] + r[33] > 0.0 { 1.0 } else { 0.0 })
            .collect();
        let w = vec![1.0; rows];
        let params = GbdtParams {
            trees: 10,
            ..GbdtParams::default()
        };
        let ensemble = gbdt::train(
            &Dataset {
                inputs: INPUTS,
                x: &x,
                y: &y,
                w: &w,
            },
            &params,
        )
        .unwrap();
        Arc::new(NativeTrees {
            ensemble: Arc::new(ensemble),
        })
    }

    fn request(id: u64, rng: &mut ChaCha8Rng) -> InferenceRequest {
        InferenceRequest {
            id,
            row: std::array::from_fn(|_| rng.random_range(-1.0..1.0)),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn batched_results_equal_single_predictions_and_batches_close_at_32() {
        let model = model();
        let (tx, rx) = mpsc::channel(256);
        let (result_tx, mut result_rx) = mpsc::channel::<InferenceResult>(256);
        let mut rng = ChaCha8Rng::seed_from_u64(22);
        let sent: Vec<InferenceRequest> = (0..100).map(|id| request(id, &mut rng)).collect();
        for r in &sent {
            tx.send(*r).await.unwrap();
        }
        drop(tx);
        let stats = run(Arc::clone(&model), BatchSettings::default(), rx, result_tx).await;
        // All 100 were queued before the task ran: 32 + 32 + 32 + 4 (the last closed by the channel).
        assert_eq!(
            stats,
            BatchStats {
                batches: 4,
                requests: 100,
                full_batches: 3,
                failed_batches: 0
            }
        );
        let mut got = Vec::new();
        while let Some(r) = result_rx.recv().await {
            got.push(r);
        }
        assert_eq!(got.len(), 100);
        for (request, result) in sent.iter().zip(&got) {
            assert_eq!(result.id, request.id);
            let mut single = [0.0; 2];
            model.predict(&request.row, &mut single).unwrap();
            assert_eq!(result.probability, Some(single[1]));
        }
        let sizes: Vec<usize> = got.iter().map(|r| r.batch_size).collect();
        let mut expected = vec![32_usize; 96];
        expected.extend([4; 4]);
        assert_eq!(sizes, expected);
    }

    #[tokio::test(start_paused = true)]
    async fn a_predictor_with_derived_inputs_gives_the_same_in_a_batch_as_alone() {
        let predictor = crate::ml::predictor::tests::derived_predictor();
        let model = predictor.shared_model();
        // The batch feeds base rows; the predictor computes its derived inputs inside.
        assert_eq!(model.inputs(), INPUTS);
        let (tx, rx) = mpsc::channel(256);
        let (result_tx, mut result_rx) = mpsc::channel::<InferenceResult>(256);
        let mut rng = ChaCha8Rng::seed_from_u64(24);
        let sent: Vec<InferenceRequest> = (0..70).map(|id| request(id, &mut rng)).collect();
        for r in &sent {
            tx.send(*r).await.unwrap();
        }
        drop(tx);
        let stats = run(model, BatchSettings::default(), rx, result_tx).await;
        assert_eq!((stats.batches, stats.requests, stats.failed_batches), (3, 70, 0));
        let mut got = Vec::new();
        while let Some(r) = result_rx.recv().await {
            got.push(r);
        }
        assert_eq!(got.len(), 70);
        let mut distinct = std::collections::BTreeSet::new();
        for (request, result) in sent.iter().zip(&got) {
            assert_eq!(result.id, request.id);
            let single = predictor.probability(&request.row);
            assert_eq!(result.probability, Some(single));
            distinct.insert(single.to_bits());
        }
        // Random rows reach more than one leaf of the derived-input trees.
        assert!(distinct.len() > 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_batch_closes_after_the_delay_and_the_engine_side_never_waits() {
        let (tx, rx) = mpsc::channel(64);
        let (result_tx, mut result_rx) = mpsc::channel::<InferenceResult>(64);
        let task = tokio::spawn(run(model(), BatchSettings::default(), rx, result_tx));
        let mut rng = ChaCha8Rng::seed_from_u64(23);
        for id in 0..5 {
            // try_send: the engine side only ever enqueues.
            tx.try_send(request(id, &mut rng)).unwrap();
        }
        // Nothing answers before the delay has passed…
        tokio::time::sleep(Duration::from_millis(99)).await;
        assert!(result_rx.try_recv().is_err());
        // …then the five come back as one batch.
        tokio::time::sleep(Duration::from_millis(2)).await;
        for id in 0..5 {
            let result = result_rx.recv().await.unwrap();
            assert_eq!((result.id, result.batch_size), (id, 5));
        }
        // A later request starts a new batch.
        tx.try_send(request(9, &mut rng)).unwrap();
        let result = result_rx.recv().await.unwrap();
        assert_eq!((result.id, result.batch_size), (9, 1));
        drop(tx);
        let stats = task.await.unwrap();
        assert_eq!((stats.batches, stats.requests), (2, 6));
    }

    #[test]
    fn the_latency_histogram_buckets_by_quarter_octaves_and_reads_quantiles() {
        let h = LatencyHistogram::default();
        assert_eq!(h.quantile(0.5), None);
        assert_eq!(LatencyHistogram::bucket(Duration::from_nanos(500)), 0);
        assert_eq!(LatencyHistogram::bucket(Duration::from_micros(1)), 1);
        assert_eq!(LatencyHistogram::bucket(Duration::from_micros(2)), 5);
        assert_eq!(
            LatencyHistogram::bucket(Duration::from_secs(3_600)),
            LATENCY_BUCKETS - 1
        );
        // 98 fast batches (10 µs) and 2 slow ones (1 ms).
        for _ in 0..98 {
            h.record(Duration::from_micros(10));
        }
        h.record(Duration::from_millis(1));
        h.record(Duration::from_millis(1));
        assert_eq!(h.count(), 100);
        let p50 = h.quantile(0.5).unwrap();
        let p99 = h.quantile(0.99).unwrap();
        // The upper edge of the bucket: at most one quarter-octave (×1.19) above the value.
        assert!(
            p50 >= Duration::from_micros(10) && p50 <= Duration::from_nanos(11_900),
            "{p50:?}"
        );
        assert!(
            p99 >= Duration::from_millis(1) && p99 <= Duration::from_micros(1_190),
            "{p99:?}"
        );
        assert_eq!(h.quantile(0.95), Some(p50), "rank 95 is still a fast batch");
    }

    #[tokio::test(start_paused = true)]
    async fn the_metrics_count_batches_fill_and_latency() {
        let (tx, rx) = mpsc::channel(256);
        let (result_tx, mut result_rx) = mpsc::channel::<InferenceResult>(256);
        let mut rng = ChaCha8Rng::seed_from_u64(25);
        for id in 0..40 {
            tx.send(request(id, &mut rng)).await.unwrap();
        }
        drop(tx);
        let metrics = PredictorMetrics::default();
        let stats = run_measured(model(), BatchSettings::default(), rx, result_tx, &metrics).await;
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.stats, stats);
        assert_eq!((stats.batches, stats.requests, stats.full_batches), (2, 40, 1));
        assert_eq!(snapshot.batch_fill, Some(20.0 / 32.0));
        assert_eq!(metrics.latency.count(), 2);
        assert!(snapshot.p50.is_some() && snapshot.p99 >= snapshot.p50);
        let mut answered = 0;
        while result_rx.recv().await.is_some() {
            answered += 1;
        }
        assert_eq!(answered, 40);
        assert_eq!(PredictorMetrics::default().snapshot().batch_fill, None);
    }

    /// A model answering `p` for every row.
    fn constant(p: f32) -> Arc<dyn Model> {
        let logit = (p / (1.0 - p)).ln();
        let ensemble =
            crate::ml::trees::TreeEnsemble::new(INPUTS, &[vec![crate::ml::trees::Node::leaf(logit)]])
                .unwrap();
        Arc::new(NativeTrees {
            ensemble: Arc::new(ensemble),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn hot_reload_under_load_answers_every_request_exactly_once() {
        const REQUESTS: u64 = 5_000;
        let models = [constant(0.2), constant(0.7)];
        let expected: Vec<f32> = models
            .iter()
            .map(|m| {
                let mut out = [0.0; 2];
                m.predict(&[0.0; INPUTS], &mut out).unwrap();
                out[1]
            })
            .collect();
        let (model_tx, model_rx) = watch::channel(Arc::clone(&models[0]));
        let (tx, rx) = mpsc::channel(256);
        let (result_tx, mut result_rx) = mpsc::channel::<InferenceResult>(256);
        let metrics = Arc::new(PredictorMetrics::default());
        let task_metrics = Arc::clone(&metrics);
        let task = tokio::spawn(async move {
            run_hot(model_rx, BatchSettings::default(), rx, result_tx, &task_metrics).await
        });
        let producer = tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(26);
            for id in 0..REQUESTS {
                tx.send(request(id, &mut rng)).await.unwrap();
                if id % 7 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        });
        let swapper = tokio::spawn(async move {
            for i in 0..2_000 {
                model_tx.send_replace(Arc::clone(&models[(i + 1) % 2]));
                tokio::task::yield_now().await;
            }
            model_tx
        });
        let mut seen = vec![0_u32; REQUESTS as usize];
        let mut by_model = [0_u64; 2];
        while let Some(result) = result_rx.recv().await {
            seen[result.id as usize] += 1;
            let p = result.probability.unwrap();
            let which = expected.iter().position(|e| *e == p).unwrap();
            by_model[which] += 1;
        }
        producer.await.unwrap();
        let _model_tx = swapper.await.unwrap();
        let stats = task.await.unwrap();
        assert!(
            seen.iter().all(|n| *n == 1),
            "a request was lost or answered twice"
        );
        assert_eq!(stats.requests, REQUESTS);
        assert!(
            by_model[0] > 0 && by_model[1] > 0,
            "both models served: {by_model:?}"
        );
        assert_eq!(metrics.snapshot().stats.requests, REQUESTS);
    }

    #[tokio::test(start_paused = true)]
    async fn a_model_of_another_input_width_is_refused_and_the_current_one_serves() {
        let (model_tx, model_rx) = watch::channel(constant(0.3));
        let (tx, rx) = mpsc::channel(8);
        let (result_tx, mut result_rx) = mpsc::channel::<InferenceResult>(8);
        let task = tokio::spawn(async move {
            run_hot(
                model_rx,
                BatchSettings::default(),
                rx,
                result_tx,
                &PredictorMetrics::default(),
            )
            .await
        });
        let mut rng = ChaCha8Rng::seed_from_u64(27);
        tx.send(request(0, &mut rng)).await.unwrap();
        let p = result_rx.recv().await.unwrap().probability.unwrap();
        assert!((p - 0.3).abs() < 1e-6, "{p}");
        let wrong =
            crate::ml::trees::TreeEnsemble::new(3, &[vec![crate::ml::trees::Node::leaf(0.0)]]).unwrap();
        model_tx.send_replace(Arc::new(NativeTrees {
            ensemble: Arc::new(wrong),
        }));
        tx.send(request(1, &mut rng)).await.unwrap();
        let p = result_rx.recv().await.unwrap().probability.unwrap();
        assert!((p - 0.3).abs() < 1e-6, "{p}");
        drop(tx);
        assert_eq!(task.await.unwrap().requests, 2);
    }

    #[derive(Debug)]
    struct Failing;

    impl Model for Failing {
        fn backend(&self) -> Backend {
            Backend::Native
        }
        fn inputs(&self) -> usize {
            INPUTS
        }
        fn outputs(&self) -> usize {
            2
        }
        fn predict(&self, _: &[f32], _: &mut [f32]) -> Result<(), MlError> {
            Err(MlError::Shape("test".into()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_model_still_answers_every_request() {
        let (tx, rx) = mpsc::channel(8);
        let (result_tx, mut result_rx) = mpsc::channel::<InferenceResult>(8);
        let mut rng = ChaCha8Rng::seed_from_u64(24);
        for id in 0..3 {
            tx.send(request(id, &mut rng)).await.unwrap();
        }
        drop(tx);
        let stats = run(Arc::new(Failing), BatchSettings::default(), rx, result_tx).await;
        assert_eq!(stats.failed_batches, 1);
        for id in 0..3 {
            assert_eq!(result_rx.recv().await.unwrap().probability, None, "request {id}");
        }
    }
}
