//! A synthetic futures market for any number of contracts, so the demo and the tests have a realistic
//! market (hundreds of symbols, fat tails, volatility clusters, co-movement, trends and ranges, a
//! Binance-like volume ranking) with no network and no data files.
//!
//! Design decisions:
//! * **Two levels of time.** A coarse path of hourly anchors (close price, volatility state, activity)
//!   is generated once per symbol for the whole history, sequentially (GARCH and regimes need the past),
//!   and extended forward in one-day chunks as simulated time advances. Everything finer is a pure
//!   function of two neighbouring anchors and a seed: the 60 minutes of an hour are a seeded Brownian
//!   bridge (with a common market bridge scaled by beta, so minutes co-move too) from the hour's open to
//!   its close; inside a minute the price follows a seeded piecewise-linear path through open, high and
//!   low (in a seeded order) and close. Hence every answer is deterministic and independent of what was
//!   asked before, and a partial bar at any millisecond is a prefix of the final bar.
//! * **Every hour's randomness is its own stream** (`ChaCha8` seeded by a hash of seed, symbol, hour and
//!   purpose), so extending the path in chunks of any size gives the same path.
//! * **Prices are integers of ticks** internally; `f64` only at the edge, so highs, lows and partial
//!   bars compare exactly and print as the venue would.
//! * **Caches:** the OHLCV of each complete hour (`OnceLock` per symbol-hour) so 1h–1M bars
//!   and the 24h ticker are sums of cached hours, and the last few hours of minutes per symbol (a
//!   `Mutex` per symbol) so the 5m/15m back-fill generates each hour once. Memory is ~90 bytes per
//!   symbol-hour: 260 symbols × 30 days ≈ 17 MB (26 MB measured with vector slack), ~200 MB after a simulated year.
//! * The figures (volatilities, tails, persistence, correlations, seasonality, ranges) are the named
//!   constants of [`crate::sim::calibration`], measured on real klines.

use std::{
    collections::HashSet,
    fmt,
    sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, RwLockReadGuard},
};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rust_decimal::Decimal;

use crate::{
    domain::{Bar, Interval, TimestampMs},
    sim::{
        calibration::{
            ALT_BTC_CORRELATION, ALT_HOURLY_VOL, BASE_FUNDING_RATE, BTC_MARKET_CORRELATION,
            ETH_BTC_CORRELATION, GARCH_ALPHA, GARCH_BETA, HOURLY_T_DOF, MAJOR_HOURLY_VOL,
            MARKET_JUMP_PROBABILITY, MARKET_JUMP_SIGMAS, MINUTE_T_DOF, MINUTE_TO_HOUR_VOL_RATIO,
            MINUTE_WICK_SIGMAS, RANGE_MEAN_HOURS, RANGE_REVERSION_PER_HOUR, REGIME_MIN_HOURS,
            TAIL_DAILY_QUOTE_VOLUME, TAIL_MEAN_TRADE_NOTIONAL, TOP_DAILY_QUOTE_VOLUME,
            TRADE_NOTIONAL_ELASTICITY, TREND_DRIFT_SIGMAS, TREND_MEAN_HOURS, VOL_SEASONALITY_EXPONENT,
            VOLUME_MOVE_SHARE, VOLUME_RANK_DISPERSION, VOLUME_RANK_EXPONENT, VOLUME_VOL_ELASTICITY,
            seasonal_volume_factor,
        },
        source::{MarkInfo, MarketSource, SimSymbol, Ticker24h},
    },
};

/// Contracts the demo lists by default: more than the 200 the console selects, so selection matters.
pub const DEFAULT_SYMBOL_COUNT: usize = 260;
/// History before the start time by default: 30 days, enough for 500 hourly bars plus indicators.
pub const DEFAULT_HISTORY_MS: i64 = 30 * DAY_MS;
/// How far past the start time the market exists: a year and a month of simulated time.
pub const SIMULATION_HORIZON_MS: i64 = 400 * DAY_MS;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
const FUNDING_PERIOD_MS: i64 = 8 * HOUR_MS;
const MINUTES_PER_HOUR: usize = 60;
/// Hours generated beyond the one asked for whenever the path is extended.
const EXTEND_CHUNK_HOURS: usize = 24;
/// Hours of minutes kept per symbol: the hour being formed plus the few a back-fill walks through.
const MINUTE_CACHE_HOURS: usize = 4;

/// Purposes of the random streams, so that no two uses of (seed, symbol, hour) share numbers.
const TAG_UNIVERSE: u64 = 1;
const TAG_HOUR: u64 = 2;
const TAG_MINUTES: u64 = 3;
const TAG_PATH: u64 = 4;
const TAG_BASIS: u64 = 5;
const TAG_FUNDING: u64 = 6;
/// Stream id of the common market factor (symbols use their index).
const MARKET_STREAM: u64 = u64::MAX;

/// The next funding time strictly after `now`: Binance settles at 00:00, 08:00 and 16:00 UTC.
pub fn next_funding_time(now: TimestampMs) -> TimestampMs {
    (now.div_euclid(FUNDING_PERIOD_MS) + 1) * FUNDING_PERIOD_MS
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A well-mixed 64-bit hash of a few integers.
fn mix(parts: [u64; 4]) -> u64 {
    parts
        .iter()
        .fold(0x243F_6A88_85A3_08D3, |acc, &p| splitmix64(acc ^ splitmix64(p)))
}

fn rng_for(seed: u64, stream: u64, index: u64, tag: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix([seed, stream, index, tag]))
}

/// Uniform in [0, 1) from the top 53 bits.
fn unit_of(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1_u64 << 53) as f64
}

/// Student-t with `dof` (> 2) degrees of freedom, scaled to unit variance.
fn standard_t(rng: &mut ChaCha8Rng, dof: u32) -> f64 {
    let z: f64 = rng.sample(StandardNormal);
    let chi_square: f64 = (0..dof)
        .map(|_| {
            let n: f64 = rng.sample(StandardNormal);
            n * n
        })
        .sum();
    let dof = f64::from(dof);
    z / (chi_square / dof).max(1e-12).sqrt() * ((dof - 2.0) / dof).sqrt()
}

/// Exponential with mean 1.
fn standard_exponential(rng: &mut ChaCha8Rng) -> f64 {
    -(1.0 - rng.random::<f64>()).ln()
}

/// Scale of the minute bridge's noise so that σ(1m)·√60 / σ(1h) matches the measured ratio: a bridge
/// pinned at both ends has per-step variance (1 − 1/60)·noise² + (hour move)²/60².
fn minute_noise_factor() -> f64 {
    let n = MINUTES_PER_HOUR as f64;
    ((MINUTE_TO_HOUR_VOL_RATIO.powi(2) - 1.0 / n) / (1.0 - 1.0 / n)).sqrt()
}

/// The model of one contract: its filters as numbers and its calibrated dynamics.
#[derive(Debug, Clone)]
struct ContractModel {
    /// `10^price_precision`: a price of `n` ticks is `n / price_scale`.
    price_scale: f64,
    step: f64,
    initial_ticks: i64,
    beta: f64,
    idio_vol: f64,
    daily_quote_volume: f64,
    mean_trade_notional: f64,
}

impl ContractModel {
    fn price(&self, ticks: i64) -> f64 {
        ticks as f64 / self.price_scale
    }

    fn ticks(&self, price: f64) -> i64 {
        ((price * self.price_scale).round() as i64).max(1)
    }
}

