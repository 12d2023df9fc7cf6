//! The presenter: engine state → [`View`], operator [`Intent`] → engine [`Command`].
//!
//! The only place that knows both the engine's types and the UI's view model, so neither side has to
//! know the other (ARCHITECTURE.md §1).
//!
//! From each symbol's analysis the scanner row gets the per-timeframe bias, the most recent structure
//! break across the timeframes (by the close time of the bar that broke, so a 1h break is not "newer"
//! than a 5m one merely because its bar opened later) and the active order block or fair value gap
//! nearest to the last price.

use perpdesk_ui::{
    intent::Intent,
    view::{
        BreakBadge, Candle, ConnectionState, Detail, Funnel, Header, ScannerRow, SignalBadge, Status,
        StrategyMode, View, ZoneBadge,
    },
};

use crate::{
    domain::Side,
    engine::{Command, Engine, SymbolState},
    smc::{Direction, StructureKind},
    strategy::{Mode, Role, SymbolAnalysis, analysis::Zone},
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

/// The most recent structure break across the analysis's timeframes, by the close time of the bar that
/// broke (ties go to the higher timeframe).
fn last_break(analysis: &SymbolAnalysis) -> Option<BreakBadge> {
    Role::ALL
        .iter()
        .enumerate()
        .filter_map(|(slot, role)| {
            let tf = analysis.timeframe(*role);
            let record = tf.last_break()?;
            let closed_at = tf.bar(record.broken_at)?.close_time;
            let bars_ago = tf.last_index()?.saturating_sub(record.broken_at);
            let badge = BreakBadge {
                kind: match record.kind {
                    StructureKind::Bos => "BOS",
                    StructureKind::Choch => "CHoCH",
                }
                .to_owned(),
                bullish: record.direction == Direction::Bullish,
                timeframe: tf.interval().as_str().to_owned(),
                bars_ago: u32::try_from(bars_ago).unwrap_or(u32::MAX),
            };
            Some(((closed_at, slot), badge))
        })
        .max_by_key(|(key, _)| *key)
        .map(|(_, badge)| badge)
}

/// Signed distance in percent from `price` to the nearest edge of `[bottom, top]`: positive above,
/// negative below, 0 inside.
fn zone_distance_pct(price: f64, zone: &Zone) -> f64 {
    let (bottom, top) = (zone.bottom.min(zone.top), zone.bottom.max(zone.top));
    if price > top {
        pct(price, top)
    } else if price < bottom {
        pct(price, bottom)
    } else {
        0.0
    }
}

/// The active (not invalidated) order block or fair value gap nearest to `price`, across the
/// analysis's timeframes; ties go to the lower timeframe, then to order blocks.
fn nearest_zone(analysis: &SymbolAnalysis, price: f64) -> Option<ZoneBadge> {
    if !(price.is_finite() && price > 0.0) {
        return None;
    }
    let mut best: Option<ZoneBadge> = None;
    for role in Role::ALL {
        let tf = analysis.timeframe(role);
        let families = [("OB", tf.order_blocks()), ("FVG", tf.fair_value_gaps())];
        for (kind, zones) in families {
            for zone in zones {
                let distance_pct = zone_distance_pct(price, zone);
                if !distance_pct.is_finite()
                    || best
                        .as_ref()
                        .is_some_and(|b| b.distance_pct.abs() <= distance_pct.abs())
                {
                    continue;
                }
                best = Some(ZoneBadge {
                    kind: kind.to_owned(),
                    bullish: zone.direction == Direction::Bullish,
                    timeframe: tf.interval().as_str().to_owned(),
                    distance_pct,
                });
            }
        }
    }
    best
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
        let last_price = last_from_bars.or(ticker.map(|t| t.last_price)).unwrap_or(0.0);
        let analysis = state.and_then(|s| s.signals.analysis.as_ref());
        scanner.push(ScannerRow {
            rank: rank as u32 + 1,
            symbol: sym.name.clone(),
            last_price,
            price_decimals: sym.price_precision.min(12) as u8,
            change_24h_pct: ticker.map_or(0.0, |t| t.change_pct),
            quote_volume_24h: ticker.map_or(0.0, |t| t.quote_volume),
            tf_change_pct: tf_change,
            bias: biases(state, tfs.len()),
            signal: badge(state),
            last_break: analysis.and_then(last_break),
            nearest_zone: analysis.and_then(|a| nearest_zone(a, last_price)),
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
            row.remove("last_break");
            row.remove("nearest_zone");
        }
        assert!(json.get("funnel").is_none() && json["scanner"][0].get("bias").is_none());
        assert!(json["scanner"][0].get("last_break").is_none());
        let decoded: Result<View, _> = serde_json::from_value(json);
        assert_eq!(decoded.ok(), Some(view));
    }

    /// 5m bars zig-zagging upward: impulses of +6 over 12 bars, pullbacks of −3.5 over 10.
    fn zigzag() -> Vec<crate::domain::Bar> {
        const FIVE: i64 = 300_000;
        let mut bars = Vec::new();
        let mut price = 100.0;
        for _ in 0..12 {
            for (delta, steps) in [(6.0, 12), (-3.5, 10)] {
                let step = delta / f64::from(steps);
                for _ in 0..steps {
                    let open_time = 1_700_000_100_000 + FIVE * bars.len() as i64;
                    let close = price + step;
                    bars.push(crate::domain::Bar {
                        open_time,
                        close_time: open_time + FIVE - 1,
                        open: price,
                        high: f64::max(price, close) + 0.1,
                        low: f64::min(price, close) - 0.1,
                        close,
                        volume: 100.0,
                        quote_volume: 100.0 * close,
                        trades: 10,
                        closed: true,
                    });
                    price = close;
                }
            }
        }
        bars
    }

    #[test]
    fn break_and_zone_come_from_the_analysis() {
        let Ok(mut analysis) = SymbolAnalysis::new(&crate::strategy::AnalysisConfig::default()) else {
            panic!("the default configuration is valid");
        };
        assert_eq!(last_break(&analysis), None, "no bars, no break");
        assert_eq!(nearest_zone(&analysis, 100.0), None, "no bars, no zone");
        let bars = zigzag();
        for bar in &bars {
            assert!(analysis.on_closed_bar(crate::domain::Interval::M5, bar).is_ok());
        }
        let Some(brk) = last_break(&analysis) else {
            panic!("a zig-zag breaks structure");
        };
        assert_eq!(brk.timeframe, "5m", "only 5m bars were fed");
        assert!(brk.kind == "BOS" || brk.kind == "CHoCH", "{brk:?}");
        let entry = analysis.entry();
        let Some(record) = entry.last_break() else {
            panic!("the entry timeframe has the break");
        };
        assert_eq!(brk.bullish, record.direction == Direction::Bullish);
        assert_eq!(
            Some(brk.bars_ago as usize),
            entry.last_index().map(|last| last - record.broken_at)
        );

        let last = bars.last().map_or(0.0, |b| b.close);
        let Some(zone) = nearest_zone(&analysis, last) else {
            panic!("steep impulses leave order blocks or gaps");
        };
        assert_eq!(zone.timeframe, "5m");
        let every_distance = entry
            .order_blocks()
            .iter()
            .chain(entry.fair_value_gaps())
            .map(|z| zone_distance_pct(last, z).abs());
        assert!(
            every_distance.into_iter().all(|d| zone.distance_pct.abs() <= d),
            "{zone:?} is the nearest"
        );
    }

    #[test]
    fn zone_distance_is_signed_to_the_nearest_edge() {
        let zone = Zone {
            row: 0,
            known_at: 0,
            direction: Direction::Bearish,
            top: 102.0,
            bottom: 101.0,
            touched_at: None,
        };
        assert!(
            (zone_distance_pct(100.0, &zone) - 1.0).abs() < 1e-12,
            "above: to the bottom edge"
        );
        assert!(
            (zone_distance_pct(104.0, &zone) + 1.923_076_923_076_923).abs() < 1e-9,
            "below: to the top"
        );
        assert!(zone_distance_pct(101.5, &zone).abs() < f64::EPSILON, "inside");
    }
}
