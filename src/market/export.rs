//! The closed-bar CSV that proves "no bar lost": what the console stored, and what the simulator says
//! it should have stored, in one byte-exact format.
//!
//! `perpdesk --export-bars FILE` writes every closed bar the engine holds when it stops;
//! `perpdesk sim --dump-bars FILE --like EXPORT` computes, from the simulator's seed, every bar between
//! the first and last open time of each series in the export. Both go through [`format_row`] and
//! [`sort_rows`], with prices and volumes at the symbol's precision — exactly the decimal strings the
//! venue sent — so `diff` between the two files is empty when nothing was lost, duplicated or altered.

use std::{
    collections::BTreeMap,
    io::{self, BufRead, Write},
};

use crate::domain::{Bar, Interval, TimestampMs};

/// The header line of the CSV.
pub const HEADER: &str = "symbol,interval,open_time,open,high,low,close,volume";

/// Why an export file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot read the bar export: {0}")]
    Io(#[from] io::Error),
    #[error("bar export line {line}: {problem}")]
    BadLine { line: usize, problem: String },
}

/// One row of the CSV, already formatted (the sort key comes first).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    pub symbol: String,
    pub interval: &'static str,
    pub open_time: TimestampMs,
    pub rest: String,
}

/// Formats one bar with `price_decimals` and `qty_decimals`, never in exponent notation.
pub fn format_row(
    symbol: &str,
    interval: Interval,
    bar: &Bar,
    price_decimals: u32,
    qty_decimals: u32,
) -> Row {
    let p = price_decimals as usize;
    let q = qty_decimals as usize;
    Row {
        symbol: symbol.to_owned(),
        interval: interval.as_str(),
        open_time: bar.open_time,
        rest: format!(
            "{:.p$},{:.p$},{:.p$},{:.p$},{:.q$}",
            bar.open, bar.high, bar.low, bar.close, bar.volume
        ),
    }
}

/// Sorts rows by symbol, interval, open time (both sides of a comparison use this order).
pub fn sort_rows(rows: &mut [Row]) {
    rows.sort();
}

/// Writes the header and the rows.
pub fn write_rows(out: &mut impl Write, rows: &[Row]) -> io::Result<()> {
    writeln!(out, "{HEADER}")?;
    for r in rows {
        writeln!(out, "{},{},{},{}", r.symbol, r.interval, r.open_time, r.rest)?;
    }
    out.flush()
}

/// Per (symbol, interval): the first and last open time of the series.
pub type SeriesRanges = BTreeMap<(String, Interval), (TimestampMs, TimestampMs)>;

/// The series of an export and their first and last open times, for the reference dump.
pub fn series_ranges(input: impl BufRead) -> Result<SeriesRanges, ExportError> {
    let mut out = SeriesRanges::new();
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        if (n == 0 && line.starts_with("symbol,")) || line.is_empty() {
            continue;
        }
        let bad = |problem: &str| ExportError::BadLine {
            line: n + 1,
            problem: problem.to_owned(),
        };
        let mut fields = line.split(',');
        let (Some(symbol), Some(interval), Some(open)) = (fields.next(), fields.next(), fields.next()) else {
            return Err(bad("expected symbol,interval,open_time,…"));
        };
        let interval: Interval = interval
            .parse()
            .map_err(|e: crate::domain::UnknownInterval| bad(&e.to_string()))?;
        let open: TimestampMs = open.parse().map_err(|_| bad("open_time is not a whole number"))?;
        let range = out.entry((symbol.to_owned(), interval)).or_insert((open, open));
        range.0 = range.0.min(open);
        range.1 = range.1.max(open);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(open_time: i64, close: f64) -> Bar {
        Bar {
            open_time,
            close_time: open_time + 59_999,
            open: 1.0,
            high: close.max(1.0),
            low: 0.5,
            close,
            volume: 12.345_678,
            quote_volume: 0.0,
            trades: 1,
            closed: true,
        }
    }

    #[test]
    fn rows_round_trip_through_the_range_reader() {
        let mut rows = vec![
            format_row("ETHUSDT", Interval::M1, &bar(120_000, 2.5), 2, 3),
            format_row("BTCUSDT", Interval::M5, &bar(300_000, 1.25), 1, 3),
            format_row("ETHUSDT", Interval::M1, &bar(60_000, 2.0), 2, 3),
        ];
        sort_rows(&mut rows);
        let mut text = Vec::new();
        write_rows(&mut text, &rows).expect("write");
        let text = String::from_utf8(text).expect("utf-8");
        assert_eq!(
            text,
            "symbol,interval,open_time,open,high,low,close,volume\n\
             BTCUSDT,5m,300000,1.0,1.2,0.5,1.2,12.346\n\
             ETHUSDT,1m,60000,1.00,2.00,0.50,2.00,12.346\n\
             ETHUSDT,1m,120000,1.00,2.50,0.50,2.50,12.346\n"
        );
        let ranges = series_ranges(text.as_bytes()).expect("ranges");
        assert_eq!(ranges[&("ETHUSDT".to_owned(), Interval::M1)], (60_000, 120_000));
        assert_eq!(ranges[&("BTCUSDT".to_owned(), Interval::M5)], (300_000, 300_000));
        let err = series_ranges("symbol,interval\nBTCUSDT,7x,1\n".as_bytes()).expect_err("bad interval");
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
