//! The record commands: `submit`, `update`, `act`, `get`, `list`, `history`, `import`,
//! `export`, `score` and `grade`. Each turns flags into one library call.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use closeloop::store::{ListQuery, SortOrder};
use closeloop::{ImportOptions, ImportReport};
use serde_json::{json, Map, Value};

use crate::context::{data, show};
use crate::{Context, UserError};

/// The record commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a record.
    Submit {
        /// The form.
        form: String,
        /// The fields as JSON, or @file.json (one object, or one object per line: a record each).
        #[arg(long)]
        data: String,
        /// The member doing it.
        #[arg(long = "as")]
        actor: String,
    },
    /// Change fields of a record (a partial patch; null clears a field).
    Update {
        /// The form.
        form: String,
        /// The record id.
        id: String,
        /// The changed fields as JSON, or @file.json.
        #[arg(long)]
        data: String,
        /// The member doing it.
        #[arg(long = "as")]
        actor: String,
    },
    /// Perform an action on a record (a state transition such as `contact`).
    Act {
        /// The form.
        form: String,
        /// The record id.
        id: String,
        /// The action.
        action: String,
        /// The member doing it.
        #[arg(long = "as")]
        actor: String,
        /// Fields the action needs, as JSON or @file.json.
        #[arg(long)]
        data: Option<String>,
    },
    /// Show a record.
    Get {
        /// The form.
        form: String,
        /// The record id.
        id: String,
        /// As this member may see it: the form's `read` rules and fields' `read_roles` apply.
        #[arg(long = "as")]
        member: Option<String>,
    },
    /// List records (all, unless --limit/--offset).
    List {
        /// The form.
        form: String,
        /// Only records whose FIELD equals VALUE (repeatable).
        #[arg(long = "where", value_name = "FIELD=VALUE")]
        filters: Vec<String>,
        /// Only records in this state.
        #[arg(long)]
        state: Option<String>,
        /// Only records owned by this member.
        #[arg(long)]
        owner: Option<String>,
        /// Sort by a field, `created_at` (default), `updated_at` or `id`.
        #[arg(long)]
        sort: Option<String>,
        /// Largest first.
        #[arg(long)]
        desc: bool,
        /// As this member may see it: the form's `read` rules and fields' `read_roles` apply.
        #[arg(long = "as")]
        member: Option<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<u64>,
        /// Skip this many.
        #[arg(long)]
        offset: Option<u64>,
    },
    /// Every version of a record with what changed.
    History {
        /// The form.
        form: String,
        /// The record id.
        id: String,
        /// As this member may see it: the form's `read` rules and fields' `read_roles` apply.
        #[arg(long = "as")]
        member: Option<String>,
    },
    /// Import a CSV file (UTF-8 or GB18030; headers are field ids or labels).
    Import {
        /// The form.
        form: String,
        /// The CSV file.
        file: PathBuf,
        /// Import the good rows; write the bad ones with their errors to a rejects file.
        #[arg(long)]
        skip_invalid: bool,
        /// Where to write rejected rows (default FILE.rejects.csv).
        #[arg(long)]
        rejects: Option<PathBuf>,
        /// Who imports.
        #[arg(long = "as", default_value = "import")]
        actor: String,
        /// For a file of events (`import payment.received payments.csv --key payment_no`): the
        /// column that numbers each one, so each is received once however often it is imported.
        #[arg(long)]
        key: Option<String>,
    },
    /// Export a form's records as CSV (stdout unless --out).
    /// Sensitive fields (phone numbers, floor prices) are left out unless asked for; an export
    /// with them is on the audit trail under the name given with --as.
    Export {
        /// The form.
        form: String,
        /// The file to write.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Include sensitive fields and columns (audited).
        #[arg(long)]
        include_sensitive: bool,
        /// Add owner, created_at, updated_at and when each action was first taken
        /// (`contact_at`), in the app's time zone: what a spreadsheet needs for the rates.
        #[arg(long)]
        system_columns: bool,
        /// Who exports. Alone: the export as this member may see it (the records they may read,
        /// the fields their roles see). With --include-sensitive: recorded as who took it.
        #[arg(long = "as", default_value = "")]
        actor: String,
    },
    /// Recompute a score for a record (the customer's health) and store it with its reasons.
    Score {
        /// The form.
        form: String,
        /// The record id.
        id: String,
        /// The score's id.
        score: String,
        /// Who asks.
        #[arg(long = "as", default_value = "system")]
        actor: String,
    },
    /// Run a grade on a record (the quote's risk) and store the level and summary.
    Grade {
        /// The form.
        form: String,
        /// The record id.
        id: String,
        /// The grade's id.
        grade: String,
        /// Who asks.
        #[arg(long = "as", default_value = "system")]
        actor: String,
    },
}

