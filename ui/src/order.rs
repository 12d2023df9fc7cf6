//! Which scanner rows are shown and in what order: the filter and the sort.
//!
//! The view arrives in universe rank order; the operator may filter by symbol and sort by any column.
//! Both are UI state, applied here on every frame and key press (200 rows sort in microseconds), so the
//! engine never needs to know how the operator is looking at its rows.

use std::cmp::Ordering;

use crate::view::{PositionRow, ScannerRow, View};

/// A scanner column the rows can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    Rank,
    Symbol,
    LastPrice,
    Change24h,
    QuoteVolume24h,
    /// The current-bar change of `View::timeframes[index]`.
    Timeframe(usize),
}

impl SortColumn {
    /// The column after this one, wrapping to `Rank` after the last timeframe column.
    pub fn next(self, timeframe_count: usize) -> Self {
        match self {
            Self::Rank => Self::Symbol,
            Self::Symbol => Self::LastPrice,
            Self::LastPrice => Self::Change24h,
            Self::Change24h => Self::QuoteVolume24h,
            Self::QuoteVolume24h if timeframe_count > 0 => Self::Timeframe(0),
            Self::Timeframe(index) if index + 1 < timeframe_count => Self::Timeframe(index + 1),
            Self::QuoteVolume24h | Self::Timeframe(_) => Self::Rank,
        }
    }

    /// The direction a column starts in when chosen: names and ranks A→Z / 1→n, numbers largest first.
    pub fn natural_descending(self) -> bool {
        !matches!(self, Self::Rank | Self::Symbol)
    }
}

/// The sort the operator chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortOrder {
    pub column: SortColumn,
    pub descending: bool,
}

impl Default for SortOrder {
    /// Universe rank, 1 first: the order the engine sends.
    fn default() -> Self {
        Self {
            column: SortColumn::Rank,
            descending: false,
        }
    }
}

impl SortOrder {
    /// The column actually used against `view`: a timeframe column that the view no longer has falls
    /// back to rank.
    pub fn effective_column(self, view: &View) -> SortColumn {
        match self.column {
            SortColumn::Timeframe(index) if index >= view.timeframes.len() => SortColumn::Rank,
            column => column,
        }
    }
}

/// Whether `symbol` passes the filter (case-insensitive substring; an empty filter passes everything).
pub fn matches_filter(symbol: &str, filter: &str) -> bool {
    filter.is_empty() || symbol.to_ascii_lowercase().contains(&filter.to_ascii_lowercase())
}

/// The rows to show, filtered and sorted. Ties, and rows without a value for a timeframe column
/// (always last, whatever the direction), keep universe rank order so the list does not jitter.
pub fn ordered_rows<'v>(view: &'v View, filter: &str, sort: SortOrder) -> Vec<&'v ScannerRow> {
    let mut rows: Vec<&ScannerRow> = view
        .scanner
        .iter()
        .filter(|row| matches_filter(&row.symbol, filter))
        .collect();
    let column = sort.effective_column(view);
    rows.sort_by(|a, b| {
        let ordering = match column {
            SortColumn::Rank => a.rank.cmp(&b.rank),
            SortColumn::Symbol => a.symbol.cmp(&b.symbol),
            SortColumn::LastPrice => a.last_price.total_cmp(&b.last_price),
            SortColumn::Change24h => a.change_24h_pct.total_cmp(&b.change_24h_pct),
            SortColumn::QuoteVolume24h => a.quote_volume_24h.total_cmp(&b.quote_volume_24h),
            SortColumn::Timeframe(index) => {
                let value = |row: &ScannerRow| row.tf_change_pct.get(index).copied().flatten();
                match (value(a), value(b)) {
                    (Some(x), Some(y)) => x.total_cmp(&y),
                    // Missing values go last in both directions: undo the reversal below.
                    (Some(_), None) => return Ordering::Less,
                    (None, Some(_)) => return Ordering::Greater,
                    (None, None) => Ordering::Equal,
                }
            }
        };
        let ordering = if sort.descending {
            ordering.reverse()
        } else {
            ordering
        };
        ordering.then(a.rank.cmp(&b.rank))
    });
    rows
}

