//! Training data for the signal predictor: history replayed through the causal ICT strategy, every
//! candidate labelled with what price did *after* it.
//!
//! Why: the predictor must learn from exactly the candidates the live strategy produces, seeing exactly
//! what the live engine sees. So bars of the three timeframes are merged by close time (higher
//! timeframes first at equal close times, as the engine feeds them) into a [`SymbolAnalysis`], and after
//! every entry-timeframe bar the ICT rules are evaluated with the quality threshold at 0, so every
//! candidate that reaches the quality stage is kept with its quality score (those at or above the live
//! threshold are the "ICT signals"). The feature vector is built from the same analysis state.
//!
//! Labels use only bars strictly after the decision bar ([`label`]): walking the entry timeframe, the
//! first bar whose range reaches the stop or the target decides (both in one bar: the stop, the
//! conservative assumption the position book also makes); nothing within the horizon is an expiry at
//! the last close. A candidate whose horizon runs past the end of the data is dropped, never guessed.
//! The realised R is +reward:risk at the target, −1 at the stop, and the signed move over the risk at an
//! expiry (price only: fees and slippage are not modelled here).

use std::path::{Path, PathBuf};

use super::predictor::{INPUTS, context};
use crate::{
    domain::{Bar, Interval, Side, SymbolId, TimestampMs},
    features::{FeatureVector, SCHEMA_LEN, TimeframeInput},
    sim::replay::{KlineFile, ReplayError, read_kline_dir},
    strategy::{
        AnalysisConfig, AnalysisError, Evaluation, IctParams, IctStrategy, Role, Strategy, SymbolAnalysis,
    },
};

/// How a candidate ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    TakeProfit,
    Stop,
    Expiry,
}

/// One labelled candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub symbol: String,
    /// Close time of the decision bar.
    pub at: TimestampMs,
    /// Close time of the bar that decided the outcome.
    pub resolved_at: TimestampMs,
    pub side: Side,
    pub row: [f32; INPUTS],
    pub outcome: Outcome,
    /// Realised R multiple.
    pub r: f64,
    pub reward_risk: f64,
    pub quality: f64,
    /// Whether the live quality filter would have passed it.
    pub ict_signal: bool,
}

impl Sample {
    pub fn label(&self) -> f32 {
        if self.outcome == Outcome::TakeProfit {
            1.0
        } else {
            0.0
        }
    }

    /// Training weight by quality: `0.25 + 0.75 · quality`, so weak candidates still teach the model
    /// but the ones the strategy would take count up to four times as much.
    pub fn weight(&self) -> f32 {
        (0.25 + 0.75 * self.quality.clamp(0.0, 1.0)) as f32
    }
}

/// What can go wrong building the dataset.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error(transparent)]
    Read(#[from] ReplayError),
    #[error("{path}: no directory with kline files (SYMBOL_5m.csv and SYMBOL_1h.csv) found")]
    NoData { path: PathBuf },
    #[error("{symbol}: {source}")]
    Analysis {
        symbol: String,
        #[source]
        source: AnalysisError,
    },
}

/// The outcome of a candidate from the entry-timeframe bars *after* the decision bar: `(outcome, R,
/// close time of the deciding bar)`, or `None` when fewer than `horizon` bars follow and neither level
/// was reached (the label would need data we do not have).
pub fn label(
    side: Side,
    entry: f64,
    stop: f64,
    take_profit: f64,
    after: &[Bar],
    horizon: usize,
) -> Option<(Outcome, f64, TimestampMs)> {
    let risk = (entry - stop).abs();
    if risk <= 0.0 || horizon == 0 {
        return None;
    }
    let reward_risk = (take_profit - entry).abs() / risk;
    for bar in after.iter().take(horizon) {
        let (hit_stop, hit_target) = match side {
            Side::Long => (bar.low <= stop, bar.high >= take_profit),
            Side::Short => (bar.high >= stop, bar.low <= take_profit),
        };
        if hit_stop {
            return Some((Outcome::Stop, -1.0, bar.close_time));
        }
        if hit_target {
            return Some((Outcome::TakeProfit, reward_risk, bar.close_time));
        }
    }
    let last = after.get(horizon - 1)?;
    let moved = match side {
        Side::Long => last.close - entry,
        Side::Short => entry - last.close,
    };
    Some((Outcome::Expiry, moved / risk, last.close_time))
}

/// One symbol's bars of the three timeframes (entry, setup, higher), each sorted and closed.
#[derive(Debug, Clone)]
pub struct SymbolBars {
    pub symbol: String,
    pub entry: Vec<Bar>,
    pub setup: Vec<Bar>,
    pub higher: Vec<Bar>,
}

