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

use ratatui::{buffer::Buffer, layout::Rect, text::Line, widgets::Widget};

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
