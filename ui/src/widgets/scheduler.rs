//! The scheduler panel: how closely the open positions are watched.
//!
//! One line per lane (100 ms / 500 ms / 2 s / 5 s) with the positions in it as a bar, scaled to the
//! fullest lane, and the count; each lane in the colour of its risk band (the heatmap's colours), so a
//! red bar growing is positions moving towards their stops. Under the lanes: checks per second, the
//! time until the next check is due and how late checks run. Lateness is the panel's health signal: a
//! check that runs later than the fastest lane's interval turns amber, later than a second red.
//! With smart monitoring off (`ENABLE_SMART_MONITORING=false`) the title says every position is checked
//! at the fixed interval instead of by risk.

use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Clear, Paragraph, Widget},
};

use crate::{
    format::{MISSING, format_count},
    theme::Theme,
    view::SchedulerPanel,
    widgets::heatmap::RiskBand,
};

/// Lag above this is amber: checks run later than the fastest lane's interval.
const LATE_AFTER_MS: i64 = 100;
/// Lag above this is red: the scheduler is a second or more behind.
const BEHIND_AFTER_MS: i64 = 1_000;
/// `100ms`, `500ms`, `2s`, `5s`: the label column.
const LANE_LABEL_WIDTH: usize = 5;

/// `100ms`, `2s`, `1.5s`, `1m`.
pub fn format_interval(interval_ms: u64) -> String {
    if interval_ms < 1_000 {
        format!("{interval_ms}ms")
    } else if interval_ms.is_multiple_of(60_000) {
        format!("{}m", interval_ms / 60_000)
    } else if interval_ms.is_multiple_of(1_000) {
        format!("{}s", interval_ms / 1_000)
    } else {
        format!("{:.1}s", interval_ms as f64 / 1_000.0)
    }
}

/// A signed millisecond duration in at most 6 characters: `40ms`, `1.2s`, `12s`, `3m`.
pub fn format_ms(ms: i64) -> String {
    let magnitude = ms.unsigned_abs();
    let sign = if ms < 0 { "-" } else { "" };
    if magnitude < 1_000 {
        format!("{sign}{magnitude}ms")
    } else if magnitude < 10_000 {
        format!("{sign}{}.{}s", magnitude / 1_000, magnitude % 1_000 / 100)
    } else if magnitude < 120_000 {
        format!("{sign}{}s", magnitude / 1_000)
    } else {
        format!("{sign}{}m", magnitude / 60_000)
    }
}

/// Checks per second, compact: `850`, `12.3k`, `1.25M`.
fn format_rate(rate: f64) -> String {
    if !rate.is_finite() || rate < 0.0 {
        MISSING.to_owned()
    } else if rate < 1_000.0 {
        format!("{rate:.0}")
    } else if rate < 1_000_000.0 {
        format!("{:.1}k", rate / 1_000.0)
    } else {
        format!("{:.2}M", rate / 1_000_000.0)
    }
}

/// The scheduler pane.
#[derive(Debug, Clone, Copy)]
pub struct SchedulerView<'a> {
    pub scheduler: &'a SchedulerPanel,
    pub theme: &'a Theme,
}

