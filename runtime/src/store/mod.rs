//! The SQLite store. Every SQL statement closeloop runs lives in this module.
//!
//! One file, WAL, foreign keys on, `synchronous=NORMAL` (an application crash loses nothing; a
//! power cut may lose the last commits, never consistency), an explicit busy timeout, and
//! `BEGIN IMMEDIATE` for every write so a read never has to upgrade to a write lock. A write
//! that still meets a busy database is retried from `BEGIN`, so two processes writing one file
//! both succeed.
//!
//! Table and column names come only from a loaded app definition (ids match
//! `^[a-z][a-z0-9_]{0,47}$`) and are always quoted with [`quote`].

pub(crate) mod approvals;
pub(crate) mod apps;
pub(crate) mod audit;
mod bench;
pub(crate) mod boards;
pub(crate) mod channels;
pub(crate) mod inbound;
pub(crate) mod members;
pub(crate) mod outbox;
pub(crate) mod proof;
pub(crate) mod records;
pub(crate) mod schema;
pub(crate) mod signing;
pub(crate) mod tasks;
pub(crate) mod timers;

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, TransactionBehavior};

pub use approvals::{ApprovalRow, StepRow};
pub use apps::InstalledApp;
pub use audit::{sha256_hex, AuditEntry, AuditProblem, Checkpoint, NewEvent, Verification, GENESIS};
pub use boards::FlagRow;
pub use members::MemberRow;
pub use outbox::{AttemptRow, OutboxRow};
pub use records::{ListQuery, RecordRow, SortOrder};
pub use schema::FormTable;
pub use tasks::TaskRow;
pub use timers::TimerRow;

/// A write transaction. Only store functions run statements on it.
pub type Tx<'a> = rusqlite::Transaction<'a>;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored JSON value does not read back.
    #[error("stored data is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The database was written by a newer closeloop.
    #[error("the database has schema version {found}; this closeloop knows up to {known}. Upgrade closeloop.")]
    TooNew {
        /// The file's version.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// The operating system refused something (starting the checkpoint thread).
    #[error("{0}")]
    Io(String),
    /// The database stayed busy through every retry.
    #[error("the database stayed busy (another closeloop is writing); try again")]
    Busy,
}

/// How many times a write is retried from `BEGIN` when the database is busy.
const WRITE_ATTEMPTS: u32 = 50;

/// An open closeloop database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    checkpointer: Option<Checkpointer>,
    /// Where a second connection finds this database (a file path or a shared-memory URI).
    location: String,
    /// The schema version the file had when it was opened (0 for a new one).
    opened_at_version: i64,
}

