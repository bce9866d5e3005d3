//! SOP tasks: opened from a template for one record, done with evidence or cancelled.

use super::sql::{params, Row};
use super::{status, Reader, StoreError, Tx};

status_enum! {
    /// Where a task is.
    TaskStatus("task") {
        /// Waiting to be done.
        Open = "open",
        /// Done, with its evidence.
        Done = "done",
        /// Closed without being done (its SOP was cancelled).
        Cancelled = "cancelled",
    }
}

/// A stored task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    /// Its id.
    pub id: i64,
    /// The app.
    pub app: String,
    /// The record's form.
    pub form: String,
    /// The record.
    pub record: String,
    /// The SOP.
    pub sop: String,
    /// The task's id in the SOP.
    pub task: String,
    /// The title, in the app's language.
    pub title: String,
    /// Who should do it.
    pub assignee: Option<String>,
    /// When it is due, as written for people: a date (`2026-12-03`) or an instant.
    pub due: Option<String>,
    /// The instant after which it is overdue (stored time format).
    pub due_at: Option<String>,
    /// Where it is.
    pub status: TaskStatus,
    /// When it was opened.
    pub created_at: String,
    /// When it was done or cancelled.
    pub done_at: Option<String>,
    /// Who did it.
    pub done_by: Option<String>,
    /// The evidence given (JSON).
    pub evidence: Option<String>,
}

const COLUMNS: &str =
    "id, app, form, record, sop, task, title, assignee, due, due_at, status, created_at, done_at, done_by, evidence";

fn row(r: &Row<'_>) -> Result<TaskRow, StoreError> {
    Ok(TaskRow {
        id: r.get(0)?,
        app: r.get(1)?,
        form: r.get(2)?,
        record: r.get(3)?,
        sop: r.get(4)?,
        task: r.get(5)?,
        title: r.get(6)?,
        assignee: r.get(7)?,
        due: r.get(8)?,
        due_at: r.get(9)?,
        status: status(r, 10)?,
        created_at: r.get(11)?,
        done_at: r.get(12)?,
        done_by: r.get(13)?,
        evidence: r.get(14)?,
    })
}

/// Opens a task; `None` when the same SOP task is already open for the record.
pub(crate) fn open(tx: &Tx<'_>, t: &TaskRow) -> Result<Option<i64>, StoreError> {
    let n = tx
        .prepare_cached(
            "INSERT INTO tasks (app, form, record, sop, task, title, assignee, due, due_at, status, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'open', ?10)
             ON CONFLICT (form, record, sop, task) WHERE status = 'open' DO NOTHING",
        )?
        .execute(params![t.app, t.form, t.record, t.sop, t.task, t.title, t.assignee, t.due, t.due_at, t.created_at])?;
    (n == 1).then(|| tx.last_insert_rowid()).transpose()
}

/// Moves an open task's due (its record's anchor date changed).
pub(crate) fn set_due(tx: &Tx<'_>, id: i64, due: Option<&str>, due_at: Option<&str>) -> Result<(), StoreError> {
    tx.prepare_cached("UPDATE tasks SET due = ?2, due_at = ?3 WHERE id = ?1 AND status = 'open'")?
        .execute(params![id, due, due_at])?;
    Ok(())
}

/// A task by id.
pub(crate) fn get(conn: &Reader, id: i64) -> Result<Option<TaskRow>, StoreError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM tasks WHERE id = ?1"))?.query_opt([id], row)
}

/// A record's tasks, oldest first.
pub(crate) fn of_record(conn: &Reader, form: &str, record: &str) -> Result<Vec<TaskRow>, StoreError> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM tasks WHERE form = ?1 AND record = ?2 ORDER BY id"))?;
    let rows = stmt.query_map(params![form, record], row)?;
    rows.collect::<Result<Vec<_>, _>>()
}

/// Every task opened on `form`'s records, record by record, oldest first (for reports).
pub(crate) fn of_form(conn: &Reader, form: &str) -> Result<Vec<TaskRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM tasks WHERE form = ?1 ORDER BY record, id"))?;
    let rows = stmt.query_map(params![form], row)?;
    rows.collect::<Result<Vec<_>, _>>()
}

/// Tasks, optionally only one member's, only open ones, or only those overdue at `now`.
pub(crate) fn list(
    conn: &Reader,
    assignee: Option<&str>,
    open_only: bool,
    overdue_at: Option<&str>,
) -> Result<Vec<TaskRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM tasks
         WHERE (?1 IS NULL OR assignee = ?1)
           AND (?2 = 0 OR status = 'open')
           AND (?3 IS NULL OR (status = 'open' AND due_at IS NOT NULL AND due_at < ?3))
         ORDER BY due_at IS NULL, due_at, id"
    ))?;
    let rows = stmt.query_map(params![assignee, open_only, overdue_at], row)?;
    rows.collect::<Result<Vec<_>, _>>()
}

/// Open tasks overdue at `now` on records of these forms (for boards).
pub(crate) fn overdue_on(conn: &Reader, forms: &[String], now: &str) -> Result<Vec<TaskRow>, StoreError> {
    let mut out = Vec::new();
    for form in forms {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM tasks WHERE status = 'open' AND due_at < ?1 AND form = ?2 ORDER BY due_at, id"
        ))?;
        let rows = stmt.query_map(params![now, form], row)?;
        out.extend(rows.collect::<Result<Vec<_>, _>>()?);
    }
    Ok(out)
}

/// Closes an open task as `done` or `cancelled`. False when it was not open.
pub(crate) fn close(
    tx: &Tx<'_>,
    id: i64,
    status: TaskStatus,
    at: &str,
    by: &str,
    evidence: Option<&str>,
) -> Result<bool, StoreError> {
    let n = tx
        .prepare_cached(
            "UPDATE tasks SET status = ?2, done_at = ?3, done_by = ?4, evidence = ?5 WHERE id = ?1 AND status = 'open'",
        )?
        .execute(params![id, status.as_str(), at, by, evidence])?;
    Ok(n == 1)
}
