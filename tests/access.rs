//! Who may read what: a form's `read` rules and a field's `read_roles`, on every read path a
//! member reaches (get, list, history, boards, the approvals inbox) and on what the customer
//! receives (the quote PDF). A record a member may not read is not found for them (P1, P2).

use closeloop::store::ListQuery;
use serde_json::json;

use crate::support::Cli;

fn leads(name: &str) -> Cli {
    let cli = Cli::new(name, "2026-11-30T10:00:00+08:00");
    cli.ok(&["install", "lead-followup"]);
    cli.ok(&["members", "import", "app-templates/lead-followup/data/members.csv"]);
    cli
}

fn lead(cli: &Cli, region: &str, phone: &str) -> String {
    let data = json!({"source": "expo", "customer": format!("{region} 客户"), "phone": phone, "region": region});
    cli.json(&["submit", "lead", "--as", "m_ops", "--data", &data.to_string()])["id"].as_str().unwrap().to_string()
}

#[test]
fn a_rep_reads_only_their_own_leads_and_another_s_id_is_not_found() {
    let cli = leads("access-own-leads");
    let east = lead(&cli, "east", "13800000001");
    let south = lead(&cli, "south", "13800000002");
    let owner = cli.json(&["get", "lead", &east])["owner"].as_str().unwrap().to_string();
    // The owner reads it, phone included (they call the customer).
    let mine = cli.json(&["get", "lead", &east, "--as", &owner]);
    assert_eq!(mine["data"]["phone"], "13800000001");
    // A south rep guessing the east lead's id gets the answer an unknown id gets.
    let (code, said) = cli.fails(&["get", "lead", &east, "--as", "m_zhou"]);
    let (unknown_code, unknown) = cli.fails(&["get", "lead", "LEAD-2026-99999", "--as", "m_zhou"]);
    assert_eq!(code, unknown_code, "{said} / {unknown}");
    assert!(said.contains(&format!("lead {east} does not exist")), "{said}");
    let (_, history) = cli.fails(&["history", "lead", &east, "--as", "m_zhou"]);
    assert!(history.contains(&east), "{history}");
    // Lists hold only what each may read.
    let listed = |who: &str| -> Vec<String> {
        cli.json(&["list", "lead", "--as", who])
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(listed(&owner), [east.as_str()]);
    assert_eq!(listed("m_zhao"), [east.as_str()], "the east supervisor reads the east region");
    assert_eq!(listed("m_sun"), [south.as_str()], "the south supervisor reads the south region");
    assert_eq!(listed("m_ops").len(), 2, "ops read every lead");
    assert!(listed("m_wang").is_empty(), "an east rep reads only leads they own");
}

#[test]
fn paging_counts_only_what_the_member_may_read() {
    let cli = leads("access-paging");
    for i in 0..6 {
        lead(&cli, if i % 2 == 0 { "east" } else { "south" }, &format!("1380000001{i}"));
    }
    let page = |offset: &str| -> Vec<String> {
        cli.json(&["list", "lead", "--as", "m_sun", "--limit", "2", "--offset", offset])
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["data"]["region"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(page("0"), ["south", "south"]);
    assert_eq!(page("2"), ["south"]);
}

#[test]
fn the_floor_price_reaches_finance_and_never_the_rep_the_customer_s_pdf_or_a_filter() {
    let font = crate::approvals::pdf_tools().unwrap();
    let mut w = crate::approvals::quotes();
    let data = json!({"customer": "C-0001", "contact_phone": "13800138001", "owner": "m_li", "valid_until": "2026-12-31",
        "payment_terms": "cod", "lines": [{"sku": "CL-IMPL-DAY", "qty": 3, "unit_price": 1800.0}]});
    let id = w.rt.submit("quote", data.as_object().cloned().unwrap(), "m_li").unwrap().id;
    let rt = &mut w.rt;
    let rep = rt.get_as("quote", &id, "m_li").unwrap();
    assert!(rep.data.get("below_floor").is_none(), "{:?}", rep.data);
    assert!(rep.data["lines"][0].get("floor_price").is_none(), "{:?}", rep.data["lines"]);
    assert_eq!(rep.data["lines"][0]["unit_price"], 1800.0);
    let finance = rt.get_as("quote", &id, "m_qian").unwrap();
    assert_eq!(finance.data["lines"][0]["floor_price"], 2000.0);
    assert_eq!(finance.data["below_floor"], json!(["CL-IMPL-DAY 1,800.00 < 2,000.00"]));
    // The history a rep reads has no floor price either.
    let history = rt.history_as("quote", &id, "m_li").unwrap();
    let text = serde_json::to_string(&history).unwrap();
    assert!(!text.contains("floor_price") && !text.contains("below_floor"), "{text}");
    // Filtering by a hidden field would tell what it holds: refused.
    let query = ListQuery { filters: vec![("below_floor".into(), json!("x"))], ..ListQuery::default() };
    let refused = rt.list_as("quote", &query, "m_li").unwrap_err();
    assert!(refused.to_string().contains("below_floor"), "{refused}");
    // Another team's rep and supervisor do not find it; the author's supervisor does.
    assert!(rt.get_as("quote", &id, "m_zhou").is_err());
    assert!(rt.get_as("quote", &id, "m_sun").is_err());
    assert!(rt.get_as("quote", &id, "m_zhao").is_ok());
    // The risk grade is internal: the rep reads it, the customer's PDF never carries it.
    rt.grade("quote", &id, "quote_risk", "m_li").unwrap();
    assert_eq!(rt.get_as("quote", &id, "m_li").unwrap().data["risk"], "low");
    let pdf = crate::approvals::pdf_text(&rt.record_pdf("quote", &id, font, 0).unwrap(), "access");
    assert!(!pdf.contains("风险") && !pdf.contains("Risk") && !pdf.contains("2000.00"), "{pdf}");
}

#[test]
fn the_approvals_inbox_shows_each_approver_only_the_fields_their_roles_see() {
    let mut w = crate::approvals::quotes();
    let id = crate::approvals::quote(&mut w, json!({"payment_terms": "cod"}));
    w.rt.approve("quote", &id, "m_zhao", None).unwrap();
    let finance = w.rt.approvals(Some("m_qian")).unwrap();
    assert!(finance[0].show.iter().any(|s| s.field == "below_floor"), "finance's step shows the floor");
    let everyone = w.rt.approvals(None).unwrap();
    assert!(everyone[0].show.iter().any(|s| s.field == "below_floor"), "the operator's view is whole");
}

/// A message template is a read path: a field only finance sees is left out of a message to a
/// rep, and kept in one to finance.
#[test]
fn a_message_to_a_rep_leaves_out_what_only_finance_sees() {
    let cli = Cli::new("access-messages", "2026-11-30T10:00:00+08:00");
    let app = r#"
app: {id: deals, title: 交易, time_zone: Asia/Shanghai}
roles: [{id: sales_rep}, {id: finance}]
channels: [{id: log, kind: log}]
messages:
  - {id: won, text: "成交 {{ customer }}，毛利 {{ margin }}"}
forms:
  - id: deal
    owner_field: owner
    fields:
      - {id: customer, type: text}
      - {id: owner, type: member}
      - {id: margin, type: money, read_roles: [finance]}
automations:
  - id: tell
    when: {created: deal}
    do:
      - notify: {channel: log, message: won, to: {field: owner}}
      - notify: {channel: log, message: won, to: {role: finance}}
      - set: {margin: 99999}
"#;
    std::fs::create_dir_all(cli.path("app")).unwrap();
    std::fs::write(cli.path("app/app.yaml"), app).unwrap();
    cli.ok(&["install", &cli.path("app").display().to_string()]);
    std::fs::write(
        cli.path("team.csv"),
        "id,name,roles,region,manager,active,capacity\nrep,小王,sales_rep,,,true,\nfin,钱会计,finance,,,true,\n",
    )
    .unwrap();
    cli.ok(&["members", "import", &cli.path("team.csv").display().to_string()]);
    cli.ok(&["submit", "deal", "--as", "rep", "--data", r#"{"customer":"明远","owner":"rep","margin":123456}"#]);
    let outbox = cli.json(&["outbox"]);
    let body = |who: &str| {
        outbox.as_array().unwrap().iter().find(|m| m["to"] == who).unwrap()["body"].as_str().unwrap().to_string()
    };
    assert!(!body("rep").contains("123456"), "{}", body("rep"));
    assert!(body("fin").contains("123456"), "{}", body("fin"));
    // The activity and the export a rep reads leave the margin out too; finance's keep it.
    let id = cli.json(&["list", "deal"])[0]["id"].as_str().unwrap().to_string();
    let rep_activity = cli.ok(&["activity", "deal", &id, "--as", "rep"]);
    assert!(!rep_activity.contains("99999") && rep_activity.contains("无权查看"), "{rep_activity}");
    assert!(cli.ok(&["activity", "deal", &id, "--as", "fin"]).contains("99999"));
    let rep_export = cli.ok(&["export", "deal", "--as", "rep"]);
    assert!(!rep_export.contains("margin") && rep_export.contains("明远"), "{rep_export}");
    assert!(cli.ok(&["export", "deal", "--as", "fin"]).contains("99999"));
}

#[test]
fn an_export_as_a_rep_holds_only_the_leads_they_may_read() {
    let cli = leads("access-export");
    let east = lead(&cli, "east", "13800000001");
    let south = lead(&cli, "south", "13800000002");
    let owner = cli.json(&["get", "lead", &east])["owner"].as_str().unwrap().to_string();
    let csv = cli.ok(&["export", "lead", "--as", &owner]);
    assert!(csv.contains(&east) && !csv.contains(&south), "{csv}");
    assert_eq!(csv.lines().count(), 2, "a header and their one lead: {csv}");
}
