//! What the figures read besides the event log: a score's current value on each record.

use super::sql::{params, SqlValue};
use super::{Backend, FormTable, Reader, StoreError};

/// One record's score, as stored through the write gate.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScoreRow {
    /// The record.
    pub id: String,
    /// Its state.
    pub state: Option<String>,
    /// Its owner.
    pub owner: Option<String>,
    /// The score field's value, when it holds a number.
    pub value: Option<f64>,
    /// The value of the field that names the record (`customer`), as text.
    pub name: Option<String>,
}

fn number(v: SqlValue) -> Option<f64> {
    match v {
        SqlValue::Int(i) => Some(i as f64),
        SqlValue::Real(r) => Some(r),
        _ => None,
    }
}

fn text(v: SqlValue) -> Option<String> {
    match v {
        SqlValue::Text(s) => Some(s),
        SqlValue::Int(i) => Some(i.to_string()),
        SqlValue::Real(r) => Some(r.to_string()),
        _ => None,
    }
}

/// Every record of the form with its `field` value and its `name_field` value, by id. The
/// field ids come from the loaded definition; they are bound as JSON paths, never spliced.
pub(crate) fn score_values(
    conn: &Reader,
    t: &FormTable,
    field: &str,
    name_field: Option<&str>,
) -> Result<Vec<ScoreRow>, StoreError> {
    let sql = format!(
        "{} FROM {} ORDER BY id",
        conn.pick(
            "SELECT id, state, owner, json_extract(data, ?1), CASE WHEN ?2 IS NOT NULL THEN json_extract(data, ?2) END",
            "SELECT id, state, owner, NULLIF(data -> ?1, 'null'::jsonb), NULLIF(data -> ?2, 'null'::jsonb)",
        ),
        t.quoted()
    );
    let mut stmt = conn.prepare(&sql)?;
    let (path, name) = match conn.backend() {
        Backend::Sqlite => (format!("$.\"{field}\""), name_field.map(|n| format!("$.\"{n}\""))),
        Backend::Postgres => (field.to_string(), name_field.map(str::to_string)),
    };
    let rows = stmt.query_map(params![path, name], |r| {
        Ok(ScoreRow {
            id: r.get(0)?,
            state: r.get(1)?,
            owner: r.get(2)?,
            value: number(r.value(3)?),
            name: text(r.value(4)?),
        })
    })?;
    rows.collect::<Result<Vec<_>, _>>()
}
