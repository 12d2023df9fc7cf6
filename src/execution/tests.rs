//! The executor against the simulated exchange on 127.0.0.1 (the real signed client, the real venue
//! rules: reduce-only refusals, `-2021` immediate triggers, close-position orders), and the engine
//! side of the link. Every order the executor sends passes through a recording intent journal, so
//! the tests see exactly what went on the wire.

use std::{
    collections::BTreeMap,
    str::FromStr,
    sync::{Arc, Mutex, RwLock},
};

use proptest::prelude::*;
use rust_decimal::Decimal;
use tokio::sync::mpsc;

use super::*;
use crate::{
    binance::{
        filters::SymbolFilters,
        orders::{NewOrder, OrderClient, OrderIntent, OrderType},
        parse::{MarkUpdate, SymbolTable},
        rest::MarketRest,
        secret::SecretString,
        signed::{Credentials, SignedRest},
    },
    engine::{Trading, TradingSettings},
    positions::CloseReason,
    risk::Refusal,
    sim::{
        auth::{ApiError, DEFAULT_API_KEY, DEFAULT_API_SECRET},
        server::{self, SimClock, SimHandle, SimSettings},
        synthetic::SyntheticMarket,
    },
    strategy::{Mode, QualityScore, Signal},
};

/// A symbol of the simulator with what an `Open` needs.
#[derive(Debug, Clone)]
struct Sym {
    id: SymbolId,
    name: String,
    mark: f64,
    qty: f64,
}

struct Rig {
    sim: SimHandle,
    exec: Executor,
    reports: mpsc::Receiver<ExecReport>,
    intents: Arc<Mutex<Vec<NewOrder>>>,
    symbols: Vec<Sym>,
}

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap_or_default()
}

async fn rig() -> Rig {
    let clock = SimClock::synthetic(1.0);
    let start = clock.now();
    let market = SyntheticMarket::new(21, 8, start, start - (clock.anchor_sim() - 86_400_000));
    let sim = server::start(Arc::new(market), clock, SimSettings::default())
        .await
        .expect("sim starts");
    let (exec, reports, intents) = executor_for(&sim).await;
    let public = MarketRest::new(&sim.rest_url).expect("rest");
    let info = public.exchange_info().await.expect("exchangeInfo");
    let marks = public.premium_index().await.expect("premiumIndex");
    let mut table = SymbolTable::default();
    table.merge(&info);
    let symbols: Vec<Sym> = info
        .symbols
        .iter()
        .filter(|s| s.status == "TRADING" && s.contract_type == "PERPETUAL" && s.quote_asset == "USDT")
        .filter_map(|s| {
            let filters = SymbolFilters::from_symbol_info(s).ok()?;
            let mark: f64 = marks
                .iter()
                .find(|m| m.symbol == s.symbol)?
                .mark_price
                .parse()
                .ok()?;
            // About 3× the minimum notional, and at least two steps above the minimum quantity.
            let notional = (filters.min_notional * Decimal::from(3))
                .max(Decimal::from(20))
                .to_string()
                .parse::<f64>()
                .ok()?;
            let min_qty: f64 = filters.market_lot.min.to_string().parse().ok()?;
            Some(Sym {
                id: table.id(&s.symbol)?,
                name: s.symbol.clone(),
                mark,
                qty: (notional / mark).max(min_qty * 2.0),
            })
        })
        .take(3)
        .collect();
    assert_eq!(symbols.len(), 3, "three tradable symbols");
    Rig {
        sim,
        exec,
        reports,
        intents,
        symbols,
    }
}

/// A fresh executor on `sim` (its own client, its own symbol table): what a restarted console has.
async fn executor_for(sim: &SimHandle) -> (Executor, mpsc::Receiver<ExecReport>, Arc<Mutex<Vec<NewOrder>>>) {
    let creds = Credentials::hmac(
        &SecretString::new(DEFAULT_API_KEY.into()),
        &SecretString::new(DEFAULT_API_SECRET.into()),
    )
    .expect("credentials");
    let rest = SignedRest::new(&sim.rest_url, creds).expect("client");
    let intents = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&intents);
    let journal = move |i: &OrderIntent<'_>| {
        sink.lock().map_err(|e| e.to_string())?.push(i.order.clone());
        Ok(())
    };
    let orders = OrderClient::new(Arc::new(rest), Arc::new(journal));
    let info = MarketRest::new(&sim.rest_url)
        .expect("rest")
        .exchange_info()
        .await
        .expect("exchangeInfo");
    let mut table = SymbolTable::default();
    table.merge(&info);
    let (tx, reports) = mpsc::channel(1024);
    let exec = Executor::start(
        orders,
        &sim.rest_url,
        ExecutorSettings::new(&sim.ws_url),
        Arc::new(RwLock::new(table)),
        tx,
    )
    .await
    .expect("executor starts");
    (exec, reports, intents)
}

fn open(position: u64, s: &Sym, side: Side) -> ExecCommand {
    let (stop, target) = match side {
        Side::Long => (s.mark * 0.9, s.mark * 1.1),
        Side::Short => (s.mark * 1.1, s.mark * 0.9),
    };
    ExecCommand::Open {
        position: PositionId(position),
        symbol: s.id,
        side,
        qty: s.qty,
        mark: s.mark,
        leverage: 5,
        stop_loss: stop,
        take_profit: target,
    }
}

