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

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "closeloop_session";
/// The largest body `/api/v1` reads (a record with its tables).
pub const V1_MAX_BODY: usize = 256 * 1024;
/// The most records one page holds.
pub const MAX_PAGE: u64 = 200;

/// One endpoint: the router and the OpenAPI document are both built from [`ENDPOINTS`], so
/// the document cannot describe a route that is not served, nor miss one that is.
struct Endpoint {
    method: &'static str,
    path: &'static str,
    handler: Handler,
    summary: &'static str,
    /// The request body's schema (a component name), if it takes one.
    body: Option<&'static str>,
    /// The success status and its schema (a component name).
    ok: (u16, &'static str),
    /// Query parameters: name, JSON type, description.
    query: &'static [(&'static str, &'static str, &'static str)],
    /// Header parameters that are required: name, description.
    headers: &'static [(&'static str, &'static str)],
    /// False for sign-in, which needs no credential.
    secured: bool,
}

#[derive(Clone, Copy)]
enum Handler {
    SignIn,
    SignInLink,
    RedeemLink,
    SignOut,
    SignOutEverywhere,
    Me,
    Members,
    Apps,
    Form,
    List,
    Create,
    Read,
    Patch,
    History,
    Activity,
    Act,
    Approvals,
    Decide,
    Tasks,
    TaskDone,
    Upload,
    Board,
    OpenApi,
}

const LIST_QUERY: &[(&str, &str, &str)] = &[
    ("state", "string", "only records in this state"),
    ("owner", "string", "only records this member owns"),
    ("sort", "string", "a field, `created_at` (default), `updated_at` or `id`"),
    ("order", "string", "`asc` (default) or `desc`"),
    ("limit", "integer", "at most this many (1 to 200; default 50)"),
    ("cursor", "integer", "where the page starts: the previous page's `next_cursor`"),
];

