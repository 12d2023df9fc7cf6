//! Unit tests of the journal: pragmas, every record round trip, restore, orders, migrations (v1 file
//! migrated with a backup; a failure injected mid-step), the writer (ack, batches, a bad record failing
//! alone, a full queue), and the secret guard.

use std::str::FromStr;

use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;

use super::*;
use crate::domain::Side;

const CANARY: &str = "CANARY-5e1f-journal-do-not-leak";

fn d(text: &str) -> Decimal {
    Decimal::from_str(text).expect("decimal literal")
}

fn temp() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(PAPER_FILE_NAME);
    (dir, path)
}

pub(crate) fn position(id: &str, revision: i64) -> PositionRecord {
    PositionRecord {
        position_id: id.to_owned(),
        revision,
        execution: Execution::Paper,
        symbol: "BTCUSDT".to_owned(),
        side: Side::Long,
        qty: d("0.0040"),
        entry_price: d("64123.10"),
        leverage: 7,
        take_profit: Some(d("66000.0")),
        stop_loss: Some(d("63000.00")),
        trailing: Some(TrailingStop {
            distance: d("0.0125"),
            percent: true,
            activation: Some(d("65000")),
            best_price: Some(d("65210.5")),
        }),
        expires_at_ms: Some(1_790_000_000_000),
        fees_paid: d("0.10258096"),
        funding_paid: d("-0.01300000"),
        realised_pnl: d("0.000000000001"),
        strategy: "ict".to_owned(),
        mode: "hybrid".to_owned(),
        feature_slot: Some(17),
        opened_at_ms: 1_780_000_000_000,
        last_mark_price: Some(d("64500.3")),
        last_funding_ms: Some(1_780_003_600_000),
        status: PositionStatus::Open,
        closed_at_ms: None,
        exit_price: None,
        close_reason: None,
        updated_at_ms: 1_780_000_100_000 + revision,
        monitor: Some(MonitorState {
            initial_stop: d("62900.0"),
            liquidation_price: Some(d("55001.25")),
            risk_level: "medium".to_owned(),
            take_profit_warned: false,
            stop_loss_warned: true,
            liquidation_warned: false,
            reported_mark: Some(d("64500.3")),
            run_mode: "paper".to_owned(),
        }),
    }
}

fn intent(id: &str) -> OrderIntent {
    OrderIntent {
        client_order_id: id.to_owned(),
        position_id: Some("p1".to_owned()),
        symbol: "ETHUSDT".to_owned(),
        side: OrderSide::Sell,
        order_type: "STOP_MARKET".to_owned(),
        qty: None,
        price: None,
        stop_price: Some(d("3100.25")),
        reduce_only: false,
        close_position: true,
        created_at_ms: 1_780_000_000_000,
    }
}

fn event(position_id: &str, kind: LifecycleKind, n: i64) -> LifecycleEventRecord {
    LifecycleEventRecord {
        at_ms: 1_780_000_000_000 + n,
        position_id: position_id.to_owned(),
        kind,
        payload: json!({"n": n, "mark": "64500.3", "risk": 0.42}),
    }
}

fn breaker(tier: BreakerTier) -> BreakerStateRecord {
    BreakerStateRecord {
        at_ms: 1_780_000_000_500,
        tier,
        reason: "daily loss 3.1 % >= 3 %".to_owned(),
        since_ms: 1_780_000_000_400,
        cooldown_until_ms: Some(1_780_000_900_000),
        peak_equity: d("10250.00"),
        day_start_equity: d("10000"),
        consecutive_losses: 3,
        details: json!({"rejects": 1, "reconnects": [1, 2]}),
    }
}

fn strategy_change(at_ms: i64) -> StrategyChangeRecord {
    StrategyChangeRecord {
        at_ms,
        from_set: "baseline".into(),
        to_set: "strict".into(),
        reason: "highest Q (+0.31 R)".into(),
        details: json!({"reason": {"kind": "exploit", "q": 0.31}, "max_leverage": 5}),
    }
}

