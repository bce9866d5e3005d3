//! The fixture corpus: every app under `tests/data/invalid/` states the diagnostics it must
//! produce in header comments, and every app under `tests/data/valid/` must load clean.
//!
//! ```yaml
//! # expect: UNKNOWN_KEY 9:9
//! # expect: SCRIPT_SYNTAX scripts/assign.rhai:3:13
//! ```
//!
//! The match is exact: every expected diagnostic is produced, and nothing else is. A fixture
//! may also state help lines (`# help: write \`2h\``): each must be part of the help of one of
//! its diagnostics, so what the author is told to type is pinned too.

use std::path::{Path, PathBuf};

use closeloop::Diagnostic;

use crate::support::{load, root};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Expected {
    code: String,
    file: String,
    line: usize,
    column: usize,
}

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = root().join("tests/data").join(kind);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() || p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    paths
}

fn app_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("app.yaml")
    } else {
        path.to_path_buf()
    }
}

fn expectations(path: &Path) -> Vec<Expected> {
    let text = std::fs::read_to_string(app_file(path)).unwrap_or_default();
    let mut out: Vec<Expected> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|e| {
            let (code, place) = e.split_once(' ').unwrap_or((e, ""));
            let parts: Vec<&str> = place.rsplitn(3, ':').collect();
            let (file, line, column) = match parts.as_slice() {
                [col, line, file] => (file.to_string(), line.parse().unwrap_or(0), col.parse().unwrap_or(0)),
                [col, line] => (String::new(), line.parse().unwrap_or(0), col.parse().unwrap_or(0)),
                _ => panic!("{}: cannot read expectation `{e}`", path.display()),
            };
            Expected { code: code.to_string(), file, line, column }
        })
        .collect();
    out.sort();
    out
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).to_string_lossy().into_owned()
}

fn actual(path: &Path, diagnostics: &[Diagnostic]) -> Vec<Expected> {
    let app = app_file(path).display().to_string();
    let dir = if path.is_dir() { format!("{}/", path.display()) } else { String::new() };
    let mut out: Vec<Expected> = diagnostics
        .iter()
        .map(|d| {
            let file =
                if d.file == app { String::new() } else { d.file.strip_prefix(&dir).unwrap_or(&d.file).to_string() };
            Expected { code: d.code.to_string(), file, line: d.line, column: d.column }
        })
        .collect();
    out.sort();
    out
}

fn show(list: &[Expected]) -> String {
    list.iter()
        .map(|e| {
            let file = if e.file.is_empty() { String::new() } else { format!("{}:", e.file) };
            format!("# expect: {} {file}{}:{}", e.code, e.line, e.column)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_invalid_app_reports_exactly_its_expected_diagnostics() {
    let mut failures = Vec::new();
    for path in fixtures("invalid") {
        let expected = expectations(&path);
        assert!(!expected.is_empty(), "{} states no `# expect:` line", path.display());
        let loaded = load(&path);
        let got = actual(&path, &loaded.diagnostics);
        if got != expected {
            let messages: Vec<String> =
                loaded.diagnostics.iter().map(|d| format!("  {}: {}", d.code, d.message)).collect();
            failures.push(format!(
                "{}\n expected:\n{}\n got:\n{}\n{}",
                relative(&path),
                show(&expected),
                show(&got),
                messages.join("\n")
            ));
        }
        assert!(loaded.app.is_none(), "{} loaded although it has errors", path.display());
    }
    assert!(failures.is_empty(), "{} fixture(s) differ:\n\n{}", failures.len(), failures.join("\n\n"));
}

/// The `# help:` lines of a fixture.
fn helps(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(app_file(path)).unwrap_or_default();
    text.lines().filter_map(|l| l.strip_prefix("# help: ")).map(str::to_string).collect()
}

#[test]
fn every_stated_help_line_is_what_the_author_is_told() {
    let mut failures = Vec::new();
    for path in fixtures("invalid") {
        let loaded = load(&path);
        for help in helps(&path) {
            if !loaded.diagnostics.iter().any(|d| d.help.as_deref().is_some_and(|h| h.contains(&help))) {
                let told: Vec<String> =
                    loaded.diagnostics.iter().map(|d| format!("  {}: {:?}", d.code, d.help)).collect();
                failures.push(format!("{}: no help says {help:?}; told:\n{}", relative(&path), told.join("\n")));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_diagnostic_carries_a_message_and_a_position() {
    for path in fixtures("invalid") {
        for d in load(&path).diagnostics {
            assert!(!d.message.is_empty() && d.line >= 1 && d.column >= 1, "{}: {d:?}", path.display());
        }
    }
}

#[test]
fn the_corpus_covers_at_least_sixty_invalid_apps() {
    assert!(fixtures("invalid").len() >= 60);
}

#[test]
fn every_fixtures_first_diagnostic_says_what_to_do() {
    // The first problem an ops person reads comes with a help line: what to type instead.
    let silent: Vec<String> = fixtures("invalid")
        .into_iter()
        .filter(|path| load(path).diagnostics.first().is_none_or(|d| d.help.as_deref().is_none_or(str::is_empty)))
        .map(|path| relative(&path))
        .collect();
    assert!(silent.is_empty(), "no help line on the first diagnostic of: {silent:#?}");
}

#[test]
fn valid_fixtures_load_without_any_diagnostic() {
    for path in fixtures("valid") {
        let loaded = load(&path);
        assert!(loaded.app.is_some() && loaded.diagnostics.is_empty(), "{}: {:#?}", path.display(), loaded.diagnostics);
    }
}

#[test]
fn every_code_is_documented_in_the_catalogue() {
    let catalogue = std::fs::read_to_string(root().join("docs/diagnostics.md")).unwrap_or_default();
    for code in closeloop::Code::ALL {
        assert!(catalogue.contains(&format!("`{code}`")), "docs/diagnostics.md does not describe {code}");
    }
}

/// Ops staff who read Chinese get every diagnostic of the corpus in Chinese (`LANG=zh_CN.UTF-8`),
/// and its help too, except where the help quotes the schema's own description, which is
/// English. A message the checker gains without a shape in `diagnostics.zh.ftl` fails here.
#[test]
fn every_diagnostic_of_the_corpus_reads_in_chinese() {
    use closeloop::model::Lang;
    let chinese = |s: &str| s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
    let mut untranslated = Vec::new();
    let (mut helps, mut helps_zh) = (0, 0);
    for path in fixtures("invalid") {
        for d in load(&path).diagnostics {
            // Translated, not merely quoting Chinese (a label typed where an id belongs).
            if d.message_in(Lang::Zh) == d.message {
                untranslated.push(format!("{}:{}: {}", d.file, d.line, d.message));
            }
            if let Some(help) = d.help_in(Lang::Zh) {
                helps += 1;
                helps_zh += usize::from(chinese(&help) && Some(&help) != d.help.as_ref());
            }
            assert_eq!(d.message_in(Lang::En), d.message, "English stays as written");
        }
    }
    assert!(untranslated.is_empty(), "messages without a Chinese shape:\n{}", untranslated.join("\n"));
    // 117 of 125 today; the other 8 quote the JSON Schema's English descriptions.
    assert!(helps_zh * 100 >= helps * 90, "{helps_zh} of {helps} helps in Chinese");
}
