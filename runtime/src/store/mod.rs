//! The SQLite store. Every SQL statement closeloop runs lives in this module.
//!
//! One file, WAL, foreign keys on, `synchronous=FULL` (every commit is on disk before it
//! returns: neither an application crash nor a power cut loses a committed write: a fired timer,
//! a sent message, an audit event; see docs/reliability.md), an explicit busy timeout, and
//! `BEGIN IMMEDIATE` for every write so a read never has to upgrade to a write lock. A write
//! that still meets a busy database is retried from `BEGIN`, so two processes writing one file
//! both succeed.
//!
//! Table and column names come only from a loaded app definition (ids match
//! `^[a-z][a-z0-9_]{0,47}$`) and are always quoted with [`quote`].

// The status enums' macro comes first, so every table module below can use it.
#[macro_use]
mod status;

pub(crate) mod approvals;
pub(crate) mod apps;
pub(crate) mod audit;
mod bench;
pub(crate) mod boards;
pub(crate) mod channels;
pub(crate) mod figures;
pub(crate) mod identity;
pub(crate) mod inbound;
pub(crate) mod members;
pub(crate) mod metrics;
mod moving;
pub use moving::Moved;
pub(crate) mod outbox;
mod pg;
pub use pg::{is_url as is_postgres_url, shown_location, ScratchServer};
pub(crate) mod proof;
pub(crate) mod records;
pub(crate) mod schema;
pub(crate) mod signing;
pub(crate) mod sql;
pub use signing::key_file;
pub(crate) mod tasks;
pub(crate) mod timers;

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode};

// What embedders name: the handle and its errors (defined below), queries, the audit trail's
// checks, the rows of the member directory and the outbox, which the runtime lists as they are,
// and the statuses its views carry. The other rows stay inside.
pub(crate) use approvals::{ApprovalRow, StepRow};
pub use approvals::{ApprovalStatus, StepStatus};
pub(crate) use audit::NewEvent;
pub use audit::{sha256_hex, AuditProblem, Checkpoint, Verification, GENESIS};
pub use bench::{BenchEvent, TableRows};
pub(crate) use boards::FlagRow;
pub use identity::TokenRow;
pub use members::MemberRow;
pub use outbox::{AttemptRow, OutboxRow, OutboxStatus};
pub(crate) use records::RecordRow;
pub use records::{ListQuery, SortOrder};
pub use schema::FormTable;
pub(crate) use tasks::TaskRow;
pub use tasks::TaskStatus;
pub(crate) use timers::TimerRow;
pub use timers::TimerStatus;

/// A connection to read through: what every store read function takes. Reads see the last
/// committed state (inside a write, also what the write did so far: a [`Tx`] is a `Reader`).
///
/// Only store functions run statements on it; the engine passes it along. The database behind
/// it is the store's business (today SQLite), so no database library's type leaves `store/`.
#[derive(Debug)]
pub struct Reader {
    conn: Conn,
}

/// The database behind a [`Reader`].
#[derive(Debug)]
enum Conn {
    Sqlite(Connection),
    Postgres(Box<pg::Pg>),
}

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One SQLite file (or a database in memory): the embedded default.
    Sqlite,
    /// A PostgreSQL database, which several closeloop processes can share.
    Postgres,
}

// The statements store functions run, in the store's own vocabulary ([`sql`]): what they bind,
// what their rows give back and how they fail is the same whatever database is behind them.
impl Reader {
    fn sqlite(conn: Connection) -> Self {
        Reader { conn: Conn::Sqlite(conn) }
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        match self.conn {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }

    /// The statement for this backend, of two written side by side where their SQL differs.
    pub(crate) fn pick<'s>(&self, sqlite: &'s str, postgres: &'s str) -> &'s str {
        match self.conn {
            Conn::Sqlite(_) => sqlite,
            Conn::Postgres(_) => postgres,
        }
    }

    pub(crate) fn prepare_cached(&self, sql: &str) -> Result<sql::Statement<'_>, StoreError> {
        match &self.conn {
            Conn::Sqlite(c) => c.prepare_cached(sql).map(sql::Statement::cached).map_err(from_sqlite),
            Conn::Postgres(pg) => Ok(sql::Statement::postgres(pg, pg.prepare(sql)?)),
        }
    }

