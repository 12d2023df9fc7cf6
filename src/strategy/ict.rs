//! The rule-based ICT strategy: higher-timeframe bias, a setup on the setup timeframe, an entry
//! confirmation on the entry timeframe, a stop beyond the invalidation and a target at opposing liquidity.
//!
//! The rules, for a long (a short is the exact mirror, so the strategy has no structural side bias):
//!
//! 1. **Bias** — the newest break of structure / change of character on the higher timeframe (1h) is
//!    bullish.
//! 2. **Setup** — on the setup timeframe (15m), within the last [`IctParams::setup_window`] bars, price
//!    came back into a bullish order block or a bullish fair value gap, or swept a pool of equal lows and
//!    closed back above it. The setup's reference price (zone midpoint, or the swept level) must lie in
//!    **discount** of the setup timeframe's dealing range (below its equilibrium).
//! 3. **Confirmation** — a bullish BOS or `CHoCH` on the entry timeframe (5m), not before the setup's
//!    touch: either the SMC engine reported it at the newest bar (broken within
//!    [`IctParams::confirmation_max_age`] bars), or the newest bar closed above the newest confirmed swing
//!    high for the first time (a `CHoCH` when the timeframe's last classified break was bearish, else a
//!    BOS). The second form exists because the engine classifies a break only once the swings after the
//!    broken one are confirmed, often tens of bars after the break. Requiring the confirmation to be *new*
//!    makes one break give at most one signal.
//! 4. **Stop** — below the invalidation: the zone's bottom (order block / gap) or the lowest low since the
//!    sweep, minus [`IctParams::stop_buffer_atr`] entry ATRs, and at least [`IctParams::min_stop_atr`] ATRs
//!    from the entry.
//! 5. **Target** — the nearest buy-side liquidity above the entry (unswept equal highs, swing highs not yet
//!    traded through, the dealing-range highs of the setup and higher timeframes) that gives at least
//!    [`IctParams::min_reward_risk`]; if none does, the candidate is rejected with the best R:R on offer.
//! 6. **Quality** — the [`QualityFilter`](super::QualityFilter) scores the candidate; below the threshold
//!    it is rejected naming the weakest dimension(s).
//!
//! Entry is the close of the newest entry-timeframe bar. The evaluation reads only the analysis, which
//! holds only closed bars, so it is causal and deterministic.

use super::{
    Mode, Strategy,
    analysis::{Role, SymbolAnalysis, TimeframeState, Zone},
    quality::{QualityFilter, QualityInputs},
    signal::{Confluence, Evaluation, Evidence, EvidenceKind, RejectReason, Rejected, Signal, Stage},
};
use crate::{
    domain::{Side, SymbolId, TimestampMs},
    smc::{BarIndex, Direction, StructureKind, SwingSide},
};

/// Parameters of the ICT strategy, with their defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IctParams {
    /// Minimum reward:risk of the target. Default 2.
    pub min_reward_risk: f64,
    /// How many setup-timeframe bars a touch or sweep stays a valid setup. Default 8 (2 h on 15m).
    pub setup_window: usize,
    /// How many entry-timeframe bars old the confirming break may be. Default 3.
    pub confirmation_max_age: usize,
    /// Stop buffer beyond the invalidation level, in entry ATRs. Default 0.1.
    pub stop_buffer_atr: f64,
    /// Minimum stop distance, in entry ATRs (avoids absurd R:R on tiny stops). Default 0.5.
    pub min_stop_atr: f64,
    /// Closed bars every timeframe needs before the strategy speaks. Default 30.
    pub min_bars: usize,
    /// Swings per timeframe scanned for targets (newest first). Default 12.
    pub target_swings: usize,
    pub quality: QualityFilter,
}

impl Default for IctParams {
    fn default() -> Self {
        Self {
            min_reward_risk: 2.0,
            setup_window: 8,
            confirmation_max_age: 3,
            stop_buffer_atr: 0.1,
            min_stop_atr: 0.5,
            min_bars: 30,
            target_swings: 12,
            quality: QualityFilter::default(),
        }
    }
}