fn drain(rx: &mut mpsc::Receiver<ExecReport>) -> Vec<ExecReport> {
    let mut out = Vec::new();
    while let Ok(r) = rx.try_recv() {
        out.push(r);
    }
    out
}

impl Rig {
    fn position(&self, s: &Sym) -> Decimal {
        self.sim.trading.position(&s.name)
    }

    async fn open_orders(&self, s: Option<&Sym>) -> Vec<crate::binance::trade_wire::OrderResponse> {
        let client = self.exec.orders_for_tests();
        client
            .open_orders(s.map(|s| s.name.as_str()))
            .await
            .expect("openOrders")
    }

    fn take_intents(&self) -> Vec<NewOrder> {
        std::mem::take(&mut *self.intents.lock().expect("lock"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_entry_before_the_gate_opens_nor_while_it_is_unknown() {
    let mut rig = rig().await;
    let s = rig.symbols[0].clone();
    rig.exec.handle(open(1, &s, Side::Long)).await;
    let reports = drain(&mut rig.reports);
    assert!(
        matches!(&reports[..], [ExecReport::EntryFailed { error, venue_reject: false, .. }] if error.contains("not reconciled")),
        "{reports:?}"
    );
    assert!(rig.take_intents().is_empty(), "nothing was sent");

    // A failed positionRisk (three times: the client retries -1016) leaves the state unknown.
    for _ in 0..3 {
        rig.sim.trading.fail_next(
            "/fapi/v2/positionRisk",
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                -1016,
                "This service is no longer available.",
            ),
        );
    }
    rig.exec.reconcile_now().await;
    let reports = drain(&mut rig.reports);
    assert!(
        matches!(
            &reports[..],
            [ExecReport::Gate {
                state: GateState::Unknown,
                ..
            }]
        ),
        "{reports:?}"
    );
    rig.exec.handle(open(2, &s, Side::Long)).await;
    assert!(rig.take_intents().is_empty(), "unknown is never flat: no entry");
    assert!(rig.position(&s).is_zero());

    rig.exec.reconcile_now().await;
    assert!(rig.exec.gate().entries_allowed());
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_protects_on_the_venue_and_close_exits_reduce_only_and_cancels_the_rest() {
    let mut rig = rig().await;
    rig.exec.reconcile_now().await;
    let (long, short) = (rig.symbols[0].clone(), rig.symbols[1].clone());
    rig.exec.handle(open(1, &long, Side::Long)).await;
    rig.exec.handle(open(2, &short, Side::Short)).await;
    assert!(rig.position(&long) > Decimal::ZERO);
    assert!(rig.position(&short) < Decimal::ZERO);
    for (s, exit) in [(&long, "SELL"), (&short, "BUY")] {
        let open = rig.open_orders(Some(s)).await;
        let mut kinds: Vec<&str> = open.iter().map(|o| o.order_type.as_str()).collect();
        kinds.sort_unstable();
        assert_eq!(kinds, ["STOP_MARKET", "TAKE_PROFIT_MARKET"], "{}", s.name);
        for o in &open {
            assert!(o.close_position, "{o:?}");
            assert_eq!((o.working_type.as_str(), o.side.as_str()), ("MARK_PRICE", exit));
        }
    }
    let reports = drain(&mut rig.reports);
    let filled: Vec<_> = reports
        .iter()
        .filter_map(|r| match r {
            ExecReport::EntryFilled {
                position,
                qty,
                avg_price,
            } => Some((*position, *qty, *avg_price)),
            _ => None,
        })
        .collect();
    assert_eq!(filled.len(), 2, "{reports:?}");
    assert!(filled.iter().all(|(_, q, p)| *q > 0.0 && *p > 0.0), "{filled:?}");
    assert_eq!(
        reports
            .iter()
            .filter(|r| matches!(r, ExecReport::Protected { .. }))
            .count(),
        2
    );
    // Leverage and margin type once per symbol: a second open on the symbol needs no new setting
    // (and is refused while the first is live: one-way mode nets positions).
    rig.exec.handle(open(3, &long, Side::Short)).await;
    assert!(matches!(
        drain(&mut rig.reports)[..],
        [ExecReport::EntryFailed {
            venue_reject: false,
            ..
        }]
    ));

    rig.exec
        .handle(ExecCommand::Close {
            position: PositionId(1),
            reason: CloseReason::Expiry,
        })
        .await;
    assert!(rig.position(&long).is_zero());
    assert!(
        rig.open_orders(Some(&long)).await.is_empty(),
        "leftovers cancelled"
    );
    assert_eq!(
        rig.open_orders(Some(&short)).await.len(),
        2,
        "the other stays protected"
    );
    assert!(
        drain(&mut rig.reports)
            .iter()
            .any(|r| matches!(r, ExecReport::Exited { position: PositionId(1), qty, .. } if *qty > 0.0))
    );
    // A close of something never mirrored, or closed twice, sends nothing.
    rig.take_intents();
    rig.exec
        .handle(ExecCommand::Close {
            position: PositionId(1),
            reason: CloseReason::Manual,
        })
        .await;
    assert!(rig.take_intents().is_empty());
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_that_would_trigger_at_once_exits_again_reduce_only() {
    let mut rig = rig().await;
    rig.exec.reconcile_now().await;
    let s = rig.symbols[2].clone();
    // A long whose stop is above the mark: the venue refuses it with -2021.
    let cmd = ExecCommand::Open {
        position: PositionId(7),
        symbol: s.id,
        side: Side::Long,
        qty: s.qty,
        mark: s.mark,
        leverage: 3,
        stop_loss: s.mark * 1.2,
        take_profit: s.mark * 1.4,
    };
    rig.exec.handle(cmd).await;
    let reports = drain(&mut rig.reports);
    assert!(
        reports
            .iter()
            .any(|r| matches!(r, ExecReport::ProtectionFailed { position: PositionId(7), error } if error.contains("-2021"))),
        "{reports:?}"
    );
    assert!(rig.position(&s).is_zero(), "no unprotected position stays open");
    assert!(rig.open_orders(Some(&s)).await.is_empty());
    let sent = rig.take_intents();
    assert_eq!(sent.len(), 3, "entry, refused stop, exit: {sent:?}");
    assert!(sent[1].close_position && sent[2].reduce_only, "{sent:?}");
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kill_switch_flattens_every_venue_position_and_order() {
    let mut rig = rig().await;
    rig.exec.reconcile_now().await;
    let (a, b) = (rig.symbols[0].clone(), rig.symbols[1].clone());
    rig.exec.handle(open(1, &a, Side::Short)).await;
    // A position and a resting order the console did not make (another program on the account).
    let client = rig.exec.orders_for_tests();
    let qty = Decimal::try_from(b.qty).expect("qty");
    let foreign = NewOrder::market(&b.name, crate::binance::filters::OrderSide::Buy, qty);
    let filters = {
        let public = MarketRest::new(&rig.sim.rest_url).expect("rest");
        let info = public.exchange_info().await.expect("exchangeInfo");
        let s = info.symbols.iter().find(|s| s.symbol == b.name).expect("symbol");
        SymbolFilters::from_symbol_info(s).expect("filters")
    };
    let mark = Decimal::from_str(&b.mark.to_string()).expect("mark");
    client
        .place(&foreign.rounded(&filters, mark).expect("rounded"))
        .await
        .expect("foreign position");
    let limit = NewOrder::limit(
        &b.name,
        crate::binance::filters::OrderSide::Buy,
        qty,
        mark * d("0.98"),
    );
    client
        .place(&limit.rounded(&filters, mark).expect("rounded"))
        .await
        .expect("foreign order");
    assert!(!rig.position(&b).is_zero());
    rig.take_intents();

    rig.exec.handle(ExecCommand::KillSwitch).await;
    assert!(rig.position(&a).is_zero() && rig.position(&b).is_zero());
    assert!(rig.open_orders(None).await.is_empty());
    let reports = drain(&mut rig.reports);
    assert!(
        reports.iter().any(|r| matches!(
            r,
            ExecReport::Flattened {
                positions_closed: 2,
                remaining: 0,
                ..
            }
        )),
        "{reports:?}"
    );
    let sent = rig.take_intents();
    assert!(!sent.is_empty() && sent.iter().all(NewOrder::is_exit), "{sent:?}");
    rig.sim.shutdown().await;
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Open(usize, bool),
    Close(usize),
    Kill,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3_usize, any::<bool>()).prop_map(|(s, long)| Op::Open(s, long)),
        3 => (0..3_usize).prop_map(Op::Close),
        1 => Just(Op::Kill),
    ]
}

/// O4 as a property: whatever the engine asks in whatever order, every order but an entry carries
/// reduceOnly or closePosition, an entry is sent only for a symbol without a live position, every
/// close leaves its symbol flat on the venue, and the kill switch leaves nothing open.
#[test]
fn every_exit_is_reduce_only_or_close_position_whatever_the_sequence() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let rig = Mutex::new(rt.block_on(async {
        let mut rig = rig().await;
        rig.exec.reconcile_now().await;
        rig
    }));
    let next_id = Mutex::new(100_u64);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 6,
        ..ProptestConfig::default()
    });
    runner
        .run(&proptest::collection::vec(op(), 1..7), |ops| {
            let mut rig = rig.lock().expect("lock");
            let mut id = next_id.lock().expect("lock");
            rt.block_on(async {
                rig.exec.handle(ExecCommand::KillSwitch).await;
                rig.take_intents();
                drain(&mut rig.reports);
                // symbol index → position id of the live position.
                let mut live: BTreeMap<usize, u64> = BTreeMap::new();
                let mut expected_entries = 0;
                for op in &ops {
                    match *op {
                        Op::Open(s, long) => {
                            *id += 1;
                            let sym = rig.symbols[s].clone();
                            let side = if long { Side::Long } else { Side::Short };
                            rig.exec.handle(open(*id, &sym, side)).await;
                            if let std::collections::btree_map::Entry::Vacant(e) = live.entry(s) {
                                e.insert(*id);
                                expected_entries += 1;
                            }
                        }
                        Op::Close(s) => {
                            if let Some(pid) = live.remove(&s) {
                                rig.exec
                                    .handle(ExecCommand::Close {
                                        position: PositionId(pid),
                                        reason: CloseReason::Strategy,
                                    })
                                    .await;
                                let sym = rig.symbols[s].clone();
                                prop_assert!(
                                    rig.position(&sym).is_zero(),
                                    "{} not flat after its close",
                                    sym.name
                                );
                                prop_assert!(rig.open_orders(Some(&sym)).await.is_empty());
                            }
                        }
                        Op::Kill => {
                            rig.exec.handle(ExecCommand::KillSwitch).await;
                            live.clear();
                        }
                    }
                }
                rig.exec.handle(ExecCommand::KillSwitch).await;
                for s in &rig.symbols {
                    prop_assert!(rig.position(s).is_zero(), "{} not flat", s.name);
                }
                prop_assert!(rig.open_orders(None).await.is_empty());
                let sent = rig.take_intents();
                let entries: Vec<&NewOrder> = sent.iter().filter(|o| !o.is_exit()).collect();
                prop_assert_eq!(entries.len(), expected_entries, "{:?}", sent);
                for o in &entries {
                    prop_assert_eq!(o.order_type, OrderType::Market, "only entries lack an exit flag");
                }
                for o in sent.iter().filter(|o| o.order_type != OrderType::Market) {
                    prop_assert!(o.close_position, "protective orders close the position: {:?}", o);
                }
                Ok(())
            })
        })
        .expect("property holds");
    let rig = rig.into_inner().expect("lock");
    rt.block_on(rig.sim.shutdown());
}

// ---------------------------------------------------------------------------------------------------
// The engine's side of the link
// ---------------------------------------------------------------------------------------------------

fn desk_info() -> crate::binance::wire::ExchangeInfo {
    serde_json::from_str(
        r#"{"timezone":"UTC","serverTime":1,"rateLimits":[],"symbols":[{"symbol":"BTCUSDT","contractType":"PERPETUAL",
        "status":"TRADING","baseAsset":"BTC","quoteAsset":"USDT","pricePrecision":1,"quantityPrecision":3,"filters":[
        {"filterType":"PRICE_FILTER","minPrice":"0.1","maxPrice":"1000000","tickSize":"0.1"},
        {"filterType":"LOT_SIZE","minQty":"0.001","maxQty":"1000","stepSize":"0.001"},
        {"filterType":"MIN_NOTIONAL","notional":"5"}]}]}"#,
    )
    .expect("exchange info")
}

