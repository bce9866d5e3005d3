//! The record commands: install, members import, submit, update, act, get, list, history,
//! import, export and audit verify. Each turns flags into one library call.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use closeloop::clock::{Clock, ManualClock, SystemClock};
use closeloop::store::{ListQuery, SortOrder, Store};
use closeloop::{EngineError, Runtime};
use closeloop::{ImportOptions, ImportReport};
use serde_json::{json, Map, Value};

use crate::{print, render, Format, UserError};

/// The global settings every record command needs.
pub struct Context {
    pub db: PathBuf,
    pub now: Option<jiff::Timestamp>,
    pub format: Format,
}

impl Context {
    pub(crate) fn runtime(&self) -> Result<Runtime, UserError> {
        let store = Store::open(&self.db).map_err(|e| UserError(format!("cannot open {}: {e}", self.db.display())))?;
        let clock: Arc<dyn Clock> = match self.now {
            Some(at) => Arc::new(ManualClock::new(at)),
            None => Arc::new(SystemClock),
        };
        Runtime::open(store, clock).map_err(|e| self.engine_error(e))
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
pub fn data(arg: Option<&str>) -> Result<Map<String, Value>, UserError> {
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

/// `closeloop install PATH|NAME`.
pub fn install(ctx: &Context, target: &str, force: bool, actor: &str) -> Result<ExitCode, UserError> {
    let files = match closeloop::template(target) {
        Some(t) if !Path::new(target).exists() => t.app_files(),
        _ => closeloop::read_app(Path::new(target), 2 * 1024 * 1024)
            .map_err(|d| UserError(render::diagnostic(&d, None)))?,
    };
    let mut rt = ctx.runtime()?;
    let report = rt.install(&files, actor, force).map_err(|e| ctx.engine_error(e))?;
    show(ctx, &report, || {
        let mut s =
            format!("installed {} revision {} (forms: {})", report.app, report.revision, report.forms.join(", "));
        for o in &report.orphaned {
            s.push_str(&format!("\nforced: {o}"));
        }
        s
    })
}

/// `closeloop members import FILE`.
pub fn members_import(ctx: &Context, file: &Path, actor: &str) -> Result<ExitCode, UserError> {
    let bytes = std::fs::read(file).map_err(|e| UserError(format!("cannot read {}: {e}", file.display())))?;
    let mut rt = ctx.runtime()?;
    let report = rt.import_members(&bytes, actor).map_err(|e| ctx.engine_error(e))?;
    show(ctx, &report, || {
        format!(
            "{} members: {} new, {} changed, {} unchanged",
            report.rows, report.created, report.updated, report.unchanged
        )
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
pub fn get(ctx: &Context, form: &str, id: &str) -> Result<ExitCode, UserError> {
    let rt = ctx.runtime()?;
    let r = rt.get(form, id).map_err(|e| ctx.engine_error(e))?;
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
    let rows = rt.list(form, &query).map_err(|e| ctx.engine_error(e))?;
    show(ctx, &rows, || {
        let mut s: Vec<String> = rows.iter().map(record_line).collect();
        s.push(format!("{} record(s)", rows.len()));
        s.join("\n")
    })
}

/// `closeloop history FORM ID`.
pub fn history(ctx: &Context, form: &str, id: &str) -> Result<ExitCode, UserError> {
    let rt = ctx.runtime()?;
    let versions = rt.history(form, id).map_err(|e| ctx.engine_error(e))?;
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
pub fn import(
    ctx: &Context,
    form: &str,
    file: &Path,
    skip_invalid: bool,
    rejects: Option<&Path>,
    actor: &str,
) -> Result<ExitCode, UserError> {
    let bytes = std::fs::read(file).map_err(|e| UserError(format!("cannot read {}: {e}", file.display())))?;
    let mut rt = ctx.runtime()?;
    let terminal = std::io::stderr().is_terminal();
    let mut progress = |done: usize| {
        if terminal && done % 500 == 0 {
            eprint!("\rimporting: {done} rows");
        }
    };
    let options = ImportOptions { skip_invalid, actor: actor.to_string() };
    let result = rt.import_csv(form, &bytes, &options, &mut progress);
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
pub fn export(ctx: &Context, form: &str, out: Option<&Path>) -> Result<ExitCode, UserError> {
    let rt = ctx.runtime()?;
    let n = match out {
        Some(path) => {
            let file =
                std::fs::File::create(path).map_err(|e| UserError(format!("cannot write {}: {e}", path.display())))?;
            let mut w = std::io::BufWriter::new(file);
            let _ = w.write_all(b"\xEF\xBB\xBF");
            let n = rt.export_csv(form, &mut w).map_err(|e| ctx.engine_error(e))?;
            w.flush().map_err(|e| UserError(e.to_string()))?;
            eprintln!("exported {n} record(s) to {}", path.display());
            n
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            rt.export_csv(form, &mut lock).map_err(|e| ctx.engine_error(e))?
        }
    };
    let _ = n;
    Ok(ExitCode::SUCCESS)
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

/// `closeloop script test ID`.
pub fn script_test(
    ctx: &Context,
    id: &str,
    data: Map<String, Value>,
    record: Option<&str>,
    actor: &str,
) -> Result<ExitCode, UserError> {
    let rt = ctx.runtime()?;
    let trial = rt.try_rule(id, data, record, actor).map_err(|e| ctx.engine_error(e))?;
    show(ctx, &trial, || {
        let mut s = format!(
            "{} {} on {} (a dry run: nothing is written)\nresult: {}\n",
            trial.kind, trial.id, trial.form, trial.result
        );
        if let Some(candidates) = trial.detail["candidates"].as_array() {
            s.push_str("candidates:\n");
            for c in candidates {
                let excluded = c["excluded"].as_str().map(|e| format!("  excluded: {e}")).unwrap_or_default();
                s.push_str(&format!("  {:<10} load {}{excluded}\n", c["id"].as_str().unwrap_or(""), c["load"]));
            }
        }
        s.push_str("host calls:\n");
        for call in &trial.host_calls {
            s.push_str(&format!("  {call}\n"));
        }
        s.push_str(&format!("operations: {}\ntime: {:.3} ms", trial.operations, trial.micros as f64 / 1000.0));
        s
    })
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

/// `closeloop board NAME`.
pub fn board(ctx: &Context, name: &str) -> Result<ExitCode, UserError> {
    let rt = ctx.runtime()?;
    let items = rt.board(name).map_err(|e| ctx.engine_error(e))?;
    show(ctx, &items, || {
        let mut s: Vec<String> =
            items.iter().map(|i| format!("{:<18} {:>5}h  {}", i.record, i.age_hours, i.reason)).collect();
        s.push(format!("{} record(s) on board {name}", items.len()));
        s.join("\n")
    })
}
