//! The composition root: wires the venue adapter, the feed, the engine and a front end together.
//!
//! `main.rs` turns the configuration into [`RunOptions`]; everything that owns a task is started
//! here, in one place, so the shutdown order is visible: signal → engine and streams stop → the view
//! channel closes → front ends return.

use std::{
    path::PathBuf,
    sync::{Arc, RwLock},
    time::Duration,
};

use perpdesk_ui::view::View;
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

use crate::{
    binance::{
        orders::{IntentJournal, OrderClient, OrderIntent},
        parse::SymbolTable,
        rest::MarketRest,
        signed::{Credentials, SignedRest},
        stream::{StreamConfig, StreamManager},
    },
    engine::{Command, Engine, EngineEvent, EngineSettings, outlets::Outlets},
    execution::{ExecReport, ExecutionLink, Executor, ExecutorSettings, GateState},
    market::feed,
};

/// Everything needed to run the engine against one venue endpoint.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub rest_url: String,
    pub ws_url: String,
    pub engine: EngineSettings,
    pub streams_per_connection: usize,
    /// No stream data for this long → reconnect.
    pub stale_after: Duration,
    /// REST requests in flight during back-fills.
    pub rest_concurrency: usize,
    /// Stream connections are replaced after this long (before the venue's 24-hour cut).
    pub rotate_after: Duration,
    /// Where the models are and how the batch predictor batches.
    pub ml: MlOptions,
}

/// The models the engine loads and the batch predictor's settings.
#[derive(Debug, Clone)]
pub struct MlOptions {
    /// The models directory (`paths.models_dir`); `None` runs without models (`hybrid` = ICT rules).
    pub models_dir: Option<PathBuf>,
    pub batch: crate::ml::batch::BatchSettings,
    /// Self-learning (`ml.enable_self_learning`), its retrain interval and where its samples are kept
    /// (`None`: no learner, e.g. in tests that run without a data directory).
    pub self_learning: bool,
    pub retrain_interval: Duration,
    pub samples_path: Option<PathBuf>,
    /// Before the first model is bootstrapped from the stored bars (no champion yet).
    pub bootstrap_delay: Duration,
    /// A models directory whose model seeds an empty registry (the demo keeps its own registry,
    /// starting from the operator's model if there is one).
    pub seed_from: Option<PathBuf>,
    /// The strategy evolver's cadence and whether it learns online.
    pub evolution: crate::engine::evolution::EvolutionSettings,
    /// `ENABLE_QUANTIZATION`: the neural models run INT8 where measured faster at equal accuracy.
    pub enable_quantization: bool,
}

impl Default for MlOptions {
    fn default() -> Self {
        Self {
            models_dir: None,
            batch: crate::ml::batch::BatchSettings::default(),
            self_learning: false,
            retrain_interval: Duration::from_secs(3_600),
            samples_path: None,
            bootstrap_delay: Duration::from_secs(20),
            seed_from: None,
            evolution: crate::engine::evolution::EvolutionSettings::default(),
            enable_quantization: false,
        }
    }
}

/// The model registry of `dir`, reconciled with its top-level model (a fresh `perpdesk train` becomes
/// the champion; lost top-level files are restored from the champion's version).
fn open_registry(
    dir: &std::path::Path,
    seed_from: Option<&std::path::Path>,
) -> Option<crate::ml::registry::Registry> {
    match crate::ml::registry::Registry::open(dir) {
        Ok(mut registry) => {
            if let Some(seed) = seed_from.filter(|_| registry.state.champion.is_none())
                && let Ok(mut model) = crate::ml::predictor::SignalPredictor::load(seed)
            {
                tracing::info!(version = %model.card.version, from = %seed.display(), "model registry seeded");
                if let Err(error) = registry.promote(&mut model, None) {
                    tracing::warn!(%error, "model registry: the seed model could not be stored");
                }
            }
            if let Err(error) = registry.startup() {
                tracing::warn!(%error, "model registry: the champion could not be reconciled");
            }
            Some(registry)
        }
        Err(error) => {
            tracing::warn!(%error, "model registry unreadable: no versions, no self-learning");
            None
        }
    }
}

/// A running engine with its channels.
#[derive(Debug)]
pub struct RunningEngine {
    pub commands: mpsc::Sender<EngineEvent>,
    pub views: watch::Receiver<Arc<View>>,
    pub shutdown: watch::Sender<bool>,
    pub join: JoinHandle<Engine>,
}

impl RunningEngine {
    /// Sends an operator command. Never blocks the caller for long: the channel is large and the
    /// engine drains it continuously.
    pub async fn command(&self, cmd: Command) {
        let _ = self.commands.send(EngineEvent::Command(cmd)).await;
    }

    /// Signals every task to stop and waits for the engine (with a deadline), returning its final
    /// state for inspection.
    pub async fn stop(self) -> Option<Engine> {
        let _ = self.shutdown.send(true);
        match tokio::time::timeout(Duration::from_secs(10), self.join).await {
            Ok(Ok(engine)) => Some(engine),
            _ => None,
        }
    }
}

