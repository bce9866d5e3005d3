//! Members sign in: a password (argon2id) or an API token, and a session that follows.
//!
//! - A password is at least 10 characters; only its argon2id hash is stored. Ops set or reset
//!   it (`closeloop members password`); a member changes their own with the old one.
//! - A session id and an API token are 32 random bytes shown once; the store keeps their
//!   SHA-256 digests. A session ends after [`SESSION_IDLE`] unused or [`SESSION_LIFE`] in all.
//! - Ten wrong passwords in [`LOCK_WINDOW`] lock the account for that long (audited as
//!   `member.locked`); fifty from one client address lock the address.
//! - A deactivated member's sessions and tokens stop working at once: each use checks them.
//!
//! The same answer ("the member id or password is wrong") is given for an unknown member and a
//! wrong password, after the same work, so sign-in does not tell who exists.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use ring::rand::SecureRandom;
use serde::Serialize;
use serde_json::json;

use crate::engine::{EngineError, Runtime};
use crate::store::audit::{self, NewEvent};
use crate::store::identity::{self as ids, SessionRow, TokenRow};
use crate::store::{members, sha256_hex, MemberRow};

/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 10;
/// The longest password accepted (argon2 reads all of it).
pub const MAX_PASSWORD: usize = 1024;
/// A session unused this long has ended.
pub const SESSION_IDLE: jiff::SignedDuration = jiff::SignedDuration::from_hours(12);
/// A session ends this long after sign-in, used or not.
pub const SESSION_LIFE: jiff::SignedDuration = jiff::SignedDuration::from_hours(7 * 24);
/// The window in which failed sign-ins count, and how long a lock lasts.
pub const LOCK_WINDOW: jiff::SignedDuration = jiff::SignedDuration::from_mins(15);
/// Wrong passwords for one account in the window that lock it.
pub const ACCOUNT_LIMIT: i64 = 10;
/// Failed sign-ins from one client address in the window that lock the address.
pub const ADDRESS_LIMIT: i64 = 50;
/// How long a one-time sign-in link works.
pub const LINK_LIFE: jiff::SignedDuration = jiff::SignedDuration::from_mins(15);
/// Sign-in links one member may be sent in [`LOCK_WINDOW`].
pub const LINKS_PER_WINDOW: i64 = 5;

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    /// Post events only (`POST /api/events/…`).
    Events,
    /// Read what its member may read.
    Read,
    /// Read and write as its member.
    Write,
}

impl TokenScope {
    /// The scope named `events`, `read` or `write`.
    pub fn parse(text: &str) -> Option<TokenScope> {
        match text {
            "events" => Some(TokenScope::Events),
            "read" => Some(TokenScope::Read),
            "write" => Some(TokenScope::Write),
            _ => None,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Events => "events",
            TokenScope::Read => "read",
            TokenScope::Write => "write",
        }
    }
}

/// A new session: its secret id (shown once, for the cookie) and its CSRF token.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The session id: the cookie's value.
    pub id: String,
    /// The CSRF token a page sends back with each write.
    pub csrf: String,
    /// The member signed in.
    pub member: String,
    /// When it ends at the latest.
    pub ends_at: String,
}

/// Who a request acts as, once its session or token checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The member.
    pub member: String,
    /// `None` for a session (all the member may do), else the token's scope.
    pub scope: Option<TokenScope>,
    /// For a session: the digest of its CSRF token, which every write must match.
    pub csrf: Option<String>,
}

/// 32 random bytes as 64 hex digits.
fn secret() -> Result<String, EngineError> {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| EngineError::Input("the system's random source failed".into()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn hash_password(password: &str) -> Result<String, EngineError> {
    let mut salt = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| EngineError::Input("the system's random source failed".into()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| EngineError::Input(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| EngineError::Input(format!("the password cannot be hashed: {e}")))
}

/// Checks `password` against a stored hash; with none, against a hash of nothing, so an
/// unknown member costs what a known one does.
fn verify(password: &str, stored: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password("closeloop: no such member").unwrap_or_default());
    let known = stored.is_some();
    let Ok(parsed) = PasswordHash::new(stored.unwrap_or(dummy)) else { return false };
    Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok() && known
}

fn check_password(password: &str) -> Result<(), EngineError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(EngineError::Input(format!(
            "a password needs at least {MIN_PASSWORD} characters (密码至少 {MIN_PASSWORD} 个字符)"
        )));
    }
    if password.len() > MAX_PASSWORD {
        return Err(EngineError::Input(format!("a password is at most {MAX_PASSWORD} bytes")));
    }
    Ok(())
}

