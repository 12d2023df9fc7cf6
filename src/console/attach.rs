//! The attach socket: a TUI in one process drives an engine running headless in another.
//!
//! A trader starts `perpdesk --headless` under systemd or tmux and opens `perpdesk attach` whenever
//! they log in over SSH. The engine listens on a Unix socket (mode 0600: only its owner may drive
//! it) and speaks newline-delimited JSON: engine → console, one [`View`] per line whenever it changed
//! (at most at the engine's frame rate); console → engine, one [`Intent`] per line. Because `View`
//! and `Intent` are the same serde types the local TUI uses, the attached console is the same code.
//! `Quit` from an attached console only detaches; it never stops the engine.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use perpdesk_ui::{Intent, view::View};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::{mpsc, watch},
};

use crate::{
    console::presenter::intent_to_command,
    engine::{Command, EngineEvent},
};

/// Why the attach socket could not be served or reached.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("cannot listen on {path}: {source}")]
    Listen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another engine is already listening on {0} (stop it, or give this one another --data-dir)")]
    InUse(PathBuf),
    #[error(
        "cannot connect to the engine at {path}: {source} (is `perpdesk --headless` running with this data directory?)"
    )]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The socket path for a data directory.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("perpdesk.sock")
}

/// Binds the socket (replacing a stale one left by a crash) and serves consoles until `shutdown`.
pub async fn serve(
    path: &Path,
    views: watch::Receiver<Arc<View>>,
    commands: mpsc::Sender<EngineEvent>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, AttachError> {
    if path.exists() {
        // A live engine answers; a stale socket file from a crash does not and can be replaced.
        if UnixStream::connect(path).await.is_ok() {
            return Err(AttachError::InUse(path.to_owned()));
        }
        let _ = std::fs::remove_file(path);
    }
    let listen_err = |source| AttachError::Listen {
        path: path.to_owned(),
        source,
    };
    let listener = UnixListener::bind(path).map_err(listen_err)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(listen_err)?;
    }
    let path = path.to_owned();
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        tracing::info!("console attached");
                        tokio::spawn(serve_one(stream, views.clone(), commands.clone(), shutdown.clone()));
                    }
                    Err(e) => tracing::warn!(error = %e, "attach socket accept failed"),
                },
                _ = shutdown.changed() => break,
            }
        }
        let _ = std::fs::remove_file(&path);
    }))
}

async fn serve_one(
    stream: UnixStream,
    mut views: watch::Receiver<Arc<View>>,
    commands: mpsc::Sender<EngineEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut out = Vec::with_capacity(64 * 1024);
    // The current view at once, then every change.
    views.mark_changed();
    loop {
        tokio::select! {
            changed = views.changed() => {
                if changed.is_err() { return; }
                let view = Arc::clone(&views.borrow_and_update());
                out.clear();
                if serde_json::to_writer(&mut out, view.as_ref()).is_err() { return; }
                out.push(b'\n');
                if write.write_all(&out).await.is_err() { return; }
            }
            line = lines.next_line() => {
                let Ok(Some(line)) = line else { tracing::info!("console detached"); return };
                match serde_json::from_str::<Intent>(&line) {
                    Ok(Intent::Quit) => {
                        tracing::info!("console detached");
                        return;
                    }
                    Ok(intent) => {
                        if let Some(cmd) = intent_to_command(&intent)
                            && !matches!(cmd, Command::Shutdown)
                        {
                            let _ = commands.send(EngineEvent::Command(cmd)).await;
                        }
                    }
                    // Bad input from a client is reported and skipped, never fatal.
                    Err(e) => tracing::warn!(error = %e, "attach: undecodable intent skipped"),
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// The console side: views from the engine, a sender for intents.
#[derive(Debug)]
pub struct Attached {
    pub views: watch::Receiver<Arc<View>>,
    pub intents: mpsc::UnboundedSender<Intent>,
}

/// Connects to an engine's socket and starts the reader and writer tasks.
pub async fn connect(path: &Path) -> Result<Attached, AttachError> {
    let stream = UnixStream::connect(path)
        .await
        .map_err(|source| AttachError::Connect {
            path: path.to_owned(),
            source,
        })?;
    let (read, mut write) = stream.into_split();
    let (view_tx, view_rx) = watch::channel(Arc::new(View::default()));
    tokio::spawn(async move {
        let mut lines = BufReader::new(read).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            match serde_json::from_str::<View>(&line) {
                Ok(v) => {
                    view_tx.send_replace(Arc::new(v));
                }
                Err(e) => tracing::warn!(error = %e, "attach: undecodable view skipped"),
            }
        }
        // Dropping the sender tells the TUI the engine went away.
    });
    let (intent_tx, mut intent_rx) = mpsc::unbounded_channel::<Intent>();
    tokio::spawn(async move {
        while let Some(intent) = intent_rx.recv().await {
            let Ok(mut line) = serde_json::to_vec(&intent) else {
                continue;
            };
            line.push(b'\n');
            if write.write_all(&line).await.is_err() {
                return;
            }
        }
    });
    Ok(Attached {
        views: view_rx,
        intents: intent_tx,
    })
}
