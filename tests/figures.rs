//! The article's other figures through the real engine: leads, quotes and accounts written by
//! submit, act, approve, sign, events and tasks on a real SQLite file with a manual clock, then
//! `Runtime::figures` read back from the event log and the audited rows, checked against
//! numbers worked out by hand.

use std::sync::Arc;

use closeloop::clock::ManualClock;
use closeloop::reports::{Figures, FiguresQuery, ReportQuery, SunkGroup, TaskCounts};
use closeloop::{template, Evidence, Runtime};
use jiff::Timestamp;
use serde_json::{json, Map, Value};

use crate::approvals::{quote, World};
use crate::support::TempDir;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// A runtime on a database file in `dir`, at `start`, with `name` installed and its team.
fn world(dir: &TempDir, start: &str, name: &str) -> (Runtime, Arc<ManualClock>) {
    std::fs::create_dir_all(&dir.0).unwrap();
    let clock = Arc::new(ManualClock::new(at(start)));
    let mut rt = Runtime::open(crate::support::store_in(dir), clock.clone()).unwrap();
    let t = template(name).unwrap();
    rt.install(&t.app_files(), "system", false).unwrap();
    let members = t.files.iter().find(|(p, _)| *p == "data/members.csv").unwrap().1;
    rt.import_members(members.as_bytes(), "system").unwrap();
    (rt, clock)
}

fn figures(rt: &Runtime, from: &str, to: &str) -> Figures {
    rt.figures(&FiguresQuery { from: from.parse().unwrap(), to: to.parse().unwrap() }).unwrap()
}

fn group(key: &str, sunk: usize, decided: usize) -> SunkGroup {
    SunkGroup { key: key.into(), sunk, decided, share: Some(sunk as f64 / decided as f64) }
}

#[test]
fn leads_sink_when_not_contacted_within_72_hours_contacted_late_or_closed_uncontacted() {
    let dir = TempDir::new("figures-sunk");
    // Monday 2 November 2026, 09:00 in Shanghai.
    let (mut rt, clock) = world(&dir, "2026-11-02T09:00:00+08:00", "lead-followup");
    let lead = |rt: &mut Runtime, phone: &str, region: &str, owner: &str| {
        let data =
            json!({"source": "expo", "customer": "上海明远科技", "phone": phone, "region": region, "owner": owner});
        rt.submit("lead", obj(data), owner).unwrap().id
    };
    let quick = lead(&mut rt, "13800138001", "east", "m_li");
    let at_72h = lead(&mut rt, "13800138002", "east", "m_li");
    let late = lead(&mut rt, "13800138003", "east", "m_li");
    let never = lead(&mut rt, "13800138004", "south", "m_zhou");
    let lost = lead(&mut rt, "13800138005", "east", "m_li");
    let contact = |rt: &mut Runtime, id: &str| {
        rt.act("lead", id, "contact", "m_li", obj(json!({"summary": "电话沟通", "next_step": "演示"}))).unwrap();
    };
    clock.set(at("2026-11-02T10:00:00+08:00"));
    rt.act("lead", &lost, "lose", "m_li", obj(json!({"summary": "预算不足"}))).unwrap();
    clock.set(at("2026-11-02T11:00:00+08:00"));
    contact(&mut rt, &quick);
    clock.set(at("2026-11-05T09:00:00+08:00"));
    contact(&mut rt, &at_72h);
    clock.set(at("2026-11-05T09:01:00+08:00"));
    contact(&mut rt, &late);
    // Still inside its 72 hours when the report runs.
    lead(&mut rt, "13800138006", "east", "m_li");
    clock.set(at("2026-11-05T10:00:00+08:00"));

    let f = figures(&rt, "2026-11-02", "2026-11-08");
    assert_eq!(f.leads_sunk.len(), 1, "both lead metrics follow the same leads: one figure");
    let s = &f.leads_sunk[0];
    assert_eq!((s.app.as_str(), s.form.as_str(), s.action.as_str()), ("lead-followup", "lead", "contact"));
    assert_eq!(s.metrics, ["lead_first_followup", "lead_not_sunk"]);
    assert_eq!((s.population, s.decided, s.pending, s.sunk), (6, 5, 1, 3));
    assert_eq!(s.share, Some(0.6));
    assert_eq!((s.never_contacted, s.contacted_late, s.closed), (1, 1, 1), "{never} never, {late} late, {lost} lost");
    assert_eq!(s.by_member, [group("m_li", 2, 4), group("m_zhou", 1, 1)]);
    assert_eq!(s.by_region, [group("east", 2, 4), group("south", 1, 1)]);
    // The same judging as the penetration report's 72-hour metric: what did not penetrate sank.
    let query = ReportQuery {
        metrics: vec!["lead_not_sunk".into()],
        from: "2026-11-02".parse().unwrap(),
        to: "2026-11-08".parse().unwrap(),
        by: Vec::new(),
        instances: false,
    };
    let not_sunk = rt.penetration(&query).unwrap().metrics[0].tally;
    assert_eq!((not_sunk.decided - not_sunk.penetrated, not_sunk.pending), (s.sunk, s.pending));
    // Nothing of the other figures applies to the lead app.
    assert!(f.signing.is_empty() && f.steps_overdue.is_empty() && f.tasks.is_empty() && f.health.is_empty());
    // The next week holds none of these leads.
    assert_eq!(figures(&rt, "2026-11-09", "2026-11-15").leads_sunk[0].population, 0);
}

