//! What each step of an automation does (`set`, `assign`, tasks, approvals, `notify`, `flag`,
//! `emit`, `script`, `score`, `grade`). A step that fails says why (`StepError::Failed`, the
//! text for the run's log); only the database failing (`StepError::Store`) aborts the write.

use serde_json::{json, Map, Value};

use super::events::{checked, raise, Unraised};
use super::{Cause, Steps, ACTOR};
use crate::engine::assign;
use crate::engine::delivery::notify::notify;
use crate::engine::write::{Edit, Writer};
use crate::model::Step;
use crate::store::{boards, records, tasks, RecordRow, StoreError, TaskStatus};
use rhai::Dynamic;

/// The outcome of a step: what it did, or why it failed. Store errors abort the transaction.
pub(crate) type StepResult = Result<String, StepError>;

/// Why a step did not do its work.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StepError {
    /// The step failed for a reason of its own (invalid data, nothing to act on): it is rolled
    /// back alone, logged, and tried again later.
    #[error("{0}")]
    Failed(String),
    /// The write gate refused the change (the record is final or signed): rolled back alone and
    /// logged, but not tried again, since no retry can make the record writable.
    #[error("{0}")]
    Refused(String),
    /// The database failed: the whole write is abandoned (and retried from `BEGIN` when busy).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::engine::EngineError> for StepError {
    /// A write the gate refused, or data it found invalid, fails the step; the database
    /// failing fails the whole transaction.
    fn from(e: crate::engine::EngineError) -> Self {
        match e {
            crate::engine::EngineError::Store(e) => StepError::Store(e),
            crate::engine::EngineError::Invalid(problems) => {
                StepError::Failed(problems.iter().map(|p| p.message.clone()).collect::<Vec<_>>().join("; "))
            }
            crate::engine::EngineError::Refused(why) => StepError::Refused(why),
            e => StepError::Failed(e.to_string()),
        }
    }
}

pub(crate) fn run_step(
    w: &Writer<'_, '_>,
    steps: &Steps<'_>,
    i: usize,
    step: &Step,
    record: Option<&str>,
    cause: &Cause,
) -> StepResult {
    let needs = |what: &str| record.ok_or_else(|| StepError::Failed(format!("there is no record {what}")));
    match step {
        Step::Set(values) => {
            let patch: Map<String, Value> = values.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            patch_record(w, needs("to set fields on")?, &patch, &steps.name)
        }
        Step::Assign(rule_id) => assign_step(w, rule_id, needs("to assign")?),
        Step::CreateTasks(sop) => crate::engine::sop::open_sop(w, sop, needs("to open tasks for")?),
        Step::CancelTasks(sop) => cancel_tasks(w, sop, needs("to cancel tasks of")?),
        Step::StartApproval(chain) => crate::engine::approvals::start(w, chain, needs("to submit for approval")?),
        Step::Notify(n) => notify(w, steps, i, n, record, cause),
        Step::Flag(flag) => flag_step(w, steps, flag, needs("to flag")?),
        Step::Unflag(board) => {
            let id = needs("to take off a board")?;
            Ok(if boards::unflag(w.tx, board, &w.f.form.id, id)? {
                format!("taken off board {board}")
            } else {
                format!("was not on board {board}")
            })
        }
        Step::Emit(e) => emit(w, e, record, cause),
        Step::Script(script) => script_step(w, steps, i, script, record, cause),
        Step::Score(id) => crate::engine::scoring::score::score_step(w, id, record),
        Step::Grade(id) => grade_step(w, steps, id, needs("to grade")?),
    }
}

/// `emit`: the payload from `data` and `with`, raised in this app, or in the app it names
/// (skipped when that app is not installed: each template still installs alone).
fn emit(w: &Writer<'_, '_>, e: &crate::model::Emit, record: Option<&str>, cause: &Cause) -> StepResult {
    let app = match &e.app {
        None => w.f.app,
        Some(id) => match w.session.apps.get(id) {
            Some(app) => app,
            None => return Ok(format!("app {id} is not installed; event {} not raised", e.event)),
        },
    };
    let mut data: Map<String, Value> = e.data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if !e.with.is_empty() {
        let id = record.ok_or_else(|| StepError::Failed("there is no record to take `with` values from".into()))?;
        let Some(current) = w.current(id)? else { return Err(StepError::Failed(format!("{id} is gone"))) };
        for (key, source) in &e.with {
            if let Some(value) = with_value(w, &current, source, cause)? {
                data.insert(key.clone(), value);
            }
        }
    }
    // Checked as what arrives from outside is: typed, required fields present, defaults taken,
    // and nothing the event does not declare.
    let def = &app.app.def;
    let Some(event) = def.events.iter().find(|d| d.id == e.event) else {
        return Err(StepError::Failed(format!("app {} has no event `{}`", def.app.id, e.event)));
    };
    let data = checked(def, event, &data)?;
    match raise(w, app, &e.event, &data, record, cause) {
        Ok(n) => Ok(format!("event {} raised; {n} automation(s) ran", e.event)),
        Err(Unraised::Store(e)) => Err(e.into()),
        Err(Unraised::Refused(why)) => Err(StepError::Refused(why)),
        Err(e) => Err(StepError::Failed(e.to_string())),
    }
}

