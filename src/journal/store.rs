//! The journal file itself: opening (pragmas, migration), writing records in a transaction, and the
//! queries a restart and the export need. Only the writer thread writes through it in the running
//! engine; tests, the export and the restart path use it directly.

use std::{
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params, types::Type};
use rust_decimal::Decimal;

use super::{
    BreakerStateRecord, BreakerTier, EquitySnapshot, Execution, FillRecord, JournalError, JournalRecord,
    LifecycleEventRecord, LifecycleKind, MigrationReport, Millis, MonitorState, OrderIntent, OrderRecord,
    OrderSide, OrderState, PositionRecord, PositionStatus, SignalRecord, StrategyChangeRecord, TrailingStop,
    parse_side,
    schema::{self, FailPoint},
    side_str,
};

/// How long a connection waits for a lock held by another before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// An open journal file (one `SQLite` connection).
#[derive(Debug)]
pub struct Journal {
    conn: Connection,
    path: PathBuf,
}

/// What a restart reads back to resume where the previous process stopped.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RestoredState {
    /// Every position still open, in its last journalled state, oldest first.
    pub open_positions: Vec<PositionRecord>,
    /// The breaker's last state (`None` on a fresh journal: start at Normal).
    pub breaker: Option<BreakerStateRecord>,
    /// The last equity snapshot.
    pub last_equity: Option<EquitySnapshot>,
    /// Orders whose outcome at the venue is unknown: resolve each by its client order id before trading.
    pub submitting_orders: Vec<OrderRecord>,
    /// The largest numeric `position_id` ever journalled (open or closed): a restarted book numbers its
    /// new positions after it, so a new position never overwrites an old row.
    pub max_position_number: u64,
    /// Realised `PnL` of every closed position, summed: the paper account's balance is its starting
    /// capital plus this.
    pub closed_realised_pnl: Decimal,
    /// Per symbol, the bar time of the newest signal journalled: a signal already acted upon before the
    /// restart is not acted upon again.
    pub last_signal_ms: Vec<(String, Millis)>,
}

fn sql(operation: &'static str) -> impl Fn(rusqlite::Error) -> JournalError {
    move |source| JournalError::Sqlite { operation, source }
}

impl Journal {
    /// Opens (creating if needed) the journal at `path` and migrates it to the latest schema, backing up
    /// an existing file first.
    pub fn open(path: &Path) -> Result<(Self, MigrationReport), JournalError> {
        Self::open_at_version(path, schema::LATEST, None)
    }

