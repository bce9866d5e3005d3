//! The rhai sandbox that runs ops staff's scripts, and the mapping of script errors to places.
//!
//! A run has an operation budget and a wall-clock deadline (default 50 ms), enforced from the
//! progress callback; `print` and `debug` go to the run's log; a runtime error carries the line
//! and column inside the script. [`run`] is the only way closeloop evaluates a compiled script.
//!
//! The engine starts from [`rhai::Engine::new_raw`]: no file module resolver (no `import`),
//! no `LanguageCorePackage` (no blocking `sleep`), `eval` disabled at parse time, `print` and
//! `debug` swallowed, modules compiled out (the `no_module` feature) (the runner will route them to the run log), and every limit set.
//! Scripts compile once: when an app is validated, or, for an installed revision, on first use.

use rhai::packages::{
    ArithmeticPackage, BasicArrayPackage, BasicIteratorPackage, BasicMapPackage, BasicMathPackage, BasicStringPackage,
    LogicPackage, MoreStringPackage, Package,
};
use std::cell::RefCell;
use std::time::{Duration, Instant};

use rhai::{Dynamic, Engine, EvalAltResult, ParseError, Scope, AST};

use crate::yaml::{Pos, Style};

/// The limits every script runs under.
#[derive(Debug, Clone, Copy)]
pub struct ScriptLimits {
    /// Operations per run.
    pub max_operations: u64,
    /// Nested function calls.
    pub max_call_levels: usize,
    /// Expression nesting at global level.
    pub max_expr_depth: usize,
    /// Expression nesting inside functions.
    pub max_fn_expr_depth: usize,
    /// Characters in one string.
    pub max_string_size: usize,
    /// Items in one array.
    pub max_array_size: usize,
    /// Entries in one object map.
    pub max_map_size: usize,
    /// Variables alive at once.
    pub max_variables: usize,
    /// Functions one script may define.
    pub max_functions: usize,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            max_operations: 1_000_000,
            max_call_levels: 32,
            max_expr_depth: 64,
            max_fn_expr_depth: 32,
            max_string_size: 64 * 1024,
            max_array_size: 10_000,
            max_map_size: 10_000,
            max_variables: 256,
            max_functions: 64,
        }
    }
}

/// Builds the hardened engine.
pub fn engine(limits: ScriptLimits) -> Engine {
    let mut engine = Engine::new_raw();
    for module in [
        ArithmeticPackage::new().as_shared_module(),
        BasicStringPackage::new().as_shared_module(),
        MoreStringPackage::new().as_shared_module(),
        BasicIteratorPackage::new().as_shared_module(),
        LogicPackage::new().as_shared_module(),
        BasicMathPackage::new().as_shared_module(),
        BasicArrayPackage::new().as_shared_module(),
        BasicMapPackage::new().as_shared_module(),
    ] {
        engine.register_global_module(module);
    }
    engine
        .set_max_operations(limits.max_operations)
        .set_max_call_levels(limits.max_call_levels)
        .set_max_expr_depths(limits.max_expr_depth, limits.max_fn_expr_depth)
        .set_max_string_size(limits.max_string_size)
        .set_max_array_size(limits.max_array_size)
        .set_max_map_size(limits.max_map_size)
        .set_max_variables(limits.max_variables)
        .set_max_functions(limits.max_functions)
        .set_strict_variables(false);
    engine.disable_symbol("eval");
    engine.on_print(log_line);
    engine.on_debug(|text, _, pos| {
        log_line(&format!("{}:{} {text}", pos.line().unwrap_or(0), pos.position().unwrap_or(0)))
    });
    // The deadline and the operation count of the run in progress on this thread (scripts run
    // on the caller's thread, so a thread-local is exactly "the current run").
    engine.on_progress(|ops| {
        RUN.with(|run| {
            let mut run = run.borrow_mut();
            let state = run.as_mut()?;
            state.operations = ops;
            (state.started.elapsed() > state.deadline).then(|| Dynamic::from("deadline"))
        })
    });
    engine
}

/// The most lines a run's log keeps, and the most characters per line.
const LOG_LINES: usize = 100;
const LOG_WIDTH: usize = 500;

struct RunState {
    started: Instant,
    deadline: Duration,
    operations: u64,
    log: Vec<String>,
    calls: Vec<String>,
    context: RunContext,
}

