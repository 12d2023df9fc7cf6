use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::{domain::Side, positions::events::RunMode, strategy::Mode};

const SYM: SymbolId = SymbolId(1);

fn new_long(entry: f64, stop: f64, target: f64) -> NewPosition {
    NewPosition {
        symbol: SYM,
        side: Side::Long,
        qty: 1.0,
        entry,
        leverage: 5,
        take_profit: target,
        stop_loss: stop,
        trailing: None,
        liquidation: None,
        expires_at: TimestampMs::MAX,
        strategy: Mode::Ict,
        run_mode: RunMode::Paper,
        feature_slot: None,
    }
}

fn closes(out: &[LifecycleEvent]) -> Vec<(PositionId, CloseReason)> {
    out.iter()
        .filter_map(|e| match e.kind {
            EventKind::Closed { reason, .. } => Some((e.position, reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn positions_open_get_checked_and_close_with_fees() {
    let mut book = PositionBook::new(BookConfig::default());
    let mut out = Vec::new();
    book.on_mark(SYM, 100.0, 0.0001, 8 * 3_600_000, 1_000);
    let id = book
        .open(&new_long(100.0, 95.0, 110.0), 0, 1_000, &mut out)
        .expect("opened");
    assert_eq!(out[0].kind.name(), "created");
    // Nothing is due before the 5 s lane interval.
    assert_eq!(book.run_due(4_999, 1_000, &mut out), 0);
    book.on_mark(SYM, 111.0, 0.0001, 8 * 3_600_000, 2_000);
    book.on_mark(SYM, 109.0, 0.0001, 8 * 3_600_000, 3_000);
    assert_eq!(book.run_due(5_000, 3_000, &mut out), 1);
    assert_eq!(closes(&out), vec![(id, CloseReason::TakeProfit)]);
    let Some(EventKind::Closed {
        exit_price,
        pnl,
        fees,
        ..
    }) = out.last().map(|e| e.kind)
    else {
        panic!("closed last")
    };
    assert_eq!(exit_price, 110.0);
    let expected_fees = 100.0 * 0.0005 + 110.0 * 0.0002;
    assert!((fees - expected_fees).abs() < 1e-12);
    assert!((pnl - (10.0 - expected_fees)).abs() < 1e-12);
    assert!(book.is_empty());
    assert_eq!(book.totals().wins, 1);
    assert_eq!(
        book.close(id, CloseReason::Manual, 4_000, &mut out),
        Err(PositionsError::UnknownPosition(id))
    );
}

#[test]
fn max_positions_is_enforced() {
    let mut book = PositionBook::new(BookConfig {
        max_positions: 2,
        ..BookConfig::default()
    });
    let mut out = Vec::new();
    for _ in 0..2 {
        book.open(&new_long(100.0, 95.0, 110.0), 0, 0, &mut out)
            .expect("opened");
    }
    assert_eq!(
        book.open(&new_long(100.0, 95.0, 110.0), 0, 0, &mut out),
        Err(Refusal::MaxPositions)
    );
    assert_eq!(book.close_all(CloseReason::KillSwitch, 1, &mut out), 2);
    assert!(book.open(&new_long(100.0, 95.0, 110.0), 0, 0, &mut out).is_ok());
}

#[test]
fn funding_is_settled_once_per_funding_time_for_positions_open_at_it() {
    let mut book = PositionBook::new(BookConfig::default());
    let mut out = Vec::new();
    let t = 8 * 3_600_000;
    book.on_mark(SYM, 100.0, 0.0001, t, t - 60_000);
    let long = book
        .open(&new_long(100.0, 90.0, 120.0), 0, t - 60_000, &mut out)
        .expect("opened");
    let mut short = new_long(100.0, 110.0, 80.0);
    short.side = Side::Short;
    let short = book.open(&short, 0, t - 60_000, &mut out).expect("opened");
    // The stream moves past the funding time: the next funding time advances by 8 h.
    book.on_mark(SYM, 102.0, 0.0003, t + 8 * 3_600_000, t + 5);
    // A position opened after the settlement does not pay it.
    let late = book
        .open(&new_long(102.0, 90.0, 120.0), 0, t + 10, &mut out)
        .expect("opened");
    assert_eq!(book.apply_funding(), 2);
    assert_eq!(book.apply_funding(), 0, "once");
    let funding = |id| book.get(id).expect("open").funding;
    // Charged at the rate in force before the settlement (0.0001) on the mark after it (102).
    assert!((funding(long) + 0.0102).abs() < 1e-12);
    assert!((funding(short) - 0.0102).abs() < 1e-12);
    assert_eq!(funding(late), 0.0);
}

#[test]
fn expired_positions_close_at_the_mark_after_an_expired_event() {
    let mut book = PositionBook::new(BookConfig::default());
    let mut out = Vec::new();
    let mut n = new_long(100.0, 95.0, 110.0);
    n.expires_at = 10_000;
    let id = book.open(&n, 0, 0, &mut out).expect("opened");
    book.open(&new_long(100.0, 95.0, 110.0), 0, 0, &mut out)
        .expect("opened");
    book.on_mark(SYM, 101.0, 0.0, 0, 5_000);
    assert_eq!(book.expire(9_999, &mut out), 0);
    assert_eq!(book.expire(10_000, &mut out), 1);
    let tail: Vec<&str> = out.iter().rev().take(2).map(|e| e.kind.name()).collect();
    assert_eq!(tail, ["closed", "expired"]);
    assert_eq!(closes(&out), vec![(id, CloseReason::Expiry)]);
    assert_eq!(book.len(), 1);
}

#[test]
fn smart_monitoring_off_checks_everything_every_second() {
    let mut book = PositionBook::new(BookConfig {
        smart_monitoring: false,
        ..BookConfig::default()
    });
    let mut out = Vec::new();
    book.open(&new_long(100.0, 95.0, 110.0), 0, 0, &mut out)
        .expect("opened");
    book.on_mark(SYM, 109.5, 0.0, 0, 1);
    assert_eq!(book.run_due(1_000, 1, &mut out), 1);
    assert_eq!(book.positions().next().map(|p| p.lane), Some(Lane::Fixed1s));
    let stats = book.lane_stats(1_000);
    assert_eq!((stats.len(), stats[0].positions), (1, 1));
    assert_eq!(book.run_due(1_999, 1, &mut out), 0);
    assert_eq!(book.run_due(2_000, 1, &mut out), 1);
}

#[test]
fn a_critical_position_moves_to_the_100ms_lane() {
    let mut book = PositionBook::new(BookConfig::default());
    let mut out = Vec::new();
    book.open(&new_long(100.0, 95.0, 110.0), 0, 0, &mut out)
        .expect("opened");
    book.on_mark(SYM, 109.0, 0.0, 0, 1);
    book.run_due(5_000, 1, &mut out);
    assert_eq!(book.positions().next().map(|p| p.lane), Some(Lane::Ms100));
    assert_eq!(book.run_due(5_099, 1, &mut out), 0);
    assert_eq!(book.run_due(5_100, 1, &mut out), 1);
}

#[test]
fn the_scheduler_holds_100_000_positions() {
    let n = 100_000;
    let mut book = PositionBook::new(BookConfig {
        max_positions: n,
        ..BookConfig::default()
    });
    let mut out = Vec::with_capacity(4 * n);
    for i in 0..n {
        let mut p = new_long(100.0, 95.0, 110.0);
        p.symbol = SymbolId((i % 200) as u16);
        book.open(&p, (i % 5_000) as i64, 0, &mut out).expect("opened");
    }
    assert_eq!(book.len(), n);
    let stats = book.lane_stats(0);
    assert_eq!(stats.iter().map(|s| s.positions).sum::<usize>(), n);
    // Half the symbols move near their targets: those positions go to the fast lanes.
    for s in 0..100u16 {
        book.on_mark(SymbolId(s), 109.0, 0.0, 0, 1);
    }
    out.clear();
    // Every position is checked once within its first 5 s lane interval (opened over 0..5 s).
    let mut t = 0;
    let mut checks = 0;
    while t <= 10_000 {
        checks += book.run_due(t, 1, &mut out);
        t += 100;
    }
    let stats = book.lane_stats(t);
    assert_eq!(stats.iter().map(|s| s.positions).sum::<usize>(), n);
    assert_eq!(
        stats[0].positions,
        n / 2,
        "the near-target half is in the 100 ms lane"
    );
    // Nothing is overdue: every position was checked within its lane's interval of the last round.
    let last = t - 100;
    for p in book.positions() {
        assert!(p.last_check > 0, "{} never checked", p.id);
        assert!(last - p.last_check < p.lane.interval_ms(), "{} overdue", p.id);
    }
    assert!(checks > n, "{checks} checks");
    assert_eq!(book.totals().checks as usize, checks);
    assert!(book.heap_bytes() > 0);
}

/// A mark path for one symbol and, after each mark, whether the monitor runs a check round then.
fn path() -> impl Strategy<Value = Vec<(f64, u16)>> {
    proptest::collection::vec((80.0..120.0f64, 0u16..600), 1..120)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Whatever the prices, checks, expiries and closes: every position gets `Created` first and
    /// exactly one `Closed`, last.
    #[test]
    fn every_position_ends_in_exactly_one_terminal_event(
        specs in proptest::collection::vec((any::<bool>(), 1.0..15.0f64, 1.0..15.0f64, any::<bool>(), 0i64..200_000), 1..40),
        marks in path(),
        close_some in proptest::collection::vec(any::<u8>(), 0..10),
    ) {
        let mut book = PositionBook::new(BookConfig::default());
        let mut out = Vec::new();
        let mut now = 0;
        let mut at = 0;
        book.on_mark(SYM, 100.0, 0.0001, 3_600_000, at);
        for (long, sl, tp, trails, expiry) in &specs {
            let mut n = new_long(100.0, 100.0 - sl, 100.0 + tp);
            if !long {
                n.side = Side::Short;
                n.stop_loss = 100.0 + sl;
                n.take_profit = 100.0 - tp;
            }
            n.trailing = trails.then_some(*sl);
            n.expires_at = *expiry;
            n.liquidation = Some(if *long { 100.0 - 2.0 * sl } else { 100.0 + 2.0 * sl });
            book.open(&n, now, at, &mut out).expect("opened");
        }
        for (i, (mark, dt)) in marks.iter().enumerate() {
            at += i64::from(*dt) * 100;
            now += i64::from(*dt);
            book.on_mark(SYM, *mark, 0.0001, 3_600_000, at);
            book.run_due(now, at, &mut out);
            if i % 10 == 0 {
                book.expire(at, &mut out);
                book.apply_funding();
            }
            if let Some(pick) = close_some.get(i) {
                let ids: Vec<PositionId> = book.positions().map(|p| p.id).collect();
                if !ids.is_empty() {
                    let id = ids[usize::from(*pick) % ids.len()];
                    book.close(id, CloseReason::Manual, at, &mut out).expect("open");
                }
            }
        }
        book.close_all(CloseReason::Breaker, at, &mut out);
        prop_assert!(book.is_empty());
        let mut seen: HashMap<PositionId, (usize, bool)> = HashMap::new();
        for e in &out {
            let entry = seen.entry(e.position).or_insert((0, false));
            prop_assert!(!entry.1, "event after Closed: {:?}", e);
            if entry.0 == 0 {
                prop_assert_eq!(e.kind.name(), "created");
            }
            entry.0 += 1;
            entry.1 = e.kind.is_terminal();
        }
        prop_assert_eq!(seen.len(), specs.len());
        prop_assert!(seen.values().all(|(_, closed)| *closed));
        prop_assert_eq!(book.totals().closed, specs.len() as u64);
    }

    /// Checks at arbitrary moments miss nothing: a position closes at its stop or target exactly when
    /// the mark crossed one of them at some point, whether or not a check ran at that moment; and when
    /// the first crossing was the stop, the exit is the stop.
    #[test]
    fn no_trigger_is_missed_between_checks(
        long in any::<bool>(),
        sl in 0.5..15.0f64,
        tp in 0.5..15.0f64,
        marks in proptest::collection::vec((80.0..120.0f64, any::<bool>()), 1..200),
    ) {
        let mut book = PositionBook::new(BookConfig::default());
        let mut out = Vec::new();
        let mut n = new_long(100.0, 100.0 - sl, 100.0 + tp);
        if !long {
            n.side = Side::Short;
            n.stop_loss = 100.0 + sl;
            n.take_profit = 100.0 - tp;
        }
        let id = book.open(&n, 0, 0, &mut out).expect("opened");
        let s = if long { 1.0 } else { -1.0 };
        let mut first: Option<CloseReason> = None;
        let mut now = 0;
        for (i, (mark, check)) in marks.iter().enumerate() {
            book.on_mark(SYM, *mark, 0.0, 0, i as i64);
            if first.is_none() {
                if s * (mark - n.stop_loss) <= 0.0 {
                    first = Some(CloseReason::StopLoss);
                } else if s * (mark - n.take_profit) >= 0.0 {
                    first = Some(CloseReason::TakeProfit);
                }
            }
            if *check {
                // Jump the monitoring clock so the position is due whatever its lane.
                now += 5_000;
                book.run_due(now, i as i64, &mut out);
            }
        }
        now += 5_000;
        book.run_due(now, marks.len() as i64, &mut out);
        let closed = closes(&out);
        match first {
            None => prop_assert!(closed.is_empty() && book.get(id).is_some()),
            Some(CloseReason::StopLoss) => prop_assert_eq!(closed, vec![(id, CloseReason::StopLoss)]),
            Some(_) => {
                prop_assert_eq!(closed.len(), 1);
                prop_assert!(closed[0].1 == CloseReason::TakeProfit || closed[0].1 == CloseReason::StopLoss);
            }
        }
    }
}

#[test]
fn a_restored_position_emits_nothing_is_checked_at_once_and_numbers_continue() {
    let mut book = PositionBook::new(BookConfig::default());
    let mut out = Vec::new();
    let id = book
        .open(&new_long(100.0, 95.0, 110.0), 0, 0, &mut out)
        .expect("opens");
    let p = book.get(id).expect("open").clone();
    let mut fresh = PositionBook::new(BookConfig::default());
    fresh.number_after(7);
    fresh.restore(p.clone(), 10_000).expect("restores");
    assert_eq!(fresh.restore(p, 10_000), Err(Refusal::AlreadyOpen));
    assert_eq!(fresh.len(), 1);
    fresh.on_mark(SYM, 94.0, 0.0, 0, 1);
    let mut out = Vec::new();
    assert_eq!(fresh.run_due(10_000, 1, &mut out), 1, "due at once");
    assert_eq!(closes(&out), [(id, CloseReason::StopLoss)]);
    assert!(!out.iter().any(|e| matches!(e.kind, EventKind::Created { .. })));
    let next = fresh
        .open(&new_long(100.0, 95.0, 110.0), 10_000, 2, &mut Vec::new())
        .expect("opens");
    assert_eq!(next, PositionId(8));
}
