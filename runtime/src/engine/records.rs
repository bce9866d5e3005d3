//! Submit, update, act, get, list and history: each write is one transaction holding the
//! record, its new version and its audit event.

use rusqlite::Connection;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::automate::Session;
use super::rules::{id_period, render_id, Purpose, Rules};
use super::{EngineError, FormRef, Installed, Record, Runtime, SYSTEM_ACTORS};
use crate::store::{audit, members, records, sha256_hex, FormTable, ListQuery, NewEvent, RecordRow, StoreError, Tx};
use crate::values::{field_name, is_empty, FieldProblem};

/// One field's change in a version.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Change {
    /// The field (or `state`, `owner`).
    pub field: String,
    /// Before (null when it was empty).
    pub from: Value,
    /// After (null when it is now empty).
    pub to: Value,
}

/// One version of a record, as `history` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Version {
    /// The version number.
    pub version: i64,
    /// When.
    pub at: String,
    /// Who.
    pub actor: String,
    /// `created`, `updated` or `action`.
    pub kind: String,
    /// The action, for `action` versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Why it came out this way: the assignment decisions made with it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// What changed.
    pub changes: Vec<Change>,
}

pub(crate) fn find_form<'a>(apps: &'a std::collections::BTreeMap<String, Installed>, id: &str) -> Option<FormRef<'a>> {
    apps.values().find_map(|installed| {
        installed.app.def.forms.iter().position(|f| f.id == id).map(|index| FormRef {
            app: installed,
            form: &installed.app.def.forms[index],
            index,
        })
    })
}

/// The roles of an actor who must be an active member (or a system actor, with none).
pub(crate) fn actor_roles(conn: &Connection, actor: &str) -> Result<Vec<String>, EngineError> {
    if SYSTEM_ACTORS.contains(&actor) {
        return Ok(Vec::new());
    }
    match members::get(conn, actor)? {
        None => Err(EngineError::UnknownMember(actor.to_string())),
        Some(m) if !m.active => Err(EngineError::InactiveMember(actor.to_string())),
        Some(m) => Ok(m.roles),
    }
}

/// A record as it stands after the automations its write set off: the session's copy when it
/// was the last record written, else read back.
fn latest(
    session: &Session<'_>,
    tx: &Tx<'_>,
    f: &FormRef<'_>,
    table: &FormTable,
    row: RecordRow,
) -> Result<RecordRow, StoreError> {
    match session.latest(&f.form.id, &row.id) {
        Some(newest) => Ok(newest),
        None => Ok(records::get(tx, table, &row.id)?.unwrap_or(row)),
    }
}

pub(crate) fn record_of(form: &str, row: RecordRow) -> Record {
    record(form, row)
}

fn record(form: &str, row: RecordRow) -> Record {
    Record {
        id: row.id,
        form: form.to_string(),
        version: row.version,
        state: row.state,
        owner: row.owner,
        data: row.data,
        created_at: row.created_at,
        updated_at: row.updated_at,
        created_by: row.created_by,
        updated_by: row.updated_by,
    }
}

/// Field-level differences, in field order, with state and owner first.
fn diff(before: &RecordRow, data: &Map<String, Value>, state: &Option<String>, owner: &Option<String>) -> Vec<Change> {
    let mut out = Vec::new();
    let opt = |v: &Option<String>| v.clone().map(Value::String).unwrap_or(Value::Null);
    if &before.state != state {
        out.push(Change { field: "state".into(), from: opt(&before.state), to: opt(state) });
    }
    if &before.owner != owner {
        out.push(Change { field: "owner".into(), from: opt(&before.owner), to: opt(owner) });
    }
    let keys: std::collections::BTreeSet<&String> = before.data.keys().chain(data.keys()).collect();
    for key in keys {
        let (a, b) = (before.data.get(key), data.get(key));
        if a != b {
            out.push(Change {
                field: key.clone(),
                from: a.cloned().unwrap_or(Value::Null),
                to: b.cloned().unwrap_or(Value::Null),
            });
        }
    }
    out
}

