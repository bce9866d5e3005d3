//! Record rows: insert, update, read, list, and the counters behind readable ids.

use serde_json::{Map, Value};

use super::pg::json_param;
use super::schema::json_field;
use super::sql::{params, params_from_iter, Row, SqlValue};
use super::{Backend, FormTable, Reader, StoreError, Tx};

/// A stored record.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordRow {
    /// The readable id (`LEAD-2026-00042`).
    pub id: String,
    /// 1 on creation, +1 on each change.
    pub version: i64,
    /// The state, for forms with states.
    pub state: Option<String>,
    /// The owner's member id, when the form has an owner field and it is set.
    pub owner: Option<String>,
    /// The field values.
    pub data: Map<String, Value>,
    /// SHA-256 of the stored data text.
    pub data_hash: String,
    /// When created (RFC 3339 UTC).
    pub created_at: String,
    /// When last changed.
    pub updated_at: String,
    /// Who created it.
    pub created_by: String,
    /// Who changed it last.
    pub updated_by: String,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    /// Smallest first.
    #[default]
    Asc,
    /// Largest first.
    Desc,
}

/// A list query. Field names are checked against the form by the caller; here only columns the
/// form's table has are used, so nothing from the query becomes SQL text.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Field equals value.
    pub filters: Vec<(String, Value)>,
    /// In this state.
    pub state: Option<String>,
    /// Owned by this member.
    pub owner: Option<String>,
    /// Sort by a field or `created_at`/`updated_at`/`id`; default `created_at`.
    pub sort: Option<String>,
    /// Sort direction.
    pub order: SortOrder,
    /// At most this many.
    pub limit: Option<u64>,
    /// Skip this many.
    pub offset: u64,
}

const COLUMNS: &str = "id, version, state, owner, data, data_hash, created_at, updated_at, created_by, updated_by";

fn read_row(r: &Row<'_>) -> Result<(RecordRow, String), StoreError> {
    let data: String = r.get(4)?;
    Ok((
        RecordRow {
            id: r.get(0)?,
            version: r.get(1)?,
            state: r.get(2)?,
            owner: r.get(3)?,
            data: Map::new(),
            data_hash: r.get(5)?,
            created_at: r.get(6)?,
            updated_at: r.get(7)?,
            created_by: r.get(8)?,
            updated_by: r.get(9)?,
        },
        data,
    ))
}

fn finish(pair: (RecordRow, String)) -> Result<RecordRow, StoreError> {
    let (mut row, data) = pair;
    row.data = serde_json::from_str(&data)?;
    Ok(row)
}

/// Binds a JSON value the way `json_extract` returns it.
pub(crate) fn sql_value(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Int(i64::from(*b)),
        Value::Number(n) => n.as_i64().map(SqlValue::Int).unwrap_or_else(|| SqlValue::Real(n.as_f64().unwrap_or(0.0))),
        Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}

/// A field's column equals placeholder `n`. On PostgreSQL the column is `jsonb`, and the value
/// is bound as its JSON text ([`field_value`]), so `true` matches `true`, not `1`.
fn field_equals(conn: &Reader, col: &str, n: usize) -> String {
    match conn.backend() {
        Backend::Sqlite => format!("{col} = ?{n}"),
        Backend::Postgres => format!("{col} = {}", json_param(n)),
    }
}

/// The value [`field_equals`] compares with.
fn field_value(conn: &Reader, v: &Value) -> SqlValue {
    match conn.backend() {
        Backend::Sqlite => sql_value(v),
        Backend::Postgres => SqlValue::Text(v.to_string()),
    }
}

/// Inserts a new record.
pub(crate) fn insert(tx: &Tx<'_>, t: &FormTable, r: &RecordRow, data_text: &str) -> Result<(), StoreError> {
    // The data goes in as its JSON text (`jsonb` on PostgreSQL).
    let pg_data = json_param(5);
    let data = tx.pick("?5", &pg_data);
    let sql = format!("INSERT INTO {} ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, {data}, ?6, ?7, ?8, ?9, ?10)", t.quoted());
    tx.prepare_cached(&sql)?.execute(params![
        r.id,
        r.version,
        r.state,
        r.owner,
        data_text,
        r.data_hash,
        r.created_at,
        r.updated_at,
        r.created_by,
        r.updated_by
    ])?;
    Ok(())
}

