//! The simulated exchange's trading side: one account with a USDT wallet, orders matched against the
//! simulator's mark prices, positions with leverage in cross or isolated margin, liquidation, and the
//! account's user-stream events.
//!
//! It exists so that the console's signed client, its order state machine, unknown-outcome resolver and
//! reconciliation are exercised against a venue that answers like Binance — same endpoints, same
//! payloads (the `binance::trade_wire` structs), same error codes — without a network or an account.
//!
//! Matching model (deliberately simple, deterministic given the market):
//! * MARKET orders fill at once at the mark price moved against the taker by a slippage that grows
//!   with the notional (base [`TradingSettings::slippage`] + 1 bp per 100 000 USDT), on the tick grid.
//! * LIMIT orders that cross the mark fill at once at the better of their price and the market fill;
//!   the rest rest and fill at their price when the mark reaches it (maker fee).
//! * `STOP_MARKET` triggers when the mark crosses the stop toward the order's side (BUY: mark ≥ stop,
//!   SELL: mark ≤ stop), `TAKE_PROFIT_MARKET` the other way; both use the mark price
//!   (`workingType=MARK_PRICE`) and are refused with `-2021` if they would trigger at once.
//! * Reduce-only and close-position orders never increase a position: at placement with no position to
//!   reduce → `-2022`; at execution they are clipped to the position, or expire when it is gone.
//! * Margin: initial margin = notional / leverage; an opening order beyond the available balance is
//!   `-2019`. Isolated positions hold their margin apart from the wallet. Maintenance margin is
//!   `notional × mmr − cum` from the symbol's leverage bracket (`sim::brackets`, the same table
//!   `GET /fapi/v1/leverageBracket` serves); an isolated position whose margin + `PnL` falls to it, or
//!   a cross account whose wallet + `PnL` falls to the cross positions' total, is liquidated at the
//!   mark price by an `autoclose-…` order, as the venue does. A leverage above the symbol's first
//!   tier is refused (`-4028`), and an opening order that would take the position beyond what the
//!   bracket allows at the symbol's leverage with `-2027`.
//!
//! Faults for the order path (unknown outcomes) and for any endpoint can be queued by tests
//! ([`Trading::push_order_fault`], [`Trading::fail_next`]); the general fault plan lives elsewhere
//! (`sim::faults`), and its `ounknown` item reaches [`Trading::handle`] as a per-request
//! [`OrderFault`].

// Handlers reject with the venue's error response; see `server`.
#![allow(clippy::result_large_err)]

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    str::FromStr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::any,
};
use rust_decimal::Decimal;
use tokio::sync::broadcast;

use super::{
    auth::{self, ApiError, Required, SimCredential},
    brackets,
    server::SimClock,
    source::MarketSource,
    user_stream::ListenKeys,
};
use crate::{
    binance::{
        errors::MSG_503_UNKNOWN,
        filters::{FilterError, OrderKind, OrderSide, RoundedOrder, SymbolFilters, to_wire_string},
        orders::is_valid_client_order_id,
        trade_wire::{
            AccountAsset, AccountInfo, AccountPosition, AccountUpdate, AccountUpdateData, Balance,
            BalanceUpdate, CodeMsg, DualSide, LeverageResponse, ListenKey, OrderResponse, OrderTradeUpdate,
            OrderUpdate, PositionRisk, PositionUpdate,
        },
        wire,
    },
    domain::{TimestampMs, now_ms},
};

/// Settings of the trading side.
#[derive(Debug, Clone)]
pub struct TradingSettings {
    /// Key pairs accepted (default: the documented test pair of `sim::auth`).
    pub credentials: Vec<SimCredential>,
    /// USDT in the wallet at start.
    pub starting_balance: Decimal,
    pub default_leverage: u32,
    pub taker_fee: Decimal,
    pub maker_fee: Decimal,
    /// Base slippage of a market fill, as a fraction of the mark price.
    pub slippage: Decimal,
    pub listen_key_validity: Duration,
}

impl Default for TradingSettings {
    fn default() -> Self {
        Self {
            credentials: vec![SimCredential::default_pair()],
            starting_balance: Decimal::from(10_000),
            default_leverage: 20,
            taker_fee: Decimal::new(4, 4),
            maker_fee: Decimal::new(2, 4),
            slippage: Decimal::new(2, 4),
            listen_key_validity: Duration::from_secs(3600),
        }
    }
}

/// Where an order POST with an unknown outcome ends up at the venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultVenue {
    /// Created and visible at once.
    Exists,
    /// Created, but queries answer `-2013` for this long (propagation delay).
    AppearsAfter(Duration),
    /// Not created.
    Never,
}

/// One order POST answered with HTTP 503 "Unknown error…" after `reply_delay` (a delay longer than
/// the client's timeout turns it into a timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderFault {
    pub venue: FaultVenue,
    pub reply_delay: Duration,
}

/// Counters (tests, `perpdesk sim` summary).
#[derive(Debug, Default)]
pub struct TradingStats {
    /// Requests that passed signature verification.
    pub signed_requests: AtomicU64,
    /// Key-only requests (listenKey) that passed.
    pub key_requests: AtomicU64,
    /// Requests refused by authentication (any code).
    pub auth_failures: AtomicU64,
    pub orders_created: AtomicU64,
    pub liquidations: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum PSide {
    Both,
    Long,
    Short,
}

impl PSide {
    fn as_str(self) -> &'static str {
        match self {
            Self::Both => "BOTH",
            Self::Long => "LONG",
            Self::Short => "SHORT",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OType {
    Market,
    Limit,
    StopMarket,
    TakeProfitMarket,
}

impl OType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Market => "MARKET",
            Self::Limit => "LIMIT",
            Self::StopMarket => "STOP_MARKET",
            Self::TakeProfitMarket => "TAKE_PROFIT_MARKET",
        }
    }
}

#[derive(Debug, Clone)]
struct SimOrder {
    id: i64,
    client_id: String,
    symbol: usize,
    side: OrderSide,
    typ: OType,
    qty: Decimal,
    price: Decimal,
    stop: Decimal,
    reduce_only: bool,
    close_position: bool,
    pside: PSide,
    status: &'static str,
    executed: Decimal,
    cum_quote: Decimal,
    time: TimestampMs,
    update_time: TimestampMs,
    /// From when queries see it (propagation-delay fault); `None`: at once. A tokio instant, so a
    /// test under a paused clock sees the delay pass in virtual time.
    visible_at: Option<tokio::time::Instant>,
}

impl SimOrder {
    fn is_open(&self) -> bool {
        matches!(self.status, "NEW" | "PARTIALLY_FILLED")
    }

    fn is_visible(&self) -> bool {
        self.visible_at.is_none_or(|t| tokio::time::Instant::now() >= t)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Position {
    qty: Decimal,
    entry: Decimal,
    isolated_wallet: Decimal,
}

#[derive(Debug, Clone, Copy)]
struct SymbolCfg {
    leverage: u32,
    isolated: bool,
}

#[derive(Debug)]
struct Book {
    wallet: Decimal,
    dual_side: bool,
    cfg: HashMap<usize, SymbolCfg>,
    positions: BTreeMap<(usize, PSide), Position>,
    orders: BTreeMap<i64, SimOrder>,
    by_client: HashMap<String, i64>,
    next_order_id: i64,
    next_trade_id: i64,
    liquidation_seq: u64,
    order_times: VecDeque<TimestampMs>,
}

struct SymbolEntry {
    index: usize,
    filters: SymbolFilters,
}

/// The trading side of a simulated exchange.
pub struct Trading {
    source: Arc<dyn MarketSource>,
    clock: SimClock,
    settings: TradingSettings,
    symbols: HashMap<String, SymbolEntry>,
    book: Mutex<Book>,
    events: broadcast::Sender<String>,
    keys: Mutex<ListenKeys>,
    order_faults: Mutex<VecDeque<OrderFault>>,
    endpoint_faults: Mutex<Vec<(String, ApiError)>>,
    /// Delays before answering the next requests to a path (slow-venue tests), FIFO per path.
    endpoint_delays: Mutex<Vec<(String, Duration)>>,
    /// The last [`ORDER_LOG_LEN`] authenticated `/fapi/v1/order` requests naming a client order id:
    /// `(method, id)`, oldest first (tests: "queried before any resend").
    order_log: Mutex<VecDeque<(Method, String)>>,
    pub stats: TradingStats,
}

impl std::fmt::Debug for Trading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trading")
            .field("settings", &self.settings)
            .field("symbols", &self.symbols.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Decoded parameters: the query string's win over the body's on duplicates (as on the venue).
struct Params(BTreeMap<String, String>);

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Params {
    fn parse(query: &str, body: &str) -> Self {
        let mut map = BTreeMap::new();
        for raw in [body, query] {
            for part in raw.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = part.split_once('=').unwrap_or((part, ""));
                map.insert(percent_decode(k), percent_decode(v));
            }
        }
        Self(map)
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    fn required(&self, k: &str) -> Result<&str, ApiError> {
        self.get(k).ok_or_else(|| ApiError::mandatory(k))
    }

    fn decimal(&self, k: &str) -> Result<Option<Decimal>, ApiError> {
        self.get(k)
            .map(|v| {
                let ok = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.') && v.len() <= 41;
                ok.then(|| Decimal::from_str(v).ok())
                    .flatten()
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            -1100,
                            format!(
                                "Illegal characters found in parameter '{k}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'."
                            ),
                        )
                    })
            })
            .transpose()
    }

