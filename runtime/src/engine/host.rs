//! The host API: the only way a script reaches beyond its own variables. Every function is
//! read-only, checks its arguments, bounds what it returns, and notes the call for
//! `closeloop script test`. See docs/scripting.md for each with an example.
//!
//! The functions read through their own read-only connection, so they can never write and
//! never hold the writer's lock.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map as RhaiMap, Position};
use serde_json::Value;

use crate::clock::Clock;
use crate::script::{context, note_call};
use crate::store::{audit, members, records, FormTable, Reader};

/// The most records or events one call returns.
const MAX_ROWS: usize = 10_000;
/// The most members one call returns (each a map of 7 entries and the app's declared attributes,
/// within the scripts' data limit).
const MAX_MEMBERS: usize = 1_000;
/// How many fields `lookup_latest` may match on.
const MAX_LOOKUP_KEYS: usize = 8;

/// What the host functions share: a read-only connection, the clock, and the forms they may
/// name (the installed ones).
pub(crate) struct Host {
    conn: Mutex<Reader>,
    clock: Arc<dyn Clock>,
    /// Form id → the form as host functions see it.
    pub forms: RwLock<BTreeMap<String, HostForm>>,
}

/// A form host functions may read: its app, its table, and the fields scripts never see.
#[derive(Debug, Clone)]
pub(crate) struct HostForm {
    pub app: String,
    pub table: FormTable,
    pub sensitive: Vec<String>,
    /// (table field, column) pairs marked sensitive inside table fields.
    pub sensitive_columns: Vec<(String, String)>,
}

type Fallible<T> = Result<T, Box<EvalAltResult>>;

fn fail<T>(message: String) -> Fallible<T> {
    Err(Box::new(EvalAltResult::ErrorRuntime(Dynamic::from(message), Position::NONE)))
}

fn to_dynamic(v: &Value) -> Dynamic {
    rhai::serde::to_dynamic(v).unwrap_or(Dynamic::UNIT)
}

/// A date, or the local date (in the app's time zone) of a stored instant.
fn date(text: &str, what: &str) -> Fallible<jiff::civil::Date> {
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(ts.to_zoned(app_zone()).date());
    }
    let day = text.get(..10).unwrap_or(text);
    day.parse::<jiff::civil::Date>().or_else(|_| fail(format!("{what}: \"{text}\" is not a date (YYYY-MM-DD)")))
}

fn app_zone() -> jiff::tz::TimeZone {
    crate::timespec::parse_time_zone(&context().time_zone).unwrap_or(jiff::tz::TimeZone::UTC)
}

impl HostForm {
    /// A field a script may search or sort by: one with a column, and not sensitive (searching
    /// by a sensitive field would tell a script who holds a phone number).
    fn searchable(&self, field: &str, function: &str) -> Fallible<()> {
        if self.table.column(field).is_none() || self.sensitive.iter().any(|s| s == field) {
            return fail(format!("{function}: this form cannot be searched by `{field}`"));
        }
        Ok(())
    }

    /// A record as a script may see it: sensitive fields (phone numbers, ID numbers) never
    /// reach a script, nor do sensitive columns of a table field's rows.
    fn visible(&self, mut r: records::RecordRow) -> Dynamic {
        r.data.retain(|k, _| !self.sensitive.contains(k));
        for (field, column) in &self.sensitive_columns {
            if let Some(Value::Array(rows)) = r.data.get_mut(field) {
                for row in rows.iter_mut().filter_map(Value::as_object_mut) {
                    row.remove(column);
                }
            }
        }
        to_dynamic(&Value::Object(r.data))
    }
}

impl Host {
    pub fn new(conn: Reader, clock: Arc<dyn Clock>) -> Self {
        Host { conn: Mutex::new(conn), clock, forms: RwLock::new(BTreeMap::new()) }
    }

    /// A form of the running script's app (any installed form for a run without an app).
    fn form(&self, form: &str) -> Fallible<HostForm> {
        let app = context().app;
        match self.forms.read().ok().and_then(|f| f.get(form).cloned()) {
            Some(f) if app.as_ref().is_none_or(|a| a == &f.app) => Ok(f),
            _ => fail(format!("there is no form `{form}` in this app")),
        }
    }

    fn today(&self) -> jiff::civil::Date {
        self.clock.now().to_zoned(app_zone()).date()
    }
}

