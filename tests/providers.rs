//! Messages to one person where they work, and SMS through the Chinese providers, delivered to
//! stand-ins on 127.0.0.1 that speak each provider's API: WeCom application messages and
//! DingTalk work notifications with their access tokens (fetched, kept, refreshed when the
//! provider says one expired), Aliyun SMS and Tencent Cloud SMS with their request signatures,
//! which the stand-ins check the way the providers do. Each provider's error codes become a
//! retry or a dead letter as its documentation says.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use closeloop::clock::ManualClock;
use closeloop::{AppFiles, DeliveryOutcome, Runtime};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::notifications::set;

/// One request a stand-in received.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    headers: BTreeMap<String, String>,
    body: String,
}

type Handler = dyn Fn(&Req) -> (u16, Value) + Send + Sync;

/// A provider's stand-in: answers each request with its handler, and keeps them.
struct StandIn {
    base: String,
    seen: Arc<Mutex<Vec<Req>>>,
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

impl StandIn {
    fn start(handler: impl Fn(&Req) -> (u16, Value) + Send + Sync + 'static) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Req>>> = Arc::default();
        let keep = seen.clone();
        let handler: Arc<Handler> = Arc::new(handler);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let (method, target) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
                let mut headers = BTreeMap::new();
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    if h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.insert(k.trim().to_lowercase(), v.trim().to_string());
                    }
                }
                let length = headers.get("content-length").and_then(|l| l.parse::<usize>().ok()).unwrap_or(0);
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let (path, raw_query) = target.split_once('?').unwrap_or((target.as_str(), ""));
                let query = raw_query
                    .split('&')
                    .filter_map(|p| p.split_once('='))
                    .map(|(k, v)| (decode(k), decode(v)))
                    .collect();
                let req =
                    Req { method, path: path.to_string(), query, headers, body: String::from_utf8(body).unwrap() };
                let (status, answer) = handler(&req);
                keep.lock().unwrap().push(req);
                let text = answer.to_string();
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
            }
        });
        StandIn { base, seen }
    }

    fn requests(&self, path: &str) -> Vec<Req> {
        self.seen.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }
}

const APP: &str = r#"
app: {id: reach, title: Reach, time_zone: Asia/Shanghai, language: zh}
roles: [{id: rep}]
forms:
  - id: ticket
    owner_field: owner
    fields:
      - {id: title, type: text, required: true}
      - {id: owner, type: member}
      - {id: via, type: text, required: true}
automations:
  - id: tell
    when: {created: ticket}
    do:
      - notify: {channel: wx, message: hello, to: {field: owner}}
    if: {field: via, eq: wx}
  - id: tell_dt
    when: {created: ticket}
    if: {field: via, eq: dt}
    do:
      - notify: {channel: dt, message: hello, to: {field: owner}}
  - id: tell_ali
    when: {created: ticket}
    if: {field: via, eq: ali}
    do:
      - notify: {channel: ali, message: hello, to: {field: owner}}
  - id: tell_tc
    when: {created: ticket}
    if: {field: via, eq: tc}
    do:
      - notify: {channel: tc, message: hello, to: {field: owner}}
channels:
  - {id: wx, kind: wecom_app}
  - {id: dt, kind: dingtalk_work}
  - {id: ali, kind: aliyun_sms}
  - {id: tc, kind: tencent_sms}
messages:
  - id: hello
    text: {zh: "新工单：{{ title }}{% if link %} {{ link }}{% endif %}", en: "New ticket: {{ title }}"}
"#;

fn world(team: &str) -> Runtime {
    let clock = Arc::new(ManualClock::new("2026-11-26T09:00:00+08:00".parse().unwrap()));
    let mut rt = Runtime::open(crate::support::fresh_store(), clock).unwrap();
    rt.install(&AppFiles { app_yaml: APP.into(), ..AppFiles::default() }, "system", false).unwrap();
    rt.import_members(team.as_bytes(), "system").unwrap();
    rt.set_public_url("https://crm.example.com", "system").unwrap();
    rt
}

