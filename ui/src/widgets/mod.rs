//! The screen's parts, one widget per pane, each a plain ratatui [`Widget`](ratatui::widgets::Widget)
//! over borrowed view data and the theme.
//!
//! Widgets hold no state: [`App`](crate::App) decides what is selected and scrolled and passes it in,
//! so a widget can be rendered into a test buffer on its own.

pub mod chart;
pub mod equity;
pub mod events;
pub mod funnel;
pub mod header;
pub mod heatmap;
pub mod help;
pub mod models;
pub mod positions;
pub mod safety;
pub mod scanner;
pub mod scheduler;
pub mod status;

use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Clear, Widget},
};

use crate::Theme;

/// Draws the frame of a panel shown over the chart's pane (the funnel, the models): cleared area,
/// themed border, bold title, the key that closes it at the bottom right. Returns the inner area less a
/// column of padding on each side, where the panel writes its lines.
fn overlay_frame(theme: &Theme, title: &str, closes: &str, area: Rect, buf: &mut Buffer) -> Rect {
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(Style::new().fg(theme.border))
        .style(Style::new().fg(theme.text).bg(theme.background))
        .title(Span::styled(
            format!(" {title} "),
            Style::new().fg(theme.title).add_modifier(Modifier::BOLD),
        ))
        .title_bottom(
            Line::from(Span::styled(format!(" {closes} "), Style::new().fg(theme.muted))).right_aligned(),
        );
    Clear.render(area, buf);
    let inner = block.inner(area);
    block.render(area, buf);
    Rect {
        x: inner.x + 1,
        width: inner.width.saturating_sub(2),
        ..inner
    }
}

/// Renders the first `(left, right)` pair whose two halves fit in `area` side by side (left-aligned
/// and right-aligned, at least one column apart). Candidates go from richest to barest; if none fits,
/// the last is drawn with the right half first so that the left half, which carries the most important
/// text, wins where they overlap.
fn render_first_fitting(candidates: Vec<(Line<'_>, Line<'_>)>, area: Rect, buf: &mut Buffer) {
    let width = usize::from(area.width);
    let count = candidates.len();
    for (index, (left, right)) in candidates.into_iter().enumerate() {
        let fits = left.width() + right.width() < width || (right.width() == 0 && left.width() <= width);
        if fits || index + 1 == count {
            right.right_aligned().render(area, buf);
            let left_area = Rect {
                width: area.width.min(left.width() as u16),
                ..area
            };
            left.render(left_area, buf);
            return;
        }
    }
}
