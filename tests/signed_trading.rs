//! The signed side end to end, in process: the real `SignedRest` / `OrderClient` / user-stream code
//! against the simulated exchange on 127.0.0.1.
//!
//! * order round trip: leverage, margin type, MARKET / LIMIT / `STOP_MARKET` / `TAKE_PROFIT_MARKET`
//!   with reduce-only and close-position, query, open orders, cancel, positionRisk, account, balance;
//! * authentication failures with the venue's codes (-2015, -1022, -1021, -2014) and the clock gate;
//! * O1 unknown outcomes: 3 venue variants (exists / appears later / never) × seeded runs, 503
//!   "Unknown error" or a timeout, exactly one order per clientOrderId at the venue in every run;
//! * O6 start-up reconciliation scenarios and orphaned reduce-only orders;
//! * the user data stream: events of our orders, then a listenKey expiry → rotation → reconnect;
//! * no log line carries `signature=` or the secret (S1 for this path).

use std::{
    collections::BTreeMap,
    io::Write,
    str::FromStr,
    sync::{Arc, Mutex},
    time::Duration,
};

use perpdesk::{
    binance::{
        filters::{OrderSide, SymbolFilters},
        orders::{
            LocalBook, MarginType, NewOrder, OrderClient, OrderError, OrderIntent, Placed, PositionSide,
            ReconState, ReconciliationGate, ResolvePolicy,
        },
        rest::MarketRest,
        secret::SecretString,
        signed::{Credentials, SignedError, SignedRest},
        user_stream::{
            BookChange, KeeperSettings, KeeperStats, OrderOrigin, UserBook, UserEvent, UserStreamConfig,
            UserStreamEvent, run_keeper, run_user_stream,
        },
    },
    sim::{
        auth::{ApiError, DEFAULT_API_KEY, DEFAULT_API_SECRET},
        server::{self, SimClock, SimHandle, SimSettings},
        synthetic::SyntheticMarket,
        trading::{FaultVenue, OrderFault},
    },
};
use rust_decimal::Decimal;
use tokio::sync::{mpsc, watch};

async fn sim() -> SimHandle {
    sim_with(SimSettings::default()).await
}

async fn sim_with(settings: SimSettings) -> SimHandle {
    let clock = SimClock::synthetic(1.0);
    let start = clock.now();
    let market = SyntheticMarket::new(11, 12, start, start - (clock.anchor_sim() - 86_400_000));
    server::start(Arc::new(market), clock, settings)
        .await
        .expect("sim starts")
}

fn creds(secret: &str) -> Credentials {
    Credentials::hmac(
        &SecretString::new(DEFAULT_API_KEY.into()),
        &SecretString::new(secret.into()),
    )
    .expect("valid credentials")
}

async fn client(sim: &SimHandle) -> OrderClient {
    client_with(sim, Duration::from_secs(10)).await
}

async fn client_with(sim: &SimHandle, timeout: Duration) -> OrderClient {
    let rest = SignedRest::new(&sim.rest_url, creds(DEFAULT_API_SECRET))
        .expect("client")
        .with_timeout(timeout)
        .expect("client");
    rest.sync_clock().await.expect("clock sync");
    assert!(rest.trading_allowed(), "loopback clock must be in sync");
    let journal = |_: &OrderIntent<'_>| Ok(());
    OrderClient::new(Arc::new(rest), Arc::new(journal))
}

/// A tradable symbol, its filters and its mark price.
async fn market(sim: &SimHandle) -> (String, SymbolFilters, Decimal) {
    let rest = MarketRest::new(&sim.rest_url).expect("rest");
    let info = rest.exchange_info().await.expect("exchangeInfo");
    let s = info
        .symbols
        .iter()
        .find(|s| s.status == "TRADING" && s.contract_type == "PERPETUAL" && s.quote_asset == "USDT")
        .expect("a tradable symbol");
    let filters = SymbolFilters::from_symbol_info(s).expect("filters");
    let marks = rest.premium_index().await.expect("premiumIndex");
    let mark = marks
        .iter()
        .find(|m| m.symbol == s.symbol)
        .map(|m| Decimal::from_str(&m.mark_price).expect("decimal"))
        .expect("mark");
    (s.symbol.clone(), filters, mark)
}

