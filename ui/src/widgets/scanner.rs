//! The scanner table: the universe at a glance, one row per symbol, sortable and filterable.
//!
//! Column widths come from the data (the longest symbol, the widest price) so that prices line up on
//! the decimal point and the table is only as wide as it needs to be; the chart gets the rest. The
//! sorted column carries an arrow in its heading, the title says how many symbols pass the filter, and
//! a thumb on the right border shows where the window is in a long list.

use ratatui::{
    buffer::Buffer,
    layout::{Alignment, Constraint, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Cell, Paragraph, Row, Table, Widget},
};

use crate::{
    format::{MISSING, format_compact, format_pct, format_price},
    order::{SortColumn, SortOrder},
    theme::Theme,
    view::ScannerRow,
};

const CHANGE_WIDTH: u16 = 7;
const VOLUME_WIDTH: u16 = 7;
const MIN_SYMBOL_WIDTH: u16 = 8;
const MAX_SYMBOL_WIDTH: u16 = 16;
const COLUMN_SPACING: u16 = 1;
const MAX_COLUMN_SPACING: u16 = 2;

/// The scanner pane.
#[derive(Debug, Clone, Copy)]
pub struct ScannerTable<'a> {
    /// The rows to show, filtered and sorted.
    pub rows: &'a [&'a ScannerRow],
    /// Every row of the view, for column widths that do not jump while filtering.
    pub all_rows: &'a [ScannerRow],
    pub timeframes: &'a [String],
    pub sort: SortOrder,
    /// The column actually sorted by (see [`SortOrder::effective_column`]).
    pub sort_column: SortColumn,
    pub filter: &'a str,
    pub filter_editing: bool,
    /// Index into `rows` of the selected row.
    pub selected: Option<usize>,
    /// Index into `rows` of the first row shown.
    pub scroll_offset: usize,
    pub theme: &'a Theme,
}

