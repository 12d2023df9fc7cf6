//! The models panel: every loaded model, where it runs, how fast, how full its batches are, and how it
//! did on the validation period its card records.
//!
//! Why a panel and not a screen: like the signal funnel (`f`) it answers a question about the signals in
//! the scanner beside it ("who scored these, and how good is it?"), so it takes the chart's pane (`M`).
//! Latencies are the batch predictor's own measurements (model time per batch, median and 99th
//! percentile); the metrics are the model card's, never recomputed here. With no model the panel says
//! how to train one instead of showing empty figures.

use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Layout, Rect},
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::{Paragraph, Widget},
};

use super::funnel::fit;
use crate::{
    format::MISSING,
    theme::Theme,
    view::{DiscoveryRow, EvolverRow, LearningView, ModelRow, ModelsPanel, StructureView},
};

/// Lines the regime and discovery block leaves above itself (a model's block), else it is left out.
const MARKET_MIN_ABOVE: u16 = 10;

/// Inner width from which a model's runtime and validation columns go side by side.
const SIDE_BY_SIDE_WIDTH: u16 = 72;
/// Label column width.
const LABEL_WIDTH: usize = 9;
/// Lines the panel wants: a model's twelve lines, the four self-learning lines and the borders.
pub const WANTED_HEIGHT: u16 = 19;
/// What the panel says while no model is loaded.
pub const NO_MODEL: &str = "no model loaded — run `perpdesk train --data DIR`";

/// The models panel.
#[derive(Debug, Clone, Copy)]
pub struct ModelsView<'a> {
    pub models: &'a ModelsPanel,
    pub theme: &'a Theme,
}

/// A latency in microseconds as `12 µs`, `3.4 µs` or `1.2 ms`.
pub fn format_latency(micros: f64) -> String {
    if micros >= 1_000.0 {
        format!("{:.1} ms", micros / 1_000.0)
    } else if micros >= 10.0 {
        format!("{micros:.0} µs")
    } else {
        format!("{micros:.1} µs")
    }
}

fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| MISSING.to_owned(), |v| format!("{v:.decimals$}"))
}

fn r_multiple(value: Option<f64>) -> String {
    value.map_or_else(|| MISSING.to_owned(), |v| format!("{v:+.2}R"))
}