fn signal(at: i64, side: Side, stop: f64, take_profit: f64) -> Signal {
    Signal {
        symbol: SymbolId(0),
        side,
        at,
        entry: 30_000.0,
        stop,
        take_profit,
        reward_risk: 2.0,
        confluences: Vec::new(),
        evidence: Vec::new(),
        quality: QualityScore {
            components: [0.8; 6],
            total: 0.8,
        },
    }
}

#[test]
fn the_desk_mirrors_opens_closes_and_the_kill_switch_and_waits_for_the_gate() {
    let mut t = Trading::new(TradingSettings::default());
    t.on_exchange_info(&desk_info(), |n| (n == "BTCUSDT").then_some(SymbolId(0)));
    let (tx, mut rx) = mpsc::unbounded_channel();
    t.set_execution(ExecutionLink::new(tx));
    t.on_mark(&MarkUpdate {
        symbol: SymbolId(0),
        mark_price: 30_000.0,
        index_price: 30_000.0,
        funding_rate: 0.0001,
        next_funding_time: 8 * 3_600_000,
        event_time: 1_000,
    });
    let long = signal(1_000, Side::Long, 29_700.0, 30_600.0);
    assert_eq!(
        t.consider(&long, Mode::Ict, None),
        Some(Err(Refusal::NotReconciled))
    );
    assert!(rx.try_recv().is_err(), "nothing sent while the gate is closed");

    let open = ExecReport::Gate {
        state: GateState::Reconciled,
        detail: String::new(),
    };
    t.execution_mut().expect("link").on_report(&open);
    let long = signal(2_000, Side::Long, 29_700.0, 30_600.0);
    let id = t
        .consider(&long, Mode::Ict, None)
        .expect("considered")
        .expect("opened");
    match rx.try_recv() {
        Ok(ExecCommand::Open {
            position,
            side: Side::Long,
            qty,
            stop_loss,
            take_profit,
            leverage,
            ..
        }) => {
            assert_eq!(position, id);
            assert!(qty > 0.0 && leverage >= 1);
            assert_eq!((stop_loss, take_profit), (29_700.0, 30_600.0));
        }
        other => panic!("expected an Open, got {other:?}"),
    }
    // One-way mode: no short beside the live long on the same symbol.
    let short = signal(3_000, Side::Short, 30_300.0, 29_400.0);
    assert_eq!(
        t.consider(&short, Mode::Ict, None),
        Some(Err(Refusal::AlreadyOpen))
    );

    // The venue's real fill becomes the position's size and entry.
    t.book.apply_fill(id, 0.25, 30_010.0).expect("open");
    let p = t.book.get(id).expect("open");
    assert_eq!((p.qty, p.entry), (0.25, 30_010.0));

    t.pull_kill_switch(10_000);
    assert_eq!(
        rx.try_recv().ok(),
        Some(ExecCommand::Close {
            position: id,
            reason: CloseReason::KillSwitch
        })
    );
    assert_eq!(rx.try_recv().ok(), Some(ExecCommand::KillSwitch));
    assert_eq!(t.execution().map(|x| x.sent), Some(3));

    // A close the executor asks for (the venue's stop fired) goes through the book once.
    assert!(!t.close_position(id, CloseReason::StopLoss), "already closed");
}

