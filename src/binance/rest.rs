//! REST client for the venue's public market data, with timeouts, typed errors and weight tracking.
//!
//! Every response's `X-MBX-USED-WEIGHT-1M` header is recorded so that the client can hold back before
//! the venue says 429 (the weight is per IP, shared with anything else on the machine), and so the
//! console can show the operator how close it runs to the limit. A 429 or 418 becomes a typed error
//! carrying `Retry-After`, never a generic failure that someone might retry in a loop, and it blocks
//! every request sharing the meter until `Retry-After` has passed (for a 418, the venue's rule is "no
//! REST at all"; honouring it for 429 too keeps a burst of parallel back-fills from earning the ban).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering},
    },
    time::Duration,
};

use reqwest::{StatusCode, header::HeaderMap};
use serde::de::DeserializeOwned;

use super::{
    parse::{self, ParseError},
    wire,
};
use crate::domain::{Bar, Interval, TimestampMs};

/// Why a REST call failed, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error("request to {endpoint} failed: {source}")]
    Transport {
        endpoint: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("{endpoint}: venue error {code}: {msg} (HTTP {status})")]
    Api {
        endpoint: &'static str,
        status: u16,
        code: i64,
        msg: String,
    },
    #[error("{endpoint}: rate limited (HTTP 429), retry after {retry_after:?}")]
    RateLimited {
        endpoint: &'static str,
        retry_after: Duration,
    },
    #[error("{endpoint}: IP banned (HTTP 418), no REST until {retry_after:?} has passed")]
    Banned {
        endpoint: &'static str,
        retry_after: Duration,
    },
    #[error("{endpoint}: HTTP {status}: {body}")]
    Http {
        endpoint: &'static str,
        status: u16,
        body: String,
    },
    #[error("{endpoint}: response is not the expected JSON: {source}")]
    Decode {
        endpoint: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{endpoint}: {source}")]
    Parse {
        endpoint: &'static str,
        #[source]
        source: ParseError,
    },
    #[error("invalid base URL {0:?}")]
    BadUrl(String),
}

impl RestError {
    /// Retrying the same request later can succeed (network trouble, 5xx, rate limits).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::RateLimited { .. } | Self::Banned { .. } => true,
            Self::Http { status, .. } | Self::Api { status, .. } => *status >= 500,
            Self::Decode { .. } | Self::Parse { .. } | Self::BadUrl(_) => false,
        }
    }

    /// How long to wait before retrying, if the venue said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } | Self::Banned { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// Weight accounting shared with the rest of the engine (read by the status bar), and the gate that
/// holds every request back while the venue said 429 or 418.
#[derive(Debug, Default)]
pub struct WeightMeter {
    used_1m: AtomicU32,
    /// Wall-clock minute (ms since epoch / 60 000) the `used_1m` figure belongs to.
    minute: AtomicI64,
    limit_1m: AtomicU32,
    /// No request before this wall-clock time (ms since epoch); 0 = no block.
    blocked_until_ms: AtomicI64,
    /// The block is an IP ban (418), not a rate limit (429).
    banned: AtomicBool,
}

impl WeightMeter {
    /// After a 429 or 418: no request at all (from any caller sharing this meter) until
    /// `retry_after` has passed. A later, longer block extends it; a shorter one never shortens it.
    pub fn block_for(&self, retry_after: Duration, banned: bool) {
        let until = crate::domain::now_ms() + i64::try_from(retry_after.as_millis()).unwrap_or(i64::MAX / 2);
        let before = self.blocked_until_ms.fetch_max(until, Ordering::Relaxed);
        if until >= before {
            self.banned.store(banned, Ordering::Relaxed);
        }
        if banned {
            tracing::error!(
                ?retry_after,
                "REST: IP banned by the venue (HTTP 418); no REST until Retry-After has passed"
            );
        } else {
            tracing::warn!(
                ?retry_after,
                "REST: rate limited by the venue (HTTP 429); holding requests back"
            );
        }
    }

    /// While REST is blocked: the time left and whether it is a ban.
    pub fn blocked(&self) -> Option<(Duration, bool)> {
        let left = self.blocked_until_ms.load(Ordering::Relaxed) - crate::domain::now_ms();
        (left > 0).then(|| {
            (
                Duration::from_millis(u64::try_from(left).unwrap_or(0)),
                self.banned.load(Ordering::Relaxed),
            )
        })
    }

