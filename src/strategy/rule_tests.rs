//! Rule tests of the ICT strategy on hand-built bar sequences, and the determinism / causality property.
//!
//! The sequences are zig-zags drawn on 5m bars from price waypoints (steep impulse legs that leave fair
//! value gaps, gentle pullbacks), aggregated to 15m and 1h exactly as the venue would. A falling market is
//! the exact mirror (`price → K − price`) of a rising one, so each long-side test has its short twin.

use proptest::prelude::*;

use super::{Strategy as _, *};
use crate::{
    domain::{Bar, Interval, Side, SymbolId},
    smc::{Direction, SwingSide},
};

const FIVE: i64 = 300_000;
const T0: i64 = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000;

fn bar5(i: usize, open: f64, close: f64, wick: f64, volume: f64) -> Bar {
    let open_time = T0 + FIVE * i64::try_from(i).unwrap();
    Bar {
        open_time,
        close_time: open_time + FIVE - 1,
        open,
        high: open.max(close) + wick,
        low: open.min(close) - wick,
        close,
        volume,
        quote_volume: volume * close,
        trades: 10,
        closed: true,
    }
}

/// 5m bars walking linearly between waypoints `(price, bars to reach it)`, starting at `start`.
fn path(start: f64, waypoints: &[(f64, usize)]) -> Vec<Bar> {
    let mut bars = Vec::new();
    let mut price = start;
    for &(target, n) in waypoints {
        let step = (target - price) / f64::from(u32::try_from(n).unwrap());
        for _ in 0..n {
            let next = price + step;
            // Impulses (|step| large) get heavy volume, pullbacks light.
            let volume = if step.abs() > 0.1 { 300.0 } else { 100.0 };
            bars.push(bar5(bars.len(), price, next, 0.1, volume));
            price = next;
        }
    }
    bars
}

/// A rising market in 104-bar cycles: an impulse of +6 over 4 h, a pullback of −3.5 over 3.5 h, a bounce of
/// +0.3 over 20 min (a lower high on 5m), a last leg of −0.6 over 50 min; twenty cycles.
fn rising() -> Vec<Bar> {
    let mut waypoints = Vec::new();
    let mut price = 100.0;
    for _ in 0..20 {
        for (delta, bars) in [(6.0, 48), (-3.5, 42), (0.3, 4), (-0.6, 10)] {
            price += delta;
            waypoints.push((price, bars));
        }
    }
    path(100.0, &waypoints)
}

fn mirror(bars: &[Bar]) -> Vec<Bar> {
    const K: f64 = 400.0;
    bars.iter()
        .map(|b| Bar {
            open: K - b.open,
            high: K - b.low,
            low: K - b.high,
            close: K - b.close,
            ..*b
        })
        .collect()
}

/// Complete higher-timeframe bars aggregated from 5m bars.
fn aggregate(five: &[Bar], interval: Interval) -> Vec<Bar> {
    let len = interval.fixed_millis().unwrap();
    let per = usize::try_from(len / FIVE).unwrap();
    five.chunks_exact(per)
        .filter(|group| group[0].open_time % len == 0)
        .map(|group| Bar {
            open_time: group[0].open_time,
            close_time: group[0].open_time + len - 1,
            open: group[0].open,
            high: group.iter().map(|b| b.high).fold(f64::MIN, f64::max),
            low: group.iter().map(|b| b.low).fold(f64::MAX, f64::min),
            close: group[per - 1].close,
            volume: group.iter().map(|b| b.volume).sum(),
            quote_volume: group.iter().map(|b| b.quote_volume).sum(),
            trades: group.iter().map(|b| b.trades).sum(),
            closed: true,
        })
        .collect()
}

fn test_params() -> IctParams {
    IctParams {
        min_bars: 20,
        ..IctParams::default()
    }
}

/// Feeds the bars (higher timeframes first at equal close times) and evaluates after every 5m bar;
/// `inspect` sees each evaluation with the analysis as it was then.
fn replay(
    five: &[Bar],
    params: IctParams,
    mut inspect: impl FnMut(usize, &Evaluation, &SymbolAnalysis),
) -> Vec<Evaluation> {
    let mut merged: Vec<(i64, u8, Interval, Bar)> = Vec::new();
    merged.extend(
        aggregate(five, Interval::H1)
            .into_iter()
            .map(|b| (b.close_time, 0, Interval::H1, b)),
    );
    merged.extend(
        aggregate(five, Interval::M15)
            .into_iter()
            .map(|b| (b.close_time, 1, Interval::M15, b)),
    );
    merged.extend(five.iter().map(|b| (b.close_time, 2, Interval::M5, *b)));
    merged.sort_by_key(|(t, rank, ..)| (*t, *rank));
    let mut analysis = SymbolAnalysis::new(&AnalysisConfig::default()).unwrap();
    let mut strategy = IctStrategy::new(params);
    let mut out = Vec::new();
    for (close_time, _, interval, bar) in merged {
        analysis.on_closed_bar(interval, &bar).unwrap();
        if interval == Interval::M5 {
            let evaluation = strategy.evaluate(SymbolId(0), &analysis, close_time);
            inspect(out.len(), &evaluation, &analysis);
            out.push(evaluation);
        }
    }
    out
}

