//! The help overlay: every key and what it does, straight from [`KEYS`].
//!
//! Drawn from the same table that dispatches the keys, so the help cannot drift from the behaviour.

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
}

impl HelpOverlay<'_> {
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
        for context in [KeyContext::Browsing, KeyContext::Filtering] {
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
        let block = Block::new()
            .borders(Borders::ALL)
            .border_style(border)
            .style(Style::new().fg(self.theme.text).bg(self.theme.overlay_bg))
            .title(Span::styled(" Keys ", border.add_modifier(Modifier::BOLD)))
            .title_bottom(Line::from(Span::styled(" ? or Esc closes ", muted)).right_aligned());
        Clear.render(popup, buf);
        let inner = block.inner(popup);
        block.render(popup, buf);
        let padded = Rect {
            x: inner.x + 1,
            width: inner.width.saturating_sub(1),
            ..inner
        };
        Paragraph::new(lines).render(padded, buf);
    }
}
