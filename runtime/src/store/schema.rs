//! Database schema: closeloop's own tables (versioned with `PRAGMA user_version`), and one table
//! per form, derived from the app definition.

use super::sql::params;
use super::{quote, Backend, Reader, StoreError, Tx};
use crate::model::{FieldType, Form};

/// Each entry upgrades the schema by one version; never edit a released entry, add one.
const MIGRATIONS: &[&str] = &[
    // 1: apps, members, the audit chain, id counters.
    "CREATE TABLE apps (
        id TEXT PRIMARY KEY,
        revision INTEGER NOT NULL,
        source TEXT NOT NULL,
        installed_at TEXT NOT NULL,
        installed_by TEXT NOT NULL
     );
     CREATE TABLE app_revisions (
        app TEXT NOT NULL REFERENCES apps(id),
        revision INTEGER NOT NULL,
        source TEXT NOT NULL,
        installed_at TEXT NOT NULL,
        installed_by TEXT NOT NULL,
        forced INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (app, revision)
     );
     CREATE TABLE members (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        roles TEXT NOT NULL,
        region TEXT,
        manager TEXT,
        active INTEGER NOT NULL,
        capacity INTEGER,
        email TEXT,
        phone TEXT,
        extra TEXT NOT NULL DEFAULT '{}',
        updated_at TEXT NOT NULL
     );
     CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        kind TEXT NOT NULL,
        form TEXT,
        record TEXT,
        version INTEGER,
                body TEXT NOT NULL,
        data TEXT,
        data_hash TEXT,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
     );
     CREATE INDEX events_by_record ON events(form, record, seq);
     CREATE TABLE counters (
        form TEXT NOT NULL,
        period TEXT NOT NULL,
        value INTEGER NOT NULL,
                PRIMARY KEY (form, period)
     );",
    // 2: boards: records flagged for someone's attention.
    "CREATE TABLE flags (
        board TEXT NOT NULL,
        form TEXT NOT NULL,
        record TEXT NOT NULL,
        reason TEXT NOT NULL,
        since TEXT NOT NULL,
        PRIMARY KEY (board, form, record)
     );",
    // 3: durable timers, SOP tasks and the outbox.
    "CREATE TABLE timers (
        id INTEGER PRIMARY KEY,
        app TEXT NOT NULL,
        automation TEXT NOT NULL,
        kind TEXT NOT NULL,
        form TEXT,
        record TEXT,
        due TEXT NOT NULL,
        anchor TEXT,
        payload TEXT,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        done_at TEXT,
        outcome TEXT
     );
     CREATE INDEX timers_due ON timers(due) WHERE status = 'pending';
     CREATE INDEX timers_by_record ON timers(form, record, automation);
     CREATE TABLE tasks (
        id INTEGER PRIMARY KEY,
        app TEXT NOT NULL,
        form TEXT NOT NULL,
        record TEXT NOT NULL,
        sop TEXT NOT NULL,
        task TEXT NOT NULL,
        title TEXT NOT NULL,
        assignee TEXT,
        due TEXT,
        due_at TEXT,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        done_at TEXT,
        done_by TEXT,
        evidence TEXT
     );
     CREATE INDEX tasks_by_record ON tasks(form, record);
     CREATE INDEX tasks_open ON tasks(due_at) WHERE status = 'open';
     CREATE UNIQUE INDEX tasks_open_once ON tasks(form, record, sop, task) WHERE status = 'open';
     CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        channel TEXT NOT NULL,
        recipient TEXT NOT NULL,
        address TEXT,
        message TEXT NOT NULL,
        subject TEXT,
        body TEXT NOT NULL,
        key TEXT NOT NULL UNIQUE,
        form TEXT,
        record TEXT,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        next_at TEXT,
        last_error TEXT
     );
     CREATE INDEX outbox_pending ON outbox(next_at) WHERE status = 'pending';",
    // 4: delivery: channel settings (install configuration, never app YAML), every attempt,
    // and the lease a deliverer holds on a message while it sends it.
    "CREATE TABLE channel_settings (
        channel TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (channel, key)
     );
     CREATE TABLE outbox_attempts (
        id INTEGER PRIMARY KEY,
        message INTEGER NOT NULL REFERENCES outbox(id),
        at TEXT NOT NULL,
        ok INTEGER NOT NULL,
        status TEXT,
        error TEXT,
        millis INTEGER NOT NULL
     );
     CREATE INDEX outbox_attempts_by_message ON outbox_attempts(message, id);
     ALTER TABLE outbox ADD COLUMN lease_until TEXT;
     CREATE INDEX outbox_sending ON outbox(lease_until) WHERE status = 'sending';",
    // 5: a lease names its holder, so a deliverer whose lease ran out cannot settle a message
    // another one has taken over.
    "ALTER TABLE outbox ADD COLUMN lease_token TEXT;",
    // 6: approval chains: one run per submission, its steps, and each approver's decision.
    "CREATE TABLE approvals (
        id INTEGER PRIMARY KEY,
        app TEXT NOT NULL,
        chain TEXT NOT NULL,
        form TEXT NOT NULL,
        record TEXT NOT NULL,
        version INTEGER NOT NULL,
        status TEXT NOT NULL,
        step INTEGER NOT NULL,
        submitter TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT
     );
     CREATE UNIQUE INDEX approvals_active ON approvals(form, record) WHERE status = 'pending';
     CREATE TABLE approval_steps (
        approval INTEGER NOT NULL REFERENCES approvals(id),
        step INTEGER NOT NULL,
        step_id TEXT NOT NULL,
        status TEXT NOT NULL,
        approvers TEXT NOT NULL,
        needed INTEGER NOT NULL,
        opened_at TEXT,
        due_at TEXT,
        decided_at TEXT,
        note TEXT,
        PRIMARY KEY (approval, step)
     );
     CREATE TABLE approval_decisions (
        approval INTEGER NOT NULL REFERENCES approvals(id),
        step INTEGER NOT NULL,
        member TEXT NOT NULL,
        decision TEXT NOT NULL,
        comment TEXT,
        at TEXT NOT NULL,
        version INTEGER NOT NULL,
        PRIMARY KEY (approval, step, member)
     );",
    // 7: customer signing links (single use) and the install's own secrets.
    "CREATE TABLE install_secrets (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        created_at TEXT NOT NULL
     );
     CREATE TABLE sign_links (
        nonce TEXT PRIMARY KEY,
        form TEXT NOT NULL,
        record TEXT NOT NULL,
        version INTEGER NOT NULL,
        version_hash TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        used_at TEXT,
        signer TEXT
     );",
    // 8: delegation while away: the directory says who is away and who stands in; a decision
    // records on whose behalf it was made (each approver's seat is filled once), or the
    // reason of an override.
    "ALTER TABLE members ADD COLUMN away_from TEXT;
     ALTER TABLE members ADD COLUMN away_until TEXT;
     ALTER TABLE members ADD COLUMN delegate_to TEXT;
     ALTER TABLE approval_decisions ADD COLUMN on_behalf_of TEXT;
     ALTER TABLE approval_decisions ADD COLUMN override_reason TEXT;
     CREATE UNIQUE INDEX approval_decision_seats
        ON approval_decisions(approval, step, COALESCE(on_behalf_of, member));",
    // 9: idempotency keys of received events, with the report each got.
    "CREATE TABLE inbound_keys (
        key TEXT PRIMARY KEY,
        event TEXT NOT NULL,
        request TEXT NOT NULL,
        raw TEXT NOT NULL,
        report TEXT NOT NULL,
        at TEXT NOT NULL
     );",
    // 10 (audit covers rights): events by kind, for the cross-checks of channel settings, app
    // installs and the coverage mark. Upgrading a database with approval runs also appends an
    // `audit.coverage` event (see `migrate`).
    "CREATE INDEX events_by_kind ON events(kind, seq);",
    // 11 (the signing key leaves the database): a link's nonce is kept only as its hash; links
    // made before keep a mark, since their MAC covers the nonce itself (see `migrate`).
    "ALTER TABLE sign_links ADD COLUMN legacy INTEGER NOT NULL DEFAULT 0;",
    // 12 (identity): members' password hashes (argon2id), sign-in sessions, API tokens and
    // one-time sign-in links, each secret kept only as its SHA-256 digest, and failed sign-ins
    // for throttling; install settings (the public address pages are reached at).
    "CREATE TABLE credentials (
        member TEXT PRIMARY KEY,
        hash TEXT NOT NULL,
        changed_at TEXT NOT NULL
     );
     CREATE TABLE sessions (
        digest TEXT PRIMARY KEY,
        member TEXT NOT NULL,
        csrf TEXT NOT NULL,
        created_at TEXT NOT NULL,
        seen_at TEXT NOT NULL,
        ends_at TEXT NOT NULL
     );
     CREATE INDEX sessions_by_member ON sessions(member);
     CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        member TEXT NOT NULL,
        scope TEXT NOT NULL,
        digest TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        revoked_at TEXT
     );
     CREATE TABLE signin_failures (
        subject TEXT NOT NULL,
        at TEXT NOT NULL
     );
     CREATE INDEX signin_failures_by_subject ON signin_failures(subject, at);
     CREATE TABLE signin_links (
        digest TEXT PRIMARY KEY,
        member TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        used_at TEXT
     );
     CREATE INDEX signin_links_by_member ON signin_links(member, created_at);
     CREATE TABLE settings (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        changed_at TEXT NOT NULL
     );",
];

