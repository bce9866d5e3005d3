//! The PostgreSQL connection behind a [`Reader`](super::Reader). Store statements are written
//! once, with `?N` placeholders; here they become `$N`, are prepared once per connection, and
//! their values are converted to the types PostgreSQL declared for each placeholder and column.
//! A `jsonb` value reads back as SQLite's `json_extract` gives it: a string as text, a number as
//! a number, an object or array as its JSON text.

use std::cell::{Cell, RefCell, RefMut};
use std::collections::HashMap;

use postgres::types::{Json, ToSql, Type};
use postgres::{Client, NoTls};

use super::sql::{SqlValue, Value};
use super::{DbErrorKind, StoreError};

/// Prepared statements kept per connection before the cache starts again (statements built
/// at run time, a list page's, would otherwise grow it without end).
const PREPARED_MAX: usize = 512;

/// One connection to a PostgreSQL database.
pub(crate) struct Pg {
    /// Always `Some` until dropped.
    client: RefCell<Option<Client>>,
    prepared: RefCell<HashMap<String, postgres::Statement>>,
    /// Inside `BEGIN … COMMIT`.
    pub(crate) in_tx: Cell<bool>,
    /// Notifications from other sessions on [`CHANNEL`] received so far (see [`Pg::changes`]).
    heard: Cell<i64>,
    /// Listening on [`CHANNEL`]: from the first [`Pg::changes`] on, so only a connection that
    /// asks (a scheduler's) queues notifications.
    listening: Cell<bool>,
    /// This session's server process, whose own notifications are no news to it.
    pid: Cell<i32>,
    /// Where it connects, to connect again when the server has closed the session.
    url: String,
    /// A call found the session gone (see [`session_lost`]).
    lost: Cell<bool>,
}

/// How long [`Pg::changes`] waits on the socket for notifications, each time it looks.
const NOTIFY_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

/// The channel every committed write notifies, and a scheduler listens on.
pub(crate) const CHANNEL: &str = "closeloop";

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pg").field("in_tx", &self.in_tx.get()).finish_non_exhaustive()
    }
}

/// Whether `location` names a PostgreSQL database rather than a SQLite file.
pub fn is_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// A location as it may be shown: a URL's password is hidden.
pub fn shown_location(location: &str) -> String {
    if !is_url(location) {
        return location.to_string();
    }
    // ?password=secret&… → ?password=***&…
    let location = &match location.split_once('?') {
        Some((base, query)) => {
            let parts: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_string(),
                })
                .collect();
            format!("{base}?{}", parts.join("&"))
        }
        None => location.to_string(),
    };
    // postgres://user:secret@host/db → postgres://user:***@host/db
    let Some((scheme, rest)) = location.split_once("://") else { return location.to_string() };
    match rest.split_once('@') {
        Some((who, place)) => match who.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{place}"),
            None => location.to_string(),
        },
        None => location.to_string(),
    }
}

/// Scratch databases on a PostgreSQL server, for benchmarks and tests that need a fresh one
/// each: made, copied (a template copy of a database nobody is connected to) and dropped through
/// the database `server` names (its maintenance database, `postgres` say). Names are closeloop's
/// own (`[a-z0-9_]`), never input.
#[derive(Debug)]
pub struct ScratchServer {
    server: String,
    made: Vec<String>,
}

impl ScratchServer {
    /// Uses the server `server_url` names (`postgres://user@host:5432/postgres`).
    pub fn new(server_url: &str) -> Self {
        ScratchServer { server: server_url.to_string(), made: Vec::new() }
    }

    fn admin(&self, sql: &str) -> Result<(), StoreError> {
        let pg = Pg::connect(&self.server)?;
        pg.batch(sql)
    }

    fn url(&self, name: &str) -> String {
        let base = self.server.rsplit_once('/').map_or(self.server.as_str(), |(base, _)| base);
        format!("{base}/{name}")
    }

    /// A scratch database's name: always under the `closeloop_scratch_` prefix, so a scratch
    /// server never drops a database it did not make (an installation's `closeloop`, say).
    fn checked(name: &str) -> Result<String, StoreError> {
        let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        ok.then(|| format!("closeloop_scratch_{name}"))
            .ok_or_else(|| mismatch(format!("`{name}` is not a scratch database name")))
    }

