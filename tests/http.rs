//! The HTTP API through a real `closeloop serve` on 127.0.0.1: tokens, body limits, and
//! RELIABILITY S10, a burst of events each running a script to the end of its budget while the
//! server keeps answering.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::Cli;

pub(crate) const TOKEN: &str = "s10-test-token-4f1c";

/// An event whose automation runs a script that never finishes by itself: each one spends the
/// app's whole script budget (15 ms) before the engine stops it.
const BURNER: &str = r#"
app: {id: burner, title: Burner, time_zone: Asia/Shanghai, script_deadline_ms: 15}
forms:
  - id: ticket
    key: [code]
    fields:
      - {id: code, type: text, required: true}
events:
  - id: ping
    fields:
      - {id: code, type: text, required: true}
    target: {form: ticket, match: {code: code}}
automations:
  - id: burn
    when: {event: ping}
    do:
      - script: "let n = 0; loop { n += 1; }"
"#;

/// `closeloop serve` on a free port of 127.0.0.1, stopped (SIGTERM) when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: String,
    stopped: Option<Option<i32>>,
}

impl Server {
    /// Tests of the worker pool send hundreds of requests at once from 127.0.0.1, so the cap on
    /// one client's connections is raised for them (`per_client_cap` tests it).
    pub(crate) fn start(cli: &Cli, workers: &str, queue: &str) -> Server {
        Server::start_args(cli, &["--workers", workers, "--queue", queue, "--max-per-client", "512"])
    }

    /// A server without its scheduler: these tests fire timers with `tick --now` themselves.
    pub(crate) fn start_args(cli: &Cli, args: &[&str]) -> Server {
        let mut full = args.to_vec();
        full.push("--no-scheduler");
        Server::spawn(cli, &full).0
    }

    /// `closeloop serve` as one process runs closeloop (the scheduler beside the server); what
    /// it prints after the listening line is collected.
    pub(crate) fn one_process(cli: &Cli) -> (Server, std::sync::Arc<std::sync::Mutex<String>>) {
        Server::spawn(cli, &[])
    }

    fn spawn(cli: &Cli, args: &[&str]) -> (Server, std::sync::Arc<std::sync::Mutex<String>>) {
        let mut full = vec!["serve", "--listen", "127.0.0.1:0"];
        full.extend_from_slice(args);
        let mut child = cli
            .command_at(None, &full)
            // A token read from a file keeps its newline; it is not part of the token.
            .env("CLOSELOOP_API_TOKEN", format!("{TOKEN}\n"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut line).unwrap();
        let addr = line.split("http://").nth(1).and_then(|r| r.split_whitespace().next()).unwrap().to_string();
        // The rest is read as it comes, so a full pipe never stalls the server.
        let said = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = said.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            while out.read_line(&mut text).unwrap_or(0) > 0 {
                sink.lock().unwrap().push_str(&text);
                text.clear();
            }
        });
        (Server { child, addr, stopped: None }, said)
    }
}

