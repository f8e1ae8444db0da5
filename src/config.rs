//! Settings: the TOML file, then `CLAUDE_POOL__SECTION__KEY` environment
//! overrides, then validation. Every key has a default, so the daemon runs
//! with no file at all; an unknown key or a bad value is an error that names
//! the key (a typo in a config must not be silently ignored).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod batches;
mod responses;
pub use batches::BatchSettings;
pub use responses::ResponseSettings;

/// Prefix of environment overrides: `CLAUDE_POOL__POOL__SIZE=4` sets `pool.size`.
pub const ENV_PREFIX: &str = "CLAUDE_POOL";
/// Separator between the prefix, sections and keys in environment overrides.
pub const ENV_SEPARATOR: &str = "__";

/// Everything the daemon can be configured with.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub pool: PoolSettings,
    pub claude: ClaudeSettings,
    pub tools: ToolSettings,
    pub agent: AgentSettings,
    pub batches: BatchSettings,
    pub responses: ResponseSettings,
    /// Several Claude accounts (`[[accounts]]`); empty: one implicit account
    /// made of `[claude]` (see [`crate::accounts`]).
    pub accounts: Vec<crate::accounts::AccountSettings>,
}

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
    /// The keys read from `api_keys_file` (see [`Settings::read_api_keys_file`]);
    /// never part of the file or the environment.
    #[serde(skip)]
    pub file_keys: Vec<String>,
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
            health_requires_key: false,
            metrics_public: false,
            allowed_hosts: Vec::new(),
            cors_allowed_origins: Vec::new(),
            log_level: "info".into(),
            public_url: None,
            node_id: None,
        }
    }
}

/// The pool of CLI workers and the queue in front of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolSettings {
    /// Number of `claude` processes kept alive.
    pub size: usize,
    /// Jobs allowed to wait for a worker; one more is refused with 529.
    pub max_queue: usize,
    /// A job waiting longer than this is refused with 529.
    pub queue_timeout_secs: u64,
    /// Retire a worker after this many jobs (0 = never).
    pub max_jobs_per_worker: u64,
    /// Retire a worker whose resident memory exceeds this (0 = never).
    pub max_worker_rss_mb: u64,
    /// A worker that has not answered its readiness probe by then is killed.
    pub boot_timeout_secs: u64,
    /// During a job, this long without any output from the CLI counts as a hang.
    pub turn_idle_timeout_secs: u64,
    /// First delay before respawning a crashed worker; doubles per failure.
    pub restart_backoff_ms: u64,
    /// Cap of the doubling respawn delay.
    pub restart_backoff_max_ms: u64,
    /// This many worker failures (crash, failed boot) within
    /// `crash_loop_window_secs`, with no worker able to serve, mark the pool
    /// degraded: /health answers 503 and new jobs are refused at once.
    pub crash_loop_failures: u32,
    pub crash_loop_window_secs: u64,
    /// Keep a worker bound to the conversation it just answered, so the next
    /// turn of that conversation is sent only its new message.
    pub affinity: bool,
    /// A bound worker unused this long is cleared for other conversations.
    pub affinity_idle_secs: u64,
    /// Blank workers kept ready for jobs with a new system prompt (at most
    /// `size - 1`): when such a job takes a blank worker, the least recently
    /// used idle worker set up with another prompt is replaced by a blank one
    /// in the background, so the next new prompt does not wait for a boot.
    pub blank_spares: usize,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            size: 2,
            max_queue: 32,
            queue_timeout_secs: 60,
            max_jobs_per_worker: 200,
            max_worker_rss_mb: 1024,
            boot_timeout_secs: 30,
            turn_idle_timeout_secs: 300,
            restart_backoff_ms: 500,
            restart_backoff_max_ms: 30_000,
            crash_loop_failures: 3,
            crash_loop_window_secs: 60,
            affinity: true,
            affinity_idle_secs: 300,
            blank_spares: 1,
        }
    }
}

/// How workers are spawned.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaudeSettings {
    /// The CLI executable: a path, or a name looked up on PATH.
    pub command: String,
    /// Extra arguments appended to the worker's command line.
    pub extra_args: Vec<String>,
    /// Working directory of the workers (created if missing). Unset: a fresh
    /// empty directory under the system temp dir, so no CLAUDE.md or project
    /// settings are picked up by accident.
    pub working_dir: Option<PathBuf>,
    /// Becomes the workers' CLAUDE_CONFIG_DIR. Unset: the service account's
    /// own Claude config and login.
    pub config_dir: Option<PathBuf>,
    /// Model used when a request names none, or names a non-Claude model.
    pub default_model: String,
    /// Model ids `GET /v1/models` lists (any Claude id can be requested).
    pub models: Vec<String>,
    /// Upstream retries the CLI makes on its own (CLAUDE_CODE_MAX_RETRIES).
    pub max_retries: u32,
    /// Upstream request timeout of the CLI (API_TIMEOUT_MS).
    pub api_timeout_ms: u64,
    /// Extra environment for the workers, on top of the daemon's own.
    pub env: BTreeMap<String, String>,
}

