//! The signal-funnel panel: how many evaluations made it through each stage, and why the others did not.
//!
//! The stages are the ones a trade would pass: scanned (every evaluation of one symbol at one time),
//! past the setup stage, past the quality filter (a signal), accepted by risk, opened. While the engine
//! has no risk stage or position book (`Funnel::risk_accepted` / `Funnel::opened` are `None`), those
//! stages say so (`—  not built yet`) instead of showing a zero that would read as "everything
//! rejected". Each stage after the first shows its share of the stage before.
//! Beside the stages (below them in a narrow pane) the rejection reasons are listed, most frequent
//! first, as many as fit, with `+N more` for the rest. With a signal predictor loaded, `→ ML kept`
//! sits between quality and risk: in `hybrid` it is a stage (risk sees only what it kept); in the other
//! modes the count is what the model would keep, marked `shown only`.

use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Layout, Rect},
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::{Paragraph, Widget},
};

use crate::{
    format::{MISSING, format_count},
    theme::Theme,
    view::Funnel,
};

/// Below this inner width the rejections go under the stages instead of beside them.
const SIDE_BY_SIDE_WIDTH: u16 = 64;
/// Width of the stages column when side by side.
const STAGES_WIDTH: u16 = 38;
/// `→ passed quality`.
const LABEL_WIDTH: usize = 16;
/// Said under the stages where there is room, while neither risk nor positions exist: why the chain
/// ends at quality.
const NOTE: [&str; 2] = ["signals stop here for now:", "no risk or positions built yet"];
/// Lines the panel wants: the five stages, a blank, the heading and five reasons, plus the borders.
pub const WANTED_HEIGHT: u16 = 14;

/// The funnel panel.
#[derive(Debug, Clone, Copy)]
pub struct FunnelPanel<'a> {
    pub funnel: &'a Funnel,
    pub theme: &'a Theme,
}

/// One stage: its label, its count (`None` = the stage does not exist yet), the count of the stage
/// before it (for the share), and a note replacing the share.
type StageLine = (&'static str, Option<u64>, Option<u64>, Option<String>);

fn stages(funnel: &Funnel) -> Vec<StageLine> {
    let mut out = vec![
        ("scanned", Some(funnel.evaluated), None, None),
        ("→ setups", Some(funnel.setups), Some(funnel.evaluated), None),
        (
            "→ passed quality",
            Some(funnel.signals),
            Some(funnel.setups),
            None,
        ),
    ];
    let mut before_risk = Some(funnel.signals);
    if let Some(ml) = &funnel.ml {
        let note = if ml.applied {
            format!("{}  p≥{:.2}", share(ml.kept, ml.scored), ml.threshold)
        } else {
            format!("shown only, p≥{:.2}", ml.threshold)
        };
        out.push(("→ ML kept", Some(ml.kept), Some(ml.scored), Some(note)));
        if ml.applied {
            before_risk = Some(ml.kept);
        }
    }
    out.push(("→ risk", funnel.risk_accepted, before_risk, None));
    out.push(("→ opened", funnel.opened, funnel.risk_accepted, None));
    out
}

/// `count` as a share of `of`, `3.1%`; empty when `of` is zero.
pub fn share(count: u64, of: u64) -> String {
    if of == 0 {
        return String::new();
    }
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    let pct = count as f64 / of as f64 * 100.0;
    if pct >= 99.95 || pct == 0.0 {
        format!("{pct:.0}%")
    } else {
        format!("{pct:.1}%")
    }
}

/// `text` cut to `width` characters, with `…` when cut.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{kept}…")
}

impl FunnelPanel<'_> {
    /// The note under the stages: only while the later stages do not exist.
    fn note(&self) -> &'static [&'static str] {
        if self.funnel.risk_accepted.is_none() && self.funnel.opened.is_none() {
            &NOTE
        } else {
            &[]
        }
    }

    fn stage_lines(&self) -> Vec<Line<'static>> {
        let muted = Style::new().fg(self.theme.muted);
        let label = Style::new().fg(self.theme.text);
        let count_style = Style::new().fg(self.theme.text).add_modifier(Modifier::BOLD);
        let stages = stages(self.funnel);
        let count_width = stages
            .iter()
            .filter_map(|(_, count, _, _)| count.map(|c| format_count(c).len()))
            .max()
            .unwrap_or(1)
            .max(3);
        stages
            .iter()
            .map(|(name, count, previous, fixed)| {
                let (count_text, note) = match count {
                    Some(count) => (
                        format_count(*count),
                        fixed
                            .clone()
                            .unwrap_or_else(|| previous.map(|p| share(*count, p)).unwrap_or_default()),
                    ),
                    None => (MISSING.to_owned(), "not built yet".to_owned()),
                };
                Line::from(vec![
                    Span::styled(format!("{name:<LABEL_WIDTH$}"), label),
                    Span::styled(format!(" {count_text:>count_width$}"), count_style),
                    Span::styled(format!("  {note}"), muted),
                ])
            })
            .collect()
    }

    /// The heading and as many reasons as fit in `height` lines of `width` columns.
    fn rejection_lines(&self, width: usize, height: usize) -> Vec<Line<'static>> {
        let heading = Style::new().fg(self.theme.title).add_modifier(Modifier::BOLD);
        let muted = Style::new().fg(self.theme.muted);
        let text = Style::new().fg(self.theme.text);
        let mut lines = vec![Line::from(Span::styled("rejected, by reason", heading))];
        let reasons = &self.funnel.rejections;
        if reasons.is_empty() {
            lines.push(Line::from(Span::styled("no rejections yet", muted)));
            return lines;
        }
        let count_width = reasons
            .iter()
            .map(|(_, count)| format_count(*count).len())
            .max()
            .unwrap_or(1);
        let reason_width = width.saturating_sub(count_width + 1).max(1);
        let room = height.saturating_sub(1);
        // Keep the last line for "+N more" when not every reason fits.
        let shown = if reasons.len() <= room {
            reasons.len()
        } else {
            room.saturating_sub(1)
        };
        for (reason, count) in reasons.iter().take(shown) {
            lines.push(Line::from(vec![
                Span::styled(format!("{:<reason_width$}", fit(reason, reason_width)), text),
                Span::styled(format!(" {:>count_width$}", format_count(*count)), text),
            ]));
        }
        if shown < reasons.len() && room > 0 {
            let rest: u64 = reasons.iter().skip(shown).map(|(_, count)| count).sum();
            lines.push(Line::from(Span::styled(
                format!("+{} more ({})", reasons.len() - shown, format_count(rest)),
                muted,
            )));
        }
        lines
    }
}

