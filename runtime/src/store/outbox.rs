//! The outbox: messages written in the same transaction as their cause, each with an
//! idempotency key, waiting for delivery.

use super::sql::{params, Row};
use super::{status, Reader, StoreError, Tx};

status_enum! {
    /// Where a message is on its way out.
    OutboxStatus("outbox") {
        /// Waiting for its next attempt (`next_at`).
        Pending = "pending",
        /// Leased by a deliverer that is sending it (until `lease_until`).
        Sending = "sending",
        /// Delivered.
        Sent = "sent",
        /// A dead letter: out of attempts or refused for good; an operator may replay it.
        Dead = "dead",
    }
}

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
    /// Where it is.
    pub status: OutboxStatus,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// When it was written.
    pub created_at: String,
}

const COLUMNS: &str =
    "id, channel, recipient, address, message, subject, body, key, form, record, status, attempts, created_at";

fn row(r: &Row<'_>) -> Result<OutboxRow, StoreError> {
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
        status: status(r, 10)?,
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
    (n == 1).then(|| tx.last_insert_rowid()).transpose()
}

/// Messages, optionally of one status, oldest first.
pub(crate) fn list(conn: &Reader, status: Option<OutboxStatus>) -> Result<Vec<OutboxRow>, StoreError> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM outbox WHERE (?1 IS NULL OR status = ?1) ORDER BY id"))?;
    let rows = stmt.query_map(params![status.map(OutboxStatus::as_str)], row)?;
    rows.collect::<Result<Vec<_>, _>>()
}

/// Takes up to `limit` messages due at `now` (pending and due, or left `sending` by a deliverer
/// whose lease ran out) and leases them until `lease_until`: nobody else sends them meanwhile.
pub(crate) fn claim_due(
    tx: &Tx<'_>,
    now: &str,
    lease_until: &str,
    token: &str,
    limit: usize,
) -> Result<Vec<OutboxRow>, StoreError> {
    let rows: Vec<OutboxRow> = {
        // On PostgreSQL, rows another node is claiming are skipped rather than waited for.
        let sqlite = format!(
            "SELECT {COLUMNS} FROM outbox
             WHERE (status = 'pending' AND next_at <= ?1) OR (status = 'sending' AND lease_until <= ?1)
             ORDER BY id LIMIT ?2"
        );
        let postgres = format!("{sqlite} FOR UPDATE SKIP LOCKED");
        let mut stmt = tx.prepare_cached(tx.pick(&sqlite, &postgres))?;
        let rows = stmt.query_map(params![now, limit as i64], row)?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    let mut lease =
        tx.prepare_cached("UPDATE outbox SET status = 'sending', lease_until = ?2, lease_token = ?3 WHERE id = ?1")?;
    for m in &rows {
        lease.execute(params![m.id, lease_until, token])?;
    }
    Ok(rows)
}

/// Records that an attempt's send begins, before the request leaves, and counts it: a
/// deliverer that dies while it waits for the answer leaves this row as the trace of what it may
/// have sent, and a message that keeps killing its deliverer still runs out of attempts.
pub(crate) fn attempt_started(tx: &Tx<'_>, message: i64, at: &str) -> Result<i64, StoreError> {
    tx.prepare_cached(
        "INSERT INTO outbox_attempts (message, at, ok, status, error, millis)
         VALUES (?1, ?2, 0, NULL, 'interrupted: no answer was recorded', 0)",
    )?
    .execute(params![message, at])?;
    let id = tx.last_insert_rowid()?;
    tx.prepare_cached("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?1")?.execute([message])?;
    Ok(id)
}

/// Records how an attempt ended.
pub(crate) fn attempt_finished(
    tx: &Tx<'_>,
    attempt: i64,
    ok: bool,
    status: Option<&str>,
    error: Option<&str>,
    millis: i64,
) -> Result<(), StoreError> {
    tx.prepare_cached("UPDATE outbox_attempts SET ok = ?2, status = ?3, error = ?4, millis = ?5 WHERE id = ?1")?
        .execute(params![attempt, ok, status, error, millis])?;
    Ok(())
}

/// Settles a message this deliverer still holds (`token`): `sent`, `dead`, or back to
/// `pending` until `next_at`. False when the lease was lost (it ran out and another deliverer
/// took the message over): then nothing changes.
pub(crate) fn settle(
    tx: &Tx<'_>,
    id: i64,
    token: &str,
    status: OutboxStatus,
    next_at: Option<&str>,
    error: Option<&str>,
) -> Result<bool, StoreError> {
    let n = tx
        .prepare_cached(
            "UPDATE outbox SET status = ?3, next_at = COALESCE(?4, next_at), last_error = ?5,
                    lease_until = NULL, lease_token = NULL
             WHERE id = ?1 AND status = 'sending' AND lease_token = ?2",
        )?
        .execute(params![id, token, status.as_str(), next_at, error])?;
    Ok(n == 1)
}

/// Gives a held message back without a verdict, due again at `next_at` (its channel is not
/// configured, or stopped for this pass).
pub(crate) fn release(tx: &Tx<'_>, id: i64, token: &str, next_at: &str) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE outbox SET status = 'pending', lease_until = NULL, lease_token = NULL, next_at = ?3
         WHERE id = ?1 AND status = 'sending' AND lease_token = ?2",
    )?
    .execute(params![id, token, next_at])?;
    Ok(())
}

