//! The figures the synthetic market is built from, and the measurement that justifies them.
//!
//! The synthetic market (`sim::synthetic`) should look like a real crypto futures market to the
//! strategy and the ML stack: fat-tailed returns, volatility that clusters, symbols that move together,
//! more volume in the US session than in the Asian night. Rather than pick those figures by taste,
//! [`calibrate`] measures them on real Binance USDT-M klines (the shared `usdm_alpergulsen` bundle: BTC,
//! ETH, BNB, SOL, XRP, ADA, DOGE, Jul–Aug 2023) and the constants below are copied from its output.
//! A test re-runs the measurement and fails if a constant drifts from the data; another runs the
//! synthetic market and checks it reproduces the same stylised facts. `docs/sim-calibration.md` holds
//! the full table and the command that regenerates it (`perpdesk sim --calibrate DIR`).
//!
//! Measured on the bundle (σ = standard deviation of log returns; ACF1 = lag-1 autocorrelation):
//!
//! | symbol | σ 1h | excess kurtosis 1h | excess kurtosis 1m | ACF1 of r² (1h) | corr with BTC | beta | σ1m·√60 / σ1h | median (H−L)/C 1m | median range / σ1m |
//! |---|---|---|---|---|---|---|---|---|---|
//! | ADAUSDT | 0.00624 | 24.71 | 74.9 | 0.178 | 0.674 | 1.527 | 1.108 | 0.000708 | 0.793 |
//! | BNBUSDT | 0.00270 | 15.41 | 335.7 | 0.237 | 0.677 | 0.768 | 1.137 | 0.000287 | 0.725 |
//! | BTCUSDT | 0.00275 | 11.72 | 254.6 | 0.220 | 1.000 | 1.000 | 0.939 | 0.000189 | 0.567 |
//! | DOGEUSDT | 0.00686 | 19.34 | 151.0 | 0.186 | 0.522 | 1.301 | 1.086 | 0.000772 | 0.803 |
//! | ETHUSDT | 0.00293 | 14.93 | 86.8 | 0.277 | 0.846 | 0.899 | 1.044 | 0.000249 | 0.631 |
//! | SOLUSDT | 0.00638 | 6.15 | 174.7 | 0.070 | 0.711 | 1.905 | 1.124 | 0.000885 | 0.957 |
//! | XRPUSDT | 0.00639 | 5.20 | 117.9 | 0.077 | 0.498 | 1.337 | 1.131 | 0.000814 | 0.873 |

use std::{collections::HashMap, fmt::Write as _, path::Path};

use crate::{
    domain::{Bar, Interval, TimestampMs},
    sim::replay::{KlineFile, KlineRow, ReplayError, read_kline_dir},
};

// ---- Measured figures (copied from `calibrate` on the shared bundle; checked by a test) ----

/// Hourly σ of the large caps (mean of BTC 0.00275, ETH 0.00293, BNB 0.00270).
pub const MAJOR_HOURLY_VOL: f64 = 0.0028;
/// Hourly σ of the mid caps (mean of SOL, XRP, ADA, DOGE: 0.00638 … 0.00686).
pub const ALT_HOURLY_VOL: f64 = 0.0065;
/// Median excess kurtosis of hourly returns across the seven symbols (5.2 … 24.7).
pub const HOURLY_EXCESS_KURTOSIS: f64 = 14.9;
/// Median lag-1 autocorrelation of squared hourly returns: the GARCH persistence proxy (0.07 … 0.28).
pub const SQUARED_RETURN_ACF1: f64 = 0.186;
/// Correlation of ETH's hourly returns with BTC's.
pub const ETH_BTC_CORRELATION: f64 = 0.846;
/// Mean correlation with BTC of the six other symbols (0.50 … 0.85).
pub const ALT_BTC_CORRELATION: f64 = 0.655;
/// Mean of σ(1m)·√60 / σ(1h): slightly above 1, the minute noise that averages out within the hour.
pub const MINUTE_TO_HOUR_VOL_RATIO: f64 = 1.081;
/// Median over symbols of (median 1m (high − low) / close) / σ(1m): how wide a minute's range is
/// compared to its typical move.
pub const MINUTE_RANGE_OVER_VOL: f64 = 0.793;
/// Mean volume by UTC hour of day (00 … 23), each symbol's volume divided by its own mean, averaged over
/// symbols, normalised to mean 1. The US session (12–19 UTC) trades about twice the Asian night.
pub const UTC_HOUR_VOLUME_PROFILE: [f64; 24] = [
    1.072, 0.814, 0.837, 0.672, 0.631, 0.694, 0.766, 0.911, 0.915, 0.982, 0.897, 0.719, 1.211, 1.220, 1.472,
    1.444, 1.509, 1.184, 1.482, 1.266, 1.052, 0.807, 0.690, 0.754,
];

