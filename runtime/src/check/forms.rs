//! Checks of the app header, calendars, members, forms, fields, states, actions, events and
//! conditions.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{Ctx, Scope};
use crate::diagnostic::Code;
use crate::model::{
    CompareOp, Condition, ConditionKind, ConditionShapeError, Field, FieldType, Form, BUILTIN_MEMBER_FIELDS,
    SYSTEM_FIELDS,
};
use crate::suggest;
use crate::timespec;

pub(super) fn check_app_meta(ctx: &mut Ctx<'_>) {
    let def = ctx.def();
    if let Some(tz) = &def.app.time_zone {
        ctx.time_zone(tz, "/app/time_zone");
    }
    if let Some(cal) = &def.app.calendar {
        if !def.calendars.iter().any(|c| &c.id == cal) {
            ctx.unknown(
                Code::UNKNOWN_CALENDAR,
                "calendar",
                cal,
                "/app/calendar",
                def.calendars.iter().map(|c| c.id.as_str()),
            );
        }
    }
    for (i, cal) in def.calendars.iter().enumerate() {
        let base = format!("/calendars/{i}");
        if let Some(tz) = &cal.time_zone {
            ctx.time_zone(tz, &format!("{base}/time_zone"));
        }
        for (list, dates) in [("holidays", &cal.holidays), ("extra_working_days", &cal.extra_working_days)] {
            for (j, date) in dates.iter().enumerate() {
                if let Err(e) = timespec::parse_date(date) {
                    ctx.error(Code::BAD_DATE, e, &format!("{base}/{list}/{j}")).help =
                        Some("write a date that exists, as `YYYY-MM-DD` (`2026-02-28`)".into());
                }
            }
        }
        if let Some(hours) = &cal.working_hours {
            working_hours(ctx, hours, &format!("{base}/working_hours"));
        }
    }
    if let Some(members) = &def.members {
        for (i, f) in members.fields.iter().enumerate() {
            if BUILTIN_MEMBER_FIELDS.contains(&f.id.as_str()) {
                ctx.error(
                    Code::RESERVED_NAME,
                    format!("`{}` is a built-in member attribute", f.id),
                    &format!("/members/fields/{i}/id"),
                )
                .help = Some("built-ins need no declaration; remove this entry".into());
            }
        }
        if let Some(sample) = &members.sample {
            data_file(ctx, sample, "/members/sample");
        }
    }
}

/// Reports a `data/...` file that is not in the app folder.
pub(super) fn data_file(ctx: &mut Ctx<'_>, file: &str, pointer: &str) {
    if let Some(files) = ctx.input.data_files {
        if !files.contains(file) {
            let help = ctx
                .suggest(file, files.iter().map(String::as_str))
                .or_else(|| Some(format!("put the file at `{}/{file}`", ctx.input.app_dir)));
            ctx.error(Code::UNKNOWN_FILE, format!("the data file `{file}` does not exist"), pointer).help = help;
        }
    }
}

