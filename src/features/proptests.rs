//! Property tests: every incremental indicator equals a plain batch reference (an O(n) loop over the whole
//! slice, written from the definitions in SPEC.md §0.3, not from the incremental code), `peek` never
//! changes a later `update`, and nothing is NaN on positive prices.
//!
//! Tolerance: 1e-9 relative to `max(|expected|, scale)`. `scale` is 0 (pure relative) for price levels,
//! the bar's close for differences of prices (MACD line, signal, histogram), 1 for 0..100 oscillators
//! (RSI, DI, DX, ADX) and the largest volume for OBV, because a value that crosses zero has no relative
//! error to speak of. Bollinger's variance is compared instead of σ: TA-Lib's `E[x²] − E[x]²` (which we
//! follow) cancels catastrophically on a flat window, where any two summation orders differ by about
//! `N·ε·E[x²]`, and a square root turns that into a visible σ; the variance error stays below
//! `1e-12·mean²`. Realised volatility is compared squared for the same reason.

use std::cmp::Ordering;

use proptest::prelude::*;

use super::{
    Atr, Bollinger, Dmi, DmiValue, Ema, EmaSeeding, Indicator, IndicatorSet, LogReturn, Macd, MacdSeeding,
    MacdValue, Obv, RealisedVolatility, Rsi, Sma, TA_LIB_EPSILON, TrueRange, Vwap, set::EMA_PERIODS,
};
use crate::domain::Bar;

const TOLERANCE: f64 = 1e-9;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

// ---------------------------------------------------------------------------------------------------------
// Random series

/// One generated bar: log step of the close, upper and lower wick as fractions, volume, hours since the
/// previous bar (1..=8, so series cross UTC midnight often and have gaps).
type BarSpec = (f64, f64, f64, f64, i64);

fn bar_spec() -> impl Strategy<Value = BarSpec> {
    (
        prop_oneof![1 => Just(0.0), 5 => -0.04..0.04_f64],
        prop_oneof![1 => Just(0.0), 3 => 0.0..0.03_f64],
        prop_oneof![1 => Just(0.0), 3 => 0.0..0.03_f64],
        prop_oneof![1 => Just(0.0), 5 => 0.0..1_000.0_f64],
        1_i64..=8,
    )
}

/// Positive-price bars, 1..=260 of them (long enough for EMA200 and ADX), starting anywhere from a
/// sub-cent coin to a 5 000-dollar one.
fn bars() -> impl Strategy<Value = Vec<Bar>> {
    (0.001..5_000.0_f64, prop::collection::vec(bar_spec(), 1..=260)).prop_map(|(start, specs)| {
        let mut close = start;
        let mut open_time = 17 * HOUR_MS;
        specs
            .into_iter()
            .map(|(step, upper_wick, lower_wick, volume, hours)| {
                let open = close;
                close = open * step.exp();
                open_time += hours * HOUR_MS;
                Bar {
                    open_time,
                    close_time: open_time + HOUR_MS - 1,
                    open,
                    high: open.max(close) * (1.0 + upper_wick),
                    low: open.min(close) * (1.0 - lower_wick),
                    close,
                    volume,
                    quote_volume: volume * close,
                    trades: 1,
                    closed: true,
                }
            })
            .collect()
    })
}

fn closes(bars: &[Bar]) -> Vec<f64> {
    bars.iter().map(|bar| bar.close).collect()
}

/// A plausible forming version of `bar`: same open time, different close, wider range, partial volume.
fn forming(bar: &Bar, shift: f64) -> Bar {
    let close = bar.close * (1.0 + shift);
    Bar {
        close,
        high: bar.high.max(close),
        low: bar.low.min(close),
        volume: bar.volume * 0.5,
        closed: false,
        ..*bar
    }
}

// ---------------------------------------------------------------------------------------------------------
// Batch references

fn ema_sma_seeded(xs: &[f64], period: usize) -> Vec<Option<f64>> {
    let mut out = vec![None; xs.len()];
    if xs.len() < period {
        return out;
    }
    let k = 2.0 / (period as f64 + 1.0);
    let mut average = xs[..period].iter().sum::<f64>() / period as f64;
    out[period - 1] = Some(average);
    for (i, &x) in xs.iter().enumerate().skip(period) {
        average = (x - average) * k + average;
        out[i] = Some(average);
    }
    out
}

