//! The self-learning loop beside the engine: closed positions in, retrained challengers judged against
//! the champion, promotions and rollbacks out as hot reloads.
//!
//! Why a task of its own: training takes seconds and touches files, and the engine task must never
//! wait (ARCHITECTURE.md §3). The engine only hands over what it has — a labelled sample per closed
//! position (`try_send`), a snapshot of its stored bars when the learner asks (a flag it checks on
//! the housekeeping tick) — and receives [`LearnerEvent`]s on its own channel: a new champion to swap
//! in, the learner's status for the models panel, an answer for the status line. The learner trains
//! on a blocking thread (`spawn_blocking`), so samples and a rollback are still taken while it runs.
//!
//! Schedule: with `ml.enable_self_learning` on, a retrain runs every `ml.strategy_evolution_interval_secs`
//! on the stored bars (replayed through the causal ICT strategy, [`crate::ml::dataset::replay`]) plus
//! every online sample; with no champion at all, a bootstrap runs soon after start (once the back-fill
//! has landed) and is retried while the stored history is too short, which the panel says. With it
//! off, nothing is trained (samples are still stored, so turning it on later loses nothing); a
//! rollback works either way.

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::{
    sync::mpsc,
    task::JoinHandle,
    time::{Instant, sleep_until},
};

use super::EngineEvent;
use crate::ml::{
    batch::BatchSettings,
    dataset::{self, SymbolBars},
    online::{self, OnlineSample, RetrainConfig, SampleStore},
    predictor::SignalPredictor,
    registry::{Evaluation, Registry},
};

/// Fewest entry-timeframe bars a symbol needs for its replay to count (the analysis warms up first).
pub const MIN_ENTRY_BARS: usize = 150;

/// How the learner runs.
#[derive(Debug, Clone)]
pub struct LearnerSettings {
    /// `ml.enable_self_learning`.
    pub enabled: bool,
    /// Between scheduled retrains.
    pub interval: Duration,
    /// Before the bootstrap (no champion) and between its retries.
    pub bootstrap_delay: Duration,
    pub models_dir: PathBuf,
    /// The online samples file.
    pub samples_path: PathBuf,
    pub retrain: RetrainConfig,
    /// The batch predictor's settings, for a link started by the first champion.
    pub batch: BatchSettings,
}

/// A champion to serve; compared by identity (the engine's event type is `PartialEq`).
#[derive(Debug, Clone)]
pub struct ChampionSwap(pub Arc<SignalPredictor>);

impl PartialEq for ChampionSwap {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// What the learner reports, for the models panel.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LearnerStatus {
    pub enabled: bool,
    pub online_samples: usize,
    /// When the last retrain finished (ms since the epoch) and what came of it, in words.
    pub last_retrain_ms: Option<i64>,
    pub last_result: String,
    /// The last champion/challenger evaluation.
    pub evaluation: Option<Evaluation>,
    /// The registry's champion and the version a rollback would return to.
    pub champion: Option<String>,
    pub rollback_to: Option<String>,
    /// Whether a retrain is running now.
    pub training: bool,
}

/// From the learner to the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum LearnerEvent {
    /// Serve this model from now on (promotion, bootstrap or rollback).
    Champion(ChampionSwap),
    Status(Box<LearnerStatus>),
    /// A line for the status bar.
    Message(String),
}

/// From the engine to the learner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnerCommand {
    /// Return to the previous champion (the console confirmed it).
    Rollback,
}

/// The engine's end of the learner.
#[derive(Debug)]
pub struct LearnerHandle {
    samples: mpsc::Sender<OnlineSample>,
    commands: mpsc::Sender<LearnerCommand>,
    bars_wanted: Arc<AtomicBool>,
    bars: mpsc::Sender<Vec<SymbolBars>>,
    /// The engine's own channel (a link started for a first champion answers on it).
    pub events: mpsc::Sender<EngineEvent>,
    pub batch: BatchSettings,
}

