//! Message batches end to end with the real CLI: the official Python SDK
//! through a whole batch's life and a cancel (`tests/batches_sdk.py`),
//! priority of interactive requests over batch work, expiry, a daemon
//! killed with SIGKILL mid-batch that finishes the batch after a restart,
//! every request answered exactly once; with one of two accounts limited,
//! batch work leaves one of the other's workers free; batch requests run as
//! their key. Per-key visibility is in the fast tier's `batches_e2e`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::batches_e2e::{create, get, numbered, params, results};
use crate::common::*;
use serde_json::{json, Value};

fn run_sdk_scenario(scenario: &str) {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let script = sdk_script("batches_sdk.py", &[&daemon.base, scenario]);
    run_to_success(script, &format!("tests/batches_sdk.py {scenario}"));
}

#[test]
fn the_python_sdk_runs_a_batch_from_create_to_delete() {
    run_sdk_scenario("lifecycle");
}

#[test]
fn the_python_sdk_cancels_a_batch_mid_way() {
    run_sdk_scenario("cancel");
}

fn wait_ended(base: &str, id: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let (_, batch) = get(base, &format!("/v1/messages/batches/{id}"));
        if batch["processing_status"] == "ended" {
            return batch;
        }
        assert!(Instant::now() < deadline, "batch never ended: {batch}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_interactive_request_does_not_wait_behind_a_large_batch() {
    let upstream = FakeUpstream::start();
    // One worker, which batch jobs may use: the hardest case.
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    // Each batch job takes about a second (20 words, 50 ms apart).
    let batch = create(&daemon.base, None, &numbered("b", 25, "[[slow:50]]"));
    let id = batch["id"].as_str().unwrap();
    daemon.wait_health(Duration::from_secs(30), |h| h["workers"]["busy"] == 1);
    let started = Instant::now();
    let res = daemon.post(&message_body("interactive"));
    let waited = started.elapsed();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().unwrap();
    assert_eq!(body["content"][0]["text"], "Hello! You said: interactive");
    // About one batch job's time (the one running), not the batch's 25 s.
    assert!(waited < Duration::from_secs(6), "waited {waited:?}");
    let (_, now) = get(&daemon.base, &format!("/v1/messages/batches/{id}"));
    assert_eq!(now["processing_status"], "in_progress", "{now}");
    println!("interactive request served in {waited:?} during a 25-request batch");
    // Cancel rather than wait 25 s; the running job may finish.
    let res = client()
        .post(daemon.url(&format!("/v1/messages/batches/{id}/cancel")))
        .header("content-type", "application/json")
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    wait_ended(&daemon.base, id, Duration::from_secs(30));
}

#[test]
fn requests_still_queued_at_expires_at_expire() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::real(1).with_toml("batches.expiry_secs = 2"),
        &upstream,
    );
    let batch = create(&daemon.base, None, &numbered("e", 8, "[[slow:50]]"));
    let created = humantime::parse_rfc3339(batch["created_at"].as_str().unwrap()).unwrap();
    let expires = humantime::parse_rfc3339(batch["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        expires.duration_since(created).unwrap(),
        Duration::from_secs(2)
    );
    let ended = wait_ended(
        &daemon.base,
        batch["id"].as_str().unwrap(),
        Duration::from_secs(30),
    );
    let counts = &ended["request_counts"];
    let (succeeded, expired) = (
        counts["succeeded"].as_u64().unwrap(),
        counts["expired"].as_u64().unwrap(),
    );
    assert!(succeeded >= 1 && expired >= 4, "{counts}");
    assert_eq!(succeeded + expired, 8, "{counts}");
    let results = results(&ended);
    assert_eq!(results.len(), 8);
    let expired_lines = results.values().filter(|r| r["type"] == "expired").count();
    assert_eq!(expired_lines as u64, expired);
    // Batch jobs count in the token metric as interactive ones do (20
    // words each: the fake's usage), and there were no others.
    let metrics = daemon.metrics();
    let output = metrics
        .lines()
        .find(|l| l.starts_with("claude_pool_tokens_total{direction=\"output\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
    assert_eq!(output, Some(20 * succeeded), "{metrics}");
}

#[test]
fn a_batch_survives_sigkill_and_every_request_is_answered_once() {
    let upstream = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    // Port 0 for both runs: each reports the port it got in its log.
    let cfg = DaemonConfig::real(2).with_toml("server.listen = \"127.0.0.1:0\"");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, settings_toml(&cfg, &upstream, &dir)).unwrap();
    let mut daemon = DaemonProcess::start(&config, dir.path().join("daemon.log"));
    let n = 12;
    // About 0.6 s each, on one worker (batches.max_workers: all but one).
    let batch = create(&daemon.base, None, &numbered("s", n, "[[slow:30]]"));
    let id = batch["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while upstream.message_calls().len() < 3 {
        assert!(Instant::now() < deadline, "the batch never got going");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Mid-request: the third is streaming.
    std::thread::sleep(Duration::from_millis(200));
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    let before = upstream.message_calls().len();

    let daemon = DaemonProcess::start(&config, dir.path().join("daemon2.log"));
    let ended = wait_ended(&daemon.base, &id, Duration::from_secs(90));
    let results = results(&ended);
    drop(daemon);
    assert_eq!(ended["request_counts"]["succeeded"], n, "{ended}");
    assert_eq!(results.len(), n, "every custom_id exactly once");
    for i in 0..n {
        let r = &results[&format!("s{i}")];
        assert_eq!(r["type"], "succeeded", "s{i}: {r}");
        let text = r["message"]["content"][0]["text"].as_str().unwrap();
        assert!(text.ends_with("word19 "), "s{i} ran to the end: {text}");
    }
    // Each request reached the upstream once, the one interrupted twice.
    let calls = upstream.message_calls();
    let runs = |i: usize| {
        let marker = format!("s{i} [[slow");
        calls
            .iter()
            .filter(|c| c.all_text().contains(&marker))
            .count()
    };
    let counts: Vec<usize> = (0..n).map(runs).collect();
    assert!(counts.iter().all(|&c| (1..=2).contains(&c)), "{counts:?}");
    assert!(
        counts.iter().filter(|&&c| c == 2).count() == 1,
        "the request running at the kill, and only it, runs again: {counts:?} ({before} calls before)"
    );
}

#[test]
fn a_batch_request_ending_in_tool_calls_does_not_hold_its_worker() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let mut with_tools = params("weather please [[tool:get_weather]]");
    with_tools["tools"] = json!([{"name": "get_weather", "description": "Weather of a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let res = client()
        .post(daemon.url("/v1/messages/batches"))
        .json(&json!({"requests": [
            {"custom_id": "tool", "params": with_tools},
            {"custom_id": "after", "params": params("next one")},
        ]}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let batch: Value = res.json().unwrap();
    // Well within tools.park_timeout_secs (300): the turn was not parked.
    let ended = wait_ended(
        &daemon.base,
        batch["id"].as_str().unwrap(),
        Duration::from_secs(60),
    );
    let results = results(&ended);
    let tool = &results["tool"]["message"];
    assert_eq!(tool["stop_reason"], "tool_use", "{tool}");
    assert_eq!(tool_use(tool)["name"], "get_weather", "{tool}");
    assert_eq!(
        results["after"]["message"]["content"][0]["text"],
        "Hello! You said: next one"
    );
    daemon.wait_ready(Duration::from_secs(30));
}

#[test]
fn a_rate_limited_request_waits_for_capacity_instead_of_failing() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::real(1).with_toml("batches.expiry_secs = 3"),
        &upstream,
    );
    let batch = create(
        &daemon.base,
        None,
        &[
            ("fine".into(), "all good".into()),
            ("limited".into(), "too much [[status:429]]".into()),
        ],
    );
    let ended = wait_ended(
        &daemon.base,
        batch["id"].as_str().unwrap(),
        Duration::from_secs(30),
    );
    let results = results(&ended);
    assert_eq!(results["fine"]["type"], "succeeded", "{results:?}");
    // Queued again after the 429, never errored; still waiting at expiry.
    assert_eq!(results["limited"]["type"], "expired", "{results:?}");
    let tries = upstream
        .message_calls()
        .iter()
        .filter(|c| c.all_text().contains("too much"))
        .count();
    assert!(tries >= 1, "the limited request was tried");
}

/// Sends requests (with client key `key`, if any) until account `b`, whose
/// upstream key answers 429, is marked limited.
fn probe_until_b_is_limited(daemon: &Daemon, key: Option<&str>) {
    let b_limited = |h: &Value| {
        h["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "b" && a["status"] == "limited")
    };
    for i in 0..4 {
        if b_limited(&daemon.health()) {
            break;
        }
        let mut req = client()
            .post(daemon.url("/v1/messages"))
            .json(&message_body(&format!("probe {i}")));
        if let Some(key) = key {
            req = req.header("x-api-key", key);
        }
        assert_eq!(req.send().unwrap().status(), 200);
    }
    daemon.wait_health(Duration::from_secs(30), b_limited);
}

#[test]
fn batch_work_leaves_a_worker_of_the_accounts_that_can_serve_free() {
    let upstream = FakeUpstream::start();
    // Two accounts of two workers (a pool-wide batch cap of 3); `b` is
    // limited for the whole test, so only `a`'s two workers can serve.
    upstream.limit_key("sk-b", 60, Duration::from_secs(600));
    let daemon = Daemon::start(
        // (No affinity: the probes below leave no worker bound.)
        DaemonConfig::real(4)
            .with_toml("claude.max_retries = 2\npool.affinity = false")
            .with_account("a", "sk-a", 2)
            .with_account("b", "sk-b", 2),
        &upstream,
    );
    daemon.wait_ready(Duration::from_secs(60));
    probe_until_b_is_limited(&daemon, None);

    let n = 8;
    let batch = create(&daemon.base, None, &numbered("c", n, "[[slow:30]]"));
    let id = batch["id"].as_str().unwrap().to_string();
    // While it runs, at most one of `a`'s two workers runs a job (a worker
    // clearing after its job is not busy with one).
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut most_busy = 0;
    loop {
        let health = daemon.health();
        let busy = health["workers"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["state"] == "busy")
            .count();
        most_busy = most_busy.max(busy);
        let (_, now) = get(&daemon.base, &format!("/v1/messages/batches/{id}"));
        if now["processing_status"] == "ended" {
            assert_eq!(now["request_counts"]["succeeded"], n, "{now}");
            break;
        }
        assert!(Instant::now() < deadline, "the batch never ended: {now}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        most_busy, 1,
        "one of a's workers stays free for interactive work"
    );
}

const BATCH_ADMIN: &str = "sk-batch-admin";
const ALICE: &str = "sk-batch-alice";

/// `path` with client or admin key `key`: status and JSON body.
fn keyed_get(base: &str, path: &str, key: &str) -> (u16, Value) {
    let res = client()
        .get(format!("{base}{path}"))
        .header("x-api-key", key)
        .send()
        .expect("GET");
    (res.status().as_u16(), res.json().unwrap_or(Value::Null))
}

/// Creates a batch with client key `key`.
fn create_as(base: &str, key: &str, requests: &[(String, String)]) -> Value {
    let requests: Vec<Value> = requests
        .iter()
        .map(|(id, text)| json!({"custom_id": id, "params": params(text)}))
        .collect();
    let res = client()
        .post(format!("{base}/v1/messages/batches"))
        .header("x-api-key", key)
        .json(&json!({ "requests": requests }))
        .send()
        .expect("create");
    assert_eq!(res.status(), 200);
    res.json().unwrap()
}

/// The ledger rows of batch `id` on `/admin/requests`, once there are `n`
/// (rows are written behind the requests).
fn ledger_rows_of(base: &str, id: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, page) = keyed_get(base, "/admin/requests?limit=100", BATCH_ADMIN);
        assert_eq!(status, 200, "{page}");
        let rows: Vec<Value> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["batch_id"] == id)
            .cloned()
            .collect();
        if rows.len() >= n {
            assert_eq!(rows.len(), n, "one row a request: {rows:#?}");
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

/// A batch runs as the key that created it: only on the account that key
/// may use, each request leaving one ledger row with the key's name and
/// the batch's id, its tokens those the client was told, counted in the
/// key's own `/v1/usage`.
#[test]
fn batch_requests_run_as_their_key_and_leave_its_ledger_rows() {
    let upstream = FakeUpstream::start();
    let mut cfg = DaemonConfig::real(2)
        .with_toml(&format!("server.admin_keys = [\"{BATCH_ADMIN}\"]"))
        .with_account("x", "sk-x", 1)
        .with_account("y", "sk-y", 1);
    cfg.accounts_toml.push_str(&format!(
        "[[keys]]\nname = \"alice\"\nsecret = \"{ALICE}\"\naccounts = [\"x\"]\n"
    ));
    let daemon = Daemon::start(cfg, &upstream);
    daemon.wait_ready(Duration::from_secs(60));
    let n = 3;
    let batch = create_as(&daemon.base, ALICE, &numbered("a", n, "[[words:6]]"));
    let id = batch["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(90);
    let ended = loop {
        let (_, now) = keyed_get(&daemon.base, &format!("/v1/messages/batches/{id}"), ALICE);
        if now["processing_status"] == "ended" {
            break now;
        }
        assert!(Instant::now() < deadline, "the batch never ended: {now}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(ended["request_counts"]["succeeded"], n, "{ended}");
    let text = client()
        .get(ended["results_url"].as_str().unwrap())
        .header("x-api-key", ALICE)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let told: HashMap<String, (u64, u64)> = text
        .lines()
        .map(|line| {
            let line: Value = serde_json::from_str(line).unwrap();
            let usage = &line["result"]["message"]["usage"];
            (
                line["custom_id"].as_str().unwrap().to_string(),
                (
                    usage["input_tokens"].as_u64().unwrap(),
                    usage["output_tokens"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(told.len(), n);

    // Every upstream call of the batch went out with account x's key.
    let batch_calls: Vec<_> = upstream
        .message_calls()
        .into_iter()
        .filter(|c| c.all_text().contains("[[words:6]]"))
        .collect();
    assert!(batch_calls.len() >= n, "{} calls", batch_calls.len());
    assert!(
        batch_calls
            .iter()
            .all(|c| c.api_key.as_deref() == Some("sk-x")),
        "alice may use account x only"
    );

    let rows = ledger_rows_of(&daemon.base, &id, n);
    let mut total = (0, 0);
    for row in &rows {
        assert_eq!(row["key"], "alice", "{row}");
        assert_eq!(row["account"], "x", "{row}");
        assert_eq!(row["status"], 200, "{row}");
        assert_eq!(row["route"], "/v1/messages/batches", "{row}");
        assert_eq!(row["model_asked"], "claude-haiku-4-5", "{row}");
        assert!(row["worker"].is_u64() && row["ttft_ms"].is_u64(), "{row}");
        let custom_id = row["request_id"]
            .as_str()
            .unwrap()
            .strip_prefix(&format!("{id}/"))
            .expect("request id: batch id / custom_id");
        let usage = (
            row["usage"]["input_tokens"].as_u64().unwrap(),
            row["usage"]["output_tokens"].as_u64().unwrap(),
        );
        assert_eq!(usage, told[custom_id], "{row}");
        total = (total.0 + usage.0, total.1 + usage.1);
    }
    // Alice reads her batch's usage as her own.
    let (status, mine) = keyed_get(&daemon.base, "/v1/usage", ALICE);
    assert_eq!(status, 200, "{mine}");
    let day = &mine["windows"]["day"];
    // (Her other rows are her GETs, which used no tokens.)
    assert_eq!(
        (day["input_tokens"].as_u64(), day["output_tokens"].as_u64()),
        (Some(total.0), Some(total.1)),
        "{mine}"
    );
    let listed = mine["data"].as_array().unwrap();
    assert_eq!(
        listed
            .iter()
            .filter(|r| r["batch_id"] == id.as_str())
            .count(),
        n,
        "{mine}"
    );
}

/// A key revoked while its batch runs: the request running finishes (and
/// is recorded as the key's), those not started end errored with an
/// authentication_error saying the key was revoked; none of them reaches
/// the upstream.
#[test]
fn a_revoked_keys_batch_stops_after_its_running_request() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::real(2).with_toml(&format!("server.admin_keys = [\"{BATCH_ADMIN}\"]")),
        &upstream,
    );
    daemon.wait_ready(Duration::from_secs(60));
    let made: Value = client()
        .post(daemon.url("/admin/keys"))
        .header("x-api-key", BATCH_ADMIN)
        .json(&json!({"name": "carol"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let secret = made["secret"].as_str().unwrap().to_string();
    // Each request about a second (20 words, 50 ms apart); one at a time
    // (the batch cap of a pool of 2 is 1).
    let n = 4;
    let batch = create_as(&daemon.base, &secret, &numbered("r", n, "[[slow:50]]"));
    let id = batch["id"].as_str().unwrap().to_string();
    daemon.wait_health(Duration::from_secs(30), |h| h["workers"]["busy"] == 1);
    let revoked = client()
        .delete(daemon.url("/admin/keys/carol"))
        .header("x-api-key", BATCH_ADMIN)
        .send()
        .unwrap();
    assert!(revoked.status().is_success(), "{}", revoked.status());
    // The batch is nobody's now; the ledger shows how it went.
    let rows = ledger_rows_of(&daemon.base, &id, 1);
    assert_eq!(rows[0]["key"], "carol", "{rows:#?}");
    assert_eq!(rows[0]["status"], 200, "{rows:#?}");
    // Read from the store (nobody may read the batch over HTTP now).
    let conn = rusqlite::Connection::open(daemon.dir.path().join("batches.sqlite3")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let states = loop {
        let states: Vec<(String, Option<String>)> = conn
            .prepare("SELECT state, result FROM batch_requests ORDER BY idx")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        if states.iter().all(|(s, _)| s != "queued" && s != "running") {
            break states;
        }
        assert!(Instant::now() < deadline, "never ended: {states:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let started = upstream
        .message_calls()
        .iter()
        .filter(|c| c.all_text().contains("[[slow:50]]"))
        .count();
    assert_eq!(states[0].0, "succeeded", "{states:?}");
    for (state, result) in &states[1..] {
        assert_eq!(state, "errored", "{states:?}");
        let result: Value = serde_json::from_str(result.as_deref().unwrap()).unwrap();
        assert_eq!(
            result["error"]["error"]["type"], "authentication_error",
            "{result}"
        );
        let message = result["error"]["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("revoked") && message.contains(&id),
            "{message}"
        );
    }
    assert_eq!(started, 1, "the revoked key's queued requests never ran");
}

/// With one of two accounts limited, a keyed batch runs on the other
/// account's worker without churning workers: nothing restarts.
#[test]
fn a_batch_while_one_account_is_limited_restarts_no_worker() {
    let upstream = FakeUpstream::start();
    upstream.limit_key("sk-b", 60, Duration::from_secs(600));
    let mut cfg = DaemonConfig::real(2)
        .with_toml("claude.max_retries = 2")
        .with_account("a", "sk-a", 1)
        .with_account("b", "sk-b", 1);
    cfg.accounts_toml.push_str(&format!(
        "[[keys]]\nname = \"alice\"\nsecret = \"{ALICE}\"\n"
    ));
    let daemon = Daemon::start(cfg, &upstream);
    daemon.wait_ready(Duration::from_secs(60));
    probe_until_b_is_limited(&daemon, Some(ALICE));
    let before = daemon.health()["restarts"].as_u64().unwrap();
    let batch = create_as(&daemon.base, ALICE, &numbered("r", 3, "hello"));
    let id = batch["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, now) = keyed_get(&daemon.base, &format!("/v1/messages/batches/{id}"), ALICE);
        if now["processing_status"] == "ended" {
            assert_eq!(now["request_counts"]["succeeded"], 3, "{now}");
            break;
        }
        assert!(Instant::now() < deadline, "the batch never ended: {now}");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let health = daemon.health();
    assert_eq!(health["restarts"].as_u64().unwrap(), before, "{health:#}");
}
