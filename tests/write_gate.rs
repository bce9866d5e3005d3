//! The write gate: what a record may never do holds on every path that writes one. Each test
//! is named after what broke before the gate, and walks every path the finding applies to.

use std::sync::Arc;

use closeloop::clock::ManualClock;
use closeloop::store::ListQuery;
use closeloop::ImportOptions;
use closeloop::{template, AppFiles, EngineError, Runtime};
use serde_json::{json, Map, Value};

use crate::support::Cli;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

const MONDAY: &str = "2026-11-23T10:00:00+08:00";

/// The quote template with `extra` automations appended and `edit` rules replaced by `edit`
/// (when given), its catalog and team, on a manual clock.
fn quotes_with(extra: &str, edit: Option<&str>) -> (Runtime, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(MONDAY.parse().unwrap()));
    let mut rt = Runtime::open(crate::support::fresh_store(), clock.clone()).unwrap();
    let t = template("quote-approval").unwrap();
    let mut files: AppFiles = t.app_files();
    if let Some(edit) = edit {
        let rule = "      - {roles: [sales_rep], owner_only: true}\n";
        assert!(files.app_yaml.contains(rule));
        files.app_yaml = files.app_yaml.replacen(rule, edit, 1);
    }
    files.app_yaml = files.app_yaml.replacen("automations:\n", &format!("automations:\n{extra}"), 1);
    rt.install(&files, "system", false).unwrap();
    let file = |name: &str| t.files.iter().find(|(p, _)| *p == name).unwrap().1.as_bytes();
    rt.import_members(file("data/members.csv"), "system").unwrap();
    for (form, name) in [("product", "data/products.csv"), ("customer", "data/customers.csv")] {
        rt.import_csv(form, file(name), &ImportOptions::default(), &mut |_| {}).unwrap();
    }
    (rt, clock)
}

fn new_quote(rt: &mut Runtime, terms: Value) -> String {
    let customer = rt.list("customer", &ListQuery::default()).unwrap().remove(0).id;
    let mut data = obj(json!({
        "customer": customer, "contact_phone": "13800138001", "owner": "m_li", "valid_until": "2026-12-31",
        "payment_terms": "cod", "lines": [{"sku": "CL-CRM-STD", "qty": 2, "unit_price": 11000.0}]
    }));
    data.extend(obj(terms));
    rt.submit("quote", data, "m_li").unwrap().id
}

/// A cash-on-delivery quote through its chain and signed by the customer.
fn signed_quote(rt: &mut Runtime) -> String {
    let id = new_quote(rt, json!({}));
    rt.act("quote", &id, "submit", "m_li", Map::new()).unwrap();
    rt.approve("quote", &id, "m_zhao", None).unwrap();
    rt.approve("quote", &id, "m_qian", None).unwrap();
    let link = rt.sign_link("quote", &id, "http://localhost", "m_li").unwrap();
    rt.sign(&link.token, "王总").unwrap();
    id
}

/// The rep submits a quote again after an edit reset its chain.
fn resubmit(rt: &mut Runtime, id: &str) {
    if rt.get("quote", id).unwrap().state.as_deref() != Some("draft") {
        rt.act("quote", id, "revise", "m_li", Map::new()).unwrap();
    }
    rt.act("quote", id, "submit", "m_li", Map::new()).unwrap();
}

