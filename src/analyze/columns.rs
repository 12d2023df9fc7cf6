//! Folding indicator values and [`SmcEvent`]s into the golden files' per-row columns, with a `KnownAt`
//! column per event family.
//!
//! `features` and `smc` speak the engine's language: an indicator value per bar, and a stream of events
//! (created, amended, withdrawn) each stamped with the `row` it describes and the bar `known_at` at which it
//! became known. A researcher, and the golden comparison, want the reference's end-of-data table instead:
//! one row per bar, NaN for "no event", 0 for "never" (SPEC §0.2). The folds here replay the events in
//! order onto per-row records — a creation fills the row, an amendment (mitigation, sweep) adds its bar, a
//! withdrawal empties the row — and then write the columns in the golden names and order. This is the
//! code that `tests/golden_smc.rs` used to carry privately; it lives here so the CLI and the tests share it.
//!
//! **`KnownAt`** (one column per family, right after its columns): the bar at whose close the record shown
//! on the row was emitted, i.e. the `known_at` of the creation event that survived (a withdrawn and
//! re-created record shows the re-creation). Empty where the family has no record. The row's amendment
//! columns (`MitigatedIndex`, `Swept`, `BrokenIndex`) are bars themselves; such a fact became known at
//! `max(that bar, KnownAt)`. For the calendar families, whose cells describe the bar itself (the previous
//! period's range as seen from this bar, the session extremes up to it), `KnownAt` is the row itself, or
//! the bar the period's range was emitted if that were later. `ret_*` rows are 0 without a record, as in
//! the reference, and `KnownAt` is empty there. A research backtest that reads a row at bar `t` may use it
//! only when `KnownAt <= t`; the golden columns alone do not say that.

use super::Column;
use crate::{
    domain::{Bar, Interval},
    features::{EmaSeeding, FeatureError, IndicatorSet, IndicatorValues, Macd, MacdSeeding},
    smc::{Direction, Session, SmcEvent, SmcEventKind, StructureKind, SwingSide},
};

/// The indicator columns of `out/<DS>_ta.csv`, in the golden order.
pub const INDICATOR_COLUMNS: [&str; 29] = [
    "ema9",
    "ema12",
    "ema21",
    "ema26",
    "ema50",
    "ema200",
    "ema9_seedfirst",
    "ema21_seedfirst",
    "ema50_seedfirst",
    "ema200_seedfirst",
    "sma20",
    "trange",
    "atr14",
    "rsi14",
    "macd",
    "macd_signal",
    "macd_hist",
    "macdx",
    "macdx_signal",
    "macdx_hist",
    "bb_upper",
    "bb_mid",
    "bb_lower",
    "plus_di14",
    "minus_di14",
    "dx14",
    "adx14",
    "obv",
    "vwap_D",
];

/// Suffix of the `KnownAt` column of every event family.
pub const KNOWN_AT: &str = "KnownAt";

fn cell(value: Option<f64>) -> f64 {
    value.unwrap_or(f64::NAN)
}

fn index(row: usize) -> f64 {
    row as f64
}

fn sign(direction: Direction) -> f64 {
    f64::from(direction.sign())
}

/// The indicator columns: a TA-Lib-seeded [`IndicatorSet`], a first-close-seeded one (`*_seedfirst`) and
/// the natural MACD (`macdx*`, EMA12 − EMA26 of the standalone EMAs), fed bar by bar.
#[derive(Debug)]
pub struct IndicatorFold {
    ta_lib: IndicatorSet,
    first_value: IndicatorSet,
    natural: Macd,
    columns: Vec<Vec<f64>>,
}

impl IndicatorFold {
    pub fn new(rows: usize) -> Result<Self, FeatureError> {
        Ok(Self {
            ta_lib: IndicatorSet::new(EmaSeeding::SmaOfFirstPeriod),
            first_value: IndicatorSet::new(EmaSeeding::FirstValue),
            natural: Macd::new(12, 26, 9, MacdSeeding::Natural)?,
            columns: (0..INDICATOR_COLUMNS.len())
                .map(|_| Vec::with_capacity(rows))
                .collect(),
        })
    }

