//! A third-party Binance client, unchanged, against `perpdesk sim`: Binance's own Python connector
//! (`binance-futures-connector` 4.2.0) reads exchangeInfo, tickers, klines (with startTime / endTime /
//! limit and the 1500 cap), the mark price and an error code over REST, and subscribes to a kline
//! stream over WebSocket, and trades signed orders (`tests/third_party/binance_connector_signed_check.py`).
//! The market-data checks live in `tests/third_party/binance_connector_check.py`.
//!
//! The connector comes from the Python package registry, so on a machine without it the test prints a
//! SKIP line and passes; `.ci/run` installs it and sets `PERPDESK_REQUIRE_THIRD_PARTY=1`, which makes
//! a missing connector a failure.

mod support;

use std::process::Command;

use support::start_sim;

fn python_path() -> Option<String> {
    let path = std::env::var("PERPDESK_PYTHONPATH").unwrap_or_default();
    let ok = Command::new("python3")
        .args([
            "-c",
            "import binance.um_futures, binance.websocket.um_futures.websocket_client",
        ])
        .env("PYTHONPATH", &path)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(path);
    }
    let msg =
        "binance-futures-connector is not importable by python3 (set PERPDESK_PYTHONPATH, or run .ci/run)";
    assert!(
        std::env::var_os("PERPDESK_REQUIRE_THIRD_PARTY").is_none(),
        "{msg}"
    );
    eprintln!("SKIP: third-party client test: {msg}");
    None
}

#[test]
fn binance_python_connector_works_against_the_simulator() {
    let Some(pythonpath) = python_path() else { return };
    let (_sim, rest, ws) = start_sim(&["--seed", "5"]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/third_party/binance_connector_check.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .args([&rest, &ws])
        .env("PYTHONPATH", &pythonpath)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "connector check failed:\n{stdout}\n{stderr}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("json summary");
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["unknown_symbol_error"], -1121);
    assert_eq!(summary["klines_limit_5000"], 1500);
    assert!(summary["ws_kline_frames"].as_u64().is_some_and(|n| n >= 1));
}

/// Signed trading with the unchanged connector: place, query (by id and client id), cancel, market in
/// and out, balance / account / position risk, a listenKey; a wrong secret is refused with -1022. The
/// simulator accepts its documented default key pair.
#[test]
fn binance_python_connector_trades_signed_on_the_simulator() {
    let Some(pythonpath) = python_path() else { return };
    let (sim, rest, _ws) = start_sim(&["--seed", "6", "--symbols", "20"]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/third_party/binance_connector_signed_check.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .args([
            rest.as_str(),
            perpdesk::sim::auth::DEFAULT_API_KEY,
            perpdesk::sim::auth::DEFAULT_API_SECRET,
        ])
        .env("PYTHONPATH", &pythonpath)
        .output()
        .expect("run python3");
    drop(sim);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "signed connector check failed:\n{stdout}\n{stderr}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("json summary");
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["cancelled"], "CANCELED");
    assert_eq!(summary["wrong_signature_error"], -1022);
    assert_eq!(summary["reduce_only_error"], -2022);
}
