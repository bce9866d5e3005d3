//! Checks of what measures and shows records: scores, grades, boards, message templates,
//! metrics and sample data.

use super::flows::{action_ref, steps};
use super::forms::{condition, data_file};
use super::{Ctx, Scope};
use crate::diagnostic::{Code, Diagnostic};
use crate::model::{FieldType, Form, Milestone};
use crate::yaml::{Node, Value};

pub(super) fn check_reports(ctx: &mut Ctx<'_>) {
    scores_and_grades(ctx);
    boards_messages_seeds(ctx);
    metrics(ctx);
}

fn scores_and_grades(ctx: &mut Ctx<'_>) {
    let def = ctx.def();
    for (i, score) in def.scores.iter().enumerate() {
        let base = format!("/scores/{i}");
        let Some(form) = ctx.form_ref(&score.form, &format!("{base}/form")) else { continue };
        let scope = Scope::of(Some(form));
        ctx.typed_field_ref(
            scope,
            &score.field,
            &format!("{base}/field"),
            &[FieldType::Integer, FieldType::Decimal, FieldType::Percent],
            "a score",
        );
        ctx.script(&score.script, &format!("{base}/script"), &["record", "tasks"]);
        for (j, t) in score.thresholds.iter().enumerate() {
            steps(ctx, scope, &t.steps, &format!("{base}/thresholds/{j}/do"));
        }
    }
    for (i, grade) in def.grades.iter().enumerate() {
        let base = format!("/grades/{i}");
        let Some(form) = ctx.form_ref(&grade.form, &format!("{base}/form")) else { continue };
        let scope = Scope::of(Some(form));
        if let Some(field) =
            ctx.typed_field_ref(scope, &grade.field, &format!("{base}/field"), &[FieldType::Choice], "a grade")
        {
            for level in ["low", "medium", "high"] {
                let has = field.options.iter().flatten().any(|o| o.value == level);
                if field.kind == FieldType::Choice && !has {
                    ctx.error(
                        Code::UNKNOWN_OPTION,
                        format!("field `{}` has no option `{level}`, which this grade can give", field.id),
                        &format!("{base}/field"),
                    )
                    .help = Some(format!("add `{{value: {level}}}` to the options of field `{}`", field.id));
                }
            }
        }
        if let Some(f) = &grade.summary_field {
            ctx.typed_field_ref(
                scope,
                f,
                &format!("{base}/summary_field"),
                &[FieldType::Text, FieldType::LongText],
                "a summary",
            );
        }
        match (grade.rules.is_empty(), &grade.script) {
            (false, Some(_)) => {
                ctx.error_at_key(
                    Code::CONFLICT,
                    "a grade uses `rules` or a `script`, not both",
                    &format!("{base}/script"),
                );
            }
            (true, None) => {
                ctx.error_at_key(Code::MISSING_KEY, "a grade needs `rules` or a `script`", &format!("{base}/id"));
            }
            _ => {}
        }
        for (j, rule) in grade.rules.iter().enumerate() {
            condition(ctx, scope, &rule.condition, &format!("{base}/rules/{j}/if"));
            if let Some(reason) = &rule.reason {
                label_templates(ctx, reason, &format!("{base}/rules/{j}/reason"));
            }
        }
        if let Some(s) = &grade.script {
            ctx.script(s, &format!("{base}/script"), &["record", "actor"]);
        }
    }
}

fn boards_messages_seeds(ctx: &mut Ctx<'_>) {
    let def = ctx.def();
    for (i, board) in def.boards.iter().enumerate() {
        for (j, f) in board.forms.iter().enumerate() {
            ctx.form_ref(f, &format!("/boards/{i}/forms/{j}"));
        }
        for (j, r) in board.roles.iter().enumerate() {
            ctx.role_ref(r, &format!("/boards/{i}/roles/{j}"));
        }
        for (attr, field) in &board.scope {
            let p = format!("/boards/{i}/scope/{attr}");
            let attributes = super::flows::member_attributes(ctx);
            if !attributes.contains(attr) {
                let help = ctx.suggest(attr, attributes.iter().map(String::as_str));
                ctx.error_at_key(Code::UNKNOWN_MEMBER_FIELD, format!("members have no attribute `{attr}`"), &p).help =
                    help.or(Some("declare it under `members.fields`".into()));
            }
            for form in board.forms.iter().filter_map(|f| def.forms.iter().find(|x| &x.id == f)) {
                ctx.field_ref(Scope::of(Some(form)), field, &p, false);
            }
        }
    }
    for (i, message) in def.messages.iter().enumerate() {
        for (key, label) in [("text", Some(&message.text)), ("subject", message.subject.as_ref())] {
            let Some(label) = label else { continue };
            label_templates(ctx, label, &format!("/messages/{i}/{key}"));
        }
    }
    for (i, seed) in def.seed.iter().enumerate() {
        ctx.form_ref(&seed.form, &format!("/seed/{i}/form"));
        data_file(ctx, &seed.file, &format!("/seed/{i}/file"));
    }
}

