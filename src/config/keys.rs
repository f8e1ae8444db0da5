//! `[[keys]]` and `[limits]`: named client keys, each with what it may use
//! and how much, and the limits every key gets unless it says otherwise.
//!
//! A key's secret is given as its SHA-256 digest (`secret_sha256`, so the
//! config file need not hold secrets) or, for tests and small setups, as
//! `secret`. The digest is also the key's *scope*: batches, stored
//! responses, sessions and parked turns belong to it, exactly as they
//! belonged to a `server.api_keys` entry with the same secret.

use serde::{Deserialize, Serialize};

use super::{ConfigError, Settings};

/// One `[[keys]]` entry: a named client key.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySettings {
    /// Unique; shown wherever the key is (logs, ledger, metrics, admin API).
    pub name: String,
    /// Hex SHA-256 of the secret (`printf %s "$SECRET" | sha256sum`).
    #[serde(default)]
    pub secret_sha256: Option<String>,
    /// The secret itself, instead of `secret_sha256`.
    #[serde(default)]
    pub secret: Option<String>,
    /// What it may use and how much.
    #[serde(flatten)]
    pub fields: KeyFields,
}

/// What a client key may use and how much, as both the configuration
/// (`[[keys]]`) and the admin API (`POST /admin/keys`) write it, with one
/// validation ([`KeyFields::check`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyFields {
    /// This key's limits; each unset one falls back to `[limits]`.
    #[serde(default)]
    pub limits: Limits,
    /// Its share when jobs wait for workers: the next free worker goes to
    /// the waiting key with the fewest running jobs per unit of weight.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Models it may ask for (ids or the CLI's aliases `opus`, `sonnet`,
    /// `haiku`, which allow that family); empty: any.
    #[serde(default)]
    pub models: Vec<String>,
    /// The `[[accounts]]` whose workers may serve it; empty: any.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// May its requests run as agent jobs (when agent mode is on).
    #[serde(default)]
    pub agent: bool,
    /// When it stops working: RFC 3339 (`2026-12-31T23:59:59Z`).
    #[serde(default)]
    pub expires_at: Option<String>,
}

impl Default for KeyFields {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            weight: default_weight(),
            models: Vec::new(),
            accounts: Vec::new(),
            agent: false,
            expires_at: None,
        }
    }
}

fn default_weight() -> u32 {
    1
}

/// A key field that fails validation, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidField {
    /// The field's name in the admin API's body.
    pub field: &'static str,
    /// Its name in the configuration (`keys.weight`).
    pub config_key: &'static str,
    pub message: String,
}

impl InvalidField {
    fn new(field: &'static str, config_key: &'static str, message: String) -> Self {
        Self {
            field,
            config_key,
            message,
        }
    }
}

/// The rules of what a key may use, wherever it is set (a key's fields, a
/// change to a stored key): a weight of at least 1, no empty model name,
/// only accounts `settings` has.
pub fn check_use(
    weight: u32,
    models: &[String],
    accounts: &[String],
    settings: &Settings,
) -> Result<(), InvalidField> {
    if weight == 0 {
        let message = "must be at least 1".to_string();
        return Err(InvalidField::new("weight", "keys.weight", message));
    }
    if let Some(model) = models.iter().find(|m| m.trim().is_empty()) {
        let message = format!("`{model}` is not a model");
        return Err(InvalidField::new("models", "keys.models", message));
    }
    let known: Vec<String> = settings
        .account_plans()
        .into_iter()
        .map(|p| p.name)
        .collect();
    if let Some(unknown) = accounts.iter().find(|a| !known.contains(a)) {
        let message = format!(
            "no account is named `{unknown}` (accounts: {})",
            known.join(", ")
        );
        return Err(InvalidField::new("accounts", "keys.accounts", message));
    }
    Ok(())
}

impl KeyFields {
    /// Checks the fields against `settings`; their expiry in unix
    /// milliseconds, if they have one.
    pub fn check(&self, settings: &Settings) -> Result<Option<i64>, InvalidField> {
        check_use(self.weight, &self.models, &self.accounts, settings)?;
        let expiry = self.expires_at.as_deref().map(parse_time).transpose();
        expiry.map_err(|e| InvalidField::new("expires_at", "keys.expires_at", e))
    }
}

/// Secrets stay out of debug output.
impl std::fmt::Debug for KeySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySettings")
            .field("name", &self.name)
            .field("fields", &self.fields)
            .finish_non_exhaustive()
    }
}