    fn bool(&self, k: &str) -> Result<bool, ApiError> {
        match self.get(k) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(_) => Err(ApiError::bad_request(
                -1130,
                format!("Data sent for parameter '{k}' is not valid."),
            )),
        }
    }
}

fn filter_error(e: &FilterError, min_notional: Decimal) -> ApiError {
    let code = e.venue_code().unwrap_or(-1013);
    let msg = match code {
        -4001 => "Price less than 0.".to_owned(),
        -4002 => "Price greater than max price.".to_owned(),
        -4003 => "Quantity less than or equal to zero.".to_owned(),
        -4004 => "Quantity less than min quantity.".to_owned(),
        -4005 => "Quantity greater than max quantity.".to_owned(),
        -4013 => "Price less than min price.".to_owned(),
        -4014 => "Price not increased by tick size.".to_owned(),
        -4016 => "Price higher than multiplier up.".to_owned(),
        -4023 => "Quantity not increased by step size.".to_owned(),
        -4024 => "Price lower than multiplier down.".to_owned(),
        -1111 => "Precision is over the maximum defined for this asset.".to_owned(),
        -4164 => format!(
            "Order's notional must be no smaller than {} (unless you choose reduce only).",
            to_wire_string(min_notional)
        ),
        _ => e.to_string(),
    };
    ApiError::bad_request(code, msg)
}

fn sign_of(side: OrderSide) -> Decimal {
    match side {
        OrderSide::Buy => Decimal::ONE,
        OrderSide::Sell => Decimal::NEGATIVE_ONE,
    }
}

fn signum(v: Decimal) -> Decimal {
    match v.cmp(&Decimal::ZERO) {
        std::cmp::Ordering::Greater => Decimal::ONE,
        std::cmp::Ordering::Less => Decimal::NEGATIVE_ONE,
        std::cmp::Ordering::Equal => Decimal::ZERO,
    }
}

fn fmt8(v: Decimal) -> String {
    v.round_dp(8).normalize().to_string()
}

fn json<T: serde::Serialize>(v: &T) -> Response {
    match serde_json::to_string(v) {
        Ok(s) => ([(axum::http::header::CONTENT_TYPE, "application/json")], s).into_response(),
        Err(e) => error(&ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            -1000,
            e.to_string(),
        )),
    }
}

/// The venue's error response.
pub fn error(e: &ApiError) -> Response {
    (
        e.status,
        axum::Json(wire::ApiErrorBody {
            code: e.code,
            msg: e.msg.clone(),
        }),
    )
        .into_response()
}

/// How many `/fapi/v1/order` requests [`Trading::order_requests`] remembers.
pub const ORDER_LOG_LEN: usize = 10_000;

/// The venue's weight of a trading request (`server::request_weight` asks here for paths it does not
/// serve itself).
pub fn request_weight(path: &str, query: &str) -> u32 {
    let has_symbol = query.split('&').any(|p| p.starts_with("symbol="));
    match path {
        "/fapi/v1/openOrders" if !has_symbol => 40,
        "/fapi/v2/positionRisk"
        | "/fapi/v3/positionRisk"
        | "/fapi/v2/account"
        | "/fapi/v3/account"
        | "/fapi/v2/balance"
        | "/fapi/v3/balance" => 5,
        "/fapi/v1/positionSide/dual" => 30,
        "/fapi/v1/forceOrders" if has_symbol => 20,
        "/fapi/v1/forceOrders" => 50,
        "/fapi/v1/order"
        | "/fapi/v1/openOrder"
        | "/fapi/v1/openOrders"
        | "/fapi/v1/allOpenOrders"
        | "/fapi/v1/leverage"
        | "/fapi/v1/marginType"
        | "/fapi/v1/leverageBracket"
        | "/fapi/v1/listenKey" => 1,
        _ => 0,
    }
}

impl Trading {
    /// The trading side over `source`, with the symbols of `info`.
    pub fn new(
        source: Arc<dyn MarketSource>,
        clock: SimClock,
        info: &wire::ExchangeInfo,
        settings: TradingSettings,
    ) -> Self {
        let symbols = info
            .symbols
            .iter()
            .enumerate()
            .filter_map(|(index, s)| {
                SymbolFilters::from_symbol_info(s)
                    .ok()
                    .map(|filters| (s.symbol.clone(), SymbolEntry { index, filters }))
            })
            .collect();
        let (events, _) = broadcast::channel(4096);
        let keys = ListenKeys::new(settings.listen_key_validity, now_ms().unsigned_abs());
        Self {
            source,
            clock,
            book: Mutex::new(Book {
                wallet: settings.starting_balance,
                dual_side: false,
                cfg: HashMap::new(),
                positions: BTreeMap::new(),
                orders: BTreeMap::new(),
                by_client: HashMap::new(),
                next_order_id: 1_000_001,
                next_trade_id: 5_000_001,
                liquidation_seq: 0,
                order_times: VecDeque::new(),
            }),
            settings,
            symbols,
            events,
            keys: Mutex::new(keys),
            order_faults: Mutex::new(VecDeque::new()),
            endpoint_faults: Mutex::new(Vec::new()),
            endpoint_delays: Mutex::new(Vec::new()),
            order_log: Mutex::new(VecDeque::new()),
            stats: TradingStats::default(),
        }
    }

    /// The next order POSTs are answered as `fault` says (FIFO).
    pub fn push_order_fault(&self, fault: OrderFault) {
        if let Ok(mut f) = self.order_faults.lock() {
            f.push_back(fault);
        }
    }

    /// The next request to `path` (any method) is refused with `error` (a 418 or 429 carries
    /// `Retry-After: 1`).
    pub fn fail_next(&self, path: &str, error: ApiError) {
        if let Ok(mut f) = self.endpoint_faults.lock() {
            f.push((path.to_owned(), error));
        }
    }

    /// The next request to `path` (any method) is answered only after `delay` (tokio time, so a
    /// paused clock skips it); the request is served normally then.
    pub fn delay_next(&self, path: &str, delay: Duration) {
        if let Ok(mut f) = self.endpoint_delays.lock() {
            f.push((path.to_owned(), delay));
        }
    }

    /// The methods of the authenticated `/fapi/v1/order` requests that named `client_order_id`
    /// (`newClientOrderId` or `origClientOrderId`), in arrival order, among the last
    /// [`ORDER_LOG_LEN`].
    pub fn order_requests(&self, client_order_id: &str) -> Vec<Method> {
        self.order_log.lock().map_or_else(
            |_| Vec::new(),
            |l| {
                l.iter()
                    .filter(|(_, id)| id == client_order_id)
                    .map(|(m, _)| m.clone())
                    .collect()
            },
        )
    }

    /// Orders at the venue with this client order id (any state; tests of exactly-once submits).
    pub fn orders_with_client_id(&self, client_order_id: &str) -> usize {
        self.book.lock().map_or(0, |b| {
            b.orders
                .values()
                .filter(|o| o.client_id == client_order_id)
                .count()
        })
    }

    /// Every client order id at the venue (any state, visible or not yet) with its number of orders:
    /// the venue's side of a soak's "each id at most once, none lost".
    pub fn client_order_ids(&self) -> BTreeMap<String, usize> {
        self.book.lock().map_or_else(
            |_| BTreeMap::new(),
            |b| {
                let mut ids = BTreeMap::new();
                for o in b.orders.values() {
                    *ids.entry(o.client_id.clone()).or_default() += 1;
                }
                ids
            },
        )
    }

    /// Signed position of `symbol` (`BOTH` leg in one-way mode).
    pub fn position(&self, symbol: &str) -> Decimal {
        let Some(e) = self.symbols.get(symbol) else {
            return Decimal::ZERO;
        };
        self.book.lock().map_or(Decimal::ZERO, |b| {
            b.positions
                .iter()
                .filter(|((s, _), _)| *s == e.index)
                .map(|(_, p)| p.qty)
                .sum()
        })
    }

    /// Fills an open order now at its own price, as if the market had traded there (tests: "filled
    /// while the console was down").
    pub fn admin_fill(&self, client_order_id: &str, qty: Decimal) -> bool {
        let now = self.clock.now();
        let Ok(mut b) = self.book.lock() else { return false };
        let Some(&id) = b.by_client.get(client_order_id) else {
            return false;
        };
        let Some(o) = b.orders.get(&id).filter(|o| o.is_open()).cloned() else {
            return false;
        };
        let price = if o.price > Decimal::ZERO {
            o.price
        } else {
            self.mark(o.symbol)
        };
        let left = o.qty - o.executed;
        self.execute(&mut b, id, qty.min(left), price, true, now);
        true
    }

    /// Drops the live listenKey now (the venue expired it).
    pub fn expire_listen_key(&self) {
        if let Ok(mut k) = self.keys.lock() {
            k.expire_now();
        }
    }

    /// A receiver of the account's user-stream frames, if `key` is a live listenKey.
    pub fn user_stream(&self, key: &str) -> Option<broadcast::Receiver<String>> {
        let live = self
            .keys
            .lock()
            .ok()
            .and_then(|mut k| k.expires_at(key, now_ms()))
            .is_some();
        live.then(|| self.events.subscribe())
    }

    /// When `key` expires (wall clock), if it is live.
    pub fn listen_key_expires_at(&self, key: &str) -> Option<TimestampMs> {
        self.keys
            .lock()
            .ok()
            .and_then(|mut k| k.expires_at(key, now_ms()))
    }

    fn mark(&self, symbol: usize) -> Decimal {
        let m = self.source.mark(symbol, self.clock.now()).mark_price;
        let dp = self.source.symbols()[symbol].price_precision + 2;
        Decimal::from_f64_retain(m).map_or(Decimal::ZERO, |d| d.round_dp(dp))
    }

