//! The HTTP API (feature `http`, on by default): how other systems reach closeloop. A finance
//! system posts `payment.received`, a web shop posts `lead.captured`; each is the same
//! [`Runtime::event`](crate::Runtime::event) the CLI's `closeloop event` calls.
//!
//! - `GET /healthz`: `ok`, answered on the server's own thread, never queued behind work.
//! - `POST /api/events/{name}` with a JSON object (and, best, an `Idempotency-Key` header:
//!   a retry with the same key is received once): the event's report as JSON (200), or
//!   `{"error", "problems"}` with the statuses docs/http.md lists (400 bad data, 401 no or
//!   wrong token, 403 refused, 413 body over 1 MiB, 503 busy with `Retry-After`, …).
//! - `GET /api/reports/penetration?from=…&to=…`: the penetration report as JSON, CSV or HTML
//!   (`reports.rs`).
//!
//! Requests are authenticated with a bearer token (compared as SHA-256 digests, so the
//! comparison time tells nothing about the token) before a byte of the body is read. The
//! engine runs on a [`Pool`] of workers, so scripts never run on the async threads; at most
//! as many requests as the pool has workers and places are admitted at once, the rest get 503.
//! [`serve`] adds what a server facing a network needs: a deadline for request headers, a cap
//! on connections and a bounded graceful shutdown. Embedders mount [`router`] in their own
//! server, or call [`serve`].

mod pool;
mod reports;
mod uploads;
pub mod v1;
pub mod web;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

pub use pool::{Busy, Pool};

use crate::engine::{EngineError, ErrorKind};

/// The largest request body read; larger ones are refused with 413.
pub const MAX_BODY: usize = 1024 * 1024;
/// How long a request body may take to arrive.
pub const BODY_TIME: Duration = Duration::from_secs(10);
/// How long a request waits for its answer from the engine.
pub const ANSWER_TIME: Duration = Duration::from_secs(30);
/// The actor events posted over HTTP are recorded as.
pub const API_ACTOR: &str = "api";
/// How long a client may take to send a request's headers.
pub const HEADER_TIME: Duration = Duration::from_secs(10);
/// How many connections [`serve`] serves at once; more get only the health check.
pub const MAX_CONNECTIONS: usize = 512;
/// How many connections one client address may hold at once; more get only the health check.
pub const MAX_PER_CLIENT: usize = 64;
/// How long a connection past a cap may take to send its one request.
pub const OVERFLOW_HEADER_TIME: Duration = Duration::from_secs(1);
/// How long [`serve`] lets requests in flight finish once asked to stop.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// What the handlers share: the engine workers, the token's digest, and the admission permits.
#[derive(Debug, Clone)]
pub struct Api {
    pool: Arc<Pool>,
    token: [u8; 32],
    admitted: Arc<Semaphore>,
    /// Session cookies carry `Secure` (served over TLS, or behind a proxy that is).
    secure_cookies: bool,
    /// Where people reach this server (`https://crm.example.com`): sign-in links point there.
    public_url: Arc<str>,
    /// Where uploaded evidence files are kept (outside the database), when uploads are on.
    files: Option<Arc<std::path::Path>>,
    /// A font that covers Chinese, for the signed PDF the customer downloads.
    pdf_font: Option<Arc<[u8]>>,
}

/// The client's address, which [`serve`] gives each request (for sign-in throttling).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::SocketAddr);

impl Api {
    /// The API over `pool`, accepting `token` (which must not be empty; surrounding
    /// whitespace, such as a file's last newline, is not part of it).
    pub fn new(pool: Arc<Pool>, token: &str) -> Result<Api, EngineError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(EngineError::Input(
                "the HTTP API needs a token: set CLOSELOOP_API_TOKEN to a long random value".into(),
            ));
        }
        let (workers, queue) = pool.size();
        Ok(Api {
            pool,
            token: Sha256::digest(token.as_bytes()).into(),
            admitted: Arc::new(Semaphore::new(workers + queue)),
            secure_cookies: false,
            public_url: Arc::from("http://localhost:8080"),
            files: None,
            pdf_font: None,
        })
    }

    /// The font signed PDFs are set in (one that covers Chinese, e.g. wqy-microhei.ttc).
    pub fn with_pdf_font(mut self, font: Vec<u8>) -> Api {
        self.pdf_font = Some(Arc::from(font));
        self
    }

    /// Keeps uploaded evidence files in `dir` (created when missing), outside the database:
    /// `closeloop serve` uses the folder `DB.files` beside the database.
    pub fn with_files(mut self, dir: &std::path::Path) -> Api {
        self.files = Some(Arc::from(dir));
        self
    }

    /// Where people reach this server (`https://crm.example.com`), for the links it sends.
    pub fn with_public_url(mut self, url: &str) -> Api {
        self.public_url = Arc::from(url.trim_end_matches('/'));
        self
    }

    /// Marks session cookies `Secure`: say so when closeloop is served over TLS or behind a
    /// proxy that terminates it.
    pub fn with_secure_cookies(mut self, secure: bool) -> Api {
        self.secure_cookies = secure;
        self
    }

    fn allows(&self, headers: &HeaderMap) -> bool {
        bearer(headers).is_some_and(|t| <[u8; 32]>::from(Sha256::digest(t.as_bytes())) == self.token)
    }
}

