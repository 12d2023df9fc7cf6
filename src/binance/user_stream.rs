//! The user data stream: listenKey life, the WebSocket of account events, and the book those events
//! keep.
//!
//! Silent user-stream deaths are the most reported way bots lose track of their orders
//! (RELIABILITY.md §3: NT#3861, Binance.Net#796, unicorn#275). So:
//!
//! * **listenKey life** ([`run_keeper`]): a key is created at start, kept alive every 30 minutes (it
//!   lives 60), and **rotated** — a new key, a new connection, then a reconciliation — when a keep-alive
//!   fails or the venue sends `listenKeyExpired`. Rotation requests that arrive within
//!   [`KeeperSettings::debounce`] of the last rotation are dropped: the venue can send two expiry events
//!   at once, and one rotation answers both. The keeper is driven by `tokio::time` only, so 48 hours of
//!   key life run in milliseconds under a paused clock.
//! * **The connection** ([`run_user_stream`]): `<ws>/ws/<listenKey>`, reconnected with jittered
//!   backoff and never given up; every (re)connect is reported as [`UserStreamEvent::Connected`],
//!   which is the consumer's cue to close the reconciliation gate and reconcile, because events sent
//!   while disconnected are gone. A frame that does not decode is counted and skipped.
//! * **The book** ([`UserBook`]): positions are built from fills, deduplicated by
//!   `(orderId, tradeId)`, and cross-checked against `ACCOUNT_UPDATE` (which can arrive before the fill
//!   it reflects). Orders the venue created itself — liquidations (`autoclose-…`), ADL
//!   (`adl_autoclose…`), delisting settlements (`settlement_autoclose-…`, `delivery_autoclose-…`) — have
//!   no entry in our order table; their fills still move the position and are reported, never a panic or
//!   a failed lookup.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    future::Future,
    str::FromStr,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use futures_util::StreamExt;
use rust_decimal::Decimal;
use serde::Deserialize;
use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};
use tokio_tungstenite::tungstenite::{Message, protocol::WebSocketConfig};

use super::{
    errors::RequestKind,
    orders::{OrderEvent, PositionSide, TrackedOrder},
    signed::{Endpoint, EndpointMethod, Security, SignedError, SignedRest},
    trade_wire::{AccountUpdate, ListenKey, ListenKeyExpired, OrderTradeUpdate, OrderUpdate},
};

/// `POST /fapi/v1/listenKey` (weight 1, API key only).
pub const LISTEN_KEY_CREATE: Endpoint = Endpoint {
    method: EndpointMethod::Post,
    path: "/fapi/v1/listenKey",
    weight: 1,
    orders: 0,
    kind: RequestKind::Mutation,
    security: Security::ApiKey,
};
/// `PUT /fapi/v1/listenKey` (weight 1, API key only).
pub const LISTEN_KEY_KEEPALIVE: Endpoint = Endpoint {
    method: EndpointMethod::Put,
    ..LISTEN_KEY_CREATE
};
/// `DELETE /fapi/v1/listenKey` (weight 1, API key only).
pub const LISTEN_KEY_CLOSE: Endpoint = Endpoint {
    method: EndpointMethod::Delete,
    ..LISTEN_KEY_CREATE
};

/// A decoding problem with one user-stream frame (counted and skipped, never fatal).
#[derive(Debug, thiserror::Error)]
pub enum UserStreamError {
    #[error("user-stream frame is not valid JSON of a known shape: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("user-stream value {field} = {value:?} is not a decimal")]
    BadDecimal { field: &'static str, value: String },
}

/// One decoded user-stream event.
// A few events a minute, each moved once to its consumer: boxing would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserEvent {
    OrderTradeUpdate(OrderTradeUpdate),
    AccountUpdate(AccountUpdate),
    ListenKeyExpired(ListenKeyExpired),
    /// An event type the console does not act on (`TRADE_LITE`, `ALGO_UPDATE`, `MARGIN_CALL`,
    /// `ACCOUNT_CONFIG_UPDATE`, new ones): its `e`.
    Other(String),
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(rename = "e", borrow)]
    event_type: Option<&'a str>,
    #[serde(borrow)]
    data: Option<&'a serde_json::value::RawValue>,
}

