//! Pages in a real browser: Debian's Chromium driven through chromedriver (WebDriver, spoken
//! over HTTP/1.1 on loopback), at a phone's 390×844 viewport. A missing browser or driver fails
//! the test: `.ci/run` installs `chromium` and `chromium-driver`. Each test saves a screenshot
//! under `target/screenshots/`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http::{request_with, Server};
use crate::support::Cli;

/// A chromedriver process and one headless Chromium session.
pub(crate) struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

impl Browser {
    pub(crate) fn start() -> Browser {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("chromedriver is needed (apt-get install chromium chromium-driver): {e}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut b = Browser { driver, port, session: String::new() };
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=390,844", "--lang=zh-CN"],
            "prefs": {"intl.accept_languages": "zh-CN,zh"}}}}});
        let answer = b.call("POST", "/session", Some(caps));
        b.session = answer["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {answer}")).to_string();
        b
    }

    /// One WebDriver command; its `value`.
    pub(crate) fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut length = None;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse::<usize>().ok();
                }
            }
        }
        let mut text = Vec::new();
        match length {
            Some(n) => {
                text.resize(n, 0);
                reader.read_exact(&mut text).unwrap();
            }
            None => {
                reader.read_to_end(&mut text).unwrap();
            }
        }
        let v: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
        v["value"].clone()
    }

    pub(crate) fn at(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    pub(crate) fn open(&self, url: &str) {
        self.call("POST", &self.at("/url"), Some(json!({"url": url})));
    }

    pub(crate) fn find(&self, css: &str) -> String {
        let v = self.call("POST", &self.at("/element"), Some(json!({"using": "css selector", "value": css})));
        assert!(v.get("error").is_none(), "no element `{css}`: {v}");
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element `{css}`: {v}"))
            .to_string()
    }

    pub(crate) fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.call("POST", &self.at(&format!("/element/{e}/value")), Some(json!({"text": text})));
    }

    pub(crate) fn click(&self, css: &str) {
        let e = self.find(css);
        self.call("POST", &self.at(&format!("/element/{e}/click")), Some(json!({})));
    }

    /// Clicks a button that submits a form, and waits for the page it leads to.
    pub(crate) fn submit(&self, css: &str) {
        self.script("window.__closeloopOld = true; return 1;");
        self.click(css);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.script("return window.__closeloopOld === true && document.readyState !== 'loading'") == json!(true)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        while self.script("return document.readyState") != json!("complete") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The page's visible text.
    pub(crate) fn text(&self) -> String {
        let text = self.script("return document.body ? document.body.innerText : ''");
        text.as_str().unwrap_or_default().to_string()
    }

    /// The page's text once it holds `needle` (a page still loading after a click holds
    /// nothing yet); fails after 20 s with what it held.
    pub(crate) fn text_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.text();
            if text.contains(needle) || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// An alert's text, if a script managed to open one.
    pub(crate) fn alert(&self) -> Option<String> {
        self.call("GET", &self.at("/alert/text"), None).as_str().map(str::to_string)
    }

    /// Runs a script in the page (WebDriver's own, not subject to the page's CSP).
    pub(crate) fn script(&self, script: &str) -> Value {
        self.call("POST", &self.at("/execute/sync"), Some(json!({"script": script, "args": []})))
    }

    /// The serious and critical accessibility violations axe-core (from npm, `tests/a11y`) finds
    /// on the page: each rule's id, what it asks, and the elements.
    pub(crate) fn axe(&self) -> Vec<Value> {
        let path = crate::support::root().join("tests/a11y/node_modules/axe-core/axe.min.js");
        let source = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("axe-core is needed for the accessibility check (npm ci --prefix tests/a11y): {e}")
        });
        self.script(&format!("{source}; return true;"));
        assert_eq!(self.script("return typeof axe.run"), json!("function"), "axe-core is loaded in the page");
        let run = "const done = arguments[arguments.length - 1];
            axe.run(document, {resultTypes: ['violations']})
              .then(r => done(r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                .map(v => ({id: v.id, help: v.help, nodes: v.nodes.map(n => n.html)}))))
              .catch(e => done([{id: 'axe-failed', help: String(e)}]));";
        let found = self.call("POST", &self.at("/execute/async"), Some(json!({"script": run, "args": []})));
        found.as_array().cloned().unwrap_or_else(|| panic!("axe did not answer: {found}"))
    }

    /// Saves a screenshot as `target/screenshots/NAME.png`; returns its path.
    pub(crate) fn screenshot(&self, name: &str) -> std::path::PathBuf {
        let b64 = self.call("GET", &self.at("/screenshot"), None);
        let png = decode_base64(b64.as_str().unwrap_or_default());
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        let dir = crate::support::root().join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let digits: Vec<u8> = text.bytes().filter_map(value).collect();
    digits
        .chunks(4)
        .flat_map(|c| {
            let n = c.iter().fold(0u32, |n, d| (n << 6) | u32::from(*d)) << (6 * (4 - c.len()));
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            bytes.into_iter().take(c.len().saturating_sub(1))
        })
        .collect()
}

/// A quote for a customer whose name is hostile markup, approved and waiting for its signature,
/// with a link made on the system clock (the server keeps real time).
fn quote_at_signature(cli: &Cli) -> (String, String) {
    cli.ok(&["install", "quote-approval", "--with-sample-data"]);
    let hostile = r#"<script>alert(1)</script>"><img src=x onerror=alert(2)>明远"#;
    cli.ok(&[
        "submit",
        "customer",
        "--as",
        "m_li",
        "--data",
        &json!({"code": "C-9001", "name": hostile, "region": "east"}).to_string(),
    ]);
    let customer = "C-9001";
    let data = json!({"customer": customer, "contact_phone": "13800138001", "valid_until": "2027-12-31",
        "payment_terms": "cod", "lines": [{"sku": "CL-CRM-STD", "qty": 2}, {"sku": "CL-IMPL-DAY", "qty": 3, "unit_price": 1800.0}]});
    let id =
        cli.json(&["submit", "quote", "--as", "m_li", "--data", &data.to_string()])["id"].as_str().unwrap().to_string();
    cli.ok(&["act", "quote", &id, "submit", "--as", "m_li"]);
    cli.ok(&["approve", "quote", &id, "--as", "m_zhao"]);
    cli.ok(&["approve", "quote", &id, "--as", "m_qian"]);
    let qr = cli.path("qr").display().to_string();
    let link = cli.json(&["sign-link", "quote", &id, "--as", "m_li", "--qr-dir", &qr]);
    (id, link["link"]["token"].as_str().unwrap().to_string())
}

