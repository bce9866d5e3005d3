//! SOP tasks: an SOP template expands into tasks on a record, each due relative to one of the
//! record's dates on the app's working calendar; done with evidence, or cancelled. Overdue is
//! derived from the due time, never stored.

use crate::engine::automations::StepError;
use serde::Serialize;
use serde_json::{json, Value};

use crate::calendar::Anchor;
use crate::engine::automations::{self, Cause, Steps};
use crate::engine::write::Writer;
use crate::engine::{EngineError, FormRef, Installed, Runtime};
use crate::model::{Evidence as Needed, SopTask};
use crate::store::{audit, records, tasks, MemberRow, NewEvent, TaskRow, TaskStatus, Tx};
use std::collections::BTreeMap;

/// A task as people see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Task {
    /// Its id.
    pub id: i64,
    /// The record's form.
    pub form: String,
    /// The record.
    pub record: String,
    /// The SOP.
    pub sop: String,
    /// The task's id in the SOP.
    pub task: String,
    /// The title.
    pub title: String,
    /// Who should do it.
    pub assignee: Option<String>,
    /// When it is due: a date, or an instant.
    pub due: Option<String>,
    /// Where it is.
    pub status: TaskStatus,
    /// Open past its due time.
    pub overdue: bool,
    /// Done after its due time.
    pub late: bool,
    /// What to say, from the SOP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub talk_track: Option<String>,
    /// The evidence it needs.
    pub needs: Vec<String>,
    /// When it was done or cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_at: Option<String>,
    /// Who did it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_by: Option<String>,
    /// The evidence given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Value>,
}

/// What a member hands in when a task is done.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// What happened, in a few sentences.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// A file that shows it (a signed form, a call recording), as a path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachment: Option<String>,
}

/// A completed task and what its effects did.
#[derive(Debug, Clone, Serialize)]
pub struct Completed {
    /// The task, now done.
    pub task: Task,
    /// The runs its `on_complete` steps (and what they set off) made.
    pub runs: Vec<automations::Run>,
}

fn overdue(t: &TaskRow, now: &str) -> bool {
    t.status == TaskStatus::Open && t.due_at.as_deref().is_some_and(|d| d < now)
}

fn late(t: &TaskRow) -> bool {
    matches!((&t.done_at, &t.due_at), (Some(done), Some(due)) if t.status == TaskStatus::Done && done > due)
}

impl Runtime {
    fn task_view(&self, t: TaskRow, now: &str) -> Task {
        let def = self.apps.get(&t.app).and_then(|a| {
            let lang = a.app.def.app.language.unwrap_or(crate::model::Lang::Zh);
            let sop = a.app.def.sops.iter().find(|s| s.id == t.sop)?;
            let task = sop.tasks.iter().find(|x| x.id == t.task)?;
            Some((task.talk_track.as_ref().map(|l| l.get(lang).to_string()), task.evidence.clone()))
        });
        let (talk_track, needs) = def.unwrap_or_default();
        Task {
            overdue: overdue(&t, now),
            late: late(&t),
            id: t.id,
            form: t.form,
            record: t.record,
            sop: t.sop,
            task: t.task,
            title: t.title,
            assignee: t.assignee,
            due: t.due,
            status: t.status,
            talk_track,
            needs: needs.iter().map(|n| format!("{n:?}").to_lowercase()).collect(),
            done_at: t.done_at,
            done_by: t.done_by,
            evidence: t.evidence.and_then(|e| serde_json::from_str(&e).ok()),
        }
    }

    /// Open tasks (all tasks with `all`), optionally one member's, optionally only overdue ones;
    /// soonest due first.
    pub fn tasks(&self, assignee: Option<&str>, overdue_only: bool, all: bool) -> Result<Vec<Task>, EngineError> {
        let now = self.now();
        let rows = tasks::list(self.store.reader(), assignee, !all, overdue_only.then_some(now.as_str()))?;
        Ok(rows.into_iter().map(|t| self.task_view(t, &now)).collect())
    }

    /// One task, as people see it.
    pub fn task(&self, id: i64) -> Result<Task, EngineError> {
        let row = tasks::get(self.store.reader(), id)?
            .ok_or_else(|| EngineError::NotFound { form: "task".into(), id: id.to_string() })?;
        Ok(self.task_view(row, &self.now()))
    }

