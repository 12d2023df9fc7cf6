//! The notifier against a loopback Discord (axum on 127.0.0.1): routing, request shape for a webhook
//! and a bot, de-duplication, batching within the 2000-character limit, throttling, 429 handling, an
//! outage that never blocks the caller, and a secret canary that must appear nowhere but where the
//! credential is used.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::post,
};

use super::*;

const CANARY: &str = "CANARY-notify-9d41c7e2-do-not-leak";

#[derive(Debug, Clone)]
enum Plan {
    Ok,
    Status(u16),
    RateLimited {
        header: &'static str,
        body: &'static str,
    },
    Hang,
}

#[derive(Debug, Clone)]
struct Request {
    path: String,
    auth: Option<String>,
    body: String,
}

#[derive(Default)]
struct Discord {
    plans: Mutex<VecDeque<Plan>>,
    requests: Mutex<Vec<Request>>,
}

impl Discord {
    fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }

    /// The `content` of every request, in order.
    fn contents(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| {
                let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON body");
                v["content"].as_str().expect("content").to_owned()
            })
            .collect()
    }
}

async fn handle(State(discord): State<Arc<Discord>>, uri: Uri, headers: HeaderMap, body: String) -> Response {
    discord.requests.lock().expect("lock").push(Request {
        path: uri.path().to_owned(),
        auth: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body,
    });
    let plan = discord
        .plans
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or(Plan::Ok);
    match plan {
        Plan::Ok => (StatusCode::OK, "{\"id\":\"1\"}").into_response(),
        Plan::Status(code) => StatusCode::from_u16(code).expect("status").into_response(),
        Plan::RateLimited { header, body } => {
            (StatusCode::TOO_MANY_REQUESTS, [("retry-after", header)], body).into_response()
        }
        Plan::Hang => {
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
    }
}

/// A loopback Discord; returns its base URL (`http://127.0.0.1:P`).
async fn discord(plans: Vec<Plan>) -> (Arc<Discord>, String) {
    let state = Arc::new(Discord {
        plans: Mutex::new(plans.into()),
        requests: Mutex::default(),
    });
    let app = Router::new()
        .route("/api/webhooks/{id}/{token}", post(handle))
        .route("/api/v10/channels/{id}/messages", post(handle))
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (state, format!("http://{addr}"))
}

fn webhook(base: &str) -> DiscordTarget {
    DiscordTarget::Webhook {
        url: SecretString::new(format!("{base}/api/webhooks/123/{CANARY}")),
    }
}

fn settings(target: DiscordTarget) -> NotifySettings {
    NotifySettings {
        routing: Routing::all(),
        batch_window: Duration::from_millis(20),
        shutdown_grace: Duration::from_secs(20),
        ..NotifySettings::new(target)
    }
}

/// Waits (polling) until `done` holds; a generous cap turns a hang into a failure.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn sl(key: &str, text: &str) -> Notification {
    Notification::new(NotifyKind::Lifecycle(LifecycleKind::StopLossTriggered), key, text)
}

#[tokio::test]
async fn routing_sends_only_the_enabled_event_types() {
    let (server, base) = discord(vec![]).await;
    let mut s = settings(webhook(&base));
    s.routing = Routing::only([
        NotifyKind::Lifecycle(LifecycleKind::StopLossTriggered),
        NotifyKind::Breaker,
    ]);
    let (handle, task) = spawn(s).expect("spawns");
    let price = Notification::new(NotifyKind::Lifecycle(LifecycleKind::PriceUpdated), "p", "tick");
    let created = Notification::new(NotifyKind::Lifecycle(LifecycleKind::Created), "c", "opened");
    assert!(!handle.notify(price));
    assert!(!handle.notify(created));
    assert!(handle.notify(sl("sl:p1", "BTCUSDT LONG stop 63000 hit")));
    assert!(handle.notify(Notification::new(
        NotifyKind::Breaker,
        "b",
        "Normal -> Caution: daily loss 2 %"
    )));
    assert!(!handle.notify(Notification::new(NotifyKind::Ops(OpsKind::Banned), "o", "418")));
    let stats = handle.stats();
    drop(handle);
    task.await.expect("task");
    assert_eq!(
        server.contents(),
        ["**StopLossTriggered** BTCUSDT LONG stop 63000 hit\n**Breaker** Normal -> Caution: daily loss 2 %"]
    );
    assert_eq!((stats.unrouted, stats.accepted), (3, 2));
    let r = Routing::default();
    assert!(r.routes(NotifyKind::Lifecycle(LifecycleKind::Closed)));
    assert!(r.routes(NotifyKind::Ops(OpsKind::Banned)) && r.routes(NotifyKind::Breaker));
    assert!(!r.routes(NotifyKind::Lifecycle(LifecycleKind::PriceUpdated)));
    assert!(!r.routes(NotifyKind::Lifecycle(LifecycleKind::StopLossApproaching)));
}

