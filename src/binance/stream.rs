//! Combined market streams: connections sharded under the per-connection stream limit, live
//! SUBSCRIBE / UNSUBSCRIBE, reconnect with jittered backoff that never gives up, a stale-stream
//! watchdog, and rotation before the venue's 24-hour cut.
//!
//! Rotation is make-before-break: at `rotate_after` (23 h 50 m) the shard opens a second connection,
//! subscribes it, and only once the venue has acknowledged every SUBSCRIBE does it close the old one;
//! the overlap delivers some updates twice, which the bar series dedupe. A malformed frame is counted
//! and skipped; more than `max_malformed_per_minute` of them on one connection means the connection
//! itself is bad, and the shard reconnects.
//!
//! Each shard is one task owning one WebSocket. It decodes frames itself (wire → parse, symbol lookup
//! included) so the engine receives typed events and never touches JSON. After every (re)connect a
//! shard reports the streams it re-subscribed; the engine answers with REST back-fills from each
//! series' last closed bar, which is how a reconnect loses no closed bar (see `market::series`).

use std::{
    collections::BTreeSet,
    sync::{Arc, RwLock},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};
use tokio_tungstenite::tungstenite::{Message, protocol::WebSocketConfig};

use super::{
    parse::{self, KlineUpdate, MarkUpdate, SymbolTable, TickerStats},
    wire::{self, CombinedFrame},
};
use crate::domain::SymbolId;

/// What a shard tells the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The shard's connection is up and its streams are subscribed.
    Up {
        shard: usize,
        streams: Vec<String>,
        reconnect: bool,
    },
    /// The shard's connection is down; it is reconnecting.
    Down {
        shard: usize,
        reason: String,
    },
    Kline(KlineUpdate),
    Mark(MarkUpdate),
    Tickers(Vec<(SymbolId, TickerStats)>),
    /// The shard replaced its connection before the venue's 24-hour cut (make-before-break: the new
    /// connection was subscribed before the old one closed, so nothing was missed).
    Rotated {
        shard: usize,
    },
    /// A frame that could not be decoded: counted and skipped, never fatal.
    Malformed {
        shard: usize,
        error: String,
    },
}

/// Commands to a running shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardCommand {
    Subscribe(Vec<String>),
    Unsubscribe(Vec<String>),
}

/// Tunables of the stream layer.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Base URL, e.g. `wss://fstream.binance.com` (the shard connects to `<base>/stream`).
    pub ws_base: String,
    /// Streams per connection (the venue allows 1024; 200 keeps reconnect storms small).
    pub streams_per_connection: usize,
    /// No data for this long on an open connection → reconnect.
    pub stale_after: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Largest frame accepted; a larger one closes the connection (memory safety against a bad peer).
    pub max_frame_bytes: usize,
    /// Replace the connection after this long, before the venue's 24-hour cut (make-before-break).
    pub rotate_after: Duration,
    /// More malformed frames than this within a minute: the connection is bad, reconnect.
    pub max_malformed_per_minute: u32,
}

impl StreamConfig {
    pub fn new(ws_base: &str) -> Self {
        Self {
            ws_base: ws_base.trim_end_matches('/').to_owned(),
            streams_per_connection: 200,
            stale_after: Duration::from_secs(30),
            backoff_initial: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            max_frame_bytes: 4 << 20,
            rotate_after: Duration::from_secs(23 * 3600 + 50 * 60),
            max_malformed_per_minute: 100,
        }
    }
}

/// Exponential backoff with full jitter. `attempt` 0 is the first retry.
pub fn backoff_delay(cfg: &StreamConfig, attempt: u32, rng: &mut impl Rng) -> Duration {
    let cap = cfg.backoff_max.as_millis() as u64;
    let base = (cfg.backoff_initial.as_millis() as u64)
        .saturating_mul(1u64 << attempt.min(20))
        .min(cap);
    // Full jitter in [base/2, base]: spreads reconnects of many shards, never zero.
    let lo = base / 2;
    Duration::from_millis(rng.random_range(lo..=base.max(lo)))
}

/// Decodes one text frame into events (pushed to `out`). Returns the number of events produced.
pub fn decode_frame(text: &str, table: &SymbolTable, out: &mut Vec<StreamEvent>) -> Result<usize, String> {
    let before = out.len();
    decode_frame_or_reply(text, table, out)?;
    Ok(out.len() - before)
}