impl SchedulerView<'_> {
    fn title(&self) -> Line<'static> {
        let mut spans = vec![Span::styled(
            " Scheduler ",
            Style::new().fg(self.theme.title).add_modifier(Modifier::BOLD),
        )];
        match self.scheduler.fixed_interval_ms {
            Some(interval) => spans.push(Span::styled(
                format!("smart off, {} ", format_interval(interval)),
                Style::new().fg(self.theme.warning).add_modifier(Modifier::BOLD),
            )),
            None if !self.scheduler.lanes.is_empty() => {
                spans.push(Span::styled("smart ", Style::new().fg(self.theme.muted)));
            }
            None => {}
        }
        Line::from(spans)
    }

    /// One lane: label, bar scaled to `max`, count right-aligned.
    fn lane_line(&self, interval_ms: u64, count: u64, max: u64, width: usize) -> Line<'static> {
        let count_text = format_count(count);
        let count_width = count_text.len().max(5);
        let bar_width = width.saturating_sub(LANE_LABEL_WIDTH + 2 + count_width);
        let filled = if max == 0 || count == 0 {
            0
        } else {
            // At least one cell for a non-empty lane, so one position in a lane is never invisible.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let cells = ((count as f64 / max as f64) * bar_width as f64).round() as usize;
            cells.clamp(1, bar_width)
        };
        let colour = if self.scheduler.fixed_interval_ms.is_some() {
            self.theme.accent
        } else {
            RiskBand::of_interval(interval_ms).colour(self.theme)
        };
        Line::from(vec![
            Span::styled(
                format!("{:>LANE_LABEL_WIDTH$} ", format_interval(interval_ms)),
                Style::new().fg(self.theme.muted),
            ),
            Span::styled("█".repeat(filled), Style::new().fg(colour)),
            Span::styled("·".repeat(bar_width - filled), Style::new().fg(self.theme.border)),
            Span::styled(
                format!(" {count_text:>count_width$}"),
                Style::new().fg(self.theme.text).add_modifier(Modifier::BOLD),
            ),
        ])
    }

    fn lag_colour(&self, lag_ms: i64) -> ratatui::style::Color {
        if lag_ms > BEHIND_AFTER_MS {
            self.theme.alert
        } else if lag_ms > LATE_AFTER_MS {
            self.theme.warning
        } else {
            self.theme.text
        }
    }

    /// `48.2k chk/s │ next 40ms │ lag 3ms (max 12ms)`, shortened to fit `width`.
    fn stats_line(&self, width: usize) -> Line<'static> {
        let scheduler = self.scheduler;
        let muted = Style::new().fg(self.theme.muted);
        let value = Style::new().fg(self.theme.text).add_modifier(Modifier::BOLD);
        let next = scheduler
            .next_due_in_ms
            .map_or_else(|| MISSING.to_owned(), format_ms);
        let lag_style = Style::new()
            .fg(self.lag_colour(scheduler.lag_ms.max(scheduler.max_lag_ms)))
            .add_modifier(Modifier::BOLD);
        let full = vec![
            Span::styled(format_rate(scheduler.checks_per_sec), value),
            Span::styled(" chk/s  next ", muted),
            Span::styled(next.clone(), value),
            Span::styled("  lag ", muted),
            Span::styled(format_ms(scheduler.lag_ms), lag_style),
            Span::styled(" max ", muted),
            Span::styled(format_ms(scheduler.max_lag_ms), lag_style),
        ];
        let line = Line::from(full);
        if line.width() <= width {
            return line;
        }
        Line::from(vec![
            Span::styled(format_rate(scheduler.checks_per_sec), value),
            Span::styled("/s nx ", muted),
            Span::styled(next, value),
            Span::styled(" lag ", muted),
            Span::styled(format_ms(scheduler.lag_ms.max(scheduler.max_lag_ms)), lag_style),
        ])
    }
}

