//! `perpdesk-ui`: the ratatui front end of perpdesk.
//!
//! It owns the view model ([`view::View`]) and the operator's [`intent::Intent`]s, and draws the
//! screens. It knows nothing about trading logic: the engine side builds views and executes intents.

pub mod intent;
pub mod view;
