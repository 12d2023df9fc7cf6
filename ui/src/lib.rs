//! `perpdesk-ui`: the ratatui front end of perpdesk.
//!
//! It owns the view model ([`view::View`]) and the operator's [`intent::Intent`]s, and draws the
//! screens. It knows nothing about trading logic: the engine side builds views and executes intents.
//!
//! The host's loop is: [`terminal::enter`] once; then on every new view call [`App::focus_request`]
//! (sending any intent it returns) and [`App::draw`]; on every key call [`App::handle_key`] and send
//! the intent it returns; [`terminal::restore`] on the way out.

pub mod app;
pub mod format;
pub mod intent;
pub mod keymap;
pub mod order;
pub mod terminal;
pub mod theme;
pub mod view;
pub mod widgets;

pub use app::App;
pub use intent::Intent;
pub use keymap::{KEYS, keymap_markdown};
/// Re-exported so the host drives the terminal with exactly the ratatui / crossterm this crate draws with.
pub use ratatui;
pub use theme::{Theme, ThemeError};
pub use view::View;