pub(super) fn check_forms(ctx: &mut Ctx<'_>) {
    let def = ctx.def();
    for (i, form) in def.forms.iter().enumerate() {
        let base = format!("/forms/{i}");
        let scope = Scope::of(Some(form));
        if let Some(p) = &form.id_pattern {
            if let Err(e) = check_id_pattern(p) {
                ctx.error(Code::BAD_ID_PATTERN, e, &format!("{base}/id_pattern")).help =
                    Some("use literal text with `{yyyy}`, `{yy}`, `{mm}`, `{dd}` and one `{seq:N}`, e.g. `LEAD-{yyyy}-{seq:5}`".into());
            }
        }
        if let Some(f) = &form.title_field {
            ctx.field_ref(scope, f, &format!("{base}/title_field"), false);
        }
        if let Some(f) = &form.owner_field {
            ctx.typed_field_ref(scope, f, &format!("{base}/owner_field"), &[FieldType::Member], "an owner");
        }
        for (j, k) in form.key.iter().enumerate() {
            ctx.field_ref(scope, k, &format!("{base}/key/{j}"), false);
        }
        fields(ctx, Some(form), &form.fields, &format!("{base}/fields"), true);
        states_and_actions(ctx, form, &base);
        super::access::check_access(ctx, form, &base);
    }
    for (i, event) in def.events.iter().enumerate() {
        let base = format!("/events/{i}");
        fields(ctx, None, &event.fields, &format!("{base}/fields"), false);
        // A public page's answer must not tell whether a record matched: it always makes one.
        if event.public == Some(true) && event.target.as_ref().and_then(|t| t.create) != Some(true) {
            ctx.error(
                Code::CONFLICT,
                format!("event `{}` is public, so its target must create the record it does not find", event.id),
                &format!("{base}/public"),
            )
            .help = Some("add `create: true` to `target`, or drop `public`".into());
        }
        // Anyone may send a public event: it may make a record, never change one.
        if event.public == Some(true) && event.target.as_ref().and_then(|t| t.update) == Some(true) {
            ctx.error(
                Code::CONFLICT,
                format!("event `{}` is public, so it cannot update the record it finds", event.id),
                &format!("{base}/target/update"),
            )
            .help = Some("drop `update: true`, or drop `public`".into());
        }
        if let Some(target) = &event.target {
            if let Some(form) = ctx.form_ref(&target.form, &format!("{base}/target/form")) {
                for (form_field, payload_field) in &target.r#match {
                    let p = format!("{base}/target/match/{form_field}");
                    ctx.field_ref(Scope::of(Some(form)), form_field, &p, false);
                    if !event.fields.iter().any(|f| &f.id == payload_field) {
                        let help = ctx.suggest(payload_field, event.fields.iter().map(|f| f.id.as_str()));
                        ctx.error(
                            Code::UNKNOWN_FIELD,
                            format!("event `{}` carries no field `{payload_field}`", event.id),
                            &p,
                        )
                        .help = help;
                    }
                }
            }
        }
    }
}

/// `{yyyy}`, `{yy}`, `{mm}`, `{dd}` and exactly one `{seq:N}` with 1 <= N <= 12.
pub fn check_id_pattern(pattern: &str) -> Result<(), String> {
    let mut seqs = 0;
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').ok_or_else(|| "a `{` is never closed".to_string())? + open;
        let token = &rest[open + 1..close];
        match token {
            "yyyy" | "yy" | "mm" | "dd" => {}
            _ => match token.strip_prefix("seq:").map(str::parse::<u8>) {
                Some(Ok(n)) if (1..=12).contains(&n) => seqs += 1,
                Some(_) => return Err(format!("`{{{token}}}`: the counter takes 1 to 12 digits")),
                None => return Err(format!("`{{{token}}}` is not a pattern part")),
            },
        }
        rest = &rest[close + 1..];
    }
    if rest.contains('}') {
        return Err("a `}` has no `{`".to_string());
    }
    match seqs {
        1 => Ok(()),
        0 => Err("the pattern has no counter `{seq:N}`, so ids would repeat".to_string()),
        _ => Err("the pattern has more than one counter".to_string()),
    }
}

