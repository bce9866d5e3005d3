//! The append-only audit trail: every change is an event in a SHA-256 hash chain.
//!
//! Each event's hash covers its own columns and the previous event's hash, so changing,
//! deleting or inserting a row breaks the chain at that row. Records carry the hash of their
//! data, which must equal the hash in their latest event, so editing a record row directly is
//! caught too. Approval runs, their steps and decisions, signing links, tasks done and channel
//! settings are checked against their events as well (`proof.rs`). Someone who can write the
//! file can still delete the newest events or rewrite the whole chain consistently: a
//! [`Checkpoint`] (`closeloop audit head`) kept outside the database catches both, since
//! `verify` against it fails unless the chain still holds that event with that hash.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::sql::{params, Row};
use super::{FormTable, Reader, StoreError, Tx};

/// The `prev_hash` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    /// When, RFC 3339 UTC.
    pub at: &'a str,
    /// Who (a member id, or `system`).
    pub actor: &'a str,
    /// What happened: `record.created`, `record.updated`, `record.action`, `member.upserted`, `app.installed`, ...
    pub kind: &'a str,
    /// The form, for record events.
    pub form: Option<&'a str>,
    /// The record id, for record events.
    pub record: Option<&'a str>,
    /// The record version this event produced.
    pub version: Option<i64>,
    /// Details as JSON text: the diff, the action, the import row.
    pub body: &'a str,
    /// The record's data after the change (JSON text). Not part of the chained text: the chain
    /// covers its hash, and `verify` checks the text against that hash.
    pub data: Option<&'a str>,
    /// The hash of the record's data after the change.
    pub data_hash: Option<&'a str>,
}

impl<'a> NewEvent<'a> {
    /// An event that is not a record version (a run, a task done, a setting changed): no
    /// version, no data snapshot. `form` and `record` say what it is about, when anything.
    pub fn note(at: &'a str, actor: &'a str, kind: &'a str, about: Option<(&'a str, &'a str)>, body: &'a str) -> Self {
        NewEvent {
            at,
            actor,
            kind,
            form: about.map(|a| a.0),
            record: about.map(|a| a.1),
            version: None,
            body,
            data: None,
            data_hash: None,
        }
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When.
    pub at: String,
    /// Who.
    pub actor: String,
    /// What.
    pub kind: String,
    /// The form.
    pub form: Option<String>,
    /// The record.
    pub record: Option<String>,
    /// The record version.
    pub version: Option<i64>,
    /// Details.
    pub body: Value,
    /// The record's data after the change.
    pub data: Option<Value>,
}

/// The first problem `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditProblem {
    /// Event `seq` does not match its hash: it was changed (or forged and inserted).
    Altered(i64),
    /// Event `seq` is missing: the chain jumps over it.
    Missing(i64),
    /// Event `seq` does not follow the event before it.
    Unlinked(i64),
    /// A record's data differs from what its last event recorded.
    RecordAltered(String, String),
    /// A record has no event: it was inserted around closeloop.
    RecordUnrecorded(String, String),
    /// A record's events exist but the record does not.
    RecordMissing(String, String),
    /// A member row differs from its last audit entry (or has none).
    MemberAltered(String),
    /// An installed app's definition differs from what its install recorded.
    AppAltered(String),
    /// The chain ends before the checkpoint's event: newer events were deleted.
    Truncated {
        /// The checkpoint's sequence number.
        checkpoint: i64,
        /// The last event the chain still has.
        head: i64,
    },
    /// The chain's event at the checkpoint's sequence number has another hash: the chain was
    /// rewritten (and re-hashed) up to there.
    Rewritten(i64),
    /// A row that confers a right (an approval decision or step, a signing link, a task done,
    /// a channel setting) that no event backs; the text names it.
    Unbacked(String),
}

