//! My work, a record page with its actions, and the list of a form's records; the form drawn
//! for a new record or an edit is in `form.rs`.

use super::form::typed;
use super::*;

/// An action's form that failed: the action, what was posted, the problems, and why.
pub(super) type Failed<'a> = (&'a str, &'a Map<String, Value>, &'a [crate::values::FieldProblem], String);

/// Hours and minutes to a deadline, as people say it.
pub(super) fn left(t: &Value, due: &str, now: jiff::Timestamp) -> (String, bool) {
    let Ok(due) = due.parse::<jiff::Timestamp>() else { return (String::new(), false) };
    let secs = due.as_second() - now.as_second();
    let say = |key: &str, n: i64| t[key].as_str().unwrap_or("{}").replace("{}", &n.to_string());
    match secs {
        s if s < 0 => (say("late_hours", (-s) / 3600), true),
        s if s < 3600 => (say("left_minutes", s.max(60) / 60), false),
        s => (say("left_hours", s / 3600), false),
    }
}

/// One open record on a work list: the time left (or how late it is, and why it waits on a
/// board), red when late.
pub(super) fn work_item(t: &Value, i: crate::engine::records::access::WorkItem, now: jiff::Timestamp) -> Value {
    let (text, late) = i.due.as_deref().map(|d| left(t, d, now)).unwrap_or_default();
    let overdue = late || i.flagged.is_some();
    let text = match (&i.flagged, text.is_empty()) {
        (Some(reason), true) => reason.clone(),
        (Some(reason), false) => format!("{text} · {reason}"),
        (None, _) => text,
    };
    json!({"form": i.form, "id": i.id, "title": i.title, "state": i.state, "left": text, "overdue": overdue})
}

/// `GET /`: my work.
pub(super) async fn work(State(api): State<Api>, headers: HeaderMap) -> Response {
    as_member(&api, &headers, None, move |rt, member, csrf, lang| {
        let t = words(lang);
        let mut ctx = base(rt, member, csrf, lang, t["my_work"].as_str().unwrap_or_default())?;
        let now = rt.clock_now();
        let items: Vec<Value> = rt.work_of(member)?.into_iter().map(|i| work_item(&t, i, now)).collect();
        let tasks: Vec<Value> = rt
            .tasks(Some(member), false, false)?
            .into_iter()
            .map(|task| {
                json!({"id": task.id, "record": task.record, "title": task.title, "due": task.due,
                "overdue": task.overdue})
            })
            .collect();
        ctx.insert("items".into(), Value::Array(items));
        ctx.insert("tasks".into(), Value::Array(tasks));
        Ok(Page::Html(StatusCode::OK, render("work.html", &Value::Object(ctx))?))
    })
    .await
}

pub(super) fn form_label(rt: &Runtime, form: &str, lang: Lang) -> Result<String, EngineError> {
    let f = rt.form_def(form)?;
    Ok(f.label.as_ref().map(|l| l.get(lang).to_string()).unwrap_or_else(|| form.to_string()))
}

/// A record's tables as pages show them: a caption, the columns that hold something, a row
/// of texts per line (money as money), as the member may read them (`data` is already theirs).
pub(super) fn table_views(def: &crate::model::Form, data: &Map<String, Value>, lang: Lang) -> Vec<Value> {
    def.fields
        .iter()
        .filter(|f| f.kind == FieldType::Table)
        .filter_map(|f| Some((f, data.get(&f.id)?.as_array()?)))
        .map(|(f, rows)| {
            let columns: Vec<&Field> = f
                .columns
                .iter()
                .flatten()
                .filter(|c| rows.iter().any(|r| r.get(&c.id).is_some_and(|v| !v.is_null())))
                .collect();
            let body: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    columns
                        .iter()
                        .map(|c| {
                            r.get(&c.id)
                                .filter(|v| !v.is_null())
                                .map(|v| crate::values::display(c, v, lang))
                                .unwrap_or_default()
                        })
                        .collect()
                })
                .collect();
            let heads: Vec<String> = columns.iter().map(|c| crate::values::field_name(c, lang)).collect();
            json!({"label": crate::values::field_name(f, lang), "columns": heads, "rows": body})
        })
        .collect()
}