/// Runs one record command.
pub(crate) fn run(ctx: &Context, cmd: &Command) -> Result<ExitCode, UserError> {
    match cmd {
        Command::Submit { form, data: given, actor } => submit(ctx, form, given, actor),
        Command::Update { form, id, data: given, actor } => {
            data(Some(given)).and_then(|d| update(ctx, form, id, d, actor))
        }
        Command::Act { form, id, action, actor, data: given } => {
            data(given.as_deref()).and_then(|d| act(ctx, form, id, action, d, actor))
        }
        Command::Get { form, id, member } => get(ctx, form, id, member.as_deref()),
        Command::List { form, filters, state, owner, sort, desc, member, limit, offset } => list(
            ctx,
            form,
            ListArgs {
                filters: filters.clone(),
                state: state.clone(),
                owner: owner.clone(),
                sort: sort.clone(),
                desc: *desc,
                limit: *limit,
                offset: *offset,
                member: member.clone(),
            },
        ),
        Command::History { form, id, member } => history(ctx, form, id, member.as_deref()),
        Command::Import { form, file, skip_invalid, rejects, actor, key } => match key {
            Some(key) => import_events(ctx, form, file, key, actor),
            None => import(ctx, form, file, *skip_invalid, rejects.as_deref(), actor),
        },
        Command::Export { form, out, include_sensitive, system_columns, actor } => {
            let options = closeloop::ExportOptions {
                include_sensitive: *include_sensitive,
                actor: actor.clone(),
                system_columns: *system_columns,
            };
            export(ctx, form, out.as_deref(), &options)
        }
        Command::Score { form, id, score: which, actor } => score(ctx, form, id, which, actor),
        Command::Grade { form, id, grade: which, actor } => grade(ctx, form, id, which, actor),
    }
}

fn record_line(r: &closeloop::Record) -> String {
    let state = r.state.as_deref().map(|s| format!(" [{s}]")).unwrap_or_default();
    let owner = r.owner.as_deref().map(|o| format!(" owner {o}")).unwrap_or_default();
    format!("{} v{}{state}{owner}", r.id, r.version)
}

fn record_text(r: &closeloop::Record) -> String {
    let mut out = format!("{} {}\n", r.form, record_line(r));
    for (k, v) in &r.data {
        out.push_str(&format!("  {k}: {}\n", closeloop::format_cell(Some(v))));
    }
    out.trim_end().to_string()
}

/// `--data @file.jsonl`: one JSON object per line.
pub fn data_lines(arg: &str) -> Result<Option<Vec<Map<String, Value>>>, UserError> {
    let Some(path) = arg.strip_prefix('@') else { return Ok(None) };
    let text = std::fs::read_to_string(path).map_err(|e| UserError(format!("cannot read {path}: {e}")))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() < 2 || serde_json::from_str::<Value>(&text).is_ok() {
        return Ok(None);
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| match serde_json::from_str(l) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(UserError(format!("{path} line {}: not a JSON object of fields", i + 1))),
        })
        .map(|r| r.map(Some))
        .collect::<Result<Vec<_>, _>>()
        .map(|v| Some(v.into_iter().flatten().collect()))
}

