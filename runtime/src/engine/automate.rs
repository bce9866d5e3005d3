//! Automations: `when` / `if` / `do`, run inside the transaction of the write that causes
//! them, so a record, its timers, its tasks and its outbox messages are stored together or not
//! at all.
//!
//! Each run is one `automation.run` event in the audit chain, step by step. A step that fails
//! is rolled back on its own (a savepoint), the record and the steps before it stand, and a
//! retry timer takes the run up again from that step.

use rhai::Dynamic;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::write::rules::Rules;
use super::write::{Edit, Writer};
use super::{assign, FormRef, Installed};
use crate::calendar::{self, Anchor, WorkCalendar};
use crate::model::{ChannelKind, Condition, ConditionKind, Recipient, Step, Trigger};
use crate::store::{
    audit, boards, outbox, records, tasks, timers, NewEvent, RecordRow, Retryable, StoreError, TimerRow,
};

/// How deep automations may cascade (a `set` that triggers an `updated` automation that sets…).
pub(crate) const MAX_DEPTH: u8 = 8;

/// How many runs automations may set off in one transaction, beyond the ones its own writes
/// trigger directly: a budget on breadth, where [`MAX_DEPTH`] bounds depth.
pub(crate) const MAX_CASCADE: u32 = 1000;

/// How many times a failed step is tried again, and how long to wait before each try.
const RETRY_DELAYS_MINUTES: &[i64] = &[1, 5, 30, 120];

/// The actor automations write as.
pub(crate) const ACTOR: &str = "system";

/// How a run ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Every step ran.
    #[default]
    Done,
    /// The condition did not hold (or the moment was missed and the policy says skip).
    Skipped,
    /// A step failed; a retry is scheduled unless the tries are used up.
    Failed,
}

/// One step's outcome in a run (kept with event idempotency keys: every field has a default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct StepLog {
    /// The step's kind (`set`, `notify`, …).
    pub step: String,
    /// What it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One automation run: what started it, on which record, and what each step did (kept with
/// event idempotency keys: every field has a default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Run {
    /// The automation (or `sop.task` for a task's effects, `score.below_N` for a threshold).
    pub automation: String,
    /// The record's form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub form: Option<String>,
    /// The record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// What started it, in words.
    pub trigger: String,
    /// How it ended.
    pub status: RunStatus,
    /// Why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// Each step.
    pub steps: Vec<StepLog>,
}

/// What started a run, as its log and its idempotency keys need it.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub(crate) struct Cause {
    /// Unique per cause: `LEAD-2026-00001/v3`, `timer/42`, `event/1207`. Outbox keys start with it.
    pub key: String,
    /// In words, for the log.
    pub trigger: String,
    /// The event's data, for event automations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Map<String, Value>>,
    /// The timer that fired it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timer: Option<Value>,
    /// The approval decision that ended a chain, for its `on_approved` / `on_rejected` hooks:
    /// messages see its `comment` and `decided_by` (see [`super::approvals::decision`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Map<String, Value>>,
    /// Which try this is (0 the first).
    #[serde(default)]
    pub attempt: u32,
}

/// The steps a run executes: an automation's `do`, a task's `on_complete`, a threshold's `do`.
pub(crate) struct Steps<'s> {
    /// The name the log and the keys use.
    pub name: String,
    pub list: &'s [Step],
    /// Where the list is in the app (`/automations/3/do`), to find compiled inline scripts.
    pub pointer: String,
    /// The automation it belongs to, for retries.
    pub automation: Option<usize>,
}

/// Does a record trigger fire for this change?
fn triggered(when: &Trigger, form: &str, before: Option<&RecordRow>, after: &RecordRow, action: Option<&str>) -> bool {
    match when {
        Trigger::Created(f) => f == form && before.is_none(),
        Trigger::Updated(f) => f == form && before.is_some(),
        Trigger::Changed(c) => {
            let Some(before) = before else { return false };
            let (old, new) = (before.data.get(&c.field), after.data.get(&c.field));
            let same = |a: Option<&Value>, b: &Value| a.unwrap_or(&Value::Null) == b;
            c.form == form
                && old != new
                && c.from.as_ref().is_none_or(|v| same(old, v))
                && c.to.as_ref().is_none_or(|v| same(new, v))
        }
        Trigger::Action(a) => a.form == form && action == Some(a.action.as_str()),
        Trigger::Entered(e) => {
            e.form == form
                && after.state.as_deref() == Some(e.state.as_str())
                && before.is_none_or(|b| b.state != after.state)
        }
        Trigger::Event(_) | Trigger::Cron(_) | Trigger::Timer(_) => false,
    }
}