fn equity(at_ms: i64, value: &str) -> EquitySnapshot {
    EquitySnapshot {
        at_ms,
        execution: Execution::Paper,
        equity: d(value),
        balance: d("10000.00"),
        unrealised_pnl: d("12.5"),
        open_positions: 2,
    }
}

#[test]
fn opens_in_wal_with_full_sync_and_busy_timeout() {
    let (_dir, path) = temp();
    let (journal, report) = Journal::open(&path).expect("opens");
    assert_eq!((report.from, report.to, report.backup), (0, SCHEMA_VERSION, None));
    let conn = journal.connection();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .expect("journal_mode");
    let sync: i64 = conn
        .pragma_query_value(None, "synchronous", |r| r.get(0))
        .expect("synchronous");
    let busy: i64 = conn
        .pragma_query_value(None, "busy_timeout", |r| r.get(0))
        .expect("busy_timeout");
    assert_eq!((mode.as_str(), sync, busy), ("wal", 2, 5000));
    journal.integrity_check().expect("a new file is intact");
    assert_eq!(journal.schema_version().expect("version"), SCHEMA_VERSION);
}

#[test]
fn every_record_round_trips_with_its_exact_digits() {
    let (_dir, path) = temp();
    let (mut journal, _) = Journal::open(&path).expect("opens");
    let signal = SignalRecord {
        at_ms: 1_780_000_000_000,
        symbol: "SOLUSDT".to_owned(),
        side: Side::Short,
        mode: "ict".to_owned(),
        entry: d("145.2300"),
        stop: d("147.0"),
        take_profit: d("140.10"),
        quality: 0.8125,
        outcome: "rejected: risk: daily loss".to_owned(),
        features: vec![0.5, -1.25, f32::MIN_POSITIVE],
        rule_hits: json!([{"OrderBlock": {"top": 146.0, "bottom": 145.5}}]),
        model_version: Some("mlp-2026-11-30".to_owned()),
    };
    let p = position("p1", 3);
    let fill = FillRecord {
        symbol: "ETHUSDT".to_owned(),
        trade_id: 9_000_000_001,
        client_order_id: "pd-1-entry".to_owned(),
        side: OrderSide::Buy,
        price: d("3120.55"),
        qty: d("0.150"),
        fee: d("0.18723300"),
        fee_asset: "USDT".to_owned(),
        realised_pnl: d("0"),
        maker: false,
        at_ms: 1_780_000_000_100,
    };
    let records: Vec<JournalRecord> = vec![
        signal.clone().into(),
        p.clone().into(),
        event("p1", LifecycleKind::Created, 1).into(),
        intent("pd-1-sl").into(),
        fill.clone().into(),
        fill.clone().into(), // a replayed fill is stored once
        equity(5, "10012.50").into(),
        breaker(BreakerTier::Caution).into(),
        strategy_change(6).into(),
    ];
    for r in &records {
        journal.write(r).expect("writes");
    }
    assert_eq!(journal.signals().expect("signals"), vec![signal]);
    assert_eq!(journal.position("p1").expect("read"), Some(p.clone()));
    let back = journal.position("p1").expect("read").expect("present");
    assert_eq!(back.qty.to_string(), "0.0040", "scale kept");
    assert_eq!(back.realised_pnl.to_string(), "0.000000000001");
    assert_eq!(
        journal.events_for("p1").expect("events"),
        vec![event("p1", LifecycleKind::Created, 1)]
    );
    assert_eq!(journal.fills().expect("fills"), vec![fill]);
    assert_eq!(
        journal.last_equity().expect("equity"),
        Some(equity(5, "10012.50"))
    );
    assert_eq!(
        journal.last_breaker_state().expect("breaker"),
        Some(breaker(BreakerTier::Caution))
    );
    assert_eq!(
        journal.strategy_changes().expect("strategy changes"),
        vec![strategy_change(6)]
    );
    let order = journal.order("pd-1-sl").expect("order").expect("present");
    assert_eq!(
        (order.intent, order.state),
        (intent("pd-1-sl"), OrderState::Submitting)
    );
}

