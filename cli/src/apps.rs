//! The app commands: `validate`, `schema`, `templates`, `init`, `demo`, `install` and
//! `script test`: checking an app, starting one from a template, putting it in the database,
//! and trying its rules.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use closeloop::{Loaded, Loader};
use serde_json::{Map, Value};

use crate::context::{data, show};
use crate::{print, render, Context, Format, UserError};

/// The app commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check apps: an app folder or an app.yaml, several at once. Exit 1 when any has an error.
    Validate {
        /// App folders or app.yaml files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the app language (or write it to a file, for an editor).
    Schema {
        /// Write it here instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List the bundled app templates.
    Templates,
    /// Copy a bundled template into a new folder, to edit.
    Init {
        /// The folder to create.
        dir: PathBuf,
        /// The template's name (see `closeloop templates`).
        #[arg(long)]
        template: String,
    },
    /// Simulate one month of a 236-rep sales team on the three templates, through the real
    /// engine on a SQLite file, and report action penetration against the targets.
    Demo {
        /// The database to write (an earlier demo's is replaced; any other file is refused).
        #[arg(long, default_value = "closeloop-demo.db")]
        out: PathBuf,
        /// The seed of the simulation: the same seed gives the same month.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// How many sales reps.
        #[arg(long, default_value_t = 236)]
        reps: usize,
        /// How many days, from Monday 2026-11-02.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(i64).range(1..=92))]
        days: i64,
    },
    /// Install an app (a folder, an app.yaml, or a bundled template's name) into the database.
    Install {
        /// App folder, app.yaml, or template name.
        target: String,
        /// Install even if stored records would be orphaned (audited).
        #[arg(long)]
        force: bool,
        /// Also load the app's sample data: `data/members.csv` (the team), then each `seed:` file
        /// into its form, in order, all or nothing per file.
        #[arg(long)]
        with_sample_data: bool,
        /// Who installs.
        #[arg(long = "as", default_value = "system")]
        actor: String,
    },
    /// Try an app's rules before they go live.
    Script {
        #[command(subcommand)]
        what: ScriptWhat,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ScriptWhat {
    /// Run an assignment rule or a grade against a record, without writing anything.
    Test {
        /// The assignment rule or grade id (`lead_by_region`, `quote_risk`).
        id: String,
        /// The record's fields as JSON, or @file.json.
        #[arg(long)]
        data: Option<String>,
        /// A stored record's id (its fields, overridden by --data).
        #[arg(long)]
        record: Option<String>,
        /// Who is acting (for conditions on roles).
        #[arg(long = "as", default_value = "system")]
        actor: String,
    },
}

/// Runs one app command.
pub(crate) fn run(ctx: &Context, cmd: &Command) -> Result<ExitCode, UserError> {
    match cmd {
        Command::Validate { paths } => validate(paths, ctx.format),
        Command::Schema { out: None } => print(closeloop::SCHEMA_JSON.trim_end()),
        Command::Schema { out: Some(path) } => {
            write_file(path, closeloop::SCHEMA_JSON)?;
            print(&format!("wrote the app language's JSON Schema to {}", path.display()))
        }
        Command::Templates => templates(ctx.format),
        Command::Init { dir, template } => init(dir, template),
        Command::Demo { out, seed, reps, days } => {
            demo(ctx, &crate::demo::Options { out: out.clone(), seed: *seed, reps: *reps, days: *days })
        }
        Command::Install { target, force, with_sample_data, actor } => {
            install(ctx, target, *force, *with_sample_data, actor)
        }
        Command::Script { what: ScriptWhat::Test { id, data: given, record, actor } } => {
            data(given.as_deref()).and_then(|d| script_test(ctx, id, d, record.as_deref(), actor))
        }
    }
}

fn loader() -> Result<Loader, UserError> {
    Loader::new().map_err(|e| UserError(e.to_string()))
}

fn validate(paths: &[PathBuf], format: Format) -> Result<ExitCode, UserError> {
    let loader = loader()?;
    let results: Vec<(String, Loaded)> = paths.iter().map(|p| (p.display().to_string(), loader.load_path(p))).collect();
    let valid = results.iter().all(|(_, l)| l.is_valid());
    match format {
        Format::Json => {
            let all: Vec<&closeloop::Diagnostic> = results.iter().flat_map(|(_, l)| &l.diagnostics).collect();
            print(&serde_json::to_string_pretty(&all).unwrap_or_default())?;
        }
        Format::Human | Format::Csv | Format::Html => {
            let mut out = String::new();
            for (shown, loaded) in &results {
                for d in &loaded.diagnostics {
                    out.push_str(&render::diagnostic(d, loaded.sources.get(&d.file).map(String::as_str)));
                }
                out.push_str(&render::verdict(shown, loaded));
            }
            let _ = write!(std::io::stdout().lock(), "{out}");
        }
    }
    Ok(if valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn templates(format: Format) -> Result<ExitCode, UserError> {
    let loader = loader()?;
    let rows: Vec<serde_json::Value> = closeloop::templates()
        .iter()
        .map(|t| {
            let loaded = loader.load(&t.app_files());
            let (title, description) = match &loaded.app {
                Some(app) => {
                    (render::label_json(Some(&app.def.app.title)), render::label_json(app.def.app.description.as_ref()))
                }
                None => (serde_json::Value::Null, serde_json::Value::Null),
            };
            serde_json::json!({"name": t.name, "title": title, "description": description})
        })
        .collect();
    match format {
        Format::Json => print(&serde_json::to_string_pretty(&rows).unwrap_or_default()),
        Format::Human | Format::Csv | Format::Html => print(&render::template_list(&rows)),
    }
}

fn init(dir: &Path, name: &str) -> Result<ExitCode, UserError> {
    let Some(template) = closeloop::template(name) else {
        let names: Vec<&str> = closeloop::templates().iter().map(|t| t.name).collect();
        return Err(UserError(format!("there is no template \"{name}\"; the templates are: {}", names.join(", "))));
    };
    if dir.exists() && std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(UserError(format!("{} already exists and is not empty; choose a new folder", dir.display())));
    }
    for (path, text) in template.files {
        // The template's modeline points into closeloop's repository; a copy points at the
        // schema written beside it, so an editor checks the app wherever the folder lives.
        let text = match text.strip_prefix(TEMPLATE_MODELINE) {
            Some(rest) if *path == "app.yaml" => format!("{COPY_MODELINE}{rest}"),
            _ => text.to_string(),
        };
        write_file(&dir.join(path), &text)?;
    }
    write_file(&dir.join(SCHEMA_FILE), closeloop::SCHEMA_JSON)?;
    print(&format!(
        "created {} from template {name} ({} files, and {SCHEMA_FILE} for editors)\nnext: edit {}/app.yaml, then run `closeloop validate {}`",
        dir.display(),
        template.files.len(),
        dir.display(),
        dir.display()
    ))
}

/// The first line of a bundled template, and of its copy made by `init`.
const TEMPLATE_MODELINE: &str = "# yaml-language-server: $schema=../../schemas/app.schema.json";
const COPY_MODELINE: &str = "# yaml-language-server: $schema=app.schema.json";
/// The schema `init` writes beside a copied app.
const SCHEMA_FILE: &str = "app.schema.json";

/// Writes `text` to `target`, creating its folder.
fn write_file(target: &Path, text: &str) -> Result<(), UserError> {
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| UserError(format!("cannot create {}: {e}", parent.display())))?;
    }
    std::fs::write(target, text).map_err(|e| UserError(format!("cannot write {}: {e}", target.display())))
}

fn demo(ctx: &Context, options: &crate::demo::Options) -> Result<ExitCode, UserError> {
    use closeloop::model::{Dimension, Lang};
    use closeloop::reports::{to_html, ReportQuery};
    let began = std::time::Instant::now();
    let (done, rt) = crate::demo::simulate(options)?;
    let date = |s: &str| s.parse::<jiff::civil::Date>().map_err(|e| UserError(e.to_string()));
    let query = ReportQuery {
        metrics: Vec::new(),
        from: date(&done.from)?,
        to: date(&done.to)?,
        by: vec![Dimension::Member, Dimension::Region, Dimension::Team],
        instances: false,
    };
    let report = rt.penetration(&query).map_err(|e| ctx.engine_error(e))?;
    let html = options.out.with_extension("html");
    std::fs::write(&html, to_html(&report, Lang::Zh))
        .map_err(|e| UserError(format!("cannot write {}: {e}", html.display())))?;
    let seconds = began.elapsed().as_secs_f64();
    if ctx.json() {
        let value = serde_json::json!({"simulated": done, "assumptions": crate::demo::ASSUMPTIONS,
                                       "report": report, "html": html, "database": options.out, "seconds": seconds});
        return print(&serde_json::to_string_pretty(&value).unwrap_or_default());
    }
    let db = options.out.display();
    let mut out = format!(
        "closeloop demo: {} to {}, {} sales reps in {} offices ({} members), simulated through the engine in {seconds:.1} s\n\n\
         what happened: {} leads ({} contacted, {} lost), {} quotes ({} submissions, {} approvals, {} rejections, {} signed),\n\
         {} payments, {} SOP tasks done, {} scheduler ticks; {} steps the engine refused (a rep acting on a lead\n\
         reassigned meanwhile, a link for a quote no longer waiting)\n\nassumptions:\n",
        done.from, done.to, done.reps, done.offices, done.members, done.leads, done.contacted, done.lost, done.quotes,
        done.submitted, done.approvals, done.rejections, done.signed, done.payments, done.tasks_done, done.ticks, done.refused
    );
    for a in crate::demo::ASSUMPTIONS {
        out.push_str(&format!("  - {a}\n"));
    }
    out.push('\n');
    out.push_str(&crate::report::human(&report));
    out.push_str(&format!(
        "\nthe report as a page: {}\nlook around:\n  closeloop --db {db} report penetration --by member,region\n  \
         closeloop --db {db} list lead --state new --limit 20\n  closeloop --db {db} board supervisor\n  \
         closeloop --db {db} approvals\n  closeloop --db {db} audit verify\n  closeloop --db {db} serve",
        html.display()
    ));
    print(&out)
}

/// `closeloop install PATH|NAME`.
pub fn install(ctx: &Context, target: &str, force: bool, sample: bool, actor: &str) -> Result<ExitCode, UserError> {
    let template = closeloop::template(target).filter(|_| !Path::new(target).exists());
    let files = match template {
        Some(t) => t.app_files(),
        None => closeloop::read_app(Path::new(target), 2 * 1024 * 1024)
            .map_err(|d| UserError(render::diagnostic(&d, None)))?,
    };
    let mut rt = ctx.runtime()?;
    let report = rt.install(&files, actor, force).map_err(|e| ctx.engine_error(e))?;
    let loaded = if sample {
        load_sample_data(&mut rt, &files, template, target, actor).map_err(|e| ctx.engine_error(e))?
    } else {
        Vec::new()
    };
    // The install report as before, with the sample data loaded beside it when asked for.
    let mut value = serde_json::to_value(&report).unwrap_or_default();
    if let (true, Some(fields)) = (sample, value.as_object_mut()) {
        let files = loaded.iter().map(|(f, n)| serde_json::json!({"file": f, "rows": n})).collect();
        fields.insert("sample_data".into(), Value::Array(files));
    }
    show(ctx, &value, || {
        let mut s =
            format!("installed {} revision {} (forms: {})", report.app, report.revision, report.forms.join(", "));
        for o in &report.orphaned {
            s.push_str(&format!("\nforced: {o}"));
        }
        for w in &report.warnings {
            s.push_str(&format!("\nwarning[{}]: {}", w.code, w.message));
            if let Some(help) = &w.help {
                s.push_str(&format!("\n  = help: {help}"));
            }
        }
        for (file, rows) in &loaded {
            s.push_str(&format!("\nsample data: {file}: {rows} rows"));
        }
        crate::locale::say(&s)
    })
}

/// The team (`data/members.csv`) and then each `seed:` file, from the template or the app's
/// folder; returns each file loaded with its rows.
fn load_sample_data(
    rt: &mut closeloop::Runtime,
    files: &closeloop::AppFiles,
    template: Option<&closeloop::Template>,
    target: &str,
    actor: &str,
) -> Result<Vec<(String, usize)>, closeloop::EngineError> {
    let folder = if Path::new(target).is_dir() {
        Path::new(target).to_path_buf()
    } else {
        Path::new(target).parent().map(Path::to_path_buf).unwrap_or_default()
    };
    let read = |path: &str| -> Result<Vec<u8>, closeloop::EngineError> {
        match template {
            Some(t) => t.files.iter().find(|(p, _)| *p == path).map(|(_, text)| text.as_bytes().to_vec()),
            None => std::fs::read(folder.join(path)).ok(),
        }
        .ok_or_else(|| closeloop::EngineError::Input(format!("the sample data file {path} is missing")))
    };
    let def = closeloop::Loader::new()
        .map_err(|e| closeloop::EngineError::Input(e.to_string()))?
        .load(files)
        .app
        .map(|a| a.def)
        .ok_or_else(|| closeloop::EngineError::Input("the app did not load".into()))?;
    let mut loaded = Vec::new();
    let has_team = files.data_files.as_ref().is_none_or(|d| d.contains("data/members.csv"));
    if let (true, Ok(team)) = (has_team, read("data/members.csv")) {
        let report = rt.import_members(&team, actor)?;
        loaded.push(("data/members.csv".to_string(), report.rows));
    }
    let options = closeloop::ImportOptions { skip_invalid: false, actor: actor.to_string() };
    for seed in &def.seed {
        let bytes = read(&seed.file)?;
        let report = rt.import_csv(&seed.form, &bytes, &options, &mut |_| {})?;
        loaded.push((seed.file.clone(), report.rows));
    }
    Ok(loaded)
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
        if let closeloop::TrialDetail::Assignment(decision) = &trial.detail {
            s.push_str("candidates:\n");
            for c in &decision.candidates {
                let excluded = c.excluded.as_deref().map(|e| format!("  excluded: {e}")).unwrap_or_default();
                s.push_str(&format!("  {:<10} load {}{excluded}\n", c.id, c.load));
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