/// Starts the feed, the stream manager and the engine task (paper: no signed client exists).
pub fn start_engine(opts: &RunOptions) -> anyhow::Result<RunningEngine> {
    start_engine_with(opts, None, Outlets::default())
}

/// Live trading: the signed client and where order intents are journalled before each send.
pub struct LiveTrading {
    pub credentials: Credentials,
    pub intents: Arc<dyn IntentJournal>,
}

impl std::fmt::Debug for LiveTrading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveTrading")
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// Order intents go to the log (client order id, symbol, side, type, exit flags; never a secret)
/// until a durable journal is handed in.
pub fn log_intents() -> Arc<dyn IntentJournal> {
    Arc::new(|intent: &OrderIntent<'_>| {
        let o = intent.order;
        tracing::info!(
            client_order_id = intent.client_order_id,
            symbol = %o.symbol,
            side = o.side.as_str(),
            order_type = o.order_type.as_str(),
            reduce_only = o.reduce_only,
            close_position = o.close_position,
            "order intent"
        );
        Ok(())
    })
}

/// Order intents go to the journal (state `SUBMITTING`) and are committed before the send returns
/// to the executor, so a crash between the intent and the venue's answer leaves a row the
/// reconciliation resolves by `origClientOrderId`. The executor runs on the multi-threaded runtime,
/// so the fsync wait moves the worker aside (`block_in_place`) instead of stalling other tasks; on
/// any other runtime the intent is refused, which stops the send.
pub fn journal_intents(handle: crate::journal::JournalHandle) -> Arc<dyn IntentJournal> {
    let log = log_intents();
    Arc::new(move |intent: &OrderIntent<'_>| {
        log.record(intent)?;
        let o = intent.order;
        let side = match o.side {
            crate::binance::filters::OrderSide::Buy => crate::journal::OrderSide::Buy,
            crate::binance::filters::OrderSide::Sell => crate::journal::OrderSide::Sell,
        };
        let record = crate::journal::OrderIntent {
            client_order_id: intent.client_order_id.to_owned(),
            position_id: None,
            symbol: o.symbol.clone(),
            side,
            order_type: o.order_type.as_str().to_owned(),
            qty: o.qty,
            price: o.price,
            stop_price: o.stop_price,
            reduce_only: o.reduce_only,
            close_position: o.close_position,
            created_at_ms: intent.at_ms,
        };
        let write = || handle.write_durable_blocking(record.clone());
        let written = match tokio::runtime::Handle::try_current() {
            Err(_) => write(),
            Ok(rt) if rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(write)
            }
            Ok(_) => return Err("the order journal needs the multi-threaded runtime".to_owned()),
        };
        written.map_err(|e| format!("order intent not journalled: {e}"))
    })
}

