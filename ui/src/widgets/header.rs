//! The top line: where the console is connected, whether orders are real, the strategy mode, the
//! engine's UTC clock and the stream health.
//!
//! `LIVE` is a loud badge because it means real money; `PAPER` is a calm one. A mode change the
//! operator asked for shows as `mode: ict → hybrid…` until the engine reports it applied, so a key
//! press is acknowledged at once without pretending the switch already happened. On narrow terminals
//! the clock loses its date and the venue loses its name before anything else.

use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::Widget,
};

use crate::{
    format::{format_utc, format_utc_time},
    theme::Theme,
    view::{ConnectionState, Header, StrategyMode},
};

/// The header line.
#[derive(Debug, Clone, Copy)]
pub struct HeaderBar<'a> {
    pub header: &'a Header,
    /// The mode the operator asked for, while the engine has not applied it.
    pub pending_mode: Option<StrategyMode>,
    pub theme: &'a Theme,
}

/// How much of the venue to name, from most to least.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VenueDetail {
    /// `perpdesk · simulated exchange (sim)`
    Full,
    /// `perpdesk · sim`
    Environment,
    /// `sim`
    Bare,
}

impl HeaderBar<'_> {
    fn base(&self) -> Style {
        Style::new().fg(self.theme.header_fg).bg(self.theme.header_bg)
    }

    fn left(&self, detail: VenueDetail) -> Line<'static> {
        let header = self.header;
        let theme = self.theme;
        let bold = self.base().add_modifier(Modifier::BOLD);
        let mut spans = vec![Span::raw(" ")];
        if detail != VenueDetail::Bare {
            spans.push(Span::styled("perpdesk", bold));
            spans.push(Span::styled(" · ", self.base().fg(theme.muted)));
        }
        let venue = match (detail, header.venue.is_empty(), header.environment.is_empty()) {
            (VenueDetail::Full, false, false) => format!("{} ({})", header.venue, header.environment),
            (VenueDetail::Full, false, true) => header.venue.clone(),
            _ => header.environment.clone(),
        };
        if venue.is_empty() {
            // Nothing known yet (an attached TUI before the first full view): no dangling separator.
            spans.pop();
        }
        spans.push(Span::raw(venue));
        spans.push(Span::raw("  "));
        if header.live_trading {
            let live = Style::new()
                .fg(theme.live_fg)
                .bg(theme.live_bg)
                .add_modifier(Modifier::BOLD);
            spans.push(Span::styled(" LIVE ", live));
        } else {
            spans.push(Span::styled(
                " PAPER ",
                Style::new().fg(theme.paper_fg).bg(theme.paper_bg),
            ));
        }
        spans.push(Span::raw("  "));
        spans.push(Span::styled("mode: ", self.base().fg(theme.muted)));
        spans.push(Span::styled(header.mode.as_str(), bold));
        if let Some(pending) = self.pending_mode {
            let waiting = self.base().fg(theme.warning).add_modifier(Modifier::BOLD);
            spans.push(Span::styled(format!(" → {}…", pending.as_str()), waiting));
        }
        Line::from(spans).style(self.base())
    }

    fn right(&self, full_date: bool) -> Line<'static> {
        let header = self.header;
        let theme = self.theme;
        let clock = if full_date {
            format_utc(header.now_ms)
        } else {
            format_utc_time(header.now_ms)
        };
        let counts = format!("{}/{}", header.streams_up, header.streams_total);
        let (text, style) = match header.connection {
            ConnectionState::Connected => (format!("connected {counts}"), self.base().fg(theme.ok)),
            ConnectionState::Degraded => (format!("degraded {counts}"), self.base().fg(theme.warning)),
            ConnectionState::Connecting => ("connecting…".to_owned(), self.base().fg(theme.warning)),
            ConnectionState::Disconnected => (
                format!("DISCONNECTED {counts}"),
                self.base().fg(theme.alert).add_modifier(Modifier::BOLD),
            ),
        };
        Line::from(vec![
            Span::raw(clock),
            Span::raw("  "),
            Span::styled(text, style),
            Span::raw(" "),
        ])
        .style(self.base())
    }
}

impl Widget for HeaderBar<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        buf.set_style(area, self.base());
        let candidates = vec![
            (self.left(VenueDetail::Full), self.right(true)),
            (self.left(VenueDetail::Full), self.right(false)),
            (self.left(VenueDetail::Environment), self.right(false)),
            (self.left(VenueDetail::Bare), self.right(false)),
        ];
        super::render_first_fitting(candidates, area, buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(connection: ConnectionState, up: u32, live: bool) -> Header {
        Header {
            venue: "simulated exchange".to_owned(),
            environment: "sim".to_owned(),
            live_trading: live,
            mode: StrategyMode::Ict,
            now_ms: 1_795_509_067_000,
            connection,
            streams_up: up,
            streams_total: 3,
        }
    }

    fn render(header: &Header, pending: Option<StrategyMode>, width: u16) -> Buffer {
        let theme = Theme::builtin("default").unwrap();
        let mut buf = Buffer::empty(Rect::new(0, 0, width, 1));
        HeaderBar {
            header,
            pending_mode: pending,
            theme: &theme,
        }
        .render(buf.area, &mut buf);
        buf
    }

    fn text(buf: &Buffer) -> String {
        buf.content.iter().map(ratatui::buffer::Cell::symbol).collect()
    }

    fn style_of(buf: &Buffer, needle: &str) -> Style {
        let line = text(buf);
        let byte = line.find(needle).unwrap();
        let column = line[..byte].chars().count();
        buf.content[column].style()
    }

    #[test]
    fn wide_header_shows_everything() {
        let buf = render(&header(ConnectionState::Connected, 3, false), None, 120);
        assert_eq!(
            text(&buf).trim_end(),
            " perpdesk · simulated exchange (sim)   PAPER   mode: ict                         \
             2026-11-24 08:31:07 UTC  connected 3/3"
        );
    }

    #[test]
    fn narrow_header_drops_the_date_then_the_venue_name() {
        let buf = render(
            &header(ConnectionState::Degraded, 2, false),
            Some(StrategyMode::SelfLearning),
            80,
        );
        assert_eq!(
            text(&buf),
            " perpdesk · sim   PAPER   mode: ict → self_learning… 08:31:07 UTC  degraded 2/3 "
        );
    }

    #[test]
    fn live_and_disconnected_use_the_alert_colours() {
        let theme = Theme::builtin("default").unwrap();
        let buf = render(&header(ConnectionState::Disconnected, 0, true), None, 120);
        let live = style_of(&buf, "LIVE");
        assert_eq!((live.fg, live.bg), (Some(theme.live_fg), Some(theme.live_bg)));
        assert!(live.add_modifier.contains(Modifier::BOLD));
        let down = style_of(&buf, "DISCONNECTED 0/3");
        assert_eq!(down.fg, Some(theme.alert));
        assert!(down.add_modifier.contains(Modifier::BOLD));
        let paper = render(&header(ConnectionState::Connecting, 0, false), None, 120);
        assert_eq!(style_of(&paper, "PAPER").bg, Some(theme.paper_bg));
        assert!(text(&paper).contains("connecting…"));
    }
}