/// A record's fields as a page shows them (labels and texts): members by name, times in the
/// app's zone, money as money. `data` is what the member may read.
pub(super) fn shown_fields(
    rt: &Runtime,
    def: &crate::model::Form,
    data: &Map<String, Value>,
    lang: Lang,
    zone: &jiff::tz::TimeZone,
    member: &str,
) -> Vec<Value> {
    def.fields
        .iter()
        .filter_map(|f| data.get(&f.id).filter(|v| !v.is_null()).map(|v| (f, v)))
        .map(|(f, v)| {
            let text = match (f.kind, v) {
                (FieldType::Member, Value::String(m)) => rt.member(m).map(|m| m.name).unwrap_or_else(|_| m.clone()),
                (FieldType::Link, Value::String(id)) => rt.link_title_as(f, id, member).unwrap_or_else(|| id.clone()),
                (FieldType::Datetime, Value::String(at)) => crate::clock::shown(at, zone),
                _ => crate::values::display(f, v, lang),
            };
            json!({"label": crate::values::field_name(f, lang), "text": text})
        })
        .collect()
}

pub(super) fn record_view(
    rt: &Runtime,
    form: &str,
    id: &str,
    member: &str,
    csrf: &str,
    lang: Lang,
    failed: Option<Failed<'_>>,
) -> Result<Page, EngineError> {
    let record = rt.get_as(form, id, member)?;
    let def = rt.form_def(form)?;
    let me = rt.member(member)?;
    let zone = rt.zone_of(Some(form));
    let state = def.states.iter().find(|s| Some(&s.id) == record.state.as_ref());
    let state_label = state
        .map(|s| s.label.as_ref().map(|l| l.get(lang).to_string()).unwrap_or_else(|| s.id.clone()))
        .unwrap_or_default();
    let title = rt.title_as(&def, &record.data, id, member);
    let mut ctx = base(rt, member, csrf, lang, &title)?;
    // Tables read as tables, not as one long text in a field's row.
    let scalars: Map<String, Value> = record
        .data
        .iter()
        .filter(|(k, _)| def.field(k).is_some_and(|f| f.kind != FieldType::Table))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let shown = shown_fields(rt, &def, &scalars, lang, &zone, member);
    ctx.insert("tables".into(), Value::Array(table_views(&def, &record.data, lang)));
    let actions: Vec<Value> = def
        .actions
        .iter()
        .filter(|a| record.state.as_ref().is_some_and(|s| a.from.contains(s)))
        .filter(|a| a.roles.is_empty() || me.roles.iter().any(|r| a.roles.contains(r)))
        .filter(|a| a.owner_only != Some(true) || record.owner.as_deref() == Some(member))
        .map(|a| {
            let this = failed.as_ref().filter(|(which, ..)| *which == a.id);
            let inputs: Vec<Value> = a
                .requires
                .iter()
                .filter_map(|r| def.field(r))
                .filter_map(|f| {
                    let value = this.and_then(|(_, posted, ..)| posted.get(&f.id)).or(record.data.get(&f.id));
                    let error = this.and_then(|(_, _, problems, _)| {
                        problems.iter().find(|p| p.field == f.id).map(|p| problem_text(Some(f), p, lang))
                    });
                    input(f, lang, value, error.as_deref(), true)
                })
                .collect();
            let label = a.label.as_ref().map(|l| l.get(lang).to_string()).unwrap_or_else(|| a.id.clone());
            json!({"id": a.id, "label": label, "inputs": inputs})
        })
        .collect();
    let history: Vec<Value> = rt
        .history_as(form, id, member)?
        .into_iter()
        .rev()
        .map(|v| {
            let who = rt.member(&v.actor).map(|m| m.name).unwrap_or_else(|_| v.actor.clone());
            let changes: Vec<String> = v
                .changes
                .iter()
                .map(|c| {
                    let field = def.field(&c.field);
                    let show = |x: &Value| match (field, x) {
                        (_, Value::Null) => "—".to_string(),
                        (Some(f), Value::String(m)) if f.kind == FieldType::Member => {
                            rt.member(m).map(|m| m.name).unwrap_or_else(|_| m.clone())
                        }
                        (Some(f), x) => crate::values::display(f, x, lang),
                        (None, x) => x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string()),
                    };
                    let name = field.map(|f| crate::values::field_name(f, lang)).unwrap_or_else(|| c.field.clone());
                    format!("{name}: {} → {}", show(&c.from), show(&c.to))
                })
                .collect();
            // An action by its label (已联系), else what happened in words.
            let what = match &v.action {
                Some(a) => def
                    .actions
                    .iter()
                    .find(|x| &x.id == a)
                    .and_then(|x| x.label.as_ref())
                    .map_or_else(|| a.clone(), |l| l.get(lang).to_string()),
                None => words(lang)[format!("kind_{}", v.kind)].as_str().unwrap_or(&v.kind).to_string(),
            };
            json!({"version": v.version, "at": crate::clock::shown(&v.at, &zone), "actor": who,
                "what": what, "changes": changes})
        })
        .collect();
    ctx.insert("record".into(), json!(record));
    // The link to edit, where an edit rule may let this member change something; the engine's
    // gate still decides each field when the change is saved.
    let open = state.is_none_or(|s| s.is_final != Some(true));
    let rule_lets = |r: &crate::model::EditRule| {
        (r.roles.is_empty() || me.roles.iter().any(|x| r.roles.contains(x)))
            && (r.owner_only != Some(true) || record.owner.as_deref() == Some(member))
            && (r.states.is_empty() || record.state.as_ref().is_some_and(|s| r.states.contains(s)))
    };
    let editable = open && (def.edit.is_empty() || def.edit.iter().any(rule_lets));
    ctx.insert("editable".into(), json!(editable));
    ctx.insert("state".into(), json!(state_label));
    ctx.insert("shown".into(), Value::Array(shown));
    ctx.insert("actions".into(), Value::Array(actions));
    ctx.insert("history".into(), Value::Array(history));
    let tasks: Vec<Value> = rt
        .tasks_of(form, id)?
        .into_iter()
        .map(|task| {
            let due =
                task.due.as_deref().map(|d| if d.len() == 10 { d.to_string() } else { crate::clock::shown(d, &zone) });
            json!({"id": task.id, "title": task.title, "due": due, "overdue": task.overdue,
                "status": task_status(task.status, lang)})
        })
        .collect();
    ctx.insert("tasks".into(), Value::Array(tasks));
    ctx.insert("activity".into(), Value::Array(activity_view(rt, form, id, member, &zone)?));
    let status = match &failed {
        Some((_, _, _, why)) => {
            ctx.insert("error".into(), json!(why));
            StatusCode::UNPROCESSABLE_ENTITY
        }
        None => StatusCode::OK,
    };
    Ok(Page::Html(status, render("record.html", &Value::Object(ctx))?))
}