/// Like [`decode_frame`], and also reports the id of a successful reply to a live request (the
/// shard waits for its `SUBSCRIBE` replies before it calls itself up).
pub fn decode_frame_or_reply(
    text: &str,
    table: &SymbolTable,
    out: &mut Vec<StreamEvent>,
) -> Result<Option<u64>, String> {
    let frame: CombinedFrame<'_> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    match frame {
        CombinedFrame::Kline(k) => {
            out.push(StreamEvent::Kline(
                parse::parse_kline_event(&k, table).map_err(|e| e.to_string())?,
            ));
        }
        CombinedFrame::MarkPrice(m) => {
            out.push(StreamEvent::Mark(
                parse::parse_mark_event(&m, table).map_err(|e| e.to_string())?,
            ));
        }
        CombinedFrame::Tickers(ts) => {
            let parsed: Vec<_> = ts
                .iter()
                .filter_map(|t| Some((table.id(t.symbol)?, parse::parse_ticker_event(t).ok()?)))
                .collect();
            out.push(StreamEvent::Tickers(parsed));
        }
        CombinedFrame::Reply {
            error: Some(e), id, ..
        } => {
            return Err(format!("request {id} rejected: {} {}", e.code, e.msg));
        }
        CombinedFrame::Reply { id, .. } => return Ok(id.as_u64()),
        CombinedFrame::Unhandled => {}
    }
    Ok(None)
}

/// Handle to a running shard task.
#[derive(Debug)]
pub struct ShardHandle {
    pub streams: BTreeSet<String>,
    tx: mpsc::UnboundedSender<ShardCommand>,
}

/// Owns the shards; assigns streams to the least-loaded shard and starts new shards as needed.
/// Lives in the engine task: every method is synchronous.
#[derive(Debug)]
pub struct StreamManager<E> {
    cfg: StreamConfig,
    table: Arc<RwLock<SymbolTable>>,
    events: mpsc::Sender<E>,
    shutdown: watch::Receiver<bool>,
    shards: Vec<ShardHandle>,
}

impl<E: From<StreamEvent> + Send + 'static> StreamManager<E> {
    pub fn new(
        cfg: StreamConfig,
        table: Arc<RwLock<SymbolTable>>,
        events: mpsc::Sender<E>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            cfg,
            table,
            events,
            shutdown,
            shards: Vec::new(),
        }
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Streams currently assigned to a shard.
    pub fn shard_streams(&self, shard: usize) -> Option<&BTreeSet<String>> {
        self.shards.get(shard).map(|s| &s.streams)
    }

    /// Subscribes streams, filling existing shards first and starting new ones as needed.
    pub fn subscribe(&mut self, streams: impl IntoIterator<Item = String>) {
        let mut pending: Vec<String> = streams
            .into_iter()
            .filter(|s| !self.shards.iter().any(|sh| sh.streams.contains(s)))
            .collect();
        pending.sort();
        pending.dedup();
        let per = self.cfg.streams_per_connection.max(1);
        for shard in &mut self.shards {
            if pending.is_empty() {
                break;
            }
            let room = per.saturating_sub(shard.streams.len());
            if room == 0 {
                continue;
            }
            let take: Vec<String> = pending.drain(..room.min(pending.len())).collect();
            shard.streams.extend(take.iter().cloned());
            // A send error means the shard task ended (shutdown); nothing to do.
            let _ = shard.tx.send(ShardCommand::Subscribe(take));
        }
        while !pending.is_empty() {
            let take: Vec<String> = pending.drain(..per.min(pending.len())).collect();
            self.spawn_shard(take);
        }
    }

    pub fn unsubscribe(&mut self, streams: &[String]) {
        for shard in &mut self.shards {
            let gone: Vec<String> = streams
                .iter()
                .filter(|s| shard.streams.remove(*s))
                .cloned()
                .collect();
            if !gone.is_empty() {
                let _ = shard.tx.send(ShardCommand::Unsubscribe(gone));
            }
        }
    }

    fn spawn_shard(&mut self, streams: Vec<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = self.shards.len();
        let shard = Shard {
            id,
            cfg: self.cfg.clone(),
            table: Arc::clone(&self.table),
            events: self.events.clone(),
            commands: rx,
            shutdown: self.shutdown.clone(),
            streams: streams.iter().cloned().collect(),
        };
        tokio::spawn(shard.run());
        self.shards.push(ShardHandle {
            streams: streams.into_iter().collect(),
            tx,
        });
    }
}

