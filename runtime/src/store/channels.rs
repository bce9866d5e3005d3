//! Channel settings: where each channel sends and with which secrets. Install configuration,
//! kept in the database and never in an app's YAML.

use super::sql::params;
use super::{Reader, StoreError, Tx};

/// Sets one setting of a channel.
pub(crate) fn set(tx: &Tx<'_>, channel: &str, key: &str, value: &str, at: &str) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO channel_settings (channel, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (channel, key) DO UPDATE SET value = ?3, updated_at = ?4",
    )?
    .execute(params![channel, key, value, at])?;
    Ok(())
}

/// Removes one setting; false when it was not set.
pub(crate) fn unset(tx: &Tx<'_>, channel: &str, key: &str) -> Result<bool, StoreError> {
    Ok(tx
        .prepare_cached("DELETE FROM channel_settings WHERE channel = ?1 AND key = ?2")?
        .execute(params![channel, key])?
        == 1)
}

/// Every setting: (channel, key, value), by channel and key.
pub(crate) fn all(conn: &Reader) -> Result<Vec<(String, String, String)>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT channel, key, value FROM channel_settings ORDER BY channel, key")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect::<Result<Vec<_>, _>>()
}
