//! The simulator's WebSocket surface, checked frame by frame with a plain WebSocket client:
//! combined and raw endpoints, live `SUBSCRIBE` / `UNSUBSCRIBE` / `LIST_SUBSCRIPTIONS` with their replies,
//! the per-connection stream limit and the incoming-message rate limit, bars closing with `x=true`,
//! `!ticker@arr`, `markPrice@1s`, and server pings.

use std::{sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use perpdesk::sim::{
    server::{self, SimClock, SimHandle, SimSettings},
    synthetic::SyntheticMarket,
};
use serde_json::{Value, json};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async, tungstenite::Message};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

async fn sim(speed: f64, settings: SimSettings) -> SimHandle {
    let clock = SimClock::synthetic(speed);
    let start = clock.now();
    let market = SyntheticMarket::new(9, 30, start, start - (clock.anchor_sim() - 3 * 86_400_000));
    server::start(Arc::new(market), clock, settings)
        .await
        .expect("sim starts")
}

/// Next text frame as JSON (pings are answered by the client library and skipped here).
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("stream open")
            .expect("frame ok");
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).expect("json frame");
        }
    }
}

/// Reads frames until one satisfies `pred`.
async fn until(ws: &mut Ws, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..10_000 {
        let v = next_json(ws).await;
        if pred(&v) {
            return v;
        }
    }
    panic!("no frame matching {what}");
}

