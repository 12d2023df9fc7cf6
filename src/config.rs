//! Layered configuration: defaults < `perpdesk.toml` < environment variables < command-line flags.
//!
//! Why a module of its own: a trading process must not start on a setting it misunderstood. Every layer is
//! checked against one registry of settings ([`SETTINGS`]: key, environment variable, accepted values), so an
//! unknown key, a value out of range or a malformed variable is an error that names the key, the value, where
//! it came from (file line and column, variable, flag) and what would be accepted, never a panic and never a
//! silent default. The same registry records where each value came from, which `perpdesk config` prints.
//!
//! Design decisions:
//! * Layers are merged as TOML values, then deserialised once into [`Config`] (serde, `deny_unknown_fields`
//!   on every table). Checking happens per layer, before the merge, because only there is the origin known.
//! * Paper trading is the default, and in paper mode the Binance key and secret are not even read: a bug
//!   elsewhere cannot sign a request with credentials that were never loaded.
//! * Secrets are held in [`Secret`], whose `Debug`/`Display` print `<redacted>` and which has no
//!   `Serialize`; [`Config`] serialises secret fields as the placeholder. A config file that contains secrets
//!   must not be readable by other users (mode `0600`), or loading fails.
//! * The environment is read through a function argument, so tests never touch the process environment.

use std::{
    collections::BTreeMap,
    fmt, fs,
    ops::Range,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{cli::Cli, domain::Interval};

/// What a redacted secret looks like in every output.
pub const REDACTED: &str = "<redacted>";

// ---------------------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------------------

/// A credential (API key or secret, Discord token or webhook URL). `Debug` and `Display` print
/// `<redacted>`; there is no `Serialize`. Read the value with [`Secret::expose`], only where it is used.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Call it only at the point of use (signing a request, posting to Discord).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[allow(clippy::ref_option)] // serde's `serialize_with` hands us `&Option<T>`.
fn serialize_redacted<S: Serializer>(secret: &Option<Secret>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => s.serialize_str(REDACTED),
        None => s.serialize_none(),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Enumerated settings
// ---------------------------------------------------------------------------------------------------------

/// Binance environment the console connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum VenueEnv {
    /// The real exchange (fapi.binance.com): real money, real market data.
    #[default]
    Mainnet,
    /// Binance's futures testnet (testnet.binancefuture.com): play money, thin and odd markets.
    Testnet,
    /// Binance's demo trading (demo-fapi.binance.com): play money.
    Demo,
}

impl VenueEnv {
    pub const NAMES: &'static [&'static str] = &["mainnet", "testnet", "demo"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mainnet => "mainnet",
            Self::Testnet => "testnet",
            Self::Demo => "demo",
        }
    }

    /// REST base URL (`../shared/fixtures/binance/PROTOCOL.md` §1).
    pub fn default_rest_url(self) -> &'static str {
        match self {
            Self::Mainnet => "https://fapi.binance.com",
            Self::Testnet => "https://testnet.binancefuture.com",
            Self::Demo => "https://demo-fapi.binance.com",
        }
    }

    /// WebSocket market-stream base URL (`PROTOCOL.md` §1).
    pub fn default_ws_url(self) -> &'static str {
        match self {
            Self::Mainnet => "wss://fstream.binance.com",
            Self::Testnet | Self::Demo => "wss://fstream.binancefuture.com",
        }
    }
}

/// Which strategy generates signals: the engine's own [`crate::strategy::Mode`], so a configured mode
/// and a mode switched from the keyboard are the same type.
pub use crate::strategy::Mode as StrategyMode;

/// How the self-learning models are updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelfLearningMode {
    /// Update incrementally as each trade closes.
    Online,
    /// Retrain on the strategy-evolution interval (champion/challenger).
    #[default]
    Batch,
    /// Inference only; models never change while running.
    Frozen,
}

impl SelfLearningMode {
    pub const NAMES: &'static [&'static str] = &["online", "batch", "frozen"];
}

// ---------------------------------------------------------------------------------------------------------
// The configuration
// ---------------------------------------------------------------------------------------------------------

/// The effective configuration. Build it with [`load`]; `Config::default()` is the built-in defaults.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Run against the built-in simulated exchange (no network, no keys).
    pub demo: bool,
    /// Send real orders. Paper trading when false.
    pub trading_enabled: bool,
    pub strategy_mode: StrategyMode,
    pub venue: VenueConfig,
    pub universe: UniverseConfig,
    pub engine: EngineConfig,
    pub ui: UiConfig,
    pub paths: PathsConfig,
    pub logging: LoggingConfig,
    pub ml: MlConfig,
    pub features: FeaturesConfig,
    pub monitoring: MonitoringConfig,
    pub positions: PositionsConfig,
    pub notify: NotifyConfig,
    pub secrets: SecretsConfig,
}

impl Config {
    /// REST base URL in effect: the override, else the one of `venue.env`. (With `demo`, the app uses the
    /// in-process simulator's URL instead.)
    pub fn rest_url(&self) -> &str {
        self.venue
            .rest_url
            .as_deref()
            .unwrap_or(self.venue.env.default_rest_url())
    }

    /// WebSocket base URL in effect: the override, else the one of `venue.env`.
    pub fn ws_url(&self) -> &str {
        self.venue
            .ws_url
            .as_deref()
            .unwrap_or(self.venue.env.default_ws_url())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VenueConfig {
    pub env: VenueEnv,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rest_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UniverseConfig {
    /// Top N USDT perpetuals by 24h quote volume.
    pub size: usize,
    pub refresh_secs: u64,
    #[serde(
        serialize_with = "serialize_intervals",
        deserialize_with = "deserialize_intervals"
    )]
    pub timeframes: Vec<Interval>,
    pub history_bars: usize,
    pub ring_capacity: usize,
    pub streams_per_connection: usize,
}

impl Default for UniverseConfig {
    fn default() -> Self {
        Self {
            size: 200,
            refresh_secs: 3600,
            timeframes: vec![Interval::M5, Interval::M15, Interval::H1],
            history_bars: 500,
            ring_capacity: 1000,
            streams_per_connection: 200,
        }
    }
}

impl UniverseConfig {
    pub fn refresh(&self) -> Duration {
        Duration::from_secs(self.refresh_secs)
    }
}

fn serialize_intervals<S: Serializer>(intervals: &[Interval], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(intervals.iter().map(|i| i.as_str()))
}

fn deserialize_intervals<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Interval>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| s.parse::<Interval>().map_err(serde::de::Error::custom))
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    pub trading_cycle_secs: u64,
    pub virtual_cycle_secs: u64,
    /// Most view updates per second sent to the UI.
    pub view_fps: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            trading_cycle_secs: 60,
            virtual_cycle_secs: 10,
            view_fps: 30,
        }
    }
}

impl EngineConfig {
    pub fn trading_cycle(&self) -> Duration {
        Duration::from_secs(self.trading_cycle_secs)
    }

    pub fn virtual_cycle(&self) -> Duration {
        Duration::from_secs(self.virtual_cycle_secs)
    }

    /// Shortest time between two view updates.
    pub fn frame_interval(&self) -> Duration {
        Duration::from_secs(1) / self.view_fps.max(1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiConfig {
    /// Theme name or path of a theme TOML file.
    pub theme: String,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            theme: "default".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PathsConfig {
    /// Journal, logs, feature store. [`load`] fills in the platform data directory when unset.
    pub data_dir: PathBuf,
    /// Where the engine loads its models from (what `perpdesk train` writes): `models` in the working
    /// directory unless set.
    pub models_dir: PathBuf,
}

impl Default for PathsConfig {
    fn default() -> Self {
        Self {
            data_dir: dirs::data_dir().map_or_else(|| PathBuf::from("perpdesk-data"), |d| d.join("perpdesk")),
            models_dir: PathBuf::from(crate::ml::predictor::MODELS_DIR),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// A level (`info`) or a filter (`info,perpdesk::binance=debug`), checked by [`load`].
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlConfig {
    pub enable_self_learning: bool,
    pub self_learning_mode: SelfLearningMode,
    pub enable_quantization: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantized_model_path: Option<PathBuf>,
    /// ONNX Runtime library (`libonnxruntime.so.<version>`) to run ONNX models in; unset: tract.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onnxruntime_library: Option<PathBuf>,
    pub enable_batch_prediction: bool,
    pub batch_prediction_size: usize,
    pub batch_max_delay_ms: u64,
    pub structure_vector_dim: usize,
    pub feature_discovery_rate: f64,
    pub strategy_evolution_interval_secs: u64,
}

impl Default for MlConfig {
    fn default() -> Self {
        Self {
            enable_self_learning: true,
            self_learning_mode: SelfLearningMode::default(),
            enable_quantization: false,
            quantized_model_path: None,
            onnxruntime_library: None,
            enable_batch_prediction: true,
            batch_prediction_size: 32,
            batch_max_delay_ms: 100,
            structure_vector_dim: 16,
            feature_discovery_rate: 0.1,
            strategy_evolution_interval_secs: 3600,
        }
    }
}

impl MlConfig {
    pub fn batch_max_delay(&self) -> Duration {
        Duration::from_millis(self.batch_max_delay_ms)
    }

    pub fn strategy_evolution_interval(&self) -> Duration {
        Duration::from_secs(self.strategy_evolution_interval_secs)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeaturesConfig {
    pub enable_incremental_cache: bool,
    pub enable_memory_mapped_storage: bool,
    pub max_memory_mapped_positions: usize,
    pub feature_dimension: usize,
}

impl Default for FeaturesConfig {
    fn default() -> Self {
        Self {
            enable_incremental_cache: true,
            enable_memory_mapped_storage: true,
            max_memory_mapped_positions: 1000,
            feature_dimension: 32,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitoringConfig {
    pub enable_smart_monitoring: bool,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        Self {
            enable_smart_monitoring: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PositionsConfig {
    pub max_positions: usize,
    /// Share of equity lost when a position's stop fills.
    pub risk_fraction: f64,
    /// Starting equity of the paper account, USDT.
    pub paper_equity: f64,
    /// Fee rates as fractions of notional (Binance USDT-M defaults).
    pub maker_fee: f64,
    pub taker_fee: f64,
    /// A position still open this long after it opened (market time) is closed as expired.
    pub ttl_secs: u64,
    /// Trailing stop distance in multiples of the position's initial stop distance (its R); 0 keeps
    /// the stop where it was placed.
    pub trailing_stop_r: f64,
}

impl Default for PositionsConfig {
    fn default() -> Self {
        Self {
            max_positions: 999,
            risk_fraction: 0.01,
            paper_equity: 10_000.0,
            maker_fee: 0.0002,
            taker_fee: 0.0005,
            ttl_secs: 4 * 3600,
            trailing_stop_r: 0.0,
        }
    }
}

impl PositionsConfig {
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_secs)
    }
}

/// Discord notifications. The credentials (webhook URL, or bot token and channel) are in [`SecretsConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// Base URL of Discord's HTTP API, used with a bot token (`POST {base}/channels/{id}/messages`).
    /// Only tests and proxies change it.
    pub discord_api_url: String,
}

/// Discord's HTTP API, version 10.
pub const DISCORD_API_URL: &str = "https://discord.com/api/v10";

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            discord_api_url: DISCORD_API_URL.to_owned(),
        }
    }
}

/// Credentials. The Binance pair is loaded only when `trading_enabled` is true.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {
    #[serde(
        serialize_with = "serialize_redacted",
        skip_serializing_if = "Option::is_none"
    )]
    pub binance_api_key: Option<Secret>,
    #[serde(
        serialize_with = "serialize_redacted",
        skip_serializing_if = "Option::is_none"
    )]
    pub binance_api_secret: Option<Secret>,
    #[serde(
        serialize_with = "serialize_redacted",
        skip_serializing_if = "Option::is_none"
    )]
    pub discord_token: Option<Secret>,
    #[serde(
        serialize_with = "serialize_redacted",
        skip_serializing_if = "Option::is_none"
    )]
    pub discord_channel_id: Option<Secret>,
    #[serde(
        serialize_with = "serialize_redacted",
        skip_serializing_if = "Option::is_none"
    )]
    pub discord_webhook_url: Option<Secret>,
}

