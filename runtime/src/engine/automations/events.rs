//! External events (`payment.received` from a finance system): checked against the event's
//! fields, matched to their record, and run through the app's automations in one transaction;
//! with the sender's idempotency key, received once however often they are sent.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::run::run_automation;
use crate::engine::automations::{self, form_of, Cause, Run, MAX_DEPTH};
use crate::engine::write::rules::Purpose;
use crate::engine::write::{Edit, Writer};
use crate::engine::{EngineError, Installed, Runtime};
use crate::model::Trigger;
use crate::store::{audit, inbound, records, NewEvent, StoreError};
use serde_json::json;

/// The longest idempotency key accepted.
pub const MAX_KEY: usize = 200;

/// What `event` did. Kept as JSON with an idempotency key, so every field has a default: a
/// report kept by an older version still reads.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EventReport {
    /// The event.
    pub event: String,
    /// The record it is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// The automation runs it made.
    pub runs: Vec<Run>,
    /// This is the report of an earlier event with the same key; nothing ran now.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
}

/// SHA-256 of an event's name and data, whatever the order of the data's keys.
fn fingerprint(name: &str, data: &Map<String, Value>) -> Result<String, EngineError> {
    let sorted: std::collections::BTreeMap<&String, &Value> = data.iter().collect();
    let sent = serde_json::to_string(&sorted).map_err(StoreError::from)?;
    Ok(crate::store::sha256_hex(format!("{name}\n{sent}").as_bytes()))
}

/// The report kept with a key, as the answer to its retry.
fn replay(kept: &inbound::Kept) -> Result<EventReport, EngineError> {
    let mut report: EventReport = serde_json::from_str(&kept.report).map_err(StoreError::from)?;
    report.replayed = true;
    Ok(report)
}

/// A key is 1 to [`MAX_KEY`] visible ASCII characters (a UUID, `erp-payment-20261120-0042`).
fn check_key(key: &str) -> Result<(), EngineError> {
    if key.is_empty() || key.len() > MAX_KEY || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(EngineError::Input(format!(
            "an idempotency key is 1 to {MAX_KEY} visible ASCII characters, such as a UUID"
        )));
    }
    Ok(())
}

impl Runtime {
    /// Receives an external event (`payment.received`): checks its data against the event's
    /// fields, finds its target record, and runs its automations, all in one transaction. An
    /// event whose data is wrong or whose record does not exist writes nothing.
    pub fn event(&mut self, name: &str, data: Map<String, Value>, actor: &str) -> Result<EventReport, EngineError> {
        self.event_once(name, data, actor, None)
    }