const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: "post",
        path: "/api/v1/sign-in",
        handler: Handler::SignIn,
        summary: "Sign in with a member id and password; sets the session cookie and answers the CSRF token",
        body: Some("SignIn"),
        ok: (200, "Session"),
        query: &[],
        headers: &[],
        secured: false,
    },
    Endpoint {
        method: "post",
        path: "/api/v1/sign-in-link",
        handler: Handler::SignInLink,
        summary: "Send the member a one-time sign-in link by SMS or email (the same answer whoever asks)",
        body: Some("LinkRequest"),
        ok: (202, "Object"),
        query: &[],
        headers: &[],
        secured: false,
    },
    Endpoint {
        method: "post",
        path: "/api/v1/sign-in-link/redeem",
        handler: Handler::RedeemLink,
        summary: "Sign in with a link's token, once; sets the session cookie",
        body: Some("LinkToken"),
        ok: (200, "Session"),
        query: &[],
        headers: &[],
        secured: false,
    },
    Endpoint {
        method: "post",
        path: "/api/v1/sign-out",
        handler: Handler::SignOut,
        summary: "End this session",
        body: None,
        ok: (200, "Object"),
        query: &[],
        headers: &[],
        secured: true,
    },
    Endpoint {
        method: "post",
        path: "/api/v1/sign-out-everywhere",
        handler: Handler::SignOutEverywhere,
        summary: "End every session of the member",
        body: None,
        ok: (200, "Object"),
        query: &[],
        headers: &[],
        secured: true,
    },
    Endpoint {
        method: "get",
        path: "/api/v1/me",
        handler: Handler::Me,
        summary: "The member signed in",
        body: None,
        ok: (200, "Member"),
        query: &[],
        headers: &[],
        secured: true,
    },
    Endpoint {
        method: "get",
        path: "/api/v1/members",
        handler: Handler::Members,
        summary: "The member directory, for ops (the role `ops`)",
        body: None,
        ok: (200, "List"),
        query: &[],
        headers: &[],
        secured: true,
    },
    Endpoint {
        method: "get",
        path: "/api/v1/apps",
        handler: Handler::Apps,
        summary: "The installed apps and their forms (id and label), for a client's navigation",
        body: None,
        ok: (200, "List"),
        query: &[],
        headers: &[],
        secured: true,
    },
    Endpoint {
        method: "get",
        path: "/api/v1/forms/{form}",
        handler: Handler::Form,
        summary: "A form's definition as the member sees it",
        body: None,
        ok: (200, "Object"),
        query: &[],
        headers: &[],
        secured: true,
    },
    Endpoint {
        method: "get",
        path: "/api/v1/records/{form}",
        handler: Handler::List,
        summary: "The records the member may read, a page at a time",
        body: None,
        ok: (200, "Page"),
        query: LIST_QUERY,
        headers: &[],
        secured: true,
    },
    Endpoint {
        method: "post",
        path: "/api/v1/records/{form}",
        handler: Handler::Create,
        summary: "Create a record as the member",
        body: Some("Fields"),
        ok: (201, "Record"),
        query: &[],
        headers: &[],
        secured: true,
    },
    Endpoint {
        method: "get",
        path: "/api/v1/records/{form}/{id}",
        handler: Handler::Read,
        summary: "A record (404 when the member may not read it); ETag is its version",
        body: None,
        ok: (200, "Record"),
        query: &[],
        headers: &[],
        secured: true,
    },
    Endpoint {
        method: "patch",
        path: "/api/v1/records/{form}/{id}",
        handler: Handler::Patch,
        summary: "Change fields of the version read (If-Match); 409 when it changed since",
        body: Some("Fields"),
        ok: (200, "Record"),
        query: &[],
        headers: &[("If-Match", "the ETag of the version read, e.g. \"3\"")],
        secured: true,
    },
    Endpoint {
        method: "get",
        path: "/api/v1/records/{form}/{id}/history",
        handler: Handler::History,
        summary: "A record's versions, without changes to fields hidden from the member",
        body: None,
        ok: (200, "History"),
        query: &[],
        headers: &[],
        secured: true,
    },
    Endpoint {
        method: "get",
        path: "/api/v1/records/{form}/{id}/activity",
        handler: Handler::Activity,
        summary: "What automations, timers, events and tasks did to a record, without fields hidden from the member",
        body: None,
        ok: (200, "List"),
        query: &[],
        headers: &[],
        secured: true,
    },
    Endpoint {
        method: "post",
        path: "/api/v1/records/{form}/{id}/actions/{action}",
        handler: Handler::Act,
        summary: "Do an action, with the fields it needs",
        body: Some("Fields"),
        ok: (200, "Record"),
        query: &[],
        headers: &[],
        secured: true,
    },
    Endpoint {
        method: "get",
        path: "/api/v1/approvals",
        handler: Handler::Approvals,
        summary: "The approval steps waiting for the member",
        body: None,
        ok: (200, "List"),
        query: &[],
        headers: &[],
        secured: true,
    },
    Endpoint {
        method: "post",
        path: "/api/v1/approvals/{form}/{id}/{decision}",
        handler: Handler::Decide,
        summary: "Approve, reject (a comment is required) or recall",
        body: Some("Decision"),
        ok: (200, "Object"),
        query: &[],
        headers: &[],
        secured: true,
    },
    Endpoint {
        method: "get",
        path: "/api/v1/tasks",
        handler: Handler::Tasks,
        summary: "The member's open SOP tasks, soonest due first",
        body: None,
        ok: (200, "List"),
        query: &[("overdue", "boolean", "only those past their due time")],
        headers: &[],
        secured: true,
    },
    Endpoint {
        method: "post",
        path: "/api/v1/tasks/{task}/done",
        handler: Handler::TaskDone,
        summary: "Complete a task with its evidence",
        body: Some("Evidence"),
        ok: (200, "Object"),
        query: &[],
        headers: &[],
        secured: true,
    },
    Endpoint {
        method: "post",
        path: "/api/v1/files",
        handler: Handler::Upload,
        summary:
            "Upload an evidence file (JPEG, PNG, WebP, HEIC or PDF, at most 10 MiB) as the raw body; answers its id",
        body: Some("File"),
        ok: (201, "Upload"),
        query: &[],
        headers: &[],
        secured: true,
    },
    Endpoint {
        method: "get",
        path: "/api/v1/boards/{board}",
        handler: Handler::Board,
        summary: "A board as the member sees it (its roles, its scope, the records they may read)",
        body: None,
        ok: (200, "List"),
        query: &[],
        headers: &[],
        secured: true,
    },
    Endpoint {
        method: "get",
        path: "/api/v1/openapi.json",
        handler: Handler::OpenApi,
        summary: "This document",
        body: None,
        ok: (200, "Object"),
        query: &[],
        headers: &[],
        secured: false,
    },
];

