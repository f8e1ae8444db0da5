//! The Responses API (`/v1/responses`) with the clients that speak it, each
//! against a daemon using the real CLI and the fake upstream: the official
//! `openai` Python SDK (`tests/responses_sdk.py`), the official TypeScript
//! SDK and the Vercel AI SDK (`tests/responses_node.mjs`), and Codex CLI.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::upstream::Recorded;
use common::*;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `program` with `args`; fails the test with its output unless it
/// exits 0. Returns its stdout.
fn run(program: &PathBuf, args: &[&str], envs: &[(&str, &str)]) -> String {
    assert!(
        program.exists(),
        "{} is missing: run ./scripts/test.sh (it installs the test clients into .tools/)",
        program.display()
    );
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("PYTHONUNBUFFERED", "1")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {}: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let report = format!(
        "{stdout}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{} failed ({}):\n{report}",
        program.display(),
        out.status
    );
    println!("{report}");
    stdout
}

/// Whether the user message of an upstream call carries tool results as
/// real `tool_result` blocks: a parked turn resumed, not a rendered history.
fn resumed_with_results(call: &Recorded) -> bool {
    let messages = call.body["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    messages.last().is_some_and(|m| {
        m["content"]
            .as_array()
            .is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result"))
    })
}

#[test]
fn official_python_sdk_speaks_the_responses_api() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    run(
        &root().join(".tools/pyenv/bin/python"),
        &[
            root().join("tests/responses_sdk.py").to_str().unwrap(),
            &daemon.base,
        ],
        &[],
    );
    let resumed = upstream
        .message_calls()
        .iter()
        .filter(|c| resumed_with_results(c))
        .count();
    assert!(
        resumed >= 2,
        "both tool rounds resumed their parked turns ({resumed} did)"
    );
    let health: Value = daemon.health();
    assert_eq!(health["status"], "ok", "{health}");
}