// ---------------------------------------------------------------------------------------------------------
// The registry of settings
// ---------------------------------------------------------------------------------------------------------

/// What values a setting accepts.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Bool,
    Int { min: i64, max: i64, unit: &'static str },
    Float { min: f64, max: f64 },
    OneOf(&'static [&'static str]),
    Timeframes,
    Url { schemes: &'static [&'static str] },
    Path,
    Text,
    LogFilter,
    Secret(SecretKind),
}

/// Extra checks on a secret's shape (the value itself is never printed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    Opaque,
    DiscordChannelId,
    HttpsUrl,
}

/// One setting: its dotted key in `perpdesk.toml`, its environment variable, what it accepts.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub key: &'static str,
    pub env: Option<&'static str>,
    pub kind: Kind,
}

const fn setting(key: &'static str, env: Option<&'static str>, kind: Kind) -> Setting {
    Setting { key, env, kind }
}

const fn int(min: i64, max: i64) -> Kind {
    Kind::Int { min, max, unit: "" }
}

const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

/// Every setting, in the order `perpdesk config` prints them. Tables follow their first key.
pub const SETTINGS: &[Setting] = &[
    setting("demo", None, Kind::Bool),
    setting("trading_enabled", Some("TRADING_ENABLED"), Kind::Bool),
    setting(
        "strategy_mode",
        Some("STRATEGY_MODE"),
        Kind::OneOf(StrategyMode::NAMES),
    ),
    setting("venue.env", Some("PERPDESK_ENV"), Kind::OneOf(VenueEnv::NAMES)),
    setting(
        "venue.rest_url",
        None,
        Kind::Url {
            schemes: &["https", "http"],
        },
    ),
    setting(
        "venue.ws_url",
        None,
        Kind::Url {
            schemes: &["wss", "ws"],
        },
    ),
    setting("universe.size", None, int(1, 1000)),
    setting(
        "universe.refresh_secs",
        None,
        Kind::Int {
            min: 60,
            max: 86_400,
            unit: "seconds",
        },
    ),
    setting("universe.timeframes", None, Kind::Timeframes),
    // Binance serves at most 1500 klines per request.
    setting("universe.history_bars", None, int(1, 1500)),
    setting("universe.ring_capacity", None, int(10, 1_000_000)),
    // Binance allows 1024 streams per connection.
    setting("universe.streams_per_connection", None, int(1, 1024)),
    setting(
        "engine.trading_cycle_secs",
        None,
        Kind::Int {
            min: 1,
            max: 86_400,
            unit: "seconds",
        },
    ),
    setting(
        "engine.virtual_cycle_secs",
        None,
        Kind::Int {
            min: 1,
            max: 3600,
            unit: "seconds",
        },
    ),
    setting("engine.view_fps", None, int(1, 120)),
    setting("ui.theme", None, Kind::Text),
    setting("paths.data_dir", Some("PERPDESK_DATA_DIR"), Kind::Path),
    setting("paths.models_dir", Some("PERPDESK_MODELS_DIR"), Kind::Path),
    setting("logging.level", None, Kind::LogFilter),
    setting(
        "ml.enable_self_learning",
        Some("ENABLE_SELF_LEARNING"),
        Kind::Bool,
    ),
    setting(
        "ml.self_learning_mode",
        Some("SELF_LEARNING_MODE"),
        Kind::OneOf(SelfLearningMode::NAMES),
    ),
    setting("ml.enable_quantization", Some("ENABLE_QUANTIZATION"), Kind::Bool),
    setting(
        "ml.quantized_model_path",
        Some("QUANTIZED_MODEL_PATH"),
        Kind::Path,
    ),
    // The variable `ort` itself reads, so one setting serves perpdesk and any other ort program.
    setting("ml.onnxruntime_library", Some("ORT_DYLIB_PATH"), Kind::Path),
    setting(
        "ml.enable_batch_prediction",
        Some("ENABLE_BATCH_PREDICTION"),
        Kind::Bool,
    ),
    setting(
        "ml.batch_prediction_size",
        Some("BATCH_PREDICTION_SIZE"),
        int(1, 4096),
    ),
    setting(
        "ml.batch_max_delay_ms",
        Some("BATCH_MAX_DELAY"),
        Kind::Int {
            min: 1,
            max: 60_000,
            unit: "milliseconds",
        },
    ),
    // The engine keeps each symbol's code in a fixed 16-value array and the strategy evolver's
    // pre-trained network reads 16 code values, so any other width is refused rather than ignored.
    setting(
        "ml.structure_vector_dim",
        Some("STRUCTURE_VECTOR_DIM"),
        Kind::Int {
            min: 16,
            max: 16,
            unit: "the code width the structure model and the strategy evolver are built for",
        },
    ),
    setting(
        "ml.feature_discovery_rate",
        Some("FEATURE_DISCOVERY_RATE"),
        Kind::Float { min: 0.0, max: 1.0 },
    ),
    setting(
        "ml.strategy_evolution_interval_secs",
        Some("STRATEGY_EVOLUTION_INTERVAL"),
        Kind::Int {
            min: 60,
            max: 604_800,
            unit: "seconds",
        },
    ),
    setting(
        "features.enable_incremental_cache",
        Some("ENABLE_INCREMENTAL_CACHE"),
        Kind::Bool,
    ),
    setting(
        "features.enable_memory_mapped_storage",
        Some("ENABLE_MEMORY_MAPPED_STORAGE"),
        Kind::Bool,
    ),
    setting(
        "features.max_memory_mapped_positions",
        Some("MAX_MEMORY_MAPPED_POSITIONS"),
        int(1, 1_000_000),
    ),
    setting(
        "features.feature_dimension",
        Some("FEATURE_DIMENSION"),
        int(1, 1024),
    ),
    setting(
        "monitoring.enable_smart_monitoring",
        Some("ENABLE_SMART_MONITORING"),
        Kind::Bool,
    ),
    setting("positions.max_positions", Some("MAX_POSITIONS"), int(1, 100_000)),
    setting(
        "positions.risk_fraction",
        None,
        Kind::Float {
            min: 0.0001,
            max: 0.1,
        },
    ),
    setting(
        "positions.paper_equity",
        None,
        Kind::Float { min: 1.0, max: 1e12 },
    ),
    setting("positions.maker_fee", None, Kind::Float { min: 0.0, max: 0.01 }),
    setting("positions.taker_fee", None, Kind::Float { min: 0.0, max: 0.01 }),
    setting(
        "positions.ttl_secs",
        None,
        Kind::Int {
            min: 60,
            max: 2_592_000,
            unit: "seconds",
        },
    ),
    setting(
        "positions.trailing_stop_r",
        None,
        Kind::Float { min: 0.0, max: 10.0 },
    ),
    setting(
        "notify.discord_api_url",
        None,
        Kind::Url {
            schemes: &["https", "http"],
        },
    ),
    setting(
        "secrets.binance_api_key",
        Some(ENV_API_KEY),
        Kind::Secret(SecretKind::Opaque),
    ),
    setting(
        "secrets.binance_api_secret",
        Some(ENV_API_SECRET),
        Kind::Secret(SecretKind::Opaque),
    ),
    setting(
        "secrets.discord_token",
        Some("DISCORD_TOKEN"),
        Kind::Secret(SecretKind::Opaque),
    ),
    setting(
        "secrets.discord_channel_id",
        Some("DISCORD_CHANNEL_ID"),
        Kind::Secret(SecretKind::DiscordChannelId),
    ),
    setting(
        "secrets.discord_webhook_url",
        Some("DISCORD_WEBHOOK_URL"),
        Kind::Secret(SecretKind::HttpsUrl),
    ),
];