#[tokio::test]
async fn webhook_and_bot_requests_have_discords_shape() {
    let (server, base) = discord(vec![]).await;
    let (handle, task) = spawn(settings(webhook(&base))).expect("spawns");
    handle.notify(sl("a", "@everyone look"));
    drop(handle);
    task.await.expect("task");
    let bot = DiscordTarget::Bot {
        api_base: format!("{base}/api/v10/"),
        token: SecretString::new(CANARY.to_owned()),
        channel_id: SecretString::new("4242".to_owned()),
    };
    let (handle, task) = spawn(settings(bot)).expect("spawns");
    handle.notify(sl("a", "bot says"));
    drop(handle);
    task.await.expect("task");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].path, format!("/api/webhooks/123/{CANARY}"));
    assert_eq!(requests[0].auth, None);
    let body: serde_json::Value = serde_json::from_str(&requests[0].body).expect("json");
    assert_eq!(
        body,
        serde_json::json!({"content": "**StopLossTriggered** @everyone look", "allowed_mentions": {"parse": []}})
    );
    assert_eq!(requests[1].path, "/api/v10/channels/4242/messages");
    assert_eq!(
        requests[1].auth.as_deref(),
        Some(format!("Bot {CANARY}").as_str())
    );
}

#[tokio::test]
async fn the_same_key_within_the_window_is_sent_once() {
    let (server, base) = discord(vec![]).await;
    let (handle, task) = spawn(settings(webhook(&base))).expect("spawns");
    for _ in 0..3 {
        handle.notify(Notification::new(
            NotifyKind::Ops(OpsKind::StaleStream),
            "stale:btc",
            "btcusdt stale",
        ));
    }
    handle.notify(Notification::new(
        NotifyKind::Ops(OpsKind::StaleStream),
        "stale:eth",
        "ethusdt stale",
    ));
    until("both sent", || handle.stats().sent_events == 2).await;
    let stats = handle.stats();
    drop(handle);
    task.await.expect("task");
    assert_eq!(stats.deduplicated, 2);
    assert_eq!(
        server.contents().join("\n"),
        "**StaleStream** btcusdt stale\n**StaleStream** ethusdt stale"
    );
}

#[tokio::test]
async fn events_are_batched_into_as_few_messages_as_the_limit_allows() {
    let (server, base) = discord(vec![]).await;
    let mut s = settings(webhook(&base));
    // A long window: messages leave only when full, and the rest when the notifier stops.
    s.batch_window = Duration::from_secs(3600);
    let (handle, task) = spawn(s).expect("spawns");
    let mut lines = Vec::new();
    for i in 0..40 {
        let text = format!("event {i:02} {}", "x".repeat(100));
        lines.push(format!("**StopLossTriggered** {text}"));
        assert!(handle.notify(sl(&format!("k{i}"), &text)));
    }
    let long = "y".repeat(2500);
    handle.notify(sl("long", &long));
    drop(handle);
    task.await.expect("task");
    let contents = server.contents();
    // Greedy packing: each line is 130 characters, 15 fit in 2000 (15 × 130 + 14 = 1964).
    let expected: Vec<String> = lines.chunks(15).map(|c| c.join("\n")).collect();
    assert_eq!(contents[..3], expected[..]);
    assert_eq!(contents.len(), 4);
    assert_eq!(contents[3].chars().count(), CONTENT_LIMIT);
    assert!(contents[3].ends_with('…'));
    assert!(contents.iter().all(|c| c.chars().count() <= CONTENT_LIMIT));
}