// ---- Model parameters (not measured directly; chosen so the synthetic market reproduces the
// ---- measured facts above, which `synthetic_market_reproduces_stylised_facts` checks) ----

/// GARCH(1,1) reaction to the last squared shock.
pub const GARCH_ALPHA: f64 = 0.18;
/// GARCH(1,1) memory of the last variance; α + β = 0.96 gives a volatility half-life of ~17 h.
pub const GARCH_BETA: f64 = 0.78;
/// Degrees of freedom of the Student-t hourly shocks: fat tails with finite variance. Lower ν gives
/// fatter tails but isolated spikes that dilute the clustering (ν = 5 gave ACF1(r²) ≈ 0.09 against the
/// measured 0.19; ν = 8 gave 0.2 but kurtosis 2–6).
pub const HOURLY_T_DOF: u32 = 6;
/// Chance per hour of a market-wide jump (a liquidation cascade, a macro print): about one in two weeks.
/// With t(6) shocks alone the hourly excess kurtosis came out 2–8 against the measured 5–25; rare
/// jumps that the GARCH then reacts to bring both the tails and the clustering closer.
pub const MARKET_JUMP_PROBABILITY: f64 = 0.003;
/// Size of a market jump in hourly σ of the market factor (uniform in [0.6, 1.4] × this, either sign).
pub const MARKET_JUMP_SIGMAS: f64 = 8.0;
/// Degrees of freedom of the Student-t minute shocks; real minutes have far fatter tails than hours
/// (excess kurtosis ~150 against ~15) and their median |return| is ~0.4 σ, which ν = 3 matches.
pub const MINUTE_T_DOF: u32 = 3;
/// Elasticity of volatility to the seasonal volume profile (σ ∝ profile^½: busy hours move more).
pub const VOL_SEASONALITY_EXPONENT: f64 = 0.5;
/// Mean length in hours of a trending regime (plus a minimum of [`REGIME_MIN_HOURS`]).
pub const TREND_MEAN_HOURS: f64 = 30.0;
/// Mean length in hours of a ranging regime (plus a minimum of [`REGIME_MIN_HOURS`]).
pub const RANGE_MEAN_HOURS: f64 = 40.0;
/// Shortest regime, so that a regime lasts long enough to leave swings and breaks of structure.
pub const REGIME_MIN_HOURS: f64 = 8.0;
/// Drift of a trend, in hourly σ per hour (scaled by a random factor in [0.5, 1.5]).
pub const TREND_DRIFT_SIGMAS: f64 = 0.12;
/// Fraction of the distance to the range's centre (in log price) recovered per hour while ranging.
pub const RANGE_REVERSION_PER_HOUR: f64 = 0.06;
/// Mean extra wick beyond max(open, close) (and below the minimum), in minute σ.
pub const MINUTE_WICK_SIGMAS: f64 = 0.24;
/// Elasticity of volume to the volatility state: volume ∝ (`σ_t` / σ)^this.
pub const VOLUME_VOL_ELASTICITY: f64 = 0.8;
/// Share of a minute's volume that follows the size of its move (the rest is flat).
pub const VOLUME_MOVE_SHARE: f64 = 0.6;

/// BTC's own correlation with the common market factor: the factor is "BTC minus a little noise", so
/// BTC gets beta 1 and the other symbols' correlation with BTC comes out near the measured figures.
pub const BTC_MARKET_CORRELATION: f64 = 0.97;

// ---- Universe figures (the bundle has no quote volumes or trade counts; these follow the shape of
// ---- Binance's public 24h tickers: a few billion USDT at the top, a few million in the tail) ----

