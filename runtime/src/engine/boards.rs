//! Boards: named views of the records that need someone's attention, with why and since when.

use serde::Serialize;

use super::{EngineError, Runtime};
use crate::store::boards;

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
        Ok(boards::list(self.store.reader(), name)?
            .into_iter()
            .map(|f| {
                let since: jiff::Timestamp = f.since.parse().unwrap_or(now);
                let age_hours = now.duration_since(since).as_secs() / 3600;
                BoardItem { record: f.record, form: f.form, reason: f.reason, since: f.since, age_hours }
            })
            .collect())
    }
}
