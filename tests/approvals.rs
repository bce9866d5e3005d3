//! Approval chains on the quote template: the chain runs itself, legal only sees risky quotes,
//! nobody approves their own quote, an N-of-M step counts each approver once, an edit resets
//! the chain, and a step past its timeout escalates (RELIABILITY A-rows, in part).

use std::sync::Arc;

use closeloop::clock::ManualClock;
use closeloop::store::ListQuery;
use closeloop::{EngineError, Runtime};
use serde_json::{json, Map, Value};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

pub(crate) struct World {
    pub rt: Runtime,
    pub clock: Arc<ManualClock>,
}

/// The quote template with its catalog and team, on Monday 2026-11-23 10:00 in Shanghai.
pub(crate) fn quotes() -> World {
    let clock = Arc::new(ManualClock::new("2026-11-23T10:00:00+08:00".parse().unwrap()));
    let mut rt = Runtime::open(crate::support::fresh_store(), clock.clone()).unwrap();
    crate::support::quote_catalog(&mut rt, false);
    World { rt, clock }
}

/// A quote by m_li for the first customer, one line, submitted to the chain.
pub(crate) fn quote(w: &mut World, terms: Value) -> String {
    let customer = w.rt.list("customer", &ListQuery::default()).unwrap().remove(0).id;
    let mut data = obj(json!({
        "customer": customer, "contact_phone": "13800138001", "owner": "m_li", "valid_until": "2026-12-31",
        "lines": [{"sku": "CL-CRM-STD", "qty": 2, "unit_price": 11000.0}]
    }));
    data.extend(obj(terms));
    let id = w.rt.submit("quote", data, "m_li").unwrap().id;
    w.rt.act("quote", &id, "submit", "m_li", Map::new()).unwrap();
    id
}

/// Each step of the quote's run, with its status.
pub(crate) fn steps(w: &World, id: &str) -> Vec<(String, String)> {
    let view = w.rt.approval("quote", id).unwrap().unwrap();
    view.steps.iter().map(|s| (s.step.clone(), s.status.as_str().to_string())).collect()
}

/// One step's status.
pub(crate) fn status(steps: &[(String, String)], step: &str) -> String {
    steps.iter().find(|(s, _)| s == step).map(|(_, st)| st.clone()).unwrap_or_default()
}

#[test]
fn cash_on_delivery_skips_legal_and_prepayment_needs_it() {
    let mut w = quotes();
    let cod = quote(&mut w, json!({"payment_terms": "cod"}));
    assert_eq!(status(&steps(&w, &cod), "supervisor"), "open");
    // The owner's manager approves, then finance.
    w.rt.approve("quote", &cod, "m_zhao", Some("价格合理")).unwrap();
    assert_eq!(status(&steps(&w, &cod), "finance"), "open");
    let view = w.rt.approve("quote", &cod, "m_qian", None).unwrap();
    let legal = view.steps.iter().find(|s| s.step == "legal").unwrap();
    assert_eq!(legal.status, closeloop::StepStatus::Skipped);
    assert!(legal.note.as_deref().unwrap().contains("`risk` is \"low\""), "the skip is explained: {legal:?}");
    assert_eq!(status(&steps(&w, &cod), "customer_sign"), "open");
    assert_eq!(w.rt.get("quote", &cod).unwrap().state.as_deref(), Some("approved"));

    let prepay = quote(&mut w, json!({"payment_terms": "prepay", "prepay_percent": 60}));
    w.rt.approve("quote", &prepay, "m_zhao", None).unwrap();
    w.rt.approve("quote", &prepay, "m_jiang", None).unwrap();
    assert_eq!(status(&steps(&w, &prepay), "legal"), "open");
    let waiting = w.rt.approvals(Some("m_han")).unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(w.rt.get("quote", &prepay).unwrap().data["risk"], "high", "legal sees the graded risk");
    assert!(w.rt.get("quote", &prepay).unwrap().data["risk_summary"].as_str().is_some_and(|s| !s.is_empty()));
    w.rt.approve("quote", &prepay, "m_han", None).unwrap();
    assert_eq!(status(&steps(&w, &prepay), "customer_sign"), "open");
}