/// What automations, timers, events and tasks did to a record, newest first, as the member may
/// see it: one line each, with the steps' outcomes under an automation's run.
fn activity_view(
    rt: &Runtime,
    form: &str,
    id: &str,
    member: &str,
    zone: &jiff::tz::TimeZone,
) -> Result<Vec<Value>, EngineError> {
    Ok(rt
        .activity_as(form, id, member)?
        .into_iter()
        .rev()
        .map(|e| {
            let d = &e.detail;
            let text = |k: &str| d[k].as_str().unwrap_or_default().to_string();
            let what = match e.kind.as_str() {
                "automation.run" => format!("{} · {}", text("automation"), text("status")),
                "event.received" => format!("event {}", text("event")),
                "task.done" => format!("{} ✓", text("title")),
                kind => [kind.to_string(), text("automation"), text("why")]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" · "),
            };
            let steps: Vec<String> = d["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    let said = s["outcome"].as_str().or(s["error"].as_str()).unwrap_or_default();
                    format!("{}: {}", s["step"].as_str().unwrap_or_default(), said.lines().next().unwrap_or_default())
                })
                .collect();
            json!({"at": crate::clock::shown(&e.at, zone), "what": what, "why": d["why"].as_str(), "steps": steps})
        })
        .collect())
}

