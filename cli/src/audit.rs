//! The audit trail: `audit verify` checks the hash chain and the stored rows against it,
//! `audit head` prints a checkpoint to keep elsewhere, `audit anchor` sends one to a channel.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use crate::{print, Context, UserError};

/// The audit commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        what: AuditWhat,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditWhat {
    /// Check the hash chain and every record, member, app, approval, signing link, task and
    /// channel setting against it; exit 1 naming the first problem.
    Verify {
        /// A checkpoint printed earlier by `audit head` (SEQ:HASH): fail unless the chain still
        /// holds that event with that hash (catches deleted newest events and a re-hashed chain).
        #[arg(long)]
        expect: Option<String>,
    },
    /// Print the chain's head as a checkpoint (SEQ:HASH) to keep outside the database.
    Head,
    /// Write the head's checkpoint as a message to a channel's outbox (then `outbox deliver`);
    /// run it from cron. Nothing is queued when the head has not moved since the last anchor.
    Anchor {
        /// The channel (an installed app's channel id).
        #[arg(long)]
        channel: String,
        /// Whom to send it to (an email address, a phone number; a webhook needs none).
        #[arg(long)]
        to: Option<String>,
        /// Who is anchoring.
        #[arg(long = "as", default_value = "system")]
        actor: String,
    },
}

/// Runs one audit command.
pub(crate) fn run(ctx: &Context, cmd: &Command) -> Result<ExitCode, UserError> {
    let Command::Audit { what } = cmd;
    match what {
        AuditWhat::Verify { expect } => audit_verify(ctx, expect.as_deref()),
        AuditWhat::Head => audit_head(ctx),
        AuditWhat::Anchor { channel, to, actor } => audit_anchor(ctx, channel, to.as_deref(), actor),
    }
}

/// `closeloop audit verify [--expect CHECKPOINT]`.
pub fn audit_verify(ctx: &Context, expect: Option<&str>) -> Result<ExitCode, UserError> {
    let expect = match expect {
        Some(text) => Some(closeloop::store::Checkpoint::parse(text).ok_or_else(|| {
            UserError(format!("`{text}` is not a checkpoint (SEQ:HASH, as `closeloop audit head` prints it)"))
        })?),
        None => None,
    };
    let rt = ctx.runtime()?;
    let v = match &expect {
        Some(c) => rt.verify_audit_against(c),
        None => rt.verify_audit(),
    }
    .map_err(|e| ctx.engine_error(e))?;
    let integrity = rt.store().integrity_check().map_err(|e| UserError(e.to_string()))?;
    let ok = v.problem.is_none() && integrity == "ok";
    let value = json!({"ok": ok, "events": v.events, "records": v.records, "head": v.head, "problem": v.problem.as_ref().map(ToString::to_string), "integrity": integrity});
    if ctx.json() {
        print(&serde_json::to_string_pretty(&value).unwrap_or_default())?;
    } else if ok {
        let against = expect.map(|c| format!("; holds checkpoint {}", c.seq)).unwrap_or_default();
        print(&format!("audit ok: {} events, {} records checked; head {}{against}", v.events, v.records, v.head))?;
    } else {
        let problem = v.problem.map(|p| p.to_string()).unwrap_or_else(|| format!("integrity check: {integrity}"));
        eprintln!("audit FAILED: {problem}\n({} events verified before it)", v.events);
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `closeloop audit head`: the checkpoint alone on a line (or as JSON), for scripts.
pub fn audit_head(ctx: &Context) -> Result<ExitCode, UserError> {
    let rt = ctx.runtime()?;
    let head = rt.audit_head().map_err(|e| ctx.engine_error(e))?;
    if ctx.json() {
        let value = json!({"checkpoint": head.to_string(), "seq": head.seq, "hash": head.hash});
        print(&serde_json::to_string_pretty(&value).unwrap_or_default())?;
    } else {
        print(&head.to_string())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `closeloop audit anchor --channel NAME [--to ADDRESS]`.
pub fn audit_anchor(ctx: &Context, channel: &str, to: Option<&str>, actor: &str) -> Result<ExitCode, UserError> {
    let mut rt = ctx.runtime()?;
    let anchor = rt.anchor_audit(channel, to, actor).map_err(|e| ctx.engine_error(e))?;
    if ctx.json() {
        print(&serde_json::to_string_pretty(&anchor).unwrap_or_default())?;
    } else {
        let said = match anchor.message {
            Some(id) => format!("queued as outbox message {id}; `closeloop outbox deliver` sends it"),
            None => "already queued (no new events since the last anchor)".to_string(),
        };
        print(&format!("checkpoint {} to {}: {said}", anchor.checkpoint, anchor.channel))?;
    }
    Ok(ExitCode::SUCCESS)
}
