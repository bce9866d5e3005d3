//! A task card: what to do and say, what the customer's record says (their pain points, the
//! last contact), what was done before on the record, and the evidence (a summary, a photo or
//! a file) that closes the task.

use super::*;
use crate::http::uploads::{keep_now, sniff, upload_path, MAX_UPLOAD};

/// What the card's form posted, and what went wrong with it.
#[derive(Default)]
pub(super) struct CardForm {
    summary: String,
    /// The file's bytes, when one was chosen.
    file: Option<Vec<u8>>,
    /// Problems per input (`summary`, `attachment`), in the member's language.
    problems: Vec<(String, String)>,
}

fn text(t: &Value, key: &str) -> String {
    t[key].as_str().unwrap_or_default().to_string()
}

/// The task, refused unless the member may read its record.
fn readable_task(rt: &Runtime, id: &str, member: &str) -> Result<crate::engine::Task, EngineError> {
    let not_found = || EngineError::NotFound { form: "task".into(), id: id.to_string() };
    let task = rt.task(id.parse::<i64>().map_err(|_| not_found())?)?;
    rt.get_as(&task.form, &task.record, member).map_err(|_| not_found())?;
    Ok(task)
}

pub(super) fn card(
    rt: &Runtime,
    id: &str,
    member: &str,
    csrf: &str,
    lang: Lang,
    posted: &CardForm,
) -> Result<Page, EngineError> {
    let task = readable_task(rt, id, member)?;
    let record = rt.get_as(&task.form, &task.record, member)?;
    let def = rt.form_def(&task.form)?;
    let zone = rt.zone_of(Some(&task.form));
    let t = words(lang);
    let mut ctx = base(rt, member, csrf, lang, &rt.task_texts(&task, lang).map_or(task.title.clone(), |t| t.0))?;
    let record_title =
        def.title_field.as_deref().and_then(|f| record.data.get(f)).and_then(Value::as_str).unwrap_or(&record.id);
    let name = |m: &str| rt.member(m).map(|m| m.name).unwrap_or_else(|_| m.to_string());
    let due = task.due.as_deref().map(|d| if d.len() == 10 { d.to_string() } else { crate::clock::shown(d, &zone) });
    let (mut left, _) =
        task.due.as_deref().filter(|d| d.len() > 10).map(|d| records::left(&t, d, rt.clock_now())).unwrap_or_default();
    if left.is_empty() && task.overdue {
        left = text(&t, "late");
    }
    let earlier: Vec<Value> = rt
        .tasks_of(&task.form, &task.record)?
        .into_iter()
        .filter(|x| x.id != task.id && x.done_at.is_some())
        .rev()
        .map(|x| {
            let summary = x.evidence.as_ref().and_then(|e| e["summary"].as_str()).map(str::to_string);
            json!({"title": x.title, "at": x.done_at.as_deref().map(|d| crate::clock::shown(d, &zone)),
                "by": x.done_by.as_deref().map(name), "summary": summary, "status": x.status})
        })
        .collect();
    let evidence = task.evidence.as_ref().map(|e| {
        let file = e["attachment"]
            .as_str()
            .and_then(|p| std::path::Path::new(p).file_name())
            .map(|n| n.to_string_lossy().to_string());
        let photo = file.as_deref().is_some_and(|f| !f.ends_with(".pdf"));
        json!({"summary": e["summary"], "file": file, "photo": photo})
    });
    let problem = |input: &str| posted.problems.iter().find(|(i, _)| i == input).map(|(_, m)| m.clone());
    let needs = |n: &str| task.needs.iter().any(|x| x == n);
    let (title, talk_track) = rt.task_texts(&task, lang).unwrap_or((task.title.clone(), task.talk_track.clone()));
    ctx.insert(
        "task".into(),
        json!({"id": task.id, "title": title, "talk_track": talk_track,
        "due": due, "left": left, "overdue": task.overdue, "open": task.status == crate::store::TaskStatus::Open,
        "status": task.status, "done_at": task.done_at.as_deref().map(|d| crate::clock::shown(d, &zone)),
        "done_by": task.done_by.as_deref().map(name), "evidence": evidence,
        "assignee": task.assignee.as_deref().map(name)}),
    );
    ctx.insert("record".into(), json!({"form": task.form, "id": record.id, "title": record_title}));
    ctx.insert("shown".into(), Value::Array(records::shown_fields(rt, &def, &record.data, lang, &zone, member)));
    ctx.insert("earlier".into(), Value::Array(earlier));
    ctx.insert(
        "summary".into(),
        json!({"value": posted.summary, "required": needs("summary"), "error": problem("summary")}),
    );
    ctx.insert("attachment".into(), json!({"required": needs("attachment"), "error": problem("attachment")}));
    let status = if posted.problems.is_empty() {
        StatusCode::OK
    } else {
        ctx.insert("error".into(), t["fix"].clone());
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok(Page::Html(status, render("task.html", &Value::Object(ctx))?))
}

/// `GET /tasks/{id}`: the task card.
pub(super) async fn task_page(State(api): State<Api>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    as_member(&api, &headers, None, move |rt, member, csrf, lang| {
        card(rt, &id, member, csrf, lang, &CardForm::default())
    })
    .await
}

/// `POST /tasks/{id}` (`multipart/form-data`): the task done with its summary and, when one
/// was chosen, a photo or PDF. The file is proved by its first bytes and kept only once the
/// session and the form's token are checked; a problem is named under its input, with the
/// summary kept.
pub(super) async fn task_done(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let too_large = || html(StatusCode::PAYLOAD_TOO_LARGE, "a file is at most 10 MiB; 文件不能超过 10 MiB".into());
    let bytes =
        match tokio::time::timeout(crate::http::BODY_TIME, axum::body::to_bytes(body, MAX_UPLOAD + 64 * 1024)).await {
            Ok(Ok(b)) => b,
            Ok(Err(_)) => return too_large(),
            Err(_) => return html(StatusCode::REQUEST_TIMEOUT, "the form took too long to arrive".into()),
        };
    let (fields, file) = match posted_form(&headers, &bytes) {
        Ok(posted) => posted,
        Err(why) => return html(StatusCode::BAD_REQUEST, why.into()),
    };
    let summary = fields.get("summary").and_then(Value::as_str).unwrap_or_default().trim().to_string();
    let files = api.files.clone();
    as_member(&api, &headers, Some(&fields), move |rt, member, csrf, lang| {
        let task = readable_task(rt, &id, member)?;
        let t = words(lang);
        let mut posted = CardForm { summary: summary.clone(), file, problems: Vec::new() };
        let mut attachment = None;
        if let Some(bytes) = posted.file.take() {
            match (sniff(&bytes), files.as_deref()) {
                (None, _) => posted.problems.push(("attachment".into(), text(&t, "not_evidence"))),
                (Some(_), None) => posted.problems.push(("attachment".into(), text(&t, "no_uploads"))),
                (Some((_, ext)), Some(dir)) => {
                    let kept = keep_now(dir, &bytes, ext)
                        .map_err(|e| EngineError::Input(format!("the file could not be kept: {e}")))?;
                    attachment = upload_path(Some(dir), &kept).map(|p| p.display().to_string());
                }
            }
        }
        if posted.problems.is_empty() {
            let evidence = crate::engine::Evidence { summary: (!summary.is_empty()).then_some(summary), attachment };
            match rt.complete_task(task.id, member, evidence) {
                Ok(_) => return Ok(Page::Redirect(format!("/tasks/{id}"))),
                Err(EngineError::Invalid(problems)) => {
                    for p in problems {
                        let said = if p.field == "summary" { "needs_summary" } else { "needs_file" };
                        posted.problems.push((p.field.clone(), text(&t, said)));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        card(rt, &id, member, csrf, lang, &posted)
    })
    .await
}

/// `GET /tasks/{id}/evidence`: the photo or PDF a done task was closed with, for whoever may
/// read the task's record.
pub(super) async fn evidence(State(api): State<Api>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let files = api.files.clone();
    as_member(&api, &headers, None, move |rt, member, _, _| {
        let task = readable_task(rt, &id, member)?;
        let name = task
            .evidence
            .as_ref()
            .and_then(|e| e["attachment"].as_str())
            .and_then(|p| std::path::Path::new(p).file_name())
            .map(|n| n.to_string_lossy().to_string());
        name.and_then(|n| upload_path(files.as_deref(), &n))
            .and_then(|path| std::fs::read(path).ok())
            .map(Page::File)
            .ok_or(EngineError::NotFound { form: "evidence".into(), id })
    })
    .await
}