fn describe(when: &Trigger) -> String {
    match when {
        Trigger::Created(f) => format!("{f} created"),
        Trigger::Updated(f) => format!("{f} updated"),
        Trigger::Changed(c) => format!("{}.{} changed", c.form, c.field),
        Trigger::Action(a) => format!("{}: {} done", a.form, a.action),
        Trigger::Entered(e) => format!("{} entered {}", e.form, e.state),
        Trigger::Event(e) => format!("event {e}"),
        Trigger::Cron(c) => format!("schedule {}", c.schedule),
        Trigger::Timer(t) => {
            let (word, d) = match (&t.after, &t.before) {
                (Some(a), _) => ("after", a.as_str()),
                (None, Some(b)) => ("before", b.as_str()),
                (None, None) => ("at", ""),
            };
            format!("{d} {word} {}", t.from)
        }
    }
}

/// Runs what a record write triggers: moves the record's timers, then runs each matching
/// automation. `assigned` names the rules the creation already applied.
pub(crate) fn after_write(
    w: &Writer<'_, '_>,
    before: Option<&RecordRow>,
    after: &RecordRow,
    action: Option<&str>,
) -> Result<(), StoreError> {
    // An edit of a record in approval resets the run: decisions bind to the version submitted.
    if let Some(before) = before {
        super::approvals::on_edit(w, before, after)?;
    }
    // The record's timers follow it whatever happens below: no write leaves them behind.
    sync_timers(w, before.is_none(), after)?;
    let depth = w.session.depth.get();
    let cascaded = w.session.cascaded.get();
    let stop = if depth >= MAX_DEPTH {
        Some(format!("automations triggered each other {MAX_DEPTH} levels deep; stopped here"))
    } else if depth >= 1 && cascaded >= MAX_CASCADE {
        Some(format!("one write set off {MAX_CASCADE} automation runs; stopped here"))
    } else {
        None
    };
    if let Some(why) = stop {
        w.session.runs.borrow_mut().push(Run {
            automation: "-".into(),
            form: Some(w.f.form.id.clone()),
            record: Some(after.id.clone()),
            trigger: "a cascade of automations".into(),
            status: RunStatus::Skipped,
            why: Some(why),
            steps: Vec::new(),
        });
        return Ok(());
    }
    w.session.depth.set(depth + 1);
    let result = (|| {
        let def = &w.f.app.app.def;
        for (i, auto) in def.automations.iter().enumerate() {
            if auto.enabled == Some(false) || !triggered(&auto.when, &w.f.form.id, before, after, action) {
                continue;
            }
            if depth >= 1 {
                w.session.cascaded.set(w.session.cascaded.get() + 1);
            }
            let cause = Cause {
                key: format!("{}/v{}", after.id, after.version),
                trigger: describe(&auto.when),
                ..Cause::default()
            };
            run_automation(w, i, Some(&after.id), &cause, 0)?;
        }
        Ok(())
    })();
    w.session.depth.set(depth);
    result
}

/// A record of the writer's form as it stands in this transaction.
pub(crate) fn current(w: &Writer<'_, '_>, id: &str) -> Result<Option<RecordRow>, StoreError> {
    w.current(id)
}

/// When a moment relative to a record's anchor falls: the instant it fires, stored format.
pub(crate) fn moment(cal: &WorkCalendar, anchor: &str, after: Option<&str>, before: Option<&str>) -> Option<String> {
    let point = shift_point(cal, anchor, after, before)?;
    calendar::fire_at(cal, &point).map(crate::clock::stamp)
}