/// The `/api/v1` routes, from [`ENDPOINTS`].
pub(super) fn routes() -> Router<Api> {
    let mut paths: Vec<&str> = Vec::new();
    for e in ENDPOINTS {
        if !paths.contains(&e.path) {
            paths.push(e.path);
        }
    }
    paths.into_iter().fold(Router::new(), |router, path| {
        let on_path = ENDPOINTS.iter().filter(|e| e.path == path);
        let methods = on_path.fold(axum::routing::MethodRouter::new(), |m, e| match e.handler {
            Handler::SignIn => m.post(sign_in),
            Handler::SignInLink => m.post(sign_in_link),
            Handler::RedeemLink => m.post(redeem_link),
            Handler::SignOut => m.post(sign_out),
            Handler::SignOutEverywhere => m.post(sign_out_everywhere),
            Handler::Me => m.get(me),
            Handler::Apps => m.get(apps),
            Handler::Members => m.get(members),
            Handler::Form => m.get(form_definition),
            Handler::List => m.get(list),
            Handler::Create => m.post(create),
            Handler::Read => m.get(read),
            Handler::Patch => m.patch(patch),
            Handler::History => m.get(history),
            Handler::Activity => m.get(activity),
            Handler::Act => m.post(act),
            Handler::Approvals => m.get(approvals),
            Handler::Decide => m.post(decide),
            Handler::Tasks => m.get(tasks),
            Handler::TaskDone => m.post(task_done),
            Handler::Upload => m.post(upload),
            Handler::Board => m.get(board),
            Handler::OpenApi => m.get(openapi_document),
        });
        router.route(path, methods)
    })
}

