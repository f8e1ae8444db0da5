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

mod accounts;
mod keys;
mod lifecycle;
mod sdk;

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