/// A task's status in words.
pub(super) fn task_status(status: crate::store::TaskStatus, lang: Lang) -> &'static str {
    use crate::store::TaskStatus::*;
    match (status, lang) {
        (Open, Lang::Zh) => "待办",
        (Done, Lang::Zh) => "已完成",
        (Cancelled, Lang::Zh) => "已取消",
        (Open, Lang::En) => "open",
        (Done, Lang::En) => "done",
        (Cancelled, Lang::En) => "cancelled",
    }
}

/// `GET /r/{form}/{id}`.
pub(super) async fn record_page(
    State(api): State<Api>,
    headers: HeaderMap,
    Path((form, id)): Path<(String, String)>,
) -> Response {
    as_member(&api, &headers, None, move |rt, member, csrf, lang| record_view(rt, &form, &id, member, csrf, lang, None))
        .await
}

/// `POST /r/{form}/{id}/act/{action}` with the fields the action requires.
pub(super) async fn act(
    State(api): State<Api>,
    headers: HeaderMap,
    Path((form, id, action)): Path<(String, String, String)>,
    body: Body,
) -> Response {
    let Ok(bytes) = axum::body::to_bytes(body, 256 * 1024).await else {
        return html(StatusCode::PAYLOAD_TOO_LARGE, "too large".into());
    };
    let posted = form_fields(&bytes);
    let kept = posted.clone();
    as_member(&api, &headers, Some(&posted), move |rt, member, csrf, lang| {
        rt.get_as(&form, &id, member)?;
        let def = rt.form_def(&form)?;
        let requires: Vec<&str> = def
            .actions
            .iter()
            .find(|a| a.id == action)
            .map(|a| a.requires.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let (data, mut problems) = typed(&def, &requires, &kept, &rt.zone_of(Some(&form)));
        let mut why = words(lang)["fix"].as_str().unwrap_or_default().to_string();
        if problems.is_empty() {
            match rt.act(&form, &id, &action, member, data) {
                Ok(_) => return Ok(Page::Redirect(format!("/r/{form}/{id}"))),
                Err(EngineError::Invalid(p)) => problems = p,
                Err(e @ EngineError::Refused(_)) => why = e.to_string(),
                Err(e) => return Err(e),
            }
        }
        record_view(rt, &form, &id, member, csrf, lang, Some((&action, &kept, &problems, why)))
    })
    .await
}

/// Records listed a page at a time.
pub(super) const PAGE: u64 = 50;

/// `GET /r/{form}?cursor=N`: the records of a form the member may read, newest first, a page at
/// a time.
pub(super) async fn list(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(form): Path<String>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let cursor = query_value(raw.as_deref(), "cursor").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    as_member(&api, &headers, None, move |rt, member, csrf, lang| {
        let def = rt.form_def(&form)?;
        let label = form_label(rt, &form, lang)?;
        let mut ctx = base(rt, member, csrf, lang, &label)?;
        let query = crate::store::ListQuery {
            limit: Some(PAGE),
            offset: cursor,
            order: crate::store::SortOrder::Desc,
            ..Default::default()
        };
        let (records, next) = rt.page_as(&form, &query, member)?;
        let rows: Vec<Value> = records
            .iter()
            .map(|r| {
                let title = rt.title_as(&def, &r.data, &r.id, member);
                let state = def
                    .states
                    .iter()
                    .find(|s| Some(&s.id) == r.state.as_ref())
                    .map(|s| s.label.as_ref().map(|l| l.get(lang).to_string()).unwrap_or_else(|| s.id.clone()));
                let owner = r.owner.as_deref().map(|o| rt.member(o).map(|m| m.name).unwrap_or_else(|_| o.to_string()));
                json!({"id": r.id, "title": title, "state": state, "owner": owner})
            })
            .collect();
        ctx.insert("form".into(), json!(form));
        ctx.insert("form_label".into(), json!(label));
        ctx.insert("rows".into(), Value::Array(rows));
        ctx.insert("next".into(), json!(next));
        Ok(Page::Html(StatusCode::OK, render("list.html", &Value::Object(ctx))?))
    })
    .await
}