/// The component schemas of the document, one at a time (one `json!` of all of them is past the
/// macro's recursion limit).
fn schemas() -> Value {
    let text = |max: u64| json!({"type": "string", "maxLength": max});
    let mut all = Map::new();
    all.insert(
        "Problem".into(),
        json!({"type": "object", "required": ["type", "title", "status", "detail", "problems"], "properties": {
                    "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "problems": {"type": "array", "items": {"type": "object"}}}}),
    );
    all.insert(
        "SignIn".into(),
        json!({"type": "object", "required": ["member", "password"], "properties": {
                    "member": text(200), "password": text(1024)}}),
    );
    all.insert(
        "LinkRequest".into(),
        json!({"type": "object", "required": ["member"], "properties": {"member": text(200)}}),
    );
    all.insert(
        "LinkToken".into(),
        json!({"type": "object", "required": ["token"], "properties": {"token": text(200)}}),
    );
    all.insert(
        "Session".into(),
        json!({"type": "object", "required": ["member", "csrf", "ends_at"], "properties": {
                    "member": {"type": "string"}, "csrf": {"type": "string"}, "ends_at": {"type": "string"}}}),
    );
    all.insert(
        "Member".into(),
        json!({"type": "object", "required": ["id", "name", "roles"], "properties": {
                    "id": {"type": "string"}, "name": {"type": "string"},
                    "roles": {"type": "array", "items": {"type": "string"}}, "region": {"type": ["string", "null"]}}}),
    );
    all.insert(
        "Fields".into(),
        json!({"type": "object", "description": "field id → value", "additionalProperties": true}),
    );
    all.insert(
        "Decision".into(),
        json!({"type": "object", "properties": {"comment": {"type": "string", "maxLength": 2000}}}),
    );
    all.insert(
        "Evidence".into(),
        json!({"type": "object", "properties": {"summary": {"type": "string", "maxLength": 10000},
                    "attachment": {"type": "string", "description": "the id an upload answered"}}}),
    );
    all.insert("File".into(), json!({"type": "string", "format": "binary"}));
    all.insert(
        "Upload".into(),
        json!({"type": "object", "required": ["id", "type", "bytes"], "properties": {
                    "id": {"type": "string"}, "type": {"type": "string"}, "bytes": {"type": "integer"}}}),
    );
    all.insert("Record".into(), json!({"type": "object", "required": ["id", "form", "version", "data", "created_at", "updated_at", "created_by", "updated_by"], "properties": {
                    "id": {"type": "string"}, "form": {"type": "string"}, "version": {"type": "integer", "minimum": 1},
                    "state": {"type": "string"}, "owner": {"type": "string"},
                    "data": {"type": "object"}, "created_at": {"type": "string"}, "updated_at": {"type": "string"},
                    "created_by": {"type": "string"}, "updated_by": {"type": "string"}}}));
    all.insert(
        "Page".into(),
        json!({"type": "object", "required": ["items", "next_cursor"], "properties": {
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/Record"}},
                    "next_cursor": {"type": ["string", "null"]}}}),
    );
    all.insert("History".into(), json!({"type": "array", "items": {"type": "object", "required": ["version", "at", "actor", "kind", "changes"], "properties": {
                    "version": {"type": "integer"}, "at": {"type": "string"}, "actor": {"type": "string"},
                    "kind": {"type": "string"}, "action": {"type": "string"},
                    "notes": {"type": "array", "items": {"type": "string"}},
                    "changes": {"type": "array", "items": {"type": "object", "required": ["field"], "properties": {"field": {"type": "string"}}}}}}}));
    all.insert("List".into(), json!({"type": "array", "items": {"type": "object"}}));
    all.insert("Object".into(), json!({"type": "object"}));
    Value::Object(all)
}

/// An operation's id: its method and path (`get_api_v1_records__form_`).
fn operation_id(method: &str, path: &str) -> String {
    format!("{method}{}", path.replace(['/', '{', '}', '-', '.'], "_"))
}

/// `GET /api/v1/openapi.json`: the document, with the installed forms as the `form` values.
async fn openapi_document(State(api): State<Api>) -> Response {
    let forms = match api.pool.submit(|rt| rt.form_ids()) {
        Ok(answer) => tokio::time::timeout(ANSWER_TIME, answer).await.ok().and_then(Result::ok).unwrap_or_default(),
        Err(Busy) => Vec::new(),
    };
    Json(openapi(&forms)).into_response()
}

/// The OpenAPI 3.1 document of `/api/v1`, built from the same table as its routes; `forms` (the installed
/// forms' ids) become the values of the `form` path parameter when given.
pub fn openapi(forms: &[String]) -> Value {
    let mut paths = Map::new();
    for e in ENDPOINTS {
        let mut parameters: Vec<Value> = e
            .path
            .split('/')
            .filter_map(|part| part.strip_prefix('{').and_then(|p| p.strip_suffix('}')))
            .map(|name| {
                let schema = match name {
                    "decision" => json!({"type": "string", "enum": ["approve", "reject", "recall"]}),
                    "task" => json!({"type": "integer", "minimum": 1}),
                    "form" if !forms.is_empty() => json!({"type": "string", "enum": forms}),
                    _ => json!({"type": "string", "minLength": 1, "maxLength": 200}),
                };
                json!({"name": name, "in": "path", "required": true, "schema": schema})
            })
            .collect();
        for (name, kind, description) in e.query {
            let schema = match *name {
                "limit" => json!({"type": kind, "minimum": 1, "maximum": MAX_PAGE}),
                "cursor" => json!({"type": kind, "minimum": 0}),
                "order" => json!({"type": kind, "enum": ["asc", "desc"]}),
                _ => json!({"type": kind}),
            };
            parameters.push(
                json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema}),
            );
        }
        for (name, description) in e.headers {
            parameters.push(json!({"name": name, "in": "header", "required": true, "description": description, "schema": {"type": "string"}}));
        }
        let reference = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
        let mut operation = json!({
            "operationId": operation_id(e.method, e.path),
            "summary": e.summary,
            "parameters": parameters,
            "responses": {
                e.ok.0.to_string(): {"description": "done", "content": {"application/json": {"schema": reference(e.ok.1)}}},
                "default": {"description": "a problem (RFC 9457), naming each field", "content": {"application/problem+json": {"schema": reference("Problem")}}}
            }
        });
        if matches!(e.handler, Handler::Create) {
            // What a client (or a fuzzer) does next with the record it created.
            let to = |operation: String| {
                json!({"operationId": operation,
                    "parameters": {"form": "$request.path.form", "id": "$response.body#/id"}})
            };
            operation["responses"]["201"]["links"] = json!({
                "read": to(operation_id("get", "/api/v1/records/{form}/{id}")),
                "history": to(operation_id("get", "/api/v1/records/{form}/{id}/history")),
            });
        }
        if let Some(body) = e.body {
            let media = if body == "File" { "application/octet-stream" } else { "application/json" };
            operation["requestBody"] = json!({"required": true, "content": {media: {"schema": reference(body)}}});
        }
        if !e.secured {
            operation["security"] = json!([]);
        }
        let entry = paths.entry(e.path.to_string()).or_insert_with(|| json!({}));
        entry[e.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "closeloop /api/v1", "version": env!("CARGO_PKG_VERSION"),
            "description": "Members sign in (a session cookie, with X-CSRF-Token on writes) or send a token (Authorization: Bearer). Every answer is what the engine lets that member read and do."},
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE}
            },
            "schemas": schemas()
        }
    })
}

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