    /// [`Journal::open`] stopping at schema `target`, optionally failing mid-migration: how the
    /// migration tests build old files and inject failures.
    #[doc(hidden)]
    pub fn open_at_version(
        path: &Path,
        target: i64,
        fail: Option<FailPoint>,
    ) -> Result<(Self, MigrationReport), JournalError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| JournalError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let open_err = |source| JournalError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(JournalError::NoWal {
                path: path.to_path_buf(),
                mode,
            });
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        let report = schema::migrate(&mut conn, path, target, fail)?;
        Ok((
            Self {
                conn,
                path: path.to_path_buf(),
            },
            report,
        ))
    }

    /// Opens an existing journal for reading only (the export): never creates, never migrates; a file at
    /// another schema version is refused with what to do.
    pub fn open_read_only(path: &Path) -> Result<Self, JournalError> {
        if !path.exists() {
            return Err(JournalError::Missing {
                path: path.to_path_buf(),
            });
        }
        let open_err = |source| JournalError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        let found = schema::user_version(&conn)?;
        if found != schema::LATEST {
            let path = path.to_path_buf();
            let latest = schema::LATEST;
            return Err(if found > latest {
                JournalError::NewerSchema { path, found, latest }
            } else {
                JournalError::OlderSchema { path, found, latest }
            });
        }
        Ok(Self {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying connection, for read queries the journal has no method for (tests, the export).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Schema version of the open file.
    pub fn schema_version(&self) -> Result<i64, JournalError> {
        schema::user_version(&self.conn)
    }

    /// Writes one record in its own transaction (committed and durable on return).
    pub fn write(&mut self, record: &JournalRecord) -> Result<(), JournalError> {
        super::validate(record)?;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql("beginning a transaction"))?;
        insert(&tx, record)?;
        tx.commit().map_err(sql("committing"))
    }

    /// Writes `records` in one transaction: all of them or none. The writer thread's batch.
    pub(crate) fn write_all<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a JournalRecord>,
    ) -> Result<(), JournalError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql("beginning a transaction"))?;
        for record in records {
            insert(&tx, record)?;
        }
        tx.commit().map_err(sql("committing"))
    }

    /// `PRAGMA integrity_check`: `Ok` when `SQLite` reports `ok`, else the report (up to 20 problems).
    pub fn integrity_check(&self) -> Result<(), JournalError> {
        let mut stmt = self
            .conn
            .prepare("PRAGMA integrity_check(20)")
            .map_err(sql("integrity check"))?;
        let lines: Vec<String> = stmt
            .query_map([], |row| row.get(0))
            .map_err(sql("integrity check"))?
            .collect::<Result<_, _>>()
            .map_err(sql("integrity check"))?;
        if lines.len() == 1 && lines[0] == "ok" {
            Ok(())
        } else {
            Err(JournalError::Integrity {
                path: self.path.clone(),
                report: lines.join("; "),
            })
        }
    }

    /// Everything a restart needs, read in one transaction so the parts agree with each other.
    pub fn restore(&mut self) -> Result<RestoredState, JournalError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)
            .map_err(sql("beginning a read"))?;
        let state = RestoredState {
            open_positions: query_positions(&tx, Some(PositionStatus::Open))?,
            breaker: last_breaker(&tx)?,
            last_equity: last_equity(&tx)?,
            submitting_orders: query_orders(&tx, OrderState::Submitting)?,
            max_position_number: max_position_number(&tx)?,
            closed_realised_pnl: closed_realised_pnl(&tx)?,
            last_signal_ms: last_signal_ms(&tx)?,
        };
        tx.commit().map_err(sql("ending a read"))?;
        Ok(state)
    }

    /// Open positions in their last state, oldest first.
    pub fn open_positions(&self) -> Result<Vec<PositionRecord>, JournalError> {
        query_positions(&self.conn, Some(PositionStatus::Open))
    }

    /// Every position, open and closed, oldest first.
    pub fn positions(&self) -> Result<Vec<PositionRecord>, JournalError> {
        query_positions(&self.conn, None)
    }

    /// One position's last state.
    pub fn position(&self, position_id: &str) -> Result<Option<PositionRecord>, JournalError> {
        self.conn
            .query_row(
                &format!("{POSITION_SELECT} WHERE position_id = ?1"),
                [position_id],
                position_from_row,
            )
            .optional()
            .map_err(sql("reading a position"))
    }

    /// Orders still `SUBMITTING` (sent or about to be, outcome unknown), oldest first: the input of the
    /// restart resolver, which queries each by `origClientOrderId` before anything is resent.
    pub fn submitting_orders(&self) -> Result<Vec<OrderRecord>, JournalError> {
        query_orders(&self.conn, OrderState::Submitting)
    }

    /// One order by client order id.
    pub fn order(&self, client_order_id: &str) -> Result<Option<OrderRecord>, JournalError> {
        self.conn
            .query_row(
                &format!("{ORDER_SELECT} WHERE client_order_id = ?1"),
                [client_order_id],
                order_from_row,
            )
            .optional()
            .map_err(sql("reading an order"))
    }

    /// The breaker's last journalled state.
    pub fn last_breaker_state(&self) -> Result<Option<BreakerStateRecord>, JournalError> {
        last_breaker(&self.conn)
    }

    /// The strategy evolver's journalled changes, oldest first.
    pub fn strategy_changes(&self) -> Result<Vec<StrategyChangeRecord>, JournalError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT at_ms, from_set, to_set, reason, details FROM strategy_changes ORDER BY id",
            )
            .map_err(sql("reading strategy changes"))?;
        stmt.query_map([], |row| {
            Ok(StrategyChangeRecord {
                at_ms: row.get(0)?,
                from_set: row.get(1)?,
                to_set: row.get(2)?,
                reason: row.get(3)?,
                details: json_value(row, 4, "strategy change details")?,
            })
        })
        .map_err(sql("reading strategy changes"))?
        .collect::<Result<_, _>>()
        .map_err(sql("reading strategy changes"))
    }

    /// The last equity snapshot.
    pub fn last_equity(&self) -> Result<Option<EquitySnapshot>, JournalError> {
        last_equity(&self.conn)
    }

    /// Lifecycle events with id greater than `after_id`, oldest first, at most `limit`; each with its id.
    pub fn events_after(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<(i64, LifecycleEventRecord)>, JournalError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, at_ms, position_id, kind, payload FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(sql("reading events"))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        stmt.query_map(params![after_id, limit], |row| {
            Ok((row.get(0)?, event_from_row(row, 1)?))
        })
        .map_err(sql("reading events"))?
        .collect::<Result<_, _>>()
        .map_err(sql("reading events"))
    }

    /// A position's lifecycle events, oldest first.
    pub fn events_for(&self, position_id: &str) -> Result<Vec<LifecycleEventRecord>, JournalError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT at_ms, position_id, kind, payload FROM events WHERE position_id = ?1 ORDER BY id",
            )
            .map_err(sql("reading events"))?;
        stmt.query_map([position_id], |row| event_from_row(row, 0))
            .map_err(sql("reading events"))?
            .collect::<Result<_, _>>()
            .map_err(sql("reading events"))
    }

    /// Signals, oldest first.
    pub fn signals(&self) -> Result<Vec<SignalRecord>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT at_ms, symbol, side, mode, entry, stop, take_profit, quality, outcome, features, \
                 rule_hits, model_version FROM signals ORDER BY id",
            )
            .map_err(sql("reading signals"))?;
        stmt.query_map([], signal_from_row)
            .map_err(sql("reading signals"))?
            .collect::<Result<_, _>>()
            .map_err(sql("reading signals"))
    }

    /// Fills, oldest first.
    pub fn fills(&self) -> Result<Vec<FillRecord>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT symbol, trade_id, client_order_id, side, price, qty, fee, fee_asset, realised_pnl, \
                 maker, at_ms FROM fills ORDER BY id",
            )
            .map_err(sql("reading fills"))?;
        stmt.query_map([], fill_from_row)
            .map_err(sql("reading fills"))?
            .collect::<Result<_, _>>()
            .map_err(sql("reading fills"))
    }
}

