//! Crash safety of the journal: a child process writing through the real writer thread is killed with
//! SIGKILL at random moments, 50 times, on the same file; after each kill the file must pass
//! `PRAGMA integrity_check`, every record the child had seen acknowledged must be there, and every
//! position must read back exactly as one of the snapshots the child wrote (never half a row), at a
//! revision no older than the last acknowledged one.
//!
//! The child is this test binary itself, re-run with an environment variable that turns the same test
//! function into the writer loop: no extra binary, nothing test-only in `perpdesk`. It prints
//! `ACK <kind> <key> <n>` only after `write_durable_blocking` returned, so a printed line is a
//! promise the journal must keep.

// Test code: a failed unwrap is a failed test with its location.
#![allow(clippy::unwrap_used)]

use std::{
    collections::{HashMap, HashSet},
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    str::FromStr,
    sync::mpsc,
    time::Duration,
};

use perpdesk::{
    domain::Side,
    journal::{
        EquitySnapshot, Execution, Journal, JournalWriter, LifecycleEventRecord, LifecycleKind, OrderIntent,
        OrderSide, OrderState, PositionRecord, PositionStatus, TrailingStop, WriterConfig,
    },
};
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use serde_json::json;

const CHILD_DIR: &str = "PERPDESK_JOURNAL_CRASH_CHILD_DIR";
const CHILD_RUN: &str = "PERPDESK_JOURNAL_CRASH_CHILD_RUN";
const KILLS: usize = 50;
const THREADS: usize = 4;
const TEST_NAME: &str = "sigkill_at_random_moments_loses_no_acked_record";

/// The snapshot of position `id` at `revision`: every field depends on the revision, so a torn or mixed
/// row could not equal any snapshot.
fn snapshot(id: &str, revision: i64) -> PositionRecord {
    let r = Decimal::from(revision);
    PositionRecord {
        position_id: id.to_owned(),
        revision,
        execution: Execution::Paper,
        symbol: "BTCUSDT".to_owned(),
        side: if revision % 2 == 0 {
            Side::Long
        } else {
            Side::Short
        },
        qty: Decimal::from_str("0.001").unwrap() * (r + Decimal::ONE),
        entry_price: Decimal::from_str("64000.10").unwrap() + r,
        leverage: u32::try_from(revision % 125 + 1).unwrap(),
        take_profit: Some(Decimal::from(66_000) + r),
        stop_loss: Some(Decimal::from(63_000) - r),
        trailing: Some(TrailingStop {
            distance: Decimal::from_str("0.01").unwrap(),
            percent: true,
            activation: None,
            best_price: Some(Decimal::from(65_000) + r),
        }),
        expires_at_ms: Some(1_800_000_000_000 + revision),
        fees_paid: Decimal::from_str("0.0001").unwrap() * r,
        funding_paid: Decimal::from_str("-0.00001").unwrap() * r,
        realised_pnl: Decimal::from_str("0.5").unwrap() * r,
        strategy: "ict".to_owned(),
        mode: "hybrid".to_owned(),
        feature_slot: Some(u32::try_from(revision % 1000).unwrap()),
        opened_at_ms: 1_780_000_000_000,
        last_mark_price: Some(Decimal::from(64_500) + r),
        last_funding_ms: Some(1_780_000_000_000 + revision * 1000),
        status: PositionStatus::Open,
        closed_at_ms: None,
        exit_price: None,
        close_reason: None,
        updated_at_ms: 1_780_000_000_000 + revision,
        monitor: None,
    }
}

