//! Delivering the outbox to real servers on 127.0.0.1 started by the tests: a webhook receiver
//! that checks signatures and keys, a failing one, a slow one, and an SMTP server; and
//! `closeloop run` as a real process with real time (RELIABILITY D3, O1, O2).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use closeloop::clock::ManualClock;
use closeloop::{AppFiles, Runtime};
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};

/// A webhook receiver: records each request and answers with the status it is told to,
/// after the delay it is told to.
#[derive(Clone)]
struct Hook {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
    status: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU64>,
    reply: Arc<Mutex<String>>,
}

#[derive(Debug, Clone)]
struct Request {
    headers: BTreeMap<String, String>,
    body: String,
    at: Instant,
}

impl Hook {
    fn start() -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let hook = Hook {
            url: format!("http://{}/hook", listener.local_addr().unwrap()),
            requests: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            delay_ms: Arc::new(AtomicU64::new(0)),
            reply: Arc::new(Mutex::new("ok".into())),
        };
        let h = hook.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let h = h.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream);
                    let mut headers = BTreeMap::new();
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        if let Some((k, v)) = line.trim_end().split_once(':') {
                            headers.insert(k.trim().to_lowercase(), v.trim().to_string());
                        }
                    }
                    let length: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
                    let mut body = vec![0; length];
                    let _ = reader.read_exact(&mut body);
                    h.requests.lock().unwrap().push(Request {
                        headers,
                        body: String::from_utf8_lossy(&body).into_owned(),
                        at: Instant::now(),
                    });
                    std::thread::sleep(Duration::from_millis(h.delay_ms.load(Ordering::SeqCst)));
                    let status = h.status.load(Ordering::SeqCst);
                    let mut stream = reader.into_inner();
                    let reply = h.reply.lock().unwrap().clone();
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                        reply.len()
                    );
                });
            }
        });
        hook
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// Checks a request's signature the way a receiver would (docs/notifications.md).
fn verify(secret: &str, r: &Request) -> bool {
    let Some(header) = r.headers.get("x-closeloop-signature") else { return false };
    let mut t = "";
    let mut v1 = "";
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = x,
            Some(("v1", x)) => v1 = x,
            _ => {}
        }
    }
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", r.body).as_bytes());
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    expected == v1
}

/// A minimal SMTP server: accepts every message and keeps its text.
fn smtp_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mail: Arc<Mutex<Vec<String>>> = Arc::default();
    let kept = mail.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut out = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            let _ = write!(out, "220 test ESMTP\r\n");
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                let command = line.trim_end().to_uppercase();
                if command.starts_with("EHLO") {
                    let _ = write!(out, "250-test\r\n250 8BITMIME\r\n");
                } else if command == "DATA" {
                    let _ = write!(out, "354 go on\r\n");
                    let mut data = String::new();
                    let mut l = String::new();
                    while reader.read_line(&mut l).unwrap_or(0) > 0 && l != ".\r\n" {
                        data.push_str(&l);
                        l.clear();
                    }
                    kept.lock().unwrap().push(data);
                    let _ = write!(out, "250 queued\r\n");
                } else if command == "QUIT" {
                    let _ = write!(out, "221 bye\r\n");
                    break;
                } else {
                    let _ = write!(out, "250 OK\r\n");
                }
                line.clear();
            }
        }
    });
    (port, mail)
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = text.bytes().filter(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/').collect();
    let mut out = Vec::new();
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= u32::from(value(*c)) << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    out
}

const APP: &str = r#"
app: {id: notices, title: Notices, time_zone: Asia/Shanghai, language: zh}
roles: [{id: rep}]
forms:
  - id: ticket
    owner_field: owner
    fields:
      - {id: title, type: text, required: true}
      - {id: owner, type: member}
      - {id: channel, type: text}
automations:
  - id: tell
    when: {created: ticket}
    if: {field: channel, empty: false}
    do:
      - notify: {channel: hook, message: hello, to: {field: owner}}
      - notify: {channel: mail, message: hello, to: {field: owner}}
  - id: tell_other
    when: {created: ticket}
    if: {field: channel, eq: both}
    do:
      - notify: {channel: hook2, message: hello, to: {field: owner}}
  - id: soon
    when: {timer: {form: ticket, after: 2s, from: created_at}}
    if: {field: channel, empty: true}
    do:
      - notify: {channel: hook, message: due, to: {field: owner}}
