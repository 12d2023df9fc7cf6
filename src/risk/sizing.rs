//! Position size from a risk fraction of equity and the stop distance, and the dynamic leverage.
//!
//! Size answers "how much do I lose if the stop fills": `equity × risk_fraction / |entry − stop|`,
//! floored to the symbol's lot grid (never larger than asked) and checked against the minimum
//! notional. Leverage does not change that loss, only the margin locked and the liquidation price,
//! so it is chosen afterwards: a target from the signal's confidence (the ICT quality score until a
//! model supplies a probability) scaled down by volatility, then capped by the bracket of the
//! notional and lowered until the liquidation price lies beyond the stop by a safety margin. A
//! liquidation inside the stop would turn a planned 1 % loss into the loss of the whole margin.

use rust_decimal::{Decimal, prelude::FromPrimitive, prelude::ToPrimitive};
use serde::{Deserialize, Serialize};

use super::{
    Refusal,
    brackets::{BracketTable, liquidation_price},
};
use crate::{
    binance::filters::{FilterError, OrderKind, SymbolFilters},
    domain::Side,
};

/// Sizing and leverage parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RiskParams {
    /// Share of equity lost when the stop fills (default 1 %).
    pub risk_fraction: f64,
    /// Leverage at full confidence and calm volatility, before the caps.
    pub max_leverage: u32,
    /// Confidence at or below which the leverage is 1x.
    pub min_confidence: f64,
    /// Relative stop distance (|entry − stop| / entry) at or below which volatility does not reduce
    /// the leverage; wider stops scale it down proportionally.
    pub calm_stop_distance: f64,
    /// The liquidation price must lie beyond the stop by at least this share of the stop distance.
    pub liquidation_margin: f64,
    /// Fees of the entry and the stop exit as a share of notional (two taker fills: 2 × 0.05 %), part
    /// of what the stop costs: without it a tight stop loses far more than the risk fraction.
    pub round_trip_fee: f64,
}

impl Default for RiskParams {
    fn default() -> Self {
        Self {
            risk_fraction: 0.01,
            max_leverage: 20,
            min_confidence: 0.5,
            calm_stop_distance: 0.005,
            liquidation_margin: 0.5,
            round_trip_fee: 0.001,
        }
    }
}

/// A trade the risk layer accepted: rounded quantity, leverage and what they imply.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sized {
    pub qty: f64,
    pub notional: f64,
    pub leverage: u32,
    /// Isolated margin: `notional / leverage`.
    pub margin: f64,
    /// `None` when the margin covers the whole notional of a long.
    pub liquidation: Option<f64>,
    /// Loss at the stop, fees included: `qty × (|entry − stop| + entry × round_trip_fee)`.
    pub risk_amount: f64,
    /// The leverage before the bracket and liquidation caps, for the record.
    pub target_leverage: u32,
}

/// What sizing needs to know about the trade.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TradePlan {
    pub side: Side,
    pub entry: f64,
    pub stop: f64,
    /// In `0..=1`: the model probability, or the ICT quality score until there is a model.
    pub confidence: f64,
    /// Breaker multiplier: 1 normally, 0.5 in Caution.
    pub size_multiplier: f64,
}

/// The leverage target before caps: 1x at `min_confidence`, `max_leverage` at confidence 1, scaled
/// down by `calm_stop_distance / stop_distance` when the stop is wider than calm.
pub fn target_leverage(params: &RiskParams, confidence: f64, stop_distance: f64) -> u32 {
    let span = (1.0 - params.min_confidence).max(f64::EPSILON);
    let conf = ((confidence - params.min_confidence) / span).clamp(0.0, 1.0);
    let calm = if stop_distance > params.calm_stop_distance {
        params.calm_stop_distance / stop_distance
    } else {
        1.0
    };
    let lev = 1.0 + (f64::from(params.max_leverage.max(1)) - 1.0) * conf * calm;
    (lev.floor() as u32).max(1)
}