impl LearnerHandle {
    /// Hands over a sample without waiting; `false` when the learner's queue is full or gone.
    pub fn sample(&self, sample: OnlineSample) -> bool {
        self.samples.try_send(sample).is_ok()
    }

    pub fn command(&self, command: LearnerCommand) -> bool {
        self.commands.try_send(command).is_ok()
    }

    /// Takes the learner's request for the stored bars (set when a retrain is due).
    pub fn take_bars_request(&self) -> bool {
        self.bars_wanted.swap(false, Ordering::AcqRel)
    }

    pub fn send_bars(&self, bars: Vec<SymbolBars>) {
        let _ = self.bars.try_send(bars);
    }

    /// A handle over bare channels (engine tests): the receivers are returned.
    #[cfg(test)]
    pub(crate) fn for_test(
        events: mpsc::Sender<EngineEvent>,
    ) -> (Self, mpsc::Receiver<OnlineSample>, mpsc::Receiver<LearnerCommand>) {
        let (samples, samples_rx) = mpsc::channel(64);
        let (commands, commands_rx) = mpsc::channel(4);
        let (bars, _bars_rx) = mpsc::channel(1);
        (
            Self {
                samples,
                commands,
                bars_wanted: Arc::new(AtomicBool::new(false)),
                bars,
                events,
                batch: BatchSettings::default(),
            },
            samples_rx,
            commands_rx,
        )
    }
}

/// What one retrain came to.
#[derive(Debug)]
enum Outcome {
    Promoted(Box<SignalPredictor>, Evaluation),
    Kept(Evaluation),
    /// Not enough data to judge (said in the panel).
    TooLittle(String),
    Failed(String),
}

/// Replays `bars` and retrains; promotes through the registry when the rule says so.
fn retrain_job(
    bars: &[SymbolBars],
    online: &[OnlineSample],
    registry: &Mutex<Registry>,
    config: &RetrainConfig,
) -> Outcome {
    let mut history = Vec::new();
    let mut longest = 0;
    for symbol in bars.iter().filter(|b| b.entry.len() >= MIN_ENTRY_BARS) {
        longest = longest.max(symbol.entry.len());
        match dataset::replay(symbol, config.horizon_bars) {
            Ok((mut found, _)) => history.append(&mut found),
            Err(error) => tracing::warn!(symbol = %symbol.symbol, %error, "retrain: replay failed"),
        }
    }
    let Ok(mut registry) = registry.lock() else {
        return Outcome::Failed("the registry lock is poisoned".into());
    };
    let champion = match registry.champion() {
        Ok(c) => c,
        Err(error) => return Outcome::Failed(format!("champion unreadable: {error}")),
    };
    let now = crate::domain::now_ms();
    let candidates = history.len();
    match online::retrain(history, online, champion.as_ref(), config, now) {
        Err(crate::ml::train::TrainError::TooLittle(why)) => Outcome::TooLittle(format!(
            "stored history too short to judge a model: {candidates} labelled candidates from {} symbols (longest {longest} entry bars) + {} closed positions; {why}",
            bars.iter().filter(|b| b.entry.len() >= MIN_ENTRY_BARS).count(),
            online.len()
        )),
        Err(error) => Outcome::Failed(error.to_string()),
        Ok(out) => {
            let evaluation = out.evaluation;
            tracing::info!(
                challenger = %evaluation.challenger,
                champion = evaluation.champion.as_deref().unwrap_or("constant rate"),
                promote = evaluation.decision.promote,
                reason = %evaluation.decision.reason,
                challenger_log_loss = evaluation.challenger_score.log_loss,
                champion_log_loss = evaluation.champion_score.log_loss,
                window = evaluation.challenger_score.samples,
                "champion/challenger decision"
            );
            if evaluation.decision.promote {
                let mut challenger = out.challenger;
                match registry.promote(&mut challenger, Some(evaluation.clone())) {
                    Ok(()) => Outcome::Promoted(Box::new(challenger), evaluation),
                    Err(error) => Outcome::Failed(format!("promotion failed: {error}")),
                }
            } else {
                if let Err(error) = registry.record(evaluation.clone()) {
                    tracing::warn!(%error, "registry: evaluation not recorded");
                }
                Outcome::Kept(evaluation)
            }
        }
    }
}