/// Expected 24h quote volume of the most traded contract, in USDT.
pub const TOP_DAILY_QUOTE_VOLUME: f64 = 12.0e9;
/// Rank-size (Zipf) exponent of 24h quote volume: rank r trades TOP · r^−this (rank 200 ≈ 5 M USDT).
pub const VOLUME_RANK_EXPONENT: f64 = 1.45;
/// Log-normal dispersion of a contract's volume around its rank-size level.
pub const VOLUME_RANK_DISPERSION: f64 = 0.1;
/// Mean trade size, in USDT, of a contract that trades [`TAIL_DAILY_QUOTE_VOLUME`] a day.
pub const TAIL_MEAN_TRADE_NOTIONAL: f64 = 250.0;
/// Reference daily quote volume for [`TAIL_MEAN_TRADE_NOTIONAL`].
pub const TAIL_DAILY_QUOTE_VOLUME: f64 = 5.0e6;
/// Elasticity of mean trade size to daily volume (BTC ≈ 7 000 USDT per trade).
pub const TRADE_NOTIONAL_ELASTICITY: f64 = 0.45;
/// Funding rate per 8 h around which the synthetic funding varies (Binance's base rate).
pub const BASE_FUNDING_RATE: f64 = 0.0001;

/// The seasonal volume factor of the UTC hour containing `t`.
pub fn seasonal_volume_factor(t: TimestampMs) -> f64 {
    let hour = t.div_euclid(3_600_000).rem_euclid(24) as usize;
    UTC_HOUR_VOLUME_PROFILE[hour]
}

/// Errors of [`calibrate`].
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    #[error(transparent)]
    Read(#[from] ReplayError),
    #[error("no symbol in the directory has both a 1h and a 1m kline file")]
    NoUsableSymbol,
    #[error("{symbol}: too few bars to measure ({hours} hourly returns, {minutes} minute returns)")]
    TooShort {
        symbol: String,
        hours: usize,
        minutes: usize,
    },
}

/// The stylised facts of one symbol.
#[derive(Debug, Clone, PartialEq)]
pub struct SymbolCalibration {
    pub symbol: String,
    pub hourly_returns: usize,
    pub hourly_vol: f64,
    pub excess_kurtosis_1h: f64,
    pub excess_kurtosis_1m: f64,
    pub squared_return_acf1: f64,
    /// `None` for BTC itself only when BTC is absent; BTC against itself is 1.
    pub correlation_with_btc: Option<f64>,
    pub beta_to_btc: Option<f64>,
    pub minute_to_hour_vol_ratio: f64,
    pub median_range_1m: f64,
    pub median_range_over_minute_vol: f64,
}

/// What [`calibrate`] measured, per symbol, plus the UTC-hour volume profile.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationReport {
    pub symbols: Vec<SymbolCalibration>,
    pub volume_profile: [f64; 24],
}

/// The report condensed to the figures the constants above are copied from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CalibrationSummary {
    pub major_hourly_vol: Option<f64>,
    pub alt_hourly_vol: Option<f64>,
    pub hourly_excess_kurtosis: f64,
    pub squared_return_acf1: f64,
    pub eth_btc_correlation: Option<f64>,
    pub alt_btc_correlation: Option<f64>,
    pub minute_to_hour_vol_ratio: f64,
    pub minute_range_over_vol: f64,
}

/// The large caps of the bundle; the others count as "alts" in [`CalibrationSummary`].
const MAJORS: [&str; 3] = ["BTCUSDT", "ETHUSDT", "BNBUSDT"];