/// `closeloop submit FORM --data JSON --as MEMBER`; with `--data @file.jsonl`, one record per
/// line, each its own transaction.
pub fn submit(ctx: &Context, form: &str, data_arg: &str, actor: &str) -> Result<ExitCode, UserError> {
    let mut rt = ctx.runtime()?;
    if let Some(batch) = data_lines(data_arg)? {
        let mut created = Vec::new();
        for (i, data) in batch.into_iter().enumerate() {
            match rt.submit(form, data, actor) {
                Ok(r) => created.push(r),
                Err(e) => {
                    let e = ctx.engine_error(e);
                    return Err(UserError(format!(
                        "line {}: {} ({} record(s) created before it)",
                        i + 1,
                        e.0,
                        created.len()
                    )));
                }
            }
        }
        return show(ctx, &created, || format!("created {} record(s)", created.len()));
    }
    let r = rt.submit(form, data(Some(data_arg))?, actor).map_err(|e| ctx.engine_error(e))?;
    show(ctx, &r, || format!("created {}", record_text(&r)))
}

/// `closeloop update FORM ID --data JSON --as MEMBER`.
pub fn update(
    ctx: &Context,
    form: &str,
    id: &str,
    data: Map<String, Value>,
    actor: &str,
) -> Result<ExitCode, UserError> {
    let mut rt = ctx.runtime()?;
    let r = rt.update(form, id, data, actor).map_err(|e| ctx.engine_error(e))?;
    show(ctx, &r, || format!("updated {}", record_text(&r)))
}

/// `closeloop act FORM ID ACTION --as MEMBER [--data JSON]`.
pub fn act(
    ctx: &Context,
    form: &str,
    id: &str,
    action: &str,
    data: Map<String, Value>,
    actor: &str,
) -> Result<ExitCode, UserError> {
    let mut rt = ctx.runtime()?;
    let r = rt.act(form, id, action, actor, data).map_err(|e| ctx.engine_error(e))?;
    show(ctx, &r, || format!("{action}: {}", record_text(&r)))
}

/// `closeloop get FORM ID`.
pub fn get(ctx: &Context, form: &str, id: &str, member: Option<&str>) -> Result<ExitCode, UserError> {
    let rt = ctx.runtime()?;
    let r = match member {
        Some(m) => rt.get_as(form, id, m),
        None => rt.get(form, id),
    }
    .map_err(|e| ctx.engine_error(e))?;
    show(ctx, &r, || record_text(&r))
}

/// Flags of `closeloop list`.
pub struct ListArgs {
    pub filters: Vec<String>,
    pub state: Option<String>,
    pub owner: Option<String>,
    pub sort: Option<String>,
    pub desc: bool,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    pub member: Option<String>,
}

/// `closeloop list FORM`.
pub fn list(ctx: &Context, form: &str, args: ListArgs) -> Result<ExitCode, UserError> {
    let mut filters = Vec::new();
    for f in &args.filters {
        let (field, value) =
            f.split_once('=').ok_or_else(|| UserError(format!("--where takes FIELD=VALUE, got \"{f}\"")))?;
        // A value that reads as JSON (a number, true) is compared as such; anything else is text.
        let value = serde_json::from_str::<Value>(value)
            .ok()
            .filter(|v| !v.is_object() && !v.is_array())
            .unwrap_or(Value::String(value.into()));
        filters.push((field.trim().to_string(), value));
    }
    let query = ListQuery {
        filters,
        state: args.state,
        owner: args.owner,
        sort: args.sort,
        order: if args.desc { SortOrder::Desc } else { SortOrder::Asc },
        limit: args.limit,
        offset: args.offset.unwrap_or(0),
    };
    let rt = ctx.runtime()?;
    let rows = match &args.member {
        Some(m) => rt.list_as(form, &query, m),
        None => rt.list(form, &query),
    }
    .map_err(|e| ctx.engine_error(e))?;
    show(ctx, &rows, || {
        let mut s: Vec<String> = rows.iter().map(record_line).collect();
        s.push(format!("{} record(s)", rows.len()));
        s.join("\n")
    })
}

