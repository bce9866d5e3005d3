//! Semantic checks: everything the schema cannot say. Every reference resolves, ids are
//! unique, durations, cron and time zones parse, computed fields have no cycles, scripts and
//! message templates compile. Every problem is collected; nothing stops at the first.

mod access;
mod flows;
mod forms;
pub(crate) mod labels;
mod limits;
mod reports;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rhai::Engine;

use crate::diagnostic::{Code, Diagnostic, Location};
use crate::loader::Script;
use crate::model::{script_source, AppDef, Field, FieldType, Form, ScriptSource};
use crate::script::{self, ScriptError, ScriptKind};
use crate::suggest;
use crate::yaml::{Node, Value};

/// What the checks read.
pub(crate) struct Input<'a> {
    /// The app file as shown in diagnostics.
    pub file: &'a str,
    /// The parsed tree, for positions.
    pub root: &'a Node,
    /// The typed definition.
    pub def: &'a AppDef,
    /// Script files by their path inside the app (`scripts/x.rhai`), with their text.
    pub scripts: &'a BTreeMap<String, String>,
    /// How to show a path inside the app folder in diagnostics.
    pub app_dir: &'a str,
    /// Data files present (`data/x.csv`); `None` when unknown (a lone app.yaml).
    pub data_files: Option<&'a BTreeSet<String>>,
    /// Script files present but unusable (too large, not UTF-8), with why.
    pub unreadable: &'a BTreeMap<String, String>,
    /// The script engine.
    pub engine: &'a Engine,
    /// Compile scripts now (validating), or keep their text to compile on first use (opening
    /// an installed revision).
    pub compile: bool,
}

/// What the checks produce besides diagnostics: scripts, compiled or to compile on first use,
/// by file path or by the JSON pointer of an inline script.
pub(crate) type Compiled = BTreeMap<String, crate::loader::Script>;

/// Runs every semantic check.
pub(crate) fn check(input: &Input<'_>) -> (Compiled, Vec<Diagnostic>) {
    let mut ctx = Ctx {
        input,
        diags: Vec::new(),
        compiled: BTreeMap::new(),
        script_failed: BTreeSet::new(),
        field_index: HashMap::new(),
    };
    ctx.unique_ids();
    forms::check_app_meta(&mut ctx);
    forms::check_forms(&mut ctx);
    flows::check_flows(&mut ctx);
    reports::check_reports(&mut ctx);
    ctx.translations(input.root, "");
    ctx.unused_scripts();
    (ctx.compiled, ctx.diags)
}

pub(crate) struct Ctx<'a> {
    input: &'a Input<'a>,
    diags: Vec<Diagnostic>,
    compiled: Compiled,
    script_failed: BTreeSet<String>,
    /// Field id → position, per field list (keyed by the list's address), so reference checks
    /// stay linear in the size of the app.
    field_index: HashMap<usize, HashMap<String, usize>>,
}

/// The names an expression about a record may use besides its fields: the record's own and
/// the acting member (the write gate pushes them; see `engine::write::rules::Who`).
pub(crate) const RECORD_NAMES: &[&str] = &["id", "state", "owner", "created_by", "actor"];

/// A form together with the extra names a condition or step may use in its context.
#[derive(Clone, Copy)]
pub(crate) struct Scope<'a> {
    pub form: Option<&'a Form>,
    /// The fields visible (the form's, or a table row's siblings).
    pub fields: &'a [Field],
    /// Why there is no record here (a schedule started the automation), when that is so.
    pub recordless: Option<&'static str>,
}

impl<'a> Scope<'a> {
    /// The names an expression here may use: the fields in scope (a table row's columns), and
    /// with a record the record's own names and the actor (`id`, `state`, `actor`, ...).
    pub fn names(&self) -> Vec<&'a str> {
        let mut names: Vec<&'a str> = self.fields.iter().map(|f| f.id.as_str()).collect();
        if self.recordless.is_none() {
            names.extend(RECORD_NAMES);
        }
        names
    }

    pub fn of(form: Option<&'a Form>) -> Self {
        Scope { form, fields: form.map(|f| f.fields.as_slice()).unwrap_or(&[]), recordless: None }
    }

    /// A scope with no record, and why.
    pub fn without_record(reason: &'static str) -> Self {
        Scope { form: None, fields: &[], recordless: Some(reason) }
    }

    /// True when the visible fields are a table's columns rather than the form's fields.
    pub fn is_table_row(&self) -> bool {
        self.form.is_some_and(|f| !std::ptr::eq(f.fields.as_ptr(), self.fields.as_ptr()))
    }

    pub fn field(&self, id: &str) -> Option<&'a Field> {
        self.fields.iter().find(|f| f.id == id)
    }
}