/// Puts a dead letter back in line, due at `now`, with a fresh count of attempts (the old
/// attempts stay recorded). False when it is not dead.
pub(crate) fn replay(tx: &Tx<'_>, id: i64, now: &str) -> Result<bool, StoreError> {
    let n = tx
        .prepare_cached(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_at = ?2, lease_until = NULL, lease_token = NULL
             WHERE id = ?1 AND status = 'dead'",
        )?
        .execute(params![id, now])?;
    Ok(n == 1)
}

/// A message by id.
pub(crate) fn get(conn: &Reader, id: i64) -> Result<Option<OutboxRow>, StoreError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM outbox WHERE id = ?1"))?.query_opt([id], row)
}

/// When the next message is due (or a lease runs out): how long a deliverer may sleep.
pub(crate) fn next_due(conn: &Reader) -> Result<Option<String>, StoreError> {
    conn.prepare_cached(
        "SELECT MIN(t) FROM (SELECT MIN(next_at) AS t FROM outbox WHERE status = 'pending'
                                 UNION ALL SELECT MIN(lease_until) FROM outbox WHERE status = 'sending') AS due",
    )?
    .query_row([], |r| r.get(0))
}

/// A message's attempts, oldest first: (at, ok, status, error, millis).
pub(crate) fn attempts(conn: &Reader, id: i64) -> Result<Vec<AttemptRow>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT at, ok, status, error, millis FROM outbox_attempts WHERE message = ?1 ORDER BY id")?;
    let rows = stmt.query_map([id], |r| {
        Ok(AttemptRow { at: r.get(0)?, ok: r.get(1)?, status: r.get(2)?, error: r.get(3)?, millis: r.get(4)? })
    })?;
    rows.collect::<Result<Vec<_>, _>>()
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AttemptRow {
    /// When it started.
    pub at: String,
    /// Delivered.
    pub ok: bool,
    /// What the other side answered (`200`, `250 OK`).
    pub status: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// How long it took.
    pub millis: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    fn message(key: &str) -> OutboxRow {
        OutboxRow {
            id: 0,
            channel: "hook".into(),
            recipient: "m_li".into(),
            address: None,
            message: "m".into(),
            subject: None,
            body: "b".into(),
            key: key.into(),
            form: None,
            record: None,
            status: OutboxStatus::Pending,
            attempts: 0,
            created_at: "2026-11-26T00:00:00.000000Z".into(),
        }
    }

    #[test]
    fn a_deliverer_whose_lease_ran_out_cannot_settle_what_another_took_over() {
        crate::store::tests::each_store("lease", |mut store| {
            store
                .write(|tx| {
                    push(tx, &message("k1"))?;
                    let first = claim_due(tx, "2026-11-26T00:00:00.000000Z", "2026-11-26T00:05:00.000000Z", "A", 10)?;
                    assert_eq!(first.len(), 1);
                    // Within the lease nobody else takes it.
                    assert!(claim_due(tx, "2026-11-26T00:04:00.000000Z", "2026-11-26T00:09:00.000000Z", "B", 10)?
                        .is_empty());
                    // After it, B does; A's late verdict changes nothing, B's stands.
                    assert_eq!(
                        claim_due(tx, "2026-11-26T00:06:00.000000Z", "2026-11-26T00:11:00.000000Z", "B", 10)?.len(),
                        1
                    );
                    assert!(!settle(
                        tx,
                        first[0].id,
                        "A",
                        OutboxStatus::Pending,
                        Some("2026-11-26T01:00:00.000000Z"),
                        Some("late")
                    )?);
                    assert!(settle(tx, first[0].id, "B", OutboxStatus::Sent, None, None)?);
                    assert!(!settle(tx, first[0].id, "A", OutboxStatus::Dead, None, None)?);
                    Ok::<_, StoreError>(())
                })
                .unwrap();
            assert_eq!(list(store.reader(), Some(OutboxStatus::Sent)).unwrap().len(), 1);
        });
    }
}