struct Learner {
    settings: LearnerSettings,
    registry: Arc<Mutex<Registry>>,
    store: Arc<Mutex<SampleStore>>,
    events: mpsc::Sender<EngineEvent>,
    bars_wanted: Arc<AtomicBool>,
    status: LearnerStatus,
    has_champion: bool,
}

impl Learner {
    fn refresh(&mut self) {
        if let Ok(store) = self.store.lock() {
            self.status.online_samples = store.len();
        }
        if let Ok(registry) = self.registry.lock() {
            self.status.rollback_to = registry.state.previous.last().cloned();
            self.status.champion.clone_from(&registry.state.champion);
            if self.status.evaluation.is_none() {
                self.status.evaluation = registry.state.last_evaluation.clone();
            }
        }
    }

    async fn report(&mut self) {
        self.refresh();
        let _ = self
            .events
            .send(EngineEvent::Learner(LearnerEvent::Status(Box::new(
                self.status.clone(),
            ))))
            .await;
    }

    async fn tell(&self, event: LearnerEvent) {
        let _ = self.events.send(EngineEvent::Learner(event)).await;
    }

    /// When the next retrain is due after one at `now`: on the interval once there is a champion;
    /// before that, soon while the stored history is too short (it grows), less often when a
    /// bootstrap challenger was judged and not promoted.
    fn next_due(&self, now: Instant, too_little: bool) -> Instant {
        if self.has_champion {
            now + self.settings.interval
        } else if too_little {
            now + self.settings.bootstrap_delay
        } else {
            now + (self.settings.bootstrap_delay * 5).min(self.settings.interval)
        }
    }

    async fn finished(&mut self, outcome: Outcome) {
        self.status.training = false;
        self.status.last_retrain_ms = Some(crate::domain::now_ms());
        match outcome {
            Outcome::Promoted(predictor, evaluation) => {
                self.status.last_result = format!(
                    "promoted {}: {}",
                    predictor.card.version, evaluation.decision.reason
                );
                self.status.evaluation = Some(evaluation);
                self.has_champion = true;
                let message = format!(
                    "signal predictor {} is the champion (hot reload)",
                    predictor.card.version
                );
                self.tell(LearnerEvent::Champion(ChampionSwap(Arc::from(predictor))))
                    .await;
                self.tell(LearnerEvent::Message(message)).await;
            }
            Outcome::Kept(evaluation) => {
                self.status.last_result = format!(
                    "kept {}: {}",
                    evaluation.champion.as_deref().unwrap_or("no model"),
                    evaluation.decision.reason
                );
                self.status.evaluation = Some(evaluation);
            }
            Outcome::TooLittle(why) => self.status.last_result = why,
            Outcome::Failed(why) => {
                tracing::warn!(%why, "retrain failed");
                self.status.last_result = format!("retrain failed: {why}");
            }
        }
        self.report().await;
    }

