//! The baseline that `closeloop bench import` compares closeloop's import against: the same
//! JSON rows inserted into a table of the same shape and indexes, in one transaction, with one
//! prepared statement and nothing else.

use rusqlite::params;

use super::{schema, FormTable, Store, StoreError};

impl Store {
    /// Inserts `(id, data)` rows raw into the form's table.
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
}