impl ModelsView<'_> {
    fn line(&self, label: &str, value: &str, width: usize) -> Line<'static> {
        let muted = Style::new().fg(self.theme.muted);
        let text = Style::new().fg(self.theme.text);
        let room = width.saturating_sub(LABEL_WIDTH);
        Line::from(vec![
            Span::styled(format!("{label:<LABEL_WIDTH$}"), muted),
            Span::styled(fit(value, room), text),
        ])
    }

    /// Identity and runtime: name with the champion marker, version, backend, latency, batches, trained.
    fn runtime_lines(&self, model: &ModelRow, width: usize) -> Vec<Line<'static>> {
        let name_style = Style::new().fg(self.theme.title).add_modifier(Modifier::BOLD);
        let marker = if model.champion {
            Span::styled(
                " ★ champion",
                Style::new().fg(self.theme.accent).add_modifier(Modifier::BOLD),
            )
        } else {
            Span::styled(" (no registry)", Style::new().fg(self.theme.muted))
        };
        let latency = match (model.p50_us, model.p99_us) {
            (Some(p50), Some(p99)) => {
                format!("p50 {} · p99 {}", format_latency(p50), format_latency(p99))
            }
            _ => "no batch yet".to_owned(),
        };
        let fill = model
            .batch_fill
            .map_or_else(|| MISSING.to_owned(), |f| format!("{:.0}%", f * 100.0));
        vec![
            Line::from(vec![
                Span::styled(fit(&model.name, width.saturating_sub(11)), name_style),
                marker,
            ]),
            self.line("version", &model.version, width),
            self.line(
                "backend",
                &if model.derived_inputs > 0 {
                    format!("{} · +{} derived", model.backend, model.derived_inputs)
                } else {
                    model.backend.clone()
                },
                width,
            ),
            self.line("latency", &latency, width),
            self.line(
                "batches",
                &format!(
                    "{} · {} req · fill {fill} of {}",
                    model.batches, model.requests, model.max_batch
                ),
                width,
            ),
            self.line("trained", &model.trained, width),
        ]
    }

    /// Self-learning: on/off and samples, the last retrain, champion vs challenger on the newest
    /// window, the rollback target.
    fn learning_lines(&self, learning: &LearningView, width: usize) -> Vec<Line<'static>> {
        let state = match (learning.enabled, learning.training) {
            (false, _) => "off (ENABLE_SELF_LEARNING=false)".to_owned(),
            (true, true) => format!(
                "on · {} closed positions kept · training…",
                learning.online_samples
            ),
            (true, false) => format!("on · {} closed positions kept", learning.online_samples),
        };
        let retrain = if learning.last_retrain.is_empty() {
            learning.result.clone()
        } else {
            format!("{} {}", learning.last_retrain, learning.result)
        };
        let auc = |a: Option<f64>| a.map_or_else(|| MISSING.to_owned(), |a| format!("{a:.3}"));
        let window = learning.window.as_ref().map_or_else(
            || "no evaluation yet".to_owned(),
            |w| {
                format!(
                    "{} samples · challenger LL {:.3} AUC {}{} · champion ({}) LL {:.3} AUC {}",
                    w.samples,
                    w.challenger_log_loss,
                    auc(w.challenger_auc),
                    if w.promoted { " promoted" } else { " kept out" },
                    w.champion,
                    w.champion_log_loss,
                    auc(w.champion_auc)
                )
            },
        );
        let rollback = learning.rollback_to.as_ref().map_or_else(
            || "no previous champion".to_owned(),
            |to| format!("B rolls back to {to}"),
        );
        vec![
            self.line("learning", &state, width),
            self.line("retrain", &retrain, width),
            self.line("window", &window, width),
            self.line("rollback", &rollback, width),
        ]
    }

    /// The card's validation period and metrics.
    fn validation_lines(&self, model: &ModelRow, width: usize) -> Vec<Line<'static>> {
        vec![
            self.line(
                "valid.",
                &format!(
                    "{} → {} ({})",
                    model.validation_from, model.validation_to, model.validation_samples
                ),
                width,
            ),
            self.line("AUC", &opt(model.auc, 3), width),
            self.line(
                "log loss",
                &format!("{:.3} (baseline {:.3})", model.log_loss, model.baseline_log_loss),
                width,
            ),
            self.line("Brier", &format!("{:.3}", model.brier), width),
            self.line(
                "thresh.",
                &format!(
                    "{:.2} · precision {}",
                    model.threshold,
                    opt(model.precision_at_threshold, 2)
                ),
                width,
            ),
            self.line(
                "E[R]",
                &format!(
                    "ICT {} → ML {}",
                    r_multiple(model.expectancy_ict_r),
                    r_multiple(model.expectancy_ml_r)
                ),
                width,
            ),
        ]
    }
}