channels:
  - {id: hook, kind: webhook}
  - {id: hook2, kind: webhook}
  - {id: mail, kind: email}
messages:
  - id: hello
    subject: {zh: "新工单：{{ title }}", en: "New ticket: {{ title }}"}
    text: {zh: "新工单：{{ title }}", en: "New ticket: {{ title }}"}
  - id: due
    text: {zh: "到期：{{ title }}", en: "Due: {{ title }}"}
"#;

const TEAM: &[u8] = b"id,name,roles,region,manager,active,capacity,email,phone\nm_li,\xe6\x9d\x8e\xe4\xbc\x9f,rep,east,,true,10,li@example.com,13800138000\n";

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

struct World {
    rt: Runtime,
    clock: Arc<ManualClock>,
}

fn world() -> World {
    let clock = Arc::new(ManualClock::new("2026-11-26T09:00:00+08:00".parse().unwrap()));
    let mut rt = Runtime::open(crate::support::fresh_store(), clock.clone()).unwrap();
    rt.install(&AppFiles { app_yaml: APP.into(), ..AppFiles::default() }, "system", false).unwrap();
    rt.import_members(TEAM, "system").unwrap();
    World { rt, clock }
}

pub(crate) fn set(rt: &mut Runtime, channel: &str, pairs: &[(&str, &str)]) {
    let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    rt.set_channel(channel, &pairs, "system").unwrap();
}

#[test]
fn a_webhook_is_signed_and_keeps_its_key_on_every_retry() {
    use closeloop::DeliveryOutcome;
    // O2.
    let hook = Hook::start();
    let mut w = world();
    set(&mut w.rt, "hook", &[("url", &hook.url), ("secret", "s3cret-签名")]);
    w.rt.submit("ticket", obj(json!({"title": "打印机坏了", "owner": "m_li", "channel": "hook"})), "m_li").unwrap();
    hook.status.store(500, Ordering::SeqCst);
    let first = w.rt.deliver().unwrap();
    let d = first.deliveries.iter().find(|d| d.channel == "hook").unwrap();
    assert_eq!(d.outcome, DeliveryOutcome::Retry);
    assert!(
        first.unconfigured.iter().any(|u| u.starts_with("mail: its settings need host, from")),
        "{:?}",
        first.unconfigured
    );
    // Not due again until the backoff has passed.
    assert!(w.rt.deliver().unwrap().deliveries.is_empty());
    w.clock.advance(jiff::SignedDuration::from_mins(1));
    assert_eq!(w.rt.deliver().unwrap().deliveries[0].outcome, DeliveryOutcome::Retry);
    hook.status.store(200, Ordering::SeqCst);
    w.clock.advance(jiff::SignedDuration::from_mins(2));
    let third = w.rt.deliver().unwrap();
    assert_eq!(third.deliveries[0].outcome, DeliveryOutcome::Sent);
    let requests = hook.requests();
    assert_eq!(requests.len(), 3);
    let key = requests[0].headers["idempotency-key"].clone();
    assert!(requests.iter().all(|r| r.headers["idempotency-key"] == key), "the same key on every retry");
    assert!(requests.iter().all(|r| verify("s3cret-签名", r)), "every request is signed");
    let body: Value = serde_json::from_str(&requests[2].body).unwrap();
    assert_eq!((body["body"].as_str(), body["key"].as_str()), (Some("新工单：打印机坏了"), Some(key.as_str())));
    assert!(!verify("wrong", &requests[0]));
    // Every attempt is on record, and the secret is never shown.
    assert_eq!(w.rt.attempts(d.id).unwrap().len(), 3);
    let channels = w.rt.channels().unwrap();
    let shown = &channels.iter().find(|c| c.channel == "hook").unwrap().settings["secret"];
    assert!(!shown.contains("s3cret"), "{shown}");
}

