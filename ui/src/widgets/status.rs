//! The bottom line: is data flowing, how far is the back-fill, and the engine's last word.
//!
//! The series counts say `backfilled/streaming/total` so the operator sees start-up progress; the age
//! of the last stream message turns amber, then red, when the feed goes quiet, which catches a stalled
//! stream before the connection state does. The engine's message is kept when space runs out and the
//! counters are shortened or dropped instead. Once the strategy has evaluated anything, the funnel's
//! `signals N/evaluated M` joins the counters (shortened to `sig N/M`, then dropped, as space runs out).

use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::Widget,
};

use crate::{
    format::{MISSING, format_age, format_count},
    theme::Theme,
    view::{Funnel, Status},
};

/// A last message older than this is shown in the warning colour.
const QUIET_AFTER_MS: u64 = 5_000;
/// A last message older than this is shown in the alert colour: the feed is probably stalled.
const STALE_AFTER_MS: u64 = 30_000;

/// The status line.
#[derive(Debug, Clone, Copy)]
pub struct StatusBar<'a> {
    pub status: &'a Status,
    pub funnel: &'a Funnel,
    pub theme: &'a Theme,
}

/// How much of the counters to show, from most to least.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detail {
    Full,
    /// Every counter, short labels.
    Short,
    /// Symbols, series, bars and the last message.
    Shorter,
    Minimal,
    Nothing,
}

impl StatusBar<'_> {
    fn base(&self) -> Style {
        Style::new().fg(self.theme.status_fg).bg(self.theme.status_bg)
    }

    fn age_span(&self, label: &'static str, suffix: &'static str) -> Vec<Span<'static>> {
        let Some(age_ms) = self.status.last_message_age_ms else {
            return vec![Span::raw(format!("{label}{MISSING}"))];
        };
        let colour = if age_ms >= STALE_AFTER_MS {
            self.theme.alert
        } else if age_ms >= QUIET_AFTER_MS {
            self.theme.warning
        } else {
            self.theme.status_fg
        };
        vec![
            Span::raw(label),
            Span::styled(format!("{}{suffix}", format_age(age_ms)), self.base().fg(colour)),
        ]
    }

    fn left(&self, detail: Detail) -> Line<'static> {
        let status = self.status;
        let separator = || Span::styled(" │ ", self.base().fg(self.theme.muted));
        let series = format!(
            "{}/{}/{}",
            status.series_backfilled, status.series_streaming, status.series_total
        );
        let mut parts: Vec<Vec<Span<'static>>> = match detail {
            Detail::Full => vec![
                vec![Span::raw(format!("{} symbols", status.universe_size))],
                vec![Span::raw(format!("series {series}"))],
                vec![Span::raw(format!("bars {}", format_count(status.closed_bars)))],
                vec![Span::raw(format!("reconnects {}", status.reconnects))],
                vec![Span::raw(format!("weight {}", status.rest_weight_used))],
                self.age_span("last msg ", " ago"),
            ],
            Detail::Short => vec![
                vec![Span::raw(format!("{} sym", status.universe_size))],
                vec![Span::raw(format!("series {series}"))],
                vec![Span::raw(format!("bars {}", format_count(status.closed_bars)))],
                vec![Span::raw(format!("rc {}", status.reconnects))],
                vec![Span::raw(format!("wt {}", status.rest_weight_used))],
                self.age_span("msg ", ""),
            ],
            Detail::Shorter => vec![
                vec![Span::raw(format!("{} sym", status.universe_size))],
                vec![Span::raw(format!("series {series}"))],
                vec![Span::raw(format!("bars {}", format_count(status.closed_bars)))],
                self.age_span("msg ", ""),
            ],
            Detail::Minimal => vec![
                vec![Span::raw(format!("series {series}"))],
                self.age_span("msg ", ""),
            ],
            Detail::Nothing => Vec::new(),
        };
        let funnel = self.funnel;
        if funnel.evaluated > 0 {
            let signals = format_count(funnel.signals);
            let evaluated = format_count(funnel.evaluated);
            match detail {
                Detail::Full => parts.push(vec![Span::raw(format!(
                    "signals {signals}/evaluated {evaluated}"
                ))]),
                Detail::Short => parts.push(vec![Span::raw(format!("sig {signals}/{evaluated}"))]),
                Detail::Shorter | Detail::Minimal | Detail::Nothing => {}
            }
        }
        // Missing bars and undecodable frames are rare and serious: shown, in the alert colour, only
        // when they are not zero, at every level of detail but the last.
        if detail != Detail::Nothing {
            let alert = self.base().fg(self.theme.alert).add_modifier(Modifier::BOLD);
            if status.missing_bars > 0 {
                parts.push(vec![Span::styled(
                    format!("missing bars {}", status.missing_bars),
                    alert,
                )]);
            }
            if status.malformed_frames > 0 {
                parts.push(vec![Span::styled(
                    format!("bad frames {}", status.malformed_frames),
                    alert,
                )]);
            }
        }
        if let Some(message) = status.message.as_deref().filter(|message| !message.is_empty()) {
            parts.push(vec![Span::styled(
                message.to_owned(),
                self.base().add_modifier(Modifier::BOLD),
            )]);
        }
        let mut spans = vec![Span::raw(" ")];
        for (index, part) in parts.into_iter().enumerate() {
            if index > 0 {
                spans.push(separator());
            }
            spans.extend(part);
        }
        Line::from(spans).style(self.base())
    }

    fn hint(&self) -> Line<'static> {
        let key = self.base().fg(self.theme.accent).add_modifier(Modifier::BOLD);
        Line::from(vec![
            Span::styled("?", key),
            Span::raw(" help  "),
            Span::styled("q", key),
            Span::raw(" quit "),
        ])
        .style(self.base())
    }
}

