//! `perpdesk analyze`: every indicator and SMC output for a bar file, one row per bar, in the golden files'
//! column names and encodings, plus when each event became known.
//!
//! Traders use it for research (load the CSV in a notebook, join it with their own labels); the project uses
//! it to check the implementation against the references, because on each golden input it reproduces
//! `../shared/golden/out/<DS>_ta.csv` and `<DS>_smc.csv` column for column, except the deliberate differences
//! of `docs/smc-differences.md`. It is a batch driver over the same incremental code the engine runs:
//! [`input`] reads the bars, one pass feeds them to the indicator sets and to an
//! [`SmcEngine`](crate::smc::SmcEngine) per parameter set (plus the gap, previous-range and session
//! detectors), [`columns`] folds values and events into columns, and [`write`] prints them.
//!
//! Output columns, in order: the golden input columns (`idx,time,open_time_ms,open,high,low,close,volume`),
//! the 29 indicator columns of `<DS>_ta.csv`, then the SMC columns of `<DS>_smc.csv` in their order, where
//! each event family is followed by its `<prefix>_KnownAt` column (see [`columns`] for what it means):
//! `fvg_`, `fvgj_`, then per parameter set `swing_`, `bos_`, `ob_`, `liq_`, `ret_<set>_`, then `phl_<tf>_` per
//! timeframe and `sess_<name>_` per session. Dropping the `*_KnownAt` columns leaves exactly the golden
//! header (input columns, TA columns, SMC columns).
//!
//! **Look-ahead, on purpose, in one place.** The reference derives the liquidity tolerance `pip_range` from
//! the whole frame (`range_percent × (max high − min low)`). For research reproduction analyze does the
//! same by default ([`LiquidityTolerance::RangePercent`]), which makes the `liq_*` columns depend on bars
//! after the row; pass an absolute tolerance ([`LiquidityTolerance::PipRange`], `--liquidity-pip-range`)
//! for a causal run. The value used is returned in [`Analysis::pip_ranges`] and printed by the CLI. Every
//! other column is computed causally; `KnownAt` says when.

pub mod columns;
pub mod input;
pub mod write;

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use self::{
    columns::{GapFold, IndicatorFold, PreviousRangeFold, SessionFold, StructureFold},
    input::InputError,
};
use crate::{
    domain::{Bar, Interval},
    features::FeatureError,
    smc::{
        FairValueGapDetector, PreviousLevelsDetector, Session, SessionTracker, SmcConfig, SmcEngine,
        SmcError, SmcEvent,
    },
};

pub use self::columns::{INDICATOR_COLUMNS, KNOWN_AT};

/// The input columns every output starts with (the golden inputs' header).
pub const INPUT_COLUMNS: [&str; 8] = [
    "idx",
    "time",
    "open_time_ms",
    "open",
    "high",
    "low",
    "close",
    "volume",
];

/// Progress is reported after every this many bars.
pub const PROGRESS_EVERY: usize = 100_000;

/// Which fair value gap columns to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FvgJoin {
    /// `fvg_*` only (`join_consecutive=False`).
    No,
    /// `fvgj_*` only (`join_consecutive=True`).
    Yes,
    /// Both, as in the golden files.
    #[default]
    Both,
}

/// The liquidity tolerance of one parameter set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LiquidityTolerance {
    /// The reference's rule: this fraction (0.01 = 1 %) of `max(high) − min(low)` over the whole input.
    /// Look-ahead; for reproducing the reference.
    RangePercent(f64),
    /// An absolute price distance, fixed in advance (causal).
    PipRange(f64),
}

/// One swing-based parameter set; its columns carry the prefix `s<swing_length>` (`swing_s5_…`).
#[derive(Debug, Clone, PartialEq)]
pub struct StructureParams {
    pub swing_length: usize,
    pub close_break: bool,
    pub close_mitigation: bool,
    pub liquidity: LiquidityTolerance,
}

impl StructureParams {
    /// The column label, `s<swing_length>`.
    pub fn label(&self) -> String {
        format!("s{}", self.swing_length)
    }
}

/// Everything `analyze` computes. [`AnalyzeConfig::default`] is the golden files' configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyzeConfig {
    pub structure: Vec<StructureParams>,
    pub fair_value_gaps: FvgJoin,
    /// Column label (as given: `4h`, `1D`, `W`) and the period it stands for.
    pub previous_timeframes: Vec<(String, Interval)>,
    /// Column label (spaces as underscores: `New_York`) and the session.
    pub sessions: Vec<(String, Session)>,
}

