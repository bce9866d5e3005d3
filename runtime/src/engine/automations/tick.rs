//! The scheduler's one pass: fire every timer due at "now".
//!
//! A timer is claimed by a conditional update (`pending` → `fired`) inside the same
//! `BEGIN IMMEDIATE` transaction that runs its steps and writes their outbox rows and audit
//! events, so a crash leaves it pending and two schedulers on one file never both fire it. Its
//! condition is checked again at fire time; a timer that fires more than [`LATE_AFTER`] past
//! its due time is marked late, with the time it was due; missed cron runs coalesce into one.

use serde::Serialize;
use serde_json::{json, Value};

use crate::engine::automations::{self, Cause, Run, RunStatus};
use crate::engine::write::{Session, Writer};
use crate::engine::{EngineError, Installed, Runtime};
use crate::model::Trigger;
use crate::store::{timers, TimerRow, TimerStatus, Tx};

/// A timer firing this much after its due time was missed (closeloop was down, nobody ran
/// `tick`): it still fires once, marked late.
pub const LATE_AFTER: jiff::SignedDuration = jiff::SignedDuration::from_mins(5);

/// How many timers one transaction fires, so a backlog never holds the write lock for long.
const BATCH: usize = 200;

/// What one timer did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fired {
    /// The timer.
    pub timer: i64,
    /// Its automation.
    pub automation: String,
    /// `record`, `cron` or `retry`.
    pub kind: String,
    /// The record's form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub form: Option<String>,
    /// The record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// When it was due.
    pub due: String,
    /// Fired more than five minutes after it was due.
    pub late: bool,
    /// How it ended: `fired`, `skipped`, `failed`, `cancelled`, or `claimed elsewhere`.
    pub outcome: FireOutcome,
    /// Why it was skipped, failed or cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// Schedule runs missed and coalesced into this one.
    #[serde(skip_serializing_if = "is_zero")]
    pub missed: usize,
}

/// How one timer of a tick ended: settled to a status, or claimed by another scheduler first
/// (then this one did nothing). Serialised and shown as the status's text, or
/// `claimed elsewhere`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FireOutcome {
    /// This tick claimed it and settled it to this status (never `pending`).
    Settled(TimerStatus),
    /// Another scheduler claimed it first.
    ClaimedElsewhere,
}

impl FireOutcome {
    /// The text shown for it (and in JSON).
    pub const fn as_str(self) -> &'static str {
        match self {
            FireOutcome::Settled(status) => status.as_str(),
            FireOutcome::ClaimedElsewhere => "claimed elsewhere",
        }
    }
}

impl std::fmt::Display for FireOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for FireOutcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What a `tick` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TickReport {
    /// "Now", as the tick saw it.
    pub now: String,
    /// Each timer due, in due order.
    pub timers: Vec<Fired>,
    /// The automation runs the timers made.
    pub runs: Vec<Run>,
}

/// One entry of a record's activity log: an automation run, a timer settled without a run, an
/// event received, a task done.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Activity {
    /// The audit sequence number.
    pub seq: i64,
    /// When.
    pub at: String,
    /// Who (`system` for automations).
    pub actor: String,
    /// `automation.run`, `timer.skipped`, `timer.cancelled`, `event.received`, `task.done`.
    pub kind: String,
    /// What the audit event says: the run's steps, the timer's reason, the event's data.
    pub detail: Value,
}

impl Runtime {
    /// What automations, timers, events and tasks did to a record, oldest first (its versions
    /// are in [`Runtime::history`]).
    pub fn activity(&self, form: &str, id: &str) -> Result<Vec<Activity>, EngineError> {
        let f = self.form(form)?;
        let events = crate::store::audit::history(self.store.reader(), &f.form.id, id)?;
        if events.is_empty() {
            return Err(crate::engine::records::not_found(form, id));
        }
        Ok(events
            .into_iter()
            .filter(|e| !e.kind.starts_with("record."))
            .map(|e| Activity { seq: e.seq, at: e.at, actor: e.actor, kind: e.kind, detail: e.body })
            .collect())
    }

    /// Fires every timer due at the clock's "now", in batches of one transaction each, and
    /// says what each did.
    pub fn tick(&mut self) -> Result<TickReport, EngineError> {
        self.refresh()?;
        let now = self.clock.now();
        let at = crate::clock::stamp(now);
        let mut report = TickReport { now: at.clone(), ..TickReport::default() };
        // A timer that fires can arm another one already due; the passes stop when a batch
        // comes back short, and in any case after this many.
        for _ in 0..10_000 {
            let (fired, runs) = self.write(|session, tx| {
                let mut fired = Vec::new();
                for timer in timers::due(tx, &at, BATCH)? {
                    // What a timer's steps do cannot stop the batch: each step fails on its own
                    // (its savepoint), whatever the reason; only the database itself failing
                    // (full, busy) abandons the transaction, leaving every timer pending.
                    fired.push(fire(tx, session, &timer, &at)?);
                }
                Ok::<_, EngineError>((fired, session.runs.take()))
            })?;
            let done = fired.len() < BATCH;
            report.timers.extend(fired);
            report.runs.extend(runs);
            if done {
                break;
            }
        }
        Ok(report)
    }