/// The schema version from which sign link nonces are stored hashed.
const NONCES_HASHED: i64 = 11;

/// The schema version from which approval runs have step events (`store/proof.rs`).
const AUDIT_COVERS_RIGHTS: i64 = 10;

/// A migration as PostgreSQL runs it: the same tables, with SQLite's integer types spelled
/// PostgreSQL's way (an `INTEGER PRIMARY KEY` is SQLite's row id, numbered when left out).
pub(crate) fn postgres_ddl(sql: &str) -> String {
    sql.replace("INTEGER PRIMARY KEY", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
        .replace("INTEGER", "BIGINT")
}

/// The schema version the database is at: SQLite keeps it in `PRAGMA user_version`,
/// PostgreSQL in the `closeloop_migrations` table, one row per version applied.
fn version(tx: &Tx<'_>) -> Result<i64, StoreError> {
    match tx.backend() {
        Backend::Sqlite => tx.query_row("PRAGMA user_version", [], |r| r.get(0)),
        Backend::Postgres => {
            // Two nodes starting at once wait for each other before this transaction begins
            // (see `Store::open_postgres`), so this reads what the first one migrated.
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS closeloop_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL);",
            )?;
            tx.query_row("SELECT COALESCE(MAX(version), 0) FROM closeloop_migrations", [], |r| r.get(0))
        }
    }
}

