//! Approval chains: a record submitted to a chain walks its steps in order. Each step's
//! approvers come from a role, a named member or the data (the owner's manager); `skip_if`
//! skips a step and says why; a step needs one, all, or N of its approvers; a timeout
//! escalates. Nobody approves a record they created, own, submitted, edited, or already approved
//! at an earlier step, unless the chain allows it; every refusal is in the audit trail. Decisions
//! bind to the version submitted: an edit resets the run. While an approver is away their
//! delegate decides in their place (when the step allows it), and a member of an override role
//! may push a step through with a reason: both are recorded as such.
//!
//! `duties.rs` says who may decide a step (the separation of duties, delegates of away
//! approvers) and what they see; `decide.rs` is the library's approve, reject, recall and
//! override, and the listings; `trail.rs` writes the run's events; `signing.rs` is the
//! customer's signature through a single-use link.

pub(crate) mod decide;
pub(crate) mod duties;
pub(crate) mod messages;
pub(crate) mod page;
pub(crate) mod signing;
pub(crate) mod trail;

pub use signing::{SignLink, Signature};

use crate::engine::automations::StepError;
use serde::Serialize;
use serde_json::{json, Value};

use crate::engine::automations::{self, ACTOR};
use crate::engine::write::{Edit, Writer};
use crate::model::{ApprovalChain, ApprovalMode, ChannelKind};
use crate::store::{
    approvals, outbox, timers, ApprovalRow, ApprovalStatus, OutboxStatus, RecordRow, StepStatus, StoreError, TimerRow,
    TimerStatus,
};
use duties::{excluded, members_for, shown, stand_ins, today};

/// A step waiting for someone, as `closeloop approvals` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waiting {
    /// The record's form.
    pub form: String,
    /// The record.
    pub record: String,
    /// The chain.
    pub chain: String,
    /// The step.
    pub step: String,
    /// Who may decide.
    pub approvers: Vec<String>,
    /// Approvals it needs, and has.
    pub needed: i64,
    /// Approvals given so far.
    pub approved_by: Vec<String>,
    /// When it times out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_at: Option<String>,
    /// The version the decisions bind to.
    pub version: i64,
    /// The absent approver the member asked about would decide for (delegation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    /// The fields the step shows its approvers (`show`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub show: Vec<Shown>,
}

/// A field of the record shown to a step's approvers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shown {
    /// The field.
    pub field: String,
    /// Its label, in the app's language.
    pub label: String,
    /// Its value as a person reads it.
    pub text: String,
}

/// A run's state, step by step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalView {
    /// The chain.
    pub chain: String,
    /// Where the run is.
    pub status: ApprovalStatus,
    /// The version it binds to.
    pub version: i64,
    /// Each step, in order.
    pub steps: Vec<StepView>,
}

/// One step of a run as people read it. (Fields in alphabetical order: the JSON is the same
/// as it always was.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepView {
    /// Whose approvals count so far (the absent approver's seat, for a delegate's decision).
    pub approved_by: Vec<String>,
    /// Who may decide it.
    pub approvers: Vec<String>,
    /// When it times out, if it does.
    pub due_at: Option<String>,
    /// How many approvals it needs.
    pub needed: i64,
    /// Why it is as it is (skipped because…, escalated, a delegate stands in).
    pub note: Option<String>,
    /// Where it is.
    pub status: StepStatus,
    /// The step's id in the chain.
    pub step: String,
}

fn chain_of<'a>(def: &'a crate::model::AppDef, id: &str) -> Option<(usize, &'a ApprovalChain)> {
    def.approvals.iter().enumerate().find(|(_, c)| c.id == id)
}