    /// [`Runtime::event`] with the sender's idempotency key (install-wide: the sender chooses
    /// it, whoever sends): the first event with a key is
    /// received and its report kept with the key, in the same transaction; the same event with
    /// the same key and data again (a retry after a lost answer) receives nothing and gets that
    /// report back, marked `replayed`. The key with other data is refused ([`EngineError::KeyReused`]).
    /// An event that wrote nothing (bad data, no record) keeps no key, so it can be sent again.
    pub fn event_once(
        &mut self,
        name: &str,
        data: Map<String, Value>,
        actor: &str,
        key: Option<&str>,
    ) -> Result<EventReport, EngineError> {
        // Without a key nothing is fingerprinted. With one, the bytes a retry repeats are
        // recognised before anything else is checked, so an app changed since (a field now
        // required) still answers the retry.
        let raw = match key {
            Some(key) => {
                check_key(key)?;
                let raw = fingerprint(name, &data)?;
                if let Some(kept) = inbound::get(self.store.reader(), key)? {
                    if kept.event == name && kept.raw == raw {
                        return replay(&kept);
                    }
                }
                Some((key, raw))
            }
            None => None,
        };
        self.refresh()?;
        crate::engine::records::actor_roles(self.store.reader(), actor)?;
        let (def, event) = event_def(&self.apps, name)?;
        let clean = checked(def, event, &data)?;
        let app_id = def.app.id.clone();
        // The data as checked: `48000` and `48000.0` are the same payment.
        let keyed = match raw {
            Some((key, raw)) => Some((key, raw, fingerprint(name, &clean)?)),
            None => None,
        };
        self.write(|session, tx| {
            if let Some((key, raw, request)) = &keyed {
                if let Some(kept) = inbound::get(tx, key)? {
                    if kept.event != name || (&kept.request != request && &kept.raw != raw) {
                        return Err(EngineError::KeyReused(key.to_string()));
                    }
                    return replay(&kept);
                }
            }
            let installed = session.apps.get(&app_id).ok_or_else(|| EngineError::Input(format!("no app {app_id}")))?;
            // Any form of the app carries the writer; the event finds its own target.
            let first = installed.app.def.forms.first().map(|f| f.id.clone()).unwrap_or_default();
            let f = automations::form_of(installed, &first)
                .ok_or_else(|| EngineError::Input(format!("app {app_id} has no forms to receive events")))?;
            let at = &session.at;
            let w = Writer::new(session, tx, &f, actor);
            let cause =
                Cause { key: format!("event/{name}/{at}"), trigger: format!("event {name}"), ..Cause::default() };
            automations::raise(&w, installed, name, &clean, None, &cause).map_err(|e| match e {
                // The record the event is for does not exist: nothing is written, and an HTTP
                // caller hears 404.
                automations::Unraised::NoTarget { form, what } => {
                    EngineError::NotFound { form, id: format!("with {what}") }
                }
                automations::Unraised::Invalid(problems) => EngineError::Invalid(problems),
                automations::Unraised::Other(why) | automations::Unraised::Refused(why) => EngineError::Refused(why),
                automations::Unraised::Store(e) => EngineError::Store(e),
            })?;
            let runs = session.runs.take();
            let record = runs.iter().find_map(|r| r.record.clone());
            let report = EventReport { event: name.to_string(), record, runs, replayed: false };
            if let Some((key, raw, request)) = &keyed {
                let report = serde_json::to_string(&report).map_err(StoreError::from)?;
                let kept = inbound::Kept {
                    key: key.to_string(),
                    event: name.to_string(),
                    request: request.clone(),
                    raw: raw.clone(),
                    report,
                };
                inbound::put(tx, &kept, at)?;
            }
            Ok::<_, EngineError>(report)
        })
    }
}

/// How many times one address may send a public event in an hour.
pub(crate) const PUBLIC_SENDS_PER_HOUR: i64 = 10;

impl Runtime {
    /// A public event (`public: true`) by name, with the app's language: what `/apply/EVENT`
    /// draws. `None` for an event that is not public, or none at all.
    pub(crate) fn public_event(&self, name: &str) -> Option<(crate::model::EventDef, crate::model::Lang)> {
        self.apps.values().find_map(|a| {
            let e = a.app.def.events.iter().find(|e| e.id == name && e.public == Some(true))?;
            Some((e.clone(), a.app.def.app.language.unwrap_or(crate::model::Lang::Zh)))
        })
    }

    /// Counts a public send from `address`, refusing it past [`PUBLIC_SENDS_PER_HOUR`] in the
    /// last hour (a bot filling the lead form).
    pub(crate) fn public_send(&mut self, address: &str) -> Result<(), EngineError> {
        let now = self.clock.now();
        let since = crate::clock::stamp(now - jiff::SignedDuration::from_hours(1));
        let subject = format!("apply:{address}");
        if crate::store::identity::failures_since(self.store.reader(), &subject, &since)? >= PUBLIC_SENDS_PER_HOUR {
            return Err(EngineError::Locked("too many forms sent from this address; try again in an hour".into()));
        }
        let at = crate::clock::stamp(now);
        self.store.write(|tx| crate::store::identity::note_failure(tx, &subject, &at).map_err(EngineError::from))
    }
}