/// The golden parameter sets of SPEC §0.2, in order.
pub const GOLDEN_SETS: [(usize, bool, bool, f64); 2] = [(5, true, false, 0.01), (10, false, true, 0.005)];

impl Default for AnalyzeConfig {
    fn default() -> Self {
        Self {
            structure: GOLDEN_SETS
                .iter()
                .map(
                    |&(swing_length, close_break, close_mitigation, percent)| StructureParams {
                        swing_length,
                        close_break,
                        close_mitigation,
                        liquidity: LiquidityTolerance::RangePercent(percent),
                    },
                )
                .collect(),
            fair_value_gaps: FvgJoin::Both,
            previous_timeframes: ["4h", "1D", "W"]
                .iter()
                .filter_map(|label| Some(((*label).to_owned(), parse_timeframe(label).ok()?)))
                .collect(),
            sessions: ["Sydney", "London", "New York", "New York kill zone"]
                .iter()
                .filter_map(|name| parse_session(name).ok())
                .collect(),
        }
    }
}

/// Why an analysis could not run.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{flag} takes one value, or one per --swing-length ({sets}); got {found}")]
    ParameterCount {
        flag: &'static str,
        sets: usize,
        found: usize,
    },
    #[error("{flag}: {reason}")]
    Parameter { flag: &'static str, reason: String },
    #[error("{}: bar {row} (line {}): {source}", path.display(), row + 2)]
    Smc {
        path: PathBuf,
        row: usize,
        #[source]
        source: SmcError,
    },
    #[error("{}: bar {row}: {source}", path.display())]
    Indicators {
        path: PathBuf,
        row: usize,
        #[source]
        source: FeatureError,
    },
    #[error("cannot write {target}: {source}")]
    Output {
        target: String,
        #[source]
        source: std::io::Error,
    },
}

impl AnalyzeError {
    /// Exit code for a bad input file or bad parameters (like a usage or configuration error); other
    /// failures (writing the output) exit 1.
    pub const BAD_INPUT_EXIT_CODE: u8 = 2;

    /// Whether the input file or the parameters are at fault (exit code 2).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Self::Output { .. })
    }
}

/// A timeframe label: a Binance interval (`4h`, `1d`, `1w`) or the reference's pandas names (`1D`, `D`,
/// `W`, `1W`, `4H`). Weeks start on Monday 00:00 UTC as Binance's (see `docs/smc-differences.md` D6).
pub fn parse_timeframe(label: &str) -> Result<Interval, AnalyzeError> {
    if let Ok(interval) = label.parse::<Interval>() {
        return Ok(interval);
    }
    let lower = label.to_ascii_lowercase();
    let alias = match lower.as_str() {
        "d" => "1d",
        "w" | "w-mon" | "w-sun" => "1w",
        "3d" | "1d" | "1w" | "1h" | "2h" | "4h" | "6h" | "8h" | "12h" => lower.as_str(),
        "me" | "ms" | "m" => "1M",
        _ => "",
    };
    alias.parse::<Interval>().map_err(|_| AnalyzeError::Parameter {
        flag: "--previous-timeframes",
        reason: format!("unknown timeframe `{label}` (e.g. 1h, 4h, 1D, W)"),
    })
}

/// A session by name (case-insensitive, `_` or space): Sydney, Tokyo, London, New York, Asian kill zone,
/// London open kill zone, New York kill zone, London close kill zone; or a custom UTC window `HH:MM-HH:MM`.
/// Returns the column label (spaces as underscores) and the session.
pub fn parse_session(name: &str) -> Result<(String, Session), AnalyzeError> {
    let key = name.trim().replace('_', " ").to_ascii_lowercase();
    let session = match key.as_str() {
        "sydney" => Session::Sydney,
        "tokyo" => Session::Tokyo,
        "london" => Session::London,
        "new york" => Session::NewYork,
        "asian kill zone" => Session::AsianKillZone,
        "london open kill zone" => Session::LondonOpenKillZone,
        "new york kill zone" => Session::NewYorkKillZone,
        "london close kill zone" => Session::LondonCloseKillZone,
        _ => custom_session(&key).ok_or_else(|| AnalyzeError::Parameter {
            flag: "--sessions",
            reason: format!(
                "unknown session `{name}` (Sydney, Tokyo, London, New York, Asian kill zone, London open \
                 kill zone, New York kill zone, London close kill zone, or HH:MM-HH:MM in UTC)"
            ),
        })?,
    };
    Ok((name.trim().replace(' ', "_"), session))
}

