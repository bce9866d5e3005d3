//! The baselines and fixtures of `closeloop bench`: the raw SQLite work closeloop's own paths
//! are compared against, and bulk rows that would take too long to make through the library.

use super::sql::{params, params_from_iter, SqlValue};
use super::{audit, records, schema, timers, Backend, FormTable, Reader, RecordRow, Store, StoreError, TimerRow, Tx};

/// Rows of one table, as stored: what `bench import` and `bench timers` replay raw. Opaque:
/// only [`Store::bench_raw_replay`] and [`Store::bench_raw_fire_replay`] read it.
#[derive(Debug, Clone)]
pub struct TableRows {
    name: String,
    /// The stored columns, quoted.
    columns: Vec<String>,
    rows: Vec<Vec<SqlValue>>,
    /// Some rows were changed in place (they already exist where they are replayed), so the
    /// replay writes them with `INSERT OR REPLACE`.
    replace: bool,
}

impl TableRows {
    /// The table's name.
    pub fn table(&self) -> &str {
        &self.name
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Names of the tables in a database, from its own schema (never from input).
fn table_names(conn: &Reader) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare(conn.pick(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> 'closeloop_migrations'
         ORDER BY table_name",
    ))?;
    let names = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    Ok(names)
}

/// A table's stored columns (generated ones left out: they cannot be inserted, nor can a form
/// table's `rowid` on PostgreSQL), quoted.
fn stored_columns(conn: &Reader, table: &str) -> Result<Vec<String>, StoreError> {
    let names: Vec<String> = match conn.backend() {
        Backend::Sqlite => conn
            .prepare(&format!("SELECT name FROM pragma_table_xinfo({}) WHERE hidden = 0", super::quote(table)))?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?,
        Backend::Postgres => conn
            .prepare(
                "SELECT column_name::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = ?1 AND is_generated = 'NEVER'
                   AND NOT (is_identity = 'YES' AND identity_generation = 'ALWAYS')
                 ORDER BY ordinal_position",
            )?
            .query_map([table], |r| r.get(0))?
            .collect::<Result<_, _>>()?,
    };
    Ok(names.iter().map(|n| super::quote(n)).collect())
}

/// What marks a row as new since a mark: SQLite's `rowid` (rows changed in place are found by
/// `updated_at`); on PostgreSQL the transaction that last wrote the row (`xmin`), which also
/// finds rows changed in place.
fn row_mark(conn: &Reader) -> &'static str {
    conn.pick("rowid", "xmin::text::bigint")
}

impl Store {
    /// Each table's largest rowid now: the mark `bench_rows_since` counts from.
    pub fn bench_marks(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut marks = Vec::new();
        // On PostgreSQL every table's mark is the next transaction id: what is written later has one as large.
        let next: Option<i64> = match self.backend() {
            Backend::Sqlite => None,
            Backend::Postgres => {
                Some(self.conn.query_row("SELECT txid_current()::text::bigint + 1", [], |r| r.get(0))?)
            }
        };
        for name in table_names(&self.conn)? {
            let max = match next {
                Some(next) => next - 1,
                None => self.conn.query_row(
                    &format!("SELECT COALESCE(MAX(rowid), 0) FROM {}", super::quote(&name)),
                    [],
                    |r| r.get(0),
                )?,
            };
            marks.push((name, max));
        }
        Ok(marks)
    }