#[test]
fn the_customer_opens_the_link_on_a_phone_signs_and_downloads_the_signed_pdf() {
    let font = crate::approvals::pdf_tools();
    assert!(font.is_some());
    let cli = Cli::system_clock("browser-sign");
    let (id, token) = quote_at_signature(&cli);
    let server = Server::start(&cli, "2", "16");
    let browser = Browser::start();
    let url = format!("http://{}/sign/{token}", server.addr);
    browser.open(&url);
    let page = browser.text_with(&id);
    browser.screenshot("sign-open");
    assert_eq!(browser.axe(), Vec::<Value>::new(), "the signing page has no serious accessibility problem");
    assert!(page.contains(&id) && page.contains("29,400.00") && page.contains("李伟"), "{page}");
    // What the customer sees carries no floor price, risk grade, internal summary or member id.
    for internal in ["底价", "Floor", "10,000.00", "风险", "Risk", "m_li", "CUSTOMER-0"] {
        assert!(!page.contains(internal), "`{internal}` is internal:\n{page}");
    }
    // The hostile name is shown as text, and nothing ran.
    assert!(page.contains("<script>alert(1)</script>\"><img src=x onerror=alert(2)>明远"), "{page}");
    assert_eq!(browser.alert(), None, "no script ran");
    assert_eq!(browser.script("return document.querySelectorAll('img').length"), json!(0));
    // Signing without the box ticked is refused by the page itself (required), so tick it.
    browser.type_into("#name", "王总");
    browser.click("input[name=agree]");
    browser.submit("main button[type=submit]");
    let signed = browser.text_with("已签署");
    browser.screenshot("sign-done");
    assert!(signed.contains("已签署") && signed.contains("王总"), "{signed}");
    // The signed PDF carries the serial number and the signer.
    let (head, pdf) = fetch_bytes(&server.addr, &format!("/sign/{token}/pdf"));
    assert!(head.starts_with("HTTP/1.1 200") && head.contains("application/pdf"), "{head}");
    let text = crate::approvals::pdf_text(&pdf, "browser-signed");
    assert!(text.contains(&id) && text.contains("王总"), "{text}");
    // The link works once: signed, it only shows what was signed.
    browser.open(&url);
    assert!(!browser.text_with("已签署").contains("签署 / Sign\n"), "no second signature form");
    assert_eq!(cli.json(&["get", "quote", &id])["state"], "signed");
}

#[test]
fn forged_used_and_unknown_links_get_clear_pages_that_tell_nothing_and_the_headers_forbid_scripts_and_frames() {
    let cli = Cli::system_clock("browser-links");
    let (_, token) = quote_at_signature(&cli);
    let server = Server::start(&cli, "2", "16");
    let (nonce, mac) = token.split_once('.').unwrap();
    let forged = format!("{nonce}.{}", "0".repeat(mac.len()));
    let unknown = format!("{}.{mac}", "f".repeat(nonce.len()));
    let get = |t: &str| request_with(&server.addr, "GET", &format!("/sign/{t}"), None, "", "");
    let (a, _, forged_page) = get(&forged);
    let (b, _, unknown_page) = get(&unknown);
    assert_eq!((a, b), (404, 404));
    assert_eq!(forged_page, unknown_page, "a forged token and an unknown one look the same");
    let (_, head, _) = get(&token);
    let head = head.to_lowercase();
    assert!(
        head.contains("content-security-policy: default-src 'none'") && head.contains("frame-ancestors 'none'"),
        "{head}"
    );
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    let browser = Browser::start();
    browser.open(&format!("http://{}/sign/{forged}", server.addr));
    let shown = browser.text_with("链接无效");
    browser.screenshot("sign-invalid");
    assert!(shown.contains("链接无效"), "{shown}");
}

/// A GET whose body may be binary: the head, and the body.
fn fetch_bytes(addr: &str, path: &str) -> (String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut all = Vec::new();
    stream.read_to_end(&mut all).unwrap();
    let at = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body = all.split_off(at);
    (String::from_utf8_lossy(&all).into_owned(), body)
}

#[test]
fn a_rep_signs_in_on_a_phone_creates_a_lead_sees_it_assigned_and_marks_it_contacted() {
    let cli = Cli::system_clock("browser-rep");
    cli.ok(&["install", "lead-followup"]);
    cli.ok(&["members", "import", "app-templates/lead-followup/data/members.csv"]);
    crate::api_v1::set_password(&cli, "m_li");
    let server = Server::start(&cli, "2", "16");
    let base = format!("http://{}", server.addr);
    let browser = Browser::start();
    // Not signed in: the work page sends the rep to sign in.
    browser.open(&format!("{base}/"));
    let text = browser.text_with("登录");
    assert!(text.contains("登录"), "{text}");
    browser.type_into("#member", "m_li");
    browser.type_into("#password", "wrong password!");
    browser.submit("main button[type=submit]");
    let text = browser.text_with("成员编号或密码错误");
    assert!(text.contains("成员编号或密码错误"), "{text}");
    browser.type_into("#password", crate::api_v1::PASSWORD);
    browser.submit("main button[type=submit]");
    let text = browser.text_with("我的工作");
    assert!(text.contains("我的工作"), "{text}");
    // A new lead: five things typed; a phone number that is not one is named, and what was
    // typed is kept.
    browser.open(&format!("{base}/r/lead/new"));
    browser.click("#f-source option[value=wechat_oa]");
    browser.type_into("#f-customer", "上海明远 <b>科技</b>");
    browser.type_into("#f-phone", "12345");
    browser.click("#f-region option[value=east]");
    browser.type_into("#f-next_step", "周五前电话沟通");
    browser.screenshot("rep-new-lead");
    assert_eq!(browser.axe(), Vec::<Value>::new(), "the new-record form");
    browser.submit("main .buttons button[value=save]");
    let refused = browser.text_with("请修改标出的内容");
    assert!(refused.contains("联系人电话") && refused.contains("请修改标出的内容"), "{refused}");
    assert!(refused.contains("格式不符合要求：11 位手机号"), "named in the rep's language: {refused}");
    assert_eq!(browser.script("return document.querySelector('#f-customer').value"), json!("上海明远 <b>科技</b>"));
    let phone = browser.find("#f-phone");
    browser.call("POST", &browser.at(&format!("/element/{phone}/clear")), Some(json!({})));
    browser.type_into("#f-phone", "13800138000");
    browser.submit("main .buttons button[value=save]");
    let record = browser.text_with("新线索");
    browser.screenshot("rep-lead-created");
    assert_eq!(browser.axe(), Vec::<Value>::new(), "the record page");
    assert!(
        record.contains("上海明远 <b>科技</b>") && record.contains("李伟") && record.contains("新线索"),
        "{record}"
    );
    // What automations did: the assignment and the message to the rep.
    assert!(record.contains("自动处理") && record.contains("assign_new_lead"), "{record}");
    assert!(record.contains("assign: ") && record.contains("notify: "), "{record}");
    browser.script("window.scrollTo(0, document.body.scrollHeight); return 1;");
    browser.screenshot("rep-lead-activity");
    // 已联系 needs its summary; given, the lead is contacted.
    browser.type_into("#f-summary", "已电话沟通，客户有意向");
    browser.submit("main section.action button[type=submit]");
    let contacted = browser.text_with("已电话沟通");
    browser.screenshot("rep-lead-contacted");
    assert!(contacted.contains("已联系") && contacted.contains("已电话沟通"), "{contacted}");
    let id = cli.json(&["list", "lead"])[0]["id"].as_str().unwrap().to_string();
    assert_eq!(cli.json(&["get", "lead", &id])["state"], "contacted");
    // The form's list page holds it, a page at a time.
    browser.open(&format!("{base}/r/lead"));
    let list = browser.text_with(&id);
    assert!(list.contains("上海明远 <b>科技</b>") && list.contains("李伟"), "{list}");
    assert_eq!(browser.axe(), Vec::<Value>::new(), "the list page");
    // My work lists nothing new now: the lead is contacted, not new, but still open.
    browser.open(&format!("{base}/"));
    let work = browser.text_with(&id);
    browser.screenshot("rep-my-work");
    assert_eq!(browser.axe(), Vec::<Value>::new(), "my work");
    assert!(work.contains(&id), "{work}");
    // Contacted, the lead's 24-hour escalation will be skipped: it is no deadline any more.
    assert!(!work.contains("还剩") && !work.contains("已超时"), "a skipped timer is no deadline: {work}");
}

