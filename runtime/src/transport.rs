//! Sending one message over one channel: a webhook (JSON POST, HMAC-signed), the WeCom,
//! DingTalk and SMS webhook presets, messages to one person through WeCom and DingTalk
//! applications, Aliyun and Tencent Cloud SMS (`providers.rs`), email over SMTP (plain,
//! STARTTLS or TLS), or the log.
//!
//! Each send is one blocking call with a timeout; the deliverer runs each channel on its own
//! thread, so a slow endpoint holds up only its own channel. Settings (URLs, secrets, SMTP
//! hosts) come from install configuration, never from an app's YAML.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::model::ChannelKind;

mod providers;

/// A message on its way out.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    /// The outbox id.
    pub id: i64,
    /// The idempotency key: the same on every attempt.
    pub key: &'a str,
    /// The channel's id.
    pub channel: &'a str,
    /// The member (or `customer`) it is for.
    pub to: &'a str,
    /// The phone, email address or member id the channel sends to.
    pub address: Option<&'a str>,
    /// The subject, for email.
    pub subject: Option<&'a str>,
    /// The text.
    pub body: &'a str,
    /// The record's form and id.
    pub form: Option<&'a str>,
    /// The record.
    pub record: Option<&'a str>,
}

/// Why a send did not go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What the other side answered, when it answered (`500`, `550 mailbox unavailable`).
    pub status: Option<String>,
    /// In words.
    pub error: String,
    /// Trying again cannot help (a 4xx answer, no address): straight to the dead letters.
    pub permanent: bool,
}

impl Failure {
    /// A failure worth trying again (the endpoint is down, slow, or said 5xx).
    pub fn retry(error: impl Into<String>) -> Self {
        Failure { status: None, error: error.into(), permanent: false }
    }

    /// A failure no retry can mend (a 4xx answer, no address).
    pub fn permanent(error: impl Into<String>) -> Self {
        Failure { status: None, error: error.into(), permanent: true }
    }
}

/// A channel's settings: `url`, `secret`, `timeout_ms`; for email `host`, `port`, `tls`
/// (`none`, `starttls`, `tls`), `username`, `password`, `from`.
pub type Settings = BTreeMap<String, String>;

/// Settings whose values are never shown: these, and any whose name contains `secret`.
pub const SECRET_KEYS: &[&str] = &["secret", "password", "token", "appsecret", "access_key_secret", "secret_key"];

/// Whether a setting's value is a credential, never shown.
pub fn is_secret(key: &str) -> bool {
    SECRET_KEYS.contains(&key) || key.contains("secret") || key.contains("password") || key.contains("token")
}

/// The settings a channel kind needs before anything is sent; a channel missing one waits.
pub fn required(kind: ChannelKind) -> &'static [&'static str] {
    match kind {
        ChannelKind::Log => &[],
        ChannelKind::Webhook | ChannelKind::Sms | ChannelKind::Wecom | ChannelKind::Dingtalk => &["url"],
        ChannelKind::Email => &["host", "from"],
        ChannelKind::WecomApp => &["corpid", "secret", "agentid"],
        ChannelKind::DingtalkWork => &["appkey", "appsecret", "agent_id"],
        ChannelKind::AliyunSms => &["access_key_id", "access_key_secret", "sign_name", "template_code"],
        ChannelKind::TencentSms => &["secret_id", "secret_key", "sdk_app_id", "sign_name", "template_id"],
    }
}

/// The settings a channel kind understands.
pub fn known(kind: ChannelKind) -> &'static [&'static str] {
    match kind {
        ChannelKind::Log => &[],
        ChannelKind::Webhook | ChannelKind::Sms | ChannelKind::Wecom | ChannelKind::Dingtalk => {
            &["url", "secret", "timeout_ms"]
        }
        ChannelKind::Email => &["host", "port", "tls", "username", "password", "from", "timeout_ms"],
        ChannelKind::WecomApp => &["corpid", "secret", "agentid", "base_url", "timeout_ms"],
        ChannelKind::DingtalkWork => &["appkey", "appsecret", "agent_id", "base_url", "timeout_ms"],
        ChannelKind::AliyunSms => &[
            "access_key_id",
            "access_key_secret",
            "sign_name",
            "template_code",
            "template_param",
            "base_url",
            "timeout_ms",
        ],
        ChannelKind::TencentSms => {
            &["secret_id", "secret_key", "sdk_app_id", "sign_name", "template_id", "region", "base_url", "timeout_ms"]
        }
    }
}