    /// The rows added to each table since `marks` (tables new since then: all their rows):
    /// every row a piece of work wrote, for replaying raw. With `changed_at`, also the older
    /// rows of tables with an `updated_at` column (the forms' records) whose `updated_at` is
    /// that time: rows changed in place keep their rowid, so the marks alone miss them.
    pub fn bench_rows_since(
        &self,
        marks: &[(String, i64)],
        changed_at: Option<&str>,
    ) -> Result<Vec<TableRows>, StoreError> {
        let mut out = Vec::new();
        for name in table_names(&self.conn)? {
            let since = marks.iter().find(|(t, _)| t == &name).map(|(_, m)| *m).unwrap_or(0);
            let columns = stored_columns(&self.conn, &name)?;
            let changed = changed_at.filter(|_| columns.contains(&super::quote("updated_at")));
            let mark = row_mark(&self.conn);
            let mut args = vec![SqlValue::Int(since)];
            let mut filter = format!("{mark} > ?1");
            if let Some(at) = changed {
                args.push(SqlValue::Text(at.to_string()));
                filter.push_str(" OR updated_at = ?2");
            }
            let order = self.conn.pick("rowid", "ctid");
            let sql =
                format!("SELECT {} FROM {} WHERE {filter} ORDER BY {order}", columns.join(", "), super::quote(&name));
            let mut stmt = self.conn.prepare(&sql)?;
            let width = columns.len();
            let rows = stmt
                .query_map(params_from_iter(args.iter()), |r| {
                    (0..width).map(|i| r.value(i)).collect::<Result<Vec<_>, _>>()
                })?
                .collect::<Result<Vec<_>, _>>()?;
            if !rows.is_empty() {
                out.push(TableRows { name, columns, rows, replace: changed.is_some() });
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
            replay(tx, rows)
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
                 VALUES (?1, 1, {}, '', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', 'bench', 'bench')",
                table.quoted(),
                tx.pick("?2", &super::pg::json_param(2))
            );
            let mut stmt = tx.prepare_cached(&sql)?;
            for (id, data) in rows {
                stmt.execute(params![id, data])?;
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
        self.write(|tx| fire(tx, now))
    }

    /// The second baseline of `bench timers`: the raw marking of [`Store::bench_raw_fire`] and
    /// every row a tick wrote (`rows`, from [`Store::bench_rows_since`] with the tick's time),
    /// in one transaction. Returns the timers marked and the rows written.
    pub fn bench_raw_fire_replay(&mut self, now: &str, rows: &[TableRows]) -> Result<(usize, usize), StoreError> {
        // Marking first: a timer the tick armed is replayed as the tick left it, never marked.
        self.write(|tx| Ok::<_, StoreError>((fire(tx, now)?, replay(tx, rows)?)))
    }
}

/// One record event of benchmark data, as the write gate writes it: the record's new version
/// (1 for `record.created`), its state and owner after the event, and the event's body and the
/// record's data after it, as JSON text.
#[derive(Debug, Clone, Default)]
pub struct BenchEvent {
    /// When, in the stored time format.
    pub at: String,
    /// Who.
    pub actor: String,
    /// `record.created`, `record.updated` or `record.action`.
    pub kind: String,
    /// The record.
    pub record: String,
    /// The version the event makes.
    pub version: i64,
    /// The record's state after it.
    pub state: Option<String>,
    /// The record's owner after it.
    pub owner: Option<String>,
    /// The event's body.
    pub body: String,
    /// The record's data after it.
    pub data: String,
}

impl Store {
    /// Writes `events` (in time order) of `table`'s form raw, in one transaction: each event
    /// continues the hash chain as `audit::append` does (so `audit verify` holds), and its
    /// record is inserted (version 1) or moved to its version as the write gate would. The
    /// form's id counter for `counter.0` (an id pattern's period, `LEAD-2025-#`) is set to
    /// `counter.1`, so a later submit continues the ids. Returns the events written.
    pub fn bench_record_events(
        &mut self,
        table: &FormTable,
        events: &mut dyn Iterator<Item = BenchEvent>,
        counter: (&str, i64),
    ) -> Result<usize, StoreError> {
        let tx = Tx::begin(&self.conn)?;
        let (mut seq, mut prev): (i64, String) = tx
            .query_optional("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .unwrap_or((0, audit::GENESIS.to_string()));
        let mut insert = tx.prepare_cached(
            "INSERT INTO events (seq, at, actor, kind, form, record, version, body, data, data_hash, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        let mut written = 0;
        for e in events {
            seq += 1;
            let data_hash = audit::sha256_hex(e.data.as_bytes());
            let (form, body) = (Some(table.form.as_str()), e.body.as_str());
            let hash = audit::chain_hash(
                seq,
                &e.at,
                &e.actor,
                &e.kind,
                form,
                Some(&e.record),
                Some(e.version),
                body,
                Some(&data_hash),
                &prev,
            );
            insert.execute(params![
                seq, e.at, e.actor, e.kind, form, e.record, e.version, body, e.data, data_hash, prev, hash
            ])?;
            let row = RecordRow {
                id: e.record,
                version: e.version,
                state: e.state,
                owner: e.owner,
                data: serde_json::Map::new(),
                data_hash,
                created_at: e.at.clone(),
                updated_at: e.at,
                created_by: e.actor.clone(),
                updated_by: e.actor,
            };
            if row.version == 1 {
                records::insert(&tx, table, &row, &e.data)?;
            } else if !records::update(&tx, table, &row, &e.data)? {
                let message =
                    format!("{} has no version {} for version {} to follow", row.id, row.version - 1, row.version);
                return Err(StoreError::Database { kind: super::DbErrorKind::Other, message });
            }
            prev = hash;
            written += 1;
        }
        drop(insert);
        records::set_counter(&tx, &table.form, counter.0, counter.1)?;
        tx.commit()?;
        Ok(written)
    }

    /// The baseline of `bench report`: the follow-up rate of a metric that starts when a
    /// record of `form` is created and ends at its first `action` within `within` seconds,
    /// in ONE aggregate over the events table. `from` and `until` bound the creations (stored
    /// time format); `now` decides which are still pending. Returns (population, penetrated,
    /// decided). The `+` on the action's kind keeps SQLite on `events_by_record` (a lead's
    /// few events) rather than `events_by_kind` (every later action, per lead).
    pub fn bench_followup_sql(
        &self,
        form: &str,
        action: &str,
        within: i64,
        (from, until): (&str, &str),
        now: &str,
    ) -> Result<(usize, usize, usize), StoreError> {
        let (population, penetrated, decided): (i64, i64, i64) = self.conn.query_row(
            "SELECT count(*),
                    count(*) FILTER (WHERE c IS NOT NULL AND c <= s + ?3),
                    count(*) FILTER (WHERE c IS NOT NULL OR unixepoch(?6, 'subsec') > s + ?3)
             FROM (SELECT unixepoch(e.at, 'subsec') AS s,
                          (SELECT unixepoch(min(a.at), 'subsec') FROM events a
                           WHERE a.form = e.form AND a.record = e.record AND a.seq > e.seq
                             AND +a.kind = 'record.action' AND a.body ->> '$.action.id' = ?2) AS c
                   FROM events e
                   WHERE e.form = ?1 AND e.kind = 'record.created' AND e.at >= ?4 AND e.at < ?5)",
            params![form, action, within, from, until, now],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let count = |n: i64| usize::try_from(n).unwrap_or(0);
        Ok((count(population), count(penetrated), count(decided)))
    }
}

/// Inserts `rows` with one prepared statement per table; returns how many it wrote.
fn replay(tx: &Tx<'_>, rows: &[TableRows]) -> Result<usize, StoreError> {
    let mut written = 0;
    for TableRows { name, columns, rows: table_rows, replace } in rows {
        let form = name.starts_with("rec_");
        let marks: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| match tx.backend() {
                Backend::Postgres if form && c == "\"data\"" => super::pg::json_param(i + 1),
                _ => format!("?{}", i + 1),
            })
            .collect();
        let into = format!("INTO {} ({}) VALUES ({})", super::quote(name), columns.join(", "), marks.join(", "));
        let sql = match tx.backend() {
            Backend::Sqlite if *replace => format!("INSERT OR REPLACE {into}"),
            Backend::Sqlite => format!("INSERT {into}"),
            // On PostgreSQL the rows since the mark include those changed in place (their
            // `xmin` is new), in any table: they replace the row with their key.
            Backend::Postgres => {
                let key: Option<String> = tx.query_optional(
                    "SELECT constraint_name::text FROM information_schema.table_constraints
                     WHERE table_schema = current_schema() AND table_name = ?1 AND constraint_type = 'PRIMARY KEY'",
                    [name],
                    |r| r.get(0),
                )?;
                let set: Vec<String> = columns.iter().map(|c| format!("{c} = EXCLUDED.{c}")).collect();
                match key {
                    Some(key) => format!(
                        "INSERT {into} ON CONFLICT ON CONSTRAINT {} DO UPDATE SET {}",
                        super::quote(&key),
                        set.join(", ")
                    ),
                    None => format!("INSERT {into}"),
                }
            }
        };
        let mut stmt = tx.prepare_cached(&sql)?;
        for row in table_rows {
            stmt.execute(params_from_iter(row.iter()))?;
            written += 1;
        }
    }
    Ok(written)
}

/// Selects the pending timers due at `now` and marks each fired; returns how many it marked.
fn fire(tx: &Tx<'_>, now: &str) -> Result<usize, StoreError> {
    let ids: Vec<i64> = tx
        .prepare_cached("SELECT id FROM timers WHERE status = 'pending' AND due <= ?1 ORDER BY due, id")?
        .query_map([now], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut mark = tx.prepare_cached("UPDATE timers SET status = 'fired', done_at = ?1 WHERE id = ?2")?;
    for id in &ids {
        mark.execute(params![now, id])?;
    }
    Ok(ids.len())
}