/// One closed bar of a [`SymbolBars`], as [`SymbolBars::in_close_order`] hands it to a replay.
#[derive(Debug, Clone, Copy)]
pub struct ClosedBar<'a> {
    pub interval: Interval,
    pub bar: &'a Bar,
    /// The bar's index in `entry` when it is an entry-timeframe bar (the replays decide only there).
    pub entry_index: Option<usize>,
}

impl SymbolBars {
    /// Every bar of the three timeframes in the order the engine feeds them to a [`SymbolAnalysis`]:
    /// by close time, higher timeframes first at equal close times (the 1h bar closing with a 5m bar
    /// is known when that 5m bar is evaluated). Every replay (the predictor's, the liquidity model's,
    /// the structure model's) walks this one order, so none of them can see a different market.
    pub fn in_close_order(&self, config: &AnalysisConfig) -> impl Iterator<Item = ClosedBar<'_>> {
        let mut merged: Vec<(TimestampMs, u8, usize)> =
            Vec::with_capacity(self.entry.len() + self.setup.len() + self.higher.len());
        merged.extend(self.higher.iter().enumerate().map(|(i, b)| (b.close_time, 0, i)));
        merged.extend(self.setup.iter().enumerate().map(|(i, b)| (b.close_time, 1, i)));
        merged.extend(self.entry.iter().enumerate().map(|(i, b)| (b.close_time, 2, i)));
        merged.sort_unstable();
        let intervals = [
            config.higher.interval,
            config.setup.interval,
            config.entry.interval,
        ];
        merged.into_iter().map(move |(_, rank, index)| {
            let bars = match rank {
                0 => &self.higher,
                1 => &self.setup,
                _ => &self.entry,
            };
            ClosedBar {
                interval: intervals[usize::from(rank)],
                bar: &bars[index],
                entry_index: (rank == 2).then_some(index),
            }
        })
    }
}

/// Replay counts for the progress lines and the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStats {
    pub evaluations: usize,
    pub candidates: usize,
    pub unresolved: usize,
}

/// Replays one symbol and labels its candidates. `horizon` is in entry bars.
pub fn replay(bars: &SymbolBars, horizon: usize) -> Result<(Vec<Sample>, ReplayStats), DatasetError> {
    let config = AnalysisConfig::default();
    let analysis_error = |source| DatasetError::Analysis {
        symbol: bars.symbol.clone(),
        source,
    };
    let mut analysis = SymbolAnalysis::new(&config).map_err(analysis_error)?;
    analysis.reserve(bars.entry.len());
    let live = IctParams::default();
    let mut params = live;
    params.quality.threshold = 0.0;
    let mut strategy = IctStrategy::new(params);

    let mut samples = Vec::new();
    let mut stats = ReplayStats::default();
    let mut features = [0.0_f32; SCHEMA_LEN];
    for closed in bars.in_close_order(&config) {
        let bar = closed.bar;
        analysis
            .on_closed_bar(closed.interval, bar)
            .map_err(analysis_error)?;
        let Some(index) = closed.entry_index else {
            continue;
        };
        stats.evaluations += 1;
        let Evaluation::Signal(signal) = strategy.evaluate(SymbolId(0), &analysis, bar.close_time) else {
            continue;
        };
        stats.candidates += 1;
        let Some((outcome, r, resolved_at)) = label(
            signal.side,
            signal.entry,
            signal.stop,
            signal.take_profit,
            &bars.entry[index + 1..],
            horizon,
        ) else {
            stats.unresolved += 1;
            continue;
        };
        if !feature_vector(&analysis, &mut features) {
            continue;
        }
        let mut row = [0.0_f32; INPUTS];
        row[..SCHEMA_LEN].copy_from_slice(&features);
        context(&signal, &mut row[SCHEMA_LEN..]);
        samples.push(Sample {
            symbol: bars.symbol.clone(),
            at: bar.close_time,
            resolved_at,
            side: signal.side,
            row,
            outcome,
            r,
            reward_risk: signal.reward_risk,
            quality: signal.quality.total,
            ict_signal: signal.quality.total >= live.quality.threshold,
        });
    }
    Ok((samples, stats))
}

/// The feature vector of `analysis` now, from each timeframe's indicator set and newest closed bar (what
/// training saw, and what `hybrid` feeds the model). `false` while a timeframe has no closed bar.
pub fn feature_vector(analysis: &SymbolAnalysis, out: &mut [f32; SCHEMA_LEN]) -> bool {
    let states = Role::ALL.map(|role| analysis.timeframe(role));
    let [Some(b0), Some(b1), Some(b2)] = states.map(|s| s.last_bar()) else {
        return false;
    };
    let inputs = [
        TimeframeInput {
            values: states[0].indicators().latest(),
            bar: b0,
        },
        TimeframeInput {
            values: states[1].indicators().latest(),
            bar: b1,
        },
        TimeframeInput {
            values: states[2].indicators().latest(),
            bar: b2,
        },
    ];
    FeatureVector::build(&inputs, out);
    true
}

