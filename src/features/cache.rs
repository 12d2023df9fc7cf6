//! The incremental feature cache, keyed by (symbol, feature, window) as in the original system.
//!
//! The engine is the main client: every time it writes a symbol's feature vector, the vector's cached
//! entries (EMA 21 and 50, ATR 14, RSI 14 of each timeframe) are read from here, over the symbol's
//! stored series (`engine::signals::FeatureSlots`).
//!
//! Why this module exists: strategies ask for indicators the fixed [`IndicatorSet`](super::IndicatorSet)
//! does not carry (an EMA or ATR over another window, on demand). Recomputing one from a symbol's stored
//! bars costs O(history) per request; the cache keeps each requested indicator's state and, on the next
//! request, feeds it only the bars that closed since (found by binary search on open time), so EMA and ATR
//! advance by their incremental formulas (`e = (x − e)·k + e`; `ATR = (ATR·(n − 1) + TR)/n`) in O(new
//! bars). With `ENABLE_INCREMENTAL_CACHE=false` every request recomputes from the stored bars; both paths
//! run the same indicator code over the same bars, so they return the same bits (property-tested).
//!
//! The bars given are the symbol's closed history in open-time order (`BarSeries::closed()`); a forming
//! bar, if present, is ignored. The history may lose old bars at the front (a ring buffer), but a cached
//! value then still reflects the bars it saw, which the recompute path over the shortened history no
//! longer can: the two agree as long as the history only grows. A history whose newest bar is older than
//! what an entry already consumed (a reset or a different series) is refused with
//! [`CacheError::HistoryRewound`]; call [`FeatureCache::forget_symbol`] first. After the first request for
//! a key (which inserts it), a request allocates nothing.

use std::collections::{HashMap, VecDeque, hash_map};

use super::{Atr, Ema, EmaSeeding, FeatureError, Indicator, Rsi};
use crate::domain::{Bar, Interval, SymbolId, TimestampMs};

/// An indicator the cache can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CachedFeature {
    /// TA-Lib EMA of the close (SMA of the first `window` closes as seed).
    Ema,
    /// Wilder ATR.
    Atr,
    /// Wilder RSI of the close.
    Rsi,
}

/// What the cache is keyed by: the original system's (symbol, feature, window), plus the timeframe,
/// because the engine keeps one series per symbol and timeframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub symbol: SymbolId,
    pub interval: Interval,
    pub feature: CachedFeature,
    pub window: u32,
}

/// Refused requests.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum CacheError {
    #[error("cannot build {feature:?}({window}): {source}")]
    Parameters {
        feature: CachedFeature,
        window: u32,
        source: FeatureError,
    },
    #[error(
        "history of symbol {symbol} ends at {newest_open_time}, before bar {consumed_open_time} the cache \
         already consumed for {feature:?}({window}): forget the symbol after resetting its series"
    )]
    HistoryRewound {
        symbol: u16,
        feature: CachedFeature,
        window: u32,
        newest_open_time: TimestampMs,
        consumed_open_time: TimestampMs,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Ema(Ema),
    Atr(Atr),
    Rsi(Rsi),
}

impl State {
    fn new(key: CacheKey) -> Result<Self, CacheError> {
        let parameters = |source| CacheError::Parameters {
            feature: key.feature,
            window: key.window,
            source,
        };
        Ok(match key.feature {
            CachedFeature::Ema => {
                Self::Ema(Ema::new(key.window, EmaSeeding::SmaOfFirstPeriod).map_err(parameters)?)
            }
            CachedFeature::Atr => Self::Atr(Atr::new(key.window).map_err(parameters)?),
            CachedFeature::Rsi => Self::Rsi(Rsi::new(key.window).map_err(parameters)?),
        })
    }