/// What host functions need to know about the run in progress: the app's time zone and
/// working calendar, and the record the script is about.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    /// IANA time zone of the app.
    pub time_zone: String,
    /// Worked weekdays, Monday = 1 … Sunday = 7.
    pub working_days: Vec<i8>,
    /// Dates not worked (`YYYY-MM-DD`).
    pub holidays: Vec<String>,
    /// Weekend dates that are worked.
    pub extra_working_days: Vec<String>,
    /// The app the script belongs to: host functions read only its forms.
    pub app: Option<String>,
    /// The form of the record the script is about.
    pub form: Option<String>,
    /// The record's id, when it has one yet.
    pub record: Option<String>,
}

/// The context of the run in progress on this thread (host functions call this).
pub fn context() -> RunContext {
    RUN.with(|run| run.borrow().as_ref().map(|s| s.context.clone()).unwrap_or_default())
}

/// Notes a host call in the run's record of calls (`script test` shows them).
pub fn note_call(call: String) {
    RUN.with(|run| {
        if let Some(state) = run.borrow_mut().as_mut() {
            if state.calls.len() < LOG_LINES {
                state.calls.push(call);
            }
        }
    });
}

thread_local! {
    static RUN: RefCell<Option<RunState>> = const { RefCell::new(None) };
}

fn log_line(text: &str) {
    RUN.with(|run| {
        if let Some(state) = run.borrow_mut().as_mut() {
            if state.log.len() < LOG_LINES {
                state.log.push(text.chars().take(LOG_WIDTH).collect());
            }
        }
    });
}

/// The default wall-clock deadline of one run.
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(50);

/// A finished run: its value, what it printed, and what it cost.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The script's value.
    pub value: Dynamic,
    /// Lines it printed (`print`, `debug`).
    pub log: Vec<String>,
    /// Operations it used.
    pub operations: u64,
    /// Wall-clock time it took.
    pub elapsed: Duration,
    /// The host functions it called, with what they returned.
    pub calls: Vec<String>,
}

/// Why a run stopped without a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptFault {
    /// It ran past its wall-clock deadline.
    #[error("the script ran past its {0:?} deadline")]
    Deadline(Duration),
    /// It used more operations than allowed (an endless loop).
    #[error("the script used too many operations (an endless loop?)")]
    TooManyOperations,
    /// It nested calls too deep (endless recursion).
    #[error("the script called itself too deep (endless recursion?)")]
    TooDeep,
    /// It built a string, array or map past the limits.
    #[error("the script built data past the limits: {0}")]
    TooLarge(String),
    /// Any other runtime error, at a line and column of the script.
    #[error("line {line}, column {column}: {message}")]
    Runtime {
        /// What went wrong.
        message: String,
        /// 1-based line in the script.
        line: usize,
        /// 1-based column.
        column: usize,
    },
}

/// Runs a compiled script with variables in scope, under the engine's limits and a deadline.
pub fn run(
    engine: &Engine,
    ast: &AST,
    scope: &mut Scope<'_>,
    deadline: Duration,
) -> Result<RunOutcome, (ScriptFault, Vec<String>)> {
    run_in(engine, ast, scope, deadline, RunContext::default())
}

/// [`run`] with a context for the host functions.
pub fn run_in(
    engine: &Engine,
    ast: &AST,
    scope: &mut Scope<'_>,
    deadline: Duration,
    context: RunContext,
) -> Result<RunOutcome, (ScriptFault, Vec<String>)> {
    let started = Instant::now();
    let state = RunState { started, deadline, operations: 0, log: Vec::new(), calls: Vec::new(), context };
    // A run inside a run (a host function evaluating a script) gets its own state and gives the
    // outer run's back when it ends, so the outer deadline keeps counting.
    let outer = RUN.with(|run| run.borrow_mut().replace(state));
    let result = engine.eval_ast_with_scope::<Dynamic>(scope, ast);
    let state = RUN.with(|run| std::mem::replace(&mut *run.borrow_mut(), outer));
    let (operations, log, calls) = state.map(|s| (s.operations, s.log, s.calls)).unwrap_or_default();
    match result {
        Ok(value) => Ok(RunOutcome { value, log, operations, elapsed: started.elapsed(), calls }),
        Err(e) => Err((fault(*e, deadline), log)),
    }
}

