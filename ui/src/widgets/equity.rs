//! The equity curve: account equity over time as a sparkline, with the current equity and the drawdown
//! from the peak in the title.
//!
//! A sparkline (block heights `▁▂▃…█`) rather than a braille chart: it reads the same in every font and
//! over SSH, and at one column per sample it is as detailed as a pane this size allows. The curve is
//! scaled between its own lowest and highest point, so a small drawdown is visible; the bottom border
//! names that range so the shape is not mistaken for a large move. With more samples than columns each
//! column shows the last sample of its bucket, the way equity is read at a close.

use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Clear, Paragraph, Sparkline, Widget},
};

use crate::{
    format::format_price,
    theme::Theme,
    view::{EquityCurve, EquityPoint},
};

/// Heights a sparkline distinguishes per row (`▁` … `█`).
const STEPS_PER_ROW: u64 = 8;

/// The equity pane.
#[derive(Debug, Clone, Copy)]
pub struct EquityPane<'a> {
    pub equity: &'a EquityCurve,
    pub theme: &'a Theme,
}

/// The samples to draw in `width` columns: all of them if they fit, else the last sample of each of
/// `width` equal buckets, oldest first.
fn resample(points: &[EquityPoint], width: usize) -> Vec<f64> {
    if points.len() <= width || width == 0 {
        return points.iter().map(|point| point.equity).collect();
    }
    (1..=width)
        .map(|column| points[column * points.len() / width - 1].equity)
        .collect()
}

/// Sparkline heights for `values` out of `max` (the pane's rows × 8), scaled between their minimum and
/// maximum; the lowest point keeps a sliver (`▁`, height 1) so the line never disappears, a flat curve
/// sits in the middle.
fn heights(values: &[f64], max: u64) -> Vec<u64> {
    let finite = || values.iter().copied().filter(|value| value.is_finite());
    let low = finite().fold(f64::INFINITY, f64::min);
    let high = finite().fold(f64::NEG_INFINITY, f64::max);
    values
        .iter()
        .map(|value| {
            if !value.is_finite() {
                0
            } else if high > low {
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    clippy::cast_precision_loss
                )]
                let steps = ((value - low) / (high - low) * (max.saturating_sub(1)) as f64).round() as u64;
                1 + steps
            } else {
                max.div_ceil(2)
            }
        })
        .collect()
}

impl EquityPane<'_> {
    fn title(&self) -> Line<'static> {
        let equity = self.equity;
        let mut spans = vec![Span::styled(
            " Equity ",
            Style::new().fg(self.theme.title).add_modifier(Modifier::BOLD),
        )];
        if !equity.points.is_empty() || equity.equity != 0.0 {
            spans.push(Span::styled(
                format_price(equity.equity, 2),
                Style::new().fg(self.theme.text).add_modifier(Modifier::BOLD),
            ));
            let colour = if equity.drawdown_pct > 0.0 {
                self.theme.down
            } else {
                self.theme.muted
            };
            spans.push(Span::styled(
                format!("  dd {:.2}% ", equity.drawdown_pct),
                Style::new().fg(colour),
            ));
        }
        Line::from(spans)
    }
}

impl Widget for EquityPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let muted = Style::new().fg(self.theme.muted);
        let mut block = Block::new()
            .borders(Borders::ALL)
            .border_style(Style::new().fg(self.theme.border))
            .style(Style::new().fg(self.theme.text).bg(self.theme.background))
            .title(self.title());
        let points = &self.equity.points;
        let low = points.iter().map(|p| p.equity).fold(f64::INFINITY, f64::min);
        let high = points.iter().map(|p| p.equity).fold(f64::NEG_INFINITY, f64::max);
        if low.is_finite() && high.is_finite() {
            block = block.title_bottom(
                Line::from(Span::styled(
                    format!(" {} – {} ", format_price(low, 2), format_price(high, 2)),
                    muted,
                ))
                .right_aligned(),
            );
        }
        Clear.render(area, buf);
        let inner = block.inner(area);
        block.render(area, buf);
        if points.len() < 2 {
            let padded = Rect {
                x: inner.x + 1,
                width: inner.width.saturating_sub(2),
                ..inner
            };
            Paragraph::new(Line::from(Span::styled("no equity history yet", muted))).render(padded, buf);
            return;
        }
        let values = resample(points, usize::from(inner.width));
        let last = values.last().copied().unwrap_or(0.0);
        let first = values.first().copied().unwrap_or(0.0);
        // The curve's colour says whether the shown window ended up or down.
        let colour = if last >= first {
            self.theme.up
        } else {
            self.theme.down
        };
        let max = (u64::from(inner.height) * STEPS_PER_ROW).max(1);
        Sparkline::default()
            .data(heights(&values, max))
            .max(max)
            .style(Style::new().fg(colour))
            .render(inner, buf);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn curve(values: &[f64]) -> EquityCurve {
        let points: Vec<EquityPoint> = values
            .iter()
            .enumerate()
            .map(|(index, equity)| EquityPoint {
                time_ms: index as i64 * 60_000,
                equity: *equity,
            })
            .collect();
        let peak = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let last = values.last().copied().unwrap_or(0.0);
        EquityCurve {
            points,
            equity: last,
            peak,
            drawdown_pct: (1.0 - last / peak) * 100.0,
        }
    }

    fn render(equity: &EquityCurve, width: u16, height: u16) -> String {
        let theme = Theme::builtin("default").unwrap();
        let mut buf = Buffer::empty(Rect::new(0, 0, width, height));
        EquityPane {
            equity,
            theme: &theme,
        }
        .render(buf.area, &mut buf);
        (0..height)
            .map(|y| (0..width).map(|x| buf[(x, y)].symbol()).collect::<String>() + "\n")
            .collect()
    }

    #[test]
    fn resampling_keeps_the_last_of_each_bucket() {
        let points: Vec<EquityPoint> = (0..10)
            .map(|index| EquityPoint {
                time_ms: index,
                equity: index as f64,
            })
            .collect();
        assert_eq!(resample(&points, 5), [1.0, 3.0, 5.0, 7.0, 9.0]);
        assert_eq!(resample(&points[..3], 5), [0.0, 1.0, 2.0]);
        assert_eq!(heights(&[10.0, 15.0, 20.0], 25), [1, 13, 25]);
        assert_eq!(heights(&[7.0, 7.0], 24), [12, 12]);
    }

    #[test]
    fn curve_title_and_range() {
        let text = render(&curve(&[10_000.0, 10_200.0, 10_400.0, 10_150.0]), 44, 5);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("Equity 10,150.00  dd 2.40%"), "{text}");
        assert!(lines[4].contains("10,000.00 – 10,400.00"), "{text}");
        assert!(lines[3].starts_with("│▁"), "{text}");
        assert!(lines[1].contains('█'), "{text}");
    }

    #[test]
    fn no_history_says_so() {
        let text = render(&EquityCurve::default(), 40, 5);
        assert!(text.contains("no equity history yet"), "{text}");
        assert!(!text.contains("dd"), "{text}");
    }
}
