//! The feature vector: `FEATURE_DIMENSION` (default 32) `f32` values per symbol, built from the latest
//! [`IndicatorValues`] and closed [`Bar`] of the three timeframes, in the order of the const table
//! [`SCHEMA`].
//!
//! Why this module exists: models are trained on one layout and must be fed exactly that layout later, so
//! the layout is data (name, timeframe, source, normalisation per entry), documented once here, and
//! summarised by [`schema_hash`], which a model card records and the engine compares before it scores.
//! Every entry is normalised to O(1) and is always finite: the raw value is shifted, scaled and clamped,
//! and an indicator still warming up (or a raw value that is not finite, e.g. a zero close) gives `0.0`,
//! the neutral value of every entry (all entries are centred so that 0 means "nothing to say").
//!
//! Raw values, with `c` the bar's close and ATR the 14-bar Wilder ATR of the same timeframe:
//!
//! | source | raw | normalisation |
//! |---|---|---|
//! | `log_return` | `ln(c/c₋₁)` | ×100, clamp ±5 |
//! | `realised_vol` | RMS of the last 20 log returns | ×100, clamp 0..5 |
//! | `rsi` | RSI(14) | −50, ÷50, clamp ±1 |
//! | `atr_pct` | ATR/c | ×100, clamp 0..5 |
//! | `macd_hist` | MACD(12,26,9) histogram / c | ×1000, clamp ±5 |
//! | `bb_pct_b` | (c − lower)/(upper − lower), 0.5 on zero width | −0.5, clamp ±1.5 |
//! | `bb_width` | (upper − lower)/middle | ×10, clamp 0..5 |
//! | `adx` | ADX(14) | ÷100, clamp 0..1 |
//! | `di_spread` | (+DI − −DI) | ÷100, clamp ±1 |
//! | `ema21_dist` | (c − EMA21)/ATR | clamp ±5 |
//! | `vwap_dist` | (c − UTC-day VWAP)/ATR | clamp ±5 |
//! | `trend_alignment` | mean over the three timeframes of sign(c − EMA50) (0 while warming up) | clamp ±1 |
//!
//! The ten per-timeframe entries repeat for timeframes 0, 1, 2 (fastest first: 5m, 15m, 1h by default),
//! then come VWAP distance on the fastest timeframe (a UTC-day VWAP says little about hourly bars) and the
//! cross-timeframe trend alignment: 10 × 3 + 2 = 32.
//!
//! A `FEATURE_DIMENSION` other than 32 is accepted (the configuration allows it, as the original system
//! did): a smaller dimension **truncates** the schema to its first `dim` entries, a larger one
//! **zero-pads** the tail. The dimension is part of [`schema_hash`], so a model trained at one dimension is
//! never fed another. Building writes into a caller-provided slice and allocates nothing.

use super::IndicatorValues;
use crate::domain::Bar;

/// Number of entries in [`SCHEMA`]; the default `FEATURE_DIMENSION`.
pub const SCHEMA_LEN: usize = 32;

/// Number of timeframes a vector is built from.
pub const TIMEFRAMES: usize = 3;

/// Which timeframe an entry reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeatureTimeframe {
    /// One timeframe, by index: 0 is the fastest.
    Single(u8),
    /// All three timeframes together.
    Cross,
}

/// How an entry's raw value is computed (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeatureSource {
    LogReturn,
    RealisedVolatility,
    Rsi,
    AtrOverClose,
    MacdHistogramOverClose,
    BollingerPercentB,
    BollingerWidth,
    Adx,
    DiSpread,
    Ema21DistanceInAtr,
    VwapDistanceInAtr,
    TrendAlignment,
}

impl FeatureSource {
    /// Stable name, part of [`schema_hash`].
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::LogReturn => "log_return",
            Self::RealisedVolatility => "realised_vol",
            Self::Rsi => "rsi",
            Self::AtrOverClose => "atr_pct",
            Self::MacdHistogramOverClose => "macd_hist",
            Self::BollingerPercentB => "bb_pct_b",
            Self::BollingerWidth => "bb_width",
            Self::Adx => "adx",
            Self::DiSpread => "di_spread",
            Self::Ema21DistanceInAtr => "ema21_dist",
            Self::VwapDistanceInAtr => "vwap_dist",
            Self::TrendAlignment => "trend_alignment",
        }
    }
}

/// `clamp((raw + offset) · scale, min, max)`; a missing or non-finite raw value gives 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalisation {
    pub offset: f64,
    pub scale: f64,
    pub min: f64,
    pub max: f64,
}

impl Normalisation {
    const fn scaled(scale: f64, min: f64, max: f64) -> Self {
        Self {
            offset: 0.0,
            scale,
            min,
            max,
        }
    }

