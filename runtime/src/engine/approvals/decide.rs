//! Deciding a step through the library (approve, reject, recall, the override) and the
//! listings of runs and of what waits for whom.

use crate::engine::records::access::Viewer;
use serde_json::json;

use super::duties::{excluded, members_for, shown, stand_ins, today};
use super::{advance, chain_of, decision as decided, ended, set_state, ApprovalView, StepView, Waiting};
use crate::engine::write::Writer;
use crate::engine::{EngineError, Runtime};
use crate::model::{ApprovalChain, ApprovalStep};
use crate::store::{
    approvals, audit, members, records, ApprovalRow, ApprovalStatus, NewEvent, RecordRow, StepRow, StepStatus,
};

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
            return Err(EngineError::Input("an override needs a reason saying why".into()));
        }
        self.decide(form, id, actor, "approve", comment, Some(reason.trim()))
    }

    /// Rejects the record (back to its `rejected` state, or the first one); a comment is required.
    pub fn reject(&mut self, form: &str, id: &str, actor: &str, comment: &str) -> Result<ApprovalView, EngineError> {
        if comment.trim().is_empty() {
            return Err(EngineError::Input("a rejection needs a comment saying why".into()));
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
        crate::engine::records::actor_roles(self.store.reader(), actor)?;
        let verdict = self.write(|session, tx| {
            let f = session.form(form)?;
            let w = Writer::new(session, tx, &f, actor);
            let Some(run) = approvals::pending(tx, form, id)? else {
                // Also audited: the loser of a race finds the run already decided.
                records::get(tx, f.table(), id)?.ok_or_else(|| crate::engine::records::not_found(form, id))?;
                let why = format!("{form} {id} is not in approval");
                let body = json!({"decision": decision, "why": why}).to_string();
                audit::append(tx, &NewEvent::note(&session.at, actor, "approval.refused", Some((form, id)), &body))?;
                return Ok(Verdict::Refused(why));
            };
            let Some((_, chain)) = chain_of(&f.app.app.def, &run.chain) else {
                return Err(EngineError::Input(format!("the chain {} is gone", run.chain)));
            };
            let row = records::get(tx, f.table(), id)?.ok_or_else(|| crate::engine::records::not_found(form, id))?;
            let ask = Ask { w: &w, run: &run, chain, row: &row, decision, comment, override_reason };
            match decision {
                "recall" => ask.recall(),
                _ => ask.decide(),
            }
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
        let mut steps = Vec::new();
        for s in approvals::steps(conn, run.id)? {
            steps.push(StepView {
                approved_by: approvals::approvals_of(conn, run.id, s.step)?,
                approvers: s.approvers,
                due_at: s.due_at,
                needed: s.needed,
                note: s.note,
                status: s.status,
                step: s.step_id,
            });
        }
        Ok(Some(ApprovalView { chain: run.chain, status: run.status, version: run.version, steps }))
    }

    /// Steps waiting for a member (or everyone's), oldest first: theirs to decide, and those
    /// they decide for an approver who is away.
    pub fn approvals(&self, member: Option<&str>) -> Result<Vec<Waiting>, EngineError> {
        let conn = self.store.reader();
        let now = self.clock.now();
        // The directory is read only when someone may be standing in, and once.
        let mut team = None;
        let mut viewer: Option<Option<Viewer>> = None;
        let mut out = Vec::new();
        for (run, s) in approvals::open_steps(conn)? {
            let approved_by = approvals::approvals_of(conn, run.id, s.step)?;
            let f = crate::engine::records::find_form(&self.apps, &run.form);
            let chain = f.as_ref().and_then(|f| chain_of(&f.app.app.def, &run.chain)).map(|(_, c)| c);
            let def = chain.and_then(|c| c.steps.get(s.step as usize));
            // The record, read once, only when delegation or `show` needs it.
            let mut row = None;
            let mut on_behalf_of = None;
            if let Some(m) = member {
                let decided = approvals::deciders_of(conn, run.id, s.step)?;
                if decided.iter().any(|d| d == m) {
                    continue;
                }
                if !s.approvers.iter().any(|a| a == m) {
                    let (Some(f), Some(chain), Some(def)) = (&f, chain, def) else { continue };
                    if def.allow_delegation != Some(true) {
                        continue;
                    }
                    let Some(record) = records::get(conn, f.table(), &run.record)? else { continue };
                    let barred = if chain.allow_self_approval == Some(true) {
                        Vec::new()
                    } else {
                        excluded(conn, &record, &run)?
                    };
                    let team = match &mut team {
                        Some(team) => team,
                        None => team.insert(members::list(conn)?),
                    };
                    let stand = stand_ins(team, Some(def), &s.approvers, &today(f, now), &barred);
                    let Some((absent, _)) = stand.into_iter().find(|(a, d)| d == m && !decided.contains(a)) else {
                        continue;
                    };
                    on_behalf_of = Some(absent);
                    row = Some(record);
                }
            }
            let show = match (&f, def) {
                (Some(f), Some(def)) if !def.show.is_empty() => {
                    let record = match row {
                        Some(record) => Some(record),
                        None => records::get(conn, f.table(), &run.record)?,
                    };
                    let data = record.map(|r| r.data).unwrap_or_default();
                    // A field the approver's roles may not see stays out of their inbox.
                    let viewer = match (member, &mut viewer) {
                        (Some(m), None) => viewer.insert(Viewer::load(conn, m).ok()).as_ref(),
                        (_, Some(v)) => v.as_ref(),
                        (None, None) => None,
                    };
                    shown(f, def, &data)
                        .into_iter()
                        .map(|(field, _)| field)
                        .filter(|s| viewer.is_none_or(|v| f.form.field(&s.field).is_none_or(|fd| v.sees(fd))))
                        .collect()
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

/// One decision on a run, as asked: who, what, with which comment or override reason.
struct Ask<'a> {
    w: &'a Writer<'a, 'a>,
    run: &'a ApprovalRow,
    chain: &'a ApprovalChain,
    row: &'a RecordRow,
    decision: &'a str,
    comment: Option<&'a str>,
    override_reason: Option<&'a str>,
}

/// Who decides: the seat they fill (an away approver's, for a delegate) and, for an override,
/// the rules it sets aside.
#[derive(Default)]
struct Seat {
    on_behalf_of: Option<String>,
    set_aside: Vec<String>,
}

/// Whether the actor may decide, and if so in which seat.
enum Entitled {
    Seat(Seat),
    Refused(String),
}

impl Ask<'_> {
    fn actor(&self) -> &str {
        self.w.actor
    }

    fn note(&self, kind: &str, body: &serde_json::Value) -> Result<(), EngineError> {
        let about = Some((self.run.form.as_str(), self.run.record.as_str()));
        audit::append(self.w.tx, &NewEvent::note(self.w.at, self.actor(), kind, about, &body.to_string()))?;
        Ok(())
    }

    /// A refusal, audited with why.
    fn refuse(&self, why: String) -> Result<Verdict, EngineError> {
        let run = self.run;
        self.note(
            "approval.refused",
            &json!({"approval": run.id, "chain": run.chain, "step": run.step, "decision": self.decision,
                    "override": self.override_reason, "why": why}),
        )?;
        Ok(Verdict::Refused(why))
    }

    /// The submitter (or the owner) withdraws the record: open steps cancelled, the record back
    /// to its first state.
    fn recall(&self) -> Result<Verdict, EngineError> {
        let (w, run, actor) = (self.w, self.run, self.actor());
        if actor != run.submitter && self.row.owner.as_deref() != Some(actor) {
            return self
                .refuse(format!("only the submitter ({}) or the owner may recall {}", run.submitter, run.record));
        }
        super::cancel_undecided(w, run, &approvals::steps(w.tx, run.id)?, "recalled")?;
        approvals::set_run(w.tx, run.id, ApprovalStatus::Recalled, run.step, Some(w.at))?;
        if let Some(initial) = w.f.form.initial_state() {
            set_state(w, &run.record, &initial.id, self.chain)?;
        }
        self.note("approval.recalled", &json!({"approval": run.id, "chain": run.chain, "version": run.version}))?;
        let body =
            json!({"approval": run.id, "chain": run.chain, "version": run.version, "status": ApprovalStatus::Recalled});
        self.note("approval.finished", &body)?;
        Ok(Verdict::Done)
    }

    /// Approve or reject the step in hand: checks, the decision row, its events, then the run
    /// moves on (or ends).
    fn decide(&self) -> Result<Verdict, EngineError> {
        let (w, run, actor) = (self.w, self.run, self.actor());
        let steps = approvals::steps(w.tx, run.id)?;
        let Some(step) = steps.iter().find(|s| s.step == run.step) else {
            return Err(EngineError::Input("the run has no current step".into()));
        };
        let def = self.chain.steps.get(run.step as usize);
        if def.is_some_and(|d| d.signature.is_some()) {
            return self.refuse("this step is the customer's signature, through a sign link".into());
        }
        if self.row.version != run.version {
            return self.refuse(format!(
                "{} changed since version {} was submitted; its approvals were reset",
                run.record, run.version
            ));
        }
        let barred = excluded(w.tx, self.row, run)?;
        let bar = barred.iter().find(|(m, _)| m == actor).map(|(_, why)| *why);
        let seat = match self.seat(step, def, &barred, bar)? {
            Entitled::Seat(seat) => seat,
            Entitled::Refused(why) => return self.refuse(why),
        };
        let record = approvals::Decision {
            approval: run.id,
            step: run.step,
            member: actor,
            on_behalf_of: seat.on_behalf_of.as_deref(),
            decision: self.decision,
            comment: self.comment,
            override_reason: self.override_reason,
            at: w.at,
            version: run.version,
        };
        if !approvals::decide(w.tx, &record)? {
            let also = seat.on_behalf_of.as_deref().map(|a| format!(" (or for `{a}`)")).unwrap_or_default();
            return self.refuse(format!("step `{}` already has a decision by `{actor}`{also}", step.step_id));
        }
        self.record(step, &seat, bar)?;
        if self.decision == "reject" {
            return self.rejected(step, &seat);
        }
        let given = approvals::approvals_of(w.tx, run.id, run.step)?;
        // An override decides the step whatever its mode.
        if (given.len() as i64) < step.needed && self.override_reason.is_none() {
            return Ok(Verdict::Done);
        }
        approvals::set_step(
            w.tx,
            run.id,
            run.step,
            StepStatus::Approved,
            &step.approvers,
            step.needed,
            w.at,
            None,
            None,
        )?;
        advance(w, self.chain, run, run.step as usize + 1).map_err(|e| match e {
            crate::engine::automations::StepError::Store(e) => EngineError::Store(e),
            crate::engine::automations::StepError::Failed(why) => EngineError::Input(why),
            crate::engine::automations::StepError::Refused(why) => EngineError::Refused(why),
        })?;
        // When that was the last step to decide, the chain's end hooks run with this decision.
        let d = decided(ApprovalStatus::Approved, &step.step_id, actor, seat.on_behalf_of.as_deref(), self.comment);
        ended(w, self.chain, run, ApprovalStatus::Approved, Some(d))?;
        Ok(Verdict::Done)
    }

    /// May the actor decide this step, and in whose seat? An override needs an override role
    /// and one per run; otherwise the separation of duties, the approver list (or a delegate's
    /// stand-in) and the seat's entitlement now.
    fn seat(
        &self,
        step: &StepRow,
        def: Option<&ApprovalStep>,
        barred: &[(String, &'static str)],
        bar: Option<&'static str>,
    ) -> Result<Entitled, EngineError> {
        let (w, run, actor, id) = (self.w, self.run, self.actor(), &self.run.record);
        let team = w.session.assign.borrow_mut().team(w.tx)?.to_vec();
        let mut seat = Seat::default();
        if self.override_reason.is_some() {
            let roles = team.iter().find(|t| t.id == actor).map(|t| t.roles.clone()).unwrap_or_default();
            if !self.chain.override_roles.iter().any(|r| roles.contains(r)) {
                let who = if self.chain.override_roles.is_empty() {
                    "this chain allows no override".to_string()
                } else {
                    format!("only {} may", self.chain.override_roles.join(", "))
                };
                return Ok(Entitled::Refused(format!("`{actor}` may not override the approval of {id}: {who}")));
            }
            // One break-glass per run: an override never carries a record through its whole chain.
            if let Some((at_step, by)) = approvals::overridden(w.tx, run.id)? {
                let earlier = self.chain.steps.get(at_step as usize).map(|s| s.id.as_str()).unwrap_or("?");
                return Ok(Entitled::Refused(format!(
                    "this run was already overridden (step `{earlier}`, by `{by}`); the rest of the chain needs its approvers"
                )));
            }
            seat.set_aside.extend(bar.map(|why| format!("they {why}")));
            if !step.approvers.iter().any(|a| a == actor) {
                seat.set_aside.push(format!("they are not an approver of step `{}`", step.step_id));
            }
            return Ok(Entitled::Seat(seat));
        }
        // Under `allow_self_approval` nobody is barred (a step opened the same way).
        let barring: &[(String, &str)] = if self.chain.allow_self_approval == Some(true) { &[] } else { barred };
        if let (Some(why), false) = (bar, self.chain.allow_self_approval == Some(true)) {
            return Ok(Entitled::Refused(format!("`{actor}` may not approve {id}: they {why} (separation of duties)")));
        }
        if !step.approvers.iter().any(|a| a == actor) {
            let decided = approvals::deciders_of(w.tx, run.id, run.step)?;
            let stand = stand_ins(&team, def, &step.approvers, &today(w.f, w.session.now), barring);
            let Some((absent, _)) = stand.into_iter().find(|(a, d)| d == actor && !decided.contains(a)) else {
                return Ok(Entitled::Refused(format!(
                    "`{actor}` is not an approver of step `{}`; its approvers: {}",
                    step.step_id,
                    step.approvers.join(", ")
                )));
            };
            seat.on_behalf_of = Some(absent);
        }
        // The seat must still be entitled now, not only when the step opened (a role revoked
        // meanwhile).
        let who = seat.on_behalf_of.as_deref().unwrap_or(actor);
        if let Some(def) = def {
            let mut now_entitled = match &def.approver {
                Some(r) => members_for(w, r, self.row)?,
                None => Vec::new(),
            };
            if let Some(r) = &def.escalate_to {
                now_entitled.extend(members_for(w, r, self.row)?);
            }
            let manages = |m: &String| team.iter().any(|t| t.manager.as_deref() == Some(who) && &t.id == m);
            if !now_entitled.iter().any(|m| m == who) && !step.approvers.iter().any(manages) {
                return Ok(Entitled::Refused(format!(
                    "`{who}` no longer qualifies as an approver of step `{}` (their role or position changed)",
                    step.step_id
                )));
            }
        }
        Ok(Entitled::Seat(seat))
    }

    /// The decision's events: the override (with what it set aside), then the decision itself.
    fn record(&self, step: &StepRow, seat: &Seat, bar: Option<&str>) -> Result<(), EngineError> {
        let run = self.run;
        if let Some(reason) = self.override_reason {
            self.note(
                "approval.override",
                &json!({"approval": run.id, "chain": run.chain, "step": step.step_id, "index": run.step,
                        "version": run.version, "reason": reason, "set_aside": seat.set_aside}),
            )?;
        }
        let mut body = json!({"approval": run.id, "chain": run.chain, "step": step.step_id, "index": run.step,
                              "version": run.version, "member": self.actor(), "comment": self.comment});
        if let Some(a) = &seat.on_behalf_of {
            body["on_behalf_of"] = json!(a);
        }
        if let (Some(why), None) = (bar, self.override_reason) {
            // Allowed by the chain (`allow_self_approval`), and on record as such.
            body["self_approval"] = json!(format!("they {why}"));
        }
        if self.override_reason.is_some() {
            body["override"] = json!(true);
        }
        let kind = if self.decision == "approve" { "approval.approved" } else { "approval.rejected" };
        self.note(kind, &body)
    }

    /// A rejection ends the run: the record to its `rejected` state (else its first), and the
    /// chain's end hooks with the comment.
    fn rejected(&self, step: &StepRow, seat: &Seat) -> Result<Verdict, EngineError> {
        let (w, run) = (self.w, self.run);
        approvals::set_step(
            w.tx,
            run.id,
            run.step,
            StepStatus::Rejected,
            &step.approvers,
            step.needed,
            w.at,
            None,
            self.comment,
        )?;
        approvals::set_run(w.tx, run.id, ApprovalStatus::Rejected, run.step, Some(w.at))?;
        let body =
            json!({"approval": run.id, "chain": run.chain, "version": run.version, "status": ApprovalStatus::Rejected});
        self.note("approval.finished", &body)?;
        let state = if w.f.form.states.iter().any(|s| s.id == "rejected") {
            "rejected".to_string()
        } else {
            w.f.form.initial_state().map(|s| s.id.clone()).unwrap_or_default()
        };
        set_state(w, &run.record, &state, self.chain)?;
        let d =
            decided(ApprovalStatus::Rejected, &step.step_id, self.actor(), seat.on_behalf_of.as_deref(), self.comment);
        ended(w, self.chain, run, ApprovalStatus::Rejected, Some(d))?;
        Ok(Verdict::Done)
    }
}
