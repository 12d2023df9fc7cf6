//! The help overlay: every key and what it does, straight from [`KEYS`].
//!
//! Drawn from the same table that dispatches the keys, so the help cannot drift from the behaviour.
//! When the terminal is too short for every line, the movement keys scroll it and the bottom border
//! says so with the range shown.

use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Clear, Paragraph, Widget},
};

use crate::{
    keymap::{KEYS, KeyContext},
    theme::Theme,
};

/// The help overlay, centred over the area it is rendered into.
#[derive(Debug, Clone, Copy)]
pub struct HelpOverlay<'a> {
    pub theme: &'a Theme,
    /// Lines scrolled off the top (clamped to what can scroll).
    pub scroll: usize,
}

impl HelpOverlay<'_> {
    /// Lines of help text: a heading per context and a line per binding.
    pub fn line_count() -> usize {
        KeyContext::ALL.len() + KEYS.len()
    }

    /// The most the help can scroll when drawn over `area`.
    pub fn max_scroll(area: Rect) -> usize {
        Self::line_count().saturating_sub(usize::from(area.height.saturating_sub(2)))
    }

    fn lines(self) -> Vec<Line<'static>> {
        let heading = Style::new()
            .fg(self.theme.title)
            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED);
        let key = Style::new().fg(self.theme.accent).add_modifier(Modifier::BOLD);
        let description = Style::new().fg(self.theme.text);
        let key_width = KEYS
            .iter()
            .map(|binding| binding.keys_label().chars().count())
            .max()
            .unwrap_or(0);
        let mut lines = Vec::new();
        for context in KeyContext::ALL {
            lines.push(Line::from(Span::styled(context.heading(), heading)));
            for binding in KEYS.iter().filter(|binding| binding.context == context) {
                lines.push(Line::from(vec![
                    Span::styled(format!("  {:<key_width$}  ", binding.keys_label()), key),
                    Span::styled(binding.description, description),
                ]));
            }
        }
        lines
    }
}

impl Widget for HelpOverlay<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let lines = self.lines();
        let content_width = lines.iter().map(Line::width).max().unwrap_or(0) as u16;
        let width = (content_width + 4).min(area.width);
        let height = (lines.len() as u16 + 2).min(area.height);
        let popup = Rect {
            x: area.x + (area.width - width) / 2,
            y: area.y + (area.height - height) / 2,
            width,
            height,
        };
        let border = Style::new().fg(self.theme.accent);
        let muted = Style::new().fg(self.theme.muted);
        let visible = usize::from(height.saturating_sub(2));
        let scroll = self.scroll.min(lines.len().saturating_sub(visible));
        let mut block = Block::new()
            .borders(Borders::ALL)
            .border_style(border)
            .style(Style::new().fg(self.theme.text).bg(self.theme.overlay_bg))
            .title(Span::styled(" Keys ", border.add_modifier(Modifier::BOLD)))
            .title_bottom(Line::from(Span::styled(" ? or Esc closes ", muted)).right_aligned());
        if visible < lines.len() {
            block = block.title_bottom(Line::from(Span::styled(
                format!(
                    " {}–{} of {}, j/k scroll ",
                    scroll + 1,
                    (scroll + visible).min(lines.len()),
                    lines.len()
                ),
                muted,
            )));
        }
        Clear.render(popup, buf);
        let inner = block.inner(popup);
        block.render(popup, buf);
        let padded = Rect {
            x: inner.x + 1,
            width: inner.width.saturating_sub(1),
            ..inner
        };
        Paragraph::new(lines.into_iter().skip(scroll).collect::<Vec<_>>()).render(padded, buf);
    }
}
