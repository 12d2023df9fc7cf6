//! Reading bar files for `perpdesk analyze`: the golden inputs, our kline CSVs and Binance's dumps, with
//! errors that name the file and the line.
//!
//! Research data arrives in three shapes, and one reader takes all of them so a trader never converts files:
//!
//! * the golden inputs of `../shared/golden/inputs`: `idx,time,open_time_ms,open,high,low,close,volume`;
//! * the kline CSVs of `../shared/data/klines`: `open_time_ms,open,high,low,close,volume`, optionally followed
//!   by `close_time_ms,quote_volume,trades,…`, with or without that header line;
//! * Binance's public kline dumps (`data.binance.vision`): `open_time,open,high,low,close,volume,close_time,
//!   quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore`, with or without header. Newer spot
//!   dumps give times in microseconds; any open time ≥ 10¹⁴ is read as microseconds.
//!
//! With a header, columns are found by name (case-insensitive; other columns, such as the golden `time`, are
//! ignored); without one, by position. Every bar is checked as the analysers need it — finite prices and
//! volume, `high >= low`, open times strictly increasing — and the first bad line stops the read with an
//! [`InputError`] naming the file and the 1-based line. A file without `close_time` gets each bar's close
//! time from the bar interval, taken as the smallest gap between consecutive open times.

use std::path::{Path, PathBuf};

use crate::domain::{Bar, TimestampMs};

/// Open times at or above this are microseconds (Binance spot dumps since 2025); milliseconds reach it in
/// the year 5138.
const MICROSECONDS_FROM: i64 = 100_000_000_000_000;

/// Why a bar file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: the file holds no bars", path.display())]
    Empty { path: PathBuf },
    #[error("{}:{line}: header has no `{column}` column (found: {found})", path.display())]
    MissingColumn {
        path: PathBuf,
        line: usize,
        column: &'static str,
        found: String,
    },
    #[error("{}:{line}: expected at least {expected} fields, found {found}", path.display())]
    TooFewFields {
        path: PathBuf,
        line: usize,
        expected: usize,
        found: usize,
    },
    #[error("{}:{line}: `{column}` is not a number: `{value}`", path.display())]
    NotANumber {
        path: PathBuf,
        line: usize,
        column: &'static str,
        value: String,
    },
    #[error("{}:{line}: {problem}", path.display())]
    BadBar {
        path: PathBuf,
        line: usize,
        problem: String,
    },
}

/// Where each needed value sits in a line.
#[derive(Debug, Clone, Copy)]
struct Layout {
    open_time: usize,
    open: usize,
    high: usize,
    low: usize,
    close: usize,
    volume: usize,
    close_time: Option<usize>,
    quote_volume: Option<usize>,
    trades: Option<usize>,
}

impl Layout {
    /// Headerless files: Binance's column order, which our kline CSVs share.
    const POSITIONAL: Self = Self {
        open_time: 0,
        open: 1,
        high: 2,
        low: 3,
        close: 4,
        volume: 5,
        close_time: Some(6),
        quote_volume: Some(7),
        trades: Some(8),
    };

    fn from_header(path: &Path, line: usize, header: &str) -> Result<Self, InputError> {
        let names: Vec<String> = header
            .split(',')
            .map(|name| name.trim().trim_matches('"').to_ascii_lowercase())
            .collect();
        let find = |candidates: &[&str]| {
            candidates
                .iter()
                .find_map(|candidate| names.iter().position(|name| name == candidate))
        };
        let require = |column: &'static str, candidates: &[&str]| {
            find(candidates).ok_or_else(|| InputError::MissingColumn {
                path: path.to_owned(),
                line,
                column,
                found: names.join(","),
            })
        };
        Ok(Self {
            open_time: require("open_time_ms", &["open_time_ms", "open_time", "opentime"])?,
            open: require("open", &["open"])?,
            high: require("high", &["high"])?,
            low: require("low", &["low"])?,
            close: require("close", &["close"])?,
            volume: require("volume", &["volume"])?,
            close_time: find(&["close_time_ms", "close_time"]),
            quote_volume: find(&["quote_volume", "quote_asset_volume"]),
            trades: find(&["trades", "count", "number_of_trades"]),
        })
    }

    fn required_fields(&self) -> usize {
        [
            self.open_time,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
            + 1
    }
}