    fn entry(&self, name: &str) -> Result<&SymbolEntry, ApiError> {
        self.symbols
            .get(name)
            .ok_or_else(|| ApiError::bad_request(-1121, "Invalid symbol."))
    }

    fn name(&self, symbol: usize) -> &str {
        &self.source.symbols()[symbol].name
    }

    fn tick_of(&self, symbol: usize) -> Decimal {
        self.symbols
            .get(self.name(symbol))
            .map_or(Decimal::ZERO, |e| e.filters.price.tick)
    }

    fn cfg(&self, b: &Book, symbol: usize) -> SymbolCfg {
        b.cfg.get(&symbol).copied().unwrap_or(SymbolCfg {
            leverage: self.settings.default_leverage,
            isolated: false,
        })
    }

    fn emit<T: serde::Serialize>(&self, ev: &T) {
        if let Ok(s) = serde_json::to_string(ev) {
            // No subscriber is fine: the venue drops events nobody listens to as well.
            let _ = self.events.send(s);
        }
    }

    fn response(&self, o: &SimOrder) -> OrderResponse {
        let avg = if o.executed.is_zero() {
            Decimal::ZERO
        } else {
            (o.cum_quote / o.executed).round_dp(8)
        };
        OrderResponse {
            order_id: o.id,
            symbol: self.name(o.symbol).to_owned(),
            status: o.status.to_owned(),
            client_order_id: o.client_id.clone(),
            price: to_wire_string(o.price),
            avg_price: to_wire_string(avg),
            orig_qty: to_wire_string(o.qty),
            executed_qty: to_wire_string(o.executed),
            cum_quote: fmt8(o.cum_quote),
            time_in_force: "GTC".to_owned(),
            order_type: o.typ.as_str().to_owned(),
            reduce_only: o.reduce_only,
            close_position: o.close_position,
            side: o.side.as_str().to_owned(),
            position_side: o.pside.as_str().to_owned(),
            stop_price: to_wire_string(o.stop),
            working_type: "MARK_PRICE".to_owned(),
            orig_type: o.typ.as_str().to_owned(),
            time: o.time,
            update_time: o.update_time,
        }
    }