/// Brings the database to the newest schema version; returns the version it was at.
pub(super) fn migrate(tx: &Tx<'_>) -> Result<i64, StoreError> {
    let current = version(tx)?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::TooNew { found: current, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = (i + 1) as i64;
        match tx.backend() {
            Backend::Sqlite => {
                tx.execute_batch(sql)?;
                tx.pragma_update("user_version", &version.to_string())?;
            }
            Backend::Postgres => {
                tx.execute_batch(&postgres_ddl(sql))?;
                let at = jiff::Timestamp::now().to_string();
                tx.execute(
                    "INSERT INTO closeloop_migrations (version, applied_at) VALUES (?1, ?2)",
                    params![version, at],
                )?;
            }
        }
    }
    if current > 0 && current < AUDIT_COVERS_RIGHTS && known >= AUDIT_COVERS_RIGHTS {
        super::proof::mark_coverage(tx)?;
    }
    if current > 0 && current < NONCES_HASHED && known >= NONCES_HASHED {
        super::signing::hash_old_nonces(tx)?;
    }
    Ok(current)
}

/// The schema version that brought durable timers: a database older than this has apps whose
/// timers were never armed.
pub const TIMERS_SINCE: i64 = 3;

/// How one form is stored: its table and the columns derived from its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormTable {
    /// The form id.
    pub form: String,
    /// The table name (unquoted): `rec_<form>`.
    pub table: String,
    /// Fields with a generated column, and whether it is indexed and unique.
    pub columns: Vec<Column>,
    /// The import key fields.
    pub key: Vec<String>,
}

