//! The `perpdesk` binary: parse the command line, load the layered configuration, dispatch.
//!
//! * `perpdesk [--demo] [--headless]` — the console (TUI or headless) against Binance or the
//!   built-in simulated exchange;
//! * `perpdesk sim` — the simulated exchange alone;
//! * `perpdesk config` — the effective configuration, secrets redacted;
//! * `perpdesk analyze` — indicator and SMC columns for a bar file (`perpdesk::analyze`); it needs no
//!   configuration, so it runs before the configuration is loaded;
//! * `perpdesk train` — the signal predictor from kline history (`perpdesk::ml::train`); no
//!   configuration either.
//!
//! Configuration errors exit with code 2 and a message naming the key; every other failure exits 1
//! with the error chain. `anyhow` lives only here and in `app` (the binary edge).

use std::{io::Write as _, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::Parser as _;
use perpdesk::{
    analyze::{self, AnalyzeConfig, AnalyzeError},
    app::{self, RunOptions},
    binance::stream::StreamConfig,
    cli::{AnalyzeArgs, AttachArgs, Cli, Command, JournalArgs, JournalCommand, SimArgs, TrainArgs},
    config::{self, Config, ConfigError},
    console::{
        attach, headless,
        tui::{self, IntentSink},
    },
    engine::{
        EngineSettings, FeatureStoreSettings, TradingSettings,
        outlets::{JournalLink, Outlets},
    },
    journal::{self, Execution, Journal, JournalError, JournalWriter, WriterConfig},
    ml::{
        self,
        train::{TrainConfig, TrainError},
    },
    notify::{self, NotifySettings},
    positions::{BookConfig, Fees, RunMode},
    risk::RiskParams,
    sim::{
        calibration,
        replay::ReplayMarket,
        server::{self as sim_server, SimClock, SimSettings},
        source::MarketSource,
        synthetic::SyntheticMarket,
    },
};
use perpdesk_ui::Theme;
use tracing_subscriber::{EnvFilter, Layer as _, layer::SubscriberExt as _, util::SubscriberInitExt as _};

/// History the synthetic market has before the clock's anchor: 500 bars of 1h with room to spare.
const SYNTHETIC_HISTORY_MS: i64 = 30 * 86_400_000;

/// How much faster than the wall clock the `--demo` market runs: a 5m bar closes every 30 s and an
/// hour of market passes in 6 minutes, so signals, stops and targets show within minutes. The demo's
/// simulated exchange lives and dies with the console, so its timeline need not survive a restart
/// (unlike `perpdesk sim`, anchored at midnight UTC).
const DEMO_SPEED: f64 = 10.0;

/// Where the demo's simulated clock starts: Tuesday 2025-03-11 13:00 UTC, every run. The synthetic
/// market is a pure function of its seed and its timeline, so a fixed start makes every demo run the
/// same market. Anchored at the wall clock instead, the demo's market depended on the hour it was
/// started: started at 20:30 UTC its 200 correlated symbols sat in a stretch where no 5m break
/// confirmed any setup for over 50 simulated minutes (no signal at all), while from 13:00 the first
/// signal comes within seconds of `READY` (measured: 14 positions opened and closed in 4 minutes).
const DEMO_MARKET_START_MS: perpdesk::domain::TimestampMs = 1_741_698_000_000;

/// The demo's journal file in the data directory, and where the previous run's goes.
const DEMO_JOURNAL: &str = "journal-demo.sqlite";
const DEMO_JOURNAL_PREVIOUS: &str = "journal-demo.previous.sqlite";
/// The demo's models directory in the data directory (seeded from `paths.models_dir`'s model).
const DEMO_MODELS: &str = "models-demo";
/// The demo's online samples (its market is synthetic: they must not mix with a real account's).
const DEMO_SAMPLES: &str = "online_samples-demo.jsonl";

/// The synthetic market for a clock. Its history starts a fixed span before the clock's anchor (not
/// before "now"), so every simulator started with the same seed on the same day generates the very
/// same price path, and a restarted simulator continues the killed one's market.
fn synthetic_market(seed: u64, symbols: usize, clock: &SimClock) -> SyntheticMarket {
    let start = clock.now();
    let history = start - (clock.anchor_sim() - SYNTHETIC_HISTORY_MS);
    SyntheticMarket::new(seed, symbols, start, history)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Analyze(args)) = &cli.command {
        return run_analyze(args);
    }
    // With `--out`, training needs no configuration; without it, the configured models directory.
    if let Some(Command::Train(args @ TrainArgs { out: Some(out), .. })) = &cli.command {
        // The configuration is still read for `ml.feature_discovery_rate`, but a broken one does not
        // stop a training run that names its own output directory.
        let rate = match config::load(&cli, &config::process_env) {
            Ok(loaded) => loaded.config.ml.feature_discovery_rate,
            Err(err) => {
                let rate = perpdesk::config::MlConfig::default().feature_discovery_rate;
                eprintln!("train: configuration not used ({err}); feature_discovery_rate {rate}");
                rate
            }
        };
        return run_train(args, out, rate);
    }
    let loaded = match config::load(&cli, &config::process_env) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(ConfigError::EXIT_CODE);
        }
    };
    match &cli.command {
        Some(Command::Config(_)) => match loaded.to_annotated_toml() {
            Ok(text) => {
                let mut stdout = std::io::stdout().lock();
                if stdout
                    .write_all(text.as_bytes())
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    return ExitCode::FAILURE;
                }
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::from(ConfigError::EXIT_CODE)
            }
        },
        Some(Command::Attach(args)) => {
            let theme = match load_theme(args.theme.as_deref().unwrap_or(&loaded.config.ui.theme)) {
                Ok(t) => t,
                Err(msg) => {
                    eprintln!("error: {msg}");
                    return ExitCode::from(ConfigError::EXIT_CODE);
                }
            };
            finish(runtime().and_then(|rt| rt.block_on(run_attach(args, &loaded.config, theme))))
        }
        Some(Command::Analyze(args)) => run_analyze(args),
        Some(Command::Train(args)) => run_train(
            args,
            args.out.as_ref().unwrap_or(&loaded.config.paths.models_dir),
            loaded.config.ml.feature_discovery_rate,
        ),
        Some(Command::Journal(args)) => run_journal(args, &loaded.config),
        Some(Command::Sim(args)) => {
            finish(runtime().and_then(|rt| rt.block_on(run_sim(args, &loaded.config))))
        }
        None => {
            // Resolve the theme before touching the terminal: a bad theme is a configuration error.
            let theme = if cli.headless {
                Theme::default()
            } else {
                match load_theme(&loaded.config.ui.theme) {
                    Ok(t) => t,
                    Err(msg) => {
                        eprintln!("error: {msg}");
                        return ExitCode::from(ConfigError::EXIT_CODE);
                    }
                }
            };
            finish(runtime().and_then(|rt| {
                rt.block_on(run_console(
                    &loaded.config,
                    cli.headless,
                    cli.export_bars.as_deref(),
                    theme,
                ))
            }))
        }
    }
}