    async fn rollback(&mut self) {
        let registry = Arc::clone(&self.registry);
        let result = tokio::task::spawn_blocking(move || match registry.lock() {
            Ok(mut r) => r.rollback().map_err(|e| e.to_string()),
            Err(_) => Err("the registry lock is poisoned".to_owned()),
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        match result {
            Ok(predictor) => {
                let version = predictor.card.version.clone();
                self.status.last_result = format!("rolled back to {version} by the operator");
                self.tell(LearnerEvent::Champion(ChampionSwap(Arc::new(predictor))))
                    .await;
                self.tell(LearnerEvent::Message(format!(
                    "signal predictor rolled back to {version} (hot reload)"
                )))
                .await;
            }
            Err(why) => {
                self.tell(LearnerEvent::Message(format!("model rollback refused: {why}")))
                    .await;
            }
        }
        self.report().await;
    }

    fn start_job(&mut self, bars: Vec<SymbolBars>) -> JoinHandle<Outcome> {
        self.status.training = true;
        let online: Vec<OnlineSample> = self
            .store
            .lock()
            .map(|s| s.samples().iter().cloned().collect())
            .unwrap_or_default();
        let registry = Arc::clone(&self.registry);
        let config = self.settings.retrain.clone();
        tokio::task::spawn_blocking(move || retrain_job(&bars, &online, &registry, &config))
    }
}

/// Starts the learner over `registry` (whose champion, if any, the engine already serves) and
/// returns the engine's handle. Must run inside a tokio runtime.
pub fn spawn(
    settings: LearnerSettings,
    registry: Registry,
    events: mpsc::Sender<EngineEvent>,
) -> Result<LearnerHandle, online::SampleStoreError> {
    let store = SampleStore::open(&settings.samples_path, online::SAMPLE_CAP)?;
    let (samples_tx, mut samples_rx) = mpsc::channel::<OnlineSample>(1_024);
    let (commands_tx, mut commands_rx) = mpsc::channel::<LearnerCommand>(8);
    let (bars_tx, mut bars_rx) = mpsc::channel::<Vec<SymbolBars>>(1);
    let bars_wanted = Arc::new(AtomicBool::new(false));
    let handle = LearnerHandle {
        samples: samples_tx,
        commands: commands_tx,
        bars_wanted: Arc::clone(&bars_wanted),
        bars: bars_tx,
        events: events.clone(),
        batch: settings.batch,
    };
    let has_champion = registry.state.champion.is_some();
    let mut learner = Learner {
        status: LearnerStatus {
            enabled: settings.enabled,
            last_result: if settings.enabled {
                "no retrain yet".into()
            } else {
                "self-learning off (ENABLE_SELF_LEARNING=false)".into()
            },
            ..LearnerStatus::default()
        },
        settings,
        registry: Arc::new(Mutex::new(registry)),
        store: Arc::new(Mutex::new(store)),
        events,
        bars_wanted,
        has_champion,
    };
    tokio::spawn(async move {
        learner.report().await;
        let mut due = learner.next_due(Instant::now(), true);
        let mut job: Option<JoinHandle<Outcome>> = None;
        let mut asked = false;
        loop {
            tokio::select! {
                sample = samples_rx.recv() => {
                    let Some(sample) = sample else { break };
                    let store = Arc::clone(&learner.store);
                    let written = tokio::task::spawn_blocking(move || {
                        store.lock().map_err(|_| "lock poisoned".to_owned())?.append(sample).map_err(|e| e.to_string())
                    }).await.unwrap_or_else(|e| Err(e.to_string()));
                    if let Err(error) = written {
                        tracing::warn!(%error, "online sample not stored");
                    }
                    learner.report().await;
                }
                command = commands_rx.recv() => {
                    match command {
                        Some(LearnerCommand::Rollback) => learner.rollback().await,
                        None => break,
                    }
                }
                () = sleep_until(due), if learner.settings.enabled && job.is_none() && !asked => {
                    learner.bars_wanted.store(true, Ordering::Release);
                    asked = true;
                }
                bars = bars_rx.recv(), if asked => {
                    let Some(bars) = bars else { break };
                    asked = false;
                    job = Some(learner.start_job(bars));
                    learner.report().await;
                }
                outcome = async {
                    match job.as_mut() {
                        Some(j) => j.await,
                        None => std::future::pending().await,
                    }
                }, if job.is_some() => {
                    job = None;
                    let outcome = outcome.unwrap_or_else(|e| Outcome::Failed(e.to_string()));
                    let too_little = matches!(outcome, Outcome::TooLittle(_));
                    learner.finished(outcome).await;
                    due = learner.next_due(Instant::now(), too_little);
                }
            }
        }
        tracing::info!("self-learning stopped");
    });
    Ok(handle)
}
