//! How a test daemon is configured: the builder tests use, and the TOML it
//! becomes (the directories in the test's own temporary directory).

use super::*;

/// How to start a test daemon.
pub struct DaemonConfig {
    pub command: String,
    pub pool_size: usize,
    /// Extra TOML appended to the generated config (sections may repeat keys
    /// only if not generated: see `toml`).
    pub extra_toml: String,
    /// Extra `[claude.env]` entries.
    pub env: Vec<(String, String)>,
    /// `[[accounts]]` tables, appended as they are.
    pub accounts_toml: String,
    /// The client key `server.api_keys` holds, which [`Daemon::post_to`]
    /// sends (agent mode refuses to start without one).
    pub client_key: Option<String>,
}

impl DaemonConfig {
    pub fn real(pool_size: usize) -> Self {
        Self {
            command: real_cli(),
            pool_size,
            extra_toml: String::new(),
            env: Vec::new(),
            accounts_toml: String::new(),
            client_key: None,
        }
    }

    pub fn fake(pool_size: usize) -> Self {
        Self {
            command: fake_cli(),
            ..Self::real_unchecked(pool_size)
        }
    }

    fn real_unchecked(pool_size: usize) -> Self {
        Self {
            command: String::new(),
            pool_size,
            extra_toml: String::new(),
            env: Vec::new(),
            accounts_toml: String::new(),
            client_key: None,
        }
    }

    pub fn with_toml(mut self, toml: &str) -> Self {
        self.extra_toml.push_str(toml);
        self.extra_toml.push('\n');
        self
    }

    /// Adds an `[[accounts]]` entry whose workers use the API key `key`.
    pub fn with_account(mut self, name: &str, key: &str, workers: usize) -> Self {
        self.accounts_toml.push_str(&format!(
            "[[accounts]]\nname = \"{name}\"\nworkers = {workers}\nenv = {{ ANTHROPIC_API_KEY = \"{key}\" }}\n"
        ));
        self
    }

    /// Requires the client key `key`, which [`Daemon::post_to`] then sends.
    pub fn with_client_key(mut self, key: &str) -> Self {
        self.client_key = Some(key.to_string());
        self.with_toml(&format!("server.api_keys = [{}]", toml_str(key)))
    }

    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// Everything but the listener, as TOML. `[server]`, `[pool]` and `[claude]`
/// are generated; `extra_toml` may add keys to none of them, so tests pass
/// their own keys through `pool_toml`/`server_toml`-style strings instead.
pub fn settings_toml(cfg: &DaemonConfig, upstream: &FakeUpstream, dir: &TempDir) -> String {
    let mut env = vec![
        ("ANTHROPIC_BASE_URL".to_string(), upstream.url.clone()),
        ("ANTHROPIC_API_KEY".to_string(), "sk-test".to_string()),
        ("DISABLE_TELEMETRY".to_string(), "1".to_string()),
        (
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".to_string(),
            "1".to_string(),
        ),
    ];
    // A test's own entry replaces the default of the same name.
    env.retain(|(k, _)| !cfg.env.iter().any(|(own, _)| own == k));
    env.extend(cfg.env.iter().cloned());
    let env_toml: String = env
        .iter()
        .map(|(k, v)| format!("{k} = {}\n", toml_str(v)))
        .collect();
    let [server_extra, pool_extra, claude_extra, tools_extra, agent_extra, batches_extra, responses_extra] =
        split_extra(&cfg.extra_toml);
    let server = with_defaults(
        &server_extra,
        &[
            ("shutdown_grace_secs", "10".into()),
            ("http_workers", "2".into()),
        ],
    );
    let pool = with_defaults(
        &pool_extra,
        &[
            ("size", cfg.pool_size.to_string()),
            ("boot_timeout_secs", "20".into()),
        ],
    );
    let claude = with_defaults(
        &claude_extra,
        &[
            ("command", toml_str(&cfg.command)),
            (
                "config_dir",
                toml_str(&dir.path().join("claude-config").display().to_string()),
            ),
            (
                "working_dir",
                toml_str(&dir.path().join("work").display().to_string()),
            ),
            ("max_retries", "0".into()),
            ("api_timeout_ms", "20000".into()),
        ],
    );
    // Each daemon its own store, never a file in the test's working directory.
    let batches = with_defaults(
        &batches_extra,
        &[(
            "store_path",
            toml_str(&dir.path().join("batches.sqlite3").display().to_string()),
        )],
    );
    format!(
        "[server]\n{server}\n[pool]\n{pool}\n[claude]\n{claude}\n\
         [tools]
{tools_extra}
[agent]
{agent_extra}
[batches]
{batches}
[responses]
{responses_extra}
\
         [claude.env]
{env_toml}
{}",
        cfg.accounts_toml
    )
}

/// The test's own lines of a section, plus each default it does not set.
fn with_defaults(extra: &str, defaults: &[(&str, String)]) -> String {
    let set = |key: &str| {
        extra
            .lines()
            .any(|l| l.split('=').next().is_some_and(|k| k.trim() == key))
    };
    let mut out: String = defaults
        .iter()
        .filter(|(key, _)| !set(key))
        .map(|(key, value)| format!("{key} = {value}\n"))
        .collect();
    out.push_str(extra);
    out
}

/// Splits `extra_toml` lines of the form `server.key = v`, `pool.key = v`,
/// `claude.key = v`, `tools.key = v`, `agent.key = v`, `batches.key = v`,
/// `responses.key = v` into the generated sections, in that order.
fn split_extra(extra: &str) -> [String; 7] {
    const SECTIONS: [&str; 7] = [
        "server.",
        "pool.",
        "claude.",
        "tools.",
        "agent.",
        "batches.",
        "responses.",
    ];
    let mut out: [String; 7] = Default::default();
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        let (i, rest) = SECTIONS
            .iter()
            .enumerate()
            .find_map(|(i, prefix)| line.strip_prefix(prefix).map(|rest| (i, rest)))
            .unwrap_or_else(|| panic!("extra toml lines must start with a section name: {line}"));
        out[i].push_str(rest);
        out[i].push('\n');
    }
    out
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}
