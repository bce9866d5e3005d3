//! `/api/v1` through a real `closeloop serve` on 127.0.0.1: members sign in, and what each may
//! read and change is what the engine allows them (RELIABILITY P1, P2 over HTTP), with CSRF,
//! `If-Match`, token scopes, revocation, deactivation and the sign-in lockout.

use std::io::Write;
use std::process::Stdio;

use serde_json::{json, Value};

use crate::http::{request_with, Server};
use crate::support::Cli;

pub(crate) const PASSWORD: &str = "correct horse 电池 staple";

pub(crate) fn set_password(cli: &Cli, member: &str) {
    let mut child =
        cli.command(&["members", "password", member]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A signed-in member: the session cookie and the CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

fn sign_in(addr: &str, member: &str, password: &str) -> (u16, String, Value) {
    let body = json!({"member": member, "password": password}).to_string();
    let (status, head, body) = request_with(addr, "POST", "/api/v1/sign-in", None, "", &body);
    (status, head, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn session(addr: &str, member: &str) -> Session {
    let (status, head, body) = sign_in(addr, member, PASSWORD);
    assert_eq!(status, 200, "{head}\n{body}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: ").or_else(|| l.strip_prefix("Set-Cookie: ")))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(head.to_lowercase().contains("httponly") && head.contains("SameSite=Lax"), "{head}");
    Session { cookie, csrf: body["csrf"].as_str().unwrap().to_string() }
}

/// A request as a signed-in member (with the CSRF token unless `csrf` is false).
fn call(
    addr: &str,
    s: &Session,
    method: &str,
    path: &str,
    extra: &str,
    body: &str,
    csrf: bool,
) -> (u16, String, Value) {
    let token = if csrf { format!("X-CSRF-Token: {}\r\n", s.csrf) } else { String::new() };
    let headers = format!("Cookie: {}\r\n{token}{extra}", s.cookie);
    let (status, head, body) = request_with(addr, method, path, None, &headers, body);
    (status, head, serde_json::from_str(&body).unwrap_or(Value::Null))
}

pub(crate) fn leads(name: &str) -> Cli {
    let cli = Cli::new(name, "2026-11-30T10:00:00+08:00");
    cli.ok(&["install", "lead-followup"]);
    cli.ok(&["members", "import", "app-templates/lead-followup/data/members.csv"]);
    for m in ["m_li", "m_zhao", "m_sun", "m_ops"] {
        set_password(&cli, m);
    }
    cli
}

#[test]
fn a_rep_signs_in_creates_and_contacts_a_lead_and_cannot_reach_another_region_s() {
    let cli = leads("v1-rep");
    let south = cli.json(&[
        "submit",
        "lead",
        "--as",
        "m_ops",
        "--data",
        r#"{"source":"expo","customer":"南方客户","phone":"13900000002","region":"south"}"#,
    ])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let server = Server::start(&cli, "2", "16");
    let addr = server.addr.as_str();
    let li = session(addr, "m_li");
    let (status, _, apps) = call(addr, &li, "GET", "/api/v1/apps", "", "", true);
    assert_eq!((status, apps[0]["forms"][0]["id"].as_str()), (200, Some("lead")), "{apps}");
    let (_, _, form) = call(addr, &li, "GET", "/api/v1/forms/lead", "", "", true);
    assert!(form["actions"].as_array().unwrap().iter().any(|a| a["id"] == "contact"), "{form}");
    let data =
        json!({"source": "wechat_oa", "customer": "上海明远 <script>", "phone": "13800000001", "region": "east"});
    let (status, head, created) = call(addr, &li, "POST", "/api/v1/records/lead", "", &data.to_string(), true);
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["owner"], "m_li", "{created}");
    assert!(head.contains("etag: \"1\"") || head.contains("ETag: \"1\""), "{head}");
    let id = created["id"].as_str().unwrap().to_string();
    // Contacting it needs what the action requires, named per field.
    let (status, _, refused) =
        call(addr, &li, "POST", &format!("/api/v1/records/lead/{id}/actions/contact"), "", "{}", true);
    assert_eq!(status, 422, "{refused}");
    assert!(refused["problems"].to_string().contains("summary"), "{refused}");
    let done = json!({"summary": "电话沟通，需求明确", "next_step": "下周报价"}).to_string();
    let (status, _, contacted) =
        call(addr, &li, "POST", &format!("/api/v1/records/lead/{id}/actions/contact"), "", &done, true);
    assert_eq!((status, contacted["state"].as_str()), (200, Some("contacted")), "{contacted}");
    // Another region's lead does not exist for the rep, exactly as an unknown id does.
    let (status, _, other) = call(addr, &li, "GET", &format!("/api/v1/records/lead/{south}"), "", "", true);
    let (unknown_status, _, _) = call(addr, &li, "GET", "/api/v1/records/lead/LEAD-2026-99999", "", "", true);
    assert_eq!((status, unknown_status), (404, 404), "{other}");
    let patch = json!({"customer": "x"}).to_string();
    let (status, _, _) =
        call(addr, &li, "PATCH", &format!("/api/v1/records/lead/{south}"), "If-Match: \"1\"\r\n", &patch, true);
    assert_eq!(status, 404, "writing a record one may not read finds nothing");
    // Writing the owner is refused, naming the field.
    let owner = json!({"owner": "m_wang"}).to_string();
    let (status, _, refused) =
        call(addr, &li, "PATCH", &format!("/api/v1/records/lead/{id}"), "If-Match: \"2\"\r\n", &owner, true);
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["problems"][0]["field"], "owner", "{refused}");
    // A stale If-Match is a conflict; none at all is 428.
    let note = json!({"next_step": "周五报价"}).to_string();
    let (status, _, stale) =
        call(addr, &li, "PATCH", &format!("/api/v1/records/lead/{id}"), "If-Match: \"1\"\r\n", &note, true);
    assert_eq!(status, 409, "{stale}");
    let (status, _, _) = call(addr, &li, "PATCH", &format!("/api/v1/records/lead/{id}"), "", &note, true);
    assert_eq!(status, 428);
    let (status, head, fresh) =
        call(addr, &li, "PATCH", &format!("/api/v1/records/lead/{id}"), "If-Match: \"2\"\r\n", &note, true);
    assert_eq!(status, 200, "{fresh}");
    assert!(head.contains("\"3\""), "{head}");
    // A write without the CSRF token is refused, and changes nothing.
    let (status, _, csrf) =
        call(addr, &li, "PATCH", &format!("/api/v1/records/lead/{id}"), "If-Match: \"3\"\r\n", &patch, false);
    assert_eq!(status, 403, "{csrf}");
    assert_eq!(cli.json(&["get", "lead", &id])["version"], 3);
    // A body over the route's 256 KiB is refused whole (Y3).
    let big = json!({"customer": "客".repeat(100_000)}).to_string();
    assert_eq!(call(addr, &li, "POST", "/api/v1/records/lead", "", &big, true).0, 413);
    // The directory is for ops.
    let ops = session(addr, "m_ops");
    let (status, _, team) = call(addr, &ops, "GET", "/api/v1/members", "", "", true);
    assert_eq!(status, 200);
    assert!(team.as_array().unwrap().len() >= 10, "{team}");
    assert_eq!(call(addr, &li, "GET", "/api/v1/members", "", "", true).0, 403);
    // Supervisors list their own region only.
    let zhao = session(addr, "m_zhao");
    let (_, _, east) = call(addr, &zhao, "GET", "/api/v1/records/lead", "", "", true);
    let ids: Vec<&str> = east["items"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [id.as_str()], "{east}");
    let sun = session(addr, "m_sun");
    let (_, _, south_list) = call(addr, &sun, "GET", "/api/v1/records/lead", "", "", true);
    assert_eq!(south_list["items"].as_array().unwrap().len(), 1, "{south_list}");
    // Signed out, the session is gone.
    let (status, _, _) = call(addr, &li, "POST", "/api/v1/sign-out", "", "", true);
    assert_eq!(status, 200);
    let (status, _, _) = call(addr, &li, "GET", "/api/v1/me", "", "", true);
    assert_eq!(status, 401);
    // No secret in what the server logged or stored: the cookie's value is not in the database.
    let db = cli.contents();
    assert!(db.windows(4).any(|w| w == b"m_li"), "what is searched holds the members");
    let secret = li.cookie.split('=').nth(1).unwrap();
    assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()), "a session id is stored only as its digest");
}

