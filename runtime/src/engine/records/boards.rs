//! Boards: named views of the records that need someone's attention, with why and since when.

use serde::Serialize;

use crate::engine::{EngineError, Runtime};
use crate::store::{boards, tasks};

/// A record on a board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoardItem {
    /// The record's id.
    pub record: String,
    /// The record's form.
    pub form: String,
    /// Why it is on the board.
    pub reason: String,
    /// Since when.
    pub since: String,
    /// How long it has been there, in whole hours.
    pub age_hours: i64,
}

impl Runtime {
    /// A board as `member` sees it: they must hold one of its roles (when it names any), it
    /// leaves out records the form's `read` rules keep from them, and a board with a `scope`
    /// shows them only the records whose fields equal their attributes.
    pub fn board_as(&self, name: &str, member: &str) -> Result<Vec<BoardItem>, EngineError> {
        let items = self.board(name)?;
        let Some(board) = self.apps.values().flat_map(|a| a.app.def.boards.iter()).find(|b| b.id == name) else {
            return Ok(items);
        };
        let reader = self.store.reader();
        let viewer = crate::engine::records::access::Viewer::load(reader, member)?;
        if !board.roles.is_empty() && !viewer.member.roles.iter().any(|r| board.roles.contains(r)) {
            return Err(EngineError::Refused(format!(
                "board {name} is for {}; {member} holds none of these roles",
                board.roles.join(", ")
            )));
        }
        let mut shown = Vec::with_capacity(items.len());
        for item in items {
            let Some(f) = crate::engine::records::find_form(&self.apps, &item.form) else { continue };
            let Some(row) = crate::store::records::get(reader, f.table(), &item.record)? else { continue };
            // A record its form's `read` rules keep from the viewer is not on their board either.
            if !viewer.may_read(f.form, row.owner.as_deref(), &row.data) {
                continue;
            }
            let theirs =
                |field: &String| row.data.get(field).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string));
            let mine = |attr: &String| crate::engine::people::assign::attribute(&viewer.member, attr);
            if board.scope.is_empty()
                || board.scope.iter().all(|(attr, field)| mine(attr).is_some() && mine(attr) == theirs(field))
            {
                shown.push(item);
            }
        }
        Ok(shown)
    }

    /// A board's flagged records, oldest first: every one, as the operator holding the
    /// database sees it ([`Runtime::board_as`] for a member).
    pub fn board(&self, name: &str) -> Result<Vec<BoardItem>, EngineError> {
        let known: Vec<&str> =
            self.apps.values().flat_map(|a| a.app.def.boards.iter().map(|b| b.id.as_str())).collect();
        if !known.contains(&name) {
            return Err(EngineError::Input(format!(
                "there is no board `{name}`; the boards are: {}",
                known.join(", ")
            )));
        }
        let now = self.clock.now();
        let age = |since: &str| {
            let since: jiff::Timestamp = since.parse().unwrap_or(now);
            now.duration_since(since).as_secs().max(0) / 3600
        };
        let mut items: Vec<BoardItem> = boards::list(self.store.reader(), name)?
            .into_iter()
            .map(|f| BoardItem {
                age_hours: age(&f.since),
                record: f.record,
                form: f.form,
                reason: f.reason,
                since: f.since,
            })
            .collect();
        // Boards that show overdue work also list each record with an open task past its due
        // time (derived, never stored: done or cancelled, it is gone from the board).
        let shows_overdue = self.apps.values().flat_map(|a| a.app.def.boards.iter()).find(|b| b.id == name);
        if let Some(board) = shows_overdue.filter(|b| b.show_overdue == Some(true)) {
            let stamp = crate::clock::stamp(now);
            for t in tasks::overdue_on(self.store.reader(), &board.forms, &stamp)? {
                let since = t.due_at.clone().unwrap_or_default();
                let due = t.due.as_deref().unwrap_or("-");
                let reason =
                    format!("overdue task: {} (due {due}, {})", t.title, t.assignee.as_deref().unwrap_or("unassigned"));
                items.push(BoardItem { age_hours: age(&since), record: t.record, form: t.form, reason, since });
            }
            items.sort_by(|a, b| (&a.since, &a.record).cmp(&(&b.since, &b.record)));
        }
        Ok(items)
    }
}
