//! The detail pane: a candlestick chart of the focused symbol and timeframe.
//!
//! Each cell row holds two price steps (upper and lower half), drawn with box-drawing lines: a heavy
//! `┃` for the candle body, a light `│` for the wick, and the half-cell forms (`╹╻╿╽╵╷`) where a body
//! or wick starts or ends mid-cell. That doubles the vertical resolution of plain cell blocks while
//! staying in the box-drawing block every terminal font has. The price scale spans only the visible
//! candles, so a quiet market still fills the pane; the axis names its high, low and the last price.
//!
//! Market structure from [`Overlays`] is drawn under and around the candles, which always stay on top:
//! order blocks and fair value gaps as background bands from their candle to the right edge, liquidity
//! levels as dotted lines named `liq` in the axis, swing highs and lows as `▴` / `▾` just above or below
//! the candle that made them (the plot keeps a free row at the top and bottom for them when tall
//! enough). A legend on the title line names what is shown; zone labels are dropped on narrow plots.

use ratatui::{
    buffer::Buffer,
    layout::{Alignment, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Paragraph, Widget},
};

use crate::{
    format::{format_month_day_minute, format_price},
    theme::Theme,
    view::{Candle, Detail, Overlays, PoolOdds, SweepOdds},
};

/// Candles are drawn every other column (a gap between candles) when the plot is at least this wide.
const MIN_WIDTH_FOR_GAPS: u16 = 16;
/// Swing markers get a free row above and below the candles when the plot is at least this tall.
const MIN_HEIGHT_FOR_MARKER_ROWS: u16 = 8;
/// Zones are labelled (`OB`, `FVG`) only on plots at least this wide.
const MIN_WIDTH_FOR_ZONE_LABELS: u16 = 24;
/// Marker drawn above a swing high.
const SWING_HIGH: &str = "▴";
/// Marker drawn below a swing low.
const SWING_LOW: &str = "▾";
/// Glyph of a liquidity level.
const LEVEL_DOT: &str = "┈";

/// The chart pane.
#[derive(Debug, Clone, Copy)]
pub struct CandleChart<'a> {
    pub detail: Option<&'a Detail>,
    /// The symbol and timeframe the operator selected; if `detail` is for another one, the title says
    /// the selected one is loading (the engine answers `Intent::Focus` asynchronously).
    pub wanted: Option<(&'a str, &'a str)>,
    pub theme: &'a Theme,
}

/// What covers one half of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Half {
    Empty,
    Wick,
    Body,
}

/// The glyph for a cell whose upper half shows `upper` and lower half `lower`.
fn glyph(upper: Half, lower: Half) -> Option<&'static str> {
    match (upper, lower) {
        (Half::Empty, Half::Empty) => None,
        (Half::Body, Half::Body) => Some("┃"),
        (Half::Wick, Half::Wick) => Some("│"),
        (Half::Body, Half::Empty) => Some("╹"),
        (Half::Empty, Half::Body) => Some("╻"),
        (Half::Wick, Half::Empty) => Some("╵"),
        (Half::Empty, Half::Wick) => Some("╷"),
        (Half::Body, Half::Wick) => Some("╿"),
        (Half::Wick, Half::Body) => Some("╽"),
    }
}

/// Maps prices to half-cell steps, 0 at the top of the plot.
#[derive(Debug, Clone, Copy)]
struct PriceScale {
    high: f64,
    low: f64,
    steps: usize,
}

impl PriceScale {
    fn step(self, price: f64) -> usize {
        let last = self.steps.saturating_sub(1);
        let span = self.high - self.low;
        if span <= 0.0 || !span.is_finite() {
            return last / 2;
        }
        let fraction = ((self.high - price) / span).clamp(0.0, 1.0);
        ((fraction * last as f64).round() as usize).min(last)
    }
}

/// Where prices and candles land on screen: the price scale over the candle rows, and the column of
/// each visible candle.
#[derive(Debug, Clone, Copy)]
struct Grid {
    scale: PriceScale,
    /// Top row of the candles (below the marker row, if any).
    top: u16,
    /// Column of the first visible candle.
    first_x: u16,
    /// Columns from one candle to the next.
    stride: u16,
}