/// The app that declares an event, and the event; an unknown name gets a did-you-mean.
fn event_def<'a>(
    apps: &'a std::collections::BTreeMap<String, crate::engine::Installed>,
    name: &str,
) -> Result<(&'a crate::model::AppDef, &'a crate::model::EventDef), EngineError> {
    let found = apps.values().find_map(|a| a.app.def.events.iter().find(|e| e.id == name).map(|e| (&a.app.def, e)));
    found.ok_or_else(|| {
        let known: Vec<&str> = apps.values().flat_map(|a| a.app.def.events.iter().map(|e| e.id.as_str())).collect();
        let hint = crate::suggest::closest(name, known.iter().copied())
            .map(|k| format!(" (did you mean `{k}`?)"))
            .unwrap_or_else(|| format!("; the events are: {}", known.join(", ")));
        EngineError::Input(format!("there is no event `{name}`{hint}"))
    })
}

/// An event's data checked against its declared fields: each value typed, unknown and
/// missing required fields named; every problem at once. What arrives from outside and what a
/// step `emit`s pass it before [`raise`], which takes the data as checked.
pub(crate) fn checked(
    def: &crate::model::AppDef,
    event: &crate::model::EventDef,
    data: &Map<String, Value>,
) -> Result<Map<String, Value>, EngineError> {
    use crate::values::{check_value, field_name, is_empty, FieldProblem};
    let lang = def.app.language.unwrap_or(crate::model::Lang::Zh);
    let name = &event.id;
    let mut problems = Vec::new();
    let mut clean = Map::new();
    for (key, value) in data {
        match event.fields.iter().find(|f| &f.id == key) {
            Some(field) => match check_value(field, value, key, lang) {
                Ok(v) => {
                    clean.insert(key.clone(), v);
                }
                Err(p) => problems.push(p),
            },
            None => problems.push(FieldProblem::new(
                key.clone(),
                "UNKNOWN_FIELD",
                format!(
                    "event {name} has no field `{key}`; its fields: {}",
                    event.fields.iter().map(|f| f.id.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }
    // A field not sent takes its default (a website's leads: `source: website`).
    for field in event.fields.iter() {
        if let (Some(default), false) = (&field.default, clean.contains_key(&field.id)) {
            clean.insert(field.id.clone(), default.clone());
        }
    }
    let named: Vec<String> = problems.iter().map(|p: &FieldProblem| p.field.clone()).collect();
    for field in event.fields.iter().filter(|f| f.required == Some(true) && is_empty(clean.get(&f.id))) {
        if named.contains(&field.id) {
            continue;
        }
        problems.push(FieldProblem::new(
            field.id.clone(),
            "REQUIRED",
            format!("{} is required", field_name(field, lang)),
        ));
    }
    if problems.is_empty() {
        Ok(clean)
    } else {
        Err(EngineError::Invalid(problems))
    }
}

/// Raises an event inside the current write: finds its target record and runs the event's
/// automations. Returns how many ran, or why it could not be raised.
/// Why an event was not raised.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unraised {
    /// No record of the target form matches the event's data (`what`: the match, spelt out).
    #[error("no {form} record has {what}")]
    NoTarget { form: String, what: String },
    /// The record the event was to create is refused, field by field.
    #[error("the record the event creates is refused: {}", .0.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<crate::values::FieldProblem>),
    /// The write gate refused the change (the record is final or signed): no retry can help.
    #[error("{0}")]
    Refused(String),
    /// Anything else, said in words.
    #[error("{0}")]
    Other(String),
    /// The database failed: the whole write is abandoned.
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) fn raise(
    w: &Writer<'_, '_>,
    app: &Installed,
    name: &str,
    data: &Map<String, Value>,
    record: Option<&str>,
    cause: &Cause,
) -> Result<usize, Unraised> {
    let def = &app.app.def;
    let same_app = std::ptr::eq(app, w.f.app);
    let Some(event) = def.events.iter().find(|e| e.id == name) else {
        return Err(Unraised::Other(format!("there is no event `{name}`")));
    };
    let depth = w.session.depth.get();
    if depth >= MAX_DEPTH {
        return Err(Unraised::Other(format!("events raised each other {MAX_DEPTH} levels deep; stopped")));
    }
    // The target: matched by the event's data, else the record that raised it (same form).
    let (form, target) = match &event.target {
        Some(t) => {
            let Some(f) = form_of(app, &t.form) else {
                return Err(Unraised::Other(format!("no form `{}`", t.form)));
            };
            let pairs: Vec<(&str, &Value)> =
                t.r#match.iter().filter_map(|(ff, ef)| data.get(ef).map(|v| (ff.as_str(), v))).collect();
            let found = if pairs.len() == t.r#match.len() {
                records::find_by(w.tx, f.table(), &pairs)?.map(|r| r.id)
            } else if same_app && t.form == w.f.form.id {
                record.map(str::to_string)
            } else {
                None
            };
            match found {
                // A signed quote for an account that exists: the payload updates it.
                Some(id) if t.update == Some(true) => {
                    let patch: Map<String, Value> = f
                        .form
                        .fields
                        .iter()
                        .filter(|field| !t.r#match.contains_key(&field.id))
                        .filter_map(|field| Some((field.id.clone(), data.get(&field.id)?.clone())))
                        .collect();
                    let writer = w.on(&f);
                    let current = writer.current(&id)?;
                    if let (false, Some(current)) = (patch.is_empty(), current) {
                        let edit = Edit::by_closeloop(&patch, ("event", json!(name)));
                        writer.as_actor(super::ACTOR).change(current, edit).map_err(|e| match e {
                            EngineError::Invalid(problems) => Unraised::Invalid(problems),
                            EngineError::Refused(why) => Unraised::Refused(why),
                            EngineError::Store(e) => Unraised::Store(e),
                            e => Unraised::Other(e.to_string()),
                        })?;
                    }
                    (Some(f), Some(id))
                }
                Some(id) => (Some(f), Some(id)),
                // A lead from the website: the record is made from the payload.
                None if t.create == Some(true) => {
                    let mut given: Map<String, Value> = f
                        .form
                        .fields
                        .iter()
                        .filter_map(|field| Some((field.id.clone(), data.get(&field.id)?.clone())))
                        .collect();
                    for (ff, ef) in &t.r#match {
                        if let Some(v) = data.get(ef) {
                            given.insert(ff.clone(), v.clone());
                        }
                    }
                    let source = json!({"event": name});
                    let row = w.on(&f).create(&given, Purpose::Create, Some(&source), false).map_err(|e| match e {
                        EngineError::Invalid(problems) => Unraised::Invalid(problems),
                        EngineError::Store(e) => Unraised::Store(e),
                        EngineError::Refused(why) => Unraised::Refused(why),
                        e => Unraised::Other(e.to_string()),
                    })?;
                    (Some(f), Some(row.id))
                }
                None => {
                    let wanted: Vec<String> = t
                        .r#match
                        .iter()
                        .map(|(ff, ef)| format!("{ff} = {}", data.get(ef).map(|v| v.to_string()).unwrap_or("?".into())))
                        .collect();
                    return Err(Unraised::NoTarget { form: t.form.clone(), what: wanted.join(" and ") });
                }
            }
        }
        None => (None, None),
    };
    // An event with no record runs on any form of its app (the writer needs one).
    let f = match form {
        Some(f) => f,
        None if same_app => *w.f,
        None => def
            .forms
            .first()
            .and_then(|first| form_of(app, &first.id))
            .ok_or_else(|| Unraised::Other(format!("app {} has no forms to receive events", def.app.id)))?,
    };
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
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::EventReport;

    #[test]
    fn a_report_kept_by_an_older_version_still_reads() {
        // Fields added later are missing from reports kept earlier; an unknown one is ignored.
        let kept =
            r#"{"event": "payment.received", "runs": [{"automation": "a", "steps": [{"step": "set"}]}], "old": 1}"#;
        let report: EventReport = serde_json::from_str(kept).unwrap_or_default();
        assert_eq!((report.event.as_str(), report.runs.len()), ("payment.received", 1));
        assert_eq!(report.runs[0].steps[0].step, "set");
    }
}
