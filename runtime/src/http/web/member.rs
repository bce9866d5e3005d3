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

const CSRF_COOKIE: &str = "closeloop_csrf";

/// The member page routes.
pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/", get(work))
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-in/link", get(link_page).post(link_sign_in))
        .route("/sign-out", post(sign_out))
        .route("/r/{form}/new", get(new_page).post(create))
        .route("/r/{form}/{id}", get(record_page))
        .route("/r/{form}/{id}/act/{action}", post(act))
        .route("/boards/{board}", get(board))
        .route("/approvals", get(approvals))
        .route("/approvals/{form}/{id}", post(decide))
        .route("/ops", get(ops_page))
        .route("/ops/apps", post(ops_apps))
}

/// An action's form that failed: the action, what was posted, the problems, and why.
type Failed<'a> = (&'a str, &'a Map<String, Value>, &'a [crate::values::FieldProblem], String);

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
            "on_behalf": "代审批：", "hours": "{} 小时", "apps": "已安装的应用", "revision": "版本",
            "upload": "校验或安装应用", "problems": "发现问题", "validate": "校验", "install": "安装",
            "valid": "校验通过，可以安装。", "installed": "已安装 {} 第 {} 版。"}),
        Lang::En => json!({"sign_in": "Sign in", "member": "Member id", "password": "Password", "my_work": "My work",
            "nothing": "Nothing waiting for you.", "tasks": "My tasks", "due": "due", "new": "New ", "save": "Save",
            "history": "History", "wrong": "The member id or password is wrong", "fix": "Please correct the marked fields.",
            "left_hours": "{} h left", "left_minutes": "{} min left", "late_hours": "{} h overdue", "late": "Overdue",
            "link_hint": "Press the button to sign in. The link works once.", "link_bad": "This sign-in link no longer works; ask for a new one.",
            "approvals": "Waiting for my approval", "comment": "Comment (required to reject)", "approve": "Approve",
            "reject": "Reject", "on_behalf": "On behalf of", "hours": "{} h", "apps": "Installed apps",
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

/// Hours and minutes to a deadline, as people say it.
fn left(t: &Value, due: &str, now: jiff::Timestamp) -> (String, bool) {
    let Ok(due) = due.parse::<jiff::Timestamp>() else { return (String::new(), false) };
    let secs = due.as_second() - now.as_second();
    let say = |key: &str, n: i64| t[key].as_str().unwrap_or("{}").replace("{}", &n.to_string());
    match secs {
        s if s < 0 => (say("late_hours", (-s) / 3600), true),
        s if s < 3600 => (say("left_minutes", s.max(60) / 60), false),
        s => (say("left_hours", s / 3600), false),
    }
}

/// `GET /`: my work.
async fn work(State(api): State<Api>, headers: HeaderMap) -> Response {
    let lang = lang_of(&headers);
    as_member(&api, &headers, None, move |rt, member, csrf| {
        let t = words(lang);
        let mut ctx = base(rt, member, csrf, lang, t["my_work"].as_str().unwrap_or_default())?;
        let now = rt.clock_now();
        let items: Vec<Value> = rt
            .work_of(member)?
            .into_iter()
            .map(|i| {
                let (text, late) = i.due.as_deref().map(|d| left(&t, d, now)).unwrap_or_default();
                let overdue = late || i.flagged.is_some();
                let text = match (&i.flagged, text.is_empty()) {
                    (Some(reason), true) => reason.clone(),
                    (Some(reason), false) => format!("{text} · {reason}"),
                    (None, _) => text,
                };
                json!({"form": i.form, "id": i.id, "title": i.title, "state": i.state, "left": text, "overdue": overdue})
            })
            .collect();
        let tasks: Vec<Value> = rt
            .tasks(Some(member), false, false)?
            .into_iter()
            .map(|task| json!({"form": task.form, "record": task.record, "title": task.title, "due": task.due,
                "overdue": task.overdue}))
            .collect();
        ctx.insert("items".into(), Value::Array(items));
        ctx.insert("tasks".into(), Value::Array(tasks));
        Ok(Page::Html(StatusCode::OK, render("work.html", &Value::Object(ctx))?))
    })
    .await
}

/// One input of a generated form.
fn input(field: &Field, lang: Lang, value: Option<&Value>, error: Option<&str>, required: bool) -> Option<Value> {
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
        FieldType::Bool => ("bool", "checkbox", None),
        // Tables, files, ranges, multi-choices and computed fields are not typed on this page.
        _ => return None,
    };
    let text = match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    };
    let options: Vec<Value> = field
        .options
        .iter()
        .flatten()
        .map(|o| json!({"value": o.value, "label": o.label.as_ref().map(|l| l.get(lang).to_string()).unwrap_or_else(|| o.value.clone())}))
        .collect();
    Some(json!({"id": field.id, "label": crate::values::field_name(field, lang), "kind": kind, "input": input,
        "step": step, "value": text, "options": options, "required": required,
        "help": field.help.as_ref().map(|h| h.get(lang).to_string()), "error": error}))
}