fn owner_of(f: &FormRef<'_>, data: &Map<String, Value>) -> Option<String> {
    f.form.owner_field().and_then(|o| data.get(o)).and_then(Value::as_str).map(str::to_string)
}

/// A record event's body: the changes, state, owner, and a detail (the action, the import row).
/// The data after the change goes beside it, in the event's own `data` column.
fn event_body(
    row: &RecordRow,
    changes: Option<&[Change]>,
    detail: impl IntoIterator<Item = (&'static str, Value)>,
) -> Result<String, StoreError> {
    #[derive(Serialize)]
    struct Body<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        changes: Option<&'a [Change]>,
        state: &'a Option<String>,
        owner: &'a Option<String>,
        #[serde(flatten)]
        detail: Map<String, Value>,
    }
    let detail: Map<String, Value> = detail.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    Ok(serde_json::to_string(&Body { changes, state: &row.state, owner: &row.owner, detail })?)
}

/// What every write of one form's records shares: the transaction, the form and its table,
/// the time and the actor.
pub(crate) struct Writer<'a, 'c> {
    /// What the records of one write share (an import's rows, an automation's cascade).
    pub session: &'a super::automate::Session<'a>,
    pub tx: &'a Tx<'c>,
    pub f: &'a FormRef<'a>,
    pub table: &'a FormTable,
    pub at: &'a str,
    pub actor: &'a str,
}

