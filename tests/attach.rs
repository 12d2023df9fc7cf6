//! A console attaches to a headless engine over its Unix socket: it receives the engine's views,
//! its intents change the engine (a live mode switch), detaching leaves the engine running, and the
//! socket is owner-only and removed at shutdown.

mod support;

use std::{os::unix::fs::PermissionsExt, time::Duration};

use serde_json::{Value, json};
use support::{Proc, data_dir};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::UnixStream,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_to_a_headless_engine() {
    let data = data_dir();
    let data_arg = data.path().to_str().expect("utf-8 path").to_owned();
    let mut engine = Proc::spawn(
        &[
            "--demo",
            "--headless",
            "--universe-size",
            "30",
            "--data-dir",
            &data_arg,
        ],
        &[],
    );
    let hint = engine.wait_for("the attach hint", Duration::from_secs(60), |l| {
        l.contains("perpdesk attach --socket")
    });
    let socket = hint.rsplit(' ').next().expect("socket path").to_owned();
    let mode = std::fs::metadata(&socket)
        .expect("socket exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "only the owner may drive the engine");
    engine.wait_for("READY", Duration::from_secs(120), |l| {
        l.starts_with("READY: 30 symbols")
    });

    let stream = UnixStream::connect(&socket).await.expect("connect to the engine");
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut next_view = async || -> Value {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("a view within 10 s")
            .expect("read")
            .expect("the engine keeps the connection open");
        serde_json::from_str(&line).expect("a view as JSON")
    };
    let first = next_view().await;
    assert_eq!(first["status"]["universe_size"], 30);
    assert_eq!(first["scanner"].as_array().map(Vec::len), Some(30));
    assert_eq!(first["header"]["mode"], "ict");

    // An intent from the attached console switches the engine's mode.
    write
        .write_all(format!("{}\n", json!({"SetMode": "hybrid"})).as_bytes())
        .await
        .expect("send intent");
    let mut switched = false;
    for _ in 0..200 {
        if next_view().await["header"]["mode"] == "hybrid" {
            switched = true;
            break;
        }
    }
    assert!(switched, "the engine applied the mode sent over the socket");
    // Garbage is skipped, not fatal.
    write.write_all(b"{not json}\n").await.expect("send garbage");
    assert_eq!(next_view().await["header"]["mode"], "hybrid");

    // Quit detaches: the server closes this connection, the engine keeps running.
    write.write_all(b"\"Quit\"\n").await.expect("send quit");
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = lines.next_line().await {}
    })
    .await;
    assert!(
        closed.is_ok(),
        "the engine closes a detached console's connection"
    );
    // Lines printed before the switch may still be queued: wait for one that shows it.
    engine.wait_for(
        "a status line in hybrid mode after detaching",
        Duration::from_secs(20),
        |l| l.starts_with("status |") && l.contains("mode hybrid"),
    );

    engine.signal("-TERM");
    assert_eq!(engine.wait_exit(Duration::from_secs(20)), Some(0));
    assert!(
        !std::path::Path::new(&socket).exists(),
        "the socket is removed at shutdown"
    );
}