    /// Commits the next bar and records its row.
    pub fn push(&mut self, bar: &Bar) -> Result<(), FeatureError> {
        let v: IndicatorValues = *self.ta_lib.update(bar)?;
        let f: IndicatorValues = *self.first_value.update(bar)?;
        let x = crate::features::Indicator::update(&mut self.natural, bar.close);
        let row = [
            v.ema9,
            v.ema12,
            v.ema21,
            v.ema26,
            v.ema50,
            v.ema200,
            f.ema9,
            f.ema21,
            f.ema50,
            f.ema200,
            v.sma20,
            v.true_range,
            v.atr14,
            v.rsi14,
            v.macd.map(|m| m.line),
            v.macd.and_then(|m| m.signal),
            v.macd.and_then(|m| m.histogram),
            x.map(|m| m.line),
            x.and_then(|m| m.signal),
            x.and_then(|m| m.histogram),
            v.bollinger.map(|b| b.upper),
            v.bollinger.map(|b| b.middle),
            v.bollinger.map(|b| b.lower),
            v.dmi.map(|d| d.plus_di),
            v.dmi.map(|d| d.minus_di),
            v.dmi.map(|d| d.dx),
            v.dmi.and_then(|d| d.adx),
            v.obv,
            v.vwap,
        ];
        for (column, value) in self.columns.iter_mut().zip(row) {
            column.push(cell(value));
        }
        Ok(())
    }

    pub fn finish(self) -> Vec<Column> {
        INDICATOR_COLUMNS
            .iter()
            .zip(self.columns)
            .map(|(name, values)| Column::new((*name).to_owned(), values))
            .collect()
    }
}

#[derive(Debug, Clone, Copy)]
struct GapRecord {
    direction: Direction,
    top: f64,
    bottom: f64,
    mitigated_at: Option<usize>,
    known_at: usize,
}

/// Fair value gaps of one detector into `<prefix>_FVG, _Top, _Bottom, _MitigatedIndex, _KnownAt`.
#[derive(Debug)]
pub struct GapFold {
    prefix: String,
    joined: bool,
    rows: Vec<Option<GapRecord>>,
}

impl GapFold {
    /// `joined` selects the events of a `join_consecutive` detector (prefix `fvgj` in the goldens).
    pub fn new(prefix: impl Into<String>, joined: bool, rows: usize) -> Self {
        Self {
            prefix: prefix.into(),
            joined,
            rows: vec![None; rows],
        }
    }

    pub fn apply(&mut self, e: &SmcEvent) {
        match e.kind {
            SmcEventKind::FairValueGap {
                direction,
                top,
                bottom,
                joined,
            } if joined == self.joined => {
                self.rows[e.row] = Some(GapRecord {
                    direction,
                    top,
                    bottom,
                    mitigated_at: None,
                    known_at: e.known_at,
                });
            }
            SmcEventKind::FairValueGapMitigated { joined, at } if joined == self.joined => {
                if let Some(gap) = &mut self.rows[e.row] {
                    gap.mitigated_at = Some(at);
                }
            }
            SmcEventKind::FairValueGapInvalidated { joined } if joined == self.joined => {
                self.rows[e.row] = None;
            }
            _ => {}
        }
    }

    pub fn finish(self) -> Vec<Column> {
        let p = &self.prefix;
        let rows = &self.rows;
        let col = |name: &str, f: &dyn Fn(&GapRecord) -> f64| {
            Column::new(
                format!("{p}_{name}"),
                rows.iter().map(|r| r.as_ref().map_or(f64::NAN, f)).collect(),
            )
        };
        vec![
            col("FVG", &|g| sign(g.direction)),
            col("Top", &|g| g.top),
            col("Bottom", &|g| g.bottom),
            col("MitigatedIndex", &|g| g.mitigated_at.map_or(0.0, index)),
            col(KNOWN_AT, &|g| index(g.known_at)),
        ]
    }
}

#[derive(Debug, Clone, Copy)]
struct BreakRecord {
    kind: StructureKind,
    direction: Direction,
    level: f64,
    broken_at: usize,
    known_at: usize,
}

