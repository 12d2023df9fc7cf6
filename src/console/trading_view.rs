//! The trading half of the presenter: positions, heatmap, scheduler lanes, lifecycle log, equity,
//! breaker and kill switch, from the engine's trading desk into the UI's view types.
//!
//! Kept apart from `presenter` because it reads a different part of the engine (`engine::trading`)
//! and caps what it sends: the book may hold 100 000 positions, the view carries the riskiest
//! [`Positions::MAX_ROWS`].

use perpdesk_ui::view::{
    Breaker, BreakerTier, EquityCurve, EquityPoint, EventKind as ViewKind, HeatCell, KillSwitch,
    KillSwitchState, LifecycleEntry, PositionRow, PositionSide, Positions, SchedulerLane, SchedulerPanel,
    View,
};

use crate::{
    domain::{Side, SymbolId},
    engine::{Engine, trading},
    positions::{EventKind, LifecycleEvent, Position},
    risk::Tier,
};

fn side(s: Side) -> PositionSide {
    match s {
        Side::Long => PositionSide::Long,
        Side::Short => PositionSide::Short,
    }
}

fn name_and_decimals(engine: &Engine, id: SymbolId) -> (String, u8) {
    engine
        .table
        .read()
        .ok()
        .and_then(|t| t.get(id).map(|s| (s.name.clone(), s.price_precision as u8)))
        .unwrap_or_else(|| (format!("#{}", id.0), 4))
}

/// The riskiest positions first, at most `cap`.
fn riskiest(engine: &Engine, cap: usize) -> Vec<&Position> {
    let mut all: Vec<&Position> = engine.trading().book.positions().collect();
    all.sort_by(|a, b| b.risk_score.total_cmp(&a.risk_score).then(a.id.cmp(&b.id)));
    all.truncate(cap);
    all
}

pub fn positions(engine: &Engine) -> Positions {
    let desk = engine.trading();
    let fees = desk.book.config().fees;
    let rows = riskiest(engine, Positions::MAX_ROWS)
        .into_iter()
        .map(|p| {
            let (symbol, price_decimals) = name_and_decimals(engine, p.symbol);
            let s = if p.side == Side::Long { 1.0 } else { -1.0 };
            let pnl = p.unrealised_pnl(&fees);
            let margin = p.qty * p.entry / f64::from(p.leverage.max(1));
            PositionRow {
                id: p.id.0,
                symbol,
                side: side(p.side),
                size: p.qty,
                price_decimals,
                entry: p.entry,
                mark: p.mark,
                pnl_usdt: pnl,
                pnl_pct: if margin > 0.0 { pnl / margin * 100.0 } else { 0.0 },
                r_multiple: p.r_multiple(pnl),
                leverage: u32::from(p.leverage),
                liquidation: p.liquidation,
                to_stop_pct: Some(s * (p.mark - p.stop_loss) / p.mark * 100.0),
                to_target_pct: Some(s * (p.take_profit - p.mark) / p.mark * 100.0),
                age_ms: (desk.market_now - p.opened_at).max(0),
                interval_ms: p.lane.interval_ms() as u64,
                risk_score: p.risk_score,
                trailing: p.trailing.is_some(),
            }
        })
        .collect();
    Positions {
        rows,
        open: desk.book.len() as u64,
        unrealized_pnl: desk.book.unrealised_pnl(),
        realized_pnl: desk.book.totals().realised_pnl,
    }
}

pub fn heatmap(engine: &Engine) -> Vec<HeatCell> {
    let fees = engine.trading().book.config().fees;
    riskiest(engine, View::MAX_HEAT_CELLS)
        .into_iter()
        .map(|p| HeatCell {
            position_id: p.id.0,
            symbol: name_and_decimals(engine, p.symbol).0,
            side: side(p.side),
            risk_score: p.risk_score,
            label: format!("{:+.1}R", p.r_multiple(p.unrealised_pnl(&fees))),
        })
        .collect()
}

pub fn scheduler(engine: &Engine) -> SchedulerPanel {
    let desk = engine.trading();
    let now = desk.monitor_now();
    let smart = desk.book.config().smart_monitoring;
    let stats = desk.book.lane_stats(now);
    SchedulerPanel {
        lanes: stats
            .iter()
            .map(|l| SchedulerLane {
                interval_ms: l.interval_ms as u64,
                count: l.positions as u64,
            })
            .collect(),
        fixed_interval_ms: (!smart).then_some(1_000),
        checks_per_sec: stats.iter().map(|l| l.checks_per_sec).sum::<u64>() as f64,
        next_due_in_ms: stats
            .iter()
            .filter_map(|l| l.next_due_in_ms)
            .min()
            .map(|d| d.max(0)),
        lag_ms: stats.iter().map(|l| l.lag_ms).max().unwrap_or(0),
        max_lag_ms: desk.book.scheduler().max_recent_lag(now),
    }
}