fn is_working(d: jiff::civil::Date) -> bool {
    let ctx = context();
    let iso = d.to_string();
    if ctx.extra_working_days.contains(&iso) {
        return true;
    }
    let weekday = d.weekday().to_monday_one_offset();
    let days = if ctx.working_days.is_empty() { vec![1, 2, 3, 4, 5] } else { ctx.working_days };
    days.contains(&weekday) && !ctx.holidays.contains(&iso)
}

/// Registers the host API on a runtime's script engine: time, people, records.
pub(crate) fn register(engine: &mut Engine, host: Arc<Host>) {
    register_time(engine, &host);
    register_text(engine);
    register_people(engine, &host);
    register_records(engine, &host);
}

/// `money(x)`: an amount as people read it (`1,200,000.00`), pure.
fn register_text(engine: &mut Engine) {
    engine.register_fn("money", |x: f64| crate::values::money_text(x, 2));
    engine.register_fn("money", |x: i64| crate::values::money_text(x as f64, 2));
}

/// `now`, `today`, day arithmetic and working days, in the app's calendar.
fn register_time(engine: &mut Engine, host: &Arc<Host>) {
    let h = host.clone();
    engine.register_fn("now", move || -> String {
        let now = crate::clock::stamp(h.clock.now());
        note_call(format!("now() → {now}"));
        now
    });
    let h = host.clone();
    engine.register_fn("today", move || -> String {
        let today = h.today().to_string();
        note_call(format!("today() → {today}"));
        today
    });
    let h = host.clone();
    engine.register_fn("days_since", move |d: &str| -> Fallible<i64> {
        let n = h.today().since(date(d, "days_since")?).map(|s| i64::from(s.get_days())).unwrap_or(0);
        note_call(format!("days_since({d}) → {n}"));
        Ok(n)
    });
    engine.register_fn("days_between", |a: &str, b: &str| -> Fallible<i64> {
        let n = date(b, "days_between")?.since(date(a, "days_between")?).map(|s| i64::from(s.get_days())).unwrap_or(0);
        note_call(format!("days_between({a}, {b}) → {n}"));
        Ok(n)
    });
    engine.register_fn("start_of_month", |d: &str| -> Fallible<String> {
        let s = date(d, "start_of_month")?.first_of_month().to_string();
        note_call(format!("start_of_month({d}) → {s}"));
        Ok(s)
    });
    engine.register_fn("add_business_days", |d: &str, n: i64| -> Fallible<String> {
        if n.unsigned_abs() > 3660 {
            return fail("add_business_days: at most 3660 days".into());
        }
        let mut day = date(d, "add_business_days")?;
        let step = if n < 0 { -1 } else { 1 };
        let mut left = n.unsigned_abs();
        while left > 0 {
            day = day
                .checked_add(jiff::Span::new().days(step))
                .or_else(|_| fail("add_business_days: out of range".into()))?;
            if is_working(day) {
                left -= 1;
            }
        }
        note_call(format!("add_business_days({d}, {n}) → {day}"));
        Ok(day.to_string())
    });
}

/// `members` and `open_count`: the team and its load.
fn register_people(engine: &mut Engine, host: &Arc<Host>) {
    let h = host.clone();
    engine.register_fn("members", move |filter: RhaiMap| -> Fallible<Array> {
        let role = filter.get("role").map(|v| v.to_string());
        let region = filter.get("region").map(|v| v.to_string());
        let active = match filter.get("active") {
            None => None,
            Some(v) => {
                match v.as_bool().ok().or_else(|| v.clone().into_string().ok().and_then(|s| s.parse::<bool>().ok())) {
                    Some(b) => Some(b),
                    None => return fail(format!("members: `active` is true or false, not {v}")),
                }
            }
        };
        for key in filter.keys() {
            if !["role", "region", "active"].contains(&key.as_str()) {
                return fail(format!("members: filter on role, region or active, not `{key}`"));
            }
        }
        let conn = h.conn.lock().map_err(|_| "members: the reader is unavailable".to_string())?;
        let all = members::list(&conn).map_err(|e| e.to_string())?;
        let out: Array = all
            .into_iter()
            .filter(|m| role.as_ref().is_none_or(|r| m.roles.contains(r)))
            .filter(|m| region.as_ref().is_none_or(|r| m.region.as_ref() == Some(r)))
            .filter(|m| active.is_none_or(|a| m.active == a))
            .take(MAX_MEMBERS)
            .map(|m| to_dynamic(&crate::engine::write::rules::member_value(&m)))
            .collect();
        note_call(format!("members({filter:?}) → {} members", out.len()));
        Ok(out)
    });
    let h = host.clone();
    engine.register_fn("open_count", move |member: &str, form: &str, states: Array, since: &str| -> Fallible<i64> {
        let HostForm { table, .. } = h.form(form)?;
        let states: Vec<String> = states.into_iter().map(|s| s.to_string()).collect();
        let since = match since {
            "" | "ever" => None,
            s => Some(crate::clock::stamp(
                date(s, "open_count")?.to_zoned(app_zone()).map_err(|e| e.to_string())?.timestamp(),
            )),
        };
        let conn = h.conn.lock().map_err(|_| "open_count: the reader is unavailable".to_string())?;
        let n =
            records::count_owned(&conn, &table, member, &states, since.as_deref()).map_err(|e| e.to_string())? as i64;
        note_call(format!("open_count({member}, {form}, {states:?}, {}) → {n}", since.as_deref().unwrap_or("ever")));
        Ok(n)
    });
}