impl CalibrationReport {
    pub fn summary(&self) -> CalibrationSummary {
        let mean_of = |pick: &dyn Fn(&SymbolCalibration) -> Option<f64>| {
            let values: Vec<f64> = self.symbols.iter().filter_map(pick).collect();
            (!values.is_empty()).then(|| mean(&values))
        };
        let is_major = |s: &SymbolCalibration| MAJORS.contains(&s.symbol.as_str());
        let median_of =
            |pick: fn(&SymbolCalibration) -> f64| median(&self.symbols.iter().map(pick).collect::<Vec<_>>());
        CalibrationSummary {
            major_hourly_vol: mean_of(&|s| is_major(s).then_some(s.hourly_vol)),
            alt_hourly_vol: mean_of(&|s| (!is_major(s)).then_some(s.hourly_vol)),
            hourly_excess_kurtosis: median_of(|s| s.excess_kurtosis_1h),
            squared_return_acf1: median_of(|s| s.squared_return_acf1),
            eth_btc_correlation: mean_of(&|s| {
                (s.symbol == "ETHUSDT")
                    .then_some(s.correlation_with_btc)
                    .flatten()
            }),
            alt_btc_correlation: mean_of(&|s| {
                (s.symbol != "BTCUSDT")
                    .then_some(s.correlation_with_btc)
                    .flatten()
            }),
            minute_to_hour_vol_ratio: mean_of(&|s| Some(s.minute_to_hour_vol_ratio)).unwrap_or(f64::NAN),
            minute_range_over_vol: median_of(|s| s.median_range_over_minute_vol),
        }
    }

    /// The per-symbol table, the summary and the volume profile, as Markdown.
    pub fn to_markdown(&self) -> String {
        let opt =
            |v: Option<f64>, digits: usize| v.map_or_else(|| "–".to_owned(), |x| format!("{x:.digits$}"));
        let mut out = String::new();
        out.push_str(
            "| symbol | hourly returns | σ 1h | excess kurtosis 1h | excess kurtosis 1m | ACF1 of r² (1h) \
             | corr with BTC | beta to BTC | σ1m·√60 / σ1h | median (H−L)/C 1m | median range / σ1m |\n",
        );
        out.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
        for s in &self.symbols {
            let _ = writeln!(
                out,
                "| {} | {} | {:.5} | {:.2} | {:.1} | {:.3} | {} | {} | {:.3} | {:.6} | {:.3} |",
                s.symbol,
                s.hourly_returns,
                s.hourly_vol,
                s.excess_kurtosis_1h,
                s.excess_kurtosis_1m,
                s.squared_return_acf1,
                opt(s.correlation_with_btc, 3),
                opt(s.beta_to_btc, 3),
                s.minute_to_hour_vol_ratio,
                s.median_range_1m,
                s.median_range_over_minute_vol,
            );
        }
        let summary = self.summary();
        out.push_str("\n| figure | measured | constant in `sim::calibration` |\n|---|---|---|\n");
        let rows = [
            (
                "σ 1h, majors (mean)",
                opt(summary.major_hourly_vol, 5),
                format!("MAJOR_HOURLY_VOL = {MAJOR_HOURLY_VOL}"),
            ),
            (
                "σ 1h, alts (mean)",
                opt(summary.alt_hourly_vol, 5),
                format!("ALT_HOURLY_VOL = {ALT_HOURLY_VOL}"),
            ),
            (
                "excess kurtosis 1h (median)",
                format!("{:.2}", summary.hourly_excess_kurtosis),
                format!("HOURLY_EXCESS_KURTOSIS = {HOURLY_EXCESS_KURTOSIS}"),
            ),
            (
                "ACF1 of r² 1h (median)",
                format!("{:.3}", summary.squared_return_acf1),
                format!("SQUARED_RETURN_ACF1 = {SQUARED_RETURN_ACF1}"),
            ),
            (
                "corr ETH–BTC",
                opt(summary.eth_btc_correlation, 3),
                format!("ETH_BTC_CORRELATION = {ETH_BTC_CORRELATION}"),
            ),
            (
                "corr with BTC, others (mean)",
                opt(summary.alt_btc_correlation, 3),
                format!("ALT_BTC_CORRELATION = {ALT_BTC_CORRELATION}"),
            ),
            (
                "σ1m·√60 / σ1h (mean)",
                format!("{:.3}", summary.minute_to_hour_vol_ratio),
                format!("MINUTE_TO_HOUR_VOL_RATIO = {MINUTE_TO_HOUR_VOL_RATIO}"),
            ),
            (
                "median range / σ1m (median)",
                format!("{:.3}", summary.minute_range_over_vol),
                format!("MINUTE_RANGE_OVER_VOL = {MINUTE_RANGE_OVER_VOL}"),
            ),
        ];
        for (name, measured, constant) in rows {
            let _ = writeln!(out, "| {name} | {measured} | `{constant}` |");
        }
        out.push_str("\nVolume by UTC hour (mean 1; constant `UTC_HOUR_VOLUME_PROFILE`):\n\n| UTC hour |");
        for hour in 0..24 {
            let _ = write!(out, " {hour:02} |");
        }
        out.push_str("\n|---|");
        out.push_str(&"---|".repeat(24));
        out.push_str("\n| volume |");
        for v in self.volume_profile {
            let _ = write!(out, " {v:.3} |");
        }
        out.push('\n');
        out
    }
}

