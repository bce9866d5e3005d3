//! The records engine through the library: submit, update, act, history, audit, members, CSV,
//! installs that would orphan data (RELIABILITY C1, C2, D6, P3, Y9).

use std::sync::Arc;

use closeloop::clock::ManualClock;
use closeloop::store::{ListQuery, Store};
use closeloop::{template, EngineError, Runtime};
use closeloop::{ImportOptions, ImportReport};
use serde_json::{json, Map, Value};

fn at(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

/// A runtime over a fresh in-memory store with the lead template and its team.
pub fn leads() -> Runtime {
    let store = crate::support::fresh_store();
    let mut rt = Runtime::open(store, Arc::new(ManualClock::new(at("2026-11-26T09:00:00+08:00")))).unwrap();
    rt.install(&template("lead-followup").unwrap().app_files(), "system", false).unwrap();
    let members = template("lead-followup").unwrap().files.iter().find(|(p, _)| *p == "data/members.csv").unwrap().1;
    rt.import_members(members.as_bytes(), "system").unwrap();
    rt
}

pub fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

pub fn lead(phone: &str) -> Map<String, Value> {
    obj(json!({"source": "expo", "customer": "上海明远科技", "phone": phone, "region": "east", "owner": "m_li"}))
}

fn codes(e: &EngineError) -> Vec<(String, &'static str)> {
    match e {
        EngineError::Invalid(p) => p.iter().map(|p| (p.field.clone(), p.code)).collect(),
        other => panic!("expected invalid input, got {other}"),
    }
}

#[test]
fn submit_applies_defaults_ids_and_owner() {
    let mut rt = leads();
    let r = rt.submit("lead", lead("13800138001"), "m_li").unwrap();
    assert_eq!(
        (r.id.as_str(), r.version, r.state.as_deref(), r.owner.as_deref()),
        ("LEAD-2026-00001", 1, Some("new"), Some("m_li"))
    );
    assert_eq!(r.data["urgency"], "green");
    let r2 = rt.submit("lead", lead("13800138002"), "m_li").unwrap();
    assert_eq!(r2.id, "LEAD-2026-00002");
}

#[test]
fn a_bad_submit_names_every_field_and_writes_nothing() {
    let mut rt = leads();
    let e = rt
        .submit("lead", obj(json!({"source": "expo", "phone": "12345", "urgency": "purple", "region": "east"})), "m_li")
        .unwrap_err();
    let mut got = codes(&e);
    got.sort();
    assert_eq!(
        got,
        [("customer".into(), "REQUIRED"), ("phone".into(), "PATTERN_MISMATCH"), ("urgency".into(), "NOT_AN_OPTION")]
    );
    if let EngineError::Invalid(p) = &e {
        assert!(p.iter().any(|p| p.message.contains("联系人电话")), "messages use the field's label: {p:?}");
    }
    assert!(rt.list("lead", &ListQuery::default()).unwrap().is_empty());
    assert_eq!(rt.verify_audit().unwrap().problem, None);
}

#[test]
fn unknown_fields_members_and_unique_values_are_refused() {
    let mut rt = leads();
    let mut data = lead("13800138001");
    data.insert("custmer".into(), json!("x"));
    data.insert("owner".into(), json!("nobody"));
    let got = codes(&rt.submit("lead", data, "m_li").unwrap_err());
    assert!(got.contains(&("custmer".into(), "UNKNOWN_FIELD")), "{got:?}");
    assert!(got.contains(&("owner".into(), "NOT_FOUND")), "{got:?}");
    assert!(matches!(rt.submit("lead", lead("13800138001"), "ghost"), Err(EngineError::UnknownMember(_))));
    // m_chen is in the directory but inactive.
    assert!(matches!(rt.submit("lead", lead("13800138001"), "m_chen"), Err(EngineError::InactiveMember(_))));
}

#[test]
fn actions_check_state_role_owner_and_required_fields() {
    let mut rt = leads();
    let id = rt.submit("lead", lead("13800138001"), "m_li").unwrap().id;
    // Another rep is not the owner; a supervisor lacks the role; the owner must give a summary.
    assert!(
        matches!(rt.act("lead", &id, "contact", "m_wang", Map::new()), Err(EngineError::Refused(m)) if m.contains("only the owner"))
    );
    assert!(
        matches!(rt.act("lead", &id, "contact", "m_zhao", Map::new()), Err(EngineError::Refused(m)) if m.contains("sales_rep"))
    );
    let got = codes(&rt.act("lead", &id, "contact", "m_li", Map::new()).unwrap_err());
    assert_eq!(got, [("summary".into(), "REQUIRED_FOR_ACTION"), ("next_step".into(), "REQUIRED_FOR_ACTION")]);
    assert_eq!(rt.get("lead", &id).unwrap().version, 1, "refusals change nothing");
    let done = rt.act("lead", &id, "contact", "m_li", obj(json!({"summary": "有意向", "next_step": "演示"}))).unwrap();
    assert_eq!((done.state.as_deref(), done.version), (Some("contacted"), 2));
    // Not from `contacted` again.
    assert!(
        matches!(rt.act("lead", &id, "contact", "m_li", Map::new()), Err(EngineError::Refused(m)) if m.contains("`contacted`"))
    );
}

#[test]
fn update_versions_and_history_show_field_level_diffs() {
    let mut rt = leads();
    let id = rt.submit("lead", lead("13800138001"), "m_li").unwrap().id;
    let v2 = rt.update("lead", &id, obj(json!({"urgency": "red", "summary": "回电"})), "m_li").unwrap();
    assert_eq!(v2.version, 2);
    let same = rt.update("lead", &id, obj(json!({"urgency": "red"})), "m_li").unwrap();
    assert_eq!(same.version, 2, "a change that changes nothing is not a version");
    let history = rt.history("lead", &id).unwrap();
    assert_eq!(history.len(), 2);
    let changes: Vec<(String, Value, Value)> =
        history[1].changes.iter().map(|c| (c.field.clone(), c.from.clone(), c.to.clone())).collect();
    assert_eq!(
        changes,
        [("summary".into(), Value::Null, json!("回电")), ("urgency".into(), json!("green"), json!("red"))]
    );
    assert_eq!((history[1].actor.as_str(), history[1].kind.as_str()), ("m_li", "updated"));
    // The owner is read-only for people.
    let got = codes(&rt.update("lead", &id, obj(json!({"owner": "m_wang"})), "m_li").unwrap_err());
    assert_eq!(got, [("owner".into(), "READONLY")]);
}

#[test]
fn list_filters_sorts_pages_and_refuses_unknown_fields() {
    let mut rt = leads();
    for (i, region) in ["east", "south", "east"].iter().enumerate() {
        let mut d = lead(&format!("1380013800{i}"));
        d.insert("region".into(), json!(region));
        rt.submit("lead", d, "m_li").unwrap();
    }
    let q = |filters: Vec<(&str, Value)>| ListQuery {
        filters: filters.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        ..ListQuery::default()
    };
    assert_eq!(rt.list("lead", &q(vec![("region", json!("east"))])).unwrap().len(), 2);
    let page = rt.list("lead", &ListQuery { limit: Some(1), offset: 1, ..ListQuery::default() }).unwrap();
    assert_eq!(page[0].id, "LEAD-2026-00002");
    // RELIABILITY P3: names that are not fields never reach SQL.
    for evil in ["amount;DROP TABLE members", "(select 1)", "nosuch"] {
        assert!(matches!(rt.list("lead", &q(vec![(evil, json!(1))])), Err(EngineError::Input(_))), "{evil}");
        let sorted = ListQuery { sort: Some(evil.into()), ..ListQuery::default() };
        assert!(matches!(rt.list("lead", &sorted), Err(EngineError::Input(_))), "{evil}");
    }
    assert_eq!(rt.members().unwrap().len(), 21, "the members table is intact");
}

#[test]
fn every_change_is_exactly_one_audit_event_and_the_chain_verifies() {
    // RELIABILITY D6.
    let mut rt = leads();
    let before = rt.verify_audit().unwrap().events;
    let id = rt.submit("lead", lead("13800138001"), "m_li").unwrap().id;
    rt.update("lead", &id, obj(json!({"urgency": "red"})), "m_li").unwrap();
    rt.act("lead", &id, "contact", "m_li", obj(json!({"summary": "s", "next_step": "n"}))).unwrap();
    let _ = rt.submit("lead", obj(json!({})), "m_li");
    let v = rt.verify_audit().unwrap();
    // Three record changes, and the two automation runs they set off (assign and notify on
    // creation, unflag on contact): one event each, the refused submit none.
    assert_eq!((v.events - before, v.problem), (5, None));
    let history = rt.history("lead", &id).unwrap();
    assert_eq!(history.iter().map(|v| v.version).collect::<Vec<_>>(), vec![1, 2, 3]);
}

#[test]
fn members_upsert_and_deactivate_without_losing_history() {
    let mut rt = leads();
    let id = rt.submit("lead", lead("13800138001"), "m_li").unwrap().id;
    let csv = "id,name,roles,region,manager,active,capacity\nm_li,李伟,sales_rep,east,m_zhao,false,30\nm_new,新人,sales_rep;sales_supervisor,south,,true,10\n";
    let report = rt.import_members(csv.as_bytes(), "system").unwrap();
    assert_eq!((report.created, report.updated, report.unchanged), (1, 1, 0));
    let again = rt.import_members(csv.as_bytes(), "system").unwrap();
    assert_eq!(again.unchanged, 2);
    let members = rt.members().unwrap();
    assert!(!members.iter().find(|m| m.id == "m_li").unwrap().active);
    assert_eq!(members.iter().find(|m| m.id == "m_new").unwrap().roles, ["sales_rep", "sales_supervisor"]);
    assert_eq!(rt.get("lead", &id).unwrap().owner.as_deref(), Some("m_li"), "history keeps the departed owner");
    let bad = "id,name,active,capacity\nm_x,X,maybe,many\n";
    match rt.import_members(bad.as_bytes(), "system").unwrap_err() {
        EngineError::Import(r) => assert_eq!(
            r.problems.iter().map(|p| p.column.clone().unwrap_or_default()).collect::<Vec<_>>(),
            ["active", "capacity"]
        ),
        other => panic!("{other}"),
    }
}

fn leads_csv(rows: usize, bad: &[usize]) -> String {
    let mut s = String::from("来源渠道,客户名称,联系人电话,紧急等级,所属区域,owner\n");
    for i in 0..rows {
        let phone = if bad.contains(&i) { "12345".to_string() } else { format!("139{i:08}") };
        s.push_str(&format!("展会,客户{i},{phone},黄,east,m_li\n"));
    }
    s
}

fn import(rt: &mut Runtime, csv: &str, skip: bool) -> Result<ImportReport, EngineError> {
    rt.import_csv("lead", csv.as_bytes(), &ImportOptions { skip_invalid: skip, actor: "import".into() }, &mut |_| {})
}

#[test]
fn csv_import_maps_chinese_headers_and_labels_and_is_idempotent() {
    let mut rt = leads();
    let csv = leads_csv(300, &[]);
    let first = import(&mut rt, &csv, false).unwrap();
    assert_eq!((first.created, first.rejected), (300, 0));
    let lead = rt.list("lead", &ListQuery { limit: Some(1), ..ListQuery::default() }).unwrap().remove(0);
    assert_eq!(
        (lead.data["source"].as_str(), lead.data["urgency"].as_str()),
        (Some("expo"), Some("yellow")),
        "labels map to option values"
    );
    let again = import(&mut rt, &csv, false).unwrap();
    assert_eq!((again.created, again.unchanged), (0, 300));
    assert_eq!(rt.list("lead", &ListQuery::default()).unwrap().len(), 300);
}

#[test]
fn a_file_with_bad_rows_imports_nothing_unless_told_to_skip_them() {
    let mut rt = leads();
    let csv = leads_csv(50, &[3, 17, 40]);
    match import(&mut rt, &csv, false).unwrap_err() {
        EngineError::Import(r) => {
            let rows: Vec<usize> = r.problems.iter().map(|p| p.row).collect();
            assert_eq!(rows, [5, 19, 42], "rows count as a spreadsheet shows them (header = 1)");
            assert_eq!(r.problems[0].column.as_deref(), Some("联系人电话"));
            assert_eq!(
                r.problems[0].to_string(),
                "row 5, column 联系人电话: \"12345\" does not have the required form"
            );
        }
        other => panic!("{other}"),
    }
    assert!(rt.list("lead", &ListQuery::default()).unwrap().is_empty(), "all-or-nothing");
    let partial = import(&mut rt, &csv, true).unwrap();
    assert_eq!((partial.created, partial.rejected, partial.rejects.len()), (47, 3, 4));
    assert_eq!(rt.verify_audit().unwrap().problem, None);
}

#[test]
fn gb18030_and_bom_files_read_the_same_and_garbage_is_refused() {
    // RELIABILITY C2.
    let mut rt = leads();
    let csv = leads_csv(2, &[]);
    let (gbk, _, _) = encoding_rs::GB18030.encode(&csv);

    let r = rt.import_csv("lead", &gbk, &ImportOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(r.created, 2);
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(leads_csv(3, &[]).as_bytes());
    assert_eq!(rt.import_csv("lead", &bom, &ImportOptions::default(), &mut |_| {}).unwrap().created, 1);
    assert!(matches!(
        rt.import_csv("lead", b"\xff\xfe\x00garbage\x81", &ImportOptions::default(), &mut |_| {}),
        Err(EngineError::Input(_))
    ));
    let unknown = "客户名,联系人电话\nx,13900000000\n";
    match import(&mut rt, unknown, false).unwrap_err() {
        EngineError::Import(r) => assert_eq!(r.problems[0].column.as_deref(), Some("客户名")),
        other => panic!("{other}"),
    }
}

#[test]
fn exports_escape_formulas_but_keep_numbers_and_stored_text_verbatim() {
    // RELIABILITY C1.
    let mut rt = leads();
    let mut d = lead("13800138001");
    d.insert("customer".into(), json!("=HYPERLINK(\"http://x\",\"y\")"));
    d.insert("summary".into(), json!("@SUM(A1)"));
    d.insert("budget".into(), json!({"min": 10, "max": 50}));
    let r = rt.submit("lead", d, "m_li").unwrap();
    assert_eq!(r.data["customer"], "=HYPERLINK(\"http://x\",\"y\")", "stored verbatim");
    let mut out = Vec::new();
    rt.export_csv("lead", &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""), "{text}");
    assert!(text.contains("'@SUM(A1)"), "{text}");
    assert_eq!(closeloop::guard("-5"), "'-5");
    // The export imports back exactly: the guard quote is taken off again.
    let again = rt.import_csv("lead", text.as_bytes(), &ImportOptions::default(), &mut |_| {}).unwrap();
    assert_eq!((again.unchanged, again.updated, again.created), (1, 0, 0));
    assert_eq!(rt.get("lead", &r.id).unwrap().version, 1);
}

#[test]
fn installing_a_version_that_orphans_data_is_refused_unless_forced() {
    // RELIABILITY Y9.
    let mut rt = leads();
    rt.submit(
        "lead",
        {
            let mut d = lead("13800138001");
            d.insert("summary".into(), json!("x"));
            d
        },
        "m_li",
    )
    .unwrap();
    let mut files = template("lead-followup").unwrap().app_files();
    files.app_yaml = files.app_yaml.replace(
        "      - id: summary\n        type: long_text\n        label: {zh: 沟通纪要, en: Contact summary}\n        max_length: 2000\n",
        "",
    ).replace("requires: [summary, next_step]", "requires: [next_step]").replace("        requires: [summary]\n", "");
    match rt.install(&files, "system", false).unwrap_err() {
        EngineError::Orphans(d) => {
            assert!(d[0].message.contains("lead.summary") && d[0].code.as_str() == "ORPHANED_DATA", "{d:?}")
        }
        other => panic!("{other}"),
    }
    // Additive changes apply without force.
    let mut additive = template("lead-followup").unwrap().app_files();
    additive.app_yaml = additive
        .app_yaml
        .replace("      - id: next_step\n", "      - {id: wechat, type: text}\n      - id: next_step\n");
    assert_eq!(rt.install(&additive, "system", false).unwrap().revision, 2);
    let forced = rt.install(&files, "system", true).unwrap();
    assert!(forced.forced && forced.revision == 3);
    assert_eq!(rt.verify_audit().unwrap().problem, None);
}

/// The quote template: catalog lookups, computed columns and totals, unique SKUs.
#[test]
fn lookups_fill_from_the_catalog_and_computed_fields_follow() {
    let store = crate::support::fresh_store();
    let mut rt = Runtime::open(store, Arc::new(ManualClock::new(at("2026-11-26T09:00:00+08:00")))).unwrap();
    crate::support::quote_catalog(&mut rt, false);
    let dup = obj(json!({"sku": "CL-CRM-STD", "name": "重复", "list_price": 1}));
    assert_eq!(codes(&rt.submit("product", dup, "m_li").unwrap_err()), [("sku".to_string(), "NOT_UNIQUE")]);
    let customer = rt.list("customer", &ListQuery::default()).unwrap().remove(0).id;
    let quote = obj(json!({
        "customer": customer, "contact_phone": "13800138001", "owner": "m_li", "payment_terms": "cod", "valid_until": "2026-12-31",
        "lines": [{"sku": "CL-CRM-STD", "qty": 2, "unit_price": 11000.0}, {"sku": "CL-IMPL-DAY", "qty": 3, "unit_price": 2500.0}]
    }));
    let r = rt.submit("quote", quote, "m_li").unwrap();
    assert_eq!(r.id, "QT-202611-0001");
    let lines = r.data["lines"].as_array().unwrap();
    assert_eq!(lines[0]["product_name"], "CRM 标准版（年）");
    assert_eq!(lines[0]["list_price"], 12000.0);
    assert_eq!(lines[0]["amount"], 22000.0);
    assert_eq!(r.data["total"], 29500.0);
    let bad = obj(
        json!({"customer": "C-9", "contact_phone": "13800138001", "payment_terms": "prepay", "valid_until": "2026-12-31",
        "lines": [{"sku": "NOPE", "qty": 0}]}),
    );
    let mut got = codes(&rt.submit("quote", bad, "m_li").unwrap_err());
    got.sort();
    assert_eq!(
        got,
        [("customer".into(), "NOT_FOUND"), ("lines[0].qty".into(), "TOO_SMALL"), ("prepay_percent".into(), "REQUIRED"),]
    );
}

fn file_runtime(dir: &std::path::Path) -> Runtime {
    let store = Store::open(&dir.join("closeloop.db")).unwrap();
    Runtime::open(store, Arc::new(ManualClock::new(at("2026-11-26T09:00:00+08:00")))).unwrap()
}

fn file_leads(name: &str) -> (crate::support::TempDir, Runtime) {
    let dir = crate::support::TempDir::new(name);
    std::fs::create_dir_all(&dir.0).unwrap();
    let mut rt = file_runtime(&dir.0);
    rt.install(&template("lead-followup").unwrap().app_files(), "system", false).unwrap();
    let members = template("lead-followup").unwrap().files.iter().find(|(p, _)| *p == "data/members.csv").unwrap().1;
    rt.import_members(members.as_bytes(), "system").unwrap();
    (dir, rt)
}

#[test]
fn d5_a_full_disk_fails_cleanly_writes_nothing_and_recovers() {
    let (_dir, mut rt) = file_leads("diskfull");
    rt.submit("lead", lead("13800138001"), "m_li").unwrap();
    let size = std::fs::metadata(_dir.0.join("closeloop.db")).unwrap().len();
    rt.store().limit_size(size + 64 * 1024).unwrap();
    let csv = leads_csv(5_000, &[]);
    let err = import(&mut rt, &csv, false).unwrap_err();
    assert!(err.to_string().contains("full"), "{err}");
    assert_eq!(rt.list("lead", &ListQuery::default()).unwrap().len(), 1, "no partial rows");
    assert_eq!(rt.verify_audit().unwrap().problem, None);
    rt.store().limit_size(1 << 40).unwrap();
    assert_eq!(import(&mut rt, &csv, false).unwrap().created, 5_000, "recovers when space returns");
}

#[test]
fn d7_fifty_writers_reading_then_writing_one_file_all_succeed() {
    let (dir, mut rt) = file_leads("writers");
    let ids: Vec<String> =
        (0..50).map(|i| rt.submit("lead", lead(&format!("1380013{i:04}")), "m_li").unwrap().id).collect();
    drop(rt);
    let threads: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let path = dir.0.clone();
            std::thread::spawn(move || {
                let mut rt = file_runtime(&path);
                for round in 0..10 {
                    // Read, then write what was read plus one: a read-then-write transaction.
                    let current = rt.get("lead", &id).unwrap();
                    let next = format!("{}{round}", current.data.get("summary").and_then(Value::as_str).unwrap_or(""));
                    rt.update("lead", &id, obj(json!({"summary": next})), "m_li").unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a writer failed");
    }
    let rt = file_runtime(&dir.0);
    let all = rt.list("lead", &ListQuery::default()).unwrap();
    assert!(all.iter().all(|r| r.version == 11 && r.data["summary"] == "0123456789"), "every write landed");
    assert_eq!(rt.verify_audit().unwrap().problem, None);
}

#[test]
fn d8_a_long_reader_does_not_block_writes_and_the_wal_catches_up_after_it() {
    let (dir, mut rt) = file_leads("reader");
    let reader = rusqlite::Connection::open(dir.0.join("closeloop.db")).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let before: i64 = reader.query_row("SELECT count(*) FROM rec_lead", [], |r| r.get(0)).unwrap();
    for i in 0..300 {
        rt.submit("lead", lead(&format!("1390000{i:04}")), "m_li").unwrap();
    }
    let during: i64 = reader.query_row("SELECT count(*) FROM rec_lead", [], |r| r.get(0)).unwrap();
    assert_eq!(during, before, "the reader keeps its snapshot");
    let (log, copied) = rt.store().checkpoint().unwrap();
    assert!(copied < log, "frames the reader may still need stay in the WAL ({copied} of {log})");
    // The log has grown while the reader held it: past a (here small) limit, ops are told why.
    let grown = rt.store().wal_bytes();
    assert!(grown > 64 * 1024, "{grown} bytes");
    let alert = rt.store().wal_alert(64 * 1024).unwrap_or_default();
    assert!(alert.contains("long-running read"), "{alert:?}");
    assert!(!rt.store().truncate_wal().unwrap(), "the reader still needs the log");
    reader.execute_batch("COMMIT").unwrap();
    let (log, copied) = rt.store().checkpoint().unwrap();
    assert_eq!(copied, log, "after the reader ends the checkpoint catches up");
    assert!(rt.store().truncate_wal().unwrap(), "and the log is cut back");
    assert_eq!(rt.store().wal_bytes(), 0);
    assert_eq!(rt.store().wal_alert(64 * 1024), None);
    assert_eq!(rt.list("lead", &ListQuery::default()).unwrap().len(), 300);
}

#[test]
fn d4_every_commit_is_synced_so_a_power_cut_loses_no_fired_timer_or_sent_message() {
    // synchronous=FULL on the connection that commits records, fired timers, sent messages and
    // the audit chain (docs/reliability.md, D4).
    let (_dir, rt) = file_leads("full-sync");
    assert_eq!(rt.store().synchronous().unwrap(), 2, "FULL");
}

// Regressions found in review: each named after what broke.

#[test]
fn records_of_a_deactivated_rep_stay_editable_and_importable() {
    let mut rt = leads();
    let id = rt.submit("lead", lead("13800138001"), "m_li").unwrap().id;
    import(&mut rt, &leads_csv(3, &[]), false).unwrap();
    rt.import_members(b"id,active\nm_li,false\n", "system").unwrap();
    // Their supervisor edits them (another rep may not: the template's `edit` rules).
    let r = rt.update("lead", &id, obj(json!({"urgency": "red"})), "m_zhao").unwrap();
    assert_eq!((r.version, r.owner.as_deref()), (2, Some("m_li")));
    let other_rep = rt.update("lead", &id, obj(json!({"urgency": "green"})), "m_wang").unwrap_err();
    assert!(matches!(other_rep, EngineError::Refused(_)), "{other_rep}");
    assert_eq!(
        import(&mut rt, &leads_csv(3, &[]), false).unwrap().unchanged,
        3,
        "re-importing their records still works"
    );
    let mut fresh = lead("13800138009");
    fresh.insert("owner".into(), json!("m_li"));
    assert_eq!(
        codes(&rt.submit("lead", fresh, "m_wang").unwrap_err()),
        [("owner".to_string(), "NOT_FOUND")],
        "but no new record goes to them"
    );
}

#[test]
fn a_partial_members_file_changes_only_its_columns() {
    let mut rt = leads();
    rt.import_members(b"id,email\nm_li,li@example.com\nm_chen,chen@example.com\n", "system").unwrap();
    let members = rt.members().unwrap();
    let li = members.iter().find(|m| m.id == "m_li").unwrap();
    let chen = members.iter().find(|m| m.id == "m_chen").unwrap();
    assert_eq!(
        (li.roles.as_slice(), li.region.as_deref(), li.email.as_deref()),
        (&["sales_rep".to_string()][..], Some("east"), Some("li@example.com"))
    );
    assert!(!chen.active, "an absent `active` column leaves m_chen inactive");
    assert!(
        matches!(rt.import_members(b"id,email\nm_new,x@example.com\n", "system"), Err(EngineError::Import(_))),
        "a new member needs a name"
    );
}

#[test]
fn imports_honour_the_owner_column_but_not_read_only_changes() {
    let mut rt = leads();
    import(&mut rt, &leads_csv(2, &[]), false).unwrap();
    let all = rt.list("lead", &ListQuery::default()).unwrap();
    assert!(all.iter().all(|r| r.owner.as_deref() == Some("m_li")), "the form's own `owner` field is imported");
    let moved = leads_csv(2, &[]).replace(",m_li\n", ",m_wang\n");
    match import(&mut rt, &moved, false).unwrap_err() {
        EngineError::Import(r) => assert!(r.problems.iter().all(|p| p.code == "READONLY"), "{:?}", r.problems),
        other => panic!("{other}"),
    }
}

#[test]
fn the_form_key_identifies_one_record() {
    let mut rt = leads();
    rt.submit("lead", lead("13800138001"), "m_li").unwrap();
    assert_eq!(
        codes(&rt.submit("lead", lead("13800138001"), "m_li").unwrap_err()),
        [("phone".to_string(), "NOT_UNIQUE")]
    );
}

#[test]
fn list_filters_read_values_as_the_fields_type() {
    let mut rt = leads();
    rt.submit("lead", lead("13800138001"), "m_li").unwrap();
    let q = ListQuery { filters: vec![("phone".into(), json!(13800138001u64))], ..ListQuery::default() };
    assert_eq!(rt.list("lead", &q).unwrap().len(), 1);
}

#[test]
fn csv_edge_cases_are_named_not_guessed() {
    let mut rt = leads();
    let header = "来源渠道,客户名称,联系人电话,所属区域\n";
    let problems = |csv: &str, rt: &mut Runtime| match import(rt, csv, false) {
        Err(EngineError::Import(r)) => r.problems.iter().map(|p| (p.row, p.code.clone())).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        problems(&format!("{header}展会,甲,13900000001,east,extra\n"), &mut rt),
        [(2, "CELL_COUNT".to_string())]
    );
    assert_eq!(
        problems("客户名称,customer,联系人电话\n甲,乙,13900000001\n", &mut rt),
        [(1, "DUPLICATE_COLUMN".to_string())]
    );
    // A quoted cell over three lines is still row 2; the bad phone is on row 3.
    let multiline = format!("{header}展会,\"甲\n乙\n丙\",13900000001,east\n展会,丁,123,east\n");
    assert_eq!(problems(&multiline, &mut rt), [(3, "WRONG_TYPE".to_string())]);
    // Empty trailing rows (as Excel leaves them) are skipped; an empty file is refused.
    let trailing = format!("{header}展会,甲,13900000001,east\n,,,\n,,,\n");
    assert_eq!(import(&mut rt, &trailing, false).unwrap().created, 1);
    assert!(matches!(import(&mut rt, "", false), Err(EngineError::Input(_))));
    // A rejects file, fixed, imports back (its `error` column is ignored).
    let fixed = format!("{header},error\n展会,戊,13900000002,east,\"row 3, column 联系人电话: …\"\n")
        .replace(&format!("{header},error"), &format!("{},error", header.trim_end()));
    assert_eq!(import(&mut rt, &fixed, false).unwrap().created, 1);
}

#[test]
fn links_resolve_by_key_lookups_keep_old_prices_and_values_round_trip() {
    let store = crate::support::fresh_store();
    let mut rt = Runtime::open(store, Arc::new(ManualClock::new(at("2026-11-26T09:00:00+08:00")))).unwrap();
    crate::support::quote_catalog(&mut rt, true);
    let history = rt.list("price_history", &ListQuery::default()).unwrap();
    let customer = rt.get("customer", history[0].data["customer"].as_str().unwrap()).unwrap();
    assert_eq!(customer.data["code"], "C-0001", "the customer code resolved to its record");
    let quote = obj(
        json!({"customer": "C-0001", "owner": "m_li", "contact_phone": "13800138001", "payment_terms": "cod", "valid_until": "2026-12-31",
        "lines": [{"sku": "CL-CRM-STD", "qty": 1, "unit_price": 12000}]}),
    );
    let q = rt.submit("quote", quote, "m_li").unwrap();
    assert_eq!(q.data["customer"], customer.id, "a customer code in a link is stored as the record id");
    let product = rt
        .list("product", &ListQuery { filters: vec![("sku".into(), json!("CL-CRM-STD"))], ..ListQuery::default() })
        .unwrap()
        .remove(0);
    rt.update("product", &product.id, obj(json!({"list_price": 15000})), "m_qian").unwrap();
    let q2 = rt.update("quote", &q.id, obj(json!({"valid_until": "2027-01-31"})), "m_li").unwrap();
    assert_eq!(q2.data["lines"][0]["list_price"], 12000.0, "a stored quote keeps the price it was made with");
    // A range exports (as `10.0~50.5`) and imports back.
    let mut rt = leads();
    let mut d = lead("13800138001");
    d.insert("budget".into(), json!({"min": 10, "max": 50.5}));
    rt.submit("lead", d, "m_li").unwrap();
    let mut out = Vec::new();
    rt.export_csv("lead", &mut out).unwrap();
    let again = rt.import_csv("lead", &out, &ImportOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(again.unchanged, 1, "{}", String::from_utf8_lossy(&out));
}

#[test]
fn uniqueness_follows_the_installed_definition() {
    let mut rt = leads();
    rt.submit("lead", lead("13800138001"), "m_li").unwrap();
    let mut second = lead("13800138002");
    second.insert("customer".into(), json!("上海明远科技"));
    rt.submit("lead", second, "m_li").unwrap();
    // Making `customer` unique over two equal customers is refused with a diagnostic, not a
    // database error.
    let mut files = template("lead-followup").unwrap().app_files();
    files.app_yaml = files.app_yaml.replace(
        "        required: true\n        max_length: 100\n",
        "        required: true\n        unique: true\n        max_length: 100\n",
    );
    match rt.install(&files, "system", false).unwrap_err() {
        EngineError::InvalidApp(d) => {
            assert!(d[0].message.contains("customer") && d[0].message.contains("share"), "{d:?}")
        }
        other => panic!("{other}"),
    }
    // Dropping the key lets the same phone in again (the unique key index goes with it).
    let mut keyless = template("lead-followup").unwrap().app_files();
    keyless.app_yaml = keyless.app_yaml.replace("    key: [phone]\n", "");
    rt.install(&keyless, "system", false).unwrap();
    rt.submit("lead", lead("13800138001"), "m_li").unwrap();
    assert_eq!(rt.list("lead", &ListQuery::default()).unwrap().len(), 3);
}

#[test]
fn a_list_filtered_by_a_yes_no_field_and_sorted_by_an_empty_one_reads_the_same_on_every_backend() {
    // On PostgreSQL a field's column is jsonb: `true` was bound as the number 1 and matched
    // nothing, and records without the sorted field came first when sorting down.
    let yaml = "app: {id: yn, title: YN}\nforms:\n  - id: item\n    fields:\n      - {id: name, type: text}\n      - {id: active, type: bool}\n      - {id: rank, type: integer}\n";
    let mut rt =
        Runtime::open(crate::support::fresh_store(), Arc::new(ManualClock::new(at("2026-11-26T09:00:00+08:00"))))
            .unwrap();
    rt.install(&closeloop::AppFiles { app_yaml: yaml.into(), ..Default::default() }, "system", false).unwrap();
    for (name, active, rank) in [("a", true, Some(2)), ("b", false, Some(5)), ("c", true, None)] {
        let mut data = obj(json!({"name": name, "active": active}));
        if let Some(rank) = rank {
            data.insert("rank".into(), json!(rank));
        }
        rt.submit("item", data, "system").unwrap();
    }
    let names = |q: ListQuery| -> Vec<String> {
        rt.list("item", &q).unwrap().iter().map(|r| r.data["name"].as_str().unwrap().to_string()).collect()
    };
    let active =
        ListQuery { filters: vec![("active".into(), json!(true))], sort: Some("name".into()), ..ListQuery::default() };
    assert_eq!(names(active), ["a", "c"]);
    let down =
        ListQuery { sort: Some("rank".into()), order: closeloop::store::SortOrder::Desc, ..ListQuery::default() };
    assert_eq!(names(down), ["b", "a", "c"], "an empty rank sorts as the smallest, as on SQLite");
    let up = ListQuery { sort: Some("rank".into()), ..ListQuery::default() };
    assert_eq!(names(up), ["c", "a", "b"]);
}
