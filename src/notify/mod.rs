//! Discord notifications: lifecycle, breaker and operational events posted to a channel, without ever
//! slowing the engine or leaking a credential.
//!
//! Why it exists: an operator away from the console must learn that a stop was hit, a breaker tripped or
//! the venue banned the IP. Discord is reached either through a **webhook URL** or a **bot token and
//! channel id** (`POST {api}/channels/{id}/messages`, `Authorization: Bot <token>`); the API base URL is
//! configurable (`notify.discord_api_url`) so tests talk to a loopback server.
//!
//! Design decisions:
//! * **The engine never waits.** [`NotifierHandle::notify`] is a `try_send` into a bounded queue: when
//!   Discord is down or slow, the queue fills and further events are dropped and counted
//!   ([`NotifyStats::dropped`]), never awaited. One tokio task does all the HTTP.
//! * **Routing** ([`Routing`]) decides per event type what goes to Discord; by default the events a
//!   human acts on (opened, targets and stops hit, liquidation warnings, expiries, closes, breaker
//!   changes, operational alerts), not the per-tick `PriceUpdated`/`RiskLevelChanged`/approach events.
//! * **De-duplication**: an event whose key was sent within `dedupe_window` is dropped (a flapping
//!   stream alert says so once).
//! * **Batching**: events wait up to `batch_window` and go out together, one per line, packed into as few
//!   messages as Discord's 2000-character `content` limit allows; a full message goes at once.
//! * **Throttling**: at most `max_messages` per `per` (a sliding window); held events keep batching
//!   while they wait, so a burst becomes a few long messages instead of a ban.
//! * **429**: the wait is the larger of the JSON body's `retry_after` (seconds, a float) and the
//!   `Retry-After` header, and nothing is sent to Discord until it has passed; the message is retried.
//!   Other failures back off exponentially and give up after `max_attempts` (counted).
//! * **Secrets**: the webhook URL and the bot token are [`SecretString`]s (redacted `Debug`, zeroed on
//!   drop); they appear only in the request line and the `Authorization` header (marked sensitive),
//!   never in a body, a log line or an error (`reqwest` errors are stripped of their URL). Event texts
//!   are scrubbed of the notifier's own secrets before they are queued for sending.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use tokio::{sync::mpsc, task::JoinHandle, time::Instant};

use crate::{binance::secret::SecretString, config::Config, journal::LifecycleKind};

/// Discord's limit on a message's `content`, in characters.
pub const CONTENT_LIMIT: usize = 2000;

/// Operational alerts (not tied to a position).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpsKind {
    Started,
    Stopped,
    /// A market or user stream reconnected (or is reconnecting repeatedly).
    Reconnect,
    /// No data on a stream while positions are open.
    StaleStream,
    /// The venue refused an order.
    OrderRejected,
    /// HTTP 429 from the venue.
    RateLimited,
    /// HTTP 418: the venue banned the IP.
    Banned,
    /// Start-up or post-reconnect reconciliation failed.
    Reconciliation,
    /// The journal could not write.
    Journal,
}

impl OpsKind {
    pub const ALL: [OpsKind; 9] = [
        Self::Started,
        Self::Stopped,
        Self::Reconnect,
        Self::StaleStream,
        Self::OrderRejected,
        Self::RateLimited,
        Self::Banned,
        Self::Reconciliation,
        Self::Journal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "Started",
            Self::Stopped => "Stopped",
            Self::Reconnect => "Reconnect",
            Self::StaleStream => "StaleStream",
            Self::OrderRejected => "OrderRejected",
            Self::RateLimited => "RateLimited",
            Self::Banned => "Banned",
            Self::Reconciliation => "Reconciliation",
            Self::Journal => "Journal",
        }
    }
}

/// What kind of event a notification is; the unit of routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotifyKind {
    Lifecycle(LifecycleKind),
    /// The circuit breaker changed tier.
    Breaker,
    Ops(OpsKind),
}

impl NotifyKind {
    /// The bold label in front of the event's line.
    pub fn label(self) -> &'static str {
        match self {
            Self::Lifecycle(k) => k.as_str(),
            Self::Breaker => "Breaker",
            Self::Ops(k) => k.as_str(),
        }
    }
}

/// One event for Discord.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub kind: NotifyKind,
    /// De-duplication key: the same key within the window is sent once (e.g. `sl:p-17`, `stale:btcusdt`).
    pub key: String,
    /// The human text (one line; a longer one is cut at the message limit).
    pub text: String,
}

impl Notification {
    pub fn new(kind: NotifyKind, key: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            kind,
            key: key.into(),
            text: text.into(),
        }
    }
}

