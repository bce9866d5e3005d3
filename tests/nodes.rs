//! Several closeloop nodes on one PostgreSQL database, under `kill -9` (issue 16): three
//! `closeloop run` and two `closeloop serve` processes share due timers and the outbox while a
//! random node is killed and restarted, again and again. Every timer fires exactly once, every
//! message reaches a webhook receiver that counts idempotency keys, and the audit chain verifies.
//!
//! The database server is `CLOSELOOP_TEST_POSTGRES` when set; otherwise the test starts a
//! throwaway one from Debian's `postgresql` package (`initdb`, `pg_ctl` on a free port) and stops
//! it afterwards. `CLOSELOOP_NODES_TIMERS` (default 1,000) and `CLOSELOOP_NODES_ROUNDS`
//! (default 1) scale it: the issue's run is 10,000 timers, 20 rounds.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{postgres_server, root, PgDb, TempDir};

/// A PostgreSQL server for the test: the one named, or a throwaway one stopped when dropped.
struct Server {
    url: String,
    data: Option<(PathBuf, TempDir)>,
}

impl Server {
    fn start(name: &str) -> Server {
        if let Some(url) = postgres_server() {
            return Server { url, data: None };
        }
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| d.flatten().map(|e| e.path().join("bin")).filter(|b| b.join("initdb").exists()).max())
            .unwrap_or_else(|| {
                panic!(
                    "this test needs PostgreSQL's server: apt-get install postgresql, or set CLOSELOOP_TEST_POSTGRES"
                )
            });
        let dir = TempDir::new(&format!("pg-{name}"));
        std::fs::create_dir_all(&dir.0).unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // initdb refuses to run as root: then the package's own `postgres` user runs the server.
        let root_user = String::from_utf8_lossy(&Command::new("id").arg("-u").output().unwrap().stdout).trim() == "0";
        let run = |program: PathBuf, args: &[&str]| {
            let mut c = if root_user {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(program);
                c
            } else {
                Command::new(program)
            };
            let out = c.args(args).output().unwrap();
            assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        if root_user {
            assert!(Command::new("chown").args(["postgres"]).arg(&dir.0).status().unwrap().success());
        }
        let data = dir.0.join("data");
        let data_s = data.display().to_string();
        run(bin.join("initdb"), &["-D", &data_s, "-A", "trust", "-U", "closeloop", "--locale=C.UTF-8", "-E", "UTF8"]);
        let options = format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200", dir.0.display());
        let log = dir.0.join("server.log").display().to_string();
        run(bin.join("pg_ctl"), &["-D", &data_s, "-l", &log, "-w", "-o", &options, "start"]);
        Server { url: format!("postgres://closeloop@127.0.0.1:{port}/postgres"), data: Some((bin, dir)) }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some((bin, dir)) = &self.data {
            let data = dir.0.join("data").display().to_string();
            let pg_ctl = bin.join("pg_ctl").display().to_string();
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--", &pg_ctl, "-D", &data, "-m", "immediate", "stop"])
                .output();
            let _ = Command::new(&pg_ctl).args(["-D", &data, "-m", "immediate", "stop"]).output();
        }
    }
}

/// A webhook receiver that counts each idempotency key it is sent.
#[derive(Clone, Default)]
struct Receiver {
    keys: Arc<Mutex<BTreeMap<String, u32>>>,
}

impl Receiver {
    fn start() -> (Receiver, String) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let receiver = Receiver::default();
        let r = receiver.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let r = r.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream);
                    let (mut line, mut key, mut length) = (String::new(), None, 0usize);
                    while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                        if let Some((k, v)) = line.trim_end().split_once(':') {
                            match k.trim().to_ascii_lowercase().as_str() {
                                "idempotency-key" => key = Some(v.trim().to_string()),
                                "content-length" => length = v.trim().parse().unwrap_or(0),
                                _ => {}
                            }
                        }
                        line.clear();
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    if let Some(key) = key {
                        *r.keys.lock().unwrap().entry(key).or_default() += 1;
                    }
                    let _ = reader
                        .into_inner()
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
                });
            }
        });
        (receiver, url)
    }

    /// (distinct keys, requests received).
    fn counts(&self) -> (usize, u32) {
        let keys = self.keys.lock().unwrap();
        (keys.len(), keys.values().sum())
    }
}

