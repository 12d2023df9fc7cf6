//! The journal's schema and its versioned migrations.
//!
//! The schema version lives in `SQLite`'s own `PRAGMA user_version` (0 = a new, empty file). Each step
//! `n → n+1` is a list of statements run in **one transaction** together with the `user_version` bump,
//! so a step either happens completely or not at all: a crash or an error mid-step leaves the file at
//! version `n`, readable by the build that wrote it. Before the first step on an existing file (version
//! ≥ 1), the whole database is copied with `VACUUM INTO` next to it (`journal.sqlite.v1-<ms>.bak`): a
//! migration that succeeds but turns out wrong can still be undone by hand.
//!
//! A file whose version is *newer* than this build knows is refused, never downgraded.
//!
//! History:
//! * v1 — signals, positions (latest state), lifecycle events, orders (intent + state), fills, equity,
//!   breaker state.
//! * v2 — `signals.model_version` (the ML layer names the model that scored a signal) and a partial
//!   index of the orders still `SUBMITTING`, which the restart resolver reads.
//! * v3 — `positions.monitor`: the monitor's state of an open position (initial stop, liquidation
//!   price, risk level, the one-shot warnings already given), JSON, so a restart resumes monitoring
//!   exactly where it stopped instead of repeating warnings or mis-scoring a trailed stop.
//! * v4 — `strategy_changes`: every change of the strategy evolver's parameter set (decision or the
//!   operator's revert), with its reason and the parameters it put in force.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::JournalError;

/// One migration step: the statements that take the schema from `version - 1` to `version`.
#[derive(Debug)]
pub struct Step {
    pub version: i64,
    pub statements: &'static [&'static str],
}

/// Every step, in order. Append only: a step that has shipped is never edited.
pub const STEPS: &[Step] = &[
    Step {
        version: 1,
        statements: &[
            "CREATE TABLE signals (
                id          INTEGER PRIMARY KEY,
                at_ms       INTEGER NOT NULL,
                symbol      TEXT    NOT NULL,
                side        TEXT    NOT NULL,
                mode        TEXT    NOT NULL,
                entry       TEXT    NOT NULL,
                stop        TEXT    NOT NULL,
                take_profit TEXT    NOT NULL,
                quality     REAL    NOT NULL,
                outcome     TEXT    NOT NULL,
                features    TEXT    NOT NULL,
                rule_hits   TEXT    NOT NULL
            )",
            "CREATE TABLE positions (
                position_id     TEXT    PRIMARY KEY,
                revision        INTEGER NOT NULL,
                execution       TEXT    NOT NULL,
                symbol          TEXT    NOT NULL,
                side            TEXT    NOT NULL,
                qty             TEXT    NOT NULL,
                entry_price     TEXT    NOT NULL,
                leverage        INTEGER NOT NULL,
                take_profit     TEXT,
                stop_loss       TEXT,
                trailing        TEXT,
                expires_at_ms   INTEGER,
                fees_paid       TEXT    NOT NULL,
                funding_paid    TEXT    NOT NULL,
                realised_pnl    TEXT    NOT NULL,
                strategy        TEXT    NOT NULL,
                mode            TEXT    NOT NULL,
                feature_slot    INTEGER,
                opened_at_ms    INTEGER NOT NULL,
                last_mark_price TEXT,
                last_funding_ms INTEGER,
                status          TEXT    NOT NULL,
                closed_at_ms    INTEGER,
                exit_price      TEXT,
                close_reason    TEXT,
                updated_at_ms   INTEGER NOT NULL
            )",
            "CREATE INDEX positions_by_status ON positions (status, opened_at_ms)",
            "CREATE TABLE events (
                id          INTEGER PRIMARY KEY,
                at_ms       INTEGER NOT NULL,
                position_id TEXT    NOT NULL,
                kind        TEXT    NOT NULL,
                payload     TEXT    NOT NULL
            )",
            "CREATE INDEX events_by_position ON events (position_id, id)",
            "CREATE TABLE orders (
                client_order_id TEXT    PRIMARY KEY,
                position_id     TEXT,
                symbol          TEXT    NOT NULL,
                side            TEXT    NOT NULL,
                order_type      TEXT    NOT NULL,
                qty             TEXT,
                price           TEXT,
                stop_price      TEXT,
                reduce_only     INTEGER NOT NULL,
                close_position  INTEGER NOT NULL,
                state           TEXT    NOT NULL,
                venue_order_id  INTEGER,
                reason          TEXT,
                created_at_ms   INTEGER NOT NULL,
                updated_at_ms   INTEGER NOT NULL
            )",
            "CREATE TABLE fills (
                id              INTEGER PRIMARY KEY,
                symbol          TEXT    NOT NULL,
                trade_id        INTEGER NOT NULL,
                client_order_id TEXT    NOT NULL,
                side            TEXT    NOT NULL,
                price           TEXT    NOT NULL,
                qty             TEXT    NOT NULL,
                fee             TEXT    NOT NULL,
                fee_asset       TEXT    NOT NULL,
                realised_pnl    TEXT    NOT NULL,
                maker           INTEGER NOT NULL,
                at_ms           INTEGER NOT NULL,
                UNIQUE (symbol, trade_id)
            )",
            "CREATE TABLE equity (
                id             INTEGER PRIMARY KEY,
                at_ms          INTEGER NOT NULL,
                execution      TEXT    NOT NULL,
                equity         TEXT    NOT NULL,
                balance        TEXT    NOT NULL,
                unrealised_pnl TEXT    NOT NULL,
                open_positions INTEGER NOT NULL
            )",
            "CREATE TABLE breaker_state (
                id                 INTEGER PRIMARY KEY,
                at_ms              INTEGER NOT NULL,
                tier               TEXT    NOT NULL,
                reason             TEXT    NOT NULL,
                since_ms           INTEGER NOT NULL,
                cooldown_until_ms  INTEGER,
                peak_equity        TEXT    NOT NULL,
                day_start_equity   TEXT    NOT NULL,
                consecutive_losses INTEGER NOT NULL,
                details            TEXT    NOT NULL
            )",
        ],
    },
    Step {
        version: 2,
        statements: &[
            "ALTER TABLE signals ADD COLUMN model_version TEXT",
            "CREATE INDEX orders_submitting ON orders (created_at_ms) WHERE state = 'SUBMITTING'",
        ],
    },
    Step {
        version: 3,
        statements: &["ALTER TABLE positions ADD COLUMN monitor TEXT"],
    },
    Step {
        version: 4,
        statements: &["CREATE TABLE strategy_changes (
                id       INTEGER PRIMARY KEY,
                at_ms    INTEGER NOT NULL,
                from_set TEXT    NOT NULL,
                to_set   TEXT    NOT NULL,
                reason   TEXT    NOT NULL,
                details  TEXT    NOT NULL
            )"],
    },
];

