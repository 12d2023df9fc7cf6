//! One virtual position and its check: stops and targets against the price range since the last
//! check, the trailing stop, the risk score, P&L with fees and funding.
//!
//! The check is the monitoring hot path (every position, up to ten times a second): it reads and
//! writes only the position's own fields and pushes `Copy` events into a caller-owned buffer, so it
//! allocates nothing. Floats, not decimals: these are analytics on a virtual position; order-facing
//! quantities were rounded with decimals by `risk::sizing` before the position existed.

use serde::{Deserialize, Serialize};

use super::{
    events::{CloseReason, EventKind, LifecycleEvent, PositionId, RiskLevel, RunMode},
    scheduler::Lane,
};
use crate::{
    domain::{Side, SymbolId, TimestampMs},
    strategy::Mode,
};

/// Trading fees as fractions of notional (Binance USDT-M defaults: maker 0.02 %, taker 0.05 %).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fees {
    pub maker: f64,
    pub taker: f64,
}

impl Default for Fees {
    fn default() -> Self {
        Self {
            maker: 0.0002,
            taker: 0.0005,
        }
    }
}

impl Fees {
    /// The fee rate of an exit. The target rests on the book as a reduce-only limit (maker); every
    /// other exit — stops, expiry, manual, breaker — is a market order (taker).
    pub fn exit_rate(&self, reason: CloseReason) -> f64 {
        match reason {
            CloseReason::TakeProfit => self.maker,
            _ => self.taker,
        }
    }
}

/// Bands that raise the one-shot warnings, as shares of the distance from entry.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bands {
    /// Approaching the target or the stop: within this share of the entry→level distance.
    pub approach: f64,
    /// Liquidation warning: within this share of the entry→liquidation distance.
    pub liquidation: f64,
}

impl Default for Bands {
    fn default() -> Self {
        Self {
            approach: 0.2,
            liquidation: 0.25,
        }
    }
}

const TP_NEAR: u8 = 1;
const SL_NEAR: u8 = 2;
const LIQ_NEAR: u8 = 4;

/// An open virtual position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub id: PositionId,
    pub symbol: SymbolId,
    pub side: Side,
    pub qty: f64,
    pub entry: f64,
    pub leverage: u16,
    pub take_profit: f64,
    /// The current stop (moved by the trailing stop).
    pub stop_loss: f64,
    /// The stop at entry; the risk unit of the R multiple and the score.
    pub initial_stop: f64,
    /// Trailing distance in price units, if the position trails.
    pub trailing: Option<f64>,
    pub liquidation: Option<f64>,
    pub opened_at: TimestampMs,
    /// `TimestampMs::MAX` when the position never expires.
    pub expires_at: TimestampMs,
    pub strategy: Mode,
    pub run_mode: RunMode,
    /// The feature-store slot holding the features at entry.
    pub feature_slot: Option<u32>,
    pub entry_fee: f64,
    /// Funding received (positive) or paid (negative) so far.
    pub funding: f64,
    /// Funding time up to which the position has been settled.
    pub funded_through: TimestampMs,
    /// The latest mark seen, and the range of marks since the previous check.
    pub mark: f64,
    pub high: f64,
    pub low: f64,
    /// The mark the last `PriceUpdated` reported.
    pub reported_mark: f64,
    pub risk_score: f64,
    pub level: RiskLevel,
    pub lane: Lane,
    /// Monitoring time of the last check.
    pub last_check: i64,
    warned: u8,
}

/// What a new position needs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NewPosition {
    pub symbol: SymbolId,
    pub side: Side,
    pub qty: f64,
    pub entry: f64,
    pub leverage: u16,
    pub take_profit: f64,
    pub stop_loss: f64,
    pub trailing: Option<f64>,
    pub liquidation: Option<f64>,
    pub expires_at: TimestampMs,
    pub strategy: Mode,
    pub run_mode: RunMode,
    pub feature_slot: Option<u32>,
}

/// The result of a check that closes the position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exit {
    pub reason: CloseReason,
    pub price: f64,
}

