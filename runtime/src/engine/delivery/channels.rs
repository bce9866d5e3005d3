//! Channel settings per installation (never in the app's YAML): from the database, overridden
//! by `CLOSELOOP_CHANNEL_<ID>_<KEY>` in the environment; shown with secrets masked; set with a
//! `channel.set` event that holds each value's hash, never the value.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::{EngineError, Runtime};
use crate::model::ChannelKind;
use crate::store::channels;
use crate::transport::{self, Settings};

/// A channel as `closeloop channels` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelView {
    /// The channel's id.
    pub channel: String,
    /// Its kind (`webhook`, `email`, …), from the app.
    pub kind: String,
    /// Its settings, secrets masked; where each came from (`database` or `env`).
    pub settings: BTreeMap<String, String>,
    /// Settings it still needs before it can send.
    pub missing: Vec<String>,
}

/// `CLOSELOOP_CHANNEL_<ID>_<KEY>`: settings from the environment override the database's.
fn env_name(channel: &str, key: &str) -> String {
    format!("CLOSELOOP_CHANNEL_{}_{}", channel.to_uppercase().replace(['-', '.'], "_"), key.to_uppercase())
}

fn mask(key: &str, value: &str) -> String {
    if key == "url" {
        transport::masked_url(value)
    } else if transport::is_secret(key) {
        let shown: String = value.chars().take(2).collect();
        format!("{shown}…({} chars)", value.chars().count())
    } else {
        value.to_string()
    }
}

impl Runtime {
    /// The kind of each channel the installed apps declare.
    pub(crate) fn channel_kinds(&self) -> BTreeMap<String, ChannelKind> {
        self.apps.values().flat_map(|a| a.app.def.channels.iter().map(|c| (c.id.clone(), c.kind))).collect()
    }

    /// Every channel's settings: the database's, overridden by the environment.
    pub(crate) fn settings(&self) -> Result<BTreeMap<String, Settings>, EngineError> {
        let mut out: BTreeMap<String, Settings> = BTreeMap::new();
        for (channel, key, value) in channels::all(self.store.reader())? {
            out.entry(channel).or_default().insert(key, value);
        }
        for (channel, kind) in self.channel_kinds() {
            for key in transport::known(kind) {
                if let Ok(value) = std::env::var(env_name(&channel, key)) {
                    out.entry(channel.clone()).or_default().insert((*key).to_string(), value);
                }
            }
        }
        Ok(out)
    }

    /// The channels the installed apps declare, with their settings (secrets masked) and what
    /// each still lacks.
    pub fn channels(&self) -> Result<Vec<ChannelView>, EngineError> {
        let settings = self.settings()?;
        Ok(self
            .channel_kinds()
            .into_iter()
            .map(|(channel, kind)| {
                let own = settings.get(&channel).cloned().unwrap_or_default();
                let missing = transport::required(kind)
                    .iter()
                    .filter(|k| !own.contains_key(**k))
                    .map(|k| k.to_string())
                    .collect();
                let shown = own
                    .iter()
                    .map(|(k, v)| {
                        let from = if std::env::var(env_name(&channel, k)).is_ok() { "env" } else { "database" };
                        (k.clone(), format!("{} ({from})", mask(k, v)))
                    })
                    .collect();
                ChannelView { kind: kind.as_str().to_string(), channel, settings: shown, missing }
            })
            .collect())
    }

    /// Sets a channel's settings (`url=…`, `secret=…`); an empty value removes one. The change
    /// is audited, secrets by name only.
    pub fn set_channel(
        &mut self,
        channel: &str,
        pairs: &[(String, String)],
        actor: &str,
    ) -> Result<ChannelView, EngineError> {
        let kinds = self.channel_kinds();
        let Some(kind) = kinds.get(channel).copied() else {
            let known: Vec<&str> = kinds.keys().map(String::as_str).collect();
            return Err(EngineError::Input(format!(
                "no installed app has a channel `{channel}`; the channels are: {}",
                known.join(", ")
            )));
        };
        let allowed = transport::known(kind);
        if let Some((bad, _)) = pairs.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            return Err(EngineError::Input(format!(
                "a {} channel has no setting `{bad}`; it takes: {}",
                kind.as_str(),
                allowed.join(", ")
            )));
        }
        let pairs: Vec<(String, String)> =
            pairs.iter().map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
        for (key, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
            transport::check_setting(key, value).map_err(|e| EngineError::Input(format!("{channel}: {e}")))?;
        }
        let at = self.now();
        self.store.write(|tx| {
            for (key, value) in &pairs {
                if value.is_empty() {
                    channels::unset(tx, channel, key)?;
                } else {
                    channels::set(tx, channel, key, value, &at)?;
                }
            }
            let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
            // Each value as a hash (never the value: it may be a secret), so `audit verify`
            // catches a setting changed in the database.
            let hashes: serde_json::Map<String, serde_json::Value> = pairs
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.clone(), crate::store::proof::setting_hash(channel, k, v).into()))
                .collect();
            let body = serde_json::json!({"channel": channel, "set": keys, "hashes": hashes}).to_string();
            crate::store::audit::append(tx, &crate::store::NewEvent::note(&at, actor, "channel.set", None, &body))?;
            Ok::<_, EngineError>(())
        })?;
        self.channels()?
            .into_iter()
            .find(|c| c.channel == channel)
            .ok_or_else(|| EngineError::Input(format!("channel {channel} vanished")))
    }
}
