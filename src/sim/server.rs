//! The simulated exchange's servers: Binance USDT-M REST and WebSocket market streams on one
//! loopback port.
//!
//! Every payload is built from the same `binance::wire` structs the client decodes, so field names and
//! JSON types (numbers as strings where Binance sends strings) match the venue by construction. Request
//! weights are counted per wall-clock minute (tests may compress the window) and reported in
//! `X-MBX-USED-WEIGHT-1M`; past the limit
//! the server answers 429 with `Retry-After`, as the venue does. Kline semantics (startTime, endTime,
//! limit, the 1500 cap) follow the venue's documentation.
//!
//! The fault plan (`sim::faults`) hooks in at three places only: a middleware in front of every route
//! (REST rejections and delays, maintenance refusals of WebSocket upgrades, and the unknown outcome an
//! order POST is handed as a request extension), the push tick of each
//! WebSocket connection (drops, resets, close frames, stalls, the connection lifetime, and the frame
//! mangling), and `exchangeInfo` (symbols leaving TRADING). A TCP reset needs the socket itself, so the
//! listener wraps each accepted stream ([`FaultIo`]) and hands the handler a [`ResetHandle`].

// Handlers reject with a ready-made axum `Response` (the venue's error body): boxing it would only
// add an allocation to the error path of a test server.
#![allow(clippy::result_large_err)]

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::{
        ConnectInfo, Query, State,
        connect_info::Connected,
        ws::{Message, WebSocket, WebSocketUpgrade},
    },
    http::{HeaderValue, Request, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

use super::{
    faults::{ConnectionAction, FaultPlan, FaultState, RestFault, SymbolRef},
    source::MarketSource,
    trading::{Trading, TradingSettings},
};
use crate::{
    binance::wire,
    domain::{Bar, Interval, TimestampMs},
};

/// Settings of a simulated exchange.
#[derive(Debug, Clone)]
pub struct SimSettings {
    /// 0 picks an ephemeral port.
    pub port: u16,
    /// `REQUEST_WEIGHT` per [`SimSettings::weight_window`] (Binance: 2400).
    pub weight_limit: u32,
    /// The window the weight is counted in, epoch-aligned (Binance: one minute). Tests compress it
    /// (one second: the venue's minute at 60×); `exchangeInfo.rateLimits` and the
    /// `X-MBX-USED-WEIGHT-<n><unit>` header name follow it. Whole seconds.
    pub weight_window: Duration,
    /// Streams one connection may hold (Binance: 1024).
    pub max_streams_per_connection: usize,
    /// Incoming messages per second per connection (Binance: 10).
    pub max_incoming_per_second: u32,
    /// How often kline streams push (Binance: 250 ms).
    pub push_interval: Duration,
    /// Server ping interval (Binance: 3 minutes).
    pub ping_interval: Duration,
    /// The signed/trading side: accepted key pairs, starting balance, fees, listenKey life.
    pub trading: TradingSettings,
    /// Faults to inject (`perpdesk sim --faults`); the default injects none.
    pub faults: FaultPlan,
}

impl Default for SimSettings {
    fn default() -> Self {
        Self {
            port: 0,
            weight_limit: 2400,
            weight_window: Duration::from_secs(60),
            max_streams_per_connection: 1024,
            max_incoming_per_second: 10,
            push_interval: Duration::from_millis(250),
            ping_interval: Duration::from_secs(180),
            trading: TradingSettings::default(),
            faults: FaultPlan::default(),
        }
    }
}

/// The simulated clock: `sim = anchor_sim + (wall − anchor_wall) × speed`, capped at the end of data.
///
/// Being a pure function of the wall clock is what lets a restarted simulator (same seed, same
/// anchor) continue exactly where the killed one was, so a client reconnecting to it sees one
/// continuous market — the property the reconnect tests rely on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimClock {
    anchor_wall: TimestampMs,
    anchor_sim: TimestampMs,
    speed: f64,
    end: Option<TimestampMs>,
    /// Added to every reading: the fault plan's clock skew (the venue's clock runs ahead or behind).
    offset_ms: i64,
}

impl SimClock {
    pub fn new(
        anchor_wall: TimestampMs,
        anchor_sim: TimestampMs,
        speed: f64,
        end: Option<TimestampMs>,
    ) -> Self {
        Self {
            anchor_wall,
            anchor_sim,
            speed: speed.max(0.0),
            end,
            offset_ms: 0,
        }
    }

    /// The same clock running `offset_ms` ahead (negative: behind). The market is unchanged; only
    /// the times the venue reports and judges by move.
    pub fn with_offset(self, offset_ms: i64) -> Self {
        Self { offset_ms, ..self }
    }

    /// The clock for a synthetic market: anchored at the start of the current UTC day, so at speed 1
    /// simulated time equals wall time, and any restart on the same day resumes the same timeline.
    pub fn synthetic(speed: f64) -> Self {
        let day = crate::domain::now_ms().div_euclid(86_400_000) * 86_400_000;
        Self::new(day, day, speed, None)
    }

    /// The synthetic clock of a simulator started on the UTC day beginning at `day_start` (ms): what
    /// `perpdesk sim --dump-bars --day` needs to rebuild the same market after midnight.
    pub fn synthetic_on(day_start: TimestampMs, speed: f64) -> Self {
        let day = day_start.div_euclid(86_400_000) * 86_400_000;
        Self::new(day, day, speed, None)
    }

    /// The simulated time at the anchor (for the synthetic clock: midnight UTC of the start day).
    pub fn anchor_sim(&self) -> TimestampMs {
        self.anchor_sim
    }

    pub fn at_wall(&self, wall: TimestampMs) -> TimestampMs {
        let t = self.anchor_sim + ((wall + self.offset_ms - self.anchor_wall) as f64 * self.speed) as i64;
        self.end.map_or(t, |e| t.min(e))
    }

    pub fn now(&self) -> TimestampMs {
        self.at_wall(crate::domain::now_ms())
    }
}

/// Requests weight per wall-clock window (a minute at the venue), as the venue counts it.
#[derive(Debug, Default)]
struct WeightWindow {
    window: i64,
    used: u32,
    /// The most weight any window has reached (tests: "never above 80 %").
    peak: u32,
    /// Requests refused with 429 for weight.
    rejected: u64,
}

