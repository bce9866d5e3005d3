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

use super::{html, secure, templates};
use crate::engine::{EngineError, Runtime};
use crate::http::v1::cookie;
use crate::http::{Api, Busy, ClientAddr, ANSWER_TIME};
use crate::model::{Field, FieldType, Lang};

mod ops;
mod records;
mod work;

use ops::{ops_apps, ops_page};
use records::{act, create, list, new_page, record_page, work};
use work::{approvals, board, decide};

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
        .route("/r/{form}/{id}/act/{action}", post(act))
        .route("/boards/{board}", get(board))
        .route("/approvals", get(approvals))
        .route("/approvals/{form}/{id}", post(decide))
        .route("/ops", get(ops_page))
        .route("/ops/apps", post(ops_apps))
}

/// What a page job answers.
enum Page {
    Html(StatusCode, String),
    Redirect(String),
}

fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    secure(r)
}

fn lang_of(headers: &HeaderMap) -> Lang {
    let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if accept.trim_start().to_ascii_lowercase().starts_with("en") {
        Lang::En
    } else {
        Lang::Zh
    }
}

fn words(lang: Lang) -> Value {
    match lang {
        Lang::Zh => json!({"sign_in": "登录", "member": "成员编号", "password": "密码", "my_work": "我的工作",
            "nothing": "暂无待办记录。", "tasks": "我的任务", "due": "截止", "new": "新建", "save": "保存",
            "history": "历史", "wrong": "成员编号或密码错误", "fix": "请修改标出的内容后再提交。",
            "left_hours": "还剩 {} 小时", "left_minutes": "还剩 {} 分钟", "late_hours": "已超时 {} 小时", "late": "已超时",
            "link_hint": "点击下方按钮登录。此链接仅可使用一次。", "link_bad": "登录链接已失效，请重新获取。",
            "approvals": "待我审批", "comment": "审批意见（驳回时必填）", "approve": "同意", "reject": "驳回",
            "on_behalf": "代审批：", "hours": "{} 小时", "more": "下一页", "apps": "已安装的应用", "revision": "版本",
            "upload": "校验或安装应用", "problems": "发现问题", "validate": "校验", "install": "安装",
            "valid": "校验通过，可以安装。", "installed": "已安装 {} 第 {} 版。"}),
        Lang::En => json!({"sign_in": "Sign in", "member": "Member id", "password": "Password", "my_work": "My work",
            "nothing": "Nothing waiting for you.", "tasks": "My tasks", "due": "due", "new": "New ", "save": "Save",
            "history": "History", "wrong": "The member id or password is wrong", "fix": "Please correct the marked fields.",
            "left_hours": "{} h left", "left_minutes": "{} min left", "late_hours": "{} h overdue", "late": "Overdue",
            "link_hint": "Press the button to sign in. The link works once.", "link_bad": "This sign-in link no longer works; ask for a new one.",
            "approvals": "Waiting for my approval", "comment": "Comment (required to reject)", "approve": "Approve",
            "reject": "Reject", "on_behalf": "On behalf of", "hours": "{} h", "more": "Next page", "apps": "Installed apps",
            "revision": "revision", "upload": "Validate or install an app", "problems": "Problems found",
            "validate": "Validate", "install": "Install", "valid": "Valid: it can be installed.",
            "installed": "Installed {} revision {}."}),
    }
}

fn nav(lang: Lang) -> Value {
    match lang {
        Lang::Zh => {
            json!({"label": "主菜单", "work": "我的工作", "new": "新建", "sign_out": "退出", "approvals": "审批", "ops": "运维"})
        }
        Lang::En => {
            json!({"label": "Main menu", "work": "My work", "new": "New ", "sign_out": "Sign out", "approvals": "Approvals", "ops": "Ops"})
        }
    }
}

/// A form post's fields.
fn form_fields(bytes: &[u8]) -> Map<String, Value> {
    String::from_utf8_lossy(bytes)
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (crate::http::reports::decode(k), Value::String(crate::http::reports::decode(v))))
        .collect()
}

/// The signed-in member's page: the session is checked on the worker, and for a post the CSRF
/// token too; `job` renders the page with the member and the CSRF token to embed.
async fn as_member(
    api: &Api,
    headers: &HeaderMap,
    posted: Option<&Map<String, Value>>,
    job: impl FnOnce(&mut Runtime, &str, &str) -> Result<Page, EngineError> + Send + 'static,
) -> Response {
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
        job(rt, &who.member, &csrf)
    });
    let Ok(answer) = answer.map_err(|Busy| ()) else {
        return html(StatusCode::SERVICE_UNAVAILABLE, "closeloop is busy; please try again".into());
    };
    match tokio::time::timeout(ANSWER_TIME, answer).await {
        Ok(Ok(Ok(Page::Html(status, body)))) => html(status, body),
        Ok(Ok(Ok(Page::Redirect(to)))) => redirect(&to),
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
    let token = raw
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| crate::http::reports::decode(v))
        .unwrap_or_default();
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

/// `POST /sign-out`.
async fn sign_out(State(api): State<Api>, headers: HeaderMap, body: Body) -> Response {
    let bytes = axum::body::to_bytes(body, 16 * 1024).await.unwrap_or_default();
    let form = form_fields(&bytes);
    let session = cookie(&headers, crate::http::v1::SESSION_COOKIE).unwrap_or_default();
    let mut r = as_member(&api, &headers, Some(&form), move |rt, _, _| {
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
