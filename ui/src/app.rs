//! The console's UI state and behaviour: what the operator is looking at and what their keys ask for.
//!
//! [`App`] holds only presentation state (screen, sort, filter, selection, scroll, chart timeframe,
//! overlays, an open confirmation, a mode change in flight). The signal-funnel panel (`f`) and the models
//! panel (`M`, one of the two at a time) take the chart's pane while open; when the body is too short
//! for two halves the panel takes the height it wants below the scanner. The engine's state arrives as a [`View`] with every call, so the app never
//! holds a stale copy of market data and can be driven headlessly in tests: feed key events and views,
//! check the returned [`Intent`]s and the drawn buffer.
//!
//! Two screens share the header and status lines; `Tab` switches. *Markets*: the scanner with the
//! chart or the funnel. *Positions*: a safety line (breaker tier, reason, cooldown, kill switch), the
//! positions table, the risk heatmap beside the scheduler panel, and the event log beside the equity
//! curve; at 80×24 every pane is still there, smaller, and below that the lower panes go first. The
//! movement, sort and filter keys act on the table of the screen shown. The kill switch (`K`) and the
//! breaker reset (`R`) open a modal confirmation and send their intent only once confirmed.
//!
//! The scanner selection is kept as a symbol name (the positions selection as a position id), not a row
//! index, so that it stays on the same market when
//! the rows re-sort on every update. If that symbol disappears (filtered out, left the universe), the
//! selection moves to the row now at the same position and the host learns of it from
//! [`App::focus_request`].

use ratatui::{
    Frame,
    crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers},
    layout::{Constraint, Layout, Rect},
    style::Style,
    widgets::Block,
};

use crate::{
    intent::Intent,
    keymap::{self, Action, KeyContext},
    order::{self, PositionSort, SortOrder},
    theme::Theme,
    view::{PositionSide, StrategyMode, View},
    widgets::{
        chart::CandleChart,
        equity::EquityPane,
        events::EventLog,
        funnel::{self, FunnelPanel},
        header::HeaderBar,
        heatmap::RiskHeatmap,
        help::HelpOverlay,
        models::{self, ModelsView},
        positions::PositionsTable,
        safety::{BreakerBadge, ConfirmDialog, Confirmation, SafetyLine},
        scanner::ScannerTable,
        scheduler::SchedulerView,
        status::StatusBar,
    },
};

/// Rows moved by PgUp/PgDn before the first draw has measured the scanner.
const DEFAULT_PAGE_ROWS: usize = 10;
/// Narrowest chart worth drawing beside the scanner; narrower terminals stack the chart below.
const MIN_SIDE_CHART_WIDTH: u16 = 40;
/// Shortest body (between header and status lines) that still gets a stacked chart.
const MIN_STACKED_BODY_HEIGHT: u16 = 14;
/// The most characters the kill-switch dialog accepts (the word is four).
const MAX_CONFIRM_TYPED: usize = 16;
/// Narrowest positions screen that puts the scheduler beside the heatmap and the equity beside the
/// events; narrower ones show the heatmap and the events alone.
const MIN_SIDE_PANES_WIDTH: u16 = 60;

/// Which screen the body shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Screen {
    /// The scanner with the chart or the signal funnel.
    #[default]
    Markets,
    /// Positions, risk heatmap, scheduler, events, equity, breaker and kill switch.
    Positions,
}

/// Where the positions screen's panes go; `None` for a pane there is no room for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PositionsLayout {
    safety: Rect,
    table: Rect,
    heatmap: Option<Rect>,
    scheduler: Option<Rect>,
    events: Option<Rect>,
    equity: Option<Rect>,
}

impl PositionsLayout {
    /// The safety line on top; the table; the heatmap and scheduler row (at least 7 rows: four lanes,
    /// the stats, the borders); the events and equity row. Each row takes about a third of what is
    /// left; the table keeps at least 5 rows, so on short terminals the bottom row goes first, then
    /// the middle one.
    fn of(body: Rect) -> Self {
        let safety = Rect {
            height: body.height.min(1),
            ..body
        };
        let rest = Rect {
            y: body.y + safety.height,
            height: body.height.saturating_sub(safety.height),
            ..body
        };
        let third = rest.height * 32 / 100;
        let (middle, bottom) = if rest.height >= 17 {
            (third.clamp(7, 16), third.clamp(5, 20))
        } else if rest.height >= 12 {
            (7, 0)
        } else {
            (0, 0)
        };
        let [table, middle_area, bottom_area] = Layout::vertical([
            Constraint::Min(0),
            Constraint::Length(middle),
            Constraint::Length(bottom),
        ])
        .areas(rest);
        let side_width = (body.width * 40 / 100).clamp(30, 48);
        let split = |area: Rect| -> (Option<Rect>, Option<Rect>) {
            if area.height == 0 {
                (None, None)
            } else if area.width >= MIN_SIDE_PANES_WIDTH {
                let [left, right] =
                    Layout::horizontal([Constraint::Min(0), Constraint::Length(side_width)]).areas(area);
                (Some(left), Some(right))
            } else {
                (Some(area), None)
            }
        };
        let (heatmap, scheduler) = split(middle_area);
        let (events, equity) = split(bottom_area);
        Self {
            safety,
            table,
            heatmap,
            scheduler,
            events,
            equity,
        }
    }
}

/// The console: UI state plus the key handling and drawing that use it.
#[derive(Debug, Clone)]
pub struct App {
    theme: Theme,
    /// Timeframes `t` cycles through; empty = the view's scanner timeframes.
    chart_timeframes: Vec<String>,
    timeframe_index: usize,
    sort: SortOrder,
    filter: String,
    filter_editing: bool,
    selected_symbol: Option<String>,
    /// Position of the selection in the ordered rows, used when the selected symbol disappears.
    selected_position: usize,
    scroll_offset: usize,
    /// Scanner rows visible at the last draw; the PgUp/PgDn step.
    page_rows: usize,
    help_visible: bool,
    chart_visible: bool,
    funnel_visible: bool,
    models_visible: bool,
    pending_mode: Option<StrategyMode>,
    /// The (symbol, timeframe) last sent as `Intent::Focus`.
    focused: Option<(String, String)>,
    screen: Screen,
    position_sort: PositionSort,
    /// The selected position's id.
    selected_position_id: Option<u64>,
    /// Position of the selection in the ordered positions, used when the position closes.
    selected_position_row: usize,
    position_scroll: usize,
    /// Position rows visible at the last draw.
    position_page_rows: usize,
    help_scroll: usize,
    /// The open confirmation dialog, if any.
    confirmation: Option<Confirmation>,
}