async fn send(ws: &mut Ws, v: &Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

#[tokio::test]
async fn combined_stream_live_subscriptions() {
    let sim = sim(1.0, SimSettings::default()).await;
    let (mut ws, _) = connect_async(format!("{}/stream", sim.ws_url))
        .await
        .expect("connect");
    send(
        &mut ws,
        &json!({"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m", "!ticker@arr"], "id": 1}),
    )
    .await;
    let reply = until(&mut ws, "the SUBSCRIBE reply", |v| v.get("id").is_some()).await;
    assert_eq!(reply, json!({"result": null, "id": 1}));

    let kline = until(&mut ws, "a kline frame", |v| v["stream"] == "btcusdt@kline_1m").await;
    let k = &kline["data"]["k"];
    assert_eq!(kline["data"]["e"], "kline");
    assert_eq!(k["s"], "BTCUSDT");
    assert_eq!(k["i"], "1m");
    assert!(
        k["c"].is_string() && k["x"].is_boolean() && k["t"].is_i64() && k["n"].is_u64(),
        "{k}"
    );
    let tickers = until(&mut ws, "a ticker array", |v| v["stream"] == "!ticker@arr").await;
    let arr = tickers["data"].as_array().expect("array");
    assert!(arr.len() >= 25 && arr[0]["e"] == "24hrTicker" && arr[0]["q"].is_string());

    send(&mut ws, &json!({"method": "LIST_SUBSCRIPTIONS", "id": 2})).await;
    let list = until(&mut ws, "the list reply", |v| v["id"] == 2).await;
    assert_eq!(list["result"], json!(["!ticker@arr", "btcusdt@kline_1m"]));

    send(
        &mut ws,
        &json!({"method": "UNSUBSCRIBE", "params": ["!ticker@arr"], "id": 3}),
    )
    .await;
    until(&mut ws, "the UNSUBSCRIBE reply", |v| v["id"] == 3).await;
    send(&mut ws, &json!({"method": "LIST_SUBSCRIPTIONS", "id": 4})).await;
    let list = until(&mut ws, "the list reply", |v| v["id"] == 4).await;
    assert_eq!(list["result"], json!(["btcusdt@kline_1m"]));

    // Malformed requests get an error reply; the connection stays up.
    send(
        &mut ws,
        &json!({"method": "SUBSCRIBE", "params": ["BTCUSDT@kline_1m"], "id": 5}),
    )
    .await;
    let err = until(&mut ws, "an error reply", |v| v["id"] == 5).await;
    assert_eq!(err["error"]["code"], 2, "{err}");
    send(&mut ws, &json!({"method": "FLY", "id": 6})).await;
    let err = until(&mut ws, "an error reply", |v| v["id"] == 6).await;
    assert_eq!(err["error"]["code"], 2, "{err}");
    until(&mut ws, "data still flowing", |v| {
        v["stream"] == "btcusdt@kline_1m"
    })
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn raw_stream_is_unwrapped_and_mark_price_flows() {
    let sim = sim(1.0, SimSettings::default()).await;
    let (mut ws, _) = connect_async(format!("{}/ws/ethusdt@markPrice@1s", sim.ws_url))
        .await
        .expect("connect");
    let m = next_json(&mut ws).await;
    assert_eq!(
        m["e"], "markPriceUpdate",
        "raw frames carry the payload without a wrapper: {m}"
    );
    assert_eq!(m["s"], "ETHUSDT");
    assert!(m["p"].is_string() && m["r"].is_string() && m["T"].is_i64());
    sim.shutdown().await;
}

#[tokio::test]
async fn bars_close_with_the_x_flag_in_order() {
    // 120x: a 1-minute bar closes every half second.
    let sim = sim(120.0, SimSettings::default()).await;
    let (mut ws, _) = connect_async(format!("{}/stream?streams=solusdt@kline_1m", sim.ws_url))
        .await
        .expect("connect");
    let mut closed = Vec::new();
    while closed.len() < 4 {
        let v = next_json(&mut ws).await;
        if v["data"]["k"]["x"] == true {
            closed.push(v["data"]["k"]["t"].as_i64().expect("open time"));
        }
    }
    assert!(
        closed.windows(2).all(|w| w[1] - w[0] == 60_000),
        "consecutive closed minutes: {closed:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn venue_limits_are_enforced() {
    let settings = SimSettings {
        max_streams_per_connection: 5,
        ..SimSettings::default()
    };
    let sim = sim(1.0, settings).await;
    let (mut ws, _) = connect_async(format!("{}/stream", sim.ws_url))
        .await
        .expect("connect");
    let six: Vec<String> = ["btc", "eth", "sol", "bnb", "xrp", "doge"]
        .iter()
        .map(|s| format!("{s}usdt@kline_1m"))
        .collect();
    send(&mut ws, &json!({"method": "SUBSCRIBE", "params": six, "id": 1})).await;
    let err = until(&mut ws, "the over-limit reply", |v| v["id"] == 1).await;
    assert_eq!(err["error"]["code"], 2, "{err}");
    assert!(
        err["error"]["msg"]
            .as_str()
            .is_some_and(|m| m.contains("too many streams")),
        "{err}"
    );

    // More than 10 incoming messages in a second: the server closes the connection.
    for id in 0..12 {
        let _ = ws
            .send(Message::text(
                json!({"method": "LIST_SUBSCRIPTIONS", "id": 100 + id}).to_string(),
            ))
            .await;
    }
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Close(frame)) => return frame.map(|f| f.reason.to_string()),
                Err(_) => return None,
                Ok(_) => {}
            }
        }
        None
    })
    .await
    .expect("the server closes the connection");
    assert!(closed.is_some_and(|r| r.contains("too many incoming messages")));
    sim.shutdown().await;
}

#[tokio::test]
async fn server_pings() {
    let settings = SimSettings {
        ping_interval: Duration::from_millis(300),
        ..SimSettings::default()
    };
    let sim = sim(1.0, settings).await;
    let (mut ws, _) = connect_async(format!("{}/ws", sim.ws_url))
        .await
        .expect("connect");
    let got_ping = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(msg)) = ws.next().await {
            if matches!(msg, Message::Ping(_)) {
                return true;
            }
        }
        false
    })
    .await
    .expect("a ping within 10 s");
    assert!(got_ping);
    sim.shutdown().await;
}
