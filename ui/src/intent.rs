//! Operator intents: what a key press asks for, independent of how the engine carries it out.
//!
//! The TUI turns key events into [`Intent`]s; `perpdesk::console` turns an intent into an engine
//! `Command`. Serde so that an attached TUI can send them over a socket.

use serde::{Deserialize, Serialize};

use crate::view::{PositionSide, StrategyMode};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Intent {
    /// Switch the strategy mode (the header confirms once the engine has applied it).
    SetMode(StrategyMode),
    /// Show candles of this symbol and timeframe in the detail pane.
    Focus { symbol: String, timeframe: String },
    /// Pull the kill switch: close every position, cancel every order, no new entries. Sent only after
    /// the operator confirmed it in the console.
    KillSwitch,
    /// Reset the circuit breaker to `Normal` before its cooldown ends. Sent only after the operator
    /// confirmed it in the console.
    ResetBreaker,
    /// Open a position on this symbol at the mark, long or short; the engine sizes it and sets its
    /// stop and target. Sent only after the operator confirmed it in the console.
    OpenPosition { symbol: String, side: PositionSide },
    /// Close this position at the mark (reason `manual`). Sent only after the operator confirmed it.
    ClosePosition { id: u64 },
    /// Revert the strategy evolver's last change of parameter set. Sent only after the operator
    /// confirmed it in the console.
    RevertStrategy,
    /// Return the signal predictor to the previous champion and hot-reload it. Sent only after the
    /// operator confirmed it.
    RollbackModel,
    /// Leave the console (the engine shuts down if it is in-process).
    Quit,
}
