//! The validated configuration every command runs with (the second phase of parsing: the
//! global flags, checked), and what the commands share: opening the runtime, showing a
//! result as text or JSON, reading `--data`, and the user's errors.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use closeloop::clock::{Clock, ManualClock, SystemClock};
use closeloop::store::Store;
use closeloop::{EngineError, Runtime};
use serde_json::{json, Map, Value};

use crate::render;

/// Output for people or for programs; `csv` and `html` are for `closeloop report` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Human,
    Json,
    Csv,
    Html,
}

/// What a command reports when it fails for a reason the user can fix (exit 1).
pub(crate) struct UserError(pub(crate) String);

/// The global settings every command needs, checked: made from the raw flags by
/// [`Context::from_flags`] before any command runs.
pub struct Context {
    pub db: PathBuf,
    pub now: Option<jiff::Timestamp>,
    pub format: Format,
}

impl Context {
    /// Checks the raw global flags. A `--now` that is not RFC 3339 is a usage error (exit 2),
    /// like clap's own, so it is reported here rather than by each command.
    pub(crate) fn from_flags(db: PathBuf, now: Option<&str>, format: Format) -> Result<Context, ExitCode> {
        let now = match now {
            Some(text) => match text.parse::<jiff::Timestamp>() {
                Ok(at) => Some(at),
                Err(_) => {
                    eprintln!("error: --now \"{text}\" is not an RFC 3339 time such as 2026-11-26T09:00:00+08:00");
                    return Err(ExitCode::from(2));
                }
            },
            None => None,
        };
        Ok(Context { db, now, format })
    }

    pub(crate) fn runtime(&self) -> Result<Runtime, UserError> {
        open_runtime(&self.db, self.now).map_err(|e| match e {
            EngineError::Store(e) => {
                UserError(format!("cannot open {}: {e}", closeloop::store::shown_location(&self.db.to_string_lossy())))
            }
            e => self.engine_error(e),
        })
    }

    pub(crate) fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// Shows an engine error (with every field or row problem) and turns it into exit 1.
    pub(crate) fn engine_error(&self, e: EngineError) -> UserError {
        let problems: Vec<Value> = match &e {
            EngineError::Invalid(p) => p.iter().map(|p| json!(p)).collect(),
            EngineError::Import(r) => r.problems.iter().map(|p| json!(p)).collect(),
            EngineError::InvalidApp(d) | EngineError::Orphans(d) => d.iter().map(|d| json!(d)).collect(),
            _ => Vec::new(),
        };
        if self.json() {
            let _ = print(
                &serde_json::to_string_pretty(&json!({"error": e.to_string(), "problems": problems}))
                    .unwrap_or_default(),
            );
            return UserError(String::new());
        }
        let mut text = e.to_string();
        match &e {
            EngineError::Invalid(p) => {
                p.iter().for_each(|p| text.push_str(&format!("\n  {}: {} [{}]", p.field, p.message, p.code)))
            }
            EngineError::Import(r) => r.problems.iter().for_each(|p| text.push_str(&format!("\n  {p}"))),
            EngineError::InvalidApp(d) | EngineError::Orphans(d) => {
                d.iter().for_each(|d| text.push_str(&format!("\n{}", render::diagnostic(d, None).trim_end())))
            }
            // What to type next, which only the command line knows.
            EngineError::UnknownMember(_) => text.push_str("; load the team with `closeloop members import FILE.csv`"),
            EngineError::UnknownForm { hint, .. } if hint.contains("no app is installed") => {
                text.push_str(": install one with `closeloop install lead-followup` (see `closeloop templates`)")
            }
            _ => {}
        }
        UserError(text)
    }
}

/// `--data '{"k": v}'` or `--data @file.json`.
pub(crate) fn data(arg: Option<&str>) -> Result<Map<String, Value>, UserError> {
    let Some(arg) = arg else { return Ok(Map::new()) };
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).map_err(|e| UserError(format!("cannot read {path}: {e}")))?,
        None => arg.to_string(),
    };
    match serde_json::from_str(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(UserError("--data must be a JSON object of fields, like '{\"customer\": \"上海明远\"}'".into())),
        Err(e) => Err(UserError(format!("--data is not JSON: {e}"))),
    }
}

/// Prints `value` as JSON, or `human()` as text, by `--format`.
pub(crate) fn show(
    ctx: &Context,
    value: &impl serde::Serialize,
    human: impl FnOnce() -> String,
) -> Result<ExitCode, UserError> {
    if ctx.json() {
        print(&serde_json::to_string_pretty(value).unwrap_or_default())
    } else {
        print(&human())
    }
}

pub(crate) fn print(text: &str) -> Result<ExitCode, UserError> {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`closeloop schema | head`) is not an error worth reporting.
    let _ = writeln!(out, "{text}");
    Ok(ExitCode::SUCCESS)
}

/// Opens the database at `db` as a runtime: on the system clock, or at `now` (`--now`); with the
/// signing key from the environment (a secret manager), else the key file beside the database.
/// Each server worker and the scheduler thread open their own.
pub(crate) fn open_runtime(db: &std::path::Path, now: Option<jiff::Timestamp>) -> Result<Runtime, EngineError> {
    // A `postgres://` URL is a PostgreSQL database; anything else a SQLite file.
    let mut store = Store::connect(&db.to_string_lossy())?;
    if let Some(key) = std::env::var("CLOSELOOP_SIGNING_KEY").ok().filter(|k| !k.trim().is_empty()) {
        store.set_signing_key(key.trim().as_bytes());
    }
    let clock: Arc<dyn Clock> = match now {
        Some(at) => Arc::new(ManualClock::new(at)),
        None => Arc::new(SystemClock),
    };
    Runtime::open(store, clock)
}
