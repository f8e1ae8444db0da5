//! Test support: the fake upstream, the daemon running in-process on a
//! port-0 listener, paths of the real and the fake CLI, and process checks.

pub mod binary;
pub mod disk;
pub mod rng;
pub mod sdk;
pub mod upstream;

mod config;
mod daemon;
mod processes;

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use claude_pool::config::Settings;
use serde_json::Value;
use tempfile::TempDir;

#[allow(unused_imports)] // Used by the tests that run the executable.
pub use binary::{write_fake_config, DaemonProcess};
pub use config::{settings_toml, DaemonConfig};
pub use daemon::Daemon;
#[allow(unused_imports)] // Used by the tests that check what a daemon left running.
pub use processes::{
    assert_no_processes_with_env, processes_with_cmdline, processes_with_env,
    root_processes_with_env,
};
#[allow(unused_imports)] // Used by the fuzz test and the soak bench.
pub use rng::Rng;
#[allow(unused_imports)] // Used by the tests that run the SDKs' scripts.
pub use sdk::{run_to_success, sdk_script};
pub use upstream::FakeUpstream;

/// The pinned real CLI installed by `scripts/install-claude-cli.sh`.
pub fn real_cli() -> String {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/claude/node_modules/.bin/claude");
    assert!(
        path.exists(),
        "the Claude CLI is not installed at {}: run scripts/install-claude-cli.sh (scripts/test.sh does)",
        path.display()
    );
    path.display().to_string()
}

/// A path inside the repository.
pub fn repo_path(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The Python of the SDK virtualenv (`scripts/install-python-sdks.sh`); a
/// missing one fails the test, never skips it.
pub fn python() -> PathBuf {
    let python = repo_path(".tools/pyenv/bin/python");
    assert!(
        python.exists(),
        "no Python SDK virtualenv at {}: run scripts/install-python-sdks.sh \
         (scripts/test.sh does); it needs python3 with the venv module \
         (Debian/Ubuntu: apt-get install python3 python3-venv)",
        python.display()
    );
    python
}

/// The fault-injecting stand-in CLI.
pub fn fake_cli() -> String {
    env!("CARGO_BIN_EXE_fake-claude").to_string()
}

/// A plain blocking GET returning JSON, for health polling from sync code.
pub fn blocking_get_json(url: &str) -> Value {
    reqwest::blocking::get(url)
        .expect("GET")
        .json::<Value>()
        .expect("json body")
}

/// The first `tool_use` block of a Messages reply.
pub fn tool_use(reply: &Value) -> &Value {
    reply["content"]
        .as_array()
        .and_then(|blocks| blocks.iter().find(|b| b["type"] == "tool_use"))
        .unwrap_or_else(|| panic!("no tool_use block in {reply}"))
}

/// A blocking client with a generous timeout.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A minimal Messages API body.
pub fn message_body(text: &str) -> Value {
    serde_json::json!({
        "model": "claude-haiku-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": text}]
    })
}

/// An SSE body split into (event name, data JSON) pairs.
pub fn parse_sse(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .filter_map(|frame| {
            let mut name = String::new();
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = v.to_string();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            if data.is_empty() {
                return None;
            }
            Some((
                name,
                serde_json::from_str(&data).unwrap_or(Value::String(data)),
            ))
        })
        .collect()
}

/// The concatenated text deltas of a Messages SSE stream.
pub fn sse_text(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(name, _)| name == "content_block_delta")
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect()
}