    /// A new, empty database `name` (one left from before is dropped first); its URL.
    pub fn fresh(&mut self, name: &str) -> Result<String, StoreError> {
        let name = Self::checked(name)?;
        self.admin(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))?;
        self.admin(&format!("CREATE DATABASE \"{name}\""))?;
        let url = self.url(&name);
        self.made.push(name);
        Ok(url)
    }

    /// Database `to`, a copy of `from` (which nobody may be connected to); its URL.
    pub fn copy(&mut self, from: &str, to: &str) -> Result<String, StoreError> {
        let (from, to) = (Self::checked(from)?, Self::checked(to)?);
        self.admin(&format!("DROP DATABASE IF EXISTS \"{to}\" WITH (FORCE)"))?;
        self.admin(&format!("CREATE DATABASE \"{to}\" TEMPLATE \"{from}\""))?;
        let url = self.url(&to);
        self.made.push(to);
        Ok(url)
    }

    /// Where the databases are, for a report (the password hidden).
    pub fn shown(&self) -> String {
        shown_location(&self.server)
    }
}

impl Drop for ScratchServer {
    fn drop(&mut self) {
        for name in std::mem::take(&mut self.made) {
            let _ = self.admin(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
        }
    }
}

impl Pg {
    pub(crate) fn connect(url: &str) -> Result<Self, StoreError> {
        let (client, pid) = Self::session(url)?;
        Ok(Pg {
            client: RefCell::new(Some(client)),
            prepared: RefCell::new(HashMap::new()),
            in_tx: Cell::new(false),
            heard: Cell::new(0),
            listening: Cell::new(false),
            pid: Cell::new(pid),
            url: url.to_string(),
            lost: Cell::new(false),
        })
    }

    /// The store's error for `e`, remembering a lost session for [`Pg::revive`].
    fn failed(&self, e: postgres::Error) -> StoreError {
        if session_lost(&e) {
            self.lost.set(true);
        }
        from_pg(e)
    }

    /// A new session, and its server process id.
    fn session(url: &str) -> Result<(Client, i32), StoreError> {
        let mut client = off_runtime(|| Client::connect(url, NoTls)).map_err(from_pg)?;
        // Messages in English whatever the server's locale: the store reads one (42P08).
        off_runtime(|| client.batch_execute("SET lc_messages TO 'C'")).map_err(from_pg)?;
        let pid: i32 = off_runtime(|| client.query_one("SELECT pg_backend_pid()", &[]))
            .map_err(from_pg)?
            .try_get(0)
            .map_err(from_pg)?;
        Ok((client, pid))
    }

    /// Connects again when the server has closed the session (a restart, a failover, an
    /// administrator): between transactions only, so a write whose session died fails `Busy`
    /// and runs again from `BEGIN` on the new one. Prepared statements are the session's and
    /// go with it; a scheduler listens again at its next look.
    pub(crate) fn revive(&self) -> Result<(), StoreError> {
        let closed = self.client.try_borrow().map(|c| c.as_ref().is_none_or(Client::is_closed)).unwrap_or(false)
            || self.lost.get();
        if !closed || self.in_tx.get() {
            return Ok(());
        }
        let (client, pid) = Self::session(&self.url)?;
        let old = self.client.replace(Some(client));
        self.lost.set(false);
        self.pid.set(pid);
        self.prepared.borrow_mut().clear();
        self.listening.set(false);
        if let Some(old) = old {
            let _ = off_runtime(move || {
                drop(old);
                Ok(())
            });
        }
        Ok(())
    }

    fn client(&self) -> Result<RefMut<'_, Client>, StoreError> {
        let client = self.client.try_borrow_mut().map_err(|_| StoreError::Database {
            kind: DbErrorKind::Other,
            message: "a statement ran while another one's rows were being read".into(),
        })?;
        RefMut::filter_map(client, Option::as_mut).map_err(|_| mismatch("the connection is closed".into()))
    }