/// Writes a new version over the previous one; returns false if the stored version moved on
/// (someone else changed the record first).
pub(crate) fn update(tx: &Tx<'_>, t: &FormTable, r: &RecordRow, data_text: &str) -> Result<bool, StoreError> {
    let pg_data = json_param(5);
    let sql = format!(
        "UPDATE {} SET version = ?2, state = ?3, owner = ?4, data = {}, data_hash = ?6, updated_at = ?7, updated_by = ?8
         WHERE id = ?1 AND version = ?9",
        t.quoted(),
        tx.pick("?5", &pg_data)
    );
    let n = tx.prepare_cached(&sql)?.execute(params![
        r.id,
        r.version,
        r.state,
        r.owner,
        data_text,
        r.data_hash,
        r.updated_at,
        r.updated_by,
        r.version - 1
    ])?;
    Ok(n == 1)
}

/// A record by id.
pub(crate) fn get(conn: &Reader, t: &FormTable, id: &str) -> Result<Option<RecordRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM {} WHERE id = ?1", t.quoted());
    conn.prepare_cached(&sql)?.query_opt([id], read_row)?.map(finish).transpose()
}

/// The first record whose fields equal the values (a unique field, an import key, a lookup).
/// Fields without a column are skipped by the caller's check; here they would match nothing.
pub(crate) fn find_by(
    conn: &Reader,
    t: &FormTable,
    fields: &[(&str, &Value)],
) -> Result<Option<RecordRow>, StoreError> {
    first_by(conn, t, fields, "created_at, id".into())
}

/// Of the records whose fields equal the values, the one with the greatest `by` (the last
/// price a customer paid for a product): `None` when `by` has no column.
pub(crate) fn latest_by(
    conn: &Reader,
    t: &FormTable,
    fields: &[(&str, &Value)],
    by: &str,
) -> Result<Option<RecordRow>, StoreError> {
    let Some(col) = t.column(by) else { return Ok(None) };
    // SQLite sorts NULL first, so last when descending; PostgreSQL is told to.
    let nulls = conn.pick("", " NULLS LAST");
    first_by(conn, t, fields, format!("{col} DESC{nulls}, created_at DESC, id DESC"))
}

fn first_by(
    conn: &Reader,
    t: &FormTable,
    fields: &[(&str, &Value)],
    order: String,
) -> Result<Option<RecordRow>, StoreError> {
    let mut clauses = Vec::new();
    let mut values = Vec::new();
    for (i, (field, value)) in fields.iter().enumerate() {
        let Some(col) = t.column(field) else { return Ok(None) };
        clauses.push(field_equals(conn, &col, i + 1));
        values.push(field_value(conn, value));
    }
    if clauses.is_empty() {
        return Ok(None);
    }
    let sql = format!("SELECT {COLUMNS} FROM {} WHERE {} ORDER BY {order} LIMIT 1", t.quoted(), clauses.join(" AND "));
    conn.prepare_cached(&sql)?.query_opt(params_from_iter(values), read_row)?.map(finish).transpose()
}

/// Up to `limit` distinct values of one field, for a did-you-mean over a catalog.
pub(crate) fn values_of(conn: &Reader, t: &FormTable, field: &str, limit: usize) -> Result<Vec<String>, StoreError> {
    let Some(col) = t.column(field) else { return Ok(Vec::new()) };
    let sql = format!("SELECT DISTINCT {col} FROM {} WHERE {col} IS NOT NULL LIMIT ?1", t.quoted());
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut q = conn.prepare_cached(&sql)?;
    let rows = q.query_map([limit], |r| r.value(0))?;
    let mut out = Vec::new();
    for v in rows {
        match v? {
            SqlValue::Text(t) => out.push(t),
            SqlValue::Int(n) => out.push(n.to_string()),
            SqlValue::Real(x) => out.push(x.to_string()),
            _ => {}
        }
    }
    Ok(out)
}

