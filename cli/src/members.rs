//! The member directory: `members` lists it, `members import` loads it from a CSV, and
//! `members away` / `members back` record absences and their delegates.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{json, Value};

use crate::context::show;
use crate::{Context, UserError};

/// The member commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// The member directory: list it, or `members import FILE.csv`.
    Members {
        #[command(subcommand)]
        what: Option<MembersWhat>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum MembersWhat {
    /// Load or update members from a CSV (id,name,roles,region,manager,active,capacity).
    Import {
        /// The CSV file.
        file: PathBuf,
        /// Who imports.
        #[arg(long = "as", default_value = "system")]
        actor: String,
    },
    /// Mark a member away; their delegate decides their approvals meanwhile.
    Away {
        /// The member.
        member: String,
        /// The last day away (YYYY-MM-DD).
        #[arg(long)]
        until: String,
        /// The first day away; default: now.
        #[arg(long)]
        from: Option<String>,
        /// Who decides in their place (sharing one of their roles).
        #[arg(long)]
        delegate: Option<String>,
        /// Who says so: the member, their manager, or system.
        #[arg(long = "as", default_value = "system")]
        actor: String,
    },
    /// Set a member's password: the first line of standard input (never a flag, so it stays
    /// out of the shell's history). Their other sessions end.
    Password {
        /// The member.
        member: String,
        /// A member changing their own: the second line is their current password.
        #[arg(long)]
        current: bool,
        /// Who sets it (ops, for the audit trail; the member themselves with --current).
        #[arg(long = "as", default_value = "system")]
        actor: String,
    },
    /// End a member's absence.
    Back {
        /// The member.
        member: String,
        /// Who says so: the member, their manager, or system.
        #[arg(long = "as", default_value = "system")]
        actor: String,
    },
}

/// Runs one member command.
pub(crate) fn run(ctx: &Context, cmd: &Command) -> Result<ExitCode, UserError> {
    let Command::Members { what } = cmd;
    match what {
        None => members_list(ctx),
        Some(MembersWhat::Away { member, until, from, delegate, actor }) => {
            let absence = closeloop::Absence { from: from.clone(), until: until.clone(), delegate: delegate.clone() };
            members_away(ctx, member, Some(&absence), actor)
        }
        Some(MembersWhat::Back { member, actor }) => members_away(ctx, member, None, actor),
        Some(MembersWhat::Import { file, actor }) => members_import(ctx, file, actor),
        Some(MembersWhat::Password { member, current, actor }) => {
            crate::identity::password(ctx, member, *current, actor)
        }
    }
}

/// `closeloop members import FILE`.
pub fn members_import(ctx: &Context, file: &Path, actor: &str) -> Result<ExitCode, UserError> {
    let bytes = std::fs::read(file).map_err(|e| UserError(format!("cannot read {}: {e}", file.display())))?;
    let mut rt = ctx.runtime()?;
    let report = rt.import_members(&bytes, actor).map_err(|e| ctx.engine_error(e))?;
    show(ctx, &report, || {
        let mut said = format!(
            "{} members: {} new, {} changed, {} unchanged",
            report.rows, report.created, report.updated, report.unchanged
        );
        for w in &report.warnings {
            said.push_str(&format!("\nwarning[MEMBER_UNREACHABLE]: {w}"));
        }
        crate::locale::say(&said)
    })
}

/// `closeloop members away MEMBER --until DAY [--delegate M]`, and `members back MEMBER`.
pub fn members_away(
    ctx: &Context,
    member: &str,
    absence: Option<&closeloop::Absence>,
    actor: &str,
) -> Result<ExitCode, UserError> {
    let mut rt = ctx.runtime()?;
    let m = match absence {
        Some(a) => rt.set_away(member, a, actor),
        None => rt.set_back(member, actor),
    }
    .map_err(|e| ctx.engine_error(e))?;
    show(ctx, &member_json(&m), || match &m.away_until {
        Some(until) => format!(
            "{} is away {}until {until}{}",
            m.id,
            m.away_from.as_deref().map(|f| format!("from {f} ")).unwrap_or_default(),
            m.delegate_to.as_deref().map(|d| format!("; {d} decides their approvals")).unwrap_or_default()
        ),
        None => format!("{} is back", m.id),
    })
}

fn member_json(m: &closeloop::store::MemberRow) -> Value {
    json!({"id": m.id, "name": m.name, "roles": m.roles, "region": m.region, "manager": m.manager, "active": m.active,
           "capacity": m.capacity, "away_from": m.away_from, "away_until": m.away_until, "delegate_to": m.delegate_to})
}

/// `closeloop members`.
pub fn members_list(ctx: &Context) -> Result<ExitCode, UserError> {
    let rt = ctx.runtime()?;
    let members = rt.members().map_err(|e| ctx.engine_error(e))?;
    let rows: Vec<Value> = members.iter().map(member_json).collect();
    show(ctx, &rows, || {
        members
            .iter()
            .map(|m| {
                let away = match (&m.away_until, &m.delegate_to) {
                    (Some(u), Some(d)) => format!("  away until {u}, {d} stands in"),
                    (Some(u), None) => format!("  away until {u}"),
                    _ => String::new(),
                };
                format!(
                    "{:<10} {:<8} {:<24} {:<8} {}{away}",
                    m.id,
                    m.name,
                    m.roles.join(";"),
                    m.region.clone().unwrap_or_default(),
                    if m.active { "active" } else { "inactive" }
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}
