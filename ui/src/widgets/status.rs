//! The bottom line: is data flowing, how far is the back-fill, how healthy is the link to the venue,
//! and the engine's last word.
//!
//! The series counts say `backfilled/streaming/total` so the operator sees start-up progress; the age
//! of the last stream message turns amber, then red, when the feed goes quiet, which catches a stalled
//! stream before the connection state does. Venue health sits beside it (WebSocket connections up/total
//! are in the header): REST weight used/limit, the clock offset (red past the ±1 s trading gate), the
//! listenKey age and the reconciliation state (`—` while there is no user stream), and, in red, a 429 /
//! 418 block while the venue refuses REST. The engine's message is kept when space runs out and the
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
    view::{Funnel, Reconciliation, Status},
};

/// A clock offset larger than this (either way) blocks trading: shown in the alert colour.
const CLOCK_GATE_MS: i64 = 1_000;

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
    /// Short labels without the user-stream fields, the clock and the weight limit.
    Compact,
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

    fn weight(&self) -> String {
        let status = self.status;
        if status.rest_weight_limit > 0 {
            format!("{}/{}", status.rest_weight_used, status.rest_weight_limit)
        } else {
            status.rest_weight_used.to_string()
        }
    }

    fn clock_span(&self, label: &'static str) -> Vec<Span<'static>> {
        let Some(offset) = self.status.clock_offset_ms else {
            return vec![Span::raw(format!("{label}{MISSING}"))];
        };
        let colour = if offset.abs() > CLOCK_GATE_MS {
            self.theme.alert
        } else {
            self.theme.status_fg
        };
        vec![
            Span::raw(label),
            Span::styled(format!("{offset:+}ms"), self.base().fg(colour)),
        ]
    }

    fn user_stream(&self, key_label: &str, recon_label: &str) -> Vec<Span<'static>> {
        let status = self.status;
        let key = status
            .listen_key_age_ms
            .map_or_else(|| MISSING.to_owned(), format_age);
        let recon = match status.reconciliation {
            None => Span::raw(MISSING),
            Some(Reconciliation::Reconciled) => Span::raw("ok"),
            Some(Reconciliation::Pending) => Span::styled("pending", self.base().fg(self.theme.warning)),
            Some(Reconciliation::Unknown) => Span::styled(
                "UNKNOWN",
                self.base().fg(self.theme.alert).add_modifier(Modifier::BOLD),
            ),
        };
        vec![Span::raw(format!("{key_label}{key} {recon_label}")), recon]
    }

    fn reconnects(&self, label: &str) -> String {
        let status = self.status;
        if status.rotations > 0 {
            format!("{label}{}+{}rot", status.reconnects, status.rotations)
        } else {
            format!("{label}{}", status.reconnects)
        }
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
                vec![Span::raw(self.reconnects("reconnects "))],
                vec![Span::raw(format!("weight {}", self.weight()))],
                self.clock_span("clock "),
                self.age_span("last msg ", " ago"),
                self.user_stream("listenKey ", "recon "),
            ],
            Detail::Short => vec![
                vec![Span::raw(format!("{} sym", status.universe_size))],
                vec![Span::raw(format!("series {series}"))],
                vec![Span::raw(format!("bars {}", format_count(status.closed_bars)))],
                vec![Span::raw(self.reconnects("rc "))],
                vec![Span::raw(format!("wt {}", self.weight()))],
                self.clock_span("clk "),
                self.age_span("msg ", ""),
                self.user_stream("key ", "rec "),
            ],
            Detail::Compact => vec![
                vec![Span::raw(format!("{} sym", status.universe_size))],
                vec![Span::raw(format!("series {series}"))],
                vec![Span::raw(format!("bars {}", format_count(status.closed_bars)))],
                vec![Span::raw(self.reconnects("rc "))],
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
                Detail::Short | Detail::Compact => {
                    parts.push(vec![Span::raw(format!("sig {signals}/{evaluated}"))]);
                }
                Detail::Shorter | Detail::Minimal | Detail::Nothing => {}
            }
        }
        // Missing bars and undecodable frames are rare and serious: shown, in the alert colour, only
        // when they are not zero, at every level of detail but the last.
        if detail != Detail::Nothing {
            let alert = self.base().fg(self.theme.alert).add_modifier(Modifier::BOLD);
            if let Some(block) = status.rest_blocked {
                let what = if block.banned { "REST banned" } else { "REST 429" };
                parts.push(vec![Span::styled(
                    format!("{what} {}", format_age(block.remaining_ms)),
                    alert,
                )]);
            }
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
        let mut candidates: Vec<(Line, Line)> = [
            Detail::Full,
            Detail::Short,
            Detail::Compact,
            Detail::Shorter,
            Detail::Minimal,
        ]
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
            rest_weight_limit: 2400,
            rest_blocked: None,
            clock_offset_ms: Some(-12),
            rotations: 0,
            listen_key_age_ms: None,
            reconciliation: None,
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
        let (_, text) = render(&status(Some("mode → hybrid"), Some(420)), 200);
        assert_eq!(
            text.trim_end(),
            " 200 symbols │ series 598/590/600 │ bars 123,456 │ reconnects 2 │ weight 41/2400 │ clock -12ms \
             │ last msg 0.4s ago │ listenKey — recon — │ mode → hybrid                                 ? help  q quit"
        );
        // Narrower: every counter, short labels.
        let (_, text) = render(&status(Some("mode → hybrid"), Some(420)), 160);
        assert_eq!(
            text.trim_end(),
            " 200 sym │ series 598/590/600 │ bars 123,456 │ rc 2 │ wt 41/2400 │ clk -12ms │ msg 0.4s │ key — rec — \
             │ mode → hybrid                            ? help  q quit"
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
    fn venue_health_rotations_bans_and_clock_gate() {
        let theme = Theme::builtin("default").unwrap();
        let mut s = status(None, Some(100));
        s.rotations = 3;
        s.clock_offset_ms = Some(1_500);
        s.listen_key_age_ms = Some(125_000);
        s.reconciliation = Some(Reconciliation::Unknown);
        s.rest_blocked = Some(crate::view::RestBlock {
            remaining_ms: 42_000,
            banned: true,
        });
        let (buf, text) = render(&s, 220);
        assert!(text.contains("reconnects 2+3rot"), "{text}");
        assert!(text.contains("listenKey 2m05s recon UNKNOWN"), "{text}");
        assert!(text.contains("REST banned 42s"), "{text}");
        let clock = text.find("+1500ms").expect("offset shown");
        assert_eq!(
            buf.content[text[..clock].chars().count()].fg,
            theme.alert,
            "past the 1 s gate"
        );
        s.rest_blocked = Some(crate::view::RestBlock {
            remaining_ms: 3_000,
            banned: false,
        });
        s.clock_offset_ms = None;
        let (_, text) = render(&s, 80);
        assert!(
            text.contains("REST 429 3.0s"),
            "a block survives narrow terminals: {text}"
        );
        let (_, text) = render(&s, 220);
        assert!(text.contains("clock —"), "{text}");
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