/// Copies the WAL into the database off the request path: the writing connection never
/// stalls on a checkpoint inside a commit (RELIABILITY: run the checkpoint off the request
/// path). Passive checkpoints never block writers; SQLite also checkpoints when the last
/// connection closes.
#[derive(Debug)]
struct Checkpointer {
    stop: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_millis(100))?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("closeloop-checkpoint".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(Duration::from_millis(500))
                {
                    // A busy or failed checkpoint is simply retried at the next tick.
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })
            .map_err(|e| StoreError::Io(e.to_string()))?;
        Ok(Checkpointer { stop, thread: Some(thread) })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Store {
    /// Opens (creating if needed) a database file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut store = Self::configure(Connection::open(path)?, true)?;
        store.location = path.to_string_lossy().into_owned();
        store.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        store.checkpointer = Some(Checkpointer::start(path)?);
        Ok(store)
    }

    /// A private in-memory database, for tests and trials.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        // A named shared-cache memory database, so host functions can read it from a second
        // connection like they read a file.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let uri = format!("file:closeloop-memory-{}-{n}?mode=memory&cache=shared", std::process::id());
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
            | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
            | rusqlite::OpenFlags::SQLITE_OPEN_URI;
        let mut store = Self::configure(Connection::open_with_flags(&uri, flags)?, false)?;
        store.location = uri;
        Ok(store)
    }

    /// A second, read-only connection to this database, for host functions. It sees what is
    /// committed (for a memory database, also what the writer has not committed yet).
    pub fn read_only_connection(&self) -> Result<Connection, StoreError> {
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(&self.location, flags)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        stable_plans(&conn)?;
        if self.location.starts_with("file:") {
            conn.pragma_update(None, "read_uncommitted", true)?;
        }
        Ok(conn)
    }

    fn configure(conn: Connection, file: bool) -> Result<Self, StoreError> {
        conn.busy_timeout(Duration::from_secs(5))?;
        stable_plans(&conn)?;
        if file {
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Savepoints (one per timer, one per automation step) journal the pages they touch;
        // in memory that costs a copy, on disk a write.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        let mut store = Store { conn, checkpointer: None, location: String::new(), opened_at_version: 0 };
        store.opened_at_version = store.write(schema::migrate)?;
        Ok(store)
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, committing when it returns `Ok`. A busy
    /// database restarts the whole transaction (the closure runs again), so `f` must not have
    /// effects outside the transaction.
    pub fn write<T, E>(&mut self, mut f: impl FnMut(&Tx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError> + Retryable,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result: Result<T, E> = (|| {
                let tx =
                    self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(StoreError::from)?;
                let value = f(&tx)?;
                tx.commit().map_err(StoreError::from)?;
                Ok(value)
            })();
            match result {
                Err(e) if attempt < WRITE_ATTEMPTS && e.is_busy() => {
                    std::thread::sleep(Duration::from_millis(u64::from(attempt.min(20)) * 5));
                }
                other => return other,
            }
        }
    }

    /// The schema version the database had before this process opened (and upgraded) it.
    pub fn opened_at_version(&self) -> i64 {
        self.opened_at_version
    }

    /// `PRAGMA data_version`: changes whenever another connection commits to the file, so a
    /// long-running process notices work written by others without re-reading tables.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// The connection, for reads. Reads see the last committed state.
    pub fn reader(&self) -> &Connection {
        &self.conn
    }

    /// Caps the database at about `bytes` (a quota). Writes past it fail cleanly with a
    /// "database or disk is full" error and leave nothing half-written, as a full disk would.
    pub fn limit_size(&self, bytes: u64) -> Result<(), StoreError> {
        let page: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let pages = (bytes / page.max(1) as u64).max(1);
        self.conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
        Ok(())
    }

    /// Runs a passive WAL checkpoint now; returns (frames in the WAL, frames copied). The
    /// checkpointer thread does this every half second; readers still open keep frames back.
    pub fn checkpoint(&self) -> Result<(i64, i64), StoreError> {
        Ok(self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(1)?, r.get(2)?)))?)
    }

    /// `PRAGMA integrity_check`: `ok`, or what is wrong.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        Ok(self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    /// How many rows a form's table holds.
    pub fn count(&self, table: &FormTable) -> Result<u64, StoreError> {
        records::count(&self.conn, table)
    }
}

/// Errors that can say "the database was busy", so [`Store::write`] knows to retry.
pub trait Retryable {
    /// True when retrying the whole transaction may succeed.
    fn is_busy(&self) -> bool;
}

impl Retryable for StoreError {
    fn is_busy(&self) -> bool {
        match self {
            StoreError::Sqlite(e) => is_busy(e),
            StoreError::Busy => true,
            _ => false,
        }
    }
}

/// Keeps each statement's query plan whatever values are bound to it. The bundled SQLite is
/// built with STAT4, which otherwise re-plans a cached statement with an `ORDER BY` every time
/// its parameters change: measured, that was a third of the cost of firing a timer.
fn stable_plans(conn: &Connection) -> Result<(), StoreError> {
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

/// Runs `f` inside a savepoint of the transaction: when it fails (an `Err`, or an `Ok(Err)`:
/// a step that failed for a reason of its own), what it wrote is undone and the rest of the
/// transaction stands, so an automation step that fails never loses the record.
pub(crate) fn savepoint<T, F>(
    tx: &Tx<'_>,
    f: impl FnOnce() -> Result<Result<T, F>, StoreError>,
) -> Result<Result<T, F>, StoreError> {
    let run = |sql: &str| -> Result<(), StoreError> {
        tx.prepare_cached(sql)?.execute([])?;
        Ok(())
    };
    run("SAVEPOINT step")?;
    match f() {
        Ok(Ok(v)) => {
            run("RELEASE step")?;
            Ok(Ok(v))
        }
        Ok(Err(e)) => {
            run("ROLLBACK TO step")?;
            run("RELEASE step")?;
            Ok(Err(e))
        }
        Err(e) => {
            // The transaction is about to be abandoned; if SQLite already rolled it back, the
            // original error is the one worth reporting.
            let _ = run("ROLLBACK TO step").and_then(|_| run("RELEASE step"));
            Err(e)
        }
    }
}

/// Quotes an identifier for SQL: `lead` → `"lead"`.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// True for SQLite's busy and locked errors.
pub fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}
