//! The HTTP API (feature `http`, on by default): how other systems reach closeloop. A finance
//! system posts `payment.received`, a web shop posts `lead.captured`; each is the same
//! [`Runtime::event`](crate::Runtime::event) the CLI's `closeloop event` calls.
//!
//! - `GET /healthz`: `ok`, answered on the server's own thread, never queued behind work.
//! - `POST /api/events/{name}` with a JSON object: the event's report as JSON (200), or
//!   `{"error", "problems"}` with 400 (bad data, an unknown event), 401 (no or wrong token),
//!   403 (refused: no record matches the event, or a rule says no), 404, 409,
//!   413 (body over 1 MiB, refused before it is read), 408 (body slower than 10 s), 503 with
//!   `Retry-After` (every worker busy and the queue full) or 504 (no answer within 30 s).
//!
//! Requests are authenticated with a bearer token (compared as SHA-256 digests, so the
//! comparison time tells nothing about the token). The engine runs on a [`Pool`] of workers,
//! so scripts never run on the async threads. Embedders mount [`router`] in their own server,
//! or call [`serve`].

mod pool;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

pub use pool::{Busy, JobError, Pool};

use crate::engine::EngineError;

/// The largest request body read; larger ones are refused with 413.
pub const MAX_BODY: usize = 1024 * 1024;
/// How long a request body may take to arrive.
pub const BODY_TIME: Duration = Duration::from_secs(10);
/// How long a request waits for its answer from the engine.
pub const ANSWER_TIME: Duration = Duration::from_secs(30);
/// The actor events posted over HTTP are recorded as.
pub const API_ACTOR: &str = "api";

/// What the handlers share: the engine workers and the token's digest.
#[derive(Debug, Clone)]
pub struct Api {
    pool: Arc<Pool>,
    token: [u8; 32],
}

impl Api {
    /// The API over `pool`, accepting `token` (which must not be empty).
    pub fn new(pool: Pool, token: &str) -> Result<Api, EngineError> {
        if token.trim().is_empty() {
            return Err(EngineError::Input(
                "the HTTP API needs a token: set CLOSELOOP_API_TOKEN to a long random value".into(),
            ));
        }
        Ok(Api { pool: Arc::new(pool), token: Sha256::digest(token.as_bytes()).into() })
    }

    fn allows(&self, headers: &HeaderMap) -> bool {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        given.is_some_and(|t| <[u8; 32]>::from(Sha256::digest(t.as_bytes())) == self.token)
    }
}

/// The API's routes, to serve or to mount in an embedder's own router.
pub fn router(api: Api) -> Router {
    Router::new().route("/healthz", get(|| async { "ok" })).route("/api/events/{name}", post(event)).with_state(api)
}

/// Serves `router` on `listener` until `stop` completes; requests in flight finish first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(stop).await
}

fn problem(status: StatusCode, message: impl Into<String>, problems: Vec<Value>) -> Response {
    (status, Json(json!({"error": message.into(), "problems": problems}))).into_response()
}

/// The status an engine error answers with, and the problems it lists.
fn answer_error(e: EngineError) -> Response {
    let (status, problems) = match &e {
        EngineError::Invalid(p) => (StatusCode::BAD_REQUEST, p.iter().map(|p| json!(p)).collect()),
        EngineError::Import(r) => (StatusCode::BAD_REQUEST, r.problems.iter().map(|p| json!(p)).collect()),
        EngineError::InvalidApp(d) | EngineError::Orphans(d) => {
            (StatusCode::BAD_REQUEST, d.iter().map(|d| json!(d)).collect())
        }
        EngineError::Input(_) | EngineError::UnknownForm { .. } => (StatusCode::BAD_REQUEST, Vec::new()),
        EngineError::NotFound { .. } => (StatusCode::NOT_FOUND, Vec::new()),
        EngineError::Refused(_) | EngineError::UnknownMember(_) | EngineError::InactiveMember(_) => {
            (StatusCode::FORBIDDEN, Vec::new())
        }
        EngineError::Conflict { .. } => (StatusCode::CONFLICT, Vec::new()),
        EngineError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, Vec::new()),
    };
    problem(status, e.to_string(), problems)
}

fn busy() -> Response {
    let mut r = problem(StatusCode::SERVICE_UNAVAILABLE, Busy.to_string(), Vec::new());
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// `POST /api/events/{name}`.
async fn event(State(api): State<Api>, Path(name): Path<String>, headers: HeaderMap, body: Body) -> Response {
    if !api.allows(&headers) {
        let mut r = problem(StatusCode::UNAUTHORIZED, "a valid `Authorization: Bearer TOKEN` is required", Vec::new());
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    // Refused before reading when the client says how large it is.
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    if declared.is_some_and(|n: usize| n > MAX_BODY) {
        return problem(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is over {MAX_BODY} bytes"), Vec::new());
    }
    let bytes = match tokio::time::timeout(BODY_TIME, axum::body::to_bytes(body, MAX_BODY)).await {
        Err(_) => return problem(StatusCode::REQUEST_TIMEOUT, "the body took too long to arrive", Vec::new()),
        Ok(Err(_)) => {
            return problem(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is over {MAX_BODY} bytes"), Vec::new())
        }
        Ok(Ok(bytes)) => bytes,
    };
    let data: Map<String, Value> = match serde_json::from_slice(&bytes) {
        Ok(data) => data,
        Err(e) => return problem(StatusCode::BAD_REQUEST, format!("the body must be a JSON object: {e}"), Vec::new()),
    };
    let answer = match api.pool.submit(move |rt| rt.event(&name, data, API_ACTOR)) {
        Ok(answer) => answer,
        Err(Busy) => return busy(),
    };
    match tokio::time::timeout(ANSWER_TIME, answer).await {
        Err(_) => problem(StatusCode::GATEWAY_TIMEOUT, "the engine did not answer in time", Vec::new()),
        Ok(Err(_)) => problem(StatusCode::INTERNAL_SERVER_ERROR, JobError::Lost.to_string(), Vec::new()),
        Ok(Ok(Err(e))) => answer_error(e),
        Ok(Ok(Ok(report))) => (StatusCode::OK, Json(json!(report))).into_response(),
    }
}