impl Widget for FunnelPanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let muted = Style::new().fg(self.theme.muted);
        let padded = super::overlay_frame(self.theme, "Signal funnel", "f closes", area, buf);
        let stage_lines = self.stage_lines();
        if padded.width >= SIDE_BY_SIDE_WIDTH {
            let [stages_area, _, reasons_area] = Layout::horizontal([
                Constraint::Length(STAGES_WIDTH),
                Constraint::Length(2),
                Constraint::Min(0),
            ])
            .areas(padded);
            let mut stage_lines = stage_lines;
            let note = self.note();
            if !note.is_empty() && usize::from(stages_area.height) >= stage_lines.len() + 1 + note.len() {
                stage_lines.push(Line::default());
                stage_lines.extend(note.iter().map(|line| Line::from(Span::styled(*line, muted))));
            }
            Paragraph::new(stage_lines).render(stages_area, buf);
            let reasons =
                self.rejection_lines(usize::from(reasons_area.width), usize::from(reasons_area.height));
            Paragraph::new(reasons).render(reasons_area, buf);
        } else {
            let stage_count = stage_lines.len();
            let mut lines = stage_lines;
            let below = usize::from(padded.height).saturating_sub(stage_count + 1);
            if below > 0 {
                lines.push(Line::default());
                lines.extend(self.rejection_lines(usize::from(padded.width), below));
            }
            let note = self.note();
            if !note.is_empty() && usize::from(padded.height) >= lines.len() + 1 + note.len() {
                lines.push(Line::default());
                lines.extend(note.iter().map(|line| Line::from(Span::styled(*line, muted))));
            }
            Paragraph::new(lines).render(padded, buf);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn funnel() -> Funnel {
        Funnel {
            evaluated: 1_840,
            setups: 57,
            signals: 2,
            rejections: vec![
                ("no_setup".to_owned(), 1_210),
                ("no_bias".to_owned(), 401),
                ("no_confirmation".to_owned(), 172),
                ("reward_risk_too_low".to_owned(), 41),
                ("below_quality(key_level_distance)".to_owned(), 14),
            ],
            ..Funnel::default()
        }
    }

    fn render(funnel: &Funnel, width: u16, height: u16) -> String {
        let theme = Theme::builtin("default").unwrap();
        let mut buf = Buffer::empty(Rect::new(0, 0, width, height));
        FunnelPanel {
            funnel,
            theme: &theme,
        }
        .render(buf.area, &mut buf);
        (0..height)
            .map(|y| (0..width).map(|x| buf[(x, y)].symbol()).collect::<String>() + "\n")
            .collect()
    }

    #[test]
    fn shares_and_cuts() {
        assert_eq!(share(57, 1_840), "3.1%");
        assert_eq!(share(2, 2), "100%");
        assert_eq!(share(0, 57), "0%");
        assert_eq!(share(5, 0), "");
        assert_eq!(fit("reward_risk_too_low", 10), "reward_ri…");
        assert_eq!(fit("no_bias", 10), "no_bias");
    }

    #[test]
    fn stages_count_down_and_unbuilt_stages_say_so() {
        let text = render(&funnel(), 78, 11);
        assert!(text.contains("scanned          1,840"), "{text}");
        assert!(text.contains("→ setups            57  3.1%"), "{text}");
        assert!(text.contains("→ passed quality     2  3.5%"), "{text}");
        assert!(text.contains("→ risk               —  not built yet"), "{text}");
        assert!(text.contains("→ opened             —  not built yet"), "{text}");
        assert!(text.contains("no_setup") && text.contains("1,210"), "{text}");
    }

    #[test]
    fn a_short_narrow_panel_keeps_the_stages_and_counts_the_hidden_reasons() {
        let text = render(&funnel(), 40, 12);
        assert!(text.contains("→ opened"), "{text}");
        assert!(
            text.contains("no_setup") && text.contains("+3 more (227)"),
            "{text}"
        );
        let empty = render(&Funnel::default(), 40, 12);
        assert!(empty.contains("no rejections yet"), "{empty}");
    }

    #[test]
    fn risk_and_opened_are_counted_once_the_engine_has_them() {
        let with_positions = Funnel {
            risk_accepted: Some(2),
            opened: Some(1),
            ..funnel()
        };
        let text = render(&with_positions, 78, 11);
        assert!(text.contains("→ risk               2  100%"), "{text}");
        assert!(text.contains("→ opened             1  50.0%"), "{text}");
        assert!(
            !text.contains("not built yet") && !text.contains("signals stop here"),
            "{text}"
        );
    }
}