impl std::fmt::Display for AuditProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditProblem::Altered(seq) => {
                write!(f, "audit entry {seq} was altered: its contents do not match its hash")
            }
            AuditProblem::Missing(seq) => write!(f, "audit entry {seq} is missing: the chain jumps over it"),
            AuditProblem::Unlinked(seq) => {
                write!(f, "audit entry {seq} does not follow entry {}: an entry was removed or inserted", seq - 1)
            }
            AuditProblem::RecordAltered(form, id) => {
                write!(f, "record {form} {id} was altered outside closeloop: it does not match its last audit entry")
            }
            AuditProblem::RecordUnrecorded(form, id) => {
                write!(f, "record {form} {id} has no audit entry: it was inserted outside closeloop")
            }
            AuditProblem::RecordMissing(form, id) => {
                write!(f, "record {form} {id} is missing although its audit entries exist")
            }
            AuditProblem::MemberAltered(id) => {
                write!(f, "member {id} was changed outside closeloop: it differs from its last audit entry")
            }
            AuditProblem::AppAltered(id) => {
                write!(f, "the installed definition of app {id} was changed outside closeloop")
            }
            AuditProblem::Truncated { checkpoint, head } => write!(
                f,
                "the chain ends at entry {head} but the checkpoint is entry {checkpoint}: newer entries were deleted"
            ),
            AuditProblem::Rewritten(seq) => {
                write!(f, "audit entry {seq} does not have the checkpoint's hash: the chain was rewritten up to there")
            }
            AuditProblem::Unbacked(what) => write!(f, "{what}: it was changed outside closeloop"),
        }
    }
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

/// A point of the chain to keep outside the database: an event's sequence number and hash,
/// written `SEQ:HASH`. The hash covers every event up to it, so a chain that still holds
/// event `seq` with this hash has not been truncated below it or rewritten up to it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Checkpoint {
    /// The event's sequence number (0 for an empty chain).
    pub seq: i64,
    /// Its hash (lowercase hex SHA-256; [`GENESIS`] for an empty chain).
    pub hash: String,
}