impl App {
    /// A console drawn with `theme`, whose chart offers `chart_timeframes` (the first is shown first).
    /// With no chart timeframes, the chart offers the scanner's timeframes (`View::timeframes`).
    pub fn new<I, S>(theme: Theme, chart_timeframes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            theme,
            chart_timeframes: chart_timeframes.into_iter().map(Into::into).collect(),
            timeframe_index: 0,
            sort: SortOrder::default(),
            filter: String::new(),
            filter_editing: false,
            selected_symbol: None,
            selected_position: 0,
            scroll_offset: 0,
            page_rows: DEFAULT_PAGE_ROWS,
            help_visible: false,
            chart_visible: true,
            funnel_visible: false,
            models_visible: false,
            pending_mode: None,
            focused: None,
            screen: Screen::default(),
            position_sort: PositionSort::default(),
            selected_position_id: None,
            selected_position_row: 0,
            position_scroll: 0,
            position_page_rows: DEFAULT_PAGE_ROWS,
            help_scroll: 0,
            confirmation: None,
        }
    }

    pub fn screen(&self) -> Screen {
        self.screen
    }

    pub fn position_sort(&self) -> PositionSort {
        self.position_sort
    }

    /// The selected position's id as of the last key or draw.
    pub fn selected_position_id(&self) -> Option<u64> {
        self.selected_position_id
    }

    /// The open confirmation dialog, if any.
    pub fn confirmation(&self) -> Option<&Confirmation> {
        self.confirmation.as_ref()
    }

    pub fn help_scroll(&self) -> usize {
        self.help_scroll
    }

    pub fn theme(&self) -> &Theme {
        &self.theme
    }

    pub fn sort(&self) -> SortOrder {
        self.sort
    }

    pub fn filter(&self) -> &str {
        &self.filter
    }

    pub fn is_filter_editing(&self) -> bool {
        self.filter_editing
    }

    pub fn is_help_visible(&self) -> bool {
        self.help_visible
    }

    pub fn is_chart_visible(&self) -> bool {
        self.chart_visible
    }

    pub fn is_funnel_visible(&self) -> bool {
        self.funnel_visible
    }

    pub fn is_models_visible(&self) -> bool {
        self.models_visible
    }

    /// The mode the operator asked for that the engine has not applied yet.
    pub fn pending_mode(&self) -> Option<StrategyMode> {
        self.pending_mode
    }

    pub fn scroll_offset(&self) -> usize {
        self.scroll_offset
    }

    /// The selected symbol as of the last key, draw or focus request.
    pub fn selected_symbol(&self) -> Option<&str> {
        self.selected_symbol.as_deref()
    }

    /// The chart timeframe the operator chose, if any timeframe is known.
    pub fn chart_timeframe<'a>(&'a self, view: &'a View) -> Option<&'a str> {
        let choices = self.timeframe_choices(view);
        if choices.is_empty() {
            None
        } else {
            Some(choices[self.timeframe_index % choices.len()].as_str())
        }
    }

    /// The symbols in scanner order, after filter and sort.
    pub fn visible_symbols<'v>(&self, view: &'v View) -> Vec<&'v str> {
        order::ordered_rows(view, &self.filter, self.sort)
            .into_iter()
            .map(|row| row.symbol.as_str())
            .collect()
    }

    fn timeframe_choices<'a>(&'a self, view: &'a View) -> &'a [String] {
        if self.chart_timeframes.is_empty() {
            &view.timeframes
        } else {
            &self.chart_timeframes
        }
    }

    /// Handles one key press against the view currently on screen.
    ///
    /// Returns the operator's intent, if the key asked for one. A key that moves the selection or
    /// changes the chart timeframe returns `Intent::Focus`; a key that asks for something else
    /// (`SetMode`, `Quit`) returns that, and a focus change it may also cause is reported by the next
    /// [`App::focus_request`].
    pub fn handle_key(&mut self, key: KeyEvent, view: &View) -> Option<Intent> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        self.reconcile(view);
        let intent = if self.confirmation.is_some() {
            self.handle_confirm_key(key)
        } else if self.filter_editing {
            self.handle_filter_key(key, view)
        } else {
            self.handle_browsing_key(key, view)
        };
        intent.or_else(|| self.focus_request(view))
    }

    /// `Intent::Focus` for the selected symbol and chart timeframe if the host has not been asked for
    /// them yet. The host calls this after each new view: it focuses the first selection without a key
    /// press, and follows a selection that moved because rows were filtered out or left the universe.
    pub fn focus_request(&mut self, view: &View) -> Option<Intent> {
        self.reconcile(view);
        let symbol = self.selected_symbol.clone()?;
        let timeframe = self.chart_timeframe(view)?.to_owned();
        if self
            .focused
            .as_ref()
            .is_some_and(|(s, t)| *s == symbol && *t == timeframe)
        {
            return None;
        }
        self.focused = Some((symbol.clone(), timeframe.clone()));
        Some(Intent::Focus { symbol, timeframe })
    }

    /// Brings UI state in line with a (possibly new) view: clears an applied mode change and resolves
    /// the selection against the rows now shown.
    fn reconcile(&mut self, view: &View) {
        if self.pending_mode == Some(view.header.mode) {
            self.pending_mode = None;
        }
        self.reconcile_positions(view);
        let rows = order::ordered_rows(view, &self.filter, self.sort);
        if rows.is_empty() {
            // Keep the symbol: clearing the filter brings the selection back to it.
            return;
        }
        let position = self
            .selected_symbol
            .as_deref()
            .and_then(|symbol| rows.iter().position(|row| row.symbol == symbol))
            .unwrap_or_else(|| self.selected_position.min(rows.len() - 1));
        self.selected_position = position;
        self.selected_symbol = Some(rows[position].symbol.clone());
    }

    /// Resolves the positions selection against the position rows now shown: the same position if it
    /// is still there, else the row now at the same place.
    fn reconcile_positions(&mut self, view: &View) {
        let rows = order::ordered_positions(view, &self.filter, self.position_sort);
        let Some(last) = rows.len().checked_sub(1) else {
            return;
        };
        let index = self
            .selected_position_id
            .and_then(|id| rows.iter().position(|row| row.id == id))
            .unwrap_or_else(|| self.selected_position_row.min(last));
        self.selected_position_row = index;
        self.selected_position_id = Some(rows[index].id);
    }

    /// Selects the position at `index` of the ordered positions (clamped).
    fn select_position_row(&mut self, view: &View, index: usize) {
        let rows = order::ordered_positions(view, &self.filter, self.position_sort);
        if let Some(last) = rows.len().checked_sub(1) {
            let index = index.min(last);
            self.selected_position_row = index;
            self.selected_position_id = Some(rows[index].id);
        }
    }

    /// Moves the selection of the screen shown to `target(current index, page rows)`.
    fn move_selection(&mut self, view: &View, target: impl Fn(usize, usize) -> usize) {
        match self.screen {
            Screen::Markets => {
                let index = target(self.selected_position, self.page_rows);
                self.select_position(view, index);
            }
            Screen::Positions => {
                let index = target(self.selected_position_row, self.position_page_rows);
                self.select_position_row(view, index);
            }
        }
    }

    /// Selects the row at `position` of the ordered rows (clamped).
    fn select_position(&mut self, view: &View, position: usize) {
        let rows = order::ordered_rows(view, &self.filter, self.sort);
        if let Some(last) = rows.len().checked_sub(1) {
            let position = position.min(last);
            self.selected_position = position;
            self.selected_symbol = Some(rows[position].symbol.clone());
        }
    }

    fn handle_browsing_key(&mut self, key: KeyEvent, view: &View) -> Option<Intent> {
        let (binding, key_position) = keymap::lookup(KeyContext::Browsing, &key)?;
        if self.help_visible {
            // The help is modal: other keys would act on a screen the operator cannot see. The
            // movement keys scroll it.
            match binding.action {
                Action::MoveDown => self.help_scroll += 1,
                Action::MoveUp => self.help_scroll = self.help_scroll.saturating_sub(1),
                Action::Page if key_position == 0 => self.help_scroll += self.page_rows,
                Action::Page => self.help_scroll = self.help_scroll.saturating_sub(self.page_rows),
                Action::Top => self.help_scroll = 0,
                Action::Bottom => self.help_scroll = HelpOverlay::line_count(),
                Action::ToggleHelp | Action::CloseOrClearFilter => self.help_visible = false,
                Action::Quit => return Some(Intent::Quit),
                _ => {}
            }
            self.help_scroll = self.help_scroll.min(HelpOverlay::line_count());
            return None;
        }
        match binding.action {
            Action::MoveDown => self.move_selection(view, |at, _| at + 1),
            Action::MoveUp => self.move_selection(view, |at, _| at.saturating_sub(1)),
            Action::Page if key_position == 0 => self.move_selection(view, |at, page| at + page),
            Action::Page => self.move_selection(view, usize::saturating_sub),
            Action::Top => self.move_selection(view, |_, _| 0),
            Action::Bottom => self.move_selection(view, |_, _| usize::MAX),
            Action::SortNextColumn if self.screen == Screen::Positions => {
                let column = self.position_sort.column.next();
                self.position_sort = PositionSort {
                    column,
                    descending: column.natural_descending(),
                };
            }
            Action::SortNextColumn => {
                let column = self.sort.effective_column(view).next(view.timeframes.len());
                self.sort = SortOrder {
                    column,
                    descending: column.natural_descending(),
                };
            }
            Action::SortReverse if self.screen == Screen::Positions => {
                self.position_sort.descending = !self.position_sort.descending;
            }
            Action::SortReverse => self.sort.descending = !self.sort.descending,
            Action::StartFilter => self.filter_editing = true,
            Action::CloseOrClearFilter if self.help_visible => self.help_visible = false,
            Action::CloseOrClearFilter => self.filter.clear(),
            Action::NextTimeframe => {
                let count = self.timeframe_choices(view).len().max(1);
                self.timeframe_index = (self.timeframe_index + 1) % count;
            }
            Action::ToggleChart => self.chart_visible = !self.chart_visible,
            Action::ToggleFunnel => {
                self.funnel_visible = !self.funnel_visible;
                self.models_visible &= !self.funnel_visible;
            }
            Action::ToggleModels => {
                self.models_visible = !self.models_visible;
                self.funnel_visible &= !self.models_visible;
            }
            Action::CycleMode => return Some(self.request_mode(view, view.header.mode.next())),
            Action::SelectMode => {
                let mode = StrategyMode::ALL.get(key_position).copied()?;
                return Some(self.request_mode(view, mode));
            }
            Action::ToggleHelp => {
                self.help_visible = !self.help_visible;
                self.help_scroll = 0;
            }
            Action::NextScreen => {
                self.screen = match self.screen {
                    Screen::Markets => Screen::Positions,
                    Screen::Positions => Screen::Markets,
                };
            }
            Action::KillSwitch => {
                self.confirmation = Some(Confirmation::KillSwitch { typed: String::new() });
            }
            Action::ResetBreaker => self.confirmation = Some(Confirmation::ResetBreaker),
            Action::RevertStrategy => {
                let change = view.models.evolver.as_ref().and_then(|e| e.last_change.clone());
                self.confirmation = Some(Confirmation::RevertStrategy { change });
            }
            Action::ManualEntry => {
                let side = if key_position == 0 {
                    PositionSide::Long
                } else {
                    PositionSide::Short
                };
                if self.screen == Screen::Markets
                    && let Some(symbol) = self.selected_symbol.clone()
                {
                    self.confirmation = Some(Confirmation::ManualEntry { symbol, side });
                }
            }
            Action::ClosePosition if self.screen == Screen::Positions => {
                let row = self
                    .selected_position_id
                    .and_then(|id| view.positions.rows.iter().find(|row| row.id == id));
                if let Some(row) = row {
                    self.confirmation = Some(Confirmation::ClosePosition {
                        id: row.id,
                        label: format!("#{} {} {}", row.id, row.side.as_str(), row.symbol),
                    });
                }
            }
            Action::RollbackModel if self.models_visible => {
                let to = view.models.learning.as_ref().and_then(|l| l.rollback_to.clone());
                let from = view.models.models.first().map(|m| m.version.clone());
                if let (Some(to), Some(from)) = (to, from) {
                    self.confirmation = Some(Confirmation::RollbackModel { from, to });
                }
            }
            Action::Quit => return Some(Intent::Quit),
            Action::RollbackModel
            | Action::ConfirmRollback
            | Action::ClosePosition
            | Action::ApplyFilter
            | Action::CancelFilter
            | Action::DeleteFilterChar
            | Action::ConfirmKill
            | Action::ConfirmReset
            | Action::ConfirmEntry
            | Action::ConfirmClose
            | Action::ConfirmRevert
            | Action::CancelConfirm
            | Action::DeleteConfirmChar => {}
        }
        // A re-sort or a cleared filter keeps the symbol; re-resolve its position for the next key.
        self.reconcile(view);
        None
    }

    fn handle_filter_key(&mut self, key: KeyEvent, view: &View) -> Option<Intent> {
        if let Some((binding, _)) = keymap::lookup(KeyContext::Filtering, &key) {
            match binding.action {
                Action::ApplyFilter => self.filter_editing = false,
                Action::CancelFilter => {
                    self.filter.clear();
                    self.filter_editing = false;
                }
                Action::DeleteFilterChar => {
                    self.filter.pop();
                }
                Action::Quit => return Some(Intent::Quit),
                _ => {}
            }
        } else if let KeyCode::Char(character) = key.code
            && !key
                .modifiers
                .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
        {
            self.filter.push(character);
        }
        self.reconcile(view);
        None
    }

    /// A key while a confirmation dialog is open: only the dialog's keys count, and its intent is
    /// returned once confirmed.
    fn handle_confirm_key(&mut self, key: KeyEvent) -> Option<Intent> {
        let context = match self.confirmation {
            Some(Confirmation::KillSwitch { .. }) => KeyContext::ConfirmingKill,
            Some(Confirmation::ResetBreaker) => KeyContext::ConfirmingReset,
            Some(Confirmation::ManualEntry { .. }) => KeyContext::ConfirmingEntry,
            Some(Confirmation::ClosePosition { .. }) => KeyContext::ConfirmingClose,
            Some(Confirmation::RevertStrategy { .. }) => KeyContext::ConfirmingRevert,
            Some(Confirmation::RollbackModel { .. }) => KeyContext::ConfirmingRollback,
            None => return None,
        };
        if let Some((binding, _)) = keymap::lookup(context, &key) {
            match binding.action {
                Action::ConfirmKill => {
                    if let Some(Confirmation::KillSwitch { typed }) = &mut self.confirmation {
                        if Confirmation::kill_word_typed(typed) {
                            self.confirmation = None;
                            return Some(Intent::KillSwitch);
                        }
                        // A wrong word is cleared so the next attempt starts clean.
                        typed.clear();
                    }
                }
                Action::ConfirmReset => {
                    self.confirmation = None;
                    return Some(Intent::ResetBreaker);
                }
                Action::ConfirmRevert => {
                    self.confirmation = None;
                    return Some(Intent::RevertStrategy);
                }
                Action::ConfirmClose => {
                    if let Some(Confirmation::ClosePosition { id, .. }) = self.confirmation.take() {
                        return Some(Intent::ClosePosition { id });
                    }
                }
                Action::ConfirmEntry => {
                    if let Some(Confirmation::ManualEntry { symbol, side }) = self.confirmation.take() {
                        return Some(Intent::OpenPosition { symbol, side });
                    }
                }
                Action::ConfirmRollback => {
                    self.confirmation = None;
                    return Some(Intent::RollbackModel);
                }
                Action::CancelConfirm => self.confirmation = None,
                Action::DeleteConfirmChar => {
                    if let Some(Confirmation::KillSwitch { typed }) = &mut self.confirmation {
                        typed.pop();
                    }
                }
                Action::Quit => return Some(Intent::Quit),
                _ => {}
            }
        } else if let KeyCode::Char(character) = key.code
            && !key
                .modifiers
                .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
            && let Some(Confirmation::KillSwitch { typed }) = &mut self.confirmation
            && typed.chars().count() < MAX_CONFIRM_TYPED
        {
            typed.push(character);
        }
        None
    }

    fn request_mode(&mut self, view: &View, mode: StrategyMode) -> Intent {
        // Asking for the applied mode cancels a change in flight; the engine is told either way.
        self.pending_mode = (mode != view.header.mode).then_some(mode);
        Intent::SetMode(mode)
    }

    /// Draws the whole screen for `view`.
    pub fn draw(&mut self, frame: &mut Frame, view: &View) {
        self.reconcile(view);
        let area = frame.area();
        let theme = self.theme;
        frame.render_widget(
            Block::new().style(Style::new().fg(theme.text).bg(theme.background)),
            area,
        );
        // Header first, status second, body whatever is left: on a one-line terminal the header (LIVE or
        // PAPER, connection) is the line worth keeping.
        let header_area = Rect {
            height: area.height.min(1),
            ..area
        };
        let status_area = Rect {
            y: area.bottom().saturating_sub(1),
            height: u16::from(area.height >= 2),
            ..area
        };
        let body_area = Rect {
            y: area.y + header_area.height,
            height: area.height.saturating_sub(2),
            ..area
        };

        frame.render_widget(
            HeaderBar {
                header: &view.header,
                pending_mode: self.pending_mode,
                theme: &theme,
            },
            header_area,
        );
        // The breaker / kill-switch badge (drawn only when something is not normal) takes the left of
        // the status line; the status bar fits itself into the rest.
        let badge = BreakerBadge {
            breaker: &view.breaker,
            kill_switch: &view.kill_switch,
            theme: &theme,
        }
        .line();
        let badge_width = u16::try_from(badge.width())
            .unwrap_or(u16::MAX)
            .min(status_area.width);
        let [badge_area, status_rest] =
            Layout::horizontal([Constraint::Length(badge_width), Constraint::Min(0)]).areas(status_area);
        frame.render_widget(
            badge.style(Style::new().fg(theme.status_fg).bg(theme.status_bg)),
            badge_area,
        );
        frame.render_widget(
            StatusBar {
                status: &view.status,
                funnel: &view.funnel,
                theme: &theme,
            },
            status_rest,
        );

        match self.screen {
            Screen::Markets => self.draw_markets(frame, body_area, view),
            Screen::Positions => self.draw_positions(frame, body_area, view),
        }
        if let Some(confirmation) = &self.confirmation {
            frame.render_widget(
                ConfirmDialog {
                    confirmation,
                    breaker: &view.breaker,
                    open_positions: view.positions.open.max(view.positions.rows.len() as u64),
                    live_trading: view.header.live_trading,
                    theme: &theme,
                },
                area,
            );
        }
        if self.help_visible {
            self.help_scroll = self.help_scroll.min(HelpOverlay::max_scroll(area));
            frame.render_widget(
                HelpOverlay {
                    theme: &theme,
                    scroll: self.help_scroll,
                },
                area,
            );
        }
    }

    /// The markets screen: the scanner with the chart or the funnel.
    fn draw_markets(&mut self, frame: &mut Frame, body_area: Rect, view: &View) {
        let theme = self.theme;
        let rows = order::ordered_rows(view, &self.filter, self.sort);
        let table = ScannerTable {
            rows: &rows,
            all_rows: &view.scanner,
            timeframes: &view.timeframes,
            sort: self.sort,
            sort_column: self.sort.effective_column(view),
            filter: &self.filter,
            filter_editing: self.filter_editing,
            selected: (!rows.is_empty()).then_some(self.selected_position),
            scroll_offset: 0,
            theme: &theme,
            market: view.models.structure.as_ref(),
        };
        let (scanner_area, chart_area) = self.split_body(body_area, table.natural_width());
        let page_rows = ScannerTable::data_rows(scanner_area);
        self.page_rows = page_rows.max(1);
        self.scroll_offset = keep_visible(self.scroll_offset, self.selected_position, page_rows, rows.len());
        frame.render_widget(
            ScannerTable {
                scroll_offset: self.scroll_offset,
                ..table
            },
            scanner_area,
        );

        if self.models_visible {
            if let Some(models_area) = chart_area {
                frame.render_widget(
                    ModelsView {
                        models: &view.models,
                        theme: &theme,
                    },
                    models_area,
                );
            }
        } else if self.funnel_visible {
            let panel = FunnelPanel {
                funnel: &view.funnel,
                theme: &theme,
            };
            if let Some(funnel_area) = chart_area {
                frame.render_widget(panel, funnel_area);
            }
        } else if let Some(chart_area) = chart_area {
            let wanted = self.selected_symbol.as_deref().zip(self.chart_timeframe(view));
            frame.render_widget(
                CandleChart {
                    detail: view.detail.as_ref(),
                    wanted,
                    theme: &theme,
                },
                chart_area,
            );
        }
    }

    /// The positions screen: safety line, positions table, heatmap and scheduler, events and equity.
    fn draw_positions(&mut self, frame: &mut Frame, body_area: Rect, view: &View) {
        let theme = self.theme;
        let layout = PositionsLayout::of(body_area);
        frame.render_widget(
            SafetyLine {
                breaker: &view.breaker,
                kill_switch: &view.kill_switch,
                theme: &theme,
            },
            layout.safety,
        );
        let rows = order::ordered_positions(view, &self.filter, self.position_sort);
        let page_rows = PositionsTable::data_rows(layout.table);
        self.position_page_rows = page_rows.max(1);
        self.position_scroll = keep_visible(
            self.position_scroll,
            self.selected_position_row,
            page_rows,
            rows.len(),
        );
        frame.render_widget(
            PositionsTable {
                rows: &rows,
                positions: &view.positions,
                sort: self.position_sort,
                filter: &self.filter,
                selected: (!rows.is_empty()).then_some(self.selected_position_row),
                scroll_offset: self.position_scroll,
                theme: &theme,
            },
            layout.table,
        );
        if let Some(area) = layout.heatmap {
            frame.render_widget(
                RiskHeatmap {
                    cells: &view.heatmap,
                    open_positions: view.positions.open,
                    theme: &theme,
                },
                area,
            );
        }
        if let Some(area) = layout.scheduler {
            frame.render_widget(
                SchedulerView {
                    scheduler: &view.scheduler,
                    theme: &theme,
                },
                area,
            );
        }
        if let Some(area) = layout.events {
            frame.render_widget(
                EventLog {
                    events: &view.events,
                    theme: &theme,
                },
                area,
            );
        }
        if let Some(area) = layout.equity {
            frame.render_widget(
                EquityPane {
                    equity: &view.equity,
                    theme: &theme,
                },
                area,
            );
        }
    }

    /// Scanner and chart areas: side by side when the chart gets at least [`MIN_SIDE_CHART_WIDTH`]
    /// beside a full-width scanner, else stacked, else the scanner alone.
    /// The funnel or models panel, when open, takes the chart's pane even if the chart is hidden.
    fn split_body(&self, body: Rect, scanner_width: u16) -> (Rect, Option<Rect>) {
        if !self.chart_visible && !self.funnel_visible && !self.models_visible {
            return (body, None);
        }
        if body.width >= scanner_width + MIN_SIDE_CHART_WIDTH {
            let [scanner, chart] =
                Layout::horizontal([Constraint::Length(scanner_width), Constraint::Min(0)]).areas(body);
            return (scanner, Some(chart));
        }
        if body.height >= MIN_STACKED_BODY_HEIGHT {
            let [scanner, chart] =
                Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(body);
            return (scanner, Some(chart));
        }
        if self.funnel_visible || self.models_visible {
            // Too short for halves: the panel gets the height it wants, the scanner what is left.
            let wanted = if self.models_visible {
                models::WANTED_HEIGHT
            } else {
                funnel::WANTED_HEIGHT
            };
            let height = wanted.min(body.height);
            let [scanner, panel] =
                Layout::vertical([Constraint::Min(0), Constraint::Length(height)]).areas(body);
            return (scanner, Some(panel));
        }
        (body, None)
    }
}