/// A generated column for one scalar field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The field id.
    pub field: String,
    /// Indexed for filters and lookups.
    pub indexed: bool,
    /// No two records share a value.
    pub unique: bool,
}

impl FormTable {
    /// Derives a form's storage from its definition.
    pub fn of(form: &Form) -> Self {
        let columns = form
            .fields
            .iter()
            .filter(|f| !matches!(f.kind, FieldType::Table | FieldType::MultiChoice | FieldType::Range))
            .map(|f| {
                let unique = f.unique == Some(true);
                let indexed = unique
                    || form.key.contains(&f.id)
                    || form.title_field.as_deref() == Some(f.id.as_str())
                    || matches!(
                        f.kind,
                        FieldType::Choice
                            | FieldType::Member
                            | FieldType::Link
                            | FieldType::Date
                            | FieldType::Datetime
                            | FieldType::Phone
                    );
                Column { field: f.id.clone(), indexed, unique }
            })
            .collect();
        FormTable { form: form.id.clone(), table: format!("rec_{}", form.id), columns, key: form.key.clone() }
    }

    /// The quoted table name.
    pub fn quoted(&self) -> String {
        quote(&self.table)
    }

    /// The quoted column holding a member field's value, for counting assignees: the record's
    /// `owner` column for the form's owner field, the field's own column for another.
    pub fn assignee(&self, field: &str, owner_field: Option<&str>) -> String {
        match self.column(field) {
            Some(column) if owner_field != Some(field) => column,
            _ => "owner".to_string(),
        }
    }

    /// The quoted column of a field, when it has one.
    pub fn column(&self, field: &str) -> Option<String> {
        self.columns.iter().find(|c| c.field == field).map(|c| quote(&format!("f_{}", c.field)))
    }
}

/// An index name that no other index in the database can have: the table name's length, the
/// table, a kind letter (`s` for a built-in column, `f` for a field) and the column
/// (`ix8_rec_lead_f_phone`, `ix8_rec_lead_s_state`). Older versions named indexes
/// `ix_<table>_<field>`, so a field called `state`, `owner`, `created` or `key` took the name of
/// a built-in index, and field `b_c` of form `a` the name of field `c` of form `a_b`: one of the
/// two indexes (perhaps a unique one) was dropped or never made.
fn index_name(table: &str, kind: char, column: &str) -> String {
    format!("ix{}_{table}_{kind}_{column}", table.len())
}

/// One index a form's table should have.
struct Wanted {
    name: String,
    unique: bool,
    columns: String,
}

/// The indexes a form's table should have: the built-in columns', each indexed field's, and
/// the key's.
fn wanted_indexes(t: &FormTable) -> Vec<Wanted> {
    let mut out: Vec<Wanted> = [("state", "state"), ("owner", "owner"), ("created", "created_at")]
        .into_iter()
        .map(|(name, column)| Wanted { name: index_name(&t.table, 's', name), unique: false, columns: quote(column) })
        .collect();
    for c in t.columns.iter().filter(|c| c.indexed) {
        let columns = quote(&format!("f_{}", c.field));
        out.push(Wanted { name: index_name(&t.table, 'f', &c.field), unique: c.unique, columns });
    }
    if !t.key.is_empty() && t.key.iter().all(|k| t.column(k).is_some()) {
        let cols: Vec<String> = t.key.iter().filter_map(|k| t.column(k)).collect();
        out.push(Wanted { name: index_name(&t.table, 's', "key"), unique: true, columns: cols.join(", ") });
    }
    out
}

