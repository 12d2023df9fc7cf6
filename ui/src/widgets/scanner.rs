//! The scanner table: the universe at a glance, one row per symbol, sortable and filterable.
//!
//! Column widths come from the data (the longest symbol, the widest price) so that prices line up on
//! the decimal point and the table is only as wide as it needs to be; the chart gets the rest. The
//! sorted column carries an arrow in its heading, the title says how many symbols pass the filter, and
//! a thumb on the right border shows where the window is in a long list.
//!
//! Each timeframe's change carries the strategy's structure bias on that timeframe as a `▲` (bullish)
//! or `▼` (bearish) marker, and the `Sig` column shows the symbol's latest signal (`L 0.82`: long,
//! quality 0.82); once a signal predictor is loaded, `ML` shows its P(target before stop) for the
//! symbol's latest candidate signal (kept or filtered). Once the analysis has something to show, `Break` holds the most recent structure break
//! across the timeframes (`CHoCH▲15m 3`: a bullish change of character on 15m, 3 bars ago) and `Zone`
//! the active order block or fair value gap nearest to the last price (`OB▼1h -0.42%`: a bearish 1h
//! order block 0.42 % below); each column is left out while no row has a value for it. When the pane
//! is narrower than every column, `Zone`, `Break`, the 24h volume and then the 24h change are dropped,
//! in that order, rather than letting the table squeeze or wrap.

use ratatui::{
    buffer::Buffer,
    layout::{Alignment, Constraint, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Cell, Paragraph, Row, Table, Widget},
};

use crate::{
    format::{
        MISSING, direction_marker, format_break, format_compact, format_pct, format_price, format_zone,
    },
    order::{SortColumn, SortOrder},
    theme::Theme,
    view::{ScannerRow, StructureView},
};

const CHANGE_WIDTH: u16 = 7;
/// A timeframe column: the bias marker and the change.
const TIMEFRAME_WIDTH: u16 = CHANGE_WIDTH + 1;
/// `L 0.82`.
const SIGNAL_WIDTH: u16 = 6;
/// `0.64`.
const ML_WIDTH: u16 = 4;
const VOLUME_WIDTH: u16 = 7;
const MIN_SYMBOL_WIDTH: u16 = 8;
const MAX_SYMBOL_WIDTH: u16 = 16;
/// `Break` and `Zone` are as wide as their widest value, up to this.
const MAX_BADGE_WIDTH: u16 = 16;
const COLUMN_SPACING: u16 = 1;
const MAX_COLUMN_SPACING: u16 = 2;

/// One column of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Rank,
    Symbol,
    Last,
    Change24h,
    Volume,
    Timeframe(usize),
    Signal,
    Ml,
    Break,
    Zone,
}

impl Column {
    fn sort_column(self) -> Option<SortColumn> {
        match self {
            Self::Rank => Some(SortColumn::Rank),
            Self::Symbol => Some(SortColumn::Symbol),
            Self::Last => Some(SortColumn::LastPrice),
            Self::Change24h => Some(SortColumn::Change24h),
            Self::Volume => Some(SortColumn::QuoteVolume24h),
            Self::Timeframe(index) => Some(SortColumn::Timeframe(index)),
            Self::Signal | Self::Ml | Self::Break | Self::Zone => None,
        }
    }
}

/// The columns dropped, in this order, when the pane is too narrow for all of them.
const DROPPABLE: [Column; 4] = [Column::Zone, Column::Break, Column::Volume, Column::Change24h];

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
    /// The structure model's last reading of the universe: its largest regime goes in the title, so the
    /// market's state is in view at every terminal size (the models panel has the breakdown).
    pub market: Option<&'a StructureView>,
}