impl Widget for SchedulerView<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let block = Block::new()
            .borders(Borders::ALL)
            .border_style(Style::new().fg(self.theme.border))
            .style(Style::new().fg(self.theme.text).bg(self.theme.background))
            .title(self.title());
        Clear.render(area, buf);
        let inner = block.inner(area);
        block.render(area, buf);
        let padded = Rect {
            x: inner.x + 1,
            width: inner.width.saturating_sub(2),
            ..inner
        };
        let width = usize::from(padded.width);
        let lanes = &self.scheduler.lanes;
        if lanes.is_empty() {
            Paragraph::new(Line::from(Span::styled(
                "nothing scheduled",
                Style::new().fg(self.theme.muted),
            )))
            .render(padded, buf);
            return;
        }
        let max = lanes.iter().map(|lane| lane.count).max().unwrap_or(0);
        let mut lines: Vec<Line> = lanes
            .iter()
            .map(|lane| self.lane_line(lane.interval_ms, lane.count, max, width))
            .collect();
        let height = usize::from(padded.height);
        // The stats line is worth more than the slowest lane when the pane is short.
        lines.truncate(height.saturating_sub(1).max(1));
        if height > lines.len() {
            lines.push(self.stats_line(width));
        }
        Paragraph::new(lines).render(padded, buf);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::view::SchedulerLane;

    fn panel() -> SchedulerPanel {
        SchedulerPanel {
            lanes: [(100, 3), (500, 12), (2_000, 40), (5_000, 80)]
                .map(|(interval_ms, count)| SchedulerLane { interval_ms, count })
                .into(),
            fixed_interval_ms: None,
            checks_per_sec: 48_234.0,
            next_due_in_ms: Some(40),
            lag_ms: 3,
            max_lag_ms: 12,
        }
    }

    fn render(scheduler: &SchedulerPanel, width: u16, height: u16) -> (Buffer, String) {
        let theme = Theme::builtin("default").unwrap();
        let mut buf = Buffer::empty(Rect::new(0, 0, width, height));
        SchedulerView {
            scheduler,
            theme: &theme,
        }
        .render(buf.area, &mut buf);
        let text = (0..height)
            .map(|y| (0..width).map(|x| buf[(x, y)].symbol()).collect::<String>() + "\n")
            .collect();
        (buf, text)
    }

    #[test]
    fn durations_and_rates_are_short() {
        assert_eq!(format_interval(100), "100ms");
        assert_eq!(format_interval(2_000), "2s");
        assert_eq!(format_interval(1_500), "1.5s");
        assert_eq!(format_interval(60_000), "1m");
        assert_eq!(format_ms(40), "40ms");
        assert_eq!(format_ms(1_234), "1.2s");
        assert_eq!(format_ms(-250), "-250ms");
        assert_eq!(format_ms(45_000), "45s");
        assert_eq!(format_ms(600_000), "10m");
        assert_eq!(format_rate(850.4), "850");
        assert_eq!(format_rate(48_234.0), "48.2k");
        assert_eq!(format_rate(12_500_000.0), "12.50M");
        assert_eq!(format_rate(f64::NAN), MISSING);
    }

    #[test]
    fn lanes_are_bars_scaled_to_the_fullest_with_counts() {
        let theme = Theme::builtin("default").unwrap();
        let (buf, text) = render(&panel(), 44, 7);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("Scheduler smart"), "{text}");
        assert_eq!(lines[1], "│ 100ms █···························     3 │", "{text}");
        assert_eq!(lines[2], "│ 500ms ████························    12 │", "{text}");
        assert_eq!(lines[4], "│    5s ████████████████████████████    80 │", "{text}");
        assert!(
            lines[5].contains("48.2k chk/s  next 40ms  lag 3ms max 12ms"),
            "{text}"
        );
        assert_eq!(buf[(8, 1)].fg, theme.risk_critical);
        assert_eq!(buf[(8, 4)].fg, theme.risk_low);
    }

    #[test]
    fn lag_turns_amber_then_red() {
        let theme = Theme::builtin("default").unwrap();
        let lag_colour = |lag_ms| {
            let scheduler = SchedulerPanel {
                lag_ms,
                max_lag_ms: lag_ms,
                ..panel()
            };
            let (buf, text) = render(&scheduler, 60, 7);
            let line = text.lines().nth(5).unwrap();
            let byte = line.find("lag ").unwrap();
            let x = line[..byte].chars().count() as u16 + 4;
            buf[(x, 5)].fg
        };
        assert_eq!(lag_colour(20), theme.text);
        assert_eq!(lag_colour(400), theme.warning);
        assert_eq!(lag_colour(2_500), theme.alert);
    }

    #[test]
    fn fixed_interval_is_named_in_the_title() {
        let scheduler = SchedulerPanel {
            lanes: vec![SchedulerLane {
                interval_ms: 1_000,
                count: 135,
            }],
            fixed_interval_ms: Some(1_000),
            ..panel()
        };
        let (_, text) = render(&scheduler, 44, 5);
        assert!(text.contains("Scheduler smart off, 1s"), "{text}");
        assert!(text.contains("   1s ███"), "{text}");
    }

    #[test]
    fn narrow_stats_shorten_and_short_panes_keep_the_stats() {
        let (_, text) = render(&panel(), 34, 5);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].contains("100ms"), "{text}");
        assert!(lines[2].contains("500ms"), "{text}");
        assert!(lines[3].contains("48.2k/s nx 40ms lag 12ms"), "{text}");
    }

    #[test]
    fn empty_scheduler_says_so() {
        let (_, text) = render(&SchedulerPanel::default(), 44, 7);
        assert!(text.contains("nothing scheduled"), "{text}");
    }
}
