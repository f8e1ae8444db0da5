//! Settings: the TOML file, then `CLAUDE_POOL__SECTION__KEY` environment
//! overrides, then validation. Every key has a default, so the daemon runs
//! with no file at all; an unknown key or a bad value is an error that names
//! the key (a typo in a config must not be silently ignored).

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

mod accounts;
mod agent;
mod batches;
pub mod catalogue;
mod claude;
mod keys;
mod ledger;
mod pool;
pub mod proxies;
mod responses;
mod server;
mod shared;
mod store;
mod tools;
mod validate;
pub use accounts::{AccountPlan, AccountSettings};
pub use agent::{AgentSandbox, AgentSettings};
pub use batches::BatchSettings;
pub use claude::ClaudeSettings;
pub use keys::{
    check_use, digest_hex, is_key_name, parse_time, InvalidField, KeyFields, KeySettings,
    LimitSettings, Limits, TokenWindow, KEY_NAME_RULE,
};
pub use ledger::LedgerSettings;
pub use pool::{BlankSpares, PoolSettings};
pub use responses::ResponseSettings;
pub use server::ServerSettings;
pub use shared::{SharedSettings, Versioned};
pub use store::StoreSettings;
pub use tools::ToolSettings;

/// Prefix of environment overrides: `CLAUDE_POOL__POOL__SIZE=4` sets `pool.size`.
pub const ENV_PREFIX: &str = "CLAUDE_POOL";
/// Separator between the prefix, sections and keys in environment overrides.
pub const ENV_SEPARATOR: &str = "__";

/// Everything the daemon can be configured with.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `[server]`: listener, client keys, access rules, timeouts, logging.
    pub server: ServerSettings,
    /// `[pool]`: worker count, queue, recycling, restarts, affinity.
    pub pool: PoolSettings,
    /// `[claude]`: how worker processes are spawned.
    pub claude: ClaudeSettings,
    /// `[tools]`: caller-defined tools.
    pub tools: ToolSettings,
    /// `[agent]`: agent mode and its sandbox.
    pub agent: AgentSettings,
    /// `[batches]`: the Message Batches API.
    pub batches: BatchSettings,
    /// `[store]`: the store file every feature that keeps state shares.
    pub store: StoreSettings,
    /// `[responses]`: stored responses of the Responses API.
    pub responses: ResponseSettings,
    /// `[ledger]`: the usage ledger and audit log.
    pub ledger: LedgerSettings,
    /// Several Claude accounts (`[[accounts]]`); empty: one implicit account
    /// made of `[claude]` (see [`AccountSettings`]).
    pub accounts: Vec<AccountSettings>,
    /// Named client keys (`[[keys]]`), each with its limits and what it may
    /// use (see [`KeySettings`]).
    pub keys: Vec<KeySettings>,
    /// `[limits]`: the default limits of every client key, and how tokens
    /// count against budgets.
    pub limits: LimitSettings,
}

