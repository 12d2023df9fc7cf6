//! The presenter: engine state → [`View`], operator [`Intent`] → engine [`Command`].
//!
//! The only place that knows both the engine's types and the UI's view model, so neither side has to
//! know the other (ARCHITECTURE.md §1).

use perpdesk_ui::{
    intent::Intent,
    view::{
        Candle, ConnectionState, Detail, Funnel, Header, ScannerRow, SignalBadge, Status, StrategyMode, View,
    },
};

use crate::{
    domain::Side,
    engine::{Command, Engine, SymbolState},
    strategy::{Mode, Role},
};

pub fn mode_to_view(m: Mode) -> StrategyMode {
    match m {
        Mode::Ict => StrategyMode::Ict,
        Mode::SelfLearning => StrategyMode::SelfLearning,
        Mode::Hybrid => StrategyMode::Hybrid,
    }
}

pub fn mode_from_view(m: StrategyMode) -> Mode {
    match m {
        StrategyMode::Ict => Mode::Ict,
        StrategyMode::SelfLearning => Mode::SelfLearning,
        StrategyMode::Hybrid => Mode::Hybrid,
    }
}

/// Turns an operator intent into an engine command. `None` for intents the UI host handles itself.
pub fn intent_to_command(intent: &Intent) -> Option<Command> {
    match intent {
        Intent::SetMode(m) => Some(Command::SetMode(mode_from_view(*m))),
        Intent::Focus { symbol, timeframe } => timeframe.parse().ok().map(|interval| Command::Focus {
            symbol: symbol.clone(),
            interval,
        }),
        Intent::Quit => Some(Command::Shutdown),
    }
}

fn pct(from: f64, to: f64) -> f64 {
    if from == 0.0 {
        0.0
    } else {
        (to / from - 1.0) * 100.0
    }
}

/// Bias per timeframe (+1 / −1) from the symbol's analysis; all `None` without one.
fn biases(state: Option<&SymbolState>, timeframes: usize) -> Vec<Option<i8>> {
    let analysis = state.and_then(|s| s.signals.analysis.as_ref());
    (0..timeframes)
        .map(|tf| {
            let role = Role::ALL.get(tf)?;
            analysis?.timeframe(*role).bias().map(crate::smc::Direction::sign)
        })
        .collect()
}

fn badge(state: Option<&SymbolState>) -> Option<SignalBadge> {
    let signal = state?.signals.latest.as_ref()?.signal()?;
    Some(SignalBadge {
        side: match signal.side {
            Side::Long => "LONG",
            Side::Short => "SHORT",
        }
        .to_owned(),
        quality: signal.quality.total,
        rr: signal.reward_risk,
    })
}

