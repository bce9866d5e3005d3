//! The record form the pages draw for a new record and for an edit: inputs typed as their
//! fields, tables row by row, what the server fills in (检查并计算), and saving either through the
//! same gate as any write.

use super::records::{form_label, shown_fields, table_views};
use super::*;

/// One input of a generated form.
pub(in crate::http::web) fn input(
    field: &Field,
    lang: Lang,
    value: Option<&Value>,
    error: Option<&str>,
    required: bool,
) -> Option<Value> {
    let (kind, input, step) = match field.kind {
        FieldType::Text | FieldType::Member | FieldType::Link => ("text", "text", None),
        FieldType::LongText => ("long_text", "text", None),
        FieldType::Phone => ("text", "tel", None),
        FieldType::Email => ("text", "email", None),
        FieldType::Url => ("text", "url", None),
        FieldType::Integer => ("text", "number", Some("1")),
        FieldType::Decimal | FieldType::Money | FieldType::Percent => ("text", "number", Some("any")),
        FieldType::Date => ("text", "date", None),
        FieldType::Choice => ("choice", "", None),
        FieldType::MultiChoice => ("multi", "checkbox", None),
        FieldType::Bool => ("bool", "checkbox", None),
        // Tables are drawn row by row by the form; files, ranges and computed fields are not
        // typed on this page.
        _ => return None,
    };
    let text = match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(";"),
        Some(v) => v.to_string(),
    };
    let ticked: Vec<&str> = text.split(';').collect();
    let options: Vec<Value> = field
        .options
        .iter()
        .flatten()
        .map(|o| json!({"value": o.value, "label": o.label.as_ref().map(|l| l.get(lang).to_string()).unwrap_or_else(|| o.value.clone()),
            "ticked": ticked.contains(&o.value.as_str())}))
        .collect();
    Some(json!({"id": field.id, "label": crate::values::field_name(field, lang), "kind": kind, "input": input,
        "step": step, "value": text, "options": options, "required": required,
        "help": field.help.as_ref().map(|h| h.get(lang).to_string()), "error": error}))
}

/// A field's problem as the page names it under the field: in Chinese, from its stable code
/// and the field's definition (the engine's text is English); in English, the engine's text.
pub(in crate::http::web) fn problem_text(field: Option<&Field>, p: &crate::values::FieldProblem, lang: Lang) -> String {
    if lang == Lang::En {
        return p.message.clone();
    }
    let kind = field.map(|f| f.kind);
    let bound = |v: Option<&Value>| v.map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string));
    match p.code {
        "REQUIRED" | "REQUIRED_FOR_ACTION" => "必填。".into(),
        "WRONG_TYPE" => match kind {
            Some(FieldType::Phone) => "不是有效的电话号码（5 到 20 位数字）。".into(),
            Some(FieldType::Email) => "不是有效的邮箱地址。".into(),
            Some(FieldType::Url) => "不是有效的网址（以 http:// 或 https:// 开头）。".into(),
            Some(FieldType::Integer) => "请填整数。".into(),
            Some(FieldType::Decimal | FieldType::Money | FieldType::Percent) => "请填数字。".into(),
            Some(FieldType::Date) => "请填日期，如 2026-01-05。".into(),
            Some(FieldType::Datetime) => "请填日期和时间，如 2026-01-05 09:00。".into(),
            Some(FieldType::Bool) => "请选是或否。".into(),
            _ => "格式不对。".into(),
        },
        "NOT_AN_OPTION" => "请从选项中选择。".into(),
        "TOO_SMALL" => {
            bound(field.and_then(|f| f.min.as_ref())).map_or("太小了。".into(), |m| format!("不能小于 {m}。"))
        }
        "TOO_LARGE" => {
            bound(field.and_then(|f| f.max.as_ref())).map_or("太大了。".into(), |m| format!("不能大于 {m}。"))
        }
        "TOO_SHORT" => field.and_then(|f| f.min_length).map_or("太短了。".into(), |m| format!("至少 {m} 个字。")),
        "TOO_LONG" => field.and_then(|f| f.max_length).map_or("太长了。".into(), |m| format!("最多 {m} 个字。")),
        "PATTERN_MISMATCH" => match field.and_then(|f| f.help.as_ref()) {
            Some(help) => format!("格式不符合要求：{}。", help.get(lang)),
            None => "格式不符合要求。".into(),
        },
        "NOT_UNIQUE" => "这个值已被另一条记录使用。".into(),
        "NOT_FOUND" => "找不到这条记录或这位成员。".into(),
        "READONLY" => "由系统填写，不能修改。".into(),
        _ => p.message.clone(),
    }
}

