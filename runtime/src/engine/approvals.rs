//! Approval chains: a record submitted to a chain walks its steps in order. Each step's
//! approvers come from a role, a named member or the data (the owner's manager); `skip_if`
//! skips a step and says why; a step needs one, all, or N of its approvers; a timeout
//! escalates. Nobody approves a record they created, own, submitted, or already approved at an
//! earlier step, unless the chain allows it; every refusal is in the audit trail. Decisions
//! bind to the version submitted: an edit resets the run. While an approver is away their
//! delegate decides in their place (when the step allows it), and a member of an override role
//! may push a step through with a reason: both are recorded as such.

use serde::Serialize;
use serde_json::{json, Value};

use super::automate::{self, Cause, Steps, ACTOR};
use super::records::Writer;
use super::rules::Rules;
use super::FormRef;
use super::{EngineError, Runtime};
use crate::model::{ApprovalChain, ApprovalMode, ApprovalStep, ChannelKind};
use crate::store::{
    approvals, audit, members, outbox, records, timers, ApprovalRow, MemberRow, NewEvent, RecordRow, StoreError,
    TimerRow,
};

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
    /// `pending`, `approved`, `rejected`, `recalled` or `reset`.
    pub status: String,
    /// The version it binds to.
    pub version: i64,
    /// Each step: id, status, approvers, note.
    pub steps: Vec<Value>,
}

fn chain_of<'a>(def: &'a crate::model::AppDef, id: &str) -> Option<(usize, &'a ApprovalChain)> {
    def.approvals.iter().enumerate().find(|(_, c)| c.id == id)
}

/// Who may not approve this record at this run: its creator, owner, submitter and earlier
/// approvers (separation of duties).
fn excluded(
    conn: &rusqlite::Connection,
    row: &RecordRow,
    run: &ApprovalRow,
) -> Result<Vec<(String, &'static str)>, StoreError> {
    let mut out = vec![(row.created_by.clone(), "created it"), (run.submitter.clone(), "submitted it")];
    if let Some(owner) = &row.owner {
        out.push((owner.clone(), "owns it"));
    }
    for m in approvals::approvers_so_far(conn, run.id)? {
        out.push((m, "approved an earlier step"));
    }
    Ok(out)
}

