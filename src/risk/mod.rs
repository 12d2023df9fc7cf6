//! Risk: how big a trade may be, at what leverage, and whether the account may trade at all.
//!
//! Signals become positions only through here. [`sizing`] turns a stop distance into a quantity
//! (1 % of equity at risk by default) and picks the leverage within the venue's hard caps;
//! [`brackets`] holds the maintenance-margin tiers and the liquidation price; [`breaker`] is the
//! tiered circuit breaker that halves, blocks or flattens trading when losses or operational faults
//! pile up. Every "no" is a [`Refusal`], a small `Copy` enum with a stable key (counted in the signal
//! funnel) and a display text (shown in the console).

pub mod brackets;
pub mod breaker;
pub mod sizing;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use self::{
    brackets::{Bracket, BracketError, BracketTable, BracketWire, SymbolBracketsWire, liquidation_price},
    breaker::{Breaker, BreakerConfig, BreakerError, BreakerInput, Cause, ResetToken, Tier},
    sizing::{RiskParams, Sized, TradePlan, size_trade},
};

/// Why the risk layer refused a trade or an operator action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Refusal {
    /// The stop is on the wrong side of the entry, or a price is not positive.
    InvalidStop,
    /// The account has no equity to risk.
    NoEquity,
    /// The risk budget buys less than the symbol's minimum quantity.
    BelowMinQty,
    /// The risk budget buys more than the symbol's maximum quantity.
    AboveMaxQty,
    /// The position's notional is below the symbol's `MIN_NOTIONAL`.
    BelowMinNotional,
    /// Even at 1x the liquidation price would come before the stop.
    LiquidationInsideStop,
    /// The mark is already beyond the signal's target.
    TargetPassed,
    /// `MAX_POSITIONS` positions are open.
    MaxPositions,
    /// No mark price has arrived for the symbol yet.
    NoMarkPrice,
    /// A position on the same symbol and side is already open.
    AlreadyOpen,
    /// The symbol's filters are unknown (not in the exchange info).
    NoFilters,
    /// The circuit breaker is in `ReduceOnly`: no new entries.
    BreakerReduceOnly,
    /// The circuit breaker halted trading: only cancels.
    BreakerHalt,
    /// The circuit breaker is flattening every position.
    BreakerFlatten,
    /// A reset was asked for while the tier's cooldown still runs.
    CooldownActive,
    /// A reset confirmation did not match the token handed out (or it expired).
    BadResetToken,
    /// A reset was asked for in the Normal tier.
    NothingToReset,
    /// Live trading: the venue's positions and orders are not reconciled yet (start-up, a user-stream
    /// reconnect, or a failed query): no entry until they are.
    NotReconciled,
}

impl Refusal {
    /// Stable snake-case key, used by the funnel and the journal.
    pub fn key(self) -> &'static str {
        match self {
            Self::InvalidStop => "invalid_stop",
            Self::NoEquity => "no_equity",
            Self::BelowMinQty => "below_min_qty",
            Self::AboveMaxQty => "above_max_qty",
            Self::BelowMinNotional => "below_min_notional",
            Self::LiquidationInsideStop => "liquidation_inside_stop",
            Self::TargetPassed => "target_passed",
            Self::MaxPositions => "max_positions",
            Self::NoMarkPrice => "no_mark_price",
            Self::AlreadyOpen => "already_open",
            Self::NoFilters => "no_filters",
            Self::BreakerReduceOnly => "breaker_reduce_only",
            Self::BreakerHalt => "breaker_halt",
            Self::BreakerFlatten => "breaker_flatten",
            Self::CooldownActive => "cooldown_active",
            Self::BadResetToken => "bad_reset_token",
            Self::NothingToReset => "nothing_to_reset",
            Self::NotReconciled => "not_reconciled",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidStop => "the stop is on the wrong side of the entry",
            Self::NoEquity => "no equity to risk",
            Self::BelowMinQty => "the risk budget buys less than the minimum quantity",
            Self::AboveMaxQty => "the risk budget buys more than the maximum quantity",
            Self::BelowMinNotional => "the notional is below the symbol's minimum",
            Self::LiquidationInsideStop => "even at 1x the liquidation price comes before the stop",
            Self::TargetPassed => "the mark is already beyond the target",
            Self::MaxPositions => "the maximum number of open positions is reached",
            Self::NoMarkPrice => "no mark price for the symbol yet",
            Self::AlreadyOpen => "a position on this symbol and side is already open",
            Self::NoFilters => "the symbol's filters are unknown",
            Self::BreakerReduceOnly => "circuit breaker in ReduceOnly: no new entries",
            Self::BreakerHalt => "circuit breaker halted trading: cancels only",
            Self::BreakerFlatten => "circuit breaker is flattening every position",
            Self::CooldownActive => "the breaker's cooldown is still running",
            Self::BadResetToken => "the reset confirmation does not match (or expired)",
            Self::NothingToReset => "the breaker is already Normal",
            Self::NotReconciled => "live trading is not reconciled with the venue yet",
        })
    }
}
