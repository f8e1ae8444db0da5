//! Agent mode with the real CLI: the fake upstream asks for Claude Code's
//! own tools (`[[call:NAME:JSON]]`), which run in the worker's workspace.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

fn agent_daemon(upstream: &FakeUpstream, root: &std::path::Path) -> Daemon {
    let toml = format!(
        "agent.enabled = true\nagent.workspace_root = {}",
        serde_json::to_string(&root.display().to_string()).unwrap()
    );
    let cfg = DaemonConfig::real(1).with_toml(&toml);
    Daemon::start(cfg.with_client_key("sk-agent-client"), upstream)
}

fn ask(daemon: &Daemon, text: &str) -> Value {
    let res = daemon.post(&message_body(text));
    assert_eq!(res.status(), 200);
    res.json().unwrap()
}

fn offered_tools(upstream: &FakeUpstream) -> Vec<String> {
    upstream.message_calls()[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn write_and_bash_run_in_the_workspace_and_report_back() {
    let upstream = FakeUpstream::start();
    let root = tempfile::tempdir().unwrap();
    let daemon = agent_daemon(&upstream, root.path());
    // The workspace is at /workspace inside the worker's sandbox.
    let file = root.path().join("worker-1/hello.txt");
    let call = json!({"file_path": "/workspace/hello.txt", "content": "hi from the agent"});
    let reply = ask(&daemon, &format!("write it [[call:Write:{call}]]"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "hi from the agent");
    let content = reply["content"].as_array().unwrap();
    assert_eq!(content.len(), 1, "one text block: {reply}");
    let text = content[0]["text"].as_str().unwrap();
    assert!(
        text.contains("Tool results:") && text.contains("hello.txt"),
        "{text}"
    );
    assert!(offered_tools(&upstream).contains(&"Write".to_string()));

    let call = json!({"command": "echo bash-says-$((6*7))", "description": "compute"});
    let reply = ask(&daemon, &format!("run it [[call:Bash:{call}]]"));
    let text = reply["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("bash-says-42"),
        "the model must see Bash's output: {text}"
    );
}

#[test]
fn paths_outside_the_workspace_are_refused() {
    let upstream = FakeUpstream::start();
    let root = tempfile::tempdir().unwrap();
    let daemon = agent_daemon(&upstream, root.path());
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("escaped.txt");
    let call = json!({"file_path": target, "content": "should not exist"});
    let reply = ask(&daemon, &format!("escape [[call:Write:{call}]]"));
    assert!(!target.exists(), "a write outside the workspace happened");
    let text = reply["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("ERROR"),
        "the refusal reaches the model as an error: {text}"
    );
}

#[test]
fn a_long_bash_command_dies_with_its_disconnected_client() {
    let upstream = FakeUpstream::start();
    let root = tempfile::tempdir().unwrap();
    let daemon = agent_daemon(&upstream, root.path());
    let call = json!({"command": "sleep 45.0625; echo finished", "description": "wait"});
    let mut body = message_body(&format!("wait [[call:Bash:{call}]]"));
    body["stream"] = json!(true);
    let res = daemon.post(&body);
    let sleeping = || !processes_with_cmdline("sleep 45.0625").is_empty();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !sleeping() {
        assert!(Instant::now() < deadline, "the Bash command never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(res);
    let deadline = Instant::now() + Duration::from_secs(5);
    while sleeping() {
        assert!(
            Instant::now() < deadline,
            "the Bash command outlived its client"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let reply = ask(&daemon, "are you free?");
    assert!(reply["content"][0]["text"].as_str().is_some());
}

#[test]
fn without_agent_mode_nothing_touches_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nope.txt");
    let call = json!({"file_path": file, "content": "x"});
    // The model asks for Write although no tool was offered: the CLI must
    // refuse it, and the refusal goes back to the model.
    let prompt = format!("write it [[force:Write:{call}]]");
    let refused = |upstream: &FakeUpstream, reply: &Value| {
        assert!(!file.exists(), "Write ran: {reply}");
        assert!(
            offered_tools(upstream).is_empty(),
            "no tools without agent mode"
        );
        let calls = upstream.message_calls();
        assert_eq!(calls.len(), 2, "the refusal went back to the model");
        let said = |needle: &str| {
            reply["content"].as_array().is_some_and(|blocks| {
                blocks
                    .iter()
                    .any(|b| b["text"].as_str().is_some_and(|t| t.contains(needle)))
            })
        };
        assert!(said("No such tool available: Write"), "{reply}");
    };
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let reply = ask(&daemon, &prompt);
    refused(&upstream, &reply);

    // With agent mode on, a request can still opt out.
    let upstream = FakeUpstream::start();
    let root = tempfile::tempdir().unwrap();
    let daemon = agent_daemon(&upstream, root.path());
    let res = client()
        .post(daemon.url("/v1/messages"))
        .header("x-claude-pool-agent", "off")
        .header("x-api-key", "sk-agent-client")
        .json(&message_body(&prompt))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    refused(&upstream, &res.json().unwrap());
}

#[test]
fn caller_tool_requests_and_agent_jobs_share_one_pool() {
    let upstream = FakeUpstream::start();
    let root = tempfile::tempdir().unwrap();
    let daemon = agent_daemon(&upstream, root.path());
    // A request with caller tools needs a plain worker: the idle agent worker
    // makes room for one.
    let body = json!({
        "model": "claude-haiku-4-5", "max_tokens": 50,
        "tools": [{"name": "lookup", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "plain please"}]
    });
    let res = daemon.post(&body);
    assert_eq!(res.status(), 200);
    let tools = offered_tools(&upstream);
    assert_eq!(tools.len(), 1, "only the caller's tool: {tools:?}");
    assert!(tools[0].ends_with("__lookup"));
    // And back: an agent job gets an agent worker again.
    let reply = ask(&daemon, "agent again");
    assert!(reply["content"][0]["text"].as_str().is_some());
    let calls = upstream.message_calls();
    let last_tools: Vec<&str> = calls.last().unwrap().body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(last_tools.contains(&"Bash"), "{last_tools:?}");
}

/// Batch requests opt out of agent mode per request (`"agent": false`
/// beside `custom_id`) or all at once (`x-claude-pool-agent: off` on the
/// create request); the others run as agent jobs, offered Claude Code's
/// tools.
#[test]
fn batch_requests_opt_out_of_agent_mode() {
    let upstream = FakeUpstream::start();
    let root = tempfile::tempdir().unwrap();
    let daemon = agent_daemon(&upstream, root.path());
    let run = |requests: Value, header: Option<&str>| {
        let mut req = client()
            .post(daemon.url("/v1/messages/batches"))
            .header("x-api-key", "sk-agent-client")
            .json(&json!({ "requests": requests }));
        if let Some(value) = header {
            req = req.header("x-claude-pool-agent", value);
        }
        let batch: Value = req.send().unwrap().json().unwrap();
        let url = daemon.url(&format!(
            "/v1/messages/batches/{}",
            batch["id"].as_str().unwrap()
        ));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let res = client()
                .get(&url)
                .header("x-api-key", "sk-agent-client")
                .send();
            let batch: Value = res.unwrap().json().unwrap();
            if batch["processing_status"] == "ended" {
                assert_eq!(
                    batch["request_counts"]["succeeded"],
                    requests.as_array().unwrap().len()
                );
                return;
            }
            assert!(Instant::now() < deadline, "never ended: {batch}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let item = |id: &str, agent: Option<bool>| {
        let mut item = json!({"custom_id": id, "params": message_body(&format!("batch {id}"))});
        if let Some(agent) = agent {
            item["agent"] = json!(agent);
        }
        item
    };
    run(
        json!([
            item("plain-1", Some(false)),
            item("agent-1", None),
            item("agent-2", Some(true))
        ]),
        None,
    );
    run(
        json!([item("plain-2", None), item("plain-3", Some(true))]),
        Some("off"),
    );
    for id in ["plain-1", "agent-1", "agent-2", "plain-2", "plain-3"] {
        let call = upstream
            .last_message_call(|r| r.all_text().contains(&format!("batch {id}")))
            .unwrap_or_else(|| panic!("{id} reached the upstream"));
        let offered_bash = call.body["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == "Bash"));
        assert_eq!(
            offered_bash,
            id.starts_with("agent"),
            "{id}: {}",
            call.body["tools"]
        );
    }
}