fn wrong() -> EngineError {
    EngineError::Unauthorized("the member id or password is wrong (成员编号或密码错误)".into())
}

impl Runtime {
    fn active_member(&self, id: &str) -> Result<MemberRow, EngineError> {
        let m = members::get(self.store.reader(), id)?.ok_or_else(|| EngineError::UnknownMember(id.into()))?;
        if !m.active {
            return Err(EngineError::InactiveMember(id.into()));
        }
        Ok(m)
    }

    /// Sets `member`'s password, as ops (`actor` is the operator) or as the member with their
    /// current password (`current`). Their other sessions end. Audited, never the password.
    pub fn set_password(
        &mut self,
        member: &str,
        password: &str,
        current: Option<&str>,
        actor: &str,
    ) -> Result<(), EngineError> {
        self.active_member(member)?;
        check_password(password)?;
        if let Some(current) = current {
            let stored = ids::password_hash(self.store.reader(), member)?;
            if !verify(current, stored.as_deref()) {
                return Err(EngineError::Refused("the current password is wrong (当前密码错误)".into()));
            }
        }
        let hash = hash_password(password)?;
        let at = self.now();
        self.store.write(|tx| {
            ids::set_password_hash(tx, member, &hash, &at)?;
            ids::end_sessions_of(tx, member)?;
            let body = json!({"member": member}).to_string();
            audit::append(
                tx,
                &NewEvent { record: Some(member), ..NewEvent::note(&at, actor, "member.password_set", None, &body) },
            )?;
            Ok::<_, EngineError>(())
        })
    }

    /// Signs `member` in with `password` from `address` (the client's IP, for throttling).
    pub fn sign_in(&mut self, member: &str, password: &str, address: &str) -> Result<NewSession, EngineError> {
        let now = self.clock.now();
        let at = crate::clock::stamp(now);
        let since = crate::clock::stamp(now - LOCK_WINDOW);
        let (who, from) = (format!("member:{member}"), format!("address:{address}"));
        let reader = self.store.reader();
        if ids::failures_since(reader, &from, &since)? >= ADDRESS_LIMIT {
            return Err(EngineError::Locked("too many failed sign-ins from this address; try again in 15 minutes (登录失败次数过多，请 15 分钟后再试)".into()));
        }
        if ids::failures_since(reader, &who, &since)? >= ACCOUNT_LIMIT {
            return Err(EngineError::Locked(format!("`{member}` is locked after {ACCOUNT_LIMIT} wrong passwords; try again in 15 minutes, or ask ops to reset the password (账号已锁定)")));
        }
        let stored = ids::password_hash(reader, member)?;
        let active = members::get(reader, member)?.is_some_and(|m| m.active);
        if !(verify(password, stored.as_deref()) && active) {
            self.store.write(|tx| {
                ids::note_failure(tx, &who, &at)?;
                ids::note_failure(tx, &from, &at)?;
                if ids::failures_since(tx, &who, &since)? == ACCOUNT_LIMIT {
                    let body = json!({"member": member, "failures": ACCOUNT_LIMIT, "address": address, "for": "15m"});
                    let body = body.to_string();
                    let event =
                        NewEvent { record: Some(member), ..NewEvent::note(&at, member, "member.locked", None, &body) };
                    audit::append(tx, &event)?;
                }
                Ok::<_, EngineError>(())
            })?;
            return Err(wrong());
        }
        self.open_session(member, address, "password", Some(&who))
    }

    /// A new session for `member`: its secrets, the row, and the `member.signed_in` event
    /// saying how (`password`, `link`); `forgive` clears that subject's failed sign-ins.
    fn open_session(
        &mut self,
        member: &str,
        address: &str,
        how: &str,
        forgive: Option<&str>,
    ) -> Result<NewSession, EngineError> {
        let now = self.clock.now();
        let at = crate::clock::stamp(now);
        let (id, csrf) = (secret()?, secret()?);
        let ends_at = crate::clock::stamp(now + SESSION_LIFE);
        let row = SessionRow {
            member: member.to_string(),
            csrf: sha256_hex(csrf.as_bytes()),
            created_at: at.clone(),
            seen_at: at.clone(),
            ends_at: ends_at.clone(),
        };
        self.store.write(|tx| {
            if let Some(subject) = forgive {
                ids::forget_failures(tx, subject)?;
            }
            ids::insert_session(tx, &sha256_hex(id.as_bytes()), &row)?;
            let body = json!({"member": member, "address": address, "with": how}).to_string();
            let event =
                NewEvent { record: Some(member), ..NewEvent::note(&at, member, "member.signed_in", None, &body) };
            audit::append(tx, &event)?;
            Ok::<_, EngineError>(())
        })?;
        Ok(NewSession { id, csrf, member: member.to_string(), ends_at })
    }

