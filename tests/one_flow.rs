//! The whole sales flow in one installation: the three templates side by side with one member
//! directory, from a lead left on the public page to a paid account whose falling health reaches
//! its regional director, through the CLI, the JSON API and the pages. The server keeps real
//! time, so the flow starts today; the weeks after the payment pass on the injected clock.

use serde_json::{json, Value};

use crate::http::{request_with, Server};
use crate::support::{root, Cli};

const DAY0: &str = "2026-11-23T10:00:00+08:00";

#[test]
fn the_three_templates_share_one_member_directory_and_one_vocabulary_of_roles() {
    let file = |app: &str| std::fs::read(root().join("app-templates").join(app).join("data/members.csv")).unwrap();
    let lead = file("lead-followup");
    assert_eq!(lead, file("quote-approval"), "one sample company, the same file in every template");
    assert_eq!(lead, file("customer-success"));
    // A role two templates declare means the same thing in both: the same label.
    let mut labels = std::collections::BTreeMap::new();
    for app in ["lead-followup", "quote-approval", "customer-success"] {
        let def = crate::support::load(&root().join("app-templates").join(app)).app.unwrap().def;
        for role in def.roles {
            let label = serde_json::to_string(&role.label).unwrap();
            let first = labels.entry(role.id.clone()).or_insert_with(|| (app, label.clone()));
            assert_eq!(first.1, label, "role `{}` in {app} and {}", role.id, first.0);
        }
    }
    // Installed together, the templates' directories are one: each person once.
    let cli = Cli::new("one-directory", DAY0);
    for app in ["lead-followup", "quote-approval", "customer-success"] {
        cli.ok(&["install", app]);
        let team = root().join("app-templates").join(app).join("data/members.csv");
        cli.ok(&["members", "import", &team.display().to_string()]);
    }
    let members = cli.json(&["members"]);
    let names: Vec<&str> = members.as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    let distinct: std::collections::BTreeSet<&&str> = names.iter().collect();
    assert_eq!((names.len(), distinct.len()), (21, 21), "{names:?}");
}

