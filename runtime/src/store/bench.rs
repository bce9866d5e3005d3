//! The baselines and fixtures of `closeloop bench`: the raw SQLite work closeloop's own paths
//! are compared against, and bulk rows that would take too long to make through the library.

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter};

use super::{from_sqlite, schema, timers, FormTable, Reader, Store, StoreError, TimerRow};

/// Rows of one table, as stored: what `bench import` replays raw. Opaque: only
/// [`Store::bench_raw_replay`] reads it.
#[derive(Debug, Clone)]
pub struct TableRows {
    name: String,
    /// The stored columns, quoted.
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
}

/// Names of the tables in a database, from its own schema (never from input).
fn table_names(conn: &Reader) -> Result<Vec<String>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")?;
    let names =
        stmt.query_map([], |r| r.get(0)).map_err(from_sqlite)?.collect::<Result<_, _>>().map_err(from_sqlite)?;
    Ok(names)
}

/// A table's stored columns (generated ones left out: they cannot be inserted), quoted.
fn stored_columns(conn: &Reader, table: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt =
        conn.prepare(&format!("SELECT name FROM pragma_table_xinfo({}) WHERE hidden = 0", super::quote(table)))?;
    let names: Vec<String> =
        stmt.query_map([], |r| r.get(0)).map_err(from_sqlite)?.collect::<Result<_, _>>().map_err(from_sqlite)?;
    Ok(names.iter().map(|n| super::quote(n)).collect())
}

impl Store {
    /// Each table's largest rowid now: the mark `bench_rows_since` counts from.
    pub fn bench_marks(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut marks = Vec::new();
        for name in table_names(&self.conn)? {
            let max = self.conn.query_row(
                &format!("SELECT COALESCE(MAX(rowid), 0) FROM {}", super::quote(&name)),
                [],
                |r| r.get(0),
            )?;
            marks.push((name, max));
        }
        Ok(marks)
    }

    /// The rows added to each table since `marks` (tables new since then: all their rows):
    /// every row a piece of work wrote, for replaying raw.
    pub fn bench_rows_since(&self, marks: &[(String, i64)]) -> Result<Vec<TableRows>, StoreError> {
        let mut out = Vec::new();
        for name in table_names(&self.conn)? {
            let since = marks.iter().find(|(t, _)| t == &name).map(|(_, m)| *m).unwrap_or(0);
            let columns = stored_columns(&self.conn, &name)?;
            let sql =
                format!("SELECT {} FROM {} WHERE rowid > ?1 ORDER BY rowid", columns.join(", "), super::quote(&name));
            let mut stmt = self.conn.prepare(&sql)?;
            let width = columns.len();
            let rows = stmt
                .query_map([since], |r| (0..width).map(|i| r.get::<_, Value>(i)).collect::<Result<Vec<_>, _>>())
                .map_err(from_sqlite)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(from_sqlite)?;
            if !rows.is_empty() {
                out.push(TableRows { name, columns, rows });
            }
        }
        Ok(out)
    }

    /// The baseline of `bench import`'s second comparison: inserts `rows` raw into this
    /// store's tables of the same shape and indexes (`tables` are the forms' tables to
    /// create), one prepared statement per table, in one transaction. Returns the rows written.
    pub fn bench_raw_replay(&mut self, tables: &[FormTable], rows: &[TableRows]) -> Result<usize, StoreError> {
        self.write(|tx| {
            for t in tables {
                schema::sync_form_table(tx, t)?;
            }
            let mut written = 0;
            for TableRows { name, columns, rows: table_rows } in rows {
                let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
                let sql = format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    super::quote(name),
                    columns.join(", "),
                    marks.join(", ")
                );
                let mut stmt = tx.prepare_cached(&sql)?;
                for row in table_rows {
                    stmt.execute(params_from_iter(row.iter())).map_err(from_sqlite)?;
                    written += 1;
                }
            }
            Ok::<_, StoreError>(written)
        })
    }

    /// Inserts `(id, data)` rows raw into the form's table: the baseline of `bench import`,
    /// the same JSON rows in a table of the same shape and indexes, in one transaction, with
    /// one prepared statement and nothing else.
    pub fn bench_raw_insert(&mut self, table: &FormTable, rows: &[(String, String)]) -> Result<(), StoreError> {
        self.write(|tx| {
            schema::sync_form_table(tx, table)?;
            let sql = format!(
                "INSERT INTO {} (id, version, data, data_hash, created_at, updated_at, created_by, updated_by)
                 VALUES (?1, 1, ?2, '', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', 'bench', 'bench')",
                table.quoted()
            );
            let mut stmt = tx.prepare_cached(&sql)?;
            for (id, data) in rows {
                stmt.execute(params![id, data]).map_err(from_sqlite)?;
            }
            Ok::<_, StoreError>(())
        })
    }

    /// Stores `n` pending record timers of `automation` for records that do not exist
    /// (`BENCH-0000001`, …), due one second apart from `first_due`, in one transaction: the
    /// backlog `bench timers` keeps in the table while it times a tick.
    pub fn bench_pending_timers(
        &mut self,
        app: &str,
        automation: &str,
        form: &str,
        n: usize,
        first_due: jiff::Timestamp,
    ) -> Result<(), StoreError> {
        let at = crate::clock::stamp(first_due);
        self.write(|tx| {
            let mut timer = TimerRow {
                id: 0,
                app: app.to_string(),
                automation: automation.to_string(),
                kind: timers::kind::RECORD.into(),
                form: Some(form.to_string()),
                record: None,
                due: String::new(),
                anchor: None,
                payload: None,
                status: timers::TimerStatus::Pending,
            };
            for i in 0..n {
                let due = first_due.checked_add(jiff::SignedDuration::from_secs(i as i64)).unwrap_or(first_due);
                timer.record = Some(format!("BENCH-{i:07}"));
                timer.due = crate::clock::stamp(due);
                timers::insert(tx, &timer, &at)?;
            }
            Ok::<_, StoreError>(())
        })
    }

    /// The baseline of `bench timers`: selects the pending timers due at `now` and marks each
    /// fired, in one transaction, and nothing else. Returns how many it marked.
    pub fn bench_raw_fire(&mut self, now: &str) -> Result<usize, StoreError> {
        self.write(|tx| {
            let ids: Vec<i64> = tx
                .prepare_cached("SELECT id FROM timers WHERE status = 'pending' AND due <= ?1 ORDER BY due, id")?
                .query_map([now], |r| r.get(0))
                .map_err(from_sqlite)?
                .collect::<Result<_, _>>()
                .map_err(from_sqlite)?;
            let mut mark = tx.prepare_cached("UPDATE timers SET status = 'fired', done_at = ?1 WHERE id = ?2")?;
            for id in &ids {
                mark.execute(params![now, id]).map_err(from_sqlite)?;
            }
            Ok::<_, StoreError>(ids.len())
        })
    }
}