#[tokio::test]
async fn the_throttle_holds_messages_and_they_batch_while_waiting() {
    let (server, base) = discord(vec![]).await;
    let mut s = settings(webhook(&base));
    s.batch_window = Duration::ZERO;
    s.max_messages = 1;
    // Long enough that B and C are both queued inside it even on a stalled test thread.
    s.per = Duration::from_secs(2);
    let (handle, task) = spawn(s).expect("spawns");
    handle.notify(sl("a", "A"));
    until("the first message", || server.requests().len() == 1).await;
    handle.notify(sl("b", "B"));
    handle.notify(sl("c", "C"));
    until("the second message", || server.requests().len() == 2).await;
    let stats = handle.stats();
    drop(handle);
    task.await.expect("task");
    assert_eq!(
        server.contents(),
        [
            "**StopLossTriggered** A",
            "**StopLossTriggered** B\n**StopLossTriggered** C"
        ]
    );
    assert_eq!((stats.throttled, stats.sent_messages), (1, 2));

    // A window longer than the shutdown grace: the held event is never sent early.
    let (server, base) = discord(vec![]).await;
    let mut s = settings(webhook(&base));
    s.batch_window = Duration::ZERO;
    s.max_messages = 1;
    s.per = Duration::from_secs(3600);
    s.shutdown_grace = Duration::from_millis(100);
    let (handle, task) = spawn(s).expect("spawns");
    handle.notify(sl("a", "A"));
    until("the first message", || server.requests().len() == 1).await;
    handle.notify(sl("b", "B"));
    until("the throttle", || handle.stats().throttled == 1).await;
    let counters = Arc::clone(&handle.counters);
    drop(handle);
    task.await.expect("task");
    assert_eq!(server.requests().len(), 1);
    assert_eq!(counters.snapshot().failed_events, 1);
}

#[tokio::test]
async fn a_429_is_waited_out_for_the_longer_of_body_and_header_then_retried() {
    let (server, base) = discord(vec![Plan::RateLimited {
        header: "1",
        body: r#"{"message": "You are being rate limited.", "retry_after": 0.25, "global": false}"#,
    }])
    .await;
    let (handle, task) = spawn(settings(webhook(&base))).expect("spawns");
    handle.notify(sl("a", "after the wait"));
    until("the retry", || handle.stats().sent_messages == 1).await;
    let stats = handle.stats();
    drop(handle);
    task.await.expect("task");
    let contents = server.contents();
    assert_eq!(contents, ["**StopLossTriggered** after the wait"; 2]);
    assert_eq!(
        (stats.rate_limited, stats.retry_wait_ms, stats.failed_messages),
        (1, 1000, 0)
    );
}