/// `lookup`, `lookup_latest` and `history`: records, without their sensitive fields.
fn register_records(engine: &mut Engine, host: &Arc<Host>) {
    let h = host.clone();
    engine.register_fn("lookup", move |form: &str, key: &str, value: Dynamic| -> Fallible<Dynamic> {
        let found = h.form(form)?;
        found.searchable(key, "lookup")?;
        let value: Value = rhai::serde::from_dynamic(&value).unwrap_or(Value::Null);
        let conn = h.conn.lock().map_err(|_| "lookup: the reader is unavailable".to_string())?;
        let row = records::find_by(&conn, &found.table, &[(key, &value)]).map_err(|e| e.to_string())?;
        note_call(format!(
            "lookup({form}, {key}, {value}) → {}",
            row.as_ref().map(|r| r.id.as_str()).unwrap_or("nothing")
        ));
        Ok(row.map(|r| found.visible(r)).unwrap_or(Dynamic::UNIT))
    });
    let h = host.clone();
    engine.register_fn("lookup_latest", move |form: &str, filter: RhaiMap, by: &str| -> Fallible<Dynamic> {
        let found = h.form(form)?;
        if filter.is_empty() || filter.len() > MAX_LOOKUP_KEYS {
            return fail(format!("lookup_latest: name 1 to {MAX_LOOKUP_KEYS} fields to match, as #{{field: value}}"));
        }
        let mut pairs = Vec::new();
        for (key, value) in &filter {
            found.searchable(key, "lookup_latest")?;
            pairs.push((key.to_string(), rhai::serde::from_dynamic::<Value>(value).unwrap_or(Value::Null)));
        }
        found.searchable(by, "lookup_latest")?;
        let pairs: Vec<(&str, &Value)> = pairs.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let conn = h.conn.lock().map_err(|_| "lookup_latest: the reader is unavailable".to_string())?;
        let row = records::latest_by(&conn, &found.table, &pairs, by).map_err(|e| e.to_string())?;
        let shown: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        note_call(format!(
            "lookup_latest({form}, #{{{}}}, {by}) → {}",
            shown.join(", "),
            row.as_ref().map(|r| r.id.as_str()).unwrap_or("nothing")
        ));
        Ok(row.map(|r| found.visible(r)).unwrap_or(Dynamic::UNIT))
    });
    let h = host.clone();
    engine.register_fn("history", move || -> Fallible<Array> {
        let ctx = context();
        let (Some(form), Some(record)) = (ctx.form, ctx.record) else {
            note_call("history() → [] (a new record)".into());
            return Ok(Array::new());
        };
        let conn = h.conn.lock().map_err(|_| "history: the reader is unavailable".to_string())?;
        let events = audit::history(&conn, &form, &record).map_err(|e| e.to_string())?;
        let out: Array = events
            .iter()
            .rev()
            .take(MAX_ROWS)
            .rev()
            .map(|e| to_dynamic(&serde_json::json!({"at": e.at, "actor": e.actor, "kind": e.kind, "version": e.version, "changes": e.body["changes"]})))
            .collect();
        note_call(format!("history() → {} events", out.len()));
        Ok(out)
    });
}
