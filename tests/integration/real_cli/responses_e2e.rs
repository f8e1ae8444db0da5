//! The Responses API (`/v1/responses`) with the clients that speak it, each
//! against a daemon using the real CLI and the fake upstream: the official
//! `openai` Python SDK (`tests/responses_sdk.py`), the official TypeScript
//! SDK and the Vercel AI SDK (`tests/responses_node.mjs`), and Codex CLI.

use std::path::PathBuf;
use std::process::Command;

use crate::common::upstream::Recorded;
use crate::common::*;
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
    // A conversation's second turn continued on its warm worker too.
    let two = calls
        .iter()
        .find(|c| c.all_text().contains("conversation turn two"))
        .expect("the conversation's second turn reached the upstream");
    assert!(
        two.body["messages"].as_array().unwrap().len() >= 3
            && !two.all_text().contains("conversation_history"),
        "the conversation's turn was served as a rendered history: {}",
        two.body["messages"]
    );
    let health: Value = daemon.health();
    assert_eq!(health["status"], "ok", "{health}");
}

#[test]
fn python_sdk_and_a_plain_client_speak_the_responses_api_over_a_websocket() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    run(
        &root().join(".tools/pyenv/bin/python"),
        &[
            root().join("tests/responses_ws.py").to_str().unwrap(),
            &daemon.base,
        ],
        &[],
    );
    // The socket's second turn continued the live CLI conversation: its
    // upstream call carries the first turn as messages, not a rendered
    // history, though the client sent only its new input (store: false).
    let calls = upstream.message_calls();
    let again = calls
        .iter()
        .find(|c| c.all_text().contains("and again"))
        .expect("the second turn reached the upstream");
    let messages = again.body["messages"].as_array().unwrap();
    assert!(
        messages.len() >= 3 && !again.all_text().contains("conversation_history"),
        "the socket's next turn was served as a rendered history: {}",
        again.body["messages"]
    );
    assert!(
        calls.iter().any(resumed_with_results),
        "the tool output resumed the parked turn"
    );
    assert!(
        !calls.iter().any(|c| c.all_text().contains("prewarm only")),
        "generate: false ran a model turn"
    );
}

#[test]
fn an_idle_websocket_lets_its_worker_go_and_carries_on() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::real(1).with_toml("pool.affinity_idle_secs = 1"),
        &upstream,
    );
    run(
        &root().join(".tools/pyenv/bin/python"),
        &[
            root().join("tests/responses_ws.py").to_str().unwrap(),
            &daemon.base,
            "idle",
        ],
        &[],
    );
    // The turn after the pause ran on a fresh CLI conversation, from the
    // history the socket kept (the client sent only its new input).
    let call = upstream
        .last_message_call(|c| c.all_text().contains("after the pause"))
        .expect("the turn after the pause reached the upstream");
    assert!(
        call.all_text().contains("remember TANGO"),
        "the history was not carried over: {}",
        call.body["messages"]
    );
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

/// A Codex CLI run under strace, with its home and working directory.
struct Codex {
    home: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Codex {
    /// Codex configured for `daemon`, plus `extra` lines in the provider's
    /// table (e.g. `supports_websockets = true`).
    fn new(daemon: &Daemon, extra: &str) -> Self {
        let home = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let config = codex_config(&daemon.base) + extra;
        std::fs::write(home.path().join("config.toml"), config).unwrap();
        Self { home, work }
    }

    /// Runs `codex <args…>` in the working directory; checks that it
    /// connected nowhere but loopback and returns its stdout.
    fn run(&self, args: &[&str]) -> String {
        let codex = root().join(".tools/node/node_modules/.bin/codex");
        let strace = PathBuf::from("/usr/bin/strace");
        assert!(
            strace.exists(),
            "strace is needed to check that Codex stays on loopback (.ci/run installs it)"
        );
        let trace = self.home.path().join("connect.trace");
        let mut argv = vec![
            "-f",
            "-e",
            "trace=connect",
            "-o",
            trace.to_str().unwrap(),
            codex.to_str().unwrap(),
        ];
        argv.extend_from_slice(args);
        let stdout = run(
            &strace,
            &argv,
            &[
                ("CODEX_HOME", self.home.path().to_str().unwrap()),
                ("CLAUDE_POOL_TEST_KEY", "unused"),
            ],
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
        stdout
    }

    /// `codex exec` (or `exec resume --last`) of `prompt`.
    fn exec(&self, resume: bool, prompt: &str) -> String {
        let work = self.work.path().to_str().unwrap();
        let mut args = vec!["exec"];
        if resume {
            args.extend(["resume", "--last"]);
        }
        args.extend([
            "--skip-git-repo-check",
            // Codex's own sandbox needs helper binaries it will not create
            // under a temporary CODEX_HOME; it is not what is tested here.
            "--dangerously-bypass-approvals-and-sandbox",
        ]);
        if !resume {
            args.extend(["-C", work]);
        }
        args.push(prompt);
        self.run(&args)
    }
}

/// The prompt that has the fake model call Codex's shell tool on proof.txt,
/// and the file's contents.
fn shell_round(codex: &Codex) -> (&'static str, String) {
    let token = format!("proof-{}", std::process::id());
    std::fs::write(codex.work.path().join("proof.txt"), &token).unwrap();
    (
        r#"Show me proof.txt. [[call:exec_command:{"cmd":"cat proof.txt"}]]"#,
        token,
    )
}

#[test]
fn codex_cli_runs_its_shell_tool_through_the_pool() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let codex = Codex::new(&daemon, "");
    let (prompt, token) = shell_round(&codex);
    let stdout = codex.exec(false, prompt);
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
}

/// How many requests `/metrics` counted on `route` with `status`.
fn requests_counted(daemon: &Daemon, route: &str, status: u16) -> u64 {
    let needle = format!("route=\"{route}\",status=\"{status}\"");
    daemon
        .metrics()
        .lines()
        .filter(|l| l.starts_with("claude_pool_http_requests_total") && l.contains(&needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn codex_cli_over_a_websocket_runs_its_shell_tool_and_resumes() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let codex = Codex::new(&daemon, "supports_websockets = true\n");
    let (prompt, token) = shell_round(&codex);
    let stdout = codex.exec(false, prompt);
    assert!(
        stdout.contains("Tool results:") && stdout.contains(&token),
        "Codex's final message lacks the command's output:\n{stdout}"
    );
    assert!(
        upstream.message_calls().iter().any(resumed_with_results),
        "the tool output resumed the parked turn"
    );
    let resumed = codex.exec(true, "And once more, briefly.");
    assert!(
        resumed.contains("You said: And once more"),
        "Codex's resumed session got no answer:\n{resumed}"
    );
    // Both sessions went over the socket, none over POST.
    assert!(
        requests_counted(&daemon, "/v1/responses", 101) >= 2,
        "{}",
        daemon.metrics()
    );
    assert_eq!(
        requests_counted(&daemon, "/v1/responses", 200),
        0,
        "Codex fell back to HTTP"
    );
}
