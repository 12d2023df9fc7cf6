//! The real binary in a real pseudo-terminal: `perpdesk --demo` is driven by key presses the way an
//! operator drives it over SSH, and the screen is read back through a VT100 emulator.
//!
//! Covers: the scanner filling with 200 symbols, sorting, filtering, a live mode switch confirmed in
//! the header, the help overlay, quitting with exit code 0 and the terminal left in the main screen.

use std::{
    io::{Read, Write},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

const ROWS: u16 = 40;
const COLS: u16 = 120;

struct Screen {
    parser: Arc<Mutex<vt100::Parser>>,
}

impl Screen {
    fn text(&self) -> String {
        self.parser.lock().expect("parser lock").screen().contents()
    }

    /// Waits until the screen satisfies `pred`; panics with the screen on timeout (a bound for
    /// "broken", not a performance claim).
    fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.text();
            if pred(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{text}"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

fn header_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn demo_console_in_a_pty() {
    let data = tempfile::tempdir().expect("temp dir");
    let config_home = tempfile::tempdir().expect("temp dir");
    let pty = native_pty_system();
    let pair = pty
        .openpty(PtySize {
            rows: ROWS,
            cols: COLS,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("open a pty");
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_perpdesk"));
    cmd.args(["--demo", "--data-dir"]);
    cmd.arg(data.path());
    cmd.env("TERM", "xterm-256color");
    cmd.env("XDG_CONFIG_HOME", config_home.path());
    cmd.env_remove("STRATEGY_MODE");
    let mut child = pair.slave.spawn_command(cmd).expect("spawn perpdesk in the pty");
    drop(pair.slave);

    let parser = Arc::new(Mutex::new(vt100::Parser::new(ROWS, COLS, 0)));
    let mut reader = pair.master.try_clone_reader().expect("pty reader");
    let keys = Arc::new(Mutex::new(pair.master.take_writer().expect("pty writer")));
    let sink = Arc::clone(&parser);
    let answer = Arc::clone(&keys);
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            let mut parser = sink.lock().expect("parser lock");
            parser.process(&buf[..n]);
            // Answer "where is the cursor?" (DSR, ESC [ 6 n) as a real terminal does; crossterm asks
            // it when the screen is cleared.
            if buf[..n].windows(4).any(|w| w == b"\x1b[6n") {
                let (row, col) = parser.screen().cursor_position();
                let reply = format!("\x1b[{};{}R", row + 1, col + 1);
                let mut w = answer.lock().expect("writer lock");
                let _ = w.write_all(reply.as_bytes());
                let _ = w.flush();
            }
        }
    });
    let press = |k: &str| {
        let mut w = keys.lock().expect("writer lock");
        w.write_all(k.as_bytes()).expect("write key");
        w.flush().expect("flush");
        drop(w);
        thread::sleep(Duration::from_millis(150));
    };
    let screen = Screen { parser };

    // The scanner fills with the whole universe, back-filled and streaming.
    let text = screen.wait_for("200 symbols in the scanner", Duration::from_secs(120), |t| {
        t.contains("Scanner 200/200 symbols") && t.contains("connected")
    });
    assert!(
        header_line(&text).contains("PAPER"),
        "paper trading by default:\n{text}"
    );
    assert!(header_line(&text).contains("mode: ict"));

    // Sort: the rank column loses its arrow, another column gets one.
    // rank → symbol → last → 24h change.
    press("s");
    press("s");
    press("s");
    let text = screen.wait_for("a sort by 24h change", Duration::from_secs(10), |t| {
        t.contains("24h%▼")
    });
    assert!(!text.contains("#▲"), "rank is no longer the sort column:\n{text}");

    // Filter to one symbol family.
    press("/");
    for c in "BTC".chars() {
        press(&c.to_string());
    }
    press("\r");
    let text = screen.wait_for("the filter applied", Duration::from_secs(10), |t| {
        t.lines().any(|l| l.contains("Scanner") && !l.contains("200/200"))
    });
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("USDT") && l.starts_with(['│', '▶']))
        .collect();
    assert!(!rows.is_empty(), "filtered rows shown:\n{text}");
    assert!(
        rows.iter().all(|l| l.contains("BTC")),
        "only matching symbols:\n{text}"
    );
    press("\x1b"); // Esc clears the filter
    screen.wait_for("the filter cleared", Duration::from_secs(10), |t| {
        t.contains("Scanner 200/200 symbols")
    });

    // Switch the strategy mode live; the header confirms once the engine applied it.
    press("3");
    screen.wait_for("hybrid mode applied", Duration::from_secs(10), |t| {
        let h = header_line(t);
        h.contains("mode: hybrid") && !h.contains('→')
    });
    press("m");
    screen.wait_for("mode cycled to ict", Duration::from_secs(10), |t| {
        let h = header_line(t);
        h.contains("mode: ict") && !h.contains('→')
    });

    // Help overlay lists the keys, Esc closes it.
    press("?");
    let text = screen.wait_for("the help overlay", Duration::from_secs(10), |t| {
        t.contains("next strategy mode")
    });
    assert!(text.contains("quit"), "help lists quit:\n{text}");
    press("\x1b");
    screen.wait_for("help closed", Duration::from_secs(10), |t| {
        !t.contains("next strategy mode")
    });

    // Quit: exit code 0, and the alternate screen is left.
    press("q");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "perpdesk did not exit after q; screen:\n{}",
            screen.text()
        );
        thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
    thread::sleep(Duration::from_millis(200));
    assert!(
        !screen
            .parser
            .lock()
            .expect("parser lock")
            .screen()
            .alternate_screen(),
        "terminal restored to the main screen"
    );
}