/// Checks one setting's value before it is stored; says what is wrong.
pub fn check_setting(key: &str, value: &str) -> Result<(), String> {
    match key {
        "url" | "base_url"
            if !(value.starts_with("https://") || value.starts_with("http://"))
                || value.contains(char::is_whitespace)
                || value
                    .split("://")
                    .nth(1)
                    .is_none_or(|rest| rest.split(['/', '?']).next().unwrap_or("").is_empty()) =>
        {
            Err(format!("`{key}` must be an http:// or https:// address with no spaces"))
        }
        "agentid" | "agent_id" | "sdk_app_id" if value.parse::<u64>().is_err() => {
            Err(format!("`{key}` is the number the console shows for the application"))
        }
        "tls" if !["none", "starttls", "tls"].contains(&value) => {
            Err("`tls` is `none`, `starttls` (the default) or `tls`".into())
        }
        "port" if value.parse::<u16>().map_or(true, |p| p == 0) => Err("`port` is a number from 1 to 65535".into()),
        "timeout_ms" if value.parse::<u64>().map_or(true, |t| !(100..=120_000).contains(&t)) => {
            Err("`timeout_ms` is a number of milliseconds from 100 to 120000".into())
        }
        _ => Ok(()),
    }
}

/// A URL as it may be shown: the values in its query (WeCom's `key`, DingTalk's
/// `access_token`) are credentials, so only their first characters are kept.
pub fn masked_url(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else { return url.to_string() };
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !v.is_empty() => format!("{k}={}…", v.chars().take(2).collect::<String>()),
            _ => pair.to_string(),
        })
        .collect();
    format!("{base}?{}", parts.join("&"))
}

pub(crate) fn timeout(settings: &Settings) -> Duration {
    let ms = settings.get("timeout_ms").and_then(|t| t.parse::<u64>().ok()).unwrap_or(10_000);
    Duration::from_millis(ms.clamp(100, 120_000))
}

/// How messages leave: one message over one channel, answering what the other side said.
/// closeloop's own is [`Network`] (webhook POSTs, the WeCom/DingTalk/SMS presets, SMTP); an
/// embedder may inject another with `Runtime::set_transport`, as the clock is injected (a
/// company mail relay library, a recorder in tests). It runs on delivery threads, never inside
/// a transaction.
pub trait Transport: Send + Sync {
    /// Sends `message` over a channel of `kind` with its `settings`, at `now` (for signatures
    /// and mail dates).
    fn send(
        &self,
        kind: ChannelKind,
        settings: &Settings,
        message: &Outgoing<'_>,
        now: jiff::Timestamp,
    ) -> Result<String, Failure>;
}

/// The transports closeloop ships: HTTP(S) for webhooks and the chat and SMS presets, SMTP for
/// email, nothing for the log.
#[derive(Debug, Clone, Copy, Default)]
pub struct Network;

impl Transport for Network {
    fn send(
        &self,
        kind: ChannelKind,
        settings: &Settings,
        message: &Outgoing<'_>,
        now: jiff::Timestamp,
    ) -> Result<String, Failure> {
        send(kind, settings, message, now)
    }
}

/// Sends one message; returns what the other side answered.
pub fn send(kind: ChannelKind, settings: &Settings, m: &Outgoing<'_>, now: jiff::Timestamp) -> Result<String, Failure> {
    match kind {
        ChannelKind::Log => Ok("logged".into()),
        ChannelKind::Email => smtp(settings, m, now),
        ChannelKind::WecomApp => providers::wecom_app(settings, m),
        ChannelKind::DingtalkWork => providers::dingtalk_work(settings, m),
        ChannelKind::AliyunSms => providers::aliyun_sms(settings, m, now),
        ChannelKind::TencentSms => providers::tencent_sms(settings, m, now),
        _ => webhook(kind, settings, m, now),
    }
}

/// `t=UNIX,v1=HEX`: HMAC-SHA256 with the channel's secret over `UNIX.BODY`. A receiver
/// recomputes it (see docs/notifications.md) and refuses old timestamps.
pub fn signature(secret: &str, unix: i64, body: &str) -> String {
    format!("t={unix},v1={}", hex(&hmac(secret.as_bytes(), format!("{unix}.{body}").as_bytes())))
}

