//! The pages of the people in the loops: sign in, my work, a new record, a record with the
//! actions the member may take. Each page asks the engine as the signed-in member (the same
//! `*_as` reads and write gate as `/api/v1`); forms are generated from the form definitions and
//! checked by the server alone; every post carries the session's CSRF token.
//!
//! The session id and the CSRF token travel in two HttpOnly, SameSite=Lax cookies; a page puts
//! the CSRF token into its forms, and a post is accepted only when the form's token equals the
//! cookie's and is the one the session was given.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::{json, Map, Value};

use super::{html, lang_of, secure, templates};
use crate::engine::{EngineError, Runtime};
use crate::http::v1::cookie;
use crate::http::{Api, Busy, ClientAddr, ANSWER_TIME};
use crate::model::{Field, FieldType, Lang};

mod form;
mod ops;
pub(super) use form::{input, problem_text};
mod records;
mod tasks;
mod work;

use form::{create, edit_page, edit_save, new_page};
use ops::{
    audit_page, audit_verify, channels_page, members_import, members_page, ops_apps, ops_page, outbox_page,
    outbox_retry,
};
use records::{act, list, record_page, work};
use tasks::{evidence, task_done, task_page};
use work::{approvals, board, decide, team};

const CSRF_COOKIE: &str = "closeloop_csrf";

/// The member page routes.
pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/", get(work))
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-in/link", get(link_page).post(link_sign_in))
        .route("/sign-out", post(sign_out))
        .route("/r/{form}", get(list))
        .route("/r/{form}/new", get(new_page).post(create))
        .route("/r/{form}/{id}", get(record_page))
        .route("/r/{form}/{id}/edit", get(edit_page).post(edit_save))
        .route("/r/{form}/{id}/act/{action}", post(act))
        .route("/boards/{board}", get(board))
        .route("/approvals", get(approvals))
        .route("/approvals/{form}/{id}", post(decide))
        .route("/tasks/{id}", get(task_page).post(task_done))
        .route("/tasks/{id}/evidence", get(evidence))
        .route("/team", get(team))
        .route("/language", post(language))
        .route("/ops", get(ops_page))
        .route("/ops/apps", post(ops_apps))
        .route("/ops/members", get(members_page).post(members_import))
        .route("/ops/channels", get(channels_page))
        .route("/ops/outbox", get(outbox_page))
        .route("/ops/outbox/{id}/retry", post(outbox_retry))
        .route("/ops/audit", get(audit_page).post(audit_verify))
}

/// What a page job answers.
enum Page {
    Html(StatusCode, String),
    Redirect(String),
    /// An evidence file, sent as the kind its first bytes prove.
    File(Vec<u8>),
}

/// An evidence file's answer.
fn file(bytes: Vec<u8>) -> Response {
    let kind = crate::http::uploads::sniff(&bytes).map(|(k, _)| k).unwrap_or("application/octet-stream");
    let mut r = Response::new(Body::from(bytes));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    secure(r)
}

fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    secure(r)
}

