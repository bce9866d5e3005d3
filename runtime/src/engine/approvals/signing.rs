//! Customer signatures: a link the customer opens to sign exactly the version that was
//! approved. The token is a random nonce and an HMAC-SHA256, with the install's signing key,
//! over the record, its version and that version's data hash, the expiry, the purpose and the
//! nonce's hash. It is checked in constant time and works once; a link made for another
//! version, an expired, reused or forged one is refused. After signing the record cannot
//! change. The key lives outside the database (`Store::signing_key`) and the database keeps
//! only the nonce's hash, so a copy of the file can neither make nor complete a link.

use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::json;

use crate::engine::automations::{self, Cause, Steps, ACTOR};
use crate::engine::write::{Edit, Writer};
use crate::engine::{EngineError, Runtime};
use crate::store::{approvals, audit, records, signing, ApprovalStatus, NewEvent, StepStatus};

/// A link made for a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignLink {
    /// The URL, the token as its last path segment.
    pub url: String,
    /// The token alone.
    pub token: String,
    /// The record.
    pub record: String,
    /// The version it signs.
    pub version: i64,
    /// That version's data hash: what the signature binds to.
    pub version_hash: String,
    /// When it stops working.
    pub expires_at: String,
}

/// A signature, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signature {
    /// The record's form.
    pub form: String,
    /// The record.
    pub record: String,
    /// The version signed.
    pub version: i64,
    /// Its data hash.
    pub version_hash: String,
    /// Who signed, as they typed their name.
    pub signer: String,
    /// When.
    pub at: String,
}

const PURPOSE: &str = "sign";

