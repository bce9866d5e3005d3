//! Text for people: diagnostics in the style of cargo and actionlint, summaries, lists.

use closeloop::model::{Label, Langs};
use closeloop::{Diagnostic, Loaded};
use serde_json::{json, Value};

/// `file:line:col: error[CODE]: message`, the source line with a caret under the offending
/// token, and the help line.
pub fn diagnostic(d: &Diagnostic, source: Option<&str>) -> String {
    let mut out = format!("{}:{}:{}: {}[{}]: {}\n", d.file, d.line, d.column, severity(d), d.code, d.message);
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
        let carets = "^".repeat(width(token_at(&token)).max(1));
        out.push_str(&format!("{gutter} |\n{number} | {line}\n{gutter} | {}{carets}\n", " ".repeat(width(&before))));
    }
    if let Some(help) = &d.help {
        let gutter = " ".repeat(d.line.to_string().len());
        out.push_str(&format!("{gutter} = help: {help}\n"));
    }
    out.push('\n');
    out
}

fn severity(d: &Diagnostic) -> &'static str {
    if d.is_error() {
        "error"
    } else {
        "warning"
    }
}

/// The token starting a line remainder: a key up to its colon, a quoted string, or a value.
fn token_at(rest: &str) -> &str {
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
    match &loaded.app {
        Some(app) => format!(
            "{shown}: valid ({}){}\n",
            counts(&app.def),
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

fn counts(def: &closeloop::model::AppDef) -> String {
    let fields: usize = def.forms.iter().map(|f| f.fields.len()).sum();
    let parts = [
        (def.forms.len(), "form"),
        (fields, "field"),
        (def.automations.len(), "automation"),
        (def.assignment_rules.len(), "assignment rule"),
        (def.approvals.len(), "approval chain"),
        (def.sops.len(), "SOP"),
        (def.scores.len() + def.grades.len(), "score/grade"),
        (def.boards.len(), "board"),
        (def.metrics.len(), "metric"),
    ];
    parts.iter().filter_map(|(n, w)| plural(*n, w)).collect::<Vec<_>>().join(", ")
}

/// One template's summary for `closeloop demo`.
pub fn summary(name: &str, loaded: &Loaded) -> String {
    let Some(app) = &loaded.app else {
        return format!("{name}: invalid; see the errors above\n\n");
    };
    let def = &app.def;
    let mut out = format!("{name} · {}\n", label_text(&def.app.title));
    if let Some(d) = &def.app.description {
        out.push_str(&format!("  {}\n", label_text(d)));
    }
    out.push_str(&format!("  {}; {} script(s) and expression(s) compiled\n", counts(def), app.script_count()));
    for form in &def.forms {
        let label = form.label.as_ref().map(label_text).unwrap_or_default();
        let states: Vec<&str> = form.states.iter().map(|s| s.id.as_str()).collect();
        let states = if states.is_empty() { String::new() } else { format!(", states {}", states.join(" → ")) };
        out.push_str(&format!("  form {} ({label}): {} fields{states}\n", form.id, form.fields.len()));
    }
    for metric in &def.metrics {
        let label = metric.label.as_ref().map(label_text).unwrap_or_default();
        out.push_str(&format!("  metric {} ({label}): target {:.0}%\n", metric.id, metric.target * 100.0));
    }
    out.push('\n');
    out
}

/// One template's summary as JSON.
pub fn summary_json(name: &str, loaded: &Loaded) -> Value {
    match &loaded.app {
        None => json!({"name": name, "valid": false, "diagnostics": loaded.diagnostics}),
        Some(app) => {
            let def = &app.def;
            json!({
                "name": name,
                "valid": true,
                "title": label_json(Some(&def.app.title)),
                "forms": def.forms.iter().map(|f| json!({"id": f.id, "fields": f.fields.len(), "states": f.states.iter().map(|s| &s.id).collect::<Vec<_>>()})).collect::<Vec<_>>(),
                "automations": def.automations.len(),
                "approvals": def.approvals.len(),
                "sops": def.sops.len(),
                "metrics": def.metrics.iter().map(|m| json!({"id": m.id, "target": m.target})).collect::<Vec<_>>(),
                "scripts": app.script_count(),
                "warnings": loaded.diagnostics.len(),
            })
        }
    }
}

/// `中文 / English` for a two-language label.
pub fn label_text(label: &Label) -> String {
    match label {
        Label::Text(t) => t.clone(),
        Label::Langs(Langs { zh: Some(zh), en: Some(en) }) => format!("{zh} / {en}"),
        Label::Langs(Langs { zh, en }) => zh.clone().or(en.clone()).unwrap_or_default(),
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

/// A short walk through the lead loop in memory, for `closeloop demo`: what the engine does
/// with a real app, step by step.
pub fn walkthrough() -> Result<Vec<String>, String> {
    use std::sync::Arc;

    use closeloop::clock::ManualClock;
    use closeloop::store::Store;
    use closeloop::ImportOptions;
    use closeloop::{template, Runtime};

    let t = template("lead-followup").ok_or("the lead-followup template is missing")?;
    let file = |name: &str| t.files.iter().find(|(p, _)| *p == name).map(|(_, c)| *c).unwrap_or_default();
    let now: jiff::Timestamp = "2026-11-26T09:00:00+08:00".parse().map_err(|e: jiff::Error| e.to_string())?;
    let store = Store::open_in_memory().map_err(|e| e.to_string())?;
    let clock = Arc::new(ManualClock::new(now));
    let mut rt = Runtime::open(store, clock.clone()).map_err(|e| e.to_string())?;
    let mut out = vec!["lead-followup, live in memory (clock at 2026-11-26 09:00 +08:00):".to_string()];
    rt.install(&t.app_files(), "system", false).map_err(|e| e.to_string())?;
    let members = rt.import_members(file("data/members.csv").as_bytes(), "system").map_err(|e| e.to_string())?;
    out.push(format!("  installed the app; loaded {} members", members.created));
    let lead = json!({"source": "expo", "customer": "上海明远科技有限公司", "phone": "13800138001", "region": "east", "owner": "m_li"});
    let r = rt.submit("lead", lead.as_object().cloned().unwrap_or_default(), "m_li").map_err(|e| e.to_string())?;
    out.push(format!(
        "  m_li submitted {} ({}) owned by {}, state {}",
        r.id,
        r.data["customer"].as_str().unwrap_or(""),
        r.owner.as_deref().unwrap_or("-"),
        r.state.as_deref().unwrap_or("-")
    ));
    let bad = json!({"source": "expo", "phone": "12345", "urgency": "purple", "region": "east"});
    if let Err(closeloop::EngineError::Invalid(problems)) =
        rt.submit("lead", bad.as_object().cloned().unwrap_or_default(), "m_li")
    {
        let fields: Vec<String> = problems.iter().map(|p| p.message.clone()).collect();
        out.push(format!("  a bad submit was refused, nothing written: {}", fields.join("; ")));
    }
    if let Err(e) = rt.act("lead", &r.id, "contact", "m_wang", serde_json::Map::new()) {
        out.push(format!("  m_wang tried 已联系 and was refused: {e}"));
    }
    let note = json!({"summary": "电话沟通，客户有意向", "next_step": "下周一演示"});
    let r = rt
        .act("lead", &r.id, "contact", "m_li", note.as_object().cloned().unwrap_or_default())
        .map_err(|e| e.to_string())?;
    out.push(format!(
        "  m_li pressed 已联系: {} is now {} (version {})",
        r.id,
        r.state.as_deref().unwrap_or("-"),
        r.version
    ));
    let report = rt
        .import_csv("lead", file("data/leads.csv").as_bytes(), &ImportOptions::default(), &mut |_| {})
        .map_err(|e| e.to_string())?;
    out.push(format!(
        "  imported data/leads.csv (Chinese headers): {} new, {} updated by phone",
        report.created, report.updated
    ));
    // A day later, the scheduler's pass: every lead nobody contacted turns red, goes to the
    // supervisor board, and its rep gets one SMS; the contacted one is skipped.
    clock.advance(jiff::SignedDuration::from_hours(25));
    let tick = rt.tick().map_err(|e| e.to_string())?;
    use closeloop::{FireOutcome, TimerStatus};
    let fired = tick.timers.iter().filter(|t| t.outcome == FireOutcome::Settled(TimerStatus::Fired)).count();
    let skipped = tick.timers.iter().filter(|t| t.outcome == FireOutcome::Settled(TimerStatus::Skipped)).count();
    let board = rt.board("supervisor").map_err(|e| e.to_string())?;
    let outbox = rt.outbox(None).map_err(|e| e.to_string())?;
    let sms = outbox.iter().filter(|m| m.channel == "sms").count();
    out.push(format!(
        "  25 hours later, tick: {fired} 24h alert(s) fired, {skipped} skipped ({} was contacted); \
         {} lead(s) on the supervisor board; outbox: {} WeCom, {sms} SMS",
        r.id,
        board.len(),
        outbox.len() - sms
    ));
    let v = rt.verify_audit().map_err(|e| e.to_string())?;
    let status = if v.problem.is_none() { "ok" } else { "FAILED" };
    out.push(format!(
        "  audit verify: {status}, {} events in the hash chain, head {}…",
        v.events,
        &v.head[..12.min(v.head.len())]
    ));
    Ok(out)
}
