//! Automations and time through the library, with an injected clock and no sleeping: the lead's
//! 24-hour rule, downtime, moved anchors, schedules, events, SOP tasks and the health score
//! (RELIABILITY T1, T2, T4, T5, T7, T8, D6).

use std::sync::Arc;

use closeloop::clock::ManualClock;
use closeloop::{template, AppFiles, Runtime};
use closeloop::{Evidence, RunStatus};
use serde_json::{json, Map, Value};

fn at(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

/// A runtime over a fresh in-memory store, and the clock it reads.
struct World {
    rt: Runtime,
    clock: Arc<ManualClock>,
}

impl World {
    fn new(start: &str) -> Self {
        let clock = Arc::new(ManualClock::new(at(start)));
        let rt = Runtime::open(crate::support::fresh_store(), clock.clone()).unwrap();
        World { rt, clock }
    }

    fn template(start: &str, name: &str) -> Self {
        let mut w = World::new(start);
        let t = template(name).unwrap();
        w.rt.install(&t.app_files(), "system", false).unwrap();
        let members = t.files.iter().find(|(p, _)| *p == "data/members.csv").unwrap().1;
        w.rt.import_members(members.as_bytes(), "system").unwrap();
        w
    }

    fn set(&self, now: &str) {
        self.clock.set(at(now));
    }

    fn outbox(&self, channel: &str) -> usize {
        self.rt.outbox(None).unwrap().iter().filter(|m| m.channel == channel).count()
    }

    fn on_board(&self, board: &str, id: &str) -> bool {
        self.rt.board(board).unwrap().iter().any(|i| i.record == id)
    }

    fn field(&self, form: &str, id: &str, field: &str) -> Value {
        self.rt.get(form, id).unwrap().data.get(field).cloned().unwrap_or(Value::Null)
    }
}

const T: &str = "2026-11-23T10:00:00+08:00";

fn submit_lead(w: &mut World, phone: &str) -> String {
    let lead = json!({"source": "expo", "customer": "上海明远科技", "phone": phone, "region": "east"});
    w.rt.submit("lead", obj(lead), "m_li").unwrap().id
}

#[test]
fn an_uncontacted_lead_turns_red_at_24h_once_and_a_contacted_one_never() {
    use closeloop::{FireOutcome, TimerStatus};
    let mut w = World::template(T, "lead-followup");
    let late = submit_lead(&mut w, "13800138001");
    let contacted = submit_lead(&mut w, "13800138002");
    // Assignment notifies the rep on WeCom, once per lead.
    assert_eq!(w.outbox("wecom"), 2);
    assert_eq!(w.rt.get("lead", &late).unwrap().owner.as_deref(), Some("m_li"));
    w.set("2026-11-23T11:00:00+08:00");
    let owner = w.rt.get("lead", &contacted).unwrap().owner.unwrap();
    w.rt.act("lead", &contacted, "contact", &owner, obj(json!({"summary": "聊过了", "next_step": "演示"}))).unwrap();

    w.set("2026-11-24T09:00:00+08:00"); // T+23h
    let tick = w.rt.tick().unwrap();
    assert!(tick.timers.is_empty(), "nothing is due at T+23h: {tick:?}");
    assert_eq!(w.field("lead", &late, "urgency"), json!("green"));
    assert!(w.rt.board("supervisor").unwrap().is_empty());
    assert_eq!(w.outbox("sms"), 0);

    w.set("2026-11-24T11:00:00+08:00"); // T+25h
    let tick = w.rt.tick().unwrap();
    let fired: Vec<_> = tick.timers.iter().filter(|t| t.outcome == FireOutcome::Settled(TimerStatus::Fired)).collect();
    assert_eq!(fired.len(), 1, "{tick:?}");
    assert_eq!(fired[0].record.as_deref(), Some(late.as_str()));
    assert_eq!(w.field("lead", &late, "urgency"), json!("red"));
    assert!(w.on_board("supervisor", &late));
    assert_eq!(w.outbox("sms"), 1);
    // The contacted lead's timer was re-checked and skipped, with why (T4).
    let skipped = tick.timers.iter().find(|t| t.record.as_deref() == Some(contacted.as_str())).unwrap();
    assert_eq!(skipped.outcome, FireOutcome::Settled(TimerStatus::Skipped));
    assert!(skipped.why.as_deref().unwrap().contains("`contacted`"), "{skipped:?}");

    w.set("2026-11-24T12:00:00+08:00"); // T+26h
    assert!(w.rt.tick().unwrap().timers.is_empty());
    assert_eq!(w.outbox("sms"), 1, "exactly one SMS");
    assert!(!w.on_board("supervisor", &contacted));
    assert_eq!(w.field("lead", &contacted, "urgency"), json!("green"));
    assert!(w.rt.verify_audit().unwrap().problem.is_none());
}

#[test]
fn after_downtime_each_missed_timer_fires_once_marked_late_and_never_again() {
    use closeloop::{FireOutcome, TimerStatus};
    // T1, T7.
    let mut w = World::template(T, "lead-followup");
    let ids: Vec<String> = (0..3).map(|i| submit_lead(&mut w, &format!("1380013800{i}"))).collect();
    w.set("2026-11-26T10:00:00+08:00"); // T+72h, the first tick since the leads came in
    let tick = w.rt.tick().unwrap();
    assert_eq!(tick.timers.len(), 6, "the 24h and the 72h timer of each lead: {tick:?}");
    assert!(tick
        .timers
        .iter()
        .all(|t| t.outcome == FireOutcome::Settled(TimerStatus::Fired)
            && t.late == (t.automation == "escalate_uncontacted")));
    let first = tick.timers.iter().find(|t| t.automation == "escalate_uncontacted").unwrap();
    assert_eq!(first.due, "2026-11-24T02:00:00.000000Z", "the original due time is kept");
    assert_eq!(w.outbox("sms"), 3);
    // A restart at the same moment, and the wall clock jumping back an hour: nothing fires again.
    assert!(w.rt.tick().unwrap().timers.is_empty());
    w.set("2026-11-26T09:00:00+08:00");
    assert!(w.rt.tick().unwrap().timers.is_empty());
    assert_eq!(w.outbox("sms"), 3);
    for id in &ids {
        assert!(w.on_board("supervisor", id));
    }
}

#[test]
fn a_guard_that_stopped_holding_during_downtime_is_skipped_and_audited() {
    use closeloop::{FireOutcome, TimerStatus};
    // T4: the lead was contacted while nobody ran tick; the SLA alert is suppressed.
    let mut w = World::template(T, "lead-followup");
    let id = submit_lead(&mut w, "13800138009");
    w.set("2026-11-24T15:00:00+08:00"); // T+29h, no tick has run
    w.rt.act("lead", &id, "contact", "m_li", obj(json!({"summary": "s", "next_step": "n"}))).unwrap();
    w.set("2026-11-26T11:00:00+08:00");
    let tick = w.rt.tick().unwrap();
    assert!(tick.timers.iter().all(|t| t.outcome == FireOutcome::Settled(TimerStatus::Skipped)), "{tick:?}");
    let run = tick.runs.iter().find(|r| r.automation == "escalate_uncontacted").unwrap();
    assert_eq!(run.status, RunStatus::Skipped);
    assert!(run.why.as_deref().unwrap().contains("not `new`"));
    assert_eq!(w.outbox("sms"), 0);
    assert_eq!(w.field("lead", &id, "urgency"), json!("green"));
}

/// A small app with a timer on a date field, for moving anchors.
const RENEWALS: &str = r#"
app: {id: renewals, title: Renewals, time_zone: Asia/Shanghai}
forms:
  - id: contract
    owner_field: owner
    fields:
      - {id: customer, type: text, required: true}
      - {id: owner, type: member}
      - {id: ends_on, type: date}
      - {id: reminded, type: integer}
automations:
  - id: remind
    when: {timer: {form: contract, before: 45d, from: ends_on}}
    do:
      - set: {reminded: 1}
  - id: remind_strict
    when: {timer: {form: contract, before: 30d, from: ends_on, late: skip}}
    do:
      - set: {reminded: 2}
"#;

fn renewals(start: &str) -> World {
    let mut w = World::new(start);
    w.rt.install(&AppFiles { app_yaml: RENEWALS.into(), ..AppFiles::default() }, "system", false).unwrap();
    w.rt.import_members(b"id,name,roles,region,manager,active,capacity\nm_a,A,rep,east,,true,10\n", "system").unwrap();
    w
}

#[test]
fn moving_an_anchor_moves_its_timer_and_a_past_anchor_follows_the_late_policy() {
    use closeloop::{FireOutcome, TimerStatus};
    // T5.
    let mut w = renewals("2026-01-05T10:00:00+08:00");
    let id = w.rt.submit("contract", obj(json!({"customer": "明远", "ends_on": "2026-06-30"})), "m_a").unwrap().id;
    // 45 days before 2026-06-30 is 2026-05-16, at the start of the working day.
    w.set("2026-05-15T12:00:00+08:00");
    assert!(w.rt.tick().unwrap().timers.is_empty());
    // The contract is extended: the old moment is cancelled, a new one armed.
    w.rt.update("contract", &id, obj(json!({"ends_on": "2026-12-31"})), "m_a").unwrap();
    w.set("2026-05-17T12:00:00+08:00");
    assert!(w.rt.tick().unwrap().timers.is_empty(), "the old due time no longer fires");
    let counts = w.rt.timer_counts().unwrap();
    assert!(counts.contains(&(TimerStatus::Cancelled, 2)), "{counts:?}");
    // Moved into the past: `remind` fires once, late; `remind_strict` (late: skip) is skipped.
    w.rt.update("contract", &id, obj(json!({"ends_on": "2026-06-01"})), "m_a").unwrap();
    let tick = w.rt.tick().unwrap();
    let outcome = |a: &str| tick.timers.iter().find(|t| t.automation == a).map(|t| t.outcome);
    assert_eq!(outcome("remind"), Some(FireOutcome::Settled(TimerStatus::Fired)));
    assert_eq!(outcome("remind_strict"), Some(FireOutcome::Settled(TimerStatus::Skipped)));
    assert_eq!(w.field("contract", &id, "reminded"), json!(1));
    assert!(w.rt.tick().unwrap().timers.is_empty());
    // Setting the same anchor again does not re-arm what already fired.
    w.rt.update("contract", &id, obj(json!({"reminded": 0})), "m_a").unwrap();
    assert!(w.rt.tick().unwrap().timers.is_empty());
}

#[test]
fn missed_schedule_runs_coalesce_into_one() {
    // T2: the Monday health run, five weeks down.
    let mut w = World::template("2026-11-20T10:00:00+08:00", "customer-success");
    let accounts =
        template("customer-success").unwrap().files.iter().find(|(p, _)| *p == "data/accounts.csv").unwrap().1;
    let opts = closeloop::ImportOptions { skip_invalid: false, actor: "import".into() };
    w.rt.import_csv("account", accounts.as_bytes(), &opts, &mut |_| {}).unwrap();
    w.set("2026-12-24T10:00:00+08:00");
    let tick = w.rt.tick().unwrap();
    assert_eq!(tick.timers.len(), 1, "{tick:?}");
    let run = &tick.timers[0];
    assert_eq!((run.automation.as_str(), run.late, run.missed), ("weekly_health", true, 4));
    assert_eq!(run.due, "2026-11-23T00:00:00.000000Z");
    assert!(w.rt.tick().unwrap().timers.is_empty());
    // The next run is armed for the coming Monday, 08:00 in Shanghai.
    assert_eq!(w.rt.next_due().unwrap().as_deref(), Some("2026-12-28T00:00:00.000000Z"));
}

/// The customer-success template with its first SOP task counted in business days, to check
/// a due date that crosses a weekend and a holiday.
fn business_day_sop() -> AppFiles {
    let mut files = template("customer-success").unwrap().app_files();
    files.app_yaml = files
        .app_yaml
        .replace("due: {after: 7d, from: delivered_at}", "due: {after: 3 business days, from: delivered_at}");
    assert!(files.app_yaml.contains("3 business days"));
    files
}

#[test]
fn a_payment_opens_three_tasks_due_on_the_working_calendar() {
    use closeloop::TaskStatus;
    let mut w = World::new("2026-09-30T10:00:00+08:00");
    w.rt.install(&business_day_sop(), "system", false).unwrap();
    let t = template("customer-success").unwrap();
    w.rt.import_members(t.files.iter().find(|(p, _)| *p == "data/members.csv").unwrap().1.as_bytes(), "system")
        .unwrap();
    let account = json!({"customer": "上海明远科技有限公司", "region": "east", "owner": "m_lin",
        "delivered_at": "2026-09-30", "payment_due": "2026-12-31", "contract_end": "2027-11-01"});
    let id = w.rt.submit("account", obj(account), "m_lin").unwrap().id;
    let report =
        w.rt.event(
            "payment.received",
            obj(json!({"customer": "上海明远科技有限公司", "amount": 48000, "paid_at": "2026-09-30"})),
            "m_qian",
        )
        .unwrap();
    assert_eq!(report.record.as_deref(), Some(id.as_str()));
    assert_eq!(w.field("account", &id, "paid_amount"), json!(48000.0));
    let tasks = w.rt.tasks_of("account", &id).unwrap();
    let due: Vec<(&str, Option<&str>)> = tasks.iter().map(|t| (t.task.as_str(), t.due.as_deref())).collect();
    // 3 business days after Wed 30 Sep: 1-2 Oct and 5-7 Oct are the National Day holiday,
    // 3-4 and 10-11 Oct weekends: 8, 9, 12 Oct.
    assert_eq!(
        due,
        vec![
            ("satisfaction_call", Some("2026-10-12")),
            ("usage_check", Some("2026-12-26")),
            ("renewal_talk", Some("2027-09-17")),
        ]
    );
    assert!(tasks.iter().all(|t| t.assignee.as_deref() == Some("m_lin") && t.status == TaskStatus::Open));
    assert_eq!(w.outbox("wecom"), 1);
    // An event for nobody is refused and writes nothing.
    let before = w.rt.verify_audit().unwrap().events;
    let err = w.rt.event(
        "payment.received",
        obj(json!({"customer": "不存在", "amount": 1, "paid_at": "2026-09-30"})),
        "m_qian",
    );
    assert!(err.unwrap_err().to_string().contains("account with customer = \"不存在\" does not exist"));
    assert!(w.rt.event("payment.received", obj(json!({"customer": "x", "amount": "lots"})), "m_qian").is_err());
    assert_eq!(w.rt.verify_audit().unwrap().events, before);
}

#[test]
fn thirty_days_of_after_payment_work_run_in_well_under_a_second() {
    // T8, and: completing tasks with evidence changes the health score; below 60 the account
    // goes to the director board.
    let started = std::time::Instant::now();
    let mut w = World::template("2026-11-20T10:00:00+08:00", "customer-success");
    let account = json!({"customer": "苏州安和医疗", "region": "east", "owner": "m_lin",
        "delivered_at": "2026-10-01", "payment_due": "2026-11-25", "contract_end": "2027-01-10"});
    let id = w.rt.submit("account", obj(account), "m_lin").unwrap().id;
    w.rt.event(
        "payment.received",
        obj(json!({"customer": "苏州安和医疗", "amount": 9000, "paid_at": "2026-11-20"})),
        "m_qian",
    )
    .unwrap();
    let tasks = w.rt.tasks_of("account", &id).unwrap();
    assert_eq!(tasks.len(), 3);
    let mut health = Vec::new();
    let mut on_board_since = None;
    for day in 1..=30 {
        let now = jiff::civil::date(2026, 11, 20).checked_add(jiff::Span::new().days(day)).unwrap();
        w.set(&format!("{now}T10:00:00+08:00"));
        w.rt.tick().unwrap();
        let flagged = w.rt.board("director").unwrap().iter().any(|i| i.record == id && i.reason.contains("健康分"));
        if on_board_since.is_none() && flagged {
            on_board_since = Some(day);
        }
        health.push(w.field("account", &id, "health"));
        if day == 12 {
            let file = std::env::temp_dir().join(format!("closeloop-renewal-{}.pdf", std::process::id()));
            std::fs::write(&file, b"%PDF renewal proposal").unwrap();
            let evidence = |attachment: bool| Evidence {
                summary: Some("客户确认使用情况良好".into()),
                attachment: attachment.then(|| file.display().to_string()),
            };
            // Evidence is required: a bare completion is refused and changes nothing.
            assert!(w.rt.complete_task(tasks[2].id, "m_lin", evidence(false)).is_err());
            let before = w.field("account", &id, "health");
            for t in &tasks {
                let done = w.rt.complete_task(t.id, "m_lin", evidence(t.task == "renewal_talk")).unwrap();
                assert!(done.task.late, "{} was done after its due date", t.task);
            }
            assert_ne!(w.field("account", &id, "health"), before, "completing tasks changed the health score");
            let _ = std::fs::remove_file(&file);
        }
    }
    // The Monday run on 23 Nov sees two tasks overdue: 100 - 15 × 2 - 10 (never contacted) =
    // 60, not below 60. On 30 Nov the renewal talk is overdue too: 45, below 60: on the
    // director board, and the director is told.
    assert_eq!(health[2], json!(60), "{health:?}");
    assert_eq!(health[9], json!(45), "{health:?}");
    assert_eq!(on_board_since, Some(10));
    assert!(w.rt.outbox(None).unwrap().iter().any(|m| m.recipient == "m_cao" && m.body.contains("45")));
    // Done (late) on day 12: 100 - 5 × 3 = 85 from then on.
    assert_eq!(health[12], json!(85), "{health:?}");
    assert!(w.rt.tasks(None, true, false).unwrap().is_empty(), "nothing overdue any more");
    // Overdue tasks put the account on the director board too, until they are done.
    let board = w.rt.board("director").unwrap();
    assert!(board.iter().all(|i| !i.reason.contains("overdue")), "{board:?}");
    assert!(w.rt.verify_audit().unwrap().problem.is_none());
    assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
}

#[test]
fn a_failing_step_keeps_the_record_and_is_retried() {
    use closeloop::{FireOutcome, TimerStatus};
    let yaml = r#"
app: {id: fragile, title: Fragile, time_zone: Asia/Shanghai}
forms:
  - id: ticket
    fields:
      - {id: title, type: text, required: true}
      - {id: n, type: integer}
automations:
  - id: stamp
    when: {created: ticket}
    do:
      - set: {n: 1}
      - script: "if record.title == \"boom\" { throw \"the CRM is down\" } #{n: 2}"
"#;
    let mut w = World::new("2026-11-26T09:00:00+08:00");
    w.rt.install(&AppFiles { app_yaml: yaml.into(), ..AppFiles::default() }, "system", false).unwrap();
    w.rt.import_members(b"id,name,roles,region,manager,active,capacity\nm_a,A,rep,east,,true,10\n", "system").unwrap();
    let id = w.rt.submit("ticket", obj(json!({"title": "boom"})), "m_a").unwrap().id;
    // The record and the first step stand; the failing step is rolled back alone.
    assert_eq!(w.field("ticket", &id, "n"), json!(1));
    assert_eq!(w.rt.next_due().unwrap().as_deref(), Some("2026-11-26T01:01:00.000000Z"));
    w.rt.update("ticket", &id, obj(json!({"title": "fine now"})), "m_a").unwrap();
    w.set("2026-11-26T09:02:00+08:00");
    let tick = w.rt.tick().unwrap();
    assert_eq!(tick.timers[0].kind, "retry");
    assert_eq!(tick.timers[0].outcome, FireOutcome::Settled(TimerStatus::Fired));
    assert_eq!(w.field("ticket", &id, "n"), json!(2), "the retry ran from the failed step");
    assert!(w.rt.verify_audit().unwrap().problem.is_none());
}

/// A database file driven through the real binary.
struct Db(crate::support::Cli);

impl Db {
    fn new(name: &str) -> Self {
        let db = Db(crate::support::Cli::new(name, T));
        db.ok(&["install", "lead-followup"], T);
        db.ok(&["members", "import", "app-templates/lead-followup/data/members.csv"], T);
        db
    }

    fn command(&self, args: &[&str], now: &str) -> std::process::Command {
        self.0.command_at(Some(now), args)
    }

    fn ok(&self, args: &[&str], now: &str) -> String {
        self.0.ok_at(Some(now), args)
    }

    /// Submits `n` east leads for m_li at `now` through one `submit --data @file` (one object per line).
    fn leads(&self, n: usize, first_phone: usize, now: &str) {
        let file = self.0.path(&format!("leads-{first_phone}.jsonl"));
        let lines: Vec<String> = (0..n)
            .map(|i| {
                json!({"source": "expo", "customer": format!("客户{i}"), "phone": format!("139{:08}", first_phone + i),
                       "region": "east", "owner": "m_li"})
                .to_string()
            })
            .collect();
        std::fs::write(&file, lines.join("\n")).unwrap();
        self.ok(&["submit", "lead", "--as", "m_li", "--data", &format!("@{}", file.display())], now);
    }

    fn query(&self, sql: &str) -> i64 {
        self.0.query(sql, &[])
    }
}

fn fired_in(stdout: &[u8]) -> Vec<i64> {
    let report: Value = serde_json::from_slice(stdout).unwrap();
    report["timers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["outcome"] == "fired")
        .map(|t| t["timer"].as_i64().unwrap())
        .collect()
}

#[test]
fn two_schedulers_on_one_database_never_fire_a_timer_twice() {
    // T3: two `tick` processes started together, fifty times.
    let db = Db::new("two-ticks");
    let start: jiff::Timestamp = at(T);
    let mut fired = Vec::new();
    for round in 0..50 {
        let submitted = start.checked_add(jiff::SignedDuration::from_hours(round)).unwrap();
        let due = submitted.checked_add(jiff::SignedDuration::from_hours(25)).unwrap().to_string();
        db.leads(2, round as usize * 2, &submitted.to_string());
        let spawn =
            || db.command(&["--format", "json", "tick"], &due).stdout(std::process::Stdio::piped()).spawn().unwrap();
        let (a, b) = (spawn(), spawn());
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        assert!(a.status.success() && b.status.success());
        let (a, b) = (fired_in(&a.stdout), fired_in(&b.stdout));
        assert!(a.iter().all(|id| !b.contains(id)), "round {round}: a timer fired in both processes");
        fired.extend(a.into_iter().chain(b));
    }
    let unique: std::collections::BTreeSet<i64> = fired.iter().copied().collect();
    assert_eq!(unique.len(), fired.len(), "no timer fired twice across the rounds");
    assert_eq!(db.query("SELECT COUNT(*) FROM timers WHERE status = 'fired'"), fired.len() as i64);
    // Each lead's 24h alert, once: one SMS each.
    assert_eq!(db.query("SELECT COUNT(*) FROM outbox WHERE channel = 'sms'"), 100);
    assert_eq!(
        db.query("SELECT COUNT(*) FROM events WHERE kind = 'automation.run' AND body LIKE '%escalate_uncontacted%'"),
        100
    );
}

#[test]
fn a_scheduler_killed_mid_tick_leaves_every_timer_to_fire_exactly_once() {
    // D2: kill -9 inside "mark timer fired + insert outbox + audit".
    let db = Db::new("kill-tick");
    db.leads(600, 0, T);
    let due = "2026-11-24T11:00:00+08:00";
    for wait_ms in [5u64, 40, 120] {
        let mut child = db.command(&["tick"], due).stdout(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(wait_ms));
        let _ = child.kill();
        let _ = child.wait();
    }
    db.ok(&["tick"], due);
    assert_eq!(
        db.query("SELECT COUNT(*) FROM timers WHERE automation = 'escalate_uncontacted' AND status = 'fired'"),
        600
    );
    assert_eq!(db.query("SELECT COUNT(*) FROM outbox WHERE channel = 'sms'"), 600);
    assert_eq!(
        db.query("SELECT COUNT(*) FROM events WHERE kind = 'automation.run' AND body LIKE '%escalate_uncontacted%'"),
        600
    );
    assert!(db.ok(&["audit", "verify"], due).starts_with("audit ok"));
}

#[test]
fn installing_a_new_timer_arms_it_for_records_that_already_exist_and_removing_it_cancels() {
    use closeloop::TimerStatus;
    let without: String = RENEWALS.split("automations:").next().unwrap().to_string();
    let mut w = World::new("2026-01-05T10:00:00+08:00");
    let install = |w: &mut World, yaml: &str| {
        w.rt.install(&AppFiles { app_yaml: yaml.into(), ..AppFiles::default() }, "system", false).unwrap();
    };
    install(&mut w, &without);
    w.rt.import_members(b"id,name,roles,region,manager,active,capacity\nm_a,A,rep,east,,true,10\n", "system").unwrap();
    let id = w.rt.submit("contract", obj(json!({"customer": "明远", "ends_on": "2026-06-30"})), "m_a").unwrap().id;
    assert!(w.rt.next_due().unwrap().is_none());
    install(&mut w, RENEWALS);
    // 30 days before 30 June (remind_strict) comes after 45 days before (remind): 16 May first.
    assert_eq!(w.rt.next_due().unwrap().as_deref(), Some("2026-05-16T01:00:00.000000Z"));
    install(&mut w, RENEWALS);
    assert!(w.rt.timer_counts().unwrap().contains(&(TimerStatus::Pending, 2)), "a re-install arms nothing twice");
    install(&mut w, &without);
    assert!(w.rt.next_due().unwrap().is_none(), "removed automations leave no pending timers");
    assert_eq!(w.field("contract", &id, "reminded"), Value::Null);
}

#[test]
fn the_cli_speaks_json_for_tasks_outbox_boards_and_tick() {
    let cli = crate::support::Cli::system_clock("cs-cli");
    let run = |now: &str, args: &[&str]| -> Value { cli.json_at(Some(now), args) };
    let day0 = "2026-11-20T10:00:00+08:00";
    run(day0, &["install", "customer-success"]);
    run(day0, &["members", "import", "app-templates/customer-success/data/members.csv"]);
    run(day0, &["import", "account", "app-templates/customer-success/data/accounts.csv"]);
    let event = run(
        day0,
        &[
            "event",
            "payment.received",
            "--data",
            r#"{"customer":"上海明远科技有限公司","amount":48000,"paid_at":"2026-11-20"}"#,
        ],
    );
    assert_eq!(event["record"], "ACC-00001");
    let tasks = run(day0, &["tasks", "--as", "m_lin"]);
    let tasks = tasks.as_array().unwrap();
    assert_eq!(tasks.len(), 3);
    for key in ["id", "record", "sop", "title", "assignee", "due", "status"] {
        assert!(tasks[0].get(key).is_some(), "tasks JSON has `{key}`: {}", tasks[0]);
    }
    assert_eq!((tasks[0]["title"].as_str(), tasks[0]["due"].as_str()), (Some("满意度回访"), Some("2026-11-09")));
    let overdue = run(day0, &["tasks", "--overdue"]);
    assert_eq!(overdue.as_array().unwrap().len(), 1, "the satisfaction call was due before the payment");
    let board = run(day0, &["board", "director"]);
    for key in ["record", "form", "reason", "since"] {
        assert!(board[0].get(key).is_some(), "board JSON has `{key}`: {board}");
    }
    let id = tasks[0]["id"].to_string();
    let done = run(
        "2026-11-21T10:00:00+08:00",
        &["task", "done", &id, "--as", "m_lin", "--evidence", "summary=客户满意，下月扩容"],
    );
    assert_eq!(done["task"]["status"], "done");
    assert!(done["runs"][0]["steps"][0]["outcome"].as_str().unwrap().contains("health"));
    let outbox = run(day0, &["outbox", "--status", "pending"]);
    let m = &outbox.as_array().unwrap()[0];
    for key in ["id", "channel", "to", "status", "attempts", "key", "body"] {
        assert!(m.get(key).is_some(), "outbox JSON has `{key}`: {m}");
    }
    assert!(m["body"].as_str().unwrap().contains("上海明远科技有限公司 已回款"));
    let activity = run(day0, &["activity", "account", "ACC-00001"]);
    let kinds: Vec<&str> = activity.as_array().unwrap().iter().map(|a| a["kind"].as_str().unwrap()).collect();
    // The account's creation ran its assignment (it named its owner already), then the payment.
    assert_eq!(
        kinds,
        vec!["automation.run", "event.received", "automation.run", "task.done", "automation.run"],
        "{activity}"
    );
    let tick = run("2026-11-23T08:30:00+08:00", &["tick"]);
    assert_eq!(tick["timers"][0]["automation"], "weekly_health");
    assert_eq!(tick["timers"][0]["outcome"], "fired");
}

#[test]
fn an_anchor_moved_away_and_back_fires_its_moment_once_and_a_cleared_one_rearms() {
    use closeloop::{FireOutcome, TimerStatus};
    // T5, both ways round.
    let mut w = renewals("2026-01-05T10:00:00+08:00");
    let id = w.rt.submit("contract", obj(json!({"customer": "明远", "ends_on": "2026-06-30"})), "m_a").unwrap().id;
    w.set("2026-05-20T12:00:00+08:00");
    assert_eq!(
        w.rt.tick().unwrap().timers.iter().filter(|t| t.outcome == FireOutcome::Settled(TimerStatus::Fired)).count(),
        1,
        "45 days before"
    );
    w.rt.update("contract", &id, obj(json!({"ends_on": "2026-12-31"})), "m_a").unwrap();
    w.rt.update("contract", &id, obj(json!({"ends_on": "2026-06-30"})), "m_a").unwrap();
    w.set("2026-06-10T12:00:00+08:00");
    let tick = w.rt.tick().unwrap();
    assert_eq!(tick.timers.iter().filter(|t| t.automation == "remind").count(), 0, "no second reminder: {tick:?}");
    // Cleared, then set again before its moment: armed again.
    let id2 = w.rt.submit("contract", obj(json!({"customer": "云帆", "ends_on": "2027-03-31"})), "m_a").unwrap().id;
    w.rt.update("contract", &id2, obj(json!({"ends_on": null})), "m_a").unwrap();
    w.rt.update("contract", &id2, obj(json!({"ends_on": "2027-03-31"})), "m_a").unwrap();
    w.set("2027-02-20T12:00:00+08:00");
    let fired: Vec<_> =
        w.rt.tick().unwrap().timers.into_iter().filter(|t| t.record.as_deref() == Some(id2.as_str())).collect();
    assert_eq!(fired.len(), 1, "{fired:?}");
}

#[test]
fn a_changed_rule_moves_the_timers_armed_under_the_old_one() {
    use closeloop::TimerStatus;
    let mut w = renewals("2026-01-05T10:00:00+08:00");
    w.rt.submit("contract", obj(json!({"customer": "明远", "ends_on": "2026-06-30"})), "m_a").unwrap();
    assert_eq!(w.rt.next_due().unwrap().as_deref(), Some("2026-05-16T01:00:00.000000Z"));
    let sooner = RENEWALS.replace("before: 45d", "before: 60d");
    w.rt.install(&AppFiles { app_yaml: sooner, ..AppFiles::default() }, "system", false).unwrap();
    assert_eq!(w.rt.next_due().unwrap().as_deref(), Some("2026-05-01T01:00:00.000000Z"));
    assert!(w.rt.timer_counts().unwrap().contains(&(TimerStatus::Pending, 2)));
}

#[test]
fn an_event_that_emits_itself_stops_at_the_depth_limit_and_is_not_retried_forever() {
    let yaml = r#"
app: {id: echo, title: Echo, time_zone: Asia/Shanghai}
forms:
  - id: note
    fields:
      - {id: title, type: text, required: true}
events:
  - id: ping
    fields: [{id: title, type: text}]
    target: {form: note, match: {title: title}}
automations:
  - id: echo
    when: {event: ping}
    do:
      - emit: {event: ping}
"#;
    let mut w = World::new("2026-11-26T09:00:00+08:00");
    w.rt.install(&AppFiles { app_yaml: yaml.into(), ..AppFiles::default() }, "system", false).unwrap();
    w.rt.import_members(b"id,name,roles,region,manager,active,capacity\nm_a,A,rep,east,,true,10\n", "system").unwrap();
    w.rt.submit("note", obj(json!({"title": "hi"})), "m_a").unwrap();
    let report = w.rt.event("ping", obj(json!({"title": "hi"})), "m_a").unwrap();
    assert!(report.runs.len() <= 10, "{}", report.runs.len());
    assert!(report.runs.iter().any(|r| r.status == RunStatus::Failed));
    assert!(w.rt.next_due().unwrap().is_none(), "no retry is scheduled for a cycle");
}

#[test]
fn an_import_counts_each_assignment_once_against_capacity() {
    let mut w = World::new("2026-11-26T09:00:00+08:00");
    w.rt.install(&template("lead-followup").unwrap().app_files(), "system", false).unwrap();
    let team = "id,name,roles,region,manager,active,capacity\nm_sup,主管,sales_supervisor,east,,true,0\n\
                m_a,甲,sales_rep,east,m_sup,true,3\nm_b,乙,sales_rep,east,m_sup,true,3\n";
    w.rt.import_members(team.as_bytes(), "system").unwrap();
    let mut csv = String::from("source,customer,phone,region\n");
    for i in 0..6 {
        csv.push_str(&format!("expo,客户{i},139{i:08},east\n"));
    }
    let opts = closeloop::ImportOptions { skip_invalid: false, actor: "import".into() };
    w.rt.import_csv("lead", csv.as_bytes(), &opts, &mut |_| {}).unwrap();
    let leads = w.rt.list("lead", &closeloop::store::ListQuery::default()).unwrap();
    let owned = |m: &str| leads.iter().filter(|l| l.owner.as_deref() == Some(m)).count();
    assert_eq!((owned("m_a"), owned("m_b")), (3, 3), "both reps filled to capacity, nobody left unassigned");
}

#[test]
fn a_timer_whose_step_the_form_refuses_fails_alone_and_the_batch_goes_on() {
    let yaml = r#"
app: {id: dup, title: Dup, time_zone: Asia/Shanghai}
forms:
  - id: lead
    key: [phone]
    fields:
      - {id: phone, type: text, required: true}
automations:
  - id: clash
    when: {timer: {form: lead, after: 1h, from: created_at}}
    do:
      - set: {phone: "same"}
"#;
    let mut w = World::new("2026-11-26T09:00:00+08:00");
    w.rt.install(&AppFiles { app_yaml: yaml.into(), ..AppFiles::default() }, "system", false).unwrap();
    w.rt.import_members(b"id,name,roles,region,manager,active,capacity\nm_a,A,rep,east,,true,10\n", "system").unwrap();
    for phone in ["1", "2", "3"] {
        w.rt.submit("lead", obj(json!({"phone": phone})), "m_a").unwrap();
    }
    w.set("2026-11-26T11:00:00+08:00");
    let tick = w.rt.tick().unwrap();
    let outcomes: Vec<&str> = tick.timers.iter().map(|t| t.outcome.as_str()).collect();
    // The first takes the value; the others' step is refused (the key is taken) and retried later.
    assert_eq!(outcomes, vec!["fired", "failed", "failed"], "{tick:?}");
    assert!(tick.runs.iter().filter(|r| r.status == RunStatus::Failed).all(|r| r.steps[0].error.is_some()));
    assert!(w.rt.verify_audit().unwrap().problem.is_none());
}
