//! The eleven lifecycle events of a position, as serde types.
//!
//! The same values come out of the book in demo, paper, live and replay (the book does not know which
//! it runs in, beyond the [`RunMode`] recorded at creation), so the journal, the console and Discord
//! all consume one shape. Events are `Copy` and carry ids, not names, so emitting one in the monitoring
//! hot path allocates nothing.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::{Side, SymbolId, TimestampMs};

/// A position's id: increasing from 1 in the order positions were opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PositionId(pub u64);

impl fmt::Display for PositionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Where the position lives. Recorded only; the book behaves the same in every mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    Demo,
    Paper,
    Live,
    Replay,
}

/// Why a position closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    Manual,
    Strategy,
    Breaker,
    KillSwitch,
    TakeProfit,
    StopLoss,
    /// The stop that fired had been moved by the trailing stop.
    TrailingStop,
    Expiry,
    Liquidation,
}

impl CloseReason {
    pub fn name(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Strategy => "strategy",
            Self::Breaker => "breaker",
            Self::KillSwitch => "kill switch",
            Self::TakeProfit => "take profit",
            Self::StopLoss => "stop loss",
            Self::TrailingStop => "trailing stop",
            Self::Expiry => "expiry",
            Self::Liquidation => "liquidation",
        }
    }
}

/// The risk score of ARCHITECTURE.md §4 in bands; each band is a monitoring lane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    /// score ≤ 0.2: checked every 5 s.
    #[default]
    Low,
    /// 0.2 < score ≤ 0.5: every 2 s.
    Medium,
    /// 0.5 < score ≤ 0.8: every 500 ms.
    High,
    /// score > 0.8: every 100 ms.
    Critical,
}

impl RiskLevel {
    pub fn of_score(score: f64) -> Self {
        if score > 0.8 {
            Self::Critical
        } else if score > 0.5 {
            Self::High
        } else if score > 0.2 {
            Self::Medium
        } else {
            Self::Low
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    Created {
        side: Side,
        qty: f64,
        entry: f64,
        leverage: u16,
        take_profit: f64,
        stop_loss: f64,
        liquidation: Option<f64>,
    },
    /// A check saw a new mark price.
    PriceUpdated {
        mark: f64,
        pnl: f64,
        risk_score: f64,
    },
    RiskLevelChanged {
        from: RiskLevel,
        to: RiskLevel,
        risk_score: f64,
    },
    /// The mark came within the approach band of the target (once per position).
    TakeProfitApproaching {
        mark: f64,
        take_profit: f64,
    },
    /// The mark came within the approach band of the stop (once per position).
    StopLossApproaching {
        mark: f64,
        stop_loss: f64,
    },
    TakeProfitTriggered {
        price: f64,
    },
    StopLossTriggered {
        price: f64,
        trailing: bool,
    },
    TrailingStopMoved {
        from: f64,
        to: f64,
    },
    /// The mark came within the warning band of the liquidation price (once per position).
    LiquidationWarning {
        mark: f64,
        liquidation: f64,
    },
    Expired {
        mark: f64,
    },
    /// Terminal: every position ends with exactly one.
    Closed {
        reason: CloseReason,
        exit_price: f64,
        /// Realised P&L net of both fees and of funding.
        pnl: f64,
        fees: f64,
        funding: f64,
        r_multiple: f64,
    },
}

impl EventKind {
    /// Stable snake-case name (journal column, Discord routing key).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Created { .. } => "created",
            Self::PriceUpdated { .. } => "price_updated",
            Self::RiskLevelChanged { .. } => "risk_level_changed",
            Self::TakeProfitApproaching { .. } => "take_profit_approaching",
            Self::StopLossApproaching { .. } => "stop_loss_approaching",
            Self::TakeProfitTriggered { .. } => "take_profit_triggered",
            Self::StopLossTriggered { .. } => "stop_loss_triggered",
            Self::TrailingStopMoved { .. } => "trailing_stop_moved",
            Self::LiquidationWarning { .. } => "liquidation_warning",
            Self::Expired { .. } => "expired",
            Self::Closed { .. } => "closed",
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Closed { .. })
    }
}

/// One lifecycle event of one position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LifecycleEvent {
    pub position: PositionId,
    pub symbol: SymbolId,
    pub side: Side,
    /// Market time (the mark stream's event time) at which it happened.
    pub at: TimestampMs,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_with_a_type_tag_and_read_back() {
        let e = LifecycleEvent {
            position: PositionId(7),
            symbol: SymbolId(3),
            side: Side::Short,
            at: 1_700_000_000_000,
            kind: EventKind::Closed {
                reason: CloseReason::KillSwitch,
                exit_price: 101.5,
                pnl: -12.25,
                fees: 0.5,
                funding: -0.25,
                r_multiple: -1.0,
            },
        };
        let json = serde_json::to_string(&e).expect("json");
        assert_eq!(
            json,
            r#"{"position":7,"symbol":3,"side":"Short","at":1700000000000,"type":"closed","reason":"kill_switch","exit_price":101.5,"pnl":-12.25,"fees":0.5,"funding":-0.25,"r_multiple":-1.0}"#
        );
        assert_eq!(serde_json::from_str::<LifecycleEvent>(&json).expect("back"), e);
        assert_eq!(e.kind.name(), "closed");
        assert!(e.kind.is_terminal());
    }

    #[test]
    fn risk_levels_follow_the_section_4_bands() {
        assert_eq!(RiskLevel::of_score(0.0), RiskLevel::Low);
        assert_eq!(RiskLevel::of_score(0.2), RiskLevel::Low);
        assert_eq!(RiskLevel::of_score(0.21), RiskLevel::Medium);
        assert_eq!(RiskLevel::of_score(0.5), RiskLevel::Medium);
        assert_eq!(RiskLevel::of_score(0.51), RiskLevel::High);
        assert_eq!(RiskLevel::of_score(0.81), RiskLevel::Critical);
    }
}
