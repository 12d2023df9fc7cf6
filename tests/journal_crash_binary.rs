//! Crash safety of the real engine: `perpdesk --headless` trading on paper against `perpdesk sim` is
//! killed with SIGKILL at random (seeded) moments, 50 times, and restarted on the same data directory.
//!
//! After every kill, with the journal opened read-only:
//! * `PRAGMA integrity_check` is `ok`;
//! * every lifecycle event a reader saw committed just before the kill is still there, unchanged;
//! * no position has more than one `Created` event (a restored position is not created again).
//!
//! After every restart, the engine logs each position it put back on the book as a journal record built
//! from the book's own state (`journal: position restored`), and the set must equal the journal's open
//! positions read after the kill, field for field: size, entry, current and initial stops, target,
//! trailing, liquidation, expiry, fees, funding, warnings given, risk level, last mark.
//!
//! The market runs at 600× with 1 s cycles so that positions open within seconds of a start. Every start
//! back-fills its universe, and the venue's REST weight budget (2 400 a minute, kept by the simulator
//! and honoured by the client) would allow only a few starts a minute; so the restarts go round three
//! simulators with the same seed, speed, market start and anchor, which serve the very same market, each
//! with its own budget. The market starts at a fixed instant ([`MARKET_START_MS`]) rather than following
//! the wall clock, so the test trades the same market whatever the hour it runs at.

// Test code: a failed unwrap is a failed test with its location.
#![allow(clippy::unwrap_used)]

mod support;

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use perpdesk::journal::{Journal, LifecycleEventRecord, LifecycleKind, PositionRecord};
use rand::{Rng, SeedableRng};
use support::{Proc, data_dir, start_sim};

const KILLS: usize = 50;
/// The simulated instant the market starts at: 2025-03-11 13:00 UTC, the demo's market (measured to
/// open positions within seconds at this speed).
const MARKET_START_MS: i64 = 1_741_698_000_000;
const SEED: u64 = 0x006a_6f75_726e_616c;

