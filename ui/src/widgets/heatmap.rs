//! The position risk heatmap: one cell per open position, coloured by its risk score, so the operator
//! sees at a glance which positions are in danger.
//!
//! The four bands are the monitoring scheduler's thresholds (ARCHITECTURE.md §4: risk > 0.8 is checked
//! every 100 ms, > 0.5 every 500 ms, > 0.2 every 2 s, else every 5 s), so a cell's colour also says how
//! closely the position is watched. Colour alone is not enough over SSH, on a 16-colour terminal or for
//! a colour-blind operator, so each band also has its own glyph, from light shade `░` (low) to full
//! block `█` (critical); the legend under the cells names both.
//!
//! Cells are grouped by symbol and side (`BTCUSDT L ░░▒▒▓▓`), cells within a group riskiest first; the
//! groups flow across the pane's lines like words, so a few positions on many symbols still fit.
//! Groups are ordered by their riskiest cell, so when the pane cannot hold every group the ones in
//! danger are the ones shown, and the last line says how many positions are left out.

use std::collections::HashMap;

use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Clear, Paragraph, Widget},
};

use crate::{
    format::format_count,
    theme::Theme,
    view::{HeatCell, PositionSide},
};

/// Columns per cell: two glyphs, so a cell reads as a block even in a dense row.
const CELL_WIDTH: usize = 2;
/// Groups' labels are at most this wide (`1000SHIBUSDT L`).
const MAX_LABEL_WIDTH: usize = 14;
/// Columns between two groups on one line.
const GROUP_GAP: usize = 2;
/// Indent of a group's cells continued on the next line.
const CONTINUATION_INDENT: usize = 2;

/// A risk band: which scheduler lane a score falls in, and how the heatmap draws it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RiskBand {
    /// Score ≤ 0.2: checked every 5 s.
    Low,
    /// Score > 0.2: every 2 s.
    Medium,
    /// Score > 0.5: every 500 ms.
    High,
    /// Score > 0.8: every 100 ms.
    Critical,
}

impl RiskBand {
    pub const ALL: [RiskBand; 4] = [Self::Low, Self::Medium, Self::High, Self::Critical];

    /// The band of a risk score (scores above 1, past a level, are critical; NaN is low).
    pub fn of(score: f64) -> Self {
        if score > 0.8 {
            Self::Critical
        } else if score > 0.5 {
            Self::High
        } else if score > 0.2 {
            Self::Medium
        } else {
            Self::Low
        }
    }

    /// The band of a scheduler lane's interval: 100 ms critical … 5 s low.
    pub fn of_interval(interval_ms: u64) -> Self {
        match interval_ms {
            0..=100 => Self::Critical,
            101..=500 => Self::High,
            501..=2_000 => Self::Medium,
            _ => Self::Low,
        }
    }

    /// The glyph that tells the bands apart without colour.
    pub fn glyph(self) -> char {
        match self {
            Self::Low => '░',
            Self::Medium => '▒',
            Self::High => '▓',
            Self::Critical => '█',
        }
    }

    pub fn colour(self, theme: &Theme) -> Color {
        match self {
            Self::Low => theme.risk_low,
            Self::Medium => theme.risk_medium,
            Self::High => theme.risk_high,
            Self::Critical => theme.risk_critical,
        }
    }

    /// The legend's text for the band: its name and range, or only the range in a narrow pane.
    pub fn legend(self, with_name: bool) -> &'static str {
        match (self, with_name) {
            (Self::Low, true) => "low ≤.2",
            (Self::Medium, true) => "med >.2",
            (Self::High, true) => "high >.5",
            (Self::Critical, true) => "crit >.8",
            (Self::Low, false) => "≤.2",
            (Self::Medium, false) => ">.2",
            (Self::High, false) => ">.5",
            (Self::Critical, false) => ">.8",
        }
    }
}

/// The heatmap pane.
#[derive(Debug, Clone, Copy)]
pub struct RiskHeatmap<'a> {
    pub cells: &'a [HeatCell],
    /// Open positions in the book, when the view carries only the riskiest cells (0 = just the cells).
    pub open_positions: u64,
    pub theme: &'a Theme,
}

/// Cells of one symbol and side, riskiest first.
#[derive(Debug)]
struct Group<'a> {
    symbol: &'a str,
    side: PositionSide,
    cells: Vec<&'a HeatCell>,
}