fn custom_session(key: &str) -> Option<Session> {
    let minute = |hhmm: &str| {
        let (h, m) = hhmm.trim().split_once(':')?;
        let (h, m) = (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    };
    let (start, end) = key.split_once('-')?;
    Some(Session::Custom {
        start_minute: minute(start)?,
        end_minute: minute(end)?,
    })
}

/// The value for set `i`: the only value, or the `i`-th, or the default for that position.
fn per_set<T: Copy>(
    flag: &'static str,
    given: Option<&[T]>,
    sets: usize,
    default: impl Fn(usize) -> T,
) -> Result<Vec<T>, AnalyzeError> {
    match given {
        None => Ok((0..sets).map(default).collect()),
        Some([one]) => Ok(vec![*one; sets]),
        Some(values) if values.len() == sets => Ok(values.to_vec()),
        Some(values) => Err(AnalyzeError::ParameterCount {
            flag,
            sets,
            found: values.len(),
        }),
    }
}

/// The per-set flags as given on the command line (`None`: not given).
#[derive(Debug, Clone, Default)]
pub struct SetFlags<'a> {
    pub swing_length: Option<&'a [usize]>,
    pub close_break: Option<&'a [bool]>,
    pub close_mitigation: Option<&'a [bool]>,
    pub liquidity_range_percent: Option<&'a [f64]>,
    pub liquidity_pip_range: Option<&'a [f64]>,
}

impl AnalyzeConfig {
    /// Builds the parameter sets from per-set flags. Each flag takes one value (for every set) or one per
    /// swing length; an omitted flag takes, for set `i`, the `i`-th golden set's value (the first golden
    /// set's from the third set on).
    pub fn with_sets(mut self, flags: &SetFlags<'_>) -> Result<Self, AnalyzeError> {
        let golden = |i: usize| GOLDEN_SETS[if i < GOLDEN_SETS.len() { i } else { 0 }];
        let lengths = flags.swing_length.map_or_else(|| vec![5, 10], <[usize]>::to_vec);
        let sets = lengths.len();
        if sets == 0 {
            return Err(AnalyzeError::Parameter {
                flag: "--swing-length",
                reason: "give at least one swing length".to_owned(),
            });
        }
        let close_break = per_set("--close-break", flags.close_break, sets, |i| golden(i).1)?;
        let close_mitigation = per_set("--close-mitigation", flags.close_mitigation, sets, |i| {
            golden(i).2
        })?;
        let percent = per_set(
            "--liquidity-range-percent",
            flags.liquidity_range_percent,
            sets,
            |i| golden(i).3,
        )?;
        let pips: Vec<Option<f64>> = match flags.liquidity_pip_range {
            None => vec![None; sets],
            Some(pips) => per_set("--liquidity-pip-range", Some(pips), sets, |_| 0.0)?
                .into_iter()
                .map(Some)
                .collect(),
        };
        self.structure = (0..sets)
            .map(|i| StructureParams {
                swing_length: lengths[i],
                close_break: close_break[i],
                close_mitigation: close_mitigation[i],
                liquidity: pips[i].map_or(
                    LiquidityTolerance::RangePercent(percent[i]),
                    LiquidityTolerance::PipRange,
                ),
            })
            .collect();
        self.validate()?;
        Ok(self)
    }