/// Records matching a query.
pub(crate) fn list(conn: &Reader, t: &FormTable, q: &ListQuery) -> Result<Vec<RecordRow>, StoreError> {
    let mut clauses = Vec::new();
    let mut values: Vec<SqlValue> = Vec::new();
    for (field, value) in &q.filters {
        if let Some(col) = t.column(field) {
            values.push(field_value(conn, value));
            clauses.push(field_equals(conn, &col, values.len()));
        }
    }
    if let Some(state) = &q.state {
        values.push(SqlValue::Text(state.clone()));
        clauses.push(format!("state = ?{}", values.len()));
    }
    if let Some(owner) = &q.owner {
        values.push(SqlValue::Text(owner.clone()));
        clauses.push(format!("owner = ?{}", values.len()));
    }
    let filter = if clauses.is_empty() { String::new() } else { format!(" WHERE {}", clauses.join(" AND ")) };
    let sort = match q.sort.as_deref() {
        None | Some("created_at") => "created_at".to_string(),
        Some("updated_at") => "updated_at".to_string(),
        Some("id") => "id".to_string(),
        Some(field) => t.column(field).unwrap_or_else(|| "created_at".to_string()),
    };
    let dir = if q.order == SortOrder::Desc { "DESC" } else { "ASC" };
    // SQLite sorts NULL as the smallest value; PostgreSQL as the largest unless told.
    let nulls = match (conn.backend(), q.order) {
        (Backend::Sqlite, _) => "",
        (Backend::Postgres, SortOrder::Asc) => " NULLS FIRST",
        (Backend::Postgres, SortOrder::Desc) => " NULLS LAST",
    };
    let limit = q.limit.map_or_else(|| conn.pick("-1", "ALL").to_string(), |l| l.min(i64::MAX as u64).to_string());
    let sql = format!(
        "SELECT {COLUMNS} FROM {}{filter} ORDER BY {sort} {dir}{nulls}, id {dir} LIMIT {limit} OFFSET {}",
        t.quoted(),
        q.offset.min(i64::MAX as u64)
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(values), read_row)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(finish(row?)?);
    }
    Ok(out)
}

/// Records per assignee in some states (all, when none are given) created since a time: the
/// loads assignment rules weigh. `by` is the assignee's column, from [`FormTable::assignee`].
/// One indexed GROUP BY.
pub(crate) fn count_by_owner(
    conn: &Reader,
    t: &FormTable,
    by: &str,
    states: &[String],
    since: Option<&str>,
) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
    let (filter, values) = owned_filter(by, None, states, since);
    // A field's generated column has no type affinity: read it as text, whatever old data holds.
    // (On PostgreSQL it is `jsonb`, which reads back as its text already: see `pg::value`.)
    let text = format!("CAST({by} AS TEXT)");
    let sql = format!("SELECT {}, count(*) FROM {} WHERE {filter} GROUP BY {by}", conn.pick(&text, by), t.quoted());
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(values), |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?)))?;
    let mut out = std::collections::BTreeMap::new();
    for row in rows {
        let (owner, n) = row?;
        out.insert(owner, n.max(0) as u64);
    }
    Ok(out)
}

/// How many records one member owns in some states (all, when none are given) since a time.
pub(crate) fn count_owned(
    conn: &Reader,
    t: &FormTable,
    owner: &str,
    states: &[String],
    since: Option<&str>,
) -> Result<u64, StoreError> {
    let (filter, values) = owned_filter("owner", Some(owner), states, since);
    let sql = format!("SELECT count(*) FROM {} WHERE {filter}", t.quoted());
    let n: i64 = conn.prepare_cached(&sql)?.query_row(params_from_iter(values), |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// The WHERE clause (and its values) for owned records: one owner or any, in some states, since a time.
fn owned_filter(by: &str, owner: Option<&str>, states: &[String], since: Option<&str>) -> (String, Vec<SqlValue>) {
    let mut values: Vec<SqlValue> = Vec::new();
    let mut clauses = match owner {
        Some(owner) => {
            values.push(SqlValue::Text(owner.to_string()));
            vec![format!("{by} = ?1")]
        }
        None => vec![format!("{by} IS NOT NULL")],
    };
    if !states.is_empty() {
        let marks: Vec<String> = states
            .iter()
            .map(|s| {
                values.push(SqlValue::Text(s.clone()));
                format!("?{}", values.len())
            })
            .collect();
        clauses.push(format!("state IN ({})", marks.join(", ")));
    }
    if let Some(since) = since {
        values.push(SqlValue::Text(since.to_string()));
        clauses.push(format!("created_at >= ?{}", values.len()));
    }
    (clauses.join(" AND "), values)
}

/// When each owner was last given a record of the form (the rowid of their newest record: larger
/// is later), for round-robin assignment. One scan of the owner index.
pub(crate) fn turns(
    conn: &Reader,
    t: &FormTable,
    by: &str,
) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
    // Records are never deleted and closeloop never runs VACUUM, so rowids keep insertion order.
    // A `jsonb` column reads back as its text already (see `pg::value`).
    let text = format!("CAST({by} AS TEXT)");
    let sql =
        format!("SELECT {}, max(rowid) FROM {} WHERE {by} IS NOT NULL GROUP BY {by}", conn.pick(&text, by), t.quoted());
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([], |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?)))?;
    let mut out = std::collections::BTreeMap::new();
    for row in rows {
        let (owner, turn) = row?;
        out.insert(owner, turn.max(0) as u64);
    }
    Ok(out)
}

