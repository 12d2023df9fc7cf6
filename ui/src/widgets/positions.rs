//! The positions table: every open position with what the operator needs to judge it, one per row.
//!
//! Columns: symbol, side, size, entry, mark, PnL in USDT and in % of margin, R multiple, leverage,
//! liquidation price, distance to the stop (`T` in front when the stop trails) and to the target, age,
//! the scheduler's current check interval, and the risk score with its heatmap glyph (`▓0.63`), so the
//! band reads without colour. Prices use each symbol's decimals; widths come from the data, like the
//! scanner. When the pane is too narrow, the columns least needed to decide "act or not" go first —
//! size, entry, age, PnL %, leverage, target, mark, liquidation, interval — rather than wrapping.
//! The title says how many rows are shown of how many positions are open (the view may carry only the
//! riskiest [`Positions::MAX_ROWS`](crate::view::Positions::MAX_ROWS)).

use ratatui::{
    buffer::Buffer,
    layout::{Alignment, Constraint, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Cell, Paragraph, Row, Table, Widget},
};

use crate::{
    format::{MISSING, format_age, format_count, format_pct, format_price},
    order::{PositionSort, PositionSortColumn},
    theme::Theme,
    view::{PositionRow, PositionSide, Positions},
    widgets::{heatmap::RiskBand, scheduler::format_interval},
};

const MIN_SYMBOL_WIDTH: u16 = 6;
const MAX_SYMBOL_WIDTH: u16 = 14;
const COLUMN_SPACING: u16 = 1;
const MAX_COLUMN_SPACING: u16 = 2;

/// One column of the table, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Symbol,
    Side,
    Size,
    Entry,
    Mark,
    Pnl,
    PnlPct,
    R,
    Leverage,
    Liquidation,
    Stop,
    Target,
    Age,
    Interval,
    Risk,
}

const ALL: [Column; 15] = [
    Column::Symbol,
    Column::Side,
    Column::Size,
    Column::Entry,
    Column::Mark,
    Column::Pnl,
    Column::PnlPct,
    Column::R,
    Column::Leverage,
    Column::Liquidation,
    Column::Stop,
    Column::Target,
    Column::Age,
    Column::Interval,
    Column::Risk,
];

/// Dropped in this order when the pane is too narrow. Symbol, side, PnL, R, stop and risk stay.
const DROPPABLE: [Column; 9] = [
    Column::Size,
    Column::Entry,
    Column::Age,
    Column::PnlPct,
    Column::Leverage,
    Column::Target,
    Column::Mark,
    Column::Liquidation,
    Column::Interval,
];

impl Column {
    fn name(self) -> &'static str {
        match self {
            Self::Symbol => "Symbol",
            Self::Side => "Side",
            Self::Size => "Size",
            Self::Entry => "Entry",
            Self::Mark => "Mark",
            Self::Pnl => "PnL",
            Self::PnlPct => "PnL%",
            Self::R => "R",
            Self::Leverage => "Lev",
            Self::Liquidation => "Liq",
            Self::Stop => "Stop",
            Self::Target => "Tgt",
            Self::Age => "Age",
            Self::Interval => "Chk",
            Self::Risk => "Risk",
        }
    }

    fn sort_column(self) -> Option<PositionSortColumn> {
        match self {
            Self::Symbol => Some(PositionSortColumn::Symbol),
            Self::Pnl => Some(PositionSortColumn::Pnl),
            Self::R => Some(PositionSortColumn::RMultiple),
            Self::Stop => Some(PositionSortColumn::ToStop),
            Self::Age => Some(PositionSortColumn::Age),
            Self::Risk => Some(PositionSortColumn::Risk),
            _ => None,
        }
    }
}

