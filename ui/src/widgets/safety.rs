//! The safety controls on screen: the circuit breaker's tier and countdown, the kill switch, and the
//! confirmation dialogs that guard both.
//!
//! [`BreakerBadge`] sits at the left of the status bar and is drawn only when something is not normal
//! (a tier above `Normal`, or the kill switch pulled), so the usual status line is unchanged and a badge
//! appearing is itself the alarm. The positions screen's [`SafetyLine`] always names the tier, its
//! reason and cooldown, and the kill switch. Tiers are told apart by their name, not only by colour.
//!
//! The kill switch closes every position, so its dialog asks the operator to type `KILL` (any case):
//! a stray key, a key pressed with Caps Lock on, or a paste cannot pull it. Resetting the breaker is a
//! lesser act — it removes a protection but closes nothing — so its dialog is a `y` / `n` question that
//! names the tier and its reason.

use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Clear, Paragraph, Widget, Wrap},
};

use crate::{
    format::{format_age, format_count},
    theme::Theme,
    view::{Breaker, BreakerTier, KillSwitch, KillSwitchState, PositionSide},
};

/// What the operator types to pull the kill switch.
pub const KILL_WORD: &str = "KILL";

/// The colour of a tier: calm, amber for the two that only limit new trades, red for the two that stop
/// or unwind trading.
pub fn tier_colour(tier: BreakerTier, theme: &Theme) -> Color {
    match tier {
        BreakerTier::Normal => theme.ok,
        BreakerTier::Caution | BreakerTier::ReduceOnly => theme.warning,
        BreakerTier::Halt | BreakerTier::Flatten => theme.alert,
    }
}

/// A cooldown left: `4m12s`, `—` once it reaches zero.
fn cooldown_text(cooldown_ms: i64) -> String {
    format_age(u64::try_from(cooldown_ms.max(0)).unwrap_or(0))
}

/// The status-bar badge: ` KILL SWITCH: flattening 3 ` or ` CAUTION 4m12s `; empty when all is normal.
#[derive(Debug, Clone, Copy)]
pub struct BreakerBadge<'a> {
    pub breaker: &'a Breaker,
    pub kill_switch: &'a KillSwitch,
    pub theme: &'a Theme,
}

impl BreakerBadge<'_> {
    /// The badge's spans; empty when the tier is `Normal` and the kill switch is ready.
    pub fn line(&self) -> Line<'static> {
        let mut spans = Vec::new();
        let reversed = |colour: Color| {
            Style::new()
                .fg(colour)
                .add_modifier(Modifier::REVERSED | Modifier::BOLD)
        };
        match self.kill_switch.state {
            KillSwitchState::Ready => {}
            KillSwitchState::Flattening => spans.push(Span::styled(
                format!(
                    " KILL SWITCH: flattening {} ",
                    format_count(self.kill_switch.remaining)
                ),
                reversed(self.theme.alert),
            )),
            KillSwitchState::Engaged => {
                spans.push(Span::styled(" KILL SWITCH ENGAGED ", reversed(self.theme.alert)));
            }
        }
        let tier = self.breaker.tier;
        if tier != BreakerTier::Normal {
            if !spans.is_empty() {
                spans.push(Span::raw(" "));
            }
            let text = match self.breaker.cooldown_ms {
                Some(cooldown) => format!(" {} {} ", tier.as_str(), cooldown_text(cooldown)),
                None => format!(" {} ", tier.as_str()),
            };
            spans.push(Span::styled(text, reversed(tier_colour(tier, self.theme))));
        }
        Line::from(spans)
    }
}

/// The positions screen's one-line summary of the breaker and the kill switch.
#[derive(Debug, Clone, Copy)]
pub struct SafetyLine<'a> {
    pub breaker: &'a Breaker,
    pub kill_switch: &'a KillSwitch,
    pub theme: &'a Theme,
}