#[test]
fn finance_sees_the_floor_price_that_the_rep_s_view_omits_and_tokens_stop_at_once() {
    let cli = Cli::new("v1-tokens", "2026-11-23T10:00:00+08:00");
    cli.ok(&["install", "quote-approval", "--with-sample-data"]);
    let data = json!({"customer": "C-0001", "contact_phone": "13800138001", "valid_until": "2026-12-31",
        "payment_terms": "cod", "lines": [{"sku": "CL-IMPL-DAY", "qty": 3, "unit_price": 1800.0}]});
    let id =
        cli.json(&["submit", "quote", "--as", "m_li", "--data", &data.to_string()])["id"].as_str().unwrap().to_string();
    let token = |name: &str, member: &str, scope: &str| -> String {
        cli.json(&["tokens", "create", name, "--as", member, "--scope", scope])["secret"].as_str().unwrap().to_string()
    };
    let (fin, rep, events) =
        (token("finance-view", "m_qian", "read"), token("rep-app", "m_li", "write"), token("shop", "m_li", "events"));
    let server = Server::start(&cli, "2", "16");
    let addr = server.addr.as_str();
    let get = |t: &str| {
        let (status, _, body) = request_with(addr, "GET", &format!("/api/v1/records/quote/{id}"), Some(t), "", "");
        (status, serde_json::from_str::<Value>(&body).unwrap_or(Value::Null))
    };
    let (status, finance) = get(&fin);
    assert_eq!(status, 200, "{finance}");
    assert_eq!(finance["data"]["lines"][0]["floor_price"], 2000.0, "{finance}");
    let (_, own) = get(&rep);
    assert!(own["data"]["lines"][0].get("floor_price").is_none() && own["data"].get("below_floor").is_none(), "{own}");
    // The form's definition the rep's client renders leaves the hidden field out too.
    let (_, _, def) = request_with(addr, "GET", "/api/v1/forms/quote", Some(&rep), "", "");
    assert!(!def.contains("below_floor") && def.contains("payment_terms"), "{def}");
    // A read token cannot write; an events token reaches nothing here.
    let (status, _, _) =
        request_with(addr, "POST", &format!("/api/v1/records/quote/{id}/actions/submit"), Some(&fin), "", "{}");
    assert_eq!(status, 403);
    assert_eq!(get(&events).0, 403);
    // Revoked, a token stops working at once; a deactivated member's token too.
    cli.ok(&["tokens", "revoke", "finance-view"]);
    assert_eq!(get(&fin).0, 401);
    std::fs::write(
        cli.path("gone.csv"),
        "id,name,roles,region,manager,active,capacity\nm_li,李伟,sales_rep,east,m_zhao,false,40\n",
    )
    .unwrap();
    cli.ok(&["members", "import", &cli.path("gone.csv").display().to_string()]);
    assert_eq!(get(&rep).0, 401);
    let listed = cli.ok(&["tokens", "list"]);
    assert!(listed.contains("finance-view") && listed.contains("revoked") && !listed.contains(&fin), "{listed}");
}

