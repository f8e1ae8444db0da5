//! The store meeting a full disk, for real: the store file lives on a small
//! tmpfs the test fills (`ENOSPC`, SQLite's `SQLITE_FULL`) and frees
//! (`crate::common::disk`). Batch work pauses instead of re-running a request it
//! cannot record, a result that cannot be written waits and ends its batch
//! once it is, an acknowledged stored response stays readable and is
//! written later, and the failure shows in `/health` and `/metrics`. Also:
//! a clean stop leaves no `-wal` file. The per-key bound and the ledger's
//! failing writes are the fast tier's `store_faults`.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::disk::SmallDisk;
use crate::common::*;
use crate::store_faults::{get, wait_until};
use serde_json::{json, Value};

/// A daemon (real CLI, one worker) whose store is `store`.
fn on_store(store: &Path, extra: &str) -> DaemonConfig {
    DaemonConfig::real(1)
        .with_toml(&format!(
            "batches.store_path = {}",
            serde_json::to_string(&store.display().to_string()).unwrap()
        ))
        .with_toml(extra)
}

fn create_batch(daemon: &Daemon, custom_id: &str, text: &str) -> String {
    let res = daemon.post_to(
        "/v1/messages/batches",
        &json!({"requests": [{"custom_id": custom_id, "params": message_body(text)}]}),
    );
    assert_eq!(res.status(), 200);
    let batch: Value = res.json().unwrap();
    batch["id"].as_str().unwrap().to_string()
}

