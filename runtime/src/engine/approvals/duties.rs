//! Who may decide an approval step, and what they see: the separation of duties, delegates of
//! approvers who are away, the members a recipient names, the fields a step shows.

use serde_json::Value;

use super::Shown;
use crate::engine::write::Writer;
use crate::engine::FormRef;
use crate::model::{ApprovalStep, ChannelKind};
use crate::store::{approvals, ApprovalRow, MemberRow, Reader, RecordRow, StoreError};

/// Who may not approve this record at this run: its creator, owner, submitter, whoever wrote a
/// version of it (nobody approves their own edit) and earlier approvers (separation of duties).
pub(super) fn excluded(
    conn: &Reader,
    row: &RecordRow,
    run: &ApprovalRow,
) -> Result<Vec<(String, &'static str)>, StoreError> {
    let mut out = vec![(row.created_by.clone(), "created it"), (run.submitter.clone(), "submitted it")];
    if let Some(owner) = &row.owner {
        out.push((owner.clone(), "owns it"));
    }
    out.extend(crate::engine::write::authors_barred(conn, &run.form, &row.id)?);
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
pub(super) fn stand_ins(
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
pub(super) fn today(f: &FormRef<'_>, now: jiff::Timestamp) -> String {
    now.to_zoned(f.time_zone()).date().to_string()
}

/// The fields a step shows its approvers, as they read them.
pub(super) fn shown(f: &FormRef<'_>, step: &ApprovalStep, data: &serde_json::Map<String, Value>) -> Vec<(Shown, bool)> {
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

/// The active members a recipient names (a role, a member, the owner's manager).
pub(super) fn members_for(
    w: &Writer<'_, '_>,
    r: &crate::model::Recipient,
    row: &RecordRow,
) -> Result<Vec<String>, StoreError> {
    let mut cache = w.session.assign.borrow_mut();
    let team = cache.team(w.tx)?;
    Ok(crate::engine::delivery::notify::recipients(team, r, &row.data, ChannelKind::Log)
        .map(|v| v.into_iter().map(|(m, _)| m).filter(|m| m != "customer").collect())
        .unwrap_or_default())
}
