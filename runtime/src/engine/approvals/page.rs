//! What the customer's signing page shows for a link: the approved version as the customer may
//! see it, or why the link no longer works. Read-only; signing itself is `Runtime::sign`.
//!
//! A forged token and one that never existed get the same answer, after the same work, so the
//! page never tells whether a guessed token exists.

use crate::engine::{EngineError, Runtime};
use crate::store::signing;

/// Where a signing link stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinkState {
    /// Waiting for the customer's signature, until `expires_at`.
    Open { expires_at: String },
    /// Signed already, by `signer` at `at`.
    Signed { signer: String, at: String },
    /// Past its expiry.
    Expired,
    /// The record changed since the link was made: the customer needs a new one.
    Superseded,
    /// Not a link this installation made.
    Invalid,
}

/// A signing page: the link's state, and (unless invalid) the record as the customer sees it.
#[derive(Debug, Clone)]
pub(crate) struct SignPage {
    pub state: LinkState,
    pub sheet: Option<crate::pdf::Sheet>,
    pub form: String,
    pub record: String,
}

impl Runtime {
    /// The signing page of a token (the last path segment of a link).
    pub(crate) fn sign_page(&mut self, token: &str) -> Result<SignPage, EngineError> {
        let invalid =
            || SignPage { state: LinkState::Invalid, sheet: None, form: String::new(), record: String::new() };
        let token = token.trim().rsplit('/').next().unwrap_or_default();
        let Some((nonce, code)) = token.split_once('.') else { return Ok(invalid()) };
        let Some(code) = super::signing::unhex(code) else { return Ok(invalid()) };
        let hashed = crate::store::sha256_hex(nonce.as_bytes());
        let Some(link) = signing::get(self.store.reader(), &hashed)? else { return Ok(invalid()) };
        if !self.store.has_signing_key() {
            return Ok(invalid());
        }
        let key = self.store.signing_key(String::new)?;
        let covered = if link.legacy { nonce } else { hashed.as_str() };
        let valid = super::signing::mac(&key, &link, covered).is_some_and(|m| {
            use hmac::Mac;
            m.verify_slice(&code).is_ok()
        });
        if !valid {
            return Ok(invalid());
        }
        let signed = signing::signed(self.store.reader(), &link.form, &link.record)?;
        let state = match (&link.used_at, signed) {
            (Some(_), Some((signer, at, _, _))) => LinkState::Signed { signer, at },
            (Some(at), None) => LinkState::Signed { signer: String::new(), at: at.clone() },
            (None, _) if self.now() > link.expires_at => LinkState::Expired,
            (None, _) => {
                let f = self.form(&link.form)?;
                let row = crate::store::records::get(self.store.reader(), f.table(), &link.record)?;
                match row {
                    Some(r) if r.version == link.version && r.data_hash == link.version_hash => {
                        LinkState::Open { expires_at: link.expires_at.clone() }
                    }
                    _ => LinkState::Superseded,
                }
            }
        };
        let sheet = match state {
            LinkState::Open { .. } | LinkState::Signed { .. } => Some(self.customer_sheet(&link.form, &link.record)?),
            _ => None,
        };
        Ok(SignPage { state, sheet, form: link.form, record: link.record })
    }
}

/// Guesses at signing links from one address in 15 minutes before it waits.
const GUESSES: i64 = 50;

impl Runtime {
    /// Refuses (`Locked`) an address that guessed too many signing links lately.
    pub(crate) fn sign_throttle(&self, address: &str) -> Result<(), EngineError> {
        let since = crate::clock::stamp(self.clock.now() - jiff::SignedDuration::from_mins(15));
        let n = crate::store::identity::failures_since(self.store.reader(), &format!("sign:{address}"), &since)?;
        if n >= GUESSES {
            return Err(EngineError::Locked("too many signing links tried from this address".into()));
        }
        Ok(())
    }

    /// Counts a link that is no link against the address that tried it.
    pub(crate) fn note_sign_guess(&mut self, address: &str) -> Result<(), EngineError> {
        let at = self.now();
        let subject = format!("sign:{address}");
        self.store.write(|tx| crate::store::identity::note_failure(tx, &subject, &at).map_err(EngineError::from))
    }
}
