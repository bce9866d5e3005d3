//! Checks of what moves records along: automations and their steps, recipients, assignment
//! rules, approval chains and SOPs.

use super::forms::{condition, value_fits};
use super::{Ctx, Scope};
use crate::diagnostic::Code;
use crate::model::{
    ApprovalMode, FieldType, Form, Offset, Pick, Recipient, Step, Trigger, BUILTIN_MEMBER_FIELDS, SYSTEM_DATE_FIELDS,
};
use crate::timespec;

pub(super) fn check_flows(ctx: &mut Ctx<'_>) {
    automations(ctx);
    assignment_rules(ctx);
    approvals(ctx);
    sops(ctx);
}

fn automations(ctx: &mut Ctx<'_>) {
    let def = ctx.def();
    for (i, auto) in def.automations.iter().enumerate() {
        let base = format!("/automations/{i}");
        let form = trigger(ctx, &auto.when, &format!("{base}/when"));
        let scope = match (form, &auto.when) {
            (None, Trigger::Cron(_)) => Scope::without_record("a schedule starts this automation"),
            (None, Trigger::Event(name)) if def.events.iter().any(|e| &e.id == name) => {
                Scope::without_record("this automation's event names no `target` record")
            }
            _ => Scope::of(form),
        };
        if let Some(c) = &auto.condition {
            condition(ctx, scope, c, &format!("{base}/if"));
        }
        steps(ctx, scope, &auto.steps, &format!("{base}/do"));
    }
}

/// Checks a trigger; returns the form whose records it concerns, when there is one.
fn trigger<'a>(ctx: &mut Ctx<'a>, when: &'a Trigger, p: &str) -> Option<&'a Form> {
    match when {
        Trigger::Created(f) => ctx.form_ref(f, &format!("{p}/created")),
        Trigger::Updated(f) => ctx.form_ref(f, &format!("{p}/updated")),
        Trigger::Changed(c) => {
            let form = ctx.form_ref(&c.form, &format!("{p}/changed/form"))?;
            if let Some(field) = ctx.field_ref(Scope::of(Some(form)), &c.field, &format!("{p}/changed/field"), false) {
                for (key, v) in [("from", &c.from), ("to", &c.to)] {
                    if let Some(v) = v {
                        value_fits(ctx, field, v, &format!("{p}/changed/{key}"));
                    }
                }
            }
            Some(form)
        }
        Trigger::Action(a) => {
            let form = ctx.form_ref(&a.form, &format!("{p}/action/form"))?;
            action_ref(ctx, form, &a.action, &format!("{p}/action/action"));
            Some(form)
        }
        Trigger::Entered(e) => {
            let form = ctx.form_ref(&e.form, &format!("{p}/entered/form"))?;
            ctx.state_ref(form, &e.state, &format!("{p}/entered/state"));
            Some(form)
        }
        Trigger::Event(name) => {
            let def = ctx.def();
            match def.events.iter().find(|e| &e.id == name) {
                Some(event) => event.target.as_ref().and_then(|t| ctx.form(&t.form)),
                None => {
                    ctx.unknown(
                        Code::UNKNOWN_EVENT,
                        "event",
                        name,
                        &format!("{p}/event"),
                        def.events.iter().map(|e| e.id.as_str()),
                    );
                    None
                }
            }
        }
        Trigger::Cron(c) => {
            if let Err(e) = timespec::parse_cron(&c.schedule) {
                ctx.error(Code::BAD_CRON, format!("cannot read the schedule: {e}"), &format!("{p}/cron/schedule"))
                    .help = Some(
                    "five fields: minute hour day-of-month month day-of-week, e.g. `0 9 * * 1-5` for 09:00 on weekdays"
                        .into(),
                );
            }
            if let Some(tz) = &c.time_zone {
                ctx.time_zone(tz, &format!("{p}/cron/time_zone"));
            }
            None
        }
        Trigger::Timer(t) => {
            let form = ctx.form_ref(&t.form, &format!("{p}/timer/form"))?;
            offset_parts(ctx, form, t.after.as_deref(), t.before.as_deref(), &t.from, &format!("{p}/timer"));
            Some(form)
        }
    }
}

