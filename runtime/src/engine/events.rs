//! External events (`payment.received` from a finance system): checked against the event's
//! fields, matched to their record, and run through the app's automations in one transaction;
//! with the sender's idempotency key, received once however often they are sent.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::automate::{self, Cause, Run, Session};
use super::records::Writer;
use super::{EngineError, Runtime};
use crate::store::{inbound, StoreError};

/// The longest idempotency key accepted.
pub const MAX_KEY: usize = 200;

/// What `event` did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventReport {
    /// The event.
    pub event: String,
    /// The record it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// The automation runs it made.
    pub runs: Vec<Run>,
    /// This is the report of an earlier event with the same key; nothing ran now.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
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

    /// [`Runtime::event`] with the sender's idempotency key: the first event with a key is
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
        if let Some(key) = key {
            check_key(key)?;
        }
        self.refresh()?;
        let now = self.clock.now();
        let at = crate::clock::stamp(now);
        super::records::actor_roles(self.store.reader(), actor)?;
        let Some(installed) = self.apps.values().find(|a| a.app.def.events.iter().any(|e| e.id == name)) else {
            let known: Vec<&str> =
                self.apps.values().flat_map(|a| a.app.def.events.iter().map(|e| e.id.as_str())).collect();
            let hint = crate::suggest::closest(name, known.iter().copied())
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_else(|| format!("; the events are: {}", known.join(", ")));
            return Err(EngineError::Input(format!("there is no event `{name}`{hint}")));
        };
        let def = &installed.app.def;
        let Some(event) = def.events.iter().find(|e| e.id == name) else { return Err(EngineError::Input(name.into())) };
        let lang = def.app.language.unwrap_or(crate::model::Lang::Zh);
        let mut problems = Vec::new();
        let mut clean = Map::new();
        for (key, value) in &data {
            match event.fields.iter().find(|f| &f.id == key) {
                Some(field) => match crate::values::check_value(field, value, key, lang) {
                    Ok(v) => {
                        clean.insert(key.clone(), v);
                    }
                    Err(p) => problems.push(p),
                },
                None => problems.push(crate::values::FieldProblem::new(
                    key.clone(),
                    "UNKNOWN_FIELD",
                    format!(
                        "event {name} has no field `{key}`; its fields: {}",
                        event.fields.iter().map(|f| f.id.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                )),
            }
        }
        for field in &event.fields {
            if field.required == Some(true) && crate::values::is_empty(clean.get(&field.id)) {
                problems.push(crate::values::FieldProblem::new(
                    field.id.clone(),
                    "REQUIRED",
                    format!("{} is required", crate::values::field_name(field, lang)),
                ));
            }
        }
        if !problems.is_empty() {
            return Err(EngineError::Invalid(problems));
        }
        let app_id = def.app.id.clone();
        let Runtime { store, apps, scripts, .. } = self;
        let installed = apps.get(&app_id).ok_or_else(|| EngineError::Input(format!("no app {app_id}")))?;
        // Any form of the app carries the writer; the event finds its own target.
        let first = installed.app.def.forms.first().map(|f| f.id.clone()).unwrap_or_default();
        let f = automate::form_of(installed, &first)
            .ok_or_else(|| EngineError::Input(format!("app {app_id} has no forms to receive events")))?;
        let table = f.table();
        // What was sent, independent of the order of its keys.
        let sorted: std::collections::BTreeMap<&String, &Value> = clean.iter().collect();
        let sent = serde_json::to_string(&sorted).map_err(StoreError::from)?;
        let request = crate::store::sha256_hex(format!("{name}\n{sent}").as_bytes());
        store.write(|tx| {
            if let Some(key) = key {
                if let Some(kept) = inbound::get(tx, key)? {
                    if kept.event != name || kept.request != request {
                        return Err(EngineError::KeyReused(key.to_string()));
                    }
                    let mut report: EventReport = serde_json::from_str(&kept.report).map_err(StoreError::from)?;
                    report.replayed = true;
                    return Ok(report);
                }
            }
            let session = Session::new(scripts, apps, now);
            let w = Writer { session: &session, tx, f: &f, table: &table, at: &at, actor };
            let cause =
                Cause { key: format!("event/{name}/{at}"), trigger: format!("event {name}"), ..Cause::default() };
            automate::raise(&w, name, &clean, None, &cause)?.map_err(|e| match e {
                // The record the event is for does not exist: nothing is written, and an HTTP
                // caller hears 404.
                automate::Unraised::NoTarget { form, what } => {
                    EngineError::NotFound { form, id: format!("with {what}") }
                }
                automate::Unraised::Other(why) => EngineError::Refused(why),
            })?;
            let runs = session.runs.take();
            let record = runs.iter().find_map(|r| r.record.clone());
            let report = EventReport { event: name.to_string(), record, runs, replayed: false };
            if let Some(key) = key {
                inbound::put(
                    tx,
                    &inbound::Kept {
                        key: key.to_string(),
                        event: name.to_string(),
                        request: request.clone(),
                        report: serde_json::to_string(&report).map_err(StoreError::from)?,
                    },
                    &at,
                )?;
            }
            Ok::<_, EngineError>(report)
        })
    }
}