/// The field a problem's path names (`lines[0].qty` is the column `qty` of `lines`).
fn field_at<'f>(form: &'f crate::model::Form, path: &str) -> Option<&'f Field> {
    let top = form.field(path.split(['[', '.']).next()?)?;
    match path.rsplit_once('.') {
        Some((_, column)) if top.kind == FieldType::Table => top.columns.iter().flatten().find(|c| c.id == column),
        _ => Some(top),
    }
}

/// The fields a person types on a new record: not read-only, not computed, not filled by a
/// lookup; required ones first.
pub(super) fn typed_fields(form: &crate::model::Form) -> Vec<&Field> {
    let filled: Vec<&str> =
        form.fields.iter().filter_map(|f| f.lookup.as_ref()).flat_map(|l| l.fill.keys().map(String::as_str)).collect();
    let mut fields: Vec<&Field> = form
        .fields
        .iter()
        .filter(|f| f.readonly != Some(true) && f.kind != FieldType::Computed && !filled.contains(&f.id.as_str()))
        .collect();
    fields.sort_by_key(|f| f.required != Some(true));
    fields
}

/// The columns of a table a person types: not read-only, not computed, not filled by a lookup.
pub(super) fn typed_columns(table: &Field) -> Vec<&Field> {
    let columns = table.columns.as_deref().unwrap_or_default();
    let filled: Vec<&str> =
        columns.iter().filter_map(|c| c.lookup.as_ref()).flat_map(|l| l.fill.keys().map(String::as_str)).collect();
    columns
        .iter()
        .filter(|c| c.readonly != Some(true) && c.kind != FieldType::Computed && !filled.contains(&c.id.as_str()))
        .collect()
}

/// How many rows of `table` a form post has (`lines.0.sku`, `lines.1.sku`, …).
fn posted_rows(posted: &Map<String, Value>, table: &str) -> usize {
    let prefix = format!("{table}.");
    posted
        .keys()
        .filter_map(|k| k.strip_prefix(&prefix)?.split_once('.')?.0.parse::<usize>().ok())
        .map(|i| i + 1)
        .max()
        .unwrap_or(0)
        .min(MAX_ROWS)
}

/// The most rows a table has on a page.
const MAX_ROWS: usize = 50;

/// A table's rows from a form post, rows left empty dropped, and for each row kept the row of
/// the page it came from. A cell that cannot be read is a problem named by the page's row
/// (`lines[2].qty`), where the member sees it.
fn table_rows(
    field: &Field,
    posted: &Map<String, Value>,
    zone: &jiff::tz::TimeZone,
    problems: &mut Vec<crate::values::FieldProblem>,
) -> (Vec<Value>, Vec<usize>) {
    let name = &field.id;
    let (mut rows, mut from) = (Vec::new(), Vec::new());
    for i in 0..posted_rows(posted, name) {
        let mut row = Map::new();
        for column in typed_columns(field) {
            let text = posted.get(&format!("{name}.{i}.{}", column.id)).and_then(Value::as_str).unwrap_or_default();
            match crate::values::parse_cell(column, text, zone) {
                Ok(Some(v)) => {
                    row.insert(column.id.clone(), v);
                }
                Ok(None) => {}
                Err(why) => problems.push(crate::values::FieldProblem::new(
                    format!("{name}[{i}].{}", column.id),
                    "WRONG_TYPE",
                    why,
                )),
            }
        }
        if !row.is_empty() {
            rows.push(Value::Object(row));
            from.push(i);
        }
    }
    (rows, from)
}

