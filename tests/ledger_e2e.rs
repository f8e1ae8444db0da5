//! The usage ledger end to end, with the real CLI and the test upstream:
//! every request leaves a row naming its key, model, account, worker,
//! timings and the tokens the upstream reported; rows survive a stop and,
//! within the documented bound, a SIGKILL.

mod common;

use std::path::Path;

use common::binary::DaemonProcess;

use common::*;
use serde_json::{json, Value};

const KEY_A: &str = "sk-ledger-a";
const KEY_B: &str = "sk-ledger-b";

/// `key-` and the first 8 hex digits of the key's SHA-256.
fn key_name(key: &str) -> String {
    format!("key-{}", &claude_pool::batches::owner_of(Some(key))[..8])
}

fn two_keys(pool: usize) -> DaemonConfig {
    DaemonConfig::real(pool).with_toml(&format!("server.api_keys = [\"{KEY_A}\", \"{KEY_B}\"]"))
}

/// Every ledger row of the store at `path`, oldest first, as JSON.
fn rows(path: &Path) -> Vec<Value> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT key, method, route, dialect, model_asked, model_served, account, worker,
                 node, status, error_type, input_tokens, output_tokens, queue_ms, ttft_ms,
                 duration_ms, stream, client_addr, user_agent, content, request_id
             FROM ledger_requests ORDER BY id",
        )
        .unwrap();
    let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let rows = stmt
        .query_map([], |row| {
            let mut obj = serde_json::Map::new();
            for (i, name) in names.iter().enumerate() {
                let v = match row.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => Value::Null,
                    rusqlite::types::ValueRef::Integer(n) => json!(n),
                    rusqlite::types::ValueRef::Real(f) => json!(f),
                    rusqlite::types::ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
                    rusqlite::types::ValueRef::Blob(_) => Value::Null,
                };
                obj.insert(name.clone(), v);
            }
            Ok(Value::Object(obj))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

fn post_with_key(daemon: &Daemon, key: &str, body: &Value) -> reqwest::blocking::Response {
    client()
        .post(daemon.url("/v1/messages"))
        .header("x-api-key", key)
        .header("user-agent", "ledger-test/1.0")
        .json(body)
        .send()
        .expect("request")
}

/// The usage an SSE stream's events reported, as the final message's.
fn stream_usage(text: &str) -> (u64, u64) {
    let events = parse_sse(text);
    let input = events
        .iter()
        .find(|(name, _)| name == "message_start")
        .and_then(|(_, d)| d["message"]["usage"]["input_tokens"].as_u64())
        .unwrap();
    let output = events
        .iter()
        .rev()
        .find(|(name, _)| name == "message_delta")
        .and_then(|(_, d)| d["usage"]["output_tokens"].as_u64())
        .unwrap();
    (input, output)
}

#[test]
fn every_request_leaves_a_row_with_its_key_placement_and_tokens() {
    let upstream = FakeUpstream::start();
    let mut daemon = Daemon::start(two_keys(1), &upstream);
    let mut reported = Vec::new();
    for text in ["first from a", "second from a [[words:7]]"] {
        let reply: Value = post_with_key(&daemon, KEY_A, &message_body(text))
            .json()
            .unwrap();
        let u = &reply["usage"];
        reported.push((
            key_name(KEY_A),
            u["input_tokens"].as_u64().unwrap(),
            u["output_tokens"].as_u64().unwrap(),
            false,
        ));
    }
    let mut streamed = message_body("streamed from b [[words:5]]");
    streamed["stream"] = json!(true);
    let text = post_with_key(&daemon, KEY_B, &streamed).text().unwrap();
    let (input, output) = stream_usage(&text);
    reported.push((key_name(KEY_B), input, output, true));
    let refused = post_with_key(&daemon, "sk-wrong", &message_body("nope"));
    assert_eq!(refused.status(), 401);
    assert_eq!(
        client().get(daemon.url("/health")).send().unwrap().status(),
        200
    );

    let dir = std::mem::replace(&mut daemon.dir, tempfile::tempdir().unwrap());
    daemon.stop().unwrap();
    let rows = rows(&dir.path().join("batches.sqlite3"));
    assert_eq!(
        rows.len(),
        4,
        "one row a request, none for /health: {rows:#?}"
    );
    for (row, (key, input, output, stream)) in rows.iter().zip(&reported) {
        assert_eq!(row["key"], json!(key), "{row}");
        assert_eq!(row["input_tokens"], json!(input), "{row}");
        assert_eq!(row["output_tokens"], json!(output), "{row}");
        assert_eq!(row["stream"], json!(i64::from(*stream)), "{row}");
        assert_eq!(row["status"], 200);
        assert_eq!(row["route"], "/v1/messages");
        assert_eq!(row["dialect"], "anthropic");
        assert_eq!(row["account"], "default");
        assert_eq!(row["worker"], 1);
        assert_eq!(row["model_asked"], "claude-haiku-4-5");
        assert!(
            row["model_served"]
                .as_str()
                .is_some_and(|m| m.contains("haiku")),
            "{row}"
        );
        assert!(row["queue_ms"].is_i64() && row["ttft_ms"].is_i64(), "{row}");
        assert!(
            row["ttft_ms"].as_i64() <= row["duration_ms"].as_i64(),
            "{row}"
        );
        assert_eq!(row["client_addr"], "127.0.0.1");
        assert_eq!(row["user_agent"], "ledger-test/1.0");
        assert!(
            row["content"].is_null(),
            "no text without ledger.record_content"
        );
        assert!(row["request_id"].as_str().unwrap().starts_with("req_"));
        assert!(!row.to_string().contains("sk-ledger"), "no secret in a row");
    }
    let refused = &rows[3];
    assert_eq!(refused["status"], 401);
    assert_eq!(refused["key"], "(none)");
    assert_eq!(refused["error_type"], "authentication_error");
    assert!(refused["worker"].is_null());
}

/// The bound the README states: a SIGKILL loses at most
/// `ledger.queue_capacity` rows. With the writer keeping up (nothing
/// dropped), a daemon killed right after N requests has at least
/// N - capacity of their rows, and a restart sees them in its windows.
#[test]
fn a_sigkill_loses_at_most_the_queue_capacity() {
    const N: usize = 30;
    const CAPACITY: usize = 8;
    let upstream = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = DaemonConfig::real(1).with_toml("server.listen = \"127.0.0.1:0\"");
    cfg.accounts_toml
        .push_str(&format!("[ledger]\nqueue_capacity = {CAPACITY}\n"));
    let config = dir.path().join("claude-pool.toml");
    std::fs::write(&config, settings_toml(&cfg, &upstream, &dir)).unwrap();
    let mut daemon = DaemonProcess::start(&config, dir.path().join("daemon.log"));
    daemon.wait_health("a ready worker", |h| h["workers"]["ready"] == 1);
    for i in 0..N {
        let status = client()
            .post(daemon.url("/v1/messages"))
            .json(&message_body(&format!("request {i}")))
            .send()
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    let metrics = client()
        .get(daemon.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("claude_pool_ledger_rows_dropped_total 0"),
        "the writer kept up, so only the kill can lose rows"
    );
    daemon.signal(libc::SIGKILL);
    daemon.child.wait().unwrap();
    let kept = rows(&dir.path().join("batches.sqlite3"));
    assert!(
        kept.len() >= N - CAPACITY && kept.len() <= N,
        "{} of {N} rows after SIGKILL (at most {CAPACITY} may be lost)",
        kept.len()
    );
    assert!(kept
        .iter()
        .all(|r| r["key"] == "anonymous" && r["status"] == 200));
    eprintln!("{} of {N} rows survived SIGKILL", kept.len());
}
