//! Reading as a member: a form's `read` rules decide which records they may see, and a field's
//! `read_roles` which fields. A record they may not read is not found for them (the same answer
//! as a record that does not exist, so an id cannot be probed), lists leave it out, and a field
//! they may not see is gone from the record, its history and its filters.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::engine::records::{find_form, not_found, record_of, unknown_form, Version};
use crate::engine::{EngineError, Record, Runtime};
use crate::model::{Field, Form};
use crate::store::{members, ListQuery, MemberRow};

/// The role whose members keep the directory (DESIGN: "Ops: apps, members, channels, outbox").
pub const OPS_ROLE: &str = "ops";

/// How many rows a filtered list reads at a time while it fills a page.
const BATCH: u64 = 500;

/// A member reading: who they are and whom they lead.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    pub member: MemberRow,
    /// The viewer and everyone whose manager chain reaches them.
    team: BTreeSet<String>,
}

impl Viewer {
    /// The active member `id`, with their team.
    pub(crate) fn load(conn: &crate::store::Reader, id: &str) -> Result<Viewer, EngineError> {
        let all = members::list(conn)?;
        let member =
            all.iter().find(|m| m.id == id).cloned().ok_or_else(|| EngineError::UnknownMember(id.to_string()))?;
        if !member.active {
            return Err(EngineError::InactiveMember(id.to_string()));
        }
        let manager_of = |m: &str| all.iter().find(|x| x.id == m).and_then(|x| x.manager.clone());
        let team = all
            .iter()
            .filter(|m| {
                // Walk up at most as many steps as there are members: a loop in the chain ends.
                let mut at = Some(m.id.clone());
                for _ in 0..=all.len() {
                    match at {
                        Some(ref x) if x == id => return true,
                        Some(ref x) => at = manager_of(x),
                        None => return false,
                    }
                }
                false
            })
            .map(|m| m.id.clone())
            .collect();
        Ok(Viewer { member, team })
    }

    fn holds(&self, roles: &[String]) -> bool {
        roles.is_empty() || self.member.roles.iter().any(|r| roles.contains(r))
    }

    /// May the viewer read a record of `form` with this owner and data?
    pub(crate) fn may_read(&self, form: &Form, owner: Option<&str>, data: &Map<String, Value>) -> bool {
        if form.read.is_empty() {
            return true;
        }
        let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
        form.read.iter().any(|rule| {
            self.holds(&rule.roles)
                && (rule.owner_only != Some(true) || owner == Some(self.member.id.as_str()))
                && (rule.team != Some(true) || owner.is_some_and(|o| self.team.contains(o)))
                && rule.same.iter().all(|(attr, field)| {
                    let mine = crate::engine::people::assign::attribute(&self.member, attr);
                    mine.is_some() && data.get(field).filter(|v| !v.is_null()).map(text) == mine
                })
        })
    }

    /// May the viewer see this field?
    pub(crate) fn sees(&self, field: &Field) -> bool {
        self.holds(&field.read_roles)
    }

    /// Removes the fields (and table columns) the viewer may not see.
    pub(crate) fn redact(&self, form: &Form, data: &mut Map<String, Value>) {
        for field in &form.fields {
            if !self.sees(field) {
                data.remove(&field.id);
                continue;
            }
            let hidden: Vec<&str> =
                field.columns.iter().flatten().filter(|c| !self.sees(c)).map(|c| c.id.as_str()).collect();
            if hidden.is_empty() {
                continue;
            }
            if let Some(Value::Array(rows)) = data.get_mut(&field.id) {
                for row in rows.iter_mut().filter_map(Value::as_object_mut) {
                    row.retain(|k, _| !hidden.contains(&k.as_str()));
                }
            }
        }
    }
}

impl Runtime {
    /// An active member of the directory.
    pub fn member(&self, id: &str) -> Result<MemberRow, EngineError> {
        Ok(Viewer::load(self.store.reader(), id)?.member)
    }

    /// The member directory as `member` may see it: only ops (a member holding the role `ops`)
    /// may, as they keep it; anyone else is refused.
    pub fn members_as(&self, member: &str) -> Result<Vec<MemberRow>, EngineError> {
        let viewer = Viewer::load(self.store.reader(), member)?;
        if !viewer.member.roles.iter().any(|r| r == OPS_ROLE) {
            return Err(EngineError::Refused(format!(
                "the member directory is for ops (the role `{OPS_ROLE}`); `{member}` does not hold it"
            )));
        }
        Ok(members::list(self.store.reader())?)
    }