const APP: &str = r#"
app: {id: nodes, title: Nodes, time_zone: Asia/Shanghai, language: zh}
roles: [{id: rep}]
forms:
  - id: ticket
    owner_field: owner
    fields:
      - {id: title, type: text, required: true}
      - {id: owner, type: member}
automations:
  - id: soon
    when: {timer: {form: ticket, after: 1s, from: created_at}}
    do:
      - notify: {channel: hook, message: due, to: {field: owner}}
channels:
  - {id: hook, kind: webhook}
messages:
  - id: due
    text: {zh: "到期：{{ title }}", en: "Due: {{ title }}"}
"#;

/// One database for the nodes, and what starts them.
struct Cluster {
    dir: TempDir,
    db: PgDb,
}

impl Cluster {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_closeloop"));
        c.args(args)
            .current_dir(root())
            .env("CLOSELOOP_DB", &self.db.url)
            .env("CLOSELOOP_SIGNING_KEY", "nodes-test-key")
            .env("CLOSELOOP_FILES", self.dir.0.join("files"))
            .env("CLOSELOOP_API_TOKEN", "nodes-test-token")
            .env("LANG", "C.UTF-8")
            .env_remove("CLOSELOOP_NOW")
            .env_remove("LC_ALL");
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.command(args).output().unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{args:?}: {said}");
        said
    }

    /// Node `i`: 0-2 are `closeloop run`, 3-4 `closeloop serve` (which also runs the scheduler).
    fn node(&self, i: usize) -> Child {
        let args: &[&str] = if i < 3 { &["run"] } else { &["serve", "--listen", "127.0.0.1:0"] };
        self.command(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
    }

    fn count(&self, sql: &str) -> i64 {
        let mut client = postgres::Client::connect(&self.db.url, postgres::NoTls).unwrap();
        client.query_one(sql, &[]).unwrap().get::<_, i64>(0)
    }
}