impl Checkpoint {
    /// Reads `SEQ:HASH` (surrounding spaces allowed); `None` when it is not one.
    pub fn parse(text: &str) -> Option<Checkpoint> {
        let (seq, hash) = text.trim().split_once(':')?;
        let seq: i64 = seq.trim().parse().ok().filter(|s| *s >= 0)?;
        let hash = hash.trim().to_ascii_lowercase();
        (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some(Checkpoint { seq, hash })
    }
}

impl std::fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

/// The chain's last event as a checkpoint (as stored: `verify` says whether it is sound).
pub(crate) fn head(conn: &Reader) -> Result<Checkpoint, StoreError> {
    let (seq, hash) = conn
        .prepare_cached("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")?
        .query_opt([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .unwrap_or((0, GENESIS.to_string()));
    Ok(Checkpoint { seq, hash })
}

#[allow(clippy::too_many_arguments)]
pub(super) fn chain_hash(
    seq: i64,
    at: &str,
    actor: &str,
    kind: &str,
    form: Option<&str>,
    record: Option<&str>,
    version: Option<i64>,
    body: &str,
    data_hash: Option<&str>,
    prev: &str,
) -> String {
    let text = format!(
        "{seq}\x1f{at}\x1f{actor}\x1f{kind}\x1f{}\x1f{}\x1f{}\x1f{body}\x1f{}\x1f{prev}",
        form.unwrap_or(""),
        record.unwrap_or(""),
        version.map(|v| v.to_string()).unwrap_or_default(),
        data_hash.unwrap_or("")
    );
    sha256_hex(text.as_bytes())
}

/// Appends an event; returns its sequence number.
pub(crate) fn append(tx: &Tx<'_>, e: &NewEvent<'_>) -> Result<i64, StoreError> {
    let (last, prev): (i64, String) = tx
        .prepare_cached("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")?
        .query_opt([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .unwrap_or((0, GENESIS.to_string()));
    let seq = last + 1;
    let body = e.body;
    let hash = chain_hash(seq, e.at, e.actor, e.kind, e.form, e.record, e.version, body, e.data_hash, &prev);
    tx.prepare_cached(
        "INSERT INTO events (seq, at, actor, kind, form, record, version, body, data, data_hash, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        seq,
        e.at,
        e.actor,
        e.kind,
        e.form,
        e.record,
        e.version,
        body,
        e.data,
        e.data_hash,
        prev,
        hash
    ])?;
    Ok(seq)
}

/// Everyone who wrote a version of a record (created it, changed its fields, performed an
/// action on it), in the order they first did.
pub(crate) fn authors(conn: &Reader, form: &str, record: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT actor FROM events WHERE form = ?1 AND record = ?2 \
         AND kind IN ('record.created', 'record.updated', 'record.action') GROUP BY actor ORDER BY MIN(seq)",
    )?;
    let rows = stmt.query_map(params![form, record], |r| r.get::<String>(0))?;
    rows.collect::<Result<_, _>>()
}

/// A record's events, oldest first.
pub(crate) fn history(conn: &Reader, form: &str, record: &str) -> Result<Vec<AuditEntry>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, at, actor, kind, form, record, version, body, data FROM events WHERE form = ?1 AND record = ?2 ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![form, record], |r| {
        Ok((
            r.get::<i64>(0)?,
            r.get::<String>(1)?,
            r.get::<String>(2)?,
            r.get::<String>(3)?,
            r.get::<Option<String>>(4)?,
            r.get::<Option<String>>(5)?,
            r.get::<Option<i64>>(6)?,
            r.get::<String>(7)?,
            r.get::<Option<String>>(8)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, at, actor, kind, form, record, version, body, data) = row?;
        let data = data.map(|d| serde_json::from_str(&d)).transpose()?;
        out.push(AuditEntry { seq, at, actor, kind, form, record, version, body: serde_json::from_str(&body)?, data });
    }
    Ok(out)
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Events checked.
    pub events: i64,
    /// Records checked.
    pub records: u64,
    /// The hash of the last event (keep it elsewhere to detect a rewritten chain).
    pub head: String,
    /// The first problem, if any.
    pub problem: Option<AuditProblem>,
}

/// Checks the chain from the first event (and, given a checkpoint, that it still holds that
/// event with that hash), then every record, member, app, approval run, signing link, task
/// done and channel setting against its events.
pub(crate) fn verify(
    conn: &Reader,
    tables: &[FormTable],
    expect: Option<&Checkpoint>,
) -> Result<Verification, StoreError> {
    let chain = verify_chain(conn, expect)?;
    if chain.problem.is_some() {
        return Ok(chain);
    }
    let (checked, prev) = (chain.events, chain.head);
    let mut records = 0;
    for t in tables {
        if let Some(problem) = verify_records(conn, t, &mut records)? {
            return Ok(Verification { events: checked, records, head: prev, problem: Some(problem) });
        }
    }
    let problem = match verify_members(conn)? {
        Some(p) => Some(p),
        None => match verify_apps(conn)? {
            Some(p) => Some(p),
            None => super::proof::verify(conn)?.map(AuditProblem::Unbacked),
        },
    };
    Ok(Verification { events: checked, records, head: prev, problem })
}

/// Walks the chain from the first event: each in sequence, linked to the one before, hashing
/// to its stored hash, its snapshot matching its data hash; and, given a checkpoint, still
/// holding that event with that hash. Stops at the first problem; `records` is always 0.
fn verify_chain(conn: &Reader, expect: Option<&Checkpoint>) -> Result<Verification, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT seq, at, actor, kind, form, record, version, body, data_hash, prev_hash, hash, data FROM events ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    let mut expected = 1i64;
    let mut prev = GENESIS.to_string();
    let mut checked = 0;
    while let Some(r) = rows.next()? {
        let (seq, hash, problem) = check_event(&r, expected, &prev)?;
        if problem.is_some() {
            return Ok(Verification { events: checked, records: 0, head: prev, problem });
        }
        if let Some(c) = expect.filter(|c| c.seq == seq && c.hash != hash) {
            return Ok(Verification {
                events: checked,
                records: 0,
                head: prev,
                problem: Some(AuditProblem::Rewritten(c.seq)),
            });
        }
        checked += 1;
        expected += 1;
        prev = hash;
    }
    let problem = expect.and_then(|c| checkpoint_problem(c, checked));
    Ok(Verification { events: checked, records: 0, head: prev, problem })
}

/// Checks one event row (of `verify_chain`'s query) that should be number `expected`, after
/// an event hashed `prev`. Returns its seq, its stored hash, and what is wrong with it.
fn check_event(r: &Row<'_>, expected: i64, prev: &str) -> Result<(i64, String, Option<AuditProblem>), StoreError> {
    let seq: i64 = r.get(0)?;
    let (at, actor, kind): (String, String, String) = (r.get(1)?, r.get(2)?, r.get(3)?);
    let (form, record): (Option<String>, Option<String>) = (r.get(4)?, r.get(5)?);
    let version: Option<i64> = r.get(6)?;
    let body: String = r.get(7)?;
    let data_hash: Option<String> = r.get(8)?;
    let (prev_hash, hash): (String, String) = (r.get(9)?, r.get(10)?);
    let data: Option<String> = r.get(11)?;
    let snapshot_ok = match (&data, &data_hash) {
        (Some(d), Some(h)) => sha256_hex(d.as_bytes()) == *h,
        (Some(_), None) | (None, Some(_)) => false,
        (None, None) => true,
    };
    let problem = if seq != expected {
        Some(AuditProblem::Missing(expected))
    } else if prev_hash != prev {
        Some(AuditProblem::Unlinked(seq))
    } else if chain_hash(
        seq,
        &at,
        &actor,
        &kind,
        form.as_deref(),
        record.as_deref(),
        version,
        &body,
        data_hash.as_deref(),
        &prev_hash,
    ) != hash
        || !snapshot_ok
    {
        Some(AuditProblem::Altered(seq))
    } else {
        None
    };
    Ok((seq, hash, problem))
}

/// What a checkpoint says is wrong with a sound chain of `checked` events: it ends before the
/// checkpoint's event, or (an empty chain's checkpoint being the genesis hash at 0) it was
/// rewritten from the start.
fn checkpoint_problem(c: &Checkpoint, checked: i64) -> Option<AuditProblem> {
    if c.seq > checked {
        Some(AuditProblem::Truncated { checkpoint: c.seq, head: checked })
    } else if c.seq == 0 && c.hash != GENESIS {
        Some(AuditProblem::Rewritten(0))
    } else {
        None
    }
}

/// Checks a form's records against their events, counting them in `records`: each record row
/// must be what its events say, and every record its events name must still exist.
fn verify_records(conn: &Reader, t: &FormTable, records: &mut u64) -> Result<Option<AuditProblem>, StoreError> {
    // Each record row must be what its events say: the last event gives version, state,
    // owner, data hash, and who changed it when; the first gives who created it when.
    let sql = format!(
        "SELECT r.id, r.data, r.data_hash, r.version, r.state, r.owner, r.updated_by, r.updated_at, r.created_by, r.created_at,
                l.version, l.body, l.data_hash, l.actor, l.at, f.actor, f.at
         FROM {} r
         LEFT JOIN events l ON l.seq = (SELECT max(seq) FROM events WHERE form = ?1 AND record = r.id AND kind LIKE 'record.%')
         LEFT JOIN events f ON f.seq = (SELECT min(seq) FROM events WHERE form = ?1 AND record = r.id AND kind LIKE 'record.%')
         ORDER BY r.created_at, r.id",
        t.quoted()
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([&t.form])?;
    while let Some(r) = rows.next()? {
        *records += 1;
        if let Some(problem) = check_record(t, &r)? {
            return Ok(Some(problem));
        }
    }
    // Records whose events say they exist, but which are gone.
    let sql = format!(
        "SELECT DISTINCT e.record FROM events e WHERE e.form = ?1 AND e.kind LIKE 'record.%'
         AND NOT EXISTS (SELECT 1 FROM {} r WHERE r.id = e.record) LIMIT 1",
        t.quoted()
    );
    let gone: Option<String> = conn.query_optional(&sql, [&t.form], |r| r.get(0))?;
    Ok(gone.map(|id| AuditProblem::RecordMissing(t.form.clone(), id)))
}

/// Checks one record row (of `verify_records`' query) against its first and last events.
fn check_record(t: &FormTable, r: &Row<'_>) -> Result<Option<AuditProblem>, StoreError> {
    let id: String = r.get(0)?;
    let last_version: Option<i64> = r.get(10)?;
    if last_version.is_none() {
        return Ok(Some(AuditProblem::RecordUnrecorded(t.form.clone(), id)));
    }
    let data: String = r.get(1)?;
    let body: Value = serde_json::from_str(&r.get::<String>(11)?).unwrap_or(Value::Null);
    let text = |v: &Value| v.as_str().map(str::to_string);
    let consistent = sha256_hex(data.as_bytes()) == r.get::<String>(2)?
        && r.get::<Option<String>>(12)?.as_deref() == Some(r.get::<String>(2)?.as_str())
        && last_version == Some(r.get::<i64>(3)?)
        && text(&body["state"]) == r.get::<Option<String>>(4)?
        && text(&body["owner"]) == r.get::<Option<String>>(5)?
        && r.get::<Option<String>>(13)? == Some(r.get::<String>(6)?)
        && r.get::<Option<String>>(14)? == Some(r.get::<String>(7)?)
        && r.get::<Option<String>>(15)? == Some(r.get::<String>(8)?)
        && r.get::<Option<String>>(16)? == Some(r.get::<String>(9)?);
    Ok((!consistent).then(|| AuditProblem::RecordAltered(t.form.clone(), id)))
}

/// Each member row must equal what its last `member.created` or `member.updated` event recorded
/// (sign-ins, passwords and links are events about a member that do not carry the row).
fn verify_members(conn: &Reader) -> Result<Option<AuditProblem>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {}, (SELECT e.body FROM events e WHERE e.record = m.id AND e.kind IN ('member.created', 'member.updated')
                 ORDER BY e.seq DESC LIMIT 1)
         FROM members m ORDER BY m.id",
        super::members::COLUMNS
    ))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (mut row, roles, extra) = super::members::read(&r)?;
        let Some(body) = r.get::<Option<String>>(13)? else {
            return Ok(Some(AuditProblem::MemberAltered(row.id)));
        };
        let recorded: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        // Unreadable JSON in a row is itself a change made outside closeloop.
        match (serde_json::from_str(&roles), serde_json::from_str(&extra)) {
            (Ok(roles), Ok(extra)) => (row.roles, row.extra) = (roles, extra),
            _ => return Ok(Some(AuditProblem::MemberAltered(row.id))),
        }
        if row.audit_body() != recorded {
            return Ok(Some(AuditProblem::MemberAltered(row.id)));
        }
    }
    Ok(None)
}

