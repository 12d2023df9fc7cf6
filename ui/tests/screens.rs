//! Whole-screen snapshots: the console as a trader sees it, at 80×24 (the smallest supported
//! terminal) and 120×40, driven by key presses like the real host loop drives it.
//!
//! Review a changed `.snap` by eye before accepting it: these are the screens.

mod fixtures;

use fixtures::{Session, detail_with_overlays, view, view_with_signals, view_with_structure};
use perpdesk_ui::{
    Intent,
    view::{ConnectionState, StrategyMode},
};
use ratatui::crossterm::event::KeyCode;

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

fn snapshot_at_both_sizes(name: &str, session: &mut Session) {
    for (width, height) in SIZES {
        insta::assert_snapshot!(format!("{name}_{width}x{height}"), session.screen(width, height));
    }
}

#[test]
fn scanner_and_chart() {
    let mut session = Session::new(view());
    assert_eq!(
        session.intents,
        [Intent::Focus {
            symbol: "BTCUSDT".to_owned(),
            timeframe: "15m".to_owned()
        }],
        "the first view focuses the top symbol without a key press"
    );
    snapshot_at_both_sizes("scanner_and_chart", &mut session);
}

#[test]
fn signals_and_biases() {
    let mut session = Session::new(view_with_signals());
    snapshot_at_both_sizes("signals_and_biases", &mut session);
    let screen = session.screen(80, 24);
    assert!(screen.contains("L 0.82") && screen.contains("S 0.74"), "{screen}");
    assert!(screen.contains('▲') && screen.contains('▼'), "{screen}");
}

#[test]
fn chart_with_overlays() {
    let mut session = Session::new(view());
    session.view.detail = detail_with_overlays("BTCUSDT", "15m");
    let overlays = &session.view.detail.as_ref().unwrap().overlays;
    assert!(!overlays.swings.is_empty() && overlays.zones.len() == 2 && !overlays.levels.is_empty());
    snapshot_at_both_sizes("chart_with_overlays", &mut session);
    let screen = session.screen(120, 40);
    assert!(screen.contains("OB") && screen.contains(" liq"), "{screen}");
    assert!(screen.contains('▴') && screen.contains('▾'), "{screen}");
}

#[test]
fn structure_columns() {
    let mut session = Session::new(view_with_structure());
    snapshot_at_both_sizes("structure_columns", &mut session);
    let wide = session.screen(120, 40);
    assert!(wide.contains("Break") && wide.contains("Zone"), "{wide}");
    let narrow = session.screen(80, 24);
    assert!(
        !narrow.contains("Break") && narrow.contains("Volume"),
        "80 columns drop the structure columns first:\n{narrow}"
    );
}

#[test]
fn funnel_panel() {
    let mut session = Session::new(view_with_signals());
    session.press(KeyCode::Char('f'));
    assert!(session.app.is_funnel_visible());
    snapshot_at_both_sizes("funnel_panel", &mut session);
    let screen = session.screen(80, 24);
    assert!(
        screen.contains("Signal funnel") && screen.contains("not built yet") && screen.contains("no_setup"),
        "{screen}"
    );
    session.press(KeyCode::Char('c'));
    insta::assert_snapshot!("funnel_panel_chart_hidden_80x24", session.screen(80, 24));
    session.press(KeyCode::Char('f'));
    assert!(!session.screen(80, 24).contains("Signal funnel"));
}

#[test]
fn filter_being_typed() {
    let mut session = Session::new(view());
    session.press(KeyCode::Char('/')).type_text("et");
    assert_eq!(
        session.app.visible_symbols(&session.view),
        ["ETHUSDT", "ETCUSDT", "FETUSDT"]
    );
    snapshot_at_both_sizes("filter_being_typed", &mut session);
}

#[test]
fn filter_applied_and_browsed() {
    let mut session = Session::new(view());
    session
        .press(KeyCode::Char('/'))
        .type_text("10")
        .press(KeyCode::Backspace);
    session
        .type_text("000")
        .press(KeyCode::Enter)
        .press(KeyCode::Char('j'));
    assert_eq!(session.app.filter(), "1000");
    assert_eq!(session.app.selected_symbol(), Some("1000SHIBUSDT"));
    snapshot_at_both_sizes("filter_applied", &mut session);
}