/// Which event types go to Discord.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    enabled: HashSet<NotifyKind>,
}

impl Routing {
    /// Only these kinds.
    pub fn only(kinds: impl IntoIterator<Item = NotifyKind>) -> Self {
        Self {
            enabled: kinds.into_iter().collect(),
        }
    }

    /// Every kind, including the per-tick lifecycle events.
    pub fn all() -> Self {
        Self::only(
            LifecycleKind::ALL
                .into_iter()
                .map(NotifyKind::Lifecycle)
                .chain([NotifyKind::Breaker])
                .chain(OpsKind::ALL.into_iter().map(NotifyKind::Ops)),
        )
    }

    pub fn routes(&self, kind: NotifyKind) -> bool {
        self.enabled.contains(&kind)
    }

    #[must_use]
    pub fn with(mut self, kind: NotifyKind) -> Self {
        self.enabled.insert(kind);
        self
    }

    #[must_use]
    pub fn without(mut self, kind: NotifyKind) -> Self {
        self.enabled.remove(&kind);
        self
    }
}

impl Default for Routing {
    /// What a human acts on: opened, triggered, liquidation warning, expired, closed, breaker, ops.
    fn default() -> Self {
        Self::all()
            .without(NotifyKind::Lifecycle(LifecycleKind::PriceUpdated))
            .without(NotifyKind::Lifecycle(LifecycleKind::RiskLevelChanged))
            .without(NotifyKind::Lifecycle(LifecycleKind::TakeProfitApproaching))
            .without(NotifyKind::Lifecycle(LifecycleKind::StopLossApproaching))
            .without(NotifyKind::Lifecycle(LifecycleKind::TrailingStopMoved))
    }
}

/// Where messages go.
#[derive(Debug, Clone)]
pub enum DiscordTarget {
    /// `POST <webhook URL>`. The URL is the credential.
    Webhook { url: SecretString },
    /// `POST {api_base}/channels/{channel_id}/messages` with `Authorization: Bot <token>`.
    Bot {
        api_base: String,
        token: SecretString,
        channel_id: SecretString,
    },
}

impl DiscordTarget {
    /// From the configuration: the webhook if one is set, else the bot (token and channel), else none.
    pub fn from_config(config: &Config) -> Option<Self> {
        let secrets = &config.secrets;
        if let Some(url) = &secrets.discord_webhook_url {
            return Some(Self::Webhook {
                url: SecretString::new(url.expose().to_owned()),
            });
        }
        match (&secrets.discord_token, &secrets.discord_channel_id) {
            (Some(token), Some(channel)) => Some(Self::Bot {
                api_base: config.notify.discord_api_url.clone(),
                token: SecretString::new(token.expose().to_owned()),
                channel_id: SecretString::new(channel.expose().to_owned()),
            }),
            _ => None,
        }
    }

    /// The secret texts that must never leave in a body.
    fn secrets(&self) -> Vec<String> {
        match self {
            Self::Webhook { url } => {
                let url = url.expose_secret();
                // The token is the last path segment; scrub it alone too.
                let token = url.rsplit('/').next().unwrap_or_default();
                [url.to_owned(), token.to_owned()]
                    .into_iter()
                    .filter(|s| s.len() >= 8)
                    .collect()
            }
            Self::Bot { token, .. } => vec![token.expose_secret().to_owned()],
        }
    }
}

/// The notifier's knobs.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub target: DiscordTarget,
    pub routing: Routing,
    /// Events the engine may queue before further ones are dropped.
    pub queue: usize,
    /// Events held (batching, throttled, backing off) before the oldest are dropped.
    pub max_pending: usize,
    /// How long the first event of a batch waits for company.
    pub batch_window: Duration,
    /// Same key within this window: sent once.
    pub dedupe_window: Duration,
    /// At most `max_messages` messages per `per`.
    pub max_messages: u32,
    pub per: Duration,
    /// Attempts per message on 5xx or network errors before it is dropped.
    pub max_attempts: u32,
    /// Longest wait honoured from a 429 (a longer one is cut to this).
    pub max_retry_wait: Duration,
    pub request_timeout: Duration,
    /// How long a stopping notifier keeps trying to deliver what it holds.
    pub shutdown_grace: Duration,
}