/// Checks a list of fields: the form's, a table's columns, or an event's payload.
fn fields(ctx: &mut Ctx<'_>, form: Option<&Form>, list: &[Field], base: &str, top: bool) {
    let scope = Scope { form, fields: list, recordless: None };
    for (j, field) in list.iter().enumerate() {
        let p = format!("{base}/{j}");
        if top && SYSTEM_FIELDS.contains(&field.id.as_str()) {
            ctx.error(
                Code::RESERVED_NAME,
                format!("`{}` is a name closeloop gives every record", field.id),
                &format!("{p}/id"),
            )
            .help = Some(format!("rename the field; reserved: {}", suggest::quoted_list(SYSTEM_FIELDS)));
        }
        field_options(ctx, field, &p);
        if let Some(c) = &field.required_if {
            condition(ctx, scope, c, &format!("{p}/required_if"));
        }
        if let Some(c) = &field.visible_if {
            condition(ctx, scope, c, &format!("{p}/visible_if"));
        }
        if let Some(target) = &field.form {
            ctx.form_ref(target, &format!("{p}/form"));
        }
        if let Some(expr) = &field.expression {
            ctx.expression(expr, &format!("{p}/expression"), &scope.names());
        }
        if let Some(lookup) = &field.lookup {
            if let Some(source) = ctx.form_ref(&lookup.form, &format!("{p}/lookup/form")) {
                ctx.field_ref(Scope::of(Some(source)), &lookup.key, &format!("{p}/lookup/key"), false);
                for (here, there) in &lookup.fill {
                    let fp = format!("{p}/lookup/fill/{here}");
                    // A key that is misspelt is reported at the key, a value at the value.
                    if scope.field(here).is_none() {
                        let help = ctx.suggest(here, list.iter().map(|f| f.id.as_str()));
                        ctx.error_at_key(
                            Code::UNKNOWN_FIELD,
                            format!("there is no field `{here}` here to fill"),
                            &fp,
                        )
                        .help = help;
                    } else if lookup.on_missing == Some(crate::model::OnMissing::Keep)
                        && scope.field(here).is_some_and(|f| f.required == Some(true))
                    {
                        ctx.error_at_key(
                            Code::CONFLICT,
                            format!("`on_missing: keep` leaves `{here}` empty, but `{here}` is required"),
                            &fp,
                        )
                        .help = Some(format!("drop `required: true` from `{here}`, or refuse on a miss"));
                    }
                    ctx.field_ref(Scope::of(Some(source)), there, &fp, false);
                }
            }
        }
        if let Some(columns) = &field.columns {
            ctx.duplicates("columns", &format!("{p}/columns"), columns.iter().map(|c| c.id.as_str()));
            fields(ctx, form, columns, &format!("{p}/columns"), false);
        }
        if let Some(options) = &field.options {
            ctx.duplicates_by("options", &format!("{p}/options"), options.iter().map(|o| o.value.as_str()), "value");
        }
    }
    computed_cycles(ctx, list, base);
}

/// Options that do not fit the field's type, and types that lack what they need.
fn field_options(ctx: &mut Ctx<'_>, field: &Field, p: &str) {
    let t = field.kind;
    let numeric_or_date = t.is_numeric() || t.is_temporal();
    let checks: [(&str, bool, bool); 11] = [
        ("options", field.options.is_some(), matches!(t, FieldType::Choice | FieldType::MultiChoice)),
        ("form", field.form.is_some(), t == FieldType::Link),
        ("columns", field.columns.is_some(), t == FieldType::Table),
        ("expression", field.expression.is_some(), t == FieldType::Computed),
        ("min", field.min.is_some(), numeric_or_date),
        ("max", field.max.is_some(), numeric_or_date),
        ("min_length", field.min_length.is_some(), t.is_textual()),
        ("max_length", field.max_length.is_some(), t.is_textual()),
        ("pattern", field.pattern.is_some(), t.is_textual()),
        ("currency", field.currency.is_some(), matches!(t, FieldType::Money | FieldType::Computed)),
        ("accept", field.accept.is_some(), t == FieldType::File),
    ];
    for (key, present, fits) in checks {
        if present && !fits {
            ctx.error_at_key(
                Code::OPTION_NOT_APPLICABLE,
                format!("`{key}` does not apply to {} field", article(t.as_str())),
                &format!("{p}/{key}"),
            )
            .help = Some(format!("remove `{key}`, or change the field's type"));
        }
    }
    if field.scale.is_some() && !matches!(t, FieldType::Decimal | FieldType::Money | FieldType::Percent) {
        ctx.error_at_key(
            Code::OPTION_NOT_APPLICABLE,
            format!("`scale` does not apply to {} field", article(t.as_str())),
            &format!("{p}/scale"),
        );
    }
    let needs: [(&str, bool, bool); 4] = [
        ("options", matches!(t, FieldType::Choice | FieldType::MultiChoice), field.options.is_some()),
        ("form", t == FieldType::Link, field.form.is_some()),
        ("columns", t == FieldType::Table, field.columns.is_some()),
        ("expression", t == FieldType::Computed, field.expression.is_some()),
    ];
    for (key, needed, present) in needs {
        if needed && !present {
            ctx.error(
                Code::MISSING_OPTION,
                format!("{} field needs `{key}`", capitalised(&article(t.as_str()))),
                &format!("{p}/type"),
            )
            .help = Some(format!("add `{key}:` to field `{}`", field.id));
        }
    }
    if let Some(pattern) = &field.pattern {
        if let Err(e) = regex::RegexBuilder::new(pattern).size_limit(1 << 20).dfa_size_limit(1 << 20).build() {
            let first = e.to_string().lines().last().unwrap_or_default().trim().to_string();
            ctx.error(Code::BAD_PATTERN, format!("the pattern does not compile: {first}"), &format!("{p}/pattern"))
                .help = Some(
                "patterns use the linear-time `regex` syntax: no look-around, no back-references, bounded repetition"
                    .into(),
            );
        }
    }
    if let (Some(Value::Number(lo)), Some(Value::Number(hi))) = (&field.min, &field.max) {
        if lo.as_f64() > hi.as_f64() {
            ctx.error(Code::CONFLICT, "`min` is larger than `max`", &format!("{p}/max"));
        }
    }
    if let (Some(lo), Some(hi)) = (field.min_length, field.max_length) {
        if lo > hi {
            ctx.error(Code::CONFLICT, "`min_length` is larger than `max_length`", &format!("{p}/max_length"));
        }
    }
    bound_values(ctx, field, p);
    if let Some(default) = &field.default {
        default_value(ctx, field, default, &format!("{p}/default"));
    }
}