impl Position {
    /// A position opened at market time `at` (the book assigns the id and the lane; benches build them directly).
    pub fn open(id: PositionId, n: &NewPosition, fees: &Fees, at: TimestampMs, lane: Lane) -> Self {
        Self {
            id,
            symbol: n.symbol,
            side: n.side,
            qty: n.qty,
            entry: n.entry,
            leverage: n.leverage,
            take_profit: n.take_profit,
            stop_loss: n.stop_loss,
            initial_stop: n.stop_loss,
            trailing: n.trailing.filter(|d| *d > 0.0),
            liquidation: n.liquidation,
            opened_at: at,
            expires_at: n.expires_at,
            strategy: n.strategy,
            run_mode: n.run_mode,
            feature_slot: n.feature_slot,
            entry_fee: n.qty * n.entry * fees.taker,
            funding: 0.0,
            funded_through: at,
            mark: n.entry,
            high: n.entry,
            low: n.entry,
            reported_mark: n.entry,
            risk_score: 0.0,
            level: RiskLevel::Low,
            lane,
            last_check: 0,
            warned: 0,
        }
    }

    /// The one-shot warnings already given: (target approaching, stop approaching, liquidation).
    pub fn warnings(&self) -> (bool, bool, bool) {
        (
            self.warned & TP_NEAR != 0,
            self.warned & SL_NEAR != 0,
            self.warned & LIQ_NEAR != 0,
        )
    }

    /// Sets the one-shot warnings already given (a position restored from the journal).
    pub fn set_warnings(&mut self, take_profit: bool, stop_loss: bool, liquidation: bool) {
        self.warned = (u8::from(take_profit) * TP_NEAR)
            | (u8::from(stop_loss) * SL_NEAR)
            | (u8::from(liquidation) * LIQ_NEAR);
    }

    fn sign(&self) -> f64 {
        match self.side {
            Side::Long => 1.0,
            Side::Short => -1.0,
        }
    }

    /// Records a mark price (the range is what the next check evaluates).
    #[inline]
    pub fn observe(&mut self, mark: f64) {
        self.mark = mark;
        self.high = self.high.max(mark);
        self.low = self.low.min(mark);
    }

    /// P&L before fees and funding at `price`.
    pub fn gross_pnl(&self, price: f64) -> f64 {
        self.sign() * self.qty * (price - self.entry)
    }

    /// P&L at the current mark, net of the entry fee, the taker fee of a market exit, and funding.
    pub fn unrealised_pnl(&self, fees: &Fees) -> f64 {
        self.gross_pnl(self.mark) - self.entry_fee - self.qty * self.mark * fees.taker + self.funding
    }

    /// Loss at the initial stop, fees excluded: the "1R" of the R multiple.
    pub fn risk_amount(&self) -> f64 {
        self.qty * (self.entry - self.initial_stop).abs()
    }

    /// `pnl / 1R`.
    pub fn r_multiple(&self, pnl: f64) -> f64 {
        let r = self.risk_amount();
        if r > 0.0 { pnl / r } else { 0.0 }
    }

    /// ARCHITECTURE.md §4 at price `p`: for a long `tp_d = (tp − p)/(tp − entry)`,
    /// `sl_d = (p − sl)/(entry − sl₀)`, `score = max(1 − tp_d, 1 − sl_d, 0)`, mirrored for a short,
    /// capped at 1. The stop distance is measured to the *current* stop but scaled by the *initial*
    /// risk, so a trailing stop that has moved past the entry still scores as near as it is.
    pub fn score_at(&self, p: f64) -> f64 {
        let s = self.sign();
        let tp_span = s * (self.take_profit - self.entry);
        let sl_span = s * (self.entry - self.initial_stop);
        let tp_d = if tp_span > 0.0 {
            s * (self.take_profit - p) / tp_span
        } else {
            1.0
        };
        let sl_d = if sl_span > 0.0 {
            s * (p - self.stop_loss) / sl_span
        } else {
            1.0
        };
        (1.0 - tp_d).max(1.0 - sl_d).clamp(0.0, 1.0)
    }