/// How many records a form has.
pub(crate) fn count(conn: &Reader, t: &FormTable) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {}", t.quoted()), [], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// A value (shown as text) that two records share in these fields, if any.
pub(crate) fn first_duplicate(conn: &Reader, t: &FormTable, fields: &[&str]) -> Result<Option<String>, StoreError> {
    // Field ids match ^[a-z][a-z0-9_]*$ (the loader's rule), so they are safe in the JSON path.
    let (paths, texts): (Vec<String>, Vec<String>) = match conn.backend() {
        Backend::Sqlite => fields
            .iter()
            .map(|f| (format!("json_extract(data, '$.{f}')"), format!("CAST(json_extract(data, '$.{f}') AS TEXT)")))
            .unzip(),
        // `->>` reads a JSON null as NULL, so one expression both filters and groups.
        Backend::Postgres => fields.iter().map(|f| (format!("(data ->> '{f}')"), format!("(data ->> '{f}')"))).unzip(),
    };
    let sql = format!(
        "SELECT {} FROM {} WHERE {} GROUP BY {} HAVING count(*) > 1 LIMIT 1",
        texts.join(" || '+' || "),
        t.quoted(),
        paths.iter().map(|p| format!("{p} IS NOT NULL")).collect::<Vec<_>>().join(" AND "),
        paths.join(", ")
    );
    conn.query_optional(&sql, [], |r| r.get(0))
}

/// How many records hold a value in a field (for install checks).
pub(crate) fn count_with_value(conn: &Reader, t: &FormTable, field: &str) -> Result<u64, StoreError> {
    let sql = match conn.backend() {
        Backend::Sqlite => {
            format!("SELECT count(*) FROM {} WHERE json_extract(data, '$.{field}') IS NOT NULL", t.quoted())
        }
        Backend::Postgres => {
            format!("SELECT count(*) FROM {} WHERE {} IS NOT NULL", t.quoted(), json_field("data", field))
        }
    };
    let n: i64 = conn.query_row(&sql, [], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// How many records are in a state (for install checks).
pub(crate) fn count_in_state(conn: &Reader, t: &FormTable, state: &str) -> Result<u64, StoreError> {
    let n: i64 =
        conn.query_row(&format!("SELECT count(*) FROM {} WHERE state = ?1", t.quoted()), [state], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// Does the form's table exist yet?
pub(crate) fn table_exists(conn: &Reader, t: &FormTable) -> Result<bool, StoreError> {
    let sql = conn.pick(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?1",
    );
    let n: i64 = conn.query_row(sql, [&t.table], |r| r.get(0))?;
    Ok(n > 0)
}

/// The last number a readable-id counter gave (0 when it never did). On PostgreSQL the counter's
/// row is made if missing and locked first: two nodes numbering the same form at once then meet
/// on that row (one waits, then retries as a serialization failure) instead of both taking the
/// same number and one failing on the record's key.
pub(crate) fn counter(tx: &Tx<'_>, form: &str, period: &str) -> Result<i64, StoreError> {
    if tx.backend() == Backend::Postgres {
        tx.prepare_cached("INSERT INTO counters (form, period, value) VALUES (?1, ?2, 0) ON CONFLICT DO NOTHING")?
            .execute(params![form, period])?;
    }
    let sql = tx.pick(
        "SELECT value FROM counters WHERE form = ?1 AND period = ?2",
        "SELECT value FROM counters WHERE form = ?1 AND period = ?2 FOR UPDATE",
    );
    Ok(tx.prepare_cached(sql)?.query_opt(params![form, period], |r| r.get(0))?.unwrap_or(0))
}

/// Sets a readable-id counter to the last number given.
pub(crate) fn set_counter(tx: &Tx<'_>, form: &str, period: &str, value: i64) -> Result<(), StoreError> {
    tx.prepare_cached("INSERT INTO counters (form, period, value) VALUES (?1, ?2, ?3) ON CONFLICT (form, period) DO UPDATE SET value = ?3")?
        .execute(params![form, period, value])?;
    Ok(())
}