impl NotifySettings {
    /// Defaults: batches of 2 s, dedupe over 5 min, 20 messages a minute (Discord allows a webhook 30 a
    /// minute per channel), 5 attempts, a 10 s request timeout.
    pub fn new(target: DiscordTarget) -> Self {
        Self {
            target,
            routing: Routing::default(),
            queue: 1024,
            max_pending: 1000,
            batch_window: Duration::from_secs(2),
            dedupe_window: Duration::from_secs(300),
            max_messages: 20,
            per: Duration::from_secs(60),
            max_attempts: 5,
            max_retry_wait: Duration::from_secs(300),
            request_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }

    /// Settings from the configuration, or `None` when no Discord credential is set.
    pub fn from_config(config: &Config) -> Option<Self> {
        DiscordTarget::from_config(config).map(Self::new)
    }
}

/// Failures starting the notifier. Delivery failures are counted in [`NotifyStats`], never returned to
/// the engine.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("cannot build the HTTP client for Discord: {0}")]
    Client(String),
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    unrouted: AtomicU64,
    dropped: AtomicU64,
    deduplicated: AtomicU64,
    overflowed: AtomicU64,
    throttled: AtomicU64,
    rate_limited: AtomicU64,
    retry_wait_ms: AtomicU64,
    sent_messages: AtomicU64,
    sent_events: AtomicU64,
    failed_messages: AtomicU64,
    failed_events: AtomicU64,
}

/// What the notifier has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NotifyStats {
    /// Events queued by [`NotifierHandle::notify`].
    pub accepted: u64,
    /// Events whose type is not routed to Discord.
    pub unrouted: u64,
    /// Events refused because the queue was full (Discord slow or down) or the notifier stopped.
    pub dropped: u64,
    /// Events dropped as repeats of a key within the de-duplication window.
    pub deduplicated: u64,
    /// Held events dropped (oldest first) beyond `max_pending`.
    pub overflowed: u64,
    /// Times a ready message had to wait for the throttle.
    pub throttled: u64,
    /// HTTP 429 answers.
    pub rate_limited: u64,
    /// Total wait imposed by 429 answers, in milliseconds.
    pub retry_wait_ms: u64,
    pub sent_messages: u64,
    pub sent_events: u64,
    /// Messages given up (a 4xx other than 429, or `max_attempts` failures).
    pub failed_messages: u64,
    pub failed_events: u64,
}

impl Counters {
    fn snapshot(&self) -> NotifyStats {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NotifyStats {
            accepted: l(&self.accepted),
            unrouted: l(&self.unrouted),
            dropped: l(&self.dropped),
            deduplicated: l(&self.deduplicated),
            overflowed: l(&self.overflowed),
            throttled: l(&self.throttled),
            rate_limited: l(&self.rate_limited),
            retry_wait_ms: l(&self.retry_wait_ms),
            sent_messages: l(&self.sent_messages),
            sent_events: l(&self.sent_events),
            failed_messages: l(&self.failed_messages),
            failed_events: l(&self.failed_events),
        }
    }
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// The engine's side: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct NotifierHandle {
    tx: mpsc::Sender<Notification>,
    routing: Arc<Routing>,
    counters: Arc<Counters>,
}

impl NotifierHandle {
    /// Queues `event` if its type is routed. Never waits: `false` when unrouted or when the queue is
    /// full (counted as dropped).
    pub fn notify(&self, event: Notification) -> bool {
        if !self.routing.routes(event.kind) {
            bump(&self.counters.unrouted, 1);
            return false;
        }
        if self.tx.try_send(event).is_ok() {
            bump(&self.counters.accepted, 1);
            true
        } else {
            bump(&self.counters.dropped, 1);
            false
        }
    }

    pub fn stats(&self) -> NotifyStats {
        self.counters.snapshot()
    }
}

/// Starts the notifier task (on the current tokio runtime). It stops, after trying to deliver what it
/// holds for up to `shutdown_grace`, when every handle is dropped.
pub fn spawn(settings: NotifySettings) -> Result<(NotifierHandle, JoinHandle<()>), NotifyError> {
    let client = reqwest::Client::builder()
        .timeout(settings.request_timeout)
        .connect_timeout(settings.request_timeout)
        .build()
        .map_err(|e| NotifyError::Client(e.without_url().to_string()))?;
    let (tx, rx) = mpsc::channel(settings.queue.max(1));
    let counters = Arc::new(Counters::default());
    let handle = NotifierHandle {
        tx,
        routing: Arc::new(settings.routing.clone()),
        counters: Arc::clone(&counters),
    };
    let worker = Worker {
        scrub: settings.target.secrets(),
        settings,
        client,
        counters,
        pending: VecDeque::new(),
        seen: HashMap::new(),
        sent_at: VecDeque::new(),
        blocked_until: None,
        attempts: 0,
        throttle_noted: false,
    };
    Ok((handle, tokio::spawn(worker.run(rx))))
}