/// A key's limits. Unset: the `[limits]` default; 0: no limit (lifts a
/// default for this key).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Jobs running or queued at once.
    pub max_concurrent: Option<u64>,
    /// Requests admitted in any `limits.request_window_secs` (60 s) window.
    pub requests_per_minute: Option<u64>,
    /// Tokens (input + output + cache creation + cache reads weighted by
    /// `ledger.cache_read_weight`) in any 5-hour window.
    pub tokens_5h: Option<u64>,
    /// The same over any 24 hours.
    pub tokens_day: Option<u64>,
    /// The same over any 7 days.
    pub tokens_week: Option<u64>,
    /// The same over any 30 days.
    pub tokens_month: Option<u64>,
}

impl Limits {
    /// Each limit of `self`, else of `defaults`; 0 becomes none.
    pub fn over(&self, defaults: &Limits) -> Limits {
        let pick = |own: Option<u64>, default: Option<u64>| own.or(default).filter(|&n| n > 0);
        Limits {
            max_concurrent: pick(self.max_concurrent, defaults.max_concurrent),
            requests_per_minute: pick(self.requests_per_minute, defaults.requests_per_minute),
            tokens_5h: pick(self.tokens_5h, defaults.tokens_5h),
            tokens_day: pick(self.tokens_day, defaults.tokens_day),
            tokens_week: pick(self.tokens_week, defaults.tokens_week),
            tokens_month: pick(self.tokens_month, defaults.tokens_month),
        }
    }

    /// The token budgets set, with their windows, shortest first.
    pub fn token_budgets(&self) -> Vec<(TokenWindow, u64)> {
        [
            (TokenWindow::FiveHours, self.tokens_5h),
            (TokenWindow::Day, self.tokens_day),
            (TokenWindow::Week, self.tokens_week),
            (TokenWindow::Month, self.tokens_month),
        ]
        .into_iter()
        .filter_map(|(w, n)| n.map(|n| (w, n)))
        .collect()
    }
}

/// A token budget's sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenWindow {
    FiveHours,
    Day,
    Week,
    Month,
}

impl TokenWindow {
    /// Its length.
    pub fn length(self) -> std::time::Duration {
        let hours = match self {
            TokenWindow::FiveHours => 5,
            TokenWindow::Day => 24,
            TokenWindow::Week => 24 * 7,
            TokenWindow::Month => 24 * 30,
        };
        std::time::Duration::from_secs(hours * 3600)
    }

    /// The limit's name as configured (`tokens_day`).
    pub fn limit_name(self) -> &'static str {
        match self {
            TokenWindow::FiveHours => "tokens_5h",
            TokenWindow::Day => "tokens_day",
            TokenWindow::Week => "tokens_week",
            TokenWindow::Month => "tokens_month",
        }
    }
}

/// `[limits]`: the default limits of every client key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Default `max_concurrent` of every key (unset: none).
    pub max_concurrent: Option<u64>,
    /// Default `requests_per_minute`.
    pub requests_per_minute: Option<u64>,
    /// Default `tokens_5h`.
    pub tokens_5h: Option<u64>,
    /// Default `tokens_day`.
    pub tokens_day: Option<u64>,
    /// Default `tokens_week`.
    pub tokens_week: Option<u64>,
    /// Default `tokens_month`.
    pub tokens_month: Option<u64>,
    /// The window `requests_per_minute` counts over, in seconds: 60 unless
    /// you mean "requests per N seconds".
    pub request_window_secs: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_concurrent: None,
            requests_per_minute: None,
            tokens_5h: None,
            tokens_day: None,
            tokens_week: None,
            tokens_month: None,
            request_window_secs: 60,
        }
    }
}

impl LimitSettings {
    /// The default limits as a key's [`Limits`].
    pub fn defaults(&self) -> Limits {
        Limits {
            max_concurrent: self.max_concurrent,
            requests_per_minute: self.requests_per_minute,
            tokens_5h: self.tokens_5h,
            tokens_day: self.tokens_day,
            tokens_week: self.tokens_week,
            tokens_month: self.tokens_month,
        }
    }

    /// `request_window_secs` as a duration.
    pub fn request_window(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.request_window_secs)
    }
}