#[test]
fn restore_numbers_after_the_largest_id_and_remembers_signals() {
    let (_dir, path) = temp();
    let (mut journal, _) = Journal::open(&path).expect("opens");
    let mut closed = position("12", 3);
    closed.status = PositionStatus::Closed;
    closed.realised_pnl = d("-4.5");
    let mut other = position("9", 1);
    other.status = PositionStatus::Closed;
    other.realised_pnl = d("1.25");
    for r in [
        JournalRecord::from(position("3", 1)),
        closed.into(),
        other.into(),
        position("x-100", 1).into(),
    ] {
        journal.write(&r).expect("writes");
    }
    let restored = journal.restore().expect("restores");
    assert_eq!(restored.max_position_number, 12);
    assert_eq!(restored.closed_realised_pnl, d("-3.25"));
    assert_eq!(
        restored
            .open_positions
            .iter()
            .map(|p| p.position_id.as_str())
            .collect::<Vec<_>>(),
        ["3", "x-100"]
    );
}

#[test]
fn restore_returns_open_positions_in_their_last_state() {
    let (_dir, path) = temp();
    let (mut journal, _) = Journal::open(&path).expect("opens");
    assert_eq!(journal.restore().expect("restores"), RestoredState::default());
    let mut closed = position("p2", 1);
    closed.status = PositionStatus::Closed;
    closed.closed_at_ms = Some(1_780_000_500_000);
    closed.exit_price = Some(d("63000.00"));
    closed.close_reason = Some("stop_loss".to_owned());
    for r in [
        JournalRecord::from(position("p1", 1)),
        position("p1", 4).into(),
        position("p1", 2).into(), // late and older: must not win
        position("p2", 0).into(),
        closed.into(),
        position("p3", 1).into(),
        equity(1, "9990").into(),
        equity(2, "10001.25").into(),
        breaker(BreakerTier::Caution).into(),
        breaker(BreakerTier::Halt).into(),
        intent("pd-a").into(),
        intent("pd-b").into(),
        OrderUpdate {
            client_order_id: "pd-a".to_owned(),
            state: OrderState::New,
            venue_order_id: Some(42),
            reason: None,
            at_ms: 1_780_000_000_001,
        }
        .into(),
    ] {
        journal.write(&r).expect("writes");
    }
    let restored = journal.restore().expect("restores");
    assert_eq!(
        restored.open_positions,
        vec![position("p1", 4), position("p3", 1)]
    );
    assert_eq!(restored.breaker, Some(breaker(BreakerTier::Halt)));
    assert_eq!(restored.last_equity, Some(equity(2, "10001.25")));
    let submitting: Vec<&str> = restored
        .submitting_orders
        .iter()
        .map(|o| o.intent.client_order_id.as_str())
        .collect();
    assert_eq!(submitting, ["pd-b"]);
    // Ids "p1".."p3" are not the book's numbers; only the closed position's P&L counts.
    assert_eq!(restored.max_position_number, 0);
    assert_eq!(restored.closed_realised_pnl, d("0.000000000001"));
    assert!(restored.last_signal_ms.is_empty());
    assert_eq!(
        journal.submitting_orders().expect("orders"),
        restored.submitting_orders
    );
    let a = journal.order("pd-a").expect("read").expect("present");
    assert_eq!((a.state, a.venue_order_id), (OrderState::New, Some(42)));
}

#[test]
fn orders_refuse_duplicates_unknown_updates_and_bad_ids() {
    let (_dir, path) = temp();
    let (mut journal, _) = Journal::open(&path).expect("opens");
    journal.write(&intent("pd-1").into()).expect("first");
    assert!(matches!(
        journal.write(&intent("pd-1").into()),
        Err(JournalError::DuplicateClientOrderId { id }) if id == "pd-1"
    ));
    let update = OrderUpdate {
        client_order_id: "pd-404".to_owned(),
        state: OrderState::Filled,
        venue_order_id: None,
        reason: None,
        at_ms: 0,
    };
    assert!(matches!(
        journal.write(&update.into()),
        Err(JournalError::UnknownOrder { .. })
    ));
    for bad in ["", "has space", "x".repeat(37).as_str(), "é"] {
        assert!(
            matches!(
                journal.write(&intent(bad).into()),
                Err(JournalError::InvalidClientOrderId { .. })
            ),
            "{bad:?}"
        );
    }
    check_client_order_id("x/Y:z.0_-9").expect("every allowed character");
    assert_eq!(journal.submitting_orders().expect("orders").len(), 1);
}