/// The `content` of a message: the events' lines joined by newlines, in order.
#[derive(serde::Serialize)]
struct MessageBody<'a> {
    content: &'a str,
    /// No `@everyone` or role pings from event text.
    allowed_mentions: AllowedMentions,
}

#[derive(serde::Serialize)]
struct AllowedMentions {
    parse: [&'static str; 0],
}

struct Held {
    line: String,
    chars: usize,
    arrived: Instant,
}

enum Outcome {
    Sent,
    RateLimited(Duration),
    Retry(String),
    Fatal(String),
}

struct Worker {
    settings: NotifySettings,
    client: reqwest::Client,
    counters: Arc<Counters>,
    scrub: Vec<String>,
    pending: VecDeque<Held>,
    seen: HashMap<String, Instant>,
    sent_at: VecDeque<Instant>,
    blocked_until: Option<Instant>,
    /// Failed attempts of the message at the head of `pending`.
    attempts: u32,
    /// The current wait for the throttle is already counted.
    throttle_noted: bool,
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::Receiver<Notification>) {
        loop {
            let due = self.next_due(false);
            tokio::select! {
                event = rx.recv() => match event {
                    Some(event) => self.accept(event),
                    None => break,
                },
                () = sleep_until_opt(due), if due.is_some() => self.send_next().await,
            }
        }
        let deadline = Instant::now() + self.settings.shutdown_grace;
        while let Some(due) = self.next_due(true) {
            if due > deadline {
                break;
            }
            tokio::time::sleep_until(due).await;
            self.send_next().await;
        }
        if !self.pending.is_empty() {
            let n = self.pending.len() as u64;
            bump(&self.counters.failed_events, n);
            tracing::warn!(events = n, "notifier stopped with undelivered Discord events");
        }
    }

    fn accept(&mut self, event: Notification) {
        let now = Instant::now();
        let window = self.settings.dedupe_window;
        if let Some(&seen) = self.seen.get(&event.key)
            && now.duration_since(seen) < window
        {
            bump(&self.counters.deduplicated, 1);
            return;
        }
        if self.seen.len() >= 4096 {
            self.seen.retain(|_, t| now.duration_since(*t) < window);
        }
        self.seen.insert(event.key, now);
        let mut line = format!(
            "**{}** {}",
            event.kind.label(),
            event.text.replace(['\n', '\r'], " ")
        );
        for secret in &self.scrub {
            if line.contains(secret.as_str()) {
                line = line.replace(secret.as_str(), crate::binance::secret::REDACTED);
            }
        }
        let mut chars = line.chars().count();
        if chars > CONTENT_LIMIT {
            line = line.chars().take(CONTENT_LIMIT - 1).collect::<String>() + "…";
            chars = CONTENT_LIMIT;
        }
        self.pending.push_back(Held {
            line,
            chars,
            arrived: now,
        });
        while self.pending.len() > self.settings.max_pending.max(1) {
            self.pending.pop_front();
            self.attempts = 0;
            bump(&self.counters.overflowed, 1);
        }
    }

    /// How many held events fit the next message, and its length.
    fn next_message_len(&self) -> (usize, usize) {
        pack(self.pending.iter().map(|h| h.chars))
    }

