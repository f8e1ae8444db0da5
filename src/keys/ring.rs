//! Every key the daemon accepts, in one place: client keys of the
//! configuration (`[[keys]]`, `server.api_keys` and its file), client keys
//! made through the admin API (kept in the store), and admin keys. A request
//! is identified by the digest of the key it presents, compared in constant
//! time with every digest; a change (reload, create, revoke) swaps in a new
//! ring at once, so a revoked key's next request is refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::Serialize;
use subtle::ConditionallySelectable;

use super::changes::{KeyError, NewKey, Patch};
use super::snapshot::{build, digest, from_hex, same_digest, Ring, Sources};
use super::stored::{self, ApiKey, KeySchema};
use super::{now_ms, rfc3339, secret, Caller, KeySource};
use crate::config::{Limits, Settings};
use crate::store::{Store, StoreError};

/// How often at most a key's last use is written to the store.
const TOUCH_EVERY_MS: i64 = 60_000;

/// Whose key a request presented.
#[derive(Debug, Clone)]
pub enum Identified {
    Client(Arc<Caller>),
    Admin,
    Unknown,
}

/// A key as the admin API lists it: never its secret nor its digest.
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    pub name: String,
    /// The secret's first characters (keys made through the API only).
    pub prefix: Option<String>,
    /// `config` (read-only to the API) or `api`.
    pub source: KeySource,
    pub created_at: Option<String>,
    pub last_used_at: Option<String>,
    /// Its own limits (unset: the `[limits]` default; 0: none).
    pub limits: Limits,
    /// The limits in force: own, else default; unset: none.
    pub effective_limits: Limits,
    pub weight: u32,
    pub models: Vec<String>,
    pub accounts: Vec<String>,
    pub agent: bool,
    pub expires_at: Option<String>,
    pub expired: bool,
}

/// The daemon's keys (see the module doc).
pub struct KeyRing {
    ring: ArcSwap<Ring>,
    sources: Mutex<Sources>,
    store: Option<Store>,
    /// Last use of each key (unix ms): in memory, and as last written.
    used: Mutex<HashMap<String, (i64, i64)>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyRing")
    }
}

impl KeyRing {
    /// The keys of `settings` and, with a store, those made through the API.
    pub fn open(settings: Arc<Settings>, store: Option<Store>) -> Result<Self, KeyError> {
        let (api, used) = match &store {
            Some(store) => {
                store.install::<KeySchema>()?;
                (store.with(stored::all)?, store.with(stored::last_used)?)
            }
            None => (Vec::new(), Vec::new()),
        };
        let sources = Sources { settings, api };
        let ring = build(&sources)?;
        Ok(Self {
            ring: ArcSwap::from_pointee(ring),
            sources: Mutex::new(sources),
            store,
            used: Mutex::new(used.into_iter().map(|(n, at)| (n, (at, at))).collect()),
        })
    }

    /// The keys of `settings` alone (no store: none can be made).
    pub fn from_settings(settings: Arc<Settings>) -> Self {
        let sources = Sources {
            settings,
            api: Vec::new(),
        };
        let ring = build(&sources).unwrap_or_default();
        Self {
            ring: ArcSwap::from_pointee(ring),
            sources: Mutex::new(sources),
            store: None,
            used: Mutex::default(),
        }
    }

    fn sources(&self) -> std::sync::MutexGuard<'_, Sources> {
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the keys of reloaded settings; refused whole (and nothing
    /// changed) if they clash with keys made through the API.
    pub fn reconfigure(&self, settings: Arc<Settings>) -> Result<(), KeyError> {
        let mut sources = self.sources();
        let next = Sources {
            settings,
            api: sources.api.clone(),
        };
        let ring = build(&next)?;
        *sources = next;
        self.ring.store(Arc::new(ring));
        Ok(())
    }

    /// Whether no key of any kind is configured or stored.
    pub fn keyless(&self) -> bool {
        self.ring.load().keyless
    }

    /// Whose key `presented` is. Every digest is compared, in constant
    /// time, whichever matches.
    pub fn identify(&self, presented: &str) -> Identified {
        let ring = self.ring.load();
        let presented = digest(presented);
        let admin = ring.admins.iter().fold(subtle::Choice::from(0), |acc, d| {
            acc | same_digest(d, &presented)
        });
        if bool::from(admin) {
            return Identified::Admin;
        }
        let mut found = subtle::Choice::from(0);
        let mut index = 0u32;
        for (i, entry) in ring.clients.iter().enumerate() {
            let hit = same_digest(&entry.digest, &presented);
            index.conditional_assign(&(i as u32), hit);
            found |= hit;
        }
        if bool::from(found) {
            Identified::Client(ring.clients[index as usize].caller.clone())
        } else {
            Identified::Unknown
        }
    }

    /// The caller whose scope (digest) is `scope`, e.g. a batch's owner.
    pub fn by_scope(&self, scope: &str) -> Option<Arc<Caller>> {
        let ring = self.ring.load();
        let wanted = from_hex(scope);
        ring.clients
            .iter()
            .find(|e| bool::from(same_digest(&e.digest, &wanted)))
            .map(|e| e.caller.clone())
    }

    /// The caller named `name`, if any.
    pub fn by_name(&self, name: &str) -> Option<Arc<Caller>> {
        let ring = self.ring.load();
        ring.clients
            .iter()
            .find(|e| e.caller.name == name)
            .map(|e| e.caller.clone())
    }

    /// Notes that key `name` was used now; written to the store at most
    /// once a minute a key, off the caller's thread.
    pub fn touch(&self, name: &str) {
        let now = now_ms();
        let write = {
            let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
            let entry = used.entry(name.to_string()).or_insert((0, 0));
            entry.0 = now;
            let due = now - entry.1 >= TOUCH_EVERY_MS;
            if due {
                entry.1 = now;
            }
            due
        };
        let (Some(store), true) = (self.store.clone(), write) else {
            return;
        };
        let name = name.to_string();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn_blocking(move || {
                if let Err(e) = store.with(|c| stored::touch(c, &name, now)) {
                    log::warn!("keys: noting the last use of `{name}`: {e}");
                }
            });
        }
    }