fn default_value(ctx: &mut Ctx<'_>, field: &Field, value: &Value, p: &str) {
    if matches!(field.kind, FieldType::Table | FieldType::Computed) {
        ctx.error(
            Code::WRONG_TYPE,
            format!("{} field takes no default", capitalised(&article(field.kind.as_str()))),
            p,
        );
        return;
    }
    value_fits(ctx, field, value, p);
}

/// A value written for a field (a default, a comparison, a `set`) must be one the field can
/// hold: the right type, one of its options, within its bounds. `null` means "empty" and fits.
pub(super) fn value_fits(ctx: &mut Ctx<'_>, field: &Field, value: &Value, p: &str) {
    if value.is_null() || field.kind == FieldType::Computed {
        return;
    }
    // A multi-choice field is compared with one option at a time ("contains").
    let single;
    let value = match (field.kind, value) {
        (FieldType::MultiChoice, Value::String(_)) => {
            single = Value::Array(vec![value.clone()]);
            &single
        }
        _ => value,
    };
    let Err(problem) = crate::values::check_value(field, value, &field.id, crate::model::Lang::En) else { return };
    if problem.code == "NOT_AN_OPTION" {
        let text = value.as_str().unwrap_or_default();
        let bad = match value {
            Value::Array(items) => {
                items.iter().filter_map(Value::as_str).find(|v| !is_option(field, v)).unwrap_or(text)
            }
            _ => text,
        };
        let help = ctx.suggest(bad, field.options.iter().flatten().map(|o| o.value.as_str()));
        ctx.error(Code::UNKNOWN_OPTION, format!("`{bad}` is not an option of field `{}`", field.id), p).help = help;
        return;
    }
    let yaml_word =
        value.as_str().filter(|w| ["yes", "no", "on", "off", "y", "n"].contains(&w.to_lowercase().as_str()));
    let help = match (field.kind, yaml_word) {
        (FieldType::Bool, Some(w)) => {
            Some(format!("closeloop reads YAML 1.2, where `{w}` is text; write `true` or `false`"))
        }
        (kind, _) => Some(format!("write a value a {} field holds, {}", kind.as_str(), example(kind))),
    };
    let message = problem.message.split_once(": ").map(|(_, m)| m.to_string()).unwrap_or(problem.message);
    ctx.error(Code::WRONG_TYPE, format!("field `{}`: {message}", field.id), p).help = help;
}

fn is_option(field: &Field, value: &str) -> bool {
    field.options.iter().flatten().any(|o| o.value == value)
}

/// `min`/`max` must be numbers for number fields and existing dates for date fields.
fn bound_values(ctx: &mut Ctx<'_>, field: &Field, p: &str) {
    for (key, bound) in [("min", &field.min), ("max", &field.max)] {
        let Some(bound) = bound else { continue };
        let bp = format!("{p}/{key}");
        if field.kind.is_numeric() && !bound.is_number() {
            ctx.error(
                Code::WRONG_TYPE,
                format!("`{key}` of {} field must be a number", article(field.kind.as_str())),
                &bp,
            );
        } else if field.kind == FieldType::Date {
            if let Some(Err(e)) = bound.as_str().map(crate::timespec::parse_date) {
                ctx.error(Code::BAD_DATE, e, &bp).help =
                    Some("write a date that exists, as `YYYY-MM-DD` (`2026-02-28`)".into());
            } else if !bound.is_string() {
                ctx.error(Code::WRONG_TYPE, format!("`{key}` of a date field must be a date (YYYY-MM-DD)"), &bp);
            }
        } else if field.kind == FieldType::Datetime
            && bound.as_str().is_none_or(|s| s.parse::<jiff::Timestamp>().is_err())
        {
            ctx.error(
                Code::BAD_DATE,
                format!("`{key}` of a datetime field must be a time with an offset (2026-11-26T09:00:00+08:00)"),
                &bp,
            );
        }
    }
    if let (Some(Value::String(lo)), Some(Value::String(hi))) = (&field.min, &field.max) {
        if field.kind.is_temporal() && lo > hi {
            ctx.error(Code::CONFLICT, "`min` is later than `max`", &format!("{p}/max"));
        }
    }
}

