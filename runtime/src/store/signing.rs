//! Customer signing: the install's secret and the single-use links made from it.

use rusqlite::{params, OptionalExtension};

use super::{from_sqlite, Reader, StoreError, Tx};

/// The install's secret by name, created from `fresh` on first use.
pub(crate) fn secret(tx: &Tx<'_>, name: &str, fresh: &str, at: &str) -> Result<String, StoreError> {
    tx.prepare_cached(
        "INSERT INTO install_secrets (name, value, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
    )?
    .execute(params![name, fresh, at])
    .map_err(from_sqlite)?;
    tx.prepare_cached("SELECT value FROM install_secrets WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .map_err(from_sqlite)
}

/// The install's secret by name, if it was ever made.
pub(crate) fn existing_secret(conn: &Reader, name: &str) -> Result<Option<String>, StoreError> {
    conn.prepare_cached("SELECT value FROM install_secrets WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()
        .map_err(from_sqlite)
}

/// A stored link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRow {
    /// Its nonce (in the token).
    pub nonce: String,
    /// The record's form.
    pub form: String,
    /// The record.
    pub record: String,
    /// The version it was made for.
    pub version: i64,
    /// That version's data hash.
    pub version_hash: String,
    /// When it stops working.
    pub expires_at: String,
    /// When it was used, if it was.
    pub used_at: Option<String>,
}

/// Stores a new link.
pub(crate) fn add(tx: &Tx<'_>, l: &LinkRow, at: &str, by: &str) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO sign_links (nonce, form, record, version, version_hash, expires_at, created_at, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![l.nonce, l.form, l.record, l.version, l.version_hash, l.expires_at, at, by])
    .map_err(from_sqlite)?;
    Ok(())
}

/// A link by nonce.
pub(crate) fn get(conn: &Reader, nonce: &str) -> Result<Option<LinkRow>, StoreError> {
    conn.prepare_cached(
        "SELECT nonce, form, record, version, version_hash, expires_at, used_at FROM sign_links WHERE nonce = ?1",
    )?
    .query_row([nonce], |r| {
        Ok(LinkRow {
            nonce: r.get(0)?,
            form: r.get(1)?,
            record: r.get(2)?,
            version: r.get(3)?,
            version_hash: r.get(4)?,
            expires_at: r.get(5)?,
            used_at: r.get(6)?,
        })
    })
    .optional()
    .map_err(from_sqlite)
}

/// Marks a link used; false when it already was (single use, even under a race).
pub(crate) fn use_once(tx: &Tx<'_>, nonce: &str, at: &str, signer: &str) -> Result<bool, StoreError> {
    Ok(tx
        .prepare_cached("UPDATE sign_links SET used_at = ?2, signer = ?3 WHERE nonce = ?1 AND used_at IS NULL")?
        .execute(params![nonce, at, signer])
        .map_err(from_sqlite)?
        == 1)
}

/// The signature a record received, if any: (signer, when, version, version hash).
pub(crate) fn signed(
    conn: &Reader,
    form: &str,
    record: &str,
) -> Result<Option<(String, String, i64, String)>, StoreError> {
    conn.prepare_cached(
        "SELECT signer, used_at, version, version_hash FROM sign_links
             WHERE form = ?1 AND record = ?2 AND used_at IS NOT NULL ORDER BY used_at DESC LIMIT 1",
    )?
    .query_row(params![form, record], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
    .optional()
    .map_err(from_sqlite)
}
