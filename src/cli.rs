//! The command line: what a trader types, and the `--help` text they read.
//!
//! This module only *describes* the command line (clap derive). It does not decide anything: every flag
//! that is also a setting is an `Option` here, and [`crate::config::load`] layers it on top of the defaults,
//! the config file and the environment (defaults < `perpdesk.toml` < environment variables < flags), checks
//! it, and says which layer each value came from. Flags that only make sense for one subcommand live on that
//! subcommand (`perpdesk sim --port`); flags that shape the trading console are accepted both before the
//! subcommand and after `perpdesk config`, so `perpdesk config --mode hybrid` previews the effect of a flag.

// Doc comments in this module are the `--help` text a trader reads in a terminal, where Markdown backticks
// would print literally.
#![allow(clippy::doc_markdown)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::{
    analyze::FvgJoin,
    config::{StrategyMode, VenueEnv},
    sim::{faults::FaultPlan, server::SimClock},
};

/// Text appended to `perpdesk --help`: the configuration layers and every environment variable.
/// A unit test checks that each variable the loader reads is listed here.
pub const ENV_HELP: &str = "\
CONFIGURATION
  Each setting is taken from the first of these that sets it:
    1. a command-line flag
    2. an environment variable (below)
    3. the config file: --config PATH, else <config dir>/perpdesk/perpdesk.toml if it exists
       (~/.config/perpdesk/perpdesk.toml on Linux)
    4. the built-in default
  `perpdesk config` prints the result, with the origin of every value and secrets redacted.
  Any bad value stops perpdesk with a message naming it, and exit code 2.

ENVIRONMENT VARIABLES
  Venue and paths
    PERPDESK_ENV                   Binance environment: mainnet, testnet or demo          [mainnet]
    PERPDESK_DATA_DIR              journal, logs and feature store          [platform data dir]
    PERPDESK_MODELS_DIR            models the engine loads (`perpdesk train` output)       [models]
  Trading (paper trading unless TRADING_ENABLED=true)
    TRADING_ENABLED                true = send real orders (needs the two keys below)       [false]
    BINANCE_API_KEY                Binance API key; read only when trading is enabled
    BINANCE_API_SECRET             Binance API secret; read only when trading is enabled
    MAX_POSITIONS                  most positions open at once                                [999]
    STRATEGY_MODE                  ict, self_learning or hybrid                               [ict]
  Notifications (Discord: a webhook URL, or a bot token plus a channel id)
    DISCORD_WEBHOOK_URL            webhook URL (it is a credential: never printed)
    DISCORD_TOKEN                  bot token
    DISCORD_CHANNEL_ID             channel the bot posts to
  Machine learning
    ENABLE_SELF_LEARNING           learn from closed trades                                  [true]
    SELF_LEARNING_MODE             online, batch or frozen                                  [batch]
    STRATEGY_EVOLUTION_INTERVAL    seconds between strategy evolution rounds                 [3600]
    FEATURE_DISCOVERY_RATE         share of exploration in feature discovery, 0..1            [0.1]
    STRUCTURE_VECTOR_DIM           size of the market-structure vector (16 only)               [16]
    ENABLE_BATCH_PREDICTION        batch model inference requests                            [true]
    BATCH_PREDICTION_SIZE          requests per batch                                          [32]
    BATCH_MAX_DELAY                longest wait for a batch to fill, in milliseconds          [100]
    ENABLE_QUANTIZATION            INT8 neural models where measured faster, same accuracy  [false]
    QUANTIZED_MODEL_PATH           (read, not used: INT8 variants are built at load)
    ORT_DYLIB_PATH                 ONNX Runtime library (1.31+) to run models in            [tract]
  Features and monitoring
    FEATURE_DIMENSION              features per symbol                                         [32]
    ENABLE_INCREMENTAL_CACHE       update features bar by bar instead of recomputing         [true]
    ENABLE_MEMORY_MAPPED_STORAGE   keep feature vectors in a memory-mapped file              [true]
    MAX_MEMORY_MAPPED_POSITIONS    slots in the memory-mapped store                          [1000]
    ENABLE_SMART_MONITORING        check risky positions more often                          [true]
  An empty variable counts as unset. Booleans are true/false (or 1/0).";