#[test]
fn creators_owners_and_earlier_approvers_are_refused_and_the_refusals_are_audited() {
    let mut w = quotes();
    let id = quote(&mut w, json!({"payment_terms": "cod"}));
    let refused = |r: Result<_, EngineError>| matches!(r, Err(EngineError::Refused(_)));
    assert!(refused(w.rt.approve("quote", &id, "m_li", None)), "the creator, owner and submitter");
    assert!(refused(w.rt.approve("quote", &id, "m_qian", None)), "not this step's approver");
    w.rt.approve("quote", &id, "m_zhao", None).unwrap();
    // Finance is the next step; the supervisor who approved before may not approve again.
    assert!(refused(w.rt.approve("quote", &id, "m_zhao", None)));
    let trail = w.rt.activity("quote", &id).unwrap();
    assert_eq!(trail.iter().filter(|a| a.kind == "approval.refused").count(), 3);
    assert!(trail
        .iter()
        .any(|a| a.kind == "approval.refused" && a.detail["why"].as_str().unwrap().contains("separation of duties")));
}

#[test]
fn an_edit_resets_the_chain_and_a_rejection_needs_a_comment() {
    use closeloop::ApprovalStatus;
    let mut w = quotes();
    let id = quote(&mut w, json!({"payment_terms": "cod"}));
    w.rt.approve("quote", &id, "m_zhao", None).unwrap();
    let before = w.rt.get("quote", &id).unwrap().version;
    w.rt.update("quote", &id, obj(json!({"valid_until": "2027-01-31"})), "m_li").unwrap();
    let view = w.rt.approval("quote", &id).unwrap().unwrap();
    assert_eq!(view.status, ApprovalStatus::Reset);
    assert!(w.rt.get("quote", &id).unwrap().version > before);
    assert!(w.rt.approve("quote", &id, "m_qian", None).is_err(), "nothing to approve until it is submitted again");
    // The reset sent it back to draft: submitted again, a new run on the new version.
    assert_eq!(w.rt.get("quote", &id).unwrap().state.as_deref(), Some("draft"));
    w.rt.act("quote", &id, "submit", "m_li", Map::new()).unwrap();
    let view = w.rt.approval("quote", &id).unwrap().unwrap();
    assert_eq!((view.status, view.version), (ApprovalStatus::Pending, w.rt.get("quote", &id).unwrap().version));
    assert!(w.rt.reject("quote", &id, "m_zhao", " ").is_err());
    let view = w.rt.reject("quote", &id, "m_zhao", "折扣过大").unwrap();
    assert_eq!(view.status, ApprovalStatus::Rejected);
    assert_eq!(w.rt.get("quote", &id).unwrap().state.as_deref(), Some("rejected"));
}

#[test]
fn a_step_left_past_its_timeout_escalates() {
    let mut w = quotes();
    let id = quote(&mut w, json!({"payment_terms": "cod"}));
    // Submitted Monday 10:00; one business day later is Tuesday 10:00.
    w.clock.set("2026-11-24T09:00:00+08:00".parse().unwrap());
    assert!(w.rt.tick().unwrap().timers.is_empty());
    w.clock.set("2026-11-24T10:30:00+08:00".parse().unwrap());
    let tick = w.rt.tick().unwrap();
    assert_eq!(tick.timers.len(), 1, "{tick:?}");
    let waiting = w.rt.approvals(Some("m_ma")).unwrap();
    assert_eq!(waiting.len(), 1, "the director now sees it");
    w.rt.approve("quote", &id, "m_ma", Some("已代审")).unwrap();
    assert_eq!(status(&steps(&w, &id), "supervisor"), "approved");
}

const EXPENSES: &str = r#"
app: {id: expenses, title: Expenses, time_zone: Asia/Shanghai}
roles: [{id: staff}, {id: finance}]
forms:
  - id: claim
    owner_field: owner
    fields:
      - {id: purpose, type: text, required: true}
      - {id: owner, type: member}
    states:
      - {id: draft, initial: true}
      - {id: approved}
    actions:
      - {id: submit, from: [draft], to: draft, roles: [staff]}
approvals:
  - id: two_of_three
    form: claim
    steps:
      - {id: finance, approver: {role: finance}, mode: n_of_m, n: 2}
automations:
  - id: route
    when: {action: {form: claim, action: submit}}
    do:
      - start_approval: two_of_three
"#;