/// What a slot of the universe lists besides plain USDT perpetuals.
#[derive(Debug, Clone, Copy)]
enum Listing {
    OtherQuote(&'static str),
    Quarterly,
    Status(&'static str),
}

/// Non-tradable contracts at fixed ranks (when the universe is that large), each with a high enough
/// volume that a client forgetting to filter would select it.
const SPECIAL_LISTINGS: [(usize, Option<&str>, Listing); 12] = [
    (9, Some("BTC"), Listing::OtherQuote("BUSD")),
    (17, Some("ETH"), Listing::OtherQuote("USDC")),
    (26, Some("BTC"), Listing::Quarterly),
    (38, Some("ETH"), Listing::Quarterly),
    (52, Some("SOL"), Listing::OtherQuote("BUSD")),
    (70, None, Listing::Status("SETTLING")),
    (95, None, Listing::Status("SETTLING")),
    (120, None, Listing::Status("PENDING_TRADING")),
    (140, None, Listing::Status("SETTLING")),
    (180, None, Listing::Status("PENDING_TRADING")),
    (230, Some("BNB"), Listing::OtherQuote("USDC")),
    (250, Some("XRP"), Listing::Quarterly),
];

/// Delivery-date suffix of the synthetic quarterly contracts.
const QUARTERLY_SUFFIX: &str = "_261225";

/// Real base assets in rough order of volume, with a price level for the large ones.
const KNOWN_BASES: &[(&str, Option<f64>)] = &[
    ("BTC", Some(60_000.0)),
    ("ETH", Some(3_000.0)),
    ("SOL", Some(150.0)),
    ("BNB", Some(550.0)),
    ("XRP", Some(0.55)),
    ("DOGE", Some(0.12)),
    ("ADA", Some(0.45)),
    ("AVAX", Some(30.0)),
    ("LINK", Some(15.0)),
    ("DOT", Some(6.5)),
    ("TRX", Some(0.12)),
    ("LTC", Some(80.0)),
    ("BCH", Some(400.0)),
    ("NEAR", Some(5.0)),
    ("UNI", Some(8.0)),
    ("ATOM", Some(8.0)),
    ("APT", Some(9.0)),
    ("ARB", Some(0.9)),
    ("OP", Some(2.0)),
    ("1000PEPE", Some(0.012)),
    ("FIL", None),
    ("ETC", None),
    ("INJ", None),
    ("SUI", None),
    ("SEI", None),
    ("TIA", None),
    ("LDO", None),
    ("AAVE", None),
    ("WIF", None),
    ("1000SHIB", None),
    ("MKR", None),
    ("RUNE", None),
    ("STX", None),
    ("IMX", None),
    ("HBAR", None),
    ("ICP", None),
    ("XLM", None),
    ("VET", None),
    ("ALGO", None),
    ("EGLD", None),
    ("SAND", None),
    ("MANA", None),
    ("AXS", None),
    ("GALA", None),
    ("APE", None),
    ("CRV", None),
    ("DYDX", None),
    ("1000BONK", None),
    ("GMX", None),
    ("SNX", None),
    ("COMP", None),
    ("SUSHI", None),
    ("1INCH", None),
    ("YFI", None),
    ("ZEC", None),
    ("DASH", None),
    ("EOS", None),
    ("NEO", None),
    ("QTUM", None),
    ("IOTA", None),
    ("ZIL", None),
    ("KAVA", None),
    ("CHZ", None),
    ("ENJ", None),
    ("FLOW", None),
    ("THETA", None),
    ("1000FLOKI", None),
    ("ROSE", None),
    ("CELO", None),
    ("KSM", None),
    ("ONE", None),
    ("HOT", None),
    ("ANKR", None),
    ("BAT", None),
    ("ZRX", None),
    ("GRT", None),
    ("BLUR", None),
    ("PYTH", None),
    ("JTO", None),
    ("JUP", None),
    ("ORDI", None),
    ("ENS", None),
    ("PENDLE", None),
    ("WLD", None),
    ("FET", None),
    ("1000SATS", None),
    ("AR", None),
    ("MINA", None),
    ("CFX", None),
    ("KAS", None),
    ("TON", None),
    ("NOT", None),
    ("ENA", None),
    ("ETHFI", None),
    ("STRK", None),
    ("MANTA", None),
    ("DYM", None),
    ("PIXEL", None),
    ("AEVO", None),
    ("BOME", None),
    ("TNSR", None),
    ("SAGA", None),
    ("1000LUNC", None),
    ("ZRO", None),
    ("MEME", None),
    ("ORCA", None),
    ("MOVE", None),
    ("VIRTUAL", None),
    ("1000RATS", None),
    ("1000XEC", None),
];

/// Syllables for generated tickers once the real names run out (`ZELTA`, `KORIN`, …).
const ONSETS: [&str; 16] = [
    "B", "D", "F", "G", "K", "L", "M", "N", "P", "R", "S", "T", "V", "Z", "QU", "X",
];
const NUCLEI: [&str; 5] = ["A", "E", "I", "O", "U"];

fn generated_base(rng: &mut ChaCha8Rng, taken: &HashSet<String>) -> String {
    loop {
        let syllables = rng.random_range(2..=3);
        let mut name = String::new();
        for _ in 0..syllables {
            name.push_str(ONSETS[rng.random_range(0..ONSETS.len())]);
            name.push_str(NUCLEI[rng.random_range(0..NUCLEI.len())]);
        }
        if rng.random_bool(0.4) {
            name.push_str(["N", "X", "R", "T", "S"][rng.random_range(0..5)]);
        }
        if !taken.contains(&name) && !KNOWN_BASES.iter().any(|(b, _)| *b == name) {
            return name;
        }
    }
}

/// Binance-like tick decimals for a price level (BTC 0.1, ETH 0.01, a 0.0005 coin 0.0000001).
fn price_decimals(price: f64) -> u32 {
    match price {
        p if p >= 10_000.0 => 1,
        p if p >= 100.0 => 2,
        p if p >= 10.0 => 3,
        p if p >= 1.0 => 4,
        p if p >= 0.1 => 5,
        p if p >= 0.01 => 6,
        _ => 7,
    }
}

/// Quantity step for a price level: (step as a decimal, quantity precision).
fn quantity_step(price: f64) -> (Decimal, u32) {
    match price {
        p if p >= 1_000.0 => (Decimal::new(1, 3), 3),
        p if p >= 100.0 => (Decimal::new(1, 2), 2),
        p if p >= 10.0 => (Decimal::new(1, 1), 1),
        p if p >= 0.01 => (Decimal::ONE, 0),
        _ => (Decimal::TEN, 0),
    }
}

fn log_uniform(rng: &mut ChaCha8Rng, low: f64, high: f64) -> f64 {
    (low.ln() + rng.random::<f64>() * (high.ln() - low.ln())).exp()
}

/// The hourly σ of the common market factor: BTC's σ times its correlation with the factor.
fn market_hourly_vol() -> f64 {
    MAJOR_HOURLY_VOL * BTC_MARKET_CORRELATION
}

/// Hourly σ and correlation with the market factor for a base asset at `rank`.
fn dynamics_for(base: &str, rank: usize, price: f64, rng: &mut ChaCha8Rng) -> (f64, f64) {
    match base {
        "BTC" => (MAJOR_HOURLY_VOL, BTC_MARKET_CORRELATION),
        "ETH" => (
            MAJOR_HOURLY_VOL * 1.05,
            ETH_BTC_CORRELATION / BTC_MARKET_CORRELATION,
        ),
        // BNB moves like a large cap (measured σ 0.0027) but follows BTC only as loosely as the alts
        // (measured correlation 0.68).
        "BNB" => (MAJOR_HOURLY_VOL, ALT_BTC_CORRELATION / BTC_MARKET_CORRELATION),
        _ if rank < 20 => (
            ALT_HOURLY_VOL * rng.random_range(0.8..1.2),
            (ALT_BTC_CORRELATION / BTC_MARKET_CORRELATION * rng.random_range(0.85..1.15)).min(0.95),
        ),
        _ => {
            let small_coin = if price < 0.1 { 1.3 } else { 1.0 };
            (
                ALT_HOURLY_VOL * rng.random_range(1.0..1.8) * small_coin,
                rng.random_range(0.4..0.7),
            )
        }
    }
}

/// Builds the listed contracts and their models.
fn build_universe(seed: u64, n_symbols: usize) -> (Vec<SimSymbol>, Vec<ContractModel>) {
    let mut taken: HashSet<String> = HashSet::new();
    let mut symbols = Vec::with_capacity(n_symbols);
    let mut models = Vec::with_capacity(n_symbols);
    let mut next_known = 0;
    let known_price = |base: &str| KNOWN_BASES.iter().find(|(b, _)| *b == base).and_then(|(_, p)| *p);
    for rank in 0..n_symbols {
        let mut rng = rng_for(seed, rank as u64, 0, TAG_UNIVERSE);
        let special = SPECIAL_LISTINGS.iter().find(|(slot, _, _)| *slot == rank);
        let base = match special {
            Some((_, Some(base), _)) => (*base).to_owned(),
            Some((_, None, _)) => generated_base(&mut rng, &taken),
            None => loop {
                match KNOWN_BASES.get(next_known) {
                    Some((b, _)) => {
                        next_known += 1;
                        if !taken.contains(*b) {
                            break (*b).to_owned();
                        }
                    }
                    None => break generated_base(&mut rng, &taken),
                }
            },
        };
        let price_level = known_price(&base).unwrap_or_else(|| {
            if base.starts_with("1000") {
                log_uniform(&mut rng, 0.001, 0.03)
            } else if rank < 40 {
                log_uniform(&mut rng, 1.0, 100.0)
            } else if rng.random_bool(0.65) {
                log_uniform(&mut rng, 0.0001, 0.1)
            } else {
                log_uniform(&mut rng, 0.1, 10.0)
            }
        });
        let (quote, contract_type, status, name) = match special.map(|(_, _, listing)| *listing) {
            Some(Listing::OtherQuote(q)) => (q, "PERPETUAL", "TRADING", format!("{base}{q}")),
            Some(Listing::Quarterly) => (
                "USDT",
                "CURRENT_QUARTER",
                "TRADING",
                format!("{base}USDT{QUARTERLY_SUFFIX}"),
            ),
            Some(Listing::Status(s)) => ("USDT", "PERPETUAL", s, format!("{base}USDT")),
            None => ("USDT", "PERPETUAL", "TRADING", format!("{base}USDT")),
        };
        let price_level = if contract_type == "CURRENT_QUARTER" {
            price_level * 1.02
        } else {
            price_level
        };
        let decimals = price_decimals(price_level);
        let (step, quantity_precision) = quantity_step(price_level);
        let step_f64 = step.to_string().parse::<f64>().unwrap_or(1.0);
        let (hourly_vol, market_correlation) = dynamics_for(&base, rank, price_level, &mut rng);
        let beta = market_correlation * hourly_vol / market_hourly_vol();
        let idio_vol = hourly_vol * (1.0 - market_correlation * market_correlation).max(0.0).sqrt();
        let noise: f64 = rng.sample(StandardNormal);
        let daily_quote_volume = TOP_DAILY_QUOTE_VOLUME
            * ((rank + 1) as f64).powf(-VOLUME_RANK_EXPONENT)
            * (VOLUME_RANK_DISPERSION * noise).exp();
        let mean_trade_notional = TAIL_MEAN_TRADE_NOTIONAL
            * (daily_quote_volume / TAIL_DAILY_QUOTE_VOLUME).powf(TRADE_NOTIONAL_ELASTICITY);
        let price_scale = 10_f64.powi(decimals as i32);
        // Position limits around 50 M USDT of notional, in whole steps.
        let max_steps = (5.0e7 / price_level / step_f64).round().max(1.0) as i64;
        let max_qty = Decimal::from(max_steps) * step;
        let major = matches!(name.as_str(), "BTCUSDT" | "ETHUSDT");
        taken.insert(base.clone());
        symbols.push(SimSymbol {
            name,
            base_asset: base,
            quote_asset: quote.to_owned(),
            contract_type: contract_type.to_owned(),
            status: status.to_owned(),
            price_precision: decimals,
            quantity_precision,
            tick_size: Decimal::new(1, decimals),
            step_size: step,
            min_qty: step,
            max_qty,
            market_max_qty: Decimal::from((max_steps / 5).max(1)) * step,
            min_notional: Decimal::from(if major { 100 } else { 5 }),
        });
        models.push(ContractModel {
            price_scale,
            step: step_f64,
            initial_ticks: ((price_level * price_scale).round() as i64).max(1),
            beta,
            idio_vol,
            daily_quote_volume,
            mean_trade_notional,
        });
    }
    (symbols, models)
}

/// Trending (drift) or ranging (pull towards the level at which the range began).
#[derive(Debug, Clone, Copy)]
enum Regime {
    Unset,
    Trend { drift: f64 },
    Range { centre: f64 },
}

/// The sequential state of one GARCH + regime series (the market factor or a symbol's own part).
#[derive(Debug, Clone, Copy)]
struct SeriesState {
    /// Conditional variance relative to the unconditional one (mean 1).
    variance_ratio: f64,
    last_shock: f64,
    regime: Regime,
    regime_hours_left: u32,
}

impl SeriesState {
    const fn new() -> Self {
        Self {
            variance_ratio: 1.0,
            last_shock: 0.0,
            regime: Regime::Unset,
            regime_hours_left: 0,
        }
    }

    /// One hour: returns (log return, this hour's σ). `level` is the log price ranges revert to;
    /// `jump_probability` the chance of a jump of ~[`MARKET_JUMP_SIGMAS`] σ this hour.
    fn step(
        &mut self,
        rng: &mut ChaCha8Rng,
        base_vol: f64,
        vol_season: f64,
        level: f64,
        jump_probability: f64,
    ) -> (f64, f64) {
        if self.regime_hours_left == 0 {
            let trend = match self.regime {
                Regime::Unset => rng.random_bool(0.5),
                Regime::Trend { .. } => false,
                Regime::Range { .. } => true,
            };
            let mean_hours = if trend { TREND_MEAN_HOURS } else { RANGE_MEAN_HOURS };
            self.regime_hours_left =
                (REGIME_MIN_HOURS + mean_hours * standard_exponential(rng)).round() as u32;
            self.regime = if trend {
                let direction = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                Regime::Trend {
                    drift: direction * TREND_DRIFT_SIGMAS * base_vol * rng.random_range(0.5..1.5),
                }
            } else {
                Regime::Range { centre: level }
            };
        }
        self.regime_hours_left = self.regime_hours_left.saturating_sub(1);
        self.variance_ratio = ((1.0 - GARCH_ALPHA - GARCH_BETA)
            + GARCH_ALPHA * self.last_shock * self.last_shock * self.variance_ratio
            + GARCH_BETA * self.variance_ratio)
            .clamp(0.05, 25.0);
        let sigma = base_vol * self.variance_ratio.sqrt() * vol_season;
        let mut shock = standard_t(rng, HOURLY_T_DOF);
        if rng.random::<f64>() < jump_probability {
            let direction = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
            shock += direction * MARKET_JUMP_SIGMAS * rng.random_range(0.6..1.4);
        }
        self.last_shock = shock;
        let drift = match self.regime {
            Regime::Trend { drift } => drift,
            Regime::Range { centre } => -RANGE_REVERSION_PER_HOUR * (level - centre),
            Regime::Unset => 0.0,
        };
        (drift + sigma * shock, sigma)
    }

    fn is_trending(&self) -> bool {
        matches!(self.regime, Regime::Trend { .. })
    }
}

/// The close of one symbol-hour and the scales its minutes are drawn with.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    close_ticks: i64,
    /// beta × the market factor's σ for this hour.
    market_vol: f32,
    /// The symbol's own σ for this hour.
    idio_vol: f32,
    /// Volume multiplier from the volatility state and the regime (mean ≈ 1).
    activity: f32,
}

/// OHLCV of one complete hour.
#[derive(Debug, Clone, Copy)]
struct HourAggregate {
    open: i64,
    high: i64,
    low: i64,
    close: i64,
    volume: f64,
    quote_volume: f64,
    trades: u64,
}

/// One minute; prices in ticks.
#[derive(Debug, Clone, Copy, Default)]
struct MinuteBar {
    open: i64,
    high: i64,
    low: i64,
    close: i64,
    volume: f64,
    quote_volume: f64,
    trades: u32,
}

type HourMinutes = Arc<[MinuteBar; MINUTES_PER_HOUR]>;

/// The hourly path generated so far, and the state to extend it.
struct HourlyPath {
    hours: usize,
    /// `anchors[symbol][hour]`.
    anchors: Vec<Vec<Anchor>>,
    aggregates: Vec<Vec<OnceLock<HourAggregate>>>,
    /// The common intra-hour market bridge (unit scale), per hour.
    market_bridges: Vec<OnceLock<[f32; MINUTES_PER_HOUR + 1]>>,
    market_state: SeriesState,
    market_level: f64,
    symbol_states: Vec<SeriesState>,
    log_prices: Vec<f64>,
}

impl HourlyPath {
    fn new(models: &[ContractModel]) -> Self {
        Self {
            hours: 0,
            anchors: vec![Vec::new(); models.len()],
            aggregates: models.iter().map(|_| Vec::new()).collect(),
            market_bridges: Vec::new(),
            market_state: SeriesState::new(),
            market_level: 0.0,
            symbol_states: vec![SeriesState::new(); models.len()],
            log_prices: models.iter().map(|m| m.price(m.initial_ticks).ln()).collect(),
        }
    }