#[test]
fn sorted_by_24h_change() {
    let mut session = Session::new(view());
    session.type_text("sss");
    assert_eq!(
        session.app.selected_symbol(),
        Some("BTCUSDT"),
        "the selection stays on its symbol"
    );
    session.type_text("gjj");
    assert_eq!(
        session.app.selected_symbol(),
        Some("ORDIUSDT"),
        "third biggest gainer"
    );
    snapshot_at_both_sizes("sorted_by_24h_change", &mut session);
}

#[test]
fn scrolled_to_the_bottom_on_another_timeframe() {
    let mut session = Session::new(view());
    session
        .press(KeyCode::Char('G'))
        .press(KeyCode::Char('t'))
        .press(KeyCode::Up);
    assert_eq!(
        session.intents.last(),
        Some(&Intent::Focus {
            symbol: "ETCUSDT".to_owned(),
            timeframe: "1h".to_owned()
        })
    );
    snapshot_at_both_sizes("scrolled_to_bottom_1h", &mut session);
}

#[test]
fn help_overlay() {
    let mut session = Session::new(view());
    session.press(KeyCode::Char('?'));
    snapshot_at_both_sizes("help_overlay", &mut session);
}

#[test]
fn disconnected() {
    let mut view = view();
    view.header.connection = ConnectionState::Disconnected;
    view.header.streams_up = 0;
    view.status.last_message_age_ms = Some(47_000);
    view.status.reconnects = 4;
    view.status.message = Some("all streams down; reconnecting in 4s".to_owned());
    let mut session = Session::new(view);
    snapshot_at_both_sizes("disconnected", &mut session);
}

#[test]
fn pending_mode_change_while_live() {
    let mut view = view();
    view.header.live_trading = true;
    view.header.environment = "mainnet".to_owned();
    view.header.venue = "Binance USDT-M".to_owned();
    let mut session = Session::new(view);
    session.press(KeyCode::Char('3'));
    assert_eq!(
        session.intents.last(),
        Some(&Intent::SetMode(StrategyMode::Hybrid))
    );
    snapshot_at_both_sizes("pending_mode_live", &mut session);
    // Once the engine applies the mode, the arrow goes away.
    session.view.header.mode = StrategyMode::Hybrid;
    session.publish();
    assert!(
        session
            .screen(80, 24)
            .lines()
            .next()
            .unwrap()
            .contains("mode: hybrid  ")
    );
}

#[test]
fn chart_hidden_and_waiting_states() {
    let mut session = Session::new(view());
    session.press(KeyCode::Char('c'));
    insta::assert_snapshot!("chart_hidden_80x24", session.screen(80, 24));
    session.press(KeyCode::Char('c'));
    // The engine has not answered the focus yet.
    session.view.detail = None;
    insta::assert_snapshot!("chart_loading_80x24", session.screen(80, 24));
    let mut empty = Session::new(perpdesk_ui::View::default());
    insta::assert_snapshot!("empty_view_80x24", empty.screen(80, 24));
}

#[test]
fn every_terminal_size_draws_and_keeps_the_paper_badge() {
    // Resizing through tiny sizes must never panic (a panic would take the engine down with the TUI).
    let mut session = Session::new(view());
    session.press(KeyCode::Char('G'));
    for (help, funnel) in [(false, false), (false, true), (true, true)] {
        if funnel && !session.app.is_funnel_visible() {
            session.press(KeyCode::Char('f'));
        }
        if help {
            session.press(KeyCode::Char('?'));
        }
        for width in (1..=130).step_by(3) {
            for height in [1, 2, 3, 5, 8, 13, 21, 24, 34, 45] {
                let screen = session.screen(width, height);
                assert_eq!(screen.lines().count(), usize::from(height));
                if width >= 60 && !help {
                    assert!(
                        screen.lines().next().unwrap().contains("PAPER"),
                        "{width}x{height}:\n{screen}"
                    );
                }
            }
        }
    }
}
