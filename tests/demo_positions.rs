//! The real `perpdesk --demo --headless` binary opens virtual positions from the ICT strategy's signals
//! and closes them, end to end: simulated exchange → streams → strategy → risk → position book → mark
//! price monitoring → lifecycle → the headless status line.
//!
//! The run is shortened through the configuration file a user would write: a 5 s trading cycle and a
//! 2-minute position lifetime (12 s of wall time at the demo's 10× market), so closes come from the
//! expiry if no stop or target is reached first.

mod support;

use std::time::Duration;

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
}
