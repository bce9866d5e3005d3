//! Loading an app: read the files, parse, check against the schema, build the typed model,
//! run the semantic checks, compile the scripts. One loader serves `validate`, `install` and
//! the library, so there is never a second opinion on whether an app is valid.

mod files;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rhai::{Engine, AST};

use crate::check;
use crate::diagnostic::{Code, Diagnostic, Location};
use crate::model::AppDef;
use crate::schema::{SchemaChecker, SchemaError};
use crate::script::{self, ScriptKind, ScriptLimits};
use crate::yaml::{self, Limits};

pub use files::read_app;

/// The files of one app, in memory: `app.yaml`, its scripts and the names of its data files.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct AppFiles {
    /// How the app folder is shown in diagnostics (`app-templates/lead-followup`).
    pub dir: String,
    /// The app file's name inside the folder; empty means `app.yaml`.
    pub file_name: String,
    /// The text of `app.yaml`.
    pub app_yaml: String,
    /// Scripts by path inside the app folder (`scripts/assign.rhai`).
    pub scripts: BTreeMap<String, String>,
    /// Data files present (`data/members.csv`); `None` when unknown.
    pub data_files: Option<BTreeSet<String>>,
    /// Script files present but unusable (too large, not UTF-8), with why. They are reported
    /// only where an app refers to them.
    pub unreadable: BTreeMap<String, String>,
}

impl AppFiles {
    /// The path of `app.yaml` as shown in diagnostics.
    pub fn app_file(&self) -> String {
        let name = if self.file_name.is_empty() { "app.yaml" } else { &self.file_name };
        join(&self.dir, name)
    }
}

/// A loaded, checked app: its definition and its compiled scripts.
#[derive(Debug, Clone)]
pub struct App {
    /// The definition as written.
    pub def: AppDef,
    scripts: BTreeMap<String, Script>,
    engine: Arc<Engine>,
}

/// One script or expression of an app: compiled while the app was validated, or (for a
/// revision already installed, validated when it was installed) on its first use, so a
/// command pays only for the scripts it runs.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    /// The source, its kind and the names in its scope, to compile on first use.
    later: Option<(String, ScriptKind, Vec<String>)>,
    ast: OnceLock<Option<AST>>,
}

impl Script {
    pub(crate) fn compiled(ast: AST) -> Self {
        Script { later: None, ast: OnceLock::from(Some(ast)) }
    }

    pub(crate) fn later(text: &str, kind: ScriptKind, names: &[&str]) -> Self {
        let names = names.iter().map(|n| n.to_string()).collect();
        Script { later: Some((text.to_string(), kind, names)), ast: OnceLock::new() }
    }
}

impl App {
    /// A compiled script or expression, by file path (`scripts/x.rhai`) or by the JSON
    /// pointer of an inline one (`/forms/0/fields/3/expression`). `None` when there is none,
    /// or when one compiled on first use does not compile.
    pub fn script(&self, key: &str) -> Option<&AST> {
        let script = self.scripts.get(key)?;
        script
            .ast
            .get_or_init(|| {
                let (text, kind, names) = script.later.as_ref()?;
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                kind.compile(&self.engine, text, &names).ok()
            })
            .as_ref()
    }

    /// How many scripts and expressions were compiled.
    pub fn script_count(&self) -> usize {
        self.scripts.len()
    }
}

/// The outcome of loading: the app when it has no errors, every diagnostic, and the source
/// texts by file name so a front end can show the offending lines.
#[derive(Debug)]
pub struct Loaded {
    /// The app, when no diagnostic is an error.
    pub app: Option<App>,
    /// Every problem found, sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
    /// Source texts by the file names used in diagnostics.
    pub sources: BTreeMap<String, String>,
}

impl Loaded {
    /// True when there is no error (warnings allowed).
    pub fn is_valid(&self) -> bool {
        self.app.is_some()
    }
}

/// Why the loader itself could not be built. Only a broken build causes this.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// The embedded schema is broken.
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

/// The text with every line break YAML knows (`\r\n`, a lone `\r`, `\n`) written as `\n`.
/// YAML counts a lone `\r` as a line of its own, and so does a diagnostic's line number; a
/// front end that splits the source on `\n` would show the wrong line under the caret.
fn one_line_break(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\r') {
        std::borrow::Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Loads apps. Build one and reuse it: it holds the compiled schema and the script engine.
#[derive(Debug)]
pub struct Loader {
    schema: SchemaChecker,
    engine: Arc<Engine>,
    limits: Limits,
}

/// Whether a load validates an app for the first time, or opens a revision already installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Every check and the scripts' budget; every script compiled now.
    Validate,
    /// Every check, scripts compiled on first use, and no budget: a revision accepted when it
    /// was installed keeps opening after the budget is tightened.
    Installed,
}

impl Loader {
    /// A loader with the default limits.
    pub fn new() -> Result<Self, LoaderError> {
        Ok(Loader {
            schema: SchemaChecker::new()?,
            engine: Arc::new({
                // Every name a script may use is given at its compile (`compile_with_names`),
                // so an undeclared one is an author's error found at load.
                let mut engine = script::engine(ScriptLimits::default());
                engine.set_strict_variables(true);
                engine
            }),
            limits: Limits::default(),
        })
    }

    /// Loads an app from its files in memory.
    pub fn load(&self, files: &AppFiles) -> Loaded {
        self.load_as(files, Mode::Validate)
    }

    /// Opens a revision that was validated when it was installed: checked again (a newer
    /// closeloop may know more), but its scripts compile only when first run.
    pub(crate) fn load_installed(&self, files: &AppFiles) -> Loaded {
        self.load_as(files, Mode::Installed)
    }