/// `POST /api/v1/sign-in` `{"member": "m_li", "password": "…"}`: sets the session cookie and
/// answers the CSRF token writes must carry.
async fn sign_in(State(api): State<Api>, addr: Option<Extension<ClientAddr>>, body: Body) -> Response {
    let data = match body_json(body).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let text = |k: &str| data.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let (member, password) = (text("member"), text("password"));
    let address = client(addr);
    session_answer(&api, move |rt| rt.sign_in(&member, &password, &address)).await
}

/// `POST /api/v1/sign-in-link` `{"member": "m_li"}`: 202 whoever asks.
async fn sign_in_link(State(api): State<Api>, body: Body) -> Response {
    let data = match body_json(body).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let member = data.get("member").and_then(Value::as_str).unwrap_or_default().to_string();
    let base = api.public_url.to_string();
    let answer = match api.pool.submit(move |rt| rt.send_sign_in_link(&member, &base)) {
        Ok(a) => a,
        Err(Busy) => return engine_problem(busy()),
    };
    match tokio::time::timeout(ANSWER_TIME, answer).await {
        Ok(Ok(Ok(()))) => (
            StatusCode::ACCEPTED,
            Json(json!({"sent": "if this member may sign in and has a phone or email, a link is on its way"})),
        )
            .into_response(),
        Ok(Ok(Err(e))) => engine_problem(e),
        _ => problem(StatusCode::INTERNAL_SERVER_ERROR, "the engine did not answer", Vec::new()),
    }
}

/// `POST /api/v1/sign-in-link/redeem` `{"token": "…"}`: the link's session, once.
async fn redeem_link(State(api): State<Api>, addr: Option<Extension<ClientAddr>>, body: Body) -> Response {
    let data = match body_json(body).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let token = data.get("token").and_then(Value::as_str).unwrap_or_default().to_string();
    let address = client(addr);
    session_answer(&api, move |rt| rt.redeem_sign_in_link(&token, &address)).await
}

fn client(addr: Option<Extension<ClientAddr>>) -> String {
    addr.map(|a| a.0 .0.ip().to_string()).unwrap_or_else(|| "unknown".into())
}

