//! Client keys with names: who a request acts for ([`Caller`]), the keys
//! of the configuration and of the store in one [`KeyRing`], the keys made
//! through the admin API ([`stored`]), and the per-key limits checked when
//! a request is admitted ([`limits`]).
//!
//! A key is known by the SHA-256 digest of its secret; the secret itself is
//! never kept, logged or shown again after the admin API hands it out. The
//! digest is also the key's *scope* (batches, stored responses, sessions and
//! parked turns belong to it), as it was before keys had names.
//!
//! Imports: `config` and `store` only, so [`crate::job`] can carry a
//! [`Caller`] to the dispatcher.

pub mod changes;
pub mod limits;
pub mod ring;
pub mod secret;
mod snapshot;
pub mod stored;

use serde::Serialize;

pub use changes::{KeyError, NewKey, Patch};
pub use limits::{Admitted, LimitStatus, Limiter, Refusal, TokenUsage};
pub use ring::{Identified, KeyRing, KeyView};

use crate::config::Limits;

/// The name of the one caller of a daemon without keys.
pub const ANONYMOUS: &str = "anonymous";

/// Who a request acts for: the key it presented, resolved. Obtained in a
/// handler's signature through the `http::auth::ClientKey` extractor, and
/// carried on the job (`Job::caller`) to the dispatcher and the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// The key's name (`[[keys]] name`, an admin-API key's name, or
    /// `key-<8 hex>` for a `server.api_keys` entry); [`ANONYMOUS`] without
    /// keys. What the ledger, limits and fair share key on.
    pub name: String,
    /// The hex SHA-256 digest of the key's secret; empty without keys.
    /// Batches, stored responses, sessions and parked turns are kept per
    /// scope, exactly as before keys had names.
    pub scope: String,
    /// Its limits, `[limits]` defaults applied (unset = no limit).
    pub limits: Limits,
    /// Fair share: running jobs are weighed against it (at least 1).
    pub weight: u32,
    /// Models it may ask for; empty: any (see [`Caller::allows_model`]).
    pub models: Vec<String>,
    /// `[[accounts]]` names whose workers may serve it; empty: any.
    pub accounts: Vec<String>,
    /// May its jobs run as agent jobs (when agent mode is on).
    pub agent: bool,
    /// When it stops working, unix milliseconds.
    pub expires_at: Option<i64>,
    /// Where it is defined.
    pub source: KeySource,
}

/// Where a key is defined: the admin API may change only its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeySource {
    /// `[[keys]]`, `server.api_keys` or its file: read-only to the API.
    Config,
    /// Made through the admin API, kept in the store.
    Api,
    /// The one caller of a daemon without keys.
    None,
}

impl Caller {
    /// The one caller of a daemon without keys: `[limits]` apply to it.
    pub fn anonymous(defaults: Limits) -> Self {
        Self {
            name: ANONYMOUS.into(),
            scope: String::new(),
            limits: defaults.over(&Limits::default()),
            weight: 1,
            models: Vec::new(),
            accounts: Vec::new(),
            agent: true,
            expires_at: None,
            source: KeySource::None,
        }
    }

    /// Whether it may ask for `model` (the model handed to the CLI). An
    /// allowed entry matches itself (with or without the `[1m]` suffix);
    /// an alias `opus`, `sonnet` or `haiku` also matches that family's ids
    /// (`claude-sonnet-…`).
    pub fn allows_model(&self, model: &str) -> bool {
        if self.models.is_empty() {
            return true;
        }
        let model = model.trim();
        let base = model.strip_suffix("[1m]").unwrap_or(model);
        self.models.iter().any(|allowed| {
            let allowed = allowed.trim();
            allowed == model
                || allowed == base
                || (matches!(allowed, "opus" | "sonnet" | "haiku")
                    && base.starts_with(&format!("claude-{allowed}-")))
        })
    }

    /// Whether an account named `account` may serve it.
    pub fn allows_account(&self, account: &str) -> bool {
        self.accounts.is_empty() || self.accounts.iter().any(|a| a == account)
    }

    /// Whether it has expired at `now_ms` (unix milliseconds).
    pub fn expired(&self, now_ms: i64) -> bool {
        self.expires_at.is_some_and(|at| now_ms >= at)
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// RFC 3339 (UTC, seconds) of unix milliseconds, for JSON and errors.
pub fn rfc3339(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_models(models: &[&str]) -> Caller {
        Caller {
            models: models.iter().map(|m| m.to_string()).collect(),
            ..Caller::anonymous(Limits::default())
        }
    }

    #[test]
    fn models_match_ids_and_families() {
        assert!(with_models(&[]).allows_model("anything"));
        let c = with_models(&["sonnet", "claude-haiku-4-5"]);
        assert!(c.allows_model("sonnet"));
        assert!(c.allows_model("claude-sonnet-5"));
        assert!(c.allows_model("claude-sonnet-4-5[1m]"));
        assert!(c.allows_model("claude-haiku-4-5"));
        assert!(!c.allows_model("claude-haiku-4-6"));
        assert!(!c.allows_model("claude-opus-4-8"));
        assert!(!c.allows_model("opus"));
        assert!(!c.allows_model("claude-sonnetx"));
    }

    #[test]
    fn expiry_and_accounts() {
        let mut c = with_models(&[]);
        assert!(!c.expired(now_ms()));
        c.expires_at = Some(1000);
        assert!(c.expired(1000) && !c.expired(999));
        assert!(c.allows_account("a"));
        c.accounts = vec!["a".into()];
        assert!(c.allows_account("a") && !c.allows_account("b"));
    }
}
