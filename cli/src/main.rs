//! The `closeloop` command: turns flags into library calls and results into text or JSON.
//! No product logic lives here.
//!
//! Parsing has two phases: clap reads the raw flags into [`Flags`], then [`Context::from_flags`]
//! checks the global ones into the configuration every command runs with. Each command area
//! lives in its own file with its subcommand enum and its handlers; this file holds the global
//! flags, the top-level enum that gathers the areas, and the dispatch.

mod approvals;
mod apps;
mod audit;
mod bench;
mod context;
mod demo;
mod figures;
mod flows;
mod identity;
mod locale;
mod members;
mod moving;
mod records;
mod render;
mod report;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

pub(crate) use context::{print, Context, Format, UserError};

/// closeloop: forms, rules, timers and approvals that close the loops sales teams lose deals in.
#[derive(Debug, Parser)]
#[command(
    name = "closeloop",
    version,
    about = "The closeloop command: glue between a terminal and the closeloop library. It is the \
             operator's tool for whoever holds the database file, and `--as` is taken on the operator's word. \
             Members sign in over `closeloop serve` (/api/v1), where `--as` does not exist.",
    max_term_width = 100
)]
struct Flags {
    /// The database file.
    #[arg(long, global = true, env = "CLOSELOOP_DB", default_value = "./closeloop.db")]
    db: PathBuf,
    /// The time to act at, RFC 3339 (e.g. 2026-11-26T09:00:00+08:00); default: the system clock.
    #[arg(long, global = true, env = "CLOSELOOP_NOW")]
    now: Option<String>,
    /// Output for people or for programs.
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    format: Format,
    #[command(subcommand)]
    command: Command,
}

/// Every subcommand, gathered from the areas; they stay top-level words on the command line
/// (`closeloop submit`, not `closeloop records submit`).
#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Apps(apps::Command),
    #[command(flatten)]
    Members(members::Command),
    #[command(flatten)]
    Identity(identity::Command),
    #[command(flatten)]
    Records(records::Command),
    #[command(flatten)]
    Flows(flows::Command),
    #[command(flatten)]
    Audit(audit::Command),
    #[command(flatten)]
    Approvals(approvals::Command),
    #[command(flatten)]
    Report(report::Command),
    #[command(flatten)]
    Serve(serve::Command),
    #[command(flatten)]
    Bench(bench::Command),
    #[command(flatten)]
    Moving(moving::Command),
}

/// The order `closeloop --help` lists the commands in. Flattened areas would list theirs area by
/// area; this keeps the order users and scripts knew before the areas were split into files.
const HELP_ORDER: &[&str] = &[
    "validate",
    "schema",
    "templates",
    "init",
    "demo",
    "install",
    "members",
    "tokens",
    "settings",
    "submit",
    "update",
    "act",
    "get",
    "list",
    "history",
    "activity",
    "import",
    "export",
    "audit",
    "score",
    "grade",
    "board",
    "event",
    "tick",
    "tasks",
    "task",
    "outbox",
    "channels",
    "run",
    "serve",
    "approvals",
    "approve",
    "reject",
    "sign-link",
    "sign",
    "pdf",
    "report",
    "recall",
    "script",
    "bench",
    "migrate",
];

/// The clap command with the help order applied.
fn cli() -> clap::Command {
    HELP_ORDER
        .iter()
        .enumerate()
        .fold(Flags::command(), |cmd, (i, name)| cmd.mut_subcommand(*name, |s| s.display_order(i)))
}

fn main() -> ExitCode {
    // Phase one: the raw flags (clap prints usage errors and exits 2 itself).
    let mut matches = cli().get_matches();
    let flags = match Flags::from_arg_matches_mut(&mut matches) {
        Ok(flags) => flags,
        Err(e) => e.format(&mut cli()).exit(),
    };
    // Phase two: the checked configuration.
    let ctx = match Context::from_flags(flags.db, flags.now.as_deref(), flags.format) {
        Ok(ctx) => ctx,
        Err(code) => return code,
    };
    if matches!(flags.format, Format::Csv | Format::Html) && !matches!(flags.command, Command::Report(_)) {
        eprintln!("error: --format csv and html are for `closeloop report`; other commands print human or json");
        return ExitCode::from(2);
    }
    let result = match &flags.command {
        Command::Apps(cmd) => apps::run(&ctx, cmd),
        Command::Members(cmd) => members::run(&ctx, cmd),
        Command::Identity(cmd) => identity::run(&ctx, cmd),
        Command::Records(cmd) => records::run(&ctx, cmd),
        Command::Flows(cmd) => flows::run(&ctx, cmd),
        Command::Audit(cmd) => audit::run(&ctx, cmd),
        Command::Approvals(cmd) => approvals::run(&ctx, cmd),
        Command::Report(cmd) => report::run(&ctx, cmd),
        Command::Serve(cmd) => serve::run(&ctx, cmd),
        Command::Bench(cmd) => bench::run(&ctx, cmd),
        Command::Moving(cmd) => moving::run(&ctx, cmd),
    };
    match result {
        Ok(code) => code,
        Err(UserError(message)) => {
            if !message.is_empty() {
                // JSON errors stay as they are, for programs.
                let json = ctx.format == Format::Json;
                let (prefix, message) = if json {
                    ("error: ", message)
                } else {
                    (locale::pick("错误：", "error: "), locale::say(&message))
                };
                eprintln!("{prefix}{message}");
            }
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// A command added to an area but not to `HELP_ORDER` would sort first in `--help`.
    #[test]
    fn help_order_names_every_command_once() {
        let mut listed: Vec<&str> = super::HELP_ORDER.to_vec();
        listed.sort_unstable();
        let mut commands: Vec<String> =
            super::Flags::command().get_subcommands().map(|s| s.get_name().to_string()).collect();
        commands.sort_unstable();
        assert_eq!(listed, commands);
        super::cli().debug_assert();
    }
}
