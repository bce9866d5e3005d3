//! Action penetration through the real engine: records written by submit, act, approve and
//! tasks on a real SQLite file, then the report read back from the event log.

use std::sync::Arc;

use closeloop::clock::ManualClock;
use closeloop::reports::{Outcome, Reason, ReportQuery};
use closeloop::store::Store;
use closeloop::{template, Runtime};
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Map, Value};

use crate::support::TempDir;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn day(text: &str) -> jiff::civil::Date {
    text.parse().unwrap()
}

/// The lead template on a file, Monday 2026-11-02 09:00 in Shanghai.
fn leads(dir: &TempDir) -> (Runtime, Arc<ManualClock>) {
    std::fs::create_dir_all(&dir.0).unwrap();
    let clock = Arc::new(ManualClock::new(at("2026-11-02T09:00:00+08:00")));
    let store = Store::open(&dir.0.join("closeloop.db")).unwrap();
    let mut rt = Runtime::open(store, clock.clone()).unwrap();
    let t = template("lead-followup").unwrap();
    rt.install(&t.app_files(), "system", false).unwrap();
    let members = t.files.iter().find(|(p, _)| *p == "data/members.csv").unwrap().1;
    rt.import_members(members.as_bytes(), "system").unwrap();
    (rt, clock)
}

fn submit(rt: &mut Runtime, phone: &str) -> String {
    let data = json!({"source": "expo", "customer": "上海明远科技", "phone": phone, "region": "east", "owner": "m_li"});
    rt.submit("lead", obj(data), "m_li").unwrap().id
}

fn contact(rt: &mut Runtime, id: &str) {
    rt.act("lead", id, "contact", "m_li", obj(json!({"summary": "电话沟通", "next_step": "演示"}))).unwrap();
}

fn week(metric: &str) -> ReportQuery {
    ReportQuery {
        metrics: vec![metric.into()],
        from: day("2026-11-02"),
        to: day("2026-11-08"),
        by: Vec::new(),
        instances: true,
    }
}

#[test]
fn a_lead_contacted_at_24h00m_penetrates_and_one_at_24h01m_does_not() {
    let dir = TempDir::new("penetration-24h");
    let (mut rt, clock) = leads(&dir);
    let on_time = submit(&mut rt, "13800138001");
    let late = submit(&mut rt, "13800138002");
    let never = submit(&mut rt, "13800138003");
    clock.advance(SignedDuration::from_hours(24));
    contact(&mut rt, &on_time);
    clock.advance(SignedDuration::from_mins(1));
    contact(&mut rt, &late);
    // A lead that arrives now is still inside its 24 hours when the report runs.
    let pending = submit(&mut rt, "13800138004");
    clock.advance(SignedDuration::from_hours(1));
    let report = rt.penetration(&week("lead_first_followup")).unwrap();
    let m = &report.metrics[0];
    assert_eq!((m.tally.population, m.tally.penetrated, m.tally.decided, m.tally.pending), (4, 1, 3, 1));
    let outcome = |id: &str| m.instances.iter().find(|i| i.record == id).unwrap().clone();
    assert_eq!(outcome(&on_time).outcome, Outcome::Penetrated);
    assert_eq!(outcome(&late).outcome, Outcome::Missed);
    assert_eq!(outcome(&late).fell_off.unwrap().reason, Reason::Late);
    assert_eq!(outcome(&never).fell_off.unwrap().reason, Reason::Missing);
    assert_eq!(outcome(&pending).outcome, Outcome::Pending);
    assert_eq!(outcome(&on_time).member.as_deref(), Some("m_li"));
    assert_eq!(outcome(&on_time).region.as_deref(), Some("east"));
    // The period is by start: the same leads are not in the next week's population.
    let next = ReportQuery { from: day("2026-11-09"), to: day("2026-11-15"), ..week("lead_first_followup") };
    assert_eq!(rt.penetration(&next).unwrap().metrics[0].tally.population, 0);
}

#[test]
fn an_unknown_metric_or_a_backwards_period_is_refused_with_what_to_do() {
    let dir = TempDir::new("penetration-unknown");
    let (rt, _) = leads(&dir);
    let e = rt.penetration(&week("lead_first_folowup")).unwrap_err().to_string();
    assert!(e.contains("did you mean `lead_first_followup`"), "{e}");
    let backwards = ReportQuery { from: day("2026-11-08"), to: day("2026-11-02"), ..week("lead_first_followup") };
    let e = rt.penetration(&backwards).unwrap_err().to_string();
    assert!(e.contains("--from before --to"), "{e}");
}
