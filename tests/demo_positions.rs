//! The real `perpdesk --demo --headless` binary opens virtual positions from the ICT strategy's signals
//! and closes them, end to end: simulated exchange → streams → strategy → risk → position book → mark
//! price monitoring → lifecycle → the headless status line.
//!
//! The run is shortened through the configuration file a user would write: a 5 s trading cycle and a
//! 2-minute position lifetime (12 s of wall time at the demo's 10× market), so closes come from the
//! expiry if no stop or target is reached first.

mod support;

use std::time::Duration;

use perpdesk::journal::{Journal, LifecycleKind};
use support::{Proc, data_dir};

/// The number after `name` in the `positions open A opened B closed C` segment.
fn count(line: &str, name: &str) -> Option<u64> {
    let segment = line.split(" | ").find(|p| p.starts_with("positions open"))?;
    let mut words = segment.split_whitespace();
    while let Some(w) = words.next() {
        if w == name {
            return words.next()?.parse().ok();
        }
    }
    None
}

#[test]
fn demo_positions_open_and_close() {
    let dir = data_dir();
    let config = dir.path().join("perpdesk.toml");
    std::fs::write(
        &config,
        "[engine]\ntrading_cycle_secs = 5\n\n[positions]\nttl_secs = 120\n",
    )
    .expect("config written");
    let data = dir.path().join("data");
    let (config, data) = (
        config.to_string_lossy().into_owned(),
        data.to_string_lossy().into_owned(),
    );
    let mut console = Proc::spawn(
        &["--demo", "--headless", "--config", &config, "--data-dir", &data],
        &[],
    );
    console.wait_for("READY", Duration::from_secs(120), |l| l.starts_with("READY"));
    let opened = console.wait_for("a position to open", Duration::from_secs(300), |l| {
        count(l, "opened").is_some_and(|n| n >= 1)
    });
    assert!(opened.contains("breaker NORMAL"), "{opened}");
    let closed = console.wait_for("a position to close", Duration::from_secs(300), |l| {
        count(l, "closed").is_some_and(|n| n >= 1)
    });
    let (open, opened, done) = (
        count(&closed, "open").expect("open"),
        count(&closed, "opened").expect("opened"),
        count(&closed, "closed").expect("closed"),
    );
    assert_eq!(open + done, opened, "{closed}");
    assert!(
        !std::path::Path::new(&data).join("breaker.json").exists(),
        "the demo's breaker lives and dies with its paper account"
    );
    console.signal("-TERM");
    assert_eq!(console.wait_exit(Duration::from_secs(30)), Some(0));

    // The run is journalled like paper and live: every position, its Created and its Closed.
    let journal = Journal::open_read_only(&std::path::Path::new(&data).join("journal-demo.sqlite"))
        .expect("the demo's journal");
    journal.integrity_check().expect("integrity");
    let positions = journal.positions().expect("positions");
    // More may have opened between the status line read above and the shutdown.
    assert!(positions.len() as u64 >= opened, "one row per opened position");
    let events = journal.events_after(0, 100_000).expect("events");
    let kinds = |kind: LifecycleKind| events.iter().filter(|(_, e)| e.kind == kind).count() as u64;
    assert_eq!(kinds(LifecycleKind::Created), positions.len() as u64);
    assert!(kinds(LifecycleKind::Closed) >= done, "closed events journalled");

    // A second run starts a fresh journal and keeps the previous one beside it.
    let mut again = Proc::spawn(
        &["--demo", "--headless", "--config", &config, "--data-dir", &data],
        &[],
    );
    again.wait_for("READY", Duration::from_secs(120), |l| l.starts_with("READY"));
    again.signal("-TERM");
    assert_eq!(again.wait_exit(Duration::from_secs(30)), Some(0));
    let previous = Journal::open_read_only(&std::path::Path::new(&data).join("journal-demo.previous.sqlite"))
        .expect("the previous run's journal");
    assert_eq!(previous.positions().expect("positions").len(), positions.len());
}