/// The version this build writes.
pub const LATEST: i64 = 4;

/// Where a test wants a migration to fail: after `after_statements` statements of the step to
/// `version` (inside its transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailPoint {
    pub version: i64,
    pub after_statements: usize,
}

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    pub from: i64,
    pub to: i64,
    /// The `VACUUM INTO` copy taken before migrating an existing file.
    pub backup: Option<PathBuf>,
}

/// `PRAGMA user_version`.
pub fn user_version(conn: &Connection) -> Result<i64, JournalError> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|source| JournalError::Sqlite {
            operation: "reading user_version",
            source,
        })
}

/// Brings the file at `path` (open as `conn`) to `target` (normally [`LATEST`]), backing it up first
/// when it already holds data. `fail` injects an error for tests.
pub fn migrate(
    conn: &mut Connection,
    path: &Path,
    target: i64,
    fail: Option<FailPoint>,
) -> Result<MigrationReport, JournalError> {
    let from = user_version(conn)?;
    if from > LATEST {
        return Err(JournalError::NewerSchema {
            path: path.to_path_buf(),
            found: from,
            latest: LATEST,
        });
    }
    if from >= target {
        return Ok(MigrationReport {
            from,
            to: from,
            backup: None,
        });
    }
    let backup = if from >= 1 {
        Some(backup(conn, path, from)?)
    } else {
        None
    };
    for step in STEPS.iter().filter(|s| s.version > from && s.version <= target) {
        run_step(conn, step, fail).map_err(|source| JournalError::Migration {
            path: path.to_path_buf(),
            from: step.version - 1,
            to: step.version,
            backup: backup.clone(),
            source: Box::new(source),
        })?;
        tracing::info!(path = %path.display(), version = step.version, "journal migrated");
    }
    Ok(MigrationReport {
        from,
        to: target,
        backup,
    })
}

fn run_step(conn: &mut Connection, step: &Step, fail: Option<FailPoint>) -> Result<(), JournalError> {
    let sql = |operation| move |source| JournalError::Sqlite { operation, source };
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql("beginning a migration step"))?;
    for (i, statement) in step.statements.iter().enumerate() {
        if fail.is_some_and(|f| f.version == step.version && f.after_statements == i) {
            // Dropping `tx` rolls the step back, as a real failure would.
            return Err(JournalError::InjectedFailure {
                version: step.version,
                statement: i,
            });
        }
        tx.execute_batch(statement)
            .map_err(sql("running a migration statement"))?;
    }
    tx.pragma_update(None, "user_version", step.version)
        .map_err(sql("setting user_version"))?;
    tx.commit().map_err(sql("committing a migration step"))
}

/// `VACUUM INTO <path>.v<from>-<ms>.bak`: a consistent, compacted copy (WAL content included).
fn backup(conn: &Connection, path: &Path, from: i64) -> Result<PathBuf, JournalError> {
    let name = path
        .file_name()
        .map_or_else(|| "journal".into(), |n| n.to_string_lossy().into_owned());
    let stamp = crate::domain::now_ms();
    let mut target = path.with_file_name(format!("{name}.v{from}-{stamp}.bak"));
    let mut n = 1;
    while target.exists() {
        target = path.with_file_name(format!("{name}.v{from}-{stamp}-{n}.bak"));
        n += 1;
    }
    let text = target
        .to_str()
        .ok_or_else(|| JournalError::NonUtf8Path { path: target.clone() })?;
    conn.execute("VACUUM INTO ?1", [text])
        .map_err(|source| JournalError::Backup {
            path: path.to_path_buf(),
            backup: target.clone(),
            source,
        })?;
    Ok(target)
}