/// perpdesk: a terminal trading console for Binance USDT-M perpetual futures.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "perpdesk",
    version,
    about = "Terminal trading console for Binance USDT-M perpetual futures",
    long_about = "Terminal trading console for Binance USDT-M perpetual futures.\n\n\
        Without a subcommand, perpdesk opens the console: it follows the most traded USDT perpetuals on \
        Binance with real public market data, scans every timeframe as bars close, and paper-trades by default. \
        No API key is needed and no order is sent unless TRADING_ENABLED=true.\n\n\
        Try it offline first: `perpdesk --demo` starts a built-in simulated exchange and connects to it.",
    after_long_help = ENV_HELP,
    args_conflicts_with_subcommands = false
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(flatten)]
    pub run: RunArgs,

    /// Run without the terminal UI: structured logs go to the log file and a one-line status is printed to
    /// stdout every few seconds. For servers, containers and `nohup`.
    #[arg(long, help_heading = "Display")]
    pub headless: bool,

    /// When the console stops (q, Ctrl-C, SIGTERM), write every closed bar it holds to this CSV file.
    ///
    /// One row per bar: symbol,interval,open_time,open,high,low,close,volume, prices at the symbol's
    /// precision, sorted. Compare it with `perpdesk sim --dump-bars REF --like FILE` to prove that no
    /// closed bar was lost or duplicated (see the README).
    #[arg(long, value_name = "FILE", help_heading = "Display")]
    pub export_bars: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// The console flags in effect: those given after `perpdesk config` win over those given before it.
    pub fn run_args(&self) -> RunArgs {
        match &self.command {
            Some(Command::Config(sub)) => sub.run.clone().or(&self.run),
            _ => self.run.clone(),
        }
    }
}

/// Flags accepted by every subcommand.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// Read settings from this TOML file.
    ///
    /// Without this flag perpdesk reads <config dir>/perpdesk/perpdesk.toml (~/.config/perpdesk/ on Linux)
    /// if it exists. A file given here must exist. Unknown keys and bad values are errors, never ignored.
    /// `perpdesk config` prints a complete file you can start from.
    #[arg(long, global = true, value_name = "PATH", help_heading = "Configuration")]
    pub config: Option<PathBuf>,

    /// Directory for the trade journal, logs and the feature store [env: PERPDESK_DATA_DIR].
    ///
    /// Default: the platform data directory (~/.local/share/perpdesk on Linux). Created if missing.
    #[arg(long, global = true, value_name = "PATH", help_heading = "Configuration")]
    pub data_dir: Option<PathBuf>,

    /// Directory the engine loads its models from [env: PERPDESK_MODELS_DIR] [default: models].
    ///
    /// `perpdesk train --out DIR` writes them; with no model there, `hybrid` runs the ICT rules only and
    /// the models panel (`M`) says how to train one.
    #[arg(long, global = true, value_name = "PATH", help_heading = "Configuration")]
    pub models_dir: Option<PathBuf>,

    /// How much to log: trace, debug, info, warn, error or off [default: info].
    ///
    /// Also accepts a filter such as `info,perpdesk::binance=debug` to raise one module only. Logs go to a
    /// file under the data directory (warnings also to stderr with --headless, whose stdout carries a status line). Secrets are never logged.
    #[arg(long, global = true, value_name = "LEVEL", help_heading = "Configuration")]
    pub log_level: Option<String>,
}