#[test]
fn credentials_are_refused_and_never_reach_the_file() {
    let (_dir, path) = temp();
    let (mut journal, _) = Journal::open(&path).expect("opens");
    let mut leaky = event("p1", LifecycleKind::Closed, 1);
    for (payload, field) in [
        (json!({"apiSecret": CANARY}), "payload.apiSecret"),
        (
            json!({"order": {"X-MBX-APIKEY": CANARY}}),
            "payload.order.X-MBX-APIKEY",
        ),
        (
            json!({"list": [1, {"discord_token": CANARY}]}),
            "payload.list[1].discord_token",
        ),
        (
            json!({"url": format!("https://discord.com/api/webhooks/1/{CANARY}")}),
            "payload.url",
        ),
        (
            json!({"query": format!("symbol=BTCUSDT&signature={CANARY}")}),
            "payload.query",
        ),
    ] {
        leaky.payload = payload;
        let err = journal.write(&leaky.clone().into()).expect_err("refused");
        assert!(
            matches!(&err, JournalError::SecretInPayload { field: f, .. } if f == field),
            "{err}"
        );
        assert!(!err.to_string().contains(CANARY) && !format!("{err:?}").contains(CANARY));
    }
    let mut change = strategy_change(1);
    change.details = json!({"source": {"api_key": CANARY}});
    assert!(matches!(
        journal.write(&change.into()),
        Err(JournalError::SecretInPayload { field, .. }) if field == "details.source.api_key"
    ));
    let mut closed = position("p1", 1);
    closed.close_reason = Some(format!("Bot {CANARY}"));
    assert!(matches!(
        journal.write(&closed.into()),
        Err(JournalError::SecretInPayload { field, .. }) if field == "close_reason"
    ));
    // Ordinary texts that merely resemble the patterns pass.
    journal
        .write(&event("p1", LifecycleKind::RiskLevelChanged, 2).into())
        .expect("plain payload");
    let mut plain = position("p2", 1);
    plain.close_reason = Some("bot restarted: kill switch".to_owned());
    journal.write(&plain.into()).expect("plain reason");
    drop(journal);
    for file in std::fs::read_dir(path.parent().expect("dir")).expect("list") {
        let bytes = std::fs::read(file.expect("entry").path()).expect("read");
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(text.matches(CANARY).count(), 0);
    }
}

#[test]
fn a_v1_file_migrates_to_latest_after_a_backup() {
    let (dir, path) = temp();
    {
        let (journal, report) = Journal::open_at_version(&path, 1, None).expect("a v1 file");
        assert_eq!(report.to, 1);
        // A v1 row: no model_version column exists yet.
        journal
            .connection()
            .execute(
                "INSERT INTO signals (at_ms, symbol, side, mode, entry, stop, take_profit, quality, outcome, \
                 features, rule_hits) VALUES (1, 'BTCUSDT', 'LONG', 'ict', '1.50', '1.0', '2.5', 0.7, \
                 'accepted', '[0.5]', '{}')",
                [],
            )
            .expect("v1 insert");
        let has_column = journal
            .connection()
            .prepare("SELECT model_version FROM signals")
            .is_ok();
        assert!(!has_column, "v1 has no model_version");
    }
    let (mut journal, report) = Journal::open(&path).expect("migrates");
    assert_eq!((report.from, report.to), (1, SCHEMA_VERSION));
    let backup = report.backup.expect("a backup before migrating");
    assert!(
        backup.starts_with(dir.path()) && backup.exists(),
        "{}",
        backup.display()
    );
    let signals = journal.signals().expect("signals");
    assert_eq!(signals.len(), 1);
    assert_eq!(
        (signals[0].entry.to_string(), signals[0].model_version.clone()),
        ("1.50".to_owned(), None)
    );
    journal
        .write(&intent("pd-after").into())
        .expect("the v2 schema works");
    journal
        .write(&strategy_change(2).into())
        .expect("the v4 table exists");
    assert_eq!(journal.strategy_changes().expect("read").len(), 1);
    journal.integrity_check().expect("intact");
    let old = rusqlite::Connection::open(&backup).expect("backup opens");
    let version: i64 = old
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    let rows: i64 = old
        .query_row("SELECT count(*) FROM signals", [], |r| r.get(0))
        .expect("count");
    assert_eq!((version, rows), (1, 1));
    // Opening again migrates nothing and takes no backup.
    drop(journal);
    let (_j, again) = Journal::open(&path).expect("reopens");
    assert_eq!(again.backup, None);
}