#[test]
fn a_page_form_posted_without_its_csrf_token_is_refused_and_changes_nothing() {
    let cli = Cli::system_clock("browser-csrf");
    cli.ok(&["install", "lead-followup"]);
    cli.ok(&["members", "import", "app-templates/lead-followup/data/members.csv"]);
    crate::api_v1::set_password(&cli, "m_li");
    let server = Server::start(&cli, "2", "16");
    let (_, head, _) = request_with(
        &server.addr,
        "POST",
        "/sign-in",
        None,
        "Content-Type: application/x-www-form-urlencoded\r\n",
        &format!("member=m_li&password={}", crate::api_v1::PASSWORD.replace(' ', "+")),
    );
    let cookies: Vec<String> = head
        .lines()
        .filter_map(|l| l.strip_prefix("set-cookie: "))
        .map(|c| c.split(';').next().unwrap().to_string())
        .collect();
    assert_eq!(cookies.len(), 2, "{head}");
    let cookie = format!("Cookie: {}\r\n", cookies.join("; "));
    let body = "source=expo&customer=x&phone=13800138000&region=east";
    let (status, _, _) = request_with(&server.addr, "POST", "/r/lead/new", None, &cookie, body);
    assert_eq!(status, 403, "no csrf field");
    let (status, _, _) =
        request_with(&server.addr, "POST", "/r/lead/new", None, &cookie, &format!("{body}&csrf=forged"));
    assert_eq!(status, 403, "a wrong csrf field");
    assert_eq!(cli.json(&["list", "lead"]).as_array().unwrap().len(), 0, "nothing was written");
}

#[test]
fn a_member_opens_the_sign_in_link_from_their_sms_and_its_button_signs_them_in_once() {
    let cli = Cli::system_clock("browser-link");
    cli.ok(&["install", "lead-followup"]);
    std::fs::write(
        cli.path("team.csv"),
        "id,name,roles,region,manager,active,capacity,phone\nm_li,李伟,sales_rep,east,,true,30,13800138000\n",
    )
    .unwrap();
    cli.ok(&["members", "import", &cli.path("team.csv").display().to_string()]);
    let server = Server::start_args(&cli, &["--public-url", "http://example.invalid", "--max-per-client", "512"]);
    let (status, _, _) = request_with(&server.addr, "POST", "/api/v1/sign-in-link", None, "", r#"{"member":"m_li"}"#);
    assert_eq!(status, 202);
    let outbox = cli.json(&["outbox"]);
    let body = outbox[0]["body"].as_str().unwrap();
    let path = body.split("http://example.invalid").nth(1).unwrap().trim();
    let browser = Browser::start();
    browser.open(&format!("http://{}{path}", server.addr));
    // Opening the link uses nothing: a preview in a chat would only see this page.
    browser.open(&format!("http://{}{path}", server.addr));
    browser.text_with("登录");
    browser.submit("main button[type=submit]");
    let work = browser.text_with("我的工作");
    browser.screenshot("link-signed-in");
    assert!(work.contains("我的工作") && work.contains("李伟"), "{work}");
    // The link worked once.
    let again = Browser::start();
    again.open(&format!("http://{}{path}", server.addr));
    again.submit("main button[type=submit]");
    assert!(again.text_with("失效").contains("登录链接已失效"));
}

/// Signs `member` in through the page.
fn sign_in(browser: &Browser, base: &str, member: &str) {
    browser.open(&format!("{base}/sign-in"));
    browser.text_with("登录");
    browser.type_into("#member", member);
    browser.type_into("#password", crate::api_v1::PASSWORD);
    browser.submit("main button[type=submit]");
    browser.text_with("我的工作");
}

#[test]
fn a_supervisor_sees_the_uncontacted_lead_turn_red_on_the_board_after_24_hours() {
    let cli = Cli::system_clock("browser-board");
    cli.ok(&["install", "lead-followup"]);
    cli.ok(&["members", "import", "app-templates/lead-followup/data/members.csv"]);
    for m in ["m_zhao", "m_li"] {
        crate::api_v1::set_password(&cli, m);
    }
    let data = r#"{"source":"expo","customer":"苏州恒通","phone":"13900000009","region":"east"}"#;
    let id = cli.json(&["submit", "lead", "--as", "m_ops", "--data", data])["id"].as_str().unwrap().to_string();
    // The clock passes 24 hours: the escalation fires.
    let later = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(25)).to_string();
    cli.ok_at(Some(&later), &["tick"]);
    let server = Server::start(&cli, "2", "16");
    let base = format!("http://{}", server.addr);
    let browser = Browser::start();
    sign_in(&browser, &base, "m_zhao");
    browser.open(&format!("{base}/boards/supervisor"));
    let board = browser.text_with(&id);
    browser.screenshot("supervisor-board");
    assert!(board.contains("苏州恒通") && board.contains("24 小时未联系"), "{board}");
    assert_eq!(
        browser.script("return getComputedStyle(document.querySelector('.card.overdue')).borderLeftColor"),
        json!("rgb(164, 14, 38)"),
        "red"
    );
    assert_eq!(browser.axe(), Vec::<Value>::new(), "the board");
    // The rep whose lead it is sees it red at the top of their work.
    let rep = Browser::start();
    let owner = cli.json(&["get", "lead", &id])["owner"].as_str().unwrap().to_string();
    assert_eq!(owner, "m_li", "the east rep with the least load");
    sign_in(&rep, &base, "m_li");
    let work = rep.text_with(&id);
    assert!(work.contains("24 小时未联系"), "{work}");
}