    /// Sends `member` a one-time sign-in link through their own channel: an SMS to their phone
    /// or an email, never a group robot (a WeCom or DingTalk group would show it to everyone).
    /// The link is `{base}/sign-in/link?token=…`: opening it (or a chat's preview of it) shows
    /// a button, and only the button's post signs in; it works once, for 15 minutes. The answer
    /// is the same whether or not the member exists, is active, has a channel, or asked too
    /// often (five in 15 minutes), so it tells nobody who exists; whether a link went is audited.
    pub fn send_sign_in_link(&mut self, member: &str, base: &str) -> Result<(), EngineError> {
        let now = self.clock.now();
        let at = crate::clock::stamp(now);
        let reader = self.store.reader();
        let Some(m) = members::get(reader, member)?.filter(|m| m.active) else { return Ok(()) };
        if ids::links_since(reader, member, &crate::clock::stamp(now - LOCK_WINDOW))? >= LINKS_PER_WINDOW {
            return Ok(());
        }
        let personal = [crate::model::ChannelKind::Sms, crate::model::ChannelKind::Email];
        let route = personal.iter().find_map(|kind| {
            let address = crate::engine::delivery::notify::address_for(&m, *kind)?;
            self.apps.values().find_map(|a| {
                let channel = a.app.def.channels.iter().find(|c| c.kind == *kind)?;
                Some((channel.id.clone(), address.clone(), a.app.def.app.language.unwrap_or(crate::model::Lang::Zh)))
            })
        });
        let Some((channel, address, lang)) = route else {
            let body = json!({"member": member, "why": "no SMS or email channel reaches them"}).to_string();
            return self.store.write(|tx| {
                let event = NewEvent {
                    record: Some(member),
                    ..NewEvent::note(&at, "system", "member.sign_in_link_undeliverable", None, &body)
                };
                audit::append(tx, &event).map(|_| ()).map_err(EngineError::from)
            });
        };
        let token = secret()?;
        let digest = sha256_hex(token.as_bytes());
        let url = format!("{}/sign-in/link?token={token}", base.trim_end_matches('/'));
        let (subject, text) = match lang {
            crate::model::Lang::Zh => (
                "closeloop 登录链接",
                format!("{}，这是您的 closeloop 登录链接，15 分钟内有效，仅可使用一次：{url}", m.name),
            ),
            crate::model::Lang::En => (
                "Your closeloop sign-in link",
                format!("{}, here is your closeloop sign-in link. It works once, within 15 minutes: {url}", m.name),
            ),
        };
        let expires_at = crate::clock::stamp(now + LINK_LIFE);
        let row = crate::store::OutboxRow {
            id: 0,
            channel,
            recipient: member.to_string(),
            address: Some(address),
            message: "sign_in_link".into(),
            subject: Some(subject.into()),
            body: text,
            key: format!("sign-in-link/{digest}"),
            form: None,
            record: None,
            status: crate::store::OutboxStatus::Pending,
            attempts: 0,
            created_at: at.clone(),
        };
        self.store.write(|tx| {
            ids::insert_link(tx, &digest, member, &at, &expires_at)?;
            crate::store::outbox::push(tx, &row)?;
            let body = json!({"member": member, "channel": row.channel, "expires_at": expires_at}).to_string();
            let event = NewEvent {
                record: Some(member),
                ..NewEvent::note(&at, "system", "member.sign_in_link_sent", None, &body)
            };
            audit::append(tx, &event)?;
            Ok::<_, EngineError>(())
        })
    }