/// `(interval, intervalNum)` of `exchangeInfo` and the header suffix (`1M`, `1S`) for a weight
/// window of `window` (whole minutes are `MINUTE`, anything else whole `SECOND`s, at least one).
fn weight_interval(window: Duration) -> (&'static str, u32, String) {
    let secs = u32::try_from(window.as_secs().max(1)).unwrap_or(60);
    if secs % 60 == 0 {
        ("MINUTE", secs / 60, format!("{}M", secs / 60))
    } else {
        ("SECOND", secs, format!("{secs}S"))
    }
}

/// What the WebSocket side saw of its clients, over all connections (M4: every ping answered
/// promptly; M6: after a reconnect the client's subscriptions equal what it tracks, within the
/// venue's limits).
#[derive(Debug, Default)]
pub struct WsStats {
    pub pings: AtomicU64,
    pub pongs: AtomicU64,
    /// Slowest ping → pong seen, µs (tokio time, so virtual under a paused clock).
    pub max_pong_latency_us: AtomicU64,
    /// Requests past `max_incoming_per_second` or `max_streams_per_connection`.
    pub limit_violations: AtomicU64,
    next_connection: AtomicU64,
    /// The streams of every open connection, by connection number.
    open: Mutex<BTreeMap<u64, Vec<String>>>,
}

impl WsStats {
    /// The streams each open connection is subscribed to (sorted), one entry per connection.
    pub fn open_subscriptions(&self) -> Vec<Vec<String>> {
        self.open
            .lock()
            .map(|o| o.values().cloned().collect())
            .unwrap_or_default()
    }

    fn record(&self, connection: u64, subs: &BTreeMap<String, Subscription>) {
        if let Ok(mut o) = self.open.lock() {
            o.insert(connection, subs.keys().cloned().collect());
        }
    }
}

/// Takes a connection out of [`WsStats`]'s open set however its handler ends.
struct OpenConnection<'a> {
    stats: &'a WsStats,
    id: u64,
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        if let Ok(mut o) = self.stats.open.lock() {
            o.remove(&self.id);
        }
    }
}

#[derive(Debug)]
struct SimState {
    source: Arc<dyn MarketSource>,
    clock: SimClock,
    settings: SimSettings,
    by_name: HashMap<String, usize>,
    weight: Mutex<WeightWindow>,
    exchange_info_json: String,
    trading: Arc<Trading>,
    faults: FaultState,
    ws: WsStats,
}

/// A running simulated exchange. Dropping the handle does not stop it; call [`SimHandle::shutdown`].
#[derive(Debug)]
pub struct SimHandle {
    pub addr: SocketAddr,
    pub rest_url: String,
    pub ws_url: String,
    /// The trading side (tests inspect orders and queue order faults through it).
    pub trading: Arc<Trading>,
    shutdown: watch::Sender<bool>,
    join: JoinHandle<()>,
    state: Arc<SimState>,
}

impl SimHandle {
    /// What the fault plan has injected so far, `name=count` for every non-zero count.
    pub fn fault_summary(&self) -> String {
        self.state.faults.counts.summary()
    }

    /// The injected-fault counters.
    pub fn fault_counts(&self) -> &super::faults::FaultCounts {
        &self.state.faults.counts
    }

    /// Calms the fault plan (`true`: nothing injected from now on) or lets it loose again; see
    /// [`FaultState::set_calm`].
    pub fn calm_faults(&self, calm: bool) {
        self.state.faults.set_calm(calm);
    }

    /// Pings and pongs, limit violations and the open connections' subscriptions.
    pub fn ws_stats(&self) -> &WsStats {
        &self.state.ws
    }

    /// The highest weight any window has counted so far, and the requests refused with 429 for
    /// weight.
    pub fn weight_peak_and_rejections(&self) -> (u32, u64) {
        self.state.weight.lock().map_or((0, 0), |w| (w.peak, w.rejected))
    }

    /// Stops accepting, closes every WebSocket and waits for the server task.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.join.await;
    }
}

fn error_response(status: StatusCode, code: i64, msg: impl Into<String>) -> Response {
    (
        status,
        axum::Json(wire::ApiErrorBody {
            code,
            msg: msg.into(),
        }),
    )
        .into_response()
}

fn json_response(body: String) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn to_json<T: serde::Serialize>(v: &T) -> Response {
    match serde_json::to_string(v) {
        Ok(s) => json_response(s),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, -1000, e.to_string()),
    }
}

/// Starts the exchange on 127.0.0.1 with the given clock (see [`SimClock`]).
pub async fn start(
    source: Arc<dyn MarketSource>,
    clock: SimClock,
    settings: SimSettings,
) -> std::io::Result<SimHandle> {
    let listener = TcpListener::bind(("127.0.0.1", settings.port)).await?;
    let addr = listener.local_addr()?;
    let clock = clock.with_offset(settings.faults.skew_ms);
    let by_name = source
        .symbols()
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), i))
        .collect();
    let info = exchange_info(source.as_ref(), clock.now(), &settings);
    let exchange_info_json = serde_json::to_string(&info).map_err(std::io::Error::other)?;
    let trading = Arc::new(Trading::new(
        Arc::clone(&source),
        clock,
        &info,
        settings.trading.clone(),
    ));
    let state = Arc::new(SimState {
        source,
        clock,
        by_name,
        weight: Mutex::new(WeightWindow::default()),
        exchange_info_json,
        trading: Arc::clone(&trading),
        faults: FaultState::new(settings.faults.clone()),
        ws: WsStats::default(),
        settings,
    });
    let (shutdown_tx, mut shutdown_rx) = watch::channel(false);
    tokio::spawn(Arc::clone(&trading).run_matcher(Duration::from_millis(100), shutdown_tx.subscribe()));
    let app = router(Arc::clone(&state), shutdown_tx.subscribe());
    let join = tokio::spawn(async move {
        let serve = axum::serve(
            FaultListener(listener),
            app.into_make_service_with_connect_info::<ResetHandle>(),
        )
        .with_graceful_shutdown(async move {
            let _ = shutdown_rx.changed().await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "simulated exchange stopped with an error");
        }
    });
    Ok(SimHandle {
        addr,
        rest_url: format!("http://{addr}"),
        ws_url: format!("ws://{addr}"),
        trading,
        shutdown: shutdown_tx,
        join,
        state,
    })
}

