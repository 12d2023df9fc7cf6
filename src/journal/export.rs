//! `perpdesk journal export`: the journal's trades and lifecycle events as CSV, for a spreadsheet or a
//! tax report, read from a read-only connection so it can run next to a live engine.
//!
//! `trades.csv` has one row per position (open or closed) with its prices, fees, funding and realised
//! `PnL`; `events.csv` one row per lifecycle event with its JSON payload; `strategy_changes.csv` one row per
//! change of the strategy evolver's parameter set, with its reason and details. Times are written twice: epoch
//! milliseconds (exact, sortable) and RFC 3339 UTC (readable). Money is written with the digits the
//! journal holds, never through a float.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use super::{Journal, JournalError, side_str};

/// File names written into the output directory.
pub const TRADES_FILE: &str = "trades.csv";
pub const EVENTS_FILE: &str = "events.csv";
pub const STRATEGY_CHANGES_FILE: &str = "strategy_changes.csv";

const TRADES_HEADER: &[&str] = &[
    "position_id",
    "execution",
    "symbol",
    "side",
    "status",
    "qty",
    "entry_price",
    "exit_price",
    "leverage",
    "take_profit",
    "stop_loss",
    "opened_at_ms",
    "opened_at",
    "closed_at_ms",
    "closed_at",
    "close_reason",
    "fees_paid",
    "funding_paid",
    "realised_pnl",
    "strategy",
    "mode",
];

const EVENTS_HEADER: &[&str] = &["id", "at_ms", "at", "position_id", "kind", "payload"];

const STRATEGY_CHANGES_HEADER: &[&str] = &["at_ms", "at", "from_set", "to_set", "reason", "details"];

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub trades: usize,
    pub events: usize,
    pub strategy_changes: usize,
    pub trades_file: PathBuf,
    pub events_file: PathBuf,
    pub strategy_changes_file: PathBuf,
}

/// RFC 3339 UTC text of epoch milliseconds (empty for out-of-range values).
fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn field(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text.into()
    }
}

fn write_row(out: &mut impl Write, cells: &[String]) -> std::io::Result<()> {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        out.write_all(field(cell).as_bytes())?;
    }
    out.write_all(b"\n")
}

fn opt<T: ToString>(value: Option<&T>) -> String {
    value.map(ToString::to_string).unwrap_or_default()
}

/// Writes `trades.csv`, `events.csv` and `strategy_changes.csv` for the journal at `journal_file` into
/// `out_dir` (created if missing). Each file is written to a temporary name and renamed, so a reader never sees half a file.
pub fn export_csv(journal_file: &Path, out_dir: &Path) -> Result<ExportSummary, JournalError> {
    let journal = Journal::open_read_only(journal_file)?;
    std::fs::create_dir_all(out_dir).map_err(|source| JournalError::CreateDir {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let positions = journal.positions()?;
    let trades_file = out_dir.join(TRADES_FILE);
    write_atomically(&trades_file, |out| {
        write_row(
            out,
            &TRADES_HEADER.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>(),
        )?;
        for p in &positions {
            write_row(
                out,
                &[
                    p.position_id.clone(),
                    p.execution.as_str().to_owned(),
                    p.symbol.clone(),
                    side_str(p.side).to_owned(),
                    p.status.as_str().to_owned(),
                    p.qty.to_string(),
                    p.entry_price.to_string(),
                    opt(p.exit_price.as_ref()),
                    p.leverage.to_string(),
                    opt(p.take_profit.as_ref()),
                    opt(p.stop_loss.as_ref()),
                    p.opened_at_ms.to_string(),
                    rfc3339(p.opened_at_ms),
                    opt(p.closed_at_ms.as_ref()),
                    p.closed_at_ms.map(rfc3339).unwrap_or_default(),
                    p.close_reason.clone().unwrap_or_default(),
                    p.fees_paid.to_string(),
                    p.funding_paid.to_string(),
                    p.realised_pnl.to_string(),
                    p.strategy.clone(),
                    p.mode.clone(),
                ],
            )?;
        }
        Ok(())
    })?;
    let events_file = out_dir.join(EVENTS_FILE);
    let mut events = 0;
    write_atomically(&events_file, |out| {
        write_row(
            out,
            &EVENTS_HEADER.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>(),
        )?;
        let mut after = 0;
        loop {
            let page = journal
                .events_after(after, 10_000)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let Some((last, _)) = page.last() else { break };
            after = *last;
            for (id, e) in &page {
                write_row(
                    out,
                    &[
                        id.to_string(),
                        e.at_ms.to_string(),
                        rfc3339(e.at_ms),
                        e.position_id.clone(),
                        e.kind.as_str().to_owned(),
                        e.payload.to_string(),
                    ],
                )?;
            }
            events += page.len();
        }
        Ok(())
    })?;
    let changes = journal.strategy_changes()?;
    let strategy_changes_file = out_dir.join(STRATEGY_CHANGES_FILE);
    write_atomically(&strategy_changes_file, |out| {
        write_row(
            out,
            &STRATEGY_CHANGES_HEADER
                .iter()
                .map(|h| (*h).to_owned())
                .collect::<Vec<_>>(),
        )?;
        for c in &changes {
            write_row(
                out,
                &[
                    c.at_ms.to_string(),
                    rfc3339(c.at_ms),
                    c.from_set.clone(),
                    c.to_set.clone(),
                    c.reason.clone(),
                    c.details.to_string(),
                ],
            )?;
        }
        Ok(())
    })?;
    Ok(ExportSummary {
        trades: positions.len(),
        events,
        strategy_changes: changes.len(),
        trades_file,
        events_file,
        strategy_changes_file,
    })
}

fn write_atomically(
    path: &Path,
    body: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), JournalError> {
    let io = |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("csv.tmp");
    let file = File::create(&tmp).map_err(io)?;
    let mut out = BufWriter::new(file);
    body(&mut out).map_err(io)?;
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
