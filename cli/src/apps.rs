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
    /// Print the JSON Schema of the app language.
    Schema,
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
    /// Load every bundled template, summarise it, and walk through the lead loop in memory.
    Demo,
    /// Install an app (a folder, an app.yaml, or a bundled template's name) into the database.
    Install {
        /// App folder, app.yaml, or template name.
        target: String,
        /// Install even if stored records would be orphaned (audited).
        #[arg(long)]
        force: bool,
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
        Command::Schema => print(closeloop::SCHEMA_JSON.trim_end()),
        Command::Templates => templates(ctx.format),
        Command::Init { dir, template } => init(dir, template),
        Command::Demo => demo(ctx.format),
        Command::Install { target, force, actor } => install(ctx, target, *force, actor),
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
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| UserError(format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::write(&target, text).map_err(|e| UserError(format!("cannot write {}: {e}", target.display())))?;
    }
    print(&format!(
        "created {} from template {name} ({} files)\nnext: edit {}/app.yaml, then run `closeloop validate {}`",
        dir.display(),
        template.files.len(),
        dir.display(),
        dir.display()
    ))
}

fn demo(format: Format) -> Result<ExitCode, UserError> {
    let loader = loader()?;
    let mut summaries = Vec::new();
    let mut valid = true;
    for t in closeloop::templates() {
        let loaded = loader.load(&t.app_files());
        valid &= loaded.is_valid();
        summaries.push((t.name, loaded));
    }
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> =
                summaries.iter().map(|(name, l)| render::summary_json(name, l)).collect();
            let walk = render::walkthrough().map_err(UserError)?;
            print(
                &serde_json::to_string_pretty(&serde_json::json!({"templates": rows, "walkthrough": walk}))
                    .unwrap_or_default(),
            )?;
        }
        Format::Human | Format::Csv | Format::Html => {
            let mut out = String::from("closeloop: the bundled templates\n\n");
            for (name, loaded) in &summaries {
                for d in &loaded.diagnostics {
                    out.push_str(&render::diagnostic(d, loaded.sources.get(&d.file).map(String::as_str)));
                }
                out.push_str(&render::summary(name, loaded));
            }
            out.push_str(&render::walkthrough().map_err(UserError)?.join("\n"));
            print(out.trim_end())?;
        }
    }
    Ok(if valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
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
