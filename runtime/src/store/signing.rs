//! Customer signing: the install's signing key, kept outside the database, and the
//! single-use links made with it. A link's nonce is stored only as its SHA-256, so a copy of the
//! database holds nothing that makes or completes a link.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::sql::params;
use super::{audit::sha256_hex, Reader, StoreError, Tx};

/// The secret an older closeloop kept in the database, if it is still there.
pub(crate) fn legacy_secret(conn: &Reader) -> Result<Option<String>, StoreError> {
    conn.prepare_cached("SELECT value FROM install_secrets WHERE name = 'sign'")?.query_opt([], |r| r.get(0))
}

/// Takes the old secret out of the database once it lives in the key file.
pub(crate) fn forget_legacy_secret(tx: &Tx<'_>) -> Result<(), StoreError> {
    tx.prepare_cached("DELETE FROM install_secrets WHERE name = 'sign'")?.execute([])?;
    Ok(())
}

/// Replaces each stored nonce by its hash, marking the link as made before (its MAC covers the
/// nonce itself, which the token still carries).
pub(crate) fn hash_old_nonces(tx: &Tx<'_>) -> Result<(), StoreError> {
    let nonces: Vec<String> = {
        let mut q = tx.prepare_cached("SELECT nonce FROM sign_links")?;
        let rows = q.query_map([], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut update = tx.prepare_cached("UPDATE sign_links SET nonce = ?2, legacy = 1 WHERE nonce = ?1")?;
    for nonce in nonces {
        update.execute(params![nonce, sha256_hex(nonce.as_bytes())])?;
    }
    Ok(())
}

/// The key file of a database file: `closeloop.db.key` beside `closeloop.db`.
pub fn key_file(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

/// Reads the key file, or creates it with `fresh` (readable by its owner only) when there is
/// none. Two processes creating it at once agree: the second reads what the first wrote.
pub(crate) fn read_or_create_key(path: &Path, fresh: &str) -> Result<Vec<u8>, StoreError> {
    let io = |e: std::io::Error| StoreError::Key(format!("{}: {e}", path.display()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(fresh.as_bytes()).and_then(|()| file.sync_all()).map_err(io)?;
            Ok(fresh.as_bytes().to_vec())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let key = std::fs::read(path).map_err(io)?;
            let key = String::from_utf8_lossy(&key).trim().as_bytes().to_vec();
            if key.is_empty() {
                return Err(StoreError::Key(format!("{} is empty; delete it to make a new key", path.display())));
            }
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

/// A stored link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRow {
    /// The SHA-256 of its nonce (the token carries the nonce itself).
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
    /// Made before nonces were stored hashed: its MAC covers the nonce itself.
    pub legacy: bool,
}

/// Stores a new link.
pub(crate) fn add(tx: &Tx<'_>, l: &LinkRow, at: &str, by: &str) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO sign_links (nonce, form, record, version, version_hash, expires_at, created_at, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![l.nonce, l.form, l.record, l.version, l.version_hash, l.expires_at, at, by])?;
    Ok(())
}

/// A link by the hash of its nonce.
pub(crate) fn get(conn: &Reader, nonce: &str) -> Result<Option<LinkRow>, StoreError> {
    conn.prepare_cached(
        "SELECT nonce, form, record, version, version_hash, expires_at, used_at, legacy FROM sign_links
         WHERE nonce = ?1",
    )?
    .query_opt([nonce], |r| {
        Ok(LinkRow {
            nonce: r.get(0)?,
            form: r.get(1)?,
            record: r.get(2)?,
            version: r.get(3)?,
            version_hash: r.get(4)?,
            expires_at: r.get(5)?,
            used_at: r.get(6)?,
            legacy: r.get(7)?,
        })
    })
}

/// Marks a link used; false when it already was (single use, even under a race).
pub(crate) fn use_once(tx: &Tx<'_>, nonce: &str, at: &str, signer: &str) -> Result<bool, StoreError> {
    Ok(tx
        .prepare_cached("UPDATE sign_links SET used_at = ?2, signer = ?3 WHERE nonce = ?1 AND used_at IS NULL")?
        .execute(params![nonce, at, signer])?
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
    .query_opt(params![form, record], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
}
