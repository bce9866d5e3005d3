//! Records as people use them: submit, update, act, get, list and history (each write one
//! transaction through the write gate), CSV in (`csv.rs`) and out (`export.rs`, sensitive
//! fields left out), boards of flagged records (`boards.rs`) and a record as a PDF (`pdf.rs`).

pub(crate) mod access;
pub(crate) mod boards;
pub(crate) mod csv;
pub(crate) mod export;
pub(crate) mod pdf;
pub(crate) mod stream;

pub use boards::BoardItem;
pub use csv::{decode, guard, CsvInput, ImportOptions, ImportReport, MembersReport, RowProblem, MAX_CSV_BYTES};
pub(crate) use csv::{headers, reader};
pub use export::ExportOptions;
pub use stream::{MAX_IMPORT_BYTES, MAX_IMPORT_ROWS, MAX_ROW_BYTES};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::engine::write::rules::Purpose;
use crate::engine::write::{Change, Edit, Writer};
use crate::engine::{EngineError, FormRef, Installed, Record, Runtime, SYSTEM_ACTORS};
use crate::store::{audit, members, records, FormTable, ListQuery, Reader, RecordRow};

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
pub(crate) fn actor_roles(conn: &Reader, actor: &str) -> Result<Vec<String>, EngineError> {
    roles_of(actor, || members::get(conn, actor))
}

/// The roles of an actor: none for closeloop's own actors (no lookup), else the member `find`
/// returns, who must exist and be active.
pub(crate) fn roles_of(
    actor: &str,
    find: impl FnOnce() -> Result<Option<crate::store::MemberRow>, crate::store::StoreError>,
) -> Result<Vec<String>, EngineError> {
    if SYSTEM_ACTORS.contains(&actor) {
        return Ok(Vec::new());
    }
    match find()? {
        None => Err(EngineError::UnknownMember(actor.to_string())),
        Some(m) if !m.active => Err(EngineError::InactiveMember(actor.to_string())),
        Some(m) => Ok(m.roles),
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

impl Runtime {
    /// Creates a record. Invalid input names every bad field and writes nothing.
    pub fn submit(&mut self, form: &str, data: Map<String, Value>, actor: &str) -> Result<Record, EngineError> {
        let row = self.write(|session, tx| {
            let f = session.form(form)?;
            let w = Writer::new(session, tx, &f, actor);
            let row = w.create(&data, Purpose::Create, None, false)?;
            // As it stands after its automations ran.
            Ok(w.latest(row)?)
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
        self.update_from(form, id, patch, actor, None)
    }

    /// [`Runtime::update`] of the version the caller read (an HTTP `If-Match`): a record
    /// changed since is a [`EngineError::Conflict`], checked in the writing transaction.
    pub fn update_from(
        &mut self,
        form: &str,
        id: &str,
        patch: Map<String, Value>,
        actor: &str,
        version: Option<i64>,
    ) -> Result<Record, EngineError> {
        let row = self.write(|session, tx| {
            let f = session.form(form)?;
            let w = Writer::new(session, tx, &f, actor);
            let before = w.current(id)?.ok_or_else(|| not_found(form, id))?;
            if version.is_some_and(|v| v != before.version) {
                return Err(EngineError::Conflict { form: form.to_string(), id: id.to_string() });
            }
            let row = w.change(before, Edit::by_person(&patch))?;
            Ok(w.latest(row)?)
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
        let row = self.write(|session, tx| {
            let f = session.form(form)?;
            let Some(def) = f.form.actions.iter().find(|a| a.id == action) else {
                let known: Vec<&str> = f.form.actions.iter().map(|a| a.id.as_str()).collect();
                return Err(EngineError::Input(format!(
                    "form {form} has no action `{action}`; its actions: {}",
                    known.join(", ")
                )));
            };
            let w = Writer::new(session, tx, &f, actor);
            let before = w.current(id)?.ok_or_else(|| not_found(form, id))?;
            let row = w.change(before, Edit { action: Some(def), ..Edit::by_person(&data) })?;
            Ok(w.latest(row)?)
        })?;
        Ok(record(form, row))
    }

    /// A record by id.
    pub fn get(&self, form: &str, id: &str) -> Result<Record, EngineError> {
        let f = self.form(form)?;
        let row = records::get(self.store.reader(), f.table(), id)?.ok_or_else(|| not_found(form, id))?;
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
                return Err(EngineError::Input(format!("cannot filter {form} on `{field}`: {}", filterable(table))));
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
                return Err(EngineError::Input(format!("cannot sort {form} by `{sort}`: {}", filterable(table))));
            }
        }
        Ok(records::list(self.store.reader(), table, query)?.into_iter().map(|r| record(form, r)).collect())
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
        None if known.is_empty() => "; no app is installed yet".to_string(),
        None => format!("; installed forms: {}", known.join(", ")),
    };
    EngineError::UnknownForm { form: form.to_string(), hint }
}