fn ema_first_value(xs: &[f64], period: usize) -> Vec<Option<f64>> {
    let alpha = 2.0 / (period as f64 + 1.0);
    let mut average = xs[0];
    xs.iter()
        .map(|&x| {
            average = (1.0 - alpha) * average + alpha * x;
            Some(average)
        })
        .collect()
}

fn sma(xs: &[f64], period: usize) -> Vec<Option<f64>> {
    (0..xs.len())
        .map(|i| (i + 1 >= period).then(|| xs[i + 1 - period..=i].iter().sum::<f64>() / period as f64))
        .collect()
}

/// (mean, population variance) of each full window, two-pass.
fn mean_and_variance(xs: &[f64], period: usize) -> Vec<Option<(f64, f64)>> {
    (0..xs.len())
        .map(|i| {
            (i + 1 >= period).then(|| {
                let window = &xs[i + 1 - period..=i];
                let mean = window.iter().sum::<f64>() / period as f64;
                let variance = window.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / period as f64;
                (mean, variance)
            })
        })
        .collect()
}

fn true_ranges(bars: &[Bar]) -> Vec<Option<f64>> {
    (0..bars.len())
        .map(|i| {
            (i > 0).then(|| {
                let previous_close = bars[i - 1].close;
                bars[i].high.max(previous_close) - bars[i].low.min(previous_close)
            })
        })
        .collect()
}

fn atr(bars: &[Bar], period: usize) -> Vec<Option<f64>> {
    let ranges = true_ranges(bars);
    let mut out = vec![None; bars.len()];
    if bars.len() <= period {
        return out;
    }
    let n = period as f64;
    let mut average = ranges[1..=period].iter().flatten().sum::<f64>() / n;
    out[period] = Some(average);
    for i in period + 1..bars.len() {
        average = (average * (n - 1.0) + ranges[i].unwrap_or_default()) / n;
        out[i] = Some(average);
    }
    out
}

fn rsi(xs: &[f64], period: usize) -> Vec<Option<f64>> {
    let mut out = vec![None; xs.len()];
    if xs.len() <= period {
        return out;
    }
    let n = period as f64;
    let gain = |i: usize| (xs[i] - xs[i - 1]).max(0.0);
    let loss = |i: usize| (xs[i - 1] - xs[i]).max(0.0);
    let mut average_gain = (1..=period).map(gain).sum::<f64>() / n;
    let mut average_loss = (1..=period).map(loss).sum::<f64>() / n;
    for (i, slot) in out.iter_mut().enumerate().skip(period) {
        if i > period {
            average_gain = (average_gain * (n - 1.0) + gain(i)) / n;
            average_loss = (average_loss * (n - 1.0) + loss(i)) / n;
        }
        let total = average_gain + average_loss;
        *slot = Some(if total.abs() < TA_LIB_EPSILON {
            0.0
        } else {
            100.0 * average_gain / total
        });
    }
    out
}

fn macd(xs: &[f64], fast: usize, slow: usize, signal: usize, seeding: MacdSeeding) -> Vec<Option<MacdValue>> {
    let mut out = vec![None; xs.len()];
    if xs.len() < slow {
        return out;
    }
    let fast_offset = match seeding {
        MacdSeeding::TaLib => slow - fast,
        MacdSeeding::Natural => 0,
    };
    let fast_ema = ema_sma_seeded(&xs[fast_offset..], fast);
    let slow_ema = ema_sma_seeded(xs, slow);
    let first = slow - 1;
    let line: Vec<f64> = (first..xs.len())
        .filter_map(|i| Some(fast_ema[i - fast_offset]? - slow_ema[i]?))
        .collect();
    let signal_ema = ema_sma_seeded(&line, signal);
    for (offset, (&line, signal)) in line.iter().zip(signal_ema).enumerate() {
        if seeding == MacdSeeding::TaLib && signal.is_none() {
            continue;
        }
        out[first + offset] = Some(MacdValue {
            line,
            signal,
            histogram: signal.map(|s| line - s),
        });
    }
    out
}