/// Computed fields that depend on each other in a circle.
fn computed_cycles(ctx: &mut Ctx<'_>, list: &[Field], base: &str) {
    let computed: BTreeMap<&str, usize> =
        list.iter().enumerate().filter(|(_, f)| f.expression.is_some()).map(|(i, f)| (f.id.as_str(), i)).collect();
    let deps: BTreeMap<&str, Vec<String>> = list
        .iter()
        .filter_map(|f| {
            let expr = f.expression.as_deref()?;
            let ids =
                crate::script::identifiers(expr).into_iter().filter(|id| computed.contains_key(id.as_str())).collect();
            Some((f.id.as_str(), ids))
        })
        .collect();
    let mut reported: BTreeSet<String> = BTreeSet::new();
    for start in computed.keys() {
        // Depth-first walk with an explicit path; a field seen again on the path is a cycle.
        let mut path: Vec<(&str, usize)> = vec![(start, 0)];
        while let Some(&(node, next)) = path.last() {
            let children = deps.get(node).map(Vec::as_slice).unwrap_or(&[]);
            if next >= children.len() {
                path.pop();
                continue;
            }
            if let Some(last) = path.last_mut() {
                last.1 += 1;
            }
            let child = children[next].as_str();
            if let Some(at) = path.iter().position(|(n, _)| *n == child) {
                let cycle: Vec<&str> = path[at..].iter().map(|(n, _)| *n).collect();
                let key = {
                    let mut sorted = cycle.clone();
                    sorted.sort_unstable();
                    sorted.join(",")
                };
                if reported.insert(key) {
                    let first = cycle.iter().min_by_key(|n| computed.get(*n)).copied().unwrap_or(child);
                    // Start the circle at the field it is reported on.
                    let at = cycle.iter().position(|n| *n == first).unwrap_or(0);
                    let mut shown: Vec<&str> = cycle[at..].iter().chain(cycle[..at].iter()).copied().collect();
                    shown.push(first);
                    let idx = computed.get(first).copied().unwrap_or(0);
                    ctx.error(
                        Code::COMPUTED_CYCLE,
                        format!("computed fields depend on each other in a circle: {}", shown.join(" → ")),
                        &format!("{base}/{idx}/expression"),
                    )
                    .help = Some("one of these fields must be entered, not computed".into());
                }
                continue;
            }
            if path.len() <= computed.len() {
                path.push((child, 0));
            }
        }
    }
}