impl Grid {
    /// The screen row of `price` (clamped to the candle rows).
    fn row(self, price: f64) -> u16 {
        self.top + (self.scale.step(price) / 2) as u16
    }

    /// The column of visible candle `index`.
    fn column(self, index: usize) -> u16 {
        self.first_x + index as u16 * self.stride
    }

    /// Whether `price` lies within the scale.
    fn contains(self, price: f64) -> bool {
        (self.scale.low..=self.scale.high).contains(&price)
    }
}

/// The visible candle that opened at `open_time_ms`.
fn candle_at(visible: &[Candle], open_time_ms: i64) -> Option<usize> {
    visible
        .binary_search_by_key(&open_time_ms, |candle| candle.open_time_ms)
        .ok()
}

/// The first visible candle at or after `from_ms` (0 for a zone that began before the window), or
/// `None` for a zone that begins after the newest candle.
fn zone_start(visible: &[Candle], from_ms: i64) -> Option<usize> {
    let index = visible.partition_point(|candle| candle.open_time_ms < from_ms);
    (index < visible.len()).then_some(index)
}

fn is_blank(buf: &Buffer, x: u16, y: u16) -> bool {
    buf[(x, y)].symbol() == " "
}

impl CandleChart<'_> {
    fn zone_colour(&self, bullish: bool) -> Color {
        if bullish {
            self.theme.zone_bull_bg
        } else {
            self.theme.zone_bear_bg
        }
    }

    /// The legend of the overlays shown, in full or compact form, whichever fits in `width` cells.
    fn legend(&self, overlays: &Overlays, width: u16) -> Option<Line<'static>> {
        let muted = Style::new().fg(self.theme.muted);
        let mut items: Vec<(Vec<Span<'static>>, &str)> = Vec::new();
        if !overlays.swings.is_empty() {
            items.push((
                vec![Span::styled(
                    format!("{SWING_HIGH}{SWING_LOW}"),
                    Style::new().fg(self.theme.accent),
                )],
                "swing",
            ));
        }
        if !overlays.zones.is_empty() {
            items.push((
                vec![
                    Span::styled("█", Style::new().fg(self.theme.zone_bull_bg)),
                    Span::styled("█", Style::new().fg(self.theme.zone_bear_bg)),
                ],
                "OB/FVG",
            ));
        }
        if !overlays.levels.is_empty() {
            items.push((
                vec![Span::styled(LEVEL_DOT, Style::new().fg(self.theme.liquidity))],
                "liq",
            ));
        }
        if items.is_empty() {
            return None;
        }
        for with_words in [true, false] {
            let mut spans = vec![Span::raw(" ")];
            for (glyphs, word) in &items {
                spans.extend(glyphs.iter().cloned());
                if with_words {
                    spans.push(Span::styled(format!(" {word}"), muted));
                }
                spans.push(Span::raw(" "));
            }
            let line = Line::from(spans);
            if line.width() <= usize::from(width) {
                return Some(line.right_aligned());
            }
        }
        None
    }

    /// Zones as background bands from their candle to the right edge of the plot; newest on top.
    fn render_zones(
        &self,
        overlays: &Overlays,
        visible: &[Candle],
        grid: Grid,
        plot: Rect,
        buf: &mut Buffer,
    ) {
        for zone in overlays.zones.iter().rev() {
            let (top, bottom) = (zone.top.max(zone.bottom), zone.top.min(zone.bottom));
            if top < grid.scale.low || bottom > grid.scale.high {
                continue;
            }
            let Some(start) = zone_start(visible, zone.from_ms) else {
                continue;
            };
            let left = if start == 0 {
                plot.left()
            } else {
                grid.column(start)
            };
            let style = Style::new().bg(self.zone_colour(zone.bullish));
            for y in grid.row(top)..=grid.row(bottom) {
                for x in left..plot.right() {
                    buf[(x, y)].set_style(style);
                }
            }
        }
    }

    /// Zone labels in the first blank stretch of each band (after the candles, so they never hide one).
    fn render_zone_labels(
        &self,
        overlays: &Overlays,
        visible: &[Candle],
        grid: Grid,
        plot: Rect,
        buf: &mut Buffer,
    ) {
        if plot.width < MIN_WIDTH_FOR_ZONE_LABELS {
            return;
        }
        let style = Style::new().fg(self.theme.text);
        for zone in &overlays.zones {
            let (top, bottom) = (zone.top.max(zone.bottom), zone.top.min(zone.bottom));
            if top < grid.scale.low || bottom > grid.scale.high {
                continue;
            }
            let Some(start) = zone_start(visible, zone.from_ms) else {
                continue;
            };
            let left = if start == 0 {
                plot.left()
            } else {
                grid.column(start)
            };
            let label = zone.kind.as_str();
            let length = label.chars().count() as u16;
            // A blank cell (or the plot's edge) on either side keeps the label apart from the candles.
            let spot = (grid.row(top)..=grid.row(bottom)).find_map(|y| {
                (left..plot.right().saturating_sub(length))
                    .find(|x| {
                        let before = x.checked_sub(1).filter(|before| *before >= plot.left());
                        let after = Some(*x + length).filter(|after| *after < plot.right());
                        (*x..*x + length).all(|cell| is_blank(buf, cell, y))
                            && before.is_none_or(|cell| is_blank(buf, cell, y))
                            && after.is_none_or(|cell| is_blank(buf, cell, y))
                    })
                    .map(|x| (x, y))
            });
            if let Some((x, y)) = spot {
                buf.set_string(x, y, label, style);
            }
        }
    }

    /// Liquidity levels as dotted lines in the blank cells of their row; returns their rows.
    fn render_levels(
        &self,
        overlays: &Overlays,
        grid: Grid,
        plot: Rect,
        buf: &mut Buffer,
    ) -> Vec<(u16, String)> {
        let style = Style::new().fg(self.theme.liquidity);
        let mut rows = Vec::new();
        for level in &overlays.levels {
            if !grid.contains(level.price) {
                continue;
            }
            let y = grid.row(level.price);
            for x in plot.left()..plot.right() {
                if is_blank(buf, x, y) {
                    buf[(x, y)].set_symbol(LEVEL_DOT).set_style(style);
                }
            }
            rows.push((y, level.kind.clone()));
        }
        rows
    }

    /// Swing markers just above a swing high's candle and just below a swing low's.
    fn render_swings(
        &self,
        overlays: &Overlays,
        visible: &[Candle],
        grid: Grid,
        plot: Rect,
        buf: &mut Buffer,
    ) {
        let style = Style::new().fg(self.theme.accent);
        for swing in &overlays.swings {
            let Some(index) = candle_at(visible, swing.open_time_ms) else {
                continue;
            };
            let candle = visible[index];
            let (y, marker) = if swing.high {
                (grid.row(candle.high).checked_sub(1), SWING_HIGH)
            } else {
                (Some(grid.row(candle.low) + 1), SWING_LOW)
            };
            if let Some(y) = y.filter(|y| (plot.top()..plot.bottom()).contains(y)) {
                buf[(grid.column(index), y)].set_symbol(marker).set_style(style);
            }
        }
    }

    fn border_block(&self) -> Block<'static> {
        Block::new()
            .borders(Borders::ALL)
            .border_style(Style::new().fg(self.theme.border))
    }

    fn title(&self, symbol: &str, timeframe: &str, last: Option<(f64, u8, Color)>) -> Line<'static> {
        let mut spans = vec![Span::styled(
            format!(" {symbol} "),
            Style::new().fg(self.theme.title).add_modifier(Modifier::BOLD),
        )];
        if !timeframe.is_empty() {
            spans.push(Span::styled(
                format!("{timeframe} "),
                Style::new().fg(self.theme.accent),
            ));
        }
        if let Some((price, decimals, colour)) = last {
            spans.push(Span::styled("last ", Style::new().fg(self.theme.muted)));
            spans.push(Span::styled(
                format!("{} ", format_price(price, decimals)),
                Style::new().fg(colour).add_modifier(Modifier::BOLD),
            ));
        }
        Line::from(spans)
    }

    /// `sweep ▲ 62% ▼ 31% 48×5m`: the liquidity model's odds that the nearest pool above / below trades
    /// within its horizon (`—` for a side without a pool in reach); the horizon only `with_horizon`.
    fn sweep_spans(&self, sweep: &SweepOdds, with_horizon: bool) -> Line<'static> {
        let muted = Style::new().fg(self.theme.muted);
        let side = |odds: Option<PoolOdds>| {
            odds.filter(|o| o.probability.is_finite())
                .map_or_else(|| "—".to_owned(), |o| format!("{:.0}%", o.probability * 100.0))
        };
        let mut line = Line::from(vec![
            Span::styled("sweep ", muted),
            Span::styled(
                format!("▲ {} ", side(sweep.above)),
                Style::new().fg(self.theme.up),
            ),
            Span::styled(
                format!("▼ {} ", side(sweep.below)),
                Style::new().fg(self.theme.down),
            ),
        ]);
        if with_horizon {
            line.push_span(Span::styled(
                format!("{}×{} ", sweep.horizon_bars, sweep.timeframe),
                muted,
            ));
        }
        line
    }

    fn candle_colour(&self, candle: &Candle) -> Color {
        if candle.close >= candle.open {
            self.theme.up
        } else {
            self.theme.down
        }
    }

    fn render_message(&self, block: Block<'_>, message: &str, area: Rect, buf: &mut Buffer) {
        let inner = block.inner(area);
        block.render(area, buf);
        let line_area = Rect {
            y: inner.y + inner.height / 2,
            height: inner.height.min(1),
            ..inner
        };
        Paragraph::new(message.to_owned())
            .style(Style::new().fg(self.theme.muted))
            .centered()
            .render(line_area, buf);
    }

    fn render_candles(&self, detail: &Detail, plot: Rect, axis: Rect, buf: &mut Buffer) -> (i64, i64) {
        let stride: u16 = if plot.width >= MIN_WIDTH_FOR_GAPS { 2 } else { 1 };
        let fit = usize::from(plot.width.div_ceil(stride));
        let visible = &detail.candles[detail.candles.len().saturating_sub(fit)..];
        let high = visible
            .iter()
            .map(|candle| candle.high)
            .fold(f64::NEG_INFINITY, f64::max);
        let low = visible
            .iter()
            .map(|candle| candle.low)
            .fold(f64::INFINITY, f64::min);
        let overlays = &detail.overlays;
        let pad = u16::from(!overlays.swings.is_empty() && plot.height >= MIN_HEIGHT_FOR_MARKER_ROWS);
        let rows = plot.height - 2 * pad;
        let grid = Grid {
            scale: PriceScale {
                high,
                low,
                steps: usize::from(rows) * 2,
            },
            top: plot.y + pad,
            first_x: plot.right() - 1 - (visible.len().saturating_sub(1) as u16) * stride,
            stride,
        };

        self.render_zones(overlays, visible, grid, plot, buf);
        let levels = self.render_levels(overlays, grid, plot, buf);
        let last_close = visible.last().map(|candle| candle.close);
        let last_y = last_close.map(|close| grid.row(close));
        // A dotted guide at the last price, under the candles, so its level can be read across the plot.
        if let Some(y) = last_y {
            for x in plot.left()..plot.right() {
                buf[(x, y)]
                    .set_symbol("┄")
                    .set_style(Style::new().fg(self.theme.border));
            }
        }

        for (index, candle) in visible.iter().enumerate() {
            let x = grid.column(index);
            let body_top = grid.scale.step(candle.open.max(candle.close));
            let body_bottom = grid.scale.step(candle.open.min(candle.close));
            let wick_top = grid.scale.step(candle.high);
            let wick_bottom = grid.scale.step(candle.low);
            let half = |step: usize| {
                if (body_top..=body_bottom).contains(&step) {
                    Half::Body
                } else if (wick_top..=wick_bottom).contains(&step) {
                    Half::Wick
                } else {
                    Half::Empty
                }
            };
            let style = Style::new().fg(self.candle_colour(candle));
            for row in 0..usize::from(rows) {
                if let Some(symbol) = glyph(half(row * 2), half(row * 2 + 1)) {
                    buf[(x, grid.top + row as u16)]
                        .set_symbol(symbol)
                        .set_style(style);
                }
            }
        }
        self.render_swings(overlays, visible, grid, plot, buf);
        self.render_zone_labels(overlays, visible, grid, plot, buf);

        // Axis: high at the top, low at the bottom, the last price at its level (it wins a tie), then
        // the levels' names on rows still free.
        let muted = Style::new().fg(self.theme.muted);
        let mut labels = vec![
            (
                grid.top,
                format!(" {}", format_price(high, detail.price_decimals)),
                muted,
            ),
            (
                grid.top + rows - 1,
                format!(" {}", format_price(low, detail.price_decimals)),
                muted,
            ),
        ];
        if let (Some(y), Some(close), Some(candle)) = (last_y, last_close, visible.last()) {
            let style = Style::new()
                .fg(self.candle_colour(candle))
                .add_modifier(Modifier::BOLD);
            labels.retain(|(label_y, _, _)| *label_y != y);
            labels.push((
                y,
                format!("◀{}", format_price(close, detail.price_decimals)),
                style,
            ));
        }
        let level_style = Style::new().fg(self.theme.liquidity);
        for (y, kind) in levels {
            if labels.iter().all(|(label_y, _, _)| *label_y != y) {
                labels.push((y, format!(" {kind}"), level_style));
            }
        }
        for (y, text, style) in labels {
            let line_area = Rect { y, height: 1, ..axis };
            Line::from(Span::styled(text, style)).render(line_area, buf);
        }
        let first = visible.first().map_or(0, |candle| candle.open_time_ms);
        let last = visible.last().map_or(0, |candle| candle.open_time_ms);
        (first, last)
    }
}