const ENV_API_KEY: &str = "BINANCE_API_KEY";
const ENV_API_SECRET: &str = "BINANCE_API_SECRET";

/// Every environment variable the loader reads.
pub const ENV_VARS: &[&str] = &[
    "TRADING_ENABLED",
    "STRATEGY_MODE",
    "PERPDESK_ENV",
    "PERPDESK_DATA_DIR",
    "PERPDESK_MODELS_DIR",
    "ENABLE_SELF_LEARNING",
    "SELF_LEARNING_MODE",
    "ENABLE_QUANTIZATION",
    "QUANTIZED_MODEL_PATH",
    "ORT_DYLIB_PATH",
    "ENABLE_BATCH_PREDICTION",
    "BATCH_PREDICTION_SIZE",
    "BATCH_MAX_DELAY",
    "STRUCTURE_VECTOR_DIM",
    "FEATURE_DISCOVERY_RATE",
    "STRATEGY_EVOLUTION_INTERVAL",
    "ENABLE_INCREMENTAL_CACHE",
    "ENABLE_MEMORY_MAPPED_STORAGE",
    "MAX_MEMORY_MAPPED_POSITIONS",
    "FEATURE_DIMENSION",
    "ENABLE_SMART_MONITORING",
    "MAX_POSITIONS",
    "BINANCE_API_KEY",
    "BINANCE_API_SECRET",
    "DISCORD_TOKEN",
    "DISCORD_CHANNEL_ID",
    "DISCORD_WEBHOOK_URL",
];

fn find_setting(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

/// `("universe", "size")` for `universe.size`; `("", "demo")` for a top-level key.
fn split_key(key: &str) -> (&str, &str) {
    key.split_once('.').unwrap_or(("", key))
}

/// Table names in registry order.
fn table_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for s in SETTINGS {
        if let Some((table, _)) = s.key.split_once('.')
            && !names.contains(&table)
        {
            names.push(table);
        }
    }
    names
}

/// Keys accepted in `table` (`""` = top level: its scalar keys, then the table names).
fn accepted_keys(table: &str) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = SETTINGS
        .iter()
        .map(|s| split_key(s.key))
        .filter(|(t, _)| *t == table)
        .map(|(_, k)| k)
        .collect();
    if table.is_empty() {
        keys.extend(table_names());
    }
    keys
}

/// A likely intended key for an unknown `key` in `table`: a near miss in the same table, the same key in
/// another table (`size` at the top level), a `table_key` spelling (`universe_size`), or the environment
/// variable name of a setting (`BATCH_PREDICTION_SIZE`).
fn suggest(table: &str, key: &str) -> Option<String> {
    let in_table = |s: &Setting| match split_key(s.key) {
        ("", k) => format!("`{k}` at the top level"),
        (t, k) => format!("`{k}` in [{t}]"),
    };
    if let Some(near) = accepted_keys(table)
        .into_iter()
        .find(|k| edit_distance(k, key) <= 2)
    {
        return Some(format!("`{near}`"));
    }
    let lower = key.to_ascii_lowercase();
    SETTINGS
        .iter()
        .find(|s| {
            let (t, k) = split_key(s.key);
            k == lower
                || s.env.is_some_and(|var| var.eq_ignore_ascii_case(key))
                || (!t.is_empty()
                    && lower.strip_prefix(t).and_then(|r| r.strip_prefix(['_', '-'])) == Some(k))
        })
        .map(in_table)
}

/// Levenshtein distance, for "did you mean" hints on short key names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

// ---------------------------------------------------------------------------------------------------------
// Checking values
// ---------------------------------------------------------------------------------------------------------

/// How a value is shown in an error: its TOML form, or nothing for a secret.
fn show(value: &toml::Value) -> String {
    value.to_string()
}

impl Kind {
    /// Turn an environment variable (or flag text) into a TOML value of this kind.
    fn parse_text(self, raw: &str) -> Result<toml::Value, String> {
        let quoted = show(&toml::Value::String(raw.to_owned()));
        match self {
            Kind::Bool => match raw.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(toml::Value::Boolean(true)),
                "false" | "0" => Ok(toml::Value::Boolean(false)),
                _ => Err(format!("expected true or false, found {quoted}")),
            },
            Kind::Int { .. } => raw
                .parse::<i64>()
                .map(toml::Value::Integer)
                .map_err(|_| format!("expected {}, found {quoted}", self.expected())),
            Kind::Float { .. } => match raw.parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(toml::Value::Float(x)),
                _ => Err(format!("expected {}, found {quoted}", self.expected())),
            },
            Kind::Timeframes => Ok(toml::Value::Array(
                raw.split(',')
                    .map(|s| toml::Value::String(s.trim().to_owned()))
                    .collect(),
            )),
            Kind::OneOf(_)
            | Kind::Url { .. }
            | Kind::Path
            | Kind::Text
            | Kind::LogFilter
            | Kind::Secret(_) => Ok(toml::Value::String(raw.to_owned())),
        }
    }

    /// What this kind accepts, for "expected …" messages.
    fn expected(self) -> String {
        match self {
            Kind::Bool => "true or false".to_owned(),
            Kind::Int { min, unit, .. } => {
                let what = if min >= 1 {
                    "a positive integer"
                } else {
                    "an integer"
                };
                if unit.is_empty() {
                    what.to_owned()
                } else {
                    format!("{what} ({unit})")
                }
            }
            Kind::Float { min, max } => format!("a number from {min} to {max}"),
            Kind::OneOf(names) => format!("one of {}", names.join(", ")),
            Kind::Timeframes => "a list of Binance intervals such as [\"5m\", \"15m\", \"1h\"]".to_owned(),
            Kind::Url { schemes } => format!("a {}:// URL", schemes.join(":// or ")),
            Kind::Path => "a path".to_owned(),
            Kind::Text | Kind::Secret(SecretKind::Opaque) => "a string".to_owned(),
            Kind::LogFilter => format!(
                "a log level ({}) or a filter such as \"info,perpdesk::binance=debug\"",
                LOG_LEVELS.join(", ")
            ),
            Kind::Secret(SecretKind::DiscordChannelId) => "a numeric Discord channel id".to_owned(),
            Kind::Secret(SecretKind::HttpsUrl) => "an https:// URL".to_owned(),
        }
    }

    /// Check a value; on success return it normalised (integers become floats for float settings).
    fn check(self, value: &toml::Value) -> Result<toml::Value, String> {
        let wrong_type = || {
            if matches!(self, Kind::Secret(_)) {
                format!("expected {} (value not shown: it is a secret)", self.expected())
            } else {
                format!("expected {}, found {}", self.expected(), show(value))
            }
        };
        match self {
            Kind::Bool => value.as_bool().map(|_| value.clone()).ok_or_else(wrong_type),
            Kind::Int { min, max, unit } => {
                let n = value.as_integer().ok_or_else(wrong_type)?;
                if (min..=max).contains(&n) {
                    Ok(value.clone())
                } else if min == max {
                    Err(format!("{n} is not supported: must be {min} ({unit})"))
                } else {
                    Err(format!("{n} is out of range: must be {min}..={max}"))
                }
            }
            Kind::Float { min, max } => {
                #[allow(clippy::cast_precision_loss)]
                let x = match value {
                    toml::Value::Float(x) => *x,
                    toml::Value::Integer(n) => *n as f64,
                    _ => return Err(wrong_type()),
                };
                if x.is_finite() && (min..=max).contains(&x) {
                    Ok(toml::Value::Float(x))
                } else {
                    Err(format!(
                        "{} is out of range: must be from {min} to {max}",
                        show(value)
                    ))
                }
            }
            Kind::OneOf(names) => match value.as_str() {
                Some(s) if names.contains(&s) => Ok(value.clone()),
                _ => Err(wrong_type()),
            },
            Kind::Timeframes => check_timeframes(value)
                .map(|()| value.clone())
                .map_err(|e| e.unwrap_or_else(wrong_type)),
            Kind::Url { schemes } => {
                let s = value.as_str().ok_or_else(wrong_type)?;
                check_url(s, schemes).map(|()| value.clone())
            }
            Kind::Path | Kind::Text => match value.as_str() {
                Some("") => Err("must not be empty".to_owned()),
                Some(_) => Ok(value.clone()),
                None => Err(wrong_type()),
            },
            Kind::LogFilter => {
                let s = value.as_str().ok_or_else(wrong_type)?;
                if is_log_filter(s) {
                    Ok(value.clone())
                } else {
                    Err(format!(
                        "{} is not valid: expected {}",
                        show(value),
                        self.expected()
                    ))
                }
            }
            Kind::Secret(kind) => {
                let s = value.as_str().ok_or_else(wrong_type)?;
                let ok = match kind {
                    _ if s.is_empty() => return Err("must not be empty".to_owned()),
                    _ if s == REDACTED => {
                        return Err(format!(
                            "\"{REDACTED}\" is the placeholder printed by `perpdesk config`, not a real value"
                        ));
                    }
                    SecretKind::Opaque => true,
                    SecretKind::DiscordChannelId => s.bytes().all(|b| b.is_ascii_digit()),
                    SecretKind::HttpsUrl => {
                        reqwest::Url::parse(s).is_ok_and(|u| u.scheme() == "https" && u.has_host())
                    }
                };
                if ok { Ok(value.clone()) } else { Err(wrong_type()) }
            }
        }
    }
}