impl Group<'_> {
    fn max_risk(&self) -> f64 {
        self.cells.first().map_or(0.0, |cell| cell.risk_score)
    }
}

/// Risk scores compared with NaN as the lowest, so a bad number never sorts as the most dangerous.
fn risk_key(score: f64) -> f64 {
    if score.is_nan() { f64::NEG_INFINITY } else { score }
}

/// The cells grouped by symbol and side: groups riskiest first (then by symbol, long before short),
/// cells within a group riskiest first (then by position id).
fn groups(cells: &[HeatCell]) -> Vec<Group<'_>> {
    let mut index: HashMap<(&str, PositionSide), usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    for cell in cells {
        let key = (cell.symbol.as_str(), cell.side);
        let at = *index.entry(key).or_insert_with(|| {
            groups.push(Group {
                symbol: &cell.symbol,
                side: cell.side,
                cells: Vec::new(),
            });
            groups.len() - 1
        });
        groups[at].cells.push(cell);
    }
    for group in &mut groups {
        group.cells.sort_by(|a, b| {
            risk_key(b.risk_score)
                .total_cmp(&risk_key(a.risk_score))
                .then(a.position_id.cmp(&b.position_id))
        });
    }
    groups.sort_by(|a, b| {
        risk_key(b.max_risk())
            .total_cmp(&risk_key(a.max_risk()))
            .then(a.symbol.cmp(b.symbol))
            .then(a.side.cmp(&b.side))
    });
    groups
}

