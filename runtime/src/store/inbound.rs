//! Idempotency keys of received events: the key, what was sent with it, and the report
//! given back, so a sender's retry gets the same answer and changes nothing.

use super::sql::params;
use super::{Reader, StoreError, Tx};

/// An event kept under its sender's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Kept {
    /// The sender's key.
    pub key: String,
    /// The event's name.
    pub event: String,
    /// SHA-256 of the event's name and checked data.
    pub request: String,
    /// SHA-256 of the event's name and data as sent.
    pub raw: String,
    /// The report, as JSON.
    pub report: String,
}

/// The event kept under `key`, if any.
pub(crate) fn get(conn: &Reader, key: &str) -> Result<Option<Kept>, StoreError> {
    conn.prepare_cached("SELECT key, event, request, raw, report FROM inbound_keys WHERE key = ?1")?
        .query_opt([key], |r| {
            Ok(Kept { key: r.get(0)?, event: r.get(1)?, request: r.get(2)?, raw: r.get(3)?, report: r.get(4)? })
        })
}

/// Keeps an event under its key (in the transaction that received it).
pub(crate) fn put(tx: &Tx<'_>, kept: &Kept, at: &str) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO inbound_keys (key, event, request, raw, report, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![kept.key, kept.event, kept.request, kept.raw, kept.report, at])?;
    Ok(())
}