    /// Evaluates the price range since the previous check (so a level crossed and left between two
    /// checks still fires), moves the trailing stop, recomputes the score and emits the events.
    /// Returns the exit when a stop, target or liquidation fired; the caller closes the position.
    ///
    /// When one range crosses both the stop and the target, the stop wins: the order of the two
    /// inside the range is unknown, and assuming the worse one keeps paper results honest.
    pub fn check(&mut self, at: TimestampMs, bands: &Bands, out: &mut Vec<LifecycleEvent>) -> Option<Exit> {
        let s = self.sign();
        let (worst, best) = match self.side {
            Side::Long => (self.low, self.high),
            Side::Short => (self.high, self.low),
        };
        self.high = self.mark;
        self.low = self.mark;
        let (position, symbol, side) = (self.id, self.symbol, self.side);
        let ev = |kind| LifecycleEvent {
            position,
            symbol,
            side,
            at,
            kind,
        };
        // A stop (or liquidation) is crossed when the worst price is at or beyond it; a target when
        // the best price is at or beyond it.
        let crossed = |level: f64, price: f64| s * (price - level) <= 0.0;
        let crossed_target = |level: f64, price: f64| s * (price - level) >= 0.0;
        if crossed(self.stop_loss, worst) {
            let trailing = self.stop_loss != self.initial_stop;
            out.push(ev(EventKind::StopLossTriggered {
                price: self.stop_loss,
                trailing,
            }));
            let reason = if trailing {
                CloseReason::TrailingStop
            } else {
                CloseReason::StopLoss
            };
            return Some(Exit {
                reason,
                price: self.stop_loss,
            });
        }
        if let Some(liq) = self.liquidation
            && crossed(liq, worst)
        {
            return Some(Exit {
                reason: CloseReason::Liquidation,
                price: liq,
            });
        }
        if crossed_target(self.take_profit, best) {
            out.push(ev(EventKind::TakeProfitTriggered {
                price: self.take_profit,
            }));
            return Some(Exit {
                reason: CloseReason::TakeProfit,
                price: self.take_profit,
            });
        }
        if let Some(distance) = self.trailing {
            let candidate = best - s * distance;
            if s * (candidate - self.stop_loss) > 0.0 {
                let from = self.stop_loss;
                self.stop_loss = candidate;
                out.push(ev(EventKind::TrailingStopMoved { from, to: candidate }));
            }
        }
        let mark = self.mark;
        if mark != self.reported_mark {
            self.reported_mark = mark;
            let pnl = self.gross_pnl(mark);
            out.push(ev(EventKind::PriceUpdated {
                mark,
                pnl,
                risk_score: self.score_at(mark),
            }));
        }
        self.risk_score = self.score_at(mark);
        let level = RiskLevel::of_score(self.risk_score);
        if level != self.level {
            out.push(ev(EventKind::RiskLevelChanged {
                from: self.level,
                to: level,
                risk_score: self.risk_score,
            }));
            self.level = level;
        }
        let near = |level: f64| -> bool {
            let span = (level - self.entry).abs();
            span > 0.0 && (level - mark).abs() <= bands.approach * span
        };
        if self.warned & TP_NEAR == 0 && near(self.take_profit) {
            self.warned |= TP_NEAR;
            out.push(ev(EventKind::TakeProfitApproaching {
                mark,
                take_profit: self.take_profit,
            }));
        }
        let sl_span = (self.entry - self.initial_stop).abs();
        if self.warned & SL_NEAR == 0
            && sl_span > 0.0
            && s * (mark - self.stop_loss) <= bands.approach * sl_span
        {
            self.warned |= SL_NEAR;
            out.push(ev(EventKind::StopLossApproaching {
                mark,
                stop_loss: self.stop_loss,
            }));
        }
        if let Some(liq) = self.liquidation
            && self.warned & LIQ_NEAR == 0
            && s * (mark - liq) <= bands.liquidation * (self.entry - liq).abs()
        {
            self.warned |= LIQ_NEAR;
            out.push(ev(EventKind::LiquidationWarning {
                mark,
                liquidation: liq,
            }));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn long() -> Position {
        let n = NewPosition {
            symbol: SymbolId(0),
            side: Side::Long,
            qty: 2.0,
            entry: 100.0,
            leverage: 5,
            take_profit: 110.0,
            stop_loss: 95.0,
            trailing: None,
            liquidation: Some(81.0),
            expires_at: TimestampMs::MAX,
            strategy: Mode::Ict,
            run_mode: RunMode::Paper,
            feature_slot: None,
        };
        Position::open(PositionId(1), &n, &Fees::default(), 0, Lane::S5)
    }

    fn kinds(out: &[LifecycleEvent]) -> Vec<&'static str> {
        out.iter().map(|e| e.kind.name()).collect()
    }

    #[test]
    fn the_score_follows_section_4() {
        let p = long();
        assert_eq!(p.score_at(100.0), 0.0);
        assert!((p.score_at(108.0) - 0.8).abs() < 1e-12); // tp_d = 0.2
        assert!((p.score_at(97.5) - 0.5).abs() < 1e-12); // sl_d = 0.5
        assert_eq!(p.score_at(120.0), 1.0);
        let mut short = long();
        short.side = Side::Short;
        short.take_profit = 90.0;
        short.stop_loss = 105.0;
        short.initial_stop = 105.0;
        assert!((short.score_at(92.0) - 0.8).abs() < 1e-12);
        assert!((short.score_at(102.5) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_stop_touched_between_checks_fires_even_if_the_mark_came_back() {
        let mut p = long();
        let mut out = Vec::new();
        p.observe(94.0);
        p.observe(101.0);
        let exit = p.check(5, &Bands::default(), &mut out).expect("stopped");
        assert_eq!((exit.reason, exit.price), (CloseReason::StopLoss, 95.0));
        assert_eq!(kinds(&out), ["stop_loss_triggered"]);
    }

    #[test]
    fn stop_wins_when_one_range_crosses_both() {
        let mut p = long();
        p.observe(111.0);
        p.observe(94.0);
        let exit = p.check(5, &Bands::default(), &mut Vec::new()).expect("exit");
        assert_eq!(exit.reason, CloseReason::StopLoss);
    }

    #[test]
    fn warnings_fire_once_and_levels_change_with_the_score() {
        let mut p = long();
        let mut out = Vec::new();
        p.observe(108.5);
        assert!(p.check(1, &Bands::default(), &mut out).is_none());
        assert_eq!(
            kinds(&out),
            ["price_updated", "risk_level_changed", "take_profit_approaching"]
        );
        assert_eq!(p.level, RiskLevel::Critical);
        out.clear();
        p.observe(108.6);
        p.check(2, &Bands::default(), &mut out);
        assert_eq!(kinds(&out), ["price_updated"]);
        out.clear();
        // Unchanged mark: nothing at all.
        p.check(3, &Bands::default(), &mut out);
        assert!(out.is_empty());
        p.observe(96.0);
        p.check(4, &Bands::default(), &mut out);
        assert_eq!(
            kinds(&out),
            ["price_updated", "risk_level_changed", "stop_loss_approaching"]
        );
        assert_eq!(p.level, RiskLevel::High);
    }

    #[test]
    fn the_trailing_stop_ratchets_and_fires_as_trailing() {
        let mut p = long();
        p.trailing = Some(5.0);
        let mut out = Vec::new();
        p.observe(104.0);
        p.check(1, &Bands::default(), &mut out);
        assert_eq!(p.stop_loss, 99.0);
        assert!(
            out.iter()
                .any(|e| e.kind == EventKind::TrailingStopMoved { from: 95.0, to: 99.0 })
        );
        p.observe(102.0);
        p.check(2, &Bands::default(), &mut out);
        assert_eq!(p.stop_loss, 99.0, "never loosens");
        p.observe(98.0);
        let exit = p.check(3, &Bands::default(), &mut out).expect("stopped");
        assert_eq!((exit.reason, exit.price), (CloseReason::TrailingStop, 99.0));
    }

    #[test]
    fn pnl_counts_fees_and_funding_and_r() {
        let mut p = long();
        p.observe(105.0);
        p.funding = -0.1;
        let fees = Fees::default();
        // gross 10, entry fee 2×100×0.0005 = 0.1, exit 2×105×0.0005 = 0.105
        assert!((p.unrealised_pnl(&fees) - (10.0 - 0.1 - 0.105 - 0.1)).abs() < 1e-12);
        assert_eq!(p.risk_amount(), 10.0);
        assert_eq!(p.r_multiple(-10.0), -1.0);
        assert_eq!(fees.exit_rate(CloseReason::TakeProfit), 0.0002);
        assert_eq!(fees.exit_rate(CloseReason::StopLoss), 0.0005);
    }
}