/// Starts a chain on a record (the `start_approval` step).
pub(crate) fn start(w: &Writer<'_, '_>, chain_id: &str, record: &str) -> Result<String, StepError> {
    let def = &w.f.app.app.def;
    let Some((_, chain)) = chain_of(def, chain_id) else {
        return Err(StepError::Failed(format!("there is no approval chain `{chain_id}`")));
    };
    let Some(row) = w.current(record)? else {
        return Err(StepError::Failed(format!("{record} is gone")));
    };
    let run = ApprovalRow {
        id: 0,
        app: def.app.id.clone(),
        chain: chain.id.clone(),
        form: w.f.form.id.clone(),
        record: record.to_string(),
        version: row.version,
        status: ApprovalStatus::Pending,
        step: 0,
        submitter: w.actor.to_string(),
        started_at: w.at.to_string(),
    };
    let Some(id) = approvals::start(w.tx, &run)? else {
        return Ok(format!("{record} is already in approval"));
    };
    for (i, step) in chain.steps.iter().enumerate() {
        approvals::add_step(w.tx, id, i as i64, &step.id)?;
    }
    let run = ApprovalRow { id, ..run };
    let body = json!({"submitter": w.actor, "steps": chain.steps.len()});
    trail::note(w, &run, w.actor, "approval.started", body)?;
    let said = advance(w, chain, &run, 0)?;
    // Every step skipped: the chain ended approved as it started.
    ended(w, chain, &run, ApprovalStatus::Approved, None)?;
    Ok(said)
}

/// Opens the first step from `from` that is not skipped; finishes the run when none is left.
fn advance(w: &Writer<'_, '_>, chain: &ApprovalChain, run: &ApprovalRow, from: usize) -> Result<String, StepError> {
    let lang = w.f.lang();
    let Some(row) = w.current(&run.record)? else {
        return Err(StepError::Failed(format!("{} is gone", run.record)));
    };
    let mut said = Vec::new();
    for (i, step) in chain.steps.iter().enumerate().skip(from) {
        let label = step.label.as_ref().map(|l| l.get(lang).to_string()).unwrap_or_else(|| step.id.clone());
        let opened = if step.signature.is_some() {
            open_signature(w, chain, run, step, i as i64)?
        } else if let Some(why) = skipped(w, chain, run, &row, step, i)? {
            said.push(format!("{label}: skipped ({why})"));
            continue;
        } else {
            open_step(w, chain, run, &row, step, i as i64, &label)?
        };
        said.push(format!("{label}: {opened}"));
        return Ok(said.join("; "));
    }
    // Every step left was skipped: the run is approved.
    approvals::set_run(w.tx, run.id, ApprovalStatus::Approved, chain.steps.len() as i64, Some(w.at))?;
    trail::note(w, run, ACTOR, "approval.finished", json!({"status": ApprovalStatus::Approved}))?;
    set_state(w, &run.record, "approved", chain)?;
    said.push("approved".into());
    Ok(said.join("; "))
}

/// The customer's signature step opens: the run waits there and the record is `approved`.
fn open_signature(
    w: &Writer<'_, '_>,
    chain: &ApprovalChain,
    run: &ApprovalRow,
    step: &crate::model::ApprovalStep,
    index: i64,
) -> Result<String, StepError> {
    let why = "waiting for the customer's signature";
    approvals::set_step(w.tx, run.id, index, StepStatus::Open, &[], 0, w.at, None, Some(why))?;
    approvals::set_run(w.tx, run.id, ApprovalStatus::Pending, index, None)?;
    trail::opened(w, run, &step.id, index, &[], 0, None, Some(why), true)?;
    set_state(w, &run.record, "approved", chain)?;
    Ok(why.to_string())
}

/// Skips step `i` when its `skip_if` holds for the record, and says why.
fn skipped(
    w: &Writer<'_, '_>,
    chain: &ApprovalChain,
    run: &ApprovalRow,
    row: &RecordRow,
    step: &crate::model::ApprovalStep,
    i: usize,
) -> Result<Option<String>, StepError> {
    let Some(condition) = &step.skip_if else { return Ok(None) };
    let rules = w.rules(row.state.as_deref(), &[]);
    let chain_index = w.f.app.app.def.approvals.iter().position(|c| c.id == chain.id).unwrap_or(0);
    if !rules.holds(condition, &row.data, &format!("/approvals/{chain_index}/steps/{i}/skip_if")) {
        return Ok(None);
    }
    let why = skip_reason(condition, row);
    approvals::set_step(w.tx, run.id, i as i64, StepStatus::Skipped, &[], 0, w.at, None, Some(&why))?;
    let body = json!({"step": step.id, "index": i, "reason": why});
    trail::note(w, run, ACTOR, "approval.step_skipped", body)?;
    Ok(Some(why))
}