/// Starts the engine with its trading desk connected to the journal and/or Discord (`outlets`); with
/// `live`, also the executor that mirrors its positions on the venue (`--rest-url` for signed REST,
/// `--ws-url` for the user data stream).
pub fn start_engine_with(
    opts: &RunOptions,
    live: Option<LiveTrading>,
    outlets: Outlets,
) -> anyhow::Result<RunningEngine> {
    let rest = MarketRest::new(&opts.rest_url)?;
    let weight = Arc::clone(rest.weight());
    let clock_offset = rest.clock_offset_cell();
    let (events_tx, events_rx) = mpsc::channel::<EngineEvent>(65_536);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (view_tx, view_rx) = watch::channel(Arc::new(View::default()));
    let table = Arc::new(RwLock::new(SymbolTable::default()));
    let feed_tx = feed::spawn(
        rest,
        events_tx.clone(),
        shutdown_rx.clone(),
        opts.rest_concurrency,
    );
    let mut stream_cfg = StreamConfig::new(&opts.ws_url);
    stream_cfg.streams_per_connection = opts.streams_per_connection;
    stream_cfg.stale_after = opts.stale_after;
    stream_cfg.rotate_after = opts.rotate_after;
    let streams = StreamManager::new(
        stream_cfg,
        Arc::clone(&table),
        events_tx.clone(),
        shutdown_rx.clone(),
    );
    // The registry first: it decides which model the top-level files hold.
    let registry = opts
        .ml
        .models_dir
        .as_deref()
        .and_then(|dir| open_registry(dir, opts.ml.seed_from.as_deref()));
    // The signal predictor runs on its own task; its answers come back on the engine's channel.
    let prediction = opts
        .ml
        .models_dir
        .as_deref()
        .and_then(crate::ml::predictor::load_for_hybrid)
        .map(|(predictor, threshold)| {
            crate::engine::prediction::PredictionLink::spawn(
                predictor,
                threshold,
                opts.ml.batch,
                events_tx.clone(),
            )
        });
    let evolution = strategy_evolution(opts);
    let mut engine = Engine::new(opts.engine.clone(), Arc::clone(&table), streams, feed_tx, weight)
        .with_clock_offset(clock_offset)
        .with_prediction(prediction)
        .with_evolution(evolution)
        .with_outlets(outlets);
    if let (Some(registry), Some(samples_path)) = (registry, opts.ml.samples_path.clone()) {
        let settings = crate::engine::learning::LearnerSettings {
            enabled: opts.ml.self_learning,
            interval: opts.ml.retrain_interval,
            bootstrap_delay: opts.ml.bootstrap_delay,
            models_dir: opts.ml.models_dir.clone().unwrap_or_default(),
            samples_path,
            retrain: crate::ml::online::RetrainConfig::default(),
            batch: opts.ml.batch,
        };
        match crate::engine::learning::spawn(settings, registry, events_tx.clone()) {
            Ok(learner) => engine = engine.with_learner(learner),
            Err(error) => tracing::warn!(%error, "self-learning off: the samples file cannot be opened"),
        }
    }
    if let Some(dir) = &opts.ml.models_dir {
        engine = engine.with_models_dir(dir.clone());
    }
    // The structure autoencoder, the discovery ranking and the liquidity model come from `perpdesk train` only (self-learning
    // retrains the signal predictor): from the models directory, else the one the demo was seeded from.
    let trained_dirs: Vec<&std::path::Path> = [opts.ml.models_dir.as_deref(), opts.ml.seed_from.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    let structure_dir = trained_dirs
        .iter()
        .find(|d| d.join(crate::ml::structure::CARD_FILE).exists())
        .or(trained_dirs.first());
    if let Some(model) = structure_dir.and_then(|d| crate::ml::structure::load_for_console(d)) {
        match crate::engine::structure::StructureLink::spawn(
            model,
            opts.ml.enable_quantization,
            events_tx.clone(),
        ) {
            Ok(link) => engine = engine.with_structure(Some(link)),
            Err(error) => tracing::warn!(%error, "structure model not started: no regime"),
        }
    }
    let discovery_dir = trained_dirs
        .iter()
        .find(|d| d.join(crate::ml::discovery::CARD_FILE).exists())
        .or(trained_dirs.first());
    engine = engine.with_discovery(discovery_dir.and_then(|d| crate::ml::discovery::load_for_console(d)));
    let liquidity_dir = trained_dirs
        .iter()
        .find(|d| d.join(crate::ml::liquidity::CARD_FILE).exists())
        .or(trained_dirs.first());
    engine = engine.with_liquidity(liquidity_dir.and_then(|d| crate::ml::liquidity::load_for_console(d)));
    if let Some(live) = live {
        let rest = Arc::new(SignedRest::new(&opts.rest_url, live.credentials)?);
        let orders = OrderClient::new(rest, live.intents);
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (report_tx, mut report_rx) = mpsc::channel(1024);
        engine = engine.with_execution(ExecutionLink::new(cmd_tx));
        let (rest_url, settings) = (opts.rest_url.clone(), ExecutorSettings::new(&opts.ws_url));
        let stop = shutdown_rx.clone();
        let reports = report_tx.clone();
        tokio::spawn(async move {
            match Executor::start(orders, &rest_url, settings, table, report_tx).await {
                Ok(executor) => executor.run(cmd_rx, stop).await,
                Err(error) => {
                    tracing::error!(%error, "live execution could not start: no entry will be sent");
                    let _ = reports
                        .send(ExecReport::Gate {
                            state: GateState::Unknown,
                            detail: format!("executor not started: {error}"),
                        })
                        .await;
                }
            }
        });
        let events = events_tx.clone();
        tokio::spawn(async move {
            while let Some(r) = report_rx.recv().await {
                if events.send(EngineEvent::Execution(r)).await.is_err() {
                    return;
                }
            }
        });
    }
    let join = tokio::spawn(engine.run(events_rx, view_tx, shutdown_rx));
    Ok(RunningEngine {
        commands: events_tx,
        views: view_rx,
        shutdown: shutdown_tx,
        join,
    })
}

/// Where logs go.
pub fn log_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("logs")
}

/// Waits for SIGINT or SIGTERM (Ctrl-C only on non-Unix).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The strategy evolver the engine starts with: the pre-trained Q-network of the models directory when
/// it loads, else an untrained one; bounded by the configured leverage and risk caps.
fn strategy_evolution(opts: &RunOptions) -> Option<crate::engine::evolution::Evolution> {
    use crate::ml::evolver::{EvolverConfig, HardCaps};
    let risk = &opts.engine.trading.risk;
    let caps = HardCaps {
        max_leverage: risk.max_leverage,
        risk_fraction: risk.risk_fraction,
    };
    match crate::ml::evolver_model::load_or_fresh(opts.ml.models_dir.as_deref(), EvolverConfig::default()) {
        Ok((evolver, source)) => {
            let evolution =
                crate::engine::evolution::Evolution::new(evolver, opts.ml.evolution, caps, source);
            // The state is kept beside the models: what online learning changed survives a restart.
            Some(match &opts.ml.models_dir {
                Some(dir) => evolution.with_state_dir(dir.clone()),
                None => evolution,
            })
        }
        Err(error) => {
            tracing::error!(%error, "strategy evolver unavailable; self_learning uses the baseline set");
            None
        }
    }
}