/// `closeloop history FORM ID`.
pub fn history(ctx: &Context, form: &str, id: &str, member: Option<&str>) -> Result<ExitCode, UserError> {
    let rt = ctx.runtime()?;
    let versions = match member {
        Some(m) => rt.history_as(form, id, m),
        None => rt.history(form, id),
    }
    .map_err(|e| ctx.engine_error(e))?;
    show(ctx, &versions, || {
        let mut out = String::new();
        for v in &versions {
            let action = v.action.as_deref().map(|a| format!(" {a}")).unwrap_or_default();
            out.push_str(&format!("v{} {} {} {}{action}\n", v.version, v.at, v.actor, v.kind));
            for note in &v.notes {
                out.push_str(&format!("  assigned {note}\n"));
            }
            for c in &v.changes {
                out.push_str(&format!(
                    "  {}: {} → {}\n",
                    c.field,
                    closeloop::format_cell(Some(&c.from)),
                    closeloop::format_cell(Some(&c.to))
                ));
            }
        }
        out.trim_end().to_string()
    })
}

/// `closeloop import FORM FILE`.
/// `closeloop import EVENT FILE --key COLUMN`: one event per row, each received once.
fn import_events(ctx: &Context, event: &str, file: &Path, key: &str, actor: &str) -> Result<ExitCode, UserError> {
    let bytes = std::fs::read(file).map_err(|e| UserError(format!("cannot read {}: {e}", file.display())))?;
    if bytes.len() as u64 > closeloop::MAX_IMPORT_BYTES {
        return Err(UserError(format!("{} is too large for one import: split it", file.display())));
    }
    let mut rt = ctx.runtime()?;
    let report = rt.import_events(event, &bytes, key, actor).map_err(|e| ctx.engine_error(e))?;
    show(ctx, &report, || {
        let mut s = format!(
            "{} rows: {} received, {} received before, {} refused",
            report.rows,
            report.received,
            report.already,
            report.problems.len()
        );
        for p in &report.problems {
            let column = p.column.as_deref().map(|c| format!(", {c}")).unwrap_or_default();
            s.push_str(&format!("\n  row {}{column}: [{}] {}", p.row, p.code, p.message));
        }
        s
    })?;
    Ok(if report.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

pub fn import(
    ctx: &Context,
    form: &str,
    file: &Path,
    skip_invalid: bool,
    rejects: Option<&Path>,
    actor: &str,
) -> Result<ExitCode, UserError> {
    // Read as a stream: the file is never held whole in memory, and one past the cap is refused
    // before a byte of it is parsed.
    let cannot = |e: std::io::Error| UserError(format!("cannot read {}: {e}", file.display()));
    let handle = std::fs::File::open(file).map_err(cannot)?;
    let size = handle.metadata().map_err(cannot)?.len();
    if size > closeloop::MAX_IMPORT_BYTES {
        return Err(UserError(format!(
            "{} is {} MiB; an import takes at most {} MiB: split it into smaller files",
            file.display(),
            size / (1024 * 1024),
            closeloop::MAX_IMPORT_BYTES / (1024 * 1024)
        )));
    }
    let mut input = std::io::BufReader::with_capacity(256 * 1024, handle);
    let mut rt = ctx.runtime()?;
    let terminal = std::io::stderr().is_terminal();
    let mut progress = |done: usize| {
        if terminal && done % 500 == 0 {
            eprint!("\rimporting: {done} rows");
        }
    };
    let options = ImportOptions { skip_invalid, actor: actor.to_string() };
    let result = rt.import_csv_from(form, &mut input, &options, &mut progress);
    if terminal {
        eprint!("\r\x1b[2K");
    }
    let report = result.map_err(|e| ctx.engine_error(e))?;
    let mut rejects_file = None;
    if report.rejected > 0 {
        let path = rejects.map(Path::to_path_buf).unwrap_or_else(|| file.with_extension("rejects.csv"));
        write_rejects(&path, &report)?;
        rejects_file = Some(path);
    }
    show(ctx, &json!({"report": report, "rejects": rejects_file}), || {
        let mut s = format!(
            "{} rows: {} new, {} updated, {} unchanged, {} rejected",
            report.rows, report.created, report.updated, report.unchanged, report.rejected
        );
        for p in &report.problems {
            s.push_str(&format!("\n  {p}"));
        }
        if let Some(path) = &rejects_file {
            s.push_str(&format!("\nrejected rows with their errors: {}", path.display()));
        }
        s
    })
}

fn write_rejects(path: &Path, report: &ImportReport) -> Result<(), UserError> {
    let file = std::fs::File::create(path).map_err(|e| UserError(format!("cannot write {}: {e}", path.display())))?;
    let mut out = std::io::BufWriter::new(file);
    // A BOM so Excel opens the Chinese text correctly.
    let _ = out.write_all(b"\xEF\xBB\xBF");
    let mut w = csv::Writer::from_writer(out);
    for row in &report.rejects {
        let row: Vec<String> = row.iter().map(|c| closeloop::guard(c)).collect();
        w.write_record(&row).map_err(|e| UserError(e.to_string()))?;
    }
    w.flush().map_err(|e| UserError(e.to_string()))
}

/// `closeloop export FORM [--out FILE]`.
pub fn export(
    ctx: &Context,
    form: &str,
    out: Option<&Path>,
    options: &closeloop::ExportOptions,
) -> Result<ExitCode, UserError> {
    let mut rt = ctx.runtime()?;
    let member = options.actor.trim();
    let as_member = !options.include_sensitive && !member.is_empty();
    let mut write = |w: &mut dyn Write| match as_member {
        true => rt.export_csv_as_with(form, w, member, options),
        false => rt.export_csv_with(form, w, options),
    };
    let n = match out {
        Some(path) => {
            let file =
                std::fs::File::create(path).map_err(|e| UserError(format!("cannot write {}: {e}", path.display())))?;
            let mut w = std::io::BufWriter::new(file);
            let _ = w.write_all(b"\xEF\xBB\xBF");
            let n = write(&mut w).map_err(|e| ctx.engine_error(e))?;
            w.flush().map_err(|e| UserError(e.to_string()))?;
            eprintln!("exported {n} record(s) to {}", path.display());
            n
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            write(&mut lock).map_err(|e| ctx.engine_error(e))?
        }
    };
    let _ = n;
    Ok(ExitCode::SUCCESS)
}

/// `closeloop score FORM ID SCORE`.
pub fn score(ctx: &Context, form: &str, id: &str, score: &str, actor: &str) -> Result<ExitCode, UserError> {
    let mut rt = ctx.runtime()?;
    let (record, scored) = rt.score(form, id, score, actor).map_err(|e| ctx.engine_error(e))?;
    show(ctx, &json!({"record": record, "score": scored}), || {
        let mut s = format!("{} {} = {} (version {})", record.id, score, scored.value, record.version);
        for r in &scored.reasons {
            s.push_str(&format!("\n  because: {r}"));
        }
        for t in &scored.crossed_below {
            s.push_str(&format!("\n  fell below {t}"));
        }
        s
    })
}

/// `closeloop grade FORM ID GRADE`.
pub fn grade(ctx: &Context, form: &str, id: &str, grade: &str, actor: &str) -> Result<ExitCode, UserError> {
    let mut rt = ctx.runtime()?;
    let (record, graded) = rt.grade(form, id, grade, actor).map_err(|e| ctx.engine_error(e))?;
    show(ctx, &json!({"record": record, "grade": graded}), || {
        format!("{} {grade}: {} (version {})", record.id, graded.summary, record.version)
    })
}