/// Opens an approver step: who may decide (the separation of duties applied, escalated at
/// once when nobody else may), how many must, its timeout, stand-ins for the away, and the
/// messages that tell them. Says what it did.
#[allow(clippy::too_many_arguments)]
fn open_step(
    w: &Writer<'_, '_>,
    chain: &ApprovalChain,
    run: &ApprovalRow,
    row: &RecordRow,
    step: &crate::model::ApprovalStep,
    index: i64,
    label: &str,
) -> Result<String, StepError> {
    let barred = if chain.allow_self_approval == Some(true) { Vec::new() } else { excluded(w.tx, row, run)? };
    let allowed = |list: Vec<String>| -> Vec<String> {
        list.into_iter().filter(|m| !barred.iter().any(|(b, _)| b == m)).collect()
    };
    let mut note = None;
    let mut approvers = match &step.approver {
        Some(r) => allowed(members_for(w, r, row)?),
        None => Vec::new(),
    };
    if approvers.is_empty() {
        if let Some(r) = &step.escalate_to {
            approvers = allowed(members_for(w, r, row)?);
            note = Some("nobody else could approve: escalated at once".to_string());
        }
    }
    if approvers.is_empty() {
        let why = "nobody may approve this step (the approvers are the submitter, creator, owner or earlier approvers)";
        approvals::set_step(w.tx, run.id, index, StepStatus::Open, &[], 0, w.at, None, Some(why))?;
        approvals::set_run(w.tx, run.id, ApprovalStatus::Pending, index, None)?;
        trail::opened(w, run, &step.id, index, &[], 0, None, Some(why), false)?;
        return Ok(why.to_string());
    }
    let needed = match step.mode {
        Some(ApprovalMode::All) => approvers.len() as i64,
        Some(ApprovalMode::NOfM) => i64::from(step.n.unwrap_or(1)).clamp(1, approvers.len() as i64),
        _ => 1,
    };
    let due = step.timeout.as_deref().and_then(|t| automations::moment(&w.f.app.calendar, w.at, Some(t), None));
    // The directory is copied only for a step that may have stand-ins.
    let team = if step.allow_delegation == Some(true) {
        w.session.assign.borrow_mut().team(w.tx)?.to_vec()
    } else {
        Vec::new()
    };
    let stand = stand_ins(&team, Some(step), &approvers, &today(w.f, w.session.now), &barred);
    let away_until = |absent: &String| team.iter().find(|t| &t.id == absent).and_then(|t| t.away_until.clone());
    for (absent, delegate) in &stand {
        let said = format!(
            "{absent} is away until {}: {delegate} decides in their place",
            away_until(absent).unwrap_or_default()
        );
        note = Some(match note {
            Some(n) => format!("{n}; {said}"),
            None => said,
        });
    }
    approvals::set_step(
        w.tx,
        run.id,
        index,
        StepStatus::Open,
        &approvers,
        needed,
        w.at,
        due.as_deref(),
        note.as_deref(),
    )?;
    approvals::set_run(w.tx, run.id, ApprovalStatus::Pending, index, None)?;
    trail::opened(w, run, &step.id, index, &approvers, needed, due.as_deref(), note.as_deref(), false)?;
    for (absent, delegate) in &stand {
        let body = json!({"step": step.id, "index": index, "on_behalf_of": absent, "delegate": delegate,
                          "until": away_until(absent)});
        trail::note(w, run, ACTOR, "approval.delegated", body)?;
    }
    if let Some(due) = &due {
        arm_timeout(w, chain, run, index, due)?;
    }
    tell_opened(w, run, row, step, index, label, &approvers, &stand)?;
    Ok(format!("open for {} (needs {needed})", approvers.join(", ")))
}

/// The timer that escalates a step left past its timeout.
fn arm_timeout(
    w: &Writer<'_, '_>,
    chain: &ApprovalChain,
    run: &ApprovalRow,
    index: i64,
    due: &str,
) -> Result<(), StoreError> {
    let timer = TimerRow {
        id: 0,
        app: run.app.clone(),
        automation: chain.id.clone(),
        kind: timers::kind::APPROVAL.into(),
        form: Some(run.form.clone()),
        record: Some(run.record.clone()),
        due: due.to_string(),
        anchor: None,
        payload: Some(json!({"approval": run.id, "step": index}).to_string()),
        status: TimerStatus::Pending,
    };
    timers::insert(w.tx, &timer, w.at)?;
    Ok(())
}

