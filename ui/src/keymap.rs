//! The keymap: one table that is at the same time what the keys do, the help overlay and the README.
//!
//! [`App::handle_key`](crate::App::handle_key) looks every key up in [`KEYS`]; the help overlay lists
//! [`KEYS`]; [`keymap_markdown`] renders [`KEYS`] for the README. A key cannot do something the help
//! does not mention, and the README cannot describe a key that does not exist.

use std::fmt::Write as _;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// A key as the operator presses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A printable character, with or without Shift (`G` arrives as Shift+G on some terminals).
    Char(char),
    /// Ctrl plus a letter.
    Ctrl(char),
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    Enter,
    Esc,
    Backspace,
    Tab,
}

impl Key {
    /// Whether the terminal event `event` is this key.
    pub fn matches(self, event: &KeyEvent) -> bool {
        let ctrl_or_alt = event
            .modifiers
            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
        match (self, event.code) {
            (Self::Char(wanted), KeyCode::Char(got)) => !ctrl_or_alt && wanted == got,
            (Self::Ctrl(wanted), KeyCode::Char(got)) => {
                event.modifiers.contains(KeyModifiers::CONTROL) && wanted.eq_ignore_ascii_case(&got)
            }
            (Self::Up, KeyCode::Up)
            | (Self::Down, KeyCode::Down)
            | (Self::PageUp, KeyCode::PageUp)
            | (Self::PageDown, KeyCode::PageDown)
            | (Self::Home, KeyCode::Home)
            | (Self::End, KeyCode::End)
            | (Self::Enter, KeyCode::Enter)
            | (Self::Esc, KeyCode::Esc)
            | (Self::Backspace, KeyCode::Backspace)
            | (Self::Tab, KeyCode::Tab) => true,
            _ => false,
        }
    }

    /// The key as the help overlay writes it: `j`, `Ctrl-C`, `PgDn`, `↑`.
    pub fn label(self) -> String {
        match self {
            Self::Char(character) => character.to_string(),
            Self::Ctrl(letter) => format!("Ctrl-{}", letter.to_ascii_uppercase()),
            Self::Up => "↑".to_owned(),
            Self::Down => "↓".to_owned(),
            Self::PageUp => "PgUp".to_owned(),
            Self::PageDown => "PgDn".to_owned(),
            Self::Home => "Home".to_owned(),
            Self::End => "End".to_owned(),
            Self::Enter => "Enter".to_owned(),
            Self::Esc => "Esc".to_owned(),
            Self::Backspace => "Backspace".to_owned(),
            Self::Tab => "Tab".to_owned(),
        }
    }
}

/// When a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyContext {
    /// Browsing the scanner or the positions (also while the help overlay is shown: the movement keys
    /// scroll it, and the keys that close it or quit work).
    Browsing,
    /// Typing a filter after `/`: printable characters go into the filter.
    Filtering,
    /// The kill-switch dialog is open: printable characters go into the confirmation word.
    ConfirmingKill,
    /// The breaker-reset dialog is open.
    ConfirmingReset,
    /// The manual-entry dialog is open.
    ConfirmingEntry,
    /// The close-position dialog is open.
    ConfirmingClose,
    /// The revert-strategy dialog is open.
    ConfirmingRevert,
    /// The model-rollback dialog is open.
    ConfirmingRollback,
}

impl KeyContext {
    /// Every context, in the order the help and the README list them.
    pub const ALL: [KeyContext; 8] = [
        Self::Browsing,
        Self::Filtering,
        Self::ConfirmingKill,
        Self::ConfirmingReset,
        Self::ConfirmingEntry,
        Self::ConfirmingClose,
        Self::ConfirmingRevert,
        Self::ConfirmingRollback,
    ];

    /// The heading of this context in the help overlay and the README.
    pub fn heading(self) -> &'static str {
        match self {
            Self::Browsing => "Browsing",
            Self::Filtering => "While typing a filter (after /; other keys type into it)",
            Self::ConfirmingKill => "Kill-switch dialog (after K; other keys type the word)",
            Self::ConfirmingReset => "Breaker-reset dialog (after R)",
            Self::ConfirmingEntry => "Manual-entry dialog (after L or S)",
            Self::ConfirmingClose => "Close-position dialog (after X)",
            Self::ConfirmingRevert => "Revert-strategy dialog (after U)",
            Self::ConfirmingRollback => "Model-rollback dialog (after B)",
        }
    }
}