fn signals(evaluations: &[Evaluation]) -> Vec<(usize, &Signal)> {
    evaluations
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.signal().map(|s| (i, s)))
        .collect()
}

fn reasons(evaluations: &[Evaluation]) -> Vec<RejectReason> {
    evaluations
        .iter()
        .filter_map(|e| e.rejected().map(|r| r.reason))
        .collect()
}

#[test]
fn flat_market_has_no_bias() {
    let five: Vec<Bar> = (0..600).map(|i| bar5(i, 100.0, 100.0, 0.01, 100.0)).collect();
    let evaluations = replay(&five, test_params(), |_, _, _| {});
    assert!(evaluations.iter().all(|e| e.signal().is_none()));
    let after_warmup = evaluations
        .iter()
        .filter_map(Evaluation::rejected)
        .filter(|r| r.stage != Stage::Warmup)
        .collect::<Vec<_>>();
    assert!(!after_warmup.is_empty());
    assert!(after_warmup.iter().all(|r| r.reason == RejectReason::NoBias));
}

#[test]
fn rising_market_gives_longs_only_with_valid_structure() {
    let five = rising();
    let mut checked = 0;
    let evaluations = replay(&five, test_params(), |i, evaluation, analysis| {
        let Some(signal) = evaluation.signal() else {
            return;
        };
        checked += 1;
        // Bias: the 1h's newest break is bullish.
        assert_eq!(analysis.higher().bias(), Some(Direction::Bullish));
        // Confirmation: a bullish 5m break became known at this very bar.
        let entry_last = analysis.entry().last_index().unwrap();
        assert_eq!(entry_last, i);
        assert!(signal.evidence.iter().any(|e| e.interval == Interval::M5
            && e.known_at == entry_last
            && matches!(
                e.what,
                EvidenceKind::StructureBreak {
                    direction: Direction::Bullish,
                    ..
                }
            )));
        // Every piece of evidence was known by now.
        for e in &signal.evidence {
            let tf = [Role::Entry, Role::Setup, Role::Higher]
                .into_iter()
                .map(|r| analysis.timeframe(r))
                .find(|tf| tf.interval() == e.interval)
                .unwrap();
            assert!(e.row <= e.known_at && e.known_at <= tf.last_index().unwrap());
        }
        // Setup in discount: each zone confluence's midpoint below the 15m equilibrium.
        let (high, low) = analysis.setup().dealing_range().unwrap();
        for c in &signal.confluences {
            if let Confluence::OrderBlock { top, bottom } | Confluence::FairValueGap { top, bottom } = *c {
                assert!(
                    f64::midpoint(top, bottom) < f64::midpoint(high, low),
                    "{signal:?}"
                );
                // Stop beyond the block.
                assert!(signal.stop < bottom || signal.stop <= signal.entry - 0.5 * atr(analysis));
            }
        }
        // Target: opposing liquidity above the entry, at least 2 R.
        assert!(signal.take_profit > signal.entry && signal.stop < signal.entry);
        assert!(signal.reward_risk >= 2.0);
        let targets_a_level = [analysis.setup(), analysis.higher()].iter().any(|tf| {
            tf.swings()
                .iter()
                .any(|s| s.side == SwingSide::High && s.level == signal.take_profit)
                || tf.dealing_range().is_some_and(|(h, _)| h == signal.take_profit)
                || tf.liquidity_pools().iter().any(|p| p.level == signal.take_profit)
        });
        assert!(targets_a_level, "{signal:?}");
    });
    let found = signals(&evaluations);
    assert!(!found.is_empty(), "funnel: {:?}", funnel(&evaluations));
    assert_eq!(checked, found.len());
    assert!(found.iter().all(|(_, s)| s.side == Side::Long));
    assert!(found.iter().all(|(_, s)| s.confluences.len() >= 4));
}

fn atr(analysis: &SymbolAnalysis) -> f64 {
    analysis.entry().indicators().latest().atr14.unwrap()
}

fn funnel(evaluations: &[Evaluation]) -> std::collections::BTreeMap<String, usize> {
    let mut map = std::collections::BTreeMap::new();
    for e in evaluations {
        let key = e
            .rejected()
            .map_or_else(|| "signal".to_owned(), |r| r.reason.key());
        *map.entry(key).or_insert(0) += 1;
    }
    map
}

