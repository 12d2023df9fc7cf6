//! Whole-screen snapshots: the console as a trader sees it, at 80×24 (the smallest supported
//! terminal) and 120×40, driven by key presses like the real host loop drives it.
//!
//! Review a changed `.snap` by eye before accepting it: these are the screens.

mod fixtures;

use fixtures::{
    Session, breaker, detail_with_overlays, kill_switch, view, view_with_models, view_with_positions,
    view_with_signals, view_with_structure,
};
use perpdesk_ui::{
    Intent,
    app::Screen,
    view::{BreakerTier, ConnectionState, HeatCell, PositionSide, SchedulerLane, StrategyMode},
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
fn models_panel() {
    let mut session = Session::new(view_with_models());
    session.press(KeyCode::Char('M'));
    assert!(session.app.is_models_visible());
    snapshot_at_both_sizes("models_panel", &mut session);
    let screen = session.screen(120, 40);
    for wanted in [
        "Models",
        "★ champion",
        "native",
        "p50 11 µs",
        "0.612",
        "ML",
        "0.63",
    ] {
        assert!(screen.contains(wanted), "{wanted}:\n{screen}");
    }
    // The funnel and the models panel share the pane: one at a time.
    session.press(KeyCode::Char('f'));
    assert!(session.app.is_funnel_visible() && !session.app.is_models_visible());
    let funnel = session.screen(120, 40);
    assert!(
        funnel.contains("→ ML kept") && funnel.contains("ml:below_threshold"),
        "{funnel}"
    );
    insta::assert_snapshot!("funnel_with_model_120x40", funnel);
    session.press(KeyCode::Char('M'));
    assert!(session.app.is_models_visible() && !session.app.is_funnel_visible());
}

#[test]
fn models_panel_without_a_model() {
    let mut session = Session::new(view());
    session.view.models.models_dir = "models".to_owned();
    session.publish();
    session.press(KeyCode::Char('M'));
    snapshot_at_both_sizes("models_panel_empty", &mut session);
    assert!(
        session
            .screen(80, 24)
            .contains("no model loaded — run `perpdesk train --data DIR`")
    );
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
    // 80×24 cannot hold every key: the movement keys scroll the help.
    assert!(session.screen(80, 24).contains("j/k scroll"));
    session.press(KeyCode::Char('G'));
    let screen = session.screen(80, 24);
    insta::assert_snapshot!("help_overlay_scrolled_80x24", screen);
    assert!(screen.contains("Breaker-reset dialog"), "{screen}");
    assert!(!screen.contains("select the next row"), "{screen}");
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

/// The positions screen of [`view_with_positions`], reached with Tab.
fn positions_session() -> Session {
    let mut session = Session::new(view_with_positions());
    session.press(KeyCode::Tab);
    assert_eq!(session.app.screen(), Screen::Positions);
    session
}

#[test]
fn positions_screen() {
    let mut session = positions_session();
    snapshot_at_both_sizes("positions_screen", &mut session);
    let wide = session.screen(120, 40);
    for pane in [
        "Positions 14 open",
        "Risk heatmap",
        "Scheduler smart",
        "Events",
        "Equity",
    ] {
        assert!(wide.contains(pane), "{pane}:\n{wide}");
    }
    assert!(
        wide.contains("breaker NORMAL") && wide.contains("kill switch ready"),
        "{wide}"
    );
    let narrow = session.screen(80, 24);
    for pane in [
        "Positions",
        "Risk heatmap",
        "Scheduler",
        "Events",
        "Equity",
        "breaker NORMAL",
    ] {
        assert!(narrow.contains(pane), "{pane} at 80x24:\n{narrow}");
    }
    // Tab goes back to the markets screen.
    session.press(KeyCode::Tab);
    assert!(session.screen(80, 24).contains("Scanner"));
}

#[test]
fn positions_sorted_scrolled_and_filtered() {
    let mut session = positions_session();
    let first = session.app.selected_position_id();
    assert!(first.is_some(), "the riskiest position is selected");
    // `s` twice: by PnL, biggest loss first; `G` to the bottom (the biggest win).
    session.type_text("ssG");
    let best = session
        .view
        .positions
        .rows
        .iter()
        .max_by(|a, b| a.pnl_usdt.total_cmp(&b.pnl_usdt))
        .map(|row| row.id);
    assert_eq!(session.app.selected_position_id(), best);
    insta::assert_snapshot!("positions_by_pnl_bottom_80x24", session.screen(80, 24));
    session
        .press(KeyCode::Char('/'))
        .type_text("btc")
        .press(KeyCode::Enter);
    let screen = session.screen(120, 40);
    assert!(
        screen.contains("Positions 3 of 14 open") && screen.contains("filter btc"),
        "{screen}"
    );
    assert!(!screen.contains("ETHUSDT  SHORT"), "{screen}");
}

#[test]
fn heatmap_with_every_risk_band() {
    let mut view = view_with_positions();
    // Three positions per band and side on a few symbols, so every glyph and colour shows.
    view.heatmap = [0.05, 0.15, 0.35, 0.45, 0.6, 0.75, 0.85, 0.97, 1.2]
        .iter()
        .enumerate()
        .flat_map(|(index, risk)| {
            ["BTCUSDT", "ETHUSDT"].into_iter().map(move |symbol| HeatCell {
                position_id: index as u64 * 2 + u64::from(symbol == "ETHUSDT"),
                symbol: symbol.to_owned(),
                side: if index % 2 == 0 {
                    PositionSide::Long
                } else {
                    PositionSide::Short
                },
                risk_score: *risk,
                label: String::new(),
            })
        })
        .collect();
    let mut session = Session::new(view);
    session.press(KeyCode::Tab);
    snapshot_at_both_sizes("heatmap_all_bands", &mut session);
    let screen = session.screen(120, 40);
    for glyph in ['░', '▒', '▓', '█'] {
        assert!(
            screen.contains(&glyph.to_string().repeat(2)),
            "{glyph}:\n{screen}"
        );
    }
    assert!(
        screen.contains("BTCUSDT L ") && screen.contains("ETHUSDT S "),
        "{screen}"
    );
}

#[test]
fn scheduler_lanes_busy_and_fixed() {
    let mut view = view_with_positions();
    view.scheduler.lanes = [(100, 1_204), (500, 8_810), (2_000, 31_377), (5_000, 58_609)]
        .map(|(interval_ms, count)| SchedulerLane { interval_ms, count })
        .into();
    view.scheduler.checks_per_sec = 43_518.0;
    view.scheduler.lag_ms = 140;
    view.scheduler.max_lag_ms = 1_450;
    view.positions.open = 100_000;
    let mut session = Session::new(view);
    session.press(KeyCode::Tab);
    snapshot_at_both_sizes("scheduler_lanes_busy", &mut session);
    let screen = session.screen(120, 40);
    assert!(
        screen.contains("58,609") && screen.contains("43.5k chk/s"),
        "{screen}"
    );
    assert!(screen.contains("14 of 100,000 open"), "{screen}");

    session.view.scheduler.fixed_interval_ms = Some(1_000);
    session.view.scheduler.lanes = vec![SchedulerLane {
        interval_ms: 1_000,
        count: 14,
    }];
    let screen = session.screen(80, 24);
    insta::assert_snapshot!("scheduler_fixed_interval_80x24", screen);
    assert!(screen.contains("smart off, 1s"), "{screen}");
}

#[test]
fn event_log_newest_first() {
    let mut session = positions_session();
    let screen = session.screen(120, 40);
    let liquidation = screen.find("LIQ WARNING").unwrap();
    let approaching = screen.find("TP near").unwrap();
    assert!(liquidation < approaching, "newest first:\n{screen}");
    assert!(
        screen.contains("closed      take profit · +41.80 USDT"),
        "{screen}"
    );
    // A tall terminal gives the log room for every kind in the fixture.
    let tall = session.screen(120, 60);
    for kind in [
        "LIQ WARNING",
        "SL near",
        "risk level",
        "TP near",
        "trail moved",
        "closed",
        "TP hit",
        "SL hit",
        "expired",
        "created",
        "price",
    ] {
        assert!(tall.contains(kind), "{kind}:\n{tall}");
    }
    insta::assert_snapshot!("event_log_120x60", tall);
}

#[test]
fn breaker_tiers_in_the_status_bar() {
    let mut session = positions_session();
    for tier in BreakerTier::ALL {
        session.view.breaker = breaker(tier);
        let screen = session.screen(80, 24);
        let status = screen.lines().last().unwrap().to_owned();
        if tier == BreakerTier::Normal {
            assert!(!status.contains("NORMAL"), "no badge when normal: {status}");
        } else {
            assert!(status.contains(tier.as_str()), "{tier:?}: {status}");
        }
        let name = format!("breaker_{}", tier.as_str().to_lowercase().replace('-', "_"));
        insta::assert_snapshot!(format!("{name}_80x24"), screen);
    }
    session.view.breaker = breaker(BreakerTier::Caution);
    let status = session.screen(120, 40).lines().last().unwrap().to_owned();
    assert!(status.contains(" CAUTION 4m12s "), "{status}");
    insta::assert_snapshot!("breaker_caution_120x40", session.screen(120, 40));
    // The markets screen shows the badge too.
    session.press(KeyCode::Tab);
    let status = session.screen(80, 24).lines().last().unwrap().to_owned();
    assert!(status.contains(" CAUTION 4m12s "), "{status}");
}

#[test]
fn kill_switch_asks_for_the_word_then_sends() {
    let mut session = positions_session();
    session.press(KeyCode::Char('K'));
    snapshot_at_both_sizes("kill_switch_confirm_empty", &mut session);
    // Keys that would do something else type into the dialog instead.
    session.type_text("qj");
    assert!(session.intents.iter().all(|intent| *intent != Intent::Quit));
    session.press(KeyCode::Enter);
    assert!(
        session.app.confirmation().is_some(),
        "a wrong word does not pull it"
    );
    assert!(!session.intents.contains(&Intent::KillSwitch));
    session.type_text("KIL");
    snapshot_at_both_sizes("kill_switch_confirm_typing", &mut session);
    session.press(KeyCode::Esc);
    assert!(session.app.confirmation().is_none(), "Esc cancels");
    assert!(!session.intents.contains(&Intent::KillSwitch));

    session
        .press(KeyCode::Char('K'))
        .type_text("kill")
        .press(KeyCode::Enter);
    assert_eq!(session.intents.last(), Some(&Intent::KillSwitch));
    assert!(session.app.confirmation().is_none());
    // The engine answers: flattening, then engaged.
    session.view.kill_switch = kill_switch(9);
    snapshot_at_both_sizes("kill_switch_flattening", &mut session);
    session.view.kill_switch = kill_switch(0);
    let screen = session.screen(80, 24);
    assert!(screen.contains("KILL SWITCH ENGAGED"), "{screen}");
}

#[test]
fn breaker_reset_asks_yes_or_no() {
    let mut session = positions_session();
    session.view.breaker = breaker(BreakerTier::Halt);
    session.press(KeyCode::Char('R'));
    snapshot_at_both_sizes("breaker_reset_confirm", &mut session);
    session.press(KeyCode::Char('n'));
    assert!(session.app.confirmation().is_none());
    assert!(!session.intents.contains(&Intent::ResetBreaker));
    session.press(KeyCode::Char('R')).press(KeyCode::Char('x'));
    assert!(session.app.confirmation().is_some(), "other keys do nothing");
    session.press(KeyCode::Char('y'));
    assert_eq!(session.intents.last(), Some(&Intent::ResetBreaker));
    assert!(session.app.confirmation().is_none());
}

#[test]
fn manual_entry_names_the_selected_symbol_and_side_and_asks_first() {
    let mut session = Session::new(view());
    session.press(KeyCode::Char('j'));
    let symbol = session
        .app
        .selected_symbol()
        .expect("a scanner row is selected")
        .to_owned();
    session.press(KeyCode::Char('L'));
    snapshot_at_both_sizes("manual_entry_confirm_long", &mut session);
    let screen = session.screen(80, 24);
    assert!(
        screen.contains(&format!("Open LONG {symbol} at the mark?")),
        "{screen}"
    );
    session.press(KeyCode::Char('q'));
    assert!(
        session.intents.iter().all(|intent| *intent != Intent::Quit),
        "other keys do nothing while the dialog is open"
    );
    session.press(KeyCode::Esc);
    assert!(session.app.confirmation().is_none(), "Esc cancels");
    session.press(KeyCode::Char('S')).press(KeyCode::Char('y'));
    assert_eq!(
        session.intents.last(),
        Some(&Intent::OpenPosition {
            symbol,
            side: PositionSide::Short
        })
    );
    assert!(session.app.confirmation().is_none());
}

#[test]
fn closing_a_position_names_it_and_asks_first() {
    let mut session = positions_session();
    // Markets keys do nothing here: a manual entry is asked for on the markets screen only.
    session.press(KeyCode::Char('L'));
    assert!(session.app.confirmation().is_none());
    session.press(KeyCode::Char('j'));
    let id = session
        .app
        .selected_position_id()
        .expect("a position is selected");
    let row = session
        .view
        .positions
        .rows
        .iter()
        .find(|row| row.id == id)
        .expect("the selected row")
        .clone();
    session.press(KeyCode::Char('X'));
    snapshot_at_both_sizes("close_position_confirm", &mut session);
    let screen = session.screen(80, 24);
    let label = format!("#{} {} {}", row.id, row.side.as_str(), row.symbol);
    assert!(screen.contains(&format!("Close {label}")), "{screen}");
    session.press(KeyCode::Char('n'));
    assert!(session.app.confirmation().is_none(), "n keeps it");
    assert!(
        !session
            .intents
            .iter()
            .any(|intent| matches!(intent, Intent::ClosePosition { .. }))
    );
    session.press(KeyCode::Char('X')).press(KeyCode::Char('y'));
    assert_eq!(session.intents.last(), Some(&Intent::ClosePosition { id }));
    assert!(session.app.confirmation().is_none());
}

#[test]
fn positions_screen_empty() {
    let mut session = Session::new(view());
    session.press(KeyCode::Tab);
    snapshot_at_both_sizes("positions_empty", &mut session);
    let screen = session.screen(120, 40);
    for message in [
        "no open positions",
        "nothing scheduled",
        "no lifecycle events yet",
        "no equity history yet",
    ] {
        assert!(screen.contains(message), "{message}:\n{screen}");
    }
}

#[test]
fn every_terminal_size_draws_the_positions_screen() {
    let mut session = positions_session();
    session.view.breaker = breaker(BreakerTier::Halt);
    session.view.kill_switch = kill_switch(3);
    for dialog in [false, true] {
        if dialog {
            session.press(KeyCode::Char('K'));
        }
        for width in (1..=130).step_by(3) {
            for height in [1, 2, 3, 5, 8, 13, 21, 24, 34, 45] {
                let screen = session.screen(width, height);
                assert_eq!(screen.lines().count(), usize::from(height));
            }
        }
    }
}
