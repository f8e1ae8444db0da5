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
    // previous_response_id continued on the worker holding the
    // conversation: its upstream call carries the earlier turns as messages,
    // not a rendered history.
    let calls = upstream.message_calls();
    let again = calls
        .iter()
        .find(|c| c.all_text().contains("and again"))
        .expect("the continued turn reached the upstream");
    let messages = again.body["messages"].as_array().unwrap();
    assert!(
        messages.len() >= 3 && !again.all_text().contains("conversation_history"),
        "previous_response_id was served as a rendered history: {}",
        again.body["messages"]
    );
    let health: Value = daemon.health();
    assert_eq!(health["status"], "ok", "{health}");
}

#[test]
fn typescript_sdk_and_vercel_ai_sdk_speak_the_responses_api() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let node = PathBuf::from(std::env::var_os("NODE").unwrap_or_else(|| "/usr/bin/node".into()));
    let modules = root().join(".tools/node/node_modules");
    run(
        &node,
        &[
            root().join("tests/responses_node.mjs").to_str().unwrap(),
            &daemon.base,
            modules.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        upstream.message_calls().iter().any(resumed_with_results),
        "a tool round resumed its parked turn"
    );
}

/// Codex CLI's configuration: the daemon as a `responses` provider, and
/// everything that would reach the network elsewhere (analytics, feedback,
/// plugins and apps, update checks) switched off.
fn codex_config(base: &str) -> String {
    format!(
        r#"model = "claude-haiku-4-5"
model_provider = "pool"
check_for_update_on_startup = false

[analytics]
enabled = false

[feedback]
enabled = false

[features]
plugins = false
remote_plugin = false
apps = false
plugin_sharing = false
tool_suggest = false
skill_mcp_dependency_install = false

[model_providers.pool]
name = "claude-pool"
base_url = "{base}/v1"
wire_api = "responses"
env_key = "CLAUDE_POOL_TEST_KEY"
"#
    )
}

/// Every IPv4/IPv6 address a traced process tried to connect to.
fn connect_targets(trace: &str) -> Vec<String> {
    trace
        .lines()
        .filter(|l| l.contains("connect(") && !l.contains("AF_UNIX") && !l.contains("AF_NETLINK"))
        .filter_map(|l| {
            let start = l
                .find("inet_addr(\"")
                .map(|i| i + 11)
                .or_else(|| l.find("inet_pton(AF_INET6, \"").map(|i| i + 21))?;
            l[start..].split('"').next().map(str::to_string)
        })
        .collect()
}

#[test]
fn codex_cli_runs_its_shell_tool_through_the_pool() {
    let codex = root().join(".tools/node/node_modules/.bin/codex");
    let strace = PathBuf::from("/usr/bin/strace");
    assert!(
        strace.exists(),
        "strace is needed to check that Codex stays on loopback (.ci/run installs it)"
    );
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("config.toml"), codex_config(&daemon.base)).unwrap();
    let token = format!("proof-{}", std::process::id());
    std::fs::write(work.path().join("proof.txt"), &token).unwrap();
    let trace = home.path().join("connect.trace");
    let prompt = r#"Show me proof.txt. [[call:exec_command:{"cmd":"cat proof.txt"}]]"#;
    let stdout = run(
        &strace,
        &[
            "-f",
            "-e",
            "trace=connect",
            "-o",
            trace.to_str().unwrap(),
            codex.to_str().unwrap(),
            "exec",
            "--skip-git-repo-check",
            // Codex's own sandbox needs helper binaries it will not create
            // under a temporary CODEX_HOME; it is not what is tested here.
            "--dangerously-bypass-approvals-and-sandbox",
            "-C",
            work.path().to_str().unwrap(),
            prompt,
        ],
        &[
            ("CODEX_HOME", home.path().to_str().unwrap()),
            ("CLAUDE_POOL_TEST_KEY", "unused"),
        ],
    );
    // The fake model called Codex's shell tool; Codex ran it and sent the
    // output back as function_call_output, which the model echoes.
    assert!(
        stdout.contains("Tool results:") && stdout.contains(&token),
        "Codex's final message lacks the command's output:\n{stdout}"
    );
    let calls = upstream.message_calls();
    let offered: Vec<String> = calls[0].body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect();
    assert!(
        offered.iter().any(|n| n.ends_with("__exec_command")),
        "Codex's shell tool was offered to the model: {offered:?}"
    );
    assert!(
        calls.iter().any(resumed_with_results),
        "the tool output resumed the parked turn"
    );
    let trace = std::fs::read_to_string(&trace).unwrap();
    let elsewhere: Vec<String> = connect_targets(&trace)
        .into_iter()
        .filter(|a| a != "127.0.0.1" && a != "::1")
        .collect();
    assert!(
        elsewhere.is_empty(),
        "Codex connected beyond loopback: {elsewhere:?}"
    );
}