/// The bearer token a request carries.
fn bearer(headers: &HeaderMap) -> Option<String> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
        let (scheme, token) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
    })
}

/// The API's routes, to serve or to mount in an embedder's own router.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/events/{name}", post(event))
        .route("/api/reports/penetration", get(reports::penetration))
        .merge(v1::routes())
        .merge(web::routes())
        .with_state(api)
}

/// Serves `router` on `listener` until `stop` completes. Each connection must send its request
/// headers within [`HEADER_TIME`]. At most [`MAX_CONNECTIONS`] are served at once, and at most
/// [`MAX_PER_CLIENT`] from one client address; a connection past either cap is still accepted,
/// but only for one request with [`OVERFLOW_HEADER_TIME`] to send it: `/healthz` is answered,
/// anything else gets 503 and `Retry-After`. So a client holding hundreds of idle connections
/// slows neither other clients nor the health check. Once asked to stop it accepts nothing more
/// and gives requests in flight [`SHUTDOWN_GRACE`] to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router, ServeLimits::default(), stop).await
}

/// The connection caps of [`serve_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Connections served at once ([`MAX_CONNECTIONS`]).
    pub connections: usize,
    /// Connections one client address may hold at once ([`MAX_PER_CLIENT`]). Behind a reverse
    /// proxy every request comes from the proxy's address: raise it to `connections` there.
    pub per_client: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits { connections: MAX_CONNECTIONS, per_client: MAX_PER_CLIENT }
    }
}

/// [`serve`] with other connection caps.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ServeLimits,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let connections = Arc::new(Semaphore::new(limits.connections));
    let per_client = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<std::net::IpAddr, usize>::new()));
    let overflow = Router::new().route("/healthz", get(|| async { "ok" })).fallback(|| async { busy() });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors, a connection reset before accept: wait a moment.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let seat = ClientSeat::take(&per_client, peer.ip(), limits.per_client);
        let permit = match &seat {
            Some(_) => connections.clone().try_acquire_owned().ok(),
            None => None,
        };
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new()).max_buf_size(64 * 1024);
        let served = match permit {
            Some(_) => {
                http.header_read_timeout(HEADER_TIME);
                router.clone()
            }
            None => {
                http.header_read_timeout(OVERFLOW_HEADER_TIME).keep_alive(false);
                overflow.clone()
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(served.layer(axum::Extension(ClientAddr(peer))));
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
            drop(seat);
        });
    }
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
    Ok(())
}

/// One of a client address's [`MAX_PER_CLIENT`] seats, given back when dropped.
struct ClientSeat {
    seats: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
    ip: std::net::IpAddr,
}

impl ClientSeat {
    fn take(
        seats: &Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
        ip: std::net::IpAddr,
        cap: usize,
    ) -> Option<ClientSeat> {
        let mut held = seats.lock().ok()?;
        let n = held.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(ClientSeat { seats: seats.clone(), ip })
    }
}

impl Drop for ClientSeat {
    fn drop(&mut self) {
        if let Ok(mut held) = self.seats.lock() {
            if let Some(n) = held.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    held.remove(&self.ip);
                }
            }
        }
    }
}

fn problem(status: StatusCode, message: impl Into<String>, problems: Vec<Value>) -> Response {
    (status, Json(json!({"error": message.into(), "problems": problems}))).into_response()
}