// ---------------------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------------------

fn json<T: serde::Serialize>(what: &'static str, value: &T) -> Result<String, JournalError> {
    serde_json::to_string(value).map_err(|source| JournalError::Json { what, source })
}

fn dec(value: Option<&Decimal>) -> Option<String> {
    value.map(ToString::to_string)
}

/// Inserts one record on `conn` (inside the caller's transaction).
pub(crate) fn insert(conn: &Connection, record: &JournalRecord) -> Result<(), JournalError> {
    match record {
        JournalRecord::Signal(s) => {
            conn.prepare_cached(
                "INSERT INTO signals (at_ms, symbol, side, mode, entry, stop, take_profit, quality, outcome, \
                 features, rule_hits, model_version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    s.at_ms,
                    s.symbol,
                    side_str(s.side),
                    s.mode,
                    s.entry.to_string(),
                    s.stop.to_string(),
                    s.take_profit.to_string(),
                    s.quality,
                    s.outcome,
                    json("signal features", &s.features).map_err(to_sql_err)?,
                    json("signal rule hits", &s.rule_hits).map_err(to_sql_err)?,
                    s.model_version,
                ])
            })
            .map_err(sql("writing a signal"))?;
        }
        JournalRecord::Position(p) => {
            let trailing = p
                .trailing
                .as_ref()
                .map(|t| json("trailing stop", t))
                .transpose()?;
            let monitor = p.monitor.as_ref().map(|m| json("monitor state", m)).transpose()?;
            conn.prepare_cached(
                "INSERT INTO positions (position_id, revision, execution, symbol, side, qty, entry_price, \
                 leverage, take_profit, stop_loss, trailing, expires_at_ms, fees_paid, funding_paid, \
                 realised_pnl, strategy, mode, feature_slot, opened_at_ms, last_mark_price, last_funding_ms, \
                 status, closed_at_ms, exit_price, close_reason, updated_at_ms, monitor) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, \
                 ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27) \
                 ON CONFLICT (position_id) DO UPDATE SET revision = excluded.revision, \
                 execution = excluded.execution, symbol = excluded.symbol, side = excluded.side, \
                 qty = excluded.qty, entry_price = excluded.entry_price, leverage = excluded.leverage, \
                 take_profit = excluded.take_profit, stop_loss = excluded.stop_loss, \
                 trailing = excluded.trailing, expires_at_ms = excluded.expires_at_ms, \
                 fees_paid = excluded.fees_paid, funding_paid = excluded.funding_paid, \
                 realised_pnl = excluded.realised_pnl, strategy = excluded.strategy, mode = excluded.mode, \
                 feature_slot = excluded.feature_slot, opened_at_ms = excluded.opened_at_ms, \
                 last_mark_price = excluded.last_mark_price, last_funding_ms = excluded.last_funding_ms, \
                 status = excluded.status, closed_at_ms = excluded.closed_at_ms, \
                 exit_price = excluded.exit_price, close_reason = excluded.close_reason, \
                 updated_at_ms = excluded.updated_at_ms, monitor = excluded.monitor \
                 WHERE excluded.revision >= positions.revision",
            )
            .and_then(|mut st| {
                st.execute(params![
                    p.position_id,
                    p.revision,
                    p.execution.as_str(),
                    p.symbol,
                    side_str(p.side),
                    p.qty.to_string(),
                    p.entry_price.to_string(),
                    p.leverage,
                    dec(p.take_profit.as_ref()),
                    dec(p.stop_loss.as_ref()),
                    trailing,
                    p.expires_at_ms,
                    p.fees_paid.to_string(),
                    p.funding_paid.to_string(),
                    p.realised_pnl.to_string(),
                    p.strategy,
                    p.mode,
                    p.feature_slot,
                    p.opened_at_ms,
                    dec(p.last_mark_price.as_ref()),
                    p.last_funding_ms,
                    p.status.as_str(),
                    p.closed_at_ms,
                    dec(p.exit_price.as_ref()),
                    p.close_reason,
                    p.updated_at_ms,
                    monitor,
                ])
            })
            .map_err(sql("writing a position"))?;
        }
        JournalRecord::Event(e) => {
            let payload = json("event payload", &e.payload)?;
            conn.prepare_cached(
                "INSERT INTO events (at_ms, position_id, kind, payload) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut st| st.execute(params![e.at_ms, e.position_id, e.kind.as_str(), payload]))
            .map_err(sql("writing an event"))?;
        }
        JournalRecord::OrderIntent(o) => {
            let result = conn
                .prepare_cached(
                    "INSERT INTO orders (client_order_id, position_id, symbol, side, order_type, qty, price, \
                     stop_price, reduce_only, close_position, state, venue_order_id, reason, created_at_ms, \
                     updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'SUBMITTING', NULL, NULL, \
                     ?11, ?11)",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        o.client_order_id,
                        o.position_id,
                        o.symbol,
                        o.side.as_str(),
                        o.order_type,
                        dec(o.qty.as_ref()),
                        dec(o.price.as_ref()),
                        dec(o.stop_price.as_ref()),
                        o.reduce_only,
                        o.close_position,
                        o.created_at_ms,
                    ])
                });
            match result {
                Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
                    return Err(JournalError::DuplicateClientOrderId {
                        id: o.client_order_id.clone(),
                    });
                }
                other => {
                    other.map_err(sql("writing an order intent"))?;
                }
            }
        }
        JournalRecord::OrderUpdate(u) => {
            let changed = conn
                .prepare_cached(
                    "UPDATE orders SET state = ?2, venue_order_id = COALESCE(?3, venue_order_id), \
                     reason = COALESCE(?4, reason), updated_at_ms = ?5 WHERE client_order_id = ?1",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        u.client_order_id,
                        u.state.as_str(),
                        u.venue_order_id,
                        u.reason,
                        u.at_ms
                    ])
                })
                .map_err(sql("writing an order update"))?;
            if changed == 0 {
                return Err(JournalError::UnknownOrder {
                    id: u.client_order_id.clone(),
                });
            }
        }
        JournalRecord::Fill(f) => {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO fills (symbol, trade_id, client_order_id, side, price, qty, fee, \
                 fee_asset, realised_pnl, maker, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    f.symbol,
                    f.trade_id,
                    f.client_order_id,
                    f.side.as_str(),
                    f.price.to_string(),
                    f.qty.to_string(),
                    f.fee.to_string(),
                    f.fee_asset,
                    f.realised_pnl.to_string(),
                    f.maker,
                    f.at_ms,
                ])
            })
            .map_err(sql("writing a fill"))?;
        }
        JournalRecord::Equity(q) => {
            conn.prepare_cached(
                "INSERT INTO equity (at_ms, execution, equity, balance, unrealised_pnl, open_positions) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    q.at_ms,
                    q.execution.as_str(),
                    q.equity.to_string(),
                    q.balance.to_string(),
                    q.unrealised_pnl.to_string(),
                    q.open_positions,
                ])
            })
            .map_err(sql("writing an equity snapshot"))?;
        }
        JournalRecord::Breaker(b) => {
            let details = json("breaker details", &b.details)?;
            conn.prepare_cached(
                "INSERT INTO breaker_state (at_ms, tier, reason, since_ms, cooldown_until_ms, peak_equity, \
                 day_start_equity, consecutive_losses, details) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    b.at_ms,
                    b.tier.name(),
                    b.reason,
                    b.since_ms,
                    b.cooldown_until_ms,
                    b.peak_equity.to_string(),
                    b.day_start_equity.to_string(),
                    b.consecutive_losses,
                    details,
                ])
            })
            .map_err(sql("writing the breaker state"))?;
        }
        JournalRecord::StrategyChange(c) => {
            let details = json("strategy change details", &c.details)?;
            conn.prepare_cached(
                "INSERT INTO strategy_changes (at_ms, from_set, to_set, reason, details) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut st| st.execute(params![c.at_ms, c.from_set, c.to_set, c.reason, details]))
            .map_err(sql("writing a strategy change"))?;
        }
    }
    Ok(())
}