/// Flags that shape the trading console. Each one is also a setting (see `perpdesk config`).
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// Which Binance environment to connect to [env: PERPDESK_ENV] [default: mainnet].
    ///
    /// Not to be confused with --demo, which runs a simulated exchange and needs no network at all.
    #[arg(long = "env", value_enum, value_name = "ENV", help_heading = "Venue")]
    pub env: Option<VenueEnv>,

    /// Use this REST base URL instead of the one for --env (e.g. a proxy or a local simulator).
    ///
    /// Must be an http:// or https:// URL, e.g. https://fapi.binance.com.
    #[arg(long, value_name = "URL", help_heading = "Venue")]
    pub rest_url: Option<String>,

    /// Use this WebSocket base URL instead of the one for --env.
    ///
    /// Must be a ws:// or wss:// URL, e.g. wss://fstream.binance.com.
    #[arg(long, value_name = "URL", help_heading = "Venue")]
    pub ws_url: Option<String>,

    /// Offline demo: start the built-in simulated exchange on 127.0.0.1 and trade against it.
    ///
    /// The simulator speaks the Binance protocol, so the console runs exactly as it would against Binance,
    /// with synthetic prices for 260 symbols. No network, no API keys. Ignores --env, --rest-url, --ws-url.
    #[arg(long, help_heading = "Venue", conflicts_with_all = ["env", "rest_url", "ws_url"])]
    pub demo: bool,

    /// Strategy that generates signals [env: STRATEGY_MODE] [default: ict].
    ///
    /// You can also switch mode live from the console; open positions are kept.
    #[arg(long, value_enum, value_name = "MODE", help_heading = "Strategy")]
    pub mode: Option<StrategyMode>,

    /// How many USDT perpetuals to follow, the top N by 24h quote volume (1..=1000) [default: 200].
    #[arg(
        long,
        value_name = "N",
        help_heading = "Market data",
        allow_negative_numbers = true
    )]
    pub universe_size: Option<i64>,

    /// Bar intervals to follow, comma-separated, e.g. 5m,15m,1h [default: 5m,15m,1h].
    ///
    /// Any Binance kline interval: 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        help_heading = "Market data"
    )]
    pub timeframes: Option<Vec<String>>,

    /// Bars of history loaded per symbol and interval at start (1..=1500) [default: 500].
    #[arg(
        long,
        value_name = "N",
        help_heading = "Market data",
        allow_negative_numbers = true
    )]
    pub history_bars: Option<i64>,

    /// Colour theme: a name (default, and the files in themes/) or the path of a theme TOML file.
    #[arg(long, value_name = "NAME|PATH", help_heading = "Display")]
    pub theme: Option<String>,
}

impl RunArgs {
    /// Each flag of `self`, or else the one of `fallback`.
    #[must_use]
    pub fn or(self, fallback: &RunArgs) -> RunArgs {
        RunArgs {
            env: self.env.or(fallback.env),
            rest_url: self.rest_url.or_else(|| fallback.rest_url.clone()),
            ws_url: self.ws_url.or_else(|| fallback.ws_url.clone()),
            demo: self.demo || fallback.demo,
            mode: self.mode.or(fallback.mode),
            universe_size: self.universe_size.or(fallback.universe_size),
            timeframes: self.timeframes.or_else(|| fallback.timeframes.clone()),
            history_bars: self.history_bars.or(fallback.history_bars),
            theme: self.theme.or_else(|| fallback.theme.clone()),
        }
    }
}