const TEAM: &str = "id,name,roles,region,manager,active,capacity,phone,wecom_userid,dingtalk_userid\n\
                    m_li,李伟,rep,east,,true,10,13800138000,LiWei,manager4521\n\
                    m_new,新人,rep,east,,true,10,,,\n";

fn ticket(rt: &mut Runtime, via: &str, owner: &str) {
    let data = json!({"title": "打印机卡纸", "owner": owner, "via": via});
    rt.submit("ticket", data.as_object().cloned().unwrap(), "system").unwrap();
}

fn outcomes(rt: &mut Runtime) -> Vec<(DeliveryOutcome, Option<String>)> {
    rt.deliver().unwrap().deliveries.into_iter().map(|d| (d.outcome, d.error)).collect()
}

/// A WeCom or DingTalk stand-in: tokens `tok-1`, `tok-2`, …; the first token is said to have
/// expired when first used; `refuse` answers a message with that errcode.
fn token_stand_in(token_path: &'static str, send_path: &'static str, refuse: Arc<Mutex<Option<i64>>>) -> StandIn {
    let issued = Arc::new(Mutex::new(0));
    let expired_once = Arc::new(Mutex::new(false));
    StandIn::start(move |r| {
        if r.path == token_path {
            let secret_ok = r.query.get("corpsecret").or(r.query.get("appsecret")).is_some_and(|s| s == "s3cret");
            if !secret_ok {
                return (200, json!({"errcode": 40001, "errmsg": "invalid credential"}));
            }
            let mut n = issued.lock().unwrap();
            *n += 1;
            return (200, json!({"errcode": 0, "access_token": format!("tok-{n}"), "expires_in": 7200}));
        }
        if r.path == send_path {
            let token = r.query.get("access_token").cloned().unwrap_or_default();
            let mut expired = expired_once.lock().unwrap();
            if token == "tok-1" && !*expired {
                *expired = true;
                return (200, json!({"errcode": 42001, "errmsg": "access_token expired"}));
            }
            if !token.starts_with("tok-") {
                return (200, json!({"errcode": 40014, "errmsg": "invalid access_token"}));
            }
            if let Some(code) = *refuse.lock().unwrap() {
                return (200, json!({"errcode": code, "errmsg": "refused by the stand-in"}));
            }
            return (200, json!({"errcode": 0, "errmsg": "ok", "msgid": "m1", "task_id": 7}));
        }
        (404, json!({}))
    })
}

#[test]
fn a_wecom_application_message_reaches_one_person_and_a_token_that_expired_is_fetched_again() {
    let refuse = Arc::new(Mutex::new(None));
    let wecom = token_stand_in("/cgi-bin/gettoken", "/cgi-bin/message/send", refuse.clone());
    let mut rt = world(TEAM);
    set(&mut rt, "wx", &[("corpid", "ww1"), ("secret", "s3cret"), ("agentid", "1000002"), ("base_url", &wecom.base)]);
    ticket(&mut rt, "wx", "m_li");
    assert_eq!(outcomes(&mut rt), [(DeliveryOutcome::Sent, None)]);
    // The first token was said to have expired: fetched again, and the message sent with it.
    assert_eq!(wecom.requests("/cgi-bin/gettoken").len(), 2);
    let sends = wecom.requests("/cgi-bin/message/send");
    assert_eq!(sends.len(), 2);
    let card: Value = serde_json::from_str(&sends[1].body).unwrap();
    assert_eq!(
        (card["touser"].as_str(), card["msgtype"].as_str(), card["agentid"].as_u64()),
        (Some("LiWei"), Some("textcard"), Some(1000002))
    );
    assert!(card["textcard"]["url"].as_str().unwrap().starts_with("https://crm.example.com/r/ticket/"), "{card}");
    assert!(card["textcard"]["description"].as_str().unwrap().contains("打印机卡纸"));
    // A second message uses the token kept from the first.
    ticket(&mut rt, "wx", "m_li");
    assert_eq!(outcomes(&mut rt), [(DeliveryOutcome::Sent, None)]);
    assert_eq!(wecom.requests("/cgi-bin/gettoken").len(), 2, "the kept token is reused");
    // Busy (-1) is tried again later; an unknown user (81013) is a dead letter.
    *refuse.lock().unwrap() = Some(-1);
    ticket(&mut rt, "wx", "m_li");
    assert_eq!(outcomes(&mut rt)[0].0, DeliveryOutcome::Retry);
    *refuse.lock().unwrap() = Some(81013);
    ticket(&mut rt, "wx", "m_li");
    let last = outcomes(&mut rt);
    assert!(
        last.iter().any(|(o, e)| *o == DeliveryOutcome::Dead && e.as_deref().is_some_and(|e| e.contains("81013"))),
        "{last:?}"
    );
    // A member with no WeCom userid is a dead letter that says what to add.
    *refuse.lock().unwrap() = None;
    ticket(&mut rt, "wx", "m_new");
    let none = outcomes(&mut rt);
    assert!(
        none.iter()
            .any(|(o, e)| *o == DeliveryOutcome::Dead && e.as_deref().is_some_and(|e| e.contains("wecom_userid"))),
        "{none:?}"
    );
}