    fn extend_to(&mut self, target_hours: usize, seed: u64, earliest: TimestampMs, models: &[ContractModel]) {
        let market_vol = market_hourly_vol();
        for hour in self.hours..target_hours {
            let season = seasonal_volume_factor(earliest + hour as i64 * HOUR_MS);
            let vol_season = season.powf(VOL_SEASONALITY_EXPONENT);
            let mut market_rng = rng_for(seed, MARKET_STREAM, hour as u64, TAG_HOUR);
            let (market_return, market_sigma) = self.market_state.step(
                &mut market_rng,
                market_vol,
                vol_season,
                self.market_level,
                MARKET_JUMP_PROBABILITY,
            );
            self.market_level += market_return;
            for (index, model) in models.iter().enumerate() {
                let mut rng = rng_for(seed, index as u64, hour as u64, TAG_HOUR);
                let state = &mut self.symbol_states[index];
                let log_price = self.log_prices[index];
                let (own_return, own_sigma) =
                    state.step(&mut rng, model.idio_vol, vol_season, log_price, 0.0);
                let log_price = log_price + model.beta * market_return + own_return;
                self.log_prices[index] = log_price;
                let sigma_now = (model.beta * market_sigma).hypot(own_sigma);
                let sigma_base = (model.beta * market_vol).hypot(model.idio_vol);
                let regime_factor = if state.is_trending() || self.market_state.is_trending() {
                    1.15
                } else {
                    0.9
                };
                let activity =
                    (sigma_now / (sigma_base * vol_season)).powf(VOLUME_VOL_ELASTICITY) * regime_factor;
                self.anchors[index].push(Anchor {
                    close_ticks: model.ticks(log_price.exp()),
                    market_vol: (model.beta * market_sigma) as f32,
                    idio_vol: own_sigma as f32,
                    activity: activity as f32,
                });
                self.aggregates[index].push(OnceLock::new());
            }
            self.market_bridges.push(OnceLock::new());
        }
        self.hours = self.hours.max(target_hours);
    }
}

/// A seeded standard-t random walk of 60 steps pinned to 0 at both ends.
fn unit_bridge(rng: &mut ChaCha8Rng) -> [f32; MINUTES_PER_HOUR + 1] {
    let mut walk = [0.0_f64; MINUTES_PER_HOUR + 1];
    for k in 1..=MINUTES_PER_HOUR {
        walk[k] = walk[k - 1] + standard_t(rng, MINUTE_T_DOF);
    }
    let end = walk[MINUTES_PER_HOUR];
    let mut bridge = [0.0_f32; MINUTES_PER_HOUR + 1];
    for (k, b) in bridge.iter_mut().enumerate() {
        *b = (walk[k] - end * k as f64 / MINUTES_PER_HOUR as f64) as f32;
    }
    bridge[MINUTES_PER_HOUR] = 0.0;
    bridge
}

/// Running OHLCV of a span of minutes and hours.
#[derive(Debug, Clone, Copy)]
struct Accumulator {
    open: Option<i64>,
    high: i64,
    low: i64,
    close: i64,
    volume: f64,
    quote_volume: f64,
    trades: u64,
}

impl Accumulator {
    const fn new() -> Self {
        Self {
            open: None,
            high: i64::MIN,
            low: i64::MAX,
            close: 0,
            volume: 0.0,
            quote_volume: 0.0,
            trades: 0,
        }
    }