/// Each language of a label, compiled as a template (`p` is the label's pointer).
fn label_templates(ctx: &mut Ctx<'_>, label: &crate::model::Label, p: &str) {
    let texts: Vec<(String, &str)> = match label {
        crate::model::Label::Text(t) => vec![(p.to_string(), t.as_str())],
        crate::model::Label::Langs(l) => [("zh", &l.zh), ("en", &l.en)]
            .into_iter()
            .filter_map(|(lang, t)| t.as_deref().map(|t| (format!("{p}/{lang}"), t)))
            .collect(),
    };
    for (p, text) in texts {
        template(ctx, text, &p);
    }
}

/// Message templates compile at load time, so a typo is a diagnostic and not a failed send.
fn template(ctx: &mut Ctx<'_>, text: &str, p: &str) {
    let mut env = minijinja::Environment::new();
    env.set_recursion_limit(16);
    crate::values::add_number_filters(&mut env);
    let Err(e) = env.template_from_str(text) else { return };
    let mut loc = ctx.loc(p, false);
    if let (Some(line), Some(range)) = (e.line(), e.range()) {
        let offset = range.start.min(text.len());
        let line_start = text.get(..offset).and_then(|t| t.rfind('\n')).map(|n| n + 1).unwrap_or(0);
        let column = text.get(line_start..offset).map(|t| t.chars().count()).unwrap_or(0) + 1;
        if let Some(Node { value: Value::Str(raw, style), pos }) = ctx.input.root.at(p) {
            let at = crate::script::position_in_yaml(*pos, *style, raw, line, column);
            loc.line = at.line;
            loc.column = at.column;
        }
    }
    let message = format!("the message template does not compile: {}", e.detail().unwrap_or("syntax error"));
    ctx.diags.push(
        Diagnostic::error(Code::BAD_TEMPLATE, message, &loc)
            .with_help("placeholders are written `{{ field }}`; blocks as `{% if x %}...{% endif %}`"),
    );
}

fn milestone(ctx: &mut Ctx<'_>, form: &Form, m: &Milestone, p: &str) {
    milestone_refs(ctx, form, m, p);
    // A milestone defined on another form's records can never happen to this metric's records.
    let def = ctx.def();
    let first = |path: &str| path.split('.').next().unwrap_or_default().to_string();
    let owner: Option<(&str, &str, &str)> = match m {
        Milestone::Event(e) => def
            .events
            .iter()
            .find(|d| &d.id == e)
            .and_then(|d| d.target.as_ref())
            .map(|t| (t.form.as_str(), "event", "event")),
        Milestone::Approval(a) => {
            def.approvals.iter().find(|c| &c.id == a).map(|c| (c.form.as_str(), "approval chain", "approval"))
        }
        Milestone::ApprovalStep(path) => def
            .approvals
            .iter()
            .find(|c| c.id == first(path))
            .map(|c| (c.form.as_str(), "approval chain", "approval_step")),
        Milestone::Task(path) => {
            def.sops.iter().find(|s| s.id == first(path)).map(|s| (s.form.as_str(), "SOP", "task"))
        }
        Milestone::Tasks(sop) => def.sops.iter().find(|s| &s.id == sop).map(|s| (s.form.as_str(), "SOP", "tasks")),
        _ => None,
    };
    if let Some((other, what, key)) = owner {
        if other != form.id {
            ctx.error(
                Code::CONFLICT,
                format!("this {what} belongs to form `{other}`, but the metric counts `{}` records", form.id),
                &format!("{p}/{key}"),
            )
            .help = Some(format!("name a {what} of form `{}`, or count `{other}` records (`form: {other}`)", form.id));
        }
    }
}