/// Tells a step's approvers (and the delegates of the away) that it waits for them, with the
/// fields the step shows, except sensitive ones.
#[allow(clippy::too_many_arguments)]
fn tell_opened(
    w: &Writer<'_, '_>,
    run: &ApprovalRow,
    row: &RecordRow,
    step: &crate::model::ApprovalStep,
    index: i64,
    label: &str,
    approvers: &[String],
    stand: &[(String, String)],
) -> Result<(), StoreError> {
    // A sensitive value (a floor price) is for `closeloop approvals`, not a chat message.
    let shown: Vec<(String, String)> = shown(w.f, step, &row.data)
        .into_iter()
        .filter(|(field, sensitive)| !sensitive && !field.text.is_empty())
        // A field only some roles see (a risk grade, a floor price) is for their inbox, not a chat.
        .filter(|(field, _)| w.f.form.field(&field.field).is_none_or(|fd| fd.read_roles.is_empty()))
        .map(|(field, _)| (field.label, field.text))
        .collect();
    let mut about = messages::About { row, step: label, shown, on_behalf_of: None };
    tell(w, run, index, approvers, ("approval_needed", &messages::render(w, "approval_needed", &about)))?;
    for (absent, delegate) in stand {
        about.on_behalf_of = Some(absent);
        let text = messages::render(w, "approval_needed", &about);
        tell(w, run, index, std::slice::from_ref(delegate), ("approval_needed", &text))?;
    }
    Ok(())
}

/// The decision that ended a run, as its chain's `on_approved` / `on_rejected` messages see it:
/// `decision` (`approved`, `rejected` or `signed`), `step`, `decided_by` (the member, or the
/// customer's name as signed), `on_behalf_of` (a delegate's absent approver, or null) and
/// `comment` (or null).
pub(crate) fn decision(
    kind: ApprovalStatus,
    step: &str,
    by: &str,
    on_behalf_of: Option<&str>,
    comment: Option<&str>,
) -> serde_json::Map<String, Value> {
    let mut d = serde_json::Map::new();
    d.insert("decision".into(), json!(kind));
    d.insert("step".into(), json!(step));
    d.insert("decided_by".into(), json!(by));
    d.insert("on_behalf_of".into(), json!(on_behalf_of));
    d.insert("comment".into(), json!(comment.map(str::trim).filter(|c| !c.is_empty())));
    d
}

/// Runs a chain's `on_approved` (`approved`) or `on_rejected` hooks for its run, with the
/// decision that ended it for their messages. `on_approved` runs only once the run is approved:
/// its last approver step decided (or every step skipped); a chain ending in a customer's
/// signature runs it when signed (signing.rs).
pub(crate) fn ended(
    w: &Writer<'_, '_>,
    chain: &ApprovalChain,
    run: &ApprovalRow,
    outcome: ApprovalStatus,
    decision: Option<serde_json::Map<String, Value>>,
) -> Result<(), StoreError> {
    let ci = w.f.app.app.def.approvals.iter().position(|c| c.id == chain.id).unwrap_or(0);
    let (list, hook) = match outcome {
        ApprovalStatus::Approved => (&chain.on_approved, "on_approved"),
        _ => (&chain.on_rejected, "on_rejected"),
    };
    if list.is_empty() {
        return Ok(());
    }
    if outcome == ApprovalStatus::Approved
        && approvals::get(w.tx, run.id)?.is_none_or(|r| r.status != ApprovalStatus::Approved)
    {
        return Ok(());
    }
    let steps = automations::Steps {
        name: format!("{}.{hook}", chain.id),
        list,
        pointer: format!("/approvals/{ci}/{hook}"),
        automation: None,
    };
    let cause = automations::Cause {
        key: format!("approval/{}/{outcome}", run.id),
        trigger: format!("approval {outcome}"),
        decision,
        ..automations::Cause::default()
    };
    automations::run_steps(w, &steps, Some(&run.record), &cause, 0)?;
    Ok(())
}

fn skip_reason(c: &crate::model::Condition, row: &RecordRow) -> String {
    match c.kind() {
        Ok(crate::model::ConditionKind::Compare(field, op)) => {
            let shown = row.data.get(field).map(|v| v.to_string()).unwrap_or_else(|| "empty".into());
            format!("`{field}` is {shown} (skip_if {})", op.as_str())
        }
        _ => "its skip_if holds".into(),
    }
}