    /// Ends an open order without a fill (`CANCELED`, `EXPIRED`) and pushes its `ORDER_TRADE_UPDATE`.
    fn end_order(
        &self,
        orders: &mut BTreeMap<i64, SimOrder>,
        id: i64,
        status: &'static str,
        now: TimestampMs,
    ) {
        if let Some(o) = orders.get_mut(&id) {
            o.status = status;
            o.update_time = now;
            self.order_event(
                o,
                status,
                Decimal::ZERO,
                Decimal::ZERO,
                0,
                Decimal::ZERO,
                Decimal::ZERO,
                false,
                now,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn order_event(
        &self,
        o: &SimOrder,
        execution: &str,
        last_qty: Decimal,
        last_price: Decimal,
        trade_id: i64,
        fee: Decimal,
        realized: Decimal,
        maker: bool,
        now: TimestampMs,
    ) {
        let r = self.response(o);
        self.emit(&OrderTradeUpdate {
            event_type: "ORDER_TRADE_UPDATE".into(),
            event_time: now,
            transaction_time: now,
            order: OrderUpdate {
                symbol: r.symbol,
                client_order_id: r.client_order_id,
                side: r.side,
                order_type: r.order_type.clone(),
                time_in_force: r.time_in_force,
                orig_qty: r.orig_qty,
                price: r.price,
                avg_price: r.avg_price,
                stop_price: r.stop_price,
                execution_type: execution.to_owned(),
                status: r.status,
                order_id: r.order_id,
                last_qty: to_wire_string(last_qty),
                cum_qty: r.executed_qty,
                last_price: to_wire_string(last_price),
                commission_asset: Some("USDT".into()),
                commission: Some(fmt8(fee)),
                trade_time: now,
                trade_id,
                maker,
                reduce_only: r.reduce_only,
                working_type: r.working_type,
                orig_type: r.order_type,
                position_side: r.position_side,
                close_position: r.close_position,
                realized_profit: fmt8(realized),
            },
        });
    }

    fn account_event(&self, b: &Book, key: (usize, PSide), reason: &str, now: TimestampMs) {
        let p = b.positions.get(&key).copied().unwrap_or_default();
        let cfg = self.cfg(b, key.0);
        let mark = self.mark(key.0);
        self.emit(&AccountUpdate {
            event_type: "ACCOUNT_UPDATE".into(),
            event_time: now,
            transaction_time: now,
            data: AccountUpdateData {
                reason: reason.into(),
                balances: vec![BalanceUpdate {
                    asset: "USDT".into(),
                    wallet_balance: fmt8(b.wallet),
                    cross_wallet_balance: fmt8(b.wallet),
                    balance_change: "0".into(),
                }],
                positions: vec![PositionUpdate {
                    symbol: self.name(key.0).to_owned(),
                    position_amt: to_wire_string(p.qty),
                    entry_price: to_wire_string(p.entry),
                    break_even_price: to_wire_string(p.entry),
                    accumulated_realized: "0".into(),
                    unrealized_pnl: fmt8(p.qty * (mark - p.entry)),
                    margin_type: if cfg.isolated { "isolated" } else { "cross" }.into(),
                    isolated_wallet: fmt8(p.isolated_wallet),
                    position_side: key.1.as_str().into(),
                }],
            },
        });
    }

    /// Executes `qty` of order `id` at `price` (reduce-only clipping, margin, `PnL`, events).
    fn execute(&self, b: &mut Book, id: i64, qty: Decimal, price: Decimal, maker: bool, now: TimestampMs) {
        let Some(o) = b.orders.get(&id).cloned() else {
            return;
        };
        let key = (o.symbol, o.pside);
        let pos = b.positions.get(&key).copied().unwrap_or_default();
        let s = sign_of(o.side);
        let reducing_only = o.reduce_only || o.close_position || (b.dual_side && Self::closes_hedge_leg(&o));
        let qty = if reducing_only {
            let opposite = pos.qty * s < Decimal::ZERO;
            let allowed = if opposite { pos.qty.abs() } else { Decimal::ZERO };
            if o.close_position {
                allowed
            } else {
                qty.min(allowed)
            }
        } else {
            qty
        };
        if qty <= Decimal::ZERO {
            self.end_order(&mut b.orders, id, "EXPIRED", now);
            return;
        }
        let cfg = self.cfg(b, o.symbol);
        let lev = Decimal::from(cfg.leverage.max(1));
        let fee = qty
            * price
            * if maker {
                self.settings.maker_fee
            } else {
                self.settings.taker_fee
            };
        let mut p = pos;
        let mut realized = Decimal::ZERO;
        let signed = s * qty;
        if p.qty.is_zero() || (p.qty > Decimal::ZERO) == (signed > Decimal::ZERO) {
            let new_qty = p.qty + signed;
            p.entry = (p.qty.abs() * p.entry + qty * price) / new_qty.abs();
            p.qty = new_qty;
            if cfg.isolated {
                let margin = qty * price / lev;
                p.isolated_wallet += margin;
                b.wallet -= margin;
            }
        } else {
            let close = qty.min(p.qty.abs());
            realized = close * (price - p.entry) * signum(p.qty);
            if cfg.isolated {
                let release = p.isolated_wallet * close / p.qty.abs();
                p.isolated_wallet -= release;
                b.wallet += release;
            }
            p.qty += s * close;
            if p.qty.is_zero() {
                p.entry = Decimal::ZERO;
                b.wallet += p.isolated_wallet;
                p.isolated_wallet = Decimal::ZERO;
            }
            let rest = qty - close;
            if rest > Decimal::ZERO {
                p.qty = s * rest;
                p.entry = price;
                if cfg.isolated {
                    let margin = rest * price / lev;
                    p.isolated_wallet += margin;
                    b.wallet -= margin;
                }
            }
        }
        b.wallet += realized - fee;
        b.positions.insert(key, p);
        b.next_trade_id += 1;
        let trade_id = b.next_trade_id;
        if let Some(o) = b.orders.get_mut(&id) {
            o.executed += qty;
            o.cum_quote += qty * price;
            o.status = if o.executed >= o.qty || o.close_position || o.typ != OType::Limit {
                "FILLED"
            } else {
                "PARTIALLY_FILLED"
            };
            if o.close_position {
                o.qty = o.executed;
            }
            o.update_time = now;
        }
        if let Some(o) = b.orders.get(&id) {
            let execution = if o.client_id.starts_with("autoclose-") {
                "CALCULATED"
            } else {
                "TRADE"
            };
            self.order_event(o, execution, qty, price, trade_id, fee, realized, maker, now);
        }
        self.account_event(b, key, "ORDER", now);
    }

    /// In hedge mode a SELL on the LONG leg or a BUY on the SHORT leg closes.
    fn closes_hedge_leg(o: &SimOrder) -> bool {
        matches!(
            (o.pside, o.side),
            (PSide::Long, OrderSide::Sell) | (PSide::Short, OrderSide::Buy)
        )
    }

    fn market_price(&self, symbol: usize, side: OrderSide, qty: Decimal) -> Decimal {
        let mark = self.mark(symbol);
        let notional = mark * qty;
        let slip = self.settings.slippage + notional / Decimal::from(1_000_000_000);
        let raw = mark * (Decimal::ONE + sign_of(side) * slip);
        let tick = self.tick_of(symbol);
        if tick.is_zero() {
            return raw;
        }
        let steps = raw / tick;
        let steps = match side {
            OrderSide::Buy => steps.ceil(),
            OrderSide::Sell => steps.floor(),
        };
        steps * tick
    }

    /// Matches resting orders and triggers against the mark prices, then checks liquidations.
    pub fn tick(&self) {
        let now = self.clock.now();
        let Ok(mut b) = self.book.lock() else { return };
        let open: Vec<SimOrder> = b.orders.values().filter(|o| o.is_open()).cloned().collect();
        for o in open {
            let mark = self.mark(o.symbol);
            let buy = o.side == OrderSide::Buy;
            let left = o.qty - o.executed;
            match o.typ {
                OType::Limit => {
                    if (buy && mark <= o.price) || (!buy && mark >= o.price) {
                        self.execute(&mut b, o.id, left, o.price, true, now);
                    }
                }
                OType::StopMarket | OType::TakeProfitMarket => {
                    let up = mark >= o.stop;
                    let down = mark <= o.stop;
                    let fire = match (o.typ, buy) {
                        (OType::StopMarket, true) | (OType::TakeProfitMarket, false) => up,
                        _ => down,
                    };
                    if fire {
                        let price = self.market_price(o.symbol, o.side, left);
                        self.execute(&mut b, o.id, left, price, false, now);
                    }
                }
                OType::Market => {}
            }
        }
        self.liquidate(&mut b, now);
    }

    fn liquidate(&self, b: &mut Book, now: TimestampMs) {
        let mut victims: Vec<(usize, PSide)> = Vec::new();
        let mut cross_equity = b.wallet;
        let mut cross_mm = Decimal::ZERO;
        let mut cross_keys = Vec::new();
        for (&key, p) in &b.positions {
            if p.qty.is_zero() {
                continue;
            }
            let mark = self.mark(key.0);
            let upnl = p.qty * (mark - p.entry);
            let mm = brackets::maintenance_margin(self.name(key.0), p.qty.abs() * mark);
            if self.cfg(b, key.0).isolated {
                if p.isolated_wallet + upnl <= mm {
                    victims.push(key);
                }
            } else {
                cross_equity += upnl;
                cross_mm += mm;
                cross_keys.push(key);
            }
        }
        if !cross_keys.is_empty() && cross_equity <= cross_mm {
            victims.extend(cross_keys);
        }
        for key in victims {
            let Some(p) = b.positions.get(&key).copied() else {
                continue;
            };
            let side = if p.qty > Decimal::ZERO {
                OrderSide::Sell
            } else {
                OrderSide::Buy
            };
            b.liquidation_seq += 1;
            b.next_order_id += 1;
            let id = b.next_order_id;
            let client_id = format!("autoclose-{now}{:04}", b.liquidation_seq);
            let mark = self.mark(key.0);
            b.orders.insert(
                id,
                SimOrder {
                    id,
                    client_id: client_id.clone(),
                    symbol: key.0,
                    side,
                    typ: OType::Limit,
                    qty: p.qty.abs(),
                    price: mark,
                    stop: Decimal::ZERO,
                    reduce_only: true,
                    close_position: false,
                    pside: key.1,
                    status: "NEW",
                    executed: Decimal::ZERO,
                    cum_quote: Decimal::ZERO,
                    time: now,
                    update_time: now,
                    visible_at: None,
                },
            );
            b.by_client.insert(client_id, id);
            self.stats.liquidations.fetch_add(1, Ordering::Relaxed);
            let isolated = self.cfg(b, key.0).isolated;
            let wallet_before = b.wallet;
            self.execute(b, id, p.qty.abs(), mark, false, now);
            if isolated {
                // The whole isolated margin is forfeited (what is left of it goes to the insurance
                // fund); the loss never reaches the wallet beyond it.
                b.wallet = wallet_before;
            } else if b.wallet < Decimal::ZERO {
                b.wallet = Decimal::ZERO;
            }
        }
    }

    /// Available balance: cross wallet + cross `PnL` − cross position margin − open-order margin.
    fn available(&self, b: &Book) -> Decimal {
        let mut avail = b.wallet;
        for (&(s, _), p) in &b.positions {
            if p.qty.is_zero() || self.cfg(b, s).isolated {
                continue;
            }
            let mark = self.mark(s);
            let lev = Decimal::from(self.cfg(b, s).leverage.max(1));
            avail += p.qty * (mark - p.entry) - p.qty.abs() * mark / lev;
        }
        for o in b
            .orders
            .values()
            .filter(|o| o.is_open() && !o.reduce_only && !o.close_position)
        {
            let price = if o.price > Decimal::ZERO { o.price } else { o.stop };
            let lev = Decimal::from(self.cfg(b, o.symbol).leverage.max(1));
            avail -= (o.qty - o.executed) * price / lev;
        }
        avail
    }

    fn new_order(&self, p: &Params) -> Result<OrderResponse, ApiError> {
        let entry = self.entry(p.required("symbol")?)?;
        let symbol = entry.index;
        let side = match p.required("side")? {
            "BUY" => OrderSide::Buy,
            "SELL" => OrderSide::Sell,
            _ => return Err(ApiError::bad_request(-1117, "Invalid side.")),
        };
        let typ = match p.required("type")? {
            "MARKET" => OType::Market,
            "LIMIT" => OType::Limit,
            "STOP_MARKET" => OType::StopMarket,
            "TAKE_PROFIT_MARKET" => OType::TakeProfitMarket,
            _ => return Err(ApiError::bad_request(-1116, "Invalid orderType.")),
        };
        let close_position = p.bool("closePosition")?;
        let reduce_only = p.bool("reduceOnly")?;
        let qty = p.decimal("quantity")?;
        let price = p.decimal("price")?.unwrap_or_default();
        let stop = p.decimal("stopPrice")?.unwrap_or_default();
        let client_id = match p.get("newClientOrderId") {
            Some(id) if !is_valid_client_order_id(id) => {
                return Err(ApiError::bad_request(-4015, "Client order id is not valid."));
            }
            Some(id) => Some(id.to_owned()),
            None => None,
        };
        if close_position && !matches!(typ, OType::StopMarket | OType::TakeProfitMarket) {
            return Err(ApiError::bad_request(
                -4136,
                "Target strategy invalid for orderType MARKET,closePosition true",
            ));
        }
        if close_position && reduce_only {
            return Err(ApiError::bad_request(
                -1106,
                "Parameter 'reduceonly' sent when not required.",
            ));
        }
        if typ == OType::Limit && price.is_zero() {
            return Err(ApiError::mandatory("price"));
        }
        if typ == OType::Limit && p.get("timeInForce").is_none() {
            return Err(ApiError::mandatory("timeInForce"));
        }
        if matches!(typ, OType::StopMarket | OType::TakeProfitMarket) && stop.is_zero() {
            return Err(ApiError::mandatory("stopPrice"));
        }
        let mark = self.mark(symbol);
        let filters = &entry.filters;
        let qty = if close_position {
            Decimal::ZERO
        } else {
            let q = qty.ok_or_else(|| ApiError::mandatory("quantity"))?;
            let kind = if typ == OType::Limit {
                OrderKind::Limit
            } else {
                OrderKind::Market
            };
            filters
                .validate(
                    &RoundedOrder {
                        side,
                        kind,
                        price: (typ == OType::Limit).then_some(price),
                        qty: q,
                    },
                    reduce_only,
                    mark,
                )
                .map_err(|e| filter_error(&e, filters.min_notional))?;
            q
        };
        if !stop.is_zero() {
            filters
                .round_price(side, stop)
                .ok()
                .filter(|r| *r == stop)
                .ok_or_else(|| {
                    filter_error(
                        &FilterError::PriceOffTick {
                            price: stop,
                            tick: filters.price.tick,
                        },
                        filters.min_notional,
                    )
                })?;
            let buy = side == OrderSide::Buy;
            let immediate = match typ {
                OType::StopMarket => (buy && mark >= stop) || (!buy && mark <= stop),
                _ => (buy && mark <= stop) || (!buy && mark >= stop),
            };
            if immediate {
                return Err(ApiError::bad_request(-2021, "Order would immediately trigger."));
            }
        }
        let now = self.clock.now();
        let mut b = self
            .book
            .lock()
            .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, -1000, "book lock poisoned"))?;
        let pside = match (b.dual_side, p.get("positionSide").unwrap_or("BOTH")) {
            (false, "BOTH") => PSide::Both,
            (true, "LONG") => PSide::Long,
            (true, "SHORT") => PSide::Short,
            _ => {
                return Err(ApiError::bad_request(
                    -4061,
                    "Order's position side does not match user's setting.",
                ));
            }
        };
        if b.dual_side && reduce_only {
            return Err(ApiError::bad_request(
                -1106,
                "Parameter 'reduceonly' sent when not required.",
            ));
        }
        if client_id.as_ref().is_some_and(|c| b.by_client.contains_key(c)) {
            return Err(ApiError::bad_request(-4116, "ClientOrderId is duplicated."));
        }
        if reduce_only {
            let pos = b.positions.get(&(symbol, pside)).map_or(Decimal::ZERO, |p| p.qty);
            if pos * sign_of(side) >= Decimal::ZERO {
                return Err(ApiError::bad_request(-2022, "ReduceOnly Order is rejected."));
            }
        }
        let opening = !(reduce_only
            || close_position
            || (b.dual_side
                && matches!(
                    (pside, side),
                    (PSide::Long, OrderSide::Sell) | (PSide::Short, OrderSide::Buy)
                )));
        if opening {
            let ref_price = if price > Decimal::ZERO {
                price
            } else if stop > Decimal::ZERO {
                stop
            } else {
                mark
            };
            let leverage = self.cfg(&b, symbol).leverage.max(1);
            // The bracket at this leverage caps the position the order would leave.
            let held = b.positions.get(&(symbol, pside)).map_or(Decimal::ZERO, |p| p.qty);
            let after = (held + sign_of(side) * qty).abs() * ref_price;
            if after > held.abs() * ref_price && after > brackets::max_notional(self.name(symbol), leverage) {
                return Err(ApiError::bad_request(
                    -2027,
                    "Exceeded the maximum allowable position at current leverage.",
                ));
            }
            let lev = Decimal::from(leverage);
            let needed = qty * ref_price / lev + qty * ref_price * self.settings.taker_fee;
            if needed > self.available(&b) {
                return Err(ApiError::bad_request(-2019, "Margin is insufficient."));
            }
        }
        b.next_order_id += 1;
        let id = b.next_order_id;
        // The venue generates an id when none is sent.
        let client_id = client_id.unwrap_or_else(|| format!("sim-{id}"));
        let order = SimOrder {
            id,
            client_id: client_id.clone(),
            symbol,
            side,
            typ,
            qty,
            price,
            stop,
            reduce_only,
            close_position,
            pside,
            status: "NEW",
            executed: Decimal::ZERO,
            cum_quote: Decimal::ZERO,
            time: now,
            update_time: now,
            visible_at: None,
        };
        b.orders.insert(id, order.clone());
        b.by_client.insert(client_id, id);
        self.stats.orders_created.fetch_add(1, Ordering::Relaxed);
        self.order_event(
            &order,
            "NEW",
            Decimal::ZERO,
            Decimal::ZERO,
            0,
            Decimal::ZERO,
            Decimal::ZERO,
            false,
            now,
        );
        match typ {
            OType::Market => {
                let fill = self.market_price(symbol, side, qty);
                self.execute(&mut b, id, qty, fill, false, now);
            }
            OType::Limit => {
                let market = self.market_price(symbol, side, qty);
                let crosses = match side {
                    OrderSide::Buy => market <= price,
                    OrderSide::Sell => market >= price,
                };
                if crosses {
                    self.execute(&mut b, id, qty, market, false, now);
                }
            }
            OType::StopMarket | OType::TakeProfitMarket => {}
        }
        let resp = b.orders.get(&id).map(|o| self.response(o));
        resp.ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, -1000, "order vanished"))
    }

    fn find(&self, b: &Book, p: &Params) -> Result<Option<i64>, ApiError> {
        let entry = self.entry(p.required("symbol")?)?;
        let id = if let Some(id) = p.get("orderId") {
            id.parse::<i64>().ok()
        } else if let Some(c) = p.get("origClientOrderId") {
            b.by_client.get(c).copied()
        } else {
            return Err(ApiError::bad_request(
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            ));
        };
        Ok(id.filter(|id| {
            b.orders
                .get(id)
                .is_some_and(|o| o.symbol == entry.index && o.is_visible())
        }))
    }

    fn query_order(&self, p: &Params) -> Result<OrderResponse, ApiError> {
        let b = self.lock()?;
        let id = self.find(&b, p)?;
        id.and_then(|id| b.orders.get(&id))
            .map(|o| self.response(o))
            .ok_or_else(|| ApiError::bad_request(-2013, "Order does not exist."))
    }

    fn cancel_order(&self, p: &Params) -> Result<OrderResponse, ApiError> {
        let now = self.clock.now();
        let mut b = self.lock()?;
        let id = self
            .find(&b, p)?
            .filter(|id| b.orders.get(id).is_some_and(SimOrder::is_open))
            .ok_or_else(|| ApiError::bad_request(-2011, "Unknown order sent."))?;
        if let Some(o) = b.orders.get_mut(&id) {
            o.status = "CANCELED";
            o.update_time = now;
        }
        let o = b
            .orders
            .get(&id)
            .ok_or_else(|| ApiError::bad_request(-2011, "Unknown order sent."))?;
        self.order_event(
            o,
            "CANCELED",
            Decimal::ZERO,
            Decimal::ZERO,
            0,
            Decimal::ZERO,
            Decimal::ZERO,
            false,
            now,
        );
        Ok(self.response(o))
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Book>, ApiError> {
        self.book
            .lock()
            .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, -1000, "book lock poisoned"))
    }

    fn symbol_filter(&self, p: &Params) -> Result<Option<usize>, ApiError> {
        p.get("symbol")
            .map(|s| self.entry(s).map(|e| e.index))
            .transpose()
    }

    fn open_orders(&self, p: &Params) -> Result<Vec<OrderResponse>, ApiError> {
        let only = self.symbol_filter(p)?;
        let b = self.lock()?;
        Ok(b.orders
            .values()
            .filter(|o| o.is_open() && o.is_visible() && only.is_none_or(|s| s == o.symbol))
            .map(|o| self.response(o))
            .collect())
    }

    /// `GET /fapi/v1/forceOrders`: the account's liquidation orders (ours are the `autoclose-`
    /// orders the liquidation engine places), newest first, at most `limit` (default 50, max 100).
    fn force_orders(&self, p: &Params) -> Result<Vec<OrderResponse>, ApiError> {
        let only = self.symbol_filter(p)?;
        let limit = match p.get("limit") {
            None => 50,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|l| (1..=100).contains(l))
                .ok_or_else(|| {
                    ApiError::bad_request(-1130, "Data sent for parameter 'limit' is not valid.")
                })?,
        };
        let b = self.lock()?;
        let mut out: Vec<&SimOrder> = b
            .orders
            .values()
            .filter(|o| o.client_id.starts_with("autoclose-") && only.is_none_or(|s| s == o.symbol))
            .collect();
        out.sort_by_key(|o| std::cmp::Reverse((o.time, o.id)));
        Ok(out.into_iter().take(limit).map(|o| self.response(o)).collect())
    }

    fn cancel_all(&self, p: &Params) -> Result<CodeMsg, ApiError> {
        let symbol = self.entry(p.required("symbol")?)?.index;
        let now = self.clock.now();
        let mut b = self.lock()?;
        let ids: Vec<i64> = b
            .orders
            .values()
            .filter(|o| o.is_open() && o.symbol == symbol)
            .map(|o| o.id)
            .collect();
        for id in ids {
            self.end_order(&mut b.orders, id, "CANCELED", now);
        }
        Ok(CodeMsg {
            code: 200,
            msg: "The operation of cancel all open order is done.".into(),
        })
    }

    fn liquidation_price(&self, b: &Book, key: (usize, PSide), p: &Position) -> Decimal {
        // One-way formula of PROTOCOL.md §10 over the symbol's brackets: WB is the isolated wallet or
        // the cross wallet; the tier is the one holding the notional at the liquidation price (the
        // entry's tier when none is consistent, which only rounding can cause).
        if p.qty.is_zero() {
            return Decimal::ZERO;
        }
        let wb = if self.cfg(b, key.0).isolated {
            p.isolated_wallet
        } else {
            b.wallet
        };
        let side = signum(p.qty);
        let q = p.qty.abs();
        let name = self.name(key.0);
        let at = |t: &brackets::SimTier| {
            let denom = q * t.mmr - side * q;
            (!denom.is_zero()).then(|| (wb - side * q * p.entry + t.cum) / denom)
        };
        let consistent = brackets::tiers(name).find_map(|t| {
            let lp = at(&t)?;
            let notional = lp * q;
            (lp > Decimal::ZERO && notional >= t.floor && notional < t.cap).then_some(lp)
        });
        let lp = consistent.or_else(|| at(&brackets::tier_for(name, q * p.entry)));
        lp.unwrap_or_default().max(Decimal::ZERO).round_dp(8)
    }

    fn position_risk(&self, p: &Params) -> Result<Vec<PositionRisk>, ApiError> {
        let only = self.symbol_filter(p)?;
        let b = self.lock()?;
        let mut keys: Vec<(usize, PSide)> = b
            .positions
            .iter()
            .filter(|(_, pos)| !pos.qty.is_zero())
            .map(|(k, _)| *k)
            .collect();
        if let Some(s) = only
            && !keys.iter().any(|k| k.0 == s)
        {
            if b.dual_side {
                keys.extend([(s, PSide::Long), (s, PSide::Short)]);
            } else {
                keys.push((s, PSide::Both));
            }
        }
        Ok(keys
            .into_iter()
            .filter(|k| only.is_none_or(|s| s == k.0))
            .map(|key| {
                let pos = b.positions.get(&key).copied().unwrap_or_default();
                let cfg = self.cfg(&b, key.0);
                let mark = self.mark(key.0);
                PositionRisk {
                    symbol: self.name(key.0).to_owned(),
                    position_amt: to_wire_string(pos.qty),
                    entry_price: to_wire_string(pos.entry),
                    mark_price: to_wire_string(mark),
                    unrealized_profit: fmt8(pos.qty * (mark - pos.entry)),
                    liquidation_price: to_wire_string(self.liquidation_price(&b, key, &pos)),
                    leverage: cfg.leverage.to_string(),
                    margin_type: if cfg.isolated { "isolated" } else { "cross" }.into(),
                    isolated_margin: fmt8(
                        pos.isolated_wallet
                            + if cfg.isolated {
                                pos.qty * (mark - pos.entry)
                            } else {
                                Decimal::ZERO
                            },
                    ),
                    position_side: key.1.as_str().into(),
                    notional: fmt8(pos.qty * mark),
                    isolated_wallet: fmt8(pos.isolated_wallet),
                    update_time: self.clock.now(),
                }
            })
            .collect())
    }

    fn totals(&self, b: &Book) -> (Decimal, Decimal, Decimal) {
        let upnl: Decimal = b
            .positions
            .iter()
            .filter(|(_, p)| !p.qty.is_zero())
            .map(|(k, p)| p.qty * (self.mark(k.0) - p.entry))
            .sum();
        let isolated: Decimal = b.positions.values().map(|p| p.isolated_wallet).sum();
        (b.wallet + isolated, upnl, self.available(b).max(Decimal::ZERO))
    }

    fn account(&self) -> Result<AccountInfo, ApiError> {
        let b = self.lock()?;
        let (wallet, upnl, avail) = self.totals(&b);
        Ok(AccountInfo {
            can_trade: true,
            total_wallet_balance: fmt8(wallet),
            total_unrealized_profit: fmt8(upnl),
            total_margin_balance: fmt8(wallet + upnl),
            available_balance: fmt8(avail),
            assets: vec![AccountAsset {
                asset: "USDT".into(),
                wallet_balance: fmt8(wallet),
                unrealized_profit: fmt8(upnl),
                margin_balance: fmt8(wallet + upnl),
                available_balance: fmt8(avail),
            }],
            positions: b
                .positions
                .iter()
                .filter(|(_, p)| !p.qty.is_zero())
                .map(|(k, p)| AccountPosition {
                    symbol: self.name(k.0).to_owned(),
                    position_amt: to_wire_string(p.qty),
                    entry_price: to_wire_string(p.entry),
                    unrealized_profit: fmt8(p.qty * (self.mark(k.0) - p.entry)),
                    leverage: self.cfg(&b, k.0).leverage.to_string(),
                    isolated: self.cfg(&b, k.0).isolated,
                    position_side: k.1.as_str().into(),
                })
                .collect(),
        })
    }

    fn balance(&self) -> Result<Vec<Balance>, ApiError> {
        let b = self.lock()?;
        let (wallet, upnl, avail) = self.totals(&b);
        Ok(vec![Balance {
            account_alias: "SimA".into(),
            asset: "USDT".into(),
            balance: fmt8(wallet),
            cross_wallet_balance: fmt8(b.wallet),
            cross_un_pnl: fmt8(upnl),
            available_balance: fmt8(avail),
            max_withdraw_amount: fmt8(avail),
            margin_available: true,
            update_time: self.clock.now(),
        }])
    }

    fn leverage(&self, p: &Params) -> Result<LeverageResponse, ApiError> {
        let symbol = self.entry(p.required("symbol")?)?.index;
        let lev = p.required("leverage")?;
        let name = self.name(symbol);
        let lev = lev
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=brackets::max_leverage(name)).contains(l))
            .ok_or_else(|| ApiError::bad_request(-4028, format!("Leverage {lev} is not valid")))?;
        let mut b = self.lock()?;
        let cfg = self.cfg(&b, symbol);
        b.cfg.insert(symbol, SymbolCfg { leverage: lev, ..cfg });
        Ok(LeverageResponse {
            leverage: lev,
            max_notional_value: to_wire_string(brackets::max_notional(name, lev)),
            symbol: self.name(symbol).to_owned(),
        })
    }

    fn margin_type(&self, p: &Params) -> Result<CodeMsg, ApiError> {
        let symbol = self.entry(p.required("symbol")?)?.index;
        let isolated = match p.required("marginType")? {
            "ISOLATED" => true,
            "CROSSED" => false,
            _ => {
                return Err(ApiError::bad_request(
                    -1130,
                    "Data sent for parameter 'marginType' is not valid.",
                ));
            }
        };
        let mut b = self.lock()?;
        let cfg = self.cfg(&b, symbol);
        if cfg.isolated == isolated {
            return Err(ApiError::bad_request(-4046, "No need to change margin type."));
        }
        if b.positions
            .iter()
            .any(|((s, _), p)| *s == symbol && !p.qty.is_zero())
        {
            return Err(ApiError::bad_request(
                -4048,
                "Margin type cannot be changed if there exists position.",
            ));
        }
        b.cfg.insert(symbol, SymbolCfg { isolated, ..cfg });
        Ok(CodeMsg {
            code: 200,
            msg: "success".into(),
        })
    }

    /// `GET /fapi/v1/leverageBracket`: one symbol's entry as an object when `symbol` is sent, else
    /// every symbol's in an array (the venue's two documented shapes).
    fn leverage_brackets(&self, p: &Params) -> Result<Response, ApiError> {
        if let Some(name) = p.get("symbol") {
            self.entry(name)?;
            return Ok(json(&brackets::json_of(name)));
        }
        let mut names: Vec<&str> = self.symbols.keys().map(String::as_str).collect();
        names.sort_unstable();
        let all: Vec<serde_json::Value> = names.into_iter().map(brackets::json_of).collect();
        Ok(json(&all))
    }

    fn position_mode(&self, method: &Method, p: &Params) -> Result<Response, ApiError> {
        let mut b = self.lock()?;
        if method == Method::GET {
            return Ok(json(&DualSide {
                dual_side_position: b.dual_side,
            }));
        }
        let dual = match p.required("dualSidePosition")? {
            "true" => true,
            "false" => false,
            _ => {
                return Err(ApiError::bad_request(
                    -1130,
                    "Data sent for parameter 'dualSidePosition' is not valid.",
                ));
            }
        };
        if dual == b.dual_side {
            return Err(ApiError::bad_request(-4059, "No need to change position side."));
        }
        if b.positions.values().any(|p| !p.qty.is_zero()) || b.orders.values().any(SimOrder::is_open) {
            return Err(ApiError::bad_request(
                -4068,
                "Position side cannot be changed if there exists position.",
            ));
        }
        b.dual_side = dual;
        Ok(json(&CodeMsg {
            code: 200,
            msg: "success".into(),
        }))
    }

    fn listen_key(&self, method: &Method, p: &Params) -> Result<Response, ApiError> {
        let now = now_ms();
        let mut keys = self
            .keys
            .lock()
            .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, -1000, "key lock poisoned"))?;
        let invalid = || ApiError::bad_request(-1125, "This listenKey does not exist.");
        match *method {
            Method::POST => Ok(json(&ListenKey {
                listen_key: keys.create(now),
            })),
            Method::PUT => {
                // The current API identifies the key by the API key; older clients send `listenKey`.
                let key = match p.get("listenKey") {
                    Some(k) => k.to_owned(),
                    None => keys.current(now).ok_or_else(invalid)?,
                };
                if keys.keepalive(&key, now) {
                    Ok(json(&ListenKey { listen_key: key }))
                } else {
                    Err(invalid())
                }
            }
            Method::DELETE => {
                if let Some(k) = p.get("listenKey") {
                    keys.close(k);
                } else if let Some(k) = keys.current(now) {
                    keys.close(&k);
                }
                Ok(json(&serde_json::json!({})))
            }
            _ => Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                -1000,
                "method not allowed",
            )),
        }
    }

    fn order_count_headers(&self, resp: &mut Response) {
        let now = now_ms();
        let Ok(mut b) = self.book.lock() else { return };
        b.order_times.push_back(now);
        while b.order_times.front().is_some_and(|t| now - t >= 60_000) {
            b.order_times.pop_front();
        }
        let ten = b.order_times.iter().filter(|t| now - **t < 10_000).count();
        let minute = b.order_times.len();
        for (name, n) in [("X-MBX-ORDER-COUNT-10S", ten), ("X-MBX-ORDER-COUNT-1M", minute)] {
            if let Ok(v) = HeaderValue::from_str(&n.to_string()) {
                resp.headers_mut().insert(name, v);
            }
        }
    }

    async fn post_order(&self, p: &Params, planned: Option<OrderFault>) -> Response {
        let fault = planned.or_else(|| self.order_faults.lock().ok().and_then(|mut f| f.pop_front()));
        let Some(fault) = fault else {
            let mut resp = match self.new_order(p) {
                Ok(o) => json(&o),
                Err(e) => error(&e),
            };
            self.order_count_headers(&mut resp);
            return resp;
        };
        match fault.venue {
            FaultVenue::Never => {}
            FaultVenue::Exists | FaultVenue::AppearsAfter(_) => {
                if let Ok(o) = self.new_order(p)
                    && let FaultVenue::AppearsAfter(d) = fault.venue
                    && let Ok(mut b) = self.book.lock()
                    && let Some(order) = b.orders.get_mut(&o.order_id)
                {
                    order.visible_at = Some(tokio::time::Instant::now() + d);
                }
            }
        }
        tokio::time::sleep(fault.reply_delay).await;
        error(&ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            -1000,
            MSG_503_UNKNOWN,
        ))
    }

    /// Authenticates and serves one trading request. `planned` is the fault plan's unknown outcome
    /// for an order POST (`sim::faults`, `ounknown`); without one, a queued [`OrderFault`] applies.
    pub async fn handle(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &str,
        planned: Option<OrderFault>,
    ) -> Response {
        let path = uri.path();
        let query = uri.query().unwrap_or("");
        let params = Params::parse(query, body);
        let required = if path == "/fapi/v1/listenKey" {
            Required::ApiKey
        } else {
            Required::Signed
        };
        let key = headers.get("x-mbx-apikey").and_then(|v| v.to_str().ok());
        if let Err(e) = auth::verify(
            &self.settings.credentials,
            key,
            query,
            body,
            |k| params.get(k).map(str::to_owned),
            required,
            self.clock.now(),
        ) {
            self.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
            return error(&e);
        }
        match required {
            Required::Signed => self.stats.signed_requests.fetch_add(1, Ordering::Relaxed),
            Required::ApiKey => self.stats.key_requests.fetch_add(1, Ordering::Relaxed),
        };
        if path == "/fapi/v1/order"
            && let Some(id) = params
                .get("newClientOrderId")
                .or_else(|| params.get("origClientOrderId"))
            && let Ok(mut log) = self.order_log.lock()
        {
            if log.len() == ORDER_LOG_LEN {
                log.pop_front();
            }
            log.push_back((method.clone(), id.to_owned()));
        }
        let delay = self.endpoint_delays.lock().ok().and_then(|mut f| {
            let i = f.iter().position(|(p, _)| p == path)?;
            Some(f.remove(i).1)
        });
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let injected = self.endpoint_faults.lock().ok().and_then(|mut f| {
            let i = f.iter().position(|(p, _)| p == path)?;
            Some(f.remove(i).1)
        });
        if let Some(e) = injected {
            let mut r = error(&e);
            if matches!(e.status.as_u16(), 418 | 429) {
                // Injected limits carry a short Retry-After so tests see the client honour it.
                r.headers_mut()
                    .insert("Retry-After", HeaderValue::from_static("1"));
            }
            return r;
        }
        self.tick();
        let result = match (method.clone(), path) {
            (Method::POST, "/fapi/v1/order") => return self.post_order(&params, planned).await,
            (Method::GET, "/fapi/v1/order") => self.query_order(&params).map(|o| json(&o)),
            (Method::DELETE, "/fapi/v1/order") => self.cancel_order(&params).map(|o| json(&o)),
            (Method::GET, "/fapi/v1/openOrders") => self.open_orders(&params).map(|o| json(&o)),
            (Method::GET, "/fapi/v1/forceOrders") => self.force_orders(&params).map(|o| json(&o)),
            (Method::GET, "/fapi/v1/openOrder") => self.query_order(&params).and_then(|o| {
                if matches!(o.status.as_str(), "NEW" | "PARTIALLY_FILLED") {
                    Ok(json(&o))
                } else {
                    Err(ApiError::bad_request(-2013, "Order does not exist."))
                }
            }),
            (Method::DELETE, "/fapi/v1/allOpenOrders") => self.cancel_all(&params).map(|o| json(&o)),
            (Method::GET, "/fapi/v2/positionRisk" | "/fapi/v3/positionRisk") => {
                self.position_risk(&params).map(|o| json(&o))
            }
            (Method::GET, "/fapi/v2/account" | "/fapi/v3/account") => self.account().map(|o| json(&o)),
            (Method::GET, "/fapi/v2/balance" | "/fapi/v3/balance") => self.balance().map(|o| json(&o)),
            (Method::POST, "/fapi/v1/leverage") => self.leverage(&params).map(|o| json(&o)),
            (Method::POST, "/fapi/v1/marginType") => self.margin_type(&params).map(|o| json(&o)),
            (Method::GET, "/fapi/v1/leverageBracket") => self.leverage_brackets(&params),
            (Method::GET | Method::POST, "/fapi/v1/positionSide/dual") => self.position_mode(method, &params),
            (_, "/fapi/v1/listenKey") => self.listen_key(method, &params),
            _ => Err(ApiError::new(StatusCode::NOT_FOUND, -1000, "Not found.")),
        };
        match result {
            Ok(r) => r,
            Err(e) => error(&e),
        }
    }

    /// Runs [`Trading::tick`] every `every` until `shutdown`, so resting orders and stops fire and
    /// positions are liquidated between requests.
    pub async fn run_matcher(
        self: Arc<Self>,
        every: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut t = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = t.tick() => self.tick(),
                _ = shutdown.changed() => return,
            }
        }
    }
}