pub(super) fn action_ref(ctx: &mut Ctx<'_>, form: &Form, action: &str, p: &str) {
    if !form.actions.iter().any(|a| a.id == action) {
        let help = ctx.suggest(action, form.actions.iter().map(|a| a.id.as_str()));
        ctx.error(Code::UNKNOWN_ACTION, format!("form `{}` has no action `{action}`", form.id), p).help = help;
    }
}

fn offset(ctx: &mut Ctx<'_>, form: &Form, o: &Offset, p: &str) {
    offset_parts(ctx, form, o.after.as_deref(), o.before.as_deref(), &o.from, p);
}

/// Exactly one of `after`/`before`, a duration that parses, and a date anchor.
fn offset_parts(ctx: &mut Ctx<'_>, form: &Form, after: Option<&str>, before: Option<&str>, from: &str, p: &str) {
    match (after, before) {
        (Some(a), None) => ctx.duration(a, &format!("{p}/after")),
        (None, Some(b)) => ctx.duration(b, &format!("{p}/before")),
        (Some(_), Some(_)) => {
            ctx.error_at_key(Code::CONFLICT, "write `after` or `before`, not both", &format!("{p}/before")).help =
                Some("keep `after` for a moment after the anchor (`after: 24h`), `before` for one before it; delete the other".into());
        }
        (None, None) => {
            ctx.error_at_key(Code::MISSING_KEY, "say when: add `after: DURATION` or `before: DURATION`", p);
        }
    }
    if SYSTEM_DATE_FIELDS.contains(&from) {
        return;
    }
    let scope = Scope::of(Some(form));
    if scope.field(from).is_none() {
        let candidates: Vec<&str> = form
            .fields
            .iter()
            .filter(|f| f.kind.is_temporal())
            .map(|f| f.id.as_str())
            .chain(SYSTEM_DATE_FIELDS.iter().copied())
            .collect();
        let help = ctx.suggest(from, candidates.iter().copied());
        ctx.error(Code::UNKNOWN_FIELD, format!("form `{}` has no field `{from}`", form.id), &format!("{p}/from"))
            .help = help;
        return;
    }
    ctx.typed_field_ref(scope, from, &format!("{p}/from"), &[FieldType::Date, FieldType::Datetime], "a time anchor");
}