/// The pages' words: (key, Chinese, English), side by side so a translator sees both.
const WORDS: &[(&str, &str, &str)] = &[
    ("sign_in", "登录", "Sign in"),
    ("member", "成员编号", "Member id"),
    ("password", "密码", "Password"),
    ("my_work", "我的工作", "My work"),
    ("nothing", "暂无待办记录。", "Nothing waiting for you."),
    ("tasks", "我的任务", "My tasks"),
    ("due", "截止", "due"),
    ("new", "新建", "New "),
    ("edit", "修改", "Edit "),
    ("changed_meanwhile", "这条记录刚被别人修改过：请重新打开后再改。", "Someone changed this record meanwhile: open it again and redo your change."),
    ("save", "保存", "Save"),
    ("history", "历史", "History"),
    ("wrong", "成员编号或密码错误", "The member id or password is wrong"),
    ("fix", "请修改标出的内容后再提交。", "Please correct the marked fields."),
    ("left_hours", "还剩 {} 小时", "{} h left"),
    ("left_minutes", "还剩 {} 分钟", "{} min left"),
    ("late_hours", "已超时 {} 小时", "{} h overdue"),
    ("late", "已超时", "Overdue"),
    ("link_hint", "点击下方按钮登录。此链接仅可使用一次。", "Press the button to sign in. The link works once."),
    ("link_bad", "登录链接已失效，请重新获取。", "This sign-in link no longer works; ask for a new one."),
    ("approvals", "待我审批", "Waiting for my approval"),
    ("comment", "审批意见（驳回时必填）", "Comment (required to reject)"),
    ("approve", "同意", "Approve"),
    ("reject", "驳回", "Reject"),
    ("on_behalf", "代审批：", "On behalf of"),
    ("hours", "{} 小时", "{} h"),
    ("more", "下一页", "Next page"),
    ("apps", "已安装的应用", "Installed apps"),
    ("revision", "版本", "revision"),
    ("upload", "校验或安装应用", "Validate or install an app"),
    ("problems", "发现问题", "Problems found"),
    ("validate", "校验", "Validate"),
    ("install", "安装", "Install"),
    ("valid", "校验通过，可以安装。", "Valid: it can be installed."),
    ("installed", "已安装 {} 第 {} 版。", "Installed {} revision {}."),
    ("talk_track", "话术", "Talk track"),
    ("about", "客户情况", "About the customer"),
    ("earlier", "此前的联系", "Earlier contact"),
    ("summary", "经过（做了什么、客户怎么说）", "What happened (what you did, what the customer said)"),
    ("attachment", "照片或文件（JPEG、PNG、WebP、HEIC 或 PDF，最大 10 MiB）", "Photo or file (JPEG, PNG, WebP, HEIC or PDF, at most 10 MiB)"),
    ("complete", "完成任务", "Complete the task"),
    ("done", "已完成", "Done"),
    ("done_by", "完成人", "Done by"),
    ("evidence", "凭证", "Evidence"),
    ("open_file", "打开附件", "Open the attachment"),
    ("assignee", "负责人", "Assignee"),
    ("not_evidence", "凭证须是照片（JPEG、PNG、WebP、HEIC）或 PDF，这个文件都不是。", "Evidence is a photo (JPEG, PNG, WebP, HEIC) or a PDF; this file is neither."),
    ("no_uploads", "此服务器未开启文件上传，请联系运维。", "This server does not take uploads; ask ops."),
    ("needs_summary", "请填写经过。", "Say what happened."),
    ("needs_file", "请上传照片或文件。", "Add a photo or file."),
    ("team", "我的团队", "My team"),
    ("no_team", "没有成员向你汇报。", "Nobody reports to you."),
    ("open_tasks", "{} 个任务", "{} tasks"),
    ("late_count", "{} 项超时", "{} late"),
    ("tasks_of_record", "任务", "Tasks"),
    ("language", "语言", "Language"),
    ("members", "成员", "Members"),
    ("automations", "自动处理", "What automations did"),
    ("kind_created", "新建", "created"),
    ("kind_updated", "修改", "changed"),
    ("add_row", "添加一行", "Add a row"),
    ("check", "检查并计算", "Check and fill in"),
    ("filled", "系统将填入", "closeloop fills in"),
    ("nothing_filled", "还没有可以填入的内容。", "Nothing to fill in yet."),
    ("channels", "通知通道", "Channels"),
    ("outbox", "发件箱", "Outbox"),
    ("audit", "审计", "Audit"),
    ("ops_menu", "运维菜单", "Ops menu"),
    ("id", "编号", "Id"),
    ("name", "姓名", "Name"),
    ("roles", "角色", "Roles"),
    ("region", "区域", "Region"),
    ("manager", "上级", "Manager"),
    ("contact", "联系方式", "Reach"),
    ("inactive", "已停用", "inactive"),
    ("import_members", "导入成员 CSV", "Import a member CSV"),
    ("import_hint", "列：id,name,roles,region,manager,active,capacity，可选 email、phone；角色用 ; 分隔。整份文件要么全部导入，要么一行也不导入。", "Columns: id,name,roles,region,manager,active,capacity, optional email and phone; roles separated by ;. The whole file is imported, or none of it."),
    ("csv_file", "CSV 文件", "CSV file"),
    ("csv_text", "或粘贴 CSV", "Or paste the CSV"),
    ("import", "导入", "Import"),
    ("imported", "已导入：新增 {} 人，更新 {} 人，未变 {} 人。", "Imported: {} new, {} updated, {} unchanged."),
    ("refused", "文件未导入，请修改以下各行后重试：", "Nothing was imported. Correct these rows and try again:"),
    ("row", "第 {} 行", "row {}"),
    ("channel_kind", "类型", "Kind"),
    ("missing", "缺少设置", "Missing settings"),
    ("no_channels", "已安装的应用没有声明通知通道。", "The installed apps declare no channels."),
    ("set_hint", "设置通道：closeloop channels set 通道 key=value（密钥可放在环境变量里）。", "Set a channel with: closeloop channels set CHANNEL key=value (secrets may live in the environment)."),
    ("retry", "重新发送", "Send again"),
    ("retried", "消息 #{} 已重新排队，下次发送时投递。", "Message #{} is back in line for the next pass."),
    ("shown_of", "显示最新 {} 条，共 {} 条", "Newest {} of {}"),
    ("attempts", "尝试次数", "Attempts"),
    ("status_dead", "死信", "dead letters"),
    ("status_pending", "待发送", "pending"),
    ("status_sent", "已发送", "sent"),
    ("status_all", "全部", "all"),
    ("no_messages", "没有这类消息。", "No such messages."),
    ("chain_head", "审计链头", "Chain head"),
    ("events", "事件数", "Events"),
    ("verify", "校验审计链", "Verify the chain"),
    ("verify_hint", "重新计算每个事件的哈希，并按事件重放每条记录，与存储的数据比对。", "Recomputes every event's hash and replays every record from its events, comparing it with what is stored."),
    ("chain_ok", "审计链完整：{} 个事件，{} 条记录与事件一致。", "The chain holds: {} events, {} records match their events."),
    ("chain_bad", "审计链有问题：", "The chain is broken:"),
];