/// `perpdesk analyze`: the library does the work; this prints progress and the summary line on stderr.
fn run_analyze(args: &AnalyzeArgs) -> ExitCode {
    let started = std::time::Instant::now();
    let result = AnalyzeConfig::from_args(args).and_then(|config| {
        analyze::run(&args.input, args.output.as_deref(), &config, &mut |bars| {
            eprintln!("analyze: {bars} bars…");
        })
    });
    match result {
        Ok(summary) => {
            let pips: Vec<String> = summary
                .pip_ranges
                .iter()
                .map(|(label, pip)| format!("{label} {pip}"))
                .collect();
            eprintln!(
                "analyze: {} rows, {} columns in {:.2} s (liquidity pip range: {}) -> {}",
                summary.rows,
                summary.columns,
                started.elapsed().as_secs_f64(),
                if pips.is_empty() {
                    "-".to_owned()
                } else {
                    pips.join(", ")
                },
                args.output
                    .as_ref()
                    .map_or_else(|| "stdout".to_owned(), |p| p.display().to_string())
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            if err.is_bad_input() {
                ExitCode::from(AnalyzeError::BAD_INPUT_EXIT_CODE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// `perpdesk train`: progress on stderr, the report on stdout.
fn run_train(args: &TrainArgs, out: &std::path::Path, feature_discovery_rate: f64) -> ExitCode {
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut config = TrainConfig::new(args.data.clone(), out.to_path_buf(), command);
    config.feature_discovery_rate = feature_discovery_rate;
    config.validation_fraction = args.validation;
    config.horizon_bars = args.horizon_bars;
    config.purge_ms = i64::from(args.purge_hours) * 3_600_000;
    config.threshold = args.threshold.unwrap_or(config.threshold);
    config.params.trees = args.trees;
    config.params.max_depth = args.depth;
    config.params.learning_rate = args.learning_rate;
    config.max_entry_bars = args.max_bars;
    config.liquidity.horizon_bars = args.liquidity_horizon_bars;
    match ml::train::run(&config, &mut |line| eprintln!("train: {line}")) {
        Ok(outcome) => {
            print!("{}", ml::train::report(&outcome));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            match err {
                TrainError::Data(_) | TrainError::Config(_) => ExitCode::from(2),
                TrainError::TooLittle(_) | TrainError::Gbdt(_) | TrainError::Model(_) => ExitCode::FAILURE,
            }
        }
    }
}

/// `perpdesk journal export`: CSV files from the journal, a summary line on stderr.
fn run_journal(args: &JournalArgs, config: &Config) -> ExitCode {
    let JournalCommand::Export(export) = &args.command;
    let file = export.journal.clone().unwrap_or_else(|| {
        let execution = if export.live {
            Execution::Live
        } else {
            Execution::Paper
        };
        journal::journal_path(&config.paths.data_dir, execution)
    });
    match journal::export_csv(&file, &export.out) {
        Ok(summary) => {
            eprintln!(
                "journal export: {} trades, {} events, {} strategy changes from {} -> {}, {}, {}",
                summary.trades,
                summary.events,
                summary.strategy_changes,
                file.display(),
                summary.trades_file.display(),
                summary.events_file.display(),
                summary.strategy_changes_file.display()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            match err {
                JournalError::Missing { .. }
                | JournalError::NewerSchema { .. }
                | JournalError::OlderSchema { .. }
                | JournalError::Open { .. } => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// `--theme NAME|PATH`: a built-in name, else a TOML file.
fn load_theme(spec: &str) -> Result<Theme, String> {
    match Theme::builtin(spec) {
        Ok(t) => Ok(t),
        Err(builtin_err) => {
            if std::path::Path::new(spec).exists() {
                Theme::from_file(spec).map_err(|e| format!("theme file {spec}: {e}"))
            } else {
                Err(format!("ui.theme = {spec:?}: {builtin_err}"))
            }
        }
    }
}

/// Logs go to daily-rolling files in `<data dir>/logs` (JSON lines). In headless mode warnings also
/// go to stderr; the TUI owns the terminal, so it gets none.
fn init_logging(
    config: &Config,
    headless: bool,
) -> anyhow::Result<tracing_appender::non_blocking::WorkerGuard> {
    let dir = app::log_dir(&config.paths.data_dir);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the log directory {}", dir.display()))?;
    let appender = tracing_appender::rolling::daily(&dir, "perpdesk.log");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = EnvFilter::try_new(&config.logging.level)
        .with_context(|| format!("logging.level = {:?} is not a valid filter", config.logging.level))?;
    let file_layer = tracing_subscriber::fmt::layer()
        .json()
        .with_writer(writer)
        .with_filter(filter);
    let stderr_layer = headless.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_filter(tracing_subscriber::filter::LevelFilter::WARN)
    });
    tracing_subscriber::registry()
        .with(file_layer)
        .with(stderr_layer)
        .try_init()
        .ok();
    Ok(guard)
}

fn engine_settings(config: &Config, venue: &str, environment: &str) -> EngineSettings {
    EngineSettings {
        venue: venue.to_owned(),
        environment: environment.to_owned(),
        live_trading: config.trading_enabled,
        mode: config.strategy_mode,
        universe_size: config.universe.size,
        timeframes: config.universe.timeframes.clone(),
        history_bars: u32::try_from(config.universe.history_bars).unwrap_or(1500),
        ring_capacity: config.universe.ring_capacity,
        universe_refresh: config.universe.refresh(),
        trading_cycle: config.engine.trading_cycle(),
        virtual_cycle: config.engine.virtual_cycle(),
        view_fps: config.engine.view_fps,
        chart_bars: 120,
        feature_store: Some(FeatureStoreSettings {
            data_dir: config.paths.data_dir.clone(),
            slots: config.features.max_memory_mapped_positions,
            dim: config.features.feature_dimension,
            memory_mapped: config.features.enable_memory_mapped_storage,
            incremental_cache: config.features.enable_incremental_cache,
        }),
        trading: trading_settings(config),
    }
}

fn trading_settings(config: &Config) -> TradingSettings {
    let run_mode = if config.demo {
        RunMode::Demo
    } else if config.trading_enabled {
        RunMode::Live
    } else {
        RunMode::Paper
    };
    let p = &config.positions;
    TradingSettings {
        run_mode,
        paper_equity: p.paper_equity,
        risk: RiskParams {
            risk_fraction: p.risk_fraction,
            ..RiskParams::default()
        },
        book: BookConfig {
            max_positions: p.max_positions,
            fees: Fees {
                maker: p.maker_fee,
                taker: p.taker_fee,
            },
            smart_monitoring: config.monitoring.enable_smart_monitoring,
            ..BookConfig::default()
        },
        // The demo's paper account starts afresh every run, so its breaker does too (and a demo can
        // never halt paper or live trading); paper and live keep theirs across restarts.
        breaker_path: (!config.demo).then(|| config.paths.data_dir.join("breaker.json")),
        position_ttl: p.ttl(),
        trailing_stop_r: p.trailing_stop_r,
        ..TradingSettings::default()
    }
}

/// The journal (paper or live file in the data directory; not for the demo, whose account lives and
/// dies with the run) and Discord (when a webhook or a bot token and channel are configured).
fn open_outlets(
    config: &Config,
) -> anyhow::Result<(
    Outlets,
    Option<JournalWriter>,
    Option<tokio::task::JoinHandle<()>>,
)> {
    let (link, writer) = {
        // The demo is paper trading on a simulated market that starts afresh at every run, so its
        // positions cannot be resumed: it journals each run into a fresh file (the previous run's is
        // kept beside it) and restores nothing. Paper and live resume from their own files.
        let execution = if config.trading_enabled && !config.demo {
            Execution::Live
        } else {
            Execution::Paper
        };
        std::fs::create_dir_all(&config.paths.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                config.paths.data_dir.display()
            )
        })?;
        let path = if config.demo {
            start_demo_journal(&config.paths.data_dir)?
        } else {
            journal::journal_path(&config.paths.data_dir, execution)
        };
        let (mut file, report) = Journal::open(&path).context("cannot open the journal")?;
        if report.from != report.to {
            tracing::info!(from = report.from, to = report.to, backup = ?report.backup, "journal migrated");
        }
        let restored = if config.demo {
            journal::RestoredState::default()
        } else {
            file.restore()
                .context("cannot read the journal's open positions")?
        };
        tracing::info!(
            path = %path.display(),
            open_positions = restored.open_positions.len(),
            "journal opened"
        );
        let writer =
            JournalWriter::spawn(file, WriterConfig::default()).context("cannot start the journal writer")?;
        let link = JournalLink {
            handle: writer.handle(),
            execution,
            restored,
        };
        (Some(link), Some(writer))
    };
    let (notifier, join) = match NotifySettings::from_config(config) {
        Some(settings) => {
            let routing = settings.routing.clone();
            let (handle, join) = notify::spawn(settings).context("cannot start the Discord notifier")?;
            (Some((handle, routing)), Some(join))
        }
        None => (None, None),
    };
    Ok((Outlets::new(link, notifier), writer, join))
}

/// The demo's journal for this run: `journal-demo.sqlite` in the data directory, fresh; the previous
/// run's file (with its write-ahead log, if a crash left one) becomes `journal-demo.previous.sqlite`.
fn start_demo_journal(data_dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let path = data_dir.join(DEMO_JOURNAL);
    if path.exists() {
        for suffix in ["", "-wal", "-shm"] {
            let from = data_dir.join(format!("{DEMO_JOURNAL}{suffix}"));
            let to = data_dir.join(format!("{DEMO_JOURNAL_PREVIOUS}{suffix}"));
            if from.exists() {
                std::fs::rename(&from, &to).with_context(|| {
                    format!("cannot move the previous demo journal {} aside", from.display())
                })?;
            } else if to.exists() {
                // A stale log of the older file must not be applied to the one just moved there.
                std::fs::remove_file(&to).with_context(|| format!("cannot remove {}", to.display()))?;
            }
        }
    }
    Ok(path)
}

async fn run_console(
    config: &Config,
    headless: bool,
    export_bars: Option<&std::path::Path>,
    theme: Theme,
) -> anyhow::Result<()> {
    let _log_guard = init_logging(config, headless)?;
    // Before the models load: they run in ONNX Runtime when it is configured (one log line either way).
    perpdesk::ml::onnxruntime::init(config.ml.onnxruntime_library.as_deref());
    let demo_sim = if config.demo {
        // Accelerated from now on, so positions open and close within minutes (see DEMO_SPEED), over
        // the same simulated day every run (see DEMO_MARKET_START_MS).
        let clock = SimClock::new(perpdesk::domain::now_ms(), DEMO_MARKET_START_MS, DEMO_SPEED, None);
        let market = synthetic_market(42, 260, &clock);
        let handle = sim_server::start(Arc::new(market), clock, SimSettings::default())
            .await
            .context("cannot start the built-in simulated exchange")?;
        tracing::info!(rest = %handle.rest_url, ws = %handle.ws_url, "demo: simulated exchange started");
        Some(handle)
    } else {
        None
    };
    let (rest_url, ws_url, venue, environment) = match &demo_sim {
        Some(h) => (h.rest_url.clone(), h.ws_url.clone(), "simulated exchange", "sim"),
        // An overridden URL may be anything Binance-compatible (a `perpdesk sim`, a proxy): say so
        // rather than claim it is Binance's mainnet.
        None if config.venue.rest_url.is_some() || config.venue.ws_url.is_some() => (
            config.rest_url().to_owned(),
            config.ws_url().to_owned(),
            "Binance-compatible endpoint",
            "custom",
        ),
        None => (
            config.rest_url().to_owned(),
            config.ws_url().to_owned(),
            "Binance USDT-M",
            config.venue.env.as_str(),
        ),
    };
    // The feature store lives in the data directory; if it cannot be created, opening the store fails
    // with the path in the message and the engine runs without it.
    if let Err(error) = std::fs::create_dir_all(&config.paths.data_dir) {
        tracing::error!(%error, dir = %config.paths.data_dir.display(), "cannot create the data directory");
    }
    let opts = RunOptions {
        rest_url,
        ws_url,
        engine: engine_settings(config, venue, environment),
        streams_per_connection: config.universe.streams_per_connection,
        stale_after: Duration::from_secs(30),
        rest_concurrency: 8,
        rotate_after: StreamConfig::new("").rotate_after,
        ml: app::MlOptions {
            // The demo's market is synthetic: what it learns stays in its own models directory.
            models_dir: Some(if config.demo {
                config.paths.data_dir.join(DEMO_MODELS)
            } else {
                config.paths.models_dir.clone()
            }),
            seed_from: config.demo.then(|| config.paths.models_dir.clone()),
            // ENABLE_BATCH_PREDICTION=false: every request is its own batch.
            batch: perpdesk::ml::batch::BatchSettings {
                max_batch: if config.ml.enable_batch_prediction {
                    config.ml.batch_prediction_size
                } else {
                    1
                },
                max_delay: config.ml.batch_max_delay(),
            },
            evolution: perpdesk::engine::evolution::EvolutionSettings {
                interval: config.ml.strategy_evolution_interval(),
                learning: config.ml.enable_self_learning
                    && config.ml.self_learning_mode != perpdesk::config::SelfLearningMode::Frozen,
            },
            self_learning: config.ml.enable_self_learning,
            retrain_interval: config.ml.strategy_evolution_interval(),
            samples_path: Some(config.paths.data_dir.join(if config.demo {
                DEMO_SAMPLES
            } else {
                perpdesk::ml::online::SAMPLES_FILE
            })),
            bootstrap_delay: Duration::from_secs(20),
            enable_quantization: config.ml.enable_quantization,
        },
    };
    tracing::info!(rest = %opts.rest_url, ws = %opts.ws_url, headless, "perpdesk starting");
    if let Some(path) = &config.ml.quantized_model_path {
        // Said once at start so a trader who set it does not believe an INT8 file is in use.
        tracing::warn!(
            path = %path.display(),
            "QUANTIZED_MODEL_PATH is not used: INT8 variants are rebuilt and measured from the FP32 models at \
             each load (ENABLE_QUANTIZATION)"
        );
    }
    let (outlets, writer, notifier) = open_outlets(config)?;
    let intents = writer.as_ref().map(JournalWriter::handle);
    let engine = app::start_engine_with(&opts, live_trading(config, intents)?, outlets)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        app::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    if headless {
        println!(
            "perpdesk headless: {venue} ({environment}) REST {} WS {}",
            opts.rest_url, opts.ws_url
        );
        std::fs::create_dir_all(&config.paths.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                config.paths.data_dir.display()
            )
        })?;
        let socket = attach::socket_path(&config.paths.data_dir);
        let server = attach::serve(
            &socket,
            engine.views.clone(),
            engine.commands.clone(),
            stop_rx.clone(),
        )
        .await?;
        println!(
            "attach a console with: perpdesk attach --socket {}",
            socket.display()
        );
        let printer = tokio::spawn(headless::print_status(
            engine.views.clone(),
            Duration::from_secs(5),
        ));
        let mut stop_rx = stop_rx;
        let _ = stop_rx.changed().await;
        println!("perpdesk: shutting down");
        printer.abort();
        let _ = server.await;
    } else {
        tui::run(engine.views.clone(), IntentSink::Local(&engine), theme, stop_rx).await?;
    }
    let stopped = engine.stop().await;
    if let Some(path) = export_bars {
        let Some(engine) = stopped else {
            anyhow::bail!(
                "the engine did not stop in time; no bars exported to {}",
                path.display()
            );
        };
        let rows = engine.export_rows();
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create the bar export {}", path.display()))?;
        perpdesk::market::export::write_rows(&mut std::io::BufWriter::new(file), &rows)
            .with_context(|| format!("cannot write the bar export {}", path.display()))?;
        println!(
            "perpdesk: exported {} closed bars to {}",
            rows.len(),
            path.display()
        );
    }
    if let Some(writer) = writer {
        writer.shutdown().await;
    }
    if let Some(notifier) = notifier {
        // The engine (the last holder of the notifier's handle) is gone: the notifier delivers what it
        // holds within its grace period and stops.
        let _ = tokio::time::timeout(Duration::from_secs(15), notifier).await;
    }
    if let Some(sim) = demo_sim {
        sim.shutdown().await;
    }
    tracing::info!("perpdesk stopped");
    Ok(())
}

/// `TRADING_ENABLED=true` (and not `--demo`): the signed client's credentials, read only here. Paper
/// mode returns `None` without touching the secrets, so it sends no signed request.
/// The signed client for live trading; order intents go to the journal (`intents`) when one is open.
fn live_trading(
    config: &Config,
    intents: Option<journal::JournalHandle>,
) -> anyhow::Result<Option<app::LiveTrading>> {
    use perpdesk::binance::{secret::SecretString, signed::Credentials};
    if !config.trading_enabled || config.demo {
        return Ok(None);
    }
    // The configuration refuses to load with trading enabled and a key missing; this is the
    // same check at the point of use.
    let (Some(key), Some(secret)) = (
        &config.secrets.binance_api_key,
        &config.secrets.binance_api_secret,
    ) else {
        anyhow::bail!("trading is enabled but BINANCE_API_KEY / BINANCE_API_SECRET are not set");
    };
    let credentials = Credentials::hmac(
        &SecretString::new(key.expose().to_owned()),
        &SecretString::new(secret.expose().to_owned()),
    )
    .context("the Binance API key pair is not usable")?;
    tracing::warn!("live trading: positions are mirrored by real orders on the venue");
    Ok(Some(app::LiveTrading {
        credentials,
        intents: intents.map_or_else(app::log_intents, app::journal_intents),
    }))
}

async fn run_sim(args: &SimArgs, config: &Config) -> anyhow::Result<()> {
    if let Some(dir) = &args.calibrate {
        let report =
            calibration::calibrate(dir).with_context(|| format!("calibrating from {}", dir.display()))?;
        println!("{}", report.to_markdown());
        return Ok(());
    }
    if let (Some(out), Some(like)) = (&args.dump_bars, &args.like) {
        return dump_bars(args, out, like);
    }
    let _log_guard = init_logging(config, true)?;
    let (source, clock): (Arc<dyn MarketSource>, SimClock) = if let Some(dir) = &args.replay {
        let market =
            ReplayMarket::from_dir(dir).with_context(|| format!("loading klines from {}", dir.display()))?;
        let clock = SimClock::new(
            perpdesk::domain::now_ms(),
            market.start_time(),
            args.speed,
            market.end_time(),
        );
        (Arc::new(market), clock)
    } else {
        let clock = args.synthetic_clock();
        let symbols = usize::try_from(args.symbols).unwrap_or(260);
        (Arc::new(synthetic_market(args.seed, symbols, &clock)), clock)
    };
    let mut settings = SimSettings {
        port: args.port,
        faults: args.faults.as_deref().cloned().unwrap_or_default(),
        ..SimSettings::default()
    };
    let custom_key = args.api_key.is_some();
    if let (Some(key), Some(secret)) = (&args.api_key, &args.api_secret) {
        settings.trading.credentials = vec![perpdesk::sim::auth::SimCredential::new(key, secret)];
    }
    if let (Some(key), Some(path)) = (&args.api_key, &args.api_public_key) {
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the public key {}", path.display()))?;
        settings.trading.credentials = vec![
            perpdesk::sim::auth::SimCredential::ed25519_from_pem(key, &pem)
                .with_context(|| format!("in {}", path.display()))?,
        ];
    }
    let handle = sim_server::start(Arc::clone(&source), clock, settings)
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
    let tradable = source
        .symbols()
        .iter()
        .filter(|s| s.status == "TRADING" && s.quote_asset == "USDT" && s.contract_type == "PERPETUAL")
        .count();
    println!(
        "perpdesk sim: simulated Binance USDT-M exchange on 127.0.0.1:{}",
        handle.addr.port()
    );
    println!("REST base URL:      {}", handle.rest_url);
    println!("WebSocket base URL: {}", handle.ws_url);
    println!(
        "market: {} ({} symbols, {tradable} tradable USDT perpetuals), speed {}x, seed {}",
        if args.replay.is_some() {
            "replay"
        } else {
            "synthetic"
        },
        source.symbols().len(),
        args.speed,
        args.seed
    );
    println!(
        "clock anchor day {} (pass --day with --dump-bars after midnight)",
        utc_day(clock.anchor_sim())
    );
    if let Some(plan) = &args.faults {
        println!("fault plan: {plan}");
    }
    println!(
        "connect a console: perpdesk --rest-url {} --ws-url {}",
        handle.rest_url, handle.ws_url
    );
    if custom_key {
        if args.api_public_key.is_some() {
            println!(
                "signed endpoints: the API key given with --api-key (Ed25519, public key from --api-public-key)"
            );
        } else {
            println!("signed endpoints: the API key given with --api-key (HMAC secret from --api-secret)");
        }
    } else {
        println!(
            "signed endpoints: test key {} / secret {} (documented defaults; --api-key/--api-secret to change)",
            perpdesk::sim::auth::DEFAULT_API_KEY,
            perpdesk::sim::auth::DEFAULT_API_SECRET
        );
    }
    app::shutdown_signal().await;
    if args.faults.is_some() {
        println!("faults injected: {}", handle.fault_summary());
    }
    println!("perpdesk sim: shutting down");
    handle.shutdown().await;
    Ok(())
}

/// `YYYY-MM-DD` of a UTC instant in ms.
fn utc_day(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map_or_else(|_| ms.to_string(), |t| t.date().to_string())
}

/// `perpdesk sim --dump-bars OUT --like EXPORT`: the simulator's bars for every series in the export.
fn dump_bars(args: &SimArgs, out: &std::path::Path, like: &std::path::Path) -> anyhow::Result<()> {
    use perpdesk::market::export;
    let file = std::fs::File::open(like).with_context(|| format!("cannot open {}", like.display()))?;
    let ranges =
        export::series_ranges(std::io::BufReader::new(file)).with_context(|| like.display().to_string())?;
    let source: Arc<dyn MarketSource> = if let Some(dir) = &args.replay {
        Arc::new(
            ReplayMarket::from_dir(dir).with_context(|| format!("loading klines from {}", dir.display()))?,
        )
    } else {
        let clock = args.synthetic_clock();
        let symbols = usize::try_from(args.symbols).unwrap_or(260);
        Arc::new(synthetic_market(args.seed, symbols, &clock))
    };
    let mut rows = Vec::new();
    for ((name, interval), (first, last)) in &ranges {
        let Some(index) = source.symbols().iter().position(|s| &s.name == name) else {
            anyhow::bail!("{name} is not listed by this simulator (check --seed and --symbols)");
        };
        let spec = &source.symbols()[index];
        let now = interval.next_open(*last) + 1;
        let mut t = *first;
        while t <= *last {
            let bar = source
                .bar(index, *interval, t, now)
                .with_context(|| format!("{name} {interval}: no bar at {t}"))?;
            rows.push(export::format_row(
                name,
                *interval,
                &bar,
                spec.price_precision,
                spec.quantity_precision,
            ));
            t = interval.next_open(t);
        }
    }
    export::sort_rows(&mut rows);
    let file = std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    export::write_rows(&mut std::io::BufWriter::new(file), &rows)
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "perpdesk sim: {} reference bars for {} series written to {}",
        rows.len(),
        ranges.len(),
        out.display()
    );
    Ok(())
}

async fn run_attach(args: &AttachArgs, config: &Config, theme: Theme) -> anyhow::Result<()> {
    let _log_guard = init_logging(config, false)?;
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(|| attach::socket_path(&config.paths.data_dir));
    let attached = attach::connect(&socket).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        app::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    tui::run(
        attached.views.clone(),
        IntentSink::Remote(&attached.intents),
        theme,
        stop_rx,
    )
    .await?;
    // Let the writer flush the detach before the runtime ends.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(())
}