fn dmi(bars: &[Bar], period: usize) -> Vec<Option<DmiValue>> {
    let n = period as f64;
    let mut out = vec![None; bars.len()];
    let (mut plus_sum, mut minus_sum, mut range_sum) = (0.0, 0.0, 0.0);
    let (mut last_dx, mut adx) = (0.0, 0.0);
    let ranges = true_ranges(bars);
    for i in 1..bars.len() {
        let up = bars[i].high - bars[i - 1].high;
        let down = bars[i - 1].low - bars[i].low;
        let plus = if up > down && up > 0.0 { up } else { 0.0 };
        let minus = if down > up && down > 0.0 { down } else { 0.0 };
        let range = ranges[i].unwrap_or_default();
        if i < period {
            plus_sum += plus;
            minus_sum += minus;
            range_sum += range;
            continue;
        }
        plus_sum = plus_sum - plus_sum / n + plus;
        minus_sum = minus_sum - minus_sum / n + minus;
        range_sum = range_sum - range_sum / n + range;
        let defined_range = range_sum.abs() >= TA_LIB_EPSILON;
        let plus_di = if defined_range {
            100.0 * plus_sum / range_sum
        } else {
            0.0
        };
        let minus_di = if defined_range {
            100.0 * minus_sum / range_sum
        } else {
            0.0
        };
        let di_sum = plus_di + minus_di;
        let dx = (defined_range && di_sum.abs() >= TA_LIB_EPSILON)
            .then(|| 100.0 * (plus_di - minus_di).abs() / di_sum);
        let adx_value = match i.cmp(&(2 * period - 1)) {
            Ordering::Less => {
                adx += dx.unwrap_or(0.0);
                None
            }
            Ordering::Equal => {
                adx = (adx + dx.unwrap_or(0.0)) / n;
                Some(adx)
            }
            Ordering::Greater => {
                if let Some(dx) = dx {
                    adx = (adx * (n - 1.0) + dx) / n;
                }
                Some(adx)
            }
        };
        last_dx = dx.unwrap_or(if i == period { 0.0 } else { last_dx });
        out[i] = Some(DmiValue {
            plus_di,
            minus_di,
            dx: last_dx,
            adx: adx_value,
        });
    }
    out
}

fn obv(bars: &[Bar]) -> Vec<Option<f64>> {
    let mut total = 0.0;
    (0..bars.len())
        .map(|i| {
            total += match i {
                0 => bars[0].volume,
                _ if bars[i].close > bars[i - 1].close => bars[i].volume,
                _ if bars[i].close < bars[i - 1].close => -bars[i].volume,
                _ => 0.0,
            };
            Some(total)
        })
        .collect()
}

fn vwap(bars: &[Bar]) -> Vec<Option<f64>> {
    let (mut price_volume, mut volume) = (0.0, 0.0);
    (0..bars.len())
        .map(|i| {
            if i == 0 || bars[i].open_time / DAY_MS != bars[i - 1].open_time / DAY_MS {
                (price_volume, volume) = (0.0, 0.0);
            }
            let bar = &bars[i];
            price_volume += (bar.high + bar.low + bar.close) / 3.0 * bar.volume;
            volume += bar.volume;
            (volume > 0.0).then(|| price_volume / volume)
        })
        .collect()
}

fn log_returns(xs: &[f64]) -> Vec<Option<f64>> {
    (0..xs.len())
        .map(|i| (i > 0).then(|| (xs[i] / xs[i - 1]).ln()))
        .collect()
}

