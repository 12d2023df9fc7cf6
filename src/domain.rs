//! Domain types shared by every layer: symbols keyed by a dense [`SymbolId`], intervals, bars, time.
//!
//! This module does no I/O. Venue JSON is turned into these types by `binance::parse`, the simulated
//! exchange produces them, and the engine, market and UI presenter consume them. Order-facing numbers
//! (tick and step sizes) are `rust_decimal` so rounding is exact; analytics values (OHLCV) are `f64`,
//! because indicators and charts need floating point and a bar is only ever *read* from the venue.

use std::{fmt, str::FromStr};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC), the unit of every Binance timestamp.
pub type TimestampMs = i64;

/// Dense index of a symbol in the engine's symbol table. Dense so that per-symbol state lives in a
/// `Vec` indexed by it (no hashing on the hot path); `u16` because the venue lists a few hundred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SymbolId(pub u16);

impl SymbolId {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// Trading status of a contract, as in `exchangeInfo.symbols[].status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SymbolStatus {
    Trading,
    PendingTrading,
    Settling,
    Close,
    Other,
}

impl SymbolStatus {
    pub fn from_venue(s: &str) -> Self {
        match s {
            "TRADING" => Self::Trading,
            "PENDING_TRADING" => Self::PendingTrading,
            "SETTLING" => Self::Settling,
            "CLOSE" => Self::Close,
            _ => Self::Other,
        }
    }
}

/// A tradable contract with the filters needed to round orders and to format prices.
#[derive(Debug, Clone, PartialEq)]
pub struct Symbol {
    pub id: SymbolId,
    /// Venue name, upper case (`BTCUSDT`).
    pub name: String,
    pub base_asset: String,
    pub quote_asset: String,
    /// `PERPETUAL`, `CURRENT_QUARTER`, … (empty for some pending listings).
    pub contract_type: String,
    pub status: SymbolStatus,
    pub price_precision: u32,
    pub quantity_precision: u32,
    pub tick_size: Decimal,
    pub step_size: Decimal,
    pub min_qty: Decimal,
    pub min_notional: Decimal,
}

impl Symbol {
    /// True for the contracts perpdesk trades: USDT-margined perpetuals that are open for trading.
    pub fn is_tradable_usdt_perpetual(&self) -> bool {
        self.status == SymbolStatus::Trading
            && self.quote_asset == "USDT"
            && self.contract_type == "PERPETUAL"
    }
}

/// Kline interval. Every interval Binance USDT-M accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Interval {
    M1,
    M3,
    M5,
    M15,
    M30,
    H1,
    H2,
    H4,
    H6,
    H8,
    H12,
    D1,
    D3,
    W1,
    Mo1,
}

/// Error for an interval string the venue does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown interval `{0}` (expected one of 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M)")]
pub struct UnknownInterval(pub String);

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