fn console(rest: &str, ws: &str, config: &Path, data: &Path) -> Proc {
    Proc::spawn(
        &[
            "--headless",
            "--rest-url",
            rest,
            "--ws-url",
            ws,
            "--universe-size",
            "15",
            "--history-bars",
            "99",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        // Every position checked every second, so that short runs journal price updates too.
        &[("ENABLE_SMART_MONITORING", "false")],
    )
}

/// The whole log so far (JSON lines; daily files in name order).
fn log_lines(data: &Path) -> Vec<serde_json::Value> {
    let dir = data.join("logs");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    files.sort();
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| {
            text.lines()
                .filter(|l| l.contains("journal: "))
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn message(line: &serde_json::Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or_default()
}

/// Waits for the `run`-th (1-based) "restore finished" line and returns the positions that run logged
/// as restored, by id.
fn restored_by_run(data: &Path, run: usize) -> BTreeMap<String, PositionRecord> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lines = log_lines(data);
        let mut finished = 0;
        let mut current = BTreeMap::new();
        for line in &lines {
            match message(line) {
                "journal: position restored" => {
                    let record: PositionRecord =
                        serde_json::from_str(line["fields"]["record"].as_str().unwrap()).unwrap();
                    current.insert(record.position_id.clone(), record);
                }
                "journal: restore finished" => {
                    finished += 1;
                    if finished == run {
                        return current;
                    }
                    current.clear();
                }
                _ => {}
            }
        }
        assert!(
            Instant::now() < deadline,
            "run {run} did not log the end of its restore"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn open(journal: &Path) -> Journal {
    Journal::open_read_only(journal).unwrap()
}

fn all_events(j: &Journal) -> Vec<(i64, LifecycleEventRecord)> {
    j.events_after(0, usize::MAX).unwrap()
}

fn open_positions(j: &Journal) -> BTreeMap<String, PositionRecord> {
    j.open_positions()
        .unwrap()
        .into_iter()
        .map(|p| (p.position_id.clone(), p))
        .collect()
}

#[test]
fn the_headless_engine_killed_50_times_keeps_every_event_and_restores_positions_exactly() {
    let anchor = perpdesk::domain::now_ms().to_string();
    let start = MARKET_START_MS.to_string();
    let sims: Vec<(Proc, String, String)> = (0..3)
        .map(|_| {
            start_sim(&[
                "--speed",
                "600",
                "--symbols",
                "40",
                "--seed",
                "11",
                "--market-start-ms",
                &start,
                "--market-anchor-ms",
                &anchor,
            ])
        })
        .collect();
    let (_, rest, ws) = &sims[0];
    let dir = data_dir();
    let config = dir.path().join("perpdesk.toml");
    // 1 s cycles; positions live a week of market time (17 minutes here), so they stay open across many
    // kills and close only at their stops and targets.
    std::fs::write(
        &config,
        "[engine]\ntrading_cycle_secs = 1\nvirtual_cycle_secs = 1\n\n[positions]\nttl_secs = 604800\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let journal = data.join("journal-paper.sqlite");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(SEED);

    let started = Instant::now();
    let mut proc = console(rest, ws, &config, &data);
    let mut run = 1;
    restored_by_run(&data, run);
    // Let the first run open a position, so that the kills hit an engine with positions to save.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !journal.exists() || open_positions(&open(&journal)).is_empty() {
        assert!(Instant::now() < deadline, "no positions opened in two minutes");
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("warm-up: {:.1} s", started.elapsed().as_secs_f64());
    let mut kills_with_positions = 0;
    let mut restored_total = 0;
    let mut events_first = None;
    let mut events_max = 0usize;
    for kill in 0..KILLS {
        // Activity: marks, checks, signals and the virtual cycle, for a random while.
        std::thread::sleep(Duration::from_millis(rng.random_range(300..1500)));
        let seen = all_events(&open(&journal));
        proc.child.kill().unwrap();
        proc.child.wait().unwrap();

        let j = open(&journal);
        j.integrity_check().unwrap_or_else(|e| panic!("kill {kill}: {e}"));
        let after: HashMap<i64, LifecycleEventRecord> = all_events(&j).into_iter().collect();
        for (id, event) in &seen {
            assert_eq!(
                after.get(id),
                Some(event),
                "kill {kill}: event {id} committed before the kill is gone or changed"
            );
        }
        events_first.get_or_insert(after.len());
        events_max = events_max.max(after.len());
        let mut created: HashMap<&str, usize> = HashMap::new();
        for e in after.values().filter(|e| e.kind == LifecycleKind::Created) {
            *created.entry(e.position_id.as_str()).or_default() += 1;
        }
        assert!(
            created.values().all(|n| *n == 1),
            "kill {kill}: a position was created twice: {created:?}"
        );
        let expected = open_positions(&j);
        drop(j);

        let (_, rest, ws) = &sims[(kill + 1) % sims.len()];
        proc = console(rest, ws, &config, &data);
        run += 1;
        let restart = Instant::now();
        let restored = restored_by_run(&data, run);
        eprintln!(
            "kill {kill}: {} events kept, {} positions restored after {:.2} s",
            seen.len(),
            restored.len(),
            restart.elapsed().as_secs_f64()
        );
        assert_eq!(
            restored, expected,
            "kill {kill}: the restarted engine's book differs from the journal's open positions"
        );
        if !expected.is_empty() {
            kills_with_positions += 1;
            restored_total += expected.len();
        }
    }
    proc.signal("-TERM");
    assert_eq!(proc.wait_exit(Duration::from_secs(30)), Some(0));
    let j = open(&journal);
    j.integrity_check().unwrap();
    eprintln!(
        "{KILLS} kills: {kills_with_positions} with open positions, {restored_total} positions restored, \
         up to {events_max} events journalled"
    );
    // The kills hit a working engine: positions to restore, and events journalled between kills.
    assert!(
        kills_with_positions >= 3,
        "only {kills_with_positions} of {KILLS} kills had open positions to restore"
    );
    assert!(
        events_max > events_first.unwrap_or(0),
        "no event journalled after the first kill"
    );
}