/// The fields a person types on a new record: not read-only, not computed, not filled by a
/// lookup; required ones first.
fn typed_fields(form: &crate::model::Form) -> Vec<&Field> {
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

/// Typed values from a form post: each field's text read as its type (as a CSV cell is), empty
/// ones left out; what cannot be read is a problem named by field.
fn typed(
    form: &crate::model::Form,
    names: &[&str],
    posted: &Map<String, Value>,
    zone: &jiff::tz::TimeZone,
) -> (Map<String, Value>, Vec<crate::values::FieldProblem>) {
    let mut data = Map::new();
    let mut problems = Vec::new();
    for name in names {
        let Some(field) = form.field(name) else { continue };
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

fn form_label(rt: &Runtime, form: &str, lang: Lang) -> Result<String, EngineError> {
    let f = rt.form_def(form)?;
    Ok(f.label.as_ref().map(|l| l.get(lang).to_string()).unwrap_or_else(|| form.to_string()))
}

fn new_form(
    rt: &Runtime,
    form: &str,
    member: &str,
    csrf: &str,
    lang: Lang,
    values: &Map<String, Value>,
    problems: &[crate::values::FieldProblem],
) -> Result<Page, EngineError> {
    let def = rt.form_def(form)?;
    let label = form_label(rt, form, lang)?;
    let t = words(lang);
    let mut ctx = base(rt, member, csrf, lang, &format!("{}{label}", t["new"].as_str().unwrap_or_default()))?;
    let error_of =
        |id: &str| problems.iter().find(|p| p.field.split(['[', '.']).next() == Some(id)).map(|p| p.message.as_str());
    let inputs: Vec<Value> = typed_fields(&def)
        .into_iter()
        .filter_map(|f| {
            // A new form starts from the field's default (an urgency of green).
            let value = values.get(&f.id).or(f.default.as_ref());
            input(f, lang, value, error_of(&f.id), f.required == Some(true))
        })
        .collect();
    ctx.insert("form".into(), json!(form));
    ctx.insert("form_label".into(), json!(label));
    ctx.insert("inputs".into(), Value::Array(inputs));
    if !problems.is_empty() {
        ctx.insert("error".into(), t["fix"].clone());
    }
    let status = if problems.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok(Page::Html(status, render("new.html", &Value::Object(ctx))?))
}

/// `GET /r/{form}/new`.
async fn new_page(State(api): State<Api>, headers: HeaderMap, Path(form): Path<String>) -> Response {
    let lang = lang_of(&headers);
    as_member(&api, &headers, None, move |rt, member, csrf| new_form(rt, &form, member, csrf, lang, &Map::new(), &[]))
        .await
}

/// `POST /r/{form}/new`: the record as the member; errors named per field, what was typed kept.
async fn create(State(api): State<Api>, headers: HeaderMap, Path(form): Path<String>, body: Body) -> Response {
    let lang = lang_of(&headers);
    let Ok(bytes) = axum::body::to_bytes(body, 256 * 1024).await else {
        return html(StatusCode::PAYLOAD_TOO_LARGE, "too large".into());
    };
    let posted = form_fields(&bytes);
    let kept = posted.clone();
    as_member(&api, &headers, Some(&posted), move |rt, member, csrf| {
        let def = rt.form_def(&form)?;
        let names: Vec<&str> = typed_fields(&def).into_iter().map(|f| f.id.as_str()).collect();
        let (data, mut problems) = typed(&def, &names, &kept, &rt.zone_of(Some(&form)));
        if problems.is_empty() {
            match rt.submit(&form, data, member) {
                Ok(r) => return Ok(Page::Redirect(format!("/r/{form}/{}", r.id))),
                Err(EngineError::Invalid(p)) => problems = p,
                Err(e) => return Err(e),
            }
        }
        new_form(rt, &form, member, csrf, lang, &kept, &problems)
    })
    .await
}

fn record_view(
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
    let title =
        def.title_field.as_deref().and_then(|t| record.data.get(t)).and_then(Value::as_str).unwrap_or(id).to_string();
    let mut ctx = base(rt, member, csrf, lang, &title)?;
    let shown: Vec<Value> = def
        .fields
        .iter()
        .filter_map(|f| record.data.get(&f.id).map(|v| (f, v)))
        .map(|(f, v)| {
            let text = match (f.kind, v) {
                (FieldType::Member, Value::String(m)) => rt.member(m).map(|m| m.name).unwrap_or_else(|_| m.clone()),
                (FieldType::Datetime, Value::String(at)) => crate::clock::shown(at, &zone),
                _ => crate::values::display(f, v, lang),
            };
            json!({"label": crate::values::field_name(f, lang), "text": text})
        })
        .collect();
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
                        problems.iter().find(|p| p.field == f.id).map(|p| p.message.as_str())
                    });
                    input(f, lang, value, error, true)
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
                        (Some(f), x) => crate::values::display(f, x, lang),
                        (None, x) => x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string()),
                    };
                    let name = field.map(|f| crate::values::field_name(f, lang)).unwrap_or_else(|| c.field.clone());
                    format!("{name}: {} → {}", show(&c.from), show(&c.to))
                })
                .collect();
            json!({"version": v.version, "at": crate::clock::shown(&v.at, &zone), "actor": who,
                "what": v.action.clone().unwrap_or(v.kind.clone()), "changes": changes})
        })
        .collect();
    ctx.insert("record".into(), json!(record));
    ctx.insert("state".into(), json!(state_label));
    ctx.insert("shown".into(), Value::Array(shown));
    ctx.insert("actions".into(), Value::Array(actions));
    ctx.insert("history".into(), Value::Array(history));
    let status = match &failed {
        Some((_, _, _, why)) => {
            ctx.insert("error".into(), json!(why));
            StatusCode::UNPROCESSABLE_ENTITY
        }
        None => StatusCode::OK,
    };
    Ok(Page::Html(status, render("record.html", &Value::Object(ctx))?))
}