    fn update(&mut self, bar: &Bar) -> Option<f64> {
        match self {
            Self::Ema(ema) => ema.update(bar.close),
            Self::Atr(atr) => atr.update(*bar),
            Self::Rsi(rsi) => rsi.update(bar.close),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    state: State,
    /// Open time of the last bar fed to `state`.
    consumed: Option<TimestampMs>,
    value: Option<f64>,
}

/// Cached indicator states; see the module documentation.
#[derive(Debug, Clone, Default)]
pub struct FeatureCache {
    incremental: bool,
    entries: HashMap<CacheKey, Entry>,
}

impl FeatureCache {
    /// `incremental` is `ENABLE_INCREMENTAL_CACHE`: `false` recomputes on every request.
    pub fn new(incremental: bool) -> Self {
        Self {
            incremental,
            entries: HashMap::new(),
        }
    }

    pub const fn is_incremental(&self) -> bool {
        self.incremental
    }

    /// Number of cached (symbol, feature, window) states.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops every state of `symbol` (its series was reset or it left the universe).
    pub fn forget_symbol(&mut self, symbol: SymbolId) {
        self.entries.retain(|key, _| key.symbol != symbol);
    }

    /// The value of `key` after the closed bars of `history`, `None` while it warms up.
    pub fn value(&mut self, key: CacheKey, history: &VecDeque<Bar>) -> Result<Option<f64>, CacheError> {
        if !self.incremental {
            let mut state = State::new(key)?;
            let mut value = None;
            for bar in history.iter().filter(|bar| bar.closed) {
                value = state.update(bar);
            }
            return Ok(value);
        }
        let entry = match self.entries.entry(key) {
            hash_map::Entry::Occupied(occupied) => occupied.into_mut(),
            hash_map::Entry::Vacant(vacant) => vacant.insert(Entry {
                state: State::new(key)?,
                consumed: None,
                value: None,
            }),
        };
        let start = match entry.consumed {
            None => 0,
            Some(consumed) => {
                let newest = history
                    .iter()
                    .rev()
                    .find(|bar| bar.closed)
                    .map(|bar| bar.open_time);
                match newest {
                    Some(newest) if newest < consumed => {
                        return Err(CacheError::HistoryRewound {
                            symbol: key.symbol.0,
                            feature: key.feature,
                            window: key.window,
                            newest_open_time: newest,
                            consumed_open_time: consumed,
                        });
                    }
                    _ => history.partition_point(|bar| bar.open_time <= consumed),
                }
            }
        };
        for bar in history.range(start..).filter(|bar| bar.closed) {
            entry.value = entry.state.update(bar);
            entry.consumed = Some(bar.open_time);
        }
        Ok(entry.value)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::{CacheError, CacheKey, CachedFeature, FeatureCache};
    use crate::{
        domain::{Bar, Interval, SymbolId},
        features::FeatureError,
    };

    fn bar(index: i64, close: f64, range: f64) -> Bar {
        Bar {
            open_time: index * 60_000,
            close_time: index * 60_000 + 59_999,
            open: close,
            high: close + range,
            low: close - range,
            close,
            volume: 1.0,
            quote_volume: close,
            trades: 1,
            closed: true,
        }
    }

    const fn key(feature: CachedFeature, window: u32) -> CacheKey {
        CacheKey {
            symbol: SymbolId(3),
            interval: Interval::M1,
            feature,
            window,
        }
    }

    #[test]
    fn ema_and_atr_follow_their_incremental_formulas() {
        let mut cache = FeatureCache::new(true);
        let mut history: VecDeque<Bar> = [1.0, 2.0, 6.0]
            .iter()
            .enumerate()
            .map(|(i, c)| bar(i as i64, *c, 0.5))
            .collect();
        assert_eq!(cache.value(key(CachedFeature::Ema, 3), &history), Ok(Some(3.0)));
        assert_eq!(cache.value(key(CachedFeature::Atr, 2), &history), Ok(Some(3.0)));
        history.push_back(bar(3, 5.0, 0.5));
        // EMA: (5 − 3)·0.5 + 3; ATR: TR = max(1, |5.5 − 6|, |4.5 − 6|) = 1.5, (3·1 + 1.5)/2.
        assert_eq!(cache.value(key(CachedFeature::Ema, 3), &history), Ok(Some(4.0)));
        assert_eq!(cache.value(key(CachedFeature::Atr, 2), &history), Ok(Some(2.25)));
        // A forming bar is ignored; asking again without new bars changes nothing.
        history.push_back(Bar {
            closed: false,
            ..bar(4, 100.0, 1.0)
        });
        assert_eq!(cache.value(key(CachedFeature::Ema, 3), &history), Ok(Some(4.0)));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn bad_window_and_rewound_history_are_refused() {
        let mut cache = FeatureCache::new(true);
        let history: VecDeque<Bar> = (0..5).map(|i| bar(i, 10.0, 1.0)).collect();
        assert_eq!(
            cache.value(key(CachedFeature::Ema, 0), &history),
            Err(CacheError::Parameters {
                feature: CachedFeature::Ema,
                window: 0,
                source: FeatureError::PeriodTooShort {
                    period: 0,
                    minimum: 1
                }
            })
        );
        cache
            .value(key(CachedFeature::Rsi, 2), &history)
            .expect("a valid window over ordered bars");
        let shorter: VecDeque<Bar> = (0..3).map(|i| bar(i, 10.0, 1.0)).collect();
        assert!(matches!(
            cache.value(key(CachedFeature::Rsi, 2), &shorter),
            Err(CacheError::HistoryRewound {
                newest_open_time: 120_000,
                consumed_open_time: 240_000,
                ..
            })
        ));
        cache.forget_symbol(SymbolId(3));
        assert!(cache.is_empty());
        assert!(cache.value(key(CachedFeature::Rsi, 2), &shorter).is_ok());
    }

    proptest! {
        #[test]
        fn incremental_equals_recompute(
            start in 0.01..1_000.0_f64,
            steps in prop::collection::vec((-0.05..0.05_f64, 0.0..0.03_f64), 1..200),
            cuts in prop::collection::vec(0..200_usize, 0..8),
            window in 1..30_u32,
        ) {
            let mut close = start;
            let bars: Vec<Bar> = steps
                .iter()
                .enumerate()
                .map(|(index, (step, wick))| {
                    close *= step.exp();
                    bar(index as i64, close, close * wick)
                })
                .collect();
            let mut incremental = FeatureCache::new(true);
            let mut recompute = FeatureCache::new(false);
            let mut cuts = cuts;
            cuts.push(bars.len());
            cuts.sort_unstable();
            let mut history = VecDeque::new();
            for cut in cuts {
                while history.len() < cut.min(bars.len()) {
                    history.push_back(bars[history.len()]);
                }
                for feature in [CachedFeature::Ema, CachedFeature::Atr, CachedFeature::Rsi] {
                    let window = if feature == CachedFeature::Ema { window } else { window.max(2) };
                    let key = key(feature, window);
                    let fast = incremental.value(key, &history).expect("valid key and ordered history");
                    let slow = recompute.value(key, &history).expect("valid key and ordered history");
                    prop_assert_eq!(fast.map(f64::to_bits), slow.map(f64::to_bits));
                }
            }
            prop_assert!(recompute.is_empty());
        }
    }
}
