//! `closeloop bench http`: create-and-act over `/api/v1` with many concurrent clients on
//! loopback, against the same operations called on the library in the same run.
//!
//! Both sides use the same app, a fresh SQLite file each and the same number of operations; an
//! operation is one record created and one action done on it. The library side calls
//! `Runtime::submit` and `Runtime::act` in a loop on one runtime (the engine is one writer); the
//! HTTP side runs `closeloop::http::serve` in this process with `workers` engine workers, and
//! `clients` threads each holding one keep-alive connection and its own API token.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use closeloop::clock::SystemClock;
use closeloop::store::Store;
use closeloop::{Runtime, TokenScope};
use serde_json::{json, Map, Value};

use super::{ms, percentile};

const APP: &str = r#"
app: {id: bench-http, title: {zh: 压测, en: HTTP bench}, time_zone: Asia/Shanghai}
roles: [{id: agent, label: {zh: 坐席, en: Agent}}]
forms:
  - id: ticket
    label: {zh: 工单, en: Ticket}
    fields:
      - {id: title, type: text, label: {zh: 标题, en: Title}, required: true}
      - {id: note, type: text, label: {zh: 处理说明, en: Note}}
    states:
      - {id: open, initial: true}
      - {id: done, final: true}
    actions:
      - {id: close, from: [open], to: done, roles: [agent], requires: [note]}
"#;