fn words(lang: Lang) -> Value {
    let pick = |&(key, zh, en): &(&str, &str, &str)| (key.to_string(), json!(if lang == Lang::Zh { zh } else { en }));
    Value::Object(WORDS.iter().map(pick).collect())
}

fn nav(lang: Lang) -> Value {
    match lang {
        Lang::Zh => {
            json!({"label": "主菜单", "work": "我的工作", "new": "新建", "sign_out": "退出", "approvals": "审批", "ops": "运维", "team": "我的团队"})
        }
        Lang::En => {
            json!({"label": "Main menu", "work": "My work", "new": "New ", "sign_out": "Sign out", "approvals": "Approvals", "ops": "Ops", "team": "My team"})
        }
    }
}

/// A form post's fields.
///
/// A name sent more than once (the ticked boxes of a multi-choice) holds its values joined by
/// `;`, as a CSV cell of a multi-choice does.
pub(super) fn form_fields(bytes: &[u8]) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in String::from_utf8_lossy(bytes).split('&').filter_map(|p| p.split_once('=')) {
        let (k, v) = (crate::http::reports::decode(k), crate::http::reports::decode(v));
        match out.get_mut(&k) {
            Some(Value::String(before)) => {
                before.push(';');
                before.push_str(&v);
            }
            _ => {
                out.insert(k, Value::String(v));
            }
        }
    }
    out
}

/// A value of a query string (`?cursor=…`), decoded.
pub(super) fn query_value(raw: Option<&str>, key: &str) -> Option<String> {
    raw.unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| crate::http::reports::decode(v))
}