/// A positions-table column the rows can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionSortColumn {
    /// Risk score: the default, riskiest first.
    Risk,
    Symbol,
    /// Unrealised PnL in USDT.
    Pnl,
    /// PnL in R multiples.
    RMultiple,
    /// Distance to the stop.
    ToStop,
    Age,
}

impl PositionSortColumn {
    /// The column after this one in the `s` key's cycle.
    pub fn next(self) -> Self {
        match self {
            Self::Risk => Self::Symbol,
            Self::Symbol => Self::Pnl,
            Self::Pnl => Self::RMultiple,
            Self::RMultiple => Self::ToStop,
            Self::ToStop => Self::Age,
            Self::Age => Self::Risk,
        }
    }

    /// The direction a column starts in when chosen: the dangerous end first (riskiest, nearest the
    /// stop, biggest loss), symbols A→Z, oldest first.
    pub fn natural_descending(self) -> bool {
        matches!(self, Self::Risk | Self::Age)
    }
}

/// The positions sort the operator chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PositionSort {
    pub column: PositionSortColumn,
    pub descending: bool,
}

impl Default for PositionSort {
    /// Riskiest first: the position most likely to need the operator on top.
    fn default() -> Self {
        Self {
            column: PositionSortColumn::Risk,
            descending: true,
        }
    }
}