#[test]
fn supervisor_finance_and_legal_approve_a_prepaid_quote_and_legal_reads_the_risk_summary() {
    let cli = Cli::system_clock("browser-approvals");
    cli.ok(&["install", "quote-approval", "--with-sample-data"]);
    for m in ["m_zhao", "m_qian", "m_han"] {
        crate::api_v1::set_password(&cli, m);
    }
    let data = json!({"customer": "C-0001", "contact_phone": "13800138001", "valid_until": "2027-12-31",
        "payment_terms": "prepay", "prepay_percent": 60, "lines": [{"sku": "CL-CRM-STD", "qty": 2, "unit_price": 9000.0}]});
    let id =
        cli.json(&["submit", "quote", "--as", "m_li", "--data", &data.to_string()])["id"].as_str().unwrap().to_string();
    cli.ok(&["act", "quote", &id, "submit", "--as", "m_li"]);
    let server = Server::start(&cli, "2", "16");
    let base = format!("http://{}", server.addr);
    for (member, step) in [("m_zhao", "销售主管审批"), ("m_qian", "财务价格审核"), ("m_han", "法务审核")]
    {
        let browser = Browser::start();
        sign_in(&browser, &base, member);
        browser.open(&format!("{base}/approvals"));
        let inbox = browser.text_with(step);
        assert!(inbox.contains(&id), "{member}: {inbox}");
        // Finance sees the lines below the floor; the supervisor may not read them.
        let floor = inbox.contains("低于底价的明细") && inbox.contains("CL-CRM-STD 9,000.00 < 10,000.00");
        assert_eq!(floor, member == "m_qian", "{member}: {inbox}");
        if member == "m_han" {
            assert!(
                inbox.contains("风险摘要") && inbox.contains("预付比例超过 50%"),
                "legal reads the summary: {inbox}"
            );
            browser.screenshot("legal-inbox");
            assert_eq!(browser.axe(), Vec::<Value>::new(), "the approvals inbox");
            // A rejection without a comment is refused and named; then legal approves.
            browser.submit("main button[value=reject]");
            assert!(browser.text_with("comment").contains("comment"));
        }
        browser.submit("main button[value=approve]");
        browser.text_with("审批");
    }
    // Every approver step decided: the quote waits for the customer's signature.
    assert_eq!(cli.json(&["get", "quote", &id])["state"], "approved");
    let trail = cli.ok(&["activity", "quote", &id]);
    assert!(trail.contains("m_han") && !trail.contains("approval.refused"), "{trail}");
}