impl ModelsView<'_> {
    /// The strategy evolver's two lines: its active set with where its network came from, and its
    /// last change (`U` reverts it).
    fn evolver_lines(&self, evolver: &EvolverRow, width: usize) -> Vec<Line<'static>> {
        let learning = if evolver.learning {
            format!("learning, ε {:.2}", evolver.epsilon)
        } else {
            "frozen".to_owned()
        };
        let change = evolver
            .last_change
            .as_deref()
            .map_or_else(|| "none yet".to_owned(), |c| format!("{c} (U reverts)"));
        vec![
            self.line(
                "evolver",
                &format!("{} · {} · {learning}", evolver.set, evolver.source),
                width,
            ),
            self.line("change", &change, width),
        ]
    }

    /// The structure model's lines: the market's regime (symbols per regime, novel ones) and the model's
    /// runtime and validation figures.
    fn structure_lines(&self, structure: &StructureView, width: usize) -> Vec<Line<'static>> {
        let mut regimes: Vec<String> = structure
            .regimes
            .iter()
            .map(|r| {
                let share = if structure.symbols > 0 {
                    100.0 * r.symbols as f64 / structure.symbols as f64
                } else {
                    0.0
                };
                format!("{} {share:.0}%", r.name)
            })
            .collect();
        if regimes.is_empty() {
            regimes.push("reading on the next virtual cycle".to_owned());
        }
        let latency = match (structure.p50_us, structure.p99_us) {
            (Some(p50), Some(p99)) => format!("p50 {} · p99 {}", format_latency(p50), format_latency(p99)),
            _ => "no batch yet".to_owned(),
        };
        vec![
            self.line(
                "regime",
                &format!(
                    "{} · novel {}/{}",
                    regimes.join(" · "),
                    structure.novel,
                    structure.symbols
                ),
                width,
            ),
            self.line(
                "struct.",
                &format!(
                    "{} · {} · {latency} · err {:.3} vs mean {:.3}",
                    structure.version,
                    structure.backend,
                    structure.validation_error,
                    structure.baseline_error
                ),
                width,
            ),
        ]
    }

    /// The discovery ranking on one line, best first; `*` marks the promoted inputs, `(in predictor)`
    /// the interactions the live predictor takes as derived inputs.
    fn discovery_line(&self, ranking: &[DiscoveryRow], width: usize) -> Line<'static> {
        let ranked: Vec<String> = ranking
            .iter()
            .enumerate()
            .map(|(i, d)| {
                format!(
                    "{} {}{}{}",
                    i + 1,
                    d.name,
                    if d.promoted { "*" } else { "" },
                    if d.in_predictor { " (in predictor)" } else { "" }
                )
            })
            .collect();
        self.line("discov.", &ranked.join("  "), width)
    }

    /// Renders the structure and discovery lines at the bottom of `area` when they leave room for a
    /// model's block above, and returns the area left above them.
    fn render_market(&self, area: Rect, buf: &mut Buffer) -> Rect {
        let width = usize::from(area.width);
        let mut lines = Vec::new();
        if let Some(structure) = &self.models.structure {
            lines.extend(self.structure_lines(structure, width));
        }
        if !self.models.discovery.is_empty() {
            lines.push(self.discovery_line(&self.models.discovery, width));
        }
        let height = lines.len() as u16;
        if height == 0 || area.height < height + MARKET_MIN_ABOVE {
            return area;
        }
        let bottom = Rect {
            y: area.bottom() - height,
            height,
            ..area
        };
        Paragraph::new(lines).render(bottom, buf);
        Rect {
            height: area.height - height,
            ..area
        }
    }

    /// Renders the evolver's lines at the bottom of `area` (when there is an evolver and room) and
    /// returns the area left above them.
    fn render_evolver(&self, area: Rect, buf: &mut Buffer) -> Rect {
        let Some(evolver) = &self.models.evolver else {
            return area;
        };
        let lines = self.evolver_lines(evolver, usize::from(area.width));
        let height = lines.len() as u16;
        if area.height <= height {
            return area;
        }
        let bottom = Rect {
            y: area.bottom() - height,
            height,
            ..area
        };
        Paragraph::new(lines).render(bottom, buf);
        Rect {
            height: area.height - height,
            ..area
        }
    }
}

