//! Orders on the venue: building them, sending them exactly once, tracking them, and reconciling with
//! the venue after a restart or a user-stream reconnect.
//!
//! The failures this module exists for (RELIABILITY.md §3) are duplicated or lost orders and state that
//! drifts from the venue:
//!
//! * **Idempotent submits.** Every order gets a `newClientOrderId` ([`ClientOrderIds`], ≤ 36 chars of
//!   the venue charset) that is handed to the caller's [`IntentJournal`] *before* the request is sent;
//!   if the journal refuses, nothing is sent. A restart finds the intent and resolves it by id.
//! * **Unknown outcomes.** A timeout or HTTP 503 "Unknown error…" on an order POST may have executed.
//!   [`OrderClient::place_with_id`] then queries `GET /fapi/v1/order?origClientOrderId=` (the venue
//!   can take a moment to show a new order, so `-2013` is retried a few times) and adopts what it finds.
//!   Only when the order is still unknown after that is it reported [`Placed::NotPlaced`]; a resend keeps
//!   the same id, so the venue refuses a late duplicate (`-4116`) instead of doubling the position.
//! * **The order state machine** ([`TrackedOrder`]): terminal states absorb, the filled quantity only
//!   grows and never exceeds the order's, and fills are booked once per trade id, so duplicated and
//!   reordered user-stream events cannot double a fill.
//! * **Reconciliation** ([`ReconciliationGate`]): positions and open orders are fetched at start-up and
//!   after every user-stream reconnect; no entry is allowed until that succeeded; a failed query leaves
//!   the state *unknown*, never "flat"; reduce-only orders whose position is gone are cancelled.
//!
//! Prices and quantities are rounded by `filters` (decimal arithmetic, no exponent on the wire) before
//! they are encoded. Exits use `reduceOnly` (one-way mode) or `closePosition`; in hedge mode the
//! `positionSide` says which leg, and `reduceOnly` is not sent (the venue rejects it there).

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rust_decimal::Decimal;

use super::{
    errors::RequestKind,
    filters::{FilterError, OrderKind, OrderSide, RoundedOrder, SymbolFilters, to_wire_string},
    signed::{Endpoint, EndpointMethod, Security, SignedError, SignedRest},
    trade_wire::{
        AccountInfo, Balance, CodeMsg, DualSide, LeverageBrackets, LeverageResponse, OrderResponse,
        PositionRisk,
    },
};
use crate::domain::{TimestampMs, now_ms};

const fn ep(
    method: EndpointMethod,
    path: &'static str,
    weight: u32,
    orders: u32,
    kind: RequestKind,
) -> Endpoint {
    Endpoint {
        method,
        path,
        weight,
        orders,
        kind,
        security: Security::Signed,
    }
}

/// `POST /fapi/v1/order` (weight 1, one order).
pub const NEW_ORDER: Endpoint = ep(
    EndpointMethod::Post,
    "/fapi/v1/order",
    1,
    1,
    RequestKind::CreateOrder,
);
/// `GET /fapi/v1/order` (weight 1).
pub const QUERY_ORDER: Endpoint = ep(EndpointMethod::Get, "/fapi/v1/order", 1, 0, RequestKind::Read);
/// `DELETE /fapi/v1/order` (weight 1).
pub const CANCEL_ORDER: Endpoint = ep(
    EndpointMethod::Delete,
    "/fapi/v1/order",
    1,
    0,
    RequestKind::Mutation,
);
/// `GET /fapi/v1/openOrders` for one symbol (weight 1).
pub const OPEN_ORDERS_SYMBOL: Endpoint = ep(
    EndpointMethod::Get,
    "/fapi/v1/openOrders",
    1,
    0,
    RequestKind::Read,
);
/// `GET /fapi/v1/openOrders` for every symbol (weight 40).
pub const OPEN_ORDERS_ALL: Endpoint = ep(
    EndpointMethod::Get,
    "/fapi/v1/openOrders",
    40,
    0,
    RequestKind::Read,
);
/// `GET /fapi/v1/forceOrders` for one symbol (weight 20).
pub const FORCE_ORDERS_SYMBOL: Endpoint = ep(
    EndpointMethod::Get,
    "/fapi/v1/forceOrders",
    20,
    0,
    RequestKind::Read,
);
/// `GET /fapi/v1/forceOrders` for every symbol (weight 50).
pub const FORCE_ORDERS_ALL: Endpoint = ep(
    EndpointMethod::Get,
    "/fapi/v1/forceOrders",
    50,
    0,
    RequestKind::Read,
);
/// `GET /fapi/v2/positionRisk` (weight 5).
pub const POSITION_RISK: Endpoint = ep(
    EndpointMethod::Get,
    "/fapi/v2/positionRisk",
    5,
    0,
    RequestKind::Read,
);
/// `GET /fapi/v2/account` (weight 5).
pub const ACCOUNT: Endpoint = ep(EndpointMethod::Get, "/fapi/v2/account", 5, 0, RequestKind::Read);
/// `GET /fapi/v2/balance` (weight 5).
pub const BALANCE: Endpoint = ep(EndpointMethod::Get, "/fapi/v2/balance", 5, 0, RequestKind::Read);
/// `POST /fapi/v1/leverage` (weight 1).
pub const LEVERAGE: Endpoint = ep(
    EndpointMethod::Post,
    "/fapi/v1/leverage",
    1,
    0,
    RequestKind::Mutation,
);
/// `POST /fapi/v1/marginType` (weight 1).
pub const MARGIN_TYPE: Endpoint = ep(
    EndpointMethod::Post,
    "/fapi/v1/marginType",
    1,
    0,
    RequestKind::Mutation,
);
/// `GET /fapi/v1/leverageBracket`, one symbol or all (weight 1).
pub const LEVERAGE_BRACKET: Endpoint = ep(
    EndpointMethod::Get,
    "/fapi/v1/leverageBracket",
    1,
    0,
    RequestKind::Read,
);
/// `GET /fapi/v1/positionSide/dual` (weight 30).
pub const GET_POSITION_MODE: Endpoint = ep(
    EndpointMethod::Get,
    "/fapi/v1/positionSide/dual",
    30,
    0,
    RequestKind::Read,
);
/// `POST /fapi/v1/positionSide/dual` (weight 1).
pub const SET_POSITION_MODE: Endpoint = ep(
    EndpointMethod::Post,
    "/fapi/v1/positionSide/dual",
    1,
    0,
    RequestKind::Mutation,
);