/// Each installed app's source must hash to what its last install event recorded.
fn verify_apps(conn: &Reader) -> Result<Option<AuditProblem>, StoreError> {
    let mut stmt = conn.prepare(conn.pick(
        "SELECT a.id, a.source,
                (SELECT e.body FROM events e WHERE e.kind = 'app.installed' AND json_extract(e.body, '$.app') = a.id ORDER BY e.seq DESC LIMIT 1)
         FROM apps a ORDER BY a.id",
        "SELECT a.id, a.source,
                (SELECT e.body FROM events e WHERE e.kind = 'app.installed' AND e.body::jsonb ->> 'app' = a.id ORDER BY e.seq DESC LIMIT 1)
         FROM apps a ORDER BY a.id",
    ))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        let source: String = r.get(1)?;
        let recorded: Option<Value> = r.get::<Option<String>>(2)?.and_then(|b| serde_json::from_str(&b).ok());
        let hash = recorded.as_ref().and_then(|b| b["source_hash"].as_str().map(str::to_string));
        if hash.as_deref() != Some(sha256_hex(source.as_bytes()).as_str()) {
            return Ok(Some(AuditProblem::AppAltered(id)));
        }
    }
    Ok(None)
}

/// When each action was first taken on each record of `form`: (record, action, at).
pub(crate) fn first_actions(conn: &Reader, form: &str) -> Result<Vec<(String, String, String)>, StoreError> {
    let mut stmt = conn.prepare(conn.pick(
        "SELECT record, json_extract(body, '$.action.id') AS action, MIN(at) FROM events
         WHERE form = ?1 AND kind = 'record.action' AND record IS NOT NULL
         GROUP BY record, action HAVING action IS NOT NULL",
        "SELECT record, body::jsonb #>> '{action,id}' AS action, MIN(at) FROM events
         WHERE form = ?1 AND kind = 'record.action' AND record IS NOT NULL
         GROUP BY record, action HAVING body::jsonb #>> '{action,id}' IS NOT NULL",
    ))?;
    let rows = stmt.query_map([form], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect::<Result<Vec<_>, _>>()
}