/// The accepting side: plain TCP, each stream wrapped so that a handler can reset it.
struct FaultListener(TcpListener);

impl axum::serve::Listener for FaultListener {
    type Io = FaultIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.0).await;
        let _ = io.set_nodelay(true);
        (
            FaultIo {
                inner: io,
                reset: Arc::new(AtomicBool::new(false)),
            },
            addr,
        )
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// An accepted TCP stream that closes with a reset (RST, via `SO_LINGER` 0) instead of a FIN when
/// its [`ResetHandle`] was triggered.
#[derive(Debug)]
pub struct FaultIo {
    inner: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for FaultIo {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Relaxed) {
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for FaultIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Lets a handler ask for its connection to end with a TCP reset when it is dropped.
#[derive(Debug, Clone)]
pub struct ResetHandle(Arc<AtomicBool>);

impl ResetHandle {
    fn trigger(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Connected<axum::serve::IncomingStream<'_, FaultListener>> for ResetHandle {
    fn connect_info(stream: axum::serve::IncomingStream<'_, FaultListener>) -> Self {
        Self(Arc::clone(&stream.io().reset))
    }
}

#[derive(Clone)]
struct AppState {
    sim: Arc<SimState>,
    shutdown: watch::Receiver<bool>,
}

fn router(sim: Arc<SimState>, shutdown: watch::Receiver<bool>) -> Router {
    let app_state = AppState {
        sim: Arc::clone(&sim),
        shutdown,
    };
    let trading = super::trading::routes(Arc::clone(&sim.trading));
    Router::new()
        .route("/fapi/v1/ping", get(|| async { json_response("{}".into()) }))
        .route("/fapi/v1/time", get(time))
        .route("/fapi/v1/exchangeInfo", get(exchange_info_handler))
        .route("/fapi/v1/ticker/24hr", get(ticker_24hr))
        .route("/fapi/v1/klines", get(klines))
        .route("/fapi/v1/premiumIndex", get(premium_index))
        .route("/stream", get(ws_combined))
        .route("/ws", get(ws_raw_root))
        .route("/ws/{*streams}", get(ws_raw))
        .with_state(app_state)
        .merge(trading)
        .layer(middleware::from_fn_with_state(Arc::clone(&sim), weigh))
        .layer(middleware::from_fn_with_state(sim, inject_faults))
}

/// The fault plan's REST side: maintenance (REST 503, WebSocket upgrades refused), bans, 429s, 503s,
/// -1021 for skewed timestamps, and delays. Runs before the weight is counted.
async fn inject_faults(State(sim): State<Arc<SimState>>, mut req: Request<Body>, next: Next) -> Response {
    let path = req.uri().path();
    if (path == "/stream" || path.starts_with("/ws")) && sim.faults.in_maintenance() {
        sim.faults.note_maintenance_refusal();
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            -1016,
            "This service is no longer available.",
        );
    }
    let (fault, delay) = sim
        .faults
        .on_rest(path, req.uri().query().unwrap_or(""), sim.clock.now());
    if let Some(RestFault::Reject {
        status,
        code,
        msg,
        retry_after,
    }) = fault
    {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut r = error_response(status, code, msg);
        if let Some(v) = retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            r.headers_mut().insert("Retry-After", v);
        }
        return r;
    }
    if req.method() == axum::http::Method::POST
        && path == "/fapi/v1/order"
        && let Some(f) = sim.faults.on_order_post()
    {
        // Handed to this request's handler (not queued), so concurrent POSTs cannot swap faults.
        req.extensions_mut().insert(f);
    }
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    next.run(req).await
}

/// The venue's weight of a request (the endpoints the simulator serves).
fn request_weight(path: &str, query: &str) -> u32 {
    let has = |k: &str| query.split('&').any(|p| p.split('=').next() == Some(k));
    let param = |k: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(k)?.strip_prefix('='))
    };
    match path {
        "/fapi/v1/exchangeInfo" | "/fapi/v1/time" | "/fapi/v1/ping" => 1,
        "/fapi/v1/ticker/24hr" => {
            if has("symbol") {
                1
            } else {
                40
            }
        }
        "/fapi/v1/premiumIndex" => {
            if has("symbol") {
                1
            } else {
                10
            }
        }
        "/fapi/v1/klines" => {
            let limit = param("limit").and_then(|l| l.parse::<u32>().ok()).unwrap_or(500);
            crate::binance::rest::klines_weight(limit)
        }
        _ => super::trading::request_weight(path, query),
    }
}

async fn weigh(State(sim): State<Arc<SimState>>, req: Request<Body>, next: Next) -> Response {
    let weight = request_weight(req.uri().path(), req.uri().query().unwrap_or(""));
    let now = crate::domain::now_ms();
    let window_ms = i64::try_from(sim.settings.weight_window.as_millis())
        .unwrap_or(60_000)
        .max(1_000);
    let window = now / window_ms;
    let (allowed, used) = {
        let Ok(mut w) = sim.weight.lock() else {
            return error_response(StatusCode::INTERNAL_SERVER_ERROR, -1000, "weight lock poisoned");
        };
        if w.window != window {
            w.window = window;
            w.used = 0;
        }
        if w.used + weight > sim.settings.weight_limit {
            w.rejected += 1;
            (false, w.used)
        } else {
            w.used += weight;
            w.peak = w.peak.max(w.used);
            (true, w.used)
        }
    };
    let (unit, num, suffix) = weight_interval(sim.settings.weight_window);
    let mut resp = if allowed {
        next.run(req).await
    } else {
        let retry = ((window + 1) * window_ms - now + 999) / 1000;
        let mut r = error_response(
            StatusCode::TOO_MANY_REQUESTS,
            -1003,
            format!(
                "Too many requests; current limit is {} requests per {}{}. Please use the websocket for live updates to avoid polling the API.",
                sim.settings.weight_limit,
                if num == 1 {
                    String::new()
                } else {
                    format!("{num} ")
                },
                unit.to_ascii_lowercase(),
            ),
        );
        if let Ok(v) = HeaderValue::from_str(&retry.to_string()) {
            r.headers_mut().insert("Retry-After", v);
        }
        r
    };
    if let Ok(v) = HeaderValue::from_str(&used.to_string())
        && let Ok(name) = axum::http::HeaderName::from_bytes(format!("X-MBX-USED-WEIGHT-{suffix}").as_bytes())
    {
        resp.headers_mut().insert(name, v);
    }
    resp
}