    pub(crate) fn prepare(&self, sql: &str) -> Result<postgres::Statement, StoreError> {
        self.revive()?;
        if let Some(s) = self.prepared.borrow().get(sql) {
            return Ok(s.clone());
        }
        let text = placeholders(sql);
        let mut client = self.client()?;
        let client: &mut Client = &mut client;
        // A placeholder PostgreSQL cannot type from the statement alone (`?1 IS NULL OR …`)
        // is text, as SQLite would take it.
        let mut types: Vec<Type> = Vec::new();
        let s = loop {
            match off_runtime(|| client.prepare_typed(&text, &types)) {
                Ok(s) => break s,
                Err(e) => match untyped_parameter(&e) {
                    // Type OID 0: "infer it", for the placeholders before the one named.
                    Some(n) if n > types.len() && n <= 100 => {
                        let infer = Type::new("unspecified".into(), 0, postgres::types::Kind::Simple, String::new());
                        types.resize(n - 1, infer);
                        types.push(Type::TEXT);
                    }
                    Some(n) if n <= types.len() && types[n - 1].oid() == 0 => types[n - 1] = Type::TEXT,
                    _ => return Err(self.failed(e)),
                },
            }
        };
        let mut prepared = self.prepared.borrow_mut();
        if prepared.len() >= PREPARED_MAX {
            prepared.clear();
        }
        prepared.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    pub(crate) fn execute(&self, s: &postgres::Statement, values: &[Value<'_>]) -> Result<usize, StoreError> {
        let args = bind(s, values)?;
        let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)).collect();
        let mut client = self.client()?;
        let client: &mut Client = &mut client;
        let n = off_runtime(|| client.execute(s, &refs)).map_err(|e| self.failed(e))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    pub(crate) fn query(
        &self,
        s: &postgres::Statement,
        values: &[Value<'_>],
    ) -> Result<Vec<postgres::Row>, StoreError> {
        let args = bind(s, values)?;
        let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)).collect();
        let mut client = self.client()?;
        let client: &mut Client = &mut client;
        off_runtime(|| client.query(s, &refs)).map_err(|e| self.failed(e))
    }

    pub(crate) fn batch(&self, sql: &str) -> Result<(), StoreError> {
        let mut client = self.client()?;
        let client: &mut Client = &mut client;
        off_runtime(|| client.batch_execute(sql)).map_err(|e| self.failed(e))
    }

    /// How many commits of other sessions this connection has heard of, counting those that
    /// arrived since it last looked: reads what the socket already holds, without a query and
    /// without waiting. The first call starts listening.
    pub(crate) fn changes(&self) -> Result<i64, StoreError> {
        use postgres::fallible_iterator::FallibleIterator;
        if !self.listening.get() {
            self.batch(&format!("LISTEN {CHANNEL}"))?;
            self.listening.set(true);
        }
        self.revive()?;
        let own = self.pid.get();
        let mut client = self.client()?;
        let client: &mut Client = &mut client;
        // A session hears its own NOTIFY too; what it wrote itself is no news. The client reads
        // the socket only while it waits on it, so it waits a moment (a non-waiting look sees
        // only what a query happened to read).
        let n = off_runtime(|| {
            client.notifications().timeout_iter(NOTIFY_WAIT).filter(|n| Ok(n.process_id() != own)).count()
        })
        .map_err(|e| self.failed(e))?;
        self.heard.set(self.heard.get().saturating_add(i64::try_from(n).unwrap_or(i64::MAX)));
        Ok(self.heard.get())
    }

    /// The connection's last identity value: `last_insert_rowid` of the row just inserted.
    pub(crate) fn last_id(&self) -> Result<i64, StoreError> {
        let mut client = self.client()?;
        let client: &mut Client = &mut client;
        let row = off_runtime(|| client.query_one("SELECT lastval()", &[])).map_err(|e| self.failed(e))?;
        row.try_get(0).map_err(from_pg)
    }
}

/// The parameter number of "could not determine data type of parameter $N" (42P08 or 42P18,
/// by where PostgreSQL meets it; the message is English, `lc_messages` being set to C at connect).
fn untyped_parameter(e: &postgres::Error) -> Option<usize> {
    let db = e.as_db_error()?;
    if !matches!(db.code().code(), "42P08" | "42P18") {
        return None;
    }
    let n: usize = db.message().strip_prefix("could not determine data type of parameter $")?.parse().ok()?;
    (n > 0).then_some(n)
}

impl Drop for Pg {
    fn drop(&mut self) {
        // Dropping the client ends its runtime, which may not happen inside another one.
        if let Some(client) = self.client.get_mut().take() {
            let _ = off_runtime(move || {
                drop(client);
                Ok(())
            });
        }
    }
}

/// Runs a call of the blocking client. The client drives its connection on a runtime of its
/// own, which may not start inside another one (the scheduler's loop, a server's), so there the
/// call runs on a thread of its own, borrowing what it needs, while this one waits.
fn off_runtime<T: Send>(f: impl FnOnce() -> Result<T, postgres::Error> + Send) -> Result<T, postgres::Error> {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Placeholder `n` bound as JSON text and used as `jsonb`: bound straight to a `jsonb` place,
/// a text would become a JSON string.
pub(crate) fn json_param(n: usize) -> String {
    format!("CAST(CAST(?{n} AS TEXT) AS JSONB)")
}

/// `?N` → `$N` (and a bare `?` → the next number), outside quoted text.
pub(crate) fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let (mut quoted, mut next) = (None::<char>, 1usize);
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (Some(q), c) if c == q => {
                quoted = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quoted = Some(c);
                out.push(c);
            }
            (None, '?') => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(d);
                    chars.next();
                }
                out.push('$');
                if digits.is_empty() {
                    out.push_str(&next.to_string());
                    next += 1;
                } else {
                    out.push_str(&digits);
                }
            }
            (None, c) => out.push(c),
        }
    }
    out
}