impl Interval {
    pub const ALL: [Interval; 15] = [
        Self::M1,
        Self::M3,
        Self::M5,
        Self::M15,
        Self::M30,
        Self::H1,
        Self::H2,
        Self::H4,
        Self::H6,
        Self::H8,
        Self::H12,
        Self::D1,
        Self::D3,
        Self::W1,
        Self::Mo1,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::M1 => "1m",
            Self::M3 => "3m",
            Self::M5 => "5m",
            Self::M15 => "15m",
            Self::M30 => "30m",
            Self::H1 => "1h",
            Self::H2 => "2h",
            Self::H4 => "4h",
            Self::H6 => "6h",
            Self::H8 => "8h",
            Self::H12 => "12h",
            Self::D1 => "1d",
            Self::D3 => "3d",
            Self::W1 => "1w",
            Self::Mo1 => "1M",
        }
    }

    /// Fixed length in milliseconds; `None` for the calendar month.
    pub fn fixed_millis(self) -> Option<i64> {
        let m = match self {
            Self::M1 => 1,
            Self::M3 => 3,
            Self::M5 => 5,
            Self::M15 => 15,
            Self::M30 => 30,
            Self::H1 => 60,
            Self::H2 => 120,
            Self::H4 => 240,
            Self::H6 => 360,
            Self::H8 => 480,
            Self::H12 => 720,
            Self::D1 => 1440,
            Self::D3 => 3 * 1440,
            Self::W1 => 7 * 1440,
            Self::Mo1 => return None,
        };
        Some(m * MINUTE_MS)
    }

    /// Open time of the bar containing `t`. Binance aligns days to UTC midnight, weeks to Monday 00:00
    /// UTC, 3-day bars to the epoch, months to the first of the month.
    pub fn open_time_of(self, t: TimestampMs) -> TimestampMs {
        match self {
            // The epoch was a Thursday; Monday-aligned weeks are offset by 4 days.
            Self::W1 => {
                let week = 7 * DAY_MS;
                let offset = 4 * DAY_MS;
                (t - offset).div_euclid(week) * week + offset
            }
            Self::Mo1 => {
                let (y, m, _) = civil_from_days(t.div_euclid(DAY_MS));
                days_from_civil(y, m, 1) * DAY_MS
            }
            other => {
                let len = other.fixed_millis().unwrap_or(MINUTE_MS);
                t.div_euclid(len) * len
            }
        }
    }

    /// Open time of the bar after the one opening at `open`.
    pub fn next_open(self, open: TimestampMs) -> TimestampMs {
        if let Some(len) = self.fixed_millis() {
            open + len
        } else {
            let (y, m, _) = civil_from_days(open.div_euclid(DAY_MS));
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            days_from_civil(ny, nm, 1) * DAY_MS
        }
    }

    /// Close time as Binance reports it: the next open minus one millisecond.
    pub fn close_time(self, open: TimestampMs) -> TimestampMs {
        self.next_open(open) - 1
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Interval {
    type Err = UnknownInterval;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|i| i.as_str() == s)
            .ok_or_else(|| UnknownInterval(s.to_owned()))
    }
}

/// Days since 1970-01-01 → (year, month, day). Howard Hinnant's `civil_from_days`.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01. Inverse of [`civil_from_days`].
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// One candle. `closed` is the venue's `x` flag: false while the bar is still forming.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    pub open_time: TimestampMs,
    pub close_time: TimestampMs,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    /// Base-asset volume.
    pub volume: f64,
    /// Quote-asset (USDT) volume.
    pub quote_volume: f64,
    pub trades: u64,
    pub closed: bool,
}

/// Position / order side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Side {
    Long,
    Short,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Long => "LONG",
            Self::Short => "SHORT",
        })
    }
}

/// Current wall-clock time in milliseconds since the epoch.
pub fn now_ms() -> TimestampMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_round_trips_every_venue_string() {
        for i in Interval::ALL {
            assert_eq!(i.as_str().parse::<Interval>(), Ok(i));
        }
        assert!("2m".parse::<Interval>().is_err());
    }

    #[test]
    fn week_bars_open_on_monday_utc() {
        // 2023-07-19 (a Wednesday) 12:00 UTC → Monday 2023-07-17 00:00 UTC.
        let t = 1_689_768_000_000;
        assert_eq!(Interval::W1.open_time_of(t), 1_689_552_000_000);
    }

    #[test]
    fn month_bars_follow_the_calendar() {
        // 2024-02-15 → 2024-02-01, next 2024-03-01 (leap year: 29 days).
        let feb15 = days_from_civil(2024, 2, 15) * DAY_MS;
        let feb1 = Interval::Mo1.open_time_of(feb15);
        assert_eq!(civil_from_days(feb1 / DAY_MS), (2024, 2, 1));
        assert_eq!(Interval::Mo1.next_open(feb1) - feb1, 29 * DAY_MS);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
    }

    #[test]
    fn close_time_is_next_open_minus_one() {
        assert_eq!(Interval::M1.close_time(1_638_747_660_000), 1_638_747_719_999);
    }
}