/// The expenses app installed with its finance team, in a database of its own.
fn expenses(name: &str, yaml: &str) -> crate::support::Cli {
    let cli = crate::support::Cli::new(name, "2026-11-26T09:00:00+08:00");
    std::fs::create_dir_all(cli.path("app")).unwrap();
    std::fs::write(cli.path("app/app.yaml"), yaml).unwrap();
    std::fs::write(
        cli.path("team.csv"),
        "id,name,roles,region,manager,active,capacity\ns1,S,staff,,,true,0\nf1,F1,finance,,,true,0\nf2,F2,finance,,,true,0\nf3,F3,finance,,,true,0\n",
    )
    .unwrap();
    cli.ok(&["install", &cli.path("app").display().to_string()]);
    cli.ok(&["members", "import", &cli.path("team.csv").display().to_string()]);
    cli
}

#[test]
fn two_approvers_deciding_at_the_same_moment_are_counted_once_each() {
    let cli = expenses("n-of-m", EXPENSES);
    let (command, ok) = (|args: &[&str]| cli.command(args), |args: &[&str]| cli.ok(args));
    for round in 0..10 {
        let created: Value = serde_json::from_str(&ok(&[
            "--format",
            "json",
            "submit",
            "claim",
            "--as",
            "s1",
            "--data",
            r#"{"purpose":"差旅","owner":"s1"}"#,
        ]))
        .unwrap();
        let id = created["id"].as_str().unwrap().to_string();
        ok(&["act", "claim", &id, "submit", "--as", "s1"]);
        let spawn = |who: &str| command(&["approve", "claim", &id, "--as", who]).output();
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| spawn("f1").unwrap());
            let b = s.spawn(|| spawn("f2").unwrap());
            (a.join().unwrap(), b.join().unwrap())
        });
        assert!(a.status.success() && b.status.success(), "round {round}");
        // The step closed with f1 and f2; f3 comes too late to count.
        let late = command(&["approve", "claim", &id, "--as", "f3"]).output().unwrap();
        assert_eq!(late.status.code(), Some(1), "round {round}");
        assert!(String::from_utf8_lossy(&late.stderr).contains("not in approval"));
        let counted = cli.query(
            "SELECT COUNT(*) FROM approval_decisions d JOIN approvals a ON a.id = d.approval WHERE a.record = ?1",
            &[&id],
        );
        assert_eq!(counted, 2, "round {round}: each approver counted once");
        let state = cli.rows("SELECT status FROM approvals WHERE record = ?1", &[&id]);
        assert_eq!(state, [[Some("approved".to_string())]], "round {round}");
    }
}

/// A cash-on-delivery quote through supervisor and finance, waiting for the signature.
fn approved(w: &mut World) -> String {
    let id = quote(w, json!({"payment_terms": "cod"}));
    w.rt.approve("quote", &id, "m_zhao", None).unwrap();
    w.rt.approve("quote", &id, "m_qian", None).unwrap();
    id
}

#[test]
fn a_sign_link_signs_once_the_version_it_was_made_for() {
    use closeloop::ApprovalStatus;
    let mut w = quotes();
    let id = approved(&mut w);
    let link = w.rt.sign_link("quote", &id, "https://sign.example.com/", "m_li").unwrap();
    assert!(link.url.starts_with("https://sign.example.com/sign/") && link.url.ends_with(&link.token));
    // Forged: a changed byte in the MAC, or a made-up token.
    let mut forged = link.token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    assert!(matches!(w.rt.sign(&forged, "王总"), Err(EngineError::Refused(_))));
    assert!(w.rt.sign("deadbeef.00", "王总").is_err());
    // The valid one signs, once, and binds the version's hash.
    let signed = w.rt.sign(&link.url, "王总").unwrap();
    assert_eq!((signed.version, signed.version_hash.as_str()), (link.version, link.version_hash.as_str()));
    let quote = w.rt.get("quote", &id).unwrap();
    assert_eq!(quote.state.as_deref(), Some("signed"));
    assert!(quote.data["signed_at"].is_string());
    assert_eq!(w.rt.approval("quote", &id).unwrap().unwrap().status, ApprovalStatus::Signed);
    let reused = w.rt.sign(&link.token, "王总").unwrap_err().to_string();
    assert!(reused.contains("already used"), "{reused}");
    // After signing the quote is immutable.
    let change = w.rt.update("quote", &id, obj(json!({"valid_until": "2027-06-30"})), "m_li");
    assert!(change.unwrap_err().to_string().contains("can no longer change"));
}

