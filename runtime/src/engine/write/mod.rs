//! The write gate: every change of a record passes here, in one order.
//!
//! guard (final records, who may act or edit what) → record rules (types, lookups and
//! read-only columns re-derived, computed fields, required, unique) → diff → row → audit event
//! → automations.
//!
//! Submit, update, act, CSV import, events, timers, automation steps, approvals, signing,
//! tasks, scores and grades all open their transaction with [`Runtime::write`] and store
//! records through [`Writer::create`] and [`Writer::change`]; nothing stores a record another
//! way. A refusal or invalid input is found before anything is written, so a caller that
//! reports it and goes on (an import's `--skip-invalid`) leaves nothing half-done.

mod guard;
pub(crate) mod ids;
mod lookups;
pub(crate) mod rules;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use rhai::Engine;
use serde::Serialize;
use serde_json::{Map, Value};

use self::ids::{id_period, render_id};
use self::rules::{Purpose, Rules};
use crate::engine::automations::{self, Run};
use crate::engine::{assign, EngineError, FormRef, Installed, Runtime};
use crate::model::Action;
use crate::store::{audit, records, sha256_hex, FormTable, NewEvent, RecordRow, StoreError, Tx};

pub(crate) use guard::authors_barred;

/// What the writes of one transaction share: the script engine, the installed apps,
/// assignment state (loads, counters, the member directory), the runs made so far (for
/// reports), how deep the automation cascade is, and "now".
pub(crate) struct Session<'a> {
    pub scripts: &'a Engine,
    pub apps: &'a BTreeMap<String, Installed>,
    pub assign: RefCell<assign::Cache>,
    pub runs: RefCell<Vec<Run>>,
    /// How deep automations have cascaded (see `automations::MAX_DEPTH`).
    pub depth: Cell<u8>,
    /// Runs set off by other runs so far (see `automations::MAX_CASCADE`).
    pub cascaded: Cell<u32>,
    /// The record written last in this transaction: automations read it again and again.
    last: RefCell<Option<(String, RecordRow)>>,
    pub now: jiff::Timestamp,
    /// `now` in the stored format.
    pub at: String,
    /// A rehearsal, rolled back at its end (a page's "check" of a new record): a required
    /// value not typed yet is no refusal, so what closeloop fills in can be shown early.
    pub rehearsal: bool,
}

impl<'a> Session<'a> {
    pub(crate) fn new(scripts: &'a Engine, apps: &'a BTreeMap<String, Installed>, now: jiff::Timestamp) -> Self {
        Session {
            scripts,
            apps,
            assign: RefCell::default(),
            runs: RefCell::default(),
            depth: Cell::new(0),
            cascaded: Cell::new(0),
            last: RefCell::new(None),
            now,
            at: crate::clock::stamp(now),
            rehearsal: false,
        }
    }

    /// A form by id, across installed apps.
    pub(crate) fn form(&self, id: &str) -> Result<FormRef<'a>, EngineError> {
        crate::engine::records::find_form(self.apps, id)
            .ok_or_else(|| crate::engine::records::unknown_form(self.apps, id))
    }

    /// The newest version of a record written in this transaction, when it was the last one
    /// written (every record write passes through [`Writer::stored`]).
    pub(crate) fn latest(&self, form: &str, id: &str) -> Option<RecordRow> {
        self.last.borrow().as_ref().filter(|(f, row)| f == form && row.id == id).map(|(_, row)| row.clone())
    }

    /// Forgets what a rolled-back step left behind: the runs it reported after `runs` and the
    /// cached row.
    pub(crate) fn forget(&self, runs: usize) {
        self.runs.borrow_mut().truncate(runs);
        *self.last.borrow_mut() = None;
    }

    /// The roles of an actor, who must be an active member (system actors hold none).
    pub(crate) fn roles(&self, tx: &Tx<'_>, actor: &str) -> Result<Vec<String>, EngineError> {
        super::records::roles_of(actor, || self.assign.borrow_mut().member(tx, actor))
    }
}