    pub fn used(&self) -> u32 {
        let now_minute = crate::domain::now_ms() / 60_000;
        if self.minute.load(Ordering::Relaxed) == now_minute {
            self.used_1m.load(Ordering::Relaxed)
        } else {
            0
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit_1m.load(Ordering::Relaxed)
    }

    pub fn set_limit(&self, limit: u32) {
        self.limit_1m.store(limit, Ordering::Relaxed);
    }

    fn record(&self, used: u32) {
        self.minute
            .store(crate::domain::now_ms() / 60_000, Ordering::Relaxed);
        self.used_1m.store(used, Ordering::Relaxed);
    }

    /// Waits until using `weight` more keeps the minute's total at or under `share` of the limit.
    /// The venue's window is the wall-clock minute, so waiting for the next minute resets it.
    pub async fn reserve(&self, weight: u32, share: f64) {
        while let Some((left, _)) = self.blocked() {
            tokio::time::sleep(left).await;
        }
        loop {
            let limit = self.limit();
            if limit == 0 {
                return;
            }
            let budget = (f64::from(limit) * share) as u32;
            let used = self.used();
            if used + weight <= budget {
                // Count it now so concurrent callers see it before the response header arrives.
                self.used_1m.fetch_add(weight, Ordering::Relaxed);
                return;
            }
            let now = crate::domain::now_ms();
            let next_minute = (now / 60_000 + 1) * 60_000;
            let wait = u64::try_from(next_minute - now).unwrap_or(1000) + 50;
            tracing::info!(
                used,
                limit,
                wait_ms = wait,
                "REST weight budget reached, waiting for the next minute"
            );
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }
}

/// The weight `/fapi/v1/klines` costs for a given `limit` (venue docs).
pub fn klines_weight(limit: u32) -> u32 {
    match limit {
        0..100 => 1,
        100..500 => 2,
        500..=1000 => 5,
        _ => 10,
    }
}

/// Public market-data REST client.
#[derive(Debug, Clone)]
pub struct MarketRest {
    http: reqwest::Client,
    base: String,
    weight: Arc<WeightMeter>,
    /// Venue clock minus local clock, in ms, from the last `server_time` call (RTT midpoint).
    clock_offset_ms: Arc<AtomicI64>,
}

impl MarketRest {
    pub fn new(base_url: &str) -> Result<Self, RestError> {
        let base = base_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(RestError::BadUrl(base_url.to_owned()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("perpdesk/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| RestError::Transport {
                endpoint: "client",
                source,
            })?;
        Ok(Self {
            http,
            base,
            weight: Arc::new(WeightMeter::default()),
            clock_offset_ms: Arc::new(AtomicI64::new(0)),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn weight(&self) -> &Arc<WeightMeter> {
        &self.weight
    }

    async fn get<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        query: &[(&str, String)],
    ) -> Result<T, RestError> {
        let url = format!("{}{endpoint}", self.base);
        let resp = self
            .http
            .get(&url)
            .query(query)
            .send()
            .await
            .map_err(|source| RestError::Transport { endpoint, source })?;
        let status = resp.status();
        self.note_headers(resp.headers());
        let retry_after = retry_after(resp.headers());
        let body = resp
            .bytes()
            .await
            .map_err(|source| RestError::Transport { endpoint, source })?;
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.weight.block_for(retry_after, false);
            return Err(RestError::RateLimited {
                endpoint,
                retry_after,
            });
        }
        if status.as_u16() == 418 {
            self.weight.block_for(retry_after, true);
            return Err(RestError::Banned {
                endpoint,
                retry_after,
            });
        }
        if !status.is_success() {
            return Err(match serde_json::from_slice::<wire::ApiErrorBody>(&body) {
                Ok(e) => RestError::Api {
                    endpoint,
                    status: status.as_u16(),
                    code: e.code,
                    msg: e.msg,
                },
                Err(_) => RestError::Http {
                    endpoint,
                    status: status.as_u16(),
                    body: String::from_utf8_lossy(&body).chars().take(200).collect(),
                },
            });
        }
        serde_json::from_slice(&body).map_err(|source| RestError::Decode { endpoint, source })
    }

    fn note_headers(&self, headers: &HeaderMap) {
        if let Some(used) = headers
            .get("x-mbx-used-weight-1m")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u32>().ok())
        {
            self.weight.record(used);
        }
    }

    /// `GET /fapi/v1/time`; also updates the clock offset (server time against the RTT midpoint).
    pub async fn server_time(&self) -> Result<TimestampMs, RestError> {
        self.weight.reserve(1, 0.8).await;
        let sent = crate::domain::now_ms();
        let t: wire::ServerTime = self.get("/fapi/v1/time", &[]).await?;
        let received = crate::domain::now_ms();
        let midpoint = sent + (received - sent) / 2;
        self.clock_offset_ms
            .store(t.server_time - midpoint, Ordering::Relaxed);
        Ok(t.server_time)
    }

    /// The venue's clock as last sampled by [`MarketRest::server_time`].
    pub fn venue_now(&self) -> TimestampMs {
        crate::domain::now_ms() + self.clock_offset_ms.load(Ordering::Relaxed)
    }

    /// Venue clock minus local clock, ms.
    pub fn clock_offset_ms(&self) -> i64 {
        self.clock_offset_ms.load(Ordering::Relaxed)
    }

    /// The shared cell holding the clock offset, for readers elsewhere (the status bar).
    pub fn clock_offset_cell(&self) -> Arc<AtomicI64> {
        Arc::clone(&self.clock_offset_ms)
    }

    /// `GET /fapi/v1/exchangeInfo`; also sizes the weight governor from `rateLimits`.
    pub async fn exchange_info(&self) -> Result<wire::ExchangeInfo, RestError> {
        self.weight.reserve(1, 0.8).await;
        let info: wire::ExchangeInfo = self.get("/fapi/v1/exchangeInfo", &[]).await?;
        if let Some(rl) = info
            .rate_limits
            .iter()
            .find(|r| r.rate_limit_type == "REQUEST_WEIGHT" && r.interval == "MINUTE" && r.interval_num == 1)
        {
            self.weight.set_limit(rl.limit);
        }
        Ok(info)
    }

    /// `GET /fapi/v1/ticker/24hr` for every symbol (weight 40).
    pub async fn tickers_24h(&self) -> Result<Vec<wire::Ticker24hr>, RestError> {
        self.weight.reserve(40, 0.8).await;
        self.get("/fapi/v1/ticker/24hr", &[]).await
    }

    /// `GET /fapi/v1/klines`, parsed. Rows that fail to parse are an error: a hole in history is worse
    /// than a retry.
    pub async fn klines(
        &self,
        symbol: &str,
        interval: Interval,
        start: Option<TimestampMs>,
        end: Option<TimestampMs>,
        limit: u32,
    ) -> Result<Vec<Bar>, RestError> {
        self.weight.reserve(klines_weight(limit), 0.8).await;
        let mut q = vec![
            ("symbol", symbol.to_owned()),
            ("interval", interval.as_str().to_owned()),
            ("limit", limit.to_string()),
        ];
        if let Some(s) = start {
            q.push(("startTime", s.to_string()));
        }
        if let Some(e) = end {
            q.push(("endTime", e.to_string()));
        }
        let rows: Vec<wire::KlineRow> = self.get("/fapi/v1/klines", &q).await?;
        // The REST row has no closed flag: a bar is closed once the venue's clock is past its close
        // time. Every row but the last is closed (a later bar exists); the last is judged against the
        // venue clock. A stale offset errs toward "still forming", which the stream later corrects —
        // the safe direction, since a partial bar taken as closed would corrupt history.
        let now = self.venue_now();
        let n = rows.len();
        rows.iter()
            .enumerate()
            .map(|(i, r)| {
                let mut bar = parse::parse_kline_row(r, now)?;
                if i + 1 < n {
                    bar.closed = true;
                }
                Ok(bar)
            })
            .collect::<Result<Vec<_>, ParseError>>()
            .map_err(|source| RestError::Parse {
                endpoint: "/fapi/v1/klines",
                source,
            })
    }

    /// `GET /fapi/v1/premiumIndex` for every symbol.
    pub async fn premium_index(&self) -> Result<Vec<wire::PremiumIndex>, RestError> {
        self.weight.reserve(1, 0.8).await;
        self.get("/fapi/v1/premiumIndex", &[]).await
    }
}

fn retry_after(headers: &HeaderMap) -> Duration {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(60), Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kline_weights_follow_the_venue_table() {
        assert_eq!(klines_weight(1), 1);
        assert_eq!(klines_weight(99), 1);
        assert_eq!(klines_weight(100), 2);
        assert_eq!(klines_weight(499), 2);
        assert_eq!(klines_weight(500), 5);
        assert_eq!(klines_weight(1000), 5);
        assert_eq!(klines_weight(1500), 10);
    }

    #[test]
    fn a_ban_blocks_and_a_shorter_rate_limit_never_shortens_it() {
        let meter = WeightMeter::default();
        assert_eq!(meter.blocked(), None);
        meter.block_for(Duration::from_secs(30), true);
        let (left, banned) = meter.blocked().expect("blocked");
        assert!(banned && left > Duration::from_secs(25) && left <= Duration::from_secs(30));
        meter.block_for(Duration::from_secs(1), false);
        let (left, banned) = meter.blocked().expect("still blocked");
        assert!(banned, "a 429 during a ban does not turn it into a rate limit");
        assert!(left > Duration::from_secs(25), "nor shorten it");
    }

    #[test]
    fn bad_base_url_is_rejected() {
        assert!(matches!(
            MarketRest::new("fapi.binance.com"),
            Err(RestError::BadUrl(_))
        ));
    }
}
