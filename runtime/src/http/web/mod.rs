//! The pages people open in a browser, rendered on the server from the installed apps: no
//! per-app HTML, no JavaScript, templates and the stylesheet embedded in the binary. Every
//! page carries a Content-Security-Policy with no script at all and `frame-ancestors 'none'`;
//! every value is escaped by the template engine (auto-escaping for `.html`).
//!
//! - `GET /sign/{token}`: the customer's signing page behind the QR code: the approved version
//!   as the customer may see it (no floor price, risk grade, internal summary or member id),
//!   a name to type and a box to tick; or a clear page for a used, expired, superseded or
//!   invalid link. A forged token and an unknown one get the same page.
//! - `POST /sign/{token}`: signs, then shows the signed page (303, so a reload does not post
//!   again); `GET /sign/{token}/pdf` downloads the signed PDF.
//! - `GET /assets/app.css`.

use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::{json, Value};

mod apply;
mod member;
mod multipart;

use super::{Api, Busy, ClientAddr, ANSWER_TIME};
use crate::engine::approvals::page::{LinkState, SignPage};
use crate::engine::{EngineError, Runtime};

/// The content security policy of every page: nothing runs, nothing frames it.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

const CSS: &str = include_str!("app.css");

/// The page templates, compiled into the binary.
const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("layout.html")),
    ("sign.html", include_str!("sign.html")),
    ("signin.html", include_str!("signin.html")),
    ("signin_link.html", include_str!("signin_link.html")),
    ("work.html", include_str!("work.html")),
    ("work_items.html", include_str!("work_items.html")),
    ("fields.html", include_str!("fields.html")),
    ("new.html", include_str!("new.html")),
    ("tables.html", include_str!("tables.html")),
    ("record.html", include_str!("record.html")),
    ("board.html", include_str!("board.html")),
    ("approvals.html", include_str!("approvals.html")),
    ("ops.html", include_str!("ops.html")),
    ("list.html", include_str!("list.html")),
    ("task.html", include_str!("task.html")),
    ("team.html", include_str!("team.html")),
    ("ops_menu.html", include_str!("ops_menu.html")),
    ("ops_members.html", include_str!("ops_members.html")),
    ("ops_channels.html", include_str!("ops_channels.html")),
    ("ops_outbox.html", include_str!("ops_outbox.html")),
    ("ops_audit.html", include_str!("ops_audit.html")),
    ("apply.html", include_str!("apply.html")),
];

fn templates() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        env.set_recursion_limit(32);
        // Names ending in .html are escaped by default; these are all compiled in, so a failure
        // to add one is a bug `every_template_compiles` catches.
        for (name, source) in TEMPLATES {
            let _ = env.add_template(name, source);
        }
        env
    })
}

/// The page routes.
pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/assets/app.css", get(css))
        .route("/sign/{token}", get(sign_page).post(sign))
        .route("/sign/{token}/pdf", get(sign_pdf))
        .route("/apply/{event}", get(apply::apply_page).post(apply::apply))
        .merge(member::routes())
}

/// Text made safe to put in a page (for the few answers not drawn from a template).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// The page language the browser asks for: English when it asks for English first, else Chinese.
fn lang_of(headers: &HeaderMap) -> crate::model::Lang {
    let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if accept.trim_start().to_ascii_lowercase().starts_with("en") {
        crate::model::Lang::En
    } else {
        crate::model::Lang::Zh
    }
}

/// A public page's form posted from another site: refused (the page posts to itself; a
/// browser says where a post comes from in `Origin`).
fn cross_site(headers: &HeaderMap) -> Option<Response> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    origin
        .is_some_and(|o| o != "null" && o.split("://").nth(1) != Some(host))
        .then(|| html(StatusCode::FORBIDDEN, "this form can only be sent from its own page".into()))
}

/// Headers every page carries.
fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    secure(r)
}