fn to_bars(file: &KlineFile) -> Vec<Bar> {
    file.rows
        .iter()
        .map(|row| Bar {
            open_time: row.open_time,
            close_time: file.interval.close_time(row.open_time),
            open: row.open,
            high: row.high,
            low: row.low,
            close: row.close,
            volume: row.volume,
            quote_volume: row.quote_volume.unwrap_or(0.0),
            trades: row.trades.unwrap_or(0),
            closed: true,
        })
        .collect()
}

/// Bars of a coarser `interval` from complete, contiguous groups of `fine` bars aligned to it.
pub fn aggregate(fine: &[Bar], fine_interval: Interval, interval: Interval) -> Vec<Bar> {
    let (Some(step), Some(length)) = (fine_interval.fixed_millis(), interval.fixed_millis()) else {
        return Vec::new();
    };
    let per = (length / step).max(1) as usize;
    let mut out = Vec::with_capacity(fine.len() / per + 1);
    let mut i = 0;
    while i + per <= fine.len() {
        let open = interval.open_time_of(fine[i].open_time);
        let group = &fine[i..i + per];
        let contiguous = fine[i].open_time == open
            && group
                .iter()
                .enumerate()
                .all(|(k, b)| b.open_time == open + step * k as i64);
        if !contiguous {
            i += 1;
            continue;
        }
        out.push(Bar {
            open_time: open,
            close_time: interval.close_time(open),
            open: group[0].open,
            high: group.iter().map(|b| b.high).fold(f64::NEG_INFINITY, f64::max),
            low: group.iter().map(|b| b.low).fold(f64::INFINITY, f64::min),
            close: group[per - 1].close,
            volume: group.iter().map(|b| b.volume).sum(),
            quote_volume: group.iter().map(|b| b.quote_volume).sum(),
            trades: group.iter().map(|b| b.trades).sum(),
            closed: true,
        });
        i += per;
    }
    out
}

/// The symbols of one directory that have 5m and 1h files (15m from its file, else aggregated from 5m),
/// optionally only the last `max_entry_bars` 5m bars (and the higher bars up to their end).
pub fn load_dir(dir: &Path, max_entry_bars: Option<usize>) -> Result<Vec<SymbolBars>, DatasetError> {
    let config = AnalysisConfig::default();
    let files = read_kline_dir(dir)?;
    let find = |symbol: &str, interval: Interval| {
        files
            .iter()
            .find(|f| f.symbol == symbol && f.interval == interval)
    };
    let mut symbols: Vec<&str> = files.iter().map(|f| f.symbol.as_str()).collect();
    symbols.dedup();
    let mut out = Vec::new();
    for symbol in symbols {
        let (Some(entry), Some(higher)) = (
            find(symbol, config.entry.interval),
            find(symbol, config.higher.interval),
        ) else {
            continue;
        };
        let mut entry = to_bars(entry);
        if let Some(limit) = max_entry_bars {
            entry.drain(..entry.len().saturating_sub(limit));
        }
        let Some(last) = entry.last().map(|b| b.close_time) else {
            continue;
        };
        let setup = find(symbol, config.setup.interval).map_or_else(
            || aggregate(&entry, config.entry.interval, config.setup.interval),
            to_bars,
        );
        // The setup and higher timeframes keep their history before the first entry bar (it only warms
        // them up) but nothing past the last one.
        let keep =
            |bars: Vec<Bar>| -> Vec<Bar> { bars.into_iter().filter(|b| b.close_time <= last).collect() };
        let setup = keep(setup);
        out.push(SymbolBars {
            symbol: symbol.to_owned(),
            entry,
            setup,
            higher: keep(to_bars(higher)),
        });
    }
    Ok(out)
}

