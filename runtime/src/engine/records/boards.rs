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
    /// A board's flagged records, oldest first.
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
            now.duration_since(since).as_secs() / 3600
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