    /// Every client key, by name.
    pub fn list(&self) -> Vec<KeyView> {
        let ring = self.ring.load();
        let used = self.used.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let now = now_ms();
        let mut views: Vec<KeyView> = ring
            .clients
            .iter()
            .map(|e| {
                let c = &e.caller;
                KeyView {
                    name: c.name.clone(),
                    prefix: e.prefix.clone(),
                    source: c.source,
                    created_at: e.created_at.map(rfc3339),
                    last_used_at: used.get(&c.name).map(|u| rfc3339(u.0)),
                    limits: e.own,
                    effective_limits: c.limits,
                    weight: c.weight,
                    models: c.models.clone(),
                    accounts: c.accounts.clone(),
                    agent: c.agent,
                    expires_at: c.expires_at.map(rfc3339),
                    expired: c.expired(now),
                }
            })
            .collect();
        views.sort_by(|a, b| a.name.cmp(&b.name));
        views
    }

    /// Key `name` as listed.
    pub fn view(&self, name: &str) -> Option<KeyView> {
        self.list().into_iter().find(|v| v.name == name)
    }

    /// Makes a key: stored (its digest), in force at once. Returns its
    /// secret, which nothing keeps.
    pub fn create(&self, new: NewKey) -> Result<(String, KeyView), KeyError> {
        let store = self.store.clone().ok_or(KeyError::NoStore)?;
        let mut sources = self.sources();
        let spec = new.validate(&sources.settings)?;
        if sources
            .settings
            .named_keys()
            .iter()
            .any(|k| k.name == new.name)
        {
            return Err(KeyError::Conflict(format!(
                "a key named `{}` is in the configuration",
                new.name
            )));
        }
        let secret = secret::generate().map_err(|e| StoreError::Task(e.to_string()))?;
        let key = ApiKey {
            name: new.name.clone(),
            digest: crate::config::digest_hex(&secret),
            prefix: secret::shown_prefix(&secret),
            created_at: now_ms(),
            spec,
        };
        if !store.with(|c| stored::insert(c, &key))? {
            return Err(KeyError::Conflict(format!(
                "a key named `{}` exists",
                new.name
            )));
        }
        let mut next = Sources {
            settings: sources.settings.clone(),
            api: sources.api.clone(),
        };
        next.api.push(key);
        let ring = build(&next)?;
        *sources = next;
        self.ring.store(Arc::new(ring));
        drop(sources);
        log::info!("keys: `{}` created through the admin API", new.name);
        let view = self.view(&new.name).ok_or(KeyError::NotFound(new.name))?;
        Ok((secret, view))
    }

    /// Changes key `name` (made through the API; config keys are 409).
    pub fn update(&self, name: &str, patch: Patch) -> Result<KeyView, KeyError> {
        let store = self.store.clone().ok_or(KeyError::NoStore)?;
        let mut sources = self.sources();
        self.refuse_config(&sources, name)?;
        let Some(i) = sources.api.iter().position(|k| k.name == name) else {
            return Err(KeyError::NotFound(name.to_string()));
        };
        let spec = patch.apply(sources.api[i].spec.clone(), &sources.settings)?;
        if !store.with(|c| stored::update(c, name, &spec))? {
            return Err(KeyError::NotFound(name.to_string()));
        }
        let mut next = Sources {
            settings: sources.settings.clone(),
            api: sources.api.clone(),
        };
        next.api[i].spec = spec;
        let ring = build(&next)?;
        *sources = next;
        self.ring.store(Arc::new(ring));
        drop(sources);
        log::info!("keys: `{name}` changed through the admin API");
        self.view(name)
            .ok_or_else(|| KeyError::NotFound(name.to_string()))
    }