pub(super) fn steps(ctx: &mut Ctx<'_>, scope: Scope<'_>, list: &[Step], base: &str) {
    let def = ctx.def();
    for (i, step) in list.iter().enumerate() {
        let p = format!("{base}/{i}");
        if let (None, Some(reason)) = (scope.form, scope.recordless) {
            let needs_record = match step {
                Step::Set(_) => Some("set"),
                Step::Assign(_) => Some("assign"),
                Step::CreateTasks(_) => Some("create_tasks"),
                Step::CancelTasks(_) => Some("cancel_tasks"),
                Step::StartApproval(_) => Some("start_approval"),
                Step::Flag(_) => Some("flag"),
                Step::Unflag(_) => Some("unflag"),
                Step::Notify(_) | Step::Emit(_) | Step::Script(_) | Step::Score(_) | Step::Grade(_) => None,
            };
            if let Some(key) = needs_record {
                ctx.error_at_key(
                    Code::CONFLICT,
                    format!("{reason}, so there is no record for `{key}` to act on"),
                    &format!("{p}/{key}"),
                )
                .help = Some("use a `timer` or a record trigger, or give the event a `target`".into());
                continue;
            }
        }
        match step {
            Step::Set(values) => {
                for (field, value) in values {
                    let fp = format!("{p}/set/{field}");
                    if scope.form.is_some() && scope.field(field).is_none() {
                        let help = ctx.suggest(field, scope.fields.iter().map(|f| f.id.as_str()));
                        ctx.error_at_key(Code::UNKNOWN_FIELD, format!("there is no field `{field}` to set"), &fp)
                            .help = help;
                    } else if let Some(f) = scope.field(field) {
                        value_fits(ctx, f, value, &fp);
                    }
                }
            }
            Step::Assign(rule) => match def.assignment_rules.iter().find(|r| &r.id == rule) {
                Some(r) => same_form(ctx, scope, &r.form, "assignment rule", &format!("{p}/assign")),
                None => ctx.unknown(
                    Code::UNKNOWN_RULE,
                    "assignment rule",
                    rule,
                    &format!("{p}/assign"),
                    def.assignment_rules.iter().map(|r| r.id.as_str()),
                ),
            },
            Step::CreateTasks(sop) | Step::CancelTasks(sop) => {
                let key = if matches!(step, Step::CreateTasks(_)) { "create_tasks" } else { "cancel_tasks" };
                match def.sops.iter().find(|s| &s.id == sop) {
                    Some(s) => same_form(ctx, scope, &s.form, "SOP", &format!("{p}/{key}")),
                    None => ctx.unknown(
                        Code::UNKNOWN_SOP,
                        "SOP",
                        sop,
                        &format!("{p}/{key}"),
                        def.sops.iter().map(|s| s.id.as_str()),
                    ),
                }
            }
            Step::StartApproval(chain) => match def.approvals.iter().find(|a| &a.id == chain) {
                Some(a) => same_form(ctx, scope, &a.form, "approval chain", &format!("{p}/start_approval")),
                None => ctx.unknown(
                    Code::UNKNOWN_APPROVAL,
                    "approval chain",
                    chain,
                    &format!("{p}/start_approval"),
                    def.approvals.iter().map(|a| a.id.as_str()),
                ),
            },
            Step::Notify(n) => {
                if !def.channels.iter().any(|c| c.id == n.channel) {
                    ctx.unknown(
                        Code::UNKNOWN_CHANNEL,
                        "channel",
                        &n.channel,
                        &format!("{p}/notify/channel"),
                        def.channels.iter().map(|c| c.id.as_str()),
                    );
                }
                if !def.messages.iter().any(|m| m.id == n.message) {
                    ctx.unknown(
                        Code::UNKNOWN_MESSAGE,
                        "message",
                        &n.message,
                        &format!("{p}/notify/message"),
                        def.messages.iter().map(|m| m.id.as_str()),
                    );
                }
                recipient(ctx, scope, &n.to, &format!("{p}/notify/to"));
                sensitive_in_group(ctx, scope, &n.channel, &n.message);
            }
            Step::Flag(f) => board_ref(ctx, &f.board, &format!("{p}/flag/board")),
            Step::Unflag(b) => board_ref(ctx, b, &format!("{p}/unflag")),
            Step::Emit(e) => emit(ctx, scope, e, &p),
            Step::Script(s) => ctx.script(s, &format!("{p}/script"), &["record", "event", "actor"]),
            Step::Score(id) => match def.scores.iter().find(|x| &x.id == id) {
                Some(score) => same_form(ctx, scope, &score.form, "score", &format!("{p}/score")),
                None => ctx.unknown(
                    Code::UNKNOWN_SCORE,
                    "score",
                    id,
                    &format!("{p}/score"),
                    def.scores.iter().map(|s| s.id.as_str()),
                ),
            },
            Step::Grade(id) => match def.grades.iter().find(|x| &x.id == id) {
                Some(grade) => same_form(ctx, scope, &grade.form, "grade", &format!("{p}/grade")),
                None => ctx.unknown(
                    Code::UNKNOWN_GRADE,
                    "grade",
                    id,
                    &format!("{p}/grade"),
                    def.grades.iter().map(|g| g.id.as_str()),
                ),
            },
        }
    }
}