async fn time(State(app): State<AppState>) -> Response {
    to_json(&wire::ServerTime {
        server_time: app.sim.clock.now(),
    })
}

async fn exchange_info_handler(State(app): State<AppState>) -> Response {
    let sim = &app.sim;
    let delisted: Vec<(&SymbolRef, &str)> = sim.faults.delisted_now().collect();
    if delisted.is_empty() {
        return json_response(sim.exchange_info_json.clone());
    }
    // Symbols the fault plan took out of TRADING: the same document with their status changed.
    let mut info = exchange_info(sim.source.as_ref(), sim.clock.now(), &sim.settings);
    let tradable: Vec<usize> = info
        .symbols
        .iter()
        .enumerate()
        .filter(|(_, s)| s.status == "TRADING" && s.quote_asset == "USDT" && s.contract_type == "PERPETUAL")
        .map(|(i, _)| i)
        .collect();
    for (who, status) in delisted {
        let index = match who {
            SymbolRef::Name(name) => info.symbols.iter().position(|s| &s.symbol == name),
            SymbolRef::Index(k) => tradable.get(*k).copied(),
        };
        if let Some(s) = index.and_then(|i| info.symbols.get_mut(i)) {
            status.clone_into(&mut s.status);
        }
    }
    to_json(&info)
}

/// Formats a number with a fixed number of decimals, never in exponent notation (as the venue does).
pub fn fixed(v: f64, decimals: u32) -> String {
    format!("{:.*}", decimals as usize, v)
}

/// The `exchangeInfo` the simulator serves for `source` (also used to size the trading side).
pub(crate) fn exchange_info(
    source: &dyn MarketSource,
    now: TimestampMs,
    settings: &SimSettings,
) -> wire::ExchangeInfo {
    let symbols = source
        .symbols()
        .iter()
        .map(|s| wire::SymbolInfo {
            symbol: s.name.clone(),
            pair: s.name.split('_').next().unwrap_or(&s.name).to_owned(),
            contract_type: s.contract_type.clone(),
            delivery_date: if s.contract_type == "PERPETUAL" {
                4_133_404_800_000
            } else {
                now + 30 * 86_400_000
            },
            onboard_date: source.earliest(),
            status: s.status.clone(),
            maint_margin_percent: Some("2.5000".into()),
            required_margin_percent: Some("5.0000".into()),
            base_asset: s.base_asset.clone(),
            quote_asset: s.quote_asset.clone(),
            margin_asset: s.quote_asset.clone(),
            price_precision: s.price_precision,
            quantity_precision: s.quantity_precision,
            base_asset_precision: 8,
            quote_precision: 8,
            underlying_type: Some("COIN".into()),
            underlying_sub_type: Vec::new(),
            settle_plan: Some(0),
            trigger_protect: Some("0.0500".into()),
            liquidation_fee: Some("0.012500".into()),
            market_take_bound: Some("0.05".into()),
            filters: vec![
                wire::SymbolFilter::PriceFilter {
                    min_price: s.tick_size.to_string(),
                    max_price: "1000000".into(),
                    tick_size: s.tick_size.to_string(),
                },
                wire::SymbolFilter::LotSize {
                    min_qty: s.min_qty.to_string(),
                    max_qty: s.max_qty.to_string(),
                    step_size: s.step_size.to_string(),
                },
                wire::SymbolFilter::MarketLotSize {
                    min_qty: s.min_qty.to_string(),
                    max_qty: s.market_max_qty.to_string(),
                    step_size: s.step_size.to_string(),
                },
                wire::SymbolFilter::MaxNumOrders { limit: 200 },
                wire::SymbolFilter::MaxNumAlgoOrders { limit: 10 },
                wire::SymbolFilter::MinNotional {
                    notional: s.min_notional.to_string(),
                },
                wire::SymbolFilter::PercentPrice {
                    multiplier_up: "1.0500".into(),
                    multiplier_down: "0.9500".into(),
                    multiplier_decimal: "4".into(),
                },
            ],
            order_types: [
                "LIMIT",
                "MARKET",
                "STOP",
                "STOP_MARKET",
                "TAKE_PROFIT",
                "TAKE_PROFIT_MARKET",
                "TRAILING_STOP_MARKET",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            time_in_force: ["GTC", "IOC", "FOK", "GTX"]
                .into_iter()
                .map(String::from)
                .collect(),
        })
        .collect();
    wire::ExchangeInfo {
        timezone: "UTC".into(),
        server_time: now,
        futures_type: Some("U_MARGINED".into()),
        rate_limits: vec![
            wire::RateLimit {
                rate_limit_type: "REQUEST_WEIGHT".into(),
                interval: weight_interval(settings.weight_window).0.into(),
                interval_num: weight_interval(settings.weight_window).1,
                limit: settings.weight_limit,
            },
            wire::RateLimit {
                rate_limit_type: "ORDERS".into(),
                interval: "MINUTE".into(),
                interval_num: 1,
                limit: 1200,
            },
            wire::RateLimit {
                rate_limit_type: "ORDERS".into(),
                interval: "SECOND".into(),
                interval_num: 10,
                limit: 300,
            },
        ],
        exchange_filters: Vec::new(),
        symbols,
    }
}

fn mandatory(name: &str) -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        -1102,
        format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."),
    )
}

fn bad_symbol() -> Response {
    error_response(StatusCode::BAD_REQUEST, -1121, "Invalid symbol.")
}

fn illegal_chars(name: &str) -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        -1100,
        format!("Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."),
    )
}

/// Looks a symbol parameter up; `Err` is the venue's error response.
fn symbol_param(sim: &SimState, q: &BTreeMap<String, String>) -> Result<Option<usize>, Response> {
    match q.get("symbol") {
        None => Ok(None),
        Some(s) if s.is_empty() => Err(mandatory("symbol")),
        Some(s) => sim.by_name.get(s).copied().map(Some).ok_or_else(bad_symbol),
    }
}

fn int_param(q: &BTreeMap<String, String>, name: &str) -> Result<Option<i64>, Response> {
    match q.get(name) {
        None => Ok(None),
        Some(v) if !v.is_empty() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit()) => {
            v.parse::<i64>().map(Some).map_err(|_| illegal_chars(name))
        }
        Some(_) => Err(illegal_chars(name)),
    }
}

