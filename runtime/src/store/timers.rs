//! Durable timers: one row per moment something should happen (a record's SLA, a schedule's
//! next run, a retry), claimed by a conditional update so each fires at most once.

use super::sql::{params, Row};
use super::{status, Reader, StoreError, Tx};

/// What a timer is for.
pub mod kind {
    /// A moment relative to a record's date field.
    pub const RECORD: &str = "record";
    /// The next run of a cron schedule.
    pub const CRON: &str = "cron";
    /// Another try of an automation step that failed.
    pub const RETRY: &str = "retry";
    /// An approval step's timeout.
    pub const APPROVAL: &str = "approval";
}

status_enum! {
    /// Where a timer is: waiting, or how it ended. Claiming moves it out of `pending` (to
    /// `fired`) before its steps run; how they ended then settles it.
    TimerStatus("timer") {
        /// Waiting for its due time.
        Pending = "pending",
        /// Claimed, and its steps ran (or are running in the claiming transaction).
        Fired = "fired",
        /// Not run: its late policy said skip, or its automation skipped.
        Skipped = "skipped",
        /// Its automation failed.
        Failed = "failed",
        /// Not run: its automation, form or record went away, or its schedule changed.
        Cancelled = "cancelled",
    }
}

/// A stored timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerRow {
    /// Its id.
    pub id: i64,
    /// The app whose automation it runs.
    pub app: String,
    /// The automation.
    pub automation: String,
    /// `record`, `cron` or `retry`.
    pub kind: String,
    /// The record's form, for record timers and retries.
    pub form: Option<String>,
    /// The record.
    pub record: Option<String>,
    /// When it is due (stored time format, UTC).
    pub due: String,
    /// The anchor value it was computed from.
    pub anchor: Option<String>,
    /// What a retry needs (JSON).
    pub payload: Option<String>,
    /// Where it is.
    pub status: TimerStatus,
}

const COLUMNS: &str = "id, app, automation, kind, form, record, due, anchor, payload, status";

fn row(r: &Row<'_>) -> Result<TimerRow, StoreError> {
    Ok(TimerRow {
        id: r.get(0)?,
        app: r.get(1)?,
        automation: r.get(2)?,
        kind: r.get(3)?,
        form: r.get(4)?,
        record: r.get(5)?,
        due: r.get(6)?,
        anchor: r.get(7)?,
        payload: r.get(8)?,
        status: status(r, 9)?,
    })
}

/// Stores a pending timer; returns its id.
pub(crate) fn insert(tx: &Tx<'_>, t: &TimerRow, at: &str) -> Result<i64, StoreError> {
    tx.prepare_cached(
        "INSERT INTO timers (app, automation, kind, form, record, due, anchor, payload, status, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?9)",
    )?
    .execute(params![t.app, t.automation, t.kind, t.form, t.record, t.due, t.anchor, t.payload, at])?;
    tx.last_insert_rowid()
}

/// The timers of one record for one automation, newest first.
pub(crate) fn of_record(
    conn: &Reader,
    form: &str,
    record: &str,
    automation: &str,
) -> Result<Vec<TimerRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM timers WHERE form = ?1 AND record = ?2 AND automation = ?3 AND kind = 'record'
         ORDER BY id DESC"
    ))?;
    let rows = stmt.query_map(params![form, record, automation], row)?;
    rows.collect::<Result<Vec<_>, _>>()
}

/// The pending timer of a cron automation, if any.
pub(crate) fn pending_cron(conn: &Reader, app: &str, automation: &str) -> Result<Option<TimerRow>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM timers WHERE app = ?1 AND automation = ?2 AND kind = 'cron' AND status = 'pending'"
    ))?
    .query_opt(params![app, automation], row)
}

/// Pending timers due at or before `now`, oldest first, at most `limit`. On PostgreSQL the rows
/// are locked for the claiming transaction, and rows another node has locked are skipped: nodes
/// share the due timers instead of queueing behind each other (each is still fired once: the
/// claim is the conditional `finish`).
pub(crate) fn due(conn: &Reader, now: &str, limit: usize) -> Result<Vec<TimerRow>, StoreError> {
    let sqlite =
        format!("SELECT {COLUMNS} FROM timers WHERE status = 'pending' AND due <= ?1 ORDER BY due, id LIMIT ?2");
    let postgres = format!("{sqlite} FOR UPDATE SKIP LOCKED");
    let mut stmt = conn.prepare_cached(conn.pick(&sqlite, &postgres))?;
    let rows = stmt.query_map(params![now, limit as i64], row)?;
    rows.collect::<Result<Vec<_>, _>>()
}