/// A posted form's text fields, and its file when one was chosen.
pub(super) type Posted = (Map<String, Value>, Option<Vec<u8>>);

/// A posted form, sent either as `multipart/form-data` (a form with a file input) or
/// URL-encoded.
pub(super) fn posted_form(headers: &HeaderMap, bytes: &[u8]) -> Result<Posted, &'static str> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Some(boundary) = super::multipart::boundary(content_type) else {
        return Ok((form_fields(bytes), None));
    };
    let mut fields = Map::new();
    let mut file = None;
    for part in super::multipart::parts(bytes, &boundary)? {
        match part.filename {
            Some(_) if !part.bytes.is_empty() => file = Some(part.bytes),
            Some(_) => {}
            None => {
                fields.insert(part.name, Value::String(String::from_utf8_lossy(&part.bytes).into_owned()));
            }
        }
    }
    Ok((fields, file))
}

/// The signed-in member's page: the session is checked on the worker, and for a post the CSRF
/// token too; `job` renders the page with the member, the CSRF token to embed and the page's
/// language (the member's choice, else the browser's).
async fn as_member(
    api: &Api,
    headers: &HeaderMap,
    posted: Option<&Map<String, Value>>,
    job: impl FnOnce(&mut Runtime, &str, &str, Lang) -> Result<Page, EngineError> + Send + 'static,
) -> Response {
    let browser = lang_of(headers);
    let (Some(session), Some(csrf)) = (cookie(headers, crate::http::v1::SESSION_COOKIE), cookie(headers, CSRF_COOKIE))
    else {
        return redirect("/sign-in");
    };
    if let Some(form) = posted {
        if form.get("csrf").and_then(Value::as_str) != Some(csrf.as_str()) {
            return html(
                StatusCode::FORBIDDEN,
                "this form is out of date or from another site; reload the page".into(),
            );
        }
    }
    let answer = api.pool.submit(move |rt| {
        let who = rt.session(&session)?;
        if who.csrf.as_deref() != Some(crate::store::sha256_hex(csrf.as_bytes()).as_str()) {
            return Err(EngineError::Unauthorized("the page's token does not belong to this session".into()));
        }
        // The member's own choice, else what the browser asks for.
        let lang = rt.language_of(&who.member)?.unwrap_or(browser);
        job(rt, &who.member, &csrf, lang)
    });
    let Ok(answer) = answer.map_err(|Busy| ()) else {
        return html(StatusCode::SERVICE_UNAVAILABLE, "closeloop is busy; please try again".into());
    };
    match tokio::time::timeout(ANSWER_TIME, answer).await {
        Ok(Ok(Ok(Page::Html(status, body)))) => html(status, body),
        Ok(Ok(Ok(Page::Redirect(to)))) => redirect(&to),
        Ok(Ok(Ok(Page::File(bytes)))) => file(bytes),
        Ok(Ok(Err(EngineError::Unauthorized(_)))) => redirect("/sign-in"),
        Ok(Ok(Err(e @ (EngineError::NotFound { .. } | EngineError::UnknownForm { .. })))) => {
            html(StatusCode::NOT_FOUND, super::escape(&e.to_string()))
        }
        Ok(Ok(Err(e))) => html(StatusCode::FORBIDDEN, super::escape(&e.to_string())),
        _ => html(StatusCode::SERVICE_UNAVAILABLE, "closeloop is busy; please try again".into()),
    }
}

fn render(name: &str, ctx: &Value) -> Result<String, EngineError> {
    templates()
        .get_template(name)
        .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(ctx))))
        .map_err(|e| EngineError::Input(format!("the page {name} could not be drawn: {e}")))
}

