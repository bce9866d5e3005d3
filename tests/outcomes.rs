//! What writes lead to, each a regression test named after what broke, on the library and
//! on the binary: a record created without an owner could never be submitted (8), an edit of an
//! approved quote reset its chain but left it approved (4), a chain ending on an approver step
//! never ran `on_approved` and rejection messages lost their comment (6), and a grade written
//! as a script was never run (7).

use serde_json::{json, Map, Value};

use crate::approvals::{quotes, World};
use crate::support::Cli;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

/// A quote's fields for the first customer, one line, cash on delivery, without an owner.
fn quote_data(w: &World) -> Map<String, Value> {
    let customer = w.rt.list("customer", &Default::default()).unwrap().remove(0).id;
    obj(json!({
        "customer": customer, "contact_phone": "13800138001", "valid_until": "2026-12-31", "payment_terms": "cod",
        "lines": [{"sku": "CL-CRM-STD", "qty": 2, "unit_price": 11000.0}]
    }))
}

/// The quote template installed through the binary, with its team, products and customers;
/// returns the first customer's id.
fn quotes_cli(name: &str) -> (Cli, String) {
    let cli = Cli::new(name, "2026-11-23T10:00:00+08:00");
    cli.ok(&["install", "quote-approval"]);
    cli.ok(&["members", "import", "app-templates/quote-approval/data/members.csv"]);
    cli.ok(&["import", "product", "app-templates/quote-approval/data/products.csv"]);
    cli.ok(&["import", "customer", "app-templates/quote-approval/data/customers.csv"]);
    let customers = cli.json(&["list", "customer"]);
    let customer = customers[0]["id"].as_str().unwrap().to_string();
    (cli, customer)
}

/// `closeloop submit quote` as `actor` with these fields; the new record as JSON.
fn submit_cli(cli: &Cli, customer: &str, actor: &str, extra: Value) -> Value {
    let mut data = obj(json!({"customer": customer, "contact_phone": "13800138001", "valid_until": "2026-12-31",
        "payment_terms": "cod", "lines": [{"sku": "CL-CRM-STD", "qty": 2, "unit_price": 11000.0}]}));
    data.extend(obj(extra));
    cli.json(&["submit", "quote", "--as", actor, "--data", &Value::Object(data).to_string()])
}

// Finding 8: a record created without `owner` could never be submitted.

#[test]
fn a_record_created_without_an_owner_is_owned_by_its_creator_and_can_be_submitted() {
    let mut w = quotes();
    let created = w.rt.submit("quote", quote_data(&w), "m_li").unwrap();
    assert_eq!(created.owner.as_deref(), Some("m_li"));
    assert_eq!(created.data["owner"], "m_li", "the owner field is filled, not only the column");
    let history = w.rt.history("quote", &created.id).unwrap();
    assert!(history[0].notes.iter().any(|n| n.contains("m_li")), "the creation says why: {:?}", history[0].notes);
    let submitted = w.rt.act("quote", &created.id, "submit", "m_li", Map::new()).unwrap();
    assert_eq!(submitted.state.as_deref(), Some("in_approval"));
    // Data that names its owner keeps it; system actors are nobody's owner.
    let mut named = quote_data(&w);
    named.insert("owner".into(), json!("m_wang"));
    assert_eq!(w.rt.submit("quote", named, "m_li").unwrap().owner.as_deref(), Some("m_wang"));
    for system in ["system", "import", "api"] {
        assert_eq!(w.rt.submit("quote", quote_data(&w), system).unwrap().owner, None, "{system}");
    }
}

#[test]
fn a_record_created_without_an_owner_through_the_cli_can_be_submitted_by_its_creator() {
    let (cli, customer) = quotes_cli("creator-owns");
    let created = submit_cli(&cli, &customer, "m_li", json!({}));
    assert_eq!(created["owner"], "m_li", "{created}");
    let id = created["id"].as_str().unwrap();
    let acted = cli.json(&["act", "quote", id, "submit", "--as", "m_li"]);
    assert_eq!(acted["state"], "in_approval", "{acted}");
    // An import as the system actor leaves the owner to the data.
    let system = submit_cli(&cli, &customer, "system", json!({}));
    assert_eq!(system["owner"], Value::Null, "{system}");
}