/// What to run. Without a subcommand perpdesk opens the trading console.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the simulated exchange alone and print its REST and WebSocket URLs.
    ///
    /// The simulator is a Binance USDT-M compatible exchange on 127.0.0.1: REST market data and market
    /// streams. Point a console at it with `perpdesk --rest-url URL --ws-url URL`, or any other client.
    Sim(SimArgs),

    /// Print the effective configuration as TOML, with where each value came from. Secrets are redacted.
    ///
    /// Accepts the same flags as the console, to preview their effect:
    ///   perpdesk config --mode hybrid --timeframes 15m,1h
    /// The output is a valid perpdesk.toml. Exit code 2 if the configuration is invalid.
    Config(ConfigArgs),

    /// Open the console on an engine already running headless (`perpdesk --headless`).
    ///
    /// The headless engine listens on a Unix socket, `<data dir>/perpdesk.sock` (mode 0600). The
    /// attached console shows that engine's screens and sends it your key presses; `q` detaches and
    /// leaves the engine running. Several consoles may attach at once.
    Attach(AttachArgs),

    /// Every indicator and SMC output for a bar file, one CSV row per bar (research, and the reference check).
    ///
    /// Reads the golden inputs (idx,time,open_time_ms,open,high,low,close,volume), kline CSVs
    /// (open_time_ms,open,high,low,close,volume, with or without header) and Binance kline dumps. Writes the
    /// golden files' columns and encoding (%.12g, empty cell = no event): the input columns, the 29 indicator
    /// columns, then the SMC columns, each event family followed by <prefix>_KnownAt, the bar at whose close
    /// that row's record became known. Two parameter sets by default, as in the golden files: s5 (close
    /// break, wick mitigation, range 1 %) and s10 (wick break, close mitigation, range 0.5 %).
    ///
    /// Per-set flags take one value for every set, or one per --swing-length, comma-separated:
    ///   perpdesk analyze --input BTCUSDT_1m.csv --output out.csv --swing-length 5,10,20 --close-break true
    /// A summary line (rows, columns, elapsed, pip ranges) goes to stderr, with progress every 100 000 bars.
    /// Exit code 2 for a bad input file (the message names file and line) or bad parameters, 1 if the output
    /// cannot be written.
    Analyze(AnalyzeArgs),

    /// Read the trade journal (the SQLite file in the data directory).
    ///
    ///   perpdesk journal export --out DIR      trades, events and strategy changes of the paper journal
    ///   perpdesk journal export --out DIR --live
    Journal(JournalArgs),

    /// Train the signal predictor from kline history (the ICT candidates and what happened after them).
    ///
    ///   perpdesk train --data ../shared/data/klines
    /// Reads DIR (or each subdirectory of it) for SYMBOL_5m.csv, SYMBOL_1h.csv and optionally SYMBOL_15m.csv
    /// (else 15m bars are built from the 5m ones), replays them through the causal ICT strategy, labels every
    /// candidate with its outcome (target, stop or expiry, from the bars after it only), splits walk-forward
    /// with a purge gap, trains gradient-boosted trees and prints the validation metrics. Writes
    /// <OUT>/signal_predictor.onnx and <OUT>/signal_predictor.json (the model card).
    /// Exit code 2 for unreadable data or bad options, 1 if there is too little data or the model cannot be
    /// written.
    Train(TrainArgs),
}

/// Options of `perpdesk train`.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Directory of kline CSVs, or a directory of such directories.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// Where to write the models and their cards (created if missing) [default: the configured models
    /// directory, `paths.models_dir` / PERPDESK_MODELS_DIR / --models-dir, where the console loads them].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Share of candidates, the newest, held out for validation.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.3)]
    pub validation: f64,

    /// Label horizon in 5m bars: a candidate that reaches neither level by then is an expiry.
    #[arg(long, value_name = "BARS", default_value_t = crate::ml::train::DEFAULT_HORIZON_BARS)]
    pub horizon_bars: usize,

    /// Purge gap in hours between the last training label and the first validation decision.
    #[arg(long, value_name = "HOURS", default_value_t = 24)]
    pub purge_hours: u32,

    /// Operating threshold on P(target) [default: break-even at the minimum reward:risk, 1/3].
    #[arg(long, value_name = "P")]
    pub threshold: Option<f64>,

    /// Number of trees.
    #[arg(long, default_value_t = 100)]
    pub trees: usize,

    /// Maximum depth of each tree.
    #[arg(long, default_value_t = 3)]
    pub depth: usize,

    /// Learning rate (shrinkage of each tree).
    #[arg(long, default_value_t = 0.05)]
    pub learning_rate: f64,

    /// Only the newest N 5m bars of each symbol (quick runs).
    #[arg(long, value_name = "N")]
    pub max_bars: Option<usize>,

    /// Liquidity model: label horizon K in 5m bars (is the nearest pool swept within K bars?).
    #[arg(long, value_name = "BARS", default_value_t = crate::ml::liquidity::DEFAULT_HORIZON_BARS)]
    pub liquidity_horizon_bars: usize,
}