#[test]
fn messages_link_to_the_record_s_page_once_ops_set_the_public_address() {
    let cli = Cli::new("page-links", "2026-11-30T10:00:00+08:00");
    cli.ok(&["install", "lead-followup"]);
    cli.ok(&["members", "import", "app-templates/lead-followup/data/members.csv"]);
    let data = r#"{"source":"expo","customer":"无锡远航","phone":"13900000001","region":"east"}"#;
    cli.ok(&["submit", "lead", "--as", "m_ops", "--data", data]);
    let first = cli.json(&["outbox"])[0]["body"].as_str().unwrap().to_string();
    assert!(!first.contains("http"), "no address set, no link: {first}");
    let (_, said) = cli.fails(&["settings", "set", "public-url", "crm.example.com"]);
    assert!(said.contains("http(s) URL"), "{said}");
    cli.ok(&["settings", "set", "public-url", "https://crm.example.com/"]);
    let id = cli.json(&["submit", "lead", "--as", "m_ops", "--data", &data.replace("13900000001", "13900000002")])
        ["id"]
        .as_str()
        .unwrap()
        .to_string();
    let outbox = cli.json(&["outbox"]);
    let body = outbox.as_array().unwrap().iter().find(|m| m["record"] == id.as_str()).unwrap()["body"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(body.contains(&format!("https://crm.example.com/r/lead/{id}")), "{body}");
}

#[test]
fn an_ops_person_uploads_an_app_with_a_misspelt_key_sees_the_located_diagnostic_and_installs_the_fix() {
    let cli = Cli::system_clock("browser-ops");
    cli.ok(&["install", "lead-followup"]);
    cli.ok(&["members", "import", "app-templates/lead-followup/data/members.csv"]);
    for m in ["m_ops", "m_li"] {
        crate::api_v1::set_password(&cli, m);
    }
    let server = Server::start(&cli, "2", "16");
    let base = format!("http://{}", server.addr);
    let rep = Browser::start();
    sign_in(&rep, &base, "m_li");
    rep.open(&format!("{base}/ops"));
    assert!(rep.text_with("ops").contains("ops"), "a rep is refused the ops pages");
    let browser = Browser::start();
    sign_in(&browser, &base, "m_ops");
    browser.open(&format!("{base}/ops"));
    assert!(browser.text_with("lead-followup").contains("lead-followup"));
    let broken =
        "app: {id: visits, title: 拜访记录}\nforms:\n  - id: visit\n    feilds:\n      - {id: customer, type: text}\n";
    browser.type_into("#app_yaml", broken);
    browser.submit("main button[value=validate]");
    let said = browser.text_with("错误[");
    browser.screenshot("ops-diagnostic");
    // In the page's language (Chinese), with the code and position the CLI prints.
    assert!(said.contains("app.yaml:4:5: 错误[UNKNOWN_KEY]: `forms[0]` 里有未知的键 \"feilds\""), "{said}");
    assert!(said.contains("= 建议：是不是 `fields`？"), "the help names the key meant: {said}");
    assert_eq!(browser.axe(), Vec::<Value>::new(), "the ops page");
    // What was typed is kept; fixed, it installs.
    let kept = browser.script("return document.querySelector('#app_yaml').value");
    assert_eq!(kept.as_str().unwrap().trim_end(), broken.trim_end());
    let area = browser.find("#app_yaml");
    browser.call("POST", &browser.at(&format!("/element/{area}/clear")), Some(json!({})));
    browser.type_into("#app_yaml", &broken.replace("feilds", "fields"));
    browser.submit("main button[value=install]");
    let installed = browser.text_with("已安装 visits");
    assert!(installed.contains("已安装 visits 第 1 版"), "{installed}");
    assert!(cli.json(&["list", "visit"]).as_array().unwrap().is_empty(), "the form exists");
}

#[test]
fn a_csm_completes_a_task_card_with_a_photo_and_the_director_reads_the_team_in_the_language_he_chose() {
    let cli = Cli::system_clock("browser-task");
    cli.ok(&["install", "customer-success", "--with-sample-data"]);
    for m in ["m_lin", "m_cao"] {
        crate::api_v1::set_password(&cli, m);
    }
    let paid = r#"{"customer":"上海明远科技有限公司","amount":48000,"paid_at":"2026-11-20"}"#;
    cli.ok(&["event", "payment.received", "--key", "erp-0042", "--data", paid]);
    let tasks = cli.json(&["tasks", "--as", "m_lin"]);
    let call = tasks.as_array().unwrap().iter().find(|t| t["task"] == "satisfaction_call").unwrap().clone();
    let (task, record) = (call["id"].as_i64().unwrap(), call["record"].as_str().unwrap().to_string());
    let server = Server::start(&cli, "2", "16");
    let base = format!("http://{}", server.addr);
    let csm = Browser::start();
    sign_in(&csm, &base, "m_lin");
    // My work lists the task; its card has the talk track and what the record says.
    assert!(csm.text_with("满意度回访").contains("满意度回访"));
    csm.click(&format!("a[href='/tasks/{task}']"));
    let card = csm.text_with("话术");
    assert!(card.contains("已超时"), "due 7 days after delivery, long past: {card}");
    assert!(card.contains("产品交付一周了") && card.contains("报表导出慢"), "talk track and pain points: {card}");
    assert!(card.contains("客户痛点") && card.contains(&record), "{card}");
    csm.screenshot("csm-task-card");
    assert_eq!(csm.axe(), Vec::<Value>::new(), "the task card");
    // A file that is no photo or PDF is named under its input, and the summary is kept.
    let text_file = cli.path("notes.txt");
    std::fs::write(&text_file, "not a photo").unwrap();
    csm.type_into("#summary", "客户反馈报表导出已改善");
    csm.type_into("#attachment", &text_file.display().to_string());
    csm.submit("main section.action button[type=submit]");
    let refused = csm.text_with("凭证须是照片");
    assert!(refused.contains("凭证须是照片"), "{refused}");
    assert_eq!(csm.script("return document.querySelector('#summary').value"), json!("客户反馈报表导出已改善"));
    // A photo (this page's own screenshot) closes it.
    let photo = csm.screenshot("csm-task-refused");
    csm.type_into("#attachment", &photo.display().to_string());
    csm.submit("main section.action button[type=submit]");
    let done = csm.text_with("已完成");
    assert!(done.contains("已完成") && done.contains("客户反馈报表导出已改善"), "{done}");
    assert_eq!(csm.script("return document.querySelector('img.evidence').naturalWidth > 0"), json!(true));
    csm.script("window.scrollTo(0, document.body.scrollHeight); return 1;");
    csm.screenshot("csm-task-done");
    let stored = cli.json(&["tasks", "--as", "m_lin", "--all"]);
    let stored = stored.as_array().unwrap().iter().find(|t| t["id"] == task).unwrap().clone();
    assert_eq!(stored["status"], "done");
    let kept = stored["evidence"]["attachment"].as_str().unwrap();
    assert!(
        std::path::Path::new(kept).starts_with(cli.files_dir()) && kept.ends_with(".png"),
        "kept beside the database (in CLOSELOOP_FILES on PostgreSQL): {kept}"
    );
    // The director's team: 林晓's account, as he may read it; he switches the pages to English,
    // and the choice is his, on the next device too.
    let director = Browser::start();
    sign_in(&director, &base, "m_cao");
    director.open(&format!("{base}/team"));
    let team = director.text_with("林晓");
    assert!(
        team.contains("我的团队") && team.contains("林晓") && team.contains("高远") && team.contains(&record),
        "{team}"
    );
    assert!(!team.contains("罗佳"), "another director's report: {team}");
    assert_eq!(director.axe(), Vec::<Value>::new(), "the team page");
    director.submit("footer button[value=en]");
    let english = director.text_with("My work");
    assert!(english.contains("My work") && english.contains("My team"), "{english}");
    let again = Browser::start();
    again.open(&format!("{base}/sign-in"));
    again.text_with("登录");
    again.type_into("#member", "m_cao");
    again.type_into("#password", crate::api_v1::PASSWORD);
    again.submit("main button[type=submit]");
    again.open(&format!("{base}/tasks/{task}"));
    let card = again.text_with("Talk track");
    again.screenshot("director-task-english");
    assert!(card.contains("Talk track") && card.contains("a week since delivery"), "{card}");
    assert_eq!(again.script("return document.querySelector('img.evidence').naturalWidth > 0"), json!(true));
    // A member who may not read the record gets no task card and no photo.
    crate::api_v1::set_password(&cli, "m_luo");
    let other = Browser::start();
    sign_in(&other, &base, "m_luo");
    for path in [format!("/tasks/{task}"), format!("/tasks/{task}/evidence")] {
        other.open(&format!("{base}{path}"));
        let page = other.text();
        assert!(!page.contains("客户反馈") && !page.contains("话术"), "{path}: {page}");
    }
}

#[test]
fn an_ops_person_imports_members_with_row_errors_reads_masked_channels_retries_a_dead_letter_and_verifies_the_audit() {
    let cli = Cli::system_clock("browser-ops-pages");
    cli.ok(&["install", "lead-followup"]);
    // A directory without phone numbers: the 24-hour SMS to the rep will have nowhere to go.
    let team = cli.path("team.csv");
    std::fs::write(
        &team,
        "id,name,roles,region,manager,active,capacity\nm_zhao,赵敏,sales_supervisor,east,,true,0\n\
         m_li,李伟,sales_rep,east,m_zhao,true,30\nm_ops,刘洋,ops,,,true,0\n",
    )
    .unwrap();
    let said = cli.ok(&["members", "import", &team.display().to_string()]);
    assert!(said.contains("warning[MEMBER_UNREACHABLE]: channel `sms`"), "warned at import: {said}");
    crate::api_v1::set_password(&cli, "m_ops");
    cli.ok(&["channels", "set", "sms", "url=http://127.0.0.1:9/sms", "secret=s3cr3t-never-shown"]);
    let data = r#"{"source":"expo","customer":"苏州恒通","phone":"13900000009","region":"east"}"#;
    cli.ok(&["submit", "lead", "--as", "m_ops", "--data", data]);
    // A day later the SMS to the rep cannot go: m_li has no phone. A dead letter.
    let later = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(25)).to_string();
    cli.ok_at(Some(&later), &["tick"]);
    cli.ok_at(Some(&later), &["outbox", "deliver"]);
    let dead = cli.json(&["outbox", "--status", "dead"]);
    let dead_id = dead[0]["id"].as_i64().unwrap_or_else(|| panic!("a dead letter: {dead}"));
    let server = Server::start(&cli, "2", "16");
    let base = format!("http://{}", server.addr);
    let browser = Browser::start();
    sign_in(&browser, &base, "m_ops");
    // Members: a file with a bad row is refused whole, by row and column.
    browser.open(&format!("{base}/ops/members"));
    assert!(browser.text_with("李伟").contains("m_li"));
    assert_eq!(browser.axe(), Vec::<Value>::new(), "the members page");
    let bad = cli.path("team-bad.csv");
    std::fs::write(&bad, "id,name,roles,region,manager,active,capacity,phone\nm_li,李伟,sales_rep,east,m_zhao,true,30,13800138000\nm_new,新人,sales_rep,east,m_zhao,maybe,30,\n").unwrap();
    browser.type_into("#file", &bad.display().to_string());
    browser.submit("main section.action button[type=submit]");
    let refused = browser.text_with("第 3 行");
    browser.screenshot("ops-members-refused");
    assert!(refused.contains("第 3 行") && refused.contains("active"), "{refused}");
    assert!(cli.json(&["members"]).as_array().unwrap().iter().all(|m| m["id"] != "m_new"), "nothing imported");
    let good = cli.path("team-good.csv");
    std::fs::write(
        &good,
        "id,name,roles,region,manager,active,capacity,phone\nm_li,李伟,sales_rep,east,m_zhao,true,30,13800138000\n",
    )
    .unwrap();
    browser.type_into("#file", &good.display().to_string());
    browser.submit("main section.action button[type=submit]");
    let imported = browser.text_with("已导入");
    assert!(imported.contains("更新 1 人"), "{imported}");
    // Channels: the secret is masked.
    browser.open(&format!("{base}/ops/channels"));
    let channels = browser.text_with("sms");
    browser.screenshot("ops-channels");
    assert!(channels.contains("http://127.0.0.1:9/sms") && channels.contains("wecom"), "{channels}");
    assert!(!channels.contains("s3cr3t-never-shown"), "the secret is masked: {channels}");
    assert_eq!(browser.axe(), Vec::<Value>::new(), "the channels page");
    // The outbox: the dead letter, why it died, and a retry now that m_li has a phone.
    browser.open(&format!("{base}/ops/outbox"));
    let outbox = browser.text_with(&format!("#{dead_id}"));
    browser.screenshot("ops-outbox-dead");
    assert!(outbox.contains("no phone number"), "{outbox}");
    assert_eq!(browser.axe(), Vec::<Value>::new(), "the outbox page");
    browser.submit(&format!("form[action='/ops/outbox/{dead_id}/retry'] button"));
    assert!(browser.text_with("重新排队").contains("重新排队"));
    let message = cli.json(&["outbox"]);
    let message = message.as_array().unwrap().iter().find(|m| m["id"] == dead_id).unwrap().clone();
    assert_eq!(message["status"], "pending", "back in line");
    // The audit chain verifies from the page.
    browser.open(&format!("{base}/ops/audit"));
    browser.text_with("审计链头");
    browser.submit("main button[type=submit]");
    let verified = browser.text_with("审计链完整");
    browser.screenshot("ops-audit");
    assert!(verified.contains("审计链完整"), "{verified}");
    assert_eq!(browser.axe(), Vec::<Value>::new(), "the audit page");
}