/// Measures the stylised facts on every symbol of `dir` that has both a `_1h.csv` and a `_1m.csv`.
pub fn calibrate(dir: impl AsRef<Path>) -> Result<CalibrationReport, CalibrationError> {
    let files = read_kline_dir(dir.as_ref())?;
    let find = |symbol: &str, interval: Interval| -> Option<&KlineFile> {
        files
            .iter()
            .find(|f| f.symbol == symbol && f.interval == interval)
    };
    let btc_hourly = find("BTCUSDT", Interval::H1).map(|f| f.rows.as_slice());
    let mut symbols = Vec::new();
    let mut hourly_series = Vec::new();
    for file in files.iter().filter(|f| f.interval == Interval::H1) {
        let Some(minutes) = find(&file.symbol, Interval::M1) else {
            continue;
        };
        symbols.push(measure_symbol(
            &file.symbol,
            &file.rows,
            &minutes.rows,
            btc_hourly,
        )?);
        hourly_series.push(file.rows.as_slice());
    }
    if symbols.is_empty() {
        return Err(CalibrationError::NoUsableSymbol);
    }
    Ok(CalibrationReport {
        symbols,
        volume_profile: volume_profile(&hourly_series),
    })
}

/// The stylised facts of one symbol from its hourly and minute klines (any source: the real files or
/// bars of the synthetic market converted with [`row_of_bar`]).
pub fn measure_symbol(
    symbol: &str,
    hourly: &[KlineRow],
    minutes: &[KlineRow],
    btc_hourly: Option<&[KlineRow]>,
) -> Result<SymbolCalibration, CalibrationError> {
    let hourly_returns = log_returns(hourly, 3_600_000);
    let minute_returns = log_returns(minutes, 60_000);
    if hourly_returns.len() < 48 || minute_returns.len() < 600 {
        return Err(CalibrationError::TooShort {
            symbol: symbol.to_owned(),
            hours: hourly_returns.len(),
            minutes: minute_returns.len(),
        });
    }
    let hour_values: Vec<f64> = hourly_returns.iter().map(|(_, r)| *r).collect();
    let minute_values: Vec<f64> = minute_returns.iter().map(|(_, r)| *r).collect();
    let hourly_vol = std_dev(&hour_values);
    let minute_vol = std_dev(&minute_values);
    let squared: Vec<f64> = hour_values.iter().map(|r| r * r).collect();
    let (correlation_with_btc, beta_to_btc) = match btc_hourly {
        Some(btc) => {
            let btc_by_time: HashMap<TimestampMs, f64> = log_returns(btc, 3_600_000).into_iter().collect();
            let (own, reference): (Vec<f64>, Vec<f64>) = hourly_returns
                .iter()
                .filter_map(|(t, r)| btc_by_time.get(t).map(|b| (*r, *b)))
                .unzip();
            if own.len() >= 48 {
                (
                    Some(correlation(&own, &reference)),
                    Some(covariance(&own, &reference) / variance(&reference)),
                )
            } else {
                (None, None)
            }
        }
        None => (None, None),
    };
    let ranges: Vec<f64> = minutes.iter().map(|r| (r.high - r.low) / r.close).collect();
    let median_range_1m = median(&ranges);
    Ok(SymbolCalibration {
        symbol: symbol.to_owned(),
        hourly_returns: hour_values.len(),
        hourly_vol,
        excess_kurtosis_1h: excess_kurtosis(&hour_values),
        excess_kurtosis_1m: excess_kurtosis(&minute_values),
        squared_return_acf1: autocorrelation(&squared, 1),
        correlation_with_btc,
        beta_to_btc,
        minute_to_hour_vol_ratio: minute_vol * 60_f64.sqrt() / hourly_vol,
        median_range_1m,
        median_range_over_minute_vol: median_range_1m / minute_vol,
    })
}