    /// The earliest time a pending timer is due, if any: how long a scheduler may sleep.
    pub fn next_due(&self) -> Result<Option<String>, EngineError> {
        Ok(timers::next_due(self.store.reader())?)
    }

    /// How many timers are in each status (`pending`, `fired`, `skipped`, …).
    pub fn timer_counts(&self) -> Result<Vec<(TimerStatus, i64)>, EngineError> {
        Ok(timers::counts(self.store.reader())?)
    }
}

/// Fires one due timer inside the batch's transaction.
fn fire(tx: &Tx<'_>, session: &Session<'_>, timer: &TimerRow, at: &str) -> Result<Fired, EngineError> {
    let due: jiff::Timestamp = timer.due.parse().unwrap_or(session.now);
    let late = session.now.duration_since(due) > LATE_AFTER;
    let mut fired = Fired {
        timer: timer.id,
        automation: timer.automation.clone(),
        kind: timer.kind.clone(),
        form: timer.form.clone(),
        record: timer.record.clone(),
        due: timer.due.clone(),
        late,
        outcome: FireOutcome::Settled(TimerStatus::Fired),
        why: None,
        missed: 0,
    };
    // The claim: only the transaction that moves it out of `pending` fires it.
    if !timers::finish(tx, timer.id, TimerStatus::Fired, at, "{}")? {
        fired.outcome = FireOutcome::ClaimedElsewhere;
        return Ok(fired);
    }
    let firing = Firing { tx, session, timer, at, due };
    if timer.kind == timers::kind::APPROVAL {
        firing.approval_timeout(&mut fired)?;
    } else {
        firing.automation(&mut fired)?;
    }
    Ok(fired)
}

/// A due timer this transaction has claimed, with what the steps of firing it share.
struct Firing<'a, 'c> {
    tx: &'a Tx<'c>,
    session: &'a Session<'a>,
    timer: &'a TimerRow,
    /// "Now", stamped.
    at: &'a str,
    /// When the timer was due (its `due`, read; "now" if it cannot be read).
    due: jiff::Timestamp,
}

impl Firing<'_, '_> {
    /// Settles the claimed timer to `status`, keeping why and how late it fired.
    fn settle(&self, fired: &mut Fired, status: TimerStatus, why: Option<String>) -> Result<(), EngineError> {
        let outcome = json!({"late": fired.late, "due": fired.due, "why": why, "missed": fired.missed});
        crate::store::timers::set_outcome(self.tx, self.timer.id, status, &outcome.to_string())?;
        fired.outcome = FireOutcome::Settled(status);
        fired.why = why;
        Ok(())
    }

    /// Settles the timer without a run (cancelled, or skipped by its late policy). It still
    /// leaves one audit event: every change of state is in the trail.
    fn unrun(&self, fired: &mut Fired, status: TimerStatus, why: String) -> Result<(), EngineError> {
        let timer = self.timer;
        let body = json!({"timer": timer.id, "automation": timer.automation, "due": timer.due,
                          "late": fired.late, "status": status, "why": why});
        let kind = if status == TimerStatus::Skipped { "timer.skipped" } else { "timer.cancelled" };
        let about = timer.form.as_deref().zip(timer.record.as_deref());
        crate::store::audit::append(
            self.tx,
            &crate::store::NewEvent::note(self.at, automations::ACTOR, kind, about, &body.to_string()),
        )?;
        self.settle(fired, status, Some(why))
    }

    /// An approval step's timeout: escalate, unless it was decided in time.
    fn approval_timeout(&self, fired: &mut Fired) -> Result<(), EngineError> {
        let timer = self.timer;
        let form = timer.form.as_deref().unwrap_or_default();
        let Some(f) = self.session.apps.get(&timer.app).and_then(|a| automations::form_of(a, form)) else {
            return self.unrun(fired, TimerStatus::Cancelled, "its app or form no longer exists".into());
        };
        let w = Writer::new(self.session, self.tx, &f, automations::ACTOR);
        let said = match crate::engine::approvals::fire_timeout(&w, timer) {
            Ok(text) | Err(automations::StepError::Failed(text) | automations::StepError::Refused(text)) => text,
            Err(automations::StepError::Store(e)) => return Err(e.into()),
        };
        let body = json!({"timer": timer.id, "chain": timer.automation, "due": timer.due, "outcome": said}).to_string();
        let about = timer.form.as_deref().zip(timer.record.as_deref());
        crate::store::audit::append(
            self.tx,
            &crate::store::NewEvent::note(self.at, automations::ACTOR, "approval.timeout", about, &body),
        )?;
        self.settle(fired, TimerStatus::Fired, Some(said))
    }