#[test]
fn an_assignment_rule_on_creation_decides_the_owner_not_the_creator() {
    let mut rt = closeloop::Runtime::open(
        crate::support::fresh_store(),
        std::sync::Arc::new(closeloop::clock::ManualClock::new("2026-11-26T09:00:00+08:00".parse().unwrap())),
    )
    .unwrap();
    let t = closeloop::template("lead-followup").unwrap();
    rt.install(&t.app_files(), "system", false).unwrap();
    let members = t.files.iter().find(|(p, _)| *p == "data/members.csv").unwrap().1;
    rt.import_members(members.as_bytes(), "system").unwrap();
    // The lead template assigns by region: a south lead goes to a southern rep, whoever keys it.
    let lead = rt
        .submit(
            "lead",
            obj(json!({"source": "expo", "customer": "广州某公司", "phone": "13800138009", "region": "south"})),
            "m_li",
        )
        .unwrap();
    assert_ne!(lead.owner.as_deref(), Some("m_li"), "{lead:?}");
    assert!(lead.owner.is_some(), "{lead:?}");
}

// Finding 4: an edit reset the chain of an approved quote but left it `approved`.

/// A quote by m_li (cash on delivery) approved by the supervisor and finance: waiting for the
/// customer's signature.
fn approved_quote(w: &mut World) -> String {
    let id = crate::approvals::quote(w, json!({"payment_terms": "cod"}));
    w.rt.approve("quote", &id, "m_zhao", None).unwrap();
    w.rt.approve("quote", &id, "m_qian", None).unwrap();
    assert_eq!(w.rt.get("quote", &id).unwrap().state.as_deref(), Some("approved"));
    id
}

#[test]
fn editing_an_approved_quote_resets_its_chain_and_it_is_no_longer_approved() {
    use closeloop::ApprovalStatus;
    let mut w = quotes();
    let id = approved_quote(&mut w);
    let edited = w.rt.update("quote", &id, obj(json!({"valid_until": "2027-01-31"})), "m_li").unwrap();
    assert_eq!(w.rt.approval("quote", &id).unwrap().unwrap().status, ApprovalStatus::Reset);
    assert_eq!(edited.state.as_deref(), Some("draft"), "the chain's on_reset state, not awaiting signature");
    assert_eq!(w.rt.get("quote", &id).unwrap().state.as_deref(), Some("draft"));
    assert!(w.rt.sign_link("quote", &id, "http://localhost:8080", "m_li").is_err(), "nothing to sign");
    // From draft it is submitted again, and a new run binds to the new version.
    let again = w.rt.act("quote", &id, "submit", "m_li", Map::new()).unwrap();
    let view = w.rt.approval("quote", &id).unwrap().unwrap();
    assert_eq!((again.state.as_deref(), view.status), (Some("in_approval"), ApprovalStatus::Pending));
    // Mid-chain too: an edit while in approval sends it back to draft.
    w.rt.update("quote", &id, obj(json!({"valid_until": "2027-02-28"})), "m_li").unwrap();
    assert_eq!(w.rt.get("quote", &id).unwrap().state.as_deref(), Some("draft"));
}