impl SafetyLine<'_> {
    /// The summary, with the breaker's reason or without it.
    fn line(&self, with_reason: bool) -> Line<'static> {
        let muted = Style::new().fg(self.theme.muted);
        let tier = self.breaker.tier;
        let mut spans = vec![
            Span::styled(" breaker ", muted),
            Span::styled(
                tier.as_str(),
                Style::new()
                    .fg(tier_colour(tier, self.theme))
                    .add_modifier(Modifier::BOLD),
            ),
        ];
        if with_reason && !self.breaker.reason.is_empty() {
            spans.push(Span::styled(
                format!(" ({})", self.breaker.reason),
                Style::new().fg(self.theme.text),
            ));
        }
        if let Some(cooldown) = self.breaker.cooldown_ms {
            spans.push(Span::styled(" cooldown ", muted));
            spans.push(Span::styled(
                cooldown_text(cooldown),
                Style::new().fg(self.theme.text),
            ));
        }
        spans.push(Span::styled("  │  kill switch ", muted));
        let (state, style) = match self.kill_switch.state {
            KillSwitchState::Ready => ("ready".to_owned(), Style::new().fg(self.theme.text)),
            KillSwitchState::Flattening => (
                format!("flattening, {} left", format_count(self.kill_switch.remaining)),
                Style::new().fg(self.theme.alert).add_modifier(Modifier::BOLD),
            ),
            KillSwitchState::Engaged => (
                "ENGAGED".to_owned(),
                Style::new().fg(self.theme.alert).add_modifier(Modifier::BOLD),
            ),
        };
        spans.push(Span::styled(state, style));
        Line::from(spans)
    }
}

impl Widget for SafetyLine<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let muted = Style::new().fg(self.theme.muted);
        let key = Style::new().fg(self.theme.accent).add_modifier(Modifier::BOLD);
        // The reason goes first when space runs out: the kill switch's state matters more, and the
        // reason is in the reset dialog.
        let mut line = self.line(true);
        if line.width() > usize::from(area.width) {
            line = self.line(false);
        }
        // The key hints go on the right when they fit beside the state.
        let hints = Line::from(vec![
            Span::styled("K", key),
            Span::styled(" kill  ", muted),
            Span::styled("R", key),
            Span::styled(" reset breaker ", muted),
        ]);
        if line.width() + hints.width() < usize::from(area.width) {
            hints.right_aligned().render(area, buf);
        }
        line.render(area, buf);
    }
}

/// Which confirmation is open, with what the operator has typed so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// Pull the kill switch once [`KILL_WORD`] is typed and Enter pressed.
    KillSwitch { typed: String },
    /// Reset the breaker on `y`.
    ResetBreaker,
    /// Open a position on `symbol` at the mark on `y`.
    ManualEntry { symbol: String, side: PositionSide },
    /// Close position `id` on `y`; `label` names it (`#12 LONG BTCUSDT`).
    ClosePosition { id: u64, label: String },
    /// Revert the strategy evolver's last change on `y`; `change` describes it (`a → b: reason`), if
    /// the view shows one.
    RevertStrategy { change: Option<String> },
    /// Roll the signal predictor back from `from` to `to` on `y`.
    RollbackModel { from: String, to: String },
}

impl Confirmation {
    /// Whether the typed text confirms the kill switch.
    pub fn kill_word_typed(typed: &str) -> bool {
        typed.trim().eq_ignore_ascii_case(KILL_WORD)
    }
}

/// The confirmation dialog, centred over the area it is rendered into.
#[derive(Debug, Clone, Copy)]
pub struct ConfirmDialog<'a> {
    pub confirmation: &'a Confirmation,
    pub breaker: &'a Breaker,
    /// Open positions, for the kill switch's warning.
    pub open_positions: u64,
    pub live_trading: bool,
    pub theme: &'a Theme,
}