/// `GET /r/{form}/{id}`.
async fn record_page(State(api): State<Api>, headers: HeaderMap, Path((form, id)): Path<(String, String)>) -> Response {
    let lang = lang_of(&headers);
    as_member(&api, &headers, None, move |rt, member, csrf| record_view(rt, &form, &id, member, csrf, lang, None)).await
}

/// `POST /r/{form}/{id}/act/{action}` with the fields the action requires.
async fn act(
    State(api): State<Api>,
    headers: HeaderMap,
    Path((form, id, action)): Path<(String, String, String)>,
    body: Body,
) -> Response {
    let lang = lang_of(&headers);
    let Ok(bytes) = axum::body::to_bytes(body, 256 * 1024).await else {
        return html(StatusCode::PAYLOAD_TOO_LARGE, "too large".into());
    };
    let posted = form_fields(&bytes);
    let kept = posted.clone();
    as_member(&api, &headers, Some(&posted), move |rt, member, csrf| {
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

/// `GET /boards/{board}`: the board as the member may see it, oldest first.
async fn board(State(api): State<Api>, headers: HeaderMap, Path(board): Path<String>) -> Response {
    let lang = lang_of(&headers);
    as_member(&api, &headers, None, move |rt, member, csrf| {
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

fn approvals_view(
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
async fn approvals(State(api): State<Api>, headers: HeaderMap) -> Response {
    let lang = lang_of(&headers);
    as_member(&api, &headers, None, move |rt, member, csrf| approvals_view(rt, member, csrf, lang, None)).await
}

/// `POST /approvals/{form}/{id}` with `decision` (approve or reject) and `comment`.
async fn decide(
    State(api): State<Api>,
    headers: HeaderMap,
    Path((form, id)): Path<(String, String)>,
    body: Body,
) -> Response {
    let lang = lang_of(&headers);
    let bytes = axum::body::to_bytes(body, 16 * 1024).await.unwrap_or_default();
    let posted = form_fields(&bytes);
    let decision = posted.get("decision").and_then(Value::as_str).unwrap_or_default().to_string();
    let comment = posted.get("comment").and_then(Value::as_str).unwrap_or_default().trim().to_string();
    as_member(&api, &headers, Some(&posted), move |rt, member, csrf| {
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

/// A diagnostic as the CLI prints it: where, what, the source line with a caret, the help.
fn diagnostic_view(d: &crate::Diagnostic, yaml: &str) -> Value {
    let source = yaml.lines().nth(d.line.saturating_sub(1)).map(str::to_string);
    let gutter = d.line.to_string();
    let pad = " ".repeat(gutter.len());
    let caret = format!("{}^", " ".repeat(d.column.saturating_sub(1)));
    json!({"head": format!("{}:{}:{}: {}[{}]: {}", d.file, d.line, d.column,
            if d.severity == crate::Severity::Error { "error" } else { "warning" }, d.code, d.message),
        "source": source, "gutter": gutter, "pad": pad, "caret": caret, "help": d.help})
}

fn ops_view(
    rt: &Runtime,
    member: &str,
    csrf: &str,
    lang: Lang,
    yaml: &str,
    outcome: Option<Result<String, Vec<crate::Diagnostic>>>,
) -> Result<Page, EngineError> {
    let me = rt.member(member)?;
    if !me.roles.iter().any(|r| r == crate::engine::records::access::OPS_ROLE) {
        return Err(EngineError::Refused(format!("the ops pages are for the role `ops`; `{member}` does not hold it")));
    }
    let t = words(lang);
    let mut ctx = base(rt, member, csrf, lang, t["apps"].as_str().unwrap_or_default())?;
    let apps: Vec<Value> =
        rt.apps().into_iter().map(|(id, revision)| json!({"id": id, "revision": revision})).collect();
    ctx.insert("apps".into(), Value::Array(apps));
    ctx.insert("yaml".into(), json!(yaml));
    let mut status = StatusCode::OK;
    match outcome {
        Some(Ok(said)) => {
            ctx.insert(
                if said.starts_with('✓') { "valid" } else { "installed" }.into(),
                json!(said.trim_start_matches('✓')),
            );
        }
        Some(Err(diagnostics)) => {
            status = StatusCode::UNPROCESSABLE_ENTITY;
            let shown: Vec<Value> = diagnostics.iter().map(|d| diagnostic_view(d, yaml)).collect();
            ctx.insert("diagnostics".into(), Value::Array(shown));
        }
        None => {}
    }
    Ok(Page::Html(status, render("ops.html", &Value::Object(ctx))?))
}

/// `GET /ops`: the installed apps, and a box to validate or install one (ops only).
async fn ops_page(State(api): State<Api>, headers: HeaderMap) -> Response {
    let lang = lang_of(&headers);
    as_member(&api, &headers, None, move |rt, member, csrf| ops_view(rt, member, csrf, lang, "", None)).await
}

/// `POST /ops/apps` with `app_yaml` and `step` (validate or install): the diagnostics located
/// as the CLI shows them, or the installed revision.
async fn ops_apps(State(api): State<Api>, headers: HeaderMap, body: Body) -> Response {
    let lang = lang_of(&headers);
    let Ok(bytes) = axum::body::to_bytes(body, 2 * 1024 * 1024).await else {
        return html(StatusCode::PAYLOAD_TOO_LARGE, "an app is at most 2 MiB here".into());
    };
    let posted = form_fields(&bytes);
    let yaml = posted.get("app_yaml").and_then(Value::as_str).unwrap_or_default().replace("\r\n", "\n");
    let install = posted.get("step").and_then(Value::as_str) == Some("install");
    as_member(&api, &headers, Some(&posted), move |rt, member, csrf| {
        // Who may see the page is checked first, by drawing it.
        ops_view(rt, member, csrf, lang, "", None)?;
        let files = crate::AppFiles { app_yaml: yaml.clone(), ..Default::default() };
        let t = words(lang);
        let outcome = if install {
            match rt.install(&files, member, false) {
                Ok(report) => Ok(t["installed"].as_str().unwrap_or("{} {}").replacen("{}", &report.app, 1).replacen(
                    "{}",
                    &report.revision.to_string(),
                    1,
                )),
                Err(EngineError::InvalidApp(d) | EngineError::Orphans(d)) => Err(d),
                Err(e) => return Err(e),
            }
        } else {
            let loaded = rt.check_app(&files);
            if loaded.is_valid() {
                Ok(format!("✓{}", t["valid"].as_str().unwrap_or_default()))
            } else {
                Err(loaded.diagnostics)
            }
        };
        ops_view(rt, member, csrf, lang, &yaml, Some(outcome))
    })
    .await
}