/// The engine names a table's rows as it stored them, without the rows left empty: each problem
/// in a table is renamed to the page's row, so it lands under the inputs it is about.
fn on_page_rows(
    def: &crate::model::Form,
    posted: &Map<String, Value>,
    zone: &jiff::tz::TimeZone,
    problems: &mut [crate::values::FieldProblem],
) {
    for field in def.fields.iter().filter(|f| f.kind == FieldType::Table) {
        let (_, from) = table_rows(field, posted, zone, &mut Vec::new());
        let prefix = format!("{}[", field.id);
        for p in problems.iter_mut() {
            let Some((k, rest)) = p.field.strip_prefix(&prefix).and_then(|r| r.split_once(']')) else { continue };
            if let Some(i) = k.parse::<usize>().ok().and_then(|k| from.get(k)) {
                p.field = format!("{prefix}{i}]{rest}");
            }
        }
    }
}

/// Typed values from a form post: each field's text read as its type (as a CSV cell is), empty
/// ones left out, a table's rows from `TABLE.N.COLUMN` (rows left empty dropped); what cannot be
/// read is a problem named by field (`lines[0].qty`).
pub(super) fn typed(
    form: &crate::model::Form,
    names: &[&str],
    posted: &Map<String, Value>,
    zone: &jiff::tz::TimeZone,
) -> (Map<String, Value>, Vec<crate::values::FieldProblem>) {
    let mut data = Map::new();
    let mut problems = Vec::new();
    for name in names {
        let Some(field) = form.field(name) else { continue };
        if field.kind == FieldType::Table {
            let (rows, _) = table_rows(field, posted, zone, &mut problems);
            if !rows.is_empty() {
                data.insert(name.to_string(), Value::Array(rows));
            }
            continue;
        }
        let text = posted.get(*name).and_then(Value::as_str).unwrap_or_default();
        if field.kind == FieldType::Bool && text.is_empty() {
            continue;
        }
        match crate::values::parse_cell(field, text, zone) {
            Ok(Some(v)) => {
                data.insert(name.to_string(), v);
            }
            Ok(None) => {}
            Err(why) => problems.push(crate::values::FieldProblem::new(name.to_string(), "WRONG_TYPE", why)),
        }
    }
    (data, problems)
}

/// What the page was asked to do with a new record's form.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Draw it (first open, or a submit the server refused).
    Draw,
    /// Show what the server fills in (lookups, computed fields) and which fields apply.
    Check,
    /// One more row for a table.
    AddRow,
}

/// A link field's choices: the records of the linked form the member may read, when there are
/// at most 200 (more, and the field stays a text box for the id).
fn link_options(rt: &Runtime, field: &Field, member: &str) -> Option<Vec<Value>> {
    let target = field.form.as_deref()?;
    let def = rt.form_def(target).ok()?;
    let query = crate::store::ListQuery { limit: Some(201), ..Default::default() };
    let records = rt.list_as(target, &query, member).ok()?;
    (records.len() <= 200).then(|| {
        records
            .iter()
            .map(|r| {
                let title = def.title_field.as_deref().and_then(|t| r.data.get(t)).and_then(Value::as_str);
                let label = title.map_or_else(|| r.id.clone(), |t| format!("{t} ({})", r.id));
                json!({"value": r.id, "label": label})
            })
            .collect()
    })
}

/// What the server filled in on a checked form: the fields nobody types, and each table's
/// columns, as the member may read them.
fn filled_view(
    rt: &Runtime,
    def: &crate::model::Form,
    data: &Map<String, Value>,
    lang: Lang,
    zone: &jiff::tz::TimeZone,
    member: &str,
) -> (Vec<Value>, Vec<Value>) {
    let typed: Vec<&str> = typed_fields(def).into_iter().map(|f| f.id.as_str()).collect();
    let scalars: Map<String, Value> = data
        .iter()
        .filter(|(k, _)| !typed.contains(&k.as_str()))
        .filter(|(k, _)| def.field(k).is_some_and(|f| f.kind != FieldType::Table))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (shown_fields(rt, def, &scalars, lang, zone, member), table_views(def, data, lang))
}

