//! The venue clock: the offset between Binance's server time and ours, and the gate that stops trading
//! while it is unknown or too large.
//!
//! Every SIGNED request carries a `timestamp` that the venue accepts only if
//! `timestamp < serverTime + 1000` and `serverTime − timestamp ≤ recvWindow` (PROTOCOL.md §2); outside
//! that it answers `-1021 INVALID_TIMESTAMP`, and a cancel refused that way leaves an order live. So
//! timestamps are stamped in venue time: local time plus an offset measured from `GET /fapi/v1/time`.
//!
//! One sample is `(send, server, receive)`: the server read its clock somewhere between our send and
//! receive, best estimated at the midpoint, so `offset = server − (send + receive) / 2`, uncertain by
//! ± RTT/2. A single sample can be thrown off by one slow leg, so the offset in force is the **median**
//! of the last [`WINDOW`] samples (Hummingbot keeps 5 and also uses a median), which ignores up to two
//! wild ones. Trading is allowed only once at least one sample is in and the offset is within
//! ±[`MAX_TRADING_OFFSET_MS`]: a host clock that far off is a fault the operator must fix, and
//! `recvWindow` must stay at [`RECV_WINDOW_MS`] rather than be widened "to make -1021 go away".
//!
//! Pure logic: times are passed in (ms since the epoch, local clock), nothing here reads a clock.

use std::collections::VecDeque;

use crate::domain::TimestampMs;

/// Samples kept for the median.
pub const WINDOW: usize = 5;
/// Largest |offset| at which trading is still allowed.
pub const MAX_TRADING_OFFSET_MS: i64 = 1_000;
/// `recvWindow` sent on signed requests (the venue's default and its recommended maximum).
pub const RECV_WINDOW_MS: i64 = 5_000;
/// Re-sync at least this often (RELIABILITY.md §2: at start-up and every 5 minutes).
pub const RESYNC_INTERVAL_MS: i64 = 5 * 60_000;

/// One round trip to `GET /fapi/v1/time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSample {
    /// Local clock when the request was sent.
    pub send_ms: TimestampMs,
    /// `serverTime` from the response.
    pub server_ms: TimestampMs,
    /// Local clock when the response arrived.
    pub receive_ms: TimestampMs,
}

impl TimeSample {
    /// Round-trip time.
    pub fn rtt_ms(&self) -> i64 {
        self.receive_ms - self.send_ms
    }

    /// Server time minus the local clock at the RTT midpoint.
    pub fn offset_ms(&self) -> i64 {
        let midpoint = self.send_ms + self.rtt_ms().div_euclid(2);
        self.server_ms - midpoint
    }
}

/// A sample that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    #[error("time sample received before it was sent (send {send_ms}, receive {receive_ms})")]
    NegativeRtt {
        send_ms: TimestampMs,
        receive_ms: TimestampMs,
    },
}

/// Server-time offset estimator and the trading gate.
#[derive(Debug, Clone, Default)]
pub struct ServerClock {
    offsets: VecDeque<i64>,
    /// Median of `offsets`, recomputed on every sample.
    offset: Option<i64>,
    last_sync_local: Option<TimestampMs>,
    /// Set by `-1021`: the estimate is proven wrong until the next sample.
    invalidated: bool,
}

impl ServerClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one round trip and returns the offset now in force.
    ///
    /// After [`Self::on_invalid_timestamp`] the old samples are dropped first: the venue has just
    /// shown they no longer describe the clocks (drift, a host clock step).
    pub fn record(&mut self, sample: TimeSample) -> Result<i64, ClockError> {
        if sample.rtt_ms() < 0 {
            return Err(ClockError::NegativeRtt {
                send_ms: sample.send_ms,
                receive_ms: sample.receive_ms,
            });
        }
        if self.invalidated {
            self.offsets.clear();
            self.invalidated = false;
        }
        if self.offsets.len() == WINDOW {
            self.offsets.pop_front();
        }
        self.offsets.push_back(sample.offset_ms());
        let offset = median(&self.offsets);
        self.offset = Some(offset);
        self.last_sync_local = Some(sample.receive_ms);
        Ok(offset)
    }

    /// The offset in force (server − local), `None` before the first sample.
    pub fn offset_ms(&self) -> Option<i64> {
        self.offset
    }

    /// The `timestamp` for a signed request sent at local time `local_now`: venue time by the current
    /// estimate (local time itself before any sample; [`Self::trading_allowed`] is false then).
    pub fn timestamp_ms(&self, local_now: TimestampMs) -> TimestampMs {
        local_now + self.offset.unwrap_or(0)
    }

    /// True when orders may be sent: synced, not invalidated by a `-1021` since, and
    /// |offset| ≤ [`MAX_TRADING_OFFSET_MS`].
    pub fn trading_allowed(&self) -> bool {
        !self.invalidated && self.offset.is_some_and(|o| o.abs() <= MAX_TRADING_OFFSET_MS)
    }

    /// The venue answered `-1021 INVALID_TIMESTAMP`: block trading until the next sample, which
    /// replaces the old ones.
    pub fn on_invalid_timestamp(&mut self) {
        self.invalidated = true;
    }

    /// True when a new sample should be taken: never synced, invalidated, or the last sync is older
    /// than [`RESYNC_INTERVAL_MS`].
    pub fn needs_resync(&self, local_now: TimestampMs) -> bool {
        self.invalidated
            || self
                .last_sync_local
                .is_none_or(|t| local_now - t >= RESYNC_INTERVAL_MS)
    }
}