struct Shard<E> {
    id: usize,
    cfg: StreamConfig,
    table: Arc<RwLock<SymbolTable>>,
    events: mpsc::Sender<E>,
    commands: mpsc::UnboundedReceiver<ShardCommand>,
    shutdown: watch::Receiver<bool>,
    streams: BTreeSet<String>,
}

/// Why a connection ended.
enum Ended {
    Shutdown,
    Lost(String),
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// After a failed rotation attempt, the next one waits this long (the venue's cut at 24 h is the
/// backstop: the ordinary reconnect and gap fill cover it).
const ROTATION_RETRY: Duration = Duration::from_secs(30);

/// After a rotation the old connection is still read this long before it is closed: a bar that
/// closed just before the replacement subscribed is owed only by the old connection (the venue sends
/// the final `x=true` frame to those subscribed at the close), and its frame may still be on the way.
/// Binance pushes klines every 250 ms, so a second covers four pushes.
const ROTATION_DRAIN: Duration = Duration::from_secs(1);

/// The connection being drained after a rotation, and when to close it.
struct Draining {
    ws: Ws,
    until: Instant,
}

/// When the drain ends, or never when there is none.
async fn drain_deadline(until: Option<Instant>) {
    match until {
        Some(until) => tokio::time::sleep_until(until).await,
        None => std::future::pending().await,
    }
}

/// The next message of the connection being drained, or never when there is none.
async fn next_drained(
    old: Option<&mut Draining>,
) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match old {
        Some(d) => d.ws.next().await,
        None => std::future::pending().await,
    }
}

/// The connection that replaces the current one during a rotation.
struct Rotation {
    ws: Ws,
    /// SUBSCRIBE ids not yet acknowledged on the new connection.
    awaiting: BTreeSet<u64>,
    next_id: u64,
    started: Instant,
}

/// Malformed frames in the current minute of one connection.
#[derive(Default)]
struct MalformedRate {
    window_start: Option<Instant>,
    count: u32,
}

impl MalformedRate {
    /// Counts one malformed frame; true once more than `limit` arrived within a minute.
    fn too_many(&mut self, limit: u32) -> bool {
        let now = Instant::now();
        match self.window_start {
            Some(start) if now.duration_since(start) < Duration::from_secs(60) => self.count += 1,
            _ => {
                self.window_start = Some(now);
                self.count = 1;
            }
        }
        self.count > limit
    }
}

/// The next message of the replacement connection (only polled while there is one).
async fn next_message(
    rot: Option<&mut Rotation>,
) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match rot {
        Some(r) => r.ws.next().await,
        None => std::future::pending().await,
    }
}

/// The text of a frame, `None` for frames to ignore, `Err` when the connection is over.
fn read_text(
    msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
) -> Result<Option<tokio_tungstenite::tungstenite::Utf8Bytes>, String> {
    match msg {
        Some(Ok(Message::Text(t))) => Ok(Some(t)),
        Some(Ok(Message::Close(frame))) => Err(format!("closed by server: {frame:?}")),
        // Ping/pong/binary: tungstenite answers pings itself while we keep reading.
        Some(Ok(_)) => Ok(None),
        Some(Err(e)) => Err(format!("read failed: {e}")),
        None => Err("connection ended".into()),
    }
}

