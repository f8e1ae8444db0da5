//! `claude-pool keys create|list|revoke`, the executable against a running
//! daemon's admin API: a created key's secret is printed once and works,
//! the list names it and never shows a secret, a revoked key gets 401,
//! and the API's errors (unknown key, wrong admin key) and a missing admin
//! key end the command non-zero with the message.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::*;
use serde_json::Value;

const ADMIN: &str = "admin-secret-keys-cli";

/// `claude-pool keys ARGS…` with `env` (and nothing of the caller's).
fn keys(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_claude-pool"));
    cmd.arg("keys")
        .args(args)
        .env_remove("CLAUDE_POOL_CONFIG")
        .env_remove("CLAUDE_POOL_ADMIN_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run claude-pool keys")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// The status of `GET /v1/models` with `key`.
fn models_status(daemon: &Daemon, key: &str) -> u16 {
    client()
        .get(daemon.url("/v1/models"))
        .header("x-api-key", key)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn keys_cli_creates_lists_and_revokes_through_the_admin_api() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::fake(1).with_toml(&format!("server.admin_keys = [\"{ADMIN}\"]")),
        &upstream,
    );
    let url = daemon.base.as_str();
    let admin = [("CLAUDE_POOL_ADMIN_KEY", ADMIN)];
    assert_eq!(models_status(&daemon, "cpk_not-a-key"), 401);

    // Create: the secret alone on stdout, the warning on stderr.
    let out = keys(
        &[
            "--url",
            url,
            "create",
            "ci-bot",
            "--requests-per-minute",
            "30",
            "--max-concurrent",
            "2",
            "--tokens-per-day",
            "500000",
            "--model",
            "haiku",
        ],
        &admin,
    );
    assert!(out.status.success(), "{}", show(&out));
    let secret = text(&out.stdout).trim().to_string();
    assert!(
        secret.starts_with("cpk_") && !secret.contains('\n'),
        "{}",
        show(&out)
    );
    assert!(
        text(&out.stderr).contains("will not be shown again"),
        "{}",
        show(&out)
    );
    assert_eq!(models_status(&daemon, &secret), 200, "the new key works");

    // List, with the daemon's address from --config and the admin key
    // from a file: the name and its limits, never the secret.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let listen = url.trim_start_matches("http://");
    write(&config, &format!("[server]\nlisten = \"{listen}\"\n"));
    let key_file = dir.path().join("admin-key");
    write(&key_file, &format!("{ADMIN}\n"));
    let config = config.to_str().unwrap();
    let key_file = key_file.to_str().unwrap();
    let out = keys(
        &["--config", config, "list", "--admin-key-file", key_file],
        &[],
    );
    assert!(out.status.success(), "{}", show(&out));
    let table = text(&out.stdout);
    let row = table
        .lines()
        .find(|l| l.starts_with("ci-bot "))
        .unwrap_or_else(|| panic!("no ci-bot row\n{}", show(&out)));
    assert!(
        row.contains("requests_per_minute=30") && row.contains("tokens_day=500000"),
        "{row}"
    );
    assert!(
        !table.contains(&secret),
        "the list shows the secret: {table}"
    );

    let out = keys(&["--url", url, "list", "--json"], &admin);
    assert!(out.status.success(), "{}", show(&out));
    assert!(!text(&out.stdout).contains(&secret));
    let listed: Value = serde_json::from_slice(&out.stdout).expect("list --json is JSON");
    let key = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "ci-bot")
        .expect("ci-bot in the JSON list")
        .clone();
    assert_eq!(key["limits"]["max_concurrent"], 2, "{key}");
    assert_eq!(key["models"], serde_json::json!(["haiku"]), "{key}");
    assert_eq!(key["source"], "api", "{key}");

    // Revoke: the key's next request is refused.
    let out = keys(&["--url", url, "revoke", "ci-bot"], &admin);
    assert!(out.status.success(), "{}", show(&out));
    assert!(text(&out.stdout).contains("revoked"), "{}", show(&out));
    assert_eq!(models_status(&daemon, &secret), 401, "a revoked key");

    // A name the daemon does not hold: the API's 404 and its message.
    let out = keys(&["--url", url, "revoke", "ci-bot"], &admin);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = text(&out.stderr);
    assert!(
        err.contains("404") && err.contains("no key named `ci-bot`"),
        "{}",
        show(&out)
    );
}

#[test]
fn keys_cli_refuses_without_a_good_admin_key() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::fake(1).with_toml(&format!("server.admin_keys = [\"{ADMIN}\"]")),
        &upstream,
    );
    let url = daemon.base.as_str();

    // No key at all: told where to put one, and nothing sent.
    let out = keys(&["--url", url, "create", "nobody"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = text(&out.stderr);
    assert!(
        err.contains("no admin key") && err.contains("CLAUDE_POOL_ADMIN_KEY"),
        "{}",
        show(&out)
    );
    assert!(out.stdout.is_empty(), "{}", show(&out));

    // A wrong key: the daemon's 401 and its message; no key was made.
    let out = keys(
        &["--url", url, "create", "nobody"],
        &[("CLAUDE_POOL_ADMIN_KEY", "not-the-admin-key")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("401 invalid admin key"),
        "{}",
        show(&out)
    );
    let out = keys(
        &["--url", url, "list", "--json"],
        &[("CLAUDE_POOL_ADMIN_KEY", ADMIN)],
    );
    assert!(out.status.success(), "{}", show(&out));
    assert!(!text(&out.stdout).contains("nobody"), "{}", show(&out));
}