pub(crate) fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length.
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Standard base64 with padding (RFC 4648): for SMTP's encoded words and bodies and
/// DingTalk's signature. Small enough that a crate would weigh more than it.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(crate) fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The JSON a channel kind posts.
fn payload(kind: ChannelKind, m: &Outgoing<'_>) -> serde_json::Value {
    match kind {
        // WeCom group robots: text, mentioning the member by id.
        ChannelKind::Wecom => {
            json!({"msgtype": "text", "text": {"content": m.body, "mentioned_list": m.address.into_iter().collect::<Vec<_>>()}})
        }
        // DingTalk robots: text, @ the member by user id.
        ChannelKind::Dingtalk => {
            json!({"msgtype": "text", "text": {"content": m.body}, "at": {"atUserIds": m.address.into_iter().collect::<Vec<_>>()}})
        }
        // An SMS gateway: the phone and the text.
        ChannelKind::Sms => json!({"phone": m.address, "text": m.body, "key": m.key}),
        _ => json!({"id": m.id, "key": m.key, "channel": m.channel, "to": m.to, "address": m.address,
                    "subject": m.subject, "body": m.body, "form": m.form, "record": m.record}),
    }
}

fn webhook(kind: ChannelKind, settings: &Settings, m: &Outgoing<'_>, now: jiff::Timestamp) -> Result<String, Failure> {
    let Some(url) = settings.get("url") else { return Err(Failure::permanent("the channel has no `url`")) };
    if kind == ChannelKind::Sms && m.address.is_none() {
        return Err(Failure::permanent(format!(
            "no phone number for `{}`: add one to the member directory (a `phone` column)",
            m.to
        )));
    }
    let body = payload(kind, m).to_string();
    let unix = now.as_second();
    let mut url = url.clone();
    if let (ChannelKind::Dingtalk, Some(secret)) = (kind, settings.get("secret")) {
        // DingTalk's own signing: the timestamp in ms and the secret, in the URL.
        let ms = now.as_millisecond();
        let sign = base64(&hmac(secret.as_bytes(), format!("{ms}\n{secret}").as_bytes()));
        let join = if url.contains('?') { '&' } else { '?' };
        url = format!("{url}{join}timestamp={ms}&sign={}", percent_encode(&sign));
    }
    // No redirects: following one would turn the POST into a GET and lose the message.
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout(settings)))
        .http_status_as_error(false)
        .max_redirects(0)
        .build();
    let agent = ureq::Agent::new_with_config(config);
    // Errors never echo the URL: its query may hold the channel's credential.
    let scrub = |text: String| text.replace(url.as_str(), &masked_url(&url));
    let mut request = agent
        .post(&url)
        .header("Content-Type", "application/json; charset=utf-8")
        .header("Idempotency-Key", m.key)
        .header("X-Closeloop-Key", m.key);
    if let Some(secret) = settings.get("secret") {
        request = request.header("X-Closeloop-Signature", signature(secret, unix, &body));
    }
    let mut response = request.send(body.as_str()).map_err(|e| match e {
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => {
            Failure::permanent(format!("the channel's url is not a valid address ({})", masked_url(&url)))
        }
        e => Failure::retry(scrub(e.to_string())),
    })?;
    let status = response.status().as_u16();
    match status {
        200..=299 if matches!(kind, ChannelKind::Wecom | ChannelKind::Dingtalk) => {
            // The robots answer 200 with an error code in the body for real failures.
            let text = response.body_mut().with_config().limit(65_536).read_to_string().unwrap_or_default();
            let answer: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            match answer["errcode"].as_i64() {
                Some(0) | None => Ok(status.to_string()),
                Some(code) => {
                    let message = answer["errmsg"].as_str().unwrap_or("").to_string();
                    // 45009 (WeCom) and 130101 (DingTalk): too many messages a minute; -1: busy.
                    let permanent = !matches!(code, 45009 | 130101 | -1);
                    Err(Failure {
                        status: Some(code.to_string()),
                        error: format!("errcode {code}: {message}"),
                        permanent,
                    })
                }
            }
        }
        200..=299 => Ok(status.to_string()),
        300..=399 => Err(Failure {
            status: Some(status.to_string()),
            error: format!("HTTP {status}: the url redirects; set the address it redirects to"),
            permanent: true,
        }),
        // Asked to slow down, or timed out at the other end: worth another try.
        408 | 425 | 429 => {
            Err(Failure { status: Some(status.to_string()), error: format!("HTTP {status}"), permanent: false })
        }
        400..=499 => Err(Failure {
            status: Some(status.to_string()),
            error: format!("HTTP {status}: the endpoint refused the message"),
            permanent: true,
        }),
        _ => Err(Failure { status: Some(status.to_string()), error: format!("HTTP {status}"), permanent: false }),
    }
}