fn wait_ended(daemon: &Daemon, id: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let (_, batch) = get(daemon, &format!("/v1/messages/batches/{id}"));
        if batch["processing_status"] == "ended" {
            return batch;
        }
        assert!(
            Instant::now() < deadline,
            "batch never ended: {batch}\n/health {}",
            daemon.health()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The one result line of a batch.
fn only_result(batch: &Value) -> Value {
    let url = batch["results_url"].as_str().expect("results_url");
    let text = client().get(url).send().unwrap().text().unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    lines[0]["result"].clone()
}

/// Upstream calls whose prompt carries `marker`.
fn calls_with(upstream: &FakeUpstream, marker: &str) -> usize {
    upstream
        .message_calls()
        .iter()
        .filter(|c| c.all_text().contains(marker))
        .count()
}

#[test]
fn a_full_disk_pauses_batch_work_and_no_request_reaches_the_upstream_twice() {
    let Some(disk) = SmallDisk::mount(8192) else {
        return;
    };
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(on_store(&disk.path().join("store.sqlite3"), ""), &upstream);
    // The only worker busy with an interactive request (20 words, 300 ms
    // apart): the batch waits for it.
    let hold = std::thread::spawn({
        let url = daemon.url("/v1/messages");
        move || {
            let res = client()
                .post(url)
                .json(&message_body("hold the worker [[slow:300]]"))
                .send()
                .unwrap();
            res.status().as_u16()
        }
    });
    daemon.wait_health(Duration::from_secs(30), |h| h["workers"]["busy"] == 1);
    let id = create_batch(&daemon, "only", "BATCH-ONE");
    disk.fill();
    assert_eq!(
        calls_with(&upstream, "BATCH-ONE"),
        0,
        "the batch started before the disk was full: inconclusive"
    );
    assert_eq!(hold.join().unwrap(), 200);
    // The worker is free: the runner tries the request now. Watch a few of
    // its tries (each a write error; the usage ledger's rows of the two
    // requests above may fail too), or the request reaching the upstream
    // again and again.
    wait_until(Duration::from_secs(30), "the runner's third try", || {
        let store = &daemon.health()["store"];
        (store["batches_paused"] == true && store["write_errors"].as_u64() >= Some(5))
            || calls_with(&upstream, "BATCH-ONE") > 1
    });
    let calls = calls_with(&upstream, "BATCH-ONE");
    assert!(
        calls <= 1,
        "one batch request reached the upstream {calls} times while the disk was full"
    );
    let health = daemon.health();
    let store = &health["store"];
    assert_eq!(store["status"], "failing", "{health}");
    assert_eq!(store["batches_paused"], true, "{health}");
    assert!(
        store["error"].as_str().unwrap_or("").contains("full"),
        "{health}"
    );
    assert_eq!(
        health["status"], "ok",
        "interactive service goes on: {health}"
    );
    let metrics = daemon.metrics();
    assert!(metrics.contains("claude_pool_store_failing 1"), "{metrics}");
    let (_, batch) = get(&daemon, &format!("/v1/messages/batches/{id}"));
    assert_eq!(batch["processing_status"], "in_progress", "{batch}");

    disk.free();
    let batch = wait_ended(&daemon, &id, Duration::from_secs(90));
    assert_eq!(batch["request_counts"]["succeeded"], 1, "{batch}");
    let result = only_result(&batch);
    assert_eq!(
        result["message"]["content"][0]["text"], "Hello! You said: BATCH-ONE",
        "{result}"
    );
    assert_eq!(calls_with(&upstream, "BATCH-ONE"), 1, "run exactly once");
    let health = daemon.health();
    assert_eq!(health["store"]["status"], "ok", "{health}");
    assert!(daemon.metrics().contains("claude_pool_store_failing 0"));
}

#[test]
fn a_batch_result_that_cannot_be_written_waits_and_ends_its_batch_once_written() {
    let Some(disk) = SmallDisk::mount(8192) else {
        return;
    };
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(on_store(&disk.path().join("store.sqlite3"), ""), &upstream);
    // About 6 s of answer: time to fill the disk while it runs.
    let id = create_batch(&daemon, "slow", "BATCH-SLOW [[slow:300]]");
    wait_until(Duration::from_secs(30), "the request upstream", || {
        calls_with(&upstream, "BATCH-SLOW") == 1
    });
    disk.fill();
    // Its answer arrives with nowhere to go.
    let health = daemon.wait_health(Duration::from_secs(60), |h| {
        h["store"]["unwritten"]["batch_results"] == 1
    });
    assert_eq!(health["store"]["status"], "failing", "{health}");
    assert!(daemon
        .metrics()
        .contains("claude_pool_store_unwritten{kind=\"batch_results\"} 1"));
    let (_, batch) = get(&daemon, &format!("/v1/messages/batches/{id}"));
    assert_eq!(batch["processing_status"], "in_progress", "{batch}");

    disk.free();
    let batch = wait_ended(&daemon, &id, Duration::from_secs(60));
    assert_eq!(batch["request_counts"]["succeeded"], 1, "{batch}");
    let result = only_result(&batch);
    assert_eq!(result["type"], "succeeded", "{result}");
    let text = result["message"]["content"][0]["text"].as_str().unwrap();
    assert!(text.ends_with("word19 "), "the answer received: {text}");
    assert_eq!(calls_with(&upstream, "BATCH-SLOW"), 1, "paid for once");
    let health = daemon.health();
    assert_eq!(health["store"]["status"], "ok", "{health}");
    assert_eq!(health["store"]["unwritten"]["batch_results"], 0, "{health}");
}

fn respond(daemon: &Daemon, body: Value) -> Value {
    let res = daemon.post_to("/v1/responses", &body);
    assert_eq!(res.status(), 200);
    res.json().unwrap()
}

#[test]
fn a_stored_response_outlives_a_full_disk_and_the_bound_answers_store_false() {
    let Some(disk) = SmallDisk::mount(8192) else {
        return;
    };
    let store = disk.path().join("store.sqlite3");
    let upstream = FakeUpstream::start();
    // No backlog beyond the first unwritten response: the bound is reached
    // at once.
    let daemon = Daemon::start(
        on_store(&store, "responses.max_unwritten_mb = 0"),
        &upstream,
    );
    disk.fill();
    let first = respond(
        &daemon,
        json!({"model": "claude-haiku-4-5", "input": "remember RESP-KEPT"}),
    );
    assert_eq!(first["store"], true, "{first}");
    let id = first["id"].as_str().unwrap().to_string();
    // Its write fails; it must stay readable all along.
    wait_until(Duration::from_secs(30), "a failed write", || {
        let (status, _) = get(&daemon, &format!("/v1/responses/{id}"));
        assert_eq!(status, 200, "an acknowledged stored response is gone");
        daemon.health()["store"]["unwritten"]["responses"] == 1
    });
    let health = daemon.health();
    assert_eq!(health["store"]["status"], "failing", "{health}");
    assert!(health["store"]["unwritten"]["responses_bytes"].as_u64() > Some(0));
    let (status, read) = get(&daemon, &format!("/v1/responses/{id}"));
    assert_eq!((status, &read["output"]), (200, &first["output"]));
    // It continues, and the continuation (past the bound) says it is not
    // stored.
    let second = respond(
        &daemon,
        json!({"model": "claude-haiku-4-5", "input": "and then", "previous_response_id": id}),
    );
    assert_eq!(second["store"], false, "{second}");
    let last = upstream.message_calls().pop().unwrap();
    assert!(
        last.all_text().contains("RESP-KEPT"),
        "the context was read"
    );
    let (status, _) = get(
        &daemon,
        &format!("/v1/responses/{}", second["id"].as_str().unwrap()),
    );
    assert_eq!(status, 404, "not stored, as it said");

    disk.free();
    daemon.wait_health(Duration::from_secs(60), |h| {
        h["store"]["status"] == "ok" && h["store"]["unwritten"]["responses"] == 0
    });
    daemon.stop().unwrap();
    // On disk: another daemon on the same store reads it.
    let daemon = Daemon::start(on_store(&store, ""), &upstream);
    let (status, read) = get(&daemon, &format!("/v1/responses/{id}"));
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["output"], first["output"]);
}

#[test]
fn a_clean_stop_leaves_no_wal_file() {
    let upstream = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.sqlite3");
    let cfg = on_store(&store, "server.listen = \"127.0.0.1:0\"");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, settings_toml(&cfg, &upstream, &dir)).unwrap();
    let mut daemon = DaemonProcess::start(&config, dir.path().join("daemon.log"));
    daemon.wait_health("a ready worker", |h| h["workers"]["ready"] == 1);
    let res = client()
        .post(daemon.url("/v1/responses"))
        .json(&json!({"model": "claude-haiku-4-5", "input": "kept"}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let wal = dir.path().join("store.sqlite3-wal");
    assert!(wal.exists(), "a WAL while running");
    daemon.signal(libc::SIGTERM);
    let exit = daemon.child.wait().unwrap();
    assert!(exit.success(), "{}", daemon.log_text());
    assert!(
        !wal.exists(),
        "the WAL is left after a clean stop: {}",
        daemon.log_text()
    );
    assert!(!dir.path().join("store.sqlite3-shm").exists());
    assert!(store.exists());
}
