//! What a store statement binds and what its rows give back, the same whatever database is
//! behind the [`Reader`](super::Reader): [`params!`] and [`Arg`] in, [`Row::get`] out. Store
//! modules name only these, so a statement reads the same for every backend and the database
//! library's own types stay in this file and `mod.rs`.

use rusqlite::types::{ToSqlOutput, ValueRef};

use super::pg::{self, Pg};
use super::{from_sqlite, StoreError};

/// A value bound to a statement, borrowed from what the caller holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// An owned value: one bound from a list built at run time ([`params_from_iter`]), or one read
/// back whatever its type ([`Row::value`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SqlValue {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// Something a statement can bind.
pub(crate) trait Arg {
    fn value(&self) -> Value<'_>;
}

impl<T: Arg + ?Sized> Arg for &T {
    fn value(&self) -> Value<'_> {
        (**self).value()
    }
}

impl<T: Arg> Arg for Option<T> {
    fn value(&self) -> Value<'_> {
        self.as_ref().map_or(Value::Null, Arg::value)
    }
}

impl Arg for str {
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl Arg for String {
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl Arg for [u8] {
    fn value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl Arg for Vec<u8> {
    fn value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl Arg for f64 {
    fn value(&self) -> Value<'_> {
        Value::Real(*self)
    }
}

impl Arg for bool {
    fn value(&self) -> Value<'_> {
        Value::Int(i64::from(*self))
    }
}

macro_rules! int_args {
    ($($t:ty),*) => {$(
        impl Arg for $t {
            fn value(&self) -> Value<'_> {
                Value::Int(i64::from(*self))
            }
        }
    )*};
}
int_args!(i64, i32, u32, u16, u8);

impl Arg for usize {
    fn value(&self) -> Value<'_> {
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl Arg for u64 {
    fn value(&self) -> Value<'_> {
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl Arg for SqlValue {
    fn value(&self) -> Value<'_> {
        match self {
            SqlValue::Null => Value::Null,
            SqlValue::Int(n) => Value::Int(*n),
            SqlValue::Real(x) => Value::Real(*x),
            SqlValue::Text(s) => Value::Text(s),
            SqlValue::Blob(b) => Value::Blob(b),
        }
    }
}

/// What a statement is run with: `params![a, b]`, `[a]`, `[]`, or [`params_from_iter`].
pub(crate) trait Params {
    fn values(&self) -> Vec<Value<'_>>;
}

impl Params for &[&dyn Arg] {
    fn values(&self) -> Vec<Value<'_>> {
        self.iter().map(|a| a.value()).collect()
    }
}

impl Params for [&dyn Arg; 0] {
    fn values(&self) -> Vec<Value<'_>> {
        Vec::new()
    }
}

macro_rules! array_params {
    ($($n:literal),*) => {$(
        impl<T: Arg> Params for [T; $n] {
            fn values(&self) -> Vec<Value<'_>> {
                self.iter().map(Arg::value).collect()
            }
        }
    )*};
}
array_params!(1, 2, 3, 4);

/// Values bound in order, from a list built at run time.
pub(crate) struct ParamsFromIter(Vec<SqlValue>);

/// Binds `values` in order: `?1` is the first.
pub(crate) fn params_from_iter<V: Into<SqlValue>>(values: impl IntoIterator<Item = V>) -> ParamsFromIter {
    ParamsFromIter(values.into_iter().map(Into::into).collect())
}

impl From<&SqlValue> for SqlValue {
    fn from(v: &SqlValue) -> Self {
        v.clone()
    }
}

impl Params for ParamsFromIter {
    fn values(&self) -> Vec<Value<'_>> {
        self.0.iter().map(Arg::value).collect()
    }
}

/// `params![a, b, c]`: binds `?1`, `?2`, `?3`, each by reference.
macro_rules! params {
    () => {
        [] as [&dyn $crate::store::sql::Arg; 0]
    };
    ($($x:expr),+ $(,)?) => {
        &[$(&$x as &dyn $crate::store::sql::Arg),+] as &[&dyn $crate::store::sql::Arg]
    };
}
pub(crate) use params;

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Null => ValueRef::Null,
            Value::Int(n) => ValueRef::Integer(n),
            Value::Real(x) => ValueRef::Real(x),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

