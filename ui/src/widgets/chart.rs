//! The detail pane: a candlestick chart of the focused symbol and timeframe.
//!
//! Each cell row holds two price steps (upper and lower half), drawn with box-drawing lines: a heavy
//! `┃` for the candle body, a light `│` for the wick, and the half-cell forms (`╹╻╿╽╵╷`) where a body
//! or wick starts or ends mid-cell. That doubles the vertical resolution of plain cell blocks while
//! staying in the box-drawing block every terminal font has. The price scale spans only the visible
//! candles, so a quiet market still fills the pane; the axis names its high, low and the last price.

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
    view::{Candle, Detail},
};

/// Candles are drawn every other column (a gap between candles) when the plot is at least this wide.
const MIN_WIDTH_FOR_GAPS: u16 = 16;

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

impl CandleChart<'_> {
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
        let scale = PriceScale {
            high,
            low,
            steps: usize::from(plot.height) * 2,
        };

        let last_close = visible.last().map(|candle| candle.close);
        let last_row = last_close.map(|close| scale.step(close) / 2);
        // A dotted guide at the last price, under the candles, so its level can be read across the plot.
        if let Some(row) = last_row {
            let y = plot.y + row as u16;
            for x in plot.left()..plot.right() {
                buf[(x, y)]
                    .set_symbol("┄")
                    .set_style(Style::new().fg(self.theme.border));
            }
        }

        let first_x = plot.right() - 1 - (visible.len().saturating_sub(1) as u16) * stride;
        for (index, candle) in visible.iter().enumerate() {
            let x = first_x + index as u16 * stride;
            let body_top = scale.step(candle.open.max(candle.close));
            let body_bottom = scale.step(candle.open.min(candle.close));
            let wick_top = scale.step(candle.high);
            let wick_bottom = scale.step(candle.low);
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
            for row in 0..usize::from(plot.height) {
                if let Some(symbol) = glyph(half(row * 2), half(row * 2 + 1)) {
                    buf[(x, plot.y + row as u16)].set_symbol(symbol).set_style(style);
                }
            }
        }

        // Axis: high at the top, low at the bottom, the last price at its level (it wins a tie).
        let muted = Style::new().fg(self.theme.muted);
        let mut labels = vec![(
            0_u16,
            format!(" {}", format_price(high, detail.price_decimals)),
            muted,
        )];
        labels.push((
            plot.height - 1,
            format!(" {}", format_price(low, detail.price_decimals)),
            muted,
        ));
        if let (Some(row), Some(close), Some(candle)) = (last_row, last_close, visible.last()) {
            let style = Style::new()
                .fg(self.candle_colour(candle))
                .add_modifier(Modifier::BOLD);
            labels.retain(|(label_row, _, _)| *label_row != row as u16);
            labels.push((
                row as u16,
                format!("◀{}", format_price(close, detail.price_decimals)),
                style,
            ));
        }
        for (row, text, style) in labels {
            let line_area = Rect {
                y: axis.y + row,
                height: 1,
                ..axis
            };
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
        let mut block = self
            .border_block()
            .title(self.title(&detail.symbol, &detail.timeframe, last));
        if let Some((symbol, timeframe)) = wanted
            && (symbol != detail.symbol || timeframe != detail.timeframe)
        {
            let loading = Style::new().fg(self.theme.warning);
            block = block.title(
                Line::from(Span::styled(format!(" loading {symbol} {timeframe}… "), loading)).right_aligned(),
            );
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
}