fn states_and_actions(ctx: &mut Ctx<'_>, form: &Form, base: &str) {
    let initials: Vec<usize> =
        form.states.iter().enumerate().filter(|(_, s)| s.initial == Some(true)).map(|(i, _)| i).collect();
    if let [_, second, ..] = initials.as_slice() {
        ctx.error(Code::BAD_STATES, "only one state can be initial", &format!("{base}/states/{second}/initial")).help =
            Some("keep `initial: true` on the state new records start in, and delete it here".into());
    }
    for (k, action) in form.actions.iter().enumerate() {
        let ap = format!("{base}/actions/{k}");
        for (m, s) in action.from.iter().enumerate() {
            ctx.state_ref(form, s, &format!("{ap}/from/{m}"));
            if form.states.iter().any(|st| &st.id == s && st.is_final == Some(true)) {
                ctx.error(
                    Code::CONFLICT,
                    format!("state `{s}` is final, so no action may leave it"),
                    &format!("{ap}/from/{m}"),
                );
            }
        }
        ctx.state_ref(form, &action.to, &format!("{ap}/to"));
        for (m, r) in action.roles.iter().enumerate() {
            ctx.role_ref(r, &format!("{ap}/roles/{m}"));
        }
        for (m, f) in action.requires.iter().enumerate() {
            ctx.field_ref(Scope::of(Some(form)), f, &format!("{ap}/requires/{m}"), false);
        }
    }
    for (k, rule) in form.edit.iter().enumerate() {
        let ep = format!("{base}/edit/{k}");
        for (m, r) in rule.roles.iter().enumerate() {
            ctx.role_ref(r, &format!("{ep}/roles/{m}"));
        }
        for (m, s) in rule.states.iter().enumerate() {
            ctx.state_ref(form, s, &format!("{ep}/states/{m}"));
        }
        for (m, f) in rule.fields.iter().enumerate() {
            ctx.field_ref(Scope::of(Some(form)), f, &format!("{ep}/fields/{m}"), false);
        }
        if rule.owner_only == Some(true) && form.owner_field().is_none() {
            ctx.error(
                Code::CONFLICT,
                format!("form `{}` has no owner field, so no record has an owner to edit it", form.id),
                &format!("{ep}/owner_only"),
            );
        }
    }
}

/// Checks a condition's shape and references in a scope.
pub(super) fn condition(ctx: &mut Ctx<'_>, scope: Scope<'_>, c: &Condition, p: &str) {
    let kind = match c.kind() {
        Ok(k) => k,
        Err(e) => {
            let (key, message, help) = match e {
                ConditionShapeError::OperatorWithoutField(op) => (
                    op,
                    format!("`{op}` compares a field, but no `field` is named"),
                    format!("add `field: NAME` next to `{op}`"),
                ),
                ConditionShapeError::FieldWithoutOperator => (
                    "field",
                    "`field` needs an operator".to_string(),
                    "add one of `eq`, `ne`, `gt`, `gte`, `lt`, `lte`, `in`, `not_in`, `empty`".to_string(),
                ),
                ConditionShapeError::RowsWithoutWhere(key) => (
                    key,
                    "`rows` and `where` go together: `rows` names a table field, `where` tests one row".to_string(),
                    "write `{rows: clauses, where: {field: risk, eq: high}}`".to_string(),
                ),
                ConditionShapeError::TooMany(_, second) => (
                    second,
                    format!("`{second}` cannot go here: a condition is one test"),
                    "combine several tests with `all:` or `any:`, one test per list item".to_string(),
                ),
            };
            ctx.error_at_key(Code::BAD_CONDITION, message, &format!("{p}/{key}")).help = Some(help);
            return;
        }
    };
    match kind {
        ConditionKind::All(list) | ConditionKind::Any(list) => {
            let key = if c.all.is_some() { "all" } else { "any" };
            for (i, inner) in list.iter().enumerate() {
                condition(ctx, scope, inner, &format!("{p}/{key}/{i}"));
            }
        }
        ConditionKind::Not(inner) => condition(ctx, scope, inner, &format!("{p}/not")),
        ConditionKind::Compare(field, op) => {
            let Some(f) = ctx.field_ref(scope, field, &format!("{p}/field"), true) else { return };
            let values: Vec<(&Value, String)> = match op {
                CompareOp::Eq => c.eq.iter().map(|v| (v, format!("{p}/eq"))).collect(),
                CompareOp::Ne => c.ne.iter().map(|v| (v, format!("{p}/ne"))).collect(),
                CompareOp::In => c.in_.iter().flatten().enumerate().map(|(i, v)| (v, format!("{p}/in/{i}"))).collect(),
                CompareOp::NotIn => {
                    c.not_in.iter().flatten().enumerate().map(|(i, v)| (v, format!("{p}/not_in/{i}"))).collect()
                }
                CompareOp::Gt | CompareOp::Gte | CompareOp::Lt | CompareOp::Lte => {
                    let bound = [&c.gt, &c.gte, &c.lt, &c.lte].into_iter().flatten().next();
                    let bp = format!("{p}/{}", op.as_str());
                    match bound {
                        Some(b) if f.kind.is_numeric() && !b.is_number() => {
                            ctx.error(
                                Code::WRONG_TYPE,
                                format!("field `{field}` is a number; compare it with a number"),
                                &bp,
                            );
                        }
                        Some(b)
                            if f.kind == FieldType::Date
                                && b.as_str().is_none_or(|s| crate::timespec::parse_date(s).is_err()) =>
                        {
                            ctx.error(
                                Code::BAD_DATE,
                                format!("field `{field}` is a date; compare it with a date (YYYY-MM-DD)"),
                                &bp,
                            );
                        }
                        _ => {}
                    }
                    if !(f.kind.is_numeric() || f.kind.is_temporal() || f.kind == FieldType::Computed) {
                        ctx.error_at_key(
                            Code::WRONG_FIELD_TYPE,
                            format!("`{}` compares order, but field `{field}` is {}", op.as_str(), f.kind.as_str()),
                            &format!("{p}/{}", op.as_str()),
                        );
                    }
                    Vec::new()
                }
                CompareOp::Empty => Vec::new(),
            };
            for (v, vp) in values {
                value_fits(ctx, f, v, &vp);
            }
        }
        ConditionKind::State(states) => {
            if let (None, Some(reason)) = (scope.form, scope.recordless) {
                ctx.error_at_key(
                    Code::CONFLICT,
                    format!("{reason}, so there is no record whose state to test"),
                    &format!("{p}/state"),
                );
            }
            if let Some(form) = scope.form {
                for (i, s) in states.iter().enumerate() {
                    ctx.state_ref(form, s, &format!("{p}/state/{i}"));
                }
            }
        }
        ConditionKind::Role(role) => ctx.role_ref(role, &format!("{p}/role")),
        ConditionKind::Expr(expr) => ctx.expression(expr, &format!("{p}/expr"), &scope.names()),
        ConditionKind::Rows(table, test) => {
            let Some(f) = ctx.typed_field_ref(scope, table, &format!("{p}/rows"), &[FieldType::Table], "`rows`") else {
                return;
            };
            let row = Scope { fields: f.columns.as_deref().unwrap_or_default(), ..scope };
            condition(ctx, row, test, &format!("{p}/where"));
        }
    }
}