/// The task as the console runs it: the gate opens when the user stream connects (not before), the
/// listenKey is reported, commands arrive over the channel, and fills come back as reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_task_reconciles_on_the_user_stream_and_reports_fills() {
    let rig = rig().await;
    let Rig {
        sim,
        exec,
        mut reports,
        symbols,
        ..
    } = rig;
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(exec.run(rx, stop_rx));
    let next = async |reports: &mut mpsc::Receiver<ExecReport>| {
        tokio::time::timeout(std::time::Duration::from_secs(20), reports.recv())
            .await
            .expect("a report within 20 s")
            .expect("the task runs")
    };
    let mut seen = Vec::new();
    while !seen.iter().any(|r| {
        matches!(
            r,
            ExecReport::Gate {
                state: GateState::Reconciled,
                ..
            }
        )
    }) {
        seen.push(next(&mut reports).await);
    }
    assert!(
        matches!(
            seen[0],
            ExecReport::Gate {
                state: GateState::Pending,
                ..
            }
        ),
        "{seen:?}"
    );
    assert!(seen.contains(&ExecReport::ListenKey), "{seen:?}");

    let s = symbols[0].clone();
    tx.send(open(1, &s, Side::Long)).expect("send");
    let (mut fills, mut protected) = (0, false);
    while fills < 2 || !protected {
        match next(&mut reports).await {
            ExecReport::EntryFilled { position, qty, .. } => {
                assert_eq!(position, PositionId(1));
                assert!(qty > 0.0);
                fills += 1;
            }
            ExecReport::Protected { .. } => protected = true,
            ExecReport::Gate { .. } | ExecReport::ListenKey => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // The REST answer and the user stream both reported the fill: the same size.
    assert!(sim.trading.position(&s.name) > Decimal::ZERO);
    tx.send(ExecCommand::Close {
        position: PositionId(1),
        reason: CloseReason::Manual,
    })
    .expect("send");
    loop {
        if let ExecReport::Exited { position, .. } = next(&mut reports).await {
            assert_eq!(position, PositionId(1));
            break;
        }
    }
    assert!(sim.trading.position(&s.name).is_zero());
    stop_tx.send(true).expect("stop");
    task.await.expect("the task ends on stop");
    sim.shutdown().await;
}

// ---- Adopting journal-restored positions after a restart ----

impl Rig {
    /// The console restarts: a new executor (new client, new ids) on the same venue; what the old one
    /// placed stays there.
    async fn restart(&mut self) {
        let (exec, reports, intents) = executor_for(&self.sim).await;
        self.exec = exec;
        self.reports = reports;
        self.intents = intents;
    }

    async fn sim_filters(&self, s: &Sym) -> SymbolFilters {
        let info = MarketRest::new(&self.sim.rest_url)
            .expect("rest")
            .exchange_info()
            .await
            .expect("exchangeInfo");
        let symbol = info.symbols.iter().find(|i| i.symbol == s.name).expect("listed");
        SymbolFilters::from_symbol_info(symbol).expect("filters")
    }
}

/// The `Adopt` the engine sends for a position restored from the journal, matching [`open`].
fn adopt(position: u64, s: &Sym, side: Side) -> ExecCommand {
    let ExecCommand::Open {
        qty,
        stop_loss,
        take_profit,
        ..
    } = open(position, s, side)
    else {
        unreachable!("open builds an Open")
    };
    ExecCommand::Adopt {
        position: PositionId(position),
        symbol: s.id,
        side,
        qty,
        stop_loss,
        take_profit,
    }
}

fn kinds(orders: &[crate::binance::trade_wire::OrderResponse]) -> Vec<String> {
    let mut k: Vec<String> = orders.iter().map(|o| o.order_type.clone()).collect();
    k.sort_unstable();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_position_closes_reduce_only_and_cancels_its_resting_protection() {
    let mut rig = rig().await;
    rig.exec.reconcile_now().await;
    let (long, short) = (rig.symbols[0].clone(), rig.symbols[1].clone());
    rig.exec.handle(open(1, &long, Side::Long)).await;
    rig.exec.handle(open(2, &short, Side::Short)).await;
    let held = rig.position(&long);
    assert!(held > Decimal::ZERO);

    rig.restart().await;
    // The engine restores before the user stream connects: the adoption waits for the gate.
    rig.exec.handle(adopt(1, &long, Side::Long)).await;
    rig.exec.handle(adopt(2, &short, Side::Short)).await;
    assert!(
        drain(&mut rig.reports).is_empty(),
        "nothing before the reconciliation"
    );
    rig.exec.reconcile_now().await;
    let reports = drain(&mut rig.reports);
    assert!(
        reports.iter().any(
            |r| matches!(r, ExecReport::Gate { state: GateState::Reconciled, detail }
            if detail.contains("0 not opened by this console, 2 adopted"))
        ),
        "{reports:?}"
    );
    assert!(
        reports.iter().any(
            |r| matches!(r, ExecReport::Adopted { position: PositionId(1), qty, replaced }
            if replaced.is_empty() && (*qty - held.to_string().parse::<f64>().unwrap_or(0.0)).abs() < 1e-12)
        ),
        "{reports:?}"
    );
    assert!(
        rig.take_intents().is_empty(),
        "both were fully protected: nothing sent"
    );
    assert_eq!(rig.exec.live_positions(), 2);
    assert_eq!(
        kinds(&rig.open_orders(Some(&long)).await),
        ["STOP_MARKET", "TAKE_PROFIT_MARKET"],
        "the resting protection was not taken for an orphan"
    );

    rig.exec
        .handle(ExecCommand::Close {
            position: PositionId(1),
            reason: CloseReason::Strategy,
        })
        .await;
    assert!(rig.position(&long).is_zero());
    assert!(
        rig.open_orders(Some(&long)).await.is_empty(),
        "protection cancelled"
    );
    let sent = rig.take_intents();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].reduce_only && sent[0].order_type == OrderType::Market,
        "{sent:?}"
    );
    assert!(
        drain(&mut rig.reports)
            .iter()
            .any(|r| matches!(r, ExecReport::Exited { position: PositionId(1), qty, .. } if *qty > 0.0))
    );
    assert_eq!(
        rig.open_orders(Some(&short)).await.len(),
        2,
        "the other stays protected"
    );
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_position_missing_its_stop_gets_it_placed_again() {
    let mut rig = rig().await;
    rig.exec.reconcile_now().await;
    let s = rig.symbols[0].clone();
    rig.exec.handle(open(1, &s, Side::Short)).await;
    let stop = rig
        .open_orders(Some(&s))
        .await
        .into_iter()
        .find(|o| o.order_type == "STOP_MARKET")
        .expect("a resting stop");
    rig.exec
        .orders_for_tests()
        .cancel(&s.name, &stop.client_order_id)
        .await
        .expect("cancel the stop");

    rig.restart().await;
    rig.exec.reconcile_now().await;
    // Adopted after the gate is open: the executor reconciles again to look.
    rig.exec.handle(adopt(1, &s, Side::Short)).await;
    let reports = drain(&mut rig.reports);
    assert!(
        reports.iter().any(
            |r| matches!(r, ExecReport::Adopted { position: PositionId(1), replaced, .. }
            if replaced == &["stop"])
        ),
        "{reports:?}"
    );
    let sent = rig.take_intents();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].order_type, OrderType::StopMarket);
    assert!(sent[0].close_position, "{sent:?}");
    let open = rig.open_orders(Some(&s)).await;
    assert_eq!(kinds(&open), ["STOP_MARKET", "TAKE_PROFIT_MARKET"]);
    let placed = open.iter().find(|o| o.order_type == "STOP_MARKET").expect("stop");
    assert_eq!(placed.side, "BUY");
    assert!(
        d(&placed.stop_price) > d(&stop.stop_price) * d("0.99"),
        "{placed:?}"
    );

    // The kill switch flattens it like any other.
    rig.exec.handle(ExecCommand::KillSwitch).await;
    assert!(rig.position(&s).is_zero());
    assert!(rig.open_orders(None).await.is_empty());
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_position_the_venue_no_longer_holds_is_reported_for_the_engine_to_close() {
    let mut rig = rig().await;
    rig.exec.reconcile_now().await;
    let (gone, other) = (rig.symbols[0].clone(), rig.symbols[1].clone());
    rig.exec.handle(open(1, &gone, Side::Long)).await;
    // While the console is down the position is closed on the venue, and another one is opened
    // there by hand.
    let client = rig.exec.orders_for_tests();
    let held = rig.position(&gone);
    client
        .place(&NewOrder::market(&gone.name, crate::binance::filters::OrderSide::Sell, held).reduce_only())
        .await
        .expect("closed on the venue");
    let foreign = NewOrder::market(
        &other.name,
        crate::binance::filters::OrderSide::Buy,
        d(&other.qty.to_string()),
    );
    let filters = rig.sim_filters(&other).await;
    client
        .place(
            &foreign
                .rounded(&filters, d(&other.mark.to_string()))
                .expect("rounded"),
        )
        .await
        .expect("an external position");
    assert!(rig.position(&gone).is_zero());

    rig.restart().await;
    rig.exec.handle(adopt(1, &gone, Side::Long)).await;
    rig.exec.reconcile_now().await;
    let reports = drain(&mut rig.reports);
    assert!(
        reports.iter().any(
            |r| matches!(r, ExecReport::AdoptedFlat { position: PositionId(1), mark, detail }
            if *mark > 0.0 && detail.contains("flat"))
        ),
        "{reports:?}"
    );
    assert!(
        reports.iter().any(
            |r| matches!(r, ExecReport::Gate { state: GateState::Reconciled, detail }
            if detail.contains("1 not opened by this console, 0 adopted"))
        ),
        "{reports:?}"
    );
    assert!(
        rig.take_intents().is_empty(),
        "nothing sent: the external position is not touched"
    );
    assert!(
        rig.open_orders(Some(&gone)).await.is_empty(),
        "its leftover protection was an orphan"
    );
    assert!(rig.position(&other) > Decimal::ZERO);
    assert_eq!(rig.exec.live_positions(), 0);
    // The kill switch still flattens the external position.
    rig.exec.handle(ExecCommand::KillSwitch).await;
    assert!(rig.position(&other).is_zero());
    rig.sim.shutdown().await;
}

