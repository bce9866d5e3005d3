//! Timers that follow a record's dates: armed when a record is written, moved with their
//! anchor, cancelled when it is cleared, and the moments they fire at, in the app's calendar.

use serde_json::{json, Value};

use crate::calendar::{self, Anchor, WorkCalendar};
use crate::engine::write::Writer;
use crate::model::Trigger;
use crate::store::{records, timers, RecordRow, StoreError, TimerRow, TimerStatus};

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
pub(crate) fn sync_timers(w: &Writer<'_, '_>, created: bool, row: &RecordRow) -> Result<(), StoreError> {
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
pub(crate) fn sync_timer(
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
    if let Some(p) = existing.iter().find(|x| x.status == TimerStatus::Pending) {
        if due.as_deref() == Some(p.due.as_str()) && p.payload.as_deref() == Some(spec) {
            return Ok(());
        }
        let why = match &due {
            Some(d) => json!({"reason": "its anchor or its rule changed", "moved_to": d}),
            None => json!({"reason": format!("`{}` was cleared", t.from)}),
        };
        timers::finish(tx, p.id, TimerStatus::Cancelled, at, &why.to_string())?;
    }
    // A moment that already happened (fired, skipped, failed) for this anchor value is not
    // armed again; one that was only cancelled is.
    if existing.iter().any(|x| !matches!(x.status, TimerStatus::Pending | TimerStatus::Cancelled) && x.anchor == anchor)
    {
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
            status: TimerStatus::Pending,
        };
        timers::insert(tx, &timer, at)?;
    }
    Ok(())
}

/// A timer's rule as written (`after 24h from created_at`): stored with each pending timer, so
/// installing a changed rule moves the timers armed under the old one.
pub(crate) fn timer_spec(t: &crate::model::TimerTrigger) -> String {
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
