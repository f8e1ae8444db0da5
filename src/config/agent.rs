//! `[agent]`: agent mode, Claude Code's own tools running on this host, and
//! how its workers are contained.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
    /// The size of each of a sandboxed agent worker's private `/tmp` and
    /// home (tmpfs, in memory), MiB: writing past it fails with "No space
    /// left on device".
    pub tmpfs_size_mb: u64,
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
            tmpfs_size_mb: 256,
        }
    }
}
