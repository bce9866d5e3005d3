//! The gate's first stage: may this record change, and may this actor change it this way?
//!
//! A record in a final state, or one its customer signed, never changes, whoever asks (a
//! person, an import, an automation, a score). A person's action checks its states, roles
//! and owner; a person's update checks the form's `edit` rules, field by field.

use serde_json::{Map, Value};

use super::Writer;
use crate::engine::{EngineError, SYSTEM_ACTORS};
use crate::model::{Action, EditRule, Lang};
use crate::store::{audit, signing, RecordRow, StoreError};
use crate::values::{field_name, is_empty, FieldProblem};

/// Refuses any change to a record in a final state or signed by its customer.
pub(super) fn not_final(w: &Writer<'_, '_>, before: &RecordRow) -> Result<(), EngineError> {
    let f = w.f;
    let id = &before.id;
    // Only a form some chain ends in a customer's signature can have signed records. The
    // signature names the version the customer signed: the one number every message uses.
    let signs =
        f.app.app.def.approvals.iter().any(|c| c.form == f.form.id && c.steps.iter().any(|s| s.signature.is_some()));
    if signs {
        if let Some((_, _, version, _)) = signing::signed(w.tx, &f.form.id, id)? {
            return Err(EngineError::Refused(format!(
                "{id} was signed by the customer (version {version}); it can no longer change"
            )));
        }
    }
    if let Some(state) = f.form.states.iter().find(|s| Some(&s.id) == before.state.as_ref()) {
        if state.is_final == Some(true) {
            let label = state.label.as_ref().map(|l| l.get(f.lang()).to_string()).unwrap_or_else(|| state.id.clone());
            return Err(EngineError::Refused(format!(
                "{id} is {label} (`{}`), a final state; it can no longer change",
                state.id
            )));
        }
    }
    Ok(())
}

fn action_label(action: &Action, lang: Lang) -> String {
    action.label.as_ref().map(|l| l.get(lang).to_string()).unwrap_or_else(|| action.id.clone())
}

fn listed(items: &[String]) -> String {
    items.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(" or ")
}

/// An action starts from one of its states, by one of its roles, by the owner when it says so.
pub(super) fn may_act(
    w: &Writer<'_, '_>,
    before: &RecordRow,
    action: &Action,
    roles: &[String],
) -> Result<(), EngineError> {
    let (id, actor) = (&before.id, w.actor);
    let label = action_label(action, w.f.lang());
    let state = before.state.clone().unwrap_or_default();
    if !action.from.contains(&state) {
        return Err(EngineError::Refused(format!(
            "{id} is `{state}`; {label} (`{}`) needs it to be {}",
            action.id,
            listed(&action.from)
        )));
    }
    if !action.roles.is_empty() && !roles.iter().any(|r| action.roles.contains(r)) {
        return Err(EngineError::Refused(format!(
            "`{actor}` may not {label} (`{}`): it needs the role {}",
            action.id,
            listed(&action.roles)
        )));
    }
    if action.owner_only == Some(true) && before.owner.as_deref() != Some(actor) {
        let owner = before.owner.as_deref().unwrap_or("nobody");
        return Err(EngineError::Refused(format!("only the owner of {id} (`{owner}`) may {label} (`{}`)", action.id)));
    }
    Ok(())
}

/// The fields an action requires have values once the action's data is in.
pub(super) fn has_required(w: &Writer<'_, '_>, action: &Action, data: &Map<String, Value>) -> Result<(), EngineError> {
    let lang = w.f.lang();
    let label = action_label(action, lang);
    let missing: Vec<FieldProblem> = action
        .requires
        .iter()
        .filter(|r| is_empty(data.get(*r)))
        .filter_map(|r| w.f.form.field(r))
        .map(|field| {
            FieldProblem::new(
                field.id.clone(),
                "REQUIRED_FOR_ACTION",
                format!("{} is required to {label}", field_name(field, lang)),
            )
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(EngineError::Invalid(missing))
    }
}

/// A person's update is allowed by one of the form's `edit` rules for every field it changes.
/// A form without rules lets any member edit; closeloop's own actors (an import, the API's
/// events) are not people and pass.
pub(super) fn may_edit(
    w: &Writer<'_, '_>,
    before: &RecordRow,
    patch: &Map<String, Value>,
    roles: &[String],
) -> Result<(), EngineError> {
    let form = w.f.form;
    if form.edit.is_empty() || SYSTEM_ACTORS.contains(&w.actor) {
        return Ok(());
    }
    let changed: Vec<&String> = patch
        .iter()
        .filter(|(k, v)| match before.data.get(*k) {
            Some(old) => old != *v,
            None => !v.is_null(),
        })
        .map(|(k, _)| k)
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    let matching: Vec<&EditRule> = form.edit.iter().filter(|r| applies(r, before, w.actor, roles)).collect();
    let (id, actor) = (&before.id, w.actor);
    let state = before.state.as_deref().unwrap_or("-");
    if matching.is_empty() {
        return Err(EngineError::Refused(format!(
            "`{actor}` may not edit {id} while it is `{state}`: {}",
            who_may(&form.edit)
        )));
    }
    let allowed = |field: &str| matching.iter().any(|r| r.fields.is_empty() || r.fields.iter().any(|f| f == field));
    let refused: Vec<&str> = changed.iter().map(|s| s.as_str()).filter(|f| !allowed(f)).collect();
    if !refused.is_empty() {
        let lang = w.f.lang();
        let names: Vec<String> = refused
            .iter()
            .map(|f| form.field(f).map(|fd| format!("{} (`{f}`)", field_name(fd, lang))).unwrap_or(format!("`{f}`")))
            .collect();
        return Err(EngineError::Refused(format!("`{actor}` may not change {} of {id}", names.join(", "))));
    }
    Ok(())
}

fn applies(rule: &EditRule, before: &RecordRow, actor: &str, roles: &[String]) -> bool {
    (rule.roles.is_empty() || roles.iter().any(|r| rule.roles.contains(r)))
        && (rule.owner_only != Some(true) || before.owner.as_deref() == Some(actor))
        && (rule.states.is_empty() || before.state.as_ref().is_some_and(|s| rule.states.contains(s)))
}

/// The form's edit rules in words, for a refusal.
fn who_may(rules: &[EditRule]) -> String {
    let each: Vec<String> = rules
        .iter()
        .map(|r| {
            let mut who = match r.roles.as_slice() {
                [] => "any member".to_string(),
                roles => format!("the role {}", listed(roles)),
            };
            if r.owner_only == Some(true) {
                who.push_str(", as the owner");
            }
            if !r.states.is_empty() {
                who.push_str(&format!(", while {}", listed(&r.states)));
            }
            who
        })
        .collect();
    format!("editing needs {}", each.join("; or "))
}

/// Who may not decide an approval of this record because they wrote a version of it: nobody
/// approves their own edit.
pub(crate) fn authors_barred(
    conn: &crate::store::Reader,
    form: &str,
    record: &str,
) -> Result<Vec<(String, &'static str)>, StoreError> {
    Ok(audit::authors(conn, form, record)?
        .into_iter()
        .filter(|a| !SYSTEM_ACTORS.contains(&a.as_str()))
        .map(|a| (a, "edited it"))
        .collect())
}