/// A step that runs another definition must run it on the same form's records.
/// `emit`: the event is this app's (its fields known), or another app's (`app:`, checked when
/// it is raised); each `with` source names something this record has.
fn emit(ctx: &mut Ctx<'_>, scope: Scope<'_>, e: &crate::model::Emit, p: &str) {
    let def = ctx.def();
    let fields: Option<Vec<&str>> = match (&e.app, def.events.iter().find(|d| d.id == e.event)) {
        (Some(_), _) => None,
        (None, Some(event)) => Some(event.fields.iter().map(|f| f.id.as_str()).collect()),
        (None, None) => {
            ctx.unknown(
                Code::UNKNOWN_EVENT,
                "event",
                &e.event,
                &format!("{p}/emit/event"),
                def.events.iter().map(|d| d.id.as_str()),
            );
            return;
        }
    };
    if let Some(fields) = &fields {
        for (key, what) in e.data.keys().map(|k| (k, "data")).chain(e.with.keys().map(|k| (k, "with"))) {
            if !fields.contains(&key.as_str()) {
                let help = ctx.suggest(key, fields.iter().copied());
                ctx.error_at_key(
                    Code::UNKNOWN_FIELD,
                    format!("event `{}` carries no field `{key}`", e.event),
                    &format!("{p}/emit/{what}/{key}"),
                )
                .help = help;
            }
        }
    }
    for (key, source) in &e.with {
        let at = format!("{p}/emit/with/{key}");
        let protected = |f: &crate::model::Field| f.sensitive == Some(true) || !f.read_roles.is_empty();
        let handed = match source.split_once('.') {
            None => scope.field(source),
            Some((link, inner)) => scope
                .field(link)
                .and_then(|f| f.form.as_deref())
                .and_then(|t| def.forms.iter().find(|x| x.id == t))
                .and_then(|t| t.fields.iter().find(|x| x.id == inner)),
        };
        // This app's event says whether it keeps the field protected; another app's is checked
        // by that app, where the field lands.
        let received = def.events.iter().find(|d| d.id == e.event).and_then(|d| d.fields.iter().find(|f| &f.id == key));
        if e.app.is_none() && handed.is_some_and(protected) && !received.is_some_and(protected) {
            ctx.warning(
                Code::SENSITIVE_HANDOVER,
                format!(
                    "`{source}` is protected (sensitive, or read by some roles only), but event field `{key}` is not"
                ),
                &at,
            )
            .help = Some(format!("mark event field `{key}` `sensitive: true`, or hand over a field everyone may read"));
        }
        if scope.form.is_none() {
            let reason = scope.recordless.unwrap_or("this automation has no record");
            ctx.error(Code::CONFLICT, format!("`with` takes values from the record, but {reason}"), &at);
            continue;
        }
        let (head, tail) = source.split_once('.').map_or((source.as_str(), None), |(h, t)| (h, Some(t)));
        match (head, tail) {
            ("id", None) | ("event", Some(_)) => {}
            (field, None) if scope.field(field).is_some() => {}
            (link, Some(inner)) => match scope.field(link) {
                Some(f) if f.kind == FieldType::Link => {
                    let target = f.form.as_deref().and_then(|t| def.forms.iter().find(|x| x.id == t));
                    if let Some(target) = target.filter(|t| !t.fields.iter().any(|x| x.id == inner)) {
                        let help = ctx.suggest(inner, target.fields.iter().map(|x| x.id.as_str()));
                        ctx.error(Code::UNKNOWN_FIELD, format!("form `{}` has no field `{inner}`", target.id), &at)
                            .help = help;
                    }
                }
                _ => {
                    ctx.error(
                        Code::UNKNOWN_FIELD,
                        format!("`{source}`: `{link}` is not a link field of this record (nor `event`)"),
                        &at,
                    );
                }
            },
            (field, None) => {
                let help = ctx.suggest(field, scope.fields.iter().map(|f| f.id.as_str()).chain(["id"]));
                ctx.error(Code::UNKNOWN_FIELD, format!("this record has no field `{field}`"), &at).help = help;
            }
        }
    }
}

fn same_form(ctx: &mut Ctx<'_>, scope: Scope<'_>, other: &str, what: &str, p: &str) {
    if let Some(form) = scope.form {
        if form.id != other {
            ctx.error(
                Code::CONFLICT,
                format!("this {what} is for form `{other}`, but this step runs on `{}` records", form.id),
                p,
            );
        }
    }
}

fn board_ref(ctx: &mut Ctx<'_>, board: &str, p: &str) {
    let def = ctx.def();
    if !def.boards.iter().any(|b| b.id == board) {
        ctx.unknown(Code::UNKNOWN_BOARD, "board", board, p, def.boards.iter().map(|b| b.id.as_str()));
    }
}

pub(super) fn recipient(ctx: &mut Ctx<'_>, scope: Scope<'_>, r: &Recipient, p: &str) {
    match r {
        Recipient::Field(f) => {
            ctx.typed_field_ref(scope, f, &format!("{p}/field"), &[FieldType::Member], "a recipient");
        }
        Recipient::ManagerOf(f) => {
            ctx.typed_field_ref(scope, f, &format!("{p}/manager_of"), &[FieldType::Member], "a manager lookup");
        }
        Recipient::ContactField(f) => {
            ctx.typed_field_ref(
                scope,
                f,
                &format!("{p}/contact_field"),
                &[FieldType::Phone, FieldType::Email],
                "a contact",
            );
        }
        Recipient::Role(role) => ctx.role_ref(role, &format!("{p}/role")),
        Recipient::Member(_) => {}
    }
}