#[test]
fn a_website_lead_becomes_a_signed_quote_then_a_paid_account_whose_low_health_reaches_its_director() {
    let cli = Cli::system_clock("one-flow");
    let today = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap()).date();
    let day = |n: i64| today.checked_add(jiff::Span::new().days(n)).unwrap().to_string();
    let at = |n: i64| format!("{}T10:00:00+08:00", day(n));
    cli.ok(&["install", "lead-followup"]);
    cli.ok(&["install", "quote-approval", "--with-sample-data"]);
    cli.ok(&["install", "customer-success"]);
    let server = Server::start_args(&cli, &["--max-per-client", "512"]);
    let addr = server.addr.as_str();
    let tokens = std::cell::RefCell::new(std::collections::HashMap::<String, String>::new());
    let token = |member: &str| -> String {
        let mut tokens = tokens.borrow_mut();
        let made = || cli.json(&["tokens", "create", member, "--as", member, "--scope", "write"])["secret"].to_string();
        tokens.entry(member.to_string()).or_insert_with(made).trim_matches('"').to_string()
    };
    let api = |method: &str, path: &str, member: &str, extra: &str, body: Value| -> Value {
        let (status, _, answer) = request_with(addr, method, path, Some(&token(member)), extra, &body.to_string());
        assert!((200..300).contains(&status), "{method} {path} as {member}: {status} {answer}");
        serde_json::from_str(&answer).unwrap_or(Value::Null)
    };

    // A visitor leaves a lead on the public page; it is assigned by region and its rep told.
    let form = "Content-Type: application/x-www-form-urlencoded\r\n";
    let sent = "customer=%E8%8B%8F%E5%B7%9E%E6%96%B0%E5%AE%A2%E7%A7%91%E6%8A%80&phone=13800138111&region=east";
    let (status, _, page) = request_with(addr, "POST", "/apply/lead.captured", None, form, sent);
    assert!(status == 200 && page.contains("已收到"), "{status} {page}");
    let leads = cli.json(&["list", "lead"]);
    let lead = &leads.as_array().unwrap()[0];
    let (lead_id, rep) = (lead["id"].as_str().unwrap().to_string(), lead["owner"].as_str().unwrap().to_string());
    assert_eq!(
        (lead["data"]["customer"].as_str(), lead["data"]["source"].as_str()),
        (Some("苏州新客科技"), Some("website"))
    );
    assert!(["m_li", "m_wang"].contains(&rep.as_str()), "an east rep: {rep}");

    // The rep contacts the customer from the phone (JSON API), then qualifies the lead (CLI).
    let contacted = api(
        "POST",
        &format!("/api/v1/records/lead/{lead_id}/actions/contact"),
        &rep,
        "",
        json!({"summary": "电话沟通，需求明确", "next_step": "出报价"}),
    );
    assert_eq!(contacted["state"], "contacted", "{contacted}");
    cli.ok(&["act", "lead", &lead_id, "qualify", "--as", &rep]);

    // The quote app now knows the customer, and the rep has a draft quote with the contact in it.
    let quotes = cli.json(&["list", "quote"]);
    let draft = &quotes.as_array().unwrap()[0];
    let quote_id = draft["id"].as_str().unwrap().to_string();
    assert_eq!((draft["state"].as_str(), draft["owner"].as_str()), (Some("draft"), Some(rep.as_str())), "{draft}");
    assert_eq!(
        (draft["data"]["lead"].as_str(), draft["data"]["contact_phone"].as_str()),
        (Some(lead_id.as_str()), Some("13800138111"))
    );
    let customer = cli.json(&["get", "customer", draft["data"]["customer"].as_str().unwrap()]);
    assert_eq!(
        (customer["data"]["name"].as_str(), customer["data"]["region"].as_str()),
        (Some("苏州新客科技"), Some("east"))
    );
    let outbox = cli.ok(&["outbox"]);
    assert!(
        outbox.contains(&format!("已为 苏州新客科技 生成报价草稿 {quote_id}")),
        "the link reads as its name: {outbox}"
    );

    // The rep completes the draft and submits it (JSON API); supervisor and finance approve.
    let lines = json!({"valid_until": day(30), "payment_terms": "cod", "lines": [{"sku": "CL-CRM-STD", "qty": 2}]});
    api("PATCH", &format!("/api/v1/records/quote/{quote_id}"), &rep, "If-Match: \"1\"\r\n", lines);
    api("POST", &format!("/api/v1/records/quote/{quote_id}/actions/submit"), &rep, "", json!({}));
    api("POST", &format!("/api/v1/approvals/quote/{quote_id}/approve"), "m_zhao", "", json!({"comment": "价格合理"}));
    cli.ok(&["approve", "quote", &quote_id, "--as", "m_qian", "--comment", "已核价"]);

    // The customer signs through the page the link opens.
    let qr = cli.path("qr").display().to_string();
    let link = cli.ok(&["sign-link", "quote", &quote_id, "--as", &rep, "--qr-dir", &qr]);
    let sign_token = link.lines().next().unwrap().rsplit("/sign/").next().unwrap().trim().to_string();
    let (status, _, body) =
        request_with(addr, "POST", &format!("/sign/{sign_token}"), None, form, "name=%E7%8E%8B%E6%80%BB&agree=yes");
    assert_eq!(status, 303, "{body}");
    let signed = cli.json(&["get", "quote", &quote_id]);
    assert_eq!(signed["state"], "signed");
    let total = signed["data"]["total"].as_f64().unwrap();

    // The signed quote opened the account that waits for its payment, with an east success manager.
    let accounts = cli.json(&["list", "account"]);
    let account = &accounts.as_array().unwrap()[0];
    let (account_id, csm) =
        (account["id"].as_str().unwrap().to_string(), account["owner"].as_str().unwrap().to_string());
    assert!(["m_lin", "m_gao"].contains(&csm.as_str()), "{account}");
    assert_eq!(
        (
            account["data"]["customer"].as_str(),
            account["data"]["quote"].as_str(),
            account["data"]["contract_amount"].as_f64()
        ),
        (Some("苏州新客科技"), Some(quote_id.as_str()), Some(total))
    );
    api(
        "PATCH",
        &format!("/api/v1/records/account/{account_id}"),
        &csm,
        "If-Match: \"1\"\r\n",
        json!({"delivered_at": day(2), "payment_due": day(32), "contract_end": day(60)}),
    );

    // Finance imports the bank's payments: the three after-payment tasks open for the manager.
    let payments = cli.path("payments.csv");
    std::fs::write(
        &payments,
        format!("付款单号,客户名称,金额,回款日期\nP-0901,苏州新客科技,\"24,000.00\",{}\n", day(3)),
    )
    .unwrap();
    let file = payments.display().to_string();
    cli.ok_at(Some(&at(3)), &["import", "payment.received", &file, "--key", "付款单号"]);
    let tasks = cli.json_at(Some(&at(3)), &["tasks", "--as", &csm]);
    assert_eq!(tasks.as_array().unwrap().len(), 3, "{tasks}");

    // Nobody does them. Six weeks on, the weekly health score falls under 60: the account goes
    // on the director board and the east regional director (the manager's manager) is told.
    cli.ok_at(Some(&at(45)), &["tick"]);
    let health = cli.json(&["get", "account", &account_id])["data"]["health"].as_i64().unwrap();
    assert!(health < 60, "health {health}");
    let board = api("GET", "/api/v1/boards/director", "m_cao", "", Value::Null);
    assert!(board.to_string().contains(&account_id), "{board}");
    let outbox = cli.json(&["outbox"]);
    let warned = outbox.as_array().unwrap().iter().any(|m| m["message"] == "health_low" && m["to"] == "m_cao");
    assert!(warned, "{outbox}");

    // One database, one report: all three loops' metrics have their instances.
    let range = ["report", "penetration", "--from", &day(-1), "--to", &day(45)];
    let report = cli.json_at(Some(&at(45)), &range);
    for metric in ["lead_first_followup", "lead_not_sunk", "quote_approval", "after_payment_touch"] {
        let m = report["metrics"].as_array().unwrap().iter().find(|m| m["id"] == metric).unwrap_or(&Value::Null);
        assert!(m["population"].as_i64() >= Some(1), "{metric}: {m}");
    }
    let rate =
        |id: &str| report["metrics"].as_array().unwrap().iter().find(|m| m["id"] == id).unwrap()["rate"].as_f64();
    assert_eq!((rate("lead_first_followup"), rate("quote_approval")), (Some(1.0), Some(1.0)));
    assert_eq!(rate("after_payment_touch"), Some(0.0), "three tasks missed");
    assert!(cli.ok(&["audit", "verify"]).contains("audit ok"));
}