#[derive(Debug, Clone, Copy)]
struct BlockRecord {
    direction: Direction,
    top: f64,
    bottom: f64,
    volume: f64,
    percentage: f64,
    mitigated_at: Option<usize>,
    known_at: usize,
}

#[derive(Debug, Clone, Copy)]
struct PoolRecord {
    direction: Direction,
    level: f64,
    end: usize,
    swept_at: Option<usize>,
    known_at: usize,
}

#[derive(Debug, Clone, Copy)]
struct RetracementRecord {
    from: SwingSide,
    current: f64,
    deepest: f64,
    known_at: usize,
}

/// The swing-based families of one parameter set (`s5`, `s10`…): `swing_`, `bos_`, `ob_`, `liq_` and
/// `ret_<label>_*`, each followed by its `KnownAt`.
#[derive(Debug)]
pub struct StructureFold {
    label: String,
    swings: Vec<Option<(SwingSide, f64, usize)>>,
    breaks: Vec<Option<BreakRecord>>,
    /// Per direction (bullish, bearish): both can sit on one candle; the reference shows the bearish one.
    blocks: [Vec<Option<BlockRecord>>; 2],
    pools: Vec<Option<PoolRecord>>,
    retracements: Vec<Option<RetracementRecord>>,
}

/// A column of `rows`, NaN where a row has no record.
fn column<T>(name: String, rows: &[Option<T>], f: impl Fn(&T) -> f64) -> Column {
    Column::new(
        name,
        rows.iter().map(|r| r.as_ref().map_or(f64::NAN, &f)).collect(),
    )
}

fn slot(direction: Direction) -> usize {
    match direction {
        Direction::Bullish => 0,
        Direction::Bearish => 1,
    }
}

impl StructureFold {
    pub fn new(label: impl Into<String>, rows: usize) -> Self {
        Self {
            label: label.into(),
            swings: vec![None; rows],
            breaks: vec![None; rows],
            blocks: [vec![None; rows], vec![None; rows]],
            pools: vec![None; rows],
            retracements: vec![None; rows],
        }
    }

    /// Applies one event of an [`crate::smc::SmcEngine`] run with this set's parameters. Events of other
    /// families (gaps, calendar, zones) are ignored.
    pub fn apply(&mut self, e: &SmcEvent) {
        let r = e.row;
        match e.kind {
            SmcEventKind::Swing { side, level, .. } => self.swings[r] = Some((side, level, e.known_at)),
            SmcEventKind::SwingInvalidated => self.swings[r] = None,
            SmcEventKind::StructureBreak {
                kind,
                direction,
                level,
                broken_at,
            } => {
                self.breaks[r] = Some(BreakRecord {
                    kind,
                    direction,
                    level,
                    broken_at,
                    known_at: e.known_at,
                });
            }
            SmcEventKind::StructureInvalidated => self.breaks[r] = None,
            SmcEventKind::OrderBlock {
                direction,
                top,
                bottom,
                volume,
                volume_percentage,
            } => {
                self.blocks[slot(direction)][r] = Some(BlockRecord {
                    direction,
                    top,
                    bottom,
                    volume,
                    percentage: volume_percentage,
                    mitigated_at: None,
                    known_at: e.known_at,
                });
            }
            SmcEventKind::OrderBlockMitigated { direction, at } => {
                if let Some(block) = &mut self.blocks[slot(direction)][r] {
                    block.mitigated_at = Some(at);
                }
            }
            SmcEventKind::OrderBlockInvalidated { direction } => self.blocks[slot(direction)][r] = None,
            SmcEventKind::LiquidityPool {
                direction,
                level,
                end,
            } => {
                self.pools[r] = Some(PoolRecord {
                    direction,
                    level,
                    end,
                    swept_at: None,
                    known_at: e.known_at,
                });
            }
            SmcEventKind::LiquiditySwept { at, .. } => {
                if let Some(pool) = &mut self.pools[r] {
                    pool.swept_at = Some(at);
                }
            }
            SmcEventKind::LiquidityInvalidated { .. } => self.pools[r] = None,
            SmcEventKind::Retracement {
                from,
                current_percent,
                deepest_percent,
            } => {
                self.retracements[r] = Some(RetracementRecord {
                    from,
                    current: current_percent,
                    deepest: deepest_percent,
                    known_at: e.known_at,
                });
            }
            _ => {}
        }
    }