/// `perpdesk journal …`.
#[derive(Debug, Clone, Args)]
pub struct JournalArgs {
    #[command(subcommand)]
    pub command: JournalCommand,
}

/// What to do with the journal.
#[derive(Debug, Clone, Subcommand)]
pub enum JournalCommand {
    /// Write the journal's trades (one row per position), lifecycle events and strategy changes as CSV.
    ///
    /// Reads <data dir>/journal-paper.sqlite (or journal-live.sqlite with --live) without changing it, so it
    /// can run next to a running perpdesk. Writes <DIR>/trades.csv, <DIR>/events.csv and
    /// <DIR>/strategy_changes.csv; money keeps the journal's exact digits; times are given as epoch
    /// milliseconds and as RFC 3339 UTC.
    /// Exit code 2 if the journal does not exist or was written by another version, 1 if the CSV cannot be
    /// written.
    Export(JournalExportArgs),
}

/// Options of `perpdesk journal export`.
#[derive(Debug, Clone, Args)]
pub struct JournalExportArgs {
    /// Directory to write trades.csv, events.csv and strategy_changes.csv into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Export the live-trading journal instead of the paper-trading one.
    #[arg(long)]
    pub live: bool,

    /// Read this journal file instead of the one in the data directory.
    #[arg(long, value_name = "FILE", conflicts_with = "live")]
    pub journal: Option<PathBuf>,
}

/// Options of `perpdesk analyze`.
#[derive(Debug, Clone, Args)]
pub struct AnalyzeArgs {
    /// Bar file to analyse (CSV, oldest bar first).
    #[arg(long, value_name = "BARS.csv")]
    pub input: PathBuf,

    /// Where to write the CSV; standard output if omitted.
    #[arg(long, value_name = "OUT.csv")]
    pub output: Option<PathBuf>,

    /// Swing length of each parameter set; each set's columns are prefixed s<N> [default: 5,10].
    #[arg(long, value_name = "N,…", value_delimiter = ',',
          value_parser = clap::value_parser!(usize))]
    pub swing_length: Option<Vec<usize>>,

    /// BOS/CHoCH needs a close beyond the level (true) or a wick (false), per set [default: true,false].
    #[arg(long, value_name = "BOOL,…", value_delimiter = ',', action = clap::ArgAction::Set)]
    pub close_break: Option<Vec<bool>>,

    /// An order block is mitigated by a body (true) or a wick (false) beyond it, per set
    /// [default: false,true].
    #[arg(long, value_name = "BOOL,…", value_delimiter = ',', action = clap::ArgAction::Set)]
    pub close_mitigation: Option<Vec<bool>>,

    /// Equal-highs/lows tolerance as a fraction of the whole input's high−low range (0.01 = 1 %), per set,
    /// as the reference computes it. This looks ahead (it uses the whole file) [default: 0.01,0.005].
    #[arg(long, value_name = "FRACTION,…", value_delimiter = ',')]
    pub liquidity_range_percent: Option<Vec<f64>>,

    /// Equal-highs/lows tolerance as an absolute price distance, per set. Causal; overrides
    /// --liquidity-range-percent.
    #[arg(long, value_name = "PRICE,…", value_delimiter = ',')]
    pub liquidity_pip_range: Option<Vec<f64>>,

    /// Fair value gap columns: fvg_ (no), fvgj_ (yes, consecutive gaps joined) or both.
    #[arg(long, value_enum, value_name = "WHICH", default_value_t = FvgJoin::Both)]
    pub join_consecutive: FvgJoin,

    /// Periods for previous high/low columns (phl_<label>_): 1h 4h 1D (or 1d) W (or 1w) 1M…
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "4h,1D,W")]
    pub previous_timeframes: Vec<String>,

    /// Sessions for sess_<name>_ columns: Sydney, Tokyo, London, New York, Asian kill zone, London open kill
    /// zone, New York kill zone, London close kill zone, or a UTC window HH:MM-HH:MM.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "Sydney,London,New York,New York kill zone"
    )]
    pub sessions: Vec<String>,
}