impl Widget for StatusBar<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        buf.set_style(area, self.base());
        let mut candidates: Vec<(Line, Line)> =
            [Detail::Full, Detail::Short, Detail::Shorter, Detail::Minimal]
                .map(|detail| (self.left(detail), self.hint()))
                .into();
        candidates.push((self.left(Detail::Minimal), Line::default()));
        candidates.push((self.left(Detail::Nothing), Line::default()));
        super::render_first_fitting(candidates, area, buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(message: Option<&str>, age: Option<u64>) -> Status {
        Status {
            universe_size: 200,
            series_backfilled: 598,
            series_streaming: 590,
            series_total: 600,
            closed_bars: 123_456,
            reconnects: 2,
            missing_bars: 0,
            malformed_frames: 0,
            rest_weight_used: 41,
            last_message_age_ms: age,
            message: message.map(str::to_owned),
        }
    }

    fn render(status: &Status, width: u16) -> (Buffer, String) {
        let theme = Theme::builtin("default").unwrap();
        let mut buf = Buffer::empty(Rect::new(0, 0, width, 1));
        StatusBar {
            status,
            funnel: &Funnel::default(),
            theme: &theme,
        }
        .render(buf.area, &mut buf);
        let text = buf.content.iter().map(ratatui::buffer::Cell::symbol).collect();
        (buf, text)
    }

    #[test]
    fn wide_status_spells_everything_out() {
        let (_, text) = render(&status(Some("mode → hybrid"), Some(420)), 160);
        assert_eq!(
            text.trim_end(),
            " 200 symbols │ series 598/590/600 │ bars 123,456 │ reconnects 2 │ weight 41 │ last msg 0.4s ago \
             │ mode → hybrid                                  ? help  q quit"
        );
    }

    #[test]
    fn narrow_status_shortens_counters_and_keeps_the_message() {
        let (_, text) = render(&status(None, None), 80);
        assert_eq!(
            text,
            " 200 sym │ series 598/590/600 │ bars 123,456 │ msg —             ? help  q quit "
        );
        let (_, text) = render(&status(Some("stream 2 reconnecting (1006)"), Some(1_000)), 80);
        assert_eq!(
            text,
            " series 598/590/600 │ msg 1.0s │ stream 2 reconnecting (1006)    ? help  q quit "
        );
        // A longer message pushes out the key hint before it is itself cut.
        let (_, text) = render(
            &status(Some("stream 2 reconnecting after close code 1006"), Some(1_000)),
            80,
        );
        assert_eq!(
            text,
            " series 598/590/600 │ msg 1.0s │ stream 2 reconnecting after close code 1006    "
        );
    }

    #[test]
    fn a_quiet_feed_turns_amber_then_red() {
        let theme = Theme::builtin("default").unwrap();
        let colour_at = |age| {
            let (buf, text) = render(&status(None, Some(age)), 160);
            let byte = text.find("ago").unwrap();
            buf.content[text[..byte].chars().count() - 3].fg
        };
        assert_eq!(colour_at(1_000), theme.status_fg);
        assert_eq!(colour_at(6_000), theme.warning);
        assert_eq!(colour_at(45_000), theme.alert);
    }

    #[test]
    fn missing_bars_and_bad_frames_are_shown_only_when_present() {
        let mut s = status(None, Some(100));
        let (_, text) = render(&s, 160);
        assert!(
            !text.contains("missing") && !text.contains("bad frames"),
            "{text}"
        );
        s.missing_bars = 3;
        s.malformed_frames = 7;
        let (_, text) = render(&s, 160);
        assert!(
            text.contains("missing bars 3") && text.contains("bad frames 7"),
            "{text}"
        );
    }
}
