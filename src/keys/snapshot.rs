//! The keys in force at one moment ([`Ring`]), built from what they come
//! from ([`Sources`]: the settings and the keys made through the API), and
//! looked up by digest in constant time.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::changes::KeyError;
use super::stored::ApiKey;
use super::{Caller, KeySource};
use crate::config::{KeySettings, Limits, Settings};

/// One client key of the ring.
pub(super) struct Entry {
    pub(super) digest: [u8; 32],
    pub(super) caller: Arc<Caller>,
    /// Its own limits, before defaults.
    pub(super) own: Limits,
    pub(super) prefix: Option<String>,
    pub(super) created_at: Option<i64>,
}

/// The keys in force at one moment.
#[derive(Default)]
pub(super) struct Ring {
    pub(super) clients: Vec<Entry>,
    pub(super) admins: Vec<[u8; 32]>,
    /// No key of any kind: requests go by `Host` instead (see `http::host`).
    pub(super) keyless: bool,
}

/// What rings are built from; changed under its lock, one change at a time.
pub(super) struct Sources {
    pub(super) settings: Arc<Settings>,
    pub(super) api: Vec<ApiKey>,
}

/// Whether `stored` and `presented` are the same digest, compared in
/// constant time (`subtle`): the time taken says nothing of how many leading
/// bytes matched. Every lookup by digest goes through here.
pub(super) fn same_digest(stored: &[u8; 32], presented: &[u8; 32]) -> subtle::Choice {
    stored.ct_eq(presented)
}

/// The SHA-256 of `secret`.
pub(super) fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A hex digest as bytes (all zero if malformed: matches no SHA-256 one
/// can present).
pub(super) fn from_hex(hex: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    if hex.len() == 64 {
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0);
        }
    }
    out
}
/// The ring of `sources`; a key made through the API whose name or secret
/// a configuration key has too is refused.
pub(super) fn build(sources: &Sources) -> Result<Ring, KeyError> {
    let settings = &sources.settings;
    let defaults = settings.limits.defaults();
    let mut clients: Vec<Entry> = settings
        .named_keys()
        .iter()
        .map(|k| config_entry(k, &defaults))
        .collect();
    for key in &sources.api {
        if clients.iter().any(|e| e.caller.name == key.name) {
            return Err(KeyError::Conflict(format!(
                "the configuration names a key `{}`, as a key made through the admin API is named; rename one (or revoke the API key)",
                key.name
            )));
        }
        let digest = from_hex(&key.digest);
        if clients.iter().any(|e| e.digest == digest) {
            return Err(KeyError::Conflict(format!(
                "a configuration key has the secret of the key `{}` made through the admin API",
                key.name
            )));
        }
        clients.push(Entry {
            digest,
            caller: Arc::new(Caller {
                name: key.name.clone(),
                scope: key.digest.clone(),
                limits: key.spec.limits.over(&defaults),
                weight: key.spec.weight.max(1),
                models: key.spec.models.clone(),
                accounts: key.spec.accounts.clone(),
                agent: key.spec.agent,
                expires_at: key.spec.expires_at,
                source: KeySource::Api,
            }),
            own: key.spec.limits,
            prefix: Some(key.prefix.clone()),
            created_at: Some(key.created_at),
        });
    }
    let admins: Vec<[u8; 32]> = settings
        .server
        .all_admin_keys()
        .map(|k| digest(k))
        .collect();
    if let Some(clash) = clients.iter().find(|e| admins.contains(&e.digest)) {
        return Err(KeyError::Conflict(format!(
            "the admin keys include the secret of client key `{}`",
            clash.caller.name
        )));
    }
    Ok(Ring {
        keyless: clients.is_empty() && admins.is_empty() && !settings.requires_keys(),
        clients,
        admins,
    })
}

pub(super) fn config_entry(key: &KeySettings, defaults: &Limits) -> Entry {
    let digest_hex = key.digest();
    Entry {
        digest: from_hex(&digest_hex),
        caller: Arc::new(Caller {
            name: key.name.clone(),
            scope: digest_hex,
            limits: key.fields.limits.over(defaults),
            weight: key.fields.weight.max(1),
            models: key.fields.models.clone(),
            accounts: key.fields.accounts.clone(),
            agent: key.fields.agent,
            expires_at: key.expires_at_ms(),
            source: KeySource::Config,
        }),
        own: key.fields.limits,
        prefix: None,
        created_at: None,
    }
}