/// A small reproducible random source (xorshift), seeded from the clock; the seed is printed.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn round(server: &Server, round: usize, timers: usize, dice: &mut Dice) {
    let dir = TempDir::new(&format!("nodes-{round}"));
    std::fs::create_dir_all(&dir.0).unwrap();
    let cluster = Cluster { db: PgDb::new(&server.url, &format!("nodes_{round}")), dir };
    let (receiver, url) = Receiver::start();
    std::fs::write(cluster.dir.0.join("app.yaml"), APP).unwrap();
    cluster.ok(&["install", &cluster.dir.0.display().to_string()]);
    let team = cluster.dir.0.join("team.csv");
    std::fs::write(&team, "id,name,roles,region,manager,active,capacity\nm_li,李伟,rep,east,,true,10\n").unwrap();
    cluster.ok(&["members", "import", &team.display().to_string()]);
    cluster.ok(&["channels", "set", "hook", &format!("url={url}"), "secret=s"]);
    let tickets: Vec<String> = (0..timers).map(|i| format!(r#"{{"title":"工单{i}","owner":"m_li"}}"#)).collect();
    let file = cluster.dir.0.join("tickets.jsonl");
    std::fs::write(&file, tickets.join("\n")).unwrap();
    cluster.ok(&["submit", "ticket", "--as", "m_li", "--data", &format!("@{}", file.display())]);
    // Every timer is due a second after its ticket: all of them by now, or very soon.
    let mut nodes: Vec<Child> = (0..5).map(|i| cluster.node(i)).collect();
    let start = Instant::now();
    let mut kills = 0;
    let done = |c: &Cluster| {
        c.count("SELECT count(*) FROM timers WHERE status = 'pending'") == 0
            && c.count("SELECT count(*) FROM outbox WHERE status <> 'sent'") == 0
            && c.count("SELECT count(*) FROM outbox") as usize >= timers
    };
    // kill -9 a random node every 150-650 ms, mid-tick or mid-delivery, and start it again.
    while kills < 10 && !done(&cluster) {
        std::thread::sleep(Duration::from_millis(150 + dice.roll(500)));
        let i = dice.roll(5) as usize;
        let _ = nodes[i].kill();
        let _ = nodes[i].wait();
        nodes[i] = cluster.node(i);
        kills += 1;
    }
    // The survivors finish what nobody holds: until done, or nothing has moved for 3 s (what is
    // left is held by a killed node's lease).
    let (settle, mut moved_at, mut left) = (Instant::now(), Instant::now(), i64::MAX);
    while !done(&cluster) && settle.elapsed() < Duration::from_secs(60) && moved_at.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(200));
        let now_left = cluster.count(
            "SELECT (SELECT count(*) FROM timers WHERE status = 'pending') + (SELECT count(*) FROM outbox WHERE status <> 'sent')",
        );
        if now_left != left {
            (left, moved_at) = (now_left, Instant::now());
        }
    }
    let took = start.elapsed();
    for mut n in nodes {
        let _ = n.kill();
        let _ = n.wait();
    }
    // A node killed mid-delivery holds its messages' lease for five minutes. Rather than wait,
    // deliver at a clock past it (the clock is injected): the messages it may have sent go out
    // again with the same key.
    let later = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_mins(10)).unwrap().to_string();
    let mut recovery_passes = 0;
    while !done(&cluster) {
        assert!(recovery_passes < 20, "round {round}: not done after {recovery_passes} passes past the leases");
        cluster.ok(&["--now", &later, "tick"]);
        cluster.ok(&["--now", &later, "outbox", "deliver"]);
        recovery_passes += 1;
    }
    let fired = cluster.count("SELECT count(*) FROM timers WHERE automation = 'soon' AND status = 'fired'");
    let runs = cluster.count("SELECT count(*) FROM events WHERE kind = 'automation.run' AND body LIKE '%\"soon\"%'");
    let messages = cluster.count("SELECT count(*) FROM outbox WHERE channel = 'hook'");
    let (keys, received) = receiver.counts();
    eprintln!(
        "round {round}: {timers} timers, 5 nodes, {kills} kill -9, {:.1} s, {recovery_passes} passes past the leases: \
         fired {fired}, runs {runs}, messages {messages}, keys received {keys}, requests {received} (duplicates {})",
        took.as_secs_f64(),
        received as usize - keys
    );
    assert_eq!(fired as usize, timers, "every timer fired");
    assert_eq!(runs as usize, timers, "each exactly once");
    assert_eq!(messages as usize, timers, "one message per timer");
    assert_eq!(keys, timers, "every message arrived, once per key");
    let verify = cluster.ok(&["audit", "verify"]);
    assert!(verify.starts_with("audit ok"), "{verify}");
}

#[test]
fn five_nodes_on_one_postgresql_database_fire_every_timer_once_through_kill_9() {
    let server = Server::start("nodes");
    let env = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (timers, rounds) = (env("CLOSELOOP_NODES_TIMERS", 1000), env("CLOSELOOP_NODES_ROUNDS", 1));
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("nodes: seed {seed}");
    let mut dice = Dice(seed);
    for r in 0..rounds {
        round(&server, r, timers, &mut dice);
    }
}

/// Runs `closeloop` with `--db` given, at a fixed time; its standard output, or the test fails.
fn at_db(db: &str, args: &[&str]) -> std::process::Output {
    let mut full = vec!["--db", db];
    full.extend_from_slice(args);
    Command::new(env!("CARGO_BIN_EXE_closeloop"))
        .args(&full)
        .current_dir(root())
        .env("CLOSELOOP_NOW", "2026-11-24T09:00:00+08:00")
        .env("CLOSELOOP_SIGNING_KEY", "moving-test-key")
        .env("LANG", "C.UTF-8")
        .env_remove("CLOSELOOP_DB")
        .env_remove("LC_ALL")
        .output()
        .unwrap()
}

fn ok_at(db: &str, args: &[&str]) -> String {
    let out = at_db(db, args);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{args:?}: {said}");
    said
}

