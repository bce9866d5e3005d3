//! Automations: `when` / `if` / `do`, run inside the transaction of the write that causes
//! them, so a record, its timers, its tasks and its outbox messages are stored together or not
//! at all.
//!
//! Each run is one `automation.run` event in the audit chain, step by step. A step that fails
//! is rolled back on its own (a savepoint), the record and the steps before it stand, and a
//! retry timer takes the run up again from that step.

pub(crate) mod event_csv;
pub(crate) mod events;
pub(crate) mod run;
pub(crate) mod steps;
pub(crate) mod tick;
pub(crate) mod timers;

pub use events::EventReport;
pub(crate) use events::{raise, Unraised};
pub(crate) use run::{run_automation, run_steps};
pub(crate) use steps::StepError;
pub(crate) use tick::arm_app;
pub use tick::{Activity, FireOutcome, Fired, TickReport, LATE_AFTER};
use timers::sync_timers;
pub(crate) use timers::{anchor_of, arm_existing, moment, shift_point};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::engine::write::Writer;
use crate::engine::{FormRef, Installed};
use crate::model::{Step, Trigger};
use crate::store::{RecordRow, StoreError};

/// How deep automations may cascade (a `set` that triggers an `updated` automation that sets…).
pub(crate) const MAX_DEPTH: u8 = 8;

/// How many runs automations may set off in one transaction, beyond the ones its own writes
/// trigger directly: a budget on breadth, where [`MAX_DEPTH`] bounds depth.
pub(crate) const MAX_CASCADE: u32 = 1000;

/// How many times a failed step is tried again, and how long to wait before each try.
pub(crate) const RETRY_DELAYS_MINUTES: &[i64] = &[1, 5, 30, 120];

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
    /// messages see its `comment` and `decided_by` (see [`crate::engine::approvals::decision`]).
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
        crate::engine::approvals::on_edit(w, before, after)?;
        crate::engine::sop::follow_dates(w, before, after)?;
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

/// A form of the writer's app, by id.
pub(crate) fn form_of<'a>(app: &'a Installed, id: &str) -> Option<FormRef<'a>> {
    let index = app.app.def.forms.iter().position(|f| f.id == id)?;
    Some(FormRef { app, form: &app.app.def.forms[index], index })
}