    /// The configuration `perpdesk analyze` flags describe.
    pub fn from_args(args: &crate::cli::AnalyzeArgs) -> Result<Self, AnalyzeError> {
        let previous_timeframes = args
            .previous_timeframes
            .iter()
            .map(|label| Ok((label.trim().to_owned(), parse_timeframe(label.trim())?)))
            .collect::<Result<Vec<_>, AnalyzeError>>()?;
        let sessions = args
            .sessions
            .iter()
            .map(|name| parse_session(name))
            .collect::<Result<Vec<_>, AnalyzeError>>()?;
        for (flag, labels) in [
            (
                "--previous-timeframes",
                previous_timeframes
                    .iter()
                    .map(|t| t.0.as_str())
                    .collect::<Vec<_>>(),
            ),
            ("--sessions", sessions.iter().map(|s| s.0.as_str()).collect()),
        ] {
            if let Some(label) = labels
                .iter()
                .enumerate()
                .find_map(|(i, l)| labels[..i].contains(l).then_some(l))
            {
                return Err(AnalyzeError::Parameter {
                    flag,
                    reason: format!("{label} is given twice"),
                });
            }
        }
        Self {
            structure: Vec::new(),
            fair_value_gaps: args.join_consecutive,
            previous_timeframes,
            sessions,
        }
        .with_sets(&SetFlags {
            swing_length: args.swing_length.as_deref(),
            close_break: args.close_break.as_deref(),
            close_mitigation: args.close_mitigation.as_deref(),
            liquidity_range_percent: args.liquidity_range_percent.as_deref(),
            liquidity_pip_range: args.liquidity_pip_range.as_deref(),
        })
    }

    fn validate(&self) -> Result<(), AnalyzeError> {
        let mut labels: Vec<String> = self.structure.iter().map(StructureParams::label).collect();
        labels.sort();
        if let Some([twice, _]) = labels.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(AnalyzeError::Parameter {
                flag: "--swing-length",
                reason: format!("{twice} is given twice"),
            });
        }
        for params in &self.structure {
            if params.swing_length == 0 {
                return Err(AnalyzeError::Parameter {
                    flag: "--swing-length",
                    reason: "must be at least 1".to_owned(),
                });
            }
            let (flag, value) = match params.liquidity {
                LiquidityTolerance::RangePercent(p) => ("--liquidity-range-percent", p),
                LiquidityTolerance::PipRange(p) => ("--liquidity-pip-range", p),
            };
            if !(value.is_finite() && value >= 0.0) {
                return Err(AnalyzeError::Parameter {
                    flag,
                    reason: format!("must be a finite number >= 0, got {value}"),
                });
            }
        }
        Ok(())
    }
}

/// One output column: its name and one value per row (NaN = empty cell).
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: Vec<f64>,
}

impl Column {
    pub fn new(name: String, values: Vec<f64>) -> Self {
        Self { name, values }
    }
}

/// The computed columns of one input (the input columns come from the bars themselves).
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    pub rows: usize,
    /// Indicator and SMC columns, in output order.
    pub columns: Vec<Column>,
    /// The liquidity `pip_range` used, per parameter set label.
    pub pip_ranges: Vec<(String, f64)>,
}