/// Builds the whole view. Called at most at the frame rate, only when something changed.
pub fn build_view(engine: &Engine) -> View {
    let settings = engine.settings();
    let Ok(table) = engine.table.read() else {
        return View::default();
    };
    let shards_total = engine.shards_up.len() as u32;
    let shards_up = engine.shards_up.iter().filter(|u| **u).count() as u32;
    let connection = if !engine.ever_connected {
        if engine.message.is_some() && engine.universe.is_empty() {
            ConnectionState::Disconnected
        } else {
            ConnectionState::Connecting
        }
    } else if shards_up == shards_total {
        ConnectionState::Connected
    } else if shards_up == 0 {
        ConnectionState::Disconnected
    } else {
        ConnectionState::Degraded
    };

    let tfs = &settings.timeframes;
    let mut series_backfilled = 0u32;
    let mut series_streaming = 0u32;
    let mut scanner = Vec::with_capacity(engine.universe.len());
    for (rank, id) in engine.universe.iter().enumerate() {
        let Some(sym) = table.get(*id) else { continue };
        let state = engine.symbols.get(id);
        let ticker = engine.tickers.get(id);
        let mut tf_change = Vec::with_capacity(tfs.len());
        let mut last_from_bars = None;
        for tf in 0..tfs.len() {
            let change = state.and_then(|s| {
                if s.backfilled[tf] {
                    series_backfilled += 1;
                }
                if s.streaming[tf] {
                    series_streaming += 1;
                }
                let b = s.series[tf].latest()?;
                last_from_bars = Some(b.close);
                Some(pct(b.open, b.close))
            });
            tf_change.push(change);
        }
        scanner.push(ScannerRow {
            rank: rank as u32 + 1,
            symbol: sym.name.clone(),
            last_price: last_from_bars.or(ticker.map(|t| t.last_price)).unwrap_or(0.0),
            price_decimals: sym.price_precision.min(12) as u8,
            change_24h_pct: ticker.map_or(0.0, |t| t.change_pct),
            quote_volume_24h: ticker.map_or(0.0, |t| t.quote_volume),
            tf_change_pct: tf_change,
            bias: biases(state, tfs.len()),
            signal: badge(state),
        });
    }

    let detail = engine.focus.and_then(|(id, tf)| {
        let sym = table.get(id)?;
        let series = &engine.symbols.get(&id)?.series[tf];
        Some(Detail {
            symbol: sym.name.clone(),
            timeframe: tfs[tf].as_str().to_owned(),
            price_decimals: sym.price_precision.min(12) as u8,
            candles: series
                .tail(settings.chart_bars)
                .map(|b| Candle {
                    open_time_ms: b.open_time,
                    open: b.open,
                    high: b.high,
                    low: b.low,
                    close: b.close,
                    volume: b.volume,
                    closed: b.closed,
                })
                .collect(),
        })
    });

    let counters = engine.counters();
    View {
        header: Header {
            venue: settings.venue.clone(),
            environment: settings.environment.clone(),
            live_trading: settings.live_trading,
            mode: mode_to_view(engine.mode()),
            now_ms: crate::domain::now_ms(),
            connection,
            streams_up: shards_up,
            streams_total: shards_total,
        },
        scanner,
        timeframes: tfs.iter().map(|t| t.as_str().to_owned()).collect(),
        detail,
        status: Status {
            universe_size: engine.universe.len() as u32,
            series_backfilled,
            series_streaming,
            series_total: (engine.universe.len() * tfs.len()) as u32,
            closed_bars: counters.closed_bars,
            reconnects: counters.reconnects,
            missing_bars: counters.missing_bars,
            malformed_frames: counters.malformed_frames,
            rest_weight_used: engine.weight.used(),
            last_message_age_ms: engine.last_message_at.map(|t| t.elapsed().as_millis() as u64),
            message: engine.message.clone(),
        },
        funnel: Funnel {
            evaluated: engine.funnel.evaluated,
            setups: engine.funnel.setups,
            signals: engine.funnel.signals,
            rejections: engine.funnel.sorted_rejections(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intents_map_to_commands() {
        assert_eq!(
            intent_to_command(&Intent::SetMode(StrategyMode::Hybrid)),
            Some(Command::SetMode(Mode::Hybrid))
        );
        assert_eq!(
            intent_to_command(&Intent::Focus {
                symbol: "BTCUSDT".into(),
                timeframe: "15m".into()
            }),
            Some(Command::Focus {
                symbol: "BTCUSDT".into(),
                interval: crate::domain::Interval::M15
            })
        );
        assert_eq!(
            intent_to_command(&Intent::Focus {
                symbol: "X".into(),
                timeframe: "7m".into()
            }),
            None
        );
        for m in Mode::ALL {
            assert_eq!(mode_from_view(mode_to_view(m)), m);
        }
    }

    #[test]
    fn views_without_the_strategy_fields_still_decode() {
        let view = View {
            scanner: vec![ScannerRow {
                symbol: "BTCUSDT".into(),
                tf_change_pct: vec![Some(0.1)],
                ..ScannerRow::default()
            }],
            ..View::default()
        };
        let Ok(mut json) = serde_json::to_value(&view) else {
            panic!("a view encodes");
        };
        if let Some(object) = json.as_object_mut() {
            object.remove("funnel");
        }
        if let Some(row) = json["scanner"][0].as_object_mut() {
            row.remove("bias");
            row.remove("signal");
        }
        assert!(json.get("funnel").is_none() && json["scanner"][0].get("bias").is_none());
        let decoded: Result<View, _> = serde_json::from_value(json);
        assert_eq!(decoded.ok(), Some(view));
    }
}