#[test]
fn a_link_for_an_older_version_or_past_its_expiry_is_refused() {
    let mut w = quotes();
    let id = approved(&mut w);
    let old = w.rt.sign_link("quote", &id, "http://localhost:8080", "m_li").unwrap();
    // Editing the approved quote makes version N+1 and resets the chain.
    w.rt.update("quote", &id, obj(json!({"valid_until": "2027-01-31"})), "m_li").unwrap();
    let refused = w.rt.sign(&old.token, "王总").unwrap_err().to_string();
    assert!(refused.contains(&format!("made for version {}", old.version)), "{refused}");
    // Back in draft after the reset; approved again on the new version: a fresh link works
    // until it expires (7 days).
    w.rt.act("quote", &id, "submit", "m_li", Map::new()).unwrap();
    w.rt.approve("quote", &id, "m_zhao", None).unwrap();
    w.rt.approve("quote", &id, "m_qian", None).unwrap();
    let fresh = w.rt.sign_link("quote", &id, "http://localhost:8080", "m_li").unwrap();
    w.clock.advance(jiff::SignedDuration::from_hours(24 * 8));
    let expired = w.rt.sign(&fresh.token, "王总").unwrap_err().to_string();
    assert!(expired.contains("expired"), "{expired}");
    // Links are only made at the signature step.
    let draft = quote(&mut w, json!({"payment_terms": "cod"}));
    assert!(w.rt.sign_link("quote", &draft, "http://localhost:8080", "m_li").is_err());
}