fn fault(e: EvalAltResult, deadline: Duration) -> ScriptFault {
    let pos = e.position();
    match e {
        EvalAltResult::ErrorTerminated(..) => ScriptFault::Deadline(deadline),
        EvalAltResult::ErrorTooManyOperations(..) => ScriptFault::TooManyOperations,
        EvalAltResult::ErrorStackOverflow(..) => ScriptFault::TooDeep,
        EvalAltResult::ErrorDataTooLarge(what, ..) => ScriptFault::TooLarge(what),
        EvalAltResult::ErrorTooManyVariables(..) => ScriptFault::TooLarge("too many variables".into()),
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => fault(*inner, deadline),
        other => ScriptFault::Runtime {
            message: other.to_string().split(" (line ").next().unwrap_or_default().to_string(),
            line: pos.line().unwrap_or(1),
            column: pos.position().unwrap_or(1),
        },
    }
}

/// A compile error inside a script: message and 1-based line and column within the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    /// What is wrong.
    pub message: String,
    /// The variable a strict compile found undeclared, when that is what is wrong.
    pub undefined: Option<String>,
    /// 1-based line in the script.
    pub line: usize,
    /// 1-based column in the script.
    pub column: usize,
}

impl From<ParseError> for ScriptError {
    fn from(e: ParseError) -> Self {
        let pos = e.position();
        let undefined = match e.err_type() {
            rhai::ParseErrorType::VariableUndefined(name) => Some(name.clone()),
            _ => None,
        };
        ScriptError {
            message: e.err_type().to_string(),
            undefined,
            line: pos.line().unwrap_or(1),
            column: pos.position().unwrap_or(1),
        }
    }
}

/// Compiles a script.
pub fn compile(engine: &Engine, source: &str) -> Result<AST, ScriptError> {
    engine.compile(source).map_err(ScriptError::from)
}

/// Compiles a script (or, with `expression`, a single expression) that may use only `names`
/// besides the variables it declares itself. With an engine in strict-variables mode (the
/// loader's), a misspelt field or an undeclared variable is a compile error at its position,
/// not a computed field that stays empty forever or a script that fails on its first live run.
pub fn compile_with_names(engine: &Engine, source: &str, names: &[&str], expression: bool) -> Result<AST, ScriptError> {
    let mut scope = Scope::new();
    for name in names {
        scope.push_dynamic(*name, Dynamic::UNIT);
    }
    let compiled = if expression {
        engine.compile_expression_with_scope(&scope, source)
    } else {
        engine.compile_with_scope(&scope, source)
    };
    compiled.map_err(|e| at_missing_semicolon(ScriptError::from(e), source))
}

/// rhai notices a missing `;` at the next statement, a line later; an author looks for it at
/// the end of the line before. Moves such an error to just after the last character before it.
fn at_missing_semicolon(mut e: ScriptError, source: &str) -> ScriptError {
    if !e.message.starts_with("Expecting ';'") {
        return e;
    }
    let lines: Vec<&str> = source.split('\n').collect();
    let before = |line: usize, column: usize| -> String {
        lines
            .get(line.saturating_sub(1))
            .map(|l| l.chars().take(column.saturating_sub(1)).collect())
            .unwrap_or_default()
    };
    if !before(e.line, e.column).trim().is_empty() {
        return e;
    }
    // Back over blank lines and comment lines to the statement that lacks its `;`.
    let mut line = e.line.saturating_sub(1);
    while line >= 1 {
        let text = lines.get(line - 1).copied().unwrap_or_default();
        let code = text.split("//").next().unwrap_or_default().trim_end();
        if !code.trim().is_empty() {
            e.line = line;
            e.column = code.chars().count() + 1;
            e.message = "a `;` is missing at the end of this statement".into();
            break;
        }
        line -= 1;
    }
    e
}

/// Compiles a single expression (a computed field, an `expr` condition).
pub fn compile_expression(engine: &Engine, source: &str) -> Result<AST, ScriptError> {
    engine.compile_expression(source).map_err(ScriptError::from)
}

/// Whether a source is a whole script or a single expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptKind {
    /// Statements (`scripts/x.rhai`, an inline `script:`).
    Script,
    /// One expression (a computed field, an `expr` condition).
    Expression,
}