impl ScannerTable<'_> {
    /// Data rows that fit in `area` (inside the border, below the heading).
    pub fn data_rows(area: Rect) -> usize {
        usize::from(area.height.saturating_sub(3))
    }

    fn all_columns(&self) -> Vec<Column> {
        let mut columns = vec![
            Column::Rank,
            Column::Symbol,
            Column::Last,
            Column::Change24h,
            Column::Volume,
        ];
        columns.extend((0..self.timeframes.len()).map(Column::Timeframe));
        columns.push(Column::Signal);
        if self.all_rows.iter().any(|row| row.ml_probability.is_some()) {
            columns.push(Column::Ml);
        }
        if self.all_rows.iter().any(|row| row.last_break.is_some()) {
            columns.push(Column::Break);
        }
        if self.all_rows.iter().any(|row| row.nearest_zone.is_some()) {
            columns.push(Column::Zone);
        }
        columns
    }

    /// Width of a badge column: its widest value or its heading, whichever is wider (capped).
    fn badge_width(&self, heading: &str, text: impl Fn(&ScannerRow) -> Option<String>) -> u16 {
        let widest = self
            .all_rows
            .iter()
            .filter_map(|row| text(row).map(|t| t.chars().count()))
            .max()
            .unwrap_or(0)
            .max(heading.len());
        u16::try_from(widest)
            .unwrap_or(MAX_BADGE_WIDTH)
            .min(MAX_BADGE_WIDTH)
    }

    fn width(&self, column: Column) -> u16 {
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
        match column {
            Column::Rank => rank_digits.max(2),
            Column::Symbol => symbol.clamp(MIN_SYMBOL_WIDTH, MAX_SYMBOL_WIDTH),
            Column::Last => price.max(5),
            Column::Change24h => CHANGE_WIDTH,
            Column::Volume => VOLUME_WIDTH,
            Column::Timeframe(_) => TIMEFRAME_WIDTH,
            Column::Signal => SIGNAL_WIDTH,
            Column::Ml => ML_WIDTH,
            Column::Break => self.badge_width("Break", |row| row.last_break.as_ref().map(format_break)),
            Column::Zone => self.badge_width("Zone", |row| row.nearest_zone.as_ref().map(format_zone)),
        }
    }

    /// Content width of `columns` at the minimum spacing.
    fn content_width(&self, columns: &[Column]) -> u16 {
        columns.iter().map(|c| self.width(*c)).sum::<u16>()
            + COLUMN_SPACING * (columns.len() as u16).saturating_sub(1)
    }

    /// Width at which no column is cut, borders included.
    pub fn natural_width(&self) -> u16 {
        self.content_width(&self.all_columns()) + 2
    }

    /// The columns that fit in `width` (inside the borders), dropping [`DROPPABLE`] ones in order.
    fn visible_columns(&self, width: u16) -> Vec<Column> {
        let mut columns = self.all_columns();
        for drop in DROPPABLE {
            if self.content_width(&columns) <= width {
                break;
            }
            columns.retain(|c| *c != drop);
        }
        columns
    }

    fn name(&self, column: Column) -> String {
        match column {
            Column::Rank => "#".to_owned(),
            Column::Symbol => "Symbol".to_owned(),
            Column::Last => "Last".to_owned(),
            Column::Change24h => "24h%".to_owned(),
            Column::Volume => "Volume".to_owned(),
            Column::Timeframe(index) => self.timeframes.get(index).cloned().unwrap_or_default(),
            Column::Signal => "Sig".to_owned(),
            Column::Ml => "ML".to_owned(),
            Column::Break => "Break".to_owned(),
            Column::Zone => "Zone".to_owned(),
        }
    }

    fn heading(&self, columns: &[Column]) -> Row<'static> {
        let muted = Style::new().fg(self.theme.muted);
        let sorted = Style::new().fg(self.theme.accent).add_modifier(Modifier::BOLD);
        let cells = columns.iter().map(|column| {
            let name = self.name(*column);
            let (text, style) = if column.sort_column() == Some(self.sort_column) {
                (
                    format!("{name}{}", if self.sort.descending { "▼" } else { "▲" }),
                    sorted,
                )
            } else {
                (name, muted)
            };
            let alignment = if matches!(
                column,
                Column::Symbol | Column::Signal | Column::Break | Column::Zone
            ) {
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

    /// A timeframe's change with the bias marker in front (a space when the bias is unknown).
    fn timeframe_cell(&self, change: Option<f64>, bias: Option<i8>) -> Cell<'static> {
        let Some(value) = change.filter(|v| v.is_finite()) else {
            return self.change_cell(None);
        };
        let marker = match bias {
            Some(b) if b > 0 => Span::styled("▲", Style::new().fg(self.theme.up)),
            Some(b) if b < 0 => Span::styled("▼", Style::new().fg(self.theme.down)),
            _ => Span::raw(" "),
        };
        let text = Span::styled(format_pct(value), Style::new().fg(self.change_colour(value)));
        Cell::from(Line::from(vec![marker, text]).right_aligned())
    }

    fn signal_cell(&self, row: &ScannerRow) -> Cell<'static> {
        let Some(signal) = &row.signal else {
            return Cell::from("");
        };
        let (letter, colour) = if signal.side == "SHORT" {
            ("S", self.theme.down)
        } else {
            ("L", self.theme.up)
        };
        Cell::from(Span::styled(
            format!("{letter} {:.2}", signal.quality),
            Style::new().fg(colour).add_modifier(Modifier::BOLD),
        ))
    }

    /// A `Break` or `Zone` cell: kind and marker in the direction's colour, the rest in the text colour.
    fn badge_cell(&self, kind: &str, bullish: bool, rest: String) -> Cell<'static> {
        let colour = if bullish { self.theme.up } else { self.theme.down };
        Cell::from(Line::from(vec![
            Span::styled(
                format!("{kind}{}", direction_marker(bullish)),
                Style::new().fg(colour),
            ),
            Span::raw(rest),
        ]))
    }

    fn break_cell(&self, row: &ScannerRow) -> Cell<'static> {
        let Some(badge) = &row.last_break else {
            return Cell::from("");
        };
        let text = format_break(badge);
        let head = format!("{}{}", badge.kind, direction_marker(badge.bullish));
        let rest = text.strip_prefix(&head).unwrap_or_default().to_owned();
        self.badge_cell(&badge.kind, badge.bullish, rest)
    }

    fn zone_cell(&self, row: &ScannerRow) -> Cell<'static> {
        let Some(badge) = &row.nearest_zone else {
            return Cell::from("");
        };
        let text = format_zone(badge);
        let head = format!("{}{}", badge.kind, direction_marker(badge.bullish));
        let rest = text.strip_prefix(&head).unwrap_or_default().to_owned();
        self.badge_cell(&badge.kind, badge.bullish, rest)
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

    fn data_row(&self, row: &ScannerRow, columns: &[Column], selected: bool) -> Row<'static> {
        let theme = self.theme;
        let cells = columns.iter().map(|column| match column {
            Column::Rank => Cell::from(
                Line::from(Span::styled(row.rank.to_string(), Style::new().fg(theme.muted))).right_aligned(),
            ),
            Column::Symbol => Cell::from(Span::styled(
                row.symbol.clone(),
                Style::new().add_modifier(Modifier::BOLD),
            )),
            Column::Last => {
                Cell::from(Line::from(format_price(row.last_price, row.price_decimals)).right_aligned())
            }
            Column::Change24h => self.change_cell(Some(row.change_24h_pct)),
            Column::Volume => Cell::from(Line::from(format_compact(row.quote_volume_24h)).right_aligned()),
            Column::Timeframe(index) => self.timeframe_cell(
                row.tf_change_pct.get(*index).copied().flatten(),
                row.bias.get(*index).copied().flatten(),
            ),
            Column::Signal => self.signal_cell(row),
            Column::Ml => Cell::from(
                Line::from(
                    row.ml_probability
                        .filter(|p| p.is_finite())
                        .map_or_else(String::new, |p| format!("{p:.2}")),
                )
                .right_aligned(),
            ),
            Column::Break => self.break_cell(row),
            Column::Zone => self.zone_cell(row),
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
        let shown = self.rows.len();
        let total = self.all_rows.len();
        let mut title = Line::from(vec![
            Span::styled(
                " Scanner ",
                Style::new().fg(self.theme.title).add_modifier(Modifier::BOLD),
            ),
            Span::styled(
                format!("{shown}/{total} symbols "),
                Style::new().fg(self.theme.muted),
            ),
        ]);
        if let Some((name, pct)) = self.market.and_then(dominant_regime) {
            title.push_span(Span::styled("· ", Style::new().fg(self.theme.muted)));
            title.push_span(Span::styled(
                format!("{name} {pct}% "),
                Style::new().fg(self.theme.accent),
            ));
        }
        title
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
        let columns = self.visible_columns(inner.width);
        let column_widths: Vec<u16> = columns.iter().map(|c| self.width(*c)).collect();
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
            .map(|(index, row)| self.data_row(row, &columns, self.selected == Some(index)))
            .collect();
        Table::new(rows, widths)
            .header(self.heading(&columns))
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

/// The regime most symbols are in and its share of the reading in percent (rounded like the models
/// panel's regime line); `None` before the first reading.
fn dominant_regime(market: &StructureView) -> Option<(&str, String)> {
    let top = market.regimes.first()?;
    (market.symbols > 0).then(|| {
        let share = 100.0 * top.symbols as f64 / market.symbols as f64;
        (top.name.as_str(), format!("{share:.0}"))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn render(width: u16) -> String {
        render_row(width, false)
    }

    fn render_row(width: u16, badges: bool) -> String {
        render_with(width, badges, None)
    }

    fn render_with(width: u16, badges: bool, market: Option<&StructureView>) -> String {
        let theme = Theme::builtin("default").unwrap();
        let mut rows = vec![ScannerRow {
            rank: 1,
            symbol: "BTCUSDT".to_owned(),
            last_price: 97_234.5,
            price_decimals: 2,
            change_24h_pct: 1.84,
            quote_volume_24h: 18.4e9,
            tf_change_pct: vec![Some(0.05), Some(-0.01), Some(-0.49)],
            bias: vec![Some(1), None, Some(-1)],
            signal: Some(crate::view::SignalBadge {
                side: "SHORT".to_owned(),
                quality: 0.736,
                rr: 2.2,
            }),
            ..ScannerRow::default()
        }];
        if badges {
            rows[0].last_break = Some(crate::view::BreakBadge {
                kind: "CHoCH".to_owned(),
                bullish: true,
                timeframe: "15m".to_owned(),
                bars_ago: 3,
            });
            rows[0].nearest_zone = Some(crate::view::ZoneBadge {
                kind: "OB".to_owned(),
                bullish: false,
                timeframe: "1h".to_owned(),
                distance_pct: -0.42,
            });
        }
        let shown: Vec<&ScannerRow> = rows.iter().collect();
        let timeframes = ["5m", "15m", "1h"].map(str::to_owned);
        let table = ScannerTable {
            rows: &shown,
            all_rows: &rows,
            timeframes: &timeframes,
            sort: SortOrder::default(),
            sort_column: SortColumn::Rank,
            filter: "",
            filter_editing: false,
            selected: None,
            scroll_offset: 0,
            theme: &theme,
            market,
        };
        let mut buf = Buffer::empty(Rect::new(0, 0, width, 4));
        table.render(buf.area, &mut buf);
        (0..4)
            .map(|y| (0..width).map(|x| buf[(x, y)].symbol()).collect::<String>() + "\n")
            .collect()
    }

    #[test]
    fn the_title_names_the_regime_most_symbols_are_in() {
        use crate::view::RegimeShare;
        let regime = |name: &str, symbols| RegimeShare {
            name: name.to_owned(),
            symbols,
        };
        let market = StructureView {
            symbols: 200,
            regimes: vec![
                regime("trend down · high vol", 124),
                regime("range · low vol", 76),
            ],
            ..StructureView::default()
        };
        let text = render_with(80, false, Some(&market));
        let title = text.lines().next().unwrap();
        assert!(
            title.contains("1/1 symbols · trend down · high vol 62%"),
            "{title}"
        );
        // No reading yet (no symbols, no regimes): the title is as before.
        let empty = StructureView::default();
        assert_eq!(render_with(80, false, Some(&empty)), render(80));
    }

    #[test]
    fn narrow_panes_drop_volume_then_24h_change_and_keep_bias_and_signal() {
        let wide = render(80);
        assert!(wide.contains("Volume") && wide.contains("24h%"), "{wide}");
        assert!(
            wide.contains("▲+0.05%") && wide.contains("▼-0.49%") && wide.contains("S 0.74"),
            "{wide}"
        );
        let narrower = render(72);
        assert!(
            !narrower.contains("Volume") && narrower.contains("24h%"),
            "{narrower}"
        );
        let narrowest = render(64);
        assert!(!narrowest.contains("24h%"), "{narrowest}");
        assert!(
            narrowest.contains("▼-0.49%") && narrowest.contains("S 0.74"),
            "{narrowest}"
        );
    }

    #[test]
    fn break_and_zone_columns_go_first_and_only_appear_with_data() {
        let bare = render(120);
        assert!(!bare.contains("Break") && !bare.contains("Zone"), "{bare}");
        let wide = render_row(110, true);
        assert!(
            wide.contains("CHoCH▲15m 3") && wide.contains("OB▼1h -0.42%") && wide.contains("Volume"),
            "{wide}"
        );
        let no_zone = render_row(96, true);
        assert!(
            !no_zone.contains("Zone") && no_zone.contains("CHoCH▲15m 3") && no_zone.contains("Volume"),
            "{no_zone}"
        );
        let at_80 = render_row(80, true);
        assert!(
            !at_80.contains("Break") && !at_80.contains("Zone") && at_80.contains("Volume"),
            "{at_80}"
        );
        assert_eq!(at_80, render(80), "an 80-column pane looks as it did before");
    }
}
