//! Who may decide an approval step besides its approvers: a delegate while an approver is away,
//! and a director pushing a stuck step through with a reason (RELIABILITY A4). Both are on
//! the record as what they are.

use closeloop::Absence;
use closeloop::EngineError;
use serde_json::{json, Value};

use crate::approvals::{quote, quotes, status, steps, World};

fn away(until: &str, delegate: &str) -> Absence {
    Absence { from: None, until: until.into(), delegate: Some(delegate.into()) }
}

fn refused<T: std::fmt::Debug>(r: Result<T, EngineError>) -> String {
    match r {
        Err(EngineError::Refused(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn step_note(w: &World, id: &str, step: &str) -> String {
    let view = w.rt.approval("quote", id).unwrap().unwrap();
    let s = view.steps.iter().find(|s| s.step == step).unwrap();
    s.note.clone().unwrap_or_default()
}

fn trail(w: &World, id: &str, kind: &str) -> Vec<(String, Value)> {
    w.rt.activity("quote", id).unwrap().into_iter().filter(|a| a.kind == kind).map(|a| (a.actor, a.detail)).collect()
}

#[test]
fn an_away_supervisor_s_delegate_decides_in_their_place_and_the_trail_says_so() {
    let mut w = quotes();
    // The supervisor's manager marks her away for the week; her south colleague stands in.
    w.rt.set_away("m_zhao", &away("2026-11-27", "m_sun"), "m_cao").unwrap();
    let id = quote(&mut w, json!({"payment_terms": "cod"}));
    assert!(
        step_note(&w, &id, "supervisor").contains("m_zhao is away until 2026-11-27: m_sun decides in their place"),
        "{}",
        step_note(&w, &id, "supervisor")
    );
    let told: Vec<_> = w.rt.outbox(None).unwrap().into_iter().filter(|m| m.recipient == "m_sun").collect();
    assert_eq!(told.len(), 1, "the delegate is told");
    assert!(told[0].body.contains("代 m_zhao 审批"), "{}", told[0].body);
    assert!(told[0].body.contains("合计金额：22,000.00"), "money reads as people write it: {}", told[0].body);

    let waiting = w.rt.approvals(Some("m_sun")).unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].on_behalf_of.as_deref(), Some("m_zhao"));

    let view = w.rt.approve("quote", &id, "m_sun", Some("代审，价格合理")).unwrap();
    let supervisor = view.steps.iter().find(|s| s.step == "supervisor").unwrap();
    assert_eq!((supervisor.status.as_str(), supervisor.approved_by.clone()), ("approved", vec!["m_zhao".to_string()]));
    let approved = trail(&w, &id, "approval.approved");
    assert_eq!(approved.len(), 1);
    assert_eq!((approved[0].0.as_str(), &approved[0].1["on_behalf_of"]), ("m_sun", &json!("m_zhao")));
    // Both the absent approver and the delegate count as having approved: neither may approve
    // a later step of this run.
    assert!(refused(w.rt.approve("quote", &id, "m_sun", None)).contains("separation of duties"));
    assert!(w.rt.verify_audit().unwrap().problem.is_none());
}

#[test]
fn a_delegate_decides_only_while_the_approver_is_away_and_where_the_step_allows_it() {
    let mut w = quotes();
    // Away from Wednesday: on Monday the delegate may not decide yet.
    let absence = Absence { from: Some("2026-11-25".into()), ..away("2026-11-27", "m_sun") };
    w.rt.set_away("m_zhao", &absence, "m_zhao").unwrap();
    let id = quote(&mut w, json!({"payment_terms": "cod"}));
    assert!(refused(w.rt.approve("quote", &id, "m_sun", None)).contains("not an approver"));
    assert!(w.rt.approvals(Some("m_sun")).unwrap().is_empty());
    // Wednesday: the absence has begun, and the delegation is read when the delegate decides.
    w.clock.set("2026-11-25T09:30:00+08:00".parse().unwrap());
    assert_eq!(w.rt.approvals(Some("m_sun")).unwrap().len(), 1);
    // She comes back early: her delegate may no longer decide.
    w.rt.set_back("m_zhao", "m_zhao").unwrap();
    assert!(refused(w.rt.approve("quote", &id, "m_sun", None)).contains("not an approver"));
    w.rt.approve("quote", &id, "m_zhao", None).unwrap();
    assert_eq!(status(&steps(&w, &id), "supervisor"), "approved");

    // A chain whose supervisor step does not allow delegation.
    let t = closeloop::template("quote-approval").unwrap();
    let mut files = t.app_files();
    let yaml = files.app_yaml.replacen(
        "        allow_delegation: true\n        show: [total]\n",
        "        show: [total]\n",
        1,
    );
    assert_ne!(yaml, files.app_yaml);
    files.app_yaml = yaml;
    w.rt.install(&files, "system", false).unwrap();
    w.rt.set_away("m_zhao", &away("2026-11-27", "m_sun"), "system").unwrap();
    let second = quote(&mut w, json!({"payment_terms": "cod"}));
    assert!(!step_note(&w, &second, "supervisor").contains("decides in their place"));
    assert!(refused(w.rt.approve("quote", &second, "m_sun", None)).contains("not an approver"));
}

#[test]
fn a_delegate_must_qualify_for_the_step_not_merely_share_some_role() {
    let mut w = quotes();
    // m_qian also sits in legal; a legal colleague shares a role with her, but not finance.
    w.rt.import_members(b"id,roles\nm_qian,finance;legal\n", "system").unwrap();
    w.rt.set_away("m_qian", &away("2026-11-27", "m_han"), "system").unwrap();
    let id = quote(&mut w, json!({"payment_terms": "cod"}));
    w.rt.approve("quote", &id, "m_zhao", None).unwrap();
    assert!(!step_note(&w, &id, "finance").contains("decides in their place"));
    assert!(refused(w.rt.approve("quote", &id, "m_han", None)).contains("not an approver"));
    assert!(w.rt.approvals(Some("m_han")).unwrap().is_empty());
}

#[test]
fn marking_someone_away_checks_the_delegate_and_who_asks_and_is_audited() {
    let mut w = quotes();
    let input = |r: Result<_, EngineError>| match r {
        Err(EngineError::Input(why)) => why,
        other => panic!("expected an input error, got {other:?}"),
    };
    assert!(input(w.rt.set_away("m_qian", &away("2026-12-04", "m_li"), "system")).contains("shares no role"));
    assert!(input(w.rt.set_away("m_qian", &away("2026-12-04", "m_qian"), "system")).contains("themselves"));
    assert!(input(w.rt.set_away("m_qian", &away("2026-12-04", "nobody"), "system")).contains("no member `nobody`"));
    assert!(input(w.rt.set_away("m_qian", &away("2026-12-32", "m_jiang"), "system")).contains("--until"));
    let backwards = Absence { from: Some("2026-12-05".into()), ..away("2026-12-04", "m_jiang") };
    assert!(input(w.rt.set_away("m_qian", &backwards, "system")).contains("before it starts"));
    // Only the member, their manager (m_ma) or system may say someone is away.
    assert!(refused(w.rt.set_away("m_qian", &away("2026-12-04", "m_jiang"), "m_jiang")).contains("only `m_qian`"));
    let m = w.rt.set_away("m_qian", &away("2026/12/4", "m_jiang"), "m_ma").unwrap();
    assert_eq!((m.away_until.as_deref(), m.delegate_to.as_deref()), (Some("2026-12-04"), Some("m_jiang")));
    assert!(w.rt.verify_audit().unwrap().problem.is_none(), "the change is a member event");
}

#[test]
fn a4_a_director_pushes_a_step_through_only_with_a_reason_and_the_override_is_audited() {
    let mut w = quotes();
    let customer = w.rt.list("customer", &Default::default()).unwrap().remove(0).id;
    // The director writes the quote himself (for m_li), so he is barred from approving it.
    let data = json!({"customer": customer, "contact_phone": "13800138001", "owner": "m_li", "valid_until": "2026-12-31",
                      "payment_terms": "cod", "lines": [{"sku": "CL-CRM-STD", "qty": 2, "unit_price": 11000.0}]});
    let id = w.rt.submit("quote", data.as_object().cloned().unwrap(), "m_ma").unwrap().id;
    w.rt.act("quote", &id, "submit", "m_li", Default::default()).unwrap();

    assert!(refused(w.rt.approve("quote", &id, "m_ma", None)).contains("created it (separation of duties)"));
    assert!(refused(w.rt.approve_override("quote", &id, "m_li", "急单", None)).contains("only director may"));
    assert!(matches!(w.rt.approve_override("quote", &id, "m_ma", "  ", None), Err(EngineError::Input(_))));
    assert_eq!(status(&steps(&w, &id), "supervisor"), "open", "nothing moved yet");

    w.rt.approve_override("quote", &id, "m_ma", "客户今日必须下单，主管出差联系不上", None).unwrap();
    assert_eq!(status(&steps(&w, &id), "supervisor"), "approved");
    let overrides = trail(&w, &id, "approval.override");
    assert_eq!(overrides.len(), 1);
    let (who, detail) = &overrides[0];
    assert_eq!((who.as_str(), detail["reason"].as_str()), ("m_ma", Some("客户今日必须下单，主管出差联系不上")));
    let set_aside = detail["set_aside"].to_string();
    assert!(set_aside.contains("created it") && set_aside.contains("not an approver"), "{set_aside}");
    let approved = trail(&w, &id, "approval.approved");
    assert_eq!(approved[0].1["override"], json!(true));
    assert_eq!(trail(&w, &id, "approval.refused").len(), 2, "both refusals are on record");
    assert_eq!(trail(&w, &id, "approval.override").len(), 1, "the refused attempt left no override event");
    // The override does not carry over: the next step is finance's as usual, and one
    // break-glass per run is all there is.
    assert!(refused(w.rt.approve("quote", &id, "m_ma", None)).contains("separation of duties"));
    assert!(refused(w.rt.approve_override("quote", &id, "m_ma", "还是急", None)).contains("already overridden"));
    let last = trail(&w, &id, "approval.refused").pop().unwrap();
    assert_eq!(last.1["override"], json!("还是急"), "a refused override is on record as one");
    w.rt.approve("quote", &id, "m_qian", None).unwrap();
    assert_eq!(status(&steps(&w, &id), "customer_sign"), "open");
}

#[test]
fn members_away_and_approve_override_through_the_binary() {
    let cli = crate::support::Cli::new("away", "2026-11-23T10:00:00+08:00");
    let root = crate::support::root();
    let data = |f: &str| root.join("app-templates/quote-approval/data").join(f).display().to_string();
    cli.ok(&["install", "quote-approval"]);
    cli.ok(&["members", "import", &data("members.csv")]);
    for (form, file) in [("product", "products.csv"), ("customer", "customers.csv")] {
        cli.ok(&["import", form, &data(file)]);
    }
    let out = cli.ok(&["members", "away", "m_zhao", "--until", "2026-11-27", "--delegate", "m_sun", "--as", "m_cao"]);
    assert!(out.contains("m_sun decides their approvals"), "{out}");
    let members = cli.json(&["members"]);
    let sup = members.as_array().unwrap().iter().find(|m| m["id"] == "m_zhao").unwrap().clone();
    assert_eq!((sup["away_until"].as_str(), sup["delegate_to"].as_str()), (Some("2026-11-27"), Some("m_sun")));

    let data = json!({"customer": "C-0001", "contact_phone": "13800138001", "owner": "m_li", "valid_until": "2026-12-31",
                      "payment_terms": "cod", "lines": [{"sku": "CL-CRM-STD", "qty": 1}]});
    let created = cli.json(&["submit", "quote", "--as", "m_li", "--data", &data.to_string()]);
    let id = created["id"].as_str().unwrap().to_string();
    cli.ok(&["act", "quote", &id, "submit", "--as", "m_li"]);
    let waiting = cli.ok(&["approvals", "--as", "m_sun"]);
    assert!(waiting.contains("you decide for m_zhao") && waiting.contains("合计金额: 12,000.00"), "{waiting}");
    cli.ok(&["approve", "quote", &id, "--as", "m_sun"]);
    // Finance's step, pushed through by the director with a reason.
    assert_eq!(cli.fails(&["approve", "quote", &id, "--as", "m_ma"]).0, Some(1));
    let view = cli.json(&["approve", "quote", &id, "--as", "m_ma", "--override", "月底结账"]);
    let finance = view["steps"].as_array().unwrap().iter().find(|s| s["step"] == "finance").unwrap().clone();
    assert_eq!(finance["status"], "approved");
    assert!(cli.ok(&["audit", "verify"]).contains("ok"));
}

#[test]
fn absences_import_with_the_directory_and_an_edit_outside_closeloop_is_caught() {
    let cli = crate::support::Cli::new("away-import", "2026-11-23T10:00:00+08:00");
    let root = crate::support::root();
    cli.ok(&["install", "quote-approval"]);
    let team = root.join("app-templates/quote-approval/data/members.csv").display().to_string();
    cli.ok(&["members", "import", &team]);
    std::fs::write(cli.path("away.csv"), "id,away_from,away_until,delegate_to\nm_qian,2026-12-01,2026/12/4,m_jiang\n")
        .unwrap();
    cli.ok(&["members", "import", &cli.path("away.csv").display().to_string()]);
    let members = cli.json(&["members"]);
    let fin = members.as_array().unwrap().iter().find(|m| m["id"] == "m_qian").unwrap().clone();
    assert_eq!((fin["away_from"].as_str(), fin["away_until"].as_str()), (Some("2026-12-01"), Some("2026-12-04")));
    // A day that is not on the calendar names its row and column, and nothing changes.
    std::fs::write(cli.path("bad.csv"), "id,away_until\nm_jiang,2026-02-30\n").unwrap();
    let (_, said) = cli.fails(&["members", "import", &cli.path("bad.csv").display().to_string()]);
    assert!(said.contains("away_until"), "{said}");
    // A file may not hand approvals to someone the directory would refuse either.
    std::fs::write(cli.path("rep.csv"), "id,delegate_to\nm_jiang,m_li\n").unwrap();
    let (_, said) = cli.fails(&["members", "import", &cli.path("rep.csv").display().to_string()]);
    assert!(said.contains("delegate_to") && said.contains("shares no role"), "{said}");
    assert!(cli.ok(&["audit", "verify"]).contains("ok"));
    // Someone hands themselves m_qian's approvals in the database: verify names the member.
    cli.execute("UPDATE members SET delegate_to = 'm_li' WHERE id = 'm_qian'");
    let (code, said) = cli.fails(&["audit", "verify"]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("member m_qian"), "{said}");
}
