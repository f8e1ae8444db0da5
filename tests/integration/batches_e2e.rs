//! Message batches with the fake CLI: per-key visibility of batches, and
//! the store's default place under systemd's `STATE_DIRECTORY`. The batch
//! tests that need the real CLI are `real_cli::batches_e2e`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

pub(crate) fn params(text: &str) -> Value {
    json!({"model": "claude-haiku-4-5", "max_tokens": 64,
           "messages": [{"role": "user", "content": text}]})
}

/// Creates a batch of `(custom_id, text)` requests with `key` (if any).
pub(crate) fn create(base: &str, key: Option<&str>, requests: &[(String, String)]) -> Value {
    let requests: Vec<Value> = requests
        .iter()
        .map(|(id, text)| json!({"custom_id": id, "params": params(text)}))
        .collect();
    let mut req = client()
        .post(format!("{base}/v1/messages/batches"))
        .json(&json!({ "requests": requests }));
    if let Some(key) = key {
        req = req.header("x-api-key", key);
    }
    let res = req.send().expect("create");
    assert_eq!(res.status(), 200);
    res.json().unwrap()
}

pub(crate) fn get(base: &str, path: &str) -> (u16, Value) {
    let res = client().get(format!("{base}{path}")).send().expect("GET");
    (res.status().as_u16(), res.json().unwrap_or(Value::Null))
}

/// The results by custom_id; a custom_id twice fails the test.
pub(crate) fn results(batch: &Value) -> HashMap<String, Value> {
    let url = batch["results_url"].as_str().expect("results_url");
    let text = client().get(url).send().unwrap().text().unwrap();
    let mut by_id = HashMap::new();
    for line in text.lines() {
        let line: Value = serde_json::from_str(line).unwrap();
        let id = line["custom_id"].as_str().unwrap().to_string();
        assert!(
            by_id.insert(id.clone(), line["result"].clone()).is_none(),
            "{id} twice"
        );
    }
    by_id
}

pub(crate) fn numbered(prefix: &str, n: usize, text: &str) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("{prefix}{i}"), format!("{prefix}{i} {text}")))
        .collect()
}

#[test]
fn batches_belong_to_the_key_that_created_them() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::fake(1).with_toml(
            "server.api_keys = [\"key-a\", \"key-b\"]\n\
             server.public_url = \"https://pool.example.com/\"",
        ),
        &upstream,
    );
    let batch = create(&daemon.base, Some("key-a"), &numbered("k", 2, "hi"));
    let id = batch["id"].as_str().unwrap();
    let as_key = |key: &str, path: &str| {
        let res = client()
            .get(daemon.url(path))
            .header("x-api-key", key)
            .send()
            .unwrap();
        (res.status().as_u16(), res.json::<Value>().unwrap())
    };
    let path = format!("/v1/messages/batches/{id}");
    let (status, seen) = as_key("key-b", &path);
    assert_eq!(status, 404, "{seen}");
    assert_eq!(seen["error"]["type"], "not_found_error");
    let (_, list) = as_key("key-b", "/v1/messages/batches?beta=true");
    assert_eq!(list["data"], json!([]), "{list}");
    let (status, _) = get(&daemon.base, &path);
    assert_eq!(status, 401, "no key, no batch");
    let deadline = Instant::now() + Duration::from_secs(30);
    let ended = loop {
        let (status, b) = as_key("key-a", &path);
        assert_eq!(status, 200, "{b}");
        if b["processing_status"] == "ended" {
            break b;
        }
        assert!(Instant::now() < deadline, "{b}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        ended["results_url"],
        format!("https://pool.example.com/v1/messages/batches/{id}/results")
    );
    let (_, list) = as_key("key-a", "/v1/messages/batches?limit=5");
    assert_eq!(list["data"][0]["id"], id, "{list}");
    assert_eq!(
        (list["first_id"].as_str(), list["has_more"].as_bool()),
        (Some(id), Some(false))
    );
    let res = client()
        .get(daemon.url(&format!("/v1/messages/batches/{id}/results")))
        .header("x-api-key", "key-b")
        .send()
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[test]
fn the_store_defaults_to_systemds_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (state, cwd) = (dir.path().join("state"), dir.path().join("cwd"));
    std::fs::create_dir_all(&state).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();
    // No batches.store_path: the unit's StateDirectory= decides.
    let config = write_fake_config(dir.path());
    let mut cmd = DaemonProcess::command(&config);
    cmd.current_dir(&cwd).env("STATE_DIRECTORY", &state);
    let daemon = DaemonProcess::start_command(cmd, dir.path().join("daemon.log"));
    let batch = create(&daemon.base, None, &numbered("d", 1, "hi"));
    assert_eq!(batch["type"], "message_batch");
    drop(daemon);
    assert!(
        state.join("batches.sqlite3").exists(),
        "the store is in $STATE_DIRECTORY"
    );
    assert_eq!(
        std::fs::read_dir(&cwd).unwrap().count(),
        0,
        "nothing in the working directory"
    );
}
