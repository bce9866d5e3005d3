//! Separation of duties under races and overlaps: a hundred approvers at once on one step
//! (RELIABILITY A1), and one member who qualifies for two steps of a chain (A6). Each approver
//! has a runtime of their own on the same file, as the workers of a server do.

use std::sync::{Arc, Barrier};

use closeloop::clock::ManualClock;
use closeloop::{ErrorKind, Runtime};
use serde_json::{json, Map, Value};

use crate::support::Cli;

/// A claim approved by any one finance member, or (with `two_steps`) by finance, then by a
/// manager; either way the owner hears of the outcome once, by WeCom.
fn app(two_steps: bool) -> String {
    let manager = if two_steps { "\n      - {id: manager, approver: {role: manager}}" } else { "" };
    format!(
        r#"
app: {{id: expenses, title: Expenses, time_zone: Asia/Shanghai}}
roles: [{{id: staff}}, {{id: finance}}, {{id: manager}}]
channels: [{{id: wecom, kind: wecom}}]
messages:
  - {{id: approved, text: "报销 {{{{ id }}}} 已批准"}}
forms:
  - id: claim
    owner_field: owner
    fields:
      - {{id: purpose, type: text, required: true}}
      - {{id: owner, type: member}}
    states:
      - {{id: draft, initial: true}}
    actions:
      - {{id: submit, from: [draft], to: draft, roles: [staff]}}
approvals:
  - id: chain
    form: claim
    steps:
      - {{id: finance, approver: {{role: finance}}, mode: any}}{manager}
    on_approved:
      - notify: {{channel: wecom, message: approved, to: {{field: owner}}}}
automations:
  - id: route
    when: {{action: {{form: claim, action: submit}}}}
    do:
      - start_approval: chain
"#
    )
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

/// A runtime of its own on the test's database (a SQLite file, or PostgreSQL in its pass).
fn open(db: &Cli) -> Runtime {
    let clock = Arc::new(ManualClock::new("2026-11-26T09:00:00+08:00".parse().unwrap()));
    Runtime::open(db.store(), clock).unwrap()
}

/// The app installed with `team` (CSV rows after the header), and one claim of `s1`'s
/// submitted into its chain; returns the claim's id.
fn submitted(dir: &Cli, two_steps: bool, team: &str) -> String {
    let mut rt = open(dir);
    let files = closeloop::AppFiles { dir: "expenses".into(), app_yaml: app(two_steps), ..Default::default() };
    rt.install(&files, "system", false).unwrap();
    let csv = format!("id,name,roles,region,manager,active,capacity\ns1,S,staff,,,true,0\n{team}");
    rt.import_members(csv.as_bytes(), "system").unwrap();
    let id = rt.submit("claim", obj(json!({"purpose": "差旅", "owner": "s1"})), "s1").unwrap().id;
    rt.act("claim", &id, "submit", "s1", Map::new()).unwrap();
    id
}

fn count(dir: &Cli, sql: &str, id: &str) -> i64 {
    dir.query(sql, &[id])
}

#[test]
fn a1_a_hundred_approvers_at_once_make_one_decision_and_one_message_and_every_loser_is_refused_and_audited() {
    let dir = Cli::new("duties-a1", "2026-11-26T09:00:00+08:00");
    let team: String = (1..=100).map(|i| format!("f{i:03},F{i},finance,,,true,0\n")).collect();
    let id = submitted(&dir, false, &team);
    let start = Barrier::new(100);
    let outcomes: Vec<Result<(), ErrorKind>> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..=100)
            .map(|i| {
                let (dir, id, start) = (&dir, &id, &start);
                s.spawn(move || {
                    let mut rt = open(dir);
                    start.wait();
                    rt.approve("claim", id, &format!("f{i:03}"), None).map(|_| ()).map_err(|e| e.kind())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(won, 1, "{outcomes:?}");
    // The losers are told someone else decided (a conflict, 409 over HTTP) or that the step is
    // no longer theirs to decide; none sees the database fail.
    assert!(
        outcomes.iter().filter_map(|o| o.as_ref().err()).all(|k| matches!(k, ErrorKind::Refused | ErrorKind::Conflict)),
        "{outcomes:?}"
    );
    let decisions =
        "SELECT COUNT(*) FROM approval_decisions d JOIN approvals a ON a.id = d.approval WHERE a.record = ?1";
    assert_eq!(count(&dir, decisions, &id), 1, "one transition");
    assert_eq!(
        count(&dir, "SELECT COUNT(*) FROM outbox WHERE message = 'approved' AND record = ?1", &id),
        1,
        "one message"
    );
    let refused = count(&dir, "SELECT COUNT(*) FROM events WHERE kind = 'approval.refused' AND record = ?1", &id);
    assert_eq!(refused, 99, "every loser is on the record");
    assert!(open(&dir).verify_audit().unwrap().problem.is_none());
}

#[test]
fn a6_a_member_who_qualifies_for_two_steps_decides_only_one_of_them() {
    let dir = Cli::new("duties-a6", "2026-11-26T09:00:00+08:00");
    // f1 is in finance and a manager: the chain's two steps both name them.
    let id = submitted(&dir, true, "f1,F1,finance;manager,,,true,0\nm2,M2,manager,,,true,0\n");
    let mut rt = open(&dir);
    rt.approve("claim", &id, "f1", None).unwrap();
    let second = rt.approve("claim", &id, "f1", None).map(|_| ()).map_err(|e| (e.kind(), e.to_string()));
    let Err((kind, why)) = second else { panic!("one person approved two levels of the chain") };
    assert_eq!(kind, ErrorKind::Refused, "{why}");
    assert!(why.contains("f1") || why.contains("already"), "the refusal says why: {why}");
    assert_eq!(
        count(&dir, "SELECT COUNT(*) FROM outbox WHERE message = 'approved' AND record = ?1", &id),
        0,
        "not approved yet"
    );
    // Another manager completes it; the owner hears once.
    rt.approve("claim", &id, "m2", None).unwrap();
    assert_eq!(count(&dir, "SELECT COUNT(*) FROM outbox WHERE message = 'approved' AND record = ?1", &id), 1);
}
