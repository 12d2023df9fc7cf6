//! Every indicator of one symbol × timeframe, updated from one [`Bar`], with the latest values as a plain
//! struct.
//!
//! The engine holds one set per symbol × timeframe (600 by default), so the set is a single fixed-size
//! value with no heap pointers: its indicators are `Copy` state machines, the two 20-bar windows are
//! inline arrays, and a forming bar is previewed by running the same update on a clone (a memcpy of the
//! set), which cannot disturb the committed state. Parameters are the fixed ones (EMA 9/12/21/26/
//! 50/200, SMA and Bollinger 20 × 2σ, ATR/RSI/DMI 14, MACD 12/26/9 TA-Lib style, realised volatility over
//! 20 bars); they are compile-time constants, so constructing a set cannot fail.
//!
//! The set guards the invariants the indicators assume: bars arrive in strictly increasing open time, are
//! closed when committed, and carry finite prices and volume. A bar that breaks one is refused with a
//! [`FeatureError`] and leaves the set untouched.

use super::{
    Atr, Bollinger, BollingerBands, Dmi, DmiValue, Ema, EmaSeeding, FeatureError, Indicator, Macd,
    MacdSeeding, MacdValue, Obv, RealisedVolatility, Rsi, Vwap,
};
use crate::domain::{Bar, TimestampMs};

/// Periods of the set's EMAs, in the order of [`IndicatorValues`]' `ema*` fields.
pub const EMA_PERIODS: [u32; 6] = [9, 12, 21, 26, 50, 200];

/// Bars in the set's realised-volatility window.
pub const REALISED_VOLATILITY_WINDOW: usize = 20;

const BOLLINGER_WINDOW: usize = 20;
const BOLLINGER_WIDTH: f64 = 2.0;
const WILDER_PERIOD: u32 = 14;

const fn ema(period: u32, seeding: EmaSeeding) -> Ema {
    match Ema::new(period, seeding) {
        Ok(ema) => ema,
        Err(_) => panic!("EMA_PERIODS holds positive periods"),
    }
}

const fn emas(seeding: EmaSeeding) -> [Ema; 6] {
    [
        ema(EMA_PERIODS[0], seeding),
        ema(EMA_PERIODS[1], seeding),
        ema(EMA_PERIODS[2], seeding),
        ema(EMA_PERIODS[3], seeding),
        ema(EMA_PERIODS[4], seeding),
        ema(EMA_PERIODS[5], seeding),
    ]
}

// Evaluated at compile time: an invalid constant is a build error, never a runtime panic.
const SMA_SEEDED_EMAS: [Ema; 6] = emas(EmaSeeding::SmaOfFirstPeriod);
const FIRST_VALUE_EMAS: [Ema; 6] = emas(EmaSeeding::FirstValue);
const ATR: Atr = match Atr::new(WILDER_PERIOD) {
    Ok(atr) => atr,
    Err(_) => panic!("14 is a valid ATR period"),
};
const RSI: Rsi = match Rsi::new(WILDER_PERIOD) {
    Ok(rsi) => rsi,
    Err(_) => panic!("14 is a valid RSI period"),
};
const DMI: Dmi = match Dmi::new(WILDER_PERIOD) {
    Ok(dmi) => dmi,
    Err(_) => panic!("14 is a valid DMI period"),
};
const MACD: Macd = match Macd::new(12, 26, 9, MacdSeeding::TaLib) {
    Ok(macd) => macd,
    Err(_) => panic!("12/26/9 are valid MACD periods"),
};

/// The latest value of every indicator of a set; `None` while that indicator warms up.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct IndicatorValues {
    /// Open time of the bar these values describe (`None` before the first bar).
    pub open_time: Option<TimestampMs>,
    pub ema9: Option<f64>,
    pub ema12: Option<f64>,
    pub ema21: Option<f64>,
    pub ema26: Option<f64>,
    pub ema50: Option<f64>,
    pub ema200: Option<f64>,
    pub sma20: Option<f64>,
    pub true_range: Option<f64>,
    pub atr14: Option<f64>,
    pub rsi14: Option<f64>,
    /// TA-Lib MACD(12, 26, 9): line, signal and histogram together from bar 33.
    pub macd: Option<MacdValue>,
    /// 20 bars, 2 population σ.
    pub bollinger: Option<BollingerBands>,
    /// +DI, −DI, DX from bar 14; ADX from bar 27.
    pub dmi: Option<DmiValue>,
    pub obv: Option<f64>,
    /// Anchored to the UTC day of the bar's open time.
    pub vwap: Option<f64>,
    pub log_return: Option<f64>,
    /// Root mean square of the last 20 log returns, per bar (not annualised).
    pub realised_volatility: Option<f64>,
}