/// A base-asset size in at most 7 characters: `0.052`, `12.5`, `1,250`, `1.25M`.
pub fn format_size(size: f64) -> String {
    if !size.is_finite() {
        return MISSING.to_owned();
    }
    let magnitude = size.abs();
    if magnitude >= 100_000.0 {
        return crate::format::format_compact(size);
    }
    if magnitude >= 1_000.0 {
        return format_price(size, 0);
    }
    // Four significant digits, trailing zeros dropped.
    #[allow(clippy::cast_possible_truncation)]
    let integer_digits = if magnitude >= 1.0 {
        magnitude.log10().floor() as i32 + 1
    } else {
        0
    };
    let decimals = if magnitude > 0.0 && magnitude < 1.0 {
        #[allow(clippy::cast_possible_truncation)]
        let leading_zeros = (-magnitude.log10()).floor() as i32;
        (leading_zeros + 4).clamp(0, 6)
    } else {
        (4 - integer_digits).clamp(0, 6)
    };
    let text = format!("{size:.*}", usize::try_from(decimals).unwrap_or(0));
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// A signed USDT amount: `+1,234.56`, `-12.40`.
pub fn format_signed_usdt(value: f64) -> String {
    if !value.is_finite() {
        return MISSING.to_owned();
    }
    let sign = if value > 0.0 { "+" } else { "" };
    format!("{sign}{}", format_price(value, 2))
}

/// The positions pane.
#[derive(Debug, Clone, Copy)]
pub struct PositionsTable<'a> {
    /// The rows to show, filtered and sorted.
    pub rows: &'a [&'a PositionRow],
    /// The view's positions, for widths that do not jump while filtering and for the totals.
    pub positions: &'a Positions,
    pub sort: PositionSort,
    pub filter: &'a str,
    /// Index into `rows` of the selected row.
    pub selected: Option<usize>,
    /// Index into `rows` of the first row shown.
    pub scroll_offset: usize,
    pub theme: &'a Theme,
}