#[test]
fn editing_an_approved_quote_through_the_cli_takes_it_out_of_approved() {
    let (cli, customer) = quotes_cli("reset-state");
    let id = submit_cli(&cli, &customer, "m_li", json!({}))["id"].as_str().unwrap().to_string();
    cli.ok(&["act", "quote", &id, "submit", "--as", "m_li"]);
    cli.ok(&["approve", "quote", &id, "--as", "m_zhao"]);
    cli.ok(&["approve", "quote", &id, "--as", "m_qian"]);
    assert_eq!(cli.json(&["get", "quote", &id])["state"], "approved");
    let edited = cli.json(&["update", "quote", &id, "--as", "m_li", "--data", r#"{"valid_until":"2027-01-31"}"#]);
    assert_eq!(edited["state"], "draft", "{edited}");
    assert_eq!(cli.json(&["get", "quote", &id])["state"], "draft");
    cli.ok(&["act", "quote", &id, "submit", "--as", "m_li"]);
}

// Finding 6: `on_approved` never ran when a chain ended on an approver step, and `on_rejected`
// messages lost the rejection's comment.

const PURCHASES: &str = r#"
app: {id: purchases, title: Purchases, time_zone: Asia/Shanghai}
roles: [{id: staff}, {id: boss}]
forms:
  - id: order
    owner_field: owner
    fields:
      - {id: item, type: text, required: true}
      - {id: owner, type: member, readonly: true}
      - {id: cleared, type: bool}
    states:
      - {id: draft, initial: true}
      - {id: pending}
      - {id: approved}
      - {id: rejected}
    actions:
      - {id: submit, from: [draft, rejected], to: pending, roles: [staff], owner_only: true}
approvals:
  - id: sign_off
    form: order
    steps:
      - {id: boss, approver: {role: boss}}
    on_approved:
      - set: {cleared: true}
      - notify: {channel: chat, message: order_approved, to: {field: owner}}
    on_rejected:
      - notify: {channel: chat, message: order_rejected, to: {field: owner}}
automations:
  - id: route
    when: {action: {form: order, action: submit}}
    do: [{start_approval: sign_off}]
channels:
  - {id: chat, kind: wecom}
messages:
  - id: order_approved
    text: "{{ id }} approved by {{ decided_by }}{% if comment %}: {{ comment }}{% endif %}"
  - id: order_rejected
    text: "{{ id }} rejected by {{ decided_by }}{% if comment %}: {{ comment }}{% endif %}"
"#;

const PURCHASERS: &str = "id,name,roles,region,manager,active,capacity\ns1,S,staff,,,true,0\nb1,B,boss,,,true,0\n";

/// The purchases app with its two members, in memory.
fn purchases() -> closeloop::Runtime {
    let mut rt = closeloop::Runtime::open(
        crate::support::fresh_store(),
        std::sync::Arc::new(closeloop::clock::ManualClock::new("2026-11-26T09:00:00+08:00".parse().unwrap())),
    )
    .unwrap();
    let files = closeloop::AppFiles { app_yaml: PURCHASES.into(), ..Default::default() };
    rt.install(&files, "system", false).unwrap();
    rt.import_members(PURCHASERS.as_bytes(), "system").unwrap();
    rt
}

/// The bodies of the outbox's messages of one template.
fn bodies(rt: &closeloop::Runtime, message: &str) -> Vec<String> {
    rt.outbox(None).unwrap().into_iter().filter(|m| m.message == message).map(|m| m.body).collect()
}

#[test]
fn on_approved_runs_when_a_chain_ends_on_an_approver_step_with_the_deciders_comment() {
    use closeloop::ApprovalStatus;
    let mut rt = purchases();
    let id = rt.submit("order", obj(json!({"item": "laptop"})), "s1").unwrap().id;
    rt.act("order", &id, "submit", "s1", Map::new()).unwrap();
    let view = rt.approve("order", &id, "b1", Some("within budget")).unwrap();
    assert_eq!(view.status, ApprovalStatus::Approved);
    let order = rt.get("order", &id).unwrap();
    assert_eq!((order.state.as_deref(), &order.data["cleared"]), (Some("approved"), &json!(true)), "{order:?}");
    assert_eq!(bodies(&rt, "order_approved"), vec![format!("{id} approved by b1: within budget")]);
}

#[test]
fn on_rejected_messages_carry_the_rejection_comment_and_who_rejected() {
    let mut rt = purchases();
    let id = rt.submit("order", obj(json!({"item": "yacht"})), "s1").unwrap().id;
    rt.act("order", &id, "submit", "s1", Map::new()).unwrap();
    rt.reject("order", &id, "b1", "over budget").unwrap();
    assert_eq!(bodies(&rt, "order_rejected"), vec![format!("{id} rejected by b1: over budget")]);
    assert!(bodies(&rt, "order_approved").is_empty());
}

#[test]
fn the_quote_templates_rejection_message_carries_the_comment() {
    let mut w = quotes();
    let id = crate::approvals::quote(&mut w, json!({"payment_terms": "cod"}));
    w.rt.reject("quote", &id, "m_zhao", "折扣过大").unwrap();
    let sent: Vec<_> = w.rt.outbox(None).unwrap().into_iter().filter(|m| m.message == "quote_rejected").collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].recipient.as_str(), sent[0].body.as_str()),
        ("m_li", format!("报价 {id} 被驳回：折扣过大").as_str())
    );
}

