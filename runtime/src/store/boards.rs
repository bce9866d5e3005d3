//! Boards: which records are flagged on which board, why, and since when.

use super::sql::params;
use super::{Reader, StoreError, Tx};

/// A flagged record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagRow {
    /// The board.
    pub board: String,
    /// The record's form.
    pub form: String,
    /// The record's id.
    pub record: String,
    /// Why it is on the board.
    pub reason: String,
    /// Since when (RFC 3339 UTC).
    pub since: String,
}

/// Flags a record on a board; a record already flagged there keeps its first `since` and
/// takes the new reason.
pub(crate) fn flag(tx: &Tx<'_>, f: &FlagRow) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO flags (board, form, record, reason, since) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (board, form, record) DO UPDATE SET reason = ?4",
    )?
    .execute(params![f.board, f.form, f.record, f.reason, f.since])?;
    Ok(())
}

/// A board's flagged records, oldest first.
pub(crate) fn list(conn: &Reader, board: &str) -> Result<Vec<FlagRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT board, form, record, reason, since FROM flags WHERE board = ?1 ORDER BY since, form, record",
    )?;
    let rows = stmt.query_map([board], |r| {
        Ok(FlagRow { board: r.get(0)?, form: r.get(1)?, record: r.get(2)?, reason: r.get(3)?, since: r.get(4)? })
    })?;
    rows.collect::<Result<Vec<_>, _>>()
}

/// Takes a record off a board; false when it was not on it.
pub(crate) fn unflag(tx: &Tx<'_>, board: &str, form: &str, record: &str) -> Result<bool, StoreError> {
    let n = tx
        .prepare_cached("DELETE FROM flags WHERE board = ?1 AND form = ?2 AND record = ?3")?
        .execute(params![board, form, record])?;
    Ok(n == 1)
}

/// Why a record waits on boards (their reasons), if it does.
pub(crate) fn reasons_of(conn: &Reader, form: &str, record: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT reason FROM flags WHERE form = ?1 AND record = ?2 ORDER BY since")?;
    let rows = stmt.query_map(params![form, record], |r| r.get(0))?;
    rows.collect::<Result<Vec<String>, _>>()
}