// ---- Leverage brackets from the venue ----

/// The rig's venue symbol table (the executor builds the same one from the same `exchangeInfo`).
async fn venue_table(sim: &SimHandle) -> (crate::binance::wire::ExchangeInfo, SymbolTable) {
    let info = MarketRest::new(&sim.rest_url)
        .expect("rest")
        .exchange_info()
        .await
        .expect("exchangeInfo");
    let mut table = SymbolTable::default();
    table.merge(&info);
    (info, table)
}

fn brackets_of(reports: &[ExecReport]) -> Option<&Vec<(SymbolId, crate::risk::BracketTable)>> {
    reports.iter().find_map(|r| match r {
        ExecReport::Brackets { tables, refused } => {
            assert!(refused.is_empty(), "{refused:?}");
            Some(tables)
        }
        _ => None,
    })
}

fn gate_detail(reports: &[ExecReport]) -> &str {
    reports
        .iter()
        .find_map(|r| match r {
            ExecReport::Gate {
                state: GateState::Reconciled,
                detail,
            } => Some(detail.as_str()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("the gate opened: {reports:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn venue_brackets_reach_the_desk_and_cap_its_leverage() {
    let mut rig = rig().await;
    // A failed load never holds the gate: the conservative default stays, and the message says so.
    rig.sim.trading.fail_next(
        "/fapi/v1/leverageBracket",
        ApiError::bad_request(-1102, "A mandatory parameter was not sent."),
    );
    rig.exec.reconcile_now().await;
    assert!(rig.exec.gate().entries_allowed());
    let reports = drain(&mut rig.reports);
    assert!(
        reports
            .iter()
            .any(|r| matches!(r, ExecReport::BracketsUnavailable { .. })),
        "{reports:?}"
    );
    assert!(brackets_of(&reports).is_none());
    assert!(
        gate_detail(&reports).contains("conservative default"),
        "{reports:?}"
    );

    // The next reconciliation loads them: every symbol in one request.
    rig.exec.reconcile_now().await;
    let reports = drain(&mut rig.reports);
    let tables = brackets_of(&reports).expect("brackets reported").clone();
    let (info, table) = venue_table(&rig.sim).await;
    assert_eq!(tables.len(), table.len(), "every symbol the console knows");
    assert!(
        gate_detail(&reports).contains(&format!("leverage brackets of {} symbols loaded", tables.len())),
        "{reports:?}"
    );
    let btc = table.id("BTCUSDT").expect("BTCUSDT listed");
    let btc_table = tables
        .iter()
        .find(|(id, _)| *id == btc)
        .map(|(_, t)| t.clone())
        .expect("BTCUSDT's table");
    assert_eq!(
        btc_table,
        crate::risk::BracketTable::from_wire(&crate::sim::brackets::wire_of("BTCUSDT")).expect("table"),
        "the table the venue liquidates with"
    );
    // Loaded once: later reconciliations do not ask again.
    rig.exec.reconcile_now().await;
    assert!(brackets_of(&drain(&mut rig.reports)).is_none());

    // The desk: 20 000 of equity risking 1 % on a 0.2 % stop is ~66 700 of notional; full confidence
    // and a calm stop target 125x. BTC's real tier 2 (50 000 – 600 000) allows 100x; the
    // conservative default's tier there allows 20x.
    let mark = {
        let marks = MarketRest::new(&rig.sim.rest_url)
            .expect("rest")
            .premium_index()
            .await
            .expect("premiumIndex");
        marks
            .iter()
            .find(|m| m.symbol == "BTCUSDT")
            .and_then(|m| m.mark_price.parse::<f64>().ok())
            .expect("BTCUSDT mark")
    };
    let open_long = |with_venue_brackets: bool| {
        let mut settings = TradingSettings {
            paper_equity: 20_000.0,
            ..TradingSettings::default()
        };
        settings.risk.max_leverage = 125;
        let mut t = Trading::new(settings);
        t.on_exchange_info(&info, |n| table.id(n));
        if with_venue_brackets {
            // What the engine does with the report.
            for (symbol, bt) in tables.iter().cloned() {
                t.set_brackets(symbol, bt);
            }
        }
        t.on_mark(&MarkUpdate {
            symbol: btc,
            mark_price: mark,
            index_price: mark,
            funding_rate: 0.0001,
            next_funding_time: 8 * 3_600_000,
            event_time: 1_000,
        });
        let mut s = signal(1_000, Side::Long, mark * 0.998, mark * 1.01);
        s.symbol = btc;
        s.entry = mark;
        s.quality.total = 1.0;
        let id = t
            .consider(&s, Mode::Ict, None)
            .expect("considered")
            .expect("opened");
        let p = t.book.get(id).expect("open").clone();
        (p.leverage, p.qty * p.entry)
    };
    let (default_leverage, notional) = open_long(false);
    assert!(notional > 50_000.0 && notional < 100_000.0, "{notional}");
    assert_eq!(default_leverage, 20, "the conservative default's tier");
    let (venue_leverage, _) = open_long(true);
    assert_eq!(
        u32::from(venue_leverage),
        btc_table.max_leverage(notional),
        "capped by the venue's tier"
    );
    assert_eq!(venue_leverage, 100);
    rig.sim.shutdown().await;
}

// ---- Trailing stops on the venue ----

fn stop_orders(open: &[crate::binance::trade_wire::OrderResponse]) -> Vec<(String, Decimal, bool)> {
    open.iter()
        .filter(|o| o.order_type == "STOP_MARKET")
        .map(|o| (o.client_order_id.clone(), d(&o.stop_price), o.close_position))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trailing_stop_move_replaces_the_venue_stop_new_one_first() {
    let mut rig = rig().await;
    rig.exec.reconcile_now().await;
    let s = rig.symbols[0].clone();
    rig.exec.handle(open(1, &s, Side::Long)).await;
    let before = stop_orders(&rig.open_orders(Some(&s)).await);
    assert_eq!(before.len(), 1, "{before:?}");
    rig.take_intents();
    drain(&mut rig.reports);
    let filters = rig.sim_filters(&s).await;
    let on_grid = |p: f64| {
        filters
            .round_price(crate::binance::filters::OrderSide::Sell, d(&p.to_string()))
            .expect("on the grid")
    };

    // The move: exactly one STOP_MARKET rests, at the new price; the target is untouched.
    let moved = s.mark * 0.95;
    rig.exec
        .handle(ExecCommand::MoveStop {
            position: PositionId(1),
            stop: moved,
        })
        .await;
    let open_now = rig.open_orders(Some(&s)).await;
    let stops = stop_orders(&open_now);
    assert_eq!(stops.len(), 1, "{open_now:?}");
    assert_eq!(stops[0].1, on_grid(moved));
    assert!(stops[0].2, "still a close-position stop");
    assert_ne!(stops[0].0, before[0].0, "a new order replaced the old one");
    assert_eq!(
        open_now
            .iter()
            .filter(|o| o.order_type == "TAKE_PROFIT_MARKET")
            .count(),
        1
    );
    // The new stop's intent was journalled like every order.
    let sent = rig.take_intents();
    assert!(
        matches!(&sent[..], [o] if o.order_type == OrderType::StopMarket && o.stop_price == Some(on_grid(moved))),
        "{sent:?}"
    );
    assert!(drain(&mut rig.reports).iter().any(|r| matches!(
        r,
        ExecReport::StopMoved {
            position: PositionId(1),
            ..
        }
    )),);

    // A late (looser) move, or one of less than a tick, sends nothing.
    let same: f64 = on_grid(moved).to_string().parse().expect("f64");
    for stale in [s.mark * 0.93, same] {
        rig.exec
            .handle(ExecCommand::MoveStop {
                position: PositionId(1),
                stop: stale,
            })
            .await;
    }
    assert!(rig.take_intents().is_empty(), "no venue traffic for stale moves");

    // The venue refuses the new stop: the old one is never cancelled first, so it still rests.
    rig.sim.trading.fail_next(
        "/fapi/v1/order",
        ApiError::bad_request(-2021, "Order would immediately trigger."),
    );
    rig.exec
        .handle(ExecCommand::MoveStop {
            position: PositionId(1),
            stop: s.mark * 0.96,
        })
        .await;
    let stops_after_refusal = stop_orders(&rig.open_orders(Some(&s)).await);
    assert_eq!(stops_after_refusal, stops, "the old stop still protects");
    assert!(
        drain(&mut rig.reports)
            .iter()
            .any(|r| matches!(r, ExecReport::Problem(t) if t.contains("trailing stop not moved"))),
    );

    // A venue that allows one close-position stop per direction (-4130): the new stop is a
    // reduce-only STOP_MARKET for the position's size, and still the only stop.
    rig.sim.trading.fail_next(
        "/fapi/v1/order",
        ApiError::bad_request(
            -4130,
            "An open stop or take profit order with GTE and closePosition in the direction is existing.",
        ),
    );
    let again = s.mark * 0.97;
    rig.exec
        .handle(ExecCommand::MoveStop {
            position: PositionId(1),
            stop: again,
        })
        .await;
    let open_now = rig.open_orders(Some(&s)).await;
    let stops = stop_orders(&open_now);
    assert_eq!(stops.len(), 1, "{open_now:?}");
    assert_eq!(stops[0].1, on_grid(again));
    let o = open_now
        .iter()
        .find(|o| o.order_type == "STOP_MARKET")
        .expect("the stop");
    assert!(o.reduce_only && !o.close_position, "{o:?}");
    assert_eq!(d(&o.orig_qty), rig.position(&s));

    // The close cancels the stop that rests now.
    rig.exec
        .handle(ExecCommand::Close {
            position: PositionId(1),
            reason: CloseReason::TrailingStop,
        })
        .await;
    assert!(rig.position(&s).is_zero());
    assert!(rig.open_orders(Some(&s)).await.is_empty(), "no leftovers");
    rig.sim.shutdown().await;
}

#[test]
fn the_link_sends_one_stop_move_per_position_per_batch_and_none_after_a_close() {
    use crate::positions::{EventKind, LifecycleEvent};
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut link = ExecutionLink::new(tx);
    let moved = |position: u64, from: f64, to: f64| LifecycleEvent {
        position: PositionId(position),
        symbol: SymbolId(0),
        side: Side::Long,
        at: 1,
        kind: EventKind::TrailingStopMoved { from, to },
    };
    link.mirror(&moved(1, 100.0, 101.0));
    link.mirror(&moved(2, 50.0, 51.0));
    link.mirror(&moved(1, 101.0, 102.0));
    assert!(rx.try_recv().is_err(), "held until the batch ends");
    link.flush_moves();
    let sent: Vec<ExecCommand> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert_eq!(
        sent,
        [
            ExecCommand::MoveStop {
                position: PositionId(1),
                stop: 102.0
            },
            ExecCommand::MoveStop {
                position: PositionId(2),
                stop: 51.0
            },
        ]
    );
    // A move followed by the close in the same batch: only the close goes out.
    link.mirror(&moved(1, 102.0, 103.0));
    link.mirror(&LifecycleEvent {
        position: PositionId(1),
        symbol: SymbolId(0),
        side: Side::Long,
        at: 2,
        kind: EventKind::Closed {
            reason: CloseReason::Manual,
            exit_price: 103.0,
            pnl: 0.0,
            fees: 0.0,
            funding: 0.0,
            r_multiple: 0.0,
        },
    });
    link.flush_moves();
    let sent: Vec<ExecCommand> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert!(
        matches!(
            &sent[..],
            [ExecCommand::Close {
                position: PositionId(1),
                ..
            }]
        ),
        "{sent:?}"
    );
    link.flush_moves();
    assert!(rx.try_recv().is_err());
}