pub(super) fn member_attributes(ctx: &Ctx<'_>) -> Vec<String> {
    let extra = ctx.def().members.iter().flat_map(|m| m.fields.iter().map(|f| f.id.clone()));
    BUILTIN_MEMBER_FIELDS.iter().map(|s| s.to_string()).chain(extra).collect()
}

fn assignment_rules(ctx: &mut Ctx<'_>) {
    let def = ctx.def();
    for (i, rule) in def.assignment_rules.iter().enumerate() {
        let base = format!("/assignment_rules/{i}");
        let Some(form) = ctx.form_ref(&rule.form, &format!("{base}/form")) else { continue };
        let scope = Scope::of(Some(form));
        match &rule.field {
            Some(f) => {
                ctx.typed_field_ref(scope, f, &format!("{base}/field"), &[FieldType::Member], "an assignee");
            }
            None if form.owner_field().is_some() => {
                if let Some(owner) = form.owner_field() {
                    ctx.typed_field_ref(
                        scope,
                        owner,
                        &format!("{base}/form"),
                        &[FieldType::Member],
                        "the assignee (the owner field)",
                    );
                }
            }
            None => {
                ctx.error_at_key(
                    Code::MISSING_KEY,
                    format!("form `{}` has no owner field, so say which field to set", form.id),
                    &format!("{base}/form"),
                )
                .help = Some("add `field: NAME` (a member field)".into());
            }
        }
        ctx.role_ref(&rule.candidates.role, &format!("{base}/candidates/role"));
        let attributes = member_attributes(ctx);
        for (attr, field) in &rule.candidates.r#match {
            let mp = format!("{base}/candidates/match/{attr}");
            if !attributes.contains(attr) {
                let help = ctx.suggest(attr, attributes.iter().map(String::as_str));
                ctx.error_at_key(Code::UNKNOWN_MEMBER_FIELD, format!("members have no attribute `{attr}`"), &mp).help =
                    help;
            }
            match field.strip_prefix(crate::model::CREATOR_PREFIX) {
                Some(theirs) if !attributes.iter().any(|a| a == theirs) => {
                    let help = ctx.suggest(theirs, attributes.iter().map(String::as_str));
                    ctx.error(
                        Code::UNKNOWN_MEMBER_FIELD,
                        format!("members have no attribute `{theirs}` for `{field}`"),
                        &mp,
                    )
                    .help = help.or(Some("declare it under `members.fields`".into()));
                }
                Some(_) => {}
                None => {
                    ctx.field_ref(scope, field, &mp, false);
                }
            }
        }
        if let Some(load) = &rule.load {
            for (j, s) in load.states.iter().enumerate() {
                ctx.state_ref(form, s, &format!("{base}/load/states/{j}"));
            }
        }
        for (j, pref) in rule.prefer.iter().enumerate() {
            for (k, s) in pref.states.iter().enumerate() {
                ctx.state_ref(form, s, &format!("{base}/prefer/{j}/states/{k}"));
            }
        }
        let needs = match rule.pick {
            Pick::Weighted => Some(("weight", rule.weight.is_some())),
            Pick::ByField => Some(("by_field", rule.by_field.is_some())),
            Pick::Script => Some(("script", rule.script.is_some())),
            Pick::LeastLoaded | Pick::RoundRobin => None,
        };
        if let Some((key, false)) = needs {
            ctx.error(Code::MISSING_OPTION, format!("this pick needs `{key}`"), &format!("{base}/pick")).help =
                Some(format!("add `{key}:` to the rule"));
        }
        if let Some(w) = &rule.weight {
            let integer_attr = def
                .members
                .iter()
                .flat_map(|m| &m.fields)
                .any(|f| &f.id == w && f.kind == crate::model::MemberFieldType::Integer);
            if !integer_attr && w != "capacity" {
                ctx.error(
                    Code::UNKNOWN_MEMBER_FIELD,
                    format!("`{w}` is not an integer member attribute"),
                    &format!("{base}/weight"),
                )
                .help = Some("declare it under `members.fields` with `type: integer`, or use `capacity`".into());
            }
        }
        if let Some(f) = &rule.by_field {
            ctx.typed_field_ref(scope, f, &format!("{base}/by_field"), &[FieldType::Member], "`by_field`");
        }
        if let Some(s) = &rule.script {
            ctx.script(s, &format!("{base}/script"), &["record", "candidates"]);
        }
    }
}