    /// A form's definition as `member` sees it: what a client needs to render it (fields with
    /// their labels, types, options, conditions; states and actions), without the fields their
    /// roles may not see.
    pub fn form_as(&self, form: &str, member: &str) -> Result<Value, EngineError> {
        let f = find_form(&self.apps, form).ok_or_else(|| unknown_form(&self.apps, form))?;
        let def = self.form_def_as(form, member)?;
        let mut value = serde_json::to_value(&def).map_err(|e| EngineError::Input(e.to_string()))?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("app".into(), Value::String(f.app.app.def.app.id.clone()));
            obj.insert("language".into(), serde_json::to_value(f.lang()).unwrap_or(Value::Null));
        }
        Ok(value)
    }

    /// A form's definition without the fields (and table columns) `member`'s roles may not see:
    /// what a page offers them to type.
    pub(crate) fn form_def_as(&self, form: &str, member: &str) -> Result<Form, EngineError> {
        let f = find_form(&self.apps, form).ok_or_else(|| unknown_form(&self.apps, form))?;
        let viewer = Viewer::load(self.store.reader(), member)?;
        let mut def = f.form.clone();
        def.fields.retain(|fd| viewer.sees(fd));
        for fd in &mut def.fields {
            if let Some(columns) = &mut fd.columns {
                columns.retain(|c| viewer.sees(c));
            }
        }
        Ok(def)
    }

    /// A record as `member` may see it: not found when the form's `read` rules keep it from
    /// them, and without the fields their roles may not see.
    pub fn get_as(&self, form: &str, id: &str, member: &str) -> Result<Record, EngineError> {
        let f = find_form(&self.apps, form).ok_or_else(|| unknown_form(&self.apps, form))?;
        let viewer = Viewer::load(self.store.reader(), member)?;
        let row = crate::store::records::get(self.store.reader(), f.table(), id)?
            .filter(|r| viewer.may_read(f.form, r.owner.as_deref(), &r.data))
            .ok_or_else(|| not_found(form, id))?;
        let mut record = record_of(form, row);
        viewer.redact(f.form, &mut record.data);
        Ok(record)
    }

    /// The records matching `query` that `member` may read, without the fields they may not
    /// see; `offset` and `limit` count the records they may read. A filter or sort on a field
    /// hidden from them is refused, so it cannot tell them what the field holds.
    pub fn list_as(&self, form: &str, query: &ListQuery, member: &str) -> Result<Vec<Record>, EngineError> {
        let from_start = ListQuery { offset: 0, ..query.clone() };
        Ok(self.scan_as(form, &from_start, member, query.offset)?.0)
    }

    /// A page of [`Runtime::list_as`] by cursor: `query.offset` is where the previous page
    /// stopped in the form's own order (0 at first), and the answer says where the next starts
    /// (`None` after the last). The cursor of the JSON API and the list page: it counts rows
    /// read, readable or not, so a page never skips one the member may read.
    pub(crate) fn page_as(
        &self,
        form: &str,
        query: &ListQuery,
        member: &str,
    ) -> Result<(Vec<Record>, Option<u64>), EngineError> {
        self.scan_as(form, query, member, 0)
    }

    /// Reads the form from `query.offset` in batches, keeps what `member` may read after
    /// skipping `skip` of those, until `query.limit` are kept; and where the scan stopped.
    fn scan_as(
        &self,
        form: &str,
        query: &ListQuery,
        member: &str,
        skip: u64,
    ) -> Result<(Vec<Record>, Option<u64>), EngineError> {
        let f = find_form(&self.apps, form).ok_or_else(|| unknown_form(&self.apps, form))?;
        let viewer = Viewer::load(self.store.reader(), member)?;
        let named = query.filters.iter().map(|(k, _)| k).chain(query.sort.as_ref());
        for name in named {
            if let Some(field) = f.form.field(name).filter(|fd| !viewer.sees(fd)) {
                return Err(EngineError::Refused(format!(
                    "`{member}` may not filter or sort {form} by `{}`",
                    field.id
                )));
            }
        }
        let want = query.limit.unwrap_or(u64::MAX);
        let mut skip = skip;
        let mut scan = ListQuery { limit: Some(BATCH), ..query.clone() };
        let mut out = Vec::new();
        loop {
            let rows = self.list(form, &scan)?;
            let read = rows.len() as u64;
            for (i, mut record) in rows.into_iter().enumerate() {
                if !viewer.may_read(f.form, record.owner.as_deref(), &record.data) {
                    continue;
                }
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                viewer.redact(f.form, &mut record.data);
                out.push(record);
                if out.len() as u64 == want {
                    return Ok((out, Some(scan.offset + i as u64 + 1)));
                }
            }
            if read < BATCH {
                return Ok((out, None));
            }
            scan.offset += BATCH;
        }
    }

    /// What automations, timers, events and tasks did to a record, as `member` may see it: not
    /// found when they may not read the record; a field they may not see is gone from every
    /// detail, and a step whose outcome names one says only that something hidden changed.
    pub fn activity_as(&self, form: &str, id: &str, member: &str) -> Result<Vec<crate::engine::Activity>, EngineError> {
        let f = find_form(&self.apps, form).ok_or_else(|| unknown_form(&self.apps, form))?;
        self.get_as(form, id, member)?;
        let viewer = Viewer::load(self.store.reader(), member)?;
        let hidden: Vec<&str> = f.form.fields.iter().filter(|fd| !viewer.sees(fd)).map(|fd| fd.id.as_str()).collect();
        let mut entries = self.activity(form, id)?;
        if !hidden.is_empty() {
            for entry in &mut entries {
                scrub(&mut entry.detail, &hidden);
            }
        }
        Ok(entries)
    }

    /// A record's history as `member` may see it: not found when they may not read the record,
    /// and without changes to fields they may not see.
    pub fn history_as(&self, form: &str, id: &str, member: &str) -> Result<Vec<Version>, EngineError> {
        let f = find_form(&self.apps, form).ok_or_else(|| unknown_form(&self.apps, form))?;
        self.get_as(form, id, member)?;
        let viewer = Viewer::load(self.store.reader(), member)?;
        let mut versions = self.history(form, id)?;
        for v in &mut versions {
            v.changes.retain(|c| f.form.field(&c.field).is_none_or(|fd| viewer.sees(fd)));
            for c in &mut v.changes {
                for side in [&mut c.from, &mut c.to] {
                    if let (Value::Array(_), Some(field)) = (&side, f.form.field(&c.field)) {
                        let mut one = Map::new();
                        one.insert(field.id.clone(), side.clone());
                        viewer.redact(f.form, &mut one);
                        *side = one.remove(&field.id).unwrap_or(Value::Null);
                    }
                }
            }
        }
        Ok(versions)
    }
}