fn random_hex(bytes: usize) -> Result<String, EngineError> {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| EngineError::Input("the system's random source failed".into()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// What a link's MAC covers. `nonce` is the stored hash, or, for a link made before nonces
/// were stored hashed, the nonce itself.
fn message(link: &signing::LinkRow, nonce: &str) -> String {
    format!(
        "{PURPOSE}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{nonce}",
        link.form, link.record, link.version, link.version_hash, link.expires_at
    )
}

pub(super) fn mac(key: &[u8], link: &signing::LinkRow, nonce: &str) -> Option<Hmac<sha2::Sha256>> {
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).ok()?;
    mac.update(message(link, nonce).as_bytes());
    Some(mac)
}

pub(super) fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

impl Runtime {
    /// Makes a single-use signing link for a record waiting at its chain's signature step.
    /// `base` is where the signing page is served (`https://sign.example.com`).
    pub fn sign_link(&mut self, form: &str, id: &str, base: &str, actor: &str) -> Result<SignLink, EngineError> {
        let now = self.clock.now();
        let at = crate::clock::stamp(now);
        crate::engine::records::actor_roles(self.store.reader(), actor)?;
        let f = self.form(form)?;
        let run = approvals::pending(self.store.reader(), form, id)?
            .ok_or_else(|| EngineError::Refused(format!("{form} {id} is not waiting for a signature")))?;
        backed(self.store.reader(), &run)?;
        let chain = f.app.app.def.approvals.iter().find(|c| c.id == run.chain);
        let signature = chain.and_then(|c| c.steps.get(run.step as usize)).and_then(|s| s.signature.clone());
        let Some(signature) = signature else {
            return Err(EngineError::Refused(format!(
                "{form} {id} is still in approval; it is signed after the last approval"
            )));
        };
        let expires = signature.expires.as_deref().unwrap_or("7d");
        let expires_at = automations::moment(&f.app.calendar, &at, Some(expires), None)
            .ok_or_else(|| EngineError::Input(format!("cannot read the signature's expiry `{expires}`")))?;
        let nonce = random_hex(16)?;
        let fresh = random_hex(32)?;
        let key = self.store.signing_key(|| fresh)?;
        let hashed = crate::store::sha256_hex(nonce.as_bytes());
        let link = self.write(|session, tx| {
            let row = records::get(tx, session.form(form)?.table(), id)?
                .ok_or_else(|| crate::engine::records::not_found(form, id))?;
            let link = signing::LinkRow {
                nonce: hashed.clone(),
                form: form.to_string(),
                record: id.to_string(),
                version: row.version,
                version_hash: row.data_hash.clone(),
                expires_at: expires_at.clone(),
                used_at: None,
                legacy: false,
            };
            let code = mac(&key, &link, &hashed)
                .map(|m| m.finalize().into_bytes())
                .ok_or_else(|| EngineError::Input("no key".into()))?;
            signing::add(tx, &link, &at, actor)?;
            let body = json!({"approval": run.id, "version": link.version, "version_hash": link.version_hash,
                              "expires_at": link.expires_at})
            .to_string();
            audit::append(tx, &NewEvent::note(&at, actor, "sign.link", Some((form, id)), &body))?;
            let token = format!("{nonce}.{}", code.iter().map(|b| format!("{b:02x}")).collect::<String>());
            Ok::<_, EngineError>((link, token))
        })?;
        let (link, token) = link;
        Ok(SignLink {
            url: format!("{}/sign/{token}", base.trim_end_matches('/')),
            token,
            record: link.record,
            version: link.version,
            version_hash: link.version_hash,
            expires_at: link.expires_at,
        })
    }

    /// [`Runtime::sign_link`], then the app's `sign_request` message with the link (`{{ link }}`)
    /// queued on `channel` to the customer: the record's signature `contact_field` (a phone for
    /// an SMS channel, an address for email). Answers the link and where it goes. Without a
    /// `sign_request` message the text is closeloop's own, in the app's language.
    pub fn send_sign_link(
        &mut self,
        form: &str,
        id: &str,
        base: &str,
        channel: &str,
        actor: &str,
    ) -> Result<(SignLink, String), EngineError> {
        use crate::model::ChannelKind;
        let f = self.form(form)?;
        let Some(kind) = f.app.app.def.channels.iter().find(|c| c.id == channel).map(|c| c.kind) else {
            return Err(EngineError::Input(format!("the app has no channel `{channel}`")));
        };
        let phone = matches!(kind, ChannelKind::Sms | ChannelKind::AliyunSms | ChannelKind::TencentSms);
        if !phone && kind != ChannelKind::Email {
            return Err(EngineError::Input(format!(
                "a customer is reached by SMS or email; channel `{channel}` is {}",
                kind.as_str()
            )));
        }
        let link = self.sign_link(form, id, base, actor)?;
        let f = self.form(form)?;
        let run = approvals::pending(self.store.reader(), form, id)?;
        let contact = run
            .and_then(|run| {
                f.app.app.def.approvals.iter().find(|c| c.id == run.chain)?.steps.get(run.step as usize).cloned()
            })
            .and_then(|s| s.signature)
            .map(|s| s.contact_field)
            .ok_or_else(|| EngineError::Refused(format!("{form} {id} is not waiting for a signature")))?;
        let row = records::get(self.store.reader(), f.table(), id)?
            .ok_or_else(|| crate::engine::records::not_found(form, id))?;
        let address = row
            .data
            .get(&contact)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| EngineError::Refused(format!("{form} {id} has no `{contact}` to send the link to")))?;
        // The customer holds no role: no field with read_roles, and nothing sensitive, is shown.
        let mut context = crate::engine::delivery::notify::message_context(&f, Some(&row), None, None);
        if let Some(fields) = context.as_object_mut() {
            fields
                .retain(|k, _| f.form.field(k).is_none_or(|fd| fd.read_roles.is_empty() && fd.sensitive != Some(true)));
            fields.insert("link".into(), json!(link.url));
        }
        let lang = f.lang();
        let code = if lang == crate::model::Lang::Zh { "zh" } else { "en" };
        let ctx = minijinja::Value::from(minijinja::value::Serde(context));
        let declared = f.app.app.def.messages.iter().any(|m| m.id == "sign_request");
        let body = if declared {
            f.app
                .messages
                .get_template(&format!("sign_request.{code}"))
                .and_then(|t| t.render(&ctx))
                .map_err(|e| EngineError::Input(format!("message sign_request cannot be rendered: {e}")))?
        } else if lang == crate::model::Lang::Zh {
            format!("您好，请点击链接查看并签署 {id}：{}", link.url)
        } else {
            format!("Hello, please read and sign {id}: {}", link.url)
        };
        let subject = body.lines().next().map(str::to_string);
        let at = self.now();
        let message = crate::store::OutboxRow {
            id: 0,
            channel: channel.to_string(),
            recipient: "customer".into(),
            address: Some(address.clone()),
            message: "sign_request".into(),
            subject,
            body,
            // Keyed by the link, without putting any of its token in the outbox.
            key: format!("sign/{form}/{id}/{}", &crate::store::sha256_hex(link.token.as_bytes())[..16]),
            form: Some(form.to_string()),
            record: Some(id.to_string()),
            status: crate::store::OutboxStatus::Pending,
            attempts: 0,
            created_at: at.clone(),
        };
        self.store.write(|tx| {
            crate::store::outbox::push(tx, &message)?;
            let body = json!({"channel": channel, "contact": contact}).to_string();
            audit::append(tx, &NewEvent::note(&at, actor, "sign.link_sent", Some((form, id)), &body))?;
            Ok::<_, EngineError>(())
        })?;
        Ok((link, address))
    }

    /// Signs with a link's token (the last path segment of its URL, or the URL itself): checks
    /// it in constant time, once, for the version it was made for, before it expires; records
    /// the signature as the chain's last step; and makes the record final.
    pub fn sign(&mut self, token: &str, signer: &str) -> Result<Signature, EngineError> {
        let signer = signer.trim();
        if signer.is_empty() || signer.chars().count() > 100 {
            return Err(EngineError::Input("the signer's name is required (at most 100 characters)".into()));
        }
        let token = token.trim().rsplit('/').next().unwrap_or_default();
        let forged = || EngineError::Refused("this signing link is not valid".into());
        let (nonce, code) = token.split_once('.').ok_or_else(forged)?;
        let code = unhex(code).ok_or_else(forged)?;
        let hashed = crate::store::sha256_hex(nonce.as_bytes());
        let link = signing::get(self.store.reader(), &hashed)?.ok_or_else(forged)?;
        // A link exists, so a key signed it: a missing key is lost, not to be made afresh.
        if !self.store.has_signing_key() {
            return Err(EngineError::Refused(
                "this link was signed with a key this installation no longer has (the key file beside the database is missing): restore it from the backup, or send the customer a new link".into(),
            ));
        }
        let fresh = random_hex(32)?;
        let key = self.store.signing_key(|| fresh)?;
        let covered = if link.legacy { nonce } else { hashed.as_str() };
        let signature = self.write(|session, tx| {
            let f = session.form(&link.form).map_err(|_| forged())?;
            let table = f.table();
            let at = &session.at;
            let row = check_link(tx, (&link, covered), (&key, &code), at, table)?;
            let run = approvals::pending(tx, &link.form, &link.record)?
                .ok_or_else(|| EngineError::Refused(format!("{} is not waiting for a signature", link.record)))?;
            let chain = f.app.app.def.approvals.iter().enumerate().find(|(_, c)| c.id == run.chain);
            let Some((ci, chain)) =
                chain.filter(|(_, c)| c.steps.get(run.step as usize).is_some_and(|s| s.signature.is_some()))
            else {
                return Err(EngineError::Refused(format!("{} is not waiting for a signature", link.record)));
            };
            backed(tx, &run)?;
            // The run ends first, so that the record's own write below is not taken for an edit
            // that resets it; the gate refuses a record once its link is used, so that comes
            // after the record: its `signed_at` (when the form has one) and its `signed` state.
            let note = format!("signed by {signer} at {at}; version {} hash {}", link.version, link.version_hash);
            approvals::set_step(tx, run.id, run.step, StepStatus::Approved, &[], 0, at, None, Some(&note))?;
            approvals::set_run(tx, run.id, ApprovalStatus::Signed, run.step + 1, Some(at))?;
            let w = Writer::new(session, tx, &f, ACTOR);
            let mut patch = serde_json::Map::new();
            if f.form.field("signed_at").is_some() {
                patch.insert("signed_at".into(), serde_json::Value::String(at.clone()));
            }
            let signed = f.form.states.iter().any(|s| s.id == "signed").then_some("signed");
            let edit = Edit { state: signed, ..Edit::by_closeloop(&patch, ("signature", json!({"signer": signer}))) };
            w.change(row, edit)?;
            if !signing::use_once(tx, &hashed, at, signer)? {
                return Err(EngineError::Refused("this signing link was already used".into()));
            }
            let body = json!({"approval": run.id, "signer": signer, "version": link.version,
                              "version_hash": link.version_hash})
            .to_string();
            let about = Some((link.form.as_str(), link.record.as_str()));
            audit::append(tx, &NewEvent::note(at, "customer", "sign.signed", about, &body))?;
            let body = json!({"approval": run.id, "chain": run.chain, "version": run.version, "status": ApprovalStatus::Signed});
            audit::append(tx, &NewEvent::note(at, "customer", "approval.finished", about, &body.to_string()))?;
            signed_hooks(&w, chain, ci, &run, signer)?;
            Ok::<_, EngineError>(Signature {
                form: link.form.clone(),
                record: link.record.clone(),
                version: link.version,
                version_hash: link.version_hash.clone(),
                signer: signer.to_string(),
                at: at.clone(),
            })
        })?;
        Ok(signature)
    }
}