/// A column type a row can be read as.
pub(crate) trait Column: Sized {
    fn from_sqlite(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self>;
    /// From the value another backend read (see `pg::value`).
    fn from_value(v: SqlValue) -> Option<Self>;
}

macro_rules! columns {
    ($($t:ty => |$v:ident| $read:expr;)*) => {$(
        impl Column for $t {
            fn from_sqlite(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self> {
                row.get(i)
            }
            fn from_value($v: SqlValue) -> Option<Self> {
                $read
            }
        }
    )*};
}
columns! {
    i64 => |v| match v { SqlValue::Int(n) => Some(n), _ => None };
    bool => |v| match v { SqlValue::Int(n) => Some(n != 0), _ => None };
    f64 => |v| match v { SqlValue::Real(x) => Some(x), SqlValue::Int(n) => Some(n as f64), _ => None };
    String => |v| match v { SqlValue::Text(s) => Some(s), _ => None };
    Vec<u8> => |v| match v { SqlValue::Blob(b) => Some(b), _ => None };
}

impl<T: Column + rusqlite::types::FromSql> Column for Option<T> {
    fn from_sqlite(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self> {
        row.get(i)
    }
    fn from_value(v: SqlValue) -> Option<Self> {
        match v {
            SqlValue::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One row of a result, read by column index.
pub(crate) enum Row<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Postgres(&'a postgres::Row),
}

impl Row<'_> {
    /// Column `i` as `T`; a NULL reads as `None` for an `Option`, and as an error otherwise.
    pub(crate) fn get<T: Column>(&self, i: usize) -> Result<T, StoreError> {
        match self {
            Row::Sqlite(r) => T::from_sqlite(r, i).map_err(from_sqlite),
            Row::Postgres(r) => {
                let v = pg::value(r, i)?;
                let shown = format!("{v:?}");
                T::from_value(v).ok_or_else(|| StoreError::Database {
                    kind: super::DbErrorKind::Other,
                    message: format!("column {i} holds {shown}, not a {}", std::any::type_name::<T>()),
                })
            }
        }
    }

    /// Column `i` whatever its type.
    pub(crate) fn value(&self, i: usize) -> Result<SqlValue, StoreError> {
        let r = match self {
            Row::Sqlite(r) => r,
            Row::Postgres(r) => return pg::value(r, i),
        };
        Ok(match r.get_ref(i).map_err(from_sqlite)? {
            ValueRef::Null => SqlValue::Null,
            ValueRef::Integer(n) => SqlValue::Int(n),
            ValueRef::Real(x) => SqlValue::Real(x),
            ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
        })
    }
}

enum Prepared<'c> {
    Cached(rusqlite::CachedStatement<'c>),
    Once(rusqlite::Statement<'c>),
    Postgres(&'c Pg, postgres::Statement),
}

/// A prepared statement. Rows are read whole before the call returns, so another statement may
/// run while its results are used ([`Statement::query`] reads a SQLite result row by row).
pub(crate) struct Statement<'c> {
    prepared: Prepared<'c>,
}

impl<'c> Statement<'c> {
    pub(super) fn cached(s: rusqlite::CachedStatement<'c>) -> Self {
        Statement { prepared: Prepared::Cached(s) }
    }

    pub(super) fn once(s: rusqlite::Statement<'c>) -> Self {
        Statement { prepared: Prepared::Once(s) }
    }

    pub(super) fn postgres(pg: &'c Pg, s: postgres::Statement) -> Self {
        Statement { prepared: Prepared::Postgres(pg, s) }
    }

    /// Runs it; how many rows it changed.
    pub(crate) fn execute<P: Params>(&mut self, params: P) -> Result<usize, StoreError> {
        let values = params.values();
        match &mut self.prepared {
            Prepared::Cached(s) => s.execute(rusqlite::params_from_iter(values.iter())).map_err(from_sqlite),
            Prepared::Once(s) => s.execute(rusqlite::params_from_iter(values.iter())).map_err(from_sqlite),
            Prepared::Postgres(pg, s) => pg.execute(s, &values),
        }
    }

    /// The rows one at a time: `while let Some(r) = rows.next()? {}`.
    pub(crate) fn query<P: Params>(&mut self, params: P) -> Result<Rows<'_>, StoreError> {
        let values = params.values();
        let s: &mut rusqlite::Statement<'c> = match &mut self.prepared {
            Prepared::Cached(s) => s,
            Prepared::Once(s) => s,
            Prepared::Postgres(pg, s) => return Ok(Rows::Postgres(pg.query(s, &values)?.into_iter(), None)),
        };
        Ok(Rows::Sqlite(s.query(rusqlite::params_from_iter(values.iter())).map_err(from_sqlite)?))
    }

    /// Calls `f` with each row in turn; stops at the first error.
    pub(crate) fn for_each<P: Params>(
        &mut self,
        params: P,
        mut f: impl FnMut(&Row<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut rows = self.query(params)?;
        while let Some(r) = rows.next()? {
            f(&r)?;
        }
        Ok(())
    }

    /// Every row, each through `f`.
    pub(crate) fn query_map<T, P: Params>(
        &mut self,
        params: P,
        mut f: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<std::vec::IntoIter<Result<T, StoreError>>, StoreError> {
        let mut out = Vec::new();
        self.for_each(params, |r| {
            out.push(f(r));
            Ok(())
        })?;
        Ok(out.into_iter())
    }

    /// The first row through `f`, if there is one.
    pub(crate) fn query_opt<T, P: Params>(
        &mut self,
        params: P,
        f: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        match self.query(params)?.next()? {
            Some(r) => f(&r).map(Some),
            None => Ok(None),
        }
    }

    /// The first row through `f`; no row is an error.
    pub(crate) fn query_row<T, P: Params>(
        &mut self,
        params: P,
        f: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.query_opt(params, f)?.ok_or_else(no_row)
    }
}

/// The rows of a running query, read one at a time.
pub(crate) enum Rows<'s> {
    Sqlite(rusqlite::Rows<'s>),
    Postgres(std::vec::IntoIter<postgres::Row>, Option<postgres::Row>),
}

impl Rows<'_> {
    /// The next row, or `None` after the last.
    pub(crate) fn next(&mut self) -> Result<Option<Row<'_>>, StoreError> {
        match self {
            Rows::Sqlite(rows) => Ok(rows.next().map_err(from_sqlite)?.map(Row::Sqlite)),
            Rows::Postgres(rows, current) => {
                *current = rows.next();
                Ok(current.as_ref().map(Row::Postgres))
            }
        }
    }
}

/// A query that had to return a row returned none.
pub(crate) fn no_row() -> StoreError {
    StoreError::Database { kind: super::DbErrorKind::Other, message: "the query returned no row".into() }
}
