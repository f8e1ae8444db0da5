//! Ledger rows of work that is not one HTTP exchange, and what a row keeps
//! of the conversation: each turn on a Responses WebSocket leaves its own
//! row (tokens the client was told, model, placement, status, timings) and
//! counts in the key's `/metrics` series; prompt and answer text are kept
//! only with `ledger.record_content`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

const ADMIN: &str = "sk-turns-admin";
const USER: &str = "sk-turns-user-1";

/// A daemon with one named key limited to haiku, and an admin key.
fn config(extra: &str) -> DaemonConfig {
    let mut cfg = DaemonConfig::real(1).with_toml(&format!("server.admin_keys = [\"{ADMIN}\"]"));
    cfg.accounts_toml.push_str(&format!(
        "[[keys]]\nname = \"turns\"\nsecret = \"{USER}\"\nmodels = [\"haiku\"]\n{extra}"
    ));
    cfg
}

/// Rows of `/admin/requests` matching `pred`, once there are `n`.
fn rows_where(daemon: &Daemon, n: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page: Value = client()
            .get(daemon.url("/admin/requests?limit=100"))
            .header("x-api-key", ADMIN)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let mut rows: Vec<Value> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| pred(r))
            .cloned()
            .collect();
        if rows.len() >= n {
            rows.reverse();
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} rows: {page}",
            rows.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The per-key counter `name{key="turns"…}` on `/metrics`.
fn key_metric(daemon: &Daemon, series: &str) -> u64 {
    let text = client()
        .get(daemon.url("/metrics"))
        .header("x-api-key", ADMIN)
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{text}")) as u64
}

#[test]
fn each_websocket_turn_leaves_a_row_and_counts_in_the_keys_metrics() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(config(""), &upstream);
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/pyenv/bin/python");
    let script = repo_path("tests/responses_ws.py");
    let out = Command::new(&python)
        .args([script.to_str().unwrap(), &daemon.base, "ledger", USER])
        .env("PYTHONUNBUFFERED", "1")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let told: Vec<Value> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("USAGE "))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(told.len(), 2, "{stdout}");

    let turns = rows_where(&daemon, 3, |r| r["method"] == "WS");
    assert_eq!(turns.len(), 3, "one row a turn: {turns:#?}");
    let socket = turns[0]["request_id"]
        .as_str()
        .unwrap()
        .rsplit_once('/')
        .unwrap()
        .0;
    for (i, row) in turns.iter().enumerate() {
        assert_eq!(row["key"], "turns", "{row}");
        assert_eq!(row["route"], "/v1/responses", "{row}");
        assert_eq!(row["dialect"], "responses", "{row}");
        assert_eq!(row["request_id"], format!("{socket}/{}", i + 1), "{row}");
        assert_eq!(row["client_addr"], "127.0.0.1", "{row}");
    }
    for (row, told) in turns[..2].iter().zip(&told) {
        assert_eq!(row["status"], 200, "{row}");
        assert_eq!(row["stream"], true, "{row}");
        assert_eq!(row["model_asked"], "claude-haiku-4-5", "{row}");
        assert!(
            row["model_served"]
                .as_str()
                .is_some_and(|m| m.contains("haiku")),
            "{row}"
        );
        assert_eq!(row["account"], "default", "{row}");
        assert!(row["worker"].is_u64() && row["queue_ms"].is_u64(), "{row}");
        let (ttft, duration) = (
            row["ttft_ms"].as_u64().unwrap(),
            row["duration_ms"].as_u64().unwrap(),
        );
        assert!(ttft <= duration, "{row}");
        assert_eq!(
            (
                row["usage"]["input_tokens"].clone(),
                row["usage"]["output_tokens"].clone()
            ),
            (told["input"].clone(), told["output"].clone()),
            "the row's tokens are those the client was told: {row}"
        );
        assert!(row["content"].is_null(), "no text by default: {row}");
    }
    assert_eq!(turns[2]["status"], 403, "{:#}", turns[2]);
    assert_eq!(turns[2]["error_type"], "permission_error", "{:#}", turns[2]);
    assert_eq!(turns[2]["usage"]["input_tokens"], 0);

    // /metrics: the turns (and the upgrade's own row) in the key's series.
    let input: u64 = told.iter().map(|t| t["input"].as_u64().unwrap()).sum();
    assert!(key_metric(&daemon, "claude_pool_key_requests_total{key=\"turns\"}") >= 3);
    assert_eq!(
        key_metric(
            &daemon,
            "claude_pool_key_tokens_total{direction=\"input\",key=\"turns\"}"
        ),
        input
    );
    let output: u64 = told.iter().map(|t| t["output"].as_u64().unwrap()).sum();
    assert_eq!(
        key_metric(
            &daemon,
            "claude_pool_key_tokens_total{direction=\"output\",key=\"turns\"}"
        ),
        output
    );
}

/// `ledger.record_content`: off by default, a row has no text (checked
/// above and in `every_request_leaves_a_row_with_its_key_placement_and_tokens`);
/// on, the row keeps the request body and the answer's text.
#[test]
fn record_content_keeps_the_prompt_and_the_answer_only_when_on() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(config("[ledger]\nrecord_content = true\n"), &upstream);
    let reply: Value = client()
        .post(daemon.url("/v1/messages"))
        .header("x-api-key", USER)
        .json(&message_body("remember the word PELICAN"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let answer = reply["content"][0]["text"].as_str().unwrap().to_string();
    assert!(answer.contains("PELICAN"), "{reply}");
    let rows = rows_where(&daemon, 1, |r| r["route"] == "/v1/messages");
    let content: Value =
        serde_json::from_str(rows[0]["content"].as_str().expect("content kept")).unwrap();
    let request: Value = serde_json::from_str(content["request"].as_str().unwrap()).unwrap();
    assert_eq!(
        request["messages"][0]["content"], "remember the word PELICAN",
        "{content}"
    );
    assert_eq!(content["answer"], answer.as_str(), "{content}");
    assert!(!rows[0].to_string().contains(USER), "no secret in a row");
}