/// Runs a sign-in on a worker and answers its session: the cookie and the CSRF token.
async fn session_answer(
    api: &Api,
    job: impl FnOnce(&mut Runtime) -> Result<crate::engine::NewSession, EngineError> + Send + 'static,
) -> Response {
    let secure = api.secure_cookies;
    let answer = match api.pool.submit(job) {
        Ok(a) => a,
        Err(Busy) => return engine_problem(busy()),
    };
    match tokio::time::timeout(ANSWER_TIME, answer).await {
        Ok(Ok(Ok(session))) => {
            let mut r = Json(json!({"member": session.member, "csrf": session.csrf, "ends_at": session.ends_at}))
                .into_response();
            let cookie = format!(
                "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax{}",
                session.id,
                if secure { "; Secure" } else { "" }
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Ok(Ok(Err(e))) => engine_problem(e),
        _ => problem(StatusCode::INTERNAL_SERVER_ERROR, "the engine did not answer", Vec::new()),
    }
}

/// `POST /api/v1/sign-out`: ends this session.
async fn sign_out(State(api): State<Api>, headers: HeaderMap) -> Response {
    let id = cookie(&headers, SESSION_COOKIE);
    let mut r = as_member(&api, &headers, Method::POST, move |rt, _| {
        if let Some(id) = id {
            rt.sign_out(&id)?;
        }
        Ok((StatusCode::OK, json!({"signed_out": true}), None))
    })
    .await;
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("closeloop_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    r
}

/// `POST /api/v1/sign-out-everywhere`: ends every session of the member.
async fn sign_out_everywhere(State(api): State<Api>, headers: HeaderMap) -> Response {
    as_member(&api, &headers, Method::POST, |rt, member| {
        let n = rt.sign_out_everywhere(member, member)?;
        Ok((StatusCode::OK, json!({"sessions_ended": n}), None))
    })
    .await
}

/// `GET /api/v1/me`.
async fn me(State(api): State<Api>, headers: HeaderMap) -> Response {
    as_member(&api, &headers, Method::GET, |rt, member| {
        let m = rt.member(member)?;
        Ok((StatusCode::OK, json!({"id": m.id, "name": m.name, "roles": m.roles, "region": m.region}), None))
    })
    .await
}

/// `GET /api/v1/members` (ops only).
async fn members(State(api): State<Api>, headers: HeaderMap) -> Response {
    as_member(&api, &headers, Method::GET, |rt, member| {
        let all: Vec<Value> = rt
            .members_as(member)?
            .into_iter()
            .map(|m| {
                json!({"id": m.id, "name": m.name, "roles": m.roles, "region": m.region, "manager": m.manager,
                    "active": m.active, "capacity": m.capacity, "email": m.email, "phone": m.phone,
                    "attributes": m.extra, "away_until": m.away_until, "delegate_to": m.delegate_to})
            })
            .collect();
        Ok((StatusCode::OK, Value::Array(all), None))
    })
    .await
}

/// `GET /api/v1/apps`.
async fn apps(State(api): State<Api>, headers: HeaderMap) -> Response {
    as_member(&api, &headers, Method::GET, |rt, _| Ok((StatusCode::OK, rt.app_index(), None))).await
}

/// `GET /api/v1/forms/{form}`: what a client needs to render the form, as this member sees it.
async fn form_definition(State(api): State<Api>, headers: HeaderMap, Path(form): Path<String>) -> Response {
    as_member(&api, &headers, Method::GET, move |rt, member| Ok((StatusCode::OK, rt.form_as(&form, member)?, None)))
        .await
}

/// `GET /api/v1/records/{form}?state=&owner=&sort=&order=desc&limit=&cursor=&FIELD=VALUE`.
async fn list(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(form): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = match list_query(raw.as_deref()) {
        Ok(q) => q,
        Err(why) => return problem(StatusCode::BAD_REQUEST, why, Vec::new()),
    };
    as_member(&api, &headers, Method::GET, move |rt, member| {
        let (items, next) = rt.page_as(&form, &query, member)?;
        Ok((StatusCode::OK, json!({"items": items, "next_cursor": next.map(|n| n.to_string())}), None))
    })
    .await
}

/// A list's query string: `state`, `owner`, `sort`, `order`, `limit`, `cursor`, and any other
/// key a field to equal.
fn list_query(raw: Option<&str>) -> Result<ListQuery, String> {
    let mut query = ListQuery { limit: Some(50), ..ListQuery::default() };
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = super::reports::decode(value);
        let number =
            |what: &str| value.parse::<u64>().map_err(|_| format!("`{what}` is a whole number, not \"{value}\""));
        match key {
            "state" => query.state = Some(value),
            "owner" => query.owner = Some(value),
            "sort" => query.sort = Some(value),
            "order" => query.order = if value == "desc" { SortOrder::Desc } else { SortOrder::Asc },
            "limit" => query.limit = Some(number("limit")?.clamp(1, MAX_PAGE)),
            "cursor" => query.offset = number("cursor")?,
            field => query.filters.push((super::reports::decode(field), Value::String(value))),
        }
    }
    Ok(query)
}

/// `POST /api/v1/records/{form}`: a new record, as the member.
async fn create(State(api): State<Api>, headers: HeaderMap, Path(form): Path<String>, body: Body) -> Response {
    let data = match body_json(body).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    as_member(&api, &headers, Method::POST, move |rt, member| {
        let created = rt.submit(&form, data, member)?;
        // Answered as the member may read it (its automations may have moved it on).
        let shown = rt.get_as(&form, &created.id, member).unwrap_or(created);
        let (_, body, version) = record_json(&shown);
        Ok((StatusCode::CREATED, body, version))
    })
    .await
}

/// `GET /api/v1/records/{form}/{id}`.
async fn read(State(api): State<Api>, headers: HeaderMap, Path((form, id)): Path<(String, String)>) -> Response {
    as_member(&api, &headers, Method::GET, move |rt, member| Ok(record_json(&rt.get_as(&form, &id, member)?))).await
}

/// `PATCH /api/v1/records/{form}/{id}` with `If-Match: "VERSION"`.
async fn patch(
    State(api): State<Api>,
    headers: HeaderMap,
    Path((form, id)): Path<(String, String)>,
    body: Body,
) -> Response {
    let Some(version) = headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().trim_start_matches("W/").trim_matches('"').parse::<i64>().ok())
    else {
        return problem(
            StatusCode::PRECONDITION_REQUIRED,
            "send `If-Match` with the ETag of the version you read, so a change made meanwhile is not overwritten",
            Vec::new(),
        );
    };
    let data = match body_json(body).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    as_member(&api, &headers, Method::PATCH, move |rt, member| {
        rt.get_as(&form, &id, member)?;
        rt.update_from(&form, &id, data, member, Some(version))?;
        Ok(record_json(&rt.get_as(&form, &id, member)?))
    })
    .await
}

/// `POST /api/v1/records/{form}/{id}/actions/{action}` with the fields the action needs.
async fn act(
    State(api): State<Api>,
    headers: HeaderMap,
    Path((form, id, action)): Path<(String, String, String)>,
    body: Body,
) -> Response {
    let data = match body_json(body).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    as_member(&api, &headers, Method::POST, move |rt, member| {
        rt.get_as(&form, &id, member)?;
        rt.act(&form, &id, &action, member, data)?;
        Ok(record_json(&rt.get_as(&form, &id, member)?))
    })
    .await
}

/// `GET /api/v1/records/{form}/{id}/history`.
async fn history(State(api): State<Api>, headers: HeaderMap, Path((form, id)): Path<(String, String)>) -> Response {
    as_member(&api, &headers, Method::GET, move |rt, member| {
        Ok((StatusCode::OK, json!(rt.history_as(&form, &id, member)?), None))
    })
    .await
}

/// `GET /api/v1/records/{form}/{id}/activity`.
async fn activity(State(api): State<Api>, headers: HeaderMap, Path((form, id)): Path<(String, String)>) -> Response {
    as_member(&api, &headers, Method::GET, move |rt, member| {
        Ok((StatusCode::OK, json!(rt.activity_as(&form, &id, member)?), None))
    })
    .await
}

/// `GET /api/v1/approvals`: the steps waiting for the member.
async fn approvals(State(api): State<Api>, headers: HeaderMap) -> Response {
    as_member(&api, &headers, Method::GET, |rt, member| Ok((StatusCode::OK, json!(rt.approvals(Some(member))?), None)))
        .await
}

/// `POST /api/v1/approvals/{form}/{id}/approve|reject|recall` `{"comment": "…"}` (a
/// rejection needs one).
async fn decide(
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
async fn tasks(State(api): State<Api>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let overdue = raw.as_deref().unwrap_or_default().split('&').any(|p| p == "overdue=true" || p == "overdue=1");
    as_member(&api, &headers, Method::GET, move |rt, member| {
        Ok((StatusCode::OK, json!(rt.tasks(Some(member), overdue, false)?), None))
    })
    .await
}

/// `POST /api/v1/tasks/{task}/done` `{"summary": "…"}`.
async fn task_done(State(api): State<Api>, headers: HeaderMap, Path(task): Path<String>, body: Body) -> Response {
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
        Some(id) => match (upload_path(&api, id), &api.files) {
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
async fn board(State(api): State<Api>, headers: HeaderMap, Path(board): Path<String>) -> Response {
    as_member(&api, &headers, Method::GET, move |rt, member| {
        Ok((StatusCode::OK, json!(rt.board_as(&board, member)?), None))
    })
    .await
}

/// The largest evidence file accepted.
pub const MAX_UPLOAD: usize = 10 * 1024 * 1024;

/// What a file's first bytes say it is, among the kinds evidence may be: a photo or a PDF.
/// The client's `Content-Type` is not believed.
fn sniff(bytes: &[u8]) -> Option<(&'static str, &'static str)> {
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    if starts(b"\xFF\xD8\xFF") {
        Some(("image/jpeg", "jpg"))
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        Some(("image/png", "png"))
    } else if starts(b"%PDF-") {
        Some(("application/pdf", "pdf"))
    } else if starts(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        Some(("image/webp", "webp"))
    } else if bytes.get(4..8) == Some(b"ftyp") && matches!(bytes.get(8..12), Some(b"heic" | b"heix" | b"mif1")) {
        Some(("image/heic", "heic"))
    } else {
        None
    }
}

/// The stored file an upload id names: 64 hex digits, a dot and a known extension, inside the
/// upload folder. Anything else (a path, `..`) names nothing.
fn upload_path(api: &Api, id: &str) -> Option<std::path::PathBuf> {
    let dir = api.files.as_ref()?;
    let (hash, ext) = id.split_once('.')?;
    let valid = hash.len() == 64
        && hash.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && ["jpg", "png", "pdf", "webp", "heic"].contains(&ext);
    let path = dir.join(id);
    (valid && path.is_file()).then_some(path)
}

/// `POST /api/v1/files`: the raw body, at most [`MAX_UPLOAD`] bytes, arriving within
/// `BODY_TIME`, of a kind its first bytes prove. Stored once by its SHA-256 in the upload folder,
/// outside the database; the answer names it for a task's `attachment`.
async fn upload(State(api): State<Api>, headers: HeaderMap, body: Body) -> Response {
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
    let bytes = match tokio::time::timeout(super::BODY_TIME, axum::body::to_bytes(body, MAX_UPLOAD)).await {
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
    let id = format!("{}.{ext}", crate::store::sha256_hex(&bytes));
    let path = dir.join(&id);
    let size = bytes.len();
    let name = id.clone();
    let stored = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        if path.is_file() {
            return Ok(());
        }
        // Written whole under a temporary name, then renamed: a reader never sees half a file.
        let partial = dir.join(format!(".{name}.part"));
        std::fs::write(&partial, &bytes)?;
        std::fs::rename(&partial, &path)
    });
    match stored.await {
        Ok(Ok(())) => (StatusCode::CREATED, Json(json!({"id": id, "type": kind, "bytes": size}))).into_response(),
        _ => problem(StatusCode::INTERNAL_SERVER_ERROR, "the file could not be stored", Vec::new()),
    }
}