    pub(crate) fn prepare(&self, sql: &str) -> Result<sql::Statement<'_>, StoreError> {
        match &self.conn {
            Conn::Sqlite(c) => c.prepare(sql).map(sql::Statement::once).map_err(from_sqlite),
            Conn::Postgres(pg) => Ok(sql::Statement::postgres(pg, pg.prepare(sql)?)),
        }
    }

    pub(crate) fn query_row<T, P: sql::Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&sql::Row<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.prepare(sql)?.query_row(params, f)
    }

    /// `query_row` for at most one row: `None` when there is none.
    pub(crate) fn query_optional<T, P: sql::Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&sql::Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        self.prepare(sql)?.query_opt(params, f)
    }

    pub(crate) fn execute<P: sql::Params>(&self, sql: &str, params: P) -> Result<usize, StoreError> {
        self.prepare(sql)?.execute(params)
    }

    pub(crate) fn execute_batch(&self, sql: &str) -> Result<(), StoreError> {
        match &self.conn {
            Conn::Sqlite(c) => c.execute_batch(sql).map_err(from_sqlite),
            Conn::Postgres(pg) => pg.batch(sql),
        }
    }

    /// The id the last `INSERT` gave its row.
    pub(crate) fn last_insert_rowid(&self) -> Result<i64, StoreError> {
        match &self.conn {
            Conn::Sqlite(c) => Ok(c.last_insert_rowid()),
            Conn::Postgres(pg) => pg.last_id(),
        }
    }

    /// A SQLite pragma; nothing on another backend.
    pub(crate) fn pragma_update(&self, name: &str, value: &str) -> Result<(), StoreError> {
        match &self.conn {
            Conn::Sqlite(c) => c.pragma_update(None, name, value).map_err(from_sqlite),
            Conn::Postgres(_) => Ok(()),
        }
    }

    /// Whether a transaction is open on this connection.
    fn in_transaction(&self) -> bool {
        match &self.conn {
            Conn::Sqlite(c) => !c.is_autocommit(),
            Conn::Postgres(pg) => pg.in_tx.get(),
        }
    }
}

/// A write transaction (`BEGIN IMMEDIATE`), run by [`Store::write`]. It is a [`Reader`] too, so
/// a read inside a write sees what the write did so far. Only store functions run statements
/// on it. Dropped without committing (an error, a panic), it rolls back.
#[derive(Debug)]
pub struct Tx<'a> {
    db: &'a Reader,
}

impl<'a> Tx<'a> {
    /// Opens the transaction. `IMMEDIATE` takes the write lock now, so a read inside it never
    /// has to upgrade to a write lock (and fail busy halfway).
    /// On PostgreSQL the transaction is `SERIALIZABLE`: it commits only if running the
    /// concurrent ones one after another would have given the same result, and otherwise fails
    /// with a serialization failure that [`Store::write`] retries, as SQLite's busy file is.
    fn begin(db: &'a Reader) -> Result<Self, StoreError> {
        match &db.conn {
            Conn::Sqlite(_) => db.execute_batch("BEGIN IMMEDIATE")?,
            Conn::Postgres(pg) => {
                pg.revive()?;
                pg.batch("BEGIN ISOLATION LEVEL SERIALIZABLE")?;
                pg.in_tx.set(true);
            }
        }
        Ok(Tx { db })
    }

    /// Commits. When `COMMIT` fails, dropping the transaction rolls it back.
    fn commit(self) -> Result<(), StoreError> {
        if let Conn::Postgres(pg) = &self.db.conn {
            // Delivered to every listening node when (and only if) the commit succeeds; a
            // transaction that wrote nothing is no news.
            pg.batch(&format!(
                "DO $$ BEGIN IF pg_current_xact_id_if_assigned() IS NOT NULL THEN NOTIFY {}; END IF; END $$",
                pg::CHANNEL
            ))?;
        }
        self.db.execute_batch("COMMIT")?;
        if let Conn::Postgres(pg) = &self.db.conn {
            pg.in_tx.set(false);
        }
        Ok(())
    }
}