impl Runtime {
    /// Opens the one kind of write transaction there is: a [`Session`] over a `BEGIN
    /// IMMEDIATE` transaction, retried from the start when the database is busy, with the
    /// assignment counters stored before it commits.
    pub(crate) fn write<T>(
        &mut self,
        mut body: impl FnMut(&Session<'_>, &Tx<'_>) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let now = self.clock.now();
        let Runtime { store, apps, scripts, .. } = self;
        store.write(|tx| {
            let session = Session::new(scripts, apps, now);
            let value = body(&session, tx)?;
            session.assign.borrow().finish(tx)?;
            Ok(value)
        })
    }
}

impl Runtime {
    /// [`Runtime::write`]'s body in a transaction that is rolled back: what the write would
    /// store, automations and all, with nothing kept.
    pub(crate) fn rehearse<T>(
        &mut self,
        body: impl FnOnce(&Session<'_>, &Tx<'_>) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let now = self.clock.now();
        let Runtime { store, apps, scripts, .. } = self;
        store.rehearse(|tx| body(&Session { rehearsal: true, ..Session::new(scripts, apps, now) }, tx))
    }
}

/// The kind of a record event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordEvent {
    /// `record.updated`: fields (or the state, by closeloop) changed.
    Updated,
    /// `record.action`: a person's action moved the record.
    Action,
}

impl RecordEvent {
    fn as_str(self) -> &'static str {
        match self {
            RecordEvent::Updated => "record.updated",
            RecordEvent::Action => "record.action",
        }
    }
}

/// A change to a stored record, as it reaches the gate.
pub(crate) struct Edit<'e> {
    /// The fields given: a patch (`null` clears a field).
    pub patch: &'e Map<String, Value>,
    /// Who is asking: a person or an import ([`Purpose::Update`]: read-only fields refused,
    /// the form's `edit` rules apply) or closeloop itself ([`Purpose::Automation`]).
    pub purpose: Purpose,
    /// The action performed, for `act`: its state, roles, owner and required fields are checked.
    pub action: Option<&'e Action>,
    /// The state closeloop moves the record to (an approval's outcome, a signature).
    pub state: Option<&'e str>,
    /// Goes into the event body: why this version exists (`("source", row)`, `("score", …)`).
    pub detail: Option<(&'static str, Value)>,
    /// The caller found the record by the form's key already (an import), so the rules need not
    /// look the key up again.
    pub key_checked: bool,
}

impl<'e> Edit<'e> {
    /// A person's change of some fields.
    pub(crate) fn by_person(patch: &'e Map<String, Value>) -> Self {
        Edit { patch, purpose: Purpose::Update, action: None, state: None, detail: None, key_checked: false }
    }

    /// closeloop's own change (an automation step, a score, an approval's outcome).
    pub(crate) fn by_closeloop(patch: &'e Map<String, Value>, detail: (&'static str, Value)) -> Self {
        Edit {
            patch,
            purpose: Purpose::Automation,
            action: None,
            state: None,
            detail: Some(detail),
            key_checked: false,
        }
    }
}

/// One record write's view of the session: the transaction, the form, the time and the actor.
#[derive(Clone, Copy)]
pub(crate) struct Writer<'a, 'c> {
    pub session: &'a Session<'a>,
    pub tx: &'a Tx<'c>,
    pub f: &'a FormRef<'a>,
    pub table: &'a FormTable,
    pub at: &'a str,
    pub actor: &'a str,
}

impl<'a, 'c> Writer<'a, 'c> {
    /// Writes records of `f` as `actor` in this session.
    pub(crate) fn new(session: &'a Session<'a>, tx: &'a Tx<'c>, f: &'a FormRef<'a>, actor: &'a str) -> Self {
        Writer { session, tx, f, table: f.table(), at: &session.at, actor }
    }

    /// The same write as another actor (automations write as `system`).
    pub(crate) fn as_actor(&self, actor: &'a str) -> Self {
        Writer { actor, ..*self }
    }

    /// The same write, on another form.
    pub(crate) fn on(&self, f: &'a FormRef<'a>) -> Self {
        Writer { f, table: f.table(), ..*self }
    }