fn ticker_wire(sim: &SimState, i: usize, now: TimestampMs) -> wire::Ticker24hr {
    let s = &sim.source.symbols()[i];
    let t = sim.source.ticker_24h(i, now);
    let p = s.price_precision;
    let change = t.last - t.open;
    let pct = if t.open > 0.0 {
        change / t.open * 100.0
    } else {
        0.0
    };
    let vwap = if t.volume > 0.0 {
        t.quote_volume / t.volume
    } else {
        t.last
    };
    wire::Ticker24hr {
        symbol: s.name.clone(),
        price_change: fixed(change, p),
        price_change_percent: fixed(pct, 3),
        weighted_avg_price: fixed(vwap, p),
        last_price: fixed(t.last, p),
        last_qty: fixed(0.0, s.quantity_precision),
        open_price: fixed(t.open, p),
        high_price: fixed(t.high, p),
        low_price: fixed(t.low, p),
        volume: fixed(t.volume, s.quantity_precision),
        quote_volume: fixed(t.quote_volume, 2),
        open_time: t.open_time,
        close_time: t.close_time,
        first_id: 1,
        last_id: t.trades as i64,
        count: t.trades as i64,
    }
}

async fn ticker_24hr(State(app): State<AppState>, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let sim = &app.sim;
    let now = sim.clock.now();
    match symbol_param(sim, &q) {
        Err(r) => r,
        Ok(Some(i)) => to_json(&ticker_wire(sim, i, now)),
        Ok(None) => {
            let all: Vec<_> = (0..sim.source.symbols().len())
                .filter(|i| sim.source.symbols()[*i].status == "TRADING")
                .map(|i| ticker_wire(sim, i, now))
                .collect();
            to_json(&all)
        }
    }
}

fn premium_wire(sim: &SimState, i: usize, now: TimestampMs) -> wire::PremiumIndex {
    let s = &sim.source.symbols()[i];
    let m = sim.source.mark(i, now);
    let p = s.price_precision + 2;
    wire::PremiumIndex {
        symbol: s.name.clone(),
        mark_price: fixed(m.mark_price, p),
        index_price: fixed(m.index_price, p),
        estimated_settle_price: fixed(m.index_price, p),
        last_funding_rate: fixed(m.funding_rate, 8),
        next_funding_time: m.next_funding_time,
        interest_rate: "0.00010000".into(),
        time: now,
    }
}

async fn premium_index(State(app): State<AppState>, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let sim = &app.sim;
    let now = sim.clock.now();
    match symbol_param(sim, &q) {
        Err(r) => r,
        Ok(Some(i)) => to_json(&premium_wire(sim, i, now)),
        Ok(None) => to_json(
            &(0..sim.source.symbols().len())
                .map(|i| premium_wire(sim, i, now))
                .collect::<Vec<_>>(),
        ),
    }
}

/// One kline row in the venue's format.
pub fn kline_row(bar: &Bar, price_decimals: u32, qty_decimals: u32) -> wire::KlineRow {
    let taker_share = 0.5;
    wire::KlineRow(
        bar.open_time,
        fixed(bar.open, price_decimals),
        fixed(bar.high, price_decimals),
        fixed(bar.low, price_decimals),
        fixed(bar.close, price_decimals),
        fixed(bar.volume, qty_decimals),
        bar.close_time,
        fixed(bar.quote_volume, 4),
        bar.trades,
        fixed(bar.volume * taker_share, qty_decimals),
        fixed(bar.quote_volume * taker_share, 4),
        "0".into(),
    )
}

/// The open times a kline request selects, oldest first, following the venue's rules:
/// * no startTime and no endTime: the `limit` most recent bars, the forming one included;
/// * startTime: the first `limit` bars opening at or after it (and at or before endTime);
/// * endTime only: the `limit` bars opening at or before it, most recent last.
pub fn select_open_times(
    interval: Interval,
    earliest: TimestampMs,
    now: TimestampMs,
    start: Option<TimestampMs>,
    end: Option<TimestampMs>,
    limit: usize,
) -> Vec<TimestampMs> {
    let first_available = {
        let o = interval.open_time_of(earliest);
        if o < earliest { interval.next_open(o) } else { o }
    };
    let last_available = interval.open_time_of(now);
    let upper = end.map_or(last_available, |e| interval.open_time_of(e).min(last_available));
    let mut out = Vec::with_capacity(limit.min(1500));
    if let Some(start) = start {
        let o = interval.open_time_of(start);
        let mut t = if o < start { interval.next_open(o) } else { o }.max(first_available);
        while t <= upper && out.len() < limit {
            out.push(t);
            t = interval.next_open(t);
        }
    } else {
        let mut t = upper;
        while t >= first_available && out.len() < limit {
            out.push(t);
            t = interval.open_time_of(t - 1);
        }
        out.reverse();
    }
    out
}

async fn klines(State(app): State<AppState>, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let sim = &app.sim;
    let symbol = match symbol_param(sim, &q) {
        Err(r) => return r,
        Ok(None) => return mandatory("symbol"),
        Ok(Some(i)) => i,
    };
    let interval = match q.get("interval") {
        None => return mandatory("interval"),
        Some(s) => match s.parse::<Interval>() {
            Ok(i) => i,
            Err(_) => return error_response(StatusCode::BAD_REQUEST, -1120, "Invalid interval."),
        },
    };
    let (start, end, limit) = match (
        int_param(&q, "startTime"),
        int_param(&q, "endTime"),
        int_param(&q, "limit"),
    ) {
        (Ok(s), Ok(e), Ok(l)) => (s, e, l),
        (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return r,
    };
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return error_response(
            StatusCode::BAD_REQUEST,
            -1023,
            "Start time is greater than end time.",
        );
    }
    // The venue caps `limit` at 1500; 0 means the default of 500.
    let limit = match limit {
        None | Some(0) => 500,
        Some(l) => usize::try_from(l).unwrap_or(1500).min(1500),
    };
    let now = sim.clock.now();
    let spec = &sim.source.symbols()[symbol];
    let rows: Vec<wire::KlineRow> =
        select_open_times(interval, sim.source.earliest(), now, start, end, limit)
            .into_iter()
            .filter_map(|t| sim.source.bar(symbol, interval, t, now))
            .map(|b| kline_row(&b, spec.price_precision, spec.quantity_precision))
            .collect();
    to_json(&rows)
}

