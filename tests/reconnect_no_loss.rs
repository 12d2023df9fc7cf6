//! The simulated exchange dies under a running engine and comes back on the same port: the engine
//! must show the outage, reconnect by itself, and end up holding exactly the simulator's closed bars
//! — none missing across the outage, none duplicated.
//!
//! Runs in-process (library API) so the engine's stored bars can be compared bar for bar with the
//! market source. The simulator runs at 60× so that 1-minute bars close during the outage.

use std::{sync::Arc, time::Duration};

use perpdesk::{
    app::{RunOptions, start_engine},
    domain::{Interval, now_ms},
    engine::EngineSettings,
    sim::{
        server::{self, SimClock, SimSettings},
        source::MarketSource,
        synthetic::SyntheticMarket,
    },
};
use perpdesk_ui::view::ConnectionState;

mod in_process;
use in_process::wait_view;

const SPEED: f64 = 60.0;

fn settings() -> EngineSettings {
    EngineSettings {
        history_bars: 120,
        ring_capacity: 1000,
        view_fps: 30,
        chart_bars: 60,
        ..in_process::engine_settings(12, vec![Interval::M1, Interval::M5])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_loses_no_closed_bar() {
    let clock = SimClock::synthetic(SPEED);
    let start = clock.now();
    let history = start - (clock.anchor_sim() - 3 * 86_400_000);
    let market: Arc<dyn MarketSource> = Arc::new(SyntheticMarket::new(7, 40, start, history));
    let sim = server::start(Arc::clone(&market), clock, SimSettings::default())
        .await
        .expect("sim starts");
    let port = sim.addr.port();
    let opts = RunOptions {
        rest_url: sim.rest_url.clone(),
        ws_url: sim.ws_url.clone(),
        engine: settings(),
        streams_per_connection: 10,
        stale_after: Duration::from_secs(30),
        rest_concurrency: 4,
        rotate_after: Duration::from_secs(23 * 3600),
        ml: perpdesk::app::MlOptions::default(),
    };
    let mut engine = start_engine(&opts).expect("engine starts");
    let mut views = engine.views.clone();
    wait_view(&mut views, &"", "back-filled and streaming", |v| {
        v.status.universe_size == 12 && v.status.series_streaming == v.status.series_total
    })
    .await;

    // Kill the exchange; the console must say so.
    sim.shutdown().await;
    wait_view(&mut views, &"", "disconnected", |v| {
        v.header.connection == ConnectionState::Disconnected
    })
    .await;
    // Let simulated time run on for a few minutes of bars while nobody is connected.
    tokio::time::sleep(Duration::from_secs(5)).await;

    // Same seed, same clock, same port: the market continues where it was.
    let sim = server::start(
        Arc::clone(&market),
        clock,
        SimSettings {
            port,
            ..SimSettings::default()
        },
    )
    .await
    .expect("sim restarts on the same port");
    wait_view(&mut views, &"", "reconnected", |v| {
        v.header.connection == ConnectionState::Connected && v.status.reconnects >= 1
    })
    .await;
    // Give the gap fill and a couple more closed minutes time to land.
    tokio::time::sleep(Duration::from_secs(4)).await;
    engine.shutdown.send_replace(true);
    let joined = tokio::time::timeout(Duration::from_secs(10), &mut engine.join).await;
    let state = joined.expect("engine stops").expect("engine task ok");
    let sim_now = clock.now();
    sim.shutdown().await;

    let mut compared = 0usize;
    for id in state.universe() {
        let s = state.symbol_state(*id).expect("state for every universe symbol");
        let name = state.symbol_name(*id).expect("name");
        let idx = market
            .symbols()
            .iter()
            .position(|m| m.name == name)
            .expect("symbol in the market");
        for series in &s.series {
            assert_eq!(
                series.gap_count(),
                0,
                "{name} {}: missing bars {:?}",
                series.interval(),
                series.gaps()
            );
            let closed: Vec<_> = series.closed().iter().collect();
            assert!(closed.len() >= 100, "{name}: only {} bars", closed.len());
            for pair in closed.windows(2) {
                assert!(
                    pair[0].open_time < pair[1].open_time,
                    "{name}: bars out of order or duplicated"
                );
            }
            for bar in closed {
                let truth = market
                    .bar(idx, series.interval(), bar.open_time, sim_now)
                    .expect("bar exists");
                assert!(truth.closed);
                // Prices travel as decimal strings at the symbol's precision: compare at that precision.
                let tol = 10f64.powi(-(market.symbols()[idx].price_precision as i32)) / 2.0 + 1e-12;
                assert!(
                    (truth.close - bar.close).abs() <= tol,
                    "{name} {}: close differs",
                    bar.open_time
                );
                assert!((truth.high - bar.high).abs() <= tol && (truth.low - bar.low).abs() <= tol);
                compared += 1;
            }
        }
    }
    assert!(compared > 12 * 200, "compared only {compared} bars");
    let _ = now_ms();
}
