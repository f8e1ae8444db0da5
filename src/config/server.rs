//! `[server]`: the HTTP front end — listener, client keys, access rules,
//! timeouts and logging.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The HTTP front end.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to listen on. Loopback unless deliberately changed.
    pub listen: String,
    /// Keys a client must present (`x-api-key` or `Authorization: Bearer`).
    /// Empty means no authentication, which is only allowed on loopback.
    pub api_keys: Vec<String>,
    /// Explicit opt-in to serve a non-loopback address without keys.
    pub allow_unauthenticated: bool,
    /// Upper bound on one job, queueing excluded.
    pub request_timeout_secs: u64,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// How long in-flight jobs may run on after SIGTERM/SIGINT.
    pub shutdown_grace_secs: u64,
    /// Interval of SSE keep-alives while a stream waits for the model.
    pub keepalive_secs: u64,
    /// Number of HTTP worker threads (0 = one per core).
    pub http_workers: usize,
    /// More client keys, one a line (`#` comments and blank lines skipped),
    /// accepted alongside `api_keys`.
    pub api_keys_file: Option<PathBuf>,
    /// The keys read from `api_keys_file` (see [`super::Settings::read_api_keys_file`]);
    /// never part of the file or the environment.
    #[serde(skip)]
    pub file_keys: Vec<String>,
    /// Keys that open the admin API (`/admin/…`) and nothing else: an admin
    /// key is not a client key.
    pub admin_keys: Vec<String>,
    /// More admin keys, one a line, accepted alongside `admin_keys`.
    pub admin_keys_file: Option<PathBuf>,
    /// The keys read from `admin_keys_file`; never part of the file or the
    /// environment.
    #[serde(skip)]
    pub file_admin_keys: Vec<String>,
    /// Whether `/health` needs a key as well (when keys are configured).
    pub health_requires_key: bool,
    /// Whether `/metrics` is open to anyone; otherwise only loopback peers
    /// may read it without a key.
    pub metrics_public: bool,
    /// Names besides loopback ones under which a keyless daemon serves
    /// requests (their `Host`), e.g. that of a reverse proxy on this host;
    /// `["*"]` = any. Ignored when keys are configured.
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed to call the API (CORS): empty = no CORS
    /// headers at all, `["*"]` = any origin.
    pub cors_allowed_origins: Vec<String>,
    /// Explicit opt-in to `cors_allowed_origins` without client keys, which
    /// lets pages of those origins drive the daemon from any browser that
    /// reaches it.
    pub allow_keyless_cors: bool,
    /// Most verbose level logged (`off`, `error`, `warn`, `info`, `debug`,
    /// `trace`); reloadable, unlike RUST_LOG, which can only narrow it.
    pub log_level: String,
    /// The daemon's address as clients reach it (`https://pool.example.com`),
    /// for absolute URLs in responses (a batch's `results_url`). Unset: built
    /// from the request's `Host`.
    pub public_url: Option<String>,
    /// This node's name in every id it hands out and in the
    /// `x-claude-pool-node` header (see [`crate::node`]); unset: derived
    /// from the host name.
    pub node_id: Option<String>,
    /// Peers (addresses or CIDR ranges, e.g. `10.0.0.0/8`) whose
    /// `X-Forwarded-For` names the client in the usage ledger; for any
    /// other peer the ledger records the peer's own address.
    pub trusted_proxies: Vec<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8787".into(),
            api_keys: Vec::new(),
            allow_unauthenticated: false,
            request_timeout_secs: 600,
            max_body_bytes: 32 * 1024 * 1024,
            shutdown_grace_secs: 30,
            keepalive_secs: 15,
            http_workers: 0,
            api_keys_file: None,
            file_keys: Vec::new(),
            admin_keys: Vec::new(),
            admin_keys_file: None,
            file_admin_keys: Vec::new(),
            health_requires_key: false,
            metrics_public: false,
            allowed_hosts: Vec::new(),
            cors_allowed_origins: Vec::new(),
            allow_keyless_cors: false,
            log_level: "info".into(),
            public_url: None,
            node_id: None,
            trusted_proxies: Vec::new(),
        }
    }
}

impl ServerSettings {
    /// This node's id: `node_id`, or one derived from the host name.
    pub fn node_id(&self) -> &str {
        self.node_id
            .as_deref()
            .unwrap_or_else(|| crate::node::from_host())
    }

    /// Every accepted client key: `api_keys` and those of `api_keys_file`.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.api_keys.iter().chain(&self.file_keys)
    }

    /// Every admin key: `admin_keys` and those of `admin_keys_file`.
    pub fn all_admin_keys(&self) -> impl Iterator<Item = &String> {
        self.admin_keys.iter().chain(&self.file_admin_keys)
    }

    /// `log_level` as a filter; `None` if it names no level.
    pub fn log_filter(&self) -> Option<log::LevelFilter> {
        self.log_level.trim().parse().ok()
    }

    /// `request_timeout_secs` as a [`Duration`].
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
    /// `shutdown_grace_secs` as a [`Duration`].
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
    /// `keepalive_secs` as a [`Duration`].
    pub fn keepalive(&self) -> Duration {
        Duration::from_secs(self.keepalive_secs)
    }
}

/// The keys of a key file: one a line, `#` comments and blank lines skipped.
pub(super) fn parse_key_file(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_skip_comments_and_blanks() {
        let keys = parse_key_file("# team keys\n\n  k-one  \n#k-off\nk-two\n");
        assert_eq!(keys, ["k-one", "k-two"]);
    }
}