/// Decodes one frame: a raw event, or one wrapped as `{"stream": …, "data": {…}}`.
pub fn decode_user_event(text: &str) -> Result<UserEvent, UserStreamError> {
    let probe: Probe<'_> = serde_json::from_str(text)?;
    if let (None, Some(data)) = (probe.event_type, probe.data) {
        return decode_user_event(data.get());
    }
    Ok(match probe.event_type.unwrap_or_default() {
        "ORDER_TRADE_UPDATE" => UserEvent::OrderTradeUpdate(serde_json::from_str(text)?),
        "ACCOUNT_UPDATE" => UserEvent::AccountUpdate(serde_json::from_str(text)?),
        "listenKeyExpired" => UserEvent::ListenKeyExpired(serde_json::from_str(text)?),
        other => UserEvent::Other(other.to_owned()),
    })
}

/// Who created an order the console sees on its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderOrigin {
    /// Not venue-generated: ours, or placed by hand / another program on the account.
    Client,
    /// `autoclose-…`: liquidation (also the insurance-fund variants).
    Liquidation,
    /// `adl_autoclose…`: auto-deleveraging.
    Adl,
    /// `settlement_autoclose-…` / `delivery_autoclose-…`: delisting settlement or delivery.
    Settlement,
}

impl OrderOrigin {
    /// Classifies a client order id.
    pub fn of(client_order_id: &str) -> Self {
        if client_order_id.starts_with("adl_autoclose") {
            Self::Adl
        } else if client_order_id.starts_with("settlement_autoclose-")
            || client_order_id.starts_with("delivery_autoclose-")
        {
            Self::Settlement
        } else if client_order_id.starts_with("autoclose-") {
            Self::Liquidation
        } else {
            Self::Client
        }
    }
}

fn dec(field: &'static str, value: &str) -> Result<Decimal, UserStreamError> {
    if value.is_empty() {
        return Ok(Decimal::ZERO);
    }
    Decimal::from_str(value).map_err(|_| UserStreamError::BadDecimal {
        field,
        value: value.chars().take(40).collect(),
    })
}

/// What one event changed in the [`UserBook`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookChange {
    /// A fill moved a position; `origin` says whether the venue created the order.
    Fill {
        symbol: String,
        side: PositionSide,
        signed_qty: Decimal,
        origin: OrderOrigin,
        client_order_id: String,
    },
    /// An order of ours changed state (no fill).
    OrderStatus { client_order_id: String },
    /// `ACCOUNT_UPDATE` recorded (the venue's view for the cross-check).
    Account { positions: usize },
    /// A duplicate or an event with nothing to change.
    Nothing,
    /// The venue expired the listenKey: rotate.
    ListenKeyExpired,
}

/// Positions and orders kept from the user stream.
#[derive(Debug, Clone, Default)]
pub struct UserBook {
    /// Built from fills (signed, long > 0).
    positions: BTreeMap<(String, PositionSide), Decimal>,
    /// As last reported by `ACCOUNT_UPDATE` (absolute amounts).
    reported: BTreeMap<(String, PositionSide), Decimal>,
    orders: HashMap<String, TrackedOrder>,
    seen_fills: HashSet<(i64, i64, String)>,
    /// Fills of orders the console did not place (venue-generated or foreign).
    pub external_fills: u64,
}

impl UserBook {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts from reconciled venue positions.
    pub fn set_position(&mut self, symbol: &str, side: PositionSide, qty: Decimal) {
        self.positions.insert((symbol.to_owned(), side), qty);
    }

    /// Tracks one of our orders (its fills then go through the order state machine too).
    pub fn track(&mut self, order: TrackedOrder) {
        self.orders.insert(order.client_order_id.clone(), order);
    }

    pub fn order(&self, client_order_id: &str) -> Option<&TrackedOrder> {
        self.orders.get(client_order_id)
    }