/// What every member page's layout needs.
fn base(rt: &Runtime, member: &str, csrf: &str, lang: Lang, title: &str) -> Result<Map<String, Value>, EngineError> {
    let me = rt.member(member)?;
    let creatable: Vec<Value> =
        rt.creatable_forms().into_iter().map(|(id, label)| json!({"id": id, "label": label.get(lang)})).collect();
    let mut ctx = Map::new();
    ctx.insert("lang".into(), json!(if lang == Lang::Zh { "zh-CN" } else { "en" }));
    ctx.insert("title".into(), json!(title));
    ctx.insert("me".into(), json!(member));
    ctx.insert("me_name".into(), json!(me.name));
    ctx.insert("csrf".into(), json!(csrf));
    ctx.insert("nav".into(), nav(lang));
    ctx.insert("t".into(), words(lang));
    ctx.insert("creatable".into(), Value::Array(creatable));
    let boards: Vec<Value> = rt
        .boards_for(&me.roles)
        .into_iter()
        .map(|(id, label)| json!({"id": id, "label": label.map(|l| l.get(lang).to_string()).unwrap_or(id)}))
        .collect();
    ctx.insert("boards".into(), Value::Array(boards));
    ctx.insert("ops".into(), json!(me.roles.iter().any(|r| r == crate::engine::records::access::OPS_ROLE)));
    ctx.insert("team".into(), json!(!rt.team_of(member)?.is_empty()));
    Ok(ctx)
}

/// `GET /sign-in`.
async fn sign_in_page(headers: HeaderMap) -> Response {
    let lang = lang_of(&headers);
    let ctx = json!({"lang": if lang == Lang::Zh { "zh-CN" } else { "en" }, "title": words(lang)["sign_in"], "t": words(lang), "member": ""});
    match render("signin.html", &ctx) {
        Ok(body) => html(StatusCode::OK, body),
        Err(_) => html(StatusCode::INTERNAL_SERVER_ERROR, "closeloop failed to draw this page".into()),
    }
}

/// `POST /sign-in`: a new session, then my work.
async fn sign_in(
    State(api): State<Api>,
    addr: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let lang = lang_of(&headers);
    let Ok(bytes) = axum::body::to_bytes(body, 16 * 1024).await else {
        return html(StatusCode::PAYLOAD_TOO_LARGE, "too large".into());
    };
    let form = form_fields(&bytes);
    let text = |k: &str| form.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let (member, password) = (text("member"), text("password"));
    let address = addr.map(|a| a.0 .0.ip().to_string()).unwrap_or_else(|| "unknown".into());
    let m = member.clone();
    let Ok(answer) = api.pool.submit(move |rt| rt.sign_in(&m, &password, &address)) else {
        return html(StatusCode::SERVICE_UNAVAILABLE, "closeloop is busy; please try again".into());
    };
    match tokio::time::timeout(ANSWER_TIME, answer).await {
        Ok(Ok(Ok(session))) => signed_in(&api, &session),
        Ok(Ok(Err(e))) => {
            let why = match e {
                EngineError::Locked(m) => m,
                _ => words(lang)["wrong"].as_str().unwrap_or_default().to_string(),
            };
            let ctx = json!({"lang": if lang == Lang::Zh { "zh-CN" } else { "en" }, "title": words(lang)["sign_in"],
                "t": words(lang), "member": member, "error": why});
            match render("signin.html", &ctx) {
                Ok(body) => html(StatusCode::UNAUTHORIZED, body),
                Err(_) => html(StatusCode::INTERNAL_SERVER_ERROR, "closeloop failed to draw this page".into()),
            }
        }
        _ => html(StatusCode::SERVICE_UNAVAILABLE, "closeloop is busy; please try again".into()),
    }
}