/// The order types the console sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderType {
    Market,
    Limit,
    StopMarket,
    TakeProfitMarket,
}

impl OrderType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Market => "MARKET",
            Self::Limit => "LIMIT",
            Self::StopMarket => "STOP_MARKET",
            Self::TakeProfitMarket => "TAKE_PROFIT_MARKET",
        }
    }

    /// Conditional orders carry a `stopPrice` and trigger on the mark price.
    pub fn is_conditional(self) -> bool {
        matches!(self, Self::StopMarket | Self::TakeProfitMarket)
    }
}

/// `positionSide`: `BOTH` in one-way mode, `LONG`/`SHORT` in hedge mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PositionSide {
    Both,
    Long,
    Short,
}

impl PositionSide {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Both => "BOTH",
            Self::Long => "LONG",
            Self::Short => "SHORT",
        }
    }

    pub fn from_venue(s: &str) -> Option<Self> {
        match s {
            "BOTH" => Some(Self::Both),
            "LONG" => Some(Self::Long),
            "SHORT" => Some(Self::Short),
            _ => None,
        }
    }
}

/// `marginType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarginType {
    Isolated,
    Crossed,
}

impl MarginType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Isolated => "ISOLATED",
            Self::Crossed => "CROSSED",
        }
    }
}

/// An order to send. Build it with the constructors, then [`NewOrder::rounded`] puts it on the
/// symbol's grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub symbol: String,
    pub side: OrderSide,
    pub order_type: OrderType,
    /// `None` only with `close_position`.
    pub qty: Option<Decimal>,
    /// LIMIT price.
    pub price: Option<Decimal>,
    /// Trigger of `STOP_MARKET` / `TAKE_PROFIT_MARKET` (on the mark price).
    pub stop_price: Option<Decimal>,
    pub reduce_only: bool,
    pub close_position: bool,
    pub position_side: PositionSide,
}

impl NewOrder {
    pub fn market(symbol: &str, side: OrderSide, qty: Decimal) -> Self {
        Self {
            symbol: symbol.to_owned(),
            side,
            order_type: OrderType::Market,
            qty: Some(qty),
            price: None,
            stop_price: None,
            reduce_only: false,
            close_position: false,
            position_side: PositionSide::Both,
        }
    }

    pub fn limit(symbol: &str, side: OrderSide, qty: Decimal, price: Decimal) -> Self {
        Self {
            order_type: OrderType::Limit,
            price: Some(price),
            ..Self::market(symbol, side, qty)
        }
    }

    /// A `STOP_MARKET` for `qty` (`None`: `closePosition=true`, the whole position).
    pub fn stop_market(symbol: &str, side: OrderSide, stop: Decimal, qty: Option<Decimal>) -> Self {
        Self {
            order_type: OrderType::StopMarket,
            qty,
            stop_price: Some(stop),
            close_position: qty.is_none(),
            ..Self::market(symbol, side, Decimal::ZERO)
        }
    }

    /// A `TAKE_PROFIT_MARKET` for `qty` (`None`: `closePosition=true`).
    pub fn take_profit_market(symbol: &str, side: OrderSide, stop: Decimal, qty: Option<Decimal>) -> Self {
        Self {
            order_type: OrderType::TakeProfitMarket,
            ..Self::stop_market(symbol, side, stop, qty)
        }
    }

    /// Marks the order as an exit (`reduceOnly=true` in one-way mode).
    pub fn reduce_only(mut self) -> Self {
        self.reduce_only = true;
        self
    }

    /// Hedge mode: the leg this order belongs to.
    pub fn with_position_side(mut self, side: PositionSide) -> Self {
        self.position_side = side;
        self
    }

    /// True when the order can only reduce a position.
    pub fn is_exit(&self) -> bool {
        self.reduce_only || self.close_position
    }

    /// The order on the symbol's grid, checked against every filter (`mark` is the current mark
    /// price): LIMIT prices BUY down / SELL up, triggers the same way, quantities floored.
    pub fn rounded(&self, filters: &SymbolFilters, mark: Decimal) -> Result<Self, OrderError> {
        let mut out = self.clone();
        let kind = match self.order_type {
            OrderType::Limit => OrderKind::Limit,
            _ => OrderKind::Market,
        };
        if let Some(p) = self.price {
            out.price = Some(filters.round_price(self.side, p)?);
        }
        if let Some(s) = self.stop_price {
            out.stop_price = Some(filters.round_price(self.side, s)?);
        }
        if let Some(q) = self.qty.filter(|_| !self.close_position) {
            let qty = filters.floor_qty(kind, q)?;
            out.qty = Some(qty);
            filters.validate(
                &RoundedOrder {
                    side: self.side,
                    kind,
                    price: out.price.filter(|_| kind == OrderKind::Limit),
                    qty,
                },
                self.is_exit(),
                mark,
            )?;
        }
        Ok(out)
    }