/// Tells members through the app's first messaging channel, keyed so it is sent once.
/// Queues an approval message (`message`: its id) for each member; its first line is the subject.
fn tell(
    w: &Writer<'_, '_>,
    run: &ApprovalRow,
    step: i64,
    members: &[String],
    (message, text): (&str, &str),
) -> Result<(), StoreError> {
    let def = &w.f.app.app.def;
    let channel = def.channels.iter().find(|c| c.kind != ChannelKind::Log).or(def.channels.first());
    let Some(channel) = channel else { return Ok(()) };
    let team = w.session.assign.borrow_mut().team(w.tx)?.to_vec();
    for m in members {
        let member = team.iter().find(|t| &t.id == m);
        let address = member.and_then(|t| crate::engine::delivery::notify::address_for(t, channel.kind));
        let row = crate::store::OutboxRow {
            id: 0,
            channel: channel.id.clone(),
            recipient: m.clone(),
            address,
            message: message.into(),
            subject: text.lines().next().map(str::to_string),
            body: text.to_string(),
            key: format!("approval/{}/step/{step}/{}/{m}", run.id, w.at),
            form: Some(run.form.clone()),
            record: Some(run.record.clone()),
            status: OutboxStatus::Pending,
            attempts: 0,
            created_at: w.at.to_string(),
        };
        outbox::push(w.tx, &row)?;
    }
    Ok(())
}

/// Moves the record to a state of its form, if the form has it.
fn set_state(w: &Writer<'_, '_>, record: &str, state: &str, chain: &ApprovalChain) -> Result<(), StoreError> {
    if !w.f.form.states.iter().any(|s| s.id == state) {
        return Ok(());
    }
    let Some(current) = w.current(record)? else { return Ok(()) };
    if current.state.as_deref() == Some(state) {
        return Ok(());
    }
    let patch = serde_json::Map::new();
    let edit = Edit { state: Some(state), ..Edit::by_closeloop(&patch, ("approval", json!(chain.id))) };
    match w.as_actor(ACTOR).change(current, edit) {
        Ok(_) => Ok(()),
        Err(crate::engine::EngineError::Store(e)) => Err(e),
        // The gate refused: the record became final meanwhile (a quote expired while in
        // approval). Its state stays; the run's own rows still hold the decision.
        Err(_) => Ok(()),
    }
}

/// Cancels a run's steps that are still open or waiting, with a note why; returns their ids.
pub(super) fn cancel_undecided(
    w: &Writer<'_, '_>,
    run: &ApprovalRow,
    steps: &[crate::store::StepRow],
    why: &str,
) -> Result<Vec<String>, StoreError> {
    let mut cancelled = Vec::new();
    for s in steps.iter().filter(|s| matches!(s.status, StepStatus::Open | StepStatus::Waiting)) {
        let (approvers, needed) = (&s.approvers, s.needed);
        approvals::set_step(w.tx, run.id, s.step, StepStatus::Cancelled, approvers, needed, w.at, None, Some(why))?;
        cancelled.push(s.step_id.clone());
    }
    Ok(cancelled)
}