/// Reads every bar of `path` (see the module docs for the accepted formats).
pub fn read_bars(path: &Path) -> Result<Vec<Bar>, InputError> {
    let text = std::fs::read_to_string(path).map_err(|source| InputError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_bars(path, &text)
}

/// Parses the text of a bar file; `path` is only used in error messages.
pub fn parse_bars(path: &Path, text: &str) -> Result<Vec<Bar>, InputError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim_end_matches('\r')))
        .filter(|(_, line)| !line.trim().is_empty())
        .peekable();
    let Some(&(first_number, first)) = lines.peek() else {
        return Err(InputError::Empty {
            path: path.to_owned(),
        });
    };
    let has_header = first
        .split(',')
        .next()
        .is_some_and(|cell| cell.trim().parse::<f64>().is_err());
    let layout = if has_header {
        lines.next();
        Layout::from_header(path, first_number, first)?
    } else {
        Layout::POSITIONAL
    };
    let mut bars: Vec<Bar> = Vec::with_capacity(text.len() / 48);
    let mut fields: Vec<&str> = Vec::with_capacity(16);
    let mut any_close_time = false;
    for (number, line) in lines {
        fields.clear();
        fields.extend(line.split(','));
        let bar = parse_line(path, number, &fields, &layout)?;
        any_close_time |= bar.close_time != bar.open_time;
        if let Some(previous) = bars.last()
            && bar.open_time <= previous.open_time
        {
            return Err(InputError::BadBar {
                path: path.to_owned(),
                line: number,
                problem: format!(
                    "open time {} is not after the previous bar's {}",
                    bar.open_time, previous.open_time
                ),
            });
        }
        bars.push(bar);
    }
    if bars.is_empty() {
        return Err(InputError::Empty {
            path: path.to_owned(),
        });
    }
    if !any_close_time {
        fill_close_times(&mut bars);
    }
    Ok(bars)
}

fn parse_line(path: &Path, line: usize, fields: &[&str], layout: &Layout) -> Result<Bar, InputError> {
    let needed = layout.required_fields();
    if fields.len() < needed {
        return Err(InputError::TooFewFields {
            path: path.to_owned(),
            line,
            expected: needed,
            found: fields.len(),
        });
    }
    let number = |index: usize, column: &'static str| -> Result<f64, InputError> {
        let cell = fields[index].trim().trim_matches('"');
        cell.parse::<f64>().map_err(|_| InputError::NotANumber {
            path: path.to_owned(),
            line,
            column,
            value: cell.to_owned(),
        })
    };
    let optional = |index: Option<usize>| {
        index
            .and_then(|i| fields.get(i))
            .and_then(|cell| cell.trim().trim_matches('"').parse::<f64>().ok())
    };
    let open_time = time_ms(number(layout.open_time, "open_time")?);
    let bar = Bar {
        open_time,
        close_time: optional(layout.close_time).map_or(open_time, time_ms),
        open: number(layout.open, "open")?,
        high: number(layout.high, "high")?,
        low: number(layout.low, "low")?,
        close: number(layout.close, "close")?,
        volume: number(layout.volume, "volume")?,
        quote_volume: optional(layout.quote_volume).unwrap_or(0.0),
        trades: optional(layout.trades).map_or(0, |t| t as u64),
        closed: true,
    };
    let finite = [bar.open, bar.high, bar.low, bar.close, bar.volume]
        .iter()
        .all(|v| v.is_finite());
    let problem = if !finite {
        Some("a price or the volume is not finite".to_owned())
    } else if bar.high < bar.low {
        Some(format!("high {} is below low {}", bar.high, bar.low))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(InputError::BadBar {
            path: path.to_owned(),
            line,
            problem,
        }),
        None => Ok(bar),
    }
}

/// A time cell in milliseconds (microseconds converted).
fn time_ms(value: f64) -> TimestampMs {
    let t = value as i64;
    if t >= MICROSECONDS_FROM { t / 1000 } else { t }
}