impl RiskHeatmap<'_> {
    fn side_span(&self, side: PositionSide) -> Span<'static> {
        let (letter, colour) = match side {
            PositionSide::Long => ("L", self.theme.up),
            PositionSide::Short => ("S", self.theme.down),
        };
        Span::styled(letter, Style::new().fg(colour).add_modifier(Modifier::BOLD))
    }

    fn cell_span(&self, cell: &HeatCell) -> Span<'static> {
        let band = RiskBand::of(cell.risk_score);
        let mut style = Style::new().fg(band.colour(self.theme));
        if band == RiskBand::Critical {
            style = style.add_modifier(Modifier::BOLD);
        }
        Span::styled(band.glyph().to_string().repeat(CELL_WIDTH), style)
    }

    /// The legend: each band's glyph in its colour with its name and range, only the range when the
    /// names do not fit in `width`, and as many bands as fit after that.
    fn legend(&self, width: usize) -> Line<'static> {
        let full_width: usize = RiskBand::ALL
            .iter()
            .map(|band| 1 + CELL_WIDTH + 1 + band.legend(true).chars().count())
            .sum::<usize>()
            - 1;
        let with_name = full_width <= width;
        let muted = Style::new().fg(self.theme.muted);
        let mut spans = Vec::new();
        let mut used = 0;
        for band in RiskBand::ALL {
            let text = format!(" {}", band.legend(with_name));
            let separator = if used == 0 { "" } else { " " };
            let needed = separator.len() + CELL_WIDTH + text.chars().count();
            if used + needed > width {
                break;
            }
            spans.push(Span::raw(separator));
            spans.push(Span::styled(
                band.glyph().to_string().repeat(CELL_WIDTH),
                Style::new().fg(band.colour(self.theme)),
            ));
            spans.push(Span::styled(text, muted));
            used += needed;
        }
        Line::from(spans)
    }

    /// The group lines that fit in `height` lines of `width` columns. Groups flow left to right, two
    /// columns apart, and a new line starts where the next group would not fit; a group wider than a
    /// line continues on the next, indented. The last line counts the positions left out.
    fn group_lines(&self, width: usize, height: usize) -> Vec<Line<'static>> {
        let muted = Style::new().fg(self.theme.muted);
        let total = self.cells.len();
        let beyond_cells = usize::try_from(self.open_positions)
            .unwrap_or(usize::MAX)
            .saturating_sub(total);
        let mut lines: Vec<Line<'static>> = Vec::new();
        let mut current: Vec<Span<'static>> = Vec::new();
        let mut used = 0;
        let mut shown = 0;
        // Lines available while positions remain unshown: one is kept for the "+N more" count.
        let room = |shown: usize| {
            if shown < total {
                height.saturating_sub(1)
            } else {
                height
            }
        };
        'groups: for group in groups(self.cells) {
            let symbol: String = group.symbol.chars().take(MAX_LABEL_WIDTH - 2).collect();
            let label_width = symbol.chars().count() + 3;
            let token_width = label_width + CELL_WIDTH * group.cells.len();
            let gap = if current.is_empty() { 0 } else { GROUP_GAP };
            if !current.is_empty() && used + gap + token_width.min(width) > width {
                lines.push(Line::from(std::mem::take(&mut current)));
                used = 0;
            }
            // The label and at least one cell must fit on this line.
            if lines.len() >= room(shown) || label_width + CELL_WIDTH > width {
                break;
            }
            if !current.is_empty() {
                current.push(Span::raw(" ".repeat(GROUP_GAP)));
                used += GROUP_GAP;
            }
            current.push(Span::styled(
                format!("{symbol} "),
                Style::new().fg(self.theme.text).add_modifier(Modifier::BOLD),
            ));
            current.push(self.side_span(group.side));
            current.push(Span::raw(" "));
            used += label_width;
            for cell in &group.cells {
                if used + CELL_WIDTH > width {
                    lines.push(Line::from(std::mem::take(&mut current)));
                    if lines.len() >= room(shown) {
                        break 'groups;
                    }
                    current.push(Span::raw(" ".repeat(CONTINUATION_INDENT)));
                    used = CONTINUATION_INDENT;
                }
                current.push(self.cell_span(cell));
                used += CELL_WIDTH;
                shown += 1;
            }
        }
        if !current.is_empty() && lines.len() < height {
            lines.push(Line::from(current));
        }
        if shown < total && height > 0 {
            lines.truncate(height - 1);
            lines.push(Line::from(Span::styled(
                format!(
                    "+{} more positions",
                    format_count((total - shown + beyond_cells) as u64)
                ),
                muted,
            )));
        } else if beyond_cells > 0 && lines.len() < height {
            lines.push(Line::from(Span::styled(
                format!(
                    "+{} more positions, less risky",
                    format_count(beyond_cells as u64)
                ),
                muted,
            )));
        }
        lines
    }

    /// The position with the highest risk score (NaN lowest; the lowest id among equals).
    fn riskiest(&self) -> Option<&HeatCell> {
        self.cells.iter().min_by(|a, b| {
            risk_key(b.risk_score)
                .total_cmp(&risk_key(a.risk_score))
                .then(a.position_id.cmp(&b.position_id))
        })
    }

    /// `riskiest ETHUSDT S #104 0.88 -0.9R`: the cell's symbol, side, id, score and label.
    fn riskiest_line(&self, cell: &HeatCell, width: usize) -> Line<'static> {
        let muted = Style::new().fg(self.theme.muted);
        let band = RiskBand::of(cell.risk_score);
        let line = Line::from(vec![
            Span::styled("riskiest ", muted),
            Span::styled(
                band.glyph().to_string().repeat(CELL_WIDTH),
                Style::new().fg(band.colour(self.theme)),
            ),
            Span::styled(
                format!(" {}", cell.symbol),
                Style::new().fg(self.theme.text).add_modifier(Modifier::BOLD),
            ),
            Span::raw(" "),
            self.side_span(cell.side),
            Span::styled(
                format!(" #{}  {:.2}  {}", cell.position_id, cell.risk_score, cell.label),
                Style::new().fg(self.theme.text),
            ),
        ]);
        if line.width() <= width {
            line
        } else {
            Line::default()
        }
    }

    /// ` Risk heatmap  3 crit · 5 high `: the title counts the two dangerous bands.
    fn title(&self) -> Line<'static> {
        let count = |band: RiskBand| {
            self.cells
                .iter()
                .filter(|cell| RiskBand::of(cell.risk_score) == band)
                .count()
        };
        let mut spans = vec![Span::styled(
            " Risk heatmap ",
            Style::new().fg(self.theme.title).add_modifier(Modifier::BOLD),
        )];
        if !self.cells.is_empty() {
            let critical = count(RiskBand::Critical);
            let high = count(RiskBand::High);
            let style = |band: RiskBand, n: usize| {
                if n > 0 {
                    Style::new()
                        .fg(band.colour(self.theme))
                        .add_modifier(Modifier::BOLD)
                } else {
                    Style::new().fg(self.theme.muted)
                }
            };
            spans.push(Span::styled(
                format!("{critical} crit"),
                style(RiskBand::Critical, critical),
            ));
            spans.push(Span::styled(" · ", Style::new().fg(self.theme.muted)));
            spans.push(Span::styled(format!("{high} high "), style(RiskBand::High, high)));
        }
        Line::from(spans)
    }
}