impl ConfirmDialog<'_> {
    fn content(&self) -> (&'static str, Color, Vec<Line<'static>>) {
        let text = Style::new().fg(self.theme.text);
        let bold = text.add_modifier(Modifier::BOLD);
        let key = Style::new().fg(self.theme.accent).add_modifier(Modifier::BOLD);
        let muted = Style::new().fg(self.theme.muted);
        match self.confirmation {
            Confirmation::KillSwitch { typed } => {
                let account = if self.live_trading {
                    "real orders on the exchange"
                } else {
                    "paper positions"
                };
                let typed_style = if Confirmation::kill_word_typed(typed) {
                    Style::new().fg(self.theme.alert).add_modifier(Modifier::BOLD)
                } else {
                    key
                };
                let lines = vec![
                    Line::from(vec![
                        Span::styled("Close all ", text),
                        Span::styled(format_count(self.open_positions), bold),
                        Span::styled(format!(" open positions ({account}),"), text),
                    ]),
                    Line::from(Span::styled("cancel every order and stop new entries.", text)),
                    Line::default(),
                    Line::from(vec![
                        Span::styled("Type ", text),
                        Span::styled(KILL_WORD, bold),
                        Span::styled(" and press ", text),
                        Span::styled("Enter", key),
                        Span::styled(": ", text),
                        Span::styled(typed.clone(), typed_style),
                        Span::styled("▏", key),
                    ]),
                    Line::from(vec![Span::styled("Esc", key), Span::styled(" cancels", muted)]),
                ];
                (" Kill switch ", self.theme.alert, lines)
            }
            Confirmation::RevertStrategy { change } => {
                let mut lines = vec![Line::from(Span::styled(
                    "Revert the strategy evolver's last change?",
                    text,
                ))];
                lines.push(Line::from(match change {
                    Some(change) => vec![Span::styled("Last: ", muted), Span::styled(change.clone(), bold)],
                    None => vec![Span::styled(
                        "No change is shown yet; the engine will say.",
                        muted,
                    )],
                }));
                lines.push(Line::from(Span::styled(
                    "self_learning goes back to the set before it, held for one interval.",
                    muted,
                )));
                lines.push(Line::default());
                lines.push(Line::from(vec![
                    Span::styled("y", key),
                    Span::styled(" revert   ", text),
                    Span::styled("n", key),
                    Span::styled(" / ", muted),
                    Span::styled("Esc", key),
                    Span::styled(" keep it", text),
                ]));
                (" Revert strategy change ", self.theme.warning, lines)
            }
            Confirmation::ResetBreaker => {
                let tier = self.breaker.tier;
                let mut first = vec![
                    Span::styled("Reset the circuit breaker from ", text),
                    Span::styled(
                        tier.as_str(),
                        Style::new()
                            .fg(tier_colour(tier, self.theme))
                            .add_modifier(Modifier::BOLD),
                    ),
                    Span::styled(" to ", text),
                    Span::styled("NORMAL", bold),
                ];
                first.push(Span::styled("?", text));
                let mut lines = vec![Line::from(first)];
                if !self.breaker.reason.is_empty() {
                    lines.push(Line::from(vec![
                        Span::styled("It tripped on: ", muted),
                        Span::styled(self.breaker.reason.clone(), text),
                    ]));
                }
                if tier == BreakerTier::Normal {
                    lines.push(Line::from(Span::styled(
                        "It is already NORMAL; a reset only clears its counters.",
                        muted,
                    )));
                }
                lines.push(Line::default());
                lines.push(Line::from(vec![
                    Span::styled("y", key),
                    Span::styled(" reset   ", text),
                    Span::styled("n", key),
                    Span::styled(" / ", muted),
                    Span::styled("Esc", key),
                    Span::styled(" keep it", text),
                ]));
                (" Reset circuit breaker ", self.theme.warning, lines)
            }
            Confirmation::ManualEntry { symbol, side } => {
                let (what, colour) = match side {
                    PositionSide::Long => ("LONG", self.theme.up),
                    PositionSide::Short => ("SHORT", self.theme.down),
                };
                let account = if self.live_trading {
                    "A real MARKET order on the exchange, with its stop and target resting there."
                } else {
                    "A paper position."
                };
                let lines = vec![
                    Line::from(vec![
                        Span::styled("Open ", text),
                        Span::styled(what, Style::new().fg(colour).add_modifier(Modifier::BOLD)),
                        Span::styled(" ", text),
                        Span::styled(symbol.clone(), bold),
                        Span::styled(" at the mark?", text),
                    ]),
                    Line::from(Span::styled(
                        "Sized at the risk per trade; stop 2 ATR away, target 2R.",
                        muted,
                    )),
                    Line::from(Span::styled(account, text)),
                    Line::default(),
                    Line::from(vec![
                        Span::styled("y", key),
                        Span::styled(" open   ", text),
                        Span::styled("n", key),
                        Span::styled(" / ", muted),
                        Span::styled("Esc", key),
                        Span::styled(" cancel", text),
                    ]),
                ];
                (" Manual entry ", self.theme.accent, lines)
            }
            Confirmation::ClosePosition { label, .. } => {
                let account = if self.live_trading {
                    "A reduce-only MARKET order on the exchange; its stop and target are cancelled."
                } else {
                    "The paper position closes at the mark, fees included."
                };
                let lines = vec![
                    Line::from(vec![
                        Span::styled("Close ", text),
                        Span::styled(label.clone(), bold),
                        Span::styled(" at the mark?", text),
                    ]),
                    Line::from(Span::styled(account, text)),
                    Line::default(),
                    Line::from(vec![
                        Span::styled("y", key),
                        Span::styled(" close   ", text),
                        Span::styled("n", key),
                        Span::styled(" / ", muted),
                        Span::styled("Esc", key),
                        Span::styled(" keep it", text),
                    ]),
                ];
                (" Close position ", self.theme.warning, lines)
            }
            Confirmation::RollbackModel { from, to } => {
                let lines = vec![
                    Line::from(vec![
                        Span::styled("Roll the signal predictor back to ", text),
                        Span::styled(to.clone(), bold),
                        Span::styled("?", text),
                    ]),
                    Line::from(Span::styled(
                        format!("{from} stops serving; its files are kept."),
                        muted,
                    )),
                    Line::default(),
                    Line::from(vec![
                        Span::styled("y", key),
                        Span::styled(" roll back   ", text),
                        Span::styled("n", key),
                        Span::styled(" / ", muted),
                        Span::styled("Esc", key),
                        Span::styled(" keep it", text),
                    ]),
                ];
                (" Model rollback ", self.theme.warning, lines)
            }
        }
    }
}