impl PositionsTable<'_> {
    /// Data rows that fit in `area` (inside the border, below the heading).
    pub fn data_rows(area: Rect) -> usize {
        usize::from(area.height.saturating_sub(3))
    }

    fn widest(&self, text: impl Fn(&PositionRow) -> String) -> u16 {
        self.positions
            .rows
            .iter()
            .map(|row| text(row).chars().count())
            .max()
            .map_or(0, |width| u16::try_from(width).unwrap_or(u16::MAX))
    }

    fn width(&self, column: Column) -> u16 {
        let heading = column.name().len() as u16 + 1;
        let data = match column {
            Column::Symbol => self
                .widest(|row| row.symbol.clone())
                .clamp(MIN_SYMBOL_WIDTH, MAX_SYMBOL_WIDTH),
            Column::Side | Column::Interval | Column::Risk => 5,
            Column::Size => self.widest(|row| format_size(row.size)),
            Column::Entry => self.widest(|row| format_price(row.entry, row.price_decimals)),
            Column::Mark => self.widest(|row| format_price(row.mark, row.price_decimals)),
            Column::Liquidation => self.widest(|row| {
                row.liquidation.map_or_else(
                    || MISSING.to_owned(),
                    |price| format_price(price, row.price_decimals),
                )
            }),
            Column::Pnl => self.widest(|row| format_signed_usdt(row.pnl_usdt)),
            Column::PnlPct => 7,
            Column::R => self.widest(|row| format_r(row.r_multiple)),
            Column::Leverage => self.widest(|row| format!("{}x", row.leverage)),
            Column::Stop => self.widest(stop_text),
            Column::Target => self.widest(|row| distance_text(row.to_target_pct)),
            Column::Age => 6,
        };
        data.max(heading)
    }

    fn content_width(&self, columns: &[Column]) -> u16 {
        columns.iter().map(|c| self.width(*c)).sum::<u16>()
            + COLUMN_SPACING * (columns.len() as u16).saturating_sub(1)
    }

    fn visible_columns(&self, width: u16) -> Vec<Column> {
        let mut columns = ALL.to_vec();
        for drop in DROPPABLE {
            if self.content_width(&columns) <= width {
                break;
            }
            columns.retain(|c| *c != drop);
        }
        columns
    }

    fn heading(&self, columns: &[Column]) -> Row<'static> {
        let muted = Style::new().fg(self.theme.muted);
        let sorted = Style::new().fg(self.theme.accent).add_modifier(Modifier::BOLD);
        Row::new(columns.iter().map(|column| {
            let (text, style) = if column.sort_column() == Some(self.sort.column) {
                let arrow = if self.sort.descending { "▼" } else { "▲" };
                (format!("{}{arrow}", column.name()), sorted)
            } else {
                (column.name().to_owned(), muted)
            };
            let alignment = if matches!(column, Column::Symbol | Column::Side) {
                Alignment::Left
            } else {
                Alignment::Right
            };
            Cell::from(Line::from(text).alignment(alignment)).style(style)
        }))
    }

    fn signed_colour(&self, value: f64) -> Color {
        if value > 0.0 {
            self.theme.up
        } else if value < 0.0 {
            self.theme.down
        } else {
            self.theme.muted
        }
    }

    fn right(text: String, style: Style) -> Cell<'static> {
        Cell::from(Line::from(Span::styled(text, style)).right_aligned())
    }

    fn data_row(&self, row: &PositionRow, columns: &[Column], selected: bool) -> Row<'static> {
        let theme = self.theme;
        let plain = Style::new();
        let band = RiskBand::of(row.risk_score);
        let cells = columns.iter().map(|column| match column {
            Column::Symbol => Cell::from(Span::styled(
                row.symbol.clone(),
                Style::new().add_modifier(Modifier::BOLD),
            )),
            Column::Side => {
                let colour = match row.side {
                    PositionSide::Long => theme.up,
                    PositionSide::Short => theme.down,
                };
                Cell::from(Span::styled(row.side.as_str(), Style::new().fg(colour)))
            }
            Column::Size => Self::right(format_size(row.size), plain),
            Column::Entry => Self::right(format_price(row.entry, row.price_decimals), plain),
            Column::Mark => Self::right(format_price(row.mark, row.price_decimals), plain),
            Column::Pnl => Self::right(
                format_signed_usdt(row.pnl_usdt),
                Style::new()
                    .fg(self.signed_colour(row.pnl_usdt))
                    .add_modifier(Modifier::BOLD),
            ),
            Column::PnlPct => Self::right(
                format_pct(row.pnl_pct),
                Style::new().fg(self.signed_colour(row.pnl_pct)),
            ),
            Column::R => Self::right(
                format_r(row.r_multiple),
                Style::new().fg(self.signed_colour(row.r_multiple)),
            ),
            Column::Leverage => Self::right(format!("{}x", row.leverage), plain),
            Column::Liquidation => Self::right(
                row.liquidation.map_or_else(
                    || MISSING.to_owned(),
                    |price| format_price(price, row.price_decimals),
                ),
                Style::new().fg(theme.muted),
            ),
            Column::Stop => {
                // The stop distance takes the position's risk colour: it is what the score is made of.
                let colour = match band {
                    RiskBand::Low | RiskBand::Medium => theme.text,
                    RiskBand::High | RiskBand::Critical => band.colour(theme),
                };
                Self::right(stop_text(row), Style::new().fg(colour))
            }
            Column::Target => Self::right(distance_text(row.to_target_pct), plain),
            Column::Age => Self::right(
                format_age(u64::try_from(row.age_ms).unwrap_or(0)),
                Style::new().fg(theme.muted),
            ),
            Column::Interval => Self::right(format_interval(row.interval_ms), Style::new().fg(theme.muted)),
            Column::Risk => {
                let mut style = Style::new().fg(band.colour(theme));
                if band == RiskBand::Critical {
                    style = style.add_modifier(Modifier::BOLD);
                }
                Self::right(format!("{}{}", band.glyph(), risk_text(row.risk_score)), style)
            }
        });
        let style = if selected {
            Style::new()
                .fg(theme.selection_fg)
                .bg(theme.selection_bg)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().fg(theme.text)
        };
        Row::new(cells).style(style)
    }

    fn title(&self) -> Line<'static> {
        let positions = self.positions;
        let open = positions.open.max(positions.rows.len() as u64);
        let shown = if self.filter.is_empty() && self.rows.len() as u64 == open {
            format!("{} open ", format_count(open))
        } else {
            format!(
                "{} of {} open ",
                format_count(self.rows.len() as u64),
                format_count(open)
            )
        };
        let mut spans = vec![
            Span::styled(
                " Positions ",
                Style::new().fg(self.theme.title).add_modifier(Modifier::BOLD),
            ),
            Span::styled(shown, Style::new().fg(self.theme.muted)),
        ];
        if open > 0 || positions.realized_pnl != 0.0 {
            spans.push(Span::styled("uPnL ", Style::new().fg(self.theme.muted)));
            spans.push(Span::styled(
                format_signed_usdt(positions.unrealized_pnl),
                Style::new().fg(self.signed_colour(positions.unrealized_pnl)),
            ));
            spans.push(Span::styled("  realised ", Style::new().fg(self.theme.muted)));
            spans.push(Span::styled(
                format!("{} ", format_signed_usdt(positions.realized_pnl)),
                Style::new().fg(self.signed_colour(positions.realized_pnl)),
            ));
        }
        Line::from(spans)
    }
}