/// A moment relative to an anchor, as a date (for date anchors counted in days) or an instant.
pub(crate) fn shift_point(
    cal: &WorkCalendar,
    anchor: &str,
    after: Option<&str>,
    before: Option<&str>,
) -> Option<Anchor> {
    let (text, is_before) = match (after, before) {
        (Some(a), _) => (a, false),
        (None, Some(b)) => (b, true),
        (None, None) => ("0s", false),
    };
    let duration: crate::timespec::Duration = text.parse().ok()?;
    calendar::shift(cal, &Anchor::parse(anchor)?, duration, is_before)
}

pub(crate) fn anchor_of(row: &RecordRow, field: &str) -> Option<String> {
    match field {
        "created_at" => Some(row.created_at.clone()),
        "updated_at" => Some(row.updated_at.clone()),
        f => row.data.get(f).and_then(Value::as_str).map(str::to_string),
    }
}

/// Keeps a record's timers in step with its anchors: arms a timer for each timer automation
/// of the form, moves it when its anchor moved, cancels it when the anchor was cleared. A
/// moment already fired (or skipped) for the same anchor value is not armed again.
fn sync_timers(w: &Writer<'_, '_>, created: bool, row: &RecordRow) -> Result<(), StoreError> {
    let def = &w.f.app.app.def;
    for auto in &def.automations {
        let Trigger::Timer(t) = &auto.when else { continue };
        if t.form == w.f.form.id && auto.enabled != Some(false) {
            sync_timer(w.tx, def, &w.f.app.calendar, &auto.id, t, row, created, w.at)?;
        }
    }
    Ok(())
}

/// Brings one record's timer of one automation in step with its anchor. `created`: the record
/// is new, so it has no timers to look for.
#[allow(clippy::too_many_arguments)]
fn sync_timer(
    tx: &crate::store::Tx<'_>,
    def: &crate::model::AppDef,
    cal: &WorkCalendar,
    automation: &str,
    t: &crate::model::TimerTrigger,
    row: &RecordRow,
    created: bool,
    at: &str,
) -> Result<(), StoreError> {
    let anchor = anchor_of(row, &t.from);
    let due = anchor.as_deref().and_then(|a| moment(cal, a, t.after.as_deref(), t.before.as_deref()));
    let spec = &timer_spec(t);
    let existing = if created { Vec::new() } else { timers::of_record(tx, &t.form, &row.id, automation)? };
    if let Some(p) = existing.iter().find(|x| x.status == "pending") {
        if due.as_deref() == Some(p.due.as_str()) && p.payload.as_deref() == Some(spec) {
            return Ok(());
        }
        let why = match &due {
            Some(d) => json!({"reason": "its anchor or its rule changed", "moved_to": d}),
            None => json!({"reason": format!("`{}` was cleared", t.from)}),
        };
        timers::finish(tx, p.id, "cancelled", at, &why.to_string())?;
    }
    // A moment that already happened (fired, skipped, failed) for this anchor value is not
    // armed again; one that was only cancelled is.
    if existing.iter().any(|x| x.status != "pending" && x.status != "cancelled" && x.anchor == anchor) {
        return Ok(());
    }
    if let Some(due) = due {
        let timer = TimerRow {
            id: 0,
            app: def.app.id.clone(),
            automation: automation.to_string(),
            kind: timers::kind::RECORD.into(),
            form: Some(t.form.clone()),
            record: Some(row.id.clone()),
            due,
            anchor,
            payload: Some(spec.clone()),
            status: "pending".into(),
        };
        timers::insert(tx, &timer, at)?;
    }
    Ok(())
}

/// A timer's rule as written (`after 24h from created_at`): stored with each pending timer, so
/// installing a changed rule moves the timers armed under the old one.
fn timer_spec(t: &crate::model::TimerTrigger) -> String {
    match (&t.after, &t.before) {
        (Some(a), _) => format!("after {a} from {}", t.from),
        (None, Some(b)) => format!("before {b} from {}", t.from),
        (None, None) => format!("at {}", t.from),
    }
}