fn milestone_refs(ctx: &mut Ctx<'_>, form: &Form, m: &Milestone, p: &str) {
    let def = ctx.def();
    match m {
        Milestone::Created(_) => {}
        Milestone::Action(a) => action_ref(ctx, form, a, &format!("{p}/action")),
        Milestone::State(s) => ctx.state_ref(form, s, &format!("{p}/state")),
        Milestone::Event(e) => {
            if !def.events.iter().any(|d| &d.id == e) {
                ctx.unknown(
                    Code::UNKNOWN_EVENT,
                    "event",
                    e,
                    &format!("{p}/event"),
                    def.events.iter().map(|d| d.id.as_str()),
                );
            }
        }
        Milestone::Approval(a) => {
            if !def.approvals.iter().any(|c| &c.id == a) {
                ctx.unknown(
                    Code::UNKNOWN_APPROVAL,
                    "approval chain",
                    a,
                    &format!("{p}/approval"),
                    def.approvals.iter().map(|c| c.id.as_str()),
                );
            }
        }
        Milestone::ApprovalStep(path) => {
            let chains = def.approvals.iter().map(|c| (c.id.as_str(), c.steps.iter().map(|s| s.id.as_str()).collect()));
            dotted_ref(
                ctx,
                path,
                &format!("{p}/approval_step"),
                chains,
                [Code::UNKNOWN_APPROVAL, Code::UNKNOWN_APPROVAL],
                ["approval chain", "step"],
            );
        }
        Milestone::Task(path) => {
            let sops = def.sops.iter().map(|s| (s.id.as_str(), s.tasks.iter().map(|t| t.id.as_str()).collect()));
            dotted_ref(ctx, path, &format!("{p}/task"), sops, [Code::UNKNOWN_SOP, Code::UNKNOWN_TASK], ["SOP", "task"]);
        }
        Milestone::Tasks(sop) => {
            if !def.sops.iter().any(|s| &s.id == sop) {
                ctx.unknown(
                    Code::UNKNOWN_SOP,
                    "SOP",
                    sop,
                    &format!("{p}/tasks"),
                    def.sops.iter().map(|s| s.id.as_str()),
                );
            }
        }
    }
}

/// Resolves `outer.inner` (`chain.step`, `sop.task`) against (outer id, inner ids) pairs.
fn dotted_ref<'a>(
    ctx: &mut Ctx<'_>,
    path: &str,
    p: &str,
    outers: impl Iterator<Item = (&'a str, Vec<&'a str>)>,
    codes: [Code; 2],
    what: [&str; 2],
) {
    let (outer, inner) = path.split_once('.').unwrap_or((path, ""));
    let outers: Vec<(&str, Vec<&str>)> = outers.collect();
    match outers.iter().find(|(id, _)| *id == outer) {
        None => ctx.unknown(codes[0], what[0], outer, p, outers.iter().map(|(id, _)| *id)),
        Some((_, inners)) if !inners.contains(&inner) => {
            let help = ctx.suggest(inner, inners.iter().copied());
            ctx.error(codes[1], format!("{} `{outer}` has no {} `{inner}`", what[0], what[1]), p).help = help;
        }
        Some(_) => {}
    }
}

fn metrics(ctx: &mut Ctx<'_>) {
    let def = ctx.def();
    for (i, metric) in def.metrics.iter().enumerate() {
        let base = format!("/metrics/{i}");
        let Some(form) = ctx.form_ref(&metric.form, &format!("{base}/form")) else { continue };
        milestone(ctx, form, &metric.start, &format!("{base}/start"));
        milestone(ctx, form, &metric.end, &format!("{base}/end"));
        for (j, m) in metric.path.iter().enumerate() {
            milestone(ctx, form, m, &format!("{base}/path/{j}"));
        }
        match &metric.within {
            Some(w) => ctx.duration(w, &format!("{base}/within")),
            None if !matches!(metric.end, Milestone::Task(_) | Milestone::Tasks(_)) => {
                ctx.error_at_key(
                    Code::MISSING_KEY,
                    "say the deadline: add `within: DURATION`",
                    &format!("{base}/end"),
                )
                .help = Some("only task milestones may leave `within` out; they use each task's due date".into());
            }
            None => {}
        }
    }
}