    fn add_minute(&mut self, m: &MinuteBar) {
        self.add_hour(&HourAggregate {
            open: m.open,
            high: m.high,
            low: m.low,
            close: m.close,
            volume: m.volume,
            quote_volume: m.quote_volume,
            trades: u64::from(m.trades),
        });
    }

    fn add_hour(&mut self, h: &HourAggregate) {
        self.open.get_or_insert(h.open);
        self.high = self.high.max(h.high);
        self.low = self.low.min(h.low);
        self.close = h.close;
        self.volume += h.volume;
        self.quote_volume += h.quote_volume;
        self.trades += h.trades;
    }
}

fn aggregate_minutes(minutes: &[MinuteBar]) -> HourAggregate {
    let mut acc = Accumulator::new();
    for m in minutes {
        acc.add_minute(m);
    }
    HourAggregate {
        open: acc.open.unwrap_or(0),
        high: acc.high,
        low: acc.low,
        close: acc.close,
        volume: acc.volume,
        quote_volume: acc.quote_volume,
        trades: acc.trades,
    }
}

/// A calibrated synthetic market of `n_symbols` contracts (see the module documentation).
pub struct SyntheticMarket {
    seed: u64,
    symbols: Vec<SimSymbol>,
    models: Vec<ContractModel>,
    earliest: TimestampMs,
    start: TimestampMs,
    end: TimestampMs,
    max_hours: usize,
    minute_noise: f64,
    path: RwLock<HourlyPath>,
    minute_cache: Vec<Mutex<Vec<(usize, HourMinutes)>>>,
}

impl fmt::Debug for SyntheticMarket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyntheticMarket")
            .field("seed", &self.seed)
            .field("symbols", &self.symbols.len())
            .field("earliest", &self.earliest)
            .field("start", &self.start)
            .field("end", &self.end)
            .field("generated_hours", &self.generated_hours())
            .finish_non_exhaustive()
    }
}

impl SyntheticMarket {
    /// A market of `n_symbols` contracts whose clock starts at `start_time`, with `history_ms` of
    /// history before it (rounded out to a UTC midnight, so daily bars are whole). The same seed always
    /// gives the same market.
    pub fn new(seed: u64, n_symbols: usize, start_time: TimestampMs, history_ms: i64) -> Self {
        let earliest = (start_time - history_ms.max(0)).div_euclid(DAY_MS) * DAY_MS;
        let end = start_time + SIMULATION_HORIZON_MS;
        let (symbols, models) = build_universe(seed, n_symbols);
        let max_hours = ((end - earliest) / HOUR_MS) as usize;
        let market = Self {
            seed,
            minute_cache: models.iter().map(|_| Mutex::new(Vec::new())).collect(),
            symbols,
            models,
            earliest,
            start: start_time,
            end,
            max_hours,
            minute_noise: minute_noise_factor(),
            path: RwLock::new(HourlyPath::new(&[])),
        };
        {
            let mut path = market.path.write().unwrap_or_else(PoisonError::into_inner);
            *path = HourlyPath::new(&market.models);
            let first_hours = market.hour_index(start_time) + 1 + EXTEND_CHUNK_HOURS;
            path.extend_to(first_hours.min(max_hours), seed, earliest, &market.models);
        }
        market
    }

