//! K3: paper mode (the default) sends no signed request and no API-key request, even with Binance
//! keys in the environment. The console runs headless against an in-process simulator whose trading
//! side counts every authenticated (or refused) request.

mod support;

use std::{sync::Arc, sync::atomic::Ordering, time::Duration};

use perpdesk::sim::{
    server::{self, SimClock, SimSettings},
    synthetic::SyntheticMarket,
};
use support::{Proc, data_dir};

#[test]
fn paper_mode_sends_zero_signed_requests() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sim = rt.block_on(async {
        let clock = SimClock::synthetic(1.0);
        let start = clock.now();
        let market = SyntheticMarket::new(4, 30, start, start - (clock.anchor_sim() - 86_400_000));
        server::start(Arc::new(market), clock, SimSettings::default())
            .await
            .expect("sim starts")
    });
    let data = data_dir();
    let data_arg = data.path().to_str().expect("utf-8 path");
    let mut console = Proc::spawn(
        &[
            "--headless",
            "--rest-url",
            &sim.rest_url,
            "--ws-url",
            &sim.ws_url,
            "--universe-size",
            "10",
            "--timeframes",
            "1m,5m,15m",
            "--history-bars",
            "100",
            "--data-dir",
            data_arg,
        ],
        // Keys present (the simulator's own valid pair): paper mode must still not use them.
        &[
            ("BINANCE_API_KEY", perpdesk::sim::auth::DEFAULT_API_KEY),
            ("BINANCE_API_SECRET", perpdesk::sim::auth::DEFAULT_API_SECRET),
        ],
    );
    let status = console.wait_for("a status line", Duration::from_secs(120), |l| {
        l.starts_with("status |") && l.contains("connected")
    });
    assert!(status.contains("| paper |"), "{status}");
    console.signal("-TERM");
    assert_eq!(console.wait_exit(Duration::from_secs(20)), Some(0));
    let stats = &sim.trading.stats;
    assert_eq!(
        stats.signed_requests.load(Ordering::Relaxed),
        0,
        "signed requests in paper mode"
    );
    assert_eq!(
        stats.key_requests.load(Ordering::Relaxed),
        0,
        "API-key requests in paper mode"
    );
    assert_eq!(
        stats.auth_failures.load(Ordering::Relaxed),
        0,
        "authentication attempts in paper mode"
    );
    for line in &console.seen {
        assert!(
            !line.contains(perpdesk::sim::auth::DEFAULT_API_SECRET),
            "secret printed: {line}"
        );
    }
    rt.block_on(sim.shutdown());
}
