//! `closeloop migrate`: moves an installation from its SQLite file to a PostgreSQL database.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use closeloop::store::{is_postgres_url, shown_location, Store};
use closeloop::Runtime;
use serde_json::json;

use crate::{print, Context, UserError};

/// The moving command.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Copy an installation from its SQLite file into a new, empty PostgreSQL database: apps,
    /// members, records, the audit trail (it verifies on the other side), timers, tasks, the
    /// outbox and settings, in one transaction. A target that holds anything is refused.
    Migrate {
        /// The SQLite file the installation runs on now.
        #[arg(long)]
        from: PathBuf,
        /// The PostgreSQL database to move it into (`postgres://user@host:5432/closeloop`).
        #[arg(long)]
        to: String,
    },
}

/// Runs `closeloop migrate --from FILE.db --to postgres://…`.
pub(crate) fn run(ctx: &Context, cmd: &Command) -> Result<ExitCode, UserError> {
    let Command::Migrate { from, to } = cmd;
    if !is_postgres_url(to) {
        return Err(UserError(format!("--to must be a postgres:// URL; {to} is not one")));
    }
    if !from.is_file() {
        return Err(UserError(format!("{} is not a closeloop database file", from.display())));
    }
    let source = crate::context::open_runtime(from, ctx.now).map_err(|e| ctx.engine_error(e))?;
    let shown = shown_location(to);
    let mut target = Store::open_postgres(to).map_err(|e| UserError(format!("cannot open {shown}: {e}")))?;
    let moved = source.move_into(&mut target).map_err(|e| ctx.engine_error(e))?;
    // The other side must hold the same chain and rows: checked there, as a node would.
    target.set_signing_key(b"unused: the check signs nothing");
    let clock: std::sync::Arc<dyn closeloop::clock::Clock> = std::sync::Arc::new(closeloop::clock::SystemClock);
    let moved_rt = Runtime::open(target, clock).map_err(|e| ctx.engine_error(e))?;
    let check = moved_rt.verify_audit().map_err(|e| ctx.engine_error(e))?;
    let rows: usize = moved.tables.iter().map(|(_, n)| n).sum();
    let key = closeloop::store::key_file(from);
    let files = {
        let mut name = from.as_os_str().to_owned();
        name.push(".files");
        PathBuf::from(name)
    };
    if ctx.json() {
        let tables: serde_json::Map<String, serde_json::Value> =
            moved.tables.iter().map(|(t, n)| (t.clone(), json!(n))).collect();
        return print(
            &json!({"to": shown, "rows": rows, "tables": tables, "events": check.events,
                    "verified": check.problem.is_none(), "head": check.head})
            .to_string(),
        );
    }
    let mut out = format!("moved {} into {shown}: {rows} rows in {} tables\n", from.display(), moved.tables.len());
    for (table, n) in moved.tables.iter().filter(|(_, n)| *n > 0) {
        out.push_str(&format!("  {table:<20} {n}\n"));
    }
    match &check.problem {
        None => out.push_str(&format!("audit ok there: {} events; head {}\n", check.events, check.head)),
        Some(p) => return Err(UserError(format!("{out}the moved audit trail does not verify: {p}"))),
    }
    if key.exists() {
        out.push_str(&format!(
            "signing links made before keep working when every node has CLOSELOOP_SIGNING_KEY set to the contents of {}\n",
            key.display()
        ));
    }
    if files.is_dir() {
        out.push_str(&format!(
            "uploaded files: copy {} to the folder every node has as CLOSELOOP_FILES\n",
            files.display()
        ));
    }
    print(out.trim_end())
}
