//! The store with the fake CLI: `responses.max_stored` is per key, and
//! usage-ledger rows that cannot be written (a full small disk,
//! `crate::common::disk`) show in `/health` until a write succeeds. The
//! full-disk tests with the real CLI are `real_cli::store_faults`.

use std::time::{Duration, Instant};

use crate::common::disk::SmallDisk;
use crate::common::*;
use serde_json::{json, Value};

pub(crate) fn get(daemon: &Daemon, path: &str) -> (u16, Value) {
    let res = client().get(daemon.url(path)).send().expect("GET");
    (res.status().as_u16(), res.json().unwrap_or(Value::Null))
}

pub(crate) fn wait_until(limit: Duration, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: never happened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn max_stored_is_per_key_so_one_key_cannot_push_out_anothers() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::fake(1)
            .with_toml("server.api_keys = [\"key-a\", \"key-b\"]")
            .with_toml("responses.max_stored = 2"),
        &upstream,
    );
    let respond_as = |key: &str, text: &str| -> String {
        let res = client()
            .post(daemon.url("/v1/responses"))
            .header("authorization", format!("Bearer {key}"))
            .json(&json!({"model": "claude-haiku-4-5", "input": text}))
            .send()
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json::<Value>().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let read_as = |key: &str, id: &str| -> u16 {
        client()
            .get(daemon.url(&format!("/v1/responses/{id}")))
            .header("authorization", format!("Bearer {key}"))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    let a = respond_as("key-a", "mine");
    let b: Vec<String> = (0..4)
        .map(|i| respond_as("key-b", &format!("flood {i}")))
        .collect();
    // Written behind: wait until key-b's oldest are evicted.
    wait_until(Duration::from_secs(30), "key-b's oldest evicted", || {
        read_as("key-b", &b[0]) == 404 && read_as("key-b", &b[1]) == 404
    });
    assert_eq!(
        read_as("key-a", &a),
        200,
        "key-b pushed out key-a's response"
    );
    assert_eq!(read_as("key-b", &b[3]), 200);
}

#[test]
fn usage_ledger_rows_that_cannot_be_written_show_in_health_until_a_write_succeeds() {
    let Some(disk) = SmallDisk::mount(8192) else {
        return;
    };
    let upstream = FakeUpstream::start();
    let cfg = DaemonConfig::fake(1).with_toml(&format!(
        "batches.store_path = {}",
        serde_json::to_string(&disk.path().join("store.sqlite3").display().to_string()).unwrap()
    ));
    let daemon = Daemon::start(cfg, &upstream);
    disk.fill();
    assert_eq!(daemon.post(&message_body("served")).status(), 200);
    let health = daemon.wait_health(Duration::from_secs(30), |h| {
        h["store"]["status"] == "failing"
    });
    assert_eq!(health["status"], "ok", "still serving: {health}");
    assert!(
        health["store"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("full"),
        "{health}"
    );
    assert_eq!(health["store"]["batches_paused"], false, "{health}");
    disk.free();
    assert_eq!(daemon.post(&message_body("again")).status(), 200);
    daemon.wait_health(Duration::from_secs(30), |h| h["store"]["status"] == "ok");
}
