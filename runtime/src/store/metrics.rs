//! What the reports read: one form's events in record order, with the few values of each
//! event's body a metric looks at taken out by SQLite, so a year of events is read without
//! parsing a JSON document per row in Rust.

use super::sql::params;
use super::{Reader, StoreError};

/// One event of a record, as the reports see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogRow {
    /// Position in the chain.
    pub seq: i64,
    /// When (stored time format, RFC 3339 UTC).
    pub at: String,
    /// Who.
    pub actor: String,
    /// What: `record.created`, `record.action`, `approval.approved`, `task.done`, ...
    pub kind: String,
    /// The record.
    pub record: String,
    /// `state`: the record's state after a record event.
    pub state: Option<String>,
    /// `owner`: the record's owner after a record event.
    pub owner: Option<String>,
    /// `action.id` of a `record.action`; `event` of an `event.received`.
    pub name: Option<String>,
    /// `approval`: the run an approval event (or a `sign.signed`) belongs to.
    pub run: Option<i64>,
    /// `chain` of an approval event; `sop` of a `task.done`.
    pub group: Option<String>,
    /// `step` of an approval event or a `task.done`.
    pub step: Option<String>,
    /// `due_at` of an opened step.
    pub due_at: Option<String>,
    /// `needed` approvals of an opened step.
    pub needed: Option<i64>,
    /// `status` of a finished run.
    pub status: Option<String>,
    /// An opened step waits for a signature; a `task.done` was late.
    pub flag: bool,
    /// The record's `region` after a record event, when it has one.
    pub region: Option<String>,
}

/// Calls `visit` with each event of `form` whose kind is in `kinds`, record by record and in
/// order within a record. Stops at the first error `visit` returns.
pub(crate) fn each_event(
    conn: &Reader,
    form: &str,
    kinds: &[&str],
    visit: &mut dyn FnMut(LogRow) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let kinds = serde_json::to_string(kinds)?;
    // Each value is taken only from the kinds that write it: a signed record's event carries
    // `signature` too, as an object (who signed), which is no flag.
    let sqlite = "SELECT seq, at, actor, kind, record,
                body ->> '$.state', body ->> '$.owner',
                coalesce(body ->> '$.action.id', body ->> '$.event'),
                CASE WHEN kind LIKE 'approval.%' OR kind = 'sign.signed' THEN body ->> '$.approval' END, coalesce(body ->> '$.chain', body ->> '$.sop'),
                body ->> '$.step', body ->> '$.due_at', body ->> '$.needed', body ->> '$.status',
                CASE kind WHEN 'approval.step_opened' THEN body ->> '$.signature'
                          WHEN 'task.done' THEN body ->> '$.late' END,
                data ->> '$.region'
         FROM events
         WHERE form = ?1 AND record IS NOT NULL AND kind IN (SELECT value FROM json_each(?2))
         ORDER BY record, seq";
    // `->>` of SQLite gives a JSON number as a number; PostgreSQL's `->` (a `jsonb`) reads back
    // the same way (see `pg::value`), where its `->>` would give text.
    let postgres = "SELECT seq, at, actor, kind, record,
                NULLIF(body::jsonb -> 'state', 'null'), NULLIF(body::jsonb -> 'owner', 'null'),
                coalesce(NULLIF(body::jsonb #> '{action,id}', 'null'), NULLIF(body::jsonb -> 'event', 'null')),
                CASE WHEN kind LIKE 'approval.%' OR kind = 'sign.signed' THEN NULLIF(body::jsonb -> 'approval', 'null') END,
                coalesce(NULLIF(body::jsonb -> 'chain', 'null'), NULLIF(body::jsonb -> 'sop', 'null')),
                NULLIF(body::jsonb -> 'step', 'null'), NULLIF(body::jsonb -> 'due_at', 'null'),
                NULLIF(body::jsonb -> 'needed', 'null'), NULLIF(body::jsonb -> 'status', 'null'),
                CASE kind WHEN 'approval.step_opened' THEN NULLIF(body::jsonb -> 'signature', 'null')
                          WHEN 'task.done' THEN NULLIF(body::jsonb -> 'late', 'null') END,
                NULLIF(data::jsonb -> 'region', 'null')
         FROM events
         WHERE form = ?1 AND record IS NOT NULL AND kind IN (SELECT jsonb_array_elements_text(CAST(CAST(?2 AS TEXT) AS JSONB)))
         ORDER BY record, seq";
    let mut stmt = conn.prepare_cached(conn.pick(sqlite, postgres))?;
    let mut rows = stmt.query(params![form, kinds])?;
    while let Some(r) = rows.next()? {
        let row = LogRow {
            seq: r.get(0)?,
            at: r.get(1)?,
            actor: r.get(2)?,
            kind: r.get(3)?,
            record: r.get(4)?,
            state: r.get(5)?,
            owner: r.get(6)?,
            name: r.get(7)?,
            run: r.get(8)?,
            group: r.get(9)?,
            step: r.get(10)?,
            due_at: r.get(11)?,
            needed: r.get(12)?,
            status: r.get(13)?,
            flag: r.get::<Option<i64>>(14)?.unwrap_or(0) != 0,
            region: r.get(15)?,
        };
        visit(row)?;
    }
    Ok(())
}
