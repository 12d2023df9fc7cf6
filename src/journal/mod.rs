//! The trade and event journal: a `SQLite` file that makes a crash or a restart lose nothing.
//!
//! Why it exists: perpdesk holds positions (virtual or real) across restarts, and an order sent to the
//! venue must never be forgotten by the process that sent it (freqtrade lost trades that way: "order went
//! through at the exchange but not at the database"). Everything the engine decides — signals, position
//! states, the eleven lifecycle events, order intents and their outcomes, fills, equity, the circuit
//! breaker's state — is written here, and a restart reads back the open positions, the breaker state and
//! the last equity ([`Journal::restore`]), and the orders whose outcome is unknown
//! ([`Journal::submitting_orders`]).
//!
//! Design decisions:
//! * **`SQLite` in WAL mode with `synchronous=FULL`**: a committed transaction survives a power cut, not
//!   only a process kill; readers (the export, a restart check) never block the writer.
//!   `busy_timeout=5000` lets a second connection wait out a short lock instead of failing.
//! * **One writer**: a dedicated OS thread owns the only writing connection ([`writer`]) and is fed by a
//!   bounded channel, so async code never blocks on disk and there is never a "database is locked"
//!   between two writers. Whatever is queued when a batch starts is committed in one short transaction
//!   (one fsync for many rows). A caller that must not proceed before the row is on disk — the order
//!   intent before the order is sent — waits for the commit's acknowledgement.
//! * **Migrations** are versioned by `PRAGMA user_version`, one transaction per step, with a
//!   `VACUUM INTO` backup taken before an existing file is migrated ([`schema`]).
//! * **No secrets**: no record type has a field for a credential, and free-form JSON payloads and reason
//!   texts are checked before they are queued: an object key that names a credential (`secret`, `token`,
//!   `api_key`, `signature`, `webhook`, …) or a text that carries a signed query or a webhook URL is
//!   refused with [`JournalError::SecretInPayload`], naming the key, never the value.

mod export;
mod records;
pub mod schema;
mod store;
pub mod writer;

use std::path::{Path, PathBuf};

pub use export::{ExportSummary, export_csv};
pub use records::*;
pub use schema::{FailPoint, LATEST as SCHEMA_VERSION, MigrationReport};
pub use store::{Journal, RestoredState};
pub use writer::{JournalHandle, JournalStats, JournalWriter, WriterConfig};

/// File name of the paper-trading journal in the data directory.
pub const PAPER_FILE_NAME: &str = "journal-paper.sqlite";
/// File name of the live-trading journal. Separate from paper, as freqtrade does, so a paper position can
/// never be restored into the live book.
pub const LIVE_FILE_NAME: &str = "journal-live.sqlite";

/// The journal file of `execution` in `data_dir`.
pub fn journal_path(data_dir: &Path, execution: Execution) -> PathBuf {
    data_dir.join(match execution {
        Execution::Paper => PAPER_FILE_NAME,
        Execution::Live => LIVE_FILE_NAME,
    })
}

