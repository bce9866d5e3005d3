//! The baselines and fixtures of `closeloop bench`: the raw SQLite work closeloop's own paths
//! are compared against, and bulk rows that would take too long to make through the library.

use rusqlite::params;

use super::{schema, timers, FormTable, Store, StoreError, TimerRow};

impl Store {
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
                status: "pending".into(),
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
                .query_map([now], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut mark = tx.prepare_cached("UPDATE timers SET status = 'fired', done_at = ?1 WHERE id = ?2")?;
            for id in &ids {
                mark.execute(params![now, id])?;
            }
            Ok::<_, StoreError>(ids.len())
        })
    }
}