/// One SMTP conversation, over a plain or an encrypted stream.
struct Smtp<S: Read + Write> {
    reader: BufReader<S>,
}

impl<S: Read + Write> Smtp<S> {
    /// Reads a reply (all its lines); fails unless its code starts with `expect`.
    fn reply(&mut self, expect: char) -> Result<String, Failure> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).map_err(|e| Failure::retry(format!("SMTP: {e}")))?;
            if n == 0 {
                return Err(Failure::retry("SMTP: the server closed the connection"));
            }
            text.push_str(line.trim_end());
            // `250-…` continues, `250 …` ends.
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
            text.push('\n');
        }
        if text.starts_with(expect) {
            Ok(text)
        } else {
            let permanent = text.starts_with('5');
            let code = text.get(..3).unwrap_or("").to_string();
            Err(Failure { status: Some(code), error: format!("SMTP: {}", text.replace('\n', " ")), permanent })
        }
    }

    fn write(&mut self, text: &str) -> Result<(), Failure> {
        let stream = self.reader.get_mut();
        stream.write_all(text.as_bytes()).map_err(|e| Failure::retry(format!("SMTP: {e}")))?;
        stream.flush().map_err(|e| Failure::retry(format!("SMTP: {e}")))
    }

    fn command(&mut self, line: &str, expect: char) -> Result<String, Failure> {
        self.write(&format!("{line}\r\n"))?;
        self.reply(expect)
    }
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn tls(host: &str, tcp: TcpStream) -> Result<Tls, Failure> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::permanent(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| Failure::permanent(format!("TLS: `{host}`: {e}")))?;
    let conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| Failure::retry(format!("TLS: {e}")))?;
    Ok(rustls::StreamOwned::new(conn, tcp))
}

/// RFC 2047 encoded words, so a Chinese subject survives every mail server: each word at most
/// 75 characters (whole characters, never a split one), folded onto continuation lines.
fn encoded_word(text: &str) -> String {
    if text.is_ascii() && !text.contains(['\r', '\n']) && text.len() <= 900 {
        return text.to_string();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars().filter(|c| !matches!(c, '\r' | '\n')) {
        // 45 bytes of UTF-8 become 60 characters of base64, 72 with the markers.
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", base64(chunk.as_bytes())));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() || words.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", base64(chunk.as_bytes())));
    }
    words.join("\r\n ")
}

