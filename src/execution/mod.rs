//! Live execution: every position the engine opens with `TRADING_ENABLED=true` is mirrored by real
//! orders on the venue, and every close, breaker flatten and kill switch is carried out there.
//!
//! The engine task never awaits the venue. Its trading desk hands each `Created` / `Closed` lifecycle
//! event and the kill switch to an [`ExecutionLink`] (an unbounded channel send, so nothing blocks and
//! no close is ever dropped); the [`executor`] task carries them out through the connectivity layer
//! (`binance::orders`, `binance::signed`, `binance::user_stream`) and reports back as
//! [`ExecReport`]s, which arrive in the engine as ordinary events. For each position:
//!
//! * leverage and margin type (isolated, the margin the risk module's liquidation price assumes) are
//!   set for the symbol once and cached;
//! * the entry is a `MARKET` order; its fill (the REST answer, then the user stream) gives the
//!   position its real size and entry price;
//! * the stop and the target are placed on the venue as `STOP_MARKET` / `TAKE_PROFIT_MARKET` with
//!   `closePosition=true` and `workingType=MARK_PRICE`, so the position stays protected if the
//!   console dies;
//! * a close by the engine (strategy, expiry, breaker, manual, kill switch) is a `reduceOnly` `MARKET`
//!   exit, then the leftover protective orders are cancelled;
//! * the kill switch cancels every open order and closes every venue position with reduce-only
//!   market orders, then checks that nothing is left;
//! * when a position's trailing stop moves, the venue's stop follows: the new `STOP_MARKET` is placed
//!   first and the old one cancelled after, so the position is never without a stop on the venue.
//!   The engine side sends at most one move per position per monitor pass (the latest), and the
//!   executor skips a move that does not tighten the resting stop by at least one tick.
//!
//! After every successful reconciliation, until it has worked once, the executor loads the account's
//! leverage brackets (`GET /fapi/v1/leverageBracket`, every symbol in one request) and reports them;
//! the engine then sizes and levers with the venue's real tiers instead of the conservative default.
//! A failed load keeps the default (stricter than any real table) and is said in the gate's message;
//! it never holds the gate.
//!
//! Every exit carries `reduceOnly=true` or `closePosition=true` (RELIABILITY O4), so a race between
//! the venue's own stop and the engine's close can never open a position the other way. No entry is
//! sent before the reconciliation gate is open (start-up, and after every user-stream reconnect), and
//! a failed reconciliation leaves the state unknown, never flat.

pub mod executor;
#[cfg(test)]
mod tests;

use std::time::Instant;

use tokio::sync::mpsc;

pub use self::executor::{Executor, ExecutorSettings};
use crate::{
    domain::{Side, SymbolId},
    positions::{CloseReason, EventKind, LifecycleEvent, PositionId},
    risk::BracketTable,
};

/// Why the executor could not start or act. Start-up errors are unrecoverable for live trading (the
/// console says so and stays in the gate's "unknown" state); per-order errors are reported and the
/// task goes on.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot read the venue's exchange info: {0}")]
    ExchangeInfo(String),
    #[error("{0} is not a symbol the venue lists")]
    UnknownSymbol(String),
    #[error("a quantity or price ({0}) cannot be sent as a decimal")]
    BadNumber(f64),
    #[error(transparent)]
    Order(#[from] crate::binance::orders::OrderError),
}

/// What the engine asks the executor to do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExecCommand {
    /// Mirror a new virtual position: entry, then the protective orders.
    Open {
        position: PositionId,
        symbol: SymbolId,
        side: Side,
        qty: f64,
        /// The mark the engine opened at (rounding and filter checks).
        mark: f64,
        leverage: u16,
        stop_loss: f64,
        take_profit: f64,
    },
    /// The engine closed the position: reduce-only exit, then cancel the protective orders.
    Close {
        position: PositionId,
        reason: CloseReason,
    },
    /// Flatten everything on the venue: cancel every open order, close every position.
    KillSwitch,
    /// The position's trailing stop moved to `stop`: replace the venue's stop (new one first).
    MoveStop { position: PositionId, stop: f64 },
    /// A live position the journal restored after a restart: at the next reconciliation the executor
    /// takes over the venue position of `symbol` (one per symbol in one-way mode) and its resting
    /// `STOP_MARKET` / `TAKE_PROFIT_MARKET` orders, re-places a missing one, and reports
    /// [`ExecReport::AdoptedFlat`] when the venue no longer holds it.
    Adopt {
        position: PositionId,
        symbol: SymbolId,
        side: Side,
        qty: f64,
        stop_loss: f64,
        take_profit: f64,
    },
}

