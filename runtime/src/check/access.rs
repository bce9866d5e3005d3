//! Who may read a form's records (`read:`) and which fields only some roles see
//! (`read_roles:`): every role, member attribute and field they name exists.

use super::{Ctx, Scope};
use crate::diagnostic::Code;
use crate::model::{Field, Form};

pub(super) fn check_access(ctx: &mut Ctx<'_>, form: &Form, base: &str) {
    for (k, rule) in form.read.iter().enumerate() {
        let rp = format!("{base}/read/{k}");
        for (m, r) in rule.roles.iter().enumerate() {
            ctx.role_ref(r, &format!("{rp}/roles/{m}"));
        }
        let owned = rule.owner_only == Some(true) || rule.team == Some(true);
        if owned && form.owner_field().is_none() {
            let key = if rule.owner_only == Some(true) { "owner_only" } else { "team" };
            ctx.error(
                Code::CONFLICT,
                format!("form `{}` has no owner field, so no record has an owner to read it by", form.id),
                &format!("{rp}/{key}"),
            )
            .help = Some("add `owner_field: FIELD` to the form, or use `same:`".into());
        }
        let attributes = super::flows::member_attributes(ctx);
        for (attr, field) in &rule.same {
            let p = format!("{rp}/same/{attr}");
            if !attributes.contains(attr) {
                let help = ctx.suggest(attr, attributes.iter().map(String::as_str));
                ctx.error_at_key(Code::UNKNOWN_MEMBER_FIELD, format!("members have no attribute `{attr}`"), &p).help =
                    help.or(Some("declare it under `members.fields`".into()));
            }
            ctx.field_ref(Scope::of(Some(form)), field, &p, false);
        }
    }
    read_roles(ctx, &form.fields, &format!("{base}/fields"));
}

fn read_roles(ctx: &mut Ctx<'_>, fields: &[Field], base: &str) {
    for (j, field) in fields.iter().enumerate() {
        for (m, r) in field.read_roles.iter().enumerate() {
            ctx.role_ref(r, &format!("{base}/{j}/read_roles/{m}"));
        }
        if let Some(columns) = &field.columns {
            read_roles(ctx, columns, &format!("{base}/{j}/columns"));
        }
    }
}
