//! Live execution end to end (issue 5, item 7): the real `perpdesk --headless` binary with
//! `TRADING_ENABLED=true` and the simulator's documented key pair, against a `perpdesk sim` process.
//!
//! * positions — a manual entry sent over the attach socket, and any the ICT strategy opens meanwhile —
//!   are mirrored by real entries on the venue, each protected by a
//!   `STOP_MARKET` and a `TAKE_PROFIT_MARKET` with `closePosition=true` on the mark price, seen by the
//!   test's own signed `openOrders` / `positionRisk` requests;
//! * the kill switch, sent as a confirmed intent over the attach socket exactly as an attached TUI
//!   sends it, closes the engine's positions with reduce-only exits and flattens the venue: no
//!   position and no open order remain;
//! * O4: over the whole run, on the venue's own user data stream, every order that reduced a position
//!   carried `reduceOnly` or `closePosition`, and orders without either only ever added exposure.
//!
//! * S1 for the whole live path: TRACE logging, Discord through a loopback bot API with a canary
//!   token; neither the API secret nor the Discord token appears in the logs, the journal file, the
//!   console's output or any Discord message, and Discord heard of the opened position.
//!
//! The first position is a manual entry because live trading needs the simulator's real-time clock
//! (the clock gate refuses a venue whose time runs faster), and at real time whether the strategy
//! signals within a minute or two depends on the hour the synthetic market is at: a CI run at the
//! wrong hour waited 150 s for a signal in vain. The entry timeframe is 1m and the trading cycle 5 s,
//! so strategy positions may join it.

mod support;

use std::{
    collections::HashMap,
    str::FromStr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use perpdesk::binance::{
    orders::{OrderClient, OrderIntent},
    secret::SecretString,
    signed::{Credentials, SignedRest},
    trade_wire::{ListenKey, OrderUpdate},
    user_stream::{LISTEN_KEY_CREATE, UserEvent, UserStreamConfig, UserStreamEvent, run_user_stream},
};
use perpdesk::sim::auth::{DEFAULT_API_KEY, DEFAULT_API_SECRET};
use rust_decimal::Decimal;
use support::{Proc, data_dir, start_sim};
use tokio::{
    io::AsyncWriteExt,
    sync::{mpsc, watch},
};

/// The number after `name` in the `positions open A opened B closed C` segment.
fn count(line: &str, name: &str) -> Option<u64> {
    let segment = line.split(" | ").find(|p| p.starts_with("positions open"))?;
    let mut words = segment.split_whitespace();
    while let Some(w) = words.next() {
        if w == name {
            return words.next()?.parse().ok();
        }
    }
    None
}

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap_or_default()
}

async fn test_client(rest: &str) -> OrderClient {
    let creds = Credentials::hmac(
        &SecretString::new(DEFAULT_API_KEY.into()),
        &SecretString::new(DEFAULT_API_SECRET.into()),
    )
    .expect("credentials");
    let rest = SignedRest::new(rest, creds).expect("client");
    rest.sync_clock().await.expect("clock sync");
    OrderClient::new(Arc::new(rest), Arc::new(|_: &OrderIntent<'_>| Ok(())))
}

/// Every `ORDER_TRADE_UPDATE` of the account, from the test's own user-stream connection.
fn record_user_stream(
    rt: &tokio::runtime::Runtime,
    client: &OrderClient,
    ws: &str,
) -> (Arc<Mutex<Vec<OrderUpdate>>>, watch::Sender<bool>) {
    let key: ListenKey = rt
        .block_on(client.rest().call(&LISTEN_KEY_CREATE, &[]))
        .expect("listenKey");
    let (key_tx, key_rx) = watch::channel(Some(key.listen_key));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (rotate_tx, rotate_rx) = mpsc::channel(8);
    let (out_tx, mut out_rx) = mpsc::channel(4096);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let cfg = UserStreamConfig::new(ws);
    rt.spawn(async move {
        // The key sender must outlive the stream task, or it ends at once.
        let _keep = (key_tx, rotate_rx);
        run_user_stream(cfg, key_rx, rotate_tx, out_tx, stop_rx).await;
    });
    let (sink, mut connected) = (Arc::clone(&seen), Some(()));
    let (up_tx, up_rx) = std::sync::mpsc::channel();
    rt.spawn(async move {
        while let Some(ev) = out_rx.recv().await {
            match ev {
                UserStreamEvent::Connected { .. } if connected.take().is_some() => {
                    let _ = up_tx.send(());
                }
                UserStreamEvent::Event(UserEvent::OrderTradeUpdate(u)) => {
                    sink.lock().expect("lock").push(u.order);
                }
                _ => {}
            }
        }
    });
    up_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the test's user stream connects");
    (seen, stop_tx)
}

/// Polls `check` (an async venue query) until it returns `Some`, or panics after `timeout`.
fn poll<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The Discord bot token given to the console: it must never leave in a message body or a log.
const DISCORD_CANARY: &str = "perpdesk-canary-discord-token-7Q3xZ";

/// One message the loopback Discord received: its `Authorization` header and its body.
type DiscordMessage = (Option<String>, String);

/// A loopback Discord bot API (`POST /api/v10/channels/{id}/messages`) recording every message;
/// returns the base URL the console's `notify.discord_api_url` points at.
fn loopback_discord(rt: &tokio::runtime::Runtime) -> (Arc<Mutex<Vec<DiscordMessage>>>, String) {
    let seen: Arc<Mutex<Vec<DiscordMessage>>> = Arc::default();
    let state = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/api/v10/channels/{id}/messages",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let state = Arc::clone(&state);
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                state.lock().expect("lock").push((auth, body));
                "{\"id\":\"1\"}"
            }
        }),
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (seen, format!("http://{addr}/api/v10"))
}