    /// A task's title and talk track in `lang`, from its SOP (`None` when the SOP is gone).
    pub(crate) fn task_texts(&self, task: &Task, lang: crate::model::Lang) -> Option<(String, Option<String>)> {
        let def = self
            .apps
            .values()
            .flat_map(|a| a.app.def.sops.iter())
            .find(|s| s.id == task.sop && s.form == task.form)
            .and_then(|s| s.tasks.iter().find(|t| t.id == task.task))?;
        Some((def.title.get(lang).to_string(), def.talk_track.as_ref().map(|l| l.get(lang).to_string())))
    }

    /// A record's tasks, oldest first.
    pub fn tasks_of(&self, form: &str, record: &str) -> Result<Vec<Task>, EngineError> {
        let now = self.now();
        let rows = tasks::of_record(self.store.reader(), form, record)?;
        Ok(rows.into_iter().map(|t| self.task_view(t, &now)).collect())
    }

    /// Marks a task done with its evidence, then runs its `on_complete` steps, in one
    /// transaction. Only the assignee (or the assignee's manager) may; the evidence the SOP
    /// asks for must be there (an attachment must be a file that exists).
    pub fn complete_task(&mut self, id: i64, actor: &str, evidence: Evidence) -> Result<Completed, EngineError> {
        crate::engine::records::actor_roles(self.store.reader(), actor)?;
        let (runs, at) = self.write(|session, tx| {
            let (apps, at) = (session.apps, session.at.clone());
            let task = open_task(tx, id)?;
            may_complete(tx, apps, &task, actor)?;
            let found = task_def(apps, &task)?;
            check_evidence(&task, &found.def.evidence, &evidence)?;
            record_done(tx, &task, actor, &evidence, &at)?;
            let w = Writer::new(session, tx, &found.f, actor);
            let steps = Steps {
                name: format!("{}.{}", task.sop, task.task),
                list: &found.def.on_complete,
                pointer: format!("/sops/{}/tasks/{}/on_complete", found.si, found.ti),
                automation: None,
            };
            if !steps.list.is_empty() {
                let cause = Cause { key: format!("task/{id}"), trigger: format!("task {id} done"), ..Cause::default() };
                automations::run_steps(&w, &steps, Some(&task.record), &cause, 0)?;
            }
            Ok((session.runs.take(), at))
        })?;
        let row = tasks::get(self.store.reader(), id)?.ok_or_else(|| EngineError::Input(format!("no task {id}")))?;
        Ok(Completed { task: self.task_view(row, &at), runs })
    }
}

/// Task `id`, if it exists and is still open.
fn open_task(tx: &Tx<'_>, id: i64) -> Result<TaskRow, EngineError> {
    let task = tasks::get(tx, id)?.ok_or_else(|| EngineError::Input(format!("there is no task {id}")))?;
    if task.status != TaskStatus::Open {
        return Err(EngineError::Refused(format!("task {id} is already {}", task.status)));
    }
    Ok(task)
}

/// Who answers for a task: its assignee, when a member. A task nobody in the team holds (the
/// rule found nobody, or it names the customer) falls to the record's owner.
fn responsible(
    tx: &Tx<'_>,
    apps: &BTreeMap<String, Installed>,
    task: &TaskRow,
) -> Result<Option<MemberRow>, EngineError> {
    let member = match &task.assignee {
        Some(a) => crate::store::members::get(tx, a)?,
        None => None,
    };
    if member.is_some() {
        return Ok(member);
    }
    let owner = apps
        .get(&task.app)
        .and_then(|a| automations::form_of(a, &task.form))
        .map(|f| records::get(tx, f.table(), &task.record))
        .transpose()?
        .flatten()
        .and_then(|r| r.owner);
    Ok(match owner {
        Some(o) => crate::store::members::get(tx, &o)?,
        None => None,
    })
}

/// Refuses `actor` unless they answer for the task, or manage who does.
fn may_complete(
    tx: &Tx<'_>,
    apps: &BTreeMap<String, Installed>,
    task: &TaskRow,
    actor: &str,
) -> Result<(), EngineError> {
    let responsible = responsible(tx, apps, task)?;
    let allowed = responsible.as_ref().is_some_and(|m| m.id == actor || m.manager.as_deref() == Some(actor));
    if !allowed {
        let id = task.id;
        let who = responsible.map(|m| m.id).unwrap_or_else(|| "nobody".into());
        return Err(EngineError::Refused(format!(
            "task {id} is {who}'s; only {who} (or their manager) may complete it"
        )));
    }
    Ok(())
}