/// Close time = open time + bar interval − 1, the interval being the smallest gap between open times.
fn fill_close_times(bars: &mut [Bar]) {
    let step = bars
        .windows(2)
        .map(|pair| pair[1].open_time - pair[0].open_time)
        .min();
    if let Some(step) = step {
        for bar in bars {
            bar.close_time = bar.open_time + step - 1;
        }
    }
}

#[cfg(test)]
// Literals are written as they appear in the golden files and in Python's output.
#[allow(clippy::unreadable_literal)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Bar>, InputError> {
        parse_bars(Path::new("bars.csv"), text)
    }

    #[test]
    fn golden_input_format() {
        let bars = parse(
            "idx,time,open_time_ms,open,high,low,close,volume\n\
             0,2021-11-15 00:00:00,1636934400000,1.1893,1.1954,1.1891,1.1941,9289043.5\n\
             1,2021-11-15 00:05:00,1636934700000,1.1941,1.1993,1.1934,1.2065000000000001,7267451.9\n",
        )
        .expect("valid");
        assert_eq!(bars.len(), 2);
        assert_eq!(bars[1].open_time, 1_636_934_700_000);
        assert_eq!(bars[1].close, 1.2065000000000001);
        assert_eq!(bars[0].close_time, 1_636_934_400_000 + 299_999);
        assert!(bars.iter().all(|b| b.closed));
    }

    #[test]
    fn kline_format_with_and_without_header() {
        let body = "1689678780000,29996.9,30002,29996.9,30001.9,60.905\n\
                    1689678840000,30002,30002,30001.3,30001.4,65.706\n";
        let with = parse(&format!("open_time_ms,open,high,low,close,volume\n{body}")).expect("valid");
        let without = parse(body).expect("valid");
        assert_eq!(with, without);
        assert_eq!(with[0].high, 30002.0);
        assert_eq!(with[1].volume, 65.706);
        assert_eq!(with[0].close_time, 1_689_678_839_999);
    }

    #[test]
    fn binance_dump_with_microseconds_and_extra_columns() {
        let line = "1735689600000000,93576.00,93610.93,93537.50,93607.74,8.21827,1735689659999999,\
                    769096.90,1484,4.28541,401043.23,0\n";
        let bars = parse(line).expect("valid");
        assert_eq!(bars[0].open_time, 1_735_689_600_000);
        assert_eq!(bars[0].close_time, 1_735_689_659_999);
        assert_eq!(bars[0].trades, 1484);
        assert_eq!(bars[0].quote_volume, 769_096.90);
        let header = "open_time,open,high,low,close,volume,close_time,quote_volume,count,\
                      taker_buy_volume,taker_buy_quote_volume,ignore\n";
        assert_eq!(parse(&format!("{header}{line}")).expect("valid"), bars);
    }

    #[test]
    fn errors_name_file_and_line() {
        let err = parse("open_time_ms,open,high,low,close,volume\n1,1,2,0.5,1,1\n2,1,2,x,1,1\n")
            .expect_err("bad low");
        assert_eq!(err.to_string(), "bars.csv:3: `low` is not a number: `x`");
        let err = parse("1,1,2,0.5,1,1\n\n1,1,2,0.5,1,1\n").expect_err("repeated time");
        assert_eq!(
            err.to_string(),
            "bars.csv:3: open time 1 is not after the previous bar's 1"
        );
        let err = parse("1,1,0.5,2,1,1\n").expect_err("high < low");
        assert_eq!(err.to_string(), "bars.csv:1: high 0.5 is below low 2");
        let err = parse("1,1,2,0.5\n").expect_err("short");
        assert_eq!(err.to_string(), "bars.csv:1: expected at least 6 fields, found 4");
        let err = parse("time,open,high,low,close,volume\n").expect_err("no time column");
        assert!(
            err.to_string()
                .starts_with("bars.csv:1: header has no `open_time_ms` column")
        );
        assert!(matches!(parse("\n\n"), Err(InputError::Empty { .. })));
        assert!(matches!(
            parse("open_time_ms,open,high,low,close,volume\n"),
            Err(InputError::Empty { .. })
        ));
    }
}