    /// The record rules of this form, for a record in `state` handled by someone with `roles`.
    pub(crate) fn rules<'r>(&self, state: Option<&'r str>, roles: &'r [String]) -> Rules<'r>
    where
        'a: 'r,
    {
        Rules {
            f: *self.f,
            apps: self.session.apps,
            scripts: self.session.scripts,
            state,
            roles,
            key_checked: false,
            who: rules::Who::default(),
        }
    }

    /// The acting member as expressions see them.
    pub(crate) fn actor_value(&self) -> Result<Value, StoreError> {
        let member = self.session.assign.borrow_mut().member(self.tx, self.actor)?;
        Ok(rules::actor_value(self.actor, member.as_ref()))
    }

    /// Stores a new record from what was given: rules, assignment, the readable id, the row,
    /// its `record.created` event, then its automations. `source` goes into the event (an
    /// import's row).
    pub(crate) fn create(
        &self,
        given: &Map<String, Value>,
        purpose: Purpose,
        source: Option<&Value>,
        key_checked: bool,
    ) -> Result<RecordRow, EngineError> {
        let roles = self.session.roles(self.tx, self.actor)?;
        let initial = self.f.form.initial_state().map(|s| s.id.clone());
        let who =
            rules::Who { created_by: Some(self.actor.to_string()), actor: self.actor_value()?, ..Default::default() };
        let rules = Rules { key_checked, who, ..self.rules(initial.as_deref(), &roles) };
        let purpose = if purpose == Purpose::Automation { purpose } else { Purpose::Create };
        let data = self.prepared(&rules, given, None, purpose, None)?;
        Ok(self.insert(data, initial, source)?)
    }

    /// The form's rules ([`Rules::derive`]) as a gate: any problem refuses the write, except that a
    /// rehearsal lets a missing required value pass.
    fn prepared(
        &self,
        rules: &Rules<'_>,
        given: &Map<String, Value>,
        base: Option<&Map<String, Value>>,
        purpose: Purpose,
        self_id: Option<&str>,
    ) -> Result<Map<String, Value>, EngineError> {
        let (data, mut problems) = rules.derive(self.tx, given, base, purpose, self_id);
        if self.session.rehearsal {
            problems.retain(|p| p.code != "REQUIRED");
        }
        if problems.is_empty() {
            Ok(data)
        } else {
            Err(EngineError::Invalid(problems))
        }
    }