/// Where a task's definition is: its record's form, and the SOP task (with the indexes that
/// point at it in the app).
struct TaskDef<'a> {
    f: FormRef<'a>,
    /// The SOP's index in the app.
    si: usize,
    /// The task's index in the SOP.
    ti: usize,
    def: &'a SopTask,
}

/// Finds the definition of a task in the installed apps.
fn task_def<'a>(apps: &'a BTreeMap<String, Installed>, task: &TaskRow) -> Result<TaskDef<'a>, EngineError> {
    let installed =
        apps.get(&task.app).ok_or_else(|| EngineError::Input(format!("the app {} is not installed", task.app)))?;
    let f = automations::form_of(installed, &task.form)
        .ok_or_else(|| EngineError::Input(format!("the form {} is gone", task.form)))?;
    let (si, sop) = installed
        .app
        .def
        .sops
        .iter()
        .enumerate()
        .find(|(_, s)| s.id == task.sop)
        .ok_or_else(|| EngineError::Input(format!("the SOP {} is gone", task.sop)))?;
    let (ti, def) = sop
        .tasks
        .iter()
        .enumerate()
        .find(|(_, t)| t.id == task.task)
        .ok_or_else(|| EngineError::Input(format!("the SOP task {}.{} is gone", task.sop, task.task)))?;
    Ok(TaskDef { f, si, ti, def })
}

/// Refuses the completion, naming all that is missing, unless `evidence` has what the SOP
/// task `needs` and its attachment (if any) is a file that exists.
fn check_evidence(task: &TaskRow, needs: &[Needed], evidence: &Evidence) -> Result<(), EngineError> {
    use crate::values::FieldProblem;
    let mut missing = Vec::new();
    let given = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    let title = &task.title;
    for need in needs {
        match need {
            Needed::Summary if !given(&evidence.summary) => missing.push(FieldProblem::new(
                "summary",
                "REQUIRED",
                format!("task {} ({title}) needs a summary of what happened", task.id),
            )),
            Needed::Attachment if !given(&evidence.attachment) => missing.push(FieldProblem::new(
                "attachment",
                "REQUIRED",
                format!("task {} ({title}) needs an attachment", task.id),
            )),
            _ => {}
        }
    }
    if let Some(path) = evidence.attachment.as_deref().filter(|p| !p.trim().is_empty()) {
        if !std::path::Path::new(path).is_file() {
            missing.push(FieldProblem::new(
                "attachment",
                "NOT_FOUND",
                format!("the attachment `{path}` is not a file that exists"),
            ));
        }
    }
    if !missing.is_empty() {
        return Err(EngineError::Invalid(missing));
    }
    Ok(())
}

/// Closes the task as done by `actor` at `at`, with its evidence, and audits it (`task.done`,
/// saying whether it was late).
fn record_done(tx: &Tx<'_>, task: &TaskRow, actor: &str, evidence: &Evidence, at: &str) -> Result<(), EngineError> {
    let id = task.id;
    let text = serde_json::to_string(evidence).map_err(crate::store::StoreError::from)?;
    tasks::close(tx, id, TaskStatus::Done, at, actor, Some(&text))?;
    let done = TaskRow { status: TaskStatus::Done, done_at: Some(at.to_string()), ..task.clone() };
    let body = json!({"task": id, "sop": task.sop, "step": task.task, "title": task.title,
                      "evidence": evidence, "late": late(&done)});
    audit::append(
        tx,
        &NewEvent::note(at, actor, "task.done", Some((task.form.as_str(), task.record.as_str())), &body.to_string()),
    )?;
    Ok(())
}

/// The values the tasks of a record show a score script: `title`, `sop`, `task`, `status`,
/// `due`, `done_at`, `late` and `overdue`.
pub(crate) fn for_scripts(rows: &[TaskRow], now: &str) -> Vec<Value> {
    rows.iter()
        .map(|t| {
            json!({"title": t.title, "sop": t.sop, "task": t.task, "status": t.status, "due": t.due,
                   "done_at": t.done_at, "late": late(t), "overdue": overdue(t, now)})
        })
        .collect()
}