/// What a new record's form was sent, and what to do with it.
pub(super) struct Sent<'a> {
    /// The form post (empty on first open).
    values: &'a Map<String, Value>,
    /// What the server refused, named per field.
    problems: &'a [crate::values::FieldProblem],
    step: Step,
    /// A record being changed, not made: its id, the version the page was drawn from, and its
    /// title as the member reads it.
    editing: Option<(&'a str, i64, &'a str)>,
    /// Why the whole change was refused (a final record, someone else's change meanwhile).
    refused: Option<String>,
}

pub(super) fn new_form(
    rt: &mut Runtime,
    form: &str,
    member: &str,
    csrf: &str,
    lang: Lang,
    sent: Sent<'_>,
) -> Result<Page, EngineError> {
    let Sent { values, problems, step, editing, refused } = sent;
    // Only what the member may see is offered to type.
    let def = rt.form_def_as(form, member)?;
    let label = form_label(rt, form, lang)?;
    let zone = rt.zone_of(Some(form));
    let t = words(lang);
    let heading = match editing {
        Some((_, _, title)) => format!("{}{title}", t["edit"].as_str().unwrap_or_default()),
        None => format!("{}{label}", t["new"].as_str().unwrap_or_default()),
    };
    let mut ctx = base(rt, member, csrf, lang, &heading)?;
    ctx.insert("heading".into(), json!(heading));
    match editing {
        Some((id, version, _)) => {
            ctx.insert("action".into(), json!(format!("/r/{form}/{id}/edit")));
            ctx.insert("version".into(), json!(version));
        }
        None => {
            ctx.insert("action".into(), json!(format!("/r/{form}/new")));
        }
    }
    // What the server makes of what is typed so far: which fields apply, what it fills in.
    let fields = typed_fields(&def);
    let names: Vec<&str> = fields.iter().map(|f| f.id.as_str()).collect();
    let (so_far, _) = typed(&def, &names, values, &zone);
    let preview = rt.preview_as(form, &so_far, member)?;
    let error_of =
        |id: &str| problems.iter().find(|p| p.field == id).map(|p| problem_text(field_at(&def, id), p, lang));
    let shown = fields.iter().filter(|f| !preview.hidden.contains(&f.id));
    let inputs: Vec<Value> = shown
        .clone()
        .filter(|f| f.kind != FieldType::Table)
        .filter_map(|f| {
            // A new form starts from the field's default (an urgency of green).
            let value = values.get(&f.id).or(f.default.as_ref());
            let mut input = input(f, lang, value, error_of(&f.id).as_deref(), f.required == Some(true))?;
            if let Some(mut options) = (f.kind == FieldType::Link).then(|| link_options(rt, f, member)).flatten() {
                // A stored link to a record the member cannot list stays chosen, by its id.
                let current = value.and_then(Value::as_str).filter(|v| !v.is_empty());
                if let Some(id) = current.filter(|id| !options.iter().any(|o| o["value"] == **id)) {
                    options.push(json!({"value": id, "label": id}));
                }
                input["kind"] = json!("choice");
                input["options"] = Value::Array(options);
            }
            Some(input)
        })
        .collect();
    // The fields this page draws: an edit changes only these (never a field it did not show).
    let drawn: Vec<&str> = inputs
        .iter()
        .filter_map(|i| i["id"].as_str())
        .chain(shown.clone().filter(|f| f.kind == FieldType::Table).map(|f| f.id.as_str()))
        .collect();
    ctx.insert("drawn".into(), json!(drawn.join(",")));
    let tables: Vec<Value> = shown
        .filter(|f| f.kind == FieldType::Table)
        .map(|f| {
            let rows = posted_rows(values, &f.id).max(1) + usize::from(step == Step::AddRow);
            let rows: Vec<Value> = (0..rows.min(MAX_ROWS))
                .map(|i| {
                    let inputs: Vec<Value> = typed_columns(f)
                        .into_iter()
                        .filter_map(|c| {
                            let name = format!("{}.{i}.{}", f.id, c.id);
                            let error = error_of(&format!("{}[{i}].{}", f.id, c.id));
                            let mut input = input(c, lang, values.get(&name), error.as_deref(), false)?;
                            input["id"] = json!(name);
                            Some(input)
                        })
                        .collect();
                    let label = t["row"].as_str().unwrap_or("{}").replace("{}", &(i + 1).to_string());
                    json!({"label": label, "inputs": inputs})
                })
                .collect();
            json!({"id": f.id, "label": crate::values::field_name(f, lang), "required": f.required == Some(true),
                "error": error_of(&f.id), "rows": rows})
        })
        .collect();
    if step == Step::Check {
        let (filled, filled_tables) = filled_view(rt, &def, &preview.data, lang, &zone, member);
        ctx.insert("filled".into(), Value::Array(filled));
        ctx.insert("filled_tables".into(), Value::Array(filled_tables));
        ctx.insert("checked".into(), json!(true));
    }
    ctx.insert("form".into(), json!(form));
    ctx.insert("form_label".into(), json!(label));
    ctx.insert("inputs".into(), Value::Array(inputs));
    ctx.insert("tables".into(), Value::Array(tables));
    if !problems.is_empty() {
        ctx.insert("error".into(), t["fix"].clone());
    }
    let status = match (&refused, problems.is_empty()) {
        (Some(why), _) => {
            ctx.insert("error".into(), json!(why));
            StatusCode::CONFLICT
        }
        (None, true) => StatusCode::OK,
        (None, false) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    Ok(Page::Html(status, render("new.html", &Value::Object(ctx))?))
}

/// `GET /r/{form}/new`.
pub(super) async fn new_page(State(api): State<Api>, headers: HeaderMap, Path(form): Path<String>) -> Response {
    as_member(&api, &headers, None, move |rt, member, csrf, lang| {
        new_form(
            rt,
            &form,
            member,
            csrf,
            lang,
            Sent { values: &Map::new(), problems: &[], step: Step::Draw, editing: None, refused: None },
        )
    })
    .await
}

/// A stored record as its form's post: each field as the text a person would type
/// (`lines.0.qty` for a table's cells), so the edit page starts from what is stored.
fn as_posted(def: &crate::model::Form, data: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for f in typed_fields(def) {
        match (f.kind, data.get(&f.id)) {
            (FieldType::Table, Some(Value::Array(rows))) => {
                for (i, row) in rows.iter().enumerate() {
                    for c in typed_columns(f) {
                        let text = crate::values::format_cell(row.get(&c.id));
                        out.insert(format!("{}.{i}.{}", f.id, c.id), json!(text));
                    }
                }
            }
            (_, Some(v)) if !v.is_null() => {
                out.insert(f.id.clone(), json!(crate::values::format_cell(Some(v))));
            }
            _ => {}
        }
    }
    out
}

/// Whether the member changed field `name`: its posted text (a table's cells) against the
/// stored value's, a box left unticked being the same as `false`, boxes in any order.
fn changed(def: &crate::model::Form, name: &str, before: &Map<String, Value>, posted: &Map<String, Value>) -> bool {
    let text = |m: &Map<String, Value>, key: &str, kind: FieldType| -> String {
        let raw = m.get(key).and_then(Value::as_str).unwrap_or_default().trim();
        match kind {
            FieldType::Bool if raw == "false" => String::new(),
            FieldType::MultiChoice => {
                let mut ticked: Vec<&str> = raw.split(';').filter(|p| !p.is_empty()).collect();
                ticked.sort_unstable();
                ticked.join(";")
            }
            _ => raw.to_string(),
        }
    };
    let Some(field) = def.field(name) else { return false };
    if field.kind != FieldType::Table {
        return text(before, name, field.kind) != text(posted, name, field.kind);
    }
    let rows = posted_rows(posted, name).max(posted_rows(before, name));
    (0..rows).any(|i| {
        typed_columns(field).iter().any(|c| {
            let key = format!("{name}.{i}.{}", c.id);
            text(before, &key, c.kind) != text(posted, &key, c.kind)
        })
    })
}

/// `GET /r/{form}/{id}/edit`: the record's form, filled with what is stored, for the fields a
/// person types; saved through the same gate as any change (edit rules, final states).
pub(super) async fn edit_page(
    State(api): State<Api>,
    headers: HeaderMap,
    Path((form, id)): Path<(String, String)>,
) -> Response {
    as_member(&api, &headers, None, move |rt, member, csrf, lang| {
        let record = rt.get_as(&form, &id, member)?;
        let def = rt.form_def_as(&form, member)?;
        let posted = as_posted(&def, &record.data);
        let title = rt.title_as(&def, &record.data, &id, member);
        let editing = Some((id.as_str(), record.version, title.as_str()));
        new_form(
            rt,
            &form,
            member,
            csrf,
            lang,
            Sent { values: &posted, problems: &[], step: Step::Draw, editing, refused: None },
        )
    })
    .await
}

/// A record form's post: its fields, and the step its button asked for.
async fn record_post(body: Body) -> Result<(Map<String, Value>, Step), Response> {
    let Ok(bytes) = axum::body::to_bytes(body, 256 * 1024).await else {
        return Err(html(StatusCode::PAYLOAD_TOO_LARGE, "too large".into()));
    };
    let posted = form_fields(&bytes);
    let step = match posted.get("step").and_then(Value::as_str) {
        Some("check") => Step::Check,
        Some("add_row") => Step::AddRow,
        _ => Step::Draw,
    };
    Ok((posted, step))
}

/// `POST /r/{form}/{id}/edit` with `version` and `step` as on the new-record form: `save`
/// changes the fields typed (a field emptied is cleared) of the version the page was drawn
/// from; someone else's change meanwhile is named, and nothing is written.
pub(super) async fn edit_save(
    State(api): State<Api>,
    headers: HeaderMap,
    Path((form, id)): Path<(String, String)>,
    body: Body,
) -> Response {
    let (posted, step) = match record_post(body).await {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let kept = posted.clone();
    let version = posted.get("version").and_then(Value::as_str).and_then(|v| v.parse::<i64>().ok());
    as_member(&api, &headers, Some(&posted), move |rt, member, csrf, lang| {
        let record = rt.get_as(&form, &id, member)?;
        let def = rt.form_def_as(&form, member)?;
        let zone = rt.zone_of(Some(&form));
        // Only the fields the page drew, and of those only what the member changed: a field the
        // page did not show (no input for its type, a `visible_if` that did not hold) is kept.
        let drawn = kept.get("fields").and_then(Value::as_str).unwrap_or_default();
        let names: Vec<&str> = typed_fields(&def)
            .into_iter()
            .map(|f| f.id.as_str())
            .filter(|n| drawn.split(',').any(|d| d == *n))
            .collect();
        let (data, mut problems) = typed(&def, &names, &kept, &zone);
        let mut refused = None;
        if step == Step::Draw && problems.is_empty() {
            let before = as_posted(&def, &record.data);
            let patch: Map<String, Value> = names
                .iter()
                .filter(|n| changed(&def, n, &before, &kept))
                .map(|n| (n.to_string(), data.get(*n).cloned().unwrap_or(Value::Null)))
                .collect();
            // A page without the version it was drawn from cannot tell what changed meanwhile.
            let outcome = match version {
                Some(v) => rt.update_from(&form, &id, patch, member, Some(v)),
                None => Err(EngineError::Conflict { form: form.clone(), id: id.clone() }),
            };
            match outcome {
                Ok(_) => return Ok(Page::Redirect(format!("/r/{form}/{id}"))),
                Err(EngineError::Invalid(p)) => {
                    problems = p;
                    on_page_rows(&def, &kept, &zone, &mut problems);
                }
                Err(EngineError::Conflict { .. }) => {
                    refused = words(lang)["changed_meanwhile"].as_str().map(str::to_string);
                }
                Err(e @ EngineError::Refused(_)) => refused = Some(e.to_string()),
                Err(e) => return Err(e),
            }
        }
        let drawn_at = version.unwrap_or(record.version);
        let title = rt.title_as(&def, &record.data, &id, member);
        let editing = Some((id.as_str(), drawn_at, title.as_str()));
        let sent = Sent { values: &kept, problems: &problems, step, editing, refused };
        new_form(rt, &form, member, csrf, lang, sent)
    })
    .await
}

/// `POST /r/{form}/new` with `step`: `save` (the record as the member; errors named per field,
/// what was typed kept), `check` (what the server would fill in, nothing written) or `add_row`.
pub(super) async fn create(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(form): Path<String>,
    body: Body,
) -> Response {
    let (posted, step) = match record_post(body).await {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let kept = posted.clone();
    as_member(&api, &headers, Some(&posted), move |rt, member, csrf, lang| {
        let def = rt.form_def(&form)?;
        let names: Vec<&str> = typed_fields(&def).into_iter().map(|f| f.id.as_str()).collect();
        let (mut data, mut problems) = typed(&def, &names, &kept, &rt.zone_of(Some(&form)));
        if step != Step::Draw {
            // Nothing is written; only what cannot be read as typed is named.
            return new_form(
                rt,
                &form,
                member,
                csrf,
                lang,
                Sent { values: &kept, problems: &problems, step, editing: None, refused: None },
            );
        }
        if problems.is_empty() {
            // A field whose `visible_if` does not hold was not on the page: what it held stays out.
            for hidden in rt.preview_as(&form, &data, member)?.hidden {
                data.remove(&hidden);
            }
            match rt.submit(&form, data, member) {
                Ok(r) => return Ok(Page::Redirect(format!("/r/{form}/{}", r.id))),
                Err(EngineError::Invalid(p)) => {
                    problems = p;
                    on_page_rows(&def, &kept, &rt.zone_of(Some(&form)), &mut problems);
                }
                Err(e) => return Err(e),
            }
        }
        new_form(
            rt,
            &form,
            member,
            csrf,
            lang,
            Sent { values: &kept, problems: &problems, step: Step::Draw, editing: None, refused: None },
        )
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote_lines() -> crate::model::Form {
        let yaml = r#"{"id": "quote", "fields": [{"id": "lines", "type": "table", "columns": [
            {"id": "sku", "type": "text"}, {"id": "qty", "type": "integer"}]}]}"#;
        serde_json::from_str(yaml).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_problem_in_a_table_lands_on_the_page_row_it_is_about_even_after_an_empty_row() {
        let form = quote_lines();
        let zone = jiff::tz::TimeZone::UTC;
        // Row 0 left empty, row 1 filled, row 2 with a quantity that is not a number.
        let posted: Map<String, Value> = [
            ("lines.0.sku", ""),
            ("lines.1.sku", "CL-CRM-STD"),
            ("lines.1.qty", "0"),
            ("lines.2.sku", "CL-IMPL-DAY"),
            ("lines.2.qty", "两个"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
        let (data, problems) = typed(&form, &["lines"], &posted, &zone);
        assert_eq!(data["lines"].as_array().map(Vec::len), Some(2), "the empty row is dropped");
        assert_eq!(problems.iter().map(|p| p.field.as_str()).collect::<Vec<_>>(), ["lines[2].qty"]);
        // The engine refuses the first row it stored (`lines[0]`): that is the page's row 1.
        let mut refused = vec![crate::values::FieldProblem::new("lines[0].qty", "TOO_SMALL", "at least 1")];
        on_page_rows(&form, &posted, &zone, &mut refused);
        assert_eq!(refused[0].field, "lines[1].qty");
    }
}