impl IndicatorValues {
    /// The EMAs in the order of [`EMA_PERIODS`].
    pub const fn emas(&self) -> [Option<f64>; 6] {
        [
            self.ema9,
            self.ema12,
            self.ema21,
            self.ema26,
            self.ema50,
            self.ema200,
        ]
    }
}

/// All indicators of one symbol × timeframe.
#[derive(Debug, Clone, PartialEq)]
pub struct IndicatorSet {
    emas: [Ema; 6],
    bollinger: Bollinger<BOLLINGER_WINDOW>,
    atr: Atr,
    rsi: Rsi,
    macd: Macd,
    dmi: Dmi,
    obv: Obv,
    vwap: Vwap,
    realised_volatility: RealisedVolatility<REALISED_VOLATILITY_WINDOW>,
    latest: IndicatorValues,
}

impl Default for IndicatorSet {
    fn default() -> Self {
        Self::new(EmaSeeding::SmaOfFirstPeriod)
    }
}

impl IndicatorSet {
    /// A fresh set whose EMAs use `ema_seeding` (MACD always follows TA-Lib).
    pub const fn new(ema_seeding: EmaSeeding) -> Self {
        Self {
            emas: match ema_seeding {
                EmaSeeding::SmaOfFirstPeriod => SMA_SEEDED_EMAS,
                EmaSeeding::FirstValue => FIRST_VALUE_EMAS,
            },
            bollinger: Bollinger::new(BOLLINGER_WIDTH),
            atr: ATR,
            rsi: RSI,
            macd: MACD,
            dmi: DMI,
            obv: Obv::new(),
            vwap: Vwap::new(),
            realised_volatility: RealisedVolatility::new(),
            latest: IndicatorValues {
                open_time: None,
                ema9: None,
                ema12: None,
                ema21: None,
                ema26: None,
                ema50: None,
                ema200: None,
                sma20: None,
                true_range: None,
                atr14: None,
                rsi14: None,
                macd: None,
                bollinger: None,
                dmi: None,
                obv: None,
                vwap: None,
                log_return: None,
                realised_volatility: None,
            },
        }
    }

    /// Values after the last committed bar.
    pub const fn latest(&self) -> &IndicatorValues {
        &self.latest
    }

    /// Commits a closed bar and returns the values after it.
    pub fn update(&mut self, bar: &Bar) -> Result<&IndicatorValues, FeatureError> {
        if !bar.closed {
            return Err(FeatureError::BarNotClosed {
                open_time: bar.open_time,
            });
        }
        self.check(bar)?;
        self.apply(bar);
        Ok(&self.latest)
    }

    /// The values as if `bar` (normally the forming one) closed now. The set is not changed.
    pub fn peek(&self, bar: &Bar) -> Result<IndicatorValues, FeatureError> {
        self.check(bar)?;
        let mut preview = self.clone();
        preview.apply(bar);
        Ok(preview.latest)
    }

    fn check(&self, bar: &Bar) -> Result<(), FeatureError> {
        let finite = [bar.open, bar.high, bar.low, bar.close, bar.volume]
            .iter()
            .all(|value| value.is_finite());
        if !finite {
            return Err(FeatureError::NonFiniteBar {
                open_time: bar.open_time,
            });
        }
        match self.latest.open_time {
            Some(last_open_time) if bar.open_time <= last_open_time => Err(FeatureError::BarOutOfOrder {
                open_time: bar.open_time,
                last_open_time,
            }),
            _ => Ok(()),
        }
    }