/// The rule-based ICT strategy. Stateless between evaluations: everything it needs is in the analysis.
#[derive(Debug, Clone, Default)]
pub struct IctStrategy {
    pub params: IctParams,
}

/// What kind of setup was found.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SetupKind {
    OrderBlock,
    FairValueGap,
    Sweep,
}

/// The entry-timeframe break that confirmed the setup.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Confirmation {
    kind: StructureKind,
    /// The broken swing.
    row: BarIndex,
    known_at: BarIndex,
    broken_at: BarIndex,
}

/// A setup candidate on the setup timeframe.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Setup {
    kind: SetupKind,
    row: BarIndex,
    known_at: BarIndex,
    /// Setup-timeframe bar of the touch or sweep.
    touched_at: BarIndex,
    top: f64,
    bottom: f64,
    /// Zone midpoint or swept level: what must be in discount / premium.
    reference: f64,
    /// Far side: the stop goes beyond it.
    invalidation: f64,
}

fn direction_of(side: Side) -> Direction {
    match side {
        Side::Long => Direction::Bullish,
        Side::Short => Direction::Bearish,
    }
}

fn reject(stage: Stage, reason: RejectReason) -> Evaluation {
    Evaluation::Rejected(Rejected { stage, reason })
}

/// `price` is on the favourable side of the equilibrium of `(high, low)` for `side`.
fn in_zone_for(side: Side, price: f64, (high, low): (f64, f64)) -> bool {
    let equilibrium = f64::midpoint(high, low);
    match side {
        Side::Long => price < equilibrium,
        Side::Short => price > equilibrium,
    }
}

impl IctStrategy {
    pub fn new(params: IctParams) -> Self {
        Self { params }
    }

    fn zone_setup(kind: SetupKind, zone: &Zone, side: Side, recent: BarIndex) -> Option<Setup> {
        let touched_at = zone.touched_at?;
        (zone.direction == direction_of(side) && touched_at >= recent).then(|| Setup {
            kind,
            row: zone.row,
            known_at: zone.known_at,
            touched_at,
            top: zone.top,
            bottom: zone.bottom,
            reference: f64::midpoint(zone.top, zone.bottom),
            invalidation: match side {
                Side::Long => zone.bottom,
                Side::Short => zone.top,
            },
        })
    }