/// A configuration that cannot be used, with the key at fault where known.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or parsed, or a key is unknown or of the
    /// wrong type (the `config` crate names it).
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A value of the right type that cannot be used.
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Settings {
    /// Loads built-in defaults, then `file` (if any), then environment
    /// overrides, and validates the result.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator(ENV_SEPARATOR)
                .separator(ENV_SEPARATOR)
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("server.api_keys")
                .with_list_parse_key("server.admin_keys")
                .with_list_parse_key("server.cors_allowed_origins")
                .with_list_parse_key("server.allowed_hosts")
                .with_list_parse_key("claude.extra_args"),
        );
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        settings.read_old_names()?;
        settings.validate()?;
        settings.read_api_keys_file()?;
        settings.read_account_env_files()?;
        Ok(settings)
    }

    /// Reads `server.api_keys_file` into `server.file_keys` (replacing what
    /// was read before). [`Settings::load`] does this; [`Settings::from_toml`]
    /// does not, and the daemon does it again when it starts.
    /// Reads `server.admin_keys_file` into `server.file_admin_keys` too.
    pub fn read_api_keys_file(&mut self) -> Result<(), ConfigError> {
        let read = |path: &Option<std::path::PathBuf>, key| match path {
            None => Ok(Vec::new()),
            Some(path) => std::fs::read_to_string(path)
                .map(|text| server::parse_key_file(&text))
                .map_err(|e| ConfigError::Invalid {
                    key,
                    message: format!("cannot read {}: {e}", path.display()),
                }),
        };
        self.server.file_keys = read(&self.server.api_keys_file, "server.api_keys_file")?;
        self.server.file_admin_keys = read(&self.server.admin_keys_file, "server.admin_keys_file")?;
        // Keys from the files take part in the checks of duplicates.
        self.validate_keys()
    }

    /// Whether requests must carry a key: some client key (`[[keys]]`,
    /// `server.api_keys`, its file) or admin key is configured. A daemon
    /// with admin keys only answers clients with keys made through the
    /// admin API, never without a key. (Keys in the store count too; see
    /// `keys::KeyRing::keyless`.)
    pub fn requires_keys(&self) -> bool {
        !self.keys.is_empty()
            || self.server.keys().next().is_some()
            || self.server.all_admin_keys().next().is_some()
    }

    /// Loads settings from TOML text alone (no environment), for tests.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let mut settings: Settings = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()?
            .try_deserialize()?;
        settings.read_old_names()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Moves keys set under an old name to their new one, with a warning:
    /// `batches.store_path` is `store.path` (the store holds more than
    /// batches). Both set to different values is an error.
    fn read_old_names(&mut self) -> Result<(), ConfigError> {
        let Some(old) = self.batches.store_path.take() else {
            return Ok(());
        };
        if self.store.path.as_ref().is_some_and(|new| *new != old) {
            return Err(ConfigError::Invalid {
                key: "batches.store_path",
                message:
                    "is the old name of store.path, which names another file: set only store.path"
                        .into(),
            });
        }
        log::warn!("configuration key `batches.store_path` is deprecated: use `path` in `[store]` (the store holds more than batches)");
        self.store.path = Some(old);
        Ok(())
    }

    /// The parsed listen address.
    pub fn listen_addr(&self) -> Result<SocketAddr, std::net::AddrParseError> {
        self.server.listen.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_name_of_the_store_path_is_read_and_never_written() {
        let old = Settings::from_toml("[batches]\nstore_path = \"/x/s.db\"\n").unwrap();
        assert_eq!(old.store.path.as_deref(), Some(Path::new("/x/s.db")));
        assert_eq!(old.batches.store_path, None);
        let new = Settings::from_toml("[store]\npath = \"/x/s.db\"\n").unwrap();
        assert_eq!(new.store, old.store);
        let json = serde_json::to_value(&old).unwrap();
        assert_eq!(json["store"]["path"], "/x/s.db");
        assert!(json["batches"].get("store_path").is_none(), "{json}");
        let same = "[batches]\nstore_path = \"/x/s.db\"\n[store]\npath = \"/x/s.db\"\n";
        assert_eq!(Settings::from_toml(same).unwrap().store, new.store);
        let e = Settings::from_toml("[batches]\nstore_path = \"/a\"\n[store]\npath = \"/b\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("batches.store_path") && e.contains("store.path"),
            "{e}"
        );
    }

    #[test]
    fn defaults_are_valid_and_loopback() {
        let s = Settings::from_toml("").unwrap();
        assert_eq!(s.server.listen, "127.0.0.1:8787");
        assert!(s.listen_addr().unwrap().ip().is_loopback());
        assert_eq!(s.pool.size, 2);
        assert_eq!(s.server.max_body_bytes, 32 * 1024 * 1024);
    }

    #[test]
    fn unknown_key_is_rejected_by_name() {
        let err = Settings::from_toml("[pool]\nsize = 1\nsizes = 2\n").unwrap_err();
        assert!(err.to_string().contains("sizes"), "{err}");
    }

    #[test]
    fn bad_value_is_rejected_by_name() {
        let err = Settings::from_toml("[pool]\nsize = \"many\"\n").unwrap_err();
        assert!(err.to_string().contains("size"), "{err}");
        let err = Settings::from_toml("[pool]\nsize = 0\n").unwrap_err();
        assert!(err.to_string().contains("pool.size"), "{err}");
        let err = Settings::from_toml("[server]\nlisten = \"nowhere\"\n").unwrap_err();
        assert!(err.to_string().contains("server.listen"), "{err}");
    }

    #[test]
    fn an_unreadable_key_file_is_named() {
        let mut s =
            Settings::from_toml("[server]\napi_keys_file = \"/nonexistent/keys\"\n").unwrap();
        let err = s.read_api_keys_file().unwrap_err();
        assert!(err.to_string().contains("server.api_keys_file"), "{err}");
        assert!(err.to_string().contains("/nonexistent/keys"), "{err}");
    }

    #[test]
    fn worker_env_table_is_read() {
        let s = Settings::from_toml("[claude.env]\nANTHROPIC_BASE_URL = \"http://127.0.0.1:1\"\n")
            .unwrap();
        assert_eq!(
            s.claude.env.get("ANTHROPIC_BASE_URL").map(String::as_str),
            Some("http://127.0.0.1:1")
        );
    }
}
