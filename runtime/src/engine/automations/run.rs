//! One automation run: its `if` checked (and explained when it does not hold), its steps each
//! in a savepoint, a failed step retried later, and the run kept as one `automation.run` event.

use serde_json::{json, Value};

use super::steps::{run_step, StepError};
use super::RETRY_DELAYS_MINUTES;
use super::{Cause, Run, RunStatus, StepLog, Steps, ACTOR};
use crate::engine::write::rules::Rules;
use crate::engine::write::Writer;
use crate::model::{Condition, ConditionKind, Step};
use crate::store::{audit, timers, NewEvent, RecordRow, Retryable, StoreError, TimerRow, TimerStatus};

/// Runs automation `index` of the writer's app on a record (or none), from step `from`:
/// checks its `if`, runs its steps, logs the run, and schedules a retry when a step fails.
pub(crate) fn run_automation(
    w: &Writer<'_, '_>,
    index: usize,
    record: Option<&str>,
    cause: &Cause,
    from: usize,
) -> Result<RunStatus, StoreError> {
    let def = &w.f.app.app.def;
    let Some(auto) = def.automations.get(index) else { return Ok(RunStatus::Skipped) };
    let steps = Steps {
        name: auto.id.clone(),
        list: &auto.steps,
        pointer: format!("/automations/{index}/do"),
        automation: Some(index),
    };
    if let (Some(c), Some(id)) = (&auto.condition, record) {
        if let Some(row) = w.current(id)? {
            let roles = match w.session.roles(w.tx, w.actor) {
                Ok(roles) => roles,
                Err(crate::engine::EngineError::Store(e)) => return Err(e),
                Err(_) => Vec::new(),
            };
            let rules = w.rules(row.state.as_deref(), &roles);
            let pointer = format!("/automations/{index}/if");
            if !rules.holds(c, &row.data, &pointer) {
                let why = explain(c, &row, &rules, &pointer);
                log_run(w, &steps.name, record, cause, RunStatus::Skipped, Some(why), Vec::new())?;
                return Ok(RunStatus::Skipped);
            }
        }
    }
    run_steps(w, &steps, record, cause, from)
}

/// Why a condition does not hold, in words.
pub(crate) fn explain(c: &Condition, row: &RecordRow, rules: &Rules<'_>, pointer: &str) -> String {
    let shown = |v: Option<&Value>| match v {
        None | Some(Value::Null) => "empty".to_string(),
        Some(v) => v.to_string(),
    };
    match c.kind() {
        Ok(ConditionKind::All(list)) => list
            .iter()
            .enumerate()
            .find(|(i, c)| !rules.holds(c, &row.data, &format!("{pointer}/all/{i}")))
            .map(|(i, c)| explain(c, row, rules, &format!("{pointer}/all/{i}")))
            .unwrap_or_else(|| "a condition does not hold".into()),
        Ok(ConditionKind::Any(_)) => "none of the `any` conditions holds".into(),
        Ok(ConditionKind::Not(_)) => "the `not` condition holds".into(),
        Ok(ConditionKind::State(states)) => format!(
            "the record is `{}`, not {}",
            row.state.as_deref().unwrap_or("-"),
            states.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(" or ")
        ),
        Ok(ConditionKind::Role(role)) => format!("the actor does not have the role `{role}`"),
        Ok(ConditionKind::Expr(e)) => format!("`{}` is false", e.trim()),
        Ok(ConditionKind::Rows(table, _)) => format!("no row of `{table}` matches"),
        Ok(ConditionKind::Compare(field, op)) => {
            format!("`{field}` is {} (the condition asks `{}`)", shown(row.data.get(field)), op.as_str())
        }
        Err(_) => "the condition is malformed".into(),
    }
}