    fn load_as(&self, files: &AppFiles, mode: Mode) -> Loaded {
        let file = files.app_file();
        let app_yaml = one_line_break(&files.app_yaml);
        let mut sources = BTreeMap::new();
        if mode == Mode::Validate {
            // Refused by budget before a byte of it is parsed or copied.
            if let Some(d) = files::over_budget(files) {
                return finish(None, vec![d], sources);
            }
            for (path, text) in &files.scripts {
                sources.insert(join(&files.dir, path), text.clone());
            }
        }
        sources.insert(file.clone(), app_yaml.to_string());
        let (root, mut diagnostics) = yaml::parse(&file, &app_yaml, self.limits);
        let Some(root) = root else {
            return finish(None, diagnostics, sources);
        };
        let mut doc = root.to_json();
        let mut schema_diags = self.schema.check(&file, &root, &doc);
        check::labels::explain(&mut schema_diags, &doc);
        // Semantic checks still run when the schema's complaints can be cut out cleanly, so an
        // author sees a misspelt key and an unknown reference in one pass.
        let pruned: Vec<String> = schema_diags.iter().map(|d| d.pointer.clone()).collect();
        let prunable = pruned.iter().all(|p| prune(&mut doc, p));
        let schema_ok = schema_diags.is_empty();
        diagnostics.extend(schema_diags);
        if !prunable {
            return finish(None, diagnostics, sources);
        }
        let def: AppDef = match serde_json::from_value(doc) {
            Ok(def) => def,
            Err(_) if !schema_ok => return finish(None, diagnostics, sources),
            Err(e) => {
                // The schema and the model disagree: a closeloop bug, reported rather than hidden.
                let at = Location { file: file.clone(), line: 1, column: 1, pointer: String::new() };
                diagnostics.push(
                    Diagnostic::error(
                        Code::SCHEMA_VIOLATION,
                        format!("the app passed the schema but not the model: {e}"),
                        &at,
                    )
                    .with_help("this is a closeloop bug; please report it with the app file"),
                );
                return finish(None, diagnostics, sources);
            }
        };
        let input = check::Input {
            file: &file,
            root: &root,
            def: &def,
            scripts: &files.scripts,
            app_dir: &files.dir,
            data_files: files.data_files.as_ref(),
            unreadable: &files.unreadable,
            engine: &self.engine,
            compile: mode == Mode::Validate,
        };
        let (compiled, semantic) = check::check(&input);
        // A finding inside (or about) a value the schema already rejected would be an echo.
        let pruned: BTreeSet<&str> = pruned.iter().map(String::as_str).collect();
        let echo = |pointer: &str| {
            // A pruned ancestor of the finding, or a pruned value inside the finding's own value.
            let mut ancestors = pointer.match_indices('/').map(|(i, _)| &pointer[..i]).chain(std::iter::once(pointer));
            ancestors.any(|p| !p.is_empty() && pruned.contains(p))
                || (!pointer.is_empty() && pruned.range(pointer..).next().is_some_and(|p| p.starts_with(pointer)))
        };
        diagnostics.extend(semantic.into_iter().filter(|d| !echo(&d.pointer)));
        let app = App { def, scripts: compiled, engine: self.engine.clone() };
        finish(Some(app), diagnostics, sources)
    }

    /// Loads an app from disk: an app folder, or an `app.yaml` (whose folder holds `scripts/`
    /// and `data/`). Unreadable or oversized files are diagnostics, not errors.
    pub fn load_path(&self, path: &Path) -> Loaded {
        match read_app(path, self.limits.max_bytes as u64) {
            Ok(files) => self.load(&files),
            Err(d) => finish(None, vec![*d], BTreeMap::new()),
        }
    }
}

/// Removes the object member at a JSON pointer. Refuses (returns false) for list items and the
/// root, whose removal would shift the positions of everything after them.
fn prune(doc: &mut serde_json::Value, pointer: &str) -> bool {
    let Some((parent, key)) = pointer.rsplit_once('/') else { return false };
    let key = key.replace("~1", "/").replace("~0", "~");
    match doc.pointer_mut(parent) {
        Some(serde_json::Value::Object(map)) => {
            map.remove(&key);
            true
        }
        _ => false,
    }
}

/// The most diagnostics one load reports; past that, the author has a bigger problem to fix first.
const MAX_DIAGNOSTICS: usize = 500;

fn finish(app: Option<App>, mut diagnostics: Vec<Diagnostic>, sources: BTreeMap<String, String>) -> Loaded {
    diagnostics.sort_by(|a, b| (&a.file, a.line, a.column, a.code).cmp(&(&b.file, b.line, b.column, b.code)));
    // The same finding twice at one place (a YAML alias repeats its anchor's content) is one.
    diagnostics.dedup_by(|a, b| {
        a.code == b.code && a.file == b.file && a.line == b.line && a.column == b.column && a.message == b.message
    });
    if diagnostics.len() > MAX_DIAGNOSTICS {
        let total = diagnostics.len();
        diagnostics.truncate(MAX_DIAGNOSTICS);
        if let Some(last) = diagnostics.last_mut() {
            last.help = Some(format!("{total} problems in all; only the first {MAX_DIAGNOSTICS} are shown"));
        }
    }
    let app = app.filter(|_| !diagnostics.iter().any(Diagnostic::is_error));
    Loaded { app, diagnostics, sources }
}

fn join(dir: &str, path: &str) -> String {
    if dir.is_empty() {
        path.to_string()
    } else {
        format!("{dir}/{path}")
    }
}
