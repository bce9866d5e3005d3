//! The HTTP API on any request: the input is `METHOD TARGET`, header lines `Name: value`, a
//! blank line, then the body. The router (events, the report, `/api/v1`, the health check) must answer
//! every request, and never with a 500: a malformed request is the client's problem, not a
//! server error.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use closeloop::clock::SystemClock;
use closeloop::http::{router, Api, Pool};
use closeloop::store::Store;
use closeloop::{template, Runtime};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

/// The token the seed corpus carries, so the fuzzer reaches past the door.
const TOKEN: &str = "fuzz-token-0123456789";

struct Served {
    router: axum::Router,
    tokio: tokio::runtime::Runtime,
}

fn served() -> &'static Served {
    static SERVED: OnceLock<Served> = OnceLock::new();
    SERVED.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("closeloop-fuzz-http-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("temp folder: {e}"));
        let db = dir.join("fuzz.db");
        let mut rt = Runtime::open(Store::open(&db).unwrap_or_else(|e| panic!("{e}")), Arc::new(SystemClock))
            .unwrap_or_else(|e| panic!("{e}"));
        let Some(t) = template("lead-followup") else { panic!("no lead-followup template") };
        rt.install(&t.app_files(), "system", false).unwrap_or_else(|e| panic!("install: {e}"));
        let members = t.files.iter().find(|(p, _)| *p == "data/members.csv").map(|(_, s)| *s).unwrap_or_default();
        rt.import_members(members.as_bytes(), "system").unwrap_or_else(|e| panic!("members: {e}"));
        // The seed corpus signs in with this, so the fuzzer reaches past /api/v1's door too.
        rt.set_password("m_ops", "fuzz password 0123", None, "system").unwrap_or_else(|e| panic!("password: {e}"));
        drop(rt);
        let open = move || Runtime::open(Store::open(&db)?, Arc::new(SystemClock));
        let pool = Arc::new(Pool::start(1, 8, open).unwrap_or_else(|e| panic!("pool: {e}")));
        let api = Api::new(pool, TOKEN).unwrap_or_else(|e| panic!("api: {e}"));
        let tokio = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap_or_else(|e| panic!("{e}"));
        Served { router: router(api), tokio }
    })
}

/// The request the bytes describe, or none when they describe no request `http` can build.
fn request(data: &[u8]) -> Option<Request<Body>> {
    let split = data.windows(2).position(|w| w == b"\n\n");
    let (head, body) = match split {
        Some(at) => (&data[..at], data[at + 2..].to_vec()),
        None => (data, Vec::new()),
    };
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split('\n');
    let (method, target) = lines.next()?.split_once(' ')?;
    let mut builder = Request::builder().method(method).uri(target);
    for line in lines {
        let (name, value) = line.split_once(':')?;
        builder = builder.header(name.trim(), value.trim());
    }
    builder.body(Body::from(body)).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some(req) = request(data) else { return };
    let s = served();
    let answer = s.tokio.block_on(s.router.clone().oneshot(req));
    let Ok(response) = answer;
    assert_ne!(response.status(), StatusCode::INTERNAL_SERVER_ERROR, "a request made the server fail");
});