    /// The request parameters, in the order they are signed.
    pub fn params(&self, client_order_id: &str) -> Result<Vec<(&'static str, String)>, OrderError> {
        if !is_valid_client_order_id(client_order_id) {
            return Err(OrderError::Invalid(
                "newClientOrderId must be 1–36 chars of [.A-Z:/a-z0-9_-]",
            ));
        }
        let mut p: Vec<(&'static str, String)> = vec![
            ("symbol", self.symbol.clone()),
            ("side", self.side.as_str().to_owned()),
            ("type", self.order_type.as_str().to_owned()),
        ];
        if self.position_side != PositionSide::Both {
            p.push(("positionSide", self.position_side.as_str().to_owned()));
        }
        if self.close_position {
            if !self.order_type.is_conditional() {
                return Err(OrderError::Invalid(
                    "closePosition is only for STOP_MARKET / TAKE_PROFIT_MARKET",
                ));
            }
        } else {
            let qty = self
                .qty
                .filter(|q| *q > Decimal::ZERO)
                .ok_or(OrderError::Invalid(
                    "an order needs a positive quantity or closePosition",
                ))?;
            p.push(("quantity", to_wire_string(qty)));
        }
        match self.order_type {
            OrderType::Limit => {
                let price = self
                    .price
                    .ok_or(OrderError::Invalid("a LIMIT order needs a price"))?;
                p.push(("price", to_wire_string(price)));
                p.push(("timeInForce", "GTC".to_owned()));
            }
            OrderType::StopMarket | OrderType::TakeProfitMarket => {
                let stop = self
                    .stop_price
                    .ok_or(OrderError::Invalid("a conditional order needs a stopPrice"))?;
                p.push(("stopPrice", to_wire_string(stop)));
                p.push(("workingType", "MARK_PRICE".to_owned()));
            }
            OrderType::Market => {}
        }
        if self.close_position {
            p.push(("closePosition", "true".to_owned()));
        } else if self.reduce_only && self.position_side == PositionSide::Both {
            // Hedge mode must not send reduceOnly (the leg in positionSide already says "close").
            p.push(("reduceOnly", "true".to_owned()));
        }
        p.push(("newClientOrderId", client_order_id.to_owned()));
        p.push(("newOrderRespType", "RESULT".to_owned()));
        Ok(p)
    }
}

/// True for a `newClientOrderId` the venue accepts: 1–36 characters of `[.A-Z:/a-z0-9_-]`.
pub fn is_valid_client_order_id(id: &str) -> bool {
    (1..=36).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'/' | b'_' | b'-'))
}

/// Generates `newClientOrderId`s: `pd-<session>-<counter>`, unique across restarts because the session
/// part is the start time in base 36 (ms) and the counter is per process.
#[derive(Debug)]
pub struct ClientOrderIds {
    session: String,
    counter: AtomicU64,
}

fn base36(mut v: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(v % 36) as usize]);
        v /= 36;
        if v == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

impl ClientOrderIds {
    /// A generator whose session part comes from `session_ms` (use the start time).
    pub fn new(session_ms: TimestampMs) -> Self {
        Self {
            session: base36(session_ms.unsigned_abs()),
            counter: AtomicU64::new(0),
        }
    }

    /// The next id (at most 3 + 9 + 1 + 13 characters: well under 36 for centuries).
    pub fn next_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        format!("pd-{}-{}", self.session, base36(n))
    }
}

/// What is journalled before an order is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderIntent<'a> {
    pub client_order_id: &'a str,
    pub order: &'a NewOrder,
    pub at_ms: TimestampMs,
}

/// The caller's journal: records the intent (state `SUBMITTING`) durably before the send. An error
/// stops the send.
pub trait IntentJournal: Send + Sync {
    fn record(&self, intent: &OrderIntent<'_>) -> Result<(), String>;
}

impl<F> IntentJournal for F
where
    F: Fn(&OrderIntent<'_>) -> Result<(), String> + Send + Sync,
{
    fn record(&self, intent: &OrderIntent<'_>) -> Result<(), String> {
        self(intent)
    }
}

/// Why an order operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("order refused locally: {0}")]
    Filter(#[from] FilterError),
    #[error("order refused locally: {0}")]
    Invalid(&'static str),
    #[error("the journal refused the order intent, nothing was sent: {0}")]
    Journal(String),
    #[error(transparent)]
    Venue(#[from] SignedError),
    /// The submit's outcome is unknown and the queries could not settle it: the order may be live.
    /// Only a later query by client order id (or a reconciliation) may decide; never resend blindly.
    #[error("order {client_order_id}: state still unknown after {attempts} queries: {last}")]
    Unresolved {
        client_order_id: String,
        attempts: u32,
        /// Why the last query did not settle it.
        last: String,
    },
    #[error("venue value {field} = {value:?} is not a decimal")]
    BadDecimal { field: &'static str, value: String },
}

impl OrderError {
    /// The venue's error code, for a venue refusal or a locally refused filter check.
    pub fn code(&self) -> Option<i64> {
        match self {
            Self::Venue(e) => e.code(),
            Self::Filter(f) => f.venue_code(),
            _ => None,
        }
    }
}

/// The result of [`OrderClient::place_with_id`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// The venue acknowledged the order.
    Accepted(OrderResponse),
    /// The outcome was unknown; the query found the order at the venue.
    Resolved(OrderResponse),
    /// The outcome was unknown and the order is not at the venue after every query: it was not
    /// placed. A resend must use the same client order id.
    NotPlaced { client_order_id: String },
}

impl Placed {
    pub fn order(&self) -> Option<&OrderResponse> {
        match self {
            Self::Accepted(o) | Self::Resolved(o) => Some(o),
            Self::NotPlaced { .. } => None,
        }
    }
}

/// How hard to look for an order whose submit outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvePolicy {
    /// Queries before concluding "not placed".
    pub attempts: u32,
    /// Wait after a `-2013` (the venue may not show a new order yet); grows linearly per attempt.
    pub delay: Duration,
}

impl Default for ResolvePolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            delay: Duration::from_millis(500),
        }
    }
}

/// Result of a query by client order id.
// Rare (one per unknown outcome) and moved once: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(OrderResponse),
    /// `-2013` every time.
    NotFound,
}

/// Order operations over a [`SignedRest`].
pub struct OrderClient {
    rest: Arc<SignedRest>,
    ids: ClientOrderIds,
    journal: Arc<dyn IntentJournal>,
    resolve: ResolvePolicy,
}