impl Widget for CandleChart<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let wanted = self.wanted;
        let Some(detail) = self.detail else {
            let (symbol, timeframe) = wanted.unwrap_or(("Chart", ""));
            let block = self.border_block().title(self.title(symbol, timeframe, None));
            let message = if wanted.is_some() {
                "loading candles…"
            } else {
                "select a symbol"
            };
            self.render_message(block, message, area, buf);
            return;
        };
        let last = detail
            .candles
            .last()
            .map(|candle| (candle.close, detail.price_decimals, self.candle_colour(candle)));
        let mut title = self.title(&detail.symbol, &detail.timeframe, last);
        if let Some(sweep) = &detail.sweep {
            // The odds with their horizon, else without it, else not at all: the title never wraps.
            let fits = |extra: &Line<'_>| title.width() + extra.width() + 2 <= usize::from(area.width);
            let odds = [true, false]
                .map(|with_horizon| self.sweep_spans(sweep, with_horizon))
                .into_iter()
                .find(fits);
            if let Some(odds) = odds {
                title.spans.extend(odds.spans);
            }
        }
        let room = area.width.saturating_sub(3 + title.width() as u16);
        let mut block = self.border_block().title(title);
        if let Some((symbol, timeframe)) = wanted
            && (symbol != detail.symbol || timeframe != detail.timeframe)
        {
            let loading = Style::new().fg(self.theme.warning);
            block = block.title(
                Line::from(Span::styled(format!(" loading {symbol} {timeframe}… "), loading)).right_aligned(),
            );
        } else if let Some(legend) = self.legend(&detail.overlays, room) {
            block = block.title(legend);
        }
        if detail.candles.is_empty() {
            self.render_message(block, "no candles yet", area, buf);
            return;
        }

        let inner = block.inner(area);
        let axis_width = detail
            .candles
            .iter()
            .flat_map(|candle| [candle.high, candle.low, candle.close])
            .map(|price| format_price(price, detail.price_decimals).chars().count() as u16 + 1)
            .max()
            .unwrap_or(0);
        if inner.height < 3 || inner.width < axis_width + 4 {
            self.render_message(block, "too small for a chart", area, buf);
            return;
        }
        let plot = Rect {
            width: inner.width - axis_width - 1,
            ..inner
        };
        let axis = Rect {
            x: plot.right() + 1,
            width: axis_width,
            ..inner
        };
        let (first, last) = self.render_candles(detail, plot, axis, buf);
        let time = Style::new().fg(self.theme.muted);
        block
            .title_bottom(Line::from(Span::styled(
                format!(" {} ", format_month_day_minute(first)),
                time,
            )))
            .title_bottom(
                Line::from(Span::styled(
                    format!(" {} UTC ", format_month_day_minute(last)),
                    time,
                ))
                .alignment(Alignment::Right),
            )
            .render(area, buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{LevelLine, SwingMark, ZoneBand};

    #[test]
    fn every_half_combination_has_its_glyph() {
        assert_eq!(glyph(Half::Empty, Half::Empty), None);
        assert_eq!(glyph(Half::Body, Half::Body), Some("┃"));
        assert_eq!(glyph(Half::Wick, Half::Body), Some("╽"));
        assert_eq!(glyph(Half::Body, Half::Wick), Some("╿"));
    }

    #[test]
    fn price_scale_puts_high_on_top_and_low_at_the_bottom() {
        let scale = PriceScale {
            high: 110.0,
            low: 100.0,
            steps: 21,
        };
        assert_eq!(scale.step(110.0), 0);
        assert_eq!(scale.step(100.0), 20);
        assert_eq!(scale.step(105.0), 10);
        assert_eq!(scale.step(200.0), 0, "clamped");
        let flat = PriceScale {
            high: 5.0,
            low: 5.0,
            steps: 20,
        };
        assert_eq!(flat.step(5.0), 9, "a flat range sits in the middle");
    }

    #[test]
    fn a_rising_candle_is_drawn_with_body_wicks_and_axis() {
        let theme = Theme::builtin("default").unwrap();
        let candle = |open: f64, close: f64, high: f64, low: f64| Candle {
            open_time_ms: 0,
            open,
            high,
            low,
            close,
            volume: 1.0,
            closed: true,
        };
        let detail = Detail {
            symbol: "TESTUSDT".to_owned(),
            timeframe: "1m".to_owned(),
            price_decimals: 0,
            candles: vec![candle(10.0, 14.0, 16.0, 8.0), candle(14.0, 12.0, 15.0, 11.0)],
            overlays: Overlays::default(),
            sweep: None,
        };
        let mut buf = Buffer::empty(Rect::new(0, 0, 12, 6));
        CandleChart {
            detail: Some(&detail),
            wanted: Some(("TESTUSDT", "1m")),
            theme: &theme,
        }
        .render(buf.area, &mut buf);
        // Scale 16 → 8 over 8 half-rows. The first candle (10 → 14) fills the middle with body and
        // has full wicks; the second (14 → 12) starts its wick mid-cell and ends its body mid-cell.
        let expected = Buffer::with_lines([
            "┌ TESTUSDT ┐",
            "│    │╷  16│",
            "│    ┃┃    │",
            "│┄┄┄┄┃╹ ◀12│",
            "│    │   8 │",
            "└00:00 UTC ┘",
        ]);
        let symbols = |buf: &Buffer| {
            buf.content
                .iter()
                .map(ratatui::buffer::Cell::symbol)
                .collect::<String>()
        };
        assert_eq!(symbols(&buf), symbols(&expected));
        assert_eq!(buf[(5, 2)].fg, theme.up);
        assert_eq!(buf[(6, 2)].fg, theme.down);
        assert_eq!(
            buf[(8, 3)].fg,
            theme.down,
            "the last price label takes the last candle's colour"
        );
    }

    fn flat_candles(times: &[i64]) -> Vec<Candle> {
        times
            .iter()
            .map(|time| Candle {
                open_time_ms: *time,
                open: 10.0,
                high: 12.0,
                low: 8.0,
                close: 11.0,
                volume: 1.0,
                closed: true,
            })
            .collect()
    }

    #[test]
    fn times_map_to_visible_candles_and_zone_starts() {
        let visible = flat_candles(&[100, 200, 300]);
        assert_eq!(candle_at(&visible, 200), Some(1));
        assert_eq!(candle_at(&visible, 250), None, "no candle opened then");
        assert_eq!(candle_at(&visible, 50), None, "before the window");
        assert_eq!(
            zone_start(&visible, 50),
            Some(0),
            "an older zone starts at the left edge"
        );
        assert_eq!(zone_start(&visible, 200), Some(1));
        assert_eq!(zone_start(&visible, 250), Some(2), "the first candle after it");
        assert_eq!(zone_start(&visible, 301), None, "newer than every candle");
    }

    #[test]
    fn grid_maps_prices_to_rows_and_candles_to_columns() {
        let grid = Grid {
            scale: PriceScale {
                high: 110.0,
                low: 100.0,
                steps: 20,
            },
            top: 3,
            first_x: 5,
            stride: 2,
        };
        assert_eq!(grid.row(110.0), 3, "the high is on the first candle row");
        assert_eq!(grid.row(100.0), 12, "the low on the last (10 rows of two steps)");
        assert_eq!(grid.row(90.0), 12, "clamped");
        assert_eq!(grid.column(0), 5);
        assert_eq!(grid.column(3), 11);
        assert!(grid.contains(105.0) && !grid.contains(111.0) && !grid.contains(99.0));
    }

    #[test]
    fn the_title_carries_the_liquidity_models_sweep_odds() {
        let theme = Theme::builtin("default").unwrap();
        let detail = Detail {
            symbol: "TESTUSDT".to_owned(),
            timeframe: "5m".to_owned(),
            price_decimals: 0,
            candles: flat_candles(&[0, 300_000]),
            overlays: Overlays::default(),
            sweep: Some(SweepOdds {
                above: Some(PoolOdds {
                    level: 16.0,
                    probability: 0.624,
                }),
                below: None,
                horizon_bars: 48,
                timeframe: "5m".to_owned(),
            }),
        };
        let mut buf = Buffer::empty(Rect::new(0, 0, 60, 8));
        CandleChart {
            detail: Some(&detail),
            wanted: Some(("TESTUSDT", "5m")),
            theme: &theme,
        }
        .render(buf.area, &mut buf);
        let top: String = (0..60).map(|x| buf[(x, 0)].symbol()).collect();
        assert!(top.contains("sweep ▲ 62% ▼ — 48×5m"), "{top}");
        let up = top.chars().position(|c| c == '▲').unwrap();
        assert_eq!(buf[(u16::try_from(up).unwrap(), 0)].fg, theme.up);
        // Narrower: the horizon goes first, then the odds; the title never runs into the corner.
        let top_at = |width: u16| {
            let mut buf = Buffer::empty(Rect::new(0, 0, width, 8));
            CandleChart {
                detail: Some(&detail),
                wanted: Some(("TESTUSDT", "5m")),
                theme: &theme,
            }
            .render(buf.area, &mut buf);
            (0..width).map(|x| buf[(x, 0)].symbol()).collect::<String>()
        };
        let narrower = top_at(40);
        assert!(
            narrower.contains("sweep ▲ 62% ▼ — ┐") || narrower.contains("sweep ▲ 62% ▼ — ─"),
            "{narrower}"
        );
        assert!(!narrower.contains("48×"), "{narrower}");
        let narrowest = top_at(28);
        assert!(!narrowest.contains("sweep"), "{narrowest}");
    }

    #[test]
    fn overlays_draw_bands_levels_and_markers_around_the_candles() {
        let theme = Theme::builtin("default").unwrap();
        let mut candles = flat_candles(&[0, 60_000, 120_000, 180_000, 240_000, 300_000, 360_000, 420_000]);
        candles[2].high = 16.0;
        candles[5].low = 4.0;
        let detail = Detail {
            symbol: "TESTUSDT".to_owned(),
            timeframe: "1m".to_owned(),
            price_decimals: 0,
            candles,
            overlays: Overlays {
                swings: vec![
                    SwingMark {
                        open_time_ms: 120_000,
                        price: 16.0,
                        high: true,
                    },
                    SwingMark {
                        open_time_ms: 300_000,
                        price: 4.0,
                        high: false,
                    },
                ],
                zones: vec![ZoneBand {
                    kind: "OB".to_owned(),
                    bullish: true,
                    top: 7.0,
                    bottom: 5.0,
                    from_ms: 240_000,
                }],
                levels: vec![
                    LevelLine {
                        kind: "liq".to_owned(),
                        price: 14.0,
                        high: true,
                    },
                    LevelLine {
                        kind: "liq".to_owned(),
                        price: 40.0,
                        high: true,
                    },
                ],
            },
            sweep: None,
        };
        // 24×12: inner 22×10, axis 3 wide ("16" + 1), plot 18×10 with stride 2: 8 candles at x 4..=18.
        let mut buf = Buffer::empty(Rect::new(0, 0, 24, 12));
        CandleChart {
            detail: Some(&detail),
            wanted: Some(("TESTUSDT", "1m")),
            theme: &theme,
        }
        .render(buf.area, &mut buf);
        // Candle rows 2..=9 (a marker row above and below), scale 16 → 4 over 16 steps.
        let grid = Grid {
            scale: PriceScale {
                high: 16.0,
                low: 4.0,
                steps: 16,
            },
            top: 2,
            first_x: 4,
            stride: 2,
        };
        assert_eq!(
            buf[(grid.column(2), 1)].symbol(),
            SWING_HIGH,
            "above the swing high's candle"
        );
        assert_eq!(
            buf[(grid.column(5), 10)].symbol(),
            SWING_LOW,
            "below the swing low's candle"
        );
        let level_y = grid.row(14.0);
        assert_eq!(buf[(1, level_y)].symbol(), LEVEL_DOT);
        assert_eq!(buf[(1, level_y)].fg, theme.liquidity);
        assert_eq!(buf[(20, level_y)].symbol(), " ");
        assert_eq!(buf[(21, level_y)].symbol(), "l", "named in the axis");
        // The band starts at the zone's candle and runs to the plot's right edge, under the candles.
        let band_y = grid.row(6.0);
        assert_eq!(buf[(grid.column(4) - 1, band_y)].bg, Color::Reset);
        for x in grid.column(4)..19 {
            assert_eq!(buf[(x, band_y)].bg, theme.zone_bull_bg, "x {x}");
        }
        assert_eq!(
            buf[(grid.column(5), band_y)].fg,
            theme.up,
            "the candle stays on top"
        );
        assert_ne!(buf[(grid.column(5), band_y)].symbol(), " ");
        // The legend has words when there is room, glyphs only when not, and gives way when too narrow.
        let chart = CandleChart {
            detail: Some(&detail),
            wanted: None,
            theme: &theme,
        };
        let text = |line: Option<Line<'_>>| line.map(|line| line.to_string());
        assert_eq!(
            text(chart.legend(&detail.overlays, 40)).as_deref(),
            Some(" ▴▾ swing ██ OB/FVG ┈ liq ")
        );
        assert_eq!(
            text(chart.legend(&detail.overlays, 12)).as_deref(),
            Some(" ▴▾ ██ ┈ ")
        );
        assert_eq!(text(chart.legend(&detail.overlays, 8)), None);
        assert_eq!(text(chart.legend(&Overlays::default(), 40)), None);
    }
}