impl Analysis {
    /// Every column name of the output, input columns first.
    pub fn header(&self) -> impl Iterator<Item = &str> {
        INPUT_COLUMNS
            .iter()
            .copied()
            .chain(self.columns.iter().map(|c| c.name.as_str()))
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// What a finished run reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub rows: usize,
    pub columns: usize,
    pub pip_ranges: Vec<(String, f64)>,
}

/// Computes every column for `bars` (in order, as [`input::read_bars`] returns them). `progress` is called
/// with the number of bars done every [`PROGRESS_EVERY`] bars. `source` names the input in errors.
pub fn analyze(
    bars: &[Bar],
    config: &AnalyzeConfig,
    source: &Path,
    progress: &mut dyn FnMut(usize),
) -> Result<Analysis, AnalyzeError> {
    config.validate()?;
    let rows = bars.len();
    let smc_error = |row: usize, error: SmcError| AnalyzeError::Smc {
        path: source.to_owned(),
        row,
        source: error,
    };
    let (high, low) = bars.iter().fold((f64::NEG_INFINITY, f64::INFINITY), |(h, l), b| {
        (h.max(b.high), l.min(b.low))
    });
    let range = if rows == 0 { 0.0 } else { high - low };

    let mut indicators = IndicatorFold::new(rows).map_err(|error| AnalyzeError::Indicators {
        path: source.to_owned(),
        row: 0,
        source: error,
    })?;
    let mut pip_ranges = Vec::with_capacity(config.structure.len());
    let mut sets = Vec::with_capacity(config.structure.len());
    for params in &config.structure {
        let pip = match params.liquidity {
            LiquidityTolerance::RangePercent(percent) => range * percent,
            LiquidityTolerance::PipRange(pip) => pip,
        };
        pip_ranges.push((params.label(), pip));
        // Gaps and the calendar families do not depend on the set: they run once, below.
        let smc = SmcConfig {
            swing_length: params.swing_length,
            close_break: params.close_break,
            close_mitigation: params.close_mitigation,
            liquidity_pip_range: pip,
            fvg_join_consecutive: false,
            previous_timeframes: Vec::new(),
            sessions: Vec::new(),
            // Research over a whole file: nothing is forgotten.
            history_window: None,
        };
        let mut engine = SmcEngine::new(&smc).map_err(|error| smc_error(0, error))?;
        engine.reserve(rows);
        sets.push((engine, StructureFold::new(params.label(), rows)));
    }
    let joins: &[bool] = match config.fair_value_gaps {
        FvgJoin::No => &[false],
        FvgJoin::Yes => &[true],
        FvgJoin::Both => &[false, true],
    };
    let mut gaps: Vec<(FairValueGapDetector, GapFold)> = joins
        .iter()
        .map(|&join| {
            let prefix = if join { "fvgj" } else { "fvg" };
            (FairValueGapDetector::new(join), GapFold::new(prefix, join, rows))
        })
        .collect();
    let mut ranges: Vec<(PreviousLevelsDetector, PreviousRangeFold)> = config
        .previous_timeframes
        .iter()
        .map(|(label, tf)| {
            (
                PreviousLevelsDetector::new(*tf),
                PreviousRangeFold::new(label.clone(), *tf, rows),
            )
        })
        .collect();
    let mut sessions: Vec<(SessionTracker, SessionFold)> = config
        .sessions
        .iter()
        .map(|(label, session)| {
            Ok((
                SessionTracker::new(*session)?,
                SessionFold::new(label.clone(), *session, rows),
            ))
        })
        .collect::<Result<_, SmcError>>()
        .map_err(|error| smc_error(0, error))?;

    let mut events: Vec<SmcEvent> = Vec::with_capacity(64);
    for (row, bar) in bars.iter().enumerate() {
        indicators.push(bar).map_err(|error| AnalyzeError::Indicators {
            path: source.to_owned(),
            row,
            source: error,
        })?;
        for (engine, fold) in &mut sets {
            events.clear();
            engine
                .on_bar(bar, &mut events)
                .map_err(|error| smc_error(row, error))?;
            for e in &events {
                fold.apply(e);
            }
        }
        for (detector, fold) in &mut gaps {
            events.clear();
            detector.on_bar(row, bar, &mut events);
            for e in &events {
                fold.apply(e);
            }
        }
        for (detector, fold) in &mut ranges {
            events.clear();
            detector.on_bar(row, bar, &mut events);
            for e in &events {
                fold.apply(e);
            }
        }
        for (tracker, fold) in &mut sessions {
            events.clear();
            tracker.on_bar(row, bar, &mut events);
            for e in &events {
                fold.apply(e);
            }
        }
        if (row + 1) % PROGRESS_EVERY == 0 {
            progress(row + 1);
        }
    }

    let mut columns = indicators.finish();
    for (_, fold) in gaps {
        columns.extend(fold.finish());
    }
    for (_, fold) in sets {
        columns.extend(fold.finish());
    }
    for (_, fold) in ranges {
        columns.extend(fold.finish());
    }
    for (_, fold) in sessions {
        columns.extend(fold.finish());
    }
    Ok(Analysis {
        rows,
        columns,
        pip_ranges,
    })
}

/// Reads `input`, analyses it and writes the CSV to `output` (standard output when `None`).
pub fn run(
    input: &Path,
    output: Option<&Path>,
    config: &AnalyzeConfig,
    progress: &mut dyn FnMut(usize),
) -> Result<Summary, AnalyzeError> {
    let bars = input::read_bars(input)?;
    let analysis = analyze(&bars, config, input, progress)?;
    let result = if let Some(path) = output {
        std::fs::File::create(path)
            .and_then(|file| write::write_csv(&bars, &analysis, file))
            .map_err(|error| (path.display().to_string(), error))
    } else {
        let stdout = std::io::stdout().lock();
        write::write_csv(&bars, &analysis, stdout)
            .and_then(|()| std::io::stdout().lock().flush())
            .map_err(|error| ("standard output".to_owned(), error))
    };
    result.map_err(|(target, source)| AnalyzeError::Output { target, source })?;
    Ok(Summary {
        rows: analysis.rows,
        columns: INPUT_COLUMNS.len() + analysis.columns.len(),
        pip_ranges: analysis.pip_ranges,
    })
}