impl Widget for ConfirmDialog<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (title, colour, lines) = self.content();
        let content_width = lines.iter().map(Line::width).max().unwrap_or(0) as u16;
        let width = (content_width + 4).min(area.width);
        let inner_width = width.saturating_sub(4).max(1);
        // Lines that must wrap in a narrow terminal take more rows.
        let rows: u16 = lines
            .iter()
            .map(|line| (line.width() as u16).div_ceil(inner_width).max(1))
            .sum();
        let height = (rows + 2).min(area.height);
        let popup = Rect {
            x: area.x + (area.width - width) / 2,
            y: area.y + (area.height - height) / 2,
            width,
            height,
        };
        let border = Style::new().fg(colour).add_modifier(Modifier::BOLD);
        let block = Block::new()
            .borders(Borders::ALL)
            .border_style(border)
            .style(Style::new().fg(self.theme.text).bg(self.theme.overlay_bg))
            .title(Span::styled(title, border));
        Clear.render(popup, buf);
        let inner = block.inner(popup);
        block.render(popup, buf);
        let padded = Rect {
            x: inner.x + 1,
            width: inner.width.saturating_sub(2),
            ..inner
        };
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .render(padded, buf);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn text_of(buf: &Buffer) -> String {
        let area = buf.area;
        (0..area.height)
            .map(|y| (0..area.width).map(|x| buf[(x, y)].symbol()).collect::<String>() + "\n")
            .collect()
    }

    fn badge(breaker: &Breaker, kill_switch: &KillSwitch) -> String {
        let theme = Theme::builtin("default").unwrap();
        BreakerBadge {
            breaker,
            kill_switch,
            theme: &theme,
        }
        .line()
        .to_string()
    }

    #[test]
    fn badge_is_empty_when_all_is_normal_and_names_tier_and_countdown() {
        assert_eq!(badge(&Breaker::default(), &KillSwitch::default()), "");
        let caution = Breaker {
            tier: BreakerTier::Caution,
            reason: "daily loss 2.1% ≥ 2%".to_owned(),
            cooldown_ms: Some(252_000),
        };
        assert_eq!(badge(&caution, &KillSwitch::default()), " CAUTION 4m12s ");
        let halt = Breaker {
            tier: BreakerTier::Halt,
            cooldown_ms: None,
            ..caution
        };
        let flattening = KillSwitch {
            state: KillSwitchState::Flattening,
            remaining: 3,
            pulled_at_ms: Some(1),
        };
        assert_eq!(badge(&halt, &flattening), " KILL SWITCH: flattening 3   HALT ");
        for tier in BreakerTier::ALL {
            let shown = badge(
                &Breaker {
                    tier,
                    ..Breaker::default()
                },
                &KillSwitch::default(),
            );
            assert_eq!(shown.is_empty(), tier == BreakerTier::Normal, "{tier:?}");
        }
    }

    #[test]
    fn safety_line_names_reason_cooldown_and_kill_switch() {
        let theme = Theme::builtin("default").unwrap();
        let breaker = Breaker {
            tier: BreakerTier::ReduceOnly,
            reason: "drawdown 6.2% ≥ 6%".to_owned(),
            cooldown_ms: Some(1_800_000),
        };
        let mut buf = Buffer::empty(Rect::new(0, 0, 110, 1));
        SafetyLine {
            breaker: &breaker,
            kill_switch: &KillSwitch::default(),
            theme: &theme,
        }
        .render(buf.area, &mut buf);
        let text = text_of(&buf);
        assert!(
            text.starts_with(
                " breaker REDUCE-ONLY (drawdown 6.2% ≥ 6%) cooldown 30m00s  │  kill switch ready"
            ),
            "{text}"
        );
        assert!(text.trim_end().ends_with("K kill  R reset breaker"), "{text}");
    }

    #[test]
    fn kill_word_is_case_insensitive_and_exact() {
        assert!(Confirmation::kill_word_typed("KILL"));
        assert!(Confirmation::kill_word_typed("kill"));
        assert!(!Confirmation::kill_word_typed("KIL"));
        assert!(!Confirmation::kill_word_typed("KILLX"));
    }

    #[test]
    fn dialogs_fit_a_small_terminal() {
        let theme = Theme::builtin("default").unwrap();
        for confirmation in [
            Confirmation::KillSwitch {
                typed: "KI".to_owned(),
            },
            Confirmation::ResetBreaker,
        ] {
            for (width, height) in [(80, 24), (40, 10), (10, 3), (1, 1)] {
                let mut buf = Buffer::empty(Rect::new(0, 0, width, height));
                ConfirmDialog {
                    confirmation: &confirmation,
                    breaker: &Breaker::default(),
                    open_positions: 12,
                    live_trading: false,
                    theme: &theme,
                }
                .render(buf.area, &mut buf);
                if width == 80 {
                    let text = text_of(&buf);
                    assert!(text.contains("Esc"), "{text}");
                }
            }
        }
    }
}
