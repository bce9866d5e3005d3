//! The audit chain covers what confers a right (write-gate findings 5 and 9): every approval
//! step is an event; approval, signing-link and channel-setting rows faked in the database
//! are caught by `audit verify` and never yield a sign link; a checkpoint kept outside the
//! database catches deleted newest events and a re-hashed chain.

use std::sync::Arc;

use closeloop::clock::ManualClock;
use closeloop::store::{sha256_hex, Store};
use closeloop::{EngineError, Runtime};
use serde_json::json;

use crate::approvals::{quote, World};
use crate::support::Cli;

/// The quote world on the test's database (so the test can tamper with it), and the CLI on it.
fn quotes_on_file(name: &str) -> (World, Cli) {
    let cli = Cli::new(name, "2026-11-23T10:00:00+08:00");
    let clock = Arc::new(ManualClock::new("2026-11-23T10:00:00+08:00".parse().unwrap()));
    let mut rt = Runtime::open(cli.store(), clock.clone()).unwrap();
    crate::support::quote_catalog(&mut rt, false);
    (World { rt, clock }, cli)
}

/// Reopens the runtime on the database, after a tamper.
fn reopen(w: &mut World, cli: &Cli) {
    w.rt = Runtime::open(cli.store(), w.clock.clone()).unwrap();
}

/// Closes the runtime's database (its place taken by an empty memory database).
fn close(w: &mut World) {
    w.rt = Runtime::open(Store::open_in_memory().unwrap(), w.clock.clone()).unwrap();
}

/// A consistent copy of the database (the runtime closed while it is taken, as PostgreSQL
/// copies only a database nobody is connected to), and the runtime reopened.
fn snapshot(w: &mut World, cli: &Cli, name: &str) {
    close(w);
    cli.snapshot(name);
    reopen(w, cli);
}

/// Puts a snapshot back (the runtime closed first) and reopens the runtime on it.
fn restore(w: &mut World, cli: &Cli, name: &str) {
    close(w);
    cli.restore(name);
    reopen(w, cli);
}

fn tamper(cli: &Cli, sql: &str) {
    cli.execute(sql);
}

fn run_of(cli: &Cli, id: &str) -> i64 {
    cli.query("SELECT id FROM approvals WHERE record = ?1 ORDER BY id DESC LIMIT 1", &[id])
}

fn verify_fails(cli: &Cli, args: &[&str]) -> String {
    let mut full = vec!["audit", "verify"];
    full.extend_from_slice(args);
    let (code, said) = cli.fails(&full);
    assert_eq!(code, Some(1), "{said}");
    said
}

#[test]
fn a_skipped_legal_step_is_an_event() {
    let (mut w, cli) = quotes_on_file("skip-event");
    let id = quote(&mut w, json!({"payment_terms": "cod"}));
    w.rt.approve("quote", &id, "m_zhao", Some("价格合理")).unwrap();
    w.rt.approve("quote", &id, "m_qian", None).unwrap();
    let trail = w.rt.activity("quote", &id).unwrap();
    let kinds: Vec<&str> = trail.iter().map(|a| a.kind.as_str()).collect();
    let skipped = trail.iter().find(|a| a.kind == "approval.step_skipped").expect("the skip is an event");
    assert_eq!(skipped.detail["step"], "legal");
    assert!(skipped.detail["reason"].as_str().unwrap().contains("`risk` is \"low\""), "{}", skipped.detail);
    assert_eq!(skipped.detail["version"], w.rt.approval("quote", &id).unwrap().unwrap().version);
    assert!(kinds.contains(&"approval.started"), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "approval.step_opened").count(), 3, "supervisor, finance, signature");
    let approved = trail.iter().find(|a| a.kind == "approval.approved").unwrap();
    assert_eq!(
        (approved.detail["member"].as_str(), approved.detail["comment"].as_str()),
        (Some("m_zhao"), Some("价格合理"))
    );
    // The command line shows it too.
    let shown = cli.ok(&["activity", "quote", &id]);
    assert!(shown.contains("approval.step_skipped step=legal"), "{shown}");
    assert!(cli.ok(&["audit", "verify"]).starts_with("audit ok"));
}