// ---------------------------------------------------------------------------------------------
// WebSocket market streams
// ---------------------------------------------------------------------------------------------

/// A parsed stream name.
#[derive(Debug, Clone, PartialEq)]
enum StreamSpec {
    Kline {
        symbol: usize,
        interval: Interval,
    },
    Mark {
        symbol: usize,
        every_ms: i64,
    },
    TickerArr,
    /// Syntactically valid but nothing to send (e.g. an unknown symbol, as on the venue).
    Silent,
}

fn parse_stream(sim: &SimState, name: &str) -> Result<StreamSpec, String> {
    if name == "!ticker@arr" {
        return Ok(StreamSpec::TickerArr);
    }
    let (sym, rest) = name
        .split_once('@')
        .ok_or_else(|| format!("Invalid request: invalid stream name `{name}`"))?;
    if sym.is_empty() || sym.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!("Invalid request: stream names are lower case: `{name}`"));
    }
    let symbol = sim.by_name.get(&sym.to_ascii_uppercase()).copied();
    let spec = if let Some(iv) = rest.strip_prefix("kline_") {
        let interval = iv
            .parse::<Interval>()
            .map_err(|_| format!("Invalid request: invalid interval in `{name}`"))?;
        symbol.map(|symbol| StreamSpec::Kline { symbol, interval })
    } else if rest == "markPrice" || rest == "markPrice@1s" {
        let every_ms = if rest == "markPrice" { 3000 } else { 1000 };
        symbol.map(|symbol| StreamSpec::Mark { symbol, every_ms })
    } else if matches!(
        rest,
        "aggTrade" | "bookTicker" | "ticker" | "miniTicker" | "forceOrder"
    ) || rest.starts_with("depth")
    {
        None
    } else {
        return Err(format!("Invalid request: unsupported stream `{name}`"));
    };
    Ok(spec.unwrap_or(StreamSpec::Silent))
}

#[derive(serde::Deserialize)]
struct CombinedQuery {
    streams: Option<String>,
}

async fn ws_combined(
    State(app): State<AppState>,
    ConnectInfo(reset): ConnectInfo<ResetHandle>,
    Query(q): Query<CombinedQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let initial: Vec<String> = q
        .streams
        .unwrap_or_default()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    ws.on_upgrade(move |socket| serve_ws(app, socket, initial, true, reset))
}

async fn ws_raw_root(
    State(app): State<AppState>,
    ConnectInfo(reset): ConnectInfo<ResetHandle>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| serve_ws(app, socket, Vec::new(), false, reset))
}

async fn ws_raw(
    State(app): State<AppState>,
    ConnectInfo(reset): ConnectInfo<ResetHandle>,
    axum::extract::Path(streams): axum::extract::Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    // `/ws/<listenKey>`: the user data stream of the simulated account.
    if let Some(events) = app.sim.trading.user_stream(&streams) {
        let trading = Arc::clone(&app.sim.trading);
        let shutdown = app.shutdown.clone();
        return ws.on_upgrade(move |socket| {
            super::user_stream::serve(
                socket,
                streams,
                events,
                move |k| trading.listen_key_expires_at(k),
                shutdown,
            )
        });
    }
    let initial: Vec<String> = streams
        .split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    ws.on_upgrade(move |socket| serve_ws(app, socket, initial, false, reset))
}

/// Per-subscription push state.
#[derive(Debug)]
struct Subscription {
    spec: StreamSpec,
    /// Kline: open time of the last bar pushed. Mark: sim time of the last push.
    last: Option<TimestampMs>,
}

/// The most closed bars one kline stream replays in one push after a long gap (e.g. very high speed).
const MAX_CATCH_UP_BARS: usize = 1000;

struct Connection {
    app: AppState,
    combined: bool,
    subs: BTreeMap<String, Subscription>,
    /// Arrival times of the last second's requests (tokio time: a paused clock paces both sides).
    incoming: Vec<tokio::time::Instant>,
}

impl Connection {
    fn frame<T: serde::Serialize>(&self, stream: &str, data: &T) -> Option<String> {
        if self.combined {
            serde_json::to_string(&wire::CombinedOut { stream, data }).ok()
        } else {
            serde_json::to_string(data).ok()
        }
    }

    fn reply(result: &Value, id: &Value) -> String {
        serde_json::to_string(&wire::StreamReplyOut { result, id }).unwrap_or_default()
    }

    fn error_reply(code: i64, msg: &str, id: &Value) -> String {
        serde_json::json!({"error": {"code": code, "msg": msg}, "id": id}).to_string()
    }

    fn subscribe(&mut self, names: &[String]) -> Result<(), String> {
        let mut parsed = Vec::with_capacity(names.len());
        for n in names {
            parsed.push((n.clone(), parse_stream(&self.app.sim, n)?));
        }
        let new = parsed.iter().filter(|(n, _)| !self.subs.contains_key(n)).count();
        if self.subs.len() + new > self.app.sim.settings.max_streams_per_connection {
            self.app.sim.ws.limit_violations.fetch_add(1, Ordering::Relaxed);
            return Err(format!(
                "Invalid request: too many streams (at most {} per connection)",
                self.app.sim.settings.max_streams_per_connection
            ));
        }
        let now = self.app.sim.clock.now();
        for (n, spec) in parsed {
            // A kline subscriber is owed every bar that closes from now on, including one that closes
            // before this connection's first push (Binance sends the `x=true` frame to everyone
            // subscribed before the close). Starting at the first push instead lost that bar when a
            // make-before-break rotation closed the old connection in between. A mark stream starts
            // with its first push.
            let last = match &spec {
                StreamSpec::Kline { interval, .. } => Some(interval.open_time_of(now)),
                StreamSpec::Mark { .. } | StreamSpec::TickerArr | StreamSpec::Silent => None,
            };
            self.subs.entry(n).or_insert(Subscription { spec, last });
        }
        Ok(())
    }