/// The hex SHA-256 digest of a secret: a key's scope and how it is stored.
pub fn digest_hex(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `name` may name a key: 1–64 of `A-Z a-z 0-9 . _ -`, so it is
/// safe in paths, headers, logs and metric labels.
pub fn is_key_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The rule [`is_key_name`] checks, for error messages.
pub const KEY_NAME_RULE: &str = "1 to 64 of the characters A-Z a-z 0-9 . _ -";

/// Parses an RFC 3339 time (`2026-12-31T23:59:59Z`) into unix milliseconds.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let at = humantime::parse_rfc3339_weak(text.trim())
        .map_err(|e| format!("`{text}` is not an RFC 3339 time like 2026-12-31T23:59:59Z: {e}"))?;
    let ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("`{text}` is before 1970"))?
        .as_millis();
    i64::try_from(ms).map_err(|_| format!("`{text}` is too far in the future"))
}

impl KeySettings {
    /// The hex digest of its secret, whichever way it was given.
    pub fn digest(&self) -> String {
        match (&self.secret_sha256, &self.secret) {
            (Some(hex), _) => hex.trim().to_ascii_lowercase(),
            (None, Some(secret)) => digest_hex(secret),
            (None, None) => String::new(),
        }
    }

    /// `expires_at` in unix milliseconds (checked by validation).
    pub fn expires_at_ms(&self) -> Option<i64> {
        self.fields
            .expires_at
            .as_deref()
            .and_then(|t| parse_time(t).ok())
    }
}

impl Settings {
    /// Every client key with a name: `[[keys]]`, then `server.api_keys` and
    /// those of its file as `key-<first 8 hex of the digest>` (keys of
    /// `server.api_keys` may use agent mode, as they always could).
    pub fn named_keys(&self) -> Vec<KeySettings> {
        let mut keys = self.keys.clone();
        for secret in self.server.keys() {
            let digest = digest_hex(secret);
            if keys.iter().any(|k| k.digest() == digest) {
                continue;
            }
            keys.push(KeySettings {
                name: format!("key-{}", &digest[..8]),
                secret_sha256: Some(digest),
                fields: KeyFields {
                    agent: true,
                    ..KeyFields::default()
                },
                ..KeySettings::default()
            });
        }
        keys
    }