#[test]
fn a_dead_endpoint_ends_in_a_dead_letter_that_replays_and_never_holds_up_another_channel() {
    use closeloop::DeliveryOutcome;
    // O1.
    let (down, healthy) = (Hook::start(), Hook::start());
    down.status.store(500, Ordering::SeqCst);
    down.delay_ms.store(1500, Ordering::SeqCst);
    let mut w = world();
    set(&mut w.rt, "hook", &[("url", &down.url), ("timeout_ms", "5000")]);
    set(&mut w.rt, "hook2", &[("url", &healthy.url)]);
    w.rt.submit("ticket", obj(json!({"title": "t", "owner": "m_li", "channel": "both"})), "m_li").unwrap();
    let started = Instant::now();
    let pass = w.rt.deliver().unwrap();
    assert_eq!(pass.deliveries.iter().find(|d| d.channel == "hook2").unwrap().outcome, DeliveryOutcome::Sent);
    let reached = healthy.requests()[0].at.duration_since(started);
    assert!(reached < Duration::from_millis(1000), "the healthy channel waited {reached:?} for the slow one");
    down.delay_ms.store(0, Ordering::SeqCst);
    let mut waits = Vec::new();
    let id = pass.deliveries.iter().find(|d| d.channel == "hook").unwrap().id;
    for _ in 0..10 {
        w.clock.advance(jiff::SignedDuration::from_hours(2));
        for d in w.rt.deliver().unwrap().deliveries {
            if let Some(next) = &d.next_at {
                waits.push(next.clone());
            }
        }
    }
    let message = w.rt.outbox(None).unwrap().into_iter().find(|m| m.id == id).unwrap();
    assert_eq!((message.status, message.attempts), (closeloop::OutboxStatus::Dead, closeloop::MAX_ATTEMPTS));
    assert_eq!(down.requests().len() as i64, closeloop::MAX_ATTEMPTS);
    // The dead letter is an alert in the record's trail.
    let record = message.record.clone().unwrap();
    let activity = w.rt.activity("ticket", &record).unwrap();
    assert_eq!(activity.iter().filter(|a| a.kind == "outbox.dead").count(), 1);
    // The backoff grows and is capped.
    let b = |n| closeloop::backoff("k", n).as_secs();
    assert!(b(1) >= 15 && b(1) <= 30 && b(3) > b(1) && b(20) <= 3600, "{} {} {}", b(1), b(3), b(20));
    // Replayed once the server recovers: delivered once, with the same key.
    down.status.store(200, Ordering::SeqCst);
    w.rt.retry_message(id, "system").unwrap();
    assert_eq!(w.rt.deliver().unwrap().deliveries[0].outcome, DeliveryOutcome::Sent);
    let keys: Vec<String> = down.requests().iter().map(|r| r.headers["idempotency-key"].clone()).collect();
    assert!(keys.iter().all(|k| *k == keys[0]));
    assert!(w.rt.retry_message(id, "system").is_err(), "only dead letters are replayed");
}

#[test]
fn email_reaches_a_real_smtp_server_with_its_chinese_subject_intact() {
    use closeloop::DeliveryOutcome;
    let (port, mail) = smtp_server();
    let mut w = world();
    let port = port.to_string();
    set(
        &mut w.rt,
        "mail",
        &[("host", "127.0.0.1"), ("port", &port), ("tls", "none"), ("from", "closeloop@example.com")],
    );
    w.rt.submit("ticket", obj(json!({"title": "续约合同", "owner": "m_li", "channel": "mail"})), "m_li").unwrap();
    let pass = w.rt.deliver().unwrap();
    assert_eq!(
        pass.deliveries.iter().find(|d| d.channel == "mail").unwrap().outcome,
        DeliveryOutcome::Sent,
        "{pass:?}"
    );
    let text = mail.lock().unwrap()[0].clone();
    let subject = text.lines().find_map(|l| l.strip_prefix("Subject: ")).unwrap();
    let encoded = subject.strip_prefix("=?UTF-8?B?").and_then(|s| s.strip_suffix("?=")).unwrap();
    assert_eq!(String::from_utf8(base64_decode(encoded)).unwrap(), "新工单：续约合同");
    assert!(text.contains("To: <li@example.com>"));
    let body = text.split("\r\n\r\n").nth(1).unwrap();
    assert_eq!(String::from_utf8(base64_decode(body)).unwrap(), "新工单：续约合同");
}

