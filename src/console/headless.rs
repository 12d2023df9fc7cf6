//! Headless mode's operator output: a one-line status summary on stdout every few seconds.
//!
//! On a server without a terminal the log file says what happened and this line says how things are
//! now; it is also what scripts and the integration tests watch (`READY`, `DISCONNECTED`).

use std::{fmt::Write as _, sync::Arc, time::Duration};

use perpdesk_ui::view::{ConnectionState, Reconciliation, View};
use tokio::sync::watch;

/// The status line for one view.
pub fn status_line(v: &View) -> String {
    let h = &v.header;
    let s = &v.status;
    let conn = match h.connection {
        ConnectionState::Connecting => "connecting".to_owned(),
        ConnectionState::Connected => format!("connected {}/{}", h.streams_up, h.streams_total),
        ConnectionState::Degraded => format!("degraded {}/{}", h.streams_up, h.streams_total),
        ConnectionState::Disconnected => format!("DISCONNECTED {}/{}", h.streams_up, h.streams_total),
    };
    let mut line = format!(
        "status | {} ({}) | {} | {} | mode {} | universe {} | backfilled {}/{} | streaming {}/{} | closed bars {} | missing {} | reconnects {} | weight {}/{}",
        h.venue,
        h.environment,
        if h.live_trading { "LIVE" } else { "paper" },
        conn,
        h.mode.as_str(),
        s.universe_size,
        s.series_backfilled,
        s.series_total,
        s.series_streaming,
        s.series_total,
        s.closed_bars,
        s.missing_bars,
        s.reconnects,
        s.rest_weight_used,
        s.rest_weight_limit,
    );
    if s.rotations > 0 {
        let _ = write!(line, " | rotations {}", s.rotations);
    }
    match s.clock_offset_ms {
        Some(offset) => {
            let _ = write!(line, " | clock {offset:+} ms");
        }
        None => line.push_str(" | clock —"),
    }
    if let Some(age) = s.last_message_age_ms {
        let _ = write!(line, " | last msg {age} ms ago");
    }
    match s.listen_key_age_ms {
        Some(age) => {
            let _ = write!(line, " | listenKey {} s", age / 1000);
        }
        None => line.push_str(" | listenKey —"),
    }
    match s.reconciliation {
        Some(Reconciliation::Pending) => line.push_str(" | reconciliation pending"),
        Some(Reconciliation::Reconciled) => line.push_str(" | reconciled"),
        Some(Reconciliation::Unknown) => line.push_str(" | reconciliation UNKNOWN"),
        None => line.push_str(" | reconciliation —"),
    }
    // The trading half: what scripts and the integration tests watch for positions opening and closing.
    let closed = v.funnel.opened.unwrap_or(0).saturating_sub(v.positions.open);
    let _ = write!(
        line,
        " | signals {} | positions open {} opened {} closed {} | pnl {:+.2} | breaker {}",
        v.funnel.signals,
        v.positions.open,
        v.funnel.opened.unwrap_or(0),
        closed,
        v.positions.realized_pnl + v.positions.unrealized_pnl,
        v.breaker.tier.as_str(),
    );
    if let Some(block) = s.rest_blocked {
        let _ = write!(
            line,
            " | REST {} {} ms",
            if block.banned {
                "BANNED (418)"
            } else {
                "rate limited (429)"
            },
            block.remaining_ms
        );
    }
    if s.malformed_frames > 0 {
        let _ = write!(line, " | malformed {}", s.malformed_frames);
    }
    if let Some(m) = &s.message {
        let _ = write!(line, " | {m}");
    }
    line
}

/// True once every universe series is back-filled and streaming.
pub fn is_ready(v: &View) -> bool {
    let s = &v.status;
    s.universe_size > 0
        && s.series_total > 0
        && s.series_backfilled == s.series_total
        && s.series_streaming == s.series_total
}

/// Prints the status line every `every`, and a `READY` line the first time the universe is fully
/// back-filled and streaming. Ends when the view channel closes.
pub async fn print_status(mut views: watch::Receiver<Arc<View>>, every: Duration) {
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(every);
    let mut ready_said = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let v = Arc::clone(&views.borrow());
                // The engine's first view has not arrived yet: nothing true to say.
                if !v.header.venue.is_empty() {
                    println!("{}", status_line(&v));
                }
            }
            changed = views.changed() => {
                if changed.is_err() { return; }
                let v = Arc::clone(&views.borrow_and_update());
                if !ready_said && is_ready(&v) {
                    ready_said = true;
                    println!(
                        "READY: {} symbols x {} timeframes back-filled and streaming after {:.1} s",
                        v.status.universe_size,
                        v.timeframes.len(),
                        started.elapsed().as_secs_f64()
                    );
                    println!("{}", status_line(&v));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_says_disconnected_loudly_and_ready_needs_everything() {
        let mut v = View::default();
        v.header.connection = ConnectionState::Disconnected;
        v.header.streams_total = 3;
        assert!(status_line(&v).contains("DISCONNECTED 0/3"));
        assert!(status_line(&v).contains("clock — | listenKey — | reconciliation —"));
        v.status.clock_offset_ms = Some(-15);
        v.status.rest_weight_used = 40;
        v.status.rest_weight_limit = 2400;
        v.status.rest_blocked = Some(perpdesk_ui::view::RestBlock {
            remaining_ms: 2_000,
            banned: true,
        });
        let line = status_line(&v);
        assert!(line.contains("weight 40/2400 | clock -15 ms"), "{line}");
        assert!(line.contains("REST BANNED (418) 2000 ms"), "{line}");
        assert!(!is_ready(&v));
        v.status.universe_size = 2;
        v.status.series_total = 6;
        v.status.series_backfilled = 6;
        v.status.series_streaming = 5;
        assert!(!is_ready(&v));
        v.status.series_streaming = 6;
        assert!(is_ready(&v));
    }
}
