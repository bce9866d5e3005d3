//! Work waiting for a member: approvals, SOP tasks with their evidence uploads, boards.

use super::*;
use crate::http::uploads::{keep, sniff, upload_path, MAX_UPLOAD};

/// `GET /api/v1/approvals`: the steps waiting for the member.
pub(super) async fn approvals(State(api): State<Api>, headers: HeaderMap) -> Response {
    as_member(&api, &headers, Method::GET, |rt, member| Ok((StatusCode::OK, json!(rt.approvals(Some(member))?), None)))
        .await
}

/// `POST /api/v1/approvals/{form}/{id}/approve|reject|recall` `{"comment": "…"}` (a
/// rejection needs one).
pub(super) async fn decide(
    State(api): State<Api>,
    headers: HeaderMap,
    Path((form, id, decision)): Path<(String, String, String)>,
    body: Body,
) -> Response {
    let data = match body_json(body).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let comment = data.get("comment").and_then(Value::as_str).map(str::to_string);
    as_member(&api, &headers, Method::POST, move |rt, member| {
        rt.get_as(&form, &id, member)?;
        let view = match decision.as_str() {
            "approve" => rt.approve(&form, &id, member, comment.as_deref())?,
            "reject" => rt.reject(&form, &id, member, comment.as_deref().unwrap_or_default())?,
            "recall" => rt.recall(&form, &id, member)?,
            other => {
                return Err(EngineError::NotFound { form: "decision".into(), id: other.to_string() });
            }
        };
        Ok((StatusCode::OK, json!(view), None))
    })
    .await
}

/// `GET /api/v1/tasks?overdue=true`.
pub(super) async fn tasks(State(api): State<Api>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let overdue = raw.as_deref().unwrap_or_default().split('&').any(|p| p == "overdue=true" || p == "overdue=1");
    as_member(&api, &headers, Method::GET, move |rt, member| {
        Ok((StatusCode::OK, json!(rt.tasks(Some(member), overdue, false)?), None))
    })
    .await
}

/// `POST /api/v1/tasks/{task}/done` `{"summary": "…"}`.
pub(super) async fn task_done(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(task): Path<String>,
    body: Body,
) -> Response {
    let Ok(task) = task.parse::<i64>() else {
        return problem(StatusCode::NOT_FOUND, format!("there is no task `{task}`"), Vec::new());
    };
    let data = match body_json(body).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let summary = data.get("summary").and_then(Value::as_str).map(str::to_string);
    // An attachment is the id an upload answered, found in the upload folder; never a path.
    let attachment = match data.get("attachment").and_then(Value::as_str) {
        None => None,
        Some(id) => match (upload_path(api.files.as_deref(), id), &api.files) {
            (Some(path), _) => Some(path.display().to_string()),
            (None, None) => return problem(StatusCode::NOT_FOUND, "uploads are not on for this server", Vec::new()),
            (None, Some(_)) => {
                let why = json!({"field": "attachment", "code": "NOT_FOUND", "message": format!("there is no upload `{id}`")});
                return problem(StatusCode::UNPROCESSABLE_ENTITY, format!("there is no upload `{id}`"), vec![why]);
            }
        },
    };
    as_member(&api, &headers, Method::POST, move |rt, member| {
        let evidence = crate::engine::Evidence { summary, attachment };
        Ok((StatusCode::OK, json!(rt.complete_task(task, member, evidence)?), None))
    })
    .await
}

/// `GET /api/v1/boards/{board}`.
pub(super) async fn board(State(api): State<Api>, headers: HeaderMap, Path(board): Path<String>) -> Response {
    as_member(&api, &headers, Method::GET, move |rt, member| {
        Ok((StatusCode::OK, json!(rt.board_as(&board, member)?), None))
    })
    .await
}

/// `POST /api/v1/files`: the raw body, at most [`MAX_UPLOAD`] bytes, arriving within
/// `BODY_TIME`, of a kind its first bytes prove. Stored once by its SHA-256 in the upload folder,
/// outside the database; the answer names it for a task's `attachment`.
pub(super) async fn upload(State(api): State<Api>, headers: HeaderMap, body: Body) -> Response {
    let Some(dir) = api.files.clone() else {
        return problem(StatusCode::NOT_FOUND, "uploads are not on for this server", Vec::new());
    };
    let too_large =
        || problem(StatusCode::PAYLOAD_TOO_LARGE, format!("a file is at most {MAX_UPLOAD} bytes (10 MiB)"), Vec::new());
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_UPLOAD) {
        return too_large();
    }
    // Who uploads is checked before a byte of the body is read.
    let checked =
        as_member(&api, &headers, Method::POST, |_, member| Ok((StatusCode::OK, json!({"member": member}), None)))
            .await;
    if checked.status() != StatusCode::OK {
        return checked;
    }
    let bytes = match tokio::time::timeout(crate::http::BODY_TIME, axum::body::to_bytes(body, MAX_UPLOAD)).await {
        Err(_) => return problem(StatusCode::REQUEST_TIMEOUT, "the file took too long to arrive", Vec::new()),
        Ok(Err(_)) => return too_large(),
        Ok(Ok(bytes)) => bytes,
    };
    let Some((kind, ext)) = sniff(&bytes) else {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "evidence is a photo (JPEG, PNG, WebP, HEIC) or a PDF; this file is none of them",
            Vec::new(),
        );
    };
    let size = bytes.len();
    match keep(dir, bytes.to_vec(), ext).await {
        Ok(id) => (StatusCode::CREATED, Json(json!({"id": id, "type": kind, "bytes": size}))).into_response(),
        Err(_) => problem(StatusCode::INTERNAL_SERVER_ERROR, "the file could not be stored", Vec::new()),
    }
}