#[test]
fn falling_market_is_the_exact_mirror() {
    let up = replay(&rising(), test_params(), |_, _, _| {});
    let down = replay(&mirror(&rising()), test_params(), |_, _, _| {});
    let (up, down) = (signals(&up), signals(&down));
    assert!(!down.is_empty());
    assert_eq!(up.len(), down.len());
    for ((i, long), (j, short)) in up.iter().zip(&down) {
        assert_eq!(i, j);
        assert_eq!((long.side, short.side), (Side::Long, Side::Short));
        assert!((long.entry - (400.0 - short.entry)).abs() < 1e-9);
        assert!((long.stop - (400.0 - short.stop)).abs() < 1e-9);
        assert!((long.take_profit - (400.0 - short.take_profit)).abs() < 1e-9);
        assert!(short.stop > short.entry && short.take_profit < short.entry);
    }
}

#[test]
fn setups_outside_discount_are_rejected_as_wrong_zone() {
    let evaluations = replay(&rising(), test_params(), |_, _, _| {});
    assert!(reasons(&evaluations).contains(&RejectReason::WrongZone));
    assert!(reasons(&evaluations).contains(&RejectReason::NoConfirmation));
}

#[test]
fn reward_risk_below_minimum_is_rejected_with_the_best_on_offer() {
    let base = replay(&rising(), test_params(), |_, _, _| {});
    let strict = replay(
        &rising(),
        IctParams {
            min_reward_risk: 1_000.0,
            ..test_params()
        },
        |_, _, _| {},
    );
    assert!(signals(&strict).is_empty());
    for (i, signal) in signals(&base) {
        match strict[i].rejected() {
            Some(Rejected {
                stage: Stage::Target,
                reason: RejectReason::RewardRiskTooLow { best },
            }) => assert!(best >= signal.reward_risk && best < 1_000.0),
            other => panic!("bar {i}: expected an R:R rejection, got {other:?}"),
        }
    }
}

#[test]
fn quality_rejection_names_the_weakest_dimension() {
    let base = replay(&rising(), test_params(), |_, _, _| {});
    let mut strict_params = test_params();
    strict_params.quality.threshold = 1.01;
    let strict = replay(&rising(), strict_params, |_, _, _| {});
    assert!(!signals(&base).is_empty());
    for (i, signal) in signals(&base) {
        let Some(Rejected {
            stage: Stage::Quality,
            reason: RejectReason::BelowQualityThreshold { total, weakest, .. },
        }) = strict[i].rejected()
        else {
            panic!("bar {i}: expected a quality rejection, got {:?}", strict[i]);
        };
        assert!((total - signal.quality.total).abs() < 1e-12);
        let min = signal
            .quality
            .components
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        assert_eq!(signal.quality.get(weakest), min);
    }
}

#[test]
fn feeding_a_forming_bar_or_an_unknown_interval_is_an_error() {
    let mut analysis = SymbolAnalysis::new(&AnalysisConfig::default()).unwrap();
    let mut forming = bar5(0, 1.0, 1.0, 0.0, 1.0);
    forming.closed = false;
    assert_eq!(
        analysis.on_closed_bar(Interval::M5, &forming),
        Err(AnalysisError::NotClosed(forming.open_time))
    );
    assert_eq!(
        analysis.on_closed_bar(Interval::H4, &bar5(0, 1.0, 1.0, 0.0, 1.0)),
        Err(AnalysisError::UnknownInterval(Interval::H4))
    );
    let mut config = AnalysisConfig::default();
    config.setup.interval = Interval::M5;
    assert!(matches!(
        SymbolAnalysis::new(&config),
        Err(AnalysisError::Timeframes(..))
    ));
}