fn refused(result: Result<impl std::fmt::Debug, EngineError>) -> String {
    match result {
        Err(EngineError::Refused(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_signed_quote_changes_through_no_path() {
    // A timer on the signature's time: its `set` and `script` steps try to change the quote.
    let poke = "  - id: poke_signed
    when: {timer: {form: quote, after: 1h, from: signed_at}}
    do:
      - set: {risk: low}
      - script: '#{ risk_summary: \"changed by a script\" }'
";
    let (mut rt, clock) = quotes_with(poke, None);
    let id = signed_quote(&mut rt);
    let signed = rt.get("quote", &id).unwrap();
    assert_eq!(signed.state.as_deref(), Some("signed"));
    let unchanged = |rt: &Runtime| {
        let now = rt.get("quote", &id).unwrap();
        assert_eq!((now.version, &now.data), (signed.version, &signed.data), "the signed quote changed");
    };

    // update, act, grade: refused, naming the signature.
    let why = refused(rt.update("quote", &id, obj(json!({"valid_until": "2027-06-30"})), "m_li"));
    assert!(why.contains("can no longer change"), "{why}");
    refused(rt.act("quote", &id, "revise", "m_li", Map::new()));
    refused(rt.act("quote", &id, "expire", "m_zhao", Map::new()));
    refused(rt.grade("quote", &id, "quote_risk", "m_li").map(|(r, _)| r));
    unchanged(&rt);

    // CSV import: export, change the validity, import: the row is named, nothing written.
    let mut out = Vec::new();
    rt.export_csv("quote", &mut out).unwrap();
    let csv = String::from_utf8(out).unwrap().replace("2026-12-31", "2027-06-30");
    let err = rt.import_csv("quote", csv.as_bytes(), &ImportOptions::default(), &mut |_| {}).unwrap_err();
    let EngineError::Import(report) = err else { panic!("{err:?}") };
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!((report.problems[0].row, report.problems[0].code.as_str()), (2, "REFUSED"));
    assert!(report.problems[0].message.contains("can no longer change"), "{:?}", report.problems);
    // With --skip-invalid the row is still refused, and the rest of the file is not stopped.
    let opts = ImportOptions { skip_invalid: true, ..ImportOptions::default() };
    let skipped = rt.import_csv("quote", csv.as_bytes(), &opts, &mut |_| {}).unwrap();
    assert_eq!((skipped.rejected, skipped.updated), (1, 0));
    unchanged(&rt);

    // Automation steps: the timer fires, both steps fail with the reason, nothing changes.
    clock.advance(jiff::SignedDuration::from_hours(2));
    let tick = rt.tick().unwrap();
    let run = tick.runs.iter().find(|r| r.automation == "poke_signed").expect("the timer ran");
    assert_eq!(run.steps.len(), 1, "the first refused step stops the run: {run:?}");
    assert!(run.steps[0].error.as_deref().unwrap_or_default().contains("can no longer change"), "{run:?}");
    // A refusal is not retried: no retry can make a signed record writable.
    assert!(run.why.as_deref().unwrap_or_default().contains("not tried again"), "{run:?}");
    clock.advance(jiff::SignedDuration::from_hours(4));
    let later = rt.tick().unwrap();
    assert!(later.runs.iter().all(|r| r.automation != "poke_signed"), "retried: {:?}", later.runs);
    unchanged(&rt);
    assert!(rt.verify_audit().unwrap().problem.is_none());
}

#[test]
fn a_signed_quote_is_refused_by_the_cli_import_with_its_row_named() {
    let cli = Cli::new("gate-signed-import", MONDAY);
    cli.ok(&["install", "quote-approval"]);
    cli.ok(&["members", "import", "app-templates/quote-approval/data/members.csv"]);
    for (form, file) in [("product", "products"), ("customer", "customers")] {
        cli.ok(&["import", form, &format!("app-templates/quote-approval/data/{file}.csv")]);
    }
    let customer = cli.json(&["list", "customer"])[0]["id"].as_str().unwrap().to_string();
    let data = json!({"customer": customer, "contact_phone": "13800138001", "owner": "m_li", "valid_until": "2026-12-31",
                      "payment_terms": "cod", "lines": [{"sku": "CL-CRM-STD", "qty": 2, "unit_price": 11000.0}]});
    let id =
        cli.json(&["submit", "quote", "--as", "m_li", "--data", &data.to_string()])["id"].as_str().unwrap().to_string();
    cli.ok(&["act", "quote", &id, "submit", "--as", "m_li"]);
    cli.ok(&["approve", "quote", &id, "--as", "m_zhao"]);
    cli.ok(&["approve", "quote", &id, "--as", "m_qian"]);
    let qr = cli.path("qr");
    let link = cli.json(&["sign-link", "quote", &id, "--as", "m_li", "--qr-dir", qr.to_str().unwrap()]);
    let token = link["link"]["token"].as_str().unwrap().to_string();
    cli.ok(&["sign", &token, "--name", "王总"]);
    let version = cli.json(&["get", "quote", &id])["version"].as_i64().unwrap();
    let csv = cli.path("quotes.csv");
    cli.ok(&["export", "quote", "--out", csv.to_str().unwrap()]);
    let edited = std::fs::read_to_string(&csv).unwrap().replace("2026-12-31", "2027-06-30");
    std::fs::write(&csv, edited).unwrap();
    let (code, said) = cli.fails(&["import", "quote", csv.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(said.contains("row 2") && said.contains("can no longer change"), "{said}");
    assert_eq!(cli.json(&["get", "quote", &id])["version"].as_i64().unwrap(), version);
    cli.ok(&["audit", "verify"]);
}

#[test]
fn a_final_record_is_not_rescored() {
    let clock = Arc::new(ManualClock::new(MONDAY.parse().unwrap()));
    let mut rt = Runtime::open(crate::support::fresh_store(), clock).unwrap();
    let t = template("customer-success").unwrap();
    rt.install(&t.app_files(), "system", false).unwrap();
    let members = t.files.iter().find(|(p, _)| *p == "data/members.csv").unwrap().1;
    rt.import_members(members.as_bytes(), "system").unwrap();
    let team = rt.members().unwrap();
    let csm = team.iter().find(|m| m.roles.contains(&"csm".to_string())).unwrap().id.clone();
    let director = team.iter().find(|m| m.roles.contains(&"director".to_string())).unwrap().id.clone();
    let account = obj(json!({"customer": "上海明远科技有限公司", "region": "east", "owner": csm}));
    let id = rt.submit("account", account, &csm).unwrap().id;
    rt.act("account", &id, "churn", &director, Map::new()).unwrap();
    let before = rt.get("account", &id).unwrap();
    let why = refused(rt.score("account", &id, "health", &director).map(|(r, _)| r));
    assert!(why.contains("final state"), "{why}");
    refused(rt.update("account", &id, obj(json!({"pain_points": "—"})), &director));
    assert_eq!(rt.get("account", &id).unwrap().version, before.version);
}

#[test]
fn editing_lines_keeps_the_floor_price_finance_checks() {
    let (mut rt, _) = quotes_with("", None);
    let id = new_quote(&mut rt, json!({}));
    // The rep sends the lines again with a price at half the floor, and no read-only columns.
    let lines = json!({"lines": [{"sku": "CL-CRM-STD", "qty": 2, "unit_price": 5000}]});
    let q = rt.update("quote", &id, obj(lines), "m_li").unwrap();
    let line = &q.data["lines"][0];
    assert_eq!(line["floor_price"], 10000.0, "{line}");
    assert_eq!((line["list_price"].as_f64(), line["product_name"].as_str()), (Some(12000.0), Some("CRM 标准版（年）")));
    let below = q.data["below_floor"].as_array().cloned().unwrap_or_default();
    assert_eq!(below.len(), 1, "finance sees the line below the floor: {:?}", q.data);

    // A new line is looked up; a line moved to another place keeps its values.
    let two = json!({"lines": [{"sku": "CL-TRAIN", "qty": 1}, {"sku": "CL-CRM-STD", "qty": 2, "unit_price": 5000}]});
    let q = rt.update("quote", &id, obj(two), "m_li").unwrap();
    assert_eq!(q.data["lines"][0]["floor_price"], 5000.0);
    assert_eq!(q.data["lines"][1]["floor_price"], 10000.0);

    // A floor price the caller sends is never taken.
    let forged = json!({"lines": [{"sku": "CL-CRM-STD", "qty": 2, "unit_price": 5000, "floor_price": 1}]});
    let err = rt.update("quote", &id, obj(forged), "m_li").unwrap_err();
    let EngineError::Invalid(problems) = err else { panic!("{err:?}") };
    assert_eq!((problems[0].field.as_str(), problems[0].code), ("lines[0].floor_price", "READONLY"));
    // The same value it already has is no change, and passes (an export imported back).
    let same = json!({"lines": [{"sku": "CL-CRM-STD", "qty": 2, "unit_price": 5000, "floor_price": 10000.0}]});
    rt.update("quote", &id, obj(same), "m_li").unwrap();

    // The CSV path: the lines cell edited in a spreadsheet, read-only columns left out.
    let mut out = Vec::new();
    rt.export_csv("quote", &mut out).unwrap();
    let csv = String::from_utf8(out).unwrap();
    let header = csv.lines().next().unwrap();
    let column = header.split(',').position(|h| h == "lines").unwrap();
    let row = csv.lines().nth(1).unwrap();
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(row.as_bytes());
    let mut cells: Vec<String> = reader.records().next().unwrap().unwrap().iter().map(str::to_string).collect();
    cells[column] = json!([{"sku": "CL-CRM-STD", "qty": 3, "unit_price": 4000}]).to_string();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header.split(',')).unwrap();
    w.write_record(&cells).unwrap();
    let file = w.into_inner().unwrap();
    let report = rt.import_csv("quote", &file, &ImportOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(report.updated, 1);
    let q = rt.get("quote", &id).unwrap();
    assert_eq!(
        (q.data["lines"][0]["qty"].as_i64(), q.data["lines"][0]["floor_price"].as_f64()),
        (Some(3), Some(10000.0))
    );
}

#[test]
fn an_approver_may_not_edit_a_quote_nor_approve_their_own_edit() {
    // The template: only the owning rep edits. Finance's edit is refused, naming why.
    let (mut rt, _) = quotes_with("", None);
    let id = new_quote(&mut rt, json!({}));
    rt.act("quote", &id, "submit", "m_li", Map::new()).unwrap();
    rt.approve("quote", &id, "m_zhao", None).unwrap();
    let cut = obj(json!({"lines": [{"sku": "CL-CRM-STD", "qty": 2, "unit_price": 9000}]}));
    let why = refused(rt.update("quote", &id, cut.clone(), "m_jiang"));
    assert!(why.contains("m_jiang") && why.contains("sales_rep"), "{why}");

    // An app that lets finance edit lines: the edit resets the chain, and the editor is
    // barred from deciding it, on every path that decides.
    let finance_edits = "      - {roles: [sales_rep], owner_only: true}\n      - {roles: [finance], fields: [lines]}\n";
    let (mut rt, _) = quotes_with("", Some(finance_edits));
    let id = new_quote(&mut rt, json!({}));
    rt.act("quote", &id, "submit", "m_li", Map::new()).unwrap();
    rt.approve("quote", &id, "m_zhao", None).unwrap();
    // Finance may change the lines, not the terms.
    let terms = refused(rt.update("quote", &id, obj(json!({"valid_until": "2027-01-31"})), "m_jiang"));
    assert!(terms.contains("valid_until"), "{terms}");
    rt.update("quote", &id, cut, "m_jiang").unwrap();
    resubmit(&mut rt, &id);
    rt.approve("quote", &id, "m_zhao", None).unwrap();
    let own = rt.approve("quote", &id, "m_jiang", None).unwrap_err().to_string();
    assert!(own.contains("edited it"), "{own}");
    let own = rt.reject("quote", &id, "m_jiang", "价格不对").unwrap_err().to_string();
    assert!(own.contains("edited it"), "{own}");
    // The other finance approver decides.
    rt.approve("quote", &id, "m_qian", None).unwrap();
    assert!(rt.verify_audit().unwrap().problem.is_none());
}

#[test]
fn an_approver_who_edited_is_refused_by_the_cli_too() {
    let cli = Cli::new("gate-own-edit", MONDAY);
    let dir = cli.path("app");
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    let t = template("quote-approval").unwrap();
    for (path, text) in t.files.iter() {
        let text = text.replacen(
            "      - {roles: [sales_rep], owner_only: true}\n",
            "      - {roles: [sales_rep], owner_only: true}\n      - {roles: [finance], fields: [lines]}\n",
            1,
        );
        let target = dir.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, text).unwrap();
    }
    cli.ok(&["install", dir.to_str().unwrap()]);
    cli.ok(&["members", "import", dir.join("data/members.csv").to_str().unwrap()]);
    for form in ["product", "customer"] {
        cli.ok(&["import", form, dir.join(format!("data/{form}s.csv")).to_str().unwrap()]);
    }
    let customer = cli.json(&["list", "customer"])[0]["id"].as_str().unwrap().to_string();
    let data = json!({"customer": customer, "contact_phone": "13800138001", "owner": "m_li", "valid_until": "2026-12-31",
                      "payment_terms": "cod", "lines": [{"sku": "CL-CRM-STD", "qty": 2, "unit_price": 11000.0}]});
    let id =
        cli.json(&["submit", "quote", "--as", "m_li", "--data", &data.to_string()])["id"].as_str().unwrap().to_string();
    cli.ok(&["act", "quote", &id, "submit", "--as", "m_li"]);
    let cut = json!({"lines": [{"sku": "CL-CRM-STD", "qty": 2, "unit_price": 9000}]}).to_string();
    cli.ok(&["update", "quote", &id, "--as", "m_jiang", "--data", &cut]);
    if cli.json(&["get", "quote", &id])["state"] != "draft" {
        cli.ok(&["act", "quote", &id, "revise", "--as", "m_li"]);
    }
    cli.ok(&["act", "quote", &id, "submit", "--as", "m_li"]);
    cli.ok(&["approve", "quote", &id, "--as", "m_zhao"]);
    let (code, said) = cli.fails(&["approve", "quote", &id, "--as", "m_jiang"]);
    assert_eq!(code, Some(1));
    assert!(said.contains("edited it"), "{said}");
}

#[test]
fn an_edited_reapproved_signed_quote_shows_one_version_everywhere() {
    let (mut rt, _) = quotes_with("", None);
    let id = new_quote(&mut rt, json!({}));
    rt.act("quote", &id, "submit", "m_li", Map::new()).unwrap();
    rt.approve("quote", &id, "m_zhao", None).unwrap();
    rt.approve("quote", &id, "m_qian", None).unwrap();
    // Edited after approval: a new version, the chain starts again.
    rt.update("quote", &id, obj(json!({"valid_until": "2027-01-31"})), "m_li").unwrap();
    resubmit(&mut rt, &id);
    rt.approve("quote", &id, "m_zhao", None).unwrap();
    rt.approve("quote", &id, "m_qian", None).unwrap();
    let link = rt.sign_link("quote", &id, "http://localhost", "m_li").unwrap();
    let signature = rt.sign(&link.token, "王总").unwrap();
    let v = link.version;
    assert_eq!(signature.version, v);
    let why = refused(rt.update("quote", &id, obj(json!({"valid_until": "2027-06-30"})), "m_li"));
    assert!(why.contains(&format!("(version {v})")), "{why}");
    let font = crate::approvals::pdf_tools().unwrap();
    let text = crate::approvals::pdf_text(&rt.record_pdf("quote", &id, font, 0).unwrap(), "one-version");
    let shown: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_once("Version").map(|(_, rest)| rest))
        .filter(|rest| !rest.contains("hash"))
        .map(|rest| rest.chars().filter(char::is_ascii_digit).collect())
        .collect();
    assert!(shown.len() >= 2, "the PDF shows the version twice (fields and signature):\n{text}");
    assert!(shown.iter().all(|n| *n == v.to_string()), "every version the PDF shows is {v}: {shown:?}\n{text}");
}

/// A runtime over a fresh database file with `yaml` installed.
fn app(yaml: &str) -> (crate::support::TempDir, Runtime) {
    let dir = crate::support::TempDir::new(&format!("gate-{}", yaml.len()));
    std::fs::create_dir_all(&dir.0).unwrap();
    let clock = Arc::new(ManualClock::new(MONDAY.parse().unwrap()));
    let mut rt = Runtime::open(crate::support::store_in(&dir), clock).unwrap();
    rt.install(&AppFiles { app_yaml: yaml.to_string(), ..AppFiles::default() }, "system", false).unwrap();
    (dir, rt)
}

fn refused_as(result: Result<impl std::fmt::Debug, EngineError>, field: &str, code: &str) {
    match result {
        Err(EngineError::Invalid(problems)) => {
            assert!(problems.iter().any(|p| p.field == field && p.code == code), "{problems:?}")
        }
        other => panic!("expected {code} on {field}: {other:?}"),
    }
}

#[test]
fn unique_fields_whose_index_names_used_to_collide_both_stay_unique() {
    // Index names were `ix_<table>_<field>`: field `b_c` of form `a` and field `c` of form
    // `a_b` shared `ix_rec_a_b_c`, and a field `state` or `key` took a built-in index's name,
    // so one unique index was never made or was dropped by the key's. (`state` itself is a
    // reserved field name; `created` and `key` are not.)
    let yaml = "app: {id: x, title: x}\nforms:\n  - id: a\n    fields: [{id: b_c, type: text, unique: true}]\n  - id: a_b\n    fields: [{id: c, type: text, unique: true}]\n  - id: s\n    key: [code]\n    states: [{id: open, initial: true}]\n    fields:\n      - {id: code, type: text}\n      - {id: created, type: text, unique: true}\n      - {id: key, type: text, unique: true}\n";
    let cli = crate::support::Cli::new("gate-index", MONDAY);
    let clock = Arc::new(ManualClock::new(MONDAY.parse().unwrap()));
    let mut rt = Runtime::open(cli.store(), clock).unwrap();
    rt.install(&AppFiles { app_yaml: yaml.to_string(), ..AppFiles::default() }, "system", false).unwrap();
    for (form, field) in [("a", "b_c"), ("a_b", "c"), ("s", "created"), ("s", "key")] {
        let data = |n: &str| match form {
            "s" => obj(json!({field: "same", "code": format!("{n}{field}")})),
            _ => obj(json!({field: "same"})),
        };
        rt.submit(form, data("1"), "system").unwrap();
        refused_as(rt.submit(form, data("2"), "system"), field, "NOT_UNIQUE");
    }
    // The gate checks uniqueness by query; the database's unique indexes are the backstop a
    // concurrent writer meets. Each table has its own, and the form's state index stays.
    let count = |table: &str, unique: bool| -> i64 {
        let unique = if unique { "1" } else { "0" };
        match cli.on_postgres() {
            false => cli.query(
                "SELECT count(*) FROM pragma_index_list(?1) WHERE origin = 'c' AND \"unique\" = CAST(?2 AS INTEGER)",
                &[table, unique],
            ),
            true => cli.query(
                "SELECT count(*) FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid
                 WHERE t.relname = ?1 AND NOT x.indisprimary AND x.indisunique = (?2 = '1')",
                &[table, unique],
            ),
        }
    };
    assert_eq!((count("rec_a", true), count("rec_a_b", true), count("rec_s", true)), (1, 1, 3));
    // state, owner and created_at: the built-in indexes of every table (and the key field's).
    assert_eq!((count("rec_a", false), count("rec_s", false)), (3, 4));
    // A database from before: its old names are dropped when the next revision installs.
    cli.execute("CREATE INDEX ix_rec_a_b_c ON rec_a(f_b_c); CREATE INDEX ix_rec_s_state ON rec_s(state);");
    let files = AppFiles { app_yaml: yaml.replacen("title: x", "title: y", 1), ..AppFiles::default() };
    rt.install(&files, "system", false).unwrap();
    assert_eq!((count("rec_a", false), count("rec_a", true), count("rec_s", false)), (3, 1, 4));
    let open = rt.list("s", &ListQuery { state: Some("open".into()), ..ListQuery::default() }).unwrap();
    assert_eq!(open.len(), 2);
}

#[test]
fn texts_without_a_max_length_are_capped_on_every_write_path() {
    // A 20 MB `long_text` was stored. Without `max_length`, `text` takes 1,000 characters and
    // `long_text` 100,000; an app may set its own `max_length`.
    let (_dir, mut rt) = app(
        "app: {id: x, title: x}\nforms:\n  - id: n\n    fields:\n      - {id: title, type: text}\n      - {id: body, type: long_text}\n      - {id: wide, type: text, max_length: 5000}\nevents:\n  - id: note.added\n    fields: [{id: title, type: text}]\n    target: {form: n, match: {title: title}}\n",
    );
    refused_as(rt.submit("n", obj(json!({"title": "t".repeat(1_001)})), "system"), "title", "TOO_LONG");
    refused_as(rt.submit("n", obj(json!({"body": "b".repeat(100_001)})), "system"), "body", "TOO_LONG");
    let ok = rt
        .submit(
            "n",
            obj(json!({"title": "t".repeat(1_000), "body": "b".repeat(100_000), "wide": "w".repeat(5_000)})),
            "system",
        )
        .unwrap();
    refused_as(rt.update("n", &ok.id, obj(json!({"title": "u".repeat(1_001)})), "system"), "title", "TOO_LONG");
    refused_as(rt.event("note.added", obj(json!({"title": "e".repeat(1_001)})), "system"), "title", "TOO_LONG");
}