/// Past this many findings, no more suggestions are computed: they cost time, and an app with
/// this many problems needs its first few fixed, not more hints.
const SUGGESTION_BUDGET: usize = 100;

impl<'a> Ctx<'a> {
    /// A did-you-mean help line, while the suggestion budget lasts.
    pub fn suggest<'c, I>(&self, word: &str, candidates: I) -> Option<String>
    where
        I: IntoIterator<Item = &'c str> + Clone,
    {
        if self.diags.len() >= SUGGESTION_BUDGET {
            return None;
        }
        suggest::did_you_mean(word, candidates)
    }

    /// Whether a diagnostic with this code at this pointer already names `word`.
    pub fn has(&self, code: Code, pointer: &str, word: &str) -> bool {
        self.diags.iter().any(|d| d.code == code && d.pointer == pointer && d.message.contains(&format!("`{word}`")))
    }

    /// The YAML node at a pointer.
    pub fn node(&self, pointer: &str) -> Option<&'a Node> {
        self.input.root.at(pointer)
    }

    pub fn def(&self) -> &'a AppDef {
        self.input.def
    }

    pub fn loc(&self, pointer: &str, at_key: bool) -> Location {
        let pos = self.input.root.position(pointer, at_key);
        Location { file: self.input.file.to_string(), line: pos.line, column: pos.column, pointer: pointer.to_string() }
    }

    /// Keeps a diagnostic (one built elsewhere too) and hands it back, for its help line.
    pub fn push(&mut self, d: Diagnostic) -> &mut Diagnostic {
        self.diags.push(d);
        let last = self.diags.len() - 1;
        &mut self.diags[last]
    }

    pub fn error(&mut self, code: Code, message: impl Into<String>, pointer: &str) -> &mut Diagnostic {
        let d = Diagnostic::error(code, message, &self.loc(pointer, false));
        self.push(d)
    }

    pub fn error_at_key(&mut self, code: Code, message: impl Into<String>, pointer: &str) -> &mut Diagnostic {
        let d = Diagnostic::error(code, message, &self.loc(pointer, true));
        self.push(d)
    }

    pub fn warning(&mut self, code: Code, message: impl Into<String>, pointer: &str) -> &mut Diagnostic {
        let d = Diagnostic::warning(code, message, &self.loc(pointer, false));
        self.push(d)
    }

    /// Reports an unknown reference with a did-you-mean among the candidates.
    pub fn unknown<'c, I>(&mut self, code: Code, what: &str, name: &str, pointer: &str, candidates: I)
    where
        I: IntoIterator<Item = &'c str> + Clone,
    {
        let help = self
            .suggest(name, candidates.clone())
            .or_else(|| candidates.into_iter().next().is_none().then(|| format!("declare the {what} first")));
        self.error(code, format!("unknown {what} `{name}`"), pointer).help = help;
    }

    pub fn form(&self, id: &str) -> Option<&'a Form> {
        self.def().forms.iter().find(|f| f.id == id)
    }

    /// Resolves a form reference, reporting it when unknown.
    pub fn form_ref(&mut self, id: &str, pointer: &str) -> Option<&'a Form> {
        let found = self.form(id);
        if found.is_none() {
            let def = self.def();
            self.unknown(Code::UNKNOWN_FORM, "form", id, pointer, def.forms.iter().map(|f| f.id.as_str()));
        }
        found
    }

    /// Resolves a field reference in a scope, reporting it when unknown. System fields such
    /// as `created_at` resolve to `None` without a report when `allow_system` is set.
    /// A field of a scope by id, through the index.
    pub fn find_field<'s>(&mut self, scope: Scope<'s>, id: &str) -> Option<&'s Field> {
        let key = scope.fields.as_ptr() as usize;
        let index = self
            .field_index
            .entry(key)
            .or_insert_with(|| scope.fields.iter().enumerate().rev().map(|(i, f)| (f.id.clone(), i)).collect());
        index.get(id).and_then(|i| scope.fields.get(*i))
    }

    pub fn field_ref<'s>(
        &mut self,
        scope: Scope<'s>,
        id: &str,
        pointer: &str,
        allow_system: bool,
    ) -> Option<&'s Field> {
        if let Some(f) = self.find_field(scope, id) {
            return Some(f);
        }
        if allow_system && crate::model::SYSTEM_FIELDS.contains(&id) {
            return None;
        }
        let Some(form) = scope.form else {
            if let Some(reason) = scope.recordless {
                self.error(
                    Code::CONFLICT,
                    format!("{reason}, so there is no record: `{id}` cannot name a field"),
                    pointer,
                )
                .help = Some("to change records on a schedule, give the timer a form and an anchor (`timer: {form: …, after: …, from: …}`)".into());
            }
            return None;
        };
        let candidates: Vec<&str> = scope.fields.iter().map(|f| f.id.as_str()).collect();
        let help = state_meant(form, id).or_else(|| self.suggest(id, candidates.iter().copied()));
        let message = if scope.is_table_row() {
            format!("this table row of form `{}` has no column `{id}`", form.id)
        } else {
            format!("form `{}` has no field `{id}`", form.id)
        };
        self.error(Code::UNKNOWN_FIELD, message, pointer).help = help;
        None
    }

    /// A field reference that must be of one of some types.
    pub fn typed_field_ref<'s>(
        &mut self,
        scope: Scope<'s>,
        id: &str,
        pointer: &str,
        types: &[FieldType],
        purpose: &str,
    ) -> Option<&'s Field> {
        let field = self.field_ref(scope, id, pointer, false)?;
        if !types.contains(&field.kind) {
            let names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
            let fitting: Vec<&str> =
                scope.fields.iter().filter(|f| types.contains(&f.kind)).map(|f| f.id.as_str()).collect();
            let help = if fitting.is_empty() {
                format!("add a field of type {} and name it here", names.join(" or "))
            } else {
                format!("name a field of type {}: {}", names.join(" or "), suggest::quoted_list(&fitting))
            };
            self.error(
                Code::WRONG_FIELD_TYPE,
                format!("field `{id}` is {}, but {purpose} needs {}", field.kind.as_str(), names.join(" or ")),
                pointer,
            )
            .help = Some(help);
        }
        Some(field)
    }

    pub fn role_ref(&mut self, id: &str, pointer: &str) {
        let def = self.def();
        if !def.roles.iter().any(|r| r.id == id) {
            self.unknown(Code::UNKNOWN_ROLE, "role", id, pointer, def.roles.iter().map(|r| r.id.as_str()));
        }
    }

    pub fn state_ref(&mut self, form: &Form, id: &str, pointer: &str) {
        if !form.states.iter().any(|s| s.id == id) {
            let help = if form.states.is_empty() {
                Some(format!("form `{}` declares no states; add `states:` to it", form.id))
            } else {
                self.suggest(id, form.states.iter().map(|s| s.id.as_str()))
            };
            self.error(Code::UNKNOWN_STATE, format!("form `{}` has no state `{id}`", form.id), pointer).help = help;
        }
    }

    /// Parses a duration, reporting it when it does not parse.
    pub fn duration(&mut self, text: &str, pointer: &str) {
        if let Err(e) = text.parse::<crate::timespec::Duration>() {
            let help = match crate::timespec::duration_instead(text) {
                Some(instead) => format!("write `{instead}`"),
                None => crate::timespec::DURATION_HELP.to_string(),
            };
            self.error(Code::BAD_DURATION, format!("cannot read the duration: {e}"), pointer).help = Some(help);
        }
    }

    pub fn time_zone(&mut self, name: &str, pointer: &str) {
        if let Err(e) = crate::timespec::parse_time_zone(name) {
            self.error(Code::BAD_TIME_ZONE, e, pointer).help =
                Some("use an IANA name such as `Asia/Shanghai` or `Europe/London`".into());
        }
    }

    /// Compiles a script reference (file or inline) that may use `names` (what its caller puts
    /// in scope); errors point into the file or the YAML.
    pub fn script(&mut self, script: &str, pointer: &str, names: &[&str]) {
        match script_source(script) {
            ScriptSource::File(path) => {
                if self.compiled.contains_key(path) || self.script_failed.contains(path) {
                    return;
                }
                if !crate::model::valid_script_path(path) {
                    self.error(Code::UNKNOWN_SCRIPT, format!("`{path}` is not a script file name"), pointer).help =
                        Some("script files are `scripts/NAME.rhai`, NAME made of letters, digits, `_` and `-`".into());
                    return;
                }
                if let Some(reason) = self.input.unreadable.get(path) {
                    self.error(
                        Code::FILE_UNREADABLE,
                        format!("the script file `{path}` cannot be used: {reason}"),
                        pointer,
                    );
                    return;
                }
                let Some(text) = self.input.scripts.get(path) else {
                    let names: Vec<&str> = self.input.scripts.keys().map(String::as_str).collect();
                    let help = self
                        .suggest(path, names.iter().copied())
                        .or_else(|| Some(format!("create `{}/{path}`", self.input.app_dir)));
                    self.error(Code::UNKNOWN_SCRIPT, format!("the script file `{path}` does not exist"), pointer)
                        .help = help;
                    self.script_failed.insert(path.to_string());
                    return;
                };
                if !self.input.compile {
                    self.compiled.insert(path.to_string(), Script::later(text, ScriptKind::Script, names));
                    return;
                }
                match ScriptKind::Script.compile(self.input.engine, text, names) {
                    Ok(ast) => {
                        self.compiled.insert(path.to_string(), Script::compiled(ast));
                    }
                    Err(e) => {
                        self.script_failed.insert(path.to_string());
                        let file = format!("{}/{path}", self.input.app_dir);
                        let loc = Location { file, line: e.line, column: e.column, pointer: String::new() };
                        let used_at = format!("used at {}:{}", self.input.file, self.loc(pointer, false).line);
                        self.diags.push(script_error(&e, &loc, names, &used_at));
                    }
                }
            }
            ScriptSource::Inline(text) => self.inline(text, ScriptKind::Script, pointer, names),
        }
    }

    /// Compiles an inline expression that may use `names`.
    pub fn expression(&mut self, text: &str, pointer: &str, names: &[&str]) {
        self.inline(text, ScriptKind::Expression, pointer, names);
    }

    fn inline(&mut self, text: &str, kind: ScriptKind, pointer: &str, names: &[&str]) {
        if !self.input.compile {
            self.compiled.insert(pointer.to_string(), Script::later(text, kind, names));
            return;
        }
        match kind.compile(self.input.engine, text, names) {
            Ok(ast) => {
                self.compiled.insert(pointer.to_string(), Script::compiled(ast));
            }
            Err(e) => {
                let mut loc = self.loc(pointer, false);
                if let Some(Node { value: Value::Str(raw, style), pos }) = self.input.root.at(pointer) {
                    let p = script::position_in_yaml(*pos, *style, raw, e.line, e.column);
                    loc.line = p.line;
                    loc.column = p.column;
                }
                self.diags.push(script_error(&e, &loc, names, ""));
            }
        }
    }

    /// Warns about a script file nothing in the app refers to: an ops person who wrote it
    /// believes it runs, and it never will.
    fn unused_scripts(&mut self) {
        let scripts = self.input.scripts;
        for path in scripts.keys().filter(|p| !self.compiled.contains_key(*p) && !self.script_failed.contains(*p)) {
            let file = format!("{}/{path}", self.input.app_dir);
            let loc = Location { file, line: 1, column: 1, pointer: String::new() };
            self.diags.push(
                Diagnostic::warning(
                    Code::UNUSED_SCRIPT,
                    format!("nothing in the app refers to `{path}`, so it never runs"),
                    &loc,
                )
                .with_help(format!("refer to it where it should run (`script: {path}`), or delete the file")),
            );
        }
    }

    /// Warns about `{zh, en}` labels that give only one language: the templates ship in both,
    /// and a half-translated label shows an ops person's colleague the wrong language.
    fn translations(&mut self, node: &Node, pointer: &str) {
        const LABEL_KEYS: &[&str] =
            &["label", "title", "description", "help", "reason", "talk_track", "text", "subject"];
        match &node.value {
            Value::Map(entries) => {
                for (key, child) in entries {
                    let p = format!("{pointer}/{}", crate::yaml::escape_segment(&key.text));
                    if LABEL_KEYS.contains(&key.text.as_str()) {
                        limits::label_length(self, &key.text, child, &p);
                        if let Value::Map(langs) = &child.value {
                            if let [(only, _)] = langs.as_slice() {
                                let missing = if only.text == "zh" { "en" } else { "zh" };
                                self.warning(
                                    Code::MISSING_TRANSLATION,
                                    format!("`{}` has no `{missing}` text", key.text),
                                    &p,
                                );
                                if let Some(last) = self.diags.last_mut() {
                                    last.help =
                                        Some(format!("add `{missing}: ...`, or write the label as a plain text"));
                                }
                            }
                            continue;
                        }
                    }
                    self.translations(child, &p);
                }
            }
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.translations(item, &format!("{pointer}/{i}"));
                }
            }
            _ => {}
        }
    }

    /// Reports items of one list that share an id.
    fn duplicates<'i, I>(&mut self, what: &str, base: &str, ids: I)
    where
        I: IntoIterator<Item = &'i str>,
    {
        self.duplicates_by(what, base, ids, "id");
    }

    /// Reports items of one list that share the value of `key` (`id`, or `value` for options).
    fn duplicates_by<'i, I>(&mut self, what: &str, base: &str, ids: I, key: &str)
    where
        I: IntoIterator<Item = &'i str>,
    {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, id) in ids.into_iter().enumerate() {
            if let Some(first) = seen.get(id) {
                let first_line = self.loc(&format!("{base}/{first}/{key}"), false).line;
                self.error(Code::DUPLICATE_ID, format!("two {what} are called `{id}`"), &format!("{base}/{i}/{key}"))
                    .help = Some(format!("the first is at line {first_line}; keep one"));
            } else {
                seen.insert(id, i);
            }
        }
    }

    fn unique_ids(&mut self) {
        let def = self.def();
        self.duplicates("calendars", "/calendars", def.calendars.iter().map(|x| x.id.as_str()));
        self.duplicates("roles", "/roles", def.roles.iter().map(|x| x.id.as_str()));
        self.duplicates("forms", "/forms", def.forms.iter().map(|x| x.id.as_str()));
        self.duplicates("events", "/events", def.events.iter().map(|x| x.id.as_str()));
        self.duplicates("automations", "/automations", def.automations.iter().map(|x| x.id.as_str()));
        self.duplicates("assignment rules", "/assignment_rules", def.assignment_rules.iter().map(|x| x.id.as_str()));
        self.duplicates("approval chains", "/approvals", def.approvals.iter().map(|x| x.id.as_str()));
        self.duplicates("SOPs", "/sops", def.sops.iter().map(|x| x.id.as_str()));
        self.duplicates("scores", "/scores", def.scores.iter().map(|x| x.id.as_str()));
        self.duplicates("grades", "/grades", def.grades.iter().map(|x| x.id.as_str()));
        self.duplicates("boards", "/boards", def.boards.iter().map(|x| x.id.as_str()));
        self.duplicates("channels", "/channels", def.channels.iter().map(|x| x.id.as_str()));
        self.duplicates("messages", "/messages", def.messages.iter().map(|x| x.id.as_str()));
        self.duplicates("metrics", "/metrics", def.metrics.iter().map(|x| x.id.as_str()));
        if let Some(m) = &def.members {
            self.duplicates("member attributes", "/members/fields", m.fields.iter().map(|x| x.id.as_str()));
        }
        for (i, form) in def.forms.iter().enumerate() {
            let base = format!("/forms/{i}");
            self.duplicates("fields", &format!("{base}/fields"), form.fields.iter().map(|x| x.id.as_str()));
            self.duplicates("states", &format!("{base}/states"), form.states.iter().map(|x| x.id.as_str()));
            self.duplicates("actions", &format!("{base}/actions"), form.actions.iter().map(|x| x.id.as_str()));
        }
        for (i, e) in def.events.iter().enumerate() {
            self.duplicates("payload fields", &format!("/events/{i}/fields"), e.fields.iter().map(|x| x.id.as_str()));
        }
        for (i, a) in def.approvals.iter().enumerate() {
            self.duplicates("approval steps", &format!("/approvals/{i}/steps"), a.steps.iter().map(|x| x.id.as_str()));
        }
        for (i, s) in def.sops.iter().enumerate() {
            self.duplicates("tasks", &format!("/sops/{i}/tasks"), s.tasks.iter().map(|x| x.id.as_str()));
        }
    }
}