    /// An automation's timer (cron, record or retry): runs the automation, if it, its form
    /// and its record still exist, and settles the timer as the run ended.
    fn automation(&self, fired: &mut Fired) -> Result<(), EngineError> {
        let (session, timer) = (self.session, self.timer);
        let Some((installed, index)) = automation(session, timer) else {
            return self.unrun(fired, TimerStatus::Cancelled, "the automation no longer exists or is disabled".into());
        };
        let auto = &installed.app.def.automations[index];
        let form_id = timer.form.clone().or_else(|| installed.app.def.forms.first().map(|f| f.id.clone()));
        let Some(f) = form_id.as_deref().and_then(|id| automations::form_of(installed, id)) else {
            return self.unrun(fired, TimerStatus::Cancelled, "its form no longer exists".into());
        };
        let w = Writer::new(session, self.tx, &f, automations::ACTOR);
        if let Some(id) = &timer.record {
            if w.current(id)?.is_none() {
                return self.unrun(fired, TimerStatus::Cancelled, format!("{id} no longer exists"));
            }
        }
        let status = match timer.kind.as_str() {
            timers::kind::CRON => self.cron(&w, installed, index, fired)?,
            timers::kind::RETRY => Some(self.retry(&w, index)?),
            _ => self.record_timer(&w, &auto.when, (index, &installed.zone), fired)?,
        };
        // `None`: the timer was settled without a run.
        let Some(status) = status else {
            return Ok(());
        };
        let why = session.runs.borrow().iter().rev().find(|r| r.automation == auto.id).and_then(|r| r.why.clone());
        match status {
            RunStatus::Done => self.settle(fired, TimerStatus::Fired, None),
            RunStatus::Skipped => self.settle(fired, TimerStatus::Skipped, why),
            RunStatus::Failed => self.settle(fired, TimerStatus::Failed, why),
        }
    }

    /// A schedule's run: arms the next one, and runs once for every run missed since the due
    /// one (coalesced). `None` when the timer was settled without a run.
    fn cron(
        &self,
        w: &Writer<'_, '_>,
        installed: &Installed,
        index: usize,
        fired: &mut Fired,
    ) -> Result<Option<RunStatus>, EngineError> {
        let (session, timer) = (self.session, self.timer);
        let auto = &installed.app.def.automations[index];
        let Trigger::Cron(c) = &auto.when else {
            self.unrun(fired, TimerStatus::Cancelled, "the automation is no longer a schedule".into())?;
            return Ok(None);
        };
        let tz = c.time_zone.as_deref().unwrap_or(installed.app.def.app.time_zone());
        let tz = crate::timespec::parse_time_zone(tz).unwrap_or(jiff::tz::TimeZone::UTC);
        let cron = match crate::timespec::parse_cron(&c.schedule) {
            Ok(cron) => cron,
            Err(e) => {
                self.unrun(fired, TimerStatus::Cancelled, format!("the schedule cannot be read: {e}"))?;
                return Ok(None);
            }
        };
        // Runs that fell between the due one and now are coalesced into this one.
        fired.missed = crate::calendar::count_cron(&cron, &tz, self.due, session.now, 10_000);
        if let Some(next) = crate::calendar::next_cron(&cron, &tz, session.now) {
            arm_cron(self.tx, &installed.app.def, &auto.id, next, self.at)?;
        }
        let late_word = if fired.late { ", late" } else { "" };
        let missed =
            if fired.missed > 0 { format!(", {} missed run(s) coalesced", fired.missed) } else { String::new() };
        let cause = Cause {
            key: format!("timer/{}", timer.id),
            trigger: format!("schedule {} due {}{late_word}{missed}", c.schedule, crate::clock::shown(&timer.due, &tz)),
            timer: Some(json!({"id": timer.id, "due": timer.due, "late": fired.late, "missed": fired.missed})),
            ..Cause::default()
        };
        Ok(Some(automations::run_automation(w, index, None, &cause, 0)?))
    }