#[test]
fn a_rep_builds_a_quote_on_the_phone_and_the_server_fills_in_prices_totals_and_which_fields_apply() {
    let cli = Cli::system_clock("browser-quote-form");
    cli.ok(&["install", "quote-approval", "--with-sample-data"]);
    crate::api_v1::set_password(&cli, "m_li");
    let server = Server::start(&cli, "2", "16");
    let base = format!("http://{}", server.addr);
    let browser = Browser::start();
    sign_in(&browser, &base, "m_li");
    browser.open(&format!("{base}/r/quote/new"));
    browser.text_with("报价明细");
    // The customer is picked from the ones the rep may read; the prepayment share is not asked
    // until prepayment is chosen.
    browser.click("#f-customer option[value='CUSTOMER-000001']");
    assert_eq!(browser.script("return document.querySelector('#f-prepay_percent') === null"), json!(true));
    browser.click("#f-payment_terms option[value=prepay]");
    browser.type_into("#f-contact_phone", "13800138001");
    browser.script("document.querySelector('#f-valid_until').value = '2027-12-31'; return 1;");
    browser.type_into("[name='lines.0.sku']", "CL-CRM-STD");
    browser.type_into("[name='lines.0.qty']", "2");
    browser.submit("main button[value=add_row]");
    browser.text_with("第 2 行");
    assert_eq!(browser.script("return document.querySelector(\"[name='lines.0.sku']\").value"), json!("CL-CRM-STD"));
    browser.type_into("[name='lines.1.sku']", "CL-IMPL-DAY");
    browser.type_into("[name='lines.1.qty']", "3");
    browser.type_into("[name='lines.1.unit_price']", "1800");
    let head_before_check = cli.ok(&["audit", "head"]);
    browser.submit("main .buttons button[value=check]");
    let checked = browser.text_with("系统将填入");
    browser.script("document.querySelector('.filled').scrollIntoView(); return 1;");
    browser.screenshot("rep-quote-checked");
    assert_eq!(browser.axe(), Vec::<Value>::new(), "the checked quote form");
    // Looked up from the catalog and computed, by the server; the floor price is finance's.
    for filled in ["CRM 标准版（年）", "12,000.00", "24,000.00", "29,400.00", "合计金额"] {
        assert!(checked.contains(filled), "`{filled}` filled in: {checked}");
    }
    assert!(!checked.contains("底价") && !checked.contains("10,000.00"), "no floor price for a rep: {checked}");
    // The check is a rehearsal: no quote, no message, no event was kept.
    assert!(cli.json(&["list", "quote"]).as_array().unwrap().is_empty(), "the check wrote a quote");
    assert!(cli.json(&["outbox"]).as_array().unwrap().is_empty(), "the check queued a message");
    let events_before = cli.ok(&["audit", "head"]);
    assert_eq!(events_before, head_before_check, "the check appended nothing to the audit chain");
    assert_eq!(browser.script("return document.querySelector('#f-prepay_percent') !== null"), json!(true));
    browser.type_into("#f-prepay_percent", "60");
    // Cash on delivery after all: the share typed for prepayment no longer applies.
    browser.click("#f-payment_terms option[value=cod]");
    browser.submit("main .buttons button[value=save]");
    let saved = browser.text_with("报价单");
    browser.screenshot("rep-quote-saved");
    assert_ne!(cli.ok(&["audit", "head"]), events_before, "the save, unlike the check, is on the chain");
    assert_eq!(cli.json(&["list", "quote"]).as_array().unwrap().len(), 1, "one save, one quote");
    let id = cli.json(&["list", "quote"])[0]["id"].as_str().unwrap_or_else(|| panic!("saved: {saved}")).to_string();
    let quote = cli.json(&["get", "quote", &id]);
    assert_eq!(quote["data"]["total"], json!(29400.0));
    assert_eq!(quote["data"]["lines"].as_array().unwrap().len(), 2);
    assert_eq!(quote["data"]["payment_terms"], "cod");
    assert!(quote["data"].get("prepay_percent").is_none(), "a field that does not apply is not kept: {quote}");
    assert_eq!(quote["owner"], "m_li");
}