    /// The normalised value of `raw`, always finite.
    pub fn apply(&self, raw: Option<f64>) -> f32 {
        match raw {
            Some(raw) if raw.is_finite() => {
                ((raw + self.offset) * self.scale).clamp(self.min, self.max) as f32
            }
            _ => 0.0,
        }
    }
}

/// One entry of the feature vector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeatureSpec {
    /// Stable name, `tf<i>.<source>` or `x.<source>`.
    pub name: &'static str,
    pub timeframe: FeatureTimeframe,
    pub source: FeatureSource,
    pub normalisation: Normalisation,
}

const fn spec(
    name: &'static str,
    timeframe: FeatureTimeframe,
    source: FeatureSource,
    normalisation: Normalisation,
) -> FeatureSpec {
    FeatureSpec {
        name,
        timeframe,
        source,
        normalisation,
    }
}

const LOG_RETURN: Normalisation = Normalisation::scaled(100.0, -5.0, 5.0);
const REALISED_VOL: Normalisation = Normalisation::scaled(100.0, 0.0, 5.0);
const RSI: Normalisation = Normalisation {
    offset: -50.0,
    scale: 1.0 / 50.0,
    min: -1.0,
    max: 1.0,
};
const ATR_PCT: Normalisation = Normalisation::scaled(100.0, 0.0, 5.0);
const MACD_HIST: Normalisation = Normalisation::scaled(1000.0, -5.0, 5.0);
const PCT_B: Normalisation = Normalisation {
    offset: -0.5,
    scale: 1.0,
    min: -1.5,
    max: 1.5,
};
const BB_WIDTH: Normalisation = Normalisation::scaled(10.0, 0.0, 5.0);
const ADX: Normalisation = Normalisation::scaled(0.01, 0.0, 1.0);
const DI_SPREAD: Normalisation = Normalisation::scaled(0.01, -1.0, 1.0);
const IN_ATR: Normalisation = Normalisation::scaled(1.0, -5.0, 5.0);
const UNIT: Normalisation = Normalisation::scaled(1.0, -1.0, 1.0);

macro_rules! timeframe_block {
    ($tf:literal, $prefix:literal) => {
        [
            spec(
                concat!($prefix, ".log_return"),
                FeatureTimeframe::Single($tf),
                FeatureSource::LogReturn,
                LOG_RETURN,
            ),
            spec(
                concat!($prefix, ".realised_vol"),
                FeatureTimeframe::Single($tf),
                FeatureSource::RealisedVolatility,
                REALISED_VOL,
            ),
            spec(
                concat!($prefix, ".rsi"),
                FeatureTimeframe::Single($tf),
                FeatureSource::Rsi,
                RSI,
            ),
            spec(
                concat!($prefix, ".atr_pct"),
                FeatureTimeframe::Single($tf),
                FeatureSource::AtrOverClose,
                ATR_PCT,
            ),
            spec(
                concat!($prefix, ".macd_hist"),
                FeatureTimeframe::Single($tf),
                FeatureSource::MacdHistogramOverClose,
                MACD_HIST,
            ),
            spec(
                concat!($prefix, ".bb_pct_b"),
                FeatureTimeframe::Single($tf),
                FeatureSource::BollingerPercentB,
                PCT_B,
            ),
            spec(
                concat!($prefix, ".bb_width"),
                FeatureTimeframe::Single($tf),
                FeatureSource::BollingerWidth,
                BB_WIDTH,
            ),
            spec(
                concat!($prefix, ".adx"),
                FeatureTimeframe::Single($tf),
                FeatureSource::Adx,
                ADX,
            ),
            spec(
                concat!($prefix, ".di_spread"),
                FeatureTimeframe::Single($tf),
                FeatureSource::DiSpread,
                DI_SPREAD,
            ),
            spec(
                concat!($prefix, ".ema21_dist"),
                FeatureTimeframe::Single($tf),
                FeatureSource::Ema21DistanceInAtr,
                IN_ATR,
            ),
        ]
    };
}

const TF0: [FeatureSpec; 10] = timeframe_block!(0, "tf0");
const TF1: [FeatureSpec; 10] = timeframe_block!(1, "tf1");
const TF2: [FeatureSpec; 10] = timeframe_block!(2, "tf2");