    /// A failed step tried again: the run resumes at that step, with its first cause.
    fn retry(&self, w: &Writer<'_, '_>, index: usize) -> Result<RunStatus, EngineError> {
        let timer = self.timer;
        let payload: Value = timer.payload.as_deref().and_then(|p| serde_json::from_str(p).ok()).unwrap_or_default();
        let step = payload["step"].as_u64().unwrap_or(0) as usize;
        let mut cause: Cause = serde_json::from_value(payload["cause"].clone()).unwrap_or_default();
        cause.trigger = format!("retry {} of step {} ({})", cause.attempt, step + 1, cause.trigger);
        Ok(automations::run_automation(w, index, timer.record.as_deref(), &cause, step)?)
    }

    /// A record's timer: runs on its record, unless it fired late and says `late: skip`
    /// (then `None`: it was settled as skipped).
    fn record_timer(
        &self,
        w: &Writer<'_, '_>,
        when: &Trigger,
        (index, zone): (usize, &jiff::tz::TimeZone),
        fired: &mut Fired,
    ) -> Result<Option<RunStatus>, EngineError> {
        let timer = self.timer;
        let due = crate::clock::shown(&timer.due, zone);
        let late = fired.late;
        let late_policy = match when {
            Trigger::Timer(t) => t.late,
            _ => None,
        };
        if late && late_policy == Some(crate::model::LatePolicy::Skip) {
            let why = format!("missed: due {due} while closeloop was not running, and the timer says `late: skip`");
            self.unrun(fired, TimerStatus::Skipped, why)?;
            return Ok(None);
        }
        let late_word = if late { ", late" } else { "" };
        let cause = Cause {
            key: format!("timer/{}", timer.id),
            trigger: format!("timer due {due}{late_word}"),
            timer: Some(json!({"id": timer.id, "due": timer.due, "late": late})),
            ..Cause::default()
        };
        Ok(Some(automations::run_automation(w, index, timer.record.as_deref(), &cause, 0)?))
    }
}

fn automation<'a>(session: &Session<'a>, timer: &TimerRow) -> Option<(&'a Installed, usize)> {
    let installed = session.apps.get(&timer.app)?;
    let index =
        installed.app.def.automations.iter().position(|a| a.id == timer.automation && a.enabled != Some(false))?;
    Some((installed, index))
}

/// Arms a cron automation's next run, unless one is already pending.
pub(crate) fn arm_cron(
    tx: &Tx<'_>,
    def: &crate::model::AppDef,
    automation: &str,
    next: jiff::Timestamp,
    at: &str,
) -> Result<(), crate::store::StoreError> {
    let app = &def.app.id;
    let spec = def.automations.iter().find(|a| a.id == automation).and_then(|a| match &a.when {
        Trigger::Cron(c) => Some(format!("{} {}", c.schedule, c.time_zone.as_deref().unwrap_or(def.app.time_zone()))),
        _ => None,
    });
    if let Some(pending) = timers::pending_cron(tx, app, automation)? {
        // The same schedule keeps its pending run (even one missed while down); a changed
        // schedule starts over.
        if pending.anchor == spec {
            return Ok(());
        }
        timers::finish(tx, pending.id, TimerStatus::Cancelled, at, r#"{"why":"the schedule changed"}"#)?;
    }
    let timer = TimerRow {
        id: 0,
        app: app.clone(),
        automation: automation.to_string(),
        kind: timers::kind::CRON.into(),
        form: None,
        record: None,
        due: crate::clock::stamp(next),
        anchor: spec,
        payload: None,
        status: TimerStatus::Pending,
    };
    timers::insert(tx, &timer, at)?;
    Ok(())
}

/// Arms the schedules of an installed app (and cancels the pending timers of automations it
/// no longer has): called in the install's transaction.
pub(crate) fn arm_app(
    tx: &Tx<'_>,
    def: &crate::model::AppDef,
    now: jiff::Timestamp,
    at: &str,
) -> Result<(), crate::store::StoreError> {
    let keep: Vec<&str> = def.automations.iter().filter(|a| a.enabled != Some(false)).map(|a| a.id.as_str()).collect();
    timers::cancel_except(tx, &def.app.id, &keep, at)?;
    for auto in def.automations.iter().filter(|a| a.enabled != Some(false)) {
        let Trigger::Cron(c) = &auto.when else { continue };
        let tz = c.time_zone.as_deref().unwrap_or(def.app.time_zone());
        let (Ok(tz), Ok(cron)) = (crate::timespec::parse_time_zone(tz), crate::timespec::parse_cron(&c.schedule))
        else {
            continue;
        };
        if let Some(next) = crate::calendar::next_cron(&cron, &tz, now) {
            arm_cron(tx, def, &auto.id, next, at)?;
        }
    }
    Ok(())
}
