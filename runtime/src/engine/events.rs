//! External events (`payment.received` from a finance system): checked against the event's
//! fields, matched to their record, and run through the app's automations in one transaction;
//! with the sender's idempotency key, received once however often they are sent.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::automate::{self, Cause, Run};
use super::write::Writer;
use super::{EngineError, Runtime};
use crate::store::{inbound, StoreError};

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
            let f = automate::form_of(installed, &first)
                .ok_or_else(|| EngineError::Input(format!("app {app_id} has no forms to receive events")))?;
            let at = &session.at;
            let w = Writer::new(session, tx, &f, actor);
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