impl fmt::Debug for OrderClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrderClient")
            .field("rest", &self.rest)
            .field("ids", &self.ids)
            .field("resolve", &self.resolve)
            .finish_non_exhaustive()
    }
}

fn dec(field: &'static str, value: &str) -> Result<Decimal, OrderError> {
    if value.is_empty() {
        return Ok(Decimal::ZERO);
    }
    Decimal::from_str(value).map_err(|_| OrderError::BadDecimal {
        field,
        value: value.chars().take(40).collect(),
    })
}

impl OrderClient {
    pub fn new(rest: Arc<SignedRest>, journal: Arc<dyn IntentJournal>) -> Self {
        Self {
            rest,
            ids: ClientOrderIds::new(now_ms()),
            journal,
            resolve: ResolvePolicy::default(),
        }
    }

    pub fn with_resolve_policy(mut self, policy: ResolvePolicy) -> Self {
        self.resolve = policy;
        self
    }

    pub fn rest(&self) -> &Arc<SignedRest> {
        &self.rest
    }

    /// A fresh client order id.
    pub fn next_client_order_id(&self) -> String {
        self.ids.next_id()
    }

    /// Places `order` under a fresh client order id.
    pub async fn place(&self, order: &NewOrder) -> Result<Placed, OrderError> {
        let id = self.ids.next_id();
        self.place_with_id(order, &id).await
    }