/// The help for a field named like the record's state (`status`, `状态`, `stage`) in a form
/// with states: the state is not a field, and conditions ask for it with `state:`.
fn state_meant(form: &Form, id: &str) -> Option<String> {
    const WORDS: &[&str] = &["status", "stage", "phase", "状态", "阶段", "进度"];
    if form.states.is_empty() || !WORDS.contains(&id.to_lowercase().as_str()) {
        return None;
    }
    let states: Vec<&str> = form.states.iter().map(|s| s.id.as_str()).collect();
    Some(format!(
        "the record's state is not a field: ask for it with `{{state: [{}]}}` (its states: {})",
        states.first().copied().unwrap_or_default(),
        suggest::quoted_list(&states)
    ))
}

/// A script's compile error as a diagnostic. An undeclared name is `UNKNOWN_VARIABLE`, with the
/// names the script may use there (and the closest one); anything else is `SCRIPT_SYNTAX`.
fn script_error(e: &ScriptError, at: &Location, names: &[&str], used_at: &str) -> Diagnostic {
    let Some(name) = &e.undefined else {
        let d = Diagnostic::error(Code::SCRIPT_SYNTAX, format!("script error: {}", e.message), at);
        let help = match (likely_fix(&e.message), used_at.is_empty()) {
            (Some(fix), true) => fix.to_string(),
            (Some(fix), false) => format!("{fix} ({used_at})"),
            (None, false) => used_at.to_string(),
            (None, true) => return d,
        };
        return d.with_help(help);
    };
    let known = if names.is_empty() { "none".to_string() } else { suggest::quoted_list(names) };
    let guess =
        suggest::closest(name, names.iter().copied()).map(|g| format!("did you mean `{g}`? ")).unwrap_or_default();
    let help = format!("{guess}The names this script can use here: {known} (declare others with `let`).");
    Diagnostic::error(Code::UNKNOWN_VARIABLE, format!("`{name}` is not defined here"), at).with_help(help)
}

/// What usually fixes a rhai compile error, in an ops person's words.
fn likely_fix(message: &str) -> Option<&'static str> {
    let fixes: &[(&str, &str)] = &[
        ("a `;` is missing", "type `;` at the end of the statement"),
        ("Expecting ')'", "close the bracket with `)`"),
        ("Expecting ']'", "close the list with `]`"),
        ("Expecting '}'", "close the block with `}`"),
        ("Expecting '{'", "put the body of `if`, `while` or `fn` in `{ … }`"),
        ("Unknown operator: '='", "compare with `==`; a single `=` sets a variable"),
        ("Open string is not terminated", "close the text with the same quote it opens with (`\"`)"),
        ("Invalid character", "type it in half-width (半角): ASCII brackets, quotes and operators"),
        ("reserved keyword 'eval'", "scripts cannot run text as code; write the logic out, or use a lookup"),
        ("is disabled", "that keyword is switched off in closeloop's scripts; write the logic out"),
        ("Unexpected ';'", "an expression is one value: drop the `;` (statements need a script file or a `|` block)"),
        ("Unexpected '", "something is missing before this: a value, an operand, or a closing bracket"),
    ];
    fixes.iter().find(|(start, _)| message.contains(start)).map(|(_, fix)| *fix)
}
