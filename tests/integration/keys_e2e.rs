//! Named keys and the admin API over plain HTTP with the fake CLI: a key
//! made through the API survives a restart, and a reload swaps config keys
//! without a restart. The official SDKs' side is `real_cli::keys_e2e`.

use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

const ADMIN: &str = "admin-secret-1";

/// `[limits]` and `[[keys]]` for the daemon (appended raw, after the
/// generated sections).
fn keys_toml(keys: &str) -> String {
    format!("[limits]\nrequest_window_secs = 4\n{keys}")
}

pub(crate) const ALICE_BOB: &str = "[[keys]]\nname = \"alice\"\nsecret = \"alice-secret-1\"\n\
    limits = { requests_per_minute = 2 }\n\
    [[keys]]\nname = \"bob\"\nsecret = \"bob-secret-1\"\nmodels = [\"claude-haiku-4-5\"]\n";

pub(crate) fn config(base: DaemonConfig, keys: &str, store: &std::path::Path) -> DaemonConfig {
    let mut cfg = base
        .with_toml(&format!("server.admin_keys = [\"{ADMIN}\"]"))
        .with_toml(&format!(
            "batches.store_path = {}",
            serde_json::to_string(&store.display().to_string()).unwrap()
        ));
    cfg.accounts_toml.push_str(&keys_toml(keys));
    cfg
}

fn send(req: reqwest::blocking::RequestBuilder) -> (u16, Value) {
    let res = req.send().expect("request");
    let status = res.status().as_u16();
    (status, res.json().unwrap_or(Value::Null))
}

fn message(daemon: &Daemon, key: &str) -> u16 {
    send(
        client()
            .post(daemon.url("/v1/messages"))
            .header("x-api-key", key)
            .json(&json!({"model": "claude-haiku-4-5", "max_tokens": 16,
                          "messages": [{"role": "user", "content": "hi"}]})),
    )
    .0
}

#[test]
fn an_api_key_survives_a_restart_and_config_keys_reload() {
    let upstream = FakeUpstream::start();
    let state = tempfile::tempdir().unwrap();
    let store = state.path().join("s.db");
    let daemon = Daemon::start(config(DaemonConfig::fake(1), ALICE_BOB, &store), &upstream);
    let (status, made) = send(
        client()
            .post(daemon.url("/admin/keys"))
            .header("x-api-key", ADMIN)
            .json(&json!({"name": "erin", "weight": 2, "limits": {"tokens_day": 100000}})),
    );
    assert_eq!(status, 201, "{made}");
    let secret = made["secret"].as_str().unwrap().to_string();
    assert_eq!(message(&daemon, &secret), 200);
    // Batches run later, outside the request: their models are checked
    // when the batch is made.
    let batch = |model: &str| {
        send(
            client()
                .post(daemon.url("/v1/messages/batches"))
                .header("x-api-key", "bob-secret-1")
                .json(&json!({"requests": [{"custom_id": "a", "params": {
                    "model": model, "max_tokens": 8,
                    "messages": [{"role": "user", "content": "hi"}]}}]})),
        )
    };
    let (status, body) = batch("claude-sonnet-5");
    assert_eq!(status, 403, "{body}");
    assert!(body.to_string().contains("requests[0]"), "{body}");
    assert_eq!(batch("claude-haiku-4-5").0, 200);
    daemon.stop().unwrap();

    let daemon = Daemon::start(config(DaemonConfig::fake(1), ALICE_BOB, &store), &upstream);
    assert_eq!(
        message(&daemon, &secret),
        200,
        "the API key works after a restart"
    );
    let (_, listed) = send(
        client()
            .get(daemon.url("/admin/keys/erin"))
            .header("x-api-key", ADMIN),
    );
    assert_eq!(listed["source"], "api", "{listed}");
    assert_eq!(listed["weight"], 2, "{listed}");
    assert_eq!(listed["limits"]["tokens_day"], 100000, "{listed}");
    assert!(listed.get("secret").is_none(), "{listed}");

    // A reload drops alice and adds frank, without a restart.
    assert_eq!(message(&daemon, "alice-secret-1"), 200);
    let reloaded = config(
        DaemonConfig::fake(1),
        "[[keys]]\nname = \"frank\"\nsecret = \"frank-secret-1\"\n",
        &store,
    );
    daemon.reload(&reloaded, &upstream);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while message(&daemon, "frank-secret-1") != 200 {
        assert!(std::time::Instant::now() < deadline, "frank never worked");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(message(&daemon, "alice-secret-1"), 401);
    assert_eq!(
        message(&daemon, &secret),
        200,
        "API keys stay through a reload"
    );

    // A reload whose key clashes with an API key is refused whole.
    let clash = config(
        DaemonConfig::fake(1),
        "[[keys]]\nname = \"erin\"\nsecret = \"erin-secret-1\"\n",
        &store,
    );
    daemon.reload(&clash, &upstream);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(message(&daemon, "frank-secret-1"), 200);
    assert_eq!(message(&daemon, "erin-secret-1"), 401);
}