/// Each value as the type its placeholder was given.
fn bind(s: &postgres::Statement, values: &[Value<'_>]) -> Result<Vec<Box<dyn ToSql + Sync>>, StoreError> {
    let types = s.params();
    if types.len() != values.len() {
        return Err(mismatch(format!("the statement takes {} values, {} were given", types.len(), values.len())));
    }
    types.iter().zip(values).map(|(ty, v)| convert(ty, *v)).collect()
}

fn convert(ty: &Type, v: Value<'_>) -> Result<Box<dyn ToSql + Sync>, StoreError> {
    let json = |v: Value<'_>| -> serde_json::Value {
        match v {
            Value::Null => serde_json::Value::Null,
            Value::Int(n) => n.into(),
            Value::Real(x) => serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, Into::into),
            Value::Text(s) => s.into(),
            Value::Blob(b) => String::from_utf8_lossy(b).into(),
        }
    };
    let cannot = || mismatch(format!("{v:?} cannot be bound as {ty}"));
    Ok(match v {
        Value::Null => null(ty),
        _ if *ty == Type::JSONB || *ty == Type::JSON => Box::new(Json(json(v))),
        Value::Int(n) if *ty == Type::INT8 => Box::new(n),
        Value::Int(n) if *ty == Type::INT4 => Box::new(i32::try_from(n).map_err(|_| cannot())?),
        Value::Int(n) if *ty == Type::INT2 => Box::new(i16::try_from(n).map_err(|_| cannot())?),
        Value::Int(n) if *ty == Type::FLOAT8 => Box::new(n as f64),
        Value::Int(n) if *ty == Type::BOOL => Box::new(n != 0),
        Value::Int(n) if is_text(ty) => Box::new(n.to_string()),
        Value::Real(x) if *ty == Type::FLOAT8 => Box::new(x),
        Value::Real(x) if is_text(ty) => Box::new(x.to_string()),
        Value::Text(s) if is_text(ty) => Box::new(s.to_string()),
        Value::Text(s) if *ty == Type::BYTEA => Box::new(s.as_bytes().to_vec()),
        Value::Blob(b) if *ty == Type::BYTEA => Box::new(b.to_vec()),
        _ => return Err(cannot()),
    })
}

/// A NULL of the placeholder's type (the client checks that a value's type fits, even for NULL).
fn null(ty: &Type) -> Box<dyn ToSql + Sync> {
    match ty {
        t if *t == Type::INT8 => Box::new(None::<i64>),
        t if *t == Type::INT4 => Box::new(None::<i32>),
        t if *t == Type::INT2 => Box::new(None::<i16>),
        t if *t == Type::FLOAT8 => Box::new(None::<f64>),
        t if *t == Type::BOOL => Box::new(None::<bool>),
        t if *t == Type::BYTEA => Box::new(None::<Vec<u8>>),
        t if *t == Type::JSONB || *t == Type::JSON => Box::new(None::<Json<serde_json::Value>>),
        _ => Box::new(None::<String>),
    }
}

fn is_text(ty: &Type) -> bool {
    [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME, Type::UNKNOWN].contains(ty)
}