#[test]
fn the_signing_cycle_and_the_overdue_steps_come_from_the_approval_events() {
    let dir = TempDir::new("figures-quotes");
    std::fs::create_dir_all(&dir.0).unwrap();
    // Monday 23 November 2026, 10:00 in Shanghai. Supervisor steps are due one business day
    // after they open, finance and legal two.
    let clock = Arc::new(ManualClock::new(at("2026-11-23T10:00:00+08:00")));
    let mut rt = Runtime::open(crate::support::store_in(&dir), clock.clone()).unwrap();
    crate::support::quote_catalog(&mut rt, false);
    let mut w = World { rt, clock };
    let cod = || json!({"payment_terms": "cod"});
    let [q1, q2, q3, _q4, q6] = [(); 5].map(|_| quote(&mut w, cod()));
    let q5 = quote(&mut w, json!({"payment_terms": "prepay", "prepay_percent": 60}));
    let then = |w: &mut World, when: &str, f: &dyn Fn(&mut Runtime)| {
        w.clock.set(at(&format!("2026-11-{when}:00+08:00")));
        f(&mut w.rt);
    };
    let approve = |id: &str, who: &'static str| {
        let id = id.to_string();
        move |rt: &mut Runtime| {
            rt.approve("quote", &id, who, None).unwrap();
        }
    };
    let sign = |id: &str| {
        let id = id.to_string();
        move |rt: &mut Runtime| {
            let link = rt.sign_link("quote", &id, "https://sign.example.com/", "m_li").unwrap();
            rt.sign(&link.token, "王总").unwrap();
        }
    };
    then(&mut w, "23T11:00", &|rt| {
        rt.reject("quote", &q3, "m_zhao", "折扣过大").unwrap();
    });
    then(&mut w, "23T12:00", &approve(&q6, "m_zhao"));
    then(&mut w, "23T13:00", &approve(&q6, "m_qian"));
    then(&mut w, "23T15:00", &approve(&q1, "m_zhao"));
    then(&mut w, "24T11:00", &approve(&q2, "m_zhao")); // an hour past due
    then(&mut w, "25T09:30", &approve(&q2, "m_qian"));
    then(&mut w, "25T12:00", &sign(&q2)); // 2 days 2 hours after submission
    then(&mut w, "26T11:00", &approve(&q1, "m_qian")); // due Wednesday 15:00
    then(&mut w, "27T10:00", &sign(&q1)); // 4 days after submission
    then(&mut w, "27T15:00", &approve(&q5, "m_zhao")); // due Tuesday 10:00
    then(&mut w, "27T16:00", &approve(&q5, "m_jiang")); // legal opens, due next Tuesday
    w.clock.set(at("2026-11-27T17:00:00+08:00"));

    let f = figures(&w.rt, "2026-11-23", "2026-11-29");
    assert_eq!(f.signing.len(), 1);
    let c = &f.signing[0];
    assert_eq!((c.chain.as_str(), c.form.as_str()), ("quote_chain", "quote"));
    // Six runs: two signed (2.08 and 4 days), q3 rejected, q4 and q5 in approval, q6 waiting
    // for the customer.
    assert_eq!((c.started, c.signed, c.unsigned, c.awaiting_signature, c.ended), (6, 2, 3, 1, 1));
    assert_eq!((c.median_days, c.p90_days), (Some(3.0), Some(4.0)));
    let steps: Vec<(&str, usize, usize, usize, Option<f64>)> =
        f.steps_overdue.iter().map(|s| (s.step.as_str(), s.opened, s.overdue, s.pending, s.share)).collect();
    // Supervisor: q2 and q5 approved late, q4 never decided; q1, q3 (rejected) and q6 in time.
    // Finance: q1 late; q2, q5, q6 in time. Legal: opened for q5 only (the rest are cash on
    // delivery), not yet due.
    assert_eq!(steps, [("supervisor", 6, 3, 0, Some(0.5)), ("finance", 4, 1, 0, Some(0.25)), ("legal", 1, 0, 1, None)]);
    // A week later legal's step is past due, still open.
    w.clock.set(at("2026-12-02T09:00:00+08:00"));
    let later = figures(&w.rt, "2026-11-23", "2026-11-29");
    assert_eq!((later.steps_overdue[2].overdue, later.steps_overdue[2].pending), (1, 0));
}

