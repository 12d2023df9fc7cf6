//! Helpers for integration tests that run the real `perpdesk` binary: spawn it, read its output
//! line by line with deadlines, and always kill it, even when an assertion fails.
//!
//! Deadlines here are generous upper bounds for "something is wrong", never performance claims.

#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_perpdesk")
}

/// A child process whose stdout lines arrive on a channel; killed on drop.
pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Proc {
    pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Tests never read the user's configuration or write to their data directory.
        cmd.env_remove("STRATEGY_MODE")
            .env_remove("TRADING_ENABLED")
            .env_remove("PERPDESK_ENV");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn perpdesk");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout piped");
        let tx2 = tx.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = child.stderr.take().expect("stderr piped");
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx2.send(format!("[stderr] {line}")).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a line satisfying `pred`, returning it; panics with everything seen on timeout.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                let tail: Vec<_> = self.seen.iter().rev().take(40).rev().cloned().collect();
                panic!(
                    "timed out after {timeout:?} waiting for {what}; last output:\n{}",
                    tail.join("\n")
                );
            };
            let hit = pred(&line);
            self.seen.push(line.clone());
            if hit {
                return line;
            }
        }
    }

    /// Sends a signal (Unix).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for exit with a deadline; returns the exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit within {timeout:?}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `perpdesk sim` with extra args and returns it with its REST and WebSocket URLs.
pub fn start_sim(extra: &[&str]) -> (Proc, String, String) {
    let mut args = vec!["sim"];
    args.extend_from_slice(extra);
    let mut sim = Proc::spawn(&args, &[]);
    let rest = sim.wait_for("the REST URL", Duration::from_secs(60), |l| {
        l.contains("REST") && l.contains("http://")
    });
    let ws = sim.wait_for("the WebSocket URL", Duration::from_secs(10), |l| {
        l.contains("ws://")
    });
    let url = |l: &str, scheme: &str| {
        let start = l.find(scheme).expect("url in line");
        l[start..].split_whitespace().next().expect("url").to_owned()
    };
    (sim, url(&rest, "http://"), url(&ws, "ws://"))
}

/// A fresh data directory for one test.
pub fn data_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}