fn approvals(ctx: &mut Ctx<'_>) {
    let def = ctx.def();
    for (i, chain) in def.approvals.iter().enumerate() {
        let base = format!("/approvals/{i}");
        let Some(form) = ctx.form_ref(&chain.form, &format!("{base}/form")) else { continue };
        let scope = Scope::of(Some(form));
        let last = chain.steps.len().saturating_sub(1);
        for (j, step) in chain.steps.iter().enumerate() {
            let p = format!("{base}/steps/{j}");
            match (&step.approver, &step.signature) {
                (Some(_), Some(_)) => {
                    ctx.error_at_key(
                        Code::CONFLICT,
                        "a step has an approver or a customer signature, not both",
                        &format!("{p}/signature"),
                    );
                }
                (None, None) => {
                    ctx.error_at_key(
                        Code::MISSING_KEY,
                        format!("step `{}` needs `approver` or `signature`", step.id),
                        &format!("{p}/id"),
                    );
                }
                _ => {}
            }
            if let Some(a) = &step.approver {
                recipient(ctx, scope, a, &format!("{p}/approver"));
            }
            if let Some(sig) = &step.signature {
                ctx.typed_field_ref(
                    scope,
                    &sig.contact_field,
                    &format!("{p}/signature/contact_field"),
                    &[FieldType::Phone, FieldType::Email],
                    "a signature link",
                );
                if let Some(e) = &sig.expires {
                    ctx.duration(e, &format!("{p}/signature/expires"));
                }
                if let Some(c) = &sig.clauses {
                    let at = format!("{p}/signature/clauses");
                    ctx.typed_field_ref(
                        scope,
                        &c.field,
                        &format!("{at}/field"),
                        &[FieldType::MultiChoice],
                        "printed clauses",
                    );
                    if let Some(library) = ctx.form_ref(&c.form, &format!("{at}/form")) {
                        ctx.typed_field_ref(
                            Scope::of(Some(library)),
                            &c.text,
                            &format!("{at}/text"),
                            &[FieldType::Text, FieldType::LongText],
                            "a clause's text",
                        );
                    }
                }
                if j != last {
                    ctx.error_at_key(
                        Code::CONFLICT,
                        "the customer's signature must be the last step",
                        &format!("{p}/signature"),
                    )
                    .help = Some(
                        "move this step to the end of `steps`: the customer signs what every approver passed".into(),
                    );
                }
            }
            match (step.mode, step.n) {
                (Some(ApprovalMode::NOfM), None) => {
                    ctx.error(
                        Code::MISSING_OPTION,
                        "`n_of_m` needs `n`: how many must approve",
                        &format!("{p}/mode"),
                    )
                    .help = Some("add `n: 2` (or however many) beside `mode: n_of_m`".into());
                }
                (Some(ApprovalMode::Any | ApprovalMode::All) | None, Some(_)) => {
                    ctx.error_at_key(Code::CONFLICT, "`n` only applies with `mode: n_of_m`", &format!("{p}/n"));
                }
                _ => {}
            }
            if let Some(c) = &step.skip_if {
                condition(ctx, scope, c, &format!("{p}/skip_if"));
            }
            if let Some(t) = &step.timeout {
                ctx.duration(t, &format!("{p}/timeout"));
            }
            if let Some(r) = &step.escalate_to {
                recipient(ctx, scope, r, &format!("{p}/escalate_to"));
            }
            for (k, field) in step.show.iter().enumerate() {
                ctx.field_ref(scope, field, &format!("{p}/show/{k}"), false);
            }
        }
        for (k, role) in chain.override_roles.iter().enumerate() {
            ctx.role_ref(role, &format!("{base}/override_roles/{k}"));
        }
        steps(ctx, scope, &chain.on_approved, &format!("{base}/on_approved"));
        steps(ctx, scope, &chain.on_rejected, &format!("{base}/on_rejected"));
        if let Some(state) = chain.on_reset.as_ref().and_then(|r| r.state.as_deref()) {
            ctx.state_ref(form, state, &format!("{base}/on_reset/state"));
        }
    }
}