/// `a text`, `an integer`.
fn article(word: &str) -> String {
    let vowel = word.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {word}", if vowel { "an" } else { "a" })
}

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().collect::<String>() + chars.as_str()).unwrap_or_default()
}

/// An example value of a field type, for help lines.
fn example(kind: FieldType) -> &'static str {
    match kind {
        FieldType::Integer => "a whole number such as `3`",
        FieldType::Decimal | FieldType::Money => "a number such as `12.5`",
        FieldType::Percent => "a fraction such as `0.3` for 30%",
        FieldType::Bool => "`true` or `false`",
        FieldType::Date => "a date such as `2026-11-30`",
        FieldType::Datetime => "a time with its offset such as `2026-11-30T09:00:00+08:00`",
        _ => "as the field's type says",
    }
}

/// Each span starts before it ends, and the spans of a day follow one another.
fn working_hours(ctx: &mut Ctx<'_>, hours: &crate::model::WorkingHours, base: &str) {
    let one = matches!(hours, crate::model::WorkingHours::Day(_));
    let mut last_end = None;
    for (k, span) in hours.spans().iter().enumerate() {
        let p = if one { base.to_string() } else { format!("{base}/{k}") };
        let start = timespec::parse_time_of_day(&span.start);
        let end = timespec::parse_time_of_day(&span.end);
        for (key, parsed) in [("start", &start), ("end", &end)] {
            if let Err(e) = parsed {
                ctx.error(Code::BAD_DATE, e.clone(), &format!("{p}/{key}")).help =
                    Some("write a time of day on a 24-hour clock: `09:00`, `13:30`".into());
            }
        }
        let (Ok(s), Ok(e)) = (start, end) else { continue };
        if e <= s {
            ctx.error(Code::CONFLICT, "the working day ends before it starts", &format!("{p}/end")).help = Some(
                "write the times on a 24-hour clock, start before end: `{start: \"09:00\", end: \"18:00\"}`".into(),
            );
        } else if last_end.is_some_and(|prev| s < prev) {
            ctx.error(Code::CONFLICT, "this span starts before the one above it ends", &format!("{p}/start")).help =
                Some("list the spans of a day in order, each starting after the last ends (a break between)".into());
        }
        last_end = Some(e);
    }
}
