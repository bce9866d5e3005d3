//! The `closeloop` command: turns flags into library calls and results into text or JSON.
//! No product logic lives here.

mod bench;
mod render;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use closeloop::{Loaded, Loader};

/// closeloop: forms, rules, timers and approvals that close the loops sales teams lose deals in.
#[derive(Debug, Parser)]
#[command(name = "closeloop", version, about, max_term_width = 100)]
struct Args {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    /// Load every bundled template and summarise what it defines.
    Demo,
    /// Measure closeloop against a baseline in the same run (build with --release).
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Debug, Subcommand)]
enum BenchWhat {
    /// Loading the largest template, stage by stage, against a bare YAML parse of it.
    Load {
        /// Runs per stage.
        #[arg(long, default_value_t = 300)]
        runs: usize,
    },
}

/// What a command reports when it fails for a reason the user can fix (exit 1).
struct UserError(String);

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(now) = &args.now {
        if now.parse::<jiff::Timestamp>().is_err() {
            eprintln!("error: --now \"{now}\" is not an RFC 3339 time such as 2026-11-26T09:00:00+08:00");
            return ExitCode::from(2);
        }
    }
    let result = match &args.command {
        Command::Validate { paths } => validate(paths, args.format),
        Command::Schema => print(closeloop::SCHEMA_JSON.trim_end()),
        Command::Templates => templates(args.format),
        Command::Init { dir, template } => init(dir, template),
        Command::Demo => demo(args.format),
        Command::Bench { what: BenchWhat::Load { runs } } => {
            bench::load((*runs).max(1), args.format == Format::Json).map_err(UserError).and_then(|t| print(&t))
        }
    };
    match result {
        Ok(code) => code,
        Err(UserError(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

fn print(text: &str) -> Result<ExitCode, UserError> {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`closeloop schema | head`) is not an error worth reporting.
    let _ = writeln!(out, "{text}");
    Ok(ExitCode::SUCCESS)
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
        Format::Human => {
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
        Format::Human => print(&render::template_list(&rows)),
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
            print(&serde_json::to_string_pretty(&rows).unwrap_or_default())?;
        }
        Format::Human => {
            let mut out = String::from("closeloop: the bundled templates\n\n");
            for (name, loaded) in &summaries {
                for d in &loaded.diagnostics {
                    out.push_str(&render::diagnostic(d, loaded.sources.get(&d.file).map(String::as_str)));
                }
                out.push_str(&render::summary(name, loaded));
            }
            print(out.trim_end())?;
        }
    }
    Ok(if valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
