//! The market a simulated exchange serves: a trait over "what was the price of symbol S at time T".
//!
//! The REST and WebSocket servers in `sim::server` only ever ask a [`MarketSource`] for bars at a
//! given simulated time, so the synthetic market (`sim::synthetic`) and CSV replay (`sim::replay`) are
//! interchangeable. A source is pure and deterministic: the same question gives the same answer,
//! whatever was asked before, which is what lets a reconnecting client back-fill exactly the bars the
//! stream would have delivered.

use rust_decimal::Decimal;

use crate::domain::{Bar, Interval, TimestampMs};

/// A contract the simulated exchange lists, with the fields its `exchangeInfo` needs.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSymbol {
    /// Upper-case venue name, e.g. `BTCUSDT`.
    pub name: String,
    pub base_asset: String,
    /// `USDT` for most; a few `BUSD`/`USDC` so that clients must filter.
    pub quote_asset: String,
    /// `PERPETUAL` for most; a few `CURRENT_QUARTER` so that clients must filter.
    pub contract_type: String,
    /// `TRADING` for most; a few `SETTLING` / `PENDING_TRADING` so that clients must filter.
    pub status: String,
    pub price_precision: u32,
    pub quantity_precision: u32,
    pub tick_size: Decimal,
    pub step_size: Decimal,
    pub min_qty: Decimal,
    pub max_qty: Decimal,
    pub market_max_qty: Decimal,
    pub min_notional: Decimal,
}

/// Rolling 24-hour statistics for `/fapi/v1/ticker/24hr` and `!ticker@arr`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ticker24h {
    pub open_time: TimestampMs,
    pub close_time: TimestampMs,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub last: f64,
    pub volume: f64,
    pub quote_volume: f64,
    pub trades: u64,
}

/// Mark price, index price and funding for `/fapi/v1/premiumIndex` and `<s>@markPrice`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MarkInfo {
    pub mark_price: f64,
    pub index_price: f64,
    pub funding_rate: f64,
    pub next_funding_time: TimestampMs,
}

/// A deterministic market. Symbols are addressed by their index in [`MarketSource::symbols`].
pub trait MarketSource: Send + Sync + std::fmt::Debug {
    /// Every listed contract, including the ones that are not USDT perpetuals or not trading.
    fn symbols(&self) -> &[SimSymbol];

    /// The first millisecond for which the market has data. Bars opening earlier do not exist.
    fn earliest(&self) -> TimestampMs;

    /// The simulated time at which the exchange clock starts (history is available before it).
    fn start_time(&self) -> TimestampMs;

    /// The simulated time after which the source has no more data (`None` = unbounded).
    fn end_time(&self) -> Option<TimestampMs>;

    /// The bar of `interval` opening at `open_time` (which must be aligned), as it looked at simulated
    /// time `now`: `None` if it opened after `now` or before [`MarketSource::earliest`]; `closed` is
    /// true once `now` is past its close time. Partial bars only contain what happened up to `now`.
    fn bar(&self, symbol: usize, interval: Interval, open_time: TimestampMs, now: TimestampMs)
    -> Option<Bar>;

    /// Last traded price at `now`.
    fn last_price(&self, symbol: usize, now: TimestampMs) -> f64;

    /// Rolling 24h statistics at `now`. Must be cheap: it is called for every symbol every second.
    fn ticker_24h(&self, symbol: usize, now: TimestampMs) -> Ticker24h;

    /// Mark price and funding at `now`.
    fn mark(&self, symbol: usize, now: TimestampMs) -> MarkInfo;
}