#[test]
fn a_dingtalk_work_notification_is_an_action_card_and_a_wrong_secret_is_a_dead_letter() {
    let refuse = Arc::new(Mutex::new(None));
    let ding = token_stand_in("/gettoken", "/topapi/message/corpconversation/asyncsend_v2", refuse.clone());
    let mut rt = world(TEAM);
    set(&mut rt, "dt", &[("appkey", "ding1"), ("appsecret", "s3cret"), ("agent_id", "2001"), ("base_url", &ding.base)]);
    ticket(&mut rt, "dt", "m_li");
    assert_eq!(outcomes(&mut rt), [(DeliveryOutcome::Sent, None)]);
    let sends = ding.requests("/topapi/message/corpconversation/asyncsend_v2");
    let body: Value = serde_json::from_str(&sends.last().unwrap().body).unwrap();
    assert_eq!((body["userid_list"].as_str(), body["agent_id"].as_u64()), (Some("manager4521"), Some(2001)));
    assert_eq!(body["msg"]["msgtype"], "action_card");
    assert!(body["msg"]["action_card"]["single_url"]
        .as_str()
        .unwrap()
        .starts_with("https://crm.example.com/r/ticket/"));
    // A rate limit (90018) is retried; a wrong app secret no retry mends.
    *refuse.lock().unwrap() = Some(90018);
    ticket(&mut rt, "dt", "m_li");
    assert_eq!(outcomes(&mut rt)[0].0, DeliveryOutcome::Retry);
    *refuse.lock().unwrap() = None;
    let mut other = world(TEAM);
    set(
        &mut other,
        "dt",
        &[("appkey", "ding2"), ("appsecret", "wrong"), ("agent_id", "2001"), ("base_url", &ding.base)],
    );
    ticket(&mut other, "dt", "m_li");
    let said = outcomes(&mut other);
    assert!(said[0].0 == DeliveryOutcome::Dead && said[0].1.as_deref().unwrap().contains("40001"), "{said:?}");
}

/// Aliyun's RPC signature as the provider checks it: HMAC-SHA1 with `SECRET&` over
/// `GET&%2F&` and the sorted, percent-encoded query without `Signature`.
fn aliyun_expects(query: &BTreeMap<String, String>, secret: &str) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let canonical: Vec<String> =
        query.iter().filter(|(k, _)| *k != "Signature").map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect();
    let to_sign = format!("GET&%2F&{}", enc(&canonical.join("&")));
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(format!("{secret}&").as_bytes()).unwrap();
    mac.update(to_sign.as_bytes());
    let bytes = mac.finalize().into_bytes();
    closeloop::transport::base64(&bytes)
}