/// The scroll offset that shows row `selected` in a window of `page` rows over `total` rows, moving
/// the window as little as possible.
fn keep_visible(offset: usize, selected: usize, page: usize, total: usize) -> usize {
    if page == 0 {
        return 0;
    }
    let offset = if selected < offset {
        selected
    } else if selected >= offset + page {
        selected + 1 - page
    } else {
        offset
    };
    offset.min(total.saturating_sub(page))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        order::SortColumn,
        view::{Header, ScannerRow},
    };

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn char_key(character: char) -> KeyEvent {
        key(KeyCode::Char(character))
    }

    fn ctrl(character: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(character), KeyModifiers::CONTROL)
    }

    fn row(rank: u32, symbol: &str, change: f64) -> ScannerRow {
        ScannerRow {
            rank,
            symbol: symbol.to_owned(),
            last_price: 100.0 / f64::from(rank),
            price_decimals: 2,
            change_24h_pct: change,
            quote_volume_24h: 1e9 / f64::from(rank),
            tf_change_pct: vec![Some(change / 10.0), None],
            ..ScannerRow::default()
        }
    }

    /// 25 symbols, rank order; 24h change alternates sign and grows with rank.
    fn view() -> View {
        let names = [
            "BTC", "ETH", "SOL", "XRP", "DOGE", "BNB", "ADA", "SUI", "LINK", "AVAX", "LTC", "DOT", "TRX",
            "NEAR", "APT", "ARB", "OP", "FIL", "ATOM", "INJ", "WIF", "TIA", "SEI", "ETC", "UNI",
        ];
        let scanner = names
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let rank = index as u32 + 1;
                let sign = if index % 2 == 0 { 1.0 } else { -1.0 };
                row(rank, &format!("{name}USDT"), sign * f64::from(rank) * 0.3)
            })
            .collect();
        View {
            header: Header {
                mode: StrategyMode::Ict,
                ..Header::default()
            },
            scanner,
            timeframes: vec!["5m".to_owned(), "1h".to_owned()],
            ..View::default()
        }
    }

    fn app() -> App {
        App::new(Theme::builtin("default").unwrap(), ["15m", "1h", "4h"])
    }

    fn focus(symbol: &str, timeframe: &str) -> Intent {
        Intent::Focus {
            symbol: symbol.to_owned(),
            timeframe: timeframe.to_owned(),
        }
    }

    #[test]
    fn first_view_focuses_the_top_row_once() {
        let mut app = app();
        let view = view();
        assert_eq!(app.focus_request(&view), Some(focus("BTCUSDT", "15m")));
        assert_eq!(app.focus_request(&view), None);
        assert_eq!(
            app.focus_request(&View::default()),
            None,
            "an empty view focuses nothing"
        );
    }

    #[test]
    fn moving_returns_focus_and_stops_at_the_ends() {
        let mut app = app();
        let view = view();
        app.focus_request(&view);
        assert_eq!(
            app.handle_key(char_key('j'), &view),
            Some(focus("ETHUSDT", "15m"))
        );
        assert_eq!(
            app.handle_key(key(KeyCode::Down), &view),
            Some(focus("SOLUSDT", "15m"))
        );
        assert_eq!(
            app.handle_key(char_key('k'), &view),
            Some(focus("ETHUSDT", "15m"))
        );
        assert_eq!(
            app.handle_key(key(KeyCode::Up), &view),
            Some(focus("BTCUSDT", "15m"))
        );
        assert_eq!(
            app.handle_key(key(KeyCode::Up), &view),
            None,
            "already at the top"
        );
        assert_eq!(
            app.handle_key(char_key('G'), &view),
            Some(focus("UNIUSDT", "15m"))
        );
        assert_eq!(
            app.handle_key(key(KeyCode::Down), &view),
            None,
            "already at the bottom"
        );
        assert_eq!(
            app.handle_key(char_key('g'), &view),
            Some(focus("BTCUSDT", "15m"))
        );
        assert_eq!(
            app.handle_key(key(KeyCode::End), &view),
            Some(focus("UNIUSDT", "15m"))
        );
        assert_eq!(
            app.handle_key(key(KeyCode::Home), &view),
            Some(focus("BTCUSDT", "15m"))
        );
    }

    #[test]
    fn paging_moves_by_the_measured_page() {
        let mut app = app();
        let view = view();
        app.focus_request(&view);
        // Before any draw a page is 10 rows: row 1 → row 11.
        assert_eq!(
            app.handle_key(key(KeyCode::PageDown), &view),
            Some(focus("LTCUSDT", "15m"))
        );
        assert_eq!(
            app.handle_key(key(KeyCode::PageDown), &view),
            Some(focus("WIFUSDT", "15m"))
        );
        assert_eq!(
            app.handle_key(key(KeyCode::PageDown), &view),
            Some(focus("UNIUSDT", "15m")),
            "clamped to the end"
        );
        assert_eq!(
            app.handle_key(key(KeyCode::PageUp), &view),
            Some(focus("APTUSDT", "15m"))
        );
        assert_eq!(
            app.handle_key(key(KeyCode::PageUp), &view),
            Some(focus("DOGEUSDT", "15m"))
        );
        assert_eq!(
            app.handle_key(key(KeyCode::PageUp), &view),
            Some(focus("BTCUSDT", "15m")),
            "clamped to the top"
        );
    }

    #[test]
    fn sort_keys_cycle_columns_and_reverse() {
        let mut app = app();
        let view = view();
        assert_eq!(
            app.sort(),
            SortOrder {
                column: SortColumn::Rank,
                descending: false
            }
        );
        let columns: Vec<SortOrder> = (0..7)
            .map(|_| {
                app.handle_key(char_key('s'), &view);
                app.sort()
            })
            .collect();
        assert_eq!(
            columns
                .iter()
                .map(|sort| (sort.column, sort.descending))
                .collect::<Vec<_>>(),
            [
                (SortColumn::Symbol, false),
                (SortColumn::LastPrice, true),
                (SortColumn::Change24h, true),
                (SortColumn::QuoteVolume24h, true),
                (SortColumn::Timeframe(0), true),
                (SortColumn::Timeframe(1), true),
                (SortColumn::Rank, false),
            ]
        );
        app.handle_key(char_key('r'), &view);
        assert_eq!(
            app.sort(),
            SortOrder {
                column: SortColumn::Rank,
                descending: true
            }
        );
        assert_eq!(app.visible_symbols(&view)[0], "UNIUSDT");
    }

    #[test]
    fn selection_stays_on_its_symbol_when_rows_resort() {
        let mut app = app();
        let mut view = view();
        app.focus_request(&view);
        for _ in 0..4 {
            app.handle_key(char_key('j'), &view);
        }
        assert_eq!(app.selected_symbol(), Some("DOGEUSDT"));
        // Sort by 24h change: DOGE (+1.5%) moves from row 5 to row 11; no new focus is needed.
        for _ in 0..3 {
            assert_eq!(app.handle_key(char_key('s'), &view), None);
        }
        assert_eq!(app.sort().column, SortColumn::Change24h);
        assert_eq!(app.selected_symbol(), Some("DOGEUSDT"));
        assert_eq!(
            app.visible_symbols(&view).iter().position(|s| *s == "DOGEUSDT"),
            Some(10)
        );
        // A new view where DOGE tops the 24h change: still DOGE, and `j` moves relative to its new place.
        view.scanner[4].change_24h_pct = 50.0;
        assert_eq!(app.focus_request(&view), None);
        assert_eq!(app.visible_symbols(&view)[0], "DOGEUSDT");
        assert_eq!(
            app.handle_key(char_key('j'), &view),
            Some(focus("UNIUSDT", "15m"))
        );
    }

    #[test]
    fn selection_that_leaves_the_universe_moves_to_the_same_position() {
        let mut app = app();
        let mut view = view();
        app.focus_request(&view);
        app.handle_key(char_key('j'), &view);
        app.handle_key(char_key('j'), &view);
        assert_eq!(app.selected_symbol(), Some("SOLUSDT"));
        view.scanner.remove(2);
        assert_eq!(app.focus_request(&view), Some(focus("XRPUSDT", "15m")));
    }

    #[test]
    fn filter_editing_types_applies_and_clears() {
        let mut app = app();
        let view = view();
        app.focus_request(&view);
        assert_eq!(app.handle_key(char_key('/'), &view), None);
        assert!(app.is_filter_editing());
        // `q`, `s`, `j`, `G` are text while typing; the selection follows the filter live.
        assert_eq!(
            app.handle_key(char_key('E'), &view),
            Some(focus("ETHUSDT", "15m")),
            "BTC no longer matches"
        );
        assert_eq!(app.handle_key(char_key('q'), &view), None);
        assert_eq!(app.filter(), "Eq");
        assert!(app.visible_symbols(&view).is_empty());
        app.handle_key(key(KeyCode::Backspace), &view);
        assert_eq!(app.handle_key(char_key('t'), &view), None);
        assert_eq!(app.filter(), "Et");
        assert_eq!(app.visible_symbols(&view), ["ETHUSDT", "ETCUSDT"]);
        assert_eq!(app.selected_symbol(), Some("ETHUSDT"));
        assert_eq!(
            app.handle_key(key(KeyCode::Down), &view),
            None,
            "arrows are not bound while typing"
        );
        assert_eq!(app.handle_key(key(KeyCode::Enter), &view), None);
        assert!(!app.is_filter_editing());
        assert_eq!(app.filter(), "Et", "Enter keeps the filter");
        assert_eq!(
            app.handle_key(char_key('j'), &view),
            Some(focus("ETCUSDT", "15m")),
            "filtered rows are browsed"
        );
        assert_eq!(
            app.handle_key(key(KeyCode::Esc), &view),
            None,
            "Esc while browsing clears the filter"
        );
        assert_eq!(app.filter(), "");
        assert_eq!(app.selected_symbol(), Some("ETCUSDT"));
        app.handle_key(char_key('/'), &view);
        app.handle_key(char_key('x'), &view);
        app.handle_key(key(KeyCode::Esc), &view);
        assert_eq!(
            (app.filter(), app.is_filter_editing()),
            ("", false),
            "Esc while typing clears and stops"
        );
    }

    #[test]
    fn filter_that_drops_the_selection_moves_it() {
        let mut app = app();
        let view = view();
        app.focus_request(&view);
        app.handle_key(char_key('/'), &view);
        assert_eq!(
            app.handle_key(char_key('s'), &view),
            None,
            "every symbol contains an s (USDT)"
        );
        assert_eq!(
            app.handle_key(char_key('o'), &view),
            Some(focus("SOLUSDT", "15m"))
        );
        assert_eq!(app.focus_request(&view), None, "already reported");
        assert_eq!(app.selected_symbol(), Some("SOLUSDT"));
    }

    #[test]
    fn quit_keys_and_ctrl_c_while_typing() {
        let mut app = app();
        let view = view();
        assert_eq!(app.handle_key(char_key('q'), &view), Some(Intent::Quit));
        assert_eq!(app.handle_key(ctrl('c'), &view), Some(Intent::Quit));
        app.handle_key(char_key('/'), &view);
        assert_eq!(app.handle_key(char_key('q'), &view), None);
        assert_eq!(app.filter(), "q");
        assert_eq!(app.handle_key(ctrl('c'), &view), Some(Intent::Quit));
    }

    #[test]
    fn key_releases_are_ignored() {
        let mut app = app();
        let view = view();
        let release = KeyEvent::new_with_kind(KeyCode::Char('q'), KeyModifiers::NONE, KeyEventKind::Release);
        assert_eq!(app.handle_key(release, &view), None);
    }

    #[test]
    fn mode_keys_set_a_pending_mode_until_the_engine_applies_it() {
        let mut app = app();
        let mut view = view();
        assert_eq!(
            app.handle_key(char_key('m'), &view),
            Some(Intent::SetMode(StrategyMode::SelfLearning))
        );
        assert_eq!(app.pending_mode(), Some(StrategyMode::SelfLearning));
        // `m` cycles from the applied mode, not the pending one.
        assert_eq!(
            app.handle_key(char_key('m'), &view),
            Some(Intent::SetMode(StrategyMode::SelfLearning))
        );
        assert_eq!(
            app.handle_key(char_key('3'), &view),
            Some(Intent::SetMode(StrategyMode::Hybrid))
        );
        assert_eq!(app.pending_mode(), Some(StrategyMode::Hybrid));
        view.header.mode = StrategyMode::Hybrid;
        app.focus_request(&view);
        assert_eq!(app.pending_mode(), None, "cleared once applied");
        assert_eq!(
            app.handle_key(char_key('2'), &view),
            Some(Intent::SetMode(StrategyMode::SelfLearning))
        );
        assert_eq!(
            app.handle_key(char_key('3'), &view),
            Some(Intent::SetMode(StrategyMode::Hybrid))
        );
        assert_eq!(
            app.pending_mode(),
            None,
            "asking for the applied mode cancels the change in flight"
        );
        assert_eq!(
            app.handle_key(char_key('1'), &view),
            Some(Intent::SetMode(StrategyMode::Ict))
        );
        assert_eq!(
            app.handle_key(char_key('m'), &view),
            Some(Intent::SetMode(StrategyMode::Ict))
        );
    }

    #[test]
    fn timeframe_key_cycles_and_refocuses() {
        let mut app = app();
        let view = view();
        app.focus_request(&view);
        assert_eq!(app.handle_key(char_key('t'), &view), Some(focus("BTCUSDT", "1h")));
        assert_eq!(app.handle_key(char_key('t'), &view), Some(focus("BTCUSDT", "4h")));
        assert_eq!(
            app.handle_key(char_key('t'), &view),
            Some(focus("BTCUSDT", "15m"))
        );
        let mut from_view = App::new(Theme::default(), Vec::<String>::new());
        assert_eq!(
            from_view.focus_request(&view),
            Some(focus("BTCUSDT", "5m")),
            "no chart timeframes: the view's"
        );
        assert_eq!(
            from_view.handle_key(char_key('t'), &view),
            Some(focus("BTCUSDT", "1h"))
        );
    }

    #[test]
    fn help_is_modal_and_closes_with_question_mark_or_esc() {
        let mut app = app();
        let view = view();
        app.focus_request(&view);
        app.handle_key(char_key('?'), &view);
        assert!(app.is_help_visible());
        assert_eq!(app.handle_key(char_key('j'), &view), None);
        assert_eq!(app.handle_key(char_key('m'), &view), None);
        assert_eq!(app.selected_symbol(), Some("BTCUSDT"));
        app.handle_key(key(KeyCode::Esc), &view);
        assert!(!app.is_help_visible());
        app.handle_key(char_key('?'), &view);
        app.handle_key(char_key('?'), &view);
        assert!(!app.is_help_visible());
        app.handle_key(char_key('?'), &view);
        assert_eq!(
            app.handle_key(char_key('q'), &view),
            Some(Intent::Quit),
            "quit works over the help"
        );
    }

    #[test]
    fn funnel_key_toggles_the_funnel_and_is_blocked_by_the_help() {
        let mut app = app();
        let view = view();
        app.handle_key(char_key('f'), &view);
        assert!(app.is_funnel_visible());
        app.handle_key(char_key('f'), &view);
        assert!(!app.is_funnel_visible());
        app.handle_key(char_key('?'), &view);
        app.handle_key(char_key('f'), &view);
        assert!(!app.is_funnel_visible(), "the help is modal");
    }

    #[test]
    fn chart_key_toggles_the_chart() {
        let mut app = app();
        let view = view();
        app.handle_key(char_key('c'), &view);
        assert!(!app.is_chart_visible());
        app.handle_key(char_key('c'), &view);
        assert!(app.is_chart_visible());
    }

    fn rollback_models() -> crate::view::ModelsPanel {
        crate::view::ModelsPanel {
            models_dir: "models".to_owned(),
            models: vec![crate::view::ModelRow {
                version: "v2".to_owned(),
                champion: true,
                ..Default::default()
            }],
            evolver: None,
            learning: Some(crate::view::LearningView {
                rollback_to: Some("v1".to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn b_in_the_models_panel_asks_then_rolls_the_model_back() {
        let mut view = view();
        view.models = rollback_models();
        let mut app = app();
        app.focus_request(&view);
        // Not without the models panel shown.
        assert_eq!(app.handle_key(char_key('B'), &view), None);
        assert!(app.confirmation().is_none());
        app.handle_key(char_key('M'), &view);
        assert_eq!(app.handle_key(char_key('B'), &view), None);
        assert_eq!(
            app.confirmation(),
            Some(&Confirmation::RollbackModel {
                from: "v2".to_owned(),
                to: "v1".to_owned()
            })
        );
        assert_eq!(app.handle_key(char_key('n'), &view), None);
        assert!(app.confirmation().is_none());
        app.handle_key(char_key('B'), &view);
        assert_eq!(app.handle_key(char_key('y'), &view), Some(Intent::RollbackModel));
        assert!(app.confirmation().is_none());
        // Nothing to roll back to: no dialog.
        view.models.learning = Some(crate::view::LearningView::default());
        app.handle_key(char_key('B'), &view);
        assert!(app.confirmation().is_none());
    }

    #[test]
    fn every_browsing_binding_does_something() {
        // Each binding's keys, pressed on a fresh app one row down, change the state or return an intent.
        let mut view = view();
        // Two open positions, for the positions screen's keys.
        view.positions.rows = (1..=2)
            .map(|id| crate::view::PositionRow {
                id,
                symbol: "BTCUSDT".to_owned(),
                ..Default::default()
            })
            .collect();
        // A champion with a previous one, for the rollback key.
        view.models = rollback_models();
        for binding in keymap::KEYS
            .iter()
            .filter(|binding| binding.context == KeyContext::Browsing)
        {
            for key_def in binding.keys {
                let mut app = app();
                app.focus_request(&view);
                if binding.action == Action::ClosePosition {
                    app.handle_key(key(KeyCode::Tab), &view);
                }
                if binding.action == Action::RollbackModel {
                    app.handle_key(char_key('M'), &view);
                }
                app.handle_key(char_key('j'), &view);
                if binding.action == Action::CloseOrClearFilter {
                    app.handle_key(char_key('?'), &view);
                }
                let before = format!("{app:?}");
                let event = match key_def {
                    keymap::Key::Char(character) => char_key(*character),
                    keymap::Key::Ctrl(character) => ctrl(*character),
                    keymap::Key::Up => key(KeyCode::Up),
                    keymap::Key::Down => key(KeyCode::Down),
                    keymap::Key::PageUp => key(KeyCode::PageUp),
                    keymap::Key::PageDown => key(KeyCode::PageDown),
                    keymap::Key::Home => key(KeyCode::Home),
                    keymap::Key::End => key(KeyCode::End),
                    keymap::Key::Enter => key(KeyCode::Enter),
                    keymap::Key::Esc => key(KeyCode::Esc),
                    keymap::Key::Backspace => key(KeyCode::Backspace),
                    keymap::Key::Tab => key(KeyCode::Tab),
                };
                let intent = app.handle_key(event, &view);
                assert!(
                    intent.is_some() || format!("{app:?}") != before,
                    "{} ({:?}) did nothing",
                    key_def.label(),
                    binding.action
                );
            }
        }
    }

    #[test]
    fn scroll_keeps_the_selection_visible() {
        assert_eq!(keep_visible(0, 3, 8, 30), 0);
        assert_eq!(keep_visible(0, 8, 8, 30), 1);
        assert_eq!(keep_visible(10, 4, 8, 30), 4);
        assert_eq!(keep_visible(20, 29, 8, 30), 22);
        assert_eq!(
            keep_visible(20, 25, 8, 10),
            2,
            "the window never runs past the last row"
        );
        assert_eq!(keep_visible(5, 5, 0, 30), 0);
    }

    mod confirmation_model {
        use proptest::prelude::*;

        use super::*;
        use crate::widgets::safety::Confirmation;

        /// What the dialogs should be doing, tracked independently of the app.
        #[derive(Debug, Clone, PartialEq, Eq)]
        enum Model {
            Closed,
            Kill(String),
            Reset,
            Entry(PositionSide, String),
            Close(u64),
            Revert,
        }

        fn keys() -> impl Strategy<Value = Vec<KeyCode>> {
            let key = prop_oneof![
                Just(KeyCode::Char('K')),
                Just(KeyCode::Char('R')),
                Just(KeyCode::Char('U')),
                Just(KeyCode::Char('k')),
                Just(KeyCode::Char('i')),
                Just(KeyCode::Char('I')),
                Just(KeyCode::Char('l')),
                Just(KeyCode::Char('L')),
                Just(KeyCode::Char('S')),
                Just(KeyCode::Char('X')),
                Just(KeyCode::Char('y')),
                Just(KeyCode::Char('n')),
                Just(KeyCode::Char('q')),
                Just(KeyCode::Char('m')),
                Just(KeyCode::Char('j')),
                Just(KeyCode::Tab),
                Just(KeyCode::Enter),
                Just(KeyCode::Esc),
                Just(KeyCode::Backspace),
            ];
            prop::collection::vec(key, 0..60)
        }

        proptest! {
            /// The kill switch is sent exactly when KILL was typed and Enter pressed in its dialog, the
            /// breaker reset exactly on `y` in its dialog, and no other intent escapes an open dialog.
            #[test]
            fn intents_leave_the_dialogs_only_when_confirmed(codes in keys()) {
                let mut app = app();
                let view = view();
                let mut model = Model::Closed;
                let mut markets = true;
                for code in codes {
                    let intent = app.handle_key(key(code), &view);
                    // The row selected when the key was handled (the first key also selects the top row).
                    let selected = app.selected_symbol().map(str::to_owned);
                    let expected = match (&mut model, code) {
                        (Model::Closed, KeyCode::Char('K')) => {
                            model = Model::Kill(String::new());
                            None
                        }
                        (Model::Closed, KeyCode::Char('R')) => {
                            model = Model::Reset;
                            None
                        }
                        (Model::Closed, KeyCode::Char('U')) => {
                            model = Model::Revert;
                            None
                        }
                        (Model::Revert, KeyCode::Char('y')) => {
                            model = Model::Closed;
                            Some(Intent::RevertStrategy)
                        }
                        (Model::Closed, KeyCode::Tab) => {
                            markets = !markets;
                            None
                        }
                        (Model::Closed, KeyCode::Char(key @ ('L' | 'S'))) => {
                            // Only on the markets screen with a selected symbol.
                            if markets && let Some(symbol) = selected {
                                let side = if key == 'L' { PositionSide::Long } else { PositionSide::Short };
                                model = Model::Entry(side, symbol);
                            }
                            None
                        }
                        (Model::Closed, KeyCode::Char('q')) => Some(Intent::Quit),
                        (Model::Closed, KeyCode::Char('m')) => {
                            Some(Intent::SetMode(view.header.mode.next()))
                        }
                        (Model::Closed, KeyCode::Char('X')) => {
                            // Only on the positions screen with a selected position.
                            if !markets && let Some(id) = app.selected_position_id() {
                                model = Model::Close(id);
                            }
                            None
                        }
                        (Model::Close(id), KeyCode::Char('y')) => {
                            let intent = Intent::ClosePosition { id: *id };
                            model = Model::Closed;
                            Some(intent)
                        }
                        (Model::Reset | Model::Revert | Model::Entry(..) | Model::Close(_), KeyCode::Char('n') | KeyCode::Esc)
                        | (Model::Kill(_), KeyCode::Esc) => {
                            model = Model::Closed;
                            None
                        }
                        (Model::Kill(typed), KeyCode::Enter) => {
                            if typed.eq_ignore_ascii_case("KILL") {
                                model = Model::Closed;
                                Some(Intent::KillSwitch)
                            } else {
                                typed.clear();
                                None
                            }
                        }
                        (Model::Kill(typed), KeyCode::Backspace) => {
                            typed.pop();
                            None
                        }
                        (Model::Kill(typed), KeyCode::Char(character)) => {
                            if typed.chars().count() < MAX_CONFIRM_TYPED {
                                typed.push(character);
                            }
                            None
                        }
                        (Model::Reset, KeyCode::Char('y')) => {
                            model = Model::Closed;
                            Some(Intent::ResetBreaker)
                        }
                        (Model::Entry(side, symbol), KeyCode::Char('y')) => {
                            let intent = Intent::OpenPosition {
                                symbol: symbol.clone(),
                                side: *side,
                            };
                            model = Model::Closed;
                            Some(intent)
                        }
                        (Model::Closed | Model::Reset | Model::Revert | Model::Kill(_) | Model::Entry(..) | Model::Close(_), _) => {
                            None
                        }
                    };
                    // Moving the scanner selection may answer with a focus; that is not a dialog's business.
                    let intent = intent.filter(|intent| !matches!(intent, Intent::Focus { .. }));
                    prop_assert_eq!(intent, expected);
                    let shown = match app.confirmation() {
                        None => Model::Closed,
                        Some(Confirmation::KillSwitch { typed }) => Model::Kill(typed.clone()),
                        Some(Confirmation::ResetBreaker) => Model::Reset,
                        Some(Confirmation::ManualEntry { symbol, side }) => Model::Entry(*side, symbol.clone()),
                        Some(Confirmation::ClosePosition { id, .. }) => Model::Close(*id),
                        Some(Confirmation::RevertStrategy { .. }) => Model::Revert,
                        Some(Confirmation::RollbackModel { .. }) => {
                            prop_assert!(false, "no rollback target in this view");
                            Model::Closed
                        }
                    };
                    prop_assert_eq!(&shown, &model);
                }
            }
        }
    }
}