/// Options of `perpdesk attach`.
#[derive(Debug, Clone, Args)]
pub struct AttachArgs {
    /// The engine's socket; default `<data dir>/perpdesk.sock`.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Colour theme: default, light, high-contrast, or a theme TOML file.
    #[arg(long, value_name = "NAME|PATH")]
    pub theme: Option<String>,
}

/// Options of `perpdesk sim`.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("sim_key_material").args(["api_secret", "api_public_key"])))]
pub struct SimArgs {
    /// TCP port on 127.0.0.1 for both REST and WebSocket; 0 picks a free port.
    #[arg(long, default_value_t = 0, value_name = "PORT")]
    pub port: u16,

    /// API key the simulator's signed endpoints accept (default: the documented test key
    /// `perpdesk-sim-key`). Give it together with --api-secret (HMAC) or --api-public-key (Ed25519).
    #[arg(
        long,
        value_name = "KEY",
        env = "PERPDESK_SIM_API_KEY",
        requires = "sim_key_material"
    )]
    pub api_key: Option<String>,

    /// API secret (HMAC) of --api-key (default: the documented test secret `perpdesk-sim-secret`).
    #[arg(
        long,
        value_name = "SECRET",
        env = "PERPDESK_SIM_API_SECRET",
        requires = "api_key",
        hide_env_values = true
    )]
    pub api_secret: Option<String>,

    /// Registers --api-key as an Ed25519 key: the PEM file of its public key (`openssl pkey -in
    /// key.pem -pubout`); signatures are then checked with it instead of an HMAC secret.
    #[arg(long, value_name = "PEM_FILE", requires = "api_key")]
    pub api_public_key: Option<PathBuf>,

    /// Number of synthetic USDT perpetuals to list (1..=10000).
    #[arg(long, default_value_t = 260, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub symbols: u32,

    /// Simulated seconds per real second: 1 is real time, 60 plays an hour a minute.
    #[arg(long, default_value_t = 1.0, value_name = "X", value_parser = parse_speed)]
    pub speed: f64,

    /// Seed of the synthetic market; the same seed gives the same prices.
    #[arg(long, default_value_t = 42, value_name = "N")]
    pub seed: u64,

    /// Replay recorded klines from DIR instead of the synthetic market.
    ///
    /// DIR holds CSV files named SYMBOL_INTERVAL.csv (e.g. BTCUSDT_1m.csv) with rows
    /// `open_time_ms,open,high,low,close,volume`, oldest first.
    #[arg(long, value_name = "DIR", conflicts_with = "calibrate")]
    pub replay: Option<PathBuf>,

    /// Print the calibration table (volatility, volume, correlation) derived from the kline CSVs in DIR, then
    /// exit. Same file format as --replay.
    #[arg(long, value_name = "DIR")]
    pub calibrate: Option<PathBuf>,

    /// Misbehave on purpose: a fault plan, as a file or inline text, e.g. `heavy` or `light,seed=7,dup=2%`.
    ///
    /// Presets: none, light, heavy. Keys (comma-separated key=value; later items win): seed, drop, reset,
    /// close, stall (every/length), cut, dup, reorder, late, malformed, delay (p/max), r429 and r418
    /// (p/Retry-After), r503, rdelay (p/max), skew, delist (SYMBOL@after[:STATUS] or #k@after), maint
    /// (start+length). Durations take a unit (250ms, 30s, 5m); probabilities are 5% or 0.05. The README
    /// lists what each one does. Same seed, same faults.
    #[arg(long, value_name = "PLAN", value_parser = parse_faults)]
    pub faults: Option<Box<FaultPlan>>,

    /// Write the reference bars for a console's bar export and exit: every bar, from the first to the last
    /// open time of each series in --like, as this simulator (same --seed, --symbols, --day) serves it.
    #[arg(long, value_name = "FILE", requires = "like", conflicts_with = "calibrate")]
    pub dump_bars: Option<PathBuf>,

    /// The console's bar export (`perpdesk --export-bars FILE`) whose series --dump-bars covers.
    #[arg(long, value_name = "EXPORT", requires = "dump_bars")]
    pub like: Option<PathBuf>,

    /// The UTC day (YYYY-MM-DD) the synthetic market was started on, for --dump-bars after midnight
    /// [default: today]. The synthetic market is a function of the seed and its start day.
    #[arg(long, value_name = "DAY", value_parser = parse_day)]
    pub day: Option<i64>,

    /// Start the synthetic market at this simulated instant (ms since the epoch) instead of following
    /// the wall clock from midnight UTC: the same instant gives the same market whatever the hour it
    /// is run at (the demo does this). With --dump-bars, the instant the simulator was started with.
    #[arg(long, value_name = "MS", conflicts_with_all = ["replay", "day"])]
    pub market_start_ms: Option<i64>,

    /// The wall-clock instant (ms since the epoch) at which the market is at --market-start-ms
    /// [default: now]. Simulators given the same pair serve one timeline.
    #[arg(long, value_name = "MS", requires = "market_start_ms")]
    pub market_anchor_ms: Option<i64>,
}