#[test]
fn aliyun_sms_is_signed_as_aliyun_checks_it_and_its_codes_decide_retry_or_dead_letter() {
    let code = Arc::new(Mutex::new("OK".to_string()));
    let answer = code.clone();
    let ali = StandIn::start(move |r| {
        if aliyun_expects(&r.query, "ak-secret") != r.query.get("Signature").cloned().unwrap_or_default() {
            return (400, json!({"Code": "SignatureDoesNotMatch", "Message": "Specified signature is not matched"}));
        }
        let code = answer.lock().unwrap().clone();
        (200, json!({"Code": code, "Message": "stand-in", "BizId": "900619746936498440^0", "RequestId": "r1"}))
    });
    let mut rt = world(TEAM);
    set(
        &mut rt,
        "ali",
        &[
            ("access_key_id", "LTAI-test"),
            ("access_key_secret", "ak-secret"),
            ("sign_name", "闭环科技"),
            ("template_code", "SMS_71390007"),
            ("base_url", &ali.base),
        ],
    );
    // The provider's secret never shows, in `channels` or on the ops page.
    let shown = rt.channels().unwrap();
    let ali_view = shown.iter().find(|c| c.channel == "ali").unwrap();
    assert!(ali_view.settings["access_key_secret"].starts_with("ak…"), "{:?}", ali_view.settings);
    ticket(&mut rt, "ali", "m_li");
    assert_eq!(outcomes(&mut rt), [(DeliveryOutcome::Sent, None)]);
    let sent = &ali.requests("/")[0];
    assert_eq!(sent.method, "GET");
    assert_eq!((sent.query["Action"].as_str(), sent.query["PhoneNumbers"].as_str()), ("SendSms", "13800138000"));
    assert_eq!((sent.query["SignName"].as_str(), sent.query["TemplateCode"].as_str()), ("闭环科技", "SMS_71390007"));
    let param: Value = serde_json::from_str(&sent.query["TemplateParam"]).unwrap();
    assert!(param["content"].as_str().unwrap().contains("打印机卡纸"), "{param}");
    // A business rate limit is tried again; an illegal number is not.
    *code.lock().unwrap() = "isv.BUSINESS_LIMIT_CONTROL".into();
    ticket(&mut rt, "ali", "m_li");
    assert_eq!(outcomes(&mut rt)[0].0, DeliveryOutcome::Retry);
    *code.lock().unwrap() = "isv.MOBILE_NUMBER_ILLEGAL".into();
    ticket(&mut rt, "ali", "m_li");
    assert!(outcomes(&mut rt)
        .iter()
        .any(|(o, e)| *o == DeliveryOutcome::Dead && e.as_deref().unwrap().contains("MOBILE_NUMBER_ILLEGAL")));
    // The wrong secret: the stand-in refuses the signature, and no retry mends that.
    let mut wrong = world(TEAM);
    set(
        &mut wrong,
        "ali",
        &[
            ("access_key_id", "LTAI-test"),
            ("access_key_secret", "not-it"),
            ("sign_name", "闭环科技"),
            ("template_code", "SMS_71390007"),
            ("base_url", &ali.base),
        ],
    );
    ticket(&mut wrong, "ali", "m_li");
    assert_eq!(outcomes(&mut wrong)[0].0, DeliveryOutcome::Dead);
}

/// Tencent's TC3-HMAC-SHA256 as the provider checks it, from what arrived.
fn tencent_expects(r: &Req, secret_key: &str) -> String {
    let hmac = |key: &[u8], data: &[u8]| {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    };
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let unix: i64 = r.headers["x-tc-timestamp"].parse().unwrap();
    let date = jiff::Timestamp::from_second(unix).unwrap().strftime("%Y-%m-%d").to_string();
    let canonical = format!(
        "POST\n/\n\ncontent-type:{}\nhost:{}\n\ncontent-type;host\n{}",
        r.headers["content-type"],
        r.headers["host"],
        hex(&Sha256::digest(r.body.as_bytes()))
    );
    let to_sign =
        format!("TC3-HMAC-SHA256\n{unix}\n{date}/sms/tc3_request\n{}", hex(&Sha256::digest(canonical.as_bytes())));
    let k = hmac(&hmac(&hmac(format!("TC3{secret_key}").as_bytes(), date.as_bytes()), b"sms"), b"tc3_request");
    hex(&hmac(&k, to_sign.as_bytes()))
}