/// A quantity worth about `usdt` at `mark`.
fn qty_for(filters: &SymbolFilters, mark: Decimal, usdt: u32) -> Decimal {
    // At least twice MIN_NOTIONAL, so a limit 10 % away still passes.
    let usdt = Decimal::from(usdt).max(filters.min_notional * Decimal::from(2));
    let raw = usdt / mark;
    filters
        .floor_qty(
            perpdesk::binance::filters::OrderKind::Market,
            raw.max(filters.lot.min),
        )
        .expect("qty")
}

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).expect("decimal")
}

#[tokio::test]
async fn signed_order_round_trip() {
    let sim = sim().await;
    let c = client(&sim).await;
    let (symbol, filters, mark) = market(&sim).await;
    c.set_leverage(&symbol, 10).await.expect("leverage");
    c.set_margin_type(&symbol, MarginType::Isolated)
        .await
        .expect("isolated");
    c.set_margin_type(&symbol, MarginType::Isolated)
        .await
        .expect("-4046 'no need to change' is success");
    assert!(
        !c.hedge_mode().await.expect("position mode"),
        "one-way by default"
    );

    // Entry at market.
    let qty = qty_for(&filters, mark, 200);
    let entry = NewOrder::market(&symbol, OrderSide::Buy, qty)
        .rounded(&filters, mark)
        .expect("rounded");
    let placed = c.place(&entry).await.expect("market order");
    let Placed::Accepted(o) = placed else {
        panic!("accepted: {placed:?}")
    };
    assert_eq!(o.status, "FILLED");
    assert_eq!(d(&o.executed_qty), qty);
    assert!(!o.orig_qty.contains('E') && !o.price.contains('E'));
    assert_eq!(sim.trading.position(&symbol), qty);
    let risk = c.position_risk().await.expect("positionRisk");
    let p = risk.iter().find(|p| p.symbol == symbol).expect("position");
    assert_eq!(d(&p.position_amt), qty);
    assert_eq!(p.margin_type, "isolated");
    assert_eq!(p.leverage, "10");
    assert!(d(&p.liquidation_price) > Decimal::ZERO && d(&p.liquidation_price) < mark);

    // Protective exits: stop below, take-profit above, both on the mark price.
    let sl = NewOrder::stop_market(&symbol, OrderSide::Sell, mark * d("0.8"), None)
        .rounded(&filters, mark)
        .expect("sl");
    let tp = NewOrder::take_profit_market(&symbol, OrderSide::Sell, mark * d("1.25"), Some(qty))
        .reduce_only()
        .rounded(&filters, mark)
        .expect("tp");
    let sl = c.place(&sl).await.expect("stop").order().cloned().expect("order");
    let tp = c.place(&tp).await.expect("tp").order().cloned().expect("order");
    assert_eq!(
        (sl.status.as_str(), sl.order_type.as_str()),
        ("NEW", "STOP_MARKET")
    );
    assert!(sl.close_position && tp.reduce_only);
    assert_eq!(tp.working_type, "MARK_PRICE");
    // A stop that would fire at once is refused.
    let bad = NewOrder::stop_market(&symbol, OrderSide::Sell, mark * d("1.1"), None)
        .rounded(&filters, mark)
        .expect("rounded");
    let err = c.place(&bad).await.expect_err("-2021");
    assert_eq!(err.code(), Some(-2021));

    // A resting LIMIT far from the market: query, list, cancel.
    let limit = NewOrder::limit(&symbol, OrderSide::Buy, qty, mark * d("0.97"))
        .rounded(&filters, mark)
        .expect("limit");
    let id = c.next_client_order_id();
    let rest_order = c.place_with_id(&limit, &id).await.expect("limit");
    assert_eq!(rest_order.order().map(|o| o.status.as_str()), Some("NEW"));
    assert_eq!(
        c.query_order(&symbol, &id).await.expect("query").client_order_id,
        id
    );
    let open = c.open_orders(Some(&symbol)).await.expect("open");
    assert_eq!(open.len(), 3, "{open:?}");
    let cancelled = c.cancel(&symbol, &id).await.expect("cancel");
    assert_eq!(cancelled.status, "CANCELED");
    // Cancelling again: -2011, resolved by query to the real (cancelled) state.
    assert_eq!(c.cancel(&symbol, &id).await.expect("resolved").status, "CANCELED");

    // Hedge mode cannot be switched with a position open.
    let err = c.set_hedge_mode(true).await.expect_err("-4068");
    assert_eq!(err.code(), Some(-4068));

    // Exit: reduce-only market; a second one has nothing to reduce (-2022).
    let exit = NewOrder::market(&symbol, OrderSide::Sell, qty).reduce_only();
    assert_eq!(
        c.place(&exit)
            .await
            .expect("exit")
            .order()
            .map(|o| o.status.as_str()),
        Some("FILLED")
    );
    assert_eq!(sim.trading.position(&symbol), Decimal::ZERO);
    let err = c.place(&exit).await.expect_err("-2022");
    assert_eq!(err.code(), Some(-2022));

    let account = c.account().await.expect("account");
    let balance = c.balance().await.expect("balance");
    assert_eq!(balance[0].asset, "USDT");
    assert!(d(&account.total_wallet_balance) < d("10000"), "fees were paid");
    // Order-count headers reached the governor.
    let usage = c.rest().usage();
    assert!(
        usage
            .iter()
            .any(|u| u.kind == perpdesk::binance::governor::LimitKind::Orders && u.used >= 5)
    );
    assert_eq!(
        sim.trading
            .stats
            .auth_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    sim.shutdown().await;
}

/// An API key registered as an Ed25519 public key: the client signs with the private key (PKCS#8
/// PEM), the simulator verifies with the public key; an order is placed, queried and cancelled. A
/// signature by another Ed25519 key is refused with -1022.
#[tokio::test]
async fn ed25519_signed_order_round_trip() {
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    let pem = |seed: u8| {
        SecretString::new(
            ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
                .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
                .expect("pem")
                .to_string(),
        )
    };
    let registered = ed25519_dalek::SigningKey::from_bytes(&[42; 32]).verifying_key();
    let mut settings = SimSettings::default();
    settings.trading.credentials = vec![perpdesk::sim::auth::SimCredential::ed25519(
        "ed25519-key",
        registered,
    )];
    let sim = sim_with(settings).await;
    let (symbol, filters, mark) = market(&sim).await;
    let key = SecretString::new("ed25519-key".into());
    let rest = SignedRest::new(
        &sim.rest_url,
        Credentials::ed25519(&key, &pem(42)).expect("credentials"),
    )
    .expect("client");
    rest.sync_clock().await.expect("clock sync");
    let c = OrderClient::new(Arc::new(rest), Arc::new(|_: &OrderIntent<'_>| Ok(())));
    let order = NewOrder::limit(
        &symbol,
        OrderSide::Buy,
        qty_for(&filters, mark, 50),
        mark * d("0.9"),
    )
    .rounded(&filters, mark)
    .expect("rounded");
    let id = c.next_client_order_id();
    let placed = c.place_with_id(&order, &id).await.expect("placed");
    assert_eq!(placed.order().map(|o| o.status.as_str()), Some("NEW"));
    assert_eq!(
        c.query_order(&symbol, &id).await.expect("query").client_order_id,
        id
    );
    assert_eq!(c.cancel(&symbol, &id).await.expect("cancel").status, "CANCELED");
    assert_eq!(c.balance().await.expect("balance")[0].asset, "USDT");
    assert_eq!(sim.trading.orders_with_client_id(&id), 1);

    // The same API key, signed by a different private key.
    let impostor = SignedRest::new(
        &sim.rest_url,
        Credentials::ed25519(&key, &pem(43)).expect("credentials"),
    )
    .expect("client");
    impostor.sync_clock().await.expect("clock sync");
    let err = OrderClient::new(Arc::new(impostor), Arc::new(|_: &OrderIntent<'_>| Ok(())))
        .place(&order)
        .await
        .expect_err("wrong key");
    assert_eq!(err.code(), Some(-1022));
    assert_eq!(
        sim.trading
            .stats
            .auth_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn authentication_failures_carry_the_venue_codes() {
    let sim = sim().await;
    let (symbol, filters, mark) = market(&sim).await;
    let order = NewOrder::limit(
        &symbol,
        OrderSide::Buy,
        qty_for(&filters, mark, 50),
        mark * d("0.9"),
    )
    .rounded(&filters, mark)
    .expect("rounded");

    // Not synced: refused locally, nothing sent.
    let rest = Arc::new(SignedRest::new(&sim.rest_url, creds(DEFAULT_API_SECRET)).expect("client"));
    let c = OrderClient::new(Arc::clone(&rest), Arc::new(|_: &OrderIntent<'_>| Ok(())));
    let err = c.place(&order).await.expect_err("gate shut");
    assert!(
        matches!(err, OrderError::Venue(SignedError::ClockUnsynced)),
        "{err}"
    );
    assert_eq!(
        rest.stats()
            .signed_sent
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    // Wrong secret: -1022, never retried.
    let wrong = Arc::new(SignedRest::new(&sim.rest_url, creds("not-the-secret")).expect("client"));
    wrong.sync_clock().await.expect("sync");
    let c = OrderClient::new(Arc::clone(&wrong), Arc::new(|_: &OrderIntent<'_>| Ok(())));
    let err = c.place(&order).await.expect_err("bad signature");
    assert_eq!(err.code(), Some(-1022));
    assert_eq!(
        wrong
            .stats()
            .signed_sent
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    // Unknown key: -2015.
    let other = Credentials::hmac(
        &SecretString::new("someone-else".into()),
        &SecretString::new(DEFAULT_API_SECRET.into()),
    )
    .expect("creds");
    let stranger = Arc::new(SignedRest::new(&sim.rest_url, other).expect("client"));
    stranger.sync_clock().await.expect("sync");
    let err = OrderClient::new(stranger, Arc::new(|_: &OrderIntent<'_>| Ok(())))
        .balance()
        .await
        .expect_err("unknown key");
    assert_eq!(err.code(), Some(-2015));

    // Raw requests: no key header (-2014), a stale timestamp (-1021).
    let http = reqwest::Client::new();
    let resp = http
        .get(format!("{}/fapi/v2/balance?timestamp=1", sim.rest_url))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["code"], -2014);
    let signer =
        perpdesk::binance::sign::Signer::hmac(&SecretString::new(DEFAULT_API_SECRET.into())).expect("s");
    let stale = perpdesk::domain::now_ms() - 10_000;
    let q = signer.signed_query(&format!("recvWindow=5000&timestamp={stale}"), "");
    let resp = http
        .get(format!("{}/fapi/v2/balance?{q}", sim.rest_url))
        .header("X-MBX-APIKEY", DEFAULT_API_KEY)
        .send()
        .await
        .expect("send");
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["code"], -1021);
    sim.shutdown().await;
}

/// O1: 3 venue variants × 100 seeded runs; 503 "Unknown error" or a timeout; the resolver queries
/// by client order id before anything is resent; exactly one order per id at the venue in every
/// run (300/300). Paused clock: the timeouts, reply delays, propagation delays and resolver waits
/// pass in tokio's virtual time, so the 300 runs take well under a second of it per run.
#[tokio::test(start_paused = true)]
async fn unknown_outcomes_leave_exactly_one_order_per_client_id() {
    const RUNS: u64 = 100;
    // The ~2 000 requests of the 300 runs happen within a few wall-clock seconds. The rate limits are
    // counted on the wall clock, which a paused tokio clock does not move, so a governor pacing them
    // would spin instead of wait: both sides get budgets far above what the runs need (R1 tests
    // the real limits).
    let sim = sim_with(SimSettings {
        weight_limit: 1_000_000,
        ..SimSettings::default()
    })
    .await;
    let (symbol, filters, mark) = market(&sim).await;
    let c = client_with(&sim, Duration::from_millis(400))
        .await
        .with_resolve_policy(ResolvePolicy {
            attempts: 4,
            delay: Duration::from_millis(40),
        });
    let limit = |rate_limit_type: &str, limit| perpdesk::binance::wire::RateLimit {
        rate_limit_type: rate_limit_type.into(),
        interval: "MINUTE".into(),
        interval_num: 1,
        limit,
    };
    c.rest().set_governor(
        perpdesk::binance::governor::RateGovernor::from_rate_limits(&[
            limit("REQUEST_WEIGHT", 1_000_000),
            limit("ORDERS", 1_000_000),
        ])
        .expect("governor"),
    );
    let order = NewOrder::limit(
        &symbol,
        OrderSide::Buy,
        qty_for(&filters, mark, 10),
        mark * d("0.9"),
    )
    .rounded(&filters, mark)
    .expect("rounded");
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut runs = 0;
    for variant in ["exists", "appears_later", "never"] {
        for seed in 0..RUNS {
            let venue = match variant {
                "exists" => FaultVenue::Exists,
                // 0..990 ms: sometimes inside the resolver's window (found), sometimes after it
                // (not found → resent with the same id → -4116 → resolved).
                "appears_later" => FaultVenue::AppearsAfter(Duration::from_millis((seed % 34) * 30)),
                _ => FaultVenue::Never,
            };
            // Even seeds: an immediate 503 "Unknown error"; odd seeds: no answer within the timeout.
            // (Seed parity and the appearance delay vary independently: 34 is even, so over 100
            // seeds each delay meets both kinds of failure.)
            let reply_delay = if seed % 2 == 0 {
                Duration::ZERO
            } else {
                Duration::from_millis(700)
            };
            sim.trading.push_order_fault(OrderFault { venue, reply_delay });
            let id = c.next_client_order_id();
            let mut placed = c.place_with_id(&order, &id).await.expect("resolved");
            let mut sends = 1;
            while let Placed::NotPlaced { .. } = placed {
                assert!(sends < 4, "{variant}/{seed}: never placed");
                placed = c.place_with_id(&order, &id).await.expect("resend");
                sends += 1;
            }
            let kind = match placed {
                Placed::Accepted(_) => "accepted",
                Placed::Resolved(_) => "resolved",
                Placed::NotPlaced { .. } => "not placed",
            };
            *outcomes.entry(kind).or_default() += 1;
            assert_eq!(
                sim.trading.orders_with_client_id(&id),
                1,
                "{variant}/{seed}: exactly one order for {id}"
            );
            // The venue's view of the id: the first POST, then no POST that is not preceded by a
            // GET by origClientOrderId since the previous POST.
            let seen = sim.trading.order_requests(&id);
            assert_eq!(
                seen.first(),
                Some(&reqwest::Method::POST),
                "{variant}/{seed}: {seen:?}"
            );
            assert!(
                seen.windows(2)
                    .all(|w| !(w[0] == reqwest::Method::POST && w[1] == reqwest::Method::POST)),
                "{variant}/{seed}: resent without a query: {seen:?}"
            );
            assert!(
                seen.get(1) == Some(&reqwest::Method::GET),
                "{variant}/{seed}: the unknown outcome was not queried first: {seen:?}"
            );
            runs += 1;
            // Leave no resting order behind: the simulator's matcher checks every open order on
            // each (virtual) 100 ms tick.
            assert_eq!(c.cancel(&symbol, &id).await.expect("cancel").status, "CANCELED");
        }
    }
    assert_eq!(runs, 300);
    // Every path was taken: found by the resolver, and placed by a resend after "not placed".
    assert!(outcomes.get("resolved").is_some_and(|n| *n > 0), "{outcomes:?}");
    assert!(outcomes.get("accepted").is_some_and(|n| *n > 0), "{outcomes:?}");
    sim.shutdown().await;
}

/// O6: the start-up reconciliation scenarios against the simulator.
#[tokio::test]
async fn startup_reconciliation_scenarios() {
    let sim = sim().await;
    let (symbol, filters, mark) = market(&sim).await;
    let ours = client(&sim).await;
    // "Someone else" on the same account: the operator by hand, or the console before a restart.
    let other = client(&sim).await;
    let qty = qty_for(&filters, mark, 100);

    // Orders the journal believes open.
    let filled_id = ours.next_client_order_id();
    let cancelled_id = ours.next_client_order_id();
    let partial_id = ours.next_client_order_id();
    let far = NewOrder::limit(&symbol, OrderSide::Buy, qty * Decimal::from(2), mark * d("0.96"))
        .rounded(&filters, mark)
        .expect("limit");
    for id in [&filled_id, &cancelled_id, &partial_id] {
        ours.place_with_id(&far, id).await.expect("placed");
    }
    // While "down": one fills, one is cancelled by hand, one fills halfway; a position is opened
    // elsewhere... (external), the journal's ETH-style position was closed at the venue.
    assert!(sim.trading.admin_fill(&filled_id, qty * Decimal::from(2)));
    other.cancel(&symbol, &cancelled_id).await.expect("cancel");
    assert!(sim.trading.admin_fill(&partial_id, qty));
    let mut local = LocalBook::default();
    for id in [&filled_id, &cancelled_id, &partial_id] {
        local.open_orders.push((symbol.clone(), id.clone()));
    }
    local
        .positions
        .insert(("GHOSTUSDT".into(), PositionSide::Both), d("1.5"));
    // A reduce-only take-profit for a position that is then closed elsewhere: an orphan.
    let tp = NewOrder::take_profit_market(&symbol, OrderSide::Sell, mark * d("1.3"), Some(qty)).reduce_only();
    let tp_id = other.next_client_order_id();
    other
        .place_with_id(&tp.rounded(&filters, mark).expect("tp"), &tp_id)
        .await
        .expect("tp");

    let mut gate = ReconciliationGate::new();
    assert!(
        !gate.entries_allowed(),
        "no entry before the first reconciliation"
    );

    // positionRisk fails: unknown, never flat.
    sim.trading.fail_next(
        "/fapi/v2/positionRisk",
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            -1016,
            "This service is no longer available.",
        ),
    );
    sim.trading.fail_next(
        "/fapi/v2/positionRisk",
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            -1016,
            "This service is no longer available.",
        ),
    );
    sim.trading.fail_next(
        "/fapi/v2/positionRisk",
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            -1016,
            "This service is no longer available.",
        ),
    );
    let err = gate
        .reconcile(&ours, &local)
        .await
        .expect_err("positionRisk error");
    assert!(!gate.entries_allowed());
    assert!(
        matches!(gate.state(), ReconState::Unknown { reason } if reason.contains("failed")),
        "{err}"
    );

    let report = gate.reconcile(&ours, &local).await.expect("reconciled");
    assert!(gate.entries_allowed());
    // Filled while down: the venue position is the fill; the journal had none → external.
    let venue_qty = sim.trading.position(&symbol);
    assert_eq!(venue_qty, qty * Decimal::from(3), "2 filled + 1 partial");
    assert_eq!(report.positions.len(), 1);
    assert_eq!(report.positions[0].qty, venue_qty);
    assert_eq!(report.external.len(), 1);
    let finished: BTreeMap<_, _> = report
        .finished_orders
        .iter()
        .map(|(id, o)| (id.clone(), o.as_ref().map(|o| o.status.clone())))
        .collect();
    assert_eq!(finished.get(&filled_id), Some(&Some("FILLED".to_owned())));
    assert_eq!(finished.get(&cancelled_id), Some(&Some("CANCELED".to_owned())));
    let partial = report
        .open_orders
        .iter()
        .find(|o| o.client_order_id == partial_id)
        .expect("partial still open");
    assert_eq!(
        (partial.status.as_str(), d(&partial.executed_qty)),
        ("PARTIALLY_FILLED", qty)
    );
    assert_eq!(
        report.closed_while_down,
        vec![("GHOSTUSDT".to_owned(), PositionSide::Both)]
    );
    assert!(
        report.orphans_cancelled.is_empty(),
        "the TP still has its position"
    );

    // The position is closed elsewhere; after the next reconnect the TP is an orphan.
    other
        .place(&NewOrder::market(&symbol, OrderSide::Sell, venue_qty).reduce_only())
        .await
        .expect("close");
    gate.invalidate("user stream reconnected");
    assert!(!gate.entries_allowed());
    let report = gate
        .reconcile(&ours, &LocalBook::default())
        .await
        .expect("reconciled");
    assert_eq!(report.orphans_cancelled, vec![tp_id.clone()]);
    assert!(report.positions.is_empty());
    assert_eq!(
        ours.query_order(&symbol, &tp_id).await.expect("query").status,
        "CANCELED"
    );
    sim.shutdown().await;
}

/// The user data stream over the simulator: our order's events, the account update, then a
/// listenKey expiry → one rotation → reconnect (the consumer's cue to reconcile).
#[tokio::test]
async fn user_data_stream_events_and_rotation() {
    let sim = sim().await;
    let (symbol, filters, mark) = market(&sim).await;
    let c = client(&sim).await;
    let rest = Arc::clone(c.rest());
    let stats = Arc::new(KeeperStats::default());
    let (rot_tx, rot_rx) = mpsc::channel(8);
    let (key_tx, key_rx) = watch::channel(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let keeper = {
        let (rest, stats, stop) = (Arc::clone(&rest), Arc::clone(&stats), stop_rx.clone());
        tokio::spawn(async move {
            run_keeper(
                rest.as_ref(),
                KeeperSettings::default(),
                rot_rx,
                key_tx,
                &stats,
                stop,
            )
            .await;
        })
    };
    let (ev_tx, mut ev_rx) = mpsc::channel(256);
    let stream = tokio::spawn(run_user_stream(
        UserStreamConfig::new(&sim.ws_url),
        key_rx,
        rot_tx,
        ev_tx,
        stop_rx,
    ));
    assert_eq!(
        next(&mut ev_rx).await,
        UserStreamEvent::Connected { reconnects: 0 }
    );

    let qty = qty_for(&filters, mark, 100);
    let id = c.next_client_order_id();
    let mut book = UserBook::new();
    book.track(perpdesk::binance::orders::TrackedOrder::new(&id, qty));
    c.place_with_id(&NewOrder::market(&symbol, OrderSide::Buy, qty), &id)
        .await
        .expect("placed");
    let mut saw_account = false;
    while book
        .order(&id)
        .map(perpdesk::binance::orders::TrackedOrder::filled)
        != Some(qty)
        || !saw_account
    {
        if let UserStreamEvent::Event(ev) = next(&mut ev_rx).await {
            if let BookChange::Account { .. } = book.apply(&ev).expect("applies") {
                saw_account = true;
            }
            if let UserEvent::OrderTradeUpdate(u) = &ev {
                assert_eq!(u.order.client_order_id, id);
            }
        }
    }
    assert_eq!(book.position(&symbol, PositionSide::Both), qty);
    assert!(book.mismatches().is_empty(), "{:?}", book.mismatches());
    assert_eq!(
        perpdesk::binance::user_stream::OrderOrigin::of(&id),
        OrderOrigin::Client
    );

    // The venue expires the key: listenKeyExpired → one rotation → a new connection.
    sim.trading.expire_listen_key();
    let mut saw_expiry = false;
    loop {
        match next(&mut ev_rx).await {
            UserStreamEvent::Event(UserEvent::ListenKeyExpired(_)) => saw_expiry = true,
            UserStreamEvent::Connected { reconnects }
                if stats.rotations.load(std::sync::atomic::Ordering::Relaxed) == 1 =>
            {
                assert!(reconnects >= 1);
                break;
            }
            _ => {}
        }
    }
    assert!(saw_expiry, "the venue announced the expiry");
    assert_eq!(stats.rotations.load(std::sync::atomic::Ordering::Relaxed), 1);
    stop_tx.send(true).expect("stop");
    keeper.await.expect("keeper");
    stream.await.expect("stream");
    sim.shutdown().await;
}

async fn next(rx: &mut mpsc::Receiver<UserStreamEvent>) -> UserStreamEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event within 10 s")
        .expect("stream task alive")
}

/// Captures log output for the secret-canary check.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// S1 for the signed path: with TRACE logging, a full order cycle, a rejected signature and an unknown
/// outcome log neither `signature=` nor the secret nor the API key.
#[tokio::test]
async fn logs_never_carry_signatures_or_keys() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let sim = sim().await;
    let (symbol, filters, mark) = market(&sim).await;
    let c = client(&sim).await;
    let qty = qty_for(&filters, mark, 50);
    let order = NewOrder::limit(&symbol, OrderSide::Buy, qty, mark * d("0.9"))
        .rounded(&filters, mark)
        .expect("rounded");
    let id = c.next_client_order_id();
    c.place_with_id(&order, &id).await.expect("placed");
    c.cancel(&symbol, &id).await.expect("cancelled");
    sim.trading.push_order_fault(OrderFault {
        venue: FaultVenue::Exists,
        reply_delay: Duration::ZERO,
    });
    c.place(&order).await.expect("resolved");
    let wrong = SignedRest::new(&sim.rest_url, creds("CANARY-secret-5e1b")).expect("client");
    wrong.sync_clock().await.expect("sync");
    let err = OrderClient::new(Arc::new(wrong), Arc::new(|_: &OrderIntent<'_>| Ok(())))
        .place(&order)
        .await
        .expect_err("-1022");
    tracing::error!(error = %err, debug = ?err, "logged like the engine would");
    let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(
        text.contains("resolving by query") && text.contains("logged like the engine would"),
        "the capture works: {text}"
    );
    for needle in [
        "signature=",
        DEFAULT_API_SECRET,
        "CANARY-secret-5e1b",
        DEFAULT_API_KEY,
    ] {
        assert_eq!(text.matches(needle).count(), 0, "{needle} leaked into the logs");
    }
    sim.shutdown().await;
}

/// R2 / R3 on the signed path: a simulator whose clock runs 5 s ahead (reads work, trading is refused
/// before anything is sent); a 418 stops all REST until Retry-After without sending, with one alert;
/// a 429 is honoured and the client resumes.
#[tokio::test]
async fn clock_skew_ban_and_rate_limit() {
    use std::sync::atomic::Ordering::Relaxed;
    // 5 s ahead of this host.
    let now = perpdesk::domain::now_ms();
    let clock = SimClock::new(now, now + 5_000, 1.0, None);
    let market = SyntheticMarket::new(11, 12, clock.now(), 86_400_000);
    let skewed = server::start(Arc::new(market), clock, SimSettings::default())
        .await
        .expect("sim");
    let rest = Arc::new(SignedRest::new(&skewed.rest_url, creds(DEFAULT_API_SECRET)).expect("client"));
    let offset = rest.sync_clock().await.expect("sync");
    assert!((4_000..6_000).contains(&offset), "offset {offset}");
    assert!(!rest.trading_allowed());
    let c = OrderClient::new(Arc::clone(&rest), Arc::new(|_: &OrderIntent<'_>| Ok(())));
    // Reads are stamped in venue time, so they pass.
    c.balance().await.expect("balance with a corrected timestamp");
    let sent = rest.stats().signed_sent.load(Relaxed);
    let err = c
        .place(&NewOrder::market("BTCUSDT", OrderSide::Buy, d("0.01")))
        .await
        .expect_err("skew");
    assert!(
        matches!(err, OrderError::Venue(SignedError::ClockSkew { .. })),
        "{err}"
    );
    assert_eq!(rest.stats().signed_sent.load(Relaxed), sent, "nothing sent");
    assert_eq!(skewed.trading.stats.orders_created.load(Relaxed), 0);
    skewed.shutdown().await;

    let sim = sim().await;
    let c = client(&sim).await;
    let teapot = axum::http::StatusCode::from_u16(418).expect("418");
    sim.trading.fail_next(
        "/fapi/v2/balance",
        ApiError::new(
            teapot,
            -1003,
            "Way too many requests; IP banned until 1. Please use the websocket.",
        ),
    );
    let err = c.balance().await.expect_err("banned");
    assert!(matches!(err.code(), Some(-1003)));
    let sent = c.rest().stats().signed_sent.load(Relaxed);
    let err = c.account().await.expect_err("no REST during the ban");
    assert!(
        matches!(err, OrderError::Venue(SignedError::Banned { .. })),
        "{err}"
    );
    assert_eq!(
        c.rest().stats().signed_sent.load(Relaxed),
        sent,
        "nothing sent while banned"
    );
    assert!(c.rest().take_ban_alert().is_some(), "one alert");
    assert!(c.rest().take_ban_alert().is_none(), "only one");
    // Retry-After: 1 has passed: requests flow again.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    c.account().await.expect("after the ban");

    sim.trading.fail_next(
        "/fapi/v2/balance",
        ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            -1003,
            "Too many requests.",
        ),
    );
    assert_eq!(c.balance().await.expect_err("429").code(), Some(-1003));
    // The next request waits out Retry-After inside the governor, then succeeds.
    c.balance().await.expect("after Retry-After");
    assert_eq!(c.rest().stats().rate_limited.load(Relaxed), 1);
    sim.shutdown().await;
}

/// Hedge mode end to end: `positionSide` legs, exits without `reduceOnly`.
#[tokio::test]
async fn hedge_mode_orders() {
    let sim = sim().await;
    let (symbol, filters, mark) = market(&sim).await;
    let c = client(&sim).await;
    c.set_hedge_mode(true).await.expect("hedge");
    c.set_hedge_mode(true)
        .await
        .expect("-4059 'no need to change' is success");
    assert!(c.hedge_mode().await.expect("mode"));
    let qty = qty_for(&filters, mark, 100);
    c.place(&NewOrder::market(&symbol, OrderSide::Buy, qty).with_position_side(PositionSide::Long))
        .await
        .expect("long leg");
    c.place(&NewOrder::market(&symbol, OrderSide::Sell, qty).with_position_side(PositionSide::Short))
        .await
        .expect("short leg");
    let risk = c.position_risk().await.expect("risk");
    let legs: BTreeMap<_, _> = risk
        .iter()
        .filter(|p| p.symbol == symbol)
        .map(|p| (p.position_side.clone(), d(&p.position_amt)))
        .collect();
    assert_eq!(legs.get("LONG"), Some(&qty));
    assert_eq!(legs.get("SHORT"), Some(&-qty));
    // An exit built as reduce-only goes out without reduceOnly in hedge mode, and closes the leg.
    c.place(
        &NewOrder::market(&symbol, OrderSide::Sell, qty)
            .reduce_only()
            .with_position_side(PositionSide::Long),
    )
    .await
    .expect("exit long");
    assert_eq!(sim.trading.position(&symbol), -qty);
    sim.shutdown().await;
}