    /// Hours of the path generated so far (grows as simulated time advances).
    pub fn generated_hours(&self) -> usize {
        self.path.read().unwrap_or_else(PoisonError::into_inner).hours
    }

    /// Approximate heap bytes held by the hourly path and its caches.
    pub fn approximate_memory_bytes(&self) -> usize {
        let path = self.path.read().unwrap_or_else(PoisonError::into_inner);
        let per_symbol_hour = size_of::<Anchor>() + size_of::<OnceLock<HourAggregate>>();
        let per_hour = size_of::<OnceLock<[f32; MINUTES_PER_HOUR + 1]>>();
        let cached_minutes = self
            .minute_cache
            .iter()
            .map(|c| c.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum::<usize>();
        path.anchors.iter().map(Vec::capacity).sum::<usize>() * per_symbol_hour
            + path.market_bridges.capacity() * per_hour
            + cached_minutes * size_of::<[MinuteBar; MINUTES_PER_HOUR]>()
    }

    fn hour_index(&self, t: TimestampMs) -> usize {
        ((t - self.earliest).max(0) / HOUR_MS) as usize
    }

    /// A read guard on a path covering at least `hours` hours (capped at the horizon).
    fn path_covering(&self, hours: usize) -> RwLockReadGuard<'_, HourlyPath> {
        let needed = hours.min(self.max_hours);
        let guard = self.path.read().unwrap_or_else(PoisonError::into_inner);
        if guard.hours >= needed {
            return guard;
        }
        drop(guard);
        {
            let mut path = self.path.write().unwrap_or_else(PoisonError::into_inner);
            if path.hours < needed {
                let target = (needed + EXTEND_CHUNK_HOURS).min(self.max_hours);
                path.extend_to(target, self.seed, self.earliest, &self.models);
            }
        }
        self.path.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The open of hour `hour` of `symbol`: the previous hour's close, or the initial price.
    fn hour_open(&self, path: &HourlyPath, symbol: usize, hour: usize) -> i64 {
        hour.checked_sub(1)
            .and_then(|h| path.anchors[symbol].get(h))
            .map_or(self.models[symbol].initial_ticks, |a| a.close_ticks)
    }

    /// The 60 minutes of `hour` of `symbol` (the path must cover `hour`).
    fn generate_minutes(
        &self,
        path: &HourlyPath,
        symbol: usize,
        hour: usize,
    ) -> [MinuteBar; MINUTES_PER_HOUR] {
        let model = &self.models[symbol];
        let anchor = path.anchors[symbol][hour];
        let open_ticks = self.hour_open(path, symbol, hour);
        let market_bridge = path.market_bridges[hour]
            .get_or_init(|| unit_bridge(&mut rng_for(self.seed, MARKET_STREAM, hour as u64, TAG_MINUTES)));
        let mut rng = rng_for(self.seed, symbol as u64, hour as u64, TAG_MINUTES);
        let own_bridge = unit_bridge(&mut rng);
        let per_minute = self.minute_noise / (MINUTES_PER_HOUR as f64).sqrt();
        let market_scale = f64::from(anchor.market_vol) * per_minute;
        let own_scale = f64::from(anchor.idio_vol) * per_minute;
        let minute_sigma = market_scale.hypot(own_scale).max(1e-9);
        let start = model.price(open_ticks).ln();
        let end = model.price(anchor.close_ticks).ln();
        let hour_start = self.earliest + hour as i64 * HOUR_MS;
        let base_quote = model.daily_quote_volume / 1440.0
            * seasonal_volume_factor(hour_start)
            * f64::from(anchor.activity);
        // Mean |z| of a unit-variance t(3): 2√3/π / √3 = 2/π.
        let mean_abs_move = 2.0 / std::f64::consts::PI;
        let mut minutes = [MinuteBar::default(); MINUTES_PER_HOUR];
        let mut previous_log = start;
        let mut previous_close = open_ticks;
        for (k, minute) in minutes.iter_mut().enumerate() {
            let step = k + 1;
            let log_price = start
                + (end - start) * step as f64 / MINUTES_PER_HOUR as f64
                + market_scale * f64::from(market_bridge[step])
                + own_scale * f64::from(own_bridge[step]);
            let close = if step == MINUTES_PER_HOUR {
                anchor.close_ticks
            } else {
                model.ticks(log_price.exp())
            };
            let open = previous_close;
            let top = open.max(close);
            let bottom = open.min(close);
            let up_wick = MINUTE_WICK_SIGMAS * minute_sigma * standard_exponential(&mut rng);
            let down_wick = MINUTE_WICK_SIGMAS * minute_sigma * standard_exponential(&mut rng);
            let high = top + (model.price(top) * up_wick.exp_m1() * model.price_scale).floor() as i64;
            let low = (bottom
                - (model.price(bottom) * (-(-down_wick).exp_m1()) * model.price_scale).floor() as i64)
                .max(1);
            let move_size = (log_price - previous_log).abs() / minute_sigma / mean_abs_move;
            let noise: f64 = rng.sample(StandardNormal);
            let quote_target = base_quote
                * ((1.0 - VOLUME_MOVE_SHARE) + VOLUME_MOVE_SHARE * move_size.min(20.0))
                * (0.3 * noise - 0.045).exp();
            let typical = (model.price(high) + model.price(low) + model.price(close)) / 3.0;
            let volume = (quote_target / typical / model.step).round().max(1.0) * model.step;
            let quote_volume = volume * typical;
            let trades = (quote_volume / model.mean_trade_notional)
                .round()
                .clamp(1.0, f64::from(u32::MAX));
            *minute = MinuteBar {
                open,
                high,
                low,
                close,
                volume,
                quote_volume,
                trades: trades as u32,
            };
            previous_log = log_price;
            previous_close = close;
        }
        minutes
    }

    /// The minutes of an hour through the per-symbol cache.
    fn minutes(&self, path: &HourlyPath, symbol: usize, hour: usize) -> HourMinutes {
        let mut cache = self.minute_cache[symbol]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(position) = cache.iter().position(|(h, _)| *h == hour) {
            let entry = cache.remove(position);
            let minutes = Arc::clone(&entry.1);
            cache.insert(0, entry);
            return minutes;
        }
        let minutes: HourMinutes = Arc::new(self.generate_minutes(path, symbol, hour));
        path.aggregates[symbol][hour].get_or_init(|| aggregate_minutes(minutes.as_slice()));
        cache.insert(0, (hour, Arc::clone(&minutes)));
        cache.truncate(MINUTE_CACHE_HOURS);
        minutes
    }

    fn hour_aggregate<'a>(&self, path: &'a HourlyPath, symbol: usize, hour: usize) -> &'a HourAggregate {
        path.aggregates[symbol][hour]
            .get_or_init(|| aggregate_minutes(&self.generate_minutes(path, symbol, hour)))
    }

    /// The minute as it looked `elapsed` ms after its open (0 ..= 59 999): a seeded path from the open
    /// through the high and the low (in a seeded order) to the close.
    fn partial_minute(
        &self,
        symbol: usize,
        minute_open: TimestampMs,
        minute: &MinuteBar,
        elapsed: i64,
    ) -> MinuteBar {
        let last_ms = MINUTE_MS - 1;
        if elapsed >= last_ms {
            return *minute;
        }
        let bits = mix([self.seed, symbol as u64, minute_open as u64, TAG_PATH]);
        // A falling minute more often makes its high first.
        let high_first_probability = if minute.close < minute.open { 0.7 } else { 0.3 };
        let high_first = unit_of(bits) < high_first_probability;
        let first_at = 1 + (splitmix64(bits) % 29_999) as i64;
        let second_at = first_at + 1 + (splitmix64(bits ^ 0x5555) % (last_ms - first_at - 1) as u64) as i64;
        let (first, second) = if high_first {
            (minute.high, minute.low)
        } else {
            (minute.low, minute.high)
        };
        let waypoints = [
            (0, minute.open),
            (first_at, first),
            (second_at, second),
            (last_ms, minute.close),
        ];
        let mut high = minute.open;
        let mut low = minute.open;
        let mut price = minute.open;
        for pair in waypoints.windows(2) {
            let ((t0, p0), (t1, p1)) = (pair[0], pair[1]);
            if elapsed >= t1 {
                high = high.max(p1);
                low = low.min(p1);
                price = p1;
            } else {
                let fraction = (elapsed - t0) as f64 / (t1 - t0) as f64;
                price = (p0 as f64 + (p1 - p0) as f64 * fraction).round() as i64;
                high = high.max(price);
                low = low.min(price);
                break;
            }
        }
        let share = (elapsed + 1) as f64 / MINUTE_MS as f64;
        MinuteBar {
            open: minute.open,
            high,
            low,
            close: price,
            volume: minute.volume * share,
            quote_volume: minute.quote_volume * share,
            trades: (f64::from(minute.trades) * share).floor() as u32,
        }
    }

    /// OHLCV of `symbol` from `from` (minute-aligned, ≥ earliest) through `to` inclusive.
    fn accumulate(&self, symbol: usize, from: TimestampMs, to: TimestampMs) -> Option<Accumulator> {
        let path = self.path_covering(self.hour_index(to) + 1);
        let mut acc = Accumulator::new();
        let mut t = from;
        while t <= to {
            let hour = self.hour_index(t);
            if hour >= path.hours {
                break;
            }
            let hour_start = self.earliest + hour as i64 * HOUR_MS;
            if t == hour_start && hour_start + HOUR_MS - 1 <= to {
                acc.add_hour(self.hour_aggregate(&path, symbol, hour));
                t += HOUR_MS;
                continue;
            }
            let minutes = self.minutes(&path, symbol, hour);
            while t <= to && t < hour_start + HOUR_MS {
                let minute = &minutes[((t - hour_start) / MINUTE_MS) as usize];
                if t + MINUTE_MS - 1 <= to {
                    acc.add_minute(minute);
                } else {
                    acc.add_minute(&self.partial_minute(symbol, t, minute, to - t));
                }
                t += MINUTE_MS;
            }
        }
        acc.open.is_some().then_some(acc)
    }

    fn to_bar(
        &self,
        symbol: usize,
        acc: &Accumulator,
        open_time: TimestampMs,
        close_time: TimestampMs,
        closed: bool,
    ) -> Bar {
        let model = &self.models[symbol];
        Bar {
            open_time,
            close_time,
            open: model.price(acc.open.unwrap_or(model.initial_ticks)),
            high: model.price(acc.high),
            low: model.price(acc.low),
            close: model.price(acc.close),
            volume: acc.volume,
            quote_volume: acc.quote_volume,
            trades: acc.trades,
            closed,
        }
    }

    /// `now` clamped to the market's lifetime.
    fn clamp_now(&self, now: TimestampMs) -> TimestampMs {
        now.min(self.end - 1)
    }
}