#[test]
fn a_faked_approval_row_does_not_yield_a_sign_link() {
    let (mut w, cli) = quotes_on_file("fake-approval");
    // Prepayment: legal must review. The supervisor approves for real; finance and legal are
    // then faked in the file, and the run moved to the customer's signature.
    let id = quote(&mut w, json!({"payment_terms": "prepay", "prepay_percent": 60}));
    w.rt.approve("quote", &id, "m_zhao", None).unwrap();
    let run = run_of(&cli, &id);
    let version = cli.query("SELECT version FROM approvals WHERE id = ?1", &[&run.to_string()]);
    snapshot(&mut w, &cli, "clean.db");
    let fake_steps = format!(
        "UPDATE approval_steps SET status = 'approved' WHERE approval = {run} AND step IN (1, 2);
         UPDATE approval_steps SET status = 'open' WHERE approval = {run} AND step = 3;
         UPDATE approvals SET step = 3 WHERE id = {run};"
    );
    let fake_decisions = format!(
        "INSERT INTO approval_decisions (approval, step, member, decision, at, version)
         VALUES ({run}, 1, 'm_qian', 'approve', '2026-11-23T03:00:00Z', {version}),
                ({run}, 2, 'm_han', 'approve', '2026-11-23T03:00:00Z', {version});"
    );
    tamper(&cli, &format!("{fake_steps}{fake_decisions}"));
    reopen(&mut w, &cli);
    let refused = w.rt.sign_link("quote", &id, "https://sign.example.com", "m_li").unwrap_err();
    assert!(matches!(refused, EngineError::Refused(_)), "{refused}");
    assert!(refused.to_string().contains("decision of `m_qian` on step `finance`"), "{refused}");
    assert_eq!(cli.query("SELECT COUNT(*) FROM sign_links", &[]), 0, "no link was issued");
    assert!(verify_fails(&cli, &[]).contains("`m_qian` on step `finance`"));
    // The steps alone, without decisions: still no link, and verify names the step.
    restore(&mut w, &cli, "clean.db");
    tamper(&cli, &fake_steps);
    let refused = w.rt.sign_link("quote", &id, "https://sign.example.com", "m_li").unwrap_err().to_string();
    assert!(refused.contains("step `finance`"), "{refused}");
    assert!(verify_fails(&cli, &[]).contains("step `finance`"));
    // Someone added as an approver of the open step: caught too.
    restore(&mut w, &cli, "clean.db");
    tamper(
        &cli,
        &format!("UPDATE approval_steps SET approvers = '[\"m_qian\",\"m_li\"]' WHERE approval = {run} AND step = 1"),
    );
    assert!(verify_fails(&cli, &[]).contains("step `finance`"));
    // The clean file verifies, and the real chain still yields a link.
    restore(&mut w, &cli, "clean.db");
    w.rt.approve("quote", &id, "m_qian", None).unwrap();
    w.rt.approve("quote", &id, "m_han", None).unwrap();
    let link = w.rt.sign_link("quote", &id, "https://sign.example.com", "m_li").unwrap();
    assert!(cli.ok(&["audit", "verify"]).starts_with("audit ok"));
    // A link row inserted or marked used around closeloop.
    snapshot(&mut w, &cli, "linked.db");
    tamper(&cli, "UPDATE sign_links SET used_at = '2026-11-23T04:00:00Z', signer = '王总'");
    assert!(verify_fails(&cli, &[]).contains("marked used"));
    restore(&mut w, &cli, "linked.db");
    tamper(&cli, "UPDATE sign_links SET expires_at = '2099-01-01T00:00:00Z'");
    assert!(verify_fails(&cli, &[]).contains("no `sign.link` event"));
    restore(&mut w, &cli, "linked.db");
    w.rt.sign(&link.token, "王总").unwrap();
    assert!(cli.ok(&["audit", "verify"]).starts_with("audit ok"));
}

/// Two refused approvals: events that confer nothing, so removing them breaks no row's
/// backing, only the chain's length.
fn refusals(w: &mut World, id: &str) {
    for _ in 0..2 {
        assert!(w.rt.approve("quote", id, "m_li", None).is_err());
    }
}

#[test]
fn deleting_the_newest_events_fails_verify_against_a_checkpoint() {
    let (mut w, cli) = quotes_on_file("truncate");
    let id = quote(&mut w, json!({"payment_terms": "cod"}));
    refusals(&mut w, &id);
    let checkpoint = cli.ok(&["audit", "head"]).trim().to_string();
    assert_eq!(checkpoint, w.rt.audit_head().unwrap().to_string());
    let seq: i64 = checkpoint.split(':').next().unwrap().parse().unwrap();
    assert!(cli.ok(&["audit", "verify", "--expect", &checkpoint]).starts_with("audit ok"));
    drop(w.rt);
    tamper(&cli, &format!("DELETE FROM events WHERE seq > {}", seq - 2));
    // Without the checkpoint the shorter chain looks whole: that is what the anchor is for.
    assert!(cli.ok(&["audit", "verify"]).starts_with("audit ok"));
    let said = verify_fails(&cli, &["--expect", &checkpoint]);
    assert!(said.contains(&format!("the chain ends at entry {} but the checkpoint is entry {seq}", seq - 2)), "{said}");
    let (code, said) = cli.fails(&["audit", "verify", "--expect", "12:nothex"]);
    assert_eq!(code, Some(1));
    assert!(said.contains("is not a checkpoint"), "{said}");
}