#[test]
fn chain_end_hooks_run_with_the_decision_through_the_cli() {
    let cli = Cli::new("chain-hooks", "2026-11-26T09:00:00+08:00");
    std::fs::create_dir_all(cli.path("app")).unwrap();
    std::fs::write(cli.path("app/app.yaml"), PURCHASES).unwrap();
    std::fs::write(cli.path("team.csv"), PURCHASERS).unwrap();
    cli.ok(&["install", &cli.path("app").display().to_string()]);
    cli.ok(&["members", "import", &cli.path("team.csv").display().to_string()]);
    let order = |item: &str| {
        let data = json!({ "item": item }).to_string();
        let id = cli.json(&["submit", "order", "--as", "s1", "--data", &data])["id"].as_str().unwrap().to_string();
        cli.ok(&["act", "order", &id, "submit", "--as", "s1"]);
        id
    };
    let yes = order("laptop");
    cli.ok(&["approve", "order", &yes, "--as", "b1", "--comment", "ok"]);
    assert_eq!(cli.json(&["get", "order", &yes])["data"]["cleared"], true);
    let no = order("yacht");
    cli.ok(&["reject", "order", &no, "--as", "b1", "--comment", "over budget"]);
    let outbox = cli.json(&["outbox"]);
    let said: Vec<&str> = outbox.as_array().unwrap().iter().filter_map(|m| m["body"].as_str()).collect();
    assert!(said.contains(&format!("{yes} approved by b1: ok").as_str()), "{said:?}");
    assert!(said.contains(&format!("{no} rejected by b1: over budget").as_str()), "{said:?}");
}

// Finding 7: a grade written with `script:` was compiled, then never run: `grade`, `script test`
// and the automation step walked the (empty) rules and gave the default level.

const DEALS: &str = r#"
app: {id: deals, title: Deals, time_zone: Asia/Shanghai, language: en}
roles: [{id: staff}]
forms:
  - id: deal
    fields:
      - {id: amount, type: money}
      - id: risk
        type: choice
        options: [{value: low}, {value: medium}, {value: high}]
      - {id: risk_summary, type: long_text}
grades:
  - id: deal_risk
    form: deal
    field: risk
    summary_field: risk_summary
    default: medium
    script: |
      if record.amount != () && record.amount > 100000.0 {
        #{level: "high", reasons: ["above 100,000"]}
      } else {
        "low"
      }
automations:
  - id: grade_new
    when: {created: deal}
    do: [{grade: deal_risk}]
"#;

#[test]
fn a_grade_written_as_a_script_runs_its_script_on_every_path() {
    let mut rt = closeloop::Runtime::open(
        crate::support::fresh_store(),
        std::sync::Arc::new(closeloop::clock::ManualClock::new("2026-11-26T09:00:00+08:00".parse().unwrap())),
    )
    .unwrap();
    rt.install(&closeloop::AppFiles { app_yaml: DEALS.into(), ..Default::default() }, "system", false).unwrap();
    rt.import_members(b"id,name,roles,region,manager,active,capacity\ns1,S,staff,,,true,0\n", "system").unwrap();
    // The automation step, on creation.
    let big = rt.submit("deal", obj(json!({"amount": 250000.0})), "s1").unwrap();
    assert_eq!(big.data["risk"], "high", "{big:?}");
    assert_eq!(big.data["risk_summary"], "high risk: above 100,000");
    let small = rt.submit("deal", obj(json!({"amount": 500.0})), "s1").unwrap();
    assert_eq!(small.data["risk"], "low", "not the default (medium): {small:?}");
    // `Runtime::grade` on a stored record.
    let updated = rt.update("deal", &small.id, obj(json!({"amount": 900000.0})), "s1").unwrap();
    let (graded, grade) = rt.grade("deal", &updated.id, "deal_risk", "s1").unwrap();
    assert_eq!(
        (graded.data["risk"].as_str(), grade.reasons.clone()),
        (Some("high"), vec!["above 100,000".to_string()])
    );
    assert!(serde_json::to_value(&grade).unwrap()["operations"].as_u64() > Some(0), "the script ran: {grade:?}");
    // The dry run.
    let trial = rt.try_rule("deal_risk", obj(json!({"amount": 10.0})), None, "s1").unwrap();
    assert_eq!(serde_json::to_value(&trial.detail).unwrap()["level"], "low", "{trial:?}");
    assert!(trial.operations > 0 && trial.host_calls.iter().any(|c| c.contains("script")), "{trial:?}");
}