#[test]
fn ten_wrong_passwords_lock_the_account_and_the_lockout_is_in_the_audit_trail() {
    let cli = leads("v1-lockout");
    let server = Server::start(&cli, "2", "16");
    let addr = server.addr.as_str();
    for _ in 0..10 {
        let (status, _, body) = sign_in(addr, "m_li", "wrong password!");
        assert_eq!(status, 401, "{body}");
        assert!(body["detail"].as_str().unwrap().contains("wrong"), "{body}");
    }
    // Now even the right password waits.
    let (status, _, body) = sign_in(addr, "m_li", PASSWORD);
    assert_eq!(status, 429, "{body}");
    assert_eq!(cli.query("SELECT count(*) FROM events WHERE kind = 'member.locked' AND record = 'm_li'", &[]), 1);
    // An unknown member gets the same answer as a wrong password.
    let (status, _, unknown) = sign_in(addr, "nobody", PASSWORD);
    assert_eq!(status, 401);
    assert_eq!(unknown["detail"], sign_in(addr, "m_zhao", "wrong password!").2["detail"]);
    // Another member is not locked by it.
    assert_eq!(sign_in(addr, "m_zhao", PASSWORD).0, 200);
}

#[test]
fn a3_nobody_approves_their_own_quote_over_http_and_a_rejection_needs_a_comment() {
    let cli = Cli::new("v1-approvals", "2026-11-23T10:00:00+08:00");
    cli.ok(&["install", "quote-approval", "--with-sample-data"]);
    let token = |member: &str| -> String {
        cli.json(&["tokens", "create", member, "--as", member, "--scope", "write"])["secret"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (li, sup, fin) = (token("m_li"), token("m_zhao"), token("m_qian"));
    let server = Server::start(&cli, "2", "16");
    let addr = server.addr.as_str();
    let post = |t: &str, path: &str, body: &str| {
        let (status, _, answer) = request_with(addr, "POST", path, Some(t), "", body);
        (status, serde_json::from_str::<Value>(&answer).unwrap_or(Value::Null))
    };
    let data = json!({"customer": "C-0001", "contact_phone": "13800138001", "valid_until": "2026-12-31",
        "payment_terms": "cod", "lines": [{"sku": "CL-CRM-STD", "qty": 1}]});
    let (status, quote) = post(&li, "/api/v1/records/quote", &data.to_string());
    assert_eq!(status, 201, "{quote}");
    let id = quote["id"].as_str().unwrap();
    assert_eq!(post(&li, &format!("/api/v1/records/quote/{id}/actions/submit"), "{}").0, 200);
    // The rep may not approve their own quote, over HTTP as on every path.
    let (status, refused) = post(&li, &format!("/api/v1/approvals/quote/{id}/approve"), "{}");
    assert_eq!(status, 403, "{refused}");
    let (_, _, inbox) = request_with(addr, "GET", "/api/v1/approvals", Some(&sup), "", "");
    assert!(inbox.contains(id), "{inbox}");
    assert_eq!(post(&sup, &format!("/api/v1/approvals/quote/{id}/approve"), r#"{"comment":"同意"}"#).0, 200);
    // Finance's step: the supervisor who approved may not approve again.
    assert_eq!(post(&sup, &format!("/api/v1/approvals/quote/{id}/approve"), "{}").0, 403);
    let (_, _, finance_inbox) = request_with(addr, "GET", "/api/v1/approvals", Some(&fin), "", "");
    assert!(finance_inbox.contains("below_floor"), "finance's inbox shows the floor check: {finance_inbox}");
    let (status, no_comment) = post(&fin, &format!("/api/v1/approvals/quote/{id}/reject"), "{}");
    assert_eq!(status, 400, "{no_comment}");
    assert!(no_comment["detail"].as_str().unwrap().contains("comment"), "{no_comment}");
    assert_eq!(post(&fin, &format!("/api/v1/approvals/quote/{id}/reject"), r#"{"comment":"折扣过大"}"#).0, 200);
    assert_eq!(cli.json(&["get", "quote", id])["state"], "rejected");
    let refusals = cli.query("SELECT count(*) FROM events WHERE kind = 'approval.refused' AND record = ?1", &[id]);
    assert_eq!(refusals, 2, "each refusal is in the audit trail");
}

/// The OpenAPI document at `/api/v1/openapi.json`, generated from the routes, checked against a
/// live server by an independent tool (schemathesis, from `tests/requirements.txt`): no 5xx, and
/// every answer's status, content type and body as the document says. A missing tool fails.
#[test]
fn the_openapi_document_holds_against_the_live_server_as_schemathesis_sees_it() {
    let cli = Cli::new("v1-openapi", "2026-11-30T10:00:00+08:00");
    cli.ok(&["install", "lead-followup", "--with-sample-data"]);
    let token = cli.json(&["tokens", "create", "fuzz", "--as", "m_ops", "--scope", "write"])["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let server = Server::start(&cli, "2", "64");
    let (_, _, doc) = request_with(&server.addr, "GET", "/api/v1/openapi.json", None, "", "");
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["paths"]["/api/v1/records/{form}"]["get"]["parameters"][0]["schema"]["enum"], json!(["lead"]));
    let out = std::process::Command::new("schemathesis")
        .current_dir(cli.path(""))
        .args(["run", &format!("http://{}/api/v1/openapi.json", server.addr)])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["-n", "25", "--seed", "7", "--no-color"])
        .output()
        .unwrap_or_else(|e| panic!("schemathesis is needed (python3 -m pip install -r tests/requirements.txt): {e}"));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("passed"), "{said}");
}

#[test]
fn a_success_manager_works_their_tasks_and_a_director_reads_their_region_s_board_over_http() {
    let cli = Cli::new("v1-tasks", "2026-11-20T10:00:00+08:00");
    cli.ok(&["install", "customer-success"]);
    cli.ok(&["members", "import", "app-templates/customer-success/data/members.csv"]);
    cli.ok(&["import", "account", "app-templates/customer-success/data/accounts.csv"]);
    cli.ok(&[
        "event",
        "payment.received",
        "--data",
        r#"{"customer":"上海明远科技有限公司","amount":48000,"paid_at":"2026-11-20"}"#,
    ]);
    let token = |member: &str| -> String {
        cli.json(&["tokens", "create", member, "--as", member, "--scope", "write"])["secret"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (lin, gao, dir_e, dir_s) = (token("m_lin"), token("m_gao"), token("m_cao"), token("m_peng"));
    let server = Server::start(&cli, "2", "16");
    let addr = server.addr.as_str();
    let get = |t: &str, path: &str| -> (u16, Value) {
        let (status, _, body) = request_with(addr, "GET", path, Some(t), "", "");
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    };
    let (_, mine) = get(&lin, "/api/v1/tasks");
    assert_eq!(mine.as_array().unwrap().len(), 3, "{mine}");
    assert_eq!(get(&gao, "/api/v1/tasks").1.as_array().unwrap().len(), 0, "another manager's tasks are not theirs");
    assert_eq!(get(&lin, "/api/v1/tasks?overdue=true").1.as_array().unwrap().len(), 1);
    let first = mine[0]["id"].as_i64().unwrap();
    // Someone else may not complete it; its owner may, with the evidence the SOP asks for.
    let path = format!("/api/v1/tasks/{first}/done");
    assert_eq!(request_with(addr, "POST", &path, Some(&gao), "", r#"{"summary":"x"}"#).0, 403);
    assert_eq!(request_with(addr, "POST", &path, Some(&lin), "", "{}").0, 422, "the summary is required evidence");
    let (status, _, done) = request_with(addr, "POST", &path, Some(&lin), "", r#"{"summary":"客户满意，计划扩容"}"#);
    assert_eq!(status, 200, "{done}");
    assert_eq!(get(&lin, "/api/v1/tasks").1.as_array().unwrap().len(), 2);
    // The director's board holds only the accounts of their region they may read.
    let (status, east) = get(&dir_e, "/api/v1/boards/director");
    assert_eq!(status, 200, "{east}");
    let (_, south) = get(&dir_s, "/api/v1/boards/director");
    let all = cli.json(&["board", "director"]);
    assert_eq!(
        east.as_array().unwrap().len() + south.as_array().unwrap().len(),
        all.as_array().unwrap().len(),
        "{all}"
    );
    assert_eq!(get(&lin, "/api/v1/boards/director").0, 403, "a success manager holds no role the board is for");
}

#[test]
fn a_member_signs_in_with_a_one_time_link_sent_to_their_phone() {
    let cli = Cli::new("v1-link", "2026-11-30T10:00:00+08:00");
    cli.ok(&["install", "lead-followup"]);
    std::fs::write(
        cli.path("team.csv"),
        "id,name,roles,region,manager,active,capacity,phone\nm_li,李伟,sales_rep,east,,true,30,13800138000\n",
    )
    .unwrap();
    cli.ok(&["members", "import", &cli.path("team.csv").display().to_string()]);
    let server = Server::start_args(&cli, &["--public-url", "https://crm.example.com", "--max-per-client", "512"]);
    let addr = server.addr.as_str();
    let ask = |member: &str| {
        request_with(addr, "POST", "/api/v1/sign-in-link", None, "", &json!({"member": member}).to_string())
    };
    let (known, _, said) = ask("m_li");
    let (unknown, _, same) = ask("nobody");
    assert_eq!((known, unknown), (202, 202));
    assert_eq!(said, same, "the answer does not tell who exists");
    let outbox = cli.json(&["outbox"]);
    let sms: Vec<&Value> = outbox.as_array().unwrap().iter().filter(|m| m["message"] == "sign_in_link").collect();
    assert_eq!(sms.len(), 1, "{outbox}");
    assert_eq!((sms[0]["to"].as_str(), sms[0]["address"].as_str()), (Some("m_li"), Some("13800138000")));
    let body = sms[0]["body"].as_str().unwrap();
    let token = body.split("https://crm.example.com/sign-in/link?token=").nth(1).unwrap().trim();
    let redeem =
        || request_with(addr, "POST", "/api/v1/sign-in-link/redeem", None, "", &json!({"token": token}).to_string());
    let (status, head, answer) = redeem();
    assert_eq!(status, 200, "{answer}");
    assert!(head.contains("closeloop_session=") && answer.contains("m_li"), "{head}");
    assert_eq!(redeem().0, 401, "a link works once");
}

/// An upload over raw HTTP: the status, and the body.
fn upload(addr: &str, token: Option<&str>, bytes: &[u8], declared: Option<usize>) -> (u16, String) {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let length = declared.unwrap_or(bytes.len());
    let head = format!(
        "POST /api/v1/files HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: image/png\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(bytes);
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0), body.to_string())
}

#[test]
fn u1_evidence_files_are_sniffed_capped_and_kept_beside_the_database_not_in_it() {
    let cli = Cli::new("v1-upload", "2026-11-20T10:00:00+08:00");
    cli.ok(&["install", "customer-success"]);
    cli.ok(&["members", "import", "app-templates/customer-success/data/members.csv"]);
    cli.ok(&["import", "account", "app-templates/customer-success/data/accounts.csv"]);
    cli.ok(&[
        "event",
        "payment.received",
        "--data",
        r#"{"customer":"上海明远科技有限公司","amount":48000,"paid_at":"2026-11-20"}"#,
    ]);
    let lin = cli.json(&["tokens", "create", "lin", "--as", "m_lin", "--scope", "write"])["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let server = Server::start(&cli, "2", "16");
    let addr = server.addr.as_str();
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&[7u8; 4096]);
    assert_eq!(upload(addr, None, &png, None).0, 401, "who uploads is checked first");
    let (status, said) = upload(addr, Some(&lin), b"<html>not a photo</html>", None);
    assert_eq!(status, 415, "the first bytes decide, not the Content-Type: {said}");
    assert_eq!(upload(addr, Some(&lin), &png[..16], Some(11 * 1024 * 1024)).0, 413, "refused before the body is read");
    let (status, stored) = upload(addr, Some(&lin), &png, None);
    assert_eq!(status, 201, "{stored}");
    let stored: Value = serde_json::from_str(&stored).unwrap();
    let id = stored["id"].as_str().unwrap();
    assert!(id.ends_with(".png") && stored["type"] == "image/png", "{stored}");
    let file = cli.files_dir().join(id);
    assert_eq!(std::fs::read(&file).unwrap(), png, "kept whole, beside the database");
    let db = cli.contents();
    assert!(db.windows(5).any(|w| w == b"m_lin"), "what is searched holds the members");
    assert!(!db.windows(64).any(|w| w == &png[8..72]), "the file's bytes are not in the database");
    // The renewal talk needs a summary and an attachment: the upload's id, never a path.
    let tasks: Value = serde_json::from_str(&request_with(addr, "GET", "/api/v1/tasks", Some(&lin), "", "").2).unwrap();
    let renewal =
        tasks.as_array().unwrap().iter().find(|t| t["task"] == "renewal_talk").unwrap()["id"].as_i64().unwrap();
    let done = |attachment: &str| {
        let body = json!({"summary": "续约意向明确", "attachment": attachment}).to_string();
        request_with(addr, "POST", &format!("/api/v1/tasks/{renewal}/done"), Some(&lin), "", &body)
    };
    assert_eq!(done("../../../etc/passwd").0, 422);
    let (status, _, answer) = done(id);
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn a_member_s_events_token_posts_events_as_that_member_and_a_read_token_may_not() {
    let cli = Cli::new("v1-events", "2026-11-20T10:00:00+08:00");
    cli.ok(&["install", "customer-success"]);
    cli.ok(&["members", "import", "app-templates/customer-success/data/members.csv"]);
    cli.ok(&["import", "account", "app-templates/customer-success/data/accounts.csv"]);
    let token = |name: &str, member: &str, scope: &str| -> String {
        cli.json(&["tokens", "create", name, "--as", member, "--scope", scope])["secret"].as_str().unwrap().to_string()
    };
    let (erp, reader) = (token("erp", "m_qian", "events"), token("viewer", "m_lin", "read"));
    let server = Server::start(&cli, "2", "16");
    let payment = r#"{"customer":"上海明远科技有限公司","amount":48000,"paid_at":"2026-11-20"}"#;
    let post = |t: &str| request_with(&server.addr, "POST", "/api/events/payment.received", Some(t), "", payment).0;
    assert_eq!(post(&reader), 403);
    assert_eq!(post("cl_not-a-token"), 401);
    assert_eq!(post(&erp), 200);
    assert_eq!(cli.query("SELECT count(*) FROM events WHERE kind = 'event.received' AND actor = 'm_qian'", &[]), 1);
    cli.ok(&["tokens", "revoke", "erp"]);
    assert_eq!(post(&erp), 401, "revoked at once");
}

/// The cursor counts rows read, readable or not: paging one record at a time through a form
/// where every other record is another region's finds each of the member's, skipping none.
#[test]
fn paging_by_cursor_skips_no_record_the_member_may_read() {
    let cli = leads("v1-cursor");
    for i in 0..6 {
        let region = if i % 2 == 0 { "east" } else { "south" };
        let data = json!({"source": "expo", "customer": format!("客户{i}"), "phone": format!("1390000000{i}"), "region": region});
        cli.ok(&["submit", "lead", "--as", "m_ops", "--data", &data.to_string()]);
    }
    let server = Server::start(&cli, "2", "16");
    let sun = session(&server.addr, "m_sun");
    let mut seen = Vec::new();
    let mut cursor = Some("0".to_string());
    while let Some(c) = cursor {
        let (status, _, page) =
            call(&server.addr, &sun, "GET", &format!("/api/v1/records/lead?limit=1&cursor={c}"), "", "", true);
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["items"].as_array().unwrap().iter().map(|r| r["data"]["region"].as_str().unwrap().to_string()),
        );
        cursor = page["next_cursor"].as_str().map(str::to_string);
        assert!(seen.len() <= 6, "the paging ends");
    }
    assert_eq!(seen, ["south", "south", "south"]);
}