/// Sizes a trade for `equity` and picks its leverage; every refusal says why.
pub fn size_trade(
    params: &RiskParams,
    plan: &TradePlan,
    equity: f64,
    filters: &SymbolFilters,
    brackets: &BracketTable,
) -> Result<Sized, Refusal> {
    let stop_distance = (plan.entry - plan.stop).abs();
    let wrong_side = match plan.side {
        Side::Long => plan.stop >= plan.entry,
        Side::Short => plan.stop <= plan.entry,
    };
    if !(plan.entry > 0.0 && plan.stop > 0.0) || wrong_side || !stop_distance.is_finite() {
        return Err(Refusal::InvalidStop);
    }
    if equity.is_nan() || equity <= 0.0 {
        return Err(Refusal::NoEquity);
    }
    let loss_per_unit = stop_distance + plan.entry * params.round_trip_fee;
    let raw = equity * params.risk_fraction * plan.size_multiplier / loss_per_unit;
    let raw = Decimal::from_f64(raw).ok_or(Refusal::InvalidStop)?;
    let qty = match filters.floor_qty(OrderKind::Market, raw) {
        Ok(q) => q,
        Err(FilterError::QtyBelowMin { .. } | FilterError::QtyNotPositive { .. }) => {
            return Err(Refusal::BelowMinQty);
        }
        Err(FilterError::QtyAboveMax { .. }) => return Err(Refusal::AboveMaxQty),
        Err(_) => return Err(Refusal::BelowMinQty),
    };
    let qty = qty.to_f64().ok_or(Refusal::BelowMinQty)?;
    let notional = qty * plan.entry;
    let min_notional = filters.min_notional.to_f64().unwrap_or(0.0);
    if notional < min_notional {
        return Err(Refusal::BelowMinNotional);
    }
    let target = target_leverage(params, plan.confidence, stop_distance / plan.entry);
    let mut leverage = target.min(brackets.max_leverage(notional));
    let beyond = |lp: Option<f64>| {
        let margin = params.liquidation_margin * stop_distance;
        match (plan.side, lp) {
            (_, None) => true,
            (Side::Long, Some(lp)) => lp <= plan.stop - margin,
            (Side::Short, Some(lp)) => lp >= plan.stop + margin,
        }
    };
    loop {
        let margin = notional / f64::from(leverage);
        let lp = liquidation_price(plan.side, qty, plan.entry, margin, brackets);
        if beyond(lp) {
            return Ok(Sized {
                qty,
                notional,
                leverage,
                margin,
                liquidation: lp,
                risk_amount: qty * loss_per_unit,
                target_leverage: target,
            });
        }
        if leverage == 1 {
            return Err(Refusal::LiquidationInsideStop);
        }
        leverage -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binance::filters::{LotRule, PriceRule};

    fn filters() -> SymbolFilters {
        let lot = LotRule {
            min: Decimal::new(1, 3),
            max: Decimal::new(1000, 0),
            step: Decimal::new(1, 3),
        };
        SymbolFilters {
            symbol: "BTCUSDT".into(),
            price: PriceRule {
                min: Decimal::new(1, 1),
                max: Decimal::new(1_000_000, 0),
                tick: Decimal::new(1, 1),
            },
            lot,
            market_lot: lot,
            min_notional: Decimal::new(5, 0),
            percent_price: None,
            price_precision: 1,
            quantity_precision: 3,
        }
    }

    fn plan(side: Side, entry: f64, stop: f64, confidence: f64) -> TradePlan {
        TradePlan {
            side,
            entry,
            stop,
            confidence,
            size_multiplier: 1.0,
        }
    }

    #[test]
    fn one_percent_of_equity_is_lost_at_the_stop_rounded_down_to_the_step() {
        let t = BracketTable::conservative_default();
        let s = size_trade(
            &RiskParams::default(),
            &plan(Side::Long, 30_000.0, 29_700.0, 0.8),
            10_000.0,
            &filters(),
            &t,
        )
        .expect("sized");
        // 100 USDT / (300 + 30 000 × 0.1 % of fees) = 0.3030… → 0.303
        assert_eq!(s.qty, 0.303);
        assert!(s.risk_amount <= 100.0 && s.risk_amount > 99.0);
        assert!(s.liquidation.expect("liq") < 29_700.0 - 150.0);
        // Half size in Caution.
        let half = TradePlan {
            size_multiplier: 0.5,
            ..plan(Side::Long, 30_000.0, 29_700.0, 0.8)
        };
        let h = size_trade(&RiskParams::default(), &half, 10_000.0, &filters(), &t).expect("sized");
        assert_eq!(h.qty, 0.151);
    }

    #[test]
    fn leverage_grows_with_confidence_and_shrinks_with_volatility() {
        let p = RiskParams::default();
        assert_eq!(target_leverage(&p, 0.5, 0.001), 1);
        assert_eq!(target_leverage(&p, 1.0, 0.001), 20);
        assert_eq!(target_leverage(&p, 1.0, 0.01), 10);
        assert!(target_leverage(&p, 0.8, 0.005) > target_leverage(&p, 0.7, 0.005));
    }

    #[test]
    fn leverage_is_capped_so_the_liquidation_lies_beyond_the_stop() {
        let t = BracketTable::conservative_default();
        let p = RiskParams {
            max_leverage: 125,
            calm_stop_distance: 1.0,
            ..RiskParams::default()
        };
        // A 4 % stop: any leverage above ~16x would liquidate before the stop.
        for side in [Side::Long, Side::Short] {
            let stop = if side == Side::Long { 28_800.0 } else { 31_200.0 };
            let s =
                size_trade(&p, &plan(side, 30_000.0, stop, 1.0), 10_000.0, &filters(), &t).expect("sized");
            let lp = s.liquidation.expect("liq");
            match side {
                Side::Long => assert!(lp <= stop - 600.0),
                Side::Short => assert!(lp >= stop + 600.0),
            }
            assert!(s.leverage < s.target_leverage);
            assert!(s.leverage <= t.max_leverage(s.notional));
            // One more x would break the rule.
            let lp_more =
                liquidation_price(side, s.qty, 30_000.0, s.notional / f64::from(s.leverage + 1), &t)
                    .expect("liq");
            match side {
                Side::Long => assert!(lp_more > stop - 600.0),
                Side::Short => assert!(lp_more < stop + 600.0),
            }
        }
    }

    #[test]
    fn refusals_carry_their_reason() {
        let t = BracketTable::conservative_default();
        let p = RiskParams::default();
        let f = filters();
        assert_eq!(
            size_trade(&p, &plan(Side::Long, 100.0, 101.0, 0.8), 1_000.0, &f, &t),
            Err(Refusal::InvalidStop)
        );
        assert_eq!(
            size_trade(&p, &plan(Side::Long, 30_000.0, 20_000.0, 0.8), 10.0, &f, &t),
            Err(Refusal::BelowMinQty)
        );
        assert_eq!(
            size_trade(&p, &plan(Side::Short, 30_000.0, 30_100.0, 0.8), 0.0, &f, &t),
            Err(Refusal::NoEquity)
        );
        // A stop further away than the maintenance margin allows even at 1x: a short with a stop at 3x
        // entry liquidates (at about 2x entry) long before it.
        assert_eq!(
            size_trade(&p, &plan(Side::Short, 10.0, 30.0, 0.8), 1_000_000.0, &f, &t),
            Err(Refusal::LiquidationInsideStop)
        );
    }
}