/// Removes hidden fields from an activity's detail: as object keys, and from step outcomes
/// (`margin = 123`), which are replaced by a note that something hidden changed.
fn scrub(value: &mut Value, hidden: &[&str]) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| !hidden.contains(&k.as_str()));
            for v in map.values_mut() {
                scrub(v, hidden);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| scrub(v, hidden)),
        Value::String(text) => {
            let names = |h: &&str| text.split(|c: char| !(c.is_alphanumeric() || c == '_')).any(|word| word == *h);
            if hidden.iter().any(names) {
                *text = "(a field you may not see; 无权查看)".into();
            }
        }
        _ => {}
    }
}

/// A new record as a submit would make it (see `Runtime::preview_as`).
pub(crate) struct Preview {
    pub data: Map<String, Value>,
    pub hidden: Vec<String>,
}

/// One of a member's open records, as their work list shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct WorkItem {
    pub form: String,
    pub id: String,
    pub title: String,
    pub state: String,
    /// When its next timer is due (an SLA), stored form.
    pub due: Option<String>,
    /// Why it waits on a board, when it does: it is late.
    pub flagged: Option<String>,
}

impl Runtime {
    /// A record's title as `member` reads it: its title field, or for a link the linked
    /// record's own title (the customer's name, not `CUSTOMER-000004`); else its id.
    pub(crate) fn title_as(
        &self,
        form: &crate::model::Form,
        data: &Map<String, Value>,
        id: &str,
        member: &str,
    ) -> String {
        let field = form.title_field.as_deref().and_then(|t| form.field(t));
        match (field, field.and_then(|f| data.get(&f.id)).and_then(Value::as_str)) {
            (Some(f), Some(linked)) if f.kind == crate::model::FieldType::Link => {
                self.link_title_as(f, linked, member).unwrap_or_else(|| linked.to_string())
            }
            (_, Some(title)) => title.to_string(),
            (_, None) => id.to_string(),
        }
    }

    /// The title of the record a link field points to, when `member` may read it and its title.
    pub(crate) fn link_title_as(&self, field: &crate::model::Field, id: &str, member: &str) -> Option<String> {
        let target = field.form.as_deref()?;
        let linked = self.get_as(target, id, member).ok()?;
        let title = self.form(target).ok()?.form.title_field.as_deref()?;
        linked.data.get(title).and_then(Value::as_str).map(str::to_string)
    }