/// Median; the mean of the two middle values (rounded toward −∞) for an even count.
fn median(values: &VecDeque<i64>) -> i64 {
    let mut v: Vec<i64> = values.iter().copied().collect();
    v.sort_unstable();
    let n = v.len();
    match n {
        0 => 0,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]).div_euclid(2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A round trip with the given true offset, RTT split into outbound and return legs.
    fn sample(local_send: i64, true_offset: i64, out_leg: i64, back_leg: i64) -> TimeSample {
        TimeSample {
            send_ms: local_send,
            server_ms: local_send + out_leg + true_offset,
            receive_ms: local_send + out_leg + back_leg,
        }
    }

    /// R3 (RELIABILITY §9): a venue clock skewed by ±5 s that drifts 100 ms per minute for 24
    /// simulated hours, and jumps by ±5 s every 2 hours. The client signs a request every 10 s with
    /// the estimate in force, re-syncs (5 samples) every 5 minutes and after a `-1021`, and retries
    /// the refused request once. Per 5-minute step at most one `-1021`; the retry after the re-sync
    /// is never refused; the trading gate is shut whenever the estimate is more than 1 s off zero.
    #[test]
    fn a_day_of_skew_drift_and_jumps_costs_at_most_one_invalid_timestamp_per_step() {
        const DAY: i64 = 86_400_000;
        const EVERY: i64 = 10_000;
        const STEP: i64 = RESYNC_INTERVAL_MS;
        // The venue's rule: `timestamp < serverTime + 1000 && serverTime − timestamp ≤ recvWindow`.
        let accepted = |ts: i64, server: i64| ts < server + 1_000 && server - ts <= RECV_WINDOW_MS;
        for (skew, drift_per_min) in [(5_000_i64, 100_i64), (5_000, -100), (-5_000, 100), (-5_000, -100)] {
            // server − local at local time `t` (ms).
            let venue_offset = |t: i64| {
                let jumps = t / 7_200_000;
                let jump = if jumps % 2 == 1 { skew.signum() * -5_000 } else { 0 };
                skew + drift_per_min * t / 60_000 + jump
            };
            let mut clock = ServerClock::new();
            let sync = |clock: &mut ServerClock, t: i64| {
                for k in 0..5 {
                    let send = t + k * 30;
                    // 5 ms out, 15 ms back: the midpoint estimate is 5 ms off by construction.
                    let s = sample(send, venue_offset(send + 5), 5, 15);
                    clock.record(s).expect("positive rtt");
                }
            };
            sync(&mut clock, 0);
            let mut last_sync = 0;
            let mut refusals_per_step = std::collections::BTreeMap::<i64, u32>::new();
            let (mut allowed_seen, mut blocked_seen) = (false, false);
            let mut t = 0;
            while t < DAY {
                if clock.needs_resync(t) {
                    sync(&mut clock, t);
                    last_sync = t;
                }
                let server = t + 5 + venue_offset(t + 5);
                if !accepted(clock.timestamp_ms(t), server) {
                    *refusals_per_step.entry(t / STEP).or_default() += 1;
                    clock.on_invalid_timestamp();
                    assert!(!clock.trading_allowed(), "a -1021 shuts the gate");
                    sync(&mut clock, t + 200);
                    last_sync = t;
                    let server = t + 400 + venue_offset(t + 400);
                    assert!(
                        accepted(clock.timestamp_ms(t + 395), server),
                        "skew {skew}, drift {drift_per_min}: refused again after the re-sync at {t}"
                    );
                }
                let estimate = clock.offset_ms().expect("synced");
                let truth = venue_offset(t);
                assert_eq!(clock.trading_allowed(), estimate.abs() <= MAX_TRADING_OFFSET_MS);
                // A jump that leaves the timestamps inside the venue's window is not refused; the
                // estimate is then off until the next scheduled sync. Otherwise it lags the drift
                // by at most 5 minutes × 100 ms.
                if last_sync / 7_200_000 == t / 7_200_000 {
                    assert!((estimate - truth).abs() <= 520, "{estimate} vs {truth} at {t}");
                    if truth.abs() > MAX_TRADING_OFFSET_MS + 520 {
                        assert!(!clock.trading_allowed(), "trading allowed {truth} ms off at {t}");
                    }
                }
                allowed_seen |= clock.trading_allowed();
                blocked_seen |= !clock.trading_allowed();
                t += EVERY;
            }
            assert!(
                refusals_per_step.values().all(|&n| n <= 1),
                "skew {skew}, drift {drift_per_min}: {refusals_per_step:?}"
            );
            // Every jump that puts the client's timestamps ahead of the venue is refused once (5 or
            // 6 of the 11 jumps in 24 h, by the sign of the skew).
            assert!(
                refusals_per_step.values().sum::<u32>() >= 5,
                "{refusals_per_step:?}"
            );
            assert!(blocked_seen, "the gate was never shut");
            // The drift carries the offset through zero once in the day for the two runs whose drift
            // opposes the skew; for the others the gate stays shut all day.
            assert_eq!(allowed_seen, skew.signum() != drift_per_min.signum());
        }
    }

    #[test]
    fn offset_is_measured_at_the_rtt_midpoint() {
        let s = TimeSample {
            send_ms: 1_000,
            server_ms: 1_550,
            receive_ms: 1_100,
        };
        assert_eq!(s.rtt_ms(), 100);
        assert_eq!(s.offset_ms(), 500);
        // Symmetric legs give the exact offset whatever the RTT.
        for rtt in [0, 2, 40, 400] {
            assert_eq!(sample(10_000, -250, rtt / 2, rtt / 2).offset_ms(), -250);
        }
    }

    #[test]
    fn median_ignores_outliers() {
        let mut c = ServerClock::new();
        c.record(sample(0, 300, 20, 20)).expect("ok");
        c.record(sample(1_000, 300, 2_000, 10)).expect("ok"); // slow outbound leg: reads +1295
        c.record(sample(2_000, 300, 15, 15)).expect("ok");
        c.record(sample(3_000, 300, 10, 3_000)).expect("ok"); // slow return leg: reads −1195
        c.record(sample(4_000, 300, 25, 25)).expect("ok");
        assert_eq!(c.offset_ms(), Some(300));
        assert!(c.trading_allowed());
        assert_eq!(c.timestamp_ms(50_000), 50_300);
    }

    #[test]
    fn even_count_takes_the_mean_of_the_middle_two() {
        let mut c = ServerClock::new();
        c.record(sample(0, 100, 5, 5)).expect("ok");
        assert_eq!(c.offset_ms(), Some(100));
        c.record(sample(10, 201, 5, 5)).expect("ok");
        assert_eq!(c.offset_ms(), Some(150));
    }

    #[test]
    fn trading_gate_before_sync_and_on_skew() {
        let mut c = ServerClock::new();
        assert!(!c.trading_allowed(), "no sync yet");
        assert_eq!(c.timestamp_ms(1_234), 1_234);
        assert!(c.needs_resync(0));

        c.record(sample(0, 5_000, 10, 10)).expect("ok");
        assert_eq!(c.offset_ms(), Some(5_000));
        assert!(!c.trading_allowed(), "+5 s skew");
        assert_eq!(c.timestamp_ms(100), 5_100, "timestamps still follow the venue");

        let mut c = ServerClock::new();
        c.record(sample(0, -5_000, 10, 10)).expect("ok");
        assert!(!c.trading_allowed(), "−5 s skew");

        let mut c = ServerClock::new();
        c.record(sample(0, 1_000, 10, 10)).expect("ok");
        assert!(c.trading_allowed(), "exactly 1 s is allowed");
        let mut c = ServerClock::new();
        c.record(sample(0, -1_001, 10, 10)).expect("ok");
        assert!(!c.trading_allowed(), "1001 ms is not");
    }

    #[test]
    fn drift_moves_the_median_within_the_window() {
        // Host clock drifting 100 ms per sample relative to the venue.
        let mut c = ServerClock::new();
        for i in 0..20_i64 {
            c.record(sample(i * 60_000, i * 100, 10, 10)).expect("ok");
        }
        // Last five offsets: 1500..=1900 → median 1700.
        assert_eq!(c.offset_ms(), Some(1_700));
        assert!(!c.trading_allowed());
    }

    #[test]
    fn invalid_timestamp_blocks_until_a_fresh_sample_replaces_the_old_ones() {
        let mut c = ServerClock::new();
        for i in 0..5 {
            c.record(sample(i * 1_000, 200, 10, 10)).expect("ok");
        }
        assert!(c.trading_allowed());
        c.on_invalid_timestamp();
        assert!(!c.trading_allowed());
        assert!(c.needs_resync(5_000));
        // The host clock stepped by 700 ms; one new sample is the whole estimate now.
        c.record(sample(6_000, 900, 10, 10)).expect("ok");
        assert_eq!(c.offset_ms(), Some(900));
        assert!(c.trading_allowed());
    }

    #[test]
    fn resync_is_due_after_five_minutes() {
        let mut c = ServerClock::new();
        c.record(sample(0, 0, 10, 10)).expect("ok");
        assert!(!c.needs_resync(20 + RESYNC_INTERVAL_MS - 1));
        assert!(c.needs_resync(20 + RESYNC_INTERVAL_MS));
    }

    #[test]
    fn negative_rtt_is_rejected_and_changes_nothing() {
        let mut c = ServerClock::new();
        c.record(sample(0, 100, 10, 10)).expect("ok");
        let bad = TimeSample {
            send_ms: 100,
            server_ms: 50_000,
            receive_ms: 99,
        };
        assert!(matches!(c.record(bad), Err(ClockError::NegativeRtt { .. })));
        assert_eq!(c.offset_ms(), Some(100));
    }
}