    /// The position built from fills (zero when unknown).
    pub fn position(&self, symbol: &str, side: PositionSide) -> Decimal {
        self.positions
            .get(&(symbol.to_owned(), side))
            .copied()
            .unwrap_or_default()
    }

    /// Positions where fills and the last `ACCOUNT_UPDATE` disagree: `(symbol, side, fills, venue)`.
    /// Transient while a fill and its account update are in flight; persistent ones call for a
    /// reconciliation.
    pub fn mismatches(&self) -> Vec<(String, PositionSide, Decimal, Decimal)> {
        self.reported
            .iter()
            .filter_map(|(k, v)| {
                let ours = self.positions.get(k).copied().unwrap_or_default();
                (ours != *v).then(|| (k.0.clone(), k.1, ours, *v))
            })
            .collect()
    }

    /// Applies one event.
    pub fn apply(&mut self, event: &UserEvent) -> Result<BookChange, UserStreamError> {
        match event {
            UserEvent::OrderTradeUpdate(u) => self.on_order(&u.order),
            UserEvent::AccountUpdate(a) => {
                for p in &a.data.positions {
                    let side = PositionSide::from_venue(&p.position_side).unwrap_or(PositionSide::Both);
                    self.reported
                        .insert((p.symbol.clone(), side), dec("pa", &p.position_amt)?);
                }
                Ok(BookChange::Account {
                    positions: a.data.positions.len(),
                })
            }
            UserEvent::ListenKeyExpired(_) => Ok(BookChange::ListenKeyExpired),
            UserEvent::Other(_) => Ok(BookChange::Nothing),
        }
    }

    fn on_order(&mut self, o: &OrderUpdate) -> Result<BookChange, UserStreamError> {
        let last_qty = dec("l", &o.last_qty)?;
        let is_fill = matches!(o.execution_type.as_str(), "TRADE" | "CALCULATED") && last_qty > Decimal::ZERO;
        let origin = OrderOrigin::of(&o.client_order_id);
        if !is_fill {
            let Some(tracked) = self.orders.get_mut(&o.client_order_id) else {
                return Ok(BookChange::Nothing);
            };
            let ev = match o.execution_type.as_str() {
                "NEW" => OrderEvent::Accepted,
                "CANCELED" => OrderEvent::Canceled,
                "EXPIRED" => OrderEvent::Expired,
                "REJECTED" => OrderEvent::Rejected,
                _ => return Ok(BookChange::Nothing),
            };
            tracked.apply(&ev);
            return Ok(BookChange::OrderStatus {
                client_order_id: o.client_order_id.clone(),
            });
        }
        // Liquidation fills may carry trade id 0: the cumulative quantity tells them apart.
        if !self
            .seen_fills
            .insert((o.order_id, o.trade_id, o.cum_qty.clone()))
        {
            return Ok(BookChange::Nothing);
        }
        let price = dec("L", &o.last_price)?;
        let signed_qty = if o.side == "SELL" { -last_qty } else { last_qty };
        let side = PositionSide::from_venue(&o.position_side).unwrap_or(PositionSide::Both);
        match self.orders.get_mut(&o.client_order_id) {
            Some(tracked) => {
                tracked.apply(&OrderEvent::Fill {
                    trade_id: o.trade_id,
                    qty: last_qty,
                    price,
                });
            }
            None => self.external_fills += 1,
        }
        *self.positions.entry((o.symbol.clone(), side)).or_default() += signed_qty;
        Ok(BookChange::Fill {
            symbol: o.symbol.clone(),
            side,
            signed_qty,
            origin,
            client_order_id: o.client_order_id.clone(),
        })
    }
}

// ---------------------------------------------------------------------------------------------------------
// listenKey life
// ---------------------------------------------------------------------------------------------------------

/// The listenKey endpoints, abstracted so that the keeper can be driven by a simulated venue under a
/// paused clock.
pub trait ListenKeyApi: Send + Sync {
    type Error: std::fmt::Display + Send;
    /// `POST /fapi/v1/listenKey`: the active key (extended) or a new one.
    fn create(&self) -> impl Future<Output = Result<String, Self::Error>> + Send;
    /// `PUT /fapi/v1/listenKey`: extends the key by 60 minutes.
    fn keepalive(&self, key: &str) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

impl ListenKeyApi for SignedRest {
    type Error = SignedError;