    /// The records `member` owns and may read, in states that are not final, most urgent
    /// first: flagged ones, then by the next deadline.
    pub(crate) fn work_of(&self, member: &str) -> Result<Vec<WorkItem>, EngineError> {
        let reader = self.store.reader();
        let mut out = Vec::new();
        for app in self.apps.values() {
            for form in app.app.def.forms.iter().filter(|f| f.owner_field().is_some()) {
                let lang = app.app.def.app.language.unwrap_or(crate::model::Lang::Zh);
                let query = ListQuery { owner: Some(member.to_string()), ..ListQuery::default() };
                for r in self.list_as(&form.id, &query, member)? {
                    let state = form.states.iter().find(|s| Some(&s.id) == r.state.as_ref());
                    if state.is_some_and(|s| s.is_final == Some(true)) {
                        continue;
                    }
                    let title = self.title_as(form, &r.data, &r.id, member);
                    let state = state
                        .map(|s| s.label.as_ref().map(|l| l.get(lang).to_string()).unwrap_or_else(|| s.id.clone()))
                        .unwrap_or_default();
                    out.push(WorkItem {
                        form: form.id.clone(),
                        due: self.next_deadline(app, form, &r.id)?,
                        flagged: crate::store::boards::reasons_of(reader, &form.id, &r.id)?.into_iter().next(),
                        id: r.id,
                        title,
                        state,
                    });
                }
            }
        }
        out.sort_by(|a, b| {
            (a.flagged.is_none(), a.due.is_none(), &a.due, &a.id).cmp(&(
                b.flagged.is_none(),
                b.due.is_none(),
                &b.due,
                &b.id,
            ))
        });
        Ok(out)
    }
}

impl Runtime {
    /// When a record's next deadline falls: its soonest pending timer whose automation's `if`
    /// still holds on the stored record. A contacted lead's 24-hour timer will be skipped, so
    /// it is no deadline.
    fn next_deadline(
        &self,
        app: &crate::engine::Installed,
        form: &crate::model::Form,
        id: &str,
    ) -> Result<Option<String>, EngineError> {
        let reader = self.store.reader();
        let pending = crate::store::timers::pending_of_record(reader, &form.id, id)?;
        if pending.is_empty() {
            return Ok(None);
        }
        let Some(row) = crate::store::records::get(reader, &crate::store::FormTable::of(form), id)? else {
            return Ok(None);
        };
        let f = self.form(&form.id)?;
        let no_roles = Vec::new();
        let rules = crate::engine::write::rules::Rules {
            who: crate::engine::write::rules::Who::of(&row, serde_json::json!({"id": "closeloop", "roles": []})),
            ..crate::engine::write::rules::Rules::new(f, &self.apps, &self.scripts, row.state.as_deref(), &no_roles)
        };
        let defs = &app.app.def.automations;
        Ok(pending
            .into_iter()
            .find(|t| {
                let Some((index, auto)) = defs.iter().enumerate().find(|(_, a)| a.id == t.automation) else {
                    return false;
                };
                auto.condition.as_ref().is_none_or(|c| rules.holds(c, &row.data, &format!("/automations/{index}/if")))
            })
            .map(|t| t.due))
    }

    /// A new record as a submit by `member` would make it, rehearsed in a transaction that is
    /// rolled back: the data after defaults, lookups, computed fields and the automations a
    /// submit runs (as `member` may read it), and the fields whose `visible_if` does not hold on
    /// it (a page leaves them out). Required values not typed yet are no refusal here; other
    /// refusals leave the data as typed and derived so far.
    pub(crate) fn preview_as(
        &mut self,
        form: &str,
        given: &Map<String, Value>,
        member: &str,
    ) -> Result<Preview, EngineError> {
        use crate::engine::write::rules::{Purpose, Rules};
        let roles = crate::engine::records::actor_roles(self.store.reader(), member)?;
        let data = self
            .rehearse(|session, tx| {
                let f = session.form(form)?;
                let w = crate::engine::write::Writer::new(session, tx, &f, member);
                let row = w.create(given, Purpose::Create, None, false)?;
                Ok(w.latest(row)?)
            })
            .map(|row| row.data);
        let f = self.form(form)?;
        let (who, state) = self.who(f, None, member)?;
        let rules = Rules { who, ..Rules::new(f, &self.apps, &self.scripts, state.as_deref(), &roles) };
        let mut data = match data {
            Ok(data) => data,
            Err(EngineError::Invalid(_) | EngineError::Refused(_)) => {
                rules.derive(self.store.reader(), given, None, Purpose::Create, None).0
            }
            Err(e) => return Err(e),
        };
        let hidden = f
            .form
            .fields
            .iter()
            .enumerate()
            .filter(|(j, field)| {
                field
                    .visible_if
                    .as_ref()
                    .is_some_and(|c| !rules.holds(c, &data, &format!("/forms/{}/fields/{j}/visible_if", f.index)))
            })
            .map(|(_, field)| field.id.clone())
            .collect();
        Viewer::load(self.store.reader(), member)?.redact(f.form, &mut data);
        Ok(Preview { data, hidden })
    }