    /// Revokes key `name`: its next request is refused; jobs in flight
    /// finish.
    pub fn revoke(&self, name: &str) -> Result<(), KeyError> {
        let store = self.store.clone().ok_or(KeyError::NoStore)?;
        let mut sources = self.sources();
        self.refuse_config(&sources, name)?;
        if !sources.api.iter().any(|k| k.name == name) {
            return Err(KeyError::NotFound(name.to_string()));
        }
        // The ring first: from here on no request passes with the key, even
        // if the store write below fails (then it is back after a restart,
        // and the error says so).
        let next = Sources {
            settings: sources.settings.clone(),
            api: sources
                .api
                .iter()
                .filter(|k| k.name != name)
                .cloned()
                .collect(),
        };
        let ring = build(&next)?;
        *sources = next;
        self.ring.store(Arc::new(ring));
        drop(sources);
        self.used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        store.with(|c| stored::delete(c, name))?;
        log::info!("keys: `{name}` revoked through the admin API");
        Ok(())
    }

    fn refuse_config(&self, sources: &Sources, name: &str) -> Result<(), KeyError> {
        if sources.settings.named_keys().iter().any(|k| k.name == name) {
            return Err(KeyError::Conflict(format!(
                "`{name}` is defined in the configuration and is read-only here: change it there and reload"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(toml: &str) -> Arc<Settings> {
        let mut s = Settings::from_toml(toml).unwrap();
        s.read_api_keys_file().unwrap();
        Arc::new(s)
    }

    fn ring(toml: &str) -> KeyRing {
        let store = Store::in_memory().unwrap();
        KeyRing::open(settings(toml), Some(store)).unwrap()
    }

    fn new_key(name: &str) -> NewKey {
        serde_json::from_value(serde_json::json!({"name": name})).unwrap()
    }

    fn client(ring: &KeyRing, secret: &str) -> Arc<Caller> {
        match ring.identify(secret) {
            Identified::Client(c) => c,
            other => panic!("{other:?}"),
        }
    }

    /// The comparison is `subtle`'s constant-time one (its result is a
    /// `subtle::Choice`, not a `bool` an early-exit `==` would give), and a
    /// difference in the first or the last byte alone is caught, of the
    /// digests and of the secrets presented.
    #[test]
    fn secrets_are_compared_in_constant_time_to_the_last_byte() {
        let stored = digest("alice-secret-0001");
        let mut first = stored;
        first[0] ^= 1;
        let mut last = stored;
        last[31] ^= 0x80;
        let same: subtle::Choice = same_digest(&stored, &stored);
        assert!(bool::from(same));
        assert!(!bool::from(same_digest(&stored, &first)));
        assert!(!bool::from(same_digest(&stored, &last)));
        let ring = ring(
            "[server]\nadmin_keys = [\"admin-secret-0001\"]\n\
             [[keys]]\nname = \"alice\"\nsecret = \"alice-secret-0001\"\n",
        );
        assert_eq!(client(&ring, "alice-secret-0001").name, "alice");
        for wrong in [
            "blice-secret-0001",
            "alice-secret-0002",
            "alice-secret-000",
            "alice-secret-00011",
        ] {
            assert!(
                matches!(ring.identify(wrong), Identified::Unknown),
                "{wrong}"
            );
        }
        for wrong in ["bdmin-secret-0001", "admin-secret-0002"] {
            assert!(
                matches!(ring.identify(wrong), Identified::Unknown),
                "{wrong}"
            );
        }
        let scope = crate::batches::owner_of(Some("alice-secret-0001"));
        assert!(ring.by_scope(&scope).is_some());
        let flipped_last = format!(
            "{}{}",
            &scope[..63],
            if scope.ends_with('0') { '1' } else { '0' }
        );
        let flipped_first = format!(
            "{}{}",
            if scope.starts_with('0') { '1' } else { '0' },
            &scope[1..]
        );
        assert!(ring.by_scope(&flipped_last).is_none());
        assert!(ring.by_scope(&flipped_first).is_none());
    }

    #[test]
    fn config_keys_admin_keys_and_legacy_keys_are_told_apart() {
        let ring = ring(
            "[server]\napi_keys = [\"legacy-secret\"]\nadmin_keys = [\"admin-secret\"]\n\
             [limits]\nrequests_per_minute = 5\n\
             [[keys]]\nname = \"alice\"\nsecret = \"alice-secret\"\nlimits = { max_concurrent = 2 }\n",
        );
        assert!(!ring.keyless());
        let alice = client(&ring, "alice-secret");
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.scope, crate::batches::owner_of(Some("alice-secret")));
        assert_eq!(alice.limits.max_concurrent, Some(2));
        assert_eq!(alice.limits.requests_per_minute, Some(5));
        assert!(!alice.agent);
        let legacy = client(&ring, "legacy-secret");
        assert!(legacy.name.starts_with("key-") && legacy.agent);
        assert_eq!(
            legacy.scope,
            crate::batches::owner_of(Some("legacy-secret"))
        );
        assert!(matches!(ring.identify("admin-secret"), Identified::Admin));
        assert!(matches!(ring.identify("alice-secreT"), Identified::Unknown));
        assert!(matches!(ring.identify(""), Identified::Unknown));
        assert!(KeyRing::open(settings(""), None).unwrap().keyless());
    }

    #[test]
    fn api_keys_are_made_changed_revoked_and_reloaded() {
        let store = Store::in_memory().unwrap();
        let s = settings("[server]\nadmin_keys = [\"admin-secret\"]\n");
        let ring = KeyRing::open(s.clone(), Some(store.clone())).unwrap();
        let (secret, view) = ring.create(new_key("bob")).unwrap();
        assert!(secret.starts_with("cpk_"));
        assert_eq!(view.prefix.as_deref(), Some(&secret[..12]));
        assert_eq!(view.source, KeySource::Api);
        let json = serde_json::to_string(&ring.list()).unwrap();
        assert!(
            !json.contains(&secret[12..]) && !json.contains(&crate::config::digest_hex(&secret))
        );
        assert_eq!(client(&ring, &secret).name, "bob");
        assert!(matches!(
            ring.create(new_key("bob")),
            Err(KeyError::Conflict(_))
        ));
        let patch: Patch = serde_json::from_value(serde_json::json!({
            "limits": {"tokens_day": 100}, "models": ["sonnet"]
        }))
        .unwrap();
        let view = ring.update("bob", patch).unwrap();
        assert_eq!(view.limits.tokens_day, Some(100));
        assert_eq!(client(&ring, &secret).models, ["sonnet"]);
        // Another ring on the same store (a restart) knows it.
        let again = KeyRing::open(s.clone(), Some(store.clone())).unwrap();
        assert_eq!(client(&again, &secret).limits.tokens_day, Some(100));
        ring.revoke("bob").unwrap();
        assert!(matches!(ring.identify(&secret), Identified::Unknown));
        assert!(matches!(ring.revoke("bob"), Err(KeyError::NotFound(_))));
        let again = KeyRing::open(s, Some(store)).unwrap();
        assert!(matches!(again.identify(&secret), Identified::Unknown));
    }

    #[test]
    fn config_keys_are_read_only_and_clashes_are_refused() {
        let ring = ring(
            "[server]\nadmin_keys = [\"admin-secret\"]\n\
             [[keys]]\nname = \"alice\"\nsecret = \"alice-secret\"\n",
        );
        assert!(matches!(
            ring.create(new_key("alice")),
            Err(KeyError::Conflict(_))
        ));
        assert!(matches!(
            ring.update("alice", Patch::default()),
            Err(KeyError::Conflict(_))
        ));
        assert!(matches!(ring.revoke("alice"), Err(KeyError::Conflict(_))));
        ring.create(new_key("carol")).unwrap();
        let clash = settings(
            "[server]\nadmin_keys = [\"admin-secret\"]\n\
             [[keys]]\nname = \"carol\"\nsecret = \"carol-secret\"\n",
        );
        assert!(matches!(
            ring.reconfigure(clash),
            Err(KeyError::Conflict(_))
        ));
        // Refused whole: alice still works.
        client(&ring, "alice-secret");
    }

    #[test]
    fn bodies_are_checked_by_field() {
        let ring = ring("[server]\nadmin_keys = [\"admin-secret\"]\n");
        let bad = |body: serde_json::Value| -> String {
            match serde_json::from_value::<NewKey>(body) {
                Err(e) => e.to_string(),
                Ok(new) => ring.create(new).unwrap_err().to_string(),
            }
        };
        assert!(bad(serde_json::json!({"name": "a b"})).contains("name"));
        assert!(bad(serde_json::json!({"name": "a", "weight": 0})).contains("weight"));
        assert!(bad(serde_json::json!({"name": "a", "accounts": ["x"]})).contains("accounts"));
        assert!(
            bad(serde_json::json!({"name": "a", "expires_at": "2001-01-01T00:00:00Z"}))
                .contains("expires_at")
        );
        assert!(bad(serde_json::json!({"name": "a", "limits": {"rpm": 1}})).contains("rpm"));
        assert!(bad(serde_json::json!({"name": "a", "secret": "x"})).contains("secret"));
        assert!(ring.list().is_empty());
    }
}