fn counts(due: usize, on_time: usize, late: usize, open_overdue: usize, open: usize, cancelled: usize) -> TaskCounts {
    let known = on_time + late + open_overdue;
    let rate = (known > 0).then(|| on_time as f64 / known as f64);
    TaskCounts { due, on_time, late, open_overdue, open, cancelled, rate }
}

#[test]
fn sop_tasks_are_counted_by_due_day_and_health_from_the_stored_scores() {
    let dir = TempDir::new("figures-success");
    let (mut rt, clock) = world(&dir, "2026-11-20T10:00:00+08:00", "customer-success");
    // (customer, region, owner, delivered, payment due, contract end): the satisfaction call
    // is due 7 days after delivery, the usage check 5 days before the payment term ends, the
    // renewal talk 45 days before the contract ends.
    let accounts = [
        ("甲公司", "east", "m_lin", "2026-11-16", "2026-11-30", "2027-11-01"), // 11-23, 11-25, later
        ("乙公司", "east", "m_gao", "2026-11-20", "2027-01-31", "2027-01-10"), // 11-27, later, 11-26
        ("丙公司", "south", "m_luo", "2026-11-01", "2026-12-10", "2027-12-01"), // 11-08, later, later
        ("丁公司", "east", "m_lin", "2026-11-22", "2026-12-03", "2027-06-01"), // 11-29, 11-28, later
        ("戊公司", "east", "m_lin", "2026-11-23", "2027-02-28", "2027-11-30"), // 11-30, later, later
        ("己公司", "south", "m_luo", "2026-10-01", "2026-11-10", "2026-12-20"), // 10-08, 11-05, 11-05
    ];
    let mut ids = Vec::new();
    for (customer, region, owner, delivered, due, end) in accounts {
        let data = json!({"customer": customer, "region": region, "owner": owner, "delivered_at": delivered,
                          "payment_due": due, "contract_end": end});
        ids.push(rt.submit("account", obj(data), owner).unwrap().id);
        let paid = json!({"customer": customer, "amount": 10000, "paid_at": "2026-11-20"});
        rt.event("payment.received", obj(paid), "m_qian").unwrap();
    }
    let task = |rt: &Runtime, i: usize, name: &str| {
        rt.tasks_of("account", &ids[i]).unwrap().into_iter().find(|t| t.task == name).unwrap().id
    };
    let said = || Evidence { summary: Some("客户反馈良好".into()), attachment: None };
    let done = |rt: &mut Runtime, when: &str, i: usize, name: &str, who: &str| {
        clock.set(at(when));
        let id = task(rt, i, name);
        rt.complete_task(id, who, said()).unwrap();
    };
    done(&mut rt, "2026-11-21T10:00:00+08:00", 2, "satisfaction_call", "m_luo"); // due 11-08: late
    done(&mut rt, "2026-11-23T15:00:00+08:00", 0, "satisfaction_call", "m_lin"); // on its day
    clock.set(at("2026-11-24T10:00:00+08:00"));
    rt.act("account", &ids[3], "churn", "m_cao", Map::new()).unwrap(); // its tasks are cancelled
    done(&mut rt, "2026-11-26T10:00:00+08:00", 0, "usage_check", "m_lin"); // due 11-25: late
    done(&mut rt, "2026-11-27T09:00:00+08:00", 1, "satisfaction_call", "m_gao"); // on time
    clock.set(at("2026-11-28T12:00:00+08:00"));
    // 己公司 scored now: its three tasks are overdue (−45) and nobody has called (−10).
    let (_, scored) = rt.score("account", &ids[5], "health", "system").unwrap();
    assert_eq!(scored.value, 45);

    let f = figures(&rt, "2026-11-01", "2026-11-30");
    assert_eq!(f.tasks.len(), 1);
    let sop = &f.tasks[0];
    assert_eq!(
        (sop.app.as_str(), sop.sop.as_str(), sop.form.as_str()),
        ("customer-success", "after_payment", "account")
    );
    // Due in November: 甲 call (on time) and check (late), 乙 call (on time) and renewal (open,
    // overdue), 丙 call (late), 丁 call and check (cancelled), 戊 call (open, due 11-30),
    // 己 check and renewal (open, overdue; its call was due in October).
    assert_eq!(sop.counts, counts(10, 2, 2, 3, 1, 2));
    let lines: Vec<(&str, TaskCounts)> = sop.tasks.iter().map(|t| (t.task.as_str(), t.counts)).collect();
    assert_eq!(
        lines,
        [
            ("satisfaction_call", counts(5, 2, 1, 0, 1, 1)),
            ("usage_check", counts(3, 0, 1, 1, 0, 1)),
            ("renewal_talk", counts(2, 0, 0, 2, 0, 0)),
        ]
    );

    // Health as stored: 甲 95 (one task late), 乙 85 (its renewal talk overdue when scored),
    // 丙 95, 戊 80 (the default, never scored), 己 45; 丁 churned and is left out.
    assert_eq!(f.health.len(), 1);
    let h = &f.health[0];
    assert_eq!((h.score.as_str(), h.form.as_str(), h.field.as_str(), h.below), ("health", "account", "health", 60.0));
    assert_eq!((h.records, h.unscored, h.closed), (5, 0, 1));
    let buckets: Vec<(i64, i64, usize)> = h.buckets.iter().map(|b| (b.from, b.to, b.count)).collect();
    assert_eq!(buckets, [(0, 19, 0), (20, 39, 0), (40, 59, 1), (60, 79, 0), (80, 100, 4)]);
    assert_eq!(h.under.len(), 1);
    let low = &h.under[0];
    assert_eq!(
        (low.record.as_str(), low.name.as_deref(), low.owner.as_deref(), low.value),
        (ids[5].as_str(), Some("己公司"), Some("m_luo"), 45.0)
    );
    // The figures serialise with every section named.
    let value = serde_json::to_value(&f).unwrap();
    for key in ["leads_sunk", "signing", "steps_overdue", "tasks", "health"] {
        assert!(value.get(key).is_some(), "{key}: {value}");
    }
    assert_eq!(value["tasks"][0]["on_time"], 2);
}

#[test]
fn a_backwards_period_is_refused_with_what_to_do() {
    let dir = TempDir::new("figures-backwards");
    let (rt, _) = world(&dir, "2026-11-02T09:00:00+08:00", "lead-followup");
    let query = FiguresQuery { from: "2026-11-08".parse().unwrap(), to: "2026-11-02".parse().unwrap() };
    let e = rt.figures(&query).unwrap_err().to_string();
    assert!(e.contains("its first day must not come after its last"), "{e}");
}
