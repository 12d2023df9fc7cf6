//! The REST side of market data: universe snapshots and history back-fills, run off the engine task.
//!
//! The engine never awaits I/O, so it asks this task for history (`FeedRequest`) and receives the
//! answers as events (`FeedEvent`). Requests run a few at a time under the weight governor of
//! `binance::rest`, and retryable failures are retried with backoff: a series whose back-fill fails
//! is reported, and the engine asks again on the next reconnect or refresh.
//!
//! The backoff is one [`Backoff`] shared by every request of the feed, not one per request: during a
//! venue outage (maintenance: 503 / -1016 on every REST call) the engine keeps re-asking for failed
//! back-fills every few seconds, and a per-request backoff restarting at 250 ms would hammer the
//! venue. With the shared one, once it is failing, requests go one at a time (a single probe), at
//! most one per backoff step (250 ms doubling to [`BACKOFF_MAX`]), and the first success reopens the
//! feed to full concurrency.

use std::{sync::Arc, time::Duration};

use tokio::{
    sync::{Mutex, MutexGuard, Semaphore, mpsc, watch},
    time::Instant,
};

use crate::{
    binance::{
        rest::{MarketRest, RestError},
        wire,
    },
    domain::{Bar, Interval, SymbolId, TimestampMs},
};

/// Klines per page. 499 keeps each page at weight 2 (500 would cost 5), so a full start-up back-fill
/// of 200 symbols × 3 timeframes stays far below the per-minute weight limit.
pub const PAGE_LIMIT: u32 = 499;

/// First step of the shared backoff after a venue-side failure.
pub const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Cap of the shared backoff: while the venue keeps failing, the feed sends at most one request per
/// this interval.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Attempts of one request before its failure is reported (the engine re-asks later).
const ATTEMPTS: u32 = 7;

/// The feed's shared backoff after retryable failures (5xx, transport errors, 429 / 418).
#[derive(Debug)]
pub struct Backoff {
    state: Mutex<BackoffState>,
}

#[derive(Debug)]
struct BackoffState {
    /// The step to wait after the next failure.
    delay: Duration,
    /// `Some` while the venue is failing: no request before this instant, and one at a time.
    not_before: Option<Instant>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            state: Mutex::new(BackoffState {
                delay: BACKOFF_MIN,
                not_before: None,
            }),
        }
    }
}

impl Backoff {
    /// Waits until a request may go. While the venue is failing, returns the held lock so that the
    /// request is the only one in flight (the probe); when healthy, returns `None` and requests run
    /// concurrently.
    async fn admit(&self) -> Option<MutexGuard<'_, BackoffState>> {
        let guard = self.state.lock().await;
        let until = guard.not_before?;
        tokio::time::sleep_until(until).await;
        Some(guard)
    }

    /// Records the outcome of a request admitted with `probe`. `Err(retry_after)` is a retryable
    /// failure (with the venue's `Retry-After`, if any).
    async fn record(
        &self,
        probe: Option<MutexGuard<'_, BackoffState>>,
        outcome: Result<(), Option<Duration>>,
    ) {
        let mut state = match probe {
            Some(g) => g,
            None => self.state.lock().await,
        };
        match outcome {
            Ok(()) => {
                state.delay = BACKOFF_MIN;
                state.not_before = None;
            }
            Err(retry_after) => {
                let now = Instant::now();
                // Several requests in flight when the venue starts failing escalate it once.
                if state.not_before.is_some_and(|t| t > now) {
                    return;
                }
                let wait = retry_after.unwrap_or(state.delay);
                state.not_before = Some(now + wait);
                state.delay = (state.delay * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Requests from the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedRequest {
    /// Fetch exchange info and 24h tickers (start-up and the hourly universe refresh).
    Universe,
    /// Fetch history for one series.
    Backfill {
        symbol: SymbolId,
        name: String,
        interval: Interval,
        from: BackfillFrom,
    },
}

/// Where a back-fill starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackfillFrom {
    /// Initial history: the most recent `bars` closed bars plus the forming one.
    Latest { bars: u32 },
    /// Gap fill after a reconnect: everything from this open time (inclusive) to now.
    Since(TimestampMs),
}

/// Answers to the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedEvent {
    Universe {
        info: Box<wire::ExchangeInfo>,
        tickers: Vec<wire::Ticker24hr>,
    },
    UniverseFailed {
        error: String,
    },
    History {
        symbol: SymbolId,
        interval: Interval,
        from: BackfillFrom,
        bars: Vec<Bar>,
    },
    BackfillFailed {
        symbol: SymbolId,
        interval: Interval,
        error: String,
    },
}

/// Spawns the feed task. `concurrency` requests run at once.
pub fn spawn<E: From<FeedEvent> + Send + 'static>(
    rest: MarketRest,
    events: mpsc::Sender<E>,
    mut shutdown: watch::Receiver<bool>,
    concurrency: usize,
) -> mpsc::UnboundedSender<FeedRequest> {
    let (tx, mut rx) = mpsc::unbounded_channel::<FeedRequest>();
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let backoff = Arc::new(Backoff::default());
    tokio::spawn(async move {
        loop {
            let req = tokio::select! {
                r = rx.recv() => match r { Some(r) => r, None => return },
                _ = shutdown.changed() => return,
            };
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                return;
            };
            let rest = rest.clone();
            let events = events.clone();
            let backoff = Arc::clone(&backoff);
            tokio::spawn(async move {
                let ev = handle(&rest, &backoff, req).await;
                drop(permit);
                let _ = events.send(E::from(ev)).await;
            });
        }
    });
    tx
}