/// Runs a list of steps from `from`, each in its own savepoint, and logs the run.
pub(crate) fn run_steps(
    w: &Writer<'_, '_>,
    steps: &Steps<'_>,
    record: Option<&str>,
    cause: &Cause,
    from: usize,
) -> Result<RunStatus, StoreError> {
    let mut log = Vec::new();
    let mut failed = None;
    for (i, step) in steps.list.iter().enumerate().skip(from) {
        let kind = step_kind(step);
        let runs_before = w.session.runs.borrow().len();
        // A database error other than "busy" (a constraint the form's rules did not foresee)
        // fails the step like any other reason; "busy" aborts the transaction, to be retried.
        let result = crate::store::savepoint(w.tx, || match run_step(w, steps, i, step, record, cause) {
            Ok(done) => Ok(Ok(done)),
            Err(StepError::Failed(why)) => Ok(Err((why, true))),
            Err(StepError::Refused(why)) => Ok(Err((why, false))),
            Err(StepError::Store(e)) if !e.is_busy() => Ok(Err((format!("the database refused it: {e}"), true))),
            Err(StepError::Store(e)) => Err(e),
        })?;
        match result {
            Ok(outcome) => log.push(StepLog { step: kind.into(), outcome: Some(outcome), error: None }),
            Err((error, retry)) => {
                // What the step did was rolled back: so are the runs it reported and the row
                // it left in the cache.
                w.session.forget(runs_before);
                log.push(StepLog { step: kind.into(), outcome: None, error: Some(error) });
                failed = Some((i, retry));
                break;
            }
        }
    }
    let status = if failed.is_some() { RunStatus::Failed } else { RunStatus::Done };
    let why = match &failed {
        // A run set off by another run is not retried on its own (an `emit` chain that fails
        // at the depth limit would otherwise start over every minute): its cause is what runs.
        Some((i, _)) if w.session.depth.get() > 1 => {
            Some(format!("step {} failed in a run set off by another automation; not tried again", i + 1))
        }
        Some((i, false)) => {
            Some(format!("step {} was refused: the record can no longer change; not tried again", i + 1))
        }
        Some((i, true)) => {
            let retry = schedule_retry(w, steps, record, cause, *i)?;
            Some(match retry {
                Some(due) => format!("step {} failed; it will be tried again at {due}", i + 1),
                None => format!("step {} failed {} times; not tried again", i + 1, cause.attempt + 1),
            })
        }
        None => None,
    };
    log_run(w, &steps.name, record, cause, status, why, log)?;
    Ok(status)
}

pub(crate) fn step_kind(step: &Step) -> &'static str {
    match step {
        Step::Set(_) => "set",
        Step::Assign(_) => "assign",
        Step::CreateTasks(_) => "create_tasks",
        Step::CancelTasks(_) => "cancel_tasks",
        Step::StartApproval(_) => "start_approval",
        Step::Notify(_) => "notify",
        Step::Flag(_) => "flag",
        Step::Unflag(_) => "unflag",
        Step::Emit(_) => "emit",
        Step::Script(_) => "script",
        Step::Score(_) => "score",
        Step::Grade(_) => "grade",
    }
}

/// Schedules another try of a failed automation step; returns when, or `None` when the tries
/// are used up (or the steps are not an automation's).
pub(crate) fn schedule_retry(
    w: &Writer<'_, '_>,
    steps: &Steps<'_>,
    record: Option<&str>,
    cause: &Cause,
    step: usize,
) -> Result<Option<String>, StoreError> {
    let (Some(_), Some(minutes)) = (steps.automation, RETRY_DELAYS_MINUTES.get(cause.attempt as usize)) else {
        return Ok(None);
    };
    let due = w.session.now.checked_add(jiff::SignedDuration::from_mins(*minutes)).unwrap_or(w.session.now);
    let due = crate::clock::stamp(due);
    let next = Cause { attempt: cause.attempt + 1, ..cause.clone() };
    let payload = json!({"step": step, "cause": next});
    let timer = TimerRow {
        id: 0,
        app: w.f.app.app.def.app.id.clone(),
        automation: steps.name.clone(),
        kind: timers::kind::RETRY.into(),
        form: Some(w.f.form.id.clone()),
        record: record.map(str::to_string),
        due: due.clone(),
        anchor: None,
        payload: Some(payload.to_string()),
        status: TimerStatus::Pending,
    };
    timers::insert(w.tx, &timer, w.at)?;
    Ok(Some(due))
}

/// Stores a run as one `automation.run` event and keeps it for the caller's report.
pub(crate) fn log_run(
    w: &Writer<'_, '_>,
    name: &str,
    record: Option<&str>,
    cause: &Cause,
    status: RunStatus,
    why: Option<String>,
    steps: Vec<StepLog>,
) -> Result<(), StoreError> {
    let run = Run {
        automation: name.to_string(),
        form: record.map(|_| w.f.form.id.clone()),
        record: record.map(str::to_string),
        trigger: cause.trigger.clone(),
        status,
        why,
        steps,
    };
    let mut body = serde_json::to_value(&run)?;
    if let (Some(timer), Value::Object(m)) = (&cause.timer, &mut body) {
        m.insert("timer".into(), timer.clone());
    }
    if let (true, Value::Object(m)) = (cause.attempt > 0, &mut body) {
        m.insert("attempt".into(), json!(cause.attempt + 1));
    }
    let about = run.form.as_deref().zip(record);
    audit::append(w.tx, &NewEvent::note(w.at, ACTOR, "automation.run", about, &body.to_string()))?;
    w.session.runs.borrow_mut().push(run);
    Ok(())
}