/// `dir` itself if it holds kline series, else each of its subdirectories that does (so
/// `../shared/data/klines` finds every collection in it), sorted.
pub fn data_dirs(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let has_series = |d: &Path| read_kline_dir(d).is_ok_and(|files| !files.is_empty());
    if has_series(dir) {
        return Ok(vec![dir.to_path_buf()]);
    }
    let entries = std::fs::read_dir(dir).map_err(|source| ReplayError::ReadDir {
        path: dir.to_owned(),
        source,
    })?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir() && has_series(p))
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(DatasetError::NoData { path: dir.to_owned() });
    }
    Ok(dirs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn bar(i: i64, low: f64, high: f64, close: f64) -> Bar {
        Bar {
            open_time: i * 300_000,
            close_time: i * 300_000 + 299_999,
            open: close,
            high,
            low,
            close,
            volume: 1.0,
            quote_volume: close,
            trades: 1,
            closed: true,
        }
    }

    #[test]
    fn bars_are_replayed_by_close_time_higher_timeframes_first() {
        let span = |minutes: i64, i: i64| {
            let mut b = bar(0, 1.0, 1.0, 1.0);
            b.open_time = i * minutes * 60_000;
            b.close_time = b.open_time + minutes * 60_000 - 1;
            b
        };
        let bars = SymbolBars {
            symbol: "BTCUSDT".into(),
            entry: (0..12).map(|i| span(5, i)).collect(),
            setup: (0..4).map(|i| span(15, i)).collect(),
            higher: vec![span(60, 0)],
        };
        let config = AnalysisConfig::default();
        let order: Vec<(TimestampMs, Interval, Option<usize>)> = bars
            .in_close_order(&config)
            .map(|c| (c.bar.close_time, c.interval, c.entry_index))
            .collect();
        assert_eq!(order.len(), 17);
        assert!(order.windows(2).all(|w| w[0].0 <= w[1].0), "{order:?}");
        // The hour's last 5m bar closes with the third 15m bar and the 1h bar: 1h, 15m, then 5m.
        let last = order.len();
        assert_eq!(
            order[last - 3..].iter().map(|o| o.1).collect::<Vec<_>>(),
            [
                config.higher.interval,
                config.setup.interval,
                config.entry.interval
            ]
        );
        assert_eq!(order[last - 1].2, Some(11));
        let entries: Vec<usize> = order.iter().filter_map(|o| o.2).collect();
        assert_eq!(entries, (0..12).collect::<Vec<_>>());
    }

    #[test]
    fn labels_come_from_the_first_bar_that_reaches_a_level() {
        let after = [
            bar(1, 99.5, 100.5, 100.0),
            bar(2, 99.0, 103.0, 102.0),
            bar(3, 95.0, 101.0, 96.0),
        ];
        // Long, entry 100, stop 98, target 103: bar 2 reaches the target first.
        assert_eq!(
            label(Side::Long, 100.0, 98.0, 103.0, &after, 3),
            Some((Outcome::TakeProfit, 1.5, after[1].close_time))
        );
        // Short, entry 100, stop 102.5, target 96: bar 2's high reaches the stop first.
        assert_eq!(
            label(Side::Short, 100.0, 102.5, 96.0, &after, 3),
            Some((Outcome::Stop, -1.0, after[1].close_time))
        );
        // Stop and target in the same bar: the stop.
        let wide = [bar(1, 90.0, 110.0, 100.0)];
        assert_eq!(
            label(Side::Long, 100.0, 95.0, 105.0, &wide, 1),
            Some((Outcome::Stop, -1.0, wide[0].close_time))
        );
        // Neither within the horizon: expiry at the horizon's last close, in R.
        assert_eq!(
            label(Side::Long, 100.0, 90.0, 120.0, &after[..2], 2),
            Some((Outcome::Expiry, 0.2, after[1].close_time))
        );
        // Not enough bars after the decision and nothing reached: no label.
        assert_eq!(label(Side::Long, 100.0, 90.0, 120.0, &after[..2], 3), None);
        // A level reached before the data runs out is a label even with a short tail.
        assert_eq!(
            label(Side::Long, 100.0, 98.0, 103.0, &after[..2], 50).map(|l| l.0),
            Some(Outcome::TakeProfit)
        );
        assert_eq!(label(Side::Long, 100.0, 100.0, 103.0, &after, 3), None);
    }

    #[test]
    fn aggregation_keeps_only_complete_aligned_groups() {
        let five: Vec<Bar> = (1..=7)
            .map(|i| bar(i, 1.0 + i as f64, 10.0 + i as f64, 5.0 + i as f64))
            .collect();
        let fifteen = aggregate(&five, Interval::M5, Interval::M15);
        // 5m bars 1..=7: the first aligned group starts at bar 3 (minute 15): bars 3,4,5; 6,7 is partial.
        assert_eq!(fifteen.len(), 1);
        let b = fifteen[0];
        assert_eq!((b.open_time, b.close_time), (900_000, 1_799_999));
        assert_eq!(
            (b.open, b.high, b.low, b.close, b.volume),
            (8.0, 15.0, 4.0, 10.0, 3.0)
        );
    }

    #[test]
    fn samples_weigh_more_with_quality() {
        let sample = |quality| Sample {
            symbol: "X".into(),
            at: 0,
            resolved_at: 1,
            side: Side::Long,
            row: [0.0; INPUTS],
            outcome: Outcome::Stop,
            r: -1.0,
            reward_risk: 2.0,
            quality,
            ict_signal: false,
        };
        assert_eq!(sample(0.0).weight(), 0.25);
        assert_eq!(sample(1.0).weight(), 1.0);
        assert_eq!(sample(0.0).label(), 0.0);
    }
}