impl Widget for RiskHeatmap<'_> {
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
        let height = usize::from(padded.height);
        if self.cells.is_empty() {
            let lines = vec![
                Line::from(Span::styled(
                    "no open positions",
                    Style::new().fg(self.theme.muted),
                )),
                Line::default(),
                self.legend(width),
            ];
            Paragraph::new(lines).render(padded, buf);
            return;
        }
        // The legend takes the bottom line when there are at least three lines.
        let (cell_height, legend) = if height >= 3 {
            (height - 1, Some(self.legend(width)))
        } else {
            (height, None)
        };
        let mut lines = self.group_lines(width, cell_height);
        // With a line to spare after a blank one, name the riskiest position with the engine's label.
        if lines.len() + 2 <= cell_height
            && let Some(riskiest) = self.riskiest()
        {
            lines.push(Line::default());
            lines.push(self.riskiest_line(riskiest, width));
        }
        if let Some(legend) = legend {
            lines.resize(cell_height, Line::default());
            lines.push(legend);
        }
        Paragraph::new(lines).render(padded, buf);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn cell(id: u64, symbol: &str, side: PositionSide, risk: f64) -> HeatCell {
        HeatCell {
            position_id: id,
            symbol: symbol.to_owned(),
            side,
            risk_score: risk,
            label: String::new(),
        }
    }

    fn render(cells: &[HeatCell], width: u16, height: u16) -> (Buffer, String) {
        let theme = Theme::builtin("default").unwrap();
        let mut buf = Buffer::empty(Rect::new(0, 0, width, height));
        RiskHeatmap {
            cells,
            open_positions: 0,
            theme: &theme,
        }
        .render(buf.area, &mut buf);
        let text = (0..height)
            .map(|y| (0..width).map(|x| buf[(x, y)].symbol()).collect::<String>() + "\n")
            .collect();
        (buf, text)
    }

    #[test]
    fn bands_follow_the_scheduler_thresholds() {
        assert_eq!(RiskBand::of(0.0), RiskBand::Low);
        assert_eq!(RiskBand::of(0.2), RiskBand::Low);
        assert_eq!(RiskBand::of(0.21), RiskBand::Medium);
        assert_eq!(RiskBand::of(0.5), RiskBand::Medium);
        assert_eq!(RiskBand::of(0.51), RiskBand::High);
        assert_eq!(RiskBand::of(0.8), RiskBand::High);
        assert_eq!(RiskBand::of(0.81), RiskBand::Critical);
        assert_eq!(RiskBand::of(1.7), RiskBand::Critical, "past a level");
        assert_eq!(RiskBand::of(f64::NAN), RiskBand::Low);
        assert_eq!(RiskBand::of_interval(100), RiskBand::Critical);
        assert_eq!(RiskBand::of_interval(500), RiskBand::High);
        assert_eq!(RiskBand::of_interval(1_000), RiskBand::Medium);
        assert_eq!(RiskBand::of_interval(2_000), RiskBand::Medium);
        assert_eq!(RiskBand::of_interval(5_000), RiskBand::Low);
        let glyphs: Vec<char> = RiskBand::ALL.iter().map(|band| band.glyph()).collect();
        assert_eq!(glyphs, ['░', '▒', '▓', '█']);
    }

    #[test]
    fn groups_are_by_symbol_and_side_riskiest_first() {
        let cells = [
            cell(1, "ETHUSDT", PositionSide::Long, 0.1),
            cell(2, "BTCUSDT", PositionSide::Long, 0.3),
            cell(3, "BTCUSDT", PositionSide::Short, 0.9),
            cell(4, "BTCUSDT", PositionSide::Long, 0.6),
            cell(5, "ETHUSDT", PositionSide::Long, 0.05),
        ];
        let grouped = groups(&cells);
        let summary: Vec<(&str, PositionSide, Vec<u64>)> = grouped
            .iter()
            .map(|group| {
                (
                    group.symbol,
                    group.side,
                    group.cells.iter().map(|cell| cell.position_id).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("BTCUSDT", PositionSide::Short, vec![3]),
                ("BTCUSDT", PositionSide::Long, vec![4, 2]),
                ("ETHUSDT", PositionSide::Long, vec![1, 5]),
            ]
        );
    }

    #[test]
    fn the_riskiest_position_is_named_with_its_label_where_there_is_room() {
        let mut cells = vec![
            cell(4, "BTCUSDT", PositionSide::Long, 0.3),
            cell(9, "ETHUSDT", PositionSide::Short, 0.92),
        ];
        cells[1].label = "-0.9R".to_owned();
        let (_, text) = render(&cells, 60, 8);
        assert!(text.contains("riskiest ██ ETHUSDT S #9  0.92  -0.9R"), "{text}");
        let (_, short) = render(&cells, 60, 5);
        assert!(!short.contains("riskiest"), "no room: {short}");
    }

    #[test]
    fn cells_carry_glyph_and_colour_and_the_legend_names_the_bands() {
        let theme = Theme::builtin("default").unwrap();
        let cells = [
            cell(1, "BTCUSDT", PositionSide::Long, 0.1),
            cell(2, "BTCUSDT", PositionSide::Long, 0.3),
            cell(3, "BTCUSDT", PositionSide::Long, 0.6),
            cell(4, "BTCUSDT", PositionSide::Long, 0.95),
        ];
        let (buf, text) = render(&cells, 60, 6);
        assert!(text.contains("BTCUSDT L ██▓▓▒▒░░"), "{text}");
        assert!(
            text.contains("░░ low ≤.2 ▒▒ med >.2 ▓▓ high >.5 ██ crit >.8"),
            "{text}"
        );
        assert!(text.contains("Risk heatmap 1 crit · 1 high"), "{text}");
        let line = text.lines().nth(1).unwrap();
        let x = line.chars().position(|c| c == '█').unwrap() as u16;
        assert_eq!(buf[(x, 1)].fg, theme.risk_critical);
        assert_eq!(buf[(x + 6, 1)].fg, theme.risk_low);
    }

    #[test]
    fn a_full_pane_keeps_the_riskiest_and_counts_the_rest() {
        let cells: Vec<HeatCell> = (0..40)
            .map(|id| {
                cell(
                    id,
                    &format!("SYM{id:02}USDT"),
                    PositionSide::Long,
                    id as f64 / 40.0,
                )
            })
            .collect();
        let (_, text) = render(&cells, 40, 7);
        assert!(text.contains("SYM39USDT L ██  SYM38USDT L ██"), "{text}");
        assert!(text.contains("SYM34USDT"), "{text}");
        assert!(!text.contains("SYM33USDT"), "{text}");
        assert!(text.contains("+34 more positions"), "{text}");
        assert!(
            text.contains("░░ ≤.2 ▒▒ >.2 ▓▓ >.5 ██ >.8"),
            "a narrow legend keeps every band: {text}"
        );
    }

    #[test]
    fn positions_beyond_the_cells_sent_are_counted() {
        let theme = Theme::builtin("default").unwrap();
        let cells = [cell(1, "BTCUSDT", PositionSide::Long, 0.9)];
        let mut buf = Buffer::empty(Rect::new(0, 0, 40, 6));
        RiskHeatmap {
            cells: &cells,
            open_positions: 100_000,
            theme: &theme,
        }
        .render(buf.area, &mut buf);
        let text: String = (0..6)
            .map(|y| (0..40).map(|x| buf[(x, y)].symbol()).collect::<String>() + "\n")
            .collect();
        assert!(text.contains("+99,999 more positions, less risky"), "{text}");
    }

    #[test]
    fn a_long_group_wraps_under_its_cells() {
        let cells: Vec<HeatCell> = (0..20)
            .map(|id| cell(id, "BTCUSDT", PositionSide::Short, 0.3))
            .collect();
        let (_, text) = render(&cells, 30, 7);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "│ BTCUSDT S ▒▒▒▒▒▒▒▒▒▒▒▒▒▒▒▒ │", "{text}");
        assert_eq!(lines[2], "│   ▒▒▒▒▒▒▒▒▒▒▒▒▒▒▒▒▒▒▒▒▒▒▒▒ │", "{text}");
        assert!(!text.contains("more"), "{text}");
    }

    #[test]
    fn empty_heatmap_says_so_and_still_shows_the_legend() {
        let (_, text) = render(&[], 60, 6);
        assert!(text.contains("no open positions"), "{text}");
        assert!(text.contains("crit >.8"), "{text}");
    }
}
