//! The lifecycle event log: what happened to the positions, newest first.
//!
//! One line per event: UTC time, symbol with its side letter, the kind, and the engine's short text.
//! The kind is coloured by what it means to the operator rather than one colour per kind: triggers
//! and closes in bold, a take profit in the rising colour, a stop in the falling colour, approaching
//! levels and risk changes in amber, a liquidation warning in the alert colour, routine updates muted.
//! A close shows its reason (`manual`, `breaker`, `kill switch`…) in front of the text. When the pane
//! is narrow the time loses its seconds and then goes, before the text is cut.

use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Clear, Paragraph, Widget},
};

use crate::{
    format::UtcDateTime,
    theme::Theme,
    view::{EventKind, LifecycleEntry, PositionSide},
    widgets::funnel::fit,
};

/// `TP near`, `LIQ WARNING`: the widest kind label.
const KIND_WIDTH: usize = 11;
/// Symbols longer than this are cut with `…`.
const MAX_SYMBOL_WIDTH: usize = 12;
/// Below this width the time is `08:31` instead of `08:31:07`; below the next it is left out.
const SECONDS_WIDTH: usize = 50;
const TIME_WIDTH: usize = 36;

/// The event log pane.
#[derive(Debug, Clone, Copy)]
pub struct EventLog<'a> {
    /// Newest first, as the view carries them.
    pub events: &'a [LifecycleEntry],
    pub theme: &'a Theme,
}

impl EventLog<'_> {
    fn kind_style(&self, kind: &EventKind) -> Style {
        let theme = self.theme;
        let bold = Modifier::BOLD;
        match kind {
            EventKind::Created | EventKind::TrailingStopMoved => Style::new().fg(theme.accent),
            EventKind::PriceUpdated | EventKind::Expired => Style::new().fg(theme.muted),
            EventKind::RiskLevelChanged | EventKind::StopLossApproaching => Style::new().fg(theme.warning),
            EventKind::TakeProfitApproaching => Style::new().fg(theme.up),
            EventKind::TakeProfitTriggered => Style::new().fg(theme.up).add_modifier(bold),
            EventKind::StopLossTriggered => Style::new().fg(theme.down).add_modifier(bold),
            EventKind::LiquidationWarning => Style::new().fg(theme.alert).add_modifier(bold),
            EventKind::Closed { .. } => Style::new().fg(theme.text).add_modifier(bold),
        }
    }

    fn line(&self, event: &LifecycleEntry, width: usize, symbol_width: usize) -> Line<'static> {
        let muted = Style::new().fg(self.theme.muted);
        let mut spans = Vec::new();
        let at = UtcDateTime::from_epoch_ms(event.time_ms);
        if width >= SECONDS_WIDTH {
            spans.push(Span::styled(
                format!("{:02}:{:02}:{:02} ", at.hour, at.minute, at.second),
                muted,
            ));
        } else if width >= TIME_WIDTH {
            spans.push(Span::styled(format!("{:02}:{:02} ", at.hour, at.minute), muted));
        }
        let (side, side_colour) = match event.side {
            PositionSide::Long => ("L", self.theme.up),
            PositionSide::Short => ("S", self.theme.down),
        };
        spans.push(Span::styled(
            format!("{:<symbol_width$} ", fit(&event.symbol, symbol_width)),
            Style::new().fg(self.theme.text).add_modifier(Modifier::BOLD),
        ));
        spans.push(Span::styled(format!("{side} "), Style::new().fg(side_colour)));
        spans.push(Span::styled(
            format!("{:<KIND_WIDTH$} ", event.kind.label()),
            self.kind_style(&event.kind),
        ));
        let used: usize = spans.iter().map(Span::width).sum();
        let room = width.saturating_sub(used);
        let text = match &event.kind {
            EventKind::Closed { reason } if event.text.is_empty() => reason.clone(),
            EventKind::Closed { reason } => format!("{reason} · {}", event.text),
            _ => event.text.clone(),
        };
        if room > 0 {
            spans.push(Span::styled(fit(&text, room), Style::new().fg(self.theme.text)));
        }
        Line::from(spans)
    }
}