/// The feature vector's layout, in order.
pub const SCHEMA: [FeatureSpec; SCHEMA_LEN] = {
    let mut schema = [spec("", FeatureTimeframe::Cross, FeatureSource::TrendAlignment, UNIT); SCHEMA_LEN];
    let mut i = 0;
    while i < 10 {
        schema[i] = TF0[i];
        schema[10 + i] = TF1[i];
        schema[20 + i] = TF2[i];
        i += 1;
    }
    schema[30] = spec(
        "tf0.vwap_dist",
        FeatureTimeframe::Single(0),
        FeatureSource::VwapDistanceInAtr,
        IN_ATR,
    );
    schema[31] = spec(
        "x.trend_alignment",
        FeatureTimeframe::Cross,
        FeatureSource::TrendAlignment,
        UNIT,
    );
    schema
};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// FNV-1a (64-bit) over the layout a vector of `dimension` values follows: the dimension, then for each
/// schema entry kept (the first `min(dimension, 32)`) its name, timeframe, source name and the bit
/// patterns of its four normalisation constants, each field followed by a separator byte. Stable across
/// builds and platforms (little-endian encodings); any change to the table changes it.
pub fn schema_hash(dimension: usize) -> u64 {
    let mut hash = fnv1a(FNV_OFFSET, &(dimension as u64).to_le_bytes());
    for spec in SCHEMA.iter().take(dimension) {
        hash = fnv1a(hash, spec.name.as_bytes());
        hash = fnv1a(hash, &[0]);
        let timeframe = match spec.timeframe {
            FeatureTimeframe::Single(index) => index,
            FeatureTimeframe::Cross => u8::MAX,
        };
        hash = fnv1a(hash, &[timeframe, 0]);
        hash = fnv1a(hash, spec.source.as_str().as_bytes());
        hash = fnv1a(hash, &[0]);
        let norm = spec.normalisation;
        for constant in [norm.offset, norm.scale, norm.min, norm.max] {
            hash = fnv1a(hash, &constant.to_bits().to_le_bytes());
        }
    }
    hash
}

/// The latest state of one timeframe: its indicator values and the closed bar they describe.
#[derive(Debug, Clone, Copy)]
pub struct TimeframeInput<'a> {
    pub values: &'a IndicatorValues,
    pub bar: &'a Bar,
}

/// Builds feature vectors; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureVector;

