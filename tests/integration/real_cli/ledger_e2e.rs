//! The usage ledger end to end, with the real CLI and the test upstream:
//! every request leaves a row naming its key, model, account, worker,
//! timings and the tokens the upstream reported; rows survive a stop and,
//! within the documented bound, a SIGKILL.

use std::path::Path;

use crate::common::binary::DaemonProcess;

use crate::common::*;
use serde_json::{json, Value};

const KEY_A: &str = "sk-ledger-a";
const KEY_B: &str = "sk-ledger-b";
const ADMIN: &str = "sk-ledger-admin";

/// `key-` and the first 8 hex digits of the key's SHA-256.
fn key_name(key: &str) -> String {
    format!("key-{}", &claude_pool::batches::owner_of(Some(key))[..8])
}

fn two_keys(pool: usize) -> DaemonConfig {
    DaemonConfig::real(pool).with_toml(&format!(
        "server.api_keys = [\"{KEY_A}\", \"{KEY_B}\"]\nserver.admin_keys = [\"{ADMIN}\"]"
    ))
}

/// A GET with the admin key.
fn admin_get(url: &str) -> reqwest::blocking::Response {
    client().get(url).header("x-api-key", ADMIN).send().unwrap()
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

/// Totals from `GET /admin/usage?group_by=key` equal, key by key, the
/// tokens the official SDKs were told (and the input the upstream counted);
/// `/admin/requests` pages through every row once; a client key's
/// `/v1/usage` shows only its own rows and windows.
#[test]
fn reports_add_up_to_what_the_sdks_were_told() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(two_keys(1), &upstream);
    let script = sdk_script("ledger_sdk.py", &[&daemon.base, KEY_A, KEY_B]);
    let out = run_to_success(script, "tests/ledger_sdk.py");
    let told: Value = serde_json::from_slice(&out.stdout).unwrap();

    let report: Value = admin_get(&daemon.url("/admin/usage?group_by=key&from=2020-01-01"))
        .json()
        .unwrap();
    let data = report["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{report}");
    for (who, key) in [("a", KEY_A), ("b", KEY_B)] {
        let group = data
            .iter()
            .find(|g| g["key"] == json!(key_name(key)))
            .unwrap_or_else(|| panic!("no group for {who}: {report}"));
        assert_eq!(group["requests"], told[who][0], "{who}: {report}");
        assert_eq!(group["input_tokens"], told[who][1], "{who}: {report}");
        assert_eq!(group["output_tokens"], told[who][2], "{who}: {report}");
        assert_eq!(group["errors"], 0);
    }
    let upstream_input: u64 = upstream
        .message_calls()
        .iter()
        .map(|c| (c.body.to_string().len() / 4) as u64)
        .sum();
    assert_eq!(
        report["total"]["input_tokens"],
        json!(upstream_input),
        "the input tokens the upstream counted: {report}"
    );

    // Paging: every row once, newest first.
    let mut seen = Vec::new();
    let mut url = daemon.url("/admin/requests?limit=2");
    loop {
        let page: Value = admin_get(&url).json().unwrap();
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => url = daemon.url(&format!("/admin/requests?limit=2&cursor={cursor}")),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort_unstable_by(|x, y| y.cmp(x));
    sorted.dedup();
    assert_eq!(seen, sorted, "newest first, no repeats");
    assert_eq!(seen.len(), 6);
    let by_hour: Value = admin_get(
        &(daemon.url("/admin/usage?group_by=model,hour&key=")
            + &key_name(KEY_B)
            + "&from=2020-01-01"),
    )
    .json()
    .unwrap();
    assert_eq!(by_hour["total"]["requests"], 2, "{by_hour}");
    assert!(by_hour["data"][0]["period_start"]
        .as_str()
        .unwrap()
        .ends_with(":00:00.000Z"));

    // A client sees its own rows and windows only.
    let mine: Value = client()
        .get(daemon.url("/v1/usage"))
        .header("x-api-key", KEY_B)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(mine["key"], json!(key_name(KEY_B)));
    assert_eq!(mine["data"].as_array().unwrap().len(), 2, "{mine}");
    assert!(mine["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["key"] == mine["key"]));
    assert_eq!(mine["windows"]["5h"]["requests"], 2, "{mine}");
    assert_eq!(mine["windows"]["5h"]["input_tokens"], told["b"][1]);
    let other = client()
        .get(daemon.url("/v1/usage?key=") + &key_name(KEY_A))
        .header("x-api-key", KEY_B)
        .send()
        .unwrap();
    assert_eq!(other.status(), 400, "no key may read another's usage");
    let anonymous = client().get(daemon.url("/v1/usage")).send().unwrap();
    assert_eq!(anonymous.status(), 401);
    for bad in [
        "group_by=colour",
        "from=yesterday",
        "from=2030-01-01&to=2020-01-01",
    ] {
        let res = admin_get(&daemon.url(&format!("/admin/usage?{bad}")));
        assert_eq!(res.status(), 400, "{bad}");
    }
    let bad_cursor = admin_get(&daemon.url("/admin/requests?cursor=x"));
    assert_eq!(bad_cursor.status(), 400);
}

/// `GET /v1/usage` of a named key with limits: each limit with what its
/// requests used and what is left, from the ledger.
#[test]
fn a_named_key_sees_its_limits_used_and_left() {
    let upstream = FakeUpstream::start();
    let mut cfg = DaemonConfig::real(1);
    cfg.accounts_toml.push_str(
        "[[keys]]\nname = \"alice\"\nsecret = \"sk-ledger-alice\"\n\
         limits = { requests_per_minute = 50, tokens_day = 1000000 }\n",
    );
    let daemon = Daemon::start(cfg, &upstream);
    let reply: Value = post_with_key(&daemon, "sk-ledger-alice", &message_body("hi [[words:4]]"))
        .json()
        .unwrap();
    let tokens = reply["usage"]["input_tokens"].as_u64().unwrap()
        + reply["usage"]["output_tokens"].as_u64().unwrap();
    let mine: Value = client()
        .get(daemon.url("/v1/usage"))
        .header("x-api-key", "sk-ledger-alice")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(mine["key"], "alice", "{mine}");
    assert_eq!(mine["data"][0]["key"], "alice");
    let rpm = &mine["limits"]["requests_per_minute"];
    assert_eq!(
        (rpm["limit"].as_u64(), rpm["used"].as_u64()),
        (Some(50), Some(1)),
        "{mine}"
    );
    let day = &mine["limits"]["tokens_day"];
    assert_eq!(day["used"].as_u64(), Some(tokens), "{mine}");
    assert_eq!(day["remaining"].as_u64(), Some(1_000_000 - tokens));
}
