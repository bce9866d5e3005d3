//! Text for people: diagnostics in the style of cargo and actionlint, summaries, lists.

use closeloop::model::Label;
use closeloop::{Diagnostic, Loaded};
use serde_json::{json, Value};

/// `file:line:col: error[CODE]: message`, the source line with a caret under the offending
/// token, and the help line.
/// In the terminal's language (`LANG=zh_CN.UTF-8`): the same code and position, the message
/// and help in Chinese.
pub fn diagnostic(d: &Diagnostic, source: Option<&str>) -> String {
    let lang = crate::locale::lang();
    let message = d.message_in(lang);
    let mut out = format!("{}:{}:{}: {}[{}]: {message}\n", d.file, d.line, d.column, severity(d), d.code);
    if let Some(line) = source.and_then(|s| s.lines().nth(d.line.saturating_sub(1))) {
        let number = d.line.to_string();
        let gutter = " ".repeat(number.len());
        // Long lines (minified or hostile input) are shown as a window around the column.
        let chars: Vec<char> = line.chars().collect();
        let col = d.column.saturating_sub(1).min(chars.len());
        let start = col.saturating_sub(40);
        let end = (col + 60).min(chars.len());
        let prefix = if start > 0 { "…" } else { "" };
        let suffix = if end < chars.len() { "…" } else { "" };
        let line: String = format!("{prefix}{}{suffix}", chars[start..end].iter().collect::<String>());
        let before: String = format!("{prefix}{}", chars[start..col].iter().collect::<String>());
        let token: String = chars[col..end].iter().collect();
        let token = if d.file.ends_with(".rhai") { script_token(&token) } else { token_at(&token) };
        let carets = "^".repeat(width(token).max(1));
        out.push_str(&format!("{gutter} |\n{number} | {line}\n{gutter} | {}{carets}\n", " ".repeat(width(&before))));
    }
    if let Some(help) = d.help_in(lang) {
        let gutter = " ".repeat(d.line.to_string().len());
        out.push_str(&format!("{gutter} = {}{help}\n", crate::locale::pick("建议：", "help: ")));
    }
    out.push('\n');
    out
}

fn severity(d: &Diagnostic) -> &'static str {
    if d.is_error() {
        crate::locale::pick("错误", "error")
    } else {
        crate::locale::pick("警告", "warning")
    }
}

/// The token starting a line remainder of a script: a name, or else one character.
fn script_token(rest: &str) -> &str {
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
    let end = if end == 0 { rest.chars().next().map_or(0, char::len_utf8) } else { end };
    &rest[..end]
}

/// The token starting a line remainder: a key up to its colon, a quoted string, or a value.
fn token_at(rest: &str) -> &str {
    // Full-width punctuation is its own token: the caret sits under that one character.
    if let Some(c) = rest.chars().next().filter(|c| "：，“‘\u{3000}".contains(*c)) {
        return &rest[..c.len_utf8()];
    }
    let mut end = rest.len();
    if let Some(q) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') {
        if let Some(close) = rest[1..].find(q) {
            return &rest[..close + 2];
        }
    }
    for (i, c) in rest.char_indices() {
        let next = rest[i + c.len_utf8()..].chars().next();
        let stop = match c {
            ':' => next.is_none_or(char::is_whitespace),
            ',' | ']' | '}' => true,
            '#' => i > 0,
            _ => false,
        };
        if stop {
            end = i;
            break;
        }
    }
    rest[..end].trim_end()
}

/// Display width: East Asian wide characters take two columns, so carets line up under 中文.
pub(crate) fn width(s: &str) -> usize {
    s.chars()
        .map(|c| {
            let c = c as u32;
            let wide = matches!(c, 0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x20000..=0x3FFFD);
            if wide {
                2
            } else {
                1
            }
        })
        .sum()
}

/// The closing line for one path.
pub fn verdict(shown: &str, loaded: &Loaded) -> String {
    let errors = loaded.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = loaded.diagnostics.len() - errors;
    let lang = crate::locale::lang();
    if lang == closeloop::model::Lang::Zh {
        let warned = if warnings > 0 { format!("，{warnings} 个警告") } else { String::new() };
        return match &loaded.app {
            Some(app) => format!("{shown}：有效（{}）{warned}\n", counts(&app.def, lang)),
            None => format!("{shown}：无效，{errors} 个错误{warned}\n"),
        };
    }
    match &loaded.app {
        Some(app) => format!(
            "{shown}: valid ({}){}\n",
            counts(&app.def, lang),
            plural(warnings, "warning").map(|w| format!(", {w}")).unwrap_or_default()
        ),
        None => format!(
            "{shown}: invalid, {}{}\n",
            plural(errors, "error").unwrap_or_default(),
            plural(warnings, "warning").map(|w| format!(", {w}")).unwrap_or_default()
        ),
    }
}

fn plural(n: usize, word: &str) -> Option<String> {
    match n {
        0 => None,
        1 => Some(format!("1 {word}")),
        n => Some(format!("{n} {word}s")),
    }
}

/// What an app declares, counted, in the terminal's language ("1 form, 9 fields" / "1 个表单、9 个字段").
fn counts(def: &closeloop::model::AppDef, lang: closeloop::model::Lang) -> String {
    let fields: usize = def.forms.iter().map(|f| f.fields.len()).sum();
    let parts = [
        (def.forms.len(), "form", "个表单"),
        (fields, "field", "个字段"),
        (def.automations.len(), "automation", "个自动化"),
        (def.assignment_rules.len(), "assignment rule", "条分配规则"),
        (def.approvals.len(), "approval chain", "条审批链"),
        (def.sops.len(), "SOP", "个 SOP"),
        (def.scores.len() + def.grades.len(), "score/grade", "个评分/分级"),
        (def.boards.len(), "board", "个看板"),
        (def.metrics.len(), "metric", "个指标"),
    ];
    match lang {
        closeloop::model::Lang::En => {
            parts.iter().filter_map(|(n, en, _)| plural(*n, en)).collect::<Vec<_>>().join(", ")
        }
        closeloop::model::Lang::Zh => {
            parts.iter().filter(|p| p.0 > 0).map(|(n, _, zh)| format!("{n} {zh}")).collect::<Vec<_>>().join("、")
        }
    }
}

/// A label as JSON: `{zh, en}` always, the plain text filling both.
pub fn label_json(label: Option<&Label>) -> Value {
    match label {
        None => Value::Null,
        Some(Label::Text(t)) => json!({"zh": t, "en": t}),
        Some(Label::Langs(l)) => json!({"zh": l.zh, "en": l.en}),
    }
}

/// The template list for people.
pub fn template_list(rows: &[Value]) -> String {
    let mut out = String::new();
    for row in rows {
        let name = row["name"].as_str().unwrap_or_default();
        let title = format!(
            "{} / {}",
            row["title"]["zh"].as_str().unwrap_or_default(),
            row["title"]["en"].as_str().unwrap_or_default()
        );
        out.push_str(&format!("{name:<18} {title}\n"));
        if let Some(d) = row["description"]["en"].as_str() {
            out.push_str(&format!("{:<18} {d}\n", ""));
        }
    }
    out.push_str("\ncopy one to edit: closeloop init DIR --template NAME");
    out
}

/// A stored instant as people read it, in `zone` (see [`closeloop::clock::shown`]).
pub fn local(stamp: &str, zone: &jiff::tz::TimeZone) -> String {
    closeloop::clock::shown(stamp, zone)
}