#[test]
fn tencent_sms_is_signed_as_tencent_cloud_checks_it_and_its_codes_decide_retry_or_dead_letter() {
    let code = Arc::new(Mutex::new("Ok".to_string()));
    let answer = code.clone();
    let tc = StandIn::start(move |r| {
        let auth = r.headers.get("authorization").cloned().unwrap_or_default();
        let given = auth.split("Signature=").nth(1).unwrap_or_default();
        if given != tencent_expects(r, "tc-secret") || !auth.contains("Credential=AKID-test/") {
            return (
                200,
                json!({"Response": {"Error": {"Code": "AuthFailure.SignatureFailure", "Message": "bad signature"}}}),
            );
        }
        if r.headers.get("x-tc-action").map(String::as_str) != Some("SendSms") {
            return (200, json!({"Response": {"Error": {"Code": "InvalidAction", "Message": "?"}}}));
        }
        let code = answer.lock().unwrap().clone();
        (
            200,
            json!({"Response": {"SendStatusSet": [{"Code": code, "Message": "stand-in", "SerialNo": "2640:1"}], "RequestId": "r1"}}),
        )
    });
    let mut rt = world(TEAM);
    set(
        &mut rt,
        "tc",
        &[
            ("secret_id", "AKID-test"),
            ("secret_key", "tc-secret"),
            ("sdk_app_id", "1400006666"),
            ("sign_name", "闭环科技"),
            ("template_id", "449739"),
            ("base_url", &tc.base),
        ],
    );
    ticket(&mut rt, "tc", "m_li");
    assert_eq!(outcomes(&mut rt), [(DeliveryOutcome::Sent, None)]);
    let sent: Value = serde_json::from_str(&tc.requests("/")[0].body).unwrap();
    assert_eq!(sent["PhoneNumberSet"], json!(["+8613800138000"]));
    assert_eq!((sent["SmsSdkAppId"].as_str(), sent["TemplateId"].as_str()), (Some("1400006666"), Some("449739")));
    assert!(sent["TemplateParamSet"][0].as_str().unwrap().contains("打印机卡纸"));
    *code.lock().unwrap() = "LimitExceeded.PhoneNumberDailyLimit".into();
    ticket(&mut rt, "tc", "m_li");
    assert_eq!(outcomes(&mut rt)[0].0, DeliveryOutcome::Retry);
    *code.lock().unwrap() = "InvalidParameterValue.IncorrectPhoneNumber".into();
    ticket(&mut rt, "tc", "m_li");
    assert!(outcomes(&mut rt).iter().any(|(o, _)| *o == DeliveryOutcome::Dead));
    let mut wrong = world(TEAM);
    set(
        &mut wrong,
        "tc",
        &[
            ("secret_id", "AKID-test"),
            ("secret_key", "not-it"),
            ("sdk_app_id", "1400006666"),
            ("sign_name", "闭环科技"),
            ("template_id", "449739"),
            ("base_url", &tc.base),
        ],
    );
    ticket(&mut wrong, "tc", "m_li");
    let said = outcomes(&mut wrong);
    assert!(
        said[0].0 == DeliveryOutcome::Dead && said[0].1.as_deref().unwrap().contains("SignatureFailure"),
        "{said:?}"
    );
}

#[test]
fn installing_an_app_warns_about_members_its_channels_cannot_reach() {
    let clock = Arc::new(ManualClock::new("2026-11-26T09:00:00+08:00".parse().unwrap()));
    let mut rt = Runtime::open(crate::support::fresh_store(), clock).unwrap();
    rt.install(&AppFiles { app_yaml: APP.into(), ..AppFiles::default() }, "system", false).unwrap();
    let report = rt.import_members(TEAM.as_bytes(), "system").unwrap();
    assert!(report.warnings.iter().any(|w| w.contains("wecom_userid") && w.contains("m_new")), "{:?}", report.warnings);
    let again = rt.install(&AppFiles { app_yaml: APP.into(), ..AppFiles::default() }, "system", false).unwrap();
    let codes: Vec<String> = again.warnings.iter().map(|d| d.code.to_string()).collect();
    assert_eq!(codes.iter().filter(|c| *c == "MEMBER_UNREACHABLE").count(), 4, "{:?}", again.warnings);
    assert!(again.warnings.iter().all(|d| d.message.contains("m_new") && !d.message.contains("m_li")));
}
