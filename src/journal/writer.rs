//! The journal's single writer: one OS thread owning the only writing connection, fed by a bounded
//! channel.
//!
//! Why a thread and not a tokio task: `SQLite` calls block (an fsync under `synchronous=FULL` takes
//! milliseconds), and the engine task must never wait on disk. The thread takes whatever is queued when
//! it wakes (up to [`WriterConfig::max_batch`] records), writes it in **one** transaction and commits, so
//! under load a single fsync covers hundreds of rows; then it acknowledges the callers that asked for it.
//! If a batch fails (a duplicate client order id, say), it is rolled back and its records retried one by
//! one, so a bad record fails alone.
//!
//! Three ways in, for three kinds of caller:
//! * [`JournalHandle::try_write`] never waits: the engine's synchronous `process(event)` uses it. A full
//!   queue is an error the caller sees and a counter in [`JournalStats::dropped`].
//! * [`JournalHandle::write`] waits for queue space (backpressure) but not for the commit.
//! * [`JournalHandle::write_durable`] returns only once the record's transaction has committed: the
//!   order sender journals the `SUBMITTING` intent this way before the request leaves.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread::JoinHandle,
};

use tokio::sync::{mpsc, oneshot};

use super::{Journal, JournalError, JournalRecord, validate};

/// Sizes of the writer's queue and batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterConfig {
    /// Records that may wait in the queue.
    pub queue: usize,
    /// Most records committed in one transaction.
    pub max_batch: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            queue: 8192,
            max_batch: 1024,
        }
    }
}

type Ack = oneshot::Sender<Result<(), JournalError>>;

enum Request {
    Write {
        record: Box<JournalRecord>,
        ack: Option<Ack>,
    },
    /// Acknowledged once everything queued before it is committed.
    Flush(oneshot::Sender<()>),
    /// Commit what is queued before it, then stop.
    Shutdown,
}

#[derive(Debug, Default)]
struct Counters {
    written: AtomicU64,
    batches: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

/// What the writer has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JournalStats {
    /// Records committed.
    pub written: u64,
    /// Transactions committed.
    pub batches: u64,
    /// Records refused by [`JournalHandle::try_write`] because the queue was full.
    pub dropped: u64,
    /// Records that reached the writer but could not be written (the error was logged, and returned to
    /// the caller when it waited for an acknowledgement).
    pub failed: u64,
    /// Records waiting in the queue now.
    pub queued: usize,
}

/// A cheap, cloneable way to send records to the writer.
#[derive(Debug, Clone)]
pub struct JournalHandle {
    tx: mpsc::Sender<Request>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Write { record, ack } => write!(f, "Write({}, ack: {})", record.kind(), ack.is_some()),
            Self::Flush(_) => f.write_str("Flush"),
            Self::Shutdown => f.write_str("Shutdown"),
        }
    }
}

impl JournalHandle {
    fn request(record: JournalRecord, ack: Option<Ack>) -> Result<Request, JournalError> {
        validate(&record)?;
        Ok(Request::Write {
            record: Box::new(record),
            ack,
        })
    }

    /// Queues `record` without waiting. A full queue returns [`JournalError::QueueFull`] (and counts it).
    pub fn try_write(&self, record: impl Into<JournalRecord>) -> Result<(), JournalError> {
        let request = Self::request(record.into(), None)?;
        self.tx.try_send(request).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                JournalError::QueueFull {
                    capacity: self.tx.max_capacity(),
                }
            }
            mpsc::error::TrySendError::Closed(_) => JournalError::Closed,
        })
    }

    /// Queues `record`, waiting for room in the queue, not for the commit.
    pub async fn write(&self, record: impl Into<JournalRecord>) -> Result<(), JournalError> {
        let request = Self::request(record.into(), None)?;
        self.tx.send(request).await.map_err(|_| JournalError::Closed)
    }

    /// Queues `record` and returns once it is committed (durable on disk), or with the error that
    /// prevented it.
    pub async fn write_durable(&self, record: impl Into<JournalRecord>) -> Result<(), JournalError> {
        let (ack, done) = oneshot::channel();
        let request = Self::request(record.into(), Some(ack))?;
        self.tx.send(request).await.map_err(|_| JournalError::Closed)?;
        done.await.map_err(|_| JournalError::Closed)?
    }

    /// [`Self::write`] for a plain thread (panics if called on a tokio runtime thread).
    pub fn write_blocking(&self, record: impl Into<JournalRecord>) -> Result<(), JournalError> {
        let request = Self::request(record.into(), None)?;
        self.tx.blocking_send(request).map_err(|_| JournalError::Closed)
    }

    /// [`Self::write_durable`] for a plain thread (panics if called on a tokio runtime thread).
    pub fn write_durable_blocking(&self, record: impl Into<JournalRecord>) -> Result<(), JournalError> {
        let (ack, done) = oneshot::channel();
        let request = Self::request(record.into(), Some(ack))?;
        self.tx.blocking_send(request).map_err(|_| JournalError::Closed)?;
        done.blocking_recv().map_err(|_| JournalError::Closed)?
    }

    /// Returns once everything queued before this call is committed.
    pub async fn flush(&self) -> Result<(), JournalError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Request::Flush(ack))
            .await
            .map_err(|_| JournalError::Closed)?;
        done.await.map_err(|_| JournalError::Closed)
    }

    /// [`Self::flush`] for a plain thread.
    pub fn flush_blocking(&self) -> Result<(), JournalError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .blocking_send(Request::Flush(ack))
            .map_err(|_| JournalError::Closed)?;
        done.blocking_recv().map_err(|_| JournalError::Closed)
    }

    pub fn stats(&self) -> JournalStats {
        JournalStats {
            written: self.counters.written.load(Ordering::Relaxed),
            batches: self.counters.batches.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
            queued: self.tx.max_capacity() - self.tx.capacity(),
        }
    }
}

