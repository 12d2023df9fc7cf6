//! The signed REST client: every TRADE / `USER_DATA` / `USER_STREAM` request of the console goes through
//! [`SignedRest`], which wires the pure building blocks together.
//!
//! For each request, in this order:
//! 1. An order-creating request is refused locally while the clock gate is shut (`clock`: never synced,
//!    invalidated by `-1021`, or |offset| > 1 s).
//! 2. The governor is asked (`governor`): a budget wait or a 429 block is waited out; a 418 ban is an
//!    immediate error, because no REST at all may go out until `Retry-After` has passed, and a caller
//!    waiting hours inside one request would hide the ban from the operator.
//! 3. Parameters are form-encoded in the caller's order, `recvWindow=5000` and `timestamp` (venue time =
//!    local + offset) are appended, and the HMAC-SHA256 / Ed25519 `signature` is computed over exactly
//!    the bytes sent (`sign`): the query string for GET/DELETE, the form body for POST/PUT.
//! 4. The response headers correct the governor (`X-MBX-USED-WEIGHT-1M`, `X-MBX-ORDER-COUNT-*`); 429
//!    and 418 block it for `Retry-After`.
//! 5. A failure is classified by the error table (`errors`). Only [`ErrorClass::Retry`] is retried
//!    here (3 attempts, 200 → 400 → 800 ms), after a clock re-sync for `-1021`. An order POST is retried
//!    only where the venue guarantees it was not executed, and always with the same parameters (so the
//!    same `newClientOrderId`). [`ErrorClass::OutcomeUnknown`] is returned to `orders`, which resolves
//!    it by query before anything is resent.
//!
//! Nothing here logs a query string or body: they carry `signature=`. Log lines name the method, the
//! path and the status only.

use std::{
    fmt,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use reqwest::{Method, header::HeaderMap};
use serde::de::DeserializeOwned;

use super::{
    clock::{self, ServerClock, TimeSample},
    errors::{self, ErrorClass, Failure, Hint, RequestKind, Verdict},
    governor::{BanAlert, RateGovernor, Refusal, Usage, WaitReason},
    secret::SecretString,
    sign::{API_KEY_HEADER, ApiKey, SignError, Signer},
    wire,
};
use crate::domain::{TimestampMs, now_ms};

/// Attempts of a request whose failure is classified [`ErrorClass::Retry`].
pub const MAX_ATTEMPTS: u32 = 3;
/// First retry delay; doubled per attempt (200 → 400 → 800 ms, as the venue advises for 503).
pub const RETRY_BASE: Duration = Duration::from_millis(200);
/// Round trips per clock sync; the offset in force is their median (`clock::WINDOW` kept).
pub const SYNC_SAMPLES: usize = 5;

/// How a request authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `timestamp`, `recvWindow`, `signature` and the API key header (TRADE, `USER_DATA`).
    Signed,
    /// The API key header only (`USER_STREAM`: listenKey endpoints).
    ApiKey,
}

/// One endpoint as the client uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub method: EndpointMethod,
    pub path: &'static str,
    /// Request weight (venue docs).
    pub weight: u32,
    /// Orders it creates (counts against the ORDERS budgets).
    pub orders: u32,
    pub kind: RequestKind,
    pub security: Security,
}

/// HTTP method of an [`Endpoint`] (a `Copy` mirror of the four the venue uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointMethod {
    Get,
    Post,
    Put,
    Delete,
}

impl EndpointMethod {
    fn http(self) -> Method {
        match self {
            Self::Get => Method::GET,
            Self::Post => Method::POST,
            Self::Put => Method::PUT,
            Self::Delete => Method::DELETE,
        }
    }

    /// POST and PUT carry their parameters in a form body; GET and DELETE in the query string.
    fn has_body(self) -> bool {
        matches!(self, Self::Post | Self::Put)
    }
}

/// Credentials of a trading account. Built only when trading is enabled: paper mode never calls
/// [`Credentials::load`], so no secret is read.
#[derive(Debug)]
pub struct Credentials {
    pub api_key: ApiKey,
    pub signer: Signer,
}

impl Credentials {
    /// An HMAC key pair.
    pub fn hmac(api_key: &SecretString, api_secret: &SecretString) -> Result<Self, SignError> {
        Ok(Self {
            api_key: ApiKey::new(api_key)?,
            signer: Signer::hmac(api_secret)?,
        })
    }

