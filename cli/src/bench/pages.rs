//! `closeloop bench pages`: the list page and the record page under concurrent clients on
//! loopback, beside the JSON API's answers for the same data in the same run.
//!
//! One SQLite file holds `records` tickets; `clients` threads each keep one connection and, in
//! turn, ask a random page of the list and a random record: as HTML with a session cookie, then
//! as JSON with a token. Both go through the same engine reads (`page_as`, `get_as`), so the
//! difference is the page: its template, its escaping, its bytes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use closeloop::clock::SystemClock;
use closeloop::store::Store;
use closeloop::{Runtime, TokenScope};
use serde_json::json;

use super::{ms, percentile};

const APP: &str = r#"
app: {id: bench-pages, title: {zh: 页面压测, en: Page bench}, time_zone: Asia/Shanghai}
roles: [{id: agent, label: {zh: 坐席, en: Agent}}]
forms:
  - id: ticket
    label: {zh: 工单, en: Ticket}
    title_field: title
    owner_field: owner
    fields:
      - {id: title, type: text, label: {zh: 标题, en: Title}, required: true}
      - {id: owner, type: member, label: {zh: 负责人, en: Owner}}
      - {id: note, type: long_text, label: {zh: 说明, en: Note}}
    states:
      - {id: open, initial: true}
      - {id: done, final: true}
"#;

/// One keep-alive connection.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn get(&mut self, path: &str, auth: &str) -> Result<(u16, usize), String> {
        let head = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n{auth}\r\n");
        self.writer.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
        let mut status = String::new();
        self.reader.read_line(&mut status).map_err(|e| e.to_string())?;
        let code = status.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).map_err(|e| e.to_string())?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        self.reader.read_exact(&mut body).map_err(|e| e.to_string())?;
        Ok((code, length))
    }
}

/// What one kind of request measured.
#[derive(Default)]
struct Kind {
    times: Vec<Duration>,
    bytes: usize,
}

