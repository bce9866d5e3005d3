//! Boards and the approvals inbox.

use super::*;

/// `GET /boards/{board}`: the board as the member may see it, oldest first.
pub(super) async fn board(State(api): State<Api>, headers: HeaderMap, Path(board): Path<String>) -> Response {
    as_member(&api, &headers, None, move |rt, member, csrf, lang| {
        let items = rt.board_as(&board, member)?;
        let label = rt
            .boards_for(&rt.member(member)?.roles)
            .into_iter()
            .find(|(id, _)| *id == board)
            .and_then(|(_, l)| l.map(|l| l.get(lang).to_string()))
            .unwrap_or_else(|| board.clone());
        let mut ctx = base(rt, member, csrf, lang, &label)?;
        let t = words(lang);
        let items: Vec<Value> = items
            .into_iter()
            .map(|i| {
                let zone = rt.zone_of(Some(&i.form));
                let title = rt
                    .get_as(&i.form, &i.record, member)
                    .ok()
                    .and_then(|r| {
                        let def = rt.form_def(&i.form).ok()?;
                        def.title_field
                            .as_deref()
                            .and_then(|f| r.data.get(f))
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .unwrap_or_else(|| i.record.clone());
                let age = t["hours"].as_str().unwrap_or("{}").replace("{}", &i.age_hours.to_string());
                json!({"form": i.form, "record": i.record, "title": title, "reason": i.reason,
                    "since": crate::clock::shown(&i.since, &zone), "age": age})
            })
            .collect();
        ctx.insert("board_label".into(), json!(label));
        ctx.insert("items".into(), Value::Array(items));
        Ok(Page::Html(StatusCode::OK, render("board.html", &Value::Object(ctx))?))
    })
    .await
}

/// `GET /team`: the open records and tasks of the members who report to me, late ones first,
/// as far as I may read them.
pub(super) async fn team(State(api): State<Api>, headers: HeaderMap) -> Response {
    as_member(&api, &headers, None, move |rt, member, csrf, lang| {
        let t = words(lang);
        let mut ctx = base(rt, member, csrf, lang, t["team"].as_str().unwrap_or_default())?;
        let now = rt.clock_now();
        let mut people = Vec::new();
        for m in rt.team_of(member)? {
            let items: Vec<Value> = rt
                .work_of(&m.id)?
                .into_iter()
                .filter(|i| rt.get_as(&i.form, &i.id, member).is_ok())
                .map(|i| super::records::work_item(&t, i, now))
                .collect();
            let tasks = rt.tasks(Some(&m.id), false, false)?;
            let late = items.iter().filter(|i| i["overdue"] == true).count() + tasks.iter().filter(|x| x.overdue).count();
            let say = |key: &str, n: usize| t[key].as_str().unwrap_or("{}").replace("{}", &n.to_string());
            let late = (late > 0).then(|| say("late_count", late));
            people.push(json!({"id": m.id, "name": m.name, "items": items, "tasks": say("open_tasks", tasks.len()), "late": late}));
        }
        ctx.insert("people".into(), Value::Array(people));
        Ok(Page::Html(StatusCode::OK, render("team.html", &Value::Object(ctx))?))
    })
    .await
}

pub(super) fn approvals_view(
    rt: &Runtime,
    member: &str,
    csrf: &str,
    lang: Lang,
    error: Option<String>,
) -> Result<Page, EngineError> {
    let t = words(lang);
    let mut ctx = base(rt, member, csrf, lang, t["approvals"].as_str().unwrap_or_default())?;
    let waiting: Vec<Value> = rt
        .approvals(Some(member))?
        .into_iter()
        .map(|w| {
            let show: Vec<Value> = w.show.iter().map(|s| json!({"label": s.label, "text": s.text})).collect();
            let step = rt
                .form_def(&w.form)
                .ok()
                .and_then(|_| rt.step_label(&w.form, &w.chain, &w.step, lang))
                .unwrap_or_else(|| w.step.clone());
            json!({"form": w.form, "record": w.record, "step": step, "on_behalf_of": w.on_behalf_of, "show": show})
        })
        .collect();
    ctx.insert("waiting".into(), Value::Array(waiting));
    let status = match error {
        Some(e) => {
            ctx.insert("error".into(), json!(e));
            StatusCode::UNPROCESSABLE_ENTITY
        }
        None => StatusCode::OK,
    };
    Ok(Page::Html(status, render("approvals.html", &Value::Object(ctx))?))
}

/// `GET /approvals`: the steps waiting for the member, each with what it shows.
pub(super) async fn approvals(State(api): State<Api>, headers: HeaderMap) -> Response {
    as_member(&api, &headers, None, move |rt, member, csrf, lang| approvals_view(rt, member, csrf, lang, None)).await
}

/// `POST /approvals/{form}/{id}` with `decision` (approve or reject) and `comment`.
pub(super) async fn decide(
    State(api): State<Api>,
    headers: HeaderMap,
    Path((form, id)): Path<(String, String)>,
    body: Body,
) -> Response {
    let bytes = axum::body::to_bytes(body, 16 * 1024).await.unwrap_or_default();
    let posted = form_fields(&bytes);
    let decision = posted.get("decision").and_then(Value::as_str).unwrap_or_default().to_string();
    let comment = posted.get("comment").and_then(Value::as_str).unwrap_or_default().trim().to_string();
    as_member(&api, &headers, Some(&posted), move |rt, member, csrf, lang| {
        rt.get_as(&form, &id, member)?;
        let comment = (!comment.is_empty()).then_some(comment);
        let done = match decision.as_str() {
            "approve" => rt.approve(&form, &id, member, comment.as_deref()).map(|_| ()),
            "reject" => rt.reject(&form, &id, member, comment.as_deref().unwrap_or_default()).map(|_| ()),
            _ => Err(EngineError::Input("approve or reject".into())),
        };
        match done {
            Ok(()) => Ok(Page::Redirect("/approvals".into())),
            Err(e @ (EngineError::Input(_) | EngineError::Refused(_))) => {
                approvals_view(rt, member, csrf, lang, Some(e.to_string()))
            }
            Err(e) => Err(e),
        }
    })
    .await
}