#[test]
fn sign_link_writes_a_qr_code_as_svg_and_a_png_an_independent_decoder_reads() {
    let cli = crate::support::Cli::new("sign-qr", "2026-11-23T10:00:00+08:00");
    let run = |args: &[&str]| cli.ok(args);
    run(&["install", "quote-approval"]);
    run(&["members", "import", "app-templates/quote-approval/data/members.csv"]);
    run(&["import", "product", "app-templates/quote-approval/data/products.csv"]);
    run(&["import", "customer", "app-templates/quote-approval/data/customers.csv"]);
    let customers: Value = serde_json::from_str(&run(&["--format", "json", "list", "customer"])).unwrap();
    let customer = customers[0]["id"].as_str().unwrap().to_string();
    let data = json!({"customer": customer, "contact_phone": "13800138001", "owner": "m_li", "valid_until": "2026-12-31",
        "payment_terms": "cod", "lines": [{"sku": "CL-CRM-STD", "qty": 1, "unit_price": 12000.0}]});
    let created: Value = serde_json::from_str(&run(&[
        "--format",
        "json",
        "submit",
        "quote",
        "--as",
        "m_li",
        "--data",
        &data.to_string(),
    ]))
    .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    run(&["act", "quote", &id, "submit", "--as", "m_li"]);
    run(&["approve", "quote", &id, "--as", "m_zhao"]);
    run(&["approve", "quote", &id, "--as", "m_qian"]);
    let qr = cli.path("qr");
    let out = run(&[
        "sign-link",
        "quote",
        &id,
        "--as",
        "m_li",
        "--base",
        "https://sign.example.com",
        "--qr-dir",
        &qr.display().to_string(),
        "--terminal",
    ]);
    let url = out.lines().next().unwrap().to_string();
    assert!(url.starts_with("https://sign.example.com/sign/"), "{out}");
    assert!(out.contains('█') || out.contains('▀') || out.contains('▄'), "the terminal QR code: {out}");
    let svg = std::fs::read_to_string(qr.join(format!("{id}-sign.svg"))).unwrap();
    assert!(svg.contains("<svg") && svg.contains("</svg>"));
    // Python's zlib and struct read the PNG: chunk CRCs, the zlib stream, one byte per pixel.
    let png = qr.join(format!("{id}-sign.png"));
    let check = r#"
import struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n'
pos, idat, size = 8, b'', None
while pos < len(data):
    n, kind = struct.unpack('>I4s', data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    assert zlib.crc32(kind + body) == struct.unpack('>I', data[pos + 8 + n:pos + 12 + n])[0], kind
    if kind == b'IHDR': size = struct.unpack('>II', body[:8])
    if kind == b'IDAT': idat += body
    pos += 12 + n
raw = zlib.decompress(idat)
assert len(raw) == size[1] * (size[0] + 1), (len(raw), size)
print(size[0], raw.count(0))
"#;
    let out = std::process::Command::new("python3").args(["-c", check, &png.display().to_string()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    let mut parts = said.split_whitespace().map(|n| n.parse::<u64>().unwrap());
    let (side, dark) = (parts.next().unwrap(), parts.next().unwrap());
    assert!(side >= 200 && dark > side * 8, "a {side}px code with {dark} dark pixels");
    // The link from the command signs, once.
    let signed = run(&["sign", &url, "--name", "王总"]);
    assert!(signed.contains("signed by 王总"), "{signed}");
}

#[test]
fn an_approver_whose_role_was_revoked_is_refused_at_decision_time() {
    // A5.
    let mut w = quotes();
    let id = quote(&mut w, json!({"payment_terms": "cod"}));
    w.rt.approve("quote", &id, "m_zhao", None).unwrap();
    // m_qian leaves finance before deciding.
    w.rt.import_members(
        b"id,name,roles,region,manager,active,capacity\nm_qian,\xe9\x92\xb1\xe7\x90\xb3,sales_rep,,m_ma,true,0\n",
        "system",
    )
    .unwrap();
    let refused = w.rt.approve("quote", &id, "m_qian", None).unwrap_err().to_string();
    assert!(refused.contains("no longer qualifies"), "{refused}");
    w.rt.approve("quote", &id, "m_jiang", None).unwrap();
}

#[test]
fn racing_approvers_and_an_approve_against_a_reject_have_one_winner_each_audited() {
    // A1, A2: three finance approvers on an `any` step at once; then approve against reject.
    let cli = expenses("race-any", &EXPENSES.replace("mode: n_of_m, n: 2", "mode: any"));
    let (command, ok) = (|args: &[&str]| cli.command(args), |args: &[&str]| cli.ok(args));
    let count = |sql: &str, id: &str| cli.query(sql, &[id]);
    for round in 0..5 {
        let created: Value = serde_json::from_str(&ok(&[
            "--format",
            "json",
            "submit",
            "claim",
            "--as",
            "s1",
            "--data",
            r#"{"purpose":"差旅","owner":"s1"}"#,
        ]))
        .unwrap();
        let id = created["id"].as_str().unwrap().to_string();
        ok(&["act", "claim", &id, "submit", "--as", "s1"]);
        let decide = |who: &'static str, verb: &'static str| {
            let mut args = vec![verb, "claim", id.as_str(), "--as", who];
            if verb == "reject" {
                args.extend(["--comment", "不合规"]);
            }
            command(&args).output().unwrap()
        };
        let outcomes: Vec<std::process::Output> = if round % 2 == 0 {
            std::thread::scope(|s| {
                let hs: Vec<_> =
                    ["f1", "f2", "f3"].into_iter().map(|who| s.spawn(move || decide(who, "approve"))).collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            })
        } else {
            std::thread::scope(|s| {
                let a = s.spawn(|| decide("f1", "approve"));
                let b = s.spawn(|| decide("f2", "reject"));
                vec![a.join().unwrap(), b.join().unwrap()]
            })
        };
        let winners = outcomes.iter().filter(|o| o.status.success()).count();
        assert_eq!(winners, 1, "round {round}: exactly one decision wins");
        assert!(outcomes.iter().filter(|o| !o.status.success()).all(|o| o.status.code() == Some(1)));
        let sql_decisions =
            "SELECT COUNT(*) FROM approval_decisions d JOIN approvals a ON a.id = d.approval WHERE a.record = ?1";
        assert_eq!(count(sql_decisions, &id), 1, "round {round}: one transition");
        let refused = count("SELECT COUNT(*) FROM events WHERE kind = 'approval.refused' AND record = ?1", &id);
        assert_eq!(refused as usize, outcomes.len() - 1, "round {round}: every loser is audited");
    }
}

#[test]
fn a_link_from_another_installation_is_refused() {
    // L5: each installation signs with its own secret; a nonce it never issued is not valid.
    let (mut a, mut b) = (quotes(), quotes());
    let id_a = approved(&mut a);
    let id_b = approved(&mut b);
    assert_eq!(id_a, id_b, "the same quote number in both");
    let from_a = a.rt.sign_link("quote", &id_a, "http://localhost:8080", "m_li").unwrap();
    let from_b = b.rt.sign_link("quote", &id_b, "http://localhost:8080", "m_li").unwrap();
    let nonce_b = from_b.token.split('.').next().unwrap();
    let mac_a = from_a.token.split('.').nth(1).unwrap();
    assert!(b.rt.sign(&from_a.token, "王总").unwrap_err().to_string().contains("not valid"));
    assert!(b.rt.sign(&format!("{nonce_b}.{mac_a}"), "王总").unwrap_err().to_string().contains("not valid"));
    b.rt.sign(&from_b.token, "王总").unwrap();
}

/// A CJK font and pdftotext, which `.ci/run` installs (fonts-wqy-microhei, poppler-utils).
/// The Chinese font the PDF tests set text in; they also read PDFs with `pdftotext`. A missing
/// tool fails the test (never a skip): `.ci/run` installs both.
pub(crate) fn pdf_tools() -> Option<Vec<u8>> {
    let font = std::fs::read("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc").ok();
    let pdftotext = std::process::Command::new("pdftotext").arg("-v").output().is_ok();
    assert!(
        font.is_some() && pdftotext,
        "the PDF tests need fonts-wqy-microhei and poppler-utils: apt-get install fonts-wqy-microhei poppler-utils"
    );
    font
}

pub(crate) fn pdf_text(pdf: &[u8], name: &str) -> String {
    let path = std::env::temp_dir().join(format!("closeloop-{name}-{}.pdf", std::process::id()));
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdftotext").args([path.to_str().unwrap(), "-"]).output().unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_quote_pdf_shows_its_serial_customer_lines_and_total_and_once_signed_the_signature() {
    let font = pdf_tools().unwrap();
    let mut w = quotes();
    let id = approved(&mut w);
    let text = pdf_text(&w.rt.record_pdf("quote", &id, font.clone(), 0).unwrap(), "quote");
    for expected in
        [id.as_str(), "上海明远科技有限公司", "CL-CRM-STD", "CRM 标准版（年）", "22,000.00", "货到付款", "2026-12-31"]
    {
        assert!(text.contains(expected), "`{expected}` is not in the PDF:\n{text}");
    }
    assert!(!text.contains("13800138001"), "the signer's phone is sensitive and stays out");
    assert!(!text.contains("Floor price") && !text.contains("10000.0"), "the floor price is internal:\n{text}");
    // A document to send: money as money, the seller, and room for both seals.
    assert!(text.contains("¥22,000.00") && text.contains("卖方盖章") && text.contains("客户签章"), "{text}");
    assert!(!text.contains("卖方 / Seller"), "no seller block until ops set one:\n{text}");
    w.rt.set_seller("seller-name", "上海闭环科技有限公司", "m_ops").unwrap();
    w.rt.set_seller("seller-phone", "021-6000 8888", "m_ops").unwrap();
    assert!(w.rt.set_seller("seller-bank", "x", "m_ops").is_err(), "only the seller details closeloop prints");
    let link = w.rt.sign_link("quote", &id, "http://localhost:8080", "m_li").unwrap();
    w.rt.sign(&link.token, "王总").unwrap();
    let signed = pdf_text(&w.rt.record_pdf("quote", &id, font, 0).unwrap(), "signed");
    assert!(signed.contains("王总"), "{signed}");
    assert!(signed.contains("上海闭环科技有限公司") && signed.contains("021-6000 8888"), "the seller block:\n{signed}");
    // The signing time to the minute in the app's zone, never raw UTC.
    assert!(signed.contains("+08:00") && !signed.contains(".000000Z"), "{signed}");
    // pdftotext may break the 64-character hash across lines; compare without whitespace.
    let compact: String = signed.split_whitespace().collect();
    assert!(compact.contains(&link.version_hash), "the version hash is in the signature block:\n{signed}");
}

#[test]
fn the_chosen_clauses_are_printed_in_full_on_the_customer_s_pdf() {
    let font = pdf_tools().unwrap();
    let mut w = quotes();
    // The clause library, as the template's sample data has it.
    let t = closeloop::template("quote-approval").unwrap();
    let clauses = t.files.iter().find(|(p, _)| *p == "data/clauses.csv").unwrap().1.as_bytes();
    w.rt.import_csv("clause", clauses, &closeloop::ImportOptions::default(), &mut |_| {}).unwrap();
    let id = quote(&mut w, json!({"payment_terms": "cod", "clauses": ["c_warranty_ext", "c_penalty"]}));
    for approver in ["m_zhao", "m_qian", "m_han"] {
        let _ = w.rt.approve("quote", &id, approver, None);
    }
    let text = pdf_text(&w.rt.record_pdf("quote", &id, font, 0).unwrap(), "clauses");
    let compact: String = text.split_whitespace().collect();
    for (title, body) in [
        ("延长质保", "质保期由12个月延长至24个月。"),
        ("违约金条款", "任何一方违约应向守约方支付合同总额10%的违约金。"),
    ] {
        assert!(compact.contains(title) && compact.contains(body), "`{title}` in full:\n{text}");
    }
    assert!(!compact.contains("独家供货"), "a clause not chosen is not printed");
}