/// The status an engine error answers with, and the problems it lists.
fn answer_error(e: EngineError) -> Response {
    let problems: Vec<Value> = match &e {
        EngineError::Invalid(p) => p.iter().map(|p| json!(p)).collect(),
        EngineError::Import(r) => r.problems.iter().map(|p| json!(p)).collect(),
        EngineError::InvalidApp(d) | EngineError::Orphans(d) => d.iter().map(|d| json!(d)).collect(),
        _ => Vec::new(),
    };
    let status = match (e.kind(), &e) {
        // An installed app that no longer loads is the server's problem, not the request's.
        (_, EngineError::InvalidApp(_) | EngineError::Orphans(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        // An idempotency key reused for other data: the request cannot be processed as sent.
        (_, EngineError::KeyReused(_)) => StatusCode::UNPROCESSABLE_ENTITY,
        (ErrorKind::NotFound, _) => StatusCode::NOT_FOUND,
        (ErrorKind::Refused, _) => StatusCode::FORBIDDEN,
        (ErrorKind::Invalid, _) => StatusCode::UNPROCESSABLE_ENTITY,
        (ErrorKind::BadRequest, _) => StatusCode::BAD_REQUEST,
        (ErrorKind::Conflict, _) => StatusCode::CONFLICT,
        (ErrorKind::Busy, _) => return busy(),
        (ErrorKind::Internal, _) => StatusCode::INTERNAL_SERVER_ERROR,
        (ErrorKind::Unauthorized, _) => StatusCode::UNAUTHORIZED,
        (ErrorKind::Locked, _) => StatusCode::TOO_MANY_REQUESTS,
    };
    problem(status, e.to_string(), problems)
}

fn unauthorized() -> Response {
    let mut r = problem(StatusCode::UNAUTHORIZED, "a valid `Authorization: Bearer TOKEN` is required", Vec::new());
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

fn busy() -> Response {
    let mut r = problem(StatusCode::SERVICE_UNAVAILABLE, Busy.to_string(), Vec::new());
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// The member a token posts events as: one whose scope is `events` or `write`.
async fn event_poster(api: &Api, token: String) -> Result<String, Response> {
    let answer = api
        .pool
        .submit(move |rt| {
            let who = rt.token(&token)?;
            match who.scope {
                Some(crate::engine::TokenScope::Events | crate::engine::TokenScope::Write) => Ok(who.member),
                _ => Err(EngineError::Refused("this token may only read; events need scope `events`".into())),
            }
        })
        .map_err(|_| busy())?;
    match tokio::time::timeout(ANSWER_TIME, answer).await {
        Ok(Ok(Ok(member))) => Ok(member),
        Ok(Ok(Err(EngineError::Unauthorized(_)))) => Err(unauthorized()),
        Ok(Ok(Err(e))) => Err(answer_error(e)),
        _ => Err(problem(StatusCode::INTERNAL_SERVER_ERROR, "the engine did not answer", Vec::new())),
    }
}

/// `POST /api/events/{name}`.
async fn event(State(api): State<Api>, Path(name): Path<String>, headers: HeaderMap, body: Body) -> Response {
    // The install-wide token posts as `api`; a member's token (scope `events` or `write`) posts
    // as that member. Either is checked before a byte of the body is read.
    let actor = match (api.allows(&headers), bearer(&headers)) {
        (true, _) => API_ACTOR.to_string(),
        (false, None) => return unauthorized(),
        (false, Some(token)) => match event_poster(&api, token).await {
            Ok(member) => member,
            Err(r) => return r,
        },
    };
    // Admitted only while a worker or a queue place is free, so bodies held in memory are
    // bounded too; the permit is held until the answer arrives.
    let Ok(_admitted) = api.admitted.clone().try_acquire_owned() else { return busy() };
    // Refused before reading when the client says how large it is.
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    if declared.is_some_and(|n: usize| n > MAX_BODY) {
        return problem(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is over {MAX_BODY} bytes"), Vec::new());
    }
    let bytes = match tokio::time::timeout(BODY_TIME, axum::body::to_bytes(body, MAX_BODY)).await {
        Err(_) => return problem(StatusCode::REQUEST_TIMEOUT, "the body took too long to arrive", Vec::new()),
        Ok(Err(e)) => {
            return match e.into_inner().downcast_ref::<http_body_util::LengthLimitError>() {
                Some(_) => {
                    problem(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is over {MAX_BODY} bytes"), Vec::new())
                }
                None => problem(StatusCode::BAD_REQUEST, "the body could not be read", Vec::new()),
            };
        }
        Ok(Ok(bytes)) => bytes,
    };
    let mut keys = headers.get_all("idempotency-key").iter();
    let key = match (keys.next().map(|v| v.to_str()), keys.next()) {
        (None, _) => None,
        (Some(Ok(key)), None) => Some(key.to_string()),
        (Some(Err(_)), None) => {
            return problem(StatusCode::BAD_REQUEST, "the Idempotency-Key is not visible ASCII", Vec::new())
        }
        (Some(_), Some(_)) => {
            return problem(StatusCode::BAD_REQUEST, "send one Idempotency-Key, not several", Vec::new())
        }
    };
    let data: Map<String, Value> = match serde_json::from_slice(&bytes) {
        Ok(data) => data,
        Err(e) => return problem(StatusCode::BAD_REQUEST, format!("the body must be a JSON object: {e}"), Vec::new()),
    };
    let answer = match api.pool.submit(move |rt| rt.event_once(&name, data, &actor, key.as_deref())) {
        Ok(answer) => answer,
        Err(Busy) => return busy(),
    };
    match tokio::time::timeout(ANSWER_TIME, answer).await {
        // Still queued, it will be skipped; already running, it may still be recorded.
        Err(_) => problem(
            StatusCode::GATEWAY_TIMEOUT,
            "the engine did not answer in time; the event may still be recorded: send it again with the same Idempotency-Key",
            Vec::new(),
        ),
        // The job panicked (a bug; its worker starts afresh) or the pool stopped.
        Ok(Err(_)) => {
            problem(StatusCode::INTERNAL_SERVER_ERROR, "the engine worker failed while handling the request", Vec::new())
        }
        Ok(Ok(Err(e))) => answer_error(e),
        Ok(Ok(Ok(report))) => (StatusCode::OK, Json(json!(report))).into_response(),
    }
}