    /// Checks `[[keys]]`, `[limits]` and the admin keys, naming the key at
    /// fault.
    pub(super) fn validate_keys(&self) -> Result<(), ConfigError> {
        let invalid =
            |key: &'static str, message: String| Err(ConfigError::Invalid { key, message });
        if self.limits.request_window_secs == 0 {
            return invalid("limits.request_window_secs", "must be positive".into());
        }
        let mut names = std::collections::BTreeSet::new();
        let mut digests = std::collections::BTreeSet::new();
        for (i, key) in self.keys.iter().enumerate() {
            let at = |what: &str| format!("keys[{i}] ({}): {what}", key.name);
            if !is_key_name(&key.name) {
                return invalid("keys.name", at(&format!("a name is {KEY_NAME_RULE}")));
            }
            if !names.insert(key.name.as_str()) {
                return invalid("keys.name", at("two keys have this name"));
            }
            match (&key.secret_sha256, &key.secret) {
                (Some(_), Some(_)) => {
                    return invalid("keys.secret", at("give secret_sha256 or secret, not both"))
                }
                (None, None) => {
                    return invalid("keys.secret_sha256", at("give secret_sha256 or secret"))
                }
                (Some(hex), None) => {
                    let hex = hex.trim();
                    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return invalid(
                            "keys.secret_sha256",
                            at("expected 64 hex digits (sha256sum of the secret)"),
                        );
                    }
                }
                (None, Some(secret)) => {
                    if secret.trim().len() < 8 {
                        return invalid("keys.secret", at("must be at least 8 characters"));
                    }
                }
            }
            if !digests.insert(key.digest()) {
                return invalid("keys.secret", at("two keys have the same secret"));
            }
            if let Err(e) = key.fields.check(self) {
                return invalid(e.config_key, at(&e.message));
            }
        }
        let named = self.named_keys();
        for (i, key) in named.iter().enumerate() {
            if named[..i].iter().any(|k| k.name == key.name) {
                return invalid(
                    "keys.name",
                    format!("`{}` is also the name of a server.api_keys key", key.name),
                );
            }
        }
        if self.server.admin_keys.iter().any(|k| k.trim().len() < 8) {
            return invalid(
                "server.admin_keys",
                "admin keys must be at least 8 characters".into(),
            );
        }
        let client: std::collections::BTreeSet<String> =
            named.iter().map(KeySettings::digest).collect();
        if self
            .server
            .all_admin_keys()
            .any(|k| client.contains(&digest_hex(k)))
        {
            return invalid(
                "server.admin_keys",
                "an admin key is also a client key: give admins keys of their own".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn load(toml: &str) -> Result<Settings, ConfigError> {
        Settings::from_toml(toml)
    }

    #[test]
    fn keys_load_with_limits_and_defaults() {
        let s = load(&format!(
            "[limits]\nrequests_per_minute = 10\ntokens_day = 1000\n\
             [[keys]]\nname = \"alice\"\nsecret_sha256 = \"{HEX}\"\n\
             limits = {{ max_concurrent = 2, tokens_day = 0 }}\nmodels = [\"sonnet\"]\n\
             [[keys]]\nname = \"bob\"\nsecret = \"bob-secret-1\"\nweight = 3\nagent = true\n\
             expires_at = \"2030-01-01T00:00:00Z\"\n"
        ))
        .unwrap();
        assert_eq!(s.keys.len(), 2);
        let alice = s.keys[0].fields.limits.over(&s.limits.defaults());
        assert_eq!(alice.max_concurrent, Some(2));
        assert_eq!(alice.requests_per_minute, Some(10));
        assert_eq!(alice.tokens_day, None, "0 lifts the default");
        assert_eq!(s.keys[0].fields.weight, 1);
        assert_eq!(s.keys[0].digest(), HEX);
        assert_eq!(s.keys[1].digest(), digest_hex("bob-secret-1"));
        assert_eq!(s.keys[1].expires_at_ms(), Some(1_893_456_000_000));
    }

    #[test]
    fn unknown_fields_and_bad_values_are_named() {
        let cases = [
            (
                "[[keys]]\nname = \"a\"\nsecret = \"12345678\"\nlimit = {}\n",
                "limit",
            ),
            (
                "[[keys]]\nname = \"a\"\nsecret = \"12345678\"\nlimits = { rpm = 1 }\n",
                "rpm",
            ),
            ("[limits]\nmax_concurent = 1\n", "max_concurent"),
            (
                "[[keys]]\nname = \"a b\"\nsecret = \"12345678\"\n",
                "keys.name",
            ),
            ("[[keys]]\nname = \"a\"\n", "keys.secret_sha256"),
            (
                "[[keys]]\nname = \"a\"\nsecret_sha256 = \"abc\"\n",
                "keys.secret_sha256",
            ),
            (
                "[[keys]]\nname = \"a\"\nsecret = \"12345678\"\nexpires_at = \"soon\"\n",
                "keys.expires_at",
            ),
            (
                "[[keys]]\nname = \"a\"\nsecret = \"12345678\"\naccounts = [\"x\"]\n",
                "keys.accounts",
            ),
            (
                "[[keys]]\nname = \"a\"\nsecret = \"12345678\"\nweight = 0\n",
                "keys.weight",
            ),
        ];
        for (toml, named) in cases {
            let err = load(toml).unwrap_err().to_string();
            assert!(err.contains(named), "{toml}: {err}");
        }
    }

    #[test]
    fn duplicate_names_and_secrets_are_refused() {
        let err = load(
            "[[keys]]\nname = \"a\"\nsecret = \"12345678\"\n\
             [[keys]]\nname = \"a\"\nsecret = \"87654321\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("this name"), "{err}");
        let err = load(
            "[[keys]]\nname = \"a\"\nsecret = \"12345678\"\n\
             [[keys]]\nname = \"b\"\nsecret = \"12345678\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("same secret"), "{err}");
        let err = load(
            "[server]\nadmin_keys = [\"12345678\"]\n\
             [[keys]]\nname = \"b\"\nsecret = \"12345678\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("server.admin_keys"), "{err}");
    }

    #[test]
    fn api_keys_become_named_keys() {
        let s = load(&format!(
            "[server]\napi_keys = [\"legacy-key\"]\n\
             [[keys]]\nname = \"alice\"\nsecret_sha256 = \"{HEX}\"\n"
        ))
        .unwrap();
        let named = s.named_keys();
        assert_eq!(named.len(), 2);
        let digest = digest_hex("legacy-key");
        assert_eq!(named[1].name, format!("key-{}", &digest[..8]));
        assert_eq!(named[1].digest(), digest);
        assert!(named[1].fields.agent);
        assert!(
            !named[0].fields.agent,
            "named keys default to no agent mode"
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let s = load("[[keys]]\nname = \"a\"\nsecret = \"hunter2-hunter2\"\n").unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