impl Widget for EventLog<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let block = Block::new()
            .borders(Borders::ALL)
            .border_style(Style::new().fg(self.theme.border))
            .style(Style::new().fg(self.theme.text).bg(self.theme.background))
            .title(Span::styled(
                " Events ",
                Style::new().fg(self.theme.title).add_modifier(Modifier::BOLD),
            ))
            .title(
                Line::from(Span::styled(" newest first ", Style::new().fg(self.theme.muted))).right_aligned(),
            );
        Clear.render(area, buf);
        let inner = block.inner(area);
        block.render(area, buf);
        let padded = Rect {
            x: inner.x + 1,
            width: inner.width.saturating_sub(2),
            ..inner
        };
        if self.events.is_empty() {
            Paragraph::new(Line::from(Span::styled(
                "no lifecycle events yet",
                Style::new().fg(self.theme.muted),
            )))
            .render(padded, buf);
            return;
        }
        let shown = &self.events[..self.events.len().min(usize::from(padded.height))];
        let symbol_width = shown
            .iter()
            .map(|event| event.symbol.chars().count())
            .max()
            .unwrap_or(0)
            .min(MAX_SYMBOL_WIDTH);
        let width = usize::from(padded.width);
        let lines: Vec<Line> = shown
            .iter()
            .map(|event| self.line(event, width, symbol_width))
            .collect();
        Paragraph::new(lines).render(padded, buf);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    /// 2026-11-24 08:31:07 UTC.
    const NOW_MS: i64 = 1_795_509_067_000;

    fn entry(seconds_ago: i64, symbol: &str, kind: EventKind, text: &str) -> LifecycleEntry {
        LifecycleEntry {
            time_ms: NOW_MS - seconds_ago * 1_000,
            position_id: 7,
            symbol: symbol.to_owned(),
            side: PositionSide::Short,
            kind,
            text: text.to_owned(),
        }
    }

    fn render(events: &[LifecycleEntry], width: u16, height: u16) -> (Buffer, String) {
        let theme = Theme::builtin("default").unwrap();
        let mut buf = Buffer::empty(Rect::new(0, 0, width, height));
        EventLog {
            events,
            theme: &theme,
        }
        .render(buf.area, &mut buf);
        let text = (0..height)
            .map(|y| (0..width).map(|x| buf[(x, y)].symbol()).collect::<String>() + "\n")
            .collect();
        (buf, text)
    }

    #[test]
    fn lines_show_time_symbol_side_kind_and_text() {
        let events = [
            entry(
                0,
                "BTCUSDT",
                EventKind::Closed {
                    reason: "stop loss".to_owned(),
                },
                "-12.40 USDT",
            ),
            entry(
                3,
                "BTCUSDT",
                EventKind::StopLossTriggered,
                "mark 97,310.5 ≥ stop 97,300.0",
            ),
            entry(65, "ETHUSDT", EventKind::Created, "0.52 @ 3,456.78 10x"),
        ];
        let (_, text) = render(&events, 72, 5);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1],
            "│ 08:31:07 BTCUSDT S closed      stop loss · -12.40 USDT               │"
        );
        assert_eq!(
            lines[2],
            "│ 08:31:04 BTCUSDT S SL hit      mark 97,310.5 ≥ stop 97,300.0         │"
        );
        assert!(
            lines[3].starts_with("│ 08:30:02 ETHUSDT S created     0.52"),
            "{text}"
        );
    }

    #[test]
    fn kinds_are_coloured_by_meaning() {
        let theme = Theme::builtin("default").unwrap();
        let events = [
            entry(0, "X", EventKind::LiquidationWarning, ""),
            entry(1, "X", EventKind::TakeProfitTriggered, ""),
            entry(2, "X", EventKind::PriceUpdated, ""),
        ];
        let (buf, text) = render(&events, 60, 5);
        let x = text.lines().nth(1).unwrap().find("LIQ").unwrap() as u16;
        // Everything before the kind is one-byte ASCII but the border.
        let x = x - 2;
        assert_eq!(buf[(x, 1)].fg, theme.alert);
        assert_eq!(buf[(x, 2)].fg, theme.up);
        assert_eq!(buf[(x, 3)].fg, theme.muted);
    }

    #[test]
    fn narrow_panes_shorten_the_time_then_drop_it() {
        let events = [entry(0, "BTCUSDT", EventKind::Expired, "after 24h")];
        let (_, text) = render(&events, 44, 3);
        assert!(text.contains("│ 08:31 BTCUSDT S expired     after 24h"), "{text}");
        let (_, text) = render(&events, 36, 3);
        assert!(text.contains("│ BTCUSDT S expired     after 24h"), "{text}");
    }

    #[test]
    fn empty_log_says_so() {
        let (_, text) = render(&[], 40, 4);
        assert!(text.contains("no lifecycle events yet"), "{text}");
    }
}