/// The earliest pending due time, for a scheduler deciding how long to sleep.
pub(crate) fn next_due(conn: &Reader) -> Result<Option<String>, StoreError> {
    conn.prepare_cached("SELECT MIN(due) FROM timers WHERE status = 'pending'")?.query_row([], |r| r.get(0))
}

/// Moves a pending timer from `pending` to `status`, with what happened. False when it was not
/// pending any more: someone else claimed it, and the caller must do nothing.
pub(crate) fn finish(tx: &Tx<'_>, id: i64, status: TimerStatus, at: &str, outcome: &str) -> Result<bool, StoreError> {
    let n = tx
        .prepare_cached(
            "UPDATE timers SET status = ?2, done_at = ?3, outcome = ?4 WHERE id = ?1 AND status = 'pending'",
        )?
        .execute(params![id, status.as_str(), at, outcome])?;
    Ok(n == 1)
}

/// Cancels the pending timers of automations an app no longer has (or no longer enables).
pub(crate) fn cancel_except(tx: &Tx<'_>, app: &str, keep: &[&str], at: &str) -> Result<usize, StoreError> {
    let mut stmt = tx.prepare_cached("SELECT id, automation FROM timers WHERE app = ?1 AND status = 'pending'")?;
    let pending: Vec<(i64, String)> =
        stmt.query_map([app], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
    let mut n = 0;
    for (id, automation) in pending {
        if !keep.contains(&automation.as_str())
            && finish(tx, id, TimerStatus::Cancelled, at, r#"{"reason":"the automation was removed or disabled"}"#)?
        {
            n += 1;
        }
    }
    Ok(n)
}

/// How many timers are in each status.
pub(crate) fn counts(conn: &Reader) -> Result<Vec<(TimerStatus, i64)>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT status, COUNT(*) FROM timers GROUP BY status ORDER BY status")?;
    let rows = stmt.query_map([], |r| Ok((status(r, 0)?, r.get(1)?)))?;
    rows.collect::<Result<Vec<_>, _>>()
}

/// Records how a claimed timer ended (`fired`, `skipped`, `failed`, `cancelled`) and why.
pub(crate) fn set_outcome(tx: &Tx<'_>, id: i64, status: TimerStatus, outcome: &str) -> Result<(), StoreError> {
    tx.prepare_cached("UPDATE timers SET status = ?2, outcome = ?3 WHERE id = ?1")?.execute(params![
        id,
        status.as_str(),
        outcome
    ])?;
    Ok(())
}

/// Ids of a form's records that have no timer of this automation (cancelled ones aside).
pub(crate) fn records_without(
    conn: &Reader,
    t: &super::FormTable,
    automation: &str,
) -> Result<Vec<String>, StoreError> {
    let sql = format!(
        "SELECT r.id FROM {} r WHERE NOT EXISTS
           (SELECT 1 FROM timers x WHERE x.form = ?1 AND x.record = r.id AND x.automation = ?2
              AND x.status != 'cancelled')
         ORDER BY r.rowid",
        t.quoted()
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params![t.form, automation], |r| r.get(0))?;
    rows.collect::<Result<Vec<_>, _>>()
}

/// Records whose pending timer of this automation was armed under another rule than `spec`.
pub(crate) fn pending_under_other_rule(
    conn: &Reader,
    form: &str,
    automation: &str,
    spec: &str,
) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT record FROM timers WHERE form = ?1 AND automation = ?2 AND kind = 'record' AND status = 'pending'
           AND (payload IS NULL OR payload != ?3)",
    )?;
    let rows = stmt.query_map(params![form, automation, spec], |r| r.get(0))?;
    rows.collect::<Result<Vec<_>, _>>()
}

/// A record's pending timers, soonest first.
pub(crate) fn pending_of_record(conn: &Reader, form: &str, record: &str) -> Result<Vec<TimerRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM timers WHERE form = ?1 AND record = ?2 AND kind = 'record' AND status = 'pending'
         ORDER BY due, id"
    ))?;
    let rows = stmt.query_map(params![form, record], row)?;
    rows.collect::<Result<Vec<_>, _>>()
}
