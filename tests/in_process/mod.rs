//! Helpers for the integration tests that run the engine in-process against the simulated exchange
//! (`faults`, `reconnect_no_loss`, `chaos_soak`): engine settings sized for a test, waiting for a
//! published view, and the simulator's own closed bars to compare the engine's export with.
//!
//! Why shared: these tests prove the same property (the stored closed bars equal the venue's) under
//! different faults; one copy of the comparison's reference keeps them judging by the same rule.
//! Deadlines are generous upper bounds for "something is wrong", never performance claims.

#![allow(dead_code)]

use std::{fmt::Display, sync::Arc, time::Duration};

use perpdesk::{
    domain::{Interval, TimestampMs},
    engine::EngineSettings,
    market::export,
    sim::source::MarketSource,
    strategy::Mode,
};
use perpdesk_ui::view::View;
use tokio::sync::watch;

/// Paper-trading ICT settings on the simulator for `universe` symbols on `timeframes`; tests adjust
/// the rest with struct-update syntax.
pub fn engine_settings(universe: usize, timeframes: Vec<Interval>) -> EngineSettings {
    EngineSettings {
        venue: "simulated exchange".into(),
        environment: "sim".into(),
        live_trading: false,
        mode: Mode::Ict,
        universe_size: universe,
        timeframes,
        history_bars: 60,
        ring_capacity: 5_000,
        universe_refresh: Duration::from_secs(3600),
        trading_cycle: Duration::from_secs(60),
        virtual_cycle: Duration::from_secs(10),
        view_fps: 20,
        chart_bars: 30,
        feature_store: None,
        trading: perpdesk::engine::TradingSettings::default(),
    }
}

/// Waits (up to two minutes) until a published view satisfies `pred`; `context` (a seed to replay,
/// or "") leads the failure message, which also shows the last status.
pub async fn wait_view(
    views: &mut watch::Receiver<Arc<View>>,
    context: &dyn Display,
    what: &str,
    pred: impl Fn(&View) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        if pred(&views.borrow_and_update()) {
            return;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(
            !left.is_zero(),
            "{context} timed out waiting for {what}; status {:?}",
            views.borrow().status
        );
        let _ = tokio::time::timeout(left, views.changed()).await;
    }
}

/// The simulator's closed bars of one series as export rows, from the bar opening at `from` for as
/// long as `keep(open_time)` holds.
pub fn market_rows(
    market: &dyn MarketSource,
    name: &str,
    interval: Interval,
    from: TimestampMs,
    keep: impl Fn(TimestampMs) -> bool,
    out: &mut Vec<export::Row>,
) {
    let index = market
        .symbols()
        .iter()
        .position(|s| s.name == name)
        .expect("listed");
    let spec = &market.symbols()[index];
    let mut t = from;
    while keep(t) {
        let bar = market.bar(index, interval, t, i64::MAX / 4).expect("bar exists");
        out.push(export::format_row(
            name,
            interval,
            &bar,
            spec.price_precision,
            spec.quantity_precision,
        ));
        t = interval.next_open(t);
    }
}