    /// When the next message may go: after its batch window (unless it is already full, or the
    /// notifier is stopping), the throttle and any 429 block. `None` when nothing is held.
    fn next_due(&mut self, stopping: bool) -> Option<Instant> {
        let front = self.pending.front()?;
        let (count, _) = self.next_message_len();
        let full = count < self.pending.len();
        let ready = if full || stopping {
            front.arrived
        } else {
            front.arrived + self.settings.batch_window
        };
        let now = Instant::now();
        while self
            .sent_at
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.settings.per)
        {
            self.sent_at.pop_front();
        }
        let throttle = if self.sent_at.len() >= self.settings.max_messages.max(1) as usize {
            self.sent_at.front().map(|t| *t + self.settings.per)
        } else {
            None
        };
        if let Some(t) = throttle
            && t > ready
            && !self.throttle_noted
        {
            self.throttle_noted = true;
            bump(&self.counters.throttled, 1);
        }
        Some(
            [Some(ready), throttle, self.blocked_until]
                .into_iter()
                .flatten()
                .max()
                .unwrap_or(ready),
        )
    }

    async fn send_next(&mut self) {
        let (count, len) = self.next_message_len();
        if count == 0 {
            return;
        }
        let mut content = String::with_capacity(len);
        for (i, held) in self.pending.iter().take(count).enumerate() {
            if i > 0 {
                content.push('\n');
            }
            content.push_str(&held.line);
        }
        let outcome = self.post(&content).await;
        let now = Instant::now();
        match outcome {
            Outcome::Sent => {
                self.pending.drain(..count);
                self.sent_at.push_back(now);
                self.attempts = 0;
                self.throttle_noted = false;
                self.blocked_until = None;
                bump(&self.counters.sent_messages, 1);
                bump(&self.counters.sent_events, count as u64);
            }
            Outcome::RateLimited(wait) => {
                let wait = wait.min(self.settings.max_retry_wait);
                bump(&self.counters.rate_limited, 1);
                bump(&self.counters.retry_wait_ms, wait.as_millis() as u64);
                tracing::warn!(
                    retry_after_ms = wait.as_millis() as u64,
                    "Discord rate limit (429); waiting"
                );
                self.blocked_until = Some(now + wait);
            }
            Outcome::Retry(reason) => {
                self.attempts += 1;
                if self.attempts >= self.settings.max_attempts.max(1) {
                    tracing::error!(%reason, attempts = self.attempts, events = count, "Discord message given up");
                    self.give_up(count);
                } else {
                    let backoff = Duration::from_secs(1 << self.attempts.min(5));
                    tracing::warn!(%reason, attempt = self.attempts, backoff_s = backoff.as_secs(), "Discord message failed; retrying");
                    self.blocked_until = Some(now + backoff);
                }
            }
            Outcome::Fatal(reason) => {
                tracing::error!(%reason, events = count, "Discord refused a message; dropped");
                self.give_up(count);
            }
        }
    }

    fn give_up(&mut self, count: usize) {
        self.pending.drain(..count);
        self.attempts = 0;
        self.blocked_until = None;
        bump(&self.counters.failed_messages, 1);
        bump(&self.counters.failed_events, count as u64);
    }

    async fn post(&self, content: &str) -> Outcome {
        let body = MessageBody {
            content,
            allowed_mentions: AllowedMentions { parse: [] },
        };
        let request = match &self.settings.target {
            DiscordTarget::Webhook { url } => self.client.post(url.expose_secret()),
            DiscordTarget::Bot {
                api_base,
                token,
                channel_id,
            } => {
                let Ok(mut auth) = HeaderValue::from_str(&format!("Bot {}", token.expose_secret())) else {
                    return Outcome::Fatal("the bot token is not a valid header value".to_owned());
                };
                auth.set_sensitive(true);
                let url = format!(
                    "{}/channels/{}/messages",
                    api_base.trim_end_matches('/'),
                    channel_id.expose_secret()
                );
                self.client.post(url).header(AUTHORIZATION, auth)
            }
        };
        let response = match request.json(&body).send().await {
            Ok(r) => r,
            // `without_url`: the URL of a webhook is its credential.
            Err(e) => return Outcome::Retry(e.without_url().to_string()),
        };
        let status = response.status();
        if status.is_success() {
            return Outcome::Sent;
        }
        if status.as_u16() == 429 {
            let header = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = response.bytes().await.unwrap_or_default();
            return Outcome::RateLimited(retry_after(header.as_deref(), &body));
        }
        if status.is_server_error() {
            Outcome::Retry(format!("HTTP {}", status.as_u16()))
        } else {
            Outcome::Fatal(format!("HTTP {}", status.as_u16()))
        }
    }
}

/// Greedy packing of lines (given by their lengths in characters, each at most [`CONTENT_LIMIT`]) into
/// one message joined by newlines: how many of the first lines fit, and the message's length. At least one
/// line is taken when there is any.
pub fn pack(lengths: impl IntoIterator<Item = usize>) -> (usize, usize) {
    let mut count = 0;
    let mut len = 0;
    for chars in lengths {
        let add = if count == 0 { chars } else { chars + 1 };
        if count > 0 && len + add > CONTENT_LIMIT {
            break;
        }
        len += add;
        count += 1;
    }
    (count, len)
}

async fn sleep_until_opt(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
}

/// The wait a 429 asks for: the larger of the body's `retry_after` (seconds, float) and the
/// `Retry-After` header (seconds); 1 s when neither is readable.
pub fn retry_after(header: Option<&str>, body: &[u8]) -> Duration {
    #[derive(serde::Deserialize)]
    struct RateLimited {
        retry_after: f64,
    }
    let secs = |s: f64| (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s.min(86_400.0)));
    let from_body = serde_json::from_slice::<RateLimited>(body)
        .ok()
        .and_then(|r| secs(r.retry_after));
    let from_header = header.and_then(|h| h.trim().parse::<f64>().ok()).and_then(secs);
    match (from_body, from_header) {
        (None, None) => Duration::from_secs(1),
        (a, b) => a.max(b).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests;