impl<E: From<StreamEvent> + Send + 'static> Shard<E> {
    async fn emit(&self, ev: StreamEvent) -> bool {
        self.events.send(E::from(ev)).await.is_ok()
    }

    async fn run(mut self) {
        // Seeded per shard and start time: jitter only needs to differ between shards and runs.
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(
            (crate::domain::now_ms() as u64) ^ ((self.id as u64) << 48),
        );
        let mut attempt = 0u32;
        let mut connected_before = false;
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            let reason = match self.connect().await {
                Ok(ws) => {
                    let up_at = Instant::now();
                    match self.serve(ws, connected_before).await {
                        Ended::Shutdown => return,
                        Ended::Lost(reason) => {
                            connected_before = true;
                            // A connection that held for a minute resets the backoff.
                            if up_at.elapsed() > Duration::from_secs(60) {
                                attempt = 0;
                            }
                            reason
                        }
                    }
                }
                Err(reason) => reason,
            };
            tracing::warn!(shard = self.id, %reason, "market stream down, reconnecting");
            if !self
                .emit(StreamEvent::Down {
                    shard: self.id,
                    reason,
                })
                .await
            {
                return;
            }
            let delay = backoff_delay(&self.cfg, attempt, &mut rng);
            attempt = attempt.saturating_add(1);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = self.shutdown.changed() => return,
            }
            // Apply commands that arrived while we were down, so the reconnect subscribes the
            // current set.
            while let Ok(cmd) = self.commands.try_recv() {
                self.apply_locally(&cmd);
            }
        }
    }

    /// Opens one WebSocket to the combined-stream endpoint, with bounded frames and a deadline.
    async fn connect(&self) -> Result<Ws, String> {
        let url = format!("{}/stream", self.cfg.ws_base);
        let ws_cfg = WebSocketConfig::default()
            .max_frame_size(Some(self.cfg.max_frame_bytes))
            .max_message_size(Some(self.cfg.max_frame_bytes));
        let connect = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(ws_cfg), false);
        match tokio::time::timeout(Duration::from_secs(10), connect).await {
            Ok(Ok((ws, _))) => Ok(ws),
            Ok(Err(e)) => Err(format!("connect to {url} failed: {e}")),
            Err(_) => Err(format!("connect to {url} timed out")),
        }
    }

    fn apply_locally(&mut self, cmd: &ShardCommand) {
        match cmd {
            ShardCommand::Subscribe(s) => self.streams.extend(s.iter().cloned()),
            ShardCommand::Unsubscribe(s) => {
                for x in s {
                    self.streams.remove(x);
                }
            }
        }
    }

    async fn send_request(ws: &mut Ws, method: &str, params: Vec<String>, id: u64) -> Result<(), String> {
        let req = wire::StreamRequest {
            method: method.to_owned(),
            params,
            id: id.into(),
        };
        let text = serde_json::to_string(&req).map_err(|e| e.to_string())?;
        ws.send(Message::text(text))
            .await
            .map_err(|e| format!("send {method} failed: {e}"))
    }

    async fn subscribe_all(&self, ws: &mut Ws, next_id: &mut u64) -> Result<(), String> {
        let all: Vec<String> = self.streams.iter().cloned().collect();
        for (i, chunk) in all.chunks(100).enumerate() {
            if i > 0 {
                // The venue allows 10 incoming messages per second per connection.
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            *next_id += 1;
            Self::send_request(ws, "SUBSCRIBE", chunk.to_vec(), *next_id).await?;
        }
        Ok(())
    }

    async fn serve(&mut self, mut ws: Ws, reconnect: bool) -> Ended {
        let mut next_id = 0u64;
        if let Err(e) = self.subscribe_all(&mut ws, &mut next_id).await {
            return Ended::Lost(e);
        }
        // The shard reports itself up only once the venue has acknowledged every SUBSCRIBE: the
        // engine's gap fill starts at that moment, and a REST back-fill served before the venue had
        // registered the subscription could miss a bar closing in between.
        let mut awaiting: BTreeSet<u64> = (1..=next_id).collect();
        let mut up_sent = false;
        if awaiting.is_empty() {
            up_sent = true;
            if !self.report_up(reconnect).await {
                return Ended::Shutdown;
            }
        }
        let mut decoded = Vec::with_capacity(4);
        let mut last_data = Instant::now();
        let mut rotate_at = Instant::now() + self.cfg.rotate_after;
        // The replacement connection while a rotation is in progress (make-before-break).
        let mut next: Option<Rotation> = None;
        let mut draining: Option<Draining> = None;
        let mut malformed = MalformedRate::default();
        let tick = (self.cfg.stale_after / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
        let mut watchdog = tokio::time::interval(tick);
        loop {
            let drain_until = draining.as_ref().map(|d| d.until);
            tokio::select! {
                msg = ws.next() => {
                    let text = match read_text(msg) {
                        Ok(Some(t)) => t,
                        Ok(None) => continue,
                        Err(reason) => return Ended::Lost(reason),
                    };
                    last_data = Instant::now();
                    match self.decode(text.as_str(), &mut decoded) {
                        Ok(Some(id)) => {
                            awaiting.remove(&id);
                            if !up_sent && awaiting.is_empty() {
                                up_sent = true;
                                if !self.report_up(reconnect).await {
                                    return Ended::Shutdown;
                                }
                            }
                        }
                        Ok(None) => {}
                        Err(error) => {
                            if malformed.too_many(self.cfg.max_malformed_per_minute) {
                                return Ended::Lost(format!(
                                    "more than {} malformed frames in a minute",
                                    self.cfg.max_malformed_per_minute
                                ));
                            }
                            tracing::debug!(shard = self.id, %error, "malformed frame skipped");
                            decoded.push(StreamEvent::Malformed { shard: self.id, error });
                        }
                    }
                    if !self.forward(&mut decoded).await {
                        return Ended::Shutdown;
                    }
                }
                msg = next_message(next.as_mut()), if next.is_some() => {
                    // Frames of the replacement connection are forwarded too: the overlap delivers
                    // some updates twice, and the bar series dedupe them by open time.
                    let Some(rot) = next.as_mut() else { continue };
                    let text = match read_text(msg) {
                        Ok(Some(t)) => t,
                        Ok(None) => continue,
                        Err(reason) => {
                            tracing::warn!(shard = self.id, %reason, "replacement connection lost during rotation");
                            next = None;
                            rotate_at = Instant::now() + ROTATION_RETRY;
                            continue;
                        }
                    };
                    match self.decode(text.as_str(), &mut decoded) {
                        Ok(Some(id)) => {
                            rot.awaiting.remove(&id);
                        }
                        Ok(None) => {}
                        Err(error) => decoded.push(StreamEvent::Malformed { shard: self.id, error }),
                    }
                    if !self.forward(&mut decoded).await {
                        return Ended::Shutdown;
                    }
                    if rot.awaiting.is_empty() && let Some(rot) = next.take() {
                        // Every stream is live on the new connection: switch, and drain the old one
                        // for a moment before closing it (see ROTATION_DRAIN).
                        let old = std::mem::replace(&mut ws, rot.ws);
                        next_id = rot.next_id;
                        awaiting.clear();
                        last_data = Instant::now();
                        rotate_at = Instant::now() + self.cfg.rotate_after;
                        if let Some(mut earlier) = draining.replace(Draining {
                            ws: old,
                            until: Instant::now() + ROTATION_DRAIN,
                        }) {
                            tokio::spawn(async move {
                                let _ = tokio::time::timeout(Duration::from_secs(5), earlier.ws.close(None)).await;
                            });
                        }
                        tracing::info!(shard = self.id, "market stream rotated before the venue's 24 h cut");
                        if !self.emit(StreamEvent::Rotated { shard: self.id }).await {
                            return Ended::Shutdown;
                        }
                    }
                }
                msg = next_drained(draining.as_mut()), if draining.is_some() => {
                    // Data frames of the old connection are forwarded (the bar series dedupe the
                    // overlap); its end, or any error, just ends the drain.
                    match read_text(msg) {
                        Ok(Some(text)) => {
                            if self.decode(text.as_str(), &mut decoded).is_ok()
                                && !self.forward(&mut decoded).await
                            {
                                return Ended::Shutdown;
                            }
                            decoded.clear();
                        }
                        Ok(None) => {}
                        Err(_) => draining = None,
                    }
                }
                cmd = self.commands.recv() => {
                    let Some(cmd) = cmd else { return Ended::Shutdown };
                    self.apply_locally(&cmd);
                    next_id += 1;
                    let (method, params) = match cmd {
                        ShardCommand::Subscribe(s) => ("SUBSCRIBE", s),
                        ShardCommand::Unsubscribe(s) => ("UNSUBSCRIBE", s),
                    };
                    if let Some(rot) = next.as_mut() {
                        rot.next_id += 1;
                        if Self::send_request(&mut rot.ws, method, params.clone(), rot.next_id).await.is_err() {
                            next = None;
                            rotate_at = Instant::now() + ROTATION_RETRY;
                        }
                    }
                    if let Err(e) = Self::send_request(&mut ws, method, params, next_id).await {
                        return Ended::Lost(e);
                    }
                }
                () = drain_deadline(drain_until), if drain_until.is_some() => {
                    if let Some(mut old) = draining.take() {
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(Duration::from_secs(5), old.ws.close(None)).await;
                        });
                    }
                }
                _ = watchdog.tick() => {
                    if !up_sent && last_data.elapsed() > self.cfg.stale_after {
                        return Ended::Lost("no reply to SUBSCRIBE".to_owned());
                    }
                    if !self.streams.is_empty() && last_data.elapsed() > self.cfg.stale_after {
                        return Ended::Lost(format!("stale: no data for {:?}", self.cfg.stale_after));
                    }
                    if let Some(rot) = &next
                        && rot.started.elapsed() > self.cfg.stale_after.max(Duration::from_secs(10))
                    {
                        tracing::warn!(shard = self.id, "replacement connection never confirmed its subscriptions");
                        next = None;
                        rotate_at = Instant::now() + ROTATION_RETRY;
                    }
                    if up_sent && next.is_none() && Instant::now() >= rotate_at {
                        match self.start_rotation().await {
                            Ok(rot) => next = Some(rot),
                            Err(reason) => {
                                tracing::warn!(shard = self.id, %reason, "rotation failed; retrying");
                                rotate_at = Instant::now() + ROTATION_RETRY;
                            }
                        }
                    }
                }
                _ = self.shutdown.changed() => {
                    if let Some(mut old) = draining.take() {
                        let _ = old.ws.close(None).await;
                    }
                    let _ = ws.close(None).await;
                    return Ended::Shutdown;
                }
            }
        }
    }

    /// Opens the replacement connection and sends its SUBSCRIBEs; the old one keeps serving meanwhile.
    async fn start_rotation(&self) -> Result<Rotation, String> {
        let mut ws = self.connect().await?;
        let mut next_id = 0u64;
        self.subscribe_all(&mut ws, &mut next_id).await?;
        Ok(Rotation {
            ws,
            awaiting: (1..=next_id).collect(),
            next_id,
            started: Instant::now(),
        })
    }

    /// Decodes one text frame into `decoded`; `Ok(Some(id))` for the reply to a live request.
    fn decode(&self, text: &str, decoded: &mut Vec<StreamEvent>) -> Result<Option<u64>, String> {
        decoded.clear();
        match self.table.read() {
            Ok(table) => decode_frame_or_reply(text, &table, decoded),
            Err(_) => Err("symbol table lock poisoned".to_owned()),
        }
    }

    /// Sends the decoded events to the engine. False if the engine is gone.
    async fn forward(&self, decoded: &mut Vec<StreamEvent>) -> bool {
        for ev in decoded.drain(..) {
            if self.events.send(E::from(ev)).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Tells the engine the shard is up with its current streams. False if the engine is gone.
    async fn report_up(&self, reconnect: bool) -> bool {
        tracing::info!(
            shard = self.id,
            streams = self.streams.len(),
            reconnect,
            "market stream up"
        );
        let up = StreamEvent::Up {
            shard: self.id,
            streams: self.streams.iter().cloned().collect(),
            reconnect,
        };
        self.emit(up).await
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn backoff_is_bounded_positive_and_grows(attempt in 0u32..64, seed in any::<u64>()) {
            use rand::SeedableRng;
            let cfg = StreamConfig::new("ws://127.0.0.1:1");
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let d = backoff_delay(&cfg, attempt, &mut rng);
            prop_assert!(d <= cfg.backoff_max);
            prop_assert!(d >= cfg.backoff_initial / 2);
            let floor = (cfg.backoff_initial * 2u32.pow(attempt.min(20))).min(cfg.backoff_max) / 2;
            prop_assert!(d >= floor.min(cfg.backoff_max / 2));
        }
    }

    #[test]
    fn more_than_the_limit_of_malformed_frames_in_a_minute_is_too_many() {
        let mut rate = MalformedRate::default();
        assert!(
            (0..100).all(|_| !rate.too_many(100)),
            "100 a minute are tolerated"
        );
        assert!(rate.too_many(100), "the 101st is not");
    }

    #[test]
    fn rotation_comes_before_the_venues_cut() {
        let cfg = StreamConfig::new("ws://127.0.0.1:1");
        assert!(cfg.rotate_after < crate::sim::faults::VENUE_CONNECTION_LIFETIME);
        assert!(cfg.rotate_after >= Duration::from_secs(23 * 3600));
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        let table = SymbolTable::default();
        let mut out = Vec::new();
        for bad in ["", "{", "[]", "null", r#"{"stream":"x@kline_1m","data":{"e":1}}"#] {
            assert!(decode_frame(bad, &table, &mut out).is_err(), "{bad}");
        }
        assert!(out.is_empty());
    }
}