    /// Sweeps of the opposite-side pool (equal lows for a long) within the window, with the newest close
    /// back on the right side of the level. The invalidation is the extreme since the sweep.
    fn sweep_setups(
        setup: &TimeframeState,
        side: Side,
        recent: BarIndex,
        close: f64,
    ) -> impl Iterator<Item = Setup> + '_ {
        let opposite = match side {
            Side::Long => Direction::Bearish,
            Side::Short => Direction::Bullish,
        };
        setup.liquidity_pools().iter().filter_map(move |pool| {
            let swept_at = pool.swept_at?;
            let reclaimed = match side {
                Side::Long => close > pool.level,
                Side::Short => close < pool.level,
            };
            if pool.direction != opposite || swept_at < recent || !reclaimed {
                return None;
            }
            let last = setup.last_index()?;
            let extreme = (swept_at..=last).filter_map(|i| setup.bar(i)).fold(
                match side {
                    Side::Long => f64::INFINITY,
                    Side::Short => f64::NEG_INFINITY,
                },
                |acc, bar| match side {
                    Side::Long => acc.min(bar.low),
                    Side::Short => acc.max(bar.high),
                },
            );
            Some(Setup {
                kind: SetupKind::Sweep,
                row: pool.row,
                known_at: pool.known_at,
                touched_at: swept_at,
                top: pool.level.max(extreme),
                bottom: pool.level.min(extreme),
                reference: pool.level,
                invalidation: extreme,
            })
        })
    }

    /// Opposing liquidity beyond `entry` on one timeframe: unswept pools, swings not traded through since,
    /// the dealing-range extreme. Calls `visit(level, evidence row)`.
    fn targets(&self, tf: &TimeframeState, side: Side, entry: f64, visit: &mut impl FnMut(f64, BarIndex)) {
        let beyond = |level: f64| match side {
            Side::Long => level > entry,
            Side::Short => level < entry,
        };
        let Some(last) = tf.last_index() else {
            return;
        };
        let wanted_pool = direction_of(side);
        for pool in tf.liquidity_pools() {
            if pool.direction == wanted_pool && pool.swept_at.is_none() && beyond(pool.level) {
                visit(pool.level, pool.row);
            }
        }
        let swing_side = match side {
            Side::Long => SwingSide::High,
            Side::Short => SwingSide::Low,
        };
        for swing in tf
            .swings()
            .iter()
            .rev()
            .filter(|s| !s.bookend && s.side == swing_side)
            .take(self.params.target_swings)
        {
            if !beyond(swing.level) {
                continue;
            }
            let taken = (swing.row + 1..=last)
                .filter_map(|i| tf.bar(i))
                .any(|bar| match side {
                    Side::Long => bar.high > swing.level,
                    Side::Short => bar.low < swing.level,
                });
            if !taken {
                visit(swing.level, swing.row);
            }
        }
        if let Some((high, low)) = tf.dealing_range() {
            let level = match side {
                Side::Long => high,
                Side::Short => low,
            };
            if beyond(level) {
                visit(level, last);
            }
        }
    }

    /// The full rule chain. See the module documentation.
    #[allow(clippy::too_many_lines)] // one linear funnel reads best in one place
    pub fn evaluate_analysis(
        &self,
        symbol: SymbolId,
        analysis: &SymbolAnalysis,
        now: TimestampMs,
    ) -> Evaluation {
        let p = &self.params;
        for role in Role::ALL {
            let tf = analysis.timeframe(role);
            if tf.bars() < p.min_bars {
                return reject(
                    Stage::Warmup,
                    RejectReason::NotWarmedUp {
                        interval: tf.interval(),
                    },
                );
            }
        }
        let (entry_tf, setup_tf, higher_tf) = (analysis.entry(), analysis.setup(), analysis.higher());
        let (Some(entry_bar), Some(entry_index), Some(setup_last), Some(setup_bar)) = (
            entry_tf.last_bar(),
            entry_tf.last_index(),
            setup_tf.last_index(),
            setup_tf.last_bar(),
        ) else {
            return reject(
                Stage::Warmup,
                RejectReason::NotWarmedUp {
                    interval: entry_tf.interval(),
                },
            );
        };

        // 1. Bias.
        let Some(bias) = higher_tf.last_break().copied() else {
            return reject(Stage::Bias, RejectReason::NoBias);
        };
        let side = match bias.direction {
            Direction::Bullish => Side::Long,
            Direction::Bearish => Side::Short,
        };
        let direction = bias.direction;

        // 2. Setup on the setup timeframe, in discount / premium.
        let recent = setup_last.saturating_sub(p.setup_window);
        let setups = setup_tf
            .order_blocks()
            .iter()
            .filter_map(|z| Self::zone_setup(SetupKind::OrderBlock, z, side, recent))
            .chain(
                setup_tf
                    .fair_value_gaps()
                    .iter()
                    .filter_map(|z| Self::zone_setup(SetupKind::FairValueGap, z, side, recent)),
            )
            .chain(Self::sweep_setups(setup_tf, side, recent, setup_bar.close));
        let Some(range) = setup_tf.dealing_range() else {
            return reject(Stage::Setup, RejectReason::NoDealingRange);
        };
        let mut any_setup = false;
        let mut primary: Option<Setup> = None;
        let mut kinds = [None::<Setup>; 3];
        for setup in setups {
            any_setup = true;
            if !in_zone_for(side, setup.reference, range) {
                continue;
            }
            let slot = setup.kind as usize;
            if kinds[slot].is_none_or(|k| setup.touched_at > k.touched_at) {
                kinds[slot] = Some(setup);
            }
            if primary.is_none_or(|best| setup.touched_at > best.touched_at) {
                primary = Some(setup);
            }
        }
        let Some(primary) = primary else {
            let reason = if any_setup {
                RejectReason::WrongZone
            } else {
                RejectReason::NoSetup
            };
            return reject(Stage::Setup, reason);
        };

        // 3. Confirmation on the entry timeframe, after the touch: a BOS/CHoCH the SMC engine reported at
        //    this bar (broken recently), or the newest bar closing beyond the newest swing (a CHoCH when
        //    the entry timeframe's last classified break pointed the other way, else a BOS).
        let touch_open = setup_tf.bar(primary.touched_at).map_or(i64::MAX, |b| b.open_time);
        let after_touch = |at: BarIndex| entry_tf.bar(at).is_some_and(|bar| bar.close_time >= touch_open);
        let reported = entry_tf
            .breaks()
            .iter()
            .rev()
            .find(|b| {
                b.direction == direction
                    && b.known_at == entry_index
                    && b.broken_at + p.confirmation_max_age >= entry_index
                    && after_touch(b.broken_at)
            })
            .map(|b| Confirmation {
                kind: b.kind,
                row: b.row,
                known_at: b.known_at,
                broken_at: b.broken_at,
            });
        let closed_beyond = entry_tf
            .swing_break()
            .filter(|b| b.direction == direction && after_touch(b.at))
            .map(|b| Confirmation {
                kind: if entry_tf.bias().is_some_and(|d| d != direction) {
                    StructureKind::Choch
                } else {
                    StructureKind::Bos
                },
                row: b.row,
                known_at: b.at,
                broken_at: b.at,
            });
        let Some(confirmation) = reported.or(closed_beyond) else {
            return reject(Stage::Confirmation, RejectReason::NoConfirmation);
        };

        // 4. Stop beyond the invalidation.
        let entry = entry_bar.close;
        let atr = entry_tf.indicators().latest().atr14.unwrap_or(0.0);
        let (stop, risk) = match side {
            Side::Long => {
                let stop = (primary.invalidation - p.stop_buffer_atr * atr).min(entry - p.min_stop_atr * atr);
                (stop, entry - stop)
            }
            Side::Short => {
                let stop = (primary.invalidation + p.stop_buffer_atr * atr).max(entry + p.min_stop_atr * atr);
                (stop, stop - entry)
            }
        };
        let beyond_invalidation = match side {
            Side::Long => entry <= primary.invalidation,
            Side::Short => entry >= primary.invalidation,
        };
        if beyond_invalidation || risk.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return reject(Stage::Target, RejectReason::InvalidStop);
        }

        // 5. Target: nearest opposing liquidity with R:R >= the minimum.
        let mut best_rr = f64::NEG_INFINITY;
        let mut chosen: Option<(f64, f64, Role, BarIndex)> = None;
        for role in [Role::Setup, Role::Higher] {
            let tf = analysis.timeframe(role);
            self.targets(tf, side, entry, &mut |level, row| {
                let rr = (level - entry).abs() / risk;
                best_rr = best_rr.max(rr);
                if rr >= p.min_reward_risk
                    && chosen.is_none_or(|(l, ..)| (level - entry).abs() < (l - entry).abs())
                {
                    chosen = Some((level, rr, role, row));
                }
            });
        }
        let Some((take_profit, reward_risk, target_role, target_row)) = chosen else {
            let reason = if best_rr.is_finite() {
                RejectReason::RewardRiskTooLow { best: best_rr }
            } else {
                RejectReason::NoTarget
            };
            return reject(Stage::Target, reason);
        };

        // Confluences.
        let mut confluences = Vec::with_capacity(9);
        confluences.push(Confluence::HigherTimeframeBias { kind: bias.kind });
        let setup_aligned = setup_tf.bias() == Some(direction);
        if setup_aligned {
            confluences.push(Confluence::SetupTimeframeStructure);
        }
        for setup in kinds.iter().flatten() {
            confluences.push(match setup.kind {
                SetupKind::OrderBlock => Confluence::OrderBlock {
                    top: setup.top,
                    bottom: setup.bottom,
                },
                SetupKind::FairValueGap => Confluence::FairValueGap {
                    top: setup.top,
                    bottom: setup.bottom,
                },
                SetupKind::Sweep => Confluence::LiquiditySweep {
                    level: setup.reference,
                },
            });
        }
        confluences.push(Confluence::PremiumDiscount);
        confluences.push(Confluence::Confirmation {
            kind: confirmation.kind,
        });
        let higher_values = higher_tf.indicators().latest();
        if let (Some(fast), Some(slow)) = (higher_values.ema50, higher_values.ema200) {
            let trend = match side {
                Side::Long => fast > slow,
                Side::Short => fast < slow,
            };
            if trend {
                confluences.push(Confluence::EmaTrend);
            }
        }
        if let Some(rsi) = entry_tf.indicators().latest().rsi14 {
            let momentum = match side {
                Side::Long => (50.0..70.0).contains(&rsi),
                Side::Short => rsi > 30.0 && rsi <= 50.0,
            };
            if momentum {
                confluences.push(Confluence::Momentum);
            }
        }

        // 6. Quality.
        let near_edge = match side {
            Side::Long => primary.top,
            Side::Short => primary.bottom,
        };
        let distance = match side {
            Side::Long => (entry - near_edge).max(0.0),
            Side::Short => (near_edge - entry).max(0.0),
        };
        let inputs = QualityInputs {
            aligned: [true, setup_aligned, entry_tf.bias() == Some(direction)],
            confluences: confluences.len(),
            reward_risk,
            min_reward_risk: p.min_reward_risk,
            volatility_ratio: entry_tf.volatility_ratio(),
            volume_ratio: entry_tf
                .bar(confirmation.broken_at)
                .zip(entry_tf.volume_ratio())
                .map(|(bar, ratio)| {
                    // Ratio of the breaking bar: scale the newest bar's ratio by the volumes' quotient.
                    if entry_bar.volume > 0.0 {
                        ratio * bar.volume / entry_bar.volume
                    } else {
                        ratio
                    }
                }),
            key_level_distance_atr: (atr > 0.0).then(|| distance / atr),
        };
        let quality = p.quality.score(&inputs);
        if !p.quality.passes(&quality) {
            let (weakest, second) = quality.weakest();
            return reject(
                Stage::Quality,
                RejectReason::BelowQualityThreshold {
                    total: quality.total,
                    weakest,
                    second,
                },
            );
        }

        let setup_interval = setup_tf.interval();
        let evidence = vec![
            Evidence {
                interval: higher_tf.interval(),
                row: bias.row,
                known_at: bias.known_at,
                what: EvidenceKind::StructureBreak {
                    kind: bias.kind,
                    direction,
                },
            },
            Evidence {
                interval: setup_interval,
                row: primary.row,
                known_at: primary.known_at.max(primary.touched_at),
                what: match primary.kind {
                    SetupKind::OrderBlock => EvidenceKind::OrderBlock,
                    SetupKind::FairValueGap => EvidenceKind::FairValueGap,
                    SetupKind::Sweep => EvidenceKind::LiquiditySweep,
                },
            },
            Evidence {
                interval: entry_tf.interval(),
                row: confirmation.row,
                known_at: confirmation.known_at,
                what: EvidenceKind::StructureBreak {
                    kind: confirmation.kind,
                    direction,
                },
            },
            Evidence {
                interval: analysis.timeframe(target_role).interval(),
                row: target_row,
                known_at: analysis.timeframe(target_role).last_index().unwrap_or(target_row),
                what: EvidenceKind::TargetLiquidity,
            },
        ];
        Evaluation::Signal(Box::new(Signal {
            symbol,
            side,
            at: now,
            entry,
            stop,
            take_profit,
            reward_risk,
            confluences,
            evidence,
            quality,
        }))
    }
}

impl Strategy for IctStrategy {
    fn mode(&self) -> Mode {
        Mode::Ict
    }

    fn evaluate(&mut self, symbol: SymbolId, analysis: &SymbolAnalysis, now: TimestampMs) -> Evaluation {
        self.evaluate_analysis(symbol, analysis, now)
    }
}
