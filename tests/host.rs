//! The host API scripts see, health scores built on it, and what scripts cannot do (RELIABILITY S8).

use std::sync::Arc;

use closeloop::clock::ManualClock;
use closeloop::store::ListQuery;
use closeloop::ImportOptions;
use closeloop::{template, AppFiles, Runtime};
use serde_json::json;

use crate::records::obj;

fn runtime() -> Runtime {
    let clock = Arc::new(ManualClock::new("2026-11-26T09:00:00+08:00".parse().unwrap()));
    Runtime::open(crate::support::fresh_store(), clock).unwrap()
}

/// An app whose score script calls every host function and reports what it got.
const PROBE: &str = r#"app: {id: probe, title: Probe, time_zone: Asia/Shanghai, calendar: cn}
calendars:
  - {id: cn, holidays: [2026-12-01], extra_working_days: [2026-11-28]}
roles:
  - {id: sales_rep}
forms:
  - id: deal
    key: [code]
    fields:
      - {id: code, type: text}
      - {id: owner, type: member}
      - {id: points, type: integer}
scores:
  - id: probe
    form: deal
    field: points
    script: |
      let r = [];
      r.push(today());
      r.push(days_between("2026-11-01", "2026-11-26"));
      r.push(add_business_days("2026-11-27", 2));
      r.push(start_of_month("2026-11-26"));
      r.push(members(#{role: "sales_rep", active: true}).len());
      r.push(open_count("m_li", "deal", [], "ever"));
      r.push(lookup("deal", "code", "D-1").code);
      r.push(history().len());
      #{score: 50, reasons: r.map(|x| `${x}`)}
"#;

#[test]
fn host_functions_answer_from_the_store_the_clock_and_the_calendar() {
    let mut rt = runtime();
    rt.install(&AppFiles { app_yaml: PROBE.into(), ..AppFiles::default() }, "system", false).unwrap();
    rt.import_members(b"id,name,roles,active\nm_li,Li,sales_rep,true\nm_x,X,sales_rep,false\n", "system").unwrap();
    let deal = rt.submit("deal", obj(json!({"code": "D-1", "owner": "m_li"})), "m_li").unwrap();
    let (stored, scored) = rt.score("deal", &deal.id, "probe", "system").unwrap();
    assert_eq!(stored.data["points"], 50);
    // 2026-11-27 is a Friday; the 28th is a make-up working Saturday; the 30th a Monday.
    assert_eq!(scored.reasons, ["2026-11-26", "25", "2026-11-30", "2026-11-01", "1", "1", "D-1", "1"]);
    assert!(scored.calls.iter().any(|c| c.starts_with("lookup(deal, code, \"D-1\") → DEAL-")), "{:?}", scored.calls);
    // The score's change is a version whose event explains it.
    let history = rt.history("deal", &deal.id).unwrap();
    assert_eq!((history.len(), history[1].changes[0].field.as_str()), (2, "points"));
    assert!(rt.verify_audit().unwrap().problem.is_none());
}

#[test]
fn the_customer_health_score_explains_itself_and_notes_the_threshold_it_crosses() {
    let mut rt = runtime();
    let t = template("customer-success").unwrap();
    rt.install(&t.app_files(), "system", false).unwrap();
    let file = |name: &str| t.files.iter().find(|(p, _)| *p == name).unwrap().1.as_bytes();
    rt.import_members(file("data/members.csv"), "system").unwrap();
    rt.import_csv("account", file("data/accounts.csv"), &ImportOptions::default(), &mut |_| {}).unwrap();
    let account = rt.list("account", &ListQuery::default()).unwrap().remove(0);
    let (first, scored) = rt.score("account", &account.id, "health", "system").unwrap();
    assert_eq!(
        (first.data["health"].as_i64(), scored.reasons.as_slice()),
        (Some(90), &["never contacted".to_string()][..])
    );
    // Months of silence and an overdue payment take it below 60.
    let mut data = obj(json!({"payment_due": "2026-11-01"}));
    data.insert("contract_end".into(), json!("2027-11-01"));
    rt.update("account", &account.id, data, "m_lin").unwrap();
    // The last contact is read-only for people and imports alike; a score run is tried with it.
    rt.import_csv(
        "account",
        format!("customer,last_contact_at\n{},2026-08-01 10:00\n", account.data["customer"].as_str().unwrap())
            .as_bytes(),
        &ImportOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    let trial = rt
        .try_rule("health", obj(json!({"last_contact_at": "2026-08-01T00:00:00Z"})), Some(&account.id), "system")
        .unwrap();
    assert_eq!(serde_json::to_value(&trial.detail).unwrap()["value"], 55);
    assert_eq!(serde_json::to_value(&trial.detail).unwrap()["crossed_below"], json!([60.0]));
    assert!(trial.host_calls.iter().any(|c| c.starts_with("days_since(2026-08-01")), "{:?}", trial.host_calls);
}

#[test]
fn s8_scripts_cannot_write_approve_or_read_forms_that_are_not_installed() {
    let mut rt = runtime();
    for (script, fault) in [
        ("set_field(\"owner\", \"m_x\"); 1", "set_field"),
        ("approve(\"QT-1\"); 1", "approve"),
        ("open_count(\"m_li\", \"payroll\", [], \"ever\")", "no form `payroll`"),
        ("lookup(\"deal\", \"secret\", 1)", "cannot be searched by `secret`"),
        ("members(#{salary: 1}).len()", "not `salary`"),
    ] {
        let app = PROBE.replace(
            &PROBE[PROBE.find("    script: |").unwrap()..],
            &format!("    script: '{}'\n", script.replace('\'', "''")),
        );
        let mut rt2 = runtime();
        rt2.install(&AppFiles { app_yaml: app, ..AppFiles::default() }, "system", false).unwrap();
        rt2.import_members(b"id,name,roles\nm_li,Li,sales_rep\n", "system").unwrap();
        let deal = rt2.submit("deal", obj(json!({"code": "D-1"})), "m_li").unwrap();
        let err = rt2.score("deal", &deal.id, "probe", "system").unwrap_err().to_string();
        assert!(err.contains(fault), "{script}: {err}");
        assert_eq!(rt2.get("deal", &deal.id).unwrap().version, 1, "nothing was written");
    }
    let _ = &mut rt;
}

/// Runs a one-line score script on the probe app and returns its value or its fault.
fn probe(script: &str) -> Result<f64, String> {
    let app = PROBE.replace(
        &PROBE[PROBE.find("    script: |").unwrap()..],
        &format!("    script: '{}'\n", script.replace('\'', "''")),
    );
    let mut rt = runtime();
    rt.install(&AppFiles { app_yaml: app, ..AppFiles::default() }, "system", false).unwrap();
    rt.import_members(
        b"id,name,roles,active\nm_li,Li,sales_rep,true\nm_x,X,sales_rep,false\nm_wu,Wu,,true\n",
        "system",
    )
    .unwrap();
    rt.submit("deal", obj(json!({"code": "D-1", "owner": "m_li"})), "m_li").unwrap();
    rt.submit("deal", obj(json!({"code": "D-2", "owner": "m_wu"})), "m_wu").unwrap();
    let deal = rt.submit("deal", obj(json!({"code": "D-3", "owner": "m_li"})), "m_li").unwrap();
    rt.score("deal", &deal.id, "probe", "system")
        .map(|(r, _)| r.data["points"].as_f64().unwrap())
        .map_err(|e| e.to_string())
}

#[test]
fn host_functions_read_instants_in_the_apps_time_zone_and_refuse_extreme_arguments() {
    // 17:00 UTC on the 25th is 01:00 on the 26th in Shanghai: the same local day as today.
    assert_eq!(probe("days_between(\"2026-11-25T17:00:00Z\", today())"), Ok(0.0));
    assert_eq!(probe("days_between(\"2026-11-25\", today())"), Ok(1.0));
    // Extreme day counts are an error, never a crash.
    let err = probe("add_business_days(\"2026-11-26\", -9223372036854775807 - 1); 1").unwrap_err();
    assert!(err.contains("at most 3660 days"), "{err}");
    // A member's own count, not the whole directory's; `active` also accepts the text form.
    assert_eq!(probe("open_count(\"m_li\", \"deal\", [], \"ever\")"), Ok(2.0));
    assert_eq!(probe("members(#{active: \"false\"}).len()"), Ok(1.0));
    let err = probe("members(#{active: \"maybe\"}).len()").unwrap_err();
    assert!(err.contains("true or false"), "{err}");
}

/// A lead form whose assignment rule picks by script.
fn picking(script: &str) -> Runtime {
    let app = format!(
        "app: {{id: pick, title: Pick}}\nroles:\n  - {{id: rep}}\nforms:\n  - id: lead\n    fields:\n      - {{id: region, type: text}}\n      - {{id: owner, type: member}}\nassignment_rules:\n  - id: by_script\n    form: lead\n    candidates: {{role: rep, match: {{region: region}}}}\n    pick: script\n    script: '{}'\nautomations:\n  - id: assign\n    when: {{created: lead}}\n    do:\n      - assign: by_script\n",
        script.replace('\'', "''")
    );
    let mut rt = runtime();
    rt.install(&AppFiles { app_yaml: app, ..AppFiles::default() }, "system", false).unwrap();
    rt.import_members(b"id,name,roles,region\na,Ann,rep,east\nb,Bo,rep,east\nc,Cy,rep,west\n", "system").unwrap();
    rt
}

#[test]
fn a_script_picker_chooses_among_candidates_and_a_failing_one_loses_nothing() {
    let mut rt = picking("candidates[candidates.len() - 1].id");
    let r = rt.submit("lead", obj(json!({"region": "east"})), "system").unwrap();
    assert_eq!(r.owner.as_deref(), Some("b"), "the script saw only east's reps, in id order");
    assert!(rt.history("lead", &r.id).unwrap()[0].notes[0].contains("chosen by the rule's script"));
    for (script, why) in [("loop {}", "ran past its|too many operations"), ("\"c\"", "not a candidate")] {
        let mut rt = picking(script);
        let r = rt.submit("lead", obj(json!({"region": "east"})), "system").unwrap();
        assert_eq!(r.owner, None, "{script}: the record is kept, unassigned");
        let note = &rt.history("lead", &r.id).unwrap()[0].notes[0];
        assert!(note.starts_with("assignment failed") && why.split('|').any(|w| note.contains(w)), "{script}: {note}");
    }
    // `script test` tries the same script and writes nothing.
    let trial = rt.try_rule("by_script", obj(json!({"region": "east"})), None, "system").unwrap();
    assert_eq!(
        (serde_json::to_value(&trial.detail).unwrap()["member"].as_str(), trial.result.as_str()),
        (Some("b"), "to Bo: chosen by the rule's script")
    );
    assert_eq!(rt.list("lead", &ListQuery::default()).unwrap().len(), 1);
}

#[test]
fn grading_a_stored_quote_writes_its_level_and_summary() {
    let mut rt = runtime();
    crate::support::quote_catalog(&mut rt, false);
    let quote = obj(
        json!({"customer": "C-0001", "contact_phone": "13800138001", "owner": "m_li", "payment_terms": "prepay",
        "prepay_percent": 70, "valid_until": "2026-12-31", "lines": [{"sku": "CL-CRM-STD", "qty": 1, "unit_price": 12000}]}),
    );
    let q = rt.submit("quote", quote, "m_li").unwrap();
    let (graded, result) = rt.grade("quote", &q.id, "quote_risk", "m_li").unwrap();
    assert_eq!((graded.data["risk"].as_str(), result.row), (Some("high"), Some(2)));
    assert_eq!(graded.data["risk_summary"], "高风险: 预付比例超过 50%");
    assert_eq!(graded.version, 2);
    assert!(rt.verify_audit().unwrap().problem.is_none());
}

#[test]
fn a_failing_score_script_points_at_its_file_line_and_column() {
    let mut rt = runtime();
    let mut files = AppFiles {
        app_yaml: PROBE.replace(&PROBE[PROBE.find("    script: |").unwrap()..], "    script: scripts/broken.rhai\n"),
        ..AppFiles::default()
    };
    files.scripts.insert("scripts/broken.rhai".into(), "let x = 1;\nlet y = x.no_such_thing();\n42".into());
    rt.install(&files, "system", false).unwrap();
    let deal = rt.submit("deal", obj(json!({"code": "D-1"})), "system").unwrap();
    let err = rt.score("deal", &deal.id, "probe", "system").unwrap_err().to_string();
    assert!(err.contains("scripts/broken.rhai:2:"), "{err}");
}

#[test]
fn score_from_the_cli_stores_the_value_and_its_reasons() {
    let cli = crate::support::Cli::new("scorecli", "2026-11-26T09:00:00+08:00");
    let run = |args: &[&str]| cli.ok(args);
    run(&["install", "customer-success"]);
    run(&["members", "import", "app-templates/customer-success/data/members.csv"]);
    run(&["import", "account", "app-templates/customer-success/data/accounts.csv"]);
    let out: serde_json::Value =
        serde_json::from_str(&run(&["--format", "json", "score", "account", "ACC-00001", "health"])).unwrap();
    assert_eq!(
        (out["record"]["data"]["health"].as_i64(), out["score"]["reasons"][0].as_str()),
        (Some(90), Some("never contacted"))
    );
    assert!(run(&["history", "account", "ACC-00001"]).contains("health: 80 → 90"));
}

#[test]
fn computed_fields_see_the_apps_time_zone_and_calendar() {
    // 01:00 on the 26th in Shanghai is still the 25th in UTC.
    let clock = Arc::new(ManualClock::new("2026-11-26T01:00:00+08:00".parse().unwrap()));
    let mut rt = Runtime::open(crate::support::fresh_store(), clock).unwrap();
    let app = PROBE.replace(
        "      - {id: points, type: integer}",
        "      - {id: points, type: integer}\n      - {id: due, type: computed, expression: 'add_business_days(today(), 2)'}",
    );
    rt.install(&AppFiles { app_yaml: app, ..AppFiles::default() }, "system", false).unwrap();
    rt.import_members(b"id,name,roles\nm_li,Li,sales_rep\n", "system").unwrap();
    let deal = rt.submit("deal", obj(json!({"code": "D-1"})), "m_li").unwrap();
    // Thursday the 26th, then Friday, then the make-up Saturday.
    assert_eq!(deal.data["due"], "2026-11-28");
}

#[test]
fn s8_lookups_stay_in_the_scripts_app_and_never_show_sensitive_fields() {
    let mut rt = runtime();
    let hr = "app: {id: hr, title: HR}\nforms:\n  - id: salary\n    key: [who]\n    fields:\n      - {id: who, type: text}\n";
    rt.install(&AppFiles { app_yaml: hr.into(), ..AppFiles::default() }, "system", false).unwrap();
    rt.submit("salary", obj(json!({"who": "m_li"})), "system").unwrap();
    let app = PROBE
        .replace(
            "      - {id: points, type: integer}",
            "      - {id: points, type: integer}\n      - {id: phone, type: text, sensitive: true}\n      - {id: contacts, type: table, columns: [{id: name, type: text}, {id: mobile, type: text, sensitive: true}]}",
        )
        .replace(
            &PROBE[PROBE.find("    script: |").unwrap()..],
            "    script: 'lookup(\"salary\", \"who\", \"m_li\"); 1'\n",
        );
    rt.install(&AppFiles { app_yaml: app.clone(), ..AppFiles::default() }, "system", false).unwrap();
    rt.import_members(b"id,name,roles\nm_li,Li,sales_rep\n", "system").unwrap();
    let deal = rt
        .submit(
            "deal",
            obj(json!({"code": "D-1", "phone": "13800138000", "contacts": [{"name": "王", "mobile": "13900139000"}]})),
            "m_li",
        )
        .unwrap();
    let err = rt.score("deal", &deal.id, "probe", "system").unwrap_err().to_string();
    assert!(err.contains("no form `salary` in this app"), "{err}");
    let peek = app.replace(
        "lookup(\"salary\", \"who\", \"m_li\"); 1",
        "if lookup(\"deal\", \"code\", \"D-1\").contains(\"phone\") { 1 } else { 2 }",
    );
    rt.install(&AppFiles { app_yaml: peek, ..AppFiles::default() }, "system", false).unwrap();
    let (scored, _) = rt.score("deal", &deal.id, "probe", "system").unwrap();
    assert_eq!(scored.data["points"], 2, "the phone number was left out of the lookup");
    // Nor do sensitive table columns reach it, and a sensitive field is no search key.
    for (script, points) in [
        ("let c = lookup(\"deal\", \"code\", \"D-1\").contacts[0]; if c.contains(\"mobile\") { 1 } else { 3 }", Ok(3)),
        ("lookup(\"deal\", \"phone\", \"13800138000\"); 1", Err("cannot be searched by `phone`")),
    ] {
        let probe = app.replace("lookup(\"salary\", \"who\", \"m_li\"); 1", &script.replace('\'', "''"));
        rt.install(&AppFiles { app_yaml: probe, ..AppFiles::default() }, "system", false).unwrap();
        match (rt.score("deal", &deal.id, "probe", "system"), points) {
            (Ok((r, _)), Ok(p)) => assert_eq!(r.data["points"], p, "{script}"),
            (Err(e), Err(why)) => assert!(e.to_string().contains(why), "{script}: {e}"),
            (other, want) => panic!("{script}: {other:?}, wanted {want:?}"),
        }
    }
}

/// A price history: several rows per customer and product, a sensitive note.
const PRICES: &str = r#"app: {id: prices, title: Prices, time_zone: Asia/Shanghai}
forms:
  - id: paid
    key: [customer, sku, date]
    fields:
      - {id: customer, type: text}
      - {id: sku, type: text}
      - {id: price, type: money}
      - {id: date, type: date}
      - {id: note, type: text, sensitive: true}
      - {id: got, type: decimal}
scores:
  - id: probe
    form: paid
    field: got
    script: 'SCRIPT'
"#;

#[test]
fn lookup_latest_finds_the_newest_match_on_several_fields_and_keeps_sensitive_fields_out() {
    let cases = [
        // The newest of C-1's two CRM rows, not C-2's newer one nor C-1's other product.
        (r#"lookup_latest("paid", #{customer: "C-1", sku: "CRM"}, "date").price"#, Ok(11.0)),
        (
            r#"if lookup_latest("paid", #{customer: "C-1", sku: "CRM"}, "date").contains("note") { 1 } else { 2 }"#,
            Ok(2.0),
        ),
        (r#"if lookup_latest("paid", #{customer: "C-9", sku: "CRM"}, "date") == () { 3 } else { 4 }"#, Ok(3.0)),
        (r#"lookup_latest("paid", #{note: "vip"}, "date"); 1"#, Err("cannot be searched by `note`")),
        (r#"lookup_latest("paid", #{customer: "C-1"}, "colour"); 1"#, Err("cannot be searched by `colour`")),
        (r#"lookup_latest("paid", #{}, "date"); 1"#, Err("name 1 to 8 fields")),
        (r#"lookup_latest("payroll", #{customer: "C-1"}, "date"); 1"#, Err("no form `payroll`")),
    ];
    for (script, want) in cases {
        let mut rt = runtime();
        let app = PRICES.replace("SCRIPT", &script.replace('\'', "''"));
        rt.install(&AppFiles { app_yaml: app, ..AppFiles::default() }, "system", false).unwrap();
        // Prices in tens of thousands: a score is 0-100.
        let rows = "customer,sku,price,date,note\nC-1,CRM,10,2025-03-01,vip\nC-1,CRM,11,2025-11-20,vip\n\
                    C-1,IMPL,23,2026-01-05,\nC-2,CRM,9,2026-06-01,\n";
        rt.import_csv("paid", rows.as_bytes(), &ImportOptions::default(), &mut |_| {}).unwrap();
        let first = rt.list("paid", &ListQuery::default()).unwrap().remove(0);
        match (rt.score("paid", &first.id, "probe", "system"), want) {
            (Ok((r, scored)), Ok(v)) => {
                assert_eq!(r.data["got"].as_f64(), Some(v), "{script}");
                assert!(scored.calls.iter().any(|c| c.starts_with("lookup_latest(paid, #{")), "{:?}", scored.calls);
            }
            (Err(e), Err(why)) => assert!(e.to_string().contains(why), "{script}: {e}"),
            (other, want) => panic!("{script}: {other:?}, wanted {want:?}"),
        }
    }
}