#[test]
fn a_failure_mid_step_leaves_the_old_version_and_a_backup() {
    let (_dir, path) = temp();
    drop(Journal::open_at_version(&path, 1, None).expect("a v1 file"));
    let fail = FailPoint {
        version: 2,
        after_statements: 1,
    };
    let err = Journal::open_at_version(&path, SCHEMA_VERSION, Some(fail)).expect_err("fails");
    let JournalError::Migration { from, to, backup, .. } = &err else {
        panic!("unexpected {err}");
    };
    assert_eq!((*from, *to), (1, 2));
    let backup = backup.clone().expect("backup taken");
    assert!(backup.exists());
    assert!(err.to_string().contains("still at version 1"), "{err}");
    let conn = rusqlite::Connection::open(&path).expect("opens");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, 1);
    // The first statement of the failed step (the new column) was rolled back with it.
    assert!(conn.prepare("SELECT model_version FROM signals").is_err());
    drop(conn);
    let (journal, report) = Journal::open(&path).expect("a later run migrates");
    assert_eq!((report.from, report.to), (1, SCHEMA_VERSION));
    journal.integrity_check().expect("intact");
}

#[test]
fn a_newer_file_is_refused() {
    let (_dir, path) = temp();
    drop(Journal::open(&path).expect("opens"));
    let conn = rusqlite::Connection::open(&path).expect("opens");
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .expect("bump");
    drop(conn);
    let err = Journal::open(&path).expect_err("refused");
    assert!(matches!(err, JournalError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1));
    assert!(!err.is_recoverable());
    assert!(matches!(
        Journal::open_read_only(&path),
        Err(JournalError::NewerSchema { .. })
    ));
}

#[test]
fn the_writer_acks_durable_writes_and_a_bad_record_fails_alone() {
    let (_dir, path) = temp();
    let (journal, _) = Journal::open(&path).expect("opens");
    let writer = JournalWriter::spawn(journal, WriterConfig::default()).expect("spawns");
    let handle = writer.handle();
    handle
        .write_durable_blocking(intent("pd-1"))
        .expect("durable intent");
    // Committed: a second connection sees it at once.
    let reader = Journal::open_read_only(&path).expect("reader");
    assert_eq!(reader.submitting_orders().expect("orders").len(), 1);
    for n in 0..100 {
        handle
            .write_blocking(event("p1", LifecycleKind::PriceUpdated, n))
            .expect("queued");
    }
    let duplicate = handle.write_durable_blocking(intent("pd-1"));
    assert!(matches!(
        duplicate,
        Err(JournalError::DuplicateClientOrderId { .. })
    ));
    handle.flush_blocking().expect("flushed");
    assert_eq!(reader.events_for("p1").expect("events").len(), 100);
    let stats = handle.stats();
    assert_eq!((stats.written, stats.failed, stats.dropped), (101, 1, 0));
    writer.close();
    assert!(matches!(
        handle.write_blocking(event("p1", LifecycleKind::Closed, 0)),
        Err(JournalError::Closed)
    ));
}