/// When a task is due on this version of its record: the shown due (a date, or an instant) and
/// the instant it becomes overdue; nothing while its anchor date is empty.
fn due_of(
    cal: &crate::calendar::WorkCalendar,
    row: &crate::store::RecordRow,
    due: &crate::model::Offset,
) -> (Option<String>, Option<String>) {
    let anchor = automations::anchor_of(row, &due.from);
    let point =
        anchor.as_deref().and_then(|a| automations::shift_point(cal, a, due.after.as_deref(), due.before.as_deref()));
    match &point {
        Some(Anchor::Date(d)) => {
            // A date is due through its whole day: overdue from the next midnight.
            let end = d.tomorrow().ok().and_then(|n| n.to_zoned(cal.time_zone().clone()).ok());
            (Some(d.to_string()), end.map(|z| crate::clock::stamp(z.timestamp())))
        }
        Some(Anchor::Instant(ts)) => (Some(crate::clock::stamp(*ts)), Some(crate::clock::stamp(*ts))),
        None => (None, None),
    }
}

/// A record's open tasks follow its dates: when the date a task is due from changes (the
/// success manager fills in the delivery date after the payment opened the tasks), its due
/// moves with it, as the record's timers do.
pub(crate) fn follow_dates(
    w: &Writer<'_, '_>,
    before: &crate::store::RecordRow,
    after: &crate::store::RecordRow,
) -> Result<(), crate::store::StoreError> {
    let def = &w.f.app.app.def;
    let mut open = None;
    for sop in def.sops.iter().filter(|s| s.form == w.f.form.id) {
        let moved = |t: &&crate::model::SopTask| {
            automations::anchor_of(before, &t.due.from) != automations::anchor_of(after, &t.due.from)
        };
        for t in sop.tasks.iter().filter(moved) {
            let rows = match &open {
                Some(rows) => rows,
                None => open.insert(tasks::of_record(w.tx, &w.f.form.id, &after.id)?),
            };
            let (due, due_at) = due_of(&w.f.app.calendar, after, &t.due);
            for row in rows.iter().filter(|r| r.status == TaskStatus::Open && r.sop == sop.id && r.task == t.id) {
                tasks::set_due(w.tx, row.id, due.as_deref(), due_at.as_deref())?;
            }
        }
    }
    Ok(())
}

/// Opens an SOP's tasks on a record: each due relative to a date of the record on the app's
/// calendar, assigned by its rule. A task already open is not opened twice.
pub(crate) fn open_sop(w: &Writer<'_, '_>, sop_id: &str, record: &str) -> Result<String, StepError> {
    let def = &w.f.app.app.def;
    let Some(sop) = def.sops.iter().find(|s| s.id == sop_id) else {
        return Err(StepError::Failed(format!("there is no SOP `{sop_id}`")));
    };
    let Some(row) = w.current(record)? else {
        return Err(StepError::Failed(format!("{record} is gone")));
    };
    let cal = &w.f.app.calendar;
    let lang = w.f.lang();
    let mut opened = Vec::new();
    let mut skipped = Vec::new();
    for t in &sop.tasks {
        let (due, due_at) = due_of(cal, &row, &t.due);
        let assignee = {
            let mut cache = w.session.assign.borrow_mut();
            let team = cache.team(w.tx)?;
            crate::engine::delivery::notify::recipients(team, &t.assignee, &row.data, crate::model::ChannelKind::Log)
                .ok()
                .and_then(|v| v.into_iter().next())
                .map(|(id, _)| id)
        };
        let task = TaskRow {
            id: 0,
            app: def.app.id.clone(),
            form: w.f.form.id.clone(),
            record: record.to_string(),
            sop: sop.id.clone(),
            task: t.id.clone(),
            title: t.title.get(lang).to_string(),
            assignee: assignee.clone(),
            due: due.clone(),
            due_at,
            status: TaskStatus::Open,
            created_at: w.at.to_string(),
            done_at: None,
            done_by: None,
            evidence: None,
        };
        match tasks::open(w.tx, &task)? {
            Some(id) => opened.push(format!(
                "#{id} {} due {} for {}",
                t.id,
                due.as_deref().unwrap_or(&format!("? ({} is empty)", t.due.from)),
                assignee.as_deref().unwrap_or("nobody")
            )),
            None => skipped.push(t.id.clone()),
        }
    }
    let mut text = format!("opened {} task(s)", opened.len());
    if !opened.is_empty() {
        text.push_str(&format!(": {}", opened.join("; ")));
    }
    if !skipped.is_empty() {
        text.push_str(&format!("; already open: {}", skipped.join(", ")));
    }
    Ok(text)
}