impl ExecCommand {
    /// The command a lifecycle event calls for: `Created` opens, `Closed` closes, `TrailingStopMoved`
    /// moves the venue's stop, the rest nothing.
    pub fn from_event(e: &LifecycleEvent) -> Option<Self> {
        match e.kind {
            EventKind::Created {
                side,
                qty,
                entry,
                leverage,
                take_profit,
                stop_loss,
                ..
            } => Some(Self::Open {
                position: e.position,
                symbol: e.symbol,
                side,
                qty,
                mark: entry,
                leverage,
                stop_loss,
                take_profit,
            }),
            EventKind::Closed { reason, .. } => Some(Self::Close {
                position: e.position,
                reason,
            }),
            EventKind::TrailingStopMoved { to, .. } => Some(Self::MoveStop {
                position: e.position,
                stop: to,
            }),
            _ => None,
        }
    }
}

/// The reconciliation gate as the engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateState {
    /// Not reconciled yet (start-up, or a user-stream reconnect): entries wait.
    Pending,
    Reconciled,
    /// A query failed: the venue's state is unknown (never assumed flat); entries wait.
    Unknown,
}

/// What the executor reports to the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecReport {
    /// The gate changed; `detail` says what the reconciliation found or why it failed.
    Gate { state: GateState, detail: String },
    /// A new listenKey is in use (its age is shown in the status bar).
    ListenKey,
    /// The entry filled (REST answer or user stream): the position's real size and price.
    EntryFilled {
        position: PositionId,
        qty: f64,
        avg_price: f64,
    },
    /// The entry was not placed (refused locally, by the gate, or by the venue): nothing is on the
    /// venue for this position.
    EntryFailed {
        position: PositionId,
        error: String,
        /// The venue refused the order (counts as an order reject for the breaker).
        venue_reject: bool,
    },
    /// The stop and target are resting on the venue.
    Protected { position: PositionId },
    /// The stop could not be placed: the venue position was closed again at once (reduce-only), so
    /// nothing unprotected stays open.
    ProtectionFailed { position: PositionId, error: String },
    /// The venue's own stop or target closed the position.
    VenueExit {
        position: PositionId,
        take_profit: bool,
        price: f64,
    },
    /// The engine's close was carried out: `qty` exited reduce-only (0 when the venue was already
    /// flat), leftover protective orders cancelled.
    Exited {
        position: PositionId,
        qty: f64,
        avg_price: f64,
    },
    /// The kill switch ran: what it closed and cancelled, and what is still left (0 when flat).
    Flattened {
        positions_closed: usize,
        orders_cancelled: usize,
        remaining: usize,
    },
    /// A restored position was found on the venue and is mirrored again: closes by the engine exit
    /// it reduce-only and cancel its protective orders like a fresh one. `qty` is the venue's size;
    /// `replaced` names the protective orders that were missing and were placed again.
    Adopted {
        position: PositionId,
        qty: f64,
        replaced: Vec<&'static str>,
    },
    /// A restored position has no venue position any more (its stop or target fired, it was
    /// liquidated or closed by hand while the console was down): the engine closes it. The venue's
    /// position endpoint keeps no exit price, so `mark` is the venue's current mark price of the
    /// symbol (`positionRisk`, else `premiumIndex`; 0 when neither answers) and is only the evidence
    /// for the close reason.
    AdoptedFlat {
        position: PositionId,
        mark: f64,
        detail: String,
    },
    /// The venue's stop of a position now rests at `stop` (a trailing-stop move was carried out).
    StopMoved { position: PositionId, stop: f64 },
    /// The venue's leverage brackets of the symbols the console knows: the engine sizes and levers
    /// with them from now on. `refused` names entries that failed validation (those keep the
    /// conservative default).
    Brackets {
        tables: Vec<(SymbolId, BracketTable)>,
        refused: Vec<String>,
    },
    /// The brackets could not be loaded: the conservative default stays in use (retried at the next
    /// reconciliation).
    BracketsUnavailable { error: String },
    /// Something the operator must see (a failed exit, a failed cancel).
    Problem(String),
}