impl SimArgs {
    /// The synthetic market's clock: pinned by --market-start-ms, else the UTC day of --day, else today.
    pub fn synthetic_clock(&self) -> SimClock {
        match (self.market_start_ms, self.day) {
            (Some(start), _) => SimClock::new(
                self.market_anchor_ms.unwrap_or_else(crate::domain::now_ms),
                start,
                self.speed,
                None,
            ),
            (None, Some(day)) => SimClock::synthetic_on(day, self.speed),
            (None, None) => SimClock::synthetic(self.speed),
        }
    }
}

/// `--faults`: a plan file or inline plan text.
fn parse_faults(s: &str) -> Result<Box<FaultPlan>, String> {
    FaultPlan::load(s).map(Box::new).map_err(|e| e.to_string())
}

/// `--day YYYY-MM-DD`: the start of that UTC day, in ms since the epoch.
fn parse_day(s: &str) -> Result<i64, String> {
    let bad = || format!("expected a date as YYYY-MM-DD, found `{s}`");
    let mut parts = s.split('-');
    let (Some(y), Some(m), Some(d), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let (y, m, d): (i32, u8, u8) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    let month = time::Month::try_from(m).map_err(|_| bad())?;
    let date = time::Date::from_calendar_date(y, month, d).map_err(|_| bad())?;
    Ok(date.midnight().assume_utc().unix_timestamp() * 1000)
}

/// Options of `perpdesk config`: the console flags, to preview their effect.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub run: RunArgs,
}

