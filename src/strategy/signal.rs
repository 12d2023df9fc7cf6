//! What a strategy evaluation produces: a [`Signal`] with its evidence, or a [`Rejected`] candidate with
//! the stage and reason it stopped at.
//!
//! The signal funnel (scanned → bias → setup → confirmation → target → quality → …) is counted from
//! these values, so a rejection is a small `Copy` enum that costs no allocation on the bars where nothing
//! happens (almost all of them); only an accepted signal owns vectors (confluences and evidence), and
//! signals are rare.

use std::fmt;

use super::quality::{QualityDimension, QualityScore};
use crate::{
    domain::{Interval, Side, SymbolId, TimestampMs},
    smc::{BarIndex, Direction, StructureKind},
};

/// The outcome of one evaluation of one symbol.
#[derive(Debug, Clone, PartialEq)]
pub enum Evaluation {
    Signal(Box<Signal>),
    Rejected(Rejected),
}

impl Evaluation {
    pub fn signal(&self) -> Option<&Signal> {
        match self {
            Self::Signal(signal) => Some(signal),
            Self::Rejected(_) => None,
        }
    }

    pub fn rejected(&self) -> Option<Rejected> {
        match self {
            Self::Signal(_) => None,
            Self::Rejected(rejected) => Some(*rejected),
        }
    }
}

/// A trade idea that passed every rule and the quality filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub symbol: SymbolId,
    pub side: Side,
    /// Close time of the entry-timeframe bar the signal was computed at.
    pub at: TimestampMs,
    pub entry: f64,
    pub stop: f64,
    pub take_profit: f64,
    /// `|take_profit − entry| / |entry − stop|`.
    pub reward_risk: f64,
    /// The reasons to take the trade; at least the bias, the setup, the zone and the confirmation.
    pub confluences: Vec<Confluence>,
    /// The SMC events (timeframe, row, `known_at`) the rules relied on.
    pub evidence: Vec<Evidence>,
    pub quality: QualityScore,
}

/// One reason for a signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Confluence {
    /// The higher timeframe's last structure break points the trade's way.
    HigherTimeframeBias { kind: StructureKind },
    /// The setup timeframe's last structure break agrees too.
    SetupTimeframeStructure,
    /// Price returned to an order block of the trade's direction.
    OrderBlock { top: f64, bottom: f64 },
    /// Price returned to a fair value gap of the trade's direction.
    FairValueGap { top: f64, bottom: f64 },
    /// Opposite-side liquidity (equal lows for a long) was swept.
    LiquiditySweep { level: f64 },
    /// The setup sits in discount (long) or premium (short) of the setup timeframe's dealing range.
    PremiumDiscount,
    /// Entry timeframe break of structure or change of character in the trade's direction.
    Confirmation { kind: StructureKind },
    /// Higher-timeframe EMA 50 above (long) / below (short) EMA 200.
    EmaTrend,
    /// Entry-timeframe RSI on the trade's side of 50 but not stretched (between 50 and 70 for a long).
    Momentum,
}

impl Confluence {
    pub fn name(&self) -> &'static str {
        match self {
            Self::HigherTimeframeBias { .. } => "htf_bias",
            Self::SetupTimeframeStructure => "setup_tf_structure",
            Self::OrderBlock { .. } => "order_block",
            Self::FairValueGap { .. } => "fair_value_gap",
            Self::LiquiditySweep { .. } => "liquidity_sweep",
            Self::PremiumDiscount => "premium_discount",
            Self::Confirmation { .. } => "confirmation",
            Self::EmaTrend => "ema_trend",
            Self::Momentum => "momentum",
        }
    }
}

/// An SMC fact a signal relied on, with the bar it belongs to and the bar it became known at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    pub interval: Interval,
    pub row: BarIndex,
    pub known_at: BarIndex,
    pub what: EvidenceKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidenceKind {
    StructureBreak {
        kind: StructureKind,
        direction: Direction,
    },
    OrderBlock,
    FairValueGap,
    LiquiditySweep,
    /// The swing or pool the take profit sits at (row = the swing's bar).
    TargetLiquidity,
}