/// Mean of the squared log returns over each full window (the square of realised volatility).
fn mean_squared_returns(xs: &[f64], window: usize) -> Vec<Option<f64>> {
    let returns = log_returns(xs);
    (0..xs.len())
        .map(|i| {
            (i >= window).then(|| {
                returns[i + 1 - window..=i]
                    .iter()
                    .flatten()
                    .map(|r| r * r)
                    .sum::<f64>()
                    / window as f64
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// Checks

fn run<I: Indicator>(mut indicator: I, inputs: &[I::Input]) -> Vec<Option<I::Output>> {
    inputs.iter().map(|&input| indicator.update(input)).collect()
}

fn check_close(
    what: &str,
    index: usize,
    actual: f64,
    expected: f64,
    scale: f64,
) -> Result<(), TestCaseError> {
    let error = (actual - expected).abs();
    prop_assert!(
        error <= TOLERANCE * expected.abs().max(scale),
        "{what}[{index}]: incremental {actual:e}, batch {expected:e} (error {error:e})"
    );
    Ok(())
}

fn check_series(
    what: &str,
    actual: &[Option<f64>],
    expected: &[Option<f64>],
    scale: f64,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(actual.len(), expected.len());
    for (index, (actual, expected)) in actual.iter().zip(expected).enumerate() {
        match (actual, expected) {
            (Some(actual), Some(expected)) => check_close(what, index, *actual, *expected, scale)?,
            (None, None) => {}
            _ => prop_assert!(
                false,
                "{what}[{index}]: incremental {actual:?}, batch {expected:?}"
            ),
        }
    }
    Ok(())
}

/// Runs `indicator` over `inputs` twice: plainly, and with a `peek` of a different forming input and of
/// the real input before every `update`. Both runs must agree, and each `peek` of the real input must equal
/// the `update` that follows.
fn check_peek_is_pure<I>(indicator: I, inputs: &[I::Input], forming: &[I::Input]) -> Result<(), TestCaseError>
where
    I: Indicator + PartialEq + std::fmt::Debug,
    I::Output: PartialEq + std::fmt::Debug,
{
    let plain = run(indicator, inputs);
    let mut peeked = indicator;
    for (index, (&input, &forming)) in inputs.iter().zip(forming).enumerate() {
        let before = peeked;
        let _ = peeked.peek(forming);
        let preview = peeked.peek(input);
        prop_assert_eq!(peeked, before, "peek changed the state at {}", index);
        let committed = peeked.update(input);
        prop_assert_eq!(preview, committed, "peek and update differ at {}", index);
        prop_assert_eq!(committed, plain[index], "peeking changed update {}", index);
    }
    Ok(())
}

fn field<T: Copy>(values: &[Option<T>], get: impl Fn(T) -> f64) -> Vec<Option<f64>> {
    values.iter().map(|value| value.map(&get)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn emas_equal_batch(bars in bars()) {
        let xs = closes(&bars);
        for period in EMA_PERIODS {
            let n = period as usize;
            let sma_seeded = run(Ema::new(period, EmaSeeding::SmaOfFirstPeriod).expect("valid parameters"), &xs);
            check_series(&format!("ema{period}"), &sma_seeded, &ema_sma_seeded(&xs, n), 0.0)?;
            let first_value = run(Ema::new(period, EmaSeeding::FirstValue).expect("valid parameters"), &xs);
            check_series(&format!("ema{period}_seedfirst"), &first_value, &ema_first_value(&xs, n), 0.0)?;
        }
    }

    #[test]
    fn sma_and_bollinger_equal_batch(bars in bars()) {
        let xs = closes(&bars);
        check_series("sma20", &run(Sma::<20>::new(), &xs), &sma(&xs, 20), 0.0)?;
        check_series("sma3", &run(Sma::<3>::new(), &xs), &sma(&xs, 3), 0.0)?;
        let bands = run(Bollinger::<20>::new(2.0), &xs);
        let reference = mean_and_variance(&xs, 20);
        prop_assert_eq!(bands.iter().position(Option::is_some), reference.iter().position(Option::is_some));
        for (index, (bands, reference)) in bands.iter().zip(&reference).enumerate() {
            if let (Some(bands), Some((mean, variance))) = (bands, reference) {
                check_close("bb_mid", index, bands.middle, *mean, 0.0)?;
                // σ = (upper − lower) / (2·2); rounding of the band edges adds ~ulp(mean)·σ to σ², far below the bound.
                let deviation = (bands.upper - bands.lower) / 4.0;
                let error = (deviation * deviation - variance).abs();
                prop_assert!(error <= 1e-12 * mean * mean, "bb variance[{}]: {} vs {}", index, deviation * deviation, variance);
            }
        }
    }

    #[test]
    fn true_range_and_atr_equal_batch(bars in bars()) {
        let scale = bars.iter().map(|bar| bar.close).fold(0.0, f64::max);
        check_series("trange", &run(TrueRange::new(), &bars), &true_ranges(&bars), 0.0)?;
        check_series("atr14", &run(Atr::new(14).expect("valid parameters"), &bars), &atr(&bars, 14), scale)?;
        check_series("atr3", &run(Atr::new(3).expect("valid parameters"), &bars), &atr(&bars, 3), scale)?;
    }

    #[test]
    fn rsi_equals_batch(bars in bars()) {
        let xs = closes(&bars);
        check_series("rsi14", &run(Rsi::new(14).expect("valid parameters"), &xs), &rsi(&xs, 14), 1.0)?;
        check_series("rsi2", &run(Rsi::new(2).expect("valid parameters"), &xs), &rsi(&xs, 2), 1.0)?;
    }

    #[test]
    fn macd_equals_batch(bars in bars()) {
        let xs = closes(&bars);
        let scale = xs.iter().copied().fold(0.0, f64::max);
        for seeding in [MacdSeeding::TaLib, MacdSeeding::Natural] {
            let actual = run(Macd::new(12, 26, 9, seeding).expect("valid parameters"), &xs);
            let expected = macd(&xs, 12, 26, 9, seeding);
            check_series("macd line", &field(&actual, |v| v.line), &field(&expected, |v| v.line), scale)?;
            let signal = |values: &[Option<MacdValue>]| values.iter().map(|v| v.and_then(|v| v.signal)).collect::<Vec<_>>();
            let histogram = |values: &[Option<MacdValue>]| values.iter().map(|v| v.and_then(|v| v.histogram)).collect::<Vec<_>>();
            check_series("macd signal", &signal(&actual), &signal(&expected), scale)?;
            check_series("macd histogram", &histogram(&actual), &histogram(&expected), scale)?;
        }
    }

    #[test]
    fn dmi_equals_batch(bars in bars()) {
        for period in [14_u32, 3] {
            let actual = run(Dmi::new(period).expect("valid parameters"), &bars);
            let expected = dmi(&bars, period as usize);
            check_series("plus_di", &field(&actual, |v| v.plus_di), &field(&expected, |v| v.plus_di), 1.0)?;
            check_series("minus_di", &field(&actual, |v| v.minus_di), &field(&expected, |v| v.minus_di), 1.0)?;
            check_series("dx", &field(&actual, |v| v.dx), &field(&expected, |v| v.dx), 1.0)?;
            let adx = |values: &[Option<DmiValue>]| values.iter().map(|v| v.and_then(|v| v.adx)).collect::<Vec<_>>();
            check_series("adx", &adx(&actual), &adx(&expected), 1.0)?;
        }
    }

    #[test]
    fn obv_vwap_and_returns_equal_batch(bars in bars()) {
        let xs = closes(&bars);
        let largest_volume = bars.iter().map(|bar| bar.volume).fold(1.0, f64::max);
        check_series("obv", &run(Obv::new(), &bars), &obv(&bars), largest_volume)?;
        check_series("vwap", &run(Vwap::new(), &bars), &vwap(&bars), 0.0)?;
        check_series("log_return", &run(LogReturn::new(), &xs), &log_returns(&xs), 1e-12)?;
        let squared: Vec<_> = run(RealisedVolatility::<20>::new(), &xs).iter().map(|v| v.map(|v| v * v)).collect();
        check_series("realised_volatility²", &squared, &mean_squared_returns(&xs, 20), 1e-15)?;
    }

    #[test]
    fn peek_never_changes_later_updates(bars in bars(), shift in -0.05..0.05_f64) {
        let xs = closes(&bars);
        let forming_bars: Vec<Bar> = bars.iter().map(|bar| forming(bar, shift)).collect();
        let forming_closes = closes(&forming_bars);
        check_peek_is_pure(Ema::new(9, EmaSeeding::SmaOfFirstPeriod).expect("valid parameters"), &xs, &forming_closes)?;
        check_peek_is_pure(Ema::new(21, EmaSeeding::FirstValue).expect("valid parameters"), &xs, &forming_closes)?;
        check_peek_is_pure(Sma::<20>::new(), &xs, &forming_closes)?;
        check_peek_is_pure(Bollinger::<20>::new(2.0), &xs, &forming_closes)?;
        check_peek_is_pure(TrueRange::new(), &bars, &forming_bars)?;
        check_peek_is_pure(Atr::new(14).expect("valid parameters"), &bars, &forming_bars)?;
        check_peek_is_pure(Rsi::new(14).expect("valid parameters"), &xs, &forming_closes)?;
        check_peek_is_pure(Macd::new(12, 26, 9, MacdSeeding::TaLib).expect("valid parameters"), &xs, &forming_closes)?;
        check_peek_is_pure(Macd::new(12, 26, 9, MacdSeeding::Natural).expect("valid parameters"), &xs, &forming_closes)?;
        check_peek_is_pure(Dmi::new(14).expect("valid parameters"), &bars, &forming_bars)?;
        check_peek_is_pure(Obv::new(), &bars, &forming_bars)?;
        check_peek_is_pure(Vwap::new(), &bars, &forming_bars)?;
        check_peek_is_pure(LogReturn::new(), &xs, &forming_closes)?;
        check_peek_is_pure(RealisedVolatility::<20>::new(), &xs, &forming_closes)?;

        let mut plain = IndicatorSet::default();
        let mut peeked = IndicatorSet::default();
        for (bar, forming) in bars.iter().zip(&forming_bars) {
            let before = peeked.clone();
            peeked.peek(forming).expect("bars are in order, closed and finite");
            let preview = peeked.peek(bar).expect("bars are in order, closed and finite");
            prop_assert_eq!(&peeked, &before);
            let committed = *peeked.update(bar).expect("bars are in order, closed and finite");
            prop_assert_eq!(preview, committed);
            prop_assert_eq!(committed, *plain.update(bar).expect("bars are in order, closed and finite"));
        }
    }

    #[test]
    fn set_matches_its_indicators_and_is_nan_free(bars in bars()) {
        let xs = closes(&bars);
        let mut set = IndicatorSet::default();
        let values: Vec<_> = bars.iter().map(|bar| *set.update(bar).expect("bars are in order, closed and finite")).collect();
        let emas: Vec<_> = values.iter().map(super::IndicatorValues::emas).collect();
        for (slot, period) in EMA_PERIODS.into_iter().enumerate() {
            let column: Vec<_> = emas.iter().map(|emas| emas[slot]).collect();
            prop_assert_eq!(column, run(Ema::new(period, EmaSeeding::SmaOfFirstPeriod).expect("valid parameters"), &xs));
        }
        prop_assert_eq!(values.iter().map(|v| v.sma20).collect::<Vec<_>>(), run(Sma::<20>::new(), &xs));
        prop_assert_eq!(values.iter().map(|v| v.rsi14).collect::<Vec<_>>(), run(Rsi::new(14).expect("valid parameters"), &xs));
        prop_assert_eq!(values.iter().map(|v| v.dmi).collect::<Vec<_>>(), run(Dmi::new(14).expect("valid parameters"), &bars));
        prop_assert_eq!(values.iter().map(|v| v.vwap).collect::<Vec<_>>(), run(Vwap::new(), &bars));
        for (index, v) in values.iter().enumerate() {
            let mut all = vec![
                v.sma20, v.true_range, v.atr14, v.rsi14, v.obv, v.vwap, v.log_return, v.realised_volatility,
            ];
            all.extend(v.emas());
            if let Some(macd) = v.macd {
                all.extend([Some(macd.line), macd.signal, macd.histogram]);
            }
            if let Some(bands) = v.bollinger {
                all.extend([Some(bands.upper), Some(bands.middle), Some(bands.lower)]);
            }
            if let Some(dmi) = v.dmi {
                all.extend([Some(dmi.plus_di), Some(dmi.minus_di), Some(dmi.dx), dmi.adx]);
            }
            prop_assert!(all.iter().flatten().all(|x| x.is_finite()), "non-finite value at {}: {:?}", index, v);
        }
    }
}