/// The child: write forever from several threads, printing each acknowledgement.
fn child(dir: &Path, run: usize) -> ! {
    let (journal, _) = Journal::open(&dir.join("journal.sqlite")).unwrap();
    let writer = JournalWriter::spawn(journal, WriterConfig::default()).unwrap();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let handle = writer.handle();
            std::thread::spawn(move || {
                let id = format!("r{run}-t{t}");
                let out = std::io::stdout();
                for n in 0_i64.. {
                    handle.write_durable_blocking(snapshot(&id, n)).unwrap();
                    writeln!(out.lock(), "ACK P {id} {n}").unwrap();
                    let event = LifecycleEventRecord {
                        at_ms: 1_780_000_000_000 + n,
                        position_id: id.clone(),
                        kind: LifecycleKind::PriceUpdated,
                        payload: json!({"n": n, "mark": (Decimal::from(64_500) + Decimal::from(n)).to_string()}),
                    };
                    handle.write_durable_blocking(event).unwrap();
                    writeln!(out.lock(), "ACK E {id} {n}").unwrap();
                    if n % 5 == 0 {
                        let coid = format!("r{run}t{t}n{n}");
                        handle
                            .write_durable_blocking(OrderIntent {
                                client_order_id: coid.clone(),
                                position_id: Some(id.clone()),
                                symbol: "BTCUSDT".to_owned(),
                                side: OrderSide::Buy,
                                order_type: "MARKET".to_owned(),
                                qty: Some(Decimal::from_str("0.001").unwrap()),
                                price: None,
                                stop_price: None,
                                reduce_only: false,
                                close_position: false,
                                created_at_ms: 1_780_000_000_000 + n,
                            })
                            .unwrap();
                        writeln!(out.lock(), "ACK O {coid} {n}").unwrap();
                    }
                    // Unacknowledged traffic in between, as the engine's equity curve would be.
                    handle
                        .write_blocking(EquitySnapshot {
                            at_ms: 1_780_000_000_000 + n,
                            execution: Execution::Paper,
                            equity: Decimal::from(10_000) + Decimal::from(n),
                            balance: Decimal::from(10_000),
                            unrealised_pnl: Decimal::from(n),
                            open_positions: 4,
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    std::process::exit(0);
}

/// Kills the child if the test fails before it does.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Default)]
struct Acked {
    /// Highest acknowledged revision per position.
    positions: HashMap<String, i64>,
    events: HashSet<(String, i64)>,
    orders: HashSet<String>,
}

fn run_child(dir: &Path, run: usize, delay: Duration, acked: &mut Acked) {
    let exe = std::env::current_exe().unwrap();
    let mut child = KillOnDrop(
        Command::new(exe)
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir)
            .env(CHILD_RUN, run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (first_tx, first_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut reader = BufReader::new(stdout);
        let mut buf = Vec::new();
        let mut first = Some(first_tx);
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                // A line cut by the kill has no newline and promises nothing.
                Ok(_) if buf.ends_with(b"\n") => {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                    if line.starts_with("ACK ") {
                        if let Some(tx) = first.take() {
                            let _ = tx.send(());
                        }
                        lines.push(line);
                    }
                }
                Ok(_) => {}
            }
        }
        lines
    });
    // Kill only once the child is writing, then at a random moment of its activity.
    first_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the child acknowledged a first write");
    std::thread::sleep(delay);
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    for line in reader.join().unwrap() {
        let parts: Vec<&str> = line.split(' ').collect();
        let [_, kind, key, n] = parts.as_slice() else {
            panic!("bad line {line:?}")
        };
        let n: i64 = n.parse().unwrap();
        match *kind {
            "P" => {
                let e = acked.positions.entry((*key).to_owned()).or_insert(n);
                *e = (*e).max(n);
            }
            "E" => {
                acked.events.insert(((*key).to_owned(), n));
            }
            "O" => {
                acked.orders.insert((*key).to_owned());
            }
            other => panic!("unknown kind {other}"),
        }
    }
}

fn verify(path: &Path, acked: &Acked, run: usize) {
    let (mut journal, _) = Journal::open(path).unwrap();
    journal
        .integrity_check()
        .unwrap_or_else(|e| panic!("after kill {run}: {e}"));
    let restored = journal.restore().unwrap();
    let by_id: HashMap<&str, &PositionRecord> = restored
        .open_positions
        .iter()
        .map(|p| (p.position_id.as_str(), p))
        .collect();
    for (id, &rev) in &acked.positions {
        let p = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("after kill {run}: acked position {id} missing"));
        assert!(
            p.revision >= rev,
            "after kill {run}: {id} at {} < acked {rev}",
            p.revision
        );
        assert_eq!(
            **p,
            snapshot(id, p.revision),
            "after kill {run}: {id} not restored exactly"
        );
    }
    for p in &restored.open_positions {
        assert_eq!(
            *p,
            snapshot(&p.position_id, p.revision),
            "after kill {run}: torn row"
        );
    }
    let mut present = HashSet::new();
    let mut after = 0;
    loop {
        let page = journal.events_after(after, 10_000).unwrap();
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (_, e) in page {
            present.insert((e.position_id, e.payload["n"].as_i64().unwrap()));
        }
    }
    let missing: Vec<_> = acked.events.difference(&present).collect();
    assert!(
        missing.is_empty(),
        "after kill {run}: acked events lost: {missing:?}"
    );
    let submitting: HashSet<String> = journal
        .submitting_orders()
        .unwrap()
        .into_iter()
        .map(|o| {
            assert_eq!(o.state, OrderState::Submitting);
            o.intent.client_order_id
        })
        .collect();
    let lost: Vec<_> = acked.orders.difference(&submitting).collect();
    assert!(
        lost.is_empty(),
        "after kill {run}: acked order intents lost: {lost:?}"
    );
}

#[test]
fn sigkill_at_random_moments_loses_no_acked_record() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        let run = std::env::var(CHILD_RUN).unwrap().parse().unwrap();
        child(&PathBuf::from(dir), run);
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("journal crash test seed {seed}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let mut acked = Acked::default();
    for run in 0..KILLS {
        let delay = Duration::from_millis(rng.random_range(0..200));
        run_child(dir.path(), run, delay, &mut acked);
        verify(&path, &acked, run);
    }
    assert!(
        acked.events.len() >= KILLS,
        "the children acknowledged too little to test anything: {}",
        acked.events.len()
    );
    eprintln!(
        "journal crash test: {KILLS} kills, {} acked events, {} positions, {} order intents, all present",
        acked.events.len(),
        acked.positions.len(),
        acked.orders.len()
    );
}