/// A database and an app folder for `closeloop` processes.
struct Db(crate::support::Cli);

impl Db {
    fn new(name: &str, hook: &Hook) -> Db {
        let db = Db(crate::support::Cli::system_clock(name));
        std::fs::create_dir_all(db.0.path("app")).unwrap();
        std::fs::write(db.0.path("app/app.yaml"), APP).unwrap();
        std::fs::write(db.0.path("team.csv"), TEAM).unwrap();
        db.ok(&["install", &db.path("app")]);
        db.ok(&["members", "import", &db.path("team.csv")]);
        db.ok(&["channels", "set", "hook", &format!("url={}", hook.url), "secret=s"]);
        db
    }

    fn path(&self, name: &str) -> String {
        self.0.path(name).display().to_string()
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        self.0.command(args)
    }

    fn ok(&self, args: &[&str]) -> String {
        self.0.ok(args)
    }

    fn run(&self) -> std::process::Child {
        self.command(&["run"])
            .stdout(std::fs::File::create(self.path("run.log")).unwrap())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap()
    }

    fn query(&self, sql: &str) -> i64 {
        self.0.query(sql, &[])
    }
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &std::process::Child, name: &str) {
    let status = std::process::Command::new("kill").args([name, &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

/// CPU time (user + system) a process has used, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn stop(mut child: std::process::Child) -> std::process::ExitStatus {
    signal(&child, "-TERM");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "closeloop run did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn run_fires_a_timer_within_a_second_of_its_due_time_and_idles_on_almost_no_cpu() {
    let hook = Hook::start();
    let db = Db::new("run-timely", &hook);
    let child = db.run();
    std::thread::sleep(Duration::from_millis(300));
    // A ticket whose 2-second timer is written by another process while `run` sleeps.
    let before = Instant::now();
    db.ok(&["submit", "ticket", "--as", "m_li", "--data", r#"{"title":"两秒后提醒","owner":"m_li"}"#]);
    let submitted = Instant::now();
    wait_for("the timer's webhook", Duration::from_secs(10), || !hook.requests().is_empty());
    let arrived = hook.requests()[0].at;
    let late = arrived.saturating_duration_since(submitted + Duration::from_secs(2));
    assert!(arrived >= before + Duration::from_secs(2), "not before it was due");
    assert!(late < Duration::from_secs(1), "delivered {late:?} after its due time");
    assert!(hook.requests()[0].body.contains("到期：两秒后提醒"));
    // Idle: nothing due for a minute.
    std::thread::sleep(Duration::from_millis(500));
    let (t0, c0) = (Instant::now(), cpu_ticks(child.id()));
    std::thread::sleep(Duration::from_secs(3));
    let (seconds, ticks) = (t0.elapsed().as_secs_f64(), cpu_ticks(child.id()) - c0);
    eprintln!(
        "closeloop run idle: {ticks} CPU ticks (1/100 s) in {seconds:.1} s = {:.2}% of a core",
        ticks as f64 / seconds
    );
    assert!(ticks <= 6, "idle CPU: {ticks} ticks in {seconds:.1} s");
    let status = stop(child);
    assert!(status.success(), "{status:?}");
    assert!(std::fs::read_to_string(db.path("run.log")).unwrap().contains("stopped cleanly"));
}

#[test]
fn sigterm_during_delivery_finishes_it_and_a_restart_sends_nothing_twice() {
    let hook = Hook::start();
    hook.delay_ms.store(1500, Ordering::SeqCst);
    let db = Db::new("run-sigterm", &hook);
    db.ok(&["submit", "ticket", "--as", "m_li", "--data", r#"{"title":"立即","owner":"m_li","channel":"hook"}"#]);
    let child = db.run();
    wait_for("the delivery to start", Duration::from_secs(10), || !hook.requests().is_empty());
    // The receiver holds its answer; SIGTERM arrives mid-delivery.
    let status = stop(child);
    assert!(status.success(), "{status:?}");
    assert_eq!(db.query("SELECT COUNT(*) FROM outbox WHERE channel = 'hook' AND status = 'sent'"), 1);
    let again = db.run();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(stop(again).success());
    assert_eq!(hook.requests().len(), 1, "a restart sends nothing twice");
}

#[test]
fn a_deliverer_killed_mid_send_leaves_the_message_to_be_resent_with_the_same_key() {
    // D3: the receiver has the message, the deliverer dies before recording the answer.
    let hook = Hook::start();
    hook.delay_ms.store(3000, Ordering::SeqCst);
    let db = Db::new("kill-send", &hook);
    db.ok(&["submit", "ticket", "--as", "m_li", "--data", r#"{"title":"崩溃","owner":"m_li","channel":"hook"}"#]);
    let mut child = db.command(&["outbox", "deliver"]).stdout(std::process::Stdio::null()).spawn().unwrap();
    wait_for("the request to arrive", Duration::from_secs(10), || !hook.requests().is_empty());
    signal(&child, "-KILL");
    let _ = child.wait();
    hook.delay_ms.store(0, Ordering::SeqCst);
    // Within its lease nobody resends it; after the lease, the next pass does.
    let pass = |args: &[&str]| -> Vec<Value> {
        let mut full = vec!["--format", "json"];
        full.extend_from_slice(args);
        let report: Value = serde_json::from_str(&db.ok(&full)).unwrap();
        report["deliveries"].as_array().unwrap().clone()
    };
    assert!(pass(&["outbox", "deliver"]).is_empty(), "leased to the dead deliverer");
    let later = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_mins(6)).unwrap().to_string();
    let resent = pass(&["--now", &later, "outbox", "deliver"]);
    assert_eq!(resent[0]["outcome"], "sent", "{resent:?}");
    let keys: Vec<String> = hook.requests().iter().map(|r| r.headers["idempotency-key"].clone()).collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1], "the same Idempotency-Key, so the receiver can drop the second");
    let attempts = db.ok(&["outbox", "attempts", "1"]);
    assert!(attempts.contains("interrupted") && attempts.contains("2 attempt(s)"), "{attempts}");
}

#[test]
fn a_failing_channel_spends_one_attempt_per_pass_and_holds_the_rest_untried() {
    use closeloop::DeliveryOutcome;
    let hook = Hook::start();
    hook.status.store(503, Ordering::SeqCst);
    let mut w = world();
    set(&mut w.rt, "hook", &[("url", &hook.url)]);
    for title in ["一", "二", "三"] {
        w.rt.submit("ticket", obj(json!({"title": title, "owner": "m_li", "channel": "hook"})), "m_li").unwrap();
    }
    let pass = w.rt.deliver().unwrap();
    let hooks: Vec<_> = pass.deliveries.iter().filter(|d| d.channel == "hook").collect();
    assert_eq!(hooks.len(), 1, "one attempt, the others held: {pass:?}");
    assert_eq!(hook.requests().len(), 1);
    let attempts: Vec<i64> =
        w.rt.outbox(None).unwrap().iter().filter(|m| m.channel == "hook").map(|m| m.attempts).collect();
    assert_eq!(attempts, vec![1, 0, 0], "held messages spend no attempt");
    // The next pass waits with the channel, then tries again.
    assert!(w.rt.deliver().unwrap().deliveries.is_empty());
    hook.status.store(200, Ordering::SeqCst);
    w.clock.advance(jiff::SignedDuration::from_mins(2));
    let pass = w.rt.deliver().unwrap();
    assert_eq!(pass.deliveries.iter().filter(|d| d.outcome == DeliveryOutcome::Sent).count(), 3, "{pass:?}");
}

#[test]
fn robots_that_answer_200_with_an_error_code_and_urls_that_redirect_are_not_sent() {
    use closeloop::DeliveryOutcome;
    let yaml = APP.replace("{id: hook2, kind: webhook}", "{id: hook2, kind: wecom}");
    let (robot, moved) = (Hook::start(), Hook::start());
    let clock = Arc::new(ManualClock::new("2026-11-26T09:00:00+08:00".parse().unwrap()));
    let mut rt = Runtime::open(crate::support::fresh_store(), clock).unwrap();
    rt.install(&AppFiles { app_yaml: yaml, ..AppFiles::default() }, "system", false).unwrap();
    rt.import_members(TEAM, "system").unwrap();
    set(&mut rt, "hook2", &[("url", &format!("{}?key=robot-secret-key", robot.url))]);
    set(&mut rt, "hook", &[("url", &moved.url)]);
    robot.status.store(200, Ordering::SeqCst);
    moved.status.store(301, Ordering::SeqCst);
    rt.submit("ticket", obj(json!({"title": "t", "owner": "m_li", "channel": "both"})), "m_li").unwrap();
    let pass = rt.deliver().unwrap();
    let outcome = |c: &str| pass.deliveries.iter().find(|d| d.channel == c).map(|d| d.outcome);
    assert_eq!(outcome("hook"), Some(DeliveryOutcome::Dead), "a redirect is not followed: {pass:?}");
    // The robot answered 200 with an error code: a wrong key is dead at once.
    *robot.reply.lock().unwrap() = r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#.into();
    assert_eq!(outcome("hook2"), Some(DeliveryOutcome::Sent), "the first answer was a plain ok");
    rt.submit("ticket", obj(json!({"title": "t2", "owner": "m_li", "channel": "both"})), "m_li").unwrap();
    let pass = rt.deliver().unwrap();
    let robot_pass = pass.deliveries.iter().find(|d| d.channel == "hook2").unwrap();
    assert_eq!((robot_pass.outcome.as_str(), robot_pass.status.as_deref()), ("dead", Some("93000")), "{pass:?}");
    // Too many messages a minute (45009) is worth another try.
    *robot.reply.lock().unwrap() = r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#.into();
    rt.submit("ticket", obj(json!({"title": "t3", "owner": "m_li", "channel": "both"})), "m_li").unwrap();
    let pass = rt.deliver().unwrap();
    assert_eq!(pass.deliveries.iter().find(|d| d.channel == "hook2").unwrap().outcome, DeliveryOutcome::Retry);
    let body: Value = serde_json::from_str(&robot.requests()[0].body).unwrap();
    assert_eq!(body["msgtype"], "text");
    assert_eq!(body["text"]["mentioned_list"][0], "m_li");
    // The robot's key is a credential: `channels` shows only its start.
    let shown = rt.channels().unwrap().into_iter().find(|c| c.channel == "hook2").unwrap().settings["url"].clone();
    assert!(!shown.contains("robot-secret-key"), "{shown}");
    assert!(rt.set_channel("hook", &[("url".into(), "example.com/hook".into())], "system").is_err());
}

/// An embedder's own transport: records what it was handed, answers as told.
struct Recorder {
    sent: Mutex<Vec<(String, String, String)>>,
    fail: bool,
}

impl closeloop::transport::Transport for Recorder {
    fn send(
        &self,
        kind: closeloop::model::ChannelKind,
        _settings: &closeloop::transport::Settings,
        m: &closeloop::transport::Outgoing<'_>,
        _now: jiff::Timestamp,
    ) -> Result<String, closeloop::transport::Failure> {
        self.sent.lock().unwrap().push((format!("{kind:?}"), m.key.to_string(), m.body.to_string()));
        if self.fail {
            return Err(closeloop::transport::Failure::permanent("the relay said no"));
        }
        Ok("relayed".into())
    }
}

#[test]
fn an_injected_transport_carries_every_message_and_its_answer_is_recorded() {
    use closeloop::DeliveryOutcome;
    let mut w = world();
    let recorder = Arc::new(Recorder { sent: Mutex::new(Vec::new()), fail: false });
    w.rt.set_transport(recorder.clone());
    set(&mut w.rt, "hook", &[("url", "https://hooks.example.com/x")]);
    set(&mut w.rt, "mail", &[("host", "smtp.example.com"), ("from", "closeloop@example.com")]);
    w.rt.submit("ticket", obj(json!({"title": "打印机坏了", "owner": "m_li", "channel": "hook"})), "m_li").unwrap();
    let report = w.rt.deliver().unwrap();
    assert_eq!(report.deliveries.iter().filter(|d| d.outcome == DeliveryOutcome::Sent).count(), 2, "{report:?}");
    let sent = recorder.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|(_, _, body)| body == "新工单：打印机坏了"), "{sent:?}");
    // A refusal it reports is a dead letter, as a network one would be.
    let mut w = world();
    w.rt.set_transport(Arc::new(Recorder { sent: Mutex::new(Vec::new()), fail: true }));
    set(&mut w.rt, "hook", &[("url", "https://hooks.example.com/x")]);
    w.rt.submit("ticket", obj(json!({"title": "x", "owner": "m_li", "channel": "hook"})), "m_li").unwrap();
    let report = w.rt.deliver().unwrap();
    assert!(report.deliveries.iter().any(|d| d.channel == "hook" && d.outcome == DeliveryOutcome::Dead), "{report:?}");
}

#[test]
fn a_crash_during_delivery_never_dead_letters_a_message_that_was_never_sent() {
    // Nine passes killed a moment after their first request: the old deliverer counted an
    // attempt for every leased message before sending any, so after eight crashes the whole
    // outbox was dead ("8 attempts were interrupted") though the receiver had seen a handful.
    let hook = Hook::start();
    hook.delay_ms.store(150, Ordering::SeqCst);
    let db = Db::new("crash-deliver", &hook);
    for i in 0..40 {
        let data = format!(r#"{{"title":"工单{i}","owner":"m_li","channel":"hook"}}"#);
        db.ok(&["submit", "ticket", "--as", "m_li", "--data", &data]);
    }
    let at = |minutes: i64| {
        jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_mins(minutes)).unwrap().to_string()
    };
    for k in 1..=9 {
        let seen = hook.requests().len();
        let now = at(6 * k);
        let mut child =
            db.command(&["--now", &now, "outbox", "deliver"]).stdout(std::process::Stdio::null()).spawn().unwrap();
        // A send begins, or the pass ends with nothing to send.
        wait_for("a send to begin", Duration::from_secs(20), || {
            hook.requests().len() > seen || child.try_wait().ok().flatten().is_some()
        });
        let _ = child.kill();
        let _ = child.wait();
    }
    hook.delay_ms.store(0, Ordering::SeqCst);
    for k in 10..=20 {
        if db.query("SELECT COUNT(*) FROM outbox WHERE channel = 'hook' AND status NOT IN ('sent', 'dead')") == 0 {
            break;
        }
        db.ok(&["--now", &at(6 * k), "outbox", "deliver"]);
    }
    // Each message's attempts are exactly the requests the receiver got with its key: a
    // send that never began counted nothing.
    let mut received: BTreeMap<String, i64> = BTreeMap::new();
    for r in hook.requests() {
        *received.entry(r.headers["idempotency-key"].clone()).or_default() += 1;
    }
    let rows: Vec<(String, String, i64)> =
        db.0.rows(
            "SELECT o.key, o.status, (SELECT COUNT(*) FROM outbox_attempts a WHERE a.message = o.id)
             FROM outbox o WHERE o.channel = 'hook'",
            &[],
        )
        .into_iter()
        .map(|r| match &r[..] {
            [Some(key), Some(status), Some(attempts)] => (key.clone(), status.clone(), attempts.parse().unwrap()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(rows.len(), 40);
    for (key, status, attempts) in &rows {
        let got = received.get(key).copied().unwrap_or(0);
        assert_eq!(*attempts, got, "{key} ({status}): {attempts} attempts counted, {got} requests received");
        assert!(status == "sent" || (status == "dead" && got >= 8), "{key} is {status} after {got} requests");
    }
    // Only a message whose sends kept being cut off ran out of attempts; all the others went.
    let dead = rows.iter().filter(|(_, s, _)| s == "dead").count();
    assert!(dead <= 1, "{dead} dead letters after 9 crashes: {rows:?}");
}