fn describe(e: &LifecycleEvent) -> (ViewKind, String) {
    match e.kind {
        EventKind::Created {
            qty,
            entry,
            leverage,
            take_profit,
            stop_loss,
            ..
        } => (
            ViewKind::Created,
            format!("{qty} @ {entry} {leverage}x, stop {stop_loss}, target {take_profit}"),
        ),
        EventKind::PriceUpdated { mark, pnl, .. } => {
            (ViewKind::PriceUpdated, format!("mark {mark}, pnl {pnl:+.2}"))
        }
        EventKind::RiskLevelChanged { from, to, risk_score } => (
            ViewKind::RiskLevelChanged,
            format!("risk {} → {} ({risk_score:.2})", from.name(), to.name()),
        ),
        EventKind::TakeProfitApproaching { mark, take_profit } => (
            ViewKind::TakeProfitApproaching,
            format!("mark {mark}, target {take_profit}"),
        ),
        EventKind::StopLossApproaching { mark, stop_loss } => (
            ViewKind::StopLossApproaching,
            format!("mark {mark}, stop {stop_loss}"),
        ),
        EventKind::TakeProfitTriggered { price } => (ViewKind::TakeProfitTriggered, format!("at {price}")),
        EventKind::StopLossTriggered { price, trailing } => (
            ViewKind::StopLossTriggered,
            format!("at {price}{}", if trailing { " (trailing)" } else { "" }),
        ),
        EventKind::TrailingStopMoved { from, to } => {
            (ViewKind::TrailingStopMoved, format!("stop {from} → {to}"))
        }
        EventKind::LiquidationWarning { mark, liquidation } => (
            ViewKind::LiquidationWarning,
            format!("mark {mark}, liquidation {liquidation}"),
        ),
        EventKind::Expired { mark } => (ViewKind::Expired, format!("at mark {mark}")),
        EventKind::Closed {
            reason,
            exit_price,
            pnl,
            r_multiple,
            ..
        } => (
            ViewKind::Closed {
                reason: reason.name().to_owned(),
            },
            format!(
                "{} at {exit_price}, pnl {pnl:+.2} ({r_multiple:+.2}R)",
                reason.name()
            ),
        ),
    }
}

pub fn events(engine: &Engine) -> Vec<LifecycleEntry> {
    engine
        .trading()
        .log
        .iter()
        .rev()
        .take(View::MAX_EVENTS)
        .map(|e| {
            let (kind, text) = describe(e);
            LifecycleEntry {
                time_ms: e.at,
                position_id: e.position.0,
                symbol: name_and_decimals(engine, e.symbol).0,
                side: side(e.side),
                kind,
                text,
            }
        })
        .collect()
}

pub fn equity(engine: &Engine) -> EquityCurve {
    let desk = engine.trading();
    let points: Vec<EquityPoint> = desk
        .equity_points
        .iter()
        .map(|(t, e)| EquityPoint {
            time_ms: *t,
            equity: *e,
        })
        .collect();
    let equity = desk.equity();
    let peak = points.iter().map(|p| p.equity).fold(equity, f64::max);
    EquityCurve {
        points,
        equity,
        peak,
        drawdown_pct: if peak > 0.0 {
            (peak - equity) / peak * 100.0
        } else {
            0.0
        },
    }
}

pub fn breaker(engine: &Engine) -> Breaker {
    let b = &engine.trading().breaker;
    let tier = match b.tier() {
        Tier::Normal => BreakerTier::Normal,
        Tier::Caution => BreakerTier::Caution,
        Tier::ReduceOnly => BreakerTier::ReduceOnly,
        Tier::Halt => BreakerTier::Halt,
        Tier::Flatten => BreakerTier::Flatten,
    };
    let now = crate::domain::now_ms();
    Breaker {
        tier,
        reason: b.state().cause.map(|c| c.to_string()).unwrap_or_default(),
        cooldown_ms: (b.tier() != Tier::Normal).then(|| b.cooldown_remaining(now)),
    }
}

pub fn kill_switch(engine: &Engine) -> KillSwitch {
    match engine.trading().kill_switch {
        trading::KillSwitch::Ready => KillSwitch::default(),
        trading::KillSwitch::Engaged(at) => KillSwitch {
            state: KillSwitchState::Engaged,
            remaining: engine.trading().book.len() as u64,
            pulled_at_ms: Some(at),
        },
    }
}
