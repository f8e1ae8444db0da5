//! Who may call what: API keys (inline and from a key file) on every API
//! route in each dialect's error shape, the open `/health` and loopback
//! `/metrics`, and CORS for browser clients.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use reqwest::blocking::{RequestBuilder, Response};
use reqwest::Method;
use serde_json::{json, Value};

mod browsers;
mod hosts;
mod keys;

fn chat_body(text: &str) -> Value {
    json!({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": text}]})
}

/// A daemon with key `k1` inline and `kf` in a key file (with comments),
/// not yet waited for.
fn keyed_daemon_unready(upstream: &FakeUpstream, extra: &str) -> (Daemon, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let file = keys.path().join("api-keys");
    std::fs::write(&file, "# clients of team A\n\nkf\n#retired-key\n").unwrap();
    let cfg = DaemonConfig::fake(1)
        .with_toml("server.api_keys = [\"k1\"]")
        .with_toml(&format!(
            "server.api_keys_file = {:?}",
            file.display().to_string()
        ))
        .with_toml(extra);
    (Daemon::start_unready(cfg, upstream), keys)
}

fn keyed_daemon(upstream: &FakeUpstream, extra: &str) -> (Daemon, tempfile::TempDir) {
    let (daemon, keys) = keyed_daemon_unready(upstream, extra);
    daemon.wait_ready(Duration::from_secs(30));
    (daemon, keys)
}

fn send(request: RequestBuilder) -> (u16, Value) {
    let res = request.send().expect("request");
    let status = res.status().as_u16();
    (status, res.json().unwrap_or(Value::Null))
}