/// A bar as a kline row, so synthetic bars go through the same measurements as real files.
pub fn row_of_bar(bar: &Bar) -> KlineRow {
    KlineRow {
        open_time: bar.open_time,
        open: bar.open,
        high: bar.high,
        low: bar.low,
        close: bar.close,
        volume: bar.volume,
        quote_volume: Some(bar.quote_volume),
        trades: Some(bar.trades),
    }
}

/// Close-to-close log returns keyed by the later bar's open time; only between consecutive bars.
pub fn log_returns(rows: &[KlineRow], step: i64) -> Vec<(TimestampMs, f64)> {
    rows.windows(2)
        .filter(|w| w[1].open_time - w[0].open_time == step && w[0].close > 0.0 && w[1].close > 0.0)
        .map(|w| (w[1].open_time, (w[1].close / w[0].close).ln()))
        .collect()
}

/// Volume by UTC hour of day: each series divided by its own mean volume, averaged per hour, averaged
/// over series, normalised to mean 1.
pub fn volume_profile(hourly_series: &[&[KlineRow]]) -> [f64; 24] {
    let mut profile = [0.0; 24];
    let mut used = 0;
    for rows in hourly_series {
        let volumes: Vec<f64> = rows.iter().map(|r| r.volume).collect();
        let series_mean = mean(&volumes);
        if rows.is_empty() || series_mean <= 0.0 {
            continue;
        }
        let mut sums = [0.0; 24];
        let mut counts = [0_u32; 24];
        for row in *rows {
            let hour = row.open_time.div_euclid(3_600_000).rem_euclid(24) as usize;
            sums[hour] += row.volume / series_mean;
            counts[hour] += 1;
        }
        for hour in 0..24 {
            if counts[hour] > 0 {
                profile[hour] += sums[hour] / f64::from(counts[hour]);
            }
        }
        used += 1;
    }
    let total: f64 = profile.iter().sum();
    if used > 0 && total > 0.0 {
        for v in &mut profile {
            *v *= 24.0 / total;
        }
    }
    profile
}

pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.iter().sum::<f64>() / values.len() as f64
}

/// Population variance.
pub fn variance(values: &[f64]) -> f64 {
    let m = mean(values);
    values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / values.len() as f64
}

pub fn std_dev(values: &[f64]) -> f64 {
    variance(values).sqrt()
}

pub fn covariance(a: &[f64], b: &[f64]) -> f64 {
    let (ma, mb) = (mean(a), mean(b));
    a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum::<f64>() / a.len().min(b.len()) as f64
}

pub fn correlation(a: &[f64], b: &[f64]) -> f64 {
    covariance(a, b) / (variance(a) * variance(b)).sqrt()
}

/// Fourth standardised moment minus 3 (0 for a normal distribution).
pub fn excess_kurtosis(values: &[f64]) -> f64 {
    let m = mean(values);
    let var = variance(values);
    let fourth = values.iter().map(|v| (v - m).powi(4)).sum::<f64>() / values.len() as f64;
    fourth / (var * var) - 3.0
}

/// Sample autocorrelation at `lag` (the series' own mean and variance).
pub fn autocorrelation(values: &[f64], lag: usize) -> f64 {
    if values.len() <= lag {
        return f64::NAN;
    }
    let m = mean(values);
    let numerator: f64 = values.windows(lag + 1).map(|w| (w[0] - m) * (w[lag] - m)).sum();
    let denominator: f64 = values.iter().map(|v| (v - m).powi(2)).sum();
    numerator / denominator
}