impl MarketSource for SyntheticMarket {
    fn symbols(&self) -> &[SimSymbol] {
        &self.symbols
    }

    fn earliest(&self) -> TimestampMs {
        self.earliest
    }

    fn start_time(&self) -> TimestampMs {
        self.start
    }

    fn end_time(&self) -> Option<TimestampMs> {
        Some(self.end)
    }

    fn bar(
        &self,
        symbol: usize,
        interval: Interval,
        open_time: TimestampMs,
        now: TimestampMs,
    ) -> Option<Bar> {
        if symbol >= self.symbols.len()
            || open_time < self.earliest
            || open_time > now
            || open_time >= self.end
            || interval.open_time_of(open_time) != open_time
        {
            return None;
        }
        let close_time = interval.close_time(open_time);
        let upto = self.clamp_now(now.min(close_time));
        let acc = self.accumulate(symbol, open_time, upto)?;
        Some(self.to_bar(symbol, &acc, open_time, close_time, now > close_time))
    }

    fn last_price(&self, symbol: usize, now: TimestampMs) -> f64 {
        let Some(model) = self.models.get(symbol) else {
            return 0.0;
        };
        if now < self.earliest {
            return model.price(model.initial_ticks);
        }
        let now = self.clamp_now(now);
        let minute_open = Interval::M1.open_time_of(now);
        self.accumulate(symbol, minute_open, now)
            .map_or_else(|| model.price(model.initial_ticks), |acc| model.price(acc.close))
    }

    fn ticker_24h(&self, symbol: usize, now: TimestampMs) -> Ticker24h {
        let last = self.last_price(symbol, now);
        let now = self.clamp_now(now);
        let from = (Interval::H1.open_time_of(now) - 23 * HOUR_MS).max(self.earliest);
        let acc = (symbol < self.symbols.len() && now >= self.earliest)
            .then(|| self.accumulate(symbol, from, now))
            .flatten();
        match acc {
            Some(acc) => {
                let bar = self.to_bar(symbol, &acc, from, now, false);
                Ticker24h {
                    open_time: from,
                    close_time: now,
                    open: bar.open,
                    high: bar.high,
                    low: bar.low,
                    last: bar.close,
                    volume: bar.volume,
                    quote_volume: bar.quote_volume,
                    trades: bar.trades,
                }
            }
            None => Ticker24h {
                open_time: from,
                close_time: now,
                open: last,
                high: last,
                low: last,
                last,
                volume: 0.0,
                quote_volume: 0.0,
                trades: 0,
            },
        }
    }

    fn mark(&self, symbol: usize, now: TimestampMs) -> MarkInfo {
        let last = self.last_price(symbol, now);
        let minute = now.div_euclid(MINUTE_MS) as u64;
        let basis_bits = mix([self.seed, symbol as u64, minute, TAG_BASIS]);
        // Index within ±1 bp of the last trade, mark within a further ±2 bp: a calm, liquid book.
        let index_basis = (unit_of(basis_bits) - 0.5) * 2.0e-4;
        let premium = (unit_of(splitmix64(basis_bits)) - 0.5) * 4.0e-4;
        let period = now.div_euclid(FUNDING_PERIOD_MS) as u64;
        let funding_bits = mix([self.seed, symbol as u64, period, TAG_FUNDING]);
        // Sum of four uniforms: a bell around the base rate, ±0.8 bp at the extremes.
        let bell: f64 = (0..4)
            .map(|i| unit_of(splitmix64(funding_bits.wrapping_add(i))))
            .sum::<f64>()
            - 2.0;
        let funding_rate = ((BASE_FUNDING_RATE + bell * 4.0e-5) * 1e8).round() / 1e8;
        let (index_price, mark_price) = match self.models.get(symbol) {
            Some(model) => {
                let index = model.price(model.ticks(last * (1.0 + index_basis)));
                (index, model.price(model.ticks(index * (1.0 + premium))))
            }
            None => (last, last),
        };
        MarkInfo {
            mark_price,
            index_price,
            funding_rate,
            next_funding_time: next_funding_time(now),
        }
    }
}

#[cfg(test)]
mod tests {

    use proptest::prelude::*;

    use super::*;

    /// 2024-01-10 00:00 UTC.
    const START: TimestampMs = 1_704_844_800_000;

    fn small_market(seed: u64) -> SyntheticMarket {
        SyntheticMarket::new(seed, 12, START, 3 * DAY_MS)
    }