/// Sends one intent over the attach socket, as an attached TUI does.
fn send_intent(rt: &tokio::runtime::Runtime, socket: &str, intent: &str) {
    rt.block_on(async {
        let mut stream = tokio::net::UnixStream::connect(socket)
            .await
            .expect("attach socket");
        stream
            .write_all(format!("{intent}\n").as_bytes())
            .await
            .expect("send the intent");
        stream.flush().await.expect("flush");
        // Keep the connection until the engine has read the line.
        tokio::time::sleep(Duration::from_millis(500)).await;
    });
}

#[test]
fn live_positions_are_mirrored_protected_and_flattened_by_the_kill_switch() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (_sim, rest, ws) = start_sim(&["--seed", "42"]);
    let client = rt.block_on(test_client(&rest));
    let (updates, stop_stream) = record_user_stream(&rt, &client, &ws);

    let dir = data_dir();
    let config = dir.path().join("perpdesk.toml");
    let (discord, discord_url) = loopback_discord(&rt);
    std::fs::write(
        &config,
        format!("[engine]\ntrading_cycle_secs = 5\n\n[notify]\ndiscord_api_url = \"{discord_url}\"\n"),
    )
    .expect("config written");
    let data = dir.path().join("data");
    let (config, data) = (
        config.to_string_lossy().into_owned(),
        data.to_string_lossy().into_owned(),
    );
    let mut console = Proc::spawn(
        &[
            "--headless",
            "--config",
            &config,
            "--data-dir",
            &data,
            "--rest-url",
            &rest,
            "--ws-url",
            &ws,
            "--timeframes",
            "1m,5m,15m",
            "--history-bars",
            "300",
            "--log-level",
            "trace",
        ],
        &[
            ("TRADING_ENABLED", "true"),
            ("BINANCE_API_KEY", DEFAULT_API_KEY),
            ("BINANCE_API_SECRET", DEFAULT_API_SECRET),
            ("DISCORD_TOKEN", DISCORD_CANARY),
            ("DISCORD_CHANNEL_ID", "4242"),
        ],
    );
    let hint = console.wait_for("the attach hint", Duration::from_secs(60), |l| {
        l.contains("perpdesk attach --socket")
    });
    let socket = hint.rsplit(' ').next().expect("socket path").to_owned();
    let status = console.wait_for("the gate to open", Duration::from_secs(60), |l| {
        l.starts_with("status |") && l.contains("| reconciled")
    });
    assert!(status.contains("| LIVE |"), "{status}");
    // A manual entry, as an attached console sends it once the operator confirmed it: the strategy's
    // own signals depend on the hour the simulated market is at, a manual entry does not. Sent again
    // until one opens (the first may come before BTCUSDT's mark price or ATR).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        send_intent(
            &rt,
            &socket,
            r#"{"OpenPosition":{"symbol":"BTCUSDT","side":"long"}}"#,
        );
        let opened = console.wait_for("a status line", Duration::from_secs(30), |l| {
            l.starts_with("status |")
        });
        if count(&opened, "opened").is_some_and(|n| n >= 1) {
            break;
        }
        assert!(Instant::now() < deadline, "no manual entry opened: {opened}");
    }

    // Entries on the venue, each with its stop and target resting there (closePosition, mark price).
    let (positions, protective) = poll("protected venue positions", Duration::from_secs(30), || {
        let positions: Vec<(String, Decimal)> = rt
            .block_on(client.position_risk())
            .expect("positionRisk")
            .into_iter()
            .map(|p| (p.symbol, d(&p.position_amt)))
            .filter(|(_, q)| !q.is_zero())
            .collect();
        let open = rt.block_on(client.open_orders(None)).expect("openOrders");
        let protected = |symbol: &str, qty: Decimal, kind: &str| {
            let exit_side = if qty > Decimal::ZERO { "SELL" } else { "BUY" };
            open.iter().any(|o| {
                o.symbol == symbol
                    && o.order_type == kind
                    && o.side == exit_side
                    && o.close_position
                    && o.working_type == "MARK_PRICE"
            })
        };
        let all = !positions.is_empty()
            && positions
                .iter()
                .all(|(s, q)| protected(s, *q, "STOP_MARKET") && protected(s, *q, "TAKE_PROFIT_MARKET"));
        all.then(|| (positions.clone(), open.len()))
    });
    assert!(
        protective >= 2 * positions.len(),
        "{positions:?}: {protective} open orders"
    );

    // The kill switch, as an attached console sends it once the operator typed KILL.
    send_intent(&rt, &socket, r#""KillSwitch""#);
    poll("a flat venue", Duration::from_secs(30), || {
        let flat = rt
            .block_on(client.position_risk())
            .expect("positionRisk")
            .iter()
            .all(|p| d(&p.position_amt).is_zero());
        let no_orders = rt
            .block_on(client.open_orders(None))
            .expect("openOrders")
            .is_empty();
        (flat && no_orders).then_some(())
    });
    let halted = console.wait_for("the breaker halted", Duration::from_secs(30), |l| {
        l.starts_with("status |") && l.contains("breaker HALT")
    });
    assert_eq!(count(&halted, "open"), Some(0), "{halted}");

    // O4 over the whole run, from the venue's own stream.
    std::thread::sleep(Duration::from_millis(500));
    let _ = stop_stream.send(true);
    let updates = updates.lock().expect("lock").clone();
    let mut exposure: HashMap<String, Decimal> = HashMap::new();
    let (mut entries, mut exits, mut reduce_only_exits) = (0, 0, 0);
    for u in &updates {
        if matches!(u.order_type.as_str(), "STOP_MARKET" | "TAKE_PROFIT_MARKET") {
            assert!(u.close_position || u.reduce_only, "unprotected exit order: {u:?}");
            assert_eq!(u.working_type, "MARK_PRICE", "{u:?}");
        }
        let qty = d(&u.last_qty);
        if u.execution_type != "TRADE" || qty.is_zero() {
            continue;
        }
        let signed = if u.side == "BUY" { qty } else { -qty };
        let before = exposure.get(&u.symbol).copied().unwrap_or_default();
        let after = before + signed;
        let reduces = after.abs() < before.abs() || (before * after) < Decimal::ZERO;
        if reduces {
            assert!(
                u.reduce_only || u.close_position,
                "a fill reduced {} from {before} to {after} without reduceOnly/closePosition: {u:?}",
                u.symbol
            );
            exits += 1;
            if u.order_type == "MARKET" && u.reduce_only {
                reduce_only_exits += 1;
            }
        } else {
            assert!(!u.reduce_only && !u.close_position, "{u:?}");
            entries += 1;
        }
        exposure.insert(u.symbol.clone(), after);
    }
    assert!(
        entries >= positions.len(),
        "{entries} entry fills for {positions:?}"
    );
    // Each position left by a reduce-only exit of the engine (the kill switch's closes), or by its
    // own closePosition stop or target if the venue triggered one first.
    assert!(exits >= positions.len(), "{exits} exit fills for {positions:?}");
    assert!(reduce_only_exits >= 1, "no reduce-only market exit seen");
    assert!(
        exposure.values().all(Decimal::is_zero),
        "flat by the stream's own account: {exposure:?}"
    );

    console.signal("-TERM");
    assert_eq!(console.wait_exit(Duration::from_secs(30)), Some(0));
    for line in &console.seen {
        assert!(
            !line.contains(DEFAULT_API_SECRET) && !line.contains(DISCORD_CANARY),
            "secret printed: {line}"
        );
    }
    // Discord heard of the live positions, authenticated by the token in the header only.
    let messages = discord.lock().expect("lock").clone();
    assert!(!messages.is_empty(), "no Discord message");
    for (auth, body) in &messages {
        assert_eq!(auth.as_deref(), Some(format!("Bot {DISCORD_CANARY}").as_str()));
        assert!(
            !body.contains(DISCORD_CANARY) && !body.contains(DEFAULT_API_SECRET),
            "a secret in a Discord message: {body}"
        );
    }
    let said = |needle: &str| messages.iter().any(|(_, body)| body.contains(needle));
    assert!(
        positions.iter().any(|(symbol, _)| said(symbol)),
        "no Discord message names an opened symbol {positions:?}: {messages:?}"
    );
    // The journal file, byte for byte, holds neither secret.
    let mut journals = 0;
    for entry in std::fs::read_dir(&data).expect("data dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // The database and its write-ahead log (recent pages may not be checkpointed yet).
        if name.starts_with("journal") {
            let bytes = std::fs::read(&path).expect("journal readable");
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(DEFAULT_API_SECRET) && !text.contains(DISCORD_CANARY),
                "a secret in {}",
                path.display()
            );
            journals += usize::from(name.ends_with(".sqlite"));
        }
    }
    assert_eq!(journals, 1, "one live journal in {data}");
    // The log has every order intent, and neither the secret nor a signed query.
    let (mut intents, mut trace_lines) = (0, 0);
    for entry in std::fs::read_dir(std::path::Path::new(&data).join("logs")).expect("log dir") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("log");
        assert!(
            !text.contains(DEFAULT_API_SECRET)
                && !text.contains(DISCORD_CANARY)
                && !text.contains("signature="),
            "a secret or a signed query in the TRACE log"
        );
        intents += text.matches("order intent").count();
        trace_lines += text.matches("TRACE").count();
    }
    assert!(trace_lines > 0, "the log was not at TRACE level");
    assert!(intents >= 3 * positions.len(), "{intents} order intents logged");
}