#[test]
fn rehashing_the_whole_chain_fails_verify_against_a_checkpoint() {
    let (mut w, cli) = quotes_on_file("rehash");
    let id = quote(&mut w, json!({"payment_terms": "cod"}));
    refusals(&mut w, &id);
    let checkpoint = w.rt.audit_head().unwrap();
    drop(w.rt);
    // The attacker edits a refusal's reason and re-hashes every event after it.
    let edited = checkpoint.seq - 1;
    let body = cli.rows("SELECT body FROM events WHERE seq = ?1", &[&edited.to_string()]);
    let mut body: serde_json::Value = serde_json::from_str(body[0][0].as_deref().unwrap()).unwrap();
    body["why"] = json!("nothing happened");
    tamper(&cli, &format!("UPDATE events SET body = {} WHERE seq = {edited}", text(&body.to_string())));
    rehash(&cli, edited);
    assert!(cli.ok(&["audit", "verify"]).starts_with("audit ok"), "a consistent rewrite passes on its own");
    let said = verify_fails(&cli, &["--expect", &checkpoint.to_string()]);
    assert!(said.contains(&format!("audit entry {} does not have the checkpoint's hash", checkpoint.seq)), "{said}");
}

/// A text as an SQL literal (the same in SQLite and PostgreSQL).
fn text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Recomputes the chain from `from` on, as someone who knows the format would.
fn rehash(cli: &Cli, from: i64) {
    let prev = cli.rows("SELECT hash FROM events WHERE seq = ?1", &[&(from - 1).to_string()]);
    let mut prev = prev[0][0].clone().unwrap();
    let rows = cli.rows(
        "SELECT seq, at, actor, kind, COALESCE(form, ''), COALESCE(record, ''), COALESCE(CAST(version AS TEXT), ''),
                body, COALESCE(data_hash, '') FROM events WHERE seq >= ?1 ORDER BY seq",
        &[&from.to_string()],
    );
    let mut updates = String::new();
    for row in rows {
        let row: Vec<String> = row.into_iter().map(Option::unwrap).collect();
        let hash = sha256_hex(format!("{}\x1f{prev}", row.join("\x1f")).as_bytes());
        updates.push_str(&format!(
            "UPDATE events SET prev_hash = {}, hash = {} WHERE seq = {};\n",
            text(&prev),
            text(&hash),
            row[0]
        ));
        prev = hash;
    }
    tamper(cli, &updates);
}

#[test]
fn a_channel_setting_changed_in_the_database_fails_verify() {
    let (w, cli) = quotes_on_file("channel-setting");
    drop(w.rt);
    cli.ok(&["channels", "set", "wecom", "url=https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc"]);
    assert!(cli.ok(&["audit", "verify"]).starts_with("audit ok"));
    tamper(&cli, "UPDATE channel_settings SET value = 'https://attacker.example.com/hook' WHERE key = 'url'");
    assert!(verify_fails(&cli, &[]).contains("channel setting wecom.url"));
}

#[test]
fn a_checkpoint_is_anchored_through_a_channel_once_per_head() {
    let (mut w, cli) = quotes_on_file("anchor");
    let id = quote(&mut w, json!({"payment_terms": "cod"}));
    let head = w.rt.audit_head().unwrap();
    drop(w.rt);
    let said = cli.ok(&["audit", "anchor", "--channel", "wecom"]);
    assert!(said.contains(&format!("checkpoint {head} to wecom: queued")), "{said}");
    let again = cli.ok(&["audit", "anchor", "--channel", "wecom"]);
    assert!(again.contains("already queued"), "{again}");
    let body = cli.rows("SELECT body FROM outbox WHERE message = 'audit.checkpoint'", &[]);
    let body = body.first().and_then(|r| r[0].clone()).expect("the checkpoint is in the outbox");
    assert!(body.contains(&format!("closeloop audit verify --expect {head}")), "{body}");
    assert!(cli.fails(&["audit", "anchor", "--channel", "nowhere"]).1.contains("no installed app has a channel"));
    let _ = id;
}