/// Runs the benchmark and reports it.
pub fn run(records: usize, clients: usize, rounds: usize, json_output: bool) -> Result<String, String> {
    let dir = std::env::temp_dir().join(format!("closeloop-bench-pages-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let db = dir.join("pages.db");
    let mut rt = Runtime::open(Store::open(&db).map_err(|e| e.to_string())?, Arc::new(SystemClock))
        .map_err(|e| e.to_string())?;
    rt.install(&closeloop::AppFiles { app_yaml: APP.into(), ..Default::default() }, "system", false)
        .map_err(|e| e.to_string())?;
    rt.import_members(
        b"id,name,roles,region,manager,active,capacity\na1,\xe5\x9d\x90\xe5\xb8\xad\xe4\xb8\x80,agent,,,true,\n",
        "system",
    )
    .map_err(|e| e.to_string())?;
    let mut csv = String::from("title,owner,note\n");
    for i in 0..records {
        csv.push_str(&format!("工单 {i} <客户>,a1,第 {i} 张工单的说明 & 备注\n"));
    }
    let loaded = std::time::Instant::now();
    let report = rt
        .import_csv("ticket", csv.as_bytes(), &closeloop::ImportOptions::default(), &mut |_| {})
        .map_err(|e| e.to_string())?;
    let import_time = loaded.elapsed();
    rt.set_password("a1", "bench password 0123", None, "system").map_err(|e| e.to_string())?;
    let session = rt.sign_in("a1", "bench password 0123", "127.0.0.1").map_err(|e| e.to_string())?;
    let (_, token) = rt.create_token("bench", "a1", TokenScope::Read, "system").map_err(|e| e.to_string())?;
    drop(rt);
    let open = move || Runtime::open(Store::open(&db)?, Arc::new(SystemClock));
    let pool = Arc::new(closeloop::http::Pool::start(2, clients * 4, open).map_err(|e| e.to_string())?);
    let api = closeloop::http::Api::new(pool, "bench-events-token").map_err(|e| e.to_string())?;
    let server = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let listener = server.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let limits = closeloop::http::ServeLimits { per_client: clients + 8, ..Default::default() };
    let serving = std::thread::spawn(move || {
        server.block_on(closeloop::http::serve_with(listener, closeloop::http::router(api), limits, async {
            let _ = stop_rx.await;
        }))
    });
    let cookie = format!("Cookie: closeloop_session={}; closeloop_csrf={}\r\n", session.id, session.csrf);
    let bearer = format!("Authorization: Bearer {token}\r\n");
    let pages = records.div_ceil(50).max(1);
    let started = Instant::now();
    let results: Vec<Result<[Kind; 4], String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let (cookie, bearer) = (cookie.clone(), bearer.clone());
                s.spawn(move || -> Result<[Kind; 4], String> {
                    let stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
                    stream.set_nodelay(true).map_err(|e| e.to_string())?;
                    let writer = stream.try_clone().map_err(|e| e.to_string())?;
                    let mut client = Client { reader: BufReader::new(stream), writer };
                    let mut kinds: [Kind; 4] = Default::default();
                    // A cheap, reproducible spread over pages and records per client.
                    let mut x = (c as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    for _ in 0..rounds {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let page = (x as usize % pages) * 50;
                        let id = format!("TICKET-{:06}", x as usize % records + 1);
                        let asks = [
                            (format!("/r/ticket?cursor={page}"), &cookie),
                            (format!("/api/v1/records/ticket?limit=50&cursor={page}"), &bearer),
                            (format!("/r/ticket/{id}"), &cookie),
                            (format!("/api/v1/records/ticket/{id}"), &bearer),
                        ];
                        for (k, (path, auth)) in asks.iter().enumerate() {
                            let t = Instant::now();
                            let (status, bytes) = client.get(path, auth)?;
                            if status != 200 {
                                return Err(format!("{path} answered {status}"));
                            }
                            kinds[k].times.push(t.elapsed());
                            kinds[k].bytes += bytes;
                        }
                    }
                    Ok(kinds)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a client panicked".into()))).collect()
    });
    let elapsed = started.elapsed();
    let _ = stop_tx.send(());
    let _ = serving.join();
    let _ = std::fs::remove_dir_all(&dir);
    let mut all: [Kind; 4] = Default::default();
    for r in results {
        for (k, kind) in r?.into_iter().enumerate() {
            all[k].times.extend(kind.times);
            all[k].bytes += kind.bytes;
        }
    }
    let names = ["list page (HTML)", "list (JSON API)", "record page (HTML)", "record (JSON API)"];
    let mut rows = Vec::new();
    for (k, kind) in all.iter_mut().enumerate() {
        kind.times.sort();
        let busy: f64 = kind.times.iter().map(Duration::as_secs_f64).sum();
        // Answers per second of this kind while all clients ran: its share of the wall time.
        let per_second = kind.times.len() as f64 * clients as f64 / busy.max(1e-9);
        rows.push(json!({"kind": names[k], "answers": kind.times.len(), "p50_ms": ms(percentile(&kind.times, 0.5)),
            "p99_ms": ms(percentile(&kind.times, 0.99)), "per_second": per_second,
            "mean_bytes": kind.bytes / kind.times.len().max(1)}));
    }
    if json_output {
        let out = json!({"records": report.created, "import_seconds": import_time.as_secs_f64(), "clients": clients,
            "rounds": rounds, "seconds": elapsed.as_secs_f64(), "kinds": rows});
        return Ok(serde_json::to_string_pretty(&out).unwrap_or_default());
    }
    let mut out = format!(
        "bench pages: {} tickets (imported in {:.1} s), {clients} clients x {rounds} rounds, {:.1} s\n",
        report.created,
        import_time.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    for r in &rows {
        out.push_str(&format!(
            "{:<22} {:>7.1}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  {:>6} bytes\n",
            r["kind"].as_str().unwrap_or_default(),
            r["per_second"].as_f64().unwrap_or_default(),
            r["p50_ms"].as_f64().unwrap_or_default(),
            r["p99_ms"].as_f64().unwrap_or_default(),
            r["mean_bytes"]
        ));
    }
    Ok(out.trim_end().to_string())
}
