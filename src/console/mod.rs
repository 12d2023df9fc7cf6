//! The console: the presenter between engine and UI, the TUI host loop, and the headless status line.

pub mod attach;
pub mod headless;
pub mod presenter;
pub mod trading_view;
pub mod tui;