async fn handle(
    State(t): State<Arc<Trading>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    planned: Option<axum::Extension<OrderFault>>,
    body: String,
) -> Response<Body> {
    t.handle(&method, &uri, &headers, &body, planned.map(|p| p.0))
        .await
}

/// The trading routes, to be merged into the simulator's router.
pub fn routes(trading: Arc<Trading>) -> Router {
    let mut r = Router::new();
    for path in [
        "/fapi/v1/order",
        "/fapi/v1/openOrders",
        "/fapi/v1/forceOrders",
        "/fapi/v1/openOrder",
        "/fapi/v1/allOpenOrders",
        "/fapi/v2/positionRisk",
        "/fapi/v3/positionRisk",
        "/fapi/v2/account",
        "/fapi/v3/account",
        "/fapi/v2/balance",
        "/fapi/v3/balance",
        "/fapi/v1/leverage",
        "/fapi/v1/marginType",
        "/fapi/v1/leverageBracket",
        "/fapi/v1/positionSide/dual",
        "/fapi/v1/listenKey",
    ] {
        r = r.route(path, any(handle));
    }
    r.with_state(trading)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_decode_and_query_wins() {
        let p = Params::parse("a=1&b=x%2By", "a=2&c=hello+world&d=%zz");
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), Some("x+y"));
        assert_eq!(p.get("c"), Some("hello world"));
        assert_eq!(p.get("d"), Some("%zz"));
        assert!(p.decimal("b").is_err());
        let p = Params::parse("q=1e-5&r=0.001", "");
        assert_eq!(p.decimal("q").map_err(|e| e.code), Err(-1100));
        assert_eq!(p.decimal("r").ok().flatten(), Some(Decimal::new(1, 3)));
    }

    #[test]
    fn trading_weights() {
        assert_eq!(request_weight("/fapi/v1/openOrders", ""), 40);
        assert_eq!(request_weight("/fapi/v1/openOrders", "symbol=BTCUSDT"), 1);
        assert_eq!(request_weight("/fapi/v2/positionRisk", ""), 5);
        assert_eq!(request_weight("/fapi/v1/forceOrders", "symbol=BTCUSDT"), 20);
        assert_eq!(request_weight("/fapi/v1/forceOrders", ""), 50);
        assert_eq!(request_weight("/fapi/v1/order", "symbol=X"), 1);
    }

    /// A one-symbol market whose mark price the test sets.
    #[derive(Debug)]
    struct Dial {
        symbols: Vec<super::super::source::SimSymbol>,
        mark: Mutex<f64>,
    }

    impl Dial {
        fn new(mark: f64) -> Arc<Self> {
            Arc::new(Self {
                symbols: vec![super::super::source::SimSymbol {
                    name: "BTCUSDT".into(),
                    base_asset: "BTC".into(),
                    quote_asset: "USDT".into(),
                    contract_type: "PERPETUAL".into(),
                    status: "TRADING".into(),
                    price_precision: 1,
                    quantity_precision: 3,
                    tick_size: Decimal::new(1, 1),
                    step_size: Decimal::new(1, 3),
                    min_qty: Decimal::new(1, 3),
                    max_qty: Decimal::from(1000),
                    market_max_qty: Decimal::from(120),
                    min_notional: Decimal::from(5),
                }],
                mark: Mutex::new(mark),
            })
        }

        fn set(&self, m: f64) {
            *self.mark.lock().expect("lock") = m;
        }
    }

    impl MarketSource for Dial {
        fn symbols(&self) -> &[super::super::source::SimSymbol] {
            &self.symbols
        }
        fn earliest(&self) -> TimestampMs {
            0
        }
        fn start_time(&self) -> TimestampMs {
            0
        }
        fn end_time(&self) -> Option<TimestampMs> {
            None
        }
        fn bar(
            &self,
            _: usize,
            _: crate::domain::Interval,
            _: TimestampMs,
            _: TimestampMs,
        ) -> Option<crate::domain::Bar> {
            None
        }
        fn last_price(&self, _: usize, _: TimestampMs) -> f64 {
            *self.mark.lock().expect("lock")
        }
        fn ticker_24h(&self, _: usize, _: TimestampMs) -> super::super::source::Ticker24h {
            let p = self.last_price(0, 0);
            super::super::source::Ticker24h {
                open_time: 0,
                close_time: 0,
                open: p,
                high: p,
                low: p,
                last: p,
                volume: 0.0,
                quote_volume: 0.0,
                trades: 0,
            }
        }
        fn mark(&self, _: usize, _: TimestampMs) -> super::super::source::MarkInfo {
            let p = self.last_price(0, 0);
            super::super::source::MarkInfo {
                mark_price: p,
                index_price: p,
                funding_rate: 0.0,
                next_funding_time: 0,
            }
        }
    }

    fn venue(mark: f64, balance: i64) -> (Arc<Dial>, Trading) {
        let dial = Dial::new(mark);
        let clock = SimClock::new(now_ms(), now_ms(), 1.0, None);
        let settings = super::super::server::SimSettings::default();
        let info = super::super::server::exchange_info(dial.as_ref(), 0, &settings);
        let trading = Trading::new(
            Arc::clone(&dial) as Arc<dyn MarketSource>,
            clock,
            &info,
            TradingSettings {
                starting_balance: Decimal::from(balance),
                ..TradingSettings::default()
            },
        );
        (dial, trading)
    }

    fn order(t: &Trading, q: &str) -> Result<OrderResponse, i64> {
        t.new_order(&Params::parse(q, "")).map_err(|e| e.code)
    }

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("decimal")
    }

    #[test]
    fn stops_and_limits_trigger_on_the_mark_price() {
        let (dial, t) = venue(30_000.0, 10_000);
        let buy = order(&t, "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.1").expect("market");
        assert_eq!(buy.status, "FILLED");
        assert!(d(&buy.avg_price) > d("30000"), "a taker buy pays slippage");
        assert_eq!(t.position("BTCUSDT"), d("0.1"));
        let sl = order(&t, "symbol=BTCUSDT&side=SELL&type=STOP_MARKET&stopPrice=29000&closePosition=true&newClientOrderId=sl")
            .expect("stop");
        let tp = order(&t, "symbol=BTCUSDT&side=SELL&type=TAKE_PROFIT_MARKET&stopPrice=32000&quantity=0.1&reduceOnly=true&newClientOrderId=tp")
            .expect("tp");
        assert_eq!((sl.status.as_str(), tp.status.as_str()), ("NEW", "NEW"));
        assert_eq!(
            order(
                &t,
                "symbol=BTCUSDT&side=SELL&type=STOP_MARKET&stopPrice=31000&closePosition=true"
            ),
            Err(-2021),
            "a SELL stop above the mark would trigger at once"
        );
        let limit = order(&t, "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.05&price=28500&newClientOrderId=lim")
            .expect("limit");
        assert_eq!(limit.status, "NEW");
        dial.set(29_500.0);
        t.tick();
        assert_eq!(t.position("BTCUSDT"), d("0.1"), "nothing reached yet");
        dial.set(28_900.0);
        t.tick();
        assert_eq!(
            t.position("BTCUSDT"),
            Decimal::ZERO,
            "the stop closed the position"
        );
        let q = |id: &str| {
            t.query_order(&Params::parse(
                &format!("symbol=BTCUSDT&origClientOrderId={id}"),
                "",
            ))
            .expect("q")
        };
        assert_eq!(q("sl").status, "FILLED");
        dial.set(28_400.0);
        t.tick();
        assert_eq!(q("lim").status, "FILLED", "the limit filled at its price");
        assert_eq!(d(&q("lim").avg_price), d("28500"));
        assert_eq!(t.position("BTCUSDT"), d("0.05"));
        dial.set(32_100.0);
        t.tick();
        // The TP was reduce-only for 0.1 against a 0.05 long: clipped to the position.
        assert_eq!(q("tp").status, "FILLED");
        assert_eq!(d(&q("tp").executed_qty), d("0.05"));
        assert_eq!(t.position("BTCUSDT"), Decimal::ZERO);
    }

    #[test]
    fn reduce_only_margin_and_hedge_rules() {
        let (_dial, t) = venue(30_000.0, 100);
        assert_eq!(
            order(
                &t,
                "symbol=BTCUSDT&side=SELL&type=MARKET&quantity=0.01&reduceOnly=true"
            ),
            Err(-2022)
        );
        assert_eq!(
            order(&t, "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1"),
            Err(-2019)
        );
        assert_eq!(
            order(&t, "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.0001"),
            Err(-4004)
        );
        assert_eq!(
            order(&t, "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.0015"),
            Err(-4023)
        );
        assert_eq!(
            order(&t, "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.0001e1"),
            Err(-1100)
        );
        assert_eq!(
            order(
                &t,
                "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01&price=30000.05"
            ),
            Err(-4014)
        );
        assert_eq!(
            order(
                &t,
                "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01&price=33000"
            ),
            Err(-4016)
        );
        assert_eq!(
            order(
                &t,
                "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01&positionSide=LONG"
            ),
            Err(-4061)
        );
        t.book.lock().expect("lock").dual_side = true;
        assert_eq!(
            order(
                &t,
                "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01&positionSide=LONG&reduceOnly=true"
            ),
            Err(-1106)
        );
        order(
            &t,
            "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01&positionSide=LONG",
        )
        .expect("long leg");
        order(
            &t,
            "symbol=BTCUSDT&side=SELL&type=MARKET&quantity=0.01&positionSide=SHORT",
        )
        .expect("short leg");
        let risk = t.position_risk(&Params::parse("", "")).expect("risk");
        assert_eq!(risk.len(), 2, "{risk:?}");
        // Closing the LONG leg with a SELL never goes short on it.
        order(
            &t,
            "symbol=BTCUSDT&side=SELL&type=MARKET&quantity=0.05&positionSide=LONG",
        )
        .expect("close long");
        assert_eq!(t.position("BTCUSDT"), d("-0.01"), "only the SHORT leg is left");
    }

    async fn body(r: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test]
    async fn leverage_brackets_are_served_in_the_venues_shapes() {
        let (_dial, t) = venue(30_000.0, 10_000);
        let one = t
            .leverage_brackets(&Params::parse("symbol=BTCUSDT", ""))
            .expect("one symbol");
        let one = body(one).await;
        // With `symbol`: one object; notional edges are JSON integers, the ratio a decimal.
        assert_eq!(one["symbol"], "BTCUSDT");
        assert!(one.get("notionalCoef").is_none());
        let first = &one["brackets"][0];
        assert_eq!(
            (
                first["bracket"].as_u64(),
                first["initialLeverage"].as_u64(),
                first["notionalCap"].as_u64(),
                first["notionalFloor"].as_u64(),
                first["maintMarginRatio"].as_f64(),
                first["cum"].as_f64(),
            ),
            (Some(1), Some(125), Some(50_000), Some(0), Some(0.004), Some(0.0))
        );
        let all = body(t.leverage_brackets(&Params::parse("", "")).expect("all")).await;
        let parsed: Vec<crate::risk::SymbolBracketsWire> = serde_json::from_value(all).expect("array");
        assert_eq!(parsed, vec![brackets::wire_of("BTCUSDT")]);
        assert_eq!(
            t.leverage_brackets(&Params::parse("symbol=NOPEUSDT", ""))
                .err()
                .map(|e| e.code),
            Some(-1121)
        );
        assert_eq!(request_weight("/fapi/v1/leverageBracket", ""), 1);
    }

    #[test]
    fn leverage_and_liquidation_follow_the_served_brackets() {
        let (_dial, t) = venue(30_000.0, 10_000);
        let lev = |l: u32| {
            t.leverage(&Params::parse(&format!("symbol=BTCUSDT&leverage={l}"), ""))
                .map_err(|e| e.code)
        };
        assert_eq!(lev(126).err(), Some(-4028), "beyond the first tier");
        assert_eq!(lev(125).map(|r| r.max_notional_value), Ok("50000".to_owned()));
        // 2 BTC at 30 000 is 60 000 of notional: tier 2, at most 100x.
        assert_eq!(
            order(&t, "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=2"),
            Err(-2027)
        );
        assert_eq!(lev(20).map(|r| r.max_notional_value), Ok("100000000".to_owned()));
        t.margin_type(&Params::parse("symbol=BTCUSDT&marginType=ISOLATED", ""))
            .expect("isolated");
        order(&t, "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=3").expect("long");
        // The liquidation price the venue reports is the risk module's over the table it serves.
        let risk = &t.position_risk(&Params::parse("", "")).expect("risk")[0];
        let table = crate::risk::BracketTable::from_wire(&brackets::wire_of("BTCUSDT")).expect("table");
        let f = |s: &str| s.parse::<f64>().expect("number");
        let expected = crate::risk::liquidation_price(
            crate::domain::Side::Long,
            3.0,
            f(&risk.entry_price),
            f(&risk.isolated_wallet),
            &table,
        )
        .expect("liquidable");
        let reported = f(&risk.liquidation_price);
        assert!(
            (reported - expected).abs() < 1e-6 * expected,
            "{reported} vs {expected}"
        );
        // 90 000 of notional sits in tier 2: 0.5 % − 50, not the first tier's 0.4 %.
        assert!(reported > 28_600.0 && reported < 28_700.0, "{reported}");
    }

    #[test]
    fn isolated_and_cross_positions_are_liquidated_at_the_mark() {
        let (dial, t) = venue(30_000.0, 1_000);
        t.leverage(&Params::parse("symbol=BTCUSDT&leverage=50", ""))
            .expect("lev");
        t.margin_type(&Params::parse("symbol=BTCUSDT&marginType=ISOLATED", ""))
            .expect("isolated");
        order(&t, "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1").expect("long");
        let risk = t.position_risk(&Params::parse("", "")).expect("risk");
        let liq = d(&risk[0].liquidation_price);
        assert!(liq > d("29000") && liq < d("30000"), "{liq}");
        dial.set(29_700.0);
        t.tick();
        assert_eq!(
            t.stats.liquidations.load(Ordering::Relaxed),
            0,
            "1 % down: margin 600 still covers"
        );
        dial.set(29_450.0);
        t.tick();
        assert_eq!(t.stats.liquidations.load(Ordering::Relaxed), 1);
        assert_eq!(t.position("BTCUSDT"), Decimal::ZERO);
        let wallet = t.book.lock().expect("lock").wallet;
        assert!(
            wallet < d("500") && wallet > Decimal::ZERO,
            "the isolated margin is gone: {wallet}"
        );
        assert!(
            t.book
                .lock()
                .expect("lock")
                .by_client
                .keys()
                .any(|k| k.starts_with("autoclose-"))
        );

        let (dial, t) = venue(30_000.0, 400);
        t.leverage(&Params::parse("symbol=BTCUSDT&leverage=100", ""))
            .expect("lev");
        order(&t, "symbol=BTCUSDT&side=SELL&type=MARKET&quantity=1").expect("short");
        dial.set(30_300.0);
        t.tick();
        assert_eq!(
            t.stats.liquidations.load(Ordering::Relaxed),
            1,
            "cross equity fell below maintenance"
        );
        assert_eq!(t.position("BTCUSDT"), Decimal::ZERO);
        assert!(t.book.lock().expect("lock").wallet >= Decimal::ZERO);
    }
}