impl FeatureVector {
    /// Writes the vector for `inputs` (fastest timeframe first) into `out`. `out.len()` is the feature
    /// dimension: entries past the schema are set to 0, schema entries past `out.len()` are dropped.
    pub fn build(inputs: &[TimeframeInput<'_>; TIMEFRAMES], out: &mut [f32]) {
        for (slot, spec) in out.iter_mut().zip(SCHEMA.iter()) {
            *slot = spec.normalisation.apply(raw(spec, inputs));
        }
        for slot in out.iter_mut().skip(SCHEMA_LEN) {
            *slot = 0.0;
        }
    }
}

fn in_atr(level: Option<f64>, input: &TimeframeInput<'_>) -> Option<f64> {
    Some((input.bar.close - level?) / input.values.atr14?)
}

fn raw(spec: &FeatureSpec, inputs: &[TimeframeInput<'_>; TIMEFRAMES]) -> Option<f64> {
    let input = match spec.timeframe {
        FeatureTimeframe::Single(index) => inputs.get(usize::from(index))?,
        FeatureTimeframe::Cross => return Some(trend_alignment(inputs)),
    };
    let values = input.values;
    let close = input.bar.close;
    match spec.source {
        FeatureSource::LogReturn => values.log_return,
        FeatureSource::RealisedVolatility => values.realised_volatility,
        FeatureSource::Rsi => values.rsi14,
        FeatureSource::AtrOverClose => Some(values.atr14? / close),
        FeatureSource::MacdHistogramOverClose => Some(values.macd?.histogram? / close),
        FeatureSource::BollingerPercentB => {
            let bands = values.bollinger?;
            let width = bands.upper - bands.lower;
            Some(if width > 0.0 {
                (close - bands.lower) / width
            } else {
                0.5
            })
        }
        FeatureSource::BollingerWidth => {
            let bands = values.bollinger?;
            Some((bands.upper - bands.lower) / bands.middle)
        }
        FeatureSource::Adx => values.dmi?.adx,
        FeatureSource::DiSpread => values.dmi.map(|dmi| dmi.plus_di - dmi.minus_di),
        FeatureSource::Ema21DistanceInAtr => in_atr(values.ema21, input),
        FeatureSource::VwapDistanceInAtr => in_atr(values.vwap, input),
        FeatureSource::TrendAlignment => Some(trend_alignment(inputs)),
    }
}

fn trend_alignment(inputs: &[TimeframeInput<'_>; TIMEFRAMES]) -> f64 {
    let sum: f64 = inputs
        .iter()
        .map(|input| match input.values.ema50 {
            Some(ema) if input.bar.close > ema => 1.0,
            Some(ema) if input.bar.close < ema => -1.0,
            _ => 0.0,
        })
        .sum();
    sum / TIMEFRAMES as f64
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::{FeatureVector, SCHEMA, SCHEMA_LEN, TimeframeInput, schema_hash};
    use crate::{
        domain::Bar,
        features::{IndicatorSet, IndicatorValues},
    };

    #[test]
    fn schema_has_32_unique_names_and_a_pinned_hash() {
        assert_eq!(SCHEMA.len(), SCHEMA_LEN);
        let names: HashSet<_> = SCHEMA.iter().map(|spec| spec.name).collect();
        assert_eq!(names.len(), SCHEMA_LEN);
        assert!(SCHEMA.iter().all(|spec| !spec.name.is_empty()));
        // Pinned: a change here means the vector layout changed and every model must be retrained. The value
        // was also re-derived by an independent Python FNV-1a over the table written out by hand.
        assert_eq!(schema_hash(SCHEMA_LEN), PINNED_HASH);
        assert_ne!(schema_hash(16), schema_hash(SCHEMA_LEN));
        assert_ne!(schema_hash(48), schema_hash(SCHEMA_LEN));
    }

    const PINNED_HASH: u64 = 0xd540_f8da_cc79_503d;

    fn bar(index: i64, close: f64, volume: f64) -> Bar {
        Bar {
            open_time: index * 300_000,
            close_time: index * 300_000 + 299_999,
            open: close,
            high: close * 1.001,
            low: close * 0.999,
            close,
            volume,
            quote_volume: volume * close,
            trades: 1,
            closed: true,
        }
    }

    #[test]
    fn cold_inputs_give_zeros_and_padding_and_truncation_follow_the_schema() {
        let values = IndicatorValues::default();
        let bar = bar(0, 100.0, 1.0);
        let input = TimeframeInput {
            values: &values,
            bar: &bar,
        };
        let mut wide = [f32::NAN; 48];
        FeatureVector::build(&[input; 3], &mut wide);
        assert!(wide.iter().all(|value| *value == 0.0));

        let mut set = IndicatorSet::default();
        let mut last = bar;
        for index in 0..300 {
            last = self::bar(index, 100.0 + (index % 13) as f64, 5.0 + (index % 3) as f64);
            set.update(&last).expect("bars are in order, closed and finite");
        }
        let input = TimeframeInput {
            values: set.latest(),
            bar: &last,
        };
        let mut full = [0.0_f32; 32];
        FeatureVector::build(&[input; 3], &mut full);
        assert!(full.iter().filter(|value| **value != 0.0).count() > 20);
        let mut short = [0.0_f32; 8];
        FeatureVector::build(&[input; 3], &mut short);
        assert_eq!(short[..], full[..8]);
        let mut wide = [f32::NAN; 40];
        FeatureVector::build(&[input; 3], &mut wide);
        assert_eq!(wide[..32], full[..]);
        assert!(wide[32..].iter().all(|value| *value == 0.0));
    }

    fn random_bars() -> impl Strategy<Value = Vec<(f64, f64, f64)>> {
        prop::collection::vec(
            (
                prop_oneof![1 => Just(0.0), 4 => -0.2..0.2_f64],
                0.0..0.1_f64,
                prop_oneof![1 => Just(0.0), 4 => 0.0..1e6_f64],
            ),
            1..260,
        )
    }

    proptest! {
        #[test]
        fn vector_is_finite_and_bounded_on_random_bars(
            start in 1e-6..1e6_f64,
            steps in [random_bars(), random_bars(), random_bars()],
        ) {
            let mut sets = [IndicatorSet::default(), IndicatorSet::default(), IndicatorSet::default()];
            let mut lasts = [bar(0, start, 0.0); 3];
            for ((set, last), steps) in sets.iter_mut().zip(lasts.iter_mut()).zip(steps.iter()) {
                let mut close = start;
                for (index, (step, wick, volume)) in steps.iter().enumerate() {
                    let open = close;
                    close *= step.exp();
                    let mut next = bar(index as i64, close, *volume);
                    next.open = open;
                    next.high = open.max(close) * (1.0 + wick);
                    next.low = open.min(close) * (1.0 - wick);
                    set.update(&next).expect("bars are in order, closed and finite");
                    *last = next;
                }
            }
            let inputs = [0, 1, 2].map(|i| TimeframeInput { values: sets[i].latest(), bar: &lasts[i] });
            let mut out = [f32::NAN; SCHEMA_LEN];
            FeatureVector::build(&inputs, &mut out);
            for (value, spec) in out.iter().zip(SCHEMA.iter()) {
                prop_assert!(value.is_finite(), "{} is {}", spec.name, value);
                prop_assert!(
                    f64::from(*value) >= spec.normalisation.min && f64::from(*value) <= spec.normalisation.max,
                    "{} = {} outside its clamp", spec.name, value
                );
            }
        }
    }
}