#[test]
fn an_installation_moves_from_its_sqlite_file_to_postgresql_and_goes_on_there() {
    let server = Server::start("moving");
    let dir = TempDir::new("moving");
    std::fs::create_dir_all(&dir.0).unwrap();
    let file = dir.0.join("closeloop.db").display().to_string();
    ok_at(&file, &["install", "lead-followup"]);
    ok_at(&file, &["members", "import", "app-templates/lead-followup/data/members.csv"]);
    for (i, customer) in ["上海明远科技", "杭州云帆", "苏州新客"].iter().enumerate() {
        let data = format!(r#"{{"source":"expo","customer":"{customer}","phone":"1380013800{i}","region":"east"}}"#);
        ok_at(&file, &["submit", "lead", "--as", "m_ops", "--data", &data]);
    }
    ok_at(
        &file,
        &[
            "act",
            "lead",
            "LEAD-2026-00001",
            "contact",
            "--as",
            "m_li",
            "--data",
            r#"{"summary":"电话沟通","next_step":"下周演示"}"#,
        ],
    );
    // Three days on: the sunk-lead timers fire, flag the leads and queue messages.
    ok_at(&file, &["--now", "2026-11-28T09:00:00+08:00", "tick"]);
    let head = ok_at(&file, &["audit", "head"]);

    let target = PgDb::new(&server.url, "moving");
    let moved = ok_at(&file, &["migrate", "--from", &file, "--to", &target.url]);
    assert!(moved.contains("audit ok there"), "{moved}");
    assert!(moved.contains(&format!("head {}", head.trim().split(':').nth(1).unwrap())), "{moved}");
    // The same installation, read on PostgreSQL.
    let verify = ok_at(&target.url, &["audit", "verify"]);
    assert!(verify.starts_with("audit ok"), "{verify}");
    assert_eq!(ok_at(&target.url, &["audit", "head"]), head);
    for args in [&["list", "lead"][..], &["board", "supervisor"], &["outbox"], &["history", "lead", "LEAD-2026-00001"]]
    {
        assert_eq!(ok_at(&target.url, args), ok_at(&file, args), "{args:?} reads the same on both");
    }
    // It goes on there: numbering and ids continue where the file left them.
    let next = ok_at(
        &target.url,
        &[
            "submit",
            "lead",
            "--as",
            "m_ops",
            "--data",
            r#"{"source":"expo","customer":"新客","phone":"13800138009","region":"east"}"#,
        ],
    );
    assert!(next.contains("LEAD-2026-00004"), "{next}");
    // A target that holds anything is refused, and left as it was.
    let again = at_db(&file, &["migrate", "--from", &file, "--to", &target.url]);
    let said = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(1), "{said}");
    assert!(said.contains("the target database is not empty"), "{said}");
    assert!(ok_at(&target.url, &["audit", "verify"]).starts_with("audit ok"));
    let not_url = at_db(&file, &["migrate", "--from", &file, "--to", "other.db"]);
    assert!(String::from_utf8_lossy(&not_url.stderr).contains("--to must be a postgres:// URL"));
}

#[test]
fn nodes_numbering_the_same_form_at_once_never_give_one_id_twice() {
    // Found by `bench http` on PostgreSQL: two workers read the same counter, took the same
    // number, and one failed on the record's key with a 500.
    let server = Server::start("numbering");
    let db = PgDb::new(&server.url, "numbering");
    let dir = TempDir::new("numbering");
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::write(dir.0.join("app.yaml"), APP).unwrap();
    let cluster = Cluster { dir, db };
    cluster.ok(&["install", &cluster.dir.0.display().to_string()]);
    let team = cluster.dir.0.join("team.csv");
    std::fs::write(&team, "id,name,roles,region,manager,active,capacity\nm_li,李伟,rep,east,,true,10\n").unwrap();
    cluster.ok(&["members", "import", &team.display().to_string()]);
    let nodes: Vec<_> = (0..4)
        .map(|n| {
            let url = cluster.db.url.clone();
            std::thread::spawn(move || {
                let store = closeloop::store::Store::connect(&url).unwrap();
                let clock = Arc::new(closeloop::clock::SystemClock);
                let mut rt = closeloop::Runtime::open(store, clock).unwrap();
                (0..25)
                    .map(|i| {
                        let data = serde_json::json!({"title": format!("节点{n}工单{i}"), "owner": "m_li"});
                        rt.submit("ticket", data.as_object().cloned().unwrap(), "m_li").unwrap().id
                    })
                    .collect::<Vec<String>>()
            })
        })
        .collect();
    let mut ids: Vec<String> = nodes.into_iter().flat_map(|n| n.join().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100, "every record got an id of its own");
    assert_eq!(cluster.count("SELECT count(*) FROM rec_ticket"), 100);
    assert!(cluster.ok(&["audit", "verify"]).starts_with("audit ok"));
}