/// Failures of the journal. None of them ever carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot open the journal {}: {source}", path.display())]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("the journal {} does not exist", path.display())]
    Missing { path: PathBuf },
    #[error("cannot create the directory {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("journal {}: WAL mode could not be enabled (journal_mode is {mode:?})", path.display())]
    NoWal { path: PathBuf, mode: String },
    #[error("journal: {operation}: {source}")]
    Sqlite {
        operation: &'static str,
        source: rusqlite::Error,
    },
    #[error(
        "the journal {} has schema version {found}, newer than this build's {latest}: \
         use a newer perpdesk, or move the file aside",
        path.display()
    )]
    NewerSchema { path: PathBuf, found: i64, latest: i64 },
    #[error(
        "the journal {} has schema version {found} but this command needs {latest}: \
         start perpdesk once to migrate it",
        path.display()
    )]
    OlderSchema { path: PathBuf, found: i64, latest: i64 },
    #[error("cannot back up the journal {} to {} before migrating: {source}", path.display(), backup.display())]
    Backup {
        path: PathBuf,
        backup: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "migrating the journal {} from version {from} to {to} failed; it is still at version {from}{}: {source}",
        path.display(),
        backup.as_ref().map(|b| format!(" (backup: {})", b.display())).unwrap_or_default()
    )]
    Migration {
        path: PathBuf,
        from: i64,
        to: i64,
        backup: Option<PathBuf>,
        source: Box<JournalError>,
    },
    #[error("injected failure in migration step {version} before statement {statement}")]
    InjectedFailure { version: i64, statement: usize },
    #[error("path {} is not valid UTF-8", path.display())]
    NonUtf8Path { path: PathBuf },
    #[error("journal {} failed its integrity check: {report}", path.display())]
    Integrity { path: PathBuf, report: String },
    #[error("refused to journal a {record}: `{field}` looks like a credential (value not shown)")]
    SecretInPayload { record: &'static str, field: String },
    #[error("client order id {id:?} is invalid: {reason}")]
    InvalidClientOrderId { id: String, reason: &'static str },
    #[error("client order id {id:?} is already journalled")]
    DuplicateClientOrderId { id: String },
    #[error("order update for {id:?}, which was never journalled")]
    UnknownOrder { id: String },
    #[error("cannot encode {what} as JSON: {source}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("the journal writer's queue is full ({capacity} records); the record was not journalled")]
    QueueFull { capacity: usize },
    #[error("the journal writer has stopped")]
    Closed,
    #[error("cannot write {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl JournalError {
    /// True when trying again later can succeed (a full queue, a busy or full disk); false when the same
    /// request will always fail (a bad record, a schema this build cannot read, a damaged file).
    pub fn is_recoverable(&self) -> bool {
        match self {
            Self::QueueFull { .. } | Self::Io { .. } | Self::CreateDir { .. } => true,
            Self::Sqlite { source, .. } | Self::Open { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(
                    rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::DiskFull
                        | rusqlite::ErrorCode::SystemIoFailure
                )
            ),
            _ => false,
        }
    }
}

/// Object keys (lower-cased, `-` and `_` removed) that name a credential.
const SECRET_KEY_PARTS: &[&str] = &[
    "secret",
    "apikey",
    "token",
    "password",
    "passphrase",
    "signature",
    "webhook",
    "listenkey",
    "authorization",
    "privatekey",
];

/// Substrings of a text value that mean a credential is inside it: a signed query string, a Discord
/// webhook URL, an API-key header.
const SECRET_TEXT_PARTS: &[&str] = &["signature=", "/api/webhooks/", "x-mbx-apikey"];

fn key_names_secret(key: &str) -> bool {
    let norm: String = key
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    SECRET_KEY_PARTS.iter().any(|p| norm.contains(p))
}

fn text_carries_secret(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    // `Bot <token>`, an Authorization value: "bot" and then one long word (Discord tokens are ~70
    // characters), so that "bot restarted" is not mistaken for one.
    let bot_header = lower
        .strip_prefix("bot ")
        .is_some_and(|rest| rest.len() >= 30 && !rest.contains(' '));
    bot_header || SECRET_TEXT_PARTS.iter().any(|p| lower.contains(p))
}

/// The key path of the first credential-looking key or text inside `value`.
fn find_secret(value: &serde_json::Value, path: &str) -> Option<String> {
    match value {
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            let here = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if key_names_secret(k) {
                Some(here)
            } else {
                find_secret(v, &here)
            }
        }),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_secret(v, &format!("{path}[{i}]"))),
        serde_json::Value::String(s) if text_carries_secret(s) => Some(path.to_owned()),
        _ => None,
    }
}

/// `newClientOrderId` rules: 1..=36 characters from `[.A-Z:/a-z0-9_-]`.
pub fn check_client_order_id(id: &str) -> Result<(), JournalError> {
    let invalid = |reason| JournalError::InvalidClientOrderId {
        id: id.chars().take(40).collect(),
        reason,
    };
    if id.is_empty() {
        return Err(invalid("it is empty"));
    }
    if id.len() > 36 {
        return Err(invalid("it is longer than 36 characters"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '/' | '_' | '-'))
    {
        return Err(invalid("only A-Z a-z 0-9 . : / _ - are allowed"));
    }
    Ok(())
}

/// Checks a record before it is queued: no credential in its free-form parts, a valid client order id.
pub fn validate(record: &JournalRecord) -> Result<(), JournalError> {
    let refuse = |field: String| {
        Err(JournalError::SecretInPayload {
            record: record.kind(),
            field,
        })
    };
    let texts: Vec<(&str, &str)> = match record {
        JournalRecord::Signal(s) => {
            if let Some(field) = find_secret(&s.rule_hits, "rule_hits") {
                return refuse(field);
            }
            vec![("outcome", s.outcome.as_str())]
        }
        JournalRecord::Event(e) => {
            if let Some(field) = find_secret(&e.payload, "payload") {
                return refuse(field);
            }
            vec![]
        }
        JournalRecord::Breaker(b) => {
            if let Some(field) = find_secret(&b.details, "details") {
                return refuse(field);
            }
            vec![("reason", b.reason.as_str())]
        }
        JournalRecord::StrategyChange(c) => {
            if let Some(field) = find_secret(&c.details, "details") {
                return refuse(field);
            }
            vec![("reason", c.reason.as_str())]
        }
        JournalRecord::OrderIntent(o) => {
            check_client_order_id(&o.client_order_id)?;
            vec![]
        }
        JournalRecord::OrderUpdate(u) => {
            check_client_order_id(&u.client_order_id)?;
            u.reason.iter().map(|r| ("reason", r.as_str())).collect()
        }
        JournalRecord::Fill(f) => {
            check_client_order_id(&f.client_order_id)?;
            vec![]
        }
        JournalRecord::Position(p) => p
            .close_reason
            .iter()
            .map(|r| ("close_reason", r.as_str()))
            .collect(),
        JournalRecord::Equity(_) => vec![],
    };
    match texts.into_iter().find(|(_, t)| text_carries_secret(t)) {
        Some((field, _)) => refuse(field.to_owned()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
