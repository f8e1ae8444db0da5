//! `[claude]`: how worker processes are spawned — the CLI command, its
//! directories, models and environment.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
            models: super::catalogue::default_ids(),
            max_retries: 2,
            api_timeout_ms: 120_000,
            env: BTreeMap::new(),
        }
    }
}