    /// What a new record of `form` made from `given` would be refused for, by `actor`, without
    /// writing: every problem but a clash with an existing record's unique value (which would
    /// tell whether such a record exists).
    pub(crate) fn problems_as_new(
        &self,
        form: &str,
        given: &Map<String, Value>,
        actor: &str,
    ) -> Result<Vec<crate::values::FieldProblem>, EngineError> {
        use crate::engine::write::rules::{Purpose, Rules};
        let f = self.form(form)?;
        let roles = crate::engine::records::actor_roles(self.store.reader(), actor).unwrap_or_default();
        let (who, state) = self.who(f, None, actor)?;
        let rules = Rules { who, ..Rules::new(f, &self.apps, &self.scripts, state.as_deref(), &roles) };
        let (_, problems) = rules.derive(self.store.reader(), given, None, Purpose::Create, None);
        Ok(problems.into_iter().filter(|p| p.code != "NOT_UNIQUE").collect())
    }

    /// A member's chosen page language, if they chose one.
    pub(crate) fn language_of(&self, member: &str) -> Result<Option<crate::model::Lang>, EngineError> {
        let chosen = crate::store::identity::setting(self.store.reader(), &format!("language:{member}"))?;
        Ok(match chosen.as_deref() {
            Some("zh") => Some(crate::model::Lang::Zh),
            Some("en") => Some(crate::model::Lang::En),
            _ => None,
        })
    }

    /// Keeps a member's page language (a preference of theirs, not install configuration, so
    /// it is not audited).
    pub(crate) fn set_language(&mut self, member: &str, lang: crate::model::Lang) -> Result<(), EngineError> {
        self.member(member)?;
        let at = self.now();
        let value = if lang == crate::model::Lang::Zh { "zh" } else { "en" };
        self.store.write(|tx| {
            crate::store::identity::set_setting(tx, &format!("language:{member}"), value, &at)?;
            Ok::<_, EngineError>(())
        })
    }

    /// The active members who report to `member`, by name.
    pub(crate) fn team_of(&self, member: &str) -> Result<Vec<crate::store::MemberRow>, EngineError> {
        let mut team: Vec<_> = crate::store::members::list(self.store.reader())?
            .into_iter()
            .filter(|m| m.active && m.manager.as_deref() == Some(member))
            .collect();
        team.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(team)
    }

    /// "Now" on the injected clock.
    pub(crate) fn clock_now(&self) -> jiff::Timestamp {
        self.clock.now()
    }

    /// An installed form's definition.
    pub(crate) fn form_def(&self, form: &str) -> Result<crate::model::Form, EngineError> {
        Ok(self.form(form)?.form.clone())
    }

    /// The forms people create records of from the pages (those whose records have an owner),
    /// with their labels.
    pub(crate) fn creatable_forms(&self) -> Vec<(String, crate::model::Label)> {
        self.apps
            .values()
            .flat_map(|a| a.app.def.forms.iter())
            .filter(|f| f.owner_field().is_some())
            .map(|f| (f.id.clone(), f.label.clone().unwrap_or_else(|| crate::model::Label::Text(f.id.clone()))))
            .collect()
    }
}

impl Runtime {
    /// The boards a member with `roles` may open (those naming one of their roles, or none).
    pub(crate) fn boards_for(&self, roles: &[String]) -> Vec<(String, Option<crate::model::Label>)> {
        self.apps
            .values()
            .flat_map(|a| a.app.def.boards.iter())
            .filter(|b| b.roles.is_empty() || roles.iter().any(|r| b.roles.contains(r)))
            .map(|b| (b.id.clone(), b.label.clone()))
            .collect()
    }

    /// An approval step's label in `lang`.
    pub(crate) fn step_label(&self, form: &str, chain: &str, step: &str, lang: crate::model::Lang) -> Option<String> {
        let f = find_form(&self.apps, form)?;
        let c = f.app.app.def.approvals.iter().find(|c| c.id == chain)?;
        let s = c.steps.iter().find(|s| s.id == step)?;
        s.label.as_ref().map(|l| l.get(lang).to_string())
    }
}