/// `Err(None)` means "wrong type" (the caller words it); `Err(Some(msg))` a specific problem.
fn check_timeframes(value: &toml::Value) -> Result<(), Option<String>> {
    let items = value.as_array().ok_or(None)?;
    if items.is_empty() {
        return Err(Some("must list at least one interval".to_owned()));
    }
    let mut seen = Vec::with_capacity(items.len());
    for item in items {
        let s = item.as_str().ok_or(None)?;
        let interval = s.parse::<Interval>().map_err(|_| {
            let names: Vec<&str> = Interval::ALL.iter().map(|i| i.as_str()).collect();
            Some(format!(
                "{} is not a Binance interval: expected one of {}",
                show(item),
                names.join(", ")
            ))
        })?;
        if seen.contains(&interval) {
            return Err(Some(format!("{} is listed twice", show(item))));
        }
        seen.push(interval);
    }
    Ok(())
}

fn check_url(s: &str, schemes: &[&str]) -> Result<(), String> {
    let quoted = show(&toml::Value::String(s.to_owned()));
    let url = reqwest::Url::parse(s).map_err(|e| format!("{quoted} is not a valid URL: {e}"))?;
    if !schemes.contains(&url.scheme()) {
        return Err(format!("{quoted} must start with {}://", schemes.join(":// or ")));
    }
    if !url.has_host() || url.host_str() == Some("") {
        return Err(format!("{quoted} has no host"));
    }
    Ok(())
}

fn is_log_filter(s: &str) -> bool {
    let is_level = |l: &str| LOG_LEVELS.contains(&l.to_ascii_lowercase().as_str());
    !s.trim().is_empty()
        && s.split(',').all(|part| match part.trim().split_once('=') {
            None => is_level(part.trim()),
            Some((target, level)) => {
                !target.is_empty()
                    && target
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                    && is_level(level)
            }
        })
}

// ---------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------

/// A configuration problem. `Display` is the message the trader sees; it never contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {} not found (given with --config)", path.display())]
    FileNotFound { path: PathBuf },

    #[error("cannot read config file {}: {source}", path.display())]
    FileUnreadable { path: PathBuf, source: std::io::Error },

    #[error("{}:{line}:{column}: TOML syntax error: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    #[error(
        "{}:{line}:{column}: unknown key `{key}` {}{}; accepted keys: {}",
        path.display(),
        if table.is_empty() { "at the top level".to_owned() } else { format!("in [{table}]") },
        hint.as_ref().map_or_else(String::new, |h| format!(" (did you mean {h}?)")),
        accepted_keys(table).join(", ")
    )]
    UnknownKey {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        /// The table it was found in; `""` is the top level.
        table: &'static str,
        hint: Option<String>,
    },

    #[error("{}:{line}:{column}: invalid value for {key}: {problem}", path.display())]
    InvalidFileValue {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        problem: String,
    },

    #[error("invalid environment variable {var}: {problem}")]
    InvalidEnvVar { var: &'static str, problem: String },

    #[error("invalid value for {flag}: {problem}")]
    InvalidFlag { flag: &'static str, problem: String },

    #[error(
        "{} contains secrets but other users can read it (mode {mode:04o}): run `chmod 600 {}` or move the \
         secrets to environment variables",
        path.display(),
        path.display()
    )]
    InsecureFile { path: PathBuf, mode: u32 },

    #[error(
        "trading_enabled is true ({origin}) but {missing} not set: set BINANCE_API_KEY and BINANCE_API_SECRET, \
         or use --demo, or set TRADING_ENABLED=false to trade on paper"
    )]
    TradingWithoutCredentials { origin: String, missing: &'static str },

    #[error("{0}")]
    Inconsistent(String),

    #[error("no platform data directory (is HOME set?): give one with --data-dir or PERPDESK_DATA_DIR")]
    NoDataDir,

    #[error("internal error while building the configuration: {0}")]
    Internal(String),
}

impl ConfigError {
    /// Process exit code for any configuration error (the same code clap uses for usage errors).
    pub const EXIT_CODE: u8 = 2;
}

// ---------------------------------------------------------------------------------------------------------
// Origins
// ---------------------------------------------------------------------------------------------------------

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File {
        line: usize,
    },
    Env(&'static str),
    Flag(&'static str),
    /// Deliberately not read (the Binance credentials in paper mode).
    NotLoaded,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File { line } => write!(f, "file, line {line}"),
            Origin::Env(var) => write!(f, "env {var}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
            Origin::NotLoaded => f.write_str("not loaded"),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------------------

/// Platform directories, injectable for tests.
#[derive(Debug, Clone, Default)]
pub struct PlatformDirs {
    /// `<config dir>/perpdesk/perpdesk.toml`, read if it exists and `--config` is not given.
    pub config_file: Option<PathBuf>,
    /// `<data dir>/perpdesk`, the default `paths.data_dir`.
    pub data_dir: Option<PathBuf>,
}

impl PlatformDirs {
    pub fn detect() -> Self {
        Self {
            config_file: dirs::config_dir().map(|d| d.join("perpdesk").join("perpdesk.toml")),
            data_dir: dirs::data_dir().map(|d| d.join("perpdesk")),
        }
    }
}

/// Reads a variable of the process environment. A value that is not UTF-8 is passed on lossily, so that it
/// fails validation with a visible message instead of looking unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// The loaded configuration and where each value came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The config file that was read, if any.
    pub file: Option<PathBuf>,
    /// The default config file that was looked for, when `--config` was not given.
    pub default_file: Option<PathBuf>,
    origins: BTreeMap<&'static str, Origin>,
}

impl Loaded {
    /// Where the setting `key` (e.g. `"universe.size"`) came from.
    pub fn origin(&self, key: &str) -> Origin {
        self.origins.get(key).cloned().unwrap_or(Origin::Default)
    }

    pub fn into_config(self) -> Config {
        self.config
    }
}

/// Load the configuration: defaults < config file < environment (read through `env`) < flags of `cli`.
pub fn load(cli: &Cli, env: &dyn Fn(&str) -> Option<String>) -> Result<Loaded, ConfigError> {
    load_with(cli, env, &PlatformDirs::detect())
}

/// [`load`] with explicit platform directories.
pub fn load_with(
    cli: &Cli,
    env: &dyn Fn(&str) -> Option<String>,
    dirs: &PlatformDirs,
) -> Result<Loaded, ConfigError> {
    let mut layers = Layers::default();

    // 1. The file.
    let (file, default_file) = match &cli.global.config {
        Some(path) => {
            if !path.exists() {
                return Err(ConfigError::FileNotFound { path: path.clone() });
            }
            (Some(path.clone()), None)
        }
        None => match &dirs.config_file {
            Some(path) if path.exists() => (Some(path.clone()), None),
            other => (None, other.clone()),
        },
    };
    if let Some(path) = &file {
        let text = fs::read_to_string(path).map_err(|source| ConfigError::FileUnreadable {
            path: path.clone(),
            source,
        })?;
        let has_secrets = layers.read_file(path, &text)?;
        if has_secrets {
            check_file_mode(path)?;
        }
    }

    // 2. The environment (the Binance credentials come later, only if trading is enabled).
    let read_env = |var: &'static str| env(var).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    for s in SETTINGS {
        let Some(var) = s.env else { continue };
        if var == ENV_API_KEY || var == ENV_API_SECRET {
            continue;
        }
        if let Some(raw) = read_env(var) {
            layers.set_env(s, var, &raw)?;
        }
    }

    // 3. The flags.
    layers.read_flags(cli)?;

    // 4. The Binance credentials: only for live trading.
    let trading = layers
        .get("trading_enabled")
        .and_then(toml::Value::as_bool)
        .unwrap_or(false);
    for var in [ENV_API_KEY, ENV_API_SECRET] {
        let Some(s) = SETTINGS.iter().find(|s| s.env == Some(var)) else {
            continue;
        };
        if !trading {
            layers.remove(s.key);
            layers.origins.insert(s.key, Origin::NotLoaded);
        } else if let Some(raw) = read_env(var) {
            layers.set_env(s, var, &raw)?;
        }
    }

    // 5. The data directory default.
    if layers.get("paths.data_dir").is_none() {
        let dir = dirs.data_dir.clone().ok_or(ConfigError::NoDataDir)?;
        let dir = dir.to_str().ok_or(ConfigError::NoDataDir)?.to_owned();
        layers.insert("paths.data_dir", toml::Value::String(dir));
    }

    let origins = layers.origins;
    let config: Config = toml::Value::Table(layers.merged)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Internal(e.message().to_owned()))?;
    let loaded = Loaded {
        config,
        file,
        default_file,
        origins,
    };
    check_combinations(&loaded)?;
    Ok(loaded)
}

/// The merged TOML table and the origin of each key.
#[derive(Default)]
struct Layers {
    merged: toml::Table,
    origins: BTreeMap<&'static str, Origin>,
}

impl Layers {
    fn get(&self, key: &str) -> Option<&toml::Value> {
        match split_key(key) {
            ("", k) => self.merged.get(k),
            (t, k) => self.merged.get(t)?.as_table()?.get(k),
        }
    }

    fn insert(&mut self, key: &'static str, value: toml::Value) {
        match split_key(key) {
            ("", k) => {
                self.merged.insert(k.to_owned(), value);
            }
            (t, k) => {
                let table = self
                    .merged
                    .entry(t)
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if let toml::Value::Table(table) = table {
                    table.insert(k.to_owned(), value);
                }
            }
        }
    }

    fn remove(&mut self, key: &str) {
        match split_key(key) {
            ("", k) => {
                self.merged.remove(k);
            }
            (t, k) => {
                if let Some(toml::Value::Table(table)) = self.merged.get_mut(t) {
                    table.remove(k);
                }
            }
        }
    }

