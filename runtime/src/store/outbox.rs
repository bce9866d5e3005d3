//! The outbox: messages written in the same transaction as their cause, each with an
//! idempotency key, waiting for delivery.

use rusqlite::{params, Connection, Row};

use super::{StoreError, Tx};

/// A message in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OutboxRow {
    /// Its id.
    pub id: i64,
    /// The channel (an id from the app).
    pub channel: String,
    /// Who it is for: a member id, or the record's contact field.
    #[serde(rename = "to")]
    pub recipient: String,
    /// Where the channel sends it: a phone, an email address, a member id.
    pub address: Option<String>,
    /// The message template.
    pub message: String,
    /// The rendered subject, for channels that have one.
    pub subject: Option<String>,
    /// The rendered text.
    pub body: String,
    /// The idempotency key: the same cause never makes two messages.
    pub key: String,
    /// The record it is about.
    pub form: Option<String>,
    /// The record's id.
    pub record: Option<String>,
    /// `pending`, `sent` or `dead`.
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// When it was written.
    pub created_at: String,
}

const COLUMNS: &str =
    "id, channel, recipient, address, message, subject, body, key, form, record, status, attempts, created_at";

fn row(r: &Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        id: r.get(0)?,
        channel: r.get(1)?,
        recipient: r.get(2)?,
        address: r.get(3)?,
        message: r.get(4)?,
        subject: r.get(5)?,
        body: r.get(6)?,
        key: r.get(7)?,
        form: r.get(8)?,
        record: r.get(9)?,
        status: r.get(10)?,
        attempts: r.get(11)?,
        created_at: r.get(12)?,
    })
}

/// Queues a message; `None` when a message with the same key is already there.
pub(crate) fn push(tx: &Tx<'_>, m: &OutboxRow) -> Result<Option<i64>, StoreError> {
    let n = tx
        .prepare_cached(
            "INSERT INTO outbox (channel, recipient, address, message, subject, body, key, form, record, status,
                                 attempts, created_at, next_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', 0, ?10, ?10)
             ON CONFLICT (key) DO NOTHING",
        )?
        .execute(params![
            m.channel,
            m.recipient,
            m.address,
            m.message,
            m.subject,
            m.body,
            m.key,
            m.form,
            m.record,
            m.created_at
        ])?;
    Ok((n == 1).then(|| tx.last_insert_rowid()))
}

/// Messages, optionally of one status, oldest first.
pub(crate) fn list(conn: &Connection, status: Option<&str>) -> Result<Vec<OutboxRow>, StoreError> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM outbox WHERE (?1 IS NULL OR status = ?1) ORDER BY id"))?;
    let rows = stmt.query_map(params![status], row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