    /// Handles one incoming text message; returns the reply, or `Err` to drop the connection.
    fn on_request(&mut self, text: &str) -> Result<Option<String>, &'static str> {
        let now = tokio::time::Instant::now();
        self.incoming
            .retain(|t| now.duration_since(*t) < Duration::from_secs(1));
        self.incoming.push(now);
        if self.incoming.len() > self.app.sim.settings.max_incoming_per_second as usize {
            self.app.sim.ws.limit_violations.fetch_add(1, Ordering::Relaxed);
            return Err("too many incoming messages");
        }
        let req: wire::StreamRequest = match serde_json::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                return Ok(Some(Self::error_reply(
                    2,
                    &format!("Invalid request: {e}"),
                    &Value::Null,
                )));
            }
        };
        Ok(Some(match req.method.as_str() {
            "SUBSCRIBE" => match self.subscribe(&req.params) {
                Ok(()) => Self::reply(&Value::Null, &req.id),
                Err(msg) => Self::error_reply(2, &msg, &req.id),
            },
            "UNSUBSCRIBE" => {
                for p in &req.params {
                    self.subs.remove(p);
                }
                Self::reply(&Value::Null, &req.id)
            }
            "LIST_SUBSCRIPTIONS" => {
                let list = Value::Array(self.subs.keys().cloned().map(Value::String).collect());
                Self::reply(&list, &req.id)
            }
            other => Self::error_reply(2, &format!("Invalid request: unknown method `{other}`"), &req.id),
        }))
    }

    fn kline_frame(
        &self,
        name: &str,
        symbol: usize,
        bar: &Bar,
        interval: Interval,
        now: TimestampMs,
    ) -> Option<String> {
        let s = &self.app.sim.source.symbols()[symbol];
        let row = kline_row(bar, s.price_precision, s.quantity_precision);
        let symbol_name = s.name.as_str();
        let ev = wire::KlineEvent {
            event_type: "kline",
            event_time: now,
            symbol: symbol_name,
            kline: wire::KlineData {
                open_time: bar.open_time,
                close_time: bar.close_time,
                symbol: symbol_name,
                interval: interval.as_str(),
                first_trade_id: 0,
                last_trade_id: bar.trades as i64,
                open: &row.1,
                close: &row.4,
                high: &row.2,
                low: &row.3,
                volume: &row.5,
                trades: bar.trades,
                closed: bar.closed,
                quote_volume: &row.7,
                taker_buy_volume: &row.9,
                taker_buy_quote_volume: &row.10,
                ignore: "0",
            },
        };
        self.frame(name, &ev)
    }

    /// Frames due at this push tick.
    fn push(&mut self, out: &mut Vec<String>, tickers_due: bool) {
        let sim = Arc::clone(&self.app.sim);
        let now = sim.clock.now();
        let names: Vec<String> = self.subs.keys().cloned().collect();
        for name in names {
            let Some(sub) = self.subs.get(&name) else { continue };
            match sub.spec.clone() {
                StreamSpec::Kline { symbol, interval } => {
                    let current = interval.open_time_of(now);
                    let mut t = sub.last.map_or(current, |last| last);
                    let mut replayed = 0;
                    // Close every bar that ended since the last push (several at high speed).
                    while t < current && replayed < MAX_CATCH_UP_BARS {
                        if let Some(bar) = sim.source.bar(symbol, interval, t, now)
                            && let Some(f) = self.kline_frame(&name, symbol, &bar, interval, now)
                        {
                            out.push(f);
                        }
                        t = interval.next_open(t);
                        replayed += 1;
                    }
                    if let Some(bar) = sim.source.bar(symbol, interval, current, now)
                        && let Some(f) = self.kline_frame(&name, symbol, &bar, interval, now)
                    {
                        out.push(f);
                    }
                    if let Some(sub) = self.subs.get_mut(&name) {
                        sub.last = Some(current);
                    }
                }
                StreamSpec::Mark { symbol, every_ms } => {
                    if sub.last.is_some_and(|l| now - l < every_ms) {
                        continue;
                    }
                    let s = &sim.source.symbols()[symbol];
                    let m = sim.source.mark(symbol, now);
                    let p = s.price_precision + 2;
                    let (mark, index, rate) = (
                        fixed(m.mark_price, p),
                        fixed(m.index_price, p),
                        fixed(m.funding_rate, 8),
                    );
                    let ev = wire::MarkPriceEvent {
                        event_type: "markPriceUpdate",
                        event_time: now,
                        symbol: &s.name,
                        mark_price: &mark,
                        index_price: &index,
                        estimated_settle_price: &index,
                        funding_rate: &rate,
                        next_funding_time: m.next_funding_time,
                    };
                    if let Some(f) = self.frame(&name, &ev) {
                        out.push(f);
                    }
                    if let Some(sub) = self.subs.get_mut(&name) {
                        sub.last = Some(now);
                    }
                }
                StreamSpec::TickerArr if tickers_due => {
                    let tickers: Vec<wire::Ticker24hr> = (0..sim.source.symbols().len())
                        .filter(|i| sim.source.symbols()[*i].status == "TRADING")
                        .map(|i| ticker_wire(&sim, i, now))
                        .collect();
                    let events: Vec<wire::TickerEvent<'_>> = tickers
                        .iter()
                        .map(|t| wire::TickerEvent {
                            event_type: "24hrTicker",
                            event_time: now,
                            symbol: &t.symbol,
                            price_change: &t.price_change,
                            price_change_percent: &t.price_change_percent,
                            weighted_avg_price: &t.weighted_avg_price,
                            last_price: &t.last_price,
                            last_qty: &t.last_qty,
                            open_price: &t.open_price,
                            high_price: &t.high_price,
                            low_price: &t.low_price,
                            volume: &t.volume,
                            quote_volume: &t.quote_volume,
                            open_time: t.open_time,
                            close_time: t.close_time,
                            first_trade_id: t.first_id,
                            last_trade_id: t.last_id,
                            count: t.count,
                        })
                        .collect();
                    if let Some(f) = self.frame(&name, &events) {
                        out.push(f);
                    }
                }
                StreamSpec::TickerArr | StreamSpec::Silent => {}
            }
        }
    }
}