    fn set_env(&mut self, s: &'static Setting, var: &'static str, raw: &str) -> Result<(), ConfigError> {
        let value = s
            .kind
            .parse_text(raw)
            .and_then(|v| s.kind.check(&v))
            .map_err(|problem| ConfigError::InvalidEnvVar { var, problem })?;
        self.insert(s.key, value);
        self.origins.insert(s.key, Origin::Env(var));
        Ok(())
    }

    fn set_flag(
        &mut self,
        key: &'static str,
        flag: &'static str,
        value: &toml::Value,
    ) -> Result<(), ConfigError> {
        let s = find_setting(key).ok_or_else(|| ConfigError::Internal(format!("no setting {key}")))?;
        let value = s
            .kind
            .check(value)
            .map_err(|problem| ConfigError::InvalidFlag { flag, problem })?;
        self.insert(s.key, value);
        self.origins.insert(s.key, Origin::Flag(flag));
        Ok(())
    }

    fn read_flags(&mut self, cli: &Cli) -> Result<(), ConfigError> {
        use toml::Value::{Array, Boolean, Integer, String as Str};
        let run = cli.run_args();
        let path_value = |flag: &'static str, p: &Path| {
            p.to_str()
                .map(|s| Str(s.to_owned()))
                .ok_or(ConfigError::InvalidFlag {
                    flag,
                    problem: "the path is not valid UTF-8".to_owned(),
                })
        };
        if run.demo {
            self.set_flag("demo", "--demo", &Boolean(true))?;
        }
        if let Some(env) = run.env {
            self.set_flag("venue.env", "--env", &Str(env.as_str().to_owned()))?;
        }
        if let Some(url) = run.rest_url {
            self.set_flag("venue.rest_url", "--rest-url", &Str(url))?;
        }
        if let Some(url) = run.ws_url {
            self.set_flag("venue.ws_url", "--ws-url", &Str(url))?;
        }
        if let Some(mode) = run.mode {
            self.set_flag("strategy_mode", "--mode", &Str(mode.as_str().to_owned()))?;
        }
        if let Some(n) = run.universe_size {
            self.set_flag("universe.size", "--universe-size", &Integer(n))?;
        }
        if let Some(list) = run.timeframes {
            let list = list.into_iter().map(|s| Str(s.trim().to_owned())).collect();
            self.set_flag("universe.timeframes", "--timeframes", &Array(list))?;
        }
        if let Some(n) = run.history_bars {
            self.set_flag("universe.history_bars", "--history-bars", &Integer(n))?;
        }
        if let Some(theme) = run.theme {
            self.set_flag("ui.theme", "--theme", &Str(theme))?;
        }
        if let Some(dir) = &cli.global.data_dir {
            let value = path_value("--data-dir", dir)?;
            self.set_flag("paths.data_dir", "--data-dir", &value)?;
        }
        if let Some(dir) = &cli.global.models_dir {
            let value = path_value("--models-dir", dir)?;
            self.set_flag("paths.models_dir", "--models-dir", &value)?;
        }
        if let Some(level) = &cli.global.log_level {
            self.set_flag("logging.level", "--log-level", &Str(level.clone()))?;
        }
        Ok(())
    }

    /// Check the file against the registry and merge it. Returns whether it holds any secret.
    fn read_file(&mut self, path: &Path, text: &str) -> Result<bool, ConfigError> {
        let syntax = |e: &toml::de::Error| {
            let span = e.span().unwrap_or(0..0);
            let (line, column) = line_column(text, span.start);
            let mut message = e.message().trim().to_owned();
            // The span of a duplicate key is the key itself (never a value, so never a secret).
            if message == "duplicate key"
                && let Some(key) = text.get(span)
            {
                message = format!("duplicate key `{key}`");
            }
            ConfigError::Syntax {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        };
        let doc = toml::de::DeTable::parse(text).map_err(|e| syntax(&e))?;
        let values: toml::Table = text.parse().map_err(|e| syntax(&e))?;
        let at = |span: Range<usize>| line_column(text, span.start);
        let unknown = |key: &str, table: &'static str, span: Range<usize>| {
            let (line, column) = at(span);
            ConfigError::UnknownKey {
                path: path.to_owned(),
                line,
                column,
                key: key.to_owned(),
                table,
                hint: suggest(table, key),
            }
        };
        let invalid = |key: &str, span: Range<usize>, problem: String| {
            let (line, column) = at(span);
            ConfigError::InvalidFileValue {
                path: path.to_owned(),
                line,
                column,
                key: key.to_owned(),
                problem,
            }
        };

        let tables = table_names();
        let mut has_secrets = false;
        for (key, value) in sorted_entries(doc.get_ref()) {
            let name: &str = key.get_ref();
            if let Some(s) = find_setting(name) {
                let v = values
                    .get(name)
                    .ok_or_else(|| ConfigError::Internal(format!("lost {name}")))?;
                let v = s.kind.check(v).map_err(|p| invalid(name, value.span(), p))?;
                self.insert(s.key, v);
                self.origins.insert(
                    s.key,
                    Origin::File {
                        line: at(key.span()).0,
                    },
                );
            } else if let Some(name) = tables.iter().copied().find(|t| *t == name) {
                let (Some(sub), Some(sub_values)) = (
                    value.get_ref().as_table(),
                    values.get(name).and_then(toml::Value::as_table),
                ) else {
                    let found = values
                        .get(name)
                        .map_or_else(String::new, |v| format!(", found {}", show(v)));
                    return Err(invalid(
                        name,
                        value.span(),
                        format!("expected a table [{name}]{found}"),
                    ));
                };
                for (sub_key, sub_value) in sorted_entries(sub) {
                    let full = format!("{name}.{}", sub_key.get_ref());
                    let s = find_setting(&full)
                        .ok_or_else(|| unknown(sub_key.get_ref(), name, sub_key.span()))?;
                    let v = sub_values
                        .get(sub_key.get_ref().as_ref())
                        .ok_or_else(|| ConfigError::Internal(format!("lost {full}")))?;
                    let v = s.kind.check(v).map_err(|p| invalid(&full, sub_value.span(), p))?;
                    has_secrets |= matches!(s.kind, Kind::Secret(_));
                    self.insert(s.key, v);
                    self.origins.insert(
                        s.key,
                        Origin::File {
                            line: at(sub_key.span()).0,
                        },
                    );
                }
            } else {
                return Err(unknown(name, "", key.span()));
            }
        }
        Ok(has_secrets)
    }
}

type DeEntry<'a, 'i> = (
    &'a toml::Spanned<toml::de::DeString<'i>>,
    &'a toml::Spanned<toml::de::DeValue<'i>>,
);

/// Entries of a parsed table in file order, so the first error reported is the first in the file.
fn sorted_entries<'a, 'i>(table: &'a toml::de::DeTable<'i>) -> Vec<DeEntry<'a, 'i>> {
    let mut entries: Vec<DeEntry<'a, 'i>> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(unix)]