/// The running writer thread. Stop it with [`JournalWriter::shutdown`] (async) or
/// [`JournalWriter::close`] (from a plain thread); both commit everything queued first.
#[derive(Debug)]
pub struct JournalWriter {
    handle: JournalHandle,
    thread: Option<JoinHandle<()>>,
}

impl JournalWriter {
    /// Starts the writer thread on an open journal.
    pub fn spawn(journal: Journal, config: WriterConfig) -> Result<Self, JournalError> {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let max_batch = config.max_batch.max(1);
        let path = journal.path().to_path_buf();
        let thread = std::thread::Builder::new()
            .name("journal-writer".to_owned())
            .spawn(move || run(journal, rx, max_batch, &thread_counters))
            .map_err(|source| JournalError::Io { path, source })?;
        Ok(Self {
            handle: JournalHandle { tx, counters },
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> JournalHandle {
        self.handle.clone()
    }

    /// Commits everything queued, stops the thread and waits for it. From async code.
    pub async fn shutdown(mut self) {
        let _ = self.handle.tx.send(Request::Shutdown).await;
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    /// [`Self::shutdown`] from a plain thread (panics if called on a tokio runtime thread).
    pub fn close(mut self) {
        let _ = self.handle.tx.blocking_send(Request::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(mut journal: Journal, mut rx: mpsc::Receiver<Request>, max_batch: usize, counters: &Counters) {
    let mut batch: Vec<(Box<JournalRecord>, Option<Ack>)> = Vec::with_capacity(max_batch);
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut stop = false;
        let mut next = Some(first);
        while let Some(request) = next.take() {
            match request {
                Request::Write { record, ack } => batch.push((record, ack)),
                Request::Flush(ack) => flushes.push(ack),
                Request::Shutdown => {
                    stop = true;
                    break;
                }
            }
            if batch.len() < max_batch {
                next = rx.try_recv().ok();
            }
        }
        commit(&mut journal, &mut batch, counters);
        for ack in flushes.drain(..) {
            let _ = ack.send(());
        }
        if stop {
            break;
        }
    }
    // Requests that raced the shutdown see their acknowledgement channel close: `JournalError::Closed`.
    rx.close();
}

/// Writes `batch` in one transaction; on failure, each record alone, so only bad records fail.
fn commit(journal: &mut Journal, batch: &mut Vec<(Box<JournalRecord>, Option<Ack>)>, counters: &Counters) {
    if batch.is_empty() {
        return;
    }
    let all = journal.write_all(batch.iter().map(|(r, _)| r.as_ref()));
    if all.is_ok() {
        counters.written.fetch_add(batch.len() as u64, Ordering::Relaxed);
        counters.batches.fetch_add(1, Ordering::Relaxed);
        for (_, ack) in batch.drain(..) {
            if let Some(ack) = ack {
                let _ = ack.send(Ok(()));
            }
        }
        return;
    }
    for (record, ack) in batch.drain(..) {
        let result = journal.write_all(std::iter::once(record.as_ref()));
        match &result {
            Ok(()) => {
                counters.written.fetch_add(1, Ordering::Relaxed);
                counters.batches.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(record = record.kind(), %error, "journal write failed");
            }
        }
        if let Some(ack) = ack {
            let _ = ack.send(result);
        }
    }
}