    /// Journals the intent, sends the order once, and resolves an unknown outcome by query.
    pub async fn place_with_id(&self, order: &NewOrder, client_order_id: &str) -> Result<Placed, OrderError> {
        let params = order.params(client_order_id)?;
        self.journal
            .record(&OrderIntent {
                client_order_id,
                order,
                at_ms: now_ms(),
            })
            .map_err(OrderError::Journal)?;
        match self.rest.call::<OrderResponse>(&NEW_ORDER, &params).await {
            Ok(r) => Ok(Placed::Accepted(r)),
            // -4116: this id is already at the venue (a resend after an unknown outcome).
            Err(e) if e.is_outcome_unknown() || e.code() == Some(-4116) => {
                tracing::warn!(client_order_id, error = %e, "order outcome unknown; resolving by query before anything is resent");
                let duplicate = e.code() == Some(-4116);
                match self.resolve_unknown(&order.symbol, client_order_id).await? {
                    Lookup::Found(o) => Ok(Placed::Resolved(o)),
                    // The venue has just said it holds this id: "not found" only means it does not
                    // show it yet. Reporting "not placed" would invite a caller to give up on a
                    // live order.
                    Lookup::NotFound if duplicate => Err(OrderError::Unresolved {
                        client_order_id: client_order_id.to_owned(),
                        attempts: self.resolve.attempts,
                        last: "the venue refused the id as a duplicate (-4116) but does not show it yet"
                            .to_owned(),
                    }),
                    Lookup::NotFound => Ok(Placed::NotPlaced {
                        client_order_id: client_order_id.to_owned(),
                    }),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Queries the order by client id, waiting and asking again on `-2013` up to the policy's
    /// attempts (the venue may not show a just-created order yet).
    ///
    /// Every failure here is [`OrderError::Unresolved`], whatever the query's own error: the order
    /// whose outcome is being resolved may be live, and a caller that saw the query's error (a 418
    /// ban, a -1021, a 400) would take it for the submit's refusal and forget a live order.
    pub async fn resolve_unknown(&self, symbol: &str, client_order_id: &str) -> Result<Lookup, OrderError> {
        let unresolved = |last: String| OrderError::Unresolved {
            client_order_id: client_order_id.to_owned(),
            attempts: self.resolve.attempts,
            last,
        };
        let mut last_other = None;
        for attempt in 1..=self.resolve.attempts {
            match self.query_order(symbol, client_order_id).await {
                Ok(o) => return Ok(Lookup::Found(o)),
                Err(OrderError::Venue(e)) if e.code() == Some(-2013) => last_other = None,
                Err(OrderError::Venue(e))
                    if e.is_outcome_unknown() || e.class() == super::errors::ErrorClass::Retry =>
                {
                    last_other = Some(e);
                }
                Err(e) => return Err(unresolved(e.to_string())),
            }
            if attempt < self.resolve.attempts {
                tokio::time::sleep(self.resolve.delay * attempt).await;
            }
        }
        match last_other {
            // The last answers were not "no such order": we do not know.
            Some(e) => Err(unresolved(e.to_string())),
            None => Ok(Lookup::NotFound),
        }
    }

    /// `GET /fapi/v1/order?origClientOrderId=`.
    pub async fn query_order(
        &self,
        symbol: &str,
        client_order_id: &str,
    ) -> Result<OrderResponse, OrderError> {
        let params = [
            ("symbol", symbol.to_owned()),
            ("origClientOrderId", client_order_id.to_owned()),
        ];
        Ok(self.rest.call(&QUERY_ORDER, &params).await?)
    }

    /// `DELETE /fapi/v1/order`. If the venue says the order cannot be cancelled (`-2011`) or does not
    /// exist (`-2013`), or the outcome is unknown, the order's real state is queried and returned.
    pub async fn cancel(&self, symbol: &str, client_order_id: &str) -> Result<OrderResponse, OrderError> {
        let params = [
            ("symbol", symbol.to_owned()),
            ("origClientOrderId", client_order_id.to_owned()),
        ];
        match self.rest.call::<OrderResponse>(&CANCEL_ORDER, &params).await {
            Ok(o) => Ok(o),
            Err(e) if matches!(e.code(), Some(-2011 | -2013)) || e.is_outcome_unknown() => {
                self.query_order(symbol, client_order_id).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `GET /fapi/v1/openOrders` (one symbol, or all: weight 40).
    pub async fn open_orders(&self, symbol: Option<&str>) -> Result<Vec<OrderResponse>, OrderError> {
        Ok(match symbol {
            Some(s) => {
                self.rest
                    .call(&OPEN_ORDERS_SYMBOL, &[("symbol", s.to_owned())])
                    .await?
            }
            None => self.rest.call(&OPEN_ORDERS_ALL, &[]).await?,
        })
    }

    /// `GET /fapi/v1/forceOrders`: the account's liquidation orders (`autoclose-…`), newest first
    /// (one symbol: weight 20; all: weight 50).
    pub async fn force_orders(&self, symbol: Option<&str>) -> Result<Vec<OrderResponse>, OrderError> {
        Ok(match symbol {
            Some(s) => {
                self.rest
                    .call(&FORCE_ORDERS_SYMBOL, &[("symbol", s.to_owned())])
                    .await?
            }
            None => self.rest.call(&FORCE_ORDERS_ALL, &[]).await?,
        })
    }

    /// `GET /fapi/v2/positionRisk`.
    pub async fn position_risk(&self) -> Result<Vec<PositionRisk>, OrderError> {
        Ok(self.rest.call(&POSITION_RISK, &[]).await?)
    }

    /// `GET /fapi/v2/account`.
    pub async fn account(&self) -> Result<AccountInfo, OrderError> {
        Ok(self.rest.call(&ACCOUNT, &[]).await?)
    }

    /// `GET /fapi/v2/balance`.
    pub async fn balance(&self) -> Result<Vec<Balance>, OrderError> {
        Ok(self.rest.call(&BALANCE, &[]).await?)
    }

    /// `POST /fapi/v1/leverage`.
    pub async fn set_leverage(&self, symbol: &str, leverage: u32) -> Result<LeverageResponse, OrderError> {
        let params = [("symbol", symbol.to_owned()), ("leverage", leverage.to_string())];
        Ok(self.rest.call(&LEVERAGE, &params).await?)
    }

    /// `GET /fapi/v1/leverageBracket`: the account's leverage brackets of `symbol`, or of every
    /// symbol in one request.
    pub async fn leverage_brackets(
        &self,
        symbol: Option<&str>,
    ) -> Result<Vec<crate::risk::SymbolBracketsWire>, OrderError> {
        let params: Vec<(&str, String)> = symbol.map(|s| ("symbol", s.to_owned())).into_iter().collect();
        let answer: LeverageBrackets = self.rest.call(&LEVERAGE_BRACKET, &params).await?;
        Ok(answer.into_vec())
    }

    /// `POST /fapi/v1/marginType`; "no need to change" (`-4046`) counts as success.
    pub async fn set_margin_type(&self, symbol: &str, margin: MarginType) -> Result<(), OrderError> {
        let params = [
            ("symbol", symbol.to_owned()),
            ("marginType", margin.as_str().to_owned()),
        ];
        match self.rest.call::<CodeMsg>(&MARGIN_TYPE, &params).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(-4046) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// `GET /fapi/v1/positionSide/dual`: true in hedge mode.
    pub async fn hedge_mode(&self) -> Result<bool, OrderError> {
        let d: DualSide = self.rest.call(&GET_POSITION_MODE, &[]).await?;
        Ok(d.dual_side_position)
    }

    /// `POST /fapi/v1/positionSide/dual`; "no need to change" (`-4059`) counts as success.
    pub async fn set_hedge_mode(&self, hedge: bool) -> Result<(), OrderError> {
        let params = [("dualSidePosition", hedge.to_string())];
        match self.rest.call::<CodeMsg>(&SET_POSITION_MODE, &params).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(-4059) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The order state machine
// ---------------------------------------------------------------------------------------------------------

/// Where an order is in its life. `Filled`, `Canceled`, `Rejected` and `Expired` are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Intent journalled, request (maybe) on the wire, no answer yet.
    Submitting,
    New,
    PartiallyFilled,
    Filled,
    Canceled,
    Rejected,
    Expired,
}

impl OrderStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Filled | Self::Canceled | Self::Rejected | Self::Expired
        )
    }

    /// The venue's status text (`X`, `status`); unknown values (`NEW_ADL`, `NEW_INSURANCE`, new ones)
    /// count as open, which is the safe reading.
    pub fn from_venue(s: &str) -> Self {
        match s {
            "PARTIALLY_FILLED" => Self::PartiallyFilled,
            "FILLED" => Self::Filled,
            "CANCELED" => Self::Canceled,
            "REJECTED" => Self::Rejected,
            "EXPIRED" | "EXPIRED_IN_MATCH" => Self::Expired,
            _ => Self::New,
        }
    }
}

/// Something that happened to an order, from the user stream or a REST answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderEvent {
    /// The venue acknowledged it.
    Accepted,
    /// One trade.
    Fill {
        trade_id: i64,
        qty: Decimal,
        price: Decimal,
    },
    Canceled,
    Expired,
    Rejected,
}

/// What [`TrackedOrder::apply`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Changed,
    /// A trade id already booked.
    Duplicate,
    /// Not applicable in the current state (late, reordered, or impossible).
    Ignored,
}

/// One order as the console knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedOrder {
    pub client_order_id: String,
    pub orig_qty: Decimal,
    status: OrderStatus,
    filled: Decimal,
    quote: Decimal,
    trades: BTreeMap<i64, Decimal>,
}

impl TrackedOrder {
    /// A new order in `Submitting`.
    pub fn new(client_order_id: &str, orig_qty: Decimal) -> Self {
        Self {
            client_order_id: client_order_id.to_owned(),
            orig_qty,
            status: OrderStatus::Submitting,
            filled: Decimal::ZERO,
            quote: Decimal::ZERO,
            trades: BTreeMap::new(),
        }
    }

    pub fn status(&self) -> OrderStatus {
        self.status
    }

    pub fn filled(&self) -> Decimal {
        self.filled
    }

    /// Volume-weighted fill price (zero before the first fill).
    pub fn avg_price(&self) -> Decimal {
        if self.filled.is_zero() {
            Decimal::ZERO
        } else {
            self.quote.checked_div(self.filled).unwrap_or_default()
        }
    }

    /// Booked trades: trade id → quantity.
    pub fn trades(&self) -> &BTreeMap<i64, Decimal> {
        &self.trades
    }

    /// Applies one event. Terminal states absorb status changes; a trade is booked once per id
    /// (even after a cancel, which a reordered stream can deliver first) and never past `orig_qty`.
    pub fn apply(&mut self, event: &OrderEvent) -> Applied {
        match *event {
            OrderEvent::Accepted => {
                if self.status == OrderStatus::Submitting {
                    self.status = OrderStatus::New;
                    Applied::Changed
                } else {
                    Applied::Ignored
                }
            }
            OrderEvent::Fill { trade_id, qty, price } => {
                if self.trades.contains_key(&trade_id) {
                    return Applied::Duplicate;
                }
                if qty <= Decimal::ZERO || self.filled + qty > self.orig_qty {
                    return Applied::Ignored;
                }
                self.trades.insert(trade_id, qty);
                self.filled += qty;
                self.quote += qty * price;
                if !self.status.is_terminal() {
                    self.status = if self.filled == self.orig_qty {
                        OrderStatus::Filled
                    } else {
                        OrderStatus::PartiallyFilled
                    };
                }
                Applied::Changed
            }
            OrderEvent::Canceled | OrderEvent::Expired | OrderEvent::Rejected => {
                if self.status.is_terminal() {
                    return Applied::Ignored;
                }
                self.status = match event {
                    OrderEvent::Canceled => OrderStatus::Canceled,
                    OrderEvent::Expired => OrderStatus::Expired,
                    _ => OrderStatus::Rejected,
                };
                Applied::Changed
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Reconciliation
// ---------------------------------------------------------------------------------------------------------

/// A position as the venue reports it (`positionRisk`), signed: long > 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenuePosition {
    pub symbol: String,
    pub side: PositionSide,
    pub qty: Decimal,
    pub entry_price: Decimal,
}

/// What the console believed before reconciling: journal positions (signed) and open orders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalBook {
    pub positions: BTreeMap<(String, PositionSide), Decimal>,
    /// `(symbol, client order id)` of orders the journal has as open.
    pub open_orders: Vec<(String, String)>,
}

/// The venue's truth after a reconciliation, and what changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconReport {
    /// Every non-zero venue position: the console adopts these.
    pub positions: Vec<VenuePosition>,
    /// Open orders at the venue after orphans were cancelled.
    pub open_orders: Vec<OrderResponse>,
    /// Venue positions the journal did not have (opened elsewhere, or filled while we were down).
    pub external: Vec<VenuePosition>,
    /// Journal positions the venue does not have (closed while down): now flat.
    pub closed_while_down: Vec<(String, PositionSide)>,
    /// Journal positions whose size differs at the venue: `(symbol, side, journal, venue)`.
    pub resized: Vec<(String, PositionSide, Decimal, Decimal)>,
    /// Journal-open orders that are no longer open, with their final venue state (or `None`: the
    /// venue does not know the order).
    pub finished_orders: Vec<(String, Option<OrderResponse>)>,
    /// Reduce-only / close-position orders whose position is gone, cancelled.
    pub orphans_cancelled: Vec<String>,
}

/// Reconciliation state: entries are allowed only when `Reconciled`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconState {
    /// Not reconciled (start-up, after a user-stream reconnect, or a failed query). Never "flat".
    Unknown {
        reason: String,
    },
    Reconciled {
        at_ms: TimestampMs,
    },
}

/// The gate in front of new entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconciliationGate {
    state: ReconState,
}

impl Default for ReconciliationGate {
    fn default() -> Self {
        Self {
            state: ReconState::Unknown {
                reason: "not reconciled since start-up".into(),
            },
        }
    }
}

fn position_key(o: &OrderResponse) -> (String, PositionSide) {
    (
        o.symbol.clone(),
        PositionSide::from_venue(&o.position_side).unwrap_or(PositionSide::Both),
    )
}

impl ReconciliationGate {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn state(&self) -> &ReconState {
        &self.state
    }

    /// New entries (position-opening orders) may be sent.
    pub fn entries_allowed(&self) -> bool {
        matches!(self.state, ReconState::Reconciled { .. })
    }

    /// The user stream reconnected (events may have been missed): close the gate until the next
    /// reconciliation.
    pub fn invalidate(&mut self, reason: &str) {
        self.state = ReconState::Unknown {
            reason: reason.to_owned(),
        };
    }

    /// Fetches positions and open orders, resolves the journal's open orders, cancels orphaned
    /// reduce-only orders and reports the differences. Any failed query leaves the state `Unknown`.
    pub async fn reconcile(
        &mut self,
        client: &OrderClient,
        local: &LocalBook,
    ) -> Result<ReconReport, OrderError> {
        self.invalidate("reconciling");
        let result = Self::run(client, local).await;
        match &result {
            Ok(_) => self.state = ReconState::Reconciled { at_ms: now_ms() },
            Err(e) => self.invalidate(&format!("reconciliation failed: {e}")),
        }
        result
    }

    async fn run(client: &OrderClient, local: &LocalBook) -> Result<ReconReport, OrderError> {
        let mut report = ReconReport::default();
        let risk = client.position_risk().await?;
        let mut venue: BTreeMap<(String, PositionSide), VenuePosition> = BTreeMap::new();
        for p in &risk {
            let qty = dec("positionAmt", &p.position_amt)?;
            if qty.is_zero() {
                continue;
            }
            let side = PositionSide::from_venue(&p.position_side).unwrap_or(PositionSide::Both);
            venue.insert(
                (p.symbol.clone(), side),
                VenuePosition {
                    symbol: p.symbol.clone(),
                    side,
                    qty,
                    entry_price: dec("entryPrice", &p.entry_price)?,
                },
            );
        }
        let open = client.open_orders(None).await?;
        let open_ids: BTreeSet<&str> = open.iter().map(|o| o.client_order_id.as_str()).collect();
        for (symbol, id) in &local.open_orders {
            if open_ids.contains(id.as_str()) {
                continue;
            }
            match client.query_order(symbol, id).await {
                Ok(o) => report.finished_orders.push((id.clone(), Some(o))),
                Err(OrderError::Venue(e)) if e.code() == Some(-2013) => {
                    report.finished_orders.push((id.clone(), None));
                }
                Err(e) => return Err(e),
            }
        }
        let mut still_open = Vec::with_capacity(open.len());
        for o in open {
            let orphan = (o.reduce_only || o.close_position) && !venue.contains_key(&position_key(&o));
            if orphan {
                let cancelled = client.cancel(&o.symbol, &o.client_order_id).await?;
                if OrderStatus::from_venue(&cancelled.status).is_terminal() {
                    report.orphans_cancelled.push(o.client_order_id.clone());
                    continue;
                }
            }
            still_open.push(o);
        }
        report.open_orders = still_open;
        for (key, p) in &venue {
            match local.positions.get(key) {
                None => report.external.push(p.clone()),
                Some(q) if *q != p.qty => report.resized.push((key.0.clone(), key.1, *q, p.qty)),
                Some(_) => {}
            }
        }
        for (key, q) in &local.positions {
            if !q.is_zero() && !venue.contains_key(key) {
                report.closed_while_down.push(key.clone());
            }
        }
        report.positions = venue.into_values().collect();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("decimal literal")
    }

    fn filters() -> SymbolFilters {
        use super::super::filters::{LotRule, PercentPrice, PriceRule};
        SymbolFilters {
            symbol: "BTCUSDT".into(),
            price: PriceRule {
                min: d("0.1"),
                max: d("1000000"),
                tick: d("0.1"),
            },
            lot: LotRule {
                min: d("0.001"),
                max: d("1000"),
                step: d("0.001"),
            },
            market_lot: LotRule {
                min: d("0.001"),
                max: d("120"),
                step: d("0.001"),
            },
            min_notional: d("5"),
            percent_price: Some(PercentPrice {
                up: d("1.05"),
                down: d("0.95"),
            }),
            price_precision: 1,
            quantity_precision: 3,
        }
    }

    fn get<'a>(p: &'a [(&'static str, String)], k: &str) -> Option<&'a str> {
        p.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn client_order_ids_are_unique_short_and_in_the_venue_charset() {
        let ids = ClientOrderIds::new(4_102_444_800_000); // year 2100
        let mut seen = BTreeSet::new();
        for _ in 0..10_000 {
            let id = ids.next_id();
            assert!(is_valid_client_order_id(&id), "{id}");
            assert!(id.len() <= 36);
            assert!(seen.insert(id));
        }
        assert!(!is_valid_client_order_id(""));
        assert!(!is_valid_client_order_id(&"a".repeat(37)));
        assert!(!is_valid_client_order_id("has space"));
        assert!(is_valid_client_order_id("x.Y:z/0_9-"));
    }

    #[test]
    fn limit_order_is_rounded_and_encoded_without_exponents() {
        let o = NewOrder::limit("BTCUSDT", OrderSide::Buy, d("0.0123456"), d("30000.07"))
            .rounded(&filters(), d("30000"))
            .expect("valid");
        let p = o.params("pd-1").expect("params");
        assert_eq!(get(&p, "price"), Some("30000"));
        assert_eq!(get(&p, "quantity"), Some("0.012"));
        assert_eq!(get(&p, "timeInForce"), Some("GTC"));
        assert_eq!(get(&p, "newClientOrderId"), Some("pd-1"));
        assert_eq!(get(&p, "reduceOnly"), None);
        assert_eq!(
            get(&p, "positionSide"),
            None,
            "one-way mode sends no positionSide"
        );
        for (_, v) in &p {
            assert!(
                !v.contains('E') || v.chars().all(|c| c.is_ascii_alphabetic() || c == '_'),
                "{v}"
            );
        }
        let sell = NewOrder::limit("BTCUSDT", OrderSide::Sell, d("0.01"), d("30000.01"))
            .rounded(&filters(), d("30000"))
            .expect("valid");
        assert_eq!(sell.price, Some(d("30000.1")), "a SELL rounds up");
    }

    #[test]
    fn small_orders_are_refused_locally_with_the_venue_code() {
        let err = NewOrder::market("BTCUSDT", OrderSide::Buy, d("0.0001"))
            .rounded(&filters(), d("30000"))
            .expect_err("below minQty");
        assert_eq!(err.code(), Some(-4004));
        let err = NewOrder::market("BTCUSDT", OrderSide::Buy, d("0.0001") + d("0.001"))
            .rounded(&filters(), d("3000"))
            .expect_err("notional 3 < 5");
        assert_eq!(err.code(), Some(-4164));
        // An exit is exempt from MIN_NOTIONAL.
        NewOrder::market("BTCUSDT", OrderSide::Sell, d("0.001"))
            .reduce_only()
            .rounded(&filters(), d("3000"))
            .expect("reduce-only exempt");
    }

    #[test]
    fn exits_carry_reduce_only_or_close_position_and_stops_use_the_mark_price() {
        let sl = NewOrder::stop_market("BTCUSDT", OrderSide::Sell, d("29000"), None);
        let p = sl.params("pd-sl").expect("params");
        assert_eq!(get(&p, "type"), Some("STOP_MARKET"));
        assert_eq!(get(&p, "closePosition"), Some("true"));
        assert_eq!(get(&p, "quantity"), None);
        assert_eq!(get(&p, "reduceOnly"), None, "closePosition excludes reduceOnly");
        assert_eq!(get(&p, "workingType"), Some("MARK_PRICE"));
        let tp = NewOrder::take_profit_market("BTCUSDT", OrderSide::Sell, d("31000"), Some(d("0.01")))
            .reduce_only();
        let p = tp.params("pd-tp").expect("params");
        assert_eq!(get(&p, "type"), Some("TAKE_PROFIT_MARKET"));
        assert_eq!(get(&p, "reduceOnly"), Some("true"));
        assert_eq!(get(&p, "quantity"), Some("0.01"));
        assert_eq!(get(&p, "stopPrice"), Some("31000"));
        let exit = NewOrder::market("BTCUSDT", OrderSide::Sell, d("0.01")).reduce_only();
        assert_eq!(get(&exit.params("pd-x").expect("p"), "reduceOnly"), Some("true"));
        for o in [&sl, &tp, &exit] {
            assert!(o.is_exit());
        }
    }

    #[test]
    fn hedge_mode_sends_position_side_and_never_reduce_only() {
        let o = NewOrder::market("BTCUSDT", OrderSide::Sell, d("0.01"))
            .reduce_only()
            .with_position_side(PositionSide::Long);
        let p = o.params("pd-h").expect("params");
        assert_eq!(get(&p, "positionSide"), Some("LONG"));
        assert_eq!(get(&p, "reduceOnly"), None);
    }

    #[test]
    fn malformed_orders_are_refused_before_the_journal() {
        assert!(
            NewOrder::market("BTCUSDT", OrderSide::Buy, d("1"))
                .params("bad id")
                .is_err()
        );
        let mut close_market = NewOrder::market("BTCUSDT", OrderSide::Buy, d("1"));
        close_market.close_position = true;
        assert!(close_market.params("pd-1").is_err());
        assert!(
            NewOrder::market("BTCUSDT", OrderSide::Buy, d("0"))
                .params("pd-1")
                .is_err()
        );
    }

    #[test]
    fn state_machine_basics() {
        let mut o = TrackedOrder::new("pd-1", d("3"));
        assert_eq!(o.apply(&OrderEvent::Accepted), Applied::Changed);
        let fill = |id, q: &str| OrderEvent::Fill {
            trade_id: id,
            qty: d(q),
            price: d("10"),
        };
        assert_eq!(o.apply(&fill(1, "1")), Applied::Changed);
        assert_eq!(o.status(), OrderStatus::PartiallyFilled);
        assert_eq!(o.apply(&fill(1, "1")), Applied::Duplicate);
        assert_eq!(o.apply(&fill(2, "5")), Applied::Ignored, "over-fill");
        assert_eq!(o.apply(&OrderEvent::Canceled), Applied::Changed);
        assert_eq!(o.apply(&OrderEvent::Accepted), Applied::Ignored);
        // A fill that happened before the cancel but arrived after it is still booked.
        assert_eq!(o.apply(&fill(3, "1")), Applied::Changed);
        assert_eq!(o.status(), OrderStatus::Canceled);
        assert_eq!(o.filled(), d("2"));
        assert_eq!(o.avg_price(), d("10"));
        assert_eq!(OrderStatus::from_venue("NEW_ADL"), OrderStatus::New);
        assert_eq!(OrderStatus::from_venue("EXPIRED_IN_MATCH"), OrderStatus::Expired);
    }

    /// A true order history and a delivery of it with duplicates and reordering.
    fn history() -> impl Strategy<Value = (u32, Vec<OrderEvent>, Vec<OrderEvent>, OrderStatus)> {
        (
            1_u32..40,
            proptest::collection::vec(1_u32..10, 0..12),
            any::<bool>(),
            any::<u64>(),
        )
            .prop_map(|(orig, fills, cancel, seed)| {
                use rand::{Rng, SeedableRng, seq::SliceRandom};
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                let mut truth = vec![OrderEvent::Accepted];
                let mut filled = 0;
                for (i, q) in fills.into_iter().enumerate() {
                    let q = q.min(orig - filled);
                    if q == 0 {
                        break;
                    }
                    filled += q;
                    truth.push(OrderEvent::Fill {
                        trade_id: i64::try_from(i).unwrap_or(0) * 7 + 100,
                        qty: Decimal::from(q),
                        price: Decimal::from(100 + i),
                    });
                }
                let final_status = if filled == orig {
                    OrderStatus::Filled
                } else if cancel {
                    truth.push(OrderEvent::Canceled);
                    OrderStatus::Canceled
                } else if filled > 0 {
                    OrderStatus::PartiallyFilled
                } else {
                    OrderStatus::New
                };
                let mut delivered = truth.clone();
                // Duplicates.
                for _ in 0..rng.random_range(0..6) {
                    let i = rng.random_range(0..truth.len());
                    delivered.push(truth[i]);
                }
                // Reordering: shuffle a random window.
                let n = delivered.len();
                let a = rng.random_range(0..n);
                let b = rng.random_range(a..=n);
                delivered[a..b].shuffle(&mut rng);
                // Keep Accepted first when it is still there: the venue acks before it fills, and a
                // later Accepted is ignored anyway.
                (orig, truth, delivered, final_status)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        /// O2: filled only grows and never exceeds the order; terminal states absorb; Σ unique trade
        /// ids == filled; every trade delivered at least once is booked exactly once.
        #[test]
        fn order_state_machine_invariants((orig, truth, delivered, final_status) in history()) {
            let mut o = TrackedOrder::new("pd-p", Decimal::from(orig));
            let mut last_filled = Decimal::ZERO;
            let mut terminal: Option<OrderStatus> = None;
            for ev in &delivered {
                o.apply(ev);
                prop_assert!(o.filled() >= last_filled);
                prop_assert!(o.filled() <= o.orig_qty);
                last_filled = o.filled();
                let sum: Decimal = o.trades().values().copied().sum();
                prop_assert_eq!(sum, o.filled());
                if let Some(t) = terminal {
                    prop_assert_eq!(o.status(), t);
                } else if o.status().is_terminal() {
                    terminal = Some(o.status());
                }
            }
            let true_filled: Decimal = truth.iter().map(|e| match e {
                OrderEvent::Fill { qty, .. } => *qty,
                _ => Decimal::ZERO,
            }).sum();
            prop_assert_eq!(o.filled(), true_filled);
            if final_status.is_terminal() {
                prop_assert_eq!(o.status(), final_status);
            }
        }
    }
}