impl Widget for ModelsView<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let muted = Style::new().fg(self.theme.muted);
        let padded = super::overlay_frame(self.theme, "Models", "M closes", area, buf);
        let padded = self.render_evolver(padded, buf);
        let padded = self.render_market(padded, buf);
        let width = usize::from(padded.width);
        if self.models.models.is_empty() {
            let mut lines = vec![Line::from(Span::styled(
                fit(NO_MODEL, width),
                Style::new().fg(self.theme.text),
            ))];
            if !self.models.models_dir.is_empty() {
                lines.push(Line::from(Span::styled(
                    fit(&format!("looked in {}", self.models.models_dir), width),
                    muted,
                )));
            }
            lines.push(Line::from(Span::styled(
                fit("hybrid runs the ICT rules only until then", width),
                muted,
            )));
            if let Some(learning) = &self.models.learning {
                lines.push(Line::default());
                lines.extend(self.learning_lines(learning, width));
            }
            Paragraph::new(lines).render(padded, buf);
            return;
        }
        // Each model takes a block of lines; models that do not fit are left out (one is loaded today).
        let mut y = padded.y;
        for model in &self.models.models {
            if y >= padded.bottom() {
                break;
            }
            let rest = Rect {
                y,
                height: padded.bottom() - y,
                ..padded
            };
            if padded.width >= SIDE_BY_SIDE_WIDTH {
                let [left, _, right] = Layout::horizontal([
                    Constraint::Percentage(50),
                    Constraint::Length(1),
                    Constraint::Min(0),
                ])
                .areas(rest);
                let runtime = self.runtime_lines(model, usize::from(left.width));
                let validation = self.validation_lines(model, usize::from(right.width));
                let height = runtime.len().max(validation.len()) as u16;
                Paragraph::new(runtime).render(left, buf);
                // The validation column starts one line down, beside the version.
                let right = Rect {
                    y: right.y + 1,
                    height: right.height.saturating_sub(1),
                    ..right
                };
                Paragraph::new(validation).render(right, buf);
                y += height + 2;
            } else {
                let mut lines = self.runtime_lines(model, width);
                lines.extend(self.validation_lines(model, width));
                let height = lines.len() as u16;
                Paragraph::new(lines).render(rest, buf);
                y += height + 1;
            }
        }
        if let Some(learning) = &self.models.learning
            && y < padded.bottom()
        {
            let rest = Rect {
                y,
                height: padded.bottom() - y,
                ..padded
            };
            Paragraph::new(self.learning_lines(learning, width)).render(rest, buf);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn render(panel: &ModelsPanel, width: u16, height: u16) -> String {
        let theme = Theme::builtin("default").unwrap();
        let mut buf = Buffer::empty(Rect::new(0, 0, width, height));
        ModelsView {
            models: panel,
            theme: &theme,
        }
        .render(buf.area, &mut buf);
        (0..height)
            .map(|y| (0..width).map(|x| buf[(x, y)].symbol()).collect::<String>() + "\n")
            .collect()
    }

    #[test]
    fn latencies_read_in_the_right_unit() {
        assert_eq!(format_latency(3.36), "3.4 µs");
        assert_eq!(format_latency(48.2), "48 µs");
        assert_eq!(format_latency(1_260.0), "1.3 ms");
    }

    #[test]
    fn without_a_model_the_panel_says_how_to_train_one() {
        let panel = ModelsPanel {
            models_dir: "models".into(),
            structure: None,
            discovery: Vec::new(),
            models: Vec::new(),
            evolver: None,
            learning: None,
        };
        let text = render(&panel, 70, 8);
        assert!(text.contains(NO_MODEL), "{text}");
        assert!(text.contains("looked in models"), "{text}");
    }

    #[test]
    fn a_model_shows_runtime_and_validation_narrow_and_wide() {
        let panel = ModelsPanel {
            models_dir: "models".into(),
            structure: None,
            discovery: Vec::new(),
            models: vec![ModelRow {
                name: "signal_predictor".into(),
                version: "signal_predictor-1".into(),
                backend: "native".into(),
                champion: true,
                p50_us: Some(11.3),
                p99_us: Some(45.3),
                batches: 3,
                requests: 7,
                batch_fill: Some(7.0 / 96.0),
                max_batch: 32,
                auc: Some(0.612),
                threshold: 0.55,
                ..ModelRow::default()
            }],
            evolver: None,
            learning: None,
        };
        for (width, height) in [(40, 16), (90, 10)] {
            let text = render(&panel, width, height);
            for wanted in ["★ champion", "native", "p50 11 µs", "fill 7%", "0.612", "0.55"] {
                assert!(text.contains(wanted), "{wanted} at {width}: {text}");
            }
        }
    }

    #[test]
    fn the_evolver_shows_its_set_and_last_change_below_the_models() {
        let mut panel = ModelsPanel {
            models_dir: "models".into(),
            structure: None,
            discovery: Vec::new(),
            models: Vec::new(),
            learning: None,
            evolver: Some(EvolverRow {
                set: "strict (q≥0.80 rr≥2.5 p≥0.50 ≤5x risk×0.75)".into(),
                source: "untrained".into(),
                learning: true,
                epsilon: 0.42,
                decisions: 3,
                last_change: Some("baseline → strict: exploring (ε 0.42)".into()),
            }),
        };
        let text = render(&panel, 100, 8);
        for wanted in [
            "evolver",
            "strict (q≥0.80",
            "untrained",
            "ε 0.42",
            "baseline → strict",
            "U reverts",
        ] {
            assert!(text.contains(wanted), "{wanted}: {text}");
        }
        assert!(text.contains(NO_MODEL), "the models' own text stays: {text}");
        if let Some(e) = panel.evolver.as_mut() {
            e.learning = false;
            e.last_change = None;
        }
        let text = render(&panel, 100, 8);
        assert!(text.contains("frozen") && text.contains("none yet"), "{text}");
    }

    #[test]
    fn the_learning_lines_show_champion_vs_challenger_and_the_rollback_target() {
        use crate::view::ChallengeView;
        let panel = ModelsPanel {
            models_dir: "models".into(),
            structure: None,
            discovery: Vec::new(),
            models: vec![ModelRow {
                name: "signal_predictor".into(),
                version: "signal_predictor-2".into(),
                champion: true,
                ..ModelRow::default()
            }],
            evolver: None,
            learning: Some(LearningView {
                enabled: true,
                training: false,
                online_samples: 12,
                last_retrain: "17:54:04 UTC".into(),
                result: "kept signal_predictor-2: log loss 0.6100 is not below the champion's 0.6000".into(),
                window: Some(ChallengeView {
                    samples: 64,
                    challenger: "signal_predictor-3".into(),
                    champion: "signal_predictor-2".into(),
                    challenger_log_loss: 0.61,
                    champion_log_loss: 0.6,
                    challenger_auc: Some(0.55),
                    champion_auc: None,
                    promoted: false,
                }),
                rollback_to: Some("signal_predictor-1".into()),
            }),
        };
        let text = render(&panel, 150, WANTED_HEIGHT);
        for wanted in [
            "on · 12 closed positions kept",
            "17:54:04 UTC kept",
            "64 samples · challenger LL 0.610 AUC 0.550 kept out",
            "champion (signal_predictor-2) LL 0.600",
            "B rolls back to signal_predictor-1",
        ] {
            assert!(text.contains(wanted), "{wanted}: {text}");
        }
        let off = ModelsPanel {
            models: Vec::new(),
            learning: Some(LearningView::default()),
            ..panel
        };
        let text = render(&off, 80, 12);
        assert!(text.contains("off (ENABLE_SELF_LEARNING=false)"), "{text}");
        assert!(text.contains("no previous champion"), "{text}");
    }

    #[test]
    fn the_market_regime_and_discovery_ranking_sit_above_the_evolver() {
        use crate::view::{DiscoveryRow, RegimeShare, StructureView};
        let panel = ModelsPanel {
            models_dir: "models".into(),
            structure: Some(StructureView {
                version: "structure-7".into(),
                backend: "tract".into(),
                p50_us: Some(38.0),
                p99_us: Some(71.0),
                symbols: 20,
                novel: 1,
                regimes: vec![
                    RegimeShare {
                        name: "range · low vol".into(),
                        symbols: 15,
                    },
                    RegimeShare {
                        name: "trend up · high vol".into(),
                        symbols: 5,
                    },
                ],
                validation_error: 0.031,
                baseline_error: 0.828,
            }),
            discovery: vec![
                DiscoveryRow {
                    name: "ctx.side×tf0.rsi".into(),
                    promoted: true,
                    in_predictor: true,
                    ..DiscoveryRow::default()
                },
                DiscoveryRow {
                    name: "tf2.atr_pct".into(),
                    promoted: true,
                    ..DiscoveryRow::default()
                },
                DiscoveryRow {
                    name: "tf1.di_spread".into(),
                    ..DiscoveryRow::default()
                },
            ],
            ..ModelsPanel::default()
        };
        let text = render(&panel, 120, 16);
        for wanted in [
            "range · low vol 75% · trend up · high vol 25% · novel 1/20",
            "structure-7 · tract · p50 38 µs · p99 71 µs · err 0.031 vs mean 0.828",
            "1 ctx.side×tf0.rsi* (in predictor)  2 tf2.atr_pct*  3 tf1.di_spread",
        ] {
            assert!(text.contains(wanted), "{wanted}: {text}");
        }
        assert!(text.contains(NO_MODEL), "the models' own text stays: {text}");
        // Too short to keep a model's block above it: the block is left out.
        let text = render(&panel, 120, 8);
        assert!(!text.contains("regime"), "{text}");
    }
}