fn to_sql_err(e: JournalError) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

// ---------------------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------------------

/// A stored text that does not decode: the file was edited by hand or written by a broken build.
#[derive(Debug, thiserror::Error)]
#[error("{value:?} is not a valid {what}")]
struct BadValue {
    what: &'static str,
    value: String,
}

fn bad(idx: usize, what: &'static str, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        idx,
        Type::Text,
        Box::new(BadValue {
            what,
            value: value.chars().take(80).collect(),
        }),
    )
}

fn text_as<T>(
    row: &Row<'_>,
    idx: usize,
    what: &'static str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    parse(&text).ok_or_else(|| bad(idx, what, &text))
}

fn decimal(row: &Row<'_>, idx: usize) -> rusqlite::Result<Decimal> {
    text_as(row, idx, "decimal", |t| Decimal::from_str(t).ok())
}

fn opt_decimal(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<Decimal>> {
    let text: Option<String> = row.get(idx)?;
    text.map(|t| Decimal::from_str(&t).map_err(|_| bad(idx, "decimal", &t)))
        .transpose()
}

fn json_value(row: &Row<'_>, idx: usize, what: &'static str) -> rusqlite::Result<serde_json::Value> {
    text_as(row, idx, what, |t| serde_json::from_str(t).ok())
}

const POSITION_SELECT: &str = "SELECT position_id, revision, execution, symbol, side, qty, entry_price, leverage, \
     take_profit, stop_loss, trailing, expires_at_ms, fees_paid, funding_paid, realised_pnl, strategy, mode, \
     feature_slot, opened_at_ms, last_mark_price, last_funding_ms, status, closed_at_ms, exit_price, \
     close_reason, updated_at_ms, monitor FROM positions";

fn position_from_row(row: &Row<'_>) -> rusqlite::Result<PositionRecord> {
    let trailing: Option<String> = row.get(10)?;
    let monitor: Option<String> = row.get(26)?;
    Ok(PositionRecord {
        position_id: row.get(0)?,
        revision: row.get(1)?,
        execution: text_as(row, 2, "execution", Execution::parse)?,
        symbol: row.get(3)?,
        side: text_as(row, 4, "side", parse_side)?,
        qty: decimal(row, 5)?,
        entry_price: decimal(row, 6)?,
        leverage: row.get(7)?,
        take_profit: opt_decimal(row, 8)?,
        stop_loss: opt_decimal(row, 9)?,
        trailing: trailing
            .map(|t| serde_json::from_str::<TrailingStop>(&t).map_err(|_| bad(10, "trailing stop", &t)))
            .transpose()?,
        expires_at_ms: row.get(11)?,
        fees_paid: decimal(row, 12)?,
        funding_paid: decimal(row, 13)?,
        realised_pnl: decimal(row, 14)?,
        strategy: row.get(15)?,
        mode: row.get(16)?,
        feature_slot: row.get(17)?,
        opened_at_ms: row.get(18)?,
        last_mark_price: opt_decimal(row, 19)?,
        last_funding_ms: row.get(20)?,
        status: text_as(row, 21, "position status", PositionStatus::parse)?,
        closed_at_ms: row.get(22)?,
        exit_price: opt_decimal(row, 23)?,
        close_reason: row.get(24)?,
        updated_at_ms: row.get(25)?,
        monitor: monitor
            .map(|m| serde_json::from_str::<MonitorState>(&m).map_err(|_| bad(26, "monitor state", &m)))
            .transpose()?,
    })
}

fn query_positions(
    conn: &Connection,
    status: Option<PositionStatus>,
) -> Result<Vec<PositionRecord>, JournalError> {
    let (query, status) = match status {
        Some(s) => (
            format!("{POSITION_SELECT} WHERE status = ?1 ORDER BY opened_at_ms, position_id"),
            Some(s.as_str()),
        ),
        None => (
            format!("{POSITION_SELECT} WHERE ?1 IS NULL ORDER BY opened_at_ms, position_id"),
            None,
        ),
    };
    let mut stmt = conn.prepare_cached(&query).map_err(sql("reading positions"))?;
    stmt.query_map([status], position_from_row)
        .map_err(sql("reading positions"))?
        .collect::<Result<_, _>>()
        .map_err(sql("reading positions"))
}

fn event_from_row(row: &Row<'_>, first: usize) -> rusqlite::Result<LifecycleEventRecord> {
    Ok(LifecycleEventRecord {
        at_ms: row.get(first)?,
        position_id: row.get(first + 1)?,
        kind: text_as(row, first + 2, "lifecycle event kind", LifecycleKind::parse)?,
        payload: json_value(row, first + 3, "event payload")?,
    })
}

const ORDER_SELECT: &str = "SELECT client_order_id, position_id, symbol, side, order_type, qty, price, stop_price, \
     reduce_only, close_position, created_at_ms, state, venue_order_id, reason, updated_at_ms FROM orders";

fn order_from_row(row: &Row<'_>) -> rusqlite::Result<OrderRecord> {
    Ok(OrderRecord {
        intent: OrderIntent {
            client_order_id: row.get(0)?,
            position_id: row.get(1)?,
            symbol: row.get(2)?,
            side: text_as(row, 3, "order side", OrderSide::parse)?,
            order_type: row.get(4)?,
            qty: opt_decimal(row, 5)?,
            price: opt_decimal(row, 6)?,
            stop_price: opt_decimal(row, 7)?,
            reduce_only: row.get(8)?,
            close_position: row.get(9)?,
            created_at_ms: row.get(10)?,
        },
        state: text_as(row, 11, "order state", OrderState::parse)?,
        venue_order_id: row.get(12)?,
        reason: row.get(13)?,
        updated_at_ms: row.get(14)?,
    })
}

fn query_orders(conn: &Connection, state: OrderState) -> Result<Vec<OrderRecord>, JournalError> {
    let query = format!("{ORDER_SELECT} WHERE state = ?1 ORDER BY created_at_ms, client_order_id");
    let mut stmt = conn.prepare_cached(&query).map_err(sql("reading orders"))?;
    stmt.query_map([state.as_str()], order_from_row)
        .map_err(sql("reading orders"))?
        .collect::<Result<_, _>>()
        .map_err(sql("reading orders"))
}

fn last_breaker(conn: &Connection) -> Result<Option<BreakerStateRecord>, JournalError> {
    conn.query_row(
        "SELECT at_ms, tier, reason, since_ms, cooldown_until_ms, peak_equity, day_start_equity, \
         consecutive_losses, details FROM breaker_state ORDER BY id DESC LIMIT 1",
        [],
        |row| {
            Ok(BreakerStateRecord {
                at_ms: row.get(0)?,
                tier: text_as(row, 1, "breaker tier", BreakerTier::parse)?,
                reason: row.get(2)?,
                since_ms: row.get(3)?,
                cooldown_until_ms: row.get(4)?,
                peak_equity: decimal(row, 5)?,
                day_start_equity: decimal(row, 6)?,
                consecutive_losses: row.get(7)?,
                details: json_value(row, 8, "breaker details")?,
            })
        },
    )
    .optional()
    .map_err(sql("reading the breaker state"))
}

fn max_position_number(conn: &Connection) -> Result<u64, JournalError> {
    // Ids other writers gave (not all digits) are skipped; they cannot collide with the book's numbers.
    let max: Option<i64> = conn
        .query_row(
            "SELECT MAX(CAST(position_id AS INTEGER)) FROM positions \
             WHERE position_id <> '' AND position_id NOT GLOB '*[^0-9]*'",
            [],
            |row| row.get(0),
        )
        .map_err(sql("reading the largest position id"))?;
    Ok(max.map_or(0, |m| u64::try_from(m).unwrap_or(0)))
}

fn closed_realised_pnl(conn: &Connection) -> Result<Decimal, JournalError> {
    let mut st = conn
        .prepare_cached("SELECT realised_pnl FROM positions WHERE status = 'closed'")
        .map_err(sql("reading closed positions"))?;
    let rows = st
        .query_map([], |row| decimal(row, 0))
        .map_err(sql("reading closed positions"))?;
    let mut sum = Decimal::ZERO;
    for pnl in rows {
        sum += pnl.map_err(sql("reading closed positions"))?;
    }
    Ok(sum)
}

fn last_signal_ms(conn: &Connection) -> Result<Vec<(String, Millis)>, JournalError> {
    let mut st = conn
        .prepare_cached("SELECT symbol, MAX(at_ms) FROM signals GROUP BY symbol ORDER BY symbol")
        .map_err(sql("reading signals"))?;
    let rows = st
        .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, Millis>(1)?)))
        .map_err(sql("reading signals"))?;
    rows.collect::<Result<_, _>>().map_err(sql("reading signals"))
}

