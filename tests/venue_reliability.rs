//! The rest of the `RELIABILITY.md` §9 plan for the signed REST side, in process against the
//! simulated exchange on 127.0.0.1:
//!
//! * R1 — 1 000 concurrent signed requests of weight 1, 5 and 20 through the real `SignedRest` and
//!   its governor (sized from the simulator's `exchangeInfo.rateLimits`) against a venue enforcing
//!   2 400 weight per window: no 429, and the weight the venue counted never above 80 % (1 920).
//!   Documented scale: the venue's one-minute window is compressed to one second (60×), limit and
//!   weights unchanged, so the ~8 700 weight of the burst takes about five windows, not five minutes.
//! * R5 — a GET the venue answers only after 10 s, with a 5 s client timeout: at most three attempts
//!   with backoff, about 16 s in all (paused clock), then an error the caller sees.

use std::{
    sync::{Arc, atomic::Ordering::Relaxed},
    time::Duration,
};

use perpdesk::{
    binance::{
        errors::ErrorClass,
        governor::RateGovernor,
        orders::{OrderClient, OrderError, OrderIntent},
        rest::MarketRest,
        secret::SecretString,
        signed::{Credentials, MAX_ATTEMPTS, SignedError, SignedRest},
    },
    sim::{
        auth::{DEFAULT_API_KEY, DEFAULT_API_SECRET},
        server::{self, SimClock, SimHandle, SimSettings},
        synthetic::SyntheticMarket,
    },
};

async fn sim(settings: SimSettings) -> SimHandle {
    let clock = SimClock::synthetic(1.0);
    let start = clock.now();
    let market = SyntheticMarket::new(11, 6, start, start - (clock.anchor_sim() - 86_400_000));
    server::start(Arc::new(market), clock, settings)
        .await
        .expect("sim starts")
}

fn creds() -> Credentials {
    Credentials::hmac(
        &SecretString::new(DEFAULT_API_KEY.into()),
        &SecretString::new(DEFAULT_API_SECRET.into()),
    )
    .expect("valid credentials")
}

fn orders(rest: Arc<SignedRest>) -> OrderClient {
    OrderClient::new(rest, Arc::new(|_: &OrderIntent<'_>| Ok(())))
}

/// R1: the burst. Weights cycle 1 (open orders of one symbol), 5 (balance), 20 (liquidation orders of
/// one symbol).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_one_thousand_requests_meets_no_429_and_stays_under_80_percent() {
    const REQUESTS: usize = 1_000;
    let sim = sim(SimSettings {
        weight_limit: 2_400,
        weight_window: Duration::from_secs(1),
        ..SimSettings::default()
    })
    .await;
    // The governor is sized from what the venue publishes, as the console does.
    let info = MarketRest::new(&sim.rest_url)
        .expect("rest")
        .exchange_info()
        .await
        .expect("exchangeInfo");
    let weight = info
        .rate_limits
        .iter()
        .find(|l| l.rate_limit_type == "REQUEST_WEIGHT")
        .expect("a weight limit");
    assert_eq!(
        (weight.interval.as_str(), weight.interval_num, weight.limit),
        ("SECOND", 1, 2_400)
    );
    let symbol = info.symbols[0].symbol.clone();
    let rest = SignedRest::new(&sim.rest_url, creds()).expect("client");
    rest.set_governor(RateGovernor::from_rate_limits(&info.rate_limits).expect("governor"));
    rest.sync_clock().await.expect("clock sync");
    let rest = Arc::new(rest);
    let client = Arc::new(orders(Arc::clone(&rest)));

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..REQUESTS {
        let client = Arc::clone(&client);
        let symbol = symbol.clone();
        tasks.spawn(async move {
            let r = match i % 3 {
                0 => client.open_orders(Some(&symbol)).await.map(|_| 1),
                1 => client.balance().await.map(|_| 5),
                _ => client.force_orders(Some(&symbol)).await.map(|_| 20),
            };
            r.map_err(|e| format!("request {i}: {e}"))
        });
    }
    let mut total = 0_u32;
    let mut failures = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("task") {
            Ok(w) => total += w,
            Err(e) => failures.push(e),
        }
    }
    let (peak, rejected) = sim.weight_peak_and_rejections();
    sim.shutdown().await;
    eprintln!("R1: {total} weight in {REQUESTS} requests; venue peak {peak} per window, {rejected} × 429");
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(total, 334 + 333 * 5 + 333 * 20, "every request answered");
    assert_eq!(rejected, 0, "the venue refused requests with 429");
    assert_eq!(rest.stats().rate_limited.load(Relaxed), 0);
    assert!(
        peak <= 1_920,
        "the venue counted {peak} weight in one window, above 80 % of 2 400"
    );
    // The burst needed several windows: the governor really held requests back.
    assert!(peak >= 1_000, "peak {peak}: the burst never came near the cap");
}

/// R5: every attempt of a GET meets a venue that answers after 10 s; the client gives up on each
/// after 5 s, retries at most twice with backoff and then surfaces the timeout. Paused clock: the
/// times below are tokio's virtual time, deterministic, not measurements.
#[tokio::test(start_paused = true)]
async fn a_get_that_never_answers_in_time_is_retried_twice_then_surfaced() {
    let sim = sim(SimSettings::default()).await;
    let rest = SignedRest::new(&sim.rest_url, creds())
        .expect("client")
        .with_timeout(Duration::from_secs(5))
        .expect("client");
    rest.sync_clock().await.expect("clock sync");
    let client = orders(Arc::new(rest));
    for _ in 0..5 {
        sim.trading
            .delay_next("/fapi/v2/balance", Duration::from_secs(10));
    }
    let before = sim.trading.stats.signed_requests.load(Relaxed);
    let started = tokio::time::Instant::now();
    let err = client.balance().await.expect_err("every attempt times out");
    let elapsed = started.elapsed();
    let attempts = sim.trading.stats.signed_requests.load(Relaxed) - before;
    assert!(
        matches!(&err, OrderError::Venue(e @ SignedError::Transport { .. }) if e.class() == ErrorClass::Retry),
        "{err}"
    );
    assert_eq!(attempts, u64::from(MAX_ATTEMPTS), "first try + 2 retries");
    assert!(attempts <= 4, "≤ 3 retries");
    // 3 × 5 s timeouts + 0.2 s + 0.4 s backoff.
    assert!(
        elapsed >= Duration::from_millis(15_600),
        "{elapsed:?}: backoff skipped"
    );
    assert!(elapsed <= Duration::from_secs(20), "{elapsed:?}");
    // The venue is healthy again: the same call succeeds.
    assert!(client.balance().await.is_ok());
    sim.shutdown().await;
}