impl Writer<'_, '_> {
    /// Stores a new record and its `record.created` event.
    pub(crate) fn create(
        &self,
        data: Map<String, Value>,
        now: &jiff::Zoned,
        extra: Option<&Value>,
    ) -> Result<RecordRow, StoreError> {
        let Writer { tx, f, table, at, actor, session } = *self;
        let mut data = data;
        let mut decisions =
            super::assign::on_create(tx, f, &mut data, now, &mut session.assign.borrow_mut(), Some(session.scripts))?;
        if let Some(d) = super::assign::creator_owns(tx, f, &mut data, actor, &mut session.assign.borrow_mut())? {
            decisions.push(d);
        }
        let default_pattern = format!("{}-{{seq:6}}", f.form.id.to_uppercase());
        let pattern = f.form.id_pattern.as_deref().unwrap_or(&default_pattern);
        let seq = session.assign.borrow_mut().next_id(tx, &f.form.id, &id_period(pattern, now))?;
        let state = f.form.initial_state().map(|s| s.id.clone());
        let text = serde_json::to_string(&data)?;
        let row = RecordRow {
            id: render_id(pattern, now, seq),
            version: 1,
            state,
            owner: owner_of(f, &data),
            data_hash: sha256_hex(text.as_bytes()),
            data,
            created_at: at.to_string(),
            updated_at: at.to_string(),
            created_by: actor.to_string(),
            updated_by: actor.to_string(),
        };
        records::insert(tx, table, &row, &text)?;
        let mut detail: Vec<(&'static str, Value)> = extra.map(|e| ("source", e.clone())).into_iter().collect();
        if !decisions.is_empty() {
            detail.push(("assignment", serde_json::to_value(&decisions)?));
        }
        let body = event_body(&row, None, detail)?;
        let unassigned: Vec<String> =
            decisions.iter().filter(|d| d.member.is_none()).map(|d| d.explanation.clone()).collect();
        audit::append(
            tx,
            &NewEvent {
                at,
                actor,
                kind: "record.created",
                form: Some(&f.form.id),
                record: Some(&row.id),
                version: Some(1),
                body: &body,
                data: Some(&text),
                data_hash: Some(&row.data_hash),
            },
        )?;
        // A record its rule could not assign waits on the boards that show its form. The flag
        // needs no event of its own: the creation event above holds the decision and its reason.
        for reason in unassigned {
            for board in f.app.app.def.boards.iter().filter(|b| b.forms.contains(&f.form.id)) {
                let flag = crate::store::FlagRow {
                    board: board.id.clone(),
                    form: f.form.id.clone(),
                    record: row.id.clone(),
                    reason: reason.clone(),
                    since: at.to_string(),
                };
                crate::store::boards::flag(tx, &flag)?;
            }
        }
        super::automate::after_write(self, None, &row, None)?;
        Ok(row)
    }

    /// Stores a new version (if anything changed) and its event. `kind` is `record.updated` or
    /// `record.action`; `detail` goes into the event body (the action, the import row).
    pub(crate) fn version(
        &self,
        before: RecordRow,
        data: Map<String, Value>,
        state: Option<String>,
        kind: &str,
        detail: Option<(&'static str, Value)>,
    ) -> Result<Result<RecordRow, EngineError>, StoreError> {
        let Writer { tx, f, table, at, actor, .. } = *self;
        let owner = owner_of(f, &data);
        let changes = diff(&before, &data, &state, &owner);
        if changes.is_empty() && kind != "record.action" {
            return Ok(Ok(before));
        }
        let text = serde_json::to_string(&data)?;
        let row = RecordRow {
            id: before.id.clone(),
            version: before.version + 1,
            state,
            owner,
            data_hash: sha256_hex(text.as_bytes()),
            data,
            created_at: before.created_at.clone(),
            updated_at: at.to_string(),
            created_by: before.created_by.clone(),
            updated_by: actor.to_string(),
        };
        if !records::update(tx, table, &row, &text)? {
            return Ok(Err(EngineError::Conflict { form: f.form.id.clone(), id: row.id }));
        }
        let action = match &detail {
            Some(("action", d)) => d["id"].as_str().map(str::to_string),
            _ => None,
        };
        let body = event_body(&row, Some(&changes), detail)?;
        audit::append(
            tx,
            &NewEvent {
                at,
                actor,
                kind,
                form: Some(&f.form.id),
                record: Some(&row.id),
                version: Some(row.version),
                body: &body,
                data: Some(&text),
                data_hash: Some(&row.data_hash),
            },
        )?;
        super::automate::after_write(self, Some(&before), &row, action.as_deref())?;
        Ok(Ok(row))
    }
}

impl Runtime {
    /// Creates a record. Invalid input names every bad field and writes nothing.
    pub fn submit(&mut self, form: &str, data: Map<String, Value>, actor: &str) -> Result<Record, EngineError> {
        let now = self.clock.now();
        let at = crate::clock::stamp(now);
        let Runtime { store, apps, scripts, .. } = self;
        let f = find_form(apps, form).ok_or_else(|| unknown_form(apps, form))?;
        let roles = actor_roles(store.reader(), actor)?;
        let table = f.table();
        let zoned = now.to_zoned(f.time_zone());
        let initial = f.form.initial_state().map(|s| s.id.clone());
        let rules = Rules { f, apps, scripts, state: initial.as_deref(), roles: &roles, key_checked: false };
        let row = store.write(|tx| {
            let data = rules.prepare(tx, &data, None, Purpose::Create, None).map_err(EngineError::Invalid)?;
            let session = Session::new(scripts, apps, now);
            let row =
                Writer { session: &session, tx, f: &f, table: &table, at: &at, actor }.create(data, &zoned, None)?;
            session.assign.borrow().finish(tx)?;
            // As it stands after its automations ran.
            let row = latest(&session, tx, &f, &table, row)?;
            Ok::<_, EngineError>(row)
        })?;
        Ok(record(form, row))
    }

    /// Changes some fields of a record (a partial patch; `null` clears a field). A change
    /// that changes nothing creates no version.
    pub fn update(
        &mut self,
        form: &str,
        id: &str,
        patch: Map<String, Value>,
        actor: &str,
    ) -> Result<Record, EngineError> {
        let now = self.clock.now();
        let at = crate::clock::stamp(now);
        let Runtime { store, apps, scripts, .. } = self;
        let f = find_form(apps, form).ok_or_else(|| unknown_form(apps, form))?;
        let roles = actor_roles(store.reader(), actor)?;
        let table = f.table();
        let row = store.write(|tx| {
            let before = records::get(tx, &table, id)?.ok_or_else(|| not_found(form, id))?;
            super::signing::guard_signed(tx, &f, id)?;
            let rules = Rules { f, apps, scripts, state: before.state.as_deref(), roles: &roles, key_checked: false };
            let data = rules
                .prepare(tx, &patch, Some(&before.data), Purpose::Update, Some(id))
                .map_err(EngineError::Invalid)?;
            let state = before.state.clone();
            let session = Session::new(scripts, apps, now);
            let row = Writer { session: &session, tx, f: &f, table: &table, at: &at, actor }.version(
                before,
                data,
                state,
                "record.updated",
                None,
            )??;
            // As it stands after its automations ran.
            Ok::<_, EngineError>(latest(&session, tx, &f, &table, row)?)
        })?;
        Ok(record(form, row))
    }

    /// Performs an action (a state transition), checking state, roles, ownership and the
    /// fields the action requires. A refused action says why and changes nothing.
    pub fn act(
        &mut self,
        form: &str,
        id: &str,
        action: &str,
        actor: &str,
        data: Map<String, Value>,
    ) -> Result<Record, EngineError> {
        let now = self.clock.now();
        let at = crate::clock::stamp(now);
        let Runtime { store, apps, scripts, .. } = self;
        let f = find_form(apps, form).ok_or_else(|| unknown_form(apps, form))?;
        let Some(def) = f.form.actions.iter().find(|a| a.id == action) else {
            let known: Vec<&str> = f.form.actions.iter().map(|a| a.id.as_str()).collect();
            return Err(EngineError::Input(format!(
                "form {form} has no action `{action}`; its actions: {}",
                known.join(", ")
            )));
        };
        let roles = actor_roles(store.reader(), actor)?;
        let table = f.table();
        let lang = f.lang();
        let label = def.label.as_ref().map(|l| l.get(lang).to_string()).unwrap_or_else(|| def.id.clone());
        let row = store.write(|tx| {
            let before = records::get(tx, &table, id)?.ok_or_else(|| not_found(form, id))?;
            super::signing::guard_signed(tx, &f, id)?;
            let state = before.state.clone().unwrap_or_default();
            if !def.from.contains(&state) {
                return Err(EngineError::Refused(format!(
                    "{id} is `{state}`; {label} (`{action}`) needs it to be {}",
                    def.from.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(" or ")
                )));
            }
            if !def.roles.is_empty() && !roles.iter().any(|r| def.roles.contains(r)) {
                return Err(EngineError::Refused(format!(
                    "`{actor}` may not {label} (`{action}`): it needs the role {}",
                    def.roles.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(" or ")
                )));
            }
            if def.owner_only == Some(true) && before.owner.as_deref() != Some(actor) {
                let owner = before.owner.as_deref().unwrap_or("nobody");
                return Err(EngineError::Refused(format!(
                    "only the owner of {id} (`{owner}`) may {label} (`{action}`)"
                )));
            }
            let rules = Rules { f, apps, scripts, state: Some(def.to.as_str()), roles: &roles, key_checked: false };
            let data = rules
                .prepare(tx, &data, Some(&before.data), Purpose::Update, Some(id))
                .map_err(EngineError::Invalid)?;
            let missing: Vec<FieldProblem> = def
                .requires
                .iter()
                .filter(|r| is_empty(data.get(*r)))
                .filter_map(|r| f.form.field(r))
                .map(|field| {
                    FieldProblem::new(
                        field.id.clone(),
                        "REQUIRED_FOR_ACTION",
                        format!("{} is required to {label}", field_name(field, lang)),
                    )
                })
                .collect();
            if !missing.is_empty() {
                return Err(EngineError::Invalid(missing));
            }
            let detail = json!({"id": action, "from": state, "to": def.to});
            let session = Session::new(scripts, apps, now);
            let row = Writer { session: &session, tx, f: &f, table: &table, at: &at, actor }.version(
                before,
                data,
                Some(def.to.clone()),
                "record.action",
                Some(("action", detail)),
            )??;
            Ok::<_, EngineError>(latest(&session, tx, &f, &table, row)?)
        })?;
        Ok(record(form, row))
    }

    /// A record by id.
    pub fn get(&self, form: &str, id: &str) -> Result<Record, EngineError> {
        let f = self.form(form)?;
        let row = records::get(self.store.reader(), &f.table(), id)?.ok_or_else(|| not_found(form, id))?;
        Ok(record(form, row))
    }

    /// Records matching a query. Filters and sorting name fields; a name the form does not
    /// have (or cannot filter on) is refused, so nothing from the query reaches SQL as text.
    pub fn list(&self, form: &str, query: &ListQuery) -> Result<Vec<Record>, EngineError> {
        let f = self.form(form)?;
        let table = f.table();
        let mut query = query.clone();
        for (field, value) in &mut query.filters {
            if table.column(field).is_none() {
                return Err(EngineError::Input(format!("cannot filter {form} on `{field}`: {}", filterable(&table))));
            }
            // A filter value is read as the field's type: `phone=13800138001` is text.
            if let Some(fd) = f.form.field(field) {
                *value = match (fd.kind.is_numeric() || fd.kind == crate::model::FieldType::Integer, fd.kind, &*value) {
                    (true, _, Value::String(s)) => s
                        .parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map(Value::Number)
                        .unwrap_or(value.clone()),
                    (_, crate::model::FieldType::Bool, Value::String(s)) => {
                        Value::Bool(matches!(s.as_str(), "true" | "yes" | "1" | "是"))
                    }
                    (false, k, Value::Number(n)) if k != crate::model::FieldType::Bool => Value::String(n.to_string()),
                    (false, k, Value::Bool(b)) if k != crate::model::FieldType::Bool => Value::String(b.to_string()),
                    _ => value.clone(),
                };
            }
        }
        let query = &query;
        if let Some(sort) = &query.sort {
            if !["created_at", "updated_at", "id"].contains(&sort.as_str()) && table.column(sort).is_none() {
                return Err(EngineError::Input(format!("cannot sort {form} by `{sort}`: {}", filterable(&table))));
            }
        }
        Ok(records::list(self.store.reader(), &table, query)?.into_iter().map(|r| record(form, r)).collect())
    }

    /// Every version of a record with its field-level changes, oldest first.
    pub fn history(&self, form: &str, id: &str) -> Result<Vec<Version>, EngineError> {
        let f = self.form(form)?;
        let events = audit::history(self.store.reader(), &f.form.id, id)?;
        if events.is_empty() {
            return Err(not_found(form, id));
        }
        Ok(events
            .into_iter()
            .filter(|e| e.kind.starts_with("record."))
            .map(|e| {
                let changes = match e.kind.as_str() {
                    "record.created" => e
                        .data
                        .as_ref()
                        .and_then(Value::as_object)
                        .map(|d| {
                            d.iter()
                                .map(|(k, v)| Change { field: k.clone(), from: Value::Null, to: v.clone() })
                                .collect()
                        })
                        .unwrap_or_default(),
                    _ => serde_json::from_value(e.body["changes"].clone()).unwrap_or_default(),
                };
                Version {
                    version: e.version.unwrap_or_default(),
                    at: e.at,
                    actor: e.actor,
                    kind: e.kind.trim_start_matches("record.").to_string(),
                    action: e.body["action"]["id"].as_str().map(str::to_string),
                    notes: e.body["assignment"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|d| d["explanation"].as_str().map(str::to_string)).collect())
                        .unwrap_or_default(),
                    changes,
                }
            })
            .collect())
    }
}

fn filterable(table: &FormTable) -> String {
    let names: Vec<&str> = table.columns.iter().map(|c| c.field.as_str()).collect();
    format!("these fields can be used: {}", names.join(", "))
}

pub(crate) fn not_found(form: &str, id: &str) -> EngineError {
    EngineError::NotFound { form: form.to_string(), id: id.to_string() }
}

pub(crate) fn unknown_form(apps: &std::collections::BTreeMap<String, Installed>, form: &str) -> EngineError {
    let known: Vec<&str> = apps.values().flat_map(|a| a.app.def.forms.iter().map(|f| f.id.as_str())).collect();
    let hint = match crate::suggest::closest(form, known.iter().copied()) {
        Some(best) => format!(" (did you mean `{best}`?)"),
        None if known.is_empty() => "; install an app first: `closeloop install lead-followup`".to_string(),
        None => format!("; installed forms: {}", known.join(", ")),
    };
    EngineError::UnknownForm { form: form.to_string(), hint }
}