#[test]
fn try_write_never_waits_and_counts_what_a_full_queue_drops() {
    let (_dir, path) = temp();
    let (journal, _) = Journal::open(&path).expect("opens");
    let writer = JournalWriter::spawn(
        journal,
        WriterConfig {
            queue: 2,
            max_batch: 1,
        },
    )
    .expect("spawns");
    let handle = writer.handle();
    // Another connection holds the write lock, so the writer stalls on its first record.
    let blocker = rusqlite::Connection::open(&path).expect("opens");
    blocker.execute_batch("BEGIN IMMEDIATE").expect("locks");
    let results: Vec<_> = (0..10)
        .map(|n| handle.try_write(event("p1", LifecycleKind::PriceUpdated, n)))
        .collect();
    let dropped = results
        .iter()
        .filter(|r| matches!(r, Err(JournalError::QueueFull { capacity: 2 })))
        .count();
    assert!(dropped >= 7, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || r.as_ref().is_err_and(JournalError::is_recoverable))
    );
    blocker.execute_batch("COMMIT").expect("unlocks");
    handle.flush_blocking().expect("flushed");
    let stats = handle.stats();
    assert_eq!(stats.dropped, dropped as u64);
    assert_eq!(stats.written, 10 - dropped as u64);
    writer.close();
}

#[tokio::test]
async fn the_async_api_batches_concurrent_writers() {
    let (_dir, path) = temp();
    let (journal, _) = Journal::open(&path).expect("opens");
    let writer = JournalWriter::spawn(journal, WriterConfig::default()).expect("spawns");
    let mut tasks = Vec::new();
    for t in 0..8 {
        let handle = writer.handle();
        tasks.push(tokio::spawn(async move {
            for n in 0..50 {
                handle
                    .write_durable(event(&format!("p{t}"), LifecycleKind::PriceUpdated, n))
                    .await
                    .expect("durable");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let handle = writer.handle();
    handle.write(equity(1, "1")).await.expect("queued");
    handle.flush().await.expect("flushed");
    let stats = handle.stats();
    assert_eq!(stats.written, 401);
    assert!(stats.batches <= stats.written);
    writer.shutdown().await;
    let reader = Journal::open_read_only(&path).expect("reader");
    assert_eq!(reader.events_after(0, 1000).expect("events").len(), 400);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Batched and one-at-a-time writing give the same journal, and whatever the arrival order of
    /// position snapshots, the highest revision is what a restart sees.
    #[test]
    fn batches_equal_single_writes_and_the_newest_revision_wins(
        writes in prop::collection::vec((0..4_usize, 0..20_i64), 1..40),
        cuts in prop::collection::vec(1..8_usize, 1..10),
    ) {
        let (_dir, path) = temp();
        let (mut single, _) = Journal::open(&path).expect("opens");
        let (_dir2, path2) = temp();
        let (mut batched, _) = Journal::open(&path2).expect("opens");
        let records: Vec<JournalRecord> = writes
            .iter()
            .flat_map(|(p, rev)| {
                let id = format!("p{p}");
                [
                    JournalRecord::from(position(&id, *rev)),
                    event(&id, LifecycleKind::PriceUpdated, *rev).into(),
                ]
            })
            .collect();
        for r in &records {
            single.write(r).expect("writes");
        }
        let mut rest = records.as_slice();
        for cut in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (head, tail) = rest.split_at((*cut).min(rest.len()));
            batched.write_all(head.iter()).expect("batch");
            rest = tail;
        }
        let a = single.restore().expect("restore");
        prop_assert_eq!(&a, &batched.restore().expect("restore"));
        prop_assert_eq!(
            single.events_after(0, 1000).expect("events"),
            batched.events_after(0, 1000).expect("events")
        );
        for p in &a.open_positions {
            let newest = writes
                .iter()
                .filter(|(i, _)| format!("p{i}") == p.position_id)
                .map(|(_, rev)| *rev)
                .max();
            prop_assert_eq!(Some(p.revision), newest);
            prop_assert_eq!(p, &position(&p.position_id, p.revision));
        }
    }
}