/// The engine's end of the executor: commands out, the gate's state in. Held by the trading desk.
#[derive(Debug)]
pub struct ExecutionLink {
    tx: mpsc::UnboundedSender<ExecCommand>,
    gate: GateState,
    listen_key_since: Option<Instant>,
    /// Trailing-stop moves of the current batch of lifecycle events, latest per position; sent by
    /// [`Self::flush_moves`] (the debounce: one venue move per position per monitor pass).
    pending_moves: Vec<(PositionId, f64)>,
    /// Commands handed to the executor since start.
    pub sent: u64,
}

impl ExecutionLink {
    /// A link sending into `tx` (the executor's command channel), gate pending.
    pub fn new(tx: mpsc::UnboundedSender<ExecCommand>) -> Self {
        Self {
            tx,
            gate: GateState::Pending,
            listen_key_since: None,
            pending_moves: Vec::new(),
            sent: 0,
        }
    }

    /// Sends the command a lifecycle event calls for, if any. A trailing-stop move is held until
    /// [`Self::flush_moves`], replacing an earlier move of the same position; a close drops the held
    /// move of its position (the close cancels the stop anyway).
    pub fn mirror(&mut self, e: &LifecycleEvent) {
        match ExecCommand::from_event(e) {
            Some(ExecCommand::MoveStop { position, stop }) => {
                match self.pending_moves.iter_mut().find(|(p, _)| *p == position) {
                    Some(held) => held.1 = stop,
                    None => self.pending_moves.push((position, stop)),
                }
            }
            Some(cmd @ ExecCommand::Close { position, .. }) => {
                self.pending_moves.retain(|(p, _)| *p != position);
                self.send(cmd);
            }
            Some(cmd) => self.send(cmd),
            None => {}
        }
    }

    /// Sends the held trailing-stop moves (called once per batch of lifecycle events, that is once
    /// per monitor pass).
    pub fn flush_moves(&mut self) {
        for i in 0..self.pending_moves.len() {
            let (position, stop) = self.pending_moves[i];
            self.send(ExecCommand::MoveStop { position, stop });
        }
        self.pending_moves.clear();
    }

    /// Hands a position restored from the journal to the executor (see [`ExecCommand::Adopt`]).
    pub fn adopt(&mut self, cmd: ExecCommand) {
        self.send(cmd);
    }

    /// Asks the executor to flatten everything on the venue.
    pub fn kill_switch(&mut self) {
        self.send(ExecCommand::KillSwitch);
    }

    fn send(&mut self, cmd: ExecCommand) {
        self.sent += 1;
        if self.tx.send(cmd).is_err() {
            tracing::error!(
                ?cmd,
                "the executor task is gone: the command was not carried out on the venue"
            );
        }
    }

    /// New entries may be mirrored (the gate is open).
    pub fn entries_allowed(&self) -> bool {
        self.gate == GateState::Reconciled
    }

    pub fn gate(&self) -> GateState {
        self.gate
    }

    /// Age of the listenKey in use, once one exists.
    pub fn listen_key_age_ms(&self) -> Option<u64> {
        self.listen_key_since.map(|t| t.elapsed().as_millis() as u64)
    }

    /// Takes in a report's effect on the link (gate, listenKey); the rest is the engine's.
    pub fn on_report(&mut self, report: &ExecReport) {
        match report {
            ExecReport::Gate { state, .. } => self.gate = *state,
            ExecReport::ListenKey => self.listen_key_since = Some(Instant::now()),
            _ => {}
        }
    }
}