/// Who stands in for whom on a step today: each approver who is away and named a delegate who
/// is active, not away too, qualifies as the approver does, is not barred from the record and
/// is not an approver of the step already (nobody fills two seats); none where the step does
/// not allow delegation. One hop: a delegate's own delegate is not asked.
///
/// Qualifying: where the approver holds one of the step's roles (`approver` or `escalate_to`
/// by role), the delegate must hold one of those too; an approver named by position (the
/// owner's manager, a member) is stood in for by someone sharing one of their roles.
fn stand_ins(
    team: &[MemberRow],
    step: Option<&ApprovalStep>,
    approvers: &[String],
    today: &str,
    barred: &[(String, &'static str)],
) -> Vec<(String, String)> {
    let Some(step) = step.filter(|s| s.allow_delegation == Some(true)) else { return Vec::new() };
    let step_roles: Vec<&str> = [&step.approver, &step.escalate_to]
        .into_iter()
        .filter_map(|r| match r {
            Some(crate::model::Recipient::Role(role)) => Some(role.as_str()),
            _ => None,
        })
        .collect();
    approvers
        .iter()
        .filter_map(|a| {
            let absent = team.iter().find(|t| &t.id == a).filter(|t| t.away_on(today))?;
            let delegate = team.iter().find(|t| Some(t.id.as_str()) == absent.delegate_to.as_deref())?;
            let by_step: Vec<&String> = absent.roles.iter().filter(|r| step_roles.contains(&r.as_str())).collect();
            let qualifies = if by_step.is_empty() {
                delegate.roles.iter().any(|r| absent.roles.contains(r))
            } else {
                delegate.roles.iter().any(|r| by_step.contains(&r))
            };
            let fit = delegate.active
                && !delegate.away_on(today)
                && qualifies
                && !barred.iter().any(|(b, _)| b == &delegate.id)
                && !approvers.contains(&delegate.id);
            fit.then(|| (a.clone(), delegate.id.clone()))
        })
        .collect()
}

/// Today in the app's zone, as `YYYY-MM-DD`: absences are whole days.
fn today(f: &FormRef<'_>, now: jiff::Timestamp) -> String {
    now.to_zoned(f.time_zone()).date().to_string()
}

/// The fields a step shows its approvers, as they read them.
fn shown(f: &FormRef<'_>, step: &ApprovalStep, data: &serde_json::Map<String, Value>) -> Vec<(Shown, bool)> {
    let lang = f.lang();
    step.show
        .iter()
        .filter_map(|id| {
            let field = f.form.field(id)?;
            let text = data.get(id).map(|v| crate::values::display(field, v, lang)).unwrap_or_default();
            let label = crate::values::field_name(field, lang);
            Some((Shown { field: id.clone(), label, text }, field.sensitive == Some(true)))
        })
        .collect()
}

/// Starts a chain on a record (the `start_approval` step).
pub(crate) fn start(w: &Writer<'_, '_>, chain_id: &str, record: &str) -> Result<Result<String, String>, StoreError> {
    let def = &w.f.app.app.def;
    let Some((_, chain)) = chain_of(def, chain_id) else {
        return Ok(Err(format!("there is no approval chain `{chain_id}`")));
    };
    let Some(row) = automate::current(w, record)? else { return Ok(Err(format!("{record} is gone"))) };
    let run = ApprovalRow {
        id: 0,
        app: def.app.id.clone(),
        chain: chain.id.clone(),
        form: w.f.form.id.clone(),
        record: record.to_string(),
        version: row.version,
        status: "pending".into(),
        step: 0,
        submitter: w.actor.to_string(),
        started_at: w.at.to_string(),
    };
    let Some(id) = approvals::start(w.tx, &run)? else {
        return Ok(Ok(format!("{record} is already in approval")));
    };
    for (i, step) in chain.steps.iter().enumerate() {
        approvals::add_step(w.tx, id, i as i64, &step.id)?;
    }
    let run = ApprovalRow { id, ..run };
    advance(w, chain, &run, 0)
}

/// Opens the first step from `from` that is not skipped; finishes the run when none is left.
fn advance(
    w: &Writer<'_, '_>,
    chain: &ApprovalChain,
    run: &ApprovalRow,
    from: usize,
) -> Result<Result<String, String>, StoreError> {
    let lang = w.f.lang();
    let Some(row) = automate::current(w, &run.record)? else { return Ok(Err(format!("{} is gone", run.record))) };
    let mut said = Vec::new();
    for (i, step) in chain.steps.iter().enumerate().skip(from) {
        let index = i as i64;
        let label = step.label.as_ref().map(|l| l.get(lang).to_string()).unwrap_or_else(|| step.id.clone());
        if step.signature.is_some() {
            approvals::set_step(
                w.tx,
                run.id,
                index,
                "open",
                &[],
                0,
                w.at,
                None,
                Some("waiting for the customer's signature"),
            )?;
            approvals::set_run(w.tx, run.id, "pending", index, None)?;
            set_state(w, &run.record, "approved", chain)?;
            said.push(format!("{label}: waiting for the customer's signature"));
            return Ok(Ok(said.join("; ")));
        }
        if let Some(condition) = &step.skip_if {
            let rules = Rules {
                f: *w.f,
                apps: w.session.apps,
                scripts: w.session.scripts,
                state: row.state.as_deref(),
                roles: &[],
                key_checked: true,
            };
            let pointer = format!(
                "/approvals/{}/steps/{i}/skip_if",
                w.f.app.app.def.approvals.iter().position(|c| c.id == chain.id).unwrap_or(0)
            );
            if rules.holds(condition, &row.data, &pointer) {
                let why = skip_reason(condition, &row);
                approvals::set_step(w.tx, run.id, index, "skipped", &[], 0, w.at, None, Some(&why))?;
                said.push(format!("{label}: skipped ({why})"));
                continue;
            }
        }
        let no_sod = chain.allow_self_approval == Some(true);
        let barred = if no_sod { Vec::new() } else { excluded(w.tx, &row, run)? };
        let allowed = |list: Vec<String>| -> Vec<String> {
            list.into_iter().filter(|m| !barred.iter().any(|(b, _)| b == m)).collect()
        };
        let mut note = None;
        let mut approvers = match &step.approver {
            Some(r) => allowed(members_for(w, r, &row)?),
            None => Vec::new(),
        };
        if approvers.is_empty() {
            if let Some(r) = &step.escalate_to {
                approvers = allowed(members_for(w, r, &row)?);
                note = Some("nobody else could approve: escalated at once".to_string());
            }
        }
        if approvers.is_empty() {
            let why =
                "nobody may approve this step (the approvers are the submitter, creator, owner or earlier approvers)";
            approvals::set_step(w.tx, run.id, index, "open", &[], 0, w.at, None, Some(why))?;
            approvals::set_run(w.tx, run.id, "pending", index, None)?;
            said.push(format!("{label}: {why}"));
            return Ok(Ok(said.join("; ")));
        }
        let needed = match step.mode {
            Some(ApprovalMode::All) => approvers.len() as i64,
            Some(ApprovalMode::NOfM) => i64::from(step.n.unwrap_or(1)).clamp(1, approvers.len() as i64),
            _ => 1,
        };
        let due = step.timeout.as_deref().and_then(|t| automate::moment(&w.f.app.calendar, w.at, Some(t), None));
        let team = w.session.assign.borrow_mut().team(w.tx)?.to_vec();
        let stand = stand_ins(&team, Some(step), &approvers, &today(w.f, w.session.now), &barred);
        for (absent, delegate) in &stand {
            let until = team.iter().find(|t| &t.id == absent).and_then(|t| t.away_until.clone());
            let said =
                format!("{absent} is away until {}: {delegate} decides in their place", until.unwrap_or_default());
            note = Some(match note {
                Some(n) => format!("{n}; {said}"),
                None => said,
            });
        }
        approvals::set_step(w.tx, run.id, index, "open", &approvers, needed, w.at, due.as_deref(), note.as_deref())?;
        approvals::set_run(w.tx, run.id, "pending", index, None)?;
        if let Some(due) = &due {
            let timer = TimerRow {
                id: 0,
                app: run.app.clone(),
                automation: chain.id.clone(),
                kind: timers::kind::APPROVAL.into(),
                form: Some(run.form.clone()),
                record: Some(run.record.clone()),
                due: due.clone(),
                anchor: None,
                payload: Some(json!({"approval": run.id, "step": index}).to_string()),
                status: "pending".into(),
            };
            timers::insert(w.tx, &timer, w.at)?;
        }
        let mut text = format!("待审批 / Approval needed: {} {} — {label}", run.form, run.record);
        for (field, sensitive) in shown(w.f, step, &row.data) {
            // A sensitive value (a floor price) is for `closeloop approvals`, not a chat message.
            if !sensitive && !field.text.is_empty() {
                text.push_str(&format!("\n{}: {}", field.label, field.text));
            }
        }
        tell(w, run, index, &approvers, &text)?;
        for (absent, delegate) in &stand {
            tell(
                w,
                run,
                index,
                std::slice::from_ref(delegate),
                &format!("{text}\n代 {absent} 审批 / on behalf of {absent}"),
            )?;
        }
        said.push(format!("{label}: open for {} (needs {needed})", approvers.join(", ")));
        return Ok(Ok(said.join("; ")));
    }
    approvals::set_run(w.tx, run.id, "approved", chain.steps.len() as i64, Some(w.at))?;
    set_state(w, &run.record, "approved", chain)?;
    said.push("approved".into());
    Ok(Ok(said.join("; ")))
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

/// The active members a recipient names (a role, a member, the owner's manager).
fn members_for(w: &Writer<'_, '_>, r: &crate::model::Recipient, row: &RecordRow) -> Result<Vec<String>, StoreError> {
    let mut cache = w.session.assign.borrow_mut();
    let team = cache.team(w.tx)?;
    Ok(automate::recipients(team, r, &row.data, ChannelKind::Log)
        .map(|v| v.into_iter().map(|(m, _)| m).filter(|m| m != "customer").collect())
        .unwrap_or_default())
}

/// Tells members through the app's first messaging channel, keyed so it is sent once.
fn tell(w: &Writer<'_, '_>, run: &ApprovalRow, step: i64, members: &[String], text: &str) -> Result<(), StoreError> {
    let def = &w.f.app.app.def;
    let channel = def.channels.iter().find(|c| c.kind != ChannelKind::Log).or(def.channels.first());
    let Some(channel) = channel else { return Ok(()) };
    let team = w.session.assign.borrow_mut().team(w.tx)?.to_vec();
    for m in members {
        let member = team.iter().find(|t| &t.id == m);
        let address = member.and_then(|t| automate::address_for(t, channel.kind));
        let row = crate::store::OutboxRow {
            id: 0,
            channel: channel.id.clone(),
            recipient: m.clone(),
            address,
            message: "approval".into(),
            subject: Some(text.to_string()),
            body: text.to_string(),
            key: format!("approval/{}/step/{step}/{}/{m}", run.id, w.at),
            form: Some(run.form.clone()),
            record: Some(run.record.clone()),
            status: "pending".into(),
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
    let Some(current) = automate::current(w, record)? else { return Ok(()) };
    if current.state.as_deref() == Some(state) {
        return Ok(());
    }
    let data = current.data.clone();
    let writer = Writer { actor: ACTOR, ..*w };
    let _ = writer.version(
        current,
        data,
        Some(state.to_string()),
        "record.updated",
        Some(("approval", json!(chain.id))),
    )?;
    Ok(())
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
    for s in &steps {
        if s.status == "open" || s.status == "approved" {
            told.extend(s.approvers.iter().cloned());
        }
        if s.status == "open" || s.status == "waiting" {
            approvals::set_step(
                w.tx,
                run.id,
                s.step,
                "cancelled",
                &s.approvers,
                s.needed,
                w.at,
                None,
                Some("the record changed"),
            )?;
        }
    }
    approvals::set_run(w.tx, run.id, "reset", run.step, Some(w.at))?;
    told.sort();
    told.dedup();
    let text = format!(
        "{} {} 已修改为第 {} 版，审批已重置 / changed to version {}; its approvals were reset",
        run.form, run.record, after.version, after.version
    );
    tell(w, &run, -1, &told, &text)?;
    let body =
        json!({"approval": run.id, "chain": run.chain, "from_version": run.version, "to_version": after.version})
            .to_string();
    audit::append(w.tx, &NewEvent::note(w.at, ACTOR, "approval.reset", Some((&run.form, &run.record)), &body))?;
    Ok(())
}

/// A step's timeout: escalate to `escalate_to` (or the approvers' managers), once.
pub(crate) fn escalate(w: &Writer<'_, '_>, approval: i64, step: i64) -> Result<Result<String, String>, StoreError> {
    let Some(run) = approvals::get(w.tx, approval)? else { return Ok(Err(format!("no approval {approval}"))) };
    let Some(s) = approvals::steps(w.tx, approval)?.into_iter().find(|s| s.step == step) else {
        return Ok(Err(format!("no step {step}")));
    };
    if run.status != "pending" || run.step != step || s.status != "open" {
        return Ok(Ok("decided in time; nothing to escalate".into()));
    }
    let Some((_, chain)) = chain_of(&w.f.app.app.def, &run.chain) else { return Ok(Err("the chain is gone".into())) };
    let Some(def) = chain.steps.get(step as usize) else { return Ok(Err("the step is gone".into())) };
    let Some(row) = automate::current(w, &run.record)? else { return Ok(Err(format!("{} is gone", run.record))) };
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
        return Ok(Ok("timed out; nobody to escalate to".into()));
    }
    let mut approvers = s.approvers.clone();
    approvers.extend(added.iter().cloned());
    let note = format!("timed out; escalated to {}", added.join(", "));
    approvals::set_step(w.tx, approval, step, "open", &approvers, s.needed, w.at, None, Some(&note))?;
    tell(
        w,
        &run,
        step,
        &added,
        &format!("审批超时，请处理 / Overdue approval escalated to you: {} {}", run.form, run.record),
    )?;
    Ok(Ok(note))
}

/// Why a decision was refused, to record and return.
enum Verdict {
    Done,
    Refused(String),
}

impl Runtime {
    /// Approves the step in hand for `actor`.
    pub fn approve(
        &mut self,
        form: &str,
        id: &str,
        actor: &str,
        comment: Option<&str>,
    ) -> Result<ApprovalView, EngineError> {
        self.decide(form, id, actor, "approve", comment, None)
    }

    /// Pushes the step in hand through as `actor`, a member of one of the chain's
    /// `override_roles`, setting aside the separation of duties and the step's approver list
    /// (break-glass). The reason is required; an `approval.override` event records it and the
    /// rules set aside, and the step is approved whatever its mode.
    pub fn approve_override(
        &mut self,
        form: &str,
        id: &str,
        actor: &str,
        reason: &str,
        comment: Option<&str>,
    ) -> Result<ApprovalView, EngineError> {
        if reason.trim().is_empty() {
            return Err(EngineError::Input("an override needs a reason saying why (--override REASON)".into()));
        }
        self.decide(form, id, actor, "approve", comment, Some(reason.trim()))
    }

    /// Rejects the record (back to its `rejected` state, or the first one); a comment is required.
    pub fn reject(&mut self, form: &str, id: &str, actor: &str, comment: &str) -> Result<ApprovalView, EngineError> {
        if comment.trim().is_empty() {
            return Err(EngineError::Input("a rejection needs a comment saying why (--comment)".into()));
        }
        self.decide(form, id, actor, "reject", Some(comment), None)
    }

    /// Withdraws a record from approval: only its submitter (or owner) may.
    pub fn recall(&mut self, form: &str, id: &str, actor: &str) -> Result<ApprovalView, EngineError> {
        self.decide(form, id, actor, "recall", None, None)
    }

    fn decide(
        &mut self,
        form: &str,
        id: &str,
        actor: &str,
        decision: &str,
        comment: Option<&str>,
        override_reason: Option<&str>,
    ) -> Result<ApprovalView, EngineError> {
        let now = self.clock.now();
        let at = crate::clock::stamp(now);
        super::records::actor_roles(self.store.reader(), actor)?;
        let Runtime { store, apps, scripts, .. } = self;
        let f = super::records::find_form(apps, form).ok_or_else(|| super::records::unknown_form(apps, form))?;
        let table = f.table();
        let verdict = store.write(|tx| {
            let session = automate::Session::new(scripts, apps, now);
            let w = Writer { session: &session, tx, f: &f, table: &table, at: &at, actor };
                        let Some(run) = approvals::pending(tx, form, id)? else {
                // Also audited: the loser of a race finds the run already decided.
                records::get(tx, &table, id)?.ok_or_else(|| super::records::not_found(form, id))?;
                let why = format!("{form} {id} is not in approval");
                let body = json!({"decision": decision, "why": why}).to_string();
                audit::append(tx, &NewEvent::note(&at, actor, "approval.refused", Some((form, id)), &body))?;
                return Ok(Verdict::Refused(why));
            };
            let Some((ci, chain)) = chain_of(&f.app.app.def, &run.chain) else {
                return Err(EngineError::Input(format!("the chain {} is gone", run.chain)));
            };
            let row = records::get(tx, &table, id)?.ok_or_else(|| super::records::not_found(form, id))?;
            let refuse = |why: String| -> Result<Verdict, EngineError> {
                let body = json!({"approval": run.id, "chain": run.chain, "step": run.step, "decision": decision,
                                  "override": override_reason, "why": why}).to_string();
                audit::append(tx, &NewEvent::note(&at, actor, "approval.refused", Some((form, id)), &body))?;
                Ok(Verdict::Refused(why))
            };
            if decision == "recall" {
                if actor != run.submitter && row.owner.as_deref() != Some(actor) {
                    return refuse(format!("only the submitter ({}) or the owner may recall {id}", run.submitter));
                }
                for s in approvals::steps(tx, run.id)? {
                    if s.status == "open" || s.status == "waiting" {
                        approvals::set_step(tx, run.id, s.step, "cancelled", &s.approvers, s.needed, &at, None, Some("recalled"))?;
                    }
                }
                approvals::set_run(tx, run.id, "recalled", run.step, Some(&at))?;
                if let Some(initial) = f.form.initial_state() {
                    set_state(&w, id, &initial.id, chain)?;
                }
                let body = json!({"approval": run.id, "chain": run.chain}).to_string();
                audit::append(tx, &NewEvent::note(&at, actor, "approval.recalled", Some((form, id)), &body))?;
                return Ok(Verdict::Done);
            }
            let steps = approvals::steps(tx, run.id)?;
            let Some(step) = steps.iter().find(|s| s.step == run.step) else {
                return Err(EngineError::Input("the run has no current step".into()));
            };
            let def = chain.steps.get(run.step as usize);
            if def.is_some_and(|d| d.signature.is_some()) {
                return refuse("this step is the customer's signature, through a sign link".into());
            }
            if row.version != run.version {
                return refuse(format!("{id} changed since version {} was submitted; its approvals were reset", run.version));
            }
            let barred = excluded(tx, &row, &run)?;
            let bar = barred.iter().find(|(m, _)| m == actor).map(|(_, why)| *why);
            // Under `allow_self_approval` nobody is barred (a step opened the same way).
            let barring: &[(String, &str)] = if chain.allow_self_approval == Some(true) { &[] } else { &barred };
            let team = w.session.assign.borrow_mut().team(tx)?.to_vec();
            let mut on_behalf_of = None;
            let mut set_aside = Vec::new();
            if override_reason.is_some() {
                let roles = team.iter().find(|t| t.id == actor).map(|t| t.roles.clone()).unwrap_or_default();
                if !chain.override_roles.iter().any(|r| roles.contains(r)) {
                    let who = if chain.override_roles.is_empty() {
                        "this chain allows no override".to_string()
                    } else {
                        format!("only {} may", chain.override_roles.join(", "))
                    };
                    return refuse(format!("`{actor}` may not override the approval of {id}: {who}"));
                }
                // One break-glass per run: an override never carries a record through its
                // whole chain.
                if let Some((at_step, by)) = approvals::overridden(tx, run.id)? {
                    let earlier = chain.steps.get(at_step as usize).map(|s| s.id.as_str()).unwrap_or("?");
                    return refuse(format!(
                        "this run was already overridden (step `{earlier}`, by `{by}`); the rest of the chain needs its approvers"
                    ));
                }
                if let Some(why) = bar {
                    set_aside.push(format!("they {why}"));
                }
                if !step.approvers.iter().any(|a| a == actor) {
                    set_aside.push(format!("they are not an approver of step `{}`", step.step_id));
                }
            } else {
                if chain.allow_self_approval != Some(true) {
                    if let Some(why) = bar {
                        return refuse(format!("`{actor}` may not approve {id}: they {why} (separation of duties)"));
                    }
                }
                if !step.approvers.iter().any(|a| a == actor) {
                    let decided = approvals::deciders_of(tx, run.id, run.step)?;
                    let stand = stand_ins(&team, def, &step.approvers, &today(&f, now), barring);
                    let Some((absent, _)) = stand.into_iter().find(|(a, d)| d == actor && !decided.contains(a)) else {
                        return refuse(format!(
                            "`{actor}` is not an approver of step `{}`; its approvers: {}",
                            step.step_id,
                            step.approvers.join(", ")
                        ));
                    };
                    on_behalf_of = Some(absent);
                }
                // The seat must still be entitled now, not only when the step opened (a role
                // revoked meanwhile).
                let seat = on_behalf_of.as_deref().unwrap_or(actor);
                if let Some(def) = def {
                    let mut now_entitled = match &def.approver {
                        Some(r) => members_for(&w, r, &row)?,
                        None => Vec::new(),
                    };
                    if let Some(r) = &def.escalate_to {
                        now_entitled.extend(members_for(&w, r, &row)?);
                    }
                    let manages = |m: &String| team.iter().any(|t| t.manager.as_deref() == Some(seat) && &t.id == m);
                    let is_manager_of_approver = step.approvers.iter().any(manages);
                    if !now_entitled.iter().any(|m| m == seat) && !is_manager_of_approver {
                        return refuse(format!(
                            "`{seat}` no longer qualifies as an approver of step `{}` (their role or position changed)",
                            step.step_id
                        ));
                    }
                }
            }
            let record = approvals::Decision {
                approval: run.id,
                step: run.step,
                member: actor,
                on_behalf_of: on_behalf_of.as_deref(),
                decision,
                comment,
                override_reason,
                at: &at,
                version: run.version,
            };
            if !approvals::decide(tx, &record)? {
                let seat = on_behalf_of.as_deref().map(|a| format!(" (or for `{a}`)")).unwrap_or_default();
                return refuse(format!("step `{}` already has a decision by `{actor}`{seat}", step.step_id));
            }
            if let Some(reason) = override_reason {
                let body = json!({"approval": run.id, "chain": run.chain, "step": step.step_id, "version": run.version,
                                  "reason": reason, "set_aside": set_aside})
                .to_string();
                audit::append(tx, &NewEvent::note(&at, actor, "approval.override", Some((form, id)), &body))?;
            }
            let mut body = json!({"approval": run.id, "chain": run.chain, "step": step.step_id, "version": run.version, "comment": comment});
            if let Some(a) = &on_behalf_of {
                body["on_behalf_of"] = json!(a);
            }
            if let (Some(why), None) = (bar, override_reason) {
                // Allowed by the chain (`allow_self_approval`), and on record as such.
                body["self_approval"] = json!(format!("they {why}"));
            }
            if override_reason.is_some() {
                body["override"] = json!(true);
            }
            let kind = if decision == "approve" { "approval.approved" } else { "approval.rejected" };
            audit::append(tx, &NewEvent::note(&at, actor, kind, Some((form, id)), &body.to_string()))?;
            if decision == "reject" {
                approvals::set_step(tx, run.id, run.step, "rejected", &step.approvers, step.needed, &at, None, comment)?;
                approvals::set_run(tx, run.id, "rejected", run.step, Some(&at))?;
                let state = if f.form.states.iter().any(|s| s.id == "rejected") {
                    "rejected".to_string()
                } else {
                    f.form.initial_state().map(|s| s.id.clone()).unwrap_or_default()
                };
                set_state(&w, id, &state, chain)?;
                let steps = Steps { name: format!("{}.on_rejected", chain.id), list: &chain.on_rejected, pointer: format!("/approvals/{ci}/on_rejected"), automation: None };
                if !steps.list.is_empty() {
                    let cause = Cause { key: format!("approval/{}/rejected", run.id), trigger: "approval rejected".into(), ..Cause::default() };
                    automate::run_steps(&w, &steps, Some(id), &cause, 0)?;
                }
                return Ok(Verdict::Done);
            }
            let given = approvals::approvals_of(tx, run.id, run.step)?;
            // An override decides the step whatever its mode.
            if (given.len() as i64) < step.needed && override_reason.is_none() {
                return Ok(Verdict::Done);
            }
            approvals::set_step(tx, run.id, run.step, "approved", &step.approvers, step.needed, &at, None, None)?;
            advance(&w, chain, &run, run.step as usize + 1)?.map_err(EngineError::Input)?;
            Ok(Verdict::Done)
        })?;
        match verdict {
            Verdict::Refused(why) => Err(EngineError::Refused(why)),
            Verdict::Done => {
                self.approval(form, id)?.ok_or_else(|| EngineError::Input(format!("{form} {id} has no approval")))
            }
        }
    }

    /// The latest approval run of a record, step by step.
    pub fn approval(&self, form: &str, id: &str) -> Result<Option<ApprovalView>, EngineError> {
        let conn = self.store.reader();
        let run = match approvals::pending(conn, form, id)? {
            Some(r) => Some(r),
            None => approvals::latest(conn, form, id)?,
        };
        let Some(run) = run else { return Ok(None) };
        let steps = approvals::steps(conn, run.id)?
            .into_iter()
            .map(|s| {
                let approved_by = approvals::approvals_of(conn, run.id, s.step).unwrap_or_default();
                json!({"step": s.step_id, "status": s.status, "approvers": s.approvers, "needed": s.needed,
                       "approved_by": approved_by, "due_at": s.due_at, "note": s.note})
            })
            .collect();
        Ok(Some(ApprovalView { chain: run.chain, status: run.status, version: run.version, steps }))
    }

    /// Steps waiting for a member (or everyone's), oldest first: theirs to decide, and those
    /// they decide for an approver who is away.
    pub fn approvals(&self, member: Option<&str>) -> Result<Vec<Waiting>, EngineError> {
        let conn = self.store.reader();
        let now = self.clock.now();
        let team = members::list(conn)?;
        let mut out = Vec::new();
        for (run, s) in approvals::open_steps(conn)? {
            let approved_by = approvals::approvals_of(conn, run.id, s.step)?;
            let f = super::records::find_form(&self.apps, &run.form);
            let def = f.as_ref().and_then(|f| {
                let (_, chain) = chain_of(&f.app.app.def, &run.chain)?;
                chain.steps.get(s.step as usize)
            });
            let mut on_behalf_of = None;
            if let Some(m) = member {
                let decided = approvals::deciders_of(conn, run.id, s.step)?;
                if decided.iter().any(|d| d == m) {
                    continue;
                }
                if !s.approvers.iter().any(|a| a == m) {
                    let (Some(f), Some(def)) = (&f, def) else { continue };
                    let Some(row) = records::get(conn, &f.table(), &run.record)? else { continue };
                    let self_allowed =
                        chain_of(&f.app.app.def, &run.chain).is_some_and(|(_, c)| c.allow_self_approval == Some(true));
                    let barred = if self_allowed { Vec::new() } else { excluded(conn, &row, &run)? };
                    let stand = stand_ins(&team, Some(def), &s.approvers, &today(f, now), &barred);
                    let Some((absent, _)) = stand.into_iter().find(|(a, d)| d == m && !decided.contains(a)) else {
                        continue;
                    };
                    on_behalf_of = Some(absent);
                }
            }
            let show = match (&f, def) {
                (Some(f), Some(def)) if !def.show.is_empty() => {
                    let data = records::get(conn, &f.table(), &run.record)?.map(|r| r.data).unwrap_or_default();
                    shown(f, def, &data).into_iter().map(|(field, _)| field).collect()
                }
                _ => Vec::new(),
            };
            out.push(Waiting {
                form: run.form,
                record: run.record,
                chain: run.chain,
                step: s.step_id,
                approvers: s.approvers,
                needed: s.needed,
                approved_by,
                due_at: s.due_at,
                version: run.version,
                on_behalf_of,
                show,
            });
        }
        Ok(out)
    }
}

/// Fires an approval timeout timer.
pub(crate) fn fire_timeout(w: &Writer<'_, '_>, timer: &TimerRow) -> Result<Result<String, String>, StoreError> {
    let payload: Value = timer.payload.as_deref().and_then(|p| serde_json::from_str(p).ok()).unwrap_or_default();
    let (Some(approval), Some(step)) = (payload["approval"].as_i64(), payload["step"].as_i64()) else {
        return Ok(Err("the timer's payload is unreadable".into()));
    };
    escalate(w, approval, step)
}