    pub fn finish(self) -> Vec<Column> {
        let p = &self.label;
        let mut out = Vec::with_capacity(24);
        let swings = &self.swings;
        out.push(column(format!("swing_{p}_HighLow"), swings, |x| {
            f64::from(x.0.sign())
        }));
        out.push(column(format!("swing_{p}_Level"), swings, |x| x.1));
        out.push(column(format!("swing_{p}_{KNOWN_AT}"), swings, |x| index(x.2)));

        let breaks = &self.breaks;
        let of_kind = |kind: StructureKind| {
            move |x: &BreakRecord| {
                if x.kind == kind {
                    sign(x.direction)
                } else {
                    f64::NAN
                }
            }
        };
        out.push(column(
            format!("bos_{p}_BOS"),
            breaks,
            of_kind(StructureKind::Bos),
        ));
        out.push(column(
            format!("bos_{p}_CHOCH"),
            breaks,
            of_kind(StructureKind::Choch),
        ));
        out.push(column(format!("bos_{p}_Level"), breaks, |x| x.level));
        out.push(column(format!("bos_{p}_BrokenIndex"), breaks, |x| {
            index(x.broken_at)
        }));
        out.push(column(format!("bos_{p}_{KNOWN_AT}"), breaks, |x| {
            index(x.known_at)
        }));

        // The reference's bearish pass overwrites a bullish block on the same candle.
        let [bullish, bearish] = &self.blocks;
        let blocks: Vec<Option<BlockRecord>> = bullish.iter().zip(bearish).map(|(u, d)| d.or(*u)).collect();
        out.push(column(format!("ob_{p}_OB"), &blocks, |x| sign(x.direction)));
        out.push(column(format!("ob_{p}_Top"), &blocks, |x| x.top));
        out.push(column(format!("ob_{p}_Bottom"), &blocks, |x| x.bottom));
        out.push(column(format!("ob_{p}_OBVolume"), &blocks, |x| x.volume));
        out.push(column(format!("ob_{p}_MitigatedIndex"), &blocks, |x| {
            x.mitigated_at.map_or(0.0, index)
        }));
        out.push(column(format!("ob_{p}_Percentage"), &blocks, |x| x.percentage));
        out.push(column(format!("ob_{p}_{KNOWN_AT}"), &blocks, |x| {
            index(x.known_at)
        }));

        let pools = &self.pools;
        out.push(column(format!("liq_{p}_Liquidity"), pools, |x| sign(x.direction)));
        out.push(column(format!("liq_{p}_Level"), pools, |x| x.level));
        out.push(column(format!("liq_{p}_End"), pools, |x| index(x.end)));
        out.push(column(format!("liq_{p}_Swept"), pools, |x| {
            x.swept_at.map_or(0.0, index)
        }));
        out.push(column(format!("liq_{p}_{KNOWN_AT}"), pools, |x| {
            index(x.known_at)
        }));

        // Retracements are 0, not empty, where there is no record (the reference's encoding).
        let retracements = &self.retracements;
        let zero =
            |f: fn(&RetracementRecord) -> f64| retracements.iter().map(move |r| r.as_ref().map_or(0.0, f));
        out.push(Column::new(
            format!("ret_{p}_Direction"),
            zero(|x| f64::from(x.from.sign())).collect(),
        ));
        out.push(Column::new(
            format!("ret_{p}_CurrentRetracement%"),
            zero(|x| x.current).collect(),
        ));
        out.push(Column::new(
            format!("ret_{p}_DeepestRetracement%"),
            zero(|x| x.deepest).collect(),
        ));
        out.push(column(format!("ret_{p}_{KNOWN_AT}"), retracements, |x| {
            index(x.known_at)
        }));
        out
    }
}

