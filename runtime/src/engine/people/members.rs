//! The member directory's writes: one member stored with its audit event, and absences
//! (away from, away until, who stands in) that approval steps honour.

use serde::Serialize;

use crate::engine::{EngineError, Runtime};
use crate::store::{audit, members, MemberRow, NewEvent, StoreError, Tx};

/// A member's absence, as `closeloop members away` sets it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Absence {
    /// The first day away (`YYYY-MM-DD`); none: from now.
    pub from: Option<String>,
    /// The last day away.
    pub until: String,
    /// Who decides approvals in their place; they must share one of the member's roles.
    pub delegate: Option<String>,
}

/// Reads a day as `YYYY-MM-DD` (also `2026/1/5`), or says what is wrong.
pub(crate) fn day(text: &str) -> Result<String, String> {
    let parts: Vec<&str> = text.trim().split(['-', '/']).collect();
    let number = |i: usize| parts.get(i).and_then(|p| p.parse::<i16>().ok());
    let small = |i: usize| number(i).and_then(|n| i8::try_from(n).ok());
    match (parts.len(), number(0), small(1), small(2)) {
        (3, Some(y), Some(m), Some(d)) => jiff::civil::Date::new(y, m, d)
            .map(|date| date.to_string())
            .map_err(|_| format!("\"{text}\" is not a day of the calendar")),
        _ => Err(format!("\"{text}\" is not a date (YYYY-MM-DD)")),
    }
}

/// Stores a member and its `member.created` / `member.updated` event in the caller's
/// transaction; `None` (and nothing written) when nothing changed.
pub(crate) fn store(
    tx: &Tx<'_>,
    before: Option<&MemberRow>,
    member: &MemberRow,
    at: &str,
    actor: &str,
) -> Result<Option<&'static str>, StoreError> {
    if before == Some(member) {
        return Ok(None);
    }
    members::upsert(tx, member, at)?;
    let kind = if before.is_some() { "member.updated" } else { "member.created" };
    let body = member.audit_body().to_string();
    let event = NewEvent { record: Some(&member.id), ..NewEvent::note(at, actor, kind, None, &body) };
    audit::append(tx, &event)?;
    Ok(Some(kind))
}

/// An absence as the directory may hold it: it ends no earlier than it starts, and the
/// delegate is someone else, still on the team, sharing one of the member's roles (each step
/// then asks more: see `approvals::stand_ins`).
pub(crate) fn check_absence(m: &MemberRow, team: &[MemberRow]) -> Result<(), String> {
    if let (Some(from), Some(until)) = (&m.away_from, &m.away_until) {
        if from > until {
            return Err(format!("the absence ends ({until}) before it starts ({from})"));
        }
    }
    let Some(d) = &m.delegate_to else { return Ok(()) };
    let Some(delegate) = team.iter().find(|t| &t.id == d) else {
        return Err(format!("there is no member `{d}` to stand in"));
    };
    if delegate.id == m.id {
        return Err("a member cannot stand in for themselves".into());
    }
    if !delegate.active {
        return Err(format!("`{d}` has left the team and cannot stand in"));
    }
    if !delegate.roles.iter().any(|r| m.roles.contains(r)) {
        return Err(format!(
            "`{d}` shares no role with `{}` ({}), so cannot decide in their place",
            m.id,
            m.roles.join(", ")
        ));
    }
    Ok(())
}

impl Runtime {
    /// Marks `member` away (through `absence.until`) with who stands in for them. The member
    /// themselves, their manager or `system` may; the delegate must be active, someone else,
    /// and share one of the member's roles, so a finance approver is stood in for by finance.
    pub fn set_away(&mut self, member: &str, absence: &Absence, actor: &str) -> Result<MemberRow, EngineError> {
        let until = day(&absence.until).map_err(|why| EngineError::Input(format!("--until: {why}")))?;
        let from =
            absence.from.as_deref().map(day).transpose().map_err(|why| EngineError::Input(format!("--from: {why}")))?;
        self.change_member(member, actor, |m, team| {
            m.away_from = from.clone();
            m.away_until = Some(until.clone());
            m.delegate_to = absence.delegate.clone();
            check_absence(m, team)
        })
    }

    /// Ends `member`'s absence: they decide their own approvals again.
    pub fn set_back(&mut self, member: &str, actor: &str) -> Result<MemberRow, EngineError> {
        self.change_member(member, actor, |m, _| {
            m.away_from = None;
            m.away_until = None;
            m.delegate_to = None;
            Ok(())
        })
    }

    /// One change to one member, by the member, their manager or `system`: one transaction
    /// with its audit event.
    fn change_member(
        &mut self,
        member: &str,
        actor: &str,
        change: impl Fn(&mut MemberRow, &[MemberRow]) -> Result<(), String>,
    ) -> Result<MemberRow, EngineError> {
        let at = self.now();
        self.store.write(|tx| {
            let team = members::list(tx)?;
            let Some(before) = team.iter().find(|m| m.id == member) else {
                return Err(EngineError::Input(format!("there is no member `{member}`")));
            };
            let entitled = actor == "system" || actor == before.id || before.manager.as_deref() == Some(actor);
            if !entitled {
                return Err(EngineError::Refused(format!(
                    "only `{member}`, their manager or system may change their absence, not `{actor}`"
                )));
            }
            let mut after = before.clone();
            change(&mut after, &team).map_err(EngineError::Input)?;
            store(tx, Some(before), &after, &at, actor)?;
            Ok(after)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::day;

    #[test]
    fn days_are_read_as_the_calendar_has_them() {
        assert_eq!(day("2026-12-05"), Ok("2026-12-05".into()));
        assert_eq!(day("2026/1/5"), Ok("2026-01-05".into()));
        assert!(day("2026-02-30").is_err());
        assert!(day("next week").is_err());
        assert!(day("2026-99999999999-1").is_err());
    }
}