/// My work, with the new session's two cookies.
fn signed_in(api: &Api, session: &crate::engine::NewSession) -> Response {
    let mut r = redirect("/");
    let secure_flag = if api.secure_cookies { "; Secure" } else { "" };
    for (name, value) in [(crate::http::v1::SESSION_COOKIE, &session.id), (CSRF_COOKIE, &session.csrf)] {
        let cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax{secure_flag}");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

fn link_form(lang: Lang, token: &str, error: Option<&str>) -> Response {
    let status = if error.is_some() { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    let ctx = json!({"lang": if lang == Lang::Zh { "zh-CN" } else { "en" }, "title": words(lang)["sign_in"],
        "t": words(lang), "token": token, "error": error});
    match render("signin_link.html", &ctx) {
        Ok(body) => html(status, body),
        Err(_) => html(StatusCode::INTERNAL_SERVER_ERROR, "closeloop failed to draw this page".into()),
    }
}

/// `GET /sign-in/link?token=…`: a button that signs in. Opening the link (or a chat's preview
/// of it) uses nothing; only the button's post does.
async fn link_page(headers: HeaderMap, axum::extract::RawQuery(raw): axum::extract::RawQuery) -> Response {
    let token = query_value(raw.as_deref(), "token").unwrap_or_default();
    link_form(lang_of(&headers), &token, None)
}

/// `POST /sign-in/link`: the link's session, once.
async fn link_sign_in(
    State(api): State<Api>,
    addr: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let lang = lang_of(&headers);
    let bytes = axum::body::to_bytes(body, 16 * 1024).await.unwrap_or_default();
    let token = form_fields(&bytes).get("token").and_then(Value::as_str).unwrap_or_default().to_string();
    let address = addr.map(|a| a.0 .0.ip().to_string()).unwrap_or_else(|| "unknown".into());
    let Ok(answer) = api.pool.submit(move |rt| rt.redeem_sign_in_link(&token, &address)) else {
        return html(StatusCode::SERVICE_UNAVAILABLE, "closeloop is busy; please try again".into());
    };
    match tokio::time::timeout(ANSWER_TIME, answer).await {
        Ok(Ok(Ok(session))) => signed_in(&api, &session),
        Ok(Ok(Err(_))) => link_form(lang, "", words(lang)["link_bad"].as_str()),
        _ => html(StatusCode::SERVICE_UNAVAILABLE, "closeloop is busy; please try again".into()),
    }
}

/// `POST /language` with `lang` (zh or en) and `back` (the page to return to): the member's
/// page language, kept for every device they sign in on.
async fn language(State(api): State<Api>, headers: HeaderMap, body: Body) -> Response {
    let bytes = axum::body::to_bytes(body, 16 * 1024).await.unwrap_or_default();
    let form = form_fields(&bytes);
    let chosen = if form.get("lang").and_then(Value::as_str) == Some("en") { Lang::En } else { Lang::Zh };
    // Back to a page of this site only.
    let back = form
        .get("back")
        .and_then(Value::as_str)
        .filter(|b| b.starts_with('/') && !b.starts_with("//") && !b.contains('\\'))
        .unwrap_or("/")
        .to_string();
    as_member(&api, &headers, Some(&form), move |rt, member, _, _| {
        rt.set_language(member, chosen)?;
        Ok(Page::Redirect(back))
    })
    .await
}

/// `POST /sign-out`.
async fn sign_out(State(api): State<Api>, headers: HeaderMap, body: Body) -> Response {
    let bytes = axum::body::to_bytes(body, 16 * 1024).await.unwrap_or_default();
    let form = form_fields(&bytes);
    let session = cookie(&headers, crate::http::v1::SESSION_COOKIE).unwrap_or_default();
    let mut r = as_member(&api, &headers, Some(&form), move |rt, _, _, _| {
        rt.sign_out(&session)?;
        Ok(Page::Redirect("/sign-in".into()))
    })
    .await;
    for name in [crate::http::v1::SESSION_COOKIE, CSRF_COOKIE] {
        if let Ok(v) = HeaderValue::from_str(&format!("{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_page_word_has_one_key_and_both_languages() {
        let mut seen = std::collections::BTreeSet::new();
        for (key, zh, en) in super::WORDS {
            assert!(seen.insert(key), "`{key}` is listed twice");
            assert!(!zh.is_empty() && !en.is_empty(), "`{key}` needs both languages");
            assert_eq!(zh.matches("{}").count(), en.matches("{}").count(), "`{key}`: the same blanks in both");
        }
    }
}
