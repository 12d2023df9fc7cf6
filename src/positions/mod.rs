//! Positions: the virtual position book, the eleven lifecycle events, and the smart monitoring
//! scheduler.
//!
//! A signal that passed risk becomes a [`Position`] in the [`PositionBook`]. From then on the mark
//! price stream feeds the book, the [`scheduler`] decides when each position is checked (every 100 ms
//! to 5 s by its risk score), and every check evaluates the stops and targets against the whole price
//! range seen since the previous check, so no level crossed between two checks is missed. Everything
//! that happens to a position is a [`LifecycleEvent`]; the same code and the same events serve demo,
//! paper, live and replay.

pub mod book;
pub mod events;
pub mod position;
pub mod scheduler;

pub use self::{
    book::{BookConfig, BookTotals, MarkState, PositionBook},
    events::{CloseReason, EventKind, LifecycleEvent, PositionId, RiskLevel, RunMode},
    position::{Bands, Fees, NewPosition, Position},
    scheduler::{Lane, LaneStats, MonitorMs, Scheduler},
};

/// Errors of the book.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PositionsError {
    /// Recoverable: the position closed meanwhile (or never existed); nothing to do.
    #[error("no open position {0}")]
    UnknownPosition(PositionId),
}