fn smtp(settings: &Settings, m: &Outgoing<'_>, now: jiff::Timestamp) -> Result<String, Failure> {
    let (Some(host), Some(from)) = (settings.get("host"), settings.get("from")) else {
        return Err(Failure::permanent("the email channel needs `host` and `from`"));
    };
    let Some(to) = m.address.filter(|a| a.contains('@')) else {
        return Err(Failure::permanent(format!(
            "no email address for `{}`: add one to the member directory (an `email` column)",
            m.to
        )));
    };
    if [from.as_str(), to].iter().any(|a| a.contains(['\r', '\n', '<', '>'])) {
        return Err(Failure::permanent("an email address may not contain line breaks or angle brackets"));
    }
    let mode = settings.get("tls").map(String::as_str).unwrap_or("starttls");
    if !["none", "starttls", "tls"].contains(&mode) {
        return Err(Failure::permanent("`tls` is `none`, `starttls` or `tls`"));
    }
    let port: u16 = settings.get("port").and_then(|p| p.parse().ok()).unwrap_or(if mode == "tls" { 465 } else { 25 });
    let limit = timeout(settings);
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| Failure::retry(format!("SMTP: cannot resolve {host}: {e}")))?
        .next()
        .ok_or_else(|| Failure::retry(format!("SMTP: no address for {host}")))?;
    let connect = || -> Result<TcpStream, Failure> {
        let tcp = TcpStream::connect_timeout(&addr, limit).map_err(|e| Failure::retry(format!("SMTP: {e}")))?;
        tcp.set_read_timeout(Some(limit)).map_err(|e| Failure::retry(e.to_string()))?;
        tcp.set_write_timeout(Some(limit)).map_err(|e| Failure::retry(e.to_string()))?;
        Ok(tcp)
    };
    let tcp = connect()?;
    if mode == "tls" {
        let mut s = Smtp { reader: BufReader::new(tls(host, tcp)?) };
        s.reply('2')?;
        s.command("EHLO closeloop", '2')?;
        return finish(s, settings, m, from, to, now);
    }
    let mut s = Smtp { reader: BufReader::new(tcp) };
    s.reply('2')?;
    let ehlo = s.command("EHLO closeloop", '2')?;
    if mode == "starttls" && ehlo.lines().any(|l| l.get(4..).is_some_and(|k| k.eq_ignore_ascii_case("STARTTLS"))) {
        s.command("STARTTLS", '2')?;
        // The server now waits for the handshake: nothing is left in the read buffer.
        let mut s = Smtp { reader: BufReader::new(tls(host, s.reader.into_inner())?) };
        s.command("EHLO closeloop", '2')?;
        return finish(s, settings, m, from, to, now);
    }
    if mode == "starttls" && settings.contains_key("password") {
        return Err(Failure::permanent(
            "the SMTP server does not offer STARTTLS; refusing to send the password in the clear (set tls=none to allow it)",
        ));
    }
    finish(s, settings, m, from, to, now)
}

fn finish<S: Read + Write>(
    mut s: Smtp<S>,
    settings: &Settings,
    m: &Outgoing<'_>,
    from: &str,
    to: &str,
    now: jiff::Timestamp,
) -> Result<String, Failure> {
    if let (Some(user), Some(password)) = (settings.get("username"), settings.get("password")) {
        s.command(&format!("AUTH PLAIN {}", base64(format!("\0{user}\0{password}").as_bytes())), '2')?;
    }
    s.command(&format!("MAIL FROM:<{from}>"), '2')?;
    s.command(&format!("RCPT TO:<{to}>"), '2')?;
    s.command("DATA", '3')?;
    let date = now.strftime("%a, %d %b %Y %H:%M:%S +0000").to_string();
    let subject = encoded_word(m.subject.unwrap_or(m.body.lines().next().unwrap_or("closeloop")));
    let mut message = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{}@closeloop>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n",
        percent_encode(m.key)
    );
    // Base64 lines never start with a dot, so no dot-stuffing is needed.
    let encoded = base64(m.body.as_bytes());
    for line in encoded.as_bytes().chunks(76) {
        message.push_str(&String::from_utf8_lossy(line));
        message.push_str("\r\n");
    }
    message.push_str(".\r\n");
    s.write(&message)?;
    let accepted = s.reply('2')?;
    let _ = s.command("QUIT", '2');
    Ok(accepted.lines().next().unwrap_or("250").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64("新线索".as_bytes()), "5paw57q/57Si");
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231 test case 2.
        let mac = hmac(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex(&mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn chinese_subjects_are_encoded_words() {
        assert_eq!(encoded_word("Hello"), "Hello");
        assert_eq!(encoded_word("新线索"), "=?UTF-8?B?5paw57q/57Si?=");
        let long = encoded_word(&"客户成功".repeat(10));
        assert!(long.split("\r\n ").all(|w| w.len() <= 75 && w.starts_with("=?UTF-8?B?")), "{long}");
        assert_eq!(long.split("\r\n ").count(), 3);
    }

    #[test]
    fn urls_are_shown_without_their_credentials() {
        assert_eq!(
            masked_url("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693axxx6-7aoc"),
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=69…"
        );
        assert_eq!(masked_url("http://127.0.0.1:8080/hook"), "http://127.0.0.1:8080/hook");
        assert!(check_setting("url", "qyapi.weixin.qq.com/send").is_err());
        assert!(check_setting("tls", "STARTTLS").is_err());
        assert!(check_setting("port", "0").is_err());
        assert!(check_setting("port", "587").is_ok());
    }
}