    /// Signs in with a one-time link's token: once, before it expires, while its member is
    /// active. A used, expired or unknown token gets the same answer.
    pub fn redeem_sign_in_link(&mut self, token: &str, address: &str) -> Result<NewSession, EngineError> {
        let refused = || {
            EngineError::Unauthorized(
                "the sign-in link is used, expired or not valid; ask for a new one (登录链接已失效)".into(),
            )
        };
        let now = self.clock.now();
        let at = crate::clock::stamp(now);
        let from = format!("address:{address}");
        if ids::failures_since(self.store.reader(), &from, &crate::clock::stamp(now - LOCK_WINDOW))? >= ADDRESS_LIMIT {
            return Err(EngineError::Locked("too many failed sign-ins from this address; try again in 15 minutes (登录失败次数过多，请 15 分钟后再试)".into()));
        }
        let digest = sha256_hex(token.as_bytes());
        let member = self.store.write(|tx| {
            let used = ids::use_link(tx, &digest, &at)?;
            if used.is_none() {
                ids::note_failure(tx, &from, &at)?;
            }
            Ok::<_, EngineError>(used)
        })?;
        let member = member.ok_or_else(refused)?;
        if !members::get(self.store.reader(), &member)?.is_some_and(|m| m.active) {
            return Err(refused());
        }
        self.open_session(&member, address, "link", None)
    }

    /// The member a session id stands for, while it lasts and the member is active.
    pub fn session(&mut self, id: &str) -> Result<Principal, EngineError> {
        let digest = sha256_hex(id.as_bytes());
        let expired = || EngineError::Unauthorized("the session has ended; sign in again (登录已失效)".into());
        let row = ids::session(self.store.reader(), &digest)?.ok_or_else(expired)?;
        let now = self.clock.now();
        let seen: jiff::Timestamp = row.seen_at.parse().map_err(|_| expired())?;
        let ends: jiff::Timestamp = row.ends_at.parse().map_err(|_| expired())?;
        if now >= ends || now >= seen + SESSION_IDLE {
            self.store.write(|tx| ids::end_session(tx, &digest).map_err(EngineError::from))?;
            return Err(expired());
        }
        self.active_member(&row.member).map_err(|_| expired())?;
        // Written at most once a minute: reads stay reads.
        if now >= seen + jiff::SignedDuration::from_mins(1) {
            let at = crate::clock::stamp(now);
            self.store.write(|tx| ids::touch_session(tx, &digest, &at).map_err(EngineError::from))?;
        }
        Ok(Principal { member: row.member, scope: None, csrf: Some(row.csrf) })
    }

    /// Ends one session (signing out).
    pub fn sign_out(&mut self, id: &str) -> Result<(), EngineError> {
        let digest = sha256_hex(id.as_bytes());
        self.store.write(|tx| ids::end_session(tx, &digest).map(|_| ()).map_err(EngineError::from))
    }

    /// Ends every session of `member` (signing out everywhere); how many there were.
    pub fn sign_out_everywhere(&mut self, member: &str, actor: &str) -> Result<usize, EngineError> {
        let at = self.now();
        self.store.write(|tx| {
            let n = ids::end_sessions_of(tx, member)?;
            let body = json!({"member": member, "sessions": n}).to_string();
            audit::append(
                tx,
                &NewEvent { record: Some(member), ..NewEvent::note(&at, actor, "member.signed_out", None, &body) },
            )?;
            Ok::<_, EngineError>(n)
        })
    }

    /// Makes an API token named `name` acting as `member` with `scope`; returns it with its
    /// secret, which is shown once and never stored.
    pub fn create_token(
        &mut self,
        name: &str,
        member: &str,
        scope: TokenScope,
        actor: &str,
    ) -> Result<(TokenRow, String), EngineError> {
        self.active_member(member)?;
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid {
            return Err(EngineError::Input(format!(
                "a token's name is 1-64 letters, digits, `-`, `_` or `.`, not \"{name}\""
            )));
        }
        if ids::token_by_name(self.store.reader(), name)?.is_some() {
            return Err(EngineError::Input(format!("a token named `{name}` exists; revoke it or choose another name")));
        }
        let secret = format!("cl_{}", secret()?);
        let at = self.now();
        let mut row = TokenRow {
            id: 0,
            name: name.to_string(),
            member: member.to_string(),
            scope: scope.as_str().to_string(),
            created_at: at.clone(),
            created_by: actor.to_string(),
            revoked_at: None,
        };
        row.id = self.store.write(|tx| {
            let id = ids::insert_token(tx, &sha256_hex(secret.as_bytes()), &row)?;
            let body = json!({"token": name, "member": member, "scope": scope}).to_string();
            audit::append(
                tx,
                &NewEvent { record: Some(member), ..NewEvent::note(&at, actor, "token.created", None, &body) },
            )?;
            Ok::<_, EngineError>(id)
        })?;
        Ok((row, secret))
    }