impl ScannerTable<'_> {
    /// Data rows that fit in `area` (inside the border, below the heading).
    pub fn data_rows(area: Rect) -> usize {
        usize::from(area.height.saturating_sub(3))
    }

    fn column_widths(&self) -> Vec<u16> {
        let rank_digits = self
            .all_rows
            .iter()
            .map(|row| row.rank)
            .max()
            .unwrap_or(0)
            .to_string()
            .len() as u16;
        let symbol = self
            .all_rows
            .iter()
            .map(|row| row.symbol.chars().count() as u16)
            .max()
            .unwrap_or(0);
        let price = self
            .all_rows
            .iter()
            .map(|row| format_price(row.last_price, row.price_decimals).chars().count() as u16)
            .max()
            .unwrap_or(0);
        let mut widths = vec![
            rank_digits.max(2),
            symbol.clamp(MIN_SYMBOL_WIDTH, MAX_SYMBOL_WIDTH),
            price.max(5),
            CHANGE_WIDTH,
            VOLUME_WIDTH,
        ];
        widths.extend(self.timeframes.iter().map(|_| CHANGE_WIDTH));
        widths
    }

    /// Width at which no column is cut, borders included.
    pub fn natural_width(&self) -> u16 {
        let widths = self.column_widths();
        widths.iter().sum::<u16>() + COLUMN_SPACING * (widths.len() as u16).saturating_sub(1) + 2
    }

    fn columns(&self) -> Vec<(SortColumn, String)> {
        let mut columns = vec![
            (SortColumn::Rank, "#".to_owned()),
            (SortColumn::Symbol, "Symbol".to_owned()),
            (SortColumn::LastPrice, "Last".to_owned()),
            (SortColumn::Change24h, "24h%".to_owned()),
            (SortColumn::QuoteVolume24h, "Volume".to_owned()),
        ];
        columns.extend(
            self.timeframes
                .iter()
                .enumerate()
                .map(|(index, tf)| (SortColumn::Timeframe(index), tf.clone())),
        );
        columns
    }

    fn heading(&self) -> Row<'static> {
        let muted = Style::new().fg(self.theme.muted);
        let sorted = Style::new().fg(self.theme.accent).add_modifier(Modifier::BOLD);
        let cells = self.columns().into_iter().map(|(column, name)| {
            let (text, style) = if column == self.sort_column {
                (
                    format!("{name}{}", if self.sort.descending { "▼" } else { "▲" }),
                    sorted,
                )
            } else {
                (name, muted)
            };
            let alignment = if column == SortColumn::Symbol {
                Alignment::Left
            } else {
                Alignment::Right
            };
            Cell::from(Line::from(text).alignment(alignment)).style(style)
        });
        Row::new(cells)
    }

    fn change_cell(&self, change: Option<f64>) -> Cell<'static> {
        let (text, colour) = match change {
            Some(value) if value.is_finite() => (format_pct(value), self.change_colour(value)),
            _ => (MISSING.to_owned(), self.theme.muted),
        };
        Cell::from(Line::from(Span::styled(text, Style::new().fg(colour))).right_aligned())
    }

    fn change_colour(&self, value: f64) -> Color {
        if value > 0.0 {
            self.theme.up
        } else if value < 0.0 {
            self.theme.down
        } else {
            self.theme.muted
        }
    }

    fn data_row(&self, row: &ScannerRow, selected: bool) -> Row<'static> {
        let theme = self.theme;
        let mut cells = vec![
            Cell::from(
                Line::from(Span::styled(row.rank.to_string(), Style::new().fg(theme.muted))).right_aligned(),
            ),
            Cell::from(Span::styled(
                row.symbol.clone(),
                Style::new().add_modifier(Modifier::BOLD),
            )),
            Cell::from(Line::from(format_price(row.last_price, row.price_decimals)).right_aligned()),
            self.change_cell(Some(row.change_24h_pct)),
            Cell::from(Line::from(format_compact(row.quote_volume_24h)).right_aligned()),
        ];
        cells.extend(
            (0..self.timeframes.len())
                .map(|index| self.change_cell(row.tf_change_pct.get(index).copied().flatten())),
        );
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
        let shown = self.rows.len();
        let total = self.all_rows.len();
        Line::from(vec![
            Span::styled(
                " Scanner ",
                Style::new().fg(self.theme.title).add_modifier(Modifier::BOLD),
            ),
            Span::styled(
                format!("{shown}/{total} symbols "),
                Style::new().fg(self.theme.muted),
            ),
        ])
    }

    fn filter_title(&self) -> Option<Line<'static>> {
        let accent = Style::new().fg(self.theme.accent).add_modifier(Modifier::BOLD);
        let muted = Style::new().fg(self.theme.muted);
        if self.filter_editing {
            Some(Line::from(vec![
                Span::styled(format!(" /{}", self.filter), accent),
                Span::styled("▏", accent),
                Span::raw(" "),
            ]))
        } else if self.filter.is_empty() {
            None
        } else {
            Some(Line::from(vec![
                Span::styled(" filter ", muted),
                Span::styled(self.filter.to_owned(), accent),
                Span::styled("  Esc clears ", muted),
            ]))
        }
    }

    /// A thumb on the right border showing which part of the list is visible.
    fn render_scroll_thumb(&self, area: Rect, page: usize, buf: &mut Buffer) {
        let total = self.rows.len();
        if total <= page || page == 0 {
            return;
        }
        // The track runs alongside the data rows (below the heading).
        let track = page;
        let thumb = (page * track).div_ceil(total).clamp(1, track);
        let start = if self.scroll_offset + page >= total {
            track - thumb
        } else {
            self.scroll_offset * track / total
        };
        let x = area.right().saturating_sub(1);
        for step in 0..thumb {
            let y = area.y + 2 + (start + step) as u16;
            if y < area.bottom().saturating_sub(1) {
                buf[(x, y)]
                    .set_symbol("┃")
                    .set_style(Style::new().fg(self.theme.accent));
            }
        }
    }
}

impl Widget for ScannerTable<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let mut block = Block::new()
            .borders(Borders::ALL)
            .border_style(Style::new().fg(self.theme.border))
            .title(self.title());
        if let Some(filter) = self.filter_title() {
            block = block.title(filter.right_aligned());
        }
        let inner = block.inner(area);
        block.render(area, buf);

        if self.rows.is_empty() {
            let message = if self.all_rows.is_empty() {
                "waiting for the universe…".to_owned()
            } else {
                format!("no symbol contains \"{}\"", self.filter)
            };
            let y_offset = inner.height / 2;
            let line_area = Rect {
                y: inner.y + y_offset,
                height: inner.height.min(1),
                ..inner
            };
            Paragraph::new(message)
                .style(Style::new().fg(self.theme.muted))
                .centered()
                .render(line_area, buf);
            return;
        }

        let page = Self::data_rows(area);
        let column_widths = self.column_widths();
        // Spare width (a stacked layout gives the table the whole terminal) goes between the columns,
        // up to a point where the eye still follows a row across.
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
            .map(|(index, row)| self.data_row(row, self.selected == Some(index)))
            .collect();
        Table::new(rows, widths)
            .header(self.heading())
            .column_spacing(spacing)
            .render(inner, buf);
        self.render_scroll_thumb(area, page, buf);
        // A pointer on the left border marks the selection where colour alone would not (monochrome
        // terminals, colour-blind operators, screenshots in bug reports).
        if let Some(selected) = self.selected
            && let Some(row) = selected.checked_sub(self.scroll_offset).filter(|row| *row < page)
        {
            buf[(area.x, inner.y + 1 + row as u16)]
                .set_symbol("▶")
                .set_style(Style::new().fg(self.theme.accent));
        }
    }
}