impl Default for ClaudeSettings {
    fn default() -> Self {
        Self {
            command: "claude".into(),
            extra_args: Vec::new(),
            working_dir: None,
            config_dir: None,
            default_model: "sonnet".into(),
            models: crate::api::models::default_ids(),
            max_retries: 2,
            api_timeout_ms: 120_000,
            env: BTreeMap::new(),
        }
    }
}

/// Caller-defined tools (`tools` in a request).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToolSettings {
    /// How long a turn parked on the caller's tool calls waits for the
    /// caller's results before it is abandoned and the worker cleared.
    pub park_timeout_secs: u64,
}

impl Default for ToolSettings {
    fn default() -> Self {
        Self {
            park_timeout_secs: 300,
        }
    }
}

impl ToolSettings {
    pub fn park_timeout(&self) -> Duration {
        Duration::from_secs(self.park_timeout_secs)
    }
}

/// Agent mode: Claude Code's own tools (Read, Write, Bash, …) running on
/// this host for requests without caller tools. Off by default.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSettings {
    /// Run requests without caller tools as agent jobs.
    pub enabled: bool,
    /// The built-in tools agent workers may use.
    pub tools: Vec<String>,
    /// Built-in tools removed from agent workers entirely.
    pub disallowed_tools: Vec<String>,
    /// The CLI permission mode of agent workers: `default`, `acceptEdits`,
    /// `dontAsk` or `bypassPermissions` (as root the last needs IS_SANDBOX=1,
    /// which the daemon then sets).
    pub permission_mode: String,
    /// Upper bound on model turns (tool round trips) in one agent job.
    pub max_turns: u32,
    /// Each agent worker runs in its own directory under this one. Unset: a
    /// directory under the system temp dir.
    pub workspace_root: Option<PathBuf>,
    /// Show tool use to the client as lines of text in the reply.
    pub show_tool_activity: bool,
    /// How agent workers are contained.
    pub sandbox: AgentSandbox,
}

/// How agent workers are contained (`agent.sandbox`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentSandbox {
    /// Each agent worker's CLI in a bubblewrap sandbox of its own.
    #[default]
    Bwrap,
    /// No sandbox: the tools run as the daemon's user, with its view of the
    /// host; only the file tools' path check applies.
    None,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            tools: ["Read", "Write", "Edit", "Bash", "Glob", "Grep"]
                .map(String::from)
                .to_vec(),
            disallowed_tools: Vec::new(),
            permission_mode: "acceptEdits".into(),
            max_turns: 50,
            workspace_root: None,
            show_tool_activity: false,
            sandbox: AgentSandbox::Bwrap,
        }
    }
}

/// A configuration that cannot be used, with the key at fault where known.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
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
                .with_list_parse_key("server.cors_allowed_origins")
                .with_list_parse_key("server.allowed_hosts")
                .with_list_parse_key("claude.extra_args"),
        );
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        settings.read_api_keys_file()?;
        settings.read_account_env_files()?;
        Ok(settings)
    }

    /// Reads `server.api_keys_file` into `server.file_keys` (replacing what
    /// was read before). [`Settings::load`] does this; [`Settings::from_toml`]
    /// does not, and the daemon does it again when it starts.
    pub fn read_api_keys_file(&mut self) -> Result<(), ConfigError> {
        let Some(path) = &self.server.api_keys_file else {
            self.server.file_keys.clear();
            return Ok(());
        };
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
            key: "server.api_keys_file",
            message: format!("cannot read {}: {e}", path.display()),
        })?;
        self.server.file_keys = parse_key_file(&text);
        Ok(())
    }

    /// Loads settings from TOML text alone (no environment), for tests.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let settings: Settings = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_string(),
            })
        };
        if self.listen_addr().is_err() {
            return invalid("server.listen", "expected an address like 127.0.0.1:8787");
        }
        if self.pool.size == 0 {
            return invalid("pool.size", "must be at least 1");
        }
        if self.server.max_body_bytes == 0 {
            return invalid("server.max_body_bytes", "must be positive");
        }
        if self.server.keepalive_secs == 0 {
            return invalid("server.keepalive_secs", "must be positive");
        }
        if self.server.request_timeout_secs == 0 {
            return invalid("server.request_timeout_secs", "must be positive");
        }
        if self.pool.boot_timeout_secs == 0 {
            return invalid("pool.boot_timeout_secs", "must be positive");
        }
        const MODES: [&str; 4] = ["default", "acceptEdits", "dontAsk", "bypassPermissions"];
        if !MODES.contains(&self.agent.permission_mode.as_str()) {
            return invalid(
                "agent.permission_mode",
                "expected default, acceptEdits, dontAsk or bypassPermissions",
            );
        }
        if self.agent.enabled && self.agent.tools.is_empty() {
            return invalid("agent.tools", "agent mode needs at least one tool");
        }
        if self.pool.crash_loop_failures == 0 {
            return invalid("pool.crash_loop_failures", "must be at least 1");
        }
        if self.pool.turn_idle_timeout_secs == 0 {
            return invalid("pool.turn_idle_timeout_secs", "must be positive");
        }
        if self.claude.command.trim().is_empty() {
            return invalid("claude.command", "must name the claude executable");
        }
        if self.claude.default_model.trim().is_empty() {
            return invalid("claude.default_model", "must name a model");
        }
        if self.server.api_keys.iter().any(|k| k.trim().is_empty()) {
            return invalid("server.api_keys", "keys must not be empty strings");
        }
        if self.server.log_filter().is_none() {
            return invalid(
                "server.log_level",
                "expected off, error, warn, info, debug or trace",
            );
        }
        if let Some(url) = &self.server.public_url {
            let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
            if !scheme_ok || url.contains(['?', '#', ' ']) {
                return invalid(
                    "server.public_url",
                    "expected an http(s) URL like https://pool.example.com",
                );
            }
        }
        if self
            .server
            .node_id
            .as_deref()
            .is_some_and(|id| !crate::node::is_valid(id))
        {
            return invalid("server.node_id", crate::node::RULE);
        }
        if self.batches.max_requests == 0 {
            return invalid("batches.max_requests", "must be at least 1");
        }
        if self.batches.expiry_secs == 0 {
            return invalid("batches.expiry_secs", "must be positive");
        }
        if let Some(host) = self.server.allowed_hosts.iter().find(|h| !is_host_name(h)) {
            return Err(ConfigError::Invalid {
                key: "server.allowed_hosts",
                message: format!(
                    "`{host}` is not a host name like pool.example.com, an address, nor \"*\""
                ),
            });
        }
        if let Some(origin) = self
            .server
            .cors_allowed_origins
            .iter()
            .find(|o| !is_cors_origin(o))
        {
            return Err(ConfigError::Invalid {
                key: "server.cors_allowed_origins",
                message: format!(
                    "`{origin}` is not an origin like https://app.example.com (scheme, host, optional port; no path), nor \"*\""
                ),
            });
        }
        self.validate_accounts()
    }

    /// The parsed listen address.
    pub fn listen_addr(&self) -> Result<SocketAddr, std::net::AddrParseError> {
        self.server.listen.parse()
    }
}

