//! The TUI host loop: terminal events and engine views in, intents out, a redraw when either changes.
//!
//! Keys are read on a dedicated thread (crossterm's reader blocks) and forwarded over a channel, so
//! the loop is one `select!` over keys, view changes, a clock tick and the shutdown signal. The UI
//! never blocks the engine: it only reads the latest `Arc<View>` and sends commands over a bounded
//! channel with `try_send` semantics.

use std::{sync::Arc, thread, time::Duration};

use perpdesk_ui::ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use perpdesk_ui::{
    App, Intent, Theme,
    terminal::{self, ConsoleTerminal},
    view::View,
};
use tokio::sync::{mpsc, watch};

use crate::{
    app::RunningEngine,
    console::presenter::intent_to_command,
    engine::{Command, EngineEvent},
};

/// Terminal input the loop cares about.
enum Input {
    Key(event::KeyEvent),
    Resize,
}

fn spawn_input_thread(tx: mpsc::UnboundedSender<Input>) {
    thread::spawn(move || {
        loop {
            if tx.is_closed() {
                return;
            }
            match event::poll(Duration::from_millis(200)) {
                Ok(true) => match event::read() {
                    Ok(Event::Key(k)) if k.kind != KeyEventKind::Release => {
                        if tx.send(Input::Key(k)).is_err() {
                            return;
                        }
                    }
                    Ok(Event::Resize(..)) => {
                        if tx.send(Input::Resize).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                },
                Ok(false) => {}
                Err(_) => return,
            }
        }
    });
}

/// Where the console's intents go: the engine in this process, or one attached over a socket.
#[derive(Debug, Clone, Copy)]
pub enum IntentSink<'a> {
    Local(&'a RunningEngine),
    Remote(&'a mpsc::UnboundedSender<Intent>),
}

impl IntentSink<'_> {
    fn send(self, intent: &Intent) {
        match self {
            Self::Local(engine) => {
                if let Some(cmd) = intent_to_command(intent) {
                    // A full command channel means the engine is far behind; dropping one key press
                    // is better than freezing the screen.
                    if engine.commands.try_send(EngineEvent::Command(cmd)).is_err() {
                        tracing::warn!(?intent, "engine busy: operator command dropped");
                    }
                }
            }
            Self::Remote(tx) => {
                let _ = tx.send(intent.clone());
            }
        }
    }

    /// The console is closing: a local engine shuts down with it, a remote one is only detached from.
    fn close(self) {
        match self {
            Self::Local(engine) => {
                let _ = engine.commands.try_send(EngineEvent::Command(Command::Shutdown));
            }
            Self::Remote(tx) => {
                let _ = tx.send(Intent::Quit);
            }
        }
    }
}

fn draw(term: &mut ConsoleTerminal, app: &mut App, view: &View) -> anyhow::Result<()> {
    term.draw(|f| app.draw(f, view))?;
    Ok(())
}

/// Runs the TUI until the operator quits, the view source closes, or `shutdown` fires. Restores the
/// terminal on every path.
pub async fn run(
    views: watch::Receiver<Arc<View>>,
    sink: IntentSink<'_>,
    theme: Theme,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    terminal::install_panic_hook();
    let mut term = terminal::enter()?;
    let result = run_loop(&mut term, views, sink, theme, &mut shutdown).await;
    let restored = terminal::restore();
    result?;
    restored?;
    Ok(())
}

async fn run_loop(
    term: &mut ConsoleTerminal,
    mut views: watch::Receiver<Arc<View>>,
    sink: IntentSink<'_>,
    theme: Theme,
    shutdown: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    // An empty list: the chart follows the view's timeframes (known once the first view arrives).
    let mut app = App::new(theme, Vec::<String>::new());
    let (tx, mut rx) = mpsc::unbounded_channel();
    spawn_input_thread(tx);
    let mut view: Arc<View> = Arc::clone(&views.borrow_and_update());
    draw(term, &mut app, &view)?;
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            input = rx.recv() => {
                match input {
                    Some(Input::Key(key)) => {
                        let ctrl_c = key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
                        match app.handle_key(key, &view) {
                            Some(Intent::Quit) => break,
                            Some(intent) => sink.send(&intent),
                            None if ctrl_c => break,
                            None => {}
                        }
                    }
                    Some(Input::Resize) => {}
                    None => break,
                }
                draw(term, &mut app, &view)?;
            }
            changed = views.changed() => {
                if changed.is_err() { break; }
                view = Arc::clone(&views.borrow_and_update());
                if let Some(intent) = app.focus_request(&view) {
                    sink.send(&intent);
                }
                draw(term, &mut app, &view)?;
            }
            _ = clock.tick() => draw(term, &mut app, &view)?,
            _ = shutdown.changed() => break,
        }
    }
    sink.close();
    Ok(())
}