/// One `with` source: a field, `id`, `LINK.FIELD` or `event.FIELD`; `None` when empty.
fn with_value(
    w: &Writer<'_, '_>,
    current: &RecordRow,
    source: &str,
    cause: &Cause,
) -> Result<Option<Value>, StoreError> {
    Ok(match source.split_once('.') {
        None if source == "id" => Some(Value::String(current.id.clone())),
        None => current.data.get(source).cloned(),
        Some(("event", field)) => cause.event.as_ref().and_then(|e| e.get(field)).cloned(),
        Some((link, field)) => {
            let target = w.f.form.fields.iter().find(|f| f.id == link).and_then(|f| f.form.as_deref());
            let linked = current.data.get(link).and_then(Value::as_str);
            match (target.and_then(|t| super::form_of(w.f.app, t)), linked) {
                (Some(form), Some(id)) => {
                    records::get(w.tx, form.table(), id)?.and_then(|r| r.data.get(field).cloned())
                }
                _ => None,
            }
        }
    })
}

/// `assign`: a record nobody owns yet gets the rule's decision, explained.
fn assign_step(w: &Writer<'_, '_>, rule_id: &str, id: &str) -> StepResult {
    let def = &w.f.app.app.def;
    let Some(rule) = def.assignment_rules.iter().find(|r| r.id == rule_id) else {
        return Err(StepError::Failed(format!("there is no assignment rule `{rule_id}`")));
    };
    let Some(current) = w.current(id)? else { return Err(StepError::Failed(format!("{id} is gone"))) };
    let field = rule.field.as_deref().or(w.f.form.owner_field()).unwrap_or("owner");
    if let Some(who) = current.data.get(field).and_then(Value::as_str) {
        // Assigned when it was created (and counted in the loads then).
        return Ok(format!("already assigned to {who}"));
    }
    let mut data = current.data.clone();
    let zoned = w.session.now.to_zoned(w.f.time_zone());
    let mut cache = w.session.assign.borrow_mut();
    let decided =
        assign::apply(w.tx, w.f, rule, &mut data, &current.created_by, &zoned, &mut cache, Some(w.session.scripts))?;
    drop(cache);
    let Some(decision) = decided else { return Ok("nothing to assign".into()) };
    let patch = crate::engine::write::patch_of(&current.data, &data);
    let edit = Edit::by_closeloop(&patch, ("assignment", json!([decision])));
    w.as_actor(ACTOR).change(current, edit)?;
    Ok(decision.explanation)
}

/// `cancel_tasks`: the record's open tasks of an SOP are cancelled.
fn cancel_tasks(w: &Writer<'_, '_>, sop: &str, id: &str) -> StepResult {
    let mut n = 0;
    for t in tasks::of_record(w.tx, &w.f.form.id, id)? {
        if t.sop == sop
            && t.status == TaskStatus::Open
            && tasks::close(w.tx, t.id, TaskStatus::Cancelled, w.at, ACTOR, None)?
        {
            n += 1;
        }
    }
    Ok(format!("cancelled {n} open task(s) of {sop}"))
}

/// `flag`: the record waits on a board, with the reason.
fn flag_step(w: &Writer<'_, '_>, steps: &Steps<'_>, flag: &crate::model::Flag, id: &str) -> StepResult {
    let lang = w.f.lang();
    let reason =
        flag.reason.as_ref().map(|r| r.get(lang).to_string()).unwrap_or_else(|| format!("flagged by {}", steps.name));
    let row = crate::store::FlagRow {
        board: flag.board.clone(),
        form: w.f.form.id.clone(),
        record: id.to_string(),
        reason: reason.clone(),
        since: w.at.to_string(),
    };
    boards::flag(w.tx, &row)?;
    Ok(format!("on board {}: {reason}", flag.board))
}