/// `--speed`: a finite number greater than zero.
fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!(
            "expected a number greater than 0 (e.g. 1, 60, 0.5), found `{s}`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn console_flags_before_and_after_config_subcommand() {
        let cli = Cli::try_parse_from([
            "perpdesk",
            "--mode",
            "hybrid",
            "--universe-size",
            "50",
            "config",
            "--mode",
            "self_learning",
            "--timeframes",
            "15m,1h",
        ])
        .expect("parses");
        let run = cli.run_args();
        assert_eq!(run.mode, Some(StrategyMode::SelfLearning));
        assert_eq!(run.universe_size, Some(50));
        assert_eq!(run.timeframes, Some(vec!["15m".to_owned(), "1h".to_owned()]));
    }

    #[test]
    fn global_flags_after_sim() {
        let cli = Cli::try_parse_from(["perpdesk", "sim", "--config", "x.toml", "--log-level", "debug"])
            .expect("parses");
        assert_eq!(cli.global.config, Some(PathBuf::from("x.toml")));
        let Some(Command::Sim(sim)) = cli.command else {
            panic!("sim")
        };
        assert_eq!((sim.port, sim.symbols, sim.speed, sim.seed), (0, 260, 1.0, 42));
    }

    #[test]
    fn demo_conflicts_with_venue_flags() {
        assert!(Cli::try_parse_from(["perpdesk", "--demo", "--env", "testnet"]).is_err());
    }

    #[test]
    fn analyze_flags_parse_per_set_lists() {
        let cli = Cli::try_parse_from([
            "perpdesk",
            "analyze",
            "--input",
            "bars.csv",
            "--swing-length",
            "5,10,20",
            "--close-break",
            "false",
            "--liquidity-pip-range",
            "1.5,2,2.5",
            "--sessions",
            "London,07:00-10:00",
        ])
        .expect("parses");
        let Some(Command::Analyze(args)) = cli.command else {
            panic!("analyze")
        };
        assert_eq!(args.swing_length, Some(vec![5, 10, 20]));
        assert_eq!(args.close_break, Some(vec![false]));
        assert_eq!(args.close_mitigation, None);
        assert_eq!(args.liquidity_pip_range, Some(vec![1.5, 2.0, 2.5]));
        assert_eq!(args.join_consecutive, FvgJoin::Both);
        assert_eq!(args.previous_timeframes, ["4h", "1D", "W"]);
        assert_eq!(args.sessions, ["London", "07:00-10:00"]);
        assert_eq!(args.output, None);
    }

    #[test]
    fn sim_faults_and_bar_dumps_parse() {
        let cli = Cli::try_parse_from([
            "perpdesk",
            "sim",
            "--faults",
            "heavy,seed=3",
            "--day",
            "2026-12-01",
        ])
        .expect("parses");
        let Some(Command::Sim(sim)) = cli.command else {
            panic!("sim")
        };
        assert_eq!(sim.faults.map(|f| f.seed), Some(3));
        assert_eq!(sim.day, Some(1_796_083_200_000));
        let err =
            Cli::try_parse_from(["perpdesk", "sim", "--faults", "heavy,dup=often"]).expect_err("bad plan");
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("`dup=often`"), "{err}");
        assert!(
            Cli::try_parse_from(["perpdesk", "sim", "--dump-bars", "ref.csv"]).is_err(),
            "needs --like"
        );
        assert!(Cli::try_parse_from(["perpdesk", "sim", "--day", "2026-13-01"]).is_err());
        let cli =
            Cli::try_parse_from(["perpdesk", "--headless", "--export-bars", "bars.csv"]).expect("parses");
        assert_eq!(cli.export_bars, Some(PathBuf::from("bars.csv")));
    }

    #[test]
    fn bad_speed_is_rejected() {
        let err = Cli::try_parse_from(["perpdesk", "sim", "--speed", "0"]).expect_err("rejected");
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().contains("expected a number greater than 0"),
            "{err}"
        );
    }

    #[test]
    fn env_help_lists_every_variable() {
        for var in crate::config::ENV_VARS {
            assert!(
                ENV_HELP.contains(&format!("    {var} ")),
                "{var} missing from ENV_HELP"
            );
        }
    }
}