/// A link's token checked, in constant time, against the install's signing key; then that it
/// is unused, unexpired, and made for the version the record has now. `covered` is what the
/// MAC covers for the nonce. Returns the record.
fn check_link(
    tx: &crate::store::Tx<'_>,
    (link, covered): (&signing::LinkRow, &str),
    (key, code): (&[u8], &[u8]),
    at: &str,
    table: &crate::store::FormTable,
) -> Result<crate::store::RecordRow, EngineError> {
    let forged = || EngineError::Refused("this signing link is not valid".into());
    // Constant time: `verify_slice` compares every byte whatever it finds.
    let valid = mac(key, link, covered).is_some_and(|m| m.verify_slice(code).is_ok());
    if !valid {
        return Err(forged());
    }
    if link.used_at.is_some() {
        return Err(EngineError::Refused("this signing link was already used".into()));
    }
    if at > link.expires_at.as_str() {
        return Err(EngineError::Refused(format!("this signing link expired at {}", link.expires_at)));
    }
    let row = records::get(tx, table, &link.record)?.ok_or_else(forged)?;
    if row.version != link.version || row.data_hash != link.version_hash {
        return Err(EngineError::Refused(format!(
            "this link was made for version {} of {}; it is now version {}: ask for a new link",
            link.version, link.record, row.version
        )));
    }
    Ok(row)
}