    fn assert_bars_close(a: &Bar, b: &Bar, what: &str) {
        assert_eq!(
            (
                a.open_time,
                a.close_time,
                a.open,
                a.high,
                a.low,
                a.close,
                a.trades
            ),
            (
                b.open_time,
                b.close_time,
                b.open,
                b.high,
                b.low,
                b.close,
                b.trades
            ),
            "{what}"
        );
        assert!(
            (a.volume - b.volume).abs() <= 1e-9 * a.volume.max(1.0),
            "{what}: volume {} vs {}",
            a.volume,
            b.volume
        );
        assert!(
            (a.quote_volume - b.quote_volume).abs() <= 1e-9 * a.quote_volume.max(1.0),
            "{what}: quote volume {} vs {}",
            a.quote_volume,
            b.quote_volume
        );
    }

    /// The bars summed into one, with the times and flag of `template`.
    fn aggregate_bars(bars: &[Bar], template: &Bar) -> Bar {
        Bar {
            open: bars[0].open,
            high: bars.iter().map(|b| b.high).fold(f64::MIN, f64::max),
            low: bars.iter().map(|b| b.low).fold(f64::MAX, f64::min),
            close: bars[bars.len() - 1].close,
            volume: bars.iter().map(|b| b.volume).sum(),
            quote_volume: bars.iter().map(|b| b.quote_volume).sum(),
            trades: bars.iter().map(|b| b.trades).sum(),
            ..*template
        }
    }