/// A random walk of 5m bars from proptest's returns.
fn walk(steps: &[(i8, u8)]) -> Vec<Bar> {
    let mut price = 100.0;
    steps
        .iter()
        .enumerate()
        .map(|(i, &(step, wick))| {
            let next = (price + f64::from(step) * 0.05).max(1.0);
            let bar = bar5(i, price, next, f64::from(wick) * 0.01, 100.0 + f64::from(wick));
            price = next;
            bar
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn evaluation_is_deterministic_and_causal(
        steps in prop::collection::vec((-10i8..=10, 0u8..20), 300..700),
        cut in 0.2f64..0.9,
    ) {
        let five = walk(&steps);
        let full = replay(&five, test_params(), |_, _, _| {});
        let again = replay(&five, test_params(), |_, _, _| {});
        prop_assert_eq!(&full, &again);
        // Truncate at a whole hour so the prefix's aggregated bars are exactly those closed by then.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let t = ((five.len() as f64 * cut) as usize / 12) * 12;
        let prefix = replay(&five[..t], test_params(), |_, _, _| {});
        prop_assert_eq!(&prefix[..], &full[..t]);
    }
}

/// Pullbacks that form equal lows, then sweep them by 0.2 and reverse.
fn rising_with_sweeps() -> Vec<Bar> {
    let mut waypoints = Vec::new();
    let mut price = 100.0;
    for _ in 0..16 {
        for (delta, bars) in [
            (6.0, 48),
            (-4.0, 36),
            (1.0, 12),
            (-1.0, 12),
            (0.8, 18),
            (-1.0, 12),
            (0.2, 2),
        ] {
            price += delta;
            waypoints.push((price, bars));
        }
    }
    path(100.0, &waypoints)
}

#[test]
fn sweep_of_equal_lows_is_a_setup_with_the_stop_below_the_sweep() {
    // This test is about the sweep rule: here the entry (the break of the bounce high) sits 3+ ATRs above
    // the swept level, which the quality filter rightly scores low, so the filter is switched off.
    let mut params = test_params();
    params.quality.threshold = 0.0;
    let mut sweeps = 0;
    let evaluations = replay(&rising_with_sweeps(), params, |_, evaluation, analysis| {
        let Some(signal) = evaluation.signal() else {
            return;
        };
        assert_eq!(signal.side, Side::Long);
        for c in &signal.confluences {
            if let Confluence::LiquiditySweep { level } = *c {
                sweeps += 1;
                let setup = analysis.setup();
                let pool = setup
                    .liquidity_pools()
                    .iter()
                    .find(|p| p.level == level && p.direction == Direction::Bearish)
                    .unwrap();
                let swept_at = pool.swept_at.unwrap();
                let lowest = (swept_at..=setup.last_index().unwrap())
                    .map(|i| setup.bar(i).unwrap().low)
                    .fold(f64::INFINITY, f64::min);
                assert!(lowest < level && setup.last_bar().unwrap().close > level);
                if signal
                    .evidence
                    .iter()
                    .any(|e| e.what == EvidenceKind::LiquiditySweep)
                {
                    assert!(signal.stop < lowest, "{signal:?}");
                }
            }
        }
    });
    assert!(sweeps > 0, "funnel: {:?}", funnel(&evaluations));
}

/// `hybrid` with a model: the strategy gives the ICT evaluations unchanged; for each signal the row
/// [`model_row`] builds is the one the predictor scores in training (`score`), and [`decide`] keeps a
/// signal whose probability reaches the threshold and rejects the others at `Stage::Model` with the
/// probability.
#[test]
fn hybrid_keeps_or_rejects_ict_signals_by_the_model_probability() {
    use std::sync::Arc;

    use crate::{
        features::SCHEMA_LEN,
        ml::{
            dataset::feature_vector,
            predictor::{INPUTS, SignalPredictor, tests::card},
            trees::{Node, TreeEnsemble, sigmoid},
        },
        strategy::{
            HybridStrategy, Stage, Strategy,
            hybrid::{decide, model_row},
        },
    };

    let constant = |score: f32| {
        let ensemble = TreeEnsemble::new(INPUTS, &[vec![Node::leaf(score)]]).unwrap();
        Arc::new(SignalPredictor::new(ensemble, card()))
    };
    let (confident, doubtful) = (constant(3.0), constant(-3.0));
    let mut hybrid = HybridStrategy {
        ict: IctStrategy::new(test_params()),
    };
    let mut signals_seen = 0;
    let five = rising();
    replay(&five, test_params(), |i, evaluation, analysis| {
        let now = analysis.entry().last_bar().unwrap().close_time;
        assert_eq!(
            &hybrid.evaluate(SymbolId(0), analysis, now),
            evaluation,
            "bar {i}"
        );
        if let Evaluation::Signal(signal) = evaluation {
            signals_seen += 1;
            let mut row = [0.0_f32; INPUTS];
            assert!(model_row(analysis, signal, &mut row));
            let mut features = [0.0_f32; SCHEMA_LEN];
            assert!(feature_vector(analysis, &mut features));
            assert_eq!(doubtful.probability(&row), doubtful.score(&features, signal));
            assert_eq!(decide(confident.probability(&row), 0.5), None);
            let rejected = decide(doubtful.probability(&row), 0.5).unwrap();
            assert_eq!(
                rejected,
                crate::strategy::Rejected {
                    stage: Stage::Model,
                    reason: RejectReason::BelowModelThreshold {
                        probability: sigmoid(-3.0),
                        threshold: 0.5,
                    },
                }
            );
            assert_eq!(rejected.reason.key(), "below_model_threshold");
        }
    });
    assert!(signals_seen > 0, "the rising market gave no signal to filter");
}
