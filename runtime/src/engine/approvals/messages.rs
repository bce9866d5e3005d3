//! The messages approvers receive: built-in templates in the app's language, which an app
//! overrides by declaring a message with the same id (`approval_needed`, `approval_reset`,
//! `approval_escalated`). Each sees the record's fields as any message does, the run under
//! `approval` (`form`, `record`, `step`, `version`, `on_behalf_of`), `link` (the record's page,
//! once ops set the public address), and under `shown` the
//! step's `show` fields that are not sensitive, each with its `label` and `text` as people
//! read it (`59,000.00`, `60%`).

use serde_json::{json, Map, Value};

use crate::engine::delivery::notify::message_context;
use crate::engine::write::Writer;
use crate::model::Lang;
use crate::store::RecordRow;

/// Built-in templates: (id, Chinese, English).
pub(crate) const BUILT_IN: &[(&str, &str, &str)] = &[
    (
        "approval_needed",
        "待审批：{{ approval.record }}（{{ approval.step }}）\
         {% for s in shown %}\n{{ s.label }}：{{ s.text }}{% endfor %}\
         {% if approval.on_behalf_of %}\n代 {{ approval.on_behalf_of }} 审批{% endif %}\
         {% if link %}\n{{ link }}{% endif %}",
        "Approval needed: {{ approval.record }} ({{ approval.step }})\
         {% for s in shown %}\n{{ s.label }}: {{ s.text }}{% endfor %}\
         {% if approval.on_behalf_of %}\non behalf of {{ approval.on_behalf_of }}{% endif %}\
         {% if link %}\n{{ link }}{% endif %}",
    ),
    (
        "approval_reset",
        "{{ approval.record }} 已修改为第 {{ approval.version }} 版，审批已重置，请重新审批{% if link %}\n{{ link }}{% endif %}",
        "{{ approval.record }} changed to version {{ approval.version }}; its approvals were reset{% if link %}\n{{ link }}{% endif %}",
    ),
    (
        "approval_escalated",
        "审批超时，已转给您处理：{{ approval.record }}（{{ approval.step }}）{% if link %}\n{{ link }}{% endif %}",
        "Overdue approval escalated to you: {{ approval.record }} ({{ approval.step }}){% if link %}\n{{ link }}{% endif %}",
    ),
];

/// Adds the built-in approval templates the app did not override.
pub(crate) fn add_built_in(env: &mut minijinja::Environment<'static>, declared: &[crate::model::Message]) {
    for (id, zh, en) in BUILT_IN {
        if declared.iter().any(|m| m.id == *id) {
            continue;
        }
        let _ = env.add_template_owned(format!("{id}.zh"), *zh);
        let _ = env.add_template_owned(format!("{id}.en"), *en);
    }
}

/// What an approval message is about.
pub(crate) struct About<'a> {
    pub row: &'a RecordRow,
    pub step: &'a str,
    pub shown: Vec<(String, String)>,
    pub on_behalf_of: Option<&'a str>,
}

/// Renders approval message `id` in the app's language. A template that fails at run time
/// (an override naming a value the record lacks) falls back to the built-in one: an approver
/// is told either way.
pub(crate) fn render(w: &Writer<'_, '_>, id: &str, about: &About<'_>) -> String {
    let mut ctx = match message_context(w.f, Some(about.row), None, None) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    ctx.insert(
        "approval".into(),
        json!({"form": w.f.form.id, "record": about.row.id, "step": about.step,
            "version": about.row.version, "on_behalf_of": about.on_behalf_of}),
    );
    let shown: Vec<Value> = about.shown.iter().map(|(label, text)| json!({"label": label, "text": text})).collect();
    ctx.insert("shown".into(), Value::Array(shown));
    if let Ok(Some(link)) = crate::engine::delivery::notify::record_link(w, Some(&about.row.id)) {
        ctx.insert("link".into(), Value::String(link));
    }
    let ctx = minijinja::Value::from(minijinja::value::Serde(Value::Object(ctx)));
    let code = if w.f.lang() == Lang::Zh { "zh" } else { "en" };
    let name = format!("{id}.{code}");
    if let Ok(text) = w.f.app.messages.get_template(&name).and_then(|t| t.render(&ctx)) {
        return text;
    }
    let fallback = BUILT_IN.iter().find(|(b, _, _)| *b == id).map(|(_, zh, en)| if code == "zh" { *zh } else { *en });
    let mut env = minijinja::Environment::new();
    crate::values::add_number_filters(&mut env);
    fallback
        .and_then(|t| env.render_str(t, &ctx).ok())
        .unwrap_or_else(|| format!("{} {}: {}", w.f.form.id, about.row.id, about.step))
}