/// Median (mean of the two middle values for an even count); NaN for an empty slice.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    f64::midpoint(sorted[(n - 1) / 2], sorted[n / 2])
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::sim::{source::MarketSource, synthetic::SyntheticMarket};

    fn shared_klines() -> Option<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/klines/usdm_alpergulsen");
        if dir.is_dir() {
            return Some(dir);
        }
        assert!(
            std::env::var_os("PERPDESK_REQUIRE_SHARED").is_none(),
            "PERPDESK_REQUIRE_SHARED is set but {} is missing",
            dir.display()
        );
        eprintln!(
            "\n*** SKIP: {} not found; calibration against real klines not run ***\n",
            dir.display()
        );
        None
    }

    #[test]
    fn statistics_match_hand_computed_values() {
        assert_eq!(mean(&[1.0, 2.0, 3.0, 6.0]), 3.0);
        assert_eq!(variance(&[1.0, 2.0, 3.0, 6.0]), 3.5);
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(
            (correlation(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.5]) - 4.5 / (2.0 * 61.0 / 6.0_f64).sqrt()).abs()
                < 1e-12
        );
        // Two-point distribution ±1: kurtosis 1, excess −2.
        assert!((excess_kurtosis(&[1.0, -1.0, 1.0, -1.0]) + 2.0).abs() < 1e-12);
        // Alternating series: lag-1 autocorrelation (n−1)/n · (−1).
        assert!((autocorrelation(&[1.0, -1.0, 1.0, -1.0], 1) + 0.75).abs() < 1e-12);
        let rows: Vec<KlineRow> = [100.0, 110.0, 99.0]
            .iter()
            .enumerate()
            .map(|(i, &c)| KlineRow {
                open_time: i as i64 * 60_000,
                open: c,
                high: c,
                low: c,
                close: c,
                volume: 1.0,
                quote_volume: None,
                trades: None,
            })
            .collect();
        let returns = log_returns(&rows, 60_000);
        assert_eq!(returns.len(), 2);
        assert!((returns[0].1 - 1.1_f64.ln()).abs() < 1e-15);
        assert_eq!(returns[1].0, 120_000);
    }

    #[test]
    fn committed_constants_match_the_real_klines() {
        let Some(dir) = shared_klines() else { return };
        let report = calibrate(&dir).expect("calibrate shared klines");
        println!("{}", report.to_markdown());
        assert_eq!(report.symbols.len(), 7);
        let s = report.summary();
        let within = |name: &str, measured: Option<f64>, constant: f64, tolerance: f64| {
            let measured = measured.unwrap_or(f64::NAN);
            assert!(
                (measured - constant).abs() <= tolerance,
                "{name}: measured {measured}, constant {constant}, tolerance {tolerance}"
            );
        };
        // Tolerances: half a unit of the last digit the constant is written with, or 5 % for volatilities.
        within(
            "major vol",
            s.major_hourly_vol,
            MAJOR_HOURLY_VOL,
            0.05 * MAJOR_HOURLY_VOL,
        );
        within("alt vol", s.alt_hourly_vol, ALT_HOURLY_VOL, 0.05 * ALT_HOURLY_VOL);
        within(
            "hourly kurtosis",
            Some(s.hourly_excess_kurtosis),
            HOURLY_EXCESS_KURTOSIS,
            0.05,
        );
        within(
            "ACF1 r²",
            Some(s.squared_return_acf1),
            SQUARED_RETURN_ACF1,
            0.0005,
        );
        within("ETH corr", s.eth_btc_correlation, ETH_BTC_CORRELATION, 0.0005);
        within("alt corr", s.alt_btc_correlation, ALT_BTC_CORRELATION, 0.0005);
        within(
            "1m/1h vol",
            Some(s.minute_to_hour_vol_ratio),
            MINUTE_TO_HOUR_VOL_RATIO,
            0.0005,
        );
        within(
            "range/vol",
            Some(s.minute_range_over_vol),
            MINUTE_RANGE_OVER_VOL,
            0.0005,
        );
        for (hour, (&measured, &constant)) in report
            .volume_profile
            .iter()
            .zip(&UTC_HOUR_VOLUME_PROFILE)
            .enumerate()
        {
            within(
                &format!("volume profile {hour:02}h"),
                Some(measured),
                constant,
                0.0005,
            );
        }
        let btc = report
            .symbols
            .iter()
            .find(|x| x.symbol == "BTCUSDT")
            .expect("BTC row");
        assert_eq!(btc.correlation_with_btc, Some(1.0));
        assert!(report.to_markdown().contains("| BTCUSDT | 1053 |"));
    }

    /// The hourly and minute bars of one synthetic symbol over `[from, to)`.
    fn synthetic_rows(
        market: &SyntheticMarket,
        symbol: usize,
        from: TimestampMs,
        to: TimestampMs,
    ) -> (Vec<KlineRow>, Vec<KlineRow>) {
        let collect = |interval: Interval| {
            let mut rows = Vec::new();
            let mut t = from;
            while t < to {
                if let Some(bar) = market.bar(symbol, interval, t, to) {
                    rows.push(row_of_bar(&bar));
                }
                t = interval.next_open(t);
            }
            rows
        };
        (collect(Interval::H1), collect(Interval::M1))
    }

    #[test]
    fn synthetic_market_reproduces_stylised_facts() {
        const DAY: i64 = 86_400_000;
        let start = 1_700_006_400_000; // 2023-11-15 00:00 UTC
        let market = SyntheticMarket::new(42, 40, start, 30 * DAY);
        let from = market.earliest();
        let symbols = [0_usize, 1, 2, 3, 4, 5];
        let series: Vec<(Vec<KlineRow>, Vec<KlineRow>)> = symbols
            .iter()
            .map(|&s| synthetic_rows(&market, s, from, start))
            .collect();
        let btc_hourly = series[0].0.as_slice();
        let measured: Vec<SymbolCalibration> = symbols
            .iter()
            .zip(&series)
            .map(|(&s, (h, m))| {
                measure_symbol(&market.symbols()[s].name, h, m, Some(btc_hourly)).expect("measure")
            })
            .collect();
        let report = CalibrationReport {
            symbols: measured.clone(),
            volume_profile: volume_profile(&series.iter().map(|(h, _)| h.as_slice()).collect::<Vec<_>>()),
        };
        println!("synthetic, 30 days:\n{}", report.to_markdown());
        for m in &measured {
            assert!(
                m.hourly_returns >= 700,
                "{}: {} hours",
                m.symbol,
                m.hourly_returns
            );
            assert!(
                m.excess_kurtosis_1h > 1.0,
                "{}: hourly excess kurtosis {}",
                m.symbol,
                m.excess_kurtosis_1h
            );
            assert!(
                m.excess_kurtosis_1m > 3.0,
                "{}: minute excess kurtosis {}",
                m.symbol,
                m.excess_kurtosis_1m
            );
            assert!(
                m.squared_return_acf1 > 0.0,
                "{}: ACF1 of r² {}",
                m.symbol,
                m.squared_return_acf1
            );
            assert!(
                (0.8..1.5).contains(&m.minute_to_hour_vol_ratio),
                "{}: σ1m·√60/σ1h {}",
                m.symbol,
                m.minute_to_hour_vol_ratio
            );
        }
        let mean_acf = mean(&measured.iter().map(|m| m.squared_return_acf1).collect::<Vec<_>>());
        assert!(mean_acf > 0.05, "mean ACF1 of squared hourly returns {mean_acf}");
        // Majors near the calibrated hourly σ (loose: 30 days of a GARCH path wander).
        let btc_vol = measured[0].hourly_vol;
        assert!(
            (0.5..2.0).contains(&(btc_vol / MAJOR_HOURLY_VOL)),
            "BTC hourly σ {btc_vol}"
        );
        // Co-movement: mean pairwise correlation of hourly returns.
        let returns: Vec<Vec<f64>> = series
            .iter()
            .map(|(h, _)| log_returns(h, 3_600_000).into_iter().map(|(_, r)| r).collect())
            .collect();
        let mut pairs = Vec::new();
        for i in 0..returns.len() {
            for j in i + 1..returns.len() {
                let n = returns[i].len().min(returns[j].len());
                pairs.push(correlation(&returns[i][..n], &returns[j][..n]));
            }
        }
        let mean_pairwise = mean(&pairs);
        assert!(mean_pairwise > 0.3, "mean pairwise correlation {mean_pairwise}");
        // Volume seasonality follows the calibrated UTC profile.
        let seasonality = correlation(&report.volume_profile, &UTC_HOUR_VOLUME_PROFILE);
        assert!(seasonality > 0.7, "volume profile correlation {seasonality}");
        // Minute ranges relative to minute σ within a factor of the real figure.
        let range_ratio = median(
            &measured
                .iter()
                .map(|m| m.median_range_over_minute_vol)
                .collect::<Vec<_>>(),
        );
        assert!(
            (0.6..1.6).contains(&(range_ratio / MINUTE_RANGE_OVER_VOL)),
            "median range / σ1m {range_ratio}"
        );
    }
}