async fn serve_ws(
    app: AppState,
    socket: WebSocket,
    initial: Vec<String>,
    combined: bool,
    reset: ResetHandle,
) {
    let mut shutdown = app.shutdown.clone();
    let settings = app.sim.settings.clone();
    let sim = Arc::clone(&app.sim);
    let mut faults = sim.faults.connection();
    let mut last_push = tokio::time::Instant::now();
    let mut conn = Connection {
        app,
        combined,
        subs: BTreeMap::new(),
        incoming: Vec::new(),
    };
    let (mut tx, mut rx) = socket.split();
    if let Err(msg) = conn.subscribe(&initial) {
        let _ = tx
            .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                code: 1008,
                reason: msg.into(),
            })))
            .await;
        return;
    }
    let open = OpenConnection {
        stats: &sim.ws,
        id: sim.ws.next_connection.fetch_add(1, Ordering::Relaxed),
    };
    sim.ws.record(open.id, &conn.subs);
    let mut push = tokio::time::interval(settings.push_interval);
    let mut ping = tokio::time::interval(settings.ping_interval);
    ping.tick().await;
    let mut last_tickers: Option<std::time::Instant> = None;
    let mut frames = Vec::new();
    // Pings not yet answered, oldest first (a pong answers the oldest; RFC 6455 lets a peer answer
    // only the latest, which then settles all of them).
    let mut unanswered: std::collections::VecDeque<tokio::time::Instant> = std::collections::VecDeque::new();
    loop {
        tokio::select! {
            msg = rx.next() => match msg {
                Some(Ok(Message::Text(t))) => match conn.on_request(t.as_str()) {
                    Ok(Some(reply)) => {
                        sim.ws.record(open.id, &conn.subs);
                        if tx.send(Message::text(reply)).await.is_err() { return; }
                    }
                    Ok(None) => sim.ws.record(open.id, &conn.subs),
                    Err(reason) => {
                        let _ = tx.send(Message::Close(Some(axum::extract::ws::CloseFrame { code: 1008, reason: reason.into() }))).await;
                        return;
                    }
                },
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(Message::Pong(_))) => {
                    if let Some(sent) = unanswered.pop_front() {
                        sim.ws.pongs.fetch_add(1, Ordering::Relaxed);
                        let us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                        sim.ws.max_pong_latency_us.fetch_max(us, Ordering::Relaxed);
                    }
                }
                Some(Ok(_)) => {}
            },
            _ = push.tick() => {
                let dt = last_push.elapsed();
                last_push = tokio::time::Instant::now();
                match faults.on_tick(dt) {
                    ConnectionAction::Push => {}
                    // Silent: requests and pings are still answered by the other arms.
                    ConnectionAction::Stall => continue,
                    ConnectionAction::Drop => return,
                    ConnectionAction::Reset => {
                        reset.trigger();
                        return;
                    }
                    ConnectionAction::Close { code, reason } => {
                        let _ = tx.send(Message::Close(Some(axum::extract::ws::CloseFrame { code, reason: reason.into() }))).await;
                        return;
                    }
                }
                let tickers_due = last_tickers.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
                if tickers_due {
                    last_tickers = Some(std::time::Instant::now());
                }
                frames.clear();
                conn.push(&mut frames, tickers_due);
                faults.mangle(&mut frames);
                if let Some(d) = faults.delay() {
                    tokio::time::sleep(d).await;
                }
                for f in frames.drain(..) {
                    if tx.send(Message::text(f)).await.is_err() { return; }
                }
            }
            _ = ping.tick() => {
                if tx.send(Message::Ping(Vec::new().into())).await.is_err() { return; }
                sim.ws.pings.fetch_add(1, Ordering::Relaxed);
                if unanswered.len() == 1_024 {
                    // A peer that never answers: keep the memory bounded.
                    unanswered.pop_front();
                }
                unanswered.push_back(tokio::time::Instant::now());
            }
            _ = shutdown.changed() => {
                let _ = tx.send(Message::Close(Some(axum::extract::ws::CloseFrame { code: 1001, reason: "server shutting down".into() }))).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn latest_bars_include_the_forming_one() {
        let t = select_open_times(Interval::H1, 0, 10 * H + 5, None, None, 3);
        assert_eq!(t, vec![8 * H, 9 * H, 10 * H]);
    }

    #[test]
    fn start_time_selects_bars_opening_at_or_after_it() {
        assert_eq!(
            select_open_times(Interval::H1, 0, 10 * H, Some(2 * H), None, 2),
            vec![2 * H, 3 * H]
        );
        assert_eq!(
            select_open_times(Interval::H1, 0, 10 * H, Some(2 * H + 1), None, 2),
            vec![3 * H, 4 * H]
        );
        assert_eq!(
            select_open_times(Interval::H1, 0, 10 * H, Some(2 * H), Some(3 * H), 10),
            vec![2 * H, 3 * H]
        );
    }

    #[test]
    fn end_time_selects_the_most_recent_bars_opening_at_or_before_it() {
        assert_eq!(
            select_open_times(Interval::H1, 0, 10 * H, None, Some(5 * H - 1), 2),
            vec![3 * H, 4 * H]
        );
        assert_eq!(
            select_open_times(Interval::H1, 0, 10 * H, None, Some(5 * H), 2),
            vec![4 * H, 5 * H]
        );
    }

    #[test]
    fn nothing_before_the_first_bar_or_after_now() {
        assert_eq!(
            select_open_times(Interval::H1, 5 * H, 7 * H, None, None, 10),
            vec![5 * H, 6 * H, 7 * H]
        );
        assert_eq!(
            select_open_times(Interval::H1, 5 * H + 1, 7 * H, Some(0), None, 10),
            vec![6 * H, 7 * H]
        );
        assert!(select_open_times(Interval::H1, 0, 7 * H, Some(8 * H), None, 10).is_empty());
    }

    #[test]
    fn weights_match_the_venue() {
        assert_eq!(request_weight("/fapi/v1/klines", "symbol=X&limit=1500"), 10);
        assert_eq!(request_weight("/fapi/v1/klines", "symbol=X"), 5);
        assert_eq!(request_weight("/fapi/v1/ticker/24hr", ""), 40);
        assert_eq!(request_weight("/fapi/v1/ticker/24hr", "symbol=BTCUSDT"), 1);
    }

    #[test]
    fn fixed_never_uses_exponents() {
        assert_eq!(fixed(0.000_000_12, 8), "0.00000012");
        assert_eq!(fixed(65_000.0, 1), "65000.0");
    }
}