/// What one side measured.
struct Side {
    operations: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Side {
    fn throughput(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn json(&self) -> Value {
        json!({"operations": self.operations, "seconds": self.elapsed.as_secs_f64(),
            "ops_per_second": self.throughput(), "p50_ms": ms(percentile(&self.latencies, 0.5)),
            "p99_ms": ms(percentile(&self.latencies, 0.99))})
    }
}

fn runtime(location: &str, agents: usize) -> Result<Runtime, String> {
    let store = super::open(location)?;
    let mut rt = Runtime::open(store, Arc::new(SystemClock)).map_err(|e| e.to_string())?;
    let files = closeloop::AppFiles { app_yaml: APP.to_string(), ..Default::default() };
    rt.install(&files, "system", false).map_err(|e| e.to_string())?;
    let mut csv = String::from("id,name,roles,region,manager,active,capacity\n");
    for i in 0..agents {
        csv.push_str(&format!("a{i},坐席{i},agent,,,true,\n"));
    }
    rt.import_members(csv.as_bytes(), "system").map_err(|e| e.to_string())?;
    Ok(rt)
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// The library side: `operations` create-and-close pairs on one runtime.
fn library(location: &str, operations: usize, agents: usize) -> Result<Side, String> {
    let mut rt = runtime(location, agents)?;
    let mut latencies = Vec::with_capacity(operations);
    let started = Instant::now();
    for i in 0..operations {
        let t = Instant::now();
        let actor = format!("a{}", i % agents);
        let r = rt.submit("ticket", obj(json!({"title": format!("工单 {i}")})), &actor).map_err(|e| e.to_string())?;
        rt.act("ticket", &r.id, "close", &actor, obj(json!({"note": "已处理"}))).map_err(|e| e.to_string())?;
        latencies.push(t.elapsed());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Ok(Side { operations, elapsed, latencies })
}

/// One keep-alive HTTP/1.1 connection.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    token: String,
}

impl Client {
    fn post(&mut self, path: &str, body: &str) -> Result<(u16, String), String> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.token,
            body.len()
        );
        self.writer.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
        self.writer.write_all(body.as_bytes()).map_err(|e| e.to_string())?;
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line).map_err(|e| e.to_string())?;
        let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
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
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// The HTTP side: `clients` threads share `operations` create-and-close pairs.
fn over_http(location: &str, operations: usize, clients: usize, workers: usize) -> Result<Side, String> {
    let mut rt = runtime(location, clients)?;
    let mut tokens = Vec::with_capacity(clients);
    for i in 0..clients {
        let (_, secret) = rt
            .create_token(&format!("bench-{i}"), &format!("a{i}"), TokenScope::Write, "system")
            .map_err(|e| e.to_string())?;
        tokens.push(secret);
    }
    drop(rt);
    let db = location.to_string();
    let open = move || Runtime::open(Store::connect(&db)?, Arc::new(SystemClock));
    let pool = Arc::new(closeloop::http::Pool::start(workers, clients * 2, open).map_err(|e| e.to_string())?);
    let api = closeloop::http::Api::new(pool.clone(), "bench-events-token").map_err(|e| e.to_string())?;
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
    // The operations shared out exactly: the first `operations % clients` clients do one more.
    let share = |c: usize| operations / clients + usize::from(c < operations % clients);
    let started = Instant::now();
    let results: Vec<Result<Vec<Duration>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = tokens
            .iter()
            .enumerate()
            .map(|(c, token)| {
                s.spawn(move || -> Result<Vec<Duration>, String> {
                    let stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
                    stream.set_nodelay(true).map_err(|e| e.to_string())?;
                    let writer = stream.try_clone().map_err(|e| e.to_string())?;
                    let mut client = Client { reader: BufReader::new(stream), writer, token: token.clone() };
                    let mut times = Vec::with_capacity(share(c));
                    for i in 0..share(c) {
                        let t = Instant::now();
                        let title = json!({"title": format!("工单 {c}-{i}")}).to_string();
                        let (status, body) = client.post("/api/v1/records/ticket", &title)?;
                        if status != 201 {
                            return Err(format!("create answered {status}: {body}"));
                        }
                        let id = serde_json::from_str::<Value>(&body)
                            .ok()
                            .and_then(|v| v["id"].as_str().map(str::to_string));
                        let id = id.ok_or("create answered no id")?;
                        let (status, body) = client
                            .post(&format!("/api/v1/records/ticket/{id}/actions/close"), r#"{"note":"已处理"}"#)?;
                        if status != 200 {
                            return Err(format!("close answered {status}: {body}"));
                        }
                        times.push(t.elapsed());
                    }
                    Ok(times)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a client thread panicked".into()))).collect()
    });
    let elapsed = started.elapsed();
    let _ = stop_tx.send(());
    let _ = serving.join();
    let mut latencies = Vec::new();
    for r in results {
        latencies.extend(r?);
    }
    latencies.sort();
    Ok(Side { operations: latencies.len(), elapsed, latencies })
}

/// Runs both sides and reports them.
pub fn run(
    mut scratch: super::Scratch,
    operations: usize,
    clients: usize,
    workers: usize,
    json_output: bool,
) -> Result<String, String> {
    let lib = library(&scratch.fresh("library")?, operations, clients)?;
    let http = over_http(&scratch.fresh("http")?, operations, clients, workers);
    let place = scratch.describe();
    drop(scratch);
    let http = http?;
    let ratio = lib.throughput() / http.throughput().max(1e-9);
    if json_output {
        let out = json!({"databases": place, "operation": "create a record and do an action on it", "clients": clients,
            "workers": workers, "library": lib.json(), "http": http.json(),
            "library_over_http_throughput": ratio});
        return Ok(serde_json::to_string_pretty(&out).unwrap_or_default());
    }
    let line = |name: &str, s: &Side| {
        format!(
            "{name:<28} {:>7} ops {:>9.1} ops/s   p50 {:>8.2} ms   p99 {:>8.2} ms",
            s.operations,
            s.throughput(),
            ms(percentile(&s.latencies, 0.5)),
            ms(percentile(&s.latencies, 0.99))
        )
    };
    Ok(format!(
        "bench http: create a ticket and close it, on a fresh database each ({place})\n{}\n{}\nthroughput ratio library / HTTP: {ratio:.2}",
        line("library (one runtime)", &lib),
        line(&format!("HTTP ({clients} clients, {workers} workers)"), &http),
    ))
}