    /// Every API token, revoked ones too (never their secrets).
    pub fn tokens(&self) -> Result<Vec<TokenRow>, EngineError> {
        Ok(ids::tokens(self.store.reader())?)
    }

    /// Revokes the token named `name`: it stops working at once.
    pub fn revoke_token(&mut self, name: &str, actor: &str) -> Result<(), EngineError> {
        let at = self.now();
        self.store.write(|tx| {
            if ids::revoke_token(tx, name, &at)? == 0 {
                return Err(EngineError::Input(format!("there is no token `{name}` that is not revoked")));
            }
            let body = json!({"token": name}).to_string();
            audit::append(tx, &NewEvent::note(&at, actor, "token.revoked", None, &body))?;
            Ok(())
        })
    }

    /// The member and scope a token's secret stands for, while it is not revoked and its
    /// member is active.
    pub fn token(&self, secret: &str) -> Result<Principal, EngineError> {
        let refused = || EngineError::Unauthorized("the token is not valid (令牌无效或已撤销)".into());
        let row = ids::token_by_digest(self.store.reader(), &sha256_hex(secret.as_bytes()))?.ok_or_else(refused)?;
        if row.revoked_at.is_some() {
            return Err(refused());
        }
        self.active_member(&row.member).map_err(|_| refused())?;
        Ok(Principal { member: row.member, scope: TokenScope::parse(&row.scope), csrf: None })
    }
}

impl Runtime {
    /// Sets where people reach this installation's pages (`https://crm.example.com`): messages
    /// then carry `{{ link }}`, the record's page there. Audited.
    pub fn set_public_url(&mut self, url: &str, actor: &str) -> Result<(), EngineError> {
        let url = url.trim().trim_end_matches('/');
        let valid = (url.starts_with("https://") || url.starts_with("http://"))
            && url.len() <= 200
            && !url.contains(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>');
        if !valid {
            return Err(EngineError::Input(format!(
                "the public address is an http(s) URL such as https://crm.example.com, not \"{url}\""
            )));
        }
        let at = self.now();
        self.store.write(|tx| {
            ids::set_setting(tx, "public_url", url, &at)?;
            let body = json!({"public_url": url}).to_string();
            audit::append(tx, &NewEvent::note(&at, actor, "install.setting", None, &body))?;
            Ok::<_, EngineError>(())
        })
    }

    /// Sets one of the seller's details printed on what customers receive (the quote PDF's
    /// seller block): `seller-name`, `seller-address`, `seller-phone`, `seller-tax-id`. An
    /// empty value removes it. Audited.
    pub fn set_seller(&mut self, name: &str, value: &str, actor: &str) -> Result<(), EngineError> {
        if !SELLER.iter().any(|(key, _)| *key == name) {
            let known: Vec<&str> = SELLER.iter().map(|(k, _)| *k).collect();
            return Err(EngineError::Input(format!(
                "there is no seller detail `{name}`; they are: {}",
                known.join(", ")
            )));
        }
        let value = value.trim();
        if value.chars().count() > 200 || value.contains(['\n', '\r']) {
            return Err(EngineError::Input(format!("`{name}` is one line of at most 200 characters")));
        }
        let at = self.now();
        self.store.write(|tx| {
            ids::set_setting(tx, name, value, &at)?;
            let body = json!({"setting": name, "value": value}).to_string();
            audit::append(tx, &NewEvent::note(&at, actor, "install.setting", None, &body))?;
            Ok::<_, EngineError>(())
        })
    }

    /// The seller's details that are set, as (label, value) in print order.
    pub fn seller(&self) -> Result<Vec<(&'static str, String)>, EngineError> {
        let mut out = Vec::new();
        for (key, label) in SELLER {
            if let Some(v) = ids::setting(self.store.reader(), key)?.filter(|v| !v.is_empty()) {
                out.push((*label, v));
            }
        }
        Ok(out)
    }

    /// Where people reach this installation's pages, when ops said.
    pub fn public_url(&self) -> Result<Option<String>, EngineError> {
        Ok(ids::setting(self.store.reader(), "public_url")?)
    }
}

/// The seller's details ops may set, with how the PDF labels them.
pub(crate) const SELLER: &[(&str, &str)] = &[
    ("seller-name", "卖方 / Seller"),
    ("seller-address", "地址 / Address"),
    ("seller-phone", "电话 / Phone"),
    ("seller-tax-id", "税号 / Tax ID"),
];