#[test]
fn a_visitor_leaves_a_lead_on_the_public_page_and_it_is_assigned_while_bots_and_floods_write_nothing() {
    let cli = Cli::system_clock("browser-apply");
    cli.ok(&["install", "lead-followup"]);
    cli.ok(&["members", "import", "app-templates/lead-followup/data/members.csv"]);
    let server = Server::start(&cli, "2", "16");
    let base = format!("http://{}", server.addr);
    let browser = Browser::start();
    browser.open(&format!("{base}/apply/lead.captured"));
    let page = browser.text_with("官网或公众号留资");
    assert!(page.contains("公司名称") && page.contains("手机号"), "{page}");
    let trap = browser.script("return document.querySelector('.trap').getBoundingClientRect().right <= 0");
    assert_eq!(trap, json!(true), "the bots' field is off the screen");
    assert_eq!(browser.axe(), Vec::<Value>::new(), "the public lead page");
    browser.type_into("#f-customer", "无锡官网客户 <i>x</i>");
    browser.type_into("#f-phone", "123");
    browser.click("#f-region option[value=east]");
    browser.submit("main button[type=submit]");
    let refused = browser.text_with("请修改");
    assert!(refused.contains("不是有效的电话号码"), "{refused}");
    let phone = browser.find("#f-phone");
    browser.call("POST", &browser.at(&format!("/element/{phone}/clear")), Some(json!({})));
    browser.type_into("#f-phone", "13912345678");
    browser.submit("main button[type=submit]");
    let thanks = browser.text_with("已收到");
    browser.screenshot("visitor-lead-sent");
    assert!(thanks.contains("已收到"), "{thanks}");
    // A lead like any other: from the website, assigned by region, the rep told.
    let leads = cli.json(&["list", "lead"]);
    let lead = &leads.as_array().unwrap()[0];
    assert_eq!((lead["data"]["source"].as_str(), lead["owner"].as_str()), (Some("website"), Some("m_li")));
    assert_eq!(lead["data"]["customer"], "无锡官网客户 <i>x</i>");
    assert!(cli.ok(&["outbox"]).contains("无锡官网客户"));
    // The website's own server may post the same event with the install's token; the same
    // phone is that lead again, not a second one.
    let again = r#"{"customer":"无锡官网客户","phone":"13912345678","region":"east"}"#;
    let token = format!("Authorization: Bearer {}\r\n", crate::http::TOKEN);
    let (status, _, _) = request_with(&server.addr, "POST", "/api/events/lead.captured", None, &token, again);
    assert_eq!(status, 200);
    assert_eq!(cli.json(&["list", "lead"]).as_array().unwrap().len(), 1, "one phone, one lead");
    // A known phone and an unknown one get the same answer to the same bad region: the page
    // tells nothing about who is on file.
    let form = "Content-Type: application/x-www-form-urlencoded\r\n";
    let known = request_with(
        &server.addr,
        "POST",
        "/apply/lead.captured",
        None,
        form,
        "customer=a&phone=13912345678&region=mars",
    );
    let unknown = request_with(
        &server.addr,
        "POST",
        "/apply/lead.captured",
        None,
        form,
        "customer=a&phone=13912345699&region=mars",
    );
    assert_eq!((known.0, unknown.0), (422, 422));
    // A bot fills the field people never see: it hears thanks, and nothing is written.
    let bot = "customer=spam&phone=13900000000&region=east&website=http%3A%2F%2Fspam.example";
    let (status, _, body) = request_with(&server.addr, "POST", "/apply/lead.captured", None, form, bot);
    assert!(status == 200 && body.contains("已收到"), "{status} {body}");
    assert_eq!(cli.json(&["list", "lead"]).as_array().unwrap().len(), 1, "the bot wrote nothing");
    // Ten sends an hour from one address; the next waits.
    let mut statuses = Vec::new();
    for i in 0..8 {
        let body = format!("customer=c{i}&phone=1390000{i:04}&region=east");
        statuses.push(request_with(&server.addr, "POST", "/apply/lead.captured", None, form, &body).0);
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(cli.json(&["list", "lead"]).as_array().unwrap().len() < 10, "the flood was cut off");
    // An event that is not public has no page.
    let (status, _, _) = request_with(&server.addr, "GET", "/apply/nothing.here", None, "", "");
    assert_eq!(status, 404);
}

#[test]
fn the_approved_quote_s_link_goes_to_the_customer_by_sms_and_opens_the_signing_page() {
    let cli = Cli::system_clock("browser-sign-sms");
    let (id, _) = quote_at_signature(&cli);
    let qr = cli.path("qr2").display().to_string();
    let out = cli.ok(&[
        "sign-link",
        "quote",
        &id,
        "--as",
        "m_li",
        "--qr-dir",
        &qr,
        "--base",
        "http://127.0.0.1:1",
        "--send",
        "sms",
    ]);
    assert!(out.contains("sent to 13800138001"), "{out}");
    // The customer's SMS: the app's sign_request text, with the link and nothing internal.
    let outbox = cli.json(&["outbox"]);
    let sms = outbox.as_array().unwrap().iter().find(|m| m["message"] == "sign_request").unwrap().clone();
    assert_eq!(
        (sms["to"].as_str(), sms["address"].as_str(), sms["channel"].as_str()),
        (Some("customer"), Some("13800138001"), Some("sms"))
    );
    let body = sms["body"].as_str().unwrap();
    assert!(body.contains(&id) && body.contains("http://127.0.0.1:1/sign/"), "{body}");
    for internal in ["风险", "底价", "m_li"] {
        assert!(!body.contains(internal), "{internal} in {body}");
    }
    // The link in the SMS opens the signing page on the real server.
    let server = Server::start(&cli, "2", "16");
    let path = body.split("http://127.0.0.1:1").nth(1).unwrap().split_whitespace().next().unwrap();
    let browser = Browser::start();
    browser.open(&format!("http://{}{path}", server.addr));
    let page = browser.text_with(&id);
    assert!(page.contains(&id) && page.contains("29,400.00"), "{page}");
    assert!(cli.ok(&["audit", "verify"]).starts_with("audit ok"));
}

#[test]
fn a_rep_qualifies_a_lead_on_the_phone_and_finds_the_draft_quote_it_opened_in_my_work() {
    let cli = Cli::system_clock("browser-hand-over");
    cli.ok(&["install", "lead-followup"]);
    cli.ok(&["install", "quote-approval", "--with-sample-data"]);
    crate::api_v1::set_password(&cli, "m_li");
    let data = r#"{"source":"expo","customer":"苏州新客科技","phone":"13800138111","region":"east"}"#;
    let lead = cli.json(&["submit", "lead", "--as", "m_ops", "--data", data])["id"].as_str().unwrap().to_string();
    cli.ok(&[
        "act",
        "lead",
        &lead,
        "contact",
        "--as",
        "m_li",
        "--data",
        r#"{"summary":"电话沟通","next_step":"报价"}"#,
    ]);
    let server = Server::start(&cli, "2", "16");
    let base = format!("http://{}", server.addr);
    let browser = Browser::start();
    sign_in(&browser, &base, "m_li");
    browser.open(&format!("{base}/r/lead/{lead}"));
    browser.text_with("转商机");
    browser.submit(&format!("form[action='/r/lead/{lead}/act/qualify'] button[type=submit]"));
    let qualified = browser.text_with("已转商机");
    assert!(qualified.contains("hand_over_to_quote"), "what the hand-over did is on the lead: {qualified}");
    // The draft quote is the rep's open work now, with the customer and the phone carried over.
    let quote = cli.json(&["list", "quote"])[0]["id"].as_str().unwrap().to_string();
    browser.open(&format!("{base}/"));
    let work = browser.text_with(&quote);
    assert!(work.contains(&quote), "{work}");
    browser.open(&format!("{base}/r/quote/{quote}"));
    let page = browser.text_with("草稿");
    browser.screenshot("rep-draft-quote-from-lead");
    assert_eq!(browser.axe(), Vec::<Value>::new(), "the draft quote");
    assert!(
        page.contains("苏州新客科技") && page.contains(&lead),
        "the customer by name, the lead it came from: {page}"
    );
    assert!(page.contains("13800138111"), "the signer's phone, to its owner: {page}");
    // She completes the draft on the phone: the form holds what is stored, she adds a line.
    browser.click("main p.muted a");
    let form = browser.text_with("修改苏州新客科技");
    assert_eq!(browser.script("return document.querySelector('#f-contact_phone').value"), json!("13800138111"));
    assert_eq!(browser.axe(), Vec::<Value>::new(), "the edit form");
    browser.type_into("[name='lines.0.sku']", "CL-CRM-STD");
    browser.type_into("[name='lines.0.qty']", "0");
    browser.click("#f-payment_terms option[value=cod]");
    browser.script("document.querySelector('#f-valid_until').value = '2027-01-31'; return 1;");
    browser.submit("main .buttons button[value=save]");
    let refused = browser.text_with("请修改标出的内容");
    assert!(refused.contains("不能小于 1"), "the quantity, under its row: {refused} (form was: {form})");
    let qty = browser.find("[name='lines.0.qty']");
    browser.call("POST", &browser.at(&format!("/element/{qty}/clear")), Some(json!({})));
    browser.type_into("[name='lines.0.qty']", "2");
    browser.submit("main .buttons button[value=save]");
    let saved = browser.text_with("合计金额");
    browser.screenshot("rep-draft-quote-completed");
    assert!(saved.contains("CL-CRM-STD") && saved.contains("货到付款"), "{saved}");
    let stored = cli.json(&["get", "quote", &quote]);
    assert_eq!(
        (stored["version"].as_i64(), stored["data"]["lines"][0]["qty"].as_i64()),
        (Some(3), Some(2)),
        "hers, then the pricing script's: {stored}"
    );
    assert_eq!(stored["data"]["lead"], json!(lead), "what she did not type stays");
    // Approved, it may still be revised (back to draft, the chain again); signed, never.
    cli.ok(&["act", "quote", &quote, "submit", "--as", "m_li"]);
    cli.ok(&["approve", "quote", &quote, "--as", "m_zhao"]);
    cli.ok(&["approve", "quote", &quote, "--as", "m_qian"]);
    browser.open(&format!("{base}/r/quote/{quote}"));
    let approved = browser.text_with("待客户签署");
    assert!(approved.contains("修改"), "{approved}");
}

#[test]
fn an_edit_changes_only_what_the_rep_changed_and_a_change_made_meanwhile_is_named() {
    let cli = Cli::system_clock("browser-edit");
    cli.ok(&["install", "lead-followup"]);
    cli.ok(&["members", "import", "app-templates/lead-followup/data/members.csv"]);
    crate::api_v1::set_password(&cli, "m_li");
    // A budget range has no input on the page; it must survive an edit of something else.
    let data = r#"{"source":"expo","customer":"无锡","phone":"13800138222","region":"east","budget":{"min":10,"max":20},"summary":"初次沟通"}"#;
    let lead = cli.json(&["submit", "lead", "--as", "m_ops", "--data", data])["id"].as_str().unwrap().to_string();
    let server = Server::start(&cli, "2", "16");
    let base = format!("http://{}", server.addr);
    let browser = Browser::start();
    sign_in(&browser, &base, "m_li");
    browser.open(&format!("{base}/r/lead/{lead}/edit"));
    browser.text_with("修改无锡");
    browser.type_into("#f-next_step", "周五演示");
    browser.submit("main .buttons button[value=save]");
    browser.text_with("周五演示");
    let stored = cli.json(&["get", "lead", &lead]);
    assert_eq!(stored["data"]["budget"], json!({"min": 10.0, "max": 20.0}), "{stored}");
    assert_eq!((stored["data"]["summary"].as_str(), stored["version"].as_i64()), (Some("初次沟通"), Some(2)));
    // The page is drawn; meanwhile the supervisor changes the lead. Saving names that, and
    // writes nothing over it.
    browser.open(&format!("{base}/r/lead/{lead}/edit"));
    browser.text_with("修改无锡");
    cli.ok(&["update", "lead", &lead, "--as", "m_zhao", "--data", r#"{"urgency":"red"}"#]);
    browser.type_into("#f-next_step", "，带上报价");
    browser.submit("main .buttons button[value=save]");
    let said = browser.text_with("刚被别人修改过");
    assert!(said.contains("刚被别人修改过"), "{said}");
    let after = cli.json(&["get", "lead", &lead]);
    assert_eq!(
        (after["data"]["next_step"].as_str(), after["data"]["urgency"].as_str()),
        (Some("周五演示"), Some("red"))
    );
}