/// Creates a form's table, or adds the columns and indexes new fields need. Columns of removed
/// fields stay (they are virtual and cost nothing); the install check refuses removals that
/// would orphan data. Indexes follow the definition as it is now: any other index on the table
/// (one no longer wanted, one whose uniqueness changed, the key's, one named the old way) is
/// dropped, and the wanted ones are made.
pub(crate) fn sync_form_table(tx: &Tx<'_>, t: &FormTable) -> Result<(), StoreError> {
    let table = t.quoted();
    // SQLite numbers its rows by itself (`rowid`); PostgreSQL gets the column, so insertion
    // order reads the same on both. The data is `jsonb` there, and each field's column is
    // stored, since PostgreSQL has no virtual generated columns.
    let (rowid, data) = match tx.backend() {
        Backend::Sqlite => ("", "TEXT"),
        Backend::Postgres => ("rowid BIGINT GENERATED ALWAYS AS IDENTITY,", "JSONB"),
    };
    tx.execute_batch(
        &format!(
            "CREATE TABLE IF NOT EXISTS {table} ({rowid}
            id TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            state TEXT,
            owner TEXT,
            data {data} NOT NULL,
            data_hash TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            created_by TEXT NOT NULL,
            updated_by TEXT NOT NULL
         );",
            table = table,
            rowid = rowid,
            data = data
        )
        .replace("INTEGER", if tx.backend() == Backend::Postgres { "BIGINT" } else { "INTEGER" }),
    )?;
    let existing = existing_columns(tx, &t.table)?;
    for c in &t.columns {
        let name = format!("f_{}", c.field);
        if !existing.contains(&name) {
            // The field id matches ^[a-z][a-z0-9_]*$, so it is safe inside the JSON path.
            let (name, field) = (quote(&name), &c.field);
            tx.execute_batch(&match tx.backend() {
                Backend::Sqlite => format!(
                    "ALTER TABLE {table} ADD COLUMN {name} GENERATED ALWAYS AS (json_extract(data, '$.{field}')) VIRTUAL"
                ),
                Backend::Postgres => format!(
                    "ALTER TABLE {table} ADD COLUMN {name} JSONB GENERATED ALWAYS AS ({}) STORED",
                    json_field("data", field)
                ),
            })?;
        }
    }
    let wanted = wanted_indexes(t);
    let key = index_name(&t.table, 's', "key");
    for (name, unique) in existing_indexes(tx, &t.table)? {
        let keep = name != key && wanted.iter().any(|w| w.name == name && w.unique == unique);
        if !keep {
            tx.execute_batch(&format!("DROP INDEX {}", quote(&name)))?;
        }
    }
    for w in &wanted {
        let unique = if w.unique { "UNIQUE " } else { "" };
        tx.execute_batch(&format!("CREATE {unique}INDEX IF NOT EXISTS {} ON {table}({})", quote(&w.name), w.columns))?;
    }
    Ok(())
}

/// The indexes made on a table with `CREATE INDEX` (not the primary key's), with whether each
/// is unique.
fn existing_indexes(conn: &Reader, table: &str) -> Result<Vec<(String, bool)>, StoreError> {
    let mut stmt = conn.prepare(conn.pick(
        "SELECT name, \"unique\" FROM pragma_index_list(?1) WHERE origin = 'c'",
        "SELECT i.relname::text, x.indisunique FROM pg_index x
           JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
         WHERE t.relname = ?1 AND t.relnamespace = current_schema()::regnamespace AND NOT x.indisprimary",
    ))?;
    let rows =
        stmt.query_map([table], |r| Ok((r.get::<String>(0)?, r.get::<bool>(1)?)))?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn existing_columns(conn: &Reader, table: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare(conn.pick(
        "SELECT name FROM pragma_table_xinfo(?1)",
        "SELECT column_name::text FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?1",
    ))?;
    let names = stmt.query_map([table], |r| r.get::<String>(0))?.collect::<Result<Vec<_>, _>>()?;
    Ok(names)
}

/// PostgreSQL's `json_extract(data, '$.field')`: the field's `jsonb` value, with a JSON `null`
/// read as SQL `NULL` as SQLite reads it. `field` matches `^[a-z][a-z0-9_]*$` (the loader's rule).
pub(crate) fn json_field(column: &str, field: &str) -> String {
    format!("NULLIF({column} -> '{field}', 'null'::jsonb)")
}
