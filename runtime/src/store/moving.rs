//! Moving an installation from its SQLite file to a PostgreSQL database: every table copied as
//! stored, in one transaction on the target, so the audit chain verifies on the other side.

use super::sql::{params_from_iter, SqlValue};
use super::{quote, schema, Backend, FormTable, Reader, Store, StoreError, Tx};

/// What a move copied: each table with its row count, in the order copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moved {
    /// (table, rows).
    pub tables: Vec<(String, usize)>,
}

/// closeloop's own tables, parents before the rows that refer to them.
const OWN_TABLES: &[&str] = &[
    "apps",
    "app_revisions",
    "members",
    "events",
    "counters",
    "flags",
    "timers",
    "tasks",
    "outbox",
    "outbox_attempts",
    "channel_settings",
    "approvals",
    "approval_steps",
    "approval_decisions",
    "install_secrets",
    "sign_links",
    "inbound_keys",
    "credentials",
    "sessions",
    "api_tokens",
    "signin_failures",
    "signin_links",
    "settings",
];

impl Store {
    /// Copies everything this store holds (a SQLite file) into `target` (a PostgreSQL database
    /// closeloop has opened, and so migrated, but never written to): closeloop's own tables, and
    /// the table of each form in `forms` (the installed apps' forms), rows in their stored order.
    /// Refuses a target that holds anything. One transaction: a failure leaves the target empty.
    pub fn move_into(&self, target: &mut Store, forms: &[FormTable]) -> Result<Moved, StoreError> {
        if self.backend() != Backend::Sqlite || target.backend() != Backend::Postgres {
            return Err(StoreError::Io("an installation moves from a SQLite file to a PostgreSQL database".into()));
        }
        let source = &self.conn;
        // One read transaction on the source: every table as of one moment, even while the
        // installation still runs (SQLite's WAL keeps that snapshot for the reader).
        source.execute_batch("BEGIN")?;
        let moved = target.write(|tx| {
            if let Some(what) = first_filled(tx, forms)? {
                return Err(StoreError::Io(format!(
                    "the target database is not empty ({what} has rows); move into a new, empty database"
                )));
            }
            let mut moved = Moved::default();
            for name in OWN_TABLES {
                moved.tables.push((name.to_string(), copy(source, tx, name, false)?));
            }
            for t in forms {
                schema::sync_form_table(tx, t)?;
                moved.tables.push((t.table.clone(), copy(source, tx, &t.table, true)?));
            }
            // Identity columns go on from the largest id copied.
            let identities: Vec<(String, String)> = tx
                .prepare(
                    "SELECT table_name::text, column_name::text FROM information_schema.columns
                     WHERE table_schema = current_schema() AND is_identity = 'YES' AND column_name <> 'rowid'",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            for (table, column) in identities {
                tx.execute_batch(&format!(
                    "SELECT setval(pg_get_serial_sequence('{t}', '{column}'), COALESCE((SELECT MAX({c}) FROM {q}), 0) + 1, false)",
                    t = table.replace('\'', "''"),
                    c = quote(&column),
                    q = quote(&table),
                ))?;
            }
            Ok(moved)
        });
        let _ = source.execute_batch("COMMIT");
        moved
    }
}

/// The first table of the target that holds a row, if any.
fn first_filled(tx: &Tx<'_>, forms: &[FormTable]) -> Result<Option<String>, StoreError> {
    let names = OWN_TABLES.iter().map(|n| n.to_string()).chain(forms.iter().map(|t| t.table.clone()));
    for name in names {
        let exists: i64 = tx.query_row(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?1",
            [&name],
            |r| r.get(0),
        )?;
        if exists > 0
            && tx.query_optional(&format!("SELECT 1 FROM {} LIMIT 1", quote(&name)), [], |_| Ok(()))?.is_some()
        {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

/// Copies one table's stored columns (generated ones are made again on the target); returns the
/// rows copied. A form table's `data` becomes `jsonb`.
fn copy(source: &Reader, tx: &Tx<'_>, table: &str, form: bool) -> Result<usize, StoreError> {
    let columns: Vec<String> = source
        .prepare(&format!("SELECT name FROM pragma_table_xinfo({}) WHERE hidden = 0", quote(table)))?
        .query_map([], |r| r.get::<String>(0))?
        .collect::<Result<_, _>>()?;
    if columns.is_empty() {
        return Ok(0);
    }
    let marks: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| if form && c == "data" { super::pg::json_param(i + 1) } else { format!("?{}", i + 1) })
        .collect();
    let quoted: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let insert = format!("INSERT INTO {} ({}) VALUES ({})", quote(table), quoted.join(", "), marks.join(", "));
    let mut into = tx.prepare(&insert)?;
    let mut from = source.prepare(&format!("SELECT {} FROM {} ORDER BY rowid", quoted.join(", "), quote(table)))?;
    let mut rows = from.query([])?;
    let mut n = 0;
    while let Some(r) = rows.next()? {
        let values = (0..columns.len()).map(|i| r.value(i)).collect::<Result<Vec<SqlValue>, _>>()?;
        into.execute(params_from_iter(values))?;
        n += 1;
    }
    Ok(n)
}