impl Deref for Tx<'_> {
    type Target = Reader;

    fn deref(&self) -> &Reader {
        self.db
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        // Neither committed nor already rolled back by SQLite (an error that ends the
        // transaction leaves the connection in autocommit mode): roll back. A failure here
        // leaves nothing to do; the next `BEGIN` would report it.
        if self.db.in_transaction() {
            let _ = self.db.execute_batch("ROLLBACK");
        }
        if let Conn::Postgres(pg) = &self.db.conn {
            pg.in_tx.set(false);
        }
    }
}

/// What kind of refusal a [`StoreError::Database`] is, as the store classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DbErrorKind {
    /// The database is busy or locked by another connection; retrying may succeed.
    Busy,
    /// A constraint (unique, foreign key, not null, check) refused the statement.
    Constraint,
    /// The database or the disk is full (or the size limit of [`Store::limit_size`] is met).
    Full,
    /// Anything else.
    Other,
}

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused a statement.
    #[error("database error: {message}")]
    Database {
        /// What kind of refusal it is.
        kind: DbErrorKind,
        /// The database's own words.
        message: String,
    },
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
    /// The signing key file cannot be read or made.
    #[error("the signing key: {0}")]
    Key(String),
    /// The database stayed busy through every retry.
    #[error("the database stayed busy (another closeloop is writing); try again")]
    Busy,
    /// A status column holds a text this closeloop does not know (written by a newer one, or
    /// by hand).
    #[error("a stored {what} status is `{value}`, which this closeloop does not know")]
    UnknownStatus {
        /// Whose status: `timer`, `task`, `outbox`, `approval` or `approval step`.
        what: &'static str,
        /// The stored text.
        value: String,
    },
}

/// The PostgreSQL advisory lock nodes take while they migrate the schema.
const MIGRATION_LOCK: i64 = 7_262_531;

/// How many times a write is retried from `BEGIN` when the database is busy.
const WRITE_ATTEMPTS: u32 = 50;

/// An open closeloop database.
#[derive(Debug)]
pub struct Store {
    conn: Reader,
    checkpointer: Option<Checkpointer>,
    /// Where a second connection finds this database (a file path or a shared-memory URI).
    location: String,
    /// The schema version the file had when it was opened (0 for a new one).
    opened_at_version: i64,
    /// The signing key, once known (given by the embedder, read from the key file, or made).
    signing_key: Option<Vec<u8>>,
}

/// The write-ahead log's size past which closeloop warns (`closeloop run`, `serve`) and the
/// checkpointer truncates the log once no reader holds it.
pub const WAL_ALERT_BYTES: u64 = 64 * 1024 * 1024;

fn wal_path(db: &str) -> PathBuf {
    PathBuf::from(format!("{db}-wal"))
}