/// Arms the timers an installed app's timer automations give records that already exist (a
/// new `timer` automation, a database from before timers): called in the install's transaction.
pub(crate) fn arm_existing(
    tx: &crate::store::Tx<'_>,
    def: &crate::model::AppDef,
    at: &str,
) -> Result<usize, StoreError> {
    let cal = WorkCalendar::of_app(def);
    let mut armed = 0;
    for auto in def.automations.iter().filter(|a| a.enabled != Some(false)) {
        let Trigger::Timer(t) = &auto.when else { continue };
        let Some(form) = def.forms.iter().find(|f| f.id == t.form) else { continue };
        let table = crate::store::FormTable::of(form);
        if !records::table_exists(tx, &table)? {
            continue;
        }
        for id in timers::records_without(tx, &table, &auto.id)? {
            if let Some(row) = records::get(tx, &table, &id)? {
                sync_timer(tx, def, &cal, &auto.id, t, &row, true, at)?;
                armed += 1;
            }
        }
        for id in timers::pending_under_other_rule(tx, &table.form, &auto.id, &timer_spec(t))? {
            if let Some(row) = records::get(tx, &table, &id)? {
                sync_timer(tx, def, &cal, &auto.id, t, &row, false, at)?;
                armed += 1;
            }
        }
    }
    Ok(armed)
}

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
        if let Some(row) = current(w, id)? {
            let roles = match w.session.roles(w.tx, w.actor) {
                Ok(roles) => roles,
                Err(super::EngineError::Store(e)) => return Err(e),
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
fn explain(c: &Condition, row: &RecordRow, rules: &Rules<'_>, pointer: &str) -> String {
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
            Err(e) if !e.is_busy() => Ok(Err(format!("the database refused it: {e}"))),
            other => other,
        })?;
        match result {
            Ok(outcome) => log.push(StepLog { step: kind.into(), outcome: Some(outcome), error: None }),
            Err(error) => {
                // What the step did was rolled back: so are the runs it reported and the row
                // it left in the cache.
                w.session.forget(runs_before);
                log.push(StepLog { step: kind.into(), outcome: None, error: Some(error.clone()) });
                failed = Some((i, error));
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
        Some((i, _)) => {
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

fn step_kind(step: &Step) -> &'static str {
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
fn schedule_retry(
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
        status: "pending".into(),
    };
    timers::insert(w.tx, &timer, w.at)?;
    Ok(Some(due))
}

/// Stores a run as one `automation.run` event and keeps it for the caller's report.
fn log_run(
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

/// A form of the writer's app, by id.
pub(crate) fn form_of<'a>(app: &'a Installed, id: &str) -> Option<FormRef<'a>> {
    let index = app.app.def.forms.iter().position(|f| f.id == id)?;
    Some(FormRef { app, form: &app.app.def.forms[index], index })
}

/// The outcome of a step: what it did, or why it failed. Store errors abort the transaction.
type StepResult = Result<Result<String, String>, StoreError>;

fn run_step(
    w: &Writer<'_, '_>,
    steps: &Steps<'_>,
    i: usize,
    step: &Step,
    record: Option<&str>,
    cause: &Cause,
) -> StepResult {
    let def = &w.f.app.app.def;
    match step {
        Step::Set(values) => {
            let Some(id) = record else { return Ok(Err("there is no record to set fields on".into())) };
            let patch: Map<String, Value> = values.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            patch_record(w, id, &patch, &steps.name)
        }
        Step::Assign(rule_id) => {
            let Some(id) = record else { return Ok(Err("there is no record to assign".into())) };
            let Some(rule) = def.assignment_rules.iter().find(|r| &r.id == rule_id) else {
                return Ok(Err(format!("there is no assignment rule `{rule_id}`")));
            };
            let Some(current) = current(w, id)? else { return Ok(Err(format!("{id} is gone"))) };
            let field = rule.field.as_deref().or(w.f.form.owner_field()).unwrap_or("owner");
            if let Some(who) = current.data.get(field).and_then(Value::as_str) {
                // Assigned when it was created (and counted in the loads then).
                return Ok(Ok(format!("already assigned to {who}")));
            }
            let mut data = current.data.clone();
            let zoned = w.session.now.to_zoned(w.f.time_zone());
            let decided = assign::apply(
                w.tx,
                w.f,
                rule,
                &mut data,
                &zoned,
                &mut w.session.assign.borrow_mut(),
                Some(w.session.scripts),
            )?;
            let Some(decision) = decided else { return Ok(Ok("nothing to assign".into())) };
            let patch = super::write::patch_of(&current.data, &data);
            let edit = Edit::by_closeloop(&patch, ("assignment", json!([decision])));
            Ok(step_error(w.as_actor(ACTOR).change(current, edit))?.map(|_| decision.explanation))
        }
        Step::CreateTasks(sop) => match record {
            Some(id) => super::tasks::open_sop(w, sop, id),
            None => Ok(Err("there is no record to open tasks for".into())),
        },
        Step::CancelTasks(sop) => {
            let Some(id) = record else { return Ok(Err("there is no record".into())) };
            let mut n = 0;
            for t in tasks::of_record(w.tx, &w.f.form.id, id)? {
                if &t.sop == sop && t.status == "open" && tasks::close(w.tx, t.id, "cancelled", w.at, ACTOR, None)? {
                    n += 1;
                }
            }
            Ok(Ok(format!("cancelled {n} open task(s) of {sop}")))
        }
        Step::StartApproval(chain) => match record {
            Some(id) => super::approvals::start(w, chain, id),
            None => Ok(Err("there is no record to submit for approval".into())),
        },
        Step::Notify(n) => notify(w, steps, i, n, record, cause),
        Step::Flag(flag) => {
            let Some(id) = record else { return Ok(Err("there is no record to flag".into())) };
            let lang = w.f.lang();
            let reason = flag
                .reason
                .as_ref()
                .map(|r| r.get(lang).to_string())
                .unwrap_or_else(|| format!("flagged by {}", steps.name));
            let row = crate::store::FlagRow {
                board: flag.board.clone(),
                form: w.f.form.id.clone(),
                record: id.to_string(),
                reason: reason.clone(),
                since: w.at.to_string(),
            };
            boards::flag(w.tx, &row)?;
            Ok(Ok(format!("on board {}: {reason}", flag.board)))
        }
        Step::Unflag(board) => {
            let Some(id) = record else { return Ok(Err("there is no record".into())) };
            Ok(Ok(if boards::unflag(w.tx, board, &w.f.form.id, id)? {
                format!("taken off board {board}")
            } else {
                format!("was not on board {board}")
            }))
        }
        Step::Emit(e) => {
            let data: Map<String, Value> = e.data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            match raise(w, &e.event, &data, record, cause)? {
                Ok(n) => Ok(Ok(format!("event {} raised; {n} automation(s) ran", e.event))),
                Err(e) => Ok(Err(e.to_string())),
            }
        }
        Step::Script(script) => {
            let key = match crate::model::script_source(script) {
                crate::model::ScriptSource::File(path) => path.to_string(),
                crate::model::ScriptSource::Inline(_) => format!("{}/{i}/script", steps.pointer),
            };
            let Some(ast) = w.f.app.app.script(&key) else { return Ok(Err(format!("no compiled script at {key}"))) };
            let current = match record {
                Some(id) => current(w, id)?,
                None => None,
            };
            let mut scope = rhai::Scope::new();
            let data = current.as_ref().map(|r| r.data.clone()).unwrap_or_default();
            scope.push_dynamic("record", rhai::serde::to_dynamic(&data).unwrap_or(Dynamic::UNIT));
            let event = cause.event.clone().unwrap_or_default();
            scope.push_dynamic("event", rhai::serde::to_dynamic(&event).unwrap_or(Dynamic::UNIT));
            let context = super::score::run_context(w.f, record);
            let outcome = match crate::script::run_in(w.session.scripts, ast, &mut scope, w.f.app.deadline, context) {
                Ok(o) => o,
                Err((fault, _)) => return Ok(Err(format!("{key}: {fault}"))),
            };
            match (rhai::serde::from_dynamic::<Value>(&outcome.value), record) {
                (Ok(Value::Object(patch)), Some(id)) if !patch.is_empty() => patch_record(w, id, &patch, &steps.name),
                (Ok(Value::Null), _) | (Ok(_), None) => Ok(Ok(format!("ran in {} operations", outcome.operations))),
                (Ok(other), Some(_)) => Ok(Ok(format!("returned {other}; only a map of fields changes the record"))),
                (Err(e), _) => Ok(Err(format!("{key}: the result cannot be read: {e}"))),
            }
        }
        Step::Score(id) => super::score::score_step(w, id, record),
        Step::Grade(id) => {
            let Some(rid) = record else { return Ok(Err("there is no record to grade".into())) };
            let Some(index) = def.grades.iter().position(|g| &g.id == id) else {
                return Ok(Err(format!("there is no grade `{id}`")));
            };
            let grade = &def.grades[index];
            let Some(current) = current(w, rid)? else { return Ok(Err(format!("{rid} is gone"))) };
            let rules = w.rules(current.state.as_deref(), &[]);
            let graded = match super::trial::grade_with(&rules, grade, &current.data, index, Some(rid)) {
                Ok(g) => g,
                Err(super::EngineError::Store(e)) => return Err(e),
                Err(e) => return Ok(Err(e.to_string())),
            };
            let mut patch = Map::new();
            patch.insert(grade.field.clone(), serde_json::to_value(graded.level).unwrap_or(Value::Null));
            if let Some(summary) = &grade.summary_field {
                patch.insert(summary.clone(), Value::String(graded.summary.clone()));
            }
            patch_record(w, rid, &patch, &steps.name)
        }
    }
}

/// Changes fields of a record as an automation: the form's rules still apply (types, bounds,
/// computed fields), read-only fields included.
pub(crate) fn patch_record(w: &Writer<'_, '_>, id: &str, patch: &Map<String, Value>, by: &str) -> StepResult {
    let Some(current) = current(w, id)? else { return Ok(Err(format!("{id} is gone"))) };
    let changed: Vec<String> =
        patch.iter().filter(|(k, v)| current.data.get(*k) != Some(v)).map(|(k, v)| format!("{k} = {v}")).collect();
    let edit = Edit::by_closeloop(patch, ("automation", json!(by)));
    Ok(step_error(w.as_actor(ACTOR).change(current, edit))?.map(|_| match changed.is_empty() {
        true => "nothing to change".to_string(),
        false => changed.join(", "),
    }))
}

/// A step's view of a write through the gate: a refusal or invalid data fails the step, the
/// database failing fails the whole transaction.
pub(crate) fn step_error<T>(result: Result<T, super::EngineError>) -> Result<Result<T, String>, StoreError> {
    match result {
        Ok(v) => Ok(Ok(v)),
        Err(super::EngineError::Store(e)) => Err(e),
        Err(super::EngineError::Invalid(problems)) => {
            Ok(Err(problems.iter().map(|p| p.message.clone()).collect::<Vec<_>>().join("; ")))
        }
        Err(e) => Ok(Err(e.to_string())),
    }
}

/// Where a channel of this kind reaches a member: their phone for SMS, their email, their id
/// for WeCom and DingTalk; nothing for the log and webhooks.
pub(crate) fn address_for(m: &crate::store::MemberRow, kind: ChannelKind) -> Option<String> {
    match kind {
        ChannelKind::Sms => m.phone.clone(),
        ChannelKind::Email => m.email.clone(),
        ChannelKind::Wecom | ChannelKind::Dingtalk => Some(m.id.clone()),
        ChannelKind::Log | ChannelKind::Webhook => None,
    }
}

/// Who a recipient names, with the address the channel sends to. `Err` says why nobody.
pub(crate) fn recipients(
    team: &[crate::store::MemberRow],
    to: &Recipient,
    data: &Map<String, Value>,
    kind: ChannelKind,
) -> Result<Vec<(String, Option<String>)>, String> {
    let address = |m: &crate::store::MemberRow| address_for(m, kind);
    let member = |id: &str| team.iter().find(|m| m.id == id);
    let named = |field: &str| data.get(field).and_then(Value::as_str).ok_or_else(|| format!("`{field}` is empty"));
    let one = |id: &str| match member(id) {
        Some(m) if m.active => Ok(vec![(m.id.clone(), address(m))]),
        Some(_) => Err(format!("`{id}` is not active")),
        None => Err(format!("`{id}` is not a member")),
    };
    match to {
        Recipient::Field(f) => one(named(f)?),
        Recipient::Member(m) => one(m),
        Recipient::ManagerOf(f) => {
            let id = named(f)?;
            match member(id).and_then(|m| m.manager.clone()) {
                Some(manager) => one(&manager),
                None => Err(format!("`{id}` has no manager")),
            }
        }
        Recipient::Role(r) => {
            let all: Vec<_> =
                team.iter().filter(|m| m.active && m.roles.contains(r)).map(|m| (m.id.clone(), address(m))).collect();
            if all.is_empty() {
                Err(format!("nobody active has the role `{r}`"))
            } else {
                Ok(all)
            }
        }
        Recipient::ContactField(f) => Ok(vec![("customer".into(), Some(named(f)?.to_string()))]),
    }
}

/// The values a message template sees: the record's fields (choices as their labels), its id,
/// the event's data under `event`, and for an approval chain's hooks the decision that ended it
/// (`comment`, `decided_by`, … and all of it under `approval`).
fn message_context(
    f: &FormRef<'_>,
    record: Option<&RecordRow>,
    event: Option<&Map<String, Value>>,
    decision: Option<&Map<String, Value>>,
) -> Value {
    let lang = f.lang();
    let mut ctx = Map::new();
    if let Some(row) = record {
        for (k, v) in &row.data {
            let label = f.form.field(k).and_then(|field| {
                let value = v.as_str()?;
                let option = field.options.iter().flatten().find(|o| o.value == value)?;
                option.label.as_ref().map(|l| Value::String(l.get(lang).to_string()))
            });
            ctx.insert(k.clone(), label.unwrap_or_else(|| v.clone()));
        }
        ctx.insert("id".into(), Value::String(row.id.clone()));
    }
    if let Some(e) = event {
        ctx.insert("event".into(), Value::Object(e.clone()));
    }
    if let Some(d) = decision {
        ctx.extend(d.iter().map(|(k, v)| (k.clone(), v.clone())));
        ctx.insert("approval".into(), Value::Object(d.clone()));
    }
    Value::Object(ctx)
}

/// Renders a message for each recipient into the outbox, keyed by cause, step and recipient,
/// so the same cause never queues the same message twice.
fn notify(
    w: &Writer<'_, '_>,
    steps: &Steps<'_>,
    i: usize,
    n: &crate::model::Notify,
    record: Option<&str>,
    cause: &Cause,
) -> StepResult {
    let def = &w.f.app.app.def;
    let Some(channel) = def.channels.iter().find(|c| c.id == n.channel) else {
        return Ok(Err(format!("there is no channel `{}`", n.channel)));
    };
    let Some(message) = def.messages.iter().find(|m| m.id == n.message) else {
        return Ok(Err(format!("there is no message `{}`", n.message)));
    };
    let row = match record {
        Some(id) => current(w, id)?,
        None => None,
    };
    let data = row.as_ref().map(|r| r.data.clone()).unwrap_or_default();
    let to = {
        let mut cache = w.session.assign.borrow_mut();
        let team = cache.team(w.tx)?;
        recipients(team, &n.to, &data, channel.kind)
    };
    let to = match to {
        Ok(to) => to,
        Err(why) => return Ok(Ok(format!("nobody to notify: {why}"))),
    };
    let lang = w.f.lang();
    let code = if lang == crate::model::Lang::Zh { "zh" } else { "en" };
    let ctx = minijinja::Value::from(minijinja::value::Serde(message_context(
        w.f,
        row.as_ref(),
        cause.event.as_ref(),
        cause.decision.as_ref(),
    )));
    let render = |name: String| w.f.app.messages.get_template(&name).and_then(|t| t.render(&ctx));
    let body = match render(format!("{}.{code}", message.id)) {
        Ok(b) => b,
        Err(e) => return Ok(Err(format!("message {} cannot be rendered: {e}", message.id))),
    };
    let subject = match &message.subject {
        Some(_) => match render(format!("{}.{code}.subject", message.id)) {
            Ok(s) => Some(s),
            Err(e) => return Ok(Err(format!("the subject of message {} cannot be rendered: {e}", message.id))),
        },
        None => None,
    };
    let mut queued = 0;
    for (recipient, address) in &to {
        let m = crate::store::OutboxRow {
            id: 0,
            channel: channel.id.clone(),
            recipient: recipient.clone(),
            address: address.clone(),
            message: message.id.clone(),
            subject: subject.clone(),
            body: body.clone(),
            key: format!("{}/{}/{i}/{recipient}", cause.key, steps.name),
            form: record.map(|_| w.f.form.id.clone()),
            record: record.map(str::to_string),
            status: "pending".into(),
            attempts: 0,
            created_at: w.at.to_string(),
        };
        if outbox::push(w.tx, &m)?.is_some() {
            queued += 1;
        }
    }
    let names: Vec<&str> = to.iter().map(|(r, _)| r.as_str()).collect();
    Ok(Ok(match queued {
        0 => format!("already queued for {} on {}", names.join(", "), channel.id),
        _ => format!("{} message(s) to {} on {}", queued, names.join(", "), channel.id),
    }))
}

/// Raises an event inside the current write: finds its target record and runs the event's
/// automations. Returns how many ran, or why it could not be raised.
/// Why an event was not raised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Unraised {
    /// No record of the target form matches the event's data (`what`: the match, spelt out).
    #[error("no {form} record has {what}")]
    NoTarget { form: String, what: String },
    /// Anything else, said in words.
    #[error("{0}")]
    Other(String),
}

pub(crate) fn raise(
    w: &Writer<'_, '_>,
    name: &str,
    data: &Map<String, Value>,
    record: Option<&str>,
    cause: &Cause,
) -> Result<Result<usize, Unraised>, StoreError> {
    let def = &w.f.app.app.def;
    let Some(event) = def.events.iter().find(|e| e.id == name) else {
        return Ok(Err(Unraised::Other(format!("there is no event `{name}`"))));
    };
    let depth = w.session.depth.get();
    if depth >= MAX_DEPTH {
        return Ok(Err(Unraised::Other(format!("events raised each other {MAX_DEPTH} levels deep; stopped"))));
    }
    // The target: matched by the event's data, else the record that raised it (same form).
    let (form, target) = match &event.target {
        Some(t) => {
            let Some(f) = form_of(w.f.app, &t.form) else {
                return Ok(Err(Unraised::Other(format!("no form `{}`", t.form))));
            };
            let pairs: Vec<(&str, &Value)> =
                t.r#match.iter().filter_map(|(ff, ef)| data.get(ef).map(|v| (ff.as_str(), v))).collect();
            let found = if pairs.len() == t.r#match.len() {
                records::find_by(w.tx, f.table(), &pairs)?.map(|r| r.id)
            } else if t.form == w.f.form.id {
                record.map(str::to_string)
            } else {
                None
            };
            match found {
                Some(id) => (Some(f), Some(id)),
                None => {
                    let wanted: Vec<String> = t
                        .r#match
                        .iter()
                        .map(|(ff, ef)| format!("{ff} = {}", data.get(ef).map(|v| v.to_string()).unwrap_or("?".into())))
                        .collect();
                    return Ok(Err(Unraised::NoTarget { form: t.form.clone(), what: wanted.join(" and ") }));
                }
            }
        }
        None => (None, None),
    };
    let f = form.unwrap_or(*w.f);
    let writer = w.on(&f);
    let body = json!({"event": name, "data": data, "cause": cause.key}).to_string();
    let about = target.as_deref().map(|id| (f.form.id.as_str(), id));
    let seq = audit::append(w.tx, &NewEvent::note(w.at, w.actor, "event.received", about, &body))?;
    let event_cause = Cause {
        key: format!("event/{seq}"),
        trigger: format!("event {name}"),
        event: Some(data.clone()),
        ..Cause::default()
    };
    w.session.depth.set(depth + 1);
    let mut n = 0;
    let result = (|| {
        for (i, auto) in def.automations.iter().enumerate() {
            if auto.enabled != Some(false) && matches!(&auto.when, Trigger::Event(e) if e == name) {
                run_automation(&writer, i, target.as_deref(), &event_cause, 0)?;
                n += 1;
            }
        }
        Ok::<_, StoreError>(())
    })();
    w.session.depth.set(depth);
    result?;
    Ok(Ok(n))
}