#[test]
fn retry_after_takes_the_larger_of_body_and_header() {
    let body = br#"{"retry_after": 64.57, "global": false}"#;
    assert_eq!(retry_after(Some("65"), body), Duration::from_secs(65));
    assert_eq!(retry_after(Some("3"), body), Duration::from_secs_f64(64.57));
    assert_eq!(retry_after(None, body), Duration::from_secs_f64(64.57));
    assert_eq!(
        retry_after(Some("2.5"), b"not json"),
        Duration::from_secs_f64(2.5)
    );
    assert_eq!(retry_after(None, b""), Duration::from_secs(1));
    assert_eq!(
        retry_after(Some("-4"), br#"{"retry_after": "NaN"}"#),
        Duration::from_secs(1)
    );
}

#[tokio::test]
async fn an_outage_never_blocks_the_caller_and_drops_are_counted() {
    let (server, base) = discord(vec![Plan::Hang]).await;
    let mut s = settings(webhook(&base));
    s.queue = 8;
    s.batch_window = Duration::ZERO;
    s.request_timeout = Duration::from_secs(3600);
    let (handle, task) = spawn(s).expect("spawns");
    handle.notify(sl("first", "first"));
    until("the hanging request", || server.requests().len() == 1).await;
    // Discord does not answer; the engine keeps notifying and every call returns at once.
    let accepted = (0..100)
        .filter(|i| handle.notify(sl(&format!("k{i}"), "during the outage")))
        .count();
    let stats = handle.stats();
    assert!(accepted <= 8, "{accepted}");
    assert_eq!(stats.dropped, 100 - accepted as u64);
    assert_eq!(stats.accepted, 1 + accepted as u64);
    task.abort();
}

#[tokio::test]
async fn server_errors_are_retried_and_client_errors_dropped() {
    let (server, base) = discord(vec![Plan::Status(502), Plan::Status(404)]).await;
    let mut s = settings(webhook(&base));
    s.batch_window = Duration::ZERO;
    let (handle, task) = spawn(s).expect("spawns");
    handle.notify(sl("a", "first"));
    until("the 404", || handle.stats().failed_messages == 1).await;
    handle.notify(sl("b", "second"));
    until("the second", || handle.stats().sent_messages == 1).await;
    drop(handle);
    task.await.expect("task");
    assert_eq!(
        server.contents(),
        [
            "**StopLossTriggered** first",
            "**StopLossTriggered** first",
            "**StopLossTriggered** second"
        ]
    );
}

/// Collects formatted log output.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_secret_canary_appears_in_no_payload_log_or_debug() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (server, base) = discord(vec![
        Plan::Status(500),
        Plan::RateLimited {
            header: "0",
            body: r#"{"retry_after": 0.01}"#,
        },
        Plan::Status(401),
    ])
    .await;
    let mut debug = Vec::new();
    for target in [
        webhook(&base),
        DiscordTarget::Bot {
            api_base: format!("{base}/api/v10"),
            token: SecretString::new(CANARY.to_owned()),
            channel_id: SecretString::new("77".to_owned()),
        },
    ] {
        let mut s = settings(target);
        s.batch_window = Duration::ZERO;
        debug.push(format!("{s:?} {:?}", s.target));
        let (handle, task) = spawn(s).expect("spawns");
        // An engine bug that puts the credential into an event text must not leak it.
        handle.notify(sl("leak", &format!("oops {CANARY} here")));
        handle.notify(sl("url", &format!("{base}/api/webhooks/123/{CANARY}")));
        until("delivery", || {
            let s = handle.stats();
            s.sent_events + s.failed_events == 2
        })
        .await;
        debug.push(format!("{handle:?} {:?}", handle.stats()));
        drop(handle);
        task.await.expect("task");
    }
    debug.push(format!("{:?}", NotifyError::Client("x".to_owned())));
    let requests = server.requests();
    assert!(requests.len() >= 4, "{requests:?}");
    let logs = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(logs.contains("429"), "the log says what happened: {logs}");
    for r in &requests {
        assert_eq!(r.body.matches(CANARY).count(), 0, "payload leaked: {}", r.body);
        assert!(r.body.contains("[REDACTED]"), "{}", r.body);
    }
    assert_eq!(logs.matches(CANARY).count(), 0, "log leaked: {logs}");
    for d in &debug {
        assert_eq!(d.matches(CANARY).count(), 0, "Debug leaked: {d}");
    }
}

proptest::proptest! {
    /// Packing a queue message by message keeps every line, in order, never exceeds the limit, and is
    /// greedy: the next line never fits into the message before it.
    #[test]
    fn packing_keeps_order_respects_the_limit_and_is_greedy(
        lengths in proptest::collection::vec(1..=CONTENT_LIMIT, 0..60),
    ) {
        let mut rest = lengths.as_slice();
        let mut messages: Vec<(usize, usize)> = Vec::new();
        while !rest.is_empty() {
            let (count, len) = pack(rest.iter().copied());
            proptest::prop_assert!(count >= 1 && len <= CONTENT_LIMIT);
            let taken = &rest[..count];
            proptest::prop_assert_eq!(len, taken.iter().sum::<usize>() + count - 1);
            if let Some(next) = rest.get(count) {
                proptest::prop_assert!(len + 1 + next > CONTENT_LIMIT);
            }
            messages.push((count, len));
            rest = &rest[count..];
        }
        proptest::prop_assert_eq!(messages.iter().map(|m| m.0).sum::<usize>(), lengths.len());
        proptest::prop_assert_eq!(pack(std::iter::empty()), (0, 0));
    }
}

#[test]
fn settings_from_config_prefer_the_webhook() {
    use crate::config::Secret;
    let mut config = Config::default();
    assert!(NotifySettings::from_config(&config).is_none());
    config.secrets.discord_token = Some(Secret::new(CANARY));
    config.secrets.discord_channel_id = Some(Secret::new("1"));
    config.notify.discord_api_url = "http://127.0.0.1:9/api/v10".to_owned();
    let s = NotifySettings::from_config(&config).expect("bot");
    assert!(
        matches!(&s.target, DiscordTarget::Bot { api_base, .. } if api_base == "http://127.0.0.1:9/api/v10")
    );
    config.secrets.discord_webhook_url = Some(Secret::new("https://discord.com/api/webhooks/1/x"));
    let s = NotifySettings::from_config(&config).expect("webhook");
    assert!(matches!(s.target, DiscordTarget::Webhook { .. }));
    assert_eq!(format!("{s:?}").matches(CANARY).count(), 0);
}