    async fn create(&self) -> Result<String, SignedError> {
        let k: ListenKey = self.call(&LISTEN_KEY_CREATE, &[]).await?;
        Ok(k.listen_key)
    }

    async fn keepalive(&self, key: &str) -> Result<(), SignedError> {
        let _: serde_json::Value = self
            .call(&LISTEN_KEY_KEEPALIVE, &[("listenKey", key.to_owned())])
            .await?;
        Ok(())
    }
}

impl SignedRest {
    /// `DELETE /fapi/v1/listenKey` (at shutdown).
    pub async fn close_listen_key(&self, key: &str) -> Result<(), SignedError> {
        let _: serde_json::Value = self
            .call(&LISTEN_KEY_CLOSE, &[("listenKey", key.to_owned())])
            .await?;
        Ok(())
    }
}

/// Timing of the keeper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeeperSettings {
    /// Keep-alive period (the key lives 60 minutes; 30 leaves room for one failure).
    pub keepalive_every: Duration,
    /// Rotation requests within this long after a rotation are dropped.
    pub debounce: Duration,
    /// Wait before retrying a failed create.
    pub retry_delay: Duration,
}

impl Default for KeeperSettings {
    fn default() -> Self {
        Self {
            keepalive_every: Duration::from_secs(30 * 60),
            debounce: Duration::from_secs(5),
            retry_delay: Duration::from_secs(5),
        }
    }
}

/// Counters of the keeper (status bar, tests).
#[derive(Debug, Default)]
pub struct KeeperStats {
    pub created: AtomicU64,
    pub keepalives: AtomicU64,
    pub keepalive_failures: AtomicU64,
    pub rotations: AtomicU64,
    pub debounced: AtomicU64,
}

/// Why a rotation is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateReason {
    /// The stream delivered `listenKeyExpired`.
    Expired,
    /// The venue said the key is unknown (`-1125`).
    InvalidKey,
}