    #[test]
    fn universe_has_realistic_names_filters_and_a_few_non_tradable_contracts() {
        let market = SyntheticMarket::new(7, DEFAULT_SYMBOL_COUNT, START, DEFAULT_HISTORY_MS);
        let symbols = market.symbols();
        assert_eq!(symbols.len(), 260);
        assert_eq!(&symbols[0].name, "BTCUSDT");
        assert_eq!(&symbols[1].name, "ETHUSDT");
        assert_eq!(&symbols[2].name, "SOLUSDT");
        let names: HashSet<&str> = symbols.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.len(), symbols.len(), "names are unique");
        assert!(names.contains("BTCUSDT_261225") && names.contains("BTCBUSD") && names.contains("ETHUSDC"));
        let tradable = symbols
            .iter()
            .filter(|s| s.status == "TRADING" && s.quote_asset == "USDT" && s.contract_type == "PERPETUAL")
            .count();
        assert!(
            (240..=250).contains(&tradable),
            "{tradable} tradable USDT perpetuals"
        );
        for status in ["SETTLING", "PENDING_TRADING"] {
            assert!(
                symbols.iter().filter(|s| s.status == status).count() >= 2,
                "{status}"
            );
        }
        assert!(
            symbols
                .iter()
                .filter(|s| s.contract_type == "CURRENT_QUARTER")
                .count()
                >= 3
        );
        assert!(symbols.iter().filter(|s| s.quote_asset != "USDT").count() >= 4);
        let btc = &symbols[0];
        assert_eq!(
            (btc.tick_size, btc.step_size, btc.price_precision),
            (Decimal::new(1, 1), Decimal::new(1, 3), 1)
        );
        assert_eq!(btc.min_notional, Decimal::from(100));
        assert_eq!(symbols[1].tick_size, Decimal::new(1, 2));
        assert_eq!(symbols[5].min_notional, Decimal::from(5));
        let tail_prices: Vec<f64> = (0..symbols.len()).map(|s| market.last_price(s, START)).collect();
        assert!(
            (50_000.0..70_000.0).contains(&tail_prices[0]),
            "BTC at {}",
            tail_prices[0]
        );
        assert!(
            tail_prices.iter().filter(|&&p| p < 0.1).count() > 80,
            "a long tail of small coins"
        );
        for (symbol, price) in symbols.iter().zip(&tail_prices) {
            assert_eq!(
                symbol.tick_size,
                Decimal::new(1, symbol.price_precision),
                "{}",
                symbol.name
            );
            assert_eq!(
                symbol.step_size.scale(),
                symbol.quantity_precision,
                "{}",
                symbol.name
            );
            assert!(symbol.min_qty == symbol.step_size && symbol.max_qty > symbol.market_max_qty);
            // At least ~1000 ticks per price: ticks are fine enough to trade.
            let tick: f64 = symbol.tick_size.to_string().parse().expect("tick");
            assert!(
                price / tick >= 500.0,
                "{} at {price} with tick {tick}",
                symbol.name
            );
        }
    }

    #[test]
    fn quote_volumes_are_heavy_tailed_with_clear_ranks() {
        let market = SyntheticMarket::new(11, DEFAULT_SYMBOL_COUNT, START, 2 * DAY_MS);
        let volumes: Vec<f64> = (0..260)
            .map(|s| market.ticker_24h(s, START).quote_volume)
            .collect();
        assert!(
            volumes[0] > 3.0e9 && volumes[0] < 5.0e10,
            "BTC 24h quote volume {}",
            volumes[0]
        );
        assert!(volumes[1] > 1.0e9, "ETH {}", volumes[1]);
        let mut sorted = volumes.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        assert_eq!(sorted[0], volumes[0], "BTC trades the most");
        assert!(
            sorted[199] > 1.0e6 && sorted[199] < 3.0e7,
            "200th largest {}",
            sorted[199]
        );
        assert!(
            sorted[0] / sorted[199] > 300.0,
            "top / 200th = {}",
            sorted[0] / sorted[199]
        );
        // Ranks are clear: the top decile trades far more than the median contract.
        assert!(sorted[25] > 5.0 * sorted[130]);
    }

    #[test]
    fn answers_do_not_depend_on_query_order() {
        let queries: Vec<(usize, Interval, TimestampMs, TimestampMs)> = (0..60)
            .map(|i| {
                let interval = [
                    Interval::M1,
                    Interval::M5,
                    Interval::M15,
                    Interval::H1,
                    Interval::H4,
                    Interval::D1,
                ][i % 6];
                let now = START + (i as i64 * 7_919_317) % (2 * DAY_MS) - DAY_MS;
                let open = interval.open_time_of(now - (i as i64 % 3) * 3_600_000);
                (i % 12, interval, open, now)
            })
            .collect();
        let forward = small_market(99);
        let backward = small_market(99);
        let a: Vec<Option<Bar>> = queries
            .iter()
            .map(|&(s, i, o, n)| forward.bar(s, i, o, n))
            .collect();
        // The second instance first runs far ahead in time, then answers in reverse order.
        let _ = backward.last_price(3, START + 20 * DAY_MS);
        let mut b: Vec<Option<Bar>> = queries
            .iter()
            .rev()
            .map(|&(s, i, o, n)| backward.bar(s, i, o, n))
            .collect();
        b.reverse();
        assert_eq!(a, b);
        assert!(a.iter().all(Option::is_some));
        let other_seed = small_market(100);
        assert_ne!(
            a[0],
            other_seed.bar(queries[0].0, queries[0].1, queries[0].2, queries[0].3)
        );
    }

    #[test]
    fn bars_aggregate_exactly_across_intervals() {
        let market = small_market(5);
        let now = START + 3 * DAY_MS;
        for symbol in [0, 4, 11] {
            let hour = START + 5 * HOUR_MS;
            let hourly = market.bar(symbol, Interval::H1, hour, now).expect("1h");
            for (interval, count) in [(Interval::M1, 60), (Interval::M5, 12), (Interval::M15, 4)] {
                let parts: Vec<Bar> = (0..count)
                    .map(|k| {
                        market
                            .bar(
                                symbol,
                                interval,
                                hour + k * interval.fixed_millis().unwrap_or(0),
                                now,
                            )
                            .expect("part")
                    })
                    .collect();
                let rebuilt = aggregate_bars(&parts, &hourly);
                assert_bars_close(&hourly, &rebuilt, &format!("1h from {interval}"));
            }
            let day = market.bar(symbol, Interval::D1, START, now).expect("1d");
            let hours: Vec<Bar> = (0..24)
                .map(|k| {
                    market
                        .bar(symbol, Interval::H1, START + k * HOUR_MS, now)
                        .expect("1h")
                })
                .collect();
            assert_bars_close(&day, &aggregate_bars(&hours, &day), "1d");
            // A month bar opening before the earliest data does not exist; the 3-day history does.
            assert!(
                market
                    .bar(symbol, Interval::Mo1, Interval::Mo1.open_time_of(START), now)
                    .is_none()
            );
        }
    }

    #[test]
    fn klines_walk_is_ordered_contiguous_and_starts_at_earliest() {
        let market = small_market(3);
        let now = START + 90 * MINUTE_MS + 12_345;
        for interval in [
            Interval::M1,
            Interval::M5,
            Interval::M15,
            Interval::H1,
            Interval::H4,
            Interval::D1,
        ] {
            let mut bars = Vec::new();
            let mut t = interval.open_time_of(market.earliest() - 1);
            while t <= now {
                if let Some(bar) = market.bar(2, interval, t, now) {
                    bars.push(bar);
                }
                t = interval.next_open(t);
            }
            assert_eq!(
                bars[0].open_time,
                market.earliest(),
                "{interval}: first bar at earliest"
            );
            for pair in bars.windows(2) {
                assert!(
                    pair[0].open_time < pair[1].open_time,
                    "{interval}: strictly ordered"
                );
                assert_eq!(
                    pair[0].close_time + 1,
                    pair[1].open_time,
                    "{interval}: contiguous"
                );
                assert_eq!(
                    pair[0].close, pair[1].open,
                    "{interval}: each bar opens at the previous close"
                );
            }
            let last = bars.last().expect("bars");
            assert!(
                !last.closed && bars[..bars.len() - 1].iter().all(|b| b.closed),
                "{interval}: only the last is open"
            );
            assert_eq!(
                last.close,
                market.last_price(2, now),
                "{interval}: partial close is the last price"
            );
        }
        assert!(
            market
                .bar(0, Interval::M1, market.earliest() - MINUTE_MS, now)
                .is_none()
        );
        assert!(market.bar(0, Interval::M1, now + MINUTE_MS, now).is_none());
        assert!(
            market.bar(0, Interval::M5, START + MINUTE_MS, now).is_none(),
            "misaligned open"
        );
        assert!(
            market.bar(12, Interval::M1, START, now).is_none(),
            "unknown symbol"
        );
    }

    #[test]
    fn ticker_mark_and_funding_are_consistent_with_bars() {
        let market = small_market(21);
        let now = START + 13 * HOUR_MS + 17 * MINUTE_MS + 4_321;
        let ticker = market.ticker_24h(1, now);
        let last = market.last_price(1, now);
        assert_eq!(ticker.last, last);
        assert_eq!(ticker.open_time, START - 10 * HOUR_MS);
        let hours: Vec<Bar> = (0..24)
            .map(|k| {
                market
                    .bar(1, Interval::H1, ticker.open_time + k * HOUR_MS, now)
                    .expect("hour")
            })
            .collect();
        let day = aggregate_bars(&hours, &hours[0]);
        assert_eq!(
            (ticker.open, ticker.high, ticker.low, ticker.last, ticker.trades),
            (day.open, day.high, day.low, day.close, day.trades)
        );
        assert!((ticker.volume - day.volume).abs() < 1e-9 * day.volume);
        let mark = market.mark(1, now);
        assert!((mark.mark_price / last - 1.0).abs() < 5e-4 && (mark.index_price / last - 1.0).abs() < 2e-4);
        assert!((-0.0005..0.001).contains(&mark.funding_rate));
        assert_eq!(mark.next_funding_time, START + 16 * HOUR_MS);
        assert_eq!(next_funding_time(START), START + 8 * HOUR_MS);
        assert_eq!(market.mark(1, now), market.mark(1, now));
        let rates: HashSet<u64> = (0..30)
            .map(|k| {
                market
                    .mark(1, START + k * FUNDING_PERIOD_MS)
                    .funding_rate
                    .to_bits()
            })
            .collect();
        assert!(rates.len() > 5, "funding varies between periods");
    }

    #[test]
    fn regimes_leave_trends_and_ranges_in_the_hourly_path() {
        // Over 60 days, 24h returns should sometimes be large (trends) and the path should both break
        // above previous 48h highs and stay inside them (ranges).
        let market = SyntheticMarket::new(8, 3, START, 60 * DAY_MS);
        let closes: Vec<f64> = (0..60 * 24)
            .map(|k| {
                market
                    .bar(1, Interval::H1, market.earliest() + k * HOUR_MS, START)
                    .expect("h")
                    .close
            })
            .collect();
        let breaks = (48..closes.len())
            .filter(|&i| closes[i] > closes[i - 48..i].iter().copied().fold(0.0, f64::max))
            .count();
        let inside = closes.len() - 48 - breaks;
        assert!(breaks > 30 && inside > 300, "breaks {breaks}, inside {inside}");
    }

    /// The whole start-up back-fill (500 bars × 3 timeframes × 200 symbols) is served, and memory
    /// stays modest. Its speed is measured by the `sim_market` criterion bench, not here.
    #[test]
    fn start_up_backfill_is_complete_and_memory_modest() {
        let market = SyntheticMarket::new(1, DEFAULT_SYMBOL_COUNT, START, DEFAULT_HISTORY_MS);
        let now = START + 1_234;
        let mut bars = 0;
        for symbol in 0..200 {
            for interval in [Interval::M5, Interval::M15, Interval::H1] {
                let step = interval.fixed_millis().unwrap_or(0);
                let last_open = interval.open_time_of(now);
                for k in (0..500).rev() {
                    if market.bar(symbol, interval, last_open - k * step, now).is_some() {
                        bars += 1;
                    }
                }
            }
        }
        assert_eq!(bars, 300_000);
        let memory = market.approximate_memory_bytes();
        assert!(memory < 50_000_000, "{memory} bytes");
        for symbol in 0..260 {
            let t = market.ticker_24h(symbol, now + 1_000);
            assert!(
                t.low <= t.last && t.last <= t.high && t.quote_volume > 0.0,
                "{t:?}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn partial_bars_are_prefixes_of_the_final_bar(
            symbol in 0_usize..12,
            interval_index in 0_usize..8,
            offset_ms in 0_i64..2 * DAY_MS,
            fraction in 0.0_f64..1.0,
        ) {
            let intervals = [Interval::M1, Interval::M3, Interval::M5, Interval::M15, Interval::H1, Interval::H4, Interval::D1, Interval::W1];
            let interval = intervals[interval_index];
            let market = small_market(77);
            let open = interval.open_time_of(market.earliest() + offset_ms + DAY_MS);
            let close_time = interval.close_time(open);
            let now = open + ((close_time - open) as f64 * fraction) as i64;
            let final_bar = market.bar(symbol, interval, open, close_time + 1);
            let partial = market.bar(symbol, interval, open, now);
            if open < market.earliest() {
                prop_assert!(final_bar.is_none() && partial.is_none());
            } else {
                let final_bar = final_bar.expect("final");
                let partial = partial.expect("partial");
                prop_assert!(final_bar.closed && !partial.closed);
                prop_assert_eq!(partial.open, final_bar.open);
                prop_assert!(partial.high <= final_bar.high && partial.low >= final_bar.low);
                prop_assert!(partial.low <= partial.close && partial.close <= partial.high);
                prop_assert!(partial.volume <= final_bar.volume * (1.0 + 1e-12));
                prop_assert_eq!(partial.close, market.last_price(symbol, now));
                let at_close = market.bar(symbol, interval, open, close_time).expect("at close");
                prop_assert_eq!(Bar { closed: true, ..at_close }, final_bar);
            }
        }
    }
}