fn sops(ctx: &mut Ctx<'_>) {
    let def = ctx.def();
    for (i, sop) in def.sops.iter().enumerate() {
        let base = format!("/sops/{i}");
        let Some(form) = ctx.form_ref(&sop.form, &format!("{base}/form")) else { continue };
        let scope = Scope::of(Some(form));
        for (j, task) in sop.tasks.iter().enumerate() {
            let p = format!("{base}/tasks/{j}");
            offset(ctx, form, &task.due, &format!("{p}/due"));
            recipient(ctx, scope, &task.assignee, &format!("{p}/assignee"));
            steps(ctx, scope, &task.on_complete, &format!("{p}/on_complete"));
        }
    }
}

/// A message that puts a sensitive field (`{{ phone }}`) into a group chat (a WeCom or DingTalk
/// robot posts where the whole group reads): an error at the `{{`, once per message and field.
fn sensitive_in_group(ctx: &mut Ctx<'_>, scope: Scope<'_>, channel: &str, message: &str) {
    use crate::model::{ChannelKind, Label};
    let def = ctx.def();
    let group = def
        .channels
        .iter()
        .find(|c| c.id == channel)
        .is_some_and(|c| matches!(c.kind, ChannelKind::Wecom | ChannelKind::Dingtalk));
    let Some((i, m)) = def.messages.iter().enumerate().find(|(_, m)| m.id == message) else { return };
    // A sensitive field, and a table field whose rows hold a sensitive column (`{{ lines }}`
    // prints every cell; `{% for l in lines %}` reaches them).
    let sensitive: Vec<&str> = scope
        .fields
        .iter()
        .filter(|f| f.sensitive == Some(true) || f.columns.iter().flatten().any(|c| c.sensitive == Some(true)))
        .map(|f| f.id.as_str())
        .collect();
    if !group || sensitive.is_empty() {
        return;
    }
    let texts: Vec<(String, &str)> = match &m.text {
        Label::Text(t) => vec![(format!("/messages/{i}/text"), t.as_str())],
        Label::Langs(l) => [("zh", &l.zh), ("en", &l.en)]
            .into_iter()
            .filter_map(|(lang, t)| t.as_deref().map(|t| (format!("/messages/{i}/text/{lang}"), t)))
            .collect(),
    };
    for (pointer, text) in texts {
        for (line, column, field) in sensitive_uses(text, &sensitive) {
            if ctx.has(Code::SENSITIVE_IN_GROUP, &pointer, field) {
                continue;
            }
            let mut at = ctx.loc(&pointer, false);
            if let Some(crate::yaml::Node { value: crate::yaml::Value::Str(raw, style), pos }) = ctx.node(&pointer) {
                let p = crate::script::position_in_yaml(*pos, *style, raw, line, column);
                (at.line, at.column) = (p.line, p.column);
            }
            let d = crate::diagnostic::Diagnostic::error(
                Code::SENSITIVE_IN_GROUP,
                format!("message `{message}` puts sensitive data (`{field}`) into the group chat `{channel}`"),
                &at,
            )
            .with_help(format!(
                "everyone in the group reads it: take `{{{{ {field} }}}}` out, or send this message to one person (sms or email)"
            ));
            ctx.push(d);
        }
    }
}

/// Where a template uses one of `fields` inside `{{ … }}` or `{% … %}`: 1-based line and
/// column of the opening braces, and the field.
fn sensitive_uses<'f>(text: &str, fields: &[&'f str]) -> Vec<(usize, usize, &'f str)> {
    let mut out = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        let mut rest = line;
        let mut offset = 0;
        while let Some(open) = rest.find("{{").into_iter().chain(rest.find("{%")).min() {
            let closing = if rest[open..].starts_with("{{") { "}}" } else { "%}" };
            let after = &rest[open + 2..];
            let close = after.find(closing).unwrap_or(after.len());
            let names = crate::script::identifiers(&after[..close]);
            if let Some(field) = fields.iter().find(|f| names.iter().any(|n| n == *f)) {
                out.push((n + 1, line[..offset + open].chars().count() + 1, *field));
            }
            offset += open + 2 + close;
            rest = &line[offset..];
        }
    }
    out
}
