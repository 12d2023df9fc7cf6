//! `perpdesk journal export`, the real binary, on a journal written through the library: the exact CSV
//! text (header, digits kept, RFC 4180 quoting of JSON payloads, both time columns), the `--live`
//! journal, and the errors (no journal, a journal from a newer build) with exit code 2.

// Test code: a failed unwrap is a failed test with its location.
#![allow(clippy::unwrap_used)]

use std::{path::Path, process::Command, str::FromStr};

use perpdesk::{
    domain::Side,
    journal::{
        Execution, Journal, JournalRecord, LifecycleEventRecord, LifecycleKind, PositionRecord,
        PositionStatus, StrategyChangeRecord, journal_path,
    },
};
use rust_decimal::Decimal;
use serde_json::json;

fn d(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

fn position(id: &str, execution: Execution) -> PositionRecord {
    PositionRecord {
        position_id: id.to_owned(),
        revision: 1,
        execution,
        symbol: "ETHUSDT".to_owned(),
        side: Side::Short,
        qty: d("0.150"),
        entry_price: d("3120.55"),
        leverage: 5,
        take_profit: Some(d("3000.00")),
        stop_loss: None,
        trailing: None,
        expires_at_ms: None,
        fees_paid: d("0.18723300"),
        funding_paid: d("0"),
        realised_pnl: d("0"),
        strategy: "ict".to_owned(),
        mode: "ict".to_owned(),
        feature_slot: None,
        opened_at_ms: 1_764_547_200_000, // 2025-12-01T00:00:00Z
        last_mark_price: None,
        last_funding_ms: None,
        status: PositionStatus::Open,
        closed_at_ms: None,
        exit_price: None,
        close_reason: None,
        updated_at_ms: 1_764_547_200_000,
        monitor: None,
    }
}

fn perpdesk(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_perpdesk"))
        .args(args)
        .env_remove("PERPDESK_DATA_DIR")
        .output()
        .unwrap()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn exports_trades_and_events_as_csv() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = dir.path().join("out");
    let (mut journal, _) = Journal::open(&journal_path(&data, Execution::Paper)).unwrap();
    let mut closed = position("p-2", Execution::Paper);
    closed.revision = 3;
    closed.side = Side::Long;
    closed.status = PositionStatus::Closed;
    closed.closed_at_ms = Some(1_764_550_800_500);
    closed.exit_price = Some(d("3150.10"));
    closed.close_reason = Some("take_profit".to_owned());
    closed.realised_pnl = d("4.2451");
    closed.funding_paid = d("-0.0125");
    let records: Vec<JournalRecord> = vec![
        position("p-1", Execution::Paper).into(),
        closed.into(),
        LifecycleEventRecord {
            at_ms: 1_764_547_200_000,
            position_id: "p-1".to_owned(),
            kind: LifecycleKind::Created,
            payload: json!({"entry": "3120.55", "note": "say \"hi\", twice"}),
        }
        .into(),
        LifecycleEventRecord {
            at_ms: 1_764_550_800_500,
            position_id: "p-2".to_owned(),
            kind: LifecycleKind::TakeProfitTriggered,
            payload: json!({"mark": "3150.10"}),
        }
        .into(),
        StrategyChangeRecord {
            at_ms: 1_764_554_400_000,
            from_set: "baseline".to_owned(),
            to_set: "strict".to_owned(),
            reason: "highest Q (+0.31 R)".to_owned(),
            details: json!({"max_leverage": 5}),
        }
        .into(),
    ];
    for r in &records {
        journal.write(r).unwrap();
    }
    drop(journal);

    let output = perpdesk(&["journal", "export", "--data-dir", s(&data), "--out", s(&out)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("journal export: 2 trades, 2 events, 1 strategy changes"),
        "{stderr}"
    );

    let trades = std::fs::read_to_string(out.join("trades.csv")).unwrap();
    assert_eq!(
        trades,
        "position_id,execution,symbol,side,status,qty,entry_price,exit_price,leverage,take_profit,stop_loss,\
         opened_at_ms,opened_at,closed_at_ms,closed_at,close_reason,fees_paid,funding_paid,realised_pnl,strategy,mode\n\
         p-1,paper,ETHUSDT,SHORT,open,0.150,3120.55,,5,3000.00,,1764547200000,2025-12-01T00:00:00Z,,,,0.18723300,0,0,ict,ict\n\
         p-2,paper,ETHUSDT,LONG,closed,0.150,3120.55,3150.10,5,3000.00,,1764547200000,2025-12-01T00:00:00Z,\
         1764550800500,2025-12-01T01:00:00.5Z,take_profit,0.18723300,-0.0125,4.2451,ict,ict\n"
    );
    let events = std::fs::read_to_string(out.join("events.csv")).unwrap();
    let expected = r#"id,at_ms,at,position_id,kind,payload
1,1764547200000,2025-12-01T00:00:00Z,p-1,Created,"{""entry"":""3120.55"",""note"":""say \""hi\"", twice""}"
2,1764550800500,2025-12-01T01:00:00.5Z,p-2,TakeProfitTriggered,"{""mark"":""3150.10""}"
"#;
    assert_eq!(events, expected);
    let changes = std::fs::read_to_string(out.join("strategy_changes.csv")).unwrap();
    let expected = r#"at_ms,at,from_set,to_set,reason,details
1764554400000,2025-12-01T02:00:00Z,baseline,strict,highest Q (+0.31 R),"{""max_leverage"":5}"
"#;
    assert_eq!(changes, expected);
    // No temporary file left behind.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["events.csv", "strategy_changes.csv", "trades.csv"]);
}

#[test]
fn live_journal_and_explicit_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut live, _) = Journal::open(&journal_path(&data, Execution::Live)).unwrap();
    live.write(&position("live-1", Execution::Live).into()).unwrap();
    drop(live);
    let out = dir.path().join("live");
    let output = perpdesk(&[
        "journal",
        "export",
        "--live",
        "--data-dir",
        s(&data),
        "--out",
        s(&out),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let trades = std::fs::read_to_string(out.join("trades.csv")).unwrap();
    assert_eq!(trades.lines().count(), 2);
    assert!(
        trades
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("live-1,live,ETHUSDT,SHORT,open,")
    );

    let out = dir.path().join("explicit");
    let file = journal_path(&data, Execution::Live);
    let output = perpdesk(&["journal", "export", "--journal", s(&file), "--out", s(&out)]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(std::fs::read_to_string(out.join("trades.csv")).unwrap(), trades);
    assert_eq!(
        std::fs::read_to_string(out.join("events.csv")).unwrap(),
        "id,at_ms,at,position_id,kind,payload\n"
    );
}

#[test]
fn a_missing_or_newer_journal_exits_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("empty");
    let out = dir.path().join("out");
    let output = perpdesk(&["journal", "export", "--data-dir", s(&data), "--out", s(&out)]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!(
        "error: the journal {} does not exist\n",
        journal_path(&data, Execution::Paper).display()
    );
    assert_eq!(stderr, expected);
    assert!(!out.exists(), "nothing written");

    let file = journal_path(&data, Execution::Paper);
    drop(Journal::open(&file).unwrap());
    let conn = rusqlite::Connection::open(&file).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let output = perpdesk(&["journal", "export", "--data-dir", s(&data), "--out", s(&out)]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "has schema version 99, newer than this build's {}",
            perpdesk::journal::SCHEMA_VERSION
        )),
        "{stderr}"
    );
}