async fn css() -> Response {
    let mut r = CSS.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    r.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

/// The words of the signing page, in both languages (a customer's language is not known).
fn words() -> Value {
    json!({
        "serial": "编号 / No.",
        "details": "内容 / Details",
        "clauses": "条款 / Clauses",
        "sign_title": "确认并签署 / Confirm and sign",
        "sign_hint": "请核对以上内容，输入您的姓名并确认。链接有效期至 / Please check the above, type your name and confirm. This link works until",
        "name": "签署人姓名 / Your name",
        "agree": "我已阅读并同意以上内容 / I have read and agree to the above",
        "submit": "签署 / Sign",
        "signed_title": "已签署 / Signed",
        "signed_by": "签署人 / Signed by",
        "download": "下载已签署的 PDF / Download the signed PDF",
        "invalid_title": "链接无效 / This link is not valid",
        "invalid_text": "请使用销售发给您的完整链接，或联系您的销售获取新链接。 / Please use the whole link your sales contact sent, or ask them for a new one.",
        "expired_title": "链接已过期 / This link has expired",
        "expired_text": "请联系您的销售获取新的签署链接。 / Please ask your sales contact for a new signing link.",
        "superseded_title": "报价已更新 / This quote has changed",
        "superseded_text": "您收到的链接对应的是旧版本，请联系您的销售获取最新版本的签署链接。 / The link is for an earlier version; please ask your sales contact for a link to the current one.",
        "busy_title": "请稍后再试 / Please try again later",
        "busy_text": "尝试次数过多，请 15 分钟后再试。 / Too many attempts; please try again in 15 minutes.",
    })
}

fn render_sign(token: &str, page: &SignPage, zone: &jiff::tz::TimeZone, error: Option<&str>, name: &str) -> Response {
    let local = |at: &str| crate::clock::shown(at, zone);
    let (state, status, extra) = match &page.state {
        LinkState::Open { expires_at } => ("open", StatusCode::OK, json!({"expires_at": local(expires_at)})),
        LinkState::Signed { signer, at } => {
            ("signed", StatusCode::OK, json!({"signer": signer, "signed_at": local(at)}))
        }
        LinkState::Expired => ("expired", StatusCode::GONE, json!({})),
        LinkState::Superseded => ("superseded", StatusCode::CONFLICT, json!({})),
        LinkState::Invalid => ("invalid", StatusCode::NOT_FOUND, json!({})),
    };
    let sheet = page.sheet.as_ref().map(|s| {
        json!({"title": s.title, "serial": s.serial, "fields": s.fields, "tables": s.tables,
            "clauses": s.clauses, "seller": s.seller})
    });
    let title = sheet.as_ref().and_then(|s| s["title"].as_str()).unwrap_or("closeloop").to_string();
    let mut ctx = json!({"lang": "zh-CN", "title": title, "t": words(), "state": state, "token": token,
        "sheet": sheet, "error": error, "name": name});
    if let (Some(obj), Some(more)) = (ctx.as_object_mut(), extra.as_object()) {
        obj.extend(more.clone());
    }
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { status };
    match templates()
        .get_template("sign.html")
        .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(&ctx))))
    {
        Ok(body) => html(status, body),
        Err(_) => html(StatusCode::INTERNAL_SERVER_ERROR, "closeloop failed to draw this page".into()),
    }
}

fn busy_page() -> Response {
    let page = SignPage { state: LinkState::Invalid, sheet: None, form: String::new(), record: String::new() };
    let mut r = render_sign("", &page, &jiff::tz::TimeZone::UTC, None, "");
    *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    r
}

fn client(addr: Option<Extension<ClientAddr>>) -> String {
    addr.map(|a| a.0 .0.ip().to_string()).unwrap_or_else(|| "unknown".into())
}

/// Runs `job` on an engine worker.
async fn on_worker<T: Send + 'static>(
    api: &Api,
    job: impl FnOnce(&mut Runtime) -> Result<T, EngineError> + Send + 'static,
) -> Result<T, Response> {
    let answer = api.pool.submit(job).map_err(|Busy| busy_page())?;
    match tokio::time::timeout(ANSWER_TIME, answer).await {
        Ok(Ok(Ok(v))) => Ok(v),
        Ok(Ok(Err(EngineError::Locked(_)))) => Err(busy_page()),
        _ => Err(html(StatusCode::SERVICE_UNAVAILABLE, "closeloop is busy; please try again".into())),
    }
}