#[test]
fn nodes_opening_a_new_database_at_once_migrate_it_once_and_append_to_one_chain() {
    // Found by this test: four nodes opening a new database at once each made closeloop's
    // tables ("relation apps already exists"), because the migration lock was taken inside a
    // transaction whose snapshot predated the first node's tables. Then each write appends to
    // the chain after the head its transaction saw; writers that touch different rows (one
    // member each) meet only there, and the loser runs again.
    let server = Server::start("chain");
    let db = PgDb::new(&server.url, "chain");
    let nodes: Vec<_> = (0..4)
        .map(|n| {
            let url = db.url.clone();
            std::thread::spawn(move || {
                let store = closeloop::store::Store::connect(&url).unwrap();
                let mut rt = closeloop::Runtime::open(store, Arc::new(closeloop::clock::SystemClock)).unwrap();
                for i in 0..25 {
                    let csv = format!(
                        "id,name,roles,region,manager,active,capacity\nn{n}_{i},成员{n}{i},rep,east,,true,10\n"
                    );
                    rt.import_members(csv.as_bytes(), "system").unwrap();
                }
            })
        })
        .collect();
    for n in nodes {
        n.join().unwrap();
    }
    let store = closeloop::store::Store::connect(&db.url).unwrap();
    let rt = closeloop::Runtime::open(store, Arc::new(closeloop::clock::SystemClock)).unwrap();
    assert_eq!(rt.members().unwrap().len(), 100);
    let check = rt.verify_audit().unwrap();
    assert!(check.problem.is_none(), "{:?}", check.problem);
    assert!(check.events >= 100, "{}", check.events);
}

#[test]
fn a_node_whose_session_the_server_ends_connects_again_and_goes_on() {
    // A restart or failover of the database ends every session. A node used to fail every call
    // after that until it was restarted itself.
    let server = Server::start("revive");
    let db = PgDb::new(&server.url, "revive");
    let store = closeloop::store::Store::connect(&db.url).unwrap();
    let mut rt = closeloop::Runtime::open(store, Arc::new(closeloop::clock::SystemClock)).unwrap();
    let team = |id: &str| format!("id,name,roles,region,manager,active,capacity\n{id},成员,rep,east,,true,10\n");
    rt.import_members(team("m_a").as_bytes(), "system").unwrap();
    let mut admin = postgres::Client::connect(&server.url, postgres::NoTls).unwrap();
    let end_sessions = |admin: &mut postgres::Client| {
        let ended = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&db.url.rsplit('/').next().unwrap()],
            )
            .unwrap()
            .get::<_, i64>(0);
        assert!(ended >= 1, "the node had a session to end");
    };
    // The call that finds the session gone is told the database is busy (503 and Retry-After
    // over HTTP; the scheduler's pass tries again); the next one goes through on a new session.
    let once_busy = |r: Result<(), closeloop::EngineError>| match r {
        Ok(()) => true,
        Err(e) if e.kind() == closeloop::ErrorKind::Busy => false,
        Err(e) => panic!("not a busy refusal: {e}"),
    };
    end_sessions(&mut admin);
    if !once_busy(rt.import_members(team("m_b").as_bytes(), "system").map(|_| ())) {
        rt.import_members(team("m_b").as_bytes(), "system").unwrap();
    }
    end_sessions(&mut admin);
    if !once_busy(rt.members().map(|_| ())) {
        assert_eq!(rt.members().unwrap().len(), 2);
    }
    assert_eq!(rt.members().unwrap().len(), 2);
    assert!(rt.verify_audit().unwrap().problem.is_none());
}
