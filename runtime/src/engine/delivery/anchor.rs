//! Anchoring the audit chain outside the database: the head as a checkpoint, written to the
//! outbox of a channel (the only way out), so a copy lives where someone with write access
//! to the SQLite file cannot reach it. Run it from cron or a scheduler as often as the window
//! of unanchored events may be long; `closeloop audit verify --expect CHECKPOINT` checks the
//! chain against any copy.

use serde::Serialize;

use crate::engine::{EngineError, Runtime};
use crate::store::{audit, outbox, Checkpoint, OutboxRow, OutboxStatus};

/// What an anchor did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Anchor {
    /// The checkpoint sent.
    pub checkpoint: Checkpoint,
    /// The channel.
    pub channel: String,
    /// The outbox message; `None` when this checkpoint was already queued for the channel
    /// (nothing happened since the last anchor).
    pub message: Option<i64>,
}

impl Runtime {
    /// Writes the chain's head as a checkpoint message to `channel`'s outbox, addressed to `to`
    /// when given (an email address, a phone number; a webhook needs none). Keyed by the
    /// checkpoint, so anchoring again with no new events queues nothing.
    pub fn anchor_audit(&mut self, channel: &str, to: Option<&str>, actor: &str) -> Result<Anchor, EngineError> {
        let known = self.apps.values().any(|a| a.app.def.channels.iter().any(|c| c.id == channel));
        if !known {
            return Err(EngineError::Input(format!("no installed app has a channel `{channel}`")));
        }
        let at = self.now();
        let message = self.store.write(|tx| {
            let head = audit::head(tx)?;
            let body = format!(
                "closeloop audit checkpoint {head} at {at}\nKeep this message. To check the database against it:\n  closeloop audit verify --expect {head}"
            );
            let row = OutboxRow {
                id: 0,
                channel: channel.to_string(),
                recipient: to.unwrap_or(actor).to_string(),
                address: to.map(str::to_string),
                message: "audit.checkpoint".into(),
                subject: Some(format!("closeloop audit checkpoint {}", head.seq)),
                body,
                key: format!("audit/anchor/{channel}/{head}"),
                form: None,
                record: None,
                status: OutboxStatus::Pending,
                attempts: 0,
                created_at: at.clone(),
            };
            Ok::<_, EngineError>((head, outbox::push(tx, &row)?))
        })?;
        let (checkpoint, message) = message;
        Ok(Anchor { checkpoint, channel: channel.to_string(), message })
    }
}