/// The page for a token, and the zone to show times in; an invalid token counts against the
/// client's address (a guess), and too many guesses wait.
fn page_for(rt: &mut Runtime, token: &str, address: &str) -> Result<(SignPage, jiff::tz::TimeZone), EngineError> {
    rt.sign_throttle(address)?;
    let page = rt.sign_page(token)?;
    if page.state == LinkState::Invalid {
        rt.note_sign_guess(address)?;
    }
    let zone = rt.zone_of(Some(&page.form));
    Ok((page, zone))
}

/// `GET /sign/{token}`.
async fn sign_page(State(api): State<Api>, addr: Option<Extension<ClientAddr>>, Path(token): Path<String>) -> Response {
    let address = client(addr);
    let t = token.clone();
    match on_worker(&api, move |rt| page_for(rt, &t, &address)).await {
        Ok((page, zone)) => render_sign(&token, &page, &zone, None, ""),
        Err(r) => r,
    }
}

/// `POST /sign/{token}` with `name` and `agree`.
async fn sign(
    State(api): State<Api>,
    addr: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    Path(token): Path<String>,
    body: Body,
) -> Response {
    if let Some(refused) = cross_site(&headers) {
        return refused;
    }
    let Ok(bytes) = axum::body::to_bytes(body, 16 * 1024).await else {
        return html(StatusCode::PAYLOAD_TOO_LARGE, "too large".into());
    };
    let form = String::from_utf8_lossy(&bytes).into_owned();
    let field = |name: &str| {
        form.split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| super::reports::decode(v))
            .unwrap_or_default()
    };
    let (name, agreed) = (field("name").trim().to_string(), field("agree") == "yes");
    let address = client(addr);
    let t = token.clone();
    let n = name.clone();
    let outcome = on_worker(&api, move |rt| {
        let (page, zone) = page_for(rt, &t, &address)?;
        if !matches!(page.state, LinkState::Open { .. }) {
            return Ok::<_, EngineError>((page, zone, None::<String>));
        }
        if !agreed || n.is_empty() {
            let why = "请输入姓名并勾选确认 / Please type your name and tick the box";
            return Ok((page, zone, Some(why.to_string())));
        }
        match rt.sign(&t, &n) {
            Ok(_) => Ok((page, zone, None)),
            Err(EngineError::Input(why) | EngineError::Refused(why)) => Ok((page, zone, Some(why))),
            Err(e) => Err(e),
        }
    })
    .await;
    match outcome {
        Ok((page, zone, Some(why))) => render_sign(&token, &page, &zone, Some(&why), &name),
        Ok((page, zone, None)) if !matches!(page.state, LinkState::Open { .. }) => {
            render_sign(&token, &page, &zone, None, "")
        }
        Ok(_) => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("/sign/{token}")) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            secure(r)
        }
        Err(r) => r,
    }
}

/// `GET /sign/{token}/pdf`: the signed PDF, for the link that signed it.
async fn sign_pdf(State(api): State<Api>, addr: Option<Extension<ClientAddr>>, Path(token): Path<String>) -> Response {
    let Some(font) = api.pdf_font.clone() else {
        return html(StatusCode::SERVICE_UNAVAILABLE, "PDFs are not available on this server (no CJK font)".into());
    };
    let address = client(addr);
    let t = token.clone();
    let pdf = on_worker(&api, move |rt| {
        let (page, _) = page_for(rt, &t, &address)?;
        match page.state {
            LinkState::Signed { .. } => {
                rt.record_pdf(&page.form, &page.record, font.to_vec(), 0).map(|pdf| Some((page.record, pdf)))
            }
            _ => Ok(None),
        }
    })
    .await;
    match pdf {
        Ok(Some((record, bytes))) => {
            let mut r = bytes.into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/pdf"));
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{record}.pdf\"")) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            secure(r)
        }
        Ok(None) => html(StatusCode::NOT_FOUND, "this link has not signed anything yet".into()),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_compiles() {
        let mut env = minijinja::Environment::new();
        for (name, source) in super::TEMPLATES {
            env.add_template(name, source).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for (name, _) in super::TEMPLATES {
            env.get_template(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
