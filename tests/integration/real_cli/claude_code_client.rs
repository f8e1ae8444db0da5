//! Claude Code itself as a client of the daemon: the real CLI run with
//! `ANTHROPIC_BASE_URL` at claude-pool, on its defaults, while the pool's own
//! workers (the same CLI) talk to the fake upstream. One session exercises
//! what such a user does: a question on the default model, one with
//! `--model sonnet`, a Bash tool round run by the client in its own
//! directory, and `--continue`; then the pool and the upstream's view are
//! checked.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::upstream::Recorded;
use crate::common::*;
use serde_json::{json, Value};
use tempfile::TempDir;

/// A Claude Code client with its own configuration and working directory.
struct Client {
    base: String,
    config: TempDir,
    cwd: TempDir,
}

impl Client {
    fn new(daemon: &Daemon) -> Self {
        Self {
            base: daemon.base.clone(),
            config: tempfile::tempdir().unwrap(),
            cwd: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(real_cli());
        command
            .args(args)
            .current_dir(self.cwd.path())
            .env("ANTHROPIC_BASE_URL", &self.base)
            .env("ANTHROPIC_API_KEY", "sk-any-key-the-daemon-accepts")
            .env("CLAUDE_CONFIG_DIR", self.config.path())
            .env("DISABLE_TELEMETRY", "1")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env_remove("ANTHROPIC_AUTH_TOKEN")
            .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Runs `claude ARGS` to completion; its stdout.
    fn run(&self, args: &[&str]) -> String {
        let mut child = self
            .command(args)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn the client CLI");
        let deadline = Instant::now() + Duration::from_secs(90);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("claude {args:?} did not finish in 90 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "claude {args:?} failed ({}): {stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// One live agent session (the CLI in stream-json mode, as an IDE or
    /// the Agent SDK drives it): each prompt is a turn; the result texts.
    fn session(&self, prompts: &[&str]) -> Vec<String> {
        let mut child = self
            .command(&[
                "-p",
                "--input-format",
                "stream-json",
                "--output-format",
                "stream-json",
                "--verbose",
                "--allowedTools",
                "Bash",
            ])
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn the client CLI");
        let (tx, rx) = std::sync::mpsc::channel::<Value>();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str(&line) {
                    let _ = tx.send(value);
                }
            }
        });
        let mut stdin = child.stdin.take().unwrap();
        let mut results = Vec::new();
        for prompt in prompts {
            let line = json!({"type": "user", "session_id": "", "parent_tool_use_id": null,
                              "message": {"role": "user", "content": prompt}});
            writeln!(stdin, "{line}").unwrap();
            loop {
                let message = rx
                    .recv_timeout(Duration::from_secs(90))
                    .expect("the client's turn ended");
                if message["type"] == "result" {
                    assert_eq!(message["is_error"], false, "{message}");
                    results.push(message["result"].as_str().unwrap_or_default().to_string());
                    break;
                }
            }
        }
        drop(stdin);
        let _ = child.wait();
        results
    }
}

/// The messages of an upstream call.
fn messages(call: &Recorded) -> &Vec<Value> {
    call.body["messages"].as_array().unwrap()
}

fn has_block(message: &Value, kind: &str) -> bool {
    message["content"]
        .as_array()
        .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == kind))
}

#[test]
fn claude_code_works_against_the_pool_on_its_defaults_and_stays_warm() {
    let upstream = FakeUpstream::start();
    // Three conversations hold a worker each below (two system prompts of
    // the default model, one of sonnet): a pool of three needs no spawn.
    let daemon = Daemon::start(DaemonConfig::real(3), &upstream);
    let client = Client::new(&daemon);
    // Its connectivity probe, and what the root says.
    let probe = crate::common::client()
        .head(daemon.url("/"))
        .send()
        .unwrap();
    assert_eq!(probe.status(), 200);
    let root: Value = crate::common::client()
        .get(daemon.url("/"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(root["name"], "claude-pool", "{root}");

    // `-p` on the default model, with the client's system messages.
    let out = client.run(&["-p", "hello from the client"]);
    assert!(out.contains("You said: hello from the client"), "{out}");
    // Another model.
    let out = client.run(&["--model", "sonnet", "-p", "which model answers"]);
    assert!(out.contains("You said: which model answers"), "{out}");
    // `--continue` of the first conversation.
    let out = client.run(&["--continue", "-p", "one more thing"]);
    assert!(out.contains("You said: one more thing"), "{out}");

    // An agent session: a Bash tool round (the model, through the pool,
    // calls the client's Bash, which runs in the client's directory), then
    // the next turn.
    let results = client.session(&[
        r#"make a file [[call:Bash:{"command":"echo made-by-bash > made.txt && echo BASH-RAN"}]]"#,
        "and after the tool round?",
    ]);
    assert!(
        results[0].contains("Tool results:") && results[0].contains("BASH-RAN"),
        "{results:?}"
    );
    assert!(
        results[1].contains("You said: and after the tool round?"),
        "{results:?}"
    );
    let made = std::fs::read_to_string(client.cwd.path().join("made.txt")).unwrap();
    assert_eq!(made.trim(), "made-by-bash");

    // No worker was spawned beyond the pool's own.
    let h = daemon.health();
    assert_eq!(h["restarts"], 0, "{h}");
    assert_eq!(h["workers"]["total"], 3, "{h}");

    let calls = upstream.message_calls();
    for call in &calls {
        let text = call.all_text();
        for trace in ["local-command", "<command-name>", "<conversation_history>"] {
            assert!(!text.contains(trace), "`{trace}` reached the model: {text}");
        }
        // Only the worker's own billing header: the client's is dropped.
        let headers = (call.system_blocks().iter())
            .filter(|b| b.contains("x-anthropic-billing-header"))
            .count();
        assert_eq!(headers, 1, "{:?}", call.system_blocks());
    }
    // The client's system message reached the model as system context.
    let first_user = messages(&calls[0]).last().unwrap().to_string();
    assert!(
        first_user.contains("<system-reminder>\\nAvailable agent types"),
        "{first_user}"
    );
    // The tool round continued in the live conversation: the result as a
    // real tool_result block after the real tool_use; and the turn after it
    // too, with the whole round in its structured history.
    let last = messages(calls.last().unwrap());
    assert_eq!(last.len(), 5, "{last:?}");
    assert!(has_block(&last[1], "tool_use"), "{last:?}");
    assert!(has_block(&last[2], "tool_result"), "{last:?}");
    let before = messages(&calls[calls.len() - 2]);
    assert_eq!(before.len(), 3, "{before:?}");
    assert!(has_block(&before[2], "tool_result"), "{before:?}");
}