async fn create_until_ok<A: ListenKeyApi>(
    api: &A,
    settings: &KeeperSettings,
    stop: &mut watch::Receiver<bool>,
) -> Option<String> {
    loop {
        match api.create().await {
            Ok(k) => return Some(k),
            Err(e) => tracing::warn!(error = %e, "listenKey create failed; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(settings.retry_delay) => {}
            _ = stop.changed() => return None,
        }
        if *stop.borrow() {
            return None;
        }
    }
}

/// Keeps a listenKey alive until `stop`: publishes the key in force on `keys`, keeps it alive every
/// [`KeeperSettings::keepalive_every`], and rotates on a failed keep-alive or a (debounced) request.
pub async fn run_keeper<A: ListenKeyApi>(
    api: &A,
    settings: KeeperSettings,
    mut requests: mpsc::Receiver<RotateReason>,
    keys: watch::Sender<Option<String>>,
    stats: &KeeperStats,
    mut stop: watch::Receiver<bool>,
) {
    let Some(mut key) = create_until_ok(api, &settings, &mut stop).await else {
        return;
    };
    stats.created.fetch_add(1, Ordering::Relaxed);
    let _ = keys.send(Some(key.clone()));
    // Debounce measures from the last rotation; the first key is not one.
    let mut last_rotation: Option<Instant> = None;
    let mut next_keepalive = Instant::now() + settings.keepalive_every;
    loop {
        let rotate = tokio::select! {
            () = tokio::time::sleep_until(next_keepalive) => {
                match api.keepalive(&key).await {
                    Ok(()) => {
                        stats.keepalives.fetch_add(1, Ordering::Relaxed);
                        next_keepalive = Instant::now() + settings.keepalive_every;
                        false
                    }
                    Err(e) => {
                        stats.keepalive_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, "listenKey keep-alive failed; rotating the key");
                        true
                    }
                }
            }
            req = requests.recv() => match req {
                Some(reason) if last_rotation.is_some_and(|t| t.elapsed() < settings.debounce) => {
                    stats.debounced.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(?reason, "listenKey rotation already done just now; ignored");
                    false
                }
                Some(reason) => {
                    tracing::info!(?reason, "rotating the listenKey");
                    true
                }
                None => return,
            },
            _ = stop.changed() => {
                if *stop.borrow() { return; }
                false
            }
        };
        if rotate {
            let Some(k) = create_until_ok(api, &settings, &mut stop).await else {
                return;
            };
            key = k;
            stats.rotations.fetch_add(1, Ordering::Relaxed);
            let _ = keys.send(Some(key.clone()));
            let now = Instant::now();
            last_rotation = Some(now);
            next_keepalive = now + settings.keepalive_every;
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The connection
// ---------------------------------------------------------------------------------------------------------

/// What the user-stream task reports.
#[allow(clippy::large_enum_variant)] // see `UserEvent`
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserStreamEvent {
    /// Connected (first time, after a drop, or with a rotated key): reconcile now.
    Connected {
        reconnects: u64,
    },
    Event(UserEvent),
    /// A frame that did not decode (skipped).
    BadFrame,
    Disconnected,
}

/// Tunables of the user-stream connection.
#[derive(Debug, Clone)]
pub struct UserStreamConfig {
    /// WebSocket base, e.g. `wss://fstream.binance.com`; the task connects to `<base>/ws/<listenKey>`.
    pub ws_base: String,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub max_frame_bytes: usize,
}

impl UserStreamConfig {
    pub fn new(ws_base: &str) -> Self {
        Self {
            ws_base: ws_base.trim_end_matches('/').to_owned(),
            backoff_initial: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            max_frame_bytes: 1 << 20,
        }
    }
}

/// Runs the user-data connection until `stop`: follows the key in `keys`, asks `rotate` for a new key
/// on `listenKeyExpired`, and reports everything on `out`.
pub async fn run_user_stream(
    cfg: UserStreamConfig,
    mut keys: watch::Receiver<Option<String>>,
    rotate: mpsc::Sender<RotateReason>,
    out: mpsc::Sender<UserStreamEvent>,
    mut stop: watch::Receiver<bool>,
) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(crate::domain::now_ms().unsigned_abs());
    let mut attempt: u32 = 0;
    let mut connections: u64 = 0;
    loop {
        if *stop.borrow() {
            return;
        }
        let key = keys.borrow_and_update().clone();
        let Some(key) = key else {
            tokio::select! {
                r = keys.changed() => if r.is_err() { return },
                _ = stop.changed() => {}
            }
            continue;
        };
        let url = format!("{}/ws/{key}", cfg.ws_base);
        let ws_cfg = WebSocketConfig::default()
            .max_frame_size(Some(cfg.max_frame_bytes))
            .max_message_size(Some(cfg.max_frame_bytes));
        match tokio_tungstenite::connect_async_with_config(url.as_str(), Some(ws_cfg), false).await {
            Ok((mut ws, _)) => {
                attempt = 0;
                if out
                    .send(UserStreamEvent::Connected {
                        reconnects: connections,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                connections += 1;
                loop {
                    tokio::select! {
                        msg = ws.next() => match msg {
                            Some(Ok(Message::Text(t))) => {
                                let ev = match decode_user_event(t.as_str()) {
                                    Ok(ev) => {
                                        if matches!(ev, UserEvent::ListenKeyExpired(_)) {
                                            let _ = rotate.try_send(RotateReason::Expired);
                                        }
                                        UserStreamEvent::Event(ev)
                                    }
                                    Err(e) => {
                                        tracing::warn!(error = %e, "user-stream frame skipped");
                                        UserStreamEvent::BadFrame
                                    }
                                };
                                if out.send(ev).await.is_err() { return; }
                            }
                            Some(Ok(_)) => {}
                            Some(Err(_)) | None => break,
                        },
                        r = keys.changed() => {
                            if r.is_err() { return; }
                            // A rotated key: reconnect with it.
                            break;
                        }
                        _ = stop.changed() => {
                            if *stop.borrow() {
                                let _ = ws.close(None).await;
                                return;
                            }
                        }
                    }
                }
                if out.send(UserStreamEvent::Disconnected).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "user-stream connect failed");
                attempt = attempt.saturating_add(1);
            }
        }
        let cap = cfg.backoff_max.as_millis() as u64;
        let base = (cfg.backoff_initial.as_millis() as u64)
            .saturating_mul(1_u64 << attempt.min(20))
            .min(cap);
        let delay = Duration::from_millis(rng.random_range(base / 2..=base.max(1)));
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn origins_of_venue_generated_orders() {
        assert_eq!(OrderOrigin::of("autoclose-1234567890"), OrderOrigin::Liquidation);
        assert_eq!(
            OrderOrigin::of("autoclose-insurance-5678"),
            OrderOrigin::Liquidation
        );
        assert_eq!(OrderOrigin::of("adl_autoclose"), OrderOrigin::Adl);
        assert_eq!(OrderOrigin::of("adl_autoclose-123"), OrderOrigin::Adl);
        assert_eq!(
            OrderOrigin::of("settlement_autoclose-9999"),
            OrderOrigin::Settlement
        );
        assert_eq!(
            OrderOrigin::of("delivery_autoclose-12345"),
            OrderOrigin::Settlement
        );
        assert_eq!(OrderOrigin::of("pd-abc-1"), OrderOrigin::Client);
    }

    #[test]
    fn wrapped_and_unknown_events_decode() {
        let wrapped = r#"{"stream":"x","data":{"e":"listenKeyExpired","E":1}}"#;
        assert!(matches!(
            decode_user_event(wrapped).expect("ok"),
            UserEvent::ListenKeyExpired(ListenKeyExpired { listen_key: None, .. })
        ));
        assert_eq!(
            decode_user_event(r#"{"e":"MARGIN_CALL","E":1}"#).expect("ok"),
            UserEvent::Other("MARGIN_CALL".into())
        );
        assert!(decode_user_event("{").is_err());
        assert!(decode_user_event(r#"{"e":"ORDER_TRADE_UPDATE","E":1}"#).is_err());
    }

    /// A venue's listenKey rules (60-minute life, POST returns the active key) on tokio's clock.
    #[derive(Default)]
    struct FakeVenue {
        inner: Mutex<FakeState>,
    }

    #[derive(Default)]
    struct FakeState {
        key: Option<(String, Instant)>,
        next: u32,
        expiries: u32,
        fail_next_keepalive: bool,
    }

    const LIFE: Duration = Duration::from_secs(3600);

    impl FakeState {
        fn live_key(&mut self) -> Option<&String> {
            if let Some((_, exp)) = &self.key
                && Instant::now() >= *exp
            {
                self.expiries += 1;
                self.key = None;
            }
            self.key.as_ref().map(|(k, _)| k)
        }
    }

    impl ListenKeyApi for Arc<FakeVenue> {
        type Error = String;

        async fn create(&self) -> Result<String, String> {
            let mut s = self.inner.lock().expect("lock");
            let key = if let Some(k) = s.live_key() {
                k.clone()
            } else {
                s.next += 1;
                format!("key{}", s.next)
            };
            s.key = Some((key.clone(), Instant::now() + LIFE));
            Ok(key)
        }

        async fn keepalive(&self, key: &str) -> Result<(), String> {
            let mut s = self.inner.lock().expect("lock");
            if std::mem::take(&mut s.fail_next_keepalive) {
                return Err("-1125 This listenKey does not exist.".into());
            }
            match s.live_key() {
                Some(k) if k == key => {
                    s.key = Some((key.to_owned(), Instant::now() + LIFE));
                    Ok(())
                }
                _ => Err("-1125 This listenKey does not exist.".into()),
            }
        }
    }

    /// O5: 48 simulated hours: 96 keep-alives, 0 expiries; two expiry events 10 ms apart → one
    /// rotation; a failed keep-alive → one rotation.
    #[tokio::test(start_paused = true)]
    async fn forty_eight_hours_of_listen_key_life() {
        let venue = Arc::new(FakeVenue::default());
        let stats = Arc::new(KeeperStats::default());
        let (req_tx, req_rx) = mpsc::channel(8);
        let (key_tx, mut key_rx) = watch::channel(None);
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = {
            let (venue, stats) = (Arc::clone(&venue), Arc::clone(&stats));
            tokio::spawn(async move {
                run_keeper(&venue, KeeperSettings::default(), req_rx, key_tx, &stats, stop_rx).await;
            })
        };
        key_rx.changed().await.expect("first key");
        assert_eq!(key_rx.borrow().as_deref(), Some("key1"));
        // 48 h plus a minute, so the 96th keep-alive (at exactly 48 h) has run.
        tokio::time::sleep(Duration::from_secs(48 * 3600 + 60)).await;
        assert_eq!(stats.keepalives.load(Ordering::Relaxed), 96);
        assert_eq!(stats.rotations.load(Ordering::Relaxed), 0);
        assert_eq!(venue.inner.lock().expect("lock").expiries, 0);

        // Two listenKeyExpired 10 ms apart: one rotation, one debounced.
        venue.inner.lock().expect("lock").key = None; // the venue dropped the key
        req_tx.send(RotateReason::Expired).await.expect("send");
        tokio::time::sleep(Duration::from_millis(10)).await;
        req_tx.send(RotateReason::Expired).await.expect("send");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(stats.rotations.load(Ordering::Relaxed), 1);
        assert_eq!(stats.debounced.load(Ordering::Relaxed), 1);
        assert_eq!(key_rx.borrow_and_update().as_deref(), Some("key2"));

        // A failed keep-alive rotates.
        venue.inner.lock().expect("lock").fail_next_keepalive = true;
        tokio::time::sleep(Duration::from_secs(31 * 60)).await;
        assert_eq!(stats.keepalive_failures.load(Ordering::Relaxed), 1);
        assert_eq!(stats.rotations.load(Ordering::Relaxed), 2);
        assert_eq!(venue.inner.lock().expect("lock").expiries, 0);

        stop_tx.send(true).expect("stop");
        task.await.expect("keeper ends");
    }

    fn trade(client: &str, order_id: i64, trade_id: i64, side: &str, qty: &str, cum: &str) -> UserEvent {
        let json = format!(
            r#"{{"e":"ORDER_TRADE_UPDATE","E":1,"T":1,"o":{{"s":"BTCUSDT","c":"{client}","S":"{side}","o":"MARKET","q":"1","x":"TRADE","X":"PARTIALLY_FILLED","i":{order_id},"l":"{qty}","z":"{cum}","L":"100","t":{trade_id},"ps":"BOTH"}}}}"#
        );
        decode_user_event(&json).expect("valid")
    }

    #[test]
    fn book_dedupes_fills_and_keeps_venue_generated_ones() {
        let mut book = UserBook::new();
        book.track(TrackedOrder::new("pd-1", Decimal::ONE));
        let t = trade("pd-1", 7, 70, "BUY", "0.4", "0.4");
        book.apply(&t).expect("ok");
        assert_eq!(book.apply(&t).expect("ok"), BookChange::Nothing, "duplicate");
        assert_eq!(book.position("BTCUSDT", PositionSide::Both), Decimal::new(4, 1));
        assert_eq!(
            book.order("pd-1").map(TrackedOrder::filled),
            Some(Decimal::new(4, 1))
        );
        // A liquidation of the whole position: no order of ours, still applied.
        let liq = trade("autoclose-99", 8, 0, "SELL", "0.4", "0.4");
        let change = book.apply(&liq).expect("ok");
        assert!(matches!(
            change,
            BookChange::Fill {
                origin: OrderOrigin::Liquidation,
                ..
            }
        ));
        assert_eq!(book.position("BTCUSDT", PositionSide::Both), Decimal::ZERO);
        assert_eq!(book.external_fills, 1);
    }
}