/// The position rows to show, filtered by symbol and sorted. Ties keep position id order (oldest id
/// first) so the table does not jitter; NaN numbers sort as the lowest.
pub fn ordered_positions<'v>(view: &'v View, filter: &str, sort: PositionSort) -> Vec<&'v PositionRow> {
    fn number(value: f64) -> f64 {
        if value.is_nan() { f64::NEG_INFINITY } else { value }
    }
    let mut rows: Vec<&PositionRow> = view
        .positions
        .rows
        .iter()
        .filter(|row| matches_filter(&row.symbol, filter))
        .collect();
    rows.sort_by(|a, b| {
        let ordering = match sort.column {
            PositionSortColumn::Risk => number(a.risk_score).total_cmp(&number(b.risk_score)),
            PositionSortColumn::Symbol => a.symbol.cmp(&b.symbol).then(a.side.cmp(&b.side)),
            PositionSortColumn::Pnl => number(a.pnl_usdt).total_cmp(&number(b.pnl_usdt)),
            PositionSortColumn::RMultiple => number(a.r_multiple).total_cmp(&number(b.r_multiple)),
            PositionSortColumn::ToStop => {
                let distance = |row: &PositionRow| row.to_stop_pct.map_or(f64::INFINITY, number);
                distance(a).total_cmp(&distance(b))
            }
            PositionSortColumn::Age => a.age_ms.cmp(&b.age_ms),
        };
        let ordering = if sort.descending {
            ordering.reverse()
        } else {
            ordering
        };
        ordering.then(a.id.cmp(&b.id))
    });
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(rank: u32, symbol: &str, change: f64, tf: Option<f64>) -> ScannerRow {
        ScannerRow {
            rank,
            symbol: symbol.to_owned(),
            last_price: f64::from(rank) * 10.0,
            price_decimals: 2,
            change_24h_pct: change,
            quote_volume_24h: 1e9 / f64::from(rank),
            tf_change_pct: vec![tf],
            ..ScannerRow::default()
        }
    }

    fn view() -> View {
        View {
            scanner: vec![
                row(1, "BTCUSDT", 1.0, Some(0.2)),
                row(2, "ETHUSDT", -2.0, None),
                row(3, "SOLUSDT", 5.0, Some(-0.4)),
                row(4, "ETCUSDT", 1.0, Some(0.9)),
            ],
            timeframes: vec!["5m".to_owned()],
            ..View::default()
        }
    }

    fn symbols(rows: &[&ScannerRow]) -> Vec<String> {
        rows.iter().map(|row| row.symbol.clone()).collect()
    }

    #[test]
    fn columns_cycle_through_every_timeframe_and_back_to_rank() {
        let mut column = SortColumn::Rank;
        let mut seen = vec![column];
        for _ in 0..7 {
            column = column.next(2);
            seen.push(column);
        }
        assert_eq!(
            seen,
            [
                SortColumn::Rank,
                SortColumn::Symbol,
                SortColumn::LastPrice,
                SortColumn::Change24h,
                SortColumn::QuoteVolume24h,
                SortColumn::Timeframe(0),
                SortColumn::Timeframe(1),
                SortColumn::Rank
            ]
        );
        assert_eq!(SortColumn::QuoteVolume24h.next(0), SortColumn::Rank);
    }

    #[test]
    fn ties_keep_rank_order_in_both_directions() {
        let view = view();
        let descending = SortOrder {
            column: SortColumn::Change24h,
            descending: true,
        };
        assert_eq!(
            symbols(&ordered_rows(&view, "", descending)),
            ["SOLUSDT", "BTCUSDT", "ETCUSDT", "ETHUSDT"]
        );
        let ascending = SortOrder {
            column: SortColumn::Change24h,
            descending: false,
        };
        assert_eq!(
            symbols(&ordered_rows(&view, "", ascending)),
            ["ETHUSDT", "BTCUSDT", "ETCUSDT", "SOLUSDT"]
        );
    }

    #[test]
    fn missing_timeframe_values_sort_last_either_way() {
        let view = view();
        let descending = SortOrder {
            column: SortColumn::Timeframe(0),
            descending: true,
        };
        assert_eq!(
            symbols(&ordered_rows(&view, "", descending)),
            ["ETCUSDT", "BTCUSDT", "SOLUSDT", "ETHUSDT"]
        );
        let ascending = SortOrder {
            column: SortColumn::Timeframe(0),
            descending: false,
        };
        assert_eq!(
            symbols(&ordered_rows(&view, "", ascending)),
            ["SOLUSDT", "BTCUSDT", "ETCUSDT", "ETHUSDT"]
        );
        let gone = SortOrder {
            column: SortColumn::Timeframe(5),
            descending: false,
        };
        assert_eq!(gone.effective_column(&view), SortColumn::Rank);
    }

    #[test]
    fn filter_is_a_case_insensitive_substring() {
        let view = view();
        assert_eq!(
            symbols(&ordered_rows(&view, "et", SortOrder::default())),
            ["ETHUSDT", "ETCUSDT"]
        );
        assert_eq!(
            symbols(&ordered_rows(&view, "SOL", SortOrder::default())),
            ["SOLUSDT"]
        );
        assert!(ordered_rows(&view, "xyz", SortOrder::default()).is_empty());
    }

    fn position(id: u64, symbol: &str, risk: f64, pnl: f64, to_stop: Option<f64>) -> PositionRow {
        PositionRow {
            id,
            symbol: symbol.to_owned(),
            risk_score: risk,
            pnl_usdt: pnl,
            to_stop_pct: to_stop,
            age_ms: 1_000 * id as i64,
            ..PositionRow::default()
        }
    }

    #[test]
    fn positions_sort_riskiest_first_and_filter_by_symbol() {
        let mut view = View::default();
        view.positions.rows = vec![
            position(1, "BTCUSDT", 0.3, 12.0, Some(2.0)),
            position(2, "ETHUSDT", 0.9, -40.0, Some(0.1)),
            position(3, "BTCUSDT", 0.3, -5.0, None),
            position(4, "SOLUSDT", f64::NAN, 1.0, Some(5.0)),
        ];
        let ids = |sort: PositionSort, filter: &str| -> Vec<u64> {
            ordered_positions(&view, filter, sort)
                .iter()
                .map(|row| row.id)
                .collect()
        };
        assert_eq!(
            ids(PositionSort::default(), ""),
            [2, 1, 3, 4],
            "ties by id, NaN last"
        );
        assert_eq!(ids(PositionSort::default(), "btc"), [1, 3]);
        let by = |column: PositionSortColumn| PositionSort {
            column,
            descending: column.natural_descending(),
        };
        assert_eq!(
            ids(by(PositionSortColumn::Pnl), ""),
            [2, 3, 4, 1],
            "biggest loss first"
        );
        assert_eq!(
            ids(by(PositionSortColumn::ToStop), ""),
            [2, 1, 4, 3],
            "no stop last"
        );
        assert_eq!(ids(by(PositionSortColumn::Age), ""), [4, 3, 2, 1], "oldest first");
        assert_eq!(ids(by(PositionSortColumn::Symbol), ""), [1, 3, 2, 4]);
        let mut column = PositionSortColumn::Risk;
        for _ in 0..6 {
            column = column.next();
        }
        assert_eq!(column, PositionSortColumn::Risk, "the cycle has six columns");
    }
}