fn last_equity(conn: &Connection) -> Result<Option<EquitySnapshot>, JournalError> {
    conn.query_row(
        "SELECT at_ms, execution, equity, balance, unrealised_pnl, open_positions FROM equity \
         ORDER BY id DESC LIMIT 1",
        [],
        |row| {
            Ok(EquitySnapshot {
                at_ms: row.get(0)?,
                execution: text_as(row, 1, "execution", Execution::parse)?,
                equity: decimal(row, 2)?,
                balance: decimal(row, 3)?,
                unrealised_pnl: decimal(row, 4)?,
                open_positions: row.get(5)?,
            })
        },
    )
    .optional()
    .map_err(sql("reading the last equity"))
}

fn signal_from_row(row: &Row<'_>) -> rusqlite::Result<SignalRecord> {
    Ok(SignalRecord {
        at_ms: row.get(0)?,
        symbol: row.get(1)?,
        side: text_as(row, 2, "side", parse_side)?,
        mode: row.get(3)?,
        entry: decimal(row, 4)?,
        stop: decimal(row, 5)?,
        take_profit: decimal(row, 6)?,
        quality: row.get(7)?,
        outcome: row.get(8)?,
        features: text_as(row, 9, "feature vector", |t| serde_json::from_str(t).ok())?,
        rule_hits: json_value(row, 10, "rule hits")?,
        model_version: row.get(11)?,
    })
}

fn fill_from_row(row: &Row<'_>) -> rusqlite::Result<FillRecord> {
    Ok(FillRecord {
        symbol: row.get(0)?,
        trade_id: row.get(1)?,
        client_order_id: row.get(2)?,
        side: text_as(row, 3, "order side", OrderSide::parse)?,
        price: decimal(row, 4)?,
        qty: decimal(row, 5)?,
        fee: decimal(row, 6)?,
        fee_asset: row.get(7)?,
        realised_pnl: decimal(row, 8)?,
        maker: row.get(9)?,
        at_ms: row.get(10)?,
    })
}