/// `script`: the compiled script runs over the record and the event; a map it returns changes
/// the record through the gate.
fn script_step(
    w: &Writer<'_, '_>,
    steps: &Steps<'_>,
    i: usize,
    script: &str,
    record: Option<&str>,
    cause: &Cause,
) -> StepResult {
    let key = match crate::model::script_source(script) {
        crate::model::ScriptSource::File(path) => path.to_string(),
        crate::model::ScriptSource::Inline(_) => format!("{}/{i}/script", steps.pointer),
    };
    let Some(ast) = w.f.app.app.script(&key) else {
        return Err(StepError::Failed(format!("no compiled script at {key}")));
    };
    let current = match record {
        Some(id) => w.current(id)?,
        None => None,
    };
    let mut scope = rhai::Scope::new();
    let mut data = current.as_ref().map(|r| r.data.clone()).unwrap_or_default();
    let actor = w.actor_value()?;
    if let Some(row) = &current {
        crate::engine::write::rules::Who::of(row, Value::Null).fill(row.state.as_deref(), &mut data);
    }
    scope.push_dynamic("record", rhai::serde::to_dynamic(&data).unwrap_or(Dynamic::UNIT));
    scope.push_dynamic("actor", rhai::serde::to_dynamic(&actor).unwrap_or(Dynamic::UNIT));
    let event = cause.event.clone().unwrap_or_default();
    scope.push_dynamic("event", rhai::serde::to_dynamic(&event).unwrap_or(Dynamic::UNIT));
    let context = crate::engine::scoring::score::run_context(w.f, record);
    let outcome = match crate::script::run_in(w.session.scripts, ast, &mut scope, w.f.app.deadline, context) {
        Ok(o) => o,
        Err((fault, log)) => {
            let printed: String = log.iter().map(|l| format!("\nprint: {l}")).collect();
            return Err(StepError::Failed(format!("{key}: {fault}{printed}")));
        }
    };
    // What it printed goes into the run's log, which `closeloop activity` shows.
    let printed: String = outcome.log.iter().map(|l| format!("\nprint: {l}")).collect();
    let done = match (rhai::serde::from_dynamic::<Value>(&outcome.value), record) {
        (Ok(Value::Object(patch)), Some(id)) if !patch.is_empty() => patch_record(w, id, &patch, &steps.name),
        (Ok(Value::Null), _) | (Ok(_), None) => Ok(format!("ran in {} operations", outcome.operations)),
        (Ok(other), Some(_)) => Ok(format!("returned {other}; only a map of fields changes the record")),
        (Err(e), _) => Err(StepError::Failed(format!("{key}: the result cannot be read: {e}"))),
    };
    done.map(|text| format!("{text}{printed}"))
}

/// `grade`: the grade's level (and summary) stored on the record.
fn grade_step(w: &Writer<'_, '_>, steps: &Steps<'_>, grade_id: &str, rid: &str) -> StepResult {
    let def = &w.f.app.app.def;
    let Some(index) = def.grades.iter().position(|g| g.id == grade_id) else {
        return Err(StepError::Failed(format!("there is no grade `{grade_id}`")));
    };
    let grade = &def.grades[index];
    let Some(current) = w.current(rid)? else { return Err(StepError::Failed(format!("{rid} is gone"))) };
    let who = crate::engine::write::rules::Who::of(&current, w.actor_value()?);
    let rules = crate::engine::write::rules::Rules { who, ..w.rules(current.state.as_deref(), &[]) };
    let graded = crate::engine::scoring::trial::grade_with(&rules, grade, &current.data, index, Some(rid))?;
    let mut patch = Map::new();
    patch.insert(grade.field.clone(), serde_json::to_value(graded.level).unwrap_or(Value::Null));
    if let Some(summary) = &grade.summary_field {
        patch.insert(summary.clone(), Value::String(graded.summary.clone()));
    }
    patch_record(w, rid, &patch, &steps.name)
}

/// Changes fields of a record as an automation: the form's rules still apply (types, bounds,
/// computed fields), read-only fields included.
pub(crate) fn patch_record(w: &Writer<'_, '_>, id: &str, patch: &Map<String, Value>, by: &str) -> StepResult {
    let Some(current) = w.current(id)? else { return Err(StepError::Failed(format!("{id} is gone"))) };
    let changed: Vec<String> =
        patch.iter().filter(|(k, v)| current.data.get(*k) != Some(v)).map(|(k, v)| format!("{k} = {v}")).collect();
    let edit = Edit::by_closeloop(patch, ("automation", json!(by)));
    w.as_actor(ACTOR).change(current, edit)?;
    Ok(match changed.is_empty() {
        true => "nothing to change".to_string(),
        false => changed.join(", "),
    })
}