    fn insert(
        &self,
        mut data: Map<String, Value>,
        state: Option<String>,
        source: Option<&Value>,
    ) -> Result<RecordRow, StoreError> {
        let Writer { tx, f, table, at, actor, session } = *self;
        let now = session.now.to_zoned(f.time_zone());
        let mut decisions =
            assign::on_create(tx, f, &mut data, actor, &now, &mut session.assign.borrow_mut(), Some(session.scripts))?;
        // Nobody assigned it and the data names no owner: its creator owns it.
        if let Some(d) = assign::creator_owns(tx, f, &mut data, actor, &mut session.assign.borrow_mut())? {
            decisions.push(d);
        }
        let default_pattern = format!("{}-{{seq:6}}", f.form.id.to_uppercase());
        let pattern = f.form.id_pattern.as_deref().unwrap_or(&default_pattern);
        let seq = session.assign.borrow_mut().next_id(tx, &f.form.id, &id_period(pattern, &now))?;
        let text = serde_json::to_string(&data)?;
        let row = RecordRow {
            id: render_id(pattern, &now, seq),
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
        let mut detail: Vec<(&'static str, Value)> = source.map(|e| ("source", e.clone())).into_iter().collect();
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
        self.stored(None, &row, None)?;
        Ok(row)
    }

    /// Changes a stored record: the guard, the rules, then a new version (when anything
    /// changed, or always for an action) with its event and automations. Returns the record
    /// as this write left it (before automations it set off changed it further).
    pub(crate) fn change(&self, before: RecordRow, edit: Edit<'_>) -> Result<RecordRow, EngineError> {
        guard::not_final(self, &before)?;
        let roles = self.session.roles(self.tx, self.actor)?;
        match edit.action {
            Some(action) => guard::may_act(self, &before, action, &roles)?,
            None if edit.purpose == Purpose::Update => guard::may_edit(self, &before, edit.patch, &roles)?,
            None => {}
        }
        let state = match (edit.action, edit.state) {
            (Some(action), _) => Some(action.to.clone()),
            (None, Some(s)) => Some(s.to_string()),
            (None, None) => before.state.clone(),
        };
        let who = rules::Who::of(&before, self.actor_value()?);
        let rules = Rules { key_checked: edit.key_checked, who, ..self.rules(state.as_deref(), &roles) };
        let data = self.prepared(&rules, edit.patch, Some(&before.data), edit.purpose, Some(&before.id))?;
        if let Some(action) = edit.action {
            guard::has_required(self, action, &data)?;
        }
        let kind = if edit.action.is_some() { RecordEvent::Action } else { RecordEvent::Updated };
        let detail = match edit.action {
            Some(a) => Some((
                "action",
                serde_json::json!({"id": a.id, "from": before.state.clone().unwrap_or_default(), "to": a.to}),
            )),
            None => edit.detail,
        };
        self.version(before, data, state, kind, detail)
    }

    /// Stores a new version (if anything changed, or always for an action) and its event.
    fn version(
        &self,
        before: RecordRow,
        data: Map<String, Value>,
        state: Option<String>,
        kind: RecordEvent,
        detail: Option<(&'static str, Value)>,
    ) -> Result<RecordRow, EngineError> {
        let Writer { tx, f, table, at, actor, .. } = *self;
        let owner = owner_of(f, &data);
        let changes = diff(&before, &data, &state, &owner);
        if changes.is_empty() && kind != RecordEvent::Action {
            return Ok(before);
        }
        let text = serde_json::to_string(&data).map_err(StoreError::from)?;
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
            return Err(EngineError::Conflict { form: f.form.id.clone(), id: row.id });
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
                kind: kind.as_str(),
                form: Some(&f.form.id),
                record: Some(&row.id),
                version: Some(row.version),
                body: &body,
                data: Some(&text),
                data_hash: Some(&row.data_hash),
            },
        )?;
        self.stored(Some(&before), &row, action.as_deref())?;
        Ok(row)
    }

    /// After a row is stored: remember it, then run what the write triggers.
    fn stored(&self, before: Option<&RecordRow>, after: &RecordRow, action: Option<&str>) -> Result<(), StoreError> {
        *self.session.last.borrow_mut() = Some((self.f.form.id.clone(), after.clone()));
        automations::after_write(self, before, after, action)
    }

    /// A record as it stands after the automations its write set off: the session's copy when
    /// it was the last record written, else read back.
    pub(crate) fn latest(&self, row: RecordRow) -> Result<RecordRow, StoreError> {
        match self.session.latest(&self.f.form.id, &row.id) {
            Some(newest) => Ok(newest),
            None => Ok(records::get(self.tx, self.table, &row.id)?.unwrap_or(row)),
        }
    }

    /// A record of this form as it stands in this transaction.
    pub(crate) fn current(&self, id: &str) -> Result<Option<RecordRow>, StoreError> {
        match self.session.latest(&self.f.form.id, id) {
            Some(row) => Ok(Some(row)),
            None => records::get(self.tx, self.table, id),
        }
    }
}

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

/// The patch that turns `before` into `after`: changed and new fields, and `null` for fields
/// `after` no longer has.
pub(crate) fn patch_of(before: &Map<String, Value>, after: &Map<String, Value>) -> Map<String, Value> {
    let mut patch: Map<String, Value> =
        after.iter().filter(|(k, v)| before.get(*k) != Some(v)).map(|(k, v)| (k.clone(), v.clone())).collect();
    for key in before.keys().filter(|k| !after.contains_key(*k)) {
        patch.insert(key.clone(), Value::Null);
    }
    patch
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
