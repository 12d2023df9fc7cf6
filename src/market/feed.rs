//! The REST side of market data: universe snapshots and history back-fills, run off the engine task.
//!
//! The engine never awaits I/O, so it asks this task for history (`FeedRequest`) and receives the
//! answers as events (`FeedEvent`). Requests run a few at a time under the weight governor of
//! `binance::rest`, and retryable failures are retried with backoff: a series whose back-fill fails
//! is reported, and the engine asks again on the next reconnect or refresh.

use std::{sync::Arc, time::Duration};

use tokio::sync::{Semaphore, mpsc, watch};

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
            tokio::spawn(async move {
                let ev = handle(&rest, req).await;
                drop(permit);
                let _ = events.send(E::from(ev)).await;
            });
        }
    });
    tx
}

async fn with_retry<T, F, Fut>(what: &str, mut f: F) -> Result<T, RestError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, RestError>>,
{
    let mut delay = Duration::from_millis(250);
    let mut attempt = 0;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retryable() && attempt < 6 => {
                let wait = e.retry_after().unwrap_or(delay);
                tracing::warn!(%what, error = %e, ?wait, "REST request failed, retrying");
                tokio::time::sleep(wait).await;
                delay = (delay * 2).min(Duration::from_secs(10));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn handle(rest: &MarketRest, req: FeedRequest) -> FeedEvent {
    match req {
        FeedRequest::Universe => {
            let result = async {
                let _ = with_retry("time", || rest.server_time()).await?;
                let info = with_retry("exchangeInfo", || rest.exchange_info()).await?;
                let tickers = with_retry("ticker/24hr", || rest.tickers_24h()).await?;
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
        } => match backfill(rest, &name, interval, from).await {
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
                let page = with_retry("klines", || rest.klines(name, interval, None, end, limit)).await?;
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
                let page = with_retry("klines", || {
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