#[test]
fn a_grade_script_runs_through_the_cli_grade_and_script_test() {
    let cli = Cli::new("grade-script", "2026-11-26T09:00:00+08:00");
    std::fs::create_dir_all(cli.path("app")).unwrap();
    std::fs::write(cli.path("app/app.yaml"), DEALS).unwrap();
    std::fs::write(cli.path("team.csv"), "id,name,roles,region,manager,active,capacity\ns1,S,staff,,,true,0\n")
        .unwrap();
    cli.ok(&["install", &cli.path("app").display().to_string()]);
    cli.ok(&["members", "import", &cli.path("team.csv").display().to_string()]);
    let created = cli.json(&["submit", "deal", "--as", "s1", "--data", r#"{"amount":500}"#]);
    assert_eq!(created["data"]["risk"], "low", "{created}");
    let id = created["id"].as_str().unwrap();
    cli.ok(&["update", "deal", id, "--as", "s1", "--data", r#"{"amount":300000}"#]);
    let graded = cli.json(&["grade", "deal", id, "deal_risk", "--as", "s1"]);
    assert_eq!(graded["grade"]["level"], "high", "{graded}");
    assert_eq!(graded["record"]["data"]["risk_summary"], "high risk: above 100,000", "{graded}");
    let trial = cli.json(&["script", "test", "deal_risk", "--data", r#"{"amount":200000}"#]);
    assert_eq!(trial["detail"]["level"], "high", "{trial}");
}

/// Signing wrote the quote's `signed_at` while its run was still waiting for the signature, so
/// the write was taken for an edit: the run was reset, its approvers were told their approvals
/// were reset, and the trail showed a signed run reset a moment before it finished.
#[test]
fn a_customer_signature_does_not_reset_the_run_it_finishes_or_tell_approvers_so() {
    let mut w = quotes();
    let customer = w.rt.list("customer", &Default::default()).unwrap().remove(0).id;
    let mut data = quote_data(&w);
    data.insert("customer".into(), json!(customer));
    data.insert("owner".into(), json!("m_li"));
    let id = w.rt.submit("quote", data, "m_li").unwrap().id;
    w.rt.act("quote", &id, "submit", "m_li", Map::new()).unwrap();
    w.rt.approve("quote", &id, "m_zhao", None).unwrap();
    w.rt.approve("quote", &id, "m_qian", None).unwrap();
    let before = w.rt.outbox(None).unwrap().len();
    let link = w.rt.sign_link("quote", &id, "https://sign.example.com/", "m_li").unwrap();
    w.rt.sign(&link.token, "王总").unwrap();
    let told: Vec<String> = w.rt.outbox(None).unwrap().into_iter().skip(before).map(|m| m.body).collect();
    assert!(told.iter().all(|b| !b.contains("reset") && !b.contains("重置")), "{told:?}");
    let run = w.rt.approval("quote", &id).unwrap().unwrap();
    assert_eq!(run.status, closeloop::ApprovalStatus::Signed);
    assert!(run.steps.iter().all(|s| s.status.as_str() != "cancelled"), "{:?}", run.steps);
}
