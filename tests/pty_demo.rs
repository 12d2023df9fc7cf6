//! The real binary in a real pseudo-terminal: `perpdesk --demo` is driven by key presses the way an
//! operator drives it over SSH, and the screen is read back through a VT100 emulator.
//!
//! Covers: the scanner filling with 200 symbols, sorting, filtering, the bootstrapped model in the models
//! panel, live mode switches (`hybrid`, `self_learning`, `ict`) confirmed in
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

/// A process running in a pseudo-terminal, its screen emulated, keys typed into it.
struct PtyProc {
    screen: Screen,
    keys: Arc<Mutex<Box<dyn Write + Send>>>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
    _config_home: tempfile::TempDir,
}

impl PtyProc {
    fn spawn(args: &[&str]) -> Self {
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
        cmd.args(args);
        cmd.env("TERM", "xterm-256color");
        cmd.env("XDG_CONFIG_HOME", config_home.path());
        cmd.env_remove("STRATEGY_MODE");
        let child = pair.slave.spawn_command(cmd).expect("spawn perpdesk in the pty");
        drop(pair.slave);

        let parser = Arc::new(Mutex::new(vt100::Parser::new(ROWS, COLS, 0)));
        let mut reader = pair.master.try_clone_reader().expect("pty reader");
        let keys = Arc::new(Mutex::new(pair.master.take_writer().expect("pty writer")));
        let sink = Arc::clone(&parser);
        let answer = Arc::clone(&keys);
        thread::spawn(move || {
            let _master = pair.master; // keep the pty open while reading
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut parser = sink.lock().expect("parser lock");
                parser.process(&buf[..n]);
                // Answer "where is the cursor?" (DSR, ESC [ 6 n) as a real terminal does; crossterm
                // asks it when the screen is cleared.
                if buf[..n].windows(4).any(|w| w == b"\x1b[6n") {
                    let (row, col) = parser.screen().cursor_position();
                    let reply = format!("\x1b[{};{}R", row + 1, col + 1);
                    let mut w = answer.lock().expect("writer lock");
                    let _ = w.write_all(reply.as_bytes());
                    let _ = w.flush();
                }
            }
        });
        Self {
            screen: Screen { parser },
            keys,
            child,
            _config_home: config_home,
        }
    }

    fn press(&self, k: &str) {
        let mut w = self.keys.lock().expect("writer lock");
        w.write_all(k.as_bytes()).expect("write key");
        w.flush().expect("flush");
        drop(w);
        thread::sleep(Duration::from_millis(150));
    }

    /// Waits for exit; the exit status.
    fn wait_exit(&mut self) -> portable_pty::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "perpdesk did not exit; screen:\n{}",
                self.screen.text()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn demo_console_in_a_pty() {
    let data = tempfile::tempdir().expect("temp dir");
    let data_arg = data.path().to_str().expect("utf-8 path");
    let mut console = PtyProc::spawn(&["--demo", "--data-dir", data_arg]);
    let press = |k: &str| console.press(k);
    let screen = &console.screen;

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
    // The filter applies while typing, so a screen of `B` or `BT` may come first: wait for the whole
    // filter, i.e. a scanner that shows rows and only matching ones.
    let scanner_rows = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.contains("USDT") && l.starts_with(['│', '▶']))
            .map(str::to_owned)
            .collect()
    };
    let text = screen.wait_for("the filter applied", Duration::from_secs(10), |t| {
        let rows = scanner_rows(t);
        t.lines().any(|l| l.contains("Scanner") && !l.contains("200/200"))
            && !rows.is_empty()
            && rows.iter().all(|l| l.contains("BTC"))
    });
    assert!(!scanner_rows(&text).is_empty(), "filtered rows shown:\n{text}");
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
    // The demo starts with no model: one is bootstrapped from the stored bars and hot-reloaded, and the
    // models panel names it as the champion with its backend and its latency line.
    press("M");
    let text = screen.wait_for(
        "a bootstrapped champion in the models panel",
        Duration::from_secs(180),
        |t| t.contains("★ champion") && t.contains("latency"),
    );
    assert!(text.contains("signal_predictor"), "{text}");
    press("M");
    press("2");
    screen.wait_for("self_learning applied", Duration::from_secs(10), |t| {
        let h = header_line(t);
        h.contains("mode: self_learning") && !h.contains('→')
    });
    press("m");
    screen.wait_for("mode cycled to hybrid", Duration::from_secs(10), |t| {
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
    let status = console.wait_exit();
    assert!(status.success(), "exit status {status:?}");
    thread::sleep(Duration::from_millis(200));
    assert!(
        !console
            .screen
            .parser
            .lock()
            .expect("parser lock")
            .screen()
            .alternate_screen(),
        "terminal restored to the main screen"
    );
}

/// `perpdesk attach` in a terminal drives a headless engine running in another process; quitting the
/// attached console leaves the engine running.
#[test]
fn attached_console_in_a_pty() {
    let data = tempfile::tempdir().expect("temp dir");
    let data_arg = data.path().to_str().expect("utf-8 path");
    let mut engine = std::process::Command::new(env!("CARGO_BIN_EXE_perpdesk"))
        .args([
            "--demo",
            "--headless",
            "--universe-size",
            "25",
            "--data-dir",
            data_arg,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the headless engine");
    let socket = data.path().join("perpdesk.sock");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "the engine never opened its socket");
        thread::sleep(Duration::from_millis(100));
    }
    let socket_arg = socket.to_str().expect("utf-8 path");
    let mut console = PtyProc::spawn(&["attach", "--socket", socket_arg, "--data-dir", data_arg]);
    console
        .screen
        .wait_for("the remote scanner", Duration::from_secs(120), |t| {
            t.contains("Scanner 25/25 symbols") && t.contains("connected")
        });
    console.press("2");
    console.screen.wait_for(
        "self_learning applied by the remote engine",
        Duration::from_secs(10),
        |t| {
            let h = header_line(t);
            h.contains("mode: self_learning") && !h.contains('→')
        },
    );
    console.press("q");
    assert!(console.wait_exit().success());
    thread::sleep(Duration::from_millis(500));
    assert!(
        engine.try_wait().expect("try_wait").is_none(),
        "detaching leaves the engine running"
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &engine.id().to_string()])
        .status();
    let status = engine.wait().expect("engine exits");
    assert_eq!(status.code(), Some(0));
}
