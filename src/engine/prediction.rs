//! The engine's side of the async batch predictor: requests out, probabilities back as events.
//!
//! Why here and not in the strategy: the engine task must never wait for a model (ARCHITECTURE.md §3),
//! so every candidate signal is sent to the predictor task ([`crate::ml::batch`]) with `try_send` and
//! the engine carries on. The result comes back as [`EngineEvent::Prediction`](super::EngineEvent) and
//! [`PredictionLink::resolve`] matches it to the signal it was asked for. In `hybrid` the signal waits
//! here (not in the trading cycle's queue) until its probability arrives and is kept only if it clears
//! the threshold; in the other modes the probability is only shown (scanner, funnel). A signal that
//! cannot be scored in `hybrid` (queue full, predictor gone, model failed) is refused, never traded
//! unfiltered, and counted.

use std::{collections::HashMap, sync::Arc, time::Duration};

use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};

use crate::{
    ml::{
        batch::{self, BatchSettings, InferenceRequest, InferenceResult, PredictorMetrics},
        predictor::{INPUTS, SignalPredictor},
        runtime::{Backend, Model},
    },
    strategy::{Signal, SymbolAnalysis, hybrid::model_row},
};

/// Requests that may wait in the channel to the predictor: 64 full batches.
pub const REQUEST_QUEUE: usize = 64 * batch::BATCH_PREDICTION_SIZE;
/// A request unanswered this long is given up (the predictor task died with it).
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(30);

/// Counts of the model stage of the funnel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MlCounts {
    /// Signals sent to the predictor.
    pub requested: u64,
    /// Answered with a probability.
    pub scored: u64,
    /// Scored at or above the threshold.
    pub above: u64,
    /// Scored below the threshold (in `hybrid` these are rejected).
    pub below: u64,
    /// `hybrid` signals rejected by the model.
    pub filtered: u64,
    /// Signals that got no probability: queue full, predictor gone, model error, no answer in time.
    pub unscored: u64,
}

/// A signal waiting for its probability.
#[derive(Debug)]
pub struct Pending {
    pub signal: Signal,
    /// Whether the model decides (`hybrid` or `self_learning` at the time of the request) or only informs.
    pub filter: bool,
    /// The probability the signal must reach (the link's, or the strategy evolver's in `self_learning`).
    pub threshold: f64,
    pub queued_at: Instant,
}

/// What became of a request once answered.
#[derive(Debug)]
pub struct Resolved {
    pub signal: Signal,
    pub filter: bool,
    pub threshold: f64,
    /// `None`: the model failed on the batch.
    pub probability: Option<f32>,
}

/// The loaded signal predictor and the channel to its batch task.
#[derive(Debug)]
pub struct PredictionLink {
    pub predictor: Arc<SignalPredictor>,
    pub threshold: f64,
    pub backend: Backend,
    pub settings: BatchSettings,
    pub metrics: Arc<PredictorMetrics>,
    requests: mpsc::Sender<InferenceRequest>,
    /// The batch task's model slot (hot reload); `None` for a link over a task it does not feed.
    models: Option<watch::Sender<Arc<dyn Model>>>,
    next_id: u64,
    pending: HashMap<u64, Pending>,
    pub counts: MlCounts,
}

impl PredictionLink {
    /// A link over `requests`; the caller runs the batch task on the other end.
    pub fn new(
        predictor: Arc<SignalPredictor>,
        threshold: f64,
        settings: BatchSettings,
        requests: mpsc::Sender<InferenceRequest>,
        metrics: Arc<PredictorMetrics>,
    ) -> Self {
        Self {
            backend: predictor.backend(),
            predictor,
            threshold,
            settings,
            metrics,
            requests,
            models: None,
            next_id: 0,
            pending: HashMap::new(),
            counts: MlCounts::default(),
        }
    }

    /// Starts the batch predictor task for `predictor`, answering into `events` (the engine's channel),
    /// and returns the engine's end. Must run inside a tokio runtime.
    pub fn spawn<E>(
        predictor: Arc<SignalPredictor>,
        threshold: f64,
        settings: BatchSettings,
        events: mpsc::Sender<E>,
    ) -> Self
    where
        E: From<InferenceResult> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(REQUEST_QUEUE);
        let metrics = Arc::new(PredictorMetrics::default());
        let (models, model_rx) = watch::channel(predictor.shared_model());
        let task_metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let stats = batch::run_hot(model_rx, settings, rx, events, &task_metrics).await;
            tracing::info!(?stats, "batch predictor stopped");
        });
        let mut link = Self::new(predictor, threshold, settings, tx, metrics);
        link.models = Some(models);
        link
    }

    /// Hot reload: `predictor` serves from the batch task's next batch on (requests in flight are
    /// answered by the old or the new model, none is lost), and the link takes its version, backend
    /// and operating threshold.
    pub fn swap(&mut self, predictor: Arc<SignalPredictor>) {
        if let Some(models) = &self.models {
            models.send_replace(predictor.shared_model());
        }
        self.threshold = predictor.card.metrics.threshold;
        self.backend = predictor.backend();
        self.predictor = predictor;
    }

    /// Queues `signal` for scoring without waiting. `false` if it could not be queued (no full bar on
    /// every timeframe, queue full, predictor gone); it is then counted as unscored.
    pub fn request(&mut self, signal: &Signal, analysis: &SymbolAnalysis, filter: bool) -> bool {
        self.request_at(signal, analysis, filter, self.threshold)
    }

    /// [`Self::request`] with the signal's own probability threshold.
    pub fn request_at(
        &mut self,
        signal: &Signal,
        analysis: &SymbolAnalysis,
        filter: bool,
        threshold: f64,
    ) -> bool {
        self.counts.requested += 1;
        let mut row = [0.0_f32; INPUTS];
        if !model_row(analysis, signal, &mut row) {
            self.counts.unscored += 1;
            return false;
        }
        let id = self.next_id;
        match self.requests.try_send(InferenceRequest { id, row }) {
            Ok(()) => {
                self.next_id += 1;
                self.pending.insert(
                    id,
                    Pending {
                        signal: signal.clone(),
                        filter,
                        threshold,
                        queued_at: Instant::now(),
                    },
                );
                true
            }
            Err(error) => {
                tracing::warn!(%error, "signal not scored: the batch predictor does not take requests");
                self.counts.unscored += 1;
                false
            }
        }
    }

    /// Matches a result to its request and counts it; `None` for an unknown (given up) id.
    pub fn resolve(&mut self, result: InferenceResult) -> Option<Resolved> {
        let pending = self.pending.remove(&result.id)?;
        match result.probability {
            Some(p) => {
                self.counts.scored += 1;
                if f64::from(p) >= pending.threshold {
                    self.counts.above += 1;
                } else {
                    self.counts.below += 1;
                    if pending.filter {
                        self.counts.filtered += 1;
                    }
                }
            }
            None => self.counts.unscored += 1,
        }
        Some(Resolved {
            signal: pending.signal,
            filter: pending.filter,
            threshold: pending.threshold,
            probability: result.probability,
        })
    }

    /// Drops requests unanswered for [`ANSWER_DEADLINE`] (counted as unscored); returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let before = self.pending.len();
        self.pending
            .retain(|_, p| now.saturating_duration_since(p.queued_at) < ANSWER_DEADLINE);
        let dropped = before - self.pending.len();
        self.counts.unscored += dropped as u64;
        dropped
    }

    /// Requests waiting for their answer.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }
}
