//! The real `perpdesk` binary against the real `perpdesk sim` binary, over loopback.
//!
//! * the simulator's REST surface behaves like Binance's (exchangeInfo, klines windows, errors, weights);
//! * `perpdesk --demo --headless` back-fills and streams the full 200 × 3 universe and exits 0 on SIGTERM;
//! * a headless console survives the simulator being killed (`SIGKILL`) and restarted on the same port: it
//!   reports the outage, reconnects, fills the gap, and ends with no missing bar.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{Proc, data_dir, start_sim};

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split(" | ")
        .find_map(|part| part.strip_prefix(name))
        .map(str::trim)
}

async fn get(url: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = reqwest::get(url).await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.json::<Value>().await.expect("json body");
    (status, headers, body)
}

#[tokio::test]
async fn sim_rest_speaks_binance() {
    let (_sim, rest, _ws) = start_sim(&["--symbols", "260", "--seed", "3"]);
    let (status, headers, info) = get(&format!("{rest}/fapi/v1/exchangeInfo")).await;
    assert_eq!(status, 200);
    assert!(
        headers.get("x-mbx-used-weight-1m").is_some(),
        "weight header on every response"
    );
    let symbols = info["symbols"].as_array().expect("symbols");
    assert!(symbols.len() >= 250, "{} symbols", symbols.len());
    let tradable = symbols
        .iter()
        .filter(|s| s["status"] == "TRADING" && s["quoteAsset"] == "USDT" && s["contractType"] == "PERPETUAL")
        .count();
    assert!(
        tradable >= 200 && tradable < symbols.len(),
        "some symbols must not be tradable USDT perpetuals"
    );
    assert!(symbols[0]["pricePrecision"].is_u64() && symbols[0]["filters"][0]["tickSize"].is_string());
    let name = symbols
        .iter()
        .find(|s| s["status"] == "TRADING" && s["contractType"] == "PERPETUAL")
        .and_then(|s| s["symbol"].as_str())
        .expect("a tradable symbol");

    // Most recent bars, the forming one last.
    let (_, _, latest) = get(&format!(
        "{rest}/fapi/v1/klines?symbol={name}&interval=1h&limit=5"
    ))
    .await;
    let latest = latest.as_array().expect("rows");
    assert_eq!(latest.len(), 5);
    let opens: Vec<i64> = latest.iter().map(|r| r[0].as_i64().expect("open time")).collect();
    assert!(opens.windows(2).all(|w| w[1] - w[0] == 3_600_000));
    assert!(
        latest[0][1].is_string() && latest[0][8].is_u64(),
        "prices as strings, trades as a number"
    );
    // startTime selects bars opening at or after it; endTime at or before it.
    let (_, _, from) = get(&format!(
        "{rest}/fapi/v1/klines?symbol={name}&interval=1h&startTime={}&limit=2",
        opens[1] + 1
    ))
    .await;
    let from: Vec<i64> = from
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r[0].as_i64().expect("t"))
        .collect();
    assert_eq!(from, vec![opens[2], opens[3]]);
    let (_, _, to) = get(&format!(
        "{rest}/fapi/v1/klines?symbol={name}&interval=1h&endTime={}&limit=2",
        opens[3]
    ))
    .await;
    let to: Vec<i64> = to
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r[0].as_i64().expect("t"))
        .collect();
    assert_eq!(to, vec![opens[2], opens[3]]);
    let (_, _, both) = get(&format!(
        "{rest}/fapi/v1/klines?symbol={name}&interval=1h&startTime={}&endTime={}",
        opens[1],
        opens[3] - 1
    ))
    .await;
    assert_eq!(both.as_array().expect("rows").len(), 2);
    // The 1500 cap.
    let (_, headers, capped) = get(&format!(
        "{rest}/fapi/v1/klines?symbol={name}&interval=1m&limit=5000"
    ))
    .await;
    assert_eq!(capped.as_array().expect("rows").len(), 1500);
    assert!(headers.get("x-mbx-used-weight-1m").is_some());

    // The venue's error codes.
    let (status, _, e) = get(&format!("{rest}/fapi/v1/klines?symbol=NOPEUSDT&interval=1m")).await;
    assert_eq!((status, e["code"].as_i64()), (400, Some(-1121)));
    let (status, _, e) = get(&format!("{rest}/fapi/v1/klines?interval=1m")).await;
    assert_eq!((status, e["code"].as_i64()), (400, Some(-1102)));
    assert_eq!(
        e["msg"],
        "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
    );
    let (_, _, e) = get(&format!("{rest}/fapi/v1/klines?symbol={name}&interval=7m")).await;
    assert_eq!(e["code"].as_i64(), Some(-1120));
    let (_, _, e) = get(&format!(
        "{rest}/fapi/v1/klines?symbol={name}&interval=1m&limit=abc"
    ))
    .await;
    assert_eq!(e["code"].as_i64(), Some(-1100));
    let (_, _, e) = get(&format!(
        "{rest}/fapi/v1/klines?symbol={name}&interval=1m&startTime=5&endTime=4"
    ))
    .await;
    assert_eq!(e["code"].as_i64(), Some(-1023));
    let (status, _, tickers) = get(&format!("{rest}/fapi/v1/ticker/24hr")).await;
    assert_eq!(status, 200);
    assert!(tickers.as_array().expect("array").len() >= 200);
}