/// What a binding does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    MoveDown,
    MoveUp,
    /// The binding's first key pages down, its second pages up.
    Page,
    Top,
    Bottom,
    SortNextColumn,
    SortReverse,
    StartFilter,
    /// Esc while browsing: close the help if shown, else clear an applied filter.
    CloseOrClearFilter,
    NextTimeframe,
    ToggleChart,
    ToggleFunnel,
    /// Show / hide the models panel.
    ToggleModels,
    CycleMode,
    /// The n-th key of the binding selects `StrategyMode::ALL[n]`.
    SelectMode,
    ToggleHelp,
    /// Switch between the markets screen (scanner, chart) and the positions screen.
    NextScreen,
    /// Open the kill-switch dialog.
    KillSwitch,
    /// Open the breaker-reset dialog.
    ResetBreaker,
    /// Open the manual-entry dialog for the selected symbol: the binding's first key long, its second
    /// short.
    ManualEntry,
    /// Open the close-position dialog for the selected position.
    ClosePosition,
    /// Open the dialog reverting the strategy evolver's last change.
    RevertStrategy,
    /// Open the model-rollback dialog (models panel shown, a previous champion exists).
    RollbackModel,
    Quit,
    ApplyFilter,
    CancelFilter,
    DeleteFilterChar,
    /// Enter in the kill-switch dialog: pull it if the word is typed.
    ConfirmKill,
    /// `y` in the breaker-reset dialog.
    ConfirmReset,
    /// `y` in the manual-entry dialog.
    ConfirmEntry,
    /// `y` in the close-position dialog.
    ConfirmClose,
    /// `y` in the revert-strategy dialog.
    ConfirmRevert,
    /// `y` in the model-rollback dialog.
    ConfirmRollback,
    /// Close a dialog without doing anything.
    CancelConfirm,
    DeleteConfirmChar,
}

/// One line of the keymap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyBinding {
    pub context: KeyContext,
    pub keys: &'static [Key],
    pub action: Action,
    pub description: &'static str,
}

impl KeyBinding {
    /// The keys as the help overlay writes them: `j / ↓`.
    pub fn keys_label(&self) -> String {
        self.keys
            .iter()
            .map(|key| key.label())
            .collect::<Vec<_>>()
            .join(" / ")
    }
}

const fn bind(
    context: KeyContext,
    keys: &'static [Key],
    action: Action,
    description: &'static str,
) -> KeyBinding {
    KeyBinding {
        context,
        keys,
        action,
        description,
    }
}

use KeyContext::{
    Browsing, ConfirmingClose, ConfirmingEntry, ConfirmingKill, ConfirmingReset, ConfirmingRevert,
    ConfirmingRollback, Filtering,
};