#[test]
fn a_template_installed_alone_skips_the_hand_over_to_the_app_that_is_not_there() {
    let cli = Cli::new("one-flow-alone", DAY0);
    cli.ok(&["install", "lead-followup"]);
    let team = root().join("app-templates/lead-followup/data/members.csv");
    cli.ok(&["members", "import", &team.display().to_string()]);
    let data = r#"{"source":"expo","customer":"上海明远科技","phone":"13800138001","region":"east"}"#;
    let id = cli.json(&["submit", "lead", "--as", "m_ops", "--data", data])["id"].as_str().unwrap().to_string();
    cli.ok(&["act", "lead", &id, "contact", "--as", "m_li", "--data", r#"{"summary":"电话沟通","next_step":"报价"}"#]);
    let qualified = cli.json(&["act", "lead", &id, "qualify", "--as", "m_li"]);
    assert_eq!(qualified["state"], "qualified", "{qualified}");
    let activity = cli.ok(&["activity", "lead", &id]);
    assert!(activity.contains("app quote-approval is not installed; event lead.qualified not raised"), "{activity}");
    assert!(!activity.contains("failed"), "{activity}");
}

#[test]
fn a_signed_quote_for_a_customer_with_an_account_updates_it_rather_than_opening_another() {
    let cli = Cli::new("one-flow-update", DAY0);
    cli.ok(&["install", "customer-success", "--with-sample-data"]);
    let before = cli.json(&["list", "account"]).as_array().unwrap().len();
    let signed =
        r#"{"customer":"上海明远科技有限公司","region":"east","quote":"QT-202611-0007","contract_amount":59000}"#;
    cli.ok(&["event", "quote.signed", "--data", signed]);
    let accounts = cli.json(&["list", "account"]);
    assert_eq!(accounts.as_array().unwrap().len(), before, "no second account");
    let account =
        accounts.as_array().unwrap().iter().find(|a| a["data"]["customer"] == "上海明远科技有限公司").unwrap();
    assert_eq!((account["data"]["quote"].as_str(), account["owner"].as_str()), (Some("QT-202611-0007"), Some("m_lin")));
    assert_eq!(account["data"]["contract_amount"], 59000.0);
    // Its success manager hears of it.
    let outbox = cli.ok(&["outbox"]);
    assert!(
        outbox.contains("m_lin") && outbox.contains("上海明远科技有限公司 已签约（报价 QT-202611-0007"),
        "{outbox}"
    );
    // A churned account is final: a later signing cannot rewrite it, and says why.
    let id = account["id"].as_str().unwrap().to_string();
    cli.ok(&["act", "account", &id, "churn", "--as", "m_cao"]);
    let again = r#"{"customer":"上海明远科技有限公司","region":"east","quote":"QT-202612-0001","contract_amount":1}"#;
    let (code, said) = cli.fails(&["event", "quote.signed", "--data", again]);
    assert_eq!(code, Some(1));
    assert!(said.contains("churned") || said.contains("final"), "{said}");
    assert_eq!(cli.json(&["get", "account", &id])["data"]["quote"], "QT-202611-0007", "unchanged");
    // What an event declares is what it carries: a field it does not declare is refused.
    let stray = r#"{"customer":"x","region":"east","quote":"q","health":1}"#;
    let (code, said) = cli.fails(&["event", "quote.signed", "--data", stray]);
    assert!(code == Some(1) && said.contains("health"), "{said}");
}

#[test]
fn tasks_opened_before_their_dates_were_known_take_their_due_when_the_dates_are_filled_in() {
    // A signed quote opens an account with no dates yet; the payment arrives first, so its three
    // tasks open without a due. The success manager then fills in the dates.
    let cli = Cli::new("one-flow-dates", DAY0);
    cli.ok(&["install", "customer-success", "--with-sample-data"]);
    let signed = r#"{"customer":"苏州新客科技","region":"south","quote":"QT-202611-0009","contract_amount":30000}"#;
    cli.ok(&["event", "quote.signed", "--data", signed]);
    cli.ok(&[
        "event",
        "payment.received",
        "--data",
        r#"{"customer":"苏州新客科技","amount":30000,"paid_at":"2026-11-23"}"#,
    ]);
    let account = cli.json(&["list", "account", "--where", "customer=苏州新客科技"])[0].clone();
    let (id, csm) = (account["id"].as_str().unwrap().to_string(), account["owner"].as_str().unwrap().to_string());
    assert_eq!(csm, "m_luo", "the south success manager");
    let dues = || -> Vec<Value> {
        cli.json(&["tasks", "--as", &csm]).as_array().unwrap().iter().map(|t| t["due"].clone()).collect()
    };
    assert_eq!(dues(), vec![Value::Null; 3], "nothing to count from yet");
    let dates = r#"{"delivered_at":"2026-11-25","payment_due":"2026-12-25","contract_end":"2027-11-24"}"#;
    cli.ok(&["update", "account", &id, "--as", &csm, "--data", dates]);
    let mut now: Vec<String> = dues().iter().map(|d| d.as_str().unwrap_or("none").to_string()).collect();
    now.sort();
    // 7 days after delivery; 5 days before the payment term ends; 45 days before the contract ends.
    assert_eq!(now, ["2026-12-02", "2026-12-20", "2027-10-10"]);
    // Moving a date moves its task, and only it.
    cli.ok(&["update", "account", &id, "--as", &csm, "--data", r#"{"delivered_at":"2026-11-30"}"#]);
    let mut moved: Vec<String> = dues().iter().map(|d| d.as_str().unwrap_or("none").to_string()).collect();
    moved.sort();
    assert_eq!(moved, ["2026-12-07", "2026-12-20", "2027-10-10"]);
    assert!(cli.ok(&["audit", "verify"]).contains("audit ok"));
}