/// The stage of the funnel a candidate stopped at, in evaluation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Not enough closed bars on some timeframe yet.
    Warmup,
    Bias,
    Setup,
    Confirmation,
    Target,
    Quality,
    /// The signal predictor's probability (`hybrid` only).
    Model,
}

impl Stage {
    pub const ALL: [Self; 7] = [
        Self::Warmup,
        Self::Bias,
        Self::Setup,
        Self::Confirmation,
        Self::Target,
        Self::Quality,
        Self::Model,
    ];
}

/// A candidate that did not become a signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rejected {
    pub stage: Stage,
    pub reason: RejectReason,
}

/// Why a candidate was rejected. Kept small and `Copy` so rejecting allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RejectReason {
    /// The timeframe has fewer closed bars than the strategy needs.
    NotWarmedUp { interval: Interval },
    /// The higher timeframe has no structure break yet.
    NoBias,
    /// No order block, gap or sweep of the bias direction was touched recently on the setup timeframe.
    NoSetup,
    /// A setup exists but sits in premium for a long (discount for a short).
    WrongZone,
    /// The setup timeframe has no dealing range yet.
    NoDealingRange,
    /// No fresh entry-timeframe BOS/CHoCH in the bias direction.
    NoConfirmation,
    /// The entry is not on the right side of the invalidation level.
    InvalidStop,
    /// No opposing liquidity beyond the entry.
    NoTarget,
    /// Every opposing liquidity level gives less than the minimum reward:risk; `best` is the best one.
    RewardRiskTooLow { best: f64 },
    /// The weighted quality is below the threshold; `weakest` is the lowest-scoring dimension and
    /// `second` the next one if it also scored below one half.
    BelowQualityThreshold {
        total: f64,
        weakest: QualityDimension,
        second: Option<QualityDimension>,
    },
    /// `hybrid`: the signal predictor's P(take profit before stop) is below the threshold.
    BelowModelThreshold { probability: f32, threshold: f64 },
}

impl RejectReason {
    /// A stable short name for funnel tables and logs (dimension included for quality rejections).
    pub fn key(&self) -> String {
        match self {
            Self::NotWarmedUp { interval } => format!("not_warmed_up({interval})"),
            Self::NoBias => "no_bias".into(),
            Self::NoSetup => "no_setup".into(),
            Self::WrongZone => "wrong_zone".into(),
            Self::NoDealingRange => "no_dealing_range".into(),
            Self::NoConfirmation => "no_confirmation".into(),
            Self::InvalidStop => "invalid_stop".into(),
            Self::NoTarget => "no_target".into(),
            Self::RewardRiskTooLow { .. } => "reward_risk_too_low".into(),
            Self::BelowQualityThreshold { weakest, .. } => format!("below_quality({})", weakest.name()),
            Self::BelowModelThreshold { .. } => "below_model_threshold".into(),
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotWarmedUp { interval } => write!(f, "not enough closed {interval} bars yet"),
            Self::NoBias => f.write_str("no higher-timeframe structure break yet"),
            Self::NoSetup => f.write_str("no order block, fair value gap or sweep in the bias direction"),
            Self::WrongZone => f.write_str("setup not in discount (long) / premium (short)"),
            Self::NoDealingRange => f.write_str("no dealing range on the setup timeframe yet"),
            Self::NoConfirmation => f.write_str("no fresh entry-timeframe BOS/CHoCH in the bias direction"),
            Self::InvalidStop => f.write_str("entry is beyond the invalidation level"),
            Self::NoTarget => f.write_str("no opposing liquidity to target"),
            Self::RewardRiskTooLow { best } => write!(f, "best reward:risk {best:.2} below the minimum"),
            Self::BelowQualityThreshold {
                total,
                weakest,
                second,
            } => {
                write!(
                    f,
                    "quality {total:.2} below threshold; weakest: {}",
                    weakest.name()
                )?;
                if let Some(second) = second {
                    write!(f, ", {}", second.name())?;
                }
                Ok(())
            }
            Self::BelowModelThreshold {
                probability,
                threshold,
            } => write!(f, "model P(target) {probability:.2} below {threshold:.2}"),
        }
    }
}
