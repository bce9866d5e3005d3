//! Installed apps and every revision of their definitions.

use super::sql::params;
use super::{Reader, StoreError, Tx};

/// An installed app's stored source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledApp {
    /// The app id.
    pub id: String,
    /// 1 for the first install, +1 for each later one.
    pub revision: i64,
    /// The app's files as JSON (`app.yaml` text and scripts), so it reloads exactly.
    pub source: String,
}

/// Every installed app, newest revision.
pub(crate) fn list(conn: &Reader) -> Result<Vec<InstalledApp>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT id, revision, source FROM apps ORDER BY id")?;
    let rows = stmt.query_map([], |r| Ok(InstalledApp { id: r.get(0)?, revision: r.get(1)?, source: r.get(2)? }))?;
    rows.collect::<Result<Vec<_>, _>>()
}

/// Every installed app's id and newest revision, without the sources: cheap enough to ask before
/// each scheduler pass whether another process installed something.
pub(crate) fn revisions(conn: &Reader) -> Result<Vec<(String, i64)>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT id, revision FROM apps ORDER BY id")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect::<Result<Vec<_>, _>>()
}

/// Records a new revision of an app; returns its number.
pub(crate) fn save(tx: &Tx<'_>, id: &str, source: &str, at: &str, by: &str, forced: bool) -> Result<i64, StoreError> {
    let revision: i64 = tx
        .query_optional("SELECT revision FROM apps WHERE id = ?1", [id], |r| r.get::<i64>(0))?
        .map(|r| r + 1)
        .unwrap_or(1);
    tx.execute(
        "INSERT INTO apps (id, revision, source, installed_at, installed_by) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET revision = ?2, source = ?3, installed_at = ?4, installed_by = ?5",
        params![id, revision, source, at, by],
    )?;
    tx.execute(
        "INSERT INTO app_revisions (app, revision, source, installed_at, installed_by, forced) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, revision, source, at, by, forced],
    )?;
    Ok(revision)
}