/// The keys of a key file: one a line, `#` comments and blank lines skipped.
fn parse_key_file(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// `*`, or a name or address as it may appear in `Host` (a port allowed,
/// then ignored): no scheme, path, spaces or wildcards.
fn is_host_name(host: &str) -> bool {
    host == "*" || (!host.trim().is_empty() && !host.contains(['/', '?', '#', ' ', '*', '@', ',']))
}

/// `*`, or `scheme://host[:port]` as browsers send it in `Origin`.
fn is_cors_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let Some((scheme, host)) = origin.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        && !host.is_empty()
        && !host.contains(['/', '?', '#', ' ', '*'])
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

    /// Whether clients must present a key.
    pub fn has_keys(&self) -> bool {
        self.keys().next().is_some()
    }

    /// `log_level` as a filter; `None` if it names no level.
    pub fn log_filter(&self) -> Option<log::LevelFilter> {
        self.log_level.trim().parse().ok()
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
    pub fn keepalive(&self) -> Duration {
        Duration::from_secs(self.keepalive_secs)
    }
}

impl PoolSettings {
    pub fn queue_timeout(&self) -> Duration {
        Duration::from_secs(self.queue_timeout_secs)
    }
    pub fn boot_timeout(&self) -> Duration {
        Duration::from_secs(self.boot_timeout_secs)
    }
    pub fn turn_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.turn_idle_timeout_secs)
    }
    pub fn crash_loop_window(&self) -> Duration {
        Duration::from_secs(self.crash_loop_window_secs)
    }
    pub fn affinity_idle(&self) -> Duration {
        Duration::from_secs(self.affinity_idle_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn key_files_skip_comments_and_blanks() {
        let keys = parse_key_file("# team keys\n\n  k-one  \n#k-off\nk-two\n");
        assert_eq!(keys, ["k-one", "k-two"]);
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
    fn log_levels_and_cors_origins_are_checked() {
        let s = Settings::from_toml("[server]\nlog_level = \"debug\"\n").unwrap();
        assert_eq!(s.server.log_filter(), Some(log::LevelFilter::Debug));
        let err = Settings::from_toml("[server]\nlog_level = \"loud\"\n").unwrap_err();
        assert!(err.to_string().contains("server.log_level"), "{err}");
        for ok in ["*", "https://app.example.com", "http://localhost:5173"] {
            assert!(is_cors_origin(ok), "{ok}");
        }
        for bad in ["", "app.example.com", "https://x.com/", "https://*.x.com"] {
            assert!(!is_cors_origin(bad), "{bad}");
        }
        let err =
            Settings::from_toml("[server]\nallowed_hosts = [\"https://x.com\"]\n").unwrap_err();
        assert!(err.to_string().contains("server.allowed_hosts"), "{err}");
        Settings::from_toml("[server]\nallowed_hosts = [\"pool.lan\", \"[fd00::1]:80\"]\n")
            .unwrap();
        let err =
            Settings::from_toml("[server]\ncors_allowed_origins = [\"x.com\"]\n").unwrap_err();
        assert!(err.to_string().contains("cors_allowed_origins"), "{err}");
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