    fn apply(&mut self, bar: &Bar) {
        let close = bar.close;
        let [ema9, ema12, ema21, ema26, ema50, ema200] = self.emas.each_mut().map(|ema| ema.update(close));
        let bollinger = self.bollinger.update(close);
        let atr14 = self.atr.update(*bar);
        let realised_volatility = self.realised_volatility.update(close);
        self.latest = IndicatorValues {
            open_time: Some(bar.open_time),
            ema9,
            ema12,
            ema21,
            ema26,
            ema50,
            ema200,
            sma20: bollinger.map(|bands| bands.middle),
            true_range: self.atr.last_true_range(),
            atr14,
            rsi14: self.rsi.update(close),
            macd: self.macd.update(close),
            bollinger,
            dmi: self.dmi.update(*bar),
            obv: self.obv.update(*bar),
            vwap: self.vwap.update(*bar),
            log_return: self.realised_volatility.last_log_return(),
            realised_volatility,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::IndicatorSet;
    use crate::{domain::Bar, features::FeatureError};

    fn bar(index: i64, close: f64) -> Bar {
        Bar {
            open_time: index * 900_000,
            close_time: index * 900_000 + 899_999,
            open: close,
            high: close + 1.0,
            low: close - 1.0,
            close,
            volume: 10.0,
            quote_volume: 10.0 * close,
            trades: 3,
            closed: true,
        }
    }

    #[test]
    fn warm_up_order_of_the_set() {
        let mut set = IndicatorSet::default();
        let first = *set
            .update(&bar(0, 100.0))
            .expect("bars are in order, closed and finite");
        assert_eq!(first.obv, Some(10.0));
        assert_eq!(first.vwap, Some(100.0));
        assert_eq!(first.ema9, None);
        assert_eq!(first.true_range, None);
        for index in 1..33 {
            set.update(&bar(index, 100.0 + (index % 5) as f64))
                .expect("bars are in order, closed and finite");
        }
        let values = *set.latest();
        assert!(values.ema26.is_some() && values.atr14.is_some() && values.dmi.is_some());
        assert_eq!(values.macd, None);
        assert_eq!(values.ema50, None);
        let values = *set
            .update(&bar(33, 101.0))
            .expect("bars are in order, closed and finite");
        assert!(values.macd.is_some_and(|macd| macd.signal.is_some()));
    }

    #[test]
    fn refuses_bars_out_of_order_forming_or_non_finite_and_stays_unchanged() {
        let mut set = IndicatorSet::default();
        set.update(&bar(5, 100.0))
            .expect("bars are in order, closed and finite");
        let before = set.clone();
        assert_eq!(
            set.update(&bar(5, 101.0)),
            Err(FeatureError::BarOutOfOrder {
                open_time: 4_500_000,
                last_open_time: 4_500_000
            })
        );
        assert!(matches!(
            set.peek(&bar(4, 101.0)),
            Err(FeatureError::BarOutOfOrder { .. })
        ));
        let forming = Bar {
            closed: false,
            ..bar(6, 101.0)
        };
        assert_eq!(
            set.update(&forming),
            Err(FeatureError::BarNotClosed { open_time: 5_400_000 })
        );
        let broken = Bar {
            close: f64::NAN,
            ..bar(6, 101.0)
        };
        assert_eq!(
            set.update(&broken),
            Err(FeatureError::NonFiniteBar { open_time: 5_400_000 })
        );
        assert_eq!(set, before);
    }

    #[test]
    fn peek_of_a_forming_bar_equals_the_update_of_the_closed_bar() {
        let mut set = IndicatorSet::default();
        for index in 0..40 {
            set.update(&bar(index, 50.0 + (index % 7) as f64))
                .expect("bars are in order, closed and finite");
        }
        let forming = Bar {
            closed: false,
            ..bar(40, 58.5)
        };
        let before = set.clone();
        let preview = set.peek(&forming).expect("bars are in order, closed and finite");
        assert_eq!(set, before);
        assert_eq!(preview.open_time, Some(forming.open_time));
        let committed = *set
            .update(&Bar {
                closed: true,
                ..forming
            })
            .expect("warmed up");
        assert_eq!(preview, committed);
    }

    #[test]
    fn set_is_a_fixed_size_value() {
        // Documented in the module doc of `features` (600 sets ≈ 780 KB): keep it in step.
        assert_eq!(size_of::<IndicatorSet>(), 1296);
    }
}
