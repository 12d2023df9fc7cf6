//! The 10-minute check of issue 3, cut to about a minute for CI: the real `perpdesk` binary, headless,
//! against `perpdesk sim --faults heavy` (faster connection faults and an early maintenance window so
//! that a minute sees them), then `--export-bars` from the console and `sim --dump-bars --like` from
//! the simulator's seed must be the same file, byte for byte: no closed bar lost, duplicated or
//! altered. The README shows the same commands for the full ten minutes.
//!
//! The faults stop 50 s after the simulator started (`until`), and the console is stopped once its
//! status line says `missing 0` after that. Without the quiet phase the comparison measured the
//! moment of the stop, not the console: a hole opened by a drop a second before SIGTERM, whose fill
//! was still waiting out a ban or a backoff, was exported as lost (a CI run saw five 1m bars so).

mod support;

use std::time::Duration;

use support::{Proc, data_dir, start_sim};

#[test]
fn headless_console_under_heavy_faults_stores_exactly_the_simulators_bars() {
    let plan = "heavy,drop=20s,reset=30s,close=30s,stall=1h/35s,maint=25s+5s,until=50s";
    let (mut sim, rest, ws) = start_sim(&[
        "--faults",
        plan,
        "--speed",
        "60",
        "--symbols",
        "40",
        "--seed",
        "5",
    ]);
    let day_line = sim.wait_for("the anchor day", Duration::from_secs(10), |l| {
        l.contains("anchor day")
    });
    let day = day_line
        .split_whitespace()
        .find(|w| w.len() == 10 && w.as_bytes()[4] == b'-')
        .expect("a YYYY-MM-DD in the line")
        .to_owned();
    let dir = data_dir();
    let export = dir.path().join("export.csv");
    let reference = dir.path().join("reference.csv");
    let data = dir.path().join("data");
    let mut console = Proc::spawn(
        &[
            "--headless",
            "--rest-url",
            &rest,
            "--ws-url",
            &ws,
            "--universe-size",
            "12",
            "--timeframes",
            "1m,5m",
            "--history-bars",
            "120",
            "--data-dir",
            data.to_str().expect("utf-8 path"),
            "--export-bars",
            export.to_str().expect("utf-8 path"),
        ],
        &[],
    );
    console.wait_for("READY", Duration::from_secs(120), |l| l.starts_with("READY"));
    let faulted = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(50));
    // Faults are over; the console must converge: every hole healed from the venue's history.
    // Housekeeping counts holes every 5 s, so the first `missing 0` after the chaos is trusted only
    // from a status line printed well after the faults stopped.
    let healed = console.wait_for("missing 0 after the faults", Duration::from_secs(90), |l| {
        l.starts_with("status |")
            && l.contains("| missing 0 |")
            && faulted.elapsed() > Duration::from_secs(62)
    });
    console.signal("-TERM");
    assert_eq!(
        console.wait_exit(Duration::from_secs(30)),
        Some(0),
        "{:?}",
        console.seen
    );
    sim.signal("-TERM");
    let summary = sim.wait_for("the fault summary", Duration::from_secs(10), |l| {
        l.starts_with("faults injected")
    });
    // The maintenance window is certain to refuse upgrades; the other connection faults are random
    // draws. Either way the console itself must have lost connections and come back: its own
    // reconnect count, in the healed status line, proves the faults reached it.
    assert!(
        summary.contains("maintenance refusals=") && summary.contains("duplicates="),
        "{summary}"
    );
    let reconnects: u64 = healed
        .split(" | ")
        .find_map(|field| field.strip_prefix("reconnects "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no reconnect count in {healed}"));
    assert!(
        reconnects >= 1,
        "the console never reconnected: {healed} / {summary}"
    );

    let mut dump = Proc::spawn(
        &[
            "sim",
            "--dump-bars",
            reference.to_str().expect("utf-8 path"),
            "--like",
            export.to_str().expect("utf-8 path"),
            "--seed",
            "5",
            "--symbols",
            "40",
            "--day",
            &day,
            "--data-dir",
            data.to_str().expect("utf-8 path"),
        ],
        &[],
    );
    assert_eq!(dump.wait_exit(Duration::from_secs(60)), Some(0));
    let stored = std::fs::read_to_string(&export).expect("export written");
    let truth = std::fs::read_to_string(&reference).expect("reference written");
    let rows = stored.lines().count() - 1;
    assert!(rows > 12 * 120, "only {rows} bars exported");
    if stored != truth {
        let only_stored: Vec<_> = stored.lines().filter(|l| !truth.contains(l)).take(5).collect();
        let only_truth: Vec<_> = truth.lines().filter(|l| !stored.contains(l)).take(5).collect();
        let missing = truth.lines().filter(|l| !stored.contains(l)).count();
        panic!(
            "the console's bars differ from the simulator's ({summary}); {missing} missing; last status: {healed}\n only stored: {only_stored:?}\n missing: {only_truth:?}"
        );
    }
    eprintln!("{rows} closed bars identical to the simulator's; {summary}");
}