/// Every key the console understands, in the order the help shows them.
pub const KEYS: &[KeyBinding] = &[
    bind(
        Browsing,
        &[Key::Char('j'), Key::Down],
        Action::MoveDown,
        "select the next row",
    ),
    bind(
        Browsing,
        &[Key::Char('k'), Key::Up],
        Action::MoveUp,
        "select the previous row",
    ),
    bind(
        Browsing,
        &[Key::PageDown, Key::PageUp],
        Action::Page,
        "page down / up",
    ),
    bind(Browsing, &[Key::Char('g'), Key::Home], Action::Top, "first row"),
    bind(Browsing, &[Key::Char('G'), Key::End], Action::Bottom, "last row"),
    bind(
        Browsing,
        &[Key::Char('s')],
        Action::SortNextColumn,
        "sort by the next column",
    ),
    bind(
        Browsing,
        &[Key::Char('r')],
        Action::SortReverse,
        "reverse the sort order",
    ),
    bind(
        Browsing,
        &[Key::Char('/')],
        Action::StartFilter,
        "filter symbols by name",
    ),
    bind(
        Browsing,
        &[Key::Esc],
        Action::CloseOrClearFilter,
        "close help / clear the filter",
    ),
    bind(
        Browsing,
        &[Key::Char('t')],
        Action::NextTimeframe,
        "next chart timeframe",
    ),
    bind(
        Browsing,
        &[Key::Char('c')],
        Action::ToggleChart,
        "show / hide the chart",
    ),
    bind(
        Browsing,
        &[Key::Char('f')],
        Action::ToggleFunnel,
        "show / hide the signal funnel",
    ),
    bind(
        Browsing,
        &[Key::Char('M')],
        Action::ToggleModels,
        "show / hide the models panel",
    ),
    bind(
        Browsing,
        &[Key::Char('m')],
        Action::CycleMode,
        "next strategy mode",
    ),
    bind(
        Browsing,
        &[Key::Char('1'), Key::Char('2'), Key::Char('3')],
        Action::SelectMode,
        "mode ict / self_learning / hybrid",
    ),
    bind(
        Browsing,
        &[Key::Tab],
        Action::NextScreen,
        "switch screen: markets / positions",
    ),
    bind(
        Browsing,
        &[Key::Char('K')],
        Action::KillSwitch,
        "kill switch: close everything (asks first)",
    ),
    bind(
        Browsing,
        &[Key::Char('R')],
        Action::ResetBreaker,
        "reset the circuit breaker (asks first)",
    ),
    bind(
        Browsing,
        &[Key::Char('L'), Key::Char('S')],
        Action::ManualEntry,
        "markets: manual long / short on the selected row (asks first)",
    ),
    bind(
        Browsing,
        &[Key::Char('X')],
        Action::ClosePosition,
        "positions: close the selected position (asks first)",
    ),
    bind(
        Browsing,
        &[Key::Char('U')],
        Action::RevertStrategy,
        "revert the strategy evolver's last change (asks first)",
    ),
    bind(
        Browsing,
        &[Key::Char('B')],
        Action::RollbackModel,
        "models panel: roll the signal predictor back to the previous champion (asks first)",
    ),
    bind(
        Browsing,
        &[Key::Char('?')],
        Action::ToggleHelp,
        "show / hide this help",
    ),
    bind(Browsing, &[Key::Char('q'), Key::Ctrl('c')], Action::Quit, "quit"),
    bind(
        Filtering,
        &[Key::Enter],
        Action::ApplyFilter,
        "keep the filter, stop typing",
    ),
    bind(
        Filtering,
        &[Key::Esc],
        Action::CancelFilter,
        "clear the filter, stop typing",
    ),
    bind(
        Filtering,
        &[Key::Backspace],
        Action::DeleteFilterChar,
        "delete the last character",
    ),
    bind(Filtering, &[Key::Ctrl('c')], Action::Quit, "quit"),
    bind(
        ConfirmingKill,
        &[Key::Enter],
        Action::ConfirmKill,
        "pull the kill switch if KILL is typed",
    ),
    bind(ConfirmingKill, &[Key::Esc], Action::CancelConfirm, "cancel"),
    bind(
        ConfirmingKill,
        &[Key::Backspace],
        Action::DeleteConfirmChar,
        "delete the last character",
    ),
    bind(ConfirmingKill, &[Key::Ctrl('c')], Action::Quit, "quit"),
    bind(
        ConfirmingReset,
        &[Key::Char('y')],
        Action::ConfirmReset,
        "reset the breaker to NORMAL",
    ),
    bind(
        ConfirmingReset,
        &[Key::Char('n'), Key::Esc],
        Action::CancelConfirm,
        "keep the breaker as it is",
    ),
    bind(ConfirmingReset, &[Key::Ctrl('c')], Action::Quit, "quit"),
    bind(
        ConfirmingEntry,
        &[Key::Char('y')],
        Action::ConfirmEntry,
        "open the position",
    ),
    bind(
        ConfirmingEntry,
        &[Key::Char('n'), Key::Esc],
        Action::CancelConfirm,
        "do not open it",
    ),
    bind(ConfirmingEntry, &[Key::Ctrl('c')], Action::Quit, "quit"),
    bind(
        ConfirmingClose,
        &[Key::Char('y')],
        Action::ConfirmClose,
        "close it at the mark",
    ),
    bind(
        ConfirmingClose,
        &[Key::Char('n'), Key::Esc],
        Action::CancelConfirm,
        "keep it open",
    ),
    bind(ConfirmingClose, &[Key::Ctrl('c')], Action::Quit, "quit"),
    bind(
        ConfirmingRevert,
        &[Key::Char('y')],
        Action::ConfirmRevert,
        "go back to the previous parameter set",
    ),
    bind(
        ConfirmingRevert,
        &[Key::Char('n'), Key::Esc],
        Action::CancelConfirm,
        "keep the current set",
    ),
    bind(ConfirmingRevert, &[Key::Ctrl('c')], Action::Quit, "quit"),
    bind(
        ConfirmingRollback,
        &[Key::Char('y')],
        Action::ConfirmRollback,
        "roll back and hot-reload the previous champion",
    ),
    bind(
        ConfirmingRollback,
        &[Key::Char('n'), Key::Esc],
        Action::CancelConfirm,
        "keep the current champion",
    ),
    bind(ConfirmingRollback, &[Key::Ctrl('c')], Action::Quit, "quit"),
];

