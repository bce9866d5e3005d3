//! Who is signing in: password hashes, sessions, API tokens and failed sign-ins. Secrets
//! (session ids, tokens) are never stored: only their SHA-256 digests, so a copy of the
//! database signs nobody in.

use super::sql::{params, Row};
use super::{Reader, StoreError, Tx};

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The member signed in.
    pub member: String,
    /// The digest of the session's CSRF token.
    pub csrf: String,
    /// When it began.
    pub created_at: String,
    /// When it was last used.
    pub seen_at: String,
    /// When it ends whatever happens (the absolute expiry).
    pub ends_at: String,
}

/// An API token as stored (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenRow {
    /// Its id.
    pub id: i64,
    /// The name it was given (`finance-sync`).
    pub name: String,
    /// The member it acts as.
    pub member: String,
    /// `events`, `read` or `write`.
    pub scope: String,
    /// When it was made.
    pub created_at: String,
    /// Who made it.
    pub created_by: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
}

/// A member's password hash (a PHC string).
pub(crate) fn password_hash(conn: &Reader, member: &str) -> Result<Option<String>, StoreError> {
    conn.query_optional("SELECT hash FROM credentials WHERE member = ?1", [member], |r| r.get(0))
}

pub(crate) fn set_password_hash(tx: &Tx<'_>, member: &str, hash: &str, at: &str) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO credentials(member, hash, changed_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(member) DO UPDATE SET hash = excluded.hash, changed_at = excluded.changed_at",
        params![member, hash, at],
    )?;
    Ok(())
}

pub(crate) fn insert_session(tx: &Tx<'_>, digest: &str, s: &SessionRow) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO sessions(digest, member, csrf, created_at, seen_at, ends_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![digest, s.member, s.csrf, s.created_at, s.seen_at, s.ends_at],
    )?;
    Ok(())
}

pub(crate) fn session(conn: &Reader, digest: &str) -> Result<Option<SessionRow>, StoreError> {
    conn.query_optional(
        "SELECT member, csrf, created_at, seen_at, ends_at FROM sessions WHERE digest = ?1",
        [digest],
        |r| {
            Ok(SessionRow {
                member: r.get(0)?,
                csrf: r.get(1)?,
                created_at: r.get(2)?,
                seen_at: r.get(3)?,
                ends_at: r.get(4)?,
            })
        },
    )
}

pub(crate) fn touch_session(tx: &Tx<'_>, digest: &str, at: &str) -> Result<(), StoreError> {
    tx.execute("UPDATE sessions SET seen_at = ?2 WHERE digest = ?1", params![digest, at])?;
    Ok(())
}

pub(crate) fn end_session(tx: &Tx<'_>, digest: &str) -> Result<usize, StoreError> {
    tx.execute("DELETE FROM sessions WHERE digest = ?1", [digest])
}

pub(crate) fn end_sessions_of(tx: &Tx<'_>, member: &str) -> Result<usize, StoreError> {
    tx.execute("DELETE FROM sessions WHERE member = ?1", [member])
}

pub(crate) fn insert_token(tx: &Tx<'_>, digest: &str, t: &TokenRow) -> Result<i64, StoreError> {
    tx.execute(
        "INSERT INTO api_tokens(name, member, scope, digest, created_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![t.name, t.member, t.scope, digest, t.created_at, t.created_by],
    )?;
    tx.last_insert_rowid()
}

const TOKEN_COLUMNS: &str = "id, name, member, scope, created_at, created_by, revoked_at";

fn token_row(r: &Row<'_>) -> Result<TokenRow, StoreError> {
    Ok(TokenRow {
        id: r.get(0)?,
        name: r.get(1)?,
        member: r.get(2)?,
        scope: r.get(3)?,
        created_at: r.get(4)?,
        created_by: r.get(5)?,
        revoked_at: r.get(6)?,
    })
}

/// The token with this digest (revoked or not).
pub(crate) fn token_by_digest(conn: &Reader, digest: &str) -> Result<Option<TokenRow>, StoreError> {
    conn.query_optional(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE digest = ?1"), [digest], token_row)
}

pub(crate) fn token_by_name(conn: &Reader, name: &str) -> Result<Option<TokenRow>, StoreError> {
    conn.query_optional(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE name = ?1"), [name], token_row)
}

pub(crate) fn tokens(conn: &Reader) -> Result<Vec<TokenRow>, StoreError> {
    let mut stmt = conn.prepare(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id"))?;
    let rows = stmt.query_map([], token_row)?;
    rows.collect::<Result<Vec<_>, _>>()
}

pub(crate) fn revoke_token(tx: &Tx<'_>, name: &str, at: &str) -> Result<usize, StoreError> {
    tx.execute("UPDATE api_tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL", params![name, at])
}

/// Notes a failed sign-in against `subject` (`member:ID`, `address:IP`).
pub(crate) fn note_failure(tx: &Tx<'_>, subject: &str, at: &str) -> Result<(), StoreError> {
    tx.execute("INSERT INTO signin_failures(subject, at) VALUES (?1, ?2)", params![subject, at])?;
    Ok(())
}

/// Failed sign-ins against `subject` at or after `since`.
pub(crate) fn failures_since(conn: &Reader, subject: &str, since: &str) -> Result<i64, StoreError> {
    conn.query_row(
        "SELECT count(*) FROM signin_failures WHERE subject = ?1 AND at >= ?2",
        params![subject, since],
        |r| r.get(0),
    )
}

/// Forgets the failures against `subject` (after a good sign-in).
pub(crate) fn forget_failures(tx: &Tx<'_>, subject: &str) -> Result<(), StoreError> {
    tx.execute("DELETE FROM signin_failures WHERE subject = ?1", [subject])?;
    Ok(())
}

/// Stores a one-time sign-in link (its digest).
pub(crate) fn insert_link(
    tx: &Tx<'_>,
    digest: &str,
    member: &str,
    at: &str,
    expires_at: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO signin_links(digest, member, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![digest, member, at, expires_at],
    )?;
    Ok(())
}

/// Links made for `member` at or after `since`.
pub(crate) fn links_since(conn: &Reader, member: &str, since: &str) -> Result<i64, StoreError> {
    conn.query_row(
        "SELECT count(*) FROM signin_links WHERE member = ?1 AND created_at >= ?2",
        params![member, since],
        |r| r.get(0),
    )
}

/// Uses the link with this digest, once: its member, if it was unused and had not expired at
/// `at`. The check and the mark are one statement, so two redeems cannot both succeed.
pub(crate) fn use_link(tx: &Tx<'_>, digest: &str, at: &str) -> Result<Option<String>, StoreError> {
    tx.query_optional(
        "UPDATE signin_links SET used_at = ?2 WHERE digest = ?1 AND used_at IS NULL AND expires_at > ?2 RETURNING member",
        params![digest, at],
        |r| r.get(0),
    )
}

/// An install setting (`public_url`).
pub(crate) fn setting(conn: &Reader, name: &str) -> Result<Option<String>, StoreError> {
    conn.query_optional("SELECT value FROM settings WHERE name = ?1", [name], |r| r.get(0))
}

pub(crate) fn set_setting(tx: &Tx<'_>, name: &str, value: &str, at: &str) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO settings(name, value, changed_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(name) DO UPDATE SET value = excluded.value, changed_at = excluded.changed_at",
        params![name, value, at],
    )?;
    Ok(())
}
