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
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=390,844", "--lang=zh-CN"]}}}});
        let answer = b.call("POST", "/session", Some(caps));
        b.session = answer["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {answer}")).to_string();
        b
    }

    /// One WebDriver command; its `value`.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
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

    fn at(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    pub(crate) fn open(&self, url: &str) {
        self.call("POST", &self.at("/url"), Some(json!({"url": url})));
    }

    pub(crate) fn find(&self, css: &str) -> String {
        let v = self.call("POST", &self.at("/element"), Some(json!({"using": "css selector", "value": css})));
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

    /// The page's visible text.
    pub(crate) fn text(&self) -> String {
        let body = self.find("body");
        self.call("GET", &self.at(&format!("/element/{body}/text")), None).as_str().unwrap_or_default().to_string()
    }

    /// An alert's text, if a script managed to open one.
    pub(crate) fn alert(&self) -> Option<String> {
        self.call("GET", &self.at("/alert/text"), None).as_str().map(str::to_string)
    }

    /// Runs a script in the page (WebDriver's own, not subject to the page's CSP).
    pub(crate) fn script(&self, script: &str) -> Value {
        self.call("POST", &self.at("/execute/sync"), Some(json!({"script": script, "args": []})))
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
        "q_li",
        "--data",
        &json!({"code": "C-9001", "name": hostile, "region": "east"}).to_string(),
    ]);
    let customer = "C-9001";
    let data = json!({"customer": customer, "contact_phone": "13800138001", "valid_until": "2027-12-31",
        "payment_terms": "cod", "lines": [{"sku": "CL-CRM-STD", "qty": 2}, {"sku": "CL-IMPL-DAY", "qty": 3, "unit_price": 1800.0}]});
    let id =
        cli.json(&["submit", "quote", "--as", "q_li", "--data", &data.to_string()])["id"].as_str().unwrap().to_string();
    cli.ok(&["act", "quote", &id, "submit", "--as", "q_li"]);
    cli.ok(&["approve", "quote", &id, "--as", "q_sup_e"]);
    cli.ok(&["approve", "quote", &id, "--as", "q_fin"]);
    let link = cli.json(&["sign-link", "quote", &id, "--as", "q_li"]);
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
    let page = browser.text();
    browser.screenshot("sign-open");
    assert!(page.contains(&id) && page.contains("29,400.00") && page.contains("李伟"), "{page}");
    // What the customer sees carries no floor price, risk grade, internal summary or member id.
    for internal in ["底价", "Floor", "10,000.00", "风险", "Risk", "q_li", "CUSTOMER-0"] {
        assert!(!page.contains(internal), "`{internal}` is internal:\n{page}");
    }
    // The hostile name is shown as text, and nothing ran.
    assert!(page.contains("<script>alert(1)</script>\"><img src=x onerror=alert(2)>明远"), "{page}");
    assert_eq!(browser.alert(), None, "no script ran");
    assert_eq!(browser.script("return document.querySelectorAll('img').length"), json!(0));
    // Signing without the box ticked is refused by the page itself (required), so tick it.
    browser.type_into("#name", "王总");
    browser.click("input[name=agree]");
    browser.click("button[type=submit]");
    let signed = browser.text();
    browser.screenshot("sign-done");
    assert!(signed.contains("已签署") && signed.contains("王总"), "{signed}");
    // The signed PDF carries the serial number and the signer.
    let (head, pdf) = fetch_bytes(&server.addr, &format!("/sign/{token}/pdf"));
    assert!(head.starts_with("HTTP/1.1 200") && head.contains("application/pdf"), "{head}");
    let text = crate::approvals::pdf_text(&pdf, "browser-signed");
    assert!(text.contains(&id) && text.contains("王总"), "{text}");
    // The link works once: signed, it only shows what was signed.
    browser.open(&url);
    assert!(!browser.text().contains("签署 / Sign\n"), "no second signature form");
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
    let shown = browser.text();
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