async fn with_retry<T, F, Fut>(backoff: &Backoff, what: &str, mut f: F) -> Result<T, RestError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, RestError>>,
{
    let mut attempt = 1;
    loop {
        let probe = backoff.admit().await;
        match f().await {
            Ok(v) => {
                backoff.record(probe, Ok(())).await;
                return Ok(v);
            }
            Err(e) if e.is_retryable() => {
                backoff.record(probe, Err(e.retry_after())).await;
                if attempt >= ATTEMPTS {
                    return Err(e);
                }
                tracing::warn!(%what, error = %e, attempt, "REST request failed, retrying");
                attempt += 1;
            }
            // A refusal of this request (4xx, decode) says nothing about the venue's health.
            Err(e) => {
                drop(probe);
                return Err(e);
            }
        }
    }
}

async fn handle(rest: &MarketRest, backoff: &Backoff, req: FeedRequest) -> FeedEvent {
    match req {
        FeedRequest::Universe => {
            let result = async {
                let _ = with_retry(backoff, "time", || rest.server_time()).await?;
                let info = with_retry(backoff, "exchangeInfo", || rest.exchange_info()).await?;
                let tickers = with_retry(backoff, "ticker/24hr", || rest.tickers_24h()).await?;
                Ok::<_, RestError>((info, tickers))
            }
            .await;
            match result {
                Ok((info, tickers)) => FeedEvent::Universe {
                    info: Box::new(info),
                    tickers,
                },
                Err(e) => FeedEvent::UniverseFailed { error: e.to_string() },
            }
        }
        FeedRequest::Backfill {
            symbol,
            name,
            interval,
            from,
        } => match backfill(rest, backoff, &name, interval, from).await {
            Ok(bars) => FeedEvent::History {
                symbol,
                interval,
                from,
                bars,
            },
            Err(e) => FeedEvent::BackfillFailed {
                symbol,
                interval,
                error: e.to_string(),
            },
        },
    }
}

/// Pages through `/fapi/v1/klines`. Returns bars oldest first, unique by open time.
pub async fn backfill(
    rest: &MarketRest,
    backoff: &Backoff,
    name: &str,
    interval: Interval,
    from: BackfillFrom,
) -> Result<Vec<Bar>, RestError> {
    let mut out: Vec<Bar> = Vec::new();
    match from {
        BackfillFrom::Latest { bars } => {
            // Newest page first, then walk back with endTime until `bars` closed bars are held.
            let want = bars as usize + 1;
            let mut end: Option<TimestampMs> = None;
            while out.len() < want {
                let limit = PAGE_LIMIT.min(u32::try_from(want - out.len()).unwrap_or(PAGE_LIMIT));
                let page = with_retry(backoff, "klines", || {
                    rest.klines(name, interval, None, end, limit)
                })
                .await?;
                let Some(first) = page.first() else { break };
                end = Some(first.open_time - 1);
                let short = page.len() < limit as usize;
                let mut page = page;
                page.append(&mut out);
                out = page;
                if short {
                    break; // the symbol has no older history
                }
            }
        }
        BackfillFrom::Since(start) => {
            let mut start = start;
            loop {
                let page = with_retry(backoff, "klines", || {
                    rest.klines(name, interval, Some(start), None, PAGE_LIMIT)
                })
                .await?;
                let Some(last) = page.last() else { break };
                let next = interval.next_open(last.open_time);
                let done = page.len() < PAGE_LIMIT as usize || !last.closed;
                out.extend(page);
                if done {
                    break;
                }
                start = next;
            }
        }
    }
    out.dedup_by_key(|b| b.open_time);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Admits one request and records `outcome`; returns how long the admission waited.
    async fn step(b: &Backoff, outcome: Result<(), Option<Duration>>) -> Duration {
        let t0 = Instant::now();
        let probe = b.admit().await;
        let waited = t0.elapsed();
        b.record(probe, outcome).await;
        waited
    }

    #[tokio::test(start_paused = true)]
    async fn failures_space_requests_doubling_to_the_cap_and_a_success_resets() {
        let b = Backoff::default();
        let mut waits = Vec::new();
        for _ in 0..12 {
            waits.push(step(&b, Err(None)).await);
        }
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(
            ms,
            [
                0, 250, 500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000, 10_000, 10_000
            ]
        );
        // The venue's Retry-After wins over the step.
        let _ = step(&b, Err(Some(Duration::from_secs(30)))).await;
        assert_eq!(step(&b, Ok(())).await, Duration::from_secs(30));
        // Healthy again: no wait, and the next failure starts the ramp over.
        assert_eq!(step(&b, Err(None)).await, Duration::ZERO);
        assert_eq!(step(&b, Ok(())).await, BACKOFF_MIN);
        assert_eq!(step(&b, Ok(())).await, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn while_failing_requests_go_one_at_a_time() {
        let b = Arc::new(Backoff::default());
        step(&b, Err(None)).await;
        let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (b, in_flight, peak) = (Arc::clone(&b), Arc::clone(&in_flight), Arc::clone(&peak));
            tasks.push(tokio::spawn(async move {
                let probe = b.admit().await;
                let n = in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                peak.fetch_max(n, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                b.record(probe, Err(None)).await;
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