fn wal_bytes(wal: &Path) -> Option<u64> {
    std::fs::metadata(wal).ok().map(|m| m.len())
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
        let conn = Connection::open(path).map_err(from_sqlite)?;
        let wal = wal_path(&path.to_string_lossy());
        conn.busy_timeout(Duration::from_millis(100)).map_err(from_sqlite)?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("closeloop-checkpoint".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(Duration::from_millis(500))
                {
                    // A busy or failed checkpoint is simply retried at the next tick. A log past
                    // the alert size is also truncated once no reader needs it.
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    if wal_bytes(&wal).is_some_and(|n| n > WAL_ALERT_BYTES) {
                        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
                    }
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

/// A SQLite error as the store reports it: classified, in SQLite's own words. Deliberately
/// not a `From` impl, which would put rusqlite in the public API; store code writes
/// `.map_err(from_sqlite)?`.
pub(crate) fn from_sqlite(e: rusqlite::Error) -> StoreError {
    let kind = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => DbErrorKind::Busy,
        Some(ErrorCode::ConstraintViolation) => DbErrorKind::Constraint,
        Some(ErrorCode::DiskFull) => DbErrorKind::Full,
        _ => DbErrorKind::Other,
    };
    StoreError::Database { kind, message: e.to_string() }
}

/// Reads column `i` of a row as a status enum, inside a row function: an unknown text is
/// [`StoreError::UnknownStatus`].
pub(crate) fn status<T: std::str::FromStr<Err = StoreError>>(r: &sql::Row<'_>, i: usize) -> Result<T, StoreError> {
    r.get::<String>(i)?.parse()
}

impl StoreError {
    /// The kind of database refusal this is, if it is one.
    pub fn db_kind(&self) -> Option<DbErrorKind> {
        match self {
            StoreError::Database { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

impl Store {
    /// Opens the database `location` names: a `postgres://` or `postgresql://` URL is a
    /// PostgreSQL database ([`Store::open_postgres`]); anything else is a SQLite file path.
    pub fn connect(location: &str) -> Result<Self, StoreError> {
        if pg::is_url(location) {
            Self::open_postgres(location)
        } else {
            Self::open(Path::new(location))
        }
    }

    /// Opens a PostgreSQL database (which must exist; its tables are made on first use), for
    /// installations that run several closeloop processes on one database. Its signing key is
    /// never in the database and has no file beside it: set it with [`Store::set_signing_key`].
    pub fn open_postgres(url: &str) -> Result<Self, StoreError> {
        let mut store = Store {
            conn: Reader { conn: Conn::Postgres(Box::new(pg::Pg::connect(url)?)) },
            checkpointer: None,
            location: url.to_string(),
            opened_at_version: 0,
            signing_key: None,
        };
        // Nodes starting at once migrate one after another. The lock is the session's, taken
        // before the transaction begins: taken inside it, the second node's snapshot would
        // predate the first one's tables and it would make them again.
        if let Conn::Postgres(pg) = &store.conn.conn {
            pg.batch(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
        }
        let migrated = store.write(schema::migrate);
        if let Conn::Postgres(pg) = &store.conn.conn {
            pg.batch(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
        }
        store.opened_at_version = migrated?;
        Ok(store)
    }

    /// Which database this store runs on.
    pub fn backend(&self) -> Backend {
        self.conn.backend()
    }

    /// Opens (creating if needed) a database file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut store = Self::configure(Connection::open(path).map_err(from_sqlite)?, true)?;
        store.location = path.to_string_lossy().into_owned();
        store.conn.pragma_update("wal_autocheckpoint", "0")?;
        store.checkpointer = Some(Checkpointer::start(path)?);
        store.move_secret_out(path)?;
        Ok(store)
    }

    /// A secret an older closeloop kept in the database moves to the key file (so the links it
    /// made keep working) and leaves the database, where a copy of the file would give it away.
    fn move_secret_out(&mut self, path: &Path) -> Result<(), StoreError> {
        let Some(secret) = signing::legacy_secret(&self.conn)? else { return Ok(()) };
        signing::read_or_create_key(&signing::key_file(path), &secret)?;
        self.write(signing::forget_legacy_secret)
    }

    /// Uses `key` to sign and check customer signing links instead of the key file beside the
    /// database (an embedder's secret store; the CLI's `CLOSELOOP_SIGNING_KEY`).
    pub fn set_signing_key(&mut self, key: &[u8]) {
        self.signing_key = Some(key.to_vec());
    }

    /// The key that signs and checks customer signing links: the one set, else the key file
    /// beside the database file (`closeloop.db.key`, made on first need, readable by its owner
    /// only), else, for a database in memory, a key of its own. It is never stored in the
    /// database.
    /// Whether a signing key is known without making one: set, in memory, or its file there.
    pub(crate) fn has_signing_key(&self) -> bool {
        if self.backend() == Backend::Postgres {
            return self.signing_key.is_some();
        }
        self.signing_key.is_some()
            || self.location.starts_with("file:")
            || signing::key_file(Path::new(&self.location)).exists()
    }

    pub(crate) fn signing_key(&mut self, fresh: impl FnOnce() -> String) -> Result<Vec<u8>, StoreError> {
        if let Some(key) = &self.signing_key {
            return Ok(key.clone());
        }
        if self.backend() == Backend::Postgres {
            return Err(StoreError::Key(
                "a PostgreSQL installation keeps its signing key outside the database: set CLOSELOOP_SIGNING_KEY on every node".into(),
            ));
        }
        let key = if self.location.starts_with("file:") {
            fresh().into_bytes()
        } else {
            signing::read_or_create_key(&signing::key_file(Path::new(&self.location)), &fresh())?
        };
        self.signing_key = Some(key.clone());
        Ok(key)
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
        let mut store = Self::configure(Connection::open_with_flags(&uri, flags).map_err(from_sqlite)?, false)?;
        store.location = uri;
        Ok(store)
    }

    /// A second, read-only connection to this database, for host functions. It sees what is
    /// committed (for a memory database, also what the writer has not committed yet).
    pub fn read_only_connection(&self) -> Result<Reader, StoreError> {
        if self.backend() == Backend::Postgres {
            let pg = pg::Pg::connect(&self.location)?;
            pg.batch("SET default_transaction_read_only = on")?;
            return Ok(Reader { conn: Conn::Postgres(Box::new(pg)) });
        }
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(&self.location, flags).map_err(from_sqlite)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(from_sqlite)?;
        stable_plans(&conn)?;
        if self.location.starts_with("file:") {
            conn.pragma_update(None, "read_uncommitted", true).map_err(from_sqlite)?;
        }
        Ok(Reader::sqlite(conn))
    }

    fn configure(conn: Connection, file: bool) -> Result<Self, StoreError> {
        conn.busy_timeout(Duration::from_secs(5)).map_err(from_sqlite)?;
        stable_plans(&conn)?;
        if file {
            conn.pragma_update(None, "journal_mode", "WAL").map_err(from_sqlite)?;
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(from_sqlite)?;
        // After the log is reset it is cut back to this size, so one burst does not leave a
        // file of gigabytes behind.
        conn.pragma_update(None, "journal_size_limit", WAL_ALERT_BYTES as i64).map_err(from_sqlite)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(from_sqlite)?;
        // Savepoints (one per timer, one per automation step) journal the pages they touch;
        // in memory that costs a copy, on disk a write.
        conn.pragma_update(None, "temp_store", "MEMORY").map_err(from_sqlite)?;
        let mut store = Store {
            conn: Reader::sqlite(conn),
            checkpointer: None,
            location: String::new(),
            opened_at_version: 0,
            signing_key: None,
        };
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
                let tx = Tx::begin(&self.conn)?;
                let value = f(&tx)?;
                tx.commit()?;
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

    /// Runs `f` in a write transaction that is always rolled back: what a write would do,
    /// seen from inside it, with nothing kept (a page's "check before saving").
    pub(crate) fn rehearse<T, E>(&mut self, f: impl FnOnce(&Tx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let tx = Tx::begin(&self.conn)?;
        // Dropping the transaction rolls it back.
        f(&tx)
    }

    /// The schema version the database had before this process opened (and upgraded) it.
    pub fn opened_at_version(&self) -> i64 {
        self.opened_at_version
    }

    /// `PRAGMA data_version`: changes whenever another connection commits to the file, so a
    /// long-running process notices work written by others without re-reading tables.
    ///
    /// On PostgreSQL every committed write sends `NOTIFY closeloop`, and this connection
    /// `LISTEN`s from its first call: the version is how many other sessions' commits it has
    /// heard, read off the socket without a query.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        match &self.conn.conn {
            Conn::Sqlite(_) => self.conn.query_row("PRAGMA data_version", [], |r| r.get(0)),
            Conn::Postgres(pg) => pg.changes(),
        }
    }

    /// The connection, for reads. Reads see the last committed state.
    pub fn reader(&self) -> &Reader {
        &self.conn
    }

    /// Caps the database at about `bytes` (a quota). Writes past it fail cleanly with a
    /// "database or disk is full" error and leave nothing half-written, as a full disk would.
    pub fn limit_size(&self, bytes: u64) -> Result<(), StoreError> {
        if self.backend() == Backend::Postgres {
            return Err(StoreError::Io("a size limit is SQLite's; PostgreSQL's disk is the database server's".into()));
        }
        let page: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let pages = (bytes / page.max(1) as u64).max(1);
        self.conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
        Ok(())
    }

    /// Runs a passive WAL checkpoint now; returns (frames in the WAL, frames copied). The
    /// checkpointer thread does this every half second; readers still open keep frames back.
    pub fn checkpoint(&self) -> Result<(i64, i64), StoreError> {
        if self.backend() == Backend::Postgres {
            return Ok((0, 0));
        }
        self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(1)?, r.get(2)?)))
    }

    /// The write-ahead log's size in bytes (0 for a database in memory).
    pub fn wal_bytes(&self) -> u64 {
        if self.location.starts_with("file:") || self.backend() == Backend::Postgres {
            return 0;
        }
        wal_bytes(&wal_path(&self.location)).unwrap_or(0)
    }

    /// What to tell ops when the write-ahead log has grown past `limit` bytes
    /// ([`WAL_ALERT_BYTES`] in `run` and `serve`): a long read (an export, a report, a backup
    /// tool) keeps the log from being copied back, and the file grows until it ends.
    pub fn wal_alert(&self, limit: u64) -> Option<String> {
        let n = self.wal_bytes();
        (n > limit).then(|| {
            format!(
                "the write-ahead log {} is {} MiB (over {} MiB): a long-running read holds it; it is copied back and cut when that read ends",
                wal_path(&self.location).display(),
                n / (1024 * 1024),
                limit / (1024 * 1024)
            )
        })
    }

    /// Copies the whole log back and empties it, if no reader needs it: true when it did.
    pub fn truncate_wal(&self) -> Result<bool, StoreError> {
        if self.backend() == Backend::Postgres {
            return Ok(true);
        }
        let busy: i64 = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        Ok(busy == 0)
    }

    /// `PRAGMA synchronous` of the writing connection: 2 is FULL (every commit synced). On
    /// PostgreSQL, 2 when `synchronous_commit` is on (a commit returns once it is on disk).
    pub fn synchronous(&self) -> Result<i64, StoreError> {
        self.conn.query_row(
            self.conn.pick(
                "PRAGMA synchronous",
                "SELECT CASE WHEN current_setting('synchronous_commit') IN ('on', 'remote_write', 'remote_apply') THEN 2 ELSE 0 END::bigint",
            ),
            [],
            |r| r.get(0),
        )
    }

    /// `PRAGMA integrity_check`: `ok`, or what is wrong. PostgreSQL checks its own pages as it
    /// reads them, so there it is always `ok`.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        if self.backend() == Backend::Postgres {
            return Ok("ok".into());
        }
        self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
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
        matches!(self, StoreError::Database { kind: DbErrorKind::Busy, .. } | StoreError::Busy)
    }
}

/// Keeps each statement's query plan whatever values are bound to it. The bundled SQLite is
/// built with STAT4, which otherwise re-plans a cached statement with an `ORDER BY` every time
/// its parameters change: measured, that was a third of the cost of firing a timer.
fn stable_plans(conn: &Connection) -> Result<(), StoreError> {
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).map_err(from_sqlite)?;
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The stores a store test runs on: one in memory, and a fresh PostgreSQL database when
    /// `CLOSELOOP_TEST_POSTGRES` names a server (`.ci/run`'s PostgreSQL pass). The scratch
    /// server drops its databases when the test ends.
    pub(crate) fn each_store(test: &str, mut check: impl FnMut(Store)) {
        check(Store::open_in_memory().unwrap());
        if let Some(server) = std::env::var("CLOSELOOP_TEST_POSTGRES").ok().filter(|s| !s.is_empty()) {
            let mut scratch = ScratchServer::new(&server);
            let url = scratch.fresh(&format!("unit_{test}_{}", std::process::id())).unwrap();
            check(Store::open_postgres(&url).unwrap());
        }
    }

    fn settings(store: &Store) -> usize {
        channels::all(store.reader()).unwrap().len()
    }

    #[test]
    fn a_write_that_fails_or_panics_leaves_nothing_and_the_next_one_commits() {
        each_store("rollback", |mut store| {
            let failed = store.write(|tx| {
                channels::set(tx, "hook", "url", "https://a", "2026-01-01T00:00:00.000000Z")?;
                Err::<(), _>(StoreError::Io("no".into()))
            });
            assert!(failed.is_err());
            assert_eq!(settings(&store), 0);
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _ = store.write(|tx| {
                    channels::set(tx, "hook", "url", "https://b", "2026-01-01T00:00:00.000000Z")?;
                    panic!("a bug inside a write");
                    #[allow(unreachable_code)]
                    Ok::<_, StoreError>(())
                });
            }));
            assert!(panicked.is_err());
            assert_eq!(settings(&store), 0);
            store.write(|tx| channels::set(tx, "hook", "url", "https://c", "2026-01-01T00:00:00.000000Z")).unwrap();
            assert_eq!(settings(&store), 1);
        });
    }

    #[test]
    fn database_errors_are_classified_by_the_store() {
        each_store("errors", |mut store| {
            let err = store.write(|tx| tx.execute_batch("INSERT INTO no_such_table VALUES (1)")).unwrap_err();
            assert_eq!(err.db_kind(), Some(DbErrorKind::Other));
            assert!(!err.is_busy());
            let err = store.write(|tx| tx.execute_batch("INSERT INTO apps (id) VALUES ('x')")).unwrap_err();
            assert_eq!(err.db_kind(), Some(DbErrorKind::Constraint), "{err}");
            assert!(err.to_string().starts_with("database error: "), "{err}");
        });
    }

    #[test]
    fn a_status_reads_writes_shows_and_serialises_as_the_same_text() {
        fn check<T>(all: &[T], as_str: fn(T) -> &'static str)
        where
            T: Copy + std::fmt::Display + std::fmt::Debug + PartialEq + serde::Serialize,
            T: std::str::FromStr<Err = StoreError> + serde::de::DeserializeOwned,
        {
            for &s in all {
                let text = as_str(s);
                assert_eq!(s.to_string(), text);
                assert_eq!(format!("{s:<10}|"), format!("{text:<10}|"), "width applies to Display");
                assert_eq!(serde_json::to_value(s).unwrap(), serde_json::Value::String(text.into()));
                assert_eq!(serde_json::from_value::<T>(text.into()).unwrap(), s);
                assert_eq!(text.parse::<T>().unwrap(), s);
            }
        }
        check(TimerStatus::ALL, TimerStatus::as_str);
        check(TaskStatus::ALL, TaskStatus::as_str);
        check(OutboxStatus::ALL, OutboxStatus::as_str);
        check(ApprovalStatus::ALL, ApprovalStatus::as_str);
        check(StepStatus::ALL, StepStatus::as_str);
        let texts = |all: &[StepStatus]| all.iter().map(|s| s.as_str()).collect::<Vec<_>>();
        assert_eq!(texts(StepStatus::ALL), ["waiting", "open", "approved", "skipped", "rejected", "cancelled"]);
        assert!(matches!(
            "Open".parse::<TaskStatus>(),
            Err(StoreError::UnknownStatus { what: "task", value }) if value == "Open"
        ));
    }

    #[test]
    fn an_unknown_stored_status_is_a_store_error_naming_it() {
        each_store("status", |mut store| {
            let timer = TimerRow {
                id: 0,
                app: "a".into(),
                automation: "remind".into(),
                kind: timers::kind::RECORD.into(),
                form: Some("f".into()),
                record: Some("R-1".into()),
                due: "2026-01-01T00:00:00.000000Z".into(),
                anchor: None,
                payload: None,
                status: TimerStatus::Pending,
            };
            store.write(|tx| timers::insert(tx, &timer, "2026-01-01T00:00:00.000000Z")).unwrap();
            let read = timers::of_record(store.reader(), "f", "R-1", "remind").unwrap();
            assert_eq!(read[0].status, TimerStatus::Pending);
            store.write(|tx| tx.execute_batch("UPDATE timers SET status = 'snoozed'")).unwrap();
            let err = timers::of_record(store.reader(), "f", "R-1", "remind").unwrap_err();
            assert!(
                matches!(&err, StoreError::UnknownStatus { what: "timer", value } if value == "snoozed"),
                "{err:?}"
            );
            assert_eq!(err.to_string(), "a stored timer status is `snoozed`, which this closeloop does not know");
        });
    }
}