/// The binding of `event` in `context`, with the position of the matching key in the binding.
pub fn lookup(context: KeyContext, event: &KeyEvent) -> Option<(&'static KeyBinding, usize)> {
    KEYS.iter()
        .filter(|binding| binding.context == context)
        .find_map(|binding| {
            binding
                .keys
                .iter()
                .position(|key| key.matches(event))
                .map(|position| (binding, position))
        })
}

/// The keymap as Markdown tables, one per context, for the README.
pub fn keymap_markdown() -> String {
    let mut out = String::new();
    for context in KeyContext::ALL {
        let _ = writeln!(out, "**{}**\n\n| key | action |\n|---|---|", context.heading());
        for binding in KEYS.iter().filter(|binding| binding.context == context) {
            let keys: Vec<String> = binding
                .keys
                .iter()
                .map(|key| format!("`{}`", key.label()))
                .collect();
            let _ = writeln!(out, "| {} | {} |", keys.join(" "), binding.description);
        }
        out.push('\n');
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use ratatui::crossterm::event::KeyEventKind;

    use super::*;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new_with_kind(code, modifiers, KeyEventKind::Press)
    }

    #[test]
    fn no_key_is_bound_twice_in_one_context() {
        for (index, binding) in KEYS.iter().enumerate() {
            for other in &KEYS[index + 1..] {
                if other.context == binding.context {
                    for key in binding.keys {
                        assert!(!other.keys.contains(key), "{key:?} is bound twice");
                    }
                }
            }
        }
    }

    #[test]
    fn shift_letters_and_ctrl_letters_are_told_apart() {
        let shifted_g = press(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(
            lookup(Browsing, &shifted_g).map(|(binding, _)| binding.action),
            Some(Action::Bottom)
        );
        let ctrl_c = press(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(
            lookup(Browsing, &ctrl_c).map(|(binding, _)| binding.action),
            Some(Action::Quit)
        );
        let shifted_k = press(KeyCode::Char('K'), KeyModifiers::SHIFT);
        assert_eq!(
            lookup(Browsing, &shifted_k).map(|(binding, _)| binding.action),
            Some(Action::KillSwitch),
            "K (kill switch) is not k (up)"
        );
        let plain_c = press(KeyCode::Char('c'), KeyModifiers::NONE);
        assert_eq!(
            lookup(Browsing, &plain_c).map(|(binding, _)| binding.action),
            Some(Action::ToggleChart)
        );
        assert_eq!(lookup(Filtering, &plain_c), None);
        let three = press(KeyCode::Char('3'), KeyModifiers::NONE);
        assert_eq!(
            lookup(Browsing, &three).map(|(binding, at)| (binding.action, at)),
            Some((Action::SelectMode, 2))
        );
    }

    #[test]
    fn readme_keymap_snapshot() {
        // The README's key table is pasted from this snapshot.
        insta::assert_snapshot!("readme_keymap", keymap_markdown());
    }

    #[test]
    fn markdown_lists_every_binding() {
        let markdown = keymap_markdown();
        assert!(
            markdown.starts_with(
                "**Browsing**\n\n| key | action |\n|---|---|\n| `j` `↓` | select the next row |\n"
            )
        );
        assert!(markdown.contains("| `q` `Ctrl-C` | quit |\n"));
        assert!(markdown.ends_with("| `Ctrl-C` | quit |\n"));
        assert_eq!(
            markdown.lines().filter(|line| line.starts_with("| `")).count(),
            KEYS.len()
        );
    }
}