    /// An Ed25519 key (API key + PKCS#8 PEM private key).
    pub fn ed25519(api_key: &SecretString, pem: &SecretString) -> Result<Self, SignError> {
        Ok(Self {
            api_key: ApiKey::new(api_key)?,
            signer: Signer::ed25519_from_pem(pem)?,
        })
    }

    /// The trading credentials, or `None` in paper mode without calling `load`: paper mode loads no
    /// secret, whatever the environment holds.
    pub fn for_mode<E>(
        trading_enabled: bool,
        load: impl FnOnce() -> Result<Self, E>,
    ) -> Result<Option<Self>, E> {
        if trading_enabled {
            load().map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Why a signed request failed. Never holds a query string, a body we sent, or key material.
#[derive(Debug, thiserror::Error)]
pub enum SignedError {
    #[error("trading refused: the venue clock is not synced")]
    ClockUnsynced,
    #[error("trading refused: clock offset {offset_ms} ms exceeds ±1000 ms (fix the host clock)")]
    ClockSkew { offset_ms: i64 },
    #[error("{path}: no REST until {until_ms} (IP banned by the venue, HTTP 418)")]
    Banned {
        path: &'static str,
        until_ms: TimestampMs,
    },
    #[error("{path}: {source}")]
    TooLarge {
        path: &'static str,
        #[source]
        source: Refusal,
    },
    #[error("{path}: venue error {code:?}: {msg} (HTTP {status}, {class:?})", class = verdict.class)]
    Venue {
        path: &'static str,
        status: u16,
        code: Option<i64>,
        msg: String,
        verdict: Verdict,
    },
    #[error("{path}: request failed ({class:?}): {source}", class = verdict.class)]
    Transport {
        path: &'static str,
        verdict: Verdict,
        #[source]
        source: reqwest::Error,
    },
    #[error("{path}: response is not the expected JSON ({class:?}): {source}", class = verdict.class)]
    Decode {
        path: &'static str,
        verdict: Verdict,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid base URL {0:?}")]
    BadUrl(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

impl SignedError {
    /// The error table's class; local refusals are `NeverRetry` (nothing was sent).
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Venue { verdict, .. } | Self::Transport { verdict, .. } | Self::Decode { verdict, .. } => {
                verdict.class
            }
            Self::Banned { until_ms, .. } => ErrorClass::BackOff(errors::BackOff::IpBanned {
                until_ms: Some(*until_ms),
            }),
            Self::ClockUnsynced
            | Self::ClockSkew { .. }
            | Self::TooLarge { .. }
            | Self::BadUrl(_)
            | Self::Client(_) => ErrorClass::NeverRetry,
        }
    }

    /// The venue's error code, if it sent one.
    pub fn code(&self) -> Option<i64> {
        match self {
            Self::Venue { code, .. } => *code,
            _ => None,
        }
    }

    /// The execution status of the request is unknown: resolve by query, never resend blindly.
    pub fn is_outcome_unknown(&self) -> bool {
        self.class() == ErrorClass::OutcomeUnknown
    }

    /// Hint from the error table.
    pub fn hint(&self) -> Hint {
        match self {
            Self::Venue { verdict, .. } | Self::Transport { verdict, .. } | Self::Decode { verdict, .. } => {
                verdict.hint
            }
            _ => Hint::None,
        }
    }
}

/// Counters for the status bar and the tests.
#[derive(Debug, Default)]
pub struct SignedStats {
    /// Requests that carried a signature (sent on the wire).
    pub signed_sent: AtomicU64,
    /// Requests that carried the API key header only.
    pub key_only_sent: AtomicU64,
    /// Responses with `-1021`.
    pub invalid_timestamp: AtomicU64,
    /// Responses with HTTP 429.
    pub rate_limited: AtomicU64,
    /// Responses with HTTP 418.
    pub banned: AtomicU64,
}

/// The signed REST client. Cheap to share behind an `Arc`; all state is behind short-held locks.
pub struct SignedRest {
    http: reqwest::Client,
    base: String,
    creds: Credentials,
    clock: Mutex<ServerClock>,
    governor: Mutex<RateGovernor>,
    stats: SignedStats,
    recv_window_ms: i64,
}

impl fmt::Debug for SignedRest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedRest")
            .field("base", &self.base)
            .field("creds", &self.creds)
            .field("recv_window_ms", &self.recv_window_ms)
            .finish_non_exhaustive()
    }
}

/// Form-encodes `params` in order (`k=v&k=v`), percent-encoding values as the venue expects.
pub fn encode_params(params: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(params.len() * 24);
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(&super::sign::percent_encode(v));
    }
    out
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

impl SignedRest {
    /// A client for `base_url` with the venue's limits of the 2021 capture until
    /// [`SignedRest::set_governor`] installs budgets read from `exchangeInfo`.
    pub fn new(base_url: &str, creds: Credentials) -> Result<Self, SignedError> {
        let base = base_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(SignedError::BadUrl(base_url.to_owned()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // Orders: 5–10 s is reasonable (RELIABILITY §2); a timeout is an unknown outcome.
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("perpdesk/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(SignedError::Client)?;
        Ok(Self {
            http,
            base,
            creds,
            clock: Mutex::new(ServerClock::new()),
            governor: Mutex::new(RateGovernor::binance_defaults()),
            stats: SignedStats::default(),
            recv_window_ms: clock::RECV_WINDOW_MS,
        })
    }

    /// Uses a shorter request timeout (tests of unknown outcomes).
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self, SignedError> {
        self.http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(timeout)
            .build()
            .map_err(SignedError::Client)?;
        Ok(self)
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn stats(&self) -> &SignedStats {
        &self.stats
    }

    /// Installs budgets read from `exchangeInfo.rateLimits`.
    pub fn set_governor(&self, governor: RateGovernor) {
        if let Ok(mut g) = self.governor.lock() {
            *g = governor;
        }
    }

    /// Every budget's state (status bar).
    pub fn usage(&self) -> Vec<Usage> {
        let now = self.venue_now();
        self.governor.lock().map(|g| g.usage(now)).unwrap_or_default()
    }

    /// A pending 418 alert, once (the operator must be told).
    pub fn take_ban_alert(&self) -> Option<BanAlert> {
        self.governor.lock().ok().and_then(|mut g| g.take_alert())
    }

    /// The offset in force, server − local (ms).
    pub fn clock_offset_ms(&self) -> Option<i64> {
        self.clock.lock().ok().and_then(|c| c.offset_ms())
    }

    /// Orders may be sent (synced, |offset| ≤ 1 s, no `-1021` since the last sync).
    pub fn trading_allowed(&self) -> bool {
        self.clock.lock().is_ok_and(|c| c.trading_allowed())
    }

    /// A sync is due (never synced, invalidated, or older than 5 minutes).
    pub fn needs_resync(&self) -> bool {
        self.clock.lock().is_ok_and(|c| c.needs_resync(now_ms()))
    }

    fn venue_now(&self) -> TimestampMs {
        let local = now_ms();
        self.clock.lock().map_or(local, |c| c.timestamp_ms(local))
    }

    /// Samples `GET /fapi/v1/time` [`SYNC_SAMPLES`] times; the offset in force becomes the median of
    /// the recent samples. Returns it.
    pub async fn sync_clock(&self) -> Result<i64, SignedError> {
        const PATH: &str = "/fapi/v1/time";
        let mut last_err = None;
        for _ in 0..SYNC_SAMPLES {
            self.wait_governor(PATH, 1, 0).await?;
            let send_ms = now_ms();
            let resp = self.http.get(format!("{}{PATH}", self.base)).send().await;
            let result = match resp {
                Ok(resp) => {
                    let receive_ms = now_ms();
                    self.note_headers(resp.status().as_u16(), resp.headers());
                    let status = resp.status();
                    match resp.bytes().await {
                        Ok(body) if status.is_success() => {
                            match serde_json::from_slice::<wire::ServerTime>(&body) {
                                Ok(t) => Ok(TimeSample {
                                    send_ms,
                                    server_ms: t.server_time,
                                    receive_ms,
                                }),
                                Err(source) => Err(SignedError::Decode {
                                    path: PATH,
                                    verdict: errors::classify(RequestKind::Read, Failure::MalformedSuccess),
                                    source,
                                }),
                            }
                        }
                        Ok(body) => Err(venue_error(
                            PATH,
                            RequestKind::Read,
                            status.as_u16(),
                            &String::from_utf8_lossy(&body),
                        )),
                        Err(source) => Err(transport_error(PATH, RequestKind::Read, source)),
                    }
                }
                Err(source) => Err(transport_error(PATH, RequestKind::Read, source)),
            };
            match result {
                Ok(sample) => {
                    if let Ok(mut c) = self.clock.lock() {
                        // A negative RTT cannot come from `now_ms` twice in order; skip it if it does.
                        let _ = c.record(sample);
                    }
                }
                Err(e) => last_err = Some(e),
            }
        }
        match (self.clock_offset_ms(), last_err) {
            (Some(o), _) => Ok(o),
            (None, Some(e)) => Err(e),
            (None, None) => Err(SignedError::ClockUnsynced),
        }
    }

    /// Re-syncs the clock every [`clock::RESYNC_INTERVAL_MS`] until `stop` turns true.
    pub async fn run_clock_sync(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let every = Duration::from_millis(clock::RESYNC_INTERVAL_MS.unsigned_abs());
        loop {
            if let Err(e) = self.sync_clock().await {
                tracing::warn!(error = %e, "clock sync failed; trading stays gated until it succeeds");
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// Waits for the governor; a 418 ban is an error, not a wait.
    async fn wait_governor(&self, path: &'static str, weight: u32, orders: u32) -> Result<(), SignedError> {
        loop {
            let now = self.venue_now();
            let verdict = match self.governor.lock() {
                Ok(mut g) => g.acquire(weight, orders, now),
                Err(_) => return Ok(()),
            };
            match verdict {
                Ok(()) => return Ok(()),
                Err(Refusal::Wait {
                    until_ms,
                    reason: WaitReason::Banned,
                }) => return Err(SignedError::Banned { path, until_ms }),
                Err(Refusal::Wait { until_ms, reason }) => {
                    let wait = u64::try_from(until_ms - now).unwrap_or(0).max(1);
                    tracing::debug!(
                        path,
                        wait_ms = wait,
                        ?reason,
                        "governor: waiting before the request"
                    );
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
                Err(source @ Refusal::TooLarge { .. }) => return Err(SignedError::TooLarge { path, source }),
            }
        }
    }

    fn note_headers(&self, status: u16, headers: &HeaderMap) {
        let now = self.venue_now();
        let Ok(mut g) = self.governor.lock() else { return };
        g.on_headers(
            headers
                .iter()
                .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v))),
            now,
        );
        match status {
            429 => {
                self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                g.on_rate_limited(retry_after(headers), now);
            }
            418 => {
                self.stats.banned.fetch_add(1, Ordering::Relaxed);
                g.on_banned(retry_after(headers), now);
            }
            _ => {}
        }
    }

    /// Sends `params` to `ep` and decodes the JSON answer, retrying only what the error table allows.
    pub async fn call<T: DeserializeOwned>(
        &self,
        ep: &Endpoint,
        params: &[(&str, String)],
    ) -> Result<T, SignedError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.call_once(ep, params).await {
                Ok(v) => return Ok(v),
                Err(e) if e.class() == ErrorClass::Retry && attempt < MAX_ATTEMPTS => {
                    if e.hint() == Hint::ResyncClock {
                        // `-1021`: the venue did not execute; re-sync, then send the same request.
                        self.sync_clock().await?;
                    } else {
                        tokio::time::sleep(RETRY_BASE * 2_u32.pow(attempt - 1)).await;
                    }
                    tracing::info!(path = ep.path, attempt, error = %e, "retrying a request the venue did not execute");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One attempt (no retry).
    pub async fn call_once<T: DeserializeOwned>(
        &self,
        ep: &Endpoint,
        params: &[(&str, String)],
    ) -> Result<T, SignedError> {
        if ep.kind == RequestKind::CreateOrder {
            let gate = self.clock.lock().map(|c| (c.trading_allowed(), c.offset_ms()));
            match gate {
                Ok((true, _)) => {}
                Ok((false, Some(offset_ms))) if offset_ms.abs() > clock::MAX_TRADING_OFFSET_MS => {
                    return Err(SignedError::ClockSkew { offset_ms });
                }
                _ => return Err(SignedError::ClockUnsynced),
            }
        }
        self.wait_governor(ep.path, ep.weight, ep.orders).await?;
        let mut payload = encode_params(params);
        if ep.security == Security::Signed {
            if !payload.is_empty() {
                payload.push('&');
            }
            let ts = self.venue_now();
            payload.push_str("recvWindow=");
            payload.push_str(&self.recv_window_ms.to_string());
            payload.push_str("&timestamp=");
            payload.push_str(&ts.to_string());
            // totalParams = query + body; everything is in one of them, so the other is empty.
            let sig = self.creds.signer.signature(&payload, "");
            payload.push_str("&signature=");
            payload.push_str(&sig);
        }
        let mut url = format!("{}{}", self.base, ep.path);
        if !ep.method.has_body() && !payload.is_empty() {
            url.push('?');
            url.push_str(&payload);
        }
        let mut req = self
            .http
            .request(ep.method.http(), url)
            .header(API_KEY_HEADER, self.creds.api_key.header_value().clone());
        if ep.method.has_body() {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(payload);
        }
        match ep.security {
            Security::Signed => self.stats.signed_sent.fetch_add(1, Ordering::Relaxed),
            Security::ApiKey => self.stats.key_only_sent.fetch_add(1, Ordering::Relaxed),
        };
        let resp = req
            .send()
            .await
            .map_err(|source| transport_error(ep.path, ep.kind, source))?;
        let status = resp.status().as_u16();
        self.note_headers(status, resp.headers());
        let body = resp
            .bytes()
            .await
            .map_err(|source| transport_error(ep.path, ep.kind, source))?;
        tracing::debug!(method = ?ep.method, path = ep.path, status, "signed request");
        if !(200..300).contains(&status) {
            let err = venue_error(ep.path, ep.kind, status, &String::from_utf8_lossy(&body));
            if err.code() == Some(-1021) {
                self.stats.invalid_timestamp.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut c) = self.clock.lock() {
                    c.on_invalid_timestamp();
                }
            }
            return Err(err);
        }
        serde_json::from_slice(&body).map_err(|source| SignedError::Decode {
            path: ep.path,
            verdict: errors::classify(ep.kind, Failure::MalformedSuccess),
            source,
        })
    }
}

fn venue_error(path: &'static str, kind: RequestKind, status: u16, body: &str) -> SignedError {
    let verdict = errors::classify(kind, Failure::Http { status, body });
    let parsed = errors::ErrorBody::parse(body);
    SignedError::Venue {
        path,
        status,
        code: parsed.code,
        msg: parsed.msg.chars().take(200).collect(),
        verdict,
    }
}

fn transport_error(path: &'static str, kind: RequestKind, source: reqwest::Error) -> SignedError {
    let failure = if source.is_connect() {
        Failure::NotSent
    } else {
        Failure::NoResponse
    };
    SignedError::Transport {
        path,
        verdict: errors::classify(kind, failure),
        source: source.without_url(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_encoded_in_order_without_exponents_or_raw_specials() {
        let p = [
            ("symbol", "BTCUSDT".to_owned()),
            ("newClientOrderId", "pd-1:a/b".to_owned()),
            ("price", "0.0001".to_owned()),
        ];
        assert_eq!(
            encode_params(&p),
            "symbol=BTCUSDT&newClientOrderId=pd-1%3Aa%2Fb&price=0.0001"
        );
        assert_eq!(encode_params(&[]), "");
    }

    #[test]
    fn paper_mode_never_calls_the_loader() {
        let mut called = false;
        let got: Result<Option<Credentials>, SignError> = Credentials::for_mode(false, || {
            called = true;
            Err(SignError::EmptySecret)
        });
        assert!(matches!(got, Ok(None)));
        assert!(!called, "paper mode loaded a secret");
        let got: Result<Option<Credentials>, SignError> =
            Credentials::for_mode(true, || Err(SignError::EmptySecret));
        assert!(got.is_err());
    }

    #[test]
    fn debug_shows_no_key_material() {
        let canary = "CANARY-signed-71c2";
        let creds = Credentials::hmac(
            &SecretString::new(format!("{canary}-key")),
            &SecretString::new(canary.to_owned()),
        )
        .expect("valid");
        let rest = SignedRest::new("http://127.0.0.1:9", creds).expect("client");
        let text = format!("{rest:?}");
        assert!(!text.contains(canary), "{text}");
    }

    #[test]
    fn bad_base_url_is_refused() {
        let creds =
            Credentials::hmac(&SecretString::new("k".into()), &SecretString::new("s".into())).expect("valid");
        assert!(matches!(
            SignedRest::new("fapi.binance.com", creds),
            Err(SignedError::BadUrl(_))
        ));
    }
}
