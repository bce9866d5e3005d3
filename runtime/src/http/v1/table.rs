//! The route table of `/api/v1`: the router and the OpenAPI 3.1 document are both built
//! from [`ENDPOINTS`], so the document cannot describe a route that is not served.

use super::records::*;
use super::session::*;
use super::work::*;
use super::*;

/// One endpoint: the router and the OpenAPI document are both built from [`ENDPOINTS`], so
/// the document cannot describe a route that is not served, nor miss one that is.
pub(super) struct Endpoint {
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
pub(super) enum Handler {
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

pub(super) const LIST_QUERY: &[(&str, &str, &str)] = &[
    ("state", "string", "only records in this state"),
    ("owner", "string", "only records this member owns"),
    ("sort", "string", "a field, `created_at` (default), `updated_at` or `id`"),
    ("order", "string", "`asc` (default) or `desc`"),
    ("limit", "integer", "at most this many (1 to 200; default 50)"),
    ("cursor", "integer", "where the page starts: the previous page's `next_cursor`"),
];

pub(super) const ENDPOINTS: &[Endpoint] = &[
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
pub(crate) fn routes() -> Router<Api> {
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
pub(super) fn schemas() -> Value {
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
pub(super) fn operation_id(method: &str, path: &str) -> String {
    format!("{method}{}", path.replace(['/', '{', '}', '-', '.'], "_"))
}

/// `GET /api/v1/openapi.json`: the document, with the installed forms as the `form` values.
pub(super) async fn openapi_document(State(api): State<Api>) -> Response {
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
