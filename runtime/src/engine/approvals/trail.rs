//! The audit events of approval runs: every start, step opened or skipped, delegation,
//! escalation and finish is an event, so `activity`, `history` and metrics see it and
//! `audit verify` (and a sign link) can check the approval tables against it.

use serde_json::{json, Value};

use crate::engine::write::Writer;
use crate::store::{audit, ApprovalRow, NewEvent, StoreError};

/// Appends `kind` about `run`: its id, chain and version, and `extra`'s members.
pub(super) fn note(
    w: &Writer<'_, '_>,
    run: &ApprovalRow,
    actor: &str,
    kind: &str,
    extra: Value,
) -> Result<(), StoreError> {
    let mut body = json!({"approval": run.id, "chain": run.chain, "version": run.version});
    if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra) {
        b.extend(extra);
    }
    audit::append(w.tx, &NewEvent::note(w.at, actor, kind, Some((&run.form, &run.record)), &body.to_string()))?;
    Ok(())
}

/// A step opened: who may decide it and how many approvals it needs (what `audit verify`
/// compares the step's row with).
#[allow(clippy::too_many_arguments)]
pub(super) fn opened(
    w: &Writer<'_, '_>,
    run: &ApprovalRow,
    step: &str,
    index: i64,
    approvers: &[String],
    needed: i64,
    due_at: Option<&str>,
    note_text: Option<&str>,
    signature: bool,
) -> Result<(), StoreError> {
    let mut extra = json!({"step": step, "index": index, "approvers": approvers, "needed": needed});
    if let Some(due) = due_at {
        extra["due_at"] = json!(due);
    }
    if let Some(n) = note_text {
        extra["note"] = json!(n);
    }
    if signature {
        extra["signature"] = json!(true);
    }
    note(w, run, crate::engine::automations::ACTOR, "approval.step_opened", extra)
}