/// The chain's `on_approved` steps, once the customer signed, with the signature as the
/// decision their messages see.
fn signed_hooks(
    w: &Writer<'_, '_>,
    chain: &crate::model::ApprovalChain,
    ci: usize,
    run: &approvals::ApprovalRow,
    signer: &str,
) -> Result<(), EngineError> {
    if chain.on_approved.is_empty() {
        return Ok(());
    }
    let steps = Steps {
        name: format!("{}.on_approved", chain.id),
        list: &chain.on_approved,
        pointer: format!("/approvals/{ci}/on_approved"),
        automation: None,
    };
    let step = chain.steps.get(run.step as usize).map(|s| s.id.as_str()).unwrap_or_default();
    let cause = Cause {
        key: format!("approval/{}/signed", run.id),
        trigger: "signed by the customer".into(),
        decision: Some(crate::engine::approvals::decision(ApprovalStatus::Signed, step, signer, None, None)),
        ..Cause::default()
    };
    automations::run_steps(w, &steps, Some(&run.record), &cause, 0)?;
    Ok(())
}

/// Refuses to trust a run whose rows its audit events do not back: a decision, a skipped or
/// approved step written into the database around closeloop never yields a sign link or a
/// signature.
fn backed(conn: &crate::store::Reader, run: &approvals::ApprovalRow) -> Result<(), EngineError> {
    match crate::store::proof::unbacked_run(conn, run)? {
        None => Ok(()),
        Some(why) => Err(EngineError::Refused(format!(
            "{why}; the approvals of {} {} are not backed by the audit trail, so no link is issued or used",
            run.form, run.record
        ))),
    }
}
