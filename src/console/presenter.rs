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
        BreakBadge, Candle, ConnectionState, Detail, Funnel, Header, LevelLine, MlStage, ModelRow,
        ModelsPanel, Overlays, PoolOdds, PositionSide, Reconciliation, RestBlock, ScannerRow, SignalBadge,
        Status, StrategyMode, SweepOdds, SwingMark, View, ZoneBadge, ZoneBand,
    },
};

use super::trading_view;
use crate::{
    domain::Side,
    engine::{Command, Engine, SymbolState, signals::SymbolSignals},
    smc::{BarIndex, Direction, StructureKind, SwingSide},
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
        // Both were confirmed by the operator in the console before the intent was sent.
        Intent::KillSwitch => Some(Command::KillSwitch),
        Intent::ResetBreaker => Some(Command::ResetBreaker),
        Intent::RevertStrategy => Some(Command::RevertStrategy),
        Intent::ClosePosition { id } => Some(Command::ClosePosition(crate::positions::PositionId(*id))),
        Intent::RollbackModel => Some(Command::RollbackModel),
        Intent::OpenPosition { symbol, side } => Some(Command::OpenPosition {
            symbol: symbol.clone(),
            side: match side {
                PositionSide::Long => Side::Long,
                PositionSide::Short => Side::Short,
            },
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
    (0..timeframes)
        .map(|tf| state?.signals.timeframe(tf)?.bias().map(Direction::sign))
        .collect()
}

/// The liquidity model's odds for one symbol now: `None` while neither side has a pool in reach (or the
/// analysis is warming up).
fn sweep_odds(
    model: &crate::ml::liquidity::LiquidityModel,
    analysis: &crate::strategy::analysis::SymbolAnalysis,
) -> Option<SweepOdds> {
    let [above, below] = crate::ml::liquidity::live_rows(analysis).map(|side| {
        side.map(|(pick, row)| PoolOdds {
            level: pick.level,
            probability: f64::from(model.probability(&row)),
        })
    });
    (above.is_some() || below.is_some()).then(|| SweepOdds {
        above,
        below,
        horizon_bars: u32::try_from(model.card.horizon_bars).unwrap_or(u32::MAX),
        timeframe: analysis.entry().interval().as_str().to_owned(),
    })
}

/// The market structure to draw over `candles` (engine timeframe `tf`): confirmed swings, live order
/// blocks and fair value gaps, unswept liquidity pools, each only within the candles' time window and
/// price range, newest first and capped as [`Overlays`] says. Empty without an analysis or candles.
fn overlays(signals: Option<&SymbolSignals>, tf: usize, candles: &[Candle]) -> Overlays {
    let (Some(state), Some(first), Some(last)) = (
        signals.and_then(|s| s.timeframe(tf)),
        candles.first(),
        candles.last(),
    ) else {
        return Overlays::default();
    };
    let low = candles.iter().map(|c| c.low).fold(f64::INFINITY, f64::min);
    let high = candles.iter().map(|c| c.high).fold(f64::NEG_INFINITY, f64::max);
    let prices = low..=high;
    let window = first.open_time_ms..=last.open_time_ms;
    let open_time = |row: BarIndex| state.bar(row).map(|bar| bar.open_time);

    let swings = state
        .swings()
        .iter()
        .rev()
        .filter(|swing| !swing.bookend && prices.contains(&swing.level))
        .filter_map(|swing| {
            let open_time_ms = open_time(swing.row).filter(|time| window.contains(time))?;
            Some(SwingMark {
                open_time_ms,
                price: swing.level,
                high: swing.side == SwingSide::High,
            })
        })
        .take(Overlays::MAX_SWINGS)
        .collect();

    // A zone that began before the window still shows (from the left edge) while it overlaps the range.
    let mut zones: Vec<(BarIndex, ZoneBand)> =
        [("OB", state.order_blocks()), ("FVG", state.fair_value_gaps())]
            .into_iter()
            .flat_map(|(kind, zones)| zones.iter().map(move |zone| (kind, zone)))
            .filter(|(_, zone)| zone.top.max(zone.bottom) >= low && zone.top.min(zone.bottom) <= high)
            .filter_map(|(kind, zone)| {
                let from_ms = open_time(zone.row).filter(|time| *time <= last.open_time_ms)?;
                Some((
                    zone.row,
                    ZoneBand {
                        kind: kind.to_owned(),
                        bullish: zone.direction == Direction::Bullish,
                        top: zone.top,
                        bottom: zone.bottom,
                        from_ms,
                    },
                ))
            })
            .collect();
    zones.sort_by_key(|(row, _)| std::cmp::Reverse(*row));
    zones.truncate(Overlays::MAX_ZONES);

    let levels = state
        .liquidity_pools()
        .iter()
        .rev()
        .filter(|pool| pool.swept_at.is_none() && prices.contains(&pool.level))
        .take(Overlays::MAX_LEVELS)
        .map(|pool| LevelLine {
            kind: "liq".to_owned(),
            price: pool.level,
            high: pool.direction == Direction::Bullish,
        })
        .collect();

    Overlays {
        swings,
        zones: zones.into_iter().map(|(_, zone)| zone).collect(),
        levels,
    }
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
            ml_probability: state.and_then(|s| s.signals.probability).map(f64::from),
        });
    }

    let detail = engine.focus.and_then(|(id, tf)| {
        let sym = table.get(id)?;
        let state = engine.symbols.get(&id)?;
        let candles: Vec<Candle> = state.series[tf]
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
            .collect();
        Some(Detail {
            symbol: sym.name.clone(),
            timeframe: tfs[tf].as_str().to_owned(),
            price_decimals: sym.price_precision.min(12) as u8,
            overlays: overlays(Some(&state.signals), tf, &candles),
            candles,
            sweep: engine
                .liquidity()
                .zip(state.signals.analysis.as_ref())
                .and_then(|(model, analysis)| sweep_odds(model, analysis)),
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
            rest_weight_limit: engine.weight.limit(),
            rest_blocked: engine.weight.blocked().map(|(left, banned)| RestBlock {
                remaining_ms: left.as_millis() as u64,
                banned,
            }),
            clock_offset_ms: engine.clock_offset_ms(),
            rotations: counters.rotations,
            // Paper trading has no user data stream and nothing to reconcile.
            listen_key_age_ms: engine
                .trading()
                .execution()
                .and_then(crate::execution::ExecutionLink::listen_key_age_ms),
            reconciliation: engine.trading().execution().map(|x| match x.gate() {
                crate::execution::GateState::Pending => Reconciliation::Pending,
                crate::execution::GateState::Reconciled => Reconciliation::Reconciled,
                crate::execution::GateState::Unknown => Reconciliation::Unknown,
            }),
        },
        funnel: Funnel {
            evaluated: engine.funnel.evaluated,
            setups: engine.funnel.setups,
            signals: engine.funnel.signals,
            rejections: rejections(engine),
            risk_accepted: Some(engine.trading().funnel.accepted),
            opened: Some(engine.trading().funnel.opened),
            ml: engine.prediction().map(|link| MlStage {
                scored: link.counts.scored,
                kept: link.counts.above,
                filtered: link.counts.filtered,
                unscored: link.counts.unscored,
                threshold: link.threshold,
                applied: engine.mode() == Mode::Hybrid,
            }),
        },
        models: models(engine),
        positions: trading_view::positions(engine),
        heatmap: trading_view::heatmap(engine),
        scheduler: trading_view::scheduler(engine),
        events: trading_view::events(engine),
        equity: trading_view::equity(engine),
        breaker: trading_view::breaker(engine),
        kill_switch: trading_view::kill_switch(engine),
    }
}

/// The models panel: the signal predictor with the batch predictor's figures and its card's metrics.
fn models(engine: &Engine) -> ModelsPanel {
    let micros = |d: std::time::Duration| d.as_secs_f64() * 1e6;
    let models = engine
        .prediction()
        .map(|link| {
            let card = &link.predictor.card;
            let snapshot = link.metrics.snapshot();
            ModelRow {
                name: card.model.clone(),
                version: card.version.clone(),
                backend: link.backend.as_str().to_owned(),
                // The registry's champion is what the learner serves; without a registry a model
                // loaded from the directory is served but is nobody's champion.
                champion: engine
                    .learning
                    .as_ref()
                    .and_then(|l| l.champion.as_deref())
                    .is_some_and(|v| v == card.version),
                trained: card.created.clone(),
                p50_us: snapshot.p50.map(micros),
                p99_us: snapshot.p99.map(micros),
                batches: snapshot.stats.batches,
                requests: snapshot.stats.requests,
                batch_fill: snapshot.batch_fill,
                max_batch: snapshot.max_batch.max(link.settings.max_batch as u64),
                validation_from: card.validation.from.clone(),
                validation_to: card.validation.to.clone(),
                validation_samples: card.validation.samples as u64,
                auc: card.metrics.auc,
                log_loss: card.metrics.log_loss,
                baseline_log_loss: card.metrics.baseline_log_loss,
                brier: card.metrics.brier,
                threshold: link.threshold,
                precision_at_threshold: card.metrics.precision_at_threshold,
                expectancy_ict_r: card.metrics.expectancy_ict_r,
                expectancy_ml_r: card.metrics.expectancy_ml_r,
                derived_inputs: card.derived_inputs.len() as u64,
            }
        })
        .into_iter()
        .collect();
    ModelsPanel {
        models_dir: engine
            .models_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        models,
        evolver: engine.evolution().map(evolver_row),
        learning: engine.learning.as_ref().map(learning_view),
        structure: engine.structure().map(structure_view),
        discovery: engine
            .discovery()
            .map(|card| {
                // The live predictor's derived inputs: the discoveries that entered its feature set.
                let derived = engine
                    .prediction()
                    .map_or(&[][..], |link| link.predictor.card.derived_inputs.as_slice());
                card.ranking
                    .iter()
                    .take(DISCOVERY_SHOWN)
                    .map(|d| perpdesk_ui::view::DiscoveryRow {
                        name: d.name.clone(),
                        score: f64::from(d.score),
                        permutation: d.permutation_importance,
                        promoted: d.promoted,
                        in_predictor: derived.contains(&d.name),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Inputs of the discovery ranking the models panel lists.
const DISCOVERY_SHOWN: usize = 8;

/// The structure model's reading of the universe: symbols per regime (most first), novelty, timings.
fn structure_view(link: &crate::engine::structure::StructureLink) -> perpdesk_ui::view::StructureView {
    let (counts, novel) = link.regime_counts();
    let mut regimes: Vec<perpdesk_ui::view::RegimeShare> = counts
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| perpdesk_ui::view::RegimeShare {
            name: link.model.regime_name(i).to_owned(),
            symbols: *n as u64,
        })
        .collect();
    regimes.sort_by(|a, b| b.symbols.cmp(&a.symbols).then_with(|| a.name.cmp(&b.name)));
    let metrics = link.metrics.snapshot();
    let micros = |d: std::time::Duration| d.as_secs_f64() * 1e6;
    let card = &link.model.card;
    perpdesk_ui::view::StructureView {
        version: card.version.clone(),
        backend: format!("{} {}", link.backend.as_str(), link.precision),
        p50_us: metrics.p50.map(micros),
        p99_us: metrics.p99.map(micros),
        symbols: link.readings.len() as u64,
        novel: novel as u64,
        regimes,
        validation_error: card.metrics.validation_error,
        baseline_error: card.metrics.baseline_error,
    }
}

/// The strategy evolver's line of the models panel.
fn evolver_row(e: &crate::engine::evolution::Evolution) -> perpdesk_ui::view::EvolverRow {
    perpdesk_ui::view::EvolverRow {
        set: e.current().to_string(),
        source: e.source.clone(),
        learning: e.evolver.learning(),
        epsilon: e.evolver.epsilon(),
        decisions: e.evolver.decisions(),
        last_change: e.evolver.last_change().map(ToString::to_string),
    }
}

/// The learner's status for the models panel.
fn learning_view(status: &crate::engine::learning::LearnerStatus) -> perpdesk_ui::view::LearningView {
    use perpdesk_ui::view::{ChallengeView, LearningView};
    LearningView {
        enabled: status.enabled,
        training: status.training,
        online_samples: status.online_samples as u64,
        last_retrain: status
            .last_retrain_ms
            .map(|ms| {
                let date = crate::ml::train::date(ms);
                date.get(11..19).map_or(date.clone(), |t| format!("{t} UTC"))
            })
            .unwrap_or_default(),
        result: status.last_result.clone(),
        window: status.evaluation.as_ref().map(|e| ChallengeView {
            samples: e.challenger_score.samples as u64,
            challenger: e.challenger.clone(),
            champion: e.champion.clone().unwrap_or_else(|| "constant rate".into()),
            challenger_log_loss: e.challenger_score.log_loss,
            champion_log_loss: e.champion_score.log_loss,
            challenger_auc: e.challenger_score.auc,
            champion_auc: e.champion_score.auc,
            promoted: e.decision.promote,
        }),
        rollback_to: status.rollback_to.clone(),
    }
}

/// The strategy's rejections, the model's (`ml:below_threshold`, `hybrid` only) and the risk stage's
/// refusals (`risk:<key>`), most frequent first.
fn rejections(engine: &Engine) -> Vec<(String, u64)> {
    let mut out = engine.funnel.sorted_rejections();
    if let Some(link) = engine.prediction()
        && link.counts.filtered > 0
    {
        out.push(("ml:below_threshold".to_owned(), link.counts.filtered));
    }
    out.extend(
        engine
            .trading()
            .funnel
            .refusals
            .iter()
            .map(|(k, v)| (format!("risk:{k}"), *v)),
    );
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
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
        assert_eq!(intent_to_command(&Intent::KillSwitch), Some(Command::KillSwitch));
        assert_eq!(
            intent_to_command(&Intent::OpenPosition {
                symbol: "ETHUSDT".into(),
                side: PositionSide::Short
            }),
            Some(Command::OpenPosition {
                symbol: "ETHUSDT".into(),
                side: Side::Short
            })
        );
        assert_eq!(
            intent_to_command(&Intent::ClosePosition { id: 7 }),
            Some(Command::ClosePosition(crate::positions::PositionId(7)))
        );
        assert_eq!(
            intent_to_command(&Intent::ResetBreaker),
            Some(Command::ResetBreaker)
        );
        assert_eq!(
            intent_to_command(&Intent::RevertStrategy),
            Some(Command::RevertStrategy)
        );
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

    #[test]
    fn views_without_the_position_fields_still_decode() {
        let view = View {
            funnel: Funnel {
                evaluated: 10,
                ..Funnel::default()
            },
            ..View::default()
        };
        let Ok(mut json) = serde_json::to_value(&view) else {
            panic!("a view encodes");
        };
        if let Some(object) = json.as_object_mut() {
            for key in [
                "positions",
                "heatmap",
                "scheduler",
                "events",
                "equity",
                "breaker",
                "kill_switch",
            ] {
                assert!(object.remove(key).is_some(), "{key} is encoded");
            }
        }
        if let Some(funnel) = json["funnel"].as_object_mut() {
            funnel.remove("risk_accepted");
            funnel.remove("opened");
        }
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

    fn candle(bar: &crate::domain::Bar) -> Candle {
        Candle {
            open_time_ms: bar.open_time,
            open: bar.open,
            high: bar.high,
            low: bar.low,
            close: bar.close,
            volume: bar.volume,
            closed: bar.closed,
        }
    }

    /// 15m bars of a zig-zag with a period of 24 bars and the occasional jump (gaps), oldest first.
    fn zigzag_bars(count: usize) -> Vec<crate::domain::Bar> {
        const STEP: i64 = 900_000;
        let mut bars = Vec::with_capacity(count);
        let mut open = 100.0_f64;
        for index in 0..count {
            let phase = (index % 24) as f64;
            let direction = if phase < 12.0 { 1.0 } else { -1.0 };
            let jump = if index % 17 == 0 { 1.5 } else { 0.0 };
            let close = open + direction * (0.6 + 0.05 * (index % 5) as f64) + direction * jump;
            let time = 1_700_000_000_000 + index as i64 * STEP;
            bars.push(crate::domain::Bar {
                open_time: time,
                close_time: time + STEP - 1,
                open,
                high: open.max(close) + 0.2,
                low: open.min(close) - 0.2,
                close,
                volume: 10.0 + (index % 7) as f64,
                quote_volume: 1_000.0,
                trades: 10,
                closed: true,
            });
            open = close;
        }
        bars
    }

    #[test]
    fn overlays_are_empty_without_an_analysis() {
        let bars = zigzag_bars(30);
        let candles: Vec<Candle> = bars.iter().map(candle).collect();
        assert!(overlays(None, 1, &candles).is_empty());
        let without = SymbolSignals::new(None, 3);
        assert!(overlays(Some(&without), 1, &candles).is_empty());
        let config = crate::strategy::AnalysisConfig::default();
        let fresh = SymbolSignals::new(Some(&config), 3);
        assert!(overlays(Some(&fresh), 1, &candles).is_empty(), "nothing fed yet");
        assert!(
            overlays(Some(&fresh), 3, &candles).is_empty(),
            "no fourth timeframe"
        );
    }

    #[test]
    fn overlays_keep_to_the_candles_window_and_range() {
        let config = crate::strategy::AnalysisConfig::default();
        let mut signals = SymbolSignals::new(Some(&config), 3);
        let bars = zigzag_bars(300);
        for bar in &bars {
            signals.feed(1, crate::domain::Interval::M15, bar, &config);
        }
        let candles: Vec<Candle> = bars[bars.len() - 60..].iter().map(candle).collect();
        let shown = overlays(Some(&signals), 1, &candles);
        assert!(
            !shown.swings.is_empty() && !shown.zones.is_empty(),
            "a zig-zag with jumps has swings and zones: {shown:?}"
        );
        let (first, last) = (candles[0].open_time_ms, candles[candles.len() - 1].open_time_ms);
        let low = candles.iter().map(|c| c.low).fold(f64::INFINITY, f64::min);
        let high = candles.iter().map(|c| c.high).fold(f64::NEG_INFINITY, f64::max);
        assert!(shown.swings.len() <= Overlays::MAX_SWINGS);
        assert!(shown.zones.len() <= Overlays::MAX_ZONES);
        assert!(shown.levels.len() <= Overlays::MAX_LEVELS);
        for swing in &shown.swings {
            assert!((first..=last).contains(&swing.open_time_ms), "{swing:?}");
            assert!((low..=high).contains(&swing.price), "{swing:?}");
            let made_it = candles.iter().find(|c| c.open_time_ms == swing.open_time_ms);
            let extreme = made_it.map(|c| if swing.high { c.high } else { c.low });
            assert_eq!(extreme, Some(swing.price), "at the candle that made it");
        }
        assert!(
            shown
                .swings
                .windows(2)
                .all(|w| w[0].open_time_ms >= w[1].open_time_ms),
            "newest first"
        );
        for zone in &shown.zones {
            assert!(zone.kind == "OB" || zone.kind == "FVG", "{zone:?}");
            assert!(
                zone.from_ms <= last && zone.top.max(zone.bottom) >= low && zone.top.min(zone.bottom) <= high
            );
        }
        for level in &shown.levels {
            assert_eq!(level.kind, "liq");
            assert!((low..=high).contains(&level.price), "{level:?}");
        }
    }

    #[test]
    fn a_detail_without_overlays_still_decodes() {
        let view = View {
            detail: Some(Detail {
                symbol: "BTCUSDT".into(),
                timeframe: "15m".into(),
                price_decimals: 2,
                candles: vec![Candle {
                    open_time_ms: 1,
                    open: 1.0,
                    high: 2.0,
                    low: 0.5,
                    close: 1.5,
                    volume: 3.0,
                    closed: true,
                }],
                overlays: Overlays::default(),
                sweep: None,
            }),
            ..View::default()
        };
        let Ok(mut json) = serde_json::to_value(&view) else {
            panic!("a view encodes");
        };
        if let Some(detail) = json["detail"].as_object_mut() {
            detail.remove("overlays");
        }
        assert!(json["detail"].get("overlays").is_none() && json["detail"].get("candles").is_some());
        let decoded: Result<View, _> = serde_json::from_value(json);
        assert_eq!(decoded.ok(), Some(view));
    }
}