fn check_file_mode(path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)
        .map_err(|source| ConfigError::FileUnreadable {
            path: path.to_owned(),
            source,
        })?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(ConfigError::InsecureFile {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_file_mode(_path: &Path) -> Result<(), ConfigError> {
    Ok(())
}

/// Rules between settings, checked on the merged result.
fn check_combinations(loaded: &Loaded) -> Result<(), ConfigError> {
    let c = &loaded.config;
    let describe = |key: &str| match loaded.origin(key) {
        Origin::Default => "default".to_owned(),
        Origin::File { line } => match &loaded.file {
            Some(path) => format!("from {}:{line}", path.display()),
            None => format!("from the config file, line {line}"),
        },
        Origin::Env(var) => format!("from environment variable {var}"),
        Origin::Flag(flag) => format!("from {flag}"),
        Origin::NotLoaded => "not loaded".to_owned(),
    };

    if c.universe.history_bars > c.universe.ring_capacity {
        return Err(ConfigError::Inconsistent(format!(
            "universe.history_bars = {} ({}) is larger than universe.ring_capacity = {} ({}): the bar buffer \
             cannot hold the history; raise ring_capacity or lower history_bars",
            c.universe.history_bars,
            describe("universe.history_bars"),
            c.universe.ring_capacity,
            describe("universe.ring_capacity"),
        )));
    }

    if c.trading_enabled && !c.demo {
        let missing = match (&c.secrets.binance_api_key, &c.secrets.binance_api_secret) {
            (None, None) => Some("BINANCE_API_KEY and BINANCE_API_SECRET are"),
            (None, Some(_)) => Some("BINANCE_API_KEY is"),
            (Some(_), None) => Some("BINANCE_API_SECRET is"),
            (Some(_), Some(_)) => None,
        };
        if let Some(missing) = missing {
            return Err(ConfigError::TradingWithoutCredentials {
                origin: describe("trading_enabled"),
                missing,
            });
        }
    }

    match (&c.secrets.discord_token, &c.secrets.discord_channel_id) {
        (Some(_), None) => Err(ConfigError::Inconsistent(
            "DISCORD_TOKEN is set but DISCORD_CHANNEL_ID is not: a bot needs both (or use DISCORD_WEBHOOK_URL \
             alone)"
                .to_owned(),
        )),
        (None, Some(_)) => Err(ConfigError::Inconsistent(
            "DISCORD_CHANNEL_ID is set but DISCORD_TOKEN is not: a bot needs both (or use DISCORD_WEBHOOK_URL \
             alone)"
                .to_owned(),
        )),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------------------
// `perpdesk config`
// ---------------------------------------------------------------------------------------------------------

impl Loaded {
    /// The effective configuration as a TOML document with one comment per key saying where its value came
    /// from. Secrets are never printed: a set secret appears as a commented-out `"<redacted>"` line, so the
    /// output is itself a valid `perpdesk.toml`.
    pub fn to_annotated_toml(&self) -> Result<String, ConfigError> {
        use fmt::Write as _;
        // Serialising the typed config (never the raw layers) is what guarantees redaction.
        let values = toml::Table::try_from(&self.config).map_err(|e| ConfigError::Internal(e.to_string()))?;
        let mut out = String::new();
        let _ = writeln!(out, "# perpdesk effective configuration");
        let _ = writeln!(
            out,
            "# precedence: default < config file < environment variable < flag"
        );
        match (&self.file, &self.default_file) {
            (Some(path), _) => {
                let _ = writeln!(out, "# config file: {}", path.display());
            }
            (None, Some(path)) => {
                let _ = writeln!(out, "# config file: none ({} does not exist)", path.display());
            }
            (None, None) => {
                let _ = writeln!(out, "# config file: none");
            }
        }

        out.push('\n');
        let mut current_table = "";
        for s in SETTINGS {
            let (table, name) = split_key(s.key);
            if table != current_table {
                let _ = write!(out, "\n[{table}]\n");
                current_table = table;
            }
            let value = match table {
                "" => values.get(name),
                t => values
                    .get(t)
                    .and_then(toml::Value::as_table)
                    .and_then(|t| t.get(name)),
            };
            let origin = self.origin(s.key);
            let line = match (value, s.kind) {
                (Some(_), Kind::Secret(_)) => {
                    format!("# {name} = \"{REDACTED}\"")
                }
                (Some(v), _) => format!("{name} = {}", show(v)),
                (None, Kind::Secret(_)) if origin == Origin::NotLoaded => {
                    let _ = writeln!(
                        out,
                        "# {name}: not loaded (paper trading: read only when trading_enabled = true)"
                    );
                    continue;
                }
                (None, _) => {
                    let _ = writeln!(out, "# {name}: not set{}", self.unset_note(s));
                    continue;
                }
            };
            match (&origin, s.env) {
                (Origin::Default, Some(var)) => {
                    let _ = writeln!(out, "{line:<40} # default (env {var})");
                }
                _ => {
                    let _ = writeln!(out, "{line:<40} # {origin}");
                }
            }
        }
        Ok(out)
    }

    fn unset_note(&self, s: &Setting) -> String {
        match s.key {
            "venue.rest_url" => format!(
                " (using {} for env {})",
                self.config.rest_url(),
                self.config.venue.env.as_str()
            ),
            "venue.ws_url" => format!(
                " (using {} for env {})",
                self.config.ws_url(),
                self.config.venue.env.as_str()
            ),
            _ => s.env.map_or_else(String::new, |var| format!(" (env {var})")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use clap::Parser;

    use super::*;

    fn cli(args: &[&str]) -> Cli {
        let mut all = vec!["perpdesk"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).expect("test CLI parses")
    }

    fn dirs() -> PlatformDirs {
        PlatformDirs {
            config_file: None,
            data_dir: Some(PathBuf::from("/data/perpdesk")),
        }
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// A config file in a fresh temp dir, mode 0600.
    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("perpdesk.toml");
        fs::write(&path, text).expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        (dir, path)
    }

    fn load_file(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
        args: &[&str],
    ) -> Result<Loaded, ConfigError> {
        let (_dir, path) = file(text);
        let path_s = path.to_str().expect("utf-8").to_owned();
        let mut all = vec!["--config", path_s.as_str()];
        all.extend_from_slice(args);
        load_with(&cli(&all), env, &dirs())
    }

    fn file_error(text: &str) -> String {
        let (_dir, path) = file(text);
        let path_s = path.to_str().expect("utf-8").to_owned();
        let err = load_with(&cli(&["--config", &path_s]), &no_env, &dirs()).expect_err("invalid");
        err.to_string().replace(&path_s, "FILE")
    }

    fn env_error(pairs: &[(&str, &str)]) -> String {
        load_with(&cli(&[]), &env_of(pairs), &dirs())
            .expect_err("invalid")
            .to_string()
    }

    fn flag_error(args: &[&str]) -> String {
        load_with(&cli(args), &no_env, &dirs())
            .expect_err("invalid")
            .to_string()
    }

    #[test]
    fn defaults_match_architecture() {
        let c = load_with(&cli(&[]), &no_env, &dirs()).expect("loads").config;
        assert!(!c.demo && !c.trading_enabled);
        assert_eq!(c.strategy_mode, StrategyMode::Ict);
        assert_eq!(c.venue.env, VenueEnv::Mainnet);
        assert_eq!(c.rest_url(), "https://fapi.binance.com");
        assert_eq!(c.ws_url(), "wss://fstream.binance.com");
        assert_eq!(c.universe, UniverseConfig::default());
        assert_eq!(
            (c.universe.size, c.universe.refresh_secs, c.universe.history_bars),
            (200, 3600, 500)
        );
        assert_eq!(
            c.universe.timeframes,
            vec![Interval::M5, Interval::M15, Interval::H1]
        );
        assert_eq!(
            (c.universe.ring_capacity, c.universe.streams_per_connection),
            (1000, 200)
        );
        assert_eq!(c.engine.trading_cycle(), Duration::from_secs(60));
        assert_eq!(c.engine.virtual_cycle(), Duration::from_secs(10));
        assert_eq!(c.engine.view_fps, 30);
        assert_eq!(c.ui.theme, "default");
        assert_eq!(c.paths.data_dir, PathBuf::from("/data/perpdesk"));
        assert_eq!(c.logging.level, "info");
        assert_eq!(
            (c.ml.batch_prediction_size, c.ml.batch_max_delay()),
            (32, Duration::from_millis(100))
        );
        assert_eq!(
            (c.ml.structure_vector_dim, c.ml.feature_discovery_rate),
            (16, 0.1)
        );
        assert_eq!(c.ml.strategy_evolution_interval(), Duration::from_secs(3600));
        assert_eq!(
            (
                c.features.max_memory_mapped_positions,
                c.features.feature_dimension
            ),
            (1000, 32)
        );
        assert_eq!(c.positions.max_positions, 999);
        assert_eq!(c.secrets, SecretsConfig::default());
    }

    #[test]
    fn defaults_pass_their_own_checks() {
        let values = toml::Table::try_from(Config::default()).expect("serialises");
        for s in SETTINGS {
            let v = match split_key(s.key) {
                ("", k) => values.get(k),
                (t, k) => values
                    .get(t)
                    .and_then(toml::Value::as_table)
                    .and_then(|t| t.get(k)),
            };
            if let Some(v) = v {
                s.kind
                    .check(v)
                    .unwrap_or_else(|e| panic!("default of {} rejected: {e}", s.key));
            }
        }
    }

    /// The registry and the struct must list the same keys, or a key could be accepted but ignored.
    #[test]
    fn registry_matches_struct() {
        let mut c = Config::default();
        c.venue.rest_url = Some("https://x".into());
        c.venue.ws_url = Some("wss://x".into());
        c.ml.quantized_model_path = Some("m.onnx".into());
        c.ml.onnxruntime_library = Some("libonnxruntime.so.1.32.0".into());
        let s = Some(Secret::new("s"));
        c.secrets = SecretsConfig {
            binance_api_key: s.clone(),
            binance_api_secret: s.clone(),
            discord_token: s.clone(),
            discord_channel_id: s.clone(),
            discord_webhook_url: s,
        };
        let table = toml::Table::try_from(&c).expect("serialises");
        let mut keys = BTreeSet::new();
        for (k, v) in &table {
            match v.as_table() {
                Some(sub) => keys.extend(sub.keys().map(|sk| format!("{k}.{sk}"))),
                None => {
                    keys.insert(k.clone());
                }
            }
        }
        let registry: BTreeSet<String> = SETTINGS.iter().map(|s| s.key.to_owned()).collect();
        assert_eq!(keys, registry);
        let env_in_registry: BTreeSet<&str> = SETTINGS.iter().filter_map(|s| s.env).collect();
        assert_eq!(env_in_registry, ENV_VARS.iter().copied().collect::<BTreeSet<_>>());
    }

    #[test]
    fn precedence_default_file_env_flag() {
        let text = "strategy_mode = \"hybrid\"\n[universe]\nsize = 50\nhistory_bars = 300\n\
                    [ml]\nbatch_prediction_size = 8\n";
        let env = env_of(&[
            ("STRATEGY_MODE", "self_learning"),
            ("BATCH_PREDICTION_SIZE", "64"),
        ]);
        let loaded = load_file(text, &env, &["--mode", "ict"]).expect("loads");
        let c = &loaded.config;
        // flag beats env beats file
        assert_eq!(c.strategy_mode, StrategyMode::Ict);
        assert_eq!(loaded.origin("strategy_mode"), Origin::Flag("--mode"));
        // env beats file
        assert_eq!(c.ml.batch_prediction_size, 64);
        assert_eq!(
            loaded.origin("ml.batch_prediction_size"),
            Origin::Env("BATCH_PREDICTION_SIZE")
        );
        // file beats default
        assert_eq!(c.universe.size, 50);
        assert_eq!(loaded.origin("universe.size"), Origin::File { line: 3 });
        assert_eq!(c.universe.history_bars, 300);
        // default
        assert_eq!(c.universe.refresh_secs, 3600);
        assert_eq!(loaded.origin("universe.refresh_secs"), Origin::Default);
    }

    #[test]
    fn flags_after_config_subcommand_win() {
        let loaded = load_with(
            &cli(&["--universe-size", "10", "config", "--universe-size", "20"]),
            &no_env,
            &dirs(),
        )
        .expect("loads");
        assert_eq!(loaded.config.universe.size, 20);
    }

    #[test]
    fn flag_values_are_applied() {
        let loaded = load_with(
            &cli(&[
                "--env",
                "testnet",
                "--timeframes",
                "1m, 4h",
                "--history-bars",
                "1000",
                "--theme",
                "solarized",
                "--data-dir",
                "/tmp/pd",
                "--log-level",
                "info,perpdesk::binance=debug",
            ]),
            &no_env,
            &dirs(),
        )
        .expect("loads");
        let c = loaded.config;
        assert_eq!(c.venue.env, VenueEnv::Testnet);
        assert_eq!(c.rest_url(), "https://testnet.binancefuture.com");
        assert_eq!(c.universe.timeframes, vec![Interval::M1, Interval::H4]);
        assert_eq!(c.universe.history_bars, 1000);
        assert_eq!(c.ui.theme, "solarized");
        assert_eq!(c.paths.data_dir, PathBuf::from("/tmp/pd"));
        assert_eq!(c.logging.level, "info,perpdesk::binance=debug");
    }

    #[test]
    fn env_values_are_applied() {
        let env = env_of(&[
            ("PERPDESK_ENV", "demo"),
            ("PERPDESK_DATA_DIR", "/srv/pd"),
            ("ENABLE_SELF_LEARNING", "FALSE"),
            ("SELF_LEARNING_MODE", "online"),
            ("ENABLE_QUANTIZATION", "1"),
            ("QUANTIZED_MODEL_PATH", "models/int8.onnx"),
            ("ENABLE_INCREMENTAL_CACHE", "false"),
            ("ENABLE_BATCH_PREDICTION", "0"),
            ("BATCH_MAX_DELAY", "250"),
            ("ENABLE_MEMORY_MAPPED_STORAGE", "false"),
            ("MAX_MEMORY_MAPPED_POSITIONS", "4000"),
            ("FEATURE_DIMENSION", "48"),
            ("ENABLE_SMART_MONITORING", " false "),
            ("MAX_POSITIONS", "5"),
            ("STRUCTURE_VECTOR_DIM", "16"),
            ("FEATURE_DISCOVERY_RATE", "0.25"),
            ("STRATEGY_EVOLUTION_INTERVAL", "7200"),
            ("DISCORD_WEBHOOK_URL", "https://discord.com/api/webhooks/1/abc"),
            ("TRADING_ENABLED", ""), // empty = unset
        ]);
        let c = load_with(&cli(&[]), &env, &dirs()).expect("loads").config;
        assert_eq!(c.venue.env, VenueEnv::Demo);
        assert_eq!(c.rest_url(), "https://demo-fapi.binance.com");
        assert_eq!(c.paths.data_dir, PathBuf::from("/srv/pd"));
        assert!(!c.ml.enable_self_learning && c.ml.enable_quantization && !c.ml.enable_batch_prediction);
        assert_eq!(c.ml.self_learning_mode, SelfLearningMode::Online);
        assert_eq!(c.ml.quantized_model_path, Some(PathBuf::from("models/int8.onnx")));
        assert_eq!(c.ml.batch_max_delay_ms, 250);
        assert_eq!(
            (c.ml.structure_vector_dim, c.ml.feature_discovery_rate),
            (16, 0.25)
        );
        assert_eq!(c.ml.strategy_evolution_interval_secs, 7200);
        assert!(!c.features.enable_incremental_cache && !c.features.enable_memory_mapped_storage);
        assert_eq!(
            (
                c.features.max_memory_mapped_positions,
                c.features.feature_dimension
            ),
            (4000, 48)
        );
        assert!(!c.monitoring.enable_smart_monitoring);
        assert_eq!(c.positions.max_positions, 5);
        assert!(!c.trading_enabled);
        assert_eq!(
            c.secrets.discord_webhook_url.as_ref().map(Secret::expose),
            Some("https://discord.com/api/webhooks/1/abc")
        );
    }

    #[test]
    fn dotted_keys_and_integer_for_float() {
        let c = load_file("universe.size = 7\nml.feature_discovery_rate = 1\n", &no_env, &[])
            .expect("loads")
            .config;
        assert_eq!(c.universe.size, 7);
        assert_eq!(c.ml.feature_discovery_rate, 1.0);
    }

    #[test]
    fn file_errors() {
        let cases: &[(&str, &str)] = &[
            (
                "colour = 1\n",
                "FILE:1:1: unknown key `colour` at the top level; accepted keys: demo, trading_enabled, \
                 strategy_mode, venue, universe, engine, ui, paths, logging, ml, features, monitoring, positions, \
                 notify, secrets",
            ),
            (
                "[ui]\ntheme = \"x\"\ncolour = \"red\"\n",
                "FILE:3:1: unknown key `colour` in [ui]; accepted keys: theme",
            ),
            (
                "[universe]\nsize = 0\n",
                "FILE:2:8: invalid value for universe.size: 0 is out of range: must be 1..=1000",
            ),
            (
                "strategy_mode = \"foo\"\n",
                "FILE:1:17: invalid value for strategy_mode: expected one of ict, self_learning, hybrid, found \"foo\"",
            ),
            (
                "[universe]\ntimeframes = [\"5m\", \"7m\"]\n",
                "FILE:2:14: invalid value for universe.timeframes: \"7m\" is not a Binance interval: expected one of \
                 1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h, 1d, 3d, 1w, 1M",
            ),
            (
                "[universe]\ntimeframes = [\"5m\", \"5m\"]\n",
                "FILE:2:14: invalid value for universe.timeframes: \"5m\" is listed twice",
            ),
            (
                "[universe]\ntimeframes = []\n",
                "FILE:2:14: invalid value for universe.timeframes: must list at least one interval",
            ),
            (
                "[venue]\nrest_url = \"fapi.binance.com\"\n",
                "FILE:2:12: invalid value for venue.rest_url: \"fapi.binance.com\" is not a valid URL: relative URL \
                 without a base",
            ),
            (
                "[venue]\nws_url = \"https://fstream.binance.com\"\n",
                "FILE:2:10: invalid value for venue.ws_url: \"https://fstream.binance.com\" must start with wss:// \
                 or ws://",
            ),
            (
                "[engine]\nview_fps = 0\n",
                "FILE:2:12: invalid value for engine.view_fps: 0 is out of range: must be 1..=120",
            ),
            (
                "[universe]\nsize = \"200\"\n",
                "FILE:2:8: invalid value for universe.size: expected a positive integer, found \"200\"",
            ),
            (
                "trading_enabled = \"yes\"\n",
                "FILE:1:19: invalid value for trading_enabled: expected true or false, found \"yes\"",
            ),
            (
                "[ml]\nfeature_discovery_rate = 1.5\n",
                "FILE:2:26: invalid value for ml.feature_discovery_rate: 1.5 is out of range: must be from 0 to 1",
            ),
            (
                "universe = 5\n",
                "FILE:1:12: invalid value for universe: expected a table [universe], found 5",
            ),
            (
                "[logging]\nlevel = \"loud\"\n",
                "FILE:2:9: invalid value for logging.level: \"loud\" is not valid: expected a log level (trace, debug, info, warn, error, off) or a filter such as \"info,perpdesk::binance=debug\"",
            ),
            (
                "[ui]\ntheme = \"\"\n",
                "FILE:2:9: invalid value for ui.theme: must not be empty",
            ),
            (
                "[secrets]\ndiscord_channel_id = \"general\"\n",
                "FILE:2:22: invalid value for secrets.discord_channel_id: expected a numeric Discord channel id \
                 (value not shown: it is a secret)",
            ),
            (
                "[secrets]\ndiscord_token = \"<redacted>\"\n",
                "FILE:2:17: invalid value for secrets.discord_token: \"<redacted>\" is the placeholder printed by \
                 `perpdesk config`, not a real value",
            ),
            (
                "[universe]\nhistory_bars = 1200\n",
                "universe.history_bars = 1200 (from FILE:2) is larger than universe.ring_capacity = 1000 (default): \
                 the bar buffer cannot hold the history; raise ring_capacity or lower history_bars",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(file_error(text), *expected, "for file {text:?}");
        }
    }

    #[test]
    fn unknown_key_hints() {
        assert_eq!(suggest("universe", "timeframe").as_deref(), Some("`timeframes`"));
        assert_eq!(
            suggest("", "universe_size").as_deref(),
            Some("`size` in [universe]")
        );
        assert_eq!(suggest("", "theme").as_deref(), Some("`theme` in [ui]"));
        assert_eq!(
            suggest("", "BATCH_PREDICTION_SIZE").as_deref(),
            Some("`batch_prediction_size` in [ml]")
        );
        assert_eq!(
            suggest("ml", "batch_max_delay").as_deref(),
            Some("`batch_max_delay_ms` in [ml]")
        );
        assert_eq!(suggest("engine", "view_fsp").as_deref(), Some("`view_fps`"));
        assert_eq!(suggest("ui", "colour"), None);
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let msg = file_error("[universe]\nsize = = 3\n");
        assert!(msg.starts_with("FILE:2:8: TOML syntax error: "), "{msg}");
    }

    #[test]
    fn missing_config_file() {
        let err = load_with(
            &cli(&["--config", "/nonexistent/perpdesk.toml"]),
            &no_env,
            &dirs(),
        )
        .expect_err("missing");
        assert_eq!(
            err.to_string(),
            "config file /nonexistent/perpdesk.toml not found (given with --config)"
        );
    }

    #[test]
    fn default_config_file_is_optional_but_read_when_present() {
        let c = load_with(
            &cli(&[]),
            &no_env,
            &PlatformDirs {
                config_file: Some("/nonexistent/p.toml".into()),
                ..dirs()
            },
        )
        .expect("absent default file is fine");
        assert_eq!(c.file, None);
        let (_dir, path) = file("[universe]\nsize = 9\n");
        let c = load_with(
            &cli(&[]),
            &no_env,
            &PlatformDirs {
                config_file: Some(path.clone()),
                ..dirs()
            },
        )
        .expect("loads");
        assert_eq!((c.config.universe.size, c.file), (9, Some(path)));
    }

    #[test]
    fn env_errors() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "TRADING_ENABLED",
                "yes please",
                "invalid environment variable TRADING_ENABLED: expected true or false, found \"yes please\"",
            ),
            (
                "BATCH_PREDICTION_SIZE",
                "abc",
                "invalid environment variable BATCH_PREDICTION_SIZE: expected a positive integer, found \"abc\"",
            ),
            (
                "BATCH_PREDICTION_SIZE",
                "0",
                "invalid environment variable BATCH_PREDICTION_SIZE: 0 is out of range: must be 1..=4096",
            ),
            (
                "STRUCTURE_VECTOR_DIM",
                "8",
                "invalid environment variable STRUCTURE_VECTOR_DIM: 8 is not supported: must be 16 (the code width \
                 the structure model and the strategy evolver are built for)",
            ),
            (
                "BATCH_MAX_DELAY",
                "0.1",
                "invalid environment variable BATCH_MAX_DELAY: expected a positive integer (milliseconds), found \"0.1\"",
            ),
            (
                "STRATEGY_MODE",
                "scalp",
                "invalid environment variable STRATEGY_MODE: expected one of ict, self_learning, hybrid, found \"scalp\"",
            ),
            (
                "PERPDESK_ENV",
                "prod",
                "invalid environment variable PERPDESK_ENV: expected one of mainnet, testnet, demo, found \"prod\"",
            ),
            (
                "FEATURE_DISCOVERY_RATE",
                "NaN",
                "invalid environment variable FEATURE_DISCOVERY_RATE: expected a number from 0 to 1, found \"NaN\"",
            ),
            (
                "SELF_LEARNING_MODE",
                "always",
                "invalid environment variable SELF_LEARNING_MODE: expected one of online, batch, frozen, found \"always\"",
            ),
            (
                "DISCORD_WEBHOOK_URL",
                "http://leak.example/secret-canary",
                "invalid environment variable DISCORD_WEBHOOK_URL: expected an https:// URL (value not shown: it is a secret)",
            ),
        ];
        for (var, value, expected) in cases {
            assert_eq!(env_error(&[(var, value)]), *expected, "for {var}={value}");
        }
    }

    #[test]
    fn flag_errors() {
        assert_eq!(
            flag_error(&["--universe-size", "0"]),
            "invalid value for --universe-size: 0 is out of range: must be 1..=1000"
        );
        assert_eq!(
            flag_error(&["--timeframes", "5m,2m"]),
            "invalid value for --timeframes: \"2m\" is not a Binance interval: expected one of 1m, 3m, 5m, 15m, 30m, \
             1h, 2h, 4h, 6h, 8h, 12h, 1d, 3d, 1w, 1M"
        );
        assert_eq!(
            flag_error(&["--rest-url", "ftp://x"]),
            "invalid value for --rest-url: \"ftp://x\" must start with https:// or http://"
        );
        assert_eq!(
            flag_error(&["--universe-size", "-5"]),
            "invalid value for --universe-size: -5 is out of range: must be 1..=1000"
        );
        assert_eq!(
            flag_error(&["--history-bars", "2000"]),
            "invalid value for --history-bars: 2000 is out of range: must be 1..=1500"
        );
        assert_eq!(
            flag_error(&["--log-level", "verbose"]),
            "invalid value for --log-level: \"verbose\" is not valid: expected a log level (trace, debug, info, warn, \
             error, off) or a filter such as \"info,perpdesk::binance=debug\""
        );
    }

    #[test]
    fn trading_needs_credentials_unless_demo() {
        assert_eq!(
            env_error(&[("TRADING_ENABLED", "true")]),
            "trading_enabled is true (from environment variable TRADING_ENABLED) but BINANCE_API_KEY and \
             BINANCE_API_SECRET are not set: set BINANCE_API_KEY and BINANCE_API_SECRET, or use --demo, or set \
             TRADING_ENABLED=false to trade on paper"
        );
        assert_eq!(
            env_error(&[("TRADING_ENABLED", "true"), ("BINANCE_API_KEY", "k")]),
            "trading_enabled is true (from environment variable TRADING_ENABLED) but BINANCE_API_SECRET is not \
             set: set BINANCE_API_KEY and BINANCE_API_SECRET, or use --demo, or set TRADING_ENABLED=false to \
             trade on paper"
        );
        let env = env_of(&[("TRADING_ENABLED", "true")]);
        assert!(
            load_with(&cli(&["--demo"]), &env, &dirs())
                .expect("demo needs no keys")
                .config
                .trading_enabled
        );
        let env = env_of(&[
            ("TRADING_ENABLED", "true"),
            ("BINANCE_API_KEY", "k"),
            ("BINANCE_API_SECRET", "s"),
        ]);
        let c = load_with(&cli(&[]), &env, &dirs()).expect("loads").config;
        assert_eq!(c.secrets.binance_api_key.as_ref().map(Secret::expose), Some("k"));
        assert_eq!(
            c.secrets.binance_api_secret.as_ref().map(Secret::expose),
            Some("s")
        );
    }

    #[test]
    fn paper_mode_does_not_load_binance_credentials() {
        let read = std::cell::RefCell::new(Vec::new());
        let env = |k: &str| {
            read.borrow_mut().push(k.to_owned());
            matches!(k, "BINANCE_API_KEY" | "BINANCE_API_SECRET").then(|| "canary".to_owned())
        };
        let loaded = load_with(&cli(&[]), &env, &dirs()).expect("loads");
        assert_eq!(loaded.config.secrets.binance_api_key, None);
        assert_eq!(loaded.origin("secrets.binance_api_key"), Origin::NotLoaded);
        assert!(
            !read.borrow().iter().any(|k| k.starts_with("BINANCE")),
            "read {:?}",
            read.borrow()
        );
    }

    #[test]
    fn discord_bot_needs_token_and_channel() {
        assert_eq!(
            env_error(&[("DISCORD_TOKEN", "t")]),
            "DISCORD_TOKEN is set but DISCORD_CHANNEL_ID is not: a bot needs both (or use DISCORD_WEBHOOK_URL alone)"
        );
        let env = env_of(&[
            ("DISCORD_TOKEN", "t"),
            ("DISCORD_CHANNEL_ID", "123456789012345678"),
        ]);
        assert!(load_with(&cli(&[]), &env, &dirs()).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn secrets_in_a_world_readable_file_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, path) = file("[secrets]\ndiscord_token = \"t\"\ndiscord_channel_id = \"1\"\n");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let p = path.to_str().expect("utf-8");
        let err = load_with(&cli(&["--config", p]), &no_env, &dirs()).expect_err("refused");
        assert_eq!(
            err.to_string(),
            format!(
                "{p} contains secrets but other users can read it (mode 0644): run `chmod 600 {p}` or move the \
                 secrets to environment variables"
            )
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(load_with(&cli(&["--config", p]), &no_env, &dirs()).is_ok());
    }

    #[test]
    fn secrets_never_show() {
        let canary = "CANARY-7f3a9c";
        let webhook = format!("https://discord.com/api/webhooks/1/{canary}");
        let env = env_of(&[
            ("TRADING_ENABLED", "true"),
            ("BINANCE_API_KEY", canary),
            ("BINANCE_API_SECRET", canary),
            ("DISCORD_TOKEN", canary),
            ("DISCORD_CHANNEL_ID", "42"),
            ("DISCORD_WEBHOOK_URL", &webhook),
        ]);
        let loaded = load_with(&cli(&[]), &env, &dirs()).expect("loads");
        assert_eq!(
            loaded.config.secrets.discord_token.as_ref().map(Secret::expose),
            Some(canary)
        );
        let debug = format!("{loaded:?}");
        let shown = loaded.to_annotated_toml().expect("renders");
        let json = serde_json::to_string(&loaded.config).expect("json");
        for out in [&debug, &shown, &json] {
            assert!(!out.contains(canary), "canary leaked: {out}");
            assert!(!out.contains("\"42\""), "channel id leaked: {out}");
        }
        assert!(shown.contains("# binance_api_key = \"<redacted>\""), "{shown}");
        assert_eq!(format!("{}", Secret::new(canary)), REDACTED);
        assert_eq!(format!("{:?}", Secret::new(canary)), "Secret(<redacted>)");
        // Error messages about secrets do not echo them.
        let err = env_error(&[("DISCORD_CHANNEL_ID", canary)]);
        assert!(
            !err.contains(canary) && !format!("{err:?}").contains(canary),
            "{err}"
        );
    }

    #[test]
    fn annotated_output_round_trips() {
        let env = env_of(&[
            ("MAX_POSITIONS", "7"),
            ("DISCORD_WEBHOOK_URL", "https://discord.com/api/webhooks/1/x"),
        ]);
        let loaded = load_file(
            "[universe]\nsize = 20\n",
            &env,
            &["--mode", "hybrid", "--rest-url", "http://127.0.0.1:9/"],
        )
        .expect("loads");
        let shown = loaded.to_annotated_toml().expect("renders");
        assert!(
            shown.contains("strategy_mode = \"hybrid\"                 # flag --mode\n"),
            "{shown}"
        );
        assert!(
            shown.contains("size = 20                                # file, line 2\n"),
            "{shown}"
        );
        assert!(
            shown.contains("max_positions = 7                        # env MAX_POSITIONS\n"),
            "{shown}"
        );
        assert!(
            shown.contains("# ws_url: not set (using wss://fstream.binance.com for env mainnet)\n"),
            "{shown}"
        );
        assert!(shown.contains("# binance_api_key: not loaded"), "{shown}");
        let again = load_file(&shown, &no_env, &[]).expect("output is a valid config");
        let mut expected = loaded.config.clone();
        expected.secrets = SecretsConfig::default();
        assert_eq!(again.config, expected);
    }
}
