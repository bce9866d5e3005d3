//! Signing in, for whoever holds the database file: `members password` sets a member's password
//! (read from standard input, never from a flag, so it stays out of the shell's history), and
//! `tokens create|list|revoke` manages API tokens for integrations.

use std::io::BufRead;
use std::process::ExitCode;

use clap::Subcommand;

use crate::context::show;
use crate::{Context, UserError};

/// The identity commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// API tokens for integrations and scripts: `tokens create NAME --as MEMBER --scope read`.
    Tokens {
        #[command(subcommand)]
        what: Option<TokensWhat>,
    },
    /// Install settings: `settings set public-url https://crm.example.com` (messages then link
    /// to each record's page there).
    Settings {
        #[command(subcommand)]
        what: Option<SettingsWhat>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SettingsWhat {
    /// Set one: `public-url URL`, or the seller on the quote PDF: `seller-name`,
    /// `seller-address`, `seller-phone`, `seller-tax-id`.
    Set {
        /// The setting: `public-url`, `seller-name`, `seller-address`, `seller-phone`, `seller-tax-id`.
        name: String,
        /// Its value.
        value: String,
        /// Who sets it (for the audit trail).
        #[arg(long = "by", default_value = "system")]
        actor: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokensWhat {
    /// Make a token; its secret is printed once and never stored.
    Create {
        /// A name to know it by (`finance-sync`).
        name: String,
        /// The member it acts as: it may read and do what they may.
        #[arg(long = "as")]
        member: String,
        /// `events` (post events only), `read`, or `write`.
        #[arg(long)]
        scope: String,
        /// Who makes it (for the audit trail).
        #[arg(long = "by", default_value = "system")]
        actor: String,
    },
    /// Every token (never their secrets).
    List,
    /// Revoke a token: it stops working at once.
    Revoke {
        /// Its name.
        name: String,
        /// Who revokes it (for the audit trail).
        #[arg(long = "by", default_value = "system")]
        actor: String,
    },
}

/// Runs one identity command.
pub(crate) fn run(ctx: &Context, cmd: &Command) -> Result<ExitCode, UserError> {
    let what = match cmd {
        Command::Tokens { what } => what,
        Command::Settings { what } => return settings(ctx, what.as_ref()),
    };
    match what {
        None | Some(TokensWhat::List) => tokens_list(ctx),
        Some(TokensWhat::Create { name, member, scope, actor }) => {
            let scope = closeloop::TokenScope::parse(scope)
                .ok_or_else(|| UserError(format!("--scope is events, read or write, not \"{scope}\"")))?;
            let mut rt = ctx.runtime()?;
            let (row, secret) = rt.create_token(name, member, scope, actor).map_err(|e| ctx.engine_error(e))?;
            let json = serde_json::json!({"token": row, "secret": secret});
            show(ctx, &json, || {
                format!(
                    "token {} for {} ({}):\n{secret}\nKeep it now: closeloop stores only its digest and cannot show it again.",
                    row.name, row.member, row.scope
                )
            })
        }
        Some(TokensWhat::Revoke { name, actor }) => {
            let mut rt = ctx.runtime()?;
            rt.revoke_token(name, actor).map_err(|e| ctx.engine_error(e))?;
            show(ctx, &serde_json::json!({"revoked": name}), || format!("token {name} revoked"))
        }
    }
}

fn tokens_list(ctx: &Context) -> Result<ExitCode, UserError> {
    let rt = ctx.runtime()?;
    let tokens = rt.tokens().map_err(|e| ctx.engine_error(e))?;
    show(ctx, &tokens, || {
        let mut lines: Vec<String> = tokens
            .iter()
            .map(|t| {
                let state =
                    t.revoked_at.as_deref().map(|at| format!("revoked {at}")).unwrap_or_else(|| "active".into());
                format!("{:<20} {:<12} {:<7} {state}", t.name, t.member, t.scope)
            })
            .collect();
        lines.push(format!("{} token(s)", tokens.len()));
        lines.join("\n")
    })
}

/// `closeloop members password MEMBER`: the new password is the first line of standard input
/// (`--current` reads the member's current password from the second line: a member changing
/// their own).
pub(crate) fn password(ctx: &Context, member: &str, current: bool, actor: &str) -> Result<ExitCode, UserError> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut line = |what: &str| -> Result<String, UserError> {
        match lines.next() {
            Some(Ok(l)) => Ok(l.trim_end_matches(['\r', '\n']).to_string()),
            _ => Err(UserError(format!(
                "give the {what} on standard input (one line), e.g. `closeloop members password {member} < file`"
            ))),
        }
    };
    let new = line("new password")?;
    let old = if current { Some(line("current password (second line)")?) } else { None };
    let mut rt = ctx.runtime()?;
    rt.set_password(member, &new, old.as_deref(), actor).map_err(|e| ctx.engine_error(e))?;
    show(ctx, &serde_json::json!({"member": member, "password": "set"}), || {
        format!("password set for {member}; their other sessions have ended")
    })
}

/// `closeloop settings [set NAME VALUE]`.
fn settings(ctx: &Context, what: Option<&SettingsWhat>) -> Result<ExitCode, UserError> {
    let mut rt = ctx.runtime()?;
    if let Some(SettingsWhat::Set { name, value, actor }) = what {
        match name.as_str() {
            "public-url" | "public_url" => rt.set_public_url(value, actor).map_err(|e| ctx.engine_error(e))?,
            seller if seller.starts_with("seller-") => {
                rt.set_seller(seller, value, actor).map_err(|e| ctx.engine_error(e))?
            }
            other => {
                return Err(UserError(format!(
                    "there is no setting `{other}`; the settings are: public-url, seller-name, seller-address, seller-phone, seller-tax-id"
                )))
            }
        }
    }
    let url = rt.public_url().map_err(|e| ctx.engine_error(e))?;
    let seller = rt.seller().map_err(|e| ctx.engine_error(e))?;
    let shown: serde_json::Map<String, serde_json::Value> =
        seller.iter().map(|(label, v)| (label.to_string(), serde_json::json!(v))).collect();
    show(ctx, &serde_json::json!({"public_url": url, "seller": shown}), || {
        let mut said = match &url {
            Some(u) => format!("public-url {u}"),
            None => "public-url (not set: messages carry no link to a page)".into(),
        };
        for (label, v) in &seller {
            said.push_str(&format!("\n{label}: {v}"));
        }
        said
    })
}
