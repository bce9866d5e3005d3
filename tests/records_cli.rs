//! The records engine through the real binary and real database files: the lead flow, tampering
//! caught by `audit verify`, large and bad imports, two processes writing one file, and a crash
//! in the middle of an import (RELIABILITY D1, D6, D7).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{root, Cli, TempDir};

struct Db {
    dir: TempDir,
}

impl Db {
    fn new(name: &str) -> Self {
        let dir = TempDir::new(name);
        std::fs::create_dir_all(&dir.0).unwrap();
        Db { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.0.join("closeloop.db")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_closeloop"));
        c.args(args)
            .current_dir(root())
            .env("CLOSELOOP_DB", self.path())
            .env("CLOSELOOP_NOW", "2026-11-26T09:00:00+08:00");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "closeloop {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut full = vec!["--format", "json"];
        full.extend_from_slice(args);
        serde_json::from_str(&self.ok(&full)).unwrap()
    }

    fn count(&self) -> usize {
        self.json(&["list", "lead"]).as_array().unwrap().len()
    }

    fn with_leads(name: &str) -> Self {
        let db = Db::new(name);
        db.ok(&["install", "lead-followup"]);
        db.ok(&["members", "import", "app-templates/lead-followup/data/members.csv"]);
        db
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.0.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    }
}

const LEAD: &str =
    r#"{"source":"expo","customer":"上海明远科技","phone":"13800138001","region":"east","owner":"m_li"}"#;

#[test]
fn the_lead_flow_works_from_the_cli_with_its_json_shapes() {
    let db = Db::with_leads("flow");
    let r = db.json(&["submit", "lead", "--data", LEAD, "--as", "m_li"]);
    for key in ["id", "form", "version", "state", "owner", "data"] {
        assert!(r.get(key).is_some(), "record JSON lacks {key}: {r}");
    }
    assert_eq!((r["form"].as_str(), r["state"].as_str(), r["version"].as_i64()), (Some("lead"), Some("new"), Some(1)));
    let id = r["id"].as_str().unwrap().to_string();
    // A bad submit exits 1, names each field, and stores nothing.
    let bad = db.run(&[
        "--format",
        "json",
        "submit",
        "lead",
        "--data",
        r#"{"phone":"12345","urgency":"purple","source":"expo","region":"east"}"#,
        "--as",
        "m_li",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    let err: Value = serde_json::from_slice(&bad.stdout).unwrap();
    let mut fields: Vec<&str> =
        err["problems"].as_array().unwrap().iter().map(|p| p["field"].as_str().unwrap()).collect();
    fields.sort();
    assert_eq!(fields, ["customer", "phone", "urgency"]);
    assert_eq!(db.count(), 1);
    let human = db.run(&[
        "submit",
        "lead",
        "--data",
        r#"{"source":"expo","region":"east","phone":"13800138001"}"#,
        "--as",
        "m_li",
    ]);
    assert!(
        String::from_utf8_lossy(&human.stderr).contains("客户名称 is required"),
        "{}",
        String::from_utf8_lossy(&human.stderr)
    );
    // contact, update, history.
    let contacted = db.json(&[
        "act",
        "lead",
        &id,
        "contact",
        "--as",
        "m_li",
        "--data",
        r#"{"summary":"电话沟通","next_step":"演示"}"#,
    ]);
    assert_eq!(contacted["state"], "contacted");
    let v3 = db.json(&["update", "lead", &id, "--as", "m_li", "--data", r#"{"urgency":"red"}"#]);
    assert_eq!(v3["version"], 3);
    let history = db.json(&["history", "lead", &id]);
    let last = &history.as_array().unwrap()[2];
    assert_eq!(last["changes"], serde_json::json!([{"field": "urgency", "from": "green", "to": "red"}]));
    assert!(db.ok(&["audit", "verify"]).starts_with("audit ok"));
}

fn tamper(db: &Db, sql: &str) {
    let conn = rusqlite::Connection::open(db.path()).unwrap();
    conn.execute_batch(sql).unwrap();
}

fn verify_fails(db: &Db) -> String {
    let out = db.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "audit verify should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn audit_verify_names_a_changed_deleted_or_inserted_row() {
    let db = Db::with_leads("tamper");
    let id = db.json(&["submit", "lead", "--data", LEAD, "--as", "m_li"])["id"].as_str().unwrap().to_string();
    db.ok(&["update", "lead", &id, "--as", "m_li", "--data", r#"{"urgency":"red"}"#]);
    // The record's two events (automation runs sit between them in the chain).
    let seq = |kind: &str| -> i64 {
        rusqlite::Connection::open(db.path())
            .unwrap()
            .query_row("SELECT max(seq) FROM events WHERE kind = ?1", [kind], |r| r.get(0))
            .unwrap()
    };
    let (a, b) = (seq("record.created"), seq("record.updated"));
    // Changed: an event's body edited in place.
    std::fs::copy(db.path(), db.dir.0.join("clean.db")).unwrap();
    tamper(&db, &format!("UPDATE events SET body = replace(body, 'red', 'green') WHERE seq = {b}"));
    assert!(verify_fails(&db).contains(&format!("audit entry {b} was altered")));
    // Deleted.
    std::fs::copy(db.dir.0.join("clean.db"), db.path()).unwrap();
    tamper(&db, &format!("DELETE FROM events WHERE seq = {a}"));
    assert!(verify_fails(&db).contains(&format!("audit entry {a} is missing")));
    // Inserted: a forged event at the end.
    std::fs::copy(db.dir.0.join("clean.db"), db.path()).unwrap();
    let end = seq("record.updated").max(seq("automation.run"));
    tamper(&db, &format!("INSERT INTO events (seq, at, actor, kind, body, prev_hash, hash) SELECT {}, at, 'm_wang', kind, body, hash, hash FROM events WHERE seq = {end}", end + 1));
    assert!(verify_fails(&db).contains(&format!("audit entry {} was altered", end + 1)));
    // The data snapshot an event keeps beside its chained body.
    std::fs::copy(db.dir.0.join("clean.db"), db.path()).unwrap();
    tamper(&db, &format!("UPDATE events SET data = replace(data, '上海明远科技', '别人') WHERE seq = {a}"));
    assert!(verify_fails(&db).contains(&format!("audit entry {a} was altered")));
    // A record row edited around closeloop.
    std::fs::copy(db.dir.0.join("clean.db"), db.path()).unwrap();
    tamper(&db, "UPDATE rec_lead SET data = replace(data, '上海明远科技', '别人')");
    assert!(verify_fails(&db).contains("was altered outside closeloop"));
    // Its state, owner or version rewritten (the data untouched).
    std::fs::copy(db.dir.0.join("clean.db"), db.path()).unwrap();
    tamper(&db, "UPDATE rec_lead SET state = 'qualified', owner = 'm_wang', version = 1");
    assert!(verify_fails(&db).contains("was altered outside closeloop"));
    // A snapshot removed.
    std::fs::copy(db.dir.0.join("clean.db"), db.path()).unwrap();
    tamper(&db, &format!("UPDATE events SET data = NULL WHERE seq = {b}"));
    assert!(verify_fails(&db).contains(&format!("audit entry {b} was altered")));
    // A member granted a role behind closeloop's back.
    std::fs::copy(db.dir.0.join("clean.db"), db.path()).unwrap();
    tamper(&db, "UPDATE members SET roles = '[\"sales_rep\",\"sales_supervisor\"]', active = 1 WHERE id = 'm_chen'");
    assert!(verify_fails(&db).contains("member m_chen was changed outside closeloop"));
    // An installed app's rules loosened.
    std::fs::copy(db.dir.0.join("clean.db"), db.path()).unwrap();
    tamper(&db, "UPDATE apps SET source = replace(source, 'owner_only: true', 'owner_only: false')");
    assert!(verify_fails(&db).contains("app lead-followup was changed outside closeloop"));
    std::fs::copy(db.dir.0.join("clean.db"), db.path()).unwrap();
    assert!(db.ok(&["audit", "verify"]).starts_with("audit ok"));
}

fn leads_csv(rows: usize, bad: &[usize]) -> String {
    let mut s = String::from("来源渠道,客户名称,联系人电话,紧急等级,所属区域,owner\n");
    for i in 0..rows {
        let phone = if bad.contains(&i) { "12345".to_string() } else { format!("139{i:08}") };
        s.push_str(&format!("展会,客户{i},{phone},黄,east,m_li\n"));
    }
    s
}

#[test]
fn ten_thousand_leads_imported_twice_stay_ten_thousand() {
    let db = Db::with_leads("import10k");
    let file = db.file("leads.csv", &leads_csv(10_000, &[]));
    let first = db.json(&["import", "lead", &file]);
    assert_eq!(first["report"]["created"], 10_000);
    let second = db.json(&["import", "lead", &file]);
    assert_eq!((second["report"]["created"].as_u64(), second["report"]["unchanged"].as_u64()), (Some(0), Some(10_000)));
    assert_eq!(db.count(), 10_000);
}

#[test]
fn three_bad_rows_import_nothing_by_default_and_the_rest_with_skip_invalid() {
    let db = Db::with_leads("badrows");
    let file = db.file("leads.csv", &leads_csv(100, &[9, 50, 98]));
    let out = db.run(&["import", "lead", &file]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for row in [11, 52, 100] {
        assert!(err.contains(&format!("row {row}, column 联系人电话")), "{err}");
    }
    assert_eq!(db.count(), 0);
    let rejects = db.dir.0.join("rejects.csv");
    let ok = db.json(&["import", "lead", &file, "--skip-invalid", "--rejects", &rejects.to_string_lossy()]);
    assert_eq!((ok["report"]["created"].as_u64(), ok["report"]["rejected"].as_u64()), (Some(97), Some(3)));
    let text = std::fs::read_to_string(&rejects).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].ends_with(",error") && lines[1].contains("row 11, column 联系人电话"), "{text}");
}

#[test]
fn two_processes_submitting_at_once_both_succeed() {
    // RELIABILITY D7 (two writers): BEGIN IMMEDIATE, a busy timeout, and a retry from BEGIN.
    let db = Db::with_leads("concurrent");
    let batch = |tag: u32| {
        (0..1000).map(|i| format!(r#"{{"source":"expo","customer":"客户{tag}-{i}","phone":"13{tag}{i:08}","region":"east","owner":"m_li"}}"#)).collect::<Vec<_>>().join("\n")
    };
    let files = [db.file("a.jsonl", &batch(1)), db.file("b.jsonl", &batch(2))];
    let children: Vec<_> = files
        .iter()
        .map(|f| {
            db.command(&["submit", "lead", "--data", &format!("@{f}"), "--as", "m_li"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stderr.is_empty(), "no error shown to the user: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(db.count(), 2000);
    assert!(db.ok(&["audit", "verify"]).starts_with("audit ok"));
}

fn wal_size(db: &Path) -> u64 {
    std::fs::metadata(db.with_extension("db-wal")).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn a_kill_in_the_middle_of_an_import_leaves_a_sound_database_without_any_of_it() {
    // RELIABILITY D1. One iteration by default; the soak is
    // `CLOSELOOP_SOAK_ITERATIONS=500 cargo test --release --test tests a_kill_in_the_middle`.
    let iterations: u64 = std::env::var("CLOSELOOP_SOAK_ITERATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(1);
    let db = Db::with_leads("kill");
    db.ok(&["submit", "lead", "--data", LEAD, "--as", "m_li"]);
    let file = db.file("big.csv", &leads_csv(200_000, &[]));
    for i in 0..iterations {
        // A different kill point each time: between 2 and 16 MiB into the import's transaction.
        let threshold = (2 + (i * 7919) % 15) * 1024 * 1024;
        let mut child =
            db.command(&["import", "lead", &file]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let started = Instant::now();
        while wal_size(&db.path()) < threshold && started.elapsed() < Duration::from_secs(120) {
            assert!(child.try_wait().unwrap().is_none(), "the import finished before it could be interrupted");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(wal_size(&db.path()) > 0, "the import was writing when it was killed");
        assert_eq!(db.count(), 1, "iteration {i}: none of the import is stored");
        let conn = rusqlite::Connection::open(db.path()).unwrap();
        let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok", "iteration {i}");
        drop(conn);
        assert!(db.ok(&["audit", "verify"]).starts_with("audit ok"), "iteration {i}");
    }
    // After the kills, a 1,000-row batch goes in whole, and running it again with the same keys
    // adds nothing.
    let batch = db.file("batch.csv", &leads_csv(1_000, &[]));
    db.ok(&["import", "lead", &batch]);
    assert_eq!(db.count(), 1_001);
    db.ok(&["import", "lead", &batch]);
    assert_eq!(db.count(), 1_001, "the re-run matched every row by its key");
}

#[test]
fn an_export_with_system_columns_gives_excel_the_times_of_key_actions_and_still_imports_back() {
    let cli = Cli::new("export-system", "2026-11-23T10:00:00+08:00");
    cli.ok(&["install", "lead-followup"]);
    cli.ok(&["members", "import", "app-templates/lead-followup/data/members.csv"]);
    let lead = r#"{"source":"expo","customer":"上海明远科技","phone":"13800138001","region":"east"}"#;
    cli.ok(&["submit", "lead", "--as", "m_ops", "--data", lead]);
    let contact = r#"{"summary":"电话沟通","next_step":"下周演示"}"#;
    cli.ok_at(
        Some("2026-11-23T15:30:00+08:00"),
        &["act", "lead", "LEAD-2026-00001", "contact", "--as", "m_li", "--data", contact],
    );
    let out = cli.ok(&["export", "lead", "--system-columns"]);
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().trim_start_matches('\u{feff}').split(',').collect();
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    let cell =
        |name: &str| row[header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("{name} in {header:?}"))];
    assert_eq!(&header[..3], ["id", "state", "created_at"], "the lead's owner is a field, so no second owner column");
    assert_eq!((cell("state"), cell("owner")), ("contacted", "m_li"));
    assert_eq!((cell("created_at"), cell("contact_at")), ("2026-11-23 10:00:00", "2026-11-23 15:30:00"));
    assert_eq!((cell("qualify_at"), cell("lose_at")), ("", ""), "actions never taken are empty");
    // The same file imports back and changes nothing.
    let file = cli.path("leads.csv");
    cli.ok(&["export", "lead", "--system-columns", "--out", &file.display().to_string()]);
    let said = cli.ok(&["import", "lead", &file.display().to_string()]);
    assert!(said.contains("1 unchanged"), "{said}");
    // A member's view has the columns too, for the records they may read.
    let mine = cli.ok(&["export", "lead", "--system-columns", "--as", "m_li"]);
    assert!(mine.contains("contact_at") && mine.contains("LEAD-2026-00001"), "{mine}");
    let other = cli.ok(&["export", "lead", "--system-columns", "--as", "m_wang"]);
    assert!(!other.contains("LEAD-2026-00001"), "{other}");
}

#[test]
fn finance_imports_a_payments_csv_twice_and_each_payment_opens_its_tasks_once() {
    let cli = Cli::new("payments-csv", "2026-11-23T10:00:00+08:00");
    cli.ok(&["install", "customer-success", "--with-sample-data"]);
    // A finance system's export: its own column names, a payment number, Excel's dates.
    let file = cli.path("payments.csv");
    std::fs::write(
        &file,
        "付款单号,客户名称,金额,回款日期\nP-0042,上海明远科技有限公司,\"48,000.00\",2026-11-20\n\
         P-0043,杭州云帆贸易有限公司,12000,2026/11/21\nP-0044,不存在的公司,100,2026-11-21\n\
         P-0045,杭州云帆贸易有限公司,abc,2026-11-21\n",
    )
    .unwrap();
    let path = file.display().to_string();
    let first = cli.command(&["import", "payment.received", &path, "--key", "付款单号"]).output().unwrap();
    let said = String::from_utf8_lossy(&first.stdout);
    assert_eq!(first.status.code(), Some(1), "a refused row is exit 1: {said}");
    assert!(said.starts_with("4 rows: 2 received, 0 received before, 2 refused"), "{said}");
    assert!(said.contains("row 4") && said.contains("不存在的公司"), "the unknown customer, by row: {said}");
    assert!(said.contains("row 5, 金额: [WRONG_TYPE]"), "the bad amount, by row and column: {said}");
    let tasks = cli.json(&["tasks", "--all"]);
    assert_eq!(tasks.as_array().unwrap().len(), 6, "three after-payment tasks for each of two accounts");
    // The same file again (finance re-exports the month): nothing is received twice.
    let again = cli.command(&["import", "payment.received", &path, "--key", "付款单号"]).output().unwrap();
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(said.starts_with("4 rows: 0 received, 2 received before"), "{said}");
    assert_eq!(cli.json(&["tasks", "--all"]).as_array().unwrap().len(), 6);
    let paid = cli.json(&["get", "account", "ACC-00001"]);
    assert_eq!(paid["data"]["paid_amount"], serde_json::json!(48000.0), "{paid}");
    // A file without its key column is refused before any row is read.
    let missing = cli.command(&["import", "payment.received", &path, "--key", "payment_no"]).output().unwrap();
    let said = String::from_utf8_lossy(&missing.stdout);
    assert_eq!(missing.status.code(), Some(1));
    assert!(said.contains("the key column `payment_no` is not in the file"), "{said}");
    assert!(cli.ok(&["audit", "verify"]).starts_with("audit ok"));
}