/// Column `i` whatever its type, as SQLite would give it.
pub(crate) fn value(row: &postgres::Row, i: usize) -> Result<SqlValue, StoreError> {
    let ty = row.columns().get(i).map(|c| c.type_().clone()).ok_or_else(|| mismatch(format!("no column {i}")))?;
    let get = |e: postgres::Error| from_pg(e);
    Ok(match ty {
        t if t == Type::INT8 => row.try_get::<_, Option<i64>>(i).map_err(get)?.map_or(SqlValue::Null, SqlValue::Int),
        t if t == Type::INT4 => {
            row.try_get::<_, Option<i32>>(i).map_err(get)?.map_or(SqlValue::Null, |n| SqlValue::Int(n.into()))
        }
        t if t == Type::INT2 => {
            row.try_get::<_, Option<i16>>(i).map_err(get)?.map_or(SqlValue::Null, |n| SqlValue::Int(n.into()))
        }
        t if t == Type::BOOL => {
            row.try_get::<_, Option<bool>>(i).map_err(get)?.map_or(SqlValue::Null, |b| SqlValue::Int(b.into()))
        }
        t if t == Type::FLOAT8 => row.try_get::<_, Option<f64>>(i).map_err(get)?.map_or(SqlValue::Null, SqlValue::Real),
        t if t == Type::FLOAT4 => {
            row.try_get::<_, Option<f32>>(i).map_err(get)?.map_or(SqlValue::Null, |x| SqlValue::Real(x.into()))
        }
        t if t == Type::BYTEA => {
            row.try_get::<_, Option<Vec<u8>>>(i).map_err(get)?.map_or(SqlValue::Null, SqlValue::Blob)
        }
        t if t == Type::JSONB || t == Type::JSON => {
            match row.try_get::<_, Option<Json<serde_json::Value>>>(i).map_err(get)? {
                None => SqlValue::Null,
                Some(Json(v)) => from_json(v),
            }
        }
        t if t == Type::NUMERIC => {
            return Err(mismatch(format!("column {i} is numeric; cast it to bigint or double precision")))
        }
        _ => row.try_get::<_, Option<String>>(i).map_err(get)?.map_or(SqlValue::Null, SqlValue::Text),
    })
}

fn from_json(v: serde_json::Value) -> SqlValue {
    match v {
        serde_json::Value::Null => SqlValue::Null,
        serde_json::Value::Bool(b) => SqlValue::Int(b.into()),
        serde_json::Value::Number(n) => {
            n.as_i64().map_or_else(|| SqlValue::Real(n.as_f64().unwrap_or(0.0)), SqlValue::Int)
        }
        serde_json::Value::String(s) => SqlValue::Text(s),
        other => SqlValue::Text(other.to_string()),
    }
}

fn mismatch(message: String) -> StoreError {
    StoreError::Database { kind: DbErrorKind::Other, message }
}

/// The session is gone: closed, the socket failed under it, or the server ended it (57P01-03:
/// a shutdown, an administrator's command, a server that cannot take it now).
fn session_lost(e: &postgres::Error) -> bool {
    e.is_closed()
        || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
        || e.as_db_error().is_some_and(|d| d.code().code().starts_with("57P"))
}

/// A PostgreSQL error as the store reports it: a serialization failure, a deadlock or a unique
/// key met by a race is `Busy` (the whole transaction is retried, as on a busy SQLite file). Two
/// nodes appending to the audit chain at once each follow the head their snapshot showed; the
/// one that lost runs again and follows the new head, so the chain keeps one order.
pub(crate) fn from_pg(e: postgres::Error) -> StoreError {
    let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
    // A unique key met inside a write is a race between nodes that each checked first (an
    // idempotency key, a unique field, the chain's next number): running again from `BEGIN`
    // sees the other's row and takes the path for it. One node alone never meets it: the
    // engine checks before it inserts.
    let kind = match code.as_str() {
        // The session went away (the server restarted, failed over, or was told to end it):
        // the transaction is lost, and runs again on a new session.
        _ if session_lost(&e) => DbErrorKind::Busy,
        "40001" | "40P01" | "55P03" | "23505" => DbErrorKind::Busy,
        c if c.starts_with("23") => DbErrorKind::Constraint,
        c if c.starts_with("53") => DbErrorKind::Full,
        _ => DbErrorKind::Other,
    };
    let message = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    };
    StoreError::Database { kind, message }
}

#[cfg(test)]
mod tests {
    use super::placeholders;

    #[test]
    fn a_shown_location_hides_the_password_wherever_the_url_puts_it() {
        use super::shown_location;
        assert_eq!(shown_location("postgres://cl:s3cret@db:5432/cl"), "postgres://cl:***@db:5432/cl");
        assert_eq!(
            shown_location("postgresql://cl@db/cl?sslmode=disable&password=s3cret"),
            "postgresql://cl@db/cl?sslmode=disable&password=***"
        );
        assert_eq!(shown_location("closeloop.db"), "closeloop.db");
    }

    #[test]
    fn placeholders_are_numbered_the_postgres_way_outside_quoted_text() {
        assert_eq!(
            placeholders("SELECT a FROM t WHERE b = ?1 AND c = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = $12"
        );
        assert_eq!(
            placeholders("SELECT '?1', \"x?\" FROM t WHERE a = ? AND b = ?"),
            "SELECT '?1', \"x?\" FROM t WHERE a = $1 AND b = $2"
        );
    }
}