/// Previous high / low of one timeframe into `phl_<label>_PreviousHigh, _PreviousLow, _BrokenHigh,
/// _BrokenLow, _KnownAt`.
#[derive(Debug)]
pub struct PreviousRangeFold {
    label: String,
    timeframe: Interval,
    /// Where a new reference range starts: (high, low, known at).
    starts: Vec<Option<(f64, f64, usize)>>,
    broken_high: Vec<bool>,
    broken_low: Vec<bool>,
}

impl PreviousRangeFold {
    pub fn new(label: impl Into<String>, timeframe: Interval, rows: usize) -> Self {
        Self {
            label: label.into(),
            timeframe,
            starts: vec![None; rows],
            broken_high: vec![false; rows],
            broken_low: vec![false; rows],
        }
    }

    pub fn apply(&mut self, e: &SmcEvent) {
        match e.kind {
            SmcEventKind::PreviousRange { timeframe, high, low } if timeframe == self.timeframe => {
                self.starts[e.row] = Some((high, low, e.known_at));
            }
            SmcEventKind::PreviousHighBroken { timeframe } if timeframe == self.timeframe => {
                self.broken_high[e.row] = true;
            }
            SmcEventKind::PreviousLowBroken { timeframe } if timeframe == self.timeframe => {
                self.broken_low[e.row] = true;
            }
            _ => {}
        }
    }

    pub fn finish(self) -> Vec<Column> {
        let rows = self.starts.len();
        let mut columns: [Vec<f64>; 5] = std::array::from_fn(|_| Vec::with_capacity(rows));
        let (mut current, mut high_broken, mut low_broken) = (None, false, false);
        for r in 0..rows {
            if let Some(range) = self.starts[r] {
                current = Some(range);
                high_broken = false;
                low_broken = false;
            }
            high_broken |= self.broken_high[r];
            low_broken |= self.broken_low[r];
            let values = match current {
                Some((high, low, known_at)) => [
                    high,
                    low,
                    f64::from(u8::from(high_broken)),
                    f64::from(u8::from(low_broken)),
                    index(known_at.max(r)),
                ],
                None => [f64::NAN, f64::NAN, 0.0, 0.0, f64::NAN],
            };
            for (column, value) in columns.iter_mut().zip(values) {
                column.push(value);
            }
        }
        let p = &self.label;
        ["PreviousHigh", "PreviousLow", "BrokenHigh", "BrokenLow", KNOWN_AT]
            .iter()
            .zip(columns)
            .map(|(name, values)| Column::new(format!("phl_{p}_{name}"), values))
            .collect()
    }
}

/// One session into `sess_<label>_Active, _High, _Low, _KnownAt` (0/0/0 and empty outside the session).
/// Session high, low and the bar it was known at, on an in-session row.
type SessionCells = (f64, f64, usize);

#[derive(Debug)]
pub struct SessionFold {
    label: String,
    session: Session,
    rows: Vec<Option<SessionCells>>,
}

impl SessionFold {
    pub fn new(label: impl Into<String>, session: Session, rows: usize) -> Self {
        Self {
            label: label.into(),
            session,
            rows: vec![None; rows],
        }
    }

    pub fn apply(&mut self, e: &SmcEvent) {
        if let SmcEventKind::SessionBar { session, high, low } = e.kind
            && session == self.session
        {
            self.rows[e.row] = Some((high, low, e.known_at));
        }
    }

    pub fn finish(self) -> Vec<Column> {
        let p = &self.label;
        let rows = &self.rows;
        let col = |name: &str, f: &dyn Fn(Option<&SessionCells>) -> f64| {
            Column::new(
                format!("sess_{p}_{name}"),
                rows.iter().map(|r| f(r.as_ref())).collect(),
            )
        };
        vec![
            col("Active", &|r| if r.is_some() { 1.0 } else { 0.0 }),
            col("High", &|r| r.map_or(0.0, |x| x.0)),
            col("Low", &|r| r.map_or(0.0, |x| x.1)),
            col(KNOWN_AT, &|r| r.map_or(f64::NAN, |x| index(x.2))),
        ]
    }
}
