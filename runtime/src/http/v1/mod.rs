//! `/api/v1`: the JSON API for the people in the loops and the systems around them. Every
//! request acts as one member, signed in with a session cookie (`POST /api/v1/sign-in`) or an
//! API token (`Authorization: Bearer cl_…`, `closeloop tokens create`). What they may read and
//! change is the engine's to decide (`Runtime::get_as`, the write gate), never this layer's: a
//! record they may not read is 404, a field they may not write is refused by name.
//!
//! - A session's writes carry `X-CSRF-Token` (given at sign-in); a token's do not need it.
//! - A `read` token may only read; an `events` token is for `POST /api/events/…` only.
//! - `PATCH` takes `If-Match: "VERSION"` (the `ETag` of the read) and answers 409 when the
//!   record changed since; without it, 428.
//! - Errors are RFC 9457 problem details: `type`, `title`, `status`, `detail`, and `problems`
//!   naming each field.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use serde_json::{json, Map, Value};

use super::{Api, Busy, ClientAddr, ANSWER_TIME};
use crate::engine::{EngineError, ErrorKind, Principal, Runtime, TokenScope};
use crate::store::{ListQuery, SortOrder};

mod records;
mod session;
mod table;
mod work;

pub use crate::http::uploads::MAX_UPLOAD;
pub use table::openapi;
pub(crate) use table::routes;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "closeloop_session";

/// The largest body `/api/v1` reads (a record with its tables).
pub const V1_MAX_BODY: usize = 256 * 1024;

/// The most records one page holds.
pub const MAX_PAGE: u64 = 200;

/// An RFC 9457 problem.
pub(super) fn problem(status: StatusCode, detail: impl Into<String>, problems: Vec<Value>) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = json!({"type": "about:blank", "title": title, "status": status.as_u16(), "detail": detail.into(),
        "problems": problems});
    let mut r = (status, Json(body)).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    r
}

fn engine_problem(e: EngineError) -> Response {
    let problems: Vec<Value> = match &e {
        EngineError::Invalid(p) => p.iter().map(|p| json!(p)).collect(),
        _ => Vec::new(),
    };
    let status = match e.kind() {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Refused => StatusCode::FORBIDDEN,
        ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Busy => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Locked => StatusCode::TOO_MANY_REQUESTS,
    };
    // A store failure says what failed, not the database's words.
    let detail = if status == StatusCode::INTERNAL_SERVER_ERROR {
        "closeloop failed; see its log".into()
    } else {
        e.to_string()
    };
    let mut r = problem(status, detail, problems);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

/// What a request proves about who sends it.
#[derive(Debug, Clone)]
enum Credential {
    Bearer(String),
    Session { id: String, csrf: Option<String> },
}

fn credential(headers: &HeaderMap) -> Option<Credential> {
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
        let (scheme, token) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
    });
    if let Some(token) = bearer {
        return Some(Credential::Bearer(token));
    }
    let session = cookie(headers, SESSION_COOKIE)?;
    let csrf = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_string);
    Some(Credential::Session { id: session, csrf })
}

/// A cookie's value from a request.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Who acts, checked in the worker: the token or session, its scope for this method, and for
/// a session's write the CSRF token.
fn principal(rt: &mut Runtime, credential: Option<Credential>, method: &Method) -> Result<Principal, EngineError> {
    let writes = method != Method::GET && method != Method::HEAD;
    match credential {
        None => Err(EngineError::Unauthorized(
            "sign in (POST /api/v1/sign-in) or send `Authorization: Bearer TOKEN`".into(),
        )),
        Some(Credential::Bearer(secret)) => {
            let p = rt.token(&secret)?;
            match p.scope {
                Some(TokenScope::Write) => Ok(p),
                Some(TokenScope::Read) if !writes => Ok(p),
                Some(TokenScope::Read) => Err(EngineError::Refused("this token may only read".into())),
                _ => Err(EngineError::Refused("this token may only post events (/api/events/…)".into())),
            }
        }
        Some(Credential::Session { id, csrf }) => {
            let p = rt.session(&id)?;
            let matches = csrf.is_some_and(|c| Some(crate::store::sha256_hex(c.as_bytes())) == p.csrf);
            if writes && !matches {
                return Err(EngineError::Refused(
                    "a write with a session needs the `X-CSRF-Token` header given at sign-in".into(),
                ));
            }
            Ok(p)
        }
    }
}

/// Runs `job` on an engine worker as the request's member and answers with its JSON.
async fn as_member(
    api: &Api,
    headers: &HeaderMap,
    method: Method,
    job: impl FnOnce(&mut Runtime, &str) -> Result<(StatusCode, Value, Option<i64>), EngineError> + Send + 'static,
) -> Response {
    let Ok(_admitted) = api.admitted.clone().try_acquire_owned() else { return engine_problem(busy()) };
    let credential = credential(headers);
    let answer = match api.pool.submit(move |rt| {
        let who = principal(rt, credential, &method)?;
        job(rt, &who.member)
    }) {
        Ok(answer) => answer,
        Err(Busy) => return engine_problem(busy()),
    };
    match tokio::time::timeout(ANSWER_TIME, answer).await {
        Err(_) => problem(StatusCode::GATEWAY_TIMEOUT, "the engine did not answer in time", Vec::new()),
        Ok(Err(_)) => problem(StatusCode::INTERNAL_SERVER_ERROR, "the engine worker failed", Vec::new()),
        Ok(Ok(Err(e))) => engine_problem(e),
        Ok(Ok(Ok((status, body, version)))) => {
            let mut r = (status, Json(body)).into_response();
            if let Some(v) = version.and_then(|v| HeaderValue::from_str(&format!("\"{v}\"")).ok()) {
                r.headers_mut().insert(header::ETAG, v);
            }
            r
        }
    }
}

fn busy() -> EngineError {
    EngineError::Store(crate::store::StoreError::Busy)
}

async fn body_json(body: Body) -> Result<Map<String, Value>, Response> {
    let bytes = axum::body::to_bytes(body, V1_MAX_BODY).await.map_err(|_| {
        problem(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is over {V1_MAX_BODY} bytes"), Vec::new())
    })?;
    if bytes.is_empty() {
        return Ok(Map::new());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| problem(StatusCode::BAD_REQUEST, format!("the body must be a JSON object: {e}"), Vec::new()))
}

fn record_json(r: &crate::engine::Record) -> (StatusCode, Value, Option<i64>) {
    (StatusCode::OK, json!(r), Some(r.version))
}