/// After an edit of a record in approval: a change of its data resets the run (decisions bind
/// to the version submitted) and tells its approvers.
pub(crate) fn on_edit(w: &Writer<'_, '_>, before: &RecordRow, after: &RecordRow) -> Result<(), StoreError> {
    // Most forms have no chain: no query on their writes.
    let chained = w.f.app.app.def.approvals.iter().any(|c| c.form == w.f.form.id);
    if !chained || before.data == after.data {
        return Ok(());
    }
    let Some(run) = approvals::pending(w.tx, &w.f.form.id, &after.id)? else { return Ok(()) };
    let Some((_, chain)) = chain_of(&w.f.app.app.def, &run.chain) else { return Ok(()) };
    if chain.reset_on_edit == Some(false) {
        return Ok(());
    }
    let steps = approvals::steps(w.tx, run.id)?;
    let mut told = Vec::new();
    for s in steps.iter().filter(|s| matches!(s.status, StepStatus::Open | StepStatus::Approved)) {
        told.extend(s.approvers.iter().cloned());
    }
    let cancelled = cancel_undecided(w, &run, &steps, "the record changed")?;
    approvals::set_run(w.tx, run.id, ApprovalStatus::Reset, run.step, Some(w.at))?;
    told.sort();
    told.dedup();
    let about = messages::About { row: after, step: &run.chain, shown: Vec::new(), on_behalf_of: None };
    tell(w, &run, -1, &told, ("approval_reset", &messages::render(w, "approval_reset", &about)))?;
    let body = json!({"from_version": run.version, "to_version": after.version, "cancelled": cancelled});
    trail::note(w, &run, ACTOR, "approval.reset", body)?;
    // The record follows its run back, to be submitted again: to the chain's `on_reset` state,
    // else the form's initial state. A write that moved it itself (an action) decides instead.
    if before.state == after.state {
        let back = chain.on_reset.as_ref().and_then(|r| r.state.as_deref());
        if let Some(state) = back.or_else(|| w.f.form.initial_state().map(|s| s.id.as_str())) {
            set_state(w, &after.id, state, chain)?;
        }
    }
    Ok(())
}

/// A step's timeout: escalate to `escalate_to` (or the approvers' managers), once.
pub(crate) fn escalate(w: &Writer<'_, '_>, approval: i64, step: i64) -> Result<String, StepError> {
    let Some(run) = approvals::get(w.tx, approval)? else {
        return Err(StepError::Failed(format!("no approval {approval}")));
    };
    let Some(s) = approvals::steps(w.tx, approval)?.into_iter().find(|s| s.step == step) else {
        return Err(StepError::Failed(format!("no step {step}")));
    };
    if run.status != ApprovalStatus::Pending || run.step != step || s.status != StepStatus::Open {
        return Ok("decided in time; nothing to escalate".into());
    }
    let Some((_, chain)) = chain_of(&w.f.app.app.def, &run.chain) else {
        return Err(StepError::Failed("the chain is gone".into()));
    };
    let Some(def) = chain.steps.get(step as usize) else { return Err(StepError::Failed("the step is gone".into())) };
    let Some(row) = w.current(&run.record)? else {
        return Err(StepError::Failed(format!("{} is gone", run.record)));
    };
    let mut added = match &def.escalate_to {
        Some(r) => members_for(w, r, &row)?,
        None => {
            let team = w.session.assign.borrow_mut().team(w.tx)?.to_vec();
            s.approvers
                .iter()
                .filter_map(|a| team.iter().find(|t| &t.id == a).and_then(|t| t.manager.clone()))
                .collect()
        }
    };
    let barred = if chain.allow_self_approval == Some(true) { Vec::new() } else { excluded(w.tx, &row, &run)? };
    added.retain(|m| !s.approvers.contains(m) && !barred.iter().any(|(b, _)| b == m));
    added.sort();
    added.dedup();
    if added.is_empty() {
        return Ok("timed out; nobody to escalate to".into());
    }
    let mut approvers = s.approvers.clone();
    approvers.extend(added.iter().cloned());
    let note = format!("timed out; escalated to {}", added.join(", "));
    approvals::set_step(w.tx, approval, step, StepStatus::Open, &approvers, s.needed, w.at, None, Some(&note))?;
    let body = json!({"step": s.step_id, "index": step, "added": added, "approvers": approvers, "needed": s.needed});
    trail::note(w, &run, ACTOR, "approval.escalated", body)?;
    let label = def.label.as_ref().map(|l| l.get(w.f.lang()).to_string()).unwrap_or_else(|| def.id.clone());
    let about = messages::About { row: &row, step: &label, shown: Vec::new(), on_behalf_of: None };
    tell(w, &run, step, &added, ("approval_escalated", &messages::render(w, "approval_escalated", &about)))?;
    Ok(note)
}

/// Fires an approval timeout timer.
pub(crate) fn fire_timeout(w: &Writer<'_, '_>, timer: &TimerRow) -> Result<String, StepError> {
    let payload: Value = timer.payload.as_deref().and_then(|p| serde_json::from_str(p).ok()).unwrap_or_default();
    let (Some(approval), Some(step)) = (payload["approval"].as_i64(), payload["step"].as_i64()) else {
        return Err(StepError::Failed("the timer's payload is unreadable".into()));
    };
    escalate(w, approval, step)
}