/// `+1.25R`.
fn format_r(r: f64) -> String {
    if r.is_finite() {
        format!("{r:+.2}R")
    } else {
        MISSING.to_owned()
    }
}

/// `0.63`, the risk score with two decimals (clamped to 0..=9.99 so it keeps its width).
fn risk_text(score: f64) -> String {
    if score.is_finite() {
        format!("{:.2}", score.clamp(0.0, 9.99))
    } else {
        MISSING.to_owned()
    }
}

/// `1.23%`: a distance to a level; negative once the mark is past it.
fn distance_text(distance: Option<f64>) -> String {
    match distance {
        Some(value) if value.is_finite() => format!("{value:.2}%"),
        _ => MISSING.to_owned(),
    }
}

/// The stop distance, `T` in front when the stop trails.
fn stop_text(row: &PositionRow) -> String {
    let distance = distance_text(row.to_stop_pct);
    if row.trailing {
        format!("T {distance}")
    } else {
        distance
    }
}

impl Widget for PositionsTable<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let muted = Style::new().fg(self.theme.muted);
        let mut block = Block::new()
            .borders(Borders::ALL)
            .border_style(Style::new().fg(self.theme.border))
            .title(self.title());
        if !self.filter.is_empty() {
            block = block.title(
                Line::from(vec![
                    Span::styled(" filter ", muted),
                    Span::styled(
                        self.filter.to_owned(),
                        Style::new().fg(self.theme.accent).add_modifier(Modifier::BOLD),
                    ),
                    Span::raw(" "),
                ])
                .right_aligned(),
            );
        }
        let inner = block.inner(area);
        block.render(area, buf);
        if self.rows.is_empty() {
            let message = if self.positions.rows.is_empty() {
                "no open positions".to_owned()
            } else {
                format!("no position's symbol contains \"{}\"", self.filter)
            };
            let line_area = Rect {
                y: inner.y + inner.height / 2,
                height: inner.height.min(1),
                ..inner
            };
            Paragraph::new(message)
                .style(muted)
                .centered()
                .render(line_area, buf);
            return;
        }
        let page = Self::data_rows(area);
        let columns = self.visible_columns(inner.width);
        let column_widths: Vec<u16> = columns.iter().map(|c| self.width(*c)).collect();
        let content: u16 = column_widths.iter().sum();
        let gaps = (column_widths.len() as u16).saturating_sub(1).max(1);
        let spacing = (inner.width.saturating_sub(content) / gaps).clamp(COLUMN_SPACING, MAX_COLUMN_SPACING);
        let widths: Vec<Constraint> = column_widths.into_iter().map(Constraint::Length).collect();
        let rows: Vec<Row> = self
            .rows
            .iter()
            .enumerate()
            .skip(self.scroll_offset)
            .take(page)
            .map(|(index, row)| self.data_row(row, &columns, self.selected == Some(index)))
            .collect();
        Table::new(rows, widths)
            .header(self.heading(&columns))
            .column_spacing(spacing)
            .render(inner, buf);
        let total = self.rows.len();
        if total > page && page > 0 {
            // `12–19 of 40` on the bottom border: where the window is in a long list.
            let last = (self.scroll_offset + page).min(total);
            Line::from(Span::styled(
                format!(" {}–{last} of {total} ", self.scroll_offset + 1),
                muted,
            ))
            .right_aligned()
            .render(
                Rect {
                    y: area.bottom().saturating_sub(1),
                    height: 1,
                    x: area.x + 1,
                    width: area.width.saturating_sub(2),
                },
                buf,
            );
        }
        if let Some(selected) = self.selected
            && let Some(row) = selected.checked_sub(self.scroll_offset).filter(|row| *row < page)
        {
            buf[(area.x, inner.y + 1 + row as u16)]
                .set_symbol("▶")
                .set_style(Style::new().fg(self.theme.accent));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn row() -> PositionRow {
        PositionRow {
            id: 1,
            symbol: "BTCUSDT".to_owned(),
            side: PositionSide::Short,
            size: 0.052,
            price_decimals: 1,
            entry: 97_234.5,
            mark: 97_010.2,
            pnl_usdt: 11.66,
            pnl_pct: 2.31,
            r_multiple: 0.46,
            leverage: 20,
            liquidation: Some(101_530.4),
            to_stop_pct: Some(0.52),
            to_target_pct: Some(1.03),
            age_ms: 754_000,
            interval_ms: 500,
            risk_score: 0.63,
            trailing: true,
        }
    }

    fn render(rows: &[PositionRow], width: u16, height: u16) -> String {
        let theme = Theme::builtin("default").unwrap();
        let positions = Positions {
            rows: rows.to_vec(),
            open: rows.len() as u64,
            unrealized_pnl: rows.iter().map(|row| row.pnl_usdt).sum(),
            realized_pnl: -3.5,
        };
        let shown: Vec<&PositionRow> = positions.rows.iter().collect();
        let mut buf = Buffer::empty(Rect::new(0, 0, width, height));
        PositionsTable {
            rows: &shown,
            positions: &positions,
            sort: PositionSort::default(),
            filter: "",
            selected: Some(0),
            scroll_offset: 0,
            theme: &theme,
        }
        .render(buf.area, &mut buf);
        (0..height)
            .map(|y| (0..width).map(|x| buf[(x, y)].symbol()).collect::<String>() + "\n")
            .collect()
    }

    #[test]
    fn sizes_and_amounts_are_short() {
        assert_eq!(format_size(0.052), "0.052");
        assert_eq!(format_size(0.000_123_45), "0.000123");
        assert_eq!(format_size(12.5), "12.5");
        assert_eq!(format_size(3.0), "3");
        assert_eq!(format_size(1_250.0), "1,250");
        assert_eq!(format_size(2_500_000.0), "2.50M");
        assert_eq!(format_signed_usdt(1_234.561), "+1,234.56");
        assert_eq!(format_signed_usdt(-12.4), "-12.40");
        assert_eq!(format_signed_usdt(0.0), "0.00");
        assert_eq!(format_r(-0.8), "-0.80R");
    }

    #[test]
    fn a_wide_pane_shows_every_column() {
        let text = render(&[row()], 130, 4);
        for heading in [
            "Symbol", "Side", "Size", "Entry", "Mark", "PnL", "PnL%", "R", "Lev", "Liq", "Stop", "Tgt",
            "Age", "Chk", "Risk▼",
        ] {
            assert!(text.contains(heading), "{heading}:\n{text}");
        }
        for value in [
            "BTCUSDT",
            "SHORT",
            "0.052",
            "97,234.5",
            "97,010.2",
            "+11.66",
            "+2.31%",
            "+0.46R",
            "20x",
            "101,530.4",
            "T 0.52%",
            "1.03%",
            "12m34s",
            "500ms",
            "▓0.63",
        ] {
            assert!(text.contains(value), "{value}:\n{text}");
        }
        assert!(
            text.contains("Positions 1 open uPnL +11.66  realised -3.50"),
            "{text}"
        );
    }

    #[test]
    fn narrow_panes_drop_columns_instead_of_wrapping() {
        let text = render(&[row()], 80, 4);
        assert!(!text.contains("Size") && !text.contains("Entry"), "{text}");
        assert!(text.contains("Liq") && text.contains("Chk"), "{text}");
        let text = render(&[row()], 50, 4);
        for kept in ["BTCUSDT", "SHORT", "+11.66", "+0.46R", "T 0.52%", "▓0.63"] {
            assert!(text.contains(kept), "{kept}:\n{text}");
        }
        assert!(!text.contains("Liq") && !text.contains("Mark"), "{text}");
    }

    #[test]
    fn empty_table_says_so() {
        let text = render(&[], 60, 5);
        assert!(text.contains("no open positions"), "{text}");
    }
}