#[test]
fn demo_headless_reaches_the_full_universe_and_exits_cleanly() {
    let data = data_dir();
    let data_arg = data.path().to_str().expect("utf-8 path");
    let mut console = Proc::spawn(&["--demo", "--headless", "--data-dir", data_arg], &[]);
    let ready = console.wait_for("READY", Duration::from_secs(180), |l| {
        l.starts_with("READY: 200 symbols x 3 timeframes")
    });
    assert!(ready.contains("back-filled and streaming"), "{ready}");
    let status = console.wait_for("a status line", Duration::from_secs(15), |l| {
        l.starts_with("status |")
    });
    assert!(status.contains("connected"), "{status}");
    assert_eq!(field(&status, "backfilled"), Some("600/600"), "{status}");
    console.signal("-TERM");
    assert_eq!(console.wait_exit(Duration::from_secs(20)), Some(0));
    assert!(
        data.path()
            .join("logs")
            .read_dir()
            .expect("log dir")
            .next()
            .is_some(),
        "a log file was written"
    );
}

#[test]
fn headless_console_survives_the_exchange_restarting() {
    // At 30x, 1-minute bars close every 2 s, so bars close while the exchange is down.
    let (mut sim, rest, ws) = start_sim(&["--seed", "11", "--speed", "30"]);
    let port = rest.rsplit(':').next().expect("port").to_owned();
    let data = data_dir();
    let data_arg = data.path().to_str().expect("utf-8 path");
    let mut console = Proc::spawn(
        &[
            "--headless",
            "--rest-url",
            &rest,
            "--ws-url",
            &ws,
            "--universe-size",
            "20",
            "--timeframes",
            "1m,5m",
            "--history-bars",
            "100",
            "--data-dir",
            data_arg,
        ],
        &[],
    );
    console.wait_for("READY", Duration::from_secs(120), |l| {
        l.starts_with("READY: 20 symbols x 2 timeframes")
    });

    sim.signal("-KILL");
    let _ = sim.wait_exit(Duration::from_secs(10));
    let down = console.wait_for("DISCONNECTED in the status line", Duration::from_secs(60), |l| {
        l.starts_with("status |") && l.contains("DISCONNECTED")
    });
    let closed_at_outage: u64 = field(&down, "closed bars")
        .and_then(|v| v.parse().ok())
        .expect("closed bars");
    // Let a few simulated minutes pass with nobody connected.
    std::thread::sleep(Duration::from_secs(6));

    let (_sim2, _, _) = start_sim(&["--seed", "11", "--speed", "30", "--port", &port]);
    // Wait until bars have clearly moved on after the reconnect (20 symbols x several new minutes)...
    console.wait_for("reconnected and streaming again", Duration::from_secs(90), |l| {
        l.starts_with("status |")
            && l.contains("| connected")
            && field(l, "reconnects").is_some_and(|r| r != "0")
            && field(l, "closed bars")
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|c| c >= closed_at_outage + 200)
    });
    // ...then the next two status lines (each after a fresh gap count) must show nothing missing.
    for _ in 0..2 {
        let line = console.wait_for("a status line", Duration::from_secs(15), |l| {
            l.starts_with("status |")
        });
        assert_eq!(field(&line, "missing"), Some("0"), "{line}");
        assert_eq!(field(&line, "backfilled"), Some("40/40"), "{line}");
        assert!(line.contains("streaming 40/40"), "{line}");
    }
    console.signal("-TERM");
    assert_eq!(console.wait_exit(Duration::from_secs(20)), Some(0));
}