impl Server {
    /// SIGTERM, then its exit code; killed if it has not stopped within 20 s.
    fn stop(&mut self) -> Option<i32> {
        if let Some(code) = self.stopped {
            return code;
        }
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        let code = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status.code(),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        self.stopped = Some(code);
        code
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One HTTP/1.1 request; the status, the headers and the body.
fn request(addr: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String, String) {
    request_with(addr, method, path, token, "", body)
}

/// [`request`] with more header lines (each ending in `\r\n`).
pub(crate) fn request_with(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    extra: &str,
    body: &str,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn burner(name: &str) -> Cli {
    let cli = Cli::new(name, "2026-11-30T09:00:00+08:00");
    std::fs::create_dir_all(cli.path("app")).unwrap();
    std::fs::write(cli.path("app/app.yaml"), BURNER).unwrap();
    cli.ok(&["install", &cli.path("app").display().to_string()]);
    cli.ok_at(None, &["submit", "ticket", "--as", "system", "--data", r#"{"code":"T-1"}"#]);
    cli
}

#[test]
fn events_need_the_token_a_json_object_and_a_body_under_the_limit() {
    let cli = burner("http-basics");
    let server = Server::start(&cli, "1", "8");
    let addr = server.addr.as_str();
    assert_eq!(request(addr, "GET", "/healthz", None, "").0, 200);
    let ping = r#"{"code":"T-1"}"#;
    let (status, head, _) = request(addr, "POST", "/api/events/ping", None, ping);
    assert_eq!(status, 401);
    assert!(head.to_lowercase().contains("www-authenticate: bearer"), "{head}");
    assert_eq!(request(addr, "POST", "/api/events/ping", Some("wrong"), ping).0, 401);
    assert_eq!(request(addr, "POST", "/api/events/ping", Some(&format!("{TOKEN}x")), ping).0, 401);
    let (status, _, body) = request(addr, "POST", "/api/events/pnig", Some(TOKEN), ping);
    assert!(status == 400 && body.contains("did you mean `ping`"), "{status} {body}");
    assert_eq!(request(addr, "POST", "/api/events/ping", Some(TOKEN), "[1, 2]").0, 400);
    let (status, _, body) = request(addr, "POST", "/api/events/ping", Some(TOKEN), r#"{"code":"T-404"}"#);
    assert!(status == 404 && body.contains("ticket with code = \\\"T-404\\\" does not exist"), "{status} {body}");
    // Y3/U1: a 50 MB upload is refused from its declared length, before a byte of it is sent.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST /api/events/ping HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 52428800\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut status = [0u8; 12];
    stream.read_exact(&mut status).unwrap();
    assert_eq!(&status, b"HTTP/1.1 413");
    // A good one runs the automation; its script is stopped at its budget, the run recorded.
    let (status, _, body) = request(addr, "POST", "/api/events/ping", Some(TOKEN), ping);
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["runs"][0]["status"], "failed", "{report}");
    assert_eq!(cli.query("SELECT COUNT(*) FROM events WHERE kind = 'event.received' AND actor = 'api'", &[]), 1);
    // The sender's retry with its Idempotency-Key is answered from the first, and runs nothing.
    let keyed =
        |body: &str| request_with(addr, "POST", "/api/events/ping", Some(TOKEN), "Idempotency-Key: k-1\r\n", body);
    let (first, _, body) = keyed(ping);
    assert!(first == 200 && !body.contains("replayed"), "{body}");
    let (again, _, body) = keyed(ping);
    assert!(again == 200 && body.contains("\"replayed\":true"), "{body}");
    assert_eq!(keyed(r#"{"code":"T-2"}"#).0, 422, "the key with other data");
    let twice = "Idempotency-Key: k-1\r\nIdempotency-Key: k-2\r\n";
    assert_eq!(request_with(addr, "POST", "/api/events/ping", Some(TOKEN), twice, ping).0, 400);
    assert_eq!(cli.query("SELECT COUNT(*) FROM events WHERE kind = 'event.received' AND actor = 'api'", &[]), 2);
    let mut server = server;
    assert_eq!(server.stop(), Some(0), "SIGTERM stops it cleanly");
}

#[test]
fn s10_two_hundred_concurrent_budget_burning_events_leave_the_server_responsive() {
    let cli = burner("http-s10");
    let server = Server::start(&cli, "2", "256");
    let addr = server.addr.clone();
    let done = std::sync::atomic::AtomicBool::new(false);
    let started = Instant::now();
    let (statuses, health) = std::thread::scope(|s| {
        let probe = s.spawn(|| {
            let mut times = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                assert_eq!(request(&addr, "GET", "/healthz", None, "").0, 200);
                times.push(t.elapsed());
                std::thread::sleep(Duration::from_millis(20));
            }
            times
        });
        let senders: Vec<_> = (0..200)
            .map(|_| s.spawn(|| request(&addr, "POST", "/api/events/ping", Some(TOKEN), r#"{"code":"T-1"}"#).0))
            .collect();
        let statuses: Vec<u16> = senders.into_iter().map(|h| h.join().unwrap()).collect();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (statuses, probe.join().unwrap())
    });
    let elapsed = started.elapsed();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // Every event is on record, each run stopped at its budget and kept for a retry.
    assert_eq!(cli.query("SELECT COUNT(*) FROM events WHERE kind = 'event.received'", &[]), 200);
    let failed_runs = if cli.on_postgres() {
        "SELECT COUNT(*) FROM events WHERE kind = 'automation.run' AND body::jsonb ->> 'status' = 'failed'"
    } else {
        "SELECT COUNT(*) FROM events WHERE kind = 'automation.run' AND json_extract(body, '$.status') = 'failed'"
    };
    assert_eq!(cli.query(failed_runs, &[]), 200);
    let mut health = health;
    health.sort();
    let p99 = health[(health.len() - 1) * 99 / 100];
    println!("S10: 200 events in {elapsed:?}; /healthz p99 {p99:?} over {} probes", health.len());
    assert!(health.len() >= 3, "the burst was probed");
    assert!(p99 < Duration::from_millis(500), "the server stayed responsive: p99 {p99:?}");
    assert!(cli.ok_at(None, &["audit", "verify"]).contains("ok"));
}

#[test]
fn a_full_queue_answers_503_with_retry_after_and_loses_nothing_it_accepted() {
    let cli = burner("http-queue");
    let server = Server::start(&cli, "1", "2");
    let addr = server.addr.clone();
    let answers: Vec<(u16, String)> = std::thread::scope(|s| {
        let senders: Vec<_> = (0..20)
            .map(|_| {
                s.spawn(|| {
                    let (status, head, _) =
                        request(&addr, "POST", "/api/events/ping", Some(TOKEN), r#"{"code":"T-1"}"#);
                    (status, head)
                })
            })
            .collect();
        senders.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let accepted = answers.iter().filter(|(s, _)| *s == 200).count();
    let busy: Vec<&String> = answers.iter().filter(|(s, _)| *s == 503).map(|(_, h)| h).collect();
    assert_eq!(accepted + busy.len(), 20, "{answers:?}");
    assert!(!busy.is_empty(), "one worker and two places cannot take twenty at once");
    assert!(busy.iter().all(|h| h.to_lowercase().contains("retry-after: 1")), "{busy:?}");
    assert_eq!(
        cli.query("SELECT COUNT(*) FROM events WHERE kind = 'event.received'", &[]) as usize,
        accepted,
        "each accepted event was stored, each refused one was not"
    );
    assert_eq!(request(&addr, "GET", "/healthz", None, "").0, 200);
}

#[test]
fn an_event_sent_again_with_its_idempotency_key_is_received_once() {
    use closeloop::{clock::ManualClock, EngineError, Runtime};
    let clock = std::sync::Arc::new(ManualClock::new("2026-11-23T10:00:00+08:00".parse().unwrap()));
    let mut rt = Runtime::open(crate::support::fresh_store(), clock).unwrap();
    let t = closeloop::template("customer-success").unwrap();
    rt.install(&t.app_files(), "system", false).unwrap();
    let file = |name: &str| t.files.iter().find(|(p, _)| *p == name).unwrap().1.as_bytes();
    rt.import_members(file("data/members.csv"), "system").unwrap();
    rt.import_csv("account", file("data/accounts.csv"), &Default::default(), &mut |_| {}).unwrap();
    let paid = |amount: i64| {
        serde_json::json!({"customer": "上海明远科技有限公司", "amount": amount, "paid_at": "2026-11-20"})
            .as_object()
            .cloned()
            .unwrap()
    };
    let first = rt.event_once("payment.received", paid(48000), "api", Some("erp-0042")).unwrap();
    assert!(!first.replayed && !first.runs.is_empty());
    let again = rt.event_once("payment.received", paid(48000), "api", Some("erp-0042")).unwrap();
    assert!(again.replayed, "the retry is answered from the first");
    assert_eq!((again.record, again.runs), (first.record, first.runs));
    assert_eq!(rt.tasks(None, false, true).unwrap().len(), 3, "its tasks were opened once");
    let received = rt.activity("account", "ACC-00001").unwrap().iter().filter(|a| a.kind == "event.received").count();
    assert_eq!(received, 1);
    assert!(matches!(
        rt.event_once("payment.received", paid(1), "api", Some("erp-0042")),
        Err(EngineError::KeyReused(_))
    ));
    assert!(matches!(rt.event_once("payment.received", paid(1), "api", Some("a key")), Err(EngineError::Input(_))));
    // The app changes (the event now needs a field the retry lacks): the retry still replays.
    let mut files = t.app_files();
    files.app_yaml = files.app_yaml.replacen(
        "      - {id: paid_at, type: date, label: {zh: 回款日期, en: Paid on}, required: true}\n",
        "      - {id: paid_at, type: date, label: {zh: 回款日期, en: Paid on}, required: true}\n      - {id: invoice, type: text, required: true}\n",
        1,
    );
    rt.install(&files, "system", false).unwrap();
    assert!(rt.event_once("payment.received", paid(48000), "api", Some("erp-0042")).unwrap().replayed);
    assert!(matches!(
        rt.event_once("payment.received", paid(48000), "api", Some("erp-0043")),
        Err(EngineError::Invalid(_))
    ));
    // Without a key, each sending is an event of its own.
    let mut paid_now = paid(48000);
    paid_now.insert("invoice".into(), serde_json::json!("INV-7"));
    rt.event("payment.received", paid_now, "api").unwrap();
    let received = rt.activity("account", "ACC-00001").unwrap().iter().filter(|a| a.kind == "event.received").count();
    assert_eq!(received, 2);
}

#[test]
fn the_penetration_report_over_http_matches_the_command_and_needs_the_token() {
    let cli = Cli::new("http-report", "2026-11-02T09:00:00+08:00");
    cli.ok(&["install", "lead-followup"]);
    cli.ok(&["members", "import", "app-templates/lead-followup/data/members.csv"]);
    for phone in ["13800138001", "13800138002"] {
        let lead =
            format!(r#"{{"source":"expo","customer":"上海明远","phone":"{phone}","region":"east","owner":"m_li"}}"#);
        cli.ok(&["submit", "lead", "--as", "m_li", "--data", &lead]);
    }
    let contact = r#"{"summary":"电话沟通","next_step":"演示"}"#;
    cli.ok_at(
        Some("2026-11-02T12:00:00+08:00"),
        &["act", "lead", "LEAD-2026-00001", "contact", "--as", "m_li", "--data", contact],
    );
    let server = Server::start(&cli, "2", "8");
    let path = "/api/reports/penetration?from=2026-11-02&to=2026-11-08&metric=lead_first_followup&by=member%2Cregion";
    assert_eq!(request(&server.addr, "GET", path, None, "").0, 401);
    let (status, _, body) = request(&server.addr, "GET", path, Some(TOKEN), "");
    assert_eq!(status, 200, "{body}");
    let over_http: serde_json::Value = serde_json::from_str(&body).unwrap();
    let command = cli.json_at(
        None,
        &[
            "report",
            "penetration",
            "lead_first_followup",
            "--from",
            "2026-11-02",
            "--to",
            "2026-11-08",
            "--by",
            "member,region",
        ],
    );
    assert_eq!(over_http["metrics"], command["metrics"]);
    assert_eq!(
        (over_http["metrics"][0]["population"].as_u64(), over_http["metrics"][0]["penetrated"].as_u64()),
        (Some(2), Some(1))
    );
    let (status, head, page) = request(&server.addr, "GET", &format!("{path}&format=html"), Some(TOKEN), "");
    assert_eq!(status, 200);
    assert!(head.to_lowercase().contains("content-type: text/html; charset=utf-8") && page.contains("<svg"), "{head}");
    let (status, head, csv) = request(&server.addr, "GET", &format!("{path}&format=csv"), Some(TOKEN), "");
    assert!(
        status == 200 && head.to_lowercase().contains("text/csv") && csv.contains("lead_first_followup,total,,2,1,2,0"),
        "{csv}"
    );
    let (status, _, body) =
        request(&server.addr, "GET", "/api/reports/penetration?from=2026-13-01&to=2026-11-08", Some(TOKEN), "");
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("\"parameter\":\"from\""), "{body}");
    let (status, _, body) = request(&server.addr, "GET", "/api/reports/penetration?from=2026-11-01", Some(TOKEN), "");
    assert!(status == 422 && body.contains("`to` is required"), "{body}");
}

#[test]
fn six_hundred_idle_connections_from_one_client_neither_slow_the_health_check_nor_take_other_seats() {
    let cli = burner("http-idle");
    let server = Server::start_args(&cli, &["--workers", "2", "--queue", "16"]);
    let addr = server.addr.clone();
    // One client opens 600 connections and sends nothing on them.
    let idle: Vec<TcpStream> = (0..600).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(request(&addr, "GET", "/healthz", None, "").0, 200);
        times.push(t.elapsed());
    }
    times.sort();
    println!("/healthz beside 600 idle connections: max {:?}", times[times.len() - 1]);
    assert!(times[times.len() - 1] < Duration::from_millis(500), "{times:?}");
    // Past its 64 seats, the same client's real work is told to come back, not queued.
    let (status, head, _) = request(&addr, "POST", "/api/events/ping", Some(TOKEN), r#"{"code":"T-1"}"#);
    assert_eq!(status, 503, "{head}");
    assert!(head.to_lowercase().contains("retry-after"), "{head}");
    drop(idle);
    // Once they are gone, its seats are free again.
    std::thread::sleep(Duration::from_millis(300));
    let (status, _, _) = request(&addr, "POST", "/api/events/ping", Some(TOKEN), r#"{"code":"T-1"}"#);
    assert_eq!(status, 200);
}

#[test]
fn bench_http_drives_the_same_operations_over_http_and_through_the_library() {
    let cli = Cli::system_clock("bench-http");
    let out = cli.json(&["bench", "http", "--operations", "40", "--clients", "4"]);
    assert_eq!(out["library"]["operations"], 40, "{out}");
    assert_eq!(out["http"]["operations"], 40, "{out}");
    assert!(out["http"]["p99_ms"].as_f64().unwrap() >= out["http"]["p50_ms"].as_f64().unwrap(), "{out}");
    assert!(out["library_over_http_throughput"].as_f64().unwrap() > 0.0, "{out}");
}

#[test]
fn bench_pages_renders_the_list_and_record_pages_beside_the_json_api() {
    let cli = Cli::system_clock("bench-pages");
    let out = cli.json(&["bench", "pages", "--records", "120", "--clients", "4", "--rounds", "3"]);
    assert_eq!(out["records"], 120, "{out}");
    let kinds = out["kinds"].as_array().unwrap();
    assert_eq!(kinds.len(), 4);
    for k in kinds {
        assert_eq!(k["answers"], 12, "{k}");
        assert!(k["p99_ms"].as_f64().unwrap() >= k["p50_ms"].as_f64().unwrap(), "{k}");
    }
    assert!(kinds[0]["mean_bytes"].as_u64().unwrap() > 1000, "a list page holds its records: {}", kinds[0]);
}

#[test]
fn one_serve_process_also_fires_timers_and_delivers_then_stops_cleanly() {
    let cli = Cli::system_clock("one-process");
    cli.ok(&["install", "lead-followup"]);
    cli.ok(&["members", "import", "app-templates/lead-followup/data/members.csv"]);
    // A lead that came in two days ago and was never contacted: its 24-hour timer is due.
    let two_days_ago = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(48)).to_string();
    let data = r#"{"source":"expo","customer":"常州新材","phone":"13900000011","region":"east"}"#;
    let id = cli.json_at(Some(&two_days_ago), &["submit", "lead", "--as", "m_ops", "--data", data])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (mut server, said) = Server::one_process(&cli);
    let deadline = Instant::now() + Duration::from_secs(30);
    let on_board = || cli.json(&["board", "supervisor"]).as_array().unwrap().iter().any(|i| i["record"] == id.as_str());
    while !on_board() {
        assert!(Instant::now() < deadline, "the timer did not fire: {}", said.lock().unwrap());
        std::thread::sleep(Duration::from_millis(200));
    }
    // The server answers all the while.
    let (status, _, _) = request(&server.addr, "GET", "/healthz", None, "");
    assert_eq!(status, 200);
    assert_eq!(server.stop(), Some(0), "SIGTERM stops server and scheduler cleanly");
    let said = said.lock().unwrap().clone();
    assert!(said.contains("escalate") || said.contains("done"), "the pass is printed: {said}");
    assert!(said.contains("scheduler stopped cleanly"), "{said}");
    // With --no-scheduler, another process runs the timers: nothing fires here.
    let later = Cli::system_clock("one-process-off");
    later.ok(&["install", "lead-followup"]);
    later.ok(&["members", "import", "app-templates/lead-followup/data/members.csv"]);
    later.ok_at(Some(&two_days_ago), &["submit", "lead", "--as", "m_ops", "--data", data]);
    let quiet = Server::start(&later, "1", "4");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(later.json(&["board", "supervisor"]).as_array().unwrap().is_empty(), "no scheduler, no firing");
    drop(quiet);
}