impl ScriptKind {
    /// Compiles a source of this kind that may use `names` (see [`compile_with_names`]).
    pub fn compile(self, engine: &Engine, source: &str, names: &[&str]) -> Result<AST, ScriptError> {
        compile_with_names(engine, source, names, self == ScriptKind::Expression)
    }
}

/// Maps a line and column inside an inline script back to the YAML file, given where the
/// scalar starts, how it was written and its text.
///
/// Literal blocks (`|`) keep their lines, so they map one to one (blank lines before the first
/// content line shift the mark, which saphyr puts on the first content character). Where the
/// text on the page differs from the value (folded `>` blocks and multi-line plain scalars join
/// lines; quoted strings may hold escapes) the position falls back to the start of the value,
/// which is right about the place if not the column.
pub fn position_in_yaml(scalar: Pos, style: Style, text: &str, line: usize, column: usize) -> Pos {
    let start = Pos { line: scalar.line, column: scalar.column };
    match style {
        Style::Literal => {
            let leading_blank = text.chars().take_while(|c| *c == '\n').count();
            if line <= leading_blank {
                return start;
            }
            Pos { line: scalar.line + line - 1 - leading_blank, column: scalar.column + column - 1 }
        }
        Style::Folded => start,
        Style::Plain | Style::SingleQuoted | Style::DoubleQuoted => {
            let quote = usize::from(style != Style::Plain);
            let escaped = match style {
                Style::DoubleQuoted => text.contains(['"', '\\', '\t', '\n']),
                Style::SingleQuoted => text.contains(['\'', '\n']),
                _ => text.contains('\n'),
            };
            if line > 1 || escaped {
                return Pos { line: scalar.line, column: scalar.column + quote };
            }
            Pos { line: scalar.line, column: scalar.column + quote + column - 1 }
        }
    }
}

/// The identifiers an expression mentions, outside strings and not after a `.`.
/// Used to find which fields a computed field depends on.
pub fn identifiers(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = source.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '`' || c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let after_dot = chars[..start].iter().rev().find(|c| !c.is_whitespace()) == Some(&'.');
            if !after_dot {
                out.push(chars[start..i].iter().collect());
            }
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiles(src: &str) -> Result<(), ScriptError> {
        compile(&engine(ScriptLimits::default()), src).map(|_| ())
    }

    #[test]
    fn reports_syntax_errors_with_line_and_column() {
        let e = compiles("let x = 1;\nlet y = (2 + ;\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.column > 1);
    }

    #[test]
    fn refuses_eval_import_and_deep_nesting() {
        assert!(compiles("eval(\"1\")").is_err());
        assert!(compiles("import \"/etc/passwd\" as p;").is_err());
        let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(compiles(&deep).is_err());
        let closures = format!("{}{}", "|| {".repeat(5_000), "}".repeat(5_000));
        assert!(compiles(&closures).is_err());
    }

    #[test]
    fn maps_inline_positions_into_the_yaml() {
        // `a:\n  script: |\n    let x = 1;\n    bad(\n`: the block starts at 3:5.
        let p = position_in_yaml(Pos { line: 3, column: 5 }, Style::Literal, "let x = 1;\nbad(\n", 2, 5);
        assert_eq!(p, Pos { line: 4, column: 9 });
        // A block that starts with a blank line: the mark is on the first content line.
        let p = position_in_yaml(Pos { line: 4, column: 5 }, Style::Literal, "\nlet x = 1;\nbad(\n", 3, 5);
        assert_eq!(p, Pos { line: 5, column: 9 });
        // Escapes make columns unreliable: fall back to the start of the text.
        let p = position_in_yaml(Pos { line: 1, column: 7 }, Style::DoubleQuoted, "a\tb +", 1, 5);
        assert_eq!(p, Pos { line: 1, column: 8 });
        let p = position_in_yaml(Pos { line: 1, column: 7 }, Style::DoubleQuoted, "x +", 1, 3);
        assert_eq!(p, Pos { line: 1, column: 10 });
    }

    #[test]
    fn finds_identifiers_outside_strings() {
        assert_eq!(identifiers("qty * unit_price + \"qty\".len() + x.field"), ["qty", "unit_price", "x"]);
    }
}
